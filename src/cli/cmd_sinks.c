/* cmd_sinks.c: `ppflow sinks [NAME]`: the sinks available and their options. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "sink/registry.h"

static const char *type_name(pf_sink_opt_type t)
{
    switch (t) {
    case PF_SINK_OPT_STRING: return "string";
    case PF_SINK_OPT_INT: return "integer";
    case PF_SINK_OPT_BOOL: return "boolean";
    case PF_SINK_OPT_DURATION: return "duration";
    case PF_SINK_OPT_SIZE: return "size";
    }
    return "string";
}

static void show(void *ud, const pf_sink_descriptor *d)
{
    const char *only = ud;
    if (only && strcmp(only, d->name) != 0) return;
    printf("%-12s %s\n", d->name, d->description ? d->description : "");
    for (const pf_sink_option *o = d->options; o->key; o++) {
        printf("  %-14s %-8s %s", o->key, type_name(o->type), o->required ? "required" : "optional");
        if (o->default_value) printf(" default: %s", o->default_value);
        printf("\n      %s\n", o->description ? o->description : "");
    }
}

int pf_cmd_sinks(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: ppflow sinks [NAME]\n\n"
               "Lists the sinks a flow's `sink.type` can name, with their options\n"
               "(type, required, default, description).\n");
        return PF_EXIT_OK;
    }
    if (argc > 2) {
        fprintf(stderr, "usage: ppflow sinks [NAME]\n");
        return PF_EXIT_USAGE;
    }
    if (argc == 2) {
        pf_error err;
        if (!pf_sink_find(argv[1], &err)) {
            pf_cli_print_error("sinks", &err);
            return PF_EXIT_USAGE;
        }
    }
    pf_sink_each(show, argc == 2 ? argv[1] : NULL);
    return PF_EXIT_OK;
}
