/* registry.c: sink lookup (built-ins and dlopen'd plugins), option validation
 * (with the registration of option values that are secrets, see
 * flow/expand.h), and the host side of the ABI. */
#include "sink/registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flow/expand.h"
#include "flow/yschema.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

#ifndef PPFLOW_BUILD_SINK_DIR
#define PPFLOW_BUILD_SINK_DIR ""
#endif
#ifndef PPFLOW_SINK_INSTALL_DIR
#define PPFLOW_SINK_INSTALL_DIR ""
#endif

#define PLUGIN_PREFIX "ppflow_sink_"
#define PLUGIN_SUFFIX ".so"
#define MAX_PLUGINS 64

extern const pf_sink_descriptor pf_ndjson_sink;

static const pf_sink_descriptor *const builtins[] = {&pf_ndjson_sink};
#define NBUILTINS (sizeof builtins / sizeof builtins[0])

/* Plugins loaded so far. Each descriptor is copied into a full-size,
 * zero-filled struct, so fields appended after the plugin was built read as
 * NULL. Handles stay open for the life of the process. */
typedef struct loaded_sink {
    pf_sink_descriptor d;
    char *path;
} loaded_sink;
static loaded_sink plugins[MAX_PLUGINS];
static size_t nplugins;

/* The smallest descriptor of ABI version 1: every field up to close. */
#define DESC_V1_MIN (offsetof(pf_sink_descriptor, close) + sizeof(void (*)(void *)))

static int callbacks_ok(const pf_sink_descriptor *d)
{
    return d->name && d->options && d->open && d->write && d->commit && d->close;
}

static int valid_sink_name(const char *name)
{
    if (!*name || strlen(name) > 64) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* dlopens PATH and checks its descriptor. NAME, when given, must match. */
static const pf_sink_descriptor *load_plugin(const char *path, const char *name, pf_error *err)
{
    for (size_t i = 0; i < nplugins; i++)
        if (strcmp(plugins[i].path, path) == 0) return &plugins[i].d;
    if (nplugins == MAX_PLUGINS) {
        pf_error_set(err, PF_ETOOBIG, "too many sink plugins (at most %d)", MAX_PLUGINS);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        pf_error_set(err, PF_ENOTFOUND, "cannot load sink plugin %s: %s", path,
                     why ? why : "unknown error");
        return NULL;
    }
    const pf_sink_descriptor *d = dlsym(h, PF_SINK_SYMBOL);
    const char *problem = NULL;
    char pbuf[160];
    if (!d)
        problem = "it does not export " PF_SINK_SYMBOL;
    else if (d->abi_version != PF_SINK_ABI_VERSION) {
        snprintf(pbuf, sizeof pbuf, "it was built for sink ABI version %u; this ppflow supports %d",
                 (unsigned)d->abi_version, PF_SINK_ABI_VERSION);
        problem = pbuf;
    } else if (d->struct_size < DESC_V1_MIN) {
        snprintf(pbuf, sizeof pbuf, "its descriptor is %u bytes, smaller than version %d's %zu",
                 (unsigned)d->struct_size, PF_SINK_ABI_VERSION, (size_t)DESC_V1_MIN);
        problem = pbuf;
    }
    loaded_sink *l = &plugins[nplugins];
    memset(l, 0, sizeof *l);
    if (!problem) {
        memcpy(&l->d, d, d->struct_size < sizeof l->d ? d->struct_size : sizeof l->d);
        if (!callbacks_ok(&l->d))
            problem = "its descriptor lacks a name, options or a callback";
        else if (name && strcmp(l->d.name, name) != 0) {
            snprintf(pbuf, sizeof pbuf, "its descriptor names sink '%.40s', not '%.40s'", l->d.name,
                     name);
            problem = pbuf;
        }
    }
    if (problem) {
        dlclose(h);
        pf_error_set(err, PF_ECONFIG, "sink plugin %s is unusable: %s", path, problem);
        return NULL;
    }
    if (!(l->path = strdup(path))) {
        dlclose(h);
        pf_error_set(err, PF_ENOMEM, "out of memory loading %s", path);
        return NULL;
    }
    nplugins++;
    return &l->d;
}

/* The plugin directories: EXTRA (colon-separated, may be NULL) first, then
 * PPFLOW_SINK_PATH, the build tree and the install directory. */
static pf_status plugin_dirs(const char *extra, char ***dirs, size_t *n)
{
    char **base = NULL;
    size_t nb = 0;
    pf_status st = pf_paths_search_dirs("PPFLOW_SINK_PATH", PPFLOW_BUILD_SINK_DIR,
                                        PPFLOW_SINK_INSTALL_DIR, &base, &nb);
    if (st != PF_OK) return st;
    size_t ne = 0;
    for (const char *p = extra; p && *p; p = strchr(p, ':') ? strchr(p, ':') + 1 : "")
        ne++;
    char **v = calloc(ne + nb + 1, sizeof *v);
    if (!v) {
        pf_paths_free(base, nb);
        return PF_ENOMEM;
    }
    size_t k = 0;
    for (const char *p = extra; p && *p;) {
        size_t len = strcspn(p, ":");
        if (len && !(v[k++] = strndup(p, len))) {
            pf_paths_free(v, k);
            pf_paths_free(base, nb);
            return PF_ENOMEM;
        }
        p += len;
        if (*p == ':') p++;
    }
    for (size_t i = 0; i < nb; i++)
        v[k++] = base[i];
    free(base);
    *dirs = v;
    *n = k;
    return PF_OK;
}

static void list_names(char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NBUILTINS && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ", " : "", builtins[i]->name);
    for (size_t i = 0; i < nplugins && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ", " : "", plugins[i].d.name);
}

