/* test_ndjson.c: the built-in NDJSON sink driven through the registry, as
 * the engine drives it: open (with a resume token), write, commit, close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flow/yaml.h"
#include "sink/registry.h"
#include "util/paths.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-ndjson-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return 0;
}

/* A configuration for the ndjson sink with path <tmpdir>/<SUB>. */
static void make_config(pf_sink_config *cfg, const char *sub)
{
    pf_error e;
    pf_error_clear(&e);
    memset(cfg, 0, sizeof *cfg);
    cfg->desc = pf_sink_find("ndjson", &e);
    if (!cfg->desc) fail_msg("ndjson sink not found: %s", e.msg);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, sub);
    assert_int_equal(pf_sink_config_set(cfg, "path", path), PF_OK);
}

static pf_sink *open_ok(const pf_sink_config *cfg, const char *const *streams, size_t n,
                        const char *resume)
{
    pf_sink *s = NULL;
    pf_error e;
    pf_error_clear(&e);
    if (pf_sink_open(cfg, streams, NULL, n, resume, &s, &e) != PF_OK) fail_msg("open failed: %s", e.msg);
    assert_non_null(s);
    return s;
}

static pf_sink_record rec(const char *stream, const char *json)
{
    pf_sink_record r = {stream, NULL, 0, json, strlen(json)};
    return r;
}

static void write_ok(pf_sink *s, const pf_sink_record *recs, size_t n)
{
    pf_error e;
    pf_error_clear(&e);
    if (pf_sink_write(s, recs, n, &e) != PF_SINK_OK) fail_msg("write failed: %s", e.msg);
}

/* Commits and returns a copy of the token (caller frees). */
static char *commit_ok(pf_sink *s)
{
    const char *tok = NULL;
    pf_error e;
    pf_error_clear(&e);
    if (pf_sink_commit(s, NULL, &tok, &e) != PF_SINK_OK) fail_msg("commit failed: %s", e.msg);
    assert_non_null(tok);
    char *c = strdup(tok);
    assert_non_null(c);
    return c;
}

static char *slurp(const char *path, size_t *len)
{
    char *text = NULL;
    pf_error e;
    if (pf_read_file(path, 64u << 20, &text, len, &e) != PF_OK)
        fail_msg("cannot read %s: %s", path, e.msg);
    return text;
}

static long long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) fail_msg("cannot stat %s", path);
    return (long long)st.st_size;
}

/* The length the token records for PATH, or -1. */
static long long token_len(const char *token, const char *path)
{
    json_object *root = json_tokener_parse(token), *files, *v;
    assert_non_null(root);
    long long n = -1;
    if (json_object_object_get_ex(root, "files", &files) &&
        json_object_object_get_ex(files, path, &v))
        n = (long long)json_object_get_int64(v);
    json_object_put(root);
    return n;
}

static int token_nfiles(const char *token)
{
    json_object *root = json_tokener_parse(token), *files;
    assert_non_null(root);
    int n = -1;
    if (json_object_object_get_ex(root, "files", &files)) n = json_object_object_length(files);
    json_object_put(root);
    return n;
}

static void test_records_written_one_per_line_exactly(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "exact/{stream}.ndjson");
    const char *streams[] = {"events"};
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    const char *jsons[] = {"{\"b\":1,\"a\":2}", "{\"s\":\"caf\xc3\xa9 \\\"q\\\" \\\\n\"}", "[]",
                           "{ \"spaces\" : true }"};
    pf_sink_record r[4];
    for (int i = 0; i < 4; i++)
        r[i] = rec("events", jsons[i]);
    write_ok(s, r, 2);
    write_ok(s, r + 2, 2);
    write_ok(s, NULL, 0); /* an empty batch is fine */
    free(commit_ok(s));
    pf_sink_close(s);

    char path[256];
    snprintf(path, sizeof path, "%s/exact/events.ndjson", tmpdir);
    size_t len;
    char *text = slurp(path, &len);
    char want[512] = "";
    for (int i = 0; i < 4; i++) {
        strcat(want, jsons[i]);
        strcat(want, "\n");
    }
    assert_int_equal(len, strlen(want));
    assert_memory_equal(text, want, len);
    free(text);
    pf_sink_config_free(&cfg);
}

