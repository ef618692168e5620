/* iregexp.c: checks a pattern against the I-Regexp grammar (RFC 9485) and
 * translates it to PCRE2 syntax, per RFC 9485 sections 5.3 and 5.4. Iterative: a
 * pattern from an untrusted document cannot make it recurse. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jsonpath/jp_regex.h"
#include "jsonpath/jp_utf8.h"
#include "util/buf.h"

#define MAX_GROUP_DEPTH 200 /* below PCRE2's own parenthesis limit (250) */
#define MAX_QUANT 65535     /* PCRE2's largest repeat count */

typedef struct rx {
    const char *s;
    size_t n, pos;
    pf_buf *out;
} rx;

static pf_status emit(rx *r, const char *t)
{
    return pf_buf_puts(r->out, t) == PF_OK ? PF_OK : PF_ENOMEM;
}

/* Emits code point CP as a PCRE2 literal, valid inside and outside classes. */
static pf_status emit_cp(rx *r, uint32_t cp)
{
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
        char c = (char)cp;
        return pf_buf_putc(r->out, c) == PF_OK ? PF_OK : PF_ENOMEM;
    }
    if (cp >= 0x80) {
        char enc[4];
        size_t k = pf_jp_utf8_encode(cp, enc);
        return pf_buf_append(r->out, enc, k) == PF_OK ? PF_OK : PF_ENOMEM;
    }
    return pf_buf_printf(r->out, "\\x{%x}", (unsigned)cp) == PF_OK ? PF_OK : PF_ENOMEM;
}

static int next_cp(rx *r, uint32_t *cp)
{
    if (r->pos >= r->n) return 0;
    size_t k = pf_jp_utf8_decode(r->s + r->pos, r->n - r->pos, cp);
    if (k == 0) return -1;
    r->pos += k;
    return 1;
}

static int peek_is(const rx *r, char c)
{
    return r->pos < r->n && r->s[r->pos] == c;
}

/* After "\p" or "\P": "{" category "}". Emits "\p{Xx}" / "\P{Xx}". */
static pf_status category(rx *r, int negated)
{
    static const char *const cats[] = {
        "L",  "Lu", "Ll", "Lt", "Lm", "Lo", "M",  "Mn", "Mc", "Me", "N",  "Nd",
        "Nl", "No", "P",  "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z",  "Zs",
        "Zl", "Zp", "S",  "Sm", "Sc", "Sk", "So", "C",  "Cc", "Cf", "Co", "Cn",
    };
    if (!peek_is(r, '{')) return PF_ESYNTAX;
    size_t start = r->pos + 1, end = start;
    while (end < r->n && end - start < 3 && r->s[end] != '}')
        end++;
    if (end >= r->n || r->s[end] != '}') return PF_ESYNTAX;
    size_t len = end - start;
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        if (strlen(cats[i]) == len && memcmp(cats[i], r->s + start, len) == 0) {
            r->pos = end + 1;
            return pf_buf_printf(r->out, "\\%c{%s}", negated ? 'P' : 'p', cats[i]) == PF_OK
                       ? PF_OK
                       : PF_ENOMEM;
        }
    }
    return PF_ESYNTAX;
}

/* SingleCharEsc: the character after '\' that stands for itself or a control. */
static int single_char_esc(uint32_t c, uint32_t *cp)
{
    switch (c) {
    case 'n':
        *cp = '\n';
        return 1;
    case 'r':
        *cp = '\r';
        return 1;
    case 't':
        *cp = '\t';
        return 1;
    case '(':
    case ')':
    case '*':
    case '+':
    case '-':
    case '.':
    case '?':
    case '[':
    case '\\':
    case ']':
    case '^':
    case '{':
    case '|':
    case '}':
        *cp = c;
        return 1;
    default:
        return 0;
    }
}

/* One item of a character class. Returns PF_OK with *IS_CHAR and *CP for a
 * single character (not yet emitted), or emits a category escape. */
static pf_status class_item(rx *r, int *is_char, uint32_t *cp)
{
    uint32_t c;
    if (next_cp(r, &c) != 1) return PF_ESYNTAX;
    if (c == '\\') {
        uint32_t e;
        if (next_cp(r, &e) != 1) return PF_ESYNTAX;
        if (e == 'p' || e == 'P') {
            *is_char = 0;
            return category(r, e == 'P');
        }
        if (!single_char_esc(e, cp)) return PF_ESYNTAX;
        *is_char = 1;
        return PF_OK;
    }
    if (c == '-' || c == '[' || c == ']') return PF_ESYNTAX;
    *is_char = 1;
    *cp = c;
    return PF_OK;
}

