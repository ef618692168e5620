/* extract.h: pulling records out of a response body.
 *
 * The body is parsed with json-c (nesting capped), each stream's JSONPath is
 * evaluated, and every selected node becomes one record: its JSON text
 * (compact, members in their original order) and its key (the key path's
 * value: a string as is, a number as its text). An empty body (HTTP 204) has
 * no records. */
#ifndef PF_ENGINE_EXTRACT_H
#define PF_ENGINE_EXTRACT_H

#include <stddef.h>

#include "flow/template.h"
#include "sink/ppflow_sink.h"
#include "util/status.h"

#define PF_EXTRACT_MAX_NESTING 1000

typedef struct pf_records {
    pf_sink_record *recs; /* json and key point into owned copies */
    size_t count, cap;
    size_t missing_keys;  /* records whose key path selected nothing */
} pf_records;

/* Parses BODY (LEN bytes) and appends the records of every stream of T to
 * OUT (zero-initialised by the caller). PF_EDATA with the byte offset for a
 * body that is not JSON; PF_EDEPTH when nested deeper than
 * PF_EXTRACT_MAX_NESTING. On failure OUT keeps what it had before the call. */
pf_status pf_extract_records(const pf_template *t, const char *body, size_t len, pf_records *out,
                             pf_error *err);

/* Frees every record's copies; OUT is zeroed. NULL accepted. */
void pf_records_free(pf_records *out);

#endif