static void test_stream_routing_to_separate_files(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "route/{stream}.ndjson");
    const char *streams[] = {"messages", "clicks", "unused"};
    pf_sink *s = open_ok(&cfg, streams, 3, NULL);
    pf_sink_record r[] = {rec("messages", "{\"m\":1}"), rec("clicks", "{\"c\":1}"),
                          rec("messages", "{\"m\":2}"), rec("clicks", "{\"c\":2}"),
                          rec("messages", "{\"m\":3}")};
    write_ok(s, r, 5);
    char *tok = commit_ok(s);
    pf_sink_close(s);

    char pm[256], pc[256], pu[256];
    snprintf(pm, sizeof pm, "%s/route/messages.ndjson", tmpdir);
    snprintf(pc, sizeof pc, "%s/route/clicks.ndjson", tmpdir);
    snprintf(pu, sizeof pu, "%s/route/unused.ndjson", tmpdir);
    size_t len;
    char *m = slurp(pm, &len);
    assert_string_equal(m, "{\"m\":1}\n{\"m\":2}\n{\"m\":3}\n");
    free(m);
    char *c = slurp(pc, &len);
    assert_string_equal(c, "{\"c\":1}\n{\"c\":2}\n");
    free(c);
    assert_int_equal(file_size(pu), 0); /* prepared at open, nothing written */
    assert_int_equal(token_nfiles(tok), 3);
    free(tok);
    pf_sink_config_free(&cfg);
}

static void test_streams_sharing_one_file(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "shared/all.ndjson");
    const char *streams[] = {"a", "b"};
    pf_sink *s = open_ok(&cfg, streams, 2, NULL);
    pf_sink_record r[] = {rec("a", "1"), rec("b", "2"), rec("a", "3")};
    write_ok(s, r, 3);
    char *tok = commit_ok(s);
    pf_sink_close(s);
    char p[256];
    snprintf(p, sizeof p, "%s/shared/all.ndjson", tmpdir);
    size_t len;
    char *text = slurp(p, &len);
    assert_string_equal(text, "1\n2\n3\n");
    free(text);
    assert_int_equal(token_nfiles(tok), 1);
    assert_int_equal(token_len(tok, p), 6);
    free(tok);
    pf_sink_config_free(&cfg);
}

static void test_parent_dirs_created_and_files_private(void **state)
{
    (void)state;
    mode_t old = umask(022);
    pf_sink_config cfg;
    make_config(&cfg, "deep/a/b/c/{stream}.ndjson");
    const char *streams[] = {"s1"};
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_record r = rec("s1", "{}");
    write_ok(s, &r, 1);
    free(commit_ok(s));
    pf_sink_close(s);
    umask(old);

    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/deep/a/b/c", tmpdir);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700); /* created private */
    snprintf(p, sizeof p, "%s/deep/a/b/c/s1.ndjson", tmpdir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    pf_sink_config_free(&cfg);
}

static void test_commit_token_records_file_lengths(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "tok/{stream}.ndjson");
    const char *streams[] = {"x", "y"};
    pf_sink *s = open_ok(&cfg, streams, 2, NULL);
    char px[256], py[256];
    snprintf(px, sizeof px, "%s/tok/x.ndjson", tmpdir);
    snprintf(py, sizeof py, "%s/tok/y.ndjson", tmpdir);

    char *t0 = commit_ok(s); /* the starting point, before anything is written */
    assert_int_equal(token_len(t0, px), 0);
    assert_int_equal(token_len(t0, py), 0);

    pf_sink_record r[] = {rec("x", "{\"k\":\"v\"}"), rec("y", "[1,2,3]"), rec("x", "42")};
    write_ok(s, r, 3);
    char *t1 = commit_ok(s);
    assert_int_equal(token_len(t1, px), 13); /* {"k":"v"}\n42\n */
    assert_int_equal(token_len(t1, py), 8);
    assert_int_equal(token_len(t1, px), file_size(px));
    assert_int_equal(token_len(t1, py), file_size(py));

    /* Nothing new: same lengths. */
    char *t2 = commit_ok(s);
    assert_int_equal(token_len(t2, px), 13);
    assert_int_equal(token_len(t2, py), 8);
    pf_sink_close(s);
    free(t0);
    free(t1);
    free(t2);
    pf_sink_config_free(&cfg);
}

