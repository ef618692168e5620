/* query.c: the compiled-query object: compile (UTF-8 check, then the
 * parser), free, text, and the inspection helpers (singular, simple shape). */
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jp_ast.h"
#include "jsonpath/jp_utf8.h"

/* Precomputes the simple shape (see pf_jsonpath_simple_shape) of Q. */
static pf_status compute_shape(pf_jsonpath *q)
{
    const pf_jp_query *t = q->query;
    size_t nnames = 0, union_at = 0, nunion = 0;
    int wildcard = 0;
    size_t i = 0;
    while (i < t->nseg && !t->seg[i].descendant && t->seg[i].nsel == 1 &&
           t->seg[i].sel[0].kind == PF_JP_SEL_NAME)
        i++;
    nnames = i;
    if (i < t->nseg && !t->seg[i].descendant && t->seg[i].nsel >= 2) {
        for (size_t k = 0; k < t->seg[i].nsel; k++)
            if (t->seg[i].sel[k].kind != PF_JP_SEL_NAME) return PF_OK;
        union_at = i;
        nunion = t->seg[i].nsel;
        i++;
    }
    if (i < t->nseg && !t->seg[i].descendant && t->seg[i].nsel == 1 &&
        t->seg[i].sel[0].kind == PF_JP_SEL_WILDCARD) {
        wildcard = 1;
        i++;
    }
    if (i != t->nseg) return PF_OK;
    size_t total = nnames + nunion;
    if (total) {
        q->shape_names = calloc(total, sizeof *q->shape_names);
        q->shape_lens = calloc(total, sizeof *q->shape_lens);
        if (!q->shape_names || !q->shape_lens) return PF_ENOMEM;
        for (size_t k = 0; k < nnames; k++) {
            q->shape_names[k] = t->seg[k].sel[0].name;
            q->shape_lens[k] = t->seg[k].sel[0].name_len;
        }
        for (size_t k = 0; k < nunion; k++) {
            q->shape_names[nnames + k] = t->seg[union_at].sel[k].name;
            q->shape_lens[nnames + k] = t->seg[union_at].sel[k].name_len;
        }
    }
    q->simple = 1;
    q->shape.nnames = nnames;
    q->shape.names = nnames ? q->shape_names : NULL;
    q->shape.name_lens = nnames ? q->shape_lens : NULL;
    q->shape.nunion = nunion;
    q->shape.union_names = nunion ? q->shape_names + nnames : NULL;
    q->shape.union_lens = nunion ? q->shape_lens + nnames : NULL;
    q->shape.wildcard = wildcard;
    return PF_OK;
}

pf_status pf_jsonpath_compile(const char *query, size_t len, pf_jsonpath **out, pf_error *err)
{
    if (!out) return pf_error_set(err, PF_EINVAL, "pf_jsonpath_compile: OUT is NULL");
    *out = NULL;
    if (!query && len) return pf_error_set(err, PF_EINVAL, "pf_jsonpath_compile: QUERY is NULL");
    if (!query) query = "";
    size_t bad = pf_jp_utf8_check(query, len);
    if (bad != len) return pf_error_off(err, PF_ESYNTAX, (long)bad, "invalid UTF-8 in the query");
    pf_jsonpath *q = calloc(1, sizeof *q);
    if (!q) return pf_error_off(err, PF_ENOMEM, 0, "out of memory compiling the query");
    q->text = malloc(len + 1);
    if (!q->text) {
        free(q);
        return pf_error_off(err, PF_ENOMEM, 0, "out of memory compiling the query");
    }
    memcpy(q->text, query, len);
    q->text[len] = '\0';
    q->len = len;
    pf_status st = pf_jp_parse(q->text, len, &q->query, err);
    if (st == PF_OK && compute_shape(q) != PF_OK)
        st = pf_error_off(err, PF_ENOMEM, 0, "out of memory compiling the query");
    if (st != PF_OK) {
        pf_jsonpath_free(q);
        return st;
    }
    *out = q;
    return PF_OK;
}

void pf_jsonpath_free(pf_jsonpath *q)
{
    if (!q) return;
    pf_jp_query_free(q->query);
    free(q->shape_names);
    free(q->shape_lens);
    free(q->text);
    free(q);
}

const char *pf_jsonpath_text(const pf_jsonpath *q)
{
    return q->text;
}

int pf_jsonpath_is_singular(const pf_jsonpath *q)
{
    return q->query->singular;
}

int pf_jsonpath_simple_shape(const pf_jsonpath *q, pf_jp_shape *shape)
{
    if (!q->simple) {
        memset(shape, 0, sizeof *shape);
        return 0;
    }
    *shape = q->shape;
    return 1;
}
