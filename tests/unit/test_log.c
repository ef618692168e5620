/* test_log.c: the log module's guarantees: secrets redacted (the longest
 * match, also when a message is longer than a log line), one line per
 * message in text and JSON format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

/* Runs pf_log with stderr captured; returns what was written (static). */
static const char *logged(pf_log_level level, const char *fmt, const char *arg)
{
    static char out[16384];
    fflush(stderr);
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(2);
    dup2(fileno(f), 2);
    pf_log(level, fmt, arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_redaction(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    assert_int_equal(pf_log_add_secret("pass"), 0);
    assert_int_equal(pf_log_add_secret("password-123"), 0);
    assert_int_equal(pf_log_add_secret("ab"), 0); /* too short: ignored */
    char out[128];
    /* The longer secret wins even though the shorter one was registered first. */
    pf_log_redact("x=password-123;y=pass;ab", out, sizeof out);
    assert_string_equal(out, "x=***;y=***;ab");
    pf_log_redact(NULL, out, sizeof out);
    assert_string_equal(out, "");
    /* A small destination is cut, never with a piece of a secret. */
    pf_log_redact("password-123", out, 3);
    assert_string_equal(out, "**");
    pf_log_clear_secrets();
    pf_log_redact("password-123", out, sizeof out);
    assert_string_equal(out, "password-123");

    /* Many flows in one process: hundreds of secrets, all redacted. */
    char sec[32];
    for (int i = 0; i < 500; i++) {
        snprintf(sec, sizeof sec, "flow-%03d-secret", i);
        assert_int_equal(pf_log_add_secret(sec), 0);
        assert_int_equal(pf_log_add_secret(sec), 0); /* twice: one copy */
    }
    pf_log_redact("a flow-000-secret b flow-499-secret c", out, sizeof out);
    assert_string_equal(out, "a *** b *** c");
    pf_log_clear_secrets();
    pf_log_redact("flow-250-secret", out, sizeof out);
    assert_string_equal(out, "flow-250-secret");
}

static void test_long_message_redacted_before_cut(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    static const char secret[] = "S3CRET-TOKEN-VALUE-0123456789";
    assert_int_equal(pf_log_add_secret(secret), 0);
    /* The secret straddles the 4 KiB line limit: formatting into a line
     * buffer first would leave its first bytes at the end of the line. */
    for (size_t pad = 4070; pad < 4100; pad += 3) {
        char *msg = malloc(pad + sizeof secret + 16);
        assert_non_null(msg);
        memset(msg, 'x', pad);
        memcpy(msg + pad, secret, sizeof secret);
        const char *out = logged(PF_LOG_ERROR, "%s", msg);
        assert_null(strstr(out, "S3CRET"));
        assert_int_equal(count_char(out, '\n'), 1);
        free(msg);
    }
    pf_log_clear_secrets();
}

static void test_one_line_per_message(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    const char *out =
        logged(PF_LOG_WARN, "server said: %s", "oops\nppflow: error: forged line\r\x1b[2J\x7f end");
    assert_int_equal(count_char(out, '\n'), 1);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\x1b'));
    assert_non_null(strstr(out, "ppflow: warning: server said: oops\\nppflow: error: forged "
                                "line\\r\\x1b[2J\\x7f end\n"));

    assert_int_equal(pf_log_set_format("json"), 0);
    pf_log_set_flow("fl\now");
    out = logged(PF_LOG_WARN, "a %s", "b\nc\"d");
    assert_int_equal(count_char(out, '\n'), 1);
    assert_non_null(strstr(out, "\"level\":\"warning\""));
    assert_non_null(strstr(out, "\"flow\":\"fl\\now\""));
    assert_non_null(strstr(out, "\"msg\":\"a b\\nc\\\"d\"}"));
    assert_int_equal(pf_log_set_format("text"), 0);
    assert_int_equal(pf_log_set_format("xml"), -1);
    pf_log_set_flow(NULL);

    /* Levels: below the threshold nothing is written. */
    pf_log_set_level(PF_LOG_WARN);
    assert_string_equal(logged(PF_LOG_INFO, "%s", "hidden"), "");
    pf_log_set_level(PF_LOG_INFO);
    assert_int_equal(pf_log_get_level(), PF_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_long_message_redacted_before_cut),
        cmocka_unit_test(test_one_line_per_message),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pf_log_clear_secrets();
    return rc;
}
