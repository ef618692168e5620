/* test_flow.c: loading flow files against the bundled templates:
 * parameters, credentials, sink options, state, --set overrides, template
 * constraints, manual flows, stream overrides and `when`, response format,
 * base URL placeholders, and the FILE:LINE:COL of every problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flow/flow.h"
#include "util/log.h"

static char tmpdir[64];
static char flow_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-flow-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(flow_path, sizeof flow_path, "%s/flow.yaml", tmpdir);
    setenv("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_DIR "/templates", 1);
    setenv("PFT_PRINCIPAL", "svc-principal", 1);
    setenv("PFT_SECRET", "s3cret-value-123", 1);
    unsetenv("PFT_NOT_SET");
    unsetenv("PFT_NOT_SET2");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    pf_log_clear_secrets();
    return 0;
}

static void write_flow(const char *text)
{
    FILE *f = fopen(flow_path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void dump(const pf_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        print_message("  diag %zu: %s:%d:%d: %s\n", i, d->items[i].file, d->items[i].line,
                      d->items[i].col, d->items[i].msg);
}

static pf_flow *load_ok(const char *text, const pf_flow_override *sets, size_t nsets)
{
    write_flow(text);
    pf_flow *f = NULL;
    pf_diags d = {0};
    pf_status st = pf_flow_load(flow_path, sets, nsets, &f, &d);
    if (st != PF_OK || d.count) {
        dump(&d);
        fail_msg("flow did not load (%d)", st);
    }
    pf_diags_free(&d);
    assert_non_null(f);
    return f;
}

/* Loads TEXT expecting failure; D receives the diagnostics. */
static void load_bad(const char *text, const pf_flow_override *sets, size_t nsets, pf_diags *d)
{
    write_flow(text);
    pf_flow *f = (pf_flow *)(uintptr_t)1;
    pf_status st = pf_flow_load(flow_path, sets, nsets, &f, d);
    if (st == PF_OK) fail_msg("flow loaded, expected diagnostics");
    assert_null(f);
    assert_true(d->count > 0);
    assert_int_equal(st, d->items[0].code);
}

static const pf_error *expect_diag(const pf_diags *d, const char *needle, const char *file,
                                   int line, int col)
{
    for (size_t i = 0; i < d->count; i++) {
        const pf_error *e = &d->items[i];
        if (!strstr(e->msg, needle)) continue;
        if (strcmp(e->file, file) != 0 || e->line != line || e->col != col) {
            dump(d);
            fail_msg("diagnostic '%s' at %s:%d:%d, want %s:%d:%d", e->msg, e->file, e->line, e->col,
                     file, line, col);
        }
        return e;
    }
    dump(d);
    fail_msg("no diagnostic mentions '%s'", needle);
    return NULL;
}

static const char valid_flow[] = "name: siem-test\n"                            /* 1 */
                                 "description: unit test flow\n"                /* 2 */
                                 "source:\n"                                    /* 3 */
                                 "  template: tap-siem-all\n"                   /* 4 */
                                 "  base_url: https://127.0.0.1:9/prefix\n"     /* 5 */
                                 "  auth:\n"                                    /* 6 */
                                 "    principal: ${PFT_PRINCIPAL}\n"            /* 7 */
                                 "    secret: ${PFT_SECRET}\n"                  /* 8 */
                                 "  params:\n"                                  /* 9 */
                                 "    since_seconds: 3600\n"                    /* 10 */
                                 "    threat_status: [active, falsePositive]\n" /* 11 */
                                 "  http:\n"                                    /* 12 */
                                 "    timeout: 30s\n"                           /* 13 */
                                 "    max_attempts: 3\n"                        /* 14 */
                                 "sink:\n"                                      /* 15 */
                                 "  type: ndjson\n"                             /* 16 */
                                 "  path: out/{stream}.ndjson\n"                /* 17 */
                                 "  fsync: false\n"                             /* 18 */
                                 "state:\n"                                     /* 19 */
                                 "  path: state/siem.json\n";                   /* 20 */

static void test_valid_flow_loads(void **state)
{
    (void)state;
    pf_flow *f = load_ok(valid_flow, NULL, 0);
    assert_string_equal(f->name, "siem-test");
    assert_string_equal(f->tmpl->name, "tap-siem-all");
    assert_string_equal(f->base_url, "https://127.0.0.1:9/prefix"); /* the override */
    assert_string_equal(f->principal, "svc-principal");
    assert_string_equal(f->secret, "s3cret-value-123");
    assert_null(f->local_file);

    assert_string_equal(pf_flow_param_str(f, "since_seconds"), "3600");
    assert_int_equal(pf_flow_param(f, "since_seconds")->from_default, 0);
    const pf_param_value *ts = pf_flow_param(f, "threat_status");
    assert_non_null(ts);
    assert_int_equal(ts->count, 2);
    assert_string_equal(ts->values[0], "active");
    assert_string_equal(ts->values[1], "falsePositive");
    /* Defaulted and unset parameters. */
    assert_string_equal(pf_flow_param_str(f, "format"), "json");
    assert_int_equal(pf_flow_param(f, "format")->from_default, 1);
    assert_null(pf_flow_param(f, "threat_type"));
    assert_null(pf_flow_param_str(f, "since_time"));

    assert_int_equal(f->http.timeout_ms, 30000);
    assert_int_equal(f->http.max_attempts, 3);
    assert_int_equal(f->http.connect_timeout_ms, 10000); /* default */
    assert_int_equal(f->http.verify_tls, 1);

    assert_string_equal(f->sink.desc->name, "ndjson");
    assert_string_equal(pf_sink_config_get(&f->sink, "path"), "out/{stream}.ndjson");
    assert_string_equal(pf_sink_config_get(&f->sink, "fsync"), "false");
    assert_string_equal(f->state_path, "state/siem.json");

    /* The secret is registered for redaction. */
    char out[128];
    pf_log_redact("token s3cret-value-123 leaked", out, sizeof out);
    assert_string_equal(out, "token *** leaked");
    pf_flow_free(f);
}

