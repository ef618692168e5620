/* flowfiles.h: the flow files named on a command line, where a directory
 * stands for its *.yaml and *.yml files (`ppflow schedule`, `ppflow status`,
 * `ppflow validate`), and the rule that holds between the flows of one
 * command: one output file, one flow. */
#ifndef PF_FLOW_FLOWFILES_H
#define PF_FLOW_FLOWFILES_H

#include <stddef.h>

#include "flow/flow.h"
#include "util/diag.h"

/* The stream that gap records go to (the engine's PF_RUN_GAP_STREAM): a
 * time-window template with a retention limit writes it too. */
#define PF_FLOW_GAP_STREAM "gaps"

/* 1 when NAME (a file name, no directory) looks like a flow file: it ends in
 * .yaml or .yml and is not hidden. */
int pf_flow_file_name(const char *name);

/* Lists the flow files of PATHS (N entries): a path that is not a directory
 * as given, a directory as its regular flow files (sorted by name). *FILES
 * gets a malloc'd array of malloc'd paths (free each, then the array; NULL
 * when empty) and *NFILES their count. A path that cannot be read is logged
 * as an error and skipped. Returns 0, -1 when some path could not be read
 * (the others are still listed), or -2 when out of memory (nothing listed). */
int pf_flow_files(const char *const *paths, size_t n, char ***files, size_t *nfiles);

/* One output file, one flow: checks that no two of the N flows FLOWS (NULL
 * entries are skipped; borrowed) write the same NDJSON file. A flow's files
 * are its sink.path with `{stream}` replaced by each stream it delivers
 * (the streams its template keeps for it, plus PF_FLOW_GAP_STREAM for a
 * time-window template with a retention limit), made absolute against the
 * current directory and normalised lexically (pf_path_normalize), with the
 * directory that holds the file resolved (realpath) when it exists; a file
 * that exists is identified by its device and inode, so hard links and
 * symbolic links to a directory collide too. Two flows with the same
 * `{stream}` pattern collide when they share a stream name, and a pattern
 * collides with a plain path that it expands to. The same flow file given
 * twice is not a collision. Comparing files, not patterns, is exact for the
 * streams known when the flows load; it cannot see a file that a symbolic
 * link created later would join.
 *
 * Each colliding pair is reported once, as one diagnostic at the later
 * flow's sink.path naming the file and both flows with their files. When
 * INVOLVED is not NULL (N entries), the entries of the flows in a collision
 * are set to 1 (the others are left alone). Returns the number of
 * collisions reported; out of memory is reported as a diagnostic too. */
size_t pf_flow_outputs_check(pf_flow *const *flows, size_t n, int *involved, pf_diags *d);

/* Reports each flow of FLOWS (N entries, NULL entries skipped; borrowed)
 * whose name, or whose state.path (made absolute and normalised as output
 * files are), is also another flow's, as one diagnostic at the later flow's
 * `name` or `state.path` naming the other flow's file. The same flow file
 * given twice is not reported. INVOLVED as for pf_flow_outputs_check.
 * Returns the number of flows reported. */
size_t pf_flow_names_check(pf_flow *const *flows, size_t n, int *involved, pf_diags *d);

#endif
