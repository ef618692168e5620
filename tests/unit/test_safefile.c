/* test_safefile.c: the private-file opener and the directory check
 * (src/util/safefile.h): a symbolic link is refused and its target left
 * untouched, a FIFO is refused without hanging, another user's file is
 * refused (as root, by chown to nobody), a regular file of ours opens
 * blocking, close-on-exec and 0600; a directory others can write to or own
 * is refused. Every open is guarded by an alarm, so a hang fails the test
 * instead of stalling the suite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/paths.h"
#include "util/safefile.h"

#define NOBODY 65534

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-safefile-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    alarm(20); /* a blocking open would otherwise hang the suite */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    alarm(0);
    rm_rf(tmpdir);
    return 0;
}

static void in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len;
    pf_error e;
    if (pf_read_file(path, 1u << 20, &text, &len, &e) != PF_OK)
        fail_msg("cannot read %s: %s", path, e.msg);
    return text;
}

static void assert_file_is(const char *path, const char *want)
{
    char *text = slurp(path);
    assert_string_equal(text, want);
    free(text);
}

/* Opening PATH with FLAGS is refused with a message holding PATH and
 * NEEDLE. */
static void refused(const char *path, int flags, const char *needle)
{
    pf_error e;
    pf_error_clear(&e);
    int fd = pf_open_private(path, flags, "cannot open test file", &e);
    if (fd >= 0) {
        close(fd);
        fail_msg("%s was opened (flags %#x)", path, (unsigned)flags);
    }
    assert_int_equal(e.code, PF_EIO);
    if (!strstr(e.msg, path) || !strstr(e.msg, needle) || !strstr(e.msg, "cannot open test file"))
        fail_msg("message '%s' lacks '%s' or the path", e.msg, needle);
}

static void test_regular_file_of_ours_opens(void **state)
{
    (void)state;
    mode_t old = umask(0); /* the mode must not depend on the umask */
    char path[128];
    in_tmp(path, sizeof path, "new.lock");
    pf_error e;
    pf_error_clear(&e);
    int fd = pf_open_private(path, O_RDWR | O_CREAT, "cannot open", &e);
    umask(old);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0); /* blocking again */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);

    /* An existing file of ours: appended to, or truncated after the checks. */
    fd = pf_open_private(path, O_WRONLY | O_APPEND, "cannot open", &e);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "def", 3), 3);
    close(fd);
    assert_file_is(path, "abcdef");
    fd = pf_open_private(path, O_WRONLY | O_TRUNC, "cannot open", &e);
    assert_true(fd >= 0);
    close(fd);
    assert_file_is(path, "");

    /* Missing without O_CREAT: PF_ENOTFOUND. */
    in_tmp(path, sizeof path, "absent");
    pf_error_clear(&e);
    assert_int_equal(pf_open_private(path, O_RDONLY, "cannot open", &e), -1);
    assert_int_equal(e.code, PF_ENOTFOUND);
    assert_non_null(strstr(e.msg, path));
}

static void test_symlink_is_refused_and_its_target_untouched(void **state)
{
    (void)state;
    char victim[128], link[128], dangling[128], gone[128];
    in_tmp(victim, sizeof victim, "victim");
    in_tmp(link, sizeof link, "state.json.lock");
    write_file(victim, "precious\n");
    assert_int_equal(symlink(victim, link), 0);
    refused(link, O_RDWR | O_CREAT, "is a symbolic link");
    refused(link, O_WRONLY | O_CREAT | O_APPEND, "is a symbolic link");
    refused(link, O_WRONLY | O_CREAT | O_TRUNC, "is a symbolic link");
    refused(link, O_RDWR, "is a symbolic link");
    assert_file_is(victim, "precious\n");
    struct stat st;
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_size, 9);

    /* A dangling link is not followed to create its target either. */
    in_tmp(dangling, sizeof dangling, "dangling");
    in_tmp(gone, sizeof gone, "would-be-created");
    assert_int_equal(symlink(gone, dangling), 0);
    refused(dangling, O_WRONLY | O_CREAT | O_APPEND, "is a symbolic link");
    assert_int_equal(lstat(gone, &st), -1);

    /* Reading follows a link to a regular file (a mounted secret is one). */
    pf_error e;
    int fd = pf_open_regular(link, &e);
    assert_true(fd >= 0);
    close(fd);
}

