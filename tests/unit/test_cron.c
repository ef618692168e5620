/* test_cron.c: cron expressions (syntax, errors with their offsets, the
 * Vixie day-of-month/day-of-week rule), next run times against hand-computed
 * answers in UTC and in zones with daylight-saving changes, and the TZif
 * reader (cross-checked against the C library on the system's zoneinfo). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/cron.h"
#include "sched/tz.h"
#include "util/timeutil.h"

static int64_t T(const char *s)
{
    int64_t ms = 0;
    pf_error e;
    if (pf_time_parse(s, &ms, &e) != PF_OK) fail_msg("bad time in test: %s", s);
    return ms;
}

static pf_cron parse_ok(const char *expr)
{
    pf_cron c;
    pf_error e;
    pf_error_clear(&e);
    if (pf_cron_parse(expr, &c, &e) != PF_OK) fail_msg("'%s' should parse: %s", expr, e.msg);
    return c;
}

/* EXPR is refused, at byte OFFSET, with WORDS in the message. */
static void parse_bad(const char *expr, long offset, const char *words)
{
    pf_cron c;
    memset(&c, 0x5a, sizeof c);
    pf_cron before = c;
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_cron_parse(expr, &c, &e);
    if (st != PF_ESYNTAX) fail_msg("'%s' should be refused, got %d", expr, st);
    if (e.offset != offset)
        fail_msg("'%s': error at offset %ld, expected %ld (%s)", expr, e.offset, offset, e.msg);
    if (!strstr(e.msg, words)) fail_msg("'%s': message '%s' lacks '%s'", expr, e.msg, words);
    assert_memory_equal(&c, &before, sizeof c); /* output untouched */
}

static void next_is(const char *expr, const pf_tz *tz, const char *after, const char *want)
{
    pf_cron c = parse_ok(expr);
    int64_t got = pf_cron_next(&c, tz, T(after));
    if (got != T(want)) {
        char g[PF_TIME_FMT_SIZE];
        pf_time_format(got, g);
        fail_msg("'%s' after %s in %s: got %s, expected %s", expr, after,
                 tz ? pf_tz_name(tz) : "UTC", g, want);
    }
}

static pf_tz *zone(const char *name)
{
    pf_tz *z = NULL;
    pf_error e;
    if (pf_tz_load(name, &z, &e) != PF_OK) fail_msg("cannot load %s: %s", name, e.msg);
    return z;
}

