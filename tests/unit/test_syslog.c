/* test_syslog.c: SIEM syslog lines into records (proofpoint/syslog.h): the
 * exact record JSON for RFC 5424, BSD and header-less lines, streams picked
 * by the event kind, keys, line endings, invalid UTF-8, limits and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proofpoint/syslog.h"
#include "unit_records.h"

static pf_template *all, *delivered;

static int setup(void **state)
{
    (void)state;
    pf_diags d = {0};
    pf_status st =
        pf_template_load_file(PPFLOW_SOURCE_DIR "/templates/tap-siem-all.yaml", &all, &d);
    if (st == PF_OK)
        st = pf_template_load_file(PPFLOW_SOURCE_DIR "/templates/tap-siem-messages-delivered.yaml",
                                   &delivered, &d);
    pf_diags_free(&d);
    return st == PF_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pf_template_free(all);
    pf_template_free(delivered);
    return 0;
}

static pf_status extract_n(const pf_template *t, const char *body, size_t len, pf_records *out,
                           pf_error *e)
{
    pf_error_clear(e);
    return pf_syslog_extract(t, body, len, out, e);
}

static pf_status extract(const char *body, pf_records *out, pf_error *e)
{
    return extract_n(all, body, strlen(body), out, e);
}

/* The mock's layout: RFC 5424 with the kind as MSGID and quoted pairs. */
static void test_rfc5424_click_line(void **state)
{
    (void)state;
    const char *line = "<134>1 2024-05-02T10:00:02.010Z tap-api-v2.proofpoint.com tap - CLKPER - "
                       "id=\"c-1\" GUID=\"g-1\" url=\"https://x.example/a?b=1&c=d\" "
                       "spamScore=\"12\"\n";
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract(line, &out, &e), PF_OK);
    assert_int_equal(out.count, 1);
    assert_int_equal(out.missing_keys, 0);
    assert_record(
        &out.recs[0], "clicks_permitted", "c-1",
        "{\"raw\":\"<134>1 2024-05-02T10:00:02.010Z tap-api-v2.proofpoint.com tap - "
        "CLKPER - id=\\\"c-1\\\" GUID=\\\"g-1\\\" url=\\\"https://x.example/a?b=1&c=d\\\" "
        "spamScore=\\\"12\\\"\","
        "\"syslog\":{\"pri\":134,\"version\":1,\"timestamp\":\"2024-05-02T10:00:02.010Z\","
        "\"host\":\"tap-api-v2.proofpoint.com\",\"app\":\"tap\",\"msgid\":\"CLKPER\","
        "\"event\":\"CLKPER\"},"
        "\"id\":\"c-1\",\"GUID\":\"g-1\",\"url\":\"https://x.example/a?b=1&c=d\","
        "\"spamScore\":\"12\"}");
    pf_records_free(&out);
}

/* Escapes inside quotes are undone; nested JSON stays a string. */
static void test_quoted_escapes_and_embedded_json(void **state)
{
    (void)state;
    const char *line =
        "<134>1 2024-05-02T10:00:02Z h tap - MSGDLV - GUID=\"g-7\" "
        "subject=\"RE: \\\"Urgent\\\" C:\\\\Pay\\tTab\\nLine\\rCR\" "
        "threatsInfoMap=\"[{\\\"threatID\\\":\\\"t1\\\"}]\" odd=\"a\\qb\" empty=\"\" bare=x=y\r\n";
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract(line, &out, &e), PF_OK);
    assert_int_equal(out.count, 1);
    assert_record(
        &out.recs[0], "messages_delivered", NULL,
        "{\"raw\":\"<134>1 2024-05-02T10:00:02Z h tap - MSGDLV - GUID=\\\"g-7\\\" "
        "subject=\\\"RE: \\\\\\\"Urgent\\\\\\\" C:\\\\\\\\Pay\\\\tTab\\\\nLine\\\\rCR\\\" "
        "threatsInfoMap=\\\"[{\\\\\\\"threatID\\\\\\\":\\\\\\\"t1\\\\\\\"}]\\\" "
        "odd=\\\"a\\\\qb\\\" empty=\\\"\\\" bare=x=y\","
        "\"syslog\":{\"pri\":134,\"version\":1,\"timestamp\":\"2024-05-02T10:00:02Z\","
        "\"host\":\"h\",\"app\":\"tap\",\"msgid\":\"MSGDLV\",\"event\":\"MSGDLV\"},"
        "\"GUID\":\"g-7\",\"subject\":\"RE: \\\"Urgent\\\" C:\\\\Pay\\tTab\\nLine\\rCR\","
        "\"threatsInfoMap\":\"[{\\\"threatID\\\":\\\"t1\\\"}]\",\"odd\":\"a\\\\qb\","
        "\"empty\":\"\",\"bare\":\"x=y\"}");
    pf_records_free(&out);
}

