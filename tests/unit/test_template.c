/* test_template.c: the template loader's diagnostics (FILE:LINE:COL and a
 * message naming the problem), the bundled templates, and the search path. */
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

#include "flow/template.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-template-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    unsetenv("PPFLOW_TEMPLATE_PATH");
    return 0;
}

/* Writes TEXT to <tmpdir>/<NAME>.yaml; the path goes to PATH. */
static void write_template(const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s.yaml", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void dump(const pf_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        print_message("  diag %zu: %s:%d:%d: %s\n", i, d->items[i].file, d->items[i].line,
                      d->items[i].col, d->items[i].msg);
}

/* Loads TEXT as template NAME expecting failure; fills D and PATH. */
static pf_status load_bad(const char *name, const char *text, pf_diags *d, char *path, size_t n)
{
    write_template(name, text, path, n);
    pf_template *t = (pf_template *)(uintptr_t)1;
    pf_status st = pf_template_load_file(path, &t, d);
    if (st == PF_OK) fail_msg("template %s loaded, expected diagnostics", name);
    assert_null(t);
    assert_true(d->count > 0);
    /* The return value is the first problem's code. */
    assert_int_equal(st, d->items[0].code);
    return st;
}

/* Requires a diagnostic whose message contains NEEDLE, at FILE:LINE:COL. */
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

/* A complete valid template using every section, so the failure cases below
 * differ from a known-good file in one place. */
static const char valid_text[] = "name: good\n"
                                 "description: test template\n"
                                 "request:\n"
                                 "  method: GET\n"
                                 "  base_url: https://api.example.com\n"
                                 "  path: /v1/{kind}/items\n"
                                 "  query:\n"
                                 "    limit: \"{limit}\"\n"
                                 "    since: \"{since}\"\n"
                                 "  headers:\n"
                                 "    Accept: application/json\n"
                                 "auth:\n"
                                 "  kind: basic\n"
                                 "params:\n"
                                 "  kind:\n"
                                 "    type: enum\n"
                                 "    values: [a, b]\n"
                                 "    default: a\n"
                                 "  limit:\n"
                                 "    type: integer\n"
                                 "    min: 1\n"
                                 "    max: 1000\n"
                                 "  since:\n"
                                 "    type: datetime\n"
                                 "streams:\n"
                                 "  items:\n"
                                 "    path: $.items[*]\n"
                                 "    key: $.id\n"
                                 "pagination:\n"
                                 "  kind: time_window\n"
                                 "  min: 30s\n"
                                 "  max: 1h\n"
                                 "  retention: 7d\n"
                                 "  retention_margin: 1m\n"
                                 "  query:\n"
                                 "    interval: \"{window_start}/{window_end}\"\n";

static void test_valid_template_loads(void **state)
{
    (void)state;
    char path[PATH_MAX];
    write_template("good", valid_text, path, sizeof path);
    pf_template *t = NULL;
    pf_diags d = {0};
    pf_status st = pf_template_load_file(path, &t, &d);
    if (st != PF_OK) dump(&d);
    assert_int_equal(st, PF_OK);
    assert_int_equal(d.count, 0);
    assert_string_equal(t->name, "good");
    assert_string_equal(t->base_url, "https://api.example.com");
    assert_string_equal(t->path, "/v1/{kind}/items");
    assert_int_equal(t->nquery, 2);
    assert_int_equal(t->auth, PF_AUTH_BASIC);
    assert_int_equal(t->nparams, 3);
    const pf_param_def *limit = pf_template_param(t, "limit");
    assert_non_null(limit);
    assert_int_equal(limit->type, PF_PT_INTEGER);
    assert_true(limit->has_min && limit->min == 1 && limit->has_max && limit->max == 1000);
    assert_int_equal(pf_template_param(t, "kind")->nvalues, 2);
    assert_null(pf_template_param(t, "nope"));
    assert_non_null(pf_template_stream(t, "items"));
    assert_null(pf_template_stream(t, "other"));
    assert_int_equal(t->paging, PF_PAGING_TIME_WINDOW);
    assert_int_equal(t->window.min_ms, 30000);
    assert_int_equal(t->window.max_ms, 3600000);
    pf_template_free(t);
    pf_diags_free(&d);
}

static void test_unknown_top_level_key(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_unknown",
             "name: t_unknown\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n"
             "colour: blue\n",
             &d, path, sizeof path);
    const pf_error *e = expect_diag(&d, "unknown key 'colour'", path, 8, 1);
    assert_int_equal(e->code, PF_ECONFIG);
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);

    /* Unknown keys inside sections too. */
    load_bad("t_unknown2",
             "name: t_unknown2\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "  verb: GET\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n"
             "    keys: $.id\n",
             &d, path, sizeof path);
    expect_diag(&d, "unknown key 'verb'", path, 5, 3);
    expect_diag(&d, "unknown key 'keys'", path, 9, 5);
    pf_diags_free(&d);
}

