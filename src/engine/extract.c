/* extract.c: whole-body record extraction: the same checks as the streaming
 * path (stream_extract.c), then a json-c document built from the
 * tokenizer's events within a memory budget, JSONPath evaluation, and each
 * record printed from the document under the record limit. See extract.h
 * for the contract. */
#include "engine/extract.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jstream.h"
#include "engine/stream_extract.h"
#include "util/buf.h"

void pf_records_free(pf_records *out)
{
    if (!out) return;
    for (size_t i = 0; i < out->count; i++) {
        free((char *)out->recs[i].json);
        free((char *)out->recs[i].key);
    }
    free(out->recs);
    memset(out, 0, sizeof *out);
}

pf_status pf_records_reserve(pf_records *out, size_t extra, pf_error *err)
{
    if (out->cap - out->count >= extra) return PF_OK;
    size_t nc = out->cap ? out->cap : 256;
    while (nc - out->count < extra) {
        if (nc > SIZE_MAX / 2 / sizeof *out->recs)
            return pf_error_set(err, PF_ENOMEM, "out of memory holding records");
        nc *= 2;
    }
    pf_sink_record *p = realloc(out->recs, nc * sizeof *p);
    if (!p) return pf_error_set(err, PF_ENOMEM, "out of memory holding records");
    out->recs = p;
    out->cap = nc;
    return PF_OK;
}

pf_status pf_records_push_copy(pf_records *out, const pf_sink_record *rec, pf_error *err)
{
    if (pf_records_reserve(out, 1, err) != PF_OK) return PF_ENOMEM;
    char *json = malloc(rec->json_len + 1);
    char *key = rec->key ? malloc(rec->key_len + 1) : NULL;
    if (!json || (rec->key && !key)) {
        free(json);
        free(key);
        return pf_error_set(err, PF_ENOMEM, "out of memory holding records");
    }
    memcpy(json, rec->json, rec->json_len);
    json[rec->json_len] = '\0';
    if (key) {
        memcpy(key, rec->key, rec->key_len);
        key[rec->key_len] = '\0';
    }
    out->recs[out->count++] = (pf_sink_record){rec->stream, key, rec->key_len, json, rec->json_len};
    return PF_OK;
}

static void truncate_to(pf_records *out, size_t n)
{
    for (size_t i = n; i < out->count; i++) {
        free((char *)out->recs[i].json);
        free((char *)out->recs[i].key);
    }
    out->count = n;
}

/* ---- the memory model ---------------------------------------------------
 *
 * What json-c 0.16 allocates for each value, as glibc's malloc serves it
 * (chunks of 16 bytes with an 8-byte header, at least 32; page-rounded when
 * large enough to be mapped). Sizes are those of json-c's private
 * structures on a 64-bit system. The model is an upper bound: where json-c
 * may allocate less (a repeated member name reuses its entry) it counts
 * more. */

#define JC_OBJECT 48      /* struct json_object_object */
#define JC_ARRAY 48       /* struct json_object_array */
#define JC_BOOLEAN 48     /* struct json_object_boolean */
#define JC_DOUBLE 48      /* struct json_object_double */
#define JC_INT 56         /* struct json_object_int */
#define JC_STRING_HEAD 48 /* struct json_object_string without its bytes */
#define JC_LH_TABLE 56    /* struct lh_table */
#define JC_LH_ENTRY 40    /* struct lh_entry */
#define JC_LH_INITIAL 16  /* JSON_OBJECT_DEF_HASH_ENTRIES */
#define JC_ARRAY_LIST 32  /* struct array_list */
#define JC_ARRAY_INITIAL 32

static size_t chunk(size_t n)
{
    if (n > SIZE_MAX / 2) return SIZE_MAX / 2;
    if (n >= ((size_t)128 << 10)) return (n + 16 + 4095) & ~(size_t)4095; /* mapped */
    n = (n + 8 + 15) & ~(size_t)15;
    return n < 32 ? 32 : n;
}

typedef struct budget {
    size_t used, max; /* used <= max */
} budget;

/* Counts N more bytes; 0 when they do not fit. */
static int charge(budget *b, size_t n)
{
    if (n > b->max - b->used) return 0;
    b->used += n;
    return 1;
}

