/* fuzz_yaml.c: libFuzzer target for the YAML loader behind flows and
 * templates (libyaml events → positioned tree, aliases refused, depth cap). */
#include <stddef.h>
#include <stdint.h>

#include "flow/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_ydoc *doc = NULL;
    pf_error err;
    pf_error_clear(&err);
    if (pf_yaml_parse("fuzz.yaml", (const char *)data, size, &doc, &err) == PF_OK) {
        /* Walk the root map the way the loaders do. */
        for (size_t i = 0; i < pf_ymap_size(doc->root); i++) {
            const pf_ynode *k = pf_ymap_key(doc->root, i);
            (void)pf_ymap_get(doc->root, k->value);
            (void)pf_ynode_is_null(pf_ymap_val(doc->root, i));
        }
    }
    pf_ydoc_free(doc);
    return 0;
}
