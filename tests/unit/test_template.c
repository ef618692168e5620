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
    /* No base_url is allowed (the flow must then give source.base_url). */
    expect_diag(&d, "path must start with /", path, 3, 9);
    assert_int_equal(d.count, 1);
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
             "  method: FETCH\n"                /* 3 */
             "  base_url: gopher://x.example\n" /* 4 */
             "  path: /x/{missing}\n"           /* 5 */
             "params:\n"                        /* 6 */
             "  p:\n"                           /* 7 */
             "    type: number\n"               /* 8 */
             "streams:\n"                       /* 9 */
             "  s:\n"                           /* 10 */
             "    path: \"$[\"\n"               /* 11 */
             "pagination:\n"                    /* 12 */
             "  kind: scroll\n"                 /* 13 */
             "extra: 1\n",                      /* 14 */
             &d, path, sizeof path);
    expect_diag(&d, "unknown key 'extra'", path, 14, 1);
    expect_diag(&d, "'wrong_name'", path, 1, 7);
    expect_diag(&d, "FETCH", path, 3, 11);
    expect_diag(&d, "base_url", path, 4, 13);
    expect_diag(&d, "{missing}", path, 5, 9);
    expect_diag(&d, "'number'", path, 8, 11);
    expect_diag(&d, "invalid JSONPath", path, 11, 11);
    expect_diag(&d, "'scroll'", path, 13, 9);
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
            /* Every stream has a key, except where no field identifies a
             * record (ETI events; campaign IDs, where each {id,
             * lastUpdatedAt} is its own record) and manual flows (the flow
             * decides): their records are identified by their hash. */
            char which[256];
            snprintf(which, sizeof which, "%s/%s", t->name, t->streams[i].name);
            if (strcmp(which, "eti-domain/events") != 0 && strcmp(which, "manual/records") != 0 &&
                strcmp(which, "tap-campaign-ids/campaigns") != 0 && !t->streams[i].key)
                fail_msg("bundled stream %s has no key", which);
            assert_non_null(t->streams[i].identity);
            /* TAP SIEM messages are one event per recipient sharing the
             * GUID: never identified by the GUID first. */
            if (strncmp(t->name, "tap-siem", 8) == 0 &&
                strncmp(t->streams[i].name, "messages", 8) == 0)
                assert_string_equal(t->streams[i].identity, "$.id | sha256");
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

/* Loads TEXT as template NAME expecting success. */
static pf_template *load_good(const char *name, const char *text)
{
    char path[PATH_MAX];
    write_template(name, text, path, sizeof path);
    pf_template *t = NULL;
    pf_diags d = {0};
    pf_status st = pf_template_load_file(path, &t, &d);
    if (st != PF_OK) {
        dump(&d);
        fail_msg("template %s does not load", name);
    }
    pf_diags_free(&d);
    return t;
}

#define HEAD(n)                                                                                    \
    "name: " n "\n"                                                                                \
    "request:\n"                                                                                   \
    "  base_url: https://x.example\n"                                                              \
    "  path: /x\n"

