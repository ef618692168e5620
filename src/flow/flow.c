/* flow.c: loading and validating flow files (and completing their template
 * from the flow: manual requests, stream overrides, parameter constraints,
 * streams chosen by `when`, response format, base URL, page cap). */
#include "flow/flow.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "flow/expand.h"
#include "flow/yschema.h"
#include "http/http.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

#define SECRET_FILE_MAX 65536

void pf_flow_free(pf_flow *f)
{
    if (!f) return;
    free(f->file);
    free(f->name);
    pf_template_free(f->tmpl);
    free(f->base_url);
    free(f->local_file);
    free(f->clear_credentials);
    free(f->principal);
    if (f->secret) {
        explicit_bzero(f->secret, strlen(f->secret));
        free(f->secret);
    }
    for (size_t i = 0; i < f->nparams; i++) {
        for (size_t j = 0; j < f->params[i].count; j++) {
            char *v = f->params[i].values[j]; /* wiped: a parameter may be secret */
            if (v) explicit_bzero(v, strlen(v));
            free(v);
        }
        free(f->params[i].values);
    }
    free(f->params);
    free(f->http.ca_file);
    free(f->http.client_cert);
    free(f->http.client_key);
    pf_sink_config_free(&f->sink);
    free(f->state_path);
    pf_schedule_free(f->schedule);
    pf_ydoc_free(f->doc);
    free(f);
}

const pf_param_value *pf_flow_param(const pf_flow *f, const char *name)
{
    for (size_t i = 0; i < f->nparams; i++)
        if (strcmp(f->params[i].def->name, name) == 0) return &f->params[i];
    return NULL;
}

const char *pf_flow_param_str(const pf_flow *f, const char *name)
{
    const pf_param_value *v = pf_flow_param(f, name);
    return v && v->count ? v->values[0] : NULL;
}

/* pf_template_pick_quota's test: the flow (UD) sets parameter NAME. */
static int param_is_set(void *ud, const char *name)
{
    return pf_flow_param_str(ud, name) != NULL;
}

const char *pf_param_check(const pf_param_def *p, const char *text)
{
    int64_t a, b;
    char *end;
    switch (p->type) {
    case PF_PT_STRING:
        return p->url_path ? pf_url_path_check(text) : NULL;
    case PF_PT_INTEGER: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno || isspace((unsigned char)*text)) return "an integer";
        if ((p->has_min && v < p->min) || (p->has_max && v > p->max)) return "within bounds";
        return NULL;
    }
    case PF_PT_BOOLEAN:
        return strcmp(text, "true") == 0 || strcmp(text, "false") == 0 ? NULL : "true or false";
    case PF_PT_DATETIME:
        return pf_time_parse(text, &a, NULL) == PF_OK
                   ? NULL
                   : "an ISO 8601 date-time such as 2026-11-22T00:00:00Z";
    case PF_PT_DURATION:
        if (pf_duration_parse(text, &a, NULL) != PF_OK) return "a duration such as 30s, 5m, PT1H";
        if ((p->has_min && a < p->min) || (p->has_max && a > p->max)) return "within bounds";
        return NULL;
    case PF_PT_INTERVAL:
        if (pf_interval_parse(text, &a, &b, NULL) != PF_OK)
            return "an ISO 8601 interval such as 2026-11-22T00:00:00Z/2026-11-22T06:00:00Z";
        return b > a ? NULL : "an interval whose end is after its start";
    case PF_PT_ENUM:
    case PF_PT_LIST:
        if (p->nvalues == 0) return NULL;
        for (size_t i = 0; i < p->nvalues; i++)
            if (strcmp(p->values[i], text) == 0) return NULL;
        return "one of the allowed values";
    }
    return NULL;
}