/* A character class; the '[' is consumed. */
static pf_status char_class(rx *r)
{
    pf_status st;
    if ((st = emit(r, "[")) != PF_OK) return st;
    if (peek_is(r, '^')) {
        r->pos++;
        if ((st = emit(r, "^")) != PF_OK) return st;
    }
    int items = 0;
    if (peek_is(r, '-')) {
        r->pos++;
        if ((st = emit(r, "\\x{2d}")) != PF_OK) return st;
        items = 1;
    }
    for (;;) {
        if (r->pos >= r->n) return PF_ESYNTAX;
        if (peek_is(r, ']')) {
            if (!items) return PF_ESYNTAX;
            r->pos++;
            return emit(r, "]");
        }
        if (peek_is(r, '-')) {
            /* only allowed as the last character before ']' */
            if (!items || r->pos + 1 >= r->n || r->s[r->pos + 1] != ']') return PF_ESYNTAX;
            r->pos++;
            if ((st = emit(r, "\\x{2d}")) != PF_OK) return st;
            continue;
        }
        int is_char;
        uint32_t lo;
        if ((st = class_item(r, &is_char, &lo)) != PF_OK) return st;
        items = 1;
        if (!is_char) continue;
        if (peek_is(r, '-') && r->pos + 1 < r->n && r->s[r->pos + 1] != ']') {
            r->pos++;
            uint32_t hi;
            if ((st = class_item(r, &is_char, &hi)) != PF_OK) return st;
            if (!is_char || hi < lo) return PF_ESYNTAX;
            if ((st = emit_cp(r, lo)) != PF_OK || (st = emit(r, "-")) != PF_OK ||
                (st = emit_cp(r, hi)) != PF_OK)
                return st;
        } else if ((st = emit_cp(r, lo)) != PF_OK) {
            return st;
        }
    }
}

/* "{n}", "{n,}" or "{n,m}"; the '{' is consumed. */
static pf_status range_quantifier(rx *r)
{
    unsigned long v[2] = {0, 0};
    int have[2] = {0, 0};
    int comma = 0;
    for (;;) {
        if (r->pos >= r->n) return PF_ESYNTAX;
        char c = r->s[r->pos++];
        if (c >= '0' && c <= '9') {
            v[comma] = v[comma] * 10 + (unsigned long)(c - '0');
            if (v[comma] > MAX_QUANT) return PF_ESYNTAX;
            have[comma] = 1;
        } else if (c == ',' && !comma && have[0]) {
            comma = 1;
        } else if (c == '}' && have[0]) {
            break;
        } else {
            return PF_ESYNTAX;
        }
    }
    if (!comma) return pf_buf_printf(r->out, "{%lu}", v[0]) == PF_OK ? PF_OK : PF_ENOMEM;
    if (!have[1]) return pf_buf_printf(r->out, "{%lu,}", v[0]) == PF_OK ? PF_OK : PF_ENOMEM;
    if (v[1] < v[0]) return PF_ESYNTAX;
    return pf_buf_printf(r->out, "{%lu,%lu}", v[0], v[1]) == PF_OK ? PF_OK : PF_ENOMEM;
}

pf_status pf_jp_iregexp_to_pcre2(const char *pat, size_t len, pf_buf *out)
{
    rx r = {pat, len, 0, out};
    size_t depth = 0;
    int can_quantify = 0;
    pf_status st = PF_OK;
    while (r.pos < r.n) {
        uint32_t c;
        if (next_cp(&r, &c) != 1) return PF_ESYNTAX;
        switch (c) {
        case '|':
            st = emit(&r, "|");
            can_quantify = 0;
            break;
        case '(':
            if (++depth > MAX_GROUP_DEPTH) return PF_ESYNTAX;
            st = emit(&r, "(?:");
            can_quantify = 0;
            break;
        case ')':
            if (depth == 0) return PF_ESYNTAX;
            depth--;
            st = emit(&r, ")");
            can_quantify = 1;
            break;
        case '*':
        case '+':
        case '?': {
            if (!can_quantify) return PF_ESYNTAX;
            char q[2] = {(char)c, '\0'};
            st = emit(&r, q);
            can_quantify = 0;
            break;
        }
        case '{':
            if (!can_quantify) return PF_ESYNTAX;
            st = range_quantifier(&r);
            can_quantify = 0;
            break;
        case '.':
            st = emit(&r, "[^\\n\\r]");
            can_quantify = 1;
            break;
        case '[':
            st = char_class(&r);
            can_quantify = 1;
            break;
        case '\\': {
            uint32_t e, cp;
            if (next_cp(&r, &e) != 1) return PF_ESYNTAX;
            if (e == 'p' || e == 'P')
                st = category(&r, e == 'P');
            else if (single_char_esc(e, &cp))
                st = emit_cp(&r, cp);
            else
                return PF_ESYNTAX;
            can_quantify = 1;
            break;
        }
        case ']':
        case '}':
            return PF_ESYNTAX;
        case '^':
        case '$':
            /* RFC 9485 section 5.4 maps I-Regexp to PCRE without escaping
             * these, so they act as anchors (the compliance suite expects
             * that); '$' is compiled with PCRE2_DOLLAR_ENDONLY. */
            st = emit(&r, c == '^' ? "^" : "$");
            can_quantify = 1;
            break;
        default:
            st = emit_cp(&r, c);
            can_quantify = 1;
            break;
        }
        if (st != PF_OK) return st;
    }
    return depth == 0 ? PF_OK : PF_ESYNTAX;
}
