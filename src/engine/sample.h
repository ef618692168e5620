/* sample.h: one sample response for a flow (`ppflow suggest FLOW.yaml`).
 *
 * The sample is what the flow's first request would get, fetched once:
 * for a time-window template the latest window of the template's shortest
 * length (or of a given length, within the template's bounds) ending now;
 * for a paged template its first page; otherwise its single request. A
 * flow with `source.file` reads that file instead. Nothing is written: no
 * sink, no checkpoint. The HTTP client follows the flow's http settings
 * (timeouts, retries, TLS, body cap). */
#ifndef PF_ENGINE_SAMPLE_H
#define PF_ENGINE_SAMPLE_H

#include <stdint.h>

#include "flow/flow.h"
#include "http/http.h"
#include "util/buf.h"

typedef struct pf_sample_opts {
    int64_t window_ms; /* time windows: the window's length; 0 = the template's shortest */
    int64_t now_ms;    /* the window's end; 0 = pf_time_now_ms() */
} pf_sample_opts;

typedef struct pf_sample {
    pf_buf body;  /* the response body (capped by the flow's http.max_body) */
    long status;  /* the HTTP status; 0 for a local file */
    int windowed; /* 1 when start_ms/end_ms describe the window fetched */
    int64_t start_ms, end_ms;
    char where[600]; /* "GET https://host/path" (no query) or "file PATH", for messages */
} pf_sample;

/* Fills O with the HTTP options F's `http` settings describe: exactly
 * pf_flow_http_opts(&F->http, O) (httpopts.h), which `ppflow run` uses too.
 * F, O: not NULL. */
void pf_sample_http_opts(const pf_flow *f, pf_http_opts *o);

/* Fetches one sample for F (borrowed) with options O (NULL: defaults) into
 * OUT, which the caller zero-initialises and frees with pf_sample_free in
 * every case. A window length outside the template's bounds is clamped to
 * them. Returns PF_OK (an HTTP 204 gives an empty body), or the failure of
 * building the request (PF_ECONFIG, PF_EINVAL...), of the transfer
 * (PF_EHTTP, PF_ENET, PF_ETOOBIG, PF_EINTERRUPTED...; see http.h) or of
 * reading the file (PF_ENOTFOUND, PF_EIO, PF_ETOOBIG), with ERR filled
 * (secrets redacted by the HTTP layer). */
pf_status pf_sample_fetch(const pf_flow *f, const pf_sample_opts *o, pf_sample *out, pf_error *err);

/* Frees what S owns and zeroes it. NULL accepted. */
void pf_sample_free(pf_sample *s);

#endif
