/* fuzz_suggest.c: record-path suggestions on arbitrary input. Every suggested
 * path must compile and select exactly the number of records it claims; a
 * failure must come with a message and no suggestions. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine/suggest.h"
#include "jsonpath/jsonpath.h"
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *t = malloc(size ? size : 1);
    if (!t) return 0;
    if (size) memcpy(t, data, size);
    pf_suggestions all;
    pf_error e;
    pf_status st = pf_suggest_text(t, size, &all, &e);
    if (st == PF_OK) {
        json_tokener *tok = json_tokener_new_ex(PF_SUGGEST_MAX_NESTING);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *doc = json_tokener_parse_ex(tok, t, (int)size);
        if (json_tokener_get_error(tok) == json_tokener_continue)
            doc = json_tokener_parse_ex(tok, " ", 1);
        json_tokener_free(tok);
        for (size_t i = 0; i < all.count; i++) {
            pf_jsonpath *q = NULL;
            CHECK(pf_jsonpath_compile(all.items[i].path, strlen(all.items[i].path), &q, NULL) ==
                  PF_OK);
            pf_jp_nodelist nl = {0};
            CHECK(pf_jsonpath_eval(q, doc, 0, &nl, NULL) == PF_OK);
            CHECK(nl.count == all.items[i].records);
            pf_jp_nodelist_free(&nl);
            pf_jsonpath_free(q);
            if (all.items[i].key) {
                CHECK(pf_jsonpath_compile(all.items[i].key, strlen(all.items[i].key), &q, NULL) ==
                      PF_OK);
                pf_jsonpath_free(q);
            }
        }
        json_object_put(doc);
        pf_suggestions_free(&all);
    } else {
        CHECK(all.count == 0 && e.msg[0]);
    }
    free(t);
    return 0;
}
