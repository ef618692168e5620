/* log.c: stderr logging, text or JSON lines, with secret redaction, and the
 * secret table. Owns: the registered secrets (copies, wiped when forgotten),
 * the matcher that finds them in a text raw or JSON-, percent- or
 * HTML-encoded (decoding on the fly, see log.h), and the rule that a text
 * is redacted whole before anything cuts it: a message is formatted whole,
 * then redacted, then cut to the line limit, so a cut can never leave part
 * of a secret. One line per message (control characters are escaped, so
 * text from a server cannot forge log lines). */
#include "util/log.h"

#include "util/progress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The secret table grows as needed up to this many entries (a scheduler
 * running many flows registers a few per flow). */
#define MAX_SECRETS 4096
#define LINE_MAX_BYTES 4096
#define SCOPE_MAX 4096

static pf_log_level g_level = PF_LOG_INFO;
static int g_json = 0;
static char g_flow[128];
static char g_run[64];

/* One registered secret. Secrets are chained by their first byte (FIRST and
 * NEXT hold index + 1; 0 ends a chain), so matching at a position only
 * looks at the secrets that can start there. */
typedef struct secret {
    char *s;
    size_t len;
    char *scope; /* NULL: unscoped */
    int weak;    /* a value from ${VAR}: redacted, not a credential (see log.h) */
    size_t next;
} secret;

static secret *g_sec;
static size_t g_n, g_cap;
static size_t g_first[256];
static char *g_scope; /* scope of new registrations; NULL: none */
static int g_credentials_only; /* matching skips weak secrets (under g_mu) */
/* Guards the secret table and the scope: any thread may log while another
 * registers. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

void pf_log_set_level(pf_log_level level)
{
    g_level = level;
}

pf_log_level pf_log_get_level(void)
{
    return g_level;
}

int pf_log_set_format(const char *format)
{
    if (strcmp(format, "text") == 0)
        g_json = 0;
    else if (strcmp(format, "json") == 0)
        g_json = 1;
    else
        return -1;
    return 0;
}

void pf_log_set_flow(const char *flow)
{
    snprintf(g_flow, sizeof g_flow, "%s", flow ? flow : "");
}

void pf_log_set_run(const char *run)
{
    snprintf(g_run, sizeof g_run, "%s", run ? run : "");
}

/* ---- the secret table (callers hold g_mu) ---- */

static void wipe_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void rebuild_chains(void)
{
    memset(g_first, 0, sizeof g_first);
    for (size_t i = g_n; i-- > 0;) {
        unsigned char c = (unsigned char)g_sec[i].s[0];
        g_sec[i].next = g_first[c];
        g_first[c] = i + 1;
    }
}

static int add_secret(const char *secret_text, int weak)
{
    if (!secret_text || strlen(secret_text) < (weak ? PF_LOG_WEAK_SECRET_MIN : 3)) return 0;
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_n; i++) {
        if (strcmp(g_sec[i].s, secret_text) != 0) continue;
        if (!weak) g_sec[i].weak = 0; /* a credential once is a credential */
        if (!g_sec[i].scope) goto out; /* unscoped: kept everywhere already */
        if (!g_scope) {
            /* Registered without a scope now: kept everywhere from now on. */
            free(g_sec[i].scope);
            g_sec[i].scope = NULL;
            goto out;
        }
        if (strcmp(g_sec[i].scope, g_scope) == 0) goto out;
    }
    if (g_n == g_cap) {
        size_t nc = g_cap ? g_cap * 2 : 32;
        secret *t = nc <= MAX_SECRETS ? realloc(g_sec, nc * sizeof *t) : NULL;
        if (!t) {
            rc = -1;
            goto out;
        }
        g_sec = t;
        g_cap = nc;
    }
    secret e = {.s = strdup(secret_text), .len = strlen(secret_text), .weak = weak};
    if (g_scope) e.scope = strdup(g_scope);
    if (!e.s || (g_scope && !e.scope)) {
        wipe_free(e.s);
        free(e.scope);
        rc = -1;
        goto out;
    }
    unsigned char c = (unsigned char)e.s[0];
    e.next = g_first[c];
    g_sec[g_n++] = e;
    g_first[c] = g_n;
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int pf_log_add_secret(const char *secret_text)
{
    return add_secret(secret_text, 0);
}

