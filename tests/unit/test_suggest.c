/* test_suggest.c: record path suggestions (engine/suggest.h): the ranking,
 * the shared fields, key detection, bracket notation, the depth cap and
 * parse errors. Every suggested path and key is also checked against the
 * JSONPath evaluator: it compiles, selects exactly the records claimed, and
 * the key selects one unique value per record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/suggest.h"
#include "jsonpath/jsonpath.h"

/* Checks every suggestion of ALL against DOC with the JSONPath evaluator. */
static void check_against_evaluator(json_object *doc, const pf_suggestions *all)
{
    for (size_t i = 0; i < all->count; i++) {
        const pf_suggestion *s = &all->items[i];
        pf_jsonpath *q = NULL;
        pf_error e;
        if (pf_jsonpath_compile(s->path, strlen(s->path), &q, &e) != PF_OK)
            fail_msg("suggested path %s does not compile: %s", s->path, e.msg);
        pf_jp_nodelist nl = {0};
        assert_int_equal(pf_jsonpath_eval(q, doc, 0, &nl, &e), PF_OK);
        if (nl.count != s->records)
            fail_msg("%s selects %zu nodes, suggestion says %zu", s->path, nl.count, s->records);
        for (size_t k = 0; k < nl.count; k++)
            for (size_t f = 0; f < s->nfields; f++)
                if (json_object_is_type(nl.nodes[k].value, json_type_object))
                    assert_true(json_object_object_get_ex(nl.nodes[k].value, s->fields[f], NULL));
        if (s->key) {
            pf_jsonpath *kq = NULL;
            assert_int_equal(pf_jsonpath_compile(s->key, strlen(s->key), &kq, &e), PF_OK);
            assert_true(pf_jsonpath_is_singular(kq));
            for (size_t a = 0; a < nl.count; a++) {
                pf_jp_nodelist ka = {0};
                assert_int_equal(pf_jsonpath_eval(kq, nl.nodes[a].value, 0, &ka, &e), PF_OK);
                assert_int_equal(ka.count, 1);
                for (size_t b = a + 1; b < nl.count; b++) {
                    pf_jp_nodelist kb = {0};
                    assert_int_equal(pf_jsonpath_eval(kq, nl.nodes[b].value, 0, &kb, &e), PF_OK);
                    assert_int_equal(kb.count, 1);
                    assert_false(json_object_equal(ka.nodes[0].value, kb.nodes[0].value));
                    pf_jp_nodelist_free(&kb);
                }
                pf_jp_nodelist_free(&ka);
            }
            pf_jsonpath_free(kq);
        }
        pf_jp_nodelist_free(&nl);
        pf_jsonpath_free(q);
    }
}

static void suggest(const char *text, pf_suggestions *out)
{
    pf_error e;
    pf_error_clear(&e);
    if (pf_suggest_text(text, strlen(text), out, &e) != PF_OK) fail_msg("suggest: %s", e.msg);
    json_tokener *tok = json_tokener_new_ex(PF_SUGGEST_MAX_NESTING);
    assert_non_null(tok);
    json_object *doc = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
    json_tokener_free(tok);
    check_against_evaluator(doc, out);
    json_object_put(doc);
}

static void assert_item(const pf_suggestion *s, const char *path, size_t records,
                        pf_suggest_kind kind, const char *fields, const char *key)
{
    assert_string_equal(s->path, path);
    if (s->records != records) fail_msg("%s: %zu records, want %zu", path, s->records, records);
    assert_int_equal(s->kind, kind);
    char got[512] = "";
    for (size_t i = 0; i < s->nfields; i++) {
        strncat(got, i ? "," : "", sizeof got - strlen(got) - 1);
        strncat(got, s->fields[i], sizeof got - strlen(got) - 1);
    }
    if (strcmp(got, fields) != 0) fail_msg("%s: fields '%s', want '%s'", path, got, fields);
    if (key) {
        assert_non_null(s->key);
        assert_string_equal(s->key, key);
    } else if (s->key) {
        fail_msg("%s: unexpected key %s", path, s->key);
    }
}

/* A TAP SIEM-shaped sample: record arrays first (more records first), nested
 * record arrays, empty record arrays, scalar arrays, the whole document. */