static void test_page_kinds_load(void **state)
{
    (void)state;
    pf_template *t = load_good("pk_page", HEAD("pk_page") "params:\n"
                                                          "  n: {type: integer, default: 50}\n"
                                                          "streams:\n"
                                                          "  s: {path: \"$.a[*]\"}\n"
                                                          "pagination:\n"
                                                          "  kind: page\n"
                                                          "  max_pages: 7\n"
                                                          "  size: \"{n}\"\n");
    assert_int_equal(t->paging, PF_PAGING_PAGE);
    assert_int_equal(t->pages.kind, PF_PAGING_PAGE);
    assert_string_equal(t->pages.position_param, "page");
    assert_string_equal(t->pages.size_param, "size");
    assert_int_equal(t->pages.first, 1);
    assert_string_equal(t->pages.size_from, "n");
    assert_int_equal(t->max_pages, 7);
    pf_template_free(t);

    t = load_good("pk_off", HEAD("pk_off") "streams:\n"
                                           "  s: {path: \"$.a[*]\"}\n"
                                           "pagination:\n"
                                           "  kind: offset\n"
                                           "  size: 250\n");
    assert_int_equal(t->pages.kind, PF_PAGING_OFFSET);
    assert_string_equal(t->pages.position_param, "offset");
    assert_string_equal(t->pages.size_param, "limit");
    assert_int_equal(t->pages.first, 0);
    assert_int_equal(t->pages.size, 250);
    assert_null(t->pages.size_from);
    assert_int_equal(t->max_pages, PF_DEFAULT_MAX_PAGES);
    pf_template_free(t);

    t = load_good("pk_cur", HEAD("pk_cur") "streams:\n"
                                           "  s: {path: \"$.a[*]\"}\n"
                                           "pagination:\n"
                                           "  kind: cursor\n"
                                           "  cursor_param: after\n"
                                           "  from: $.paging.next\n");
    assert_int_equal(t->pages.kind, PF_PAGING_CURSOR);
    assert_string_equal(t->pages.position_param, "after");
    assert_null(t->pages.size_param);
    assert_non_null(t->pages.from);
    pf_template_free(t);

    /* Time windows with pages inside each window. */
    t = load_good("pk_win", HEAD("pk_win") "streams:\n"
                                           "  s: {path: \"$.a[*]\"}\n"
                                           "response:\n"
                                           "  no_data_status: [404, 410]\n"
                                           "pagination:\n"
                                           "  kind: time_window\n"
                                           "  max: 1d\n"
                                           "  query: {interval: \"{window_start}/{window_end}\"}\n"
                                           "  pages:\n"
                                           "    kind: next_link\n"
                                           "    from: $.next\n");
    assert_int_equal(t->paging, PF_PAGING_TIME_WINDOW);
    assert_int_equal(t->pages.kind, PF_PAGING_NEXT_LINK);
    assert_int_equal(t->window.max_ms, 86400000);
    assert_int_equal(t->nno_data_status, 2);
    assert_int_equal(t->no_data_status[1], 410);
    pf_template_free(t);
}

static void test_page_kind_errors(void **state)
{
    (void)state;
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("pe1",
             HEAD("pe1") "  query: {page: \"1\"}\n"
                         "params:\n"
                         "  s: {type: string}\n"
                         "streams:\n"
                         "  s: {path: \"$.a[*]\"}\n"
                         "pagination:\n"      /* 10 */
                         "  kind: page\n"     /* 11 */
                         "  max_pages: 0\n"   /* 12 */
                         "  size: \"{s}\"\n", /* 13 */
             &d, path, sizeof path);
    expect_diag(&d, "max_pages must be between 1 and 1000000", path, 12, 14);
    expect_diag(&d, "size {s} must name an integer parameter", path, 13, 9);
    expect_diag(&d, "query parameter 'page' is set by the pagination", path, 11, 3);
    pf_diags_free(&d);

    load_bad("pe2",
             HEAD("pe2") "streams:\n"
                         "  s: {path: \"$.a[*]\"}\n"
                         "pagination:\n"      /* 7 */
                         "  kind: offset\n"   /* 8 */
                         "  page_param: p\n", /* 9 */
             &d, path, sizeof path);
    expect_diag(&d, "offset pagination needs a size", path, 8, 3);
    expect_diag(&d, "unknown key 'page_param' in pagination", path, 9, 3);
    pf_diags_free(&d);

    load_bad("pe3",
             HEAD("pe3") "streams:\n"
                         "  s: {path: \"$.a[*]\"}\n"
                         "pagination:\n"
                         "  kind: cursor\n"  /* 8 */
                         "  from: \"$[\"\n", /* 9 */
             &d, path, sizeof path);
    expect_diag(&d, "cursor pagination needs cursor_param", path, 8, 3);
    expect_diag(&d, "invalid JSONPath '$['", path, 9, 9);
    pf_diags_free(&d);

    /* Syslog responses are not JSON: no cursor or link can be read. */
    load_bad("pe4",
             HEAD("pe4") "streams:\n"
                         "  s: {path: \"$.a[*]\"}\n"
                         "response: {format: syslog}\n"
                         "pagination:\n"
                         "  kind: next_link\n" /* 9 */
                         "  from: $.next\n",
             &d, path, sizeof path);
    expect_diag(&d, "cannot be used with syslog responses", path, 9, 3);
    pf_diags_free(&d);

    load_bad("pe5",
             HEAD("pe5") "streams:\n"
                         "  s: {path: \"$.a[*]\"}\n"
                         "pagination:\n"
                         "  kind: time_window\n"
                         "  query: {a: \"{window_start}\"}\n"
                         "  pages:\n"
                         "    kind: time_window\n" /* 11 */
                         "    max_pages: 3\n",     /* 12 */
             &d, path, sizeof path);
    expect_diag(&d, "unknown pages kind 'time_window'", path, 11, 11);
    pf_diags_free(&d);
}

