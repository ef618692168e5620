/* pacing.c: call-budget pacing of scheduled runs: postponing a run that
 * would exceed its budget, and the daily cost of a schedule (see pacing.h). */
#include "sched/pacing.h"

#include <string.h>

#include "engine/engine.h"
#include "engine/quota.h"
#include "util/log.h"

#define DAY_MS PF_QUOTA_PERIOD_MS
#define MINUTE_MS 60000

static long long ceil_div(int64_t a, int64_t b)
{
    return (long long)(a / b + (a % b != 0));
}

long long pf_pacing_daily_calls(int64_t interval_ms, int64_t window_ms, int64_t lookback_ms,
                                long long *calls_per_run)
{
    if (interval_ms <= 0) interval_ms = 1;
    long long per_run = 1;
    if (window_ms > 0) {
        per_run = ceil_div(interval_ms, window_ms);
        if (lookback_ms > 0) per_run += ceil_div(lookback_ms, window_ms);
    }
    if (calls_per_run) *calls_per_run = per_run;
    return ceil_div(DAY_MS, interval_ms) * per_run;
}

pf_status pf_pacing_check(pf_flow *f, int64_t now, pf_pacing *out, pf_error *err)
{
    memset(out, 0, sizeof *out);
    out->start_ms = now;
    const pf_template *t = f->tmpl;
    if (!t->quota_pool || t->quota_budget <= 0 || f->local_file) return PF_OK;
    out->applies = 1;
    out->pool = t->quota_pool;
    out->budget = t->quota_budget;
    /* The planner's notes ("starting one hour ago") belong to the run. */
    pf_log_level level = pf_log_get_level();
    pf_log_set_level(PF_LOG_ERROR);
    pf_plan plan;
    pf_status st = pf_engine_plan(f, &plan, err);
    pf_log_set_level(level);
    if (st != PF_OK) return st;
    out->estimate = plan.calls_min;
    out->used = plan.quota_used;
    if (out->estimate <= 0) return PF_OK;
    char path[4200], key[PF_QUOTA_KEY_SIZE];
    if (pf_quota_path(f->state_path, path, sizeof path) != 0)
        return pf_error_set(err, PF_ECONFIG, "state.path is too long");
    pf_quota_key(t->quota_pool, f->principal, key);
    long need = out->estimate > t->quota_budget ? (long)t->quota_budget : (long)out->estimate;
    int64_t at = now;
    st = pf_quota_when_free(path, key, now, (long)t->quota_budget, need, &out->used, &at, err);
    if (st != PF_OK) return st;
    out->start_ms = at > now ? at : now;
    return PF_OK;
}

void pf_pacing_fit_schedule(const pf_flow *f, int64_t now, pf_pacing_fit *out)
{
    memset(out, 0, sizeof *out);
    const pf_template *t = f->tmpl;
    const pf_schedule *s = f->schedule;
    if (!s || !t->quota_pool || t->quota_budget <= 0 || f->local_file) {
        out->fits = 1;
        return;
    }
    out->applies = 1;
    /* Runs in the next 24 hours. */
    long long runs = 0;
    if (s->kind == PF_SCHEDULE_EVERY) {
        runs = ceil_div(DAY_MS, s->every_ms > 0 ? s->every_ms : 1);
    } else {
        int64_t end = now + DAY_MS;
        /* A five-field cron names at most one time a minute. */
        for (int64_t at = pf_schedule_first(s, now); at < end && runs <= DAY_MS / MINUTE_MS;
             at = pf_schedule_after_run(s, at, at))
            runs++;
    }
    if (runs < 1) runs = 1; /* a rarer schedule costs at most one run a day */
    int windowed = t->paging == PF_PAGING_TIME_WINDOW;
    int64_t window = windowed ? t->window.max_ms : 0;
    int64_t lookback = windowed && !t->pages.kind ? f->lookback_ms : 0;
    int64_t interval = DAY_MS / runs;
    long long per_run = 0;
    pf_pacing_daily_calls(interval, window, lookback, &per_run);
    out->runs_per_day = runs;
    out->calls_per_run = per_run;
    out->calls_per_day = runs * per_run;
    out->fits = out->calls_per_day <= t->quota_budget;
    if (out->fits) return;
    for (int64_t i = ((interval + MINUTE_MS - 1) / MINUTE_MS) * MINUTE_MS; i <= DAY_MS;
         i += MINUTE_MS) {
        if (i <= 0) continue;
        if (pf_pacing_daily_calls(i, window, lookback, NULL) <= t->quota_budget) {
            out->fit_interval_ms = i;
            break;
        }
    }
}
