/* test_jstream.c: the incremental JSON tokenizer: events, validation with
 * byte offsets, chunk independence (one byte at a time), nesting limits,
 * silencing, minified capture and its cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jstream.h"
#include "util/buf.h"

/* Runs the tokenizer over DOC fed in chunks of CHUNK bytes (0: whole) and
 * writes every event into LOG as "TOKEN@depth:offset[=text]\n". Returns the
 * final status; ERR holds the error. */
static const char *const tok_names[] = {"NONE", "EOF",    "{",      "}",    "[",     "]",
                                        "NAME", "STRING", "NUMBER", "TRUE", "FALSE", "NULL"};

static pf_status run(const char *doc, size_t len, size_t chunk, pf_buf *log, pf_error *err)
{
    pf_js *js = pf_js_new(64, 0, err);
    assert_non_null(js);
    pf_buf_reset(log);
    pf_status st = PF_OK;
    size_t pos = 0;
    int done = 0;
    while (!done && st == PF_OK) {
        size_t n = chunk ? chunk : len;
        if (n > len - pos) n = len - pos;
        pf_js_input(js, doc + pos, n);
        pos += n;
        if (pos == len) pf_js_end_input(js);
        for (;;) {
            pf_js_event ev;
            st = pf_js_next(js, &ev, err);
            if (st != PF_OK) break;
            if (ev.token == PF_JS_NONE) break;
            assert_int_equal(
                pf_buf_printf(log, "%s@%zu:%llu", tok_names[ev.token], ev.depth, ev.offset), PF_OK);
            if (ev.text) {
                assert_int_equal(pf_buf_putc(log, '='), PF_OK);
                assert_int_equal(pf_buf_append(log, ev.text, ev.len), PF_OK);
                if (ev.escaped) assert_int_equal(pf_buf_putc(log, '~'), PF_OK);
            }
            assert_int_equal(pf_buf_putc(log, '\n'), PF_OK);
            if (ev.token == PF_JS_EOF) {
                done = 1;
                break;
            }
        }
    }
    if (st == PF_OK && pf_js_empty(js)) pf_buf_puts(log, "(empty)\n");
    pf_js_free(js);
    return st;
}

static void test_events_of_a_document(void **state)
{
    (void)state;
    static const char doc[] =
        " {\"a\" : [1, -2.5e+3, true, false, null],\n\"b\\n\": {\"c\": \"x\\u00e9y\"}, \"\": []} ";
    pf_buf log;
    pf_buf_init(&log, 0);
    pf_error e;
    assert_int_equal(run(doc, strlen(doc), 0, &log, &e), PF_OK);
    assert_string_equal(pf_buf_str(&log), "{@0:1\n"
                                          "NAME@1:2=a\n"
                                          "[@1:8\n"
                                          "NUMBER@2:9=1\n"
                                          "NUMBER@2:12=-2.5e+3\n"
                                          "TRUE@2:21\n"
                                          "FALSE@2:27\n"
                                          "NULL@2:34\n"
                                          "]@1:38\n"
                                          "NAME@1:41=b\\n~\n"
                                          "{@1:48\n"
                                          "NAME@2:49=c\n"
                                          "STRING@2:54=x\\u00e9y~\n"
                                          "}@1:64\n"
                                          "NAME@1:67=\n"
                                          "[@1:71\n"
                                          "]@1:72\n"
                                          "}@0:73\n"
                                          "EOF@0:75\n");
    pf_buf_free(&log);
}

/* Documents every chunking must read identically. */
static const char *const valid_docs[] = {
    ("{\"messagesDelivered\": [ {\"GUID\": \"g-1\", \"subject\": \"two  spaces\", \"n\": 12},"
     " {\"GUID\": \"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"x\": [[], {}, [{}]]} ]}"),
    "[123456789012345678901234567890, -0, 0.5, 1E5, 1e-7, -0.0e+0, 10]",
    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf\"",
    "12345",
    "-0.25e10",
    "true",
    "null",
    "  \r\n\t[ ]  \n",
    "{\"\":{\"\":{\"\":[\"\",0,\"\"]}}}",
};

