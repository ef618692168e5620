/* pg_conn.c: the PostgreSQL sink's connection: connecting (one attempt,
 * each host within connect_timeout; a refused login or an unknown database
 * is FATAL, an unreachable server RETRY), running statements, and what a
 * failure means: server and libpq messages cleaned into one line without
 * the conninfo or its password (a message holding either, the password also
 * percent-encoded, is withheld whole; copies libpq makes of the password
 * are wiped), and the SQLSTATE classified into RETRY /
 * ERROR / FATAL. A failed statement poisons the sink (pgs_fail). Contracts
 * in pg_internal.h. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_internal.h"

void pgs_log(pg_sink *s, int level, const char *fmt, ...)
{
    char msg[PG_MSG_MAX + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->api->log(s->host, level, msg);
}

/* ---- messages and outcomes ------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 1 when IN holds SECRET as a connection URI may write it: each byte as is
 * or percent-encoded (%XX, either case). */
static int holds_encoded(const char *in, const char *secret)
{
    for (const char *t = in; *t; t++) {
        const char *q = t, *p = secret;
        while (*p && *q) {
            if (*q == '%' && hexval(q[1]) >= 0 && hexval(q[2]) >= 0 &&
                (unsigned char)*p == (unsigned char)(hexval(q[1]) * 16 + hexval(q[2]))) {
                q += 3;
            } else if (*q == *p) {
                q++;
            } else {
                break;
            }
            p++;
        }
        if (!*p) return 1;
    }
    return 0;
}

/* Copies a libpq or server message into OUT: one line (line breaks and tabs
 * become spaces, trailing space dropped), capped, and withheld entirely when
 * it contains the conninfo or its password (also percent-encoded, as in a
 * URI). The whole message is checked before anything is cut or collapsed. */
static void clean_msg(const pg_sink *s, const char *in, char *out, size_t n)
{
    if (!in || !*in) in = "no message";
    if ((s->conninfo && *s->conninfo && strstr(in, s->conninfo)) ||
        (s->password && *s->password && holds_encoded(in, s->password))) {
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
pf_sink_result pgs_fail(pg_sink *s, const PGresult *r, const char *what, char *err, size_t errlen)
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
pf_sink_result pgs_poisoned(const pg_sink *s, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s (the transaction was abandoned; the sink must be reopened)",
             s->failmsg);
    return s->failed;
}

pf_sink_result pgs_oom(pg_sink *s, char *err, size_t errlen)
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
 * pgs_fail() and *OUT the outcome. */
PGresult *pgs_run(pg_sink *s, const char *sql, int nparams, const char *const *params,
                  ExecStatusType want, const char *what, pf_sink_result *out, char *err,
                  size_t errlen)
{
    PGresult *r = nparams ? PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                          : PQexec(s->conn, sql);
    if (r && PQresultStatus(r) == want) return r;
    *out = pgs_fail(s, r, what, err, errlen);
    PQclear(r);
    return NULL;
}

/* pgs_run() for statements whose result is not needed. */
pf_sink_result pgs_exec_ok(pg_sink *s, const char *sql, int nparams, const char *const *params,
                           const char *what, char *err, size_t errlen)
{
    pf_sink_result out = PF_SINK_OK;
    PGresult *r = pgs_run(s, sql, nparams, params, PGRES_COMMAND_OK, what, &out, err, errlen);
    if (!r) return out; /* pgs_run() set OUT */
    PQclear(r);
    return PF_SINK_OK;
}

/* ---- connecting ---------------------------------------------------------------- */

/* Finds the password in the conninfo (so messages echoing it are withheld)
 * and checks that the conninfo parses. */
pf_sink_result pgs_parse_conninfo(pg_sink *s, char *err, size_t errlen)
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
    pf_sink_result r = PF_SINK_OK;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
            if (!s->password && !(s->password = strdup(o->val))) r = pgs_oom(NULL, err, errlen);
            explicit_bzero(o->val, strlen(o->val)); /* libpq's copy */
        }
    }
    PQconninfoFree(opts);
    if (r != PF_SINK_OK) return r;
    return PF_SINK_OK;
}

/* Server notices (and warnings such as "terminating connection") go to
 * ppflow's log, cleaned like every other message, never to stderr. */
static void on_notice(void *ud, const char *msg)
{
    pg_sink *s = ud;
    char clean[PG_MSG_MAX];
    clean_msg(s, msg, clean, sizeof clean);
    pgs_log(s, 3, "server says: %s", clean);
}

int64_t pgs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pgs_sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits until the connection's socket is ready for EVENTS or DEADLINE
 * (pgs_now_ms, 0: none) passes. 1 ready (or an error the next libpq call will
 * report), 0 timed out. */
int pgs_wait_socket(PGconn *c, short events, int64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline) {
            int64_t left = deadline - pgs_now_ms();
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
        if (strncmp(l, "LOCATION:", 9) != 0) pgs_sb_put(&b, l, len);
        l += len;
    }
    if (b.oom) {
        pgs_sb_free(&b);
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
    pgs_sb_free(&b);
}

/* The effective connect_timeout in ms (the conninfo's own, else the sink
 * option), 0 for none; libpq's rules: at least 2 s, 0 waits forever. */
static int64_t connect_wait_ms(pg_sink *s)
{
    int64_t ms = s->connect_timeout_ms;
    PQconninfoOption *o = PQconninfo(s->conn);
    for (PQconninfoOption *i = o; i && i->keyword; i++) {
        if (strcmp(i->keyword, "connect_timeout") == 0 && i->val && *i->val)
            ms = strtoll(i->val, NULL, 10) * 1000;
        if (strcmp(i->keyword, "password") == 0 && i->val) /* libpq's copy */
            explicit_bzero(i->val, strlen(i->val));
    }
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
pf_sink_result pgs_connect(pg_sink *s, char *err, size_t errlen)
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
    if (!s->conn) return pgs_oom(s, err, errlen);
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
        int64_t deadline = wait ? pgs_now_ms() + wait : 0;
        PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
        while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
            if (ps == PGRES_POLLING_READING || ps == PGRES_POLLING_WRITING) {
                if (!pgs_wait_socket(s->conn, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                                     deadline)) {
                    timed_out = 1;
                    break;
                }
            }
            ps = PQconnectPoll(s->conn);
            if (PQhost(s->conn) != host) { /* the next host: its own timeout */
                host = PQhost(s->conn);
                deadline = wait ? pgs_now_ms() + wait : 0;
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
    PGresult *res =
        pgs_run(s,
                "SELECT pg_catalog.set_config('statement_timeout', $1, false), "
                "pg_catalog.set_config('lock_timeout', $1, false), "
                "CURRENT_USER",
                1, p, PGRES_TUPLES_OK, "setting the statement timeout", &r, err, errlen);
    if (!res) return r;
    s->role = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 2) : "?");
    PQclear(res);
    return s->role ? PF_SINK_OK : pgs_oom(s, err, errlen);
}
