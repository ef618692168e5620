/* pg_internal.h: the PostgreSQL sink's shared state and the functions its
 * files give each other. Internal to the plugin ppflow_sink_postgres.so:
 * every symbol here is hidden (the plugin exports only its descriptor).
 *
 * The files, one concern each:
 *   postgres.c     the descriptor and option table; open, write, commit,
 *                  stored_checkpoint and close, in the order of the
 *                  delivery contract
 *   pg_text.c      growable strings, names, identifier quoting
 *   pg_conn.c      connecting; running statements; server messages cleaned
 *                  of secrets; failures classified by SQLSTATE into
 *                  RETRY / ERROR / FATAL
 *   pg_lock.c      the flow's advisory lock (one run of a flow at a time)
 *   pg_access.c    proving at open that the role can take records
 *   pg_schema.c    creating or checking the schema, the target tables and
 *                  the state table
 *   pg_columns.c   the column.* options
 *   pg_identity.c  record identity: recorded on each target table, checked,
 *                  adopted, or refused with the migration
 *   pg_load.c      loading batches: staging tables, direct COPY inside a
 *                  savepoint, the INSERT ... ON CONFLICT at commit
 *   pg_state.c     the flow's row in the state table (the stored
 *                  checkpoint)
 *
 * Conventions for every function below unless it says otherwise:
 *   - S is an open sink (never NULL) whose connection is up; strings are
 *     NUL-terminated and owned by the caller.
 *   - A pf_sink_result function returns PF_SINK_OK, or another outcome with
 *     a message (one line, no secret) in ERR (ERRLEN bytes). A failed
 *     statement also poisons S (pgs_fail): s->failed and s->failmsg make
 *     every later callback repeat the outcome until the host reopens the
 *     sink. Out of memory is PF_SINK_RETRY (pgs_oom).
 *   - Identifiers reach SQL only quoted (pgs_put_ident); values only as
 *     statement parameters, COPY data or PQescapeLiteral text. */
#ifndef PF_PG_INTERNAL_H
#define PF_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "ppflow_sink.h"

#define PG_IDENT_MAX 63 /* NAMEDATALEN - 1: longer names would be truncated */
#define PG_MSG_MAX 400

/* ---- state ------------------------------------------------------------------ */

/* A growable string. Zero-initialised it is empty; an append that runs
 * out of memory sets OOM and makes every later append a no-op, so a
 * caller checks OOM once after building. P is NUL-terminated when not
 * NULL. */
typedef struct sb {
    char *p;
    size_t len, cap;
    int oom;
} sb;

/* One column.* option. */
typedef struct pg_column {
    char *name;       /* unquoted */
    const char *type; /* static text: one of the accepted SQL types */
    char *path;       /* SQL/JSON path text, sent as a parameter */
} pg_column;

/* One target table (streams whose names give the same table share it). */
typedef struct pg_table {
    char *name;     /* unquoted table name (for messages) */
    char *qname;    /* "schema"."table" */
    char *stage;    /* pg_temp."ppflow_stage_N" */
    char *insert;   /* INSERT ... SELECT FROM stage ... ON CONFLICT */
    char *identity; /* how its records are identified (stream_identity), NULL:
                       the host does not say */
    int dirty;      /* rows staged in the open transaction: the rest of the
                       transaction's rows for this table are staged too */
    int no_direct;  /* the server refused COPY into the table itself (row-level
                       security): always staged */
} pg_table;

/* The sink's state, from open to close. Every pointer is owned by it and
 * freed by close. */
typedef struct pg_sink {
    const pf_sink_host *host;
    const pf_sink_host_api *api;
    PGconn *conn;
    char *conninfo; /* secret: only for withholding messages */
    char *password; /* secret: from conninfo, NULL when it has none */
    char *flow;
    int create, update;
    size_t chunk;
    int64_t statement_timeout_ms, connect_timeout_ms, lock_wait_ms;
    char lock_key[32]; /* the advisory lock's key (decimal), "" until held */
    char *role;        /* current_user, for messages */
    char *schema;
    char *qschema;
    char *state_name, *qstate;
    pg_column *cols;
    size_t ncols;
    char col_error[PG_MSG_MAX]; /* first problem found in the column.* options */
    pg_table *tables;
    size_t ntables;
    char **streams;
    size_t *stream_table; /* index into tables per stream */
    size_t nstreams;
    const char **params; /* flow name + the column paths, for the INSERTs */
    int in_tx;
    int64_t ord;           /* order of records within a transaction */
    int direct_savepoints; /* direct loads released in the open transaction */
    pf_sink_result failed; /* PF_SINK_OK, or the outcome every call repeats */
    char failmsg[2 * PG_MSG_MAX];
    char *checkpoint;
    char token[64];
    sb copybuf;
} pg_sink;

