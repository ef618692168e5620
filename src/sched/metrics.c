/* metrics.c: the scheduler's per-flow metrics, their Prometheus text form,
 * the bounded parser of a request head, and the loopback HTTP/1.1
 * responder that serves them (its sockets, epoll set and buffers). */
#define _GNU_SOURCE /* accept4 */
#include "sched/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/timeutil.h"

const char *pf_run_outcome_name(pf_run_outcome o)
{
    switch (o) {
    case PF_RUN_OK:
        return "ok";
    case PF_RUN_FAILED:
        return "failed";
    case PF_RUN_INTERRUPTED:
        return "interrupted";
    case PF_RUN_BUSY:
        return "busy";
    case PF_RUN_CRASHED:
        return "crashed";
    case PF_RUN__COUNT:
        break;
    }
    return "unknown";
}

/* ---- registry ---- */

pf_metrics_flow *pf_metrics_flow_get(pf_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->flows[i]->name, name) == 0) return m->flows[i];
    if (m->count == m->alloc) {
        size_t na = m->alloc ? m->alloc * 2 : 8;
        pf_metrics_flow **nf = realloc(m->flows, na * sizeof *nf);
        if (!nf) return NULL;
        m->flows = nf;
        m->alloc = na;
    }
    pf_metrics_flow *f = calloc(1, sizeof *f);
    if (!f || !(f->name = strdup(name))) {
        free(f);
        return NULL;
    }
    f->last_duration_ms = -1;
    m->flows[m->count++] = f;
    return f;
}

void pf_metrics_flow_remove(pf_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->flows[i]->name, name) == 0) {
            free(m->flows[i]->name);
            free(m->flows[i]);
            memmove(m->flows + i, m->flows + i + 1, (m->count - i - 1) * sizeof *m->flows);
            m->count--;
            return;
        }
    }
}

void pf_metrics_free(pf_metrics *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->count; i++) {
        free(m->flows[i]->name);
        free(m->flows[i]);
    }
    free(m->flows);
    m->flows = NULL;
    m->count = m->alloc = 0;
}

/* ---- rendering ---- */

/* Appends NAME escaped as a label value (backslash, quote, newline). */
static pf_status put_label(pf_buf *b, const char *name)
{
    pf_status st = PF_OK;
    for (const char *p = name; *p && st == PF_OK; p++) {
        if (*p == '\\')
            st = pf_buf_puts(b, "\\\\");
        else if (*p == '"')
            st = pf_buf_puts(b, "\\\"");
        else if (*p == '\n')
            st = pf_buf_puts(b, "\\n");
        else
            st = pf_buf_putc(b, *p);
    }
    return st;
}

