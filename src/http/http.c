/* http.c: the HTTP client: libcurl initialisation, client lifecycle, and
 * pf_http_fetch (attempts with retries, redirect hops, body capture with
 * the cap, the cap on header and trailer bytes, mapping libcurl results to
 * pf_status). Messages are formatted whole and redacted whole before they
 * are cut (set_outcome). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/http_internal.h"
#include "util/log.h"
#include "util/timeutil.h"

#ifndef PPFLOW_VERSION
#define PPFLOW_VERSION "0"
#endif

/* Bodies of non-2xx responses are kept only for the error message (and the
 * caller's inspection): this much at most (and never more than max_body). */
#define ERROR_BODY_MAX (64 * 1024)
/* Server text quoted in an HTTP error message. */
#define SERVER_TEXT_MAX 300
#define LOG_URL_MAX 512
/* Default cap on the header bytes of one transfer (pf_http_opts.max_headers). */
#define HEADERS_MAX_DEFAULT (256 * 1024)
/* libcurl 7.88's own limit on one header line (CURL_MAX_HTTP_HEADER): a
 * longer line ends the transfer with CURLE_OUT_OF_MEMORY. */
#define CURL_HEADER_LINE_MAX (100 * 1024)

struct pf_http_client {
    pf_http_opts o; /* string fields point to the copies below */
    char *ca_file, *client_cert, *client_key, *client_key_pass, *user_agent;
    CURL *easy; /* reused so connections are kept alive between requests */
    uint64_t rng;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- libcurl global initialisation ---- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- options and client ---- */

void pf_http_opts_default(pf_http_opts *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = 10000;
    o->timeout_ms = 300000;
    o->low_speed_limit = 1;
    o->low_speed_time_s = 60;
    o->max_body = (size_t)256 * 1024 * 1024;
    o->max_attempts = 5;
    o->backoff_base_ms = 1000;
    o->backoff_max_ms = 60000;
    o->retry_after_max_ms = 15L * 60 * 1000;
    o->jitter = PF_HTTP_JITTER_EQUAL;
    o->verify_tls = 1;
    o->follow_redirects = 0;
    o->max_redirects = 5;
    o->user_agent = NULL;
    o->max_headers = HEADERS_MAX_DEFAULT;
}

static pf_status check_opts(const pf_http_opts *o, pf_error *err)
{
    if (o->connect_timeout_ms < 0 || o->timeout_ms < 0 || o->low_speed_limit < 0 ||
        o->low_speed_time_s < 0)
        return pf_error_set(err, PF_EINVAL, "HTTP timeouts must not be negative");
    if (o->max_body == 0) return pf_error_set(err, PF_EINVAL, "HTTP max_body must be > 0");
    if (o->max_headers == 0) return pf_error_set(err, PF_EINVAL, "HTTP max_headers must be > 0");
    if (o->max_attempts < 1) return pf_error_set(err, PF_EINVAL, "HTTP max_attempts must be >= 1");
    if (o->backoff_base_ms < 0 || o->backoff_max_ms < 0 || o->retry_after_max_ms < 0)
        return pf_error_set(err, PF_EINVAL, "HTTP backoff delays must not be negative");
    if (o->jitter < PF_HTTP_JITTER_EQUAL || o->jitter > PF_HTTP_JITTER_NONE)
        return pf_error_set(err, PF_EINVAL, "HTTP jitter mode %d is unknown", o->jitter);
    if (o->max_redirects < 0)
        return pf_error_set(err, PF_EINVAL, "HTTP max_redirects must not be negative");
    return PF_OK;
}

/* Copies S (may be NULL) into *DST. Returns 0, or -1 when out of memory. */
static int dup_opt(const char *s, char **dst)
{
    *dst = NULL;
    if (!s) return 0;
    *dst = strdup(s);
    return *dst ? 0 : -1;
}

static pf_status check_readable(const char *what, const char *path, pf_error *err)
{
    if (path && access(path, R_OK) != 0)
        return pf_error_set(err, PF_ECONFIG, "%s '%.200s' is not readable: %s", what, path,
                            strerror(errno));
    return PF_OK;
}

void pf_http_client_free(pf_http_client *c)
{
    if (!c) return;
    if (c->easy) curl_easy_cleanup(c->easy);
    free(c->ca_file);
    free(c->client_cert);
    free(c->client_key);
    if (c->client_key_pass) {
        explicit_bzero(c->client_key_pass, strlen(c->client_key_pass));
        free(c->client_key_pass);
    }
    free(c->user_agent);
    free(c);
}

pf_status pf_http_client_new(const pf_http_opts *o, pf_http_client **out, pf_error *err)
{
    if (!out) return pf_error_set(err, PF_EINVAL, "pf_http_client_new: OUT is NULL");
    pf_http_opts def;
    if (!o) {
        pf_http_opts_default(&def);
        o = &def;
    }
    pf_status st = check_opts(o, err);
    if (st != PF_OK) return st;
    if ((st = check_readable("ca_file", o->ca_file, err)) != PF_OK ||
        (st = check_readable("client_cert", o->client_cert, err)) != PF_OK ||
        (st = check_readable("client_key", o->client_key, err)) != PF_OK)
        return st;

    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return pf_error_set(err, PF_ENOMEM, "libcurl initialisation failed: %s",
                            curl_easy_strerror(g_init_rc));

    pf_http_client *c = calloc(1, sizeof *c);
    if (!c) return pf_error_set(err, PF_ENOMEM, "out of memory creating the HTTP client");
    c->o = *o;
    if (dup_opt(o->ca_file, &c->ca_file) || dup_opt(o->client_cert, &c->client_cert) ||
        dup_opt(o->client_key, &c->client_key) ||
        dup_opt(o->client_key_pass, &c->client_key_pass) ||
        dup_opt(o->user_agent ? o->user_agent : "ppflow/" PPFLOW_VERSION, &c->user_agent)) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory creating the HTTP client");
        goto fail;
    }
    c->o.ca_file = c->ca_file;
    c->o.client_cert = c->client_cert;
    c->o.client_key = c->client_key;
    c->o.client_key_pass = c->client_key_pass;
    c->o.user_agent = c->user_agent;
    if (c->client_key_pass && pf_log_add_secret(c->client_key_pass) != 0) {
        st = pf_error_set(err, PF_ENOMEM, "cannot register a secret for log redaction");
        goto fail;
    }
    c->easy = curl_easy_init();
    if (!c->easy) {
        st = pf_error_set(err, PF_ENOMEM, "curl_easy_init failed");
        goto fail;
    }
    c->rng = (uint64_t)pf_time_mono_ms() * UINT64_C(6364136223846793005) ^
             (uint64_t)pf_time_real_ms() ^ (uint64_t)(uintptr_t)c ^ ((uint64_t)getpid() << 32);
    if (!c->o.verify_tls)
        pf_log_warn("TLS certificate verification is disabled (insecure): connections can be "
                    "intercepted");
    *out = c;
    return PF_OK;
fail:
    pf_http_client_free(c);
    return st;
}

