/* pg_identity.c: the record identity of the PostgreSQL sink's target
 * tables. How a stream's records are identified (the host's
 * stream_identity, e.g. "$.id | sha256") is recorded as the comment on the
 * table's "key" column; at open each table's recorded identity is checked
 * against its streams': recorded when the table is empty, adopted when the
 * table has none recorded and every row is keyed as the identity gives,
 * refused (FATAL, with the migration logged) when its rows are keyed
 * another way. Contracts in pg_internal.h. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* The comment on a target table's "key" column that records how its rows
 * are identified: this prefix, then the identity text. */
#define IDENTITY_TAG "ppflow record identity: "

/* Sets table T's identity: how the records of its streams are identified
 * (the host's stream_identity), the common text when its streams agree,
 * else "STREAM: IDENTITY; ..." in the flow's stream order. Left NULL when
 * the host does not tell (a host older than stream_identity). */
pf_sink_result pgs_table_identity(pg_sink *s, size_t t, char *err, size_t errlen)
{
    if (s->api->struct_size <= offsetof(pf_sink_host_api, stream_identity) ||
        !s->api->stream_identity)
        return PF_SINK_OK;
    const char *first = NULL;
    int same = 1;
    for (size_t i = 0; i < s->nstreams; i++) {
        if (s->stream_table[i] != t) continue;
        const char *id = s->api->stream_identity(s->host, s->streams[i]);
        if (!id) return PF_SINK_OK; /* the host does not know the stream */
        if (!first)
            first = id;
        else if (strcmp(first, id) != 0)
            same = 0;
    }
    if (!first) return PF_SINK_OK;
    sb b = {0};
    if (same) {
        pgs_sb_puts(&b, first);
    } else {
        for (size_t i = 0; i < s->nstreams; i++) {
            if (s->stream_table[i] != t) continue;
            if (b.len) pgs_sb_puts(&b, "; ");
            pgs_sb_puts(&b, s->streams[i]);
            pgs_sb_puts(&b, ": ");
            pgs_sb_puts(&b, s->api->stream_identity(s->host, s->streams[i]));
        }
    }
    if (!(s->tables[t].identity = pgs_sb_steal(&b))) return pgs_oom(s, err, errlen);
    return PF_SINK_OK;
}

/* Appends COMMENT ON COLUMN T."key" IS 'ppflow record identity: ...'. */
void pgs_put_identity_comment(sb *b, pg_sink *s, const pg_table *t)
{
    pgs_sb_puts(b, "COMMENT ON COLUMN ");
    pgs_sb_puts(b, t->qname);
    pgs_sb_puts(b, ".\"key\" IS ");
    sb text = {0};
    pgs_sb_puts(&text, IDENTITY_TAG);
    pgs_sb_puts(&text, t->identity);
    char *lit = text.oom ? NULL : PQescapeLiteral(s->conn, text.p, text.len);
    pgs_sb_free(&text);
    if (!lit) {
        b->oom = 1;
        return;
    }
    pgs_sb_puts(b, lit);
    PQfreemem(lit);
}

/* The table name a migration renames table T to. */
static char *old_name(pg_sink *s, const pg_table *t)
{
    sb b = {0};
    if (strlen(t->name) + 4 <= PG_IDENT_MAX) {
        pgs_sb_puts(&b, t->name);
        pgs_sb_puts(&b, "_old");
    } else {
        pgs_sb_puts(&b, "ppflow_old_table");
    }
    char *name = pgs_sb_steal(&b);
    char *q = name ? pgs_ident(s->conn, name) : NULL;
    free(name);
    return q;
}

/* The length of the plain member path ("$.NAME", NAME of ASCII letters,
 * digits and '_') that identity ID starts with, up to " | " or its end; 0
 * when ID does not start with one. */
static size_t leading_member(const char *id)
{
    const char *bar = strstr(id, " | ");
    size_t n = bar ? (size_t)(bar - id) : strlen(id);
    int plain = n > 2 && id[0] == '$' && id[1] == '.';
    for (size_t i = 2; i < n && plain; i++)
        plain = isalnum((unsigned char)id[i]) || id[i] == '_';
    return plain ? n : 0;
}

