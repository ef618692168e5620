/* test_didyoumean.c: the "did you mean" hint picks likely typos only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/didyoumean.h"

static const char *const words[] = {"run",     "test",     "validate",   "templates", "sinks",
                                    "suggest", "decode",   "jsonpath",   "schedule",  "status",
                                    "plan",    "base_url", "since_time", NULL};
#define NWORDS (sizeof words / sizeof words[0])

static void expect(const char *word, const char *want)
{
    const char *got = pf_did_you_mean(word, words, NWORDS);
    if (!want) {
        if (got) fail_msg("'%s': expected no hint, got '%s'", word ? word : "(null)", got);
        return;
    }
    if (!got || strcmp(got, want) != 0)
        fail_msg("'%s': expected '%s', got '%s'", word, want, got ? got : "(none)");
}

static void test_typos_are_recognised(void **state)
{
    (void)state;
    expect("rnu", "run");          /* a swap */
    expect("tset", "test");        /* a swap */
    expect("valdate", "validate"); /* a deletion */
    expect("templats", "templates");
    expect("tempaltes", "templates");
    expect("Schedule", "schedule"); /* case */
    expect("sinse_time", "since_time");
    expect("baseurl", "base_url");
    expect("stats", "status");
}

static void test_unrelated_words_get_no_hint(void **state)
{
    (void)state;
    expect("xyz", NULL);
    expect("deploy", NULL);
    expect("r", NULL); /* "run" is 2 edits from a 1-byte word */
    expect("", NULL);
    expect(NULL, NULL);
    char longw[100];
    memset(longw, 'a', sizeof longw - 1);
    longw[sizeof longw - 1] = '\0';
    expect(longw, NULL); /* longer than 64 bytes: no hint, no work */
    assert_null(pf_did_you_mean("run", NULL, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typos_are_recognised),
        cmocka_unit_test(test_unrelated_words_get_no_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
