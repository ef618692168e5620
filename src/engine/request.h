/* request.h: turning a flow and (optionally) a time window into an HTTP
 * request: URL with percent-encoded query, headers, body, credentials.
 * (Page parameters are added afterwards by engine/paging.h.)
 *
 * Placeholders `{name}` take the flow's parameter values; `{window_start}` and
 * `{window_end}` the window's bounds (ISO 8601 UTC); `{principal}` and
 * `{secret}` the credentials (auth headers only). A query parameter or header
 * whose placeholder names an unset parameter is left out; a query value that
 * is exactly one list placeholder is repeated once per value
 * (threatStatus=active&threatStatus=cleared). A path placeholder must be set;
 * its value is percent-encoded, except for a url_path parameter, which is
 * inserted as is (its value was checked when the flow was loaded). Body
 * placeholders are inserted as is; an unset one leaves the body out. */
#ifndef PF_ENGINE_REQUEST_H
#define PF_ENGINE_REQUEST_H

#include "engine/window.h"
#include "flow/flow.h"
#include "http/http.h"
#include "util/buf.h"

typedef struct pf_request {
    const char *method; /* borrowed from the template */
    pf_buf url;
    char **headers; /* NULL-terminated "Name: value" array, owned */
    size_t nheaders;
    const char *user, *pass; /* borrowed from the flow; NULL: no Basic auth */
    char *body;              /* owned request body; NULL: none */
    size_t body_len;
} pf_request;

/* Builds the request for F and window W (NULL for none) into REQ (which the
 * caller zero-initialises). On failure REQ holds nothing that needs keeping
 * but must still be freed with pf_request_free. */
pf_status pf_request_build(const pf_flow *f, const pf_window *w, pf_request *req, pf_error *err);

/* Points HR's method, URL, headers, credentials and body at REQ's (borrowed:
 * valid while REQ is); the rest of HR is left as it was. */
void pf_request_to_http(const pf_request *req, pf_http_request *hr);

/* Frees what REQ owns (wiping headers and body, which may hold credentials)
 * and leaves it empty. NULL accepted. */
void pf_request_free(pf_request *req);

#endif