/* ---- one transfer ---- */

/* State of one libcurl transfer (one redirect hop of one attempt). */
typedef struct xfer {
    pf_http_client *c;
    pf_http_body_fn body_fn;
    void *ud;
    pf_buf *body;       /* resp->body */
    const char *logurl; /* for messages */
    size_t received;    /* 2xx body bytes so far (stored or streamed) */
    int decided;        /* status looked at (first body byte) */
    int is_2xx;
    int encoded;           /* a Content-Encoding other than identity was announced */
    int error_body_full;   /* a non-2xx body reached ERROR_BODY_MAX: stopped on purpose */
    size_t header_bytes;   /* header and trailer bytes of this transfer so far */
    int in_headers;        /* inside a header or trailer block (not yet at its blank line) */
    int chunked;           /* the response is chunked: trailers may follow the body */
    pf_status abort_st;    /* why the write callback stopped the transfer */
    int abort_by_callback; /* abort_st came from body_fn */
    char abort_msg[LOG_URL_MAX + 256];
    char retry_after[64]; /* raw header value of the current response, "" when absent */
} xfer;

static size_t abort_write(xfer *x, pf_status st)
{
    x->abort_st = st;
    return CURL_WRITEFUNC_ERROR;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    size_t max = x->c->o.max_body;
    if (!x->decided) {
        long code = 0;
        curl_easy_getinfo(x->c->easy, CURLINFO_RESPONSE_CODE, &code);
        x->decided = 1;
        x->is_2xx = code >= 200 && code < 300;
        curl_off_t cl = -1;
        if (x->is_2xx && !x->encoded &&
            curl_easy_getinfo(x->c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl > 0 && (uint64_t)cl > (uint64_t)max) {
            snprintf(x->abort_msg, sizeof x->abort_msg,
                     "response body from %s is %" CURL_FORMAT_CURL_OFF_T
                     " bytes, above the limit of %zu bytes (max_body)",
                     x->logurl, cl, max);
            return abort_write(x, PF_ETOOBIG);
        }
    }
    if (!x->is_2xx) {
        size_t lim = max < ERROR_BODY_MAX ? max : ERROR_BODY_MAX;
        size_t room = x->body->len < lim ? lim - x->body->len : 0;
        size_t take = n < room ? n : room;
        if (pf_buf_append(x->body, p, take) != PF_OK) {
            snprintf(x->abort_msg, sizeof x->abort_msg, "out of memory reading a response");
            return abort_write(x, PF_ENOMEM);
        }
        if (take < n) {
            x->error_body_full = 1;
            return CURL_WRITEFUNC_ERROR;
        }
        return n;
    }
    if (n > max - x->received) {
        snprintf(x->abort_msg, sizeof x->abort_msg,
                 "response body from %s exceeds the limit of %zu bytes (max_body)", x->logurl, max);
        return abort_write(x, PF_ETOOBIG);
    }
    x->received += n;
    if (x->body_fn) {
        pf_status st = x->body_fn(x->ud, p, n);
        if (st != PF_OK) {
            x->abort_by_callback = 1;
            snprintf(x->abort_msg, sizeof x->abort_msg, "response body consumer failed for %s: %s",
                     x->logurl, pf_strerror(st));
            return abort_write(x, st);
        }
        return n;
    }
    pf_status st = pf_buf_append(x->body, p, n);
    if (st != PF_OK) {
        snprintf(x->abort_msg, sizeof x->abort_msg, "out of memory reading a response");
        return abort_write(x, st);
    }
    return n;
}

/* Case-insensitive "Name:" prefix match; returns the value (spaces skipped) or NULL. */
static const char *header_value(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return NULL;
    const char *v = line + nl + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    return v;
}

/* Writes LIMIT (bytes) as "256 KiB" or "1000 bytes" into OUT (size N). */
static void size_text(size_t limit, char *out, size_t n)
{
    if (limit >= 1024 && limit % 1024 == 0)
        snprintf(out, n, "%zu KiB", limit / 1024);
    else
        snprintf(out, n, "%zu bytes", limit);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    /* Every line counts, trailers included: libcurl keeps them all (for
     * curl_easy_header), so an endless trailer block would otherwise grow
     * memory without end (Debian's libcurl 7.88 stops headers at 300 KiB
     * with an unclear "Failure when receiving data", but does not count
     * trailers). Returning 0 stops the transfer. */
    size_t max = x->c->o.max_headers;
    if (n > max - (x->header_bytes < max ? x->header_bytes : max)) {
        char lim[32];
        size_text(max, lim, sizeof lim);
        snprintf(x->abort_msg, sizeof x->abort_msg,
                 "response headers from %s exceed %s (the limit on the header and trailer "
                 "bytes of one response); the transfer was stopped",
                 x->logurl, lim);
        x->abort_st = PF_ETOOBIG;
        return 0;
    }
    x->header_bytes += n;
    x->in_headers = !(n <= 2 && (n == 0 || p[0] == '\r' || p[0] == '\n'));
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, say): forget the previous one's headers. */
        x->retry_after[0] = '\0';
        x->encoded = 0;
        x->chunked = 0;
        return n;
    }
    const char *v;
    if ((v = header_value(p, n, "Retry-After")) != NULL) {
        size_t vl = (size_t)(p + n - v);
        if (vl >= sizeof x->retry_after) vl = sizeof x->retry_after - 1;
        memcpy(x->retry_after, v, vl);
        x->retry_after[vl] = '\0';
    } else if ((v = header_value(p, n, "Content-Encoding")) != NULL) {
        size_t vl = (size_t)(p + n - v);
        x->encoded = !(vl >= 8 && strncasecmp(v, "identity", 8) == 0);
    } else if ((v = header_value(p, n, "Transfer-Encoding")) != NULL) {
        size_t vl = (size_t)(p + n - v);
        for (size_t i = 0; i + 7 <= vl; i++)
            if (strncasecmp(v + i, "chunked", 7) == 0) x->chunked = 1;
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ud, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return pf_http_cancel_requested();
}

