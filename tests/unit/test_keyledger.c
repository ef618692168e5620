/* test_keyledger.c: the late-arrival record ledger (src/engine/keyledger.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/keyledger.h"

static uint64_t key(const char *stream, const char *k)
{
    return pf_keyledger_hash(stream, k, strlen(k), "{}", 2);
}

static void test_hash_separates_streams_keys_and_records(void **state)
{
    (void)state;
    assert_true(key("a", "x") != key("b", "x"));
    assert_true(key("a", "x") != key("a", "y"));
    assert_true(key("ab", "c") != key("a", "bc"));
    /* Without a key the record's JSON text identifies it. */
    uint64_t j1 = pf_keyledger_hash("a", NULL, 0, "{\"n\":1}", 7);
    uint64_t j2 = pf_keyledger_hash("a", NULL, 0, "{\"n\":2}", 7);
    assert_true(j1 != j2);
    assert_true(j1 == pf_keyledger_hash("a", NULL, 0, "{\"n\":1}", 7));
    /* A keyed record never collides with the same text used as JSON. */
    assert_true(pf_keyledger_hash("a", "x", 1, "", 0) != pf_keyledger_hash("a", NULL, 0, "x", 1));
}

static void test_add_contains_prune(void **state)
{
    (void)state;
    pf_keyledger *l = pf_keyledger_new();
    assert_non_null(l);
    pf_error e;
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "GUID-%d", i);
        assert_int_equal(pf_keyledger_add(l, key("s", k), 1000 + (i / 1000) * 100, &e), PF_OK);
    }
    assert_int_equal(pf_keyledger_count(l), 5000);
    assert_true(pf_keyledger_contains(l, key("s", "GUID-0")));
    assert_true(pf_keyledger_contains(l, key("s", "GUID-4999")));
    assert_false(pf_keyledger_contains(l, key("s", "GUID-5000")));
    /* Re-adding keeps one entry with the later end. */
    assert_int_equal(pf_keyledger_add(l, key("s", "GUID-0"), 1400, &e), PF_OK);
    assert_int_equal(pf_keyledger_count(l), 5000);
    /* Windows ended at 1000, 1100, 1200, 1300, 1400: keep ends >= 1200. */
    pf_keyledger_prune(l, 1200);
    assert_int_equal(pf_keyledger_count(l), 3001);
    assert_true(pf_keyledger_contains(l, key("s", "GUID-0")));
    assert_false(pf_keyledger_contains(l, key("s", "GUID-1")));
    assert_false(pf_keyledger_contains(l, key("s", "GUID-1999")));
    assert_true(pf_keyledger_contains(l, key("s", "GUID-2000")));
    pf_keyledger_free(l);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    pf_keyledger *l = pf_keyledger_new();
    pf_error e;
    char k[32];
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "id-%d", i);
        assert_int_equal(
            pf_keyledger_add(l, key("clicks", k), 1700000000000LL + (i % 3) * 60000, &e), PF_OK);
    }
    char *text = NULL;
    assert_int_equal(pf_keyledger_to_json(l, &text, &e), PF_OK);
    assert_non_null(strstr(text, "\"end\":1700000060000"));
    pf_keyledger *m = NULL;
    assert_int_equal(pf_keyledger_from_json(text, strlen(text), &m, &e), PF_OK);
    assert_int_equal(pf_keyledger_count(m), 300);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "id-%d", i);
        assert_true(pf_keyledger_contains(m, key("clicks", k)));
    }
    /* Pruning the copy drops exactly the oldest window's third. */
    pf_keyledger_prune(m, 1700000060000LL);
    assert_int_equal(pf_keyledger_count(m), 200);
    free(text);
    pf_keyledger_free(l);
    pf_keyledger_free(m);
    /* Empty ledgers round-trip too. */
    pf_keyledger *z = pf_keyledger_new();
    assert_int_equal(pf_keyledger_to_json(z, &text, &e), PF_OK);
    assert_string_equal(text, "{\"v\":1,\"windows\":[]}");
    free(text);
    pf_keyledger_free(z);
}

static void test_damaged_json_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"v\":2,\"windows\":[]}",
        "{\"v\":1}",
        "{\"v\":1,\"windows\":[{\"end\":1,\"keys\":\"abc\"}]}",
        "{\"v\":1,\"windows\":[{\"end\":1,\"keys\":\"zzzzzzzzzzzzzzzz\"}]}",
        "{\"v\":1,\"windows\":[{\"end\":\"x\",\"keys\":\"\"}]}",
        "{\"v\":1,\"windows\":[7]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pf_keyledger *l = (pf_keyledger *)1;
        pf_error e;
        pf_error_clear(&e);
        assert_int_equal(pf_keyledger_from_json(bad[i], strlen(bad[i]), &l, &e), PF_ESTATE);
        assert_null(l);
        assert_non_null(strstr(e.msg, "damaged"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_separates_streams_keys_and_records),
        cmocka_unit_test(test_add_contains_prune),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_damaged_json_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
