/* metrics.h: per-flow numbers of `ppflow schedule`, and an optional
 * Prometheus text-format endpoint for them on a loopback port.
 *
 * The registry (pf_metrics) is plain data updated by the scheduler after
 * each run; pf_metrics_render turns it into the Prometheus text exposition
 * format (version 0.0.4). Counters start at zero when the scheduler starts.
 *
 * The server is a minimal HTTP/1.1 responder bound to 127.0.0.1 only:
 * `GET /metrics` (and HEAD) answer 200 with the rendered text; other paths
 * 404, other methods 405. One connection at a time, requests of at most
 * PF_METRICS_MAX_REQUEST bytes (larger: 431), PF_METRICS_CONN_TIMEOUT_MS per
 * connection, every response closes the connection. It never blocks: the
 * scheduler's poll loop drives it through pf_metrics_server_pollfd and
 * pf_metrics_server_handle. Not thread-safe; one thread drives it. */
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

#define PF_METRICS_MAX_REQUEST 8192
#define PF_METRICS_CONN_TIMEOUT_MS 5000
#define PF_METRICS_MAX_RESPONSE (4u * 1024u * 1024u)

typedef struct pf_metrics_server pf_metrics_server;

/* Listens on 127.0.0.1:PORT (0: a free port; see pf_metrics_server_port).
 * Returns PF_OK and *OUT, PF_EINVAL for a port outside 0-65535, PF_EIO when
 * the port cannot be bound (message names it), PF_ENOMEM. */
pf_status pf_metrics_server_open(int port, pf_metrics_server **out, pf_error *err);

/* The port actually bound. S: not NULL. */
int pf_metrics_server_port(const pf_metrics_server *s);

/* Fills PFD with the descriptor and events to poll now. When a connection
 * is open, *DEADLINE_MONO (pf_time_mono_ms time) is lowered to its
 * deadline if earlier. S, PFD, DEADLINE_MONO: not NULL. */
void pf_metrics_server_pollfd(const pf_metrics_server *s, struct pollfd *pfd,
                              int64_t *deadline_mono);

/* Does what REVENTS (from polling the pollfd above; 0 when poll timed out)
 * allows: accepts, reads, answers from M at NOW_MS, and closes a connection
 * past its deadline. Never blocks; problems only drop the connection. */
void pf_metrics_server_handle(pf_metrics_server *s, short revents, const pf_metrics *m,
                              int64_t now_ms);

/* Closes the sockets and frees S; NULL is accepted. */
void pf_metrics_server_close(pf_metrics_server *s);

#endif