/* BSD header with a TAG[PID]: and the kind as a bare word. */
static void test_bsd_header(void **state)
{
    (void)state;
    const char *line = "<132>May  2 10:00:02 mx1 tap[42]: MSGBLK GUID=g-9 QID=q1 note=\"a b\"";
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract(line, &out, &e), PF_OK);
    assert_int_equal(out.count, 1);
    assert_record(&out.recs[0], "messages_blocked", NULL,
                  "{\"raw\":\"<132>May  2 10:00:02 mx1 tap[42]: MSGBLK GUID=g-9 QID=q1 "
                  "note=\\\"a b\\\"\","
                  "\"syslog\":{\"pri\":132,\"timestamp\":\"May  2 10:00:02\",\"host\":\"mx1\","
                  "\"app\":\"tap\",\"event\":\"MSGBLK\"},"
                  "\"GUID\":\"g-9\",\"QID\":\"q1\",\"note\":\"a b\"}");
    pf_records_free(&out);
}

/* No header at all: fields only, the first stream, no "syslog" member. */
static void test_fields_only_line_goes_to_first_stream(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("GUID=g-1 id=i-1", &out, &e), PF_OK);
    assert_int_equal(out.count, 1);
    assert_record(&out.recs[0], "messages_delivered", "i-1",
                  "{\"raw\":\"GUID=g-1 id=i-1\",\"GUID\":\"g-1\",\"id\":\"i-1\"}");
    /* A line with no field at all is still a record. */
    assert_int_equal(extract("just some text", &out, &e), PF_OK);
    assert_int_equal(out.count, 2);
    assert_int_equal(out.missing_keys, 1);
    assert_record(&out.recs[1], "messages_delivered", NULL, "{\"raw\":\"just some text\"}");
    pf_records_free(&out);
}

static void test_unknown_kind_and_nil_header_fields(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("<13>1 - - - - XYZ - GUID=g", &out, &e), PF_OK);
    assert_record(&out.recs[0], "messages_delivered", NULL,
                  "{\"raw\":\"<13>1 - - - - XYZ - GUID=g\",\"syslog\":{\"pri\":13,\"version\":1,"
                  "\"msgid\":\"XYZ\"},\"GUID\":\"g\"}");
    /* Not a PRI (over 191, or not closed): no header is taken from it. */
    assert_int_equal(extract("<192>1 x GUID=a\n<13 GUID=b", &out, &e), PF_OK);
    assert_int_equal(out.count, 3);
    assert_record(&out.recs[1], "messages_delivered", NULL,
                  "{\"raw\":\"<192>1 x GUID=a\",\"GUID\":\"a\"}");
    assert_record(&out.recs[2], "messages_delivered", NULL,
                  "{\"raw\":\"<13 GUID=b\",\"GUID\":\"b\"}");
    pf_records_free(&out);
}