static void scan_all(const char *extra);

const pf_sink_descriptor *pf_sink_find_in(const char *name, const char *extra_dirs, pf_error *err)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i]->name, name) == 0) return builtins[i];
    for (size_t i = 0; i < nplugins; i++)
        if (strcmp(plugins[i].d.name, name) == 0) return &plugins[i].d;
    if (valid_sink_name(name)) {
        char **dirs = NULL;
        size_t n = 0;
        if (plugin_dirs(extra_dirs, &dirs, &n) != PF_OK) {
            pf_error_set(err, PF_ENOMEM, "out of memory");
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, dirs[i], name);
            if (access(path, F_OK) != 0) continue;
            const pf_sink_descriptor *d = load_plugin(path, name, err);
            pf_paths_free(dirs, n);
            return d;
        }
        pf_paths_free(dirs, n);
    }
    scan_all(extra_dirs);
    char list[256];
    list_names(list, sizeof list);
    pf_error_set(err, PF_ENOTFOUND,
                 "unknown sink type '%s' (available: %s; plugins are searched in "
                 "PPFLOW_SINK_PATH, the sink's plugin_dir and %s)",
                 name, list, PPFLOW_SINK_INSTALL_DIR);
    return NULL;
}

const pf_sink_descriptor *pf_sink_find(const char *name, pf_error *err)
{
    return pf_sink_find_in(name, NULL, err);
}

/* Loads every plugin on the search path (the first file of a name wins);
 * unusable ones are reported as warnings. */
static void scan_all(const char *extra)
{
    char **dirs = NULL;
    size_t n = 0;
    if (plugin_dirs(extra, &dirs, &n) != PF_OK) return;
    for (size_t i = 0; i < n; i++) {
        DIR *dir = opendir(dirs[i]);
        if (!dir) continue;
        struct dirent *e;
        while ((e = readdir(dir))) {
            size_t l = strlen(e->d_name), pl = strlen(PLUGIN_PREFIX), sl = strlen(PLUGIN_SUFFIX);
            if (l <= pl + sl || strncmp(e->d_name, PLUGIN_PREFIX, pl) != 0 ||
                strcmp(e->d_name + l - sl, PLUGIN_SUFFIX) != 0)
                continue;
            char name[80];
            snprintf(name, sizeof name, "%.*s", (int)(l - pl - sl), e->d_name + pl);
            int known = 0;
            for (size_t k = 0; k < NBUILTINS; k++)
                if (strcmp(builtins[k]->name, name) == 0) known = 1;
            for (size_t k = 0; k < nplugins; k++)
                if (strcmp(plugins[k].d.name, name) == 0) known = 1;
            if (known || !valid_sink_name(name)) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dirs[i], e->d_name);
            pf_error err;
            pf_error_clear(&err);
            if (!load_plugin(path, name, &err)) pf_log_warn("%s", err.msg);
        }
        closedir(dir);
    }
    pf_paths_free(dirs, n);
}

