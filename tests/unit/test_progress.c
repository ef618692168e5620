/* test_progress.c: the progress line (src/util/progress.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/progress.h"

static void test_format(void **state)
{
    (void)state;
    pf_progress p;
    pf_progress_start(&p, "windows", 48, 1, NULL, 0);
    p.done = 12;
    p.records = 30000;
    p.bytes = 3 * 1024 * 1024 + 512 * 1024;
    char line[256];
    pf_progress_format(&p, p.start_ms + 3723000, line, sizeof line);
    assert_string_equal(line, "12/48 windows (25%), 30000 records (8/s), 3.5 MiB, 01:02:03");
    pf_progress_start(&p, "pages", 0, 1, NULL, 0);
    p.done = 3;
    p.records = 10;
    p.bytes = 900;
    pf_progress_format(&p, p.start_ms + 2000, line, sizeof line);
    assert_string_equal(line, "3 pages, 10 records (5/s), 900 B, 00:00:02");
}

static void test_never_drawn_without_a_terminal(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pf_progress p;
    /* Not forced: stdout/stderr of the test are not both terminals under ctest. */
    pf_progress_start(&p, "windows", 2, 1, f, 0);
    pf_progress_update(&p, 1, 5, 10, 1);
    pf_progress_finish(&p);
    fflush(f);
    assert_int_equal(len, 0);
    /* Disabled by the caller (e.g. --quiet) even when forced. */
    pf_progress_start(&p, "windows", 2, 0, f, 1);
    pf_progress_update(&p, 1, 5, 10, 1);
    fflush(f);
    assert_int_equal(len, 0);
    fclose(f);
    free(buf);
}

static void test_draw_and_clear(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pf_progress p;
    pf_progress_start(&p, "windows", 2, 1, f, 1);
    pf_progress_update(&p, 1, 5, 10, 1);
    pf_progress_update(&p, 1, 6, 10, 0); /* throttled: within 200 ms */
    pf_progress_finish(&p);
    fflush(f);
    assert_non_null(strstr(buf, "\r\033[K1/2 windows (50%), 5 records"));
    assert_null(strstr(buf, "6 records"));
    assert_int_equal(strcmp(buf + len - 4, "\r\033[K"), 0);
    fclose(f);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_never_drawn_without_a_terminal),
        cmocka_unit_test(test_draw_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
