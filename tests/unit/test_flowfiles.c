/* test_flowfiles.c: command-line paths to flow files, and one output file
 * per flow (src/flow/flowfiles.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/run.h"
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

static char odir[64];

/* Writes flow NAME.yaml (in the current directory) over TEMPLATE with
 * sink.path SINK, and loads it. */
static pf_flow *flow_at(const char *name, const char *tmpl, const char *sink)
{
    char path[128], text[1024];
    snprintf(path, sizeof path, "%s.yaml", name);
    const char *src = strcmp(tmpl, "manual") == 0
                          ? "  url: https://api.example/v1/items\n"
                      : strcmp(tmpl, "tap-threat-summary") == 0
                          ? "  params: {threat_id: 0123456789abcdef0123456789abcdef0123456789abcdef"
                            "0123456789abcdef}\n"
                            "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n"
                          : "  auth: {principal: p, secret: \"${PFT_SECRET}\"}\n";
    snprintf(text, sizeof text,
             "name: %s\n"
             "sink:\n  type: ndjson\n  path: \"%s\"\n" /* sink.path at 4:9 */
             "state: {path: state/%s.json}\n"
             "source:\n  template: %s\n%s",
             name, sink, name, tmpl, src);
    write_file(path, text);
    pf_flow *f = NULL;
    pf_diags d = {0};
    if (pf_flow_load(path, NULL, 0, &f, &d) != PF_OK)
        fail_msg("%s does not load: %s", path, d.count ? d.items[0].msg : "?");
    pf_diags_free(&d);
    return f;
}

/* The number of collisions among A and B (either may be NULL); the first
 * diagnostic's message in MSG when there is one. */
static size_t collisions(pf_flow *a, pf_flow *b, char *msg, size_t n)
{
    pf_flow *v[] = {a, b};
    int inv[2] = {0, 0};
    pf_diags d = {0};
    size_t k = pf_flow_outputs_check(v, 2, inv, &d);
    assert_int_equal(d.count, k);
    msg[0] = '\0';
    if (d.count) {
        snprintf(msg, n, "%s", d.items[0].msg);
        assert_int_equal(d.items[0].code, PF_ECONFIG);
        assert_string_equal(d.items[0].file, b->file); /* at the later flow's sink.path */
        assert_int_equal(d.items[0].line, 4);
        assert_int_equal(d.items[0].col, 9);
        assert_true(inv[0] && inv[1]);
    } else {
        assert_false(inv[0] || inv[1]);
    }
    pf_diags_free(&d);
    pf_flow_free(a);
    pf_flow_free(b);
    return k;
}

