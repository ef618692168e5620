/* ndjson.c: the built-in NDJSON file sink.
 *
 * One record per line, exactly the record's JSON, appended. `path` may hold
 * `{stream}`, giving one file per stream. A commit flushes the buffers and
 * fsyncs every file written to; its resume token records each file's length,
 * and open truncates a file back to that length, so records written after
 * the last durable commit (a crash, a kill) are not delivered twice. Files
 * are created 0600 with missing parent directories. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink/ppflow_sink.h"
#include "util/buf.h"
#include "util/paths.h"

#define NDJSON_BUF (1u << 20)

typedef struct nd_file {
    char *path;
    int fd;
    pf_buf pending; /* bytes not yet written */
    int dirty;      /* written since last fsync */
} nd_file;

typedef struct nd_stream {
    char *name;
    nd_file *file; /* borrowed from files[] */
} nd_stream;

typedef struct nd_state {
    nd_file *files;
    size_t nfiles;
    nd_stream *streams;
    size_t nstreams;
    int do_fsync;
    char *token;
} nd_state;

static const pf_sink_option nd_options[] = {
    {"path", PF_SINK_OPT_STRING, NULL, 1,
     "file to append records to; {stream} is replaced by the stream name"},
    {"fsync", PF_SINK_OPT_BOOL, "true", 0,
     "fsync files at each commit (turning it off trades durability for speed)"},
    {NULL, 0, NULL, 0, NULL},
};

static void nd_close(void *p)
{
    nd_state *s = p;
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].fd >= 0) close(s->files[i].fd);
        free(s->files[i].path);
        pf_buf_free(&s->files[i].pending);
    }
    for (size_t i = 0; i < s->nstreams; i++) free(s->streams[i].name);
    free(s->files);
    free(s->streams);
    free(s->token);
    free(s);
}

/* Replaces every {stream} in TEMPLATE with STREAM. */
static char *expand_path(const char *tmpl, const char *stream)
{
    pf_buf b;
    pf_buf_init(&b, 8192);
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{stream}", 8) == 0) {
            if (pf_buf_puts(&b, stream) != PF_OK) goto fail;
            p += 8;
        } else if (pf_buf_putc(&b, *p++) != PF_OK) {
            goto fail;
        }
    }
    return pf_buf_steal(&b);
fail:
    pf_buf_free(&b);
    return NULL;
}

static int stream_name_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static pf_sink_result open_file(nd_file *f, json_object *resume_files, char *err, size_t errlen)
{
    pf_error e;
    pf_error_clear(&e);
    if (pf_mkdirs_for(f->path, &e) != PF_OK) {
        snprintf(err, errlen, "%s", e.msg);
        return PF_SINK_ERROR;
    }
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", f->path, strerror(errno));
        return errno == ENOSPC || errno == EINTR ? PF_SINK_RETRY : PF_SINK_ERROR;
    }
    json_object *len_obj;
    if (!resume_files || !json_object_object_get_ex(resume_files, f->path, &len_obj)) return PF_SINK_OK;
    int64_t want = json_object_get_int64(len_obj);
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", f->path, strerror(errno));
        return PF_SINK_ERROR;
    }
    if (st.st_size > want) {
        if (ftruncate(f->fd, want) != 0 || fsync(f->fd) != 0) {
            snprintf(err, errlen, "cannot truncate %s to its last committed length %lld: %s",
                     f->path, (long long)want, strerror(errno));
            return PF_SINK_ERROR;
        }
    }
    return PF_SINK_OK;
}

static pf_sink_result nd_open(const pf_sink_host *host, const pf_sink_host_api *api,
                              const char *const *streams, size_t nstreams, const char *resume,
                              void **state, char *err, size_t errlen)
{
    *state = NULL;
    const char *tmpl = api->option(host, "path");
    if (!tmpl || !*tmpl) {
        snprintf(err, errlen, "option path is required");
        return PF_SINK_ERROR;
    }
    nd_state *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->do_fsync = (int)api->option_int(host, "fsync", 1);
    s->streams = calloc(nstreams ? nstreams : 1, sizeof *s->streams);
    s->files = calloc(nstreams ? nstreams : 1, sizeof *s->files);
    if (!s->streams || !s->files) goto oom;
    json_object *resume_obj = NULL, *resume_files = NULL;
    if (resume) {
        resume_obj = json_tokener_parse(resume);
        if (!resume_obj || !json_object_object_get_ex(resume_obj, "files", &resume_files) ||
            !json_object_is_type(resume_files, json_type_object)) {
            json_object_put(resume_obj);
            snprintf(err, errlen, "resume token is not an ndjson token: %.100s", resume);
            nd_close(s);
            return PF_SINK_ERROR;
        }
    }
    pf_sink_result r = PF_SINK_OK;
    for (size_t i = 0; i < nstreams && r == PF_SINK_OK; i++) {
        if (!stream_name_ok(streams[i])) {
            snprintf(err, errlen, "stream name '%s' cannot be used in a file name", streams[i]);
            r = PF_SINK_ERROR;
            break;
        }
        char *path = expand_path(tmpl, streams[i]);
        s->streams[i].name = strdup(streams[i]);
        s->nstreams++;
        if (!path || !s->streams[i].name) {
            free(path);
            json_object_put(resume_obj);
            goto oom;
        }
        nd_file *f = NULL;
        for (size_t j = 0; j < s->nfiles; j++)
            if (strcmp(s->files[j].path, path) == 0) f = &s->files[j];
        if (f) {
            free(path);
        } else {
            f = &s->files[s->nfiles++];
            f->path = path;
            f->fd = -1;
            pf_buf_init(&f->pending, 0);
            r = open_file(f, resume_files, err, errlen);
        }
        s->streams[i].file = f;
    }
    json_object_put(resume_obj);
    if (r != PF_SINK_OK) {
        nd_close(s);
        return r;
    }
    *state = s;
    return PF_SINK_OK;
oom:
    nd_close(s);
    snprintf(err, errlen, "out of memory");
    return PF_SINK_RETRY;
}