/* Counts a block that grows from OLD to NEW bytes (realloc): both exist
 * for a moment. 0 when that moment does not fit. */
static int regrow(budget *b, size_t old, size_t new)
{
    if (new > b->max - b->used) return 0;
    b->used = b->used + new - old;
    return 1;
}

static void uncharge(budget *b, size_t n)
{
    b->used = n < b->used ? b->used - n : 0;
}

/* ---- building the document --------------------------------------------- */

typedef struct build_frame {
    json_object *c; /* not yet attached to its parent */
    int is_object;
    size_t count; /* members or elements added */
    size_t slots; /* the hash table's or the element array's size */
    size_t key;   /* objects: offset of the pending member name in the arena */
} build_frame;

typedef struct builder {
    pf_js *js;
    build_frame *frames; /* PF_EXTRACT_MAX_NESTING of them */
    size_t depth;
    pf_buf names;   /* pending member names, decoded, NUL-terminated */
    pf_buf scratch; /* a decoded string or a number's text */
    locale_t c_numeric;
    budget mem;
    size_t max_memory; /* for messages */
    size_t body_len;
} builder;

static pf_status budget_error(size_t max_memory, size_t body_len, pf_error *err)
{
    return pf_error_set(err, PF_ETOOBIG,
                        "the response needs more than %zu bytes of memory to extract its records "
                        "from the whole body (the limit for a %zu-byte response; a template "
                        "whose record paths have the form $.a.b[*] streams instead)",
                        max_memory, body_len);
}

static pf_status over_budget(const builder *b, pf_error *err)
{
    return budget_error(b->max_memory, b->body_len, err);
}

static pf_status out_of_memory(pf_error *err)
{
    return pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
}

/* 1 when TEXT (a valid JSON integer) is one json-c prints differently: "-0",
 * or outside both int64 and uint64 (json-c clamps those). */
static int number_needs_fixup(const char *text, size_t len)
{
    int neg = text[0] == '-';
    const char *d = text + neg;
    size_t n = len - (size_t)neg;
    if (neg && n == 1 && d[0] == '0') return 1;
    /* INT64_MIN is 9223372036854775808 (19 digits); UINT64_MAX is
     * 18446744073709551615 (20 digits). */
    const char *limit = neg ? "9223372036854775808" : "18446744073709551615";
    size_t ln = strlen(limit);
    if (n != ln) return n > ln;
    return memcmp(d, limit, n) > 0;
}

/* A number as json-c's parser makes it: an integer as int64 (negative) or
 * uint64 (positive beyond INT64_MAX), clamped as strtoll/strtoull clamp;
 * anything else as a double that prints its original text. An integer
 * json-c would print differently gets a serializer printing its text. */
static json_object *make_number(builder *b, const char *text, size_t len, pf_status *st,
                                pf_error *err)
{
    pf_buf_reset(&b->scratch);
    if (pf_buf_append(&b->scratch, text, len) != PF_OK) {
        *st = out_of_memory(err);
        return NULL;
    }
    const char *s = b->scratch.data;
    int is_double = memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len);
    json_object *v = NULL;
    if (is_double) {
        if (!charge(&b->mem, chunk(JC_DOUBLE) + chunk(len + 1))) {
            *st = over_budget(b, err);
            return NULL;
        }
        if (!b->c_numeric &&
            !(b->c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0))) {
            *st = out_of_memory(err);
            return NULL;
        }
        locale_t old = uselocale(b->c_numeric);
        double d = strtod(s, NULL);
        uselocale(old);
        if (!(v = json_object_new_double_s(d, s))) *st = out_of_memory(err);
        return v;
    }
    int fix = number_needs_fixup(s, len);
    if (!charge(&b->mem, chunk(JC_INT) + (fix ? chunk(len + 1) : 0))) {
        *st = over_budget(b, err);
        return NULL;
    }
    if (s[0] == '-') {
        v = json_object_new_int64((int64_t)strtoll(s, NULL, 10));
    } else {
        unsigned long long u = strtoull(s, NULL, 10);
        v = u <= INT64_MAX ? json_object_new_int64((int64_t)u) : json_object_new_uint64(u);
    }
    if (!v) {
        *st = out_of_memory(err);
        return NULL;
    }
    if (fix) {
        char *copy = malloc(len + 1);
        if (!copy) {
            json_object_put(v);
            *st = out_of_memory(err);
            return NULL;
        }
        memcpy(copy, s, len + 1);
        json_object_set_serializer(v, json_object_userdata_to_json_string, copy,
                                   json_object_free_userdata);
    }
    return v;
}

