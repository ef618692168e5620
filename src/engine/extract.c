/* extract.c: whole-body record extraction: the same checks as the streaming
 * path (stream_extract.c), then a json-c parse and JSONPath evaluation into
 * sink records. */
#include "engine/extract.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jstream.h"
#include "engine/stream_extract.h"

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
    switch (json_object_get_type(v)) {
    case json_type_string:
        s = json_object_get_string(v);
        n = (size_t)json_object_get_string_len(v); /* may hold NUL bytes */
        break;
    case json_type_int:
    case json_type_double:
        s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        n = strlen(s);
        break;
    default:
        return NULL;
    }
    char *c = malloc(n + 1);
    if (!c) {
        *st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
        return NULL;
    }
    memcpy(c, s, n);
    c[n] = '\0';
    *len = n;
    return c;
}

/* ---- numbers json-c cannot print back ---------------------------------- */

/* json-c stores integers as int64/uint64: "-0" prints back as 0 and an
 * integer outside both ranges is clamped. Records must carry numbers as
 * sent, so such integers get a serializer that prints their original text. */

/* 1 when BODY may hold such an integer (a cheap over-approximation: "-0",
 * or a run of 19 or more digits). */
static int may_need_number_fixups(const char *body, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (c >= '0' && c <= '9') {
            if (++run >= 19) return 1;
            if (c == '0' && run == 1 && i > 0 && body[i - 1] == '-') return 1;
        } else {
            run = 0;
        }
    }
    return 0;
}

/* 1 when TEXT (a valid JSON number) is an integer json-c prints differently. */
static int number_needs_fixup(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] == '.' || text[i] == 'e' || text[i] == 'E') return 0;
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

typedef struct fix_level {
    int is_object;
    size_t next_index; /* arrays: elements started so far */
    const char *name;  /* objects: raw text of the current member name */
    size_t name_len;
    int name_escaped;
} fix_level;

/* The json-c node for the value at LEVELS[0..n) (each level's current member
 * or element), or NULL. */
static json_object *locate(json_object *doc, const fix_level *levels, size_t n)
{
    json_object *o = doc;
    char small[256];
    for (size_t i = 0; i < n && o; i++) {
        const fix_level *l = &levels[i];
        if (!l->is_object) {
            if (!json_object_is_type(o, json_type_array) || l->next_index == 0) return NULL;
            o = json_object_array_get_idx(o, l->next_index - 1);
            continue;
        }
        if (!json_object_is_type(o, json_type_object) || !l->name) return NULL;
        char *heap = NULL,
             *key = l->name_len < sizeof small ? small : (heap = malloc(l->name_len + 1));
        if (!key) return NULL;
        size_t kl = l->name_escaped ? pf_js_unescape(l->name, l->name_len, key)
                                    : (memcpy(key, l->name, l->name_len), l->name_len);
        key[kl] = '\0';
        json_object *next = NULL;
        /* As a C string, as json-c stored it (a name holding U+0000 ends there). */
        if (!json_object_object_get_ex(o, key, &next)) next = NULL;
        free(heap);
        o = next;
    }
    return o;
}

/* Walks BODY (already checked) and gives every integer json-c would print
 * differently its original text. */
