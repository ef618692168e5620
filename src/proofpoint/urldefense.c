/* urldefense.c: offline decoder for Proofpoint URL Defense rewritten URLs (v1, v2, v3).
 *
 * The work is a straight pipeline, iterative throughout:
 *   prefix match -> per-version extraction (positional, shortest-match terminators)
 *   v1/v2: ('-'->'%', '_'->'/' for v2) -> percent-decode -> limited HTML unescape
 *   v3:    single-slash repair -> percent-decode -> marker substitution with
 *          byte-counted runs -> final UTF-8 and NUL check.
 * Every intermediate byte carries the offset of the input byte it came from
 * (struct sbuf), so an error found late still points at the right input byte.
 * Each buffer is sized from a proven bound before it is filled; sb_put() also
 * refuses to write past it, so a wrong bound is an error, never an overflow.
 * See docs/urldefense.md for the formats and every choice made here. */
#include "proofpoint/urldefense.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS ((size_t)-1)

static const char PFX_COM[] = "https://urldefense.com/v";
static const char PFX_PP[] = "https://urldefense.proofpoint.com/v";

/* ---- bytes with a source map ---------------------------------------------------------- */

typedef struct sbuf {
    unsigned char *b; /* the bytes */
    size_t *src;      /* src[i]: offset in the input that produced b[i] */
    size_t len, cap;
    int overflow; /* a put went past cap: a bug in a bound, reported as an error */
} sbuf;

static void sb_zero(sbuf *s)
{
    s->b = NULL;
    s->src = NULL;
    s->len = s->cap = 0;
    s->overflow = 0;
}

static pf_status sb_init(sbuf *s, size_t cap)
{
    sb_zero(s);
    size_t n = cap ? cap : 1;
    if (n > SIZE_MAX / sizeof *s->src) return PF_ENOMEM;
    s->b = malloc(n);
    s->src = malloc(n * sizeof *s->src);
    if (!s->b || !s->src) {
        free(s->b);
        free(s->src);
        sb_zero(s);
        return PF_ENOMEM;
    }
    s->cap = cap;
    return PF_OK;
}

static void sb_free(sbuf *s)
{
    free(s->b);
    free(s->src);
    sb_zero(s);
}

static void sb_put(sbuf *s, unsigned char c, size_t off)
{
    if (s->len >= s->cap) {
        s->overflow = 1;
        return;
    }
    s->b[s->len] = c;
    s->src[s->len] = off;
    s->len++;
}

/* ---- errors --------------------------------------------------------------------------- */

typedef struct ctx {
    const unsigned char *in;
    size_t len;
    pf_error *err;
} ctx;

