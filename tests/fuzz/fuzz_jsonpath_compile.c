/* fuzz_jsonpath_compile.c: libFuzzer target: any bytes as a JSONPath query.
 * Compiling must either succeed or fail with a message and an offset inside
 * the query, never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jsonpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy without a NUL so ASan catches reads past LEN */
    char *query = malloc(size ? size : 1);
    if (!query) return 0;
    if (size) memcpy(query, data, size);
    pf_jsonpath *q = NULL;
    pf_error err;
    pf_error_clear(&err);
    pf_status st = pf_jsonpath_compile(query, size, &q, &err);
    if (st == PF_OK) {
        if (!q || strlen(pf_jsonpath_text(q)) > size) abort();
        pf_jp_shape shape;
        if (pf_jsonpath_simple_shape(q, &shape)) {
            for (size_t i = 0; i < shape.nnames; i++)
                if (!shape.names[i]) abort();
            for (size_t i = 0; i < shape.nunion; i++)
                if (!shape.union_names[i]) abort();
        }
        (void)pf_jsonpath_is_singular(q);
        pf_jsonpath_free(q);
    } else {
        if (q || err.msg[0] == '\0' || err.offset < 0 || (size_t)err.offset > size) abort();
        if (st != PF_ESYNTAX && st != PF_EDEPTH && st != PF_ENOMEM) abort();
    }
    free(query);
    return 0;
}
