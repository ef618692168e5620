/* pf_kafka_mock.c: a Kafka cluster on loopback ports for the tests, made of
 * librdkafka's mock cluster (rdkafka_mock.h), which speaks the Kafka
 * protocol to real clients (the Kafka sink, kcat).
 *
 *   pf_kafka_mock BOOTSTRAP_FILE [BROKERS]
 *
 * Starts BROKERS brokers (default 3, ids 1..BROKERS), writes their bootstrap
 * servers ("127.0.0.1:PORT,...") to BOOTSTRAP_FILE (atomically: a temporary
 * file renamed into place) and prints "ready BOOTSTRAPS" on stdout. Runs until
 * stdin is closed, "quit" is read, or SIGTERM/SIGINT arrives. Commands on
 * stdin, one per line, each answered by one line "ok" or "error: WHY":
 *
 *   down ID                  broker ID (-1: all) drops its connections and refuses new ones
 *   up ID                    broker ID (-1: all) accepts connections again
 *   err API CODE COUNT       the next COUNT requests of API (produce, fetch, metadata,
 *                            init_producer_id or a number) fail with error CODE (a
 *                            number, e.g. 19 NOT_ENOUGH_REPLICAS; -195 drops the connection)
 *   clear API                forgets the errors still queued for API
 *   rtt ID MS                broker ID answers MS milliseconds late
 *   create TOPIC PARTITIONS  creates a topic (otherwise topics are created on first use)
 *   apiversion API MIN MAX   the brokers advertise versions MIN..MAX of API; "apiversion
 *                            metadata 0 4" lets clients ask for metadata without creating
 *                            the topics they name (allow.auto.create.topics=false), so
 *                            unknown topics stay unknown, as on brokers that do not create
 *                            topics
 *   quit                     stops
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_LEN 1024

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int write_file(const char *path, const char *text)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int api_key(const char *s, int16_t *out)
{
    static const struct {
        const char *name;
        int16_t key;
    } apis[] = {{"produce", 0},           {"fetch", 1},
                {"list_offsets", 2},      {"metadata", 3},
                {"find_coordinator", 10}, {"init_producer_id", 22}};
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        if (strcmp(s, apis[i].name) == 0) {
            *out = apis[i].key;
            return 0;
        }
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 100) return -1;
    *out = (int16_t)v;
    return 0;
}

/* Runs one command line; writes the answer to stdout. Returns 1 on quit. */
static int command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *argv[5] = {0};
    int argc = 0;
    for (char *tok = strtok(line, " \t\r"); tok && argc < 5; tok = strtok(NULL, " \t\r"))
        argv[argc++] = tok;
    if (argc == 0) return 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    int16_t key;
    if (strcmp(argv[0], "quit") == 0) {
        puts("ok");
        return 1;
    } else if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) && argc == 2) {
        int32_t id = (int32_t)strtol(argv[1], NULL, 10);
        e = argv[0][0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
                              : rd_kafka_mock_broker_set_up(mc, id);
    } else if (strcmp(argv[0], "err") == 0 && argc == 4 && api_key(argv[1], &key) == 0) {
        rd_kafka_resp_err_t code = (rd_kafka_resp_err_t)strtol(argv[2], NULL, 10);
        long cnt = strtol(argv[3], NULL, 10);
        if (cnt < 1 || cnt > 100000) {
            puts("error: COUNT must be 1..100000");
            return 0;
        }
        rd_kafka_resp_err_t *codes = malloc((size_t)cnt * sizeof *codes);
        if (!codes) {
            puts("error: out of memory");
            return 0;
        }
        for (long i = 0; i < cnt; i++)
            codes[i] = code;
        rd_kafka_mock_push_request_errors_array(mc, key, (size_t)cnt, codes);
        free(codes);
    } else if (strcmp(argv[0], "clear") == 0 && argc == 2 && api_key(argv[1], &key) == 0) {
        rd_kafka_mock_clear_request_errors(mc, key);
    } else if (strcmp(argv[0], "rtt") == 0 && argc == 3) {
        e = rd_kafka_mock_broker_set_rtt(mc, (int32_t)strtol(argv[1], NULL, 10),
                                         (int)strtol(argv[2], NULL, 10));
    } else if (strcmp(argv[0], "create") == 0 && argc == 3) {
        e = rd_kafka_mock_topic_create(mc, argv[1], (int)strtol(argv[2], NULL, 10), 1);
    } else if (strcmp(argv[0], "apiversion") == 0 && argc == 4 && api_key(argv[1], &key) == 0) {
        e = rd_kafka_mock_set_apiversion(mc, key, (int16_t)strtol(argv[2], NULL, 10),
                                         (int16_t)strtol(argv[3], NULL, 10));
    } else {
        printf("error: unknown command or wrong arguments: %s\n", argv[0]);
        return 0;
    }
    if (e)
        printf("error: %s\n", rd_kafka_err2str(e));
    else
        puts("ok");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s BOOTSTRAP_FILE [BROKERS]\n", argv[0]);
        return 2;
    }
    int nbrokers = argc == 3 ? atoi(argv[2]) : 3;
    if (nbrokers < 1 || nbrokers > 16) {
        fprintf(stderr, "BROKERS must be 1..16\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "cannot create the mock's client: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (!mc) {
        fprintf(stderr, "cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (write_file(argv[1], bootstraps) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", argv[1], strerror(errno));
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("ready %s\n", bootstraps);

    char line[LINE_MAX_LEN];
    size_t len = 0;
    int done = 0;
    while (!stop && !done) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        if (n < 0 && errno != EINTR) break;
        if (n <= 0) continue;
        ssize_t got = read(STDIN_FILENO, line + len, sizeof line - 1 - len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* stdin closed */
        len += (size_t)got;
        line[len] = '\0';
        char *nl;
        while (!done && (nl = strchr(line, '\n'))) {
            *nl = '\0';
            done = command(mc, line);
            size_t rest = len - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest + 1);
            len = rest;
        }
        if (len == sizeof line - 1) {
            puts("error: line too long");
            len = 0;
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