static void test_response_format(void **state)
{
    (void)state;
    pf_template *t = load_good("rf_ok", HEAD("rf_ok") "  query: {format: \"{format}\"}\n"
                                                      "params:\n"
                                                      "  format: {type: enum, values: [json, "
                                                      "syslog], default: json}\n"
                                                      "streams:\n"
                                                      "  s: {path: \"$.a[*]\"}\n"
                                                      "response:\n"
                                                      "  format: \"{format}\"\n");
    assert_string_equal(t->format_param, "format");
    pf_template_free(t);
    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("rf_bad",
             HEAD("rf_bad") "params:\n"
                            "  f: {type: enum, values: [json, xml]}\n"
                            "  g: {type: string}\n"
                            "streams:\n"
                            "  s: {path: \"$.a[*]\"}\n"
                            "response:\n"                     /* 10 */
                            "  format: \"{f}\"\n"             /* 11 */
                            "  no_data_status: [404, 200]\n", /* 12 */
             &d, path, sizeof path);
    expect_diag(&d, "value 'xml' is neither json nor syslog", path, 11, 11);
    expect_diag(&d, "no_data_status must be between 400 and 499, not 200", path, 12, 25);
    pf_diags_free(&d);
    load_bad("rf_bad2",
             HEAD("rf_bad2") "params:\n"
                             "  g: {type: string}\n"
                             "streams:\n"
                             "  s: {path: \"$.a[*]\"}\n"
                             "response:\n"
                             "  format: \"{g}\"\n" /* 10 */
                             "  colour: red\n",    /* 11 */
             &d, path, sizeof path);
    expect_diag(&d, "must name an enum parameter", path, 10, 11);
    expect_diag(&d, "unknown key 'colour' in response", path, 11, 3);
    pf_diags_free(&d);
    load_bad("rf_bad3",
             HEAD("rf_bad3") "streams:\n"
                             "  s: {path: \"$.a[*]\"}\n"
                             "response: {format: csv}\n", /* 7 */
             &d, path, sizeof path);
    expect_diag(&d, "response format must be json, syslog or a {parameter}, not 'csv'", path, 7,
                20);
    pf_diags_free(&d);
}

static void test_constraints(void **state)
{
    (void)state;
    pf_template *t = load_good("c_ok", HEAD("c_ok") "params:\n"
                                                    "  a: {type: string}\n"
                                                    "  b: {type: string}\n"
                                                    "  c: {type: boolean}\n"
                                                    "constraints:\n"
                                                    "  - exactly_one_of: [a, b]\n"
                                                    "  - at_most_one_of: [b, c]\n"
                                                    "  - requires: {c: a, b: a}\n"
                                                    "streams:\n"
                                                    "  s: {path: \"$.a[*]\"}\n");
    assert_int_equal(t->nconstraints, 4);
    assert_int_equal(t->constraints[0].kind, PF_CONSTRAINT_EXACTLY_ONE);
    assert_int_equal(t->constraints[0].nparams, 2);
    assert_int_equal(t->constraints[1].kind, PF_CONSTRAINT_AT_MOST_ONE);
    assert_int_equal(t->constraints[2].kind, PF_CONSTRAINT_REQUIRES);
    assert_string_equal(t->constraints[2].params[0], "c");
    assert_string_equal(t->constraints[2].params[1], "a");
    assert_string_equal(t->constraints[3].params[0], "b");
    pf_template_free(t);

    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("c_bad",
             HEAD("c_bad") "params:\n"
                           "  a: {type: string}\n"
                           "constraints:\n"
                           "  - exactly_one_of: [a, zz]\n"                 /* 8 */
                           "  - at_most_one_of: [a]\n"                     /* 9 */
                           "  - requires: {a: q}\n"                        /* 10 */
                           "  - one_of: [a]\n"                             /* 11 */
                           "  - {exactly_one_of: [a], requires: {a: a}}\n" /* 12 */
                           "streams:\n"
                           "  s: {path: \"$.a[*]\"}\n",
             &d, path, sizeof path);
    expect_diag(&d, "exactly_one_of: 'zz' names no parameter", path, 8, 25);
    expect_diag(&d, "at_most_one_of needs a list of at least 2", path, 9, 21);
    expect_diag(&d, "requires: 'q' names no parameter", path, 10, 19);
    expect_diag(&d, "unknown constraint 'one_of'", path, 11, 5);
    expect_diag(&d, "a constraint has exactly one key", path, 12, 5);
    pf_diags_free(&d);
}

