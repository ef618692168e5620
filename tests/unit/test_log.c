/* test_log.c: the log module's guarantees: secrets redacted (the longest
 * match, overlapping matches as one span, also when a message is longer than
 * a log line or the destination is small), in their JSON-, percent- and
 * HTML-encoded forms too, secret scopes, and one line per message in text
 * and JSON format. */
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
#include "util/status.h"

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

/* The secret of the encoding tests: non-ASCII (one 2-byte character, one
 * outside the BMP: a surrogate pair in JSON), and every character JSON,
 * URLs or HTML escape. UTF-8 of "Pa/ss\"w&rd<ß>'💥 +x". */
static const char ENC_SECRET[] = "Pa/ss\"w&rd<\xc3\x9f>'\xf0\x9f\x92\xa5 +x";

/* Redacts "[" FORM "]" and checks that exactly "[***]" remains. */
static void assert_form_redacted(const char *form)
{
    char in[512], out[512];
    snprintf(in, sizeof in, "[%s]", form);
    pf_log_redact(in, out, sizeof out);
    if (strcmp(out, "[***]") != 0) fail_msg("form %s redacted to %s", form, out);
}

static void test_encoded_forms_redacted(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    assert_int_equal(pf_log_add_secret(ENC_SECRET), 0);
    static const char *const forms[] = {
        /* raw */
        "Pa/ss\"w&rd<\xc3\x9f>'\xf0\x9f\x92\xa5 +x",
        /* JSON: minimal escaping (Python ensure_ascii=False, json-c) */
        "Pa/ss\\\"w&rd<\xc3\x9f>'\xf0\x9f\x92\xa5 +x",
        /* JSON: \/ (json-c's default), non-ASCII as \u, lower and upper hex */
        "Pa\\/ss\\\"w&rd<\\u00df>'\\ud83d\\udca5 +x",
        "Pa\\/ss\\\"w&rd<\\u00DF>'\\uD83D\\uDCA5 +x",
        /* JSON: HTML-safe escaping (Go's encoding/json), every byte escaped */
        "Pa/ss\\u0022w\\u0026rd\\u003c\\u00df\\u003e\\u0027\\ud83d\\udca5 +x",
        ("\\u0050\\u0061\\u002f\\u0073\\u0073\\u0022\\u0077\\u0026\\u0072\\u0064\\u003c\\u00df"
         "\\u003e\\u0027\\ud83d\\udca5\\u0020\\u002b\\u0078"),
        /* percent-encoded: query form (space as +), upper and lower hex, mixed */
        "Pa%2Fss%22w%26rd%3C%C3%9F%3E%27%F0%9F%92%A5+%2Bx",
        "Pa%2fss%22w%26rd%3c%c3%9f%3e%27%f0%9f%92%a5%20%2bx",
        "Pa/ss%22w%26rd<%C3%9F>'%F0%9F%92%A5%20+x",
        /* HTML: Python's html.escape, numeric references, named ones in upper case */
        "Pa/ss&quot;w&amp;rd&lt;\xc3\x9f&gt;&#x27;\xf0\x9f\x92\xa5 +x",
        "Pa/ss&#34;w&#38;rd&#60;&#223;&#62;&#39;&#128165; +x",
        "Pa&#x2F;ss&QUOT;w&AMP;rd&LT;&#xDF;&GT;&apos;&#x1F4A5;&#32;&#43;x",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        assert_form_redacted(forms[i]);

    /* Not the secret: a different character in an encoded form, a lone
     * surrogate, a form cut short. */
    char out[256];
    pf_log_redact("Pa%2Fss%22w%26rd%3C%C3%9F%3E%27%F0%9F%92%A5+%2By", out, sizeof out);
    assert_string_equal(out, "Pa%2Fss%22w%26rd%3C%C3%9F%3E%27%F0%9F%92%A5+%2By");
    pf_log_redact("Pa\\/ss\\\"w&rd<\\u00df>'\\ud83d +x", out, sizeof out);
    assert_string_equal(out, "Pa\\/ss\\\"w&rd<\\u00df>'\\ud83d +x");

    /* Inside a larger JSON document, as a server would echo it. */
    pf_log_redact("{\"error\":\"bad key Pa\\/ss\\\"w&rd<\\u00df>'\\ud83d\\udca5 +x\"}", out,
                  sizeof out);
    assert_string_equal(out, "{\"error\":\"bad key ***\"}");

    /* '+' in a query is a space or a plus: both secrets are found. */
    pf_log_clear_secrets();
    assert_int_equal(pf_log_add_secret("a+b c"), 0);
    pf_log_redact("q=a+b+c&r=a%2Bb%20c&s=a+b c", out, sizeof out);
    assert_string_equal(out, "q=***&r=***&s=***");
    pf_log_clear_secrets();
}

static void test_overlapping_secrets_leave_nothing(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    /* The first secret ends inside the second, which is longer: redacting the
     * first and moving on would show the second's end. */
    assert_int_equal(pf_log_add_secret("xy-ab12"), 0);
    assert_int_equal(pf_log_add_secret("ab12-cdefgh"), 0);
    char out[128];
    pf_log_redact("<xy-ab12-cdefgh>", out, sizeof out);
    assert_string_equal(out, "<***>");
    pf_log_redact("<ab12-cdefgh|xy-ab12>", out, sizeof out);
    assert_string_equal(out, "<***|***>");
    pf_log_clear_secrets();
}

static void test_small_destination_never_shows_a_piece(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    static const char secret[] = "0123456789-SECRET";
    assert_int_equal(pf_log_add_secret(secret), 0);
    char text[128], full[128], out[128];
    for (size_t pad = 0; pad < 40; pad++) {
        memset(text, '.', pad);
        snprintf(text + pad, sizeof text - pad, "%s tail", secret);
        pf_log_redact(text, full, sizeof full);
        assert_null(strstr(full, "0123"));
        /* Every cut of the redacted text is a prefix of the whole redacted
         * text: none shows the secret's first bytes. */
        for (size_t n = 1; n <= strlen(full) + 1; n++) {
            pf_log_redact(text, out, n);
            assert_int_equal(strncmp(out, full, strlen(out)), 0);
            assert_true(strlen(out) == n - 1 || strcmp(out, full) == 0);
            assert_null(strstr(out, "01"));
        }
    }
    /* A cut never splits a UTF-8 character. */
    pf_log_redact("ab\xc3\x9f", out, 4);
    assert_string_equal(out, "ab");
    pf_log_redact("ab\xf0\x9f\x92\xa5", out, 5);
    assert_string_equal(out, "ab");
    pf_log_clear_secrets();
}

static void test_redact_dup_and_format(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    static const char secret[] = "dup-secret-value";
    assert_int_equal(pf_log_add_secret(secret), 0);
    /* NUL bytes are kept and never hide a secret after them. */
    static const char body[] = "a\0b dup-secret-value\0c";
    size_t len = 0;
    char *r = pf_log_redact_dup(body, sizeof body - 1, &len);
    assert_non_null(r);
    assert_int_equal(len, 9);
    assert_memory_equal(r, "a\0b ***\0c", 10); /* with the terminating NUL */
    free(r);
    r = pf_log_redact_dup(NULL, 0, &len);
    assert_non_null(r);
    assert_string_equal(r, "");
    free(r);

    /* Formatted whole, redacted whole, then cut: for every position of the
     * secret around the cut, nothing of it remains. */
    char *pad = malloc(9000);
    assert_non_null(pad);
    for (size_t p = 0; p < 40; p++) {
        size_t n = 4070 + p;
        memset(pad, 'x', n);
        pad[n] = '\0';
        char out[4096];
        pf_log_format_redacted(out, sizeof out, "%s%s and more", pad, secret);
        assert_null(strstr(out, "dup-"));
        /* The cut redacted text: the padding, then "*** and more" as far as it fits. */
        assert_int_equal(strlen(out), n + 12 < sizeof out - 1 ? n + 12 : sizeof out - 1);
        assert_int_equal(strspn(out, "x"), n < sizeof out - 1 ? n : sizeof out - 1);
        if (n < sizeof out - 1)
            assert_int_equal(strncmp(out + n, "*** and more", sizeof out - 1 - n), 0);
    }
    free(pad);
    pf_log_clear_secrets();
}

static void test_scopes(void **state)
{
    (void)state;
    pf_log_clear_secrets();
    char out[128];
    assert_int_equal(pf_log_add_secret("global-one"), 0);
    pf_log_secret_scope("/flows/a.yaml");
    assert_int_equal(pf_log_add_secret("secret-of-a"), 0);
    assert_int_equal(pf_log_add_secret("shared-secret"), 0);
    assert_int_equal(pf_log_add_secret("global-one"), 0); /* stays unscoped */
    pf_log_secret_scope("/flows/b.yaml");
    assert_int_equal(pf_log_add_secret("secret-of-b"), 0);
    assert_int_equal(pf_log_add_secret("shared-secret"), 0);
    pf_log_secret_scope(NULL);
    pf_log_redact("global-one secret-of-a secret-of-b shared-secret", out, sizeof out);
    assert_string_equal(out, "*** *** *** ***");
    /* A run of flow b keeps b's secrets and the unscoped ones. */
    pf_log_keep_secrets_of("/flows/b.yaml");
    pf_log_redact("global-one secret-of-a secret-of-b shared-secret", out, sizeof out);
    assert_string_equal(out, "*** secret-of-a *** ***");
    pf_log_keep_secrets_of(NULL);
    pf_log_redact("global-one secret-of-b", out, sizeof out);
    assert_string_equal(out, "*** secret-of-b");
    pf_log_clear_secrets();
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

/* An error message is redacted whole before it is cut to PF_ERROR_MSG_MAX:
 * a secret that straddles the cut leaves no piece of itself. */
static void test_error_message_redacted_before_cut(void **state)
{
    (void)state;
    const char *secret = "Straddling-Secret-0123456789";
    assert_int_equal(pf_log_add_secret(secret), 0);
    char pad[PF_ERROR_MSG_MAX];
    for (size_t at = PF_ERROR_MSG_MAX - 20; at < PF_ERROR_MSG_MAX; at++) {
        memset(pad, 'x', at);
        pad[at] = '\0';
        pf_error e;
        assert_int_equal(pf_error_set(&e, PF_EHTTP, "%s%s tail", pad, secret), PF_EHTTP);
        assert_true(strlen(e.msg) < PF_ERROR_MSG_MAX);
        /* No 4-byte piece of the secret survives the cut. */
        for (size_t i = 0; i + 4 <= strlen(secret); i++) {
            char piece[5];
            memcpy(piece, secret + i, 4);
            piece[4] = '\0';
            assert_null(strstr(e.msg, piece));
        }
        pf_error_at(&e, PF_ECONFIG, "f.yaml", 1, 2, "%s%s", pad, secret);
        assert_null(strstr(e.msg, "Stra"));
    }
    pf_log_clear_secrets();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_encoded_forms_redacted),
        cmocka_unit_test(test_overlapping_secrets_leave_nothing),
        cmocka_unit_test(test_small_destination_never_shows_a_piece),
        cmocka_unit_test(test_redact_dup_and_format),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_long_message_redacted_before_cut),
        cmocka_unit_test(test_one_line_per_message),
        cmocka_unit_test(test_error_message_redacted_before_cut),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pf_log_clear_secrets();
    return rc;
}