static void test_siem_ranking_fields_and_keys(void **state)
{
    (void)state;
    pf_suggestions all;
    suggest("{\"queryEndTime\":\"2024-05-02T11:00:00Z\","
            "\"messagesDelivered\":["
            "{\"GUID\":\"g1\",\"QID\":null,\"id\":\"i1\",\"recipient\":[\"a@x\",\"b@x\"],"
            "\"messageParts\":[{\"disposition\":\"inline\",\"md5\":\"1\"}],"
            "\"threatsInfoMap\":[{\"threatID\":\"t1\",\"classification\":\"phish\"}],"
            "\"ccAddresses\":[]},"
            "{\"QID\":\"q\",\"GUID\":\"g2\",\"id\":\"i2\",\"recipient\":[\"c@x\"],"
            "\"messageParts\":[{\"md5\":\"2\",\"disposition\":\"attached\"},"
            "{\"disposition\":\"inline\",\"md5\":\"3\"}],"
            "\"threatsInfoMap\":[{\"threatID\":\"t1\"}],\"ccAddresses\":[]}],"
            "\"messagesBlocked\":[],"
            "\"clicksPermitted\":[{\"GUID\":\"g1\",\"id\":\"c1\",\"url\":\"u\"},"
            "{\"GUID\":\"g1\",\"id\":\"c2\",\"url\":\"u2\"},"
            "{\"url\":\"u3\",\"id\":\"c3\",\"GUID\":\"g2\"}]}",
            &all);
    assert_int_equal(all.count, 8);
    assert_false(all.depth_capped);
    /* id identifies a record before GUID does (a message's events, one per
     * recipient, share its GUID). */
    assert_item(&all.items[0], "$.clicksPermitted[*]", 3, PF_SUGGEST_OBJECTS, "GUID,id,url",
                "$.id");
    assert_item(&all.items[1], "$.messagesDelivered[*]", 2, PF_SUGGEST_OBJECTS,
                "GUID,QID,id,recipient,messageParts,threatsInfoMap,ccAddresses", "$.id");
    assert_item(&all.items[2], "$.messagesDelivered[*].messageParts[*]", 3, PF_SUGGEST_OBJECTS,
                "disposition,md5", NULL);
    /* threatID is id-like but not unique: no key. */
    assert_item(&all.items[3], "$.messagesDelivered[*].threatsInfoMap[*]", 2, PF_SUGGEST_OBJECTS,
                "threatID", NULL);
    assert_item(&all.items[4], "$.messagesBlocked[*]", 0, PF_SUGGEST_EMPTY, "", NULL);
    assert_item(&all.items[5], "$.messagesDelivered[*].recipient[*]", 3, PF_SUGGEST_SCALARS, "",
                NULL);
    assert_string_equal(all.items[5].elements, "strings");
    assert_item(&all.items[6], "$.messagesDelivered[*].ccAddresses[*]", 0, PF_SUGGEST_EMPTY, "",
                NULL);
    assert_item(&all.items[7], "$", 1, PF_SUGGEST_SINGLE,
                "queryEndTime,messagesDelivered,messagesBlocked,clicksPermitted", NULL);
    pf_suggestions_free(&all);
}

/* A response that is an array suggests $[*]; shared fields keep the first
 * record's order and drop what some record lacks. */
static void test_root_array(void **state)
{
    (void)state;
    pf_suggestions all;
    suggest("[{\"b\":1,\"a\":2,\"c\":3},{\"a\":4,\"b\":5},{\"c\":0,\"b\":6,\"a\":null}]", &all);
    assert_int_equal(all.count, 1);
    assert_item(&all.items[0], "$[*]", 3, PF_SUGGEST_OBJECTS, "b,a", NULL);
    pf_suggestions_free(&all);

    suggest("[]", &all);
    assert_int_equal(all.count, 1);
    assert_item(&all.items[0], "$[*]", 0, PF_SUGGEST_EMPTY, "", NULL);
    pf_suggestions_free(&all);

    suggest("[[1,2],[3]]", &all);
    assert_int_equal(all.count, 2);
    assert_item(&all.items[0], "$[*]", 2, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[0].elements, "arrays");
    assert_item(&all.items[1], "$[*][*]", 3, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[1].elements, "numbers");
    pf_suggestions_free(&all);
}

