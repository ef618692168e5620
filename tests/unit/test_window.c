/* test_window.c: the time-window planner under the TAP SIEM rules (windows of
 * 30 s to 1 h, 7 days of retention, a 1 minute safety margin), and under the
 * rules the campaign-IDs and TRAP incident templates declare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "engine/window.h"
#include "flow/template.h"

#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* 2026-11-22T00:00:00Z */
#define T0 INT64_C(1795305600000)

static const pf_window_def siem = {
    .min_ms = 30 * SEC,
    .max_ms = HOUR,
    .retention_ms = 7 * DAY,
    .margin_ms = MIN,
};

/* Collects every window pf_window_next yields for R from its start. */
static size_t plan(const pf_window_def *def, const pf_window_range *r, pf_window *out, size_t cap)
{
    size_t n = 0;
    pf_window w;
    for (int64_t from = r->start_ms; pf_window_next(def, r, from, &w); from = w.end_ms) {
        if (n == cap) fail_msg("more than %zu windows", cap);
        out[n++] = w;
    }
    return n;
}

static void test_six_hours_gives_six_one_hour_windows(void **state)
{
    (void)state;
    pf_window_range r;
    pf_window_range_make(&siem, T0, T0 + 6 * HOUR, T0 + 7 * HOUR, &r);
    assert_int_equal(r.start_ms, T0);
    assert_int_equal(r.end_ms, T0 + 6 * HOUR);
    assert_int_equal(r.clamped, 0);

    pf_window w[16];
    size_t n = plan(&siem, &r, w, 16);
    assert_int_equal(n, 6);
    assert_int_equal(pf_window_count(&siem, &r), 6);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(w[i].start_ms, T0 + (int64_t)i * HOUR);
        assert_int_equal(w[i].end_ms, T0 + (int64_t)(i + 1) * HOUR);
    }
    /* Nothing left after the last one. */
    pf_window extra;
    assert_int_equal(pf_window_next(&siem, &r, w[5].end_ms, &extra), 0);
}

static void test_short_tail_is_left_for_next_run(void **state)
{
    (void)state;
    pf_window_range r;
    pf_window_range_make(&siem, T0, T0 + HOUR + 10 * SEC, T0 + 2 * HOUR, &r);
    pf_window w[4];
    assert_int_equal(plan(&siem, &r, w, 4), 1);
    assert_int_equal(w[0].start_ms, T0);
    assert_int_equal(w[0].end_ms, T0 + HOUR);
    assert_int_equal(pf_window_count(&siem, &r), 1);
    /* The 10 s tail is not a window. */
    pf_window tail;
    memset(&tail, 0x5a, sizeof tail);
    assert_int_equal(pf_window_next(&siem, &r, T0 + HOUR, &tail), 0);
}

static void test_range_shorter_than_min_has_no_window(void **state)
{
    (void)state;
    pf_window_range r;
    pf_window_range_make(&siem, T0, T0 + 25 * SEC, T0 + HOUR, &r);
    pf_window w;
    assert_int_equal(pf_window_next(&siem, &r, r.start_ms, &w), 0);
    assert_int_equal(pf_window_count(&siem, &r), 0);

    /* Exactly the minimum is one window. */
    pf_window_range_make(&siem, T0, T0 + 30 * SEC, T0 + HOUR, &r);
    assert_int_equal(pf_window_next(&siem, &r, r.start_ms, &w), 1);
    assert_int_equal(w.start_ms, T0);
    assert_int_equal(w.end_ms, T0 + 30 * SEC);
    /* One millisecond less is none. */
    pf_window_range_make(&siem, T0, T0 + 30 * SEC - 1, T0 + HOUR, &r);
    assert_int_equal(pf_window_count(&siem, &r), 0);
}

static void test_end_after_now_is_cut_to_now(void **state)
{
    (void)state;
    int64_t now = T0 + 90 * MIN;
    pf_window_range r;
    pf_window_range_make(&siem, T0, T0 + 5 * HOUR, now, &r);
    assert_int_equal(r.end_ms, now);
    assert_int_equal(r.start_ms, T0);
    pf_window w[4];
    assert_int_equal(plan(&siem, &r, w, 4), 2);
    assert_int_equal(w[0].end_ms, T0 + HOUR);
    assert_int_equal(w[1].start_ms, T0 + HOUR);
    assert_int_equal(w[1].end_ms, now); /* never a window into the future */
}

