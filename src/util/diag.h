/* diag.h: a list of diagnostics, so validation reports every problem it
 * finds instead of stopping at the first. */
#ifndef PF_UTIL_DIAG_H
#define PF_UTIL_DIAG_H

#include <stdio.h>

#include "util/status.h"

typedef struct pf_diags {
    pf_error *items; /* owned */
    size_t count, alloc;
    int oom;         /* set when an entry could not be stored */
} pf_diags;

/* Zero-initialise a pf_diags before use ({0} is fine). */

/* Appends a copy of E. Never fails loudly: on allocation failure sets oom. */
void pf_diags_add(pf_diags *d, const pf_error *e);

/* Prints each entry (pf_error_format form, redacted) on its own line to F,
 * prefixed with PREFIX ("" for none). */
void pf_diags_print(const pf_diags *d, FILE *f, const char *prefix);

/* Copies the first entry into ERR (if any) and returns its code, else PF_OK. */
pf_status pf_diags_first(const pf_diags *d, pf_error *err);

/* Frees the entries; D may be NULL. */
void pf_diags_free(pf_diags *d);

#endif
