/* yschema.h: typed reads from the YAML tree with positioned diagnostics.
 *
 * Shared by the template and flow loaders: each reader either returns the
 * value or adds one FILE:LINE:COL diagnostic to DIAGS and returns failure, so
 * a loader can keep going and report every problem in one pass. */
#ifndef PF_FLOW_YSCHEMA_H
#define PF_FLOW_YSCHEMA_H

#include <stdint.h>

#include "flow/yaml.h"
#include "util/diag.h"

/* Adds a diagnostic positioned at N (or without position when N is NULL). */
void pf_ys_error(pf_diags *d, const pf_ynode *n, pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reports every key of MAP not in ALLOWED (NULL-terminated) as
 * "unknown key 'k' in WHAT". Returns the number reported. */
int pf_ys_check_keys(const pf_ynode *map, const char *const *allowed, const char *what,
                     pf_diags *d);

/* Requires N to be a map (WHAT names it in the message). Returns 1 if it is. */
int pf_ys_want_map(const pf_ynode *n, const char *what, pf_diags *d);

/* A scalar as a new string (caller frees), or NULL with a diagnostic. */
char *pf_ys_string(const pf_ynode *n, const char *what, pf_diags *d);

/* A plain true/false (also yes/no, on/off). Returns 0 on success. */
int pf_ys_bool(const pf_ynode *n, const char *what, int *out, pf_diags *d);

/* A decimal integer within [MIN, MAX]. Returns 0 on success. */
int pf_ys_int(const pf_ynode *n, const char *what, int64_t min, int64_t max, int64_t *out,
              pf_diags *d);

/* A duration ("30s", "5m", "PT1H", a bare number of seconds) in ms. */
int pf_ys_duration(const pf_ynode *n, const char *what, int64_t *out, pf_diags *d);

/* A size ("256MiB", "10MB", "4096") in bytes. */
int pf_ys_size(const pf_ynode *n, const char *what, uint64_t *out, pf_diags *d);

/* Parses a size text ("256MiB", "1G", "512k", "4096"). Returns 0 on success. */
int pf_parse_size(const char *s, uint64_t *out);

#endif
