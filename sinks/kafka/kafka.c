/* kafka.c: the Kafka sink (plugin ppflow_sink_kafka.so, librdkafka).
 *
 * Owns the path from a batch of records to messages in Kafka topics:
 *   open    builds an idempotent librdkafka producer from the sink options
 *           and the `librdkafka.*` pass-through family (refusing settings
 *           that would break idempotence), and one topic per stream
 *           (`topic` with {stream} replaced, checked against Kafka's rules).
 *           Then the preflight: the cluster's metadata for every topic
 *           within preflight_timeout, so a sink that cannot take records
 *           fails before the host makes its first API call (unreachable:
 *           RETRY; credentials or ACLs refused, unknown topic: FATAL).
 *   write   produces every record: value = the record's JSON, key = the
 *           record's identity as the host gives it (option `key`). A full
 *           local queue is waited out by serving delivery reports, never
 *           longer than delivery_timeout.
 *   commit  waits until every message produced since the last commit has its
 *           delivery report. OK only when all succeeded; otherwise the worst
 *           failure decides (kf_errors.c): FATAL when the destination
 *           refuses every record (authorization, authentication, unknown
 *           topic), ERROR when a record itself is at fault (too large,
 *           invalid), RETRY otherwise (transient, other fatal producer
 *           states), so no good record is ever dead-lettered.
 *           The resume token counts messages and commits: Kafka cannot take
 *           messages back, so delivery is at least once (docs/sinks/kafka.md).
 *   close   purges whatever is still queued and destroys the producer.
 *
 * librdkafka's callbacks (delivery reports, errors, logs: log.queue is on)
 * run only inside rd_kafka_poll/rd_kafka_flush called from these functions,
 * so the state needs no locking. Values of credential pass-through settings
 * (kf_sensitive: every sasl.* but the user name and mechanism, and any name
 * holding password, passwd, secret, key, token or credential) are masked in
 * every log line and error message, at every log level: each message is
 * formatted whole and masked whole before it is cut, and such a value is
 * shown nowhere else (not in the -v property dump, not in librdkafka's
 * refusal of it). The host redacts the sink's messages too, but only values
 * it registered (${VAR} values, options named as credentials), so the sink
 * does not rely on it. Secrets are wiped (explicit_bzero) before they are
 * freed. Links against librdkafka and ppflow_sink.h only. */
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kf_errors.h"
#include "ppflow_sink.h"

#define KF_MSG_MAX 512
#define KF_TOPIC_MAX 249 /* Kafka's limit on a topic name's length */
#define KF_PREFIX "librdkafka."
#define KF_GRACE_MS 5000   /* added to delivery_timeout when waiting in commit */
#define KF_POLL_EVERY 1024 /* serve callbacks every this many produced messages */
#define KF_MASK "***"
#define KF_RECENT 8             /* distinct librdkafka errors remembered */
#define KF_REPEAT_MS 30000      /* an error repeated within this time is not logged again */
#define KF_REASON_MAX 240       /* librdkafka's last connection error, kept for messages */
#define KF_PREFLIGHT_ASK_MS 250 /* an unknown topic is asked for again after this */

