/* engine.c: the run loop: plan, fetch, extract, deliver, checkpoint. */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/extract.h"
#include "engine/keyledger.h"
#include "engine/paging.h"
#include "engine/quota.h"
#include "engine/request.h"
#include "engine/stream_extract.h"
#include "engine/window.h"
#include "http/http.h"
#include "proofpoint/syslog.h"
#include "state/state.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/progress.h"
#include "util/timeutil.h"

/* Records go to the sink in batches of at most this many records, and a
 * streamed unit's batches hold about this many bytes at most (the flow's
 * sink.batch_records and sink.batch_bytes change them). */
#define SINK_CHUNK 5000
#define STREAM_BATCH_BYTES ((size_t)4 << 20)
/* The stream that gap records (ranges the API no longer holds) go to. */
#define GAP_STREAM "gaps"
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
    /* The cursor the unit being delivered will set once durable; offered to
     * checkpoint-storing sinks with the unit's final commit. */
    int pend_set;
    int64_t pend_cursor_ms;
    /* Late arrivals: records delivered in the last look-back, and the cursor
     * the run started from (windows before it are re-sweeps). */
    size_t nstreams;
    pf_keyledger *ledger;
    int64_t lookback_ms;
    int64_t late_until_ms;
    /* A gap found when planning, delivered with the first window. */
    char *gap_json;
    char gap_key[128];
    pf_progress progress;
    /* Streaming extraction (JSON responses of templates whose record paths
     * allow it): records arrive while the body does, into sx_out, and no
     * body or document tree is held. */
    pf_sx *sx;
    pf_records *sx_out;
    long long sx_bytes;
    /* Direct delivery: the unit being streamed into the sink (NULL when
     * records are collected into sx_out instead). */
    struct unit_stream *us;
    /* The template's call budget: ledger file and key ("" when none). */
    char quota_path[4200];
    char quota_key[PF_QUOTA_KEY_SIZE];
    int quota_warned;
    size_t batch_records, batch_bytes; /* see SINK_CHUNK */
    /* The checkpoint as it stood before the unit being completed (owned
     * while complete_unit runs): restored when the unit fails, and what the
     * partial commits of a split batch offer a checkpoint-storing sink
     * (SET while delivering), so that a crash between them never stores the
     * unit's page position or ledger with only part of its records. */
    struct {
        int set;
        char *page_kind, *page_token, *ledger;
        long long page_number;
        int64_t page_window_end_ms;
        int has_cursor;
        int64_t cursor_ms;
    } before;
} run_ctx;

/* ---- call budgets ------------------------------------------------------- */

/* Refuses the next call when the template's 24-hour budget is used up. */
static pf_status quota_check(run_ctx *c, pf_error *err)
{
    const pf_template *t = c->f->tmpl;
    if (!c->quota_path[0]) return PF_OK;
    long used = 0;
    int64_t next = 0, now = pf_time_now_ms();
    pf_status st =
        pf_quota_usage(c->quota_path, c->quota_key, now, (long)t->quota_budget, &used, &next, err);
    if (st != PF_OK) return st;
    if (used >= t->quota_budget) {
        char at[PF_TIME_FMT_SIZE];
        pf_time_format(next, at);
        return pf_error_set(err, PF_ETOOBIG,
                            "the call budget '%s' is used up: %ld calls in the last 24 hours, "
                            "%lld allowed per credential; the next call is possible at %s. "
                            "Everything fetched so far is delivered and the next run continues "
                            "from the checkpoint",
                            t->quota_pool, used, (long long)t->quota_budget, at);
    }
    if (!c->quota_warned && used + 1 >= t->quota_budget * 9 / 10) {
        c->quota_warned = 1;
        pf_log_warn("the call budget '%s' is nearly used up: %ld of %lld calls in the last 24 "
                    "hours (see `ppflow plan`)",
                    t->quota_pool, used + 1, (long long)t->quota_budget);
    }
    return PF_OK;
}

