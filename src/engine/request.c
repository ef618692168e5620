/* request.c: placeholder substitution and URL/header/body assembly. */
#include "engine/request.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "util/timeutil.h"

typedef struct subst_ctx {
    const pf_flow *f;
    const pf_window *w;
    int allow_auth;
} subst_ctx;

/* Looks up placeholder NAME. Returns the number of values (0: unset) and
 * points *VALS at them; single values go through ONE. */
static size_t lookup(const subst_ctx *c, const char *name, const char *const **vals,
                     const char **one, char *tbuf)
{
    if (c->w && strcmp(name, "window_start") == 0) {
        pf_time_format(c->w->start_ms, tbuf);
        *one = tbuf;
        *vals = one;
        return 1;
    }
    if (c->w && strcmp(name, "window_end") == 0) {
        pf_time_format(c->w->end_ms, tbuf);
        *one = tbuf;
        *vals = one;
        return 1;
    }
    if (c->allow_auth && strcmp(name, "principal") == 0) {
        *one = c->f->principal;
        *vals = one;
        return *one ? 1 : 0;
    }
    if (c->allow_auth && strcmp(name, "secret") == 0) {
        *one = c->f->secret;
        *vals = one;
        return *one ? 1 : 0;
    }
    const pf_param_value *v = pf_flow_param(c->f, name);
    if (!v || v->count == 0) return 0;
    *vals = (const char *const *)v->values;
    return v->count;
}

/* Substitutes placeholders of TMPL into OUT. Returns 1 when every placeholder
 * was set, 0 when one was unset (OUT then incomplete), -1 on OOM. A list
 * parameter inside a larger string is joined with commas. ESCAPE_PATH:
 * percent-encode values (for URL paths). */
static int substitute(const subst_ctx *c, const char *tmpl, int escape_path, pf_buf *out)
{
    for (const char *p = tmpl; *p; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (pf_buf_putc(out, *p) != PF_OK) return -1;
            p++;
            continue;
        }
        if (*p != '{') {
            if (pf_buf_putc(out, *p) != PF_OK) return -1;
            continue;
        }
        const char *e = strchr(p, '}');
        if (!e) return 0; /* validated at load; defensive */
        char name[128];
        size_t l = (size_t)(e - p - 1);
        if (l >= sizeof name) return 0;
        memcpy(name, p + 1, l);
        name[l] = '\0';
        const char *const *vals;
        const char *one;
        char tbuf[PF_TIME_FMT_SIZE];
        size_t n = lookup(c, name, &vals, &one, tbuf);
        if (n == 0) return 0;
        const pf_param_value *pv = pf_flow_param(c->f, name);
        int raw = pv && pv->def->url_path;
        for (size_t i = 0; i < n; i++) {
            if (i && pf_buf_putc(out, ',') != PF_OK) return -1;
            if (escape_path && !raw) {
                char *esc = curl_easy_escape(NULL, vals[i], 0);
                if (!esc) return -1;
                pf_status st = pf_buf_puts(out, esc);
                curl_free(esc);
                if (st != PF_OK) return -1;
            } else if (pf_buf_puts(out, vals[i]) != PF_OK) {
                return -1;
            }
        }
        p = e;
    }
    return 1;
}

/* The first parameter of TMPL (a URL path) with a CR or LF in a value (in
 * the path it would be refused, escaped or not): its name in NAME and 1, or
 * 0 when none. */
static int raw_path_line_break(const subst_ctx *c, const char *tmpl, char *name, size_t n)
{
    for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        if (!e || (size_t)(e - p - 1) >= n) continue;
        memcpy(name, p + 1, (size_t)(e - p - 1));
        name[e - p - 1] = '\0';
        const pf_param_value *pv = pf_flow_param(c->f, name);
        if (!pv) continue;
        const char *const *vals;
        const char *one;
        char tbuf[PF_TIME_FMT_SIZE];
        size_t k = lookup(c, name, &vals, &one, tbuf);
        for (size_t i = 0; i < k; i++)
            if (strpbrk(vals[i], "\r\n")) return 1;
    }
    return 0;
}

/* A value that is exactly "{name}" for a list parameter: its values. */
static const pf_param_value *whole_list(const subst_ctx *c, const char *tmpl)
{
    size_t l = strlen(tmpl);
    if (l < 3 || tmpl[0] != '{' || tmpl[l - 1] != '}' || memchr(tmpl + 1, '{', l - 2)) return NULL;
    char name[128];
    if (l - 2 >= sizeof name) return NULL;
    memcpy(name, tmpl + 1, l - 2);
    name[l - 2] = '\0';
    const pf_param_value *v = pf_flow_param(c->f, name);
    return v && v->def->type == PF_PT_LIST ? v : NULL;
}