static void test_template_base_url_when_not_overridden(void **state)
{
    (void)state;
    pf_flow *f = load_ok("name: plain\n"
                         "source:\n"
                         "  template: tap-siem-all\n"
                         "  auth:\n"
                         "    principal: p\n"
                         "    secret: ${PFT_SECRET}\n"
                         "sink:\n"
                         "  type: ndjson\n"
                         "  path: out.ndjson\n"
                         "state:\n"
                         "  path: s.json\n",
                         NULL, 0);
    assert_string_equal(f->base_url, "https://tap-api-v2.proofpoint.com");
    assert_string_equal(pf_sink_config_get(&f->sink, "fsync"), "true"); /* the default */
    pf_flow_free(f);
}

static void test_missing_variable_named_at_its_position(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: \"id-${PFT_NOT_SET2}\"\n" /* 5 */
             "    secret: ${PFT_NOT_SET}\n"            /* 6 */
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "PFT_NOT_SET is not set", flow_path, 6, 13);
    assert_int_equal(e->code, PF_ECONFIG);
    /* In a quoted scalar the column still points at the '$'. */
    expect_diag(&d, "PFT_NOT_SET2", flow_path, 5, 20);
    pf_diags_free(&d);
}

static void test_literal_secret_is_refused(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret: hunter2-literal\n" /* 6 */
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    const pf_error *e =
        expect_diag(&d, "auth.secret must come from the environment", flow_path, 6, 13);
    assert_null(strstr(e->msg, "hunter2")); /* never echoed */
    pf_diags_free(&d);

    /* Credentials are required by the template. */
    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    expect_diag(&d, "needs credentials", flow_path, 3, 3);
    pf_diags_free(&d);
}

/* A valid tap-siem-all flow whose source.params lines (from line 8 on) are PARAMS. */
static void params_flow(char *buf, size_t n, const char *params)
{
    snprintf(buf, n,
             "name: siem-test\n"           /* 1 */
             "source:\n"                   /* 2 */
             "  template: tap-siem-all\n"  /* 3 */
             "  auth:\n"                   /* 4 */
             "    principal: p\n"          /* 5 */
             "    secret: ${PFT_SECRET}\n" /* 6 */
             "  params:\n"                 /* 7 */
             "%s"                          /* 8... */
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             params);
}

static void test_unknown_param_name(void **state)
{
    (void)state;
    char text[2048];
    pf_diags d = {0};
    params_flow(text, sizeof text, "    since_seconds: 60\n    bogus_param: 1\n");
    load_bad(text, NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "no parameter 'bogus_param'", flow_path, 9, 5);
    assert_non_null(strstr(e->msg, "since_seconds")); /* lists the real ones */
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);
}

static void test_wrong_param_type_and_bounds(void **state)
{
    (void)state;
    char text[2048];
    pf_diags d = {0};
    params_flow(text, sizeof text, "    since_seconds: abc\n");
    load_bad(text, NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "'since_seconds' must be an integer", flow_path, 8, 20);
    assert_non_null(strstr(e->msg, "'abc'"));
    pf_diags_free(&d);

    params_flow(text, sizeof text, "    since_seconds: 5\n");
    load_bad(text, NULL, 0, &d);
    e = expect_diag(&d, "'since_seconds'", flow_path, 8, 20);
    assert_non_null(strstr(e->msg, "between 30 and 604800"));
    pf_diags_free(&d);

    params_flow(text, sizeof text, "    since_time: yesterday\n");
    load_bad(text, NULL, 0, &d);
    expect_diag(&d, "'since_time' must be an ISO 8601 date-time", flow_path, 8, 17);
    pf_diags_free(&d);

    /* A list given to a single-value parameter. */
    params_flow(text, sizeof text, "    since_seconds: [60, 120]\n");
    load_bad(text, NULL, 0, &d);
    expect_diag(&d, "takes one integer value, not a list", flow_path, 8, 20);
    pf_diags_free(&d);

    /* Bounds are inclusive. */
    params_flow(text, sizeof text, "    since_seconds: 30\n");
    pf_flow *f = load_ok(text, NULL, 0);
    pf_flow_free(f);
    params_flow(text, sizeof text, "    since_seconds: 604800\n");
    f = load_ok(text, NULL, 0);
    pf_flow_free(f);
}

