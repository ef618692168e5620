/* test_urldefense.c: the URL Defense decoder against the shared vector files
 * (tests/data/urldefense/, read at run time with json-c) and hand-written edge
 * cases: truncation, bad escapes, bad base64, overruns, huge input, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "proofpoint/urldefense.h"

#define DATA_DIR PPFLOW_SOURCE_DIR "/tests/data/urldefense/"

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct result {
    pf_status st;
    int version;
    pf_error err;
    char *out; /* decoded text (NUL-terminated) on success, else NULL */
    size_t out_len;
} result;

static result run(const char *in, size_t len)
{
    result r;
    pf_buf b;
    pf_buf_init(&b, 0);
    r.st = pf_urldefense_decode(in, len, &b, &r.version, &r.err);
    r.out = NULL;
    r.out_len = 0;
    if (r.st == PF_OK) {
        r.out_len = b.len;
        r.out = pf_buf_steal(&b);
        assert_non_null(r.out);
    } else {
        /* On failure OUT is unchanged. */
        assert_int_equal(b.len, 0);
        assert_null(b.data);
    }
    pf_buf_free(&b);
    return r;
}

static result run_s(const char *in)
{
    return run(in, strlen(in));
}

static void expect_ok(const char *in, const char *want, int version)
{
    result r = run_s(in);
    if (r.st != PF_OK) fail_msg("%s: unexpected error: %s", in, r.err.msg);
    assert_int_equal(r.version, version);
    assert_int_equal(r.out_len, strlen(want));
    assert_string_equal(r.out, want);
    free(r.out);
}

/* Expects PF_EDATA; returns the error offset (-1 when none). */
static long expect_err(const char *in, const char *msg_part)
{
    result r = run_s(in);
    if (r.st == PF_OK) fail_msg("%s: expected an error, got \"%s\"", in, r.out);
    assert_int_equal(r.st, PF_EDATA);
    if (msg_part && !strstr(r.err.msg, msg_part))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", in, r.err.msg, msg_part);
    return r.err.offset;
}

static int version_num(const char *v)
{
    if (!v || v[0] != 'v' || v[1] < '1' || v[1] > '3' || v[2]) return -1;
    return v[1] - '0';
}

static json_object *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", DATA_DIR, name);
    json_object *j = json_object_from_file(path);
    if (!j) fail_msg("cannot read %s: %s", path, json_util_get_last_err());
    return j;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static size_t jstr_len(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) return 0;
    return (size_t)json_object_get_string_len(v);
}

static int jbool(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* Checks one case: WANT_ERROR, or WANT[0..WANT_LEN) with WANT_VERSION.
 * Returns 1 on a match; prints the mismatch and returns 0 otherwise. */
static int check_case(const char *label, size_t idx, json_object *vec, int want_error,
                      const char *want, size_t want_len, int want_version)
{
    const char *enc = jstr(vec, "encoded");
    size_t enc_len = jstr_len(vec, "encoded");
    if (!enc) {
        print_error("%s[%zu]: no \"encoded\"\n", label, idx);
        return 0;
    }
    result r = run(enc, enc_len);
    int ok;
    if (want_error) {
        ok = r.st == PF_EDATA;
        if (!ok)
            print_error("%s[%zu]: expected an error, got status %d \"%s\"\n", label, idx, r.st,
                        r.out ? r.out : r.err.msg);
    } else {
        ok = r.st == PF_OK && r.version == want_version && r.out_len == want_len &&
             memcmp(r.out, want, want_len) == 0;
        if (!ok)
            print_error("%s[%zu]: want v%d \"%s\", got status %d v%d \"%s\"\n", label, idx,
                        want_version, want, r.st, r.version, r.out ? r.out : r.err.msg);
    }
    free(r.out);
    return ok;
}

/* ---- the vector files ------------------------------------------------------------------- */

static void test_vectors(void **state)
{
    (void)state;
    json_object *all = load("urldefense-vectors.json");
    assert_true(json_object_is_type(all, json_type_array));
    size_t n = json_object_array_length(all), passed = 0, valid = 0, malformed = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(all, i);
        if (jbool(v, "error")) {
            malformed++;
            passed += (size_t)check_case("vectors", i, v, 1, NULL, 0, 0);
        } else {
            valid++;
            const char *want = jstr(v, "decoded");
            assert_non_null(want);
            passed += (size_t)check_case("vectors", i, v, 0, want, jstr_len(v, "decoded"),
                                         version_num(jstr(v, "version")));
        }
    }
    print_message("urldefense-vectors.json: %zu/%zu passed (%zu valid, %zu malformed)\n", passed, n,
                  valid, malformed);
    json_object_put(all);
    assert_int_equal(n, 55);
    assert_int_equal(passed, n);
}

