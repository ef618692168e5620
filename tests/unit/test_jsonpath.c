/* test_jsonpath.c: unit tests of the JSONPath engine's public contract: the
 * Proofpoint-shaped queries templates use, error offsets, simple shapes,
 * limits (deep documents, work budget) and nodelist ownership. The RFC
 * compliance cases live in tests/jsonpath/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "jsonpath/jsonpath.h"

static const char *siem_doc =
    "{\"queryEndTime\":\"2024-05-01T10:00:00Z\","
    " \"messagesDelivered\":[{\"GUID\":\"m1\",\"threatsInfoMap\":[{\"threatID\":\"t1\"},"
    "{\"threatID\":\"t2\"}]},{\"GUID\":\"m2\",\"threatsInfoMap\":[]}],"
    " \"clicksPermitted\":[{\"GUID\":\"c1\",\"threatID\":\"t3\"}],"
    " \"GUID\":\"top\", \"id\":42,"
    " \"response\":[{\"a\":1},{\"a\":2}],"
    " \"threatsInfoMap\":[{\"threatID\":\"t4\"},{\"threatStatus\":\"active\"}],"
    " \"users\":[{\"email\":\"a@x\",\"is_active\":true},{\"email\":\"b@x\",\"is_active\":false},"
    "{\"email\":\"c@x\"},{\"email\":\"d@x\",\"is_active\":\"true\"}]}";

/* Evaluates QUERY against DOC and compares the values (as one JSON array)
 * and the paths (as one JSON array) with the expected texts. */
static void expect(struct json_object *doc, const char *query, const char *values,
                   const char *paths)
{
    pf_jsonpath *q = NULL;
    pf_error err;
    pf_error_clear(&err);
    assert_int_equal(pf_jsonpath_compile(query, strlen(query), &q, &err), PF_OK);
    assert_string_equal(pf_jsonpath_text(q), query);
    pf_jp_nodelist l = {0};
    assert_int_equal(pf_jsonpath_eval(q, doc, 1, &l, &err), PF_OK);
    struct json_object *va = json_object_new_array(), *pa = json_object_new_array();
    for (size_t i = 0; i < l.count; i++) {
        json_object_array_add(va, json_object_get(l.nodes[i].value));
        json_object_array_add(pa, json_object_new_string(l.nodes[i].path));
    }
    int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
    assert_string_equal(json_object_to_json_string_ext(va, flags), values);
    assert_string_equal(json_object_to_json_string_ext(pa, flags), paths);
    json_object_put(va);
    json_object_put(pa);
    pf_jp_nodelist_free(&l);
    assert_null(l.nodes);
    assert_int_equal(l.count, 0);
    pf_jsonpath_free(q);
}

static void test_proofpoint_queries(void **state)
{
    (void)state;
    struct json_object *doc = json_tokener_parse(siem_doc);
    assert_non_null(doc);
    expect(doc, "$.messagesDelivered[*]",
           "[{\"GUID\":\"m1\",\"threatsInfoMap\":[{\"threatID\":\"t1\"},{\"threatID\":\"t2\"}]},"
           "{\"GUID\":\"m2\",\"threatsInfoMap\":[]}]",
           "[\"$['messagesDelivered'][0]\",\"$['messagesDelivered'][1]\"]");
    expect(doc, "$.clicksPermitted[*]", "[{\"GUID\":\"c1\",\"threatID\":\"t3\"}]",
           "[\"$['clicksPermitted'][0]\"]");
    expect(doc, "$.GUID", "[\"top\"]", "[\"$['GUID']\"]");
    expect(doc, "$.id", "[42]", "[\"$['id']\"]");
    expect(doc, "$.response[*]", "[{\"a\":1},{\"a\":2}]",
           "[\"$['response'][0]\",\"$['response'][1]\"]");
    expect(doc, "$.threatsInfoMap[*].threatID", "[\"t4\"]",
           "[\"$['threatsInfoMap'][0]['threatID']\"]");
    expect(doc, "$..threatID", "[\"t1\",\"t2\",\"t3\",\"t4\"]",
           "[\"$['messagesDelivered'][0]['threatsInfoMap'][0]['threatID']\","
           "\"$['messagesDelivered'][0]['threatsInfoMap'][1]['threatID']\","
           "\"$['clicksPermitted'][0]['threatID']\",\"$['threatsInfoMap'][0]['threatID']\"]");
    expect(doc, "$.users[?@.is_active==true]", "[{\"email\":\"a@x\",\"is_active\":true}]",
           "[\"$['users'][0]\"]");
    expect(doc, "$.missing[*]", "[]", "[]");
    json_object_put(doc);
}

