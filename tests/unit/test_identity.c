/* test_identity.c: record identity: a template key given as a list of
 * JSONPaths, the identity text sinks are given, and how a record without its
 * first key is identified (further key paths, then the SHA-256 of its bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/identity.h"
#include "flow/template.h"

static const char head[] = "name: ident\n"
                           "request:\n"
                           "  method: GET\n"
                           "  base_url: https://api.example.com\n"
                           "  path: /v1/items\n"
                           "auth:\n"
                           "  kind: none\n"
                           "streams:\n";

/* Loads a template whose streams are STREAMS (YAML text); NULL on failure
 * with the diagnostics in D. */
static pf_template *load(const char *streams, pf_diags *d)
{
    char dir[] = "/tmp/pft-identity-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ident.yaml", dir); /* the name must match */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(head, f);
    fputs(streams, f);
    fputs("pagination:\n  kind: none\n", f);
    assert_int_equal(fclose(f), 0);
    pf_template *t = NULL;
    pf_template_load_file(path, &t, d);
    unlink(path);
    rmdir(dir);
    return t;
}

static void key_list_loads_in_order(void **state)
{
    (void)state;
    pf_diags d = {0};
    pf_template *t = load("  msgs:\n    path: $.m[*]\n    key: [$.id, $.GUID]\n"
                          "  plain:\n    path: $.p[*]\n    key: $.id\n"
                          "  nokey:\n    path: $.n[*]\n",
                          &d);
    assert_non_null(t);
    assert_string_equal(t->streams[0].key_text, "$.id");
    assert_int_equal(t->streams[0].nkey_alt, 1);
    assert_string_equal(t->streams[0].key_alt_text[0], "$.GUID");
    assert_string_equal(t->streams[0].identity, "$.id | $.GUID | sha256");
    assert_string_equal(t->streams[1].identity, "$.id | sha256");
    assert_string_equal(t->streams[2].identity, "sha256");
    pf_template_free(t);
    pf_diags_free(&d);
}

static void empty_or_bad_key_list_is_refused(void **state)
{
    (void)state;
    pf_diags d = {0};
    assert_null(load("  msgs:\n    path: $.m[*]\n    key: []\n", &d));
    assert_true(d.count > 0);
    assert_non_null(strstr(d.items[0].msg, "empty list"));
    assert_int_equal(d.items[0].line, 11);
    pf_diags_free(&d);
    pf_diags d2 = {0};
    assert_null(load("  msgs:\n    path: $.m[*]\n    key: [$.id, $..[]\n", &d2));
    assert_true(d2.count > 0);
    assert_int_equal(d2.items[0].line, 11);
    pf_diags_free(&d2);
}

static void sha256_matches_the_standard_vector(void **state)
{
    (void)state;
    char h[PF_IDENTITY_HASH_SIZE];
    pf_identity_hash("abc", 3, h);
    assert_string_equal(h,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void missing_first_key_uses_the_next_path_then_the_hash(void **state)
{
    (void)state;
    pf_diags d = {0};
    pf_template *t = load("  msgs:\n    path: $.m[*]\n    key: [$.id, $.GUID]\n", &d);
    assert_non_null(t);
    const pf_stream_def *sd = &t->streams[0];
    pf_buf scratch;
    pf_buf_init(&scratch, 0);
    pf_error e;
    pf_error_clear(&e);

    /* Per-recipient events share a GUID; with no id, the GUID is next. */
    const char *a = "{\"GUID\":\"g1\",\"recipient\":[\"a@x\"]}";
    pf_sink_record r = {sd->name, NULL, 0, a, strlen(a)};
    assert_int_equal(pf_identity_stream(t, &r), sd);
    assert_int_equal(pf_identity_complete(sd, &r, &scratch, &e), PF_OK);
    assert_int_equal(r.key_len, 2);
    assert_memory_equal(r.key, "g1", 2);

    /* Neither path: the hash of the bytes, so distinct records differ. */
    const char *b1 = "{\"QID\":\"q\",\"recipient\":[\"a@x\"]}";
    const char *b2 = "{\"QID\":\"q\",\"recipient\":[\"b@x\"]}";
    pf_sink_record r1 = {sd->name, NULL, 0, b1, strlen(b1)};
    assert_int_equal(pf_identity_complete(sd, &r1, &scratch, &e), PF_OK);
    char k1[PF_IDENTITY_HASH_SIZE], want[PF_IDENTITY_HASH_SIZE];
    snprintf(k1, sizeof k1, "%.*s", (int)r1.key_len, r1.key);
    pf_identity_hash(b1, strlen(b1), want);
    assert_string_equal(k1, want);
    pf_sink_record r2 = {sd->name, NULL, 0, b2, strlen(b2)};
    assert_int_equal(pf_identity_complete(sd, &r2, &scratch, &e), PF_OK);
    assert_true(r2.key_len == strlen(k1) && memcmp(r2.key, k1, r2.key_len) != 0);

    /* A number key is its text; a record with its key set is left alone. */
    const char *c = "{\"GUID\":12345678901}";
    pf_sink_record r3 = {sd->name, NULL, 0, c, strlen(c)};
    assert_int_equal(pf_identity_complete(sd, &r3, &scratch, &e), PF_OK);
    assert_int_equal(r3.key_len, 11);
    assert_memory_equal(r3.key, "12345678901", 11);
    pf_sink_record r4 = {sd->name, "given", 5, c, strlen(c)};
    assert_int_equal(pf_identity_complete(sd, &r4, &scratch, &e), PF_OK);
    assert_string_equal(r4.key, "given");

    /* Owned: a malloc'd key for collected records. */
    pf_sink_record r5 = {sd->name, NULL, 0, b1, strlen(b1)};
    assert_int_equal(pf_identity_complete_owned(sd, &r5, &e), PF_OK);
    assert_string_equal(r5.key, want);
    free((char *)r5.key);

    pf_buf_free(&scratch);
    pf_template_free(t);
    pf_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_list_loads_in_order),
        cmocka_unit_test(empty_or_bad_key_list_is_refused),
        cmocka_unit_test(sha256_matches_the_standard_vector),
        cmocka_unit_test(missing_first_key_uses_the_next_path_then_the_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
