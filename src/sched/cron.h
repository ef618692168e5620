/* cron.h: five-field cron expressions and their next run time, in UTC or in
 * a time zone.
 *
 * Syntax (as Vixie cron): "MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK",
 * fields separated by blanks. Each field is a comma-separated list of items;
 * an item is `*`, a value `N`, or a range `N-M`, optionally followed by a
 * step `/S` (`*` + `/S` starts at the field's minimum; `N/S` means `N-max/S`).
 * Ranges:
 *   minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec,
 *   day of week 0-7 or sun-sat (0 and 7 are Sunday).
 * Names are case-insensitive. The shorthands @yearly (@annually), @monthly,
 * @weekly, @daily (@midnight) and @hourly are accepted; @reboot is not.
 *
 * Day matching follows Vixie cron: when either day field starts with `*`
 * (even `*` + `/2`), a day must match both fields; when both are restricted, a day
 * matching either one runs ("0 0 1,15 * mon": the 1st, the 15th and every
 * Monday). An expression that can never run (day 30 of February) is
 * refused when parsed.
 *
 * Time zones: the fields are matched against the civil time of the zone.
 * A civil time that occurs twice (clocks set back) runs once, at its first
 * occurrence; a civil time that does not occur (clocks set forward) runs at
 * the instant of the change, once even when several such times match. */
#ifndef PF_SCHED_CRON_H
#define PF_SCHED_CRON_H

#include <stdint.h>

#include "sched/tz.h"
#include "util/status.h"

typedef struct pf_cron {
    uint64_t minute; /* bit N: minute N matches (0-59) */
    uint32_t hour;   /* bits 0-23 */
    uint32_t mday;   /* bits 1-31 */
    uint32_t month;  /* bits 1-12 */
    uint32_t wday;   /* bits 0-6, 0 = Sunday */
    int mday_star;   /* the day-of-month field starts with '*' */
    int wday_star;   /* the day-of-week field starts with '*' */
} pf_cron;

#define PF_CRON_TEXT_MAX 256

/* Parses EXPR (NUL-terminated, at most PF_CRON_TEXT_MAX bytes) into *OUT.
 * EXPR, OUT: not NULL; OUT is written only on success.
 * Returns PF_OK, PF_ESYNTAX with ERR's message naming the field and the
 * problem and ERR's offset set to the byte offset in EXPR where it is, or
 * PF_EINVAL for NULL arguments. */
pf_status pf_cron_parse(const char *expr, pf_cron *out, pf_error *err);

/* The first instant strictly after AFTER_MS (epoch milliseconds) at which C
 * runs in zone TZ (NULL: UTC), in epoch milliseconds (a whole second).
 * C: not NULL, from pf_cron_parse. Returns INT64_MAX when C never runs in
 * the next 30 years (pf_cron_parse refuses expressions that cannot run, so
 * this does not happen for them) or AFTER_MS is outside years 0001-9999. */
int64_t pf_cron_next(const pf_cron *c, const pf_tz *tz, int64_t after_ms);

#endif
