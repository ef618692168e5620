/* tz.c: TZif zone files (RFC 8536) and their POSIX TZ footer rules, for
 * cron schedules with a time zone. Pure arithmetic after loading; no TZ
 * variable, no tzset(), no localtime(). */
#include "sched/tz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/paths.h"

#define DAY_S INT64_C(86400)
#define MAX_UTOFF (24 * 3600 - 1) /* real zones stay within about +-15 h */

typedef struct rule_date {
    char kind;    /* 'J' (1..365, Feb 29 never counted), 'D' (0..365), 'M' (month.week.day) */
    int n;        /* J and D */
    int m, w, d;  /* M: month 1-12, week 1-5 (5 = last), weekday 0-6 (0 = Sunday) */
    int32_t time; /* seconds after local midnight (may be negative or above 24 h) */
} rule_date;

typedef struct posix_rule {
    int32_t std_off; /* seconds east of UTC */
    int has_dst;
    int32_t dst_off;
    rule_date start, end; /* when DST starts (in standard time) and ends (in DST) */
} posix_rule;

struct pf_tz {
    char *name;
    int64_t *trans;     /* transition instants, strictly ascending */
    unsigned char *idx; /* type index of each transition */
    size_t ntrans;
    int32_t *utoff; /* offset of each type */
    size_t ntypes;
    int has_rule; /* the footer gives the rule after the last transition */
    posix_rule rule;
};

/* ---- calendar (proleptic Gregorian, H. Hinnant) ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    return yoe + era * 400 + (m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* ---- POSIX TZ rules ---- */

/* The day (days since the epoch) rule R falls on in year Y. */
static int64_t rule_day(const rule_date *r, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1);
    if (r->kind == 'J') return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
    if (r->kind == 'D') return jan1 + r->n;
    int64_t first = days_from_civil(y, r->m, 1);
    int wd = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    int day = 1 + (r->d - wd + 7) % 7 + 7 * (r->w - 1);
    while (day > days_in_month(y, r->m))
        day -= 7;
    return first + day - 1;
}

static int32_t rule_offset(const posix_rule *r, int64_t t)
{
    if (!r->has_dst) return r->std_off;
    int64_t y = year_of_days(floor_div(t + r->std_off, DAY_S));
    int64_t start = rule_day(&r->start, y) * DAY_S + r->start.time - r->std_off;
    int64_t end = rule_day(&r->end, y) * DAY_S + r->end.time - r->dst_off;
    int dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? r->dst_off : r->std_off;
}

static int rd_num(const char **p, int min, int max, int *out)
{
    const char *q = *p;
    int v = 0, n = 0;
    while (*q >= '0' && *q <= '9' && n < 4)
        v = v * 10 + (*q++ - '0'), n++;
    if (n == 0 || v < min || v > max) return 0;
    *out = v;
    *p = q;
    return 1;
}

/* [+-]hh[:mm[:ss]] with hh up to MAXH, as seconds (sign applied). */
static int rd_hms(const char **p, int maxh, int32_t *out)
{
    const char *q = *p;
    int sign = 1;
    if (*q == '+' || *q == '-') sign = *q++ == '-' ? -1 : 1;
    int h, m = 0, s = 0;
    if (!rd_num(&q, 0, maxh, &h)) return 0;
    if (*q == ':') {
        q++;
        if (!rd_num(&q, 0, 59, &m)) return 0;
        if (*q == ':') {
            q++;
            if (!rd_num(&q, 0, 59, &s)) return 0;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    *p = q;
    return 1;
}

/* A zone abbreviation: 3 or more letters, or <...> of letters, digits, + and -. */
static int rd_name(const char **p)
{
    const char *q = *p;
    int n = 0;
    if (*q == '<') {
        q++;
        while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
               *q == '+' || *q == '-')
            q++, n++;
        if (*q != '>') return 0;
        q++;
    } else {
        while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
            q++, n++;
    }
    if (n < 3) return 0;
    *p = q;
    return 1;
}

static int rd_date(const char **p, rule_date *r)
{
    const char *q = *p;
    memset(r, 0, sizeof *r);
    if (*q == 'J') {
        q++;
        r->kind = 'J';
        if (!rd_num(&q, 1, 365, &r->n)) return 0;
    } else if (*q == 'M') {
        q++;
        r->kind = 'M';
        if (!rd_num(&q, 1, 12, &r->m) || *q++ != '.' || !rd_num(&q, 1, 5, &r->w) || *q++ != '.' ||
            !rd_num(&q, 0, 6, &r->d))
            return 0;
    } else {
        r->kind = 'D';
        if (!rd_num(&q, 0, 365, &r->n)) return 0;
    }
    r->time = 2 * 3600;
    if (*q == '/') {
        q++;
        if (!rd_hms(&q, 167, &r->time)) return 0;
    }
    *p = q;
    return 1;
}

/* Parses the footer TZ string S (NUL-terminated). Returns 1 on success. */
static int parse_posix(const char *s, posix_rule *r)
{
    const char *p = s;
    memset(r, 0, sizeof *r);
    int32_t off;
    if (!rd_name(&p) || !rd_hms(&p, 24, &off)) return 0;
    r->std_off = -off; /* POSIX offsets count west */
    if (*p == '\0') return 1;
    if (!rd_name(&p)) return 0;
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*p == '+' || *p == '-' || (*p >= '0' && *p <= '9')) {
        if (!rd_hms(&p, 24, &off)) return 0;
        r->dst_off = -off;
    }
    if (*p == '\0') {
        /* No rule: the traditional US default. */
        r->start = (rule_date){.kind = 'M', .m = 3, .w = 2, .d = 0, .time = 7200};
        r->end = (rule_date){.kind = 'M', .m = 11, .w = 1, .d = 0, .time = 7200};
        return 1;
    }
    if (*p++ != ',' || !rd_date(&p, &r->start) || *p++ != ',' || !rd_date(&p, &r->end)) return 0;
    return *p == '\0';
}