static pf_status add_query(const subst_ctx *c, pf_buf *url, const pf_kv *kv, pf_error *err)
{
    const pf_param_value *list = whole_list(c, kv->value);
    if (list) {
        for (size_t i = 0; i < list->count; i++) {
            pf_status st = pf_http_url_add_query(url, kv->name, list->values[i], err);
            if (st != PF_OK) return st;
        }
        return PF_OK;
    }
    pf_buf v;
    pf_buf_init(&v, 64 * 1024);
    int r = substitute(c, kv->value, 0, &v);
    pf_status st = PF_OK;
    if (r < 0)
        st = pf_error_set(err, PF_ENOMEM, "out of memory building a request");
    else if (r == 1)
        st = pf_http_url_add_query(url, kv->name, pf_buf_str(&v), err);
    pf_buf_free(&v);
    return st;
}

static pf_status add_header(const subst_ctx *c, pf_request *req, const pf_kv *kv, pf_error *err)
{
    pf_buf h;
    pf_buf_init(&h, 64 * 1024);
    pf_status st = PF_OK;
    if (pf_buf_printf(&h, "%s: ", kv->name) != PF_OK) goto oom;
    int r = substitute(c, kv->value, 0, &h);
    if (r < 0) goto oom;
    if (r == 0) {
        pf_buf_free(&h);
        return PF_OK;
    }
    if (strpbrk(pf_buf_str(&h), "\r\n")) {
        pf_buf_free(&h);
        return pf_error_set(err, PF_EINVAL, "header %s would contain a line break", kv->name);
    }
    char **p = realloc(req->headers, (req->nheaders + 2) * sizeof *p);
    if (!p) goto oom;
    req->headers = p;
    req->headers[req->nheaders++] = pf_buf_steal(&h);
    req->headers[req->nheaders] = NULL;
    if (!req->headers[req->nheaders - 1]) {
        req->nheaders--;
        goto oom;
    }
    return st;
oom:
    pf_buf_free(&h);
    return pf_error_set(err, PF_ENOMEM, "out of memory building a request");
}

pf_status pf_request_build(const pf_flow *f, const pf_window *w, pf_request *req, pf_error *err)
{
    const pf_template *t = f->tmpl;
    subst_ctx c = {f, w, 0};
    req->method = t->method;
    pf_buf_init(&req->url, 64 * 1024);
    char bad[128];
    if (raw_path_line_break(&c, t->path, bad, sizeof bad))
        return pf_error_set(err, PF_EINVAL,
                            "parameter %s contains a line break (CR or LF), which cannot go into "
                            "the URL path",
                            bad);
    pf_buf path;
    pf_buf_init(&path, 64 * 1024);
    int r = substitute(&c, t->path, 1, &path);
    if (r <= 0) {
        pf_buf_free(&path);
        if (r < 0) return pf_error_set(err, PF_ENOMEM, "out of memory building a request");
        return pf_error_set(err, PF_ECONFIG, "the URL path %s needs a parameter that is not set",
                            t->path);
    }
    pf_status st = pf_http_url_join(f->base_url, pf_buf_str(&path), &req->url, err);
    pf_buf_free(&path);
    if (st != PF_OK) return st;
    for (size_t i = 0; i < t->nquery && st == PF_OK; i++)
        st = add_query(&c, &req->url, &t->query[i], err);
    if (w)
        for (size_t i = 0; i < t->window.nquery && st == PF_OK; i++)
            st = add_query(&c, &req->url, &t->window.query[i], err);
    for (size_t i = 0; i < t->nheaders && st == PF_OK; i++)
        st = add_header(&c, req, &t->headers[i], err);
    if (t->body && st == PF_OK) {
        pf_buf b;
        pf_buf_init(&b, 16u << 20);
        r = substitute(&c, t->body, 0, &b);
        if (r < 0)
            st = pf_error_set(err, PF_ENOMEM, "out of memory building a request body");
        else if (r == 1) {
            req->body_len = b.len;
            if (!(req->body = pf_buf_steal(&b)))
                st = pf_error_set(err, PF_ENOMEM, "out of memory building a request body");
        }
        pf_buf_free(&b);
    }
    if (t->auth == PF_AUTH_HEADERS) {
        c.allow_auth = 1;
        for (size_t i = 0; i < t->nauth_headers && st == PF_OK; i++)
            st = add_header(&c, req, &t->auth_headers[i], err);
    } else if (t->auth == PF_AUTH_BASIC && f->principal) {
        req->user = f->principal;
        req->pass = f->secret;
    }
    return st;
}

void pf_request_free(pf_request *req)
{
    if (!req) return;
    pf_buf_free(&req->url);
    for (size_t i = 0; i < req->nheaders; i++) {
        explicit_bzero(req->headers[i], strlen(req->headers[i])); /* may hold a credential */
        free(req->headers[i]);
    }
    free(req->headers);
    req->headers = NULL;
    req->nheaders = 0;
    if (req->body) {
        explicit_bzero(req->body, req->body_len);
        free(req->body);
    }
    req->body = NULL;
    req->body_len = 0;
}

void pf_request_to_http(const pf_request *req, pf_http_request *hr)
{
    hr->method = req->method;
    hr->url = pf_buf_str(&req->url);
    hr->headers = (const char *const *)req->headers;
    hr->basic_user = req->user;
    hr->basic_pass = req->pass;
    hr->body = req->body;
    hr->body_len = req->body_len;
}
