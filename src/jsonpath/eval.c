/* eval.c: evaluates a compiled JSONPath query against a json-c document
 * (RFC 9535 section 2.3 semantics), producing a nodelist with optional
 * normalized paths.
 *
 * Safety: descendant segments walk the document with an explicit stack and
 * stop at a depth limit; recursion follows the query tree only (bounded by
 * PF_JP_MAX_QUERY_NESTING at compile time); a work counter bounds the total
 * effort (nodes selected, visited, compared), so a small hostile query
 * cannot run for hours. Paths are kept as parent links during evaluation and
 * turned into strings only for the final nodes. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jp_ast.h"
#include "jsonpath/jp_normpath.h"
#include "jsonpath/jp_regex.h"
#include "jsonpath/jp_utf8.h"
#include "jsonpath/jp_value.h"

typedef struct plink {
    size_t parent;    /* index of the parent link; link 0 is "$" */
    const char *name; /* borrowed (query or document); NULL for an index */
    size_t name_len;
    size_t index;
} plink;

typedef struct item {
    struct json_object *v;
    size_t link; /* 0 when paths are not tracked */
} item;

typedef struct list {
    item *it;
    size_t n, cap;
} list;

typedef struct ctx {
    struct json_object *root;
    int paths;     /* track links for the top-level query */
    int in_filter; /* > 0 while evaluating filter expressions: no links */
    plink *links;
    size_t nlinks, caplinks;
    size_t max_depth;
    unsigned long long work, max_work;
    pf_error *err;
    pf_jp_regex_scratch rs;
    /* the last pattern compiled from document data */
    char *dyn_pat;
    size_t dyn_len;
    int dyn_anchored, dyn_valid;
    pf_jp_regex *dyn_re;
} ctx;

static pf_status eval_logical(ctx *c, const pf_jp_expr *e, struct json_object *cur, int *res);
static pf_status eval_query(ctx *c, const pf_jp_query *q, struct json_object *cur, list *out);

static pf_status oom(ctx *c)
{
    return pf_error_set(c->err, PF_ENOMEM, "out of memory evaluating the query");
}

static pf_status charge(ctx *c, unsigned long long n)
{
    c->work += n;
    if (c->work > c->max_work)
        return pf_error_set(c->err, PF_ETOOBIG, "query evaluation exceeds the work limit (%llu)",
                            c->max_work);
    return PF_OK;
}

static void list_free(list *l)
{
    free(l->it);
    l->it = NULL;
    l->n = l->cap = 0;
}

static pf_status list_push(ctx *c, list *l, struct json_object *v, size_t link)
{
    pf_status st = charge(c, 1);
    if (st != PF_OK) return st;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        item *n = realloc(l->it, cap * sizeof *n);
        if (!n) return oom(c);
        l->it = n;
        l->cap = cap;
    }
    l->it[l->n].v = v;
    l->it[l->n].link = link;
    l->n++;
    return PF_OK;
}

/* Records the step from PARENT to a child; returns the new link in *OUT
 * (0 when paths are not tracked). */
static pf_status new_link(ctx *c, size_t parent, const char *name, size_t name_len, size_t index,
                          size_t *out)
{
    *out = 0;
    if (!c->paths || c->in_filter) return PF_OK;
    if (c->nlinks == c->caplinks) {
        size_t cap = c->caplinks ? c->caplinks * 2 : 64;
        plink *n = realloc(c->links, cap * sizeof *n);
        if (!n) return oom(c);
        c->links = n;
        c->caplinks = cap;
    }
    plink *l = &c->links[c->nlinks];
    l->parent = parent;
    l->name = name;
    l->name_len = name_len;
    l->index = index;
    *out = c->nlinks++;
    return PF_OK;
}

static pf_status push_member(ctx *c, list *out, const item *from, const char *key, size_t klen,
                             struct json_object *v)
{
    size_t link;
    pf_status st = new_link(c, from->link, key, klen, 0, &link);
    return st != PF_OK ? st : list_push(c, out, v, link);
}

