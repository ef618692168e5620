/* parser.c: JSONPath tokens -> query tree, with RFC 9535's static type
 * checks (section 2.4.3). A badly typed query is a syntax error here, never
 * a false result later. Recursion follows query nesting only and is bounded
 * by PF_JP_MAX_QUERY_NESTING, checked before each recursive step. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jp_ast.h"
#include "jsonpath/jp_lexer.h"
#include "jsonpath/jp_regex.h"

#define MAX_SAFE_INDEX 9007199254740991LL /* 2^53 - 1 */

typedef struct parser {
    pf_jp_lexer lx;
    pf_jp_token tok; /* lookahead */
    int depth;
    pf_error *err;
} parser;

static pf_status parse_query_segments(parser *p, pf_jp_query *q);
static pf_status parse_or(parser *p, int allow_bare, pf_jp_expr **out);

/* ---- tree release ---------------------------------------------------- */

static void selector_clear(pf_jp_selector *s)
{
    free(s->name);
    pf_jp_expr_free(s->filter);
}

void pf_jp_query_free(pf_jp_query *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->nseg; i++) {
        for (size_t j = 0; j < q->seg[i].nsel; j++)
            selector_clear(&q->seg[i].sel[j]);
        free(q->seg[i].sel);
    }
    free(q->seg);
    free(q);
}

void pf_jp_expr_free(pf_jp_expr *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->nargs; i++)
        pf_jp_expr_free(e->args[i]);
    free(e->args);
    if (e->kind == PF_JP_E_LITERAL) free(e->lit.s);
    pf_jp_query_free(e->query);
    pf_jp_regex_free(e->re);
    free(e);
}

/* ---- helpers ----------------------------------------------------------- */

static pf_status nomem(parser *p)
{
    return pf_error_off(p->err, PF_ENOMEM, (long)p->tok.off, "out of memory compiling the query");
}

static pf_status advance(parser *p)
{
    free(p->tok.str);
    p->tok.str = NULL;
    return pf_jp_lex_next(&p->lx, &p->tok, p->err);
}

static pf_status unexpected(parser *p, const char *wanted)
{
    const pf_jp_token *t = &p->tok;
    char what[48];
    if (t->kind == PF_JP_TOK_NAME || t->kind == PF_JP_TOK_NUMBER) {
        int n = t->len > 20 ? 20 : (int)t->len;
        snprintf(what, sizeof what, "%s '%.*s%s'", pf_jp_tok_name(t->kind), n, p->lx.s + t->off,
                 t->len > 20 ? "..." : "");
    } else {
        snprintf(what, sizeof what, "%s", pf_jp_tok_name(t->kind));
    }
    if (wanted)
        return pf_error_off(p->err, PF_ESYNTAX, (long)t->off, "unexpected %s, expected %s", what,
                            wanted);
    return pf_error_off(p->err, PF_ESYNTAX, (long)t->off, "unexpected %s", what);
}

static pf_status enter(parser *p, size_t off)
{
    if (p->depth >= PF_JP_MAX_QUERY_NESTING)
        return pf_error_off(p->err, PF_EDEPTH, (long)off, "query nested deeper than %d levels",
                            PF_JP_MAX_QUERY_NESTING);
    p->depth++;
    return PF_OK;
}

/* Makes room in array P (N elements of SIZE bytes) for one more, doubling
 * the allocation when N reaches a power of two, so long chains and long
 * segment lists cost linear time. Returns the array (maybe moved), or NULL
 * when out of memory (P is then unchanged). */
static void *grow(void *p, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0) return p; /* capacity is the next power of two */
    size_t cap = n ? n * 2 : 1;
    if (cap > SIZE_MAX / size) return NULL;
    return realloc(p, cap * size);
}

static pf_jp_expr *expr_new(pf_jp_expr_kind kind, size_t off)
{
    pf_jp_expr *e = calloc(1, sizeof *e);
    if (e) {
        e->kind = kind;
        e->offset = off;
    }
    return e;
}

