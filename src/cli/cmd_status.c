/* cmd_status.c: `ppflow status FLOW.yaml...`: checkpoint, last run and lag. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "state/state.h"
#include "util/timeutil.h"

static void fmt_time(int64_t ms, char *buf)
{
    if (ms) pf_time_format(ms, buf);
    else snprintf(buf, PF_TIME_FMT_SIZE, "-");
}

int pf_cmd_status(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: ppflow status FLOW.yaml...\n\n"
                   "Shows each flow's checkpoint (the end of the last delivered window), its lag\n"
                   "behind now, and its last run: start, end, outcome, records, windows, error.\n");
        return argc < 2 ? PF_EXIT_USAGE : PF_EXIT_OK;
    }
    int worst = PF_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        int code = PF_EXIT_OK;
        pf_flow *f = pf_cli_load_flow(argv[i], NULL, 0, &code);
        if (!f) {
            worst = code > worst ? code : worst;
            continue;
        }
        pf_state st = {0};
        pf_error err;
        if (pf_state_load(f->state_path, &st, &err) != PF_OK) {
            pf_cli_print_error("status", &err);
            worst = PF_EXIT_FAIL;
        } else {
            char cur[PF_TIME_FMT_SIZE], a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
            fmt_time(st.has_cursor ? st.cursor_ms : 0, cur);
            fmt_time(st.run_started_ms, a);
            fmt_time(st.run_ended_ms, b);
            printf("flow:       %s (%s)\n", f->name, argv[i]);
            printf("state:      %s\n", f->state_path);
            printf("checkpoint: %s", cur);
            if (st.has_cursor)
                printf(" (lag %lld s)", (long long)((pf_time_now_ms() - st.cursor_ms) / 1000));
            printf("\nlast run:   %s", st.run_outcome ? st.run_outcome : "never");
            if (st.run_outcome)
                printf(", started %s, ended %s, %lld records, %lld windows", a, b,
                       st.run_records, st.run_windows);
            printf("\n");
            if (st.run_error) printf("error:      %s\n", st.run_error);
            if (i + 1 < argc) printf("\n");
        }
        pf_state_free(&st);
        pf_flow_free(f);
    }
    return worst;
}