/* The value of a scalar event; NULL for null (and on failure, *ST set). */
static json_object *make_scalar(builder *b, const pf_js_event *ev, pf_status *st, pf_error *err)
{
    json_object *v = NULL;
    switch (ev->token) {
    case PF_JS_STRING: {
        const char *s = ev->text;
        size_t n = ev->len;
        if (ev->escaped) {
            pf_buf_reset(&b->scratch);
            if (pf_buf_append(&b->scratch, ev->text, ev->len) != PF_OK) {
                *st = out_of_memory(err);
                return NULL;
            }
            n = pf_js_unescape(b->scratch.data, ev->len, b->scratch.data);
            s = b->scratch.data;
        }
        size_t size = JC_STRING_HEAD + n + 1;
        if (n < sizeof(void *)) size += sizeof(void *) - n;
        if (!charge(&b->mem, chunk(size))) {
            *st = over_budget(b, err);
            return NULL;
        }
        if (!(v = json_object_new_string_len(s, (int)n))) *st = out_of_memory(err);
        return v;
    }
    case PF_JS_NUMBER:
        return make_number(b, ev->text, ev->len, st, err);
    case PF_JS_TRUE:
    case PF_JS_FALSE:
        if (!charge(&b->mem, chunk(JC_BOOLEAN))) {
            *st = over_budget(b, err);
            return NULL;
        }
        if (!(v = json_object_new_boolean(ev->token == PF_JS_TRUE))) *st = out_of_memory(err);
        return v;
    default: /* PF_JS_NULL */
        return NULL;
    }
}

/* Adds V (owned; NULL is JSON null) to the open container, or makes it the
 * document. On failure V is released. */
static pf_status attach(builder *b, json_object *v, json_object **doc, pf_error *err)
{
    if (b->depth == 0) {
        *doc = v;
        return PF_OK;
    }
    build_frame *f = &b->frames[b->depth - 1];
    pf_status st = PF_OK;
    if (!f->is_object) {
        /* array_list_add grows the array (doubling) when it becomes full. */
        if (f->count + 1 >= f->slots) {
            size_t old = chunk(f->slots * sizeof(void *)), grown = chunk(2 * f->slots * sizeof(void *));
            if (!regrow(&b->mem, old, grown)) {
                st = over_budget(b, err);
                goto fail;
            }
            f->slots *= 2;
        }
        if (json_object_array_add(f->c, v) != 0) {
            st = out_of_memory(err);
            goto fail;
        }
        f->count++;
        return PF_OK;
    }
    const char *key = b->names.data + f->key;
    /* The table doubles once it is two-thirds full (LH_LOAD_FACTOR): a new
     * table (and a transient lh_table) next to the old one. */
    if ((double)f->count >= (double)f->slots * 0.66) {
        size_t old = chunk(f->slots * JC_LH_ENTRY), grown = chunk(2 * f->slots * JC_LH_ENTRY);
        if (!charge(&b->mem, chunk(JC_LH_TABLE) + grown)) {
            st = over_budget(b, err);
            goto fail;
        }
        uncharge(&b->mem, chunk(JC_LH_TABLE) + old);
        f->slots *= 2;
    }
    if (!charge(&b->mem, chunk(strlen(key) + 1))) { /* json-c copies the name */
        st = over_budget(b, err);
        goto fail;
    }
    /* As a C string, as json-c keys it (a name holding U+0000 ends there). */
    if (json_object_object_add(f->c, key, v) != 0) {
        st = out_of_memory(err);
        goto fail;
    }
    f->count++;
    b->names.len = f->key; /* the name is used */
    return PF_OK;
fail:
    json_object_put(v);
    return st;
}

