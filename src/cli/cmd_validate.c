/* cmd_validate.c: `ppflow validate`: check flows (and their templates) offline,
 * and that no two of the flows given together write the same output file or
 * share a name or a checkpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "flow/flowfiles.h"

int pf_cmd_validate(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: ppflow validate FLOW.yaml|DIR...\n\n"
                   "Checks each flow file and the template it names without any network\n"
                   "access: YAML syntax, unknown or missing keys, parameter types and bounds,\n"
                   "${VAR} references, sink options, credentials never sent over plain http.\n"
                   "A directory stands for its *.yaml and *.yml files. Flows given together\n"
                   "must not write the same NDJSON output file, nor share a name or a\n"
                   "state.path. Every problem is printed as FILE:LINE:COL: message.\n"
                   "Exit code 0 when all are valid, 2 otherwise.\n");
        return argc < 2 ? PF_EXIT_USAGE : PF_EXIT_OK;
    }
    /* Line-buffered stderr: one write per diagnostic, not one per character
     * (a file with tens of thousands of problems prints in a blink). */
    static char errbuf[16384];
    setvbuf(stderr, errbuf, _IOLBF, sizeof errbuf);

    int worst = PF_EXIT_OK;
    /* The files: each argument as given, a directory as its flow files. */
    char **files = NULL;
    size_t nfiles = 0, cap = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        char **list = NULL;
        size_t n = 0;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            const char *one[] = {argv[i]};
            int rc = pf_flow_files(one, 1, &list, &n);
            if (rc == -2) return PF_EXIT_FAIL;
            if (rc != 0 && worst < PF_EXIT_USAGE) worst = PF_EXIT_USAGE;
            if (n == 0) {
                fprintf(stderr, "%s: no flow files (*.yaml or *.yml)\n", argv[i]);
                worst = PF_EXIT_USAGE;
            }
        } else {
            list = malloc(sizeof *list);
            if (list && !(list[0] = strdup(argv[i]))) {
                free(list);
                list = NULL;
            }
            n = 1;
            if (!list) goto oom;
        }
        if (nfiles + n > cap) {
            size_t nc = (nfiles + n) * 2;
            char **p = realloc(files, nc * sizeof *p);
            if (!p) {
                for (size_t k = 0; k < n; k++)
                    free(list[k]);
                free(list);
                goto oom;
            }
            files = p;
            cap = nc;
        }
        for (size_t k = 0; k < n; k++)
            files[nfiles++] = list[k];
        free(list);
    }

    pf_flow **flows = calloc(nfiles ? nfiles : 1, sizeof *flows);
    int *clash = calloc(nfiles ? nfiles : 1, sizeof *clash);
    if (!flows || !clash) {
        free(flows);
        free(clash);
        goto oom;
    }
    for (size_t i = 0; i < nfiles; i++) {
        int code = PF_EXIT_OK;
        flows[i] = pf_cli_load_flow(files[i], NULL, 0, &code);
        if (!flows[i] && code > worst) worst = code;
    }
    /* One output file, one flow. */
    pf_diags d = {0};
    size_t clashes = nfiles > 1 ? pf_flow_outputs_check(flows, nfiles, clash, &d) : 0;
    /* One name and one checkpoint per flow. */
    clashes += nfiles > 1 ? pf_flow_names_check(flows, nfiles, clash, &d) : 0;
    if (clashes && worst < PF_EXIT_USAGE) worst = PF_EXIT_USAGE;
    if ((d.count > clashes || d.oom) && worst == PF_EXIT_OK) worst = PF_EXIT_FAIL; /* memory */
    pf_diags_print(&d, stderr, "");
    pf_diags_free(&d);
    for (size_t i = 0; i < nfiles; i++) {
        if (flows[i] && !clash[i])
            printf("%s: ok (flow %s, template %s, sink %s)\n", files[i], flows[i]->name,
                   flows[i]->tmpl->name, flows[i]->sink.desc->name);
        pf_flow_free(flows[i]);
        free(files[i]);
    }
    free(flows);
    free(clash);
    free(files);
    return worst;
oom:
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    fprintf(stderr, "ppflow validate: out of memory\n");
    return PF_EXIT_FAIL;
}