static void test_divergent(void **state)
{
    (void)state;
    json_object *all = load("urldefense-vectors-divergent.json");
    json_object *doc = load("divergent-expected.json");
    json_object *exps;
    assert_true(json_object_object_get_ex(doc, "expectations", &exps));
    size_t n = json_object_array_length(all), passed = 0;
    assert_int_equal(json_object_array_length(exps), n);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(all, i);
        json_object *e = json_object_array_get_idx(exps, i);
        /* The expectation must describe this very vector. */
        const char *pre = jstr(e, "encoded_prefix");
        assert_non_null(pre);
        assert_memory_equal(jstr(v, "encoded"), pre, strlen(pre));

        json_object *want_obj = e; /* explicit: the expectation itself */
        const char *follows = jstr(e, "follows");
        if (follows && !json_object_object_get_ex(v, follows, &want_obj))
            fail_msg("divergent[%zu]: no column \"%s\"", i, follows);
        int want_error = json_object_object_get_ex(want_obj, "error", NULL);
        const char *want = jstr(want_obj, "decoded");
        const char *ver = jstr(e, "version") ? jstr(e, "version") : jstr(v, "version");
        if (!want_error && !want) fail_msg("divergent[%zu]: no expected result", i);
        passed += (size_t)check_case("divergent", i, v, want_error, want,
                                     want ? jstr_len(want_obj, "decoded") : 0, version_num(ver));
    }
    print_message("urldefense-vectors-divergent.json: %zu/%zu match the documented choice\n",
                  passed, n);
    json_object_put(all);
    json_object_put(doc);
    assert_int_equal(passed, n);
}

/* Every prefix of every vector: no crash, no out-of-bounds read (the prefix
 * is copied to an exact-size heap block so ASan sees an overread), and a
 * failure leaves OUT untouched (checked in run()). */
static void test_truncated_vectors(void **state)
{
    (void)state;
    const char *files[] = {"urldefense-vectors.json", "urldefense-vectors-divergent.json"};
    size_t cases = 0;
    for (size_t f = 0; f < 2; f++) {
        json_object *all = load(files[f]);
        for (size_t i = 0; i < json_object_array_length(all); i++) {
            json_object *v = json_object_array_get_idx(all, i);
            const char *enc = jstr(v, "encoded");
            size_t len = jstr_len(v, "encoded");
            for (size_t k = 0; k <= len; k++) {
                char *copy = malloc(k ? k : 1);
                assert_non_null(copy);
                memcpy(copy, enc, k);
                result r = run(copy, k);
                if (r.st == PF_OK) assert_true(r.version >= 1 && r.version <= 3);
                free(r.out);
                free(copy);
                cases++;
            }
        }
        json_object_put(all);
    }
    print_message("truncation: %zu prefixes decoded without fault\n", cases);
}

/* ---- recognition -------------------------------------------------------------------------- */