static pf_status build(builder *b, const char *body, size_t len, json_object **doc, pf_error *err)
{
    pf_js_input(b->js, body, len);
    pf_js_end_input(b->js);
    for (;;) {
        pf_js_event ev;
        pf_status st = pf_js_next(b->js, &ev, err);
        if (st != PF_OK) return st;
        if (ev.token == PF_JS_EOF || ev.token == PF_JS_NONE) return PF_OK;
        switch (ev.token) {
        case PF_JS_OBJECT_BEGIN:
        case PF_JS_ARRAY_BEGIN: {
            int obj = ev.token == PF_JS_OBJECT_BEGIN;
            size_t cost = obj ? chunk(JC_OBJECT) + chunk(JC_LH_TABLE) +
                                    chunk(JC_LH_INITIAL * JC_LH_ENTRY)
                              : chunk(JC_ARRAY) + chunk(JC_ARRAY_LIST) +
                                    chunk(JC_ARRAY_INITIAL * sizeof(void *));
            if (b->depth >= PF_EXTRACT_MAX_NESTING) /* the tokenizer stops before */
                return pf_error_off(err, PF_EDEPTH, (long)ev.offset,
                                    "nested deeper than %d levels", PF_EXTRACT_MAX_NESTING);
            if (!charge(&b->mem, cost)) return over_budget(b, err);
            json_object *c = obj ? json_object_new_object() : json_object_new_array();
            if (!c) return out_of_memory(err);
            b->frames[b->depth++] = (build_frame){c, obj, 0,
                                                  obj ? JC_LH_INITIAL : JC_ARRAY_INITIAL, 0};
            break;
        }
        case PF_JS_OBJECT_END:
        case PF_JS_ARRAY_END: {
            build_frame f = b->frames[--b->depth];
            if (!f.is_object) {
                /* json-c's parser shrinks a finished array to its length. */
                size_t want = f.count ? f.count : 1;
                if (want != f.slots && json_object_array_shrink(f.c, 0) == 0)
                    uncharge(&b->mem, chunk(f.slots * sizeof(void *)) -
                                          chunk(want * sizeof(void *)));
            }
            if ((st = attach(b, f.c, doc, err)) != PF_OK) return st;
            break;
        }
        case PF_JS_NAME: {
            build_frame *f = &b->frames[b->depth - 1];
            size_t off = b->names.len;
            if (pf_buf_append(&b->names, ev.text, ev.len) != PF_OK) return out_of_memory(err);
            size_t n = ev.escaped ? pf_js_unescape(b->names.data + off, ev.len, b->names.data + off)
                                  : ev.len;
            b->names.len = off + n;
            if (pf_buf_putc(&b->names, '\0') != PF_OK) return out_of_memory(err);
            f->key = off;
            break;
        }
        default: {
            st = PF_OK;
            json_object *v = make_scalar(b, &ev, &st, err);
            if (st != PF_OK) return st;
            if ((st = attach(b, v, doc, err)) != PF_OK) return st;
            break;
        }
        }
    }
}

pf_status pf_extract_build_doc(const char *body, size_t len, size_t max_memory,
                               struct json_object **doc, size_t *used, pf_error *err)
{
    *doc = NULL;
    if (used) *used = 0;
    if (len > INT32_MAX) return pf_error_set(err, PF_ETOOBIG, "response body over 2 GiB");
    builder b;
    memset(&b, 0, sizeof b);
    b.mem.max = max_memory ? max_memory : SIZE_MAX;
    b.max_memory = max_memory;
    b.body_len = len;
    pf_buf_init(&b.names, 0);
    pf_buf_init(&b.scratch, 0);
    pf_status st = PF_OK;
    b.js = pf_js_new(PF_EXTRACT_MAX_NESTING, SIZE_MAX / 4, err);
    b.frames = calloc(PF_EXTRACT_MAX_NESTING, sizeof *b.frames);
    if (!b.js || !b.frames)
        st = out_of_memory(err);
    else
        st = build(&b, body ? body : "", len, doc, err);
    if (st != PF_OK) {
        /* Open containers are not attached to their parents yet. */
        for (size_t i = 0; i < b.depth; i++)
            json_object_put(b.frames[i].c);
        json_object_put(*doc);
        *doc = NULL;
    } else if (used) {
        *used = b.mem.used;
    }
    if (b.c_numeric) freelocale(b.c_numeric);
    pf_buf_free(&b.names);
    pf_buf_free(&b.scratch);
    free(b.frames);
    pf_js_free(b.js);
    return st;
}

