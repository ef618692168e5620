/* jp_ast.h: the compiled form of a JSONPath query (internal to src/jsonpath).
 *
 * The parser builds this tree, the evaluator walks it, nothing mutates it
 * after compilation. Every node is owned by its parent; pf_jp_query_free and
 * pf_jp_expr_free release a subtree. Logical AND and OR are n-ary so a long
 * chain "a || b || c ..." never makes the evaluator recurse deeper. */
#ifndef PF_JSONPATH_JP_AST_H
#define PF_JSONPATH_JP_AST_H

#include <stddef.h>
#include <stdint.h>

#include "jsonpath/jsonpath.h"

struct pf_jp_regex;

/* A literal, or a value a function computed: the ValueType of RFC 9535. */
typedef enum pf_jp_lit_kind {
    PF_JP_LIT_NULL,
    PF_JP_LIT_TRUE,
    PF_JP_LIT_FALSE,
    PF_JP_LIT_INT,
    PF_JP_LIT_DOUBLE,
    PF_JP_LIT_STRING,
} pf_jp_lit_kind;

typedef struct pf_jp_literal {
    pf_jp_lit_kind kind;
    int64_t i;
    double d;
    char *s; /* owned, NUL-terminated (may also contain NULs); PF_JP_LIT_STRING only */
    size_t slen;
} pf_jp_literal;

typedef enum pf_jp_sel_kind {
    PF_JP_SEL_NAME,
    PF_JP_SEL_WILDCARD,
    PF_JP_SEL_INDEX,
    PF_JP_SEL_SLICE,
    PF_JP_SEL_FILTER,
} pf_jp_sel_kind;

struct pf_jp_expr;

typedef struct pf_jp_selector {
    pf_jp_sel_kind kind;
    char *name; /* NAME: owned, NUL-terminated */
    size_t name_len;
    int64_t index;             /* INDEX */
    int64_t start, end, step;  /* SLICE */
    int has_start, has_end;    /* SLICE */
    struct pf_jp_expr *filter; /* FILTER: owned */
} pf_jp_selector;

typedef struct pf_jp_segment {
    int descendant; /* 1 for "..", 0 for a child segment */
    int tight;      /* no whitespace inside its brackets (singular queries need it) */
    size_t nsel;
    pf_jp_selector *sel; /* owned array */
} pf_jp_segment;

typedef struct pf_jp_query {
    int relative; /* 1: starts with '@', 0: starts with '$' */
    int singular; /* 1: only one-name or one-index child segments */
    size_t nseg;
    pf_jp_segment *seg; /* owned array */
} pf_jp_query;

typedef enum pf_jp_func {
    PF_JP_FN_LENGTH,
    PF_JP_FN_COUNT,
    PF_JP_FN_VALUE,
    PF_JP_FN_MATCH,
    PF_JP_FN_SEARCH,
} pf_jp_func;

/* Static types of RFC 9535 section 2.4.1. */
typedef enum pf_jp_type {
    PF_JP_T_VALUE,
    PF_JP_T_LOGICAL,
    PF_JP_T_NODES,
} pf_jp_type;

typedef enum pf_jp_cmp_op {
    PF_JP_EQ,
    PF_JP_NE,
    PF_JP_LT,
    PF_JP_LE,
    PF_JP_GT,
    PF_JP_GE,
} pf_jp_cmp_op;

typedef enum pf_jp_expr_kind {
    /* logical expressions */
    PF_JP_E_OR,   /* args[0..nargs) */
    PF_JP_E_AND,  /* args[0..nargs) */
    PF_JP_E_NOT,  /* args[0] */
    PF_JP_E_CMP,  /* args[0] op args[1], both comparables */
    PF_JP_E_TEST, /* args[0]: a query (existence) or a LogicalType/NodesType function */
    /* comparables and function arguments */
    PF_JP_E_LITERAL,
    PF_JP_E_QUERY,
    PF_JP_E_FUNC,
} pf_jp_expr_kind;

typedef struct pf_jp_expr {
    pf_jp_expr_kind kind;
    size_t offset; /* byte offset in the query, for messages */
    pf_jp_cmp_op op;
    size_t nargs;
    struct pf_jp_expr **args; /* owned array of owned subtrees */
    pf_jp_literal lit;        /* LITERAL */
    pf_jp_query *query;       /* QUERY: owned */
    pf_jp_func func;          /* FUNC */
    struct pf_jp_regex *re;   /* FUNC match/search with a literal pattern: owned, may be NULL */
    int re_invalid;           /* 1 when that literal pattern is not a valid I-Regexp */
} pf_jp_expr;

/* The compiled query handed out as pf_jsonpath. */
struct pf_jsonpath {
    char *text; /* the query as given, NUL-terminated */
    size_t len;
    pf_jp_query *query;
    /* precomputed simple shape (see pf_jsonpath_simple_shape) */
    int simple;
    pf_jp_shape shape;
    const char **shape_names; /* borrowed from query selectors; array owned */
    size_t *shape_lens;       /* owned array */
};

void pf_jp_query_free(pf_jp_query *q);
void pf_jp_expr_free(pf_jp_expr *e);

/* Parses TEXT (LEN bytes, UTF-8 already checked by the caller's lexer) into
 * a query tree. On failure returns PF_ESYNTAX / PF_EDEPTH / PF_ENOMEM with
 * ERR filled (byte offset) and *OUT NULL. Implemented in parser.c. */
pf_status pf_jp_parse(const char *text, size_t len, pf_jp_query **out, pf_error *err);

#endif