/* Appends A to E->args; on failure E is unchanged and A is not taken. */
static int expr_push(pf_jp_expr *e, pf_jp_expr *a)
{
    pf_jp_expr **args = grow(e->args, e->nargs, sizeof *e->args);
    if (!args) return -1;
    e->args = args;
    e->args[e->nargs++] = a;
    return 0;
}

/* Wraps A (taken, freed on failure) in a new node of KIND. */
static pf_status wrap(parser *p, pf_jp_expr_kind kind, size_t off, pf_jp_expr **a)
{
    pf_jp_expr *w = expr_new(kind, off);
    if (!w || expr_push(w, *a) != 0) {
        free(w);
        pf_jp_expr_free(*a);
        *a = NULL;
        return nomem(p);
    }
    *a = w;
    return PF_OK;
}

static int is_logical_kind(pf_jp_expr_kind k)
{
    return k == PF_JP_E_OR || k == PF_JP_E_AND || k == PF_JP_E_NOT || k == PF_JP_E_CMP ||
           k == PF_JP_E_TEST;
}

static const char *func_name(pf_jp_func f)
{
    switch (f) {
    case PF_JP_FN_LENGTH:
        return "length";
    case PF_JP_FN_COUNT:
        return "count";
    case PF_JP_FN_VALUE:
        return "value";
    case PF_JP_FN_MATCH:
        return "match";
    case PF_JP_FN_SEARCH:
        return "search";
    }
    return "?";
}

static pf_jp_type func_result(pf_jp_func f)
{
    return (f == PF_JP_FN_MATCH || f == PF_JP_FN_SEARCH) ? PF_JP_T_LOGICAL : PF_JP_T_VALUE;
}

/* Turns a bare comparable into a logical expression (a test), or rejects
 * it: literals and ValueType functions cannot stand alone in a filter. */
static pf_status to_logical(parser *p, pf_jp_expr **e)
{
    pf_jp_expr *x = *e;
    if (is_logical_kind(x->kind)) return PF_OK;
    if (x->kind == PF_JP_E_LITERAL)
        return pf_error_off(p->err, PF_ESYNTAX, (long)x->offset,
                            "a literal is not a condition; compare it with something");
    if (x->kind == PF_JP_E_FUNC && func_result(x->func) == PF_JP_T_VALUE)
        return pf_error_off(p->err, PF_ESYNTAX, (long)x->offset,
                            "%s() returns a value, not a logical; compare its result",
                            func_name(x->func));
    return wrap(p, PF_JP_E_TEST, x->offset, e);
}

/* Checks that E can be one side of a comparison. */
static pf_status check_comparable(parser *p, const pf_jp_expr *e)
{
    if (e->kind == PF_JP_E_QUERY && !e->query->singular)
        return pf_error_off(p->err, PF_ESYNTAX, (long)e->offset,
                            "only a singular query (names and indexes) can be compared");
    if (e->kind == PF_JP_E_FUNC && func_result(e->func) != PF_JP_T_VALUE)
        return pf_error_off(p->err, PF_ESYNTAX, (long)e->offset,
                            "%s() returns a logical, which cannot be compared", func_name(e->func));
    if (is_logical_kind(e->kind))
        return pf_error_off(p->err, PF_ESYNTAX, (long)e->offset,
                            "a logical expression cannot be compared");
    return PF_OK;
}

/* ---- selectors and segments ------------------------------------------- */

static pf_status take_int(parser *p, int64_t *v, const char *what)
{
    const pf_jp_token *t = &p->tok;
    if (t->neg_zero && t->len == 2)
        return pf_error_off(p->err, PF_ESYNTAX, (long)t->off, "%s cannot be -0", what);
    if (!t->is_int && !t->int_overflow)
        return pf_error_off(p->err, PF_ESYNTAX, (long)t->off, "%s must be an integer", what);
    if (t->int_overflow || t->ival > MAX_SAFE_INDEX || t->ival < -MAX_SAFE_INDEX)
        return pf_error_off(p->err, PF_ESYNTAX, (long)t->off, "%s out of range (limit +/-(2^53-1))",
                            what);
    *v = t->ival;
    return advance(p);
}