static void test_enum_and_list_values(void **state)
{
    (void)state;
    char text[2048];
    pf_diags d = {0};
    params_flow(text, sizeof text, "    format: xml\n");
    load_bad(text, NULL, 0, &d);
    const pf_error *e =
        expect_diag(&d, "'format' must be one of the allowed values", flow_path, 8, 13);
    assert_non_null(strstr(e->msg, "json"));
    assert_non_null(strstr(e->msg, "'xml'"));
    pf_diags_free(&d);

    params_flow(text, sizeof text, "    threat_status: [active, bogus]\n");
    load_bad(text, NULL, 0, &d);
    e = expect_diag(&d, "'threat_status'", flow_path, 8, 29);
    assert_non_null(strstr(e->msg, "'bogus'"));
    assert_int_equal(d.count, 1); /* 'active' is fine */
    pf_diags_free(&d);

    /* One value for a list is a one-element list. */
    params_flow(text, sizeof text, "    threat_type: url\n");
    pf_flow *f = load_ok(text, NULL, 0);
    assert_int_equal(pf_flow_param(f, "threat_type")->count, 1);
    pf_flow_free(f);
}

static void test_only_one_start_parameter(void **state)
{
    (void)state;
    char text[2048];
    pf_diags d = {0};
    params_flow(text, sizeof text,
                "    since_time: 2026-11-22T00:00:00Z\n"
                "    since_seconds: 3600\n");
    load_bad(text, NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "give only one of", flow_path, 9, 20);
    assert_non_null(strstr(e->msg, "since_time"));
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);

    params_flow(text, sizeof text,
                "    interval: 2026-11-22T00:00:00Z/2026-11-22T06:00:00Z\n"
                "    since_seconds: 3600\n"
                "    since_time: 2026-11-22T00:00:00Z\n");
    load_bad(text, NULL, 0, &d);
    assert_int_equal(d.count, 2);
    pf_diags_free(&d);

    params_flow(text, sizeof text,
                "    interval: 2026-11-22T00:00:00Z/2026-11-22T06:00:00Z\n"
                "    until: 2026-11-23T00:00:00Z\n");
    load_bad(text, NULL, 0, &d);
    expect_diag(&d, "until cannot be combined with interval", flow_path, 9, 12);
    pf_diags_free(&d);

    /* until with since_time is a backfill: fine. */
    params_flow(text, sizeof text,
                "    since_time: 2026-11-22T00:00:00Z\n"
                "    until: 2026-11-23T00:00:00Z\n");
    pf_flow *f = load_ok(text, NULL, 0);
    pf_flow_free(f);
}

static void test_sink_problems(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret: ${PFT_SECRET}\n"
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "  colour: red\n"      /* 10 */
             "  fsync: sometimes\n" /* 11 */
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "unknown option 'colour'", flow_path, 10, 3);
    assert_non_null(strstr(e->msg, "path")); /* lists the valid options */
    expect_diag(&d, "fsync must be true or false", flow_path, 11, 10);
    pf_diags_free(&d);

    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret: ${PFT_SECRET}\n"
             "sink:\n"
             "  type: carrier-pigeon\n" /* 8: no such sink, built in or plugin */
             "  topic: x\n"
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    e = expect_diag(&d, "unknown sink type 'carrier-pigeon'", flow_path, 8, 9);
    assert_non_null(strstr(e->msg, "ndjson"));
    pf_diags_free(&d);

    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret: ${PFT_SECRET}\n"
             "sink:\n"
             "  type: ndjson\n" /* 8 */
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    expect_diag(&d, "needs option 'path'", flow_path, 8, 3);
    pf_diags_free(&d);
}

static void test_missing_state_and_template(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret: ${PFT_SECRET}\n"
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n",
             NULL, 0, &d);
    expect_diag(&d, "flow has no state", flow_path, 1, 1);
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);

    load_bad("name: siem-test\n"
             "source:\n"
             "  template: no-such-template\n" /* 3 */
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "no-such-template", flow_path, 3, 13);
    assert_int_equal(e->code, PF_ECONFIG);
    pf_diags_free(&d);
}

static void test_set_overrides(void **state)
{
    (void)state;
    pf_flow_override sets[] = {{"since_seconds", "60"}, {"sink.path", "x/{stream}.ndjson"}};
    pf_flow *f = load_ok(valid_flow, sets, 2);
    assert_string_equal(pf_flow_param_str(f, "since_seconds"), "60");
    assert_string_equal(pf_sink_config_get(&f->sink, "path"), "x/{stream}.ndjson");
    /* Everything else as in the file. */
    assert_int_equal(pf_flow_param(f, "threat_status")->count, 2);
    assert_string_equal(pf_sink_config_get(&f->sink, "fsync"), "false");
    pf_flow_free(f);

    /* Overrides create missing sections. */
    pf_flow_override more[] = {{"threat_type", "attachment"}, {"state.path", "other.json"}};
    f = load_ok("name: plain\n"
                "source:\n"
                "  template: tap-siem-all\n"
                "  auth:\n"
                "    principal: p\n"
                "    secret: ${PFT_SECRET}\n"
                "sink:\n"
                "  type: ndjson\n"
                "  path: out.ndjson\n"
                "state:\n"
                "  path: s.json\n",
                more, 2);
    assert_string_equal(pf_flow_param_str(f, "threat_type"), "attachment");
    assert_string_equal(f->state_path, "other.json");
    pf_flow_free(f);
}