static void test_start_older_than_retention_is_clamped(void **state)
{
    (void)state;
    int64_t now = T0 + 30 * DAY;
    int64_t start = now - 8 * DAY;
    pf_window_range r;
    pf_window_range_make(&siem, start, now, now, &r);
    assert_int_equal(r.clamped, 1);
    assert_int_equal(r.requested_start_ms, start);
    assert_int_equal(r.start_ms, now - 7 * DAY + MIN);
    assert_int_equal(r.end_ms, now);

    pf_window w;
    assert_int_equal(pf_window_next(&siem, &r, r.start_ms, &w), 1);
    assert_int_equal(w.start_ms, now - 7 * DAY + MIN);
    /* 7 days minus the 1 minute margin: 167 full hours, the 59 min tail is a window too. */
    assert_int_equal(pf_window_count(&siem, &r), 168);

    /* Exactly at the limit: not clamped. One millisecond earlier: clamped. */
    pf_window_range_make(&siem, now - 7 * DAY + MIN, now, now, &r);
    assert_int_equal(r.clamped, 0);
    assert_int_equal(r.start_ms, now - 7 * DAY + MIN);
    assert_int_equal(r.requested_start_ms, now - 7 * DAY + MIN);
    pf_window_range_make(&siem, now - 7 * DAY + MIN - 1, now, now, &r);
    assert_int_equal(r.clamped, 1);
    assert_int_equal(r.start_ms, now - 7 * DAY + MIN);
    assert_int_equal(r.requested_start_ms, now - 7 * DAY + MIN - 1);

    /* Without retention nothing is clamped. */
    pf_window_def unlimited = siem;
    unlimited.retention_ms = 0;
    pf_window_range_make(&unlimited, now - 100 * DAY, now, now, &r);
    assert_int_equal(r.clamped, 0);
    assert_int_equal(r.start_ms, now - 100 * DAY);
}

static void test_empty_range_has_no_window(void **state)
{
    (void)state;
    pf_window_range r;
    pf_window w;
    pf_window_range_make(&siem, T0, T0, T0 + HOUR, &r);
    assert_int_equal(pf_window_next(&siem, &r, T0, &w), 0);
    assert_int_equal(pf_window_count(&siem, &r), 0);
    /* End before start (a checkpoint past `until`): none either. */
    pf_window_range_make(&siem, T0 + HOUR, T0, T0 + 2 * HOUR, &r);
    assert_int_equal(pf_window_next(&siem, &r, r.start_ms, &w), 0);
    assert_int_equal(pf_window_count(&siem, &r), 0);
}

static void test_windows_from_mid_range_cursor(void **state)
{
    (void)state;
    pf_window_range r;
    pf_window_range_make(&siem, T0, T0 + 6 * HOUR, T0 + 6 * HOUR, &r);
    pf_window w;
    int64_t cursor = T0 + 2 * HOUR + 30 * MIN;
    assert_int_equal(pf_window_next(&siem, &r, cursor, &w), 1);
    assert_int_equal(w.start_ms, cursor);
    assert_int_equal(w.end_ms, cursor + HOUR);
    /* Continuing from there reaches the end with a 30 min last window. */
    int64_t from = cursor;
    int n = 0;
    while (pf_window_next(&siem, &r, from, &w)) {
        assert_int_equal(w.start_ms, from);
        from = w.end_ms;
        n++;
    }
    assert_int_equal(n, 4);
    assert_int_equal(from, T0 + 6 * HOUR);
    /* A cursor at the end: nothing. */
    assert_int_equal(pf_window_next(&siem, &r, T0 + 6 * HOUR, &w), 0);
    /* A cursor 10 s before the end: the tail is too short. */
    assert_int_equal(pf_window_next(&siem, &r, T0 + 6 * HOUR - 10 * SEC, &w), 0);
}

static void test_59_minutes_is_one_window(void **state)
{
    (void)state;
    pf_window_range r;
    pf_window_range_make(&siem, T0, T0 + 59 * MIN, T0 + 59 * MIN, &r);
    pf_window w[2];
    assert_int_equal(plan(&siem, &r, w, 2), 1);
    assert_int_equal(w[0].start_ms, T0);
    assert_int_equal(w[0].end_ms, T0 + 59 * MIN);
}

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

