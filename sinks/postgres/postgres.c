/* postgres.c: the PostgreSQL sink (plugin ppflow_sink_postgres.so, libpq):
 * its descriptor and option table, and the delivery contract's callbacks,
 * each a short sequence of the steps the other files own (pg_internal.h
 * lists them):
 *   open    connects (pg_conn.c: one attempt; a refused login or an
 *           unknown database is PF_SINK_FATAL, an unreachable server
 *           PF_SINK_RETRY), takes the flow's advisory lock (pg_lock.c:
 *           waiting up to lock_wait, then PF_SINK_BUSY), proves that this
 *           role can take records (pg_access.c), creates (create: true) or
 *           checks the schema, the target tables and the flow state table
 *           (pg_schema.c) with each target table's record identity
 *           (pg_identity.c), and creates one TEMP staging table per target
 *           table (pg_load.c).
 *   write   opens a transaction (if none is open) and loads each target
 *           table's records (pg_load.c: COPY straight into the table inside
 *           a savepoint, or into its staging table).
 *   commit  inserts the staged rows with ON CONFLICT (pg_load.c), upserts
 *           the flow's row in the state table with the host's pending
 *           checkpoint (pg_state.c), then COMMIT. The batch and its
 *           checkpoint become visible together or not at all.
 *   stored_checkpoint  returns that row's checkpoint (pg_state.c).
 *   close   rolls back what is uncommitted, releases the advisory lock
 *           explicitly (pg_lock.c) and disconnects.
 *
 * Outcomes follow the SQLSTATE (pg_conn.c): transient classes RETRY, a
 * record the server refuses (data, integrity) ERROR, a destination that
 * cannot take any record until someone changes it (login, database,
 * schema, table, privilege) FATAL. The conninfo option is a secret: it and
 * its password never appear in a log line or an error message. Any failure
 * poisons the sink: every later call answers the same outcome until the
 * host reopens it, so records of a failed transaction can never be
 * committed silently short. The plugin links against libpq only and
 * exports nothing but its descriptor. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

#define PG_DEFAULT_CHUNK (1u << 20)
/* The longest lock_wait honoured (a day). */
#define PG_LOCK_WAIT_MAX (24 * 3600 * 1000LL)

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

/* ---- close ------------------------------------------------------------------------ */

/* Wipes a secret before it is freed (explicit_bzero: a memset before free
 * may be optimised away). */
static void wipe(char *s)
{
    if (s) explicit_bzero(s, strlen(s));
}

static void pg_close(void *p)
{
    pg_sink *s = p;
    if (!s) return;
    /* Rolls back what is open and releases the advisory lock on the
     * session itself: the server ends a closed session's backend (and
     * releases its locks) only some time after the disconnect, and the
     * next run of the flow may start before that. */
    pgs_release_lock(s);
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
    pgs_sb_free(&s->copybuf);
    free(s);
}

/* ---- open --------------------------------------------------------------------------- */