static pf_status header(pf_buf *b, const char *metric, const char *type, const char *help)
{
    return pf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* One sample: METRIC{flow="NAME"[,EXTRA]} VALUE. */
static pf_status sample(pf_buf *b, const char *metric, const char *flow, const char *extra,
                        const char *value)
{
    pf_status st = pf_buf_printf(b, "%s{flow=\"", metric);
    if (st == PF_OK) st = put_label(b, flow);
    if (st == PF_OK) st = pf_buf_printf(b, "\"%s} %s\n", extra ? extra : "", value);
    return st;
}

static void fmt_ll(char *buf, size_t n, long long v)
{
    snprintf(buf, n, "%lld", v);
}

static void fmt_seconds(char *buf, size_t n, int64_t ms)
{
    /* Milliseconds as exact decimal seconds. */
    int64_t a = ms < 0 ? -ms : ms;
    snprintf(buf, n, "%s%lld.%03lld", ms < 0 ? "-" : "", (long long)(a / 1000),
             (long long)(a % 1000));
}

typedef enum {
    CTR_RECORDS,
    CTR_BYTES,
    CTR_REQUESTS,
    CTR_RETRIES,
    CTR_WINDOWS,
    CTR_DEAD,
    CTR_ERRORS
} ctr;

static long long counter_value(const pf_metrics_flow *f, ctr c)
{
    switch (c) {
    case CTR_RECORDS:
        return f->records;
    case CTR_BYTES:
        return f->bytes;
    case CTR_REQUESTS:
        return f->requests;
    case CTR_RETRIES:
        return f->retries;
    case CTR_WINDOWS:
        return f->windows;
    case CTR_DEAD:
        return f->dead_letters;
    case CTR_ERRORS:
        return f->runs[PF_RUN_FAILED] + f->runs[PF_RUN_CRASHED];
    }
    return 0;
}

pf_status pf_metrics_render(const pf_metrics *m, int64_t now_ms, pf_buf *out)
{
    static const struct {
        const char *metric, *help;
        ctr c;
    } counters[] = {
        {"ppflow_records_total", "Records delivered to the sink.", CTR_RECORDS},
        {"ppflow_bytes_total", "Response bytes received.", CTR_BYTES},
        {"ppflow_requests_total", "HTTP requests (or file reads) made.", CTR_REQUESTS},
        {"ppflow_retries_total",
         "HTTP requests repeated after a 429, a 5xx or a transport failure.", CTR_RETRIES},
        {"ppflow_windows_total", "Time windows or pages completed.", CTR_WINDOWS},
        {"ppflow_dead_letters_total", "Records the sink refused, kept in the dead-letter file.",
         CTR_DEAD},
        {"ppflow_errors_total", "Runs that ended with an error (failed or crashed).", CTR_ERRORS},
    };
    char v[64];
    pf_status st = header(out, "ppflow_runs_total", "counter", "Runs finished, by outcome.");
    for (size_t i = 0; i < m->count && st == PF_OK; i++) {
        for (int o = 0; o < PF_RUN__COUNT && st == PF_OK; o++) {
            char extra[48];
            snprintf(extra, sizeof extra, ",outcome=\"%s\"", pf_run_outcome_name(o));
            fmt_ll(v, sizeof v, m->flows[i]->runs[o]);
            st = sample(out, "ppflow_runs_total", m->flows[i]->name, extra, v);
        }
    }
    for (size_t c = 0; c < sizeof counters / sizeof counters[0] && st == PF_OK; c++) {
        st = header(out, counters[c].metric, "counter", counters[c].help);
        for (size_t i = 0; i < m->count && st == PF_OK; i++) {
            fmt_ll(v, sizeof v, counter_value(m->flows[i], counters[c].c));
            st = sample(out, counters[c].metric, m->flows[i]->name, NULL, v);
        }
    }
    if (st == PF_OK)
        st = header(out, "ppflow_runs_delayed_total", "counter",
                    "Runs postponed before they started, by reason (budget: the call budget "
                    "would have been exceeded).");
    for (size_t i = 0; i < m->count && st == PF_OK; i++) {
        fmt_ll(v, sizeof v, m->flows[i]->delayed_budget);
        st = sample(out, "ppflow_runs_delayed_total", m->flows[i]->name, ",reason=\"budget\"", v);
    }
    if (st == PF_OK) st = header(out, "ppflow_running", "gauge", "1 while a run is in flight.");
    for (size_t i = 0; i < m->count && st == PF_OK; i++)
        st = sample(out, "ppflow_running", m->flows[i]->name, NULL,
                    m->flows[i]->running ? "1" : "0");
    if (st == PF_OK)
        st = header(out, "ppflow_lag_seconds", "gauge",
                    "How far the checkpoint is behind now (flows with a checkpoint).");
    for (size_t i = 0; i < m->count && st == PF_OK; i++) {
        if (!m->flows[i]->has_cursor) continue;
        fmt_seconds(v, sizeof v, now_ms - m->flows[i]->cursor_ms);
        st = sample(out, "ppflow_lag_seconds", m->flows[i]->name, NULL, v);
    }
    if (st == PF_OK)
        st = header(out, "ppflow_last_success_timestamp_seconds", "gauge",
                    "When the last successful run ended (flows with one since the start).");
    for (size_t i = 0; i < m->count && st == PF_OK; i++) {
        if (!m->flows[i]->last_success_ms) continue;
        fmt_seconds(v, sizeof v, m->flows[i]->last_success_ms);
        st = sample(out, "ppflow_last_success_timestamp_seconds", m->flows[i]->name, NULL, v);
    }
    if (st == PF_OK)
        st = header(out, "ppflow_last_run_duration_seconds", "gauge",
                    "How long the last finished run took.");
    for (size_t i = 0; i < m->count && st == PF_OK; i++) {
        if (m->flows[i]->last_duration_ms < 0) continue;
        fmt_seconds(v, sizeof v, m->flows[i]->last_duration_ms);
        st = sample(out, "ppflow_last_run_duration_seconds", m->flows[i]->name, NULL, v);
    }
    if (st == PF_OK)
        st = header(out, "ppflow_next_run_timestamp_seconds", "gauge", "When the next run is due.");
    for (size_t i = 0; i < m->count && st == PF_OK; i++) {
        if (!m->flows[i]->next_run_ms || m->flows[i]->next_run_ms == INT64_MAX) continue;
        fmt_seconds(v, sizeof v, m->flows[i]->next_run_ms);
        st = sample(out, "ppflow_next_run_timestamp_seconds", m->flows[i]->name, NULL, v);
    }
    if (st == PF_OK)
        st = header(out, "ppflow_scheduler_start_time_seconds", "gauge",
                    "When this scheduler process started.");
    if (st == PF_OK) {
        fmt_seconds(v, sizeof v, m->started_ms);
        st = pf_buf_printf(out, "ppflow_scheduler_start_time_seconds %s\n", v);
    }
    return st;
}

/* ---- request parsing ---- */

/* RFC 9110 tchar: the bytes of a method or a header name. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int ascii_prefix_ci(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)prefix[i]) return 0;
    }
    return 1;
}

/* The path of TARGET (N > 0 bytes) without its query; NULL when TARGET is
 * neither origin-form nor absolute-form with an http(s) scheme and a host. */
static const char *target_path(const char *target, size_t n, size_t *path_len)
{
    const char *p = NULL, *end = target + n;
    if (target[0] == '/') {
        p = target;
    } else {
        size_t skip = ascii_prefix_ci(target, n, "http://")    ? 7
                      : ascii_prefix_ci(target, n, "https://") ? 8
                                                               : 0;
        if (!skip) return NULL;
        const char *host = target + skip;
        size_t hl = 0;
        while (host + hl < end && host[hl] != '/' && host[hl] != '?')
            hl++;
        if (hl == 0) return NULL;
        if (host + hl == end || host[hl] == '?') {
            *path_len = 1;
            return "/";
        }
        p = host + hl;
    }
    const char *q = memchr(p, '?', (size_t)(end - p));
    *path_len = (size_t)((q ? q : end) - p);
    return p;
}

pf_metrics_parse pf_metrics_parse_request(const char *buf, size_t len, pf_metrics_request *req)
{
    static const char version[] = "HTTP/1.";
    enum {
        RL_METHOD,
        RL_TARGET,
        RL_VERSION,
        RL_CR,
        H_LINE,
        H_NAME,
        H_VALUE,
        H_CR,
        H_END_CR
    } st = RL_METHOD;
    size_t n = len < PF_METRICS_MAX_REQUEST ? len : PF_METRICS_MAX_REQUEST;
    size_t m_end = 0, t_start = 0, t_end = 0, v_start = 0, head_len = 0;
    for (size_t i = 0; i < n && !head_len; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (st) {
        case RL_METHOD:
            if (is_tchar(c)) break;
            if (c != ' ' || i == 0) return PF_METRICS_PARSE_BAD;
            m_end = i;
            t_start = i + 1;
            st = RL_TARGET;
            break;
        case RL_TARGET:
            if (c > 0x20 && c < 0x7f) break;
            if (c != ' ' || i == t_start) return PF_METRICS_PARSE_BAD;
            t_end = i;
            v_start = i + 1;
            st = RL_VERSION;
            break;
        case RL_VERSION: {
            size_t k = i - v_start;
            if (k < sizeof version - 1) {
                if (c != (unsigned char)version[k]) return PF_METRICS_PARSE_BAD;
            } else if (k == sizeof version - 1) {
                if (c < '0' || c > '9') return PF_METRICS_PARSE_BAD;
            } else if (c == '\r') {
                st = RL_CR;
            } else if (c == '\n') {
                st = H_LINE;
            } else {
                return PF_METRICS_PARSE_BAD;
            }
            break;
        }
        case RL_CR:
        case H_CR:
            if (c != '\n') return PF_METRICS_PARSE_BAD; /* a bare CR */
            st = H_LINE;
            break;
        case H_LINE: /* the start of a header line, or the empty line */
            if (c == '\r')
                st = H_END_CR;
            else if (c == '\n')
                head_len = i + 1;
            else if (is_tchar(c))
                st = H_NAME;
            else
                return PF_METRICS_PARSE_BAD; /* obs-fold, an empty name, a control */
            break;
        case H_NAME:
            if (is_tchar(c)) break;
            if (c != ':') return PF_METRICS_PARSE_BAD; /* includes space before the colon */
            st = H_VALUE;
            break;
        case H_VALUE:
            if (c == '\t' || (c >= 0x20 && c != 0x7f)) break;
            if (c == '\r')
                st = H_CR;
            else if (c == '\n')
                st = H_LINE;
            else
                return PF_METRICS_PARSE_BAD;
            break;
        case H_END_CR:
            if (c != '\n') return PF_METRICS_PARSE_BAD;
            head_len = i + 1;
            break;
        }
    }
    if (!head_len)
        return len >= PF_METRICS_MAX_REQUEST ? PF_METRICS_PARSE_TOO_LARGE
                                             : PF_METRICS_PARSE_INCOMPLETE;
    /* A head only ends after the request line, so every span below is set. */
    memset(req, 0, sizeof *req);
    if (m_end == 3 && memcmp(buf, "GET", 3) == 0)
        req->method = PF_METRICS_METHOD_GET;
    else if (m_end == 4 && memcmp(buf, "HEAD", 4) == 0)
        req->method = PF_METRICS_METHOD_HEAD;
    else
        req->method = PF_METRICS_METHOD_OTHER;
    req->target = buf + t_start;
    req->target_len = t_end - t_start;
    req->path = target_path(req->target, req->target_len, &req->path_len);
    if (!req->path) req->path_len = 0;
    req->minor_version = buf[v_start + sizeof version - 1] - '0';
    req->head_len = head_len;
    return PF_METRICS_PARSE_OK;
}

int pf_metrics_route(pf_metrics_parse r, const pf_metrics_request *req)
{
    switch (r) {
    case PF_METRICS_PARSE_INCOMPLETE:
        return 0;
    case PF_METRICS_PARSE_BAD:
        return 400;
    case PF_METRICS_PARSE_TOO_LARGE:
        return 431;
    case PF_METRICS_PARSE_OK:
        break;
    }
    if (r != PF_METRICS_PARSE_OK || !req) return 400;
    if (req->method != PF_METRICS_METHOD_GET && req->method != PF_METRICS_METHOD_HEAD) return 405;
    if (!req->path) return 400;
    if (req->path_len == 8 && memcmp(req->path, "/metrics", 8) == 0) return 200;
    if (req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0) return 200;
    return 404;
}

/* ---- server ---- */

typedef enum { C_FREE, C_READ, C_WRITE, C_LINGER } conn_state;

typedef struct conn {
    int fd; /* -1 when free */
    conn_state state;
    int64_t deadline; /* pf_time_mono_ms */
    size_t req_len;
    size_t sent;
    size_t drained;
    pf_buf resp;
    char req[PF_METRICS_MAX_REQUEST];
} conn;

#define LISTEN_TAG UINT32_MAX /* epoll data of the listening socket */
#define ACCEPT_BURST 64       /* connections accepted per call, at most */
#define ACCEPT_PAUSE_MS 100   /* after accept fails for want of descriptors or memory */
/* The kernel send buffer of a connection (Linux doubles it): bounds what
 * clients that never read pin in the kernel, PF_METRICS_MAX_CONNS of these;
 * a larger response goes out in several writes as the client reads. */
#define CONN_SNDBUF (64 * 1024)

struct pf_metrics_server {
    int listen_fd;
    int ep; /* epoll set: the listening socket and every open connection */
    int port;
    /* While accept fails (EMFILE, ENFILE, ENOBUFS...), the listening socket
     * stays readable: it leaves the epoll set until this pf_time_mono_ms
     * time, so the scheduler's loop does not spin. 0: in the set. */
    int64_t accept_paused_until;
    conn conns[PF_METRICS_MAX_CONNS];
};

pf_status pf_metrics_server_open(const char *bind_addr, int port, pf_metrics_server **out,
                                 pf_error *err)
{
    if (port < 0 || port > 65535)
        return pf_error_set(err, PF_EINVAL, "metrics port %d is not in 0-65535", port);
    if (!bind_addr) bind_addr = "127.0.0.1";
    struct sockaddr_storage a;
    socklen_t alen;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
    if (inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        alen = sizeof *a4;
    } else if (inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        alen = sizeof *a6;
    } else {
        return pf_error_set(err, PF_EINVAL,
                            "metrics address '%s' is not an IPv4 or IPv6 address (e.g. "
                            "127.0.0.1, ::1, 0.0.0.0)",
                            bind_addr);
    }
    pf_metrics_server *s = calloc(1, sizeof *s);
    if (!s) return pf_error_set(err, PF_ENOMEM, "out of memory");
    for (size_t i = 0; i < PF_METRICS_MAX_CONNS; i++) {
        s->conns[i].fd = -1;
        pf_buf_init(&s->conns[i].resp, PF_METRICS_MAX_RESPONSE);
    }
    s->ep = -1;
    s->listen_fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0) {
        pf_status st = pf_error_set(err, PF_EIO, "metrics: socket: %s", strerror(errno));
        free(s);
        return st;
    }
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.ss_family == AF_INET6) setsockopt(s->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    socklen_t al = alen;
    if (bind(s->listen_fd, (struct sockaddr *)&a, alen) != 0 || listen(s->listen_fd, 64) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        pf_status st =
            pf_error_set(err, PF_EIO, "metrics: cannot listen on %s%s%s:%d: %s",
                         a.ss_family == AF_INET6 ? "[" : "", bind_addr,
                         a.ss_family == AF_INET6 ? "]" : "", port, strerror(errno));
        close(s->listen_fd);
        free(s);
        return st;
    }
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = LISTEN_TAG};
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &ev) != 0) {
        pf_status st = pf_error_set(err, PF_EIO, "metrics: epoll: %s", strerror(errno));
        if (s->ep >= 0) close(s->ep);
        close(s->listen_fd);
        free(s);
        return st;
    }
    s->port = ntohs(a.ss_family == AF_INET6 ? a6->sin6_port : a4->sin_port);
    *out = s;
    return PF_OK;
}

