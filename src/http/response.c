/* response.c: the pf_http_response lifecycle and turning server-sent text
 * (error bodies, Content-Type) into safe, redacted, printable strings. */
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "util/log.h"

/* How much of a body is redacted before it is cut to the requested length:
 * large enough that a secret starting inside the kept part is redacted whole. */
#define REDACT_WINDOW 4096

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

void pf_http_copy_printable(const char *src, char *out, size_t n)
{
    if (n == 0) return;
    size_t o = 0;
    for (; src && *src && o + 1 < n; src++) {
        unsigned char c = (unsigned char)*src;
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
}

void pf_http_server_text(const pf_buf *body, size_t max_chars, char *out, size_t n)
{
    if (n == 0) return;
    out[0] = '\0';
    size_t len = body->len < REDACT_WINDOW - 1 ? body->len : REDACT_WINDOW - 1;
    char raw[REDACT_WINDOW], red[REDACT_WINDOW];
    /* Redact the raw bytes first (a secret may contain bytes that the
     * sanitising below would change); NUL cannot be part of a secret. */
    for (size_t i = 0; i < len; i++)
        raw[i] = body->data[i] ? body->data[i] : ' ';
    raw[len] = '\0';
    pf_log_redact(raw, red, sizeof red);

    /* One line of printable ASCII: controls become spaces, runs collapse. */
    size_t o = 0, chars = 0;
    int space = 1, cut = 0;
    for (const unsigned char *p = (const unsigned char *)red; *p; p++) {
        char c;
        if (*p < 0x20 || *p == 0x7f)
            c = ' ';
        else if (*p >= 0x80)
            c = '?';
        else
            c = (char)*p;
        if (c == ' ' && space) continue;
        space = c == ' ';
        if (chars == max_chars || o + 1 >= n) {
            cut = 1;
            break;
        }
        out[o++] = c;
        chars++;
    }
    if (!cut && body->len > len) cut = 1;
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    if (cut && n >= 4) {
        if (o > n - 4) o = n - 4;
        memcpy(out + o, "...", 4);
    }
}