/* ---- pg_text.c: strings and names ------------------------------------------ */

/* Append the N bytes at S / the string S (not NULL). */
void pgs_sb_put(sb *b, const char *s, size_t n);
void pgs_sb_puts(sb *b, const char *s);
/* Appends a formatted fragment; fragments of 512 bytes or more set OOM
 * (only short fragments are formatted). */
void pgs_sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties B, keeping its memory. */
void pgs_sb_reset(sb *b);
/* Frees B's memory and leaves it empty; B may be empty. */
void pgs_sb_free(sb *b);
/* B's text, owned by the caller (free); "" when B is empty; NULL when an
 * append ran out of memory (or when "" cannot be allocated). B is left
 * empty either way. */
char *pgs_sb_steal(sb *b);

/* 1 when NAME is a usable PostgreSQL identifier as given: not empty, at
 * most PG_IDENT_MAX bytes, valid UTF-8. Otherwise 0 with a message naming
 * WHAT in ERR. */
int pgs_name_ok(const char *what, const char *name, char *err, size_t errlen);
/* Appends NAME quoted as an identifier for connection C (sets B->oom when
 * libpq runs out of memory). */
void pgs_put_ident(sb *b, PGconn *c, const char *name);
/* NAME quoted / "SCHEMA"."NAME" quoted, owned by the caller; NULL when out
 * of memory. */
char *pgs_ident(PGconn *c, const char *name);
char *pgs_qualified(PGconn *c, const char *schema, const char *name);
/* TMPL with every "{stream}" replaced by STREAM, owned by the caller; NULL
 * when out of memory. */
char *pgs_expand_table(const char *tmpl, const char *stream);

/* ---- pg_conn.c: connecting, statements, messages and outcomes ---------------- */

/* Logs through the host at LEVEL (0 error ... 3 debug), truncated to about
 * PG_MSG_MAX + 200 bytes. The host redacts secrets; callers never pass
 * the conninfo. */