static pf_status push_element(ctx *c, list *out, const item *from, size_t i, struct json_object *v)
{
    size_t link;
    pf_status st = new_link(c, from->link, NULL, 0, i, &link);
    return st != PF_OK ? st : list_push(c, out, v, link);
}

/* ---- selectors ------------------------------------------------------- */

static pf_status select_slice(ctx *c, const pf_jp_selector *s, const item *it, list *out)
{
    int64_t len = (int64_t)json_object_array_length(it->v);
    int64_t step = s->step;
    if (step == 0) return PF_OK;
    int64_t start = s->has_start ? s->start : (step > 0 ? 0 : len - 1);
    int64_t end = s->has_end ? s->end : (step > 0 ? len : -len - 1);
    int64_t ns = start >= 0 ? start : len + start;
    int64_t ne = end >= 0 ? end : len + end;
    pf_status st = PF_OK;
    if (step > 0) {
        int64_t lower = ns < 0 ? 0 : (ns > len ? len : ns);
        int64_t upper = ne < 0 ? 0 : (ne > len ? len : ne);
        for (int64_t i = lower; i < upper && st == PF_OK; i += step)
            st = push_element(c, out, it, (size_t)i, json_object_array_get_idx(it->v, (size_t)i));
    } else {
        int64_t upper = ns < -1 ? -1 : (ns > len - 1 ? len - 1 : ns);
        int64_t lower = ne < -1 ? -1 : (ne > len - 1 ? len - 1 : ne);
        for (int64_t i = upper; lower < i && st == PF_OK; i += step)
            st = push_element(c, out, it, (size_t)i, json_object_array_get_idx(it->v, (size_t)i));
    }
    return st;
}

static pf_status filter_test(ctx *c, const pf_jp_expr *f, struct json_object *v, int *keep)
{
    pf_status st = charge(c, 1);
    if (st != PF_OK) return st;
    c->in_filter++;
    st = eval_logical(c, f, v, keep);
    c->in_filter--;
    return st;
}

static pf_status select_one(ctx *c, const pf_jp_selector *s, const item *it, list *out)
{
    struct json_object *v = it->v;
    enum json_type t = json_object_get_type(v);
    pf_status st = PF_OK;
    switch (s->kind) {
    case PF_JP_SEL_NAME: {
        struct json_object *m;
        if (t == json_type_object && strlen(s->name) == s->name_len &&
            json_object_object_get_ex(v, s->name, &m))
            st = push_member(c, out, it, s->name, s->name_len, m);
        return st;
    }
    case PF_JP_SEL_WILDCARD:
        if (t == json_type_array) {
            size_t n = json_object_array_length(v);
            for (size_t i = 0; i < n && st == PF_OK; i++)
                st = push_element(c, out, it, i, json_object_array_get_idx(v, i));
        } else if (t == json_type_object) {
            json_object_object_foreach(v, key, m)
            {
                if ((st = push_member(c, out, it, key, strlen(key), m)) != PF_OK) break;
            }
        }
        return st;
    case PF_JP_SEL_INDEX:
        if (t == json_type_array) {
            int64_t n = (int64_t)json_object_array_length(v);
            int64_t i = s->index < 0 ? n + s->index : s->index;
            if (i >= 0 && i < n)
                st = push_element(c, out, it, (size_t)i, json_object_array_get_idx(v, (size_t)i));
        }
        return st;
    case PF_JP_SEL_SLICE:
        return t == json_type_array ? select_slice(c, s, it, out) : PF_OK;
    case PF_JP_SEL_FILTER:
        if (t == json_type_array) {
            size_t n = json_object_array_length(v);
            for (size_t i = 0; i < n && st == PF_OK; i++) {
                struct json_object *e = json_object_array_get_idx(v, i);
                int keep = 0;
                st = filter_test(c, s->filter, e, &keep);
                if (st == PF_OK && keep) st = push_element(c, out, it, i, e);
            }
        } else if (t == json_type_object) {
            json_object_object_foreach(v, key, m)
            {
                int keep = 0;
                st = filter_test(c, s->filter, m, &keep);
                if (st == PF_OK && keep) st = push_member(c, out, it, key, strlen(key), m);
                if (st != PF_OK) break;
            }
        }
        return st;
    }
    return PF_OK;
}

