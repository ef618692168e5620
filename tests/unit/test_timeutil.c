/* test_timeutil.c: RFC 3339 times, durations, intervals and PPFLOW_NOW. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/timeutil.h"

#define H (3600 * INT64_C(1000))
#define D (24 * H)

static int64_t parse_ok(const char *s)
{
    int64_t ms = -42;
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_time_parse(s, &ms, &e);
    if (st != PF_OK) fail_msg("pf_time_parse(\"%s\") failed: %s", s, e.msg);
    return ms;
}

static void parse_bad(const char *s)
{
    int64_t ms = 12345;
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_time_parse(s, &ms, &e);
    if (st != PF_ESYNTAX) fail_msg("pf_time_parse(\"%s\") should fail, got %d", s, st);
    assert_int_equal(ms, 12345); /* output untouched */
    assert_int_equal(e.code, PF_ESYNTAX);
    assert_non_null(strstr(e.msg, s[0] ? s : "''")); /* message quotes the text */
}

static void test_time_parse_valid(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("1970-01-01T00:00:00"), 0); /* no offset: UTC */
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(parse_ok("2024-02-29T12:34:56Z"), INT64_C(1709210096000));
    assert_int_equal(parse_ok("2024-02-29t12:34:56z"), INT64_C(1709210096000));
    assert_int_equal(parse_ok("2024-02-29 12:34:56Z"), INT64_C(1709210096000));
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), INT64_C(951782400000));
    assert_int_equal(parse_ok("1900-03-01T00:00:00Z"), INT64_C(-2203891200000));
    assert_int_equal(parse_ok("9999-12-31T23:59:59Z"), INT64_C(253402300799000));
    assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), INT64_C(-62135596800000));
}

static void test_time_parse_offsets_and_fractions(void **state)
{
    (void)state;
    int64_t base = INT64_C(1704067200000); /* 2024-01-01T00:00:00Z */
    assert_int_equal(parse_ok("2024-01-01T02:00:00+02:00"), base);
    assert_int_equal(parse_ok("2024-01-01T02:00:00+0200"), base);
    assert_int_equal(parse_ok("2023-12-31T19:30:00-04:30"), base);
    assert_int_equal(parse_ok("2024-01-01T00:00:00-00:00"), base);
    assert_int_equal(parse_ok("2024-01-01T00:00:00.5Z"), base + 500);
    assert_int_equal(parse_ok("2024-01-01T00:00:00.05Z"), base + 50);
    assert_int_equal(parse_ok("2024-01-01T00:00:00.123Z"), base + 123);
    assert_int_equal(parse_ok("2024-01-01T00:00:00.123999999Z"), base + 123); /* truncated */
    assert_int_equal(parse_ok("2024-01-01T00:00:00,250Z"), base + 250);
    assert_int_equal(parse_ok("2024-01-01T01:00:00.5+01:00"), base + 500);
}

static void test_time_parse_invalid(void **state)
{
    (void)state;
    parse_bad("");
    parse_bad("2024-01-01");          /* date only */
    parse_bad("2024-01-01T00:00");    /* no seconds */
    parse_bad("2024-1-01T00:00:00Z"); /* digit counts */
    parse_bad("24-01-01T00:00:00Z");
    parse_bad("2024-13-01T00:00:00Z"); /* month */
    parse_bad("2024-00-01T00:00:00Z");
    parse_bad("2023-02-29T00:00:00Z"); /* not a leap year */
    parse_bad("1900-02-29T00:00:00Z"); /* century, not leap */
    parse_bad("2024-04-31T00:00:00Z");
    parse_bad("2024-01-00T00:00:00Z");
    parse_bad("2024-01-01T24:00:00Z"); /* hour 24 */
    parse_bad("2024-01-01T00:60:00Z");
    parse_bad("2024-01-01T00:00:60Z"); /* leap second */
    parse_bad("2024-01-01T00:00:00.Z");
    parse_bad("2024-01-01T00:00:00ZZ"); /* trailing junk */
    parse_bad("2024-01-01T00:00:00Z ");
    parse_bad("2024-01-01T00:00:00+2:00");
    parse_bad("2024-01-01T00:00:00+24:00");
    parse_bad("2024-01-01T00:00:00+01:60");
    parse_bad("2024-01-01T00:00:00+01");
    parse_bad("2024-01-01X00:00:00Z");
    parse_bad(" 2024-01-01T00:00:00Z");
    int64_t ms;
    assert_int_equal(pf_time_parse(NULL, &ms, NULL), PF_EINVAL);
    assert_int_equal(pf_time_parse("2024-01-01T00:00:00Z", NULL, NULL), PF_EINVAL);
}