static void test_reopen_with_token_discards_uncommitted(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "crash/{stream}.ndjson");
    const char *streams[] = {"ev"};
    char p[256];
    snprintf(p, sizeof p, "%s/crash/ev.ndjson", tmpdir);

    /* Run 1: two records committed. */
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_record r[] = {rec("ev", "{\"n\":1}"), rec("ev", "{\"n\":2}")};
    write_ok(s, r, 2);
    char *tok = commit_ok(s);
    const char *committed = "{\"n\":1}\n{\"n\":2}\n";
    long long clen = (long long)strlen(committed);
    assert_int_equal(token_len(tok, p), clen);

    /* Then more than the sink buffers (so it reaches the file), no commit,
     * and the run ends (crash, kill, failure). */
    static char big[1024];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"pad\":\"", 8);
    memcpy(big + sizeof big - 3, "\"}", 3);
    pf_sink_record b = rec("ev", big);
    for (int i = 0; i < 1100; i++)
        write_ok(s, &b, 1);
    pf_sink_close(s);
    assert_true(file_size(p) > clen);

    /* Run 2 resumes from the token: back to exactly the committed content. */
    s = open_ok(&cfg, streams, 1, tok);
    assert_int_equal(file_size(p), clen);
    pf_sink_record r3 = rec("ev", "{\"n\":3}");
    write_ok(s, &r3, 1);
    char *tok2 = commit_ok(s);
    pf_sink_close(s);
    size_t len;
    char *text = slurp(p, &len);
    assert_string_equal(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    free(text);
    assert_int_equal(token_len(tok2, p), clen + 8);

    /* A torn line from a crash mid-write is cut away too. */
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"torn\":", 8), 8);
    close(fd);
    s = open_ok(&cfg, streams, 1, tok2);
    pf_sink_close(s);
    assert_int_equal(file_size(p), clen + 8);

    /* Without a token nothing is truncated (existing data is kept, appended to). */
    fd = open(p, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "{\"z\":0}\n", 8), 8);
    close(fd);
    s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_close(s);
    assert_int_equal(file_size(p), clen + 16);

    free(tok);
    free(tok2);
    pf_sink_config_free(&cfg);
}

static void test_uncommitted_small_batch_not_delivered(void **state)
{
    (void)state;
    /* Write + close without commit: after resuming, the records are not there. */
    pf_sink_config cfg;
    make_config(&cfg, "nocommit/{stream}.ndjson");
    const char *streams[] = {"ev"};
    char p[256];
    snprintf(p, sizeof p, "%s/nocommit/ev.ndjson", tmpdir);
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    char *tok = commit_ok(s);
    pf_sink_record r = rec("ev", "{\"lost\":true}");
    write_ok(s, &r, 1);
    pf_sink_close(s);
    s = open_ok(&cfg, streams, 1, tok);
    pf_sink_close(s);
    assert_int_equal(file_size(p), 0);
    free(tok);
    pf_sink_config_free(&cfg);
}

static void test_record_with_line_break_is_an_error(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "nl/{stream}.ndjson");
    const char *streams[] = {"ev"};
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_record r = rec("ev", "{\"a\":\n1}");
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_sink_write(s, &r, 1, &e), PF_SINK_ERROR);
    assert_int_equal(e.code, PF_ESINK);
    assert_int_equal(e.retriable, 0);
    assert_non_null(strstr(e.msg, "line break"));
    assert_non_null(strstr(e.msg, "ndjson"));
    pf_sink_close(s);
    pf_sink_config_free(&cfg);
}

