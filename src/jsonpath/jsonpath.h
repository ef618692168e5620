/* jsonpath.h: the public contract of ppflow's RFC 9535 JSONPath engine.
 *
 * A query is compiled once into an immutable tree (pf_jsonpath), then
 * evaluated any number of times, from any number of threads, against json-c
 * documents. Evaluation is a pure function of (compiled query, document): it
 * returns a nodelist, each node a value borrowed from the document plus,
 * on request, its normalized path ("$['a'][0]", RFC 9535 section 2.7).
 *
 * Dialect: exactly RFC 9535, no extensions; the function extensions are the
 * standard's length, count, value, match and search (I-Regexp, RFC 9485).
 * Limits (query nesting, descendant depth, evaluation work) keep hostile
 * queries and documents from exhausting the stack or the CPU; see
 * docs/jsonpath.md. */
#ifndef PF_JSONPATH_JSONPATH_H
#define PF_JSONPATH_JSONPATH_H

#include <stddef.h>

#include "util/status.h"

struct json_object;

/* Deepest nesting of filters, parentheses, '!' and function calls a query
 * may have; deeper queries fail to compile with PF_EDEPTH. */
#define PF_JP_MAX_QUERY_NESTING 64

/* Default deepest level below its starting node that a descendant segment
 * ("..") visits; deeper documents make evaluation fail with PF_EDEPTH. */
#define PF_JP_DEFAULT_MAX_DEPTH 10000

/* Default evaluation budget: roughly the number of nodes selected, visited
 * or compared; exceeding it makes evaluation fail with PF_ETOOBIG. */
#define PF_JP_DEFAULT_MAX_WORK 200000000ULL

/* A compiled query: immutable, shareable across threads. */
typedef struct pf_jsonpath pf_jsonpath;

typedef struct pf_jp_node {
    struct json_object *value; /* borrowed from the document (NULL = JSON null) */
    char *path; /* normalized path, owned by the nodelist; NULL when paths were not requested */
} pf_jp_node;

typedef struct pf_jp_nodelist {
    pf_jp_node *nodes; /* owned; NULL while empty */
    size_t count;      /* nodes in use */
    size_t cap;        /* nodes allocated */
} pf_jp_nodelist;

/* Compiles QUERY (LEN bytes, need not be NUL-terminated; must be UTF-8).
 * On success returns PF_OK and stores a new query in *OUT (free it with
 * pf_jsonpath_free). On failure returns PF_ESYNTAX (invalid query, including
 * a badly typed one), PF_EDEPTH (nesting above PF_JP_MAX_QUERY_NESTING) or
 * PF_ENOMEM, leaves *OUT NULL and fills ERR (may be NULL) via pf_error_off
 * with the byte offset of the problem, e.g. "unexpected ']'" at offset 7.
 * QUERY may be NULL only when LEN is 0 (an empty query is a syntax error).
 * OUT must not be NULL (PF_EINVAL). */
pf_status pf_jsonpath_compile(const char *query, size_t len, pf_jsonpath **out, pf_error *err);

/* Frees Q; NULL is accepted. */
void pf_jsonpath_free(pf_jsonpath *q);

/* Returns the query text as given to pf_jsonpath_compile (NUL-terminated;
 * owned by Q, valid until Q is freed). Q must not be NULL. */
const char *pf_jsonpath_text(const pf_jsonpath *q);

/* Evaluates Q against DOC (NULL = JSON null) and appends the resulting
 * nodes, in RFC 9535 order, to OUT (which the caller zero-initialises, or
 * reuses after pf_jp_nodelist_free). WANT_PATHS non-zero: fill each node's
 * path. Equivalent to pf_jsonpath_eval_limited with the default limits.
 * Fails with PF_ENOMEM, PF_EDEPTH (a descendant segment went deeper than
 * PF_JP_DEFAULT_MAX_DEPTH) or PF_ETOOBIG (work above PF_JP_DEFAULT_MAX_WORK),
 * filling ERR (may be NULL); on failure OUT is left as it was on entry.
 * The values stay valid as long as DOC does. Q and OUT must not be NULL. */
pf_status pf_jsonpath_eval(const pf_jsonpath *q, struct json_object *doc, int want_paths,
                           pf_jp_nodelist *out, pf_error *err);

/* As pf_jsonpath_eval with explicit limits: MAX_DEPTH levels of descendant
 * traversal (0 = PF_JP_DEFAULT_MAX_DEPTH) and MAX_WORK units of work
 * (0 = PF_JP_DEFAULT_MAX_WORK). */
pf_status pf_jsonpath_eval_limited(const pf_jsonpath *q, struct json_object *doc, int want_paths,
                                   size_t max_depth, unsigned long long max_work,
                                   pf_jp_nodelist *out, pf_error *err);

/* Frees every path and the node array, not the values; L may be NULL.
 * Leaves L zeroed, ready for reuse. */
void pf_jp_nodelist_free(pf_jp_nodelist *l);

/* Returns 1 when Q is a singular query (only single-name or single-index
 * child segments, so it selects at most one node), else 0. Q must not be NULL. */
int pf_jsonpath_is_singular(const pf_jsonpath *q);

/* The shape of a query simple enough for a streaming fast path:
 *   $                      names = {}                wildcard 0
 *   $.a.b   $['a']['b']    names = {a,b}             wildcard 0
 *   $.a.b[*]   $[*]        names = {a,b} / {}        wildcard 1
 *   $.a['x','y'][*]        names = {a}, union {x,y}  wildcard 1
 * i.e. a sequence of child segments each with one name selector, then
 * optionally one child segment of two or more name selectors (duplicates
 * kept, in order), then optionally one child segment "[*]" (or ".*").
 * Every pointer is borrowed from the query and valid until it is freed. */
typedef struct pf_jp_shape {
    size_t nnames;            /* single-name child segments, in order */
    const char *const *names; /* NUL-terminated names (NULL when nnames is 0) */
    const size_t *name_lens;  /* byte length of each name */
    size_t nunion;            /* names of the union segment; 0 when there is none */
    const char *const *union_names;
    const size_t *union_lens;
    int wildcard; /* 1 when the query ends with [*] */
} pf_jp_shape;

/* Returns 1 and fills *SHAPE when Q has one of the simple shapes above;
 * returns 0 (and zeroes *SHAPE) otherwise. Q and SHAPE must not be NULL. */
int pf_jsonpath_simple_shape(const pf_jsonpath *q, pf_jp_shape *shape);

#endif
