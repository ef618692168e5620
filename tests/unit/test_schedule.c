/* test_schedule.c: the `schedule:` flow key (every / cron / timezone, and the
 * FILE:LINE:COL of each problem), the due-time rules (every from the end of
 * the previous run; cron with one catch-up run after a long run), and the
 * test clock of PPFLOW_TEST_CLOCK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/flow.h"
#include "flow/yaml.h"
#include "sched/schedule.h"
#include "util/log.h"
#include "util/timeutil.h"

static int64_t T(const char *s)
{
    int64_t ms = 0;
    pf_error e;
    if (pf_time_parse(s, &ms, &e) != PF_OK) fail_msg("bad time in test: %s", s);
    return ms;
}

/* Parses YAML TEXT (named "f.yaml") and reads its `schedule` key. Returns
 * the schedule, or NULL with D holding the problems. */
static pf_schedule *parse(const char *text, pf_diags *d)
{
    pf_ydoc *doc = NULL;
    pf_error e;
    if (pf_yaml_parse("f.yaml", text, strlen(text), &doc, &e) != PF_OK)
        fail_msg("test YAML does not parse: %s", e.msg);
    pf_schedule *s = (pf_schedule *)0x1;
    int rc = pf_schedule_parse(pf_ymap_get(doc->root, "schedule"), &s, d);
    assert_true((rc == 0) == (s != NULL));
    pf_ydoc_free(doc);
    return s;
}

static pf_schedule *parse_ok(const char *text)
{
    pf_diags d = {0};
    pf_schedule *s = parse(text, &d);
    if (!s) fail_msg("'%s' should parse: %s", text, d.count ? d.items[0].msg : "?");
    assert_int_equal(d.count, 0);
    pf_diags_free(&d);
    return s;
}

/* TEXT is refused with a first problem at LINE:COL saying WORDS. */
static void parse_bad(const char *text, int line, int col, const char *words)
{
    pf_diags d = {0};
    pf_schedule *s = parse(text, &d);
    assert_null(s);
    assert_true(d.count >= 1);
    if (d.items[0].line != line || d.items[0].col != col || strcmp(d.items[0].file, "f.yaml") ||
        !strstr(d.items[0].msg, words))
        fail_msg("'%s': got %s:%d:%d: %s; expected %d:%d with '%s'", text, d.items[0].file,
                 d.items[0].line, d.items[0].col, d.items[0].msg, line, col, words);
    pf_diags_free(&d);
}

static void test_every(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
        const char *desc;
    } ok[] = {
        {"schedule: {every: 5m}", 300000, "every 5m"},
        {"schedule: {every: 90s}", 90000, "every 1m30s"},
        {"schedule: {every: 1h}", 3600000, "every 1h"},
        {"schedule: {every: 1d}", 86400000, "every 1d"},
        {"schedule:\n  every: PT15M\n", 900000, "every 15m"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        pf_schedule *s = parse_ok(ok[i].text);
        assert_int_equal(s->kind, PF_SCHEDULE_EVERY);
        assert_int_equal(s->every_ms, ok[i].ms);
        char buf[64];
        pf_schedule_describe(s, buf, sizeof buf);
        assert_string_equal(buf, ok[i].desc);
        pf_schedule_free(s);
    }
    parse_bad("schedule: {every: 5x}", 1, 19, "schedule.every");
    parse_bad("schedule: {every: 500ms}", 1, 19, "between 1s and 366d");
    parse_bad("schedule: {every: 400d}", 1, 19, "between 1s and 366d");
    parse_bad("schedule:\n  every: 5m\n  timezone: UTC\n", 3, 13, "cron schedules only");
}

static void test_cron_and_timezone(void **state)
{
    (void)state;
    pf_schedule *s = parse_ok("schedule: {cron: \"*/5 * * * *\"}");
    assert_int_equal(s->kind, PF_SCHEDULE_CRON);
    assert_string_equal(s->cron_text, "*/5 * * * *");
    assert_string_equal(s->tz_name, "UTC");
    char buf[128];
    pf_schedule_describe(s, buf, sizeof buf);
    assert_string_equal(buf, "cron '*/5 * * * *' in UTC");
    pf_schedule_free(s);

    s = parse_ok("schedule:\n  cron: 0 6 * * mon-fri\n  timezone: Europe/Berlin\n");
    assert_string_equal(s->tz_name, "Europe/Berlin");
    /* 06:00 in Berlin in January is 05:00Z. */
    assert_int_equal(pf_schedule_first(s, T("2026-01-05T00:00:00Z")), T("2026-01-05T05:00:00Z"));
    pf_schedule_free(s);

    parse_bad("schedule:\n  cron: \"*/5 * * * 9\"\n", 2, 9,
              "day of week: value out of range 0-7 (at character 11)");
    parse_bad("schedule: {cron: '* * *'}", 1, 18, "five fields");
    parse_bad("schedule:\n  cron: 0 0 30 2 *\n", 2, 9, "never");
    parse_bad("schedule:\n  cron: '0 * * * *'\n  timezone: Mars/Olympus\n", 3, 13,
              "unknown time zone 'Mars/Olympus'");
    parse_bad("schedule:\n  cron: '0 * * * *'\n  timezone: ../../etc/passwd\n", 3, 13,
              "not a time zone name");
    parse_bad("schedule:\n  cron: [1, 2]\n", 2, 9, "schedule.cron must be a string");
}

