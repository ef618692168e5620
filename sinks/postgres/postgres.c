/* postgres.c: the PostgreSQL sink (plugin ppflow_sink_postgres.so, libpq).
 *
 * Owns the whole path from a batch of records to rows in PostgreSQL:
 *   open    connects (one attempt; a refused login or an unknown database
 *           is PF_SINK_FATAL, an unreachable server PF_SINK_RETRY), takes
 *           the flow's advisory lock (waiting up to lock_wait, then
 *           PF_SINK_BUSY: see take_lock for the key), proves that this role
 *           can take records (schema, tables, privileges: check_access),
 *           creates (create: true) or checks the target tables and the flow
 *           state table, checks each target table's record identity
 *           (check_identity), and creates one TEMP staging table per target
 *           table (ON COMMIT DELETE ROWS).
 *   write   opens a transaction (if none is open) and, per target table,
 *           COPYs the records straight into the table inside a savepoint
 *           (text COPY, escaped); when that COPY meets a key already stored
 *           or repeated (unique violation), or cannot be used (column.*
 *           columns, a record without key, rows already staged in this
 *           transaction, row-level security), the records go to the
 *           table's staging table instead (see load_table).
 *   commit  per table with staged rows: INSERT ... SELECT FROM staging ON
 *           CONFLICT (key) DO NOTHING (or DO UPDATE), then upserts the flow's
 *           row in the state table with the host's pending checkpoint, then
 *           COMMIT. The batch and its checkpoint become visible together or
 *           not at all.
 *   stored_checkpoint  returns that row's checkpoint.
 *   close   rolls back what is uncommitted, releases the advisory lock
 *           explicitly and disconnects.
 *
 * Outcomes follow the SQLSTATE (classify): transient classes RETRY, a
 * record the server refuses (data, integrity) ERROR, a destination that
 * cannot take any record until someone changes it (login, database,
 * schema, table, privilege) FATAL.
 *
 * Identifiers are always quoted with PQescapeIdentifier; values only travel
 * as statement parameters, COPY data or PQescapeLiteral text. The conninfo
 * option is a secret: it and its password never appear in a log line or an
 * error message (a libpq message that contains either is withheld). Any
 * failure poisons the connection's state: every later call answers the same
 * outcome until the host reopens the sink, so records of a failed
 * transaction can never be committed silently short. Links against libpq
 * only. */
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ppflow_sink.h"

#define PG_IDENT_MAX 63 /* NAMEDATALEN - 1: longer names would be truncated */
#define PG_MSG_MAX 400
#define PG_DEFAULT_CHUNK (1u << 20)
/* Direct loads per transaction, each a subtransaction that stays in the
 * server's per-backend cache (64 entries) until commit: past this many, the
 * transaction's remaining rows are staged, so the cache never overflows. */
#define PG_DIRECT_MAX 48
/* How long close waits for the server to roll back and release the
 * advisory lock before it just disconnects (the server then releases the
 * lock when the session ends). */
#define PG_CLOSE_WAIT_MS 5000
/* The longest lock_wait honoured (a day). */
#define PG_LOCK_WAIT_MAX (24 * 3600 * 1000LL)
/* The comment on a target table's "key" column that records how its rows
 * are identified: this prefix, then the identity text (check_identity). */
#define IDENTITY_TAG "ppflow record identity: "

/* ---- growable string ---------------------------------------------------- */

