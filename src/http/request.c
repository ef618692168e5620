/* request.c: validating a pf_http_request before anything is sent (method,
 * URL, headers, Basic auth), registering its secrets with the log module,
 * and building libcurl header lists. */
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

static int name_is_sensitive(const char *name, size_t len)
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
    memset(pair, 0, n);
    free(pair);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory");
    st = register_secret(tok, err);
    memset(tok, 0, strlen(tok));
    free(tok);
    return st;
}

static pf_status check_header(const char *h, size_t index, size_t *name_len, pf_error *err)
{
    const char *colon = strchr(h, ':');
    if (strpbrk(h, "\r\n"))
        return pf_error_set(err, PF_EINVAL, "header %zu contains CR or LF", index + 1);
    if (strlen(h) > HEADER_LINE_MAX)
        return pf_error_set(err, PF_EINVAL, "header %zu is longer than %d bytes", index + 1,
                            HEADER_LINE_MAX);
    if (!colon || colon == h)
        return pf_error_set(err, PF_EINVAL, "header %zu is not \"Name: value\"", index + 1);
    for (const char *p = h; p < colon; p++)
        if (!is_tchar((unsigned char)*p))
            return pf_error_set(err, PF_EINVAL, "header %zu has an invalid name", index + 1);
    *name_len = (size_t)(colon - h);
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
        int sensitive = name_is_sensitive(h, nl);
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