static void test_bad_set_value_points_at_command_line(void **state)
{
    (void)state;
    pf_diags d = {0};
    pf_flow_override sets[] = {{"since_seconds", "abc"}, {"format", "xml"}};
    load_bad(valid_flow, sets, 2, &d);
    expect_diag(&d, "'since_seconds' must be an integer", "--set", 1, 15);
    expect_diag(&d, "'format'", "--set", 2, 8);
    assert_int_equal(d.count, 2);
    pf_diags_free(&d);

    /* Two start parameters, one from the file and one from --set. */
    pf_flow_override st[] = {{"since_time", "2026-11-22T00:00:00Z"}};
    load_bad(valid_flow, st, 1, &d);
    expect_diag(&d, "give only one of", flow_path, 10, 20);
    pf_diags_free(&d);

    /* A parent that is not a mapping. */
    pf_flow_override deep[] = {{"name.x", "1"}};
    load_bad(valid_flow, deep, 1, &d);
    expect_diag(&d, "cannot set 'name.x'", "--set", 1, 1);
    pf_diags_free(&d);
}

static void test_bad_set_name_points_at_command_line(void **state)
{
    (void)state;
    /* Regression (fixed): apply_override (src/flow/flow.c:406) creates the value node with the
     * flow file's name and position 0:0 and only then re-labels it "--set";
     * the key node pf_ymap_set creates copies the old position, so an unknown
     * name given with --set (a typo on the command line) is reported as
     * "flow.yaml: template tap-siem-all has no parameter 'since_secs'",
     * blaming the flow file. */
    pf_diags d = {0};
    pf_flow_override sets[] = {{"since_secs", "60"}, {"sink.colour", "red"}};
    load_bad(valid_flow, sets, 2, &d);
    expect_diag(&d, "no parameter 'since_secs'", "--set", 1, 1);
    expect_diag(&d, "unknown option 'colour'", "--set", 2, 1);
    pf_diags_free(&d);
}

static void write_secret_file(const char *path, const char *content, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_file_permissions(void **state)
{
    (void)state;
    char sf[160], text[2048];
    snprintf(sf, sizeof sf, "%s/secret.txt", tmpdir);
    snprintf(text, sizeof text,
             "name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret_file: %s\n" /* 6 */
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             sf);

    write_secret_file(sf, "file-secret-xyz\n", 0644);
    pf_diags d = {0};
    load_bad(text, NULL, 0, &d);
    const pf_error *e = expect_diag(&d, "accessible by group or others", flow_path, 6, 18);
    assert_non_null(strstr(e->msg, "644"));
    assert_null(strstr(e->msg, "file-secret-xyz"));
    pf_diags_free(&d);

    write_secret_file(sf, "file-secret-xyz\n", 0640);
    load_bad(text, NULL, 0, &d);
    expect_diag(&d, "accessible by group or others", flow_path, 6, 18);
    pf_diags_free(&d);

    write_secret_file(sf, "file-secret-xyz\r\n", 0600);
    pf_flow *f = load_ok(text, NULL, 0);
    assert_string_equal(f->secret, "file-secret-xyz"); /* line break stripped */
    pf_flow_free(f);

    /* Both secret and secret_file: refused. */
    snprintf(text, sizeof text,
             "name: siem-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  auth:\n"
             "    principal: p\n"
             "    secret: ${PFT_SECRET}\n"
             "    secret_file: %s\n" /* 7 */
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             sf);
    load_bad(text, NULL, 0, &d);
    expect_diag(&d, "not both", flow_path, 7, 18);
    pf_diags_free(&d);
}

static void test_every_problem_reported_in_one_pass(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: bad name!\n"           /* 1 */
             "colour: blue\n"              /* 2 */
             "source:\n"                   /* 3 */
             "  template: tap-siem-all\n"  /* 4 */
             "  auth:\n"                   /* 5 */
             "    principal: p\n"          /* 6 */
             "    secret: ${PFT_SECRET}\n" /* 7 */
             "  params:\n"                 /* 8 */
             "    since_seconds: 1\n"      /* 9 */
             "    nope: 2\n"               /* 10 */
             "sink:\n"                     /* 11 */
             "  type: ndjson\n"            /* 12 */
             "  path: out.ndjson\n"        /* 13 */
             "state:\n"                    /* 14 */
             "  file: s.json\n",           /* 15 */
             NULL, 0, &d);
    expect_diag(&d, "flow name 'bad name!'", flow_path, 1, 7);
    expect_diag(&d, "unknown key 'colour'", flow_path, 2, 1);
    expect_diag(&d, "'since_seconds'", flow_path, 9, 20);
    expect_diag(&d, "'nope'", flow_path, 10, 5);
    expect_diag(&d, "unknown key 'file'", flow_path, 15, 3);
    expect_diag(&d, "state has no path", flow_path, 15, 3);
    assert_int_equal(d.count, 6);
    pf_diags_free(&d);
}

#define SINK_STATE "sink:\n  type: ndjson\n  path: out.ndjson\nstate:\n  path: s.json\n"

