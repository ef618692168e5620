/* test_metrics.c: the metrics endpoint against hostile input
 * (src/sched/metrics.h): the request-head parser case by case (the
 * sequence that once crashed the scheduler, a head ending before the first
 * space, no space at all, a huge path, NUL bytes, HEAD, query strings,
 * header syntax, every prefix of a request), and the server driven in
 * process the way the scheduler drives it (idle clients, clients that close
 * early, partial writes, an endless head, many connections, timeouts, no
 * descriptors left to accept with, a forked child closing its copy). Every parser input is copied
 * into a heap block of exactly its length, so AddressSanitizer sees any read past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched/metrics.h"
#include "util/timeutil.h"

/* ---- the parser ---- */

typedef struct verdict {
    pf_metrics_parse r;
    int status; /* pf_metrics_route */
    pf_metrics_method method;
    char path[64]; /* "(null)" when req.path is NULL; "" unless OK */
    size_t head_len;
    int minor;
} verdict;

static verdict judge(const void *data, size_t len)
{
    verdict v;
    memset(&v, 0, sizeof v);
    char *buf = malloc(len ? len : 1); /* exactly LEN bytes: no slack to read */
    assert_non_null(buf);
    if (len) memcpy(buf, data, len);
    pf_metrics_request req;
    memset(&req, 0xa5, sizeof req);
    v.r = pf_metrics_parse_request(len ? buf : NULL, len, &req);
    v.status = pf_metrics_route(v.r, v.r == PF_METRICS_PARSE_OK ? &req : NULL);
    if (v.r == PF_METRICS_PARSE_OK) {
        v.method = req.method;
        v.head_len = req.head_len;
        v.minor = req.minor_version;
        assert_true(req.head_len <= len);
        assert_true(req.target >= buf && req.target + req.target_len <= buf + len);
        if (req.path) {
            assert_true(req.path_len < sizeof v.path);
            memcpy(v.path, req.path, req.path_len);
            v.path[req.path_len] = '\0';
        } else {
            strcpy(v.path, "(null)");
        }
    }
    free(buf);
    return v;
}

static verdict judge_s(const char *s)
{
    return judge(s, strlen(s));
}

static int status_of(const char *s)
{
    return judge_s(s).status;
}

/* The two requests that crashed the scheduler under the old parser, one
 * after the other on the same server: a full buffer without a space (431),
 * then a head that ends before the first space; the second made it compute
 * a negative length and memchr over a wrapped size. */
static void test_parse_crash_sequence(void **state)
{
    (void)state;
    char *full = malloc(PF_METRICS_MAX_REQUEST);
    assert_non_null(full);
    memset(full, 'A', PF_METRICS_MAX_REQUEST);
    verdict v = judge(full, PF_METRICS_MAX_REQUEST);
    /* "AAAA..." is a method so far: no verdict until the cap. */
    assert_int_equal(v.r, PF_METRICS_PARSE_TOO_LARGE);
    assert_int_equal(v.status, 431);
    assert_int_equal(judge(full, PF_METRICS_MAX_REQUEST - 1).status, 0);
    free(full);
    assert_int_equal(status_of("\r\n\r\n A"), 400);
}

static void test_parse_head_ends_before_first_space(void **state)
{
    (void)state;
    assert_int_equal(status_of("\r\n\r\nGET / HTTP/1.1"), 400);
    assert_int_equal(status_of("\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("\n\nGET /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET\r\n\r\n /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics\r\n\r\n HTTP/1.1"), 400);
    assert_int_equal(status_of("\r\n"), 400);
    assert_int_equal(status_of("\r"), 400); /* a request line cannot start with CR */
    assert_int_equal(status_of(" GET /metrics HTTP/1.1\r\n\r\n"), 400);
}

static void test_parse_no_space(void **state)
{
    (void)state;
    assert_int_equal(status_of("garbage\r\n\r\n"), 400);
    assert_int_equal(status_of("GET\r\n\r\n"), 400);
    assert_int_equal(status_of("GET/metricsHTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics\r\n\r\n"), 400); /* HTTP/0.9 */
    assert_int_equal(status_of("GET  /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics  HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1 \r\n\r\n"), 400);
    assert_int_equal(status_of("GET\t/metrics HTTP/1.1\r\n\r\n"), 400);
    /* Well-formed so far: keep reading. */
    assert_int_equal(status_of(""), 0);
    assert_int_equal(status_of("GET"), 0);
    assert_int_equal(status_of("GET /metrics HTTP/1.1"), 0);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\n"), 0);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nHost: x\r\n\r"), 0);
}