/* Expands ${VAR} in node N's scalar into a new string, or NULL with a diagnostic. */
static char *expand_node(const pf_ynode *n, const char *what, pf_diags *d)
{
    char *raw = pf_ys_string(n, what, d);
    if (!raw) return NULL;
    pf_buf out;
    pf_buf_init(&out, 1u << 20);
    size_t off = 0;
    pf_error e;
    pf_error_clear(&e);
    if (pf_expand_env(raw, &out, &off, &e) != PF_OK) {
        int col = n->col + (int)off + (n->plain ? 0 : 1);
        char msg[PF_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", e.msg);
        pf_error_at(&e, e.code, n->file, n->line, col, "%s: %s", what, msg);
        pf_diags_add(d, &e);
        pf_buf_free(&out);
        free(raw);
        return NULL;
    }
    free(raw);
    return pf_buf_steal(&out);
}

static void describe_allowed(const pf_param_def *p, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    if (p->nvalues) {
        o += (size_t)snprintf(buf + o, n - o, " (one of:");
        for (size_t i = 0; i < p->nvalues && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, " %s", p->values[i]);
        if (o < n) snprintf(buf + o, n - o, ")");
    } else if (p->has_min || p->has_max) {
        char lo[32] = "-inf", hi[32] = "+inf";
        if (p->has_min) snprintf(lo, sizeof lo, "%lld", (long long)p->min);
        if (p->has_max) snprintf(hi, sizeof hi, "%lld", (long long)p->max);
        snprintf(buf, n, " (between %s and %s)", lo, hi);
    }
}

static void load_params(pf_flow *f, const pf_ynode *params, pf_diags *d)
{
    const pf_template *t = f->tmpl;
    f->params = calloc(t->nparams ? t->nparams : 1, sizeof *f->params);
    if (!f->params) {
        pf_ys_error(d, params, PF_ENOMEM, "out of memory");
        return;
    }
    if (params && !pf_ys_want_map(params, "source.params", d)) params = NULL;
    /* Unknown parameter names. */
    for (size_t i = 0; i < pf_ymap_size(params); i++) {
        const pf_ynode *k = pf_ymap_key(params, i);
        if (!pf_template_param(t, k->value)) {
            char list[512] = "";
            size_t o = 0;
            for (size_t j = 0; j < t->nparams && o < sizeof list; j++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "",
                                      t->params[j].name);
            pf_ys_error(d, k, PF_ECONFIG, "template %s has no parameter '%s' (parameters: %s)",
                        t->name, k->value, t->nparams ? list : "none");
        }
    }
    for (size_t i = 0; i < t->nparams; i++) {
        const pf_param_def *p = &t->params[i];
        const pf_ynode *v = pf_ymap_get(params, p->name);
        if (v && pf_ynode_is_null(v)) v = NULL;
        pf_param_value *pv = &f->params[f->nparams];
        pv->def = p;
        if (!v) {
            if (p->required) {
                pf_ys_error(d, params ? params : f->doc->root, PF_ECONFIG,
                            "missing required parameter '%s' for template %s%s%s", p->name, t->name,
                            p->description ? ": " : "", p->description ? p->description : "");
                continue;
            }
            if (!p->ndefaults) continue;
            pv->values = calloc(p->ndefaults, sizeof *pv->values);
            if (!pv->values) continue;
            for (size_t j = 0; j < p->ndefaults; j++)
                if ((pv->values[j] = strdup(p->defaults[j]))) pv->count++;
            pv->from_default = 1;
            f->nparams++;
            continue;
        }
        size_t count = v->kind == PF_Y_SEQ ? v->count : 1;
        if (v->kind == PF_Y_SEQ && p->type != PF_PT_LIST) {
            pf_ys_error(d, v, PF_ECONFIG, "parameter '%s' takes one %s value, not a list", p->name,
                        pf_param_type_name(p->type));
            continue;
        }
        if (v->kind == PF_Y_MAP) {
            pf_ys_error(d, v, PF_ECONFIG, "parameter '%s' must be a %s, not a mapping", p->name,
                        pf_param_type_name(p->type));
            continue;
        }
        pv->values = calloc(count ? count : 1, sizeof *pv->values);
        if (!pv->values) continue;
        int bad = 0;
        for (size_t j = 0; j < count; j++) {
            const pf_ynode *item = v->kind == PF_Y_SEQ ? v->items[j] : v;
            char *s = expand_node(item, p->name, d);
            if (!s) {
                bad = 1;
                continue;
            }
            /* A parameter the template declares secret is redacted, whatever
             * the origin of its value. */
            if (p->secret && pf_log_add_secret(s) != 0) {
                pf_ys_error(d, item, PF_ENOMEM,
                            "cannot register parameter '%s' for log redaction", p->name);
                explicit_bzero(s, strlen(s));
                free(s);
                bad = 1;
                continue;
            }
            const char *problem = pf_param_check(p, s);
            if (problem) {
                char allowed[256];
                describe_allowed(p, allowed, sizeof allowed);
                if (p->secret)
                    pf_ys_error(d, item, PF_ECONFIG,
                                "parameter '%s' must be %s%s (its value is a secret: not shown)",
                                p->name, problem, allowed);
                else
                    pf_ys_error(d, item, PF_ECONFIG, "parameter '%s' must be %s%s, not '%s'",
                                p->name, problem, allowed, s);
                if (p->secret) explicit_bzero(s, strlen(s));
                free(s);
                bad = 1;
                continue;
            }
            pv->values[pv->count++] = s;
        }
        f->nparams++;
        if (bad) continue;
    }
}

/* For time-window templates: the range starts from at most one of
 * since_time, since_seconds and interval; interval already has an end. */
static void check_window_params(pf_flow *f, const pf_ynode *params, pf_diags *d)
{
    static const char *const starts[] = {"since_time", "since_seconds", "interval"};
    if (f->tmpl->paging != PF_PAGING_TIME_WINDOW) return;
    const char *first = NULL;
    for (size_t i = 0; i < 3; i++) {
        const pf_param_value *v = pf_flow_param(f, starts[i]);
        if (!v || v->from_default) continue;
        if (first) {
            const pf_ynode *n = pf_ymap_get(params, starts[i]);
            pf_ys_error(d, n ? n : params, PF_ECONFIG,
                        "give only one of since_time, since_seconds and interval (%s is "
                        "already set)",
                        first);
        } else {
            first = starts[i];
        }
    }
    const pf_param_value *iv = pf_flow_param(f, "interval"), *uv = pf_flow_param(f, "until");
    if (iv && !iv->from_default && uv && !uv->from_default) {
        const pf_ynode *n = pf_ymap_get(params, "until");
        pf_ys_error(d, n ? n : params, PF_ECONFIG,
                    "until cannot be combined with interval (the interval has its own end)");
    }
}

/* The node of parameter NAME in PARAMS (its value), or FALLBACK. */
static const pf_ynode *param_node(const pf_ynode *params, const char *name,
                                  const pf_ynode *fallback)
{
    const pf_ynode *n = pf_ymap_get(params, name);
    return n ? n : fallback;
}

static void join_names(char *const *names, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
}

/* The template's constraints between parameters. WHERE is the node reported
 * when no parameter node fits (source.params, or source). */
static void check_constraints(pf_flow *f, const pf_ynode *params, const pf_ynode *where,
                              pf_diags *d)
{
    const pf_template *t = f->tmpl;
    for (size_t i = 0; i < t->nconstraints; i++) {
        const pf_constraint *c = &t->constraints[i];
        char list[256];
        join_names(c->params, c->nparams, list, sizeof list);
        if (c->kind == PF_CONSTRAINT_REQUIRES) {
            const pf_param_value *a = pf_flow_param(f, c->params[0]);
            if (a && !a->from_default && !pf_flow_param(f, c->params[1]))
                pf_ys_error(d, param_node(params, c->params[0], where), PF_ECONFIG,
                            "parameter '%s' needs '%s' (template %s)", c->params[0], c->params[1],
                            t->name);
            continue;
        }
        const char *first = NULL;
        size_t set = 0;
        for (size_t j = 0; j < c->nparams; j++) {
            if (!pf_flow_param(f, c->params[j])) continue;
            if (set++ == 0) {
                first = c->params[j];
                continue;
            }
            pf_ys_error(d, param_node(params, c->params[j], where), PF_ECONFIG,
                        "give only one of %s (%s is already set; template %s)", list, first,
                        t->name);
        }
        if (set == 0 && c->kind == PF_CONSTRAINT_EXACTLY_ONE)
            pf_ys_error(d, where, PF_ECONFIG, "give exactly one of %s (template %s)", list,
                        t->name);
    }
}

/* Keeps only the streams whose `when` matches the flow's parameters.
 * REPORT_ONLY_ONCE: a parameter problem was already reported; an empty
 * stream list then follows from it and is not reported again. */
static void choose_streams(pf_flow *f, const pf_ynode *where, int report_only_once, pf_diags *d)
{
    pf_template *t = f->tmpl;
    size_t before = t->nstreams;
    char why[128] = "";
    const char *val = NULL;
    for (size_t i = t->nstreams; i-- > 0;) {
        const pf_stream_def *s = &t->streams[i];
        if (!s->when_param) continue;
        const char *v = pf_flow_param_str(f, s->when_param);
        int keep = 0;
        for (size_t j = 0; v && j < s->nwhen_values; j++)
            if (strcmp(s->when_values[j], v) == 0) keep = 1;
        if (!keep) {
            snprintf(why, sizeof why, "%s", s->when_param);
            val = v; /* owned by the flow's parameters, not by the stream */
            pf_template_drop_stream(t, i);
        }
    }
    if (before && t->nstreams == 0 && !report_only_once)
        pf_ys_error(d, where, PF_ECONFIG, "no stream of template %s applies when %s is %s", t->name,
                    why, val ? val : "not set");
}

/* Fills the placeholders of the template's base URL. Values go into the host
 * name, so they may hold only letters, digits, '.', '-' and '_'. */
static char *expand_base_url(pf_flow *f, const pf_ynode *params, const pf_ynode *where, pf_diags *d)
{
    const char *s = f->tmpl->base_url;
    pf_buf out;
    pf_buf_init(&out, 8192);
    int bad = 0;
    for (const char *p = s; *p && !bad; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (pf_buf_putc(&out, *p) != PF_OK) bad = 2;
            p++;
            continue;
        }
        if (*p != '{') {
            if (pf_buf_putc(&out, *p) != PF_OK) bad = 2;
            continue;
        }
        const char *e = strchr(p, '}');
        char name[128];
        size_t l = e ? (size_t)(e - p - 1) : 0;
        if (!e || l >= sizeof name) {
            bad = 1;
            break;
        }
        memcpy(name, p + 1, l);
        name[l] = '\0';
        const char *v = pf_flow_param_str(f, name);
        if (!v) {
            pf_ys_error(d, where, PF_ECONFIG,
                        "the server of template %s (%s) needs parameter '%s', or set "
                        "source.base_url",
                        f->tmpl->name, s, name);
            bad = 1;
            break;
        }
        for (const char *q = v; *q; q++)
            if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '-' || *q == '_')) {
                pf_ys_error(d, param_node(params, name, where), PF_ECONFIG,
                            "parameter '%s' is part of the server's host name and may hold only "
                            "letters, digits, '.', '-' and '_'",
                            name);
                bad = 1;
                break;
            }
        if (!bad && (!*v || pf_buf_puts(&out, v) != PF_OK)) bad = *v ? 2 : 1;
        p = e;
    }
    if (bad == 2) pf_ys_error(d, where, PF_ENOMEM, "out of memory");
    if (bad) {
        pf_buf_free(&out);
        return NULL;
    }
    return pf_buf_steal(&out);
}

