/* test_pg_sink.c: the PostgreSQL sink plugin against a real server.
 *
 * dlopens the built plugin (PG_SINK_SO), drives it through a minimal host
 * written here (options, log capture, pending checkpoint, per-stream record
 * identities) exactly as ppflow drives a sink, and checks every outcome with
 * SQL over libpq. Needs the
 * throwaway cluster of pgcluster.py: run through `pgcluster.py exec`, which
 * sets PG_CONNINFO (trust superuser), PG_CONNINFO_PASSWORD and PG_PASSWORD.
 * Each test uses its own schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ppflow_sink.h"

static const pf_sink_descriptor *desc;
static PGconn *db; /* the test's own connection, for checking */

/* ---- a minimal host ------------------------------------------------------- */

#define MAX_OPTS 32

struct pf_sink_host {
    const char *keys[MAX_OPTS];
    const char *vals[MAX_OPTS];
    size_t n;
    const char *flow;
    const char *pending;                   /* offered during commit only */
    const char *id_stream[4], *id_text[4]; /* stream_identity answers */
    size_t nid;
    char log[16384];
};

static const pf_sink_option *find_opt(const char *key)
{
    for (const pf_sink_option *o = desc->options; o->key; o++) {
        size_t l = strlen(o->key);
        if (l && o->key[l - 1] == '*' ? strncmp(o->key, key, l - 1) == 0 : strcmp(o->key, key) == 0)
            return o;
    }
    return NULL;
}

static const char *h_option(const pf_sink_host *h, const char *key)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->keys[i], key) == 0) return h->vals[i];
    const pf_sink_option *o = find_opt(key);
    return o ? o->default_value : NULL;
}

/* Integers as ppflow gives them: BOOL 0/1, DURATION in ms, SIZE in bytes. */
static int64_t h_option_int(const pf_sink_host *h, const char *key, int64_t def)
{
    const char *v = h_option(h, key);
    const pf_sink_option *o = find_opt(key);
    if (!v || !o) return def;
    if (o->type == PF_SINK_OPT_BOOL) return strcmp(v, "true") == 0;
    char *end;
    double x = strtod(v, &end);
    if (o->type == PF_SINK_OPT_DURATION) {
        if (strcmp(end, "ms") == 0) return (int64_t)x;
        if (strcmp(end, "s") == 0) return (int64_t)(x * 1000);
        if (strcmp(end, "m") == 0) return (int64_t)(x * 60000);
    }
    if (o->type == PF_SINK_OPT_SIZE) {
        if (strcmp(end, "KiB") == 0) return (int64_t)(x * 1024);
        if (strcmp(end, "MiB") == 0) return (int64_t)(x * 1048576);
    }
    return (int64_t)x;
}

static void h_log(const pf_sink_host *h, int level, const char *msg)
{
    struct pf_sink_host *m = (struct pf_sink_host *)h;
    size_t l = strlen(m->log);
    snprintf(m->log + l, sizeof m->log - l, "%d %s\n", level, msg);
}

static const char *h_flow(const pf_sink_host *h)
{
    return h->flow;
}

static const char *h_pending(const pf_sink_host *h)
{
    return h->pending;
}

static void h_prefix(const pf_sink_host *h, const char *prefix,
                     void (*fn)(void *ud, const char *key, const char *value), void *ud)
{
    for (size_t i = 0; i < h->n; i++)
        if (strncmp(h->keys[i], prefix, strlen(prefix)) == 0) fn(ud, h->keys[i], h->vals[i]);
}

/* The identity set with set_identity, else "$.id | sha256". */
static const char *h_identity(const pf_sink_host *h, const char *stream)
{
    for (size_t i = 0; i < h->nid; i++)
        if (strcmp(h->id_stream[i], stream) == 0) return h->id_text[i];
    return "$.id | sha256";
}

static const pf_sink_host_api api = {sizeof(pf_sink_host_api),
                                     h_option,
                                     h_option_int,
                                     h_log,
                                     h_flow,
                                     h_pending,
                                     h_prefix,
                                     h_identity};
/* The table of a host that predates stream_identity. */
static const pf_sink_host_api old_api = {(uint32_t)offsetof(pf_sink_host_api, stream_identity),
                                         h_option,
                                         h_option_int,
                                         h_log,
                                         h_flow,
                                         h_pending,
                                         h_prefix,
                                         NULL};

static void set_identity(pf_sink_host *h, const char *stream, const char *text)
{
    for (size_t i = 0; i < h->nid; i++) {
        if (strcmp(h->id_stream[i], stream) == 0) {
            h->id_text[i] = text;
            return;
        }
    }
    assert_true(h->nid < 4);
    h->id_stream[h->nid] = stream;
    h->id_text[h->nid++] = text;
}

/* Sets option KEY (replacing an earlier value). */
static void set(pf_sink_host *h, const char *key, const char *val)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->keys[i], key) == 0) {
            h->vals[i] = val;
            return;
        }
    }
    assert_true(h->n < MAX_OPTS);
    h->keys[h->n] = key;
    h->vals[h->n++] = val;
}

/* A host for flow FLOW writing into SCHEMA with create: true. */
static void host_init(pf_sink_host *h, const char *flow, const char *schema)
{
    memset(h, 0, sizeof *h);
    h->flow = flow;
    set(h, "conninfo", getenv("PG_CONNINFO"));
    set(h, "schema", schema);
    set(h, "create", "true");
}

static void *open_ok(pf_sink_host *h, const char *const *streams, size_t n)
{
    void *st = NULL;
    char err[512] = "";
    pf_sink_result r = desc->open(h, &api, streams, n, NULL, &st, err, sizeof err);
    if (r != PF_SINK_OK) fail_msg("open failed (%d): %s", r, err);
    assert_non_null(st);
    return st;
}

static pf_sink_result open_fails(pf_sink_host *h, const char *const *streams, size_t n, char *err,
                                 size_t errlen)
{
    void *st = NULL;
    pf_sink_result r = desc->open(h, &api, streams, n, NULL, &st, err, errlen);
    assert_int_not_equal(r, PF_SINK_OK);
    assert_null(st);
    return r;
}

static pf_sink_record rec(const char *stream, const char *key, const char *json)
{
    pf_sink_record r = {stream, key, key ? strlen(key) : 0, json, strlen(json)};
    return r;
}

static void write_ok(void *st, const pf_sink_record *recs, size_t n)
{
    char err[512] = "";
    pf_sink_result r = desc->write(st, recs, n, err, sizeof err);
    if (r != PF_SINK_OK) fail_msg("write failed (%d): %s", r, err);
}

static const char *commit_ok(pf_sink_host *h, void *st, const char *checkpoint)
{
    char err[512] = "";
    const char *token = NULL;
    h->pending = checkpoint;
    pf_sink_result r = desc->commit(st, &token, err, sizeof err);
    h->pending = NULL;
    if (r != PF_SINK_OK) fail_msg("commit failed (%d): %s", r, err);
    assert_non_null(token);
    return token;
}

/* ---- SQL checks -------------------------------------------------------------- */

/* The single value of QUERY (parameters P, N of them) as a new string; NULL
 * for SQL NULL or no row. */
