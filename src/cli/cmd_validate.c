/* cmd_validate.c: `ppflow validate`: check flows (and their templates) offline. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"

int pf_cmd_validate(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: ppflow validate FLOW.yaml...\n\n"
                   "Checks each flow file and the template it names without any network\n"
                   "access: YAML syntax, unknown or missing keys, parameter types and bounds,\n"
                   "${VAR} references, sink options. Every problem is printed as\n"
                   "FILE:LINE:COL: message. Exit code 0 when all are valid, 2 otherwise.\n");
        return argc < 2 ? PF_EXIT_USAGE : PF_EXIT_OK;
    }
    int worst = PF_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        int code = PF_EXIT_OK;
        pf_flow *f = pf_cli_load_flow(argv[i], NULL, 0, &code);
        if (f) {
            printf("%s: ok (flow %s, template %s, sink %s)\n", argv[i], f->name, f->tmpl->name,
                   f->sink.desc->name);
            pf_flow_free(f);
        } else if (code > worst) {
            worst = code;
        }
    }
    return worst;
}
