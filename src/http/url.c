/* url.c: URL checking (scheme, host, no credentials, no CR/LF/NUL even
 * percent-encoded), joining, query building (percent-encoding by libcurl's
 * CURLU_URLENCODE) and the loggable form of a URL, all through libcurl's URL
 * API (CURLU). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http/http_internal.h"

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Parses URL into a new handle. Returns PF_OK, PF_EINVAL or PF_ENOMEM. */
static pf_status parse(const char *url, CURLU **out, pf_error *err)
{
    if (has_crlf(url)) return pf_error_set(err, PF_EINVAL, "URL contains a line break (CR or LF)");
    CURLU *u = curl_url();
    if (!u) return pf_error_set(err, PF_ENOMEM, "out of memory parsing a URL");
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc != CURLUE_OK) {
        curl_url_cleanup(u);
        if (rc == CURLUE_OUT_OF_MEMORY)
            return pf_error_set(err, PF_ENOMEM, "out of memory parsing a URL");
        /* Do not quote the URL: it could carry user:pass@. */
        return pf_error_set(err, PF_EINVAL, "invalid URL: %s", curl_url_strerror(rc));
    }
    *out = u;
    return PF_OK;
}

/* Returns 1 when part P of U is present. */
static int has_part(CURLU *u, CURLUPart p)
{
    char *v = NULL;
    if (curl_url_get(u, p, &v, 0) != CURLUE_OK) return 0;
    int present = v && *v;
    curl_free(v);
    return present;
}

/* Checks scheme, host and absence of credentials on a parsed URL. */
static pf_status check_parsed(CURLU *u, pf_error *err)
{
    char *scheme = NULL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme)
        return pf_error_set(err, PF_EINVAL, "invalid URL: no scheme");
    int ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
    pf_status st = PF_OK;
    if (!ok)
        st = pf_error_set(err, PF_EINVAL, "invalid URL: scheme '%.16s' is not http or https",
                          scheme);
    curl_free(scheme);
    if (st != PF_OK) return st;
    if (!has_part(u, CURLUPART_HOST)) return pf_error_set(err, PF_EINVAL, "invalid URL: no host");
    if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD))
        return pf_error_set(err, PF_EINVAL,
                            "URL must not contain credentials (user:pass@); use Basic auth "
                            "or a header");
    return PF_OK;
}

/* Returns 1 when S[0..LEN) holds CR, LF or NUL, raw or percent-encoded
 * ("%0d", "%0a", "%00" in either case). */
static int has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n') return 1;
        if (s[i] == '%' && i + 2 < len && s[i + 1] == '0' && s[i + 2] != '\0' &&
            strchr("0aAdD", s[i + 2]) != NULL)
            return 1;
    }
    return 0;
}

/* Refuses a URL whose path or query holds CR, LF or NUL, even
 * percent-encoded: no part of a request may carry a line break to a server,
 * proxy or log that decodes it. The message names the path segment or the
 * query parameter, never its value. */
static pf_status check_controls(CURLU *u, pf_error *err)
{
    char *path = NULL, *query = NULL;
    pf_status st = PF_OK;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path) {
        int seg = 0;
        for (const char *p = path; *p;) {
            if (*p == '/') p++;
            const char *e = strchr(p, '/');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            seg++;
            if (has_ctl(p, l)) {
                st = pf_error_set(err, PF_EINVAL,
                                  "URL path segment %d contains a line break or NUL (CR, LF, "
                                  "%%0D, %%0A or %%00): refused before anything was sent (the "
                                  "value is not shown)",
                                  seg);
                break;
            }
            p += l;
        }
    }
    if (st == PF_OK && curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
        for (const char *p = query; *p;) {
            const char *amp = strchr(p, '&');
            size_t l = amp ? (size_t)(amp - p) : strlen(p);
            const char *eq = memchr(p, '=', l);
            size_t nl = eq ? (size_t)(eq - p) : l;
            if (has_ctl(p, nl)) {
                st = pf_error_set(err, PF_EINVAL,
                                  "a URL query parameter name contains a line break or NUL (CR, "
                                  "LF, %%0D, %%0A or %%00): refused before anything was sent");
                break;
            }
            if (eq && has_ctl(eq + 1, l - nl - 1)) {
                char *name = curl_easy_unescape(NULL, p, (int)nl, NULL);
                char shown[72];
                pf_http_copy_printable(name ? name : "?", shown, sizeof shown);
                curl_free(name);
                st = pf_error_set(err, PF_EINVAL,
                                  "query parameter '%s' contains a line break or NUL (CR, LF, "
                                  "%%0D, %%0A or %%00): refused before anything was sent (the "
                                  "value is not shown)",
                                  shown);
                break;
            }
            p += l;
            if (*p == '&') p++;
        }
    }
    curl_free(path);
    curl_free(query);
    return st;
}

