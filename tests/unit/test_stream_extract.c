/* test_stream_extract.c: the streaming record extractor: which templates
 * stream, records and keys in document order, limits, and equivalence with
 * the buffered path (pf_extract_records) on the JSONPath compliance suite's
 * queries of the streaming shapes, on generated SIEM-like responses fed in
 * random chunk sizes, and on malformed, truncated and deeply nested bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "engine/stream_extract.h"
#include "flow/template.h"
#include "unit_template.h"
#include "util/buf.h"

/* ---- templates built in memory ----------------------------------------- */

static pf_template *one_stream(const char *path, const char *key)
{
    return unit_template1(path, key);
}

static pf_template *siem_template(void)
{
    pf_template *t = NULL;
    pf_diags d = {0};
    pf_status st = pf_template_load_file(PPFLOW_SOURCE_DIR "/templates/tap-siem-all.yaml", &t, &d);
    pf_diags_free(&d);
    assert_int_equal(st, PF_OK);
    return t;
}

/* ---- collecting records ------------------------------------------------- */

typedef struct rec {
    size_t stream;
    int has_key;
    char *key;
    size_t key_len;
    char *json;
    size_t json_len;
} rec;

typedef struct recs {
    const pf_template *t;
    rec *v;
    size_t n, cap;
    size_t stop_after; /* 0: never; else fail the callback at this record */
} recs;

static void recs_free(recs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].key);
        free(r->v[i].json);
    }
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

static char *memdup0(const char *p, size_t n)
{
    char *c = malloc(n + 1);
    assert_non_null(c);
    if (n) memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

static void recs_add(recs *r, const pf_sink_record *sr)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        assert_non_null(r->v);
    }
    rec *x = &r->v[r->n++];
    x->stream = SIZE_MAX;
    for (size_t s = 0; s < r->t->nstreams; s++)
        if (sr->stream == r->t->streams[s].name) x->stream = s;
    assert_true(x->stream != SIZE_MAX);
    x->has_key = sr->key != NULL;
    x->key = sr->key ? memdup0(sr->key, sr->key_len) : NULL;
    x->key_len = sr->key ? sr->key_len : 0;
    x->json = memdup0(sr->json, sr->json_len);
    x->json_len = sr->json_len;
}

static pf_status collect(void *ud, const pf_sink_record *sr, pf_error *err)
{
    recs *r = ud;
    recs_add(r, sr);
    if (r->stop_after && r->n == r->stop_after)
        return pf_error_set(err, PF_ESINK, "sink refused record %zu", r->n);
    return PF_OK;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random chunk sizes: mostly small, sometimes single bytes, sometimes large. */
static size_t chunk_size(uint64_t *rng)
{
    switch (next_rand(rng) % 4) {
    case 0:
        return 1;
    case 1:
        return 1 + next_rand(rng) % 7;
    case 2:
        return 1 + next_rand(rng) % 300;
    default:
        return 1 + next_rand(rng) % 20000;
    }
}

/* Streams DOC through a pf_sx in random chunks. */
static pf_status run_stream(const pf_template *t, const char *doc, size_t len, uint64_t *rng,
                            size_t max_record, recs *out, pf_error *err)
{
    out->t = t;
    pf_sx *sx = pf_sx_new(t, max_record, 0, collect, out, err);
    assert_non_null(sx);
    pf_status st = PF_OK;
    for (size_t pos = 0; pos < len && st == PF_OK;) {
        size_t n = rng ? chunk_size(rng) : len;
        if (n > len - pos) n = len - pos;
        st = pf_sx_feed(sx, doc + pos, n, err);
        pos += n;
    }
    if (st == PF_OK) st = pf_sx_finish(sx, err);
    pf_sx_free(sx);
    return st;
}

static pf_status run_buffered(const pf_template *t, const char *doc, size_t len, recs *out,
                              pf_error *err)
{
    out->t = t;
    pf_records r = {0};
    pf_status st = pf_extract_records(t, doc, len, &r, err);
    for (size_t i = 0; i < r.count; i++)
        recs_add(out, &r.recs[i]);
    pf_records_free(&r);
    return st;
}

/* json-c's compact text for JSON text J (the buffered path's form). */
static char *canonical(const char *j, size_t n)
{
    json_tokener *tok = json_tokener_new_ex(2000);
    assert_non_null(tok);
    json_object *o = json_tokener_parse_ex(tok, j, (int)n);
    if (json_tokener_get_error(tok) == json_tokener_continue)
        o = json_tokener_parse_ex(tok, " ", 1);
    if (json_tokener_get_error(tok) != json_tokener_success)
        fail_msg("record is not JSON: %.*s", (int)n, j);
    json_tokener_free(tok);
    char *c = strdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    assert_non_null(c);
    json_object_put(o);
    return c;
}

static int rec_cmp(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    size_t n = x->json_len < y->json_len ? x->json_len : y->json_len;
    int c = memcmp(x->json, y->json, n);
    if (c) return c;
    if (x->json_len != y->json_len) return x->json_len < y->json_len ? -1 : 1;
    if (x->has_key != y->has_key) return x->has_key - y->has_key;
    n = x->key_len < y->key_len ? x->key_len : y->key_len;
    c = n ? memcmp(x->key, y->key, n) : 0;
    return c ? c : (int)x->key_len - (int)y->key_len;
}

/* The records of stream S in R, in order (sorted when SORTED). */
static rec *of_stream(const recs *r, size_t s, size_t *n, int sorted)
{
    rec *v = calloc(r->n + 1, sizeof *v);
    assert_non_null(v);
    *n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].stream == s) v[(*n)++] = r->v[i];
    if (sorted) qsort(v, *n, sizeof *v, rec_cmp);
    return v;
}

/* Asserts FAST (streaming) and SLOW (buffered) hold the same records per
 * stream: same count, keys byte for byte, and JSON byte for byte when EXACT,
 * else the same after json-c canonicalisation (string escapes are the one
 * thing json-c rewrites). Returns how many JSON texts were byte-identical. */
static size_t assert_equivalent(const pf_template *t, const recs *fast, const recs *slow, int exact,
                                const char *what)
{
    size_t identical = 0;
    if (fast->n != slow->n)
        fail_msg("%s: %zu records streamed, %zu buffered", what, fast->n, slow->n);
    for (size_t s = 0; s < t->nstreams; s++) {
        pf_jp_shape sh;
        int is_union = pf_jsonpath_simple_shape(t->streams[s].path, &sh) && sh.nunion > 0;
        size_t nf, ns;
        rec *f = of_stream(fast, s, &nf, is_union);
        rec *w = of_stream(slow, s, &ns, is_union);
        if (nf != ns) fail_msg("%s: stream %zu: %zu vs %zu records", what, s, nf, ns);
        for (size_t i = 0; i < nf; i++) {
            if (f[i].has_key != w[i].has_key || f[i].key_len != w[i].key_len ||
                (f[i].key_len && memcmp(f[i].key, w[i].key, f[i].key_len) != 0))
                fail_msg("%s: stream %zu record %zu: key '%s' vs '%s' (%s)", what, s, i,
                         f[i].has_key ? f[i].key : "(none)", w[i].has_key ? w[i].key : "(none)",
                         f[i].json);
            if (f[i].json_len == w[i].json_len &&
                memcmp(f[i].json, w[i].json, f[i].json_len) == 0) {
                identical++;
                continue;
            }
            if (exact)
                fail_msg("%s: stream %zu record %zu:\n  streamed %s\n  buffered %s", what, s, i,
                         f[i].json, w[i].json);
            char *cf = canonical(f[i].json, f[i].json_len);
            char *cw = canonical(w[i].json, w[i].json_len);
            if (strcmp(cf, cw) != 0)
                fail_msg("%s: stream %zu record %zu differs:\n  streamed %s\n  buffered %s", what,
                         s, i, f[i].json, w[i].json);
            free(cf);
            free(cw);
        }
        free(f);
        free(w);
    }
    return identical;
}

