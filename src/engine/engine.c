/* engine.c: the run loop: plan, fetch, extract, deliver, checkpoint. */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "engine/request.h"
#include "engine/window.h"
#include "http/http.h"
#include "state/state.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

#define SINK_CHUNK 5000
#define DEFAULT_LOOKBACK_MS 3600000

void pf_run_opts_default(pf_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->limit = -1;
    o->out = stdout;
    o->sink_attempts = 5;
    o->sink_backoff_ms = 1000;
}

typedef struct run_ctx {
    pf_flow *f;
    const pf_run_opts *o;
    pf_run_stats *stats;
    pf_http_client *http;
    pf_sink *sink;
    pf_state state;
    const char **streams;
} run_ctx;

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
    if (interval) end = iend;
    else if (until && pf_time_parse(until, &end, err) != PF_OK) return PF_ECONFIG;
    if (c->state.has_cursor) {
        start = c->state.cursor_ms;
    } else if (since_time) {
        if (pf_time_parse(since_time, &start, err) != PF_OK) return PF_ECONFIG;
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

/* ---- fetching ---------------------------------------------------------- */

static pf_status fetch(run_ctx *c, const pf_window *w, pf_buf *body, pf_error *err)
{
    pf_flow *f = c->f;
    c->stats->requests++;
    if (f->local_file) {
        char *text = NULL;
        size_t len = 0;
        pf_status st = pf_read_file(f->local_file, f->http.max_body, &text, &len, err);
        if (st != PF_OK) return st;
        pf_buf_reset(body);
        st = pf_buf_append(body, text, len);
        free(text);
        c->stats->bytes += (long long)len;
        return st == PF_OK ? PF_OK : pf_error_set(err, st, "cannot buffer %s", f->local_file);
    }
    pf_request req = {0};
    pf_status st = pf_request_build(f, w, &req, err);
    if (st != PF_OK) {
        pf_request_free(&req);
        return st;
    }
    pf_http_request hr = {0};
    hr.method = req.method;
    hr.url = pf_buf_str(&req.url);
    hr.headers = (const char *const *)req.headers;
    hr.basic_user = req.user;
    hr.basic_pass = req.pass;
    pf_http_response resp;
    pf_http_response_init(&resp);
    char logurl[512];
    pf_http_url_for_log(hr.url, logurl, sizeof logurl);
    pf_log_debug("GET %s", logurl);
    st = pf_http_fetch(c->http, &hr, NULL, NULL, &resp, err);
    if (st == PF_OK) {
        pf_buf_reset(body);
        if (pf_buf_append(body, resp.body.data ? resp.body.data : "", resp.body.len) != PF_OK)
            st = pf_error_set(err, PF_ENOMEM, "out of memory buffering a response");
        c->stats->bytes += (long long)resp.body.len;
    }
    pf_http_response_free(&resp);
    pf_request_free(&req);
    return st;
}

/* ---- delivery ---------------------------------------------------------- */

static pf_status save_state(run_ctx *c, pf_error *err)
{
    return pf_state_save(c->f->state_path, &c->state, c->f->name, err);
}

static pf_status open_sink(run_ctx *c, pf_error *err)
{
    const char *resume = NULL;
    const char *type = c->f->sink.desc->name;
    if (c->state.sink_token) {
        if (c->state.sink_type && strcmp(c->state.sink_type, type) == 0)
            resume = c->state.sink_token;
        else
            pf_log_warn("the checkpoint's sink state belongs to sink %s, not %s; ignoring it",
                        c->state.sink_type ? c->state.sink_type : "?", type);
    }
    return pf_sink_open(&c->f->sink, c->streams, c->f->tmpl->nstreams, resume, &c->sink, err);
}

/* Commits the sink and records its token in the in-memory state. */
static pf_sink_result commit(run_ctx *c, pf_error *err)
{
    const char *token = NULL;
    pf_sink_result r = pf_sink_commit(c->sink, &token, err);
    if (r != PF_SINK_OK) return r;
    if (pf_state_set_str(&c->state.sink_token, token) != PF_OK ||
        pf_state_set_str(&c->state.sink_type, c->f->sink.desc->name) != PF_OK) {
        pf_error_set(err, PF_ENOMEM, "out of memory");
        return PF_SINK_RETRY;
    }
    return PF_SINK_OK;
}

/* Writes RECS and commits, retrying (from the last durable point) while the
 * sink answers RETRY. */
static pf_status deliver(run_ctx *c, const pf_records *recs, pf_error *err)
{
    int attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
    int64_t delay = c->o->sink_backoff_ms;
    for (int attempt = 1;; attempt++) {
        pf_sink_result r = PF_SINK_OK;
        for (size_t i = 0; i < recs->count && r == PF_SINK_OK; i += SINK_CHUNK) {
            size_t n = recs->count - i < SINK_CHUNK ? recs->count - i : SINK_CHUNK;
            r = pf_sink_write(c->sink, recs->recs + i, n, err);
        }
        if (r == PF_SINK_OK) r = commit(c, err);
        if (r == PF_SINK_OK) return PF_OK;
        if (r == PF_SINK_ERROR || attempt >= attempts) return err ? err->code : PF_ESINK;
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(err, msg, sizeof msg);
        pf_log_warn("%s; retrying in %.1f s (attempt %d/%d)", msg, (double)delay / 1000,
                    attempt + 1, attempts);
        if (pf_http_sleep_ms((long)delay) != PF_OK)
            return pf_error_set(err, PF_EINTERRUPTED, "interrupted while waiting to retry the sink");
        delay *= 2;
        /* Reopen from the last durable point: the sink discards the partial batch. */
        pf_sink_close(c->sink);
        c->sink = NULL;
        pf_error oe;
        pf_error_clear(&oe);
        while (open_sink(c, &oe) != PF_OK) {
            if (!oe.retriable || ++attempt >= attempts) {
                if (err) *err = oe;
                return oe.code;
            }
            if (pf_http_sleep_ms((long)delay) != PF_OK)
                return pf_error_set(err, PF_EINTERRUPTED, "interrupted");
            delay *= 2;
        }
    }
}

/* ---- test mode --------------------------------------------------------- */

static void print_records(run_ctx *c, const pf_records *recs)
{
    for (size_t i = 0; i < recs->count; i++) {
        if (c->o->limit >= 0 && c->stats->records >= c->o->limit) break;
        fwrite(recs->recs[i].json, 1, recs->recs[i].json_len, c->o->out);
        fputc('\n', c->o->out);
        c->stats->records++;
    }
    fflush(c->o->out);
}

/* ---- one unit of work ---------------------------------------------------- */

static pf_status do_unit(run_ctx *c, const pf_window *w, pf_buf *body, pf_error *err)
{
    pf_status st = fetch(c, w, body, err);
    if (st != PF_OK) return st;
    pf_records recs = {0};
    st = pf_extract_records(c->f->tmpl, body->data ? body->data : "", body->len, &recs, err);
    if (st != PF_OK) {
        char where[96] = "";
        if (w) {
            char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
            pf_time_format(w->start_ms, a);
            pf_time_format(w->end_ms, b);
            snprintf(where, sizeof where, " for window %s/%s", a, b);
        }
        pf_error_prefix(err, "response%s", where);
        return st;
    }
    if (recs.missing_keys)
        pf_log_warn("%zu records have no value at their key path", recs.missing_keys);
    if (c->o->test) {
        print_records(c, &recs);
        c->stats->windows++;
        pf_records_free(&recs);
        return PF_OK;
    }
    st = deliver(c, &recs, err);
    if (st == PF_OK) {
        if (w) {
            c->state.has_cursor = 1;
            c->state.cursor_ms = w->end_ms;
        }
        c->stats->records += (long long)recs.count;
        c->stats->windows++;
        c->state.run_records = c->stats->records;
        c->state.run_windows = c->stats->windows;
        st = save_state(c, err);
        if (w && st == PF_OK) {
            char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
            pf_time_format(w->start_ms, a);
            pf_time_format(w->end_ms, b);
            pf_log_info("window %s/%s: %zu records", a, b, recs.count);
        }
    }
    pf_records_free(&recs);
    return st;
}

static pf_status run_units(run_ctx *c, pf_error *err)
{
    pf_flow *f = c->f;
    pf_buf body;
    pf_buf_init(&body, f->http.max_body);
    pf_status st = PF_OK;
    int windowed = f->tmpl->paging == PF_PAGING_TIME_WINDOW && !f->local_file;
    if (!windowed) {
        st = do_unit(c, NULL, &body, err);
        pf_buf_free(&body);
        return st;
    }
    int64_t now = pf_time_now_ms();
    pf_window_range r;
    st = plan_range(c, now, &r, err);
    if (st != PF_OK) goto out;
    c->stats->range_start_ms = r.start_ms;
    c->stats->range_end_ms = r.end_ms;
    c->stats->clamped = r.clamped;
    c->stats->planned = (long long)pf_window_count(&f->tmpl->window, &r);
    pf_window w;
    if (c->o->test) {
        if (!pf_window_next(&f->tmpl->window, &r, r.start_ms, &w)) {
            /* Nothing new yet: show the latest shortest window instead. */
            w.end_ms = r.end_ms > r.start_ms ? r.end_ms : now;
            w.start_ms = w.end_ms - (f->tmpl->window.min_ms > 0 ? f->tmpl->window.min_ms : 60000);
        }
        st = do_unit(c, &w, &body, err);
        goto out;
    }
    if (c->stats->planned == 0) {
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        pf_time_format(r.start_ms, a);
        pf_time_format(r.end_ms, b);
        if (r.end_ms < now && r.end_ms - r.start_ms < f->tmpl->window.min_ms &&
            (pf_flow_param_str(f, "until") || pf_flow_param_str(f, "interval")))
            pf_log_info("nothing to fetch: the range ends at %s and the checkpoint is at %s", b,
                        a);
        else
            pf_log_info("nothing to fetch yet: less than the API's shortest window has passed "
                        "since %s; the next run continues from there",
                        a);
    }
    for (int64_t from = r.start_ms; pf_window_next(&f->tmpl->window, &r, from, &w);
         from = w.end_ms) {
        if (pf_http_cancel_requested()) {
            st = pf_error_set(err, PF_EINTERRUPTED, "stopped by a signal; the checkpoint is at "
                                                    "the last delivered window");
            break;
        }
        st = do_unit(c, &w, &body, err);
        if (st != PF_OK) break;
    }
out:
    pf_buf_free(&body);
    return st;
}

/* ---- entry ------------------------------------------------------------- */

static pf_status make_http(run_ctx *c, pf_error *err)
{
    pf_flow_http *h = &c->f->http;
    pf_http_opts o;
    pf_http_opts_default(&o);
    o.connect_timeout_ms = (long)h->connect_timeout_ms;
    o.timeout_ms = (long)h->timeout_ms;
    o.low_speed_time_s = (long)(h->low_speed_time_ms / 1000);
    o.max_body = (size_t)h->max_body;
    o.max_attempts = (int)h->max_attempts;
    o.backoff_base_ms = (long)h->backoff_ms;
    o.backoff_max_ms = (long)h->backoff_max_ms;
    o.retry_after_max_ms = (long)h->retry_after_max_ms;
    o.verify_tls = h->verify_tls;
    o.ca_file = h->ca_file;
    o.client_cert = h->client_cert;
    o.client_key = h->client_key;
    return pf_http_client_new(&o, &c->http, err);
}

pf_status pf_engine_run(pf_flow *f, const pf_run_opts *o, pf_run_stats *stats, pf_error *err)
{
    memset(stats, 0, sizeof *stats);
    run_ctx c = {0};
    c.f = f;
    c.o = o;
    c.stats = stats;
    int lockfd = -1;
    pf_status st = PF_OK;
    pf_log_set_flow(f->name);
    c.streams = calloc(f->tmpl->nstreams, sizeof *c.streams);
    if (!c.streams) return pf_error_set(err, PF_ENOMEM, "out of memory");
    for (size_t i = 0; i < f->tmpl->nstreams; i++) c.streams[i] = f->tmpl->streams[i].name;

    if (!o->test && (lockfd = pf_state_lock(f->state_path, err)) < 0) {
        st = err ? err->code : PF_ESTATE;
        goto done;
    }
    if ((st = pf_state_load(f->state_path, &c.state, err)) != PF_OK) goto done;
    if (c.state.template_name && strcmp(c.state.template_name, f->tmpl->name) != 0) {
        st = pf_error_set(err, PF_ESTATE,
                          "checkpoint %s belongs to template %s, not %s; give this flow its own "
                          "state.path",
                          f->state_path, c.state.template_name, f->tmpl->name);
        goto done;
    }
    if (!f->local_file && (st = make_http(&c, err)) != PF_OK) goto done;
    if (!o->test) {
        if ((st = open_sink(&c, err)) != PF_OK) goto done;
        /* Record the sink's starting point before anything is written, so a
         * crash in the first window can be undone too. */
        if (commit(&c, err) != PF_SINK_OK) {
            st = err ? err->code : PF_ESINK;
            goto done;
        }
        pf_state_set_str(&c.state.template_name, f->tmpl->name);
        c.state.run_started_ms = pf_time_real_ms();
        c.state.run_ended_ms = 0;
        c.state.run_records = c.state.run_windows = 0;
        pf_state_set_str(&c.state.run_outcome, "running");
        pf_state_set_str(&c.state.run_error, NULL);
        if ((st = save_state(&c, err)) != PF_OK) goto done;
    }
    st = run_units(&c, err);
    if (!o->test) {
        char msg[PF_ERROR_MSG_MAX + 300], clean[sizeof msg];
        if (st != PF_OK) {
            pf_error_format(err, msg, sizeof msg);
            pf_log_redact(msg, clean, sizeof clean);
        }
        pf_state_set_str(&c.state.run_outcome, st == PF_OK ? "ok"
                                                : st == PF_EINTERRUPTED ? "interrupted"
                                                                       : "failed");
        pf_state_set_str(&c.state.run_error, st == PF_OK ? NULL : clean);
        c.state.run_ended_ms = pf_time_real_ms();
        pf_error se;
        pf_error_clear(&se);
        if (save_state(&c, &se) != PF_OK && st == PF_OK) {
            if (err) *err = se;
            st = se.code;
        }
    }
done:
    stats->has_cursor = c.state.has_cursor;
    stats->cursor_ms = c.state.cursor_ms;
    pf_sink_close(c.sink);
    pf_http_client_free(c.http);
    pf_state_free(&c.state);
    pf_state_unlock(lockfd);
    free(c.streams);
    return st;
}
