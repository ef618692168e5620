/* test_atomic_write_faults.c: the atomic file replacement behind every
 * checkpoint (pf_write_file_atomic, src/util/paths.h) when the disk fails
 * the flush. This executable defines fsync itself (the library's calls bind
 * to it at link time), failing it with EIO on request; otherwise it
 * forwards to the system call. A failed flush must leave the old file, no
 * temporary file and no open descriptor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/paths.h"

static int fsync_fails; /* fail the next this many fsync calls */
static int fsync_calls;

int fsync(int fd)
{
    fsync_calls++;
    if (fsync_fails > 0) {
        fsync_fails--;
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-fsync-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return 0;
}

/* Descriptors open in this process. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own */
}

static void test_failed_flush_leaks_nothing(void **state)
{
    (void)state;
    char path[200], tmp[260];
    snprintf(path, sizeof path, "%s/cp.json", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    pf_error e;
    assert_int_equal(pf_write_file_atomic(path, "old", 3, &e), PF_OK);
    int before = open_fds();
    for (int i = 0; i < 50; i++) {
        fsync_fails = 1;
        fsync_calls = 0;
        pf_error_clear(&e);
        assert_int_equal(pf_write_file_atomic(path, "new", 3, &e), PF_EIO);
        assert_int_equal(fsync_calls, 1);
        assert_non_null(strstr(e.msg, "cannot sync"));
        assert_non_null(strstr(e.msg, "Input/output error"));
    }
    assert_int_equal(open_fds(), before);
    /* The old content stays, and no temporary file is left behind. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pf_read_file(path, 64, &text, &len, &e), PF_OK);
    assert_string_equal(text, "old");
    free(text);
    struct stat st;
    assert_int_equal(lstat(tmp, &st), -1);
    /* Once the disk recovers, the write goes through. */
    fsync_fails = 0;
    assert_int_equal(pf_write_file_atomic(path, "new", 3, &e), PF_OK);
    assert_int_equal(pf_read_file(path, 64, &text, &len, &e), PF_OK);
    assert_string_equal(text, "new");
    free(text);
    assert_int_equal(open_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_flush_leaks_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