/* Where a pattern reaches arrays and objects alike, [*] selects the
 * objects' member values too (JSONPath's wildcard); counts follow. */
static void test_wildcard_over_arrays_and_objects(void **state)
{
    (void)state;
    pf_suggestions all;
    suggest("[[1],{\"a\":[{\"id\":1}]}]", &all);
    assert_int_equal(all.count, 4);
    assert_item(&all.items[0], "$[*].a[*]", 1, PF_SUGGEST_OBJECTS, "id", "$.id");
    assert_item(&all.items[1], "$[*][*][*]", 1, PF_SUGGEST_OBJECTS, "id", "$.id");
    assert_item(&all.items[2], "$[*]", 2, PF_SUGGEST_MIXED, "a", NULL);
    assert_item(&all.items[3], "$[*][*]", 2, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[3].elements, "values");
    pf_suggestions_free(&all);
    /* Objects alone make no [*] candidate. */
    suggest("{\"o\":{\"x\":{\"k\":1},\"y\":{\"k\":2}}}", &all);
    for (size_t i = 0; i < all.count; i++)
        assert_null(strstr(all.items[i].path, "[*]"));
    pf_suggestions_free(&all);
}

/* Arrays of objects rank above arrays of scalars whatever their sizes. */
static void test_objects_above_scalars(void **state)
{
    (void)state;
    pf_suggestions all;
    suggest("{\"tags\":[\"a\",\"b\",\"c\",\"d\"],\"flags\":[true,false],\"nums\":[1,2.5],"
            "\"nulls\":[null],\"mix\":[1,\"a\",null],"
            "\"deep\":{\"items\":[{\"id\":7},{\"id\":8}]},\"mixed\":[{\"id\":1},2,\"s\"]}",
            &all);
    assert_item(&all.items[0], "$.deep.items[*]", 2, PF_SUGGEST_OBJECTS, "id", "$.id");
    assert_item(&all.items[1], "$.mixed[*]", 3, PF_SUGGEST_MIXED, "id", NULL);
    assert_int_equal(all.items[1].objects, 1);
    assert_item(&all.items[2], "$.tags[*]", 4, PF_SUGGEST_SCALARS, "", NULL);
    assert_item(&all.items[3], "$.mix[*]", 3, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[3].elements, "values");
    assert_item(&all.items[4], "$.flags[*]", 2, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[4].elements, "booleans");
    assert_item(&all.items[5], "$.nums[*]", 2, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[5].elements, "numbers");
    assert_item(&all.items[6], "$.nulls[*]", 1, PF_SUGGEST_SCALARS, "", NULL);
    assert_string_equal(all.items[6].elements, "nulls");
    /* Object members of the root, then the root itself, last. */
    assert_item(&all.items[7], "$.deep", 1, PF_SUGGEST_SINGLE, "items", NULL);
    assert_item(&all.items[8], "$", 1, PF_SUGGEST_SINGLE, "tags,flags,nums,nulls,mix,deep,mixed",
                NULL);
    assert_int_equal(all.count, 9);
    pf_suggestions_free(&all);
}

/* Key detection: id/uuid first, then GUID, then *_id and *Id; values
 * must be non-empty strings or integers, present and unique in every record. */