/* ---- TZif ---- */

typedef struct counts {
    uint32_t isut, isstd, leap, time, type, chr;
} counts;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int read_header(const unsigned char *d, size_t len, size_t at, counts *c, char *version)
{
    if (len - at < 44 || memcmp(d + at, "TZif", 4) != 0) return 0;
    *version = (char)d[at + 4];
    const unsigned char *q = d + at + 20;
    c->isut = be32(q), c->isstd = be32(q + 4), c->leap = be32(q + 8);
    c->time = be32(q + 12), c->type = be32(q + 16), c->chr = be32(q + 20);
    return 1;
}

/* Bytes of the data block described by C with TB-byte times; SIZE_MAX when
 * the counts are absurd. */
static size_t block_len(const counts *c, size_t tb)
{
    if (c->time > 1000000 || c->type > 256 || c->chr > 65536 || c->leap > 100000 || c->isut > 256 ||
        c->isstd > 256)
        return SIZE_MAX;
    return (size_t)c->time * tb + c->time + (size_t)c->type * 6 + c->chr +
           (size_t)c->leap * (tb + 4) + c->isstd + c->isut;
}

static pf_status bad(pf_error *err, const char *name, const char *why)
{
    return pf_error_set(err, PF_EDATA, "time zone '%s': invalid zone file: %s", name, why);
}

pf_status pf_tz_parse(const char *name, const unsigned char *d, size_t len, pf_tz **out,
                      pf_error *err)
{
    if (!name || !d || !out) return pf_error_set(err, PF_EINVAL, "pf_tz_parse: NULL argument");
    counts c;
    char ver;
    if (!read_header(d, len, 0, &c, &ver)) return bad(err, name, "no TZif header");
    size_t at = 44, tb = 4, blen = block_len(&c, 4);
    if (ver >= '2') {
        /* Skip the 32-bit block; the 64-bit one follows with its own header. */
        if (blen > len - at) return bad(err, name, "truncated");
        at += blen;
        if (!read_header(d, len, at, &c, &ver)) return bad(err, name, "no second TZif header");
        at += 44;
        tb = 8;
        blen = block_len(&c, 8);
    }
    if (c.type == 0 || c.chr == 0 || blen == SIZE_MAX) return bad(err, name, "bad counts");
    if ((c.isstd && c.isstd != c.type) || (c.isut && c.isut != c.type))
        return bad(err, name, "bad counts");
    if (blen > len - at) return bad(err, name, "truncated");

    pf_tz *z = calloc(1, sizeof *z);
    if (!z || !(z->name = strdup(name)) ||
        (c.time &&
         (!(z->trans = calloc(c.time, sizeof *z->trans)) || !(z->idx = calloc(c.time, 1)))) ||
        !(z->utoff = calloc(c.type, sizeof *z->utoff))) {
        pf_tz_free(z);
        return pf_error_set(err, PF_ENOMEM, "out of memory loading time zone '%s'", name);
    }
    const unsigned char *p = d + at;
    z->ntrans = c.time;
    z->ntypes = c.type;
    const char *why = NULL;
    for (size_t i = 0; i < c.time; i++) {
        z->trans[i] = tb == 8 ? be64(p + i * 8) : (int64_t)(int32_t)be32(p + i * 4);
        if (i && z->trans[i] <= z->trans[i - 1]) why = "transitions out of order";
    }
    p += (size_t)c.time * tb;
    for (size_t i = 0; i < c.time; i++) {
        z->idx[i] = p[i];
        if (p[i] >= c.type) why = "transition to an unknown type";
    }
    p += c.time;
    for (size_t i = 0; i < c.type; i++) {
        int32_t off = (int32_t)be32(p + i * 6);
        if (off < -MAX_UTOFF || off > MAX_UTOFF) why = "offset out of range";
        z->utoff[i] = off;
    }
    at += blen;
    if (!why && tb == 8) {
        /* Footer: "\n" TZ-string "\n"; an empty string means no rule. */
        if (len - at < 2 || d[at] != '\n') {
            why = "missing footer";
        } else {
            const unsigned char *nl = memchr(d + at + 1, '\n', len - at - 1);
            size_t fl = nl ? (size_t)(nl - (d + at + 1)) : 0;
            char tzs[128];
            if (!nl || fl >= sizeof tzs) {
                why = "bad footer";
            } else if (fl > 0) {
                memcpy(tzs, d + at + 1, fl);
                tzs[fl] = '\0';
                if (!parse_posix(tzs, &z->rule))
                    why = "footer is not a POSIX TZ rule";
                else if (z->rule.std_off < -MAX_UTOFF || z->rule.std_off > MAX_UTOFF ||
                         z->rule.dst_off < -MAX_UTOFF || z->rule.dst_off > MAX_UTOFF)
                    why = "footer offset out of range";
                else
                    z->has_rule = 1;
            }
        }
    }
    if (why) {
        pf_tz_free(z);
        return bad(err, name, why);
    }
    *out = z;
    return PF_OK;
}

