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
#include "state/state.h"

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
        /* Numbers are type- and range-checked. */
        "{\"v\":\"1\",\"windows\":[]}",
        "{\"v\":1.0,\"windows\":[]}",
        "{\"v\":1,\"windows\":[{\"end\":-1,\"keys\":\"\"}]}",
        "{\"v\":1,\"windows\":[{\"end\":1e3,\"keys\":\"\"}]}",
        "{\"v\":1,\"windows\":[{\"end\":\"1000\",\"keys\":\"\"}]}",
        "{\"v\":1,\"windows\":[{\"end\":99999999999999999999,\"keys\":\"\"}]}",
        "{\"v\":1,\"horizon\":\"17k\",\"windows\":[]}",
        "{\"v\":1,\"horizon\":-5,\"windows\":[]}",
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

/* The size the ledger counts is exactly what it writes. */
static void test_json_size_is_exact(void **state)
{
    (void)state;
    pf_keyledger *l = pf_keyledger_new();
    assert_non_null(l);
    pf_error e;
    char *text = NULL;
    uint64_t rng = 88172645463325252ULL;
    for (int round = 0; round < 2000; round++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int64_t end = (int64_t)(rng % 7) * 999 + (round % 3 == 0 ? 1700000000000LL : 5);
        assert_int_equal(pf_keyledger_add(l, rng, end, &e), PF_OK);
        if (round % 97 == 0) {
            if (round == 485) pf_keyledger_prune(l, 3000);
            assert_int_equal(pf_keyledger_to_json(l, &text, &e), PF_OK);
            assert_int_equal(strlen(text), pf_keyledger_json_size(l));
            free(text);
        }
    }
    pf_keyledger_free(l);
    pf_keyledger *z = pf_keyledger_new();
    assert_int_equal(pf_keyledger_json_size(z), strlen("{\"v\":1,\"windows\":[]}"));
    pf_keyledger_free(z);
}

/* Adds N records of window END_MS, keys "w<END_MS>-<i>". */
static void add_window(pf_keyledger *l, int64_t end_ms, int n)
{
    pf_error e;
    char k[48];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "w%lld-%d", (long long)end_ms, i);
        assert_int_equal(pf_keyledger_add(l, key("s", k), end_ms, &e), PF_OK);
    }
}

static int window_known(const pf_keyledger *l, int64_t end_ms, int n)
{
    char k[48];
    int known = 0;
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "w%lld-%d", (long long)end_ms, i);
        known += pf_keyledger_contains(l, key("s", k));
    }
    return known;
}

/* A ledger that would pass its limit forgets its oldest windows and says
 * so with its horizon; its JSON never passes the limit. */
