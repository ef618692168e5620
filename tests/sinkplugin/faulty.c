/* faulty.c: a sink plugin for testing the plugin loader and the engine's
 * delivery rules, loaded through PPFLOW_SINK_PATH like any third-party sink.
 *
 * It keeps one file: the first line is the checkpoint stored with the last
 * commit (or `null`), every further line a record as `STREAM<TAB>KEY<TAB>JSON`.
 * A commit rewrites the whole file atomically (temporary file, fsync,
 * rename), so records and checkpoint are durable together, like a database
 * transaction; without store_checkpoint, opening from a resume token takes
 * back the records committed after it, as a file sink would. Options make it
 * refuse records (ERROR), fail transiently (RETRY, at commits or at writes),
 * lose the answer of a durable commit, answer FATAL after some writes, or
 * pause after a commit (so a test can kill ppflow between the sink's commit
 * and the checkpoint file's). Built three more times with FAULTY_ABI /
 * FAULTY_SMALL / FAULTY_NAME to test the loader's checks. */
#define _GNU_SOURCE /* memmem */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ppflow_sink.h"

#ifndef FAULTY_NAME
#define FAULTY_NAME "faulty"
#endif

typedef struct line_list {
    char **v;
    size_t n, cap;
} line_list;

typedef struct faulty {
    const pf_sink_host *host;
    const pf_sink_host_api *api;
    char *path;
    char *refuse;             /* records containing this text are refused (ERROR) */
    long *retries_left;       /* commits answering RETRY before succeeding */
    long *write_retries_left; /* writes answering RETRY before succeeding */
    long *lost_left;          /* commits that succeed but answer RETRY (a lost answer) */
    long *fatal_after;        /* writes that succeed before every write answers FATAL (-1: never) */
    long pause_ms;            /* sleep after each successful commit */
    int store;                /* store the checkpoint with the records */
    char *checkpoint;
    line_list done, pending;
    char token[64];
    char extra[256]; /* the pass-through family's settings, "k=v;..." */
} faulty;

static const pf_sink_option options[] = {
    {"path", PF_SINK_OPT_STRING, NULL, 1, "the file records and checkpoint are kept in"},
    {"refuse", PF_SINK_OPT_STRING, NULL, 0, "refuse records whose JSON contains this text"},
    {"retries", PF_SINK_OPT_INT, "0", 0, "commits that answer RETRY before one succeeds"},
    {"write_retries", PF_SINK_OPT_INT, "0", 0, "writes that answer RETRY before one succeeds"},
    {"lost_commits", PF_SINK_OPT_INT, "0", 0, "commits that succeed but answer RETRY"},
    {"fatal_after", PF_SINK_OPT_INT, "-1", 0,
     "writes that succeed before every later one answers FATAL (-1: never)"},
    {"pause", PF_SINK_OPT_DURATION, "0s", 0, "sleep after every commit"},
    {"store_checkpoint", PF_SINK_OPT_BOOL, "true", 0, "keep the flow checkpoint in the file"},
    {"x.*", PF_SINK_OPT_STRING, NULL, 0, "any x.NAME setting, reported in the log"},
    {NULL, 0, NULL, 0, NULL},
};

static int push(line_list *l, char *s)
{
    if (!s) return -1;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, nc * sizeof *v);
        if (!v) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 0;
}

static void clear(line_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

static void f_close(void *p)
{
    faulty *f = p;
    if (!f) return;
    clear(&f->done);
    clear(&f->pending);
    free(f->done.v);
    free(f->pending.v);
    free(f->path);
    free(f->refuse);
    free(f->checkpoint);
    free(f);
}

static void add_extra(void *ud, const char *key, const char *value)
{
    faulty *f = ud;
    size_t l = strlen(f->extra);
    snprintf(f->extra + l, sizeof f->extra - l, "%s=%s;", key, value);
}

static pf_sink_result f_open(const pf_sink_host *host, const pf_sink_host_api *api,
                             const char *const *streams, size_t nstreams, const char *resume,
                             void **state, char *err, size_t errlen)
{
    (void)streams;
    (void)nstreams;
    (void)resume;
    faulty *f = calloc(1, sizeof *f);
    if (!f) goto oom;
    f->host = host;
    f->api = api;
    const char *v;
    if (!(f->path = strdup(api->option(host, "path")))) goto oom;
    if ((v = api->option(host, "refuse")) && !(f->refuse = strdup(v))) goto oom;
    /* Counted per process, so reopening after a RETRY does not start over. */
    static long retries_left = -1;
    if (retries_left < 0) retries_left = (long)api->option_int(host, "retries", 0);
    f->retries_left = &retries_left;
    static long write_retries_left = -1;
    if (write_retries_left < 0)
        write_retries_left = (long)api->option_int(host, "write_retries", 0);
    f->write_retries_left = &write_retries_left;
    static long fatal_after = -2;
    if (fatal_after == -2) fatal_after = (long)api->option_int(host, "fatal_after", -1);
    f->fatal_after = &fatal_after;
    static long lost_left = -1;
    if (lost_left < 0) lost_left = (long)api->option_int(host, "lost_commits", 0);
    f->lost_left = &lost_left;
    f->pause_ms = (long)api->option_int(host, "pause", 0);
    f->store = (int)api->option_int(host, "store_checkpoint", 1);
    api->options_with_prefix(host, "x.", add_extra, f);
    if (f->extra[0]) {
        char msg[300];
        snprintf(msg, sizeof msg, "settings: %s", f->extra);
        api->log(host, 2, msg);
    }
    /* Without a stored checkpoint the resume token says how many committed
     * records the host counts on: later ones are taken back, as the NDJSON
     * sink truncates its files. */
    long keep = -1;
    if (!f->store && resume) {
        const char *r = strstr(resume, "\"records\":");
        if (r) keep = strtol(r + 10, NULL, 10);
    }
    FILE *fp = fopen(f->path, "r");
    if (fp) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int first = 1;
        while ((n = getline(&line, &cap, fp)) > 0) {
            if (line[n - 1] == '\n') line[--n] = '\0';
            if (first) {
                first = 0;
                if (strcmp(line, "null") != 0 && !(f->checkpoint = strdup(line))) break;
            } else if (push(&f->done, strdup(line)) != 0) {
                break;
            }
        }
        free(line);
        fclose(fp);
    }
    while (keep >= 0 && f->done.n > (size_t)keep)
        free(f->done.v[--f->done.n]);
    *state = f;
    return PF_SINK_OK;
oom:
    f_close(f);
    snprintf(err, errlen, "out of memory");
    return PF_SINK_RETRY;
}