static void test_unknown_stream_is_an_error(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "unk/{stream}.ndjson");
    const char *streams[] = {"ev"};
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_record r = rec("other_stream", "{}");
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_sink_write(s, &r, 1, &e), PF_SINK_ERROR);
    assert_int_equal(e.code, PF_ESINK);
    assert_non_null(strstr(e.msg, "other_stream"));
    pf_sink_close(s);
    pf_sink_config_free(&cfg);
}

static void test_open_refuses_bad_input(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "bad/{stream}.ndjson");
    pf_sink *s = (pf_sink *)(uintptr_t)1;
    pf_error e;

    /* A stream name that would escape the directory. */
    const char *evil[] = {"../../escape"};
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, evil, NULL, 1, NULL, &s, &e), PF_ESINK);
    assert_null(s);
    assert_non_null(strstr(e.msg, "../../escape"));

    /* A token that is not this sink's. */
    const char *streams[] = {"ev"};
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, streams, NULL, 1, "{\"offset\":3}", &s, &e), PF_ESINK);
    assert_null(s);
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, streams, NULL, 1, "not json", &s, &e), PF_ESINK);
    assert_null(s);
    assert_non_null(strstr(e.msg, "resume token"));
    /* Trailing text after the token, and lengths that are not byte counts:
     * refused, and the file is left as it is (a "17k" read as 17 would cut
     * it to 17 bytes). */
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, streams, NULL, 1, "{\"files\":{}} x", &s, &e), PF_ESINK);
    assert_non_null(strstr(e.msg, "resume token"));
    char dir[128], file[160];
    snprintf(dir, sizeof dir, "%s/bad", tmpdir);
    snprintf(file, sizeof file, "%s/ev.ndjson", dir);
    assert_int_equal(mkdir(dir, 0700) == 0 || errno == EEXIST, 1);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n", fp);
    assert_int_equal(fclose(fp), 0);
    static const char *const bad_lengths[] = {"\"17k\"", "17.5", "null", "-3",
                                              "9223372036854775807"};
    for (size_t i = 0; i < sizeof bad_lengths / sizeof bad_lengths[0]; i++) {
        char tok[256];
        snprintf(tok, sizeof tok, "{\"files\":{\"%s\":%s}}", file, bad_lengths[i]);
        pf_error_clear(&e);
        s = NULL;
        assert_int_equal(pf_sink_open(&cfg, streams, NULL, 1, tok, &s, &e), PF_ESINK);
        assert_null(s);
        assert_non_null(strstr(e.msg, "not a byte count"));
        struct stat sb;
        assert_int_equal(stat(file, &sb), 0);
        assert_int_equal(sb.st_size, 32);
    }
    pf_sink_config_free(&cfg);

    /* No path. */
    memset(&cfg, 0, sizeof cfg);
    cfg.desc = pf_sink_find("ndjson", &e);
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, streams, NULL, 1, NULL, &s, &e), PF_ESINK);
    assert_non_null(strstr(e.msg, "path"));
    pf_sink_config_free(&cfg);
}

/* Parses TEXT and validates it as the flow's sink mapping. */
static pf_status config_from_yaml(const char *text, pf_sink_config *cfg, pf_diags *d, pf_ydoc **doc)
{
    pf_error e;
    pf_error_clear(&e);
    if (pf_yaml_parse("flow.yaml", text, strlen(text), doc, &e) != PF_OK)
        fail_msg("yaml: %s", e.msg);
    const pf_sink_descriptor *desc = pf_sink_find("ndjson", &e);
    assert_non_null(desc);
    return pf_sink_config_load(desc, (*doc)->root, "flow-name", cfg, d);
}