/* Sets every option of one hop. Returns CURLE_OK or the first failure. */
static CURLcode setup(pf_http_client *c, xfer *x, const char *url, const char *method,
                      const pf_http_request *req, int send_body, struct curl_slist *headers,
                      int send_auth)
{
    CURL *e = c->easy;
    const pf_http_opts *o = &c->o;
    CURLcode rc;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if ((rc = curl_easy_setopt(e, opt, val)) != CURLE_OK) return rc;                           \
    } while (0)
    curl_easy_reset(e); /* keeps live connections, DNS and TLS session caches */
    c->errbuf[0] = '\0';
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, o->low_speed_limit);
    SET(CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* every encoding this libcurl decodes */
    /* Larger reads from the socket: fewer write callbacks (and extractor
     * calls) per response; libcurl's default is 16 KiB. */
    SET(CURLOPT_BUFFERSIZE, 256L * 1024);
    SET(CURLOPT_USERAGENT, o->user_agent);
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* redirects are followed hop by hop in fetch */
    SET(CURLOPT_UNRESTRICTED_AUTH, 0L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_SSL_VERIFYPEER, o->verify_tls ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, o->verify_tls ? 2L : 0L);
    if (o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
    if (o->client_cert) SET(CURLOPT_SSLCERT, o->client_cert);
    if (o->client_key) SET(CURLOPT_SSLKEY, o->client_key);
    if (o->client_key_pass) SET(CURLOPT_KEYPASSWD, o->client_key_pass);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_HTTPHEADER, headers);

    const char *body = send_body && req->body ? req->body : "";
    curl_off_t blen = send_body ? (curl_off_t)req->body_len : 0;
    if (strcmp(method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, blen);
        SET(CURLOPT_POSTFIELDS, body);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, method);
        if (blen > 0 || strcmp(method, "DELETE") != 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, blen);
            SET(CURLOPT_POSTFIELDS, body);
        }
    }
    if (send_auth && req->basic_user) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, req->basic_user);
        SET(CURLOPT_PASSWORD, req->basic_pass ? req->basic_pass : "");
    }