/* Reads a secret file, refusing one that other users can read. */
static char *read_secret_file(const pf_ynode *n, const char *path, pf_diags *d)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        pf_ys_error(d, n, PF_ECONFIG, "cannot read secret_file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        pf_ys_error(d, n, PF_ECONFIG,
                    "secret_file %s is accessible by group or others (mode %03o); chmod 600 it",
                    path, (unsigned)(st.st_mode & 0777));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    pf_error e;
    if (pf_read_file(path, SECRET_FILE_MAX, &text, &len, &e) != PF_OK) {
        pf_ys_error(d, n, PF_ECONFIG, "secret_file: %s", e.msg);
        return NULL;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    return text;
}

/* Whether header value S uses placeholder {NAME}. */
static int uses_placeholder(const char *s, const char *name)
{
    char pat[32];
    snprintf(pat, sizeof pat, "{%s}", name);
    return strstr(s, pat) != NULL;
}

static void load_auth(pf_flow *f, const pf_ynode *auth, pf_diags *d)
{
    static const char *const keys[] = {"principal", "secret", "secret_file", NULL};
    static const char *const manual_keys[] = {"principal", "secret",  "secret_file",
                                              "kind",      "headers", NULL};
    if (!auth) {
        if (f->tmpl->auth != PF_AUTH_NONE && !f->tmpl->auth_optional && !f->local_file)
            pf_ys_error(d, pf_ymap_get(f->doc->root, "source"), PF_ECONFIG,
                        "template %s needs credentials: add source.auth with principal and "
                        "secret (e.g. secret: ${PP_SECRET})",
                        f->tmpl->name);
        return;
    }
    if (!pf_ys_want_map(auth, "source.auth", d)) return;
    pf_ys_check_keys(auth, f->tmpl->manual ? manual_keys : keys, "source.auth", d);
    const pf_ynode *x;
    if ((x = pf_ymap_get(auth, "principal"))) f->principal = expand_node(x, "auth.principal", d);
    const pf_ynode *sec = pf_ymap_get(auth, "secret"), *sf = pf_ymap_get(auth, "secret_file");
    if (sec && sf) {
        pf_ys_error(d, sf, PF_ECONFIG, "give either auth.secret or auth.secret_file, not both");
    } else if (sec) {
        if (sec->kind == PF_Y_SCALAR && !pf_expand_has_ref(sec->value))
            pf_ys_error(d, sec, PF_ECONFIG,
                        "auth.secret must come from the environment (${VAR}) or a secret_file, "
                        "not be written in the flow file");
        else
            f->secret = expand_node(sec, "auth.secret", d);
    } else if (sf) {
        char *path = expand_node(sf, "auth.secret_file", d);
        if (path) f->secret = read_secret_file(sf, path, d);
        free(path);
    }
    /* An empty secret (a variable set to "", an empty file) is as wrong as
     * a missing one: it would send an empty password and fail with a 401. */
    if (f->secret && !f->secret[0]) {
        pf_ys_error(d, sec ? sec : sf, PF_ECONFIG,
                    sec ? "auth.secret is empty (its environment variable is set, to an empty "
                          "value)"
                        : "auth.secret_file is empty");
        free(f->secret);
        f->secret = NULL;
    }
    if (f->secret && pf_log_add_secret(f->secret) != 0)
        pf_ys_error(d, sec ? sec : sf, PF_ENOMEM, "cannot register auth.secret for log redaction");
    if (f->tmpl->auth == PF_AUTH_BASIC && !f->local_file &&
        (!pf_ymap_get(auth, "principal") || (!sec && !sf)) && !f->tmpl->auth_optional)
        pf_ys_error(d, auth, PF_ECONFIG,
                    "template %s uses HTTP Basic auth: give principal and "
                    "secret",
                    f->tmpl->name);
    if (f->tmpl->auth == PF_AUTH_HEADERS && !f->local_file && !f->tmpl->auth_optional) {
        for (size_t i = 0; i < f->tmpl->nauth_headers; i++) {
            const char *v = f->tmpl->auth_headers[i].value;
            if ((uses_placeholder(v, "secret") && !sec && !sf) ||
                (uses_placeholder(v, "principal") && !pf_ymap_get(auth, "principal")))
                pf_ys_error(d, auth, PF_ECONFIG,
                            "template %s sends header %s from {%s}: give source.auth.%s",
                            f->tmpl->name, f->tmpl->auth_headers[i].name,
                            uses_placeholder(v, "secret") && !sec && !sf ? "secret" : "principal",
                            uses_placeholder(v, "secret") && !sec && !sf ? "secret (or "
                                                                           "secret_file)"
                                                                         : "principal");
        }
    }
}