static void test_any_chunking_gives_the_same_events(void **state)
{
    (void)state;
    pf_buf whole, part;
    pf_buf_init(&whole, 0);
    pf_buf_init(&part, 0);
    pf_error e;
    for (size_t i = 0; i < sizeof valid_docs / sizeof valid_docs[0]; i++) {
        const char *d = valid_docs[i];
        if (run(d, strlen(d), 0, &whole, &e) != PF_OK) fail_msg("doc %zu: %s", i, e.msg);
        assert_non_null(strstr(pf_buf_str(&whole), "EOF@"));
        for (size_t chunk = 1; chunk <= 7; chunk++) {
            assert_int_equal(run(d, strlen(d), chunk, &part, &e), PF_OK);
            if (strcmp(pf_buf_str(&whole), pf_buf_str(&part)) != 0)
                fail_msg("doc %zu, chunks of %zu:\n%s\nvs whole:\n%s", i, chunk, pf_buf_str(&part),
                         pf_buf_str(&whole));
        }
    }
    pf_buf_free(&whole);
    pf_buf_free(&part);
}

static void test_empty_documents(void **state)
{
    (void)state;
    pf_buf log;
    pf_buf_init(&log, 0);
    pf_error e;
    assert_int_equal(run("", 0, 0, &log, &e), PF_OK);
    assert_string_equal(pf_buf_str(&log), "EOF@0:0\n(empty)\n");
    assert_int_equal(run(" \n\r\t ", 5, 1, &log, &e), PF_OK);
    assert_string_equal(pf_buf_str(&log), "EOF@0:5\n(empty)\n");
    /* A value is not empty. */
    assert_int_equal(run("0", 1, 1, &log, &e), PF_OK);
    assert_string_equal(pf_buf_str(&log), "NUMBER@0:0=0\nEOF@0:1\n");
    pf_buf_free(&log);
}

typedef struct bad_case {
    const char *doc;
    size_t len; /* 0: strlen */
    pf_status code;
    long offset;
    const char *msg; /* a part of the message */
} bad_case;