static void expect_error(const char *query, size_t len, pf_status code, long offset)
{
    pf_jsonpath *q = (pf_jsonpath *)&q; /* must be reset to NULL */
    pf_error err;
    pf_error_clear(&err);
    assert_int_equal(pf_jsonpath_compile(query, len, &q, &err), code);
    assert_null(q);
    assert_int_equal(err.code, code);
    assert_int_equal(err.offset, offset);
    assert_true(err.msg[0] != '\0');
}

static void test_error_offsets(void **state)
{
    (void)state;
    expect_error("$.users]", 8, PF_ESYNTAX, 7);
    pf_jsonpath *q = NULL;
    pf_error err;
    pf_jsonpath_compile("$.users]", 8, &q, &err);
    char buf[256];
    pf_error_format(&err, buf, sizeof buf);
    assert_string_equal(buf, "unexpected ']' at offset 7");
    expect_error("", 0, PF_ESYNTAX, 0);
    expect_error(NULL, 0, PF_ESYNTAX, 0);
    expect_error("$.a[?@.b == 1", 13, PF_ESYNTAX, 13);
    expect_error("$[?length(@.a)]", 15, PF_ESYNTAX, 3);
    expect_error("$[?@.* == 1]", 12, PF_ESYNTAX, 3);
    expect_error("$[?match(@.a, 'x') == true]", 27, PF_ESYNTAX, 3);
    expect_error("$['a\xff']", 7, PF_ESYNTAX, 4);         /* invalid UTF-8 */
    expect_error("$['a\xed\xa0\x80']", 9, PF_ESYNTAX, 4); /* encoded surrogate */
    expect_error("$[01]", 5, PF_ESYNTAX, 2);
    expect_error("$[9007199254740992]", 19, PF_ESYNTAX, 2);
    /* the query need not be NUL-terminated: only LEN bytes count */
    expect_error("$.a]garbage", 4, PF_ESYNTAX, 3);
    /* nesting */
    char deep[512];
    size_t n = 0;
    deep[n++] = '$';
    deep[n++] = '[';
    deep[n++] = '?';
    for (int i = 0; i < 100; i++)
        deep[n++] = '(';
    expect_error(deep, n, PF_EDEPTH, 3 + PF_JP_MAX_QUERY_NESTING - 1);
    assert_int_equal(pf_jsonpath_compile("$", 1, NULL, &err), PF_EINVAL);
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    pf_jsonpath *q = NULL;
    assert_int_equal(pf_jsonpath_compile("$.ab", 3, &q, NULL), PF_OK);
    assert_string_equal(pf_jsonpath_text(q), "$.a");
    pf_jsonpath_free(q);
    pf_jsonpath_free(NULL);
    pf_jp_nodelist_free(NULL);
}

static void shape_of(const char *query, int simple, size_t nnames, size_t nunion, int wildcard)
{
    pf_jsonpath *q = NULL;
    assert_int_equal(pf_jsonpath_compile(query, strlen(query), &q, NULL), PF_OK);
    pf_jp_shape s;
    assert_int_equal(pf_jsonpath_simple_shape(q, &s), simple);
    assert_int_equal(s.nnames, nnames);
    assert_int_equal(s.nunion, nunion);
    assert_int_equal(s.wildcard, wildcard);
    pf_jsonpath_free(q);
}