static void expect_diag(const pf_diags *d, const char *needle, int line, int col)
{
    for (size_t i = 0; i < d->count; i++) {
        const pf_error *e = &d->items[i];
        if (!strstr(e->msg, needle)) continue;
        if (strcmp(e->file, "flow.yaml") != 0 || e->line != line || e->col != col)
            fail_msg("'%s' at %s:%d:%d, want flow.yaml:%d:%d", e->msg, e->file, e->line, e->col,
                     line, col);
        return;
    }
    for (size_t i = 0; i < d->count; i++)
        print_message("  diag: %s\n", d->items[i].msg);
    fail_msg("no diagnostic mentions '%s'", needle);
}

static void test_option_validation(void **state)
{
    (void)state;
    pf_sink_config cfg;
    pf_diags d = {0};
    pf_ydoc *doc = NULL;

    assert_int_equal(config_from_yaml("type: ndjson\n"
                                      "path: out/{stream}.ndjson\n"
                                      "colour: red\n",
                                      &cfg, &d, &doc),
                     PF_ECONFIG);
    expect_diag(&d, "unknown option 'colour'", 3, 1);
    assert_int_equal(d.count, 1);
    pf_sink_config_free(&cfg);
    pf_ydoc_free(doc);
    pf_diags_free(&d);

    assert_int_equal(config_from_yaml("type: ndjson\n"
                                      "fsync: true\n",
                                      &cfg, &d, &doc),
                     PF_ECONFIG);
    expect_diag(&d, "needs option 'path'", 1, 1);
    pf_sink_config_free(&cfg);
    pf_ydoc_free(doc);
    pf_diags_free(&d);

    assert_int_equal(config_from_yaml("type: ndjson\n"
                                      "path: [a, b]\n"
                                      "fsync: maybe\n",
                                      &cfg, &d, &doc),
                     PF_ECONFIG);
    expect_diag(&d, "path must be a string", 2, 7);
    expect_diag(&d, "fsync must be true or false", 3, 8);
    pf_sink_config_free(&cfg);
    pf_ydoc_free(doc);
    pf_diags_free(&d);

    /* Valid: values expanded from the environment; defaults filled in. */
    setenv("PFT_OUT_DIR", "/data/out", 1);
    assert_int_equal(config_from_yaml("type: ndjson\n"
                                      "path: ${PFT_OUT_DIR}/{stream}.ndjson\n",
                                      &cfg, &d, &doc),
                     PF_OK);
    assert_int_equal(d.count, 0);
    assert_string_equal(pf_sink_config_get(&cfg, "path"), "/data/out/{stream}.ndjson");
    assert_string_equal(pf_sink_config_get(&cfg, "fsync"), "true");
    assert_null(pf_sink_config_get(&cfg, "nope"));
    assert_string_equal(cfg.flow_name, "flow-name");
    /* pf_sink_config_set replaces. */
    assert_int_equal(pf_sink_config_set(&cfg, "path", "other"), PF_OK);
    assert_string_equal(pf_sink_config_get(&cfg, "path"), "other");
    assert_int_equal(cfg.count, 1);
    pf_sink_config_free(&cfg);
    pf_ydoc_free(doc);
    pf_diags_free(&d);
    unsetenv("PFT_OUT_DIR");

    /* A missing variable in an option. */
    assert_int_equal(config_from_yaml("type: ndjson\n"
                                      "path: ${PFT_OUT_UNSET}/x\n",
                                      &cfg, &d, &doc),
                     PF_ECONFIG);
    expect_diag(&d, "PFT_OUT_UNSET", 2, 7);
    pf_sink_config_free(&cfg);
    pf_ydoc_free(doc);
    pf_diags_free(&d);
}

/* Expects pf_sink_open to fail with a message containing WANT. */
static void open_refused(const pf_sink_config *cfg, const char *const *streams, size_t n,
                         const char *want)
{
    pf_sink *s = (pf_sink *)(uintptr_t)1;
    pf_error e;
    pf_error_clear(&e);
    if (pf_sink_open(cfg, streams, NULL, n, NULL, &s, &e) == PF_OK)
        fail_msg("open succeeded; expected '%s'", want);
    assert_null(s);
    if (!strstr(e.msg, want)) fail_msg("message '%s' lacks '%s'", e.msg, want);
}

