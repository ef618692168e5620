/* cmd_status.c: `ppflow status [--json] FLOW.yaml|DIR...`: each flow's
 * checkpoint, its lag behind now, and its last run. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "flow/flowfiles.h"
#include "state/state.h"
#include "util/timeutil.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ppflow status [--json] FLOW.yaml|DIR...\n\n"
               "Shows each flow's checkpoint (the end of the last delivered window), its lag\n"
               "behind now, and its last run: start, end, outcome, records, windows, bytes,\n"
               "error. A directory stands for every *.yaml / *.yml flow in it.\n\n"
               "  --json   one JSON object per flow, one per line\n\n"
               "Exit code 0 when every flow's last run succeeded (or it never ran), 1 when\n"
               "one failed or its checkpoint is unreadable, 2 for an invalid flow file.\n");
}

static void fmt_time(int64_t ms, char *buf)
{
    if (ms)
        pf_time_format(ms, buf);
    else
        snprintf(buf, PF_TIME_FMT_SIZE, "-");
}

static void add_time(json_object *o, const char *key, int64_t ms, int set)
{
    char buf[PF_TIME_FMT_SIZE];
    pf_time_format(ms, buf);
    json_object_object_add(o, key, set ? json_object_new_string(buf) : NULL);
}

static void print_json(const pf_flow *f, const char *file, const pf_state *st)
{
    json_object *o = json_object_new_object();
    if (!o) return;
    json_object_object_add(o, "flow", json_object_new_string(f->name));
    json_object_object_add(o, "file", json_object_new_string(file));
    json_object_object_add(o, "state", json_object_new_string(f->state_path));
    add_time(o, "checkpoint", st->cursor_ms, st->has_cursor);
    json_object_object_add(
        o, "lag_seconds",
        st->has_cursor ? json_object_new_int64((pf_time_now_ms() - st->cursor_ms) / 1000) : NULL);
    json_object *run = NULL;
    if (st->run_outcome) {
        run = json_object_new_object();
        add_time(run, "started", st->run_started_ms, st->run_started_ms != 0);
        add_time(run, "ended", st->run_ended_ms, st->run_ended_ms != 0);
        json_object_object_add(run, "outcome", json_object_new_string(st->run_outcome));
        json_object_object_add(run, "records", json_object_new_int64(st->run_records));
        json_object_object_add(run, "windows", json_object_new_int64(st->run_windows));
        json_object_object_add(run, "bytes", json_object_new_int64(st->run_bytes));
        json_object_object_add(run, "retries", json_object_new_int64(st->run_retries));
        json_object_object_add(run, "error",
                               st->run_error ? json_object_new_string(st->run_error) : NULL);
    }
    json_object_object_add(o, "last_run", run);
    puts(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static void print_text(const pf_flow *f, const char *file, const pf_state *st, int first)
{
    char cur[PF_TIME_FMT_SIZE], a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
    fmt_time(st->has_cursor ? st->cursor_ms : 0, cur);
    fmt_time(st->run_started_ms, a);
    fmt_time(st->run_ended_ms, b);
    if (!first) printf("\n");
    printf("flow:       %s (%s)\n", f->name, file);
    printf("state:      %s\n", f->state_path);
    printf("checkpoint: %s", cur);
    if (st->has_cursor)
        printf(" (lag %lld s)", (long long)((pf_time_now_ms() - st->cursor_ms) / 1000));
    printf("\nlast run:   %s", st->run_outcome ? st->run_outcome : "never");
    if (st->run_outcome)
        printf(", started %s, ended %s, %lld records, %lld windows, %lld bytes, %lld retries", a, b,
               st->run_records, st->run_windows, st->run_bytes, st->run_retries);
    printf("\n");
    if (st->run_error) printf("error:      %s\n", st->run_error);
}

/* Shows one flow file; returns its exit code. */
static int show(const char *file, int json, int *first)
{
    int code = PF_EXIT_OK;
    pf_flow *f = pf_cli_load_flow(file, NULL, 0, &code);
    if (!f) return code;
    pf_state st = {0};
    pf_error err;
    pf_error_clear(&err);
    if (pf_state_load_for(f->state_path, f->name, &st, &err) != PF_OK) {
        pf_cli_print_error("status", &err);
        code = PF_EXIT_FAIL;
    } else {
        if (json)
            print_json(f, file, &st);
        else
            print_text(f, file, &st, *first);
        *first = 0;
        if (st.run_outcome && strcmp(st.run_outcome, "failed") == 0) code = PF_EXIT_FAIL;
    }
    pf_state_free(&st);
    pf_flow_free(f);
    return code;
}

int pf_cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, c;
    optind = 0; /* full restart of GNU getopt, which permutes: options anywhere */
    while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return PF_EXIT_OK;
        default:
            usage(stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return PF_EXIT_USAGE;
    }
    int worst = PF_EXIT_OK, first = 1;
    char **files = NULL;
    size_t n = 0;
    int rc =
        pf_flow_files((const char *const *)(argv + optind), (size_t)(argc - optind), &files, &n);
    if (rc != 0) worst = PF_EXIT_USAGE; /* a path that cannot be read, as for run */
    for (size_t i = 0; i < n; i++) {
        int code = show(files[i], json, &first);
        worst = code > worst ? code : worst;
        free(files[i]);
    }
    free(files);
    return worst;
}
