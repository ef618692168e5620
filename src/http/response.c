/* response.c: the pf_http_response lifecycle and turning server-sent text
 * (error bodies, Content-Type, URLs for messages) into safe, redacted,
 * printable strings. The order is always: redact the whole text, then make
 * it printable (which may collapse or replace characters), redact again
 * (collapsing could join text into a secret), and only then cut. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "util/log.h"

void pf_http_response_init(pf_http_response *r)
{
    r->status = 0;
    pf_buf_init(&r->body, 0);
    r->content_type[0] = '\0';
    r->retry_after_ms = -1;
    r->attempts = 0;
}

void pf_http_response_free(pf_http_response *r)
{
    if (!r) return;
    pf_buf_free(&r->body);
}

/* Makes the LEN bytes at S one line of printable ASCII in place: control
 * characters (NUL included) become spaces, other bytes above 0x7e '?'; with
 * COLLAPSE, runs of spaces become one and leading and trailing spaces go.
 * Returns the new length (S is NUL-terminated there). */
static size_t make_printable(char *s, size_t len, int collapse)
{
    size_t o = 0;
    int space = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        char c = b < 0x20 || b == 0x7f ? ' ' : b > 0x7e ? '?' : (char)b;
        if (collapse && c == ' ' && space) continue;
        space = c == ' ';
        s[o++] = c;
    }
    while (collapse && o && s[o - 1] == ' ')
        o--;
    s[o] = '\0';
    return o;
}

/* SRC (LEN bytes) redacted whole, made printable, redacted again, as a new
 * string (*OUT_LEN its length); NULL when out of memory. */
static char *safe_text(const char *src, size_t len, int collapse, size_t *out_len)
{
    size_t l1 = 0;
    char *red = pf_log_redact_dup(src, len, &l1);
    if (!red) return NULL;
    l1 = make_printable(red, l1, collapse);
    char *out = pf_log_redact_dup(red, l1, out_len);
    free(red);
    return out;
}

void pf_http_copy_printable(const char *src, char *out, size_t n)
{
    if (n == 0) return;
    out[0] = '\0';
    if (!src) return;
    size_t len = 0;
    char *t = safe_text(src, strlen(src), 0, &len);
    if (!t) {
        snprintf(out, n, "?");
        return;
    }
    snprintf(out, n, "%s", t);
    free(t);
}

void pf_http_server_text(const pf_buf *body, size_t max_chars, char *out, size_t n)
{
    if (n == 0) return;
    out[0] = '\0';
    if (!body || !body->len) return;
    /* The whole body (error bodies are capped at 64 KiB), not a window of
     * it: a secret must be seen whole to be redacted, wherever it starts. */
    size_t len = 0;
    char *t = safe_text(body->data, body->len, 1, &len);
    if (!t) {
        snprintf(out, n, "(server text withheld: out of memory)");
        return;
    }
    size_t keep = len;
    if (keep > max_chars) keep = max_chars;
    if (keep > n - 1) keep = n - 1;
    int cut = keep < len;
    while (keep && t[keep - 1] == ' ')
        keep--;
    memcpy(out, t, keep);
    out[keep] = '\0';
    if (cut && n >= 4) {
        if (keep > n - 4) keep = n - 4;
        memcpy(out + keep, "...", 4);
    }
    free(t);
}
