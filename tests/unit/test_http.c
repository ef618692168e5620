/* test_http.c: the HTTP client against a real loopback server (a thread
 * answering scripted raw responses; libcurl is not mocked), plus the pure
 * retry policy, Retry-After parsing and URL helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "util/log.h"
#include "util/timeutil.h"

/* ---- loopback server ---- */

#define MAX_SCRIPT 12
#define REQ_MAX 16384

typedef struct reply {
    const char *raw; /* bytes to send */
    size_t len;      /* 0: strlen(raw) */
    int stall_ms;    /* keep the connection open this long after sending */
} reply;

typedef struct server {
    int fd, port;
    pthread_t th;
    volatile int stop;
    reply script[MAX_SCRIPT];
    int nscript;
    pthread_mutex_t mu;
    int served;
    char req[MAX_SCRIPT][REQ_MAX];
} server;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads one request (head + Content-Length body) into BUF. Returns its length or -1. */
static int read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len + 1 >= cap) return -1;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t need = (size_t)(end + 4 - buf);
    for (char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0)
            need += (size_t)atol(p + 15);
    }
    while (len < need && len + 1 < cap) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return (int)len;
}

static void *server_main(void *arg)
{
    server *s = arg;
    static const char unscripted[] = "HTTP/1.1 599 Unscripted\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
    while (!s->stop) {
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[REQ_MAX];
        if (read_request(c, buf, sizeof buf) < 0) {
            close(c);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        int i = s->served++;
        if (i < MAX_SCRIPT) memcpy(s->req[i], buf, sizeof buf);
        reply r = i < s->nscript ? s->script[i] : (reply){unscripted, 0, 0};
        pthread_mutex_unlock(&s->mu);
        size_t n = r.len ? r.len : strlen(r.raw);
        for (size_t off = 0; off < n;) {
            ssize_t w = send(c, r.raw + off, n - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (size_t)w;
        }
        for (int t = 0; t < r.stall_ms && !s->stop; t += 10)
            sleep_ms(10);
        close(c);
    }
    return NULL;
}

static server *server_start(const reply *script, int n)
{
    server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_true(n <= MAX_SCRIPT);
    memcpy(s->script, script, (size_t)n * sizeof *script);
    s->nscript = n;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
    return s;
}

static int server_served(server *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->served;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void server_stop(server *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- helpers ---- */

static pf_http_opts test_opts(void)
{
    pf_http_opts o;
    pf_http_opts_default(&o);
    o.backoff_base_ms = 10;
    o.backoff_max_ms = 40;
    o.max_attempts = 3;
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 5000;
    return o;
}

static pf_http_client *client(const pf_http_opts *o)
{
    pf_http_client *c = NULL;
    pf_error e;
    pf_error_clear(&e);
    if (pf_http_client_new(o, &c, &e) != PF_OK) fail_msg("client: %s", e.msg);
    return c;
}

static char g_url[256];

static const char *url_of(server *s, const char *path)
{
    snprintf(g_url, sizeof g_url, "http://127.0.0.1:%d%s", s->port, path);
    return g_url;
}

#define OK_BODY(b)                                                                                 \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"                   \
    "Content-Length: " #b "\r\n\r\n"
#define R503                                                                                       \
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"

static const char *const USER = "alice", *const PASS = "s3cr3t-pass";
static const char *const BASIC_TOKEN = "YWxpY2U6czNjcjN0LXBhc3M="; /* alice:s3cr3t-pass */

/* ---- pure functions ---- */

static void test_opts_defaults(void **state)
{
    (void)state;
    pf_http_opts o;
    pf_http_opts_default(&o);
    assert_int_equal(o.connect_timeout_ms, 10000);
    assert_int_equal(o.timeout_ms, 300000);
    assert_int_equal(o.low_speed_time_s, 60);
    assert_int_equal(o.low_speed_limit, 1);
    assert_int_equal(o.max_body, (size_t)256 * 1024 * 1024);
    assert_int_equal(o.max_attempts, 5);
    assert_int_equal(o.backoff_base_ms, 1000);
    assert_int_equal(o.backoff_max_ms, 60000);
    assert_int_equal(o.retry_after_max_ms, 900000);
    assert_int_equal(o.verify_tls, 1);
    assert_int_equal(o.follow_redirects, 0);
    assert_int_equal(o.max_redirects, 5);
    assert_int_equal(o.max_headers, (size_t)256 * 1024);
    assert_null(o.ca_file);
    assert_null(o.user_agent);
}

static void test_retry_policy(void **state)
{
    (void)state;
    pf_http_opts o;
    pf_http_opts_default(&o);
    uint64_t rng = 12345;
    long d = -1;

    /* 429 with Retry-After: exactly that delay, no jitter. */
    assert_int_equal(pf_http_retry_decide(&o, 1, PF_OK, 429, 7000, &rng, &d), 1);
    assert_int_equal(d, 7000);
    assert_int_equal(pf_http_retry_decide(&o, 2, PF_OK, 429, 0, &rng, &d), 1);
    assert_int_equal(d, 0);
    /* Retry-After above the maximum: stop. */
    assert_int_equal(pf_http_retry_decide(&o, 1, PF_OK, 429, o.retry_after_max_ms + 1, &rng, &d),
                     0);
    assert_int_equal(d, 0);
    assert_int_equal(pf_http_retry_decide(&o, 1, PF_OK, 503, 3600000, &rng, &d), 0);

    /* 5xx and network errors: growing, capped delays (no jitter here). */
    const long st[] = {500, 502, 503, 504, 429};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        o.jitter = PF_HTTP_JITTER_NONE;
        o.max_attempts = 10;
        long expect[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
        for (int a = 1; a <= 9; a++) {
            assert_int_equal(pf_http_retry_decide(&o, a, PF_OK, st[i], -1, &rng, &d), 1);
            assert_int_equal(d, expect[a - 1]);
        }
        assert_int_equal(pf_http_retry_decide(&o, 10, PF_OK, st[i], -1, &rng, &d), 0);
    }
    assert_int_equal(pf_http_retry_decide(&o, 3, PF_ENET, 0, -1, &rng, &d), 1);
    assert_int_equal(d, 4000);
    assert_int_equal(pf_http_retry_decide(&o, 3, PF_EDATA, 0, -1, &rng, &d), 1);
    assert_int_equal(pf_http_retry_decide(&o, 30, PF_ENET, 0, -1, &rng, &d), 0);
    /* A huge attempt number does not overflow. */
    o.max_attempts = 1000;
    assert_int_equal(pf_http_retry_decide(&o, 999, PF_ENET, 0, -1, &rng, &d), 1);
    assert_int_equal(d, 60000);

    /* Never retried. */
    const long no[] = {200, 301, 400, 401, 403, 404, 405, 408, 409, 422, 501, 505};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_int_equal(pf_http_retry_decide(&o, 1, PF_OK, no[i], -1, &rng, &d), 0);
    const pf_status nost[] = {PF_ETOOBIG, PF_EINTERRUPTED, PF_ECONFIG,
                              PF_EINVAL,  PF_ENOMEM,       PF_EHTTP};
    for (size_t i = 0; i < sizeof nost / sizeof nost[0]; i++)
        assert_int_equal(pf_http_retry_decide(&o, 1, nost[i], 0, -1, &rng, &d), 0);

    /* Attempts exhausted. */
    o.max_attempts = 5;
    assert_int_equal(pf_http_retry_decide(&o, 4, PF_OK, 503, -1, &rng, &d), 1);
    assert_int_equal(pf_http_retry_decide(&o, 5, PF_OK, 503, -1, &rng, &d), 0);
    assert_int_equal(pf_http_retry_decide(&o, 5, PF_OK, 429, 1000, &rng, &d), 0);
    o.max_attempts = 1;
    assert_int_equal(pf_http_retry_decide(&o, 1, PF_ENET, 0, -1, &rng, &d), 0);

    /* Jitter stays in range: equal in [D/2, D], full in [0, D]. */
    o.max_attempts = 10;
    o.jitter = PF_HTTP_JITTER_EQUAL;
    int varied = 0;
    long prev = -1;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(pf_http_retry_decide(&o, 3, PF_OK, 503, -1, &rng, &d), 1);
        assert_true(d >= 2000 && d <= 4000);
        varied |= prev >= 0 && d != prev;
        prev = d;
    }
    assert_true(varied);
    o.jitter = PF_HTTP_JITTER_FULL;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(pf_http_retry_decide(&o, 7, PF_ENET, 0, -1, &rng, &d), 1);
        assert_true(d >= 0 && d <= 60000);
    }
    /* NULL rng: no jitter; NULL delay is accepted. */
    assert_int_equal(pf_http_retry_decide(&o, 2, PF_OK, 502, -1, NULL, &d), 1);
    assert_int_equal(d, 2000);
    assert_int_equal(pf_http_retry_decide(&o, 2, PF_OK, 502, -1, NULL, NULL), 1);
}

static void test_retry_after_parse(void **state)
{
    (void)state;
    int64_t now = INT64_C(784111777000); /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(pf_http_parse_retry_after("120", now), 120000);
    assert_int_equal(pf_http_parse_retry_after(" 0 ", now), 0);
    assert_int_equal(pf_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 0);
    assert_int_equal(pf_http_parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), 30000);
    assert_int_equal(pf_http_parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now), 60000);
    assert_int_equal(pf_http_parse_retry_after("Sun Nov  6 08:49:47 1994", now), 10000);
    assert_int_equal(pf_http_parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), 0); /* past */
    assert_int_equal(pf_http_parse_retry_after("99999999999999999999999", now), LONG_MAX);
    assert_int_equal(pf_http_parse_retry_after("", now), -1);
    assert_int_equal(pf_http_parse_retry_after(NULL, now), -1);
    assert_int_equal(pf_http_parse_retry_after("-5", now), -1);
    assert_int_equal(pf_http_parse_retry_after("1.5", now), -1);
    assert_int_equal(pf_http_parse_retry_after("soon", now), -1);
    assert_int_equal(pf_http_parse_retry_after("12abc", now), -1);
}

