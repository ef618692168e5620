/* tz.h: time zones for cron schedules, read from the system's zoneinfo.
 *
 * A zone is loaded once from a TZif file (RFC 8536, versions 1 to 4) under
 * $TZDIR or /usr/share/zoneinfo, and answers "what is the UTC offset at this
 * instant" with pure arithmetic: its transition table, and for instants after
 * the last transition the POSIX TZ rule in the file's footer. Nothing here
 * touches the TZ environment variable, tzset() or localtime(), so a loaded
 * zone is immutable and may be used from any thread. Leap-second records
 * ("right/" zones) are skipped: cron times are civil times. */
#ifndef PF_SCHED_TZ_H
#define PF_SCHED_TZ_H

#include <stdint.h>

#include "util/status.h"

typedef struct pf_tz pf_tz;

#define PF_TZ_NAME_MAX 255
#define PF_TZ_FILE_MAX (256 * 1024)

/* Loads zone NAME ("Europe/Berlin", "America/New_York", "UTC").
 * "UTC", "Etc/UTC" and "Z" need no file. NAME must be a relative path of
 * letters, digits and "_+-./" without "." or ".." components.
 * On success *OUT owns a new zone (free with pf_tz_free).
 * Returns PF_OK; PF_EINVAL (NULL arguments, or a NAME that is not a zone
 * name); PF_ENOTFOUND (no such zone file, message names the directory);
 * PF_EDATA (the file is not a valid TZif file); PF_EIO; PF_ENOMEM.
 * On failure *OUT is unchanged. */
pf_status pf_tz_load(const char *name, pf_tz **out, pf_error *err);

/* Parses a zone from LEN bytes of TZif DATA (named NAME in messages and by
 * pf_tz_name). As pf_tz_load after the file is read. */
pf_status pf_tz_parse(const char *name, const unsigned char *data, size_t len, pf_tz **out,
                      pf_error *err);

/* The zone's name as loaded. Z: not NULL. */
const char *pf_tz_name(const pf_tz *z);

/* The offset from UTC, in seconds east, in effect at instant T (seconds
 * since the epoch). Z may be NULL, meaning UTC (returns 0). Cannot fail. */
int32_t pf_tz_offset(const pf_tz *z, int64_t t);

/* Frees Z; NULL is accepted. */
void pf_tz_free(pf_tz *z);

#endif
