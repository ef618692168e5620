/* test_kafka_sink.c: the Kafka sink plugin against a real Kafka protocol peer.
 *
 * dlopens the built plugin (PF_KAFKA_PLUGIN), drives it through the ABI with
 * a small host of its own (options from a table plus the plugin's defaults,
 * logs captured), produces into librdkafka's mock cluster started in this
 * process, and reads every message back with a real librdkafka consumer.
 * Faults are injected through the mock: brokers down, request errors, topic
 * errors; unreachable brokers are a closed loopback port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ppflow_sink.h"

#ifndef PF_KAFKA_PLUGIN
#error "PF_KAFKA_PLUGIN must name the built plugin"
#endif

static const pf_sink_descriptor *desc;
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mc;
static char bootstraps[512];

/* ---- a minimal host ----------------------------------------------------------- */

#define MAX_OPTS 16
#define LOG_CAP (256 * 1024)

struct pf_sink_host {
    const char *keys[MAX_OPTS];
    const char *vals[MAX_OPTS];
    size_t n;
    char log[LOG_CAP];
    size_t loglen;
};

static const pf_sink_option *find_opt(const char *key)
{
    for (const pf_sink_option *o = desc->options; o->key; o++) {
        size_t l = strlen(o->key);
        if (o->key[l - 1] == '*' ? strncmp(o->key, key, l - 1) == 0 : strcmp(o->key, key) == 0)
            return o;
    }
    return NULL;
}

static const char *h_option(const pf_sink_host *h, const char *key)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->keys[i], key) == 0) return h->vals[i];
    const pf_sink_option *o = find_opt(key);
    return o ? o->default_value : NULL;
}