static const bad_case bad_docs[] = {
    {"{\"a\": tru}", 0, PF_EDATA, 9, "expected 'true'"},
    {"{\"a\":1,}", 0, PF_EDATA, 7, "expected a member name"},
    {"[1,]", 0, PF_EDATA, 3, "expected a value"},
    {"[1 2]", 0, PF_EDATA, 3, "',' or ']'"},
    {"{\"a\" 1}", 0, PF_EDATA, 5, "':'"},
    {"{1:2}", 0, PF_EDATA, 1, "member name or '}'"},
    {"[1}", 0, PF_EDATA, 2, "',' or ']'"},
    {"{\"a\":1]", 0, PF_EDATA, 6, "',' or '}'"},
    {"<html>", 0, PF_EDATA, 0, "expected a value, found '<'"},
    {"{} x", 0, PF_EDATA, 3, "data after the JSON value"},
    {"1 2", 0, PF_EDATA, 2, "data after the JSON value"},
    {"[NaN]", 0, PF_EDATA, 1, "expected a value"},
    {"[Infinity]", 0, PF_EDATA, 1, "expected a value"},
    {"[-Infinity]", 0, PF_EDATA, 2, "digit after '-'"},
    {"[01]", 0, PF_EDATA, 2, "leading zero"},
    {"[-01]", 0, PF_EDATA, 3, "leading zero"},
    {"[1.]", 0, PF_EDATA, 3, "digit after '.'"},
    {"[.5]", 0, PF_EDATA, 1, "expected a value"},
    {"[+1]", 0, PF_EDATA, 1, "expected a value"},
    {"[1e]", 0, PF_EDATA, 3, "exponent"},
    {"[1e+]", 0, PF_EDATA, 4, "exponent"},
    {"[0x10]", 0, PF_EDATA, 2, "',' or ']'"},
    {"['x']", 0, PF_EDATA, 1, "expected a value"},
    {"[\"a\\x\"]", 0, PF_EDATA, 4, "invalid escape"},
    {"[\"\\u12G4\"]", 0, PF_EDATA, 6, "four hex digits"},
    {"[\"\\ud800\"]", 0, PF_EDATA, 8, "unpaired surrogate"},
    {"[\"\\ud800\\n\"]", 0, PF_EDATA, 9, "unpaired surrogate"},
    {"[\"\\ud800\\u0041\"]", 0, PF_EDATA, 8, "not a low surrogate"},
    {"[\"\\udfff\"]", 0, PF_EDATA, 2, "unpaired surrogate"},
    {"[\"a\nb\"]", 0, PF_EDATA, 3, "control character U+000A"},
    {"[\"a\0b\"]", 7, PF_EDATA, 3, "control character U+0000"},
    {"[\"\x80\"]", 0, PF_EDATA, 2, "invalid UTF-8"},
    {"[\"\xc1\xbf\"]", 0, PF_EDATA, 2, "invalid UTF-8"},     /* overlong */
    {"[\"\xe0\x9f\xbf\"]", 0, PF_EDATA, 3, "invalid UTF-8"}, /* overlong */
    {"[\"\xed\xa0\x80\"]", 0, PF_EDATA, 3, "invalid UTF-8"}, /* surrogate */
    {"[\"\xf4\x90\x80\x80\"]", 0, PF_EDATA, 3, "invalid UTF-8"},
    {"[\"\xf5\x80\x80\x80\"]", 0, PF_EDATA, 2, "invalid UTF-8"},
    {"[\"\xc3\"]", 0, PF_EDATA, 3, "invalid UTF-8"}, /* cut short */
    {"[\"\xe2\x82\"]", 0, PF_EDATA, 4, "invalid UTF-8"},
    {"[\xc3\xa9]", 0, PF_EDATA, 1, "expected a value"},
    {"\xef\xbb\xbf[]", 0, PF_EDATA, 0, "expected a value"},
    {"[1,\f2]", 0, PF_EDATA, 3, "expected a value"},
    {"{\"a\":[1,{\"b\":", 0, PF_EDATA, 13, "truncated JSON (13 bytes)"},
    {"\"abc", 0, PF_EDATA, 4, "truncated"},
    {"[\"\\u00", 0, PF_EDATA, 6, "truncated"},
    {"-", 0, PF_EDATA, 1, "truncated"},
    {"1e", 0, PF_EDATA, 2, "truncated"},
    {"nul", 0, PF_EDATA, 3, "truncated"},
    {"[", 0, PF_EDATA, 1, "truncated"},
};

static void test_invalid_documents_fail_at_their_offset(void **state)
{
    (void)state;
    pf_buf log;
    pf_buf_init(&log, 0);
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
        const bad_case *c = &bad_docs[i];
        size_t len = c->len ? c->len : strlen(c->doc);
        for (size_t chunk = 0; chunk <= 3; chunk++) {
            pf_error e;
            pf_status st = run(c->doc, len, chunk, &log, &e);
            if (st != c->code || e.code != c->code || e.offset != c->offset ||
                !strstr(e.msg, c->msg))
                fail_msg("case %zu (chunks of %zu): status %d offset %ld \"%s\"; want %d %ld "
                         "\"%s\"",
                         i, chunk, st, e.offset, e.msg, c->code, c->offset, c->msg);
        }
    }
    pf_buf_free(&log);
}

