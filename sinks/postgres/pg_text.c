/* pg_text.c: the PostgreSQL sink's text helpers: the growable string that
 * every statement is built in, the checks a name must pass to be a
 * PostgreSQL identifier as written, identifier quoting, and the table name
 * template. Contracts in pg_internal.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* ---- growable string ---------------------------------------------------- */

void pgs_sb_put(sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) {
            if (nc > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void pgs_sb_puts(sb *b, const char *s)
{
    pgs_sb_put(b, s, strlen(s));
}

void pgs_sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1; /* only short fragments are formatted */
        return;
    }
    pgs_sb_put(b, tmp, (size_t)n);
}

void pgs_sb_reset(sb *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

void pgs_sb_free(sb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

char *pgs_sb_steal(sb *b)
{
    if (b->oom || !b->p) {
        int ok = !b->oom;
        pgs_sb_free(b);
        return ok ? strdup("") : NULL;
    }
    char *p = b->p;
    memset(b, 0, sizeof *b);
    return p;
}

/* ---- names ----------------------------------------------------------------- */

static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *p < 0xC2)) return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80) return 0;
    }
    return 1;
}

int pgs_name_ok(const char *what, const char *name, char *err, size_t errlen)
{
    if (!*name) {
        snprintf(err, errlen, "%s is empty", what);
        return 0;
    }
    if (strlen(name) > PG_IDENT_MAX) {
        snprintf(err, errlen, "%s '%.80s' is %zu bytes long; PostgreSQL names are at most %d bytes",
                 what, name, strlen(name), PG_IDENT_MAX);
        return 0;
    }
    if (!utf8_ok(name)) {
        snprintf(err, errlen, "%s is not valid UTF-8", what);
        return 0;
    }
    return 1;
}

void pgs_put_ident(sb *b, PGconn *c, const char *name)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    if (!q) {
        b->oom = 1;
        return;
    }
    pgs_sb_puts(b, q);
    PQfreemem(q);
}

char *pgs_ident(PGconn *c, const char *name)
{
    sb b = {0};
    pgs_put_ident(&b, c, name);
    return pgs_sb_steal(&b);
}

char *pgs_qualified(PGconn *c, const char *schema, const char *name)
{
    sb b = {0};
    pgs_put_ident(&b, c, schema);
    pgs_sb_puts(&b, ".");
    pgs_put_ident(&b, c, name);
    return pgs_sb_steal(&b);
}

char *pgs_expand_table(const char *tmpl, const char *stream)
{
    sb b = {0};
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{stream}", 8) == 0) {
            pgs_sb_puts(&b, stream);
            p += 8;
        } else {
            pgs_sb_put(&b, p++, 1);
        }
    }
    return pgs_sb_steal(&b);
}