/* ---- credentials in clear --------------------------------------------- */

/* Appends ", WHAT" (or WHAT first) to BUF (size N), marking a cut with "...". */
static void list_add(char *buf, size_t n, const char *what)
{
    size_t o = strlen(buf);
    if (o + 1 >= n) return;
    int w = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", what);
    if (w < 0 || (size_t)w >= n - o) snprintf(buf + (n > 4 ? n - 4 : 0), n > 4 ? 4 : n, "...");
}

/* Describes the credentials F sends with each request into BUF (size N):
 * Basic auth, auth headers (those whose {secret}/{principal} the flow gives,
 * or without them), other headers and query parameters with a
 * credential-like name (pf_http_header_is_credential: api_key, token, ...),
 * and secret parameters the flow sets. "" when it sends none. A credential
 * in a request body, or in a query parameter with a plain name, is not
 * seen. */
static void describe_credentials(const pf_flow *f, char *buf, size_t n)
{
    const pf_template *t = f->tmpl;
    char item[192];
    buf[0] = '\0';
    if (t->auth == PF_AUTH_BASIC && f->principal) list_add(buf, n, "auth: basic");
    if (t->auth == PF_AUTH_HEADERS) {
        for (size_t i = 0; i < t->nauth_headers; i++) {
            const char *v = t->auth_headers[i].value;
            if ((uses_placeholder(v, "secret") && !f->secret) ||
                (uses_placeholder(v, "principal") && !f->principal))
                continue; /* not sent: the request leaves it out */
            snprintf(item, sizeof item, "auth: headers (%.64s)", t->auth_headers[i].name);
            list_add(buf, n, item);
        }
    }
    for (size_t i = 0; i < t->nheaders; i++) {
        if (!pf_http_header_is_credential(t->headers[i].name, strlen(t->headers[i].name))) continue;
        snprintf(item, sizeof item, "header %.64s", t->headers[i].name);
        list_add(buf, n, item);
    }
    for (size_t i = 0; i < t->nquery; i++) {
        if (!pf_http_header_is_credential(t->query[i].name, strlen(t->query[i].name))) continue;
        snprintf(item, sizeof item, "query parameter %.64s", t->query[i].name);
        list_add(buf, n, item);
    }
    /* Parameters written into the URL's query part (a manual flow's url). */
    const char *q = t->path ? strchr(t->path, '?') : NULL;
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t plen = strcspn(p, "&");
        const char *eq = memchr(p, '=', plen);
        size_t nlen = eq ? (size_t)(eq - p) : plen;
        if (nlen && pf_http_header_is_credential(p, nlen)) {
            snprintf(item, sizeof item, "query parameter %.*s", (int)(nlen > 64 ? 64 : nlen), p);
            list_add(buf, n, item);
        }
        p += plen;
        if (*p == '&') p++;
    }
    for (size_t i = 0; i < f->nparams; i++) {
        if (!f->params[i].def->secret || !f->params[i].count) continue;
        snprintf(item, sizeof item, "secret parameter %.64s", f->params[i].def->name);
        list_add(buf, n, item);
    }
}

