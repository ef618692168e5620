/* engine.c: the run loop: plan the range, walk its windows and pages, run
 * each unit; and planning a run without making calls (`ppflow plan`).
 *
 * A run takes the flow's state lock, loads the checkpoint, opens the sink
 * (before any API call, so a sink that cannot take records fails the run
 * before it spends any of the call budget), adopts a newer checkpoint the
 * sink stored, and then runs its units in order: the endpoint once, or
 * every time window from the checkpoint (the late-arrival look-back
 * included), each page by page. Each unit is fetched (fetch.c), delivered
 * and checkpointed (unit.c, streamed.c, session.c) before the next one
 * starts, so a run that stops for any reason resumes at the first unit not
 * durably delivered. See run.h for the files of a run. */
#include "engine/engine.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/httpopts.h"
#include "engine/run.h"
#include "engine/spool.h"
#include "util/log.h"
#include "util/timeutil.h"

#define DEFAULT_LOOKBACK_MS 3600000

void pf_run_opts_default(pf_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->limit = -1;
    o->out = stdout;
    o->sink_attempts = 5;
    o->sink_backoff_ms = 1000;
}
/* ---- range ------------------------------------------------------------- */

static pf_status plan_range(run_ctx *c, int64_t now, pf_window_range *r, pf_error *err)
{
    pf_flow *f = c->f;
    int64_t start, end = now, istart = 0, iend = 0;
    const char *interval = pf_flow_param_str(f, "interval");
    const char *since_time = pf_flow_param_str(f, "since_time");
    const char *since_seconds = pf_flow_param_str(f, "since_seconds");
    const char *until = pf_flow_param_str(f, "until");
    if (interval && pf_interval_parse(interval, &istart, &iend, err) != PF_OK) return PF_ECONFIG;
    if (interval)
        end = iend;
    else if (until && pf_time_parse(until, &end, err) != PF_OK)
        return PF_ECONFIG;
    int64_t origin = INT64_MIN; /* where the flow's range begins, when it says */
    if (since_time && pf_time_parse(since_time, &origin, err) != PF_OK) return PF_ECONFIG;
    if (!since_time && interval) origin = istart;
    if (!since_time && !interval && c->state.has_origin) origin = c->state.origin_ms;
    if (c->state.has_cursor) {
        /* The late-arrival re-sweep never reaches before the range the flow
         * asks for: records from before since_time/interval were never
         * wanted, late or not. */
        start = c->state.cursor_ms - c->lookback_ms;
        if (start < origin) start = origin < c->state.cursor_ms ? origin : c->state.cursor_ms;
        /* A full ledger forgot its oldest windows: a re-sweep before its
         * horizon would deliver some of their records again. */
        int64_t h;
        if (c->lookback_ms && c->ledger && pf_keyledger_horizon(c->ledger, &h) && h > start) {
            char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
            start = h < c->state.cursor_ms ? h : c->state.cursor_ms;
            pf_time_format(start, a);
            pf_time_format(c->state.cursor_ms - c->lookback_ms, b);
            pf_log_warn("the late-arrival ledger is full: the re-sweep starts at %s, not %s "
                        "(events indexed later than that are missed)",
                        a, b);
        }
    } else if (since_time) {
        start = origin;
    } else if (since_seconds) {
        start = now - strtoll(since_seconds, NULL, 10) * 1000;
    } else if (interval) {
        start = istart;
    } else {
        start = now - DEFAULT_LOOKBACK_MS;
        pf_log_info("no checkpoint and no since_time/since_seconds/interval: starting one hour "
                    "ago");
    }
    pf_window_range_make(&f->tmpl->window, start, end, now, r);
    if (!c->state.has_cursor && !c->state.has_origin) {
        /* Remembered for later re-sweeps (since_seconds moves with now). */
        c->state.has_origin = 1;
        c->state.origin_ms = r->start_ms;
    }
    if (c->lookback_ms && c->state.has_cursor) {
        c->late_until_ms = c->state.cursor_ms;
        if (r->clamped && c->state.cursor_ms >= r->start_ms) r->clamped = 0; /* only the re-sweep */
    }
    if (r->clamped && c->state.has_cursor && !c->o->test) {
        /* The checkpoint is older than the API keeps (an outage longer than
         * the retention): the range in between is lost. Say so in the sink,
         * not only in the log, and continue from the oldest reachable time. */
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE], d[PF_TIME_FMT_SIZE];
        pf_time_format(c->state.cursor_ms, a);
        pf_time_format(r->start_ms, b);
        pf_time_format(now, d);
        pf_log_error("gap: the checkpoint %s is older than the API keeps; events from %s to %s "
                     "can no longer be fetched. A gap record goes to stream '" PF_RUN_GAP_STREAM
                     "' and the run continues from %s",
                     a, a, b, b);
        json_object *g = json_object_new_object();
        if (!g) return pf_error_set(err, PF_ENOMEM, "out of memory");
        json_object_object_add(g, "type", json_object_new_string("gap"));
        json_object_object_add(g, "flow", json_object_new_string(f->name));
        json_object_object_add(g, "template", json_object_new_string(f->tmpl->name));
        json_object_object_add(g, "lost_start", json_object_new_string(a));
        json_object_object_add(g, "lost_end", json_object_new_string(b));
        json_object_object_add(g, "reason",
                               json_object_new_string("the checkpoint is older than the "
                                                      "API's retention"));
        json_object_object_add(g, "detected", json_object_new_string(d));
        const char *text = json_object_to_json_string_ext(g, JSON_C_TO_STRING_PLAIN);
        free(c->gap_json);
        c->gap_json = text ? strdup(text) : NULL;
        json_object_put(g);
        if (!c->gap_json) return pf_error_set(err, PF_ENOMEM, "out of memory");
        snprintf(c->gap_key, sizeof c->gap_key, "gap:%s", a);
        c->stats->gap = 1;
        c->stats->gap_start_ms = c->state.cursor_ms;
        c->stats->gap_end_ms = r->start_ms;
        return PF_OK;
    }
    if (r->clamped) {
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        pf_time_format(r->requested_start_ms, a);
        pf_time_format(r->start_ms, b);
        pf_log_warn("start %s is older than the API keeps; starting at %s instead (events "
                    "before it can no longer be fetched)",
                    a, b);
    }
    return PF_OK;
}