static pf_status select_all(ctx *c, const pf_jp_segment *seg, const item *it, list *out)
{
    pf_status st = PF_OK;
    for (size_t i = 0; i < seg->nsel && st == PF_OK; i++)
        st = select_one(c, &seg->sel[i], it, out);
    return st;
}

/* ---- descendant traversal ---------------------------------------------- */

typedef struct frame {
    item it;
    size_t depth;
} frame;

typedef struct fstack {
    frame *f;
    size_t n, cap;
} fstack;

static pf_status fpush(ctx *c, fstack *s, struct json_object *v, size_t link, size_t depth)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        frame *n = realloc(s->f, cap * sizeof *n);
        if (!n) return oom(c);
        s->f = n;
        s->cap = cap;
    }
    s->f[s->n].it.v = v;
    s->f[s->n].it.link = link;
    s->f[s->n].depth = depth;
    s->n++;
    return PF_OK;
}

static int is_container(struct json_object *v)
{
    enum json_type t = json_object_get_type(v);
    return t == json_type_array || t == json_type_object;
}

/* Pushes the container children of FR, so that they pop in document order. */
static pf_status push_children(ctx *c, fstack *s, const frame *fr)
{
    struct json_object *v = fr->it.v;
    size_t mark = s->n;
    size_t depth = fr->depth + 1;
    pf_status st = PF_OK;
    if (json_object_get_type(v) == json_type_array) {
        size_t n = json_object_array_length(v);
        for (size_t i = n; i-- > 0 && st == PF_OK;) {
            struct json_object *e = json_object_array_get_idx(v, i);
            if (!is_container(e)) continue;
            if (depth > c->max_depth) goto too_deep;
            size_t link;
            if ((st = new_link(c, fr->it.link, NULL, 0, i, &link)) == PF_OK)
                st = fpush(c, s, e, link, depth);
        }
        return st;
    }
    json_object_object_foreach(v, key, m)
    {
        if (!is_container(m)) continue;
        if (depth > c->max_depth) goto too_deep;
        size_t link;
        if ((st = new_link(c, fr->it.link, key, strlen(key), 0, &link)) != PF_OK) return st;
        if ((st = fpush(c, s, m, link, depth)) != PF_OK) return st;
    }
    /* members were pushed in order; reverse them so the first pops first */
    for (size_t i = mark, j = s->n; i + 1 < j; i++, j--) {
        frame t = s->f[i];
        s->f[i] = s->f[j - 1];
        s->f[j - 1] = t;
    }
    return PF_OK;
too_deep:
    return pf_error_set(c->err, PF_EDEPTH,
                        "descendant segment goes deeper than %zu levels into the document",
                        c->max_depth);
}

static pf_status descend(ctx *c, const pf_jp_segment *seg, const item *start, list *out)
{
    fstack s = {NULL, 0, 0};
    pf_status st = fpush(c, &s, start->v, start->link, 0);
    while (st == PF_OK && s.n > 0) {
        frame fr = s.f[--s.n];
        if ((st = charge(c, 1)) != PF_OK) break;
        if ((st = select_all(c, seg, &fr.it, out)) != PF_OK) break;
        if (is_container(fr.it.v)) st = push_children(c, &s, &fr);
    }
    free(s.f);
    return st;
}

/* ---- queries ----------------------------------------------------------- */

static pf_status eval_query(ctx *c, const pf_jp_query *q, struct json_object *cur, list *out)
{
    list in = {NULL, 0, 0};
    pf_status st = list_push(c, &in, q->relative ? cur : c->root, 0);
    for (size_t i = 0; i < q->nseg && st == PF_OK; i++) {
        list next = {NULL, 0, 0};
        const pf_jp_segment *seg = &q->seg[i];
        for (size_t k = 0; k < in.n && st == PF_OK; k++)
            st = seg->descendant ? descend(c, seg, &in.it[k], &next)
                                 : select_all(c, seg, &in.it[k], &next);
        list_free(&in);
        in = next;
    }
    if (st != PF_OK) {
        list_free(&in);
        return st;
    }
    *out = in;
    return PF_OK;
}