static const pf_sink_option kf_options[] = {
    {"brokers", PF_SINK_OPT_STRING, NULL, 1,
     "bootstrap brokers, comma-separated host:port (librdkafka bootstrap.servers)"},
    {"topic", PF_SINK_OPT_STRING, "ppflow.{stream}", 0,
     "topic to produce to; {stream} is replaced by the record's stream (letters, digits, . _ -, "
     "at most 249 characters)"},
    {"key", PF_SINK_OPT_BOOL, "true", 0,
     "use the record's identity as the message key: its key field's value, else sha256: and the "
     "SHA-256 of its JSON (false: messages without key)"},
    {"compression", PF_SINK_OPT_STRING, "lz4", 0, "none, gzip, snappy, lz4 or zstd"},
    {"acks", PF_SINK_OPT_STRING, "all", 0,
     "all (every in-sync replica; needed for the idempotent producer), 1 (the leader) or 0 "
     "(none: a commit no longer proves anything was stored)"},
    {"linger", PF_SINK_OPT_DURATION, "20ms", 0,
     "how long messages wait to fill a batch before they are sent (librdkafka linger.ms)"},
    {"batch_size", PF_SINK_OPT_SIZE, "1MB", 0,
     "largest batch of messages sent in one request (librdkafka batch.size)"},
    {"delivery_timeout", PF_SINK_OPT_DURATION, "2m", 0,
     "how long a message may take to be delivered, retries included; a commit waits at most "
     "this long (plus 5 s) and answers RETRY then (librdkafka delivery.timeout.ms)"},
    {"preflight_timeout", PF_SINK_OPT_DURATION, "5s", 0,
     "how long opening the sink may wait for the cluster's metadata of every topic; brokers "
     "that do not answer within it fail the open before any API call is made"},
    {KF_PREFIX "*", PF_SINK_OPT_STRING, NULL, 0,
     "any librdkafka producer property, e.g. librdkafka.security.protocol: SASL_SSL; values of "
     "properties that hold credentials (sasl.* but sasl.username and sasl.mechanism(s), and "
     "names holding password, secret, key, token or credential) are never shown"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct kf_topic {
    char *stream;
    char *name;
    rd_kafka_topic_t *rkt;
} kf_topic;

typedef struct kf_state {
    const pf_sink_host *host;
    const pf_sink_host_api *api;
    rd_kafka_t *rk;
    kf_topic *topics;
    size_t ntopics;
    char *brokers;
    int use_key;
    int64_t delivery_timeout_ms;
    int64_t linger_ms;
    int64_t preflight_timeout_ms;
    int queue_full_logged;

    /* Values to mask in every message (sensitive pass-through settings). */
    char **secrets;
    size_t nsecrets;

    /* Since the last commit. */
    int64_t produced, delivered, failed;
    pf_sink_result fail_class;    /* the worst failed delivery (kf_error_class) */
    rd_kafka_resp_err_t fail_err; /* the first failure of that class */
    char fail_topic[KF_TOPIC_MAX + 1];
    int32_t fail_partition;
    /* Set when a batch failed: every later call answers the same until the
     * host reopens the sink, so a failed batch is never committed short. */
    pf_sink_result poisoned;
    char poison_msg[KF_MSG_MAX];

    /* Over all runs (carried in the resume token). */
    int64_t total_messages, total_commits;
    char token[160];

    /* The last connection error librdkafka reported (for messages about
     * brokers that cannot be reached), and the last one that means the
     * cluster refuses this client (authentication, authorization), which
     * a delivery clears: timeouts after it are that refusal's doing. */
    char last_reason[KF_REASON_MAX];
    rd_kafka_resp_err_t refused_err;
    char refused_reason[KF_REASON_MAX];

    /* librdkafka errors logged lately, to drop repeats (a broker that is
     * down is reported at every reconnect attempt). */
    struct {
        char text[160];
        int64_t at;
    } recent[KF_RECENT];
    size_t recent_next;
} kf_state;

/* ---- messages ------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The length of the longest secret of S that starts at T (before END), or 0. */
static size_t secret_at(const kf_state *s, const char *t, const char *end)
{
    size_t best = 0;
    for (size_t i = 0; s && i < s->nsecrets; i++) {
        size_t sl = strlen(s->secrets[i]);
        if (sl > best && sl <= (size_t)(end - t) && memcmp(t, s->secrets[i], sl) == 0) best = sl;
    }
    return best;
}

/* Writes TEXT (LEN bytes) into OUT (capacity OUTLEN > 0, NUL-terminated)
 * with every secret masked. The whole of TEXT is matched before OUT's size
 * cuts the result, so no part of a secret survives a cut; where secrets
 * overlap, their whole span becomes one mask. */
static void mask_into(const kf_state *s, const char *text, size_t len, char *out, size_t outlen)
{
    size_t o = 0, covered = 0;
    for (size_t p = 0; p < len && o + 1 < outlen; p++) {
        size_t m = secret_at(s, text + p, text + len);
        if (m && p + m > covered) {
            if (p >= covered)
                for (const char *r = KF_MASK; *r && o + 1 < outlen; r++)
                    out[o++] = *r;
            covered = p + m;
        }
        if (p >= covered && o + 1 < outlen) out[o++] = text[p];
    }
    out[o] = '\0';
}

/* BUF (capacity CAP) was filled by librdkafka, which cuts its text to the
 * buffer: when it is full, an end that is the start of a secret is dropped
 * (masking cannot recognise a secret that was cut). */
static void trim_cut(const kf_state *s, char *buf, size_t cap)
{
    size_t len = strnlen(buf, cap);
    if (len + 1 < cap) return;
    for (size_t i = 0; s && i < s->nsecrets; i++) {
        size_t sl = strlen(s->secrets[i]);
        for (size_t k = sl > len ? len : sl; k > 0; k--)
            if (memcmp(buf + len - k, s->secrets[i], k) == 0) {
                len -= k;
                buf[len] = '\0';
                break;
            }
    }
}

/* Formats into OUT (capacity OUTLEN) with every secret masked, also when the
 * text is longer than OUT: formatted whole, masked whole, then cut. */
static void vformat(const kf_state *s, char *out, size_t outlen, const char *fmt, va_list ap)
{
    if (!outlen) return;
    char small[1024], *text = small;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        small[0] = '\0';
        n = 0;
    } else if ((size_t)n >= sizeof small) {
        text = malloc((size_t)n + 1);
        if (!text) {
            va_end(ap2);
            explicit_bzero(small, sizeof small);
            snprintf(out, outlen, "(message withheld: out of memory)");
            return;
        }
        vsnprintf(text, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    mask_into(s, text, (size_t)n, out, outlen);
    explicit_bzero(text, (size_t)n);
    if (text != small) free(text);
}

static void kf_log(kf_state *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void kf_log(kf_state *s, int level, const char *fmt, ...)
{
    char msg[KF_MSG_MAX + 600];
    va_list ap;
    va_start(ap, fmt);
    vformat(s, msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->api->log(s->host, level, msg);
}

static pf_sink_result fail(const kf_state *s, pf_sink_result r, char *err, size_t errlen,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static pf_sink_result fail(const kf_state *s, pf_sink_result r, char *err, size_t errlen,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(s, err, errlen, fmt, ap);
    va_end(ap);
    return r;
}

/* FATAL with the message for code E (kf_error_class FATAL): WHAT failed,
 * librdkafka's words for E, the brokers, what the user should check, and
 * last DETAIL (librdkafka's reason; may be NULL), which may be cut short. */
static pf_sink_result destination_refuses(kf_state *s, char *err, size_t errlen,
                                          rd_kafka_resp_err_t e, const char *what,
                                          const char *detail)
{
    const char *check = kf_error_check(e);
    return fail(s, PF_SINK_FATAL, err, errlen, "%s: %s (%s; brokers %s)%s%s%s%.*s", what,
                rd_kafka_err2str(e), rd_kafka_err2name(e), s->brokers, check ? "; " : "",
                check ? check : "", detail && *detail ? "; librdkafka: " : "", KF_REASON_MAX,
                detail && *detail ? detail : "");
}

/* The answer once the producer hit a fatal error: FATAL when its cause is
 * the destination refusing this client (a missing ACL), otherwise RETRY (a
 * new producer starts afresh). WHAT says what failed. */
static pf_sink_result producer_fatal(kf_state *s, char *err, size_t errlen, const char *what)
{
    char why[256] = "";
    rd_kafka_resp_err_t f = rd_kafka_fatal_error(s->rk, why, sizeof why);
    trim_cut(s, why, sizeof why);
    if (kf_error_class(f) == PF_SINK_FATAL)
        return destination_refuses(s, err, errlen, f, what, why);
    return fail(s, PF_SINK_RETRY, err, errlen,
                "%s: the producer hit a fatal error (%s: %s); a new producer will send the batch "
                "again",
                what, rd_kafka_err2name(f), why);
}

/* 1 when a pass-through property's value must never be shown: every
 * sasl.* property (sasl.password, sasl.oauthbearer.config,
 * sasl.oauthbearer.client.secret, sasl.kerberos.keytab, ...) but the few that
 * name a user or a mechanism, and any property whose name holds password,
 * passwd, secret, key (ssl.key.password, ssl.key.pem,
 * ssl.keystore.password), token or credential. Case-insensitive. */
static int sensitive(const char *prop)
{
    static const char *const plain_sasl[] = {"sasl.username", "sasl.mechanism", "sasl.mechanisms",
                                             "sasl.kerberos.service.name",
                                             "sasl.kerberos.principal", "sasl.oauthbearer.method"};
    static const char *const words[] = {"password", "passwd", "secret",
                                        "key",      "token",  "credential"};
    char low[256];
    size_t i;
    for (i = 0; prop[i] && i < sizeof low - 1; i++)
        low[i] = (char)(prop[i] >= 'A' && prop[i] <= 'Z' ? prop[i] - 'A' + 'a' : prop[i]);
    low[i] = '\0';
    for (i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(low, words[i])) return 1;
    if (strncmp(low, "sasl.", 5) != 0) return 0;
    for (i = 0; i < sizeof plain_sasl / sizeof plain_sasl[0]; i++)
        if (strcmp(low, plain_sasl[i]) == 0) return 0;
    return 1;
}

/* ---- librdkafka callbacks (run inside poll/flush only) -------------------- */

/* How bad a sink answer is, to keep the worst of several failures: a
 * refusing destination over a record at fault over a transient failure. */
static int severity(pf_sink_result r)
{
    switch (r) {
    case PF_SINK_FATAL:
        return 3;
    case PF_SINK_ERROR:
        return 2;
    case PF_SINK_RETRY:
    case PF_SINK_BUSY:
        return 1;
    case PF_SINK_OK:
        return 0;
    }
    return 1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kf_state *s = opaque;
    if (!m->err) {
        s->delivered++;
        /* The cluster takes this client's records after all. */
        s->refused_err = RD_KAFKA_RESP_ERR_NO_ERROR;
        return;
    }
    pf_sink_result c = kf_error_class(m->err);
    if (!s->failed || severity(c) > severity(s->fail_class)) {
        s->fail_class = c;
        s->fail_err = m->err;
        snprintf(s->fail_topic, sizeof s->fail_topic, "%s",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?");
        s->fail_partition = m->partition;
    }
    s->failed++;
}

/* 1 when TEXT (up to its " (after ...)" detail) was logged in the last
 * KF_REPEAT_MS; otherwise remembers it and returns 0. */
static int repeated(kf_state *s, const char *text)
{
    char key[sizeof s->recent[0].text];
    const char *cut = strstr(text, " (after ");
    size_t l = cut ? (size_t)(cut - text) : strlen(text);
    snprintf(key, sizeof key, "%.*s", (int)l, text);
    int64_t now = now_ms();
    for (size_t i = 0; i < KF_RECENT; i++)
        if (s->recent[i].at && now - s->recent[i].at < KF_REPEAT_MS &&
            strcmp(s->recent[i].text, key) == 0)
            return 1;
    memcpy(s->recent[s->recent_next].text, key, sizeof key);
    s->recent[s->recent_next].at = now;
    s->recent_next = (s->recent_next + 1) % KF_RECENT;
    return 0;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kf_state *s = opaque;
    /* Remembered before repeats are dropped: they explain later timeouts. */
    /* Kept masked: they are cut to their buffers, which must not happen
     * to a secret before it is masked. */
    if (kf_error_class((rd_kafka_resp_err_t)err) == PF_SINK_FATAL) {
        s->refused_err = (rd_kafka_resp_err_t)err;
        mask_into(s, reason, strlen(reason), s->refused_reason, sizeof s->refused_reason);
    } else if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && err != RD_KAFKA_RESP_ERR__FATAL) {
        mask_into(s, reason, strlen(reason), s->last_reason, sizeof s->last_reason);
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_resp_err_t f = rd_kafka_fatal_error(rk, why, sizeof why);
        trim_cut(s, why, sizeof why);
        kf_log(s, 0, "fatal producer error (brokers %s): %s: %s", s->brokers, rd_kafka_err2name(f),
               why);
        return;
    }
    if (repeated(s, reason)) return;
    /* Most reasons name their broker; "3/3 brokers are down" does not. */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        kf_log(s, 1, "librdkafka: %s: %s (brokers %s)", rd_kafka_err2name(err), reason, s->brokers);
    else
        kf_log(s, 1, "librdkafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kf_state *s = rd_kafka_opaque(rk);
    if (!s) return;
    /* syslog levels: up to 4 (warning) are warnings here, since librdkafka
     * reports transient connection trouble as errors and recovers from it. */
    int lv = level <= 4 ? 1 : level == 5 ? 2 : 3;
    /* Connection failures also reach on_error, which logs them once. */
    if (lv == 1 && strcmp(fac, "FAIL") == 0) lv = 3;
    kf_log(s, lv, "librdkafka %s: %s", fac, buf);
}

/* ---- options ---------------------------------------------------------------- */

typedef struct conf_ctx {
    kf_state *s;
    rd_kafka_conf_t *conf;
    int idempotent;
    char *err;
    size_t errlen;
    pf_sink_result r;
} conf_ctx;

/* The pass-through properties the sink sets itself, and the option that
 * sets each instead. */
static const struct {
    const char *prop, *option;
} owned_props[] = {
    {"bootstrap.servers", "brokers"},
    {"metadata.broker.list", "brokers"},
    {"compression.codec", "compression"},
    {"compression.type", "compression"},
    {"acks", "acks"},
    {"request.required.acks", "acks"},
    {"linger.ms", "linger"},
    {"queue.buffering.max.ms", "linger"},
    {"batch.size", "batch_size"},
    {"delivery.timeout.ms", "delivery_timeout"},
    {"message.timeout.ms", "delivery_timeout"},
};

/* Why PROP=VALUE cannot be passed through, or NULL. */
static const char *refused(const char *prop, const char *value, int idempotent, char *buf,
                           size_t cap)
{
    for (size_t i = 0; i < sizeof owned_props / sizeof owned_props[0]; i++)
        if (strcmp(prop, owned_props[i].prop) == 0) {
            snprintf(buf, cap, "the sink sets %s itself: use the sink option %s", prop,
                     owned_props[i].option);
            return buf;
        }
    if (strcmp(prop, "enable.idempotence") == 0)
        return "the Kafka sink always uses the idempotent producer (with acks: all)";
    if (strcmp(prop, "transactional.id") == 0 || strcmp(prop, "transaction.timeout.ms") == 0)
        return "the Kafka sink does not offer transactions";
    if (strcmp(prop, "log.queue") == 0) return "the sink needs librdkafka's logs on its queue";
    if (!idempotent) return NULL;
    if (strcmp(prop, "max.in.flight.requests.per.connection") == 0 ||
        strcmp(prop, "max.in.flight") == 0) {
        char *end;
        long v = strtol(value, &end, 10);
        if (*end == '\0' && v > 5)
            return "the idempotent producer keeps order with at most 5 requests in flight";
    }
    if ((strcmp(prop, "retries") == 0 || strcmp(prop, "message.send.max.retries") == 0) &&
        strtol(value, NULL, 10) <= 0)
        return "the idempotent producer needs retries (at least 1)";
    if (strcmp(prop, "queuing.strategy") == 0 && strcmp(value, "fifo") != 0)
        return "the idempotent producer needs queuing.strategy fifo";
    return NULL;
}

/* First pass over the family: remembers every sensitive value, so that it is
 * masked in any message, also one about a setting that comes before it. */
static void collect_secret(void *ud, const char *key, const char *value)
{
    conf_ctx *c = ud;
    if (c->r != PF_SINK_OK || !sensitive(key + strlen(KF_PREFIX)) || !*value) return;
    char **v = realloc(c->s->secrets, (c->s->nsecrets + 1) * sizeof *v);
    if (v) c->s->secrets = v;
    if (!v || !(v[c->s->nsecrets] = strdup(value))) {
        c->r = fail(c->s, PF_SINK_RETRY, c->err, c->errlen, "out of memory");
        return;
    }
    c->s->nsecrets++;
}

static void pass_through(void *ud, const char *key, const char *value)
{
    conf_ctx *c = ud;
    if (c->r != PF_SINK_OK) return;
    const char *prop = key + strlen(KF_PREFIX);
    char buf[200];
    const char *why = refused(prop, value, c->idempotent, buf, sizeof buf);
    if (why) {
        c->r =
            fail(c->s, PF_SINK_ERROR, c->err, c->errlen, "sink option %s is refused: %s", key, why);
        return;
    }
    char rerr[512];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(c->conf, prop, value, rerr, sizeof rerr);
    trim_cut(c->s, rerr, sizeof rerr);
    if (res == RD_KAFKA_CONF_OK) {
        kf_log(c->s, 3, "librdkafka property %s = %s", prop, sensitive(prop) ? KF_MASK : value);
        return;
    }
    if (res == RD_KAFKA_CONF_UNKNOWN)
        c->r = fail(c->s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option %s: librdkafka has no property %s", key, prop);
    else if (sensitive(prop))
        c->r = fail(c->s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option %s: librdkafka refused its value (not shown)", key);
    else
        c->r = fail(c->s, PF_SINK_ERROR, c->err, c->errlen, "sink option %s: %s", key, rerr);
}

static pf_sink_result set_prop(conf_ctx *c, const char *option, const char *prop, const char *value)
{
    char rerr[512];
    if (rd_kafka_conf_set(c->conf, prop, value, rerr, sizeof rerr) == RD_KAFKA_CONF_OK)
        return PF_SINK_OK;
    trim_cut(c->s, rerr, sizeof rerr);
    return fail(c->s, PF_SINK_ERROR, c->err, c->errlen, "sink option %s: %s", option, rerr);
}

/* 1 when FEATURE is in librdkafka's comma-separated builtin.features. */
static int has_feature(rd_kafka_conf_t *conf, const char *feature)
{
    char list[512];
    size_t sz = sizeof list;
    if (rd_kafka_conf_get(conf, "builtin.features", list, &sz) != RD_KAFKA_CONF_OK) return 0;
    size_t fl = strlen(feature);
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == fl && strncmp(p, feature, l) == 0) return 1;
        p += l;
        if (*p == ',') p++;
    }
    return 0;
}

/* Fills CONF from the sink options. */
static pf_sink_result configure(conf_ctx *c)
{
    kf_state *s = c->s;
    const pf_sink_host *h = s->host;
    const pf_sink_host_api *api = s->api;
    char num[32];
    pf_sink_result r;

    api->options_with_prefix(h, KF_PREFIX, collect_secret, c);
    if (c->r != PF_SINK_OK) return c->r;
    if ((r = set_prop(c, "brokers", "bootstrap.servers", s->brokers)) != PF_SINK_OK) return r;

    const char *acks = api->option(h, "acks");
    if (!acks) acks = "all";
    if (strcmp(acks, "all") == 0) {
        c->idempotent = 1;
    } else if (strcmp(acks, "1") == 0 || strcmp(acks, "0") == 0) {
        c->idempotent = 0;
        kf_log(s, 1,
               "acks: %s turns the idempotent producer off: retried sends may be duplicated or "
               "reordered%s",
               acks,
               acks[0] == '0' ? ", and a commit no longer proves that Kafka stored anything" : "");
    } else {
        return fail(s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option acks must be all, 1 or 0, not '%s'", acks);
    }
    if ((r = set_prop(c, "acks", "acks", strcmp(acks, "all") == 0 ? "all" : acks)) != PF_SINK_OK ||
        (r = set_prop(c, "acks", "enable.idempotence", c->idempotent ? "true" : "false")) !=
            PF_SINK_OK)
        return r;

    const char *comp = api->option(h, "compression");
    if (!comp) comp = "lz4";
    static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    int known = 0;
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        if (strcmp(comp, codecs[i]) == 0) known = 1;
    if (!known)
        return fail(s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option compression must be none, gzip, snappy, lz4 or zstd, not '%s'",
                    comp);
    if (strcmp(comp, "none") != 0 && !has_feature(c->conf, comp))
        return fail(s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option compression: this librdkafka (%s) was built without %s",
                    rd_kafka_version_str(), comp);
    if ((r = set_prop(c, "compression", "compression.codec", comp)) != PF_SINK_OK) return r;

    s->linger_ms = api->option_int(h, "linger", 20);
    s->delivery_timeout_ms = api->option_int(h, "delivery_timeout", 120000);
    int64_t batch = api->option_int(h, "batch_size", 1000000);
    if (s->linger_ms < 0 || s->linger_ms > 900000)
        return fail(s, PF_SINK_ERROR, c->err, c->errlen, "sink option linger must be at most 15m");
    if (s->delivery_timeout_ms <= s->linger_ms || s->delivery_timeout_ms > INT32_MAX)
        return fail(s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option delivery_timeout (%lld ms) must be longer than linger (%lld ms) "
                    "and at most 24 days",
                    (long long)s->delivery_timeout_ms, (long long)s->linger_ms);
    if (batch < 1 || batch > INT32_MAX)
        return fail(s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option batch_size must be between 1 byte and 2 GiB");
    s->preflight_timeout_ms = api->option_int(h, "preflight_timeout", 5000);
    if (s->preflight_timeout_ms < 1 || s->preflight_timeout_ms > INT32_MAX)
        return fail(s, PF_SINK_ERROR, c->err, c->errlen,
                    "sink option preflight_timeout must be between 1ms and 24 days");
    snprintf(num, sizeof num, "%lld", (long long)s->linger_ms);
    if ((r = set_prop(c, "linger", "linger.ms", num)) != PF_SINK_OK) return r;
    snprintf(num, sizeof num, "%lld", (long long)s->delivery_timeout_ms);
    if ((r = set_prop(c, "delivery_timeout", "delivery.timeout.ms", num)) != PF_SINK_OK) return r;
    snprintf(num, sizeof num, "%lld", (long long)batch);
    if ((r = set_prop(c, "batch_size", "batch.size", num)) != PF_SINK_OK) return r;
    /* Bounds the producer's memory: at most 64 MiB of messages wait for
     * delivery (librdkafka's own default is 1 GiB); a full queue makes
     * writes wait for delivery reports. librdkafka.queue.buffering.max.kbytes
     * overrides it. */
    if ((r = set_prop(c, "librdkafka.queue.buffering.max.kbytes", "queue.buffering.max.kbytes",
                      "65536")) != PF_SINK_OK)
        return r;

    const char *flow = api->flow_name(h);
    char cid[200];
    snprintf(cid, sizeof cid, "ppflow-%s", flow && *flow ? flow : "flow");
    if ((r = set_prop(c, "client.id", "client.id", cid)) != PF_SINK_OK ||
        (r = set_prop(c, "log.queue", "log.queue", "true")) != PF_SINK_OK)
        return r;

    api->options_with_prefix(h, KF_PREFIX, pass_through, c);
    return c->r;
}

/* ---- topics ------------------------------------------------------------------ */

/* TMPL with every {stream} replaced by STREAM; NULL when out of memory. */
static char *expand_topic(const char *tmpl, const char *stream)
{
    size_t n = 0, sl = strlen(stream);
    for (const char *p = tmpl; (p = strstr(p, "{stream}")); p += 8)
        n++;
    size_t len = strlen(tmpl) + n * sl - n * 8;
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{stream}", 8) == 0) {
            memcpy(o, stream, sl);
            o += sl;
            p += 8;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Why NAME cannot be a Kafka topic, or NULL. */
static const char *topic_problem(const char *name)
{
    size_t l = strlen(name);
    if (l == 0) return "it is empty";
    if (l > KF_TOPIC_MAX) return "it is longer than 249 characters";
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return "'.' and '..' are not allowed";
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return "only letters, digits, '.', '_' and '-' are allowed";
    return NULL;
}

static pf_sink_result open_topics(kf_state *s, const char *tmpl, const char *const *streams,
                                  size_t nstreams, char *err, size_t errlen)
{
    s->topics = calloc(nstreams ? nstreams : 1, sizeof *s->topics);
    if (!s->topics) return fail(s, PF_SINK_RETRY, err, errlen, "out of memory");
    for (size_t i = 0; i < nstreams; i++) {
        kf_topic *t = &s->topics[s->ntopics];
        t->stream = strdup(streams[i]);
        t->name = expand_topic(tmpl, streams[i]);
        s->ntopics++;
        if (!t->stream || !t->name) return fail(s, PF_SINK_RETRY, err, errlen, "out of memory");
        const char *why = topic_problem(t->name);
        if (why)
            return fail(s, PF_SINK_ERROR, err, errlen,
                        "topic '%.260s' (sink option topic '%.260s', stream '%.100s') is not a "
                        "valid Kafka topic name: %s",
                        t->name, tmpl, streams[i], why);
        t->rkt = rd_kafka_topic_new(s->rk, t->name, NULL);
        if (!t->rkt)
            return fail(s, PF_SINK_ERROR, err, errlen, "cannot use topic %s: %s", t->name,
                        rd_kafka_err2str(rd_kafka_last_error()));
    }
    return PF_SINK_OK;
}

/* ---- preflight ----------------------------------------------------------------- */

/* The answer when the cluster's metadata could not be had (E): FATAL when
 * the brokers refused this client meanwhile (authentication, ACLs),
 * otherwise RETRY naming the brokers and what to check. */
static pf_sink_result unreachable(kf_state *s, rd_kafka_resp_err_t e, char *err, size_t errlen)
{
    if (s->refused_err)
        return destination_refuses(s, err, errlen, s->refused_err,
                                   "the Kafka brokers refuse this client", s->refused_reason);
    if (rd_kafka_fatal_error(s->rk, NULL, 0))
        return producer_fatal(s, err, errlen, "cannot open the Kafka producer");
    return fail(s, PF_SINK_RETRY, err, errlen,
                "cannot reach the Kafka brokers %s within %lld ms (sink option preflight_timeout; "
                "%s): check that they run, that this host can connect to them (addresses, "
                "ports, firewalls) and that librdkafka.security.protocol matches their "
                "listeners%s%.*s",
                s->brokers, (long long)s->preflight_timeout_ms, rd_kafka_err2name(e),
                s->last_reason[0] ? "; last error: " : "", KF_REASON_MAX, s->last_reason);
}

/* Asks the cluster for topic T's metadata, waiting until DEADLINE at most.
 * Returns the request's error (NO_ERROR: the cluster answered) and then
 * stores the topic's own error in *TE (NO_ERROR: it exists); *TE is left
 * alone when the request failed. */
static rd_kafka_resp_err_t topic_metadata(kf_state *s, const kf_topic *t, int64_t deadline,
                                          rd_kafka_resp_err_t *te)
{
    int64_t left = deadline - now_ms();
    if (left <= 0) return RD_KAFKA_RESP_ERR__TIMED_OUT;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(s->rk, 0, t->rkt, &md, (int)left);
    /* Serves the error callback: why no broker could be used. */
    rd_kafka_poll(s->rk, 0);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return e;
    *te = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    for (int k = 0; k < md->topic_cnt; k++)
        if (md->topics[k].topic && strcmp(md->topics[k].topic, t->name) == 0)
            *te = md->topics[k].err;
    rd_kafka_metadata_destroy(md);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Proves that the cluster can take records before the host makes its first
 * API call: asks for the metadata of every topic, all within
 * preflight_timeout. OK when every topic exists or is being created
 * (LEADER_NOT_AVAILABLE); RETRY when the brokers do not answer in time or a
 * topic's answer is transient; FATAL when the cluster refuses this client or
 * a topic, or when a topic is still unknown at the end of preflight_timeout
 * (brokers that create topics through their controller answer "unknown"
 * while they do, so an unknown topic is asked for again until then). */
static pf_sink_result preflight(kf_state *s, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + s->preflight_timeout_ms;
    for (size_t i = 0; i < s->ntopics; i++) {
        const kf_topic *t = &s->topics[i];
        size_t j = 0;
        while (j < i && strcmp(s->topics[j].name, t->name) != 0)
            j++;
        if (j < i) continue; /* two streams, one topic: asked already */
        rd_kafka_resp_err_t te = RD_KAFKA_RESP_ERR_NO_ERROR, e;
        for (;;) {
            if ((e = topic_metadata(s, t, deadline, &te)) != RD_KAFKA_RESP_ERR_NO_ERROR) break;
            int64_t left = deadline - now_ms();
            if ((te != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
                 te != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) ||
                left <= 0)
                break;
            /* Serving callbacks meanwhile; each may end a poll early. */
            int64_t until = now_ms() + (left < KF_PREFLIGHT_ASK_MS ? left : KF_PREFLIGHT_ASK_MS);
            for (int64_t w; (w = until - now_ms()) > 0;)
                rd_kafka_poll(s->rk, (int)w);
        }
        /* A topic still unknown when the time is up is an answer, not a
         * timeout. */
        if (e == RD_KAFKA_RESP_ERR__TIMED_OUT && (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                                                  te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC))
            e = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return unreachable(s, e, err, errlen);
        if (te == RD_KAFKA_RESP_ERR_NO_ERROR || te == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
            continue;
        char what[KF_TOPIC_MAX + 200];
        if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
            te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
            snprintf(what, sizeof what,
                     "topic %s (stream %.100s) does not exist and the cluster did not create it "
                     "within %lld ms (sink option preflight_timeout)",
                     t->name, t->stream, (long long)s->preflight_timeout_ms);
            return destination_refuses(s, err, errlen, te, what, NULL);
        }
        if (kf_error_class(te) == PF_SINK_FATAL) {
            snprintf(what, sizeof what, "the cluster refuses topic %s (stream %.100s)", t->name,
                     t->stream);
            return destination_refuses(s, err, errlen, te, what, NULL);
        }
        return fail(s, PF_SINK_RETRY, err, errlen,
                    "the cluster's metadata for topic %s: %s (%s; brokers %s)", t->name,
                    rd_kafka_err2str(te), rd_kafka_err2name(te), s->brokers);
    }
    /* The idempotent producer may already have been refused its producer
     * id (a missing ACL on the cluster). */
    if (rd_kafka_fatal_error(s->rk, NULL, 0))
        return producer_fatal(s, err, errlen, "cannot open the Kafka producer");
    return PF_SINK_OK;
}

/* ---- resume token ------------------------------------------------------------ */

static int token_number(const char *tok, const char *name, int64_t *out)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = strstr(tok, pat);
    if (!p) return 0;
    char *end;
    long long v = strtoll(p + strlen(pat), &end, 10);
    if (end == p + strlen(pat) || v < 0) return 0;
    *out = v;
    return 1;
}

static void make_token(kf_state *s)
{
    snprintf(s->token, sizeof s->token, "{\"sink\":\"kafka\",\"messages\":%lld,\"commits\":%lld}",
             (long long)s->total_messages, (long long)s->total_commits);
}

/* ---- the callbacks -------------------------------------------------------------- */

static void kf_close(void *p)
{
    kf_state *s = p;
    if (!s) return;
    if (s->rk) {
        if (s->produced > s->delivered + s->failed) {
            /* Messages of a batch that was never committed: the host sends
             * the batch again, so they are dropped rather than waited for. */
            rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(s->rk, 0);
        }
    }
    for (size_t i = 0; i < s->ntopics; i++) {
        if (s->topics[i].rkt) rd_kafka_topic_destroy(s->topics[i].rkt);
        free(s->topics[i].stream);
        free(s->topics[i].name);
    }
    if (s->rk) rd_kafka_destroy(s->rk);
    for (size_t i = 0; i < s->nsecrets; i++) {
        explicit_bzero(s->secrets[i], strlen(s->secrets[i]));
        free(s->secrets[i]);
    }
    free(s->secrets);
    free(s->topics);
    free(s->brokers);
    free(s);
}

static pf_sink_result kf_open(const pf_sink_host *host, const pf_sink_host_api *api,
                              const char *const *streams, size_t nstreams, const char *resume,
                              void **state, char *err, size_t errlen)
{
    *state = NULL;
    if (api->struct_size < offsetof(pf_sink_host_api, options_with_prefix) + sizeof(void *)) {
        snprintf(err, errlen, "this ppflow's host API is too old for the Kafka sink");
        return PF_SINK_ERROR;
    }
    const char *brokers = api->option(host, "brokers");
    if (!brokers || !*brokers) {
        snprintf(err, errlen, "sink option brokers is required");
        return PF_SINK_ERROR;
    }
    kf_state *s = calloc(1, sizeof *s);
    if (!s || !(s->brokers = strdup(brokers))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return PF_SINK_RETRY;
    }
    s->host = host;
    s->api = api;
    s->use_key = (int)api->option_int(host, "key", 1);

    pf_sink_result r;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        kf_close(s);
        snprintf(err, errlen, "out of memory");
        return PF_SINK_RETRY;
    }
    conf_ctx c = {s, conf, 0, err, errlen, PF_SINK_OK};
    if ((r = configure(&c)) != PF_SINK_OK) {
        rd_kafka_conf_destroy(conf);
        kf_close(s);
        return r;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    char rerr[512];
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof rerr);
    if (!s->rk) {
        trim_cut(s, rerr, sizeof rerr);
        rd_kafka_conf_destroy(conf);
        r = fail(s, PF_SINK_ERROR, err, errlen, "cannot create the Kafka producer (brokers %s): %s",
                 s->brokers, rerr);
        kf_close(s);
        return r;
    }
    rd_kafka_set_log_queue(s->rk, NULL);

    const char *tmpl = api->option(host, "topic");
    if ((r = open_topics(s, tmpl ? tmpl : "ppflow.{stream}", streams, nstreams, err, errlen)) !=
        PF_SINK_OK) {
        kf_close(s);
        return r;
    }

    if (resume) {
        if (token_number(resume, "messages", &s->total_messages) &&
            token_number(resume, "commits", &s->total_commits)) {
            kf_log(s, 3,
                   "continuing after %lld messages in %lld commits; records produced after the "
                   "last commit (if any) are sent again",
                   (long long)s->total_messages, (long long)s->total_commits);
        } else {
            s->total_messages = s->total_commits = 0;
            kf_log(s, 1, "the resume token is not a Kafka sink token; counting from zero");
        }
    }
    if ((r = preflight(s, err, errlen)) != PF_SINK_OK) {
        kf_close(s);
        return r;
    }
    make_token(s);
    kf_log(s, 3, "producing to %s (brokers %s, %s producer)", s->ntopics ? s->topics[0].name : "-",
           s->brokers, c.idempotent ? "idempotent" : "non-idempotent");
    *state = s;
    return PF_SINK_OK;
}

static kf_topic *topic_for(kf_state *s, const char *stream)
{
    for (size_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i].stream, stream) == 0) return &s->topics[i];
    return NULL;
}

/* The outcome of a failed rd_kafka_producev (other than a full queue). */
static pf_sink_result produce_failed(kf_state *s, const kf_topic *t, const pf_sink_record *r,
                                     rd_kafka_resp_err_t e, char *err, size_t errlen)
{
    char what[KF_TOPIC_MAX + 64];
    snprintf(what, sizeof what, "cannot produce to topic %s", t->name);
    if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        return fail(s, PF_SINK_ERROR, err, errlen,
                    "record of %zu bytes for topic %s is larger than the producer's "
                    "message.max.bytes",
                    r->json_len + (s->use_key && r->key ? r->key_len : 0), t->name);
    if (e == RD_KAFKA_RESP_ERR__FATAL) return producer_fatal(s, err, errlen, what);
    pf_sink_result c = kf_error_class(e);
    if (c == PF_SINK_FATAL) return destination_refuses(s, err, errlen, e, what, NULL);
    return fail(s, c, err, errlen, "%s (brokers %s): %s (%s)", what, s->brokers,
                rd_kafka_err2str(e), rd_kafka_err2name(e));
}

static pf_sink_result write_records(kf_state *s, const pf_sink_record *recs, size_t n, char *err,
                                    size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const pf_sink_record *r = &recs[i];
        kf_topic *t = topic_for(s, r->stream);
        if (!t)
            return fail(s, PF_SINK_ERROR, err, errlen,
                        "record for stream '%.100s', which the flow did not announce", r->stream);
        const void *key = s->use_key ? r->key : NULL;
        size_t key_len = key ? r->key_len : 0;
        int64_t deadline = 0;
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                s->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE((void *)r->json, r->json_len), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return produce_failed(s, t, r, e, err, errlen);
            /* The local queue is full: delivery reports free it. Every queued
             * message is done within delivery_timeout, so this ends. */
            int64_t now = now_ms();
            if (!deadline) {
                deadline = now + s->delivery_timeout_ms + KF_GRACE_MS;
                if (!s->queue_full_logged++)
                    kf_log(s, 3, "the local queue is full (topic %s); waiting for deliveries",
                           t->name);
            }
            if (now >= deadline) {
                char what[KF_TOPIC_MAX + 100];
                snprintf(what, sizeof what,
                         "cannot produce to topic %s: the local queue stayed full for %lld ms",
                         t->name, (long long)(s->delivery_timeout_ms + KF_GRACE_MS));
                if (s->refused_err)
                    return destination_refuses(s, err, errlen, s->refused_err, what,
                                               s->refused_reason);
                return fail(s, PF_SINK_RETRY, err, errlen, "%s (brokers %s)", what, s->brokers);
            }
            rd_kafka_poll(s->rk, 100);
        }
        s->produced++;
        if (s->produced % KF_POLL_EVERY == 0) rd_kafka_poll(s->rk, 0);
    }
    rd_kafka_poll(s->rk, 0);
    return PF_SINK_OK;
}

static pf_sink_result kf_write(void *p, const pf_sink_record *recs, size_t n, char *err,
                               size_t errlen)
{
    kf_state *s = p;
    if (s->poisoned != PF_SINK_OK) return fail(s, s->poisoned, err, errlen, "%s", s->poison_msg);
    pf_sink_result r = write_records(s, recs, n, err, errlen);
    if (r != PF_SINK_OK) {
        s->poisoned = r;
        snprintf(s->poison_msg, sizeof s->poison_msg, "%s", err);
    }
    return r;
}

static pf_sink_result kf_commit(void *p, const char **token, char *err, size_t errlen)
{
    kf_state *s = p;
    *token = NULL;
    if (s->poisoned != PF_SINK_OK) return fail(s, s->poisoned, err, errlen, "%s", s->poison_msg);
    int64_t wait = s->delivery_timeout_ms + KF_GRACE_MS, deadline = now_ms() + wait;
    pf_sink_result r = PF_SINK_OK;
    char *msg = s->poison_msg;
    size_t msglen = sizeof s->poison_msg;
    char what[KF_MSG_MAX];
    while (s->delivered + s->failed < s->produced) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            snprintf(what, sizeof what,
                     "%lld of %lld messages (topic %.200s, ...) still had no delivery report "
                     "after %lld ms",
                     (long long)(s->produced - s->delivered - s->failed), (long long)s->produced,
                     s->ntopics ? s->topics[0].name : "-", (long long)wait);
            /* Waiting in vain because the cluster refuses this client. */
            if (s->refused_err)
                r = destination_refuses(s, msg, msglen, s->refused_err, what, s->refused_reason);
            else
                r = fail(s, PF_SINK_RETRY, msg, msglen, "%s (brokers %s)", what, s->brokers);
            break;
        }
        rd_kafka_flush(s->rk, (int)(left < 200 ? left : 200));
    }
    if (r == PF_SINK_OK && s->failed) {
        char part[32] = "", count[64], where[KF_MSG_MAX];
        if (s->fail_partition >= 0)
            snprintf(part, sizeof part, " partition %d", (int)s->fail_partition);
        snprintf(count, sizeof count, "%lld of %lld messages were not delivered",
                 (long long)s->failed, (long long)s->produced);
        if (s->fail_class == PF_SINK_FATAL) {
            snprintf(where, sizeof where, "%s; first refusal: topic %s%s", count, s->fail_topic,
                     part);
            r = destination_refuses(s, msg, msglen, s->fail_err, where, NULL);
        } else if (rd_kafka_fatal_error(s->rk, NULL, 0)) { /* producer_fatal reads the text */
            snprintf(where, sizeof where, "%s (first failure: topic %s: %s)", count, s->fail_topic,
                     rd_kafka_err2str(s->fail_err));
            r = producer_fatal(s, msg, msglen, where);
        } else if (s->fail_class == PF_SINK_RETRY && s->refused_err) {
            r = destination_refuses(s, msg, msglen, s->refused_err, count, s->refused_reason);
        } else {
            r = fail(s, s->fail_class == PF_SINK_ERROR ? PF_SINK_ERROR : PF_SINK_RETRY, msg, msglen,
                     "%s; first failure: topic %s%s: %s (%s; brokers %s)", count, s->fail_topic,
                     part, rd_kafka_err2str(s->fail_err), rd_kafka_err2name(s->fail_err),
                     s->brokers);
        }
    }
    if (r != PF_SINK_OK) {
        s->poisoned = r;
        return fail(s, r, err, errlen, "%s", s->poison_msg);
    }
    s->total_messages += s->produced;
    s->total_commits++;
    kf_log(s, 3, "commit %lld: %lld messages delivered", (long long)s->total_commits,
           (long long)s->produced);
    s->produced = s->delivered = 0;
    make_token(s);
    *token = s->token;
    return PF_SINK_OK;
}

__attribute__((visibility("default"))) const pf_sink_descriptor ppflow_sink_descriptor = {
    .abi_version = PF_SINK_ABI_VERSION,
    .struct_size = sizeof(pf_sink_descriptor),
    .name = "kafka",
    .description = "Kafka topics through librdkafka's idempotent producer (at least once)",
    .options = kf_options,
    .open = kf_open,
    .write = kf_write,
    .commit = kf_commit,
    .close = kf_close,
    .stored_checkpoint = NULL,
};