/* For a table of an earlier version (no identity recorded) that holds rows:
 * sets *ADOPT when T's identity is "$.NAME | sha256" and every row is
 * keyed as that identity gives: record->>'NAME' when the record has NAME
 * as a string or number, else a "sha256:" key. One query, which reads the
 * table once and stops at the first row keyed otherwise (a table keyed by
 * another member is rejected at its first row). *ADOPT is 0 for any other
 * identity. */
static pf_sink_result may_adopt(pg_sink *s, const pg_table *t, int *adopt, char *err, size_t errlen)
{
    *adopt = 0;
    size_t n = leading_member(t->identity);
    if (!n || strcmp(t->identity + n, " | sha256") != 0) return PF_SINK_OK;
    char *member = strndup(t->identity + 2, n - 2);
    if (!member) return pgs_oom(s, err, errlen);
    sb sql = {0};
    pgs_sb_puts(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    pgs_sb_puts(&sql, t->qname);
    pgs_sb_puts(&sql, " AS t WHERE NOT COALESCE(CASE WHEN pg_catalog.jsonb_typeof("
                      "t.\"record\"::jsonb -> $1::text) IN ('string', 'number') THEN "
                      "t.\"key\"::text = t.\"record\"::jsonb ->> $1::text ELSE "
                      "t.\"key\"::text LIKE 'sha256:%' END, false) LIMIT 1)");
    if (sql.oom) {
        pgs_sb_free(&sql);
        free(member);
        return pgs_oom(s, err, errlen);
    }
    const char *p[] = {member};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        pgs_run(s, sql.p, 1, p, PGRES_TUPLES_OK,
                "checking the keys of a table without a recorded record identity", &r, err, errlen);
    pgs_sb_free(&sql);
    free(member);
    if (!res) return r;
    *adopt = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "f") == 0;
    PQclear(res);
    return PF_SINK_OK;
}

/* Logs how to migrate table T (LABEL), whose rows were keyed by STORED
 * (NULL: none recorded), to its identity: rebuild it, or re-key it in place
 * when the identity starts with a plain member path ($.name). */
static void log_migration(pg_sink *s, const pg_table *t, const char *label, const char *oldq)
{
    sb b = {0};
    char *flowlit = PQescapeLiteral(s->conn, s->flow, strlen(s->flow));
    pgs_sb_printf(&b, "to rebuild table %.150s: ALTER TABLE ", label);
    pgs_sb_puts(&b, t->qname);
    pgs_sb_puts(&b, " RENAME TO ");
    pgs_sb_puts(&b, oldq);
    pgs_sb_puts(&b, "; then, to fetch again what the API still holds, delete the flow's checkpoint "
                    "(DELETE FROM ");
    pgs_sb_puts(&b, s->qstate);
    pgs_sb_puts(&b, " WHERE flow = ");
    pgs_sb_puts(&b, flowlit ? flowlit : "'?'");
    pgs_sb_puts(&b, "; and its state.path file) and run the flow again: the table is created anew");
    if (!b.oom) s->api->log(s->host, 1, b.p);
    pgs_sb_reset(&b);
    const char *id = t->identity;
    size_t n = leading_member(id);
    if (n) {
        char member[PG_IDENT_MAX + 1];
        snprintf(member, sizeof member, "%.*s", (int)(n - 2 > PG_IDENT_MAX ? PG_IDENT_MAX : n - 2),
                 id + 2);
        pgs_sb_puts(&b, "or to re-key it in place: BEGIN; UPDATE ");
        pgs_sb_puts(&b, t->qname);
        pgs_sb_printf(&b, " SET \"key\" = record->>'%s' WHERE record ? '%s'; ", member, member);
        pgs_put_identity_comment(&b, s, t);
        pgs_sb_puts(&b, "; COMMIT; (events dropped earlier stay missing until fetched again; rows "
                        "without that member keep their old key and would be stored again if "
                        "delivered again)");
        if (!b.oom) s->api->log(s->host, 1, b.p);
    }
    PQfreemem(flowlit);
    pgs_sb_free(&b);
}