/* Walks singular query Q; *FOUND is 0 when it selects nothing. */
static void walk(ctx *c, const pf_jp_query *q, struct json_object *cur, struct json_object **v,
                 int *found)
{
    struct json_object *x = q->relative ? cur : c->root;
    *found = 0;
    for (size_t i = 0; i < q->nseg; i++) {
        const pf_jp_selector *s = &q->seg[i].sel[0];
        enum json_type t = json_object_get_type(x);
        if (s->kind == PF_JP_SEL_NAME) {
            if (t != json_type_object || strlen(s->name) != s->name_len ||
                !json_object_object_get_ex(x, s->name, &x))
                return;
        } else {
            if (t != json_type_array) return;
            int64_t n = (int64_t)json_object_array_length(x);
            int64_t k = s->index < 0 ? n + s->index : s->index;
            if (k < 0 || k >= n) return;
            x = json_object_array_get_idx(x, (size_t)k);
        }
    }
    *v = x;
    *found = 1;
}

/* ---- functions and comparisons ------------------------------------------- */

static pf_status eval_value(ctx *c, const pf_jp_expr *e, struct json_object *cur, pf_jp_value *v);

static pf_status nodes_of(ctx *c, const pf_jp_expr *arg, struct json_object *cur, list *l)
{
    return eval_query(c, arg->query, cur, l);
}

static pf_status dyn_regex(ctx *c, const char *pat, size_t len, int anchored,
                           const pf_jp_regex **re)
{
    *re = NULL;
    if (c->dyn_pat && c->dyn_len == len && c->dyn_anchored == anchored &&
        memcmp(c->dyn_pat, pat, len) == 0) {
        *re = c->dyn_valid ? c->dyn_re : NULL;
        return PF_OK;
    }
    pf_jp_regex_free(c->dyn_re);
    free(c->dyn_pat);
    c->dyn_re = NULL;
    c->dyn_pat = NULL;
    pf_status st = charge(c, 1 + len);
    if (st != PF_OK) return st;
    st = pf_jp_regex_compile(pat, len, anchored, &c->dyn_re);
    if (st == PF_ENOMEM) return oom(c);
    c->dyn_pat = malloc(len + 1);
    if (!c->dyn_pat) return oom(c);
    memcpy(c->dyn_pat, pat, len);
    c->dyn_len = len;
    c->dyn_anchored = anchored;
    c->dyn_valid = st == PF_OK;
    *re = c->dyn_re;
    return PF_OK;
}

static pf_status eval_regex(ctx *c, const pf_jp_expr *e, struct json_object *cur, int *res)
{
    pf_jp_value subj, pat;
    pf_status st;
    *res = 0;
    if ((st = eval_value(c, e->args[0], cur, &subj)) != PF_OK) return st;
    if ((st = eval_value(c, e->args[1], cur, &pat)) != PF_OK) return st;
    if (subj.kind != PF_JP_V_STRING || pat.kind != PF_JP_V_STRING) return PF_OK;
    const pf_jp_regex *re = e->re;
    if (!re) {
        if (e->re_invalid) return PF_OK;
        if ((st = dyn_regex(c, pat.s, pat.slen, e->func == PF_JP_FN_MATCH, &re)) != PF_OK)
            return st;
        if (!re) return PF_OK;
    }
    if ((st = charge(c, 1 + subj.slen / 16)) != PF_OK) return st;
    int m = pf_jp_regex_match(re, subj.s, subj.slen, &c->rs);
    if (m < 0) return oom(c);
    *res = m;
    return PF_OK;
}