pf_status pf_http_url_check(const char *url, pf_error *err)
{
    if (!url) return pf_error_set(err, PF_EINVAL, "URL is NULL");
    CURLU *u;
    pf_status st = parse(url, &u, err);
    if (st != PF_OK) return st;
    st = check_parsed(u, err);
    if (st == PF_OK) st = check_controls(u, err);
    curl_url_cleanup(u);
    return st;
}

void pf_http_url_for_log(const char *url, char *out, size_t n)
{
    if (!out || n == 0) return;
    snprintf(out, n, "<invalid URL>");
    CURLU *u;
    if (!url || parse(url, &u, NULL) != PF_OK) return;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) port = NULL;
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) path = NULL;
        /* Built whole (not into a fixed buffer) so that redaction, in
         * pf_http_copy_printable, sees a secret in the path before any cut. */
        const char *pp = path ? path : "/";
        size_t len = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + strlen(pp) + 5;
        char *whole = malloc(len);
        if (whole) {
            snprintf(whole, len, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                     pp);
            pf_http_copy_printable(whole, out, n);
            free(whole);
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

int pf_http_url_origin(const char *url, char *out, size_t n)
{
    CURLU *u;
    if (!url || parse(url, &u, NULL) != PF_OK) return -1;
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        for (char *h = host; *h; h++)
            *h = (char)tolower((unsigned char)*h);
        snprintf(out, n, "%s://%s:%s", scheme, host, port);
        rc = 0;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

int pf_http_url_strip_userinfo(const char *url, pf_buf *out)
{
    CURLU *u;
    if (!url || parse(url, &u, NULL) != PF_OK) return -1;
    char *full = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) {
        pf_buf_reset(out);
        rc = pf_buf_puts(out, full) == PF_OK ? 0 : -1;
    }
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

/* Replaces the contents of OUT by S, keeping OUT's cap; OUT unchanged on failure. */
static pf_status replace_buf(pf_buf *out, const char *s, pf_error *err)
{
    pf_buf nb;
    pf_buf_init(&nb, out->cap);
    pf_status st = pf_buf_puts(&nb, s);
    if (st == PF_ETOOBIG)
        return pf_error_set(err, st, "URL longer than the buffer limit (%zu bytes)", out->cap);
    if (st != PF_OK) return pf_error_set(err, st, "out of memory building a URL");
    pf_buf_free(out);
    *out = nb;
    return PF_OK;
}

/* Appends S percent-encoded by libcurl's URL API to OUT (CURLU_URLENCODE on
 * a query part: every byte but the RFC 3986 unreserved characters is
 * encoded, '=' and '&' included; space becomes '+'). */
static pf_status encode_component(const char *s, pf_buf *out, pf_error *err)
{
    if (!*s) return PF_OK;
    CURLU *t = curl_url();
    if (!t) return pf_error_set(err, PF_ENOMEM, "out of memory building a URL");
    char *enc = NULL;
    CURLUcode rc = curl_url_set(t, CURLUPART_QUERY, s, CURLU_URLENCODE);
    if (rc == CURLUE_OK) rc = curl_url_get(t, CURLUPART_QUERY, &enc, 0);
    curl_url_cleanup(t);
    pf_status st = PF_OK;
    if (rc != CURLUE_OK)
        st = pf_error_set(err, rc == CURLUE_OUT_OF_MEMORY ? PF_ENOMEM : PF_EINVAL,
                          "cannot percent-encode a query parameter: %s", curl_url_strerror(rc));
    else if (pf_buf_puts(out, enc) != PF_OK)
        st = pf_error_set(err, PF_ENOMEM, "out of memory building a URL");
    curl_free(enc);
    return st;
}

pf_status pf_http_url_add_query(pf_buf *url, const char *name, const char *value, pf_error *err)
{
    if (!url || !name || !value)
        return pf_error_set(err, PF_EINVAL, "pf_http_url_add_query: NULL argument");
    if (!*name) return pf_error_set(err, PF_EINVAL, "query parameter name is empty");
    pf_status st = pf_http_check_text("query parameter", name, value, strlen(value), err);
    if (st != PF_OK) return st;
    pf_buf pair;
    pf_buf_init(&pair, 0);
    char *full = NULL;
    CURLU *u = NULL;
    if ((st = encode_component(name, &pair, err)) != PF_OK) goto out;
    if (pf_buf_putc(&pair, '=') != PF_OK) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory building a URL");
        goto out;
    }
    if ((st = encode_component(value, &pair, err)) != PF_OK) goto out;
    if ((st = parse(pf_buf_str(url), &u, err)) != PF_OK) goto out;
    /* Already encoded: appended as is ('&' separator added by libcurl). */
    CURLUcode rc = curl_url_set(u, CURLUPART_QUERY, pf_buf_str(&pair), CURLU_APPENDQUERY);
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_URL, &full, 0);
    if (rc != CURLUE_OK) {
        char shown[72];
        pf_http_copy_printable(name, shown, sizeof shown);
        st = pf_error_set(err, rc == CURLUE_OUT_OF_MEMORY ? PF_ENOMEM : PF_EINVAL,
                          "cannot add query parameter '%s': %s", shown, curl_url_strerror(rc));
    } else {
        st = replace_buf(url, full, err);
    }
out:
    curl_free(full);
    curl_url_cleanup(u);
    pf_buf_free(&pair);
    return st;
}

