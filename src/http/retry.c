/* retry.c: the retry policy (which outcomes are retried, backoff with
 * jitter, Retry-After) as pure functions. */
#include <ctype.h>
#include <limits.h>
#include <string.h>

#include <curl/curl.h>

#include "http/http_internal.h"

static uint64_t xorshift64s(uint64_t *s)
{
    uint64_t x = *s ? *s : UINT64_C(0x9E3779B97F4A7C15);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* Uniform in [0, N] (N >= 0). */
static long rand_upto(uint64_t *s, long n)
{
    if (n <= 0) return 0;
    return (long)(xorshift64s(s) % ((uint64_t)n + 1));
}

int pf_http_retriable(pf_status transport, long http_status)
{
    if (transport != PF_OK) return transport == PF_ENET || transport == PF_EDATA;
    return http_status == 429 || http_status == 500 || http_status == 502 || http_status == 503 ||
           http_status == 504;
}

int pf_http_retry_decide(const pf_http_opts *o, int attempt, pf_status transport, long http_status,
                         long retry_after_ms, uint64_t *rng_state, long *delay_ms)
{
    if (delay_ms) *delay_ms = 0;
    if (!pf_http_retriable(transport, http_status) || attempt >= o->max_attempts) return 0;

    long d;
    if (transport == PF_OK && retry_after_ms >= 0) {
        if (retry_after_ms > o->retry_after_max_ms) return 0;
        d = retry_after_ms; /* the server said exactly when: no jitter */
    } else {
        long max = o->backoff_max_ms > 0 ? o->backoff_max_ms : 0;
        d = o->backoff_base_ms > 0 ? o->backoff_base_ms : 0;
        for (int i = 1; i < attempt && d < max; i++)
            d = d > max / 2 ? max : d * 2;
        if (d > max) d = max;
        if (rng_state) {
            if (o->jitter == PF_HTTP_JITTER_FULL)
                d = rand_upto(rng_state, d);
            else if (o->jitter == PF_HTTP_JITTER_EQUAL)
                d = d - d / 2 + rand_upto(rng_state, d / 2);
        }
    }
    if (delay_ms) *delay_ms = d;
    return 1;
}

long pf_http_parse_retry_after(const char *value, int64_t now_ms)
{
    if (!value) return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    char buf[64];
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
                 value[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, value, n);
    buf[n] = '\0';

    if (isdigit((unsigned char)buf[0])) {
        long secs = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)buf[i])) return -1;
            if (secs > (LONG_MAX - 9) / 10) return LONG_MAX;
            secs = secs * 10 + (buf[i] - '0');
        }
        return secs > LONG_MAX / 1000 ? LONG_MAX : secs * 1000;
    }
    /* An HTTP-date starts with a day name. curl_getdate parses IMF-fixdate,
     * RFC 850 and asctime without depending on TZ. */
    if (!isalpha((unsigned char)buf[0])) return -1;
    time_t t = curl_getdate(buf, NULL);
    if (t == -1) return -1;
    int64_t at = (int64_t)t * 1000;
    if (at <= now_ms) return 0;
    int64_t d = at - now_ms;
    return d > LONG_MAX ? LONG_MAX : (long)d;
}