static void test_stream_names_cannot_escape(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "esc/{stream}.ndjson");
    char longname[200];
    memset(longname, 'a', 129);
    longname[129] = '\0';
    const char *bad[] = {"../x", "a/b", ".", "..", "", "a b", "a\nb", "x.y", longname};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[] = {bad[i]};
        open_refused(&cfg, one, 1, "cannot be used in a file name");
    }
    /* Nothing was created outside (or inside) the directory. */
    char p[300];
    snprintf(p, sizeof p, "%s/x.ndjson", tmpdir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s/esc", tmpdir);
    assert_int_equal(access(p, F_OK), -1);
    /* The widest accepted names work. */
    memset(longname, 'b', 128);
    longname[128] = '\0';
    const char *good[] = {"UPPER_lower-09", longname};
    pf_sink *s = open_ok(&cfg, good, 2, NULL);
    pf_sink_close(s);
    snprintf(p, sizeof p, "%s/esc/UPPER_lower-09.ndjson", tmpdir);
    assert_int_equal(access(p, F_OK), 0);
    pf_sink_config_free(&cfg);

    /* A configured path whose part after {stream} climbs out of the directory. */
    make_config(&cfg, "esc/{stream}/../../../x.ndjson");
    const char *one[] = {"ev"};
    open_refused(&cfg, one, 1, "leaves the directory");
    pf_sink_config_free(&cfg);
}

static void test_paths_normalised(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "n/./a//b/../{stream}.ndjson");
    const char *streams[] = {"ev"};
    char p[300], raw[300];
    snprintf(p, sizeof p, "%s/n/a/ev.ndjson", tmpdir);
    snprintf(raw, sizeof raw, "%s/n/./a//b/../ev.ndjson", tmpdir);
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_record r = rec("ev", "{\"n\":1}");
    write_ok(s, &r, 1);
    char *tok = commit_ok(s);
    pf_sink_close(s);
    assert_int_equal(token_len(tok, p), 8); /* keyed by the normalised path */
    assert_int_equal(token_len(tok, raw), -1);
    free(tok);

    /* A token written before paths were normalised (keyed by the raw
     * expansion) still truncates the file. */
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"torn\":", 8), 8);
    close(fd);
    char old[600];
    snprintf(old, sizeof old, "{\"files\":{\"%s\":8}}", raw);
    s = open_ok(&cfg, streams, 1, old);
    pf_sink_close(s);
    assert_int_equal(file_size(p), 8);
    pf_sink_config_free(&cfg);
}

static void test_files_private_whatever_the_umask(void **state)
{
    (void)state;
    mode_t old = umask(0);
    pf_sink_config cfg;
    make_config(&cfg, "um/{stream}.ndjson");
    const char *streams[] = {"s1", "s2"};
    pf_sink *s = open_ok(&cfg, streams, 2, NULL);
    pf_sink_close(s);
    umask(old);
    const char *names[] = {"um/s1.ndjson", "um/s2.ndjson", "um"};
    for (int i = 0; i < 3; i++) {
        char p[300];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, i < 2 ? 0600 : 0700);
    }
    pf_sink_config_free(&cfg);
}

static void test_symlinks_and_special_files_refused(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "ln/{stream}.ndjson");
    char p[300], victim[300];
    snprintf(p, sizeof p, "%s/ln", tmpdir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(victim, sizeof victim, "%s/victim.txt", tmpdir);
    write_file(victim, "keep\n");
    snprintf(p, sizeof p, "%s/ln/ev.ndjson", tmpdir);
    assert_int_equal(symlink(victim, p), 0);
    const char *streams[] = {"ev"};
    open_refused(&cfg, streams, 1, "symbolic link");
    size_t len;
    char *text = slurp(victim, &len);
    assert_string_equal(text, "keep\n");
    free(text);
    unlink(p);
    assert_int_equal(mkfifo(p, 0600), 0);
    open_refused(&cfg, streams, 1, "not a regular file");
    /* A file of another user (root can make one): refused, left alone. */
    unlink(p);
    if (geteuid() == 0) {
        write_file(p, "theirs\n");
        assert_int_equal(chown(p, 65534, 65534), 0);
        open_refused(&cfg, streams, 1, "owned by uid 65534");
        text = slurp(p, &len);
        assert_string_equal(text, "theirs\n");
        free(text);
    }
    pf_sink_config_free(&cfg);
}