static void test_stream_when(void **state)
{
    (void)state;
    pf_template *t = load_good("w_ok", HEAD("w_ok") "params:\n"
                                                    "  r: {type: enum, values: [x, y, z]}\n"
                                                    "streams:\n"
                                                    "  xs: {path: \"$.a[*]\", when: {r: x}}\n"
                                                    "  yz: {path: \"$.a\", when: {r: [y, z]}}\n");
    assert_string_equal(t->streams[0].when_param, "r");
    assert_int_equal(t->streams[0].nwhen_values, 1);
    assert_int_equal(t->streams[1].nwhen_values, 2);
    assert_string_equal(t->streams[1].when_values[1], "z");
    pf_template_drop_stream(t, 0);
    assert_int_equal(t->nstreams, 1);
    assert_string_equal(t->streams[0].name, "yz");
    pf_template_free(t);

    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("w_bad",
             HEAD("w_bad") "params:\n"
                           "  r: {type: enum, values: [x, y]}\n"
                           "  n: {type: integer}\n"
                           "streams:\n"
                           "  a: {path: \"$.a[*]\", when: {q: x}}\n"      /* 9 */
                           "  b: {path: \"$.a[*]\", when: {r: w}}\n"      /* 10 */
                           "  c: {path: \"$.a[*]\", when: {n: \"1\"}}\n", /* 11 */
             &d, path, sizeof path);
    expect_diag(&d, "when: 'q' names no parameter", path, 9, 30);
    expect_diag(&d, "when: 'w' is not a value of parameter 'r'", path, 10, 33);
    expect_diag(&d, "when: parameter 'n' must be an enum, string or boolean", path, 11, 30);
    pf_diags_free(&d);
}

static void test_url_path_parameters(void **state)
{
    (void)state;
    assert_null(pf_url_path_check("/api/v1/alerts"));
    assert_null(pf_url_path_check("/a/b%20c/~x:y@z"));
    assert_non_null(pf_url_path_check("api/v1"));
    assert_non_null(pf_url_path_check("/a/../b"));
    assert_non_null(pf_url_path_check("/a/./b"));
    assert_non_null(pf_url_path_check("/a/.."));
    assert_non_null(pf_url_path_check("/a?b=1"));
    assert_non_null(pf_url_path_check("/a#b"));
    assert_non_null(pf_url_path_check("/a b"));
    assert_non_null(pf_url_path_check("/a%2"));
    assert_non_null(pf_url_path_check("/a%zz"));
    assert_null(pf_url_path_check("/a/..b/.c"));

    pf_template *t = load_good("u_ok", "name: u_ok\n"
                                       "request:\n"
                                       "  path: \"{p}\"\n"
                                       "params:\n"
                                       "  p: {type: string, url_path: true, default: /a/b}\n"
                                       "streams:\n"
                                       "  s: {path: \"$.a[*]\"}\n");
    assert_true(pf_template_param(t, "p")->url_path);
    assert_string_equal(t->base_url, "");
    pf_template_free(t);

    char path[PATH_MAX];
    pf_diags d = {0};
    load_bad("u_bad",
             "name: u_bad\n"
             "request:\n"
             "  base_url: https://{host}.example\n"
             "  path: \"{q}\"\n" /* 4 */
             "params:\n"
             "  host: {type: string}\n"
             "  p: {type: integer, url_path: true}\n"                  /* 7 */
             "  q: {type: string, url_path: true, default: /a/../b}\n" /* 8 */
             "  r: {type: string}\n"
             "streams:\n"
             "  s: {path: \"$.a[*]\"}\n",
             &d, path, sizeof path);
    expect_diag(&d, "url_path is only for string parameters", path, 7, 32);
    expect_diag(&d, "the default of 'q' must be a URL path without . or ..", path, 8, 46);
    assert_int_equal(d.count, 2);
    pf_diags_free(&d);
    load_bad("u_bad2",
             "name: u_bad2\n"
             "request:\n"
             "  path: \"{r}\"\n" /* 3 */
             "params:\n"
             "  r: {type: string}\n"
             "streams:\n"
             "  s: {path: \"$.a[*]\"}\n",
             &d, path, sizeof path);
    expect_diag(&d, "or be one {param} naming a url_path parameter", path, 3, 9);
    pf_diags_free(&d);
}