static int is_utc_name(const char *n)
{
    return strcmp(n, "UTC") == 0 || strcmp(n, "Etc/UTC") == 0 || strcmp(n, "Z") == 0;
}

static int valid_name(const char *n)
{
    size_t l = strlen(n);
    if (l == 0 || l > PF_TZ_NAME_MAX || n[0] == '/') return 0;
    for (const char *p = n; *p; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '+' || ch == '-' || ch == '.' || ch == '/'))
            return 0;
    }
    /* No empty, "." or ".." component. */
    for (const char *p = n; *p;) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 0 || (cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += cl;
        if (*p == '/') p++;
        if (e && !*p) return 0;
    }
    return 1;
}

pf_status pf_tz_load(const char *name, pf_tz **out, pf_error *err)
{
    if (!name || !out) return pf_error_set(err, PF_EINVAL, "pf_tz_load: NULL argument");
    if (is_utc_name(name)) {
        pf_tz *z = calloc(1, sizeof *z);
        if (!z || !(z->name = strdup(name)) || !(z->utoff = calloc(1, sizeof *z->utoff))) {
            pf_tz_free(z);
            return pf_error_set(err, PF_ENOMEM, "out of memory");
        }
        z->ntypes = 1;
        *out = z;
        return PF_OK;
    }
    if (!valid_name(name))
        return pf_error_set(err, PF_EINVAL,
                            "'%.64s' is not a time zone name (expected e.g. Europe/Berlin or UTC)",
                            name);
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return pf_error_set(err, PF_EINVAL, "time zone path too long");
    char *data = NULL;
    size_t len = 0;
    pf_error e;
    pf_status st = pf_read_file(path, PF_TZ_FILE_MAX, &data, &len, &e);
    if (st == PF_ENOTFOUND)
        return pf_error_set(err, PF_ENOTFOUND,
                            "unknown time zone '%s' (no file %s; is the tzdata package "
                            "installed?)",
                            name, path);
    if (st != PF_OK) return pf_error_set(err, st, "time zone '%s': %s", name, e.msg);
    st = pf_tz_parse(name, (const unsigned char *)data, len, out, err);
    free(data);
    return st;
}

const char *pf_tz_name(const pf_tz *z)
{
    return z->name;
}

int32_t pf_tz_offset(const pf_tz *z, int64_t t)
{
    if (!z) return 0;
    if (z->ntrans == 0) return z->has_rule ? rule_offset(&z->rule, t) : z->utoff[0];
    if (t < z->trans[0]) return z->utoff[0];
    if (t >= z->trans[z->ntrans - 1] && z->has_rule) return rule_offset(&z->rule, t);
    size_t lo = 0, hi = z->ntrans; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->utoff[z->idx[lo]];
}

void pf_tz_free(pf_tz *z)
{
    if (!z) return;
    free(z->name);
    free(z->trans);
    free(z->idx);
    free(z->utoff);
    free(z);
}