static void test_url_helpers(void **state)
{
    (void)state;
    pf_buf u;
    pf_error e;
    pf_buf_init(&u, 0);
    assert_int_equal(pf_http_url_join("http://127.0.0.1:8080", "/v2/siem/all", &u, &e), PF_OK);
    assert_string_equal(pf_buf_str(&u), "http://127.0.0.1:8080/v2/siem/all");
    assert_int_equal(pf_http_url_join("https://h.example/api/", "v2/x", &u, &e), PF_OK);
    assert_string_equal(pf_buf_str(&u), "https://h.example/api/v2/x");
    assert_int_equal(pf_http_url_add_query(&u, "format", "json", &e), PF_OK);
    assert_int_equal(pf_http_url_add_query(&u, "since time", "2024-01-01T00:00:00+01:00&x=y", &e),
                     PF_OK);
    /* CURLU_URLENCODE: lower-case hex (case does not matter), space as '+',
     * and a literal '+' encoded so it cannot be read as a space. */
    assert_int_equal(strcasecmp(pf_buf_str(&u), "https://h.example/api/v2/x?format=json&since+time="
                                                "2024-01-01T00%3A00%3A00%2B01%3A00%26x%3Dy"),
                     0);
    assert_int_equal(pf_http_url_add_query(&u, "a=b", "", &e), PF_OK);
    assert_true(strstr(pf_buf_str(&u), "&a%3Db=") || strstr(pf_buf_str(&u), "&a%3db="));
    char before[512];
    snprintf(before, sizeof before, "%s", pf_buf_str(&u));
    assert_int_equal(pf_http_url_add_query(&u, "x", "a\r\nb", &e), PF_EINVAL);
    assert_int_equal(pf_http_url_add_query(&u, "x\n", "1", &e), PF_EINVAL);
    assert_int_equal(pf_http_url_add_query(&u, "", "1", &e), PF_EINVAL);
    assert_string_equal(pf_buf_str(&u), before); /* unchanged on failure */
    /* The cap is honoured and leaves the URL unchanged. */
    pf_buf small;
    pf_buf_init(&small, 40);
    assert_int_equal(pf_buf_puts(&small, "http://h/p"), PF_OK);
    assert_int_equal(pf_http_url_add_query(&small, "long", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &e),
                     PF_ETOOBIG);
    assert_string_equal(pf_buf_str(&small), "http://h/p");
    pf_buf_free(&small);

    assert_int_equal(pf_http_url_join("ftp://h", "/x", &u, &e), PF_EINVAL);
    assert_int_equal(pf_http_url_join("http://u:pw@h", "/x", &u, &e), PF_EINVAL);
    assert_null(strstr(e.msg, "pw"));
    assert_int_equal(pf_http_url_join("http://h?q=1", "/x", &u, &e), PF_EINVAL);
    assert_int_equal(pf_http_url_join("http://h", "/x\r\nHost: evil", &u, &e), PF_EINVAL);
    assert_int_equal(pf_http_url_join("http://h", "/a b", &u, &e), PF_EINVAL);
    assert_int_equal(pf_http_url_join("not a url", "/x", &u, &e), PF_EINVAL);
    assert_string_equal(pf_buf_str(&u), before);

    assert_int_equal(pf_http_url_check("https://h/x?y=1", &e), PF_OK);
    assert_int_equal(pf_http_url_check("file:///etc/passwd", &e), PF_EINVAL);
    char log[128];
    pf_http_url_for_log("http://user:pw@h.example:8080/a/b?token=zzz#f", log, sizeof log);
    assert_string_equal(log, "http://h.example:8080/a/b");
    pf_http_url_for_log("::nope::", log, sizeof log);
    assert_string_equal(log, "<invalid URL>");
    pf_buf_free(&u);
}

