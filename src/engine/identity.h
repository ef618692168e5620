/* identity.h: what identifies a record.
 *
 * Every record a run delivers carries an identity in its `key`: the value at
 * the first of its stream's key paths that the record has (a string's value
 * or a number's text), else "sha256:" followed by the lowercase hex SHA-256
 * of the record's JSON bytes as delivered. Sinks key their destinations by it
 * (the PostgreSQL primary key, the Kafka message key) and the late-arrival
 * ledger remembers it, so two distinct events never collapse into one: the
 * TAP SIEM API sends a message to several recipients as one event per
 * recipient, all sharing the message's GUID, and a template keyed by GUID
 * alone would keep one of them. The extractors fill the first key path; this
 * module completes the rest. */
#ifndef PF_ENGINE_IDENTITY_H
#define PF_ENGINE_IDENTITY_H

#include <stddef.h>

#include "flow/template.h"
#include "sink/ppflow_sink.h"
#include "util/buf.h"
#include "util/status.h"

/* "sha256:" and 64 hex digits, and a NUL. */
#define PF_IDENTITY_HASH_SIZE 72

/* Writes "sha256:<hex>" of the LEN bytes at JSON into OUT. */
void pf_identity_hash(const char *json, size_t len, char out[PF_IDENTITY_HASH_SIZE]);

/* The stream of T that REC belongs to (REC->stream is compared by pointer
 * first, then by name), or NULL (e.g. the gap stream). */
const pf_stream_def *pf_identity_stream(const pf_template *t, const pf_sink_record *rec);

/* Completes REC's identity when REC->key is NULL: the first of SD's further
 * key paths (SD may be NULL: none) that selects a string or number in the
 * record, else the record's hash. The text goes into SCRATCH (reset first;
 * owned by the caller, reused between calls) and REC->key points into it, so
 * it is valid until SCRATCH changes. A record whose key is set is left alone.
 * Fails only with PF_ENOMEM (also when REC is not valid JSON, which the
 * extractors never hand on: json-c failing on it means memory ran out). */
pf_status pf_identity_complete(const pf_stream_def *sd, pf_sink_record *rec, pf_buf *scratch,
                               pf_error *err);

/* As pf_identity_complete for records whose key the caller owns (collected
 * records, allocated with malloc): REC->key becomes a new malloc'd,
 * NUL-terminated string. */
pf_status pf_identity_complete_owned(const pf_stream_def *sd, pf_sink_record *rec, pf_error *err);

#endif