static pf_status parse_selector(parser *p, pf_jp_selector *sel)
{
    pf_status st;
    memset(sel, 0, sizeof *sel);
    switch (p->tok.kind) {
    case PF_JP_TOK_STRING:
        sel->kind = PF_JP_SEL_NAME;
        sel->name = p->tok.str;
        sel->name_len = p->tok.slen;
        p->tok.str = NULL;
        return advance(p);
    case PF_JP_TOK_STAR:
        sel->kind = PF_JP_SEL_WILDCARD;
        return advance(p);
    case PF_JP_TOK_QUESTION: {
        size_t off = p->tok.off;
        sel->kind = PF_JP_SEL_FILTER;
        if ((st = enter(p, off)) != PF_OK) return st;
        if ((st = advance(p)) != PF_OK) return st;
        st = parse_or(p, 0, &sel->filter);
        p->depth--;
        return st;
    }
    case PF_JP_TOK_NUMBER:
    case PF_JP_TOK_COLON:
        break;
    default:
        return unexpected(p, "a selector");
    }
    /* index or slice */
    int64_t first = 0;
    int has_first = 0;
    if (p->tok.kind == PF_JP_TOK_NUMBER) {
        if ((st = take_int(p, &first, "an index")) != PF_OK) return st;
        has_first = 1;
        if (p->tok.kind != PF_JP_TOK_COLON) {
            sel->kind = PF_JP_SEL_INDEX;
            sel->index = first;
            return PF_OK;
        }
    }
    sel->kind = PF_JP_SEL_SLICE;
    sel->has_start = has_first;
    sel->start = first;
    sel->step = 1;
    if ((st = advance(p)) != PF_OK) return st; /* ':' */
    if (p->tok.kind == PF_JP_TOK_NUMBER) {
        if ((st = take_int(p, &sel->end, "a slice end")) != PF_OK) return st;
        sel->has_end = 1;
    }
    if (p->tok.kind == PF_JP_TOK_COLON) {
        if ((st = advance(p)) != PF_OK) return st;
        if (p->tok.kind == PF_JP_TOK_NUMBER) {
            if ((st = take_int(p, &sel->step, "a slice step")) != PF_OK) return st;
        }
    }
    return PF_OK;
}

static pf_status seg_push(parser *p, pf_jp_segment *seg, const pf_jp_selector *sel)
{
    pf_jp_selector *sels = grow(seg->sel, seg->nsel, sizeof *seg->sel);
    if (!sels) return nomem(p);
    seg->sel = sels;
    seg->sel[seg->nsel++] = *sel;
    return PF_OK;
}

/* Parses "[sel, sel, ...]" (current token '[') into SEG. */
static pf_status parse_bracketed(parser *p, pf_jp_segment *seg)
{
    pf_status st = advance(p);
    if (st != PF_OK) return st;
    seg->tight = !p->tok.ws_before;
    for (;;) {
        pf_jp_selector sel;
        st = parse_selector(p, &sel);
        if (st == PF_OK) st = seg_push(p, seg, &sel);
        if (st != PF_OK) {
            selector_clear(&sel);
            return st;
        }
        if (p->tok.kind == PF_JP_TOK_COMMA) {
            if ((st = advance(p)) != PF_OK) return st;
            continue;
        }
        if (p->tok.kind == PF_JP_TOK_RBRACKET) {
            if (p->tok.ws_before) seg->tight = 0;
            return advance(p);
        }
        return unexpected(p, "',' or ']'");
    }
}