static char *q1(const char *query, int n, const char *const *p)
{
    PGresult *r = PQexecParams(db, query, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("check query failed: %s\n%s", PQresultErrorMessage(r), query);
    char *v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

static long qlong(const char *query, int n, const char *const *p)
{
    char *v = q1(query, n, p);
    assert_non_null(v);
    long x = strtol(v, NULL, 10);
    free(v);
    return x;
}

static void exec_sql(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("statement failed: %s\n%s", PQresultErrorMessage(r), sql);
    PQclear(r);
}

/* "schema"."table", quoted by libpq. */
static char *qtable(const char *schema, const char *table)
{
    char *a = PQescapeIdentifier(db, schema, strlen(schema));
    char *b = PQescapeIdentifier(db, table, strlen(table));
    char *out = malloc(strlen(a) + strlen(b) + 2);
    assert_non_null(out);
    sprintf(out, "%s.%s", a, b);
    PQfreemem(a);
    PQfreemem(b);
    return out;
}

static long count_rows(const char *schema, const char *table)
{
    char *t = qtable(schema, table);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t);
    free(t);
    return qlong(sql, 0, NULL);
}

/* 1 when the row for KEY holds exactly the JSON value JSON. */
static int holds(const char *schema, const char *table, const char *key, const char *json)
{
    char *t = qtable(schema, table);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE key = $1 AND record = $2::jsonb", t);
    free(t);
    const char *p[] = {key, json};
    return qlong(sql, 2, p) == 1;
}

/* ---- tests --------------------------------------------------------------------- */

static const char *const two_streams[] = {"alpha", "beta"};

static void test_batches_land_exactly(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "exact", "t_exact");
    set(&h, "batch_bytes", "4096"); /* many COPY pieces */
    void *st = open_ok(&h, two_streams, 2);
    /* JSON text that COPY must escape: backslashes, tabs and line breaks
     * (as JSON whitespace), \N look-alikes, quotes, non-ASCII. */
    const char *tricky[] = {
        "{\"a\":\"back\\\\slash \\\\N \\\\.\",\"b\":1}",
        "{\"t\":\t\"tab\"}",
        "{\n\"nl\":\r\n[1,2]}",
        "{\"q\":\"it's \\\"quoted\\\" \\t \\n\",\"u\":\"\xc3\xa9\xe2\x80\xa8\"}",
    };
    pf_sink_record b1[] = {
        rec("alpha", "k\\1", tricky[0]),
        rec("beta", "k\t2", tricky[1]),
        rec("alpha", "k\n3", tricky[2]),
        rec("beta", "\\N", tricky[3]),
    };
    write_ok(st, b1, 4);
    /* A second write in the same transaction: 3000 records, both streams. */
    static pf_sink_record big[3000];
    static char keys[3000][16], jsons[3000][64];
    for (int i = 0; i < 3000; i++) {
        snprintf(keys[i], sizeof keys[i], "n%d", i);
        snprintf(jsons[i], sizeof jsons[i], "{\"i\":%d,\"s\":\"x\\\\y\\tz\"}", i);
        big[i] = rec(i % 2 ? "alpha" : "beta", keys[i], jsons[i]);
    }
    write_ok(st, big, 3000);
    /* Nothing is visible before the commit. */
    assert_int_equal(count_rows("t_exact", "ppflow_alpha"), 0);
    const char *token = commit_ok(&h, st, NULL);
    assert_string_equal(token, "{\"seq\":1}");
    assert_int_equal(count_rows("t_exact", "ppflow_alpha"), 1502);
    assert_int_equal(count_rows("t_exact", "ppflow_beta"), 1502);
    for (int i = 0; i < 4; i++)
        assert_true(holds("t_exact", i % 2 ? "ppflow_beta" : "ppflow_alpha", b1[i].key, tricky[i]));
    for (int i = 0; i < 3000; i += 7)
        assert_true(holds("t_exact", i % 2 ? "ppflow_alpha" : "ppflow_beta", keys[i], jsons[i]));
    assert_int_equal(qlong("SELECT count(*) FROM t_exact.ppflow_alpha WHERE flow = 'exact' "
                           "AND ingested_at > now() - interval '1 hour'",
                           0, NULL),
                     1502);
    desc->close(st);
}

static void test_second_commit_of_same_keys_adds_nothing(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "again", "t_again");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("alpha", "a", "{\"v\":1}"), rec("alpha", "b", "{\"v\":2}"),
                          rec("alpha", "a", "{\"v\":3}")}; /* same key twice: first wins */
    write_ok(st, b, 3);
    commit_ok(&h, st, NULL);
    assert_int_equal(count_rows("t_again", "ppflow_alpha"), 2);
    char *t0 = q1("SELECT max(ingested_at)::text FROM t_again.ppflow_alpha", 0, NULL);
    pf_sink_record again[] = {rec("alpha", "a", "{\"v\":9}"), rec("alpha", "b", "{\"v\":2}")};
    write_ok(st, again, 2);
    const char *token = commit_ok(&h, st, NULL);
    assert_string_equal(token, "{\"seq\":2}");
    assert_int_equal(count_rows("t_again", "ppflow_alpha"), 2);
    assert_true(holds("t_again", "ppflow_alpha", "a", "{\"v\":1}"));
    char *t1 = q1("SELECT max(ingested_at)::text FROM t_again.ppflow_alpha", 0, NULL);
    assert_string_equal(t0, t1);
    free(t0);
    free(t1);
    desc->close(st);
}

static void test_checkpoint_is_stored_with_the_batch(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "cp", "t_cp");
    void *st = open_ok(&h, two_streams, 2);
    const char *cp = (const char *)1;
    char err[512];
    assert_int_equal(desc->stored_checkpoint(st, &cp, err, sizeof err), PF_SINK_OK);
    assert_null(cp); /* nothing stored yet */
    pf_sink_record b[] = {rec("beta", "x", "{\"x\":1}")};
    write_ok(st, b, 1);
    commit_ok(&h, st, "{\"version\":1,\"seq\":7,\"cursor\":\"2026-01-01T00:00:00Z\"}");
    /* A commit without a pending checkpoint keeps the stored one. */
    const char *token = commit_ok(&h, st, NULL);
    assert_string_equal(token, "{\"seq\":2}");
    desc->close(st);

    /* A new run (another connection) reads it back. */
    st = open_ok(&h, two_streams, 2);
    assert_int_equal(desc->stored_checkpoint(st, &cp, err, sizeof err), PF_SINK_OK);
    assert_non_null(cp);
    const char *p[] = {cp};
    assert_int_equal(qlong("SELECT ($1::jsonb = '{\"version\":1,\"seq\":7,"
                           "\"cursor\":\"2026-01-01T00:00:00Z\"}'::jsonb)::int",
                           1, p),
                     1);
    assert_int_equal(qlong("SELECT seq FROM t_cp.ppflow_state WHERE flow = 'cp'", 0, NULL), 2);
    /* Another flow in the same state table has its own row. */
    pf_sink_host h2;
    host_init(&h2, "cp-other", "t_cp");
    void *st2 = open_ok(&h2, two_streams, 2);
    assert_int_equal(desc->stored_checkpoint(st2, &cp, err, sizeof err), PF_SINK_OK);
    assert_null(cp);
    commit_ok(&h2, st2, "{\"seq\":1}");
    desc->close(st2);
    assert_int_equal(desc->stored_checkpoint(st, &cp, err, sizeof err), PF_SINK_OK);
    assert_non_null(strstr(cp, "\"seq\": 7"));
    desc->close(st);
}

/* When the checkpoint cannot be stored, the batch is not committed either. */
static void test_batch_and_checkpoint_commit_together(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "atomic", "t_atomic");
    set(&h, "statement_timeout", "1s");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record first[] = {rec("alpha", "a0", "{}")};
    write_ok(st, first, 1);
    commit_ok(&h, st, "{\"seq\":1}");
    char err[512] = "";
    const char *token;

    /* The state row is locked by another session: the batch's INSERT has
     * run, the checkpoint's times out (RETRY), and neither is committed. */
    pf_sink_record b[] = {rec("alpha", "a1", "{}"), rec("beta", "b1", "{}")};
    write_ok(st, b, 2);
    exec_sql("BEGIN; LOCK TABLE t_atomic.ppflow_state IN ACCESS EXCLUSIVE MODE");
    h.pending = "{\"seq\":2}";
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_RETRY);
    h.pending = NULL;
    assert_non_null(strstr(err, "storing the checkpoint"));
    exec_sql("ROLLBACK");
    desc->close(st);
    assert_int_equal(count_rows("t_atomic", "ppflow_alpha"), 1);
    assert_int_equal(count_rows("t_atomic", "ppflow_beta"), 0);

    /* A checkpoint PostgreSQL refuses (not JSON): ERROR, nothing committed. */
    st = open_ok(&h, two_streams, 2);
    write_ok(st, b, 2);
    h.pending = "{not json";
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_ERROR);
    h.pending = NULL;
    desc->close(st);
    assert_int_equal(count_rows("t_atomic", "ppflow_alpha"), 1);
    assert_int_equal(count_rows("t_atomic", "ppflow_beta"), 0);
    assert_int_equal(qlong("SELECT seq FROM t_atomic.ppflow_state", 0, NULL), 1);
}

static void test_close_without_commit_leaves_nothing(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "abort", "t_abort");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record first[] = {rec("alpha", "kept", "{}")};
    write_ok(st, first, 1);
    commit_ok(&h, st, "{\"seq\":1}");
    pf_sink_record b[] = {rec("alpha", "gone1", "{\"a\":1}"), rec("beta", "gone2", "{}")};
    write_ok(st, b, 2);
    h.pending = "{\"seq\":2}"; /* offered, but the commit never happens */
    desc->close(st);
    h.pending = NULL;
    assert_int_equal(count_rows("t_abort", "ppflow_alpha"), 1);
    assert_int_equal(count_rows("t_abort", "ppflow_beta"), 0);
    assert_int_equal(qlong("SELECT (checkpoint->>'seq')::int FROM t_abort.ppflow_state", 0, NULL),
                     1);
}

static void test_refused_record_poisons_the_transaction(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "refuse", "t_refuse");
    set(&h, "column.n", "integer $.n");
    void *st = open_ok(&h, two_streams, 2);
    /* jsonb cannot hold \u0000: the server refuses the record (ERROR). */
    pf_sink_record b[] = {rec("alpha", "ok", "{\"n\":1}"),
                          rec("alpha", "bad", "{\"s\":\"nul \\u0000 here\"}")};
    char err[512] = "";
    const char *token;
    pf_sink_result r = desc->write(st, b, 2, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_ERROR);
    assert_non_null(strstr(err, "SQLSTATE 22"));
    /* Every later call repeats the failure instead of committing half a batch. */
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "reopened"));
    desc->close(st);
    assert_int_equal(count_rows("t_refuse", "ppflow_alpha"), 0);

    /* A value the column type refuses fails at commit, also as ERROR. */
    st = open_ok(&h, two_streams, 2);
    pf_sink_record c[] = {rec("alpha", "ok", "{\"n\":1}"), rec("alpha", "nan", "{\"n\":\"x\"}")};
    write_ok(st, c, 2);
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "integer"));
    desc->close(st);
    assert_int_equal(count_rows("t_refuse", "ppflow_alpha"), 0);
}

