/* yschema.c: typed YAML reads with diagnostics. */
#include "flow/yschema.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/didyoumean.h"
#include "util/timeutil.h"

void pf_ys_error(pf_diags *d, const pf_ynode *n, pf_status code, const char *fmt, ...)
{
    pf_error e;
    char msg[PF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) pf_error_at(&e, code, n->file, n->line, n->col, "%s", msg);
    else pf_error_set(&e, code, "%s", msg);
    pf_diags_add(d, &e);
}

int pf_ys_check_keys(const pf_ynode *map, const char *const *allowed, const char *what,
                     pf_diags *d)
{
    int bad = 0;
    for (size_t i = 0; i < pf_ymap_size(map); i++) {
        const pf_ynode *k = pf_ymap_key(map, i);
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k->value) == 0) ok = 1;
        if (!ok) {
            char list[256] = "";
            size_t o = 0;
            for (const char *const *a = allowed; *a && o < sizeof list - 1; a++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", a == allowed ? "" : ", ",
                                      *a);
            size_t na = 0;
            while (allowed[na])
                na++;
            const char *near = pf_did_you_mean(k->value, allowed, na);
            if (near)
                pf_ys_error(d, k, PF_ECONFIG,
                            "unknown key '%s' in %s: did you mean '%s'? (expected one of: %s)",
                            k->value, what, near, list);
            else
                pf_ys_error(d, k, PF_ECONFIG, "unknown key '%s' in %s (expected one of: %s)",
                            k->value, what, list);
            bad++;
        }
    }
    return bad;
}

static const char *kind_name(const pf_ynode *n)
{
    return n->kind == PF_Y_MAP ? "a mapping" : n->kind == PF_Y_SEQ ? "a list" : "a scalar";
}

int pf_ys_want_map(const pf_ynode *n, const char *what, pf_diags *d)
{
    if (n && n->kind == PF_Y_MAP) return 1;
    if (n) pf_ys_error(d, n, PF_ECONFIG, "%s must be a mapping, not %s", what, kind_name(n));
    return 0;
}

char *pf_ys_string(const pf_ynode *n, const char *what, pf_diags *d)
{
    if (!n) return NULL;
    if (n->kind != PF_Y_SCALAR) {
        pf_ys_error(d, n, PF_ECONFIG, "%s must be a string, not %s", what, kind_name(n));
        return NULL;
    }
    if (memchr(n->value, '\0', n->len)) {
        pf_ys_error(d, n, PF_ECONFIG, "%s contains a NUL character", what);
        return NULL;
    }
    char *s = strdup(n->value);
    if (!s) pf_ys_error(d, n, PF_ENOMEM, "out of memory");
    return s;
}

int pf_ys_bool(const pf_ynode *n, const char *what, int *out, pf_diags *d)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "on", NULL};
    static const char *const f[] = {"false", "False", "FALSE", "no", "off", NULL};
    if (n && n->kind == PF_Y_SCALAR && n->plain) {
        for (int i = 0; t[i]; i++)
            if (strcmp(n->value, t[i]) == 0) return *out = 1, 0;
        for (int i = 0; f[i]; i++)
            if (strcmp(n->value, f[i]) == 0) return *out = 0, 0;
    }
    pf_ys_error(d, n, PF_ECONFIG, "%s must be true or false", what);
    return -1;
}

int pf_ys_int(const pf_ynode *n, const char *what, int64_t min, int64_t max, int64_t *out,
              pf_diags *d)
{
    if (!n || n->kind != PF_Y_SCALAR) {
        pf_ys_error(d, n, PF_ECONFIG, "%s must be an integer", what);
        return -1;
    }
    const char *s = n->value;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || isspace((unsigned char)*s)) {
        pf_ys_error(d, n, PF_ECONFIG, "%s must be an integer, not '%s'", what, s);
        return -1;
    }
    if (v < min || v > max) {
        pf_ys_error(d, n, PF_ECONFIG, "%s must be between %lld and %lld, not %lld", what,
                    (long long)min, (long long)max, v);
        return -1;
    }
    *out = v;
    return 0;
}

int pf_ys_duration(const pf_ynode *n, const char *what, int64_t *out, pf_diags *d)
{
    if (!n || n->kind != PF_Y_SCALAR || pf_duration_parse(n->value, out, NULL) != PF_OK || *out < 0) {
        pf_ys_error(d, n, PF_ECONFIG,
                    "%s must be a duration such as 30s, 5m, 1h, 7d or PT30M, not '%s'", what,
                    n && n->kind == PF_Y_SCALAR ? n->value : "");
        return -1;
    }
    return 0;
}

int pf_parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s)) return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE) return -1;
    uint64_t mul = 1;
    if (*end) {
        static const struct {
            const char *suffix;
            uint64_t mul;
        } units[] = {{"B", 1},         {"k", 1000},        {"K", 1000},
                     {"KB", 1000},     {"kB", 1000},       {"KiB", 1024},
                     {"M", 1000000},   {"MB", 1000000},    {"MiB", 1048576},
                     {"G", 1000000000}, {"GB", 1000000000}, {"GiB", 1073741824}};
        size_t i;
        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(end, units[i].suffix) == 0) break;
        if (i == sizeof units / sizeof units[0]) return -1;
        mul = units[i].mul;
    }
    if (v > UINT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

int pf_ys_size(const pf_ynode *n, const char *what, uint64_t *out, pf_diags *d)
{
    if (!n || n->kind != PF_Y_SCALAR || pf_parse_size(n->value, out) != 0) {
        pf_ys_error(d, n, PF_ECONFIG, "%s must be a size such as 4096, 512KiB, 256MiB or 1GiB",
                    what);
        return -1;
    }
    return 0;
}