int pf_metrics_server_port(const pf_metrics_server *s)
{
    return s->port;
}

void pf_metrics_server_pollfd(const pf_metrics_server *s, struct pollfd *pfd,
                              int64_t *deadline_mono)
{
    pfd->fd = s->ep;
    pfd->events = POLLIN;
    pfd->revents = 0;
    if (s->accept_paused_until && s->accept_paused_until < *deadline_mono)
        *deadline_mono = s->accept_paused_until;
    for (size_t i = 0; i < PF_METRICS_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0 && s->conns[i].deadline < *deadline_mono)
            *deadline_mono = s->conns[i].deadline;
}

/* Closes connection C: out of the epoll set first (a forked child may still
 * hold a copy of the descriptor, which would keep it registered). */
static void drop_conn(pf_metrics_server *s, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_FREE;
    c->req_len = c->sent = c->drained = 0;
    pf_buf_free(&c->resp);
    pf_buf_init(&c->resp, PF_METRICS_MAX_RESPONSE);
}

static int watch(pf_metrics_server *s, conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - s->conns)};
    return epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Puts the response into C's buffer and switches it to sending; 0, or -1
 * when out of memory (the caller drops the connection). */
static int respond(conn *c, int code, const char *reason, const char *ctype, const char *body,
                   size_t body_len, int head, const char *extra_header)
{
    pf_buf_reset(&c->resp);
    pf_status st = pf_buf_printf(&c->resp,
                                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                 "%sConnection: close\r\nCache-Control: no-store\r\n\r\n",
                                 code, reason, ctype, body_len, extra_header ? extra_header : "");
    if (st == PF_OK && !head) st = pf_buf_append(&c->resp, body, body_len);
    if (st != PF_OK) return -1;
    c->state = C_WRITE;
    c->sent = 0;
    return 0;
}