static void test_hostile_names_are_quoted(void **unused)
{
    (void)unused;
    exec_sql("DROP TABLE IF EXISTS public.sentinel; CREATE TABLE public.sentinel (x int)");
    const char *schema = "s\"; DROP TABLE public.sentinel; --";
    const char *streams[] = {"we\"ird; DROP TABLE public.sentinel; --", "two words"};
    pf_sink_host h;
    host_init(&h, "hostile'; DROP TABLE public.sentinel; --", schema);
    set(&h, "table", "t \"{stream}\" ;");
    set(&h, "state_table", "st\"ate'; --");
    set(&h, "column.c\"ol; DROP TABLE public.sentinel; --", "text $.a");
    set(&h, "column.Mixed Case", "integer $.\"b c\"");
    void *st = open_ok(&h, streams, 2);
    pf_sink_record b[] = {rec(streams[0], "k'; --", "{\"a\":\"v'; DROP\",\"b c\":5}"),
                          rec(streams[1], "k2", "{\"a\":null}")};
    write_ok(st, b, 2);
    commit_ok(&h, st, "{\"seq\":1}");
    desc->close(st);
    /* The sentinel survived; the objects exist under their exact names. */
    assert_int_equal(qlong("SELECT count(*) FROM public.sentinel", 0, NULL), 0);
    const char *t1 = "t \"we\"ird; DROP TABLE public.sentinel; --\" ;";
    assert_int_equal(count_rows(schema, t1), 1);
    assert_int_equal(count_rows(schema, "t \"two words\" ;"), 1);
    char *qt = qtable(schema, t1);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT \"c\"\"ol; DROP TABLE public.sentinel; --\" || '|' || \"Mixed Case\" "
             "FROM %s WHERE key = 'k''; --'",
             qt);
    free(qt);
    char *v = q1(sql, 0, NULL);
    assert_string_equal(v, "v'; DROP|5");
    free(v);
    char *qs = qtable(schema, "st\"ate'; --");
    snprintf(sql, sizeof sql, "SELECT flow FROM %s", qs);
    free(qs);
    v = q1(sql, 0, NULL);
    assert_string_equal(v, "hostile'; DROP TABLE public.sentinel; --");
    free(v);
}

static void test_bad_columns_are_refused(void **unused)
{
    (void)unused;
    static const struct {
        const char *key, *value, *says;
    } bad[] = {
        {"column.c", "varchar(10) $.a", "not an accepted column type"},
        {"column.c", "text; DROP TABLE x; -- $.a", "not an accepted column type"},
        {"column.c", "integer", "needs a JSONPath"},
        {"column.c", "text $.a; DROP TABLE x", "is refused"},
        {"column.key", "text $.a", "default row layout"},
        {"column.", "text $.a", "empty"},
        {"column.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "text $.a",
         "at most 63 bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pf_sink_host h;
        host_init(&h, "badcol", "t_badcol");
        set(&h, bad[i].key, bad[i].value);
        char err[512] = "";
        assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_ERROR);
        if (!strstr(err, bad[i].says))
            fail_msg("%s: %s: expected '%s' in: %s", bad[i].key, bad[i].value, bad[i].says, err);
    }
    /* Nothing was created by the refused configurations. */
    assert_int_equal(qlong("SELECT count(*) FROM pg_namespace WHERE nspname = 't_badcol'", 0, NULL),
                     0);
    /* Type names are case-insensitive; double precision has a space. */
    pf_sink_host h;
    host_init(&h, "goodcol", "t_goodcol");
    set(&h, "column.d", "DOUBLE PRECISION  $.d ");
    void *st = open_ok(&h, two_streams, 2);
    desc->close(st);
}

static void test_extra_columns_are_filled_from_paths(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "cols", "t_cols");
    set(&h, "column.sender", "text $.sender");
    set(&h, "column.n", "bigint $.n");
    set(&h, "column.at", "timestamptz $.time");
    set(&h, "column.ok", "boolean $.flags.ok");
    set(&h, "column.ip", "inet $.ips[1]");
    set(&h, "column.obj", "jsonb $.flags");
    set(&h, "column.missing", "numeric $.nope");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {
        rec("alpha", "r1",
            "{\"sender\":\"a@b.c\",\"n\":12345678901,\"time\":\"2026-01-02T03:04:05Z\","
            "\"flags\":{\"ok\":true},\"ips\":[\"10.0.0.1\",\"192.0.2.7\"]}"),
    };
    write_ok(st, b, 1);
    commit_ok(&h, st, NULL);
    desc->close(st);
    char *v = q1("SELECT concat_ws('|', sender, n, at AT TIME ZONE 'UTC', ok, ip, obj, "
                 "coalesce(missing::text, 'null')) FROM t_cols.ppflow_alpha",
                 0, NULL);
    assert_string_equal(v, "a@b.c|12345678901|2026-01-02 03:04:05|t|192.0.2.7|{\"ok\": true}|null");
    free(v);
    /* A later flow adds a column: create: true adds it to the existing table. */
    host_init(&h, "cols", "t_cols");
    set(&h, "column.sender", "text $.sender");
    set(&h, "column.extra", "uuid $.id");
    st = open_ok(&h, two_streams, 2);
    desc->close(st);
    assert_int_equal(qlong("SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                           "'t_cols' AND table_name = 'ppflow_alpha' AND column_name = 'extra'",
                           0, NULL),
                     1);
}

static void test_conflict_update_replaces_changed_records(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "upd", "t_upd");
    set(&h, "on_conflict", "update");
    set(&h, "column.v", "integer $.v");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b1[] = {rec("alpha", "k", "{\"v\":1}"), rec("alpha", "same", "{\"v\":0}")};
    write_ok(st, b1, 2);
    commit_ok(&h, st, NULL);
    char *t0 = q1("SELECT ingested_at::text FROM t_upd.ppflow_alpha WHERE key = 'same'", 0, NULL);
    /* The same key twice in one batch: the last one wins. */
    pf_sink_record b2[] = {rec("alpha", "k", "{\"v\":2}"), rec("alpha", "k", "{\"v\":3}"),
                           rec("alpha", "same", "{\"v\":0}")};
    write_ok(st, b2, 3);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_int_equal(count_rows("t_upd", "ppflow_alpha"), 2);
    assert_true(holds("t_upd", "ppflow_alpha", "k", "{\"v\":3}"));
    assert_int_equal(qlong("SELECT v FROM t_upd.ppflow_alpha WHERE key = 'k'", 0, NULL), 3);
    /* An unchanged record is left alone (its ingested_at too). */
    char *t1 = q1("SELECT ingested_at::text FROM t_upd.ppflow_alpha WHERE key = 'same'", 0, NULL);
    assert_string_equal(t0, t1);
    free(t0);
    free(t1);

    char err[512];
    host_init(&h, "upd", "t_upd");
    set(&h, "on_conflict", "replace");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "nothing or update"));
}

static void test_records_without_key_use_a_content_hash(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "nokey", "t_nokey");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("alpha", NULL, "{\"b\":2, \"a\":1}"),
                          rec("alpha", NULL, "{\"c\":3}")};
    write_ok(st, b, 2);
    commit_ok(&h, st, NULL);
    /* The same content again (formatted differently) is the same row. */
    pf_sink_record again[] = {rec("alpha", NULL, "{\"a\":1,\"b\":2}")};
    write_ok(st, again, 1);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_int_equal(count_rows("t_nokey", "ppflow_alpha"), 2);
    assert_int_equal(qlong("SELECT count(*) FROM t_nokey.ppflow_alpha WHERE key = "
                           "encode(sha256(convert_to(record::text, 'UTF8')), 'hex')",
                           0, NULL),
                     2);
}

/* Objects missing with create: false: the destination cannot take a record
 * until someone creates them (FATAL, naming the object). */
static void test_missing_objects_without_create_are_fatal(void **unused)
{
    (void)unused;
    pf_sink_host h;
    char err[512];
    memset(&h, 0, sizeof h);
    h.flow = "nocreate";
    set(&h, "conninfo", getenv("PG_CONNINFO"));
    set(&h, "schema", "t_nocreate");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "schema t_nocreate does not exist"));
    exec_sql("CREATE SCHEMA t_nocreate");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "table t_nocreate.ppflow_alpha does not exist"));
    assert_non_null(strstr(err, "create: true"));
    /* A table without a unique key cannot take ON CONFLICT (key). */
    exec_sql("CREATE TABLE t_nocreate.ppflow_alpha (key text, record jsonb, ingested_at "
             "timestamptz, flow text)");
    exec_sql("CREATE TABLE t_nocreate.ppflow_beta (key text PRIMARY KEY, record jsonb, "
             "ingested_at timestamptz DEFAULT now(), flow text)");
    /* Every object's existence is checked before any table's layout. */
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "state table t_nocreate.ppflow_state does not exist"));
    exec_sql("CREATE TABLE t_nocreate.ppflow_state (flow text PRIMARY KEY, checkpoint jsonb, "
             "seq bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "no primary key or unique index on column key"));
    exec_sql("ALTER TABLE t_nocreate.ppflow_alpha ADD PRIMARY KEY (key)");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("beta", "k", "{}")};
    write_ok(st, b, 1);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_int_equal(count_rows("t_nocreate", "ppflow_beta"), 1);
    /* A configured column the table lacks. */
    set(&h, "column.sender", "text $.sender");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "has no column sender"));
}

