/* pg_columns.c: the PostgreSQL sink's column.* options: parsing
 * `column.NAME: "SQLTYPE JSONPATH"` (an accepted type, a name that is not
 * part of the default row layout) and checking each path with the server's
 * own jsonpath parser. Contracts in pg_internal.h. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg_internal.h"

/* The SQL types a column.* option may declare. */
static const char *const sql_types[] = {
    "text",        "integer", "bigint", "numeric", "boolean", "double precision",
    "timestamptz", "date",    "jsonb",  "inet",    "uuid"};
#define NTYPES (sizeof sql_types / sizeof sql_types[0])

/* Names the default layout uses; a column.* option cannot take them. */
const char *const pgs_core_columns[4] = {"key", "record", "ingested_at", "flow"};

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
void pgs_add_column(void *ud, const char *key, const char *value)
{
    pg_sink *s = ud;
    const char *name = key + strlen("column.");
    char why[PG_MSG_MAX];
    if (!pgs_name_ok("the column name", name, why, sizeof why)) {
        col_problem(s, "sink option %s: %s", key, why);
        return;
    }
    for (size_t i = 0; i < sizeof pgs_core_columns / sizeof pgs_core_columns[0]; i++) {
        if (strcmp(name, pgs_core_columns[i]) == 0) {
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

/* Validates every column path with PostgreSQL's own jsonpath parser. */
pf_sink_result pgs_check_paths(pg_sink *s, char *err, size_t errlen)
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
        pf_sink_result out = pgs_fail(s, r, what, err, errlen);
        PQclear(r);
        /* A path the server's parser refuses is a mistake in the flow's
         * options (ERROR, like the other option problems), not a problem
         * of the destination. */
        if (out == PF_SINK_FATAL) out = s->failed = PF_SINK_ERROR;
        return out;
    }
    return PF_SINK_OK;
}