/* Credentials never travel in clear: a flow whose requests go to an http://
 * URL with credentials is refused, unless source.allow_insecure_http says
 * otherwise (then F->clear_credentials names them, for the warning of each
 * run). The position is the URL the flow gives (source.base_url or
 * source.url), else its auth, else its source. Loopback addresses are no
 * exception: what a test mock or a local proxy needs is the explicit key. */
static void check_clear_credentials(pf_flow *f, const pf_ynode *src, pf_diags *d)
{
    if (!f->tmpl || !f->base_url || f->local_file || strncasecmp(f->base_url, "http://", 7) != 0)
        return;
    char what[512];
    describe_credentials(f, what, sizeof what);
    if (!what[0]) return;
    if (f->allow_insecure_http) {
        if (!(f->clear_credentials = strdup(what)))
            pf_ys_error(d, src, PF_ENOMEM, "out of memory");
        return;
    }
    const pf_ynode *at = pf_ymap_get(src, f->tmpl->manual ? "url" : "base_url");
    if (!at) at = pf_ymap_get(src, "auth");
    if (!at) at = src;
    char shown[512];
    pf_http_url_for_log(f->base_url, shown, sizeof shown);
    size_t l = strlen(shown);
    if (l && shown[l - 1] == '/') shown[--l] = '\0';
    pf_ys_error(d, at, PF_ECONFIG,
                "the flow sends credentials (%s) to %s/...: refused because they would travel "
                "in clear; use https, or set source.allow_insecure_http: true",
                what, shown);
}

void pf_flow_warn_insecure(const pf_flow *f)
{
    if (!f || !f->clear_credentials) return;
    char shown[512];
    pf_http_url_for_log(f->base_url, shown, sizeof shown);
    pf_log_warn("credentials travel in clear (insecure): the flow sends %s over http to %s "
                "(source.allow_insecure_http is true); anyone on the network path can read them",
                f->clear_credentials, shown);
}

