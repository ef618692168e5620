/* fuzz_jstream.c: libFuzzer target for the streaming record extractor and
 * its tokenizer. Input: two bytes giving a split position, one byte giving
 * the chunk size after the split (0: the rest at once), then the body. The
 * body is streamed through a pf_sx for a fixed template whose streams all
 * have the streaming shapes, and extracted again by pf_extract_records
 * (json-c + JSONPath). Aborts when:
 *   - one path accepts the body and the other refuses it, or both refuse it
 *     with a different code or offset;
 *   - both accept it with a different number of records per stream, or
 *     different keys (compared in order, except for the union stream whose
 *     order differs by design);
 *   - a streamed record is not itself one valid, minified JSON value;
 *   - a template that cannot stream ($.a[?@.id], whose buffered check
 *     refuses any repeated member name) accepts a body the streaming
 *     template refuses;
 *   - the record pf_extract_records makes of the whole body (path $) is not
 *     the text json-c prints for the document json-c parses from it (when
 *     the body has no integer json-c cannot print back). */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "engine/jstream.h"
#include "engine/stream_extract.h"
#include "flow/template.h"
#include "util/buf.h"

#define NSTREAMS 6

static const char *const paths[NSTREAMS] = {"$.a[*]", "$.b.c[*]", "$['x','y'][*]",
                                            "$.s",    "$.a[*]",   "$.b.c[*]"};
static const char *const keys[NSTREAMS] = {"$.id", "$.k", NULL, NULL, "$['k']", "$"};

static pf_template *tmpl, *tmpl_buffered, *tmpl_root;

static const char *const buffered_path = "$.a[?@.id]";

/* The fuzzed template (BUFFERED 0), or one stream whose path cannot stream
 * (1), or one stream of the whole body (2). */
static pf_template *make_template(int buffered)
{
    pf_template *t = calloc(1, sizeof *t);
    if (!t) abort();
    size_t n = buffered ? 1 : NSTREAMS;
    t->streams = calloc(n, sizeof *t->streams);
    if (!t->streams) abort();
    t->nstreams = n;
    if (buffered) {
        const char *path = buffered == 1 ? buffered_path : "$";
        pf_stream_def *s = &t->streams[0];
        s->name = strdup("b");
        s->path_text = strdup(path);
        if (!s->name || !s->path_text ||
            pf_jsonpath_compile(path, strlen(path), &s->path, NULL) != PF_OK)
            abort();
        return t;
    }
    for (size_t i = 0; i < NSTREAMS; i++) {
        pf_stream_def *s = &t->streams[i];
        char name[8];
        snprintf(name, sizeof name, "s%zu", i);
        s->name = strdup(name);
        s->path_text = strdup(paths[i]);
        if (!s->name || !s->path_text ||
            pf_jsonpath_compile(paths[i], strlen(paths[i]), &s->path, NULL) != PF_OK)
            abort();
        if (keys[i]) {
            s->key_text = strdup(keys[i]);
            if (!s->key_text ||
                pf_jsonpath_compile(keys[i], strlen(keys[i]), &s->key, NULL) != PF_OK)
                abort();
        }
    }
    return t;
}

#define UNION_STREAM 2

typedef struct counts {
    size_t records[NSTREAMS];
    pf_buf keys[NSTREAMS]; /* each key as "len:bytes", "-" for none */
    pf_js *check;          /* validates each record */
} counts;

static void add_key(counts *c, size_t s, const pf_sink_record *r)
{
    c->records[s]++;
    if (s == UNION_STREAM) return;
    pf_status st =
        r->key ? pf_buf_printf(&c->keys[s], "%zu:", r->key_len) : pf_buf_putc(&c->keys[s], '-');
    if (st == PF_OK && r->key) st = pf_buf_append(&c->keys[s], r->key, r->key_len);
    if (st != PF_OK) abort();
}

static void counts_init(counts *c)
{
    memset(c, 0, sizeof *c);
    for (size_t s = 0; s < NSTREAMS; s++)
        pf_buf_init(&c->keys[s], 0);
}

static void counts_free(counts *c)
{
    for (size_t s = 0; s < NSTREAMS; s++)
        pf_buf_free(&c->keys[s]);
}

static size_t stream_index(const char *name)
{
    for (size_t i = 0; i < NSTREAMS; i++)
        if (tmpl->streams[i].name == name) return i;
    abort();
}

/* REC must be exactly one JSON value with no whitespace outside strings. */
static void check_record(counts *c, const pf_sink_record *r)
{
    pf_js_reset(c->check);
    pf_js_input(c->check, r->json, r->json_len);
    pf_js_end_input(c->check);
    pf_js_event ev;
    pf_status st;
    while ((st = pf_js_next(c->check, &ev, NULL)) == PF_OK && ev.token != PF_JS_EOF)
        if (ev.token == PF_JS_OBJECT_BEGIN || ev.token == PF_JS_ARRAY_BEGIN)
            pf_js_skip_contents(c->check, 0);
    if (st != PF_OK || pf_js_empty(c->check)) abort();
    int in_str = 0;
    for (size_t i = 0; i < r->json_len; i++) {
        char ch = r->json[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
            abort();
        }
    }
}

