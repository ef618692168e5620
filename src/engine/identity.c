/* identity.c: completing a record's identity (further key paths, then the
 * SHA-256 of its bytes). See identity.h. */
#include "engine/identity.h"

#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jsonpath.h"

/* Records were checked against the response's nesting limit already. */
#define RECORD_DEPTH 1024

void pf_identity_hash(const char *json, size_t len, char out[PF_IDENTITY_HASH_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    memcpy(out, "sha256:", 7);
    if (EVP_Digest(json ? json : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        /* libcrypto cannot fail on SHA-256 of memory short of a broken
         * installation; an all-zero identity would still be stable. */
        memset(md, 0, sizeof md);
        mdlen = 32;
    }
    for (unsigned i = 0; i < mdlen; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 2 * mdlen] = '\0';
}

const pf_stream_def *pf_identity_stream(const pf_template *t, const pf_sink_record *rec)
{
    if (!t || !rec->stream) return NULL;
    for (size_t i = 0; i < t->nstreams; i++)
        if (t->streams[i].name == rec->stream) return &t->streams[i];
    for (size_t i = 0; i < t->nstreams; i++)
        if (strcmp(t->streams[i].name, rec->stream) == 0) return &t->streams[i];
    return NULL;
}

/* Appends the value PATH selects in DOC (a string's value or a number's
 * text) to OUT. Returns 1 when it did, 0 when there is none, -1 on failure. */
static int key_value(const pf_jsonpath *path, json_object *doc, pf_buf *out)
{
    pf_jp_nodelist nl = {0};
    pf_error e;
    pf_error_clear(&e);
    if (pf_jsonpath_eval(path, doc, 0, &nl, &e) != PF_OK || nl.count == 0) {
        pf_jp_nodelist_free(&nl);
        return 0;
    }
    json_object *v = nl.nodes[0].value;
    pf_jp_nodelist_free(&nl);
    const char *s;
    size_t n;
    switch (json_object_get_type(v)) {
    case json_type_string:
        s = json_object_get_string(v);
        n = (size_t)json_object_get_string_len(v);
        break;
    case json_type_int:
    case json_type_double:
        s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        n = s ? strlen(s) : 0;
        break;
    default:
        return 0;
    }
    if (!s) return -1;
    return pf_buf_append(out, s, n) == PF_OK ? 1 : -1;
}

pf_status pf_identity_complete(const pf_stream_def *sd, pf_sink_record *rec, pf_buf *scratch,
                               pf_error *err)
{
    if (rec->key) return PF_OK;
    pf_buf_reset(scratch);
    int found = 0;
    if (sd && sd->nkey_alt) {
        json_tokener *tok = json_tokener_new_ex(RECORD_DEPTH);
        if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory identifying a record");
        json_object *doc = json_tokener_parse_ex(tok, rec->json, (int)rec->json_len);
        enum json_tokener_error te = json_tokener_get_error(tok);
        json_tokener_free(tok);
        /* The extractors hand on valid JSON within the nesting limit only,
         * so a failure here is json-c running out of memory (it has no
         * error code of its own for that in every version). */
        if (!doc && te != json_tokener_success)
            return pf_error_set(err, PF_ENOMEM, "cannot parse a record to identify it: %s",
                                json_tokener_error_desc(te));
        for (size_t i = 0; doc && !found && i < sd->nkey_alt; i++) {
            if (!sd->key_alt[i]) continue;
            found = key_value(sd->key_alt[i], doc, scratch);
        }
        json_object_put(doc);
        if (found < 0) {
            pf_buf_reset(scratch);
            return pf_error_set(err, PF_ENOMEM, "out of memory identifying a record");
        }
    }
    if (!found) {
        char h[PF_IDENTITY_HASH_SIZE];
        pf_identity_hash(rec->json, rec->json_len, h);
        if (pf_buf_append(scratch, h, strlen(h)) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory identifying a record");
    }
    rec->key = scratch->data ? scratch->data : "";
    rec->key_len = scratch->len;
    return PF_OK;
}

pf_status pf_identity_complete_owned(const pf_stream_def *sd, pf_sink_record *rec, pf_error *err)
{
    if (rec->key) return PF_OK;
    pf_buf scratch;
    pf_buf_init(&scratch, 0);
    pf_status st = pf_identity_complete(sd, rec, &scratch, err);
    if (st == PF_OK) {
        char *k = malloc(scratch.len + 1);
        if (!k) {
            rec->key = NULL;
            st = pf_error_set(err, PF_ENOMEM, "out of memory identifying a record");
        } else {
            memcpy(k, scratch.data ? scratch.data : "", scratch.len);
            k[scratch.len] = '\0';
            rec->key = k;
        }
    }
    pf_buf_free(&scratch);
    return st;
}