static void load_http(pf_flow *f, const pf_ynode *http, pf_diags *d)
{
    static const char *const keys[] = {"connect_timeout",
                                       "timeout",
                                       "stall_timeout",
                                       "max_attempts",
                                       "backoff",
                                       "backoff_max",
                                       "retry_after_max",
                                       "max_body",
                                       "max_record",
                                       "verify_tls",
                                       "ca_file",
                                       "client_cert",
                                       "client_key",
                                       NULL};
    pf_flow_http *h = &f->http;
    h->connect_timeout_ms = 10000;
    h->timeout_ms = 300000;
    h->low_speed_time_ms = 60000;
    h->backoff_ms = 1000;
    h->backoff_max_ms = 60000;
    h->retry_after_max_ms = 900000;
    h->max_attempts = 5;
    h->max_body = 256u << 20;
    h->max_record = 16u << 20;
    h->verify_tls = 1;
    if (!http || !pf_ys_want_map(http, "source.http", d)) return;
    pf_ys_check_keys(http, keys, "source.http", d);
    const pf_ynode *x;
    if ((x = pf_ymap_get(http, "connect_timeout")))
        pf_ys_duration(x, "connect_timeout", &h->connect_timeout_ms, d);
    if ((x = pf_ymap_get(http, "timeout"))) pf_ys_duration(x, "timeout", &h->timeout_ms, d);
    if ((x = pf_ymap_get(http, "stall_timeout")))
        pf_ys_duration(x, "stall_timeout", &h->low_speed_time_ms, d);
    if ((x = pf_ymap_get(http, "backoff"))) pf_ys_duration(x, "backoff", &h->backoff_ms, d);
    if ((x = pf_ymap_get(http, "backoff_max")))
        pf_ys_duration(x, "backoff_max", &h->backoff_max_ms, d);
    if ((x = pf_ymap_get(http, "retry_after_max")))
        pf_ys_duration(x, "retry_after_max", &h->retry_after_max_ms, d);
    if ((x = pf_ymap_get(http, "max_attempts")))
        pf_ys_int(x, "max_attempts", 1, 100, &h->max_attempts, d);
    if ((x = pf_ymap_get(http, "max_body"))) pf_ys_size(x, "max_body", &h->max_body, d);
    if ((x = pf_ymap_get(http, "max_record"))) pf_ys_size(x, "max_record", &h->max_record, d);
    if ((x = pf_ymap_get(http, "verify_tls"))) pf_ys_bool(x, "verify_tls", &h->verify_tls, d);
    if ((x = pf_ymap_get(http, "ca_file"))) h->ca_file = expand_node(x, "ca_file", d);
    if ((x = pf_ymap_get(http, "client_cert"))) h->client_cert = expand_node(x, "client_cert", d);
    if ((x = pf_ymap_get(http, "client_key"))) h->client_key = expand_node(x, "client_key", d);
}

static void load_sink(pf_flow *f, const pf_ynode *sink, pf_diags *d)
{
    if (!sink) {
        pf_ys_error(d, f->doc->root, PF_ECONFIG,
                    "flow has no sink (e.g. sink: {type: ndjson, "
                    "path: out/records.ndjson})");
        return;
    }
    if (!pf_ys_want_map(sink, "sink", d)) return;
    const pf_ynode *type = pf_ymap_get(sink, "type");
    if (!type) {
        pf_ys_error(d, sink, PF_ECONFIG, "sink has no type (see `ppflow sinks`)");
        return;
    }
    char *tname = pf_ys_string(type, "sink type", d);
    if (!tname) return;
    /* `plugin_dir`: an extra directory searched first for the sink plugin,
     * relative to the flow file. */
    const pf_ynode *pd = pf_ymap_get(sink, "plugin_dir");
    char *pdir = pd ? pf_ys_string(pd, "sink plugin_dir", d) : NULL;
    char pdir_abs[4096] = "";
    if (pdir) {
        const char *slash = pdir[0] == '/' ? NULL : strrchr(f->doc->file, '/');
        snprintf(pdir_abs, sizeof pdir_abs, "%.*s%s%s", slash ? (int)(slash - f->doc->file) : 0,
                 f->doc->file, slash ? "/" : "", pdir);
        free(pdir);
    }
    pf_error e;
    pf_error_clear(&e);
    const pf_sink_descriptor *desc = pf_sink_find_in(tname, pdir_abs[0] ? pdir_abs : NULL, &e);
    free(tname);
    if (!desc) {
        pf_ys_error(d, type, e.code, "%s", e.msg);
        return;
    }
    pf_sink_config_load(desc, sink, f->name, &f->sink, d);
}

static int valid_flow_name(const char *s)
{
    if (!*s || strlen(s) > 128) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.')) return 0;
    return 1;
}