static pf_sink_result f_write(void *p, const pf_sink_record *recs, size_t n, char *err,
                              size_t errlen)
{
    faulty *f = p;
    if (n && *f->fatal_after == 0) {
        snprintf(err, errlen, "destination gone (injected)");
        return PF_SINK_FATAL;
    }
    if (n && *f->fatal_after > 0) --*f->fatal_after;
    if (n && *f->write_retries_left > 0) {
        --*f->write_retries_left;
        snprintf(err, errlen, "transient write failure injected (%ld more)",
                 *f->write_retries_left);
        return PF_SINK_RETRY;
    }
    for (size_t i = 0; i < n; i++) {
        const pf_sink_record *r = &recs[i];
        if (f->refuse && memmem(r->json, r->json_len, f->refuse, strlen(f->refuse))) {
            snprintf(err, errlen, "record %.*s contains \"%s\", which this sink refuses",
                     (int)(r->key_len < 80 ? r->key_len : 80), r->key ? r->key : "", f->refuse);
            return PF_SINK_ERROR;
        }
        size_t len = strlen(r->stream) + r->key_len + r->json_len + 3;
        char *line = malloc(len);
        if (!line) {
            snprintf(err, errlen, "out of memory");
            return PF_SINK_RETRY;
        }
        snprintf(line, len, "%s\t%.*s\t%.*s", r->stream, (int)r->key_len, r->key ? r->key : "",
                 (int)r->json_len, r->json);
        if (push(&f->pending, line) != 0) {
            snprintf(err, errlen, "out of memory");
            return PF_SINK_RETRY;
        }
    }
    return PF_SINK_OK;
}

static pf_sink_result f_commit(void *p, const char **token, char *err, size_t errlen)
{
    faulty *f = p;
    if (*f->retries_left > 0) {
        --*f->retries_left;
        snprintf(err, errlen, "transient failure injected (%ld more)", *f->retries_left);
        return PF_SINK_RETRY;
    }
    const char *cp = f->api->pending_checkpoint(f->host);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        snprintf(err, errlen, "cannot write %s", tmp);
        return PF_SINK_ERROR;
    }
    fprintf(fp, "%s\n", f->store && cp ? cp : f->checkpoint && f->store ? f->checkpoint : "null");
    for (size_t i = 0; i < f->done.n; i++)
        fprintf(fp, "%s\n", f->done.v[i]);
    for (size_t i = 0; i < f->pending.n; i++)
        fprintf(fp, "%s\n", f->pending.v[i]);
    int bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad || rename(tmp, f->path) != 0) {
        snprintf(err, errlen, "cannot replace %s", f->path);
        return PF_SINK_RETRY;
    }
    for (size_t i = 0; i < f->pending.n; i++) {
        if (push(&f->done, f->pending.v[i]) != 0) {
            snprintf(err, errlen, "out of memory");
            return PF_SINK_RETRY;
        }
    }
    f->pending.n = 0;
    if (f->store && cp) {
        char *c = strdup(cp);
        if (c) {
            free(f->checkpoint);
            f->checkpoint = c;
        }
    }
    if (f->pause_ms > 0) {
        struct timespec ts = {f->pause_ms / 1000, (f->pause_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(f->token, sizeof f->token, "{\"records\":%zu}", f->done.n);
    *token = f->token;
    if (*f->lost_left > 0) {
        /* Durable, but the answer is lost (a connection dropped at COMMIT). */
        --*f->lost_left;
        snprintf(err, errlen, "commit answer lost (injected, %ld more)", *f->lost_left);
        return PF_SINK_RETRY;
    }
    return PF_SINK_OK;
}

static pf_sink_result f_stored(void *p, const char **checkpoint, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    faulty *f = p;
    *checkpoint = f->store ? f->checkpoint : NULL;
    return PF_SINK_OK;
}

#ifdef FAULTY_SMALL
/* A descriptor that claims to be smaller than ABI version 1's. */
#define DESC_SIZE 24
#else
#define DESC_SIZE sizeof(pf_sink_descriptor)
#endif
#ifndef FAULTY_ABI
#define FAULTY_ABI PF_SINK_ABI_VERSION
#endif

__attribute__((visibility("default"))) const pf_sink_descriptor ppflow_sink_descriptor = {
    .abi_version = FAULTY_ABI,
    .struct_size = DESC_SIZE,
    .name = FAULTY_NAME,
    .description = "test sink: one file, records and checkpoint committed together",
    .options = options,
    .open = f_open,
    .write = f_write,
    .commit = f_commit,
    .close = f_close,
    .stored_checkpoint = f_stored,
};