/* Every proper prefix of a container document is truncated at its end. */
static void test_every_prefix_is_truncated(void **state)
{
    (void)state;
    const char *d = valid_docs[0];
    size_t n = strlen(d);
    pf_buf log;
    pf_buf_init(&log, 0);
    for (size_t cut = 0; cut < n; cut++) {
        pf_error e;
        pf_status st = run(d, cut, 0, &log, &e);
        if (cut == 0) {
            assert_int_equal(st, PF_OK); /* nothing at all is an empty document */
            continue;
        }
        if (st != PF_EDATA || e.offset != (long)cut || !strstr(e.msg, "truncated"))
            fail_msg("prefix of %zu bytes: %d at %ld: %s", cut, st, e.offset, e.msg);
    }
    pf_buf_free(&log);
}

static char *nested(size_t depth, char open, char close)
{
    char *s = malloc(2 * depth + 1);
    assert_non_null(s);
    for (size_t i = 0; i < depth; i++) {
        s[i] = open;
        s[depth + i] = close;
    }
    s[2 * depth] = '\0';
    return s;
}

static pf_status depth_run(const char *doc, size_t len, size_t max_depth, size_t chunk,
                           pf_error *err)
{
    pf_js *js = pf_js_new(max_depth, 0, err);
    assert_non_null(js);
    pf_status st = PF_OK;
    for (size_t pos = 0; st == PF_OK;) {
        size_t n = chunk < len - pos ? chunk : len - pos;
        pf_js_input(js, doc + pos, n);
        pos += n;
        if (pos == len) pf_js_end_input(js);
        pf_js_event ev;
        while ((st = pf_js_next(js, &ev, err)) == PF_OK && ev.token != PF_JS_NONE &&
               ev.token != PF_JS_EOF)
            ;
        if (st == PF_OK && ev.token == PF_JS_EOF) break;
    }
    pf_js_free(js);
    return st;
}

static void test_nesting_limit(void **state)
{
    (void)state;
    pf_error e;
    /* Exactly the limit is fine, one more is PF_EDEPTH at the bracket that
     * goes too deep. */
    char *s = nested(1000, '[', ']');
    assert_int_equal(depth_run(s, strlen(s), 1000, 1, &e), PF_OK);
    free(s);
    s = nested(1001, '[', ']');
    assert_int_equal(depth_run(s, strlen(s), 1000, 4096, &e), PF_EDEPTH);
    assert_int_equal(e.offset, 1000);
    assert_non_null(strstr(e.msg, "deeper than 1000"));
    free(s);

    /* 100,000 levels, fed whole and one byte at a time: an error, no crash,
     * no stack growth (the stack is explicit). */
    s = nested(100000, '[', ']');
    assert_int_equal(depth_run(s, strlen(s), 1000, strlen(s), &e), PF_EDEPTH);
    assert_int_equal(e.offset, 1000);
    assert_int_equal(depth_run(s, strlen(s), 1000, 1, &e), PF_EDEPTH);
    assert_int_equal(e.offset, 1000);
    free(s);

    /* Objects: {"a":{"a":... */
    size_t depth = 100000, cap = depth * 6 + 8;
    char *o = malloc(cap);
    assert_non_null(o);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) {
        memcpy(o + n, "{\"a\":", 5);
        n += 5;
    }
    o[n++] = '1';
    memset(o + n, '}', depth);
    n += depth;
    assert_int_equal(depth_run(o, n, 1000, 3, &e), PF_EDEPTH);
    assert_int_equal(e.offset, 5000);
    free(o);

    /* A small limit works the same way. */
    assert_int_equal(depth_run("[[1]]", 5, 2, 1, &e), PF_OK);
    assert_int_equal(depth_run("[[[1]]]", 7, 2, 1, &e), PF_EDEPTH);
    assert_int_equal(e.offset, 2);
    assert_null(pf_js_new(0, 0, &e));
    assert_int_equal(e.code, PF_EINVAL);
}

/* Feeds DOC in CHUNK-byte pieces and captures the first container that
 * begins at depth CAP_DEPTH (silencing its contents), appending the minified
 * bytes to OUT. */
