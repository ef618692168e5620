/* request.c: validating a pf_http_request before anything is sent (method,
 * URL, headers, Basic auth; CR, LF and NUL refused with a message that names
 * the header or parameter but never shows its value), registering its secrets
 * with the log module, and building libcurl header lists. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "util/log.h"

/* Largest "Name: value" line accepted (libcurl's own header limit is 100 KiB). */
#define HEADER_LINE_MAX (64 * 1024)

static const char *canonical_method(const char *m)
{
    static const char *const known[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
    if (!m) return "GET";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0) return known[i];
    return NULL;
}

/* RFC 9110 token character. */
static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int pf_http_header_is_credential(const char *name, size_t len)
{
    static const char *const words[] = {"auth", "token",   "key",    "secret",
                                        "pass", "session", "cookie", "signature"};
    char low[128];
    if (len >= sizeof low) len = sizeof low - 1;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[len] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(low, words[i])) return 1;
    return 0;
}

static pf_status register_secret(const char *s, pf_error *err)
{
    if (pf_log_add_secret(s) != 0)
        return pf_error_set(err, PF_ENOMEM, "cannot register a secret for log redaction");
    return PF_OK;
}

/* Registers VALUE and, for "Scheme credentials" forms, the credentials alone. */
static pf_status register_header_secret(const char *value, pf_error *err)
{
    while (*value == ' ' || *value == '\t')
        value++;
    pf_status st = register_secret(value, err);
    const char *sp = strchr(value, ' ');
    if (st == PF_OK && sp) {
        while (*sp == ' ')
            sp++;
        if (*sp) st = register_secret(sp, err);
    }
    return st;
}

static char *base64(const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Registers the password and the encoded "user:pass" token as secrets. */
static pf_status register_basic(const char *user, const char *pass, pf_error *err)
{
    pf_status st = register_secret(pass, err);
    if (st != PF_OK) return st;
    size_t n = strlen(user) + strlen(pass) + 2;
    char *pair = malloc(n);
    if (!pair) return pf_error_set(err, PF_ENOMEM, "out of memory");
    strcpy(pair, user);
    strcat(pair, ":");
    strcat(pair, pass);
    char *tok = base64(pair);
    explicit_bzero(pair, n); /* a memset before free may be optimised away */
    free(pair);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory");
    st = register_secret(tok, err);
    explicit_bzero(tok, strlen(tok));
    free(tok);
    return st;
}

/* Writes NAME (LEN bytes) for a message: printable ASCII only, cut at the
 * first control character, at most 64 characters. */
static void name_for_message(const char *name, size_t len, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < n && o < 64; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f) break;
        out[o++] = c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
}

pf_status pf_http_check_text(const char *kind, const char *name, const char *value, size_t len,
                             pf_error *err)
{
    char shown[72];
    if (!kind) kind = "value";
    const char *nm = name ? name : "";
    name_for_message(nm, strlen(nm), shown, sizeof shown);
    if (strpbrk(nm, "\r\n"))
        return pf_error_set(err, PF_EINVAL,
                            "the name of %s '%s...' contains a line break (CR or LF): refused "
                            "before anything was sent",
                            kind, shown);
    if (!value) return PF_OK;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return pf_error_set(err, PF_EINVAL,
                                "%s '%s' contains %s at byte %zu: refused before anything was "
                                "sent (the value is not shown)",
                                kind, shown,
                                c == '\0' ? "a NUL character" : "a line break (CR or LF)", i);
    }
    return PF_OK;
}

/* Checks one "Name: value" line; messages name the header, never its value. */
static pf_status check_header(const char *h, size_t index, size_t *name_len, pf_error *err)
{
    const char *colon = strchr(h, ':');
    char shown[72];
    if (!colon || colon == h) {
        if (strpbrk(h, "\r\n"))
            return pf_error_set(err, PF_EINVAL,
                                "header %zu contains a line break (CR or LF): refused before "
                                "anything was sent",
                                index + 1);
        return pf_error_set(err, PF_EINVAL, "header %zu is not \"Name: value\"", index + 1);
    }
    size_t nl = (size_t)(colon - h);
    name_for_message(h, nl, shown, sizeof shown);
    for (const char *p = h; p < colon; p++) {
        if (*p == '\r' || *p == '\n')
            return pf_error_set(err, PF_EINVAL,
                                "the name of header %zu ('%s...') contains a line break (CR or "
                                "LF): refused before anything was sent",
                                index + 1, shown);
        if (!is_tchar((unsigned char)*p))
            return pf_error_set(err, PF_EINVAL, "header %zu ('%s') has an invalid name", index + 1,
                                shown);
    }
    /* The name is a valid token here: SHOWN is the name (cut at 64 characters). */
    pf_status st = pf_http_check_text("header", shown, colon + 1, strlen(colon + 1), err);
    if (st != PF_OK) return st;
    if (strlen(h) > HEADER_LINE_MAX)
        return pf_error_set(err, PF_EINVAL, "header '%s' is longer than %d bytes", shown,
                            HEADER_LINE_MAX);
    *name_len = nl;
    return PF_OK;
}

static pf_status append(struct curl_slist **l, const char *s, pf_error *err)
{
    struct curl_slist *n = curl_slist_append(*l, s);
    if (!n) return pf_error_set(err, PF_ENOMEM, "out of memory building headers");
    *l = n;
    return PF_OK;
}

void pf_http_prepared_free(pf_http_prepared *p)
{
    if (!p) return;
    curl_slist_free_all(p->all);
    curl_slist_free_all(p->safe);
    p->all = p->safe = NULL;
}

pf_status pf_http_prepare(const pf_http_request *req, pf_http_prepared *p, pf_error *err)
{
    p->all = p->safe = NULL;
    p->method = canonical_method(req->method);
    if (!p->method)
        return pf_error_set(err, PF_EINVAL, "unsupported HTTP method '%.16s'", req->method);
    pf_status st = pf_http_url_check(req->url, err);
    if (st != PF_OK) return st;
    if (!req->body && req->body_len)
        return pf_error_set(err, PF_EINVAL, "request body is NULL but body_len is %zu",
                            req->body_len);
    if (req->basic_pass && !req->basic_user)
        return pf_error_set(err, PF_EINVAL, "Basic auth password given without a user name");
    if (req->basic_user) {
        if (strchr(req->basic_user, ':'))
            return pf_error_set(err, PF_EINVAL, "Basic auth user name must not contain ':'");
        st = register_basic(req->basic_user, req->basic_pass ? req->basic_pass : "", err);
        if (st != PF_OK) return st;
    }

    /* Validate everything first so a bad header registers nothing. */
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        size_t nl;
        st = check_header(req->headers[i], i, &nl, err);
        if (st != PF_OK) return st;
    }
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        const char *h = req->headers[i];
        size_t nl = (size_t)(strchr(h, ':') - h);
        int sensitive = pf_http_header_is_credential(h, nl);
        if (sensitive) st = register_header_secret(h + nl + 1, err);
        if (st == PF_OK) st = append(&p->all, h, err);
        if (st == PF_OK && !sensitive) st = append(&p->safe, h, err);
        if (st != PF_OK) goto fail;
    }
    /* No "Expect: 100-continue" round trip for request bodies. */
    st = append(&p->all, "Expect:", err);
    if (st == PF_OK) st = append(&p->safe, "Expect:", err);
    if (st != PF_OK) goto fail;
    return PF_OK;
fail:
    pf_http_prepared_free(p);
    return st;
}
