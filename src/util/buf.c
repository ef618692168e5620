/* buf.c: the capped growable buffer. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PF_BUF_UNLIMITED (SIZE_MAX / 2)

void pf_buf_init(pf_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap ? cap : PF_BUF_UNLIMITED;
}

static pf_status reserve(pf_buf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : PF_BUF_UNLIMITED;
    if (extra > cap || b->len > cap - extra) return PF_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc) return PF_OK;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need) n = n > SIZE_MAX / 2 ? need : n * 2;
    char *p = realloc(b->data, n);
    if (!p) return PF_ENOMEM;
    b->data = p;
    b->alloc = n;
    return PF_OK;
}

pf_status pf_buf_append(pf_buf *b, const void *p, size_t n)
{
    pf_status st = reserve(b, n);
    if (st != PF_OK) return st;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PF_OK;
}

pf_status pf_buf_puts(pf_buf *b, const char *s)
{
    return pf_buf_append(b, s, strlen(s));
}

pf_status pf_buf_putc(pf_buf *b, char c)
{
    return pf_buf_append(b, &c, 1);
}

pf_status pf_buf_printf(pf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return PF_EINVAL;
    pf_status st = reserve(b, (size_t)n);
    if (st != PF_OK) return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PF_OK;
}

void pf_buf_reset(pf_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

const char *pf_buf_str(const pf_buf *b)
{
    return b->data ? b->data : "";
}

char *pf_buf_steal(pf_buf *b)
{
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}

void pf_buf_free(pf_buf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}
