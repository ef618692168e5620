/* pg_load.c: how the PostgreSQL sink loads batches. Per target table, a
 * batch is COPYed straight into the table inside a savepoint (text COPY,
 * escaped); when that COPY meets a key already stored or repeated (unique
 * violation) or cannot be used (column.* columns, a record without key,
 * rows already staged in this transaction, row-level security, too many
 * savepoints), the batch goes to the table's TEMP staging table instead,
 * which commit moves with INSERT ... SELECT DISTINCT ON (key) ... ON
 * CONFLICT. Contracts in pg_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* Direct loads per transaction, each a subtransaction that stays in the
 * server's per-backend cache (64 entries) until commit: past this many, the
 * transaction's remaining rows are staged, so the cache never overflows. */
#define PG_DIRECT_MAX 48

/* Builds the INSERT that moves table T's staged rows into it. Parameter $1 is
 * the flow name, $2... the column paths. */
static char *build_insert(pg_sink *s, const pg_table *t)
{
    sb b = {0};
    pgs_sb_puts(&b, "INSERT INTO ");
    pgs_sb_puts(&b, t->qname);
    pgs_sb_puts(&b, " AS t (\"key\", \"record\", \"flow\"");
    for (size_t i = 0; i < s->ncols; i++) {
        pgs_sb_puts(&b, ", ");
        pgs_put_ident(&b, s->conn, s->cols[i].name);
    }
    pgs_sb_puts(&b, ") SELECT DISTINCT ON (s.k) s.k, s.record, $1::text");
    for (size_t i = 0; i < s->ncols; i++) {
        const char *type = s->cols[i].type;
        pgs_sb_printf(&b, ", ");
        if (strcmp(type, "jsonb") == 0) {
            pgs_sb_printf(&b, "pg_catalog.jsonb_path_query_first(s.record, $%zu::jsonpath)", i + 2);
        } else {
            pgs_sb_printf(&b,
                          "(pg_catalog.jsonb_path_query_first(s.record, $%zu::jsonpath) #>> '{}')",
                          i + 2);
            if (strcmp(type, "text") != 0) pgs_sb_printf(&b, "::%s", type);
        }
    }
    pgs_sb_puts(&b, " FROM (SELECT COALESCE(g.key, pg_catalog.encode(pg_catalog.sha256("
                    "pg_catalog.convert_to(g.record::text, 'UTF8')), 'hex')) AS k, g.record, g.ord "
                    "FROM ");
    pgs_sb_puts(&b, t->stage);
    pgs_sb_puts(&b, " g) s ORDER BY s.k, s.ord");
    if (s->update) {
        /* The last version of a key in the batch wins; an unchanged record
         * leaves the stored row (and its ingested_at) alone. */
        pgs_sb_puts(&b,
                    " DESC ON CONFLICT (\"key\") DO UPDATE SET \"record\" = EXCLUDED.\"record\", "
                    "\"flow\" = EXCLUDED.\"flow\", \"ingested_at\" = EXCLUDED.\"ingested_at\"");
        for (size_t i = 0; i < s->ncols; i++) {
            pgs_sb_puts(&b, ", ");
            pgs_put_ident(&b, s->conn, s->cols[i].name);
            pgs_sb_puts(&b, " = EXCLUDED.");
            pgs_put_ident(&b, s->conn, s->cols[i].name);
        }
        pgs_sb_puts(&b, " WHERE t.\"record\" IS DISTINCT FROM EXCLUDED.\"record\"");
    } else {
        pgs_sb_puts(&b, " ON CONFLICT (\"key\") DO NOTHING");
    }
    return pgs_sb_steal(&b);
}

pf_sink_result pgs_make_staging(pg_sink *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->ntables; i++) {
        char name[48];
        snprintf(name, sizeof name, "ppflow_stage_%zu", i);
        sb b = {0};
        pgs_sb_puts(&b, "pg_temp.");
        pgs_put_ident(&b, s->conn, name);
        if (!(s->tables[i].stage = pgs_sb_steal(&b))) return pgs_oom(s, err, errlen);
        pgs_sb_puts(&b, "CREATE TEMP TABLE ");
        pgs_sb_puts(&b, s->tables[i].stage);
        pgs_sb_puts(&b, " (ord bigint NOT NULL, key text, record jsonb NOT NULL) "
                        "ON COMMIT DELETE ROWS");
        if (b.oom) {
            pgs_sb_free(&b);
            return pgs_oom(s, err, errlen);
        }
        pf_sink_result r = pgs_exec_ok(s, b.p, 0, NULL, "creating a staging table", err, errlen);
        pgs_sb_free(&b);
        if (r != PF_SINK_OK) return r;
        if (!(s->tables[i].insert = build_insert(s, &s->tables[i]))) return pgs_oom(s, err, errlen);
    }
    return PF_SINK_OK;
}