/* Both paths on DOC: the same records, or both an error with the same code,
 * offset and message. Returns the status. */
static pf_status check_both(const pf_template *t, const char *doc, size_t len, uint64_t *rng,
                            int exact, const char *what)
{
    recs fast = {0}, slow = {0};
    pf_error ef, es;
    pf_status sf = run_stream(t, doc, len, rng, 0, &fast, &ef);
    pf_status ss = run_buffered(t, doc, len, &slow, &es);
    if (sf != ss)
        fail_msg("%s: streamed %d (%s), buffered %d (%s)", what, sf, sf ? ef.msg : "", ss,
                 ss ? es.msg : "");
    if (sf == PF_OK) {
        assert_equivalent(t, &fast, &slow, exact, what);
    } else if (ef.offset != es.offset || strcmp(ef.msg, es.msg) != 0) {
        fail_msg("%s: errors differ:\n  streamed %s at %ld\n  buffered %s at %ld", what, ef.msg,
                 ef.offset, es.msg, es.offset);
    }
    recs_free(&fast);
    recs_free(&slow);
    return sf;
}

/* ---- which templates stream -------------------------------------------- */

static pf_status ignore(void *ud, const pf_sink_record *r, pf_error *err)
{
    (void)ud;
    (void)r;
    (void)err;
    return PF_OK;
}

static int streams(size_t n, const char *const *paths, const char *const *keys, char *why,
                   size_t whylen)
{
    pf_template *t = unit_template(n, paths, keys);
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, ignore, NULL, &e);
    assert_non_null(sx);
    int r = pf_sx_is_streaming(sx);
    snprintf(why, whylen, "%s", pf_sx_buffered_reason(sx));
    pf_sx_free(sx);
    pf_template_free(t);
    return r;
}

static void test_which_templates_stream(void **state)
{
    (void)state;
    char why[256];
    /* The bundled SIEM template streams. */
    pf_template *t = siem_template();
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, ignore, NULL, &e);
    assert_non_null(sx);
    assert_int_equal(pf_sx_is_streaming(sx), 1);
    assert_string_equal(pf_sx_buffered_reason(sx), "");
    pf_sx_free(sx);
    pf_template_free(t);

    static const char *const yes[] = {"$.a[*]",        "$.a.b[*]",    "$[*]", "$['a'][*]",
                                      "$.a.*",         "$",           "$.a",  "$.a.b",
                                      "$['x','y'][*]", "$.a['x','x']"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!streams(1, &yes[i], NULL, why, sizeof why)) fail_msg("%s: %s", yes[i], why);
    const char *k = "$.GUID";
    assert_true(streams(1, yes, &k, why, sizeof why));
    k = "$['id']";
    assert_true(streams(1, yes, &k, why, sizeof why));

    static const char *const no[] = {"$..a", "$.a[0]", "$.a[?@.x]", "$.a[*].b", "$.a[1:]"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (streams(1, &no[i], NULL, why, sizeof why)) fail_msg("%s streams", no[i]);
        assert_non_null(strstr(why, "is not of the form"));
    }
    k = "$";
    assert_true(streams(1, yes, &k, why, sizeof why));
    static const char *const bad_keys[] = {"$.a.b", "$[0]", "$..id", "$['a','b']", "$.*"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        if (streams(1, yes, &bad_keys[i], why, sizeof why)) fail_msg("key %s streams", bad_keys[i]);
        assert_non_null(strstr(why, "key"));
    }
    /* One record inside another: buffered. */
    static const char *const nest1[] = {"$.a", "$.a.b[*]"};
    assert_false(streams(2, nest1, NULL, why, sizeof why));
    assert_non_null(strstr(why, "would contain records of stream s1"));
    static const char *const nest2[] = {"$[*]", "$.a[*]"};
    assert_false(streams(2, nest2, NULL, why, sizeof why));
    static const char *const nest3[] = {"$", "$.a"};
    assert_false(streams(2, nest3, NULL, why, sizeof why));
    /* Siblings and the same path twice are fine. */
    static const char *const ok2[] = {"$.a[*]", "$.a.b"};
    assert_true(streams(2, ok2, NULL, why, sizeof why));
    static const char *const ok3[] = {"$.a[*]", "$.a[*]", "$.b.c[*]"};
    assert_true(streams(3, ok3, NULL, why, sizeof why));
    /* Bad arguments. */
    assert_null(pf_sx_new(NULL, 0, 0, ignore, NULL, &e));
    assert_int_equal(e.code, PF_EINVAL);
    pf_sx_free(NULL);
}

/* ---- records in document order ----------------------------------------- */

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

static void assert_rec(const rec *r, const pf_template *t, const char *stream, const char *key,
                       const char *json)
{
    assert_string_equal(t->streams[r->stream].name, stream);
    if (key) {
        assert_true(r->has_key);
        assert_int_equal(r->key_len, strlen(key));
        assert_memory_equal(r->key, key, r->key_len);
    } else {
        assert_false(r->has_key);
    }
    if (r->json_len != strlen(json) || memcmp(r->json, json, r->json_len) != 0)
        fail_msg("record %s, want %s", r->json, json);
}

static void test_siem_records_in_document_order(void **state)
{
    (void)state;
    pf_template *t = siem_template();
    for (size_t chunk = 1; chunk <= sizeof siem_body; chunk = chunk * 2 + 1) {
        recs r = {0};
        r.t = t;
        pf_error e;
        pf_sx *sx = pf_sx_new(t, 0, 0, collect, &r, &e);
        assert_non_null(sx);
        size_t len = strlen(siem_body);
        for (size_t pos = 0; pos < len; pos += chunk)
            assert_int_equal(
                pf_sx_feed(sx, siem_body + pos, chunk < len - pos ? chunk : len - pos, &e), PF_OK);
        assert_int_equal(pf_sx_finish(sx, &e), PF_OK);
        pf_sx_stats stats;
        pf_sx_get_stats(sx, &stats);
        assert_int_equal(stats.bytes, len);
        assert_int_equal(stats.records, 6);
        assert_int_equal(stats.missing_keys, 0);
        pf_sx_free(sx);
        assert_int_equal(r.n, 6);
        /* Document order; bytes as sent minus whitespace (\u00e9 and \/ stay). */
        assert_rec(&r.v[0], t, "clicks_permitted", "c-1",
                   "{\"id\":\"c-1\",\"url\":\"http://x.example/a\",\"GUID\":\"g-click\"}");
        assert_rec(&r.v[1], t, "messages_delivered", "g-1",
                   "{\"subject\":\"one\",\"id\":\"g-1\",\"zeta\":1,\"alpha\":[1,2]}");
        assert_rec(&r.v[2], t, "messages_delivered", "g-2",
                   "{\"id\":\"g-2\",\"subject\":\"two \\u00e9\\/x\",\"nested\":{\"b\":1,\"a\":2}}");
        assert_rec(&r.v[3], t, "messages_blocked", "g-3", "{\"id\":\"g-3\",\"threatsInfoMap\":[]}");
        assert_rec(&r.v[4], t, "clicks_blocked", "c-2", "{\"id\":\"c-2\"}");
        assert_rec(&r.v[5], t, "clicks_blocked", "c-3",
                   "{\"id\":\"c-3\",\"classification\":\"phish\"}");
        recs_free(&r);
    }
    pf_template_free(t);
}