/* Durations ("20ms", "2s", "2m") in ms, sizes ("1MB", "64KiB", "100") in bytes. */
static int64_t parse_scaled(const char *v, pf_sink_opt_type type)
{
    char *end;
    double x = strtod(v, &end);
    static const struct {
        const char *unit;
        double mul;
        pf_sink_opt_type type;
    } units[] = {{"ms", 1, PF_SINK_OPT_DURATION},    {"s", 1000, PF_SINK_OPT_DURATION},
                 {"m", 60000, PF_SINK_OPT_DURATION}, {"h", 3600000, PF_SINK_OPT_DURATION},
                 {"", 1000, PF_SINK_OPT_DURATION},   {"", 1, PF_SINK_OPT_SIZE},
                 {"B", 1, PF_SINK_OPT_SIZE},         {"KB", 1e3, PF_SINK_OPT_SIZE},
                 {"KiB", 1024, PF_SINK_OPT_SIZE},    {"MB", 1e6, PF_SINK_OPT_SIZE},
                 {"MiB", 1048576, PF_SINK_OPT_SIZE}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (units[i].type == type && strcmp(end, units[i].unit) == 0)
            return (int64_t)(x * units[i].mul);
    fail_msg("test host cannot parse '%s'", v);
    return 0;
}

static int64_t h_option_int(const pf_sink_host *h, const char *key, int64_t def)
{
    const char *v = h_option(h, key);
    const pf_sink_option *o = find_opt(key);
    if (!v || !o) return def;
    switch (o->type) {
    case PF_SINK_OPT_BOOL:
        return strcmp(v, "true") == 0;
    case PF_SINK_OPT_DURATION:
    case PF_SINK_OPT_SIZE:
        return parse_scaled(v, o->type);
    case PF_SINK_OPT_INT:
    case PF_SINK_OPT_STRING:
        return strtoll(v, NULL, 10);
    }
    return def;
}

static void h_log(const pf_sink_host *ch, int level, const char *msg)
{
    pf_sink_host *h = (pf_sink_host *)ch;
    int n = snprintf(h->log + h->loglen, LOG_CAP - h->loglen, "[%d] %s\n", level, msg);
    if (n > 0) h->loglen += (size_t)n < LOG_CAP - h->loglen ? (size_t)n : LOG_CAP - h->loglen - 1;
    if (getenv("PF_TEST_VERBOSE")) fprintf(stderr, "sink log [%d] %s\n", level, msg);
}

static const char *h_flow_name(const pf_sink_host *h)
{
    (void)h;
    return "kafka-test";
}

static const char *h_pending(const pf_sink_host *h)
{
    (void)h;
    return NULL;
}

static void h_with_prefix(const pf_sink_host *h, const char *prefix,
                          void (*fn)(void *ud, const char *key, const char *value), void *ud)
{
    for (size_t i = 0; i < h->n; i++)
        if (strncmp(h->keys[i], prefix, strlen(prefix)) == 0) fn(ud, h->keys[i], h->vals[i]);
}

static const char *h_identity(const pf_sink_host *h, const char *stream)
{
    (void)h;
    (void)stream;
    return "$.id | sha256";
}

static const pf_sink_host_api api = {sizeof(pf_sink_host_api), h_option, h_option_int,
                                     h_log, h_flow_name, h_pending, h_with_prefix, h_identity};

/* A host with the mock's brokers, short timeouts and the KEY, VALUE pairs
 * given (NULL-terminated). */
static pf_sink_host *host_new(const char *first, ...)
{
    pf_sink_host *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->keys[h->n] = "brokers";
    h->vals[h->n++] = bootstraps;
    h->keys[h->n] = "linger";
    h->vals[h->n++] = "5ms";
    va_list ap;
    va_start(ap, first);
    for (const char *k = first; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        size_t i;
        for (i = 0; i < h->n && strcmp(h->keys[i], k) != 0; i++)
            ;
        assert_true(i < MAX_OPTS);
        h->keys[i] = k;
        h->vals[i] = v;
        if (i == h->n) h->n++;
    }
    va_end(ap);
    return h;
}

/* ---- records and reading them back ------------------------------------------- */

typedef struct rec {
    char stream[16];
    char key[80];
    int has_key;
    char json[6000];
} rec;

/* Record I of STREAM, keyed by its identity as the host gives it: the value
 * at a key path ("STREAM-key-I"), or for every seventh record one without
 * that field, "sha256:" and 64 hex digits. Every 50th has no key at all, as
 * hosts that predate stream_identity send it. PAD adds bytes to the value. */
static void make_rec(rec *r, const char *stream, int i, size_t pad)
{
    snprintf(r->stream, sizeof r->stream, "%s", stream);
    r->has_key = i % 50 != 49;
    if (i % 7 == 3)
        snprintf(r->key, sizeof r->key, "sha256:%016x%016x%016x%016x", (unsigned)i * 2654435761u,
                 (unsigned)i, 0xfeedu, (unsigned)stream[0]);
    else
        snprintf(r->key, sizeof r->key, "%s-key-%d", stream, i);
    char padding[5000];
    if (pad >= sizeof padding) pad = sizeof padding - 1;
    memset(padding, 'x', pad);
    padding[pad] = '\0';
    snprintf(r->json, sizeof r->json,
             "{\"stream\":\"%s\",\"n\":%d,\"text\":\"caf\xc3\xa9 \\\"%d\\\"%s\"}", stream, i,
             i * 31, padding);
}

static pf_sink_record as_record(const rec *r)
{
    pf_sink_record s = {r->stream, r->has_key ? r->key : NULL, r->has_key ? strlen(r->key) : 0,
                        r->json, strlen(r->json)};
    return s;
}

static pf_sink_result write_recs(void *st, const rec *recs, size_t n, char *err, size_t errlen)
{
    pf_sink_record *v = calloc(n ? n : 1, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = as_record(&recs[i]);
    pf_sink_result r = desc->write(st, v, n, err, errlen);
    free(v);
    return r;
}

typedef struct msg {
    char *key; /* NULL: no key */
    char *value;
} msg;

typedef struct msgs {
    msg *v;
    size_t n;
} msgs;

static void msgs_free(msgs *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].value);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

/* Every message in TOPIC, read with a real consumer from the beginning of
 * every partition to its end. */
static msgs consume_all(const char *topic)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr),
        RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "pf-test-reader", errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    assert_non_null(rk);

    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    assert_int_equal(md->topics[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    int parts = md->topics[0].partition_cnt;
    assert_true(parts > 0);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);

    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, tp), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tp);

    msgs out = {0};
    size_t cap = 0;
    int eof = 0;
    time_t deadline = time(NULL) + 30;
    while (eof < parts) {
        assert_true(time(NULL) < deadline);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else {
            if (m->err) fail_msg("consumer: %s", rd_kafka_message_errstr(m));
            if (out.n == cap) {
                cap = cap ? cap * 2 : 64;
                out.v = realloc(out.v, cap * sizeof *out.v);
                assert_non_null(out.v);
            }
            msg *g = &out.v[out.n++];
            g->key = m->key ? strndup(m->key, m->key_len) : NULL;
            g->value = strndup(m->payload ? m->payload : "", m->len);
            assert_non_null(g->value);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

/* How often RECS[i] (of STREAM) occurs in GOT; fails on any message that is
 * none of RECS or whose key differs from its record's. */
static void count_matches(const msgs *got, const rec *recs, size_t n, int *count, int use_key)
{
    memset(count, 0, n * sizeof *count);
    for (size_t j = 0; j < got->n; j++) {
        size_t i;
        for (i = 0; i < n && strcmp(recs[i].json, got->v[j].value) != 0; i++)
            ;
        if (i == n) fail_msg("unexpected message %.200s", got->v[j].value);
        if (use_key && recs[i].has_key) {
            assert_non_null(got->v[j].key);
            assert_string_equal(got->v[j].key, recs[i].key);
        } else {
            assert_null(got->v[j].key);
        }
        count[i]++;
    }
}

/* RECS (all of one stream) are in TOPIC exactly once each (AT_LEAST: at least once). */
static void assert_topic_holds(const char *topic, const rec *recs, size_t n, int at_least,
                               int use_key)
{
    msgs got = consume_all(topic);
    int *count = calloc(n ? n : 1, sizeof *count);
    assert_non_null(count);
    count_matches(&got, recs, n, count, use_key);
    for (size_t i = 0; i < n; i++) {
        if (count[i] < 1 || (!at_least && count[i] != 1))
            fail_msg("record %zu of topic %s is there %d times", i, topic, count[i]);
    }
    if (!at_least) assert_int_equal(got.n, n);
    free(count);
    msgs_free(&got);
}

/* ---- fixtures -------------------------------------------------------------------- */

static int setup(void **st)
{
    (void)st;
    void *h = dlopen(PF_KAFKA_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "cannot load %s: %s\n", PF_KAFKA_PLUGIN, dlerror());
        return -1;
    }
    desc = dlsym(h, PF_SINK_SYMBOL);
    if (!desc) return -1;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!mock_rk) return -1;
    mc = rd_kafka_mock_cluster_new(mock_rk, 3);
    if (!mc) return -1;
    snprintf(bootstraps, sizeof bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(mc));
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    if (mock_rk) rd_kafka_destroy(mock_rk);
    /* The plugin stays loaded: librdkafka may still run exit handlers. */
    return 0;
}

