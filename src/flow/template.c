/* template.c: loading, validating and finding endpoint templates. */
#include "flow/template.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/yschema.h"
#include "util/paths.h"
#include "util/timeutil.h"

const char *pf_param_type_name(pf_param_type t)
{
    switch (t) {
    case PF_PT_STRING: return "string";
    case PF_PT_INTEGER: return "integer";
    case PF_PT_BOOLEAN: return "boolean";
    case PF_PT_DATETIME: return "datetime";
    case PF_PT_DURATION: return "duration";
    case PF_PT_INTERVAL: return "interval";
    case PF_PT_ENUM: return "enum";
    case PF_PT_LIST: return "list";
    }
    return "string";
}

static int param_type_parse(const char *s, pf_param_type *t)
{
    static const pf_param_type all[] = {PF_PT_STRING,   PF_PT_INTEGER,  PF_PT_BOOLEAN,
                                        PF_PT_DATETIME, PF_PT_DURATION, PF_PT_INTERVAL,
                                        PF_PT_ENUM,     PF_PT_LIST};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, pf_param_type_name(all[i])) == 0) return *t = all[i], 0;
    return -1;
}

void pf_kv_free(pf_kv *kv, size_t n)
{
    if (!kv) return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static void strv_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void pf_template_free(pf_template *t)
{
    if (!t) return;
    free(t->file);
    free(t->name);
    free(t->description);
    free(t->method);
    free(t->base_url);
    free(t->path);
    pf_kv_free(t->query, t->nquery);
    pf_kv_free(t->headers, t->nheaders);
    pf_kv_free(t->auth_headers, t->nauth_headers);
    for (size_t i = 0; i < t->nparams; i++) {
        pf_param_def *p = &t->params[i];
        free(p->name);
        strv_free(p->defaults, p->ndefaults);
        strv_free(p->values, p->nvalues);
        free(p->description);
    }
    free(t->params);
    for (size_t i = 0; i < t->nstreams; i++) {
        pf_stream_def *s = &t->streams[i];
        free(s->name);
        free(s->path_text);
        pf_jsonpath_free(s->path);
        free(s->key_text);
        pf_jsonpath_free(s->key);
    }
    free(t->streams);
    pf_kv_free(t->window.query, t->window.nquery);
    pf_ydoc_free(t->doc);
    free(t);
}

const pf_param_def *pf_template_param(const pf_template *t, const char *name)
{
    for (size_t i = 0; i < t->nparams; i++)
        if (strcmp(t->params[i].name, name) == 0) return &t->params[i];
    return NULL;
}

const pf_stream_def *pf_template_stream(const pf_template *t, const char *name)
{
    for (size_t i = 0; i < t->nstreams; i++)
        if (strcmp(t->streams[i].name, name) == 0) return &t->streams[i];
    return NULL;
}

int pf_placeholders_each(const char *s, void (*fn)(void *ud, const char *name, size_t len),
                         void *ud, size_t *bad_off)
{
    for (const char *p = s; *p; p++) {
        if (p[0] == '{' && p[1] == '{') {
            p++;
            continue;
        }
        if (p[0] == '}' && p[1] == '}') {
            p++;
            continue;
        }
        if (*p != '{') continue;
        const char *e = strchr(p + 1, '}');
        if (!e || e == p + 1) {
            if (bad_off) *bad_off = (size_t)(p - s);
            return -1;
        }
        for (const char *q = p + 1; q < e; q++) {
            if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_')) {
                if (bad_off) *bad_off = (size_t)(p - s);
                return -1;
            }
        }
        if (fn) fn(ud, p + 1, (size_t)(e - p - 1));
        p = e;
    }
    return 0;
}

/* ---- loading ---------------------------------------------------------- */

typedef struct check_ctx {
    const pf_template *t;
    const pf_ynode *where;
    pf_diags *d;
    const char *const *builtins; /* extra names allowed here */
} check_ctx;

