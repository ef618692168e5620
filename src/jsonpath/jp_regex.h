/* jp_regex.h: I-Regexp (RFC 9485) on PCRE2, for match() and search()
 * (internal to src/jsonpath).
 *
 * A pattern is checked against the I-Regexp grammar, translated to PCRE2
 * syntax ('.' becomes [^\n\r], literal characters are escaped, '^' and '$' stay
 * anchors as in RFC 9485 section 5.4's mapping) and compiled
 * in UTF mode. match() patterns are anchored at both ends. Matching runs
 * with PCRE2 match and depth limits; hitting one counts as "no match". */
#ifndef PF_JSONPATH_JP_REGEX_H
#define PF_JSONPATH_JP_REGEX_H

#include <stddef.h>

#include "util/status.h"

typedef struct pf_jp_regex pf_jp_regex;

/* Per-evaluation matching state (PCRE2 match data and context); one per
 * thread. Zero-initialise; release with pf_jp_regex_scratch_free. */
typedef struct pf_jp_regex_scratch {
    void *match_data;
    void *match_ctx;
} pf_jp_regex_scratch;

/* Compiles I-Regexp PAT (LEN bytes). ANCHORED: the whole subject must match
 * (match()); otherwise any substring (search()). Returns PF_OK and *OUT, or
 * PF_ESYNTAX when PAT is not a valid I-Regexp (or PCRE2 refuses it), or
 * PF_ENOMEM; *OUT is NULL on failure. */
pf_status pf_jp_regex_compile(const char *pat, size_t len, int anchored, pf_jp_regex **out);

/* Frees RE; NULL is accepted. */
void pf_jp_regex_free(pf_jp_regex *re);

/* Returns 1 when S (LEN bytes) matches RE, 0 when it does not (including a
 * subject that is not UTF-8 and a match that hits the limits), -1 when out
 * of memory. */
int pf_jp_regex_match(const pf_jp_regex *re, const char *s, size_t len,
                      pf_jp_regex_scratch *scratch);

void pf_jp_regex_scratch_free(pf_jp_regex_scratch *scratch);

/* Translates I-Regexp PAT into PCRE2 syntax in OUT (a pf_buf, appended).
 * Returns PF_OK, PF_ESYNTAX (not an I-Regexp) or PF_ENOMEM. Exposed for tests. */
struct pf_buf;
pf_status pf_jp_iregexp_to_pcre2(const char *pat, size_t len, struct pf_buf *out);

#endif
