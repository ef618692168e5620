/* jp_lexer.h: the JSONPath tokenizer (internal to src/jsonpath).
 *
 * Splits a query into tokens on demand. Whitespace (space, tab, LF, CR) is
 * skipped but recorded in ws_before, because RFC 9535 allows it in some
 * places only (never after '.', never before a function's '('). String
 * literals are decoded here (both quote styles, every escape, surrogate
 * pairs); numbers are classified here (leading zeros rejected). */
#ifndef PF_JSONPATH_JP_LEXER_H
#define PF_JSONPATH_JP_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef enum pf_jp_tok_kind {
    PF_JP_TOK_EOF,
    PF_JP_TOK_ROOT,     /* $ */
    PF_JP_TOK_CURRENT,  /* @ */
    PF_JP_TOK_DOT,      /* . */
    PF_JP_TOK_DOTDOT,   /* .. */
    PF_JP_TOK_LBRACKET, /* [ */
    PF_JP_TOK_RBRACKET, /* ] */
    PF_JP_TOK_LPAREN,   /* ( */
    PF_JP_TOK_RPAREN,   /* ) */
    PF_JP_TOK_COMMA,    /* , */
    PF_JP_TOK_COLON,    /* : */
    PF_JP_TOK_STAR,     /* * */
    PF_JP_TOK_QUESTION, /* ? */
    PF_JP_TOK_NOT,      /* ! */
    PF_JP_TOK_AND,      /* && */
    PF_JP_TOK_OR,       /* || */
    PF_JP_TOK_EQ,       /* == */
    PF_JP_TOK_NE,       /* != */
    PF_JP_TOK_LT,       /* < */
    PF_JP_TOK_LE,       /* <= */
    PF_JP_TOK_GT,       /* > */
    PF_JP_TOK_GE,       /* >= */
    PF_JP_TOK_STRING,   /* '...' or "..." */
    PF_JP_TOK_NUMBER,   /* -?digits[.digits][e[+-]digits] */
    PF_JP_TOK_NAME,     /* member-name-shorthand characters */
} pf_jp_tok_kind;

typedef struct pf_jp_token {
    pf_jp_tok_kind kind;
    size_t off;    /* byte offset of the token in the query */
    size_t len;    /* bytes of query text it spans */
    int ws_before; /* 1 when whitespace precedes it */
    /* STRING: the decoded value, malloc'ed, NUL-terminated; owned by the
     * token until a parser takes it (sets it to NULL). */
    char *str;
    size_t slen;
    /* NUMBER */
    int is_int;       /* no fraction, no exponent, not "-0", fits int64 */
    int neg_zero;     /* the integer part is "-0" */
    int int_overflow; /* integer form that does not fit int64 */
    int64_t ival;     /* is_int */
    double dval;      /* every number */
} pf_jp_token;

typedef struct pf_jp_lexer {
    const char *s; /* the query, LEN bytes, well-formed UTF-8 */
    size_t len;
    size_t pos;
} pf_jp_lexer;

void pf_jp_lexer_init(pf_jp_lexer *lx, const char *s, size_t len);

/* Reads the next token into *T (any previous T->str must already be freed
 * or taken). Fails with PF_ESYNTAX (bad character, escape, number) or
 * PF_ENOMEM, filling ERR with the offset. */
pf_status pf_jp_lex_next(pf_jp_lexer *lx, pf_jp_token *t, pf_error *err);

/* Returns a short static description of token kind K, e.g. "']'". */
const char *pf_jp_tok_name(pf_jp_tok_kind k);

#endif
