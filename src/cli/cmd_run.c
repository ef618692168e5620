/* cmd_run.c: `ppflow run` and `ppflow test`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "util/log.h"
#include "util/timeutil.h"

#define MAX_SETS 64

static void usage(FILE *f, int test)
{
    if (test)
        fprintf(f, "usage: ppflow test [options] FLOW.yaml\n\n"
                   "Fetches the first window or page of the flow and prints its records as NDJSON\n"
                   "on stdout. Writes nothing to the sink and does not touch the checkpoint.\n\n"
                   "options:\n"
                   "  -n, --limit N          print at most N records (default 10; -1: all)\n"
                   "  -s, --set NAME=VALUE   override a template parameter (or a dotted flow key,\n"
                   "                         e.g. sink.path=out/x.ndjson)\n"
                   "  -v, --verbose          log requests\n"
                   "  -h, --help             this help\n");
    else
        fprintf(f, "usage: ppflow run [options] FLOW.yaml\n\n"
                   "Runs the flow once: plans the requests (time windows of at most the API's\n"
                   "limit), fetches them, extracts the records, writes them to the sink and\n"
                   "advances the checkpoint after each window the sink reports durable. A run\n"
                   "that is stopped resumes at the last durable window.\n\n"
                   "options:\n"
                   "  -s, --set NAME=VALUE   override a template parameter (or a dotted flow key)\n"
                   "  -q, --quiet            log warnings and errors only\n"
                   "  -v, --verbose          log requests\n"
                   "      --log-format F     text (default) or json\n"
                   "  -h, --help             this help\n\n"
                   "SIGINT/SIGTERM stop after the window in flight; a second signal aborts.\n"
                   "Exit codes: 0 done, 1 failed (network, sink, data), 2 configuration error,\n"
                   "130 interrupted.\n");
}

static int run_or_test(int argc, char **argv, int test)
{
    static const struct option longopts[] = {{"set", required_argument, NULL, 's'},
                                             {"limit", required_argument, NULL, 'n'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"log-format", required_argument, NULL, 'L'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    pf_flow_override sets[MAX_SETS];
    size_t nsets = 0;
    long limit = 10;
    optind = 0; /* full restart of GNU getopt, which permutes: options anywhere */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "s:n:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (nsets == MAX_SETS) {
                fprintf(stderr, "ppflow: at most %d --set options\n", MAX_SETS);
                return PF_EXIT_USAGE;
            }
            if (pf_cli_parse_set(optarg, &sets[nsets]) != 0) return PF_EXIT_USAGE;
            nsets++;
            break;
        case 'n': {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (!*optarg || *end || limit < -1) {
                fprintf(stderr, "ppflow test: --limit needs a number >= -1, got '%s'\n", optarg);
                return PF_EXIT_USAGE;
            }
            break;
        }
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
            usage(stdout, test);
            return PF_EXIT_OK;
        default:
            fprintf(stderr, "ppflow %s: unknown or incomplete option '%s'\n", argv[0],
                    argv[optind - 1]);
            usage(stderr, test);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ppflow %s: give exactly one flow file\n", argv[0]);
        usage(stderr, test);
        return PF_EXIT_USAGE;
    }
    int code = PF_EXIT_OK;
    pf_flow *f = pf_cli_load_flow(argv[optind], sets, nsets, &code);
    if (!f) return code;
    pf_cli_install_signals();
    pf_run_opts o;
    pf_run_opts_default(&o);
    o.test = test;
    o.limit = limit;
    pf_run_stats stats;
    pf_error err;
    pf_error_clear(&err);
    pf_status st = pf_engine_run(f, &o, &stats, &err);
    if (st != PF_OK) {
        pf_cli_print_error(argv[0], &err);
        if (!test && st == PF_EINTERRUPTED)
            fprintf(stderr,
                    "ppflow run: interrupted after delivering %lld records; `ppflow run %s` "
                    "resumes at the checkpoint (what was in flight is fetched again and "
                    "delivered once)\n",
                    stats.records, argv[optind]);
        else if (!test && st != PF_ECONFIG)
            fprintf(stderr,
                    "ppflow run: %lld records delivered before the failure; the "
                    "checkpoint is at the last durable window\n",
                    stats.records);
    } else if (!test) {
        char cur[PF_TIME_FMT_SIZE] = "none";
        if (stats.has_cursor) pf_time_format(stats.cursor_ms, cur);
        int windowed = f->tmpl->paging == PF_PAGING_TIME_WINDOW && !f->local_file;
        pf_log_info("done: %lld records, %lld %s, %lld bytes received, %lld retries; "
                    "checkpoint %s",
                    stats.records, stats.windows, windowed ? "windows" : "requests", stats.bytes,
                    stats.retries, cur);
        if (stats.late_arrivals || stats.duplicates)
            pf_log_info("late arrivals: %lld new records found in the look-back, %lld already "
                        "delivered and dropped",
                        stats.late_arrivals, stats.duplicates);
    }
    int exit_code = pf_cli_exit_code(st);
    if (!test && stats.gap) {
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        pf_time_format(stats.gap_start_ms, a);
        pf_time_format(stats.gap_end_ms, b);
        fprintf(stderr,
                "ppflow %s: gap: events from %s to %s were lost (older than the API "
                "keeps); a gap record was written to stream 'gaps'\n",
                argv[0], a, b);
        if (exit_code == PF_EXIT_OK) exit_code = PF_EXIT_GAP;
    }
    if (!test && stats.dead_letters > 0) {
        /* Records the sink refused are kept, not lost; the run still fails
         * so that monitoring notices. */
        fprintf(stderr,
                "ppflow %s: %lld records were refused by the sink and written to "
                "%s.deadletter.ndjson with the reason\n",
                argv[0], stats.dead_letters, f->state_path);
        if (exit_code == PF_EXIT_OK) exit_code = PF_EXIT_FAIL;
    }
    pf_flow_free(f);
    return exit_code;
}

int pf_cmd_run(int argc, char **argv)
{
    return run_or_test(argc, argv, 0);
}

int pf_cmd_test(int argc, char **argv)
{
    return run_or_test(argc, argv, 1);
}