typedef struct sb {
    char *p;
    size_t len, cap;
    int oom;
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) {
            if (nc > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1; /* only short fragments are formatted */
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

static void sb_reset(sb *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

static void sb_free(sb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* The text, owned by the caller; NULL when an append ran out of memory. */
static char *sb_steal(sb *b)
{
    if (b->oom || !b->p) {
        int ok = !b->oom;
        sb_free(b);
        return ok ? strdup("") : NULL;
    }
    char *p = b->p;
    memset(b, 0, sizeof *b);
    return p;
}

/* ---- options -------------------------------------------------------------- */

static const pf_sink_option pg_options[] = {
    {"conninfo", PF_SINK_OPT_STRING, NULL, 1,
     "libpq connection string or URI, usually ${PG_CONNINFO}; treated as a secret"},
    {"schema", PF_SINK_OPT_STRING, "public", 0, "schema holding the tables and the state table"},
    {"table", PF_SINK_OPT_STRING, "ppflow_{stream}", 0,
     "target table; {stream} is replaced by the stream name"},
    {"create", PF_SINK_OPT_BOOL, "false", 0,
     "create the schema, the tables and missing column.* columns when they do not exist"},
    {"on_conflict", PF_SINK_OPT_STRING, "nothing", 0,
     "a record whose key is already stored: nothing (keep the stored row) or update (replace "
     "it when the record differs)"},
    {"state_table", PF_SINK_OPT_STRING, "ppflow_state", 0,
     "table (in schema) holding each flow's checkpoint, updated in the batch's transaction"},
    {"batch_bytes", PF_SINK_OPT_SIZE, "1MiB", 0,
     "COPY data is sent to the server in pieces of about this size"},
    {"statement_timeout", PF_SINK_OPT_DURATION, "60s", 0,
     "longest time one statement may run (0s: no limit); a timeout is retried"},
    {"connect_timeout", PF_SINK_OPT_DURATION, "10s", 0,
     "longest wait for a connection (used unless conninfo sets connect_timeout)"},
    {"lock_wait", PF_SINK_OPT_DURATION, "10s", 0,
     "longest wait for the flow's advisory lock when another session holds it (0s: no wait); "
     "then the run is busy"},
    {"column.*", PF_SINK_OPT_STRING, NULL, 0,
     "column.NAME: \"SQLTYPE JSONPATH\" adds column NAME of SQLTYPE (text, integer, bigint, "
     "numeric, boolean, double precision, timestamptz, date, jsonb, inet, uuid) filled with "
     "jsonb_path_query_first(record, JSONPATH)"},
    {NULL, 0, NULL, 0, NULL},
};

/* The SQL types a column.* option may declare. */
static const char *const sql_types[] = {
    "text",        "integer", "bigint", "numeric", "boolean", "double precision",
    "timestamptz", "date",    "jsonb",  "inet",    "uuid"};
#define NTYPES (sizeof sql_types / sizeof sql_types[0])

/* Names the default layout uses; a column.* option cannot take them. */
static const char *const core_columns[] = {"key", "record", "ingested_at", "flow"};

/* ---- state ---------------------------------------------------------------- */

typedef struct pg_column {
    char *name;       /* unquoted */
    const char *type; /* one of sql_types */
    char *path;       /* SQL/JSON path text, sent as a parameter */
} pg_column;

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

static void wipe(char *s)
{
    if (!s) return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
}

static void release_lock(pg_sink *s);

static void pg_close(void *p)
{
    pg_sink *s = p;
    if (!s) return;
    /* Rolls back what is open and releases the advisory lock on the
     * session itself: the server ends a closed session's backend (and
     * releases its locks) only some time after the disconnect, and the
     * next run of the flow may start before that. */
    release_lock(s);
    if (s->conn) PQfinish(s->conn);
    wipe(s->conninfo);
    wipe(s->password);
    free(s->conninfo);
    free(s->password);
    free(s->flow);
    free(s->role);
    free(s->schema);
    free(s->qschema);
    free(s->state_name);
    free(s->qstate);
    for (size_t i = 0; i < s->ncols; i++) {
        free(s->cols[i].name);
        free(s->cols[i].path);
    }
    free(s->cols);
    for (size_t i = 0; i < s->ntables; i++) {
        free(s->tables[i].name);
        free(s->tables[i].qname);
        free(s->tables[i].stage);
        free(s->tables[i].insert);
        free(s->tables[i].identity);
    }
    free(s->tables);
    for (size_t i = 0; i < s->nstreams; i++)
        free(s->streams[i]);
    free(s->streams);
    free(s->stream_table);
    free(s->params);
    free(s->checkpoint);
    sb_free(&s->copybuf);
    free(s);
}

static void pg_log(pg_sink *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pg_log(pg_sink *s, int level, const char *fmt, ...)
{
    char msg[PG_MSG_MAX + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->api->log(s->host, level, msg);
}

/* ---- messages and outcomes ------------------------------------------------ */

/* Copies a libpq or server message into OUT: one line (line breaks and tabs
 * become spaces, trailing space dropped), capped, and withheld entirely when
 * it contains the conninfo or its password. */
static void clean_msg(const pg_sink *s, const char *in, char *out, size_t n)
{
    if (!in || !*in) in = "no message";
    if ((s->conninfo && *s->conninfo && strstr(in, s->conninfo)) ||
        (s->password && *s->password && strstr(in, s->password))) {
        snprintf(out, n, "(the message is withheld: it contains the connection's secret)");
        return;
    }
    size_t o = 0;
    int brk = 0; /* a line break between sentences is pending */
    for (const char *p = in; *p && o + 3 < n; p++) {
        char c = *p;
        if (c == '\n' || c == '\r') {
            /* An indented next line continues the sentence. */
            brk = o > 0 && p[1] != '\t' && p[1] != ' ' && p[1] != '\n';
            if (!brk && o && out[o - 1] != ' ') out[o++] = ' ';
            continue;
        }
        if (c == '\t') c = ' ';
        if (c == ' ' && (o == 0 || out[o - 1] == ' ' || brk)) continue;
        if (brk) {
            while (o && out[o - 1] == ' ')
                o--;
            out[o++] = ';';
            out[o++] = ' ';
            brk = 0;
        }
        out[o++] = c;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* The outcome for SQLSTATE ST (NULL or not five characters: a client-side
 * failure such as out of memory or I/O, retried).
 *   RETRY  transient: connection (08), serialization and deadlock (40),
 *          resources (53), system (58), shutdowns and timeouts, lock not
 *          available, a read-only transaction (a standby during failover);
 *   FATAL  nothing can be written until someone changes the destination:
 *          authorization (28), an unknown database (3D) or schema (3F),
 *          syntax and access (42: a dropped table or column, a revoked
 *          privilege);
 *   ERROR  the records at hand: data (22), integrity (23: a CHECK, NOT NULL
 *          or unique constraint), and anything else. */
static pf_sink_result classify_state(const char *st)
{
    if (!st || strlen(st) != 5) return PF_SINK_RETRY;
    static const char *const retry_class[] = {"08", "40", "53", "58"};
    static const char *const retry_code[] = {"57P01", "57P02", "57P03", "57P05", "57014",
                                             "25P03", "55P03", "55006", "25006"};
    static const char *const fatal_class[] = {"28", "3D", "3F", "42"};
    for (size_t i = 0; i < sizeof retry_class / sizeof retry_class[0]; i++)
        if (strncmp(st, retry_class[i], 2) == 0) return PF_SINK_RETRY;
    for (size_t i = 0; i < sizeof retry_code / sizeof retry_code[0]; i++)
        if (strcmp(st, retry_code[i]) == 0) return PF_SINK_RETRY;
    for (size_t i = 0; i < sizeof fatal_class / sizeof fatal_class[0]; i++)
        if (strncmp(st, fatal_class[i], 2) == 0) return PF_SINK_FATAL;
    return PF_SINK_ERROR;
}

/* The outcome for a failed statement (R may be NULL). */
static pf_sink_result classify(const pg_sink *s, const PGresult *r)
{
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) return PF_SINK_RETRY;
    return classify_state(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL);
}

/* Sets ERR to "WHAT: REASON" for a failed statement R (or the connection's
 * own message when R carries none), poisons S and returns the outcome. */
static pf_sink_result fail(pg_sink *s, const PGresult *r, const char *what, char *err,
                           size_t errlen)
{
    pf_sink_result out = classify(s, r);
    const char *prim = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char reason[PG_MSG_MAX];
    clean_msg(s, prim ? prim : s->conn ? PQerrorMessage(s->conn) : NULL, reason, sizeof reason);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
        snprintf(s->failmsg, sizeof s->failmsg, "%.300s: connection lost: %s", what, reason);
    else if (st)
        snprintf(s->failmsg, sizeof s->failmsg, "%.300s: %s (SQLSTATE %.5s)", what, reason, st);
    else
        snprintf(s->failmsg, sizeof s->failmsg, "%.300s: %s", what, reason);
    s->failed = out;
    snprintf(err, errlen, "%s", s->failmsg);
    return out;
}

/* Repeats the outcome of an earlier failure. */
static pf_sink_result poisoned(const pg_sink *s, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s (the transaction was abandoned; the sink must be reopened)",
             s->failmsg);
    return s->failed;
}

static pf_sink_result oom(pg_sink *s, char *err, size_t errlen)
{
    if (s) {
        s->failed = PF_SINK_RETRY;
        snprintf(s->failmsg, sizeof s->failmsg, "out of memory");
    }
    snprintf(err, errlen, "out of memory");
    return PF_SINK_RETRY;
}

/* Runs SQL with text parameters and expects status WANT. On success returns
 * the result (the caller clears it); on failure NULL with ERR set through
 * fail() and *OUT the outcome. */
static PGresult *run(pg_sink *s, const char *sql, int nparams, const char *const *params,
                     ExecStatusType want, const char *what, pf_sink_result *out, char *err,
                     size_t errlen)
{
    PGresult *r = nparams ? PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                          : PQexec(s->conn, sql);
    if (r && PQresultStatus(r) == want) return r;
    *out = fail(s, r, what, err, errlen);
    PQclear(r);
    return NULL;
}

/* run() for statements whose result is not needed. */
static pf_sink_result exec_ok(pg_sink *s, const char *sql, int nparams, const char *const *params,
                              const char *what, char *err, size_t errlen)
{
    pf_sink_result out = PF_SINK_OK;
    PGresult *r = run(s, sql, nparams, params, PGRES_COMMAND_OK, what, &out, err, errlen);
    if (!r) return out; /* run() set OUT */
    PQclear(r);
    return PF_SINK_OK;
}

/* ---- names ----------------------------------------------------------------- */

static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *p < 0xC2)) return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80) return 0;
    }
    return 1;
}

/* Checks that NAME can be a PostgreSQL identifier as given. */
static int name_ok(const char *what, const char *name, char *err, size_t errlen)
{
    if (!*name) {
        snprintf(err, errlen, "%s is empty", what);
        return 0;
    }
    if (strlen(name) > PG_IDENT_MAX) {
        snprintf(err, errlen, "%s '%.80s' is %zu bytes long; PostgreSQL names are at most %d bytes",
                 what, name, strlen(name), PG_IDENT_MAX);
        return 0;
    }
    if (!utf8_ok(name)) {
        snprintf(err, errlen, "%s is not valid UTF-8", what);
        return 0;
    }
    return 1;
}

/* Appends NAME quoted as an identifier. */
static void put_ident(sb *b, PGconn *c, const char *name)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    if (!q) {
        b->oom = 1;
        return;
    }
    sb_puts(b, q);
    PQfreemem(q);
}

static char *ident(PGconn *c, const char *name)
{
    sb b = {0};
    put_ident(&b, c, name);
    return sb_steal(&b);
}

static char *qualified(PGconn *c, const char *schema, const char *name)
{
    sb b = {0};
    put_ident(&b, c, schema);
    sb_puts(&b, ".");
    put_ident(&b, c, name);
    return sb_steal(&b);
}

/* Replaces every {stream} in TMPL with STREAM. */
static char *expand_table(const char *tmpl, const char *stream)
{
    sb b = {0};
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{stream}", 8) == 0) {
            sb_puts(&b, stream);
            p += 8;
        } else {
            sb_put(&b, p++, 1);
        }
    }
    return sb_steal(&b);
}

/* ---- column.* options ------------------------------------------------------- */