/* Captures stderr (where the log module writes) into a temporary file. */
typedef struct capture {
    int saved;
    FILE *f;
} capture;

static void capture_start(capture *cap)
{
    fflush(stderr);
    cap->f = tmpfile();
    assert_non_null(cap->f);
    cap->saved = dup(2);
    dup2(fileno(cap->f), 2);
}

static void capture_end(capture *cap, char *out, size_t n)
{
    fflush(stderr);
    dup2(cap->saved, 2);
    close(cap->saved);
    rewind(cap->f);
    size_t r = fread(out, 1, n - 1, cap->f);
    out[r] = '\0';
    fclose(cap->f);
    fputs(out, stderr); /* still show it */
}

static void test_client_new_errors(void **state)
{
    (void)state;
    pf_http_opts o = test_opts();
    pf_http_client *c = NULL;
    pf_error e;
    o.max_attempts = 0;
    assert_int_equal(pf_http_client_new(&o, &c, &e), PF_EINVAL);
    o = test_opts();
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(pf_http_client_new(&o, &c, &e), PF_ECONFIG);
    assert_non_null(strstr(e.msg, "ca_file"));
    assert_null(c);
    assert_int_equal(pf_http_client_new(NULL, &c, &e), PF_OK);
    pf_http_client_free(c);
    /* The insecure switch works but says so. */
    o = test_opts();
    o.verify_tls = 0;
    capture cap;
    char log[1024];
    capture_start(&cap);
    pf_status st = pf_http_client_new(&o, &c, &e);
    capture_end(&cap, log, sizeof log);
    assert_int_equal(st, PF_OK);
    assert_non_null(strstr(log, "warning: TLS certificate verification is disabled"));
    pf_http_client_free(c);
    pf_http_client_free(NULL);
    pf_http_response_free(NULL);
}

/* ---- against the loopback server ---- */

static void test_auth_and_headers(void **state)
{
    (void)state;
    reply sc[] = {{OK_BODY(11) "{\"ok\":true}", 0, 0}};
    server *s = server_start(sc, 1);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    const char *hdrs[] = {"X-Test: 42", "Accept: application/json", NULL};
    pf_http_request rq = {.method = "GET",
                          .url = url_of(s, "/v2/siem/all?format=json"),
                          .headers = hdrs,
                          .basic_user = USER,
                          .basic_pass = PASS};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(pf_buf_str(&r.body), "{\"ok\":true}");
    assert_string_equal(r.content_type, "application/json");
    const char *q = s->req[0];
    assert_non_null(strstr(q, "GET /v2/siem/all?format=json HTTP/1.1\r\n"));
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Basic %s\r\n", BASIC_TOKEN);
    assert_non_null(strstr(q, auth));
    assert_non_null(strstr(q, "\r\nX-Test: 42\r\n"));
    assert_non_null(strstr(q, "\r\nUser-Agent: ppflow/"));
    assert_non_null(strstr(q, "\r\nAccept-Encoding: "));
    assert_null(strstr(q, "Expect:"));
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_invalid_requests(void **state)
{
    (void)state;
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_error e;
    const char *bad_sets[][3] = {{"X-Evil: a\r\nInjected: 1", NULL, NULL},
                                 {"X-Evil: a\nb", NULL, NULL},
                                 {"Bad Name: x", NULL, NULL},
                                 {"NoColon", NULL, NULL},
                                 {": novalue", NULL, NULL},
                                 {"X-Ok: 1", "X-Evil\r\n: 2", NULL}};
    for (size_t i = 0; i < sizeof bad_sets / sizeof bad_sets[0]; i++) {
        pf_http_request rq = {.url = "http://127.0.0.1:1/x", .headers = bad_sets[i]};
        pf_error_clear(&e);
        assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
        assert_true(e.msg[0] != '\0');
    }
    pf_http_request rq = {.url = "http://bob:pw@127.0.0.1:1/x"};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
    assert_non_null(strstr(e.msg, "credentials"));
    rq = (pf_http_request){.url = "ftp://127.0.0.1:1/x"};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
    rq = (pf_http_request){.url = "http://127.0.0.1:1/x", .method = "TRACE"};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
    rq = (pf_http_request){.url = "http://127.0.0.1:1/x", .basic_user = "a:b", .basic_pass = "c"};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
    rq = (pf_http_request){.url = "http://127.0.0.1:1/x", .basic_pass = "orphan"};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
    rq = (pf_http_request){.url = "http://127.0.0.1:1/x", .body_len = 3};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINVAL);
    pf_http_client_free(c);
}