static void test_one_output_file_one_flow(void **state)
{
    (void)state;
    char cwd[PATH_MAX], msg[1024], want[PATH_MAX + 64];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(odir, sizeof odir, "/tmp/pft-outputs-XXXXXX");
    assert_non_null(mkdtemp(odir));
    assert_int_equal(chdir(odir), 0);
    char real[PATH_MAX];
    assert_non_null(realpath(odir, real));
    setenv("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_DIR "/templates", 1);
    setenv("PFT_SECRET", "s3cret-value-123", 1);
    /* The engine's gap stream is the one counted here. */
    assert_string_equal(PF_FLOW_GAP_STREAM, PF_RUN_GAP_STREAM);

    /* The same file, written as a relative and as an absolute path. */
    char abs[PATH_MAX + 32];
    snprintf(abs, sizeof abs, "%s/out/all.ndjson", odir);
    assert_int_equal(collisions(flow_at("a", "manual", "out/all.ndjson"),
                                flow_at("b", "tap-threat-summary", abs), msg, sizeof msg),
                     1);
    snprintf(want, sizeof want, "output file %s/out/all.ndjson is written by two flows", real);
    if (!strstr(msg, want)) fail_msg("message: %s", msg);
    assert_non_null(strstr(msg, "'a' (a.yaml) and 'b' (b.yaml)"));

    /* Normalised: "x/../out" is "out", "./out//" is "out". */
    assert_int_equal(collisions(flow_at("a", "manual", "x/../out/all.ndjson"),
                                flow_at("b", "manual", "./out//all.ndjson"), msg, sizeof msg),
                     1);

    /* Different files: fine. */
    assert_int_equal(collisions(flow_at("a", "manual", "out/a.ndjson"),
                                flow_at("b", "manual", "out/b.ndjson"), msg, sizeof msg),
                     0);

    /* {stream}: the same pattern collides when the streams overlap ... */
    assert_int_equal(collisions(flow_at("a", "tap-siem-all", "out/{stream}.ndjson"),
                                flow_at("b", "tap-siem-clicks-blocked", "out/{stream}.ndjson"),
                                msg, sizeof msg),
                     1); /* clicks_blocked and gaps: one report for the pair */
    /* ... and so do two windowed flows with retention, through the gap stream. */
    assert_int_equal(collisions(flow_at("a", "tap-siem-messages-blocked", "siem/{stream}.ndjson"),
                                flow_at("b", "tap-siem-clicks-blocked", "siem/{stream}.ndjson"),
                                msg, sizeof msg),
                     1);
    snprintf(want, sizeof want, "output file %s/siem/gaps.ndjson", real);
    if (!strstr(msg, want)) fail_msg("message: %s", msg);
    /* ... not when they do not. */
    assert_int_equal(collisions(flow_at("a", "manual", "out/{stream}.ndjson"),
                                flow_at("b", "tap-threat-summary", "out/{stream}.ndjson"), msg,
                                sizeof msg),
                     0);
    /* A pattern collides with the plain path it expands to. */
    assert_int_equal(collisions(flow_at("a", "manual", "out/{stream}.ndjson"),
                                flow_at("b", "tap-threat-summary", "out/records.ndjson"), msg,
                                sizeof msg),
                     1);

    /* A symbolic link to the directory, and a hard link to the file. */
    assert_int_equal(mkdir("real", 0700), 0);
    assert_int_equal(symlink("real", "link"), 0);
    assert_int_equal(collisions(flow_at("a", "manual", "real/x.ndjson"),
                                flow_at("b", "manual", "link/x.ndjson"), msg, sizeof msg),
                     1);
    write_file("real/h1.ndjson", "");
    assert_int_equal(link("real/h1.ndjson", "real/h2.ndjson"), 0);
    assert_int_equal(collisions(flow_at("a", "manual", "real/h1.ndjson"),
                                flow_at("b", "manual", "real/h2.ndjson"), msg, sizeof msg),
                     1);

    /* The same flow file twice is one flow; NULL entries are skipped. */
    pf_flow *a = flow_at("a", "manual", "out/all.ndjson");
    pf_flow *a2 = flow_at("a", "manual", "out/all.ndjson");
    pf_flow *v[] = {a, NULL, a2};
    pf_diags d = {0};
    assert_int_equal(pf_flow_outputs_check(v, 3, NULL, &d), 0);
    assert_int_equal(d.count, 0);
    pf_flow_free(a);
    pf_flow_free(a2);

    /* Three flows on one file: each later one is reported once. */
    pf_flow *w[] = {flow_at("a", "manual", "one.ndjson"), flow_at("b", "manual", "one.ndjson"),
                    flow_at("c", "tap-threat-summary", "one.ndjson")};
    assert_int_equal(pf_flow_outputs_check(w, 3, NULL, &d), 2);
    assert_int_equal(d.count, 2);
    pf_diags_free(&d);
    for (size_t i = 0; i < 3; i++)
        pf_flow_free(w[i]);

    assert_int_equal(chdir(cwd), 0);
    rm_rf(odir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directories_files_and_missing_paths),
        cmocka_unit_test(test_one_output_file_one_flow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