static void test_name_must_match_file_name(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_name",
             "name: other_name\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    const pf_error *e = expect_diag(&d, "other_name", path, 1, 7);
    assert_non_null(strstr(e->msg, "t_name"));
    pf_diags_free(&d);

    /* No name at all. */
    load_bad("t_noname",
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    expect_diag(&d, "no name", path, 1, 1);
    pf_diags_free(&d);
}

static void test_unknown_param_type(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_ptype",
             "name: t_ptype\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "params:\n"
             "  count:\n"
             "    type: strng\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    const pf_error *e = expect_diag(&d, "strng", path, 7, 11);
    assert_non_null(strstr(e->msg, "type"));
    pf_diags_free(&d);

    /* A parameter without a type, and an enum without values. */
    load_bad("t_ptype2",
             "name: t_ptype2\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "params:\n"
             "  count:\n"
             "    description: no type\n"
             "  mode:\n"
             "    type: enum\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    expect_diag(&d, "'count' has no type", path, 7, 5);
    expect_diag(&d, "enum parameter 'mode' needs a list of values", path, 9, 5);
    pf_diags_free(&d);
}

static void test_placeholder_naming_no_parameter(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_ph",
             "name: t_ph\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x/{nope}\n"
             "  query:\n"
             "    q: \"{also_nope}\"\n"
             "    ok: \"{known}\"\n"
             "  headers:\n"
             "    X-Thing: \"v-{hdr_nope}\"\n"
             "params:\n"
             "  known:\n"
             "    type: string\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    expect_diag(&d, "{nope}", path, 4, 9);
    expect_diag(&d, "{also_nope}", path, 6, 8);
    expect_diag(&d, "{hdr_nope}", path, 9, 14);
    assert_int_equal(d.count, 3); /* {known} is fine */
    pf_diags_free(&d);

    /* Window placeholders exist only in the pagination query. */
    load_bad("t_ph2",
             "name: t_ph2\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "  query:\n"
             "    from: \"{window_start}\"\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    expect_diag(&d, "{window_start}", path, 6, 11);
    pf_diags_free(&d);
}

static void test_malformed_placeholder(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_mal",
             "name: t_mal\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x/{Bad}\n"
             "  query:\n"
             "    a: \"{open\"\n"
             "    b: \"x{}\"\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    const pf_error *e = expect_diag(&d, "'/x/{Bad}'", path, 4, 9);
    assert_non_null(strstr(e->msg, "malformed placeholder at offset 3"));
    e = expect_diag(&d, "'{open'", path, 6, 8);
    assert_non_null(strstr(e->msg, "offset 0"));
    e = expect_diag(&d, "'x{}'", path, 7, 8);
    assert_non_null(strstr(e->msg, "offset 1"));
    pf_diags_free(&d);
}

/* Collects placeholder names into the buffer UD, each followed by '|'. */
static void collect(void *ud, const char *name, size_t len)
{
    char *buf = ud;
    size_t n = strlen(buf);
    snprintf(buf + n, 128 - n, "%.*s|", (int)len, name);
}

static void test_placeholders_each(void **state)
{
    (void)state;
    char seen[128] = "";
    size_t off = 99;
    assert_int_equal(pf_placeholders_each("/a/{x}/{{lit}}/{y_2}}}", collect, seen, &off), 0);
    assert_string_equal(seen, "x|y_2|");
    assert_int_equal(pf_placeholders_each("ab{", collect, seen, &off), -1);
    assert_int_equal(off, 2);
    assert_int_equal(pf_placeholders_each("{ok}{B}", collect, seen, &off), -1);
    assert_int_equal(off, 4);
    assert_int_equal(pf_placeholders_each("no placeholders", NULL, NULL, &off), 0);
}

static void test_invalid_jsonpath(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_jp",
             "name: t_jp\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.items[\n"
             "    key: id\n",
             &d, path, sizeof path);
    const pf_error *e = expect_diag(&d, "'$.items['", path, 7, 11);
    assert_non_null(strstr(e->msg, "invalid JSONPath"));
    assert_non_null(strstr(e->msg, "offset 8"));
    e = expect_diag(&d, "'id'", path, 8, 10);
    assert_non_null(strstr(e->msg, "offset 0"));
    pf_diags_free(&d);
}

static void test_missing_streams(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_nostreams",
             "name: t_nostreams\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n",
             &d, path, sizeof path);
    expect_diag(&d, "no streams", path, 1, 1);
    pf_diags_free(&d);

    load_bad("t_emptystreams",
             "name: t_emptystreams\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams: {}\n",
             &d, path, sizeof path);
    expect_diag(&d, "no streams", path, 5, 10);
    pf_diags_free(&d);

    load_bad("t_nopath",
             "name: t_nopath\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    key: $.id\n",
             &d, path, sizeof path);
    expect_diag(&d, "stream 's' has no path", path, 7, 5);
    pf_diags_free(&d);
}

static void test_bad_pagination(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_pgkind",
             "name: t_pgkind\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n"
             "pagination:\n"
             "  kind: pages\n",
             &d, path, sizeof path);
    expect_diag(&d, "unknown pagination kind 'pages'", path, 9, 9);
    pf_diags_free(&d);

    load_bad("t_pgdur",
             "name: t_pgdur\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n"
             "pagination:\n"
             "  kind: time_window\n"
             "  min: 30s\n"
             "  max: 1 hour\n"
             "  retention: 7 days\n"
             "  query:\n"
             "    interval: \"{window_start}/{window_end}\"\n",
             &d, path, sizeof path);
    const pf_error *e = expect_diag(&d, "'1 hour'", path, 11, 8);
    assert_non_null(strstr(e->msg, "max must be a duration"));
    expect_diag(&d, "'7 days'", path, 12, 14);
    pf_diags_free(&d);

    /* min above max; a time window without a query. */
    load_bad("t_pgminmax",
             "name: t_pgminmax\n"
             "request:\n"
             "  base_url: https://x.example\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n"
             "pagination:\n"
             "  kind: time_window\n"
             "  min: 2h\n"
             "  max: 1h\n",
             &d, path, sizeof path);
    expect_diag(&d, "min <= max", path, 9, 3);
    expect_diag(&d, "needs a query", path, 9, 3);
    pf_diags_free(&d);
}