void pf_sink_each(void (*fn)(void *ud, const pf_sink_descriptor *d), void *ud)
{
    scan_all(NULL);
    for (size_t i = 0; i < NBUILTINS; i++)
        fn(ud, builtins[i]);
    for (size_t i = 0; i < nplugins; i++)
        fn(ud, &plugins[i].d);
}

static const pf_sink_option *find_opt(const pf_sink_descriptor *d, const char *key)
{
    for (const pf_sink_option *o = d->options; o->key; o++) {
        size_t l = strlen(o->key);
        if (l && o->key[l - 1] == '*') {
            if (strncmp(o->key, key, l - 1) == 0 && key[l - 1]) return o;
        } else if (strcmp(o->key, key) == 0) {
            return o;
        }
    }
    return NULL;
}

/* Checks VALUE against TYPE; returns a message or NULL. */
static const char *type_problem(pf_sink_opt_type type, const char *value)
{
    int64_t ms;
    uint64_t sz;
    char *end;
    switch (type) {
    case PF_SINK_OPT_STRING:
        return NULL;
    case PF_SINK_OPT_INT:
        strtoll(value, &end, 10);
        return (*value && !*end) ? NULL : "an integer";
    case PF_SINK_OPT_BOOL:
        return (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) ? NULL : "true or false";
    case PF_SINK_OPT_DURATION:
        return pf_duration_parse(value, &ms, NULL) == PF_OK ? NULL : "a duration such as 30s or 5m";
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

/* Whether sink option KEY names a file or a directory: a ${VAR} in it is not
 * a secret (flow/expand.h). */
static int key_is_path(const char *key)
{
    static const char *const ends[] = {"_path", "_dir", "_file", ".path", ".dir", ".file"};
    if (strcmp(key, "path") == 0 || strcmp(key, "dir") == 0 || strcmp(key, "file") == 0 ||
        strcmp(key, "directory") == 0)
        return 1;
    size_t kl = strlen(key);
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        size_t el = strlen(ends[i]);
        if (kl > el && strcmp(key + kl - el, ends[i]) == 0) return 1;
    }
    return 0;
}

/* Whether sink option KEY holds a credential, whatever its value's origin:
 * its name holds password, passwd, secret, token, credential, conninfo or
 * oauthbearer, or one of its dotted parts is "key" (librdkafka's
 * ssl.key.pem). Case-insensitive. A sink masks its own messages too (the
 * Kafka sink masks more of librdkafka's settings, e.g. every sasl.* but the
 * user name and mechanism). */
static int key_is_credential(const char *key)
{
    static const char *const words[] = {"password",   "passwd",   "secret",     "token",
                                        "credential", "conninfo", "oauthbearer"};
    char low[256];
    size_t n = 0;
    for (; key[n] && n < sizeof low - 1; n++)
        low[n] = (char)(key[n] >= 'A' && key[n] <= 'Z' ? key[n] - 'A' + 'a' : key[n]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(low, words[i])) return 1;
    for (const char *p = low; (p = strstr(p, "key")) != NULL; p += 3)
        if ((p == low || p[-1] == '.') && (p[3] == '\0' || p[3] == '.')) return 1;
    return 0;
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
        if (strcmp(k->value, "type") == 0 || strcmp(k->value, "plugin_dir") == 0) continue;
        /* Host settings: how many records the engine hands over per write. */
        if (strcmp(k->value, "batch_records") == 0) {
            int64_t n = 0;
            if (pf_ys_int(v, "sink batch_records", 1, 1000000, &n, d) == 0)
                cfg->batch_records = (size_t)n;
            continue;
        }
        if (strcmp(k->value, "batch_bytes") == 0) {
            uint64_t n = 0;
            if (pf_ys_size(v, "sink batch_bytes", &n, d) == 0) {
                if (n < 1 || n > ((uint64_t)1 << 30))
                    pf_ys_error(d, v, PF_ECONFIG, "sink batch_bytes must be between 1B and 1GiB");
                else
                    cfg->batch_bytes = (size_t)n;
            }
            continue;
        }
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
        /* Secrets: ${VAR} values in text options other than file locations,
         * and the whole value of an option named as a credential. */
        int text = o->type == PF_SINK_OPT_STRING;
        size_t from = text && !key_is_path(k->value) ? 0 : SIZE_MAX;
        if (pf_expand_env_secret(raw, from, &val, &off, &e) != PF_OK) {
            pf_ys_error(d, v, e.code, "%s", e.msg);
        } else if (text && key_is_credential(k->value) &&
                   pf_log_add_secret(pf_buf_str(&val)) != 0) {
            pf_ys_error(d, v, PF_ENOMEM, "cannot register sink option %s for log redaction",
                        k->value);
        } else {
            const char *problem = type_problem(o->type, pf_buf_str(&val));
            if (problem)
                pf_ys_error(d, v, PF_ECONFIG, "sink option %s must be %s", o->key, problem);
            else if (pf_sink_config_set(cfg, k->value, pf_buf_str(&val)) != PF_OK)
                pf_ys_error(d, v, PF_ENOMEM, "out of memory");
        }
        if (val.data) explicit_bzero(val.data, val.len);
        pf_buf_free(&val);
        free(raw);
    }
    for (const pf_sink_option *o = desc->options; o->key; o++) {
        if (!o->required || o->key[0] == '\0' || o->key[strlen(o->key) - 1] == '*') continue;
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
        if (cfg->values[i]) /* may hold a credential (conninfo, sasl.password) */
            explicit_bzero(cfg->values[i], strlen(cfg->values[i]));
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
    const char *pending;                            /* checkpoint offered during commit */
    const char *const *streams, *const *identities; /* borrowed from open's caller */
    size_t nstreams;
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
    case PF_SINK_OPT_BOOL:
        return strcmp(v, "true") == 0;
    case PF_SINK_OPT_DURATION:
        return pf_duration_parse(v, &ms, NULL) == PF_OK ? ms : def;
    case PF_SINK_OPT_SIZE:
        return pf_parse_size(v, &sz) == 0 ? (int64_t)sz : def;
    case PF_SINK_OPT_INT:
    case PF_SINK_OPT_STRING:
        return strtoll(v, NULL, 10);
    }
    return def;
}