static void test_time_format(void **state)
{
    (void)state;
    char buf[PF_TIME_FMT_SIZE];
    pf_time_format(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    pf_time_format(INT64_C(1709210096000), buf);
    assert_string_equal(buf, "2024-02-29T12:34:56Z");
    pf_time_format(INT64_C(1709210096007), buf);
    assert_string_equal(buf, "2024-02-29T12:34:56.007Z");
    pf_time_format(-1, buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    pf_time_format(INT64_C(-62135596800000), buf);
    assert_string_equal(buf, "0001-01-01T00:00:00Z");
    /* Extremes must not overflow the buffer. */
    pf_time_format(INT64_MAX, buf);
    assert_true(strlen(buf) < sizeof buf);
    pf_time_format(INT64_MIN, buf);
    assert_true(strlen(buf) < sizeof buf);
}

static void test_time_round_trip(void **state)
{
    (void)state;
    /* Every day boundary in 1896..2104 (leap rules incl. 1900, 2000, 2100), odd ms. */
    for (int64_t ms = INT64_C(-2335219200000); ms < INT64_C(4260211200000); ms += D + 3601001) {
        char buf[PF_TIME_FMT_SIZE];
        pf_time_format(ms, buf);
        int64_t back = 0;
        assert_int_equal(pf_time_parse(buf, &back, NULL), PF_OK);
        assert_int_equal(back, ms);
    }
}

static int64_t dur_ok(const char *s)
{
    int64_t ms = -42;
    pf_error e;
    pf_error_clear(&e);
    if (pf_duration_parse(s, &ms, &e) != PF_OK)
        fail_msg("pf_duration_parse(\"%s\") failed: %s", s, e.msg);
    return ms;
}

static pf_status dur_bad(const char *s)
{
    int64_t ms = 777;
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_duration_parse(s, &ms, &e);
    if (st == PF_OK) fail_msg("pf_duration_parse(\"%s\") should fail", s);
    assert_int_equal(ms, 777);
    assert_true(e.msg[0] != '\0');
    return st;
}

static void test_duration_iso(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("P1D"), D);
    assert_int_equal(dur_ok("PT30M"), 30 * 60000);
    assert_int_equal(dur_ok("PT1H30M"), 90 * 60000);
    assert_int_equal(dur_ok("PT0.5S"), 500);
    assert_int_equal(dur_ok("PT0,25S"), 250);
    assert_int_equal(dur_ok("P1W"), 7 * D);
    assert_int_equal(dur_ok("P1DT12H"), D + 12 * H);
    assert_int_equal(dur_ok("P2W3DT4H5M6.789S"), 17 * D + 4 * H + 5 * 60000 + 6789);
    assert_int_equal(dur_ok("PT1.5H"), 90 * 60000);
    assert_int_equal(dur_ok("pt1h"), H);
    assert_int_equal(dur_ok("PT0S"), 0);
    assert_int_equal(dur_ok("PT36H"), 36 * H);
}

static void test_duration_short(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("30s"), 30000);
    assert_int_equal(dur_ok("5m"), 300000);
    assert_int_equal(dur_ok("1h"), H);
    assert_int_equal(dur_ok("7d"), 7 * D);
    assert_int_equal(dur_ok("2w"), 14 * D);
    assert_int_equal(dur_ok("250ms"), 250);
    assert_int_equal(dur_ok("90"), 90000);
    assert_int_equal(dur_ok("0"), 0);
    assert_int_equal(dur_ok("0.25"), 250);
    assert_int_equal(dur_ok("1h30m"), 90 * 60000);
    assert_int_equal(dur_ok("1m30s500ms"), 90500);
    assert_int_equal(dur_ok("1.5h"), 90 * 60000);
}

