/* test_quota.c: the rolling 24-hour call ledger (src/engine/quota.h): its
 * counting, its damage checks, and its files (lock never through a link,
 * no FIFO, private directory, stale temporary files removed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/quota.h"
#include "util/paths.h"
#include "unit_support.h"

#define H (3600LL * 1000)
static char dir[64], ledger[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ppflow-quota-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ledger, sizeof ledger, "%s/state/ppflow-quota.json", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(dir);
    return 0;
}

static long used_at(const char *key, int64_t now, long budget, int64_t *next)
{
    long used = -1;
    int64_t nf = 0;
    pf_error e;
    assert_int_equal(pf_quota_usage(ledger, key, now, budget, &used, &nf, &e), PF_OK);
    if (next) *next = nf;
    return used;
}

static void test_key_hides_the_principal(void **state)
{
    (void)state;
    char a[PF_QUOTA_KEY_SIZE], b[PF_QUOTA_KEY_SIZE], c[PF_QUOTA_KEY_SIZE];
    pf_quota_key("siem", "alice-principal", a);
    pf_quota_key("siem", "bob-principal", b);
    pf_quota_key("decode", "alice-principal", c);
    assert_null(strstr(a, "alice"));
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
    assert_memory_equal(a, "siem:", 5);
    char p[256];
    assert_int_equal(pf_quota_path("/var/lib/ppflow/siem.json", p, sizeof p), 0);
    assert_string_equal(p, "/var/lib/ppflow/ppflow-quota.json");
    assert_int_equal(pf_quota_path("siem.json", p, sizeof p), 0);
    assert_string_equal(p, "ppflow-quota.json");
}

static void test_window_rolls(void **state)
{
    (void)state;
    pf_error e;
    int64_t t0 = 1000 * H;
    assert_int_equal(used_at("siem:1", t0, 3, NULL), 0); /* no ledger yet */
    assert_int_equal(pf_quota_record(ledger, "siem:1", t0, 2, &e), PF_OK);
    assert_int_equal(pf_quota_record(ledger, "siem:1", t0 + 5 * H, 1, &e), PF_OK);
    assert_int_equal(pf_quota_record(ledger, "other:1", t0 + 5 * H, 4, &e), PF_OK);
    int64_t next;
    assert_int_equal(used_at("siem:1", t0 + 6 * H, 3, &next), 3);
    /* Full: the two calls at t0 leave the window at t0 + 24 h. */
    assert_int_equal(next, t0 + 24 * H);
    assert_int_equal(used_at("siem:1", t0 + 24 * H, 3, NULL), 1);
    assert_int_equal(used_at("siem:1", t0 + 29 * H, 3, NULL), 0);
    assert_int_equal(used_at("other:1", t0 + 6 * H, 10, &next), 4);
    assert_int_equal(next, t0 + 6 * H); /* under budget: free now */
    /* Recording later prunes what is older than 24 h. */
    assert_int_equal(pf_quota_record(ledger, "siem:1", t0 + 30 * H, 1, &e), PF_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pf_read_file(ledger, 1 << 20, &text, &len, &e), PF_OK);
    assert_null(strstr(text, "other:1"));
    free(text);
}

static void test_next_free_with_many_over_budget(void **state)
{
    (void)state;
    pf_error e;
    int64_t t0 = 2000 * H;
    for (int i = 0; i < 5; i++)
        assert_int_equal(pf_quota_record(ledger, "k", t0 + i * H, 1, &e), PF_OK);
    int64_t next;
    /* 5 used, budget 3: three must expire; the third oldest is at t0 + 2 h. */
    assert_int_equal(used_at("k", t0 + 5 * H, 3, &next), 5);
    assert_int_equal(next, t0 + 2 * H + 24 * H);
}

