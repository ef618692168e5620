/* sample.c: fetching one sample response for a flow (contract in sample.h). */
#include "engine/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/httpopts.h"
#include "engine/paging.h"
#include "engine/request.h"
#include "engine/window.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

#define DEFAULT_SAMPLE_WINDOW_MS 60000

void pf_sample_http_opts(const pf_flow *f, pf_http_opts *o)
{
    pf_flow_http_opts(&f->http, o);
}

void pf_sample_free(pf_sample *s)
{
    if (!s) return;
    pf_buf_free(&s->body);
    memset(s, 0, sizeof *s);
}

static pf_status read_local(const pf_flow *f, pf_sample *out, pf_error *err)
{
    char *text = NULL;
    size_t len = 0;
    snprintf(out->where, sizeof out->where, "file %s", f->local_file);
    pf_status st = pf_read_file(f->local_file, (size_t)f->http.max_body, &text, &len, err);
    if (st != PF_OK) return st;
    st = pf_buf_append(&out->body, text, len);
    free(text);
    return st == PF_OK ? PF_OK : pf_error_set(err, st, "cannot buffer %s", f->local_file);
}

/* The sample window: [now - length, now), length within the template's bounds. */
static void sample_window(const pf_flow *f, const pf_sample_opts *o, pf_window *w)
{
    const pf_window_def *d = &f->tmpl->window;
    int64_t len = o && o->window_ms > 0 ? o->window_ms
                  : d->min_ms > 0       ? d->min_ms
                                        : DEFAULT_SAMPLE_WINDOW_MS;
    if (d->min_ms > 0 && len < d->min_ms) len = d->min_ms;
    if (d->max_ms > 0 && len > d->max_ms) len = d->max_ms;
    int64_t now = o && o->now_ms ? o->now_ms : pf_time_now_ms();
    w->end_ms = now;
    w->start_ms = now - len;
}

pf_status pf_sample_fetch(const pf_flow *f, const pf_sample_opts *o, pf_sample *out, pf_error *err)
{
    pf_buf_init(&out->body, (size_t)f->http.max_body);
    if (f->local_file) return read_local(f, out, err);

    pf_window w = {0, 0};
    int windowed = f->tmpl->paging == PF_PAGING_TIME_WINDOW;
    if (windowed) {
        sample_window(f, o, &w);
        out->windowed = 1;
        out->start_ms = w.start_ms;
        out->end_ms = w.end_ms;
    }
    pf_request req = {0};
    pf_pager pager;
    memset(&pager, 0, sizeof pager);
    pf_http_client *client = NULL;
    pf_http_response resp;
    pf_http_response_init(&resp);
    pf_status st = pf_request_build(f, windowed ? &w : NULL, &req, err);
    if (st == PF_OK && f->tmpl->pages.kind != PF_PAGING_NONE) {
        st = pf_pager_init(&pager, f, err);
        if (st == PF_OK) st = pf_pager_apply(&pager, f, &req, err);
    }
    if (st == PF_OK) {
        pf_http_opts ho;
        pf_sample_http_opts(f, &ho);
        st = pf_http_client_new(&ho, &client, err);
        if (st == PF_OK) pf_flow_warn_insecure(f); /* as `run` warns (test, suggest) */
    }
    if (st == PF_OK) {
        pf_http_request hr = {0};
        pf_request_to_http(&req, &hr);
        char logurl[512];
        pf_http_url_for_log(hr.url, logurl, sizeof logurl);
        snprintf(out->where, sizeof out->where, "%s %s", req.method ? req.method : "GET", logurl);
        pf_log_debug("%s", out->where);
        st = pf_http_fetch(client, &hr, NULL, NULL, &resp, err);
        out->status = resp.status;
        if (st == PF_OK && resp.body.len &&
            pf_buf_append(&out->body, resp.body.data, resp.body.len) != PF_OK)
            st = pf_error_set(err, PF_ENOMEM, "out of memory buffering the sample");
    }
    pf_http_response_free(&resp);
    pf_http_client_free(client);
    pf_pager_free(&pager);
    pf_request_free(&req);
    return st;
}
