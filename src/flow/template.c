/* template.c: loading, validating and finding endpoint templates, and the
 * parts of a flow that complete a template (manual flows, stream overrides). */
#include "flow/template.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flow/expand.h"
#include "flow/yschema.h"
#include "http/http.h"
#include "util/didyoumean.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

const char *pf_param_type_name(pf_param_type t)
{
    switch (t) {
    case PF_PT_STRING:
        return "string";
    case PF_PT_INTEGER:
        return "integer";
    case PF_PT_BOOLEAN:
        return "boolean";
    case PF_PT_DATETIME:
        return "datetime";
    case PF_PT_DURATION:
        return "duration";
    case PF_PT_INTERVAL:
        return "interval";
    case PF_PT_ENUM:
        return "enum";
    case PF_PT_LIST:
        return "list";
    }
    return "string";
}

const char *pf_paging_kind_name(pf_paging_kind k)
{
    switch (k) {
    case PF_PAGING_NONE:
        return "none";
    case PF_PAGING_TIME_WINDOW:
        return "time_window";
    case PF_PAGING_PAGE:
        return "page";
    case PF_PAGING_OFFSET:
        return "offset";
    case PF_PAGING_CURSOR:
        return "cursor";
    case PF_PAGING_NEXT_LINK:
        return "next_link";
    }
    return "none";
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
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void key_clear(pf_stream_def *s)
{
    free(s->key_text);
    pf_jsonpath_free(s->key);
    for (size_t i = 0; i < s->nkey_alt; i++) {
        free(s->key_alt_text[i]);
        pf_jsonpath_free(s->key_alt[i]);
    }
    free(s->key_alt_text);
    free(s->key_alt);
    s->key_text = NULL;
    s->key = NULL;
    s->key_alt_text = NULL;
    s->key_alt = NULL;
    s->nkey_alt = 0;
}

/* Sets S->identity from its key paths ("$.id | $.GUID | sha256"). */
static void set_identity(pf_stream_def *s, const pf_ynode *at, pf_diags *d)
{
    size_t n = sizeof "sha256";
    if (s->key_text) n += strlen(s->key_text) + 3;
    for (size_t i = 0; i < s->nkey_alt; i++)
        n += strlen(s->key_alt_text[i]) + 3;
    char *id = malloc(n);
    if (!id) {
        pf_ys_error(d, at, PF_ENOMEM, "out of memory");
        return;
    }
    size_t o = 0;
    if (s->key_text) o += (size_t)snprintf(id + o, n - o, "%s | ", s->key_text);
    for (size_t i = 0; i < s->nkey_alt; i++)
        o += (size_t)snprintf(id + o, n - o, "%s | ", s->key_alt_text[i]);
    snprintf(id + o, n - o, "sha256");
    free(s->identity);
    s->identity = id;
}

static pf_jsonpath *compile_path(const pf_ynode *at, const char *text, pf_diags *d);

/* Loads a stream's `key` (KK, in OWNER; NULL or null: none): one JSONPath, or a list
 * of them tried in order. Replaces what S had. */
static void load_key(pf_stream_def *s, const pf_ynode *kk, const pf_ynode *owner, const char *what,
                     pf_diags *d)
{
    key_clear(s);
    if (kk && kk->kind == PF_Y_SEQ) {
        if (kk->count == 0) {
            pf_ys_error(d, kk, PF_ECONFIG,
                        "%s: an empty list; give one or more JSONPaths, or leave it out "
                        "(records are then identified by a hash of their content)",
                        what);
        } else if (kk->count > 8) {
            pf_ys_error(d, kk, PF_ECONFIG, "%s: at most 8 paths", what);
        } else {
            s->key_alt_text = calloc(kk->count, sizeof *s->key_alt_text);
            s->key_alt = calloc(kk->count, sizeof *s->key_alt);
            if (!s->key_alt_text || !s->key_alt) {
                pf_ys_error(d, kk, PF_ENOMEM, "out of memory");
            } else {
                for (size_t i = 0; i < kk->count; i++) {
                    const pf_ynode *it = kk->items[i];
                    char *text = pf_ys_string(it, what, d);
                    pf_jsonpath *q = text ? compile_path(it, text, d) : NULL;
                    if (i == 0) {
                        s->key_text = text;
                        s->key = q;
                    } else {
                        s->key_alt_text[s->nkey_alt] = text;
                        s->key_alt[s->nkey_alt++] = q;
                    }
                }
            }
        }
    } else if (kk && !pf_ynode_is_null(kk) && (s->key_text = pf_ys_string(kk, what, d))) {
        s->key = compile_path(kk, s->key_text, d);
    }
    set_identity(s, kk ? kk : owner, d);
}

static void stream_clear(pf_stream_def *s)
{
    free(s->name);
    free(s->path_text);
    pf_jsonpath_free(s->path);
    key_clear(s);
    free(s->identity);
    free(s->when_param);
    strv_free(s->when_values, s->nwhen_values);
    memset(s, 0, sizeof *s);
}

static void streams_free(pf_template *t)
{
    for (size_t i = 0; i < t->nstreams; i++)
        stream_clear(&t->streams[i]);
    free(t->streams);
    t->streams = NULL;
    t->nstreams = 0;
}

static void pages_clear(pf_pages_def *p)
{
    free(p->position_param);
    free(p->size_param);
    free(p->size_from);
    free(p->from_text);
    pf_jsonpath_free(p->from);
    memset(p, 0, sizeof *p);
}

static void pagination_clear(pf_template *t)
{
    pf_kv_free(t->window.query, t->window.nquery);
    memset(&t->window, 0, sizeof t->window);
    pages_clear(&t->pages);
    t->paging = PF_PAGING_NONE;
}

void pf_template_drop_stream(pf_template *t, size_t i)
{
    if (!t || i >= t->nstreams) return;
    stream_clear(&t->streams[i]);
    memmove(&t->streams[i], &t->streams[i + 1], (t->nstreams - i - 1) * sizeof *t->streams);
    t->nstreams--;
}

void pf_template_free(pf_template *t)
{
    if (!t) return;
    free(t->file);
    for (size_t i = 0; i < t->nquotas; i++) {
        free(t->quotas[i].pool);
        free(t->quotas[i].when_set);
    }
    free(t->quotas);
    free(t->name);
    free(t->description);
    free(t->method);
    free(t->base_url);
    free(t->path);
    pf_kv_free(t->query, t->nquery);
    pf_kv_free(t->headers, t->nheaders);
    free(t->body);
    pf_kv_free(t->auth_headers, t->nauth_headers);
    for (size_t i = 0; i < t->nparams; i++) {
        pf_param_def *p = &t->params[i];
        free(p->name);
        strv_free(p->defaults, p->ndefaults);
        strv_free(p->values, p->nvalues);
        free(p->description);
    }
    free(t->params);
    for (size_t i = 0; i < t->nconstraints; i++)
        strv_free(t->constraints[i].params, t->constraints[i].nparams);
    free(t->constraints);
    streams_free(t);
    free(t->format_param);
    free(t->no_data_status);
    pagination_clear(t);
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

const char *pf_url_path_check(const char *text)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "-._~!$&'()*+,;=:@/";
    if (text[0] != '/') return "a URL path starting with /";
    for (const char *p = text; *p; p++) {
        if (*p == '%') {
            static const char hex[] = "0123456789abcdefABCDEF";
            if (!p[1] || !p[2] || !strchr(hex, p[1]) || !strchr(hex, p[2]))
                return "a URL path (a % must start a %XX escape)";
            p += 2;
            continue;
        }
        if (!strchr(ok, *p)) return "a URL path of letters, digits and -._~!$&'()*+,;=:@/ only";
    }
    /* No "." or ".." segment: the value must not climb out of the API's tree. */
    for (const char *s = text; s; s = strchr(s + 1, '/')) {
        const char *seg = s + 1, *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return "a URL path without . or .. segments";
    }
    return NULL;
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

/* When S is exactly one placeholder "{name}", copies the name into BUF and
 * returns it; else NULL. */
static const char *sole_placeholder(const char *s, char *buf, size_t n)
{
    size_t l = strlen(s);
    if (l < 3 || s[0] != '{' || s[1] == '{' || s[l - 1] != '}' || memchr(s + 1, '{', l - 2) ||
        memchr(s + 1, '}', l - 2) || l - 2 >= n)
        return NULL;
    memcpy(buf, s + 1, l - 2);
    buf[l - 2] = '\0';
    return buf;
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
        if (!kv[i].name || !kv[i].value)
            bad = 1;
        else if (strpbrk(kv[i].name, "\r\n") || strpbrk(kv[i].value, "\r\n")) {
            pf_ys_error(d, v, PF_ECONFIG, "%s: line breaks are not allowed", what);
            bad = 1;
        }
    }
    *out = kv;
    *n = cnt;
    return bad ? -1 : 0;
}

static int load_strings(const pf_ynode *n, const char *what, char ***out, size_t *cnt, pf_diags *d)
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

static int valid_method(const char *m)
{
    static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};
    for (const char *const *p = ok; *p; p++)
        if (strcmp(*p, m) == 0) return 1;
    return 0;
}