static void test_constraints_are_checked_at_the_flow(void **state)
{
    (void)state;
    pf_flow *f = load_ok("name: fx\n"
                         "source:\n"
                         "  template: tap-forensics\n"
                         "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n"
                         "  params: {campaign_id: c-1}\n" SINK_STATE,
                         NULL, 0);
    assert_string_equal(pf_flow_param_str(f, "campaign_id"), "c-1");
    assert_null(pf_flow_param(f, "include_campaign_forensics"));
    pf_flow_free(f);

    pf_diags d = {0};
    load_bad("name: fx\n"
             "source:\n"
             "  template: tap-forensics\n"
             "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n"
             "  params:\n"                            /* 5 */
             "    include_campaign_forensics: true\n" /* 6 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "give exactly one of threat_id, campaign_id (template tap-forensics)",
                flow_path, 6, 5);
    expect_diag(&d, "parameter 'include_campaign_forensics' needs 'threat_id'", flow_path, 6, 33);
    pf_diags_free(&d);

    load_bad("name: fx\n"
             "source:\n"
             "  template: tap-forensics\n"
             "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n"
             "  params:\n"
             "    threat_id: t-1\n"
             "    campaign_id: c-1\n" /* 7 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "give only one of threat_id, campaign_id (threat_id is already set", flow_path,
                7, 18);
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);

    /* No params at all: reported at source. */
    load_bad("name: fx\n"
             "source:\n"
             "  template: tap-forensics\n" /* 3 */
             "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "give exactly one of", flow_path, 3, 3);
    pf_diags_free(&d);
}

static void test_manual_flow_completes_its_template(void **state)
{
    (void)state;
    pf_flow *f =
        load_ok("name: man\n"
                "source:\n"
                "  template: manual\n"
                "  url: https://api.example.com:8443/v2/items?kind={x}&y=1\n"
                "  method: POST\n"
                "  headers: {Content-Type: application/json, X-Who: \"${PFT_PRINCIPAL}\"}\n"
                "  body: '{\"q\": \"{not a placeholder}\"}'\n"
                "  auth:\n"
                "    kind: basic\n"
                "    principal: ${PFT_PRINCIPAL}\n"
                "    secret: ${PFT_SECRET}\n"
                "  records: $.data[*]\n"
                "  key: $.id\n"
                "  response: {no_data_status: 404}\n"
                "  pagination: {kind: offset, size: 20, max_pages: 9}\n" SINK_STATE,
                NULL, 0);
    const pf_template *t = f->tmpl;
    assert_string_equal(f->base_url, "https://api.example.com:8443");
    assert_string_equal(t->path, "/v2/items?kind={{x}}&y=1");
    assert_string_equal(t->method, "POST");
    assert_string_equal(t->headers[1].name, "X-Who");
    assert_string_equal(t->headers[1].value, "svc-principal"); /* ${VAR} expanded */
    assert_string_equal(t->body, "{{\"q\": \"{{not a placeholder}}\"}}");
    assert_int_equal(t->auth, PF_AUTH_BASIC);
    assert_string_equal(f->principal, "svc-principal");
    assert_int_equal(t->nstreams, 1);
    assert_string_equal(t->streams[0].path_text, "$.data[*]");
    assert_string_equal(t->streams[0].key_text, "$.id");
    assert_int_equal(t->pages.kind, PF_PAGING_OFFSET);
    assert_int_equal(f->max_pages, 9);
    assert_int_equal(t->no_data_status[0], 404);
    pf_flow_free(f);

    /* Defaults: GET, records $, no auth, no pagination; the url may be bare. */
    f = load_ok("name: man\nsource:\n  template: manual\n  url: http://h.example\n" SINK_STATE,
                NULL, 0);
    assert_string_equal(f->tmpl->method, "GET");
    assert_string_equal(f->tmpl->path, "/");
    assert_string_equal(f->tmpl->streams[0].path_text, "$");
    assert_int_equal(f->tmpl->auth, PF_AUTH_NONE);
    assert_int_equal(f->tmpl->paging, PF_PAGING_NONE);
    assert_int_equal(f->max_pages, PF_DEFAULT_MAX_PAGES);
    pf_flow_free(f);
}

static void test_manual_flow_problems(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: man\n"
             "source:\n"
             "  template: manual\n"            /* 3 */
             "  base_url: https://x.example\n" /* 4 */
             "  auth:\n"
             "    principal: me\n"               /* 6 */
             "  key: \"$[\"\n"                   /* 7 */
             "  streams: {records: {path: $}}\n" /* 8 */
             "  pagination:\n"
             "    kind: page\n" /* 10 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "a manual flow needs source.url", flow_path, 3, 3);
    expect_diag(&d, "a manual flow gives the whole URL in source.url, not base_url", flow_path, 4,
                13);
    expect_diag(&d, "a manual flow's auth needs a kind", flow_path, 6, 5);
    expect_diag(&d, "invalid JSONPath '$['", flow_path, 7, 8);
    expect_diag(&d, "not source.streams", flow_path, 8, 12);
    expect_diag(&d, "page pagination needs a size", flow_path, 10, 5);
    pf_diags_free(&d);

    load_bad("name: man\n"
             "source:\n"
             "  template: manual\n"
             "  url: https://user:pw@x.example/a\n" /* 4 */
             "  auth:\n"
             "    kind: headers\n"
             "    headers: {Authorization: \"Bearer {secret}\"}\n" /* 7 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "source.url: URL must not contain credentials", flow_path, 4, 8);
    expect_diag(&d, "sends header Authorization from {secret}: give source.auth.secret", flow_path,
                6, 5);
    pf_diags_free(&d);
}

static void test_manual_keys_on_a_template_flow(void **state)
{
    (void)state;
    pf_diags d = {0};
    load_bad("name: f\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  file: x.json\n"
             "  url: https://x.example/\n" /* 5 */
             "  records: $.a\n"            /* 6 */
             "  auth:\n"
             "    kind: basic\n" /* 8 */
             "  max_pages: 0\n"  /* 9 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "source.url is only used with template: manual", flow_path, 5, 3);
    expect_diag(&d, "source.records is only used with template: manual", flow_path, 6, 3);
    expect_diag(&d, "unknown key 'kind' in source.auth", flow_path, 8, 5);
    expect_diag(&d, "source.max_pages must be between 1 and 1000000, not 0", flow_path, 9, 14);
    pf_diags_free(&d);
}

static void test_stream_overrides(void **state)
{
    (void)state;
    pf_flow *f = load_ok("name: t\n"
                         "source:\n"
                         "  template: trap-incidents\n"
                         "  base_url: https://ptr.example\n"
                         "  auth: {secret: \"${PFT_SECRET}\"}\n"
                         "  streams:\n"
                         "    incidents: {path: \"$.result[*]\", key: null}\n"
                         "  max_pages: 12\n" SINK_STATE,
                         NULL, 0);
    assert_string_equal(f->tmpl->streams[0].path_text, "$.result[*]");
    assert_null(f->tmpl->streams[0].key);
    assert_int_equal(f->max_pages, 12);
    pf_flow_free(f);
    pf_diags d = {0};
    load_bad("name: t\n"
             "source:\n"
             "  template: trap-incidents\n"
             "  base_url: https://ptr.example\n"
             "  auth: {secret: \"${PFT_SECRET}\"}\n"
             "  streams:\n"
             "    incident: {path: \"$[*]\"}\n"          /* 7 */
             "    incidents: {path: \"$[\", sort: id}\n" /* 8 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "template trap-incidents has no stream 'incident' (streams: incidents)",
                flow_path, 7, 5);
    expect_diag(&d, "invalid JSONPath '$['", flow_path, 8, 23);
    expect_diag(&d, "unknown key 'sort' in a stream override", flow_path, 8, 29);
    pf_diags_free(&d);
}

static void test_when_keeps_the_chosen_stream(void **state)
{
    (void)state;
    pf_flow *f = load_ok("name: e\n"
                         "source:\n"
                         "  template: eti-domain\n"
                         "  auth: {secret: \"${PFT_SECRET}\"}\n"
                         "  params: {domain: bad.example, resource: whois}\n" SINK_STATE,
                         NULL, 0);
    assert_int_equal(f->tmpl->nstreams, 1);
    assert_string_equal(f->tmpl->streams[0].name, "whois");
    assert_string_equal(f->tmpl->streams[0].path_text, "$.response");
    pf_flow_free(f);
    /* The default resource. */
    f = load_ok("name: e\n"
                "source:\n"
                "  template: eti-domain\n"
                "  auth: {secret: \"${PFT_SECRET}\"}\n"
                "  params: {domain: bad.example}\n" SINK_STATE,
                NULL, 0);
    assert_int_equal(f->tmpl->nstreams, 1);
    assert_string_equal(f->tmpl->streams[0].name, "reputation");
    pf_flow_free(f);
}

static void test_response_format_base_url_and_url_path(void **state)
{
    (void)state;
    pf_flow *f = load_ok("name: s\n"
                         "source:\n"
                         "  template: tap-siem-issues\n"
                         "  file: x.txt\n"
                         "  params: {format: syslog}\n" SINK_STATE,
                         NULL, 0);
    assert_int_equal(f->format, PF_RESPONSE_SYSLOG);
    pf_flow_free(f);
    f = load_ok("name: s\nsource:\n  template: tap-siem-issues\n  file: x.json\n" SINK_STATE, NULL,
                0);
    assert_int_equal(f->format, PF_RESPONSE_JSON);
    assert_int_equal(f->max_pages, 1000);
    pf_flow_free(f);

    f = load_ok("name: e\n"
                "source:\n"
                "  template: essentials-users\n"
                "  auth: {principal: a@corp.example, secret: \"${PFT_SECRET}\"}\n"
                "  params: {org: corp.example, stack: eu1}\n" SINK_STATE,
                NULL, 0);
    assert_string_equal(f->base_url, "https://eu1.proofpointessentials.com");
    pf_flow_free(f);

    pf_diags d = {0};
    load_bad("name: e\n"
             "source:\n"
             "  template: essentials-users\n"
             "  auth: {principal: a@corp.example, secret: \"${PFT_SECRET}\"}\n"
             "  params: {org: corp.example, stack: \"eu1/x?\"}\n" /* 5 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "parameter 'stack' is part of the server's host name", flow_path, 5, 38);
    pf_diags_free(&d);

    load_bad("name: c\n"
             "source:\n"
             "  template: casb-alerts\n" /* 3 */
             "  auth: {secret: \"${PFT_SECRET}\"}\n"
             "  params: {alerts_path: /api/../admin}\n" /* 5 */
             SINK_STATE,
             NULL, 0, &d);
    expect_diag(&d, "parameter 'alerts_path' must be a URL path without . or .. segments",
                flow_path, 5, 25);
    expect_diag(&d, "template casb-alerts has no fixed server: set source.base_url", flow_path, 3,
                3);
    pf_diags_free(&d);
}

/* ---- credentials never travel in clear ---------------------------------- */

#define CLEAR_MSG "refused because they would travel in clear; use https, or set " \
                  "source.allow_insecure_http: true"

static void test_credentials_over_http_are_refused(void **state)
{
    (void)state;
    pf_diags d = {0};
    /* Basic auth to an http:// base URL: refused at the URL. */
    load_bad("name: f\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "  base_url: http://tap.example:8080/proxy\n" /* 4 */
             "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
             NULL, 0, &d);
    const pf_error *e = expect_diag(&d, CLEAR_MSG, flow_path, 4, 13);
    assert_non_null(strstr(e->msg, "the flow sends credentials (auth: basic) to "
                                   "http://tap.example:8080/proxy/...: "));
    assert_null(strstr(e->msg, "s3cret")); /* never the credential itself */
    assert_int_equal(e->code, PF_ECONFIG);
    pf_diags_free(&d);

    /* Loopback is no exception: a local mock says so explicitly. */
    static const char *const loops[] = {"http://127.0.0.1:9", "http://localhost:9",
                                        "http://[::1]:9", "http://127.8.9.10"};
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "name: f\nsource:\n  template: tap-siem-all\n  base_url: %s\n"
                 "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
                 loops[i]);
        load_bad(text, NULL, 0, &d);
        expect_diag(&d, CLEAR_MSG, flow_path, 4, 13);
        pf_diags_free(&d);
    }

    /* A manual flow's url with header auth: at the url. */
    load_bad("name: m\n"
             "source:\n"
             "  template: manual\n"
             "  url: http://api.example/v1/items\n" /* 4 */
             "  auth:\n"
             "    kind: headers\n"
             "    headers: {X-Api-Key: \"{secret}\"}\n"
             "    secret: ${PFT_SECRET}\n" SINK_STATE,
             NULL, 0, &d);
    e = expect_diag(&d, CLEAR_MSG, flow_path, 4, 8);
    assert_non_null(strstr(e->msg, "(auth: headers (X-Api-Key))"));
    pf_diags_free(&d);

    /* A credential-like header without auth (a token pasted into headers). */
    static const char *const names[] = {"Authorization", "Cookie", "X-Api-Key", "X-Auth-Token",
                                        "Proxy-Authorization", "x-session-id"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[512], want[96];
        snprintf(text, sizeof text,
                 "name: m\nsource:\n  template: manual\n  url: http://api.example/v1\n"
                 "  headers: {%s: \"${PFT_SECRET}\"}\n" SINK_STATE,
                 names[i]);
        load_bad(text, NULL, 0, &d);
        snprintf(want, sizeof want, "(header %s)", names[i]);
        e = expect_diag(&d, CLEAR_MSG, flow_path, 4, 8);
        assert_non_null(strstr(e->msg, want));
        pf_diags_free(&d);
    }

    /* The base URL from --set: at the command line. */
    pf_flow_override set[] = {{"source.base_url", "http://tap.example"}};
    load_bad("name: f\nsource:\n  template: tap-siem-all\n"
             "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
             set, 1, &d);
    expect_diag(&d, CLEAR_MSG, "--set", 1, 17);
    pf_diags_free(&d);

    /* An http:// base URL written in the template itself: at the flow's auth. */
    char tpath[160];
    snprintf(tpath, sizeof tpath, "%s/plain-http.yaml", tmpdir);
    write_file(tpath, "name: plain-http\n"
                      "description: an endpoint served over plain http\n"
                      "request: {method: GET, base_url: \"http://api.example\", path: /x}\n"
                      "auth: {kind: basic}\n"
                      "streams: {items: {path: \"$.items[*]\"}}\n"
                      "pagination: {kind: none}\n");
    char text[512];
    snprintf(text, sizeof text,
             "name: f\nsource:\n  template: %s\n"
             "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" /* 4 */
             SINK_STATE,
             tpath);
    load_bad(text, NULL, 0, &d);
    expect_diag(&d, CLEAR_MSG, flow_path, 4, 9);
    pf_diags_free(&d);

    /* A manual flow with a key in a credential-like query parameter, in its
     * query map or written into its URL. */
    static const char *const manual[] = {
        "name: f\nsource:\n  template: manual\n  url: http://api.example/x\n"
        "  query: {limit: \"100\", api_key: \"${PFT_SECRET}\"}\n"
        "  records: $.items[*]\n" SINK_STATE,
        "name: f\nsource:\n  template: manual\n"
        "  url: http://api.example/x?limit=5&access_token=${PFT_SECRET}\n"
        "  records: $.items[*]\n" SINK_STATE,
    };
    for (size_t i = 0; i < sizeof manual / sizeof manual[0]; i++) {
        load_bad(manual[i], NULL, 0, &d);
        expect_diag(&d, "refused because they would travel in clear", flow_path, 4, 8);
        assert_non_null(strstr(d.items[0].msg, "query parameter"));
        pf_diags_free(&d);
    }
    /* Plain parameter names only: nothing to refuse. */
    pf_flow *f = load_ok("name: f\nsource:\n  template: manual\n"
                         "  url: http://api.example/x?limit=5\n"
                         "  query: {filter: \"${PFT_SECRET}\"}\n"
                         "  records: $.items[*]\n" SINK_STATE,
                         NULL, 0);
    pf_flow_free(f);
}

