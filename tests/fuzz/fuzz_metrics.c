/* fuzz_metrics.c: libFuzzer target for the metrics endpoint's request-head
 * parser (pf_metrics_parse_request and pf_metrics_route, sched/metrics.h).
 *
 * Each input is copied into a heap block of exactly its length (so
 * AddressSanitizer sees any read past it) and checked:
 *   1. the verdict is one of the four, and the status one of 0 (keep
 *      reading), 200, 400, 404, 405, 431, matching the verdict;
 *   2. TOO_LARGE exactly when the input is at least PF_METRICS_MAX_REQUEST
 *      bytes with no verdict within them, INCOMPLETE only below that size;
 *   3. an OK head lies within the input and the cap, ends with an empty
 *      line, holds no NUL, no control byte but HTAB, CR and LF, and no bare
 *      CR; its target lies within the input, holds only visible ASCII, and
 *      the path is inside the target (or the static "/"); GET and HEAD are
 *      recognised exactly;
 *   4. a verdict never changes as more bytes arrive: the prefix one byte
 *      short of an OK head is INCOMPLETE, the head alone gives the same
 *      request, and any verdict other than INCOMPLETE is the same with
 *      bytes appended and with the input cut at the cap.
 * Any violation aborts, which libFuzzer reports as a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/metrics.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

/* Parses a heap copy of exactly LEN bytes of DATA (+ EXTRA bytes of "x"). */
static pf_metrics_parse parse_copy(const uint8_t *data, size_t len, size_t extra,
                                   pf_metrics_request *req, size_t *target_off, size_t *path_off)
{
    char *buf = malloc(len + extra ? len + extra : 1);
    CHECK(buf);
    if (len) memcpy(buf, data, len);
    memset(buf + len, 'x', extra);
    pf_metrics_parse r = pf_metrics_parse_request(len + extra ? buf : NULL, len + extra, req);
    if (r == PF_METRICS_PARSE_OK) {
        *target_off = (size_t)(req->target - buf);
        *path_off = req->path && req->path >= buf && req->path < buf + len + extra
                        ? (size_t)(req->path - buf)
                        : SIZE_MAX;
        /* Pointers die with BUF: keep offsets only. */
        req->target = NULL;
        if (*path_off != SIZE_MAX) req->path = NULL;
    }
    free(buf);
    return r;
}

static int same_request(const pf_metrics_request *a, size_t ta, size_t pa,
                        const pf_metrics_request *b, size_t tb, size_t pb)
{
    return a->method == b->method && a->target_len == b->target_len && ta == tb && pa == pb &&
           a->path_len == b->path_len && (a->path == NULL) == (b->path == NULL) &&
           a->minor_version == b->minor_version && a->head_len == b->head_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t MAX = PF_METRICS_MAX_REQUEST;
    /* Exactly-sized copy: the parse whose pointers are checked. */
    char *buf = malloc(size ? size : 1);
    CHECK(buf);
    if (size) memcpy(buf, data, size);
    pf_metrics_request req;
    memset(&req, 0x5a, sizeof req);
    pf_metrics_parse r = pf_metrics_parse_request(size ? buf : NULL, size, &req);
    int status = pf_metrics_route(r, r == PF_METRICS_PARSE_OK ? &req : NULL);

    /* 1, 2 */
    switch (r) {
    case PF_METRICS_PARSE_INCOMPLETE:
        CHECK(status == 0);
        CHECK(size < MAX);
        break;
    case PF_METRICS_PARSE_BAD:
        CHECK(status == 400);
        break;
    case PF_METRICS_PARSE_TOO_LARGE:
        CHECK(status == 431);
        CHECK(size >= MAX);
        break;
    case PF_METRICS_PARSE_OK:
        CHECK(status == 200 || status == 400 || status == 404 || status == 405);
        break;
    default:
        abort();
    }

    /* 3 */
    size_t t_off = 0, p_off = SIZE_MAX;
    if (r == PF_METRICS_PARSE_OK) {
        size_t h = req.head_len;
        CHECK(h > 0 && h <= size && h <= MAX);
        CHECK(buf[h - 1] == '\n');
        CHECK(h >= 2 &&
              (buf[h - 2] == '\n' || (h >= 3 && buf[h - 2] == '\r' && buf[h - 3] == '\n')));
        for (size_t i = 0; i < h; i++) {
            unsigned char c = (unsigned char)buf[i];
            CHECK(c != 0);
            CHECK(c >= 0x20 || c == '\t' || c == '\r' || c == '\n');
            CHECK(c != 0x7f);
            if (c == '\r') CHECK(i + 1 < h && buf[i + 1] == '\n');
        }
        CHECK(req.target > buf && req.target_len > 0 && req.target + req.target_len < buf + h);
        for (size_t i = 0; i < req.target_len; i++)
            CHECK(req.target[i] > 0x20 && req.target[i] < 0x7f);
        t_off = (size_t)(req.target - buf);
        if (req.path) {
            int inside =
                req.path >= req.target && req.path + req.path_len <= req.target + req.target_len;
            CHECK(inside || (req.path_len == 1 && req.path[0] == '/'));
            CHECK(req.path_len > 0 && req.path[0] == '/');
            CHECK(memchr(req.path, '?', req.path_len) == NULL);
            if (inside) p_off = (size_t)(req.path - buf);
        }
        CHECK(req.minor_version >= 0 && req.minor_version <= 9);
        size_t mlen = t_off - 1;
        int get = mlen == 3 && memcmp(buf, "GET", 3) == 0;
        int head = mlen == 4 && memcmp(buf, "HEAD", 4) == 0;
        CHECK(req.method == (get    ? PF_METRICS_METHOD_GET
                             : head ? PF_METRICS_METHOD_HEAD
                                    : PF_METRICS_METHOD_OTHER));
        if (status == 200)
            CHECK((get || head) && req.path && req.path_len == 8 &&
                  (memcmp(req.path, "/metrics", 8) == 0 || memcmp(req.path, "/healthz", 8) == 0));
    }
    free(buf);

    /* 4 */
    pf_metrics_request other;
    size_t t2 = 0, p2 = SIZE_MAX;
    if (r == PF_METRICS_PARSE_OK) {
        CHECK(parse_copy(data, req.head_len - 1, 0, &other, &t2, &p2) ==
              PF_METRICS_PARSE_INCOMPLETE);
        CHECK(parse_copy(data, req.head_len, 0, &other, &t2, &p2) == PF_METRICS_PARSE_OK);
        req.target = NULL;
        if (p_off != SIZE_MAX) req.path = NULL;
        CHECK(same_request(&req, t_off, p_off, &other, t2, p2));
    }
    if (r != PF_METRICS_PARSE_INCOMPLETE) {
        pf_metrics_request more;
        size_t t3 = 0, p3 = SIZE_MAX;
        CHECK(parse_copy(data, size, 7, &more, &t3, &p3) == r);
        if (r == PF_METRICS_PARSE_OK) CHECK(same_request(&req, t_off, p_off, &more, t3, p3));
        if (size > MAX) CHECK(parse_copy(data, MAX, 0, &more, &t3, &p3) == r);
    } else if (size > 0) {
        pf_metrics_parse rp = parse_copy(data, size - 1, 0, &other, &t2, &p2);
        CHECK(rp == PF_METRICS_PARSE_INCOMPLETE);
    }
    return 0;
}