static void load_params(pf_template *t, const pf_ynode *params, pf_diags *d)
{
    static const char *const keys[] = {"type",   "required",    "default", "min",      "max",
                                       "values", "description", "secret",  "url_path", NULL};
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
            pf_ys_error(d, k, PF_ECONFIG, "parameter name '%s' must use only a-z, 0-9 and _",
                        p->name);
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
        if ((x = pf_ymap_get(v, "url_path")) && pf_ys_bool(x, "url_path", &b, d) == 0) {
            p->url_path = b;
            if (b && p->type != PF_PT_STRING)
                pf_ys_error(d, x, PF_ECONFIG, "url_path is only for string parameters");
        }
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
        const pf_ynode *dn = pf_ymap_get(v, "default");
        load_strings(dn, "default", &p->defaults, &p->ndefaults, d);
        if (p->required && p->ndefaults)
            pf_ys_error(d, v, PF_ECONFIG, "parameter '%s' is required and has a default", p->name);
        const char *why;
        if (p->url_path && p->ndefaults && p->defaults[0] &&
            (why = pf_url_path_check(p->defaults[0])))
            pf_ys_error(d, dn, PF_ECONFIG, "the default of '%s' must be %s", p->name, why);
    }
}

/* Reads a list of parameter names at N (a sequence of at least MIN). */
static int load_param_names(const pf_template *t, const pf_ynode *n, const char *what, size_t min,
                            char ***out, size_t *count, pf_diags *d)
{
    if (!n || n->kind != PF_Y_SEQ || n->count < min) {
        pf_ys_error(d, n, PF_ECONFIG, "%s needs a list of at least %zu parameter names", what, min);
        return -1;
    }
    if (load_strings(n, what, out, count, d) != 0) return -1;
    int bad = 0;
    for (size_t i = 0; i < *count; i++) {
        if (!pf_template_param(t, (*out)[i])) {
            pf_ys_error(d, n->items[i], PF_ECONFIG, "%s: '%s' names no parameter of the template",
                        what, (*out)[i]);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

static pf_constraint *add_constraint(pf_template *t, const pf_ynode *where, pf_diags *d)
{
    pf_constraint *c = realloc(t->constraints, (t->nconstraints + 1) * sizeof *c);
    if (!c) {
        pf_ys_error(d, where, PF_ENOMEM, "out of memory");
        return NULL;
    }
    t->constraints = c;
    c = &t->constraints[t->nconstraints++];
    memset(c, 0, sizeof *c);
    return c;
}

/* constraints:
 *   - exactly_one_of: [threat_id, campaign_id]
 *   - at_most_one_of: [a, b]
 *   - requires: {include_campaign_forensics: threat_id} */
static void load_constraints(pf_template *t, const pf_ynode *list, pf_diags *d)
{
    if (!list) return;
    if (list->kind != PF_Y_SEQ) {
        pf_ys_error(d, list, PF_ECONFIG, "constraints must be a list");
        return;
    }
    for (size_t i = 0; i < list->count; i++) {
        const pf_ynode *item = list->items[i];
        if (!pf_ys_want_map(item, "a constraint", d)) continue;
        if (pf_ymap_size(item) != 1) {
            pf_ys_error(d, item, PF_ECONFIG,
                        "a constraint has exactly one key: exactly_one_of, at_most_one_of or "
                        "requires");
            continue;
        }
        const pf_ynode *k = pf_ymap_key(item, 0), *v = pf_ymap_val(item, 0);
        if (strcmp(k->value, "exactly_one_of") == 0 || strcmp(k->value, "at_most_one_of") == 0) {
            pf_constraint *c = add_constraint(t, item, d);
            if (!c) return;
            c->kind = k->value[0] == 'e' ? PF_CONSTRAINT_EXACTLY_ONE : PF_CONSTRAINT_AT_MOST_ONE;
            load_param_names(t, v, k->value, 2, &c->params, &c->nparams, d);
        } else if (strcmp(k->value, "requires") == 0) {
            if (!pf_ys_want_map(v, "requires", d)) continue;
            for (size_t j = 0; j < pf_ymap_size(v); j++) {
                const pf_ynode *a = pf_ymap_key(v, j), *b = pf_ymap_val(v, j);
                pf_constraint *c = add_constraint(t, a, d);
                if (!c) return;
                c->kind = PF_CONSTRAINT_REQUIRES;
                c->params = calloc(2, sizeof *c->params);
                if (!c->params) {
                    pf_ys_error(d, a, PF_ENOMEM, "out of memory");
                    return;
                }
                c->nparams = 2;
                c->params[0] = strdup(a->value);
                c->params[1] = pf_ys_string(b, "requires", d);
                if (!c->params[0] || !c->params[1]) continue;
                if (!pf_template_param(t, c->params[0]))
                    pf_ys_error(d, a, PF_ECONFIG,
                                "requires: '%s' names no parameter of the "
                                "template",
                                c->params[0]);
                if (!pf_template_param(t, c->params[1]))
                    pf_ys_error(d, b, PF_ECONFIG,
                                "requires: '%s' names no parameter of the "
                                "template",
                                c->params[1]);
            }
        } else {
            pf_ys_error(d, k, PF_ECONFIG,
                        "unknown constraint '%s' (expected exactly_one_of, at_most_one_of or "
                        "requires)",
                        k->value);
        }
    }
}

/* `when: {param: value}` or `when: {param: [values]}` on a stream. */
static void load_when(pf_template *t, pf_stream_def *s, const pf_ynode *w, pf_diags *d)
{
    if (!pf_ys_want_map(w, "when", d)) return;
    if (pf_ymap_size(w) != 1) {
        pf_ys_error(d, w, PF_ECONFIG, "when names exactly one parameter and its values");
        return;
    }
    const pf_ynode *k = pf_ymap_key(w, 0), *v = pf_ymap_val(w, 0);
    const pf_param_def *p = pf_template_param(t, k->value);
    if (!p) {
        pf_ys_error(d, k, PF_ECONFIG, "when: '%s' names no parameter of the template", k->value);
        return;
    }
    if (p->type != PF_PT_ENUM && p->type != PF_PT_STRING && p->type != PF_PT_BOOLEAN) {
        pf_ys_error(d, k, PF_ECONFIG, "when: parameter '%s' must be an enum, string or boolean",
                    k->value);
        return;
    }
    if (!(s->when_param = strdup(k->value))) {
        pf_ys_error(d, k, PF_ENOMEM, "out of memory");
        return;
    }
    if (load_strings(v, "when", &s->when_values, &s->nwhen_values, d) != 0) return;
    for (size_t i = 0; i < s->nwhen_values && p->type == PF_PT_ENUM; i++) {
        int found = 0;
        for (size_t j = 0; j < p->nvalues; j++)
            if (strcmp(p->values[j], s->when_values[i]) == 0) found = 1;
        if (!found)
            pf_ys_error(d, v->kind == PF_Y_SEQ ? v->items[i] : v, PF_ECONFIG,
                        "when: '%s' is not a value of parameter '%s'", s->when_values[i], k->value);
    }
}

static void load_streams(pf_template *t, const pf_ynode *streams, pf_diags *d)
{
    static const char *const keys[] = {"path", "key", "when", NULL};
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
            pf_ys_error(d, k, PF_ECONFIG, "stream name '%s' must use only a-z, 0-9 and _", s->name);
        if (!pf_ys_want_map(v, "a stream", d)) continue;
        pf_ys_check_keys(v, keys, "a stream", d);
        const pf_ynode *p = pf_ymap_get(v, "path");
        if (!p) {
            pf_ys_error(d, v, PF_ECONFIG, "stream '%s' has no path", s->name);
            continue;
        }
        if ((s->path_text = pf_ys_string(p, "path", d))) s->path = compile_path(p, s->path_text, d);
        load_key(s, pf_ymap_get(v, "key"), v, "key", d);
        const pf_ynode *w = pf_ymap_get(v, "when");
        if (w) load_when(t, s, w, d);
    }
}

/* response:
 *   format: json | syslog | "{param}"   (an enum parameter with values json, syslog)
 *   no_data_status: [404]               (statuses that mean "no records here") */
static void load_response(pf_template *t, const pf_ynode *r, pf_diags *d)
{
    static const char *const keys[] = {"format", "no_data_status", NULL};
    if (!r || !pf_ys_want_map(r, "response", d)) return;
    pf_ys_check_keys(r, keys, "response", d);
    const pf_ynode *f = pf_ymap_get(r, "format");
    char *text = f ? pf_ys_string(f, "response format", d) : NULL;
    if (text) {
        char name[128];
        if (strcmp(text, "json") == 0) {
            t->format = PF_RESPONSE_JSON;
        } else if (strcmp(text, "syslog") == 0) {
            t->format = PF_RESPONSE_SYSLOG;
        } else if (sole_placeholder(text, name, sizeof name)) {
            const pf_param_def *p = pf_template_param(t, name);
            if (!p || p->type != PF_PT_ENUM) {
                pf_ys_error(d, f, PF_ECONFIG,
                            "response format {%s} must name an enum parameter whose values are "
                            "json and/or syslog",
                            name);
            } else {
                for (size_t i = 0; i < p->nvalues; i++)
                    if (strcmp(p->values[i], "json") != 0 && strcmp(p->values[i], "syslog") != 0)
                        pf_ys_error(d, f, PF_ECONFIG,
                                    "response format {%s}: value '%s' is neither json nor syslog",
                                    name, p->values[i]);
                if (!(t->format_param = strdup(name)))
                    pf_ys_error(d, f, PF_ENOMEM, "out of memory");
            }
        } else {
            pf_ys_error(d, f, PF_ECONFIG,
                        "response format must be json, syslog or a {parameter}, not '%s'", text);
        }
        free(text);
    }
    const pf_ynode *nd = pf_ymap_get(r, "no_data_status");
    if (nd) {
        size_t n = nd->kind == PF_Y_SEQ ? nd->count : 1;
        free(t->no_data_status);
        t->nno_data_status = 0;
        t->no_data_status = calloc(n ? n : 1, sizeof *t->no_data_status);
        if (!t->no_data_status) {
            pf_ys_error(d, nd, PF_ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            if (pf_ys_int(nd->kind == PF_Y_SEQ ? nd->items[i] : nd, "no_data_status", 400, 499, &v,
                          d) == 0)
                t->no_data_status[t->nno_data_status++] = (long)v;
        }
    }
}

/* Whether T's responses can be syslog text. */
static int may_be_syslog(const pf_template *t)
{
    if (!t->format_param) return t->format == PF_RESPONSE_SYSLOG;
    const pf_param_def *p = pf_template_param(t, t->format_param);
    for (size_t i = 0; p && i < p->nvalues; i++)
        if (strcmp(p->values[i], "syslog") == 0) return 1;
    return 0;
}

static int parse_paging_kind(const char *s, pf_paging_kind *k)
{
    static const pf_paging_kind all[] = {PF_PAGING_NONE,   PF_PAGING_TIME_WINDOW,
                                         PF_PAGING_PAGE,   PF_PAGING_OFFSET,
                                         PF_PAGING_CURSOR, PF_PAGING_NEXT_LINK};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, pf_paging_kind_name(all[i])) == 0) return *k = all[i], 0;
    return -1;
}

static char *dup_or_default(const pf_ynode *n, const char *what, const char *dflt, pf_diags *d)
{
    if (n) return pf_ys_string(n, what, d);
    char *s = dflt ? strdup(dflt) : NULL;
    if (dflt && !s) pf_ys_error(d, NULL, PF_ENOMEM, "out of memory");
    return s;
}

/* Loads the page kinds (page, offset, cursor, next_link) from map PG into P.
 * KIND is already parsed. */
static void load_pages(pf_template *t, pf_pages_def *p, pf_paging_kind kind, const pf_ynode *pg,
                       const char *what, pf_diags *d)
{
    static const char *const page_keys[] = {"kind",  "max_pages", "page_param", "size_param",
                                            "first", "size",      NULL};
    static const char *const offset_keys[] = {
        "kind", "max_pages", "offset_param", "limit_param", "first", "size", NULL};
    static const char *const cursor_keys[] = {
        "kind", "max_pages", "cursor_param", "size_param", "size", "from", NULL};
    static const char *const link_keys[] = {"kind", "max_pages", "from", NULL};
    const pf_ynode *x;
    p->kind = kind;
    switch (kind) {
    case PF_PAGING_PAGE:
        pf_ys_check_keys(pg, page_keys, what, d);
        p->position_param = dup_or_default(pf_ymap_get(pg, "page_param"), "page_param", "page", d);
        p->size_param = dup_or_default(pf_ymap_get(pg, "size_param"), "size_param", "size", d);
        p->first = 1;
        break;
    case PF_PAGING_OFFSET:
        pf_ys_check_keys(pg, offset_keys, what, d);
        p->position_param =
            dup_or_default(pf_ymap_get(pg, "offset_param"), "offset_param", "offset", d);
        p->size_param = dup_or_default(pf_ymap_get(pg, "limit_param"), "limit_param", "limit", d);
        p->first = 0;
        break;
    case PF_PAGING_CURSOR:
        pf_ys_check_keys(pg, cursor_keys, what, d);
        if (!(x = pf_ymap_get(pg, "cursor_param")))
            pf_ys_error(d, pg, PF_ECONFIG,
                        "cursor pagination needs cursor_param (the query parameter that "
                        "carries the token)");
        else
            p->position_param = pf_ys_string(x, "cursor_param", d);
        if ((x = pf_ymap_get(pg, "size_param"))) p->size_param = pf_ys_string(x, "size_param", d);
        break;
    case PF_PAGING_NEXT_LINK:
        pf_ys_check_keys(pg, link_keys, what, d);
        break;
    case PF_PAGING_NONE:
    case PF_PAGING_TIME_WINDOW:
        return;
    }
    if ((x = pf_ymap_get(pg, "first"))) pf_ys_int(x, "first", 0, 1000000000, &p->first, d);
    if ((x = pf_ymap_get(pg, "size"))) {
        char name[128];
        if (x->kind == PF_Y_SCALAR && sole_placeholder(x->value, name, sizeof name)) {
            const pf_param_def *sp = pf_template_param(t, name);
            if (!sp || sp->type != PF_PT_INTEGER)
                pf_ys_error(d, x, PF_ECONFIG, "size {%s} must name an integer parameter", name);
            else if (!(p->size_from = strdup(name)))
                pf_ys_error(d, x, PF_ENOMEM, "out of memory");
        } else {
            pf_ys_int(x, "size", 1, 1000000000, &p->size, d);
        }
    } else if (kind == PF_PAGING_PAGE || kind == PF_PAGING_OFFSET) {
        pf_ys_error(d, pg, PF_ECONFIG,
                    "%s pagination needs a size (a number, or {param} naming an integer "
                    "parameter): a page shorter than it is the last",
                    pf_paging_kind_name(kind));
    }
    if (kind == PF_PAGING_CURSOR || kind == PF_PAGING_NEXT_LINK) {
        if (!(x = pf_ymap_get(pg, "from")))
            pf_ys_error(d, pg, PF_ECONFIG,
                        "%s pagination needs from: the JSONPath of the next %s in the response",
                        pf_paging_kind_name(kind), kind == PF_PAGING_CURSOR ? "token" : "link");
        else if ((p->from_text = pf_ys_string(x, "from", d)))
            p->from = compile_path(x, p->from_text, d);
        if (may_be_syslog(t))
            pf_ys_error(d, pg, PF_ECONFIG,
                        "%s pagination reads the response as JSON; it cannot be used with "
                        "syslog responses",
                        pf_paging_kind_name(kind));
    }
}

static void load_pagination(pf_template *t, const pf_ynode *pg, pf_diags *d)
{
    static const char *const window_keys[] = {
        "kind",          "max_pages", "min",   "max", "retention", "retention_margin",
        "late_lookback", "query",     "pages", NULL};
    static const char *const none_keys[] = {"kind", "max_pages", NULL};
    static const char *const window_builtins[] = {"window_start", "window_end", NULL};
    pagination_clear(t);
    t->max_pages = PF_DEFAULT_MAX_PAGES;
    if (!pg) return;
    if (!pf_ys_want_map(pg, "pagination", d)) return;
    const pf_ynode *kind = pf_ymap_get(pg, "kind"), *x;
    char *k = kind ? pf_ys_string(kind, "pagination kind", d) : NULL;
    if ((x = pf_ymap_get(pg, "max_pages")))
        pf_ys_int(x, "max_pages", 1, PF_MAX_PAGES_LIMIT, &t->max_pages, d);
    pf_paging_kind pk;
    if (!k) {
        if (!kind)
            pf_ys_error(d, pg, PF_ECONFIG,
                        "pagination needs a kind (none, time_window, page, offset, cursor, "
                        "next_link)");
        return;
    }
    if (parse_paging_kind(k, &pk) != 0) {
        pf_ys_error(d, kind, PF_ECONFIG,
                    "unknown pagination kind '%s' (expected none, time_window, page, offset, "
                    "cursor, next_link)",
                    k);
        free(k);
        return;
    }
    free(k);
    t->paging = pk;
    if (pk == PF_PAGING_NONE) {
        pf_ys_check_keys(pg, none_keys, "pagination", d);
    } else if (pk == PF_PAGING_TIME_WINDOW) {
        pf_ys_check_keys(pg, window_keys, "pagination", d);
        pf_window_def *w = &t->window;
        w->min_ms = 0;
        w->max_ms = 3600000;
        if ((x = pf_ymap_get(pg, "min"))) pf_ys_duration(x, "min", &w->min_ms, d);
        if ((x = pf_ymap_get(pg, "max"))) pf_ys_duration(x, "max", &w->max_ms, d);
        if ((x = pf_ymap_get(pg, "retention"))) pf_ys_duration(x, "retention", &w->retention_ms, d);
        if ((x = pf_ymap_get(pg, "retention_margin")))
            pf_ys_duration(x, "retention_margin", &w->margin_ms, d);
        if ((x = pf_ymap_get(pg, "late_lookback")))
            pf_ys_duration(x, "late_lookback", &w->lookback_ms, d);
        if (w->max_ms <= 0 || w->min_ms > w->max_ms)
            pf_ys_error(d, pg, PF_ECONFIG, "pagination window needs 0 <= min <= max and max > 0");
        const pf_ynode *q = pf_ymap_get(pg, "query");
        if (!q)
            pf_ys_error(d, pg, PF_ECONFIG, "a time_window pagination needs a query");
        else if (load_kv_map(q, "pagination query", &w->query, &w->nquery, d) == 0)
            for (size_t i = 0; i < w->nquery; i++)
                check_placeholders(t, pf_ymap_val(q, i), w->query[i].value, window_builtins, d);
        const pf_ynode *pages = pf_ymap_get(pg, "pages");
        if (pages && pf_ys_want_map(pages, "pagination pages", d)) {
            const pf_ynode *pkn = pf_ymap_get(pages, "kind");
            char *pks = pkn ? pf_ys_string(pkn, "pages kind", d) : NULL;
            pf_paging_kind inner;
            if (!pkn)
                pf_ys_error(d, pages, PF_ECONFIG,
                            "pagination pages needs a kind (page, offset, cursor, next_link)");
            else if (pks && (parse_paging_kind(pks, &inner) != 0 || inner == PF_PAGING_NONE ||
                             inner == PF_PAGING_TIME_WINDOW))
                pf_ys_error(d, pkn, PF_ECONFIG,
                            "unknown pages kind '%s' (expected page, offset, cursor, next_link)",
                            pks);
            else if (pks) {
                if (pf_ymap_get(pages, "max_pages"))
                    pf_ys_error(d, pf_ymap_get(pages, "max_pages"), PF_ECONFIG,
                                "max_pages belongs to pagination, not to pagination pages");
                load_pages(t, &t->pages, inner, pages, "pagination pages", d);
            }
            free(pks);
        }
    } else {
        load_pages(t, &t->pages, pk, pg, "pagination", d);
    }
    /* A paging parameter must not also be a fixed query parameter. */
    const char *names[2] = {t->pages.position_param, t->pages.size_param};
    for (size_t i = 0; i < 2; i++) {
        if (!names[i]) continue;
        for (size_t j = 0; j < t->nquery; j++)
            if (strcmp(t->query[j].name, names[i]) == 0)
                pf_ys_error(d, pg, PF_ECONFIG,
                            "query parameter '%s' is set by the pagination; remove it from "
                            "the request query",
                            names[i]);
        for (size_t j = 0; j < t->window.nquery; j++)
            if (strcmp(t->window.query[j].name, names[i]) == 0)
                pf_ys_error(d, pg, PF_ECONFIG,
                            "query parameter '%s' is set by both the windows and the pages",
                            names[i]);
    }
}

/* Loads auth kind (and headers) from AUTH; ALLOWED lists the keys the
 * mapping may hold (a flow's auth also has principal and secret). */
static void load_auth(pf_template *t, const pf_ynode *auth, const char *const *allowed,
                      const char *what, pf_diags *d)
{
    static const char *const auth_builtins[] = {"principal", "secret", NULL};
    pf_kv_free(t->auth_headers, t->nauth_headers);
    t->auth_headers = NULL;
    t->nauth_headers = 0;
    t->auth = PF_AUTH_NONE;
    t->auth_optional = 0;
    if (!auth) return;
    if (!pf_ys_want_map(auth, what, d)) return;
    if (allowed) pf_ys_check_keys(auth, allowed, what, d);
    const pf_ynode *kind = pf_ymap_get(auth, "kind"), *x;
    char *k = kind ? pf_ys_string(kind, "auth kind", d) : NULL;
    if (!k) {
        if (!kind) pf_ys_error(d, auth, PF_ECONFIG, "%s needs a kind (none, basic, headers)", what);
        return;
    }
    if (strcmp(k, "none") == 0)
        t->auth = PF_AUTH_NONE;
    else if (strcmp(k, "basic") == 0)
        t->auth = PF_AUTH_BASIC;
    else if (strcmp(k, "headers") == 0)
        t->auth = PF_AUTH_HEADERS;
    else
        pf_ys_error(d, kind, PF_ECONFIG, "unknown auth kind '%s' (expected none, basic, headers)",
                    k);
    free(k);
    const pf_ynode *h = pf_ymap_get(auth, "headers");
    if (t->auth == PF_AUTH_HEADERS) {
        if (!h)
            pf_ys_error(d, auth, PF_ECONFIG, "auth kind headers needs a headers mapping");
        else if (load_kv_map(h, "auth headers", &t->auth_headers, &t->nauth_headers, d) == 0)
            for (size_t i = 0; i < t->nauth_headers; i++)
                check_placeholders(t, pf_ymap_val(h, i), t->auth_headers[i].value, auth_builtins,
                                   d);
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

static void load_method(pf_template *t, const pf_ynode *x, pf_diags *d)
{
    free(t->method);
    t->method = x ? pf_ys_string(x, "method", d) : strdup("GET");
    if (!x && !t->method) pf_ys_error(d, NULL, PF_ENOMEM, "out of memory");
    if (t->method && !valid_method(t->method))
        pf_ys_error(d, x, PF_ECONFIG,
                    "method must be GET, POST, PUT, PATCH, DELETE or HEAD, not '%s'", t->method);
}

static void load_query_headers_body(pf_template *t, const pf_ynode *req, pf_diags *d)
{
    const pf_ynode *q = pf_ymap_get(req, "query"), *x;
    if (load_kv_map(q, "query", &t->query, &t->nquery, d) == 0)
        for (size_t i = 0; i < t->nquery; i++)
            check_placeholders(t, pf_ymap_val(q, i), t->query[i].value, NULL, d);
    const pf_ynode *h = pf_ymap_get(req, "headers");
    if (load_kv_map(h, "headers", &t->headers, &t->nheaders, d) == 0)
        for (size_t i = 0; i < t->nheaders; i++)
            check_placeholders(t, pf_ymap_val(h, i), t->headers[i].value, NULL, d);
    if ((x = pf_ymap_get(req, "body")) && (t->body = pf_ys_string(x, "body", d)))
        check_placeholders(t, x, t->body, NULL, d);
}

/* `quota: {pool: NAME, budget: N}`: the API allows N calls per credential
 * in any 24 hours, counted together for every template naming the pool. */
/* One quota entry Q into T->quotas. */
static void load_quota_entry(pf_template *t, const pf_ynode *q, pf_diags *d)
{
    static const char *const keys[] = {"pool", "budget", "when_set", NULL};
    if (!pf_ys_want_map(q, "quota", d)) return;
    pf_ys_check_keys(q, keys, "quota", d);
    pf_quota_def *e = &t->quotas[t->nquotas++];
    const pf_ynode *x;
    if (!(x = pf_ymap_get(q, "pool")) || !(e->pool = pf_ys_string(x, "quota.pool", d)))
        pf_ys_error(d, q, PF_ECONFIG, "quota needs a pool (the name of the call budget)");
    if (!(x = pf_ymap_get(q, "budget")))
        pf_ys_error(d, q, PF_ECONFIG, "quota needs a budget (calls per 24 hours)");
    else
        pf_ys_int(x, "quota.budget", 1, 10000000, &e->budget, d);
    if ((x = pf_ymap_get(q, "when_set")) && (e->when_set = pf_ys_string(x, "quota.when_set", d)) &&
        !pf_template_param(t, e->when_set))
        pf_ys_error(d, x, PF_ECONFIG, "quota.when_set: the template has no parameter '%s'",
                    e->when_set);
}

/* quota: {pool, budget}, or a list of {pool, budget, when_set} tried in
 * order (the first that applies to a flow is its budget). */
static void load_quota(pf_template *t, const pf_ynode *q, pf_diags *d)
{
    if (!q) return;
    size_t n = q->kind == PF_Y_SEQ ? q->count : 1;
    if (n == 0) return;
    t->quotas = calloc(n, sizeof *t->quotas);
    if (!t->quotas) {
        pf_ys_error(d, q, PF_ENOMEM, "out of memory");
        return;
    }
    if (q->kind == PF_Y_SEQ)
        for (size_t i = 0; i < n; i++)
            load_quota_entry(t, q->items[i], d);
    else
        load_quota_entry(t, q, d);
    pf_template_pick_quota(t, NULL, NULL);
}

void pf_template_pick_quota(pf_template *t, int (*is_set)(void *ud, const char *param), void *ud)
{
    t->quota_pool = NULL;
    t->quota_budget = 0;
    for (size_t i = 0; i < t->nquotas; i++) {
        const pf_quota_def *e = &t->quotas[i];
        if (!e->pool) continue;
        if (e->when_set && !(is_set && is_set(ud, e->when_set))) continue;
        t->quota_pool = e->pool;
        t->quota_budget = e->budget;
        return;
    }
}

pf_status pf_template_load_file(const char *path, pf_template **out, pf_diags *d)
{
    static const char *const top_keys[] = {"name",     "description", "manual",      "request",
                                           "auth",     "params",      "constraints", "streams",
                                           "response", "pagination",  "quota",       NULL};
    static const char *const req_keys[] = {"method",  "base_url", "path", "query",
                                           "headers", "body",     NULL};
    static const char *const auth_keys[] = {"kind", "headers", "optional", NULL};
    *out = NULL;
    size_t before = d->count;
    pf_template *t = calloc(1, sizeof *t);
    if (!t || !(t->file = strdup(path))) {
        free(t);
        pf_ys_error(d, NULL, PF_ENOMEM, "out of memory");
        return PF_ENOMEM;
    }
    t->max_pages = PF_DEFAULT_MAX_PAGES;
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
    int b;
    if ((x = pf_ymap_get(root, "manual")) && pf_ys_bool(x, "manual", &b, d) == 0) t->manual = b;

    /* Parameters first: placeholders elsewhere are checked against them. */
    load_params(t, pf_ymap_get(root, "params"), d);
    load_constraints(t, pf_ymap_get(root, "constraints"), d);

    const pf_ynode *req = pf_ymap_get(root, "request");
    if (t->manual) {
        /* The flow gives the request, auth, records and pagination. */
        static const char *const manual_forbidden[] = {"request",  "auth",       "streams",
                                                       "response", "pagination", NULL};
        for (const char *const *k = manual_forbidden; *k; k++)
            if ((x = pf_ymap_get(root, *k)))
                pf_ys_error(d, x, PF_ECONFIG,
                            "a manual template takes %s from the flow, not from the template", *k);
        t->method = strdup("GET");
        t->base_url = strdup("");
        t->path = strdup("/");
        t->streams = calloc(1, sizeof *t->streams);
        if (!t->method || !t->base_url || !t->path || !t->streams)
            pf_ys_error(d, root, PF_ENOMEM, "out of memory");
        else {
            pf_stream_def *s = &t->streams[t->nstreams++];
            if (!(s->name = strdup("records")) || !(s->path_text = strdup("$")))
                pf_ys_error(d, root, PF_ENOMEM, "out of memory");
            else
                s->path = compile_path(root, s->path_text, d);
            set_identity(s, root, d);
        }
    } else if (!req) {
        pf_ys_error(d, root, PF_ECONFIG, "template has no request");
    } else if (pf_ys_want_map(req, "request", d)) {
        pf_ys_check_keys(req, req_keys, "request", d);
        load_method(t, pf_ymap_get(req, "method"), d);
        if (!(x = pf_ymap_get(req, "base_url"))) {
            /* No fixed host (a customer's own server): the flow gives it. */
            if (!(t->base_url = strdup(""))) pf_ys_error(d, req, PF_ENOMEM, "out of memory");
        } else if ((t->base_url = pf_ys_string(x, "base_url", d))) {
            if (strncmp(t->base_url, "https://", 8) != 0 && strncmp(t->base_url, "http://", 7) != 0)
                pf_ys_error(d, x, PF_ECONFIG, "base_url must start with https:// or http://");
            check_placeholders(t, x, t->base_url, NULL, d);
        }
        if (!(x = pf_ymap_get(req, "path")))
            pf_ys_error(d, req, PF_ECONFIG, "request has no path");
        else if ((t->path = pf_ys_string(x, "path", d))) {
            if (t->path[0] != '/' && t->path[0] != '{')
                pf_ys_error(d, x, PF_ECONFIG, "path must start with /");
            check_placeholders(t, x, t->path, NULL, d);
            char name[128];
            const pf_param_def *p;
            if (t->path[0] == '{' && (!sole_placeholder(t->path, name, sizeof name) ||
                                      !(p = pf_template_param(t, name)) || !p->url_path))
                pf_ys_error(d, x, PF_ECONFIG,
                            "path must start with /, or be one {param} naming a url_path "
                            "parameter");
        }
        load_query_headers_body(t, req, d);
    }
    if (!t->manual) {
        load_auth(t, pf_ymap_get(root, "auth"), auth_keys, "auth", d);
        load_streams(t, pf_ymap_get(root, "streams"), d);
        load_response(t, pf_ymap_get(root, "response"), d);
        load_quota(t, pf_ymap_get(root, "quota"), d);
        load_pagination(t, pf_ymap_get(root, "pagination"), d);
    }

    if (d->count > before || d->oom) {
        pf_template_free(t);
        return d->count > before ? d->items[before].code : PF_ENOMEM;
    }
    *out = t;
    return PF_OK;
}

/* ---- what a flow adds ------------------------------------------------- */

/* Which ${VAR} values of a flow string are registered as secrets (see
 * flow/expand.h): none, all, or those in the query part of a URL. */
enum { SECRET_NONE, SECRET_ALL, SECRET_QUERY };

/* A flow value with its ${VAR} references expanded (as every flow value),
 * or NULL with a diagnostic positioned at the reference. SECRET says which
 * substituted values are registered for redaction. */
static char *flow_string(const pf_ynode *n, const char *what, int secret, pf_diags *d)
{
    char *raw = pf_ys_string(n, what, d);
    if (!raw) return NULL;
    pf_buf out;
    pf_buf_init(&out, 1u << 20);
    size_t off = 0;
    pf_error e;
    pf_error_clear(&e);
    char *res = NULL;
    size_t from = SIZE_MAX;
    if (secret == SECRET_ALL) {
        from = 0;
    } else if (secret == SECRET_QUERY) {
        const char *q = strchr(raw, '?');
        if (q) from = (size_t)(q - raw);
    }
    if (pf_expand_env_secret(raw, from, &out, &off, &e) != PF_OK) {
        int col = n->col + (int)off + (n->plain ? 0 : 1);
        pf_error ee;
        pf_error_at(&ee, e.code, n->file, n->line, col, "%s: %s", what, e.msg);
        pf_diags_add(d, &ee);
    } else if (!(res = pf_buf_steal(&out))) {
        pf_ys_error(d, n, PF_ENOMEM, "out of memory");
    }
    pf_buf_free(&out);
    free(raw);
    return res;
}

/* Registers VALUE as a credential (pf_log_add_secret) when NAME (LEN bytes)
 * is credential-like (pf_http_header_is_credential: api_key, X-Auth-Token,
 * ...); 0, or -1 when registration fails. */
static int register_if_credential(const char *name, size_t len, const char *value)
{
    if (!pf_http_header_is_credential(name, len)) return 0;
    return pf_log_add_secret(value);
}

/* Registers the values of the credential-like parameters of URL's query
 * part (the text after '?', up to '#'); 0, or -1 when registration fails. */
static int register_query_credentials(const char *url)
{
    const char *q = strchr(url, '?');
    if (!q) return 0;
    int rc = 0;
    for (const char *p = q + 1; *p && *p != '#';) {
        size_t plen = strcspn(p, "&#");
        const char *eq = memchr(p, '=', plen);
        if (eq && eq + 1 < p + plen) {
            char *v = strndup(eq + 1, (size_t)(p + plen - eq - 1));
            if (!v || register_if_credential(p, (size_t)(eq - p), v) != 0) rc = -1;
            if (v) explicit_bzero(v, strlen(v));
            free(v);
        }
        p += plen;
        if (*p == '&') p++;
    }
    return rc;
}

/* Replaces each value of KV (loaded from MAP) by its ${VAR} expansion; the
 * substituted values are redacted (weak secrets, see log.h), and the whole
 * value of a credential-like name (query parameter or header) is a
 * credential. */
static void expand_kv(pf_kv *kv, size_t n, const pf_ynode *map, const char *what, pf_diags *d)
{
    for (size_t i = 0; i < n && i < pf_ymap_size(map); i++) {
        char *v = flow_string(pf_ymap_val(map, i), what, SECRET_ALL, d);
        if (!v) continue;
        free(kv[i].value);
        kv[i].value = v;
        if (register_if_credential(kv[i].name, strlen(kv[i].name), v) != 0)
            pf_ys_error(d, pf_ymap_val(map, i), PF_ENOMEM,
                        "cannot register %s %s for log redaction", what, kv[i].name);
    }
}

/* Splits a manual flow's URL into T's base_url (scheme://authority) and path
 * (the rest, with literal braces doubled so they are not placeholders). */
static void load_manual_url(pf_template *t, const pf_ynode *n, pf_diags *d)
{
    char *url = flow_string(n, "source.url", SECRET_QUERY, d);
    if (!url) return;
    if (register_query_credentials(url) != 0)
        pf_ys_error(d, n, PF_ENOMEM, "cannot register source.url's credentials for log redaction");
    pf_error e;
    pf_error_clear(&e);
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        pf_ys_error(d, n, PF_ECONFIG, "source.url must start with https:// or http://");
    } else if (pf_http_url_check(url, &e) != PF_OK) {
        pf_ys_error(d, n, PF_ECONFIG, "source.url: %s", e.msg);
    } else if (strchr(url, '#')) {
        pf_ys_error(d, n, PF_ECONFIG, "source.url must not have a #fragment");
    } else {
        const char *auth = strstr(url, "://") + 3;
        size_t alen = strcspn(auth, "/?");
        const char *rest = auth + alen;
        size_t blen = (size_t)(rest - url);
        char *base = malloc(blen + 1);
        char *path = malloc(2 * strlen(rest) + 2);
        if (!base || !path) {
            free(base);
            free(path);
            pf_ys_error(d, n, PF_ENOMEM, "out of memory");
        } else {
            memcpy(base, url, blen);
            base[blen] = '\0';
            char *o = path;
            if (*rest != '/') *o++ = '/';
            for (const char *p = rest; *p; p++) {
                *o++ = *p;
                if (*p == '{' || *p == '}') *o++ = *p;
            }
            *o = '\0';
            free(t->base_url);
            free(t->path);
            t->base_url = base;
            t->path = path;
        }
    }
    free(url);
}

/* A copy of S with '{' and '}' doubled: literal text, not placeholders. */
static char *literal_braces(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += (*p == '{' || *p == '}') ? 2 : 1;
    char *o = malloc(n + 1), *q = o;
    if (!o) return NULL;
    for (const char *p = s; *p; p++) {
        *q++ = *p;
        if (*p == '{' || *p == '}') *q++ = *p;
    }
    *q = '\0';
    return o;
}

/* Makes *S literal (see literal_braces); 0, or -1 when out of memory. */
static int make_literal(char **s)
{
    if (!*s) return 0;
    char *l = literal_braces(*s);
    if (!l) return -1;
    free(*s);
    *s = l;
    return 0;
}

static void apply_manual(pf_template *t, const pf_ynode *src, pf_diags *d)
{
    static const char *const auth_keys[] = {"kind",   "headers",     "principal",
                                            "secret", "secret_file", NULL};
    const pf_ynode *x;
    if (!(x = pf_ymap_get(src, "url")))
        pf_ys_error(d, src, PF_ECONFIG,
                    "a manual flow needs source.url (the endpoint, e.g. "
                    "https://api.example.com/v1/items)");
    else
        load_manual_url(t, x, d);
    load_method(t, pf_ymap_get(src, "method"), d);
    pf_kv_free(t->query, t->nquery);
    pf_kv_free(t->headers, t->nheaders);
    free(t->body);
    t->query = t->headers = NULL;
    t->nquery = t->nheaders = 0;
    t->body = NULL;
    /* A manual request is literal text: braces in a JSON body or a header are
     * not placeholders. */
    const pf_ynode *x2;
    int oom = 0;
    const pf_ynode *qn = pf_ymap_get(src, "query"), *hn = pf_ymap_get(src, "headers");
    if (load_kv_map(qn, "query", &t->query, &t->nquery, d) == 0)
        expand_kv(t->query, t->nquery, qn, "query", d);
    if (load_kv_map(hn, "headers", &t->headers, &t->nheaders, d) == 0)
        expand_kv(t->headers, t->nheaders, hn, "headers", d);
    if ((x2 = pf_ymap_get(src, "body"))) t->body = flow_string(x2, "body", SECRET_ALL, d);
    for (size_t i = 0; i < t->nquery; i++)
        oom |= make_literal(&t->query[i].value);
    for (size_t i = 0; i < t->nheaders; i++)
        oom |= make_literal(&t->headers[i].value);
    oom |= make_literal(&t->body);
    if (oom) pf_ys_error(d, src, PF_ENOMEM, "out of memory");
    const pf_ynode *auth = pf_ymap_get(src, "auth");
    if (auth && auth->kind == PF_Y_MAP && !pf_ymap_get(auth, "kind")) {
        pf_ys_error(d, auth, PF_ECONFIG,
                    "a manual flow's auth needs a kind: basic (principal and secret), headers "
                    "(with headers: {Name: \"{secret}\"}) or none");
    } else if (auth) {
        load_auth(t, auth, auth_keys, "source.auth", d);
        if (t->auth_optional)
            pf_ys_error(d, pf_ymap_get(auth, "optional"), PF_ECONFIG,
                        "auth.optional is for templates");
    }
    /* One stream, "records". */
    pf_stream_def *s = &t->streams[0];
    const pf_ynode *rn = pf_ymap_get(src, "records"), *kn = pf_ymap_get(src, "key");
    if (rn) {
        char *text = pf_ys_string(rn, "source.records", d);
        pf_jsonpath *q = text ? compile_path(rn, text, d) : NULL;
        if (q) {
            free(s->path_text);
            pf_jsonpath_free(s->path);
            s->path_text = text;
            s->path = q;
        } else {
            free(text);
        }
    }
    load_key(s, kn, src, "source.key", d);
    load_response(t, pf_ymap_get(src, "response"), d);
    load_pagination(t, pf_ymap_get(src, "pagination"), d);
}

/* `streams: {name: {path: ..., key: ...}}` in a flow: replaces the named
 * streams' record and key paths. */
static void apply_stream_overrides(pf_template *t, const pf_ynode *ov, pf_diags *d)
{
    static const char *const keys[] = {"path", "key", NULL};
    if (!pf_ys_want_map(ov, "source.streams", d)) return;
    for (size_t i = 0; i < pf_ymap_size(ov); i++) {
        const pf_ynode *k = pf_ymap_key(ov, i), *v = pf_ymap_val(ov, i);
        pf_stream_def *s = NULL;
        for (size_t j = 0; j < t->nstreams; j++)
            if (strcmp(t->streams[j].name, k->value) == 0) s = &t->streams[j];
        if (!s) {
            char list[256] = "";
            size_t o = 0;
            for (size_t j = 0; j < t->nstreams && o < sizeof list; j++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "",
                                      t->streams[j].name);
            pf_ys_error(d, k, PF_ECONFIG, "template %s has no stream '%s' (streams: %s)", t->name,
                        k->value, list);
            continue;
        }
        if (!pf_ys_want_map(v, "a stream override", d)) continue;
        pf_ys_check_keys(v, keys, "a stream override", d);
        const pf_ynode *p = pf_ymap_get(v, "path"), *kk = pf_ymap_get(v, "key");
        if (p) {
            char *text = pf_ys_string(p, "path", d);
            pf_jsonpath *q = text ? compile_path(p, text, d) : NULL;
            if (q) {
                free(s->path_text);
                pf_jsonpath_free(s->path);
                s->path_text = text;
                s->path = q;
            } else {
                free(text);
            }
        }
        if (kk) load_key(s, kk, v, "key", d);
    }
}

pf_status pf_template_apply_flow(pf_template *t, const pf_ynode *src, pf_diags *d)
{
    static const char *const manual_keys[] = {"url",     "method", "headers",  "query",      "body",
                                              "records", "key",    "response", "pagination", NULL};
    size_t before = d->count;
    if (!src || src->kind != PF_Y_MAP) return PF_OK;
    if (t->manual) {
        const pf_ynode *ov = pf_ymap_get(src, "streams");
        if (ov)
            pf_ys_error(d, ov, PF_ECONFIG,
                        "a manual flow names its records with source.records and source.key, "
                        "not source.streams");
        apply_manual(t, src, d);
    } else {
        for (const char *const *k = manual_keys; *k; k++) {
            const pf_ynode *x = pf_ymap_get(src, *k);
            if (!x) continue;
            /* Point at the key, where the reader looks. */
            for (size_t i = 0; i < pf_ymap_size(src); i++)
                if (pf_ymap_val(src, i) == x) x = pf_ymap_key(src, i);
            pf_ys_error(d, x, PF_ECONFIG,
                        "source.%s is only used with template: manual (template %s declares its "
                        "own request)",
                        *k, t->name);
        }
        const pf_ynode *ov = pf_ymap_get(src, "streams");
        if (ov) apply_stream_overrides(t, ov, d);
    }
    if (d->oom) return PF_ENOMEM;
    return d->count > before ? d->items[before].code : PF_OK;
}

/* ---- search path ------------------------------------------------------ */

static int looks_like_path(const char *name)
{
    size_t n = strlen(name);
    return strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static pf_status template_dirs(char ***dirs, size_t *n);

pf_status pf_template_dirs(char ***dirs, size_t *n)
{
    return template_dirs(dirs, n);
}

/* Fills DIRS with the search directories (caller frees with pf_paths_free). */
static pf_status template_dirs(char ***dirs, size_t *n)
{
    return pf_paths_search_dirs("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_TEMPLATE_DIR,
                                PPFLOW_TEMPLATE_INSTALL_DIR, dirs, n);
}

/* The name of the template (in the search path) closest to NAME, into
 * OUT (size N; "" when none is close, see pf_did_you_mean). */
static void closest_template(const char *name, char *out, size_t n)
{
    out[0] = '\0';
    char **paths = NULL;
    size_t count = 0;
    pf_error e;
    if (pf_template_list(&paths, &count, &e) != PF_OK) return;
    const char **names = calloc(count ? count : 1, sizeof *names);
    char (*base)[128] = calloc(count ? count : 1, sizeof *base);
    if (names && base) {
        for (size_t i = 0; i < count; i++) {
            const char *b = strrchr(paths[i], '/');
            b = b ? b + 1 : paths[i];
            size_t l = strlen(b);
            if (l > 5 && strcmp(b + l - 5, ".yaml") == 0) l -= 5;
            if (l >= sizeof base[i]) continue;
            memcpy(base[i], b, l);
            base[i][l] = '\0';
            names[i] = base[i];
        }
        const char *near = pf_did_you_mean(name, names, count);
        if (near) snprintf(out, n, "%s", near);
    }
    free(names);
    free(base);
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
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
        if (access(path, F_OK) != 0) continue; /* the load says why it cannot read it */
        pf_paths_free(dirs, ndirs);
        return pf_template_load_file(path, out, d);
    }
    pf_paths_free(dirs, ndirs);
notfound:;
    pf_error e;
    char near[128];
    closest_template(name, near, sizeof near);
    pf_error_set(&e, PF_ENOTFOUND,
                 "no template named '%s'%s%s%s (see `ppflow templates`; PPFLOW_TEMPLATE_PATH "
                 "adds directories)",
                 name, near[0] ? "; did you mean '" : "", near, near[0] ? "'?" : "");
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
    if (template_dirs(&dirs, &ndirs) != PF_OK) return pf_error_set(err, PF_ENOMEM, "out of memory");
    char **v = NULL;
    size_t n = 0, alloc = 0;
    pf_status st = PF_OK;
    for (size_t i = 0; i < ndirs && st == PF_OK; i++) {
        DIR *dir = opendir(dirs[i]);
        if (!dir) continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            size_t l = strlen(de->d_name);
            if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0 || de->d_name[0] == '.') continue;
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
