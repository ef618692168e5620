/* diag.c: the diagnostics list. */
#include "util/diag.h"

#include <stdlib.h>

#include "util/log.h"

void pf_diags_add(pf_diags *d, const pf_error *e)
{
    if (d->count == d->alloc) {
        size_t na = d->alloc ? d->alloc * 2 : 8;
        pf_error *p = realloc(d->items, na * sizeof *p);
        if (!p) {
            d->oom = 1;
            return;
        }
        d->items = p;
        d->alloc = na;
    }
    d->items[d->count++] = *e;
}

void pf_diags_print(const pf_diags *d, FILE *f, const char *prefix)
{
    char line[PF_ERROR_MSG_MAX + PF_ERROR_FILE_MAX + 64], clean[sizeof line];
    for (size_t i = 0; i < d->count; i++) {
        pf_error_format(&d->items[i], line, sizeof line);
        pf_log_redact(line, clean, sizeof clean);
        fputs(prefix, f);
        pf_log_write_escaped(f, clean);
        fputc('\n', f);
    }
    if (d->oom) fprintf(f, "%s(further problems not shown: out of memory)\n", prefix);
}

pf_status pf_diags_first(const pf_diags *d, pf_error *err)
{
    if (d->count == 0) return d->oom ? PF_ENOMEM : PF_OK;
    if (err) *err = d->items[0];
    return d->items[0].code;
}

void pf_diags_free(pf_diags *d)
{
    if (!d) return;
    free(d->items);
    d->items = NULL;
    d->count = d->alloc = 0;
    d->oom = 0;
}