static pf_status eval_func_value(ctx *c, const pf_jp_expr *e, struct json_object *cur,
                                 pf_jp_value *v)
{
    pf_status st;
    memset(v, 0, sizeof *v);
    v->kind = PF_JP_V_NOTHING;
    switch (e->func) {
    case PF_JP_FN_LENGTH: {
        pf_jp_value a;
        if ((st = eval_value(c, e->args[0], cur, &a)) != PF_OK) return st;
        if (a.kind == PF_JP_V_STRING) {
            v->kind = PF_JP_V_INT;
            v->i = (int64_t)pf_jp_utf8_count(a.s, a.slen);
        } else if (a.kind == PF_JP_V_ARRAY) {
            v->kind = PF_JP_V_INT;
            v->i = (int64_t)json_object_array_length(a.j);
        } else if (a.kind == PF_JP_V_OBJECT) {
            v->kind = PF_JP_V_INT;
            v->i = (int64_t)json_object_object_length(a.j);
        }
        return PF_OK;
    }
    case PF_JP_FN_COUNT:
    case PF_JP_FN_VALUE: {
        list l = {NULL, 0, 0};
        if ((st = nodes_of(c, e->args[0], cur, &l)) != PF_OK) return st;
        if (e->func == PF_JP_FN_COUNT) {
            v->kind = PF_JP_V_INT;
            v->i = (int64_t)l.n;
        } else if (l.n == 1) {
            pf_jp_value_of_json(v, l.it[0].v);
        }
        list_free(&l);
        return PF_OK;
    }
    case PF_JP_FN_MATCH:
    case PF_JP_FN_SEARCH:
        break; /* LogicalType: never a value (type-checked) */
    }
    return PF_OK;
}

static pf_status eval_value(ctx *c, const pf_jp_expr *e, struct json_object *cur, pf_jp_value *v)
{
    switch (e->kind) {
    case PF_JP_E_LITERAL:
        pf_jp_value_of_literal(v, &e->lit);
        return PF_OK;
    case PF_JP_E_QUERY: {
        struct json_object *x = NULL;
        int found;
        walk(c, e->query, cur, &x, &found);
        if (found)
            pf_jp_value_of_json(v, x);
        else {
            memset(v, 0, sizeof *v);
            v->kind = PF_JP_V_NOTHING;
        }
        return PF_OK;
    }
    case PF_JP_E_FUNC:
        return eval_func_value(c, e, cur, v);
    default:
        break; /* logical kinds are never values (type-checked) */
    }
    memset(v, 0, sizeof *v);
    v->kind = PF_JP_V_NOTHING;
    return PF_OK;
}

static pf_status eval_test(ctx *c, const pf_jp_expr *a, struct json_object *cur, int *res)
{
    if (a->kind == PF_JP_E_FUNC) return eval_regex(c, a, cur, res);
    if (a->query->singular) {
        struct json_object *x;
        walk(c, a->query, cur, &x, res);
        return PF_OK;
    }
    list l = {NULL, 0, 0};
    pf_status st = eval_query(c, a->query, cur, &l);
    *res = l.n > 0;
    list_free(&l);
    return st;
}

static pf_status eval_logical(ctx *c, const pf_jp_expr *e, struct json_object *cur, int *res)
{
    pf_status st = PF_OK;
    switch (e->kind) {
    case PF_JP_E_OR:
    case PF_JP_E_AND: {
        int want = e->kind == PF_JP_E_OR; /* the value that decides the result */
        for (size_t i = 0; i < e->nargs; i++) {
            int r = 0;
            if ((st = eval_logical(c, e->args[i], cur, &r)) != PF_OK) return st;
            if (r == want) {
                *res = want;
                return PF_OK;
            }
        }
        *res = !want;
        return PF_OK;
    }
    case PF_JP_E_NOT: {
        int r = 0;
        st = eval_logical(c, e->args[0], cur, &r);
        *res = !r;
        return st;
    }
    case PF_JP_E_TEST:
        return eval_test(c, e->args[0], cur, res);
    case PF_JP_E_CMP: {
        pf_jp_value a, b;
        if ((st = eval_value(c, e->args[0], cur, &a)) != PF_OK) return st;
        if ((st = eval_value(c, e->args[1], cur, &b)) != PF_OK) return st;
        st = pf_jp_compare(&a, e->op, &b, res, &c->work, c->max_work);
        if (st == PF_ENOMEM) return oom(c);
        if (st == PF_ETOOBIG) return charge(c, 1);
        return st;
    }
    default:
        break;
    }
    *res = 0;
    return PF_OK;
}

