/* quota.h: call budgets per credential, counted in a rolling 24-hour ledger.
 *
 * Several Proofpoint endpoints allow a fixed number of calls per credential
 * in any 24 hours (SIEM, URL decode, campaigns, people); the 24 hours roll:
 * a call becomes available again exactly 24 h after an earlier one. A
 * template declares its pool and budget; the engine records every call it
 * makes in a ledger file shared by all flows of one state directory (and so
 * by every ppflow process using it), and consults it before calling.
 *
 * The ledger is a small JSON file, `ppflow-quota.json` in the state
 * directory, read and rewritten atomically under an exclusive lock (its
 * `.lock` file). It holds, per pool and credential, the times of the calls
 * of the last 24 hours, never the credential itself: the credential is
 * identified by a hash of its principal. */
#ifndef PF_ENGINE_QUOTA_H
#define PF_ENGINE_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define PF_QUOTA_PERIOD_MS (24LL * 3600 * 1000)
#define PF_QUOTA_KEY_SIZE 112
/* Most calls a ledger keeps per key: more than any documented budget. */
#define PF_QUOTA_MAX_CALLS 100000

/* Writes the ledger key for POOL and the credential PRINCIPAL (may be NULL
 * or empty: no credential) into OUT (PF_QUOTA_KEY_SIZE bytes): the pool name
 * and a 64-bit hash of the principal, e.g. "siem:5f1c0a3e9b2d4c71". */
void pf_quota_key(const char *pool, const char *principal, char out[PF_QUOTA_KEY_SIZE]);

/* The ledger path for state file STATE_PATH: ppflow-quota.json in its
 * directory. Written into OUT (LEN bytes); -1 when it does not fit. */
int pf_quota_path(const char *state_path, char *out, size_t len);

/* Calls recorded for KEY in the 24 hours before NOW into *USED; when
 * *USED >= BUDGET, *NEXT_FREE_MS is when the oldest of them leaves the
 * window (else NOW). A missing ledger counts as empty and is not created.
 * PF_ESTATE for an unreadable ledger. */
pf_status pf_quota_usage(const char *ledger, const char *key, int64_t now, long budget, long *used,
                         int64_t *next_free_ms, pf_error *err);

/* Calls recorded for KEY in the 24 hours before NOW into *USED, and into
 * *FREE_AT_MS the first time (NOW or later) at which NEED more calls fit in
 * BUDGET as the ledger stands: NOW when USED + NEED <= BUDGET, else when
 * the (USED + NEED - BUDGET)-th oldest of those calls leaves the window.
 * NEED below 1 counts as 1; above BUDGET as BUDGET (a run larger than the
 * whole budget waits for a free budget and stops at it). BUDGET <= 0: no
 * limit. A missing ledger counts as empty and is not created. PF_ESTATE for
 * an unreadable ledger, PF_ENOMEM. */
pf_status pf_quota_when_free(const char *ledger, const char *key, int64_t now, long budget,
                             long need, long *used, int64_t *free_at_ms, pf_error *err);

/* Records N calls made at NOW for KEY, dropping entries older than 24 h.
 * Creates the ledger (0600) and its directory when missing. */
pf_status pf_quota_record(const char *ledger, const char *key, int64_t now, long n, pf_error *err);

#endif