static void check_one(void *ud, const char *name, size_t len)
{
    check_ctx *c = ud;
    char buf[128];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (pf_template_param(c->t, buf)) return;
    for (const char *const *b = c->builtins; b && *b; b++)
        if (strcmp(*b, buf) == 0) return;
    pf_ys_error(c->d, c->where, PF_ECONFIG, "placeholder {%s} names no parameter of the template",
                buf);
}

static void check_placeholders(const pf_template *t, const pf_ynode *where, const char *s,
                               const char *const *builtins, pf_diags *d)
{
    check_ctx c = {t, where, d, builtins};
    size_t off = 0;
    if (pf_placeholders_each(s, check_one, &c, &off) != 0)
        pf_ys_error(d, where, PF_ECONFIG,
                    "malformed placeholder at offset %zu of '%s' (use {name}; {{ for a literal {)",
                    off, s);
}

static int load_kv_map(const pf_ynode *map, const char *what, pf_kv **out, size_t *n, pf_diags *d)
{
    *out = NULL;
    *n = 0;
    if (!map) return 0;
    if (!pf_ys_want_map(map, what, d)) return -1;
    size_t cnt = pf_ymap_size(map);
    pf_kv *kv = calloc(cnt ? cnt : 1, sizeof *kv);
    if (!kv) {
        pf_ys_error(d, map, PF_ENOMEM, "out of memory");
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < cnt; i++) {
        const pf_ynode *k = pf_ymap_key(map, i), *v = pf_ymap_val(map, i);
        kv[i].name = strdup(k->value);
        kv[i].value = pf_ys_string(v, what, d);
        if (!kv[i].name || !kv[i].value) bad = 1;
        else if (strpbrk(kv[i].name, "\r\n") || strpbrk(kv[i].value, "\r\n")) {
            pf_ys_error(d, v, PF_ECONFIG, "%s: line breaks are not allowed", what);
            bad = 1;
        }
    }
    *out = kv;
    *n = cnt;
    return bad ? -1 : 0;
}

static int load_strings(const pf_ynode *n, const char *what, char ***out, size_t *cnt,
                        pf_diags *d)
{
    *out = NULL;
    *cnt = 0;
    if (!n) return 0;
    size_t count = n->kind == PF_Y_SEQ ? n->count : 1;
    char **v = calloc(count ? count : 1, sizeof *v);
    if (!v) {
        pf_ys_error(d, n, PF_ENOMEM, "out of memory");
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        v[i] = pf_ys_string(n->kind == PF_Y_SEQ ? n->items[i] : n, what, d);
        if (!v[i]) bad = 1;
    }
    *out = v;
    *cnt = count;
    return bad ? -1 : 0;
}

