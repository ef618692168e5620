/* test_extract.c: turning a TAP SIEM response body into per-stream records
 * with the bundled tap-siem-all template (the buffered path: json-c and the
 * JSONPath evaluator, behind the streaming path's checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "flow/template.h"
#include "unit_records.h"

static pf_template *tmpl;

static int setup(void **state)
{
    (void)state;
    pf_diags d = {0};
    pf_status st =
        pf_template_load_file(PPFLOW_SOURCE_DIR "/templates/tap-siem-all.yaml", &tmpl, &d);
    pf_diags_free(&d);
    return st == PF_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pf_template_free(tmpl);
    return 0;
}

static pf_status extract(const char *body, pf_records *out, pf_error *e)
{
    pf_error_clear(e);
    return pf_extract_records(tmpl, body, strlen(body), out, e);
}

static const char siem_body[] =
    "{\n"
    "  \"queryEndTime\": \"2026-11-22T01:00:00Z\",\n"
    "  \"clicksPermitted\": [\n"
    "    {\"id\": \"c-1\", \"url\": \"http://x.example/a\", \"GUID\": \"g-click\"}\n"
    "  ],\n"
    "  \"messagesDelivered\": [\n"
    "    {\"subject\": \"one\", \"GUID\": \"g-1\", \"zeta\": 1, \"alpha\": [1, 2]},\n"
    "    {\"GUID\": \"g-2\", \"subject\": \"two \\u00e9\\/x\", \"nested\": {\"b\": 1, \"a\": 2}}\n"
    "  ],\n"
    "  \"messagesBlocked\": [\n"
    "    {\"GUID\": \"g-3\", \"threatsInfoMap\": []}\n"
    "  ],\n"
    "  \"clicksBlocked\": [\n"
    "    {\"id\": \"c-2\"},\n"
    "    {\"id\": \"c-3\", \"classification\": \"phish\"}\n"
    "  ]\n"
    "}\n";

static void test_records_per_stream_with_keys(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract(siem_body, &out, &e), PF_OK);
    assert_int_equal(out.count, 6);
    assert_int_equal(out.missing_keys, 0);
    /* Streams in template order, records in array order; JSON compact with
     * members in their original order; GUID keys messages, id keys clicks. */
    assert_record(&out.recs[0], "messages_delivered", "g-1",
                  "{\"subject\":\"one\",\"GUID\":\"g-1\",\"zeta\":1,\"alpha\":[1,2]}");
    assert_record(&out.recs[1], "messages_delivered", "g-2",
                  "{\"GUID\":\"g-2\",\"subject\":\"two \xc3\xa9/x\",\"nested\":{\"b\":1,\"a\":2}}");
    assert_record(&out.recs[2], "messages_blocked", "g-3",
                  "{\"GUID\":\"g-3\",\"threatsInfoMap\":[]}");
    assert_record(&out.recs[3], "clicks_permitted", "c-1",
                  "{\"id\":\"c-1\",\"url\":\"http://x.example/a\",\"GUID\":\"g-click\"}");
    assert_record(&out.recs[4], "clicks_blocked", "c-2", "{\"id\":\"c-2\"}");
    assert_record(&out.recs[5], "clicks_blocked", "c-3",
                  "{\"id\":\"c-3\",\"classification\":\"phish\"}");
    for (size_t i = 0; i < out.count; i++)
        assert_null(memchr(out.recs[i].json, '\n', out.recs[i].json_len));
    pf_records_free(&out);
    assert_int_equal(out.count, 0);
    assert_null(out.recs);
    pf_records_free(NULL);
}

static void test_records_are_appended(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"a\"}]}", &out, &e), PF_OK);
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"b\"}]}", &out, &e), PF_OK);
    assert_int_equal(out.count, 2);
    assert_record(&out.recs[0], "clicks_blocked", "a", "{\"id\":\"a\"}");
    assert_record(&out.recs[1], "clicks_blocked", "b", "{\"id\":\"b\"}");
    pf_records_free(&out);
}

static void test_many_records(void **state)
{
    (void)state;
    /* Enough to grow the record array several times. */
    size_t n = 3000, cap = n * 40 + 64;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t o = (size_t)snprintf(body, cap, "{\"messagesDelivered\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(body + o, cap - o, "%s{\"GUID\":\"g%zu\"}", i ? "," : "", i);
    snprintf(body + o, cap - o, "]}");
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract(body, &out, &e), PF_OK);
    assert_int_equal(out.count, n);
    char key[32];
    snprintf(key, sizeof key, "g%zu", n - 1);
    assert_record(&out.recs[n - 1], "messages_delivered", key, "{\"GUID\":\"g2999\"}");
    pf_records_free(&out);
    free(body);
}