static void test_lost_connection_is_retried_and_loses_nothing(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "lost", "t_lost");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("alpha", "k1", "{}"), rec("beta", "k2", "{}")};
    write_ok(st, b, 2);
    /* The server ends the sink's session (57P01, then the socket closes). */
    assert_int_equal(qlong("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'ppflow'",
                           0, NULL),
                     1);
    char err[512] = "";
    const char *token;
    h.pending = "{\"seq\":1}";
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_RETRY);
    h.pending = NULL;
    desc->close(st);
    assert_int_equal(count_rows("t_lost", "ppflow_alpha"), 0);
    assert_null(q1("SELECT checkpoint::text FROM t_lost.ppflow_state", 0, NULL));
    /* The host reopens and offers the batch again. */
    st = open_ok(&h, two_streams, 2);
    write_ok(st, b, 2);
    commit_ok(&h, st, "{\"seq\":1}");
    desc->close(st);
    assert_int_equal(count_rows("t_lost", "ppflow_alpha"), 1);
    assert_int_equal(count_rows("t_lost", "ppflow_beta"), 1);
}

static void test_lock_wait_times_out_and_dropped_table_is_fatal(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "timeout", "t_timeout");
    set(&h, "statement_timeout", "1s");
    void *st = open_ok(&h, two_streams, 2);
    /* A record without key is staged: the table itself is first touched by
     * the INSERT at commit. Another session holds the table: the INSERT
     * gives up after 1 s. */
    pf_sink_record b[] = {rec("alpha", NULL, "{}")};
    write_ok(st, b, 1);
    exec_sql("BEGIN; LOCK TABLE t_timeout.ppflow_alpha IN ACCESS EXCLUSIVE MODE");
    char err[512] = "";
    const char *token;
    time_t t0 = time(NULL);
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_RETRY);
    assert_true(time(NULL) - t0 < 10);
    /* lock_timeout (55P03) or statement_timeout (57014), whichever fires first */
    if (!strstr(err, "SQLSTATE 55P03") && !strstr(err, "SQLSTATE 57014"))
        fail_msg("not a timeout: %s", err);
    exec_sql("ROLLBACK");
    desc->close(st);
    assert_int_equal(count_rows("t_timeout", "ppflow_alpha"), 0);

    /* Records with keys are copied into the table by the write itself,
     * which gives up the same way. */
    st = open_ok(&h, two_streams, 2);
    exec_sql("BEGIN; LOCK TABLE t_timeout.ppflow_alpha IN ACCESS EXCLUSIVE MODE");
    pf_sink_record k[] = {rec("alpha", "k", "{}")};
    t0 = time(NULL);
    pf_sink_result r = desc->write(st, k, 1, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_RETRY);
    assert_true(time(NULL) - t0 < 10);
    if (!strstr(err, "SQLSTATE 55P03") && !strstr(err, "SQLSTATE 57014"))
        fail_msg("not a timeout: %s", err);
    exec_sql("ROLLBACK");
    desc->close(st);
    assert_int_equal(count_rows("t_timeout", "ppflow_alpha"), 0);

    /* A table dropped while the flow runs: FATAL (class 42: no record can
     * be written until someone changes the destination), with the server's
     * message; nothing committed, and every later call says the same. */
    st = open_ok(&h, two_streams, 2);
    exec_sql("DROP TABLE t_timeout.ppflow_beta");
    pf_sink_record c[] = {rec("alpha", "k", "{}"), rec("beta", "k", "{}")};
    h.pending = "{\"seq\":5}";
    r = desc->write(st, c, 2, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_FATAL);
    h.pending = NULL;
    assert_non_null(strstr(err, "SQLSTATE 42P01"));
    assert_non_null(strstr(err, "does not exist"));
    assert_int_equal(desc->commit(st, &token, err, sizeof err), PF_SINK_FATAL);
    desc->close(st);
    assert_int_equal(count_rows("t_timeout", "ppflow_alpha"), 0);
    assert_null(q1("SELECT checkpoint::text FROM t_timeout.ppflow_state", 0, NULL));
}

/* A batch goes straight into the table unless one of its keys is already
 * stored (a re-sweep, a re-run, a row written by someone else) or repeated in
 * the transaction: then that batch and the rest of the transaction are
 * staged and inserted with ON CONFLICT at commit. Either way the batch
 * commits, without error and without a duplicate, and the first version of
 * a key wins (on_conflict: nothing). */
static void test_stored_keys_fall_back_to_on_conflict(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "fallback", "t_fallback");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b1[] = {rec("alpha", "a", "{\"v\":1}"), rec("alpha", "b", "{\"v\":1}")};
    write_ok(st, b1, 2);
    assert_non_null(strstr(h.log, "batch copied into the table"));
    assert_null(strstr(h.log, "staging"));
    commit_ok(&h, st, "{\"seq\":1}");
    /* A row written by another program with a key the flow delivers later. */
    exec_sql("INSERT INTO t_fallback.ppflow_alpha (key, record, flow) VALUES "
             "('outside', '{\"by\":\"someone else\"}', 'other')");
    h.log[0] = '\0';
    /* Next transaction: new keys, a stored one, and one repeated later. */
    pf_sink_record b2[] = {rec("alpha", "c", "{\"v\":2}"), rec("alpha", "a", "{\"v\":2}"),
                           rec("alpha", "outside", "{\"v\":2}")};
    write_ok(st, b2, 3);
    assert_non_null(strstr(h.log, "staging"));
    /* Nothing stored collides here, but "c" was staged above: this batch is
     * staged too, so the first "c" still wins. */
    pf_sink_record b3[] = {rec("alpha", "d", "{\"v\":3}"), rec("alpha", "c", "{\"v\":3}")};
    write_ok(st, b3, 2);
    const char *token = commit_ok(&h, st, "{\"seq\":2}");
    assert_string_equal(token, "{\"seq\":2}");
    assert_int_equal(count_rows("t_fallback", "ppflow_alpha"), 5);
    assert_true(holds("t_fallback", "ppflow_alpha", "a", "{\"v\":1}"));
    assert_true(holds("t_fallback", "ppflow_alpha", "b", "{\"v\":1}"));
    assert_true(holds("t_fallback", "ppflow_alpha", "c", "{\"v\":2}"));
    assert_true(holds("t_fallback", "ppflow_alpha", "d", "{\"v\":3}"));
    assert_true(holds("t_fallback", "ppflow_alpha", "outside", "{\"by\":\"someone else\"}"));
    /* A key repeated across two direct batches of one transaction. */
    h.log[0] = '\0';
    pf_sink_record b4[] = {rec("alpha", "e", "{\"v\":4}")};
    pf_sink_record b5[] = {rec("alpha", "f", "{\"v\":5}"), rec("alpha", "e", "{\"v\":5}")};
    write_ok(st, b4, 1);
    write_ok(st, b5, 2);
    commit_ok(&h, st, NULL);
    assert_non_null(strstr(h.log, "batch copied into the table"));
    assert_non_null(strstr(h.log, "staging"));
    assert_int_equal(count_rows("t_fallback", "ppflow_alpha"), 7);
    assert_true(holds("t_fallback", "ppflow_alpha", "e", "{\"v\":4}"));
    assert_true(holds("t_fallback", "ppflow_alpha", "f", "{\"v\":5}"));
    /* The whole first batch again (a re-run): nothing added, nothing changed. */
    write_ok(st, b1, 2);
    write_ok(st, b2, 3);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_int_equal(count_rows("t_fallback", "ppflow_alpha"), 7);
    assert_true(holds("t_fallback", "ppflow_alpha", "a", "{\"v\":1}"));
    assert_int_equal(qlong("SELECT seq FROM t_fallback.ppflow_state", 0, NULL), 4);
}

/* on_conflict: update without column.* columns: a batch copied straight in,
 * then the same keys again (in the same and in a later transaction): the
 * last version wins. */
