/* spool.h: the records of the unit being delivered, kept in a local file.
 *
 * A streamed unit's records reach the sink while the response arrives, so
 * they are not in memory when the sink fails. They are appended to the
 * spool as they are extracted, so that a sink RETRY, a reopen or the
 * isolation of refused records replays them from the spool and never
 * fetches them from the API again: call budgets are scarce (50 calls a day
 * for several Proofpoint endpoints).
 *
 * The file is <state.path>.spool, created with mode 0600, never through a
 * symbolic link, into a FIFO or into another user's file, truncated when a
 * unit starts and when it is committed, and removed when the run ends. It
 * is scratch space for one unit of one run: a run killed in the middle
 * leaves a spool that the next run truncates unread (that run fetches the
 * unit again), so a torn spool is never delivered. It holds at most
 * MAX_BYTES; past that (or when the disk is full) appends fail with
 * PF_ETOOBIG and the spool is unusable until the next reset, which the
 * caller reports and handles by fetching again.
 *
 * Records are framed as: stream index (u32), key length (u32, UINT32_MAX for
 * no key), JSON length (u32), key bytes, JSON bytes; an index of offsets (8
 * bytes a record) stays in memory. Not thread-safe. */
#ifndef PF_ENGINE_SPOOL_H
#define PF_ENGINE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "sink/ppflow_sink.h"
#include "util/status.h"

typedef struct pf_spool pf_spool;

/* Creates (or truncates) the spool at PATH for records of the NSTREAMS
 * streams named in STREAMS (borrowed; must outlive the spool). PATH's
 * directory must exist. The file is opened with pf_open_private
 * (util/safefile.h): a symbolic link, anything but a regular file, or a
 * file of another user at PATH is refused with PF_EIO "cannot use the spool
 * file PATH: it is ...", and left as it was (nothing is truncated then).
 * On success *OUT owns the spool. */
pf_status pf_spool_open(const char *path, const char *const *streams, size_t nstreams,
                        uint64_t max_bytes, pf_spool **out, pf_error *err);

/* Empties the spool for a new unit (also makes a full spool usable again). */
pf_status pf_spool_reset(pf_spool *s, pf_error *err);

/* Appends REC, whose stream must be one of the spool's streams. PF_ETOOBIG
 * when MAX_BYTES would be passed or the disk is full: the spool is then
 * unusable (pf_spool_usable is 0) until the next reset. PF_ENOMEM, PF_EIO. */
pf_status pf_spool_append(pf_spool *s, const pf_sink_record *rec, pf_error *err);

/* Writes what the spool still holds in memory to its file. Fails (and the
 * spool becomes unusable) when the disk is full or the file cannot be
 * written; call it before relying on the spool for a replay. */
pf_status pf_spool_flush(pf_spool *s, pf_error *err);

/* 1 when every record appended since the last reset is in the spool. */
int pf_spool_usable(const pf_spool *s);

/* Records appended since the last reset. */
size_t pf_spool_count(const pf_spool *s);

/* How many records from FIRST (at most MAX_N, within the count) take at most
 * MAX_BYTES of memory together; at least 1 when any record is left. */
size_t pf_spool_fit(const pf_spool *s, size_t first, size_t max_n, size_t max_bytes);

/* Reads records FIRST .. FIRST+N-1 (within the count) into memory owned by
 * the spool: *RECS is valid until the next call on S. PF_EIO, PF_ENOMEM,
 * PF_EDATA (the file was changed underneath). */
pf_status pf_spool_read(pf_spool *s, size_t first, size_t n, const pf_sink_record **recs,
                        pf_error *err);

/* Closes S and removes its file. NULL accepted. */
void pf_spool_close(pf_spool *s);

#endif