int pf_log_add_weak_secret(const char *secret_text)
{
    return add_secret(secret_text, 1);
}

void pf_log_secret_scope(const char *scope)
{
    char *copy = NULL;
    if (scope) {
        size_t l = strnlen(scope, SCOPE_MAX - 1);
        copy = malloc(l + 1);
        if (copy) {
            memcpy(copy, scope, l);
            copy[l] = '\0';
        }
    }
    pthread_mutex_lock(&g_mu);
    free(g_scope);
    /* Out of memory: no scope, so what is registered is kept everywhere. */
    g_scope = copy;
    pthread_mutex_unlock(&g_mu);
}

void pf_log_keep_secrets_of(const char *scope)
{
    char key[SCOPE_MAX];
    if (scope) snprintf(key, sizeof key, "%s", scope);
    pthread_mutex_lock(&g_mu);
    size_t k = 0;
    for (size_t i = 0; i < g_n; i++) {
        secret *e = &g_sec[i];
        if (!e->scope || (scope && strcmp(e->scope, key) == 0)) {
            g_sec[k++] = *e;
            continue;
        }
        wipe_free(e->s);
        free(e->scope);
    }
    g_n = k;
    rebuild_chains();
    pthread_mutex_unlock(&g_mu);
}

void pf_log_clear_secrets(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_n; i++) {
        /* Wiped before freeing so the heap does not keep the secret. */
        wipe_free(g_sec[i].s);
        free(g_sec[i].scope);
    }
    free(g_sec);
    g_sec = NULL;
    g_n = g_cap = 0;
    memset(g_first, 0, sizeof g_first);
    pthread_mutex_unlock(&g_mu);
}

/* ---- matching ---- */

/* The encodings a secret is looked for in (see log.h). */
enum { ENC_RAW, ENC_JSON, ENC_PCT, ENC_HTML, ENC_COUNT };

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at P as a number, or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* UTF-8 of code point CP into OUT; returns its length, 0 for a surrogate or
 * a value beyond U+10FFFF. */
static size_t utf8_put(unsigned long cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return 0;
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static size_t json_unit(const unsigned char *p, const unsigned char *end, unsigned char out[4],
                        size_t *nout)
{
    *nout = 1;
    out[0] = *p;
    if (*p != '\\' || end - p < 2) return 1;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
        out[0] = p[1];
        return 2;
    case 'b':
        out[0] = '\b';
        return 2;
    case 'f':
        out[0] = '\f';
        return 2;
    case 'n':
        out[0] = '\n';
        return 2;
    case 'r':
        out[0] = '\r';
        return 2;
    case 't':
        out[0] = '\t';
        return 2;
    case 'u': {
        long cp = end - p >= 6 ? hex4(p + 2) : -1;
        if (cp < 0) return 1; /* not an escape: a raw backslash */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return 0; /* a lone surrogate */
            *nout = utf8_put(0x10000 + ((unsigned long)(cp - 0xD800) << 10) +
                                 (unsigned long)(lo - 0xDC00),
                             out);
            return 12;
        }
        *nout = utf8_put((unsigned long)cp, out);
        return *nout ? 6 : 0;
    }
    default:
        return 1;
    }
}

static size_t pct_unit(const unsigned char *p, const unsigned char *end, unsigned char out[4],
                       size_t *nout, int *alt)
{
    *nout = 1;
    if (*p == '%' && end - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
        out[0] = (unsigned char)(hexval(p[1]) * 16 + hexval(p[2]));
        return 3;
    }
    if (*p == '+') {
        out[0] = ' ';
        *alt = '+';
        return 1;
    }
    out[0] = *p;
    return 1;
}