static void host_log(const pf_sink_host *h, int level, const char *msg)
{
    pf_log((pf_log_level)(level < 0   ? 0
                          : level > 3 ? 3
                                      : level),
           "sink %s: %s", h->cfg->desc->name, msg);
}

static const char *host_flow_name(const pf_sink_host *h)
{
    return h->cfg->flow_name;
}

static const char *host_pending_checkpoint(const pf_sink_host *h)
{
    return h->pending;
}

static void host_options_with_prefix(const pf_sink_host *h, const char *prefix,
                                     void (*fn)(void *ud, const char *key, const char *value),
                                     void *ud)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < h->cfg->count; i++)
        if (strncmp(h->cfg->keys[i], prefix, pl) == 0) fn(ud, h->cfg->keys[i], h->cfg->values[i]);
}

static const char *host_stream_identity(const pf_sink_host *h, const char *stream)
{
    for (size_t i = 0; stream && i < h->nstreams; i++)
        if (strcmp(h->streams[i], stream) == 0)
            return h->identities && h->identities[i] ? h->identities[i] : "sha256";
    return NULL;
}

static const pf_sink_host_api host_api = {sizeof(pf_sink_host_api), host_option,
                                          host_option_int,          host_log,
                                          host_flow_name,           host_pending_checkpoint,
                                          host_options_with_prefix, host_stream_identity};