static void test_recognition(void **state)
{
    (void)state;
    assert_int_equal(pf_urldefense_detect(NULL, 0), -1);
    assert_int_equal(pf_urldefense_detect("https://urldefense.com/v3/", 26), 3);
    assert_int_equal(pf_urldefense_detect("https://urldefense.proofpoint.com/v2/", 37), 2);
    assert_int_equal(pf_urldefense_detect("https://urldefense.com/v9/", 26), 9);
    assert_int_equal(pf_urldefense_detect("https://urldefense.com/v3", 25), -1);
    assert_int_equal(pf_urldefense_detect("https://urldefense.com/v10/", 27), -1);
    assert_int_equal(pf_urldefense_detect("https://urldefense.us/v3/", 25), -1);

    expect_err("", "not a URL Defense URL");
    expect_err("https://urldefense.com/v", "not a URL Defense URL");
    expect_err("https://urldefense.com/v3", "not a URL Defense URL");
    expect_err("https://urldefense.com/vx/", "not a URL Defense URL");
    expect_err(" https://urldefense.com/v3/__http://a.b__;!!x", "not a URL Defense URL");
    assert_int_equal(expect_err("https://urldefense.com/v0/__x__;!!", "version v0"), 23);
    expect_err("https://urldefense.proofpoint.com/v5/url?u=x&k=y", "version v5");

    /* The version is reported even when decoding fails. */
    result r = run_s("https://urldefense.com/v3/__x");
    assert_int_equal(r.st, PF_EDATA);
    assert_int_equal(r.version, 3);
}

static void test_bad_args(void **state)
{
    (void)state;
    pf_buf b;
    pf_buf_init(&b, 0);
    int v = 7;
    assert_int_equal(pf_urldefense_decode(NULL, 3, &b, &v, NULL), PF_EINVAL);
    assert_int_equal(v, 0);
    assert_int_equal(pf_urldefense_decode("x", 1, NULL, NULL, NULL), PF_EINVAL);
    /* ERR and VERSION_OUT may be NULL. */
    const char *u = "https://urldefense.com/v3/__http://a.example/*x__;Iw!!a$";
    assert_int_equal(pf_urldefense_decode(u, strlen(u), &b, NULL, NULL), PF_OK);
    assert_string_equal(pf_buf_str(&b), "http://a.example/#x");
    assert_int_equal(pf_urldefense_decode("nope", 4, &b, NULL, NULL), PF_EDATA);
    assert_string_equal(pf_buf_str(&b), "http://a.example/#x");
    pf_buf_free(&b);
}

/* The decoded URL is appended; OUT's cap is honoured and leaves OUT unchanged. */
static void test_append_and_cap(void **state)
{
    (void)state;
    const char *u = "https://urldefense.com/v3/__http://a.example/*x__;Iw!!a$";
    pf_buf b;
    pf_buf_init(&b, 0);
    assert_int_equal(pf_buf_puts(&b, "> "), PF_OK);
    assert_int_equal(pf_urldefense_decode(u, strlen(u), &b, NULL, NULL), PF_OK);
    assert_string_equal(pf_buf_str(&b), "> http://a.example/#x");
    pf_buf_free(&b);

    pf_error e;
    pf_buf_init(&b, 10);
    assert_int_equal(pf_buf_puts(&b, "ab"), PF_OK);
    assert_int_equal(pf_urldefense_decode(u, strlen(u), &b, NULL, &e), PF_ETOOBIG);
    assert_string_equal(pf_buf_str(&b), "ab");
    pf_buf_free(&b);
}

/* ---- v1 / v2 ------------------------------------------------------------------------------ */

#define V1 "https://urldefense.proofpoint.com/v1/url?u="
#define V1T "&k=abc%3D%0A&r=x&m=y&s=z"
#define V2 "https://urldefense.proofpoint.com/v2/url?u="
#define V2T "&d=DwMFaQ&c=abc&r=x&m=y&s=z&e="

