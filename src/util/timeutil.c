/* timeutil.c: RFC 3339 time parsing/formatting, ISO 8601 durations and
 * intervals, and the clocks (with the PPFLOW_NOW override and the test
 * clock of PPFLOW_TEST_CLOCK). Pure integer
 * arithmetic; nothing here depends on TZ or the locale. */
#include "util/timeutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

#define MS_PER_S INT64_C(1000)
#define MS_PER_MIN (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_MIN)
#define MS_PER_DAY (24 * MS_PER_H)
#define MS_PER_WEEK (7 * MS_PER_DAY)

/* How much of a bad input is quoted in an error message. */
#define QUOTE_MAX 64

/* ---- calendar arithmetic (proleptic Gregorian, H. Hinnant) ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
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

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads exactly N digits at *P into *OUT; advances *P. Returns 0 on failure. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i])) return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

static pf_status time_err(pf_error *err, const char *s, const char *why)
{
    return pf_error_set(err, PF_ESYNTAX, "invalid date-time '%.*s': %s", QUOTE_MAX, s, why);
}

pf_status pf_time_parse(const char *s, int64_t *ms_out, pf_error *err)
{
    if (!s || !ms_out) return pf_error_set(err, PF_EINVAL, "pf_time_parse: NULL argument");
    const char *p = s;
    int y, mo, d, h, mi, sec;
    if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
        !read_digits(&p, 2, &d))
        return time_err(err, s, "expected YYYY-MM-DD");
    if (*p != 'T' && *p != 't' && *p != ' ')
        return time_err(err, s, "expected 'T' and a time of day after the date");
    p++;
    if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi) || *p++ != ':' ||
        !read_digits(&p, 2, &sec))
        return time_err(err, s, "expected HH:MM:SS after the date");
    if (mo < 1 || mo > 12) return time_err(err, s, "month out of range");
    if (d < 1 || d > days_in_month(y, mo)) return time_err(err, s, "day out of range");
    if (h > 23) return time_err(err, s, "hour out of range");
    if (mi > 59) return time_err(err, s, "minute out of range");
    if (sec > 59) return time_err(err, s, "second out of range");

    int64_t frac_ms = 0;
    if (*p == '.' || *p == ',') {
        p++;
        if (!is_digit(*p)) return time_err(err, s, "expected digits after the decimal point");
        int n = 0;
        for (; is_digit(*p); p++, n++)
            if (n < 3) frac_ms = frac_ms * 10 + (*p - '0');
        for (; n < 3; n++)
            frac_ms *= 10;
    }

    int64_t off_ms = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh, om;
        if (!read_digits(&p, 2, &oh)) return time_err(err, s, "expected an offset ±HH:MM");
        if (*p == ':') p++;
        if (!read_digits(&p, 2, &om)) return time_err(err, s, "expected an offset ±HH:MM");
        if (oh > 23 || om > 59) return time_err(err, s, "offset out of range");
        off_ms = sign * (oh * MS_PER_H + om * MS_PER_MIN);
    }
    if (*p != '\0') return time_err(err, s, "unexpected text after the time");

    int64_t ms = days_from_civil(y, mo, d) * MS_PER_DAY + h * MS_PER_H + mi * MS_PER_MIN +
                 sec * MS_PER_S + frac_ms - off_ms;
    *ms_out = ms;
    return PF_OK;
}

void pf_time_format(int64_t ms, char buf[PF_TIME_FMT_SIZE])
{
    /* Floor division so times before 1970 come out right. */
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int h = (int)(rem / MS_PER_H);
    int mi = (int)(rem / MS_PER_MIN % 60);
    int s = (int)(rem / MS_PER_S % 60);
    int f = (int)(rem % MS_PER_S);
    if (f)
        snprintf(buf, PF_TIME_FMT_SIZE, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
                 h, mi, s, f);
    else
        snprintf(buf, PF_TIME_FMT_SIZE, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, h,
                 mi, s);
}

/* ---- durations ---- */

/* A decimal number as read from the text: integer part and up to 9 fraction
 * digits (FRAC / 10^FRAC_DIGITS). */
typedef struct num {
    int64_t ip;
    int64_t frac;
    int frac_digits;
    int has_frac;
} num;