/* Answers status CODE (pf_metrics_route) for request REQ (NULL unless the
 * head parsed). */
static int answer(conn *c, int code, const pf_metrics_request *req, const pf_metrics *m,
                  int64_t now_ms)
{
    static const char text[] = "text/plain; charset=utf-8";
    int head = req && req->method == PF_METRICS_METHOD_HEAD;
    switch (code) {
    case 200: {
        if (req && req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0) {
            /* The scheduler answers: it is alive and its loop turns. */
            static const char ok[] = "ok\n";
            return respond(c, 200, "OK", text, ok, sizeof ok - 1, head, NULL);
        }
        pf_buf body;
        pf_buf_init(&body, PF_METRICS_MAX_RESPONSE / 2);
        if (pf_metrics_render(m, now_ms, &body) != PF_OK) {
            pf_buf_free(&body);
            static const char msg[] = "metrics unavailable\n";
            return respond(c, 500, "Internal Server Error", text, msg, sizeof msg - 1, head, NULL);
        }
        int r = respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", pf_buf_str(&body),
                        body.len, head, NULL);
        pf_buf_free(&body);
        return r;
    }
    case 404: {
        static const char msg[] = "not found; metrics are at /metrics, health at /healthz\n";
        return respond(c, 404, "Not Found", text, msg, sizeof msg - 1, head, NULL);
    }
    case 405: {
        static const char msg[] = "method not allowed\n";
        return respond(c, 405, "Method Not Allowed", text, msg, sizeof msg - 1, 0,
                       "Allow: GET, HEAD\r\n");
    }
    case 431: {
        static const char msg[] = "request too large\n";
        return respond(c, 431, "Request Header Fields Too Large", text, msg, sizeof msg - 1, 0,
                       NULL);
    }
    default: {
        static const char msg[] = "bad request\n";
        return respond(c, 400, "Bad Request", text, msg, sizeof msg - 1, 0, NULL);
    }
    }
}

