/* jp_utf8.h: the UTF-8 helpers the JSONPath lexer, regex translator and
 * length() function share (internal to src/jsonpath). */
#ifndef PF_JSONPATH_JP_UTF8_H
#define PF_JSONPATH_JP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at S (N > 0 bytes available). Returns its length
 * (1..4) and stores the scalar value in *CP, or returns 0 when the bytes are
 * not well-formed UTF-8 (overlong, surrogate, above U+10FFFF, truncated). */
size_t pf_jp_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Returns the offset of the first byte that is not well-formed UTF-8, or N. */
size_t pf_jp_utf8_check(const char *s, size_t n);

/* Writes scalar value CP (not a surrogate, at most U+10FFFF) to OUT; returns
 * the number of bytes written (1..4). */
size_t pf_jp_utf8_encode(uint32_t cp, char out[4]);

/* Counts the scalar values of a well-formed string; bytes of a malformed
 * sequence count one each. */
size_t pf_jp_utf8_count(const char *s, size_t n);

#endif