static void test_structured_data(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("<134>1 2024-05-02T10:00:00Z h a p CLKBLK [x@1 k=\"v]\\\"\"][y@2] "
                             "\xEF\xBB\xBFid=c-9",
                             &out, &e),
                     PF_OK);
    assert_record(&out.recs[0], "clicks_blocked", "c-9",
                  "{\"raw\":\"<134>1 2024-05-02T10:00:00Z h a p CLKBLK [x@1 k=\\\"v]\\\\\\\"\\\"]"
                  "[y@2] \xEF\xBB\xBFid=c-9\","
                  "\"syslog\":{\"pri\":134,\"version\":1,\"timestamp\":\"2024-05-02T10:00:00Z\","
                  "\"host\":\"h\",\"app\":\"a\",\"procid\":\"p\",\"msgid\":\"CLKBLK\","
                  "\"event\":\"CLKBLK\",\"structured_data\":\"[x@1 k=\\\"v]\\\\\\\"\\\"][y@2]\"},"
                  "\"id\":\"c-9\"}");
    /* Unterminated structured data: the line keeps its header, no fields. */
    assert_int_equal(extract("<134>1 - h a p CLKBLK [x@1 id=c-1", &out, &e), PF_OK);
    assert_record(&out.recs[1], "clicks_blocked", NULL,
                  "{\"raw\":\"<134>1 - h a p CLKBLK [x@1 id=c-1\",\"syslog\":{\"pri\":134,"
                  "\"version\":1,\"host\":\"h\",\"app\":\"a\",\"procid\":\"p\","
                  "\"msgid\":\"CLKBLK\",\"event\":\"CLKBLK\","
                  "\"error\":\"unterminated structured data\"}}");
    assert_int_equal(out.missing_keys, 1);
    pf_records_free(&out);
}

/* LF and CRLF, blank and whitespace-only lines, a last line without LF. */
static void test_line_endings_and_blank_lines(void **state)
{
    (void)state;
    static const char body[] = "\n\r\n  \t\nCLKPER id=a\r\n\nMSGDLV GUID=b\n \r\nCLKBLK id=c";
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract_n(all, body, sizeof body - 1, &out, &e), PF_OK);
    assert_int_equal(out.count, 3);
    assert_record(&out.recs[0], "clicks_permitted", "a",
                  "{\"raw\":\"CLKPER id=a\",\"syslog\":{\"event\":\"CLKPER\"},\"id\":\"a\"}");
    assert_record(&out.recs[1], "messages_delivered", NULL,
                  "{\"raw\":\"MSGDLV GUID=b\",\"syslog\":{\"event\":\"MSGDLV\"},\"GUID\":\"b\"}");
    assert_record(&out.recs[2], "clicks_blocked", "c",
                  "{\"raw\":\"CLKBLK id=c\",\"syslog\":{\"event\":\"CLKBLK\"},\"id\":\"c\"}");
    /* An empty body (HTTP 204) and a body of blank lines have no records. */
    assert_int_equal(extract_n(all, NULL, 0, &out, &e), PF_OK);
    assert_int_equal(extract("\n\n\r\n", &out, &e), PF_OK);
    assert_int_equal(out.count, 3);
    pf_records_free(&out);
}

/* Raw keeps the line; a CR inside the line (not before LF) stays in it, and
 * control characters are escaped in the JSON text. */
static void test_control_characters(void **state)
{
    (void)state;
    static const char body[] = "id=a\x01\tx\rq=\"\x1f\"\r\r\n";
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract_n(all, body, sizeof body - 1, &out, &e), PF_OK);
    assert_int_equal(out.count, 1);
    assert_record(&out.recs[0], "messages_delivered", "a\x01",
                  "{\"raw\":\"id=a\\u0001\\tx\\rq=\\\"\\u001f\\\"\\r\",\"id\":\"a\\u0001\"}");
    pf_records_free(&out);
}