static void test_update_after_direct_load_keeps_the_last_version(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "updd", "t_updd");
    set(&h, "on_conflict", "update");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b1[] = {rec("beta", "k", "{\"v\":1}"), rec("beta", "j", "{\"v\":1}")};
    pf_sink_record b2[] = {rec("beta", "k", "{\"v\":2}")};
    write_ok(st, b1, 2);
    write_ok(st, b2, 1);
    commit_ok(&h, st, NULL);
    assert_int_equal(count_rows("t_updd", "ppflow_beta"), 2);
    assert_true(holds("t_updd", "ppflow_beta", "k", "{\"v\":2}"));
    pf_sink_record b3[] = {rec("beta", "j", "{\"v\":3}"), rec("beta", "n", "{\"v\":3}"),
                           rec("beta", "j", "{\"v\":4}")};
    write_ok(st, b3, 3);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_int_equal(count_rows("t_updd", "ppflow_beta"), 3);
    assert_true(holds("t_updd", "ppflow_beta", "k", "{\"v\":2}"));
    assert_true(holds("t_updd", "ppflow_beta", "j", "{\"v\":4}"));
    assert_true(holds("t_updd", "ppflow_beta", "n", "{\"v\":3}"));
}

/* A table with row-level security for the sink's role refuses COPY: its
 * rows are staged and inserted at commit, as the policy allows. */
static void test_row_level_security_is_staged(void **unused)
{
    (void)unused;
    const char *pwconn = getenv("PG_CONNINFO_PASSWORD");
    assert_non_null(pwconn);
    pf_sink_host h;
    host_init(&h, "rls", "t_rls");
    void *st = open_ok(&h, two_streams, 2); /* creates the tables */
    desc->close(st);
    exec_sql("GRANT USAGE ON SCHEMA t_rls TO ppflow_pw; "
             "GRANT SELECT, INSERT, UPDATE ON t_rls.ppflow_alpha, t_rls.ppflow_beta, "
             "t_rls.ppflow_state TO ppflow_pw; "
             "ALTER TABLE t_rls.ppflow_alpha ENABLE ROW LEVEL SECURITY; "
             "CREATE POLICY only_rls ON t_rls.ppflow_alpha USING (flow = 'rls') "
             "WITH CHECK (flow = 'rls')");
    h.vals[0] = pwconn;
    h.vals[2] = "false";
    st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("alpha", "a", "{}"), rec("beta", "b", "{}")};
    write_ok(st, b, 2);
    assert_non_null(strstr(h.log, "does not accept COPY"));
    write_ok(st, b, 2);
    commit_ok(&h, st, "{\"seq\":1}");
    desc->close(st);
    assert_int_equal(count_rows("t_rls", "ppflow_alpha"), 1);
    assert_int_equal(count_rows("t_rls", "ppflow_beta"), 1);
}

static void test_conninfo_never_reaches_messages(void **unused)
{
    (void)unused;
    const char *pw = getenv("PG_PASSWORD");
    const char *good = getenv("PG_CONNINFO_PASSWORD");
    assert_non_null(pw);
    assert_non_null(good);
    char conn[512], wrongpw[128], err[512];
    /* Wrong password: FATAL (SQLSTATE 28P01: only a changed conninfo or
     * role helps), naming database, server and user but not the password. */
    snprintf(wrongpw, sizeof wrongpw, "%s-wrong", pw);
    snprintf(conn, sizeof conn, "%.*spassword=%s", (int)(strstr(good, "password=") - good), good,
             wrongpw);
    pf_sink_host h;
    memset(&h, 0, sizeof h);
    h.flow = "secret";
    set(&h, "conninfo", conn);
    set(&h, "create", "true");
    memset(err, 0, sizeof err);
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "cannot connect"));
    assert_non_null(strstr(err, "database ppflow at 127.0.0.1:"));
    assert_non_null(strstr(err, "as user ppflow_pw"));
    assert_non_null(strstr(err, "SQLSTATE 28P01"));
    assert_null(strstr(err, wrongpw));
    assert_null(strstr(err, pw));
    /* A malformed conninfo: libpq's message would quote it; it is withheld. */
    snprintf(conn, sizeof conn, "host=127.0.0.1 password=%s nonsense", pw);
    h.vals[0] = conn;
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_ERROR);
    assert_null(strstr(err, pw));
    assert_non_null(strstr(err, "withheld"));
    snprintf(conn, sizeof conn, "host=127.0.0.1 password=%s bogus_option=1", pw);
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_ERROR);
    assert_null(strstr(err, pw));
    /* The right password works; nothing logged carries it. */
    h.vals[0] = good;
    set(&h, "schema", "t_secret");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("alpha", "k", "{}")};
    write_ok(st, b, 1);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_null(strstr(h.log, pw));
    assert_non_null(strstr(h.log, "created table t_secret.ppflow_alpha"));
    assert_int_equal(count_rows("t_secret", "ppflow_alpha"), 1);
}

static void test_unknown_stream_is_refused(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "unknown", "t_unknown");
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("gamma", "k", "{}")};
    char err[512];
    assert_int_equal(desc->write(st, b, 1, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "unknown stream 'gamma'"));
    desc->close(st);
}

/* ---- lifecycle: the advisory lock ------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The flow's advisory lock key (docs/sinks/postgres.md) as SQL text. */
static void lock_key_sql(char *out, size_t n, const char *schema, const char *flow)
{
    snprintf(out, n,
             "hashtextextended('ppflow-flow-lock:' || '%s' || '.' || 'ppflow_state' || ':' || "
             "'%s', 0)",
             schema, flow);
}

/* How many sessions hold the flow's advisory lock. */
static long lock_holders(const char *schema, const char *flow)
{
    char key[256], sql[1024];
    lock_key_sql(key, sizeof key, schema, flow);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_locks l, (SELECT %s AS k) x WHERE l.locktype = 'advisory' "
             "AND l.granted AND l.objsubid = 1 AND l.classid::bigint = (x.k >> 32) & 4294967295 "
             "AND l.objid::bigint = x.k & 4294967295",
             key);
    return qlong(sql, 0, NULL);
}

static PGconn *connect_test(void)
{
    const char *k[] = {"dbname", "application_name", NULL};
    const char *v[] = {getenv("PG_CONNINFO"), "ppflow-test", NULL};
    PGconn *c = PQconnectdbParams(k, v, 1);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("cannot connect: %s", PQerrorMessage(c));
    return c;
}

/* Open, write, commit, close, and open again at once, 25 times: the sink
 * releases its lock when it closes, so its own earlier session never makes
 * the next open busy, and nothing holds the lock between two runs. */
static void test_reopen_right_after_close_is_never_busy(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "reopen", "t_reopen");
    for (int i = 0; i < 25; i++) {
        void *st = open_ok(&h, two_streams, 2);
        assert_int_equal(lock_holders("t_reopen", "reopen"), 1);
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        pf_sink_record b[] = {rec("alpha", key, "{}")};
        write_ok(st, b, 1);
        commit_ok(&h, st, NULL);
        desc->close(st);
        /* Released by close itself, not when the server gets round to
         * ending the session. */
        assert_int_equal(lock_holders("t_reopen", "reopen"), 0);
    }
    /* Closing in the middle of a transaction (and after a failure that
     * aborted it) rolls back and releases the lock too. */
    void *st = open_ok(&h, two_streams, 2);
    pf_sink_record b[] = {rec("alpha", "open", "{}")};
    write_ok(st, b, 1);
    desc->close(st);
    assert_int_equal(lock_holders("t_reopen", "reopen"), 0);
    st = open_ok(&h, two_streams, 2);
    pf_sink_record bad[] = {rec("alpha", "nul", "{\"s\":\"\\u0000\"}")};
    char err[512];
    const char *token;
    pf_sink_result r = desc->write(st, bad, 1, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_ERROR);
    desc->close(st);
    assert_int_equal(lock_holders("t_reopen", "reopen"), 0);
    assert_int_equal(count_rows("t_reopen", "ppflow_alpha"), 25);
    assert_null(strstr(h.log, "waiting up to"));
}

/* A session that held the lock and went away without releasing it (a run
 * that crashed or was killed, a connection cut): the server releases the
 * lock only when it has ended that session, which it does asynchronously.
 * Here the session's backend is still busy with a statement (150 ms) when
 * its client disconnects, so it notices only afterwards. The next open
 * waits for that instead of answering busy. */
static void test_lock_of_a_vanished_session_is_waited_for(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "vanish", "t_vanish");
    char key[256], sql[512];
    lock_key_sql(key, sizeof key, "t_vanish", "vanish");
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%s)", key);
    for (int i = 0; i < 25; i++) {
        PGconn *c = connect_test();
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
        PQclear(r);
        assert_int_equal(PQsendQuery(c, "SELECT pg_sleep(0.15)"), 1);
        PQfinish(c); /* no unlock */
        void *st = open_ok(&h, two_streams, 2);
        desc->close(st);
    }
}

/* Another session really holds the lock: open waits lock_wait, then answers
 * BUSY naming the holder; when the holder lets go during the wait, open
 * takes the lock and succeeds. */
