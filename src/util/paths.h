/* paths.h: file-system helpers: search paths, parent directories, lexical
 * path normalisation and containment, atomic file replacement, bounded
 * reads. Files and directories are created private (0600 / 0700). */
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

/* Normalises PATH lexically into OUT (size N): repeated '/' collapse, "."
 * segments go, "NAME/.." pairs cancel ("a/b/../c" -> "a/c"; a leading ".."
 * of a relative path stays; "/.." is "/"); no trailing '/' except for "/";
 * "" and "./" become ".". Symbolic links are not looked at.
 * Returns PF_OK, PF_EINVAL (PATH NULL or empty) or PF_ETOOBIG (N too
 * small); OUT is always terminated when N > 0. */
pf_status pf_path_normalize(const char *path, char *out, size_t n, pf_error *err);

/* Returns 1 when PATH, after lexical normalisation, is DIR or lies below it
 * (DIR also normalised; DIR "." means "any relative path that does not
 * start with .."), else 0 (also for NULL arguments or paths too long). */
int pf_path_within(const char *dir, const char *path);

/* Writes LEN bytes of DATA to PATH atomically: a new temporary file in the
 * same directory (created exclusively, mode 0600, never through a symbolic
 * link), fsync, rename over PATH, fsync of the directory. A crash or kill at
 * any point leaves either the old or the new content (plus, at worst, a
 * stale "PATH.tmp.PID" file, which a later write replaces). */
pf_status pf_write_file_atomic(const char *path, const char *data, size_t len, pf_error *err);

/* Reads all of PATH into *OUT (malloc'd, NUL-terminated), at most MAX bytes.
 * PF_ENOTFOUND when it does not exist, PF_ETOOBIG over MAX. */
pf_status pf_read_file(const char *path, size_t max, char **out, size_t *len, pf_error *err);

#endif
