/* commands.h: the entry point of each ppflow subcommand.
 *
 * Each takes the arguments after the command name (argv[0] is the command
 * name itself) and returns the process exit code: 0 success, 1 runtime
 * failure (network, sink, data), 2 usage or configuration error. Each prints
 * its own help for --help. */
#ifndef PF_CLI_COMMANDS_H
#define PF_CLI_COMMANDS_H

int pf_cmd_run(int argc, char **argv);
int pf_cmd_test(int argc, char **argv);
int pf_cmd_validate(int argc, char **argv);
int pf_cmd_templates(int argc, char **argv);
int pf_cmd_sinks(int argc, char **argv);
int pf_cmd_suggest(int argc, char **argv);
int pf_cmd_decode(int argc, char **argv);
int pf_cmd_jsonpath(int argc, char **argv);
int pf_cmd_schedule(int argc, char **argv);
int pf_cmd_status(int argc, char **argv);
int pf_cmd_plan(int argc, char **argv);
int pf_cmd_init(int argc, char **argv);

#endif