/* After '.' or '..': a member name or '*', with no whitespace before it. */
static pf_status parse_shorthand(parser *p, pf_jp_segment *seg, const char *after)
{
    pf_jp_selector sel;
    memset(&sel, 0, sizeof sel);
    if (p->tok.ws_before && (p->tok.kind == PF_JP_TOK_NAME || p->tok.kind == PF_JP_TOK_STAR ||
                             p->tok.kind == PF_JP_TOK_LBRACKET))
        return pf_error_off(p->err, PF_ESYNTAX, (long)p->tok.off,
                            "no whitespace is allowed after '%s'", after);
    if (p->tok.kind == PF_JP_TOK_STAR) {
        sel.kind = PF_JP_SEL_WILDCARD;
    } else if (p->tok.kind == PF_JP_TOK_NAME) {
        sel.kind = PF_JP_SEL_NAME;
        sel.name = malloc(p->tok.len + 1);
        if (!sel.name) return nomem(p);
        memcpy(sel.name, p->lx.s + p->tok.off, p->tok.len);
        sel.name[p->tok.len] = '\0';
        sel.name_len = p->tok.len;
    } else {
        return unexpected(p, "a member name or '*'");
    }
    pf_status st = seg_push(p, seg, &sel);
    if (st != PF_OK) {
        free(sel.name);
        return st;
    }
    seg->tight = 1;
    return advance(p);
}

static pf_status parse_segment(parser *p, pf_jp_segment *seg)
{
    pf_status st;
    memset(seg, 0, sizeof *seg);
    switch (p->tok.kind) {
    case PF_JP_TOK_LBRACKET:
        return parse_bracketed(p, seg);
    case PF_JP_TOK_DOT:
        if ((st = advance(p)) != PF_OK) return st;
        return parse_shorthand(p, seg, ".");
    case PF_JP_TOK_DOTDOT:
        seg->descendant = 1;
        if ((st = advance(p)) != PF_OK) return st;
        if (p->tok.kind == PF_JP_TOK_LBRACKET && !p->tok.ws_before) return parse_bracketed(p, seg);
        return parse_shorthand(p, seg, "..");
    default:
        return unexpected(p, NULL);
    }
}

static int query_is_singular(const pf_jp_query *q)
{
    for (size_t i = 0; i < q->nseg; i++) {
        const pf_jp_segment *s = &q->seg[i];
        /* RFC 9535 name-segment / index-segment: no blank space inside [ ] */
        if (s->descendant || s->nsel != 1 || !s->tight) return 0;
        if (s->sel[0].kind != PF_JP_SEL_NAME && s->sel[0].kind != PF_JP_SEL_INDEX) return 0;
    }
    return 1;
}

/* Parses the segments following '$' or '@' (already consumed) into Q. */
static pf_status parse_query_segments(parser *p, pf_jp_query *q)
{
    while (p->tok.kind == PF_JP_TOK_LBRACKET || p->tok.kind == PF_JP_TOK_DOT ||
           p->tok.kind == PF_JP_TOK_DOTDOT) {
        pf_jp_segment *segs = grow(q->seg, q->nseg, sizeof *q->seg);
        if (!segs) return nomem(p);
        q->seg = segs;
        pf_jp_segment *seg = &q->seg[q->nseg++];
        pf_status st = parse_segment(p, seg);
        if (st != PF_OK) return st; /* the partial segment is freed with Q */
    }
    q->singular = query_is_singular(q);
    return PF_OK;
}

/* ---- filter expressions ------------------------------------------------- */

static int is_cmp_tok(pf_jp_tok_kind k, pf_jp_cmp_op *op)
{
    switch (k) {
    case PF_JP_TOK_EQ:
        *op = PF_JP_EQ;
        return 1;
    case PF_JP_TOK_NE:
        *op = PF_JP_NE;
        return 1;
    case PF_JP_TOK_LT:
        *op = PF_JP_LT;
        return 1;
    case PF_JP_TOK_LE:
        *op = PF_JP_LE;
        return 1;
    case PF_JP_TOK_GT:
        *op = PF_JP_GT;
        return 1;
    case PF_JP_TOK_GE:
        *op = PF_JP_GE;
        return 1;
    default:
        return 0;
    }
}