static pf_status capture_first(const char *doc, size_t chunk, size_t cap_depth, pf_buf *out,
                               pf_error *err)
{
    pf_js *js = pf_js_new(100, 0, err);
    assert_non_null(js);
    size_t len = strlen(doc);
    pf_status st = PF_OK;
    int captured = 0, finished = 0;
    for (size_t pos = 0; st == PF_OK && !finished;) {
        size_t n = chunk < len - pos ? chunk : len - pos;
        pf_js_input(js, doc + pos, n);
        pos += n;
        if (pos == len) pf_js_end_input(js);
        pf_js_event ev;
        while ((st = pf_js_next(js, &ev, err)) == PF_OK && ev.token != PF_JS_NONE) {
            if (ev.token == PF_JS_EOF) {
                finished = 1;
                break;
            }
            if (!captured && ev.depth == cap_depth &&
                (ev.token == PF_JS_OBJECT_BEGIN || ev.token == PF_JS_ARRAY_BEGIN)) {
                st = pf_js_capture(js, out, err);
                if (st != PF_OK) break;
                pf_js_skip_contents(js, 1);
                captured = 1;
                assert_true(pf_js_capturing(js));
            } else if (captured && ev.depth == cap_depth &&
                       (ev.token == PF_JS_OBJECT_END || ev.token == PF_JS_ARRAY_END)) {
                assert_false(pf_js_capturing(js));
            }
        }
    }
    pf_js_free(js);
    return st;
}

static void test_capture_is_minified_and_exact(void **state)
{
    (void)state;
    static const char doc[] =
        "{ \"records\" : [\n"
        "  { \"GUID\" : \"a b  c\" ,\n"
        "    \"big\" : 123456789012345678901234567890 ,\n"
        "    \"n\" : [ -0 , 1E5 , 2.50 , 1e-7 ] ,\n"
        "    \"s\" : \"tab\\t \\u00e9 \\/ \\\" caf\xc3\xa9 \\ud83d\\ude00\" ,\n"
        "    \"o\" : { } , \"a\" : [ ] , \"t\" : true , \"z\" : null\n"
        "  } ] }\n";
    static const char want[] =
        "{\"GUID\":\"a b  c\",\"big\":123456789012345678901234567890,\"n\":[-0,1E5,2.50,1e-7],"
        "\"s\":\"tab\\t \\u00e9 \\/ \\\" caf\xc3\xa9 \\ud83d\\ude00\",\"o\":{},\"a\":[],\"t\":true,"
        "\"z\":null}";
    for (size_t chunk = 1; chunk <= sizeof doc; chunk = chunk < 8 ? chunk + 1 : chunk * 3) {
        pf_buf out;
        pf_buf_init(&out, 0);
        pf_error e;
        assert_int_equal(capture_first(doc, chunk, 2, &out, &e), PF_OK);
        if (strcmp(pf_buf_str(&out), want) != 0)
            fail_msg("chunks of %zu:\n%s\nwant\n%s", chunk, pf_buf_str(&out), want);
        pf_buf_free(&out);
    }
    /* The whole document, captured from the top. */
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error e;
    assert_int_equal(capture_first(" [ 1 , [ 2 ] , \" x \" ] ", 2, 0, &out, &e), PF_OK);
    assert_string_equal(pf_buf_str(&out), "[1,[2],\" x \"]");
    pf_buf_free(&out);
}

static void test_capture_cap(void **state)
{
    (void)state;
    /* The record {"a":"0123456789"} is 18 bytes minified; whitespace does not count. */
    static const char doc[] = "[ {\"a\" :   \"0123456789\"   } ]";
    for (size_t chunk = 1; chunk <= 4; chunk++) {
        pf_buf out;
        pf_buf_init(&out, 18);
        pf_error e;
        assert_int_equal(capture_first(doc, chunk, 1, &out, &e), PF_OK);
        assert_string_equal(pf_buf_str(&out), "{\"a\":\"0123456789\"}");
        pf_buf_free(&out);
        pf_buf_init(&out, 17);
        assert_int_equal(capture_first(doc, chunk, 1, &out, &e), PF_ETOOBIG);
        assert_int_equal(e.offset, 2);
        assert_non_null(strstr(e.msg, "larger than 17 bytes"));
        pf_buf_free(&out);
    }
}

