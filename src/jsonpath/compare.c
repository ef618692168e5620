/* compare.c: RFC 9535 comparisons of filter values: numbers compared
 * exactly across int64 and double, strings by Unicode scalar values, deep
 * equality of arrays and objects with an explicit stack (no recursion, so a
 * deep document cannot overflow the C stack). */
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jp_value.h"

void pf_jp_value_of_json(pf_jp_value *v, struct json_object *j)
{
    memset(v, 0, sizeof *v);
    switch (json_object_get_type(j)) {
    case json_type_null:
        v->kind = PF_JP_V_NULL;
        break;
    case json_type_boolean:
        v->kind = PF_JP_V_BOOL;
        v->b = json_object_get_boolean(j) ? 1 : 0;
        break;
    case json_type_int: {
        int64_t i = json_object_get_int64(j);
        if (i == INT64_MAX) {
            uint64_t u = json_object_get_uint64(j);
            if (u > (uint64_t)INT64_MAX) {
                v->kind = PF_JP_V_DOUBLE;
                v->d = (double)u;
                break;
            }
        }
        v->kind = PF_JP_V_INT;
        v->i = i;
        break;
    }
    case json_type_double:
        v->kind = PF_JP_V_DOUBLE;
        v->d = json_object_get_double(j);
        break;
    case json_type_string:
        v->kind = PF_JP_V_STRING;
        v->s = json_object_get_string(j);
        v->slen = (size_t)json_object_get_string_len(j);
        break;
    case json_type_array:
        v->kind = PF_JP_V_ARRAY;
        v->j = j;
        break;
    case json_type_object:
        v->kind = PF_JP_V_OBJECT;
        v->j = j;
        break;
    }
}

void pf_jp_value_of_literal(pf_jp_value *v, const pf_jp_literal *lit)
{
    memset(v, 0, sizeof *v);
    switch (lit->kind) {
    case PF_JP_LIT_NULL:
        v->kind = PF_JP_V_NULL;
        break;
    case PF_JP_LIT_TRUE:
        v->kind = PF_JP_V_BOOL;
        v->b = 1;
        break;
    case PF_JP_LIT_FALSE:
        v->kind = PF_JP_V_BOOL;
        break;
    case PF_JP_LIT_INT:
        v->kind = PF_JP_V_INT;
        v->i = lit->i;
        break;
    case PF_JP_LIT_DOUBLE:
        v->kind = PF_JP_V_DOUBLE;
        v->d = lit->d;
        break;
    case PF_JP_LIT_STRING:
        v->kind = PF_JP_V_STRING;
        v->s = lit->s;
        v->slen = lit->slen;
        break;
    }
}

static int is_number(const pf_jp_value *v)
{
    return v->kind == PF_JP_V_INT || v->kind == PF_JP_V_DOUBLE;
}

/* Three-way comparison of int I and double D, exact; 2 when unordered (NaN). */
static int cmp_int_double(int64_t i, double d)
{
    if (isnan(d)) return 2;
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    double t = trunc(d);
    int64_t ti = (int64_t)t;
    if (i < ti) return -1;
    if (i > ti) return 1;
    if (d > t) return -1;
    if (d < t) return 1;
    return 0;
}

/* Three-way numeric comparison; 2 when unordered. */
static int cmp_numbers(const pf_jp_value *a, const pf_jp_value *b)
{
    if (a->kind == PF_JP_V_INT && b->kind == PF_JP_V_INT) return a->i < b->i ? -1 : a->i > b->i;
    if (a->kind == PF_JP_V_INT) return cmp_int_double(a->i, b->d);
    if (b->kind == PF_JP_V_INT) {
        int c = cmp_int_double(b->i, a->d);
        return c == 2 ? 2 : -c;
    }
    if (a->d < b->d) return -1;
    if (a->d > b->d) return 1;
    if (a->d == b->d) return 0;
    return 2;
}

static int cmp_strings(const pf_jp_value *a, const pf_jp_value *b)
{
    size_t n = a->slen < b->slen ? a->slen : b->slen;
    int c = memcmp(a->s, b->s, n);
    if (c) return c < 0 ? -1 : 1;
    return a->slen < b->slen ? -1 : a->slen > b->slen;
}