/* ---- output -------------------------------------------------------------- */

static char *make_path(ctx *c, size_t link, size_t **chain, size_t *chain_cap)
{
    size_t n = 0;
    for (size_t l = link; l != 0; l = c->links[l].parent) {
        if (n == *chain_cap) {
            size_t cap = *chain_cap ? *chain_cap * 2 : 32;
            size_t *nc = realloc(*chain, cap * sizeof *nc);
            if (!nc) return NULL;
            *chain = nc;
            *chain_cap = cap;
        }
        (*chain)[n++] = l;
    }
    pf_buf b;
    pf_buf_init(&b, 0);
    pf_status st = pf_buf_putc(&b, '$');
    while (n > 0 && st == PF_OK) {
        const plink *l = &c->links[(*chain)[--n]];
        st = l->name ? pf_jp_normpath_name(&b, l->name, l->name_len)
                     : pf_jp_normpath_index(&b, l->index);
    }
    if (st != PF_OK) {
        pf_buf_free(&b);
        return NULL;
    }
    return pf_buf_steal(&b);
}

static pf_status emit(ctx *c, const list *l, pf_jp_nodelist *out)
{
    if (l->n == 0) return PF_OK;
    if (out->cap - out->count < l->n) {
        size_t need = out->count + l->n;
        size_t cap = out->cap ? out->cap : 8;
        while (cap < need)
            cap *= 2;
        pf_jp_node *n = realloc(out->nodes, cap * sizeof *n);
        if (!n) return oom(c);
        out->nodes = n;
        out->cap = cap;
    }
    size_t *chain = NULL, chain_cap = 0;
    for (size_t i = 0; i < l->n; i++) {
        pf_jp_node *node = &out->nodes[out->count + i];
        node->value = l->it[i].v;
        node->path = NULL;
        if (!c->paths) continue;
        node->path = make_path(c, l->it[i].link, &chain, &chain_cap);
        if (!node->path) {
            for (size_t k = 0; k < i; k++)
                free(out->nodes[out->count + k].path);
            free(chain);
            return oom(c);
        }
    }
    free(chain);
    out->count += l->n;
    return PF_OK;
}

pf_status pf_jsonpath_eval_limited(const pf_jsonpath *q, struct json_object *doc, int want_paths,
                                   size_t max_depth, unsigned long long max_work,
                                   pf_jp_nodelist *out, pf_error *err)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.root = doc;
    c.paths = want_paths != 0;
    c.max_depth = max_depth ? max_depth : PF_JP_DEFAULT_MAX_DEPTH;
    c.max_work = max_work ? max_work : PF_JP_DEFAULT_MAX_WORK;
    c.err = err;
    pf_status st = PF_OK;
    if (c.paths) {
        size_t root;
        c.paths = 1;
        st = new_link(&c, 0, NULL, 0, 0, &root); /* link 0: "$" */
    }
    list l = {NULL, 0, 0};
    if (st == PF_OK) st = eval_query(&c, q->query, doc, &l);
    if (st == PF_OK) st = emit(&c, &l, out);
    list_free(&l);
    free(c.links);
    pf_jp_regex_scratch_free(&c.rs);
    pf_jp_regex_free(c.dyn_re);
    free(c.dyn_pat);
    return st;
}

pf_status pf_jsonpath_eval(const pf_jsonpath *q, struct json_object *doc, int want_paths,
                           pf_jp_nodelist *out, pf_error *err)
{
    return pf_jsonpath_eval_limited(q, doc, want_paths, 0, 0, out, err);
}
