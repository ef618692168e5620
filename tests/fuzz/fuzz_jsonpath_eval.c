/* fuzz_jsonpath_eval.c: libFuzzer target: "QUERY\nDOCUMENT" (split at the
 * first newline byte). Valid queries are evaluated against valid documents,
 * with and without paths, under a small work budget so hostile inputs stay
 * fast; evaluation may only fail with PF_ETOOBIG, PF_EDEPTH or PF_ENOMEM. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jsonpath.h"

#define FUZZ_MAX_WORK 200000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    size_t qlen = (size_t)(nl - data);
    pf_jsonpath *q = NULL;
    if (pf_jsonpath_compile((const char *)data, qlen, &q, NULL) != PF_OK) return 0;

    struct json_tokener *tok = json_tokener_new_ex(200);
    if (!tok) {
        pf_jsonpath_free(q);
        return 0;
    }
    const char *doctext = (const char *)nl + 1;
    size_t doclen = size - qlen - 1;
    struct json_object *doc = json_tokener_parse_ex(tok, doctext, (int)doclen);
    if (!doc && json_tokener_get_error(tok) == json_tokener_continue)
        doc = json_tokener_parse_ex(tok, "", 1);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(doc);
        json_tokener_free(tok);
        pf_jsonpath_free(q);
        return 0;
    }
    json_tokener_free(tok);

    for (int paths = 0; paths <= 1; paths++) {
        pf_jp_nodelist l = {0};
        pf_error err;
        pf_status st = pf_jsonpath_eval_limited(q, doc, paths, 50, FUZZ_MAX_WORK, &l, &err);
        if (st == PF_OK) {
            for (size_t i = 0; i < l.count; i++) {
                if (paths && (!l.nodes[i].path || l.nodes[i].path[0] != '$')) abort();
                if (!paths && l.nodes[i].path) abort();
                (void)json_object_get_type(l.nodes[i].value);
            }
        } else if (st != PF_ETOOBIG && st != PF_EDEPTH && st != PF_ENOMEM) {
            abort();
        } else if (l.count != 0 || l.nodes) {
            abort(); /* a failed evaluation leaves the nodelist as it was */
        }
        pf_jp_nodelist_free(&l);
    }
    json_object_put(doc);
    pf_jsonpath_free(q);
    return 0;
}
