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
 * last value and silently lose records or change one. The json-c document
 * is then built from the tokenizer's events (jstream.h), with every
 * allocation checked (json-c's own parser cannot report running out of
 * memory: it may return a partial document as a success) and within a
 * memory budget (below). Each stream's JSONPath is evaluated, and every
 * selected node becomes one record: its JSON text (compact, as json-c
 * prints it: members in their original order; strings decoded and
 * re-escaped, '/' not escaped, control characters as \u00xx; numbers keep
 * the text they were sent with) and its key (the key path's first value: a
 * string's value, which may hold NUL bytes, or a number's text as sent;
 * anything else gives no key). A top-level scalar is valid and has no
 * records unless a path selects it. An empty body (HTTP 204) or one of only
 * whitespace has no records.
 *
 * Memory: the document and the records extracted from it are bounded by
 * the budget max_memory (pf_extract_limits), counted with a model of
 * json-c 0.16's allocations (its structures and glibc's 16-byte chunks; an
 * upper bound of the heap used, checked against the allocator by the unit
 * tests). The document is counted before each of its allocations, so a
 * body whose document would need more fails with PF_ETOOBIG before it is
 * built past the budget; the records are counted as they are made (their
 * copies before, the one-record print buffer, at most max_record, and
 * JSONPath's node lists as they grow). The default is
 * PF_EXTRACT_MEMORY_FACTOR times the body plus PF_EXTRACT_MEMORY_BASE:
 * typical API responses need 3 to 6 times their size, while a body of
 * small containers ([{},{},...]) would need over 250 times its size. Not
 * counted: the body itself, the tokenizer and the names of the open
 * objects (at most the body's size), and JSONPath's evaluation work (capped
 * by the evaluator, see jsonpath.h). */
#ifndef PF_ENGINE_EXTRACT_H
#define PF_ENGINE_EXTRACT_H

#include <stddef.h>

#include "flow/template.h"
#include "sink/ppflow_sink.h"
#include "util/status.h"

struct json_object;

#define PF_EXTRACT_MAX_NESTING 1000

/* The default memory budget: PF_EXTRACT_MEMORY_FACTOR bytes per body byte,
 * plus PF_EXTRACT_MEMORY_BASE. */
#define PF_EXTRACT_MEMORY_FACTOR 16
#define PF_EXTRACT_MEMORY_BASE ((size_t)64 << 20)

/* Limits of one extraction; a zero field takes its default. */
typedef struct pf_extract_limits {
    /* Largest record, in bytes of its JSON text as extracted (the flow's
     * source.http.max_record); default PF_SX_DEFAULT_MAX_RECORD. */
    size_t max_record;
    /* Most bytes the document and the records may take (see above);
     * default PF_EXTRACT_MEMORY_FACTOR * len + PF_EXTRACT_MEMORY_BASE. */
    size_t max_memory;
} pf_extract_limits;

typedef struct pf_records {
    pf_sink_record *recs; /* json and key point into owned copies */
    size_t count, cap;
    size_t missing_keys; /* records whose key path selected nothing */
} pf_records;

/* Parses BODY (LEN bytes; T and BODY borrowed, BODY may be NULL when LEN
 * is 0) and appends the records of every stream of T to OUT
 * (zero-initialised by the caller), stream by stream in template order,
 * each in RFC 9535 order, within LIM (NULL: the defaults). Fails with
 * PF_EDATA for a body that is not JSON (the message says what, e.g.
 * "truncated JSON (12 bytes)" or, for a template that cannot stream, a
 * repeated member name, and the error carries the byte offset), PF_EDEPTH
 * when nested deeper than PF_EXTRACT_MAX_NESTING, PF_ETOOBIG for a body
 * over 2 GiB, a body whose document and records would take more than
 * LIM->max_memory ("the response needs more than N bytes of memory to
 * extract ...") or a record over LIM->max_record ("record of stream S is
 * larger than the record limit (N bytes, source.http.max_record), the
 * record at $['a'][3]"), or PF_ENOMEM when an allocation fails (never a
 * success with records missing). On failure OUT keeps what it had before
 * the call. */
pf_status pf_extract_records_ex(const pf_template *t, const char *body, size_t len,
                                const pf_extract_limits *lim, pf_records *out, pf_error *err);

/* pf_extract_records_ex with the default limits. */
pf_status pf_extract_records(const pf_template *t, const char *body, size_t len, pf_records *out,
                             pf_error *err);

/* The document builder behind pf_extract_records_ex, for callers and tests
 * that need the json-c document itself. BODY (LEN bytes, at most 2 GiB)
 * must already be known to be JSON (e.g. by pf_sx_check_body) and not
 * empty. Builds it into *DOC (the caller releases it with json_object_put;
 * NULL for a body that is the literal null) counting, in *USED (may be
 * NULL), the bytes the model above gives it, and fails before exceeding
 * MAX_MEMORY (0: no limit) with PF_ETOOBIG, or with PF_ENOMEM, PF_EDATA or
 * PF_EDEPTH (a body that is not JSON after all); *DOC is NULL on failure. */
pf_status pf_extract_build_doc(const char *body, size_t len, size_t max_memory,
                               struct json_object **doc, size_t *used, pf_error *err);

/* Makes room for EXTRA more records in OUT (the array grows by doubling).
 * PF_ENOMEM with ERR filled, OUT unchanged, on failure. */
pf_status pf_records_reserve(pf_records *out, size_t extra, pf_error *err);

/* Appends a copy of REC (its json and key are copied; its stream name is
 * borrowed and must outlive OUT). PF_ENOMEM with OUT unchanged on failure. */
pf_status pf_records_push_copy(pf_records *out, const pf_sink_record *rec, pf_error *err);

/* Frees every record's copies; OUT is zeroed. NULL accepted. */
void pf_records_free(pf_records *out);

#endif
