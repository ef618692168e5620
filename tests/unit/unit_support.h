/* unit_support.h: small file-system helpers shared by the cmocka unit tests
 * (scratch directories and files). Include after <cmocka.h>. */
#ifndef PF_TESTS_UNIT_SUPPORT_H
#define PF_TESTS_UNIT_SUPPORT_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes PATH and everything below it (test scratch directories only). */
static inline void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
                char sub[PATH_MAX];
                int n = snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                if (n > 0 && (size_t)n < sizeof sub) rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Writes TEXT to PATH, failing the test on any error. */
static inline void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

#endif
