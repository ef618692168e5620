/* cmd_plan.c: `ppflow plan FLOW.yaml`: how many API calls the next run (or a
 * backfill) will make, and against which call budget, before making any. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "flow/flowfiles.h"
#include "util/timeutil.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ppflow plan [--set NAME=VALUE]... FLOW.yaml|DIR...\n\n"
               "Prints what `ppflow run FLOW.yaml` would fetch now, without calling the API:\n"
               "the time range and windows (from the checkpoint, with the late-arrival\n"
               "look-back), the number of API calls, and for templates with a daily call\n"
               "budget the calls this credential made in the last 24 hours and what would\n"
               "remain. A directory stands for its *.yaml and *.yml files; each flow is\n"
               "planned in turn.\n\n"
               "Exit code 0, or 1 when the run would need more calls than the budget has\n"
               "left (the run would stop at the budget), 2 for an invalid flow.\n");
}

/* Plans the flow in FILE (with SETS); returns its exit code. */
static int plan_one(const char *file, pf_flow_override *sets, size_t nsets)
{
    int code = PF_EXIT_OK;
    pf_flow *f = pf_cli_load_flow(file, sets, nsets, &code);
    if (!f) return code;
    pf_plan p;
    pf_error err;
    pf_error_clear(&err);
    if (pf_engine_plan(f, &p, &err) != PF_OK) {
        pf_cli_print_error("plan", &err);
        pf_flow_free(f);
        return PF_EXIT_FAIL;
    }
    printf("flow:     %s (template %s)\n", f->name, f->tmpl->name);
    if (p.windowed) {
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        pf_time_format(p.start_ms, a);
        pf_time_format(p.end_ms, b);
        printf("range:    %s to %s (%s", a, b,
               p.from_checkpoint ? "from the checkpoint" : "first run");
        if (p.lookback_ms)
            printf(", with a %lld min look-back", (long long)(p.lookback_ms / 60000));
        printf(")\nwindows:  %lld\n", p.windows);
    }
    if (p.calls_min == p.calls_max)
        printf("calls:    %lld%s\n", p.calls_max, p.capped ? " (the per-run cap)" : "");
    else
        printf("calls:    at least %lld, at most %lld%s (pages are known only as they come)\n",
               p.calls_min, p.calls_max, p.capped ? ", the per-run cap" : "");
    int rc = PF_EXIT_OK;
    if (p.quota_pool) {
        long long left = p.quota_budget - p.quota_used;
        if (left < 0) left = 0;
        printf("budget:   %s: %ld of %lld calls used in the last 24 hours; %lld left\n",
               p.quota_pool, p.quota_used, p.quota_budget, left);
        if (p.calls_min > left) {
            char at[PF_TIME_FMT_SIZE];
            pf_time_format(p.quota_next_free_ms, at);
            printf("warning:  this run needs %lld calls but only %lld are left; it will stop at "
                   "the budget and continue on a later run%s%s\n",
                   p.calls_min, left, left ? "" : " (next call possible at ", left ? "" : at);
            if (!left) printf(")\n");
            rc = PF_EXIT_FAIL;
        } else if (p.calls_max > left) {
            printf("note:     this run may need up to %lld calls; %lld are left\n", p.calls_max,
                   left);
        }
    }
    pf_flow_free(f);
    return rc;
}

int pf_cmd_plan(int argc, char **argv)
{
    pf_flow_override sets[64];
    size_t nsets = 0;
    /* Options before or after the flows (GNU style); "--" ends them. */
    const char **paths = calloc((size_t)argc, sizeof *paths);
    if (!paths) {
        fprintf(stderr, "ppflow plan: out of memory\n");
        return PF_EXIT_FAIL;
    }
    size_t npaths = 0;
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            paths[npaths++] = a;
        } else if (strcmp(a, "--") == 0) {
            opts_done = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            free(paths);
            return PF_EXIT_OK;
        } else if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
            char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || nsets >= 64 || pf_cli_parse_set(v, &sets[nsets]) != 0) {
                if (!v || nsets >= 64)
                    fprintf(stderr, "ppflow plan: %s\n",
                            v ? "at most 64 --set options" : "--set needs NAME=VALUE");
                free(paths);
                return PF_EXIT_USAGE;
            }
            nsets++;
        } else {
            fprintf(stderr, "ppflow plan: unknown option '%s'\n\n", a);
            usage(stderr);
            free(paths);
            return PF_EXIT_USAGE;
        }
    }
    if (npaths == 0) {
        usage(stderr);
        free(paths);
        return PF_EXIT_USAGE;
    }
    /* Each operand a flow file, a directory standing for its flow files. */
    char **files = NULL;
    size_t nfiles = 0;
    int rc = pf_flow_files(paths, npaths, &files, &nfiles);
    free(paths);
    if (rc == -2) {
        fprintf(stderr, "ppflow plan: out of memory\n");
        return PF_EXIT_FAIL;
    }
    int worst = rc != 0 || nfiles == 0 ? PF_EXIT_USAGE : PF_EXIT_OK;
    if (rc == 0 && nfiles == 0) fprintf(stderr, "ppflow plan: no flow files (*.yaml or *.yml)\n");
    for (size_t i = 0; i < nfiles; i++) {
        if (i) printf("\n");
        fflush(stdout);
        int code = plan_one(files[i], sets, nsets);
        /* A flow that cannot be planned (2) outranks one over its budget (1). */
        if (code > worst) worst = code;
        free(files[i]);
    }
    free(files);
    return worst;
}