static void test_parse_huge_path(void **state)
{
    (void)state;
    size_t n = 3 * PF_METRICS_MAX_REQUEST;
    char *big = malloc(n);
    assert_non_null(big);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', n - 5);
    memcpy(big + n - 13, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(judge(big, n).status, 431);
    assert_int_equal(judge(big, PF_METRICS_MAX_REQUEST).status, 431);
    assert_int_equal(judge(big, PF_METRICS_MAX_REQUEST - 1).status, 0);
    /* A head of exactly the cap is served; one byte more is not. */
    static const char line[] = "GET /metrics HTTP/1.1\r\nX: ";
    size_t L = PF_METRICS_MAX_REQUEST;
    memcpy(big, line, sizeof line - 1);
    memset(big + sizeof line - 1, 'b', L - (sizeof line - 1) - 4);
    memcpy(big + L - 4, "\r\n\r\n", 4);
    verdict v = judge(big, L);
    assert_int_equal(v.status, 200);
    assert_int_equal(v.head_len, L);
    /* Bytes past the cap are never looked at: a head within it is judged
     * the same whatever follows. */
    memset(big + L, 0, n - L);
    assert_int_equal(judge(big, n).status, 200);
    memset(big + sizeof line - 1, 'b', L + 1 - (sizeof line - 1) - 4);
    memcpy(big + L + 1 - 4, "\r\n\r\n", 4);
    assert_int_equal(judge(big, L + 1).status, 431);
    free(big);
}

static void test_parse_nul_and_controls(void **state)
{
    (void)state;
    static const char a[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
    assert_int_equal(judge(a, sizeof a - 1).status, 400);
    static const char b[] = "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(judge(b, sizeof b - 1).status, 400);
    static const char c[] = "GE\0T /metrics HTTP/1.1\r\n\r\n";
    assert_int_equal(judge(c, sizeof c - 1).status, 400);
    /* Rejected at once, before any end of head. */
    assert_int_equal(judge("\0", 1).status, 400);
    assert_int_equal(judge("GET /met\0", 9).status, 400);
    assert_int_equal(judge_s("GET /met\x7f").status, 400);
    assert_int_equal(judge_s("GET /m\xc3\xa9trics").status, 400); /* raw UTF-8 in the target */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX: a\x01\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX: a\x7f\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400); /* bare CR */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\rX: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\n\rX"), 400);
}

static void test_parse_methods_and_versions(void **state)
{
    (void)state;
    verdict v = judge_s("HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(v.status, 200);
    assert_int_equal(v.method, PF_METRICS_METHOD_HEAD);
    v = judge_s("GET /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(v.status, 200);
    assert_int_equal(v.method, PF_METRICS_METHOD_GET);
    assert_int_equal(v.minor, 0);
    assert_int_equal(v.head_len, 25);
    assert_int_equal(status_of("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 405);
    assert_int_equal(status_of("head /metrics HTTP/1.1\r\n\r\n"), 405); /* case-sensitive */
    assert_int_equal(status_of("GETS /metrics HTTP/1.1\r\n\r\n"), 405);
    assert_int_equal(status_of("DELETE /nowhere HTTP/1.1\r\n\r\n"), 405);
    assert_int_equal(status_of("OPTIONS * HTTP/1.1\r\n\r\n"), 405);
    assert_int_equal(status_of("CONNECT example.com:443 HTTP/1.1\r\n\r\n"), 405);
    assert_int_equal(status_of("G(T /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/2.0\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.10\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics http/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.x\r\n\r\n"), 400);
    assert_int_equal(judge_s("GET /metrics HTTP/1.9\r\n\r\n").minor, 9);
}

static void test_parse_targets(void **state)
{
    (void)state;
    verdict v = judge_s("GET /metrics?x=1&y HTTP/1.1\r\n\r\n");
    assert_int_equal(v.status, 200);
    assert_string_equal(v.path, "/metrics");
    assert_int_equal(status_of("GET /metrics? HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(status_of("HEAD /metrics?format=text HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(status_of("GET /metrics?/x HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    assert_int_equal(status_of("GET /metrics/ HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET /metricsx HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET /metric HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET /?/metrics HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET /metrics#f HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET //metrics HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET /%6detrics HTTP/1.1\r\n\r\n"), 404);
    /* Absolute form (RFC 9112 3.2.2: a server must accept it). */
    v = judge_s("GET http://127.0.0.1:9/metrics?a HTTP/1.1\r\n\r\n");
    assert_int_equal(v.status, 200);
    assert_string_equal(v.path, "/metrics");
    assert_int_equal(status_of("GET HTTPS://h/metrics HTTP/1.1\r\n\r\n"), 200);
    v = judge_s("GET http://h HTTP/1.1\r\n\r\n");
    assert_int_equal(v.status, 404);
    assert_string_equal(v.path, "/");
    assert_int_equal(status_of("GET http://h?metrics HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("GET http:///metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET http:// HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET ftp://h/metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET metrics HTTP/1.1\r\n\r\n"), 400);
    v = judge_s("GET * HTTP/1.1\r\n\r\n");
    assert_int_equal(v.status, 400);
    assert_string_equal(v.path, "(null)");
}

static void test_parse_headers(void **state)
{
    (void)state;
    static const char ok[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: */*\r\n"
                             "User-Agent: Prometheus/2.0\r\nX-Empty:\r\nX-Tab:\ta\tb\r\n\r\n";
    verdict v = judge(ok, sizeof ok - 1);
    assert_int_equal(v.status, 200);
    assert_int_equal(v.head_len, sizeof ok - 1);
    /* Bare LF line ends, and a mix. */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\nHost: x\n\n"), 200);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nHost: x\n\r\n"), 200);
    /* Non-ASCII bytes in a value are allowed (obs-text). */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"), 200);
    /* What a header line must not be. */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), 400);  /* obs-fold */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), 400); /* obs-fold */
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX : a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\n: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /metrics HTTP/1.1\r\nX(y): a\r\n\r\n"), 400);
    /* Only the head is judged: a body or a pipelined request after it is not looked at. */
    static const char piped[] = "GET /metrics HTTP/1.1\r\n\r\n\0\0garbage\r\n\r\nPOST";
    v = judge(piped, sizeof piped - 1);
    assert_int_equal(v.status, 200);
    assert_int_equal(v.head_len, 25);
    /* The health endpoint, and only it. */
    assert_int_equal(status_of("GET /healthz HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(status_of("HEAD /healthz?x=1 HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(status_of("GET /healthzz HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(status_of("POST /healthz HTTP/1.1\r\n\r\n"), 405);
    /* Route with no request for the other verdicts. */
    assert_int_equal(pf_metrics_route(PF_METRICS_PARSE_INCOMPLETE, NULL), 0);
    assert_int_equal(pf_metrics_route(PF_METRICS_PARSE_BAD, NULL), 400);
    assert_int_equal(pf_metrics_route(PF_METRICS_PARSE_TOO_LARGE, NULL), 431);
    assert_int_equal(pf_metrics_route(PF_METRICS_PARSE_OK, NULL), 400);
}

/* Every prefix of a request is consistent with the whole: no verdict
 * (INCOMPLETE) until the head ends, or the verdict of the whole as soon as
 * a bad byte arrives, never anything else. */
static void test_parse_every_prefix(void **state)
{
    (void)state;
    static const char *reqs[] = {
        "GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
        "HEAD /x HTTP/1.0\nA:b\n\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "GET /metrics HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1",
        "GET /metrics HTTP/1.1\r\nX: \x01\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
        size_t n = strlen(reqs[k]);
        int whole = status_of(reqs[k]);
        assert_true(whole != 0);
        int seen = 0;
        for (size_t len = 0; len <= n; len++) {
            int st = judge(reqs[k], len).status;
            if (seen) {
                assert_int_equal(st, whole); /* a verdict never changes */
            } else if (st) {
                assert_int_equal(st, whole);
                seen = 1;
            }
        }
        assert_true(seen);
    }
}

/* ---- the server, driven as the scheduler drives it ---- */

typedef struct rig {
    pf_metrics_server *s;
    pf_metrics m;
    int port;
} rig;

static void rig_open(rig *r, size_t flows)
{
    memset(r, 0, sizeof *r);
    pf_error e;
    assert_int_equal(pf_metrics_server_open(NULL, 0, &r->s, &e), PF_OK);
    r->port = pf_metrics_server_port(r->s);
    assert_true(r->port > 0);
    r->m.started_ms = 1700000000000LL;
    for (size_t i = 0; i < flows; i++) {
        char name[96];
        snprintf(name, sizeof name, "flow-%05zu-with-a-rather-long-name-to-fill-the-response", i);
        pf_metrics_flow *f = pf_metrics_flow_get(&r->m, name);
        assert_non_null(f);
        f->records = (long long)i * 1000;
        f->runs[PF_RUN_OK] = (long long)i;
    }
}

static void rig_close(rig *r)
{
    pf_metrics_server_close(r->s);
    pf_metrics_free(&r->m);
}

/* One turn of the scheduler's loop: poll the server's descriptor (at most
 * WAIT_MS, less when a connection's deadline is nearer), then handle. */
static void pump(rig *r, int wait_ms)
{
    struct pollfd pfd;
    int64_t dl = INT64_MAX;
    pf_metrics_server_pollfd(r->s, &pfd, &dl);
    int64_t now = pf_time_mono_ms();
    int64_t w = wait_ms;
    if (dl != INT64_MAX && dl - now < w) w = dl - now < 0 ? 0 : dl - now;
    int n = poll(&pfd, 1, (int)w);
    pf_metrics_server_handle(r->s, n > 0 ? pfd.revents : 0, &r->m, 1700000600000LL);
}

/* A non-blocking client connected to the server (the kernel completes the
 * handshake before the server accepts). RCVBUF > 0 shrinks its receive
 * buffer first. */
static int client(const rig *r, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)r->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

/* Sends all of DATA from FD, pumping the server whenever the socket is full. */
static void send_all(rig *r, int fd, const void *data, size_t len)
{
    size_t off = 0;
    int64_t deadline = pf_time_mono_ms() + 10000;
    while (off < len) {
        ssize_t n = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail_msg("send: %s", strerror(errno));
        assert_true(pf_time_mono_ms() < deadline);
        pump(r, 10);
    }
}

typedef struct reply {
    char *data;
    size_t len;
    int eof; /* 1: the server closed its side (else a reset or the limit) */
} reply;

/* Reads from FD until the server closes its side, pumping the server
 * meanwhile; at most LIMIT bytes (0: no limit), within 10 s. */
static reply read_reply(rig *r, int fd, size_t limit)
{
    reply rp = {NULL, 0, 0};
    size_t alloc = 0;
    int64_t deadline = pf_time_mono_ms() + 10000;
    for (;;) {
        if (alloc - rp.len < 65536) {
            alloc = alloc ? alloc * 2 : 131072;
            rp.data = realloc(rp.data, alloc + 1);
            assert_non_null(rp.data);
        }
        size_t want = alloc - rp.len;
        if (limit && want > limit - rp.len) want = limit - rp.len;
        ssize_t n = recv(fd, rp.data + rp.len, want, 0);
        if (n > 0) {
            rp.len += (size_t)n;
            if (limit && rp.len >= limit) break;
            continue;
        }
        if (n == 0) {
            rp.eof = 1;
            break;
        }
        if (errno == ECONNRESET) break;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail_msg("recv: %s", strerror(errno));
        if (pf_time_mono_ms() >= deadline) fail_msg("no reply within 10 s (%zu bytes)", rp.len);
        pump(r, 10);
    }
    rp.data = rp.data ? rp.data : malloc(1);
    rp.data[rp.len] = '\0';
    return rp;
}

static int reply_status(const reply *rp)
{
    int code = 0;
    if (sscanf(rp->data, "HTTP/1.1 %d ", &code) != 1) return -1;
    return code;
}

/* The body of RP, checked against its Content-Length. */
static const char *reply_body(const reply *rp, size_t *body_len)
{
    const char *end = strstr(rp->data, "\r\n\r\n");
    assert_non_null(end);
    const char *cl = strstr(rp->data, "Content-Length: ");
    assert_non_null(cl);
    assert_true(cl < end);
    size_t want = (size_t)strtoull(cl + 16, NULL, 10);
    *body_len = rp->len - (size_t)(end + 4 - rp->data);
    assert_int_equal(*body_len, want);
    return end + 4;
}

/* One request, its whole reply; returns the status. */
static int exchange(rig *r, const void *data, size_t len, reply *out)
{
    int fd = client(r, 0);
    send_all(r, fd, data, len);
    reply rp = read_reply(r, fd, 0);
    close(fd);
    int code = reply_status(&rp);
    if (out)
        *out = rp;
    else
        free(rp.data);
    return code;
}

static int get_metrics(rig *r)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    reply rp;
    int code = exchange(r, req, sizeof req - 1, &rp);
    if (code == 200) {
        size_t bl;
        const char *body = reply_body(&rp, &bl);
        assert_non_null(strstr(body, "ppflow_scheduler_start_time_seconds 1700000000.000\n"));
    }
    free(rp.data);
    return code;
}

static void test_server_crash_sequence(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 2);
    char *full = malloc(PF_METRICS_MAX_REQUEST);
    assert_non_null(full);
    memset(full, 'A', PF_METRICS_MAX_REQUEST);
    assert_int_equal(exchange(&r, full, PF_METRICS_MAX_REQUEST, NULL), 431);
    free(full);
    assert_int_equal(exchange(&r, "\r\n\r\n A", 7, NULL), 400);
    assert_int_equal(exchange(&r, "\r\n\r\nGET / HTTP/1.1", 18, NULL), 400);
    assert_int_equal(exchange(&r, "garbage\r\n\r\n", 11, NULL), 400);
    assert_int_equal(exchange(&r, "GET /metrics\0 HTTP/1.1\r\n\r\n", 26, NULL), 400);
    assert_int_equal(exchange(&r, "PUT /metrics HTTP/1.1\r\n\r\n", 25, NULL), 405);
    assert_int_equal(exchange(&r, "GET /x HTTP/1.1\r\n\r\n", 19, NULL), 404);
    reply rp;
    assert_int_equal(exchange(&r, "HEAD /metrics?x HTTP/1.1\r\n\r\n", 28, &rp), 200);
    assert_true(rp.len >= 4 && memcmp(rp.data + rp.len - 4, "\r\n\r\n", 4) == 0);
    free(rp.data);
    assert_int_equal(get_metrics(&r), 200);
    rig_close(&r);
}

/* Clients that connect and say nothing, more of them than the server
 * serves at once, delay a scrape by nothing like their timeout. */
static void test_server_idle_clients_do_not_block(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 3);
    int idle[PF_METRICS_MAX_CONNS + 4];
    for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++) {
        idle[i] = client(&r, 0);
        pump(&r, 0);
    }
    /* Half a request from one more. */
    int half = client(&r, 0);
    send_all(&r, half, "GET /metr", 9);
    pump(&r, 0);
    int64_t t0 = pf_time_mono_ms();
    assert_int_equal(get_metrics(&r), 200);
    assert_int_equal(get_metrics(&r), 200);
    assert_true(pf_time_mono_ms() - t0 < PF_METRICS_CONN_TIMEOUT_MS / 2);
    for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++)
        close(idle[i]);
    close(half);
    rig_close(&r);
}

/* A client that goes away before reading a large response: the server's
 * sends fail (EPIPE or a reset), which must neither raise SIGPIPE (this
 * process keeps the default action, so it would die) nor stop it. */
static void test_server_client_closes_early(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 800);
    static const char req[] = "GET /metrics HTTP/1.1\r\n\r\n";
    for (int k = 0; k < 4; k++) {
        int fd = client(&r, 2048);
        send_all(&r, fd, req, sizeof req - 1);
        if (k % 2) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close with a reset */
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        } else {
            pump(&r, 0); /* the server starts sending first */
        }
        close(fd);
        for (int i = 0; i < 20; i++)
            pump(&r, 5);
    }
    /* Closed after sending half a request, too. */
    int fd = client(&r, 0);
    send_all(&r, fd, "GET /met", 8);
    close(fd);
    pump(&r, 5);
    assert_int_equal(get_metrics(&r), 200);
    rig_close(&r);
}

/* A response far larger than the socket buffers to a client with a tiny
 * receive buffer: sent in many partial writes, whole and in order, while
 * another client is served in between. */
static void test_server_partial_writes(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 800);
    pf_buf expect;
    pf_buf_init(&expect, 0);
    assert_int_equal(pf_metrics_render(&r.m, 1700000600000LL, &expect), PF_OK);
    assert_true(expect.len > 500000); /* far more than the socket buffers hold */
    static const char req[] = "GET /metrics HTTP/1.1\r\n\r\n";
    int slow = client(&r, 4096);
    send_all(&r, slow, req, sizeof req - 1);
    reply first = read_reply(&r, slow, 1000); /* a little of it */
    assert_int_equal(first.len, 1000);
    assert_int_equal(first.eof, 0);
    assert_int_equal(get_metrics(&r), 200); /* served while the slow one waits */
    reply rest = read_reply(&r, slow, 0);
    assert_true(rest.eof);
    close(slow);
    char *all = malloc(first.len + rest.len + 1);
    assert_non_null(all);
    memcpy(all, first.data, first.len);
    memcpy(all + first.len, rest.data, rest.len);
    all[first.len + rest.len] = '\0';
    reply whole = {all, first.len + rest.len, 1};
    assert_int_equal(reply_status(&whole), 200);
    size_t bl;
    const char *body = reply_body(&whole, &bl);
    assert_int_equal(bl, expect.len);
    assert_memory_equal(body, expect.data, bl);
    free(first.data);
    free(rest.data);
    free(all);
    pf_buf_free(&expect);
    rig_close(&r);
}

/* 100 KB of head that never ends: 431 after the cap, and the client reads
 * the answer (the rest it sends is drained, not answered with a reset). */
static void test_server_endless_head(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 1);
    size_t n = 100 * 1024;
    char *flood = malloc(n);
    assert_non_null(flood);
    memcpy(flood, "GET /metrics HTTP/1.1\r\nX-Flood: ", 32);
    memset(flood + 32, 'x', n - 32);
    int fd = client(&r, 0);
    send_all(&r, fd, flood, n);
    reply rp = read_reply(&r, fd, 0);
    assert_int_equal(reply_status(&rp), 431);
    assert_true(rp.eof);
    close(fd);
    free(rp.data);
    free(flood);
    assert_int_equal(get_metrics(&r), 200);
    rig_close(&r);
}

/* Many clients at once, each with a complete request: every one is answered. */
static void test_server_many_connections(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 2);
    enum { N = 4 * PF_METRICS_MAX_CONNS };
    int fds[N];
    static const char req[] = "GET /metrics HTTP/1.1\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = client(&r, 0);
        assert_int_equal(send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL),
                         (ssize_t)(sizeof req - 1));
    }
    for (int i = 0; i < N; i++) {
        reply rp = read_reply(&r, fds[i], 0);
        assert_int_equal(reply_status(&rp), 200);
        size_t bl;
        reply_body(&rp, &bl);
        free(rp.data);
        close(fds[i]);
    }
    assert_int_equal(get_metrics(&r), 200);
    rig_close(&r);
}

