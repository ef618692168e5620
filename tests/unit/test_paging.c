/* test_paging.c: the pager of one unit of work (page/size, offset/limit,
 * cursor token, next link): the parameters it adds, its stop rules, its
 * refusal to loop or to follow a link to another server, and the page
 * position it saves in (and resumes from) the checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/paging.h"
#include "util/log.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-paging-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    setenv("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_DIR "/templates", 1);
    setenv("PFT_KEY", "key-0123456789", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    pf_log_clear_secrets();
    return 0;
}

/* A manual flow for URL with PAGINATION (YAML lines under source.pagination)
 * and EXTRA lines under source. */
static pf_flow *manual_flow(const char *url, const char *pagination, const char *extra)
{
    char path[128], text[4096];
    snprintf(text, sizeof text,
             "name: pg\n"
             "source:\n"
             "  template: manual\n"
             "  url: %s\n"
             "  auth:\n"
             "    kind: headers\n"
             "    headers: {X-Api-Key: \"{secret}\"}\n"
             "    secret: ${PFT_KEY}\n"
             "  records: $.items[*]\n"
             "  pagination:\n"
             "%s"
             "%s"
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             url, pagination, extra ? extra : "");
    snprintf(path, sizeof path, "%s/flow.yaml", tmpdir);
    write_file(path, text);
    pf_flow *f = NULL;
    pf_diags d = {0};
    if (pf_flow_load(path, NULL, 0, &f, &d) != PF_OK)
        fail_msg("flow does not load: %s:%d:%d: %s", d.items[0].file, d.items[0].line,
                 d.items[0].col, d.items[0].msg);
    pf_diags_free(&d);
    return f;
}

/* The URL of the request for page P of F. */
static void url_of(const pf_flow *f, const pf_pager *p, char *out, size_t n)
{
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_int_equal(pf_pager_apply(p, f, &req, &e), PF_OK);
    snprintf(out, n, "%s", pf_buf_str(&req.url));
    pf_request_free(&req);
}