static size_t html_unit(const unsigned char *p, const unsigned char *end, unsigned char out[4],
                        size_t *nout)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    *nout = 1;
    out[0] = *p;
    if (*p != '&') return 1;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t l = strlen(named[i].name);
        if ((size_t)(end - p) > l && strncasecmp((const char *)p + 1, named[i].name, l) == 0) {
            out[0] = (unsigned char)named[i].c;
            return l + 1;
        }
    }
    if (end - p < 4 || p[1] != '#') return 1;
    const unsigned char *q = p + 2;
    int base = 10;
    if (*q == 'x' || *q == 'X') {
        base = 16;
        q++;
    }
    unsigned long cp = 0;
    size_t digits = 0;
    for (; q < end && digits < 16; q++, digits++) {
        int v = base == 16 ? hexval(*q) : (*q >= '0' && *q <= '9' ? *q - '0' : -1);
        if (v < 0) break;
        cp = cp * (unsigned long)base + (unsigned long)v;
        if (cp > 0x10FFFF) return 1;
    }
    if (!digits || q >= end || *q != ';') return 1;
    size_t n = utf8_put(cp, out);
    if (!n) {
        out[0] = *p;
        return 1;
    }
    *nout = n;
    return (size_t)(q + 1 - p);
}

/* Decodes the unit of text at P (before END) in encoding ENC: the bytes it
 * stands for go to OUT (*NOUT of them), *ALT gets a second byte it may also
 * stand for ('+' in a query: a space or a plus) or -1. Returns the text
 * bytes it takes (never fewer than *NOUT), or 0 when it stands for nothing
 * a secret can hold (a lone surrogate). */
static size_t unit(int enc, const unsigned char *p, const unsigned char *end, unsigned char out[4],
                   size_t *nout, int *alt)
{
    *alt = -1;
    switch (enc) {
    case ENC_JSON:
        return json_unit(p, end, out, nout);
    case ENC_PCT:
        return pct_unit(p, end, out, nout, alt);
    case ENC_HTML:
        return html_unit(p, end, out, nout);
    default:
        out[0] = *p;
        *nout = 1;
        return 1;
    }
}

/* The length of the text at T (before END) that encodes all of secret S in
 * encoding ENC, or 0. */
static size_t match_len(int enc, const unsigned char *t, const unsigned char *end, const secret *s)
{
    const unsigned char *q = t, *sec = (const unsigned char *)s->s;
    size_t i = 0;
    while (i < s->len) {
        if (q >= end) return 0;
        unsigned char b[4];
        size_t nb;
        int alt;
        size_t k = unit(enc, q, end, b, &nb, &alt);
        if (!k || nb > s->len - i) return 0;
        if (alt >= 0) {
            if (sec[i] != b[0] && sec[i] != (unsigned char)alt) return 0;
        } else if (memcmp(sec + i, b, nb) != 0) {
            return 0;
        }
        i += nb;
        q += k;
    }
    return (size_t)(q - t);
}

/* The longest span of the text at T (before END) that encodes a registered
 * secret, or 0. USE[enc] says whether the text can hold encoding ENC. */
static size_t longest_at(const unsigned char *t, const unsigned char *end, const int use[ENC_COUNT])
{
    size_t best = 0;
    for (int enc = 0; enc < ENC_COUNT; enc++) {
        if (!use[enc]) continue;
        unsigned char b[4];
        size_t nb;
        int alt;
        if (!unit(enc, t, end, b, &nb, &alt)) continue;
        for (int pass = 0; pass < 2; pass++) {
            int first = pass == 0 ? b[0] : alt;
            if (first < 0) break;
            for (size_t i = g_first[first]; i; i = g_sec[i - 1].next) {
                if (g_credentials_only && g_sec[i - 1].weak) continue;
                size_t m = match_len(enc, t, end, &g_sec[i - 1]);
                if (m > best) best = m;
            }
        }
    }
    return best;
}