static void test_503_then_200(void **state)
{
    (void)state;
    reply sc[] = {{R503, 0, 0}, {OK_BODY(2) "ok", 0, 0}};
    server *s = server_start(sc, 2);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/v2/siem/all?secretparam=zzz")};
    pf_http_response r;
    pf_http_response_init(&r);
    capture cap;
    char log[4096];
    capture_start(&cap);
    pf_status st = pf_http_fetch(c, &rq, NULL, NULL, &r, NULL);
    capture_end(&cap, log, sizeof log);
    assert_int_equal(st, PF_OK);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.status, 200);
    assert_string_equal(pf_buf_str(&r.body), "ok");
    assert_int_equal(server_served(s), 2);
    char expect[256];
    snprintf(expect, sizeof expect, "retrying GET http://127.0.0.1:%d/v2/siem/all in ", s->port);
    assert_non_null(strstr(log, expect));
    assert_non_null(strstr(log, "(attempt 2/3): HTTP 503"));
    assert_null(strstr(log, "secretparam"));
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_401_no_retry_redacted(void **state)
{
    (void)state;
    static char body401[512], raw[1024];
    snprintf(body401, sizeof body401,
             "{\"error\":\"bad credentials for %s with password %s\",\n\t\"echo\":\"Basic %s\"}",
             USER, PASS, BASIC_TOKEN);
    snprintf(raw, sizeof raw,
             "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
             "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body401), body401);
    reply sc[] = {{raw, 0, 0}};
    server *s = server_start(sc, 1);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/v2/siem/all?format=json&x=secretq"),
                          .basic_user = USER,
                          .basic_pass = PASS};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(e.code, PF_EHTTP);
    assert_int_equal(e.retriable, 0);
    assert_int_equal(r.status, 401);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(server_served(s), 1);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "HTTP 401 from http://127.0.0.1:%d/v2/siem/all: ", s->port);
    assert_memory_equal(e.msg, prefix, strlen(prefix));
    assert_non_null(strstr(e.msg, "bad credentials for alice with password ***"));
    assert_null(strstr(e.msg, PASS));
    assert_null(strstr(e.msg, BASIC_TOKEN));
    assert_null(strstr(e.msg, "secretq"));
    assert_null(strchr(e.msg, '\n'));
    assert_null(strchr(e.msg, '\t'));
    char formatted[1024];
    pf_error_format(&e, formatted, sizeof formatted);
    assert_null(strstr(formatted, PASS));
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_404_403_400_not_retried(void **state)
{
    (void)state;
    static char big404[256 + 100000];
    int hl =
        snprintf(big404, sizeof big404,
                 "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n");
    memset(big404 + hl, 'x', 100000);
    reply sc[] = {
        {big404, (size_t)hl + 100000, 0},
        {"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\nnope\r\n", 0, 0},
        {"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0, 0}};
    server *s = server_start(sc, 3);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/x")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.body.len, 64 * 1024); /* error bodies are kept up to 64 KiB */
    assert_non_null(strstr(e.msg, "xxx..."));
    assert_true(strlen(e.msg) < 400);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(r.status, 403);
    assert_true(strstr(e.msg, ": nope") && e.msg[strlen(e.msg) - 1] == 'e');
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(r.status, 400);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(server_served(s), 3);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_exhausted(void **state)
{
    (void)state;
    reply sc[] = {{R503, 0, 0}, {R503, 0, 0}, {R503, 0, 0}, {OK_BODY(2) "ok", 0, 0}};
    server *s = server_start(sc, 4);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/x")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.status, 503);
    assert_int_equal(e.retriable, 0);
    assert_non_null(strstr(e.msg, "HTTP 503 from"));
    assert_non_null(strstr(e.msg, ": busy (gave up after 3 attempts)"));
    assert_int_equal(server_served(s), 3);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_body_cap(void **state)
{
    (void)state;
    static char chunked[4096];
    int n = snprintf(chunked, sizeof chunked,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += snprintf(chunked + n, sizeof chunked - (size_t)n, "200\r\n");
        memset(chunked + n, 'a', 512);
        n += 512;
        n += snprintf(chunked + n, sizeof chunked - (size_t)n, "\r\n");
    }
    n += snprintf(chunked + n, sizeof chunked - (size_t)n, "0\r\n\r\n");
    static char err2000[2200];
    int en =
        snprintf(err2000, sizeof err2000,
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n");
    memset(err2000 + en, 'e', 2000);
    reply sc[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nConnection: close\r\n\r\nabc", 0, 0},
                  {chunked, (size_t)n, 0},
                  {err2000, (size_t)en + 2000, 0}};
    server *s = server_start(sc, 3);
    pf_http_opts o = test_opts();
    o.max_body = 1024;
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/big")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "max_body"));
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "1024 bytes"));
    assert_true(r.body.len <= 1024);
    /* An error body above the cap is kept up to the cap; the status wins. */
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.body.len, 1024);
    assert_int_equal(server_served(s), 3);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_truncated_retried(void **state)
{
    (void)state;
    reply sc[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort", 0, 0},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhel",
         0, 0},
        {OK_BODY(11) "hello world", 0, 0}};
    server *s = server_start(sc, 3);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/t")};
    pf_http_response r;
    pf_http_response_init(&r);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, NULL), PF_OK);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(pf_buf_str(&r.body), "hello world");
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_204_and_post(void **state)
{
    (void)state;
    reply sc[] = {{"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", 0, 0},
                  {OK_BODY(2) "{}", 0, 0}};
    server *s = server_start(sc, 2);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/empty")};
    pf_http_response r;
    pf_http_response_init(&r);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, NULL), PF_OK);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body.len, 0);
    assert_string_equal(pf_buf_str(&r.body), "");
    const char *h[] = {"Content-Type: application/json", NULL};
    const char body[] = "{\"urls\":[\"a\"]}";
    rq = (pf_http_request){.method = "POST",
                           .url = url_of(s, "/v2/url/decode"),
                           .headers = h,
                           .body = body,
                           .body_len = strlen(body)};
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, NULL), PF_OK);
    assert_non_null(strstr(s->req[1], "POST /v2/url/decode HTTP/1.1\r\n"));
    assert_non_null(strstr(s->req[1], "Content-Length: 14\r\n"));
    assert_non_null(strstr(s->req[1], "\r\n\r\n{\"urls\":[\"a\"]}"));
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_429_retry_after(void **state)
{
    (void)state;
    reply sc[] = {{"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n",
                   0, 0},
                  {OK_BODY(2) "ok", 0, 0},
                  {"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nContent-Length: 4\r\n"
                   "Connection: close\r\n\r\nslow",
                   0, 0}};
    server *s = server_start(sc, 3);
    pf_http_opts o = test_opts();
    o.retry_after_max_ms = 5000;
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/r")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    int64_t t0 = pf_time_mono_ms();
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_OK);
    int64_t el = pf_time_mono_ms() - t0;
    assert_true(el >= 950 && el < 3000);
    assert_int_equal(r.attempts, 2);
    /* Retry-After above the maximum: fail at once. */
    t0 = pf_time_mono_ms();
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_true(pf_time_mono_ms() - t0 < 1000);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.retry_after_ms, 3600000);
    assert_non_null(strstr(e.msg, "Retry-After 3600 s is above the 5 s limit"));
    assert_int_equal(server_served(s), 3);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_connection_refused(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd); /* nothing listens there now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_ENET);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.status, 0);
    assert_int_equal(e.retriable, 1);
    assert_non_null(strstr(e.msg, "(gave up after 3 attempts)"));
    pf_http_response_free(&r);
    pf_http_client_free(c);
}

static const unsigned char GZ_HELLO[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd,
    0xc9, 0xc9, 0x57, 0x48, 0xaf, 0xca, 0x2c, 0x50, 0x28, 0xcf, 0x2f, 0xca, 0x49,
    0x01, 0x00, 0x6b, 0x7d, 0xe8, 0xb7, 0x10, 0x00, 0x00, 0x00}; /* "hello gzip world" */

