/* fetch.c: one request of a run: the call budget, the request, and the
 * response fed to the streaming extractor as it arrives (or buffered).
 *
 * A request is built from the flow and the unit (time window, page), checked
 * against the template's 24-hour call budget, and fetched through http/.
 * When the template's records stream, each chunk of the body goes to the
 * extractor at once and records reach pf_run_sx_record (the collected records
 * of the unit, or the streamed unit's batches); an HTTP retry restarts the
 * body, which restarts the extractor and the unit. Every attempt counts in
 * the call ledger, since every attempt reaches the API. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/run.h"
#include "engine/identity.h"
#include "engine/paging.h"
#include "engine/quota.h"
#include "engine/request.h"
#include "http/http.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

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

pf_status pf_run_sx_record(void *ud, const pf_sink_record *rec, pf_error *err)
{
    run_ctx *c = ud;
    pf_sink_record r = *rec;
    if (!r.key) {
        /* The extractor reads the first key path only: the record's
         * identity comes from the further paths or its hash. */
        pf_status st = pf_identity_complete(pf_identity_stream(c->f->tmpl, &r), &r, &c->idbuf, err);
        if (st != PF_OK) return st;
    }
    if (c->us) return pf_run_us_record(c, &r, err);
    return pf_records_push_copy(c->sx_out, &r, err);
}

/* pf_http_body_fn: feeds the extractor; a retry restarts the body. */
static pf_status sx_body(void *ud, const char *p, size_t n)
{
    run_ctx *c = ud;
    if (!p && n == 0) {
        pf_sx_reset(c->sx);
        c->sx_bytes = 0;
        if (c->us) return pf_run_us_restart(c);
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

/* ---- fetching ---------------------------------------------------------- */

/* Fetches page PG (NULL: the unit has no pages) of window W (NULL: none)
 * into BODY. *NO_DATA is set when the server answered one of the
 * template's "no data" statuses (e.g. 404 past the last page); BODY is then
 * empty. URL receives the request's URL (a relative next link is resolved
 * against it). */
pf_status pf_run_fetch(run_ctx *c, const pf_window *w, const pf_pager *pg, pf_buf *body,
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
    pf_request_to_http(&req, &hr);
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
