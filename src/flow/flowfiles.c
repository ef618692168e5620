/* flowfiles.c: expanding command-line paths into flow files, and one
 * output file per flow (see flowfiles.h). */
#include "flow/flowfiles.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flow/yschema.h"
#include "util/log.h"
#include "util/paths.h"

int pf_flow_file_name(const char *name)
{
    size_t l = strlen(name);
    if (name[0] == '.') return 0;
    return (l > 5 && strcmp(name + l - 5, ".yaml") == 0) ||
           (l > 4 && strcmp(name + l - 4, ".yml") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends DIR/NAME (or DIR alone when NAME is NULL) to V. */
static int push(char ***v, size_t *n, size_t *cap, const char *dir, const char *name)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **p = realloc(*v, nc * sizeof *p);
        if (!p) return -1;
        *v = p;
        *cap = nc;
    }
    size_t dl = strlen(dir);
    size_t len = dl + (name ? strlen(name) + 1 : 0) + 1;
    char *s = malloc(len);
    if (!s) return -1;
    /* "flows/" and "flows" both give "flows/NAME". */
    if (name)
        snprintf(s, len, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    else
        snprintf(s, len, "%s", dir);
    (*v)[(*n)++] = s;
    return 0;
}

int pf_flow_files(const char *const *paths, size_t n, char ***files, size_t *nfiles)
{
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    int bad = 0;
    *files = NULL;
    *nfiles = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = paths[i];
        struct stat st;
        if (stat(p, &st) != 0) {
            pf_log_error("%s: %s", p, strerror(errno));
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (push(&v, &cnt, &cap, p, NULL) != 0) goto oom;
            continue;
        }
        DIR *d = opendir(p);
        if (!d) {
            pf_log_error("%s: %s", p, strerror(errno));
            bad = 1;
            continue;
        }
        size_t first = cnt;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!pf_flow_file_name(de->d_name)) continue;
            if (push(&v, &cnt, &cap, p, de->d_name) != 0) {
                closedir(d);
                goto oom;
            }
            struct stat fs;
            if (stat(v[cnt - 1], &fs) != 0 || !S_ISREG(fs.st_mode)) free(v[--cnt]);
        }
        closedir(d);
        qsort(v + first, cnt - first, sizeof *v, cmp_str);
    }
    *files = v;
    *nfiles = cnt;
    return bad ? -1 : 0;
oom:
    for (size_t i = 0; i < cnt; i++)
        free(v[i]);
    free(v);
    pf_log_error("out of memory listing flow files");
    return -2;
}

/* ---- one output file, one flow ------------------------------------------ */

typedef struct out_file {
    char *key;   /* what identifies the file: "=DEV:INO" when it exists, else its path */
    char *shown; /* its absolute, normalised path, for messages */
    size_t flow; /* index into the flows */
} out_file;

typedef struct out_list {
    out_file *v;
    size_t n, cap;
    int oom;
} out_list;

/* The absolute, normalised form of PATH, with the directory holding it
 * resolved when it exists, into OUT (size N). 0, or -1 when it does not fit. */