static void test_fifo_is_refused_without_hanging(void **state)
{
    (void)state;
    char fifo[128];
    in_tmp(fifo, sizeof fifo, "state.json.lock");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* No reader: a blocking open for writing would wait forever. */
    refused(fifo, O_WRONLY | O_CREAT | O_APPEND, "is not a regular file (FIFO)");
    refused(fifo, O_RDWR | O_CREAT, "is not a regular file (FIFO)");
    refused(fifo, O_RDWR | O_CREAT | O_TRUNC, "is not a regular file (FIFO)");
    /* No writer: a blocking open for reading would wait forever. */
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_open_regular(fifo, &e), -1);
    assert_int_equal(e.code, PF_EIO);
    assert_non_null(strstr(e.msg, fifo));
    assert_non_null(strstr(e.msg, "is not a regular file (FIFO)"));
    struct stat st;
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode)); /* left where it was */
}

static void test_directory_and_device_are_refused(void **state)
{
    (void)state;
    char d[128];
    in_tmp(d, sizeof d, "a-directory");
    assert_int_equal(mkdir(d, 0700), 0);
    refused(d, O_WRONLY | O_CREAT | O_APPEND, "is not a regular file (directory)");
    refused(d, O_RDONLY, "is not a regular file (directory)");
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_open_regular(d, &e), -1);
    assert_non_null(strstr(e.msg, "is not a regular file (directory)"));
    /* A device (reached through no link: /dev/null itself). */
    refused("/dev/null", O_WRONLY | O_APPEND, "is not a regular file (character device)");
    pf_error_clear(&e);
    assert_int_equal(pf_open_regular("/dev/null", &e), -1);
    assert_non_null(strstr(e.msg, "character device"));
}

static void test_file_of_another_user_is_refused(void **state)
{
    (void)state;
    if (geteuid() != 0) skip(); /* only root can give a file away */
    char path[128];
    in_tmp(path, sizeof path, "theirs");
    write_file(path, "their data\n");
    assert_int_equal(chown(path, NOBODY, NOBODY), 0);
    refused(path, O_WRONLY | O_APPEND, "is owned by uid 65534, not by the user running ppflow");
    refused(path, O_RDWR | O_CREAT | O_TRUNC, "is owned by uid 65534");
    assert_file_is(path, "their data\n"); /* not truncated before the check */
}

static void test_private_dir(void **state)
{
    (void)state;
    char d[128], sub[160], file[128];
    pf_error e;
    in_tmp(d, sizeof d, "state");
    /* Missing: fine (the caller creates it 0700). */
    assert_int_equal(pf_check_private_dir(d, "state directory", &e), PF_OK);
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(chmod(d, 0700), 0);
    assert_int_equal(pf_check_private_dir(d, "state directory", &e), PF_OK);
    assert_int_equal(chmod(d, 0755), 0);
    assert_int_equal(pf_check_private_dir(d, "state directory", &e), PF_OK);
    static const struct {
        mode_t mode;
        const char *shown;
    } bad[] = {
        {0777, "(mode 777)"}, {0770, "(mode 770)"}, {0702, "(mode 702)"}, {01777, "(mode 1777)"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(d, bad[i].mode), 0);
        pf_error_clear(&e);
        assert_int_equal(pf_check_private_dir(d, "state directory", &e), PF_EIO);
        char want[256];
        snprintf(want, sizeof want, "state directory %s is writable by group or others %s", d,
                 bad[i].shown);
        if (!strstr(e.msg, want)) fail_msg("'%s' lacks '%s'", e.msg, want);
        assert_non_null(strstr(e.msg, "chmod 700 it"));
    }
    /* The directory of a path. */
    assert_int_equal(chmod(d, 0777), 0);
    snprintf(sub, sizeof sub, "%s/state.json", d);
    pf_error_clear(&e);
    assert_int_equal(pf_check_dir_of(sub, "state directory", &e), PF_EIO);
    assert_non_null(strstr(e.msg, d));
    assert_int_equal(chmod(d, 0700), 0);
    assert_int_equal(pf_check_dir_of(sub, "state directory", &e), PF_OK);
    /* Not a directory. */
    in_tmp(file, sizeof file, "plain");
    write_file(file, "x");
    pf_error_clear(&e);
    assert_int_equal(pf_check_private_dir(file, "state directory", &e), PF_EIO);
    assert_non_null(strstr(e.msg, "is not a directory"));
    /* Owned by another user (root can give it away). */
    if (geteuid() == 0) {
        assert_int_equal(chown(d, NOBODY, NOBODY), 0);
        pf_error_clear(&e);
        assert_int_equal(pf_check_private_dir(d, "state directory", &e), PF_EIO);
        assert_non_null(strstr(e.msg, "is owned by uid 65534, not by the user running ppflow"));
        assert_int_equal(chown(d, 0, 0), 0);
        assert_int_equal(pf_check_private_dir(d, "state directory", &e), PF_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_regular_file_of_ours_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_is_refused_and_its_target_untouched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fifo_is_refused_without_hanging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_and_device_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_of_another_user_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