/* ---- printing records ---------------------------------------------------- */

/* Appends S (N bytes) to OUT as the inside of a JSON string, escaped as
 * json-c escapes it with JSON_C_TO_STRING_NOSLASHESCAPE. */
static pf_status put_escaped(pf_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '\b': esc[1] = 'b'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\f': esc[1] = 'f'; break;
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            el = 6;
        }
        pf_status st = pf_buf_append(out, s + run, i - run);
        if (st == PF_OK) st = pf_buf_append(out, esc, el);
        if (st != PF_OK) return st;
        run = i + 1;
    }
    return pf_buf_append(out, s + run, n - run);
}

/* A number's text: the text it was sent with when json-c would print
 * another one (a serializer with the text as user data), else its value. */
static const char *number_text(json_object *v, char small[32])
{
    const char *ud = json_object_get_userdata(v);
    if (ud) return ud;
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i == INT64_MAX)
            snprintf(small, 32, "%" PRIu64, json_object_get_uint64(v));
        else
            snprintf(small, 32, "%" PRId64, i);
    } else {
        /* Not made by this builder: every double carries its text. */
        snprintf(small, 32, "%.17g", json_object_get_double(v));
    }
    return small;
}

typedef struct print_frame {
    json_object *c;
    int is_object;
    size_t i, n;                        /* arrays */
    struct json_object_iterator it, end; /* objects */
} print_frame;

/* Appends a scalar, or opens a container on STACK. */
static pf_status put_value(pf_buf *out, json_object *v, print_frame *stack, size_t *depth)
{
    char small[32];
    const char *t;
    switch (json_object_get_type(v)) {
    case json_type_null:
        return pf_buf_append(out, "null", 4);
    case json_type_boolean:
        return json_object_get_boolean(v) ? pf_buf_append(out, "true", 4)
                                          : pf_buf_append(out, "false", 5);
    case json_type_int:
    case json_type_double:
        t = number_text(v, small);
        return pf_buf_append(out, t, strlen(t));
    case json_type_string: {
        pf_status st = pf_buf_putc(out, '"');
        if (st == PF_OK)
            st = put_escaped(out, json_object_get_string(v),
                             (size_t)json_object_get_string_len(v));
        return st == PF_OK ? pf_buf_putc(out, '"') : st;
    }
    case json_type_object: {
        if (*depth > PF_EXTRACT_MAX_NESTING) return PF_EDEPTH;
        print_frame *f = &stack[(*depth)++];
        f->c = v;
        f->is_object = 1;
        f->i = 0;
        f->it = json_object_iter_begin(v);
        f->end = json_object_iter_end(v);
        return pf_buf_putc(out, '{');
    }
    case json_type_array: {
        if (*depth > PF_EXTRACT_MAX_NESTING) return PF_EDEPTH;
        print_frame *f = &stack[(*depth)++];
        f->c = v;
        f->is_object = 0;
        f->i = 0;
        f->n = json_object_array_length(v);
        return pf_buf_putc(out, '[');
    }
    }
    return PF_EINVAL;
}

/* Prints V into OUT (reset first) as compact JSON, as json-c prints it
 * (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), without
 * recursion. PF_ETOOBIG when it passes OUT's cap, PF_ENOMEM. STACK has room
 * for PF_EXTRACT_MAX_NESTING + 1 frames. */
