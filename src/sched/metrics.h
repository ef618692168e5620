/* metrics.h: per-flow numbers of `ppflow schedule`, and an optional
 * Prometheus text-format endpoint for them on a loopback port.
 *
 * The registry (pf_metrics) is plain data updated by the scheduler after
 * each run; pf_metrics_render turns it into the Prometheus text exposition
 * format (version 0.0.4). Counters start at zero when the scheduler starts.
 *
 * The server is a minimal HTTP/1.1 responder, bound to 127.0.0.1 unless
 * told another address: `GET /metrics` (and HEAD; a query string is
 * ignored) answer 200 with the rendered text, `GET /healthz` 200 "ok" while
 * the scheduler's loop turns; a malformed request 400, other methods 405, other paths
 * 404, a request whose head (request line and headers) does not end within
 * PF_METRICS_MAX_REQUEST bytes 431. Every response closes the connection.
 * The request head is parsed by pf_metrics_parse_request, a pure function
 * with explicit bounds (also the fuzz target's entry point).
 *
 * Hostile clients: at most PF_METRICS_MAX_CONNS connections are served at
 * once (a new one past that evicts the one nearest its deadline), each for
 * at most PF_METRICS_CONN_TIMEOUT_MS, so a client that connects and never
 * sends, or never reads, delays neither scrapes nor runs. Responses are
 * sent without SIGPIPE (MSG_NOSIGNAL) and across partial writes; each
 * connection's kernel send buffer is kept small, so clients that never read
 * pin little kernel memory. After the response the connection is
 * half-closed and what the client still sends is drained (at most
 * PF_METRICS_LINGER_MS and PF_METRICS_DRAIN_MAX bytes), so it reads the
 * answer rather than a reset. When accept fails (no descriptors left), the
 * listening socket is left alone for 100 ms instead of waking the loop.
 *
 * It never blocks: the scheduler's poll loop drives it through
 * pf_metrics_server_pollfd and pf_metrics_server_handle (Linux: the
 * descriptor polled is an epoll set holding the listening socket and the
 * connections). Not thread-safe; one thread drives it. */
#ifndef PF_SCHED_METRICS_H
#define PF_SCHED_METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/status.h"

/* How a scheduled run ended. Never renumbered. */
typedef enum pf_run_outcome {
    PF_RUN_OK = 0,          /* every planned window delivered */
    PF_RUN_FAILED = 1,      /* the engine returned an error */
    PF_RUN_INTERRUPTED = 2, /* stopped by a signal after its last commit */
    PF_RUN_BUSY = 3,        /* skipped: another process holds the flow's lock */
    PF_RUN_CRASHED = 4,     /* the run's process died without reporting (signal, crash) */
    PF_RUN__COUNT
} pf_run_outcome;

/* "ok", "failed", "interrupted", "busy", "crashed". Never NULL. */
const char *pf_run_outcome_name(pf_run_outcome o);

typedef struct pf_metrics_flow {
    char *name;
    long long runs[PF_RUN__COUNT]; /* runs finished, by outcome */
    long long records;             /* records delivered */
    long long bytes;               /* response bytes received */
    long long requests;            /* HTTP requests (or file reads) made */
    long long windows;             /* windows or pages completed */
    long long dead_letters;        /* records the sink refused (dead-letter file) */
    long long retries;             /* HTTP requests repeated (429, 5xx, transport failures) */
    long long delayed_budget;      /* runs postponed to stay within a call budget */
    int running;                   /* 1 while a run is in flight */
    int has_cursor;
    int64_t cursor_ms;        /* the checkpoint, when has_cursor */
    int64_t last_success_ms;  /* end of the last ok run; 0: none since start */
    int64_t last_duration_ms; /* of the last finished run; -1: none */
    int64_t next_run_ms;      /* when the next run is due; 0: none */
} pf_metrics_flow;

typedef struct pf_metrics {
    pf_metrics_flow **flows; /* owned */
    size_t count, alloc;
    int64_t started_ms; /* when the scheduler started */
} pf_metrics;

/* The entry of flow NAME, created (zeroed) when missing. M, NAME: not NULL.
 * Returns NULL when out of memory. The pointer stays valid until the entry
 * is removed or M freed. */
pf_metrics_flow *pf_metrics_flow_get(pf_metrics *m, const char *name);

/* Removes flow NAME's entry (nothing when absent). */
void pf_metrics_flow_remove(pf_metrics *m, const char *name);

/* Appends the Prometheus text for M at time NOW_MS (for the lag) to OUT.
 * PF_ENOMEM / PF_ETOOBIG from OUT on failure. */
pf_status pf_metrics_render(const pf_metrics *m, int64_t now_ms, pf_buf *out);

/* Frees every entry; M may be NULL. M is left empty and reusable. */
void pf_metrics_free(pf_metrics *m);

#define PF_METRICS_MAX_REQUEST 8192     /* bytes of request head read per connection */
#define PF_METRICS_CONN_TIMEOUT_MS 5000 /* a connection's whole life, request to response */
#define PF_METRICS_MAX_RESPONSE (4u * 1024u * 1024u)
#define PF_METRICS_MAX_CONNS 16             /* connections served at once */
#define PF_METRICS_LINGER_MS 1000           /* draining after the response, at most */
#define PF_METRICS_DRAIN_MAX (256u * 1024u) /* bytes drained after the response, at most */

