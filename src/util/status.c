/* status.c: status names and the pf_error helpers (messages are redacted
 * whole before they are cut to PF_ERROR_MSG_MAX). */
#include "util/status.h"

#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *pf_strerror(pf_status code)
{
    /* No default: -Wswitch flags a code added without a message. */
    switch (code) {
    case PF_OK: return "no error";
    case PF_ENOMEM: return "out of memory";
    case PF_EINVAL: return "invalid argument";
    case PF_ESYNTAX: return "syntax error";
    case PF_ECONFIG: return "configuration error";
    case PF_EIO: return "input/output error";
    case PF_ENET: return "network error";
    case PF_EHTTP: return "HTTP error";
    case PF_ETOOBIG: return "size limit reached";
    case PF_EDATA: return "malformed data";
    case PF_ESTATE: return "checkpoint error";
    case PF_ESINK: return "sink error";
    case PF_ENOTFOUND: return "not found";
    case PF_EDEPTH: return "nesting limit reached";
    case PF_EINTERRUPTED: return "interrupted";
    case PF__STATUS_COUNT: break;
    }
    return "unknown status";
}

void pf_error_clear(pf_error *e)
{
    if (!e) return;
    e->code = PF_OK;
    e->retriable = 0;
    e->fatal = 0;
    e->file[0] = '\0';
    e->line = e->col = 0;
    e->offset = -1;
    e->msg[0] = '\0';
}

/* The message is formatted whole and redacted before it is cut to the
 * size of MSG, so a registered secret that would straddle the cut leaves no
 * part of itself behind. */
static void set_msg(pf_error *e, const char *fmt, va_list ap)
{
    pf_log_vformat_redacted(e->msg, sizeof e->msg, fmt, ap);
}

pf_status pf_error_set(pf_error *e, pf_status code, const char *fmt, ...)
{
    if (!e) return code;
    pf_error_clear(e);
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    set_msg(e, fmt, ap);
    va_end(ap);
    return code;
}

pf_status pf_error_at(pf_error *e, pf_status code, const char *file, int line, int col,
                      const char *fmt, ...)
{
    if (!e) return code;
    pf_error_clear(e);
    e->code = code;
    if (file) snprintf(e->file, sizeof e->file, "%s", file);
    e->line = line;
    e->col = col;
    va_list ap;
    va_start(ap, fmt);
    set_msg(e, fmt, ap);
    va_end(ap);
    return code;
}

pf_status pf_error_off(pf_error *e, pf_status code, long offset, const char *fmt, ...)
{
    if (!e) return code;
    pf_error_clear(e);
    e->code = code;
    e->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    set_msg(e, fmt, ap);
    va_end(ap);
    return code;
}

void pf_error_prefix(pf_error *e, const char *fmt, ...)
{
    if (!e) return;
    char pre[PF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char joined[2 * PF_ERROR_MSG_MAX + 2];
    snprintf(joined, sizeof joined, "%s: %s", pre, e->msg);
    memcpy(e->msg, joined, sizeof e->msg - 1);
    e->msg[sizeof e->msg - 1] = '\0';
}

void pf_error_format(const pf_error *e, char *buf, size_t n)
{
    if (!buf || n == 0) return;
    const char *msg = e->msg[0] ? e->msg : pf_strerror(e->code);
    if (e->file[0] && e->line > 0)
        snprintf(buf, n, "%s:%d:%d: %s", e->file, e->line, e->col > 0 ? e->col : 1, msg);
    else if (e->file[0])
        snprintf(buf, n, "%s: %s", e->file, msg);
    else if (e->offset >= 0)
        snprintf(buf, n, "%s at offset %ld", msg, e->offset);
    else
        snprintf(buf, n, "%s", msg);
}