/* Reads what C's client sent and answers once the head is judged; 0 to go
 * on, -1 to drop. */
static int conn_read(conn *c, const pf_metrics *m, int64_t now_ms)
{
    while (c->req_len < sizeof c->req) {
        ssize_t n = recv(c->fd, c->req + c->req_len, sizeof c->req - c->req_len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n <= 0) return -1; /* closed or reset before a complete request */
        c->req_len += (size_t)n;
        pf_metrics_request req;
        pf_metrics_parse r = pf_metrics_parse_request(c->req, c->req_len, &req);
        int code = pf_metrics_route(r, &req);
        if (code) return answer(c, code, r == PF_METRICS_PARSE_OK ? &req : NULL, m, now_ms);
    }
    return -1; /* not reached: a full buffer is judged TOO_LARGE */
}

/* Sends what is left of C's response; then half-closes and lingers. 0 to go
 * on, -1 to drop. */
static int conn_write(pf_metrics_server *s, conn *c)
{
    while (c->sent < c->resp.len) {
        ssize_t n = send(c->fd, c->resp.data + c->sent, c->resp.len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return watch(s, c, EPOLLOUT) == 0 ? 0 : -1;
        if (n <= 0) return -1; /* EPIPE, ECONNRESET: the client is gone */
        c->sent += (size_t)n;
    }
    if (shutdown(c->fd, SHUT_WR) != 0) return -1;
    pf_buf_free(&c->resp);
    pf_buf_init(&c->resp, PF_METRICS_MAX_RESPONSE);
    c->state = C_LINGER;
    int64_t linger = pf_time_mono_ms() + PF_METRICS_LINGER_MS;
    if (linger < c->deadline) c->deadline = linger;
    return watch(s, c, EPOLLIN) == 0 ? 0 : -1;
}

/* Discards what the client still sends until it closes its side, so that
 * closing does not reset the connection before it has read the response.
 * 0 to go on, -1 to drop (done). */
static int conn_drain(conn *c)
{
    char scratch[4096];
    for (;;) {
        ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n <= 0) return -1;
        c->drained += (size_t)n;
        if (c->drained > PF_METRICS_DRAIN_MAX) return -1;
    }
}