static pf_status print_json(json_object *v, pf_buf *out, print_frame *stack)
{
    pf_buf_reset(out);
    size_t depth = 0;
    pf_status st = put_value(out, v, stack, &depth);
    while (st == PF_OK && depth > 0) {
        print_frame *f = &stack[depth - 1];
        if (f->is_object) {
            if (json_object_iter_equal(&f->it, &f->end)) {
                depth--;
                st = pf_buf_putc(out, '}');
                continue;
            }
            if (f->i++ && (st = pf_buf_putc(out, ',')) != PF_OK) break;
            const char *name = json_object_iter_peek_name(&f->it);
            json_object *m = json_object_iter_peek_value(&f->it);
            json_object_iter_next(&f->it);
            if ((st = pf_buf_putc(out, '"')) != PF_OK ||
                (st = put_escaped(out, name, strlen(name))) != PF_OK ||
                (st = pf_buf_append(out, "\":", 2)) != PF_OK)
                break;
            st = put_value(out, m, stack, &depth);
        } else {
            if (f->i == f->n) {
                depth--;
                st = pf_buf_putc(out, ']');
                continue;
            }
            if (f->i && (st = pf_buf_putc(out, ',')) != PF_OK) break;
            st = put_value(out, json_object_array_get_idx(f->c, f->i++), stack, &depth);
        }
    }
    return st;
}

/* ---- records ------------------------------------------------------------- */

/* The key of REC (a string's value or a number's text) in a new string of
 * *LEN bytes; NULL when there is none (or on failure, with *ST set). */
static char *key_text(const pf_jsonpath *key, json_object *rec, size_t *len, pf_status *st,
                      pf_error *err)
{
    pf_jp_nodelist nl = {0};
    *st = pf_jsonpath_eval(key, rec, 0, &nl, err);
    if (*st != PF_OK || nl.count == 0) {
        pf_jp_nodelist_free(&nl);
        return NULL;
    }
    json_object *v = nl.nodes[0].value;
    pf_jp_nodelist_free(&nl);
    const char *s;
    size_t n;
    char small[32];
    switch (json_object_get_type(v)) {
    case json_type_string:
        s = json_object_get_string(v);
        n = (size_t)json_object_get_string_len(v); /* may hold NUL bytes */
        break;
    case json_type_int:
    case json_type_double:
        s = number_text(v, small);
        n = strlen(s);
        break;
    default:
        return NULL;
    }
    char *c = malloc(n + 1);
    if (!c) {
        *st = out_of_memory(err);
        return NULL;
    }
    memcpy(c, s, n);
    c[n] = '\0';
    *len = n;
    return c;
}

/* The error for record I of stream SD being over MAX_RECORD, naming its
 * normalized path. */
static pf_status record_too_big(const pf_stream_def *sd, json_object *doc, size_t i,
                                size_t max_record, pf_error *err)
{
    pf_jp_nodelist nl = {0};
    pf_error ignored;
    const char *where = "?";
    if (pf_jsonpath_eval(sd->path, doc, 1, &nl, &ignored) == PF_OK && i < nl.count &&
        nl.nodes[i].path)
        where = nl.nodes[i].path;
    pf_status st = pf_error_set(err, PF_ETOOBIG,
                                "record of stream %s is larger than the record limit (%zu bytes, "
                                "source.http.max_record), the record at %.200s%s",
                                sd->name, max_record, where, strlen(where) > 200 ? "..." : "");
    pf_jp_nodelist_free(&nl);
    return st;
}

typedef struct extraction {
    const pf_template *t;
    json_object *doc;
    size_t max_record;
    budget mem;
    size_t max_memory, body_len;
    pf_buf text; /* one record, capped at max_record */
    print_frame *stack;
    pf_records *out;
} extraction;

static pf_status records_over_budget(const extraction *x, pf_error *err)
{
    return budget_error(x->max_memory, x->body_len, err);
}

