/* test_yaml.c: the positioned YAML tree (pf_yaml_parse and the map helpers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/yaml.h"

static pf_ydoc *parse_ok(const char *text)
{
    pf_ydoc *d = NULL;
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_yaml_parse("test.yaml", text, strlen(text), &d, &e);
    if (st != PF_OK) fail_msg("parse failed: %s:%d:%d: %s", e.file, e.line, e.col, e.msg);
    assert_non_null(d);
    return d;
}

/* Parses TEXT expecting failure CODE; returns the error in *E. */
static void parse_bad(const char *text, pf_status code, pf_error *e)
{
    pf_ydoc *d = (pf_ydoc *)(uintptr_t)1;
    pf_error_clear(e);
    pf_status st = pf_yaml_parse("bad.yaml", text, strlen(text), &d, e);
    if (st != code) fail_msg("parse returned %d (%s), want %d", st, e->msg, code);
    assert_null(d);
    assert_int_equal(e->code, code);
}

static void assert_pos(const pf_ynode *n, int line, int col)
{
    assert_non_null(n);
    if (n->line != line || n->col != col)
        fail_msg("node '%s' at %d:%d, want %d:%d", n->kind == PF_Y_SCALAR ? n->value : "(coll)",
                 n->line, n->col, line, col);
}

static void assert_scalar(const pf_ynode *n, const char *value)
{
    assert_non_null(n);
    assert_int_equal(n->kind, PF_Y_SCALAR);
    assert_string_equal(n->value, value);
    assert_int_equal(n->len, strlen(value));
}

static void test_positions_of_nested_nodes(void **state)
{
    (void)state;
    const char *text = "root:\n"                /* 1 */
                       "  child:\n"             /* 2 */
                       "    - a\n"              /* 3 */
                       "    - key: \"v\"\n"     /* 4 */
                       "      other: 'w'\n"     /* 5 */
                       "  flow: [1, {x: y}]\n"; /* 6 */
    pf_ydoc *d = parse_ok(text);
    assert_string_equal(d->file, "test.yaml");
    const pf_ynode *root = d->root;
    assert_int_equal(root->kind, PF_Y_MAP);
    assert_pos(root, 1, 1);
    assert_int_equal(pf_ymap_size(root), 1);
    assert_pos(pf_ymap_key(root, 0), 1, 1);
    assert_string_equal(root->file, "test.yaml");

    const pf_ynode *inner = pf_ymap_get(root, "root");
    assert_int_equal(inner->kind, PF_Y_MAP);
    assert_pos(inner, 2, 3);
    assert_pos(pf_ymap_key(inner, 0), 2, 3);

    const pf_ynode *seq = pf_ymap_get(inner, "child");
    assert_int_equal(seq->kind, PF_Y_SEQ);
    assert_int_equal(seq->count, 2);
    assert_pos(seq, 3, 5);
    assert_scalar(seq->items[0], "a");
    assert_pos(seq->items[0], 3, 7);

    const pf_ynode *m = seq->items[1];
    assert_int_equal(m->kind, PF_Y_MAP);
    assert_pos(m, 4, 7);
    assert_pos(pf_ymap_key(m, 0), 4, 7);
    assert_scalar(pf_ymap_get(m, "key"), "v");
    assert_pos(pf_ymap_get(m, "key"), 4, 12);
    assert_pos(pf_ymap_key(m, 1), 5, 7);
    assert_scalar(pf_ymap_get(m, "other"), "w");
    assert_pos(pf_ymap_get(m, "other"), 5, 14);

    const pf_ynode *flow = pf_ymap_get(inner, "flow");
    assert_int_equal(flow->kind, PF_Y_SEQ);
    assert_pos(flow, 6, 9);
    assert_pos(flow->items[0], 6, 10);
    assert_pos(flow->items[1], 6, 13);
    assert_scalar(pf_ymap_get(flow->items[1], "x"), "y");
    assert_pos(pf_ymap_get(flow->items[1], "x"), 6, 17);

    /* Lookups that miss. */
    assert_null(pf_ymap_get(root, "nope"));
    assert_null(pf_ymap_get(seq, "a")); /* not a map */
    assert_null(pf_ymap_get(NULL, "a"));
    assert_int_equal(pf_ymap_size(seq), 0);
    pf_ydoc_free(d);
}

