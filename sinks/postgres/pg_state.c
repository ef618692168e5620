/* pg_state.c: the flow's row in the PostgreSQL sink's state table: the
 * checkpoint stored in the same transaction as the batch (with a seq that
 * grows by one per commit), read back for the host, and compared at open
 * with the host's resume token. Contracts in pg_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* Selects COLUMN (SQL text, a constant of this file) of the flow's row in the
 * state table; WHAT names the step in messages. NULL with *R set on failure
 * (out of memory: PF_SINK_RETRY, like the sink's other allocation failures). */
static PGresult *state_row(pg_sink *s, const char *column, const char *what, pf_sink_result *r,
                           char *err, size_t errlen)
{
    sb sql = {0};
    pgs_sb_puts(&sql, "SELECT ");
    pgs_sb_puts(&sql, column);
    pgs_sb_puts(&sql, " FROM ");
    pgs_sb_puts(&sql, s->qstate);
    pgs_sb_puts(&sql, " WHERE \"flow\" = $1::text");
    if (sql.oom) {
        pgs_sb_free(&sql);
        *r = pgs_oom(s, err, errlen);
        return NULL;
    }
    const char *q[] = {s->flow};
    PGresult *res = pgs_run(s, sql.p, 1, q, PGRES_TUPLES_OK, what, r, err, errlen);
    pgs_sb_free(&sql);
    return res;
}

/* Warns when the state table is behind the host's resume token (the row was
 * deleted or the database restored from an older backup). */
pf_sink_result pgs_check_resume(pg_sink *s, const char *resume, char *err, size_t errlen)
{
    const char *p = resume ? strstr(resume, "\"seq\":") : NULL;
    if (!p) return PF_SINK_OK;
    long long want = strtoll(p + 6, NULL, 10);
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = state_row(s, "\"seq\"", "reading the state table", &r, err, errlen);
    if (!res) return r;
    long long have = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (have < want)
        pgs_log(s, 1,
                "state table %s.%s is at commit %lld for flow %s but the checkpoint file "
                "remembers commit %lld: the row was removed or the database restored from an "
                "older backup; rows committed since may be missing",
                s->schema, s->state_name, have, s->flow, want);
    return PF_SINK_OK;
}

/* Part of commit: the state row moves with the batch, in its transaction. */
pf_sink_result pgs_store_checkpoint(pg_sink *s, const char *checkpoint, long long *seq, char *err,
                                    size_t errlen)
{
    sb sql = {0};
    pgs_sb_puts(&sql, "INSERT INTO ");
    pgs_sb_puts(&sql, s->qstate);
    pgs_sb_puts(&sql,
                " AS st (\"flow\", \"checkpoint\", \"seq\", \"updated_at\") VALUES ($1::text, "
                "$2::jsonb, 1, pg_catalog.now()) ON CONFLICT (\"flow\") DO UPDATE SET "
                "\"checkpoint\" = COALESCE(EXCLUDED.\"checkpoint\", st.\"checkpoint\"), "
                "\"seq\" = st.\"seq\" + 1, \"updated_at\" = EXCLUDED.\"updated_at\" "
                "RETURNING \"seq\"");
    if (sql.oom) {
        pgs_sb_free(&sql);
        return pgs_oom(s, err, errlen);
    }
    const char *q[] = {s->flow, checkpoint};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        pgs_run(s, sql.p, 2, q, PGRES_TUPLES_OK, "storing the checkpoint", &r, err, errlen);
    pgs_sb_free(&sql);
    if (!res) return r;
    *seq = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return PF_SINK_OK;
}

pf_sink_result pgs_read_checkpoint(pg_sink *s, char *err, size_t errlen)
{
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        state_row(s, "\"checkpoint\"::text", "reading the stored checkpoint", &r, err, errlen);
    if (!res) return r;
    free(s->checkpoint);
    s->checkpoint = NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        s->checkpoint = strdup(PQgetvalue(res, 0, 0));
        if (!s->checkpoint) {
            PQclear(res);
            return pgs_oom(s, err, errlen);
        }
    }
    PQclear(res);
    return PF_SINK_OK;
}
