/* test_httpopts.c: a flow's HTTP settings as HTTP client options
 * (src/engine/httpopts.h), the same for `ppflow run` and `ppflow suggest`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <string.h>

#include "engine/httpopts.h"
#include "engine/sample.h"

static pf_flow_http settings(void)
{
    pf_flow_http h;
    memset(&h, 0, sizeof h);
    h.connect_timeout_ms = 7000;
    h.timeout_ms = 120000;
    h.low_speed_time_ms = 60000;
    h.backoff_ms = 250;
    h.backoff_max_ms = 8000;
    h.retry_after_max_ms = 600000;
    h.max_attempts = 3;
    h.max_body = (uint64_t)64 << 20;
    h.max_record = (uint64_t)1 << 20;
    h.verify_tls = 0;
    h.ca_file = "/etc/ca.pem";
    h.client_cert = "/etc/cert.pem";
    h.client_key = "/etc/key.pem";
    return h;
}

static void test_every_setting_is_carried(void **state)
{
    (void)state;
    pf_flow_http h = settings();
    pf_http_opts o, d;
    memset(&o, 0xa5, sizeof o); /* every field is written */
    pf_flow_http_opts(&h, &o);
    pf_http_opts_default(&d);
    assert_int_equal(o.connect_timeout_ms, 7000);
    assert_int_equal(o.timeout_ms, 120000);
    assert_int_equal(o.low_speed_time_s, 60);
    assert_int_equal(o.max_body, (size_t)64 << 20);
    assert_int_equal(o.max_attempts, 3);
    assert_int_equal(o.backoff_base_ms, 250);
    assert_int_equal(o.backoff_max_ms, 8000);
    assert_int_equal(o.retry_after_max_ms, 600000);
    assert_int_equal(o.verify_tls, 0);
    assert_ptr_equal(o.ca_file, h.ca_file);
    assert_ptr_equal(o.client_cert, h.client_cert);
    assert_ptr_equal(o.client_key, h.client_key);
    /* What the flow does not set keeps its default. */
    assert_int_equal(o.low_speed_limit, d.low_speed_limit);
    assert_int_equal(o.jitter, d.jitter);
    assert_null(o.client_key_pass);
    assert_int_equal(o.follow_redirects, d.follow_redirects);
    assert_int_equal(o.max_redirects, d.max_redirects);
    assert_ptr_equal(o.user_agent, d.user_agent);
}

/* libcurl counts the stall time in whole seconds and 0 turns stall
 * detection off: a stall timeout is rounded up, never truncated to 0. */
static void test_stall_timeout_rounds_up(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        long s;
    } cases[] = {
        {0, 0},    {1, 1},       {999, 1},     {1000, 1},
        {1001, 2}, {1500, 2},    {2000, 2},    {59999, 60},
        {-5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pf_flow_http h = settings();
        h.low_speed_time_ms = cases[i].ms;
        pf_http_opts o;
        pf_flow_http_opts(&h, &o);
        if (o.low_speed_time_s != cases[i].s)
            fail_msg("stall timeout %lld ms: %ld s, want %ld s", (long long)cases[i].ms,
                     o.low_speed_time_s, cases[i].s);
    }
    /* The largest settings neither overflow nor wrap. */
    pf_flow_http h = settings();
    h.low_speed_time_ms = INT64_MAX;
    h.max_attempts = INT64_MAX;
    pf_http_opts o;
    pf_flow_http_opts(&h, &o);
    assert_true(o.low_speed_time_s > 0);
    assert_int_equal(o.max_attempts, INT_MAX);
}

/* `ppflow suggest` (pf_sample_http_opts) builds exactly the same options. */
static void test_sample_uses_the_same_options(void **state)
{
    (void)state;
    pf_flow f;
    memset(&f, 0, sizeof f);
    f.http = settings();
    for (int64_t ms = 0; ms <= 3000; ms += 250) {
        f.http.low_speed_time_ms = ms;
        pf_http_opts a, b;
        pf_flow_http_opts(&f.http, &a);
        pf_sample_http_opts(&f, &b);
        assert_int_equal(a.connect_timeout_ms, b.connect_timeout_ms);
        assert_int_equal(a.timeout_ms, b.timeout_ms);
        assert_int_equal(a.low_speed_limit, b.low_speed_limit);
        assert_int_equal(a.low_speed_time_s, b.low_speed_time_s);
        assert_int_equal(a.max_body, b.max_body);
        assert_int_equal(a.max_attempts, b.max_attempts);
        assert_int_equal(a.backoff_base_ms, b.backoff_base_ms);
        assert_int_equal(a.backoff_max_ms, b.backoff_max_ms);
        assert_int_equal(a.retry_after_max_ms, b.retry_after_max_ms);
        assert_int_equal(a.jitter, b.jitter);
        assert_int_equal(a.verify_tls, b.verify_tls);
        assert_ptr_equal(a.ca_file, b.ca_file);
        assert_ptr_equal(a.client_cert, b.client_cert);
        assert_ptr_equal(a.client_key, b.client_key);
        assert_ptr_equal(a.client_key_pass, b.client_key_pass);
        assert_int_equal(a.follow_redirects, b.follow_redirects);
        assert_int_equal(a.max_redirects, b.max_redirects);
        assert_ptr_equal(a.user_agent, b.user_agent);
    }
    f.http.low_speed_time_ms = 1500;
    pf_http_opts o;
    pf_sample_http_opts(&f, &o);
    assert_int_equal(o.low_speed_time_s, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_setting_is_carried),
        cmocka_unit_test(test_stall_timeout_rounds_up),
        cmocka_unit_test(test_sample_uses_the_same_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