static void test_shape_errors(void **state)
{
    (void)state;
    parse_bad("schedule: 5m", 1, 11, "schedule must be a mapping");
    parse_bad("schedule: {}", 1, 11, "needs every");
    parse_bad("schedule:\n  every: 5m\n  cron: '* * * * *'\n", 3, 9, "both every and cron");
    parse_bad("schedule:\n  every: 5m\n  at: noon\n", 3, 3, "unknown key 'at' in schedule");
}

static void test_due_times(void **state)
{
    (void)state;
    /* every: at once, then an interval after each run's end. */
    pf_schedule *s = parse_ok("schedule: {every: 5m}");
    int64_t t0 = T("2026-01-01T10:00:00Z");
    assert_int_equal(pf_schedule_first(s, t0), t0);
    assert_int_equal(pf_schedule_after_run(s, t0, T("2026-01-01T10:01:30Z")),
                     T("2026-01-01T10:06:30Z"));
    /* A run longer than the interval: the next one an interval after it. */
    assert_int_equal(pf_schedule_after_run(s, t0, T("2026-01-01T10:17:00Z")),
                     T("2026-01-01T10:22:00Z"));
    pf_schedule_free(s);

    /* cron: the next matching time after the run's start... */
    s = parse_ok("schedule: {cron: '*/5 * * * *'}");
    assert_int_equal(pf_schedule_first(s, T("2026-01-01T10:02:00Z")), T("2026-01-01T10:05:00Z"));
    assert_int_equal(pf_schedule_after_run(s, t0, T("2026-01-01T10:03:00Z")),
                     T("2026-01-01T10:05:00Z"));
    /* ...or, when the run ran past it (10:05, 10:10 and 10:15 missed), one
     * catch-up run at once... */
    int64_t end = T("2026-01-01T10:17:00Z");
    assert_int_equal(pf_schedule_after_run(s, t0, end), end);
    /* ...after which the schedule resumes at its next time: the missed
     * times are not run again. */
    assert_int_equal(pf_schedule_after_run(s, end, T("2026-01-01T10:18:00Z")),
                     T("2026-01-01T10:20:00Z"));
    /* A run that ends exactly at the next time: that time was missed too. */
    assert_int_equal(pf_schedule_after_run(s, t0, T("2026-01-01T10:05:00Z")),
                     T("2026-01-01T10:05:00Z"));
    pf_schedule_free(s);
}

static void test_equal(void **state)
{
    (void)state;
    pf_schedule *a = parse_ok("schedule: {every: 5m}"), *b = parse_ok("schedule: {every: 300s}"),
                *c = parse_ok("schedule: {every: 6m}"),
                *d = parse_ok("schedule: {cron: '0 * * * *'}"),
                *e = parse_ok("schedule: {cron: '@hourly'}"),
                *f = parse_ok("schedule: {cron: '@hourly', timezone: Asia/Kathmandu}");
    assert_true(pf_schedule_equal(a, b));
    assert_false(pf_schedule_equal(a, c));
    assert_false(pf_schedule_equal(a, d));
    assert_true(pf_schedule_equal(d, e));
    assert_false(pf_schedule_equal(e, f));
    assert_true(pf_schedule_equal(NULL, NULL));
    assert_false(pf_schedule_equal(a, NULL));
    pf_schedule_free(a);
    pf_schedule_free(b);
    pf_schedule_free(c);
    pf_schedule_free(d);
    pf_schedule_free(e);
    pf_schedule_free(f);
    pf_schedule_free(NULL);
}

/* The flow loader accepts `schedule:`, stores it, and reports its problems
 * with the flow file's positions. */
