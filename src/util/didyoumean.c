/* didyoumean.c: bounded optimal-string-alignment distance for "did you
 * mean" hints. */
#include "util/didyoumean.h"

#include <ctype.h>
#include <string.h>

#define WORD_MAX 64

/* Optimal string alignment distance between A (LA bytes) and B (LB bytes),
 * both at most WORD_MAX, ignoring ASCII case. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[WORD_MAX + 1][WORD_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *pf_did_you_mean(const char *word, const char *const *candidates, size_t n)
{
    if (!word || !*word || !candidates) return NULL;
    size_t lw = strlen(word);
    if (lw > WORD_MAX) return NULL;
    size_t limit = lw <= 4 ? 1 : lw <= 8 ? 2 : 3, best = limit + 1;
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        if (!c) continue;
        size_t lc = strlen(c);
        if (lc > WORD_MAX || (lc > lw ? lc - lw : lw - lc) > limit) continue;
        size_t dist = distance(word, lw, c, lc);
        if (dist < best) {
            best = dist;
            pick = c;
        }
    }
    return pick;
}