static void test_full_ledger_forgets_oldest_windows(void **state)
{
    (void)state;
    const size_t limit = 8192; /* about 450 records */
    pf_keyledger *l = pf_keyledger_new_limited(limit);
    assert_non_null(l);
    int64_t h = 0;
    for (int64_t end = 1000; end <= 20000; end += 1000) {
        add_window(l, end, 40);
        assert_true(pf_keyledger_json_size(l) <= limit);
    }
    /* 20 windows of 40 records: the newest are all there, the oldest not. */
    assert_true(pf_keyledger_horizon(l, &h));
    assert_int_equal(window_known(l, 20000, 40), 40);
    assert_int_equal(window_known(l, 1000, 40), 0);
    assert_true(h >= 1000 && h < 20000);
    /* Every window after the horizon is whole, every one up to it gone. */
    for (int64_t end = 1000; end <= 20000; end += 1000)
        assert_int_equal(window_known(l, end, 40), end <= h ? 0 : 40);
    size_t count = pf_keyledger_count(l);
    assert_true(count * 16 < limit && count * 16 > limit / 2);

    /* The horizon is saved and read back; a ledger read with a smaller
     * limit makes room the same way. */
    char *text = NULL;
    pf_error e;
    assert_int_equal(pf_keyledger_to_json(l, &text, &e), PF_OK);
    assert_int_equal(strlen(text), pf_keyledger_json_size(l));
    assert_true(strlen(text) <= limit);
    char want[64];
    snprintf(want, sizeof want, "{\"v\":1,\"horizon\":%lld,\"windows\":[", (long long)h);
    assert_memory_equal(text, want, strlen(want));
    pf_keyledger *m = NULL;
    assert_int_equal(pf_keyledger_from_json_limited(text, strlen(text), limit, &m, &e), PF_OK);
    int64_t h2 = 0;
    assert_true(pf_keyledger_horizon(m, &h2));
    assert_int_equal(h2, h);
    assert_int_equal(pf_keyledger_count(m), count);
    pf_keyledger_free(m);
    assert_int_equal(pf_keyledger_from_json_limited(text, strlen(text), limit / 2, &m, &e), PF_OK);
    assert_true(pf_keyledger_json_size(m) <= limit / 2);
    assert_true(pf_keyledger_horizon(m, &h2));
    assert_true(h2 > h);
    assert_int_equal(window_known(m, 20000, 40), 40);
    pf_keyledger_free(m);
    free(text);

    /* Pruning past the horizon clears it. */
    pf_keyledger_prune(l, h);
    assert_true(pf_keyledger_horizon(l, &h2));
    pf_keyledger_prune(l, h + 1);
    assert_false(pf_keyledger_horizon(l, &h2));
    assert_int_equal(pf_keyledger_count(l), count);
    pf_keyledger_free(l);
}

/* One window with more records than fit: the rest of it is not
 * remembered, and the horizon says so. */
static void test_one_window_over_the_limit(void **state)
{
    (void)state;
    const size_t limit = 4096;
    pf_keyledger *l = pf_keyledger_new_limited(limit);
    assert_non_null(l);
    add_window(l, 5000, 1000);
    assert_true(pf_keyledger_json_size(l) <= limit);
    int64_t h = 0;
    assert_true(pf_keyledger_horizon(l, &h));
    assert_int_equal(h, 5000);
    size_t count = pf_keyledger_count(l);
    assert_true(count > 100 && count < 1000);
    assert_int_equal(window_known(l, 5000, 1000), (int)count);
    /* A newer window makes room by forgetting the older one. */
    add_window(l, 6000, 100);
    assert_int_equal(window_known(l, 6000, 100), 100);
    assert_true(pf_keyledger_json_size(l) <= limit);
    assert_true(pf_keyledger_horizon(l, &h));
    assert_int_equal(h, 5000);
    pf_keyledger_free(l);
    /* The smallest limit is enforced. */
    l = pf_keyledger_new_limited(1);
    add_window(l, 1, 50);
    assert_true(pf_keyledger_json_size(l) <= PF_KEYLEDGER_MIN_JSON);
    pf_keyledger_free(l);
}

/* The default limit keeps the ledger within half a checkpoint: a busy
 * tenant's look-back (1.1 million records) fits whole. */
static void test_default_limit(void **state)
{
    (void)state;
    assert_true(PF_KEYLEDGER_MAX_JSON <= PF_STATE_MAX_BYTES / 2);
    pf_keyledger *l = pf_keyledger_new();
    pf_error e;
    for (uint64_t i = 1; i <= 1100000; i++)
        assert_int_equal(pf_keyledger_add(l, i * 0x9e3779b97f4a7c15ULL, 1000 + (int64_t)(i / 20000) * 60000,
                                          &e),
                         PF_OK);
    int64_t h;
    assert_int_equal(pf_keyledger_count(l), 1100000);
    assert_false(pf_keyledger_horizon(l, &h));
    assert_true(pf_keyledger_json_size(l) < PF_KEYLEDGER_MAX_JSON);
    pf_keyledger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_separates_streams_keys_and_records),
        cmocka_unit_test(test_add_contains_prune),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_damaged_json_is_refused),
        cmocka_unit_test(test_json_size_is_exact),
        cmocka_unit_test(test_full_ledger_forgets_oldest_windows),
        cmocka_unit_test(test_one_window_over_the_limit),
        cmocka_unit_test(test_default_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