/* Records are handed over as soon as their last byte arrives. */
static void test_records_arrive_as_they_close(void **state)
{
    (void)state;
    pf_template *t = one_stream("$.a[*]", "$.k");
    recs r = {0};
    r.t = t;
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, collect, &r, &e);
    assert_non_null(sx);
    assert_int_equal(pf_sx_feed(sx, "{\"a\": [{\"k\": 1}, {\"k\"", 21, &e), PF_OK);
    assert_int_equal(r.n, 1);
    assert_rec(&r.v[0], t, "s0", "1", "{\"k\":1}");
    assert_int_equal(pf_sx_feed(sx, ": \"two\"}", 8, &e), PF_OK);
    assert_int_equal(r.n, 2);
    assert_rec(&r.v[1], t, "s0", "two", "{\"k\":\"two\"}");
    /* ...but the body must still be complete for the response to count. */
    assert_int_equal(pf_sx_finish(sx, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "truncated"));
    pf_sx_free(sx);
    recs_free(&r);
    pf_template_free(t);
}

static void test_keys(void **state)
{
    (void)state;
    pf_template *t = one_stream("$[*]", "$.id");
    recs r = {0};
    pf_error e;
    static const char body[] =
        "[{\"id\": \"plain\"},"
        " {\"id\": \"esc \\\"q\\\" \\u00e9 \\ud83d\\ude00 \\/ \\u0000.\"},"
        " {\"\\u0069d\": \"escaped name\"},"
        " {\"id\": 12345678901234567890123}, {\"id\": -0}, {\"id\": 1.5e3},"
        " {\"id\": true}, {\"id\": null}, {\"id\": {\"x\": 1}}, {\"id\": [1]},"
        " {\"id\": \"first\", \"id\": \"last\"}, {\"id\": \"x\", \"id\": null},"
        " {\"other\": {\"id\": \"deep\"}}, [\"id\"], \"id\", 7]";
    assert_int_equal(run_stream(t, body, strlen(body), NULL, 0, &r, &e), PF_OK);
    assert_int_equal(r.n, 16);
    assert_rec(&r.v[0], t, "s0", "plain", "{\"id\":\"plain\"}");
    /* A string key is its value: escapes decoded, NUL kept. */
    static const char dec[] = "esc \"q\" \xc3\xa9 \xf0\x9f\x98\x80 / \0.";
    assert_int_equal(r.v[1].key_len, sizeof dec - 1);
    assert_memory_equal(r.v[1].key, dec, sizeof dec - 1);
    assert_rec(&r.v[2], t, "s0", "escaped name", "{\"\\u0069d\":\"escaped name\"}");
    /* A number key is its text as sent. */
    assert_rec(&r.v[3], t, "s0", "12345678901234567890123", "{\"id\":12345678901234567890123}");
    assert_rec(&r.v[4], t, "s0", "-0", "{\"id\":-0}");
    assert_rec(&r.v[5], t, "s0", "1.5e3", "{\"id\":1.5e3}");
    /* Anything else: no key. */
    for (size_t i = 6; i <= 9; i++)
        assert_false(r.v[i].has_key);
    /* The last occurrence wins. */
    assert_rec(&r.v[10], t, "s0", "last", "{\"id\":\"first\",\"id\":\"last\"}");
    assert_false(r.v[11].has_key);
    assert_false(r.v[12].has_key);
    assert_rec(&r.v[13], t, "s0", NULL, "[\"id\"]");
    assert_rec(&r.v[14], t, "s0", NULL, "\"id\"");
    assert_rec(&r.v[15], t, "s0", NULL, "7");
    recs_free(&r);
    /* The buffered path agrees on every key. */
    assert_int_equal(check_both(t, body, strlen(body), NULL, 0, "keys"), PF_OK);
    pf_template_free(t);

    /* Key $: a string or number record is its own key. */
    t = one_stream("$.urls[*]", "$");
    static const char urls[] = "{\"urls\": [\"/a\\/b \\u00e9\", 12.50, true, {\"x\": 1}, [\"y\"]]}";
    assert_int_equal(run_stream(t, urls, strlen(urls), NULL, 0, &r, &e), PF_OK);
    assert_int_equal(r.n, 5);
    assert_rec(&r.v[0], t, "s0", "/a/b \xc3\xa9", "\"/a\\/b \\u00e9\"");
    assert_rec(&r.v[1], t, "s0", "12.50", "12.50");
    for (size_t i = 2; i < 5; i++)
        assert_false(r.v[i].has_key);
    recs_free(&r);
    assert_int_equal(check_both(t, urls, strlen(urls), NULL, 0, "key $"), PF_OK);
    pf_template_free(t);
}

static void test_minified_bytes_are_exact(void **state)
{
    (void)state;
    pf_template *t = one_stream("$.r[*]", "$.GUID");
    static const char body[] =
        "{ \"r\" : [ { \"GUID\" : \"a  b\" ,\n\t\"big\" : "
        "123456789012345678901234567890 , \"neg\" : -0 , \"f\" : [ 1E5 ,"
        " 2.50 , -1e-7 ] , \"s\" : \" lead and trail \" , \"e\" : "
        "\"\\u00e9\\/\\t\" , \"u\" : \"caf\xc3\xa9\" } , 123456789012345678901234567890 ] }";
    recs r = {0};
    pf_error e;
    uint64_t rng = 7;
    for (int round = 0; round < 20; round++) {
        assert_int_equal(run_stream(t, body, strlen(body), &rng, 0, &r, &e), PF_OK);
        assert_int_equal(r.n, 2);
        assert_rec(
            &r.v[0], t, "s0", "a  b",
            "{\"GUID\":\"a  b\",\"big\":123456789012345678901234567890,\"neg\":-0,\"f\":[1E5,"
            "2.50,-1e-7],\"s\":\" lead and trail "
            "\",\"e\":\"\\u00e9\\/\\t\",\"u\":\"caf\xc3\xa9\"}");
        assert_rec(&r.v[1], t, "s0", NULL, "123456789012345678901234567890");
        recs_free(&r);
    }
    /* The buffered path keeps the numbers too (only the escapes differ). */
    recs slow = {0};
    assert_int_equal(run_buffered(t, body, strlen(body), &slow, &e), PF_OK);
    assert_rec(
        &slow.v[0], t, "s0", "a  b",
        "{\"GUID\":\"a  b\",\"big\":123456789012345678901234567890,\"neg\":-0,\"f\":[1E5,"
        "2.50,-1e-7],\"s\":\" lead and trail \",\"e\":\"\xc3\xa9/\\t\",\"u\":\"caf\xc3\xa9\"}");
    assert_rec(&slow.v[1], t, "s0", NULL, "123456789012345678901234567890");
    recs_free(&slow);
    pf_template_free(t);
}

static void test_record_limit(void **state)
{
    (void)state;
    pf_template *t = siem_template();
    /* {"GUID":"g-1","pad":"xxxxxxxxxx"} is 33 bytes minified. */
    static const char body[] =
        "{\"queryEndTime\": \"2026-11-22T01:00:00Z\", \"messagesDelivered\": "
        "[ {\"GUID\": \"g-0\"}, { \"GUID\" : \"g-1\" , \"pad\" : \"xxxxxxxxxx\" } ]}";
    recs r = {0};
    pf_error e;
    uint64_t rng = 99;
    assert_int_equal(run_stream(t, body, strlen(body), &rng, 33, &r, &e), PF_OK);
    assert_int_equal(r.n, 2);
    recs_free(&r);
    for (int round = 0; round < 10; round++) {
        assert_int_equal(run_stream(t, body, strlen(body), &rng, 32, &r, &e), PF_ETOOBIG);
        assert_int_equal(e.code, PF_ETOOBIG);
        assert_int_equal(e.offset, 81);
        /* The offset once, where pf_error_format puts it. */
        char shown[PF_ERROR_MSG_MAX + 64];
        pf_error_format(&e, shown, sizeof shown);
        assert_string_equal(shown, "record of stream messages_delivered is larger than the "
                                   "record limit (32 bytes, source.http.max_record), the record "
                                   "starting at offset 81");
        assert_int_equal(r.n, 1); /* the record before it was delivered */
        recs_free(&r);
    }
    /* Scalar records count too. */
    pf_template *s = one_stream("$[*]", NULL);
    assert_int_equal(run_stream(s, "[\"abcd\", 12345]", 15, NULL, 6, &r, &e), PF_OK);
    recs_free(&r);
    assert_int_equal(run_stream(s, "[\"abcde\"]", 9, NULL, 6, &r, &e), PF_ETOOBIG);
    assert_int_equal(e.offset, 1);
    recs_free(&r);
    assert_int_equal(run_stream(s, "[1234567]", 9, NULL, 6, &r, &e), PF_ETOOBIG);
    recs_free(&r);
    pf_template_free(s);
    pf_template_free(t);
}

