/* bench_jsonpath.c: the JSONPath evaluator on the compliance suite's valid
 * queries, for the benchmark (tests/bench/run.sh).
 *
 *   bench_jsonpath CTS.json [ROUNDS]
 *
 * Compiles every valid query of the suite and parses its document once, then
 * evaluates every (query, document) pair ROUNDS times (default 2000) without
 * normalized paths. Prints on stdout
 *   queries=N rounds=R evaluations=E nodes=K seconds=S evals_per_sec=X ns_per_eval=Y
 * Exit 0 on success. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonpath/jsonpath.h"

typedef struct bcase {
    pf_jsonpath *q;
    json_object *doc; /* borrowed from the suite */
} bcase;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s CTS.json [ROUNDS]\n", argv[0]);
        return 2;
    }
    long rounds = argc == 3 ? strtol(argv[2], NULL, 10) : 2000;
    if (rounds <= 0) rounds = 1;
    json_object *suite = json_object_from_file(argv[1]);
    json_object *tests = suite ? json_object_object_get(suite, "tests") : NULL;
    if (!tests) {
        fprintf(stderr, "%s: not a compliance suite file\n", argv[1]);
        return 1;
    }
    size_t n = json_object_array_length(tests), nc = 0;
    bcase *cases = calloc(n ? n : 1, sizeof *cases);
    if (!cases) return 1;
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(tests, i), *sel, *doc, *inv;
        if (json_object_object_get_ex(c, "invalid_selector", &inv) && json_object_get_boolean(inv))
            continue;
        if (!json_object_object_get_ex(c, "selector", &sel) ||
            !json_object_object_get_ex(c, "document", &doc))
            continue;
        pf_jsonpath *q = NULL;
        if (pf_jsonpath_compile(json_object_get_string(sel),
                                (size_t)json_object_get_string_len(sel), &q, NULL) != PF_OK) {
            fprintf(stderr, "valid query does not compile: %s\n", json_object_get_string(sel));
            return 1;
        }
        cases[nc].q = q;
        cases[nc].doc = doc;
        nc++;
    }
    unsigned long long evals = 0, nodes = 0;
    pf_jp_nodelist l = {0};
    double t0 = now();
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < nc; i++) {
            pf_error err;
            if (pf_jsonpath_eval(cases[i].q, cases[i].doc, 0, &l, &err) != PF_OK) {
                fprintf(stderr, "%s: %s\n", pf_jsonpath_text(cases[i].q), err.msg);
                return 1;
            }
            nodes += l.count;
            pf_jp_nodelist_free(&l);
            evals++;
        }
    }
    double secs = now() - t0;
    pf_jp_nodelist_free(&l);
    printf("queries=%zu rounds=%ld evaluations=%llu nodes=%llu seconds=%.3f evals_per_sec=%.0f "
           "ns_per_eval=%.0f\n",
           nc, rounds, evals, nodes, secs, secs > 0 ? (double)evals / secs : 0.0,
           evals ? secs * 1e9 / (double)evals : 0.0);
    for (size_t i = 0; i < nc; i++)
        pf_jsonpath_free(cases[i].q);
    free(cases);
    json_object_put(suite);
    return 0;
}