static int name_is(const parser *p, const char *word)
{
    size_t n = strlen(word);
    return p->tok.kind == PF_JP_TOK_NAME && p->tok.len == n &&
           memcmp(p->lx.s + p->tok.off, word, n) == 0;
}

/* Checks function F's argument A (index I) against the declared types. */
static pf_status check_arg(parser *p, pf_jp_func f, size_t i, const pf_jp_expr *a)
{
    pf_jp_type want = (f == PF_JP_FN_COUNT || f == PF_JP_FN_VALUE) ? PF_JP_T_NODES : PF_JP_T_VALUE;
    const char *fn = func_name(f);
    if (want == PF_JP_T_NODES) {
        if (a->kind == PF_JP_E_QUERY) return PF_OK;
        return pf_error_off(p->err, PF_ESYNTAX, (long)a->offset,
                            "argument %zu of %s() must be a query", i + 1, fn);
    }
    switch (a->kind) {
    case PF_JP_E_LITERAL:
        return PF_OK;
    case PF_JP_E_QUERY:
        if (a->query->singular) return PF_OK;
        return pf_error_off(p->err, PF_ESYNTAX, (long)a->offset,
                            "argument %zu of %s() must be a singular query or a value", i + 1, fn);
    case PF_JP_E_FUNC:
        if (func_result(a->func) == PF_JP_T_VALUE) return PF_OK;
        return pf_error_off(p->err, PF_ESYNTAX, (long)a->offset,
                            "argument %zu of %s(): %s() returns a logical, not a value", i + 1, fn,
                            func_name(a->func));
    default:
        return pf_error_off(p->err, PF_ESYNTAX, (long)a->offset,
                            "argument %zu of %s() must be a value, not a logical expression", i + 1,
                            fn);
    }
}

/* Parses "name(args)"; the current token is the NAME, directly followed by '('. */
static pf_status parse_function(parser *p, pf_jp_expr **out)
{
    static const struct {
        const char *name;
        pf_jp_func f;
        size_t arity;
    } funcs[] = {
        {"length", PF_JP_FN_LENGTH, 1}, {"count", PF_JP_FN_COUNT, 1},
        {"value", PF_JP_FN_VALUE, 1},   {"match", PF_JP_FN_MATCH, 2},
        {"search", PF_JP_FN_SEARCH, 2},
    };
    size_t off = p->tok.off;
    size_t k;
    for (k = 0; k < sizeof funcs / sizeof funcs[0]; k++)
        if (name_is(p, funcs[k].name)) break;
    if (k == sizeof funcs / sizeof funcs[0]) {
        int n = p->tok.len > 32 ? 32 : (int)p->tok.len;
        return pf_error_off(p->err, PF_ESYNTAX, (long)off, "unknown function '%.*s'", n,
                            p->lx.s + off);
    }
    pf_status st = enter(p, off);
    if (st != PF_OK) return st;
    pf_jp_expr *e = expr_new(PF_JP_E_FUNC, off);
    if (!e) {
        p->depth--;
        return nomem(p);
    }
    e->func = funcs[k].f;
    if ((st = advance(p)) != PF_OK || (st = advance(p)) != PF_OK) goto fail; /* name, '(' */
    if (p->tok.kind != PF_JP_TOK_RPAREN) {
        for (;;) {
            pf_jp_expr *a = NULL;
            if ((st = parse_or(p, 1, &a)) != PF_OK) goto fail;
            if (expr_push(e, a) != 0) {
                pf_jp_expr_free(a);
                st = nomem(p);
                goto fail;
            }
            if (p->tok.kind == PF_JP_TOK_COMMA) {
                if ((st = advance(p)) != PF_OK) goto fail;
                continue;
            }
            if (p->tok.kind == PF_JP_TOK_RPAREN) break;
            st = unexpected(p, "',' or ')'");
            goto fail;
        }
    }
    if (e->nargs != funcs[k].arity) {
        st =
            pf_error_off(p->err, PF_ESYNTAX, (long)p->tok.off, "%s() takes %zu argument%s, not %zu",
                         funcs[k].name, funcs[k].arity, funcs[k].arity == 1 ? "" : "s", e->nargs);
        goto fail;
    }
    for (size_t i = 0; i < e->nargs; i++)
        if ((st = check_arg(p, e->func, i, e->args[i])) != PF_OK) goto fail;
    if ((e->func == PF_JP_FN_MATCH || e->func == PF_JP_FN_SEARCH) &&
        e->args[1]->kind == PF_JP_E_LITERAL && e->args[1]->lit.kind == PF_JP_LIT_STRING) {
        const pf_jp_literal *lit = &e->args[1]->lit;
        st = pf_jp_regex_compile(lit->s, lit->slen, e->func == PF_JP_FN_MATCH, &e->re);
        if (st == PF_ENOMEM) {
            st = nomem(p);
            goto fail;
        }
        e->re_invalid = st != PF_OK;
    }
    if ((st = advance(p)) != PF_OK) goto fail; /* ')' */
    p->depth--;
    *out = e;
    return PF_OK;
fail:
    p->depth--;
    pf_jp_expr_free(e);
    return st;
}