static void test_buffered_mode(void **state)
{
    (void)state;
    static const char *const paths[] = {"$..GUID", "$.m[*]"};
    static const char *const keys[] = {NULL, "$.GUID"};
    pf_template *t = unit_template(2, paths, keys);
    static const char body[] = "{\"m\": [{\"GUID\": \"a\"}, {\"x\": {\"GUID\": \"b\"}}]}";
    recs r = {0};
    r.t = t;
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, collect, &r, &e);
    assert_non_null(sx);
    assert_int_equal(pf_sx_is_streaming(sx), 0);
    assert_non_null(strstr(pf_sx_buffered_reason(sx), "stream s0: path $..GUID"));
    for (size_t i = 0; i < strlen(body); i++)
        assert_int_equal(pf_sx_feed(sx, body + i, 1, &e), PF_OK);
    assert_int_equal(r.n, 0); /* nothing before the end */
    assert_int_equal(pf_sx_finish(sx, &e), PF_OK);
    assert_int_equal(r.n, 4);
    assert_rec(&r.v[0], t, "s0", NULL, "\"a\"");
    assert_rec(&r.v[1], t, "s0", NULL, "\"b\"");
    assert_rec(&r.v[2], t, "s1", "a", "{\"GUID\":\"a\"}");
    assert_rec(&r.v[3], t, "s1", NULL, "{\"x\":{\"GUID\":\"b\"}}");
    pf_sx_stats stats;
    pf_sx_get_stats(sx, &stats);
    assert_int_equal(stats.records, 4);
    assert_int_equal(stats.missing_keys, 1);
    recs_free(&r);

    /* A body that is not JSON fails as it arrives, at its offset. */
    pf_sx_reset(sx);
    assert_int_equal(pf_sx_feed(sx, "{\"m\": [", 7, &e), PF_OK);
    assert_int_equal(pf_sx_feed(sx, "<html>", 6, &e), PF_EDATA);
    assert_int_equal(e.offset, 7);
    assert_int_equal(pf_sx_finish(sx, &e), PF_EDATA); /* sticky */
    pf_sx_free(sx);

    /* max_body. */
    sx = pf_sx_new(t, 0, 16, collect, &r, &e);
    assert_non_null(sx);
    assert_int_equal(pf_sx_feed(sx, "{\"m\": [1, 2, 3", 14, &e), PF_OK);
    assert_int_equal(pf_sx_feed(sx, ", 4]}", 5, &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "max_body (16 bytes)"));
    pf_sx_free(sx);
    assert_int_equal(r.n, 0);
    pf_template_free(t);
}

static void test_callback_can_stop(void **state)
{
    (void)state;
    pf_template *t = one_stream("$[*]", NULL);
    recs r = {0};
    r.t = t;
    r.stop_after = 2;
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, collect, &r, &e);
    assert_non_null(sx);
    assert_int_equal(pf_sx_feed(sx, "[1, 2, 3, 4]", 12, &e), PF_ESINK);
    assert_string_equal(e.msg, "sink refused record 2");
    assert_int_equal(r.n, 2);
    /* Sticky until reset. */
    assert_int_equal(pf_sx_feed(sx, "[5]", 3, &e), PF_ESINK);
    assert_int_equal(pf_sx_finish(sx, &e), PF_ESINK);
    assert_int_equal(r.n, 2);
    pf_sx_reset(sx);
    r.stop_after = 0;
    assert_int_equal(pf_sx_feed(sx, "[5, 6]", 6, &e), PF_OK);
    assert_int_equal(pf_sx_finish(sx, &e), PF_OK);
    assert_int_equal(r.n, 4);
    assert_rec(&r.v[3], t, "s0", NULL, "6");
    pf_sx_stats stats;
    pf_sx_get_stats(sx, &stats);
    assert_int_equal(stats.records, 2);
    assert_int_equal(stats.bytes, 6);
    /* Finished means finished. */
    assert_int_equal(pf_sx_feed(sx, "x", 1, &e), PF_EINVAL);
    pf_sx_free(sx);
    recs_free(&r);
    pf_template_free(t);
}

static void test_empty_bodies(void **state)
{
    (void)state;
    pf_template *t = siem_template();
    static const char *const bodies[] = {"", " ", "\r\n\t \n"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        recs r = {0};
        pf_error e;
        assert_int_equal(run_stream(t, bodies[i], strlen(bodies[i]), NULL, 0, &r, &e), PF_OK);
        assert_int_equal(r.n, 0);
        assert_int_equal(check_both(t, bodies[i], strlen(bodies[i]), NULL, 1, "empty"), PF_OK);
    }
    /* A feed of nothing at all, then finish. */
    recs r = {0};
    r.t = t;
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, collect, &r, &e);
    assert_int_equal(pf_sx_feed(sx, NULL, 0, &e), PF_OK);
    assert_int_equal(pf_sx_finish(sx, &e), PF_OK);
    assert_int_equal(r.n, 0);
    pf_sx_free(sx);
    pf_template_free(t);
}

static void test_shapes(void **state)
{
    (void)state;
    /* Scalars, wildcards over objects, unions, plain members, a value that
     * is a record of two streams, nested path objects. */
    static const struct {
        const char *path, *key;
    } cases[] = {
        {"$[*]", NULL},
        {"$.a[*]", "$.k"},
        {"$.a.*", NULL},
        {"$['a'][*]", "$['k']"},
        {"$.a.b[*]", "$.k"},
        {"$.a", NULL},
        {"$", NULL},
        {"$['a','b'][*]", "$.k"},
        {"$['b','a']", NULL},
        {"$.b.c", NULL},
        {"$.a['c','c'][*]", NULL},
        {"$[*]", "$"},
        {"$.a[*]", "$"},
        {"$.b.c[*]", "$"},
    };
    static const char *const docs[] = {
        "[1, \"two\", null, true, false, {\"k\": 3}, [4], -5.5e-1]",
        ("{\"a\": [{\"k\": \"x\", \"b\": 1}, 2, {\"k\": 3}], \"b\": {\"c\": [5, {\"k\": 6}], "
         "\"k\": 7}}"),
        "{\"a\": {\"k\": 1, \"b\": [{\"k\": \"in\"}], \"c\": [8, 9]}, \"b\": [{\"k\": \"b\"}]}",
        "{\"b\": [{\"k\": \"b-first\"}], \"a\": [{\"k\": \"a-second\"}]}",
        "{\"a\": \"scalar\", \"b\": 12}",
        "{\"a\": null}",
        "{}",
        "[]",
        "\"top\"",
        "42",
        "{\"a\": {}, \"b\": {\"c\": {}}}",
        "{\"x\": {\"a\": [1]}, \"a\": [{\"k\": {\"deep\": [1, 2]}}, {\"k\": [\"no\"]}]}",
    };
    uint64_t rng = 12345;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pf_template *t = one_stream(cases[c].path, cases[c].key);
        for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
            char what[128];
            snprintf(what, sizeof what, "%s on doc %zu", cases[c].path, d);
            for (int round = 0; round < 3; round++)
                assert_int_equal(check_both(t, docs[d], strlen(docs[d]), &rng, 1, what), PF_OK);
        }
        pf_template_free(t);
    }
    /* Several streams at once, including the same value for two streams. */
    static const char *const paths[] = {"$.a[*]", "$['a'][*]", "$.b.c[*]", "$.a[*]", "$.b.k"};
    static const char *const keys[] = {"$.k", NULL, "$.k", "$.z", NULL};
    pf_template *t = unit_template(5, paths, keys);
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        char what[64];
        snprintf(what, sizeof what, "five streams on doc %zu", d);
        assert_int_equal(check_both(t, docs[d], strlen(docs[d]), &rng, 1, what), PF_OK);
    }
    /* The same value is delivered once per stream, in template order. */
    recs r = {0};
    pf_error e;
    assert_int_equal(run_stream(t, "{\"a\": [{\"k\": 1, \"z\": 2}]}", 25, NULL, 0, &r, &e), PF_OK);
    assert_int_equal(r.n, 3);
    assert_rec(&r.v[0], t, "s0", "1", "{\"k\":1,\"z\":2}");
    assert_rec(&r.v[1], t, "s1", NULL, "{\"k\":1,\"z\":2}");
    assert_rec(&r.v[2], t, "s3", "2", "{\"k\":1,\"z\":2}");
    recs_free(&r);
    pf_template_free(t);
}

