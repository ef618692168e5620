/* http.h: the one place that talks to libcurl.
 *
 * A pf_http_client performs HTTP requests with Basic auth, extra headers,
 * timeouts, TLS verification (on by default), the usual proxy environment
 * variables (http_proxy, HTTPS_PROXY, NO_PROXY: libcurl's defaults, not
 * disabled), gzip/deflate decoding, a capped response body, optional
 * same-policy redirects, and retries with exponential backoff and jitter.
 *
 * Retry classification (pf_http_retry_decide):
 *   retried:      connection failures, resets, timeouts (connect, total, stall),
 *                 truncated bodies, garbled replies (PF_ENET); a body whose
 *                 gzip/deflate encoding is corrupt (PF_EDATA: often a broken
 *                 proxy or a cut connection, and bounded by max_attempts);
 *                 HTTP 429, 500, 502, 503, 504 (Retry-After honoured).
 *   not retried:  every other status >= 300 (400, 401, 403, 404, other 4xx,
 *                 501, ...), the body cap (PF_ETOOBIG), TLS verification or
 *                 TLS configuration failures (PF_ECONFIG), invalid requests
 *                 (PF_EINVAL), cancellation (PF_EINTERRUPTED), and any
 *                 status returned by a caller's body callback.
 *
 * Secrets: credentials are never accepted in URLs (PF_EINVAL). The Basic
 * password, the encoded "user:pass" token and the values of credential-like
 * headers (see pf_http_fetch) are registered with pf_log_add_secret, so the
 * log module redacts them (also JSON-, percent- or HTML-encoded, see
 * util/log.h); error messages built from server text are redacted the same
 * way before they reach pf_error, and always whole (the whole error body,
 * the whole message) before anything is cut, collapsed or reduced to
 * printable ASCII. Logs show URLs as scheme://host[:port]/path only (no
 * query). Buffers that held credentials are wiped with explicit_bzero.
 *
 * Hostile responses: the body is capped (max_body; error bodies 64 KiB), and
 * so are the header bytes of a transfer, chunked trailers included
 * (max_headers, 256 KiB): a server that sends endless headers or trailers is
 * cut off with a clear message instead of growing memory.
 *
 * Injection: a CR, LF or NUL in a header name or value, a query parameter
 * or a path segment (also percent-encoded in the URL) is refused before any
 * connection is made, with a message that names the header, parameter or
 * segment and never shows the value; query parameters are percent-encoded
 * by libcurl's URL API (CURLU_URLENCODE).
 *
 * Threads: a client is used by one thread at a time; use one client per
 * thread. pf_http_set_cancel_flag is process-wide. */
#ifndef PF_HTTP_HTTP_H
#define PF_HTTP_HTTP_H

#include <signal.h> /* sig_atomic_t: the cancel flag is set by signal handlers */
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/status.h"

/* Jitter applied to the exponential backoff delay D (pf_http_opts.jitter). */
enum {
    PF_HTTP_JITTER_EQUAL = 0, /* D/2 + random[0, D/2] (default: delay still grows) */
    PF_HTTP_JITTER_FULL = 1,  /* random[0, D] */
    PF_HTTP_JITTER_NONE = 2,  /* exactly D */
};

typedef struct pf_http_opts {
    long connect_timeout_ms; /* default 10000; 0 = libcurl's default (300 s) */
    long timeout_ms;         /* whole transfer, per attempt; default 300000; 0 = none */
    long low_speed_limit;    /* bytes/s below which a transfer is stalled; default 1 */
    long low_speed_time_s;   /* ... for this long; default 60; 0 = no stall detection */
    size_t max_body;         /* response body cap in bytes; default 256 MiB; > 0 */
    int max_attempts;        /* default 5 (1 = no retry); >= 1 */
    long backoff_base_ms;    /* delay before attempt 2; doubles each time; default 1000 */
    long backoff_max_ms;     /* cap of the backoff delay; default 60000 */
    long
        retry_after_max_ms; /* a Retry-After above this fails instead of sleeping; default 15 min */
    int jitter;             /* PF_HTTP_JITTER_*; default PF_HTTP_JITTER_EQUAL */
    int verify_tls;         /* default 1; 0 disables peer and host checks (logs a warning) */
    const char *ca_file;    /* PEM CA bundle instead of the system one; NULL = unset */
    const char *client_cert;     /* PEM client certificate; NULL = unset */
    const char *client_key;      /* PEM private key of client_cert; NULL = unset */
    const char *client_key_pass; /* passphrase of client_key (a secret); NULL = unset */
    int follow_redirects;        /* default 0: a 3xx is returned as PF_EHTTP */
    int max_redirects;           /* when following; default 5 */
    const char *user_agent;      /* default "ppflow/<version>" */
    size_t max_headers; /* header bytes of one transfer (status lines, headers of interim and
                           final responses, chunked trailers) at most; default 256 KiB; > 0
                           (libcurl stops headers, not trailers, at 300 KiB by itself) */
} pf_http_opts;

