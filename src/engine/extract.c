/* extract.c: json-c parse + JSONPath evaluation into sink records. */
#include "engine/extract.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

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

static void truncate_to(pf_records *out, size_t n)
{
    for (size_t i = n; i < out->count; i++) {
        free((char *)out->recs[i].json);
        free((char *)out->recs[i].key);
    }
    out->count = n;
}

static char *key_text(const pf_jsonpath *key, json_object *rec, pf_status *st, pf_error *err)
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
    switch (json_object_get_type(v)) {
    case json_type_string: s = json_object_get_string(v); break;
    case json_type_int:
    case json_type_double: s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN); break;
    default: return NULL;
    }
    char *c = strdup(s);
    if (!c) *st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
    return c;
}

pf_status pf_extract_records(const pf_template *t, const char *body, size_t len, pf_records *out,
                             pf_error *err)
{
    size_t start = 0;
    while (start < len && (body[start] == ' ' || body[start] == '\n' || body[start] == '\r' ||
                           body[start] == '\t'))
        start++;
    if (start == len) return PF_OK;
    if (len > INT32_MAX) return pf_error_set(err, PF_ETOOBIG, "response body over 2 GiB");
    json_tokener *tok = json_tokener_new_ex(PF_EXTRACT_MAX_NESTING);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory parsing a response");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *doc = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (je != json_tokener_success || !doc) {
        json_object_put(doc);
        if (je == json_tokener_error_depth)
            return pf_error_off(err, PF_EDEPTH, (long)off,
                                "response is nested deeper than %d levels",
                                PF_EXTRACT_MAX_NESTING);
        if (je == json_tokener_continue)
            return pf_error_set(err, PF_EDATA, "response is truncated JSON (%zu bytes)", len);
        return pf_error_off(err, PF_EDATA, (long)off, "response is not valid JSON: %s",
                            json_tokener_error_desc(je));
    }
    while (off < len && (body[off] == ' ' || body[off] == '\n' || body[off] == '\r' ||
                         body[off] == '\t'))
        off++;
    if (off < len) {
        json_object_put(doc);
        return pf_error_off(err, PF_EDATA, (long)off, "response has data after its JSON value");
    }
    size_t before = out->count;
    pf_status st = PF_OK;
    for (size_t s = 0; s < t->nstreams && st == PF_OK; s++) {
        const pf_stream_def *sd = &t->streams[s];
        pf_jp_nodelist nl = {0};
        st = pf_jsonpath_eval(sd->path, doc, 0, &nl, err);
        for (size_t i = 0; i < nl.count && st == PF_OK; i++) {
            if (out->count == out->cap) {
                size_t nc = out->cap ? out->cap * 2 : 256;
                pf_sink_record *p = realloc(out->recs, nc * sizeof *p);
                if (!p) {
                    st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
                    break;
                }
                out->recs = p;
                out->cap = nc;
            }
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
                r->key = key_text(sd->key, v, &st, err);
                if (r->key) r->key_len = strlen(r->key);
                else if (st == PF_OK) out->missing_keys++;
            }
        }
        pf_jp_nodelist_free(&nl);
    }
    json_object_put(doc);
    if (st != PF_OK) truncate_to(out, before);
    return st;
}
