/* pg_lock.c: the PostgreSQL sink's per-flow advisory lock: one run of a
 * flow at a time across every machine that shares the database. Taken
 * right after connecting (waiting up to lock_wait for a session that is
 * ending, then BUSY naming the holder) and released on the session itself
 * at close. Contracts in pg_internal.h. */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "pg_internal.h"

/* How long close waits for the server to roll back and release the
 * advisory lock before it just disconnects (the server then releases the
 * lock when the session ends). */
#define PG_CLOSE_WAIT_MS 5000

/* The flow's advisory lock: one run of a flow at a time, across every
 * machine that shares the database. The key is a bigint,
 *   hashtextextended('ppflow-flow-lock:' || SCHEMA || '.' || STATE_TABLE
 *                    || ':' || FLOW, 0)
 * with SCHEMA, STATE_TABLE and FLOW as configured (unquoted), so every
 * process that writes the same flow's row of the same state table computes
 * the same key. It is a session lock, taken right after connecting and
 * before anything else, held until the connection closes (close, or a lost
 * connection: the sink is then reopened, which takes it again before
 * anything is written). */
#define LOCK_KEY_SQL                                                                               \
    "pg_catalog.hashtextextended('ppflow-flow-lock:' || $1::text || '.' || $2::text || ':' || "    \
    "$3::text, 0)"

/* Tries the lock once: 1 taken, 0 held elsewhere, -1 failed (ERR, *R). */
static int try_lock(pg_sink *s, char key[32], pf_sink_result *r, char *err, size_t errlen)
{
    const char *p[] = {s->schema, s->state_name, s->flow};
    PGresult *res = pgs_run(
        s, "SELECT k, pg_catalog.pg_try_advisory_lock(k) FROM (SELECT " LOCK_KEY_SQL " AS k) AS x",
        3, p, PGRES_TUPLES_OK, "taking the flow's advisory lock", r, err, errlen);
    if (!res) return -1;
    snprintf(key, 32, "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?");
    int got = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    return got;
}

/* The server process holding advisory lock KEY in this database, when this
 * role may see it (best effort): its pid as text in OUT, else "". */
static void lock_holder(pg_sink *s, const char *key, char *out, size_t n)
{
    out[0] = '\0';
    const char *q[] = {key};
    PGresult *res =
        PQexecParams(s->conn,
                     "SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND "
                     "granted AND objsubid = 1 AND database = (SELECT oid FROM "
                     "pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) "
                     "AND classid::bigint = ($1::bigint >> 32) & 4294967295 "
                     "AND objid::bigint = $1::bigint & 4294967295 LIMIT 1",
                     1, NULL, q, NULL, NULL, 0);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(out, n, "%.20s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Takes the flow's advisory lock. When another session holds it, tries
 * again (20 ms, doubling to 500 ms) until lock_wait has passed: a run that
 * just ended, or a session that was cut off, may hold it a little longer
 * than its process, because the server ends a disconnected session
 * asynchronously. Then PF_SINK_BUSY, naming the holder. */
pf_sink_result pgs_take_lock(pg_sink *s, char *err, size_t errlen)
{
    char key[32] = "?";
    pf_sink_result r = PF_SINK_OK;
    int64_t deadline = pgs_now_ms() + s->lock_wait_ms, pause = 20;
    int got, waited = 0;
    while ((got = try_lock(s, key, &r, err, errlen)) == 0) {
        int64_t left = deadline - pgs_now_ms();
        if (left <= 0) break;
        if (!waited) {
            char pid[32];
            lock_holder(s, key, pid, sizeof pid);
            pgs_log(s, 2,
                    "flow %s: the advisory lock %s is held by another session%s%s%s; waiting up "
                    "to %lld ms (lock_wait) for it",
                    s->flow, key, *pid ? " (server process " : "", pid, *pid ? ")" : "",
                    (long long)s->lock_wait_ms);
            waited = 1;
        }
        pgs_sleep_ms(pause < left ? pause : left);
        pause = pause * 2 > 500 ? 500 : pause * 2;
    }
    if (got < 0) return r;
    const char *db = PQdb(s->conn), *host = PQhost(s->conn), *port = PQport(s->conn);
    if (got) {
        snprintf(s->lock_key, sizeof s->lock_key, "%s", key);
        pgs_log(s, 3, "holding the advisory lock %s for flow %s (database %s)", key, s->flow,
                db ? db : "?");
        return PF_SINK_OK;
    }
    char pid[32];
    lock_holder(s, key, pid, sizeof pid);
    snprintf(err, errlen,
             "flow %.100s is being run by another ppflow process (PostgreSQL advisory lock %s "
             "on database %.63s at %.100s:%.10s%s%s)",
             s->flow, key, db ? db : "?", host && *host ? host : "local socket", port ? port : "",
             *pid ? ", held by server process " : "", pid);
    return PF_SINK_BUSY;
}

/* Sends SQL (one parameter P, may be NULL) and waits for its end until
 * DEADLINE (pgs_now_ms). 1 when it succeeded, 0 otherwise (the caller
 * disconnects either way). */
static int exec_until(pg_sink *s, const char *sql, const char *p, int64_t deadline)
{
    const char *params[] = {p};
    if (!PQsendQueryParams(s->conn, sql, p ? 1 : 0, NULL, p ? params : NULL, NULL, NULL, 0))
        return 0;
    int ok = 1, any = 0;
    for (;;) {
        while (PQisBusy(s->conn)) {
            if (!pgs_wait_socket(s->conn, POLLIN, deadline) || !PQconsumeInput(s->conn)) return 0;
        }
        PGresult *res = PQgetResult(s->conn);
        if (!res) break;
        ExecStatusType st = PQresultStatus(res);
        ok = ok && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
        any = 1;
        PQclear(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) return 0;
    }
    return ok && any;
}

/* At close: rolls back an open transaction and releases the flow's
 * advisory lock on the session, waiting at most PG_CLOSE_WAIT_MS. Skipped
 * when the connection is gone or in the middle of a COPY (the server then
 * releases the lock when it ends the session). */
void pgs_release_lock(pg_sink *s)
{
    if (!s->conn || !s->lock_key[0] || PQstatus(s->conn) != CONNECTION_OK) return;
    PGTransactionStatusType ts = PQtransactionStatus(s->conn);
    if (ts == PQTRANS_ACTIVE || ts == PQTRANS_UNKNOWN) return;
    int64_t deadline = pgs_now_ms() + PG_CLOSE_WAIT_MS;
    if (ts != PQTRANS_IDLE && !exec_until(s, "ROLLBACK", NULL, deadline)) return;
    if (exec_until(s, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)", s->lock_key, deadline))
        pgs_log(s, 3, "released the advisory lock %s for flow %s", s->lock_key, s->flow);
    s->lock_key[0] = '\0';
}