static void test_silencing(void **state)
{
    (void)state;
    static const char doc[] = "{\"skip\": {\"x\": [1, {\"y\": 2}]}, \"keep\": [3, {\"z\": 4}], "
                              "\"s\": \"v\", \"last\": 5}";
    for (size_t chunk = 1; chunk <= sizeof doc; chunk += 9) {
        pf_js *js = pf_js_new(10, 0, NULL);
        assert_non_null(js);
        pf_buf log;
        pf_buf_init(&log, 0);
        size_t len = strlen(doc);
        int eof = 0;
        for (size_t pos = 0; !eof;) {
            size_t n = chunk < len - pos ? chunk : len - pos;
            pf_js_input(js, doc + pos, n);
            pos += n;
            if (pos == len) pf_js_end_input(js);
            pf_js_event ev;
            pf_error e;
            while (pf_js_next(js, &ev, &e) == PF_OK && ev.token != PF_JS_NONE) {
                if (ev.token == PF_JS_EOF) {
                    eof = 1;
                    break;
                }
                pf_buf_printf(&log, "%s ", tok_names[ev.token]);
                if (ev.token == PF_JS_NAME && ev.len == 4 && memcmp(ev.text, "skip", 4) == 0)
                    pf_js_skip_value(js);
                if (ev.token == PF_JS_NAME && ev.len == 1 && memcmp(ev.text, "s", 1) == 0)
                    pf_js_skip_value(js);
                /* The array under "keep": contents silent, END reported. */
                if (ev.token == PF_JS_ARRAY_BEGIN && ev.depth == 1) pf_js_skip_contents(js, 1);
            }
        }
        assert_string_equal(pf_buf_str(&log), "{ NAME NAME [ ] NAME NAME NUMBER } ");
        pf_buf_free(&log);
        pf_js_free(js);
    }
}

static void test_long_tokens(void **state)
{
    (void)state;
    /* A name longer than the token limit is refused when its text is
     * wanted, whether it arrives whole or split; silenced it costs nothing. */
    static const char doc[] = "{\"0123456789\": 1}";
    for (size_t chunk = 1; chunk <= sizeof doc; chunk += 4) {
        pf_js *js = pf_js_new(10, 8, NULL);
        assert_non_null(js);
        size_t len = strlen(doc);
        pf_status st = PF_OK;
        for (size_t pos = 0; st == PF_OK && pos < len;) {
            size_t n = chunk < len - pos ? chunk : len - pos;
            pf_js_input(js, doc + pos, n);
            pos += n;
            pf_js_event ev;
            pf_error e;
            while ((st = pf_js_next(js, &ev, &e)) == PF_OK && ev.token != PF_JS_NONE)
                ;
            if (st != PF_OK) {
                assert_int_equal(st, PF_ETOOBIG);
                assert_int_equal(e.offset, 1);
            }
        }
        assert_int_equal(st, PF_ETOOBIG);
        pf_js_free(js);

        js = pf_js_new(10, 8, NULL);
        st = PF_OK;
        for (size_t pos = 0; st == PF_OK && pos < len;) {
            size_t n = chunk < len - pos ? chunk : len - pos;
            pf_js_input(js, doc + pos, n);
            pos += n;
            if (pos == len) pf_js_end_input(js);
            pf_js_event ev;
            pf_error e;
            while ((st = pf_js_next(js, &ev, &e)) == PF_OK && ev.token != PF_JS_NONE &&
                   ev.token != PF_JS_EOF)
                if (ev.token == PF_JS_OBJECT_BEGIN) pf_js_skip_contents(js, 1);
        }
        assert_int_equal(st, PF_OK);
        pf_js_free(js);
    }
}

