/* paging.c: page/size, offset/limit, cursor token and next-link paging of
 * one unit of work; the page position in checkpoints. */
#include "engine/paging.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "http/http.h"
#include "util/log.h"

static const char *state_kind(pf_paging_kind k)
{
    switch (k) {
    case PF_PAGING_PAGE:
        return "page";
    case PF_PAGING_OFFSET:
        return "offset";
    case PF_PAGING_CURSOR:
        return "token";
    case PF_PAGING_NEXT_LINK:
        return "next";
    case PF_PAGING_NONE:
    case PF_PAGING_TIME_WINDOW:
        break;
    }
    return NULL;
}

pf_status pf_pager_init(pf_pager *p, const pf_flow *f, pf_error *err)
{
    memset(p, 0, sizeof *p);
    const pf_pages_def *def = &f->tmpl->pages;
    p->def = def;
    if (def->kind == PF_PAGING_NONE) return PF_OK;
    p->number = def->first;
    p->size = def->size;
    if (def->size_from) {
        const char *v = pf_flow_param_str(f, def->size_from);
        p->size = 0;
        if (v) {
            char *end;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (*end || errno || n <= 0 || n > 1000000000)
                return pf_error_set(err, PF_ECONFIG,
                                    "page size parameter %s must be a positive integer, not '%s'",
                                    def->size_from, v);
            p->size = n;
        }
    }
    /* Page and offset paging without a size cannot tell the last page: one
     * request, as the API's own default. */
    p->paged = !((def->kind == PF_PAGING_PAGE || def->kind == PF_PAGING_OFFSET) && p->size == 0);
    return PF_OK;
}

void pf_pager_free(pf_pager *p)
{
    if (!p) return;
    free(p->token);
    p->token = NULL;
}

/* scheme, host and port of URL, for same-server checks. */
static pf_status origin_of(const char *url, char *out, size_t n, pf_error *err)
{
    CURLU *u = curl_url();
    if (!u) return pf_error_set(err, PF_ENOMEM, "out of memory");
    char *scheme = NULL, *host = NULL, *port = NULL;
    pf_status st = PF_OK;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        st = pf_error_set(err, PF_EDATA, "invalid URL");
    else
        snprintf(out, n, "%s://%s:%s", scheme, host, port);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return st;
}

/* Resolves LINK against BASE (the current request URL) into *OUT (malloc'd)
 * and checks it stays on the flow's server. */
