/* ndjson.c: the built-in NDJSON file sink.
 *
 * One record per line, exactly the record's JSON, appended. `path` may hold
 * `{stream}`, giving one file per stream. A commit flushes the buffers and
 * fsyncs every file written to; its resume token records each file's length,
 * and open truncates a file back to that length, so records written after
 * the last durable commit (a crash, a kill, a full disk) are not delivered
 * twice.
 *
 * Paths: stream names are restricted to [A-Za-z0-9_-] (at most 128 bytes),
 * the expanded path is normalised lexically and must stay inside the
 * directory that precedes the first `{stream}`, and the file must be a
 * regular file reached without following a symbolic link in its last
 * component. Files are created 0600 and directories 0700 (never wider,
 * whatever the umask).
 *
 * One output file, one flow: each file is held with an exclusive lock
 * (flock LOCK_EX|LOCK_NB) from open to close, taken before the file is
 * truncated to its committed length, so a second process that opens the
 * same file (another flow with the same sink.path) fails at once with
 * PF_SINK_BUSY, "output file X is in use by another ppflow flow (pid N)",
 * instead of cutting away the first one's committed records. A file system
 * without locks (ENOLCK, EOPNOTSUPP) is used unlocked, with a warning.
 *
 * Write errors (ENOSPC, EFBIG, EIO, ...) are the file system's, not the
 * batch's: they answer RETRY with a message naming the file and the errno,
 * so the engine retries and then fails the run; records are never
 * dead-lettered because a disk is full. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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
    for (size_t i = 0; i < s->nstreams; i++)
        free(s->streams[i].name);
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

#define STREAM_NAME_MAX 128

static int stream_name_ok(const char *s)
{
    size_t n = 0;
    if (!*s) return 0;
    for (; *s; s++, n++)
        if (n >= STREAM_NAME_MAX || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                                      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* The symbolic name of the errno values a file sink meets, for messages
 * that an operator can search for ("No space left on device (ENOSPC)"). */
static const char *errno_name(int e)
{
    switch (e) {
    case ENOSPC:
        return "ENOSPC";
    case EFBIG:
        return "EFBIG";
    case EDQUOT:
        return "EDQUOT";
    case EIO:
        return "EIO";
    case EROFS:
        return "EROFS";
    case EACCES:
        return "EACCES";
    case EPERM:
        return "EPERM";
    case ENOENT:
        return "ENOENT";
    case ELOOP:
        return "ELOOP";
    case EISDIR:
        return "EISDIR";
    case EMFILE:
        return "EMFILE";
    case ENFILE:
        return "ENFILE";
    case ENAMETOOLONG:
        return "ENAMETOOLONG";
    default:
        return NULL;
    }
}

/* Formats "VERB PATH: strerror (NAME)" into ERR. */
static void file_error(char *err, size_t errlen, const char *verb, const char *path, int e)
{
    const char *name = errno_name(e);
    if (name)
        snprintf(err, errlen, "cannot %s %s: %s (%s)", verb, path, strerror(e), name);
    else
        snprintf(err, errlen, "cannot %s %s: %s (errno %d)", verb, path, strerror(e), e);
}

/* Errors that may go away by themselves (space freed, descriptors closed). */
static int transient_errno(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EIO || e == EINTR || e == EMFILE || e == ENFILE ||
           e == EFBIG;
}

/* The pid holding a flock on the file of ST, from /proc/locks (Linux), or
 * -1 when it cannot be told. */
static long lock_holder(const struct stat *st)
{
    FILE *fp = fopen("/proc/locks", "re");
    if (!fp) return -1;
    char line[256];
    long pid = -1;
    while (pid < 0 && fgets(line, sizeof line, fp)) {
        /* "1: FLOCK  ADVISORY  WRITE 12345 fd:01:1234567 0 EOF"; waiters
         * have "->" after the number and are skipped by the type test. */
        char type[16];
        long p;
        unsigned maj, min;
        unsigned long long ino;
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", type, &p, &maj, &min, &ino) == 5 &&
            strcmp(type, "FLOCK") == 0 && ino == (unsigned long long)st->st_ino &&
            maj == major(st->st_dev) && min == minor(st->st_dev))
            pid = p;
    }
    fclose(fp);
    return pid;
}