static void test_v12_escapes(void **state)
{
    (void)state;
    /* Invalid or truncated escapes are kept literally. */
    expect_ok(V1 "http://a.example/%" V1T, "http://a.example/%", 1);
    expect_ok(V1 "http://a.example/%4" V1T, "http://a.example/%4", 1);
    expect_ok(V1 "http://a.example/%G0%4g" V1T, "http://a.example/%G0%4g", 1);
    expect_ok(V1 "http://a.example/%%41" V1T, "http://a.example/%A", 1);
    expect_ok(V2 "http-3A__a.example_-" V2T, "http://a.example/%", 2);
    expect_ok(V2 "http-3A__a.example_-ZZ-4" V2T, "http://a.example/%ZZ%4", 2);
    /* Ill-formed UTF-8 from escapes becomes U+FFFD per maximal subpart
     * (checked against Python's bytes.decode('utf-8', 'replace')). */
    expect_ok(V1 "x%F0%80A%E2%82%ED%A0%80%C3" V1T,
              "x\xEF\xBF\xBD\xEF\xBF\xBD"
              "A\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD",
              1);
    expect_ok(V1 "x%C3%A9%C3" V1T, "x\xC3\xA9\xEF\xBF\xBD", 1);
    /* Literal UTF-8 in the value is fine; broken literal UTF-8 is an error. */
    expect_ok(V1 "http://a.example/caf\xC3\xA9" V1T, "http://a.example/caf\xC3\xA9", 1);
    assert_int_equal(expect_err(V1 "http://a/\xC3(" V1T, "invalid UTF-8"), 52);
    /* NUL, decoded or raw. */
    assert_int_equal(expect_err(V2 "https-3A__a_-00" V2T, "NUL"), 55);
    expect_err(V1 "a%00" V1T, "NUL");
    {
        static const char raw[] = V1 "a\0b" V1T;
        result r = run(raw, sizeof raw - 1);
        assert_int_equal(r.st, PF_EDATA);
        assert_non_null(strstr(r.err.msg, "NUL"));
    }
}

static void test_v12_html(void **state)
{
    (void)state;
    expect_ok(V1 "a%26amp%3Bb%26lt%3B%26gt%3B%26quot%3B%26apos%3B%26AMP%3B" V1T, "a&b<>\"'&", 1);
    /* Named references need ';' and only the five XML names are decoded. */
    expect_ok(V1 "a%26amp%26copy%3D1%26region%3D2%26copy%3B%26nbsp%3B" V1T,
              "a&amp&copy=1&region=2&copy;&nbsp;", 1);
    /* Numeric: with ';' only; HTML5 fix-ups (checked against Python's html.unescape). */
    expect_ok(V1 "%26%2365%3B%26%23x42%3B%26%23X43%3B%26%2368" V1T, "ABC&#68", 1);
    expect_ok(V1 "%26%23x80%3B%26%230%3B%26%23x9F%3B%26%23x81%3B" V1T,
              "\xE2\x82\xAC\xEF\xBF\xBD\xC5\xB8\xC2\x81", 1);
    expect_ok(V1 "[%26%231%3B%26%23x7F%3B%26%23xFFFE%3B%26%23xFDD0%3B]" V1T, "[]", 1);
    expect_ok(V1 "%26%2313%3B%26%23xD800%3B%26%23x110000%3B" V1T, "\r\xEF\xBF\xBD\xEF\xBF\xBD", 1);
    expect_ok(V1 "%26%2399999999999999999999999%3B%26%23x1F600%3B" V1T,
              "\xEF\xBF\xBD\xF0\x9F\x98\x80", 1);
    expect_ok(V1 "%26%23%3B%26%23x%3B%26%23" V1T, "&#;&#x;&#", 1);
    /* No second pass: &amp;lt; is &lt;. */
    expect_ok(V1 "%26amp%3Blt%3B" V1T, "&lt;", 1);
    /* v2: same rules, after the '-'/'_' translation. */
    expect_ok(V2 "https-3A__a_-3Fx-3D1-26amp-3By-3D2-26param-3D3" V2T, "https://a/?x=1&y=2&param=3",
              2);
}

