/* didyoumean.h: the closest known word to a mistyped one, for "did you
 * mean" hints in messages (commands, keys, template names). */
#ifndef PF_UTIL_DIDYOUMEAN_H
#define PF_UTIL_DIDYOUMEAN_H

#include <stddef.h>

/* The candidate (of N in CANDIDATES; NULL entries skipped) closest to WORD
 * by edit distance (insertions, deletions, substitutions, and swaps of two
 * neighbouring characters; ASCII case ignored), when it is close enough to
 * be a likely typo: at most 1 edit for words up to 4 bytes, 2 up to 8, 3
 * beyond. Ties go to the earlier candidate. NULL when none is close, when
 * WORD is NULL or empty, or when WORD or a candidate is longer than 64
 * bytes (such a candidate is skipped). The result points into CANDIDATES. */
const char *pf_did_you_mean(const char *word, const char *const *candidates, size_t n);

#endif
