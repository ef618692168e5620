/* test_paths.c: lexical path normalisation and containment, and the atomic
 * file replacement used for checkpoints (private modes, no symlink
 * following, stale temporary files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/paths.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-paths-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return 0;
}

static void test_normalize(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"out/a.ndjson", "out/a.ndjson"},
        {"out//a.ndjson", "out/a.ndjson"},
        {"./out/./a", "out/a"},
        {"out/x/../a", "out/a"},
        {"out/x/../../a", "a"},
        {"out/../../a", "../a"},
        {"../../a/b/..", "../../a"},
        {"/var/../../etc", "/etc"},
        {"/..", "/"},
        {"/", "/"},
        {"//a//", "/a"},
        {".", "."},
        {"./", "."},
        {"a/..", "."},
        {"..", ".."},
        {"a/b/", "a/b"},
    };
    char out[PATH_MAX];
    pf_error e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pf_error_clear(&e);
        if (pf_path_normalize(cases[i][0], out, sizeof out, &e) != PF_OK)
            fail_msg("'%s': %s", cases[i][0], e.msg);
        if (strcmp(out, cases[i][1]) != 0)
            fail_msg("'%s' -> '%s', want '%s'", cases[i][0], out, cases[i][1]);
    }
    assert_int_equal(pf_path_normalize("", out, sizeof out, &e), PF_EINVAL);
    assert_int_equal(pf_path_normalize(NULL, out, sizeof out, &e), PF_EINVAL);
    assert_int_equal(pf_path_normalize("abcdef/ghi", out, 6, &e), PF_ETOOBIG);
    assert_string_equal(out, "");
}

static void test_within(void **state)
{
    (void)state;
    assert_true(pf_path_within("out", "out/a.ndjson"));
    assert_true(pf_path_within("out/", "out//x/../a.ndjson"));
    assert_true(pf_path_within("./out", "out/sub/a"));
    assert_false(pf_path_within("out", "out/../a.ndjson"));
    assert_false(pf_path_within("out", "outside/a"));
    assert_false(pf_path_within("out", "/out/a"));
    assert_true(pf_path_within("/var/out", "/var/out/a"));
    assert_false(pf_path_within("/var/out", "/var/out/../../etc/passwd"));
    assert_false(pf_path_within("/var/out", "/var/outx"));
    assert_true(pf_path_within("/", "/etc"));
    assert_true(pf_path_within(".", "a/b"));
    assert_false(pf_path_within(".", "../a"));
    assert_false(pf_path_within(".", ".."));
    assert_false(pf_path_within(".", "/etc/passwd"));
    assert_true(pf_path_within(".", "..a/b")); /* a file named "..a", not a parent */
    assert_false(pf_path_within(NULL, "a"));
}

static void test_atomic_write_private_and_no_symlinks(void **state)
{
    (void)state;
    mode_t old = umask(0); /* the modes must not depend on the umask */
    char path[400], tmp[450], target[256], dir[256];
    snprintf(dir, sizeof dir, "%s/state/sub", tmpdir);
    snprintf(path, sizeof path, "%s/cp.json", dir);
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_write_file_atomic(path, "{\"a\":1}", 7, &e), PF_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* A symbolic link planted under the temporary name is not followed. */
    snprintf(target, sizeof target, "%s/victim", tmpdir);
    write_file(target, "precious");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(pf_write_file_atomic(path, "{\"a\":2}", 7, &e), PF_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pf_read_file(target, 1024, &text, &len, &e), PF_OK);
    assert_string_equal(text, "precious");
    free(text);
    assert_int_equal(pf_read_file(path, 1024, &text, &len, &e), PF_OK);
    assert_string_equal(text, "{\"a\":2}");
    free(text);
    assert_int_equal(lstat(tmp, &st), -1); /* renamed away */

    /* A stale temporary file (a run killed mid-write) is replaced. */
    write_file(tmp, "half a checkp");
    assert_int_equal(pf_write_file_atomic(path, "{\"a\":3}", 7, &e), PF_OK);
    assert_int_equal(pf_read_file(path, 1024, &text, &len, &e), PF_OK);
    assert_string_equal(text, "{\"a\":3}");
    free(text);
    assert_int_equal(lstat(tmp, &st), -1);
    umask(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_within),
        cmocka_unit_test_setup_teardown(test_atomic_write_private_and_no_symlinks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