/* ---- request parsing (pure; shared-internal for tests and the fuzz target) ---- */

/* What pf_metrics_parse_request found. Never renumbered. */
typedef enum pf_metrics_parse {
    PF_METRICS_PARSE_INCOMPLETE = 0, /* well-formed so far; the head has not ended */
    PF_METRICS_PARSE_OK = 1,         /* a complete, well-formed request head */
    PF_METRICS_PARSE_BAD = 2,        /* malformed: answer 400 */
    PF_METRICS_PARSE_TOO_LARGE = 3   /* no end of head within PF_METRICS_MAX_REQUEST: 431 */
} pf_metrics_parse;

typedef enum pf_metrics_method {
    PF_METRICS_METHOD_OTHER = 0, /* any other token: answer 405 */
    PF_METRICS_METHOD_GET = 1,
    PF_METRICS_METHOD_HEAD = 2
} pf_metrics_method;

typedef struct pf_metrics_request {
    pf_metrics_method method;
    const char *target; /* the request-target as sent; points into BUF */
    size_t target_len;
    /* The path of an origin-form ("/p?q") or absolute-form ("http://h/p?q")
     * target, without query; points into BUF or to a static "/" (absolute
     * form without a path). NULL for "*" and any other form. */
    const char *path;
    size_t path_len;
    int minor_version; /* HTTP/1.<minor_version> */
    size_t head_len;   /* bytes of BUF up to and including the empty line */
} pf_metrics_request;

/* Parses the request head at the start of BUF (LEN bytes; NOT NUL-terminated,
 * may hold NUL bytes; BUF may be NULL when LEN is 0). Reads only
 * BUF[0 .. min(LEN, PF_METRICS_MAX_REQUEST)). REQ: not NULL; filled only on
 * PF_METRICS_PARSE_OK, its pointers then point into BUF (or to static
 * storage) and live as long as BUF.
 *
 * Accepted (RFC 9112, strict): request-line = token SP target SP
 * "HTTP/1." DIGIT, then header lines "name:value" (name a token; value of
 * HTAB, SP, visible and non-ASCII bytes), lines ending in CRLF or a bare LF,
 * the head ending with an empty line. Rejected as soon as it can be seen,
 * even before the head ends: any other byte (NUL, a bare CR, controls), an
 * empty request line (so a head that ends before the first space),
 * whitespace before a header's colon, an obs-fold continuation line, a
 * version other than HTTP/1.x. Methods are case-sensitive; no header is
 * required (not even Host). Bytes after the head (a body, a pipelined
 * request) are not looked at.
 *
 * Returns INCOMPLETE when LEN < PF_METRICS_MAX_REQUEST and no verdict yet,
 * TOO_LARGE when the head does not end within PF_METRICS_MAX_REQUEST bytes,
 * and otherwise OK or BAD. Never fails otherwise; allocates nothing. */
pf_metrics_parse pf_metrics_parse_request(const char *buf, size_t len, pf_metrics_request *req);

/* The HTTP status the server answers for a parse result R (REQ as filled by
 * the parser; only read when R is OK; may be NULL otherwise): 0 for
 * INCOMPLETE (keep reading), 400 BAD, 431 TOO_LARGE; for OK: 405 unless GET
 * or HEAD, 400 for a target that is neither origin- nor absolute-form, 404
 * for a path other than "/metrics" and "/healthz", else 200. */
int pf_metrics_route(pf_metrics_parse r, const pf_metrics_request *req);

typedef struct pf_metrics_server pf_metrics_server;

/* Listens on BIND_ADDR:PORT (BIND_ADDR an IPv4 or IPv6 address; NULL:
 * 127.0.0.1, loopback only; PORT 0: a free port, see
 * pf_metrics_server_port). Returns PF_OK and *OUT, PF_EINVAL for a port
 * outside 0-65535 or an address that is not one, PF_EIO when it cannot be
 * bound (message names address and port), PF_ENOMEM. */
pf_status pf_metrics_server_open(const char *bind_addr, int port, pf_metrics_server **out,
                                 pf_error *err);

/* The port actually bound. S: not NULL. */
int pf_metrics_server_port(const pf_metrics_server *s);

/* Fills PFD with the descriptor and events to poll now (the same
 * descriptor every time: it becomes readable when a connection arrives or
 * an open one can go on). When connections are open, *DEADLINE_MONO
 * (pf_time_mono_ms time) is lowered to the earliest of their deadlines if
 * earlier. S, PFD, DEADLINE_MONO: not NULL. */
void pf_metrics_server_pollfd(const pf_metrics_server *s, struct pollfd *pfd,
                              int64_t *deadline_mono);

/* Does what can be done now (REVENTS, from polling the pollfd above, or 0
 * when poll timed out, is a hint only): accepts, reads, answers from M at
 * NOW_MS, sends, drains, and closes every connection past its deadline.
 * Never blocks; a problem with a connection (a reset, out of memory) only
 * drops that connection. S, M: not NULL. */
void pf_metrics_server_handle(pf_metrics_server *s, short revents, const pf_metrics *m,
                              int64_t now_ms);

/* Closes the sockets and frees S; NULL is accepted. It leaves the epoll
 * set's registrations alone, so a forked child may call it on its copy
 * without disturbing the parent's server. */
void pf_metrics_server_close(pf_metrics_server *s);

#endif
