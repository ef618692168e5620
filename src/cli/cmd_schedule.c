/* cmd_schedule.c: `ppflow schedule`: options, then the scheduler loop of
 * sched/runner.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "sched/runner.h"
#include "util/log.h"
#include "util/timeutil.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ppflow schedule [options] FLOW.yaml... | DIR/...\n\n"
            "Runs each flow on its `schedule:` ({every: 5m} or {cron: \"*/5 * * * *\",\n"
            "timezone: Europe/Berlin}) until stopped. A directory stands for its *.yaml and\n"
            "*.yml files. Each run is a separate process doing what `ppflow run` does; a\n"
            "flow never overlaps with itself, and another ppflow process running the same\n"
            "flow makes the run skip (\"busy\"). Two flows may not write the same NDJSON\n"
            "file (refused at start, exit 2; on SIGHUP the new version is not loaded).\n\n"
            "options:\n"
            "  -j, --max-parallel N   runs at once at most (default %d)\n"
            "      --grace DURATION   after SIGTERM/SIGINT, how long runs in flight may take\n"
            "                         to stop after their last commit (default 30s)\n"
            "      --metrics-port P   serve Prometheus metrics on http://127.0.0.1:P/metrics\n"
            "                         (0: any free port, logged; default: off), and \"ok\" on\n"
            "                         /healthz while the scheduler runs\n"
            "      --metrics-bind ADDR  the address the metrics port listens on (default\n"
            "                         127.0.0.1; e.g. ::1, or 0.0.0.0 for every interface)\n"
            "      --list[=N]         print each flow's schedule and next N run times (default\n"
            "                         5), then exit without running anything\n"
            "  -q, --quiet            log warnings and errors only\n"
            "  -v, --verbose          log requests\n"
            "      --log-format F     text (default) or json\n"
            "  -h, --help             this help\n\n"
            "Signals: SIGTERM or SIGINT stops starting runs and waits for the runs in flight\n"
            "(exit 0); a second one kills them at once (exit 130). SIGHUP reloads the flow\n"
            "files: a file with errors is reported and its previous version keeps running.\n"
            "Exit codes: 0 stopped, 1 could not start, 2 configuration error, 130 aborted.\n",
            PF_SCHED_DEFAULT_MAX_PARALLEL);
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int pf_cmd_schedule(int argc, char **argv)
{
    /* Line-buffered stderr: each log line is one write, so lines from the
     * runs' processes and the scheduler never interleave mid-line. */
    static char errbuf[16384];
    setvbuf(stderr, errbuf, _IOLBF, sizeof errbuf);

    static const struct option longopts[] = {{"max-parallel", required_argument, NULL, 'j'},
                                             {"grace", required_argument, NULL, 'g'},
                                             {"metrics-port", required_argument, NULL, 'm'},
                                             {"metrics-bind", required_argument, NULL, 'B'},
                                             {"list", optional_argument, NULL, 'l'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"log-format", required_argument, NULL, 'L'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    pf_sched_opts o;
    memset(&o, 0, sizeof o);
    o.max_parallel = PF_SCHED_DEFAULT_MAX_PARALLEL;
    o.grace_ms = PF_SCHED_DEFAULT_GRACE_MS;
    o.metrics_port = -1;
    long list = 0;
    optind = 0; /* full restart of GNU getopt, which permutes: options anywhere */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "j:qvh", longopts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'j':
            if (parse_int(optarg, 1, PF_SCHED_MAX_PARALLEL_LIMIT, &v) != 0) {
                fprintf(stderr, "ppflow schedule: --max-parallel needs a number 1-%d, got '%s'\n",
                        PF_SCHED_MAX_PARALLEL_LIMIT, optarg);
                return PF_EXIT_USAGE;
            }
            o.max_parallel = (int)v;
            break;
        case 'g': {
            int64_t ms;
            pf_error e;
            if (pf_duration_parse(optarg, &ms, &e) != PF_OK || ms > INT64_C(86400000)) {
                fprintf(stderr,
                        "ppflow schedule: --grace needs a duration up to 1d (e.g. 30s), "
                        "got '%s'\n",
                        optarg);
                return PF_EXIT_USAGE;
            }
            o.grace_ms = ms;
            break;
        }
        case 'm':
            if (parse_int(optarg, 0, 65535, &v) != 0) {
                fprintf(stderr, "ppflow schedule: --metrics-port needs a port 0-65535, got '%s'\n",
                        optarg);
                return PF_EXIT_USAGE;
            }
            o.metrics_port = (int)v;
            break;
        case 'B':
            o.metrics_bind = optarg;
            break;
        case 'l':
            list = 5;
            if (optarg && parse_int(optarg, 1, 1000, &list) != 0) {
                fprintf(stderr, "ppflow schedule: --list takes a count 1-1000, got '%s'\n", optarg);
                return PF_EXIT_USAGE;
            }
            break;
        case 'q':
            pf_log_set_level(PF_LOG_WARN);
            break;
        case 'v':
            pf_log_set_level(PF_LOG_DEBUG);
            break;
        case 'L':
            if (pf_log_set_format(optarg) != 0) {
                fprintf(stderr, "ppflow: --log-format must be text or json\n");
                return PF_EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return PF_EXIT_OK;
        default:
            fprintf(stderr, "ppflow schedule: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "ppflow schedule: give flow files or directories\n");
        usage(stderr);
        return PF_EXIT_USAGE;
    }
    o.paths = argv + optind;
    o.npaths = (size_t)(argc - optind);
    if (list) return pf_sched_list(&o, (int)list, stdout);
    return pf_sched_main(&o);
}
