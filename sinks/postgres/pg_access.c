/* pg_access.c: proving at open, before anything is created or fetched,
 * that the PostgreSQL sink's role can take records: the privileges it
 * needs on the database, the schema, the target tables and the state table
 * (has_*_privilege), each missing one FATAL with the GRANT to run. Contracts
 * in pg_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* The privileges of WANT (NULL-terminated) that this role lacks on table
 * OID, as "INSERT, UPDATE" in MISSING ("" when none). */
static pf_sink_result lacking(pg_sink *s, const char *oid, const char *const *want, char *missing,
                              size_t mlen, char *err, size_t errlen)
{
    missing[0] = '\0';
    for (size_t i = 0; want[i]; i++) {
        const char *p[] = {oid, want[i]};
        pf_sink_result r = PF_SINK_OK;
        PGresult *res = pgs_run(s, "SELECT pg_catalog.has_table_privilege($1::oid, $2::text)", 2, p,
                                PGRES_TUPLES_OK, "reading a table's privileges", &r, err, errlen);
        if (!res) return r;
        if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
            size_t l = strlen(missing);
            snprintf(missing + l, mlen - l, "%s%s", l ? ", " : "", want[i]);
        }
        PQclear(res);
    }
    return PF_SINK_OK;
}

/* One table of pgs_check_access: NAME in the schema (QNAME quoted), KIND
 * "table" or "state table", WANT the privileges the sink uses on it. */
static pf_sink_result check_table_access(pg_sink *s, const char *name, const char *qname,
                                         const char *kind, const char *const *want,
                                         int schema_create, char *err, size_t errlen)
{
    char oid[16];
    pf_sink_result r = pgs_table_oid(s, name, oid, err, errlen);
    if (r != PF_SINK_OK) return r;
    char label[2 * PG_IDENT_MAX + 8];
    snprintf(label, sizeof label, "%s.%s", s->schema, name);
    if (!oid[0]) {
        if (!s->create) {
            snprintf(err, errlen,
                     "%s %s does not exist (set create: true to create it, or create it as "
                     "docs/sinks/postgres.md shows)",
                     kind, label);
            return PF_SINK_FATAL;
        }
        if (!schema_create) {
            snprintf(err, errlen,
                     "%s %s does not exist and role %.63s may not create it (missing privilege "
                     "CREATE on schema %s)",
                     kind, label, s->role, s->schema);
            return PF_SINK_FATAL;
        }
        return PF_SINK_OK;
    }
    char missing[64];
    if ((r = lacking(s, oid, want, missing, sizeof missing, err, errlen)) != PF_SINK_OK) return r;
    if (!missing[0]) return PF_SINK_OK;
    char *qrole = pgs_ident(s->conn, s->role);
    if (!qrole) return pgs_oom(s, err, errlen);
    snprintf(err, errlen,
             "role %.63s lacks privilege %s on %s %s, which the sink needs (GRANT %s ON %s TO "
             "%s)",
             s->role, missing, kind, label, missing, qname, qrole);
    free(qrole);
    return PF_SINK_FATAL;
}

/* Before anything is fetched, proves that this role can take records:
 * TEMPORARY on the database (the staging tables); the schema exists and
 * allows USAGE, or may be created (CREATE on the database); each target
 * table exists and allows SELECT and INSERT (and UPDATE with on_conflict:
 * update), or may be created (CREATE on the schema); the state table
 * likewise with SELECT, INSERT and UPDATE. FATAL naming the object and the
 * missing privilege otherwise. */
pf_sink_result pgs_check_access(pg_sink *s, char *err, size_t errlen)
{
    const char *p[] = {s->schema};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        pgs_run(s,
                "SELECT n.oid IS NOT NULL, "
                "COALESCE(pg_catalog.has_schema_privilege(n.oid, 'USAGE'), false), "
                "COALESCE(pg_catalog.has_schema_privilege(n.oid, 'CREATE'), false), "
                "pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'), "
                "pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY'), "
                "pg_catalog.current_database() "
                "FROM (SELECT 1) AS x LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = $1",
                1, p, PGRES_TUPLES_OK, "reading the role's privileges", &r, err, errlen);
    if (!res) return r;
    if (PQntuples(res) != 1) {
        PQclear(res);
        snprintf(err, errlen, "reading the role's privileges: no answer");
        return PF_SINK_RETRY;
    }
    int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    int usage = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    int schema_create = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    int db_create = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    int temp = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    char db[PG_IDENT_MAX + 1];
    snprintf(db, sizeof db, "%s", PQgetvalue(res, 0, 5));
    PQclear(res);
    if (!temp) {
        snprintf(err, errlen,
                 "role %.63s may not create the temporary tables the sink stages rows in "
                 "(missing privilege TEMPORARY on database %s)",
                 s->role, db);
        return PF_SINK_FATAL;
    }
    if (!exists) {
        if (!s->create) {
            snprintf(err, errlen, "schema %s does not exist (set create: true to create it)",
                     s->schema);
            return PF_SINK_FATAL;
        }
        if (!db_create) {
            snprintf(err, errlen,
                     "schema %s does not exist and role %.63s may not create it (missing "
                     "privilege CREATE on database %s)",
                     s->schema, s->role, db);
            return PF_SINK_FATAL;
        }
        return PF_SINK_OK; /* created by this role, with everything in it */
    }
    if (!usage) {
        snprintf(err, errlen,
                 "role %.63s may not use schema %s (missing privilege USAGE on schema %s)", s->role,
                 s->schema, s->schema);
        return PF_SINK_FATAL;
    }
    static const char *const target_want[] = {"SELECT", "INSERT", NULL};
    static const char *const update_want[] = {"SELECT", "INSERT", "UPDATE", NULL};
    for (size_t i = 0; i < s->ntables; i++)
        if ((r = check_table_access(s, s->tables[i].name, s->tables[i].qname, "table",
                                    s->update ? update_want : target_want, schema_create, err,
                                    errlen)) != PF_SINK_OK)
            return r;
    return check_table_access(s, s->state_name, s->qstate, "state table", update_want,
                              schema_create, err, errlen);
}
