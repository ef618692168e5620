/* test_sched_pacing.c: what a schedule costs in calls a day and which
 * interval fits a call budget (src/sched/pacing.h), and the duration text
 * the scheduler's messages use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <string.h>

#include "flow/flow.h"
#include "flow/yaml.h"
#include "sched/pacing.h"
#include "sched/schedule.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)

static void test_daily_calls(void **state)
{
    (void)state;
    long long per = 0;
    /* One-hour windows, runs every 5 minutes: one window a run. */
    assert_int_equal(pf_pacing_daily_calls(5 * MIN_MS, HOUR_MS, 0, &per), 288);
    assert_int_equal(per, 1);
    /* With a 30-minute look-back re-sweep: one more window each run. */
    assert_int_equal(pf_pacing_daily_calls(5 * MIN_MS, HOUR_MS, 30 * MIN_MS, &per), 576);
    assert_int_equal(per, 2);
    /* Runs every 90 minutes need two windows each; 16 runs a day. */
    assert_int_equal(pf_pacing_daily_calls(90 * MIN_MS, HOUR_MS, 0, &per), 32);
    assert_int_equal(per, 2);
    /* A 7-minute interval: 206 runs (rounded up), one call each. */
    assert_int_equal(pf_pacing_daily_calls(7 * MIN_MS, HOUR_MS, 0, NULL), 206);
    /* Not windowed: one call a run, whatever the look-back. */
    assert_int_equal(pf_pacing_daily_calls(MIN_MS, 0, 30 * MIN_MS, &per), 1440);
    assert_int_equal(per, 1);
}

static void test_format_ms(void **state)
{
    (void)state;
    char b[64];
    pf_schedule_format_ms(15 * MIN_MS, b, sizeof b);
    assert_string_equal(b, "15m");
    pf_schedule_format_ms(HOUR_MS + 30 * MIN_MS, b, sizeof b);
    assert_string_equal(b, "1h30m");
    pf_schedule_format_ms(0, b, sizeof b);
    assert_string_equal(b, "");
}

/* A flow of a windowed template with a budget, on schedule S (borrowed). */
typedef struct fake {
    pf_template t;
    pf_flow f;
} fake;

static void make(fake *x, pf_schedule *s, long long budget, int64_t lookback)
{
    memset(x, 0, sizeof *x);
    x->t.paging = PF_PAGING_TIME_WINDOW;
    x->t.window.max_ms = HOUR_MS;
    x->t.window.min_ms = 30000;
    x->t.quota_pool = "siem";
    x->t.quota_budget = budget;
    x->f.tmpl = &x->t;
    x->f.schedule = s;
    x->f.lookback_ms = lookback;
}

static void test_fit_every(void **state)
{
    (void)state;
    pf_schedule s = {.kind = PF_SCHEDULE_EVERY, .every_ms = MIN_MS};
    fake x;
    pf_pacing_fit fit;
    /* Every minute, budget 100: 1440 calls; 15 minutes is the first whole
     * minute that fits (96 runs; 14 minutes makes 103). */
    make(&x, &s, 100, 0);
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.applies, 1);
    assert_int_equal(fit.runs_per_day, 1440);
    assert_int_equal(fit.calls_per_run, 1);
    assert_int_equal(fit.calls_per_day, 1440);
    assert_int_equal(fit.fits, 0);
    assert_true(fit.fit_interval_ms == 15 * MIN_MS);
    /* The same with a look-back re-sweep: two calls a run, 29 minutes. */
    make(&x, &s, 100, 30 * MIN_MS);
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.calls_per_day, 2880);
    assert_true(fit.fit_interval_ms == 29 * MIN_MS);
    /* The real SIEM budget fits every minute without a look-back. */
    make(&x, &s, 1800, 0);
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.fits, 1);
    /* A budget below a day of windows fits no schedule. */
    s.every_ms = HOUR_MS;
    make(&x, &s, 10, 0);
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.calls_per_day, 24);
    assert_int_equal(fit.fits, 0);
    assert_true(fit.fit_interval_ms == 0);
    /* No budget: nothing to say. */
    make(&x, &s, 0, 0);
    x.t.quota_pool = NULL;
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.applies, 0);
    assert_int_equal(fit.fits, 1);
}

static void test_fit_cron(void **state)
{
    (void)state;
    const char *text = "schedule: {cron: '*/5 9-16 * * *'}\n";
    pf_ydoc *doc = NULL;
    pf_error e;
    assert_int_equal(pf_yaml_parse("f.yaml", text, strlen(text), &doc, &e), PF_OK);
    pf_diags d = {0};
    pf_schedule *s = NULL;
    assert_int_equal(pf_schedule_parse(pf_ymap_get(doc->root, "schedule"), &s, &d), 0);
    pf_ydoc_free(doc);
    fake x;
    pf_pacing_fit fit;
    /* 8 hours x 12 runs = 96 runs a day; on average one every 15 minutes,
     * one window each. */
    make(&x, s, 50, 0);
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.runs_per_day, 96);
    assert_int_equal(fit.calls_per_run, 1);
    assert_int_equal(fit.fits, 0);
    assert_true(fit.fit_interval_ms == 29 * MIN_MS); /* 50 runs a day at most */
    make(&x, s, 96, 0);
    pf_pacing_fit_schedule(&x.f, 0, &fit);
    assert_int_equal(fit.fits, 1);
    pf_schedule_free(s);
    pf_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daily_calls),
        cmocka_unit_test(test_format_ms),
        cmocka_unit_test(test_fit_every),
        cmocka_unit_test(test_fit_cron),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