static pf_status fix_numbers(json_object *doc, const char *body, size_t len, pf_error *err)
{
    pf_status st = PF_OK;
    pf_error e;
    pf_js *js = pf_js_new(PF_EXTRACT_MAX_NESTING, SIZE_MAX / 4, &e);
    fix_level *levels = calloc(PF_EXTRACT_MAX_NESTING + 1, sizeof *levels);
    if (!js || !levels) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
        goto out;
    }
    size_t depth = 0;
    pf_js_input(js, body, len);
    pf_js_end_input(js);
    for (;;) {
        pf_js_event ev;
        st = pf_js_next(js, &ev, &e);
        if (st != PF_OK) {
            if (err) *err = e;
            goto out;
        }
        if (ev.token == PF_JS_EOF || ev.token == PF_JS_NONE) break;
        if (ev.token == PF_JS_NAME) {
            levels[depth - 1].name = ev.text;
            levels[depth - 1].name_len = ev.len;
            levels[depth - 1].name_escaped = ev.escaped;
            continue;
        }
        if (ev.token == PF_JS_OBJECT_END || ev.token == PF_JS_ARRAY_END) {
            depth--;
            continue;
        }
        /* A value starts. */
        if (depth && !levels[depth - 1].is_object) levels[depth - 1].next_index++;
        if (ev.token == PF_JS_OBJECT_BEGIN || ev.token == PF_JS_ARRAY_BEGIN) {
            levels[depth] = (fix_level){.is_object = ev.token == PF_JS_OBJECT_BEGIN};
            depth++;
            continue;
        }
        if (ev.token != PF_JS_NUMBER || memchr(ev.text, '.', ev.len) ||
            memchr(ev.text, 'e', ev.len) || memchr(ev.text, 'E', ev.len))
            continue;
        /* Every integer is looked up, in document order, so that with a
         * repeated member name the last one decides (as in json-c). */
        json_object *o = locate(doc, levels, depth);
        if (!o || !json_object_is_type(o, json_type_int)) continue;
        if (!number_needs_fixup(ev.text, ev.len)) {
            if (json_object_get_userdata(o)) json_object_set_serializer(o, NULL, NULL, NULL);
            continue;
        }
        char *text = malloc(ev.len + 1);
        if (!text) {
            st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
            goto out;
        }
        memcpy(text, ev.text, ev.len);
        text[ev.len] = '\0';
        json_object_set_serializer(o, json_object_userdata_to_json_string, text,
                                   json_object_free_userdata);
    }
out:
    free(levels);
    pf_js_free(js);
    return st;
}

pf_status pf_extract_records(const pf_template *t, const char *body, size_t len, pf_records *out,
                             pf_error *err)
{
    /* The streaming path's checks, so that both paths refuse the same bodies
     * with the same errors (json-c alone accepts NaN, Infinity, "1." and
     * invalid UTF-8, and refuses a bare top-level number). */
    int empty = 0;
    pf_status st = pf_sx_check_body(t, body, len, &empty, err);
    if (st != PF_OK) return st;
    if (empty) return PF_OK;
    if (len > INT32_MAX) return pf_error_set(err, PF_ETOOBIG, "response body over 2 GiB");
    json_tokener *tok = json_tokener_new_ex(PF_EXTRACT_MAX_NESTING + 1);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory parsing a response");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *doc = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    if (je == json_tokener_continue) {
        /* A top-level number or literal ends with the body. */
        doc = json_tokener_parse_ex(tok, " ", 1);
        je = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (je != json_tokener_success) {
        /* Not expected after the checks above. */
        json_object_put(doc);
        return pf_error_set(err, PF_EDATA, "json-c cannot parse the response: %s",
                            json_tokener_error_desc(je));
    }
    if (may_need_number_fixups(body, len) && (st = fix_numbers(doc, body, len, err)) != PF_OK) {
        json_object_put(doc);
        return st;
    }
    size_t before = out->count;
    for (size_t s = 0; s < t->nstreams && st == PF_OK; s++) {
        const pf_stream_def *sd = &t->streams[s];
        pf_jp_nodelist nl = {0};
        st = pf_jsonpath_eval(sd->path, doc, 0, &nl, err);
        for (size_t i = 0; i < nl.count && st == PF_OK; i++) {
            if ((st = pf_records_reserve(out, 1, err)) != PF_OK) break;
            json_object *v = nl.nodes[i].value;
            const char *text = json_object_to_json_string_ext(
                v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
            pf_sink_record *r = &out->recs[out->count];
            memset(r, 0, sizeof *r);
            r->stream = sd->name;
            r->json = text ? strdup(text) : NULL;
            if (!r->json) {
                st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
                break;
            }
            r->json_len = strlen(r->json);
            out->count++;
            if (sd->key) {
                r->key = key_text(sd->key, v, &r->key_len, &st, err);
                if (!r->key && st == PF_OK) out->missing_keys++;
            }
        }
        pf_jp_nodelist_free(&nl);
    }
    json_object_put(doc);
    if (st != PF_OK) truncate_to(out, before);
    return st;
}