static void test_empty_body_has_no_records(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(pf_extract_records(tmpl, "", 0, &out, &e), PF_OK);
    assert_int_equal(out.count, 0);
    assert_int_equal(extract(" \r\n\t\n", &out, &e), PF_OK);
    assert_int_equal(out.count, 0);
    pf_records_free(&out);
}

static void test_missing_arrays_have_no_records(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{}", &out, &e), PF_OK);
    assert_int_equal(out.count, 0);
    assert_int_equal(extract("{\"queryEndTime\": \"2026-11-22T01:00:00Z\"}", &out, &e), PF_OK);
    assert_int_equal(out.count, 0);
    assert_int_equal(extract("{\"messagesDelivered\": null, \"clicksBlocked\": [], "
                             "\"messagesBlocked\": {}}",
                             &out, &e),
                     PF_OK);
    assert_int_equal(out.count, 0);
    assert_int_equal(extract("[]", &out, &e), PF_OK);
    assert_int_equal(out.count, 0);
    pf_records_free(&out);
}

static void test_invalid_json_is_edata_with_offset(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{\"a\": tru}", &out, &e), PF_EDATA);
    assert_int_equal(e.code, PF_EDATA);
    assert_int_equal(e.offset, 9);
    assert_non_null(strstr(e.msg, "not valid JSON"));

    assert_int_equal(extract("{\"a\":1,}", &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 7);

    assert_int_equal(extract("<html>502 Bad Gateway</html>", &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 0);

    /* Single-quoted strings, comments, hex and leading zeros are not JSON. */
    assert_int_equal(extract("{\"a\": 'x'}", &out, &e), PF_EDATA);
    assert_int_equal(extract("{\"a\": 0x10}", &out, &e), PF_EDATA);
    assert_int_equal(extract("{\"a\": 01}", &out, &e), PF_EDATA);
    assert_int_equal(extract("{\"a\": 1 /* c */}", &out, &e), PF_EDATA);
    assert_int_equal(out.count, 0);
}

static void test_truncated_json_is_edata(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    static const char *const bodies[] = {"{\"messagesDelivered\": [",
                                         "{\"messagesDelivered\": [{\"GUID\": \"g", "[1, 2", "{",
                                         "\"unterminated"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        if (extract(bodies[i], &out, &e) != PF_EDATA) fail_msg("'%s' accepted", bodies[i]);
        assert_int_equal(e.code, PF_EDATA);
        assert_non_null(strstr(e.msg, "truncated"));
    }
    assert_int_equal(out.count, 0);
}

static void test_trailing_garbage_is_edata(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{} x", &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 3);
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"a\"}]}{}", &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 32);
    assert_int_equal(extract("{}\n\n]", &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 4);
    assert_int_equal(out.count, 0);
    /* Trailing whitespace is fine. */
    assert_int_equal(extract("{} \r\n\t", &out, &e), PF_OK);
}

static char *nested_arrays(size_t depth)
{
    char *s = malloc(2 * depth + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    return s;
}

static void test_nesting_limit_is_edepth(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    char *s = nested_arrays(PF_EXTRACT_MAX_NESTING + 1);
    assert_int_equal(extract(s, &out, &e), PF_EDEPTH);
    assert_int_equal(e.code, PF_EDEPTH);
    assert_true(e.offset >= 0 && e.offset <= PF_EXTRACT_MAX_NESTING + 1);
    free(s);

    /* A hostile depth fails the same way, without exhausting the stack. */
    s = nested_arrays(1000000);
    assert_int_equal(extract(s, &out, &e), PF_EDEPTH);
    free(s);

    /* Objects too, inside a record. */
    size_t depth = PF_EXTRACT_MAX_NESTING + 10, cap = depth * 6 + 64;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t o = (size_t)snprintf(body, cap, "{\"messagesDelivered\":[");
    for (size_t i = 0; i < depth; i++)
        o += (size_t)snprintf(body + o, cap - o, "{\"a\":");
    o += (size_t)snprintf(body + o, cap - o, "1");
    for (size_t i = 0; i < depth; i++)
        body[o++] = '}';
    snprintf(body + o, cap - o, "]}");
    assert_int_equal(extract(body, &out, &e), PF_EDEPTH);
    free(body);

    /* Well below the limit is fine. */
    s = nested_arrays(100);
    assert_int_equal(extract(s, &out, &e), PF_OK);
    free(s);
    assert_int_equal(out.count, 0);
}

static void test_key_rendering(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{\"clicksBlocked\": ["
                             "{\"id\": 12345},"
                             "{\"id\": -7},"
                             "{\"id\": 1.5},"
                             "{\"id\": true},"
                             "{\"id\": null},"
                             "{\"other\": 1},"
                             "{\"id\": \"\"}"
                             "]}",
                             &out, &e),
                     PF_OK);
    assert_int_equal(out.count, 7);
    assert_record(&out.recs[0], "clicks_blocked", "12345", "{\"id\":12345}");
    assert_record(&out.recs[1], "clicks_blocked", "-7", "{\"id\":-7}");
    assert_record(&out.recs[2], "clicks_blocked", "1.5", "{\"id\":1.5}");
    /* Not a string or number, or absent: no key (the record is still delivered). */
    assert_record(&out.recs[3], "clicks_blocked", NULL, "{\"id\":true}");
    assert_record(&out.recs[4], "clicks_blocked", NULL, "{\"id\":null}");
    assert_record(&out.recs[5], "clicks_blocked", NULL, "{\"other\":1}");
    assert_record(&out.recs[6], "clicks_blocked", "", "{\"id\":\"\"}");
    pf_records_free(&out);

    /* A record whose key path selects nothing is counted. */
    assert_int_equal(
        extract("{\"messagesBlocked\": [{\"subject\": \"no guid\"}, {\"GUID\": \"g\"}]}", &out, &e),
        PF_OK);
    assert_int_equal(out.count, 2);
    assert_int_equal(out.missing_keys, 1);
    assert_null(out.recs[0].key);
    pf_records_free(&out);
}

static void test_failure_keeps_previous_records(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"a\"}, {\"id\": \"b\"}]}", &out, &e),
                     PF_OK);
    assert_int_equal(out.count, 2);
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"c\"}", &out, &e), PF_EDATA);
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"c\"}]} junk", &out, &e), PF_EDATA);
    char *deep = nested_arrays(PF_EXTRACT_MAX_NESTING + 5);
    assert_int_equal(extract(deep, &out, &e), PF_EDEPTH);
    free(deep);
    assert_int_equal(out.count, 2);
    assert_record(&out.recs[1], "clicks_blocked", "b", "{\"id\":\"b\"}");
    pf_records_free(&out);
}