/* Applies one --set override to the document tree. */
static pf_status apply_override(pf_ydoc *doc, const pf_flow_override *o, int index, pf_diags *d)
{
    char path[512];
    if (strchr(o->name, '.'))
        snprintf(path, sizeof path, "%s", o->name);
    else
        snprintf(path, sizeof path, "source.params.%s", o->name);
    pf_ynode *node = doc->root;
    char *save = NULL;
    char *part = strtok_r(path, ".", &save);
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        if (!node || node->kind != PF_Y_MAP) {
            pf_error e;
            pf_error_at(&e, PF_ECONFIG, "--set", index, 1,
                        "cannot set '%s': its parent is not a "
                        "mapping",
                        o->name);
            pf_diags_add(d, &e);
            return PF_ECONFIG;
        }
        if (!next) {
            /* Errors about this key or value point at the command line. */
            pf_ynode *v = pf_ynode_new_scalar("--set", index, (int)strlen(o->name) + 2, o->value);
            if (!v) return PF_ENOMEM;
            pf_ynode *old = pf_ymap_get(node, part);
            if (pf_ymap_set(node, part, v) != PF_OK) {
                pf_ynode_free(v);
                return PF_ENOMEM;
            }
            if (!old) {
                /* A new key: its node (created by pf_ymap_set) points at --set too. */
                pf_ynode *k = node->items[node->count - 2];
                k->file = "--set";
                k->line = index;
                k->col = 1;
            }
            break;
        }
        pf_ynode *child = pf_ymap_get(node, part);
        if (!child) {
            child = pf_ynode_new_map("--set", index, 1);
            if (!child || pf_ymap_set(node, part, child) != PF_OK) {
                pf_ynode_free(child);
                return PF_ENOMEM;
            }
        }
        node = child;
        part = next;
    }
    return PF_OK;
}