/* Reads digits [('.'|',') digits]. Returns 1, 0 (no number here) or -1 (overflow). */
static int read_num(const char **pp, num *n)
{
    const char *p = *pp;
    if (!is_digit(*p)) return 0;
    memset(n, 0, sizeof *n);
    for (; is_digit(*p); p++) {
        if (__builtin_mul_overflow(n->ip, 10, &n->ip) ||
            __builtin_add_overflow(n->ip, *p - '0', &n->ip))
            return -1;
    }
    if ((*p == '.' || *p == ',') && is_digit(p[1])) {
        p++;
        n->has_frac = 1;
        for (; is_digit(*p); p++) {
            if (n->frac_digits < 9) {
                n->frac = n->frac * 10 + (*p - '0');
                n->frac_digits++;
            }
        }
    }
    *pp = p;
    return 1;
}

/* Adds N * UNIT_MS to *ACC. Returns 0 on overflow. */
static int add_component(int64_t *acc, const num *n, int64_t unit_ms)
{
    int64_t v;
    if (__builtin_mul_overflow(n->ip, unit_ms, &v)) return 0;
    if (n->has_frac) {
        int64_t div = 1;
        for (int i = 0; i < n->frac_digits; i++)
            div *= 10;
        /* frac < 10^9 and unit_ms <= one week (6.05e8): the product fits. */
        if (__builtin_add_overflow(v, n->frac * unit_ms / div, &v)) return 0;
    }
    return !__builtin_add_overflow(*acc, v, acc);
}

static pf_status dur_err(pf_error *err, const char *s, const char *why)
{
    return pf_error_set(err, PF_ESYNTAX, "invalid duration '%.*s': %s", QUOTE_MAX, s, why);
}

static pf_status dur_overflow(pf_error *err, const char *s)
{
    return pf_error_set(err, PF_ETOOBIG, "duration '%.*s' is too long", QUOTE_MAX, s);
}

static pf_status parse_iso_duration(const char *s, int64_t *ms_out, pf_error *err)
{
    /* Designators in their only allowed order; rank increases left to right. */
    const char *p = s + 1; /* past 'P' */
    int64_t acc = 0;
    int in_time = 0, last_rank = 0, ncomp = 0, frac_seen = 0;
    for (;;) {
        if (*p == '\0') break;
        if (*p == 'T' || *p == 't') {
            if (in_time) return dur_err(err, s, "'T' given twice");
            in_time = 1;
            p++;
            if (*p == '\0')
                return dur_err(err, s, "'T' must be followed by hours, minutes or seconds");
            continue;
        }
        num n;
        int r = read_num(&p, &n);
        if (r < 0) return dur_overflow(err, s);
        if (r == 0) return dur_err(err, s, "expected a number");
        if (frac_seen) return dur_err(err, s, "only the last component may have a fraction");
        frac_seen = n.has_frac;
        char des = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p; /* case-insensitive */
        p++;
        int rank;
        int64_t unit;
        if (!in_time) {
            switch (des) {
            case 'Y':
                return dur_err(err, s, "years have no fixed length; use days (e.g. P365D)");
            case 'M':
                return dur_err(err, s,
                               "months have no fixed length; use days (e.g. P30D), or PT..M "
                               "for minutes");
            case 'W':
                rank = 1, unit = MS_PER_WEEK;
                break;
            case 'D':
                rank = 2, unit = MS_PER_DAY;
                break;
            case '\0':
                return dur_err(err, s, "number without a designator");
            default:
                return dur_err(err, s, "expected W or D (or T before H, M, S)");
            }
        } else {
            switch (des) {
            case 'H':
                rank = 3, unit = MS_PER_H;
                break;
            case 'M':
                rank = 4, unit = MS_PER_MIN;
                break;
            case 'S':
                rank = 5, unit = MS_PER_S;
                break;
            case '\0':
                return dur_err(err, s, "number without a designator");
            default:
                return dur_err(err, s, "expected H, M or S after 'T'");
            }
        }
        if (rank <= last_rank) return dur_err(err, s, "components repeated or out of order");
        last_rank = rank;
        if (!add_component(&acc, &n, unit)) return dur_overflow(err, s);
        ncomp++;
    }
    if (ncomp == 0) return dur_err(err, s, "no components after 'P'");
    *ms_out = acc;
    return PF_OK;
}

