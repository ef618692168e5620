/* window.h: the time-window planner (pure functions, no I/O).
 *
 * Given where a flow starts (checkpoint or parameters), where it should end
 * (until, interval end, or now) and the API's window rules, the planner
 * clamps the start to the API's retention, and splits the range into
 * consecutive, non-overlapping half-open windows [start, end) of at most
 * max_ms each. A tail shorter than min_ms is left for the next run. */
#ifndef PF_ENGINE_WINDOW_H
#define PF_ENGINE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "flow/template.h"

typedef struct pf_window {
    int64_t start_ms, end_ms;
} pf_window;

typedef struct pf_window_range {
    int64_t start_ms;           /* after clamping */
    int64_t end_ms;             /* never after now */
    int clamped;                /* 1 when the start was moved forward to the retention limit */
    int64_t requested_start_ms; /* the start before clamping */
} pf_window_range;

/* Computes the range for [START, END) at time NOW under DEF. END after NOW is
 * cut to NOW. When retention_ms > 0, a start before NOW - retention + margin
 * is moved there (clamped = 1). The range may be empty (end <= start). */
void pf_window_range_make(const pf_window_def *def, int64_t start, int64_t end, int64_t now,
                          pf_window_range *r);

/* The window that starts at FROM within R: [FROM, min(FROM + max, end)).
 * Returns 1 and fills *W when that window is at least min_ms long, else 0
 * (the rest is left for a later run). */
int pf_window_next(const pf_window_def *def, const pf_window_range *r, int64_t from, pf_window *w);

/* How many windows pf_window_next yields for R from its start. */
size_t pf_window_count(const pf_window_def *def, const pf_window_range *r);

#endif