static void test_errors_are_sticky_and_reset_clears(void **state)
{
    (void)state;
    pf_js *js = pf_js_new(10, 0, NULL);
    assert_non_null(js);
    pf_js_event ev;
    pf_error e;
    pf_js_input(js, "[1 x", 4);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK); /* [ */
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK); /* 1 */
    assert_int_equal(pf_js_next(js, &ev, &e), PF_EDATA);
    assert_int_equal(e.offset, 3);
    pf_error_clear(&e);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_EDATA);
    assert_int_equal(e.offset, 3);
    /* A second chunk after the error does not revive it. */
    pf_js_input(js, "]", 1);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_EDATA);

    pf_js_reset(js);
    pf_js_input(js, "[2]", 3);
    pf_js_end_input(js);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
    assert_int_equal(ev.token, PF_JS_ARRAY_BEGIN);
    assert_int_equal(ev.offset, 0);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
    assert_int_equal(ev.token, PF_JS_NUMBER);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
    assert_int_equal(ev.token, PF_JS_EOF);
    assert_int_equal(pf_js_offset(js), 3);
    /* Capture is refused when not right after a container begins. */
    pf_buf b;
    pf_buf_init(&b, 0);
    assert_int_equal(pf_js_capture(js, &b, &e), PF_EINVAL);
    pf_buf_free(&b);
    pf_js_free(js);
    pf_js_free(NULL);
}

/* A reset in the middle of a document forgets everything of it: a body cut
 * inside a surrogate pair (an HTTP retry restarts the body there) must not
 * make the next body's first \u escape look like the pair's second half. */
static void test_reset_inside_a_surrogate_pair(void **state)
{
    (void)state;
    static const char *const cuts[] = {
        "[\"\\uD83D", "[\"\\uD83D\\", "[\"\\uD83D\\u", "[\"\\uD83D\\uDE", "{\"\\ud83d",
        "[\"\xf0\x9f", "[\"\\", "[\"\\u00", "[tr", "[-1.5e", "{\"a\":[{\"b\":\"\\ud800",
    };
    pf_js *js = pf_js_new(16, 0, NULL);
    assert_non_null(js);
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        pf_js_event ev;
        pf_error e;
        pf_js_input(js, cuts[i], strlen(cuts[i]));
        pf_status st;
        while ((st = pf_js_next(js, &ev, &e)) == PF_OK && ev.token != PF_JS_NONE)
            ;
        assert_int_equal(st, PF_OK); /* valid so far, just cut */
        pf_js_reset(js);
        static const char next[] = "[\"\\u0041\\u00e9\",1]";
        pf_js_input(js, next, strlen(next));
        pf_js_end_input(js);
        assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
        assert_int_equal(ev.token, PF_JS_ARRAY_BEGIN);
        assert_int_equal(ev.offset, 0);
        pf_error_clear(&e);
        if (pf_js_next(js, &ev, &e) != PF_OK)
            fail_msg("after a reset cut at \"%s\": %s", cuts[i], e.msg);
        assert_int_equal(ev.token, PF_JS_STRING);
        assert_int_equal(ev.offset, 1);
        assert_int_equal(ev.len, 12);
        assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
        assert_int_equal(ev.token, PF_JS_NUMBER);
        assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
        assert_int_equal(ev.token, PF_JS_ARRAY_END);
        assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
        assert_int_equal(ev.token, PF_JS_EOF);
        assert_int_equal(pf_js_empty(js), 0);
        pf_js_reset(js);
    }
    /* A high surrogate still needs its low half after a reset. */
    pf_js_event ev;
    pf_error e;
    pf_js_input(js, "[\"\\uD83D\\u0041\"]", 16);
    pf_js_end_input(js);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_OK);
    assert_int_equal(pf_js_next(js, &ev, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "not a low surrogate"));
    pf_js_free(js);
}

