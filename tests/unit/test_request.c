/* test_request.c: building the HTTP request for a flow and a time window
 * (URL, query encoding, list parameters, credentials, headers, url_path
 * parameters, base URL placeholders, request bodies). */
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

#include "engine/request.h"
#include "util/log.h"

#define HOUR INT64_C(3600000)
/* 2026-11-22T00:00:00Z */
#define T0 INT64_C(1795305600000)

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-request-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    setenv("PPFLOW_TEMPLATE_PATH", PPFLOW_SOURCE_DIR "/templates", 1);
    setenv("PFT_SECRET", "pa:ss w0rd", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    pf_log_clear_secrets();
    return 0;
}

/* Loads a tap-siem-all flow with BASE_URL (NULL: the template's) and PARAMS
 * (lines under source.params). */
static pf_flow *siem_flow(const char *base_url, const char *params)
{
    char path[128], text[2048], base[256] = "";
    if (base_url) snprintf(base, sizeof base, "  base_url: %s\n", base_url);
    snprintf(text, sizeof text,
             "name: req-test\n"
             "source:\n"
             "  template: tap-siem-all\n"
             "%s"
             "  allow_insecure_http: true\n"
             "  auth:\n"
             "    principal: svc-principal\n"
             "    secret: ${PFT_SECRET}\n"
             "  params:\n"
             "%s"
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             base, params);
    snprintf(path, sizeof path, "%s/flow.yaml", tmpdir);
    write_file(path, text);
    pf_flow *f = NULL;
    pf_diags d = {0};
    pf_status st = pf_flow_load(path, NULL, 0, &f, &d);
    if (st != PF_OK)
        fail_msg("flow does not load: %s:%d:%d: %s", d.items[0].file, d.items[0].line,
                 d.items[0].col, d.items[0].msg);
    pf_diags_free(&d);
    return f;
}

/* ---- URL decoding, independent of the code under test ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Percent-decodes N bytes of S into OUT (size CAP). Fails the test on a bad escape. */
static void pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) fail_msg("truncated escape in '%.*s'", (int)n, s);
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) fail_msg("bad escape in '%.*s'", (int)n, s);
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap) fail_msg("decoded value too long");
        out[o++] = c;
    }
    out[o] = '\0';
}

typedef struct query {
    char base[512]; /* everything before '?' */
    char raw[16][256];
    char name[16][128];
    char value[16][256];
    int n;
} query;

/* Splits URL into its base and decoded query pairs. */
static void parse_url(const char *url, query *q)
{
    memset(q, 0, sizeof *q);
    const char *qm = strchr(url, '?');
    size_t bl = qm ? (size_t)(qm - url) : strlen(url);
    assert_true(bl < sizeof q->base);
    memcpy(q->base, url, bl);
    if (!qm) return;
    assert_null(strchr(url, '#'));
    for (const char *p = qm + 1; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        assert_non_null(eq);
        assert_true(q->n < 16);
        snprintf(q->raw[q->n], sizeof q->raw[0], "%.*s", (int)(len - (size_t)(eq + 1 - p)), eq + 1);
        pct_decode(p, (size_t)(eq - p), q->name[q->n], sizeof q->name[0]);
        pct_decode(eq + 1, len - (size_t)(eq + 1 - p), q->value[q->n], sizeof q->value[0]);
        q->n++;
        if (!amp) break;
        p = amp + 1;
    }
}

static int count_param(const query *q, const char *name)
{
    int n = 0;
    for (int i = 0; i < q->n; i++)
        n += strcmp(q->name[i], name) == 0;
    return n;
}

