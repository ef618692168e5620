/* urldefense.h: offline decoding of Proofpoint URL Defense rewritten URLs (v1, v2, v3).
 *
 * Decodes one rewritten URL back to the original target without calling the
 * TAP URL Decoder API. The rules follow the official Proofpoint decoder
 * (docs/urldefense.md lists them), except where it is known to give wrong
 * answers or crash; there this decoder is strict:
 *   - v3 run markers count BYTES (as Proofpoint's rewriter does), not characters;
 *   - a v3 marker that wants more replacement bytes than remain is an error;
 *   - the v3 replacement string must be base64url (also '+' '/', trailing '=');
 *   - a decoded NUL byte is an error;
 *   - v1/v2 HTML unescaping only decodes &amp; &lt; &gt; &quot; &apos; (and their
 *     upper-case forms) and numeric references, each only with the closing ';',
 *     so query parameters such as &copy= or &region= survive;
 *   - v1/v2 also accept HTML-escaped separators (&amp;k=, &amp;d=, &amp;c=).
 * The decoder never recurses, never reads outside IN[0..LEN) and allocates at
 * most a small multiple of LEN. */
#ifndef PF_PROOFPOINT_URLDEFENSE_H
#define PF_PROOFPOINT_URLDEFENSE_H

#include <stddef.h>

#include "util/buf.h"
#include "util/status.h"

/* Longest input accepted, in bytes. Longer input is PF_ETOOBIG. */
#define PF_URLDEFENSE_MAX_INPUT (64u * 1024u)

/* Tells whether IN[0..LEN) starts with a URL Defense prefix
 * ("https://urldefense.com/vN/" or "https://urldefense.proofpoint.com/vN/",
 * case-sensitive, N one digit). Returns N (0-9) when it does, -1 when it does
 * not. Only 1, 2 and 3 can be decoded. Reads at most the prefix; IN may be
 * NULL when LEN is 0. Never fails. */
int pf_urldefense_detect(const char *in, size_t len);

/* Decodes the rewritten URL IN[0..LEN) (not NUL-terminated; need not be) and
 * APPENDS the original URL to OUT. IN must start with the URL Defense prefix:
 * no leading or trailing whitespace is skipped. The decoded bytes are valid
 * UTF-8 without NUL bytes; OUT keeps its own NUL terminator after them.
 *
 * VERSION_OUT (may be NULL) is set to 0 first, then to 1, 2 or 3 as soon as
 * the version is recognised, so it is meaningful on failure too. ERR (may be
 * NULL) is filled on failure. OUT is owned by the caller and must have been
 * initialised with pf_buf_init.
 *
 * Returns:
 *   PF_OK       the decoded URL was appended to OUT;
 *   PF_EDATA    IN is not a URL Defense URL ("not a URL Defense URL"), has an
 *               unsupported version, or is malformed; for malformed input
 *               ERR->offset is the byte offset in IN of the problem
 *               (pf_error_format prints "... at offset N");
 *   PF_ETOOBIG  LEN exceeds PF_URLDEFENSE_MAX_INPUT, or OUT's cap was reached;
 *   PF_ENOMEM   an allocation failed;
 *   PF_EINVAL   OUT is NULL, or IN is NULL with LEN > 0.
 * On any failure OUT is unchanged. */
pf_status pf_urldefense_decode(const char *in, size_t len, pf_buf *out, int *version_out,
                               pf_error *err);

#endif
