/* buf.h: a growable byte buffer with a hard cap.
 *
 * Every buffer fed by the network or by a user file is a pf_buf with a cap;
 * reaching the cap is PF_ETOOBIG, never an abort or an unbounded allocation.
 * The data is always NUL-terminated (the NUL is not counted in len). */
#ifndef PF_UTIL_BUF_H
#define PF_UTIL_BUF_H

#include <stddef.h>

#include "util/status.h"

typedef struct pf_buf {
    char *data;   /* NULL until the first append; owned by the buffer */
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t alloc; /* bytes allocated */
    size_t cap;   /* maximum len; 0 means SIZE_MAX / 2 */
} pf_buf;

/* Initialises B as empty with cap CAP (0: effectively unlimited). Allocates nothing. */
void pf_buf_init(pf_buf *b, size_t cap);

/* Appends N bytes of P. On PF_ETOOBIG or PF_ENOMEM, B is unchanged. */
pf_status pf_buf_append(pf_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
pf_status pf_buf_puts(pf_buf *b, const char *s);

/* Appends one byte. */
pf_status pf_buf_putc(pf_buf *b, char c);

/* Appends printf-style text. On failure B is unchanged. */
pf_status pf_buf_printf(pf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets len to 0, keeping the allocation. */
void pf_buf_reset(pf_buf *b);

/* Returns the data as a NUL-terminated string ("" when empty); B still owns it. */
const char *pf_buf_str(const pf_buf *b);

/* Hands the data to the caller (who frees it with free()) and empties B.
 * Returns an allocated "" when B is empty; NULL only when that allocation fails. */
char *pf_buf_steal(pf_buf *b);

/* Frees the data; B may be NULL. B can be reused after pf_buf_init. */
void pf_buf_free(pf_buf *b);

#endif