/* Appends the records of stream SD. */
static pf_status stream_records(extraction *x, const pf_stream_def *sd, pf_error *err)
{
    pf_records *out = x->out;
    pf_jp_nodelist nl = {0};
    pf_status st = pf_jsonpath_eval(sd->path, x->doc, 0, &nl, err);
    if (st != PF_OK) return st;
    size_t list_cost = chunk(nl.cap * sizeof *nl.nodes);
    if (!charge(&x->mem, list_cost)) {
        pf_jp_nodelist_free(&nl);
        return records_over_budget(x, err);
    }
    for (size_t i = 0; i < nl.count && st == PF_OK; i++) {
        size_t old_alloc = x->text.alloc;
        if (out->count == out->cap) { /* pf_records_reserve doubles the array */
            size_t nc = out->cap ? out->cap * 2 : 256;
            if (nc > SIZE_MAX / 2 / sizeof *out->recs ||
                !regrow(&x->mem, chunk(out->cap * sizeof *out->recs),
                        chunk(nc * sizeof *out->recs))) {
                st = records_over_budget(x, err);
                break;
            }
        }
        if ((st = pf_records_reserve(out, 1, err)) != PF_OK) break;
        json_object *v = nl.nodes[i].value;
        st = print_json(v, &x->text, x->stack);
        if (x->text.alloc != old_alloc && !regrow(&x->mem, chunk(old_alloc), chunk(x->text.alloc))) {
            st = records_over_budget(x, err);
            break;
        }
        if (st == PF_ETOOBIG) {
            st = record_too_big(sd, x->doc, i, x->max_record, err);
            break;
        }
        if (st != PF_OK) {
            st = st == PF_ENOMEM ? out_of_memory(err)
                                 : pf_error_set(err, st, "cannot print a record of stream %s",
                                                sd->name);
            break;
        }
        if (!charge(&x->mem, chunk(x->text.len + 1))) {
            st = records_over_budget(x, err);
            break;
        }
        pf_sink_record *r = &out->recs[out->count];
        memset(r, 0, sizeof *r);
        r->stream = sd->name;
        char *json = malloc(x->text.len + 1);
        if (!json) {
            st = out_of_memory(err);
            break;
        }
        memcpy(json, x->text.data, x->text.len + 1);
        r->json = json;
        r->json_len = x->text.len;
        out->count++;
        if (sd->key) {
            r->key = key_text(sd->key, v, &r->key_len, &st, err);
            if (!r->key && st == PF_OK) out->missing_keys++;
            if (r->key && !charge(&x->mem, chunk(r->key_len + 1))) st = records_over_budget(x, err);
        }
    }
    uncharge(&x->mem, list_cost);
    pf_jp_nodelist_free(&nl);
    return st;
}

pf_status pf_extract_records_ex(const pf_template *t, const char *body, size_t len,
                                const pf_extract_limits *lim, pf_records *out, pf_error *err)
{
    /* The streaming path's checks, so that both paths refuse the same bodies
     * with the same errors (json-c alone accepts NaN, Infinity, "1." and
     * invalid UTF-8, and refuses a bare top-level number). */
    int empty = 0;
    pf_status st = pf_sx_check_body(t, body, len, &empty, err);
    if (st != PF_OK) return st;
    if (empty) return PF_OK;
    if (len > INT32_MAX) return pf_error_set(err, PF_ETOOBIG, "response body over 2 GiB");
    extraction x;
    memset(&x, 0, sizeof x);
    x.t = t;
    x.out = out;
    x.body_len = len;
    x.max_record = lim && lim->max_record ? lim->max_record : PF_SX_DEFAULT_MAX_RECORD;
    x.max_memory = lim && lim->max_memory ? lim->max_memory
                   : len > (SIZE_MAX - PF_EXTRACT_MEMORY_BASE) / PF_EXTRACT_MEMORY_FACTOR
                       ? SIZE_MAX
                       : PF_EXTRACT_MEMORY_FACTOR * len + PF_EXTRACT_MEMORY_BASE;
    size_t used = 0;
    st = pf_extract_build_doc(body, len, x.max_memory, &x.doc, &used, err);
    if (st != PF_OK) return st;
    x.mem.max = x.max_memory;
    x.mem.used = used;
    pf_buf_init(&x.text, x.max_record);
    x.stack = calloc(PF_EXTRACT_MAX_NESTING + 1, sizeof *x.stack);
    size_t before = out->count;
    if (!x.stack) st = out_of_memory(err);
    for (size_t s = 0; s < t->nstreams && st == PF_OK; s++)
        st = stream_records(&x, &t->streams[s], err);
    free(x.stack);
    pf_buf_free(&x.text);
    json_object_put(x.doc);
    if (st != PF_OK) truncate_to(out, before);
    return st;
}

pf_status pf_extract_records(const pf_template *t, const char *body, size_t len, pf_records *out,
                             pf_error *err)
{
    return pf_extract_records_ex(t, body, len, NULL, out, err);
}