static void test_simple_shape(void **state)
{
    (void)state;
    shape_of("$", 1, 0, 0, 0);
    shape_of("$[*]", 1, 0, 0, 1);
    shape_of("$.*", 1, 0, 0, 1);
    shape_of("$.a.b", 1, 2, 0, 0);
    shape_of("$.messagesDelivered[*]", 1, 1, 0, 1);
    shape_of("$['a','b'][*]", 1, 0, 2, 1);
    shape_of("$.x['a','a'][*]", 1, 1, 2, 1);
    shape_of("$..a", 0, 0, 0, 0);
    shape_of("$[0]", 0, 0, 0, 0);
    shape_of("$[*].a", 0, 0, 0, 0);
    shape_of("$[*][*]", 0, 0, 0, 0);
    shape_of("$.a[?@.b]", 0, 0, 0, 0);
    shape_of("$['a',0][*]", 0, 0, 0, 0);

    pf_jsonpath *q = NULL;
    const char *text = "$.a['b\\'c'].d['x','y'][*]";
    assert_int_equal(pf_jsonpath_compile(text, strlen(text), &q, NULL), PF_OK);
    pf_jp_shape s;
    assert_int_equal(pf_jsonpath_simple_shape(q, &s), 1);
    assert_int_equal(s.nnames, 3);
    assert_string_equal(s.names[0], "a");
    assert_string_equal(s.names[1], "b'c");
    assert_int_equal(s.name_lens[1], 3);
    assert_string_equal(s.names[2], "d");
    assert_int_equal(s.nunion, 2);
    assert_string_equal(s.union_names[0], "x");
    assert_string_equal(s.union_names[1], "y");
    assert_int_equal(s.wildcard, 1);
    pf_jsonpath_free(q);
}

static void test_singular(void **state)
{
    (void)state;
    const char *yes[] = {"$", "$.a", "$['a'][0]", "$.a[-1].b"};
    const char *no[] = {"$.*", "$..a", "$['a','b']", "$[0:1]", "$[?@]"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        pf_jsonpath *q = NULL;
        assert_int_equal(pf_jsonpath_compile(yes[i], strlen(yes[i]), &q, NULL), PF_OK);
        assert_int_equal(pf_jsonpath_is_singular(q), 1);
        pf_jsonpath_free(q);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        pf_jsonpath *q = NULL;
        assert_int_equal(pf_jsonpath_compile(no[i], strlen(no[i]), &q, NULL), PF_OK);
        assert_int_equal(pf_jsonpath_is_singular(q), 0);
        pf_jsonpath_free(q);
    }
}

static void test_null_document_and_append(void **state)
{
    (void)state;
    pf_jsonpath *q = NULL;
    assert_int_equal(pf_jsonpath_compile("$", 1, &q, NULL), PF_OK);
    pf_jp_nodelist l = {0};
    assert_int_equal(pf_jsonpath_eval(q, NULL, 0, &l, NULL), PF_OK);
    assert_int_equal(l.count, 1);
    assert_null(l.nodes[0].value);
    assert_null(l.nodes[0].path);
    /* a second evaluation appends */
    assert_int_equal(pf_jsonpath_eval(q, NULL, 1, &l, NULL), PF_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.nodes[1].path, "$");
    pf_jp_nodelist_free(&l);
    pf_jsonpath_free(q);
}

/* A chain of N nested objects {"c":{"c":...{"x":1}}}. Every level carries an
 * extra reference in LEVELS so it can be released one level at a time
 * (json-c frees recursively and would overflow the stack). */
static struct json_object **deep_chain(size_t n)
{
    struct json_object **levels = malloc(n * sizeof *levels);
    assert_non_null(levels);
    for (size_t i = 0; i < n; i++) {
        levels[i] = json_object_new_object();
        assert_non_null(levels[i]);
        if (i > 0) json_object_object_add(levels[i - 1], "c", json_object_get(levels[i]));
    }
    json_object_object_add(levels[n - 1], "x", json_object_new_int(1));
    return levels;
}

static void free_chain(struct json_object **levels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_object_put(levels[i]); /* frees level i; level i+1 keeps our reference */
    free(levels);
}

