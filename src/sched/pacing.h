/* pacing.h: keeping scheduled runs within their templates' call budgets.
 *
 * A template may declare a call budget (engine/quota.h): so many calls per
 * credential in any 24 hours. A run that reaches it stops, and the next run
 * continues from the checkpoint. The scheduler does better: before it starts
 * a run it estimates the calls the run will make (pf_engine_plan: the
 * windows or requests planned from the checkpoint, at least one call each)
 * and reads the shared call ledger; when the calls of the last 24 hours plus
 * that estimate exceed the budget, the run is postponed to the time enough
 * old calls have left the 24-hour window (pf_pacing_check). When a flow is
 * loaded, a schedule that alone makes more calls a day than the budget
 * allows is reported with an interval that would fit (pf_pacing_fit).
 *
 * Reading the ledger never creates it; nothing here talks to the network. */
#ifndef PF_SCHED_PACING_H
#define PF_SCHED_PACING_H

#include <stddef.h>
#include <stdint.h>

#include "flow/flow.h"
#include "util/status.h"

typedef struct pf_pacing {
    int applies;        /* 1 when the flow's template has a call budget */
    const char *pool;   /* the budget's pool (borrowed from the template) */
    long long budget;   /* calls per credential in 24 hours */
    long used;          /* calls recorded in the last 24 hours */
    long long estimate; /* calls the run is expected to make (0: none planned) */
    int64_t start_ms;   /* when the run fits the budget: NOW when it fits now */
} pf_pacing;

/* Fills OUT for a run of F due at NOW (the scheduler clock, pf_time_now_ms).
 * F: not NULL; its checkpoint and the call ledger are read, nothing is
 * written. A flow without a budget (or reading a local file) gets applies =
 * 0 and start_ms = NOW. An estimate larger than the whole budget waits for a
 * free budget (the run then stops at the budget as usual). Log lines of the
 * planner are suppressed. PF_OK, or an error in ERR (an unreadable
 * checkpoint or ledger); OUT then says start_ms = NOW. */
pf_status pf_pacing_check(pf_flow *f, int64_t now, pf_pacing *out, pf_error *err);

/* What a schedule costs a day in calls. */
typedef struct pf_pacing_fit {
    int applies;             /* 1 when the template has a call budget */
    long long runs_per_day;  /* runs in the 24 hours after NOW */
    long long calls_per_run; /* steady state: new windows + re-swept windows, or 1 */
    long long calls_per_day; /* runs_per_day * calls_per_run */
    int fits;                /* calls_per_day <= the budget */
    int64_t fit_interval_ms; /* when not: the shortest whole-minute interval that fits;
                                0 when none up to 24 hours does */
} pf_pacing_fit;

/* Estimates the daily calls of F's schedule from NOW, assuming runs at the
 * schedule's times (an `every` interval counted from run to run) and a
 * checkpoint that keeps up: each run of a windowed template fetches the
 * time since the previous run (in windows of the template's longest window)
 * and re-sweeps its look-back; other templates make one call per run. F and
 * F->schedule: not NULL. Never fails. */
void pf_pacing_fit_schedule(const pf_flow *f, int64_t now, pf_pacing_fit *out);

/* Calls a day for runs every INTERVAL_MS (> 0) of a windowed template whose
 * windows are at most WINDOW_MS long (<= 0: one call per run) and whose runs
 * re-sweep LOOKBACK_MS (0: none); CALLS_PER_RUN (may be NULL) receives the
 * calls of one run. Pure. */
long long pf_pacing_daily_calls(int64_t interval_ms, int64_t window_ms, int64_t lookback_ms,
                                long long *calls_per_run);

#endif
