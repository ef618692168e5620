/* paths.h: file-system helpers: search paths, parent directories, atomic
 * file replacement. */
#ifndef PF_UTIL_PATHS_H
#define PF_UTIL_PATHS_H

#include <stddef.h>

#include "util/status.h"

/* Builds the list of directories to search for templates or plugins: the
 * colon-separated entries of environment variable ENVVAR, then BUILD_DIR when
 * the running executable lives in ppflow's build tree, then INSTALL_DIR.
 * *DIRS (malloc'd strings) is freed with pf_paths_free. */
pf_status pf_paths_search_dirs(const char *envvar, const char *build_dir, const char *install_dir,
                               char ***dirs, size_t *n);

/* Frees an array from pf_paths_search_dirs. NULL accepted. */
void pf_paths_free(char **dirs, size_t n);

/* 1 when /proc/self/exe is inside the build tree this binary was built in. */
int pf_paths_running_from_build(void);

/* Creates every missing parent directory of PATH (mode 0700, like `mkdir -p`
 * on its dirname). Returns PF_OK or PF_EIO with ERR naming the directory. */
pf_status pf_mkdirs_for(const char *path, pf_error *err);

/* Writes LEN bytes of DATA to PATH atomically: a temporary file in the same
 * directory (mode 0600), fsync, rename over PATH, fsync of the directory. A
 * crash leaves either the old or the new content. */
pf_status pf_write_file_atomic(const char *path, const char *data, size_t len, pf_error *err);

/* Reads all of PATH into *OUT (malloc'd, NUL-terminated), at most MAX bytes.
 * PF_ENOTFOUND when it does not exist, PF_ETOOBIG over MAX. */
pf_status pf_read_file(const char *path, size_t max, char **out, size_t *len, pf_error *err);

#endif