/* Takes the exclusive lock on F's file (see the top of this file). */
static pf_sink_result lock_file(nd_file *f, const struct stat *st, const pf_sink_host *host,
                                const pf_sink_host_api *api, char *err, size_t errlen)
{
    int r;
    while ((r = flock(f->fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (r == 0) return PF_SINK_OK;
    int le = errno;
    if (le == EWOULDBLOCK) {
        long pid = lock_holder(st);
        char who[48] = "";
        if (pid > 0) snprintf(who, sizeof who, " (pid %ld)", pid);
        snprintf(err, errlen,
                 "output file %s is in use by another ppflow flow%s; one output file, one "
                 "flow: give each flow its own sink.path",
                 f->path, who);
        return PF_SINK_BUSY;
    }
    if (le == ENOLCK || le == EOPNOTSUPP || le == ENOSYS || le == EINVAL) {
        char msg[PATH_MAX + 200];
        snprintf(msg, sizeof msg,
                 "cannot lock %s (%s): the file system has no locks, so another flow writing "
                 "the same file would not be noticed",
                 f->path, strerror(le));
        if (api && api->log) api->log(host, 1, msg);
        return PF_SINK_OK;
    }
    file_error(err, errlen, "lock", f->path, le);
    return PF_SINK_ERROR;
}

static pf_sink_result open_file(nd_file *f, json_object *resume_files, const char *raw_path,
                                const pf_sink_host *host, const pf_sink_host_api *api,
                                char *err, size_t errlen)
{
    pf_error e;
    pf_error_clear(&e);
    if (pf_mkdirs_for(f->path, &e) != PF_OK) {
        snprintf(err, errlen, "%s", e.msg);
        return PF_SINK_ERROR;
    }
    /* Mode 0600 (a umask can only remove bits); O_NOFOLLOW: a symbolic link
     * planted in the output directory cannot redirect records elsewhere;
     * O_NONBLOCK: a FIFO in the file's place cannot block the open. */
    f->fd =
        open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    int oe = errno;
    if (f->fd < 0) {
        if (oe == ELOOP)
            snprintf(err, errlen,
                     "cannot open %s: it is a symbolic link (not followed for sink "
                     "files)",
                     f->path);
        else if (oe == ENXIO)
            snprintf(err, errlen, "cannot use %s: not a regular file", f->path);
        else
            file_error(err, errlen, "open", f->path, oe);
        return transient_errno(oe) ? PF_SINK_RETRY : PF_SINK_ERROR;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        file_error(err, errlen, "stat", f->path, errno);
        return PF_SINK_ERROR;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot use %s: not a regular file", f->path);
        return PF_SINK_ERROR;
    }
    /* A file another user owns (planted in a shared directory) would
     * receive the records: refused, as for every file ppflow writes. */
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "cannot use %s: it is owned by uid %ld, not by the user running ppflow "
                 "(uid %ld)",
                 f->path, (long)st.st_uid, (long)geteuid());
        return PF_SINK_ERROR;
    }
    int fl = fcntl(f->fd, F_GETFL);
    if (fl < 0 || fcntl(f->fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        file_error(err, errlen, "configure", f->path, errno);
        return PF_SINK_ERROR;
    }
    /* Before anything is truncated: another flow's records are not ours to cut. */
    pf_sink_result lr = lock_file(f, &st, host, api, err, errlen);
    if (lr != PF_SINK_OK) return lr;
    json_object *len_obj;
    if (!resume_files || (!json_object_object_get_ex(resume_files, f->path, &len_obj) &&
                          !json_object_object_get_ex(resume_files, raw_path, &len_obj)))
        return PF_SINK_OK;
    /* A length is a JSON integer within the file's range: "17k", 17.5 or
     * null would truncate the file to the wrong length. */
    int64_t want = json_object_is_type(len_obj, json_type_int) ? json_object_get_int64(len_obj) : -1;
    if (want < 0 || want == INT64_MAX) {
        snprintf(err, errlen,
                 "the checkpoint's committed length of %s is not a byte count: %.40s; the "
                 "checkpoint was edited or damaged",
                 f->path, json_object_to_json_string_ext(len_obj, JSON_C_TO_STRING_PLAIN));
        return PF_SINK_ERROR;
    }
    if (st.st_size > want) {
        if (ftruncate(f->fd, want) != 0 || fsync(f->fd) != 0) {
            int te = errno;
            snprintf(err, errlen, "cannot truncate %s to its last committed length %lld: %s",
                     f->path, (long long)want, strerror(te));
            return transient_errno(te) ? PF_SINK_RETRY : PF_SINK_ERROR;
        }
    }
    return PF_SINK_OK;
}

/* Expands TMPL for STREAM, normalises the result and checks that it stays in
 * the directory before the first {stream}. Returns the malloc'd path and the
 * raw expansion in *RAW (older resume tokens use it), or NULL with ERR set. */
static char *stream_path(const char *tmpl, const char *stream, char **raw, char *err, size_t errlen)
{
    *raw = expand_path(tmpl, stream);
    if (!*raw) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char norm[PATH_MAX], dir[PATH_MAX];
    pf_error e;
    pf_error_clear(&e);
    if (pf_path_normalize(*raw, norm, sizeof norm, &e) != PF_OK) {
        snprintf(err, errlen, "sink path for stream %s: %s", stream, e.msg);
        goto fail;
    }
    const char *first = strstr(tmpl, "{stream}");
    if (first) {
        /* The directory part of the path before {stream}, e.g. "out/" of
         * "out/{stream}.ndjson" ("." when there is none). */
        size_t l = (size_t)(first - tmpl);
        while (l > 0 && tmpl[l - 1] != '/')
            l--;
        if (l >= sizeof dir) l = sizeof dir - 1;
        memcpy(dir, tmpl, l);
        dir[l] = '\0';
        if (!dir[0]) snprintf(dir, sizeof dir, ".");
        if (!pf_path_within(dir, norm)) {
            snprintf(err, errlen, "sink path %s for stream %s leaves the directory %s", norm,
                     stream, dir);
            goto fail;
        }
    }
    char *p = strdup(norm);
    if (p) return p;
    snprintf(err, errlen, "out of memory");
fail:
    free(*raw);
    *raw = NULL;
    return NULL;
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
        /* The whole token must be one JSON value: trailing text is damage. */
        json_tokener *tok = json_tokener_new();
        size_t rlen = strlen(resume);
        resume_obj = tok ? json_tokener_parse_ex(tok, resume, (int)rlen) : NULL;
        if (resume_obj && (json_tokener_get_error(tok) != json_tokener_success ||
                           json_tokener_get_parse_end(tok) != rlen)) {
            json_object_put(resume_obj);
            resume_obj = NULL;
        }
        json_tokener_free(tok);
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
            char shown[80];
            size_t k = 0;
            for (const char *c = streams[i]; *c && k < 64; c++)
                shown[k++] = *c >= 0x20 && *c < 0x7f ? *c : '?';
            shown[k] = '\0';
            snprintf(err, errlen,
                     "stream name '%s' cannot be used in a file name (letters, digits, '_' and "
                     "'-' only, at most %d)",
                     shown, STREAM_NAME_MAX);
            r = PF_SINK_ERROR;
            break;
        }
        char *raw = NULL;
        char *path = stream_path(tmpl, streams[i], &raw, err, errlen);
        if (!path) {
            r = PF_SINK_ERROR;
            break;
        }
        s->streams[i].name = strdup(streams[i]);
        s->nstreams++;
        if (!s->streams[i].name) {
            free(path);
            free(raw);
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
            r = open_file(f, resume_files, raw, host, api, err, errlen);
        }
        free(raw);
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
            /* A file-system failure, not the batch's: RETRY (never ERROR,
             * which would dead-letter good records). What was written
             * partially is truncated away by the reopen from the last
             * resume token. */
            file_error(err, errlen, "write", f->path, errno);
            return PF_SINK_RETRY;
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
            file_error(err, errlen, "fsync", f->path, errno);
            json_object_put(root);
            return PF_SINK_RETRY;
        }
        f->dirty = 0;
        struct stat st;
        if (fstat(f->fd, &st) != 0) {
            file_error(err, errlen, "stat", f->path, errno);
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
