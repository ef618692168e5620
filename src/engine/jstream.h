/* jstream.h: an incremental (push) JSON tokenizer that validates as it goes.
 *
 * The caller feeds a document in chunks of any size (one byte at a time
 * works) and pulls events (one per token) out of each chunk. The tokenizer
 * builds nothing: it keeps a fixed state, an explicit stack of open
 * containers (no recursion) and, on request, copies of the tokens the caller
 * asked to see. It accepts exactly RFC 8259 JSON, with these decisions:
 *
 *   - whitespace is space, tab, LF and CR; a byte order mark is an error;
 *   - numbers follow the RFC grammar (no NaN, Infinity, leading zeros, '+',
 *     '.5' or '1.'); any number of digits is accepted and kept as text;
 *   - strings must be valid UTF-8 (no overlong forms, no surrogates, nothing
 *     above U+10FFFF), must not hold raw control characters (U+0000..U+001F),
 *     escapes are the RFC's eight plus \uXXXX, and a \u escape of a UTF-16
 *     surrogate must be a high surrogate immediately followed by a \u escape
 *     of a low one (an unpaired surrogate cannot be turned into UTF-8);
 *   - nesting deeper than the configured depth is PF_EDEPTH, never a crash;
 *   - a document that is only whitespace (or nothing) is reported as empty;
 *     the caller decides whether that is allowed;
 *   - duplicate member names are not the tokenizer's business (callers that
 *     care check the names they see).
 * Every error carries the absolute byte offset (from the first byte fed) of
 * the byte that made the document invalid; a truncated document reports the
 * total length. Errors are sticky: after one, every call returns it again.
 *
 * Events (pf_js_next) come one token at a time. Callers that do not need the
 * tokens inside a value silence them (pf_js_skip_value, pf_js_skip_contents):
 * silenced tokens are still fully validated, but produce no events and no
 * copies, which is the fast path. A container can also be captured
 * (pf_js_capture): its bytes are appended to a caller's capped buffer,
 * minified (whitespace outside strings removed, every other byte as sent).
 *
 * Not thread-safe; one tokenizer per document (pf_js_reset to reuse). */
#ifndef PF_ENGINE_JSTREAM_H
#define PF_ENGINE_JSTREAM_H

#include <stddef.h>

#include "util/buf.h"
#include "util/status.h"

typedef enum pf_js_token {
    PF_JS_NONE = 0,     /* no event: the chunk is consumed, feed the next one */
    PF_JS_EOF,          /* the document is complete (after pf_js_end_input) */
    PF_JS_OBJECT_BEGIN, /* '{' */
    PF_JS_OBJECT_END,   /* '}' */
    PF_JS_ARRAY_BEGIN,  /* '[' */
    PF_JS_ARRAY_END,    /* ']' */
    PF_JS_NAME,         /* a member name */
    PF_JS_STRING,       /* a string value */
    PF_JS_NUMBER,
    PF_JS_TRUE,
    PF_JS_FALSE,
    PF_JS_NULL,
} pf_js_token;

typedef struct pf_js_event {
    pf_js_token token;
    /* Containers enclosing the token: 0 for the top-level value. A
     * container's BEGIN and END have the same depth (that of the value). */
    size_t depth;
    unsigned long long offset; /* absolute offset of the token's first byte */
    /* NAME and STRING: the raw bytes between the quotes (escapes as sent;
     * see pf_js_unescape); NUMBER: the number as sent. NULL/0 for the other
     * tokens. Valid until the next call on the tokenizer. */
    const char *text;
    size_t len;
    int escaped; /* NAME/STRING: text holds at least one backslash escape */
} pf_js_event;

typedef struct pf_js pf_js;

/* A new tokenizer. MAX_DEPTH: most containers that may be open at once (a
 * document nested deeper fails with PF_EDEPTH); 0 is PF_EINVAL. MAX_TOKEN:
 * longest name, string or number (in bytes) whose text an event can carry
 * when the token is split across chunks (a longer one that is not silenced
 * fails with PF_ETOOBIG); 0 means 1 MiB. Returns NULL with ERR filled on
 * PF_ENOMEM or PF_EINVAL. Free with pf_js_free. */
pf_js *pf_js_new(size_t max_depth, size_t max_token, pf_error *err);

/* Forgets the document (state, offsets, error, capture, silencing, and a
 * string, escape or surrogate pair left half read) so that JS can read a
 * new one; keeps the limits and allocations. */
void pf_js_reset(pf_js *js);

/* Frees JS; NULL accepted. A buffer given to pf_js_capture is not freed. */
void pf_js_free(pf_js *js);

/* Gives the next chunk (DATA may be NULL when LEN is 0). The tokenizer
 * borrows DATA until pf_js_next returns PF_JS_NONE (chunk consumed), EOF or
 * an error; call pf_js_input again only then. */
void pf_js_input(pf_js *js, const char *data, size_t len);

/* Says that no more input follows: the events still pending (a top-level
 * number ends here) come out of pf_js_next, then PF_JS_EOF, or an error for
 * a truncated document. */
void pf_js_end_input(pf_js *js);

/* Produces the next event into *EV. Returns PF_OK with EV->token:
 * PF_JS_NONE when the chunk is consumed (and end of input was not given),
 * PF_JS_EOF once the document is complete and end of input was given, or a
 * token. Fails with PF_EDATA (not JSON; truncated; data after the value),
 * PF_EDEPTH, PF_ETOOBIG (a token or capture over its limit) or PF_ENOMEM,
 * filling ERR (may be NULL) with the byte offset. JS and EV must not be NULL. */
pf_status pf_js_next(pf_js *js, pf_js_event *ev, pf_error *err);

/* Right after a NAME event: the member's value (all of it) produces no
 * events. Ignored at any other time. */
void pf_js_skip_value(pf_js *js);

/* Right after an OBJECT_BEGIN or ARRAY_BEGIN event: nothing inside the
 * container produces events; its END event comes only if REPORT_END is
 * non-zero. Ignored at any other time. */
void pf_js_skip_contents(pf_js *js, int report_end);

/* Right after an OBJECT_BEGIN or ARRAY_BEGIN event: appends the container's
 * bytes, minified, to OUT (starting with the '{' or '[' just returned and
 * ending with its closing byte), then stops by itself. OUT stays the
 * caller's; its cap is the limit: reaching it fails pf_js_next with
 * PF_ETOOBIG at the container's offset. Only one capture at a time; returns
 * PF_EINVAL when called at another time or while capturing, PF_ETOOBIG or
 * PF_ENOMEM when the first byte does not fit. While capturing, NAME, STRING
 * and NUMBER event texts point into OUT (valid until the next call). */
pf_status pf_js_capture(pf_js *js, pf_buf *out, pf_error *err);

/* 1 while a capture is in progress. */
int pf_js_capturing(const pf_js *js);

/* 1 when the document was empty: PF_JS_EOF came without any value. */
int pf_js_empty(const pf_js *js);

/* Bytes consumed so far (the offset of the next byte). */
unsigned long long pf_js_offset(const pf_js *js);

/* Decodes the raw text of a validated NAME or STRING event (LEN bytes at
 * RAW) into OUT, which must have room for LEN bytes (decoding never grows
 * the text). Returns the decoded length; the result is UTF-8 and may hold
 * NUL bytes (from \u0000). RAW and OUT may not overlap unless equal. */
size_t pf_js_unescape(const char *raw, size_t len, char *out);

#endif