static void test_duration_invalid(void **state)
{
    (void)state;
    pf_error e;
    int64_t ms;
    assert_int_equal(pf_duration_parse("P1Y", &ms, &e), PF_ESYNTAX);
    assert_non_null(strstr(e.msg, "years"));
    assert_int_equal(pf_duration_parse("P2M", &ms, &e), PF_ESYNTAX);
    assert_non_null(strstr(e.msg, "months"));
    assert_int_equal(dur_bad(""), PF_ESYNTAX);
    assert_int_equal(dur_bad("P"), PF_ESYNTAX);
    assert_int_equal(dur_bad("PT"), PF_ESYNTAX);
    assert_int_equal(dur_bad("P1DT"), PF_ESYNTAX);
    assert_int_equal(dur_bad("P1H"), PF_ESYNTAX);       /* H needs T */
    assert_int_equal(dur_bad("PT1D"), PF_ESYNTAX);      /* D after T */
    assert_int_equal(dur_bad("PT1M1H"), PF_ESYNTAX);    /* order */
    assert_int_equal(dur_bad("P1D1D"), PF_ESYNTAX);     /* repeat */
    assert_int_equal(dur_bad("PT1.5H30M"), PF_ESYNTAX); /* fraction not last */
    assert_int_equal(dur_bad("P1"), PF_ESYNTAX);
    assert_int_equal(dur_bad("-5s"), PF_ESYNTAX);
    assert_int_equal(dur_bad("5x"), PF_ESYNTAX);
    assert_int_equal(dur_bad("5 s"), PF_ESYNTAX);
    assert_int_equal(dur_bad("s"), PF_ESYNTAX);
    assert_int_equal(dur_bad("1h30"), PF_ESYNTAX);
    assert_int_equal(dur_bad("30m1h"), PF_ESYNTAX);
    assert_int_equal(dur_bad("5mm"), PF_ESYNTAX);
    assert_int_equal(dur_bad("99999999999999999999"), PF_ETOOBIG);
    assert_int_equal(dur_bad("P99999999999999D"), PF_ETOOBIG);
    assert_int_equal(dur_bad("9223372036854776s"), PF_ETOOBIG);
    assert_int_equal(dur_ok("9223372036854775ms"), INT64_C(9223372036854775));
    assert_int_equal(pf_duration_parse(NULL, &ms, NULL), PF_EINVAL);
}

static void test_interval(void **state)
{
    (void)state;
    int64_t s = 0, e = 0;
    int64_t base = INT64_C(1704067200000);
    assert_int_equal(pf_interval_parse("2024-01-01T00:00:00Z/2024-01-01T01:00:00Z", &s, &e, NULL),
                     PF_OK);
    assert_int_equal(s, base);
    assert_int_equal(e, base + H);
    assert_int_equal(pf_interval_parse("PT1H/2024-01-01T01:00:00Z", &s, &e, NULL), PF_OK);
    assert_int_equal(s, base);
    assert_int_equal(e, base + H);
    assert_int_equal(pf_interval_parse("2024-01-01T00:00:00Z/P1D", &s, &e, NULL), PF_OK);
    assert_int_equal(s, base);
    assert_int_equal(e, base + D);
    assert_int_equal(pf_interval_parse("2024-01-01T00:00:00+01:00/30m", &s, &e, NULL), PF_OK);
    assert_int_equal(s, base - H);
    assert_int_equal(e, base - H + 30 * 60000);

    const char *bad[] = {"",
                         "2024-01-01T00:00:00Z",
                         "2024-01-01T00:00:00Z/",
                         "/2024-01-01T00:00:00Z",
                         "P1D/PT1H",
                         "R5/2024-01-01T00:00:00Z/P1D",
                         "2024-01-01T01:00:00Z/2024-01-01T00:00:00Z", /* end before start */
                         "2024-01-01T00:00:00Z/2024-01-01T00:00:00Z", /* empty */
                         "2024-01-01T00:00:00Z/PT0S",
                         "2024-01-01T00:00:00Z/P1Y",
                         "2024-02-30T00:00:00Z/P1D",
                         "2024-01-01T00:00:00Z/P1D/x",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        pf_error err;
        pf_error_clear(&err);
        s = e = 99;
        if (pf_interval_parse(bad[i], &s, &e, &err) == PF_OK)
            fail_msg("interval \"%s\" should fail", bad[i]);
        assert_int_equal(s, 99);
        assert_int_equal(e, 99);
        assert_true(err.msg[0] != '\0');
    }
}

static void test_now(void **state)
{
    (void)state;
    setenv("PPFLOW_NOW", "2024-01-01T00:00:00Z", 1);
    assert_int_equal(pf_time_now_ms(), INT64_C(1704067200000));
    setenv("PPFLOW_NOW", "garbage", 1);
    int64_t real = pf_time_real_ms();
    int64_t now = pf_time_now_ms(); /* falls back to the clock (with a warning) */
    assert_true(now >= real && now - real < 5000);
    unsetenv("PPFLOW_NOW");
    now = pf_time_now_ms();
    assert_true(now > INT64_C(1704067200000));
    int64_t m1 = pf_time_mono_ms(), m2 = pf_time_mono_ms();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse_valid),
        cmocka_unit_test(test_time_parse_offsets_and_fractions),
        cmocka_unit_test(test_time_parse_invalid),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_duration_iso),
        cmocka_unit_test(test_duration_short),
        cmocka_unit_test(test_duration_invalid),
        cmocka_unit_test(test_interval),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
