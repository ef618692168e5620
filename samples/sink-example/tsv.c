/* tsv.c: an example third-party ppflow sink, built outside ppflow's source
 * tree against the installed header (pkg-config ppflow-sink).
 *
 * It appends one line per record to a file: stream, key and the record's
 * JSON, separated by tabs (JSON text never holds a raw tab or newline). A
 * commit flushes and fsyncs; the resume token is the file's length at that
 * point, and open truncates the file back to it, so records written after
 * the last durable commit are never delivered twice. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ppflow_sink.h>

typedef struct tsv {
    FILE *fp;
    char token[64];
} tsv;

static const pf_sink_option options[] = {
    {"path", PF_SINK_OPT_STRING, NULL, 1, "the file to append records to"},
    {NULL, 0, NULL, 0, NULL},
};

static void tsv_close(void *p)
{
    tsv *t = p;
    if (!t) return;
    if (t->fp) fclose(t->fp);
    free(t);
}

static pf_sink_result tsv_open(const pf_sink_host *host, const pf_sink_host_api *api,
                               const char *const *streams, size_t nstreams, const char *resume,
                               void **state, char *err, size_t errlen)
{
    (void)streams;
    (void)nstreams;
    const char *path = api->option(host, "path");
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return PF_SINK_ERROR;
    }
    /* Resume token: {"length":N}. Without one, keep what the file holds. */
    long long len = -1;
    if (resume && sscanf(resume, "{\"length\":%lld}", &len) == 1 && len >= 0) {
        if (ftruncate(fd, (off_t)len) != 0) {
            snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
            close(fd);
            return PF_SINK_RETRY;
        }
    }
    tsv *t = calloc(1, sizeof *t);
    if (!t || !(t->fp = fdopen(fd, "a"))) {
        free(t);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return PF_SINK_RETRY;
    }
    *state = t;
    return PF_SINK_OK;
}

static pf_sink_result tsv_write(void *p, const pf_sink_record *recs, size_t n, char *err,
                                size_t errlen)
{
    tsv *t = p;
    for (size_t i = 0; i < n; i++) {
        const pf_sink_record *r = &recs[i];
        if (fprintf(t->fp, "%s\t%.*s\t%.*s\n", r->stream, (int)r->key_len, r->key ? r->key : "",
                    (int)r->json_len, r->json) < 0) {
            snprintf(err, errlen, "write failed: %s", strerror(errno));
            return PF_SINK_RETRY;
        }
    }
    return PF_SINK_OK;
}

static pf_sink_result tsv_commit(void *p, const char **token, char *err, size_t errlen)
{
    tsv *t = p;
    if (fflush(t->fp) != 0 || fsync(fileno(t->fp)) != 0) {
        snprintf(err, errlen, "flush failed: %s", strerror(errno));
        return PF_SINK_RETRY;
    }
    struct stat st;
    if (fstat(fileno(t->fp), &st) != 0) {
        snprintf(err, errlen, "stat failed: %s", strerror(errno));
        return PF_SINK_RETRY;
    }
    snprintf(t->token, sizeof t->token, "{\"length\":%lld}", (long long)st.st_size);
    *token = t->token;
    return PF_SINK_OK;
}

__attribute__((visibility("default"))) const pf_sink_descriptor ppflow_sink_descriptor = {
    .abi_version = PF_SINK_ABI_VERSION,
    .struct_size = sizeof(pf_sink_descriptor),
    .name = "tsv",
    .description = "example: one tab-separated line per record (stream, key, JSON)",
    .options = options,
    .open = tsv_open,
    .write = tsv_write,
    .commit = tsv_commit,
    .close = tsv_close,
};