/* After each test, also a failed one: every broker up, no injected error left. */
static int restore_cluster(void **st)
{
    (void)st;
    rd_kafka_mock_broker_set_up(mc, -1);
    rd_kafka_mock_clear_request_errors(mc, 0);  /* Produce */
    rd_kafka_mock_clear_request_errors(mc, 3);  /* Metadata */
    rd_kafka_mock_clear_request_errors(mc, 22); /* InitProducerId */
    rd_kafka_mock_set_apiversion(mc, 3, 0, 2);  /* Metadata: the mock's own range */
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next N requests of API fail with CODE. */
static void push_errors(int16_t api_key, size_t n, rd_kafka_resp_err_t code)
{
    rd_kafka_resp_err_t *codes = calloc(n, sizeof *codes);
    assert_non_null(codes);
    for (size_t i = 0; i < n; i++)
        codes[i] = code;
    rd_kafka_mock_push_request_errors_array(mc, api_key, n, codes);
    free(codes);
}

/* A loopback port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Opens with H and expects WANT; returns how long open took (ms) and
 * leaves the message in ERR. */
static int64_t open_expect(pf_sink_host *h, const char *const *streams, size_t n,
                           pf_sink_result want, char *err, size_t errlen)
{
    void *st = (void *)1;
    err[0] = '\0';
    int64_t t0 = mono_ms();
    pf_sink_result r = desc->open(h, &api, streams, n, NULL, &st, err, errlen);
    int64_t took = mono_ms() - t0;
    if (getenv("PF_TEST_VERBOSE"))
        fprintf(stderr, "open answered %d after %lld ms: %s\n", r, (long long)took, err);
    if (r != want) {
        if (r == PF_SINK_OK) desc->close(st);
        fail_msg("open answered %d '%s', expected %d", r, err, want);
    }
    assert_null(st);
    return took;
}

static void *open_ok(pf_sink_host *h, const char *const *streams, size_t n, const char *resume)
{
    void *st = NULL;
    char err[512] = "";
    pf_sink_result r = desc->open(h, &api, streams, n, resume, &st, err, sizeof err);
    if (r != PF_SINK_OK) fail_msg("open: %d %s", r, err);
    assert_non_null(st);
    return st;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_descriptor(void **st)
{
    (void)st;
    assert_int_equal(desc->abi_version, PF_SINK_ABI_VERSION);
    assert_int_equal(desc->struct_size, sizeof(pf_sink_descriptor));
    assert_string_equal(desc->name, "kafka");
    assert_non_null(desc->open);
    assert_non_null(desc->write);
    assert_non_null(desc->commit);
    assert_non_null(desc->close);
    static const struct {
        const char *key;
        pf_sink_opt_type type;
        const char *def;
        int required;
    } want[] = {{"brokers", PF_SINK_OPT_STRING, NULL, 1},
                {"topic", PF_SINK_OPT_STRING, "ppflow.{stream}", 0},
                {"key", PF_SINK_OPT_BOOL, "true", 0},
                {"compression", PF_SINK_OPT_STRING, "lz4", 0},
                {"acks", PF_SINK_OPT_STRING, "all", 0},
                {"linger", PF_SINK_OPT_DURATION, "20ms", 0},
                {"batch_size", PF_SINK_OPT_SIZE, "1MB", 0},
                {"delivery_timeout", PF_SINK_OPT_DURATION, "2m", 0},
                {"preflight_timeout", PF_SINK_OPT_DURATION, "5s", 0},
                {"librdkafka.*", PF_SINK_OPT_STRING, NULL, 0}};
    size_t n = 0;
    for (const pf_sink_option *o = desc->options; o->key; o++, n++) {
        assert_true(n < sizeof want / sizeof want[0]);
        assert_string_equal(o->key, want[n].key);
        assert_int_equal(o->type, want[n].type);
        if (want[n].def)
            assert_string_equal(o->default_value, want[n].def);
        else
            assert_null(o->default_value);
        assert_int_equal(o->required, want[n].required);
        assert_non_null(o->description);
        assert_true(strlen(o->description) > 10);
    }
    assert_int_equal(n, sizeof want / sizeof want[0]);
}

static void test_round_trip_is_exact(void **st)
{
    (void)st;
    enum { NA = 700, NB = 300, NC = 50 };
    static rec a[NA + NC], b[NB];
    for (int i = 0; i < NA + NC; i++)
        make_rec(&a[i], "alpha", i, (size_t)(i % 5) * 100);
    for (int i = 0; i < NB; i++)
        make_rec(&b[i], "beta", i, 0);
    pf_sink_host *h = host_new("topic", "rt.{stream}.v1", NULL);
    const char *streams[] = {"alpha", "beta"};
    void *s = open_ok(h, streams, 2, NULL);
    char err[512] = "";
    const char *token = NULL;
    /* Batches of mixed streams, as the engine sends them. */
    for (int k = 0; k < 7; k++) {
        assert_int_equal(write_recs(s, a + k * 100, 100, err, sizeof err), PF_SINK_OK);
        assert_int_equal(
            write_recs(s, b + k * NB / 7, (size_t)((k + 1) * NB / 7 - k * NB / 7), err, sizeof err),
            PF_SINK_OK);
    }
    assert_int_equal(desc->commit(s, &token, err, sizeof err), PF_SINK_OK);
    assert_string_equal(token, "{\"sink\":\"kafka\",\"messages\":1000,\"commits\":1}");
    assert_int_equal(write_recs(s, a + NA, NC, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &token, err, sizeof err), PF_SINK_OK);
    assert_string_equal(token, "{\"sink\":\"kafka\",\"messages\":1050,\"commits\":2}");
    /* A commit with nothing written is durable at once. */
    assert_int_equal(desc->commit(s, &token, err, sizeof err), PF_SINK_OK);
    assert_string_equal(token, "{\"sink\":\"kafka\",\"messages\":1050,\"commits\":3}");
    desc->close(s);

    assert_topic_holds("rt.alpha.v1", a, NA + NC, 0, 1);
    assert_topic_holds("rt.beta.v1", b, NB, 0, 1);

    /* The token carries the counts into the next run. */
    s = open_ok(h, streams, 2, "{\"sink\":\"kafka\",\"messages\":1050,\"commits\":3}");
    assert_int_equal(desc->commit(s, &token, err, sizeof err), PF_SINK_OK);
    assert_string_equal(token, "{\"sink\":\"kafka\",\"messages\":1050,\"commits\":4}");
    desc->close(s);
    free(h);
}

static void test_key_false_and_default_topic(void **st)
{
    (void)st;
    static rec r[40];
    for (int i = 0; i < 40; i++)
        make_rec(&r[i], "nokey", i, 10);
    pf_sink_host *h = host_new("key", "false", "compression", "zstd", "acks", "1", NULL);
    const char *streams[] = {"nokey"};
    void *s = open_ok(h, streams, 1, NULL);
    char err[512] = "";
    const char *token = NULL;
    assert_int_equal(write_recs(s, r, 40, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &token, err, sizeof err), PF_SINK_OK);
    desc->close(s);
    assert_non_null(strstr(h->log, "acks: 1 turns the idempotent producer off"));
    assert_topic_holds("ppflow.nokey", r, 40, 0, 0);
    free(h);
}

static void test_broker_down_is_retry_then_nothing_lost(void **st)
{
    (void)st;
    enum { N = 200 };
    static rec r[2 * N];
    for (int i = 0; i < 2 * N; i++)
        make_rec(&r[i], "down", i, 50);
    pf_sink_host *h = host_new("topic", "fault.{stream}", "delivery_timeout", "2s", NULL);
    const char *streams[] = {"down"};
    char err[512] = "", token[256];
    const char *t = NULL;

    void *s = open_ok(h, streams, 1, NULL);
    assert_int_equal(write_recs(s, r, N, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    snprintf(token, sizeof token, "%s", t);

    assert_int_equal(rd_kafka_mock_broker_set_down(mc, -1), RD_KAFKA_RESP_ERR_NO_ERROR);
    time_t t0 = time(NULL);
    assert_int_equal(write_recs(s, r + N, N, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_RETRY);
    assert_true(time(NULL) - t0 <= 2 + 5 + 2); /* bounded by delivery_timeout + grace */
    /* Either librdkafka timed the messages out or, at times with every
     * broker down, it reported nothing within delivery_timeout + 5 s and the
     * commit stopped waiting: both name the topic. */
    if (!strstr(err, "fault.down") ||
        !(strstr(err, "Message timed out") || strstr(err, "still had no delivery report")))
        fail_msg("commit with the brokers down: %s", err);
    /* A failed batch stays failed until the host reopens the sink. */
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_RETRY);
    desc->close(s);

    assert_int_equal(rd_kafka_mock_broker_set_up(mc, -1), RD_KAFKA_RESP_ERR_NO_ERROR);
    s = open_ok(h, streams, 1, token);
    assert_int_equal(write_recs(s, r + N, N, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    assert_string_equal(t, "{\"sink\":\"kafka\",\"messages\":400,\"commits\":2}");
    desc->close(s);

    /* Nothing lost; the first batch exactly once, the retried one at least once. */
    assert_topic_holds("fault.down", r, 2 * N, 1, 1);
    msgs got = consume_all("fault.down");
    int count[2 * N];
    count_matches(&got, r, 2 * N, count, 1);
    for (int i = 0; i < N; i++)
        assert_int_equal(count[i], 1);
    msgs_free(&got);
    free(h);
}

static void test_transient_request_errors_are_retried_inside(void **st)
{
    (void)st;
    static rec r[100];
    for (int i = 0; i < 100; i++)
        make_rec(&r[i], "flaky", i, 0);
    pf_sink_host *h = host_new("topic", "fault.{stream}", "delivery_timeout", "20s", NULL);
    const char *streams[] = {"flaky"};
    void *s = open_ok(h, streams, 1, NULL);
    /* Produce requests fail without storing anything: not enough replicas,
     * leader moved. librdkafka retries them inside the commit. */
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    char err[512] = "";
    const char *t = NULL;
    assert_int_equal(write_recs(s, r, 100, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    desc->close(s);
    rd_kafka_mock_clear_request_errors(mc, 0);
    assert_topic_holds("fault.flaky", r, 100, 0, 1);

    /* Dropped connections: requests in flight on them may have been stored
     * and are sent again. A real broker discards the repeats of an idempotent
     * producer; the mock cluster only does for transactional ones, so this
     * checks that nothing is lost. */
    static rec d[300];
    for (int i = 0; i < 300; i++)
        make_rec(&d[i], "drop", i, 200);
    const char *dstreams[] = {"drop"};
    s = open_ok(h, dstreams, 1, NULL);
    rd_kafka_mock_push_request_errors(mc, 0, 2, RD_KAFKA_RESP_ERR__TRANSPORT,
                                      RD_KAFKA_RESP_ERR__TRANSPORT);
    for (int i = 0; i < 300; i += 50)
        assert_int_equal(write_recs(s, d + i, 50, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    desc->close(s);
    rd_kafka_mock_clear_request_errors(mc, 0);
    assert_topic_holds("fault.drop", d, 300, 1, 1);
    free(h);
}

static void test_full_local_queue_is_waited_out(void **st)
{
    (void)st;
    enum { N = 600 };
    static rec r[N];
    for (int i = 0; i < N; i++)
        make_rec(&r[i], "full", i, 100);
    /* A queue of 20 messages: one write of 600 records fills it many times. */
    pf_sink_host *h =
        host_new("topic", "queue.{stream}", "librdkafka.queue.buffering.max.messages", "20", NULL);
    const char *streams[] = {"full"};
    void *s = open_ok(h, streams, 1, NULL);
    char err[512] = "";
    const char *t = NULL;
    assert_int_equal(write_recs(s, r, N, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    assert_string_equal(t, "{\"sink\":\"kafka\",\"messages\":600,\"commits\":1}");
    desc->close(s);
    assert_non_null(strstr(h->log, "the local queue is full (topic queue.full)"));
    assert_topic_holds("queue.full", r, N, 0, 1);
    free(h);
}

static void test_records_at_fault_are_error(void **st)
{
    (void)st;
    static rec r[3];
    make_rec(&r[0], "big", 0, 10);
    make_rec(&r[1], "big", 1, 4000);
    make_rec(&r[2], "big", 2, 10);
    pf_sink_host *h =
        host_new("topic", "fault.{stream}", "librdkafka.message.max.bytes", "2000", NULL);
    const char *streams[] = {"big"};
    char err[512] = "";
    const char *t = NULL;

    /* Too large for the producer: refused at write. */
    void *s = open_ok(h, streams, 1, NULL);
    assert_int_equal(write_recs(s, r, 3, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "topic fault.big"));
    assert_non_null(strstr(err, "message.max.bytes"));
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_ERROR);
    desc->close(s);

    /* Refused by the broker: ERROR at commit, naming the topic and the error. */
    pf_sink_host *h2 = host_new("topic", "fault.{stream}", "delivery_timeout", "10s", NULL);
    s = open_ok(h2, streams, 1, NULL);
    rd_kafka_mock_push_request_errors(mc, 0, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    assert_int_equal(write_recs(s, r, 1, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "topic fault.big"));
    assert_non_null(strstr(err, "INVALID_RECORD"));
    desc->close(s);
    rd_kafka_mock_clear_request_errors(mc, 0);

    /* Larger than the broker's limit: ERROR too, never FATAL. */
    s = open_ok(h2, streams, 1, NULL);
    push_errors(0, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    assert_int_equal(write_recs(s, r + 1, 1, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "topic fault.big"));
    assert_non_null(strstr(err, "MSG_SIZE_TOO_LARGE"));
    desc->close(s);
    rd_kafka_mock_clear_request_errors(mc, 0);
    free(h);
    free(h2);
}

static void test_unreachable_brokers_fail_open_within_preflight_timeout(void **st)
{
    (void)st;
    const char *secret = "Kf-Pa55-unreachable-5521";
    char brokers[64], b1[32], b2[32], err[512];
    snprintf(b1, sizeof b1, "127.0.0.1:%d", closed_port());
    snprintf(b2, sizeof b2, "127.0.0.1:%d", closed_port());
    snprintf(brokers, sizeof brokers, "%s,%s", b1, b2);
    const char *streams[] = {"s1", "s2"};
    pf_sink_host *h =
        host_new("brokers", brokers, "preflight_timeout", "1500ms", "librdkafka.sasl.username",
                 "ppflow", "librdkafka.sasl.password", secret, NULL);
    int64_t took = open_expect(h, streams, 2, PF_SINK_RETRY, err, sizeof err);
    /* Within preflight_timeout, close included, with a margin for a busy machine. */
    if (took > 1500 + 2500)
        fail_msg("open took %lld ms with preflight_timeout 1500ms", (long long)took);
    /* Names every bootstrap broker, the option, and what to check. */
    assert_non_null(strstr(err, brokers));
    assert_non_null(strstr(err, "preflight_timeout"));
    assert_non_null(strstr(err, "check that they run"));
    assert_null(strstr(err, secret));
    assert_null(strstr(h->log, secret));
    free(h);

    /* The default preflight_timeout (5s) bounds it too. */
    h = host_new("brokers", b1, NULL);
    took = open_expect(h, streams, 1, PF_SINK_RETRY, err, sizeof err);
    if (took > 5000 + 2500) fail_msg("open took %lld ms with the default 5s", (long long)took);
    assert_non_null(strstr(err, b1));
    free(h);
}

static void test_reopen_while_brokers_are_down_is_retry_at_once(void **st)
{
    (void)st;
    /* After a failed batch the host reopens the sink: with the cluster
     * still down that open answers RETRY within preflight_timeout instead of
     * handing back a producer that cannot deliver. */
    pf_sink_host *h = host_new("topic", "reopen.{stream}", "preflight_timeout", "1s", NULL);
    const char *streams[] = {"r"};
    void *s = open_ok(h, streams, 1, NULL);
    desc->close(s);
    assert_int_equal(rd_kafka_mock_broker_set_down(mc, -1), RD_KAFKA_RESP_ERR_NO_ERROR);
    char err[512];
    int64_t took = open_expect(h, streams, 1, PF_SINK_RETRY, err, sizeof err);
    if (took > 1000 + 2500)
        fail_msg("open took %lld ms with preflight_timeout 1s", (long long)took);
    assert_non_null(strstr(err, bootstraps));
    assert_int_equal(rd_kafka_mock_broker_set_up(mc, -1), RD_KAFKA_RESP_ERR_NO_ERROR);
    pf_sink_host *h2 = host_new("topic", "reopen.{stream}", NULL);
    s = open_ok(h2, streams, 1, NULL);
    desc->close(s);
    free(h);
    free(h2);
}

static void test_topic_authorization_failure_is_fatal(void **st)
{
    (void)st;
    char err[512] = "";
    const char *t = NULL;
    static rec r[20];
    for (int i = 0; i < 20; i++)
        make_rec(&r[i], "acl", i, 0);
    const char *streams[] = {"acl"};

    /* Refused in the preflight's metadata: FATAL at open. */
    rd_kafka_mock_topic_set_error(mc, "authz-meta.acl",
                                  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    pf_sink_host *h = host_new("topic", "authz-meta.{stream}", NULL);
    open_expect(h, streams, 1, PF_SINK_FATAL, err, sizeof err);
    rd_kafka_mock_topic_set_error(mc, "authz-meta.acl", RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_non_null(strstr(err, "authz-meta.acl"));
    assert_non_null(strstr(err, "TOPIC_AUTHORIZATION_FAILED"));
    assert_non_null(strstr(err, bootstraps));
    assert_non_null(strstr(err, "grant"));
    free(h);

    /* Refused when producing (Describe allowed, Write not): FATAL at commit,
     * and every later call answers the same until the host reopens. */
    h = host_new("topic", "authz-write.{stream}", "delivery_timeout", "10s", NULL);
    void *s = open_ok(h, streams, 1, NULL);
    push_errors(0 /* Produce */, 1000, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    pf_sink_result wr = write_recs(s, r, 20, err, sizeof err);
    if (wr == PF_SINK_OK) {
        assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_FATAL);
    } else {
        /* The refusal reached the producer while it was still writing. */
        assert_int_equal(wr, PF_SINK_FATAL);
    }
    assert_non_null(strstr(err, "authz-write.acl"));
    assert_non_null(strstr(err, "TOPIC_AUTHORIZATION_FAILED"));
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_FATAL);
    assert_int_equal(write_recs(s, r, 1, err, sizeof err), PF_SINK_FATAL);
    desc->close(s);
    rd_kafka_mock_clear_request_errors(mc, 0);
    free(h);
}

static void test_cluster_authorization_failure_is_fatal(void **st)
{
    (void)st;
    /* The idempotent producer is refused its producer id (no
     * IdempotentWrite on the cluster): FATAL, at open when the refusal
     * arrives during the preflight, otherwise at the first commit. */
    char err[512] = "";
    const char *t = NULL;
    static rec r[5];
    for (int i = 0; i < 5; i++)
        make_rec(&r[i], "idem", i, 0);
    const char *streams[] = {"idem"};
    push_errors(22 /* InitProducerId */, 3, RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
    pf_sink_host *h = host_new("topic", "authz-cluster.{stream}", "delivery_timeout", "10s", NULL);
    void *s = NULL;
    pf_sink_result r0 = desc->open(h, &api, streams, 1, NULL, &s, err, sizeof err);
    if (r0 == PF_SINK_OK) {
        pf_sink_result wr = write_recs(s, r, 5, err, sizeof err);
        if (wr == PF_SINK_OK) wr = desc->commit(s, &t, err, sizeof err);
        assert_int_equal(wr, PF_SINK_FATAL);
        desc->close(s);
    } else {
        assert_int_equal(r0, PF_SINK_FATAL);
        assert_null(s);
    }
    assert_non_null(strstr(err, "CLUSTER_AUTHORIZATION_FAILED"));
    assert_non_null(strstr(err, "IdempotentWrite"));
    rd_kafka_mock_clear_request_errors(mc, 22);
    free(h);
}

static void test_unknown_topic_not_created_is_fatal(void **st)
{
    (void)st;
    /* A cluster that does not create topics. The mock cluster creates every
     * topic a metadata request names unless the request (version 4 and
     * later) disallows it, so it advertises version 4 and the producer
     * disallows creation: the cluster then answers UNKNOWN_TOPIC_OR_PART,
     * as brokers with auto.create.topics.enable=false do. */
    assert_int_equal(rd_kafka_mock_set_apiversion(mc, 3 /* Metadata */, 0, 4),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    char err[512] = "";
    const char *streams[] = {"here", "gone"};
    rd_kafka_mock_topic_create(mc, "nocreate.here", 2, 1);
    pf_sink_host *h = host_new("topic", "nocreate.{stream}", "librdkafka.allow.auto.create.topics",
                               "false", "preflight_timeout", "1500ms", NULL);
    /* Asked for until preflight_timeout (a cluster may be creating it). */
    int64_t took = open_expect(h, streams, 2, PF_SINK_FATAL, err, sizeof err);
    if (took > 1500 + 2500)
        fail_msg("open took %lld ms with preflight_timeout 1500ms", (long long)took);
    assert_non_null(strstr(err, "topic nocreate.gone (stream gone) does not exist and the cluster "
                                "did not create it"));
    assert_non_null(strstr(err, "UNKNOWN_TOPIC_OR_PART"));
    assert_non_null(strstr(err, "create the topic"));
    assert_null(strstr(err, "nocreate.here"));

    /* Once the topic exists, the same sink opens and delivers. */
    rd_kafka_mock_topic_create(mc, "nocreate.gone", 2, 1);
    void *s = open_ok(h, streams, 2, NULL);
    static rec r[10];
    for (int i = 0; i < 10; i++)
        make_rec(&r[i], "gone", i, 0);
    const char *t = NULL;
    assert_int_equal(write_recs(s, r, 10, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    desc->close(s);
    assert_topic_holds("nocreate.gone", r, 10, 0, 1);
    free(h);
}

static void test_authentication_failure_is_fatal(void **st)
{
    (void)st;
    /* The cluster cannot authenticate this client (its listener speaks no
     * SASL): FATAL at open, naming the failure, never the password. */
    const char *secret = "Kf-Sasl-Secret-77812";
    char err[512] = "";
    const char *streams[] = {"auth"};
    pf_sink_host *h = host_new("topic", "auth.{stream}", "preflight_timeout", "2s",
                               "librdkafka.security.protocol", "SASL_PLAINTEXT",
                               "librdkafka.sasl.mechanisms", "PLAIN", "librdkafka.sasl.username",
                               "ppflow", "librdkafka.sasl.password", secret, NULL);
    int64_t took = open_expect(h, streams, 1, PF_SINK_FATAL, err, sizeof err);
    if (took > 2000 + 2500)
        fail_msg("open took %lld ms with preflight_timeout 2s", (long long)took);
    assert_non_null(strstr(err, "_AUTHENTICATION"));
    assert_non_null(strstr(err, "sasl.mechanisms"));
    assert_non_null(strstr(err, bootstraps));
    assert_null(strstr(err, secret));
    assert_null(strstr(h->log, secret));
    free(h);
}

static void expect_open_error(pf_sink_host *h, const char *const *streams, size_t n,
                              const char *want)
{
    void *s = (void *)1;
    char err[512] = "";
    pf_sink_result r = desc->open(h, &api, streams, n, NULL, &s, err, sizeof err);
    if (r != PF_SINK_ERROR || !strstr(err, want))
        fail_msg("open answered %d '%s', expected ERROR with '%s'", r, err, want);
    assert_null(s);
    free(h);
}

static void test_bad_options_are_refused(void **st)
{
    (void)st;
    const char *one[] = {"s1"};
    const char *bad[] = {"ok", "has space"};
    pf_sink_host *h = host_new(NULL);
    h->n = 0; /* no brokers */
    expect_open_error(h, one, 1, "brokers is required");
    expect_open_error(host_new("compression", "brotli", NULL), one, 1,
                      "compression must be none, gzip, snappy, lz4 or zstd, not 'brotli'");
    expect_open_error(host_new("acks", "2", NULL), one, 1, "acks must be all, 1 or 0");
    expect_open_error(host_new("topic", "siem.{stream}", NULL), bad, 2,
                      "topic 'siem.has space' (sink option topic 'siem.{stream}', stream 'has "
                      "space') is not a valid Kafka topic name");
    expect_open_error(host_new("topic", "..", NULL), one, 1, "'.' and '..' are not allowed");
    expect_open_error(host_new("delivery_timeout", "10ms", "linger", "50ms", NULL), one, 1,
                      "delivery_timeout (10 ms) must be longer than linger (50 ms)");
    expect_open_error(host_new("librdkafka.enable.idempotence", "false", NULL), one, 1,
                      "librdkafka.enable.idempotence is refused: the Kafka sink always uses the "
                      "idempotent producer");
    expect_open_error(host_new("librdkafka.max.in.flight.requests.per.connection", "10", NULL), one,
                      1, "at most 5 requests in flight");
    expect_open_error(host_new("librdkafka.retries", "0", NULL), one, 1, "needs retries");
    expect_open_error(host_new("preflight_timeout", "0ms", NULL), one, 1,
                      "preflight_timeout must be between 1ms and 24 days");
    expect_open_error(host_new("librdkafka.linger.ms", "5", NULL), one, 1,
                      "use the sink option linger");
    expect_open_error(host_new("librdkafka.transactional.id", "x", NULL), one, 1,
                      "does not offer transactions");
    expect_open_error(host_new("librdkafka.no.such.thing", "1", NULL), one, 1,
                      "librdkafka has no property no.such.thing");
    expect_open_error(host_new("librdkafka.socket.timeout.ms", "soon", NULL), one, 1,
                      "librdkafka.socket.timeout.ms");

    /* Without transactions or acks: all, a pass-through value is accepted. */
    pf_sink_host *ok = host_new("librdkafka.socket.timeout.ms", "1000", NULL);
    void *s = open_ok(ok, one, 1, NULL);
    desc->close(s);
    free(ok);
}

static void test_secrets_never_reach_logs_or_errors(void **st)
{
    (void)st;
    const char *secret = "Pa55-w0rd-XyZ-9187";
    const char *one[] = {"s1"};
    /* The secret, by mistake, also in a property whose bad value librdkafka
     * quotes in its message (before the password in the flow): masked. */
    pf_sink_host *h =
        host_new("librdkafka.security.protocol", secret, "librdkafka.sasl.password", secret, NULL);
    void *s = (void *)1;
    char err[512] = "";
    assert_int_equal(desc->open(h, &api, one, 1, NULL, &s, err, sizeof err), PF_SINK_ERROR);
    assert_string_equal(err, "sink option librdkafka.security.protocol: Invalid value \"***\" for "
                             "configuration property \"security.protocol\"");
    assert_null(strstr(h->log, secret));
    free(h);
    /* The secret in a numeric property: the message names the option only. */
    h = host_new("librdkafka.ssl.key.password", secret, "librdkafka.socket.timeout.ms", secret,
                 NULL);
    assert_int_equal(desc->open(h, &api, one, 1, NULL, &s, err, sizeof err), PF_SINK_ERROR);
    assert_non_null(strstr(err, "librdkafka.socket.timeout.ms"));
    assert_null(strstr(err, secret));
    free(h);

    /* A working producer with a password set and librdkafka's debug logs on. */
    h = host_new("librdkafka.sasl.username", "ppflow", "librdkafka.sasl.password", secret,
                 "librdkafka.debug", "conf,generic,msg", "topic", "sec.{stream}", NULL);
    s = open_ok(h, one, 1, NULL);
    static rec r[5];
    for (int i = 0; i < 5; i++)
        make_rec(&r[i], "s1", i, 0);
    const char *t = NULL;
    assert_int_equal(write_recs(s, r, 5, err, sizeof err), PF_SINK_OK);
    assert_int_equal(desc->commit(s, &t, err, sizeof err), PF_SINK_OK);
    desc->close(s);
    assert_non_null(strstr(h->log, "librdkafka property sasl.password = ***"));
    assert_non_null(strstr(h->log, "librdkafka"));
    assert_null(strstr(h->log, secret));
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_descriptor, restore_cluster),
        cmocka_unit_test_teardown(test_round_trip_is_exact, restore_cluster),
        cmocka_unit_test_teardown(test_key_false_and_default_topic, restore_cluster),
        cmocka_unit_test_teardown(test_broker_down_is_retry_then_nothing_lost, restore_cluster),
        cmocka_unit_test_teardown(test_transient_request_errors_are_retried_inside,
                                  restore_cluster),
        cmocka_unit_test_teardown(test_full_local_queue_is_waited_out, restore_cluster),
        cmocka_unit_test_teardown(test_records_at_fault_are_error, restore_cluster),
        cmocka_unit_test_teardown(test_unreachable_brokers_fail_open_within_preflight_timeout,
                                  restore_cluster),
        cmocka_unit_test_teardown(test_reopen_while_brokers_are_down_is_retry_at_once,
                                  restore_cluster),
        cmocka_unit_test_teardown(test_topic_authorization_failure_is_fatal, restore_cluster),
        cmocka_unit_test_teardown(test_cluster_authorization_failure_is_fatal, restore_cluster),
        cmocka_unit_test_teardown(test_unknown_topic_not_created_is_fatal, restore_cluster),
        cmocka_unit_test_teardown(test_authentication_failure_is_fatal, restore_cluster),
        cmocka_unit_test_teardown(test_bad_options_are_refused, restore_cluster),
        cmocka_unit_test_teardown(test_secrets_never_reach_logs_or_errors, restore_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
