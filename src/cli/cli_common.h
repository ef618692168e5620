/* cli_common.h: what several subcommands share: loading a flow with its
 * diagnostics printed, --set overrides, signal handling, exit codes. */
#ifndef PF_CLI_COMMON_H
#define PF_CLI_COMMON_H

#include "flow/flow.h"

enum {
    PF_EXIT_OK = 0,
    PF_EXIT_FAIL = 1,
    PF_EXIT_USAGE = 2,
    PF_EXIT_GAP = 3, /* the run completed, but a range was lost (gap record written) */
    PF_EXIT_INTERRUPTED = 130
};

/* Maps a status to an exit code: configuration and syntax problems are 2,
 * interruptions 130, everything else 1. */
int pf_cli_exit_code(pf_status st);

/* Loads PATH, printing every problem to stderr as "FILE:LINE:COL: message".
 * Returns NULL on failure (and sets *CODE to the exit code). */
pf_flow *pf_cli_load_flow(const char *path, const pf_flow_override *sets, size_t nsets, int *code);

/* Parses "NAME=VALUE" into O (pointing into ARG, which it modifies).
 * Returns 0, or -1 with a message on stderr. */
int pf_cli_parse_set(char *arg, pf_flow_override *o);

/* Installs SIGINT/SIGTERM handlers that set the HTTP cancel flag (the engine
 * stops between windows); a second signal exits at once. */
void pf_cli_install_signals(void);

/* Prints ERR to stderr as "ppflow: error: ...", redacted. */
void pf_cli_print_error(const char *cmd, const pf_error *err);

#endif