static void test_flow_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/pft-sched-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/f.yaml", dir);
    setenv("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_DIR "/templates", 1);
    setenv("PFT_SECRET", "s3cret-value-123", 1);
    static const char base[] = "name: siem\n"
                               "source:\n"
                               "  template: tap-siem-all\n"
                               "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n"
                               "sink: {type: ndjson, path: out.ndjson}\n"
                               "state: {path: st.json}\n";
    char text[1024];
    snprintf(text, sizeof text, "%sschedule:\n  cron: '15 * * * *'\n", base);
    write_file(path, text);
    pf_diags d = {0};
    pf_flow *f = NULL;
    assert_int_equal(pf_flow_load(path, NULL, 0, &f, &d), PF_OK);
    assert_non_null(f->schedule);
    assert_int_equal(f->schedule->kind, PF_SCHEDULE_CRON);
    pf_flow_free(f);

    write_file(path, base);
    assert_int_equal(pf_flow_load(path, NULL, 0, &f, &d), PF_OK);
    assert_null(f->schedule);
    pf_flow_free(f);

    snprintf(text, sizeof text, "%sschedule:\n  every: 5m\n  cron: '* * * * *'\n", base);
    write_file(path, text);
    assert_int_not_equal(pf_flow_load(path, NULL, 0, &f, &d), PF_OK);
    assert_null(f);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].file, path);
    assert_int_equal(d.items[0].line, 9);
    assert_int_equal(d.items[0].col, 9);
    pf_diags_free(&d);
    rm_rf(dir);
    pf_log_clear_secrets();
}

static void test_test_clock(void **state)
{
    (void)state;
    pf_test_clock c;
    pf_error e;
    assert_int_equal(pf_test_clock_parse("2026-01-01T00:00:00Z@60", &c, &e), PF_OK);
    assert_int_equal(c.start_ms, T("2026-01-01T00:00:00Z"));
    assert_int_equal(c.speed, 60);
    assert_false(c.anchored);
    assert_int_equal(pf_test_clock_parse("2026-01-01T00:00:00Z@60@1000", &c, &e), PF_OK);
    assert_true(c.anchored);
    /* 2.5 real seconds after the anchor, 150 clock seconds have passed. */
    assert_int_equal(pf_test_clock_at(&c, 3500), T("2026-01-01T00:02:30Z"));
    char buf[PF_TEST_CLOCK_FMT_SIZE];
    pf_test_clock_format(&c, buf);
    assert_string_equal(buf, "2026-01-01T00:00:00Z@60@1000");
    assert_int_equal(
        pf_test_clock_at(
            &(pf_test_clock){.start_ms = 0, .speed = 100000, .anchor_ms = 0, .anchored = 1},
            INT64_MAX / 2),
        INT64_MAX); /* saturates */
    static const char *const bad[] = {"2026-01-01T00:00:00Z",
                                      "2026-01-01T00:00:00Z@0",
                                      "2026-01-01T00:00:00Z@100001",
                                      "2026-01-01@60",
                                      "2026-01-01T00:00:00Z@60@x",
                                      "2026-01-01T00:00:00Z@6x",
                                      "@60"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (pf_test_clock_parse(bad[i], &c, &e) != PF_ESYNTAX) fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(e.msg, "test clock"));
    }

    /* pf_time_now_ms follows an anchored clock; PPFLOW_NOW still wins. */
    char spec[PF_TEST_CLOCK_FMT_SIZE];
    pf_test_clock anchored = {.start_ms = T("2030-06-01T00:00:00Z"),
                              .speed = 1000,
                              .anchor_ms = pf_time_real_ms(),
                              .anchored = 1};
    pf_test_clock_format(&anchored, spec);
    unsetenv("PPFLOW_NOW");
    setenv(PF_TEST_CLOCK_ENV, spec, 1);
    int64_t a = pf_time_now_ms();
    assert_true(a >= T("2030-06-01T00:00:00Z") && a < T("2030-06-01T01:00:00Z"));
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    int64_t b = pf_time_now_ms();
    assert_true(b - a >= 20 * 1000); /* 20 real ms = at least 20 clock seconds */
    setenv("PPFLOW_NOW", "2001-01-01T00:00:00Z", 1);
    assert_int_equal(pf_time_now_ms(), T("2001-01-01T00:00:00Z"));
    unsetenv("PPFLOW_NOW");
    unsetenv(PF_TEST_CLOCK_ENV);
    int64_t real = pf_time_real_ms(), now = pf_time_now_ms();
    assert_true(now >= real && now - real < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every),        cmocka_unit_test(test_cron_and_timezone),
        cmocka_unit_test(test_shape_errors), cmocka_unit_test(test_due_times),
        cmocka_unit_test(test_equal),        cmocka_unit_test(test_flow_key),
        cmocka_unit_test(test_test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