/* literal / singular or general query / function call: the things that can
 * be compared, tested or passed to a function. */
static pf_status parse_primary(parser *p, pf_jp_expr **out)
{
    pf_status st;
    size_t off = p->tok.off;
    pf_jp_expr *e;
    switch (p->tok.kind) {
    case PF_JP_TOK_ROOT:
    case PF_JP_TOK_CURRENT: {
        e = expr_new(PF_JP_E_QUERY, off);
        if (!e || !(e->query = calloc(1, sizeof *e->query))) {
            free(e);
            return nomem(p);
        }
        e->query->relative = p->tok.kind == PF_JP_TOK_CURRENT;
        if ((st = advance(p)) != PF_OK || (st = parse_query_segments(p, e->query)) != PF_OK) {
            pf_jp_expr_free(e);
            return st;
        }
        *out = e;
        return PF_OK;
    }
    case PF_JP_TOK_STRING:
        if (!(e = expr_new(PF_JP_E_LITERAL, off))) return nomem(p);
        e->lit.kind = PF_JP_LIT_STRING;
        e->lit.s = p->tok.str;
        e->lit.slen = p->tok.slen;
        p->tok.str = NULL;
        break;
    case PF_JP_TOK_NUMBER:
        if (!(e = expr_new(PF_JP_E_LITERAL, off))) return nomem(p);
        if (p->tok.is_int) {
            e->lit.kind = PF_JP_LIT_INT;
            e->lit.i = p->tok.ival;
        } else {
            e->lit.kind = PF_JP_LIT_DOUBLE;
            e->lit.d = p->tok.dval;
        }
        break;
    case PF_JP_TOK_NAME: {
        size_t end = p->tok.off + p->tok.len;
        if (end < p->lx.len && p->lx.s[end] == '(') return parse_function(p, out);
        size_t after = end;
        while (after < p->lx.len && (p->lx.s[after] == ' ' || p->lx.s[after] == '\t' ||
                                     p->lx.s[after] == '\r' || p->lx.s[after] == '\n'))
            after++;
        if (after > end && after < p->lx.len && p->lx.s[after] == '(')
            return pf_error_off(p->err, PF_ESYNTAX, (long)end,
                                "no whitespace is allowed between a function name and '('");
        pf_jp_lit_kind k;
        if (name_is(p, "true"))
            k = PF_JP_LIT_TRUE;
        else if (name_is(p, "false"))
            k = PF_JP_LIT_FALSE;
        else if (name_is(p, "null"))
            k = PF_JP_LIT_NULL;
        else
            return unexpected(p, "a query, literal or function");
        if (!(e = expr_new(PF_JP_E_LITERAL, off))) return nomem(p);
        e->lit.kind = k;
        break;
    }
    default:
        return unexpected(p, "a query, literal or function");
    }
    if ((st = advance(p)) != PF_OK) {
        pf_jp_expr_free(e);
        return st;
    }
    *out = e;
    return PF_OK;
}