pf_sink_result pgs_begin(pg_sink *s, char *err, size_t errlen)
{
    if (s->in_tx) return PF_SINK_OK;
    pf_sink_result r = pgs_exec_ok(s, "BEGIN", 0, NULL, "starting a transaction", err, errlen);
    if (r == PF_SINK_OK) {
        s->in_tx = 1;
        s->ord = 0;
        s->direct_savepoints = 0;
    }
    return r;
}

/* Appends N bytes of S to B escaped for text COPY. */
static void copy_escape(sb *b, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (p[i]) {
        case '\\':
            rep = "\\\\";
            break;
        case '\t':
            rep = "\\t";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        default:
            continue;
        }
        pgs_sb_put(b, p + run, i - run);
        pgs_sb_put(b, rep, 2);
        run = i + 1;
    }
    pgs_sb_put(b, p + run, n - run);
}

static pf_sink_result copy_send(pg_sink *s, const char *what, char *err, size_t errlen)
{
    /* PQputCopyData takes an int length: pieces of at most 1 GiB. */
    for (size_t off = 0; off < s->copybuf.len;) {
        size_t n = s->copybuf.len - off < (1u << 30) ? s->copybuf.len - off : (1u << 30);
        if (PQputCopyData(s->conn, s->copybuf.p + off, (int)n) != 1) {
            pf_sink_result r = pgs_fail(s, NULL, what, err, errlen);
            pgs_sb_reset(&s->copybuf);
            return r;
        }
        off += n;
    }
    pgs_sb_reset(&s->copybuf);
    return PF_SINK_OK;
}

/* How copy_rows lays out a row. */
enum copy_kind {
    COPY_STAGE, /* ord, key (\N when NULL), record: into the staging table */
    COPY_DIRECT /* key, record, flow: into the target table itself */
};

/* COPYs the records of RECS that belong to table T (TABLE_OF maps each).
 * COPY_DIRECT: when the server refuses the rows with a unique violation
 * (SQLSTATE 23505) or refuses COPY into the table (0A000, row-level security)
 * returns PF_SINK_OK with *REFUSED set to that SQLSTATE's first character
 * ('2' or '0') and S left unpoisoned: the caller rolls back to its savepoint.
 * Any other failure poisons S as pgs_fail() does. */
static pf_sink_result copy_rows(pg_sink *s, size_t t, enum copy_kind kind,
                                const pf_sink_record *recs, const size_t *table_of, size_t n,
                                int *refused, char *err, size_t errlen)
{
    pg_table *tb = &s->tables[t];
    char what[200];
    snprintf(what, sizeof what, "loading records for %.63s.%.63s", s->schema, tb->name);
    *refused = 0;
    sb sql = {0};
    pgs_sb_puts(&sql, "COPY ");
    if (kind == COPY_STAGE) {
        pgs_sb_puts(&sql, tb->stage);
        pgs_sb_puts(&sql, " (ord, key, record) FROM STDIN");
    } else {
        pgs_sb_puts(&sql, tb->qname);
        pgs_sb_puts(&sql, " (\"key\", \"record\", \"flow\") FROM STDIN");
    }
    if (sql.oom) {
        pgs_sb_free(&sql);
        return pgs_oom(s, err, errlen);
    }
    PGresult *res = PQexec(s->conn, sql.p);
    pgs_sb_free(&sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (kind == COPY_DIRECT && st && strcmp(st, "0A000") == 0) {
            *refused = '0';
            PQclear(res);
            return PF_SINK_OK;
        }
        pf_sink_result r = pgs_fail(s, res, what, err, errlen);
        PQclear(res);
        return r;
    }
    PQclear(res);
    if (kind == COPY_STAGE) tb->dirty = 1;
    pgs_sb_reset(&s->copybuf);
    pf_sink_result r = PF_SINK_OK;
    for (size_t i = 0; i < n; i++) {
        if (table_of[i] != t) continue;
        if (kind == COPY_STAGE) {
            pgs_sb_printf(&s->copybuf, "%lld\t", (long long)++s->ord);
            if (recs[i].key)
                copy_escape(&s->copybuf, recs[i].key, recs[i].key_len);
            else
                pgs_sb_puts(&s->copybuf, "\\N");
            pgs_sb_put(&s->copybuf, "\t", 1);
            copy_escape(&s->copybuf, recs[i].json, recs[i].json_len);
        } else {
            copy_escape(&s->copybuf, recs[i].key, recs[i].key_len);
            pgs_sb_put(&s->copybuf, "\t", 1);
            copy_escape(&s->copybuf, recs[i].json, recs[i].json_len);
            pgs_sb_put(&s->copybuf, "\t", 1);
            copy_escape(&s->copybuf, s->flow, strlen(s->flow));
        }
        pgs_sb_put(&s->copybuf, "\n", 1);
        if (s->copybuf.oom) {
            PQputCopyEnd(s->conn, "out of memory");
            PQclear(PQgetResult(s->conn));
            return pgs_oom(s, err, errlen);
        }
        if (s->copybuf.len >= s->chunk && (r = copy_send(s, what, err, errlen)) != PF_SINK_OK)
            return r;
    }
    if ((r = copy_send(s, what, err, errlen)) != PF_SINK_OK) return r;
    if (PQputCopyEnd(s->conn, NULL) != 1) return pgs_fail(s, NULL, what, err, errlen);
    r = PF_SINK_OK;
    while ((res = PQgetResult(s->conn))) {
        if (r == PF_SINK_OK && !*refused && PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (kind == COPY_DIRECT && st &&
                (strcmp(st, "23505") == 0 || strcmp(st, "0A000") == 0) && s->conn &&
                PQstatus(s->conn) == CONNECTION_OK)
                *refused = st[0];
            else
                r = pgs_fail(s, res, what, err, errlen);
        }
        PQclear(res);
    }
    return r;
}