static void test_key_detection(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *key;
    } cases[] = {
        {"[{\"alert_id\":\"a1\",\"name\":\"x\"},{\"alert_id\":\"a2\",\"name\":\"y\"}]",
         "$.alert_id"},
        {"[{\"campaignId\":\"c\",\"uuid\":\"u1\"},{\"campaignId\":\"d\",\"uuid\":\"u2\"}]",
         "$.uuid"},
        {"[{\"id\":1},{\"id\":2},{\"id\":3}]", "$.id"},
        {"[{\"id\":1},{\"id\":1}]", NULL},
        {"[{\"id\":\"1\"},{\"id\":1}]", "$.id"}, /* a string and a number differ */
        {"[{\"id\":\"\"},{\"id\":\"x\"}]", NULL},
        {"[{\"id\":1.5},{\"id\":2.5}]", NULL},
        {"[{\"id\":null},{\"id\":\"x\"}]", NULL},
        {"[{\"id\":{\"a\":1}},{\"id\":{\"a\":2}}]", NULL},
        {"[{\"name\":\"a\"},{\"name\":\"b\"}]", NULL},
        {"[{\"identity\":\"a\"},{\"identity\":\"b\"}]", NULL},
        {"[{\"ID\":\"only one record\"}]", "$.ID"},
        {"[{\"GUID\":\"g1\",\"id\":\"a\"},{\"GUID\":\"g2\",\"id\":\"b\"}]", "$.id"},
        {"[{\"GUID\":\"g1\",\"id\":\"a\"},{\"GUID\":\"g1\",\"id\":\"b\"}]", "$.id"},
        {"[{\"threat_id\":\"t\",\"GUID\":\"g1\"},{\"threat_id\":\"t\",\"GUID\":\"g2\"}]", "$.GUID"},
        {"[{\"x\":1,\"my id\":\"a\"},{\"x\":2,\"my id\":\"b\"}]", NULL},
        {"[{\"Message_ID\":\"a\"},{\"Message_ID\":\"b\"}]", "$.Message_ID"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pf_suggestions all;
        suggest(cases[i].doc, &all);
        assert_true(all.count >= 1);
        assert_string_equal(all.items[0].path, "$[*]");
        if (cases[i].key == NULL && all.items[0].key)
            fail_msg("case %zu: unexpected key %s", i, all.items[0].key);
        if (cases[i].key) {
            if (!all.items[0].key) fail_msg("case %zu: no key, want %s", i, cases[i].key);
            assert_string_equal(all.items[0].key, cases[i].key);
        }
        pf_suggestions_free(&all);
    }
}

/* Member names that are not identifiers use bracket notation, escaped. */
static void test_bracket_notation(void **state)
{
    (void)state;
    pf_suggestions all;
    suggest("{\"a b\":[{\"k\":1}],\"x'y\\\\z\":[{\"k\":2}],\"\xc3\xbc\":[{\"k\":3}],"
            "\"1abc\":[{\"k\":4}],\"\":[{\"k\":5}],\"t\\tn\\n\\u0001\\u007f\\u0085\":[{\"k\":6}],"
            "\"_ok9\":[{\"k\":7}]}",
            &all);
    const char *want[] = {"$['a b'][*]",      "$['x\\'y\\\\z'][*]",
                          "$['\xc3\xbc'][*]", "$['1abc'][*]",
                          "$[''][*]",         "$['t\\tn\\n\\u0001\\u007f\\u0085'][*]",
                          "$._ok9[*]"};
    assert_int_equal(all.count, 8); /* the 7 arrays, then $ */
    for (size_t i = 0; i < 7; i++)
        assert_item(&all.items[i], want[i], 1, PF_SUGGEST_OBJECTS, "k", NULL);
    pf_suggestions_free(&all);

    pf_buf b;
    pf_buf_init(&b, 0);
    assert_int_equal(pf_suggest_member_segment(&b, "GUID", 4), PF_OK);
    assert_int_equal(pf_suggest_member_segment(&b, "a-b", 3), PF_OK);
    assert_string_equal(pf_buf_str(&b), ".GUID['a-b']");
    /* A capped buffer that cannot take the segment is left unchanged. */
    pf_buf small;
    pf_buf_init(&small, 4);
    assert_int_equal(pf_buf_puts(&small, "$"), PF_OK);
    assert_int_equal(pf_suggest_member_segment(&small, "long name", 9), PF_ETOOBIG);
    assert_string_equal(pf_buf_str(&small), "$");
    pf_buf_free(&small);
    pf_buf_free(&b);
}

/* Documents without arrays or objects have nothing to suggest. */
static void test_scalars_and_null(void **state)
{
    (void)state;
    static const char *const docs[] = {"42", "\"text\"", "null", "true"};
    for (size_t i = 0; i < 4; i++) {
        pf_suggestions all;
        suggest(docs[i], &all);
        assert_int_equal(all.count, 0);
        pf_suggestions_free(&all);
    }
    pf_suggestions all;
    pf_error e;
    assert_int_equal(pf_suggest(NULL, &all, &e), PF_OK);
    assert_int_equal(all.count, 0);
    pf_suggestions_free(&all);
    pf_suggestions_free(NULL);
}