/* Checks every promise of the planner for one (start, end, now). */
static void check_property(int64_t start, int64_t end, int64_t now)
{
    pf_window_range r;
    pf_window_range_make(&siem, start, end, now, &r);
    int64_t oldest = now - siem.retention_ms + siem.margin_ms;
    int64_t want_start = start < oldest ? oldest : start;
    int64_t want_end = end > now ? now : end;
    if (r.start_ms != want_start || r.end_ms != want_end || r.requested_start_ms != start ||
        r.clamped != (start < oldest))
        fail_msg("range(%lld,%lld,now=%lld) = [%lld,%lld) clamped=%d", (long long)start,
                 (long long)end, (long long)now, (long long)r.start_ms, (long long)r.end_ms,
                 r.clamped);

    size_t n = 0;
    int64_t covered = r.start_ms;
    pf_window w;
    for (int64_t from = r.start_ms; pf_window_next(&siem, &r, from, &w); from = w.end_ms) {
        int64_t len = w.end_ms - w.start_ms;
        if (w.start_ms != covered) /* no gap, no overlap */
            fail_msg("window %zu starts at %lld, previous ended at %lld (range %lld..%lld)", n,
                     (long long)w.start_ms, (long long)covered, (long long)start, (long long)end);
        if (len < siem.min_ms || len > siem.max_ms)
            fail_msg("window %zu has length %lld ms (range %lld..%lld)", n, (long long)len,
                     (long long)start, (long long)end);
        if (w.end_ms > r.end_ms)
            fail_msg("window %zu ends after the range (%lld > %lld)", n, (long long)w.end_ms,
                     (long long)r.end_ms);
        covered = w.end_ms;
        if (++n > 10000) fail_msg("runaway window plan");
    }
    /* The union is [start, covered) and what is left is shorter than a window. */
    int64_t left = r.end_ms - covered;
    if (r.end_ms > r.start_ms) {
        if (left < 0 || left >= siem.min_ms)
            fail_msg("range %lld..%lld: %lld ms left uncovered", (long long)r.start_ms,
                     (long long)r.end_ms, (long long)left);
        /* Windows are as long as allowed: all of them reach max except the last. */
        int64_t span = covered - r.start_ms;
        size_t full = (size_t)(span / siem.max_ms);
        if (n != full + (span % siem.max_ms ? 1 : 0))
            fail_msg("range %lld..%lld: %zu windows for %lld ms", (long long)r.start_ms,
                     (long long)r.end_ms, n, (long long)span);
    } else if (n != 0) {
        fail_msg("empty range %lld..%lld produced %zu windows", (long long)r.start_ms,
                 (long long)r.end_ms, n);
    }
    if (pf_window_count(&siem, &r) != n)
        fail_msg("pf_window_count = %zu, pf_window_next yields %zu", pf_window_count(&siem, &r), n);
}

static void test_property_windows_tile_the_range(void **state)
{
    (void)state;
    int64_t now = T0 + 20 * DAY;
    /* Edge lengths around every rule. */
    static const int64_t lens[] = {
        0,        1,       29 * SEC, 30 * SEC - 1,    30 * SEC,        30 * SEC + 1, 59 * MIN,
        HOUR - 1, HOUR,    HOUR + 1, HOUR + 29 * SEC, HOUR + 30 * SEC, 2 * HOUR,     6 * HOUR + 7,
        DAY,      7 * DAY, 8 * DAY};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        check_property(now - lens[i], now, now);
        check_property(now - 10 * DAY, now - 10 * DAY + lens[i], now);
        check_property(now - 6 * DAY, now - 6 * DAY + lens[i], now);
        check_property(now - lens[i] / 2, now + lens[i] / 2, now);
    }
    /* Random pairs: starts up to 9 days back, lengths up to 2 days, some ending in the future. */
    for (int i = 0; i < 3000; i++) {
        int64_t start = now - (int64_t)(rng() % (uint64_t)(9 * DAY));
        int64_t len;
        switch (rng() % 4) {
        case 0:
            len = (int64_t)(rng() % (uint64_t)(2 * MIN));
            break;
        case 1:
            len = (int64_t)(rng() % (uint64_t)(3 * HOUR));
            break;
        case 2:
            len = (int64_t)(rng() % 8) * HOUR + (int64_t)(rng() % 3) - 1;
            break;
        default:
            len = (int64_t)(rng() % (uint64_t)(2 * DAY));
            break;
        }
        check_property(start, start + len, now);
    }
}