static void test_lock_held_elsewhere_is_busy_after_lock_wait(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "held", "t_held");
    set(&h, "lock_wait", "400ms");
    char key[256], sql[512];
    lock_key_sql(key, sizeof key, "t_held", "held");
    PGconn *holder = connect_test();
    snprintf(sql, sizeof sql, "SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", key);
    PGresult *r = PQexec(holder, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 1), "t");
    char says[64], waits[64];
    snprintf(says, sizeof says, "held by server process %s)", PQgetvalue(r, 0, 0));
    snprintf(waits, sizeof waits, "(server process %s); waiting up to 400 ms", PQgetvalue(r, 0, 0));
    PQclear(r);

    char err[512] = "";
    int64_t t0 = mono_ms();
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_BUSY);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 400);
    assert_true(took < 5000);
    assert_non_null(strstr(err, "flow held is being run by another ppflow process (PostgreSQL "
                                "advisory lock"));
    assert_non_null(strstr(err, says));
    assert_non_null(strstr(h.log, waits));
    /* Nothing was created by the busy open. */
    assert_int_equal(qlong("SELECT count(*) FROM pg_namespace WHERE nspname = 't_held'", 0, NULL),
                     0);
    /* lock_wait: 0s answers at once. */
    set(&h, "lock_wait", "0s");
    t0 = mono_ms();
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_BUSY);
    assert_true(mono_ms() - t0 < 300);

    /* The holder lets go after 700 ms, while open waits (up to 10 s). */
    set(&h, "lock_wait", "10s");
    snprintf(sql, sizeof sql, "SELECT pg_sleep(0.7); SELECT pg_advisory_unlock(%s)", key);
    assert_int_equal(PQsendQuery(holder, sql), 1);
    t0 = mono_ms();
    void *st = open_ok(&h, two_streams, 2);
    took = mono_ms() - t0;
    assert_true(took >= 500);
    assert_true(took < 10000);
    while ((r = PQgetResult(holder)))
        PQclear(r);
    PQfinish(holder);
    assert_int_equal(lock_holders("t_held", "held"), 1);
    desc->close(st);
}

/* ---- failure classes --------------------------------------------------------------- */

/* PG_CONNINFO with EXTRA appended (a later keyword wins). */
static const char *conninfo_with(char *buf, size_t n, const char *extra)
{
    snprintf(buf, n, "%s %s", getenv("PG_CONNINFO"), extra);
    return buf;
}

/* A wrong login or an unknown database: FATAL after one attempt, the message
 * naming database, server and user. An unreachable server: RETRY. */
static void test_login_and_database_problems_are_fatal(void **unused)
{
    (void)unused;
    static const struct {
        const char *extra, *sqlstate, *names;
    } cases[] = {
        {"dbname=ppflow_missing_db", "SQLSTATE 3D000", "database ppflow_missing_db at 127.0.0.1:"},
        {"user=ppflow_no_such_role", "SQLSTATE 28000", "as user ppflow_no_such_role"},
        /* The server asks for a password the conninfo does not give. */
        {"user=ppflow_pw", "no password supplied", "as user ppflow_pw"},
    };
    char conn[512], err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pf_sink_host h;
        host_init(&h, "login", "t_login");
        h.vals[0] = conninfo_with(conn, sizeof conn, cases[i].extra);
        memset(err, 0, sizeof err);
        int64_t t0 = mono_ms();
        pf_sink_result r = open_fails(&h, two_streams, 2, err, sizeof err);
        if (r != PF_SINK_FATAL) fail_msg("%s: %d: %s", cases[i].extra, r, err);
        assert_true(mono_ms() - t0 < 5000);
        assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
        if (!strstr(err, cases[i].sqlstate) || !strstr(err, cases[i].names))
            fail_msg("%s: expected '%s' and '%s' in: %s", cases[i].extra, cases[i].sqlstate,
                     cases[i].names, err);
        assert_null(strstr(err, "LOCATION"));
    }
    /* Nothing listens on port 1: transient (RETRY). */
    pf_sink_host h;
    host_init(&h, "login", "t_login");
    h.vals[0] = conninfo_with(conn, sizeof conn, "port=1");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_RETRY);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL database ppflow at 127.0.0.1:1 "));
    assert_null(strstr(err, "SQLSTATE"));
}

/* During write and commit: a destination problem (class 42: a revoked
 * privilege, a dropped column) is FATAL with the server's message; a record
 * a constraint refuses (classes 22, 23) is ERROR, so that the host isolates
 * exactly that record. */
static void test_write_failures_are_classified(void **unused)
{
    (void)unused;
    const char *pwconn = getenv("PG_CONNINFO_PASSWORD");
    assert_non_null(pwconn);
    pf_sink_host h;
    host_init(&h, "classes", "t_classes");
    void *st = open_ok(&h, two_streams, 2);
    desc->close(st);
    exec_sql("GRANT USAGE ON SCHEMA t_classes TO ppflow_pw; "
             "GRANT SELECT, INSERT, UPDATE ON t_classes.ppflow_alpha, t_classes.ppflow_beta, "
             "t_classes.ppflow_state TO ppflow_pw");
    char err[512];
    const char *token;

    /* A privilege revoked while the flow runs. */
    pf_sink_host pw;
    host_init(&pw, "classes", "t_classes");
    pw.vals[0] = pwconn;
    pw.vals[2] = "false";
    st = open_ok(&pw, two_streams, 2);
    exec_sql("REVOKE INSERT ON t_classes.ppflow_alpha FROM ppflow_pw");
    pf_sink_record a[] = {rec("alpha", "a1", "{}")};
    pf_sink_result r = desc->write(st, a, 1, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_FATAL);
    assert_non_null(strstr(err, "permission denied"));
    assert_non_null(strstr(err, "SQLSTATE 42501"));
    desc->close(st);
    exec_sql("GRANT INSERT ON t_classes.ppflow_alpha TO ppflow_pw");

    /* A CHECK constraint refusing a record: ERROR, in the direct COPY and
     * through the staging table alike. */
    exec_sql("ALTER TABLE t_classes.ppflow_alpha ADD CONSTRAINT small "
             "CHECK ((record->>'n')::int < 10)");
    st = open_ok(&h, two_streams, 2);
    pf_sink_record big[] = {rec("alpha", "ok", "{\"n\":1}"), rec("alpha", "big", "{\"n\":99}")};
    r = desc->write(st, big, 2, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_ERROR);
    assert_non_null(strstr(err, "SQLSTATE 23514"));
    desc->close(st);
    set(&h, "column.n", "integer $.n");
    st = open_ok(&h, two_streams, 2);
    r = desc->write(st, big, 2, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_ERROR);
    assert_non_null(strstr(err, "SQLSTATE 23514"));
    desc->close(st);
    /* NOT NULL on a column.* column the record lacks: ERROR. */
    exec_sql("ALTER TABLE t_classes.ppflow_alpha ALTER COLUMN n SET NOT NULL");
    st = open_ok(&h, two_streams, 2);
    pf_sink_record nonum[] = {rec("alpha", "none", "{\"x\":1}")};
    r = desc->write(st, nonum, 1, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_ERROR);
    assert_non_null(strstr(err, "SQLSTATE 23502"));
    /* The column dropped while the flow runs: FATAL (42703). */
    desc->close(st);
    st = open_ok(&h, two_streams, 2);
    exec_sql("ALTER TABLE t_classes.ppflow_alpha DROP COLUMN n");
    pf_sink_record one[] = {rec("alpha", "one", "{\"n\":1}")};
    r = desc->write(st, one, 1, err, sizeof err);
    if (r == PF_SINK_OK) r = desc->commit(st, &token, err, sizeof err);
    assert_int_equal(r, PF_SINK_FATAL);
    assert_non_null(strstr(err, "SQLSTATE 42703"));
    desc->close(st);
    assert_int_equal(count_rows("t_classes", "ppflow_alpha"), 0);
}

/* Before anything is fetched the sink proves this role can take records:
 * FATAL naming the object and the privilege it lacks, and nothing created. */