/* Fills O with the defaults above. O: not NULL. */
void pf_http_opts_default(pf_http_opts *o);

typedef struct pf_http_request {
    const char *method; /* "GET" (also when NULL), "POST", "PUT", "PATCH", "DELETE", "HEAD" */
    const char *url;    /* complete http(s) URL, query included; no user:pass@ */
    const char *const *headers; /* NULL-terminated "Name: value" array; may be NULL */
    const char *basic_user;     /* Basic auth when not NULL (no ':' allowed) */
    const char *basic_pass;     /* with basic_user; NULL means "" */
    const char *body;           /* request body; NULL when body_len == 0 */
    size_t body_len;
} pf_http_request;

#define PF_HTTP_CONTENT_TYPE_MAX 128

typedef struct pf_http_response {
    long status; /* final HTTP status; 0 when no response arrived */
    pf_buf body; /* final body (capped); empty when streamed to a body_fn */
    char content_type[PF_HTTP_CONTENT_TYPE_MAX]; /* "" when absent; printable ASCII only */
    long retry_after_ms; /* Retry-After of the final response in ms, -1 when absent */
    int attempts;        /* attempts made (redirect hops within one attempt do not count) */
} pf_http_response;

/* Initialises R as empty (status 0, no body, retry_after_ms -1). Allocates nothing. */
void pf_http_response_init(pf_http_response *r);

/* Frees the body; R may be NULL. R can be reused after pf_http_response_init. */
void pf_http_response_free(pf_http_response *r);

/* Streaming body consumer. Called with the body bytes of a 2xx response
 * instead of storing them in resp->body (bodies of other statuses are still
 * stored, for the error message). Returning non-PF_OK aborts the transfer and
 * pf_http_fetch returns that status (with the callback's own message if it
 * filled none, a generic one) and does not retry. Because retries restart the
 * body, the callback gets a `reset` call (P == NULL, N == 0) before every
 * attempt after the first; a non-PF_OK return from it also stops. */
typedef pf_status (*pf_http_body_fn)(void *ud, const char *p, size_t n);

typedef struct pf_http_client pf_http_client;

/* Creates a client with options O (NULL = defaults). Strings in O are copied.
 * Initialises libcurl once per process (thread-safe). Logs a warning when
 * verify_tls is 0. Registers client_key_pass as a secret.
 * Returns PF_OK and *OUT (free with pf_http_client_free); PF_EINVAL for
 * out-of-range options; PF_ECONFIG when ca_file, client_cert or client_key
 * is not a readable file; PF_ENOMEM. On failure *OUT is unchanged. */
pf_status pf_http_client_new(const pf_http_opts *o, pf_http_client **out, pf_error *err);

/* Frees C (and closes its connections); C may be NULL. */
void pf_http_client_free(pf_http_client *c);