/* Writes S (LEN bytes) redacted into OUT, at most CAP bytes (no NUL added).
 * Every span that encodes a secret is found on the whole of S, and the union
 * of overlapping spans becomes one "***". Stops when OUT is full, never in
 * the middle of a UTF-8 character. Returns the bytes written. Caller holds
 * g_mu. */
/* The first byte at or after P (before END) that starts an escape of
 * encoding ENC (not ENC_RAW), or END. */
static const unsigned char *next_escape(int enc, const unsigned char *p, const unsigned char *end)
{
    const unsigned char *a, *b;
    switch (enc) {
    case ENC_JSON:
        a = memchr(p, '\\', (size_t)(end - p));
        return a ? a : end;
    case ENC_HTML:
        a = memchr(p, '&', (size_t)(end - p));
        return a ? a : end;
    default:
        a = memchr(p, '%', (size_t)(end - p));
        b = memchr(p, '+', (size_t)(end - p));
        if (!a) return b ? b : end;
        return b && b < a ? b : a;
    }
}

/* At most this many bytes of encoded text stand for one byte of a secret
 * ("&#x" + 16 digits + ";" is the longest unit). */
#define ENCODED_UNIT_MAX 20

static size_t redact_locked(const unsigned char *s, size_t len, char *out, size_t cap)
{
    /* An encoded match that holds no escape is the raw match: encoding ENC is
     * tried at a position only when one of its escapes lies within the span
     * the longest secret could take encoded, so text far from any '\\',
     * '%', '+' or '&' costs one decoder, not four. */
    size_t maxlen = 0;
    for (size_t i = 0; i < g_n; i++)
        if (g_sec[i].len > maxlen) maxlen = g_sec[i].len;
    size_t reach = maxlen > SIZE_MAX / ENCODED_UNIT_MAX ? SIZE_MAX : maxlen * ENCODED_UNIT_MAX;
    const unsigned char *end = s + len, *nxt[ENC_COUNT] = {NULL, NULL, NULL, NULL};
    int any[ENC_COUNT] = {1, 0, 0, 0};
    if (g_n) {
        any[ENC_JSON] = memchr(s, '\\', len) != NULL;
        any[ENC_PCT] = memchr(s, '%', len) != NULL || memchr(s, '+', len) != NULL;
        any[ENC_HTML] = memchr(s, '&', len) != NULL;
    }
    size_t o = 0, covered = 0, p = 0;
    for (; p < len; p++) {
        int use[ENC_COUNT] = {1, 0, 0, 0};
        for (int enc = ENC_JSON; enc < ENC_COUNT; enc++) {
            if (!any[enc]) continue;
            if (!nxt[enc] || nxt[enc] < s + p) nxt[enc] = next_escape(enc, s + p, end);
            use[enc] = nxt[enc] < end && (size_t)(nxt[enc] - (s + p)) < reach;
        }
        size_t m = g_n ? longest_at(s + p, s + len, use) : 0;
        if (m && p + m > covered) {
            if (p >= covered) { /* a new redacted span */
                for (const char *r = "***"; *r; r++) {
                    if (o >= cap) return o;
                    out[o++] = *r;
                }
            }
            covered = p + m;
        }
        if (p < covered) continue;
        if (o >= cap) break;
        out[o++] = (char)s[p];
    }
    if (p < len && (s[p] & 0xC0) == 0x80) {
        /* Cut inside a character: drop its first bytes. */
        while (o && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
            o--;
        if (o && (unsigned char)out[o - 1] >= 0xC0) o--;
    }
    return o;
}

void pf_log_redact(const char *src, char *dst, size_t n)
{
    if (n == 0) return;
    if (!src) src = "";
    pthread_mutex_lock(&g_mu);
    size_t o = redact_locked((const unsigned char *)src, strlen(src), dst, n - 1);
    pthread_mutex_unlock(&g_mu);
    dst[o] = '\0';
}

int pf_log_holds_credential(const char *s)
{
    if (!s || !*s) return 0;
    size_t len = strlen(s);
    char *r = malloc(len + 1);
    if (!r) return 1; /* cannot tell: say yes, the caller refuses to store it */
    pthread_mutex_lock(&g_mu);
    g_credentials_only = 1;
    size_t o = redact_locked((const unsigned char *)s, len, r, len);
    g_credentials_only = 0;
    pthread_mutex_unlock(&g_mu);
    int differs = o != len || memcmp(r, s, len) != 0;
    explicit_bzero(r, len);
    free(r);
    return differs;
}

char *pf_log_redact_dup(const char *src, size_t len, size_t *out_len)
{
    /* A span of a secret is never shorter than the secret (3 bytes at
     * least), which becomes "***": the result is never longer than SRC. */
    char *out = malloc(len + 1);
    if (!out) return NULL;
    pthread_mutex_lock(&g_mu);
    size_t o = len ? redact_locked((const unsigned char *)src, len, out, len) : 0;
    pthread_mutex_unlock(&g_mu);
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
}

void pf_log_vformat_redacted(char *dst, size_t n, const char *fmt, va_list ap)
{
    if (n == 0) return;
    char small[LINE_MAX_BYTES];
    char *raw = small;
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    if (len < 0) {
        small[0] = '\0';
        len = 0;
    } else if ((size_t)len >= sizeof small) {
        /* Formatted whole before redaction: cutting first could leave the
         * beginning of a secret at the end. */
        raw = malloc((size_t)len + 1);
        if (!raw) {
            va_end(ap2);
            explicit_bzero(small, sizeof small);
            snprintf(dst, n, "(message withheld: out of memory)");
            return;
        }
        vsnprintf(raw, (size_t)len + 1, fmt, ap2);
    }
    va_end(ap2);
    pthread_mutex_lock(&g_mu);
    size_t o = redact_locked((const unsigned char *)raw, (size_t)len, dst, n - 1);
    pthread_mutex_unlock(&g_mu);
    dst[o] = '\0';
    explicit_bzero(raw, (size_t)len);
    if (raw != small) free(raw);
}

void pf_log_format_redacted(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pf_log_vformat_redacted(dst, n, fmt, ap);
    va_end(ap);
}

/* ---- output ---- */

static const char *level_name(pf_log_level l)
{
    switch (l) {
    case PF_LOG_ERROR:
        return "error";
    case PF_LOG_WARN:
        return "warning";
    case PF_LOG_INFO:
        return "info";
    case PF_LOG_DEBUG:
        return "debug";
    }
    return "info";
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void pf_log_write_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputc('\t', f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

void pf_log(pf_log_level level, const char *fmt, ...)
{
    if (level > g_level) return;
    char clean[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    /* Formatted whole, redacted whole, then cut to the line limit. */
    pf_log_vformat_redacted(clean, sizeof clean, fmt, ap);
    va_end(ap);
    pf_progress_clear_active(); /* a live progress line is erased first */
    if (g_json) {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_name(level));
        if (g_flow[0]) {
            fputs(",\"flow\":\"", stderr);
            json_escape(stderr, g_flow);
            fputc('"', stderr);
        }
        if (g_run[0]) {
            fputs(",\"run\":\"", stderr);
            json_escape(stderr, g_run);
            fputc('"', stderr);
        }
        fputs(",\"msg\":\"", stderr);
        json_escape(stderr, clean);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "ppflow: %s: ", level_name(level));
        pf_log_write_escaped(stderr, clean);
        fputc('\n', stderr);
    }
}
