/* pg_schema.c: the PostgreSQL sink's objects: creating (create: true) or
 * checking the schema, each target table (columns, the unique key on
 * "key", missing column.* columns added) and the state table. A missing
 * object without create: true, a missing column or key, or an object that
 * is not a table is FATAL naming it. Contracts in pg_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* ---- schema objects ------------------------------------------------------------- */

/* The oid of table SCHEMA.NAME as text in OID (size 16), "" when missing. */
pf_sink_result pgs_table_oid(pg_sink *s, const char *name, char oid[16], char *err, size_t errlen)
{
    const char *p[] = {s->schema, name};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = pgs_run(s,
                            "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c "
                            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relname = $2",
                            2, p, PGRES_TUPLES_OK, "looking up a table", &r, err, errlen);
    if (!res) return r;
    oid[0] = '\0';
    if (PQntuples(res) > 0) {
        const char *kind = PQgetvalue(res, 0, 1);
        if (strcmp(kind, "r") != 0 && strcmp(kind, "p") != 0) {
            snprintf(err, errlen, "%s.%s exists but is not a table", s->schema, name);
            PQclear(res);
            return PF_SINK_FATAL;
        }
        snprintf(oid, 16, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return PF_SINK_OK;
}

/* Checks that table OID has the columns NAMES (N of them) and a unique index
 * on exactly column UNIQ. */
static pf_sink_result check_table(pg_sink *s, const char *oid, const char *label,
                                  const char *const *names, size_t n, const char *uniq, char *err,
                                  size_t errlen)
{
    const char *p[] = {oid};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = pgs_run(s,
                            "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid "
                            "AND attnum > 0 AND NOT attisdropped",
                            1, p, PGRES_TUPLES_OK, "reading a table's columns", &r, err, errlen);
    if (!res) return r;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < PQntuples(res) && !found; j++)
            found = strcmp(PQgetvalue(res, j, 0), names[i]) == 0;
        if (!found) {
            snprintf(err, errlen, "table %s has no column %s%s", label, names[i],
                     s->create ? "" : " (create: true adds missing column.* columns)");
            PQclear(res);
            return PF_SINK_FATAL;
        }
    }
    PQclear(res);
    const char *q[] = {oid, uniq};
    res = pgs_run(s,
                  "SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
                  "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                  "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indnkeyatts = 1 "
                  "AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2",
                  2, q, PGRES_TUPLES_OK, "reading a table's indexes", &r, err, errlen);
    if (!res) return r;
    int has = PQntuples(res) > 0;
    PQclear(res);
    if (!has) {
        snprintf(err, errlen,
                 "table %s has no primary key or unique index on column %s alone, which "
                 "ON CONFLICT (%s) needs",
                 label, uniq, uniq);
        return PF_SINK_FATAL;
    }
    return PF_SINK_OK;
}

/* The outcome of a failed CREATE: a concurrent creator (duplicate object) is
 * transient; anything else as classified. */
static pf_sink_result ddl_fail(pg_sink *s, const char *sql, const char *what, char *err,
                               size_t errlen)
{
    PGresult *r = PQexec(s->conn, sql);
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        return PF_SINK_OK;
    }
    pf_sink_result out = pgs_fail(s, r, what, err, errlen);
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (st && (strcmp(st, "23505") == 0 || strcmp(st, "42P07") == 0 || strcmp(st, "42P06") == 0 ||
               strcmp(st, "42701") == 0))
        out = s->failed = PF_SINK_RETRY;
    PQclear(r);
    return out;
}