static void conn_io(pf_metrics_server *s, conn *c, const pf_metrics *m, int64_t now_ms)
{
    int r = 0;
    if (c->state == C_READ) {
        r = conn_read(c, m, now_ms);
        if (r == 0 && c->state == C_WRITE) r = conn_write(s, c);
    } else if (c->state == C_WRITE) {
        r = conn_write(s, c);
    }
    if (r == 0 && c->state == C_LINGER) r = conn_drain(c);
    if (r != 0) drop_conn(s, c);
}

/* A slot for a new connection: a free one, else the one nearest its
 * deadline is dropped to make room. */
static conn *free_slot(pf_metrics_server *s)
{
    conn *victim = &s->conns[0];
    for (size_t i = 0; i < PF_METRICS_MAX_CONNS; i++) {
        if (s->conns[i].fd < 0) return &s->conns[i];
        if (s->conns[i].deadline < victim->deadline) victim = &s->conns[i];
    }
    drop_conn(s, victim);
    return victim;
}

static void accept_conns(pf_metrics_server *s, const pf_metrics *m, int64_t now_ms)
{
    for (int k = 0; k < ACCEPT_BURST; k++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK &&
                epoll_ctl(s->ep, EPOLL_CTL_DEL, s->listen_fd, NULL) == 0)
                s->accept_paused_until = pf_time_mono_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        int sndbuf = CONN_SNDBUF;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        conn *c = free_slot(s);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - s->conns)};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = C_READ;
        c->req_len = c->sent = c->drained = 0;
        c->deadline = pf_time_mono_ms() + PF_METRICS_CONN_TIMEOUT_MS;
        conn_io(s, c, m, now_ms); /* the request is often there already */
    }
}

