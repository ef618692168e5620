/* extract.h: pulling records out of a whole response body (the buffered
 * path; stream_extract.h streams the common shapes and falls back here).
 *
 * The body is first checked by pf_sx_check_body (strict RFC 8259, UTF-8,
 * nesting; see stream_extract.h): for a template that can stream, exactly
 * as the streaming path checks it (repeated member names refused in the
 * objects on the stream paths), so both paths refuse the same bodies with
 * the same errors; for a template that cannot stream, any object of the
 * body that repeats a member name (compared decoded) is refused with
 * PF_EDATA at the second occurrence, because json-c would keep only the
 * last value and silently lose records or change one. It is then parsed
 * with json-c, each stream's JSONPath is evaluated,
 * and every selected node becomes one record: its JSON text (compact json-c
 * text, members in their original order; strings are decoded and re-escaped
 * by json-c, numbers keep the text they were sent with) and its key (the key
 * path's first value: a string's value, which may hold NUL bytes, or a
 * number's text as sent; anything else gives no key). A top-level scalar is
 * valid and has no records unless a path selects it. An empty body (HTTP
 * 204) or one of only whitespace has no records. */
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
    size_t missing_keys; /* records whose key path selected nothing */
} pf_records;

/* Parses BODY (LEN bytes) and appends the records of every stream of T to
 * OUT (zero-initialised by the caller), stream by stream in template order,
 * each in RFC 9535 order. Fails with PF_EDATA for a body that is not JSON
 * (the message says what, e.g. "truncated JSON (12 bytes)" or, for a
 * template that cannot stream, a repeated member name, and the error
 * carries the byte offset), PF_EDEPTH when nested deeper than
 * PF_EXTRACT_MAX_NESTING, PF_ETOOBIG over 2 GiB, or PF_ENOMEM. On failure
 * OUT keeps what it had before the call. */
pf_status pf_extract_records(const pf_template *t, const char *body, size_t len, pf_records *out,
                             pf_error *err);

/* Makes room for EXTRA more records in OUT (the array grows by doubling).
 * PF_ENOMEM with ERR filled, OUT unchanged, on failure. */
pf_status pf_records_reserve(pf_records *out, size_t extra, pf_error *err);

/* Appends a copy of REC (its json and key are copied; its stream name is
 * borrowed and must outlive OUT). PF_ENOMEM with OUT unchanged on failure. */
pf_status pf_records_push_copy(pf_records *out, const pf_sink_record *rec, pf_error *err);

/* Frees every record's copies; OUT is zeroed. NULL accepted. */
void pf_records_free(pf_records *out);

#endif