static pf_status on_record(void *ud, const pf_sink_record *r, pf_error *err)
{
    (void)err;
    counts *c = ud;
    add_key(c, stream_index(r->stream), r);
    check_record(c, r);
    return PF_OK;
}

/* 1 when BODY may hold an integer json-c prints differently ("-0", or 19
 * digits or more), whose record keeps the text sent instead. */
static int may_hold_unprintable_integer(const char *body, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (body[i] >= '0' && body[i] <= '9') {
            if (++run >= 19 || (body[i] == '0' && run == 1 && i > 0 && body[i - 1] == '-'))
                return 1;
        } else {
            run = 0;
        }
    }
    return 0;
}

/* The whole body as one record equals json-c's own parse, printed. */
static void compare_with_json_c(const char *body, size_t len)
{
    if (may_hold_unprintable_integer(body, len)) return;
    pf_records recs = {0};
    pf_error e;
    if (pf_extract_records(tmpl_root, body, len, &recs, &e) != PF_OK || recs.count != 1) {
        pf_records_free(&recs);
        return;
    }
    json_tokener *tok = json_tokener_new_ex(PF_EXTRACT_MAX_NESTING + 1);
    if (!tok) abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *doc = json_tokener_parse_ex(tok, body, (int)len);
    if (json_tokener_get_error(tok) == json_tokener_continue)
        doc = json_tokener_parse_ex(tok, " ", 1);
    if (json_tokener_get_error(tok) == json_tokener_success) {
        size_t n = 0;
        const char *want = json_object_to_json_string_length(
            doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (!want || n != recs.recs[0].json_len || memcmp(want, recs.recs[0].json, n) != 0)
            abort();
    }
    json_object_put(doc);
    json_tokener_free(tok);
    pf_records_free(&recs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    if (!tmpl) tmpl = make_template(0);
    if (!tmpl_buffered) tmpl_buffered = make_template(1);
    if (!tmpl_root) tmpl_root = make_template(2);
    const char *body = (const char *)data + 3;
    size_t len = size - 3;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (len + 1);
    size_t chunk = data[2];

    counts fast;
    counts_init(&fast);
    fast.check = pf_js_new(PF_EXTRACT_MAX_NESTING, 0, NULL);
    if (!fast.check) abort();
    pf_error ef, es;
    pf_sx *sx = pf_sx_new(tmpl, 1 << 20, 0, on_record, &fast, &ef);
    if (!sx || !pf_sx_is_streaming(sx)) abort();
    pf_status sf = pf_sx_feed(sx, body, split, &ef);
    for (size_t pos = split; sf == PF_OK && pos < len;) {
        size_t n = chunk ? chunk : len - pos;
        if (n > len - pos) n = len - pos;
        sf = pf_sx_feed(sx, body + pos, n, &ef);
        pos += n;
    }
    if (sf == PF_OK) sf = pf_sx_finish(sx, &ef);
    pf_sx_free(sx);
    pf_js_free(fast.check);

    pf_records recs = {0};
    pf_status ss = pf_extract_records(tmpl, body, len, &recs, &es);
    /* The memory budget is a limit only the whole-body path has. */
    if (sf == PF_OK && ss == PF_ETOOBIG && strstr(es.msg, "bytes of memory")) {
        pf_records_free(&recs);
        counts_free(&fast);
        return 0;
    }
    if (sf != ss) abort();
    if (sf != PF_OK) {
        if (ef.offset != es.offset || strcmp(ef.msg, es.msg) != 0) abort();
    } else {
        counts slow;
        counts_init(&slow);
        for (size_t i = 0; i < recs.count; i++)
            add_key(&slow, stream_index(recs.recs[i].stream), &recs.recs[i]);
        for (size_t s = 0; s < NSTREAMS; s++)
            if (fast.records[s] != slow.records[s] || fast.keys[s].len != slow.keys[s].len ||
                (fast.keys[s].len &&
                 memcmp(fast.keys[s].data, slow.keys[s].data, fast.keys[s].len) != 0))
                abort();
        counts_free(&slow);
    }
    pf_records_free(&recs);
    counts_free(&fast);

    /* Whole-body extraction for a template that cannot stream: its check
     * refuses every repeated member name, so it never accepts more. */
    pf_records brecs = {0};
    pf_error eb;
    pf_status sb = pf_extract_records(tmpl_buffered, body, len, &brecs, &eb);
    if (sb == PF_OK && sf != PF_OK && sf != PF_ETOOBIG) abort();
    pf_records_free(&brecs);

    compare_with_json_c(body, len);
    return 0;
}