/* Reports malformed input at byte offset OFF of the input. */
static pf_status bad_at(ctx *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static pf_status bad_at(ctx *c, size_t off, const char *fmt, ...)
{
    char msg[PF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pf_error_off(c->err, PF_EDATA, (long)off, "%s", msg);
}

static pf_status oom(ctx *c)
{
    return pf_error_set(c->err, PF_ENOMEM, "out of memory while decoding a URL Defense URL");
}

static pf_status check_overflow(ctx *c, const sbuf *s)
{
    if (!s->overflow) return PF_OK;
    return pf_error_set(c->err, PF_ETOOBIG, "internal limit reached while decoding");
}

/* Writes a printable form of byte B into BUF (for messages). */
static const char *show_byte(unsigned char b, char buf[8])
{
    if (b > 0x20 && b < 0x7f)
        snprintf(buf, 8, "'%c'", b);
    else
        snprintf(buf, 8, "0x%02X", b);
    return buf;
}

/* ---- small scanners ------------------------------------------------------------------- */

/* First offset >= FROM where NEEDLE fits entirely in S[0..N); NPOS if none. */
static size_t find(const unsigned char *s, size_t n, size_t from, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0 || from > n || n - from < nl) return NPOS;
    for (size_t i = from; i <= n - nl; i++)
        if (s[i] == (unsigned char)needle[0] && memcmp(s + i, needle, nl) == 0) return i;
    return NPOS;
}

/* First offset in [FROM, TO) holding byte C; NPOS if none. */
static size_t find_byte(const unsigned char *s, size_t from, size_t to, unsigned char c)
{
    for (size_t i = from; i < to; i++)
        if (s[i] == c) return i;
    return NPOS;
}

static size_t min_pos(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* At P[0..N) (N >= 1): returns the length (1-4) of a well-formed UTF-8 sequence,
 * or 0 when ill-formed, with *BAD = length of the maximal ill-formed subpart
 * (>= 1), the unit that one U+FFFD replaces (Unicode's recommended practice,
 * which Python's decoder follows). */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned c = p[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;
    } else if (c >= 0xE1 && c <= 0xEF) {
        need = 2;
        if (c == 0xED) hi = 0x9F;
    } else if (c == 0xF0) {
        need = 3;
        lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i;
    for (i = 1; i <= need && i < n; i++) {
        unsigned d = p[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (d < l || d > h) break;
    }
    if (i == need + 1) return need + 1;
    *bad = i;
    return 0;
}

/* Returns 1 when P[0..N) is valid UTF-8; else 0 with *BAD_AT = offset of the
 * first byte of the first ill-formed sequence. */
static int utf8_valid(const unsigned char *p, size_t n, size_t *bad_at)
{
    size_t i = 0;
    while (i < n) {
        size_t bad;
        size_t l = utf8_seq(p + i, n - i, &bad);
        if (!l) {
            *bad_at = i;
            return 0;
        }
        i += l;
    }
    return 1;
}

/* Encodes CP (<= 0x10FFFF) into OUT; returns the byte count. */
static size_t utf8_put(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static void put_fffd(sbuf *o, size_t off)
{
    sb_put(o, 0xEF, off);
    sb_put(o, 0xBF, off);
    sb_put(o, 0xBD, off);
}

/* ---- percent-decoding (shared by all versions) ---------------------------------------- */

/* Decodes every "%XY" (two hex digits, either case) in S into O (cap >= S->len).
 * Each maximal run of escapes is read as UTF-8, ill-formed parts becoming
 * U+FFFD; other bytes are copied, so "%" without two hex digits stays as is and
 * '+' stays '+'. A decoded or literal NUL is an error. */
static pf_status pct_decode(ctx *c, const sbuf *s, sbuf *o)
{
    pf_status st = PF_OK;
    size_t run_max = s->len / 3 + 1;
    unsigned char *rb = malloc(run_max);
    size_t *rs = malloc(run_max * sizeof *rs);
    if (!rb || !rs) {
        st = oom(c);
        goto done;
    }
    size_t i = 0;
    while (i < s->len) {
        if (s->b[i] == '%' && i + 2 < s->len && hexval(s->b[i + 1]) >= 0 &&
            hexval(s->b[i + 2]) >= 0) {
            size_t k = 0;
            while (i + 2 < s->len && s->b[i] == '%' && hexval(s->b[i + 1]) >= 0 &&
                   hexval(s->b[i + 2]) >= 0 && k < run_max) {
                rb[k] = (unsigned char)(hexval(s->b[i + 1]) * 16 + hexval(s->b[i + 2]));
                rs[k] = s->src[i];
                k++;
                i += 3;
            }
            size_t p = 0;
            while (p < k) {
                size_t badn;
                size_t l = utf8_seq(rb + p, k - p, &badn);
                if (!l) {
                    put_fffd(o, rs[p]);
                    p += badn;
                    continue;
                }
                for (size_t q = 0; q < l; q++) {
                    if (rb[p + q] == 0) {
                        st = bad_at(c, rs[p + q], "decoded URL would contain a NUL byte");
                        goto done;
                    }
                    sb_put(o, rb[p + q], rs[p + q]);
                }
                p += l;
            }
        } else {
            if (s->b[i] == 0) {
                st = bad_at(c, s->src[i], "NUL byte in the URL");
                goto done;
            }
            sb_put(o, s->b[i], s->src[i]);
            i++;
        }
    }
    st = check_overflow(c, o);
done:
    free(rb);
    free(rs);
    return st;
}

/* ---- v1 / v2 -------------------------------------------------------------------------- */

/* Windows-1252 meaning of numeric references 0x80-0x9F (HTML5 parsing rules). */
static const uint16_t w1252[32] = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                   0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                   0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                   0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

/* Applies HTML5's fix-ups to a numeric reference's code point. Returns the code
 * point to emit, or UINT32_MAX when the reference expands to nothing. */
static uint32_t charref_fix(uint32_t cp)
{
    if (cp == 0) return 0xFFFD;
    if (cp >= 0x80 && cp <= 0x9F) return w1252[cp - 0x80];
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0xFFFD;
    if ((cp >= 0x01 && cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
        (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
        return UINT32_MAX;
    return cp;
}

static const struct {
    const char *name; /* including the ';' */
    unsigned char ch;
} named_refs[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''},
                  {"AMP;", '&'}, {"LT;", '<'}, {"GT;", '>'}, {"QUOT;", '"'}};

/* At D->b[i] == '&': if a supported reference starts there, emits it into O and
 * returns its length in bytes; else returns 0. */
static size_t charref(const sbuf *d, size_t i, sbuf *o)
{
    const unsigned char *p = d->b + i;
    size_t n = d->len - i;
    for (size_t k = 0; k < sizeof named_refs / sizeof named_refs[0]; k++) {
        size_t l = strlen(named_refs[k].name);
        if (n > l && memcmp(p + 1, named_refs[k].name, l) == 0) {
            sb_put(o, named_refs[k].ch, d->src[i]);
            return l + 1;
        }
    }
    if (n < 4 || p[1] != '#') return 0;
    int hex = p[2] == 'x' || p[2] == 'X';
    size_t j = hex ? 3 : 2, digits = 0;
    uint32_t cp = 0;
    for (; j < n; j++, digits++) {
        int v = hex ? hexval(p[j]) : (p[j] >= '0' && p[j] <= '9' ? p[j] - '0' : -1);
        if (v < 0) break;
        cp = cp > 0x10FFFF ? 0x110000 : cp * (hex ? 16u : 10u) + (uint32_t)v;
    }
    if (digits == 0 || j >= n || p[j] != ';') return 0;
    cp = charref_fix(cp > 0x10FFFF ? 0x110000 : cp);
    if (cp != UINT32_MAX) {
        unsigned char u[4];
        size_t ul = utf8_put(cp, u);
        for (size_t q = 0; q < ul; q++)
            sb_put(o, u[q], d->src[i]);
    }
    return j + 1;
}

/* Replaces the supported character references in D (see the header) into O.
 * No reference's output is longer than its text, so cap D->len suffices. */
static void html_unescape(const sbuf *d, sbuf *o)
{
    size_t i = 0;
    while (i < d->len) {
        if (d->b[i] == '&') {
            size_t l = charref(d, i, o);
            if (l) {
                i += l;
                continue;
            }
        }
        sb_put(o, d->b[i], d->src[i]);
        i++;
    }
}

/* Finds the end of the u= value starting at VS: the first of the terminators
 * (plain form first; the HTML-escaped form only when no plain one exists). */
static size_t v12_terminator(const ctx *c, int version, size_t vs)
{
    const unsigned char *in = c->in;
    size_t n = c->len;
    if (version == 1) {
        size_t t = find(in, n, vs, "&k=");
        return t != NPOS ? t : find(in, n, vs, "&amp;k=");
    }
    size_t t = min_pos(find(in, n, vs, "&d="), find(in, n, vs, "&c="));
    if (t != NPOS) return t;
    return min_pos(find(in, n, vs, "&amp;d="), find(in, n, vs, "&amp;c="));
}

static pf_status decode_v12(ctx *c, int version, size_t body, sbuf *res)
{
    const unsigned char *in = c->in;
    size_t u = find(in, c->len, body, "u=");
    if (u == NPOS) return bad_at(c, body, "missing \"u=\" parameter");
    size_t vs = u + 2;
    size_t te = v12_terminator(c, version, vs);
    if (te == NPOS)
        return bad_at(c, u,
                      version == 1 ? "no \"&k=\" after the u= value"
                                   : "no \"&d=\" or \"&c=\" after the u= value");
    if (te == vs) return bad_at(c, vs, "empty u= value");
    size_t nl = find_byte(in, vs, te, '\n');
    if (nl != NPOS) return bad_at(c, nl, "line break inside the u= value");
    size_t badp;
    if (!utf8_valid(in + vs, te - vs, &badp)) return bad_at(c, vs + badp, "invalid UTF-8");

    sbuf raw, dec;
    sb_zero(&dec);
    pf_status st = sb_init(&raw, te - vs);
    if (st != PF_OK) return oom(c);
    for (size_t i = vs; i < te; i++) {
        unsigned char ch = in[i];
        if (version == 2) ch = ch == '-' ? '%' : ch == '_' ? '/' : ch;
        sb_put(&raw, ch, i);
    }
    if (sb_init(&dec, raw.len) != PF_OK) {
        st = oom(c);
        goto done;
    }
    st = pct_decode(c, &raw, &dec);
    if (st != PF_OK) goto done;
    if (sb_init(res, dec.len) != PF_OK) {
        st = oom(c);
        goto done;
    }
    html_unescape(&dec, res);
    st = check_overflow(c, res);
done:
    sb_free(&raw);
    sb_free(&dec);
    return st;
}

/* ---- v3 ------------------------------------------------------------------------------- */

/* Index of C in the base64url alphabet (also accepting '+' and '/'), or -1. */
static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
}

/* Index of the run-length code C (A-Z a-z 0-9 - _), or -1. */
static int runval(unsigned char c)
{
    return (c == '+' || c == '/') ? -1 : b64val(c);
}

/* Decodes the replacement string IN[e0..e1) into a new buffer *R of *RLEN bytes. */
static pf_status b64_decode(ctx *c, size_t e0, size_t e1, unsigned char **r, size_t *rlen)
{
    const unsigned char *s = c->in + e0;
    size_t n = e1 - e0, end = n;
    char sb[8];
    *r = NULL;
    *rlen = 0;
    while (end > 0 && s[end - 1] == '=')
        end--;
    if (n - end > 2)
        return bad_at(c, e0 + end + 2, "too much '=' padding in the replacement string");
    for (size_t i = 0; i < end; i++)
        if (b64val(s[i]) < 0)
            return bad_at(c, e0 + i, "invalid character %s in the replacement string",
                          show_byte(s[i], sb));
    if (end % 4 == 1)
        return bad_at(c, e0 + end - 1,
                      "replacement string has an impossible base64 length (%zu characters)", end);
    size_t cap = end / 4 * 3 + (end % 4 ? end % 4 - 1 : 0);
    /* Zeroed: only the K bytes written below are read, but GCC's -O3
     * cannot see that and warns (maybe-uninitialized) without it. */
    unsigned char *o = calloc(cap ? cap : 1, 1);
    if (!o) return oom(c);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < end; i++) {
        acc = (acc << 6) | (uint32_t)b64val(s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k < cap) o[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *r = o;
    *rlen = k;
    return PF_OK;
}

/* Length of the scheme in T[0..N) when T is "scheme:/X..." with X != '/' and at
 * least one more byte (a shortened "scheme://"), else 0. */
static size_t single_slash_scheme(const unsigned char *t, size_t n)
{
    size_t i = 0;
    while (i < n && ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
                     (t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '.' || t[i] == '-'))
        i++;
    if (i == 0 || n < i + 4 || t[i] != ':' || t[i + 1] != '/' || t[i + 2] == '/') return 0;
    return i;
}

/* Replaces the markers of D with bytes of R[0..RLEN) into O (cap >= D->len + RLEN). */
static pf_status substitute(ctx *c, const sbuf *d, const unsigned char *r, size_t rlen, sbuf *o)
{
    size_t i = 0, cur = 0;
    char sb[8];
    while (i < d->len) {
        unsigned char ch = d->b[i];
        if (ch != '*') {
            sb_put(o, ch, d->src[i]);
            i++;
            continue;
        }
        size_t moff = d->src[i];
        /* "**X" is a run marker when X exists; X == '\n' (only possible from
         * %0A) reads as two single markers, as in the reference. */
        if (i + 2 < d->len && d->b[i + 1] == '*' && d->b[i + 2] != '\n') {
            int x = runval(d->b[i + 2]);
            if (x < 0)
                return bad_at(c, d->src[i + 2], "invalid run-length code %s after \"**\"",
                              show_byte(d->b[i + 2], sb));
            size_t run = 2 + (size_t)x;
            if (run > rlen - cur)
                return bad_at(c, moff,
                              "run marker \"**%c\" needs %zu replacement bytes but only %zu remain",
                              d->b[i + 2], run, rlen - cur);
            for (size_t k = 0; k < run; k++)
                sb_put(o, r[cur + k], moff);
            cur += run;
            i += 3;
        } else {
            if (cur >= rlen) return bad_at(c, moff, "'*' marker has no replacement byte left");
            sb_put(o, r[cur++], moff);
            i++;
        }
    }
    /* Unused replacement bytes are ignored, as the reference does. */
    return check_overflow(c, o);
}

static pf_status decode_v3(ctx *c, size_t body, sbuf *res)
{
    const unsigned char *in = c->in;
    size_t n = c->len;
    if (n - body < 2 || in[body] != '_' || in[body + 1] != '_')
        return bad_at(c, body, "expected \"__\" after /v3/");
    size_t t0 = body + 2;
    size_t t1 = find(in, n, t0 + 1, "__;");
    if (t1 == NPOS) {
        if (find(in, n, t0, "__;") == t0) return bad_at(c, t0, "empty encoded URL");
        return bad_at(c, t0, "no \"__;\" after the encoded URL");
    }
    size_t nl = find_byte(in, t0, t1, '\n');
    if (nl != NPOS) return bad_at(c, nl, "line break inside the encoded URL");
    size_t e0 = t1 + 3;
    size_t e1 = find_byte(in, e0, n, '!');
    if (e1 == NPOS) return bad_at(c, e0, "no '!' after the replacement string");
    size_t badp;
    if (!utf8_valid(in + t0, t1 - t0, &badp)) return bad_at(c, t0 + badp, "invalid UTF-8");

    sbuf t, d;
    unsigned char *r = NULL;
    size_t rlen = 0;
    sb_zero(&d);
    pf_status st = sb_init(&t, t1 - t0 + 1);
    if (st != PF_OK) return oom(c);

    /* Single-slash repair: "https:/host" was "https://host". */
    size_t scheme = single_slash_scheme(in + t0, t1 - t0);
    for (size_t i = t0; i < t1; i++) {
        sb_put(&t, in[i], i);
        if (scheme && i == t0 + scheme + 1) sb_put(&t, '/', i);
    }
    if (sb_init(&d, t.len) != PF_OK) {
        st = oom(c);
        goto done;
    }
    st = pct_decode(c, &t, &d);
    if (st != PF_OK) goto done;
    st = b64_decode(c, e0, e1, &r, &rlen);
    if (st != PF_OK) goto done;
    if (!utf8_valid(r, rlen, &badp)) {
        st = bad_at(c, e0 + badp * 4 / 3, "replacement bytes are not valid UTF-8");
        goto done;
    }
    if (d.len > SIZE_MAX - rlen || sb_init(res, d.len + rlen) != PF_OK) {
        st = oom(c);
        goto done;
    }
    st = substitute(c, &d, r, rlen, res);
    if (st != PF_OK) goto done;
    for (size_t i = 0; i < res->len; i++) {
        if (res->b[i] == 0) {
            st = bad_at(c, res->src[i], "decoded URL would contain a NUL byte");
            goto done;
        }
    }
    if (!utf8_valid(res->b, res->len, &badp))
        st = bad_at(c, res->src[badp],
                    "decoded URL is not valid UTF-8 (a marker splits a character)");
done:
    sb_free(&t);
    sb_free(&d);
    free(r);
    return st;
}

/* ---- entry points --------------------------------------------------------------------- */

/* Length of the matched "https://urldefense[.proofpoint].com/v" prefix, or 0. */
static size_t prefix_len(const char *in, size_t len)
{
    size_t a = sizeof PFX_COM - 1, b = sizeof PFX_PP - 1;
    if (len >= a && memcmp(in, PFX_COM, a) == 0) return a;
    if (len >= b && memcmp(in, PFX_PP, b) == 0) return b;
    return 0;
}

int pf_urldefense_detect(const char *in, size_t len)
{
    if (!in) return -1;
    size_t p = prefix_len(in, len);
    if (!p || len - p < 2 || in[p] < '0' || in[p] > '9' || in[p + 1] != '/') return -1;
    return in[p] - '0';
}

pf_status pf_urldefense_decode(const char *in, size_t len, pf_buf *out, int *version_out,
                               pf_error *err)
{
    if (version_out) *version_out = 0;
    if (!out || (!in && len))
        return pf_error_set(err, PF_EINVAL, "pf_urldefense_decode: NULL argument");
    if (len > PF_URLDEFENSE_MAX_INPUT)
        return pf_error_set(err, PF_ETOOBIG, "URL is %zu bytes; the limit is %u bytes", len,
                            PF_URLDEFENSE_MAX_INPUT);
    int v = pf_urldefense_detect(in, len);
    if (v < 0) return pf_error_set(err, PF_EDATA, "not a URL Defense URL");
    size_t vpos = prefix_len(in, len) - 1; /* the 'v' */
    if (v < 1 || v > 3)
        return pf_error_off(err, PF_EDATA, (long)vpos, "unsupported URL Defense version v%d", v);
    if (version_out) *version_out = v;

    ctx c = {(const unsigned char *)in, len, err};
    size_t body = vpos + 3; /* after "vN/" */
    sbuf res;
    sb_zero(&res);
    pf_status st = v == 3 ? decode_v3(&c, body, &res) : decode_v12(&c, v, body, &res);
    if (st == PF_OK) {
        st = pf_buf_append(out, res.b, res.len);
        if (st == PF_ETOOBIG)
            pf_error_set(err, st, "decoded URL (%zu bytes) exceeds the output limit", res.len);
        else if (st != PF_OK)
            oom(&c);
    }
    sb_free(&res);
    return st;
}