static void test_repeated_names(void **state)
{
    (void)state;
    pf_template *t = siem_template();
    static const struct {
        const char *body;
        long offset; /* -1: valid */
    } cases[] = {
        {"{\"messagesDelivered\": [], \"messagesDelivered\": []}", 26},
        {"{\"queryEndTime\": 1, \"queryEndTime\": 2}", 20},
        {"{\"a\": 1, \"\\u0061\": 2}", 9},
        /* Inside records and off the paths, repeated names are passed on. */
        {"{\"messagesDelivered\": [{\"GUID\": \"a\", \"GUID\": \"b\"}]}", -1},
        {"{\"x\": {\"y\": 1, \"y\": 2}}", -1},
        {"{\"messagesDelivered\": [{\"x\": {\"y\": 1, \"y\": 2}, \"GUID\": \"g\"}]}", -1},
    };
    uint64_t rng = 5;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *b = cases[i].body;
        pf_status st = check_both(t, b, strlen(b), &rng, 0, b);
        recs r = {0};
        pf_error e;
        assert_int_equal(run_stream(t, b, strlen(b), &rng, 0, &r, &e), st);
        if (cases[i].offset < 0) {
            assert_int_equal(st, PF_OK);
        } else {
            assert_int_equal(st, PF_EDATA);
            assert_int_equal(e.offset, cases[i].offset);
            assert_non_null(strstr(e.msg, "appears twice"));
        }
        recs_free(&r);
    }
    /* The message shows the name safely: control characters as '?', long
     * names cut at a character boundary. */
    recs r = {0};
    pf_error e;
    static const char ctl[] = "{\"a\\nb\": 1, \"a\\u000ab\": 2}";
    assert_int_equal(run_stream(t, ctl, strlen(ctl), NULL, 0, &r, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "member name \"a?b\" appears twice"));
    char longdoc[512];
    char name[200];
    for (size_t i = 0; i < 100; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* 100 two-byte characters */
    name[200 - 1] = '\0';
    snprintf(longdoc, sizeof longdoc, "{\"%.*s\": 1, \"%.*s\": 2}", 198, name, 198, name);
    assert_int_equal(run_stream(t, longdoc, strlen(longdoc), NULL, 0, &r, &e), PF_EDATA);
    const char *q = strstr(e.msg, "member name \"");
    assert_non_null(q);
    q += strlen("member name \"");
    const char *end = strstr(q, "...\" appears twice");
    assert_non_null(end);
    assert_int_equal((end - q) % 2, 0); /* whole characters only */
    assert_true(end - q >= 70 && end - q <= 76);
    recs_free(&r);

    /* A name holding U+0000 counts up to it, as json-c sees it: for the
     * key and for repeated names. */
    pf_template *k = one_stream("$.a[*]", "$.GUID");
    static const char nul_key[] = "{\"a\": [{\"GUID\": \"b\", \"GUID\\u0000x\": \"a\"}]}";
    assert_int_equal(check_both(k, nul_key, strlen(nul_key), NULL, 0, "nul key"), PF_OK);
    assert_int_equal(run_stream(k, nul_key, strlen(nul_key), NULL, 0, &r, &e), PF_OK);
    assert_rec(&r.v[0], k, "s0", "a", "{\"GUID\":\"b\",\"GUID\\u0000x\":\"a\"}");
    recs_free(&r);
    static const char nul_path[] = "{\"a\": [1], \"a\\u0000x\": [2]}";
    assert_int_equal(check_both(k, nul_path, strlen(nul_path), NULL, 0, "nul path"), PF_EDATA);
    pf_template_free(k);

    /* A wildcard over an object: its member names are checked too. */
    pf_template *w = one_stream("$.a[*]", NULL);
    assert_int_equal(check_both(w, "{\"a\": {\"x\": 1, \"y\": 2, \"x\": 3}}", 31, &rng, 1, "dup"),
                     PF_EDATA);
    pf_template_free(w);
    pf_template_free(t);
}

/* ---- the buffered path refuses any repeated member name ---------------- */

/* pf_extract_records (and a buffered pf_sx fed in CHUNK-byte pieces) on
 * BODY with template T: PF_OK, or the error, whose formatted text is put in
 * SHOWN. Both must agree; OUT gets the records of pf_extract_records. */
static pf_status buffered_both(const pf_template *t, const char *body, size_t len, size_t chunk,
                               recs *out, pf_error *e, char *shown, size_t n)
{
    pf_status st = run_buffered(t, body, len, out, e);
    if (st != PF_OK) pf_error_format(e, shown, n);
    recs viasx = {0};
    viasx.t = t;
    pf_error e2;
    pf_sx *sx = pf_sx_new(t, 0, 0, collect, &viasx, &e2);
    assert_non_null(sx);
    assert_int_equal(pf_sx_is_streaming(sx), 0);
    pf_status st2 = PF_OK;
    for (size_t pos = 0; pos < len && st2 == PF_OK; pos += chunk)
        st2 = pf_sx_feed(sx, body + pos, len - pos < chunk ? len - pos : chunk, &e2);
    if (st2 == PF_OK) st2 = pf_sx_finish(sx, &e2);
    pf_sx_free(sx);
    assert_int_equal(st2, st);
    if (st != PF_OK) {
        assert_int_equal(e2.offset, e->offset);
        assert_string_equal(e2.msg, e->msg);
        assert_int_equal(viasx.n, 0); /* nothing delivered from a refused body */
    } else {
        assert_int_equal(viasx.n, out->n);
    }
    recs_free(&viasx);
    return st;
}

/* Asserts BODY is refused for a repeated NAME (as shown) whose second
 * occurrence starts at OFFSET. */
static void assert_repeated(const pf_template *t, const char *body, size_t len, const char *name,
                            long offset)
{
    recs r = {0};
    pf_error e;
    char shown[PF_ERROR_MSG_MAX + 64];
    pf_status st = buffered_both(t, body, len, 7, &r, &e, shown, sizeof shown);
    if (st != PF_EDATA) fail_msg("accepted (%d): %.200s", st, body);
    assert_int_equal(r.n, 0);
    assert_int_equal(e.offset, offset);
    char want[PF_ERROR_MSG_MAX + 64];
    snprintf(want, sizeof want,
             "member name \"%s\" appears twice in one object (ppflow refuses it rather than "
             "keep only one of the values), the second time at offset %ld",
             name, offset);
    assert_string_equal(shown, want);
    recs_free(&r);
}

