/* test_paths.c: lexical path normalisation and containment, the atomic
 * file replacement used for checkpoints (private modes, no symlink
 * following, stale temporary files and their removal), and bounded reads
 * of regular files only (never blocking on a FIFO). */
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

/* Reading never blocks and takes regular files only: a FIFO (no writer),
 * a directory and a device are refused at once, a symbolic link to a
 * regular file is followed, and the size limit is exact. */
static void test_read_regular_files_only(void **state)
{
    (void)state;
    alarm(20); /* a blocking open would hang the suite: fail instead */
    char fifo[256], dir[256], file[256], link[256];
    snprintf(fifo, sizeof fifo, "%s/fifo.json", tmpdir);
    snprintf(dir, sizeof dir, "%s/dir.json", tmpdir);
    snprintf(file, sizeof file, "%s/file.json", tmpdir);
    snprintf(link, sizeof link, "%s/link.json", tmpdir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(file, "0123456789");
    assert_int_equal(symlink(file, link), 0);
    char *text = NULL;
    size_t len = 99;
    pf_error e;
    const char *bad[][2] = {{fifo, "is not a regular file (FIFO)"},
                            {dir, "is not a regular file (directory)"},
                            {"/dev/null", "is not a regular file (character device)"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pf_error_clear(&e);
        assert_int_equal(pf_read_file(bad[i][0], 1024, &text, &len, &e), PF_EIO);
        assert_null(text);
        assert_int_equal(len, 0);
        if (!strstr(e.msg, bad[i][0]) || !strstr(e.msg, bad[i][1]))
            fail_msg("'%s' lacks the path or '%s'", e.msg, bad[i][1]);
    }
    assert_int_equal(pf_read_file(link, 1024, &text, &len, &e), PF_OK);
    assert_string_equal(text, "0123456789");
    assert_int_equal(len, 10);
    free(text);
    assert_int_equal(pf_read_file(file, 10, &text, &len, &e), PF_OK); /* exactly the limit */
    free(text);
    pf_error_clear(&e);
    assert_int_equal(pf_read_file(file, 9, &text, &len, &e), PF_ETOOBIG);
    assert_null(text);
    assert_non_null(strstr(e.msg, "larger than 9 bytes"));
    snprintf(link, sizeof link, "%s/absent.json", tmpdir);
    assert_int_equal(pf_read_file(link, 10, &text, &len, &e), PF_ENOTFOUND);
    /* A large file, read across many buffer sizes. */
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    for (int i = 0; i < 100000; i++)
        fputc('a' + i % 26, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(pf_read_file(file, 100000, &text, &len, &e), PF_OK);
    assert_int_equal(len, 100000);
    assert_int_equal(text[99999], 'a' + 99999 % 26);
    assert_int_equal(text[100000], '\0');
    free(text);
    assert_int_equal(pf_read_file(file, 99999, &text, &len, &e), PF_ETOOBIG);
    alarm(0);
}

/* The stale temporary files of an atomic write are removed only under the
 * exact name "BASE.tmp.N" and only when N is not a live process. */
static void test_remove_stale_temps(void **state)
{
    (void)state;
    char path[256], name[320], victim[256];
    snprintf(path, sizeof path, "%s/cp.json", tmpdir);
    snprintf(victim, sizeof victim, "%s/victim", tmpdir);
    write_file(path, "{}");
    write_file(victim, "precious");
    static const char *const gone[] = {"cp.json.tmp.99999999", "cp.json.tmp.0",
                                       "cp.json.tmp.99999999999999999"};
    static const char *const kept[] = {"cp.json.tmp.", "cp.json.tmp.12x", "cp.json.tmp.abc",
                                       "cp.json.tmpx.99999999", "other.json.tmp.99999999",
                                       "xcp.json.tmp.99999999", "cp.json.tmp.-5"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(name, sizeof name, "%s/%s", tmpdir, gone[i]);
        write_file(name, "half a checkp");
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        snprintf(name, sizeof name, "%s/%s", tmpdir, kept[i]);
        write_file(name, "not ours");
    }
    /* A live pid's file stays (a writer that does not lock, or a reused
     * number); a directory under the name stays; a link is removed, not
     * followed. */
    char live[320], sub[320], link[320];
    snprintf(live, sizeof live, "%s/cp.json.tmp.%ld", tmpdir, (long)getpid());
    write_file(live, "being written");
    snprintf(sub, sizeof sub, "%s/cp.json.tmp.99999998", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(link, sizeof link, "%s/cp.json.tmp.99999997", tmpdir);
    assert_int_equal(symlink(victim, link), 0);

    assert_int_equal(pf_remove_stale_temps(path), 4);
    struct stat st;
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(name, sizeof name, "%s/%s", tmpdir, gone[i]);
        if (lstat(name, &st) == 0) fail_msg("%s was not removed", gone[i]);
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        snprintf(name, sizeof name, "%s/%s", tmpdir, kept[i]);
        if (lstat(name, &st) != 0) fail_msg("%s was removed", kept[i]);
    }
    assert_int_equal(lstat(live, &st), 0);
    assert_int_equal(lstat(sub, &st), 0);
    assert_int_equal(lstat(link, &st), -1);
    assert_int_equal(lstat(victim, &st), 0);
    assert_int_equal(lstat(path, &st), 0); /* the file itself, of course */
    assert_int_equal(pf_remove_stale_temps(path), 0);
    snprintf(name, sizeof name, "%s/no-such-dir/cp.json", tmpdir);
    assert_int_equal(pf_remove_stale_temps(name), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_within),
        cmocka_unit_test_setup_teardown(test_atomic_write_private_and_no_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_regular_files_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_stale_temps, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