static void test_base_url_must_be_http(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_url",
             "name: t_url\n"
             "request:\n"
             "  base_url: ftp://files.example.com\n"
             "  path: /x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    expect_diag(&d, "base_url must start with https:// or http://", path, 3, 13);
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);

    load_bad("t_url2",
             "name: t_url2\n"
             "request:\n"
             "  path: x\n"
             "streams:\n"
             "  s:\n"
             "    path: $.a[*]\n",
             &d, path, sizeof path);
    expect_diag(&d, "no base_url", path, 3, 3);
    expect_diag(&d, "path must start with /", path, 3, 9);
    pf_diags_free(&d);
}

static void test_several_problems_several_diagnostics(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_many",
             "name: wrong_name\n"               /* 1 */
             "request:\n"                       /* 2 */
             "  method: DELETE\n"               /* 3 */
             "  base_url: gopher://x.example\n" /* 4 */
             "  path: /x/{missing}\n"           /* 5 */
             "params:\n"                        /* 6 */
             "  p:\n"                           /* 7 */
             "    type: number\n"               /* 8 */
             "streams:\n"                       /* 9 */
             "  s:\n"                           /* 10 */
             "    path: \"$[\"\n"               /* 11 */
             "pagination:\n"                    /* 12 */
             "  kind: cursor\n"                 /* 13 */
             "extra: 1\n",                      /* 14 */
             &d, path, sizeof path);
    expect_diag(&d, "unknown key 'extra'", path, 14, 1);
    expect_diag(&d, "'wrong_name'", path, 1, 7);
    expect_diag(&d, "DELETE", path, 3, 11);
    expect_diag(&d, "base_url", path, 4, 13);
    expect_diag(&d, "{missing}", path, 5, 9);
    expect_diag(&d, "'number'", path, 8, 11);
    expect_diag(&d, "invalid JSONPath", path, 11, 11);
    expect_diag(&d, "'cursor'", path, 13, 9);
    assert_int_equal(d.count, 8);
    pf_diags_free(&d);
}

static void test_not_a_template(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("t_list", "- a\n- b\n", &d, path, sizeof path);
    expect_diag(&d, "must be a mapping", path, 1, 1);
    pf_diags_free(&d);

    /* YAML syntax errors come through with their position. */
    load_bad("t_syntax", "name: t_syntax\nrequest: [\n", &d, path, sizeof path);
    assert_int_equal(d.items[0].code, PF_ESYNTAX);
    assert_string_equal(d.items[0].file, path);
    assert_true(d.items[0].line >= 2);
    pf_diags_free(&d);

    /* A missing file. */
    pf_template *t = NULL;
    snprintf(path, sizeof path, "%s/absent.yaml", tmpdir);
    assert_int_equal(pf_template_load_file(path, &t, &d), PF_ENOTFOUND);
    assert_null(t);
    assert_int_equal(d.count, 1);
    pf_diags_free(&d);
}

