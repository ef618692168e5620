/* status.h: ppflow's one status enum and the error record every module fills.
 *
 * Codes are never renumbered; new ones are appended before PF__STATUS_COUNT.
 * A pf_error carries the code, a message, where the problem is (FILE:LINE:COL
 * in a YAML file, or a byte offset in a JSONPath query) and whether retrying
 * the same operation could succeed. */
#ifndef PF_UTIL_STATUS_H
#define PF_UTIL_STATUS_H

#include <stddef.h>

typedef enum pf_status {
    PF_OK = 0,
    PF_ENOMEM = 1,     /* an allocation failed */
    PF_EINVAL = 2,     /* a caller passed an invalid argument */
    PF_ESYNTAX = 3,    /* a user file or query does not parse */
    PF_ECONFIG = 4,    /* a flow or template parses but is wrong */
    PF_EIO = 5,        /* a local file operation failed */
    PF_ENET = 6,       /* connection failed, reset, timed out */
    PF_EHTTP = 7,      /* the server answered with an error status */
    PF_ETOOBIG = 8,    /* a capped buffer or limit was reached */
    PF_EDATA = 9,      /* a response or record is malformed */
    PF_ESTATE = 10,    /* the checkpoint file is unreadable or inconsistent */
    PF_ESINK = 11,     /* a sink refused or failed */
    PF_ENOTFOUND = 12, /* a named template, sink, file or key does not exist */
    PF_EDEPTH = 13,    /* a nesting limit was reached */
    PF_EINTERRUPTED = 14, /* stopped by a signal or a caller's request */
    PF__STATUS_COUNT
} pf_status;

/* Returns a static, human-readable name for CODE; never NULL. */
const char *pf_strerror(pf_status code);

#define PF_ERROR_MSG_MAX 512
#define PF_ERROR_FILE_MAX 256

typedef struct pf_error {
    pf_status code;
    int retriable;             /* 1 when the same call may succeed later */
    int fatal; /* 1 when nothing can succeed until the destination is changed
                  (a sink answered PF_SINK_FATAL): the run stops at once */
    char file[PF_ERROR_FILE_MAX]; /* "" when the error has no file */
    int line, col;             /* 1-based; 0 when unknown */
    long offset;               /* byte offset in a query; -1 when none */
    char msg[PF_ERROR_MSG_MAX];
} pf_error;

/* Resets E to "no error" (code PF_OK, empty message, no position). E may be NULL. */
void pf_error_clear(pf_error *e);

/* Sets code and printf-style message, clearing any position. Returns CODE, so
 * callers can write `return pf_error_set(err, PF_EIO, "...")`. E may be NULL.
 * The message is formatted whole, every secret registered with
 * pf_log_add_secret is redacted, and only then is it cut to
 * PF_ERROR_MSG_MAX (so are the pf_error_at/_offset variants'). */
pf_status pf_error_set(pf_error *e, pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As pf_error_set, with a FILE:LINE:COL position (FILE may be NULL). */
pf_status pf_error_at(pf_error *e, pf_status code, const char *file, int line, int col,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* As pf_error_set, with a byte offset into a query. */
pf_status pf_error_off(pf_error *e, pf_status code, long offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the current message with "PREFIX: " (keeps code and position). */
void pf_error_prefix(pf_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the user-facing form into BUF (always NUL-terminated when N > 0):
 * "FILE:LINE:COL: msg", "FILE: msg", "msg at offset N" or "msg". */
void pf_error_format(const pf_error *e, char *buf, size_t n);

#endif
