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

#include <json-c/json.h>

#include "engine/extract.h"
#include "engine/stream_extract.h"
#include "flow/template.h"
#include "unit_records.h"
#include "unit_template.h"

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
    "    {\"subject\": \"one\", \"id\": \"g-1\", \"zeta\": 1, \"alpha\": [1, 2]},\n"
    "    {\"id\": \"g-2\", \"subject\": \"two \\u00e9\\/x\", \"nested\": {\"b\": 1, \"a\": 2}}\n"
    "  ],\n"
    "  \"messagesBlocked\": [\n"
    "    {\"id\": \"g-3\", \"threatsInfoMap\": []}\n"
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
     * members in their original order; id keys every stream. */
    assert_record(&out.recs[0], "messages_delivered", "g-1",
                  "{\"subject\":\"one\",\"id\":\"g-1\",\"zeta\":1,\"alpha\":[1,2]}");
    assert_record(&out.recs[1], "messages_delivered", "g-2",
                  "{\"id\":\"g-2\",\"subject\":\"two \xc3\xa9/x\",\"nested\":{\"b\":1,\"a\":2}}");
    assert_record(&out.recs[2], "messages_blocked", "g-3",
                  "{\"id\":\"g-3\",\"threatsInfoMap\":[]}");
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
        o += (size_t)snprintf(body + o, cap - o, "%s{\"id\":\"g%zu\"}", i ? "," : "", i);
    snprintf(body + o, cap - o, "]}");
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract(body, &out, &e), PF_OK);
    assert_int_equal(out.count, n);
    char key[32];
    snprintf(key, sizeof key, "g%zu", n - 1);
    assert_record(&out.recs[n - 1], "messages_delivered", key, "{\"id\":\"g2999\"}");
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
    for (size_t i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
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
        extract("{\"messagesBlocked\": [{\"subject\": \"no id\"}, {\"id\": \"g\"}]}", &out, &e),
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

static pf_status push_record(void *ud, const pf_sink_record *rec, pf_error *err)
{
    return pf_records_push_copy(ud, rec, err);
}

/* The record limit (source.http.max_record) holds on the buffered path as on
 * the streaming one: the same code and the same message up to where the
 * record is (an offset when streaming, its path here). */
static void test_record_limit(void **state)
{
    (void)state;
    pf_template *t = unit_template1("$.messagesDelivered[*]", "$.GUID");
    static const char body[] = "{\"messagesDelivered\": [{\"GUID\": \"g-1\"},"
                               " {\"GUID\": \"g-2\", \"subject\": \"a record over the limit\"}]}";
    static const char prefix[] = "record of stream s0 is larger than the record limit (32 bytes, "
                                 "source.http.max_record), the record ";
    pf_records out = {0};
    pf_error e;
    pf_sink_record before = {t->streams[0].name, NULL, 0, "{}", 2};
    assert_int_equal(pf_records_push_copy(&out, &before, &e), PF_OK);
    pf_extract_limits lim = {.max_record = 32};
    pf_error_clear(&e);
    assert_int_equal(pf_extract_records_ex(t, body, strlen(body), &lim, &out, &e), PF_ETOOBIG);
    assert_int_equal(out.count, 1); /* what the caller had, nothing more */
    assert_string_equal(e.msg, "record of stream s0 is larger than the record limit (32 bytes, "
                               "source.http.max_record), the record at $['messagesDelivered'][1]");

    /* The streaming path refuses the same body the same way. */
    pf_records got = {0};
    pf_error se;
    pf_sx *sx = pf_sx_new(t, 32, 0, push_record, &got, &se);
    assert_non_null(sx);
    assert_int_equal(pf_sx_is_streaming(sx), 1);
    pf_error_clear(&se);
    pf_status st = pf_sx_feed(sx, body, strlen(body), &se);
    if (st == PF_OK) st = pf_sx_finish(sx, &se);
    assert_int_equal(st, PF_ETOOBIG);
    if (strncmp(se.msg, prefix, strlen(prefix)) != 0) fail_msg("streaming: %s", se.msg);
    assert_memory_equal(e.msg, prefix, strlen(prefix));
    pf_sx_free(sx);
    pf_records_free(&got);

    /* A record of exactly the limit is fine: {"GUID":"g-1"} is 14 bytes. */
    lim.max_record = 14;
    static const char small[] = "{\"messagesDelivered\": [{\"GUID\": \"g-1\"}]}";
    assert_int_equal(pf_extract_records_ex(t, small, strlen(small), &lim, &out, &e), PF_OK);
    assert_int_equal(out.count, 2);
    lim.max_record = 13;
    assert_int_equal(pf_extract_records_ex(t, small, strlen(small), &lim, &out, &e), PF_ETOOBIG);
    assert_int_equal(out.count, 2);
    pf_records_free(&out);
    pf_template_free(t);

    /* A template that cannot stream buffers in pf_sx, and the limit given
     * to pf_sx_new holds there too. */
    t = unit_template1("$.messagesDelivered[?@.subject]", "$.GUID");
    sx = pf_sx_new(t, 32, 0, push_record, &got, &se);
    assert_non_null(sx);
    assert_int_equal(pf_sx_is_streaming(sx), 0);
    assert_int_equal(pf_sx_feed(sx, body, strlen(body), &se), PF_OK);
    assert_int_equal(pf_sx_finish(sx, &se), PF_ETOOBIG);
    assert_string_equal(se.msg, "record of stream s0 is larger than the record limit (32 bytes, "
                                "source.http.max_record), the record at "
                                "$['messagesDelivered'][1]");
    assert_int_equal(got.count, 0);
    pf_sx_free(sx);
    pf_template_free(t);
}

/* Records are printed as json-c prints the same value (compact, '/' not
 * escaped), except for the integers json-c cannot print back. */
static void test_records_print_as_json_c_does(void **state)
{
    (void)state;
    pf_template *t = unit_template1("$", NULL);
    static const char *const bodies[] = {
        "{\"a\":[1,-2,3.25,-4e-3,1E+2,0,true,false,null,\"s\"],\"b\":{},\"c\":[],\"d\":[[]]}",
        "[\"\\u0001\\u0002\\u001f \\b\\f\\n\\r\\t \\\" \\\\ \\/ / \\u007f \\u00e9 \\ud83d\\ude00\"]",
        "{\"\\u0000x\":1,\"k\\\"ey\\n\":\"v\\u0000w\",\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}",
        "{\"dup\":1,\"other\":[{\"dup\":2,\"dup\":[3]}],\"dup\":{\"x\":null}}",
        "9223372036854775807",
        "[9223372036854775808,18446744073709551615,-9223372036854775808]",
        "\"just a string\"",
        "[[[[[[[[[[{\"deep\":[[[[[[1]]]]]]}]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        const char *b = bodies[i];
        json_tokener *tok = json_tokener_new();
        assert_non_null(tok);
        json_object *doc = json_tokener_parse_ex(tok, b, (int)strlen(b));
        if (json_tokener_get_error(tok) == json_tokener_continue)
            doc = json_tokener_parse_ex(tok, " ", 1);
        assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
        json_tokener_free(tok);
        const char *want =
            json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
        pf_records out = {0};
        pf_error e;
        if (pf_extract_records(t, b, strlen(b), &out, &e) != PF_OK)
            fail_msg("body %zu: %s", i, e.msg);
        assert_int_equal(out.count, 1);
        assert_record(&out.recs[0], "s0", NULL, want);
        pf_records_free(&out);
        json_object_put(doc);
    }
    pf_template_free(t);
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
        cmocka_unit_test(test_record_limit),
        cmocka_unit_test(test_records_print_as_json_c_does),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
