/* engine.h: running a flow.
 *
 * The engine plans the requests (time windows for windowed templates, one
 * request otherwise), fetches each one, extracts the records, hands them to
 * the sink, and advances the checkpoint only after the sink reports them
 * durable. A run that stops for any reason (error, signal, SIGKILL) resumes
 * from the last durable window: nothing is written twice, nothing skipped. */
#ifndef PF_ENGINE_ENGINE_H
#define PF_ENGINE_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "flow/flow.h"

typedef struct pf_run_opts {
    int test;           /* 1: first window/page only, print records, no sink, no checkpoint */
    long limit;         /* test: records to print at most (< 0: all) */
    FILE *out;          /* test: where records go (stdout) */
    int sink_attempts;  /* attempts per batch when the sink answers RETRY; default 5 */
    int64_t sink_backoff_ms; /* first delay between sink attempts; default 1000 */
} pf_run_opts;

void pf_run_opts_default(pf_run_opts *o);

typedef struct pf_run_stats {
    long long records;    /* records delivered (run) or printed (test) */
    long long windows;    /* windows or pages completed */
    long long planned;    /* windows planned (0 when not windowed) */
    long long requests;   /* HTTP requests (or file reads) made */
    long long bytes;      /* response bytes received */
    int has_cursor;
    int64_t cursor_ms;    /* checkpoint at the end of the run */
    int64_t range_start_ms, range_end_ms; /* windowed: the planned range */
    int clamped;          /* windowed: start moved to the retention limit */
    long long dead_letters; /* records the sink refused, written to the dead-letter file */
    long long late_arrivals; /* new records found by re-sweeping the look-back */
    long long duplicates;   /* re-swept records dropped as already delivered */
    int gap;                /* the checkpoint was older than the API keeps: a gap record */
    int64_t gap_start_ms, gap_end_ms; /* the lost range */
    long long retries;      /* HTTP requests repeated after a 429, 5xx or a transport failure */
    int64_t lock_from_ms, lock_until_ms; /* when the run held the flow's state lock, on
                                             pf_time_now_ms's clock (0: it never took it) */
    int busy;               /* the run did not start: the sink's lock on the flow (e.g. the
                               PostgreSQL advisory lock) is held by another process; the
                               status is PF_ESTATE, as for a held state lock file */
} pf_run_stats;

/* What a run of a flow would do, computed without any call (`ppflow plan`). */
typedef struct pf_plan {
    int windowed;
    int64_t start_ms, end_ms;  /* windowed: the planned range */
    int from_checkpoint;       /* the range starts at the checkpoint */
    int64_t lookback_ms;       /* the late-arrival re-sweep before the checkpoint (0: none) */
    long long windows;         /* windowed: windows to fetch (the re-sweep included) */
    long long calls_min;       /* HTTP calls at least */
    long long calls_max;       /* and at most (paged endpoints: up to the page cap) */
    int capped;                /* calls_max is the per-run cap (max_pages) */
    const char *quota_pool;    /* the template's call budget (NULL: none) */
    long long quota_budget;
    long quota_used;           /* calls in the last 24 hours for this credential */
    int64_t quota_next_free_ms; /* when used >= budget: when a call is possible again */
} pf_plan;

/* Plans a run of F from its checkpoint at the current time, reading the
 * checkpoint and the call ledger only. PF_OK, or an error in ERR. */
pf_status pf_engine_plan(pf_flow *f, pf_plan *out, pf_error *err);

/* Runs F once (or tests it, per O). Returns PF_OK when every planned window
 * was delivered, PF_EINTERRUPTED when stopped by pf_http_set_cancel_flag's
 * flag between windows, or the first error (ERR filled, secrets redacted).
 * STATS is filled in every case. */
pf_status pf_engine_run(pf_flow *f, const pf_run_opts *o, pf_run_stats *stats, pf_error *err);

#endif
