/* cts_runner.c: runs a JSONPath compliance file (the format of the RFC 9535
 * Compliance Test Suite: cases with selector, document, result/results,
 * result_paths/results_paths or invalid_selector) through the library and
 * prints "N/M passed". Our own cases may add "error_offset" (the byte offset
 * an invalid selector must be reported at). Exits 0 only if all pass.
 * Usage: jsonpath_cts FILE [-v] */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jsonpath.h"

static struct json_object *load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    struct json_tokener *tok = json_tokener_new_ex(256);
    struct json_object *o = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
    if (tok) json_tokener_free(tok);
    free(buf);
    return o;
}

/* Compares the nodelist with expected VALUES and PATHS (json arrays). */
static int matches(const pf_jp_nodelist *l, struct json_object *values, struct json_object *paths)
{
    if (json_object_array_length(values) != l->count) return 0;
    if (paths && json_object_array_length(paths) != l->count) return 0;
    for (size_t i = 0; i < l->count; i++) {
        if (!json_object_equal(l->nodes[i].value, json_object_array_get_idx(values, i))) return 0;
        if (paths && strcmp(l->nodes[i].path ? l->nodes[i].path : "",
                            json_object_get_string(json_object_array_get_idx(paths, i))) != 0)
            return 0;
    }
    return 1;
}

static void dump(const pf_jp_nodelist *l)
{
    struct json_object *a = json_object_new_array();
    struct json_object *p = json_object_new_array();
    for (size_t i = 0; i < l->count; i++) {
        json_object_array_add(a, json_object_get(l->nodes[i].value));
        json_object_array_add(p, json_object_new_string(l->nodes[i].path ? l->nodes[i].path : ""));
    }
    fprintf(stderr, "    got values: %s\n    got paths:  %s\n",
            json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN),
            json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
    json_object_put(a);
    json_object_put(p);
}

static int run_case(struct json_object *c, int verbose)
{
    struct json_object *sel, *doc = NULL, *v;
    const char *name = json_object_get_string(json_object_object_get(c, "name"));
    if (!json_object_object_get_ex(c, "selector", &sel)) {
        fprintf(stderr, "FAIL %s: no selector\n", name);
        return 0;
    }
    const char *q = json_object_get_string(sel);
    size_t qlen = (size_t)json_object_get_string_len(sel);
    int invalid =
        json_object_object_get_ex(c, "invalid_selector", &v) && json_object_get_boolean(v);
    pf_jsonpath *jp = NULL;
    pf_error err;
    pf_error_clear(&err);
    pf_status st = pf_jsonpath_compile(q, qlen, &jp, &err);
    if (invalid) {
        if (st == PF_OK) {
            fprintf(stderr, "FAIL %s: %s compiled but must be rejected\n", name, q);
            pf_jsonpath_free(jp);
            return 0;
        }
        if (json_object_object_get_ex(c, "error_offset", &v) &&
            json_object_get_int64(v) != err.offset) {
            fprintf(stderr, "FAIL %s: %s rejected at offset %ld, expected %lld (%s)\n", name, q,
                    err.offset, (long long)json_object_get_int64(v), err.msg);
            return 0;
        }
        if (verbose) fprintf(stderr, "ok   %s: %s at offset %ld\n", name, err.msg, err.offset);
        return 1;
    }
    if (st != PF_OK) {
        fprintf(stderr, "FAIL %s: %s rejected: %s at offset %ld\n", name, q, err.msg, err.offset);
        return 0;
    }
    json_object_object_get_ex(c, "document", &doc);
    pf_jp_nodelist l = {0};
    st = pf_jsonpath_eval(jp, doc, 1, &l, &err);
    int ok = 0;
    if (st != PF_OK) {
        fprintf(stderr, "FAIL %s: %s: evaluation failed: %s\n", name, q, err.msg);
    } else if (json_object_object_get_ex(c, "result", &v)) {
        struct json_object *paths = NULL;
        json_object_object_get_ex(c, "result_paths", &paths);
        ok = matches(&l, v, paths);
    } else if (json_object_object_get_ex(c, "results", &v)) {
        struct json_object *paths = NULL;
        json_object_object_get_ex(c, "results_paths", &paths);
        for (size_t i = 0; i < json_object_array_length(v) && !ok; i++)
            ok = matches(&l, json_object_array_get_idx(v, i),
                         paths ? json_object_array_get_idx(paths, i) : NULL);
    }
    if (!ok && st == PF_OK) {
        fprintf(stderr, "FAIL %s: %s\n", name, q);
        dump(&l);
    } else if (ok && verbose) {
        fprintf(stderr, "ok   %s\n", name);
    }
    pf_jp_nodelist_free(&l);
    pf_jsonpath_free(jp);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [-v]\n", argv[0]);
        return 2;
    }
    int verbose = argc > 2 && strcmp(argv[2], "-v") == 0;
    struct json_object *suite = load(argv[1]);
    struct json_object *tests;
    if (!suite || !json_object_object_get_ex(suite, "tests", &tests)) {
        fprintf(stderr, "%s: cannot read a test suite\n", argv[1]);
        json_object_put(suite);
        return 2;
    }
    size_t n = json_object_array_length(tests), passed = 0;
    for (size_t i = 0; i < n; i++)
        passed += (size_t)run_case(json_object_array_get_idx(tests, i), verbose);
    printf("%zu/%zu passed\n", passed, n);
    json_object_put(suite);
    return passed == n && n > 0 ? 0 : 1;
}
