/* stream_extract.h: record extraction from a response body that arrives in
 * chunks, in memory bounded by the largest record.
 *
 * A pf_sx extracts the records of every stream of a template from one
 * response body fed in chunks of any size (e.g. from libcurl's write
 * callback). It picks one of two modes when it is created:
 *
 * Streaming (pf_sx_is_streaming() == 1), when every stream's path has one of
 * the shapes pf_jsonpath_simple_shape accepts:
 *     $   $.a   $.a.b[*]   $[*]   $['a'][*]   $.a['x','y'][*]   $.a.*
 * (child segments of one name each, then optionally one union of names, then
 * optionally one wildcard), every key path is a single member name ($.GUID,
 * $['id']) or $ (the record itself), and no stream's records contain another
 * stream's records (as `$.a` with `$.a.b[*]` would). The body is tokenized as
 * it arrives (see jstream.h) and each record is handed to the callback as
 * soon as its last byte arrives, as its original bytes minified (whitespace
 * outside strings removed, everything else, including escapes and number
 * spellings, as sent).
 * No document tree is built; the key is read while the record passes. Memory:
 * one record (max_record), its key, the names of the objects on the paths
 * (at most PF_SX_MAX_PATH_NAMES bytes) and fixed buffers, whatever the body
 * size.
 *
 * Buffered (pf_sx_is_streaming() == 0), for any other template: the body is
 * validated as it arrives (a body that is not JSON fails at its first bad
 * byte) and kept (at most max_body bytes); pf_sx_finish runs
 * pf_extract_records (json-c + the JSONPath evaluator) and calls the callback
 * for each record. Records are then compact json-c text, not the original
 * bytes (escapes decoded and re-encoded, see extract.h). As json-c keeps only
 * one value per member name, a template that buffers refuses a body in which
 * any object (on a path, inside a record or anywhere else) repeats a member
 * name (see pf_sx_check_body).
 *
 * For a template that streams, a streaming pf_sx and pf_extract_records
 * (which a caller may run on the whole body instead) accept and refuse the
 * same bodies with the same errors (code, message and offset;
 * pf_extract_records runs the same checks through pf_sx_check_body), apart
 * from the limits: both refuse a record over max_record, but the streaming
 * pf_sx measures a record as its original bytes with the offset where it
 * starts, pf_extract_records as json-c prints it with its normalized path;
 * only the buffered path has max_body and its memory budget (extract.h).
 * A body of zero bytes or only whitespace has no records (HTTP 204).
 *
 * Records and keys (both modes, the same for the same body):
 *   - a record is every value its stream's path selects, per RFC 9535;
 *   - the key (stream has a key path) is the value of that member of the
 *     record (or, for $, the record itself): a string's value (escapes
 *     decoded; may hold NUL bytes, see key_len), or a number's text as sent;
 *     any other value, a missing member or (for a member name) a record that
 *     is not an object gives no key (key NULL) and counts as a missing key.
 *     When the member appears twice (possible only for a template that
 *     streams), the last wins. A member name holding U+0000 counts only up
 *     to it (json-c keeps names as C strings);
 *   - repeated member names (compared decoded, and only up to a U+0000):
 *     for a template that streams, a name that repeats within an object on
 *     a stream's path (an object the path steps through, or whose members
 *     are the records) is refused (PF_EDATA at the repeated name): a stream
 *     cannot take back the records of the first occurrence, and RFC 8259
 *     leaves the meaning of repeated names open; repeated names inside
 *     records are passed on as sent (pf_extract_records, run on such a
 *     body, keeps the last, as json-c does). For a template that buffers,
 *     a name repeated in any object of the body is refused (PF_EDATA at the
 *     second occurrence), since json-c would silently keep only one value.
 * Order: streaming mode calls the callback in document order (a value that
 * is a record of several streams is passed once per stream, in template
 * order); buffered mode stream by stream in template order, each in RFC 9535
 * order. Within one stream the two orders are the same except for union
 * paths ($['x','y'][*]), which RFC 9535 orders by selector.
 *
 * Delivery contract for the caller: records are handed over before the body
 * is known to be complete and valid. Until pf_sx_finish returns PF_OK, treat
 * them as tentative (batch them, do not commit a checkpoint): a body that
 * turns out truncated or malformed makes the whole response fail, and
 * pf_sx_reset (e.g. when an HTTP retry restarts the body) abandons them.
 *
 * A pf_sx is used by one thread at a time; the template must outlive it.
 *
 * Typical use by the engine (one pf_sx per flow run, one body at a time):
 *     sx = pf_sx_new(tmpl, max_record, http.max_body, on_record, &batch, &err);
 *     for each response:
 *         pf_sx_reset(sx);
 *         libcurl body callback (pf_http_body_fn):
 *             p == NULL && n == 0 (a retry restarts the body):
 *                 pf_sx_reset(sx); drop the records batched for this response;
 *             otherwise: return pf_sx_feed(sx, p, n, &err);
 *         source.file: read the file in chunks (e.g. 64 KiB) and pf_sx_feed each;
 *         after the transfer: pf_sx_finish(sx, &err); on PF_OK the response's
 *             records are complete: hand them to the sink and commit as now;
 *             pf_sx_get_stats() gives missing_keys for the warning.
 *     pf_sx_free(sx);
 * on_record copies rec->json / rec->key into the batch (or writes them to
 * the sink when the sink's batch is full, still without committing). A
 * pager that reads fields of the body (cursor, next link) needs the body:
 * keep buffering for those flows, or keep a copy capped at max_body. */
#ifndef PF_ENGINE_STREAM_EXTRACT_H
#define PF_ENGINE_STREAM_EXTRACT_H