/* Performs REQ with retries per the policy above, reusing C's connections.
 *
 * REQ and everything it points to are borrowed for the call. Header names
 * must be RFC 9110 tokens; CR or LF in a header name or value, a missing
 * ':', or CR, LF or NUL in the URL's path or query (raw or percent-encoded,
 * see pf_http_url_check) are PF_EINVAL before anything is sent, with a
 * message naming the header, path segment or parameter but never showing a
 * value (NUL cannot occur inside the C strings of headers). Values of the headers
 * Authorization, Proxy-Authorization, Cookie and of any header whose name
 * contains "auth", "token", "key", "secret", "pass", "session", "cookie" or
 * "signature" (case-insensitive) are registered as log secrets and, like
 * Basic auth, are not sent after a redirect to another scheme/host/port.
 *
 * Redirects (opts.follow_redirects): 301, 302, 303, 307, 308 are followed up
 * to max_redirects hops (more is PF_EHTTP); http and https only, never from
 * https to http; 303 (and 301/302 after POST) continue as GET without body.
 *
 * RESP: initialised by the caller (pf_http_response_init) or NULL; its
 * previous contents are replaced; filled (status, body, content type) in
 * every case where a response arrived, including errors; the caller frees it.
 * BODY_FN: NULL to collect the body in resp->body; UD is passed to it.
 * ERR: may be NULL; err->retriable is set as documented below.
 *
 * Returns:
 *   PF_OK            the final status is 2xx (204: empty body);
 *   PF_EHTTP         a non-retriable status, or a retriable one after the
 *                    last attempt or with a Retry-After above
 *                    retry_after_max_ms; retriable = 0; message
 *                    "HTTP 401 from <scheme://host/path>: <server text>"
 *                    where server text is the body (64 KiB at most) with
 *                    secrets redacted over the whole of it, then reduced to
 *                    one line of printable ASCII (white space collapsed),
 *                    redacted again, and only then cut to 300 characters;
 *   PF_ENET          transport failure after the last attempt; retriable = 1
 *                    (a later run may succeed);
 *   PF_EDATA         corrupt content encoding after the last attempt; retriable = 1;
 *   PF_ETOOBIG       the 2xx body exceeds opts.max_body (also when streaming);
 *                    the response's headers and trailers exceed opts.max_headers
 *                    ("response headers from <url> exceed 256 KiB ..."), or one
 *                    header line exceeds libcurl's own limit (100 KiB); the
 *                    transfer stops there, so memory stays bounded;
 *   PF_ECONFIG       TLS verification or TLS setup failed (CA file, client cert);
 *   PF_EINVAL        an invalid request (method, URL, header, auth);
 *   PF_EINTERRUPTED  the cancel flag was raised (during a transfer or a backoff sleep);
 *   PF_ENOMEM;
 *   any status returned by BODY_FN. */
pf_status pf_http_fetch(pf_http_client *c, const pf_http_request *req, pf_http_body_fn body_fn,
                        void *ud, pf_http_response *resp, pf_error *err);

/* The retry policy as a pure function (used by pf_http_fetch, reusable by
 * the engine). ATTEMPT: 1-based number of the attempt that just failed.
 * TRANSPORT: PF_OK when a response arrived (then HTTP_STATUS is its status),
 * else the transport status (HTTP_STATUS ignored). RETRY_AFTER_MS: the
 * response's Retry-After in ms, or -1.
 * Returns 1 to retry, with *DELAY_MS set: RETRY_AFTER_MS exactly when it is
 * >= 0, else min(backoff_max_ms, backoff_base_ms * 2^(ATTEMPT-1)) with
 * o->jitter applied using the xorshift state *RNG_STATE (updated; NULL = no
 * jitter). Returns 0 (and *DELAY_MS = 0) when the outcome is not retriable,
 * ATTEMPT >= o->max_attempts, or RETRY_AFTER_MS > o->retry_after_max_ms.
 * O: not NULL. DELAY_MS: may be NULL. */
int pf_http_retry_decide(const pf_http_opts *o, int attempt, pf_status transport, long http_status,
                         long retry_after_ms, uint64_t *rng_state, long *delay_ms);

/* Parses a Retry-After header value (surrounding spaces allowed): delta
 * seconds ("120") or an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT", also
 * the RFC 850 and asctime forms) relative to NOW_MS (ms since the epoch).
 * Returns milliseconds >= 0 (0 for a date in the past; LONG_MAX when the
 * value is too large to represent), or -1 when VALUE is NULL or invalid. */
long pf_http_parse_retry_after(const char *value, int64_t now_ms);