#undef SET
    return CURLE_OK;
}

/* The outcome of one attempt. */
typedef struct outcome {
    pf_status st;               /* PF_OK: a final response arrived (resp->status); else why not */
    int from_callback;          /* st was returned by the caller's body_fn: never retried */
    char msg[PF_ERROR_MSG_MAX]; /* for st != PF_OK: complete, redacted message */
    char why[256];              /* short redacted reason for the retry log; "" = use msg */
} outcome;

static pf_status map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OUT_OF_MEMORY:
        return PF_ENOMEM;
    case CURLE_ABORTED_BY_CALLBACK:
        return PF_EINTERRUPTED;
    case CURLE_FILESIZE_EXCEEDED:
        return PF_ETOOBIG;
    case CURLE_BAD_CONTENT_ENCODING:
        return PF_EDATA;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return PF_EINVAL;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_NOT_BUILT_IN:
        return PF_ECONFIG;
    default:
        /* Connect/resolve failures, resets (RECV/SEND_ERROR), timeouts and
         * stalls (OPERATION_TIMEDOUT), truncated bodies (PARTIAL_FILE),
         * empty or garbled replies, TLS handshake failures, HTTP/2 errors. */
        return PF_ENET;
    }
}

static void set_outcome(outcome *out, pf_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_outcome(outcome *out, pf_status st, const char *fmt, ...)
{
    /* Formatted whole and redacted whole before it is cut to MSG, so a cut
     * never leaves a secret's beginning in the message. */
    va_list ap;
    va_start(ap, fmt);
    pf_log_vformat_redacted(out->msg, sizeof out->msg, fmt, ap);
    va_end(ap);
    out->st = st;
}

/* The message for a TLS or client configuration failure RC with URL: what
 * failed, libcurl's detail, and which flow key to look at. */
static void tls_outcome(outcome *out, CURLcode rc, const char *url, const char *detail)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        set_outcome(out, PF_ECONFIG,
                    "TLS certificate verification failed for %s: %s (the server's certificate "
                    "must be signed by a CA in http.ca_file, or in the system store when it is "
                    "unset, and must name the host)",
                    url, detail);
        break;
    case CURLE_SSL_CACERT_BADFILE:
        set_outcome(out, PF_ECONFIG, "TLS CA bundle (http.ca_file) cannot be used for %s: %s", url,
                    detail);
        break;
    case CURLE_SSL_CERTPROBLEM:
        set_outcome(out, PF_ECONFIG,
                    "TLS client certificate (http.client_cert, http.client_key) cannot be used "
                    "for %s: %s",
                    url, detail);
        break;
    default:
        set_outcome(out, PF_ECONFIG, "TLS or client configuration problem with %s: %s", url,
                    detail);
        break;
    }
}

