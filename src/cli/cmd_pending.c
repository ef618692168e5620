/* cmd_pending.c: commands that this version does not provide yet (suggest,
 * schedule). They say so plainly and exit 2; they never pretend to work. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"

static int pending(int argc, char **argv, const char *usage, const char *what)
{
    int help = argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    fprintf(help ? stdout : stderr, "usage: ppflow %s\n\n%s\nNot available in ppflow %s yet.\n",
            usage, what, PPFLOW_VERSION);
    return help ? PF_EXIT_OK : PF_EXIT_USAGE;
}

int pf_cmd_suggest(int argc, char **argv)
{
    return pending(argc, argv, "suggest SAMPLE.json",
                   "Suggests JSONPath record paths from a sample response.");
}

int pf_cmd_schedule(int argc, char **argv)
{
    return pending(argc, argv, "schedule FLOW.yaml... | DIR/",
                   "Runs flows on their schedules in one process (`ppflow run` from cron or a\n"
                   "systemd timer works meanwhile: runs resume from the checkpoint).");
}