static void test_gzip(void **state)
{
    (void)state;
    static char good[256], bad[256];
    const char *head = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
                       "Content-Length: 36\r\n\r\n";
    size_t hl = strlen(head);
    memcpy(good, head, hl);
    memcpy(good + hl, GZ_HELLO, sizeof GZ_HELLO);
    memcpy(bad, good, hl + sizeof GZ_HELLO);
    memset(bad + hl + 12, 0xff, 12); /* corrupt the deflate stream */
    reply sc[] = {{good, hl + sizeof GZ_HELLO, 0},
                  {bad, hl + sizeof GZ_HELLO, 0},
                  {bad, hl + sizeof GZ_HELLO, 0}};
    server *s = server_start(sc, 3);
    pf_http_opts o = test_opts();
    o.max_attempts = 2;
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/gz")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_OK);
    assert_string_equal(pf_buf_str(&r.body), "hello gzip world");
    assert_non_null(strstr(s->req[0], "Accept-Encoding: "));
    assert_non_null(strstr(s->req[0], "gzip"));
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EDATA);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(e.retriable, 1);
    assert_int_equal(server_served(s), 3);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static void test_stall_timeout(void **state)
{
    (void)state;
    reply sc[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\npart", 0, 3000}};
    server *s = server_start(sc, 1);
    pf_http_opts o = test_opts();
    o.max_attempts = 1;
    o.timeout_ms = 300;
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/stall")};
    pf_error e;
    int64_t t0 = pf_time_mono_ms();
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_ENET);
    assert_true(pf_time_mono_ms() - t0 < 2000);
    assert_non_null(strstr(e.msg, "GET http://127.0.0.1:"));
    pf_http_client_free(c);
    server_stop(s);
}

static void test_redirects(void **state)
{
    (void)state;
    static char r1[256], r2[256], r3[256];
    reply sc[MAX_SCRIPT] = {{NULL, 0, 0}};
    int n = 0;
    server *s = server_start(sc, 0);
    snprintf(
        r1, sizeof r1,
        "HTTP/1.1 302 Found\r\nLocation: /moved\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    snprintf(r2, sizeof r2,
             "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:%d/other\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n",
             s->port);
    snprintf(r3, sizeof r3,
             "HTTP/1.1 301 Moved\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0\r\n"
             "Connection: close\r\n\r\n");
    sc[n++] = (reply){r1, 0, 0};              /* 0: not followed */
    sc[n++] = (reply){r1, 0, 0};              /* 1: followed, same origin */
    sc[n++] = (reply){OK_BODY(2) "ok", 0, 0}; /* 2 */
    sc[n++] = (reply){r2, 0, 0};              /* 3: to another origin */
    sc[n++] = (reply){OK_BODY(2) "ok", 0, 0}; /* 4 */
    sc[n++] = (reply){r3, 0, 0};              /* 5: to ftp: refused */
    for (int i = 0; i < 6; i++)
        sc[n++] = (reply){r1, 0, 0}; /* 6..11: too many */
    pthread_mutex_lock(&s->mu);
    memcpy(s->script, sc, sizeof sc);
    s->nscript = n;
    pthread_mutex_unlock(&s->mu);

    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    const char *h[] = {"X-Api-Key: k3y-v4lue", "X-Plain: 1", NULL};
    pf_http_request rq = {
        .url = url_of(s, "/start"), .headers = h, .basic_user = USER, .basic_pass = PASS};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_int_equal(r.status, 302);
    assert_non_null(strstr(e.msg, "follow_redirects is off"));
    pf_http_client_free(c);

    o.follow_redirects = 1;
    c = client(&o);
    if (pf_http_fetch(c, &rq, NULL, NULL, &r, &e) != PF_OK) fail_msg("%s", e.msg);
    assert_int_equal(r.attempts, 1);
    assert_non_null(strstr(s->req[2], "GET /moved HTTP/1.1"));
    assert_non_null(strstr(s->req[2], "Authorization: Basic"));
    assert_non_null(strstr(s->req[2], "X-Api-Key: k3y-v4lue"));

    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_OK);
    assert_non_null(strstr(s->req[4], "GET /other HTTP/1.1"));
    assert_non_null(strstr(s->req[4], "Host: localhost:"));
    assert_null(strstr(s->req[4], "Authorization"));
    assert_null(strstr(s->req[4], "k3y-v4lue"));
    assert_non_null(strstr(s->req[4], "X-Plain: 1"));

    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_non_null(strstr(e.msg, "invalid or non-http(s)"));
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_EHTTP);
    assert_non_null(strstr(e.msg, "too many redirects"));
    assert_int_equal(server_served(s), 12);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

typedef struct sink {
    char data[256];
    size_t len;
    int resets;
    pf_status fail_with;
} sink;

static pf_status collect(void *ud, const char *p, size_t n)
{
    sink *k = ud;
    if (!p) {
        k->resets++;
        k->len = 0;
        return PF_OK;
    }
    if (k->fail_with != PF_OK) return k->fail_with;
    if (n > sizeof k->data - 1 - k->len) return PF_ETOOBIG;
    memcpy(k->data + k->len, p, n);
    k->len += n;
    k->data[k->len] = '\0';
    return PF_OK;
}

