/* timeutil.h: ISO 8601 / RFC 3339 times, durations and intervals, and "now".
 *
 * A time is an int64_t count of milliseconds since 1970-01-01T00:00:00Z (UTC),
 * negative before it. Parsing and formatting are pure arithmetic (Howard
 * Hinnant's days-from-civil): no timegm(), no TZ variable, no locale.
 * Durations are int64_t milliseconds, never negative.
 *
 * Every function taking `pf_error *err` accepts err == NULL; on failure it
 * fills ERR with a message that quotes the offending text, and leaves the
 * output arguments unchanged. */
#ifndef PF_UTIL_TIMEUTIL_H
#define PF_UTIL_TIMEUTIL_H

#include <stdint.h>

#include "util/status.h"

/* Size of the buffer pf_time_format writes (enough for any int64_t time). */
#define PF_TIME_FMT_SIZE 32

/* Parses an RFC 3339 date-time:
 *     YYYY-MM-DD('T'|'t'|' ')HH:MM:SS[('.'|',')d+][ 'Z' | 'z' | ±HH:MM | ±HHMM ]
 * No offset means UTC. Fractions beyond milliseconds are truncated (not
 * rounded). Strict: every field has its exact digit count, fields are range
 * checked (month 1-12, day within the month, leap years, hour 0-23, minute
 * and second 0-59; leap second 60 and hour 24 are refused, offsets up to
 * ±23:59), and nothing may follow. Date-only text is refused.
 * S: NUL-terminated, not NULL. MS_OUT: not NULL; written only on success.
 * Returns PF_OK, PF_ESYNTAX (malformed or out of range) or PF_EINVAL (NULL). */
pf_status pf_time_parse(const char *s, int64_t *ms_out, pf_error *err);

/* Writes MS as "YYYY-MM-DDTHH:MM:SSZ", with ".fff" before the Z only when
 * MS % 1000 != 0. Years outside 0000-9999 are written with as many digits as
 * needed (and a '-' before the year when negative), so the output is
 * parseable again only for years 0000-9999. BUF: at least PF_TIME_FMT_SIZE
 * bytes, always NUL-terminated. Cannot fail. */
void pf_time_format(int64_t ms, char buf[PF_TIME_FMT_SIZE]);

/* Parses a duration into milliseconds. Accepted forms:
 *   - ISO 8601: "P" [nW] [nD] ["T" [nH] [nM] [nS]], e.g. P1D, PT30M, PT1H30M,
 *     PT0.5S, P1W, P1DT12H. Designators are case-insensitive ("pt1h"); each
 *     at most once and in the order W D T H M S; the last one given
 *     may have a fraction ('.' or ','). Years and months ("P1Y", "P2M") are
 *     refused because they have no fixed length.
 *   - short forms: one or more <number><unit> with unit ms, s, m, h, d or w
 *     ("30s", "5m", "1h", "7d", "250ms", "1h30m", "1.5h"), or a bare
 *     number meaning seconds ("90", "0.25").
 * The result is truncated to whole milliseconds. Zero is accepted (callers
 * that need a positive duration check it). No sign, no spaces.
 * Returns PF_OK, PF_ESYNTAX (malformed, years/months), PF_ETOOBIG (does not
 * fit in int64_t milliseconds) or PF_EINVAL (NULL argument). */
pf_status pf_duration_parse(const char *s, int64_t *ms_out, pf_error *err);

/* Parses an ISO 8601 time interval in one of three forms:
 *     <start>/<end>   <duration>/<end>   <start>/<duration>
 * where <start>/<end> are pf_time_parse times and <duration> is anything
 * pf_duration_parse accepts. The interval must not be empty: end > start
 * (so a zero duration is refused too). Repeating intervals ("R/...") and
 * <duration>/<duration> are refused.
 * START_MS, END_MS: not NULL; written only on success.
 * Returns PF_OK, PF_ESYNTAX, PF_ETOOBIG (arithmetic overflow) or PF_EINVAL. */
pf_status pf_interval_parse(const char *s, int64_t *start_ms, int64_t *end_ms, pf_error *err);

/* Returns "now" in milliseconds since the epoch.
 * If the environment variable PPFLOW_NOW is set and non-empty, it is parsed
 * with pf_time_parse and that fixed time is returned instead of the clock
 * (tests and reproducible runs use this to pin "now"). Otherwise, if
 * PPFLOW_TEST_CLOCK is set and non-empty, the test clock it describes is read
 * (see pf_test_clock_parse). An unparseable PPFLOW_NOW or PPFLOW_TEST_CLOCK
 * is ignored, with one warning logged, and the real clock is used.
 * Use this for business logic ("the last hour"), not for sleeping or
 * timeouts. */
int64_t pf_time_now_ms(void);

/* A test clock (tests only): a clock that reads START at real wall-clock
 * time ANCHOR and then runs SPEED times faster than real time, so that a
 * scheduler test covers hours in seconds. Several processes given the same
 * anchored clock agree on "now". */
typedef struct pf_test_clock {
    int64_t start_ms;  /* what the clock reads at the anchor */
    int64_t speed;     /* test milliseconds per real millisecond, 1..100000 */
    int64_t anchor_ms; /* real wall-clock time (pf_time_real_ms) of the start */
    int anchored;      /* 0: no anchor given; the reader picks one */
} pf_test_clock;

#define PF_TEST_CLOCK_ENV "PPFLOW_TEST_CLOCK"
#define PF_TEST_CLOCK_FMT_SIZE 96

/* Parses "START@SPEED" or "START@SPEED@ANCHOR": START is a pf_time_parse
 * time, SPEED an integer 1..100000, ANCHOR an integer count of real epoch
 * milliseconds. SPEC, OUT: not NULL; OUT is written only on success.
 * Returns PF_OK, PF_ESYNTAX (message quotes SPEC) or PF_EINVAL (NULL). */
pf_status pf_test_clock_parse(const char *spec, pf_test_clock *out, pf_error *err);

/* What clock C reads at real wall-clock time REAL_MS:
 * start + (REAL_MS - anchor) * speed, saturated at the int64_t limits.
 * C: not NULL, anchored. */
int64_t pf_test_clock_at(const pf_test_clock *c, int64_t real_ms);

/* Writes anchored clock C as "START@SPEED@ANCHOR" (parseable again) into
 * BUF, always NUL-terminated. */
void pf_test_clock_format(const pf_test_clock *c, char buf[PF_TEST_CLOCK_FMT_SIZE]);

/* Returns the real wall clock (CLOCK_REALTIME) in milliseconds, ignoring
 * PPFLOW_NOW. For comparisons with times sent by servers (Retry-After). */
int64_t pf_time_real_ms(void);

/* Returns a monotonic clock in milliseconds (CLOCK_MONOTONIC), for measuring
 * elapsed time and deadlines. Its origin is unspecified. */
int64_t pf_time_mono_ms(void);

#endif