pf_status pf_http_url_join(const char *base, const char *path, pf_buf *out, pf_error *err)
{
    if (!base || !path || !out)
        return pf_error_set(err, PF_EINVAL, "pf_http_url_join: NULL argument");
    if (has_crlf(path))
        return pf_error_set(err, PF_EINVAL, "URL path contains a line break (CR or LF)");
    CURLU *u;
    pf_status st = parse(base, &u, err);
    if (st != PF_OK) {
        pf_error_prefix(err, "base URL");
        return st;
    }
    st = check_parsed(u, err);
    if (st == PF_OK && (has_part(u, CURLUPART_QUERY) || has_part(u, CURLUPART_FRAGMENT)))
        st = pf_error_set(err, PF_EINVAL, "base URL must not have a query or fragment");
    char *norm = NULL;
    if (st == PF_OK && curl_url_get(u, CURLUPART_URL, &norm, 0) != CURLUE_OK)
        st = pf_error_set(err, PF_ENOMEM, "out of memory building a URL");
    curl_url_cleanup(u);
    if (st != PF_OK) {
        if (st == PF_EINVAL) pf_error_prefix(err, "base URL");
        curl_free(norm);
        return st;
    }

    pf_buf joined;
    pf_buf_init(&joined, 0);
    size_t bl = strlen(norm);
    while (bl && norm[bl - 1] == '/')
        bl--;
    st = pf_buf_append(&joined, norm, bl);
    if (st == PF_OK && path[0] != '/') st = pf_buf_putc(&joined, '/');
    if (st == PF_OK) st = pf_buf_puts(&joined, path);
    curl_free(norm);
    if (st != PF_OK) {
        pf_buf_free(&joined);
        return pf_error_set(err, PF_ENOMEM, "out of memory building a URL");
    }

    char *res = NULL;
    st = parse(pf_buf_str(&joined), &u, err);
    pf_buf_free(&joined);
    if (st != PF_OK) return st;
    st = check_parsed(u, err);
    if (st == PF_OK) st = check_controls(u, err);
    if (st == PF_OK && curl_url_get(u, CURLUPART_URL, &res, 0) != CURLUE_OK)
        st = pf_error_set(err, PF_ENOMEM, "out of memory building a URL");
    curl_url_cleanup(u);
    if (st == PF_OK) st = replace_buf(out, res, err);
    curl_free(res);
    return st;
}
