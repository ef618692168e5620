/* registry.c: sink lookup, option validation, and the host side of the ABI. */
#include "sink/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/expand.h"
#include "flow/yschema.h"
#include "util/log.h"
#include "util/timeutil.h"

extern const pf_sink_descriptor pf_ndjson_sink;

static const pf_sink_descriptor *const builtins[] = {&pf_ndjson_sink};
#define NBUILTINS (sizeof builtins / sizeof builtins[0])

static int descriptor_ok(const pf_sink_descriptor *d)
{
    /* Older plugins may have a smaller descriptor; it must at least hold
     * every callback of ABI version 1. */
    return d && d->abi_version == PF_SINK_ABI_VERSION &&
           d->struct_size >= sizeof(pf_sink_descriptor) && d->name && d->options && d->open &&
           d->write && d->commit && d->close;
}

const pf_sink_descriptor *pf_sink_find(const char *name, pf_error *err)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i]->name, name) == 0 && descriptor_ok(builtins[i])) return builtins[i];
    char list[256] = "";
    size_t o = 0;
    for (size_t i = 0; i < NBUILTINS && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", builtins[i]->name);
    pf_error_set(err, PF_ENOTFOUND, "unknown sink type '%s' (available: %s)", name, list);
    return NULL;
}

void pf_sink_each(void (*fn)(void *ud, const pf_sink_descriptor *d), void *ud)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (descriptor_ok(builtins[i])) fn(ud, builtins[i]);
}

static const pf_sink_option *find_opt(const pf_sink_descriptor *d, const char *key)
{
    for (const pf_sink_option *o = d->options; o->key; o++)
        if (strcmp(o->key, key) == 0) return o;
    return NULL;
}

/* Checks VALUE against TYPE; returns a message or NULL. */
static const char *type_problem(pf_sink_opt_type type, const char *value)
{
    int64_t ms;
    uint64_t sz;
    char *end;
    switch (type) {
    case PF_SINK_OPT_STRING: return NULL;
    case PF_SINK_OPT_INT:
        strtoll(value, &end, 10);
        return (*value && !*end) ? NULL : "an integer";
    case PF_SINK_OPT_BOOL:
        return (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) ? NULL
                                                                            : "true or false";
    case PF_SINK_OPT_DURATION:
        return pf_duration_parse(value, &ms, NULL) == PF_OK ? NULL
                                                             : "a duration such as 30s or 5m";
    case PF_SINK_OPT_SIZE:
        return pf_parse_size(value, &sz) == 0 ? NULL : "a size such as 4096 or 64MiB";
    }
    return NULL;
}

pf_status pf_sink_config_set(pf_sink_config *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->keys[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return PF_ENOMEM;
            free(cfg->values[i]);
            cfg->values[i] = v;
            return PF_OK;
        }
    }
    char **k = realloc(cfg->keys, (cfg->count + 1) * sizeof *k);
    if (!k) return PF_ENOMEM;
    cfg->keys = k;
    char **v = realloc(cfg->values, (cfg->count + 1) * sizeof *v);
    if (!v) return PF_ENOMEM;
    cfg->values = v;
    char *kc = strdup(key), *vc = strdup(value);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return PF_ENOMEM;
    }
    cfg->keys[cfg->count] = kc;
    cfg->values[cfg->count++] = vc;
    return PF_OK;
}

pf_status pf_sink_config_load(const pf_sink_descriptor *desc, const pf_ynode *node,
                              const char *flow_name, pf_sink_config *cfg, pf_diags *d)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->desc = desc;
    cfg->flow_name = strdup(flow_name ? flow_name : "");
    size_t before = d->count;
    if (!cfg->flow_name) {
        pf_ys_error(d, node, PF_ENOMEM, "out of memory");
        return PF_ENOMEM;
    }
    for (size_t i = 0; i < pf_ymap_size(node); i++) {
        const pf_ynode *k = pf_ymap_key(node, i), *v = pf_ymap_val(node, i);
        if (strcmp(k->value, "type") == 0) continue;
        const pf_sink_option *o = find_opt(desc, k->value);
        if (!o) {
            char list[256] = "";
            size_t off = 0;
            for (const pf_sink_option *p = desc->options; p->key && off < sizeof list; p++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s",
                                        p == desc->options ? "" : ", ", p->key);
            pf_ys_error(d, k, PF_ECONFIG, "unknown option '%s' for sink %s (expected one of: %s)",
                        k->value, desc->name, list);
            continue;
        }
        char *raw = pf_ys_string(v, o->key, d);
        if (!raw) continue;
        pf_buf val;
        pf_buf_init(&val, 64 * 1024);
        pf_error e;
        size_t off = 0;
        pf_error_clear(&e);
        if (pf_expand_env(raw, &val, &off, &e) != PF_OK) {
            pf_ys_error(d, v, e.code, "%s", e.msg);
        } else {
            const char *problem = type_problem(o->type, pf_buf_str(&val));
            if (problem)
                pf_ys_error(d, v, PF_ECONFIG, "sink option %s must be %s", o->key, problem);
            else if (pf_sink_config_set(cfg, o->key, pf_buf_str(&val)) != PF_OK)
                pf_ys_error(d, v, PF_ENOMEM, "out of memory");
        }
        pf_buf_free(&val);
        free(raw);
    }
    for (const pf_sink_option *o = desc->options; o->key; o++) {
        if (!o->required) continue;
        int set = 0;
        for (size_t i = 0; i < cfg->count; i++)
            if (strcmp(cfg->keys[i], o->key) == 0) set = 1;
        if (!set)
            pf_ys_error(d, node, PF_ECONFIG, "sink %s needs option '%s' (%s)", desc->name, o->key,
                        o->description ? o->description : "required");
    }
    return d->count > before ? PF_ECONFIG : PF_OK;
}