static void test_siem_all_request_with_window(void **state)
{
    (void)state;
    pf_flow *f = siem_flow(NULL, "    threat_status: [active, falsePositive]\n");
    pf_window w = {T0, T0 + HOUR};
    pf_request req = {0};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_request_build(f, &w, &req, &e), PF_OK);
    assert_string_equal(req.method, "GET");

    query q;
    parse_url(pf_buf_str(&req.url), &q);
    assert_string_equal(q.base, "https://tap-api-v2.proofpoint.com/v2/siem/all");
    /* In template order: format, threatStatus (repeated), then the window. */
    assert_int_equal(q.n, 4);
    assert_string_equal(q.name[0], "format");
    assert_string_equal(q.value[0], "json");
    assert_string_equal(q.name[1], "threatStatus");
    assert_string_equal(q.value[1], "active");
    assert_string_equal(q.name[2], "threatStatus");
    assert_string_equal(q.value[2], "falsePositive");
    assert_string_equal(q.name[3], "interval");
    assert_string_equal(q.value[3], "2026-11-22T00:00:00Z/2026-11-22T01:00:00Z");
    /* The interval's ':' and '/' are percent-encoded in the URL itself. */
    assert_null(strpbrk(q.raw[3], ":/"));
    assert_int_equal(count_param(&q, "threatType"), 0); /* unset: left out */

    /* HTTP Basic from the flow's credentials; the Accept header. */
    assert_non_null(req.user);
    assert_string_equal(req.user, "svc-principal");
    assert_string_equal(req.pass, "pa:ss w0rd");
    assert_int_equal(req.nheaders, 1);
    assert_string_equal(req.headers[0], "Accept: application/json");
    assert_null(req.headers[1]);
    /* The secret never goes into the URL. */
    assert_null(strstr(pf_buf_str(&req.url), "w0rd"));
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_window_bounds_with_milliseconds(void **state)
{
    (void)state;
    pf_flow *f = siem_flow(NULL, "    threat_type: [url, attachment, messageText]\n");
    pf_window w = {T0 + 500, T0 + HOUR + 250};
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, &w, &req, &e), PF_OK);
    query q;
    parse_url(pf_buf_str(&req.url), &q);
    assert_int_equal(count_param(&q, "threatType"), 3);
    assert_int_equal(count_param(&q, "threatStatus"), 0);
    assert_string_equal(q.value[q.n - 1], "2026-11-22T00:00:00.500Z/2026-11-22T01:00:00.250Z");
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_no_window_no_interval(void **state)
{
    (void)state;
    pf_flow *f = siem_flow(NULL, "    since_seconds: 60\n");
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    query q;
    parse_url(pf_buf_str(&req.url), &q);
    assert_int_equal(count_param(&q, "interval"), 0);
    assert_int_equal(count_param(&q, "format"), 1);
    /* since_seconds is not a query parameter of the API. */
    assert_int_equal(count_param(&q, "since_seconds"), 0);
    assert_int_equal(q.n, 1);
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_base_url_with_path_prefix(void **state)
{
    (void)state;
    static const char *const bases[] = {"http://127.0.0.1:8080/proxy/tap",
                                        "http://127.0.0.1:8080/proxy/tap/"};
    for (size_t i = 0; i < 2; i++) {
        pf_flow *f = siem_flow(bases[i], "    since_seconds: 60\n");
        pf_window w = {T0, T0 + HOUR};
        pf_request req = {0};
        pf_error e;
        assert_int_equal(pf_request_build(f, &w, &req, &e), PF_OK);
        query q;
        parse_url(pf_buf_str(&req.url), &q);
        assert_string_equal(q.base, "http://127.0.0.1:8080/proxy/tap/v2/siem/all");
        assert_int_equal(count_param(&q, "interval"), 1);
        pf_request_free(&req);
        pf_flow_free(f);
    }
}

/* A template with a path parameter and header authentication. */
static const char header_template[] = "name: hdr-api\n"
                                      "request:\n"
                                      "  base_url: https://api.example.com/base\n"
                                      "  path: /v1/{account}/events\n"
                                      "  query:\n"
                                      "    q: \"{filter}\"\n"
                                      "    tags: \"{tags}\"\n"
                                      "    both: \"{filter}-{tags}\"\n"
                                      "  headers:\n"
                                      "    X-Filter: \"f={filter}\"\n"
                                      "auth:\n"
                                      "  kind: headers\n"
                                      "  headers:\n"
                                      "    Authorization: \"Bearer {secret}\"\n"
                                      "    X-User: \"{principal}\"\n"
                                      "params:\n"
                                      "  account:\n"
                                      "    type: string\n"
                                      "  filter:\n"
                                      "    type: string\n"
                                      "  tags:\n"
                                      "    type: list\n"
                                      "streams:\n"
                                      "  events:\n"
                                      "    path: $.events[*]\n";

static pf_flow *header_flow(const char *params)
{
    char tpath[128], fpath[128], text[2048];
    snprintf(tpath, sizeof tpath, "%s/hdr-api.yaml", tmpdir);
    write_file(tpath, header_template);
    snprintf(text, sizeof text,
             "name: hdr-test\n"
             "source:\n"
             "  template: %s\n"
             "  auth:\n"
             "    principal: me@example.com\n"
             "    secret: ${PFT_SECRET}\n"
             "  params:\n"
             "%s"
             "sink:\n"
             "  type: ndjson\n"
             "  path: out.ndjson\n"
             "state:\n"
             "  path: s.json\n",
             tpath, params);
    snprintf(fpath, sizeof fpath, "%s/hdr-flow.yaml", tmpdir);
    write_file(fpath, text);
    pf_flow *f = NULL;
    pf_diags d = {0};
    if (pf_flow_load(fpath, NULL, 0, &f, &d) != PF_OK)
        fail_msg("flow does not load: %s:%d:%d: %s", d.items[0].file, d.items[0].line,
                 d.items[0].col, d.items[0].msg);
    pf_diags_free(&d);
    return f;
}

static void test_path_placeholder_and_header_auth(void **state)
{
    (void)state;
    pf_flow *f = header_flow("    account: \"a b/c\"\n"
                             "    tags: [x, y]\n");
    pf_request req = {0};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    query q;
    parse_url(pf_buf_str(&req.url), &q);
    /* The path value is percent-encoded: its '/' does not add a path segment. */
    assert_string_equal(q.base, "https://api.example.com/base/v1/a%20b%2Fc/events");
    /* filter unset: q, both and X-Filter are left out; tags repeated. */
    assert_int_equal(q.n, 2);
    assert_string_equal(q.name[0], "tags");
    assert_string_equal(q.value[0], "x");
    assert_string_equal(q.value[1], "y");
    /* Header auth: no Basic credentials, the headers carry them. */
    assert_null(req.user);
    assert_null(req.pass);
    assert_int_equal(req.nheaders, 2);
    assert_string_equal(req.headers[0], "Authorization: Bearer pa:ss w0rd");
    assert_string_equal(req.headers[1], "X-User: me@example.com");
    pf_request_free(&req);
    pf_flow_free(f);

    /* With filter set, a list inside a larger value is joined with commas. */
    f = header_flow("    account: acct\n"
                    "    filter: \"k=v&x\"\n"
                    "    tags: [x, y]\n");
    memset(&req, 0, sizeof req);
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    parse_url(pf_buf_str(&req.url), &q);
    assert_int_equal(q.n, 4);
    assert_string_equal(q.name[0], "q");
    assert_string_equal(q.value[0], "k=v&x"); /* '&' and '=' encoded, not split */
    assert_string_equal(q.name[3], "both");
    assert_string_equal(q.value[3], "k=v&x-x,y");
    assert_int_equal(req.nheaders, 3);
    assert_string_equal(req.headers[0], "X-Filter: f=k=v&x");
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_unset_path_placeholder_is_an_error(void **state)
{
    (void)state;
    pf_flow *f = header_flow("    filter: x\n");
    pf_request req = {0};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_ECONFIG);
    assert_non_null(strstr(e.msg, "/v1/{account}/events"));
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_header_with_line_break_is_refused(void **state)
{
    (void)state;
    /* A parameter value cannot smuggle a second header. */
    pf_flow *f = header_flow("    account: acct\n"
                             "    filter: \"a\\r\\nX-Evil: 1\"\n");
    pf_request req = {0};
    pf_error e;
    pf_error_clear(&e);
    pf_status st = pf_request_build(f, NULL, &req, &e);
    assert_int_not_equal(st, PF_OK);
    for (size_t i = 0; i < req.nheaders; i++)
        assert_null(strstr(req.headers[i], "X-Evil"));
    pf_request_free(&req);
    pf_flow_free(f);
}

/* Loads flow TEXT (written to the scratch directory). */
static pf_flow *load_text(const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/flow2.yaml", tmpdir);
    write_file(path, text);
    pf_flow *f = NULL;
    pf_diags d = {0};
    if (pf_flow_load(path, NULL, 0, &f, &d) != PF_OK)
        fail_msg("flow does not load: %s:%d:%d: %s", d.items[0].file, d.items[0].line,
                 d.items[0].col, d.items[0].msg);
    pf_diags_free(&d);
    return f;
}

#define SINK_STATE "sink:\n  type: ndjson\n  path: out.ndjson\nstate:\n  path: s.json\n"

static void test_url_path_parameter_keeps_its_slashes(void **state)
{
    (void)state;
    pf_flow *f = load_text("name: casb\n"
                           "source:\n"
                           "  template: casb-alerts\n"
                           "  base_url: https://casb.example/tenant-7\n"
                           "  auth:\n"
                           "    secret: ${PFT_SECRET}\n"
                           "  params:\n"
                           "    alerts_path: /v2/alert-feed\n"
                           "    status: open\n" SINK_STATE);
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_string_equal(pf_buf_str(&req.url),
                        "https://casb.example/tenant-7/v2/alert-feed?limit=100&status=open");
    assert_int_equal(req.nheaders, 2);
    assert_string_equal(req.headers[1], "Authorization: Bearer pa:ss w0rd");
    assert_null(req.body);
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_essentials_host_and_header_pair(void **state)
{
    (void)state;
    pf_flow *f = load_text("name: ess\n"
                           "source:\n"
                           "  template: essentials-users\n"
                           "  auth:\n"
                           "    principal: admin@corp.example\n"
                           "    secret: ${PFT_SECRET}\n"
                           "  params:\n"
                           "    org: corp.example\n"
                           "    stack: us3\n" SINK_STATE);
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_string_equal(pf_buf_str(&req.url),
                        "https://us3.proofpointessentials.com/api/v1/orgs/corp.example/users");
    assert_null(req.user);
    assert_int_equal(req.nheaders, 3);
    assert_string_equal(req.headers[1], "X-User: admin@corp.example");
    assert_string_equal(req.headers[2], "X-Password: pa:ss w0rd");
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_raw_key_auth_and_encoded_path_values(void **state)
{
    (void)state;
    pf_flow *f = load_text("name: eti\n"
                           "source:\n"
                           "  template: eti-domain\n"
                           "  auth:\n"
                           "    secret: ${PFT_SECRET}\n"
                           "  params:\n"
                           "    domain: \"a b/c.example\"\n"
                           "    resource: ips\n" SINK_STATE);
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_string_equal(pf_buf_str(&req.url),
                        "https://api.emergingthreats.net/v1/domains/a%20b%2Fc.example/ips");
    assert_string_equal(req.headers[1], "Authorization: pa:ss w0rd");
    pf_request_free(&req);
    pf_flow_free(f);
}

static void test_manual_post_body_is_literal(void **state)
{
    (void)state;
    pf_flow *f = load_text("name: m\n"
                           "source:\n"
                           "  template: manual\n"
                           "  url: https://api.example.com/v1/search?q={raw}\n"
                           "  method: POST\n"
                           "  headers:\n"
                           "    Content-Type: application/json\n"
                           "  body: '{\"tag\": \"{x}\"}'\n"
                           "  auth:\n"
                           "    kind: basic\n"
                           "    principal: me\n"
                           "    secret: ${PFT_SECRET}\n" SINK_STATE);
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_string_equal(req.method, "POST");
    assert_non_null(req.body);
    assert_int_equal(req.body_len, strlen("{\"tag\": \"{x}\"}"));
    assert_string_equal(req.body, "{\"tag\": \"{x}\"}");
    assert_string_equal(req.user, "me");
    assert_string_equal(req.pass, "pa:ss w0rd");
    assert_string_equal(req.headers[0], "Content-Type: application/json");
    assert_non_null(strstr(pf_buf_str(&req.url), "/v1/search?q="));
    pf_request_free(&req);
    assert_null(req.body);
    pf_flow_free(f);
}

static void test_template_body_placeholders(void **state)
{
    (void)state;
    char tpath[128], text[1024];
    snprintf(tpath, sizeof tpath, "%s/bodytpl.yaml", tmpdir);
    write_file(tpath, "name: bodytpl\n"
                      "request:\n"
                      "  method: POST\n"
                      "  base_url: https://api.example.com\n"
                      "  path: /v1/q\n"
                      "  body: '{{\"n\": {n}, \"who\": \"{who}\"}}'\n"
                      "params:\n"
                      "  n: {type: integer}\n"
                      "  who: {type: string}\n"
                      "streams:\n"
                      "  s: {path: \"$[*]\"}\n");
    snprintf(text, sizeof text,
             "name: b\nsource:\n  template: %s\n  params: {n: 7, who: x}\n" SINK_STATE, tpath);
    pf_flow *f = load_text(text);
    pf_request req = {0};
    pf_error e;
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_string_equal(req.body, "{\"n\": 7, \"who\": \"x\"}");
    pf_request_free(&req);
    pf_flow_free(f);
    /* An unset placeholder leaves the body out. */
    snprintf(text, sizeof text, "name: b\nsource:\n  template: %s\n  params: {n: 7}\n" SINK_STATE,
             tpath);
    f = load_text(text);
    assert_int_equal(pf_request_build(f, NULL, &req, &e), PF_OK);
    assert_null(req.body);
    pf_request_free(&req);
    pf_flow_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siem_all_request_with_window),
        cmocka_unit_test(test_window_bounds_with_milliseconds),
        cmocka_unit_test(test_no_window_no_interval),
        cmocka_unit_test(test_base_url_with_path_prefix),
        cmocka_unit_test(test_path_placeholder_and_header_auth),
        cmocka_unit_test(test_unset_path_placeholder_is_an_error),
        cmocka_unit_test(test_header_with_line_break_is_refused),
        cmocka_unit_test(test_url_path_parameter_keeps_its_slashes),
        cmocka_unit_test(test_essentials_host_and_header_pair),
        cmocka_unit_test(test_raw_key_auth_and_encoded_path_values),
        cmocka_unit_test(test_manual_post_body_is_literal),
        cmocka_unit_test(test_template_body_placeholders),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