/* Room for NEED calls: when enough of the oldest calls have left the window. */
static void test_when_free_for_a_run_of_several_calls(void **state)
{
    (void)state;
    pf_error e;
    int64_t t0 = 1000 * H;
    /* Ten calls, one an hour from t0. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(pf_quota_record(ledger, "k", t0 + i * H, 1, &e), PF_OK);
    int64_t now = t0 + 12 * H, at = 0;
    long used = 0;
    /* Budget 12: two calls fit now; three need the oldest call gone. */
    assert_int_equal(pf_quota_when_free(ledger, "k", now, 12, 2, &used, &at, &e), PF_OK);
    assert_int_equal(used, 10);
    assert_true(at == now);
    assert_int_equal(pf_quota_when_free(ledger, "k", now, 12, 3, &used, &at, &e), PF_OK);
    assert_true(at == t0 + 24 * H);
    /* Five calls: the three oldest must go. */
    assert_int_equal(pf_quota_when_free(ledger, "k", now, 12, 5, &used, &at, &e), PF_OK);
    assert_true(at == t0 + 2 * H + 24 * H);
    /* At that time, they fit: the ledger agrees with itself. */
    assert_int_equal(pf_quota_when_free(ledger, "k", at, 12, 5, &used, &at, &e), PF_OK);
    assert_int_equal(used, 7);
    /* More than the budget waits for a free budget (capped at 12). */
    assert_int_equal(pf_quota_when_free(ledger, "k", now, 12, 50, &used, &at, &e), PF_OK);
    assert_true(at == t0 + 9 * H + 24 * H);
    /* need 1 is pf_quota_usage. */
    int64_t nf = 0;
    assert_int_equal(used_at("k", now, 10, &nf), 10);
    assert_int_equal(pf_quota_when_free(ledger, "k", now, 10, 1, &used, &at, &e), PF_OK);
    assert_true(at == nf && nf == t0 + 24 * H);
    /* A missing ledger is empty and is not created. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none/ppflow-quota.json", dir);
    assert_int_equal(pf_quota_when_free(missing, "k", now, 1, 5, &used, &at, &e), PF_OK);
    assert_int_equal(used, 0);
    assert_true(at == now);
    assert_int_equal(access(missing, F_OK), -1);
}

static void test_damaged_ledger_is_an_error(void **state)
{
    (void)state;
    pf_error e;
    assert_int_equal(pf_quota_record(ledger, "k", 1, 1, &e), PF_OK);
    write_file(ledger, "{\"version\":1,\"calls\":");
    long used;
    int64_t next;
    pf_error_clear(&e);
    assert_int_equal(pf_quota_usage(ledger, "k", 2, 1, &used, &next, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "damaged"));
    assert_int_equal(pf_quota_record(ledger, "k", 2, 1, &e), PF_ESTATE);
}

static void test_concurrent_writers_lose_nothing(void **state)
{
    (void)state;
    int64_t t0 = 3000 * H;
    enum { PROCS = 4, EACH = 25 };
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            pf_error e;
            for (int i = 0; i < EACH; i++)
                if (pf_quota_record(ledger, "shared", t0 + i, 1, &e) != PF_OK) _exit(1);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        assert_true(wait(&status) > 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(used_at("shared", t0 + 1000, 0, NULL), PROCS * EACH);
}

/* The ledger's version is the JSON integer 1 (not "1", not 1.5). */
static void test_ledger_version_is_an_integer(void **state)
{
    (void)state;
    pf_error e;
    assert_int_equal(pf_quota_record(ledger, "k", 1, 1, &e), PF_OK);
    static const char *const bad[] = {"{\"version\":\"1\",\"calls\":{}}",
                                      "{\"version\":1.5,\"calls\":{}}", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(ledger, bad[i]);
        pf_error_clear(&e);
        assert_int_equal(pf_quota_record(ledger, "k", 2, 1, &e), PF_ESTATE);
        assert_non_null(strstr(e.msg, "damaged"));
        assert_non_null(strstr(e.msg, ledger));
    }
}

/* The ledger's lock file is never opened through a symbolic link, a FIFO
 * as the ledger is refused without hanging, a state directory others can
 * write to is refused, and the ledger's stale temporary files go once its
 * lock is held. */
static void test_ledger_files_cannot_be_redirected(void **state)
{
    (void)state;
    alarm(20); /* a blocking open fails the test instead of hanging it */
    char lock[160], victim[128], stale[160], sdir[128];
    pf_error e;
    long used;
    int64_t next;
    assert_int_equal(pf_quota_record(ledger, "k", 1, 1, &e), PF_OK);
    snprintf(lock, sizeof lock, "%s.lock", ledger);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    write_file(victim, "precious\n");
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(symlink(victim, lock), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_quota_record(ledger, "k", 2, 1, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, lock));
    assert_non_null(strstr(e.msg, "is a symbolic link"));
    pf_error_clear(&e);
    assert_int_equal(pf_quota_usage(ledger, "k", 2, 1, &used, &next, &e), PF_ESTATE);
    FILE *f = fopen(victim, "r");
    char buf[32] = "";
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "precious\n");
    assert_int_equal(unlink(lock), 0);

    assert_int_equal(unlink(ledger), 0);
    assert_int_equal(mkfifo(ledger, 0600), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_quota_usage(ledger, "k", 2, 1, &used, &next, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "is not a regular file (FIFO)"));
    assert_int_equal(unlink(ledger), 0);

    snprintf(sdir, sizeof sdir, "%s/state", dir);
    assert_int_equal(chmod(sdir, 0777), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_quota_record(ledger, "k", 2, 1, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "is writable by group or others (mode 777)"));
    assert_int_equal(chmod(sdir, 0700), 0);

    snprintf(stale, sizeof stale, "%s.tmp.99999999", ledger);
    write_file(stale, "{\"version\":1,");
    assert_int_equal(pf_quota_record(ledger, "k", 3, 1, &e), PF_OK);
    assert_int_equal(access(stale, F_OK), -1);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_hides_the_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_rolls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_free_with_many_over_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_when_free_for_a_run_of_several_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_ledger_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_lose_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_version_is_an_integer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_files_cannot_be_redirected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
