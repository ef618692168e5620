/* metrics.c: the scheduler's per-flow metrics, their Prometheus text form,
 * and the loopback HTTP/1.1 responder that serves them. */
#define _GNU_SOURCE /* accept4 */
#include "sched/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- server ---- */

struct pf_metrics_server {
    int listen_fd;
    int port;
    int conn;         /* -1: none */
    int writing;      /* 0: reading the request; 1: sending the response */
    int64_t deadline; /* pf_time_mono_ms deadline of the connection */
    char req[PF_METRICS_MAX_REQUEST];
    size_t req_len;
    pf_buf resp;
    size_t sent;
};

pf_status pf_metrics_server_open(int port, pf_metrics_server **out, pf_error *err)
{
    if (port < 0 || port > 65535)
        return pf_error_set(err, PF_EINVAL, "metrics port %d is not in 0-65535", port);
    pf_metrics_server *s = calloc(1, sizeof *s);
    if (!s) return pf_error_set(err, PF_ENOMEM, "out of memory");
    s->conn = -1;
    pf_buf_init(&s->resp, PF_METRICS_MAX_RESPONSE);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0) {
        pf_status st = pf_error_set(err, PF_EIO, "metrics: socket: %s", strerror(errno));
        free(s);
        return st;
    }
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->listen_fd, 8) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        pf_status st = pf_error_set(err, PF_EIO, "metrics: cannot listen on 127.0.0.1:%d: %s", port,
                                    strerror(errno));
        close(s->listen_fd);
        free(s);
        return st;
    }
    s->port = ntohs(a.sin_port);
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
    pfd->revents = 0;
    if (s->conn >= 0) {
        pfd->fd = s->conn;
        pfd->events = s->writing ? POLLOUT : POLLIN;
        if (s->deadline < *deadline_mono) *deadline_mono = s->deadline;
    } else {
        pfd->fd = s->listen_fd;
        pfd->events = POLLIN;
    }
}

static void drop_conn(pf_metrics_server *s)
{
    if (s->conn >= 0) close(s->conn);
    s->conn = -1;
    s->writing = 0;
    s->req_len = 0;
    s->sent = 0;
    pf_buf_reset(&s->resp);
}

static void respond(pf_metrics_server *s, int code, const char *reason, const char *ctype,
                    const char *body, size_t body_len, int head, const char *extra_header)
{
    pf_buf_reset(&s->resp);
    pf_status st = pf_buf_printf(&s->resp,
                                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                 "%sConnection: close\r\nCache-Control: no-store\r\n\r\n",
                                 code, reason, ctype, body_len, extra_header ? extra_header : "");
    if (st == PF_OK && !head) st = pf_buf_append(&s->resp, body, body_len);
    if (st != PF_OK) {
        drop_conn(s);
        return;
    }
    s->writing = 1;
    s->sent = 0;
}

static void answer(pf_metrics_server *s, const pf_metrics *m, int64_t now_ms)
{
    static const char text[] = "text/plain; charset=utf-8";
    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    char *sp1 = memchr(s->req, ' ', s->req_len);
    char *eol = memchr(s->req, '\r', s->req_len);
    char *sp2 = sp1 && eol ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        static const char msg[] = "bad request\n";
        respond(s, 400, "Bad Request", text, msg, sizeof msg - 1, 0, NULL);
        return;
    }
    size_t ml = (size_t)(sp1 - s->req);
    int get = ml == 3 && memcmp(s->req, "GET", 3) == 0;
    int head = ml == 4 && memcmp(s->req, "HEAD", 4) == 0;
    if (!get && !head) {
        static const char msg[] = "method not allowed\n";
        respond(s, 405, "Method Not Allowed", text, msg, sizeof msg - 1, 0, "Allow: GET, HEAD\r\n");
        return;
    }
    const char *target = sp1 + 1;
    size_t tl = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tl);
    if (q) tl = (size_t)(q - target);
    if (tl == 8 && memcmp(target, "/metrics", 8) == 0) {
        pf_buf body;
        pf_buf_init(&body, PF_METRICS_MAX_RESPONSE / 2);
        if (pf_metrics_render(m, now_ms, &body) != PF_OK) {
            pf_buf_free(&body);
            static const char msg[] = "metrics unavailable\n";
            respond(s, 500, "Internal Server Error", text, msg, sizeof msg - 1, head, NULL);
            return;
        }
        respond(s, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", pf_buf_str(&body),
                body.len, head, NULL);
        pf_buf_free(&body);
        return;
    }
    static const char msg[] = "not found; metrics are at /metrics\n";
    respond(s, 404, "Not Found", text, msg, sizeof msg - 1, head, NULL);
}

void pf_metrics_server_handle(pf_metrics_server *s, short revents, const pf_metrics *m,
                              int64_t now_ms)
{
    if (s->conn < 0) {
        if (!(revents & POLLIN)) return;
        int c = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) return;
        s->conn = c;
        s->writing = 0;
        s->req_len = 0;
        s->deadline = pf_time_mono_ms() + PF_METRICS_CONN_TIMEOUT_MS;
        revents = POLLIN; /* try to read at once; EAGAIN just waits */
    }
    if (pf_time_mono_ms() >= s->deadline) {
        drop_conn(s);
        return;
    }
    if (!s->writing && (revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = recv(s->conn, s->req + s->req_len, sizeof s->req - s->req_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n <= 0) {
            drop_conn(s);
            return;
        }
        size_t scan_from = s->req_len >= 3 ? s->req_len - 3 : 0;
        s->req_len += (size_t)n;
        int complete = 0;
        for (size_t i = scan_from; i + 4 <= s->req_len; i++)
            if (memcmp(s->req + i, "\r\n\r\n", 4) == 0) complete = 1;
        if (complete) {
            answer(s, m, now_ms);
        } else if (s->req_len == sizeof s->req) {
            static const char msg[] = "request too large\n";
            respond(s, 431, "Request Header Fields Too Large", "text/plain; charset=utf-8", msg,
                    sizeof msg - 1, 0, NULL);
        }
        if (!s->writing) return;
        revents = POLLOUT;
    }
    if (s->writing && (revents & (POLLOUT | POLLHUP | POLLERR))) {
        while (s->sent < s->resp.len) {
            ssize_t n = send(s->conn, s->resp.data + s->sent, s->resp.len - s->sent, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            if (n <= 0) break;
            s->sent += (size_t)n;
        }
        shutdown(s->conn, SHUT_WR);
        drop_conn(s);
    }
}

void pf_metrics_server_close(pf_metrics_server *s)
{
    if (!s) return;
    drop_conn(s);
    if (s->listen_fd >= 0) close(s->listen_fd);
    pf_buf_free(&s->resp);
    free(s);
}
