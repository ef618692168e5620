/* log.h: leveled logging to stderr with secret redaction.
 *
 * Every string registered with pf_log_add_secret is replaced by "***" in
 * everything this module prints, so a credential that ends up in a server
 * message or a URL cannot reach the terminal or a log file. A message is
 * redacted whole before it is cut to the line limit (4 KiB), so no prefix of
 * a secret survives a cut. Each message is exactly one line: in text format
 * CR, LF and other control characters are written as \r, \n, \xHH (JSON
 * format escapes them as JSON does), so text quoted from a server cannot
 * forge log lines. All functions are thread-safe. */
#ifndef PF_UTIL_LOG_H
#define PF_UTIL_LOG_H

#include <stddef.h>
#include <stdio.h>

typedef enum pf_log_level {
    PF_LOG_ERROR = 0,
    PF_LOG_WARN = 1,
    PF_LOG_INFO = 2,
    PF_LOG_DEBUG = 3,
} pf_log_level;

/* Messages above LEVEL are dropped. Default: PF_LOG_INFO. */
void pf_log_set_level(pf_log_level level);
pf_log_level pf_log_get_level(void);

/* Selects "text" (default) or "json" lines (one object per line with
 * time, level, flow, msg). Returns 0, or -1 for an unknown format. */
int pf_log_set_format(const char *format);

/* Sets the flow name added to each line; NULL clears it. Copied. */
void pf_log_set_flow(const char *flow);

/* Sets the run id added to each JSON line ("run"); NULL clears it. Copied. */
void pf_log_set_run(const char *run);

/* Registers a secret to redact (copied; strings shorter than 3 bytes are
 * ignored so "***" does not replace common letters; registering one twice
 * keeps one copy). Returns 0, or -1 when out of memory or 4096 secrets are
 * registered already. */
int pf_log_add_secret(const char *secret);

/* Forgets every registered secret (their copies are wiped, then freed). */
void pf_log_clear_secrets(void);

/* Copies SRC (NULL: "") into DST (size N > 0, always NUL-terminated; N == 0:
 * nothing written) with every registered secret replaced by "***"; where
 * several secrets match at one place the longest is replaced. */
void pf_log_redact(const char *src, char *dst, size_t n);

/* Writes S to F as one text line: LF, CR and other control characters are
 * escaped (\n, \r, \xNN), so text from a server cannot forge lines. S and F
 * not NULL; no newline is added. */
void pf_log_write_escaped(FILE *f, const char *s);

void pf_log(pf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pf_log_error(...) pf_log(PF_LOG_ERROR, __VA_ARGS__)
#define pf_log_warn(...) pf_log(PF_LOG_WARN, __VA_ARGS__)
#define pf_log_info(...) pf_log(PF_LOG_INFO, __VA_ARGS__)
#define pf_log_debug(...) pf_log(PF_LOG_DEBUG, __VA_ARGS__)

#endif