/* Reads what pf_flow_warn_insecure(F) logs. */
static char *warning_of(const pf_flow *f)
{
    char path[160];
    snprintf(path, sizeof path, "%s/stderr.txt", tmpdir);
    fflush(stderr);
    int saved = dup(2);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    dup2(fileno(out), 2);
    pf_flow_warn_insecure(f);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(out);
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    static char text[2048];
    size_t n = fread(text, 1, sizeof text - 1, in);
    text[n] = '\0';
    fclose(in);
    return text;
}

static void test_credentials_over_http_when_allowed_or_not_sent(void **state)
{
    (void)state;
    /* allow_insecure_http: loads, and names what goes in clear for the warning. */
    pf_flow *f = load_ok("name: f\n"
                         "source:\n"
                         "  template: tap-siem-all\n"
                         "  base_url: http://127.0.0.1:9\n"
                         "  allow_insecure_http: true\n"
                         "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
                         NULL, 0);
    assert_int_equal(f->allow_insecure_http, 1);
    assert_string_equal(f->clear_credentials, "auth: basic");
    const char *w = warning_of(f);
    assert_non_null(strstr(w, "warning"));
    assert_non_null(strstr(w, "credentials travel in clear (insecure)"));
    assert_non_null(strstr(w, "auth: basic"));
    assert_non_null(strstr(w, "http://127.0.0.1:9"));
    assert_null(strstr(w, "s3cret"));
    pf_flow_free(f);

    /* ... also from --set; and false is false. */
    pf_flow_override yes[] = {{"source.allow_insecure_http", "true"}};
    static const char base[] = "name: f\nsource:\n  template: tap-siem-all\n"
                               "  base_url: http://127.0.0.1:9\n"
                               "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE;
    f = load_ok(base, yes, 1);
    assert_non_null(f->clear_credentials);
    pf_flow_free(f);
    pf_flow_override no[] = {{"source.allow_insecure_http", "false"}};
    pf_diags d = {0};
    load_bad(base, no, 1, &d);
    expect_diag(&d, CLEAR_MSG, flow_path, 4, 13);
    pf_diags_free(&d);
    pf_flow_override junk[] = {{"source.allow_insecure_http", "maybe"}};
    load_bad(base, junk, 1, &d);
    expect_diag(&d, "source.allow_insecure_http must be true or false", "--set", 1, 28);
    pf_diags_free(&d);

    /* https: no warning to give. */
    f = load_ok("name: f\nsource:\n  template: tap-siem-all\n  base_url: https://127.0.0.1:9\n"
                "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
                NULL, 0);
    assert_null(f->clear_credentials);
    assert_string_equal(warning_of(f), "");
    pf_flow_free(f);

    /* No credentials over http: nothing to refuse (a public endpoint, a
     * harmless header). */
    f = load_ok("name: m\nsource:\n  template: manual\n  url: http://api.example/v1/items\n"
                "  headers: {Accept: application/json, X-Trace: abc}\n"
                "  auth: {kind: none}\n" SINK_STATE,
                NULL, 0);
    assert_null(f->clear_credentials);
    pf_flow_free(f);

    /* Responses read from a file: nothing is sent at all. */
    f = load_ok("name: f\nsource:\n  template: tap-siem-all\n  base_url: http://127.0.0.1:9\n"
                "  file: saved.json\n"
                "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n" SINK_STATE,
                NULL, 0);
    assert_null(f->clear_credentials);
    pf_flow_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_flow_loads),
        cmocka_unit_test(test_template_base_url_when_not_overridden),
        cmocka_unit_test(test_missing_variable_named_at_its_position),
        cmocka_unit_test(test_literal_secret_is_refused),
        cmocka_unit_test(test_unknown_param_name),
        cmocka_unit_test(test_wrong_param_type_and_bounds),
        cmocka_unit_test(test_enum_and_list_values),
        cmocka_unit_test(test_only_one_start_parameter),
        cmocka_unit_test(test_sink_problems),
        cmocka_unit_test(test_missing_state_and_template),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_bad_set_value_points_at_command_line),
        cmocka_unit_test(test_bad_set_name_points_at_command_line),
        cmocka_unit_test(test_secret_file_permissions),
        cmocka_unit_test(test_every_problem_reported_in_one_pass),
        cmocka_unit_test(test_constraints_are_checked_at_the_flow),
        cmocka_unit_test(test_manual_flow_completes_its_template),
        cmocka_unit_test(test_manual_flow_problems),
        cmocka_unit_test(test_manual_keys_on_a_template_flow),
        cmocka_unit_test(test_stream_overrides),
        cmocka_unit_test(test_when_keeps_the_chosen_stream),
        cmocka_unit_test(test_response_format_base_url_and_url_path),
        cmocka_unit_test(test_credentials_over_http_are_refused),
        cmocka_unit_test(test_credentials_over_http_when_allowed_or_not_sent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
