/* bench_extract.c: record extraction alone, for the benchmark (tests/bench/run.sh).
 *
 *   bench_extract stream|buffered TEMPLATE.yaml INPUT.json OUTPUT.ndjson
 *
 * stream:   reads INPUT in 64 KiB chunks into a pf_sx (stream_extract.h), as
 *           libcurl's write callback would, and writes each record as one
 *           NDJSON line (buffered stdio);
 * buffered: reads INPUT whole and runs pf_extract_records (json-c + JSONPath),
 *           then writes the lines.
 * Prints "records=N bytes=M seconds=S" on stderr. Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/extract.h"
#include "engine/stream_extract.h"
#include "flow/template.h"

typedef struct out_ctx {
    FILE *f;
    size_t records;
} out_ctx;

static pf_status write_line(void *ud, const pf_sink_record *r, pf_error *err)
{
    out_ctx *o = ud;
    if (fwrite(r->json, 1, r->json_len, o->f) != r->json_len || putc('\n', o->f) == EOF)
        return pf_error_set(err, PF_EIO, "cannot write the output");
    o->records++;
    return PF_OK;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "stream") != 0 && strcmp(argv[1], "buffered") != 0)) {
        fprintf(stderr, "usage: %s stream|buffered TEMPLATE.yaml INPUT.json OUTPUT.ndjson\n",
                argv[0]);
        return 2;
    }
    int streaming = strcmp(argv[1], "stream") == 0;
    pf_template *t = NULL;
    pf_diags d = {0};
    if (pf_template_load_file(argv[2], &t, &d) != PF_OK) {
        fprintf(stderr, "%s: cannot load the template\n", argv[2]);
        return 1;
    }
    pf_diags_free(&d);
    FILE *in = fopen(argv[3], "rb");
    FILE *out = fopen(argv[4], "wb");
    if (!in || !out) {
        fprintf(stderr, "cannot open %s\n", !in ? argv[3] : argv[4]);
        return 1;
    }
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    out_ctx o = {out, 0};
    pf_error err;
    pf_error_clear(&err);
    pf_status st = PF_OK;
    size_t bytes = 0;
    double t0 = now();
    if (streaming) {
        pf_sx *sx = pf_sx_new(t, 0, 0, write_line, &o, &err);
        if (!sx) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (!pf_sx_is_streaming(sx))
            fprintf(stderr, "note: buffered mode: %s\n", pf_sx_buffered_reason(sx));
        static char chunk[64 << 10];
        size_t n;
        while (st == PF_OK && (n = fread(chunk, 1, sizeof chunk, in)) > 0) {
            bytes += n;
            st = pf_sx_feed(sx, chunk, n, &err);
        }
        if (st == PF_OK) st = pf_sx_finish(sx, &err);
        pf_sx_free(sx);
    } else {
        size_t cap = 1 << 20, len = 0, n;
        char *body = malloc(cap);
        while (body && (n = fread(body + len, 1, cap - len, in)) > 0) {
            len += n;
            if (len == cap) {
                char *nb = realloc(body, cap *= 2);
                if (!nb) free(body);
                body = nb;
            }
        }
        if (!body) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        bytes = len;
        pf_records recs = {0};
        st = pf_extract_records(t, body, len, &recs, &err);
        for (size_t i = 0; st == PF_OK && i < recs.count; i++)
            st = write_line(&o, &recs.recs[i], &err);
        pf_records_free(&recs);
        free(body);
    }
    if (fclose(out) != 0 && st == PF_OK) st = pf_error_set(&err, PF_EIO, "cannot write the output");
    double secs = now() - t0;
    fclose(in);
    pf_template_free(t);
    if (st != PF_OK) {
        char msg[PF_ERROR_MSG_MAX + 64];
        pf_error_format(&err, msg, sizeof msg);
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    fprintf(stderr, "records=%zu bytes=%zu seconds=%.3f\n", o.records, bytes, secs);
    return 0;
}