static void test_access_is_proven_at_open(void **unused)
{
    (void)unused;
    const char *pwconn = getenv("PG_CONNINFO_PASSWORD");
    assert_non_null(pwconn);
    pf_sink_host su;
    host_init(&su, "access", "t_access");
    void *st = open_ok(&su, two_streams, 2); /* the superuser creates everything */
    desc->close(st);
    pf_sink_host h;
    host_init(&h, "access", "t_access");
    h.vals[0] = pwconn;
    h.vals[2] = "false";
    char err[512];
    static const struct {
        const char *grant, *says;
    } steps[] = {
        {NULL, "role ppflow_pw may not use schema t_access (missing privilege USAGE on schema "
               "t_access)"},
        {"GRANT USAGE ON SCHEMA t_access TO ppflow_pw",
         "role ppflow_pw lacks privilege SELECT, INSERT on table t_access.ppflow_alpha"},
        {"GRANT SELECT ON t_access.ppflow_alpha, t_access.ppflow_beta TO ppflow_pw",
         "role ppflow_pw lacks privilege INSERT on table t_access.ppflow_alpha"},
        {"GRANT INSERT ON t_access.ppflow_alpha, t_access.ppflow_beta TO ppflow_pw",
         "role ppflow_pw lacks privilege SELECT, INSERT, UPDATE on state table "
         "t_access.ppflow_state"},
        {"GRANT SELECT, INSERT ON t_access.ppflow_state TO ppflow_pw",
         "role ppflow_pw lacks privilege UPDATE on state table t_access.ppflow_state, which the "
         "sink needs (GRANT UPDATE ON \"t_access\".\"ppflow_state\" TO \"ppflow_pw\")"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i].grant) exec_sql(steps[i].grant);
        pf_sink_result r = open_fails(&h, two_streams, 2, err, sizeof err);
        if (r != PF_SINK_FATAL || !strstr(err, steps[i].says))
            fail_msg("step %zu: %d: expected '%s' in: %s", i, r, steps[i].says, err);
    }
    exec_sql("GRANT UPDATE ON t_access.ppflow_state TO ppflow_pw");
    st = open_ok(&h, two_streams, 2);
    desc->close(st);
    /* Recording a record identity on an empty table takes its owner. */
    exec_sql("COMMENT ON COLUMN t_access.ppflow_alpha.key IS NULL");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "recording the record identity of table t_access.ppflow_alpha"));
    assert_non_null(strstr(err, "must be owner"));
    st = open_ok(&su, two_streams, 2); /* the owner records it */
    desc->close(st);
    st = open_ok(&h, two_streams, 2);
    desc->close(st);
    /* on_conflict: update needs UPDATE on the target tables too. */
    set(&h, "on_conflict", "update");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "lacks privilege UPDATE on table t_access.ppflow_alpha"));
    set(&h, "on_conflict", "nothing");

    /* A missing table, with create: true, needs CREATE on the schema. */
    exec_sql("DROP TABLE t_access.ppflow_beta");
    h.vals[2] = "true";
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "table t_access.ppflow_beta does not exist and role ppflow_pw "
                                "may not create it (missing privilege CREATE on schema t_access)"));
    /* A missing schema needs CREATE on the database. */
    exec_sql("REVOKE CREATE ON DATABASE ppflow FROM ppflow_pw");
    set(&h, "schema", "t_access_new");
    pf_sink_result r = open_fails(&h, two_streams, 2, err, sizeof err);
    exec_sql("GRANT CREATE ON DATABASE ppflow TO ppflow_pw");
    assert_int_equal(r, PF_SINK_FATAL);
    assert_non_null(strstr(err, "schema t_access_new does not exist and role ppflow_pw may not "
                                "create it (missing privilege CREATE on database ppflow)"));
    /* The staging tables need TEMPORARY on the database. */
    exec_sql("REVOKE TEMPORARY ON DATABASE ppflow FROM PUBLIC");
    r = open_fails(&h, two_streams, 2, err, sizeof err);
    exec_sql("GRANT TEMPORARY ON DATABASE ppflow TO PUBLIC");
    assert_int_equal(r, PF_SINK_FATAL);
    assert_non_null(strstr(err, "missing privilege TEMPORARY on database ppflow"));
    /* None of the refused opens created anything. */
    assert_int_equal(
        qlong("SELECT count(*) FROM pg_namespace WHERE nspname = 't_access_new'", 0, NULL), 0);
    assert_int_equal(qlong("SELECT count(*) FROM pg_tables WHERE schemaname = 't_access' AND "
                           "tablename = 'ppflow_beta'",
                           0, NULL),
                     0);
}

/* ---- record identity ------------------------------------------------------------- */

/* The identity recorded on table SCHEMA.TABLE (its key column's comment). */
static char *stored_identity(const char *schema, const char *table)
{
    char *t = qtable(schema, table);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT col_description('%s'::regclass, 1)", t);
    free(t);
    return q1(sql, 0, NULL);
}

static void assert_identity(const char *schema, const char *table, const char *want)
{
    char *got = stored_identity(schema, table);
    char full[256];
    snprintf(full, sizeof full, "ppflow record identity: %s", want);
    if (!got || strcmp(got, full) != 0)
        fail_msg("%s.%s: identity '%s', expected '%s'", schema, table, got ? got : "(none)", full);
    free(got);
}

/* The statement the sink logged after PREFIX (up to "COMMIT;"), for running. */
static char *logged_statement(const char *log, const char *prefix)
{
    const char *a = strstr(log, prefix);
    if (!a) return NULL;
    a += strlen(prefix);
    const char *b = strstr(a, "COMMIT;");
    if (!b) return NULL;
    return strndup(a, (size_t)(b - a) + strlen("COMMIT;"));
}

static void test_record_identity_is_stored_and_checked(void **unused)
{
    (void)unused;
    pf_sink_host h;
    host_init(&h, "ident", "t_ident");
    set_identity(&h, "alpha", "$.id | sha256");
    set_identity(&h, "beta", "$.GUID | sha256");
    void *st = open_ok(&h, two_streams, 2);
    assert_identity("t_ident", "ppflow_alpha", "$.id | sha256");
    assert_identity("t_ident", "ppflow_beta", "$.GUID | sha256");
    pf_sink_record b[] = {rec("alpha", "i1", "{\"id\":\"i1\",\"GUID\":\"g\"}"),
                          rec("alpha", "i2", "{\"id\":\"i2\",\"GUID\":\"g\"}")};
    write_ok(st, b, 2);
    commit_ok(&h, st, "{\"seq\":1}");
    desc->close(st);
    /* The same identities: fine. */
    st = open_ok(&h, two_streams, 2);
    desc->close(st);

    /* An empty table takes a new identity. */
    set_identity(&h, "beta", "$.id | sha256");
    h.log[0] = '\0';
    st = open_ok(&h, two_streams, 2);
    desc->close(st);
    assert_identity("t_ident", "ppflow_beta", "$.id | sha256");
    assert_non_null(strstr(h.log, "table t_ident.ppflow_beta: records identified by '$.id | "
                                  "sha256' (recorded; before: '$.GUID | sha256')"));

    /* A table holding rows keyed by another definition: FATAL, saying what
     * is wrong and how to migrate; nothing changes. */
    set_identity(&h, "alpha", "$.GUID | sha256");
    char err[512] = "";
    h.log[0] = '\0';
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "table t_ident.ppflow_alpha holds rows keyed by an earlier "
                                "record identity ('$.id | sha256'), not by '$.GUID | sha256'"));
    assert_non_null(strstr(err, "may have been dropped"));
    assert_non_null(strstr(err, "ALTER TABLE \"t_ident\".\"ppflow_alpha\" RENAME TO "
                                "\"ppflow_alpha_old\""));
    assert_identity("t_ident", "ppflow_alpha", "$.id | sha256");
    assert_int_equal(count_rows("t_ident", "ppflow_alpha"), 2);

    /* A table of the old layout (no identity recorded) holding rows keyed
     * by something else than $.id: FATAL. */
    set_identity(&h, "alpha", "$.id | sha256");
    exec_sql("COMMENT ON COLUMN t_ident.ppflow_alpha.key IS NULL");
    exec_sql("UPDATE t_ident.ppflow_alpha SET key = 'guid:' || key");
    h.log[0] = '\0';
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "earlier record identity (none recorded)"));
    assert_non_null(strstr(err, "RENAME TO"));
    assert_null(stored_identity("t_ident", "ppflow_alpha"));
    /* The re-key in place the sink suggests works: it runs as logged, and
     * the table is accepted afterwards, keyed by $.id. */
    char *rekey = logged_statement(h.log, "or to re-key it in place: ");
    assert_non_null(rekey);
    assert_non_null(strstr(rekey, "record->>'id'"));
    exec_sql(rekey);
    free(rekey);
    assert_identity("t_ident", "ppflow_alpha", "$.id | sha256");
    assert_int_equal(
        qlong("SELECT count(*) FROM t_ident.ppflow_alpha WHERE key = record->>'id'", 0, NULL), 2);
    st = open_ok(&h, two_streams, 2);
    desc->close(st);

    /* The other way the sink names: rename, then run again, which creates
     * the table anew with the new identity. */
    set_identity(&h, "alpha", "$.uuid | sha256");
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    exec_sql("ALTER TABLE t_ident.ppflow_alpha RENAME TO ppflow_alpha_old");
    st = open_ok(&h, two_streams, 2);
    desc->close(st);
    assert_identity("t_ident", "ppflow_alpha", "$.uuid | sha256");
    assert_int_equal(count_rows("t_ident", "ppflow_alpha"), 0);
    assert_int_equal(count_rows("t_ident", "ppflow_alpha_old"), 2);

    /* A host that does not tell identities (older than stream_identity):
     * nothing is checked or recorded; records without a key still get the
     * content hash. */
    st = NULL;
    set_identity(&h, "alpha", "$.other | sha256");
    assert_int_equal(desc->open(&h, &old_api, two_streams, 2, NULL, &st, err, sizeof err),
                     PF_SINK_OK);
    pf_sink_record nokey[] = {rec("alpha", NULL, "{\"a\":1}")};
    write_ok(st, nokey, 1);
    commit_ok(&h, st, NULL);
    desc->close(st);
    assert_identity("t_ident", "ppflow_alpha", "$.uuid | sha256");

    /* Streams sharing a table with different identities: both recorded. */
    pf_sink_host s2;
    host_init(&s2, "ident-shared", "t_ident");
    set(&s2, "table", "shared");
    set_identity(&s2, "alpha", "$.id | sha256");
    set_identity(&s2, "beta", "$.GUID | sha256");
    st = open_ok(&s2, two_streams, 2);
    desc->close(st);
    assert_identity("t_ident", "shared", "alpha: $.id | sha256; beta: $.GUID | sha256");
    st = open_ok(&s2, two_streams, 2);
    desc->close(st);
}