/* Fetches, extracts and delivers one request: page PG (NULL: the unit is
 * one request) of window W (NULL: not windowed). */
static pf_status do_unit(run_ctx *c, const pf_window *w, pf_pager *pg, pf_buf *body, pf_buf *url,
                         pf_error *err)
{
    char where[160];
    pf_run_describe_unit(w, pg, where, sizeof where);
    /* Stream when the extractor can and nothing needs the whole body (a
     * pager reading tokens or links from it). */
    int streaming = c->sx && !pg && c->f->format == PF_RESPONSE_JSON;
    if (streaming && !c->o->test) return pf_run_streamed_unit(c, w, body, url, where, err);
    return pf_run_collected_unit(c, w, pg, body, url, streaming, where, err);
}

/* Runs the units of the flow: the endpoint once (page by page when it is
 * paged), or each time window of the planned range (each page by page).
 * Every request counts against the flow's max_pages; the cap stops the run
 * with an error, everything fetched before it is delivered and the next run
 * continues from the checkpoint. */
static pf_status run_units(run_ctx *c, pf_error *err)
{
    pf_flow *f = c->f;
    const pf_template *t = f->tmpl;
    pf_buf body, url;
    pf_buf_init(&body, f->http.max_body);
    pf_buf_init(&url, 64 * 1024);
    pf_status st = PF_OK;
    int windowed = t->paging == PF_PAGING_TIME_WINDOW && !f->local_file;
    int64_t now = pf_time_now_ms();
    pf_window_range r;
    memset(&r, 0, sizeof r);
    pf_window w = {0, 0};
    if (f->local_file) {
        /* A saved response: one unit, no pages. */
        st = do_unit(c, NULL, NULL, &body, &url, err);
        goto out;
    }
    if (windowed && !c->o->test && !t->pages.kind && f->lookback_ms > 0 && !c->state.page_kind) {
        /* Late arrivals: fetch the look-back before the cursor again and
         * drop what the ledger says was delivered. */
        c->lookback_ms = f->lookback_ms;
        if (c->state.ledger)
            st = pf_keyledger_from_json(c->state.ledger, strlen(c->state.ledger), &c->ledger, err);
        else if (!(c->ledger = pf_keyledger_new()))
            st = pf_error_set(err, PF_ENOMEM, "out of memory");
        if (st != PF_OK) {
            pf_error_prefix(err, "checkpoint %s", f->state_path);
            goto out;
        }
    }
    if (windowed) {
        st = plan_range(c, now, &r, err);
        if (st != PF_OK) goto out;
        c->stats->range_start_ms = r.start_ms;
        c->stats->range_end_ms = r.end_ms;
        c->stats->clamped = r.clamped;
        c->stats->planned = (long long)pf_window_count(&t->window, &r);
    }
    if (windowed && c->o->test) {
        if (!pf_window_next(&t->window, &r, r.start_ms, &w)) {
            /* Nothing new yet: show the latest shortest window instead. */
            w.end_ms = r.end_ms > r.start_ms ? r.end_ms : now;
            w.start_ms = w.end_ms - (t->window.min_ms > 0 ? t->window.min_ms : 60000);
        }
        pf_pager pg;
        st = pf_pager_init(&pg, f, err);
        if (st == PF_OK) st = do_unit(c, &w, t->pages.kind ? &pg : NULL, &body, &url, err);
        pf_pager_free(&pg);
        goto out;
    }
    if (windowed && c->stats->planned == 0) {
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        pf_time_format(r.start_ms, a);
        pf_time_format(r.end_ms, b);
        if (r.end_ms < now && r.end_ms - r.start_ms < t->window.min_ms &&
            (pf_flow_param_str(f, "until") || pf_flow_param_str(f, "interval")))
            pf_log_info("nothing to fetch: the range ends at %s and the checkpoint is at %s", b, a);
        else
            pf_log_info("nothing to fetch yet: less than the API's shortest window has passed "
                        "since %s; the next run continues from there",
                        a);
    }
    /* Page progress saved by an earlier run belongs to the first unit: the
     * endpoint, or the window that starts at the cursor (with the same end). */
    int resume = c->state.page_kind != NULL;
    if (resume && windowed &&
        (!c->state.has_cursor || r.start_ms != c->state.cursor_ms ||
         c->state.page_window_end_ms <= r.start_ms || c->state.page_window_end_ms > r.end_ms)) {
        pf_log_warn("the checkpoint's page position does not fit the planned windows; the "
                    "window at the cursor is fetched again from its first page");
        resume = 0;
    } else if (resume && !windowed && c->state.page_window_end_ms) {
        pf_log_warn("the checkpoint's page position belongs to a time window; starting from "
                    "the first page");
        resume = 0;
    }
    long long requests = 0;
    int64_t from = r.start_ms;
    if (!c->o->test)
        pf_progress_start(&c->progress,
                          windowed        ? "windows"
                          : t->pages.kind ? "pages"
                                          : "requests",
                          windowed && !t->pages.kind ? c->stats->planned : 0,
                          pf_log_get_level() >= PF_LOG_INFO, stderr, 0);
    for (int unit = 0;; unit++) {
        const pf_window *wp = NULL;
        if (windowed) {
            if (!pf_window_next(&t->window, &r, from, &w)) break;
            if (unit == 0 && resume) w.end_ms = c->state.page_window_end_ms;
            /* The re-sweep of the look-back ends at the old cursor. */
            if (w.start_ms < c->late_until_ms && w.end_ms > c->late_until_ms)
                w.end_ms = c->late_until_ms;
            if (w.end_ms <= c->late_until_ms && w.end_ms - w.start_ms < t->window.min_ms) {
                /* A re-sweep shorter than the API's shortest window (the
                 * flow's start or the retention limit just before the
                 * cursor): the API would refuse it; its records were
                 * delivered by the forward pass. */
                from = w.end_ms;
                continue;
            }
            wp = &w;
        } else if (unit > 0) {
            break;
        }
        pf_pager pg;
        st = pf_pager_init(&pg, f, err);
        if (st == PF_OK && unit == 0 && resume) st = pf_pager_resume(&pg, f, &c->state, err);
        while (st == PF_OK) {
            if (pf_http_cancel_requested()) {
                st = pf_error_set(err, PF_EINTERRUPTED,
                                  "stopped by a signal; the checkpoint is at the last delivered "
                                  "%s",
                                  t->pages.kind ? "page"
                                  : windowed    ? "window"
                                                : "request");
                break;
            }
            if (requests >= f->max_pages) {
                char at[160];
                pf_run_describe_unit(wp, t->pages.kind ? &pg : NULL, at, sizeof at);
                st = pf_error_set(err, PF_ETOOBIG,
                                  "stopped after %lld requests, the most this flow makes in one "
                                  "run (pagination.max_pages of template %s, or source.max_pages); "
                                  "everything fetched is delivered and the next run continues%s%s",
                                  requests, t->name, at[0] ? " at " : "", at);
                break;
            }
            requests++;
            st = do_unit(c, wp, t->pages.kind ? &pg : NULL, &body, &url, err);
            if (c->o->test || !t->pages.kind || pg.done) break; /* test: first page only */
        }
        pf_pager_free(&pg);
        if (st != PF_OK || c->o->test) break;
        if (windowed) from = w.end_ms;
    }
out:
    pf_progress_finish(&c->progress);
    pf_buf_free(&url);
    pf_buf_free(&body);
    return st;
}