/* "(" logical-expr ")", current token '('. */
static pf_status parse_paren(parser *p, pf_jp_expr **out)
{
    size_t off = p->tok.off;
    pf_status st = enter(p, off);
    if (st != PF_OK) return st;
    pf_jp_expr *e = NULL;
    if ((st = advance(p)) == PF_OK && (st = parse_or(p, 0, &e)) == PF_OK) {
        if (p->tok.kind != PF_JP_TOK_RPAREN)
            st = unexpected(p, "')'");
        else
            st = advance(p);
    }
    p->depth--;
    if (st != PF_OK) {
        pf_jp_expr_free(e);
        return st;
    }
    *out = e;
    return PF_OK;
}

/* basic-expr: paren-expr / comparison-expr / test-expr. May return a bare
 * primary (no operator) for the caller to classify. */
static pf_status parse_basic(parser *p, pf_jp_expr **out)
{
    pf_status st;
    pf_jp_expr *e = NULL;
    if (p->tok.kind == PF_JP_TOK_NOT) {
        size_t off = p->tok.off;
        if ((st = advance(p)) != PF_OK) return st;
        if (p->tok.kind == PF_JP_TOK_LPAREN) {
            st = parse_paren(p, &e);
        } else if (p->tok.kind == PF_JP_TOK_ROOT || p->tok.kind == PF_JP_TOK_CURRENT ||
                   p->tok.kind == PF_JP_TOK_NAME) {
            st = parse_primary(p, &e);
            if (st == PF_OK && e->kind == PF_JP_E_LITERAL)
                st = pf_error_off(p->err, PF_ESYNTAX, (long)e->offset,
                                  "'!' cannot be applied to a literal");
            pf_jp_cmp_op op;
            if (st == PF_OK && is_cmp_tok(p->tok.kind, &op))
                st = pf_error_off(p->err, PF_ESYNTAX, (long)p->tok.off,
                                  "a comparison after '!' needs parentheses: !(a %s b)",
                                  pf_jp_tok_name(p->tok.kind));
            if (st == PF_OK) st = to_logical(p, &e);
        } else {
            return unexpected(p, "'(', a query or a function after '!'");
        }
        if (st == PF_OK) st = wrap(p, PF_JP_E_NOT, off, &e);
        if (st != PF_OK) {
            pf_jp_expr_free(e);
            return st;
        }
        *out = e;
        return PF_OK;
    }
    if (p->tok.kind == PF_JP_TOK_LPAREN) return parse_paren(p, out);
    if ((st = parse_primary(p, &e)) != PF_OK) return st;
    pf_jp_cmp_op op;
    if (!is_cmp_tok(p->tok.kind, &op)) {
        *out = e;
        return PF_OK;
    }
    pf_jp_expr *c = expr_new(PF_JP_E_CMP, e->offset), *r = NULL;
    if (!c || expr_push(c, e) != 0) {
        free(c);
        pf_jp_expr_free(e);
        return nomem(p);
    }
    c->op = op;
    if ((st = check_comparable(p, e)) != PF_OK || (st = advance(p)) != PF_OK) goto fail;
    if ((st = parse_primary(p, &r)) != PF_OK) goto fail;
    if (expr_push(c, r) != 0) {
        pf_jp_expr_free(r);
        st = nomem(p);
        goto fail;
    }
    if ((st = check_comparable(p, r)) != PF_OK) goto fail;
    if (is_cmp_tok(p->tok.kind, &op)) {
        st = pf_error_off(p->err, PF_ESYNTAX, (long)p->tok.off,
                          "comparisons cannot be chained; combine them with && or ||");
        goto fail;
    }
    *out = c;
    return PF_OK;
fail:
    pf_jp_expr_free(c);
    return st;
}