static void test_deep_document(void **state)
{
    (void)state;
    const size_t n = 100000;
    struct json_object **levels = deep_chain(n);
    pf_jsonpath *q = NULL;
    assert_int_equal(pf_jsonpath_compile("$..x", 4, &q, NULL), PF_OK);
    pf_jp_nodelist l = {0};
    pf_error err;
    /* default limit: a clean PF_EDEPTH, the nodelist untouched */
    assert_int_equal(pf_jsonpath_eval(q, levels[0], 1, &l, &err), PF_EDEPTH);
    assert_int_equal(err.code, PF_EDEPTH);
    assert_int_equal(l.count, 0);
    assert_null(l.nodes);
    /* a raised limit: the explicit stack walks all the way down */
    assert_int_equal(pf_jsonpath_eval_limited(q, levels[0], 1, n + 1, 0, &l, &err), PF_OK);
    assert_int_equal(l.count, 1);
    assert_int_equal(json_object_get_int(l.nodes[0].value), 1);
    assert_int_equal(strlen(l.nodes[0].path), 1 + 5 * (n - 1) + 5);
    pf_jp_nodelist_free(&l);
    pf_jsonpath_free(q);

    /* deep equality of two 100,000-deep values uses an explicit stack too */
    struct json_object **other = deep_chain(n);
    struct json_object *pair = json_object_new_object();
    json_object_object_add(pair, "a", json_object_get(levels[0]));
    json_object_object_add(pair, "b", json_object_get(other[0]));
    struct json_object *doc = json_object_new_array();
    json_object_array_add(doc, pair);
    assert_int_equal(pf_jsonpath_compile("$[?@.a == @.b]", 14, &q, NULL), PF_OK);
    assert_int_equal(pf_jsonpath_eval(q, doc, 0, &l, &err), PF_OK);
    assert_int_equal(l.count, 1);
    pf_jp_nodelist_free(&l);
    pf_jsonpath_free(q);
    /* release the pair's references first, then the chains level by level */
    json_object_put(doc);
    free_chain(levels, n);
    free_chain(other, n);
}

static void test_work_limit(void **state)
{
    (void)state;
    struct json_object *doc = json_object_new_array();
    for (int i = 0; i < 200; i++) {
        struct json_object *inner = json_object_new_array();
        for (int k = 0; k < 50; k++)
            json_object_array_add(inner, json_object_new_int(k));
        json_object_array_add(doc, inner);
    }
    pf_jsonpath *q = NULL;
    const char *query = "$[*,*,*][*,*,*]";
    assert_int_equal(pf_jsonpath_compile(query, strlen(query), &q, NULL), PF_OK);
    pf_jp_nodelist l = {0};
    pf_error err;
    assert_int_equal(pf_jsonpath_eval_limited(q, doc, 1, 0, 10000, &l, &err), PF_ETOOBIG);
    assert_int_equal(l.count, 0);
    assert_int_equal(pf_jsonpath_eval(q, doc, 0, &l, &err), PF_OK);
    assert_int_equal(l.count, 200 * 3 * 50 * 3);
    pf_jp_nodelist_free(&l);
    pf_jsonpath_free(q);
    json_object_put(doc);
}

static void test_regex_from_document_is_bounded(void **state)
{
    (void)state;
    /* catastrophic backtracking hits the PCRE2 match limit: no match, no hang */
    struct json_object *doc = json_tokener_parse(
        "{\"re\":\"(a*)*b\",\"v\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac\"]}");
    assert_non_null(doc);
    pf_jsonpath *q = NULL;
    const char *query = "$.v[?match(@, $.re)]";
    assert_int_equal(pf_jsonpath_compile(query, strlen(query), &q, NULL), PF_OK);
    pf_jp_nodelist l = {0};
    assert_int_equal(pf_jsonpath_eval(q, doc, 0, &l, NULL), PF_OK);
    assert_int_equal(l.count, 0);
    pf_jp_nodelist_free(&l);
    pf_jsonpath_free(q);
    json_object_put(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proofpoint_queries),
        cmocka_unit_test(test_error_offsets),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_simple_shape),
        cmocka_unit_test(test_singular),
        cmocka_unit_test(test_null_document_and_append),
        cmocka_unit_test(test_deep_document),
        cmocka_unit_test(test_work_limit),
        cmocka_unit_test(test_regex_from_document_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
