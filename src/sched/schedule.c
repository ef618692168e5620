/* schedule.c: reading a flow's `schedule:` key, and the due-time rules of
 * `every` and `cron` schedules. */
#include "sched/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/yschema.h"

void pf_schedule_format_ms(int64_t ms, char *buf, size_t n)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof units / sizeof units[0] && ms > 0; i++) {
        if (ms >= units[i].ms) {
            int w =
                snprintf(buf + o, n - o, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            if (w < 0 || (size_t)w >= n - o) return;
            o += (size_t)w;
            ms %= units[i].ms;
        }
    }
}

int pf_schedule_parse(const pf_ynode *n, pf_schedule **out, pf_diags *d)
{
    static const char *const keys[] = {"every", "cron", "timezone", NULL};
    *out = NULL;
    if (!n || n->kind != PF_Y_MAP) {
        pf_ys_error(d, n, PF_ECONFIG,
                    "schedule must be a mapping: {every: 5m} or {cron: \"*/5 * * * *\"}");
        return -1;
    }
    size_t before = d->count;
    pf_ys_check_keys(n, keys, "schedule", d);
    const pf_ynode *every = pf_ymap_get(n, "every"), *cron = pf_ymap_get(n, "cron"),
                   *zone = pf_ymap_get(n, "timezone");
    pf_schedule *s = calloc(1, sizeof *s);
    if (!s) {
        pf_ys_error(d, n, PF_ENOMEM, "out of memory");
        return -1;
    }
    if (every && cron) {
        pf_ys_error(d, cron, PF_ECONFIG, "schedule has both every and cron; give one");
    } else if (!every && !cron) {
        pf_ys_error(d, n, PF_ECONFIG,
                    "schedule needs every (e.g. every: 5m) or cron (e.g. cron: \"*/5 * * * *\")");
    } else if (every) {
        s->kind = PF_SCHEDULE_EVERY;
        int64_t ms;
        if (pf_ys_duration(every, "schedule.every", &ms, d) == 0) {
            if (ms < PF_SCHEDULE_MIN_EVERY_MS || ms > PF_SCHEDULE_MAX_EVERY_MS)
                pf_ys_error(d, every, PF_ECONFIG,
                            "schedule.every must be between 1s and 366d, got '%s'", every->value);
            else
                s->every_ms = ms;
        }
        if (zone)
            pf_ys_error(d, zone, PF_ECONFIG,
                        "schedule.timezone applies to cron schedules only (every counts from "
                        "the end of the previous run)");
    } else {
        s->kind = PF_SCHEDULE_CRON;
        if ((s->cron_text = pf_ys_string(cron, "schedule.cron", d))) {
            pf_error e;
            pf_error_clear(&e);
            if (pf_cron_parse(s->cron_text, &s->cron, &e) != PF_OK)
                pf_ys_error(d, cron, e.code, "%s (at character %ld)", e.msg, e.offset + 1);
        }
        char *zn = zone ? pf_ys_string(zone, "schedule.timezone", d) : strdup("UTC");
        if (!zone && !zn) pf_ys_error(d, n, PF_ENOMEM, "out of memory");
        if (zn) {
            pf_error e;
            pf_error_clear(&e);
            if (pf_tz_load(zn, &s->tz, &e) != PF_OK)
                pf_ys_error(d, zone ? zone : n, e.code == PF_ENOMEM ? PF_ENOMEM : PF_ECONFIG,
                            "schedule.timezone: %s", e.msg);
            s->tz_name = zn;
        }
    }
    if (d->count > before || d->oom) {
        pf_schedule_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void pf_schedule_free(pf_schedule *s)
{
    if (!s) return;
    free(s->cron_text);
    free(s->tz_name);
    pf_tz_free(s->tz);
    free(s);
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int pf_schedule_equal(const pf_schedule *a, const pf_schedule *b)
{
    if (!a || !b) return a == b;
    if (a->kind != b->kind) return 0;
    if (a->kind == PF_SCHEDULE_EVERY) return a->every_ms == b->every_ms;
    return memcmp(&a->cron, &b->cron, sizeof a->cron) == 0 && str_eq(a->tz_name, b->tz_name);
}

int64_t pf_schedule_first(const pf_schedule *s, int64_t now_ms)
{
    if (s->kind == PF_SCHEDULE_EVERY) return now_ms;
    return pf_cron_next(&s->cron, s->tz, now_ms);
}

int64_t pf_schedule_after_run(const pf_schedule *s, int64_t started_ms, int64_t ended_ms)
{
    if (s->kind == PF_SCHEDULE_EVERY) {
        int64_t due;
        if (__builtin_add_overflow(ended_ms, s->every_ms, &due)) return INT64_MAX;
        return due;
    }
    int64_t next = pf_cron_next(&s->cron, s->tz, started_ms);
    return next <= ended_ms ? ended_ms : next;
}

void pf_schedule_describe(const pf_schedule *s, char *buf, size_t n)
{
    if (s->kind == PF_SCHEDULE_EVERY) {
        char d[64];
        pf_schedule_format_ms(s->every_ms, d, sizeof d);
        snprintf(buf, n, "every %s", d);
    } else {
        snprintf(buf, n, "cron '%s' in %s", s->cron_text, s->tz_name);
    }
}