/* An old-layout table (t_adopt.TABLE, no identity recorded) holding ROWS,
 * a VALUES list of (key, record). */
static void old_table(const char *table, const char *rows)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "CREATE TABLE t_adopt.%s (key text PRIMARY KEY, record jsonb NOT NULL, ingested_at "
             "timestamptz NOT NULL DEFAULT now(), flow text NOT NULL); INSERT INTO t_adopt.%s "
             "(key, record, flow) SELECT k, r::jsonb, 'old' FROM (VALUES %s) AS v (k, r)",
             table, table, rows);
    exec_sql(sql);
}

static void test_old_layout_already_keyed_by_identity_is_adopted(void **unused)
{
    (void)unused;
    exec_sql("CREATE SCHEMA t_adopt");
    /* Keyed by $.id (a string or a number) and, for records without an id
     * string or number, by content hash: exactly what "$.id | sha256"
     * gives, so the table is adopted. */
    old_table("ppflow_alpha", "('c1', '{\"id\":\"c1\",\"GUID\":\"g1\"}'), "
                              "('c2', '{\"id\":\"c2\",\"GUID\":\"g1\"}'), ('42', '{\"id\":42}'), "
                              "('sha256:0f1e', '{\"x\":1}'), ('sha256:aa', '{\"id\":null}'), "
                              "('sha256:bb', '{\"id\":{\"a\":1}}')");
    /* Keyed by GUID: refused at the first row. */
    old_table("ppflow_beta", "('g1', '{\"id\":\"b1\",\"GUID\":\"g1\"}'), "
                             "('g2', '{\"id\":\"b2\",\"GUID\":\"g2\"}')");
    pf_sink_host h;
    host_init(&h, "adopt", "t_adopt");
    char err[512] = "";
    assert_int_equal(open_fails(&h, two_streams, 2, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "table t_adopt.ppflow_beta holds rows keyed by an earlier record "
                                "identity (none recorded), not by '$.id | sha256'"));
    assert_non_null(strstr(h.log, "2 table t_adopt.ppflow_alpha: adopted: it had no record "
                                  "identity recorded, and every row is already keyed by '$.id | "
                                  "sha256', which is now recorded"));
    assert_identity("t_adopt", "ppflow_alpha", "$.id | sha256");
    assert_null(stored_identity("t_adopt", "ppflow_beta"));
    assert_int_equal(count_rows("t_adopt", "ppflow_beta"), 2);

    /* With beta out of the way, the adopted table is used: a record it
     * holds already is not stored twice, a new one is added. */
    exec_sql("ALTER TABLE t_adopt.ppflow_beta RENAME TO ppflow_beta_old");
    h.log[0] = '\0';
    void *st = open_ok(&h, two_streams, 2);
    assert_null(strstr(h.log, "adopted"));
    pf_sink_record b[] = {rec("alpha", "c1", "{\"id\":\"c1\",\"GUID\":\"g1\"}"),
                          rec("alpha", "c3", "{\"id\":\"c3\",\"GUID\":\"g1\"}"),
                          rec("beta", "b1", "{\"id\":\"b1\"}")};
    write_ok(st, b, 3);
    commit_ok(&h, st, "{\"seq\":1}");
    desc->close(st);
    assert_int_equal(count_rows("t_adopt", "ppflow_alpha"), 7);
    assert_true(holds("t_adopt", "ppflow_alpha", "c3", "{\"id\":\"c3\",\"GUID\":\"g1\"}"));
    assert_int_equal(
        qlong("SELECT count(*) FROM t_adopt.ppflow_alpha WHERE key = 'c1' AND flow = 'old'", 0,
              NULL),
        1);
    assert_identity("t_adopt", "ppflow_beta", "$.id | sha256");

    /* Refused, and left as they are: one row of many keyed otherwise (a
     * content hash for a record that has an id); a table that records
     * another identity, even though its keys would match; an identity
     * that is not one member path and the hash. */
    pf_sink_host g;
    host_init(&g, "adopt-no", "t_adopt");
    set(&g, "table", "{stream}_tbl");
    const char *const one[] = {"s1"}, *const two[] = {"s2"}, *const three[] = {"s3"};
    old_table("s1_tbl", "('a', '{\"id\":\"a\"}'), ('b', '{\"id\":\"b\"}'), "
                        "('sha256:cc', '{\"id\":\"c\"}'), ('d', '{\"id\":\"d\"}')");
    set_identity(&g, "s1", "$.id | sha256");
    assert_int_equal(open_fails(&g, one, 1, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "table t_adopt.s1_tbl holds rows keyed by an earlier record "
                                "identity (none recorded)"));
    assert_null(stored_identity("t_adopt", "s1_tbl"));
    old_table("s2_tbl", "('a', '{\"id\":\"a\"}')");
    exec_sql("COMMENT ON COLUMN t_adopt.s2_tbl.key IS 'ppflow record identity: $.GUID | sha256'");
    set_identity(&g, "s2", "$.id | sha256");
    assert_int_equal(open_fails(&g, two, 1, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "earlier record identity ('$.GUID | sha256')"));
    assert_identity("t_adopt", "s2_tbl", "$.GUID | sha256");
    old_table("s3_tbl", "('a', '{\"id\":\"a\"}')");
    set_identity(&g, "s3", "$.id | $.GUID | sha256");
    assert_int_equal(open_fails(&g, three, 1, err, sizeof err), PF_SINK_FATAL);
    assert_non_null(strstr(err, "table t_adopt.s3_tbl holds rows keyed by an earlier record "
                                "identity (none recorded)"));
    assert_null(stored_identity("t_adopt", "s3_tbl"));
}

int main(void)
{
    const char *ci = getenv("PG_CONNINFO");
    if (!ci) {
        fprintf(stderr, "PG_CONNINFO is not set: run through tests/pg/pgcluster.py exec\n");
        return 77;
    }
    void *so = dlopen(PG_SINK_SO, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "cannot load %s: %s\n", PG_SINK_SO, dlerror());
        return 1;
    }
    desc = dlsym(so, PF_SINK_SYMBOL);
    if (!desc || desc->abi_version != PF_SINK_ABI_VERSION ||
        desc->struct_size != sizeof(pf_sink_descriptor) || strcmp(desc->name, "postgres") != 0 ||
        !desc->stored_checkpoint) {
        fprintf(stderr, "%s does not export a postgres sink descriptor\n", PG_SINK_SO);
        return 1;
    }
    const char *k[] = {"dbname", "application_name", NULL};
    const char *v[] = {ci, "ppflow-test", NULL};
    db = PQconnectdbParams(k, v, 1);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect: %s\n", PQerrorMessage(db));
        return 1;
    }
    PQclear(PQexec(db, "SET client_min_messages = warning"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_land_exactly),
        cmocka_unit_test(test_second_commit_of_same_keys_adds_nothing),
        cmocka_unit_test(test_checkpoint_is_stored_with_the_batch),
        cmocka_unit_test(test_batch_and_checkpoint_commit_together),
        cmocka_unit_test(test_close_without_commit_leaves_nothing),
        cmocka_unit_test(test_refused_record_poisons_the_transaction),
        cmocka_unit_test(test_hostile_names_are_quoted),
        cmocka_unit_test(test_bad_columns_are_refused),
        cmocka_unit_test(test_extra_columns_are_filled_from_paths),
        cmocka_unit_test(test_conflict_update_replaces_changed_records),
        cmocka_unit_test(test_records_without_key_use_a_content_hash),
        cmocka_unit_test(test_missing_objects_without_create_are_fatal),
        cmocka_unit_test(test_lost_connection_is_retried_and_loses_nothing),
        cmocka_unit_test(test_lock_wait_times_out_and_dropped_table_is_fatal),
        cmocka_unit_test(test_stored_keys_fall_back_to_on_conflict),
        cmocka_unit_test(test_update_after_direct_load_keeps_the_last_version),
        cmocka_unit_test(test_row_level_security_is_staged),
        cmocka_unit_test(test_conninfo_never_reaches_messages),
        cmocka_unit_test(test_unknown_stream_is_refused),
        cmocka_unit_test(test_reopen_right_after_close_is_never_busy),
        cmocka_unit_test(test_lock_of_a_vanished_session_is_waited_for),
        cmocka_unit_test(test_lock_held_elsewhere_is_busy_after_lock_wait),
        cmocka_unit_test(test_login_and_database_problems_are_fatal),
        cmocka_unit_test(test_write_failures_are_classified),
        cmocka_unit_test(test_access_is_proven_at_open),
        cmocka_unit_test(test_record_identity_is_stored_and_checked),
        cmocka_unit_test(test_old_layout_already_keyed_by_identity_is_adopted),
    };
    int rc = cmocka_run_group_tests_name("pg_sink", tests, NULL, NULL);
    PQfinish(db);
    dlclose(so);
    return rc;
}