/* A write error (here EFBIG from RLIMIT_FSIZE, as on a full disk) is a
 * RETRY naming the file and the errno, never an ERROR that would
 * dead-letter good records; a reopen from the last token cuts the partial
 * write away and the batch then goes through exactly once. */
static void test_write_error_is_retry_and_recoverable(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "full/{stream}.ndjson");
    const char *streams[] = {"ev"};
    char p[300];
    snprintf(p, sizeof p, "%s/full/ev.ndjson", tmpdir);
    pf_sink *s = open_ok(&cfg, streams, 1, NULL);
    pf_sink_record r1 = rec("ev", "{\"n\":1}");
    write_ok(s, &r1, 1);
    char *tok = commit_ok(s);

    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = saved;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    static char big[1024];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"pad\":\"", 8);
    memcpy(big + sizeof big - 3, "\"}", 3);
    pf_sink_record b = rec("ev", big);
    pf_error e;
    pf_error_clear(&e);
    pf_sink_result res = PF_SINK_OK;
    for (int i = 0; i < 8 && res == PF_SINK_OK; i++)
        res = pf_sink_write(s, &b, 1, &e);
    const char *tk = NULL;
    if (res == PF_SINK_OK) res = pf_sink_commit(s, NULL, &tk, &e);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(res, PF_SINK_RETRY);
    if (!strstr(e.msg, p) || !strstr(e.msg, "EFBIG"))
        fail_msg("message '%s' should name %s and EFBIG", e.msg, p);
    pf_sink_close(s);
    assert_true(file_size(p) > 8); /* the partial write is there */

    /* Space again: reopen from the last token, the same batch, once. */
    s = open_ok(&cfg, streams, 1, tok);
    assert_int_equal(file_size(p), 8);
    for (int i = 0; i < 8; i++)
        write_ok(s, &b, 1);
    free(commit_ok(s));
    pf_sink_close(s);
    assert_int_equal(file_size(p), 8 + 8 * (long long)(sizeof big));
    free(tok);
    pf_sink_config_free(&cfg);
}

static void test_registry_lookup(void **state)
{
    (void)state;
    pf_error e;
    pf_error_clear(&e);
    const pf_sink_descriptor *d = pf_sink_find("ndjson", &e);
    assert_non_null(d);
    assert_int_equal(d->abi_version, PF_SINK_ABI_VERSION);
    assert_string_equal(d->name, "ndjson");
    pf_error_clear(&e);
    assert_null(pf_sink_find("nosuchsink", &e));
    assert_int_equal(e.code, PF_ENOTFOUND);
    assert_non_null(strstr(e.msg, "nosuchsink"));
    assert_non_null(strstr(e.msg, "ndjson")); /* lists what exists */
}

/* One output file, one flow: a sink holds each file it opened with an
 * exclusive lock until it closes, so another open of the same file (another
 * flow, another process) fails at once, BUSY, without truncating it. */