static void test_manual_template(void **state)
{
    (void)state;
    pf_template *t = NULL;
    pf_diags d = {0};
    assert_int_equal(pf_template_load_file(PPFLOW_SOURCE_DIR "/templates/manual.yaml", &t, &d),
                     PF_OK);
    assert_true(t->manual);
    assert_int_equal(t->nstreams, 1);
    assert_string_equal(t->streams[0].name, "records");
    assert_string_equal(t->streams[0].path_text, "$");
    assert_null(t->streams[0].key);
    assert_string_equal(t->base_url, "");
    assert_non_null(pf_template_param(t, "since_time"));
    pf_template_free(t);

    char path[PATH_MAX];
    load_bad("m_bad",
             "name: m_bad\n"
             "manual: true\n"
             "request:\n" /* 3 */
             "  path: /x\n"
             "streams:\n" /* 5 */
             "  s: {path: $}\n",
             &d, path, sizeof path);
    expect_diag(&d, "a manual template takes request from the flow", path, 4, 3);
    expect_diag(&d, "a manual template takes streams from the flow", path, 6, 3);
    pf_diags_free(&d);
}

static int set_threat_id(void *ud, const char *param)
{
    (void)ud;
    return strcmp(param, "threat_id") == 0;
}

static int set_campaign_id(void *ud, const char *param)
{
    (void)ud;
    return strcmp(param, "campaign_id") == 0;
}

/* Call budgets as Proofpoint documents them: SIEM clicks/permitted has a
 * pool of its own, the other SIEM endpoints share one; forensics by threat
 * ID and by campaign ID are budgeted apart; campaign details and threat
 * summaries are not throttled. */
static void test_bundled_call_budgets(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl, *pool;
        long long budget;
    } want[] = {
        {"tap-siem-all", "tap-siem", 1800},
        {"tap-siem-issues", "tap-siem", 1800},
        {"tap-siem-clicks-blocked", "tap-siem", 1800},
        {"tap-siem-messages-delivered", "tap-siem", 1800},
        {"tap-siem-messages-blocked", "tap-siem", 1800},
        {"tap-siem-clicks-permitted", "tap-siem-clicks-permitted", 1800},
        {"tap-campaign-ids", "tap-campaign-ids", 50},
        {"tap-people-vap", "tap-people-vap", 50},
        {"tap-people-top-clickers", "tap-people-top-clickers", 50},
        {"tap-campaign", NULL, 0},
        {"tap-threat-summary", NULL, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pf_template *t = NULL;
        pf_diags d = {0};
        assert_int_equal(pf_template_find(want[i].tmpl, &t, &d), PF_OK);
        if (want[i].pool) {
            assert_non_null(t->quota_pool);
            assert_string_equal(t->quota_pool, want[i].pool);
            assert_int_equal(t->quota_budget, want[i].budget);
        } else if (t->quota_pool) {
            fail_msg("%s has a call budget (%s)", want[i].tmpl, t->quota_pool);
        }
        pf_template_free(t);
        pf_diags_free(&d);
    }
    pf_template *t = NULL;
    pf_diags d = {0};
    assert_int_equal(pf_template_find("tap-forensics", &t, &d), PF_OK);
    assert_null(t->quota_pool); /* until a flow says which kind of request */
    pf_template_pick_quota(t, set_threat_id, NULL);
    assert_string_equal(t->quota_pool, "tap-forensics-threat");
    assert_int_equal(t->quota_budget, 50);
    pf_template_pick_quota(t, set_campaign_id, NULL);
    assert_string_equal(t->quota_pool, "tap-forensics-campaign");
    assert_int_equal(t->quota_budget, 1800);
    pf_template_free(t);
    pf_diags_free(&d);
}

