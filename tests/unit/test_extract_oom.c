/* test_extract_oom.c: the buffered extractor (src/engine/extract.h) when
 * memory runs out. This executable replaces malloc, calloc and realloc
 * (ELF interposition: json-c and the C library allocate through them too)
 * with versions that fail on request, and runs an extraction once for each
 * allocation it makes, failing that one allocation (then also every later
 * one). Every run must end in PF_ENOMEM with the caller's records as they
 * were, or in PF_OK with exactly the records of a run without failures:
 * never a success with records missing or altered. Not run under
 * AddressSanitizer, whose allocator cannot be replaced this way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "engine/stream_extract.h"
#include "unit_template.h"

#include "unit_asan.h"

#ifndef UNDER_ASAN
/* ---- an allocator that fails on request ---------------------------------- */

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long fail_at = -1; /* the allocation (counted from 0) that fails; -1: none */
static int fail_after;    /* every allocation after it fails too */
static long calls;        /* allocations since arm() */
static int failed;        /* an allocation was refused since arm() */

static void arm(long at, int persistent)
{
    calls = 0;
    failed = 0;
    fail_after = persistent;
    fail_at = at;
}

static void disarm(void)
{
    fail_at = -1;
}

static int refuse(void)
{
    if (fail_at < 0) return 0;
    long i = calls++;
    if (i == fail_at || (fail_after && i > fail_at)) {
        failed = 1;
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void *malloc(size_t n)
{
    return refuse() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    return refuse() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    return refuse() ? NULL : __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

/* ---- the sweep ------------------------------------------------------------ */

/* A body with what makes allocations: several streams, nested objects and
 * arrays, escapes, doubles, integers json-c cannot print back, keys. */
static const char body[] =
    "{\"queryEndTime\":\"2026-11-22T01:00:00Z\","
    "\"messagesDelivered\":["
    "{\"GUID\":\"g-1\",\"subject\":\"caf\\u00e9 \\ud83d\\ude00\",\"score\":1.5e3,"
    "\"big\":123456789012345678901234567890,\"neg\":-0,\"to\":[\"a@x\",\"b@x\",\"c@x\"],"
    "\"threats\":[{\"id\":7,\"url\":\"http:\\/\\/x.example\\/a\"},{\"id\":8,\"tags\":[]}]},"
    "{\"GUID\":\"g-2\",\"subject\":\"two\",\"n\":null,\"ok\":true,\"no\":false,"
    "\"k01\":1,\"k02\":2,\"k03\":3,\"k04\":4,\"k05\":5,\"k06\":6,\"k07\":7,\"k08\":8,"
    "\"k09\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,\"k15\":15}],"
    "\"clicksBlocked\":[{\"id\":\"c-1\"},{\"id\":\"c-2\",\"classification\":\"phish\"},"
    "{\"id\":3},{\"id\":\"c-4\",\"a\":[[1,2],[3,[4,[5]]]]}]}";

typedef struct recs {
    pf_sink_record *v;
    size_t n;
} recs;

static void recs_free(recs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free((char *)r->v[i].json);
        free((char *)r->v[i].key);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* pf_sx callback: keeps a copy (fails with PF_ENOMEM like any caller). */
static pf_status collect(void *ud, const pf_sink_record *rec, pf_error *err)
{
    recs *r = ud;
    pf_sink_record *v = realloc(r->v, (r->n + 1) * sizeof *v);
    if (!v) return pf_error_set(err, PF_ENOMEM, "out of memory in the test");
    r->v = v;
    char *json = malloc(rec->json_len + 1), *key = rec->key ? malloc(rec->key_len + 1) : NULL;
    if (!json || (rec->key && !key)) {
        free(json);
        free(key);
        return pf_error_set(err, PF_ENOMEM, "out of memory in the test");
    }
    memcpy(json, rec->json, rec->json_len);
    json[rec->json_len] = '\0';
    if (key) memcpy(key, rec->key, rec->key_len);
    v[r->n++] = (pf_sink_record){rec->stream, key, rec->key_len, json, rec->json_len};
    return PF_OK;
}

static void assert_same(const pf_sink_record *got, size_t n, const pf_sink_record *want,
                        size_t wn, long at)
{
    if (n != wn) fail_msg("allocation %ld refused: PF_OK with %zu records, not %zu", at, n, wn);
    for (size_t i = 0; i < n; i++) {
        const pf_sink_record *a = &got[i], *b = &want[i];
        if (a->stream != b->stream || a->json_len != b->json_len ||
            memcmp(a->json, b->json, a->json_len) != 0 || !a->key != !b->key ||
            (a->key && (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len) != 0)))
            fail_msg("allocation %ld refused: record %zu differs:\n  got  %.*s\n  want %.*s", at,
                     i, (int)a->json_len, a->json, (int)b->json_len, b->json);
    }
}

/* Runs pf_extract_records on the body for every allocation it makes. */
static void sweep_extract(const pf_template *t, int persistent)
{
    pf_records want = {0};
    pf_error e;
    assert_int_equal(pf_extract_records(t, body, strlen(body), &want, &e), PF_OK);
    assert_true(want.count >= 6);
    /* A record the caller had before must survive every failure. */
    pf_sink_record first = {t->streams[0].name, NULL, 0, "{\"before\":1}", 12};
    long runs = 0, enomem = 0;
    for (long at = 0;; at++) {
        pf_records out = {0};
        assert_int_equal(pf_records_push_copy(&out, &first, &e), PF_OK);
        pf_error_clear(&e);
        arm(at, persistent);
        pf_status st = pf_extract_records(t, body, strlen(body), &out, &e);
        disarm();
        runs++;
        if (st == PF_OK) {
            assert_int_equal(out.count, want.count + 1);
            assert_same(out.recs + 1, out.count - 1, want.recs, want.count, at);
            assert_int_equal(out.missing_keys, want.missing_keys);
        } else {
            if (st != PF_ENOMEM)
                fail_msg("allocation %ld refused: status %d (%s), not PF_ENOMEM", at, st, e.msg);
            assert_true(e.msg[0] != '\0');
            assert_int_equal(out.count, 1);
            assert_string_equal(out.recs[0].json, "{\"before\":1}");
            enomem++;
        }
        int done = !failed;
        pf_records_free(&out);
        if (done) break;
    }
    printf("pf_extract_records (%s failures): %ld runs, %ld ended in PF_ENOMEM\n",
           persistent ? "lasting" : "single", runs, enomem);
    assert_true(enomem > 0);
    pf_records_free(&want);
}

/* The same through a pf_sx that buffers (the engine's streaming API on a
 * template that cannot stream). */
static void sweep_buffered_sx(const pf_template *t, int persistent)
{
    recs want = {0};
    pf_error e;
    pf_sx *sx = pf_sx_new(t, 0, 0, collect, &want, &e);
    assert_non_null(sx);
    assert_int_equal(pf_sx_is_streaming(sx), 0);
    assert_int_equal(pf_sx_feed(sx, body, strlen(body), &e), PF_OK);
    assert_int_equal(pf_sx_finish(sx, &e), PF_OK);
    pf_sx_free(sx);
    assert_true(want.n >= 6);
    long runs = 0, failures = 0;
    for (long at = 0;; at++) {
        recs got = {0};
        pf_error_clear(&e);
        arm(at, persistent);
        pf_status st = PF_ENOMEM;
        sx = pf_sx_new(t, 0, 0, collect, &got, &e);
        if (sx) {
            /* In pieces, as libcurl hands the body over. */
            size_t len = strlen(body);
            st = PF_OK;
            for (size_t o = 0; o < len && st == PF_OK; o += 64)
                st = pf_sx_feed(sx, body + o, len - o < 64 ? len - o : 64, &e);
            if (st == PF_OK) st = pf_sx_finish(sx, &e);
        }
        disarm();
        pf_sx_free(sx);
        runs++;
        if (st == PF_OK) {
            assert_same(got.v, got.n, want.v, want.n, at);
        } else {
            if (st != PF_ENOMEM)
                fail_msg("allocation %ld refused: status %d (%s), not PF_ENOMEM", at, st, e.msg);
            failures++;
        }
        int done = !failed;
        recs_free(&got);
        if (done) break;
    }
    printf("buffered pf_sx (%s failures): %ld runs, %ld ended in PF_ENOMEM\n",
           persistent ? "lasting" : "single", runs, failures);
    assert_true(failures > 0);
    recs_free(&want);
}

static void test_streamable_paths(void **state)
{
    (void)state;
    static const char *const paths[] = {"$.messagesDelivered[*]", "$.clicksBlocked[*]"};
    static const char *const keys[] = {"$.GUID", "$.id"};
    pf_template *t = unit_template(2, paths, keys);
    sweep_extract(t, 0);
    sweep_extract(t, 1);
    pf_template_free(t);
}

static void test_paths_that_need_the_document(void **state)
{
    (void)state;
    static const char *const paths[] = {"$..threats[?@.id > 7]", "$.clicksBlocked[?@.id]",
                                        "$..a[1]"};
    static const char *const keys[] = {"$.id", "$.id", NULL};
    pf_template *t = unit_template(3, paths, keys);
    sweep_extract(t, 0);
    sweep_extract(t, 1);
    sweep_buffered_sx(t, 0);
    sweep_buffered_sx(t, 1);
    pf_template_free(t);
}
#endif

static void test_skipped_under_asan(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifndef UNDER_ASAN
        cmocka_unit_test(test_streamable_paths),
        cmocka_unit_test(test_paths_that_need_the_document),
#endif
        cmocka_unit_test(test_skipped_under_asan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