/* The bundled SIEM templates declare exactly these rules. */
static void test_siem_template_declares_these_rules(void **state)
{
    (void)state;
    pf_template *t = NULL;
    pf_diags d = {0};
    pf_status st = pf_template_load_file(PPFLOW_SOURCE_DIR "/templates/tap-siem-all.yaml", &t, &d);
    if (st != PF_OK) fail_msg("tap-siem-all: %s", d.count ? d.items[0].msg : "?");
    assert_int_equal(t->paging, PF_PAGING_TIME_WINDOW);
    assert_int_equal(t->window.min_ms, siem.min_ms);
    assert_int_equal(t->window.max_ms, siem.max_ms);
    assert_int_equal(t->window.retention_ms, siem.retention_ms);
    assert_int_equal(t->window.margin_ms, siem.margin_ms);
    pf_template_free(t);
    pf_diags_free(&d);
}

/* Loads bundled template NAME. */
static pf_template *bundled(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, PPFLOW_SOURCE_DIR "/templates/%s.yaml", name);
    pf_template *t = NULL;
    pf_diags d = {0};
    if (pf_template_load_file(path, &t, &d) != PF_OK)
        fail_msg("%s: %s", name, d.count ? d.items[0].msg : "?");
    pf_diags_free(&d);
    return t;
}

/* Campaign IDs: intervals of at most a day (no retention limit known); a
 * 3 day 5 hour backfill is three full days and a 5 hour tail. */
static void test_campaign_ids_plan_in_days(void **state)
{
    (void)state;
    pf_template *t = bundled("tap-campaign-ids");
    pf_window_range r;
    pf_window_range_make(&t->window, T0, T0 + 3 * DAY + 5 * HOUR, T0 + 10 * DAY, &r);
    assert_false(r.clamped);
    pf_window w[8];
    size_t n = plan(&t->window, &r, w, 8);
    assert_int_equal(n, 4);
    assert_int_equal(w[0].end_ms - w[0].start_ms, DAY);
    assert_int_equal(w[3].start_ms, T0 + 3 * DAY);
    assert_int_equal(w[3].end_ms, T0 + 3 * DAY + 5 * HOUR);
    /* Old starts are not clamped: the API's look-back is not documented. */
    pf_window_range_make(&t->window, T0 - 400 * DAY, T0, T0, &r);
    assert_false(r.clamped);
    assert_int_equal(pf_window_count(&t->window, &r), 400);
    pf_template_free(t);
}

/* TRAP incidents: six-hour slices, and a one-second tail is still fetched. */
static void test_trap_incidents_plan_in_six_hours(void **state)
{
    (void)state;
    pf_template *t = bundled("trap-incidents");
    pf_window_range r;
    pf_window_range_make(&t->window, T0, T0 + 12 * HOUR + SEC, T0 + DAY, &r);
    pf_window w[8];
    size_t n = plan(&t->window, &r, w, 8);
    assert_int_equal(n, 3);
    assert_int_equal(w[1].start_ms, T0 + 6 * HOUR);
    assert_int_equal(w[1].end_ms, T0 + 12 * HOUR);
    assert_int_equal(w[2].end_ms - w[2].start_ms, SEC);
    pf_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_six_hours_gives_six_one_hour_windows),
        cmocka_unit_test(test_short_tail_is_left_for_next_run),
        cmocka_unit_test(test_range_shorter_than_min_has_no_window),
        cmocka_unit_test(test_end_after_now_is_cut_to_now),
        cmocka_unit_test(test_start_older_than_retention_is_clamped),
        cmocka_unit_test(test_empty_range_has_no_window),
        cmocka_unit_test(test_windows_from_mid_range_cursor),
        cmocka_unit_test(test_59_minutes_is_one_window),
        cmocka_unit_test(test_property_windows_tile_the_range),
        cmocka_unit_test(test_siem_template_declares_these_rules),
        cmocka_unit_test(test_campaign_ids_plan_in_days),
        cmocka_unit_test(test_trap_incidents_plan_in_six_hours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