static void test_v12_layout(void **state)
{
    (void)state;
    /* Shortest match: the first terminator after a non-empty value. */
    expect_ok(V1 "http://a/?x=1&y=2&k=1&k=2", "http://a/?x=1&y=2", 1);
    expect_ok(V2 "a&c=1&d=2", "a", 2);
    expect_ok(V2 "a&x=1&d=2", "a&x=1", 2);
    /* HTML-escaped separators, used only when no plain one exists. */
    expect_ok(V1 "http://a/&amp;k=x&amp;r=y", "http://a/", 1);
    expect_ok(V2 "http-3A__a&amp;d=x&amp;c=y", "http://a", 2);
    expect_ok(V2 "http-3A__a&amp;c=x", "http://a", 2);
    expect_ok(V1 "http://a/&amp;k=x&k=y", "http://a/&k=x", 1);
    /* Errors. */
    assert_int_equal(expect_err("https://urldefense.proofpoint.com/v1/url?x=1", "missing"), 37);
    assert_int_equal(expect_err(V1 "http://a/&r=1", "&k="), 41);
    expect_err(V2 "http-3A__a&k=1", "&d=");
    assert_int_equal(expect_err(V2 "&d=abc&c=def", "empty u="), 43);
    expect_err(V1 "&amp;k=1", "empty u=");
    expect_err(V1 "http://a/\nb" V1T, "line break");
    expect_err(V1, "&k=");
    expect_err("https://urldefense.proofpoint.com/v2/", "missing");
}

/* ---- v3 ----------------------------------------------------------------------------------- */

#define V3 "https://urldefense.com/v3/__"