static void test_page_size_short_page_ends(void **state)
{
    (void)state;
    pf_flow *f =
        manual_flow("https://api.example.com/v1/items?x=1", "    kind: page\n    size: 25\n", NULL);
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_true(p.paged);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com/v1/items?x=1&page=1&size=25");
    assert_int_equal(pf_pager_advance(&p, f, "{\"items\":[1]}", 13, 25, 0, url, &e), PF_OK);
    assert_false(p.done);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com/v1/items?x=1&page=2&size=25");
    /* 24 of 25: the last page. */
    assert_int_equal(pf_pager_advance(&p, f, "{\"items\":[2]}", 13, 24, 0, url, &e), PF_OK);
    assert_true(p.done);
    assert_int_equal(p.pages, 2);
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_empty_page_and_no_data_end_the_unit(void **state)
{
    (void)state;
    pf_flow *f =
        manual_flow("https://api.example.com/v1/items", "    kind: page\n    size: 2\n", NULL);
    pf_pager p;
    pf_error e;
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_int_equal(pf_pager_advance(&p, f, "{\"items\":[1,2]}", 15, 2, 0, "", &e), PF_OK);
    assert_false(p.done);
    assert_int_equal(pf_pager_advance(&p, f, "{\"items\":[]}", 12, 0, 0, "", &e), PF_OK);
    assert_true(p.done);
    pf_pager_free(&p);
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_int_equal(pf_pager_advance(&p, f, "", 0, 0, 1, "", &e), PF_OK);
    assert_true(p.done);
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_same_page_twice_is_an_error(void **state)
{
    (void)state;
    pf_flow *f =
        manual_flow("https://api.example.com/v1/items", "    kind: page\n    size: 2\n", NULL);
    pf_pager p;
    pf_error e;
    const char *body = "{\"items\":[1,2]}";
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_int_equal(pf_pager_advance(&p, f, body, strlen(body), 2, 0, "", &e), PF_OK);
    assert_int_equal(pf_pager_advance(&p, f, body, strlen(body), 2, 0, "", &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "page 2 has the same content as the page before it"));
    assert_non_null(strstr(e.msg, "'page'"));
    assert_int_equal(p.number, 2); /* unchanged by the failure */
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_offset_advances_by_records(void **state)
{
    (void)state;
    pf_flow *f = manual_flow("https://api.example.com/v1/items",
                             "    kind: offset\n    offset_param: start\n    limit_param: count\n"
                             "    first: 5\n    size: 10\n",
                             NULL);
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com/v1/items?start=5&count=10");
    assert_int_equal(pf_pager_advance(&p, f, "[1]", 3, 10, 0, url, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com/v1/items?start=15&count=10");
    assert_int_equal(pf_pager_advance(&p, f, "[2]", 3, 3, 0, url, &e), PF_OK);
    assert_true(p.done);
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_cursor_token_from_the_response(void **state)
{
    (void)state;
    pf_flow *f = manual_flow("https://api.example.com/v1/items",
                             "    kind: cursor\n    cursor_param: after\n    size_param: n\n"
                             "    size: 50\n    from: $.meta.next\n",
                             NULL);
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com/v1/items?n=50");
    const char *b1 = "{\"items\":[1],\"meta\":{\"next\":\"a b/c\"}}";
    assert_int_equal(pf_pager_advance(&p, f, b1, strlen(b1), 1, 0, url, &e), PF_OK);
    assert_false(p.done);
    url_of(f, &p, url, sizeof url);
    /* The token is percent-encoded as a query value (no raw space or slash). */
    assert_true(strncmp(url, "https://api.example.com/v1/items?after=a", 40) == 0);
    assert_null(strchr(url, ' '));
    assert_null(strstr(url, "a b/c"));
    assert_non_null(strstr(url, "&n=50"));
    /* The same token again: the server would loop. */
    assert_int_equal(pf_pager_advance(&p, f, b1, strlen(b1), 1, 0, url, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "same cursor again"));
    /* A number is a token too; null ends the unit. */
    const char *b2 = "{\"items\":[1],\"meta\":{\"next\":42}}";
    assert_int_equal(pf_pager_advance(&p, f, b2, strlen(b2), 1, 0, url, &e), PF_OK);
    assert_string_equal(p.token, "42");
    const char *b3 = "{\"items\":[1],\"meta\":{\"next\":null}}";
    assert_int_equal(pf_pager_advance(&p, f, b3, strlen(b3), 1, 0, url, &e), PF_OK);
    assert_true(p.done);
    pf_pager_free(&p);
    /* An object where the token should be is an error, not a guess. */
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    const char *b4 = "{\"items\":[1],\"meta\":{\"next\":{\"x\":1}}}";
    assert_int_equal(pf_pager_advance(&p, f, b4, strlen(b4), 1, 0, url, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "$.meta.next"));
    const char *b5 = "{\"items\":[1],\"meta\":{\"next\":";
    assert_int_equal(pf_pager_advance(&p, f, b5, strlen(b5), 1, 0, url, &e), PF_EDATA);
    pf_pager_free(&p);
    pf_flow_free(f);
}

/* A token or link holding a NUL (JSON \u0000) is refused, naming the path,
 * never cut at the NUL: "abc\0def" cut would be the token "abc". */
/* A ${VAR} value in the query is redacted, but only a credential-like
 * parameter's value stops a next link that echoes it from being kept: a
 * page size or a filter from the environment does not fail the run. */
static void test_env_values_echoed_in_links(void **state)
{
    (void)state;
    setenv("PFT_FILTER", "severity-high-only", 1);
    setenv("PFT_TOKEN", "tok-9876543210", 1);
    pf_flow *f = manual_flow("https://api.example.com/v1/items",
                             "    kind: next_link\n    from: $.links.next\n",
                             "  query: {filter: \"${PFT_FILTER}\", api_token: \"${PFT_TOKEN}\"}\n");
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    /* Redacted in what ppflow prints, as every ${VAR} value of a query. */
    char red[128];
    pf_log_redact("filter=severity-high-only", red, sizeof red);
    assert_string_equal(red, "filter=***");
    const char *plain = "{\"links\":{\"next\":\"/v1/items?page=2&filter=severity-high-only\"}}";
    assert_int_equal(pf_pager_advance(&p, f, plain, strlen(plain), 1, 0, url, &e), PF_OK);
    assert_string_equal(p.token, "https://api.example.com/v1/items?page=2&filter=severity-high-only");
    const char *cred = "{\"links\":{\"next\":\"/v1/items?page=3&api_token=tok-9876543210\"}}";
    pf_error_clear(&e);
    assert_int_equal(pf_pager_advance(&p, f, cred, strlen(cred), 1, 0, url, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "credentials"));
    assert_null(strstr(e.msg, "tok-9876543210"));
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_nul_in_token_or_link_is_refused(void **state)
{
    (void)state;
    pf_flow *f = manual_flow("https://api.example.com/v1/items",
                             "    kind: cursor\n    cursor_param: after\n    from: $.meta.next\n",
                             NULL);
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    const char *ok = "{\"items\":[1],\"meta\":{\"next\":\"abc\"}}";
    assert_int_equal(pf_pager_advance(&p, f, ok, strlen(ok), 1, 0, url, &e), PF_OK);
    assert_string_equal(p.token, "abc");
    static const char *const bad[] = {
        "{\"items\":[1],\"meta\":{\"next\":\"abc\\u0000def\"}}", /* in the middle */
        "{\"items\":[1],\"meta\":{\"next\":\"\\u0000abc\"}}",    /* first: "" when cut */
        "{\"items\":[1],\"meta\":{\"next\":\"abd\\u0000\"}}",    /* last */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pf_error_clear(&e);
        assert_int_equal(pf_pager_advance(&p, f, bad[i], strlen(bad[i]), 1, 0, url, &e),
                         PF_EDATA);
        assert_non_null(strstr(e.msg, "$.meta.next"));
        assert_non_null(strstr(e.msg, "NUL"));
        /* Unchanged: the next page is still the one after "abc"; not done. */
        assert_string_equal(p.token, "abc");
        assert_false(p.done);
    }
    pf_pager_free(&p);
    pf_flow_free(f);

    f = manual_flow("https://api.example.com/v1/items",
                    "    kind: next_link\n    from: $.links.next\n", NULL);
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    const char *link = "{\"items\":[1],\"links\":{\"next\":\"/v1/items?page=2\\u0000x\"}}";
    pf_error_clear(&e);
    assert_int_equal(pf_pager_advance(&p, f, link, strlen(link), 1, 0, url, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "$.links.next"));
    assert_non_null(strstr(e.msg, "next link"));
    assert_null(p.token);
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_next_link_resolution_and_same_server_rule(void **state)
{
    (void)state;
    pf_flow *f = manual_flow("https://api.example.com:8443/v1/items?per=10",
                             "    kind: next_link\n    from: $.links.next\n", NULL);
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com:8443/v1/items?per=10");
    const char *b1 = "{\"items\":[1],\"links\":{\"next\":\"/v1/items?per=10&page=2\"}}";
    assert_int_equal(pf_pager_advance(&p, f, b1, strlen(b1), 1, 0, url, &e), PF_OK);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://api.example.com:8443/v1/items?per=10&page=2");
    /* Relative to the current URL. */
    const char *b2 = "{\"items\":[1],\"links\":{\"next\":\"items?page=3\"}}";
    assert_int_equal(pf_pager_advance(&p, f, b2, strlen(b2), 1, 0, url, &e), PF_OK);
    assert_string_equal(p.token, "https://api.example.com:8443/v1/items?page=3");
    /* Another host, scheme or port: refused (credentials would follow). */
    const char *bad[] = {"{\"links\":{\"next\":\"https://evil.example/v1/items\"}}",
                         "{\"links\":{\"next\":\"http://api.example.com:8443/v1/items\"}}",
                         "{\"links\":{\"next\":\"https://api.example.com/v1/items\"}}",
                         "{\"links\":{\"next\":\"//evil.example/x\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pf_error_clear(&e);
        assert_int_equal(pf_pager_advance(&p, f, bad[i], strlen(bad[i]), 1, 0, url, &e), PF_EDATA);
        assert_non_null(strstr(e.msg, "another server"));
        assert_string_equal(p.token, "https://api.example.com:8443/v1/items?page=3");
    }
    /* A link that carries the flow's secret is never stored. */
    const char *b3 = "{\"links\":{\"next\":\"/v1/items?page=4&key=key-0123456789\"}}";
    assert_int_equal(pf_pager_advance(&p, f, b3, strlen(b3), 1, 0, url, &e), PF_EDATA);
    assert_non_null(strstr(e.msg, "credentials"));
    /* No link: done. */
    const char *b4 = "{\"items\":[1],\"links\":{}}";
    assert_int_equal(pf_pager_advance(&p, f, b4, strlen(b4), 1, 0, url, &e), PF_OK);
    assert_true(p.done);
    pf_pager_free(&p);
    pf_flow_free(f);
}

static void test_unset_size_parameter_means_one_request(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/lm.yaml", tmpdir);
    write_file(path, "name: lm\n"
                     "source:\n"
                     "  template: trap-list-members\n"
                     "  base_url: https://ptr.example\n"
                     "  auth:\n"
                     "    secret: ${PFT_KEY}\n"
                     "  params: {list_id: 3}\n"
                     "sink: {type: ndjson, path: out.ndjson}\n"
                     "state: {path: s.json}\n");
    pf_flow *f = NULL;
    pf_diags d = {0};
    assert_int_equal(pf_flow_load(path, NULL, 0, &f, &d), PF_OK);
    pf_pager p;
    pf_error e;
    char url[512];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_false(p.paged);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://ptr.example/api/lists/3/members.json");
    assert_int_equal(pf_pager_advance(&p, f, "[1,2,3]", 7, 3, 0, url, &e), PF_OK);
    assert_true(p.done);
    pf_pager_free(&p);
    pf_flow_free(f);
    /* With page_size, pages of that size. */
    pf_flow_override o = {"page_size", "2"};
    assert_int_equal(pf_flow_load(path, &o, 1, &f, &d), PF_OK);
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_true(p.paged);
    url_of(f, &p, url, sizeof url);
    assert_string_equal(url, "https://ptr.example/api/lists/3/members.json?page=1&size=2");
    pf_pager_free(&p);
    pf_flow_free(f);
    pf_diags_free(&d);
}

static void test_checkpoint_round_trip_and_resume(void **state)
{
    (void)state;
    pf_flow *f = manual_flow("https://api.example.com/v1/items",
                             "    kind: cursor\n    cursor_param: c\n    from: $.next\n", NULL);
    pf_pager p;
    pf_error e;
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    const char *b = "{\"items\":[1],\"next\":\"tok-\\u00e9\"}";
    assert_int_equal(pf_pager_advance(&p, f, b, strlen(b), 1, 0, "", &e), PF_OK);
    pf_state st = {0};
    st.has_cursor = 1;
    st.cursor_ms = INT64_C(1795305600000);
    assert_int_equal(pf_pager_save(&p, &st, INT64_C(1795309200000)), PF_OK);
    char *json = NULL;
    assert_int_equal(pf_state_to_json(&st, "pg", 0, &json, &e), PF_OK);
    assert_non_null(strstr(json, "\"cursor\":{\"time\":\"2026-11-22T00:00:00Z\","
                                 "\"window_end\":\"2026-11-22T01:00:00Z\","
                                 "\"token\":\"tok-\xc3\xa9\"}"));
    pf_state back = {0};
    assert_int_equal(pf_state_parse(json, strlen(json), "s.json", &back, &e), PF_OK);
    assert_string_equal(back.page_kind, "token");
    assert_string_equal(back.page_token, "tok-\xc3\xa9");
    assert_true(back.has_cursor);
    assert_int_equal(back.cursor_ms, INT64_C(1795305600000));
    assert_int_equal(back.page_window_end_ms, INT64_C(1795309200000));
    pf_pager q;
    assert_int_equal(pf_pager_init(&q, f, &e), PF_OK);
    assert_int_equal(pf_pager_resume(&q, f, &back, &e), PF_OK);
    assert_string_equal(q.token, "tok-\xc3\xa9");
    pf_pager_free(&q);
    /* A finished unit clears the position: the next run starts at page 1. */
    const char *end = "{\"items\":[1]}";
    assert_int_equal(pf_pager_advance(&p, f, end, strlen(end), 1, 0, "", &e), PF_OK);
    assert_int_equal(pf_pager_save(&p, &st, 0), PF_OK);
    assert_null(st.page_kind);
    free(json);
    assert_int_equal(pf_state_to_json(&st, "pg", 0, &json, &e), PF_OK);
    assert_non_null(strstr(json, "\"cursor\":\"2026-11-22T00:00:00Z\""));
    free(json);
    pf_pager_free(&p);
    pf_state_free(&st);
    pf_state_free(&back);
    pf_flow_free(f);
}

static void test_resume_refuses_another_kind_and_bad_values(void **state)
{
    (void)state;
    pf_flow *f =
        manual_flow("https://api.example.com/v1/items", "    kind: page\n    size: 5\n", NULL);
    pf_pager p;
    pf_error e;
    pf_state st = {0};
    st.page_kind = strdup("offset");
    st.page_number = 40;
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_int_equal(pf_pager_resume(&p, f, &st, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "'offset' page position"));
    assert_int_equal(p.number, 1);
    pf_state_set_str(&st.page_kind, "page");
    st.page_number = 7;
    assert_int_equal(pf_pager_resume(&p, f, &st, &e), PF_OK);
    assert_int_equal(p.number, 7);
    pf_pager_free(&p);
    pf_state_free(&st);
    pf_flow_free(f);
    /* A saved next link to another server is refused too. */
    f = manual_flow("https://api.example.com/v1/items", "    kind: next_link\n    from: $.n\n",
                    NULL);
    memset(&st, 0, sizeof st);
    st.page_kind = strdup("next");
    st.page_token = strdup("https://evil.example/v1/items?page=2");
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    assert_int_equal(pf_pager_resume(&p, f, &st, &e), PF_ESTATE);
    assert_null(p.token);
    pf_pager_free(&p);
    pf_state_free(&st);
    pf_flow_free(f);
    /* Malformed page positions in a checkpoint file. */
    const char *bad[] = {"{\"version\":1,\"cursor\":{\"page\":\"3\"}}",
                         "{\"version\":1,\"cursor\":{\"page\":-1}}",
                         "{\"version\":1,\"cursor\":{\"token\":5}}",
                         "{\"version\":1,\"cursor\":{\"time\":\"yesterday\",\"page\":2}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pf_state s = {0};
        assert_int_equal(pf_state_parse(bad[i], strlen(bad[i]), "s.json", &s, &e), PF_ESTATE);
        assert_non_null(strstr(e.msg, "cursor"));
        pf_state_free(&s);
    }
}

static void test_describe(void **state)
{
    (void)state;
    pf_flow *f =
        manual_flow("https://api.example.com/v1/items", "    kind: offset\n    size: 5\n", NULL);
    pf_pager p;
    pf_error e;
    char buf[64];
    assert_int_equal(pf_pager_init(&p, f, &e), PF_OK);
    pf_pager_describe(&p, buf, sizeof buf);
    assert_string_equal(buf, "offset 0");
    pf_pager_describe(NULL, buf, sizeof buf);
    assert_string_equal(buf, "");
    pf_pager_free(&p);
    pf_flow_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_size_short_page_ends),
        cmocka_unit_test(test_empty_page_and_no_data_end_the_unit),
        cmocka_unit_test(test_same_page_twice_is_an_error),
        cmocka_unit_test(test_offset_advances_by_records),
        cmocka_unit_test(test_cursor_token_from_the_response),
        cmocka_unit_test(test_nul_in_token_or_link_is_refused),
        cmocka_unit_test(test_env_values_echoed_in_links),
        cmocka_unit_test(test_next_link_resolution_and_same_server_rule),
        cmocka_unit_test(test_unset_size_parameter_means_one_request),
        cmocka_unit_test(test_checkpoint_round_trip_and_resume),
        cmocka_unit_test(test_resume_refuses_another_kind_and_bad_values),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