/* Whether table T's records in this write may be loaded into the table
 * itself: no column.* columns to compute, nothing staged yet in this
 * transaction (staged rows are inserted at commit, after every direct row,
 * so a later direct row could otherwise overtake a staged one with the same
 * key), and every record has a key (a missing key is computed by the
 * server). */
static int direct_ok(const pg_sink *s, size_t t, const pf_sink_record *recs, const size_t *table_of,
                     size_t n)
{
    const pg_table *tb = &s->tables[t];
    if (s->ncols || tb->dirty || tb->no_direct || s->direct_savepoints >= PG_DIRECT_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (table_of[i] == t && !recs[i].key) return 0;
    return 1;
}

/* Loads table T's records of this write: straight into the table inside a
 * savepoint when direct_ok() allows and no stored or batch key collides;
 * otherwise (or when the direct COPY is refused, which the savepoint undoes)
 * into the staging table, which commit inserts with ON CONFLICT. */
pf_sink_result pgs_load_table(pg_sink *s, size_t t, const pf_sink_record *recs,
                              const size_t *table_of, size_t n, char *err, size_t errlen)
{
    int refused = 0;
    if (direct_ok(s, t, recs, table_of, n)) {
        pf_sink_result r =
            pgs_exec_ok(s, "SAVEPOINT ppflow_direct", 0, NULL, "starting a savepoint", err, errlen);
        if (r != PF_SINK_OK) return r;
        r = copy_rows(s, t, COPY_DIRECT, recs, table_of, n, &refused, err, errlen);
        if (r != PF_SINK_OK) return r;
        if (!refused) {
            s->direct_savepoints++;
            r = pgs_exec_ok(s, "RELEASE SAVEPOINT ppflow_direct", 0, NULL, "ending a savepoint",
                            err, errlen);
            if (r == PF_SINK_OK)
                pgs_log(s, 3, "%s.%s: batch copied into the table", s->schema, s->tables[t].name);
            return r;
        }
        /* Nothing of the refused COPY remains; the savepoint is dropped too. */
        if ((r = pgs_exec_ok(s, "ROLLBACK TO SAVEPOINT ppflow_direct", 0, NULL,
                             "rolling back to a savepoint", err, errlen)) != PF_SINK_OK ||
            (r = pgs_exec_ok(s, "RELEASE SAVEPOINT ppflow_direct", 0, NULL, "ending a savepoint",
                             err, errlen)) != PF_SINK_OK)
            return r;
        if (refused == '0') {
            s->tables[t].no_direct = 1;
            pgs_log(s, 2,
                    "%s.%s does not accept COPY (row-level security?): its rows are staged and "
                    "inserted at commit",
                    s->schema, s->tables[t].name);
        } else {
            pgs_log(s, 3,
                    "%s.%s already holds a key of this batch (or the batch repeats one): "
                    "staging the batch for INSERT ... ON CONFLICT",
                    s->schema, s->tables[t].name);
        }
    }
    return copy_rows(s, t, COPY_STAGE, recs, table_of, n, &refused, err, errlen);
}

/* The commit's first step: per table with staged rows, the INSERT built by
 * build_insert. */
pf_sink_result pgs_insert_staged(pg_sink *s, char *err, size_t errlen)
{
    pf_sink_result r = PF_SINK_OK;
    for (size_t i = 0; i < s->ntables; i++) {
        pg_table *t = &s->tables[i];
        if (!t->dirty) continue;
        char what[200];
        snprintf(what, sizeof what, "inserting into %.63s.%.63s", s->schema, t->name);
        PGresult *res = pgs_run(s, t->insert, (int)s->ncols + 1, s->params, PGRES_COMMAND_OK, what,
                                &r, err, errlen);
        if (!res) return r;
        pgs_log(s, 3, "%s: %s new rows", what, PQcmdTuples(res));
        PQclear(res);
    }
    return PF_SINK_OK;
}

void pgs_load_committed(pg_sink *s)
{
    s->in_tx = 0;
    for (size_t i = 0; i < s->ntables; i++)
        s->tables[i].dirty = 0;
}