static void result_error(pf_error *err, pf_sink_result r, const char *what, const char *name,
                         const char *msg)
{
    pf_error_set(err, PF_ESINK, "sink %s: %s failed: %s", name, what,
                 msg[0] ? msg : "no reason given");
    if (err) {
        err->retriable = r == PF_SINK_RETRY;
        err->fatal = r == PF_SINK_FATAL;
    }
}

pf_status pf_sink_open(const pf_sink_config *cfg, const char *const *streams,
                       const char *const *identities, size_t nstreams, const char *resume,
                       pf_sink **out, pf_error *err)
{
    *out = NULL;
    pf_sink *s = calloc(1, sizeof *s);
    if (!s) return pf_error_set(err, PF_ENOMEM, "out of memory opening sink");
    s->host.cfg = cfg;
    s->host.streams = streams;
    s->host.identities = identities;
    s->host.nstreams = nstreams;
    s->desc = cfg->desc;
    char msg[512] = "";
    pf_sink_result r =
        s->desc->open(&s->host, &host_api, streams, nstreams, resume, &s->state, msg, sizeof msg);
    if (r == PF_SINK_BUSY) {
        /* Another process holds the sink's lock on this flow: the same
         * outcome as a held state lock file (PF_ESTATE), with the sink's
         * own words ("flow X is being run by another ppflow process ..."). */
        pf_error_set(err, PF_ESTATE, "%s",
                     msg[0] ? msg : "flow is being run by another ppflow process (sink lock)");
        free(s);
        return PF_ESTATE;
    }
    if (r != PF_SINK_OK) {
        result_error(err, r, "open", s->desc->name, msg);
        free(s);
        return PF_ESINK;
    }
    *out = s;
    return PF_OK;
}

/* BUSY outside open, and values this host does not know, are transient. */
static pf_sink_result normalize(pf_sink_result r)
{
    switch (r) {
    case PF_SINK_OK:
    case PF_SINK_RETRY:
    case PF_SINK_ERROR:
    case PF_SINK_FATAL:
        return r;
    case PF_SINK_BUSY:
        break;
    }
    return PF_SINK_RETRY;
}

pf_sink_result pf_sink_write(pf_sink *s, const pf_sink_record *recs, size_t n, pf_error *err)
{
    char msg[512] = "";
    pf_sink_result r = normalize(s->desc->write(s->state, recs, n, msg, sizeof msg));
    if (r != PF_SINK_OK) result_error(err, r, "write", s->desc->name, msg);
    return r;
}

pf_sink_result pf_sink_commit(pf_sink *s, const char *checkpoint, const char **token, pf_error *err)
{
    char msg[512] = "";
    *token = NULL;
    s->host.pending = checkpoint;
    pf_sink_result r = normalize(s->desc->commit(s->state, token, msg, sizeof msg));
    s->host.pending = NULL;
    if (r != PF_SINK_OK) result_error(err, r, "commit", s->desc->name, msg);
    return r;
}

pf_sink_result pf_sink_stored_checkpoint(pf_sink *s, const char **checkpoint, pf_error *err)
{
    *checkpoint = NULL;
    if (!s->desc->stored_checkpoint) return PF_SINK_OK;
    char msg[512] = "";
    pf_sink_result r = normalize(s->desc->stored_checkpoint(s->state, checkpoint, msg, sizeof msg));
    if (r != PF_SINK_OK) {
        *checkpoint = NULL;
        result_error(err, r, "reading the stored checkpoint", s->desc->name, msg);
    }
    return r;
}

int pf_sink_stores_checkpoint(const pf_sink *s)
{
    return s && s->desc->stored_checkpoint != NULL;
}

void pf_sink_close(pf_sink *s)
{
    if (!s) return;
    s->desc->close(s->state);
    free(s);
}
