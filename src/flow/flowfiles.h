/* flowfiles.h: the flow files named on a command line, where a directory
 * stands for its *.yaml and *.yml files (`ppflow schedule`, `ppflow status`). */
#ifndef PF_FLOW_FLOWFILES_H
#define PF_FLOW_FLOWFILES_H

#include <stddef.h>

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

#endif