/* Deeper than PF_SUGGEST_MAX_DEPTH: no crash, no longer path, flagged. */
static void test_depth_cap(void **state)
{
    (void)state;
    size_t levels = 200, cap = levels * 16 + 64, o = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    for (size_t i = 0; i < levels; i++)
        o += (size_t)snprintf(doc + o, cap - o, "{\"a\":[");
    o += (size_t)snprintf(doc + o, cap - o, "1");
    for (size_t i = 0; i < levels; i++)
        o += (size_t)snprintf(doc + o, cap - o, "]}");
    pf_suggestions all;
    suggest(doc, &all);
    assert_true(all.depth_capped);
    for (size_t i = 0; i < all.count; i++) {
        size_t segs = 0;
        for (const char *p = all.items[i].path; *p; p++)
            segs += *p == '.' || *p == '[';
        assert_true(segs <= PF_SUGGEST_MAX_DEPTH);
    }
    /* Best first: the shallowest array of objects. */
    assert_item(&all.items[0], "$.a[*]", 1, PF_SUGGEST_OBJECTS, "a", NULL);
    pf_suggestions_free(&all);
    free(doc);

    /* Nesting beyond the parser's limit is an error, not a crash. */
    size_t deep = PF_SUGGEST_MAX_NESTING + 10;
    char *d2 = malloc(deep * 2 + 1);
    assert_non_null(d2);
    memset(d2, '[', deep);
    memset(d2 + deep, ']', deep);
    d2[deep * 2] = '\0';
    pf_error e;
    assert_int_equal(pf_suggest_text(d2, deep * 2, &all, &e), PF_EDEPTH);
    assert_int_equal(all.count, 0);
    free(d2);
}

/* Many records: counts and keys over the whole array. */
static void test_many_records(void **state)
{
    (void)state;
    size_t n = 60000, cap = n * 48 + 64, o = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    o += (size_t)snprintf(doc + o, cap - o, "{\"messagesDelivered\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(doc + o, cap - o, "%s{\"GUID\":\"g%zu\",\"QID\":%zu}", i ? "," : "",
                              i, i % 7);
    snprintf(doc + o, cap - o, "]}");
    pf_suggestions all;
    pf_error e;
    assert_int_equal(pf_suggest_text(doc, strlen(doc), &all, &e), PF_OK);
    assert_item(&all.items[0], "$.messagesDelivered[*]", n, PF_SUGGEST_OBJECTS, "GUID,QID",
                "$.GUID");
    pf_suggestions_free(&all);
    free(doc);
}

static void test_parse_errors_have_offsets(void **state)
{
    (void)state;
    pf_suggestions all;
    pf_error e;
    assert_int_equal(pf_suggest_text("{\"a\": tru}", 10, &all, &e), PF_EDATA);
    assert_int_equal(e.offset, 9);
    assert_non_null(strstr(e.msg, "not valid JSON"));
    assert_int_equal(pf_suggest_text("[1] [2]", 7, &all, &e), PF_EDATA);
    assert_int_equal(e.offset, 4);
    assert_int_equal(pf_suggest_text("{\"a\": [1,", 9, &all, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "truncated"));
    assert_int_equal(pf_suggest_text(" \n\t", 3, &all, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "empty"));
    assert_int_equal(pf_suggest_text("<html>", 6, &all, &e), PF_EDATA);
    assert_int_equal(e.offset, 0);
    assert_int_equal(all.count, 0);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(pf_suggest_kind_name(PF_SUGGEST_OBJECTS), "objects");
    assert_string_equal(pf_suggest_kind_name(PF_SUGGEST_MIXED), "mixed");
    assert_string_equal(pf_suggest_kind_name(PF_SUGGEST_EMPTY), "empty");
    assert_string_equal(pf_suggest_kind_name(PF_SUGGEST_SCALARS), "scalars");
    assert_string_equal(pf_suggest_kind_name(PF_SUGGEST_SINGLE), "object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siem_ranking_fields_and_keys),
        cmocka_unit_test(test_root_array),
        cmocka_unit_test(test_objects_above_scalars),
        cmocka_unit_test(test_wildcard_over_arrays_and_objects),
        cmocka_unit_test(test_key_detection),
        cmocka_unit_test(test_bracket_notation),
        cmocka_unit_test(test_scalars_and_null),
        cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_many_records),
        cmocka_unit_test(test_parse_errors_have_offsets),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