/* Appends NAME=VALUE to the query of the URL held in URL. NAME and VALUE are
 * percent-encoded separately by libcurl's URL API (CURLU_URLENCODE: every
 * byte but the RFC 3986 unreserved characters is encoded, '=' and '&'
 * included; space becomes '+'), then appended with CURLU_APPENDQUERY. The URL
 * is parsed and re-serialised by libcurl, so it may be normalised (e.g.
 * "http://h" becomes "http://h/?a=1").
 * NAME must be non-empty; CR or LF in NAME or VALUE is PF_EINVAL with a
 * message naming the parameter but not showing the value.
 * Returns PF_OK; PF_EINVAL (bad name/value, URL not parseable); PF_ETOOBIG
 * (result above URL's cap); PF_ENOMEM. On failure URL is unchanged. */
pf_status pf_http_url_add_query(pf_buf *url, const char *name, const char *value, pf_error *err);

/* Joins BASE ("http://127.0.0.1:8080", or with a path prefix such as
 * "https://h/api/", no query or fragment) and PATH ("/v2/siem/all", a
 * missing leading '/' is added; may carry a query) and validates the result
 * as pf_http_url_check does (so a percent-encoded CR, LF or NUL in PATH is
 * refused too).
 * OUT: initialised pf_buf; on success its contents are replaced by the
 * normalised URL; on failure it is unchanged.
 * Returns PF_OK, PF_EINVAL (invalid base, path or result), PF_ETOOBIG (OUT's
 * cap) or PF_ENOMEM. */
pf_status pf_http_url_join(const char *base, const char *path, pf_buf *out, pf_error *err);

/* Checks that URL is an absolute http(s) URL with a host, no credentials,
 * and no CR, LF or NUL in its path or query, raw or percent-encoded (%0D,
 * %0A, %00). pf_http_fetch runs this on every request and redirect target.
 * Returns PF_OK or PF_EINVAL (message names what is wrong: the scheme, the
 * path segment's number or the query parameter's name; never the URL's
 * userinfo or a parameter's value), PF_ENOMEM. */
pf_status pf_http_url_check(const char *url, pf_error *err);

/* Checks a value before it becomes part of a request: KIND ("header",
 * "query parameter", "path parameter"; NULL: "value") and NAME say what it
 * is, VALUE (LEN bytes; NULL: nothing to check) what it holds.
 * Returns PF_OK, or PF_EINVAL when NAME holds CR or LF, or VALUE holds CR,
 * LF or NUL; the message names KIND and NAME (printable ASCII, at most 64
 * characters) and the byte offset, never the value, which may be a secret.
 * pf_http_fetch and pf_http_url_add_query call it; a caller that builds a
 * URL path from values calls it before percent-encoding them, for a message
 * that names the parameter. */
pf_status pf_http_check_text(const char *kind, const char *name, const char *value, size_t len,
                             pf_error *err);

/* Writes the loggable form of URL, "scheme://host[:port]/path" (no
 * userinfo, query or fragment), into OUT (size N > 0, always terminated);
 * "<invalid URL>" when URL does not parse. */
void pf_http_url_for_log(const char *url, char *out, size_t n);

/* Registers FLAG as the process-wide cancel flag (NULL: none). When *FLAG
 * becomes non-zero (e.g. set by a SIGTERM handler), a running transfer is
 * aborted within about a second and a backoff sleep within 50 ms, and
 * pf_http_fetch returns PF_EINTERRUPTED. Set it before starting fetches. */
void pf_http_set_cancel_flag(volatile sig_atomic_t *flag);

/* Returns 1 when the registered cancel flag is set, else 0. */
int pf_http_cancel_requested(void);

/* Sleeps MS milliseconds in steps of at most 50 ms, checking the cancel
 * flag. Returns PF_OK, or PF_EINTERRUPTED as soon as the flag is seen. */
pf_status pf_http_sleep_ms(long ms);

/* 1 when header NAME (LEN bytes, not necessarily NUL-terminated) is
 * credential-like: its name holds, case-insensitively, one of "auth",
 * "token", "key", "secret", "pass", "session", "cookie" or "signature"
 * (Authorization, Proxy-Authorization, X-Api-Key, Cookie, ...). The values of
 * such headers are registered for redaction by pf_http_fetch, and a flow may
 * not send them over http:// (flow.c). Only the first 127 bytes are looked
 * at. NAME not NULL. */
int pf_http_header_is_credential(const char *name, size_t len);

#endif