static void test_output_file_is_locked_while_open(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "lock/{stream}.ndjson");
    char p[256];
    snprintf(p, sizeof p, "%s/lock/a.ndjson", tmpdir);
    const char *sa[] = {"a"};
    pf_sink *s1 = open_ok(&cfg, sa, 1, NULL);
    pf_sink_record r[] = {rec("a", "{\"n\":1}"), rec("a", "{\"n\":2}")};
    write_ok(s1, r, 2);
    char *tok = commit_ok(s1);
    free(tok);
    const char *committed = "{\"n\":1}\n{\"n\":2}\n";

    /* A second sink on the same file, with a token that would cut it to
     * nothing: refused as busy, naming the file (and the holder's pid where
     * the system tells it); the file keeps its records. */
    char zero[300];
    snprintf(zero, sizeof zero, "{\"files\":{\"%s\":0}}", p);
    pf_sink *s2 = NULL;
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, sa, NULL, 1, zero, &s2, &e), PF_ESTATE);
    assert_null(s2);
    assert_false(e.retriable);
    char want[400];
    snprintf(want, sizeof want, "output file %s is in use by another ppflow flow", p);
    if (!strstr(e.msg, want)) fail_msg("message: %s", e.msg);
    if (access("/proc/locks", R_OK) == 0) {
        char pid[48];
        snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
        if (!strstr(e.msg, pid)) fail_msg("no %s in: %s", pid, e.msg);
    }
    size_t len;
    char *text = slurp(p, &len);
    assert_string_equal(text, committed);
    free(text);

    /* A sink with several files: the one it could lock is let go again
     * when the other is busy. */
    const char *sba[] = {"b", "a"}, *sb[] = {"b"};
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, sba, NULL, 2, NULL, &s2, &e), PF_ESTATE);
    pf_sink *s3 = open_ok(&cfg, sb, 1, NULL);
    pf_sink_close(s3);

    /* The holder writes on; once it closes, the file is free. */
    pf_sink_record r3 = rec("a", "{\"n\":3}");
    write_ok(s1, &r3, 1);
    tok = commit_ok(s1);
    free(tok);
    pf_sink_close(s1);
    s2 = open_ok(&cfg, sa, 1, NULL);
    pf_sink_close(s2);
    text = slurp(p, &len);
    assert_string_equal(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    free(text);
    pf_sink_config_free(&cfg);
}

/* The lock is another process's too: a child holding the file makes the
 * parent's open busy, and its exit (even killed) frees the file. */
static void test_output_file_lock_across_processes(void **state)
{
    (void)state;
    pf_sink_config cfg;
    make_config(&cfg, "proc.ndjson");
    const char *sa[] = {"a"};
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        pf_sink *s = NULL;
        pf_error e;
        if (pf_sink_open(&cfg, sa, NULL, 1, NULL, &s, &e) != PF_OK) _exit(1);
        (void)!write(ready[1], "x", 1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    pf_sink *s = NULL;
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_sink_open(&cfg, sa, NULL, 1, NULL, &s, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "is in use by another ppflow flow"));
    if (access("/proc/locks", R_OK) == 0) {
        char want[48];
        snprintf(want, sizeof want, "(pid %ld)", (long)pid);
        if (!strstr(e.msg, want)) fail_msg("no %s in: %s", want, e.msg);
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    s = open_ok(&cfg, sa, 1, NULL);
    pf_sink_close(s);
    pf_sink_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_written_one_per_line_exactly),
        cmocka_unit_test(test_stream_routing_to_separate_files),
        cmocka_unit_test(test_streams_sharing_one_file),
        cmocka_unit_test(test_parent_dirs_created_and_files_private),
        cmocka_unit_test(test_commit_token_records_file_lengths),
        cmocka_unit_test(test_reopen_with_token_discards_uncommitted),
        cmocka_unit_test(test_uncommitted_small_batch_not_delivered),
        cmocka_unit_test(test_record_with_line_break_is_an_error),
        cmocka_unit_test(test_unknown_stream_is_an_error),
        cmocka_unit_test(test_open_refuses_bad_input),
        cmocka_unit_test(test_option_validation),
        cmocka_unit_test(test_registry_lookup),
        cmocka_unit_test(test_stream_names_cannot_escape),
        cmocka_unit_test(test_paths_normalised),
        cmocka_unit_test(test_files_private_whatever_the_umask),
        cmocka_unit_test(test_symlinks_and_special_files_refused),
        cmocka_unit_test(test_write_error_is_retry_and_recoverable),
        cmocka_unit_test(test_output_file_is_locked_while_open),
        cmocka_unit_test(test_output_file_lock_across_processes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