/* Parses a chain "x OP x OP x" of one operator into an n-ary node. */
static pf_status parse_chain(parser *p, int allow_bare, pf_jp_expr **out, pf_jp_tok_kind optok,
                             pf_jp_expr_kind kind)
{
    pf_jp_expr *first = NULL;
    pf_status st = kind == PF_JP_E_OR
                       ? parse_chain(p, allow_bare, &first, PF_JP_TOK_AND, PF_JP_E_AND)
                       : parse_basic(p, &first);
    if (st != PF_OK) return st;
    if (p->tok.kind != optok) {
        if (!allow_bare && (st = to_logical(p, &first)) != PF_OK) {
            pf_jp_expr_free(first);
            return st;
        }
        *out = first;
        return PF_OK;
    }
    pf_jp_expr *n = expr_new(kind, first->offset);
    if (!n) {
        pf_jp_expr_free(first);
        return nomem(p);
    }
    if ((st = to_logical(p, &first)) != PF_OK) {
        pf_jp_expr_free(first);
        goto fail;
    }
    if (expr_push(n, first) != 0) {
        pf_jp_expr_free(first);
        st = nomem(p);
        goto fail;
    }
    while (p->tok.kind == optok) {
        pf_jp_expr *x = NULL;
        if ((st = advance(p)) != PF_OK) goto fail;
        st = kind == PF_JP_E_OR ? parse_chain(p, 0, &x, PF_JP_TOK_AND, PF_JP_E_AND)
                                : parse_basic(p, &x);
        if (st != PF_OK) goto fail;
        if ((st = to_logical(p, &x)) != PF_OK) {
            pf_jp_expr_free(x);
            goto fail;
        }
        if (expr_push(n, x) != 0) {
            pf_jp_expr_free(x);
            st = nomem(p);
            goto fail;
        }
    }
    *out = n;
    return PF_OK;
fail:
    pf_jp_expr_free(n);
    return st;
}

/* logical-or-expr. ALLOW_BARE: a lone literal, query or function comes back
 * unconverted (function arguments); otherwise the result is logical. */
static pf_status parse_or(parser *p, int allow_bare, pf_jp_expr **out)
{
    return parse_chain(p, allow_bare, out, PF_JP_TOK_OR, PF_JP_E_OR);
}

/* ---- entry point ------------------------------------------------------- */

pf_status pf_jp_parse(const char *text, size_t len, pf_jp_query **out, pf_error *err)
{
    parser p;
    memset(&p, 0, sizeof p);
    p.err = err;
    *out = NULL;
    pf_jp_lexer_init(&p.lx, text, len);
    pf_status st = advance(&p);
    if (st != PF_OK) goto done;
    if (p.tok.kind != PF_JP_TOK_ROOT || p.tok.ws_before) {
        if (p.tok.kind == PF_JP_TOK_ROOT || p.tok.ws_before)
            st = pf_error_off(err, PF_ESYNTAX, 0, "whitespace is not allowed before '$'");
        else
            st = unexpected(&p, "'$'");
        goto done;
    }
    pf_jp_query *q = calloc(1, sizeof *q);
    if (!q) {
        st = nomem(&p);
        goto done;
    }
    if ((st = advance(&p)) == PF_OK) st = parse_query_segments(&p, q);
    if (st == PF_OK && p.tok.kind != PF_JP_TOK_EOF) st = unexpected(&p, NULL);
    if (st == PF_OK && p.tok.ws_before)
        st = pf_error_off(err, PF_ESYNTAX, (long)p.lx.len - 1,
                          "whitespace is not allowed at the end of a query");
    if (st != PF_OK) {
        pf_jp_query_free(q);
        goto done;
    }
    *out = q;
done:
    free(p.tok.str);
    return st;
}