static void col_problem(pg_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void col_problem(pg_sink *s, const char *fmt, ...)
{
    if (s->col_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->col_error, sizeof s->col_error, fmt, ap);
    va_end(ap);
}

/* options_with_prefix callback: parses `column.NAME: "SQLTYPE JSONPATH"`. */
static void add_column(void *ud, const char *key, const char *value)
{
    pg_sink *s = ud;
    const char *name = key + strlen("column.");
    char why[PG_MSG_MAX];
    if (!name_ok("the column name", name, why, sizeof why)) {
        col_problem(s, "sink option %s: %s", key, why);
        return;
    }
    for (size_t i = 0; i < sizeof core_columns / sizeof core_columns[0]; i++) {
        if (strcmp(name, core_columns[i]) == 0) {
            col_problem(s, "sink option %s: column %s is part of the default row layout", key,
                        name);
            return;
        }
    }
    const char *v = value;
    while (isspace((unsigned char)*v))
        v++;
    const char *type = NULL;
    size_t tl = 0;
    for (size_t i = 0; i < NTYPES; i++) {
        size_t l = strlen(sql_types[i]);
        if (l > tl && strncasecmp(v, sql_types[i], l) == 0 &&
            (isspace((unsigned char)v[l]) || !v[l])) {
            type = sql_types[i];
            tl = l;
        }
    }
    if (!type) {
        size_t w = strcspn(v, " \t");
        col_problem(s,
                    "sink option %s: '%.*s' is not an accepted column type (use one of: text, "
                    "integer, bigint, numeric, boolean, double precision, timestamptz, date, "
                    "jsonb, inet, uuid, followed by a JSONPath)",
                    key, (int)(w > 60 ? 60 : w), v);
        return;
    }
    const char *path = v + tl;
    while (isspace((unsigned char)*path))
        path++;
    size_t pl = strlen(path);
    while (pl && isspace((unsigned char)path[pl - 1]))
        pl--;
    if (!pl) {
        col_problem(s, "sink option %s: needs a JSONPath after the type, e.g. \"%s $.field\"", key,
                    type);
        return;
    }
    pg_column *nc = realloc(s->cols, (s->ncols + 1) * sizeof *nc);
    if (!nc) {
        col_problem(s, "out of memory");
        return;
    }
    s->cols = nc;
    pg_column *c = &s->cols[s->ncols];
    c->name = strdup(name);
    c->path = strndup(path, pl);
    c->type = type;
    if (!c->name || !c->path) {
        free(c->name);
        free(c->path);
        col_problem(s, "out of memory");
        return;
    }
    s->ncols++;
}

/* ---- connecting ---------------------------------------------------------------- */

/* Finds the password in the conninfo (so messages echoing it are withheld)
 * and checks that the conninfo parses. */
static pf_sink_result parse_conninfo(pg_sink *s, char *err, size_t errlen)
{
    /* A plain word is a database name, which libpq accepts too. */
    if (!strchr(s->conninfo, '=') && !strstr(s->conninfo, "://")) return PF_SINK_OK;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(s->conninfo, &perr);
    if (!opts) {
        /* libpq's message quotes the string, which may hold the password. */
        PQfreemem(perr);
        snprintf(err, errlen,
                 "option conninfo is not a valid libpq connection string or URI (details "
                 "withheld: they could contain the password)");
        return PF_SINK_ERROR;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
            s->password = strdup(o->val);
            if (!s->password) {
                PQconninfoFree(opts);
                return oom(NULL, err, errlen);
            }
        }
    }
    PQconninfoFree(opts);
    return PF_SINK_OK;
}

/* Server notices (and warnings such as "terminating connection") go to
 * ppflow's log, cleaned like every other message, never to stderr. */
static void on_notice(void *ud, const char *msg)
{
    pg_sink *s = ud;
    char clean[PG_MSG_MAX];
    clean_msg(s, msg, clean, sizeof clean);
    pg_log(s, 3, "server says: %s", clean);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits until the connection's socket is ready for EVENTS or DEADLINE
 * (now_ms, 0: none) passes. 1 ready (or an error the next libpq call will
 * report), 0 timed out. */
static int wait_socket(PGconn *c, short events, int64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0) return 0;
            ms = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd pfd = {PQsocket(c), events, 0};
        if (pfd.fd < 0) return 1;
        int n = poll(&pfd, 1, ms);
        if (n > 0 || (n < 0 && errno != EINTR)) return 1;
    }
}

/* The SQLSTATE a failed connection attempt got from the server, from
 * libpq's message in verbose form: the last attempt's line (libpq lists one
 * line per host tried, continuation lines indented or labelled "WORD:  ")
 * reads "...: SEVERITY:  XXXXX: message". Copies it into ST (size 6); ""
 * when the server sent none (refused, unreachable, a client-side
 * failure). */
static void connect_sqlstate(const char *msg, char st[6])
{
    st[0] = '\0';
    const char *last = NULL;
    for (const char *l = msg; l && *l;) {
        const char *w = l;
        while (*w >= 'A' && *w <= 'Z')
            w++;
        int label = w > l && strncmp(w, ":  ", 3) == 0;
        if (*l != ' ' && *l != '\t' && !label) last = l;
        l = strchr(l, '\n');
        if (l) l++;
    }
    if (!last) return;
    const char *end = strchr(last, '\n');
    if (!end) end = last + strlen(last);
    for (const char *p = last; p + 10 <= end; p++) {
        if (strncmp(p, ":  ", 3) != 0) continue;
        int ok = p[8] == ':' && p[9] == ' ';
        for (int i = 3; i < 8 && ok; i++)
            ok = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z');
        if (ok) {
            memcpy(st, p + 3, 5);
            st[5] = '\0';
            return;
        }
    }
}

/* Copies libpq's message for a failed connection into OUT as clean_msg
 * does, without the verbose form's extras: the SQLSTATE after the
 * severity (reported separately) and the LOCATION lines. */
static void connect_reason(const pg_sink *s, const char *msg, const char *st, char *out, size_t n)
{
    sb b = {0};
    for (const char *l = msg ? msg : ""; *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) + 1 : strlen(l);
        if (strncmp(l, "LOCATION:", 9) != 0) sb_put(&b, l, len);
        l += len;
    }
    if (b.oom) {
        sb_free(&b);
        clean_msg(s, msg, out, n);
        return;
    }
    if (*st && b.p) {
        char code[16];
        snprintf(code, sizeof code, ":  %s: ", st);
        char *p = strstr(b.p, code);
        if (p) memmove(p + 3, p + 10, strlen(p + 10) + 1);
    }
    clean_msg(s, b.p, out, n);
    sb_free(&b);
}

/* The effective connect_timeout in ms (the conninfo's own, else the sink
 * option), 0 for none; libpq's rules: at least 2 s, 0 waits forever. */
static int64_t connect_wait_ms(pg_sink *s)
{
    int64_t ms = s->connect_timeout_ms;
    PQconninfoOption *o = PQconninfo(s->conn);
    for (PQconninfoOption *i = o; i && i->keyword; i++)
        if (strcmp(i->keyword, "connect_timeout") == 0 && i->val && *i->val)
            ms = strtoll(i->val, NULL, 10) * 1000;
    PQconninfoFree(o);
    if (ms <= 0) return 0;
    return ms < 2000 ? 2000 : ms;
}

/* Connects: one attempt (libpq tries each host of the conninfo once).
 * RETRY when the server cannot be reached, refuses the connection, or is
 * starting up, out of connections or shutting down; FATAL when it answers
 * that the login or the database is wrong (SQLSTATE classes 28, 3D) or asks
 * for a password the conninfo does not give, since only a change to the
 * conninfo, the role or the database can fix those. The message names the
 * database, server and user, never the password. */