/* Ill-formed UTF-8: U+FFFD in "raw" and in fields, the exact bytes in
 * "raw_base64"; well-formed non-ASCII is kept as is without raw_base64. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char body[] = "CLKPER id=\xff\xc3\xa9 u=\"\xed\xa0\x80\"\n"
                               "CLKPER id=caf\xc3\xa9 s=\xf0\x9f\x93\xa6\n";
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract_n(all, body, sizeof body - 1, &out, &e), PF_OK);
    assert_int_equal(out.count, 2);
    assert_record(&out.recs[0], "clicks_permitted", "\xef\xbf\xbd\xc3\xa9",
                  "{\"raw\":\"CLKPER id=\xef\xbf\xbd\xc3\xa9 u=\\\"\xef\xbf\xbd\xef\xbf\xbd"
                  "\xef\xbf\xbd\\\"\",\"raw_base64\":\"Q0xLUEVSIGlkPf/DqSB1PSLtoIAi\","
                  "\"syslog\":{\"event\":\"CLKPER\"},\"id\":\"\xef\xbf\xbd\xc3\xa9\","
                  "\"u\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
    assert_record(&out.recs[1], "clicks_permitted", "caf\xc3\xa9",
                  "{\"raw\":\"CLKPER id=caf\xc3\xa9 s=\xf0\x9f\x93\xa6\","
                  "\"syslog\":{\"event\":\"CLKPER\"},\"id\":\"caf\xc3\xa9\","
                  "\"s\":\"\xf0\x9f\x93\xa6\"}");
    pf_records_free(&out);
}

/* First occurrence wins; reserved names never come from a field. */
static void test_duplicate_and_reserved_names(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("raw=x syslog=y raw_base64=z GUID=1 GUID=2", &out, &e), PF_OK);
    assert_record(&out.recs[0], "messages_delivered", NULL,
                  "{\"raw\":\"raw=x syslog=y raw_base64=z GUID=1 GUID=2\",\"GUID\":\"1\"}");
    pf_records_free(&out);
}

/* An unterminated quote ends the parsing of its line, visibly. */
static void test_unterminated_quote(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("MSGDLV GUID=g-1 subject=\"never closed \\\" GUID=x\n"
                             "MSGDLV GUID=g-2 tail=\"x\\",
                             &out, &e),
                     PF_OK);
    assert_int_equal(out.count, 2);
    assert_record(&out.recs[0], "messages_delivered", NULL,
                  "{\"raw\":\"MSGDLV GUID=g-1 subject=\\\"never closed \\\\\\\" GUID=x\","
                  "\"syslog\":{\"event\":\"MSGDLV\",\"error\":\"unterminated quoted value of "
                  "field subject\"},\"GUID\":\"g-1\"}");
    assert_record(&out.recs[1], "messages_delivered", NULL,
                  "{\"raw\":\"MSGDLV GUID=g-2 tail=\\\"x\\\\\",\"syslog\":{\"event\":\"MSGDLV\","
                  "\"error\":\"unterminated quoted value of field tail\"},\"GUID\":\"g-2\"}");
    pf_records_free(&out);
}

/* A template without the kind's stream: the first stream gets the record. */
static void test_single_stream_template(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    const char *body = "CLKPER id=c GUID=g\n";
    assert_int_equal(extract_n(delivered, body, strlen(body), &out, &e), PF_OK);
    assert_int_equal(out.count, 1);
    assert_record(&out.recs[0], "messages_delivered", "c",
                  "{\"raw\":\"CLKPER id=c GUID=g\",\"syslog\":{\"event\":\"CLKPER\"},"
                  "\"id\":\"c\",\"GUID\":\"g\"}");
    pf_records_free(&out);
}

static void test_kind_table(void **state)
{
    (void)state;
    assert_string_equal(pf_syslog_kind_stream("MSGDLV", 6), "messages_delivered");
    assert_string_equal(pf_syslog_kind_stream("MSGBLK", 6), "messages_blocked");
    assert_string_equal(pf_syslog_kind_stream("CLKPER", 6), "clicks_permitted");
    assert_string_equal(pf_syslog_kind_stream("CLKBLK", 6), "clicks_blocked");
    assert_null(pf_syslog_kind_stream("CLKPE", 5));
    assert_null(pf_syslog_kind_stream("clkper", 6));
    assert_null(pf_syslog_kind_stream(NULL, 0));
}

/* Errors: the offset of the line (too long) or of the NUL byte; the records
 * appended before the call stay, nothing of the failed call is kept. */
