/* main.c: the ppflow command: process-wide settings made before anything
 * else (no core dumps, signal dispositions), global options and dispatch to
 * subcommands. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli/commands.h"
#include "util/didyoumean.h"
#include "util/log.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", pf_cmd_run, "run a flow once: fetch, extract, deliver, advance the checkpoint"},
    {"test", pf_cmd_test, "fetch the first page or window and print records; writes nothing"},
    {"validate", pf_cmd_validate, "check flow files and their templates without network access"},
    {"templates", pf_cmd_templates, "list bundled templates, or show one's parameters"},
    {"sinks", pf_cmd_sinks, "list the sinks available and their options"},
    {"suggest", pf_cmd_suggest, "suggest record paths from a sample file or a flow's response"},
    {"decode", pf_cmd_decode, "decode URL Defense links (v1, v2, v3), offline or --online"},
    {"jsonpath", pf_cmd_jsonpath, "evaluate an RFC 9535 JSONPath query against a JSON document"},
    {"schedule", pf_cmd_schedule, "run flows on their schedules"},
    {"status", pf_cmd_status, "show each flow's checkpoint and last run"},
    {"plan", pf_cmd_plan, "count the API calls a run will make, against the daily budgets"},
    {"init", pf_cmd_init, "write a commented flow for a template, ready to validate"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: ppflow [--version] [--help] COMMAND [ARGS...]\n\n"
               "ppflow pulls security records from Proofpoint's HTTP APIs and delivers them\n"
               "to NDJSON files (and other sinks), resuming exactly where it stopped.\n\n"
               "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`ppflow COMMAND --help` describes a command.\n"
               "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,\n"
               "3 a run completed but lost a range the API no longer holds (gap).\n");
}

/* A core dump (or a debugger attaching as the same user) would expose the
 * secrets this process holds: credentials, tokens, the records. Unless
 * PPFLOW_ALLOW_CORE=1: the core size limit becomes 0 (soft and hard, so
 * neither this process nor its runs can raise it) and, on Linux, the
 * process is made non-dumpable (no core even through a core_pattern pipe,
 * no ptrace by other processes of the same user, /proc/PID/environ, mem
 * and the like owned by root). Forked runs inherit both. Failures are
 * ignored: nothing here is needed to work. */
static void apply_core_policy(void)
{
    const char *allow = getenv("PPFLOW_ALLOW_CORE");
    if (allow && strcmp(allow, "1") == 0) return;
    struct rlimit none = {.rlim_cur = 0, .rlim_max = 0};
    (void)setrlimit(RLIMIT_CORE, &none);
#ifdef __linux__
    (void)prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
#endif
}

int main(int argc, char **argv)
{
    apply_core_policy();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* Past a file-size limit (ulimit -f), writes fail with EFBIG and the
     * sink reports it cleanly, instead of the process being killed. */
    signal(SIGXFSZ, SIG_IGN);
    const char *cmd = argv[1];
    /* The scheduler is long-lived: a peer that goes away (a metrics client,
     * a log reader on a pipe) must not kill it; writes then fail with EPIPE.
     * Its runs inherit this. Other commands keep the default, so that
     * `ppflow ... | head` ends quietly. */
    if (strcmp(cmd, "schedule") == 0) signal(SIGPIPE, SIG_IGN);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 2 && strcmp(cmd, "help") == 0) {
            char *sub[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (strcmp(commands[i].name, argv[2]) == 0) return commands[i].fn(2, sub);
        }
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("ppflow %s\n", PPFLOW_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, cmd) == 0) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            pf_log_clear_secrets();
            return rc;
        }
    }
    const char *names[NCOMMANDS];
    for (size_t i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i].name;
    const char *near = pf_did_you_mean(cmd, names, NCOMMANDS);
    if (near) {
        fprintf(stderr, "ppflow: unknown command '%s'; did you mean '%s'?\n", cmd, near);
        return 2;
    }
    fprintf(stderr, "ppflow: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