static pf_status parse_short_duration(const char *s, int64_t *ms_out, pf_error *err)
{
    const char *p = s;
    int64_t acc = 0;
    int last_rank = 0, ncomp = 0, frac_seen = 0;
    while (*p) {
        num n;
        int r = read_num(&p, &n);
        if (r < 0) return dur_overflow(err, s);
        if (r == 0) return dur_err(err, s, "expected a number");
        if (frac_seen) return dur_err(err, s, "only the last component may have a fraction");
        frac_seen = n.has_frac;
        int rank;
        int64_t unit;
        if (p[0] == 'm' && p[1] == 's') {
            rank = 6, unit = 1, p += 2;
        } else {
            switch (*p) {
            case 'w':
                rank = 1, unit = MS_PER_WEEK;
                break;
            case 'd':
                rank = 2, unit = MS_PER_DAY;
                break;
            case 'h':
                rank = 3, unit = MS_PER_H;
                break;
            case 'm':
                rank = 4, unit = MS_PER_MIN;
                break;
            case 's':
                rank = 5, unit = MS_PER_S;
                break;
            case '\0':
                if (ncomp > 0) return dur_err(err, s, "number without a unit");
                rank = 5, unit = MS_PER_S; /* a bare number means seconds */
                break;
            default:
                return dur_err(err, s, "unknown unit (use ms, s, m, h, d, w or ISO PnDTnHnMnS)");
            }
            if (*p) p++;
        }
        if (rank <= last_rank) return dur_err(err, s, "units repeated or out of order");
        last_rank = rank;
        if (!add_component(&acc, &n, unit)) return dur_overflow(err, s);
        ncomp++;
    }
    if (ncomp == 0) return dur_err(err, s, "empty");
    *ms_out = acc;
    return PF_OK;
}

pf_status pf_duration_parse(const char *s, int64_t *ms_out, pf_error *err)
{
    if (!s || !ms_out) return pf_error_set(err, PF_EINVAL, "pf_duration_parse: NULL argument");
    if (*s == 'P' || *s == 'p') return parse_iso_duration(s, ms_out, err);
    return parse_short_duration(s, ms_out, err);
}

/* ---- intervals ---- */

#define PART_MAX 128

static int looks_like_time(const char *s)
{
    /* Durations never contain '-' or ':'; times always do. */
    return strchr(s, '-') || strchr(s, ':');
}

pf_status pf_interval_parse(const char *s, int64_t *start_ms, int64_t *end_ms, pf_error *err)
{
    if (!s || !start_ms || !end_ms)
        return pf_error_set(err, PF_EINVAL, "pf_interval_parse: NULL argument");
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/'))
        return pf_error_set(err, PF_ESYNTAX,
                            "invalid interval '%.*s': expected start/end, duration/end or "
                            "start/duration",
                            QUOTE_MAX, s);
    if (*s == 'R' || *s == 'r')
        return pf_error_set(err, PF_ESYNTAX,
                            "invalid interval '%.*s': repeating intervals are not supported",
                            QUOTE_MAX, s);
    size_t la = (size_t)(slash - s), lb = strlen(slash + 1);
    if (la == 0 || lb == 0)
        return pf_error_set(err, PF_ESYNTAX, "invalid interval '%.*s': empty part", QUOTE_MAX, s);
    if (la >= PART_MAX || lb >= PART_MAX)
        return pf_error_set(err, PF_ESYNTAX, "invalid interval '%.*s': part too long", QUOTE_MAX,
                            s);
    char a[PART_MAX], b[PART_MAX];
    memcpy(a, s, la);
    a[la] = '\0';
    memcpy(b, slash + 1, lb + 1);

    int a_time = looks_like_time(a), b_time = looks_like_time(b);
    int64_t va, vb, start, end;
    pf_status st;
    if (!a_time && !b_time)
        return pf_error_set(err, PF_ESYNTAX,
                            "invalid interval '%.*s': at least one end must be a date-time",
                            QUOTE_MAX, s);
    st = a_time ? pf_time_parse(a, &va, err) : pf_duration_parse(a, &va, err);
    if (st != PF_OK) {
        pf_error_prefix(err, "in interval '%.*s'", QUOTE_MAX, s);
        return st;
    }
    st = b_time ? pf_time_parse(b, &vb, err) : pf_duration_parse(b, &vb, err);
    if (st != PF_OK) {
        pf_error_prefix(err, "in interval '%.*s'", QUOTE_MAX, s);
        return st;
    }
    if (a_time && b_time) {
        start = va;
        end = vb;
    } else if (a_time) {
        start = va;
        if (__builtin_add_overflow(va, vb, &end))
            return pf_error_set(err, PF_ETOOBIG, "interval '%.*s' overflows", QUOTE_MAX, s);
    } else {
        end = vb;
        if (__builtin_sub_overflow(vb, va, &start))
            return pf_error_set(err, PF_ETOOBIG, "interval '%.*s' overflows", QUOTE_MAX, s);
    }
    if (end <= start)
        return pf_error_set(err, PF_ESYNTAX, "invalid interval '%.*s': end is not after start",
                            QUOTE_MAX, s);
    *start_ms = start;
    *end_ms = end;
    return PF_OK;
}

/* ---- clocks ---- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / 1000000;
}

int64_t pf_time_real_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t pf_time_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* ---- test clock ---- */