const char *pf_sink_config_get(const pf_sink_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->count; i++)
        if (strcmp(cfg->keys[i], key) == 0) return cfg->values[i];
    const pf_sink_option *o = find_opt(cfg->desc, key);
    return o ? o->default_value : NULL;
}

void pf_sink_config_free(pf_sink_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->count; i++) {
        free(cfg->keys[i]);
        free(cfg->values[i]);
    }
    free(cfg->keys);
    free(cfg->values);
    free(cfg->flow_name);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- host side ---------------------------------------------------------- */

struct pf_sink_host {
    const pf_sink_config *cfg;
};

struct pf_sink {
    pf_sink_host host;
    const pf_sink_descriptor *desc;
    void *state;
};

static const char *host_option(const pf_sink_host *h, const char *key)
{
    return pf_sink_config_get(h->cfg, key);
}

static int64_t host_option_int(const pf_sink_host *h, const char *key, int64_t def)
{
    const char *v = pf_sink_config_get(h->cfg, key);
    const pf_sink_option *o = find_opt(h->cfg->desc, key);
    if (!v || !o) return def;
    int64_t ms;
    uint64_t sz;
    switch (o->type) {
    case PF_SINK_OPT_BOOL: return strcmp(v, "true") == 0;
    case PF_SINK_OPT_DURATION: return pf_duration_parse(v, &ms, NULL) == PF_OK ? ms : def;
    case PF_SINK_OPT_SIZE: return pf_parse_size(v, &sz) == 0 ? (int64_t)sz : def;
    case PF_SINK_OPT_INT:
    case PF_SINK_OPT_STRING: return strtoll(v, NULL, 10);
    }
    return def;
}

static void host_log(const pf_sink_host *h, int level, const char *msg)
{
    pf_log((pf_log_level)(level < 0 ? 0 : level > 3 ? 3 : level), "sink %s: %s",
           h->cfg->desc->name, msg);
}

static const char *host_flow_name(const pf_sink_host *h)
{
    return h->cfg->flow_name;
}

static const pf_sink_host_api host_api = {sizeof(pf_sink_host_api), host_option, host_option_int,
                                          host_log, host_flow_name};

static void result_error(pf_error *err, pf_sink_result r, const char *what, const char *name,
                         const char *msg)
{
    pf_error_set(err, PF_ESINK, "sink %s: %s failed: %s", name, what,
                 msg[0] ? msg : "no reason given");
    if (err) err->retriable = r == PF_SINK_RETRY;
}

pf_status pf_sink_open(const pf_sink_config *cfg, const char *const *streams, size_t nstreams,
                       const char *resume, pf_sink **out, pf_error *err)
{
    *out = NULL;
    pf_sink *s = calloc(1, sizeof *s);
    if (!s) return pf_error_set(err, PF_ENOMEM, "out of memory opening sink");
    s->host.cfg = cfg;
    s->desc = cfg->desc;
    char msg[512] = "";
    pf_sink_result r = s->desc->open(&s->host, &host_api, streams, nstreams, resume, &s->state,
                                     msg, sizeof msg);
    if (r != PF_SINK_OK) {
        result_error(err, r, "open", s->desc->name, msg);
        free(s);
        return PF_ESINK;
    }
    *out = s;
    return PF_OK;
}

pf_sink_result pf_sink_write(pf_sink *s, const pf_sink_record *recs, size_t n, pf_error *err)
{
    char msg[512] = "";
    pf_sink_result r = s->desc->write(s->state, recs, n, msg, sizeof msg);
    if (r != PF_SINK_OK) result_error(err, r, "write", s->desc->name, msg);
    return r;
}

pf_sink_result pf_sink_commit(pf_sink *s, const char **token, pf_error *err)
{
    char msg[512] = "";
    *token = NULL;
    pf_sink_result r = s->desc->commit(s->state, token, msg, sizeof msg);
    if (r != PF_SINK_OK) result_error(err, r, "commit", s->desc->name, msg);
    return r;
}

void pf_sink_close(pf_sink *s)
{
    if (!s) return;
    s->desc->close(s->state);
    free(s);
}
