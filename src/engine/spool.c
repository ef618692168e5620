/* spool.c: the unit's records in a local file (opened with
 * pf_open_private), for replay to the sink without another API call. See
 * spool.h for the contract and the format. */
#include "engine/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/safefile.h"

#define WBUF_SIZE ((size_t)1 << 20)
#define FRAME_HEAD 12
#define NO_KEY UINT32_MAX

struct pf_spool {
    int fd;
    char *path;
    const char *const *streams;
    size_t nstreams;
    uint64_t max_bytes;
    uint64_t flushed; /* bytes in the file */
    char *wbuf;       /* bytes not yet written */
    size_t wlen;
    uint64_t *off; /* offset of each record */
    size_t count, cap;
    int broken; /* an append failed since the last reset */
    char *rbuf; /* pf_spool_read's bytes and records */
    size_t rcap;
    pf_sink_record *recs;
    size_t recs_cap;
};

pf_status pf_spool_open(const char *path, const char *const *streams, size_t nstreams,
                        uint64_t max_bytes, pf_spool **out, pf_error *err)
{
    *out = NULL;
    pf_spool *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path)) || !(s->wbuf = malloc(WBUF_SIZE))) {
        if (s) free(s->path);
        free(s);
        return pf_error_set(err, PF_ENOMEM, "out of memory opening the spool");
    }
    pf_error e;
    pf_error_clear(&e);
    s->fd = pf_open_private(path, O_RDWR | O_CREAT | O_TRUNC, "cannot use the spool file", &e);
    if (s->fd < 0) {
        pf_error_set(err, PF_EIO, "%s", e.msg);
        free(s->wbuf);
        free(s->path);
        free(s);
        return PF_EIO;
    }
    s->streams = streams;
    s->nstreams = nstreams;
    s->max_bytes = max_bytes;
    *out = s;
    return PF_OK;
}

pf_status pf_spool_reset(pf_spool *s, pf_error *err)
{
    s->count = 0;
    s->wlen = 0;
    s->flushed = 0;
    s->broken = 0;
    if (ftruncate(s->fd, 0) != 0) {
        s->broken = 1;
        return pf_error_set(err, PF_EIO, "cannot empty the spool file %s: %s", s->path,
                            strerror(errno));
    }
    return PF_OK;
}