static void test_bundled_templates_load_cleanly(void **state)
{
    (void)state;
    const char *dir = PPFLOW_SOURCE_DIR "/templates";
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *de;
    int loaded = 0;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        pf_template *t = NULL;
        pf_diags d = {0};
        pf_status st = pf_template_load_file(path, &t, &d);
        if (st != PF_OK || d.count) {
            dump(&d);
            fail_msg("bundled template %s does not load", de->d_name);
        }
        assert_int_equal(strncmp(t->name, de->d_name, l - 5), 0);
        assert_int_equal(strlen(t->name), l - 5);
        assert_true(t->nstreams > 0);
        for (size_t i = 0; i < t->nstreams; i++) {
            assert_non_null(t->streams[i].path);
            assert_non_null(t->streams[i].key);
        }
        pf_template_free(t);
        pf_diags_free(&d);
        loaded++;
    }
    closedir(dp);
    assert_true(loaded >= 5);
}

static void test_find_by_name(void **state)
{
    (void)state;
    setenv("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_DIR "/templates", 1);
    pf_template *t = NULL;
    pf_diags d = {0};
    assert_int_equal(pf_template_find("tap-siem-all", &t, &d), PF_OK);
    assert_int_equal(d.count, 0);
    assert_string_equal(t->name, "tap-siem-all");
    assert_string_equal(t->file, PPFLOW_SOURCE_DIR "/templates/tap-siem-all.yaml");
    assert_int_equal(t->nstreams, 4);
    assert_non_null(pf_template_stream(t, "messages_delivered"));
    assert_non_null(pf_template_stream(t, "clicks_blocked"));
    pf_template_free(t);

    /* Unknown name. */
    t = (pf_template *)(uintptr_t)1;
    assert_int_equal(pf_template_find("no-such-template", &t, &d), PF_ENOTFOUND);
    assert_null(t);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.items[0].code, PF_ENOTFOUND);
    assert_non_null(strstr(d.items[0].msg, "no-such-template"));
    pf_diags_free(&d);

    /* Names that cannot be template names are not looked up as files. */
    assert_int_equal(pf_template_find("Bad Name", &t, &d), PF_ENOTFOUND);
    assert_null(t);
    pf_diags_free(&d);
}

static void test_find_honours_search_path_order(void **state)
{
    (void)state;
    /* A local template with the same name as a bundled one wins when its
     * directory comes first; a template only in the local directory is found. */
    char path[PATH_MAX];
    const char *rest = strchr(valid_text, '\n'); /* everything after "name: good" */
    char renamed[4096];
    snprintf(renamed, sizeof renamed, "name: tap-siem-all%s", rest);
    write_template("tap-siem-all", renamed, path, sizeof path);
    snprintf(renamed, sizeof renamed, "name: only-local%s", rest);
    write_template("only-local", renamed, path, sizeof path);

    char env[2 * PATH_MAX];
    snprintf(env, sizeof env, "%s:%s", tmpdir, PPFLOW_SOURCE_DIR "/templates");
    setenv("PPFLOW_TEMPLATE_PATH", env, 1);
    pf_template *t = NULL;
    pf_diags d = {0};
    assert_int_equal(pf_template_find("tap-siem-all", &t, &d), PF_OK);
    snprintf(path, sizeof path, "%s/tap-siem-all.yaml", tmpdir);
    assert_string_equal(t->file, path);
    assert_string_equal(t->description, "test template");
    pf_template_free(t);
    assert_int_equal(pf_template_find("only-local", &t, &d), PF_OK);
    pf_template_free(t);
    /* A path is loaded directly. */
    assert_int_equal(pf_template_find(path, &t, &d), PF_OK);
    assert_string_equal(t->file, path);
    pf_template_free(t);
    assert_int_equal(d.count, 0);
    pf_diags_free(&d);
    unlink(path);
    snprintf(path, sizeof path, "%s/only-local.yaml", tmpdir);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_template_loads),
        cmocka_unit_test(test_unknown_top_level_key),
        cmocka_unit_test(test_name_must_match_file_name),
        cmocka_unit_test(test_unknown_param_type),
        cmocka_unit_test(test_placeholder_naming_no_parameter),
        cmocka_unit_test(test_malformed_placeholder),
        cmocka_unit_test(test_placeholders_each),
        cmocka_unit_test(test_invalid_jsonpath),
        cmocka_unit_test(test_missing_streams),
        cmocka_unit_test(test_bad_pagination),
        cmocka_unit_test(test_base_url_must_be_http),
        cmocka_unit_test(test_several_problems_several_diagnostics),
        cmocka_unit_test(test_not_a_template),
        cmocka_unit_test(test_bundled_templates_load_cleanly),
        cmocka_unit_test(test_find_by_name),
        cmocka_unit_test(test_find_honours_search_path_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
