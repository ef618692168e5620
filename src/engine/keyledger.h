/* keyledger.h: the records a flow delivered recently, for the late-arrival
 * re-sweep.
 *
 * The TAP SIEM API indexes some events minutes after their time, so every
 * run fetches a trailing look-back again (default 30 minutes) and must drop
 * what it already delivered. The ledger remembers each delivered record as a
 * 64-bit hash of its stream and key (or, for a record without a key, of its
 * JSON text), tagged with the end of the window it was fetched in. It is
 * pruned to the look-back, so it stays small, and saved in the checkpoint
 * with the cursor, so it is exactly as durable as the records.
 *
 * Two different records colliding on 64 bits would make the second look
 * already delivered; with the ledger's size (the records of one look-back)
 * the chance is below 1 in 10^9 per run.
 *
 * Size: the ledger's JSON (pf_keyledger_to_json) never passes its limit,
 * PF_KEYLEDGER_MAX_JSON (half of what a checkpoint may hold, so the
 * checkpoint that carries it can always be written and read back): 16
 * bytes per record plus a few dozen per window, about 2 million records.
 * When a flow delivers more within one look-back, the ledger is full and a
 * new record makes room by forgetting whole windows, oldest first (an
 * eighth of the limit at least, so this happens rarely); the latest window
 * end it forgot is its horizon (pf_keyledger_horizon, saved in the JSON).
 * The records of the windows that end at or before the horizon are no
 * longer all known, so a re-sweep must not start before the horizon (it
 * would deliver some of them again): the look-back is in effect shortened
 * while the flow is that busy. A record of a window no newer than every
 * window left (the window being added is itself over the limit) is not
 * remembered, and its window end becomes the horizon. Pruning past the
 * horizon clears it. Nothing ever fails because the ledger is full. */
#ifndef PF_ENGINE_KEYLEDGER_H
#define PF_ENGINE_KEYLEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "state/state.h"
#include "util/status.h"

/* The most bytes a ledger's JSON takes (see above). */
#define PF_KEYLEDGER_MAX_JSON (PF_STATE_MAX_BYTES / 2)

/* The smallest limit pf_keyledger_new_limited accepts (smaller ones are
 * raised to it). */
#define PF_KEYLEDGER_MIN_JSON ((size_t)256)

typedef struct pf_keyledger pf_keyledger;

/* A new empty ledger limited to PF_KEYLEDGER_MAX_JSON, or NULL when out of
 * memory. */
pf_keyledger *pf_keyledger_new(void);

/* As pf_keyledger_new with a limit of MAX_JSON bytes of JSON (at least
 * PF_KEYLEDGER_MIN_JSON). */
pf_keyledger *pf_keyledger_new_limited(size_t max_json);

/* Frees L. NULL accepted. */
void pf_keyledger_free(pf_keyledger *l);

/* The hash of a record: STREAM and KEY (KEY_LEN bytes), or when KEY is NULL
 * the record's JSON text. */
uint64_t pf_keyledger_hash(const char *stream, const char *key, size_t key_len, const char *json,
                           size_t json_len);

/* 1 when H is in L. */
int pf_keyledger_contains(const pf_keyledger *l, uint64_t h);

/* Adds H, delivered in the window ending at END_MS (an existing entry keeps
 * the later end, unless moving it would pass the limit). A full ledger
 * makes room as described above (so H may not be remembered, the horizon
 * telling so). Fails only with PF_ENOMEM, leaving L unchanged. */
pf_status pf_keyledger_add(pf_keyledger *l, uint64_t h, int64_t end_ms, pf_error *err);

/* Drops every entry whose window ended before BEFORE_MS, and the horizon
 * when it is before BEFORE_MS. Out of memory, L stays as it was (stale
 * entries are harmless). */
void pf_keyledger_prune(pf_keyledger *l, int64_t before_ms);

/* Number of entries. */
size_t pf_keyledger_count(const pf_keyledger *l);

/* 1 and *END_MS (not NULL) when L forgot windows to stay within its limit:
 * the latest end of a window whose records may be missing (a re-sweep
 * should start no earlier); 0 when L holds every record given to it. */
int pf_keyledger_horizon(const pf_keyledger *l, int64_t *end_ms);

/* The exact length of the text pf_keyledger_to_json writes for L (at most
 * its limit). */
size_t pf_keyledger_json_size(const pf_keyledger *l);

/* Serialises L as a compact JSON object into *OUT (malloc'd; the caller
 * frees): {"v":1,"windows":[{"end":MS,"keys":"HEX16HEX16..."},...]}, with
 * "horizon":MS after "v" when L has one. PF_ENOMEM on failure. */
pf_status pf_keyledger_to_json(const pf_keyledger *l, char **out, pf_error *err);

/* Parses TEXT (LEN bytes, as written by pf_keyledger_to_json) into a new
 * ledger *OUT limited to PF_KEYLEDGER_MAX_JSON (a larger one, written with a
 * larger limit, keeps its newest windows and gets a horizon). PF_ESTATE
 * "the checkpoint's record ledger is damaged" for anything else ("v" not
 * the integer 1, an "end" or "horizon" that is not an integer from 0 to
 * PF_STATE_MAX_COUNT, keys that are not 16 lowercase hex digits each),
 * PF_ENOMEM. */
pf_status pf_keyledger_from_json(const char *text, size_t len, pf_keyledger **out, pf_error *err);

/* As pf_keyledger_from_json with a limit of MAX_JSON bytes. */
pf_status pf_keyledger_from_json_limited(const char *text, size_t len, size_t max_json,
                                         pf_keyledger **out, pf_error *err);

#endif