/* Strings are scanned several bytes at a time: every kind of special byte
 * must be found at every position of such a word. */
static void test_special_bytes_at_every_position(void **state)
{
    (void)state;
    pf_buf log;
    pf_buf_init(&log, 0);
    char doc[64], want[128];
    for (size_t pos = 0; pos < 20; pos++) {
        for (size_t tail = 0; tail < 10; tail += 3) {
            pf_error e;
            /* The closing quote: the text is the bytes before it. */
            snprintf(doc, sizeof doc, "\"%.*s\"", (int)pos, "aaaaaaaaaaaaaaaaaaaaaaaaaaa");
            assert_int_equal(run(doc, strlen(doc), 0, &log, &e), PF_OK);
            snprintf(want, sizeof want, "STRING@0:0=%.*s\nEOF@0:%zu\n", (int)pos,
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaa", pos + 2);
            assert_string_equal(pf_buf_str(&log), want);
            /* A backslash, a two- and a four-byte UTF-8 sequence in the middle. */
            static const char *const mids[] = {"\\\"", "\\\\", "\xc3\xa9", "\xf0\x9f\x98\x80"};
            for (size_t m = 0; m < 4; m++) {
                snprintf(doc, sizeof doc, "\"%.*s%s%.*s\"", (int)pos, "bbbbbbbbbbbbbbbbbbbbbb",
                         mids[m], (int)tail, "cccccccccc");
                assert_int_equal(run(doc, strlen(doc), 0, &log, &e), PF_OK);
                snprintf(want, sizeof want, "STRING@0:0=%.*s%s%.*s%s\nEOF@0:%zu\n", (int)pos,
                         "bbbbbbbbbbbbbbbbbbbbbb", mids[m], (int)tail, "cccccccccc",
                         m < 2 ? "~" : "", strlen(doc));
                assert_string_equal(pf_buf_str(&log), want);
            }
            /* A control character, a stray continuation byte, DEL (allowed). */
            static const char bad[] = {'\x01', '\x1f', '\x80', '\xff'};
            for (size_t m = 0; m < sizeof bad; m++) {
                snprintf(doc, sizeof doc, "\"%.*s%c%.*s\"", (int)pos, "dddddddddddddddddddddd",
                         bad[m], (int)tail, "eeeeeeeeee");
                assert_int_equal(run(doc, strlen(doc), 0, &log, &e), PF_EDATA);
                assert_int_equal(e.offset, (long)pos + 1);
            }
            snprintf(doc, sizeof doc, "\"%.*s\x7f%.*s\"", (int)pos, "ffffffffffffffffffffff",
                     (int)tail, "gggggggggg");
            assert_int_equal(run(doc, strlen(doc), 0, &log, &e), PF_OK);
        }
    }
    pf_buf_free(&log);
}

static void test_unescape(void **state)
{
    (void)state;
    static const char raw[] =
        "a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000z";
    char out[sizeof raw];
    size_t n = pf_js_unescape(raw, strlen(raw), out);
    static const char want[] = "a\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);
    /* In place. */
    char buf[] = "x\\u0041y";
    n = pf_js_unescape(buf, strlen(buf), buf);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "xAy", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_of_a_document),
        cmocka_unit_test(test_any_chunking_gives_the_same_events),
        cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_invalid_documents_fail_at_their_offset),
        cmocka_unit_test(test_every_prefix_is_truncated),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_capture_is_minified_and_exact),
        cmocka_unit_test(test_capture_cap),
        cmocka_unit_test(test_silencing),
        cmocka_unit_test(test_long_tokens),
        cmocka_unit_test(test_errors_are_sticky_and_reset_clears),
        cmocka_unit_test(test_reset_inside_a_surrogate_pair),
        cmocka_unit_test(test_special_bytes_at_every_position),
        cmocka_unit_test(test_unescape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
