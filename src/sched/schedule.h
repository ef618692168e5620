/* schedule.h: a flow's `schedule:` key and when its runs are due.
 *
 *   schedule: {every: 5m}                      # units s, m, h, d (or ISO 8601, PT5M)
 *   schedule: {cron: "*\/5 * * * *"}            # five-field cron, UTC
 *   schedule: {cron: "0 6 * * mon-fri", timezone: Europe/Berlin}
 *
 * `every` counts from the end of the previous run (a run that takes longer
 * than the interval is followed by the next one an interval after it ends;
 * runs never pile up). `cron` runs at the times the expression names; when a
 * run ends after the next of those times, one catch-up run starts at once
 * and the times missed meanwhile are not run again. Times are milliseconds
 * since the epoch on the scheduler's clock (pf_time_now_ms). */
#ifndef PF_SCHED_SCHEDULE_H
#define PF_SCHED_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "flow/yaml.h"
#include "sched/cron.h"
#include "sched/tz.h"
#include "util/diag.h"

#define PF_SCHEDULE_MIN_EVERY_MS 1000
#define PF_SCHEDULE_MAX_EVERY_MS (INT64_C(366) * 86400 * 1000)

typedef enum pf_schedule_kind {
    PF_SCHEDULE_EVERY, /* an interval after the end of the previous run */
    PF_SCHEDULE_CRON,  /* at the times a cron expression names */
} pf_schedule_kind;

typedef struct pf_schedule {
    pf_schedule_kind kind;
    int64_t every_ms; /* EVERY: 1 s .. 366 days */
    char *cron_text;  /* CRON: the expression as written; NULL for EVERY */
    pf_cron cron;     /* CRON */
    char *tz_name;    /* CRON: the zone's name ("UTC" when not given); NULL for EVERY */
    pf_tz *tz;        /* CRON: the loaded zone */
} pf_schedule;

/* Reads the `schedule:` value N (a mapping with `every`, or `cron` and an
 * optional `timezone`; borrowed). On success *OUT owns a new schedule and 0
 * is returned. On failure every problem is added to D with the flow file's
 * FILE:LINE:COL (an invalid cron expression also names the character), *OUT
 * is NULL and -1 is returned. The time zone file is read here, so an unknown
 * zone is a load error, not a runtime one. */
int pf_schedule_parse(const pf_ynode *n, pf_schedule **out, pf_diags *d);

/* Frees S; NULL is accepted. */
void pf_schedule_free(pf_schedule *s);

/* 1 when A and B describe the same schedule (both may be NULL). */
int pf_schedule_equal(const pf_schedule *a, const pf_schedule *b);

/* When the first run is due for a scheduler started at NOW_MS: at once for
 * EVERY, the next cron time after NOW_MS for CRON. S: not NULL. */
int64_t pf_schedule_first(const pf_schedule *s, int64_t now_ms);

/* When the next run is due after a run that started at STARTED_MS and
 * ended at ENDED_MS: ENDED_MS + interval for EVERY; for CRON the first cron
 * time after STARTED_MS, or ENDED_MS itself (one catch-up run, at once) when
 * that time passed while the run was going. S: not NULL. */
int64_t pf_schedule_after_run(const pf_schedule *s, int64_t started_ms, int64_t ended_ms);

/* Writes duration MS (> 0) the way schedules are written ("1h30m", "2m",
 * "45s") into BUF (size N > 0, always NUL-terminated); "" for MS <= 0. */
void pf_schedule_format_ms(int64_t ms, char *buf, size_t n);

/* Writes a short description ("every 5m", "cron '0 6 * * *' in Europe/Berlin")
 * into BUF (size N > 0, always NUL-terminated). S: not NULL. */
void pf_schedule_describe(const pf_schedule *s, char *buf, size_t n);

#endif