static void test_buffered_refuses_repeated_names(void **state)
{
    (void)state;
    /* A record path that cannot stream: the buffered path. */
    pf_template *t = one_stream("$.messagesDelivered[?@.GUID]", "$.GUID");
    char shown[PF_ERROR_MSG_MAX + 64];
    recs r = {0};
    pf_error e;

    /* A stream's array given twice: json-c would keep only the second. */
    static const char twice[] = "{\"messagesDelivered\":[{\"GUID\":\"first-1\"}],\"queryEndTime\":"
                                "\"x\",\"messagesDelivered\":[{\"GUID\":\"second-1\"}]}";
    assert_repeated(t, twice, strlen(twice), "messagesDelivered", 61);

    /* Inside a record: json-c would change the record. */
    static const char in_rec[] = "{\"messagesDelivered\":[{\"GUID\":\"a\",\"n\":1},"
                                 "{\"GUID\":\"b\",\"n\":1,\"n\":2}]}";
    assert_repeated(t, in_rec, strlen(in_rec), "n", (long)(strrchr(in_rec, 'n') - in_rec - 1));
    static const char key_twice[] = "{\"messagesDelivered\":[{\"GUID\":\"a\",\"GUID\":\"b\"}]}";
    assert_repeated(t, key_twice, strlen(key_twice), "GUID", 34);

    /* Deep inside a record, and deep off any record path. */
    pf_buf b;
    pf_buf_init(&b, 0);
    assert_int_equal(pf_buf_puts(&b, "{\"messagesDelivered\":[{\"GUID\":\"d\",\"x\":"), PF_OK);
    for (int i = 0; i < 900; i++)
        assert_int_equal(pf_buf_puts(&b, i % 2 ? "[" : "{\"x\":"), PF_OK);
    assert_int_equal(pf_buf_puts(&b, "{\"y\":1,\"z\":2,\"y\":3}"), PF_OK);
    long deep_off = (long)b.len - 6; /* the second "y" */
    for (int i = 0; i < 900; i++)
        assert_int_equal(pf_buf_puts(&b, i % 2 ? "}" : "]"), PF_OK);
    assert_int_equal(pf_buf_puts(&b, "}]}"), PF_OK);
    assert_repeated(t, b.data, b.len, "y", deep_off);
    static const char off_path[] = "{\"messagesDelivered\":[],\"meta\":{\"a\":[[{\"b\":{\"c\":1,"
                                   "\"c\":2}}]]}}";
    assert_repeated(t, off_path, strlen(off_path), "c",
                    (long)(strrchr(off_path, 'c') - off_path - 1));

    /* Names are compared decoded, as RFC 8259 and json-c see them; a name
     * holding U+0000 as far as json-c keeps it. */
    static const struct {
        const char *body, *name; /* the repeat follows the last comma */
    } escaped[] = {
        {"{\"a\":1,\"\\u0061\":2}", "a"},
        {"{\"\\u0061\":1,\"a\":2}", "a"},
        {"{\"\\u00e9\":1,\"\xc3\xa9\":2}", "\xc3\xa9"},
        {"{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", "\xf0\x9f\x98\x80"},
        {"{\"a\\/b\":1,\"a/b\":2}", "a/b"},
        {"{\"a\\u0000x\":1,\"a\\u0000y\":2}", "a"},
        {"{\"n\":1,\"\\u006e\\u0000\":2}", "n"},
        {"[{\"q\":[{\"\\\"\":1,\"\\u0022\":2}]}]", "\""},
    };
    for (size_t i = 0; i < sizeof escaped / sizeof escaped[0]; i++)
        assert_repeated(t, escaped[i].body, strlen(escaped[i].body), escaped[i].name,
                        (long)(strrchr(escaped[i].body, ',') - escaped[i].body) + 1);

    /* The same name in sibling or nested objects is fine, and the records
     * are delivered as before. */
    static const char siblings[] =
        "{\"messagesDelivered\":[{\"GUID\":\"a\",\"n\":{\"n\":{\"n\":1}}},{\"GUID\":\"b\",\"n\":1}]"
        ","
        "\"x\":{\"n\":1,\"N\":2,\"n \":3,\"\\u006ex\":4},\"y\":[{\"n\":1},{\"n\":2}]}";
    assert_int_equal(buffered_both(t, siblings, strlen(siblings), 5, &r, &e, shown, sizeof shown),
                     PF_OK);
    assert_int_equal(r.n, 2);
    assert_rec(&r.v[0], t, "s0", "a", "{\"GUID\":\"a\",\"n\":{\"n\":{\"n\":1}}}");
    assert_rec(&r.v[1], t, "s0", "b", "{\"GUID\":\"b\",\"n\":1}");
    recs_free(&r);

    /* A big flat object: every distinct name is fine; one repeat, of the
     * first or of a middle name, is found at the end. Then sibling objects
     * at the same level reuse the table cleanly. */
    enum { NNAMES = 200000 };
    pf_buf_reset(&b);
    assert_int_equal(pf_buf_puts(&b, "{\"messagesDelivered\":[{\"GUID\":\"big\""), PF_OK);
    for (int i = 0; i < NNAMES; i++)
        assert_int_equal(pf_buf_printf(&b, i % 3 ? ",\"k%d\":%d" : ",\"\\u006b%d\":%d", i, i),
                         PF_OK);
    size_t open_len = b.len;
    assert_int_equal(pf_buf_puts(&b, "}]}"), PF_OK);
    assert_int_equal(buffered_both(t, b.data, b.len, 65536, &r, &e, shown, sizeof shown), PF_OK);
    assert_int_equal(r.n, 1);
    assert_true(r.v[0].json_len > (size_t)NNAMES * 6);
    recs_free(&r);
    static const char *const again[] = {"k0", "\\u006b99999", "k199999", "GUID"};
    static const char *const again_shown[] = {"k0", "k99999", "k199999", "GUID"};
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++) {
        b.len = open_len;
        long at = (long)b.len + 1;
        assert_int_equal(pf_buf_printf(&b, ",\"%s\":0}]}", again[i]), PF_OK);
        assert_repeated(t, b.data, b.len, again_shown[i], at);
    }
    /* Many big siblings, then a small one with a repeat. */
    pf_buf_reset(&b);
    assert_int_equal(pf_buf_puts(&b, "{\"messagesDelivered\":["), PF_OK);
    for (int o = 0; o < 50; o++) {
        assert_int_equal(pf_buf_printf(&b, "%s{\"GUID\":\"s%d\"", o ? "," : "", o), PF_OK);
        for (int i = 0; i < 40 + o * 20; i++)
            assert_int_equal(pf_buf_printf(&b, ",\"k%d\":%d", i, i), PF_OK);
        assert_int_equal(pf_buf_putc(&b, '}'), PF_OK);
    }
    open_len = b.len;
    assert_int_equal(pf_buf_puts(&b, "]}"), PF_OK);
    assert_int_equal(buffered_both(t, b.data, b.len, 4096, &r, &e, shown, sizeof shown), PF_OK);
    assert_int_equal(r.n, 50);
    recs_free(&r);
    for (int small = 1; small <= 12; small += 11) { /* under and over the linear search */
        b.len = open_len;
        assert_int_equal(pf_buf_puts(&b, ",{\"GUID\":\"t\""), PF_OK);
        for (int i = 0; i < small; i++)
            assert_int_equal(pf_buf_printf(&b, ",\"k%d\":0", i), PF_OK);
        long at = (long)b.len + 1;
        assert_int_equal(pf_buf_puts(&b, ",\"k0\":1}]}"), PF_OK);
        assert_repeated(t, b.data, b.len, "k0", at);
    }
    pf_buf_free(&b);

    /* JSON errors are the same as before, and come first when they come
     * first. */
    static const char bad[] = "{\"messagesDelivered\":[{\"GUID\":\"a\",\"n\":NaN,\"n\":1}]}";
    assert_int_equal(buffered_both(t, bad, strlen(bad), 3, &r, &e, shown, sizeof shown), PF_EDATA);
    assert_int_equal(e.offset, (long)(strstr(bad, "NaN") - bad));
    assert_null(strstr(e.msg, "appears twice"));
    assert_int_equal(buffered_both(t, "", 0, 1, &r, &e, shown, sizeof shown), PF_OK);
    assert_int_equal(r.n, 0);

    /* A template that streams keeps its rules on both paths: names are
     * checked only in the objects on its paths. */
    pf_template *s = siem_template();
    static const char in_rec_stream[] =
        "{\"messagesDelivered\":[{\"GUID\":\"a\",\"n\":1,\"n\":2}]}";
    assert_int_equal(check_both(s, in_rec_stream, strlen(in_rec_stream), NULL, 0, "stream"), PF_OK);
    assert_int_equal(check_both(s, twice, strlen(twice), NULL, 0, "stream twice"), PF_EDATA);
    pf_template_free(s);
    pf_template_free(t);
}