static pf_status resolve_link(const pf_flow *f, const char *base, const char *link, char **out,
                              pf_error *err)
{
    *out = NULL;
    if (strpbrk(link, "\r\n\t ") || !*link)
        return pf_error_set(err, PF_EDATA, "the next link in the response is not a URL");
    CURLU *u = curl_url();
    if (!u) return pf_error_set(err, PF_ENOMEM, "out of memory");
    char *full = NULL;
    pf_status st = PF_OK;
    if ((base && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) ||
        curl_url_set(u, CURLUPART_URL, link, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
        st = pf_error_set(err, PF_EDATA, "the next link in the response is not a valid URL");
        goto out;
    }
    if ((st = pf_http_url_check(full, err)) != PF_OK) {
        pf_error_prefix(err, "the next link in the response");
        st = PF_EDATA;
        goto out;
    }
    char a[1024], b[1024];
    pf_error e;
    if (origin_of(full, a, sizeof a, &e) != PF_OK ||
        origin_of(f->base_url, b, sizeof b, &e) != PF_OK || strcmp(a, b) != 0) {
        char shown[512];
        pf_http_url_for_log(full, shown, sizeof shown);
        st = pf_error_set(err, PF_EDATA,
                          "the next link %s leads to another server than %s; ppflow does not "
                          "send the flow's credentials there",
                          shown, f->base_url);
        goto out;
    }
    if (strlen(full) > PF_PAGER_TOKEN_MAX) {
        st = pf_error_set(err, PF_EDATA, "the next link is longer than %u bytes",
                          PF_PAGER_TOKEN_MAX);
        goto out;
    }
    if (!(*out = strdup(full))) st = pf_error_set(err, PF_ENOMEM, "out of memory");
out:
    curl_free(full);
    curl_url_cleanup(u);
    return st;
}

/* Whether S holds a registered secret (a checkpoint never holds one). */
static int holds_secret(const char *s)
{
    return pf_log_holds_credential(s);
}

pf_status pf_pager_resume(pf_pager *p, const pf_flow *f, const pf_state *st, pf_error *err)
{
    if (!st->page_kind || !p->paged) return PF_OK;
    const char *want = state_kind(p->def->kind);
    if (!want || strcmp(want, st->page_kind) != 0)
        return pf_error_set(err, PF_ESTATE,
                            "the checkpoint holds a '%s' page position but template %s pages by "
                            "%s; give this flow its own state.path or move the checkpoint away",
                            st->page_kind, f->tmpl->name, pf_paging_kind_name(p->def->kind));
    if (p->def->kind == PF_PAGING_PAGE || p->def->kind == PF_PAGING_OFFSET) {
        if (st->page_number < p->def->first)
            return pf_error_set(err, PF_ESTATE, "the checkpoint's %s %lld is before the first",
                                st->page_kind, st->page_number);
        p->number = st->page_number;
        p->pages = 1; /* not the first page: a repeat check has nothing to compare yet */
        return PF_OK;
    }
    if (!st->page_token || !*st->page_token)
        return pf_error_set(err, PF_ESTATE, "the checkpoint's %s is empty", st->page_kind);
    char *tok = NULL;
    if (p->def->kind == PF_PAGING_NEXT_LINK) {
        pf_error e;
        pf_error_clear(&e);
        if (resolve_link(f, NULL, st->page_token, &tok, &e) != PF_OK)
            return pf_error_set(err, PF_ESTATE, "checkpoint: %s", e.msg);
    } else if (!(tok = strdup(st->page_token))) {
        return pf_error_set(err, PF_ENOMEM, "out of memory");
    }
    free(p->token);
    p->token = tok;
    p->pages = 1;
    return PF_OK;
}

pf_status pf_pager_apply(const pf_pager *p, const pf_flow *f, pf_request *req, pf_error *err)
{
    (void)f;
    if (!p->paged) return PF_OK;
    const pf_pages_def *d = p->def;
    char num[32];
    pf_status st = PF_OK;
    switch (d->kind) {
    case PF_PAGING_PAGE:
    case PF_PAGING_OFFSET:
        snprintf(num, sizeof num, "%lld", (long long)p->number);
        st = pf_http_url_add_query(&req->url, d->position_param, num, err);
        break;
    case PF_PAGING_CURSOR:
        if (p->token) st = pf_http_url_add_query(&req->url, d->position_param, p->token, err);
        break;
    case PF_PAGING_NEXT_LINK:
        if (p->token) {
            pf_buf_reset(&req->url);
            if (pf_buf_puts(&req->url, p->token) != PF_OK)
                st = pf_error_set(err, PF_ETOOBIG, "the next link does not fit in a URL");
        }
        return st;
    case PF_PAGING_NONE:
    case PF_PAGING_TIME_WINDOW:
        return PF_OK;
    }
    if (st == PF_OK && d->size_param && p->size > 0) {
        snprintf(num, sizeof num, "%lld", (long long)p->size);
        st = pf_http_url_add_query(&req->url, d->size_param, num, err);
    }
    return st;
}

static uint64_t digest(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ n;
}

/* The token or link at the pages' `from` path in BODY: *OUT malloc'd, or
 * NULL when there is none (absent, null or ""). */
static pf_status read_from(const pf_pages_def *d, const char *body, size_t len, char **out,
                           pf_error *err)
{
    *out = NULL;
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", body[i]))
        i++;
    if (i == len) return PF_OK;
    if (len > INT32_MAX) return pf_error_set(err, PF_ETOOBIG, "response body over 2 GiB");
    /* The extractor's document builder: every allocation checked (json-c's
     * own parser cannot tell running out of memory from a short document)
     * and the same memory budget as record extraction. */
    json_object *doc = NULL;
    size_t budget = len <= (SIZE_MAX - PF_EXTRACT_MEMORY_BASE) / PF_EXTRACT_MEMORY_FACTOR
                        ? PF_EXTRACT_MEMORY_FACTOR * len + PF_EXTRACT_MEMORY_BASE
                        : SIZE_MAX;
    pf_error be;
    pf_error_clear(&be);
    pf_status bst = pf_extract_build_doc(body, len, budget, &doc, NULL, &be);
    if (bst == PF_EDATA || bst == PF_EDEPTH)
        return pf_error_set(err, bst, "the response is not JSON, so %s cannot be read from it",
                            d->from_text);
    if (bst != PF_OK) {
        if (err) *err = be;
        return bst;
    }
    if (!doc) return PF_OK; /* the literal null: nothing there */
    pf_jp_nodelist nl = {0};
    pf_status st = pf_jsonpath_eval(d->from, doc, 0, &nl, err);
    if (st == PF_OK && nl.count > 0) {
        json_object *v = nl.nodes[0].value;
        const char *s = NULL;
        switch (json_object_get_type(v)) {
        case json_type_null:
            break;
        case json_type_string:
            s = json_object_get_string(v);
            /* json-c strings may hold \u0000: a token cut at it would be
             * another token (the wrong page, or the same one forever). */
            if (memchr(s, '\0', (size_t)json_object_get_string_len(v))) {
                st = pf_error_set(err, PF_EDATA,
                                  "%s in the response holds a NUL character (\\u0000); ppflow "
                                  "does not cut the %s there (stopping; nothing of this page "
                                  "was delivered)",
                                  d->from_text,
                                  d->kind == PF_PAGING_CURSOR ? "cursor token" : "next link");
                s = NULL;
            }
            break;
        case json_type_int:
            s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
            break;
        case json_type_boolean:
        case json_type_double:
        case json_type_object:
        case json_type_array:
            st = pf_error_set(err, PF_EDATA, "%s in the response is not a string or an integer",
                              d->from_text);
            break;
        }
        if (s && strlen(s) > PF_PAGER_TOKEN_MAX)
            st = pf_error_set(err, PF_EDATA, "%s in the response is longer than %u bytes",
                              d->from_text, PF_PAGER_TOKEN_MAX);
        else if (s && *s && !(*out = strdup(s)))
            st = pf_error_set(err, PF_ENOMEM, "out of memory");
    }
    pf_jp_nodelist_free(&nl);
    json_object_put(doc);
    return st;
}

pf_status pf_pager_advance(pf_pager *p, const pf_flow *f, const char *body, size_t len,
                           size_t nrecords, int no_data, const char *url, pf_error *err)
{
    const pf_pages_def *d = p->def;
    if (!p->paged) {
        p->pages++;
        p->done = 1;
        return PF_OK;
    }
    if (no_data || nrecords == 0) {
        p->pages++;
        p->done = 1;
        return PF_OK;
    }
    char where[64];
    pf_pager_describe(p, where, sizeof where);
    if (d->kind == PF_PAGING_PAGE || d->kind == PF_PAGING_OFFSET) {
        uint64_t h = digest(body, len);
        if (p->has_digest && h == p->last_digest)
            return pf_error_set(err, PF_EDATA,
                                "%s has the same content as the page before it: the server "
                                "seems to ignore the '%s' parameter (stopping; nothing of this "
                                "page was delivered)",
                                where, d->position_param);
        p->last_digest = h;
        p->has_digest = 1;
        p->pages++;
        if (p->size > 0 && (int64_t)nrecords < p->size)
            p->done = 1;
        else if (d->kind == PF_PAGING_PAGE)
            p->number++;
        else
            p->number += (int64_t)nrecords;
        return PF_OK;
    }
    char *next = NULL;
    pf_status st = read_from(d, body, len, &next, err);
    if (st != PF_OK) return st;
    if (!next) {
        p->pages++;
        p->done = 1;
        return PF_OK;
    }
    if (d->kind == PF_PAGING_NEXT_LINK) {
        char *abs = NULL;
        st = resolve_link(f, url, next, &abs, err);
        free(next);
        if (st != PF_OK) return st;
        next = abs;
    }
    if (p->token && strcmp(p->token, next) == 0) {
        free(next);
        return pf_error_set(err, PF_EDATA,
                            "the response after %s gives the same %s again; stopping so as not "
                            "to fetch the same page forever",
                            where, d->kind == PF_PAGING_CURSOR ? "cursor" : "next link");
    }
    if (holds_secret(next)) {
        free(next);
        return pf_error_set(err, PF_EDATA,
                            "the %s in the response holds one of the flow's credentials; ppflow "
                            "never stores credentials in a checkpoint",
                            d->kind == PF_PAGING_CURSOR ? "cursor" : "next link");
    }
    free(p->token);
    p->token = next;
    p->pages++;
    return PF_OK;
}

pf_status pf_pager_save(const pf_pager *p, pf_state *st, int64_t window_end_ms)
{
    if (!p->paged || p->done) {
        free(st->page_kind);
        free(st->page_token);
        st->page_kind = st->page_token = NULL;
        st->page_number = 0;
        st->page_window_end_ms = 0;
        return PF_OK;
    }
    char *kind = strdup(state_kind(p->def->kind));
    char *tok = p->token ? strdup(p->token) : NULL;
    if (!kind || (p->token && !tok)) {
        free(kind);
        free(tok);
        return PF_ENOMEM;
    }
    free(st->page_kind);
    free(st->page_token);
    st->page_kind = kind;
    st->page_token = tok;
    st->page_number = p->number;
    st->page_window_end_ms = window_end_ms;
    return PF_OK;
}

void pf_pager_describe(const pf_pager *p, char *buf, size_t n)
{
    if (n == 0) return;
    buf[0] = '\0';
    if (!p || !p->paged) return;
    switch (p->def->kind) {
    case PF_PAGING_PAGE:
        snprintf(buf, n, "page %lld", (long long)p->number);
        break;
    case PF_PAGING_OFFSET:
        snprintf(buf, n, "offset %lld", (long long)p->number);
        break;
    case PF_PAGING_CURSOR:
        snprintf(buf, n, "page %lld (cursor)", p->pages + 1);
        break;
    case PF_PAGING_NEXT_LINK:
        snprintf(buf, n, "page %lld (next link)", p->pages + 1);
        break;
    case PF_PAGING_NONE:
    case PF_PAGING_TIME_WINDOW:
        break;
    }
}