static pf_sink_result connect_db(pg_sink *s, char *err, size_t errlen)
{
    char ct[32];
    int64_t secs = (s->connect_timeout_ms + 999) / 1000;
    snprintf(ct, sizeof ct, "%lld", (long long)(secs < 2 ? 2 : secs));
    /* Entries before dbname are defaults the conninfo may override. */
    const char *keys[] = {"connect_timeout", "application_name",    "keepalives",
                          "keepalives_idle", "keepalives_interval", "keepalives_count",
                          "dbname",          "client_encoding",     NULL};
    const char *vals[] = {ct, "ppflow", "1", "30", "10", "3", s->conninfo, "UTF8", NULL};
    s->conn = PQconnectStartParams(keys, vals, 1);
    if (!s->conn) return oom(s, err, errlen);
    PQsetNoticeProcessor(s->conn, on_notice, s);
    /* Verbose messages carry the server's SQLSTATE, which tells a wrong
     * login from an unreachable server (libpq keeps no error result for a
     * failed connection). PQconnectdb cannot set this before it connects,
     * so the connection is driven here, with libpq's per-host timeout. */
    PQsetErrorVerbosity(s->conn, PQERRORS_VERBOSE);
    int timed_out = 0;
    if (PQstatus(s->conn) != CONNECTION_BAD) {
        int64_t wait = connect_wait_ms(s);
        const char *host = PQhost(s->conn);
        int64_t deadline = wait ? now_ms() + wait : 0;
        PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
        while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
            if (ps == PGRES_POLLING_READING || ps == PGRES_POLLING_WRITING) {
                if (!wait_socket(s->conn, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                                 deadline)) {
                    timed_out = 1;
                    break;
                }
            }
            ps = PQconnectPoll(s->conn);
            if (PQhost(s->conn) != host) { /* the next host: its own timeout */
                host = PQhost(s->conn);
                deadline = wait ? now_ms() + wait : 0;
            }
        }
    }
    if (timed_out || PQstatus(s->conn) != CONNECTION_OK) {
        const char *msg = timed_out ? "timeout expired" : PQerrorMessage(s->conn);
        char st[6] = "";
        if (!timed_out) connect_sqlstate(msg, st);
        pf_sink_result out = classify_state(*st ? st : NULL);
        if (out == PF_SINK_ERROR) out = PF_SINK_RETRY; /* another server-side refusal */
        if (!*st && !timed_out && PQconnectionNeedsPassword(s->conn)) out = PF_SINK_FATAL;
        char reason[PG_MSG_MAX];
        connect_reason(s, msg, st, reason, sizeof reason);
        const char *db = PQdb(s->conn), *host = PQhost(s->conn), *port = PQport(s->conn);
        const char *user = PQuser(s->conn);
        char where[PG_MSG_MAX];
        snprintf(where, sizeof where, "database %.63s at %.100s%s%.10s as user %.63s",
                 db && *db ? db : "?", host && *host ? host : "local socket",
                 port && *port ? ":" : "", port ? port : "", user && *user ? user : "?");
        char clean[PG_MSG_MAX];
        clean_msg(s, where, clean, sizeof clean); /* a conninfo that is one word */
        snprintf(err, errlen, "cannot connect to PostgreSQL %s: %s%s%s%s", clean, reason,
                 *st ? " (SQLSTATE " : "", st, *st ? ")" : "");
        return out;
    }
    PQsetErrorVerbosity(s->conn, PQERRORS_DEFAULT);
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)s->statement_timeout_ms);
    const char *p[] = {ms};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = run(s,
                        "SELECT pg_catalog.set_config('statement_timeout', $1, false), "
                        "pg_catalog.set_config('lock_timeout', $1, false), "
                        "CURRENT_USER",
                        1, p, PGRES_TUPLES_OK, "setting the statement timeout", &r, err, errlen);
    if (!res) return r;
    s->role = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 2) : "?");
    PQclear(res);
    return s->role ? PF_SINK_OK : oom(s, err, errlen);
}

/* ---- schema objects ------------------------------------------------------------- */