/* ---- entry ------------------------------------------------------------- */

static pf_status make_http(run_ctx *c, pf_error *err)
{
    pf_http_opts o;
    pf_flow_http_opts(&c->f->http, &o);
    pf_status st = pf_http_client_new(&o, &c->http, err);
    if (st == PF_OK) pf_flow_warn_insecure(c->f); /* as verify_tls: false warns, every run */
    return st;
}

/* The most a unit's records may take in the spool: the body's cap with room
 * for keys and framing (records are parts of the body). */
static uint64_t spool_limit(const pf_flow *f)
{
    uint64_t body = f->http.max_body > 0 ? (uint64_t)f->http.max_body : (uint64_t)256 << 20;
    return body + body / 2 + ((uint64_t)1 << 20);
}

pf_status pf_engine_run(pf_flow *f, const pf_run_opts *o, pf_run_stats *stats, pf_error *err)
{
    memset(stats, 0, sizeof *stats);
    run_ctx c = {0};
    c.f = f;
    c.o = o;
    c.stats = stats;
    c.batch_records = f->sink.batch_records ? f->sink.batch_records : PF_RUN_SINK_CHUNK;
    c.batch_bytes = f->sink.batch_bytes ? f->sink.batch_bytes : PF_RUN_STREAM_BATCH_BYTES;
    int lockfd = -1;
    pf_status st = PF_OK;
    pf_log_set_flow(f->name);
    /* A run id: ties the log lines of one run together (JSON logs). */
    char run_id[32];
    snprintf(run_id, sizeof run_id, "%llx-%lx", (unsigned long long)pf_time_real_ms(),
             (long)getpid());
    pf_log_set_run(run_id);
    /* Windowed templates with a retention limit may report a gap: their
     * sinks also get the gap stream. */
    size_t nstreams = f->tmpl->nstreams;
    c.streams = calloc(nstreams + 1, sizeof *c.streams);
    c.identities = calloc(nstreams + 1, sizeof *c.identities);
    if (!c.streams || !c.identities) {
        free(c.streams);
        free(c.identities);
        return pf_error_set(err, PF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nstreams; i++) {
        c.streams[i] = f->tmpl->streams[i].name;
        c.identities[i] = f->tmpl->streams[i].identity ? f->tmpl->streams[i].identity : "sha256";
    }
    if (f->tmpl->paging == PF_PAGING_TIME_WINDOW && f->tmpl->window.retention_ms > 0 &&
        !f->local_file) {
        c.identities[nstreams] = "gap:$.lost_start";
        c.streams[nstreams++] = PF_RUN_GAP_STREAM;
    }
    c.nstreams = nstreams;

    if (!o->test && (lockfd = pf_state_lock(f->state_path, err)) < 0) {
        st = err ? err->code : PF_ESTATE;
        goto done;
    }
    if (lockfd >= 0) stats->lock_from_ms = pf_time_now_ms();
    if ((st = pf_state_load_for(f->state_path, f->name, &c.state, err)) != PF_OK) goto done;
    if (c.state.template_name && strcmp(c.state.template_name, f->tmpl->name) != 0) {
        st = pf_error_set(err, PF_ESTATE,
                          "checkpoint %s belongs to template %s, not %s; give this flow its own "
                          "state.path",
                          f->state_path, c.state.template_name, f->tmpl->name);
        goto done;
    }
    if (!f->local_file && (st = make_http(&c, err)) != PF_OK) goto done;
    if (!o->test) {
        /* Before any API call the sink proves it can take records (each
         * sink checks its destination when it opens: PostgreSQL its
         * database and tables, Kafka its brokers' metadata). One that
         * cannot fails the run at once, naming what it could not reach,
         * without spending any of the call budget; a scheduled run tries
         * again at its next time. */
        int open_attempt = 1;
        int64_t open_delay = o->sink_backoff_ms;
        if ((st = pf_run_reopen_sink(&c, &open_delay, &open_attempt, 1, err)) != PF_OK) {
            /* pf_sink_open answers PF_ESTATE only when the sink's lock on
             * the flow is held elsewhere: the run is busy, as with the
             * state lock file. */
            stats->busy = st == PF_ESTATE;
            goto done;
        }
        pf_run_adopt_checkpoint(&c, err, &st);
        if (st != PF_OK) goto done;
        /* Record the sink's starting point before anything is written, so a
         * crash in the first window can be undone too. */
        int refused = 0;
        if ((st = pf_run_write_commit(&c, NULL, 0, 0, 0, &refused, err)) != PF_OK) goto done;
        pf_state_set_str(&c.state.template_name, f->tmpl->name);
        c.state.run_started_ms = pf_time_real_ms();
        c.state.run_ended_ms = 0;
        c.state.run_records = c.state.run_windows = c.state.run_bytes = c.state.run_retries = 0;
        pf_state_set_str(&c.state.run_outcome, "running");
        pf_state_set_str(&c.state.run_error, NULL);
        if ((st = pf_run_save_state(&c, err)) != PF_OK) goto done;
    }
    if (f->tmpl->quota_pool && !f->local_file) {
        if (pf_quota_path(f->state_path, c.quota_path, sizeof c.quota_path) != 0) {
            st = pf_error_set(err, PF_ECONFIG, "state.path is too long");
            goto done;
        }
        pf_quota_key(f->tmpl->quota_pool, f->principal, c.quota_key);
    }
    if (f->format == PF_RESPONSE_JSON) {
        c.sx = pf_sx_new(f->tmpl, (size_t)f->http.max_record, (size_t)f->http.max_body,
                         pf_run_sx_record, &c, err);
        if (!c.sx) {
            st = err ? err->code : PF_ENOMEM;
            goto done;
        }
        if (!pf_sx_is_streaming(c.sx)) {
            pf_log_debug("records are extracted from the whole response: %s",
                         pf_sx_buffered_reason(c.sx));
            pf_sx_free(c.sx);
            c.sx = NULL;
        }
    }
    if (c.sx && !o->test) {
        /* Streamed units keep their records in the spool, so that a sink
         * failure replays them instead of fetching them again. */
        char path[4200];
        pf_error se;
        pf_error_clear(&se);
        if (snprintf(path, sizeof path, "%s.spool", f->state_path) >= (int)sizeof path ||
            pf_spool_open(path, c.streams, c.nstreams, spool_limit(f), &c.spool, &se) != PF_OK)
            pf_log_warn("%s; a sink failure in the middle of a response fetches it again",
                        se.msg[0] ? se.msg : "state.path is too long for the spool file");
    }
    st = run_units(&c, err);
    if (!o->test) {
        char msg[PF_ERROR_MSG_MAX + 300], clean[sizeof msg];
        if (st != PF_OK) {
            pf_error_format(err, msg, sizeof msg);
            pf_log_redact(msg, clean, sizeof clean);
        }
        pf_state_set_str(&c.state.run_outcome, st == PF_OK             ? "ok"
                                               : st == PF_EINTERRUPTED ? "interrupted"
                                                                       : "failed");
        pf_state_set_str(&c.state.run_error, st == PF_OK ? NULL : clean);
        c.state.run_ended_ms = pf_time_real_ms();
        c.state.run_bytes = stats->bytes;
        c.state.run_retries = stats->retries;
        pf_error se;
        pf_error_clear(&se);
        if (pf_run_save_state(&c, &se) != PF_OK && st == PF_OK) {
            if (err) *err = se;
            st = se.code;
        }
    }
done:
    stats->has_cursor = c.state.has_cursor;
    stats->cursor_ms = c.state.cursor_ms;
    pf_sink_close(c.sink);
    pf_spool_close(c.spool); /* before the lock goes: the next run may open it */
    c.spool = NULL;
    pf_http_client_free(c.http);
    pf_state_free(&c.state);
    if (lockfd >= 0) stats->lock_until_ms = pf_time_now_ms();
    pf_state_unlock(lockfd);
    pf_keyledger_free(c.ledger);
    pf_sx_free(c.sx);
    pf_buf_free(&c.idbuf);
    free(c.gap_json);
    free(c.streams);
    free(c.identities);
    return st;
}

/* ---- planning ------------------------------------------------------------ */

pf_status pf_engine_plan(pf_flow *f, pf_plan *out, pf_error *err)
{
    memset(out, 0, sizeof *out);
    const pf_template *t = f->tmpl;
    pf_run_opts o;
    pf_run_opts_default(&o);
    o.test = 1; /* planning never reports a gap or writes anything */
    pf_run_stats stats;
    memset(&stats, 0, sizeof stats);
    run_ctx c = {0};
    c.f = f;
    c.o = &o;
    c.stats = &stats;
    pf_status st = pf_state_load_for(f->state_path, f->name, &c.state, err);
    if (st != PF_OK) return st;
    out->windowed = t->paging == PF_PAGING_TIME_WINDOW && !f->local_file;
    long long per_unit_max = t->pages.kind ? f->max_pages : 1;
    if (out->windowed) {
        if (!t->pages.kind && f->lookback_ms > 0 && c.state.has_cursor && !c.state.page_kind)
            c.lookback_ms = f->lookback_ms;
        int64_t now = pf_time_now_ms();
        pf_window_range r;
        if ((st = plan_range(&c, now, &r, err)) != PF_OK) goto out;
        out->start_ms = r.start_ms;
        out->end_ms = r.end_ms;
        out->from_checkpoint = c.state.has_cursor;
        out->lookback_ms = c.lookback_ms;
        pf_window w;
        for (int64_t from = r.start_ms; pf_window_next(&t->window, &r, from, &w); from = w.end_ms) {
            if (w.start_ms < c.late_until_ms && w.end_ms > c.late_until_ms)
                w.end_ms = c.late_until_ms;
            if (w.end_ms <= c.late_until_ms && w.end_ms - w.start_ms < t->window.min_ms)
                continue; /* skipped by the run too */
            out->windows++;
        }
        out->calls_min = out->windows;
        out->calls_max = out->windows * per_unit_max;
    } else {
        out->calls_min = f->local_file ? 0 : 1;
        out->calls_max = f->local_file ? 0 : per_unit_max;
    }
    if (out->calls_max > f->max_pages) {
        out->calls_max = f->max_pages;
        out->capped = 1;
    }
    if (out->calls_min > out->calls_max) out->calls_min = out->calls_max;
    if (t->quota_pool && !f->local_file) {
        char path[4200], key[PF_QUOTA_KEY_SIZE];
        if (pf_quota_path(f->state_path, path, sizeof path) != 0) {
            st = pf_error_set(err, PF_ECONFIG, "state.path is too long");
            goto out;
        }
        pf_quota_key(t->quota_pool, f->principal, key);
        out->quota_pool = t->quota_pool;
        out->quota_budget = t->quota_budget;
        st = pf_quota_usage(path, key, pf_time_now_ms(), (long)t->quota_budget, &out->quota_used,
                            &out->quota_next_free_ms, err);
    }
out:
    free(c.gap_json);
    pf_state_free(&c.state);
    return st;
}