static void test_v3_markers(void **state)
{
    (void)state;
    expect_ok(V3 "http://a/**__;IyM!!x!y$", "http://a/##", 3); /* "**" at the end: 2 singles */
    expect_err(V3 "http://a/***__;IyMj!!x$", "invalid run-length code '*'"); /* "***" */
    expect_ok(V3 "http://a/*__;IyMj!x$", "http://a/#", 3); /* leftovers ignored; one '!' */
    expect_ok(V3 "http://a/b__;!!x$", "http://a/b", 3);
    expect_ok(V3 "http://a/b__;!", "http://a/b", 3);
    expect_ok(V3 "http://a/__b__;!!x", "http://a/__b", 3);
    expect_ok(V3 "http://a/b_____;!!x", "http://a/b___", 3);
    expect_ok(V3 "x__;!", "x", 3);
    /* The target is percent-decoded first: %2A becomes a marker, %0A after
     * "**" gives two singles and a line break (reference behaviour). */
    expect_ok(V3 "http://a/%2A__;Iw!!x", "http://a/#", 3);
    expect_ok(V3 "http://a/**%0A__;IyM!!x", "http://a/##\n", 3);
    expect_ok(V3 "http://a/b%20c__;!!x", "http://a/b c", 3);
    /* Replaced bytes are never scanned again. */
    expect_ok(V3 "http://a/**A__;Kio!!x", "http://a/**", 3);
    /* Single-slash repair, and where it does not apply. */
    expect_ok(V3 "https:/a.example/__;!!x", "https://a.example/", 3);
    expect_ok(V3 "x+y.z-1:/ab__;!!x", "x+y.z-1://ab", 3);
    expect_ok(V3 "https:/a__;!!x", "https:/a", 3);
    expect_ok(V3 "https://a__;!!x", "https://a", 3);
    expect_ok(V3 ":/ab__;!!x", ":/ab", 3);
    expect_ok(V3 "mailto:/ab__;!!x", "mailto://ab", 3);
    /* Runs of every length code. */
    {
        static const char codes[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (size_t k = 0; k < 64; k++) {
            char in[256], want[128];
            size_t run = k + 2;
            /* run bytes of '#': base64 of "###" is "IyMj". */
            char b64[128] = "";
            size_t full = run / 3, rem = run % 3;
            for (size_t q = 0; q < full; q++)
                strcat(b64, "IyMj");
            if (rem == 1) strcat(b64, "Iw");
            if (rem == 2) strcat(b64, "IyM");
            snprintf(in, sizeof in, V3 "http://a/**%c.__;%s!!x", codes[k], b64);
            memset(want, 0, sizeof want);
            strcpy(want, "http://a/");
            memset(want + 9, '#', run);
            strcat(want, ".");
            expect_ok(in, want, 3);
        }
    }
}

static void test_v3_errors(void **state)
{
    (void)state;
    /* Layout. */
    assert_int_equal(expect_err("https://urldefense.com/v3/http://a__;!!x", "\"__\""), 26);
    assert_int_equal(expect_err(V3 "__;!!x", "empty encoded URL"), 28);
    assert_int_equal(expect_err(V3 "http://a/", "__;"), 28);
    assert_int_equal(expect_err(V3 "http://a/__;Iw", "'!'"), 40);
    expect_err(V3, "__;");
    expect_err("https://urldefense.com/v3/_", "\"__\"");
    expect_err(V3 "http://a/\n__;!!x", "line break");
    expect_err(V3 "http://a/\xC3__;!!x", "invalid UTF-8");
    /* Base64. */
    assert_int_equal(expect_err(V3 "a*__;I!!x", "impossible base64 length"), 33);
    assert_int_equal(expect_err(V3 "a*__;IyMjI!!x", "impossible base64 length"), 37);
    assert_int_equal(expect_err(V3 "a*__;I.w!!x", "invalid character '.'"), 34);
    expect_err(V3 "a*__;I=w!!x", "invalid character '='");
    expect_err(V3 "a*__;Iw===!!x", "padding");
    expect_err(V3 "a*__;I w!!x", "invalid character 0x20");
    expect_err(V3 "a*__;I\xC3\xA9w!!x", "invalid character 0xC3");
    expect_ok(V3 "a*__;Iw=!!x", "a#", 3);
    expect_ok(V3 "a*__;Iw==!!x", "a#", 3);
    expect_ok(V3 "a**A__;Pz8!!x", "a??", 3);
    expect_ok(V3 "a**B__;fn5-!!x", "a~~~", 3); /* base64url '-' */
    expect_ok(V3 "a**B__;Pz8_!!x", "a???", 3); /* base64url '_' */
    expect_ok(V3 "a**B__;Pz8/!!x", "a???", 3); /* standard '/' accepted */
    expect_ok(V3 "a**B__;fn5+!!x", "a~~~", 3); /* standard '+' accepted */
}

static void test_v3_bytes(void **state)
{
    (void)state;
    /* Replacement bytes must be UTF-8 as a whole ("_w" is 0xFF; "wA" is 0xC0 0x??). */
    expect_err(V3 "a*__;_w!!x", "not valid UTF-8");
    expect_err(V3 "a**A__;wKA!!x", "not valid UTF-8"); /* C0 A0: overlong */
    /* A marker may split a character only if the next marker completes it. */
    expect_ok(V3 "a**_*b__;"
                 "w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOp"
                 "w6nDqcOp!!x",
              "a\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
              "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
              "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
              "\xC3\xA9\xC3\xA9\xC3\xA9"
              "b",
              3);
    assert_int_equal(expect_err(V3 "a*b*__;w6k!!x", "splits a character"), 29);
    /* Overruns. */
    assert_int_equal(expect_err(V3 "a*b*c__;Iw!!x", "no replacement byte"), 31);
    assert_int_equal(expect_err(V3 "a**Cb__;IyM!!x", "needs 4 replacement bytes but only 2"), 29);
    expect_err(V3 "a*__;!!x", "no replacement byte");
    /* Run codes outside the table. */
    assert_int_equal(expect_err(V3 "a**.b__;IyM!!x", "invalid run-length code '.'"), 31);
    expect_err(V3 "a***Ab__;IyMj!!x", "invalid run-length code '*'");
    expect_err(V3 "a**+b__;IyMj!!x", "invalid run-length code '+'");
    expect_err(V3 "a**\xC3\xA9__;IyMj!!x", "invalid run-length code 0xC3");
    /* NUL from the replacement bytes, or from the target. */
    assert_int_equal(expect_err(V3 "a*b__;AA!!x", "NUL"), 29);
    expect_err(V3 "a%00b__;!!x", "NUL");
    expect_ok(V3 "a*b__;IwA!!x", "a#b", 3); /* an unused NUL is harmless */
}

/* ---- size limits ------------------------------------------------------------------------- */

static void test_huge(void **state)
{
    (void)state;
    /* Over the input cap. */
    size_t big = PF_URLDEFENSE_MAX_INPUT + 1;
    char *in = malloc(big);
    assert_non_null(in);
    memset(in, 'a', big);
    memcpy(in, V3, strlen(V3));
    pf_buf b;
    pf_buf_init(&b, 0);
    pf_error e;
    assert_int_equal(pf_urldefense_decode(in, big, &b, NULL, &e), PF_ETOOBIG);
    assert_int_equal(b.len, 0);
    free(in);

    /* Near the cap: 12000 single markers and 3000 runs in one URL (no recursion). */
    pf_buf u;
    pf_buf_init(&u, 0);
    assert_int_equal(pf_buf_puts(&u, V3 "http://a/"), PF_OK);
    for (int i = 0; i < 12000; i++)
        assert_int_equal(pf_buf_puts(&u, "*a"), PF_OK);
    /* A literal between them: "*" then "**A" would read as "**" + "*A". */
    assert_int_equal(pf_buf_puts(&u, "/"), PF_OK);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(pf_buf_puts(&u, "**A"), PF_OK);
    assert_int_equal(pf_buf_puts(&u, "__;"), PF_OK);
    /* 12000 + 6000 = 18000 bytes of '#' = 6000 * "IyMj" */
    for (int i = 0; i < 6000; i++)
        assert_int_equal(pf_buf_puts(&u, "IyMj"), PF_OK);
    assert_int_equal(pf_buf_puts(&u, "!!x$"), PF_OK);
    assert_true(u.len <= PF_URLDEFENSE_MAX_INPUT);
    int v;
    assert_int_equal(pf_urldefense_decode(u.data, u.len, &b, &v, &e), PF_OK);
    assert_int_equal(v, 3);
    assert_int_equal(b.len, 9 + 24000 + 1 + 6000);
    for (size_t i = 9; i < 9 + 24000; i++)
        assert_int_equal(b.data[i], (i - 9) % 2 ? 'a' : '#');
    assert_int_equal(b.data[9 + 24000], '/');
    for (size_t i = 9 + 24001; i < b.len; i++)
        assert_int_equal(b.data[i], '#');
    pf_buf_free(&b);
    pf_buf_free(&u);

    /* A long v2 value full of escapes. */
    pf_buf_init(&u, 0);
    assert_int_equal(pf_buf_puts(&u, V2 "http-3A__a_"), PF_OK);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(pf_buf_puts(&u, "-C3"), PF_OK);
    assert_int_equal(pf_buf_puts(&u, V2T), PF_OK);
    pf_buf_init(&b, 0);
    assert_int_equal(pf_urldefense_decode(u.data, u.len, &b, &v, &e), PF_OK);
    assert_int_equal(b.len, strlen("http://a/") + 3 * 20000); /* each lone C3 -> U+FFFD */
    pf_buf_free(&b);
    pf_buf_free(&u);
}

/* The error text carries the offset. */
static void test_error_format(void **state)
{
    (void)state;
    result r = run_s(V3 "a*b*c__;Iw!!x");
    char buf[PF_ERROR_MSG_MAX + 64];
    pf_error_format(&r.err, buf, sizeof buf);
    assert_string_equal(buf, "'*' marker has no replacement byte left at offset 31");
    r = run_s("https://example.com/");
    pf_error_format(&r.err, buf, sizeof buf);
    assert_string_equal(buf, "not a URL Defense URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_divergent),
        cmocka_unit_test(test_truncated_vectors),
        cmocka_unit_test(test_recognition),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_append_and_cap),
        cmocka_unit_test(test_v12_escapes),
        cmocka_unit_test(test_v12_html),
        cmocka_unit_test(test_v12_layout),
        cmocka_unit_test(test_v3_markers),
        cmocka_unit_test(test_v3_errors),
        cmocka_unit_test(test_v3_bytes),
        cmocka_unit_test(test_huge),
        cmocka_unit_test(test_error_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