/* An idle connection is closed at its deadline, which pollfd reports. */
static void test_server_timeout(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 1);
    struct pollfd pfd;
    int64_t dl = INT64_MAX;
    pf_metrics_server_pollfd(r.s, &pfd, &dl);
    assert_true(dl == INT64_MAX); /* nothing open: no deadline */
    int fd = client(&r, 0);
    int64_t t0 = pf_time_mono_ms();
    pump(&r, 100);
    pf_metrics_server_pollfd(r.s, &pfd, &dl);
    assert_true(dl != INT64_MAX);
    assert_true(dl <= t0 + PF_METRICS_CONN_TIMEOUT_MS + 200);
    reply rp = read_reply(&r, fd, 0); /* closed without an answer */
    int64_t took = pf_time_mono_ms() - t0;
    assert_int_equal(rp.len, 0);
    assert_true(took >= PF_METRICS_CONN_TIMEOUT_MS - 200);
    assert_true(took < PF_METRICS_CONN_TIMEOUT_MS + 3000);
    free(rp.data);
    close(fd);
    rig_close(&r);
}

/* With no descriptor left, accept fails (EMFILE) and the listening socket
 * stays readable: the server stops polling it for a while instead of making
 * the scheduler's loop spin, then serves the waiting client. */
static void test_server_accept_fails(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 1);
    int fd = client(&r, 0);
    send_all(&r, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    struct rlimit none = {.rlim_cur = (rlim_t)probe, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
    int64_t t0 = pf_time_mono_ms();
    pump(&r, 0); /* accept: EMFILE */
    struct pollfd pfd;
    int64_t dl = INT64_MAX;
    pf_metrics_server_pollfd(r.s, &pfd, &dl);
    int ready = poll(&pfd, 1, 0);
    int dup_failed = dup(0) < 0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_true(dup_failed);
    assert_int_equal(ready, 0); /* nothing to poll: no spinning */
    assert_true(dl != INT64_MAX && dl <= t0 + 1000);
    reply rp = read_reply(&r, fd, 0); /* served once the pause is over */
    assert_int_equal(reply_status(&rp), 200);
    free(rp.data);
    close(fd);
    rig_close(&r);
}

/* A forked run closes its copy of the server (runner.c's child_run): the
 * parent's open connection and its listening socket go on working. */
static void test_server_close_in_forked_child(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, 1);
    int fd = client(&r, 0);
    send_all(&r, fd, "GET /metr", 9);
    pump(&r, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pf_metrics_server_close(r.s);
        _exit(0);
    }
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    send_all(&r, fd, "ics HTTP/1.1\r\n\r\n", 16);
    reply rp = read_reply(&r, fd, 0);
    assert_int_equal(reply_status(&rp), 200);
    free(rp.data);
    close(fd);
    assert_int_equal(get_metrics(&r), 200);
    rig_close(&r);
}