typedef struct pair {
    struct json_object *a, *b;
} pair;

typedef struct pair_stack {
    pair *p;
    size_t n, cap;
} pair_stack;

static int push(pair_stack *s, struct json_object *a, struct json_object *b)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        pair *np = realloc(s->p, cap * sizeof *np);
        if (!np) return -1;
        s->p = np;
        s->cap = cap;
    }
    s->p[s->n].a = a;
    s->p[s->n].b = b;
    s->n++;
    return 0;
}

/* Shallow equality: 1 equal, 0 not; for two arrays or two objects of the
 * same size, pushes their children for later and answers 1. */
static int shallow_equal(const pf_jp_value *a, const pf_jp_value *b, pair_stack *s, int *oom)
{
    if (is_number(a) && is_number(b)) return cmp_numbers(a, b) == 0;
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case PF_JP_V_NOTHING:
    case PF_JP_V_NULL:
        return 1;
    case PF_JP_V_BOOL:
        return a->b == b->b;
    case PF_JP_V_STRING:
        return a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0;
    case PF_JP_V_ARRAY: {
        size_t n = json_object_array_length(a->j);
        if (n != json_object_array_length(b->j)) return 0;
        for (size_t i = n; i-- > 0;) {
            if (push(s, json_object_array_get_idx(a->j, i), json_object_array_get_idx(b->j, i))) {
                *oom = 1;
                return 0;
            }
        }
        return 1;
    }
    case PF_JP_V_OBJECT: {
        if (json_object_object_length(a->j) != json_object_object_length(b->j)) return 0;
        json_object_object_foreach(a->j, key, va)
        {
            struct json_object *vb;
            if (!json_object_object_get_ex(b->j, key, &vb)) return 0;
            if (push(s, va, vb)) {
                *oom = 1;
                return 0;
            }
        }
        return 1;
    }
    case PF_JP_V_INT:
    case PF_JP_V_DOUBLE:
        break;
    }
    return 0;
}

static pf_status equal(const pf_jp_value *a, const pf_jp_value *b, int *eq,
                       unsigned long long *work, unsigned long long max_work)
{
    pair_stack s = {NULL, 0, 0};
    int oom = 0;
    pf_status st = PF_OK;
    (*work)++;
    int r = shallow_equal(a, b, &s, &oom);
    while (r && !oom && s.n > 0) {
        if (++*work > max_work) {
            st = PF_ETOOBIG;
            break;
        }
        pair pr = s.p[--s.n];
        pf_jp_value va, vb;
        pf_jp_value_of_json(&va, pr.a);
        pf_jp_value_of_json(&vb, pr.b);
        r = shallow_equal(&va, &vb, &s, &oom);
    }
    free(s.p);
    if (oom) return PF_ENOMEM;
    *eq = r;
    return st;
}

/* "A < B": numbers and strings only. */
static int less(const pf_jp_value *a, const pf_jp_value *b)
{
    if (is_number(a) && is_number(b)) return cmp_numbers(a, b) == -1;
    if (a->kind == PF_JP_V_STRING && b->kind == PF_JP_V_STRING) return cmp_strings(a, b) < 0;
    return 0;
}

pf_status pf_jp_compare(const pf_jp_value *a, pf_jp_cmp_op op, const pf_jp_value *b, int *result,
                        unsigned long long *work, unsigned long long max_work)
{
    int eq = 0;
    pf_status st = PF_OK;
    switch (op) {
    case PF_JP_EQ:
    case PF_JP_NE:
        st = equal(a, b, &eq, work, max_work);
        *result = op == PF_JP_EQ ? eq : !eq;
        return st;
    case PF_JP_LT:
        *result = less(a, b);
        return PF_OK;
    case PF_JP_GT:
        *result = less(b, a);
        return PF_OK;
    case PF_JP_LE:
    case PF_JP_GE:
        if (op == PF_JP_LE ? less(a, b) : less(b, a)) {
            *result = 1;
            return PF_OK;
        }
        st = equal(a, b, &eq, work, max_work);
        *result = eq;
        return st;
    }
    *result = 0;
    return PF_OK;
}