static void test_streaming(void **state)
{
    (void)state;
    reply sc[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\nhello", 0, 0},
                  {OK_BODY(11) "hello world", 0, 0},
                  {OK_BODY(11) "hello world", 0, 0},
                  {R503, 0, 0},
                  {R503, 0, 0},
                  {R503, 0, 0}};
    server *s = server_start(sc, 6);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/stream")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;
    sink k = {.fail_with = PF_OK};
    assert_int_equal(pf_http_fetch(c, &rq, collect, &k, &r, &e), PF_OK);
    assert_string_equal(k.data, "hello world");
    assert_int_equal(k.resets, 1);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.body.len, 0); /* streamed, not stored */
    /* A consumer failure stops at once, even with a retriable-looking status. */
    sink k2 = {.fail_with = PF_ENET};
    assert_int_equal(pf_http_fetch(c, &rq, collect, &k2, &r, &e), PF_ENET);
    assert_int_equal(r.attempts, 1);
    assert_non_null(strstr(e.msg, "consumer"));
    /* Error bodies are not streamed. */
    sink k3 = {.fail_with = PF_OK};
    assert_int_equal(pf_http_fetch(c, &rq, collect, &k3, &r, &e), PF_EHTTP);
    assert_int_equal(k3.len, 0);
    assert_int_equal(k3.resets, 2);
    assert_string_equal(pf_buf_str(&r.body), "busy");
    assert_int_equal(server_served(s), 6);
    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
}

static volatile sig_atomic_t g_cancel; /* the type pf_http_set_cancel_flag takes */

static void *raise_cancel(void *arg)
{
    sleep_ms(*(int *)arg);
    g_cancel = 1;
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;
    reply sc[] = {
        {"HTTP/1.1 503 Busy\r\nRetry-After: 10\r\nContent-Length: 0\r\n"
         "Connection: close\r\n\r\n",
         0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\npart", 0, 5000}};
    server *s = server_start(sc, 2);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/c")};
    pf_error e;
    pf_http_set_cancel_flag(&g_cancel);

    /* During the Retry-After sleep. */
    g_cancel = 0;
    pthread_t th;
    int delay = 150;
    pthread_create(&th, NULL, raise_cancel, &delay);
    int64_t t0 = pf_time_mono_ms();
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINTERRUPTED);
    assert_true(pf_time_mono_ms() - t0 < 1500);
    pthread_join(th, NULL);

    /* During a stalled transfer. */
    g_cancel = 0;
    pthread_create(&th, NULL, raise_cancel, &delay);
    t0 = pf_time_mono_ms();
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINTERRUPTED);
    assert_true(pf_time_mono_ms() - t0 < 2500);
    pthread_join(th, NULL);

    /* Already set: nothing is sent. */
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EINTERRUPTED);
    assert_int_equal(pf_http_sleep_ms(10000), PF_EINTERRUPTED);
    assert_int_equal(server_served(s), 2);
    pf_http_set_cancel_flag(NULL);
    g_cancel = 0;
    assert_int_equal(pf_http_cancel_requested(), 0);
    pf_http_client_free(c);
    server_stop(s);
}

/* ---- injection: CR, LF and NUL never reach the wire ---- */

/* Fetches REQ, expecting PF_EINVAL with a message containing WANT and not
 * SECRET, before any connection is made to S. */
static void refused(pf_http_client *c, server *s, const pf_http_request *rq, const char *want,
                    const char *secret)
{
    pf_error e;
    pf_error_clear(&e);
    int before = server_served(s);
    pf_status st = pf_http_fetch(c, rq, NULL, NULL, NULL, &e);
    if (st != PF_EINVAL) fail_msg("expected PF_EINVAL for '%s', got %d (%s)", want, st, e.msg);
    if (!strstr(e.msg, want)) fail_msg("message '%s' does not name '%s'", e.msg, want);
    if (secret && strstr(e.msg, secret)) fail_msg("message '%s' shows the value", e.msg);
    sleep_ms(30);
    assert_int_equal(server_served(s), before); /* nothing was sent */
}

