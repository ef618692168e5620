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
 * the chance is below 1 in 10^9 per run. */
#ifndef PF_ENGINE_KEYLEDGER_H
#define PF_ENGINE_KEYLEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

/* Most entries a ledger holds; adding beyond it fails with PF_ETOOBIG. */
#define PF_KEYLEDGER_MAX (4u << 20)

typedef struct pf_keyledger pf_keyledger;

/* A new empty ledger, or NULL when out of memory. */
pf_keyledger *pf_keyledger_new(void);

/* Frees L. NULL accepted. */
void pf_keyledger_free(pf_keyledger *l);

/* The hash of a record: STREAM and KEY (KEY_LEN bytes), or when KEY is NULL
 * the record's JSON text. */
uint64_t pf_keyledger_hash(const char *stream, const char *key, size_t key_len, const char *json,
                           size_t json_len);

/* 1 when H is in L. */
int pf_keyledger_contains(const pf_keyledger *l, uint64_t h);

/* Adds H, delivered in the window ending at END_MS (an existing entry keeps
 * the later end). PF_ENOMEM, or PF_ETOOBIG past PF_KEYLEDGER_MAX. */
pf_status pf_keyledger_add(pf_keyledger *l, uint64_t h, int64_t end_ms, pf_error *err);

/* Drops every entry whose window ended before BEFORE_MS. */
void pf_keyledger_prune(pf_keyledger *l, int64_t before_ms);

/* Number of entries. */
size_t pf_keyledger_count(const pf_keyledger *l);

/* Serialises L as a compact JSON object into *OUT (malloc'd; the caller
 * frees): {"v":1,"windows":[{"end":MS,"keys":"HEX16HEX16..."},...]}. */
pf_status pf_keyledger_to_json(const pf_keyledger *l, char **out, pf_error *err);

/* Parses TEXT (LEN bytes, as written by pf_keyledger_to_json) into a new
 * ledger *OUT. PF_ESTATE with a message for anything else. */
pf_status pf_keyledger_from_json(const char *text, size_t len, pf_keyledger **out, pf_error *err);

#endif