static void test_top_level_scalar_is_json(void **state)
{
    (void)state;
    /* A bare number or literal is a complete JSON text (json-c alone would
     * wait for a delimiter after it). */
    static const char *const bodies[] = {"12", "-1.5", "true", "null", "false", "\"x\"", " 0 "};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        pf_records out = {0};
        pf_error e;
        if (extract(bodies[i], &out, &e) != PF_OK)
            fail_msg("valid JSON body '%s' refused: %s", bodies[i], e.msg);
        assert_int_equal(out.count, 0);
    }
    /* Still invalid: a truncated number, a literal cut short. */
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("-", &out, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "truncated"));
    assert_int_equal(extract("1.", &out, &e), PF_EDATA);
    assert_int_equal(extract("tru", &out, &e), PF_EDATA);
    assert_int_equal(extract("12 13", &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 3);
}

static void test_non_json_numbers_are_refused(void **state)
{
    (void)state;
    /* json-c accepts NaN, Infinity and -Infinity (and "1."); a record holding
     * them would not be JSON, so they are refused at their offset. */
    static const struct {
        const char *body;
        long offset;
    } cases[] = {
        {"{\"messagesDelivered\": [{\"GUID\": \"g\", \"score\": NaN}]}", 46},
        {"{\"messagesDelivered\": [{\"GUID\": \"g\", \"score\": Infinity}]}", 46},
        {"{\"messagesDelivered\": [{\"GUID\": \"g\", \"score\": -Infinity}]}", 47},
        {"{\"messagesDelivered\": [{\"GUID\": \"g\", \"score\": 1.}]}", 48},
        {"{\"messagesDelivered\": [{\"GUID\": \"g\", \"score\": .5}]}", 46},
        {"{\"messagesDelivered\": [{\"GUID\": \"g\", \"score\": +1}]}", 46},
        {"NaN", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pf_records out = {0};
        pf_error e;
        pf_status st = extract(cases[i].body, &out, &e);
        if (st != PF_EDATA)
            fail_msg("'%s' gave %d and %zu records (first: %.*s)", cases[i].body, st, out.count,
                     out.count ? (int)out.recs[0].json_len : 0, out.count ? out.recs[0].json : "");
        if (e.offset != cases[i].offset)
            fail_msg("'%s': offset %ld, want %ld (%s)", cases[i].body, e.offset, cases[i].offset,
                     e.msg);
        assert_non_null(strstr(e.msg, "not valid JSON"));
        pf_records_free(&out);
    }
}

static void test_numbers_keep_their_text(void **state)
{
    (void)state;
    /* json-c stores integers in 64 bits: without care -0 would become 0 and
     * a longer integer would be clamped to 18446744073709551615. */
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("{\"clicksBlocked\": ["
                             "{\"id\": 123456789012345678901234567890, \"n\": [-0, 1E5, 2.50]},"
                             "{\"id\": -99999999999999999999, \"n\": 18446744073709551615},"
                             "{\"id\": -0}"
                             "]}",
                             &out, &e),
                     PF_OK);
    assert_int_equal(out.count, 3);
    assert_record(&out.recs[0], "clicks_blocked", "123456789012345678901234567890",
                  "{\"id\":123456789012345678901234567890,\"n\":[-0,1E5,2.50]}");
    assert_record(&out.recs[1], "clicks_blocked", "-99999999999999999999",
                  "{\"id\":-99999999999999999999,\"n\":18446744073709551615}");
    assert_record(&out.recs[2], "clicks_blocked", "-0", "{\"id\":-0}");
    pf_records_free(&out);
}