#include <stddef.h>

#include "flow/template.h"
#include "sink/ppflow_sink.h"
#include "util/status.h"

/* Most bytes of member names held to detect a repeated name in the objects
 * on the stream paths (one such object with more names fails with
 * PF_ETOOBIG). */
#define PF_SX_MAX_PATH_NAMES ((size_t)8 << 20)

/* Default record limit for callers without a configured one. */
#define PF_SX_DEFAULT_MAX_RECORD ((size_t)16 << 20)

/* Called once per record and stream. REC (stream, key, json) and everything
 * it points to are valid only during the call: copy what you keep. REC->json
 * is not NUL-terminated. Return PF_OK to go on; any other status stops the
 * extraction: pf_sx_feed / pf_sx_finish return it with the callback's ERR
 * (fill it; a generic message is set when it is left empty). */
typedef pf_status (*pf_sx_record_fn)(void *ud, const pf_sink_record *rec, pf_error *err);

typedef struct pf_sx pf_sx;

typedef struct pf_sx_stats {
    unsigned long long bytes; /* body bytes fed since creation or the last reset */
    size_t records;           /* callback calls made (one per record and stream) */
    size_t missing_keys;      /* records of streams with a key path that had no key */
} pf_sx_stats;

/* Creates an extractor for template T (borrowed: it must outlive the pf_sx).
 * MAX_RECORD: largest record, in bytes of minified JSON, in streaming mode
 * (a larger one fails with PF_ETOOBIG giving its offset; it also caps the
 * key and each member name of the objects on the paths); 0 means
 * PF_SX_DEFAULT_MAX_RECORD. MAX_BODY: largest body in buffered mode (PF_ETOOBIG
 * beyond); 0 means unlimited. FN (not NULL) receives the records with UD.
 * Returns NULL with ERR filled on PF_ENOMEM or PF_EINVAL (T or FN NULL, or a
 * template without streams). */
pf_sx *pf_sx_new(const pf_template *t, size_t max_record, size_t max_body, pf_sx_record_fn fn,
                 void *ud, pf_error *err);

/* Feeds the next LEN bytes of the body (DATA may be NULL when LEN is 0).
 * In streaming mode, calls FN for every record completed by these bytes.
 * Fails with PF_EDATA (not JSON, with the absolute byte offset of the first
 * bad byte; in streaming mode, a repeated member name on a path), PF_EDEPTH (nested deeper than
 * PF_EXTRACT_MAX_NESTING), PF_ETOOBIG (record over max_record, body over
 * max_body, names over PF_SX_MAX_PATH_NAMES), PF_ENOMEM, or the callback's
 * status; messages name no response (callers prefix their own, e.g.
 * "response for WINDOW: "). Errors are sticky: later
 * feed/finish calls return the same error until pf_sx_reset. */
pf_status pf_sx_feed(pf_sx *sx, const char *data, size_t len, pf_error *err);

/* Ends the body: checks that it was complete JSON (PF_EDATA "truncated"
 * otherwise) and, in buffered mode, extracts and delivers every record
 * (after pf_sx_check_body's checks: an object repeating a member name is
 * PF_EDATA here, and nothing is delivered).
 * Returns PF_OK when the whole response was valid and delivered. After
 * finish, only pf_sx_reset, pf_sx_get_stats and pf_sx_free may be called
 * (feed and finish return PF_EINVAL). */
pf_status pf_sx_finish(pf_sx *sx, pf_error *err);

/* Makes SX ready for a new body (the next response, or an HTTP retry that
 * restarts this one); clears a sticky error and the statistics, keeps the
 * allocations. */
void pf_sx_reset(pf_sx *sx);

/* 1 when SX streams (see above), 0 when it buffers the body. */
int pf_sx_is_streaming(const pf_sx *sx);

/* Why SX buffers instead of streaming (e.g. "stream x: path $..a is not of
 * the form $.a.b[*]"), or "" when it streams. Owned by SX. */
const char *pf_sx_buffered_reason(const pf_sx *sx);

/* Counters since creation or the last reset. */
void pf_sx_get_stats(const pf_sx *sx, pf_sx_stats *out);

/* Frees SX; NULL accepted. */
void pf_sx_free(pf_sx *sx);

/* For callers that hold a whole body (pf_extract_records calls it before
 * json-c parses the body). T and BODY are borrowed (BODY may be NULL when
 * LEN is 0).
 *   - T can stream: runs every check a streaming pf_sx for T makes on BODY
 *     (LEN bytes), without delivering records and without the max_record
 *     limit, and returns PF_OK or the same error pf_sx_feed / pf_sx_finish
 *     would give.
 *   - T cannot stream: the JSON checks (the same errors as a buffered
 *     pf_sx_feed gives), and every object of the body, at any depth, must
 *     not repeat a member name: names are compared after JSON unescaping
 *     ("a" and "\u0061" are one name, RFC 8259) and only up to a U+0000, as
 *     json-c keys them. A repeat fails with PF_EDATA at the byte offset of
 *     its second occurrence ("member name \"x\" appears twice in one
 *     object ..."). Memory: a hash set of names per open object (names
 *     point into BODY, escaped ones are decoded into a copy), bounded by
 *     LEN; no recursion.
 * Fails with PF_EDATA, PF_EDEPTH, PF_ETOOBIG (names over
 * PF_SX_MAX_PATH_NAMES on a path, streaming templates only) or PF_ENOMEM,
 * filling ERR (may be NULL). Sets *EMPTY (may be NULL) to 1 for a body that
 * is empty or only whitespace, else 0. */
pf_status pf_sx_check_body(const pf_template *t, const char *body, size_t len, int *empty,
                           pf_error *err);

#endif