static void test_errors_keep_out_unchanged(void **state)
{
    (void)state;
    pf_records out = {0};
    pf_error e;
    assert_int_equal(extract("CLKPER id=keep\n", &out, &e), PF_OK);
    assert_int_equal(out.count, 1);

    size_t n = PF_SYSLOG_MAX_LINE + 1, pre = 16;
    char *body = malloc(pre + n + 1);
    assert_non_null(body);
    memcpy(body, "CLKPER id=lost1\n", pre);
    memset(body + pre, 'a', n);
    body[pre + n] = '\n';
    assert_int_equal(extract_n(all, body, pre + n + 1, &out, &e), PF_EDATA);
    assert_int_equal(e.offset, (long)pre);
    assert_non_null(strstr(e.msg, "longer than"));
    assert_int_equal(out.count, 1);
    /* Exactly the limit is fine (CRLF not counted). */
    memcpy(body + pre + n - 1, "\r\n", 2);
    assert_int_equal(extract_n(all, body, pre + n + 1, &out, &e), PF_OK);
    assert_int_equal(out.count, 3);
    free(body);

    static const char nul[] = "CLKPER id=x\nCLKPER id=\0y\n";
    assert_int_equal(extract_n(all, nul, sizeof nul - 1, &out, &e), PF_EDATA);
    assert_int_equal(e.offset, 22);
    assert_non_null(strstr(e.msg, "NUL"));
    assert_int_equal(out.count, 3);
    assert_string_equal(out.recs[0].key, "keep");

    pf_template none = {0};
    assert_int_equal(extract_n(&none, "x", 1, &out, &e), PF_EINVAL);
    pf_records_free(&out);
}

/* The per-line cap on fields: the rest of the line stays in raw. */
static void test_field_cap(void **state)
{
    (void)state;
    size_t cap = (PF_SYSLOG_MAX_FIELDS + 2) * 12 + 16;
    char *line = malloc(cap);
    assert_non_null(line);
    size_t o = 0;
    for (int i = 0; i < PF_SYSLOG_MAX_FIELDS + 2; i++)
        o += (size_t)snprintf(line + o, cap - o, "%sf%d=%d", i ? " " : "", i, i);
    pf_buf b;
    pf_buf_init(&b, 0);
    const char *kind = "x";
    pf_error e;
    assert_int_equal(pf_syslog_line_json(line, o, &b, &kind, &e), PF_OK);
    assert_null(kind);
    char want[64];
    snprintf(want, sizeof want, "\"f%d\":\"%d\"", PF_SYSLOG_MAX_FIELDS - 1,
             PF_SYSLOG_MAX_FIELDS - 1);
    assert_non_null(strstr(pf_buf_str(&b), want));
    snprintf(want, sizeof want, "\"f%d\":", PF_SYSLOG_MAX_FIELDS);
    assert_null(strstr(pf_buf_str(&b), want));
    assert_non_null(strstr(pf_buf_str(&b), "\"error\":\"more than 4096 fields"));
    pf_buf_free(&b);
    free(line);
}

static void test_line_json(void **state)
{
    (void)state;
    pf_buf b;
    pf_buf_init(&b, 0);
    const char *kind = NULL;
    pf_error e;
    assert_int_equal(pf_syslog_line_json("MSGBLK GUID=q", 13, &b, &kind, &e), PF_OK);
    assert_string_equal(kind, "messages_blocked");
    assert_string_equal(pf_buf_str(&b),
                        "{\"raw\":\"MSGBLK GUID=q\",\"syslog\":{\"event\":\"MSGBLK\"},"
                        "\"GUID\":\"q\"}");
    /* A capped buffer too small for the record stays unchanged. */
    pf_buf small;
    pf_buf_init(&small, 8);
    assert_int_equal(pf_buf_puts(&small, "ab"), PF_OK);
    assert_int_equal(pf_syslog_line_json("MSGBLK GUID=q", 13, &small, &kind, &e), PF_ETOOBIG);
    assert_null(kind);
    assert_string_equal(pf_buf_str(&small), "ab");
    pf_buf_free(&small);
    pf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5424_click_line),
        cmocka_unit_test(test_quoted_escapes_and_embedded_json),
        cmocka_unit_test(test_bsd_header),
        cmocka_unit_test(test_fields_only_line_goes_to_first_stream),
        cmocka_unit_test(test_unknown_kind_and_nil_header_fields),
        cmocka_unit_test(test_structured_data),
        cmocka_unit_test(test_line_endings_and_blank_lines),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_duplicate_and_reserved_names),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_single_stream_template),
        cmocka_unit_test(test_kind_table),
        cmocka_unit_test(test_errors_keep_out_unchanged),
        cmocka_unit_test(test_field_cap),
        cmocka_unit_test(test_line_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