static void test_injection_refused_before_sending(void **state)
{
    (void)state;
    reply sc[] = {{OK_BODY(2) "ok", 0, 0}};
    server *s = server_start(sc, 1);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    static const char *const SECRETV = "tok-SECRETVALUE";
    char h1[128], h2[128], url[256];

    /* A header value with CR LF: named, value not shown. */
    snprintf(h1, sizeof h1, "Authorization: Bearer %s\r\nX-Injected: 1", SECRETV);
    const char *hs1[] = {"Accept: application/json", h1, NULL};
    pf_http_request rq = {.url = url_of(s, "/x"), .headers = hs1};
    refused(c, s, &rq, "header 'Authorization'", "SECRETVALUE");
    /* A bare LF, and a CR alone. */
    snprintf(h2, sizeof h2, "X-Trace: %s\nX-Injected: 1", SECRETV);
    const char *hs2[] = {h2, NULL};
    rq.headers = hs2;
    refused(c, s, &rq, "header 'X-Trace'", "SECRETVALUE");
    snprintf(h2, sizeof h2, "X-Trace: %s\rX", SECRETV);
    refused(c, s, &rq, "header 'X-Trace'", "SECRETVALUE");
    /* A header name with a line break. */
    const char *hs3[] = {"X-Evil\r\nHost: other: 1", NULL};
    rq.headers = hs3;
    refused(c, s, &rq, "name of header 1", NULL);

    /* Percent-encoded CR, LF, NUL in the path: the segment is named. */
    rq.headers = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v2/a%%0D%%0AHost:%%20evil/x", s->port);
    rq.url = url;
    refused(c, s, &rq, "URL path segment 2", NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v2/%%0a", s->port);
    refused(c, s, &rq, "URL path segment 2", NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a%%00b", s->port);
    refused(c, s, &rq, "URL path segment 1", NULL);
    /* ... and in a query value: the parameter is named, its value not shown. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x?ok=1&api_key=SECRETVALUE%%0d%%0aX:1", s->port);
    refused(c, s, &rq, "query parameter 'api_key'", "SECRETVALUE");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x?q%%0A=1", s->port);
    refused(c, s, &rq, "query parameter name", NULL);
    /* Raw CR/LF in the URL. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x\r\nHost: evil", s->port);
    refused(c, s, &rq, "line break", NULL);

    /* Harmless look-alikes pass: %0 followed by another digit, %250A (an
     * encoded "%0A" text), and the request really reaches the server. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x%%09y/%%0Fz?q=%%250A&r=%%01", s->port);
    rq.url = url;
    pf_error e;
    pf_error_clear(&e);
    if (pf_http_fetch(c, &rq, NULL, NULL, NULL, &e) != PF_OK) fail_msg("%s", e.msg);
    assert_int_equal(server_served(s), 1);
    assert_non_null(strstr(s->req[0], "GET /x%09y/%0Fz?q=%250A&r=%01 HTTP/1.1\r\n"));
    pf_http_client_free(c);
    server_stop(s);
}

static void test_check_text_and_query_encoding(void **state)
{
    (void)state;
    pf_error e;
    assert_int_equal(pf_http_check_text("header", "X-A", "plain value", 11, &e), PF_OK);
    assert_int_equal(pf_http_check_text("header", "X-A", NULL, 0, &e), PF_OK);
    static const char with_nul[] = {'a', 'b', '\0', 'c'};
    pf_error_clear(&e);
    assert_int_equal(pf_http_check_text("path parameter", "id", with_nul, 4, &e), PF_EINVAL);
    assert_non_null(strstr(e.msg, "path parameter 'id'"));
    assert_non_null(strstr(e.msg, "NUL"));
    assert_non_null(strstr(e.msg, "byte 2"));
    pf_error_clear(&e);
    assert_int_equal(pf_http_check_text("query parameter", "q", "x\ry", 3, &e), PF_EINVAL);
    assert_non_null(strstr(e.msg, "query parameter 'q'"));
    assert_non_null(strstr(e.msg, "line break"));
    assert_null(strstr(e.msg, "x\ry"));
    pf_error_clear(&e);
    assert_int_equal(pf_http_check_text(NULL, "a\nb", "v", 1, &e), PF_EINVAL);
    assert_non_null(strstr(e.msg, "name of value 'a...'"));

    /* The query is encoded by libcurl's URL API; the result decodes back to
     * exactly what was given (checked by a decoder written here). */
    static const char *const values[] = {
        "a b",   "k=v&x=y", "100%", "+01:00",        "\xc3\xa9t\xc3\xa9",
        "#frag", "/path?q", "",     "~unreserved-._"};
    pf_buf u;
    pf_buf_init(&u, 0);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        pf_buf_reset(&u);
        assert_int_equal(pf_buf_puts(&u, "http://h/p"), PF_OK);
        assert_int_equal(pf_http_url_add_query(&u, "n a=me", values[i], &e), PF_OK);
        const char *q = strchr(pf_buf_str(&u), '?');
        assert_non_null(q);
        q++;
        assert_null(strchr(q, '#'));
        assert_null(strchr(q, ' '));
        const char *eq = strchr(q, '=');
        assert_non_null(eq);
        assert_null(strchr(eq + 1, '=')); /* '=' in name and value encoded */
        assert_null(strchr(q, '&'));
        char dec[2][128];
        const char *parts[2] = {q, eq + 1};
        size_t lens[2] = {(size_t)(eq - q), strlen(eq + 1)};
        for (int k = 0; k < 2; k++) {
            size_t o = 0;
            for (size_t j = 0; j < lens[k]; j++) {
                char ch = parts[k][j];
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    unsigned v;
                    assert_int_equal(sscanf(parts[k] + j + 1, "%2x", &v), 1);
                    ch = (char)v;
                    j += 2;
                }
                dec[k][o++] = ch;
            }
            dec[k][o] = '\0';
        }
        assert_string_equal(dec[0], "n a=me");
        assert_string_equal(dec[1], values[i]);
    }
    pf_buf_free(&u);
}

static void test_redirect_to_encoded_line_break_refused(void **state)
{
    (void)state;
    static const char loc[] = "HTTP/1.1 302 Found\r\nLocation: /a%0d%0aSet-Cookie:%20x=1\r\n"
                              "Content-Length: 0\r\nConnection: close\r\n\r\n";
    reply sc[] = {{loc, 0, 0}, {OK_BODY(2) "ok", 0, 0}};
    server *s = server_start(sc, 2);
    pf_http_opts o = test_opts();
    o.follow_redirects = 1;
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/start")};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EHTTP);
    assert_non_null(strstr(e.msg, "redirect"));
    assert_int_equal(server_served(s), 1); /* the redirect target was not requested */
    pf_http_client_free(c);
    server_stop(s);
}

/* ---- secrets in server text, bounded headers ---- */

/* A 4xx reply with BODY (LEN bytes), in a new buffer (freed by the caller). */
static char *reply_400(const char *body, size_t len, size_t *out_len)
{
    static const char head[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                               "Connection: close\r\nContent-Length: %zu\r\n\r\n";
    char h[256];
    int hl = snprintf(h, sizeof h, head, len);
    char *raw = malloc((size_t)hl + len);
    assert_non_null(raw);
    memcpy(raw, h, (size_t)hl);
    memcpy(raw + hl, body, len);
    *out_len = (size_t)hl + len;
    return raw;
}

/* 1 when MSG holds the first MIN bytes or more of SECRET anywhere. */
static int holds_prefix(const char *msg, const char *secret, size_t min)
{
    char part[128];
    snprintf(part, sizeof part, "%.*s", (int)min, secret);
    return strstr(msg, part) != NULL;
}

static void test_server_text_redacted_before_cut(void **state)
{
    (void)state;
    /* The secret follows a long run of white space, which collapses to one
     * space: wherever the secret starts (around the first 4 KiB, where the
     * text used to be cut before redaction), none of it shows. */
    enum { NOFF = 11 };
    reply sc[NOFF];
    char *raws[NOFF];
    for (int i = 0; i < NOFF; i++) {
        size_t pad = 4080 + (size_t)i * 2, len;
        char *body = malloc(pad + 64);
        assert_non_null(body);
        memcpy(body, "denied:", 7);
        memset(body + 7, ' ', pad - 7);
        int bl = snprintf(body + pad, 64, "%s trailing words", PASS);
        raws[i] = reply_400(body, pad + (size_t)bl, &len);
        free(body);
        sc[i] = (reply){raws[i], len, 0};
    }
    server *s = server_start(sc, NOFF);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/v2/x"), .basic_user = USER, .basic_pass = PASS};
    for (int i = 0; i < NOFF; i++) {
        pf_error e;
        pf_error_clear(&e);
        assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EHTTP);
        assert_non_null(strstr(e.msg, "denied: *** trailing words"));
        assert_false(holds_prefix(e.msg, PASS, 4));
    }
    assert_int_equal(server_served(s), NOFF);
    pf_http_client_free(c);
    server_stop(s);
    for (int i = 0; i < NOFF; i++)
        free(raws[i]);
}

