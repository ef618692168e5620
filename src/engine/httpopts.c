/* httpopts.c: a flow's HTTP settings as HTTP client options (contract in
 * httpopts.h). */
#include "engine/httpopts.h"

#include <limits.h>
#include <stdint.h>

static long to_long(int64_t v)
{
    return v > LONG_MAX ? LONG_MAX : v < LONG_MIN ? LONG_MIN : (long)v;
}

void pf_flow_http_opts(const pf_flow_http *h, pf_http_opts *o)
{
    pf_http_opts_default(o);
    o->connect_timeout_ms = to_long(h->connect_timeout_ms);
    o->timeout_ms = to_long(h->timeout_ms);
    /* libcurl counts whole seconds and 0 turns stall detection off: round
     * up, so that a stall timeout under a second still detects stalls. */
    int64_t stall = h->low_speed_time_ms;
    o->low_speed_time_s = stall <= 0 ? 0 : to_long(stall / 1000 + (stall % 1000 != 0));
    o->max_body = h->max_body > SIZE_MAX ? SIZE_MAX : (size_t)h->max_body;
    o->max_attempts = h->max_attempts > INT_MAX ? INT_MAX : (int)h->max_attempts;
    o->backoff_base_ms = to_long(h->backoff_ms);
    o->backoff_max_ms = to_long(h->backoff_max_ms);
    o->retry_after_max_ms = to_long(h->retry_after_max_ms);
    o->verify_tls = h->verify_tls;
    o->ca_file = h->ca_file;
    o->client_cert = h->client_cert;
    o->client_key = h->client_key;
}