static pf_status flush(pf_spool *s, pf_error *err)
{
    size_t done = 0;
    while (done < s->wlen) {
        ssize_t n = pwrite(s->fd, s->wbuf + done, s->wlen - done, (off_t)(s->flushed + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            s->broken = 1;
            return pf_error_set(err, e == ENOSPC || e == EDQUOT || e == EFBIG ? PF_ETOOBIG : PF_EIO,
                                "cannot write the spool file %s: %s", s->path, strerror(e));
        }
        done += (size_t)n;
    }
    s->flushed += s->wlen;
    s->wlen = 0;
    return PF_OK;
}

static size_t stream_index(const pf_spool *s, const char *stream)
{
    for (size_t i = 0; i < s->nstreams; i++)
        if (s->streams[i] == stream) return i;
    for (size_t i = 0; stream && i < s->nstreams; i++)
        if (strcmp(s->streams[i], stream) == 0) return i;
    return SIZE_MAX;
}

static void put32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Appends N bytes at P through the write buffer. */
static pf_status put(pf_spool *s, const char *p, size_t n, pf_error *err)
{
    while (n) {
        if (s->wlen == WBUF_SIZE && flush(s, err) != PF_OK) return err ? err->code : PF_EIO;
        size_t k = WBUF_SIZE - s->wlen < n ? WBUF_SIZE - s->wlen : n;
        memcpy(s->wbuf + s->wlen, p, k);
        s->wlen += k;
        p += k;
        n -= k;
    }
    return PF_OK;
}

pf_status pf_spool_append(pf_spool *s, const pf_sink_record *rec, pf_error *err)
{
    if (s->broken)
        return pf_error_set(err, PF_ETOOBIG, "the spool file %s is unusable for this unit",
                            s->path);
    size_t si = stream_index(s, rec->stream);
    if (si == SIZE_MAX) {
        s->broken = 1;
        return pf_error_set(err, PF_EINVAL, "a record of an unknown stream cannot be spooled");
    }
    if (rec->json_len >= NO_KEY || (rec->key && rec->key_len >= NO_KEY)) {
        s->broken = 1;
        return pf_error_set(err, PF_ETOOBIG, "a record is too large for the spool");
    }
    uint64_t total = s->flushed + s->wlen;
    uint64_t need = FRAME_HEAD + (rec->key ? rec->key_len : 0) + rec->json_len;
    if (total + need > s->max_bytes) {
        s->broken = 1;
        return pf_error_set(err, PF_ETOOBIG,
                            "the unit's records passed the spool's limit of %llu bytes",
                            (unsigned long long)s->max_bytes);
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *o = cap < SIZE_MAX / sizeof *o ? realloc(s->off, cap * sizeof *o) : NULL;
        if (!o) {
            s->broken = 1;
            return pf_error_set(err, PF_ENOMEM, "out of memory spooling a record");
        }
        s->off = o;
        s->cap = cap;
    }
    char head[FRAME_HEAD];
    put32(head, (uint32_t)si);
    put32(head + 4, rec->key ? (uint32_t)rec->key_len : NO_KEY);
    put32(head + 8, (uint32_t)rec->json_len);
    if (put(s, head, sizeof head, err) != PF_OK ||
        (rec->key && put(s, rec->key, rec->key_len, err) != PF_OK) ||
        put(s, rec->json, rec->json_len, err) != PF_OK) {
        s->broken = 1;
        return err ? err->code : PF_EIO;
    }
    s->off[s->count++] = total;
    return PF_OK;
}

pf_status pf_spool_flush(pf_spool *s, pf_error *err)
{
    if (s->broken)
        return pf_error_set(err, PF_EIO, "the spool file %s is unusable for this unit", s->path);
    return s->wlen ? flush(s, err) : PF_OK;
}

int pf_spool_usable(const pf_spool *s)
{
    return s && !s->broken;
}

size_t pf_spool_count(const pf_spool *s)
{
    return s ? s->count : 0;
}

size_t pf_spool_fit(const pf_spool *s, size_t first, size_t max_n, size_t max_bytes)
{
    if (!s || first >= s->count) return 0;
    size_t left = s->count - first, n = left < max_n ? left : max_n;
    if (n == 0) return 0;
    uint64_t end_all = s->flushed + s->wlen;
    /* Binary search for the most records whose bytes fit. */
    size_t lo = 1, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        uint64_t end = first + mid < s->count ? s->off[first + mid] : end_all;
        if (end - s->off[first] <= max_bytes)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

pf_status pf_spool_read(pf_spool *s, size_t first, size_t n, const pf_sink_record **recs,
                        pf_error *err)
{
    *recs = NULL;
    if (s->broken)
        return pf_error_set(err, PF_EIO, "the spool file %s is unusable for this unit", s->path);
    if (first > s->count || n > s->count - first)
        return pf_error_set(err, PF_EINVAL, "spool read out of range");
    if (n == 0) return PF_OK;
    if (s->wlen && flush(s, err) != PF_OK) return err ? err->code : PF_EIO;
    uint64_t a = s->off[first], b = first + n < s->count ? s->off[first + n] : s->flushed;
    size_t len = (size_t)(b - a);
    if (len > s->rcap) {
        char *r = realloc(s->rbuf, len);
        if (!r) return pf_error_set(err, PF_ENOMEM, "out of memory reading the spool");
        s->rbuf = r;
        s->rcap = len;
    }
    if (n > s->recs_cap) {
        pf_sink_record *v = n < SIZE_MAX / sizeof *v ? realloc(s->recs, n * sizeof *v) : NULL;
        if (!v) return pf_error_set(err, PF_ENOMEM, "out of memory reading the spool");
        s->recs = v;
        s->recs_cap = n;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t k = pread(s->fd, s->rbuf + done, len - done, (off_t)(a + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return pf_error_set(err, k < 0 ? PF_EIO : PF_EDATA, "cannot read the spool file %s: %s",
                                s->path, k < 0 ? strerror(errno) : "it is shorter than written");
        done += (size_t)k;
    }
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        if (len - p < FRAME_HEAD)
            return pf_error_set(err, PF_EDATA, "the spool file %s was changed", s->path);
        uint32_t si = get32(s->rbuf + p), kl = get32(s->rbuf + p + 4), jl = get32(s->rbuf + p + 8);
        p += FRAME_HEAD;
        size_t klen = kl == NO_KEY ? 0 : kl;
        if (si >= s->nstreams || klen > len - p || jl > len - p - klen)
            return pf_error_set(err, PF_EDATA, "the spool file %s was changed", s->path);
        s->recs[i] = (pf_sink_record){s->streams[si], kl == NO_KEY ? NULL : s->rbuf + p, klen,
                                      s->rbuf + p + klen, jl};
        p += klen + jl;
    }
    *recs = s->recs;
    return PF_OK;
}

void pf_spool_close(pf_spool *s)
{
    if (!s) return;
    close(s->fd);
    unlink(s->path);
    free(s->path);
    free(s->wbuf);
    free(s->off);
    free(s->rbuf);
    free(s->recs);
    free(s);
}
