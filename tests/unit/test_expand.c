/* test_expand.c: ${VAR} substitution from the environment in flow values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/expand.h"

/* Expands S and requires success; returns the text (static buffer). */
static const char *expand_ok(const char *s)
{
    static char result[1024];
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error e;
    pf_error_clear(&e);
    size_t off = 9999;
    pf_status st = pf_expand_env(s, &out, &off, &e);
    if (st != PF_OK) {
        pf_buf_free(&out);
        fail_msg("pf_expand_env(\"%s\") failed: %s", s, e.msg);
    }
    snprintf(result, sizeof result, "%s", pf_buf_str(&out));
    pf_buf_free(&out);
    return result;
}

/* Expands S, requires PF_ECONFIG; fills *E and returns the error offset. */
static size_t expand_bad(const char *s, pf_error *e)
{
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error_clear(e);
    size_t off = 9999;
    pf_status st = pf_expand_env(s, &out, &off, e);
    pf_buf_free(&out);
    if (st != PF_ECONFIG) fail_msg("pf_expand_env(\"%s\") = %d, want PF_ECONFIG", s, st);
    assert_int_equal(e->code, PF_ECONFIG);
    assert_true(e->msg[0] != '\0');
    return off;
}

static int setup(void **state)
{
    (void)state;
    setenv("PFT_USER", "alice", 1);
    setenv("PFT_EMPTY", "", 1);
    setenv("PFT_REF", "${PFT_USER}", 1);
    setenv("PFT_DOLLAR", "a$$b", 1);
    unsetenv("PFT_UNSET");
    unsetenv("PFT_UNSET2");
    return 0;
}

static void test_set_variable(void **state)
{
    (void)state;
    assert_string_equal(expand_ok("${PFT_USER}"), "alice");
    assert_string_equal(expand_ok("user=${PFT_USER}; again ${PFT_USER}!"),
                        "user=alice; again alice!");
    assert_string_equal(expand_ok("no references here"), "no references here");
    assert_string_equal(expand_ok(""), "");
    /* Set but empty, without a default: the empty value (not an error). */
    assert_string_equal(expand_ok("[${PFT_EMPTY}]"), "[]");
}

static void test_output_is_appended(void **state)
{
    (void)state;
    pf_buf out;
    pf_buf_init(&out, 0);
    assert_int_equal(pf_buf_puts(&out, "prefix:"), PF_OK);
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_expand_env("${PFT_USER}", &out, NULL, &e), PF_OK);
    assert_string_equal(pf_buf_str(&out), "prefix:alice");
    pf_buf_free(&out);
}

static void test_unset_variable_is_an_error_naming_it(void **state)
{
    (void)state;
    pf_error e;
    size_t off = expand_bad("abc ${PFT_UNSET} def", &e);
    assert_int_equal(off, 4);
    assert_non_null(strstr(e.msg, "PFT_UNSET"));
    /* The second reference is the missing one: the offset points at it. */
    off = expand_bad("${PFT_USER}/${PFT_UNSET2}", &e);
    assert_int_equal(off, 12);
    assert_non_null(strstr(e.msg, "PFT_UNSET2"));
    /* ERR_OFF may be NULL. */
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error_clear(&e);
    assert_int_equal(pf_expand_env("${PFT_UNSET}", &out, NULL, &e), PF_ECONFIG);
    pf_buf_free(&out);
}

static void test_default_value(void **state)
{
    (void)state;
    assert_string_equal(expand_ok("${PFT_UNSET:-fallback}"), "fallback");
    assert_string_equal(expand_ok("${PFT_EMPTY:-fallback}"), "fallback");
    assert_string_equal(expand_ok("${PFT_USER:-fallback}"), "alice");
    assert_string_equal(expand_ok("x${PFT_UNSET:-}y"), "xy");
    assert_string_equal(expand_ok("${PFT_UNSET:-a b:c/d}"), "a b:c/d");
    assert_string_equal(expand_ok("${PFT_UNSET:-one}-${PFT_USER}"), "one-alice");
}

