/* nodelist.c: releasing the nodelists pf_jsonpath_eval fills. */
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jsonpath.h"

void pf_jp_nodelist_free(pf_jp_nodelist *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->count; i++)
        free(l->nodes[i].path);
    free(l->nodes);
    memset(l, 0, sizeof *l);
}
