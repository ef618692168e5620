/* log.h: leveled logging to stderr with secret redaction.
 *
 * Every string registered with pf_log_add_secret is replaced by "***" in
 * everything this module prints, so a credential that ends up in a server
 * message or a URL cannot reach the terminal or a log file. A message is
 * redacted whole before it is cut to the line limit (4 KiB), so no prefix of
 * a secret survives a cut. Each message is exactly one line: in text format
 * CR, LF and other control characters are written as \r, \n, \xHH (JSON
 * format escapes them as JSON does), so text quoted from a server cannot
 * forge log lines. All functions are thread-safe.
 *
 * What counts as an occurrence of a secret S (each is replaced by "***"):
 *   - S itself, byte for byte;
 *   - S inside a JSON string as any JSON encoder may write it: every byte of
 *     S either as is or escaped (\" \\ \/ \b \f \n \r \t, \uXXXX with upper-
 *     or lower-case hex, a UTF-8 character as one \uXXXX or as a surrogate
 *     pair), in any mix;
 *   - S percent-encoded as in a URL query: any byte as %XX (upper- or
 *     lower-case hex) or as is, a space also as '+';
 *   - S HTML-escaped: any character as is or as &amp; &lt; &gt; &quot;
 *     &apos; (those five names in any letter case) or as a numeric reference
 *     &#DDD; / &#xHHH; (the ';' is required).
 * The text is decoded on the fly while matching (nothing extra is
 * registered), so the cost is bounded by the text's length times the
 * number of secrets that could start at each position.
 * Limits: one level of encoding only (a JSON string holding a
 * percent-encoded secret, or an escape of an escape, is not recognised);
 * other encodings (base64, punycode, Latin-1 re-encodings, a '?' put in
 * place of a character) are not recognised, so a caller registers the
 * encoded form itself when it makes one (the HTTP layer registers the
 * base64 Basic token); a secret that is not valid UTF-8 is found raw and
 * percent-encoded only. Where matches overlap, the union of their spans is
 * replaced (by one "***"), so neither a longer nor a shorter secret can
 * leave part of the other visible. */
#ifndef PF_UTIL_LOG_H
#define PF_UTIL_LOG_H

#include <stdarg.h>
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
 * keeps one copy). The copy belongs to the current scope (see
 * pf_log_secret_scope). Returns 0, or -1 when out of memory or 4096 secrets
 * are registered already. */
int pf_log_add_secret(const char *secret);

/* Values of 8 bytes or more are registered by pf_log_add_weak_secret. */
#define PF_LOG_WEAK_SECRET_MIN 8

/* Registers a value that may be a credential but may as well be an ordinary
 * setting: a ${VAR} value in a query, a header, a body or a sink option. It
 * is redacted like any secret (shorter than PF_LOG_WEAK_SECRET_MIN bytes it
 * is ignored, so a limit of 100 or a region name stays readable), but it
 * does not count for pf_log_holds_credential: a next link that echoes a
 * query's ${VAR} value may be kept in a checkpoint. Registering it with
 * pf_log_add_secret too (a credential-like name) makes it a credential.
 * Returns as pf_log_add_secret. */
int pf_log_add_weak_secret(const char *secret);

/* 1 when S (NULL: 0) holds a secret registered with pf_log_add_secret, raw or
 * encoded as the redaction finds it (weak secrets do not count); also 1 when
 * memory runs out to tell. ppflow never stores such a text in a checkpoint. */
int pf_log_holds_credential(const char *s);

/* Sets the scope of the secrets registered from now on (SCOPE copied, at
 * most 4095 bytes are kept; NULL: no scope, the default). The scheduler
 * loads each flow file with its path as the scope, so that the process that
 * runs one flow keeps exactly that flow's secrets (pf_log_keep_secrets_of).
 * A secret already registered without a scope stays unscoped. */
void pf_log_secret_scope(const char *scope);

/* Forgets (wipes, then frees) every secret registered under a scope other
 * than SCOPE; secrets registered without a scope are kept. SCOPE NULL
 * keeps the unscoped secrets only. */
void pf_log_keep_secrets_of(const char *scope);

/* Forgets every registered secret (their copies are wiped, then freed). */
void pf_log_clear_secrets(void);

/* Copies SRC (NULL: "") into DST (size N > 0, always NUL-terminated; N == 0:
 * nothing written) with every occurrence of a registered secret (see the
 * top of this file) replaced by "***". SRC is matched whole before DST's
 * size cuts the result, so no part of a secret that straddles the cut is
 * written (a cut "***" may show as "*" or "**"); a cut never splits a
 * UTF-8 character. */
void pf_log_redact(const char *src, char *dst, size_t n);

/* Redacts the LEN bytes at SRC (NUL bytes included: they are kept, and
 * are never part of a secret) into a new NUL-terminated string, which is
 * never longer than LEN; *OUT_LEN (may be NULL) gets its length. SRC may be
 * NULL when LEN is 0. Returns the string (the caller frees it), or NULL when
 * out of memory. */
char *pf_log_redact_dup(const char *src, size_t len, size_t *out_len);

/* Formats FMT with AP whole (however long), redacts the whole text, then
 * writes it into DST (size N > 0, cut as pf_log_redact cuts). When memory
 * runs out for a long text, DST gets "(message withheld: out of memory)". */
void pf_log_vformat_redacted(char *dst, size_t n, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void pf_log_format_redacted(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