/* Checks target table T (oid OID, LABEL for messages) against its
 * identity. The identity is recorded as the comment on its "key" column.
 * The same identity: fine. None recorded or a different one, and the table
 * holds no row: the new one is recorded (which needs the table's owner).
 * None recorded, and every row already keyed as the identity gives
 * (may_adopt): adopted, recorded the same way. Rows keyed by another (or
 * an unknown) definition: FATAL, saying how to migrate, because keys of
 * the two definitions do not meet (a record would be stored twice) and
 * records that shared an old key may be missing. */
pf_sink_result pgs_check_identity(pg_sink *s, pg_table *t, const char *oid, const char *label,
                                  char *err, size_t errlen)
{
    if (!t->identity) return PF_SINK_OK;
    const char *p[] = {oid};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        pgs_run(s,
                "SELECT pg_catalog.col_description(a.attrelid, a.attnum) FROM "
                "pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid AND "
                "a.attname = 'key' AND NOT a.attisdropped",
                1, p, PGRES_TUPLES_OK, "reading a table's record identity", &r, err, errlen);
    if (!res) return r;
    char *stored = NULL;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
        strncmp(PQgetvalue(res, 0, 0), IDENTITY_TAG, strlen(IDENTITY_TAG)) == 0) {
        stored = strdup(PQgetvalue(res, 0, 0) + strlen(IDENTITY_TAG));
        if (!stored) {
            PQclear(res);
            return pgs_oom(s, err, errlen);
        }
    }
    PQclear(res);
    if (stored && strcmp(stored, t->identity) == 0) {
        free(stored);
        pgs_log(s, 3, "table %s: records identified by '%s'", label, t->identity);
        return PF_SINK_OK;
    }
    sb sql = {0};
    pgs_sb_puts(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    pgs_sb_puts(&sql, t->qname);
    pgs_sb_puts(&sql, ")");
    if (sql.oom) {
        pgs_sb_free(&sql);
        free(stored);
        return pgs_oom(s, err, errlen);
    }
    res = pgs_run(s, sql.p, 0, NULL, PGRES_TUPLES_OK, "looking for rows", &r, err, errlen);
    pgs_sb_free(&sql);
    if (!res) {
        free(stored);
        return r;
    }
    int rows = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    char was[PG_MSG_MAX / 2];
    if (stored)
        snprintf(was, sizeof was, "'%.150s'", stored);
    else
        snprintf(was, sizeof was, "none recorded");
    int adopt = 0;
    if (rows && !stored && (r = may_adopt(s, t, &adopt, err, errlen)) != PF_SINK_OK) return r;
    free(stored);
    if (rows && !adopt) {
        char *oldq = old_name(s, t);
        if (!oldq) return pgs_oom(s, err, errlen);
        log_migration(s, t, label, oldq);
        snprintf(err, errlen,
                 "table %s holds rows keyed by an earlier record identity (%s), not by '%.100s': "
                 "events that shared a key then (TAP SIEM sends one event per recipient, all "
                 "with the message's GUID) may have been dropped. Migrate: ALTER TABLE %s RENAME "
                 "TO %s; then run again to create it anew (docs/sinks/postgres.md, Record "
                 "identity; also a re-key in place)",
                 label, was, t->identity, t->qname, oldq);
        free(oldq);
        return PF_SINK_FATAL;
    }
    pgs_put_identity_comment(&sql, s, t);
    if (sql.oom) {
        pgs_sb_free(&sql);
        return pgs_oom(s, err, errlen);
    }
    char what[300];
    snprintf(what, sizeof what,
             "recording the record identity of table %.150s (COMMENT ON COLUMN, by the table's "
             "owner)",
             label);
    r = pgs_exec_ok(s, sql.p, 0, NULL, what, err, errlen);
    pgs_sb_free(&sql);
    if (r == PF_SINK_OK && adopt)
        pgs_log(s, 2,
                "table %s: adopted: it had no record identity recorded, and every row is "
                "already keyed by '%s', which is now recorded",
                label, t->identity);
    else if (r == PF_SINK_OK)
        pgs_log(s, 2, "table %s: records identified by '%s' (recorded; before: %s)", label,
                t->identity, was);
    return r;
}
