/* log.h: leveled logging to stderr with secret redaction.
 *
 * Every string registered with pf_log_add_secret is replaced by "***" in
 * everything this module prints, so a credential that ends up in a server
 * message or a URL cannot reach the terminal or a log file. */
#ifndef PF_UTIL_LOG_H
#define PF_UTIL_LOG_H

#include <stddef.h>

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

/* Registers a secret to redact (copied; strings shorter than 3 bytes are
 * ignored so "***" does not replace common letters). Returns 0, or -1 when
 * out of memory or the table is full. */
int pf_log_add_secret(const char *secret);

/* Forgets every registered secret (and frees their copies). */
void pf_log_clear_secrets(void);

/* Copies SRC into DST (size N, always NUL-terminated) with every registered
 * secret replaced by "***". */
void pf_log_redact(const char *src, char *dst, size_t n);

void pf_log(pf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pf_log_error(...) pf_log(PF_LOG_ERROR, __VA_ARGS__)
#define pf_log_warn(...) pf_log(PF_LOG_WARN, __VA_ARGS__)
#define pf_log_info(...) pf_log(PF_LOG_INFO, __VA_ARGS__)
#define pf_log_debug(...) pf_log(PF_LOG_DEBUG, __VA_ARGS__)

#endif