static void test_syntax_error_has_position(void **state)
{
    (void)state;
    pf_error e;
    parse_bad("a: b: c\n", PF_ESYNTAX, &e);
    assert_string_equal(e.file, "bad.yaml");
    assert_int_equal(e.line, 1);
    assert_int_equal(e.col, 5);

    parse_bad("ok: 1\nlist:\n  - b\n - c\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 4);
    assert_true(e.col >= 1);

    /* A tab used to indent is explained in words, at the tab. */
    parse_bad("source:\n\ttemplate: a\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 2);
    assert_int_equal(e.col, 1);
    assert_non_null(strstr(e.msg, "a tab character here: YAML indents with spaces only"));

    parse_bad("key: \"unterminated\n", PF_ESYNTAX, &e);
    assert_string_equal(e.file, "bad.yaml");
    assert_true(e.line >= 1);
    assert_non_null(strstr(e.msg, "quoted scalar"));

    /* The formatted form is FILE:LINE:COL: message. */
    char buf[600];
    parse_bad("a: b: c\n", PF_ESYNTAX, &e);
    pf_error_format(&e, buf, sizeof buf);
    assert_true(strncmp(buf, "bad.yaml:1:5: ", 14) == 0);
}

static void test_aliases_and_anchors_are_refused(void **state)
{
    (void)state;
    pf_error e;
    parse_bad("a: &x 1\nb: 2\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 1);
    assert_int_equal(e.col, 4);
    assert_non_null(strstr(e.msg, "anchor"));

    parse_bad("a: 1\nb: &m {c: 1}\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 2);
    assert_non_null(strstr(e.msg, "anchor"));

    parse_bad("list: &s\n  - 1\n", PF_ESYNTAX, &e);
    assert_non_null(strstr(e.msg, "anchor"));

    parse_bad("a: 1\nb: *x\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 2);
    assert_int_equal(e.col, 4);
    assert_non_null(strstr(e.msg, "alias"));

    /* "Billion laughs" never gets as far as expanding anything. */
    parse_bad("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", PF_ESYNTAX, &e);
}

static void test_duplicate_key_is_refused_with_position(void **state)
{
    (void)state;
    pf_error e;
    parse_bad("a: 1\nb: 2\na: 3\n", PF_ECONFIG, &e);
    assert_string_equal(e.file, "bad.yaml");
    assert_int_equal(e.line, 3);
    assert_int_equal(e.col, 1);
    assert_non_null(strstr(e.msg, "duplicate key 'a'"));
    assert_non_null(strstr(e.msg, "line 1"));

    /* Nested, and quoted/plain spellings of the same key. */
    parse_bad("outer:\n  k: 1\n  \"k\": 2\n", PF_ECONFIG, &e);
    assert_int_equal(e.line, 3);
    assert_int_equal(e.col, 3);

    /* Same key in different maps is fine. */
    pf_ydoc *d = parse_ok("x: {k: 1}\ny: {k: 2}\n");
    pf_ydoc_free(d);
}

/* A map of N keys "kI: I" (one per line, line I+1), then EXTRA lines. */
static char *big_map(size_t n, const char *extra)
{
    size_t cap = n * 24 + strlen(extra) + 1, o = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(t + o, cap - o, "k%zu: %zu\n", i, i);
    snprintf(t + o, cap - o, "%s", extra);
    return t;
}

/* Duplicates are found wherever they are, in maps small and large (the
 * large ones are indexed, not compared pairwise: an 80,000-key map parses
 * at once, where comparing every pair took most of a minute). No timing is
 * asserted; under a sanitizer the quadratic check would overrun ctest's
 * timeout. */
static void test_duplicate_keys_in_large_maps(void **state)
{
    (void)state;
    enum { N = 80000 };
    pf_error e;
    /* No duplicate: loads, every key findable. */
    char *t = big_map(N, "");
    pf_ydoc *d = parse_ok(t);
    assert_int_equal(pf_ymap_size(d->root), N);
    assert_scalar(pf_ymap_get(d->root, "k79999"), "79999");
    pf_ydoc_free(d);
    free(t);

    /* The first key again, at the end. */
    t = big_map(N, "k0: again\n");
    parse_bad(t, PF_ECONFIG, &e);
    assert_int_equal(e.line, N + 1);
    assert_int_equal(e.col, 1);
    assert_non_null(strstr(e.msg, "duplicate key 'k0'"));
    assert_non_null(strstr(e.msg, "first at line 1)"));
    free(t);

    /* A middle key, at the end. */
    t = big_map(N, "k40000: again\n");
    parse_bad(t, PF_ECONFIG, &e);
    assert_int_equal(e.line, N + 1);
    assert_non_null(strstr(e.msg, "duplicate key 'k40000' (first at line 40001)"));
    free(t);

    /* The last key, at once after it (quoted: the same key). */
    t = big_map(N, "\"k79999\": again\n");
    parse_bad(t, PF_ECONFIG, &e);
    assert_int_equal(e.line, N + 1);
    assert_non_null(strstr(e.msg, "duplicate key 'k79999' (first at line 80000)"));
    free(t);

    /* In the middle of a map, around the size where the index is built:
     * the first duplicate is the one reported. */
    for (size_t n = 14; n <= 70; n += 7) {
        char extra[64];
        snprintf(extra, sizeof extra, "k%zu: again\nk0: again\n", n / 2);
        t = big_map(n, extra);
        parse_bad(t, PF_ECONFIG, &e);
        assert_int_equal(e.line, (int)n + 1);
        char want[64];
        snprintf(want, sizeof want, "duplicate key 'k%zu' (first at line %zu)", n / 2, n / 2 + 1);
        assert_non_null(strstr(e.msg, want));
        free(t);
    }

    /* Large sibling and nested maps have their own keys; keys that differ
     * only after a NUL are different keys. */
    size_t cap = 2 * 200 * 32 + 256, o = 0;
    t = malloc(cap);
    assert_non_null(t);
    for (int m = 0; m < 2; m++) {
        o += (size_t)snprintf(t + o, cap - o, "m%d:\n", m);
        for (int i = 0; i < 200; i++)
            o += (size_t)snprintf(t + o, cap - o, "  k%d: %d\n", i, i);
    }
    snprintf(t + o, cap - o, "\"a\\0b\": 1\n\"a\\0c\": 2\n");
    d = parse_ok(t);
    assert_int_equal(pf_ymap_size(d->root), 4);
    assert_int_equal(pf_ymap_size(pf_ymap_get(d->root, "m1")), 200);
    pf_ydoc_free(d);
    free(t);
}

static void test_non_scalar_key_is_refused(void **state)
{
    (void)state;
    pf_error e;
    parse_bad("? [a, b]\n: c\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 1);
    assert_non_null(strstr(e.msg, "mapping keys"));
}

static char *nested(const char *open, const char *close, int n)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc((lo + lc) * (size_t)n + 1);
    assert_non_null(s);
    char *p = s;
    for (int i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    for (int i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void test_nesting_limit(void **state)
{
    (void)state;
    /* Exactly the limit is accepted. */
    char *s = nested("[", "]", PF_YAML_MAX_DEPTH);
    pf_ydoc *d = parse_ok(s);
    const pf_ynode *n = d->root;
    int depth = 0;
    while (n && n->kind == PF_Y_SEQ) {
        depth++;
        n = n->count ? n->items[0] : NULL;
    }
    assert_int_equal(depth, PF_YAML_MAX_DEPTH);
    pf_ydoc_free(d);
    free(s);

    /* One more is PF_EDEPTH, positioned at the collection that is too deep. */
    pf_error e;
    s = nested("[", "]", PF_YAML_MAX_DEPTH + 1);
    parse_bad(s, PF_EDEPTH, &e);
    assert_int_equal(e.line, 1);
    assert_int_equal(e.col, PF_YAML_MAX_DEPTH + 1);
    free(s);

    /* Mappings count too. */
    s = nested("{a: ", "}", PF_YAML_MAX_DEPTH + 1);
    parse_bad(s, PF_EDEPTH, &e);
    free(s);

    /* A hostile depth fails cleanly (no recursion, no crash). */
    s = nested("[", "]", 100000);
    parse_bad(s, PF_EDEPTH, &e);
    free(s);

    /* Block style. */
    char block[8192] = "";
    size_t o = 0;
    for (int i = 0; i <= PF_YAML_MAX_DEPTH; i++)
        o += (size_t)snprintf(block + o, sizeof block - o, "%*sk%d:\n", i, "", i);
    o += (size_t)snprintf(block + o, sizeof block - o, "%*sleaf\n", PF_YAML_MAX_DEPTH + 1, "");
    parse_bad(block, PF_EDEPTH, &e);
    assert_true(e.line > PF_YAML_MAX_DEPTH - 1);
}

static void test_only_one_document(void **state)
{
    (void)state;
    pf_error e;
    parse_bad("a: 1\n---\nb: 2\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 2);
    assert_non_null(strstr(e.msg, "one YAML document"));

    parse_bad("---\na: 1\n...\n---\nb: 2\n", PF_ESYNTAX, &e);
    assert_int_equal(e.line, 4);

    /* One explicit document is fine. */
    pf_ydoc *d = parse_ok("---\na: 1\n...\n");
    assert_scalar(pf_ymap_get(d->root, "a"), "1");
    pf_ydoc_free(d);
}

static void test_plain_and_quoted_scalars(void **state)
{
    (void)state;
    pf_ydoc *d = parse_ok("a: null\n"
                          "b: 'null'\n"
                          "c: \"true\"\n"
                          "d:\n"
                          "e: ~\n"
                          "f: 42\n"
                          "g: \"x\\0y\"\n"
                          "h: |\n"
                          "  text\n");
    const pf_ynode *r = d->root;
    const pf_ynode *a = pf_ymap_get(r, "a"), *b = pf_ymap_get(r, "b"), *c = pf_ymap_get(r, "c");
    assert_int_equal(a->plain, 1);
    assert_int_equal(pf_ynode_is_null(a), 1);
    assert_int_equal(b->plain, 0);
    assert_scalar(b, "null");
    assert_int_equal(pf_ynode_is_null(b), 0); /* quoted: the string "null" */
    assert_int_equal(c->plain, 0);
    assert_int_equal(pf_ynode_is_null(pf_ymap_get(r, "d")), 1); /* empty plain */
    assert_int_equal(pf_ymap_get(r, "d")->len, 0);
    assert_int_equal(pf_ynode_is_null(pf_ymap_get(r, "e")), 1);
    assert_int_equal(pf_ymap_get(r, "f")->plain, 1);
    assert_int_equal(pf_ynode_is_null(pf_ymap_get(r, "f")), 0);
    /* Embedded NUL: len counts it. */
    const pf_ynode *g = pf_ymap_get(r, "g");
    assert_int_equal(g->len, 3);
    assert_memory_equal(g->value, "x\0y", 3);
    const pf_ynode *h = pf_ymap_get(r, "h");
    assert_int_equal(h->plain, 0);
    assert_string_equal(h->value, "text\n");
    assert_int_equal(pf_ynode_is_null(NULL), 0);
    pf_ydoc_free(d);
}

static void test_ymap_set_replaces_and_adds(void **state)
{
    (void)state;
    pf_ydoc *d = parse_ok("a: 1\nb: {c: 2}\n");
    pf_ynode *root = d->root;

    /* Replacing keeps the size and the order; the old value is freed (ASan checks). */
    pf_ynode *v = pf_ynode_new_scalar(d->file, 7, 3, "x");
    assert_non_null(v);
    assert_int_equal(pf_ymap_set(root, "b", v), PF_OK);
    assert_int_equal(pf_ymap_size(root), 2);
    assert_ptr_equal(pf_ymap_get(root, "b"), v);
    assert_scalar(pf_ymap_key(root, 1), "b");
    assert_scalar(pf_ymap_get(root, "a"), "1");

    /* Adding appends the key and the value. */
    pf_ynode *w = pf_ynode_new_scalar(d->file, 9, 4, "new");
    assert_int_equal(pf_ymap_set(root, "c", w), PF_OK);
    assert_int_equal(pf_ymap_size(root), 3);
    assert_scalar(pf_ymap_key(root, 2), "c");
    assert_ptr_equal(pf_ymap_val(root, 2), w);
    assert_int_equal(pf_ymap_val(root, 2)->line, 9);

    /* A fresh map built from nothing. */
    pf_ynode *m = pf_ynode_new_map("m", 1, 1);
    assert_non_null(m);
    assert_int_equal(m->kind, PF_Y_MAP);
    assert_int_equal(pf_ymap_size(m), 0);
    for (int i = 0; i < 20; i++) {
        char k[8], val[8];
        snprintf(k, sizeof k, "k%d", i % 10);
        snprintf(val, sizeof val, "v%d", i);
        assert_int_equal(pf_ymap_set(m, k, pf_ynode_new_scalar("m", 1, 1, val)), PF_OK);
    }
    assert_int_equal(pf_ymap_size(m), 10);
    assert_scalar(pf_ymap_get(m, "k3"), "v13");
    assert_int_equal(pf_ymap_set(root, "m", m), PF_OK); /* a subtree moves in */
    assert_scalar(pf_ymap_get(pf_ymap_get(root, "m"), "k9"), "v19");
    pf_ydoc_free(d);
}

static void test_empty_document(void **state)
{
    (void)state;
    pf_ydoc *d = parse_ok("");
    assert_null(d->root);
    pf_ydoc_free(d);
    d = parse_ok("# only a comment\n\n");
    assert_null(d->root);
    pf_ydoc_free(d);
    /* An explicit empty document is a null scalar. */
    d = parse_ok("---\n");
    assert_true(d->root == NULL || pf_ynode_is_null(d->root));
    pf_ydoc_free(d);
    pf_ydoc_free(NULL);
}

static void test_size_limit_and_missing_file(void **state)
{
    (void)state;
    size_t n = PF_YAML_MAX_BYTES + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    pf_ydoc *d = NULL;
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_yaml_parse("big.yaml", big, n, &d, &e), PF_ETOOBIG);
    assert_null(d);
    free(big);

    pf_error_clear(&e);
    assert_int_equal(pf_yaml_load_file("/nonexistent/ppflow/x.yaml", &d, &e), PF_ENOTFOUND);
    assert_null(d);
    assert_non_null(strstr(e.file, "x.yaml"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_of_nested_nodes),
        cmocka_unit_test(test_syntax_error_has_position),
        cmocka_unit_test(test_aliases_and_anchors_are_refused),
        cmocka_unit_test(test_duplicate_key_is_refused_with_position),
        cmocka_unit_test(test_duplicate_keys_in_large_maps),
        cmocka_unit_test(test_non_scalar_key_is_refused),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_only_one_document),
        cmocka_unit_test(test_plain_and_quoted_scalars),
        cmocka_unit_test(test_ymap_set_replaces_and_adds),
        cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_size_limit_and_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