/* ---- equivalence on the compliance suite ------------------------------- */

static void test_equivalence_on_compliance_queries(void **state)
{
    (void)state;
    json_object *suite = json_object_from_file(PPFLOW_SOURCE_DIR "/tests/jsonpath/cts/cts.json");
    assert_non_null(suite);
    json_object *tests = json_object_object_get(suite, "tests");
    size_t used = 0, records = 0, identical = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < json_object_array_length(tests); i++) {
        json_object *c = json_object_array_get_idx(tests, i);
        json_object *sel, *doc, *inv;
        if (json_object_object_get_ex(c, "invalid_selector", &inv) && json_object_get_boolean(inv))
            continue;
        if (!json_object_object_get_ex(c, "selector", &sel) ||
            !json_object_object_get_ex(c, "document", &doc))
            continue;
        const char *q = json_object_get_string(sel);
        pf_jsonpath *jp = NULL;
        if (pf_jsonpath_compile(q, (size_t)json_object_get_string_len(sel), &jp, NULL) != PF_OK)
            continue;
        pf_jp_shape sh;
        int simple = pf_jsonpath_simple_shape(jp, &sh);
        pf_jsonpath_free(jp);
        if (!simple) continue;
        /* The document as text, with whitespace to remove; json-c's escapes,
         * so that the buffered path's re-serialisation is byte-identical. */
        const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        char *d = strdup(text);
        assert_non_null(d);
        static const char *const keys[] = {NULL, "$.a", "$['b']"};
        for (size_t k = 0; k < 3; k++) {
            pf_template *t = one_stream(q, keys[k]);
            char what[256];
            snprintf(what, sizeof what, "cts '%s' (%s) key %s",
                     json_object_get_string(json_object_object_get(c, "name")), q,
                     keys[k] ? keys[k] : "none");
            for (int round = 0; round < 4; round++) {
                recs fast = {0}, slow = {0};
                pf_error ef, es;
                pf_status sf = run_stream(t, d, strlen(d), round ? &rng : NULL, 0, &fast, &ef);
                pf_status ss = run_buffered(t, d, strlen(d), &slow, &es);
                if (sf != PF_OK || ss != PF_OK)
                    fail_msg("%s: %s / %s", what, sf ? ef.msg : "", ss ? es.msg : "");
                identical += assert_equivalent(t, &fast, &slow, 1, what);
                records += fast.n;
                recs_free(&fast);
                recs_free(&slow);
            }
            pf_template_free(t);
        }
        free(d);
        used++;
    }
    json_object_put(suite);
    print_message("compliance queries of the streaming shapes: %zu, records compared: %zu\n", used,
                  records);
    /* The suite has dozens of such queries (names, wildcards, unions). */
    assert_true(used >= 40);
    assert_true(records >= 200);
    assert_int_equal(identical, records);
}

/* ---- equivalence on generated SIEM-like responses ---------------------- */

typedef struct gen {
    pf_buf *b;
    uint64_t rng;
    int free_escapes; /* use escapes json-c would write differently */
    int pretty;
} gen;

static unsigned pick(gen *g, unsigned n)
{
    return (unsigned)(next_rand(&g->rng) % n);
}

static void ws(gen *g)
{
    if (!g->pretty) return;
    static const char *const w[] = {"", " ", "\n  ", "\t", "\r\n", "   "};
    pf_buf_puts(g->b, w[pick(g, 6)]);
}

static void gen_string(gen *g)
{
    static const char *const canon_parts[] = {"abc",
                                              " ",
                                              "phish",
                                              "2026-11-22T01:00:00.123Z",
                                              "\\\"",
                                              "\\\\",
                                              "\\n",
                                              "\\t",
                                              "/",
                                              "caf\xc3\xa9",
                                              "\xe2\x82\xac",
                                              "\xf0\x9f\x93\xa6",
                                              "\\u001f",
                                              "<x@y.example>",
                                              "  two  "};
    static const char *const free_parts[] = {"\\/",       "\\u00e9", "\\u0041", "\\ud83d\\ude00",
                                             "\\b\\f\\r", "\\u2028", "\\u0000"};
    pf_buf_putc(g->b, '"');
    unsigned n = pick(g, 6);
    for (unsigned i = 0; i < n; i++) {
        if (g->free_escapes && pick(g, 4) == 0)
            pf_buf_puts(g->b, free_parts[pick(g, sizeof free_parts / sizeof free_parts[0])]);
        else
            pf_buf_puts(g->b, canon_parts[pick(g, sizeof canon_parts / sizeof canon_parts[0])]);
    }
    pf_buf_putc(g->b, '"');
}

static void gen_number(gen *g)
{
    static const char *const nums[] = {"0",
                                       "-0",
                                       "7",
                                       "-42",
                                       "1.5",
                                       "-0.25",
                                       "1E5",
                                       "2.5e-3",
                                       "1e+10",
                                       "100.0",
                                       "0.1",
                                       "4294967296",
                                       "9007199254740993",
                                       "123456789012345678901234567890",
                                       "-18446744073709551617",
                                       "18446744073709551615"};
    pf_buf_puts(g->b, nums[pick(g, sizeof nums / sizeof nums[0])]);
}

static void gen_value(gen *g, int depth);

static void gen_members(gen *g, int depth, const char *key_name)
{
    pf_buf_putc(g->b, '{');
    unsigned n = pick(g, 7);
    int wrote = 0;
    if (key_name && pick(g, 8)) {
        /* the key first, or later among the others */
        ws(g);
        pf_buf_printf(g->b, "\"%s\"", key_name);
        ws(g);
        pf_buf_putc(g->b, ':');
        ws(g);
        switch (pick(g, 10)) {
        case 0:
            gen_number(g);
            break;
        case 1:
            pf_buf_puts(g->b, "null");
            break;
        case 2:
            gen_value(g, depth + 1);
            break;
        default:
            pf_buf_printf(g->b, "\"%08llx-guid\"", (unsigned long long)next_rand(&g->rng));
            break;
        }
        wrote = 1;
    }
    /* json-c decodes escaped names and keeps only the last of repeated
     * names: those come only with free escapes (compared after json-c). */
    static const char *const names[] = {
        "subject", "sender", "threatsInfoMap", "messageParts", "score",
        "QID",     "x y",    "\\u0073ize",     "GUID",         "id"};
    for (unsigned i = 0; i < n; i++) {
        if (wrote) pf_buf_putc(g->b, ',');
        ws(g);
        const char *nm = names[pick(g, g->free_escapes ? 10 : 7)];
        /* Names must not repeat in this generator's objects, except key
         * names (the last wins on both paths). */
        if (strcmp(nm, "GUID") != 0 && strcmp(nm, "id") != 0) {
            pf_buf_printf(g->b, "\"%s%u\"", nm, i);
        } else {
            pf_buf_printf(g->b, "\"%s\"", nm);
        }
        ws(g);
        pf_buf_putc(g->b, ':');
        ws(g);
        gen_value(g, depth + 1);
        wrote = 1;
    }
    ws(g);
    pf_buf_putc(g->b, '}');
}

