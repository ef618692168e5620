/* syslog.h: SIEM syslog responses as records.
 *
 * With `format=syslog` the TAP SIEM API answers with text lines instead of a
 * JSON document. Each non-empty line becomes one record: a JSON object with
 * the line under "raw" and, where the line allows, its syslog header under
 * "syslog" and its key=value fields as members. docs/templates/tap-siem-syslog.md
 * describes the record shape; in short:
 *
 *   {"raw": "<134>1 2024-05-02T10:00:02.010Z host tap - CLKPER - id=\"c-1\" ...",
 *    "syslog": {"pri": 134, "version": 1, "timestamp": "2024-05-02T10:00:02.010Z",
 *               "host": "host", "app": "tap", "msgid": "CLKPER", "event": "CLKPER"},
 *    "id": "c-1", ...}
 *
 * - Lines end at LF; one CR before the LF is dropped. Empty lines and lines of
 *   only spaces, tabs and CRs are skipped.
 * - Field values are always JSON strings (syslog carries no types): quoted
 *   values "..." have the escapes \\ \" \n \r \t undone (any other backslash
 *   is kept as is); unquoted values run to the next space or tab.
 * - A name appears once: the first occurrence wins, and "raw", "raw_base64"
 *   and "syslog" are never taken by a field (the line keeps everything).
 * - A line that is not valid UTF-8 keeps a readable "raw" with U+FFFD in
 *   place of each ill-formed byte, and the exact bytes in "raw_base64"; a
 *   record without "raw_base64" has "raw" equal to the line byte for byte.
 * - What cannot be parsed (an unterminated quote, more than
 *   PF_SYSLOG_MAX_FIELDS fields) ends the parsing of that line; the fields
 *   before it are kept and "syslog"."error" says what happened.
 * - The event kind token (MSGDLV, MSGBLK, CLKPER, CLKBLK) picks the stream;
 *   the table lives in syslog.c and is unconfirmed by Proofpoint's
 *   documentation (only a third-party parser names CLKPER and MSGDLV).
 *
 * Nothing here recurses; every line is bounded by PF_SYSLOG_MAX_LINE. */
#ifndef PF_PROOFPOINT_SYSLOG_H
#define PF_PROOFPOINT_SYSLOG_H

#include <stddef.h>

#include "engine/extract.h"
#include "flow/template.h"
#include "util/buf.h"
#include "util/status.h"

/* Longest line accepted, in bytes (without its LF or CRLF). */
#define PF_SYSLOG_MAX_LINE (1u << 20)

/* Most key=value fields parsed from one line; the rest stay in "raw". */
#define PF_SYSLOG_MAX_FIELDS 4096

/* Splits BODY (LEN bytes, not NUL-terminated; may be NULL when LEN is 0)
 * into lines and appends one record per non-empty line to OUT (initialised
 * by the caller), in the stream of T named by the line's event kind when T
 * has that stream, else T's first stream. Each record's key is the value
 * of that stream's key path evaluated on the record object (a string as is,
 * a number as its text); a record without one counts in OUT->missing_keys.
 * T: not NULL, with at least one stream (PF_EINVAL otherwise).
 * Returns PF_OK; PF_EDATA with the byte offset (pf_error offset) of a line
 * over PF_SYSLOG_MAX_LINE bytes or of a NUL byte; PF_ENOMEM. On failure OUT
 * keeps exactly what it had before the call. ERR may be NULL. */
pf_status pf_syslog_extract(const pf_template *t, const char *body, size_t len, pf_records *out,
                            pf_error *err);

/* Builds the record object of one line LINE[0..LEN) (without LF) as
 * compact JSON text into OUT (appended; OUT's cap applies). *KIND is set to
 * the stream name the line's event kind maps to, or NULL (KIND may be
 * NULL). Same rules and errors as pf_syslog_extract (offsets relative to
 * LINE); on failure OUT is unchanged. */
pf_status pf_syslog_line_json(const char *line, size_t len, pf_buf *out, const char **kind,
                              pf_error *err);

/* The stream name the event kind token TOKEN[0..LEN) maps to
 * ("messages_delivered", ...), or NULL when TOKEN is not a known kind. */
const char *pf_syslog_kind_stream(const char *token, size_t len);

#endif