static pf_sink_result flush_file(nd_file *f, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < f->pending.len) {
        ssize_t w = write(f->fd, f->pending.data + off, f->pending.len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            snprintf(err, errlen, "cannot write %s: %s", f->path, strerror(e));
            /* Drop what was written partially from the buffer: the resume
             * token truncates it away on the next open. */
            return e == ENOSPC || e == EDQUOT || e == EIO ? PF_SINK_RETRY : PF_SINK_ERROR;
        }
        off += (size_t)w;
    }
    pf_buf_reset(&f->pending);
    f->dirty = 1;
    return PF_SINK_OK;
}

static pf_sink_result nd_write(void *p, const pf_sink_record *recs, size_t n, char *err,
                               size_t errlen)
{
    nd_state *s = p;
    for (size_t i = 0; i < n; i++) {
        const pf_sink_record *r = &recs[i];
        nd_file *f = NULL;
        for (size_t j = 0; j < s->nstreams; j++)
            if (strcmp(s->streams[j].name, r->stream) == 0) f = s->streams[j].file;
        if (!f) {
            snprintf(err, errlen, "record for unknown stream '%s'", r->stream);
            return PF_SINK_ERROR;
        }
        if (memchr(r->json, '\n', r->json_len)) {
            snprintf(err, errlen, "record contains a line break and cannot be one NDJSON line");
            return PF_SINK_ERROR;
        }
        if (pf_buf_append(&f->pending, r->json, r->json_len) != PF_OK ||
            pf_buf_putc(&f->pending, '\n') != PF_OK) {
            snprintf(err, errlen, "out of memory buffering records");
            return PF_SINK_RETRY;
        }
        if (f->pending.len >= NDJSON_BUF) {
            pf_sink_result res = flush_file(f, err, errlen);
            if (res != PF_SINK_OK) return res;
        }
    }
    return PF_SINK_OK;
}

static pf_sink_result nd_commit(void *p, const char **token, char *err, size_t errlen)
{
    nd_state *s = p;
    json_object *files = json_object_new_object(), *root = json_object_new_object();
    if (!files || !root) {
        json_object_put(files);
        json_object_put(root);
        snprintf(err, errlen, "out of memory");
        return PF_SINK_RETRY;
    }
    json_object_object_add(root, "files", files);
    for (size_t i = 0; i < s->nfiles; i++) {
        nd_file *f = &s->files[i];
        pf_sink_result r = flush_file(f, err, errlen);
        if (r != PF_SINK_OK) {
            json_object_put(root);
            return r;
        }
        if (f->dirty && s->do_fsync && fsync(f->fd) != 0) {
            snprintf(err, errlen, "cannot fsync %s: %s", f->path, strerror(errno));
            json_object_put(root);
            return PF_SINK_RETRY;
        }
        f->dirty = 0;
        struct stat st;
        if (fstat(f->fd, &st) != 0) {
            snprintf(err, errlen, "cannot stat %s: %s", f->path, strerror(errno));
            json_object_put(root);
            return PF_SINK_RETRY;
        }
        json_object_object_add(files, f->path, json_object_new_int64((int64_t)st.st_size));
    }
    free(s->token);
    s->token = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    if (!s->token) {
        snprintf(err, errlen, "out of memory");
        return PF_SINK_RETRY;
    }
    *token = s->token;
    return PF_SINK_OK;
}

const pf_sink_descriptor pf_ndjson_sink = {
    .abi_version = PF_SINK_ABI_VERSION,
    .struct_size = sizeof(pf_sink_descriptor),
    .name = "ndjson",
    .description = "newline-delimited JSON files, one record per line",
    .options = nd_options,
    .open = nd_open,
    .write = nd_write,
    .commit = nd_commit,
    .close = nd_close,
    .stored_checkpoint = NULL, /* the checkpoint file is the only checkpoint */
};