static void test_server_open_errors(void **state)
{
    (void)state;
    pf_metrics_server *s = NULL;
    pf_error e;
    assert_int_equal(pf_metrics_server_open(NULL, -1, &s, &e), PF_EINVAL);
    assert_int_equal(pf_metrics_server_open(NULL, 65536, &s, &e), PF_EINVAL);
    assert_int_equal(pf_metrics_server_open("localhost", 0, &s, &e), PF_EINVAL);
    assert_non_null(strstr(e.msg, "'localhost' is not an IPv4 or IPv6 address"));
    assert_null(s);
    /* Another address than loopback's default, IPv4 or IPv6 (when the host has it). */
    assert_int_equal(pf_metrics_server_open("0.0.0.0", 0, &s, &e), PF_OK);
    assert_true(pf_metrics_server_port(s) > 0);
    pf_metrics_server_close(s);
    s = NULL;
    if (pf_metrics_server_open("::1", 0, &s, &e) == PF_OK) {
        assert_true(pf_metrics_server_port(s) > 0);
        pf_metrics_server_close(s);
        s = NULL;
    }
    rig r;
    rig_open(&r, 0);
    assert_int_equal(pf_metrics_server_open(NULL, r.port, &s, &e), PF_EIO);
    assert_null(s);
    rig_close(&r);
    pf_metrics_server_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_crash_sequence),
        cmocka_unit_test(test_parse_head_ends_before_first_space),
        cmocka_unit_test(test_parse_no_space),
        cmocka_unit_test(test_parse_huge_path),
        cmocka_unit_test(test_parse_nul_and_controls),
        cmocka_unit_test(test_parse_methods_and_versions),
        cmocka_unit_test(test_parse_targets),
        cmocka_unit_test(test_parse_headers),
        cmocka_unit_test(test_parse_every_prefix),
        cmocka_unit_test(test_server_crash_sequence),
        cmocka_unit_test(test_server_idle_clients_do_not_block),
        cmocka_unit_test(test_server_client_closes_early),
        cmocka_unit_test(test_server_partial_writes),
        cmocka_unit_test(test_server_endless_head),
        cmocka_unit_test(test_server_many_connections),
        cmocka_unit_test(test_server_timeout),
        cmocka_unit_test(test_server_accept_fails),
        cmocka_unit_test(test_server_close_in_forked_child),
        cmocka_unit_test(test_server_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
