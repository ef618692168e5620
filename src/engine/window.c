/* window.c: splitting a time range into API-sized windows. */
#include "engine/window.h"

void pf_window_range_make(const pf_window_def *def, int64_t start, int64_t end, int64_t now,
                          pf_window_range *r)
{
    r->requested_start_ms = start;
    r->clamped = 0;
    if (end > now) end = now;
    if (def->retention_ms > 0) {
        int64_t oldest = now - def->retention_ms + def->margin_ms;
        if (start < oldest) {
            start = oldest;
            r->clamped = 1;
        }
    }
    r->start_ms = start;
    r->end_ms = end;
}

int pf_window_next(const pf_window_def *def, const pf_window_range *r, int64_t from, pf_window *w)
{
    if (from < r->start_ms) from = r->start_ms;
    if (from >= r->end_ms) return 0;
    int64_t len = r->end_ms - from;
    if (len > def->max_ms) len = def->max_ms;
    if (len < def->min_ms || len <= 0) return 0;
    w->start_ms = from;
    w->end_ms = from + len;
    return 1;
}

size_t pf_window_count(const pf_window_def *def, const pf_window_range *r)
{
    size_t n = 0;
    pf_window w;
    for (int64_t from = r->start_ms; pf_window_next(def, r, from, &w); from = w.end_ms) n++;
    return n;
}