static int valid_ident(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

static pf_jsonpath *compile_path(const pf_ynode *n, const char *text, pf_diags *d)
{
    pf_jsonpath *q = NULL;
    pf_error e;
    pf_error_clear(&e);
    if (pf_jsonpath_compile(text, strlen(text), &q, &e) != PF_OK) {
        pf_ys_error(d, n, PF_ECONFIG, "invalid JSONPath '%s': %s at offset %ld", text, e.msg,
                    e.offset);
        return NULL;
    }
    return q;
}

static void load_params(pf_template *t, const pf_ynode *params, pf_diags *d)
{
    static const char *const keys[] = {"type",   "required", "default",     "min",
                                       "max",    "values",   "description", "secret",
                                       NULL};
    if (!params) return;
    if (!pf_ys_want_map(params, "params", d)) return;
    size_t n = pf_ymap_size(params);
    t->params = calloc(n ? n : 1, sizeof *t->params);
    if (!t->params) {
        pf_ys_error(d, params, PF_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const pf_ynode *k = pf_ymap_key(params, i), *v = pf_ymap_val(params, i);
        pf_param_def *p = &t->params[t->nparams++];
        p->name = strdup(k->value);
        if (!p->name) {
            pf_ys_error(d, k, PF_ENOMEM, "out of memory");
            continue;
        }
        if (!valid_ident(p->name))
            pf_ys_error(d, k, PF_ECONFIG,
                        "parameter name '%s' must use only a-z, 0-9 and _", p->name);
        if (!pf_ys_want_map(v, "a parameter", d)) continue;
        pf_ys_check_keys(v, keys, "a parameter", d);
        const pf_ynode *ty = pf_ymap_get(v, "type");
        if (!ty) {
            pf_ys_error(d, v, PF_ECONFIG, "parameter '%s' has no type", p->name);
        } else if (ty->kind != PF_Y_SCALAR || param_type_parse(ty->value, &p->type) != 0) {
            pf_ys_error(d, ty, PF_ECONFIG,
                        "unknown parameter type '%s' (expected string, integer, boolean, "
                        "datetime, duration, interval, enum or list)",
                        ty->kind == PF_Y_SCALAR ? ty->value : "");
        }
        const pf_ynode *x;
        int b;
        if ((x = pf_ymap_get(v, "required")) && pf_ys_bool(x, "required", &b, d) == 0)
            p->required = b;
        if ((x = pf_ymap_get(v, "secret")) && pf_ys_bool(x, "secret", &b, d) == 0) p->secret = b;
        if ((x = pf_ymap_get(v, "min")) &&
            pf_ys_int(x, "min", INT64_MIN, INT64_MAX, &p->min, d) == 0)
            p->has_min = 1;
        if ((x = pf_ymap_get(v, "max")) &&
            pf_ys_int(x, "max", INT64_MIN, INT64_MAX, &p->max, d) == 0)
            p->has_max = 1;
        if ((x = pf_ymap_get(v, "description"))) p->description = pf_ys_string(x, "description", d);
        load_strings(pf_ymap_get(v, "values"), "values", &p->values, &p->nvalues, d);
        if ((p->type == PF_PT_ENUM) && p->nvalues == 0)
            pf_ys_error(d, v, PF_ECONFIG, "enum parameter '%s' needs a list of values", p->name);
        load_strings(pf_ymap_get(v, "default"), "default", &p->defaults, &p->ndefaults, d);
        if (p->required && p->ndefaults)
            pf_ys_error(d, v, PF_ECONFIG, "parameter '%s' is required and has a default",
                        p->name);
    }
}

static void load_streams(pf_template *t, const pf_ynode *streams, pf_diags *d)
{
    static const char *const keys[] = {"path", "key", NULL};
    if (!streams) {
        pf_ys_error(d, t->doc->root, PF_ECONFIG, "template has no streams");
        return;
    }
    if (!pf_ys_want_map(streams, "streams", d)) return;
    size_t n = pf_ymap_size(streams);
    if (n == 0) pf_ys_error(d, streams, PF_ECONFIG, "template has no streams");
    t->streams = calloc(n ? n : 1, sizeof *t->streams);
    if (!t->streams) {
        pf_ys_error(d, streams, PF_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const pf_ynode *k = pf_ymap_key(streams, i), *v = pf_ymap_val(streams, i);
        pf_stream_def *s = &t->streams[t->nstreams++];
        s->name = strdup(k->value);
        if (!s->name) continue;
        if (!valid_ident(s->name))
            pf_ys_error(d, k, PF_ECONFIG, "stream name '%s' must use only a-z, 0-9 and _",
                        s->name);
        if (!pf_ys_want_map(v, "a stream", d)) continue;
        pf_ys_check_keys(v, keys, "a stream", d);
        const pf_ynode *p = pf_ymap_get(v, "path");
        if (!p) {
            pf_ys_error(d, v, PF_ECONFIG, "stream '%s' has no path", s->name);
            continue;
        }
        if ((s->path_text = pf_ys_string(p, "path", d))) s->path = compile_path(p, s->path_text, d);
        const pf_ynode *kk = pf_ymap_get(v, "key");
        if (kk && (s->key_text = pf_ys_string(kk, "key", d)))
            s->key = compile_path(kk, s->key_text, d);
    }
}

static void load_pagination(pf_template *t, const pf_ynode *pg, pf_diags *d)
{
    static const char *const keys[] = {"kind", "min", "max", "retention", "retention_margin",
                                       "query", NULL};
    static const char *const window_builtins[] = {"window_start", "window_end", NULL};
    t->paging = PF_PAGING_NONE;
    if (!pg) return;
    if (!pf_ys_want_map(pg, "pagination", d)) return;
    pf_ys_check_keys(pg, keys, "pagination", d);
    const pf_ynode *kind = pf_ymap_get(pg, "kind");
    char *k = kind ? pf_ys_string(kind, "pagination kind", d) : NULL;
    if (!k) {
        if (!kind) pf_ys_error(d, pg, PF_ECONFIG, "pagination needs a kind (none, time_window)");
        return;
    }
    if (strcmp(k, "none") == 0) {
        t->paging = PF_PAGING_NONE;
    } else if (strcmp(k, "time_window") == 0) {
        t->paging = PF_PAGING_TIME_WINDOW;
        pf_window_def *w = &t->window;
        const pf_ynode *x;
        w->min_ms = 0;
        w->max_ms = 3600000;
        if ((x = pf_ymap_get(pg, "min"))) pf_ys_duration(x, "min", &w->min_ms, d);
        if ((x = pf_ymap_get(pg, "max"))) pf_ys_duration(x, "max", &w->max_ms, d);
        if ((x = pf_ymap_get(pg, "retention"))) pf_ys_duration(x, "retention", &w->retention_ms, d);
        if ((x = pf_ymap_get(pg, "retention_margin")))
            pf_ys_duration(x, "retention_margin", &w->margin_ms, d);
        if (w->max_ms <= 0 || w->min_ms > w->max_ms)
            pf_ys_error(d, pg, PF_ECONFIG, "pagination window needs 0 <= min <= max and max > 0");
        const pf_ynode *q = pf_ymap_get(pg, "query");
        if (!q) pf_ys_error(d, pg, PF_ECONFIG, "a time_window pagination needs a query");
        else if (load_kv_map(q, "pagination query", &w->query, &w->nquery, d) == 0)
            for (size_t i = 0; i < w->nquery; i++)
                check_placeholders(t, pf_ymap_val(q, i), w->query[i].value, window_builtins, d);
    } else {
        pf_ys_error(d, kind, PF_ECONFIG, "unknown pagination kind '%s' (expected none, time_window)",
                    k);
    }
    free(k);
}

static void load_auth(pf_template *t, const pf_ynode *auth, pf_diags *d)
{
    static const char *const keys[] = {"kind", "headers", "optional", NULL};
    static const char *const auth_builtins[] = {"principal", "secret", NULL};
    t->auth = PF_AUTH_NONE;
    if (!auth) return;
    if (!pf_ys_want_map(auth, "auth", d)) return;
    pf_ys_check_keys(auth, keys, "auth", d);
    const pf_ynode *kind = pf_ymap_get(auth, "kind"), *x;
    char *k = kind ? pf_ys_string(kind, "auth kind", d) : NULL;
    if (!k) {
        if (!kind) pf_ys_error(d, auth, PF_ECONFIG, "auth needs a kind (none, basic, headers)");
        return;
    }
    if (strcmp(k, "none") == 0) t->auth = PF_AUTH_NONE;
    else if (strcmp(k, "basic") == 0) t->auth = PF_AUTH_BASIC;
    else if (strcmp(k, "headers") == 0) t->auth = PF_AUTH_HEADERS;
    else
        pf_ys_error(d, kind, PF_ECONFIG, "unknown auth kind '%s' (expected none, basic, headers)",
                    k);
    free(k);
    const pf_ynode *h = pf_ymap_get(auth, "headers");
    if (t->auth == PF_AUTH_HEADERS) {
        if (!h) pf_ys_error(d, auth, PF_ECONFIG, "auth kind headers needs a headers mapping");
        else if (load_kv_map(h, "auth headers", &t->auth_headers, &t->nauth_headers, d) == 0)
            for (size_t i = 0; i < t->nauth_headers; i++)
                check_placeholders(t, pf_ymap_val(h, i), t->auth_headers[i].value,
                                   auth_builtins, d);
    } else if (h) {
        pf_ys_error(d, h, PF_ECONFIG, "auth headers are only used with kind: headers");
    }
    int b;
    if ((x = pf_ymap_get(auth, "optional")) && pf_ys_bool(x, "optional", &b, d) == 0)
        t->auth_optional = b;
}

static const char *file_stem(const char *path, char *buf, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, n, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0)) *dot = '\0';
    return buf;
}

pf_status pf_template_load_file(const char *path, pf_template **out, pf_diags *d)
{
    static const char *const top_keys[] = {"name",    "description", "request",    "auth",
                                           "params",  "streams",     "pagination", NULL};
    static const char *const req_keys[] = {"method", "base_url", "path", "query", "headers", NULL};
    *out = NULL;
    size_t before = d->count;
    pf_template *t = calloc(1, sizeof *t);
    if (!t || !(t->file = strdup(path))) {
        free(t);
        pf_ys_error(d, NULL, PF_ENOMEM, "out of memory");
        return PF_ENOMEM;
    }
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_yaml_load_file(path, &t->doc, &e);
    if (st != PF_OK) {
        pf_diags_add(d, &e);
        pf_template_free(t);
        return st;
    }
    const pf_ynode *root = t->doc->root;
    if (!root || root->kind != PF_Y_MAP) {
        pf_error_at(&e, PF_ECONFIG, path, root ? root->line : 1, root ? root->col : 1,
                    "a template must be a mapping with name, request and streams");
        pf_diags_add(d, &e);
        pf_template_free(t);
        return PF_ECONFIG;
    }
    pf_ys_check_keys(root, top_keys, "a template", d);
    const pf_ynode *x;
    char stem[256];
    if (!(x = pf_ymap_get(root, "name")))
        pf_ys_error(d, root, PF_ECONFIG, "template has no name");
    else if ((t->name = pf_ys_string(x, "name", d)) &&
             strcmp(t->name, file_stem(path, stem, sizeof stem)) != 0)
        pf_ys_error(d, x, PF_ECONFIG, "template name '%s' must match its file name '%s'", t->name,
                    stem);
    if ((x = pf_ymap_get(root, "description"))) t->description = pf_ys_string(x, "description", d);

    /* Parameters first: placeholders elsewhere are checked against them. */
    load_params(t, pf_ymap_get(root, "params"), d);

    const pf_ynode *req = pf_ymap_get(root, "request");
    if (!req) {
        pf_ys_error(d, root, PF_ECONFIG, "template has no request");
    } else if (pf_ys_want_map(req, "request", d)) {
        pf_ys_check_keys(req, req_keys, "request", d);
        if ((x = pf_ymap_get(req, "method"))) t->method = pf_ys_string(x, "method", d);
        else t->method = strdup("GET");
        if (t->method && strcmp(t->method, "GET") != 0 && strcmp(t->method, "POST") != 0)
            pf_ys_error(d, x, PF_ECONFIG, "method must be GET or POST, not '%s'", t->method);
        if (!(x = pf_ymap_get(req, "base_url")))
            pf_ys_error(d, req, PF_ECONFIG, "request has no base_url");
        else if ((t->base_url = pf_ys_string(x, "base_url", d)) &&
                 strncmp(t->base_url, "https://", 8) != 0 &&
                 strncmp(t->base_url, "http://", 7) != 0)
            pf_ys_error(d, x, PF_ECONFIG, "base_url must start with https:// or http://");
        if (!(x = pf_ymap_get(req, "path")))
            pf_ys_error(d, req, PF_ECONFIG, "request has no path");
        else if ((t->path = pf_ys_string(x, "path", d))) {
            if (t->path[0] != '/') pf_ys_error(d, x, PF_ECONFIG, "path must start with /");
            check_placeholders(t, x, t->path, NULL, d);
        }
        const pf_ynode *q = pf_ymap_get(req, "query");
        if (load_kv_map(q, "query", &t->query, &t->nquery, d) == 0)
            for (size_t i = 0; i < t->nquery; i++)
                check_placeholders(t, pf_ymap_val(q, i), t->query[i].value, NULL, d);
        const pf_ynode *h = pf_ymap_get(req, "headers");
        if (load_kv_map(h, "headers", &t->headers, &t->nheaders, d) == 0)
            for (size_t i = 0; i < t->nheaders; i++)
                check_placeholders(t, pf_ymap_val(h, i), t->headers[i].value, NULL, d);
    }
    load_auth(t, pf_ymap_get(root, "auth"), d);
    load_streams(t, pf_ymap_get(root, "streams"), d);
    load_pagination(t, pf_ymap_get(root, "pagination"), d);

    if (d->count > before || d->oom) {
        pf_template_free(t);
        return d->count > before ? d->items[before].code : PF_ENOMEM;
    }
    *out = t;
    return PF_OK;
}

/* ---- search path ------------------------------------------------------ */

static int looks_like_path(const char *name)
{
    size_t n = strlen(name);
    return strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

/* Fills DIRS with the search directories (caller frees with pf_paths_free). */
static pf_status template_dirs(char ***dirs, size_t *n)
{
    return pf_paths_search_dirs("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_TEMPLATE_DIR,
                                PPFLOW_TEMPLATE_INSTALL_DIR, dirs, n);
}

pf_status pf_template_find(const char *name, pf_template **out, pf_diags *d)
{
    *out = NULL;
    if (looks_like_path(name)) return pf_template_load_file(name, out, d);
    if (!valid_ident(name) && !strchr(name, '-')) goto notfound;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            goto notfound;
    char **dirs = NULL;
    size_t ndirs = 0;
    if (template_dirs(&dirs, &ndirs) != PF_OK) {
        pf_ys_error(d, NULL, PF_ENOMEM, "out of memory");
        return PF_ENOMEM;
    }
    for (size_t i = 0; i < ndirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.yaml", dirs[i], name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        fclose(f);
        pf_paths_free(dirs, ndirs);
        return pf_template_load_file(path, out, d);
    }
    pf_paths_free(dirs, ndirs);
notfound:;
    pf_error e;
    pf_error_set(&e, PF_ENOTFOUND,
                 "no template named '%s' (see `ppflow templates`; PPFLOW_TEMPLATE_PATH adds "
                 "directories)",
                 name);
    pf_diags_add(d, &e);
    return PF_ENOTFOUND;
}

static int cmp_base(const void *a, const void *b)
{
    const char *x = strrchr(*(char *const *)a, '/'), *y = strrchr(*(char *const *)b, '/');
    return strcmp(x ? x + 1 : *(char *const *)a, y ? y + 1 : *(char *const *)b);
}

pf_status pf_template_list(char ***paths, size_t *count, pf_error *err)
{
    *paths = NULL;
    *count = 0;
    char **dirs = NULL;
    size_t ndirs = 0;
    if (template_dirs(&dirs, &ndirs) != PF_OK)
        return pf_error_set(err, PF_ENOMEM, "out of memory");
    char **v = NULL;
    size_t n = 0, alloc = 0;
    pf_status st = PF_OK;
    for (size_t i = 0; i < ndirs && st == PF_OK; i++) {
        DIR *dir = opendir(dirs[i]);
        if (!dir) continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            size_t l = strlen(de->d_name);
            if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0 || de->d_name[0] == '.')
                continue;
            int dup = 0;
            for (size_t j = 0; j < n; j++) {
                const char *b = strrchr(v[j], '/') + 1;
                if (strcmp(b, de->d_name) == 0) dup = 1;
            }
            if (dup) continue;
            if (n == alloc) {
                size_t na = alloc ? alloc * 2 : 16;
                char **p = realloc(v, na * sizeof *p);
                if (!p) {
                    st = PF_ENOMEM;
                    break;
                }
                v = p;
                alloc = na;
            }
            size_t pl = strlen(dirs[i]) + 1 + l + 1;
            if (!(v[n] = malloc(pl))) {
                st = PF_ENOMEM;
                break;
            }
            snprintf(v[n++], pl, "%s/%s", dirs[i], de->d_name);
        }
        closedir(dir);
    }
    pf_paths_free(dirs, ndirs);
    if (st != PF_OK) {
        strv_free(v, n);
        return pf_error_set(err, st, "out of memory listing templates");
    }
    if (n) qsort(v, n, sizeof *v, cmp_base);
    *paths = v;
    *count = n;
    return PF_OK;
}