/* The bundled templates declare what the reference says about their APIs. */
static void test_bundled_template_rules(void **state)
{
    (void)state;
    pf_template *t = NULL;
    pf_diags d = {0};
    assert_int_equal(pf_template_find("tap-campaign-ids", &t, &d), PF_OK);
    assert_int_equal(t->paging, PF_PAGING_TIME_WINDOW);
    assert_int_equal(t->window.max_ms, 86400000);
    assert_int_equal(t->window.min_ms, 30000);
    assert_int_equal(t->pages.kind, PF_PAGING_PAGE);
    assert_string_equal(t->pages.size_from, "size");
    assert_int_equal(pf_template_param(t, "size")->max, 200);
    assert_int_equal(t->max_pages, 50);
    assert_int_equal(t->nno_data_status, 1);
    assert_int_equal(t->no_data_status[0], 404);
    assert_int_equal(t->auth, PF_AUTH_BASIC);
    pf_template_free(t);

    assert_int_equal(pf_template_find("tap-forensics", &t, &d), PF_OK);
    assert_int_equal(t->nconstraints, 2);
    assert_int_equal(t->constraints[0].kind, PF_CONSTRAINT_EXACTLY_ONE);
    assert_int_equal(t->constraints[1].kind, PF_CONSTRAINT_REQUIRES);
    assert_int_equal(pf_template_param(t, "include_campaign_forensics")->ndefaults, 0);
    pf_template_free(t);

    const char *siem[] = {"tap-siem-all",
                          "tap-siem-issues",
                          "tap-siem-messages-delivered",
                          "tap-siem-messages-blocked",
                          "tap-siem-clicks-permitted",
                          "tap-siem-clicks-blocked"};
    for (size_t i = 0; i < sizeof siem / sizeof siem[0]; i++) {
        assert_int_equal(pf_template_find(siem[i], &t, &d), PF_OK);
        assert_string_equal(t->format_param, "format");
        const pf_param_def *f = pf_template_param(t, "format");
        assert_int_equal(f->nvalues, 2);
        assert_string_equal(f->defaults[0], "json");
        pf_template_free(t);
    }

    /* Raw-key and header-pair auth, declared in the templates. */
    assert_int_equal(pf_template_find("trap-incidents", &t, &d), PF_OK);
    assert_int_equal(t->auth, PF_AUTH_HEADERS);
    assert_string_equal(t->auth_headers[0].name, "Authorization");
    assert_string_equal(t->auth_headers[0].value, "{secret}");
    assert_string_equal(t->base_url, "");
    assert_string_equal(t->window.query[0].name, "created_after");
    pf_template_free(t);
    assert_int_equal(pf_template_find("essentials-users", &t, &d), PF_OK);
    assert_int_equal(t->nauth_headers, 2);
    assert_string_equal(t->auth_headers[0].name, "X-User");
    assert_string_equal(t->auth_headers[1].value, "{secret}");
    assert_string_equal(t->base_url, "https://{stack}.proofpointessentials.com");
    pf_template_free(t);
    assert_int_equal(pf_template_find("eti-domain", &t, &d), PF_OK);
    assert_int_equal(t->nstreams, 8);
    for (size_t i = 0; i < t->nstreams; i++) {
        assert_string_equal(t->streams[i].when_param, "resource");
        assert_string_equal(t->streams[i].when_values[0], t->streams[i].name);
    }
    pf_template_free(t);
    assert_int_equal(pf_template_find("casb-alerts", &t, &d), PF_OK);
    assert_true(pf_template_param(t, "alerts_path")->url_path);
    assert_string_equal(t->path, "{alerts_path}");
    pf_template_free(t);
    assert_int_equal(d.count, 0);
    pf_diags_free(&d);
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
        cmocka_unit_test(test_page_kinds_load),
        cmocka_unit_test(test_page_kind_errors),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_stream_when),
        cmocka_unit_test(test_url_path_parameters),
        cmocka_unit_test(test_manual_template),
        cmocka_unit_test(test_bundled_template_rules),
        cmocka_unit_test(test_bundled_call_budgets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