static int is_redirect(long s)
{
    return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

/* Runs one attempt: one transfer, plus redirect hops when following. */
static void attempt(pf_http_client *c, const pf_http_request *req, const pf_http_prepared *prep,
                    pf_http_body_fn body_fn, void *ud, pf_http_response *resp, outcome *out)
{
    const pf_http_opts *o = &c->o;
    char origin0[512], logurl[LOG_URL_MAX];
    pf_buf cur, next;
    pf_buf_init(&cur, 0);
    pf_buf_init(&next, 0);
    memset(out, 0, sizeof *out);
    if (pf_buf_puts(&cur, req->url) != PF_OK ||
        pf_http_url_origin(req->url, origin0, sizeof origin0)) {
        set_outcome(out, PF_ENOMEM, "out of memory");
        goto done;
    }
    const char *method = prep->method;
    int send_body = 1, cross_origin = 0;
    for (int hop = 0;; hop++) {
        const char *url = pf_buf_str(&cur);
        pf_http_url_for_log(url, logurl, sizeof logurl);
        xfer x = {.c = c, .body_fn = body_fn, .ud = ud, .body = &resp->body, .logurl = logurl};
        x.abort_st = PF_OK;
        pf_buf_reset(&resp->body);
        resp->status = 0;
        resp->content_type[0] = '\0';
        resp->retry_after_ms = -1;
        CURLcode rc = setup(c, &x, url, method, req, send_body,
                            cross_origin ? prep->safe : prep->all, !cross_origin);
        if (rc != CURLE_OK) {
            set_outcome(out, rc == CURLE_OUT_OF_MEMORY ? PF_ENOMEM : PF_ECONFIG,
                        "cannot configure libcurl: %s", curl_easy_strerror(rc));
            goto done;
        }
        int64_t t0 = pf_time_mono_ms();
        rc = curl_easy_perform(c->easy);
        long code = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_WRITE_ERROR && x.error_body_full) rc = CURLE_OK; /* enough error text */
        if (rc != CURLE_OK) {
            if (rc == CURLE_WRITE_ERROR && x.abort_st != PF_OK) {
                out->from_callback = x.abort_by_callback;
                set_outcome(out, x.abort_st, "%s", x.abort_msg);
            } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
                set_outcome(out, PF_EINTERRUPTED, "%s %s: interrupted", method, logurl);
            } else if (rc == CURLE_OUT_OF_MEMORY && (!x.decided || x.in_headers || x.chunked)) {
                /* libcurl 7.88 answers a header or trailer line above its own
                 * limit with "out of memory" (it has no CURLE_TOO_LARGE). */
                char lim[32];
                size_text(CURL_HEADER_LINE_MAX, lim, sizeof lim);
                set_outcome(out, PF_ETOOBIG,
                            "response headers from %s: a header or trailer line is longer than "
                            "%s (libcurl's limit), or memory ran out; the transfer was stopped",
                            logurl, lim);
            } else {
                pf_status st = map_curl(rc);
                char detail[CURL_ERROR_SIZE + 64];
                snprintf(detail, sizeof detail, "%s%s%s", curl_easy_strerror(rc),
                         c->errbuf[0] ? ": " : "", c->errbuf);
                if (st == PF_ECONFIG)
                    tls_outcome(out, rc, logurl, c->errbuf[0] ? c->errbuf : detail);
                else
                    set_outcome(out, st, "%s %s: %s", method, logurl, detail);
                pf_log_redact(detail, out->why, sizeof out->why);
            }
            if (code > 0) resp->status = code;
            goto done;
        }
        resp->status = code;
        char *ct = NULL;
        if (curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            pf_http_copy_printable(ct, resp->content_type, sizeof resp->content_type);
        if (x.retry_after[0])
            resp->retry_after_ms = pf_http_parse_retry_after(x.retry_after, pf_time_real_ms());
        pf_log_debug("%s %s -> %ld (%zu bytes, %.3f s)", method, logurl, code,
                     x.is_2xx ? x.received : resp->body.len,
                     (double)(pf_time_mono_ms() - t0) / 1000.0);

        char *loc = NULL;
        if (!o->follow_redirects || !is_redirect(code) ||
            curl_easy_getinfo(c->easy, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc)
            break; /* the final response */
        if (hop >= o->max_redirects) {
            set_outcome(out, PF_EHTTP, "HTTP %ld from %s: too many redirects (max_redirects is %d)",
                        code, logurl, o->max_redirects);
            goto done;
        }
        /* libcurl writes the Basic credentials into the URL of a relative
         * redirect: strip any userinfo before looking at it. */
        if (pf_http_url_strip_userinfo(loc, &next) != 0) {
            set_outcome(out, PF_EHTTP, "redirect from %s to an invalid or non-http(s) URL", logurl);
            goto done;
        }
        loc = next.data;
        char next_origin[512];
        if (pf_http_url_check(loc, NULL) != PF_OK ||
            pf_http_url_origin(loc, next_origin, sizeof next_origin) != 0) {
            set_outcome(out, PF_EHTTP, "redirect from %s to an invalid or non-http(s) URL", logurl);
            goto done;
        }
        if (strncmp(url, "https:", 6) == 0 && strncmp(loc, "https:", 6) != 0) {
            set_outcome(out, PF_EHTTP, "refusing redirect from %s to plain http", logurl);
            goto done;
        }
        if (strcmp(next_origin, origin0) != 0) cross_origin = 1; /* stays set */
        if (code == 303 ? strcmp(method, "HEAD") != 0
                        : (code == 301 || code == 302) && strcmp(method, "POST") == 0) {
            method = "GET";
            send_body = 0;
        }
        char next_log[LOG_URL_MAX];
        pf_http_url_for_log(loc, next_log, sizeof next_log);
        pf_log_debug("following HTTP %ld redirect to %s%s", code, next_log,
                     cross_origin ? " (another origin: credentials not sent)" : "");
        pf_buf tmp = cur; /* the next hop's URL becomes current */
        cur = next;
        next = tmp;
    }
    out->st = PF_OK;
done:
    pf_buf_free(&cur);
    pf_buf_free(&next);
}

/* Sets ERR for a final non-2xx response. */
static pf_status http_error(pf_error *err, const pf_http_client *c, const char *url,
                            const pf_http_response *resp, const char *suffix)
{
    char logurl[LOG_URL_MAX], text[SERVER_TEXT_MAX + 8];
    pf_http_url_for_log(url, logurl, sizeof logurl);
    pf_http_server_text(&resp->body, SERVER_TEXT_MAX, text, sizeof text);
    const char *hint = "";
    if (resp->status >= 300 && resp->status < 400)
        hint = c->o.follow_redirects ? "" : " (redirect not followed: follow_redirects is off)";
    pf_error_set(err, PF_EHTTP, "HTTP %ld from %s%s%s%s%s", resp->status, logurl,
                 text[0] ? ": " : "", text, hint, suffix);
    if (err) err->retriable = 0;
    return PF_EHTTP;
}

pf_status pf_http_fetch(pf_http_client *c, const pf_http_request *req, pf_http_body_fn body_fn,
                        void *ud, pf_http_response *resp, pf_error *err)
{
    if (!c || !req) return pf_error_set(err, PF_EINVAL, "pf_http_fetch: NULL argument");
    pf_http_response local;
    if (!resp) {
        pf_http_response_init(&local);
        resp = &local;
    }
    pf_buf_reset(&resp->body);
    resp->body.cap = c->o.max_body;
    resp->status = 0;
    resp->content_type[0] = '\0';
    resp->retry_after_ms = -1;
    resp->attempts = 0;

    pf_http_prepared prep;
    pf_status st = pf_http_prepare(req, &prep, err);
    if (st != PF_OK) goto out;

    char logurl[LOG_URL_MAX];
    pf_http_url_for_log(req->url, logurl, sizeof logurl);
    const int max = c->o.max_attempts;
    for (int n = 1;; n++) {
        if (pf_http_cancel_requested()) {
            st = pf_error_set(err, PF_EINTERRUPTED, "%s %s: interrupted", prep.method, logurl);
            break;
        }
        if (n > 1 && body_fn && (st = body_fn(ud, NULL, 0)) != PF_OK) {
            if (!err || err->code != st || !err->msg[0])
                pf_error_set(err, st, "response body consumer failed to reset for %s: %s", logurl,
                             pf_strerror(st));
            break;
        }
        resp->attempts = n;
        outcome oc;
        attempt(c, req, &prep, body_fn, ud, resp, &oc);
        if (oc.st == PF_OK && resp->status >= 200 && resp->status < 300) {
            st = PF_OK;
            break;
        }
        if (oc.from_callback) {
            /* Keep the consumer's own message when it filled ERR. */
            if (!err || err->code != oc.st || !err->msg[0]) pf_error_set(err, oc.st, "%s", oc.msg);
            st = oc.st;
            break;
        }
        long ra = oc.st == PF_OK ? resp->retry_after_ms : -1;
        long delay;
        if (pf_http_retry_decide(&c->o, n, oc.st, resp->status, ra, &c->rng, &delay)) {
            char why[sizeof oc.msg];
            if (oc.st == PF_OK)
                snprintf(why, sizeof why, "HTTP %ld", resp->status);
            else
                snprintf(why, sizeof why, "%s", oc.why[0] ? oc.why : oc.msg);
            pf_log_warn("retrying %s %s in %.1f s (attempt %d/%d): %s", prep.method, logurl,
                        (double)delay / 1000.0, n + 1, max, why);
            if (pf_http_sleep_ms(delay) != PF_OK) {
                st = pf_error_set(err, PF_EINTERRUPTED, "%s %s: interrupted while waiting to retry",
                                  prep.method, logurl);
                break;
            }
            continue;
        }
        /* Final failure. */
        char suffix[128] = "";
        int retriable_outcome = pf_http_retriable(oc.st, resp->status);
        if (retriable_outcome && ra > c->o.retry_after_max_ms && n < max)
            snprintf(suffix, sizeof suffix, " (Retry-After %ld s is above the %ld s limit)",
                     ra / 1000, c->o.retry_after_max_ms / 1000);
        else if (retriable_outcome && n > 1)
            snprintf(suffix, sizeof suffix, " (gave up after %d attempts)", n);
        if (oc.st == PF_OK) {
            st = http_error(err, c, req->url, resp, suffix);
        } else {
            st = pf_error_set(err, oc.st, "%s%s", oc.msg, suffix);
            if (err) err->retriable = oc.st == PF_ENET || oc.st == PF_EDATA;
        }
        break;
    }
    pf_http_prepared_free(&prep);
out:
    if (resp == &local) pf_http_response_free(&local);
    return st;
}