pf_status pf_flow_load(const char *path, const pf_flow_override *sets, size_t nsets, pf_flow **out,
                       pf_diags *d)
{
    static const char *const top_keys[] = {"name",  "description", "source", "sink",
                                           "state", "schedule",    NULL};
    static const char *const src_keys[] = {
        "template", "base_url", "file",       "auth",     "params", "http", "max_pages",
        "streams",  "url",      "method",     "headers",  "query",  "body", "records",
        "key",      "response", "pagination", "lookback", "allow_insecure_http", NULL};
    static const char *const state_keys[] = {"path", NULL};
    *out = NULL;
    size_t before = d->count;
    pf_flow *f = calloc(1, sizeof *f);
    if (!f || !(f->file = strdup(path))) {
        free(f);
        pf_ys_error(d, NULL, PF_ENOMEM, "out of memory");
        return PF_ENOMEM;
    }
    pf_error e;
    pf_error_clear(&e);
    if (pf_yaml_load_file(path, &f->doc, &e) != PF_OK) {
        pf_diags_add(d, &e);
        pf_flow_free(f);
        return e.code;
    }
    if (!f->doc->root || f->doc->root->kind != PF_Y_MAP) {
        pf_error_at(&e, PF_ECONFIG, path, f->doc->root ? f->doc->root->line : 1,
                    f->doc->root ? f->doc->root->col : 1,
                    "a flow must be a mapping with name, source and sink");
        pf_diags_add(d, &e);
        pf_flow_free(f);
        return PF_ECONFIG;
    }
    for (size_t i = 0; i < nsets; i++) {
        if (apply_override(f->doc, &sets[i], (int)i + 1, d) == PF_ENOMEM) {
            pf_flow_free(f);
            return PF_ENOMEM;
        }
    }
    const pf_ynode *root = f->doc->root, *x;
    pf_ys_check_keys(root, top_keys, "a flow", d);
    if (!(x = pf_ymap_get(root, "name")))
        pf_ys_error(d, root, PF_ECONFIG, "flow has no name");
    else if ((f->name = pf_ys_string(x, "name", d)) && !valid_flow_name(f->name))
        pf_ys_error(d, x, PF_ECONFIG,
                    "flow name '%s' may use only letters, digits, '-', '_' "
                    "and '.'",
                    f->name);

    const pf_ynode *src = pf_ymap_get(root, "source");
    if (!src) {
        pf_ys_error(d, root, PF_ECONFIG, "flow has no source");
    } else if (pf_ys_want_map(src, "source", d)) {
        pf_ys_check_keys(src, src_keys, "source", d);
        const pf_ynode *tn = pf_ymap_get(src, "template");
        char *tname = tn ? pf_ys_string(tn, "source.template", d) : NULL;
        if (!tn) pf_ys_error(d, src, PF_ECONFIG, "source has no template (see `ppflow templates`)");
        if (tname) {
            pf_diags td = {0};
            if (pf_template_find(tname, &f->tmpl, &td) != PF_OK) {
                /* A missing template is reported at the flow's position; a
                 * broken one with the template file's own positions. */
                for (size_t i = 0; i < td.count; i++) {
                    if (td.items[i].code == PF_ENOTFOUND && !td.items[i].line)
                        pf_ys_error(d, tn, PF_ECONFIG, "%s", td.items[i].msg);
                    else
                        pf_diags_add(d, &td.items[i]);
                }
            }
            pf_diags_free(&td);
            free(tname);
        }
        if ((x = pf_ymap_get(src, "file"))) f->local_file = expand_node(x, "source.file", d);
        if ((x = pf_ymap_get(src, "base_url"))) {
            f->base_url = expand_node(x, "source.base_url", d);
            if (f->base_url && strncmp(f->base_url, "https://", 8) != 0 &&
                strncmp(f->base_url, "http://", 7) != 0) {
                pf_ys_error(d, x, PF_ECONFIG, "base_url must start with https:// or http://");
            }
        }
        if (f->tmpl) {
            const pf_ynode *params = pf_ymap_get(src, "params");
            const pf_ynode *where = params ? params : src;
            pf_template_apply_flow(f->tmpl, src, d);
            load_auth(f, pf_ymap_get(src, "auth"), d);
            load_params(f, params, d);
            check_window_params(f, params, d);
            size_t nd = d->count;
            check_constraints(f, params, where, d);
            choose_streams(f, where, nd > before, d);
            if (f->tmpl->manual && f->base_url) {
                pf_ys_error(d, pf_ymap_get(src, "base_url"), PF_ECONFIG,
                            "a manual flow gives the whole URL in source.url, not base_url");
            } else if (!f->base_url && !f->tmpl->base_url[0] && !f->local_file &&
                       !f->tmpl->manual) {
                pf_ys_error(d, src, PF_ECONFIG,
                            "template %s has no fixed server: set source.base_url (e.g. "
                            "https://server.example)",
                            f->tmpl->name);
            } else if (!f->base_url) {
                f->base_url = expand_base_url(f, params, where, d);
            }
            pf_template_pick_quota(f->tmpl, param_is_set, f);
            f->format = f->tmpl->format;
            const char *fmt =
                f->tmpl->format_param ? pf_flow_param_str(f, f->tmpl->format_param) : NULL;
            if (fmt) f->format = strcmp(fmt, "syslog") == 0 ? PF_RESPONSE_SYSLOG : PF_RESPONSE_JSON;
            f->max_pages = f->tmpl->max_pages;
            if ((x = pf_ymap_get(src, "max_pages")))
                pf_ys_int(x, "source.max_pages", 1, PF_MAX_PAGES_LIMIT, &f->max_pages, d);
            f->lookback_ms = f->tmpl->window.lookback_ms;
            if ((x = pf_ymap_get(src, "lookback"))) {
                if (f->tmpl->paging != PF_PAGING_TIME_WINDOW)
                    pf_ys_error(d, x, PF_ECONFIG,
                                "source.lookback needs a time-window template (%s has none)",
                                f->tmpl->name);
                else if (pf_ys_duration(x, "source.lookback", &f->lookback_ms, d) == 0 &&
                         f->lookback_ms != 0 &&
                         (f->lookback_ms < f->tmpl->window.min_ms ||
                          (f->tmpl->window.max_ms && f->lookback_ms > f->tmpl->window.max_ms)))
                    /* The re-sweep is one request: it must be a window the API accepts. */
                    pf_ys_error(d, x, PF_ECONFIG,
                                "source.lookback must be 0 (off) or between %llds and %llds, "
                                "the windows %s accepts",
                                (long long)(f->tmpl->window.min_ms / 1000),
                                (long long)(f->tmpl->window.max_ms / 1000), f->tmpl->name);
            }
        }
        if (f->tmpl && !f->base_url && f->local_file && !(f->base_url = strdup("")))
            pf_ys_error(d, src, PF_ENOMEM, "out of memory");
        load_http(f, pf_ymap_get(src, "http"), d);
        if ((x = pf_ymap_get(src, "allow_insecure_http")))
            pf_ys_bool(x, "source.allow_insecure_http", &f->allow_insecure_http, d);
        check_clear_credentials(f, src, d);
    }
    if (!f->http.max_attempts) load_http(f, NULL, d);
    if (f->name) load_sink(f, pf_ymap_get(root, "sink"), d);

    const pf_ynode *state = pf_ymap_get(root, "state");
    if (!state) {
        pf_ys_error(d, root, PF_ECONFIG,
                    "flow has no state (e.g. state: {path: "
                    "state/flow.json}); it is where the checkpoint lives");
    } else if (pf_ys_want_map(state, "state", d)) {
        pf_ys_check_keys(state, state_keys, "state", d);
        if (!(x = pf_ymap_get(state, "path")))
            pf_ys_error(d, state, PF_ECONFIG, "state has no path");
        else
            f->state_path = expand_node(x, "state.path", d);
    }
    if ((x = pf_ymap_get(root, "schedule"))) pf_schedule_parse(x, &f->schedule, d);

    if (d->count > before || d->oom) {
        pf_status st = d->count > before ? d->items[before].code : PF_ENOMEM;
        pf_flow_free(f);
        return st;
    }
    *out = f;
    return PF_OK;
}
