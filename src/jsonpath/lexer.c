/* lexer.c: turns JSONPath query text into tokens (see jp_lexer.h). Owns the
 * RFC 9535 rules for string literals, escapes, numbers, names and
 * whitespace; knows nothing of the grammar above tokens. */
#include "jsonpath/jp_lexer.h"

#include <stdlib.h>
#include <string.h>

#include "jsonpath/jp_utf8.h"
#include "util/buf.h"

void pf_jp_lexer_init(pf_jp_lexer *lx, const char *s, size_t len)
{
    lx->s = s;
    lx->len = len;
    lx->pos = 0;
}

const char *pf_jp_tok_name(pf_jp_tok_kind k)
{
    switch (k) {
    case PF_JP_TOK_EOF:
        return "end of query";
    case PF_JP_TOK_ROOT:
        return "'$'";
    case PF_JP_TOK_CURRENT:
        return "'@'";
    case PF_JP_TOK_DOT:
        return "'.'";
    case PF_JP_TOK_DOTDOT:
        return "'..'";
    case PF_JP_TOK_LBRACKET:
        return "'['";
    case PF_JP_TOK_RBRACKET:
        return "']'";
    case PF_JP_TOK_LPAREN:
        return "'('";
    case PF_JP_TOK_RPAREN:
        return "')'";
    case PF_JP_TOK_COMMA:
        return "','";
    case PF_JP_TOK_COLON:
        return "':'";
    case PF_JP_TOK_STAR:
        return "'*'";
    case PF_JP_TOK_QUESTION:
        return "'?'";
    case PF_JP_TOK_NOT:
        return "'!'";
    case PF_JP_TOK_AND:
        return "'&&'";
    case PF_JP_TOK_OR:
        return "'||'";
    case PF_JP_TOK_EQ:
        return "'=='";
    case PF_JP_TOK_NE:
        return "'!='";
    case PF_JP_TOK_LT:
        return "'<'";
    case PF_JP_TOK_LE:
        return "'<='";
    case PF_JP_TOK_GT:
        return "'>'";
    case PF_JP_TOK_GE:
        return "'>='";
    case PF_JP_TOK_STRING:
        return "string";
    case PF_JP_TOK_NUMBER:
        return "number";
    case PF_JP_TOK_NAME:
        return "name";
    }
    return "token";
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_name_first_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at S+P (within N); returns the value or -1. */
static long hex4(const char *s, size_t n, size_t p)
{
    if (n - p < 4) return -1;
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = hexval(s[p + i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static pf_status lex_string(pf_jp_lexer *lx, pf_jp_token *t, pf_error *err)
{
    const char *s = lx->s;
    size_t n = lx->len;
    char quote = s[lx->pos];
    size_t p = lx->pos + 1;
    pf_buf b;
    pf_buf_init(&b, 0);
    pf_status st = PF_OK;
    for (;;) {
        if (p >= n) {
            st = pf_error_off(err, PF_ESYNTAX, (long)lx->pos, "unterminated string literal");
            goto fail;
        }
        unsigned char c = (unsigned char)s[p];
        if (c == (unsigned char)quote) {
            p++;
            break;
        }
        if (c < 0x20) {
            st = pf_error_off(err, PF_ESYNTAX, (long)p,
                              "control character U+%04X must be escaped in a string", c);
            goto fail;
        }
        if (c != '\\') {
            size_t run = p;
            while (run < n && s[run] != quote && s[run] != '\\' && (unsigned char)s[run] >= 0x20)
                run++;
            st = pf_buf_append(&b, s + p, run - p);
            if (st != PF_OK) goto nomem;
            p = run;
            continue;
        }
        /* escape */
        size_t esc = p;
        if (p + 1 >= n) {
            st = pf_error_off(err, PF_ESYNTAX, (long)esc, "unterminated escape sequence");
            goto fail;
        }
        char e = s[p + 1];
        char out = 0;
        switch (e) {
        case 'b':
            out = '\b';
            break;
        case 'f':
            out = '\f';
            break;
        case 'n':
            out = '\n';
            break;
        case 'r':
            out = '\r';
            break;
        case 't':
            out = '\t';
            break;
        case '/':
            out = '/';
            break;
        case '\\':
            out = '\\';
            break;
        case '\'':
        case '"':
            if (e != quote) {
                st = pf_error_off(err, PF_ESYNTAX, (long)esc,
                                  "invalid escape '\\%c' in a %s-quoted string", e,
                                  quote == '\'' ? "single" : "double");
                goto fail;
            }
            out = e;
            break;
        case 'u': {
            long hi = hex4(s, n, p + 2);
            if (hi < 0) {
                st = pf_error_off(err, PF_ESYNTAX, (long)esc,
                                  "'\\u' must be followed by four hex digits");
                goto fail;
            }
            uint32_t cp = (uint32_t)hi;
            p += 6;
            if (hi >= 0xDC00 && hi <= 0xDFFF) {
                st = pf_error_off(err, PF_ESYNTAX, (long)esc, "lone low surrogate \\u%04lX", hi);
                goto fail;
            }
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                long lo = -1;
                if (n - p >= 6 && s[p] == '\\' && s[p + 1] == 'u') lo = hex4(s, n, p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    st =
                        pf_error_off(err, PF_ESYNTAX, (long)esc,
                                     "high surrogate \\u%04lX not followed by a low surrogate", hi);
                    goto fail;
                }
                cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                p += 6;
            }
            char enc[4];
            size_t k = pf_jp_utf8_encode(cp, enc);
            st = pf_buf_append(&b, enc, k);
            if (st != PF_OK) goto nomem;
            continue;
        }
        default:
            if ((unsigned char)e < 0x20 || (unsigned char)e >= 0x7F)
                st = pf_error_off(err, PF_ESYNTAX, (long)esc, "invalid escape sequence");
            else
                st = pf_error_off(err, PF_ESYNTAX, (long)esc, "invalid escape '\\%c'", e);
            goto fail;
        }
        st = pf_buf_putc(&b, out);
        if (st != PF_OK) goto nomem;
        p += 2;
    }
    t->kind = PF_JP_TOK_STRING;
    t->slen = b.len;
    t->str = pf_buf_steal(&b);
    if (!t->str) {
        st = PF_ENOMEM;
        goto nomem;
    }
    t->len = p - lx->pos;
    lx->pos = p;
    return PF_OK;
nomem:
    pf_buf_free(&b);
    return pf_error_off(err, PF_ENOMEM, (long)lx->pos, "out of memory reading a string literal");
fail:
    pf_buf_free(&b);
    return st;
}

static pf_status lex_number(pf_jp_lexer *lx, pf_jp_token *t, pf_error *err)
{
    const char *s = lx->s;
    size_t n = lx->len;
    size_t p = lx->pos;
    int neg = 0;
    if (s[p] == '-') {
        neg = 1;
        p++;
        if (p >= n || !is_digit(s[p]))
            return pf_error_off(err, PF_ESYNTAX, (long)lx->pos, "'-' must be followed by a digit");
    }
    size_t int_start = p;
    uint64_t mag = 0;
    int overflow = 0;
    while (p < n && is_digit(s[p])) {
        unsigned d = (unsigned)(s[p] - '0');
        if (mag > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            mag = mag * 10 + d;
        p++;
    }
    if (p - int_start > 1 && s[int_start] == '0')
        return pf_error_off(err, PF_ESYNTAX, (long)int_start, "leading zeros are not allowed");
    int has_frac = 0, has_exp = 0;
    if (p < n && s[p] == '.') {
        if (p + 1 >= n || !is_digit(s[p + 1]))
            return pf_error_off(err, PF_ESYNTAX, (long)p,
                                "a decimal point must be followed by a digit");
        has_frac = 1;
        p++;
        while (p < n && is_digit(s[p]))
            p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        size_t q = p + 1;
        if (q < n && (s[q] == '+' || s[q] == '-')) q++;
        if (q >= n || !is_digit(s[q]))
            return pf_error_off(err, PF_ESYNTAX, (long)p, "an exponent must have digits");
        has_exp = 1;
        p = q;
        while (p < n && is_digit(s[p]))
            p++;
    }
    t->kind = PF_JP_TOK_NUMBER;
    t->len = p - lx->pos;
    t->neg_zero = neg && mag == 0 && !overflow;
    t->int_overflow = !has_frac && !has_exp &&
                      (overflow || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX));
    t->is_int = !has_frac && !has_exp && !t->neg_zero && !t->int_overflow;
    if (t->is_int) t->ival = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    /* The double value, for literals with a fraction or exponent. */
    char small[64];
    char *copy = small;
    if (t->len >= sizeof small) {
        copy = malloc(t->len + 1);
        if (!copy) return pf_error_off(err, PF_ENOMEM, (long)lx->pos, "out of memory");
    }
    memcpy(copy, s + lx->pos, t->len);
    copy[t->len] = '\0';
    t->dval = strtod(copy, NULL);
    if (copy != small) free(copy);
    lx->pos = p;
    return PF_OK;
}

static void lex_name(pf_jp_lexer *lx, pf_jp_token *t)
{
    const char *s = lx->s;
    size_t p = lx->pos;
    while (p < lx->len) {
        unsigned char c = (unsigned char)s[p];
        if (c >= 0x80) {
            uint32_t cp;
            size_t k = pf_jp_utf8_decode(s + p, lx->len - p, &cp);
            if (k == 0) break; /* cannot happen: the query was checked */
            p += k;
        } else if (is_name_first_ascii((char)c) || is_digit((char)c)) {
            p++;
        } else {
            break;
        }
    }
    t->kind = PF_JP_TOK_NAME;
    t->len = p - lx->pos;
    lx->pos = p;
}

pf_status pf_jp_lex_next(pf_jp_lexer *lx, pf_jp_token *t, pf_error *err)
{
    const char *s = lx->s;
    size_t n = lx->len;
    size_t start = lx->pos;
    while (lx->pos < n && is_ws(s[lx->pos]))
        lx->pos++;
    memset(t, 0, sizeof *t);
    t->ws_before = lx->pos > start;
    t->off = lx->pos;
    t->len = 1;
    if (lx->pos >= n) {
        t->kind = PF_JP_TOK_EOF;
        t->len = 0;
        return PF_OK;
    }
    char c = s[lx->pos];
    char c2 = lx->pos + 1 < n ? s[lx->pos + 1] : '\0';
    switch (c) {
    case '$':
        t->kind = PF_JP_TOK_ROOT;
        break;
    case '@':
        t->kind = PF_JP_TOK_CURRENT;
        break;
    case '[':
        t->kind = PF_JP_TOK_LBRACKET;
        break;
    case ']':
        t->kind = PF_JP_TOK_RBRACKET;
        break;
    case '(':
        t->kind = PF_JP_TOK_LPAREN;
        break;
    case ')':
        t->kind = PF_JP_TOK_RPAREN;
        break;
    case ',':
        t->kind = PF_JP_TOK_COMMA;
        break;
    case ':':
        t->kind = PF_JP_TOK_COLON;
        break;
    case '*':
        t->kind = PF_JP_TOK_STAR;
        break;
    case '?':
        t->kind = PF_JP_TOK_QUESTION;
        break;
    case '.':
        if (c2 == '.') {
            t->kind = PF_JP_TOK_DOTDOT;
            t->len = 2;
        } else {
            t->kind = PF_JP_TOK_DOT;
        }
        break;
    case '!':
        if (c2 == '=') {
            t->kind = PF_JP_TOK_NE;
            t->len = 2;
        } else {
            t->kind = PF_JP_TOK_NOT;
        }
        break;
    case '<':
    case '>':
        if (c2 == '=') {
            t->kind = c == '<' ? PF_JP_TOK_LE : PF_JP_TOK_GE;
            t->len = 2;
        } else {
            t->kind = c == '<' ? PF_JP_TOK_LT : PF_JP_TOK_GT;
        }
        break;
    case '=':
        if (c2 != '=')
            return pf_error_off(err, PF_ESYNTAX, (long)lx->pos,
                                "unexpected '=' (equality is '==')");
        t->kind = PF_JP_TOK_EQ;
        t->len = 2;
        break;
    case '&':
        if (c2 != '&')
            return pf_error_off(err, PF_ESYNTAX, (long)lx->pos, "unexpected '&' (and is '&&')");
        t->kind = PF_JP_TOK_AND;
        t->len = 2;
        break;
    case '|':
        if (c2 != '|')
            return pf_error_off(err, PF_ESYNTAX, (long)lx->pos, "unexpected '|' (or is '||')");
        t->kind = PF_JP_TOK_OR;
        t->len = 2;
        break;
    case '\'':
    case '"':
        return lex_string(lx, t, err);
    default:
        if (c == '-' || is_digit(c)) return lex_number(lx, t, err);
        if (is_name_first_ascii(c) || (unsigned char)c >= 0x80) {
            lex_name(lx, t);
            return PF_OK;
        }
        if ((unsigned char)c < 0x20 || c == 0x7F)
            return pf_error_off(err, PF_ESYNTAX, (long)lx->pos,
                                "unexpected control character 0x%02X", (unsigned char)c);
        return pf_error_off(err, PF_ESYNTAX, (long)lx->pos, "unexpected '%c'", c);
    }
    lx->pos += t->len;
    return PF_OK;
}
