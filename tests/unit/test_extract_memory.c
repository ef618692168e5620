/* test_extract_memory.c: the memory bound of the buffered extractor
 * (src/engine/extract.h): the model that counts the json-c document is an
 * upper bound of what the allocator really hands out, and bodies whose
 * document would pass the budget are refused before it is spent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "unit_template.h"
#include "util/paths.h"

#include "unit_asan.h"

#ifndef UNDER_ASAN
/* Bytes the allocator has handed out and not taken back. */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#endif

/* A body of N copies of ITEM in an array (ITEM NULL: the numbers 0..N-1). */
static char *array_of(const char *item, size_t n)
{
    size_t il = item ? strlen(item) : 20, cap = n * (il + 1) + 3;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t o = 0;
    s[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) s[o++] = ',';
        if (item) {
            memcpy(s + o, item, il);
            o += il;
        } else {
            o += (size_t)snprintf(s + o, cap - o, "%zu", i);
        }
    }
    s[o++] = ']';
    s[o] = '\0';
    return s;
}

#ifndef UNDER_ASAN
/* An object of N members "kI": I. */
static char *wide_object(size_t n)
{
    size_t cap = n * 32 + 3, o = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[o++] = '{';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

/* Builds BODY's document and checks that the model's count is at least
 * what the heap grew by (and not absurdly more). */
static void check_model(const char *what, const char *body, size_t len)
{
    json_object *doc = NULL;
    size_t used = 0;
    pf_error e;
    pf_error_clear(&e);
    malloc_trim(0);
    size_t before = heap_in_use();
    assert_int_equal(pf_extract_build_doc(body, len, 0, &doc, &used, &e), PF_OK);
    size_t after = heap_in_use();
    size_t real = after > before ? after - before : 0;
    printf("%-28s body %9zu  heap %10zu  model %10zu  (%.1fx the body)\n", what, len, real, used,
           (double)used / (double)len);
    /* A few kB of slack: allocator bookkeeping outside the document. */
    assert_true(real <= used + 16384);
    assert_true(used <= 2 * real + 16384);
    json_object_put(doc);
}

#endif

static void test_model_bounds_the_heap(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    skip(); /* the sanitizer's allocator is not the one modelled */
#else
    char *s;
    s = array_of("{}", 50000);
    check_model("[{},{},...]", s, strlen(s));
    free(s);
    s = array_of("[]", 50000);
    check_model("[[],[],...]", s, strlen(s));
    free(s);
    s = array_of(NULL, 200000);
    check_model("[0,1,2,...]", s, strlen(s));
    free(s);
    s = array_of("1.5", 100000);
    check_model("[1.5,1.5,...]", s, strlen(s));
    free(s);
    s = array_of("\"a\\n\\u00e9\"", 100000);
    check_model("[\"a\\n\\u00e9\",...]", s, strlen(s));
    free(s);
    s = array_of("true", 100000);
    check_model("[true,true,...]", s, strlen(s));
    free(s);
    s = array_of("{\"a\":null,\"b\":[1,{\"c\":\"d\"}]}", 20000);
    check_model("[{\"a\":null,\"b\":[...]}]", s, strlen(s));
    free(s);
    s = array_of("-0", 20000);
    check_model("[-0,-0,...]", s, strlen(s));
    free(s);
    s = wide_object(100000);
    check_model("{\"k0\":0,...} (one object)", s, strlen(s));
    free(s);
    /* One string larger than the allocator's mapping threshold. */
    size_t big = (size_t)3 << 20;
    s = malloc(big + 3);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, 'x', big);
    s[big + 1] = '"';
    s[big + 2] = '\0';
    check_model("\"xxx...\" (3 MiB)", s, big + 2);
    free(s);
    /* A realistic response: the TAP SIEM sample. */
    char *text = NULL;
    size_t len = 0;
    pf_error e;
    assert_int_equal(pf_read_file(PPFLOW_SOURCE_DIR "/samples/data/siem-all-sample.json",
                                  (size_t)1 << 24, &text, &len, &e),
                     PF_OK);
    check_model("SIEM sample", text, len);
    free(text);
#endif
}

static void test_budget_stops_the_build(void **state)
{
    (void)state;
    char *s = array_of("{}", 20000); /* 60 kB; its document about 16 MB */
    size_t len = strlen(s);
    json_object *doc = (json_object *)1;
    size_t used = 0;
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_extract_build_doc(s, len, (size_t)1 << 20, &doc, &used, &e), PF_ETOOBIG);
    assert_null(doc);
    assert_non_null(strstr(e.msg, "needs more than 1048576 bytes of memory"));
    /* Without a limit it builds, and the model says how far it was. */
    assert_int_equal(pf_extract_build_doc(s, len, 0, &doc, &used, &e), PF_OK);
    assert_true(used > ((size_t)1 << 20));
    assert_true(used > 200 * len);
    json_object_put(doc);
    /* Under a limit the count is the same; a limit below it is refused
     * (the build may need a little more for a moment, as a container
     * grows, but never more than the limit). */
    size_t again = 0;
    assert_int_equal(pf_extract_build_doc(s, len, 2 * used, &doc, &again, &e), PF_OK);
    assert_int_equal(again, used);
    json_object_put(doc);
    pf_error_clear(&e);
    assert_int_equal(pf_extract_build_doc(s, len, used - 1, &doc, &again, &e), PF_ETOOBIG);
    assert_null(doc);
    free(s);
}

static void test_default_budget_refuses_small_containers(void **state)
{
    (void)state;
    /* A template that cannot stream ($..id): the whole body is parsed. */
    pf_template *t = unit_template1("$..id", NULL);
    /* 1.5 MB of empty objects: about 400 MB as json-c objects, far over
     * the default budget (16 times the body plus 64 MiB, about 88 MB). */
    char *s = array_of("{}", 500000);
    pf_records out = {0};
    pf_error e;
    pf_error_clear(&e);
#ifndef UNDER_ASAN
    size_t before = heap_in_use();
#endif
    assert_int_equal(pf_extract_records(t, s, strlen(s), &out, &e), PF_ETOOBIG);
    assert_int_equal(out.count, 0);
    assert_non_null(strstr(e.msg, "bytes of memory to extract its records from the whole body"));
#ifndef UNDER_ASAN
    /* Everything was given back. */
    assert_true(heap_in_use() <= before + 4096);
#endif
    /* An explicit budget counts the records too. */
    free(s);
    s = array_of("{\"id\":\"abcdefghijklmnopqrstuvwxyz\"}", 2000);
    pf_extract_limits lim = {0, 0};
    assert_int_equal(pf_extract_records_ex(t, s, strlen(s), &lim, &out, &e), PF_OK);
    assert_int_equal(out.count, 2000);
    pf_records_free(&out);
    json_object *doc = NULL;
    size_t tree = 0;
    assert_int_equal(pf_extract_build_doc(s, strlen(s), 0, &doc, &tree, &e), PF_OK);
    json_object_put(doc);
    lim.max_memory = tree + 1000; /* the document fits, its records do not */
    pf_error_clear(&e);
    assert_int_equal(pf_extract_records_ex(t, s, strlen(s), &lim, &out, &e), PF_ETOOBIG);
    assert_int_equal(out.count, 0);
    free(s);
    pf_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_bounds_the_heap),
        cmocka_unit_test(test_budget_stops_the_build),
        cmocka_unit_test(test_default_budget_refuses_small_containers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