#define TEST_CLOCK_MAX_SPEED 100000

/* Reads a decimal int64_t at *P (optional '-' when NEG_OK); advances *P. */
static int read_i64(const char **p, int neg_ok, int64_t *out)
{
    const char *q = *p;
    int neg = 0;
    if (neg_ok && *q == '-') neg = 1, q++;
    if (!is_digit(*q)) return 0;
    int64_t v = 0;
    for (; is_digit(*q); q++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *q - '0', &v)) return 0;
    *out = neg ? -v : v;
    *p = q;
    return 1;
}

pf_status pf_test_clock_parse(const char *spec, pf_test_clock *out, pf_error *err)
{
    if (!spec || !out) return pf_error_set(err, PF_EINVAL, "pf_test_clock_parse: NULL argument");
    const char *at = strchr(spec, '@');
    size_t tl = at ? (size_t)(at - spec) : 0;
    char start[PART_MAX];
    if (!at || tl == 0 || tl >= sizeof start)
        return pf_error_set(err, PF_ESYNTAX,
                            "invalid test clock '%.*s': expected START@SPEED[@ANCHOR_MS]",
                            QUOTE_MAX, spec);
    memcpy(start, spec, tl);
    start[tl] = '\0';
    pf_test_clock c = {0};
    pf_error e;
    if (pf_time_parse(start, &c.start_ms, &e) != PF_OK)
        return pf_error_set(err, PF_ESYNTAX, "invalid test clock '%.*s': %s", QUOTE_MAX, spec,
                            e.msg);
    const char *p = at + 1;
    if (!read_i64(&p, 0, &c.speed) || c.speed < 1 || c.speed > TEST_CLOCK_MAX_SPEED)
        return pf_error_set(err, PF_ESYNTAX,
                            "invalid test clock '%.*s': SPEED must be an integer 1..%d", QUOTE_MAX,
                            spec, TEST_CLOCK_MAX_SPEED);
    if (*p == '@') {
        p++;
        if (!read_i64(&p, 1, &c.anchor_ms))
            return pf_error_set(err, PF_ESYNTAX,
                                "invalid test clock '%.*s': ANCHOR must be epoch milliseconds",
                                QUOTE_MAX, spec);
        c.anchored = 1;
    }
    if (*p != '\0')
        return pf_error_set(err, PF_ESYNTAX, "invalid test clock '%.*s': unexpected text",
                            QUOTE_MAX, spec);
    *out = c;
    return PF_OK;
}

int64_t pf_test_clock_at(const pf_test_clock *c, int64_t real_ms)
{
    int64_t d, r;
    if (__builtin_sub_overflow(real_ms, c->anchor_ms, &d) ||
        __builtin_mul_overflow(d, c->speed, &d) || __builtin_add_overflow(c->start_ms, d, &r))
        return real_ms >= c->anchor_ms ? INT64_MAX : INT64_MIN;
    return r;
}

void pf_test_clock_format(const pf_test_clock *c, char buf[PF_TEST_CLOCK_FMT_SIZE])
{
    char t[PF_TIME_FMT_SIZE];
    pf_time_format(c->start_ms, t);
    snprintf(buf, PF_TEST_CLOCK_FMT_SIZE, "%s@%lld@%lld", t, (long long)c->speed,
             (long long)c->anchor_ms);
}

int64_t pf_time_now_ms(void)
{
    static atomic_int warned, warned_clock;
    /* The anchor of an unanchored test clock: the first read in this process. */
    static _Atomic int64_t local_anchor = INT64_MIN;
    const char *pin = getenv("PPFLOW_NOW");
    if (pin && *pin) {
        int64_t ms;
        pf_error e;
        if (pf_time_parse(pin, &ms, &e) == PF_OK) return ms;
        if (atomic_exchange(&warned, 1) == 0) pf_log_warn("ignoring PPFLOW_NOW: %s", e.msg);
    }
    const char *tc = getenv(PF_TEST_CLOCK_ENV);
    if (tc && *tc) {
        pf_test_clock c;
        pf_error e;
        int64_t real = pf_time_real_ms();
        if (pf_test_clock_parse(tc, &c, &e) == PF_OK) {
            if (!c.anchored) {
                int64_t expected = INT64_MIN;
                atomic_compare_exchange_strong(&local_anchor, &expected, real);
                c.anchor_ms = atomic_load(&local_anchor);
            }
            return pf_test_clock_at(&c, real);
        }
        if (atomic_exchange(&warned_clock, 1) == 0)
            pf_log_warn("ignoring %s: %s", PF_TEST_CLOCK_ENV, e.msg);
    }
    return pf_time_real_ms();
}
