/* cli_common.c: shared subcommand helpers. */
#include "cli/cli_common.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "util/log.h"

int pf_cli_exit_code(pf_status st)
{
    switch (st) {
    case PF_OK:
        return PF_EXIT_OK;
    case PF_ESYNTAX:
    case PF_ECONFIG:
    case PF_EINVAL:
    case PF_ENOTFOUND:
        return PF_EXIT_USAGE;
    case PF_EINTERRUPTED:
        return PF_EXIT_INTERRUPTED;
    default:
        return PF_EXIT_FAIL;
    }
}

pf_flow *pf_cli_load_flow(const char *path, const pf_flow_override *sets, size_t nsets, int *code)
{
    pf_diags d = {0};
    pf_flow *f = NULL;
    pf_status st = pf_flow_load(path, sets, nsets, &f, &d);
    if (st != PF_OK) {
        pf_diags_print(&d, stderr, "");
        *code = st == PF_EIO ? PF_EXIT_FAIL : PF_EXIT_USAGE;
    }
    pf_diags_free(&d);
    return f;
}

int pf_cli_parse_set(char *arg, pf_flow_override *o)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        fprintf(stderr, "ppflow: --set needs NAME=VALUE, got '%s'\n", arg);
        return -1;
    }
    *eq = '\0';
    o->name = arg;
    o->value = eq + 1;
    return 0;
}

static volatile sig_atomic_t g_cancel;

static void on_signal(int sig)
{
    if (g_cancel) {
        /* Second signal: stop now. The checkpoint rules keep this safe. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_cancel = 1;
    static const char msg[] = "ppflow: stopping after the current window (signal again to "
                              "abort)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
}

void pf_cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pf_http_set_cancel_flag(&g_cancel);
}

void pf_cli_print_error(const char *cmd, const pf_error *err)
{
    char msg[PF_ERROR_MSG_MAX + PF_ERROR_FILE_MAX + 64], clean[sizeof msg];
    pf_error_format(err, msg, sizeof msg);
    pf_log_redact(msg, clean, sizeof clean);
    fprintf(stderr, "ppflow %s: error: ", cmd);
    pf_log_write_escaped(stderr, clean);
    fputc('\n', stderr);
}
