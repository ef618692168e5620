/* regex.c: compiles translated I-Regexp patterns with PCRE2 (UTF mode) and
 * matches them under PCRE2 match and heap limits (see jp_regex.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "jsonpath/jp_regex.h"
#include "util/buf.h"

#define MATCH_LIMIT 1000000  /* backtracking steps per match */
#define HEAP_LIMIT_KIB 16384 /* backtracking memory per match */

struct pf_jp_regex {
    pcre2_code *code;
};

pf_status pf_jp_regex_compile(const char *pat, size_t len, int anchored, pf_jp_regex **out)
{
    *out = NULL;
    pf_buf b;
    pf_buf_init(&b, 0);
    pf_status st = pf_jp_iregexp_to_pcre2(pat, len, &b);
    if (st != PF_OK) {
        pf_buf_free(&b);
        return st;
    }
    uint32_t opts =
        PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C | PCRE2_NO_AUTO_CAPTURE | PCRE2_DOLLAR_ENDONLY;
    if (anchored) opts |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pf_buf_str(&b), b.len, opts, &errcode, &erroff, NULL);
    pf_buf_free(&b);
    if (!code)
        return errcode == PCRE2_ERROR_HEAPLIMIT || errcode == PCRE2_ERROR_NOMEMORY ? PF_ENOMEM
                                                                                   : PF_ESYNTAX;
    pf_jp_regex *re = malloc(sizeof *re);
    if (!re) {
        pcre2_code_free(code);
        return PF_ENOMEM;
    }
    re->code = code;
    *out = re;
    return PF_OK;
}

void pf_jp_regex_free(pf_jp_regex *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

int pf_jp_regex_match(const pf_jp_regex *re, const char *s, size_t len,
                      pf_jp_regex_scratch *scratch)
{
    if (!scratch->match_data) {
        scratch->match_data = pcre2_match_data_create(1, NULL);
        if (!scratch->match_data) return -1;
    }
    if (!scratch->match_ctx) {
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        if (!mc) return -1;
        pcre2_set_match_limit(mc, MATCH_LIMIT);
        pcre2_set_heap_limit(mc, HEAP_LIMIT_KIB);
        scratch->match_ctx = mc;
    }
    int rc =
        pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, scratch->match_data, scratch->match_ctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMEMORY) return -1;
    return 0; /* no match, invalid UTF-8 subject, or a limit reached */
}

void pf_jp_regex_scratch_free(pf_jp_regex_scratch *scratch)
{
    if (!scratch) return;
    pcre2_match_data_free(scratch->match_data);
    pcre2_match_context_free(scratch->match_ctx);
    scratch->match_data = NULL;
    scratch->match_ctx = NULL;
}
