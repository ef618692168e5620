/* httpopts.h: the HTTP client options of a flow, built in one place for
 * every caller that talks to the flow's API (`ppflow run`, `ppflow suggest`,
 * online decoding), so that they agree on timeouts, retries, TLS and caps. */
#ifndef PF_ENGINE_HTTPOPTS_H
#define PF_ENGINE_HTTPOPTS_H

#include "flow/flow.h"
#include "http/http.h"

/* Fills O (not NULL; every field is overwritten) with pf_http_opts_default's
 * values, then with the flow's `source.http` settings H (not NULL,
 * borrowed): connect and transfer timeouts, the stall timeout, the body
 * cap, attempts, backoff and Retry-After limits, TLS verification and the
 * CA, certificate and key files (O's pointers borrow H's strings, which
 * must outlive O). libcurl counts the stall time (low_speed_time_s) in
 * whole seconds and 0 turns stall detection off, so a stall timeout is
 * rounded up to the next second: 1500 ms is 2 s, 1 ms is 1 s, 0 stays 0
 * (off; as does a negative value, which flow validation never lets
 * through). Values beyond a long are clamped to LONG_MAX (INT_MAX for the
 * attempts, SIZE_MAX for the body cap). Cannot fail. */
void pf_flow_http_opts(const pf_flow_http *h, pf_http_opts *o);

#endif
