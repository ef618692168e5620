/* progress.h: the live progress line of a long `ppflow run` on a terminal.
 *
 * One line on stderr, rewritten in place at most a few times a second:
 * units done of the total when known (windows or pages), records, the record
 * rate and the elapsed time. It is drawn only when both stdout and stderr are
 * terminals (never into a pipe, a file or a journal), and log lines clear it
 * before they print (pf_progress_clear is the log module's hook). */
#ifndef PF_UTIL_PROGRESS_H
#define PF_UTIL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct pf_progress {
    FILE *out;        /* NULL: disabled */
    const char *unit; /* "windows", "pages", "requests" */
    long long total;  /* 0: unknown */
    long long done, records, bytes;
    int64_t start_ms, drawn_ms;
    int visible; /* a line is on the screen */
} pf_progress;

/* Starts P for TOTAL units (0: unknown) of UNIT (a string literal). Enabled
 * when ENABLE is non-zero and stdout and stderr are both terminals; OUT is
 * normally stderr (tests pass a file with FORCE set to draw regardless). */
void pf_progress_start(pf_progress *p, const char *unit, long long total, int enable, FILE *out,
                       int force);

/* Records progress and redraws when the last drawing is older than 200 ms
 * (or FORCE_DRAW). */
void pf_progress_update(pf_progress *p, long long done, long long records, long long bytes,
                        int force_draw);

/* Formats the line for P at NOW_MS into BUF (LEN bytes). */
void pf_progress_format(const pf_progress *p, int64_t now_ms, char *buf, size_t len);

/* Erases the line if one is visible (before other output). */
void pf_progress_clear(pf_progress *p);

/* Erases the line and disables P. */
void pf_progress_finish(pf_progress *p);

/* Erases the line of the progress drawn last, if one is on the screen (the
 * logger calls it before every message). */
void pf_progress_clear_active(void);

#endif