void pf_metrics_server_handle(pf_metrics_server *s, short revents, const pf_metrics *m,
                              int64_t now_ms)
{
    (void)revents; /* a hint only: the epoll set says what is ready */
    if (s->accept_paused_until && pf_time_mono_ms() >= s->accept_paused_until) {
        struct epoll_event lev = {.events = EPOLLIN, .data.u32 = LISTEN_TAG};
        s->accept_paused_until = epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &lev) == 0
                                     ? 0
                                     : pf_time_mono_ms() + ACCEPT_PAUSE_MS;
    }
    struct epoll_event evs[PF_METRICS_MAX_CONNS + 1];
    int n = epoll_wait(s->ep, evs, (int)(sizeof evs / sizeof evs[0]), 0);
    for (int i = 0; i < n; i++) {
        uint32_t tag = evs[i].data.u32;
        if (tag == LISTEN_TAG) {
            accept_conns(s, m, now_ms);
        } else if (tag < PF_METRICS_MAX_CONNS && s->conns[tag].fd >= 0) {
            /* A slot reused by accept_conns in this same call just sees a
             * spurious wake-up: its reads and writes say EAGAIN. */
            conn_io(s, &s->conns[tag], m, now_ms);
        }
    }
    int64_t mono = pf_time_mono_ms();
    for (size_t i = 0; i < PF_METRICS_MAX_CONNS; i++)
        if (s->conns[i].fd >= 0 && mono >= s->conns[i].deadline) drop_conn(s, &s->conns[i]);
}

void pf_metrics_server_close(pf_metrics_server *s)
{
    if (!s) return;
    for (size_t i = 0; i < PF_METRICS_MAX_CONNS; i++) {
        if (s->conns[i].fd >= 0) close(s->conns[i].fd);
        pf_buf_free(&s->conns[i].resp);
    }
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->ep >= 0) close(s->ep);
    free(s);
}