static void test_server_text_encoded_and_collapsed_secrets(void **state)
{
    (void)state;
    /* Header secrets with characters that JSON, URLs and HTML escape. */
    const char *hdrs[] = {"X-Api-Key: k\xc3\xa9y/with\"quote&more", "Authorization: Bearer tok en-9876",
                          NULL};
    static const char body[] =
        "{\"echo\":\"k\\u00e9y\\/with\\\"quote&more\"} url=k%C3%A9y%2Fwith%22quote%26more "
        "html=k&#233;y/with&quot;quote&amp;more bearer=tok\r\n\t en-9876 end";
    size_t len;
    char *raw = reply_400(body, sizeof body - 1, &len);
    reply sc[] = {{raw, len, 0}};
    server *s = server_start(sc, 1);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    pf_http_request rq = {.url = url_of(s, "/v2/x"), .headers = hdrs};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, NULL, &e), PF_EHTTP);
    /* The line break and tab collapse to one space: "tok en-9876", the
     * bearer token, appears only then and is redacted too. */
    assert_non_null(strstr(e.msg, "{\"echo\":\"***\"} url=*** html=*** bearer=*** end"));
    assert_null(strstr(e.msg, "with"));
    assert_null(strstr(e.msg, "9876"));
    pf_http_client_free(c);
    server_stop(s);
    free(raw);
}

/* A 200 reply whose head holds NLINES lines "X-Pad-N: <LINE_LEN bytes>". */
static char *reply_big_headers(size_t nlines, size_t line_len, size_t *out_len)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    static const char tail[] = "Content-Length: 2\r\nConnection: close\r\n\r\n[]";
    size_t cap = sizeof head + nlines * (line_len + 32) + sizeof tail;
    char *raw = malloc(cap);
    assert_non_null(raw);
    size_t o = 0;
    memcpy(raw, head, sizeof head - 1);
    o += sizeof head - 1;
    for (size_t i = 0; i < nlines; i++) {
        o += (size_t)snprintf(raw + o, cap - o, "X-Pad-%zu: ", i);
        memset(raw + o, 'h', line_len);
        o += line_len;
        memcpy(raw + o, "\r\n", 2);
        o += 2;
    }
    memcpy(raw + o, tail, sizeof tail - 1);
    *out_len = o + sizeof tail - 1;
    return raw;
}

static void test_header_and_trailer_bytes_are_capped(void **state)
{
    (void)state;
    size_t l_ok, l_many, l_small, l_line, l_trail;
    /* About 200 KiB of headers: under the cap, delivered. */
    char *ok = reply_big_headers(200, 1000, &l_ok);
    /* 400 KiB in 400 lines, each under libcurl's own line limit. */
    char *many = reply_big_headers(400, 1000, &l_many);
    /* 10 KiB against a cap of 8 KiB. */
    char *small = reply_big_headers(10, 1000, &l_small);
    /* One 10 MB header line. */
    char *line = reply_big_headers(1, 10u << 20, &l_line);
    /* A chunked body followed by 2 MB of trailers that never end. */
    static const char chunked[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  "2\r\n[]\r\n0\r\n";
    size_t tl = 20000, per = 100;
    char *trail = malloc(sizeof chunked + tl * (per + 16));
    assert_non_null(trail);
    memcpy(trail, chunked, sizeof chunked - 1);
    l_trail = sizeof chunked - 1;
    for (size_t i = 0; i < tl; i++) {
        l_trail += (size_t)sprintf(trail + l_trail, "X-T%zu: ", i);
        memset(trail + l_trail, 't', per);
        l_trail += per;
        memcpy(trail + l_trail, "\r\n", 2);
        l_trail += 2;
    }
    reply sc[] = {{ok, l_ok, 0},       {many, l_many, 0}, {small, l_small, 0},
                  {line, l_line, 0}, {trail, l_trail, 0}};
    server *s = server_start(sc, 5);
    pf_http_opts o = test_opts();
    pf_http_client *c = client(&o);
    char want[256];
    pf_http_request rq = {.url = url_of(s, "/h")};
    pf_http_response r;
    pf_http_response_init(&r);
    pf_error e;

    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_OK);
    assert_string_equal(pf_buf_str(&r.body), "[]");

    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_ETOOBIG);
    snprintf(want, sizeof want, "response headers from http://127.0.0.1:%d/h exceed 256 KiB",
             s->port);
    assert_non_null(strstr(e.msg, want));
    assert_int_equal(e.retriable, 0);
    assert_int_equal(server_served(s), 2); /* not retried */

    o.max_headers = 8192;
    pf_http_client *c8 = client(&o);
    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c8, &rq, NULL, NULL, &r, &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "exceed 8 KiB"));
    pf_http_client_free(c8);

    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "a header or trailer line is longer than 100 KiB"));
    assert_null(strstr(e.msg, "Out of memory"));

    pf_error_clear(&e);
    assert_int_equal(pf_http_fetch(c, &rq, NULL, NULL, &r, &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "exceed 256 KiB"));
    assert_int_equal(server_served(s), 5);

    o.max_headers = 0;
    pf_http_client *bad = NULL;
    assert_int_equal(pf_http_client_new(&o, &bad, &e), PF_EINVAL);
    assert_null(bad);

    pf_http_response_free(&r);
    pf_http_client_free(c);
    server_stop(s);
    free(ok);
    free(many);
    free(small);
    free(line);
    free(trail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_defaults),
        cmocka_unit_test(test_retry_policy),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_url_helpers),
        cmocka_unit_test(test_client_new_errors),
        cmocka_unit_test(test_auth_and_headers),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_503_then_200),
        cmocka_unit_test(test_401_no_retry_redacted),
        cmocka_unit_test(test_404_403_400_not_retried),
        cmocka_unit_test(test_exhausted),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_truncated_retried),
        cmocka_unit_test(test_204_and_post),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_stall_timeout),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_injection_refused_before_sending),
        cmocka_unit_test(test_check_text_and_query_encoding),
        cmocka_unit_test(test_redirect_to_encoded_line_break_refused),
        cmocka_unit_test(test_server_text_redacted_before_cut),
        cmocka_unit_test(test_server_text_encoded_and_collapsed_secrets),
        cmocka_unit_test(test_header_and_trailer_bytes_are_capped),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pf_log_clear_secrets();
    return rc;
}