static void test_fields_lists_ranges_steps_names(void **state)
{
    (void)state;
    pf_cron c = parse_ok("1,5-7,*/20 0-23/6 1,15,31 jan,MAR-may,12 mon-fri");
    assert_true(c.minute == ((1ull << 1) | (1ull << 5) | (1ull << 6) | (1ull << 7) | (1ull << 0) |
                             (1ull << 20) | (1ull << 40)));
    assert_int_equal(c.hour, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
    assert_int_equal(c.mday, (1u << 1) | (1u << 15) | (1u << 31));
    assert_int_equal(c.month, (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 12));
    assert_int_equal(c.wday, 0x3e); /* mon..fri */
    assert_false(c.mday_star);
    assert_false(c.wday_star);

    c = parse_ok("5/15 * * * sun,7"); /* N/S: N to max; 0 and 7 are Sunday */
    assert_true(c.minute == ((1ull << 5) | (1ull << 20) | (1ull << 35) | (1ull << 50)));
    assert_int_equal(c.wday, 1);
    assert_true(c.mday_star);
    assert_false(c.wday_star);
    c = parse_ok("0 0 * * 5-7"); /* fri, sat, sun */
    assert_int_equal(c.wday, (1u << 5) | (1u << 6) | 1u);
    c = parse_ok("  0\t12  */2  *  *  "); /* blanks around and between fields */
    assert_int_equal(c.hour, 1u << 12);
    assert_true(c.mday_star); /* "*" + "/2" counts as a star, as in Vixie cron */
    assert_int_equal(c.mday & 0xf, (1u << 1) | (1u << 3));

    pf_cron h = parse_ok("@hourly"), ref = parse_ok("0 * * * *");
    assert_memory_equal(&h, &ref, sizeof h);
    h = parse_ok("@DAILY");
    ref = parse_ok("0 0 * * *");
    assert_memory_equal(&h, &ref, sizeof h);
    h = parse_ok("@annually");
    ref = parse_ok("0 0 1 1 *");
    assert_memory_equal(&h, &ref, sizeof h);
    h = parse_ok("@weekly");
    ref = parse_ok("0 0 * * 0");
    assert_memory_equal(&h, &ref, sizeof h);
}

static void test_errors_name_the_field_and_offset(void **state)
{
    (void)state;
    parse_bad("*/5 * * *", 9, "five fields");
    parse_bad("* * * * * *", 10, "more than five fields");
    parse_bad("60 * * * *", 0, "minute: value out of range 0-59");
    parse_bad("* 24 * * *", 2, "hour: value out of range 0-23");
    parse_bad("* * 0 * *", 4, "day of month: value out of range 1-31");
    parse_bad("* * * 13 *", 6, "month: value out of range 1-12");
    parse_bad("* * * * 8", 8, "day of week: value out of range 0-7");
    parse_bad("5-1 * * * *", 0, "goes backwards");
    parse_bad("*/0 * * * *", 2, "step must be a number 1-60");
    parse_bad("* */25 * * *", 4, "step must be a number 1-24");
    parse_bad("1,,2 * * * *", 2, "empty item");
    parse_bad("1, * * * *", 2, "empty item");
    parse_bad("x * * * *", 0, "minute: expected a number");
    parse_bad("* * * jan-foo *", 10, "expected a value after '-'");
    parse_bad("* * * * monday", 8, "day of week: expected a number, a name");
    parse_bad("* * * * mon-", 12, "expected a value after '-'");
    parse_bad("1-2-3 * * * *", 3, "unexpected character '-'");
    parse_bad("0 0 30 feb *", 4, "never occurs");
    parse_bad("0 0 31 4,6,9,11 *", 4, "never occurs");
    parse_bad("@reboot", 0, "unknown shorthand");
    parse_bad("@daily extra", 0, "unknown shorthand");
    parse_bad("", 0, "got 0");
    /* Both day fields restricted: OR, so day 30 of February is not alone. */
    parse_ok("0 0 30 feb mon");
    parse_ok("0 0 29 feb *"); /* leap years only, but it runs */
}

static void test_next_in_utc(void **state)
{
    (void)state;
    next_is("*/5 * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z");
    next_is("*/5 * * * *", NULL, "2026-01-01T00:04:59.999Z", "2026-01-01T00:05:00Z");
    next_is("*/5 * * * *", NULL, "2026-01-01T00:05:00Z",
            "2026-01-01T00:10:00Z"); /* strictly after */
    next_is("*/5 * * * *", NULL, "2026-12-31T23:58:00Z", "2027-01-01T00:00:00Z");
    next_is("0 0 1 1 *", NULL, "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z");
    next_is("15 10 * * *", NULL, "2026-01-01T10:15:00Z", "2026-01-02T10:15:00Z");
    next_is("15 10 * * *", NULL, "2026-01-01T10:14:30Z", "2026-01-01T10:15:00Z");
    /* Month ends: the 31st skips short months; Feb 29 waits for a leap year
     * (and 2100 is not one). */
    next_is("0 0 31 * *", NULL, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z");
    next_is("0 0 31 * *", NULL, "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z");
    next_is("0 12 28-31 * *", NULL, "2026-02-28T12:00:00Z", "2026-03-28T12:00:00Z");
    next_is("0 0 29 2 *", NULL, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z");
    next_is("0 0 29 2 *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
    next_is("59 23 30 4,6,9,11 *", NULL, "2026-04-30T23:59:00Z", "2026-06-30T23:59:00Z");
    /* Vixie's rule: both restricted = either; one starred = both. */
    next_is("0 0 13 * 5", NULL, "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z"); /* a Friday */
    next_is("0 0 13 * 5", NULL, "2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z");
    next_is("0 0 13 * 5", NULL, "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z");
    next_is("0 0 1,15 * mon", NULL, "2026-02-10T00:00:00Z", "2026-02-15T00:00:00Z");
    next_is("0 0 1,15 * mon", NULL, "2026-02-15T00:00:00Z", "2026-02-16T00:00:00Z");
    next_is("0 0 */2 * mon", NULL, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"); /* odd & Mon */
    next_is("0 0 */2 * mon", NULL, "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z");
    next_is("0 0 * * 7", NULL, "2026-03-23T00:00:00Z", "2026-03-29T00:00:00Z"); /* 7 = Sunday */
    next_is("0 9 * * mon-fri", NULL, "2026-02-06T09:00:00Z", "2026-02-09T09:00:00Z");
    next_is("30 */6 * * *", NULL, "2026-01-01T17:00:00Z", "2026-01-01T18:30:00Z");
    next_is("@monthly", NULL, "2026-01-15T08:00:00Z", "2026-02-01T00:00:00Z");
}

static void test_next_in_zones(void **state)
{
    (void)state;
    pf_tz *berlin = zone("Europe/Berlin"), *ny = zone("America/New_York"),
          *sydney = zone("Australia/Sydney"), *ktm = zone("Asia/Kathmandu"), *utc = zone("UTC");
    /* Winter (UTC+1) and summer (UTC+2). */
    next_is("0 6 * * *", berlin, "2026-01-10T12:00:00Z", "2026-01-11T05:00:00Z");
    next_is("0 6 * * *", berlin, "2026-07-10T12:00:00Z", "2026-07-11T04:00:00Z");
    /* 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z. 02:30 does not
     * exist that day: it runs at the change, once. */
    next_is("30 2 * * *", berlin, "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z");
    next_is("30 2 * * *", berlin, "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z");
    next_is("*/15 * * * *", berlin, "2026-03-29T00:50:00Z", "2026-03-29T01:00:00Z");
    next_is("*/15 * * * *", berlin, "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z");
    /* 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z. 02:30 occurs twice:
     * it runs at the first one only. */
    next_is("30 2 * * *", berlin, "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z");
    next_is("30 2 * * *", berlin, "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z");
    next_is("*/30 * * * *", berlin, "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z");
    /* New York: DST from 2026-03-08; Friday 09:00 EST, Monday 09:00 EDT. */
    next_is("0 9 * * mon-fri", ny, "2026-03-05T15:00:00Z", "2026-03-06T14:00:00Z");
    next_is("0 9 * * mon-fri", ny, "2026-03-06T15:00:00Z", "2026-03-09T13:00:00Z");
    /* Sydney (southern): DST ends 2026-04-05 03:00 AEDT (16:00Z the day
     * before) and starts 2026-10-04 02:00 AEST (16:00Z the day before). */
    next_is("30 2 * * *", sydney, "2026-04-04T00:00:00Z", "2026-04-04T15:30:00Z");
    next_is("30 2 * * *", sydney, "2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z");
    next_is("30 2 * * *", sydney, "2026-10-03T00:00:00Z", "2026-10-03T16:00:00Z");
    next_is("0 12 * * *", sydney, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
    /* A quarter-hour offset: UTC+05:45. */
    next_is("0 0 * * *", ktm, "2026-01-01T00:00:00Z", "2026-01-01T18:15:00Z");
    next_is("*/10 * * * *", ktm, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z");
    next_is("0 0 29 2 *", utc, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z");
    pf_tz_free(berlin);
    pf_tz_free(ny);
    pf_tz_free(sydney);
    pf_tz_free(ktm);
    pf_tz_free(utc);
}

/* Offsets agree with the C library's reading of the same zoneinfo, at
 * instants every few hours over 1970-2100 and a second around each change. */
static void test_offsets_match_the_c_library(void **state)
{
    (void)state;
    static const char *const zones[] = {
        "Europe/Berlin",   "America/New_York",  "Australia/Sydney",  "Asia/Kathmandu",
        "Europe/Dublin",   "America/Sao_Paulo", "Pacific/Apia",      "Asia/Tehran",
        "Pacific/Chatham", "America/St_Johns",  "Africa/Casablanca", "UTC"};
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    long checked = 0;
    for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
        pf_tz *z = zone(zones[zi]);
        setenv("TZ", zones[zi], 1);
        tzset();
        int32_t prev = 0;
        for (int64_t t = 0; t < INT64_C(4102444800); t += 3 * 3600 + 17) {
            struct tm tm;
            time_t tt = (time_t)t;
            assert_non_null(localtime_r(&tt, &tm));
            int32_t got = pf_tz_offset(z, t);
            if (got != tm.tm_gmtoff)
                fail_msg("%s at %lld: offset %d, C library %ld", zones[zi], (long long)t, got,
                         tm.tm_gmtoff);
            if (t && got != prev) {
                /* Find the change to the second and compare on both sides. */
                int64_t lo = t - (3 * 3600 + 17), hi = t;
                while (hi - lo > 1) {
                    int64_t mid = lo + (hi - lo) / 2;
                    if (pf_tz_offset(z, mid) == got)
                        hi = mid;
                    else
                        lo = mid;
                }
                for (int64_t u = hi - 1; u <= hi; u++) {
                    tt = (time_t)u;
                    localtime_r(&tt, &tm);
                    if (pf_tz_offset(z, u) != tm.tm_gmtoff)
                        fail_msg("%s at change %lld: %d vs %ld", zones[zi], (long long)u,
                                 pf_tz_offset(z, u), tm.tm_gmtoff);
                }
            }
            prev = got;
            checked++;
        }
        pf_tz_free(z);
    }
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old);
    assert_true(checked > 1000000);
}

/* A TZif v2 file with no transitions: only the footer's POSIX rule. */
static size_t make_tzif(unsigned char *buf, int32_t utoff, const char *footer)
{
    size_t o = 0;
    for (int v = 0; v < 2; v++) {
        memcpy(buf + o, "TZif2", 5);
        memset(buf + o + 5, 0, 15);
        o += 20;
        uint32_t counts[6] = {0, 0, 0, 0, 1, 4}; /* isut isstd leap time type char */
        for (int i = 0; i < 6; i++) {
            buf[o++] = (unsigned char)(counts[i] >> 24);
            buf[o++] = (unsigned char)(counts[i] >> 16);
            buf[o++] = (unsigned char)(counts[i] >> 8);
            buf[o++] = (unsigned char)counts[i];
        }
        uint32_t u = (uint32_t)utoff;
        buf[o++] = (unsigned char)(u >> 24);
        buf[o++] = (unsigned char)(u >> 16);
        buf[o++] = (unsigned char)(u >> 8);
        buf[o++] = (unsigned char)u;
        buf[o++] = 0; /* isdst */
        buf[o++] = 0; /* abbreviation index */
        memcpy(buf + o, "XXX", 4);
        o += 4;
    }
    buf[o++] = '\n';
    memcpy(buf + o, footer, strlen(footer));
    o += strlen(footer);
    buf[o++] = '\n';
    return o;
}

static int32_t rule_offset(const char *footer, int32_t utoff, const char *when)
{
    unsigned char buf[512];
    size_t n = make_tzif(buf, utoff, footer);
    pf_tz *z = NULL;
    pf_error e;
    if (pf_tz_parse("test", buf, n, &z, &e) != PF_OK) fail_msg("%s: %s", footer, e.msg);
    int32_t off = pf_tz_offset(z, T(when) / 1000);
    pf_tz_free(z);
    return off;
}

static void test_posix_footer_rules(void **state)
{
    (void)state;
    const char *cet = "CET-1CEST,M3.5.0,M10.5.0/3";
    assert_int_equal(rule_offset(cet, 3600, "2030-01-15T00:00:00Z"), 3600);
    assert_int_equal(rule_offset(cet, 3600, "2030-07-15T00:00:00Z"), 7200);
    /* 2030-03-31 (last Sunday) 02:00 CET = 01:00Z; 2030-10-27 03:00 CEST = 01:00Z. */
    assert_int_equal(rule_offset(cet, 3600, "2030-03-31T00:59:59Z"), 3600);
    assert_int_equal(rule_offset(cet, 3600, "2030-03-31T01:00:00Z"), 7200);
    assert_int_equal(rule_offset(cet, 3600, "2030-10-27T00:59:59Z"), 7200);
    assert_int_equal(rule_offset(cet, 3600, "2030-10-27T01:00:00Z"), 3600);
    /* Southern hemisphere: DST across the new year. */
    const char *syd = "AEST-10AEDT,M10.1.0,M4.1.0/3";
    assert_int_equal(rule_offset(syd, 36000, "2031-01-01T00:00:00Z"), 39600);
    assert_int_equal(rule_offset(syd, 36000, "2031-06-01T00:00:00Z"), 36000);
    /* Negative DST (Europe/Dublin: IST in summer is standard time). */
    const char *dub = "IST-1GMT0,M10.5.0,M3.5.0/1";
    assert_int_equal(rule_offset(dub, 3600, "2031-01-15T00:00:00Z"), 0);
    assert_int_equal(rule_offset(dub, 3600, "2031-07-15T00:00:00Z"), 3600);
    /* Quoted names, minutes, no DST; J and zero-based day rules. */
    assert_int_equal(rule_offset("<+0545>-5:45", 20700, "2031-07-15T00:00:00Z"), 20700);
    assert_int_equal(rule_offset("<-03>3", -10800, "2031-07-15T00:00:00Z"), -10800);
    const char *j = "XST5XDT,J60/0,J300/0"; /* Mar 1 .. Oct 27 (J never counts Feb 29) */
    assert_int_equal(rule_offset(j, -18000, "2032-03-01T05:00:00Z"), -14400);
    assert_int_equal(rule_offset(j, -18000, "2032-02-29T12:00:00Z"), -18000);
    const char *d = "XST5XDT,59/0,299/0"; /* zero-based: Feb 29 counts in leap years */
    assert_int_equal(rule_offset(d, -18000, "2032-02-29T05:00:00Z"), -14400);
}

static void test_bad_zones_are_refused(void **state)
{
    (void)state;
    pf_tz *z = NULL;
    pf_error e;
    assert_int_equal(pf_tz_load("Mars/Olympus_Mons", &z, &e), PF_ENOTFOUND);
    assert_non_null(strstr(e.msg, "unknown time zone 'Mars/Olympus_Mons'"));
    assert_int_equal(pf_tz_load("../etc/passwd", &z, &e), PF_EINVAL);
    assert_int_equal(pf_tz_load("/etc/localtime", &z, &e), PF_EINVAL);
    assert_int_equal(pf_tz_load("Europe/./Berlin", &z, &e), PF_EINVAL);
    assert_int_equal(pf_tz_load("Europe/", &z, &e), PF_EINVAL);
    assert_int_equal(pf_tz_load("Europe/Ber lin", &z, &e), PF_EINVAL);
    assert_int_equal(pf_tz_load("", &z, &e), PF_EINVAL);
    assert_null(z);

    unsigned char buf[512];
    size_t n = make_tzif(buf, 3600, "CET-1CEST,M3.5.0,M10.5.0/3");
    for (size_t cut = 0; cut < n - 1; cut += 7) {
        /* Every truncation is refused (the last byte is the footer's newline). */
        if (pf_tz_parse("cut", buf, cut, &z, &e) == PF_OK) fail_msg("truncated at %zu parsed", cut);
        assert_int_equal(e.code, PF_EDATA);
    }
    n = make_tzif(buf, 3600, "CET-1CEST,M13.5.0,M10.5.0/3");
    assert_int_equal(pf_tz_parse("badrule", buf, n, &z, &e), PF_EDATA);
    n = make_tzif(buf, 30 * 3600, "");
    assert_int_equal(pf_tz_parse("badoffset", buf, n, &z, &e), PF_EDATA);
    memcpy(buf, "TZxx", 4);
    assert_int_equal(pf_tz_parse("magic", buf, n, &z, &e), PF_EDATA);
    assert_null(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_lists_ranges_steps_names),
        cmocka_unit_test(test_errors_name_the_field_and_offset),
        cmocka_unit_test(test_next_in_utc),
        cmocka_unit_test(test_next_in_zones),
        cmocka_unit_test(test_offsets_match_the_c_library),
        cmocka_unit_test(test_posix_footer_rules),
        cmocka_unit_test(test_bad_zones_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