static pf_sink_result setup_tables(pg_sink *s, const char *tmpl, const char *const *streams,
                                   size_t nstreams, char *err, size_t errlen)
{
    s->streams = calloc(nstreams ? nstreams : 1, sizeof *s->streams);
    s->stream_table = calloc(nstreams ? nstreams : 1, sizeof *s->stream_table);
    s->tables = calloc(nstreams ? nstreams : 1, sizeof *s->tables);
    if (!s->streams || !s->stream_table || !s->tables) return pgs_oom(s, err, errlen);
    for (size_t i = 0; i < nstreams; i++) {
        if (!(s->streams[i] = strdup(streams[i]))) return pgs_oom(s, err, errlen);
        s->nstreams++;
        char *name = pgs_expand_table(tmpl, streams[i]);
        if (!name) return pgs_oom(s, err, errlen);
        char why[PG_MSG_MAX];
        if (!pgs_name_ok("the table name", name, why, sizeof why)) {
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
            if (!(s->tables[t].qname = pgs_qualified(s->conn, s->schema, name)))
                return pgs_oom(s, err, errlen);
        }
        s->stream_table[i] = t;
    }
    for (size_t t = 0; t < s->ntables; t++) {
        pf_sink_result r = pgs_table_identity(s, t, err, errlen);
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
    if (!s) return pgs_oom(NULL, err, errlen);
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
    if (!pgs_name_ok("sink option schema", schema, why, sizeof why) ||
        !pgs_name_ok("sink option state_table", state_table, why, sizeof why)) {
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
        r = pgs_oom(s, err, errlen);
        goto out;
    }
    api->options_with_prefix(host, "column.", pgs_add_column, s);
    if (s->col_error[0]) {
        snprintf(err, errlen, "%s", s->col_error);
        goto out;
    }
    if ((r = pgs_parse_conninfo(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_connect(s, err, errlen)) != PF_SINK_OK) goto out;
    if (!(s->qschema = pgs_ident(s->conn, s->schema)) ||
        !(s->qstate = pgs_qualified(s->conn, s->schema, s->state_name))) {
        r = pgs_oom(s, err, errlen);
        goto out;
    }
    if ((r = pgs_take_lock(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = setup_tables(s, tmpl, streams, nstreams, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_check_paths(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_check_access(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_prepare_schema(s, err, errlen)) != PF_SINK_OK) goto out;
    for (size_t i = 0; i < s->ntables; i++)
        if ((r = pgs_prepare_table(s, &s->tables[i], err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_prepare_state_table(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_make_staging(s, err, errlen)) != PF_SINK_OK) goto out;
    if ((r = pgs_check_resume(s, resume, err, errlen)) != PF_SINK_OK) goto out;
    s->params = calloc(s->ncols + 1, sizeof *s->params);
    if (!s->params) {
        r = pgs_oom(s, err, errlen);
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

static pf_sink_result pg_write(void *p, const pf_sink_record *recs, size_t n, char *err,
                               size_t errlen)
{
    pg_sink *s = p;
    if (s->failed != PF_SINK_OK) return pgs_poisoned(s, err, errlen);
    if (n == 0) return PF_SINK_OK;
    size_t *table_of = malloc(n * sizeof *table_of);
    if (!table_of) return pgs_oom(s, err, errlen);
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
    pf_sink_result r = pgs_begin(s, err, errlen);
    for (size_t t = 0; t < s->ntables && r == PF_SINK_OK; t++) {
        size_t i = 0;
        while (i < n && table_of[i] != t)
            i++;
        if (i < n) r = pgs_load_table(s, t, recs, table_of, n, err, errlen);
    }
    free(table_of);
    return r;
}

/* ---- commit ------------------------------------------------------------------------ */

static pf_sink_result pg_commit(void *p, const char **token, char *err, size_t errlen)
{
    pg_sink *s = p;
    if (s->failed != PF_SINK_OK) return pgs_poisoned(s, err, errlen);
    pf_sink_result r = pgs_begin(s, err, errlen);
    if (r != PF_SINK_OK) return r;
    if ((r = pgs_insert_staged(s, err, errlen)) != PF_SINK_OK) return r;
    long long seq = 0;
    r = pgs_store_checkpoint(s, s->api->pending_checkpoint(s->host), &seq, err, errlen);
    if (r != PF_SINK_OK) return r;
    PGresult *res = pgs_run(s, "COMMIT", 0, NULL, PGRES_COMMAND_OK, "committing", &r, err, errlen);
    if (!res) return r;
    int committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed) { /* the server rolled back instead */
        s->failed = PF_SINK_RETRY;
        snprintf(s->failmsg, sizeof s->failmsg, "committing: the server rolled back");
        snprintf(err, errlen, "%s", s->failmsg);
        return PF_SINK_RETRY;
    }
    pgs_load_committed(s);
    snprintf(s->token, sizeof s->token, "{\"seq\":%lld}", seq);
    *token = s->token;
    return PF_SINK_OK;
}

/* ---- stored checkpoint ----------------------------------------------------------- */

static pf_sink_result pg_stored(void *p, const char **checkpoint, char *err, size_t errlen)
{
    pg_sink *s = p;
    *checkpoint = NULL;
    if (s->failed != PF_SINK_OK) return pgs_poisoned(s, err, errlen);
    pf_sink_result r = pgs_read_checkpoint(s, err, errlen);
    if (r != PF_SINK_OK) return r;
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