static int resolve_output(const char *path, char *out, size_t n)
{
    char abs[PATH_MAX * 2], norm[PATH_MAX], dir[PATH_MAX];
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return -1;
        if ((size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= sizeof abs) return -1;
    }
    pf_error e;
    pf_error_clear(&e);
    if (pf_path_normalize(abs, norm, sizeof norm, &e) != PF_OK) return -1;
    const char *slash = strrchr(norm, '/');
    size_t dl = (size_t)(slash - norm);
    memcpy(dir, norm, dl);
    dir[dl] = '\0';
    char real[PATH_MAX];
    if (realpath(dl ? dir : "/", real) &&
        (size_t)snprintf(out, n, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", slash + 1) <
            n)
        return 0;
    return (size_t)snprintf(out, n, "%s", norm) < n ? 0 : -1;
}

static void out_add(out_list *l, const char *path, size_t flow)
{
    char shown[PATH_MAX], key[PATH_MAX + 64];
    if (resolve_output(path, shown, sizeof shown) != 0) {
        /* Too long to resolve: the sink refuses it at run time anyway. */
        snprintf(shown, sizeof shown, "%s", path);
    }
    struct stat st;
    if (stat(shown, &st) == 0)
        snprintf(key, sizeof key, "=%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
    else
        snprintf(key, sizeof key, "%s", shown);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        out_file *p = realloc(l->v, nc * sizeof *p);
        if (!p) {
            l->oom = 1;
            return;
        }
        l->v = p;
        l->cap = nc;
    }
    out_file *o = &l->v[l->n];
    o->key = strdup(key);
    o->shown = strdup(shown);
    o->flow = flow;
    if (!o->key || !o->shown) {
        free(o->key);
        free(o->shown);
        l->oom = 1;
        return;
    }
    l->n++;
}

/* Replaces each {stream} of TMPL with STREAM into OUT (size N); 0, or -1
 * when it does not fit. */
static int expand_stream(const char *tmpl, const char *stream, char *out, size_t n)
{
    size_t o = 0, sl = strlen(stream);
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{stream}", 8) == 0) {
            if (o + sl >= n) return -1;
            memcpy(out + o, stream, sl);
            o += sl;
            p += 8;
        } else {
            if (o + 1 >= n) return -1;
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return 0;
}

/* Adds the NDJSON files flow F (index I) writes. */
static void flow_outputs(const pf_flow *f, size_t i, out_list *l)
{
    if (!f->sink.desc || strcmp(f->sink.desc->name, "ndjson") != 0) return;
    const char *tmpl = pf_sink_config_get(&f->sink, "path");
    if (!tmpl || !*tmpl) return;
    if (!strstr(tmpl, "{stream}")) {
        out_add(l, tmpl, i);
        return;
    }
    const pf_template *t = f->tmpl;
    size_t ns = t ? t->nstreams : 0;
    int gaps = t && t->paging == PF_PAGING_TIME_WINDOW && t->window.retention_ms > 0 &&
               !f->local_file;
    char path[PATH_MAX];
    for (size_t s = 0; s < ns + (size_t)gaps; s++) {
        const char *name = s < ns ? t->streams[s].name : PF_FLOW_GAP_STREAM;
        if (s == ns) {
            /* A template stream that has the gap stream's name: one file. */
            int dup = 0;
            for (size_t k = 0; k < ns; k++)
                dup |= strcmp(t->streams[k].name, name) == 0;
            if (dup) continue;
        }
        if (expand_stream(tmpl, name, path, sizeof path) == 0) out_add(l, path, i);
    }
}

static int cmp_out(const void *a, const void *b)
{
    const out_file *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->flow < y->flow ? -1 : x->flow > y->flow;
}

/* 1 when flows A and B were loaded from the same file. */
static int same_file(const pf_flow *a, const pf_flow *b)
{
    struct stat sa, sb;
    if (stat(a->file, &sa) == 0 && stat(b->file, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a->file, b->file) == 0;
}

/* The node of F's sink.path (for the position), else its sink, else root. */
static const pf_ynode *sink_path_node(const pf_flow *f)
{
    const pf_ynode *root = f->doc ? f->doc->root : NULL;
    const pf_ynode *sink = pf_ymap_get(root, "sink"), *p = pf_ymap_get(sink, "path");
    return p ? p : sink ? sink : root;
}

size_t pf_flow_outputs_check(pf_flow *const *flows, size_t n, int *involved, pf_diags *d)
{
    out_list l = {0};
    for (size_t i = 0; i < n; i++)
        if (flows[i]) flow_outputs(flows[i], i, &l);
    size_t found = 0;
    if (l.oom) {
        pf_ys_error(d, NULL, PF_ENOMEM, "out of memory comparing the flows' output files");
        goto out;
    }
    if (l.n > 1) qsort(l.v, l.n, sizeof *l.v, cmp_out);
    /* Pairs already reported (collisions are few: a linear search is enough). */
    size_t (*pairs)[2] = NULL;
    size_t npairs = 0;
    for (size_t i = 0; i < l.n; i++) {
        size_t j = i;
        while (j + 1 < l.n && strcmp(l.v[j + 1].key, l.v[i].key) == 0)
            j++;
        /* l.v[i..j] name one file; each later flow collides with the first. */
        for (size_t k = i + 1; k <= j; k++) {
            size_t a = l.v[i].flow, b = l.v[k].flow;
            if (a == b || same_file(flows[a], flows[b])) continue;
            int seen = 0;
            for (size_t p = 0; p < npairs && !seen; p++)
                seen = pairs[p][0] == a && pairs[p][1] == b;
            if (seen) continue;
            size_t (*np)[2] = realloc(pairs, (npairs + 1) * sizeof *pairs);
            if (!np) {
                pf_ys_error(d, NULL, PF_ENOMEM, "out of memory comparing the flows' output files");
                break;
            }
            pairs = np;
            pairs[npairs][0] = a;
            pairs[npairs][1] = b;
            npairs++;
            const pf_flow *fa = flows[a], *fb = flows[b];
            pf_ys_error(d, sink_path_node(fb), PF_ECONFIG,
                        "output file %s is written by two flows: '%s' (%s) and '%s' (%s); one "
                        "output file, one flow: give each its own sink.path (one run would "
                        "truncate the other's records)",
                        l.v[k].shown, fa->name, fa->file, fb->name, fb->file);
            if (involved) involved[a] = involved[b] = 1;
            found++;
        }
        i = j;
    }
    free(pairs);
out:
    for (size_t i = 0; i < l.n; i++) {
        free(l.v[i].key);
        free(l.v[i].shown);
    }
    free(l.v);
    return found;
}

/* The node of F's KEY (for the position), else its root. */
static const pf_ynode *key_node(const pf_flow *f, const char *key, const char *sub)
{
    const pf_ynode *root = f->doc ? f->doc->root : NULL;
    const pf_ynode *n = pf_ymap_get(root, key);
    if (n && sub) n = pf_ymap_get(n, sub) ? pf_ymap_get(n, sub) : n;
    return n ? n : root;
}

size_t pf_flow_names_check(pf_flow *const *flows, size_t n, int *involved, pf_diags *d)
{
    /* Flows given together are few (a scheduler takes at most
     * PF_SCHED_MAX_FLOWS): pairwise comparison is enough. */
    size_t found = 0;
    char (*state)[PATH_MAX] = n ? calloc(n, sizeof *state) : NULL;
    if (n && !state) {
        pf_ys_error(d, NULL, PF_ENOMEM, "out of memory comparing the flows' names");
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (flows[i] && resolve_output(flows[i]->state_path, state[i], PATH_MAX) != 0)
            snprintf(state[i], PATH_MAX, "%s", flows[i]->state_path);
    for (size_t b = 0; b < n; b++) {
        if (!flows[b]) continue;
        for (size_t a = 0; a < b; a++) {
            if (!flows[a] || same_file(flows[a], flows[b])) continue;
            const pf_flow *fa = flows[a], *fb = flows[b];
            if (strcmp(fa->name, fb->name) == 0) {
                pf_ys_error(d, key_node(fb, "name", NULL), PF_ECONFIG,
                            "flow name '%s' is also the name of the flow in %s; each flow needs "
                            "its own name (status, logs and metrics tell flows apart by it)",
                            fb->name, fa->file);
            } else if (strcmp(state[a], state[b]) == 0) {
                pf_ys_error(d, key_node(fb, "state", "path"), PF_ECONFIG,
                            "state.path %s is also the checkpoint of flow '%s' (%s); each flow "
                            "needs its own checkpoint",
                            fb->state_path, fa->name, fa->file);
            } else {
                continue;
            }
            if (involved) involved[a] = involved[b] = 1;
            found++;
            break; /* one report per flow */
        }
    }
    free(state);
    return found;
}