static void test_strings_and_utf8(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    /* A key holding an escaped NUL keeps it (key_len counts it). */
    assert_int_equal(extract("{\"clicksBlocked\": [{\"id\": \"a\\u0000b\\u00e9\"}]}", &out, &e),
                     PF_OK);
    assert_int_equal(out.count, 1);
    assert_int_equal(out.recs[0].key_len, 5);
    assert_memory_equal(out.recs[0].key, "a\0b\xc3\xa9", 5);
    pf_records_free(&out);

    /* Invalid UTF-8, raw control characters, bad escapes and unpaired
     * surrogates are refused at the offending byte. */
    static const struct {
        const char *body;
        long offset;
    } bad[] = {
        {"[\"ab\xff\"]", 4},           {"[\"\xc0\x80\"]", 2}, {"[\"\xed\xa0\x80\"]", 3},
        {"[\"\xf4\x90\x80\x80\"]", 3}, {"[\"a\tb\"]", 3},     {"[\"\\x\"]", 3},
        {"[\"\\u12g4\"]", 6},          {"[\"\\ud800\"]", 8},  {"[\"\\udc00\"]", 2},
        {"[\"\\ud800\\u0041\"]", 8},   {"\xef\xbb\xbf{}", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (extract(bad[i].body, &out, &e) != PF_EDATA) fail_msg("case %zu accepted", i);
        if (e.offset != bad[i].offset)
            fail_msg("case %zu: offset %ld, want %ld (%s)", i, e.offset, bad[i].offset, e.msg);
    }
    /* A surrogate pair is fine. */
    assert_int_equal(extract("[\"\\ud83d\\ude00\"]", &out, &e), PF_OK);
    assert_int_equal(out.count, 0);
}

static void test_repeated_names_on_a_path(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    /* The object holding the record arrays may not repeat a name: the
     * streaming path cannot take back the first array's records. */
    assert_int_equal(
        extract("{\"clicksBlocked\": [{\"id\": \"a\"}], \"clicksBlocked\": []}", &out, &e),
        PF_EDATA);
    assert_int_equal(e.offset, 33);
    assert_non_null(strstr(e.msg, "appears twice"));
    assert_int_equal(extract("{\"x\": 1, \"x\": 2}", &out, &e), PF_EDATA);
    /* Spelled differently, still the same name. */
    assert_int_equal(extract("{\"x\": 1, \"\\u0078\": 2}", &out, &e), PF_EDATA);
    assert_int_equal(out.count, 0);
    /* Inside a record a repeated name is json-c's business: the last wins,
     * for the key too. */
    assert_int_equal(
        extract(
            "{\"clicksBlocked\": [{\"id\": \"a\", \"id\": \"b\", \"u\": {\"v\": 1, \"v\": 2}}]}",
            &out, &e),
        PF_OK);
    assert_int_equal(out.count, 1);
    assert_record(&out.recs[0], "clicks_blocked", "b", "{\"id\":\"b\",\"u\":{\"v\":2}}");
    pf_records_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_per_stream_with_keys),
        cmocka_unit_test(test_records_are_appended),
        cmocka_unit_test(test_many_records),
        cmocka_unit_test(test_empty_body_has_no_records),
        cmocka_unit_test(test_missing_arrays_have_no_records),
        cmocka_unit_test(test_invalid_json_is_edata_with_offset),
        cmocka_unit_test(test_truncated_json_is_edata),
        cmocka_unit_test(test_trailing_garbage_is_edata),
        cmocka_unit_test(test_nesting_limit_is_edepth),
        cmocka_unit_test(test_key_rendering),
        cmocka_unit_test(test_failure_keeps_previous_records),
        cmocka_unit_test(test_top_level_scalar_is_json),
        cmocka_unit_test(test_non_json_numbers_are_refused),
        cmocka_unit_test(test_numbers_keep_their_text),
        cmocka_unit_test(test_strings_and_utf8),
        cmocka_unit_test(test_repeated_names_on_a_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