static void test_double_dollar_is_literal(void **state)
{
    (void)state;
    assert_string_equal(expand_ok("$$"), "$");
    assert_string_equal(expand_ok("cost: $$5"), "cost: $5");
    /* $${NAME} is the literal text ${NAME}, not a reference. */
    assert_string_equal(expand_ok("$${PFT_UNSET}"), "${PFT_UNSET}");
    assert_string_equal(expand_ok("$$$${PFT_USER}"), "$${PFT_USER}");
    assert_string_equal(expand_ok("$$${PFT_USER}"), "$alice");
}

static void test_lone_dollar_is_kept(void **state)
{
    (void)state;
    assert_string_equal(expand_ok("$"), "$");
    assert_string_equal(expand_ok("price $5"), "price $5");
    assert_string_equal(expand_ok("end$"), "end$");
    assert_string_equal(expand_ok("$PFT_USER"), "$PFT_USER"); /* only ${...} is a reference */
    assert_string_equal(expand_ok("a $ {PFT_USER}"), "a $ {PFT_USER}");
}

static void test_malformed_references(void **state)
{
    (void)state;
    pf_error e;
    assert_int_equal(expand_bad("${", &e), 0);
    assert_int_equal(expand_bad("abc${", &e), 3);
    assert_int_equal(expand_bad("x ${1X}", &e), 2);
    assert_int_equal(expand_bad("${}", &e), 0);
    assert_int_equal(expand_bad("${A-B}", &e), 0);
    assert_int_equal(expand_bad("${ PFT_USER}", &e), 0);
    size_t off = expand_bad("ok ${A", &e);
    assert_int_equal(off, 3);
    assert_non_null(strstr(e.msg, "A"));
    off = expand_bad("${PFT_UNSET:-no end", &e);
    assert_int_equal(off, 0);
    assert_non_null(strstr(e.msg, "PFT_UNSET"));
    /* A malformed reference is an error even when the name is set. */
    off = expand_bad("${PFT_USER", &e);
    assert_non_null(strstr(e.msg, "PFT_USER"));
}

static void test_values_are_not_expanded_again(void **state)
{
    (void)state;
    /* PFT_REF holds "${PFT_USER}": taken literally, no recursion. */
    assert_string_equal(expand_ok("${PFT_REF}"), "${PFT_USER}");
    assert_string_equal(expand_ok("${PFT_DOLLAR}"), "a$$b");
    /* A variable naming itself does not loop. */
    setenv("PFT_SELF", "${PFT_SELF}", 1);
    assert_string_equal(expand_ok("<${PFT_SELF}>"), "<${PFT_SELF}>");
    /* A default is not a reference either. */
    setenv("PFT_DEF", "${PFT_UNSET}", 1);
    assert_string_equal(expand_ok("${PFT_UNSET2:-x}${PFT_DEF}"), "x${PFT_UNSET}");
    unsetenv("PFT_SELF");
    unsetenv("PFT_DEF");
}

static void test_has_ref(void **state)
{
    (void)state;
    assert_int_equal(pf_expand_has_ref("${A}"), 1);
    assert_int_equal(pf_expand_has_ref("prefix ${A:-x} suffix"), 1);
    assert_int_equal(pf_expand_has_ref("${"), 1); /* malformed, but a reference attempt */
    assert_int_equal(pf_expand_has_ref("plain"), 0);
    assert_int_equal(pf_expand_has_ref(""), 0);
    assert_int_equal(pf_expand_has_ref("$A"), 0);
    assert_int_equal(pf_expand_has_ref("$"), 0);
    assert_int_equal(pf_expand_has_ref("$$"), 0);
    assert_int_equal(pf_expand_has_ref("$${A}"), 0);
    assert_int_equal(pf_expand_has_ref("$$${A}"), 1);
    assert_int_equal(pf_expand_has_ref("$${A}${B}"), 1);
    assert_int_equal(pf_expand_has_ref("hunter2{x}"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_variable),
        cmocka_unit_test(test_output_is_appended),
        cmocka_unit_test(test_unset_variable_is_an_error_naming_it),
        cmocka_unit_test(test_default_value),
        cmocka_unit_test(test_double_dollar_is_literal),
        cmocka_unit_test(test_lone_dollar_is_kept),
        cmocka_unit_test(test_malformed_references),
        cmocka_unit_test(test_values_are_not_expanded_again),
        cmocka_unit_test(test_has_ref),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