/* Creates (create: true) or checks one target table. */
pf_sink_result pgs_prepare_table(pg_sink *s, pg_table *t, char *err, size_t errlen)
{
    char oid[16];
    pf_sink_result r = pgs_table_oid(s, t->name, oid, err, errlen);
    if (r != PF_SINK_OK) return r;
    char label[2 * PG_IDENT_MAX + 8];
    snprintf(label, sizeof label, "%s.%s", s->schema, t->name);
    sb sql = {0};
    if (!oid[0]) {
        if (!s->create) {
            snprintf(err, errlen,
                     "table %s does not exist (set create: true to create it, or create it "
                     "as docs/sinks/postgres.md shows)",
                     label);
            return PF_SINK_FATAL;
        }
        pgs_sb_puts(&sql, "CREATE TABLE ");
        pgs_sb_puts(&sql, t->qname);
        pgs_sb_puts(&sql, " (\"key\" text PRIMARY KEY, \"record\" jsonb NOT NULL, \"ingested_at\" "
                          "timestamptz NOT NULL DEFAULT pg_catalog.now(), \"flow\" text NOT NULL");
        for (size_t i = 0; i < s->ncols; i++) {
            pgs_sb_puts(&sql, ", ");
            pgs_put_ident(&sql, s->conn, s->cols[i].name);
            pgs_sb_puts(&sql, " ");
            pgs_sb_puts(&sql, s->cols[i].type);
        }
        pgs_sb_puts(&sql, ")");
        if (t->identity) {
            pgs_sb_puts(&sql, "; ");
            pgs_put_identity_comment(&sql, s, t);
        }
        if (sql.oom) {
            pgs_sb_free(&sql);
            return pgs_oom(s, err, errlen);
        }
        char what[200];
        snprintf(what, sizeof what, "creating table %.150s", label);
        r = ddl_fail(s, sql.p, what, err, errlen);
        pgs_sb_free(&sql);
        if (r != PF_SINK_OK) return r;
        pgs_log(s, 2, "created table %s", label);
        if ((r = pgs_table_oid(s, t->name, oid, err, errlen)) != PF_SINK_OK) return r;
        if (!oid[0]) {
            snprintf(err, errlen, "table %s vanished right after it was created", label);
            return PF_SINK_RETRY;
        }
    } else if (s->create && s->ncols) {
        /* Adds the column.* columns the table lacks. */
        const char *p[] = {oid};
        PGresult *res =
            pgs_run(s,
                    "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = "
                    "$1::oid AND attnum > 0 AND NOT attisdropped",
                    1, p, PGRES_TUPLES_OK, "reading a table's columns", &r, err, errlen);
        if (!res) return r;
        for (size_t i = 0; i < s->ncols && r == PF_SINK_OK; i++) {
            int found = 0;
            for (int j = 0; j < PQntuples(res) && !found; j++)
                found = strcmp(PQgetvalue(res, j, 0), s->cols[i].name) == 0;
            if (found) continue;
            pgs_sb_reset(&sql);
            pgs_sb_puts(&sql, "ALTER TABLE ");
            pgs_sb_puts(&sql, t->qname);
            pgs_sb_puts(&sql, " ADD COLUMN ");
            pgs_put_ident(&sql, s->conn, s->cols[i].name);
            pgs_sb_puts(&sql, " ");
            pgs_sb_puts(&sql, s->cols[i].type);
            if (sql.oom) {
                r = pgs_oom(s, err, errlen);
                break;
            }
            char what[300];
            snprintf(what, sizeof what, "adding column %.63s to %.150s", s->cols[i].name, label);
            r = ddl_fail(s, sql.p, what, err, errlen);
            if (r == PF_SINK_OK) pgs_log(s, 2, "added column %s to %s", s->cols[i].name, label);
        }
        PQclear(res);
        pgs_sb_free(&sql);
        if (r != PF_SINK_OK) return r;
    }
    pgs_sb_free(&sql);
    const char **need = malloc((4 + s->ncols) * sizeof *need);
    if (!need) return pgs_oom(s, err, errlen);
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        need[n++] = pgs_core_columns[i];
    for (size_t i = 0; i < s->ncols; i++)
        need[n++] = s->cols[i].name;
    r = check_table(s, oid, label, need, n, "key", err, errlen);
    free(need);
    if (r != PF_SINK_OK) return r;
    return pgs_check_identity(s, t, oid, label, err, errlen);
}

pf_sink_result pgs_prepare_state_table(pg_sink *s, char *err, size_t errlen)
{
    char oid[16];
    pf_sink_result r = pgs_table_oid(s, s->state_name, oid, err, errlen);
    if (r != PF_SINK_OK) return r;
    char label[2 * PG_IDENT_MAX + 8];
    snprintf(label, sizeof label, "%s.%s", s->schema, s->state_name);
    if (!oid[0]) {
        if (!s->create) {
            snprintf(err, errlen,
                     "state table %s does not exist (set create: true to create it, or create "
                     "it as docs/sinks/postgres.md shows)",
                     label);
            return PF_SINK_FATAL;
        }
        sb sql = {0};
        pgs_sb_puts(&sql, "CREATE TABLE ");
        pgs_sb_puts(&sql, s->qstate);
        pgs_sb_puts(&sql,
                    " (\"flow\" text PRIMARY KEY, \"checkpoint\" jsonb, \"seq\" bigint NOT NULL, "
                    "\"updated_at\" timestamptz NOT NULL DEFAULT pg_catalog.now())");
        if (sql.oom) {
            pgs_sb_free(&sql);
            return pgs_oom(s, err, errlen);
        }
        char what[200];
        snprintf(what, sizeof what, "creating state table %.150s", label);
        r = ddl_fail(s, sql.p, what, err, errlen);
        pgs_sb_free(&sql);
        if (r != PF_SINK_OK) return r;
        pgs_log(s, 2, "created state table %s", label);
        if ((r = pgs_table_oid(s, s->state_name, oid, err, errlen)) != PF_SINK_OK) return r;
        if (!oid[0]) {
            snprintf(err, errlen, "state table %s vanished right after it was created", label);
            return PF_SINK_RETRY;
        }
    }
    const char *need[] = {"flow", "checkpoint", "seq", "updated_at"};
    return check_table(s, oid, label, need, 4, "flow", err, errlen);
}

pf_sink_result pgs_prepare_schema(pg_sink *s, char *err, size_t errlen)
{
    const char *p[] = {s->schema};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = pgs_run(s, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1, p,
                            PGRES_TUPLES_OK, "looking up the schema", &r, err, errlen);
    if (!res) return r;
    int exists = PQntuples(res) > 0;
    PQclear(res);
    if (exists) return PF_SINK_OK;
    if (!s->create) {
        snprintf(err, errlen, "schema %s does not exist (set create: true to create it)",
                 s->schema);
        return PF_SINK_FATAL;
    }
    sb sql = {0};
    pgs_sb_puts(&sql, "CREATE SCHEMA ");
    pgs_sb_puts(&sql, s->qschema);
    if (sql.oom) {
        pgs_sb_free(&sql);
        return pgs_oom(s, err, errlen);
    }
    r = ddl_fail(s, sql.p, "creating the schema", err, errlen);
    pgs_sb_free(&sql);
    if (r == PF_SINK_OK) pgs_log(s, 2, "created schema %s", s->schema);
    return r;
}