/* The oid of table SCHEMA.NAME as text in OID (size 16), "" when missing. */
static pf_sink_result table_oid(pg_sink *s, const char *name, char oid[16], char *err,
                                size_t errlen)
{
    const char *p[] = {s->schema, name};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = run(s,
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
    PGresult *res = run(s,
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
    res = run(s,
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
    pf_sink_result out = fail(s, r, what, err, errlen);
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (st && (strcmp(st, "23505") == 0 || strcmp(st, "42P07") == 0 || strcmp(st, "42P06") == 0 ||
               strcmp(st, "42701") == 0))
        out = s->failed = PF_SINK_RETRY;
    PQclear(r);
    return out;
}

/* ---- proving this role can take records ------------------------------------------ */

/* The privileges of WANT (NULL-terminated) that this role lacks on table
 * OID, as "INSERT, UPDATE" in MISSING ("" when none). */
static pf_sink_result lacking(pg_sink *s, const char *oid, const char *const *want, char *missing,
                              size_t mlen, char *err, size_t errlen)
{
    missing[0] = '\0';
    for (size_t i = 0; want[i]; i++) {
        const char *p[] = {oid, want[i]};
        pf_sink_result r = PF_SINK_OK;
        PGresult *res = run(s, "SELECT pg_catalog.has_table_privilege($1::oid, $2::text)", 2, p,
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

/* One table of check_access: NAME in the schema (QNAME quoted), KIND
 * "table" or "state table", WANT the privileges the sink uses on it. */
static pf_sink_result check_table_access(pg_sink *s, const char *name, const char *qname,
                                         const char *kind, const char *const *want,
                                         int schema_create, char *err, size_t errlen)
{
    char oid[16];
    pf_sink_result r = table_oid(s, name, oid, err, errlen);
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
    char *qrole = ident(s->conn, s->role);
    if (!qrole) return oom(s, err, errlen);
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
static pf_sink_result check_access(pg_sink *s, char *err, size_t errlen)
{
    const char *p[] = {s->schema};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        run(s,
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

/* ---- record identity --------------------------------------------------------------- */

/* Sets table T's identity: how the records of its streams are identified
 * (the host's stream_identity), the common text when its streams agree,
 * else "STREAM: IDENTITY; ..." in the flow's stream order. Left NULL when
 * the host does not tell (a host older than stream_identity). */
static pf_sink_result table_identity(pg_sink *s, size_t t, char *err, size_t errlen)
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
        sb_puts(&b, first);
    } else {
        for (size_t i = 0; i < s->nstreams; i++) {
            if (s->stream_table[i] != t) continue;
            if (b.len) sb_puts(&b, "; ");
            sb_puts(&b, s->streams[i]);
            sb_puts(&b, ": ");
            sb_puts(&b, s->api->stream_identity(s->host, s->streams[i]));
        }
    }
    if (!(s->tables[t].identity = sb_steal(&b))) return oom(s, err, errlen);
    return PF_SINK_OK;
}

/* Appends COMMENT ON COLUMN T."key" IS 'ppflow record identity: ...'. */
static void put_identity_comment(sb *b, pg_sink *s, const pg_table *t)
{
    sb_puts(b, "COMMENT ON COLUMN ");
    sb_puts(b, t->qname);
    sb_puts(b, ".\"key\" IS ");
    sb text = {0};
    sb_puts(&text, IDENTITY_TAG);
    sb_puts(&text, t->identity);
    char *lit = text.oom ? NULL : PQescapeLiteral(s->conn, text.p, text.len);
    sb_free(&text);
    if (!lit) {
        b->oom = 1;
        return;
    }
    sb_puts(b, lit);
    PQfreemem(lit);
}

/* The table name a migration renames table T to. */
static char *old_name(pg_sink *s, const pg_table *t)
{
    sb b = {0};
    if (strlen(t->name) + 4 <= PG_IDENT_MAX) {
        sb_puts(&b, t->name);
        sb_puts(&b, "_old");
    } else {
        sb_puts(&b, "ppflow_old_table");
    }
    char *name = sb_steal(&b);
    char *q = name ? ident(s->conn, name) : NULL;
    free(name);
    return q;
}

/* Logs how to migrate table T (LABEL), whose rows were keyed by STORED
 * (NULL: none recorded), to its identity: rebuild it, or re-key it in place
 * when the identity starts with a plain member path ($.name). */
static void log_migration(pg_sink *s, const pg_table *t, const char *label, const char *oldq)
{
    sb b = {0};
    char *flowlit = PQescapeLiteral(s->conn, s->flow, strlen(s->flow));
    sb_printf(&b, "to rebuild table %.150s: ALTER TABLE ", label);
    sb_puts(&b, t->qname);
    sb_puts(&b, " RENAME TO ");
    sb_puts(&b, oldq);
    sb_puts(&b, "; then, to fetch again what the API still holds, delete the flow's checkpoint "
                "(DELETE FROM ");
    sb_puts(&b, s->qstate);
    sb_puts(&b, " WHERE flow = ");
    sb_puts(&b, flowlit ? flowlit : "'?'");
    sb_puts(&b, "; and its state.path file) and run the flow again: the table is created anew");
    if (!b.oom) s->api->log(s->host, 1, b.p);
    sb_reset(&b);
    const char *id = t->identity, *bar = strstr(id, " | ");
    size_t n = bar ? (size_t)(bar - id) : strlen(id);
    int plain = n > 2 && id[0] == '$' && id[1] == '.';
    for (size_t i = 2; i < n && plain; i++)
        plain = isalnum((unsigned char)id[i]) || id[i] == '_';
    if (plain) {
        char member[PG_IDENT_MAX + 1];
        snprintf(member, sizeof member, "%.*s", (int)(n - 2 > PG_IDENT_MAX ? PG_IDENT_MAX : n - 2),
                 id + 2);
        sb_puts(&b, "or to re-key it in place: BEGIN; UPDATE ");
        sb_puts(&b, t->qname);
        sb_printf(&b, " SET \"key\" = record->>'%s' WHERE record ? '%s'; ", member, member);
        put_identity_comment(&b, s, t);
        sb_puts(&b, "; COMMIT; (events dropped earlier stay missing until fetched again; rows "
                    "without that member keep their old key and would be stored again if "
                    "delivered again)");
        if (!b.oom) s->api->log(s->host, 1, b.p);
    }
    PQfreemem(flowlit);
    sb_free(&b);
}

/* Checks target table T (oid OID, LABEL for messages) against its
 * identity. The identity is recorded as the comment on its "key" column.
 * The same identity: fine. None recorded or a different one, and the table
 * holds no row: the new one is recorded (which needs the table's owner).
 * Rows keyed by another (or an unknown) definition: FATAL, saying how to
 * migrate, because keys of the two definitions do not meet (a record would
 * be stored twice) and records that shared an old key may be missing. */
static pf_sink_result check_identity(pg_sink *s, pg_table *t, const char *oid, const char *label,
                                     char *err, size_t errlen)
{
    if (!t->identity) return PF_SINK_OK;
    const char *p[] = {oid};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res =
        run(s,
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
            return oom(s, err, errlen);
        }
    }
    PQclear(res);
    if (stored && strcmp(stored, t->identity) == 0) {
        free(stored);
        pg_log(s, 3, "table %s: records identified by '%s'", label, t->identity);
        return PF_SINK_OK;
    }
    sb sql = {0};
    sb_puts(&sql, "SELECT EXISTS (SELECT 1 FROM ");
    sb_puts(&sql, t->qname);
    sb_puts(&sql, ")");
    if (sql.oom) {
        sb_free(&sql);
        free(stored);
        return oom(s, err, errlen);
    }
    res = run(s, sql.p, 0, NULL, PGRES_TUPLES_OK, "looking for rows", &r, err, errlen);
    sb_free(&sql);
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
    free(stored);
    if (rows) {
        char *oldq = old_name(s, t);
        if (!oldq) return oom(s, err, errlen);
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
    put_identity_comment(&sql, s, t);
    if (sql.oom) {
        sb_free(&sql);
        return oom(s, err, errlen);
    }
    char what[300];
    snprintf(what, sizeof what,
             "recording the record identity of table %.150s (COMMENT ON COLUMN, by the table's "
             "owner)",
             label);
    r = exec_ok(s, sql.p, 0, NULL, what, err, errlen);
    sb_free(&sql);
    if (r == PF_SINK_OK)
        pg_log(s, 2, "table %s: records identified by '%s' (recorded; before: %s)", label,
               t->identity, was);
    return r;
}

/* Creates (create: true) or checks one target table. */
static pf_sink_result prepare_table(pg_sink *s, pg_table *t, char *err, size_t errlen)
{
    char oid[16];
    pf_sink_result r = table_oid(s, t->name, oid, err, errlen);
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
        sb_puts(&sql, "CREATE TABLE ");
        sb_puts(&sql, t->qname);
        sb_puts(&sql, " (\"key\" text PRIMARY KEY, \"record\" jsonb NOT NULL, \"ingested_at\" "
                      "timestamptz NOT NULL DEFAULT pg_catalog.now(), \"flow\" text NOT NULL");
        for (size_t i = 0; i < s->ncols; i++) {
            sb_puts(&sql, ", ");
            put_ident(&sql, s->conn, s->cols[i].name);
            sb_puts(&sql, " ");
            sb_puts(&sql, s->cols[i].type);
        }
        sb_puts(&sql, ")");
        if (t->identity) {
            sb_puts(&sql, "; ");
            put_identity_comment(&sql, s, t);
        }
        if (sql.oom) {
            sb_free(&sql);
            return oom(s, err, errlen);
        }
        char what[200];
        snprintf(what, sizeof what, "creating table %.150s", label);
        r = ddl_fail(s, sql.p, what, err, errlen);
        sb_free(&sql);
        if (r != PF_SINK_OK) return r;
        pg_log(s, 2, "created table %s", label);
        if ((r = table_oid(s, t->name, oid, err, errlen)) != PF_SINK_OK) return r;
        if (!oid[0]) {
            snprintf(err, errlen, "table %s vanished right after it was created", label);
            return PF_SINK_RETRY;
        }
    } else if (s->create && s->ncols) {
        /* Adds the column.* columns the table lacks. */
        const char *p[] = {oid};
        PGresult *res = run(s,
                            "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = "
                            "$1::oid AND attnum > 0 AND NOT attisdropped",
                            1, p, PGRES_TUPLES_OK, "reading a table's columns", &r, err, errlen);
        if (!res) return r;
        for (size_t i = 0; i < s->ncols && r == PF_SINK_OK; i++) {
            int found = 0;
            for (int j = 0; j < PQntuples(res) && !found; j++)
                found = strcmp(PQgetvalue(res, j, 0), s->cols[i].name) == 0;
            if (found) continue;
            sb_reset(&sql);
            sb_puts(&sql, "ALTER TABLE ");
            sb_puts(&sql, t->qname);
            sb_puts(&sql, " ADD COLUMN ");
            put_ident(&sql, s->conn, s->cols[i].name);
            sb_puts(&sql, " ");
            sb_puts(&sql, s->cols[i].type);
            if (sql.oom) {
                r = oom(s, err, errlen);
                break;
            }
            char what[300];
            snprintf(what, sizeof what, "adding column %.63s to %.150s", s->cols[i].name, label);
            r = ddl_fail(s, sql.p, what, err, errlen);
            if (r == PF_SINK_OK) pg_log(s, 2, "added column %s to %s", s->cols[i].name, label);
        }
        PQclear(res);
        sb_free(&sql);
        if (r != PF_SINK_OK) return r;
    }
    sb_free(&sql);
    const char **need = malloc((4 + s->ncols) * sizeof *need);
    if (!need) return oom(s, err, errlen);
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        need[n++] = core_columns[i];
    for (size_t i = 0; i < s->ncols; i++)
        need[n++] = s->cols[i].name;
    r = check_table(s, oid, label, need, n, "key", err, errlen);
    free(need);
    if (r != PF_SINK_OK) return r;
    return check_identity(s, t, oid, label, err, errlen);
}

static pf_sink_result prepare_state_table(pg_sink *s, char *err, size_t errlen)
{
    char oid[16];
    pf_sink_result r = table_oid(s, s->state_name, oid, err, errlen);
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
        sb_puts(&sql, "CREATE TABLE ");
        sb_puts(&sql, s->qstate);
        sb_puts(&sql, " (\"flow\" text PRIMARY KEY, \"checkpoint\" jsonb, \"seq\" bigint NOT NULL, "
                      "\"updated_at\" timestamptz NOT NULL DEFAULT pg_catalog.now())");
        if (sql.oom) {
            sb_free(&sql);
            return oom(s, err, errlen);
        }
        char what[200];
        snprintf(what, sizeof what, "creating state table %.150s", label);
        r = ddl_fail(s, sql.p, what, err, errlen);
        sb_free(&sql);
        if (r != PF_SINK_OK) return r;
        pg_log(s, 2, "created state table %s", label);
        if ((r = table_oid(s, s->state_name, oid, err, errlen)) != PF_SINK_OK) return r;
        if (!oid[0]) {
            snprintf(err, errlen, "state table %s vanished right after it was created", label);
            return PF_SINK_RETRY;
        }
    }
    const char *need[] = {"flow", "checkpoint", "seq", "updated_at"};
    return check_table(s, oid, label, need, 4, "flow", err, errlen);
}

static pf_sink_result prepare_schema(pg_sink *s, char *err, size_t errlen)
{
    const char *p[] = {s->schema};
    pf_sink_result r = PF_SINK_OK;
    PGresult *res = run(s, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1, p,
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
    sb_puts(&sql, "CREATE SCHEMA ");
    sb_puts(&sql, s->qschema);
    if (sql.oom) {
        sb_free(&sql);
        return oom(s, err, errlen);
    }
    r = ddl_fail(s, sql.p, "creating the schema", err, errlen);
    sb_free(&sql);
    if (r == PF_SINK_OK) pg_log(s, 2, "created schema %s", s->schema);
    return r;
}

/* Builds the INSERT that moves table T's staged rows into it. Parameter $1 is
 * the flow name, $2... the column paths. */
static char *build_insert(pg_sink *s, const pg_table *t)
{
    sb b = {0};
    sb_puts(&b, "INSERT INTO ");
    sb_puts(&b, t->qname);
    sb_puts(&b, " AS t (\"key\", \"record\", \"flow\"");
    for (size_t i = 0; i < s->ncols; i++) {
        sb_puts(&b, ", ");
        put_ident(&b, s->conn, s->cols[i].name);
    }
    sb_puts(&b, ") SELECT DISTINCT ON (s.k) s.k, s.record, $1::text");
    for (size_t i = 0; i < s->ncols; i++) {
        const char *type = s->cols[i].type;
        sb_printf(&b, ", ");
        if (strcmp(type, "jsonb") == 0) {
            sb_printf(&b, "pg_catalog.jsonb_path_query_first(s.record, $%zu::jsonpath)", i + 2);
        } else {
            sb_printf(&b, "(pg_catalog.jsonb_path_query_first(s.record, $%zu::jsonpath) #>> '{}')",
                      i + 2);
            if (strcmp(type, "text") != 0) sb_printf(&b, "::%s", type);
        }
    }
    sb_puts(&b, " FROM (SELECT COALESCE(g.key, pg_catalog.encode(pg_catalog.sha256("
                "pg_catalog.convert_to(g.record::text, 'UTF8')), 'hex')) AS k, g.record, g.ord "
                "FROM ");
    sb_puts(&b, t->stage);
    sb_puts(&b, " g) s ORDER BY s.k, s.ord");
    if (s->update) {
        /* The last version of a key in the batch wins; an unchanged record
         * leaves the stored row (and its ingested_at) alone. */
        sb_puts(&b, " DESC ON CONFLICT (\"key\") DO UPDATE SET \"record\" = EXCLUDED.\"record\", "
                    "\"flow\" = EXCLUDED.\"flow\", \"ingested_at\" = EXCLUDED.\"ingested_at\"");
        for (size_t i = 0; i < s->ncols; i++) {
            sb_puts(&b, ", ");
            put_ident(&b, s->conn, s->cols[i].name);
            sb_puts(&b, " = EXCLUDED.");
            put_ident(&b, s->conn, s->cols[i].name);
        }
        sb_puts(&b, " WHERE t.\"record\" IS DISTINCT FROM EXCLUDED.\"record\"");
    } else {
        sb_puts(&b, " ON CONFLICT (\"key\") DO NOTHING");
    }
    return sb_steal(&b);
}

/* Validates every column path with PostgreSQL's own jsonpath parser. */
static pf_sink_result check_paths(pg_sink *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->ncols; i++) {
        const char *p[] = {s->cols[i].path};
        PGresult *r = PQexecParams(s->conn, "SELECT $1::jsonpath", 1, NULL, p, NULL, NULL, 0);
        if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
            PQclear(r);
            continue;
        }
        char what[300];
        snprintf(what, sizeof what, "sink option column.%.63s: the path '%.120s' is refused",
                 s->cols[i].name, s->cols[i].path);
        pf_sink_result out = fail(s, r, what, err, errlen);
        PQclear(r);
        /* A path the server's parser refuses is a mistake in the flow's
         * options (ERROR, like the other option problems), not a problem
         * of the destination. */
        if (out == PF_SINK_FATAL) out = s->failed = PF_SINK_ERROR;
        return out;
    }
    return PF_SINK_OK;
}

static pf_sink_result make_staging(pg_sink *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->ntables; i++) {
        char name[48];
        snprintf(name, sizeof name, "ppflow_stage_%zu", i);
        sb b = {0};
        sb_puts(&b, "pg_temp.");
        put_ident(&b, s->conn, name);
        if (!(s->tables[i].stage = sb_steal(&b))) return oom(s, err, errlen);
        sb_puts(&b, "CREATE TEMP TABLE ");
        sb_puts(&b, s->tables[i].stage);
        sb_puts(&b, " (ord bigint NOT NULL, key text, record jsonb NOT NULL) "
                    "ON COMMIT DELETE ROWS");
        if (b.oom) {
            sb_free(&b);
            return oom(s, err, errlen);
        }
        pf_sink_result r = exec_ok(s, b.p, 0, NULL, "creating a staging table", err, errlen);
        sb_free(&b);
        if (r != PF_SINK_OK) return r;
        if (!(s->tables[i].insert = build_insert(s, &s->tables[i]))) return oom(s, err, errlen);
    }
    return PF_SINK_OK;
}

/* Selects COLUMN (SQL text, a constant of this file) of the flow's row in the
 * state table; WHAT names the step in messages. NULL with *R set on failure
 * (out of memory: PF_SINK_RETRY, like the sink's other allocation failures). */
static PGresult *state_row(pg_sink *s, const char *column, const char *what, pf_sink_result *r,
                           char *err, size_t errlen)
{
    sb sql = {0};
    sb_puts(&sql, "SELECT ");
    sb_puts(&sql, column);
    sb_puts(&sql, " FROM ");
    sb_puts(&sql, s->qstate);
    sb_puts(&sql, " WHERE \"flow\" = $1::text");
    if (sql.oom) {
        sb_free(&sql);
        *r = oom(s, err, errlen);
        return NULL;
    }
    const char *q[] = {s->flow};
    PGresult *res = run(s, sql.p, 1, q, PGRES_TUPLES_OK, what, r, err, errlen);
    sb_free(&sql);
    return res;
}

/* Warns when the state table is behind the host's resume token (the row was
 * deleted or the database restored from an older backup). */
static pf_sink_result check_resume(pg_sink *s, const char *resume, char *err, size_t errlen)
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
        pg_log(s, 1,
               "state table %s.%s is at commit %lld for flow %s but the checkpoint file "
               "remembers commit %lld: the row was removed or the database restored from an "
               "older backup; rows committed since may be missing",
               s->schema, s->state_name, have, s->flow, want);
    return PF_SINK_OK;
}

/* ---- open --------------------------------------------------------------------------- */

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
    PGresult *res = run(
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
static pf_sink_result take_lock(pg_sink *s, char *err, size_t errlen)
{
    char key[32] = "?";
    pf_sink_result r = PF_SINK_OK;
    int64_t deadline = now_ms() + s->lock_wait_ms, pause = 20;
    int got, waited = 0;
    while ((got = try_lock(s, key, &r, err, errlen)) == 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) break;
        if (!waited) {
            char pid[32];
            lock_holder(s, key, pid, sizeof pid);
            pg_log(s, 2,
                   "flow %s: the advisory lock %s is held by another session%s%s%s; waiting up "
                   "to %lld ms (lock_wait) for it",
                   s->flow, key, *pid ? " (server process " : "", pid, *pid ? ")" : "",
                   (long long)s->lock_wait_ms);
            waited = 1;
        }
        sleep_ms(pause < left ? pause : left);
        pause = pause * 2 > 500 ? 500 : pause * 2;
    }
    if (got < 0) return r;
    const char *db = PQdb(s->conn), *host = PQhost(s->conn), *port = PQport(s->conn);
    if (got) {
        snprintf(s->lock_key, sizeof s->lock_key, "%s", key);
        pg_log(s, 3, "holding the advisory lock %s for flow %s (database %s)", key, s->flow,
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
 * DEADLINE (now_ms). 1 when it succeeded, 0 otherwise (the caller
 * disconnects either way). */
static int exec_until(pg_sink *s, const char *sql, const char *p, int64_t deadline)
{
    const char *params[] = {p};
    if (!PQsendQueryParams(s->conn, sql, p ? 1 : 0, NULL, p ? params : NULL, NULL, NULL, 0))
        return 0;
    int ok = 1, any = 0;
    for (;;) {
        while (PQisBusy(s->conn)) {
            if (!wait_socket(s->conn, POLLIN, deadline) || !PQconsumeInput(s->conn)) return 0;
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
static void release_lock(pg_sink *s)
{
    if (!s->conn || !s->lock_key[0] || PQstatus(s->conn) != CONNECTION_OK) return;
    PGTransactionStatusType ts = PQtransactionStatus(s->conn);
    if (ts == PQTRANS_ACTIVE || ts == PQTRANS_UNKNOWN) return;
    int64_t deadline = now_ms() + PG_CLOSE_WAIT_MS;
    if (ts != PQTRANS_IDLE && !exec_until(s, "ROLLBACK", NULL, deadline)) return;
    if (exec_until(s, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)", s->lock_key, deadline))
        pg_log(s, 3, "released the advisory lock %s for flow %s", s->lock_key, s->flow);
    s->lock_key[0] = '\0';
}

static pf_sink_result setup_tables(pg_sink *s, const char *tmpl, const char *const *streams,
                                   size_t nstreams, char *err, size_t errlen)
{
    s->streams = calloc(nstreams ? nstreams : 1, sizeof *s->streams);
    s->stream_table = calloc(nstreams ? nstreams : 1, sizeof *s->stream_table);
    s->tables = calloc(nstreams ? nstreams : 1, sizeof *s->tables);
    if (!s->streams || !s->stream_table || !s->tables) return oom(s, err, errlen);
    for (size_t i = 0; i < nstreams; i++) {
        if (!(s->streams[i] = strdup(streams[i]))) return oom(s, err, errlen);
        s->nstreams++;
        char *name = expand_table(tmpl, streams[i]);
        if (!name) return oom(s, err, errlen);
        char why[PG_MSG_MAX];
        if (!name_ok("the table name", name, why, sizeof why)) {
            snprintf(err, errlen, "sink option table for stream %.80s: %s", streams[i], why);
            free(name);
            return PF_SINK_ERROR;
        }
        size_t t = 0;
        while (t < s->ntables && strcmp(s->tables[t].name, name) != 0)
            t++;
        if (t < s->ntables) {
            free(name);
        } else {
            s->tables[t].name = name;
            s->ntables++;
            if (!(s->tables[t].qname = qualified(s->conn, s->schema, name)))
                return oom(s, err, errlen);
        }
        s->stream_table[i] = t;
    }
    for (size_t t = 0; t < s->ntables; t++) {
        pf_sink_result r = table_identity(s, t, err, errlen);
        if (r != PF_SINK_OK) return r;
    }
    return PF_SINK_OK;
}

static pf_sink_result pg_open(const pf_sink_host *host, const pf_sink_host_api *api,
                              const char *const *streams, size_t nstreams, const char *resume,
                              void **state, char *err, size_t errlen)
{
    *state = NULL;
    pg_sink *s = calloc(1, sizeof *s);
    if (!s) return oom(NULL, err, errlen);
    s->host = host;
    s->api = api;
    pf_sink_result r = PF_SINK_ERROR;
    char why[PG_MSG_MAX];
    const char *conninfo = api->option(host, "conninfo");
    const char *schema = api->option(host, "schema");
    const char *tmpl = api->option(host, "table");
    const char *state_table = api->option(host, "state_table");
    const char *conflict = api->option(host, "on_conflict");
    const char *flow = api->flow_name(host);
    if (!conninfo || !*conninfo) {
        snprintf(err, errlen, "option conninfo is required");
        goto out;
    }
    if (!schema) schema = "public";
    if (!tmpl) tmpl = "ppflow_{stream}";
    if (!state_table) state_table = "ppflow_state";
    if (!conflict) conflict = "nothing";
    if (strcmp(conflict, "nothing") == 0) {
        s->update = 0;
    } else if (strcmp(conflict, "update") == 0) {
        s->update = 1;
    } else {
        snprintf(err, errlen, "sink option on_conflict must be nothing or update, not '%.60s'",
                 conflict);
        goto out;
    }
    if (!name_ok("sink option schema", schema, why, sizeof why) ||
        !name_ok("sink option state_table", state_table, why, sizeof why)) {
        snprintf(err, errlen, "%s", why);
        goto out;
    }
    s->create = (int)api->option_int(host, "create", 0);
    int64_t chunk = api->option_int(host, "batch_bytes", PG_DEFAULT_CHUNK);
    s->chunk = chunk < 4096 ? 4096 : chunk > (1 << 30) ? (1 << 30) : (size_t)chunk;
    s->statement_timeout_ms = api->option_int(host, "statement_timeout", 60000);
    if (s->statement_timeout_ms < 0 || s->statement_timeout_ms > INT32_MAX)
        s->statement_timeout_ms = 60000;
    s->connect_timeout_ms = api->option_int(host, "connect_timeout", 10000);
    if (s->connect_timeout_ms <= 0) s->connect_timeout_ms = 10000;
    s->lock_wait_ms = api->option_int(host, "lock_wait", 10000);
    if (s->lock_wait_ms < 0) s->lock_wait_ms = 0;
    if (s->lock_wait_ms > PG_LOCK_WAIT_MAX) s->lock_wait_ms = PG_LOCK_WAIT_MAX;
    if (!(s->conninfo = strdup(conninfo)) || !(s->schema = strdup(schema)) ||
        !(s->state_name = strdup(state_table)) || !(s->flow = strdup(flow ? flow : ""))) {
        r = oom(s, err, errlen);
        goto out;
    }
    api->options_with_prefix(host, "column.", add_column, s);
    if (s->col_error[0]) {
        snprintf(err, errlen, "%s", s->col_error);
        goto out;
    }
    if ((r = parse_conninfo(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = connect_db(s, err, errlen)) != PF_SINK_OK) goto out;
    if (!(s->qschema = ident(s->conn, s->schema)) ||
        !(s->qstate = qualified(s->conn, s->schema, s->state_name))) {
        r = oom(s, err, errlen);
        goto out;
    }
    if ((r = take_lock(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = setup_tables(s, tmpl, streams, nstreams, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = check_paths(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = check_access(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = prepare_schema(s, err, errlen)) != PF_SINK_OK) goto out;
    for (size_t i = 0; i < s->ntables; i++)
        if ((r = prepare_table(s, &s->tables[i], err, errlen)) != PF_SINK_OK) goto out;
    if ((r = prepare_state_table(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = make_staging(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = check_resume(s, resume, err, errlen)) != PF_SINK_OK) goto out;
    s->params = calloc(s->ncols + 1, sizeof *s->params);
    if (!s->params) {
        r = oom(s, err, errlen);
        goto out;
    }
    s->params[0] = s->flow;
    for (size_t i = 0; i < s->ncols; i++)
        s->params[i + 1] = s->cols[i].path;
    *state = s;
    return PF_SINK_OK;
out:
    pg_close(s);
    return r;
}

/* ---- write ------------------------------------------------------------------------- */

static pf_sink_result begin(pg_sink *s, char *err, size_t errlen)
{
    if (s->in_tx) return PF_SINK_OK;
    pf_sink_result r = exec_ok(s, "BEGIN", 0, NULL, "starting a transaction", err, errlen);
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
        sb_put(b, p + run, i - run);
        sb_put(b, rep, 2);
        run = i + 1;
    }
    sb_put(b, p + run, n - run);
}

static pf_sink_result copy_send(pg_sink *s, const char *what, char *err, size_t errlen)
{
    /* PQputCopyData takes an int length: pieces of at most 1 GiB. */
    for (size_t off = 0; off < s->copybuf.len;) {
        size_t n = s->copybuf.len - off < (1u << 30) ? s->copybuf.len - off : (1u << 30);
        if (PQputCopyData(s->conn, s->copybuf.p + off, (int)n) != 1) {
            pf_sink_result r = fail(s, NULL, what, err, errlen);
            sb_reset(&s->copybuf);
            return r;
        }
        off += n;
    }
    sb_reset(&s->copybuf);
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
 * Any other failure poisons S as fail() does. */
static pf_sink_result copy_rows(pg_sink *s, size_t t, enum copy_kind kind,
                                const pf_sink_record *recs, const size_t *table_of, size_t n,
                                int *refused, char *err, size_t errlen)
{
    pg_table *tb = &s->tables[t];
    char what[200];
    snprintf(what, sizeof what, "loading records for %.63s.%.63s", s->schema, tb->name);
    *refused = 0;
    sb sql = {0};
    sb_puts(&sql, "COPY ");
    if (kind == COPY_STAGE) {
        sb_puts(&sql, tb->stage);
        sb_puts(&sql, " (ord, key, record) FROM STDIN");
    } else {
        sb_puts(&sql, tb->qname);
        sb_puts(&sql, " (\"key\", \"record\", \"flow\") FROM STDIN");
    }
    if (sql.oom) {
        sb_free(&sql);
        return oom(s, err, errlen);
    }
    PGresult *res = PQexec(s->conn, sql.p);
    sb_free(&sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (kind == COPY_DIRECT && st && strcmp(st, "0A000") == 0) {
            *refused = '0';
            PQclear(res);
            return PF_SINK_OK;
        }
        pf_sink_result r = fail(s, res, what, err, errlen);
        PQclear(res);
        return r;
    }
    PQclear(res);
    if (kind == COPY_STAGE) tb->dirty = 1;
    sb_reset(&s->copybuf);
    pf_sink_result r = PF_SINK_OK;
    for (size_t i = 0; i < n; i++) {
        if (table_of[i] != t) continue;
        if (kind == COPY_STAGE) {
            sb_printf(&s->copybuf, "%lld\t", (long long)++s->ord);
            if (recs[i].key)
                copy_escape(&s->copybuf, recs[i].key, recs[i].key_len);
            else
                sb_puts(&s->copybuf, "\\N");
            sb_put(&s->copybuf, "\t", 1);
            copy_escape(&s->copybuf, recs[i].json, recs[i].json_len);
        } else {
            copy_escape(&s->copybuf, recs[i].key, recs[i].key_len);
            sb_put(&s->copybuf, "\t", 1);
            copy_escape(&s->copybuf, recs[i].json, recs[i].json_len);
            sb_put(&s->copybuf, "\t", 1);
            copy_escape(&s->copybuf, s->flow, strlen(s->flow));
        }
        sb_put(&s->copybuf, "\n", 1);
        if (s->copybuf.oom) {
            PQputCopyEnd(s->conn, "out of memory");
            PQclear(PQgetResult(s->conn));
            return oom(s, err, errlen);
        }
        if (s->copybuf.len >= s->chunk && (r = copy_send(s, what, err, errlen)) != PF_SINK_OK)
            return r;
    }
    if ((r = copy_send(s, what, err, errlen)) != PF_SINK_OK) return r;
    if (PQputCopyEnd(s->conn, NULL) != 1) return fail(s, NULL, what, err, errlen);
    r = PF_SINK_OK;
    while ((res = PQgetResult(s->conn))) {
        if (r == PF_SINK_OK && !*refused && PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (kind == COPY_DIRECT && st &&
                (strcmp(st, "23505") == 0 || strcmp(st, "0A000") == 0) && s->conn &&
                PQstatus(s->conn) == CONNECTION_OK)
                *refused = st[0];
            else
                r = fail(s, res, what, err, errlen);
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
static pf_sink_result load_table(pg_sink *s, size_t t, const pf_sink_record *recs,
                                 const size_t *table_of, size_t n, char *err, size_t errlen)
{
    int refused = 0;
    if (direct_ok(s, t, recs, table_of, n)) {
        pf_sink_result r =
            exec_ok(s, "SAVEPOINT ppflow_direct", 0, NULL, "starting a savepoint", err, errlen);
        if (r != PF_SINK_OK) return r;
        r = copy_rows(s, t, COPY_DIRECT, recs, table_of, n, &refused, err, errlen);
        if (r != PF_SINK_OK) return r;
        if (!refused) {
            s->direct_savepoints++;
            r = exec_ok(s, "RELEASE SAVEPOINT ppflow_direct", 0, NULL, "ending a savepoint", err,
                        errlen);
            if (r == PF_SINK_OK)
                pg_log(s, 3, "%s.%s: batch copied into the table", s->schema, s->tables[t].name);
            return r;
        }
        /* Nothing of the refused COPY remains; the savepoint is dropped too. */
        if ((r = exec_ok(s, "ROLLBACK TO SAVEPOINT ppflow_direct", 0, NULL,
                         "rolling back to a savepoint", err, errlen)) != PF_SINK_OK ||
            (r = exec_ok(s, "RELEASE SAVEPOINT ppflow_direct", 0, NULL, "ending a savepoint", err,
                         errlen)) != PF_SINK_OK)
            return r;
        if (refused == '0') {
            s->tables[t].no_direct = 1;
            pg_log(s, 2,
                   "%s.%s does not accept COPY (row-level security?): its rows are staged and "
                   "inserted at commit",
                   s->schema, s->tables[t].name);
        } else {
            pg_log(s, 3,
                   "%s.%s already holds a key of this batch (or the batch repeats one): "
                   "staging the batch for INSERT ... ON CONFLICT",
                   s->schema, s->tables[t].name);
        }
    }
    return copy_rows(s, t, COPY_STAGE, recs, table_of, n, &refused, err, errlen);
}

static pf_sink_result pg_write(void *p, const pf_sink_record *recs, size_t n, char *err,
                               size_t errlen)
{
    pg_sink *s = p;
    if (s->failed != PF_SINK_OK) return poisoned(s, err, errlen);
    if (n == 0) return PF_SINK_OK;
    size_t *table_of = malloc(n * sizeof *table_of);
    if (!table_of) return oom(s, err, errlen);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < s->nstreams && strcmp(s->streams[j], recs[i].stream) != 0)
            j++;
        if (j == s->nstreams) {
            snprintf(err, errlen, "record for unknown stream '%.80s'", recs[i].stream);
            free(table_of);
            return PF_SINK_ERROR;
        }
        table_of[i] = s->stream_table[j];
    }
    pf_sink_result r = begin(s, err, errlen);
    for (size_t t = 0; t < s->ntables && r == PF_SINK_OK; t++) {
        size_t i = 0;
        while (i < n && table_of[i] != t)
            i++;
        if (i < n) r = load_table(s, t, recs, table_of, n, err, errlen);
    }
    free(table_of);
    return r;
}

/* ---- commit ------------------------------------------------------------------------ */

static pf_sink_result pg_commit(void *p, const char **token, char *err, size_t errlen)
{
    pg_sink *s = p;
    if (s->failed != PF_SINK_OK) return poisoned(s, err, errlen);
    pf_sink_result r = begin(s, err, errlen);
    if (r != PF_SINK_OK) return r;
    for (size_t i = 0; i < s->ntables; i++) {
        pg_table *t = &s->tables[i];
        if (!t->dirty) continue;
        char what[200];
        snprintf(what, sizeof what, "inserting into %.63s.%.63s", s->schema, t->name);
        PGresult *res = run(s, t->insert, (int)s->ncols + 1, s->params, PGRES_COMMAND_OK, what, &r,
                            err, errlen);
        if (!res) return r;
        pg_log(s, 3, "%s: %s new rows", what, PQcmdTuples(res));
        PQclear(res);
    }
    sb sql = {0};
    sb_puts(&sql, "INSERT INTO ");
    sb_puts(&sql, s->qstate);
    sb_puts(&sql, " AS st (\"flow\", \"checkpoint\", \"seq\", \"updated_at\") VALUES ($1::text, "
                  "$2::jsonb, 1, pg_catalog.now()) ON CONFLICT (\"flow\") DO UPDATE SET "
                  "\"checkpoint\" = COALESCE(EXCLUDED.\"checkpoint\", st.\"checkpoint\"), "
                  "\"seq\" = st.\"seq\" + 1, \"updated_at\" = EXCLUDED.\"updated_at\" "
                  "RETURNING \"seq\"");
    if (sql.oom) {
        sb_free(&sql);
        return oom(s, err, errlen);
    }
    const char *q[] = {s->flow, s->api->pending_checkpoint(s->host)};
    PGresult *res = run(s, sql.p, 2, q, PGRES_TUPLES_OK, "storing the checkpoint", &r, err, errlen);
    sb_free(&sql);
    if (!res) return r;
    long long seq = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    res = run(s, "COMMIT", 0, NULL, PGRES_COMMAND_OK, "committing", &r, err, errlen);
    if (!res) return r;
    int committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed) { /* the server rolled back instead */
        s->failed = PF_SINK_RETRY;
        snprintf(s->failmsg, sizeof s->failmsg, "committing: the server rolled back");
        snprintf(err, errlen, "%s", s->failmsg);
        return PF_SINK_RETRY;
    }
    s->in_tx = 0;
    for (size_t i = 0; i < s->ntables; i++)
        s->tables[i].dirty = 0;
    snprintf(s->token, sizeof s->token, "{\"seq\":%lld}", seq);
    *token = s->token;
    return PF_SINK_OK;
}

/* ---- stored checkpoint ----------------------------------------------------------- */

static pf_sink_result pg_stored(void *p, const char **checkpoint, char *err, size_t errlen)
{
    pg_sink *s = p;
    *checkpoint = NULL;
    if (s->failed != PF_SINK_OK) return poisoned(s, err, errlen);
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
            return oom(s, err, errlen);
        }
    }
    PQclear(res);
    *checkpoint = s->checkpoint;
    return PF_SINK_OK;
}

__attribute__((visibility("default"))) const pf_sink_descriptor ppflow_sink_descriptor = {
    .abi_version = PF_SINK_ABI_VERSION,
    .struct_size = sizeof(pf_sink_descriptor),
    .name = "postgres",
    .description = "PostgreSQL tables: COPY (INSERT ... ON CONFLICT for stored keys) and the "
                   "flow's checkpoint in one transaction (exactly once)",
    .options = pg_options,
    .open = pg_open,
    .write = pg_write,
    .commit = pg_commit,
    .close = pg_close,
    .stored_checkpoint = pg_stored,
};