/* Counts N calls (every attempt of a request reaches the API). */
static void quota_record(run_ctx *c, int n)
{
    if (!c->quota_path[0] || n <= 0) return;
    if (c->o->test) {
        /* `ppflow test` creates nothing: its calls are counted only in a
         * ledger directory that already exists. */
        char dir[sizeof c->quota_path];
        snprintf(dir, sizeof dir, "%s", c->quota_path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        struct stat sb;
        if (stat(slash ? dir : ".", &sb) != 0) return;
    }
    pf_error e;
    pf_error_clear(&e);
    if (pf_quota_record(c->quota_path, c->quota_key, pf_time_now_ms(), n, &e) != PF_OK)
        pf_log_warn("%s", e.msg);
}

/* ---- streaming extraction ----------------------------------------------- */

/* pf_sx callback: keeps a copy of the record in the unit's records (the
 * stream name is the template's, which outlives the run). */
static pf_status us_record(run_ctx *c, const pf_sink_record *rec, pf_error *err);
static pf_status us_restart(run_ctx *c);

static pf_status sx_record(void *ud, const pf_sink_record *rec, pf_error *err)
{
    run_ctx *c = ud;
    if (c->us) return us_record(c, rec, err);
    return pf_records_push_copy(c->sx_out, rec, err);
}

/* pf_http_body_fn: feeds the extractor; a retry restarts the body. */
static pf_status sx_body(void *ud, const char *p, size_t n)
{
    run_ctx *c = ud;
    if (!p && n == 0) {
        pf_sx_reset(c->sx);
        c->sx_bytes = 0;
        if (c->us) return us_restart(c);
        pf_records_free(c->sx_out);
        return PF_OK;
    }
    c->sx_bytes += (long long)n;
    pf_error e;
    pf_error_clear(&e);
    return pf_sx_feed(c->sx, p, n, &e);
}

/* Streams the saved response FILE through the extractor. */
static pf_status sx_file(run_ctx *c, const char *file, pf_error *err)
{
    FILE *fp = fopen(file, "rb");
    if (!fp) return pf_error_set(err, PF_ENOTFOUND, "cannot open %s: %s", file, strerror(errno));
    char buf[64 * 1024];
    size_t n;
    pf_status st = PF_OK;
    while (st == PF_OK && (n = fread(buf, 1, sizeof buf, fp)) > 0) {
        c->sx_bytes += (long long)n;
        st = pf_sx_feed(c->sx, buf, n, err);
    }
    if (st == PF_OK && ferror(fp)) st = pf_error_set(err, PF_EIO, "cannot read %s", file);
    fclose(fp);
    return st;
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
    if (c->state.has_cursor) {
        start = c->state.cursor_ms - c->lookback_ms;
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
                     "can no longer be fetched. A gap record goes to stream '" GAP_STREAM
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

/* ---- fetching ---------------------------------------------------------- */

/* Fetches page PG (NULL: the unit has no pages) of window W (NULL: none)
 * into BODY. *NO_DATA is set when the server answered one of the
 * template's "no data" statuses (e.g. 404 past the last page); BODY is then
 * empty. URL receives the request's URL (a relative next link is resolved
 * against it). */
static pf_status fetch(run_ctx *c, const pf_window *w, const pf_pager *pg, pf_buf *body,
                       int *no_data, pf_buf *url, pf_error *err)
{
    pf_flow *f = c->f;
    *no_data = 0;
    c->stats->requests++;
    /* Records go through the extractor as the body arrives. */
    int sx_on = c->sx_out || c->us;
    if (f->local_file && sx_on) {
        pf_sx_reset(c->sx);
        c->sx_bytes = 0;
        pf_status st = sx_file(c, f->local_file, err);
        if (st == PF_OK) st = pf_sx_finish(c->sx, err);
        c->stats->bytes += c->sx_bytes;
        return st;
    }
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
    if (st == PF_OK && pg) st = pf_pager_apply(pg, f, &req, err);
    if (st != PF_OK) {
        pf_request_free(&req);
        return st;
    }
    if ((st = quota_check(c, err)) != PF_OK) {
        pf_request_free(&req);
        return st;
    }
    pf_http_request hr = {0};
    hr.method = req.method;
    hr.url = pf_buf_str(&req.url);
    hr.headers = (const char *const *)req.headers;
    hr.basic_user = req.user;
    hr.basic_pass = req.pass;
    hr.body = req.body;
    hr.body_len = req.body_len;
    pf_http_response resp;
    pf_http_response_init(&resp);
    char logurl[512];
    pf_http_url_for_log(hr.url, logurl, sizeof logurl);
    pf_log_debug("%s %s", hr.method ? hr.method : "GET", logurl);
    pf_buf_reset(url);
    if (pf_buf_puts(url, hr.url) != PF_OK) {
        pf_http_response_free(&resp);
        pf_request_free(&req);
        return pf_error_set(err, PF_ENOMEM, "out of memory");
    }
    if (sx_on) {
        pf_sx_reset(c->sx);
        c->sx_bytes = 0;
        st = pf_http_fetch(c->http, &hr, sx_body, c, &resp, err);
        if (st == PF_OK)
            st = pf_sx_finish(c->sx, err);
        else if (st != PF_EHTTP) {
            /* The extractor's own error (the callback's message is generic). */
            pf_error se;
            pf_error_clear(&se);
            if (pf_sx_finish(c->sx, &se) != PF_OK && se.code == st && err) *err = se;
        }
        c->stats->bytes += c->sx_bytes;
    } else {
        st = pf_http_fetch(c->http, &hr, NULL, NULL, &resp, err);
    }
    quota_record(c, resp.attempts > 0 ? resp.attempts : 1);
    if (resp.attempts > 1) c->stats->retries += resp.attempts - 1;
    if (st == PF_EHTTP) {
        for (size_t i = 0; i < f->tmpl->nno_data_status; i++) {
            if (resp.status != f->tmpl->no_data_status[i]) continue;
            /* The API's way of saying "nothing (more) here". */
            pf_log_debug("HTTP %ld from %s: no records here", resp.status, logurl);
            pf_error_clear(err);
            pf_buf_reset(body);
            *no_data = 1;
            st = PF_OK;
            break;
        }
    } else if (st == PF_OK && !sx_on) {
        pf_buf_reset(body);
        if (pf_buf_append(body, resp.body.data ? resp.body.data : "", resp.body.len) != PF_OK)
            st = pf_error_set(err, PF_ENOMEM, "out of memory buffering a response");
    }
    if (!sx_on) c->stats->bytes += (long long)resp.body.len;
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
    return pf_sink_open(&c->f->sink, c->streams, NULL, c->nstreams, resume, &c->sink, err);
}

/* Commits the sink and records its token in the in-memory state. FINAL:
 * this commit completes the unit, so the checkpoint offered to a
 * checkpoint-storing sink carries the unit's pending cursor. */
static pf_sink_result commit_ex(run_ctx *c, int final, pf_error *err)
{
    const char *token = NULL;
    char *cp = NULL;
    if (pf_sink_stores_checkpoint(c->sink)) {
        pf_state next = c->state; /* shallow: only serialised */
        next.seq++;
        if (final && c->pend_set) {
            next.has_cursor = 1;
            next.cursor_ms = c->pend_cursor_ms;
        } else if (!final && c->before.set) {
            next.page_kind = c->before.page_kind;
            next.page_token = c->before.page_token;
            next.page_number = c->before.page_number;
            next.page_window_end_ms = c->before.page_window_end_ms;
            next.has_cursor = c->before.has_cursor;
            next.cursor_ms = c->before.cursor_ms;
            next.ledger = c->before.ledger;
        }
        if (pf_state_to_json(&next, c->f->name, 0, &cp, err) != PF_OK) return PF_SINK_RETRY;
    }
    pf_sink_result r = pf_sink_commit(c->sink, cp, &token, err);
    free(cp);
    if (r != PF_SINK_OK) return r;
    c->state.seq++;
    if (pf_state_set_str(&c->state.sink_token, token) != PF_OK ||
        pf_state_set_str(&c->state.sink_type, c->f->sink.desc->name) != PF_OK) {
        pf_error_set(err, PF_ENOMEM, "out of memory");
        return PF_SINK_RETRY;
    }
    return PF_SINK_OK;
}

/* After open: a sink that stores checkpoints with its commits may be one
 * commit ahead of the checkpoint file (a crash between the two); its
 * checkpoint wins then. Returns 1 when the sink's checkpoint is newer. */
static int adopt_stored_checkpoint(run_ctx *c, pf_error *err, pf_status *st)
{
    *st = PF_OK;
    const char *text = NULL;
    if (pf_sink_stored_checkpoint(c->sink, &text, err) != PF_SINK_OK) {
        *st = err ? err->code : PF_ESINK;
        return 0;
    }
    if (!text) return 0;
    pf_state s = {0};
    char label[160];
    snprintf(label, sizeof label, "(the checkpoint stored by sink %s)", c->f->sink.desc->name);
    if ((*st = pf_state_parse(text, strlen(text), label, &s, err)) != PF_OK) return 0;
    if (s.seq <= c->state.seq) {
        pf_state_free(&s);
        return 0;
    }
    pf_log_info("sink %s holds a newer checkpoint (commit %lld) than %s (commit %lld); "
                "continuing from the sink's",
                c->f->sink.desc->name, s.seq, c->f->state_path, c->state.seq);
    c->state.seq = s.seq;
    c->state.has_cursor = s.has_cursor;
    c->state.cursor_ms = s.cursor_ms;
    pf_status a = pf_state_set_str(&c->state.template_name, s.template_name);
    if (a == PF_OK && s.sink_token) a = pf_state_set_str(&c->state.sink_token, s.sink_token);
    /* The page position inside the unit, so a paged unit resumes at its
     * next page too. */
    if (a == PF_OK) a = pf_state_set_str(&c->state.page_kind, s.page_kind);
    if (a == PF_OK) a = pf_state_set_str(&c->state.page_token, s.page_token);
    if (a == PF_OK) a = pf_state_set_str(&c->state.ledger, s.ledger);
    c->state.page_number = s.page_number;
    c->state.page_window_end_ms = s.page_window_end_ms;
    pf_state_free(&s);
    if (a != PF_OK) *st = pf_error_set(err, PF_ENOMEM, "out of memory");
    return 1;
}

/* Closes the sink and opens it again from the last durable point, which
 * discards whatever was written since. Retries while the open is transient. */
static pf_status reopen_sink(run_ctx *c, int64_t *delay, int *attempt, int attempts, pf_error *err)
{
    pf_sink_close(c->sink);
    c->sink = NULL;
    pf_error oe;
    pf_error_clear(&oe);
    while (open_sink(c, &oe) != PF_OK) {
        if (!oe.retriable || ++*attempt >= attempts) {
            if (err) *err = oe;
            return oe.code;
        }
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(&oe, msg, sizeof msg);
        pf_log_warn("%s; retrying in %.1f s (attempt %d/%d)", msg, (double)*delay / 1000, *attempt,
                    attempts);
        if (pf_http_sleep_ms((long)*delay) != PF_OK)
            return pf_error_set(err, PF_EINTERRUPTED, "interrupted");
        *delay *= 2;
    }
    return PF_OK;
}

/* Writes N records and commits, retrying (from the last durable point) while
 * the sink answers RETRY. *FATAL is set when the sink answered ERROR (the
 * sink is then reopened, so nothing of this batch remains in it). */
static pf_status write_commit(run_ctx *c, const pf_sink_record *recs, size_t count, int final,
                              int *fatal, pf_error *err)
{
    int attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
    int64_t delay = c->o->sink_backoff_ms;
    *fatal = 0;
    for (int attempt = 1;; attempt++) {
        pf_sink_result r = PF_SINK_OK;
        long long seq_before = c->state.seq;
        for (size_t i = 0; i < count && r == PF_SINK_OK; i += c->batch_records) {
            size_t n = count - i < c->batch_records ? count - i : c->batch_records;
            r = pf_sink_write(c->sink, recs + i, n, err);
        }
        if (r == PF_SINK_OK) r = commit_ex(c, final, err);
        if (r == PF_SINK_OK) return PF_OK;
        if (r == PF_SINK_ERROR) {
            *fatal = 1;
            int a = 0;
            pf_error re;
            pf_error_clear(&re);
            if (reopen_sink(c, &delay, &a, attempts, &re) != PF_OK) {
                if (err) *err = re;
                *fatal = 0;
                return re.code;
            }
            return err ? err->code : PF_ESINK;
        }
        if (attempt >= attempts) return err ? err->code : PF_ESINK;
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(err, msg, sizeof msg);
        pf_log_warn("%s; retrying in %.1f s (attempt %d/%d)", msg, (double)delay / 1000,
                    attempt + 1, attempts);
        if (pf_http_sleep_ms((long)delay) != PF_OK)
            return pf_error_set(err, PF_EINTERRUPTED,
                                "interrupted while waiting to retry the sink");
        delay *= 2;
        pf_status st = reopen_sink(c, &delay, &attempt, attempts, err);
        if (st != PF_OK) return st;
        /* A commit whose answer was lost may have happened after all: a sink
         * that stores checkpoints tells. */
        pf_status ast = PF_OK;
        if (c->state.seq == seq_before && adopt_stored_checkpoint(c, err, &ast) &&
            c->state.seq == seq_before + 1) {
            pf_log_info("the sink had committed the batch before the error; not sending it again");
            return PF_OK;
        }
        if (ast != PF_OK) return ast;
    }
}

/* Appends REC to the flow's dead-letter file with REASON (redacted). */
static pf_status dead_letter(run_ctx *c, const pf_sink_record *rec, const char *reason,
                             pf_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.deadletter.ndjson", c->f->state_path);
    char clean[PF_ERROR_MSG_MAX + 64];
    pf_log_redact(reason, clean, sizeof clean);
    json_object *o = json_object_new_object();
    if (!o) return pf_error_set(err, PF_ENOMEM, "out of memory");
    char now[PF_TIME_FMT_SIZE];
    pf_time_format(pf_time_real_ms(), now);
    json_object_object_add(o, "time", json_object_new_string(now));
    json_object_object_add(o, "flow", json_object_new_string(c->f->name));
    json_object_object_add(o, "stream", json_object_new_string(rec->stream ? rec->stream : ""));
    json_object_object_add(
        o, "key", rec->key ? json_object_new_string_len(rec->key, (int)rec->key_len) : NULL);
    json_object_object_add(o, "reason", json_object_new_string(clean));
    const char *head =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    /* The record goes in as its own JSON text, unchanged: {...,"record":<rec>} */
    pf_status st = PF_OK;
    size_t hl = head ? strlen(head) : 0;
    FILE *fp = NULL;
    int fd = -1;
    if (!head || hl < 2) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
        goto out;
    }
    if (pf_mkdirs_for(path, err) != PF_OK) {
        st = PF_EIO;
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || !(fp = fdopen(fd, "a"))) {
        st =
            pf_error_set(err, PF_EIO, "cannot open dead-letter file %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        goto out;
    }
    fwrite(head, 1, hl - 1, fp);
    fputs(",\"record\":", fp);
    fwrite(rec->json, 1, rec->json_len, fp);
    fputs("}\n", fp);
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        st = pf_error_set(err, PF_EIO, "cannot write dead-letter file %s: %s", path,
                          strerror(errno));
    if (fclose(fp) != 0 && st == PF_OK)
        st = pf_error_set(err, PF_EIO, "cannot write dead-letter file %s", path);
out:
    json_object_put(o);
    return st;
}

/* Delivers RECS as one durable batch. When the sink answers ERROR (a batch
 * that can never succeed), the batch is split in halves until the records
 * at fault are isolated: each of those goes to the dead-letter file with
 * the sink's reason, everything else is delivered, and a final commit
 * carries the unit's checkpoint. Nothing is dropped silently. */
static pf_status deliver(run_ctx *c, const pf_records *recs, pf_error *err)
{
    int fatal = 0;
    pf_status st = write_commit(c, recs->recs, recs->count, 1, &fatal, err);
    if (st == PF_OK || !fatal) return st;
    char first[PF_ERROR_MSG_MAX];
    pf_error_format(err, first, sizeof first);
    pf_log_warn("%s; isolating the records the sink refuses", first);
    size_t lo[130], hi[130], top = 0;
    /* Halves are pushed right first, so ranges are delivered in order; the
     * depth is bounded by log2(count) + 1 entries per level. */
    lo[top] = 0;
    hi[top++] = recs->count;
    while (top) {
        top--;
        size_t a = lo[top], b = hi[top];
        if (a >= b) continue;
        pf_error e;
        pf_error_clear(&e);
        st = write_commit(c, recs->recs + a, b - a, 0, &fatal, &e);
        if (st == PF_OK) continue;
        if (!fatal) {
            if (err) *err = e;
            return st;
        }
        if (b - a == 1) {
            char why[PF_ERROR_MSG_MAX];
            pf_error_format(&e, why, sizeof why);
            if ((st = dead_letter(c, &recs->recs[a], why, err)) != PF_OK) return st;
            c->stats->dead_letters++;
            continue;
        }
        size_t mid = a + (b - a) / 2;
        if (top + 2 > sizeof lo / sizeof lo[0])
            return pf_error_set(err, PF_ESINK, "cannot isolate the records the sink refuses");
        lo[top] = mid;
        hi[top++] = b;
        lo[top] = a;
        hi[top++] = mid;
    }
    pf_log_error("%lld records refused by sink %s so far were written to %s.deadletter.ndjson",
                 c->stats->dead_letters, c->f->sink.desc->name, c->f->state_path);
    /* The commit that completes the unit (and carries its checkpoint). */
    return write_commit(c, NULL, 0, 1, &fatal, err);
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

/* Ledger hashes of the records a unit delivers. */
typedef struct hash_list {
    uint64_t *v;
    size_t n, cap;
} hash_list;

static pf_status hash_push(hash_list *l, uint64_t h, pf_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return pf_error_set(err, PF_ENOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = h;
    return PF_OK;
}

static uint64_t record_hash(const pf_sink_record *r)
{
    return pf_keyledger_hash(r->stream, r->key, r->key_len, r->json, r->json_len);
}

/* Late arrivals: drops from RECS every record the ledger says was already
 * delivered and lists the hashes of the others in OUT. */
static pf_status drop_delivered(run_ctx *c, pf_records *recs, hash_list *out, size_t *dropped,
                                pf_error *err)
{
    *dropped = 0;
    if (!c->ledger) return PF_OK;
    size_t k = 0;
    for (size_t i = 0; i < recs->count; i++) {
        pf_sink_record *r = &recs->recs[i];
        uint64_t h = record_hash(r);
        if (pf_keyledger_contains(c->ledger, h)) {
            free((char *)r->json);
            free((char *)r->key);
            (*dropped)++;
            continue;
        }
        recs->recs[k++] = *r;
        if (hash_push(out, h, err) != PF_OK) {
            /* Keep RECS whole: free what is not compacted yet. */
            for (size_t j = i + 1; j < recs->count; j++) {
                free((char *)recs->recs[j].json);
                free((char *)recs->recs[j].key);
            }
            recs->count = k;
            return PF_ENOMEM;
        }
    }
    recs->count = k;
    return PF_OK;
}

/* Adds the hashes H of the records delivered in window W to the ledger,
 * prunes what fell out of the look-back, and stores it in the checkpoint
 * text. On failure the caller rebuilds the ledger from the checkpoint. */
static pf_status remember_delivered(run_ctx *c, const pf_window *w, const hash_list *h,
                                    int64_t cursor_after, pf_error *err)
{
    if (!c->ledger || !w) return PF_OK;
    for (size_t i = 0; i < h->n; i++) {
        pf_status st = pf_keyledger_add(c->ledger, h->v[i], w->end_ms, err);
        if (st != PF_OK) return st;
    }
    /* A record fetched in a window that ends before cursor - look-back can
     * never be fetched again by a re-sweep. */
    pf_keyledger_prune(c->ledger, cursor_after - c->lookback_ms + 1);
    char *text = NULL;
    pf_status st = pf_keyledger_to_json(c->ledger, &text, err);
    if (st != PF_OK) return st;
    free(c->state.ledger);
    c->state.ledger = text;
    return PF_OK;
}

/* The pending gap record (a copy owned by the caller's records). */
static pf_sink_record gap_record(const run_ctx *c)
{
    return (pf_sink_record){GAP_STREAM, c->gap_key, strlen(c->gap_key), c->gap_json,
                            strlen(c->gap_json)};
}

/* Puts the pending gap record in front of RECS. */
static pf_status add_gap_record(run_ctx *c, pf_records *recs, pf_error *err)
{
    if (!c->gap_json) return PF_OK;
    pf_sink_record g = gap_record(c);
    if (pf_records_push_copy(recs, &g, err) != PF_OK) return PF_ENOMEM;
    pf_sink_record *v = recs->recs;
    g = v[recs->count - 1];
    memmove(v + 1, v, (recs->count - 1) * sizeof *v);
    v[0] = g;
    return PF_OK;
}

/* "window A/B page 3", "window A/B", "page 3" or "" for messages. */
static void describe_unit(const pf_window *w, const pf_pager *pg, char *buf, size_t n)
{
    char a[PF_TIME_FMT_SIZE] = "", b[PF_TIME_FMT_SIZE] = "", page[64] = "";
    if (w) {
        pf_time_format(w->start_ms, a);
        pf_time_format(w->end_ms, b);
    }
    pf_pager_describe(pg, page, sizeof page);
    snprintf(buf, n, "%s%s%s%s%s%s", w ? "window " : "", a, w ? "/" : "", b,
             w && page[0] ? " " : "", page);
}

/* ---- streamed units: records reach the sink while the body arrives ------- */

/* The records of a streamed unit not yet written to the sink, and what the
 * unit has done so far. Memory is bounded by one batch (batch_bytes or
 * batch_records, or one record when that is larger) plus 8 bytes a record
 * for the ledger. */
typedef struct unit_stream {
    pf_buf bytes;         /* json and key bytes of the batch */
    pf_sink_record *recs; /* the batch; json and key are set when it is written */
    size_t *off;          /* two per record: offset of json, then of key */
    size_t count, cap;
    hash_list hashes;      /* records written in this unit (ledger) */
    size_t fetched;        /* records extracted from the response */
    size_t dropped;        /* of those, already delivered (late-arrival ledger) */
    size_t written;        /* records (gap record included) given to the sink */
    pf_sink_result sink_r; /* the sink's answer that stopped the unit; OK: none */
    pf_error sink_err;
} unit_stream;

static void us_clear(unit_stream *u)
{
    pf_buf_reset(&u->bytes);
    u->count = 0;
    u->hashes.n = 0;
    u->fetched = u->dropped = u->written = 0;
}

static void us_free(unit_stream *u)
{
    pf_buf_free(&u->bytes);
    free(u->recs);
    free(u->off);
    free(u->hashes.v);
}

/* Appends a copy of REC to the batch. */
static pf_status us_push(unit_stream *u, const pf_sink_record *rec, pf_error *err)
{
    if (u->count == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 256;
        pf_sink_record *r = realloc(u->recs, cap * sizeof *r);
        if (r) u->recs = r;
        size_t *o = r ? realloc(u->off, 2 * cap * sizeof *o) : NULL;
        if (!o) return pf_error_set(err, PF_ENOMEM, "out of memory");
        u->off = o;
        u->cap = cap;
    }
    size_t j = u->bytes.len;
    if (pf_buf_append(&u->bytes, rec->json, rec->json_len) != PF_OK ||
        (rec->key && pf_buf_append(&u->bytes, rec->key, rec->key_len) != PF_OK))
        return pf_error_set(err, PF_ENOMEM, "out of memory");
    u->off[2 * u->count] = j;
    u->off[2 * u->count + 1] = j + rec->json_len;
    u->recs[u->count] = *rec;
    u->count++;
    return PF_OK;
}

/* Writes the batch to the sink (no commit). On a sink failure, records the
 * sink's answer in U and returns PF_ESINK. */
static pf_status us_flush(run_ctx *c, unit_stream *u, pf_error *err)
{
    if (!u->count) return PF_OK;
    for (size_t i = 0; i < u->count; i++) {
        u->recs[i].json = u->bytes.data + u->off[2 * i];
        if (u->recs[i].key) u->recs[i].key = u->bytes.data + u->off[2 * i + 1];
    }
    pf_error_clear(&u->sink_err);
    pf_sink_result r = pf_sink_write(c->sink, u->recs, u->count, &u->sink_err);
    u->written += u->count;
    u->count = 0;
    pf_buf_reset(&u->bytes);
    pf_progress_update(&c->progress, c->stats->windows, c->stats->records + (long long)u->written,
                       c->stats->bytes + c->sx_bytes, 0);
    if (r == PF_SINK_OK) return PF_OK;
    u->sink_r = r;
    if (err) *err = u->sink_err;
    return PF_ESINK;
}

/* pf_sx callback in direct delivery: drops what the ledger says was
 * delivered, batches the rest and writes full batches. */
static pf_status us_record(run_ctx *c, const pf_sink_record *rec, pf_error *err)
{
    unit_stream *u = c->us;
    u->fetched++;
    if (c->ledger) {
        uint64_t h = record_hash(rec);
        if (pf_keyledger_contains(c->ledger, h)) {
            u->dropped++;
            return PF_OK;
        }
        if (hash_push(&u->hashes, h, err) != PF_OK) return PF_ENOMEM;
    }
    if (us_push(u, rec, err) != PF_OK) return PF_ENOMEM;
    if (u->count >= c->batch_records || u->bytes.len >= c->batch_bytes) return us_flush(c, u, err);
    return PF_OK;
}

/* Starts (or restarts) the unit: the pending gap record goes first. */
static pf_status us_begin(run_ctx *c, pf_error *err)
{
    us_clear(c->us);
    if (!c->gap_json) return PF_OK;
    pf_sink_record g = gap_record(c);
    return us_push(c->us, &g, err);
}

/* An HTTP retry restarts the body: whatever this unit wrote is taken back by
 * reopening the sink from its last durable point. */
static pf_status us_restart(run_ctx *c)
{
    unit_stream *u = c->us;
    pf_error e;
    pf_error_clear(&e);
    if (u->written) {
        int attempt = 1;
        int64_t delay = c->o->sink_backoff_ms;
        if (reopen_sink(c, &delay, &attempt, c->o->sink_attempts > 0 ? c->o->sink_attempts : 1,
                        &u->sink_err) != PF_OK) {
            u->sink_r = PF_SINK_RETRY;
            return PF_ESINK;
        }
    }
    return us_begin(c, &e);
}

/* Delivers the rest of a streamed unit: the last batch, then the commit that
 * carries the unit's checkpoint. A commit whose answer was lost may have
 * happened: a sink that stores checkpoints tells, and then the unit is
 * done. On failure U->sink_r says what the sink answered. */
static pf_status us_deliver(run_ctx *c, unit_stream *u, pf_error *err)
{
    pf_status st = us_flush(c, u, err);
    if (st != PF_OK) return st;
    long long seq_before = c->state.seq;
    pf_error_clear(&u->sink_err);
    pf_sink_result r = commit_ex(c, 1, &u->sink_err);
    if (r == PF_SINK_OK) return PF_OK;
    u->sink_r = r;
    if (err) *err = u->sink_err;
    if (r == PF_SINK_RETRY && pf_sink_stores_checkpoint(c->sink)) {
        /* Only the sink can tell whether the commit happened: ask it before
         * the unit is fetched again. When it cannot answer, the run stops
         * here and the next one adopts whatever the sink holds. */
        int attempt = 1, attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
        int64_t delay = c->o->sink_backoff_ms;
        pf_error re;
        pf_error_clear(&re);
        pf_status ast = PF_OK;
        if (reopen_sink(c, &delay, &attempt, attempts, &re) != PF_OK ||
            (!adopt_stored_checkpoint(c, &re, &ast) && ast != PF_OK)) {
            u->sink_r = PF_SINK_OK;
            if (err) *err = re;
            return re.code ? re.code : PF_ESINK;
        }
        if (c->state.seq == seq_before + 1) {
            pf_log_info("the sink had committed the batch before the error; not sending it again");
            u->sink_r = PF_SINK_OK;
            return PF_OK;
        }
        if (c->state.seq != seq_before) {
            /* Another process committed this flow meanwhile: stop. */
            u->sink_r = PF_SINK_OK;
            return pf_error_set(err, PF_ESTATE,
                                "sink %s holds a checkpoint of commit %lld, written by another "
                                "run of this flow while this one reconnected; stopping",
                                c->f->sink.desc->name, c->state.seq);
        }
    }
    return PF_ESINK;
}

/* ---- completing a unit --------------------------------------------------- */

/* What a unit fetched, for its delivery and its log line. Exactly one of
 * RECS (collected records) and US (streamed unit) is set. */
typedef struct unit_result {
    pf_records *recs;
    unit_stream *us;
    const hash_list *hashes; /* ledger hashes of the records delivered */
    size_t fetched, dropped;
    int no_data;
} unit_result;

/* Delivers what unit W/PG fetched and, once the sink reports it durable,
 * moves the checkpoint: to the next page of the unit, or, after the unit's
 * last page, to the window's end with no page position. On failure the
 * in-memory checkpoint is left as it was. */
static pf_status complete_unit(run_ctx *c, const pf_window *w, pf_pager *pg, const unit_result *ur,
                               const char *where, pf_error *err)
{
    pf_status st = PF_OK;
    /* The checkpoint this page leads to, offered to checkpoint-storing sinks
     * with the commit; the checkpoint as it was (c->before) is offered with
     * partial commits and restored on failure. */
    int unit_done = !pg || pg->done;
    c->before.page_kind = c->state.page_kind;
    c->before.page_token = c->state.page_token;
    c->before.page_number = c->state.page_number;
    c->before.page_window_end_ms = c->state.page_window_end_ms;
    c->before.has_cursor = c->state.has_cursor;
    c->before.cursor_ms = c->state.cursor_ms;
    c->before.ledger = c->state.ledger ? strdup(c->state.ledger) : NULL;
    /* The cursor never moves back: a re-swept window ends before it. */
    int64_t cursor_after = w && (!c->state.has_cursor || w->end_ms > c->state.cursor_ms)
                               ? w->end_ms
                               : c->state.cursor_ms;
    c->state.page_kind = c->state.page_token = NULL;
    c->state.page_number = 0;
    c->state.page_window_end_ms = 0;
    if (w && !unit_done) {
        /* Inside a window the time cursor is the window's start (the end of the
         * previous window, or the range's start for the first one). */
        c->state.has_cursor = 1;
        c->state.cursor_ms = w->start_ms;
    }
    if (c->state.ledger && !c->before.ledger) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
    } else if (pg && pf_pager_save(pg, &c->state, w ? w->end_ms : 0) != PF_OK) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
    } else if (unit_done &&
               (st = remember_delivered(c, w, ur->hashes, cursor_after, err)) != PF_OK) {
        /* st set */
    } else {
        c->pend_set = unit_done && w != NULL;
        c->pend_cursor_ms = cursor_after;
        c->before.set = 1;
        st = ur->recs ? deliver(c, ur->recs, err) : us_deliver(c, ur->us, err);
        c->before.set = 0;
        c->pend_set = 0;
    }
    if (st != PF_OK) {
        /* The in-memory ledger may hold this batch: rebuild it from the
         * checkpoint's text. */
        free(c->state.ledger);
        c->state.ledger = c->before.ledger;
        if (c->ledger) {
            pf_keyledger *l = NULL;
            pf_error le;
            if (c->state.ledger && pf_keyledger_from_json(c->state.ledger, strlen(c->state.ledger),
                                                          &l, &le) == PF_OK) {
                pf_keyledger_free(c->ledger);
                c->ledger = l;
            } else if (!c->state.ledger) {
                pf_keyledger_free(c->ledger);
                c->ledger = pf_keyledger_new();
            }
            if (!l && c->state.ledger) {
                /* The ledger still holds this unit's records: fetching the
                 * unit again would drop them all. The run stops here. */
                st = pf_error_set(err, PF_ENOMEM,
                                  "out of memory restoring the late-arrival "
                                  "ledger; the next run continues from the "
                                  "checkpoint");
            } else if (!c->ledger) {
                st = pf_error_set(err, PF_ENOMEM, "out of memory");
            }
        }
        free(c->state.page_kind);
        free(c->state.page_token);
        c->state.page_kind = c->before.page_kind;
        c->state.page_token = c->before.page_token;
        c->state.page_number = c->before.page_number;
        c->state.page_window_end_ms = c->before.page_window_end_ms;
        c->state.has_cursor = c->before.has_cursor;
        c->state.cursor_ms = c->before.cursor_ms;
        memset(&c->before, 0, sizeof c->before);
        return st;
    }
    free(c->before.page_kind);
    free(c->before.page_token);
    free(c->before.ledger);
    memset(&c->before, 0, sizeof c->before);
    if (c->gap_json) {
        free(c->gap_json);
        c->gap_json = NULL;
    }
    if (unit_done && w) {
        c->state.has_cursor = 1;
        c->state.cursor_ms = cursor_after;
    }
    size_t delivered = ur->recs ? ur->recs->count : ur->us->written;
    size_t fresh = ur->fetched - ur->dropped;
    size_t late = c->ledger && w && w->end_ms <= c->late_until_ms ? fresh : 0;
    c->stats->records += (long long)delivered;
    c->stats->late_arrivals += (long long)late;
    c->stats->duplicates += (long long)ur->dropped;
    c->stats->windows++;
    c->state.run_records = c->stats->records;
    c->state.run_windows = c->stats->windows;
    st = save_state(c, err);
    pf_progress_update(&c->progress, c->stats->windows, c->stats->records, c->stats->bytes, 0);
    if (st == PF_OK && where[0] && c->ledger && w)
        pf_log_info("%s: %zu records, %zu new (%zu late arrivals), %zu already delivered", where,
                    ur->fetched, fresh, late, ur->dropped);
    else if (st == PF_OK && where[0])
        pf_log_info("%s: %zu records%s", where, ur->fetched,
                    ur->no_data ? " (the server answered: no data)" : "");
    return st;
}

/* Fetches unit W/PG (PG NULL: one request; W NULL: not windowed), collects
 * its records, and delivers them as one batch (split when the sink refuses
 * some). STREAMING: the extractor reads the body as it arrives into the
 * collected records. */
static pf_status collected_unit(run_ctx *c, const pf_window *w, pf_pager *pg, pf_buf *body,
                                pf_buf *url, int streaming, const char *where, pf_error *err)
{
    pf_flow *f = c->f;
    unit_result ur = {0};
    pf_records recs = {0};
    hash_list hashes = {0};
    c->sx_out = streaming ? &recs : NULL;
    pf_buf_reset(body);
    pf_status st = fetch(c, w, pg, body, &ur.no_data, url, err);
    c->sx_out = NULL;
    if (st != PF_OK) {
        if (streaming && (st == PF_EDATA || st == PF_EDEPTH || st == PF_ETOOBIG))
            pf_error_prefix(err, "response%s%s", where[0] ? " for " : "", where);
        goto out;
    }
    if (streaming && !ur.no_data) {
        pf_sx_stats sxs;
        pf_sx_get_stats(c->sx, &sxs);
        recs.missing_keys = sxs.missing_keys;
    }
    const char *data = body->data ? body->data : "";
    if (ur.no_data || streaming)
        st = PF_OK;
    else if (f->format == PF_RESPONSE_SYSLOG)
        st = pf_syslog_extract(f->tmpl, data, body->len, &recs, err);
    else
        st = pf_extract_records(f->tmpl, data, body->len, &recs, err);
    if (st == PF_OK && pg)
        st = pf_pager_advance(pg, f, data, body->len, recs.count, ur.no_data, pf_buf_str(url), err);
    if (st != PF_OK) {
        pf_error_prefix(err, "response%s%s", where[0] ? " for " : "", where);
        goto out;
    }
    if (recs.missing_keys)
        pf_log_warn("%zu records have no value at their key path", recs.missing_keys);
    ur.fetched = recs.count;
    if (c->o->test) {
        print_records(c, &recs);
        c->stats->windows++;
        goto out;
    }
    if ((st = drop_delivered(c, &recs, &hashes, &ur.dropped, err)) != PF_OK ||
        (st = add_gap_record(c, &recs, err)) != PF_OK)
        goto out;
    ur.recs = &recs;
    ur.hashes = &hashes;
    st = complete_unit(c, w, pg, &ur, where, err);
out:
    free(hashes.v);
    pf_records_free(&recs);
    return st;
}

/* Fetches window W (NULL: the endpoint) of a template whose records stream,
 * writing them to the sink in batches while the body arrives, and commits
 * with the unit's checkpoint at the end. When the sink fails transiently,
 * the sink is reopened from its last durable point and the unit fetched
 * again; when it refuses a record, the unit is fetched again and delivered
 * as collected records, so the records at fault can be isolated. */
static pf_status streamed_unit(run_ctx *c, const pf_window *w, pf_buf *body, pf_buf *url,
                               const char *where, pf_error *err)
{
    int attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
    int64_t delay = c->o->sink_backoff_ms;
    unit_stream u = {0};
    pf_buf_init(&u.bytes, 0);
    for (int attempt = 1;; attempt++) {
        unit_result ur = {0};
        u.sink_r = PF_SINK_OK;
        c->us = &u;
        pf_status st = us_begin(c, err);
        if (st == PF_OK) st = fetch(c, w, NULL, body, &ur.no_data, url, err);
        c->us = NULL;
        if (st == PF_OK && u.sink_r == PF_SINK_OK) {
            pf_sx_stats sxs;
            pf_sx_get_stats(c->sx, &sxs);
            if (!ur.no_data && sxs.missing_keys)
                pf_log_warn("%zu records have no value at their key path", sxs.missing_keys);
            ur.us = &u;
            ur.hashes = &u.hashes;
            ur.fetched = u.fetched;
            ur.dropped = u.dropped;
            st = complete_unit(c, w, NULL, &ur, where, err);
        } else if (u.sink_r == PF_SINK_OK &&
                   (st == PF_EDATA || st == PF_EDEPTH || st == PF_ETOOBIG)) {
            pf_error_prefix(err, "response%s%s", where[0] ? " for " : "", where);
        }
        if (st == PF_ENOMEM) u.sink_r = PF_SINK_OK; /* never fetched again */
        if (u.sink_r == PF_SINK_OK) {
            /* Done, or a failure that ends the run: what this unit wrote
             * and did not commit is taken back now (best effort; the next
             * open does it anyway), so the sink's files match the
             * checkpoint when the run ends. */
            if (st != PF_OK && u.written) {
                int a = 1;
                int64_t d = 0;
                pf_error re;
                pf_error_clear(&re);
                if (reopen_sink(c, &d, &a, 1, &re) != PF_OK)
                    pf_log_debug("cannot reopen the sink to take back an unfinished unit");
            }
            us_free(&u);
            return st;
        }
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(&u.sink_err, msg, sizeof msg);
        if (u.sink_r == PF_SINK_ERROR) {
            us_free(&u);
            pf_log_warn("%s; fetching %s again to isolate the records the sink refuses", msg,
                        where[0] ? where : "the response");
            int a = 1;
            if ((st = reopen_sink(c, &delay, &a, attempts, err)) != PF_OK) return st;
            return collected_unit(c, w, NULL, body, url, 1, where, err);
        }
        if (attempt >= attempts) {
            if (err) *err = u.sink_err;
            us_free(&u);
            return u.sink_err.code ? u.sink_err.code : PF_ESINK;
        }
        pf_log_warn("%s; retrying %s in %.1f s, fetching it again (attempt %d/%d)", msg,
                    where[0] ? where : "the response", (double)delay / 1000, attempt + 1, attempts);
        if (pf_http_sleep_ms((long)delay) != PF_OK) {
            us_free(&u);
            return pf_error_set(err, PF_EINTERRUPTED,
                                "interrupted while waiting to retry the sink");
        }
        delay *= 2;
        if ((st = reopen_sink(c, &delay, &attempt, attempts, err)) != PF_OK) {
            us_free(&u);
            return st;
        }
    }
}

/* Fetches, extracts and delivers one request: page PG (NULL: the unit is
 * one request) of window W (NULL: not windowed). */
static pf_status do_unit(run_ctx *c, const pf_window *w, pf_pager *pg, pf_buf *body, pf_buf *url,
                         pf_error *err)
{
    char where[160];
    describe_unit(w, pg, where, sizeof where);
    /* Stream when the extractor can and nothing needs the whole body (a
     * pager reading tokens or links from it). */
    int streaming = c->sx && !pg && c->f->format == PF_RESPONSE_JSON;
    if (streaming && !c->o->test) return streamed_unit(c, w, body, url, where, err);
    return collected_unit(c, w, pg, body, url, streaming, where, err);
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
                describe_unit(wp, t->pages.kind ? &pg : NULL, at, sizeof at);
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
    pf_flow_http *h = &c->f->http;
    pf_http_opts o;
    pf_http_opts_default(&o);
    o.connect_timeout_ms = (long)h->connect_timeout_ms;
    o.timeout_ms = (long)h->timeout_ms;
    /* libcurl counts whole seconds and 0 turns stall detection off: round up. */
    o.low_speed_time_s = (long)((h->low_speed_time_ms + 999) / 1000);
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
    c.batch_records = f->sink.batch_records ? f->sink.batch_records : SINK_CHUNK;
    c.batch_bytes = f->sink.batch_bytes ? f->sink.batch_bytes : STREAM_BATCH_BYTES;
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
    if (!c.streams) return pf_error_set(err, PF_ENOMEM, "out of memory");
    for (size_t i = 0; i < nstreams; i++)
        c.streams[i] = f->tmpl->streams[i].name;
    if (f->tmpl->paging == PF_PAGING_TIME_WINDOW && f->tmpl->window.retention_ms > 0 &&
        !f->local_file)
        c.streams[nstreams++] = GAP_STREAM;
    c.nstreams = nstreams;

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
        /* A sink that is briefly unreachable (RETRY) is retried like a
         * failed batch. */
        int open_attempt = 1;
        int64_t open_delay = o->sink_backoff_ms;
        if ((st = reopen_sink(&c, &open_delay, &open_attempt,
                              o->sink_attempts > 0 ? o->sink_attempts : 1, err)) != PF_OK) {
            /* pf_sink_open answers PF_ESTATE only when the sink's lock on
             * the flow is held elsewhere: the run is busy, as with the
             * state lock file. */
            stats->busy = st == PF_ESTATE;
            goto done;
        }
        adopt_stored_checkpoint(&c, err, &st);
        if (st != PF_OK) goto done;
        /* Record the sink's starting point before anything is written, so a
         * crash in the first window can be undone too. */
        int fatal = 0;
        if ((st = write_commit(&c, NULL, 0, 0, &fatal, err)) != PF_OK) goto done;
        pf_state_set_str(&c.state.template_name, f->tmpl->name);
        c.state.run_started_ms = pf_time_real_ms();
        c.state.run_ended_ms = 0;
        c.state.run_records = c.state.run_windows = c.state.run_bytes = c.state.run_retries = 0;
        pf_state_set_str(&c.state.run_outcome, "running");
        pf_state_set_str(&c.state.run_error, NULL);
        if ((st = save_state(&c, err)) != PF_OK) goto done;
    }
    if (f->tmpl->quota_pool && !f->local_file) {
        if (pf_quota_path(f->state_path, c.quota_path, sizeof c.quota_path) != 0) {
            st = pf_error_set(err, PF_ECONFIG, "state.path is too long");
            goto done;
        }
        pf_quota_key(f->tmpl->quota_pool, f->principal, c.quota_key);
    }
    if (f->format == PF_RESPONSE_JSON) {
        c.sx = pf_sx_new(f->tmpl, (size_t)f->http.max_record, (size_t)f->http.max_body, sx_record,
                         &c, err);
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
    pf_keyledger_free(c.ledger);
    pf_sx_free(c.sx);
    free(c.gap_json);
    free(c.streams);
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
    pf_status st = pf_state_load(f->state_path, &c.state, err);
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