void pgs_log(pg_sink *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets ERR to "WHAT: REASON (SQLSTATE X)" for a failed statement R (NULL:
 * the connection's own message; a lost connection says so), poisons S and
 * returns the outcome of the SQLSTATE: RETRY for transient classes
 * (connection, serialization, resources, system, shutdowns and timeouts,
 * lock not available, read-only transaction) and for a lost connection or
 * a client-side failure; FATAL for authorization, an unknown database or
 * schema, syntax and access (42: a dropped table or column, a revoked
 * privilege); ERROR for everything else (data 22, integrity 23). REASON is
 * the server's primary message only (never DETAIL or CONTEXT, which quote
 * record data), withheld when it contains the conninfo or its password. */
pf_sink_result pgs_fail(pg_sink *s, const PGresult *r, const char *what, char *err, size_t errlen);
/* Repeats the outcome of the failure that poisoned S (s->failed must not be
 * PF_SINK_OK), saying the sink must be reopened. */
pf_sink_result pgs_poisoned(const pg_sink *s, char *err, size_t errlen);
/* "out of memory" in ERR; poisons S with PF_SINK_RETRY when S is not NULL.
 * Returns PF_SINK_RETRY. */
pf_sink_result pgs_oom(pg_sink *s, char *err, size_t errlen);
/* Runs SQL with NPARAMS text parameters (none: PQexec, which also takes
 * several statements) and expects status WANT. Returns the result (the
 * caller clears it); on failure NULL, with ERR and *OUT set by pgs_fail
 * (WHAT names the step). */
PGresult *pgs_run(pg_sink *s, const char *sql, int nparams, const char *const *params,
                  ExecStatusType want, const char *what, pf_sink_result *out, char *err,
                  size_t errlen);
/* pgs_run for statements that return no rows (PGRES_COMMAND_OK). */
pf_sink_result pgs_exec_ok(pg_sink *s, const char *sql, int nparams, const char *const *params,
                           const char *what, char *err, size_t errlen);

/* Checks that s->conninfo parses (a plain word is a database name) and
 * copies its password, if any, into s->password, so that messages echoing
 * it are withheld. ERROR when it does not parse (without libpq's details,
 * which could quote the password); RETRY when out of memory. S has no
 * connection yet. */
pf_sink_result pgs_parse_conninfo(pg_sink *s, char *err, size_t errlen);
/* Connects with s->conninfo (one attempt: libpq tries each host once, each
 * within connect_timeout) and sets the statement and lock timeouts and
 * s->role. RETRY when the server cannot be reached, refuses the
 * connection, does not answer in time, or is starting up, out of
 * connections or shutting down; FATAL when it answers that the login or
 * the database is wrong (SQLSTATE classes 28, 3D) or asks for a password
 * the conninfo does not give. The message names the database, server and
 * user, never the password. S has no connection yet; s->conn is set on
 * failure too, unless memory ran out (close frees it). */
pf_sink_result pgs_connect(pg_sink *s, char *err, size_t errlen);

/* Milliseconds of a monotonic clock. */
int64_t pgs_now_ms(void);
/* Sleeps MS milliseconds (none when MS <= 0), resuming after signals. */
void pgs_sleep_ms(int64_t ms);
/* Waits until connection C's socket is ready for EVENTS (poll flags) or
 * DEADLINE (pgs_now_ms; 0: none) passes. 1 ready (or an error the next
 * libpq call will report), 0 timed out. */
int pgs_wait_socket(PGconn *c, short events, int64_t deadline);

/* ---- pg_lock.c: the flow's advisory lock -------------------------------------- */

/* Takes the flow's session-level advisory lock (key in pg_lock.c), trying
 * again until s->lock_wait_ms has passed while another session holds it.
 * OK: held, its key in s->lock_key. BUSY: still held elsewhere, ERR names
 * the database, server and holder. Other outcomes as pgs_fail. */
pf_sink_result pgs_take_lock(pg_sink *s, char *err, size_t errlen);
/* At close: rolls back an open transaction and releases the lock on the
 * session, waiting at most a few seconds for the server. Does nothing when
 * the lock is not held, the connection is gone or in the middle of a COPY
 * (the server releases the lock when the session ends). Never fails; S
 * may have no connection. */
void pgs_release_lock(pg_sink *s);

/* ---- pg_access.c: proving the role can take records ---------------------------- */

/* Checks, before anything is created: TEMPORARY on the database; the schema
 * exists with USAGE, or may be created (create: true and CREATE on the
 * database); each target table exists with SELECT and INSERT (and UPDATE
 * with on_conflict: update), or may be created (create: true and CREATE on
 * the schema); the state table likewise with SELECT, INSERT and UPDATE.
 * FATAL naming the object and what is missing (with the GRANT to run).
 * Needs s->role, the tables' names. */
pf_sink_result pgs_check_access(pg_sink *s, char *err, size_t errlen);

/* ---- pg_schema.c: creating or checking objects --------------------------------- */

/* The oid of table s->schema.NAME as text in OID ("" when there is none).
 * FATAL when NAME exists but is not a table. */
pf_sink_result pgs_table_oid(pg_sink *s, const char *name, char oid[16], char *err, size_t errlen);
/* Creates the schema when it is missing (create: true; FATAL otherwise).
 * A concurrent creator is RETRY. */
pf_sink_result pgs_prepare_schema(pg_sink *s, char *err, size_t errlen);
/* Creates target table T (create: true; with its identity recorded) or
 * adds its missing column.* columns (create: true), then checks its
 * columns, its unique key on "key" alone and its record identity
 * (pgs_check_identity). FATAL naming what is missing. */
pf_sink_result pgs_prepare_table(pg_sink *s, pg_table *t, char *err, size_t errlen);
/* The same for the state table: flow (unique), checkpoint, seq,
 * updated_at. */
pf_sink_result pgs_prepare_state_table(pg_sink *s, char *err, size_t errlen);

/* ---- pg_columns.c: the column.* options ---------------------------------------- */

/* The columns of the default row layout, in table order ("key" first). */
extern const char *const pgs_core_columns[4];
/* options_with_prefix callback (UD: the pg_sink): parses
 * `column.NAME: "SQLTYPE JSONPATH"` into s->cols. The first problem is
 * kept in s->col_error (the caller checks it after the walk); never
 * fails otherwise. */
void pgs_add_column(void *ud, const char *key, const char *value);
/* Checks every column path with the server's jsonpath parser. A path it
 * refuses is ERROR (a mistake in the flow's options); a failure to ask is
 * classified as pgs_fail. */
pf_sink_result pgs_check_paths(pg_sink *s, char *err, size_t errlen);

/* ---- pg_identity.c: record identity -------------------------------------------- */

/* Sets s->tables[T].identity from the host's stream_identity: the common
 * text of the table's streams, else "STREAM: IDENTITY; ..." in the flow's
 * stream order. Left NULL (and nothing is checked later) when the host
 * predates stream_identity or does not know a stream. RETRY when out of
 * memory. */
pf_sink_result pgs_table_identity(pg_sink *s, size_t t, char *err, size_t errlen);
/* Appends COMMENT ON COLUMN T."key" IS 'ppflow record identity: ...' (T's
 * identity must be set); sets B->oom when out of memory. */
void pgs_put_identity_comment(sb *b, pg_sink *s, const pg_table *t);
/* Checks existing target table T (oid OID, LABEL "schema.table" for
 * messages) against its identity, recorded as the comment on its "key"
 * column. OK at once when T has no identity (the host does not say).
 *   - The same identity recorded: OK.
 *   - None or another recorded, and no row: the identity is recorded
 *     (COMMENT ON COLUMN, which takes the table's owner; FATAL otherwise).
 *   - None recorded, rows, the identity is "$.NAME | sha256", and every
 *     row is keyed as it gives (key = record->>'NAME' when the record has
 *     NAME as a string or number, else a "sha256:" key; one query that
 *     stops at the first row keyed otherwise): adopted, recorded as for
 *     an empty table and logged at info level.
 *   - Otherwise (rows keyed by another or an unknown definition): FATAL
 *     naming the migration, whose statements are logged as warnings. */
pf_sink_result pgs_check_identity(pg_sink *s, pg_table *t, const char *oid, const char *label,
                                  char *err, size_t errlen);

/* ---- pg_load.c: loading batches -------------------------------------------------- */

/* Creates one TEMP staging table per target table (ON COMMIT DELETE ROWS)
 * and builds each table's INSERT from it. Needs the tables and columns. */
pf_sink_result pgs_make_staging(pg_sink *s, char *err, size_t errlen);
/* Opens a transaction unless one is open (and resets its counters). */
pf_sink_result pgs_begin(pg_sink *s, char *err, size_t errlen);
/* Loads the records of RECS (N of them) that belong to table T (TABLE_OF
 * gives each record's table): COPY straight into the table inside a
 * savepoint when nothing forbids it, else (or when that COPY meets a
 * stored or repeated key, or is refused by row-level security; the
 * savepoint undoes it) COPY into its staging table, which
 * pgs_insert_staged moves at commit. A transaction must be open. */
pf_sink_result pgs_load_table(pg_sink *s, size_t t, const pf_sink_record *recs,
                              const size_t *table_of, size_t n, char *err, size_t errlen);
/* Inserts the staged rows of every table that has some, with ON CONFLICT
 * (key) DO NOTHING or DO UPDATE. A transaction must be open. */
pf_sink_result pgs_insert_staged(pg_sink *s, char *err, size_t errlen);
/* After COMMIT: no transaction is open, nothing is staged. Never fails. */
void pgs_load_committed(pg_sink *s);

/* ---- pg_state.c: the flow's row in the state table ---------------------------------- */

/* Warns (log) when the state row's seq is behind the "seq" of RESUME (the
 * host's resume token, NULL: none): the row was removed or the database
 * restored from an older backup. Fails only when the row cannot be
 * read. */
pf_sink_result pgs_check_resume(pg_sink *s, const char *resume, char *err, size_t errlen);
/* Upserts the flow's row with CHECKPOINT (NULL keeps the stored one) and
 * seq + 1 (1 for a new row), in the open transaction; *SEQ is the new
 * seq. */
pf_sink_result pgs_store_checkpoint(pg_sink *s, const char *checkpoint, long long *seq, char *err,
                                    size_t errlen);
/* The flow's stored checkpoint into s->checkpoint (replacing the earlier
 * one; NULL when there is no row or no checkpoint). */
pf_sink_result pgs_read_checkpoint(pg_sink *s, char *err, size_t errlen);

#endif
