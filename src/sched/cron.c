/* cron.c: parsing five-field cron expressions and computing their next run
 * time in a zone's civil time (see cron.h for the rules). */
#include "sched/cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DAY_S INT64_C(86400)
#define MIN_PER_DAY 1440
/* Search limits: days (30 years) for the next civil match, candidates for
 * the first instant after a given one. */
#define MAX_SEARCH_DAYS (30 * 366)
#define MAX_CANDIDATES 20000
/* Times outside years 0001-9999 are never scheduled. */
#define MIN_TIME_MS INT64_C(-62135596800000)
#define MAX_TIME_MS INT64_C(253402300799999)

typedef struct field_def {
    const char *name;
    int min, max;
    const char *const *names; /* 3-letter names for min.., or NULL */
} field_def;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_def fields[5] = {
    {"minute", 0, 59, NULL},           {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},     {"month", 1, 12, month_names},
    {"day of week", 0, 7, wday_names},
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

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int weekday(int64_t days)
{
    return (int)((days % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
}

/* ---- parsing ---- */

static pf_status perr(pf_error *err, const char *expr, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static pf_status perr(pf_error *err, const char *expr, const char *at, const char *fmt, ...)
{
    char msg[PF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pf_error_off(err, PF_ESYNTAX, (long)(at - expr), "invalid cron expression '%.80s': %s",
                        expr, msg);
}

/* Reads a number or (for fields with names) a 3-letter name at *P. */
static int read_value(const char **p, const char *end, const field_def *f, int *out)
{
    const char *q = *p;
    if (q < end && *q >= '0' && *q <= '9') {
        int v = 0, n = 0;
        while (q < end && *q >= '0' && *q <= '9') {
            if (++n > 3) return 0;
            v = v * 10 + (*q++ - '0');
        }
        *out = v;
        *p = q;
        return 1;
    }
    if (f->names && end - q >= 3) {
        for (int i = 0; f->names[i]; i++) {
            if (strncasecmp(q, f->names[i], 3) == 0 &&
                (end - q == 3 || !((q[3] | 0x20) >= 'a' && (q[3] | 0x20) <= 'z'))) {
                *out = f->min + i;
                *p = q + 3;
                return 1;
            }
        }
    }
    return 0;
}

/* Parses field text [S, END) of field F into *BITS. */
static pf_status parse_field(const char *expr, const char *s, const char *end, const field_def *f,
                             uint64_t *bits, pf_error *err)
{
    uint64_t acc = 0;
    const char *p = s;
    for (;;) {
        const char *item = p;
        int lo, hi, step = 1, star = 0, ranged = 0;
        if (p < end && *p == '*') {
            star = 1;
            lo = f->min, hi = f->max;
            p++;
        } else {
            if (!read_value(&p, end, f, &lo))
                return perr(err, expr, item, "%s: expected a number%s, '*' or a range", f->name,
                            f->names ? ", a name" : "");
            hi = lo;
            if (p < end && *p == '-') {
                ranged = 1;
                const char *v = ++p;
                if (!read_value(&p, end, f, &hi))
                    return perr(err, expr, v, "%s: expected a value after '-'", f->name);
            }
        }
        if (lo < f->min || lo > f->max || hi < f->min || hi > f->max)
            return perr(err, expr, item, "%s: value out of range %d-%d", f->name, f->min, f->max);
        if (!star && hi < lo)
            return perr(err, expr, item, "%s: range %d-%d goes backwards", f->name, lo, hi);
        if (p < end && *p == '/') {
            const char *v = ++p;
            int n = 0;
            step = 0;
            while (p < end && *p >= '0' && *p <= '9' && n < 4)
                step = step * 10 + (*p++ - '0'), n++;
            if (n == 0 || step < 1 || step > f->max - f->min + 1)
                return perr(err, expr, v, "%s: step must be a number 1-%d", f->name,
                            f->max - f->min + 1);
            if (!star && !ranged) hi = f->max; /* "N/S" means N-max/S */
        }
        for (int v = lo; v <= hi; v += step)
            acc |= UINT64_C(1) << v;
        if (p == end) break;
        if (*p != ',') return perr(err, expr, p, "%s: unexpected character '%c'", f->name, *p);
        p++;
        if (p == end || *p == ',') return perr(err, expr, p, "%s: empty item in a list", f->name);
    }
    *bits = acc;
    return PF_OK;
}

static const char *shorthand(const char *s, size_t n)
{
    static const char *const tab[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i][0]) == n && strncasecmp(s, tab[i][0], n) == 0) return tab[i][1];
    return NULL;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The longest day each month can have (February: 29). */
static const int max_mday[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

pf_status pf_cron_parse(const char *expr, pf_cron *out, pf_error *err)
{
    if (!expr || !out) return pf_error_set(err, PF_EINVAL, "pf_cron_parse: NULL argument");
    size_t len = strlen(expr);
    if (len > PF_CRON_TEXT_MAX)
        return pf_error_off(err, PF_ESYNTAX, 0, "cron expression longer than %d bytes",
                            PF_CRON_TEXT_MAX);
    const char *p = expr, *end = expr + len;
    while (p < end && is_blank(*p))
        p++;
    while (end > p && is_blank(end[-1]))
        end--;
    if (p < end && *p == '@') {
        const char *q = p;
        while (q < end && !is_blank(*q))
            q++;
        const char *full = shorthand(p, (size_t)(q - p));
        if (!full || q != end)
            return perr(err, expr, p,
                        "unknown shorthand (use @yearly, @monthly, @weekly, @daily or @hourly)");
        pf_cron c;
        pf_status st = pf_cron_parse(full, &c, err);
        if (st == PF_OK) *out = c;
        return st;
    }
    const char *fs[5], *fe[5];
    int n = 0;
    while (p < end) {
        if (n == 5)
            return perr(err, expr, p,
                        "more than five fields (ppflow cron has no seconds, year or command "
                        "field)");
        fs[n] = p;
        while (p < end && !is_blank(*p))
            p++;
        fe[n++] = p;
        while (p < end && is_blank(*p))
            p++;
    }
    if (n < 5)
        return perr(err, expr, end,
                    "expected five fields (minute hour day-of-month month day-of-week), got %d", n);
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        pf_status st = parse_field(expr, fs[i], fe[i], &fields[i], &bits[i], err);
        if (st != PF_OK) return st;
    }
    pf_cron c = {0};
    c.minute = bits[0];
    c.hour = (uint32_t)bits[1];
    c.mday = (uint32_t)bits[2];
    c.month = (uint32_t)bits[3];
    c.wday = (uint32_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
    c.mday_star = *fs[2] == '*';
    c.wday_star = *fs[4] == '*';
    if (c.mday_star || c.wday_star) {
        /* Days must match both fields: some month given must have some day given. */
        int possible = 0;
        for (int m = 1; m <= 12; m++)
            if (c.month >> m & 1)
                for (int d = 1; d <= max_mday[m]; d++)
                    if (c.mday >> d & 1) possible = 1;
        if (!possible)
            return perr(err, expr, fs[2],
                        "day of month never occurs in the months given, so it would never run");
    }
    *out = c;
    return PF_OK;
}

/* ---- next run ---- */

static int day_matches(const pf_cron *c, int mday, int wday)
{
    int dm = (int)(c->mday >> mday & 1), dw = (int)(c->wday >> wday & 1);
    return c->mday_star || c->wday_star ? dm && dw : dm || dw;
}

/* The first civil minute (minutes since the civil epoch) after CM that
 * matches C, or INT64_MAX when none within MAX_SEARCH_DAYS. */
static int64_t next_civil(const pf_cron *c, int64_t cm)
{
    cm++;
    int64_t first_day = floor_div(cm, MIN_PER_DAY);
    for (int guard = 0; guard < MAX_SEARCH_DAYS * 30; guard++) {
        int64_t day = floor_div(cm, MIN_PER_DAY);
        if (day - first_day > MAX_SEARCH_DAYS) break;
        int mod = (int)(cm - day * MIN_PER_DAY);
        int64_t y;
        int mo, d;
        civil_from_days(day, &y, &mo, &d);
        if (!(c->month >> mo & 1)) {
            cm = (mo == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, mo + 1, 1)) *
                 MIN_PER_DAY;
            continue;
        }
        if (!day_matches(c, d, weekday(day))) {
            cm = (day + 1) * MIN_PER_DAY;
            continue;
        }
        int h = mod / 60, mi = mod % 60;
        if (!(c->hour >> h & 1)) {
            cm = day * MIN_PER_DAY + (h + 1) * 60;
            continue;
        }
        uint64_t later = c->minute >> mi;
        if (!later) {
            cm = day * MIN_PER_DAY + (h + 1) * 60;
            continue;
        }
        return cm + __builtin_ctzll(later);
    }
    return INT64_MAX;
}

/* The instant of civil time L (seconds, as if UTC) in zone TZ: the first
 * occurrence when it occurs twice, the instant of the change when it falls
 * in a gap. Assumes at most one offset change within a day of L. */
static int64_t civil_to_instant(const pf_tz *tz, int64_t l)
{
    int32_t oa = pf_tz_offset(tz, l - DAY_S), ob = pf_tz_offset(tz, l + DAY_S);
    int64_t ta = l - oa, tb = l - ob;
    int va = pf_tz_offset(tz, ta) == oa, vb = pf_tz_offset(tz, tb) == ob;
    if (va && vb) return ta < tb ? ta : tb;
    if (va) return ta;
    if (vb) return tb;
    if (ob > oa) {
        /* Clocks set forward over L: find the change in (tb, ta]. */
        int64_t lo = tb, hi = ta;
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (pf_tz_offset(tz, mid) == ob)
                hi = mid;
            else
                lo = mid;
        }
        return hi;
    }
    return ta;
}

int64_t pf_cron_next(const pf_cron *c, const pf_tz *tz, int64_t after_ms)
{
    if (after_ms < MIN_TIME_MS || after_ms > MAX_TIME_MS) return INT64_MAX;
    int64_t t = floor_div(after_ms, 1000);
    int64_t cm = floor_div(t + pf_tz_offset(tz, t), 60);
    for (int i = 0; i < MAX_CANDIDATES; i++) {
        cm = next_civil(c, cm);
        if (cm == INT64_MAX) return INT64_MAX;
        int64_t s = civil_to_instant(tz, cm * 60);
        if (s > INT64_MAX / 1000 - 1) return INT64_MAX;
        if (s * 1000 > after_ms) return s * 1000;
    }
    return INT64_MAX;
}