static void gen_value(gen *g, int depth)
{
    unsigned k = pick(g, depth > 4 ? 5 : 8);
    switch (k) {
    case 0:
        gen_string(g);
        break;
    case 1:
        gen_number(g);
        break;
    case 2:
        pf_buf_puts(g->b, pick(g, 2) ? "true" : "false");
        break;
    case 3:
        pf_buf_puts(g->b, "null");
        break;
    case 4:
        gen_string(g);
        break;
    case 5:
    case 6:
        gen_members(g, depth, NULL);
        break;
    default: {
        pf_buf_putc(g->b, '[');
        unsigned n = pick(g, 5);
        for (unsigned i = 0; i < n; i++) {
            if (i) pf_buf_putc(g->b, ',');
            ws(g);
            gen_value(g, depth + 1);
        }
        ws(g);
        pf_buf_putc(g->b, ']');
    }
    }
}

/* A /v2/siem/all-like response: queryEndTime and the four arrays in a
 * random order, some missing, null, empty or (rarely) objects of records. */
static void gen_siem(gen *g)
{
    static const char *const arrays[] = {"messagesDelivered", "messagesBlocked", "clicksPermitted",
                                         "clicksBlocked"};
    unsigned order[4] = {0, 1, 2, 3};
    for (unsigned i = 3; i > 0; i--) {
        unsigned j = pick(g, i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    pf_buf_putc(g->b, '{');
    ws(g);
    pf_buf_puts(g->b, "\"queryEndTime\"");
    ws(g);
    pf_buf_puts(g->b, ":");
    ws(g);
    pf_buf_puts(g->b, "\"2026-11-22T01:00:00Z\"");
    for (unsigned a = 0; a < 4; a++) {
        unsigned which = order[a];
        unsigned form = pick(g, 12);
        if (form == 0) continue; /* absent */
        pf_buf_putc(g->b, ',');
        ws(g);
        pf_buf_printf(g->b, "\"%s\"", arrays[which]);
        ws(g);
        pf_buf_putc(g->b, ':');
        ws(g);
        const char *key = which < 2 ? "GUID" : "id";
        if (form == 1) {
            pf_buf_puts(g->b, "null");
            continue;
        }
        int obj = form == 2;
        pf_buf_putc(g->b, obj ? '{' : '[');
        unsigned n = pick(g, 6);
        for (unsigned i = 0; i < n; i++) {
            if (i) pf_buf_putc(g->b, ',');
            ws(g);
            if (obj) {
                pf_buf_printf(g->b, "\"r%u\"", i);
                ws(g);
                pf_buf_putc(g->b, ':');
                ws(g);
            }
            if (pick(g, 10) == 0)
                gen_value(g, 2);
            else
                gen_members(g, 2, key);
        }
        ws(g);
        pf_buf_putc(g->b, obj ? '}' : ']');
    }
    ws(g);
    pf_buf_putc(g->b, '}');
}

static void test_equivalence_on_generated_responses(void **state)
{
    (void)state;
    pf_template *t = siem_template();
    uint64_t rng = 424242;
    size_t total = 0;
    for (unsigned seed = 1; seed <= 400; seed++) {
        pf_buf b;
        pf_buf_init(&b, 0);
        gen g = {&b, seed * 2654435761ULL + 1, (int)(seed % 3 == 0), (int)(seed % 2 == 0)};
        gen_siem(&g);
        char what[64];
        snprintf(what, sizeof what, "generated response %u", seed);
        recs fast = {0}, slow = {0};
        pf_error ef, es;
        if (run_stream(t, b.data, b.len, &rng, 0, &fast, &ef) != PF_OK)
            fail_msg("%s: %s\n%s", what, ef.msg, b.data);
        if (run_buffered(t, b.data, b.len, &slow, &es) != PF_OK)
            fail_msg("%s: %s\n%s", what, es.msg, b.data);
        /* With json-c's own escapes the bytes are identical; with others,
         * json-c re-escapes strings and only the values agree. */
        assert_equivalent(t, &fast, &slow, !g.free_escapes, what);
        total += fast.n;
        recs_free(&fast);
        recs_free(&slow);
        pf_buf_free(&b);
    }
    print_message("generated responses: 400, records compared: %zu\n", total);
    assert_true(total > 1000);
    pf_template_free(t);
}

/* ---- malformed, truncated and deep bodies ------------------------------- */

static void test_both_paths_refuse_the_same_bodies(void **state)
{
    (void)state;
    pf_template *t = siem_template();
    static const char *const union_paths[] = {"$.messagesDelivered[*]", "$['a','b'][*]", "$.c.d"};
    static const char *const union_keys[] = {"$.GUID", "$.id", NULL};
    pf_template *u = unit_template(3, union_paths, union_keys);
    uint64_t rng = 77;
    size_t failures = 0, successes = 0;
    static const char junk[] = "{}[],:\"\\x0-e.tn \n\xff\xc3";
    for (unsigned seed = 1; seed <= 600; seed++) {
        pf_buf b;
        pf_buf_init(&b, 0);
        gen g = {&b, seed * 0x9E3779B97F4A7C15ULL + 3, (int)(seed % 2), (int)(seed % 3 != 0)};
        gen_siem(&g);
        /* One mutation: cut, replace, insert or delete a byte. */
        size_t at = b.len ? (size_t)(next_rand(&g.rng) % b.len) : 0;
        switch (seed % 4) {
        case 0:
            b.len = at;
            break;
        case 1:
            b.data[at] = junk[next_rand(&g.rng) % (sizeof junk - 1)];
            break;
        case 2:
            pf_buf_putc(&b, 0);
            memmove(b.data + at + 1, b.data + at, b.len - at - 1);
            b.data[at] = junk[next_rand(&g.rng) % (sizeof junk - 1)];
            break;
        default:
            memmove(b.data + at, b.data + at + 1, b.len - at - 1);
            b.len--;
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "mutated response %u", seed);
        pf_status st = check_both(t, b.data, b.len, &rng, 0, what);
        check_both(u, b.data, b.len, &rng, 0, what);
        if (st == PF_OK)
            successes++;
        else
            failures++;
        pf_buf_free(&b);
    }
    print_message("mutated responses: %zu refused by both paths, %zu accepted by both\n", failures,
                  successes);
    assert_true(failures > 300);

    /* Deep nesting: at the top, inside a record, inside a skipped value. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    assert_non_null(deep);
    static const char *const prefixes[] = {"", "{\"messagesDelivered\": [", "{\"queryEndTime\": ",
                                           "{\"clicksBlocked\": [{\"id\": 1, \"x\": "};
    static const size_t open_before[] = {0, 2, 1, 3};
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
        size_t n = (size_t)sprintf(deep, "%s", prefixes[p]);
        memset(deep + n, '[', depth);
        n += depth;
        for (size_t cut = 0; cut < 2; cut++) {
            /* cut 0: truncated inside the nesting; cut 1: complete nesting */
            size_t len = n;
            if (cut) {
                memset(deep + n, ']', depth);
                len = n + depth;
            }
            pf_error ef;
            recs fast = {0};
            assert_int_equal(check_both(t, deep, len, &rng, 0, "deep"), PF_EDEPTH);
            assert_int_equal(run_stream(t, deep, len, &rng, 0, &fast, &ef), PF_EDEPTH);
            /* The bracket that opens level 1001. */
            assert_int_equal(ef.offset, (long)(strlen(prefixes[p]) + 1000 - open_before[p]));
            recs_free(&fast);
        }
    }
    free(deep);
    pf_template_free(u);
    pf_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_which_templates_stream),
        cmocka_unit_test(test_siem_records_in_document_order),
        cmocka_unit_test(test_records_arrive_as_they_close),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_minified_bytes_are_exact),
        cmocka_unit_test(test_record_limit),
        cmocka_unit_test(test_buffered_mode),
        cmocka_unit_test(test_callback_can_stop),
        cmocka_unit_test(test_empty_bodies),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_repeated_names),
        cmocka_unit_test(test_buffered_refuses_repeated_names),
        cmocka_unit_test(test_equivalence_on_compliance_queries),
        cmocka_unit_test(test_equivalence_on_generated_responses),
        cmocka_unit_test(test_both_paths_refuse_the_same_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
