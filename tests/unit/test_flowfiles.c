/* test_flowfiles.c: command-line paths to flow files (src/flow/flowfiles.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "flow/flowfiles.h"
#include "unit_support.h"

static void test_directories_files_and_missing_paths(void **state)
{
    (void)state;
    char dir[64], path[128], sub[128];
    snprintf(dir, sizeof dir, "/tmp/pft-flowfiles-XXXXXX");
    assert_non_null(mkdtemp(dir));
    static const char *const names[] = {"b.yaml", "a.yml", ".hidden.yaml", "notes.txt", "c.yaml"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_file(path, "name: x\n");
    }
    snprintf(sub, sizeof sub, "%s/d.yaml", dir); /* a directory named like a flow */
    assert_int_equal(mkdir(sub, 0700), 0);
    char withslash[80], single[128];
    snprintf(withslash, sizeof withslash, "%s/", dir);
    snprintf(single, sizeof single, "%s/notes.txt", dir); /* a file is taken as given */
    const char *paths[] = {withslash, single};
    char **files = NULL;
    size_t n = 0;
    assert_int_equal(pf_flow_files(paths, 2, &files, &n), 0);
    assert_int_equal(n, 4);
    const char *want[] = {"a.yml", "b.yaml", "c.yaml", "notes.txt"};
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, want[i]);
        assert_string_equal(files[i], path);
        free(files[i]);
    }
    free(files);
    /* A missing path is reported; the others are still listed. */
    const char *mixed[] = {"/nonexistent/ppflow-flows", dir};
    assert_int_equal(pf_flow_files(mixed, 2, &files, &n), -1);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    assert_true(pf_flow_file_name("x.yaml") && pf_flow_file_name("x.yml"));
    assert_false(pf_flow_file_name(".x.yaml") || pf_flow_file_name("yaml") ||
                 pf_flow_file_name("x.json"));
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directories_files_and_missing_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
