/* syslog.h: SIEM syslog responses as records.
 *
 * With `format=syslog` the TAP SIEM API answers with text lines instead of a
 * JSON document. Each non-empty line becomes one record: a JSON object with
 * the raw line under "raw" and, where the line allows, its key=value fields
 * parsed into members (see docs/templates/tap-siem.md for the exact shape). */
#ifndef PF_PROOFPOINT_SYSLOG_H
#define PF_PROOFPOINT_SYSLOG_H

#include <stddef.h>

#include "engine/extract.h"
#include "flow/template.h"
#include "util/status.h"

/* Splits BODY (LEN bytes, not NUL-terminated) into lines (LF or CRLF) and
 * appends one record per non-empty line to OUT, in the stream of T named
 * by the line's event kind when T has one, else T's first stream. Keys come
 * from the line's own identifier field when the stream has a key path.
 * PF_EDATA with the byte offset for a line over PF_SYSLOG_MAX_LINE bytes or
 * holding a NUL byte. On failure OUT keeps what it had before the call. */
#define PF_SYSLOG_MAX_LINE (1u << 20)
pf_status pf_syslog_extract(const pf_template *t, const char *body, size_t len, pf_records *out,
                            pf_error *err);

#endif
