/* paths.h: file-system helpers: search paths, parent directories, lexical
 * path normalisation and containment, atomic file replacement and the
 * clean-up of its stale temporary files, bounded reads of regular files.
 * Files and directories are created private (0600 / 0700); how each file
 * is opened safely is util/safefile.h's. */
#ifndef PF_UTIL_PATHS_H
#define PF_UTIL_PATHS_H

#include <stddef.h>

#include "util/status.h"

/* Builds the list of directories to search for templates or plugins: the
 * colon-separated entries of environment variable ENVVAR, then BUILD_DIR when
 * the running executable lives in ppflow's build tree, then INSTALL_DIR as
 * seen from where the executable is installed (PREFIX/bin/ppflow ->
 * PREFIX/share/ppflow/templates, whatever prefix the tree was installed or
 * moved to), then INSTALL_DIR itself.
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

/* Writes LEN bytes of DATA to PATH atomically: a new temporary file
 * "PATH.tmp.PID" in the same directory (created exclusively, mode 0600,
 * never through a symbolic link; see pf_open_private), fsync, rename over
 * PATH, fsync of the directory. A crash or kill at any point leaves either
 * the old or the new content (plus, at worst, a stale "PATH.tmp.PID" file,
 * which a later write by the same pid replaces and pf_remove_stale_temps
 * removes). PF_EIO (or the errors of pf_mkdirs_for) with ERR naming the
 * file; PATH is then unchanged. */
pf_status pf_write_file_atomic(const char *path, const char *data, size_t len, pf_error *err);

/* Removes the stale temporary files pf_write_file_atomic left for PATH
 * (a run killed between creating and renaming one): the entries of PATH's
 * directory named exactly "BASENAME.tmp.N", N decimal digits, that are not
 * directories and whose N is not the pid of a live process (kill(N, 0)
 * fails with ESRCH; an N of 0 or beyond any pid counts as dead).
 *
 * The safe rule: call it only while holding the lock that every writer of
 * PATH holds (the flow's state lock for a checkpoint, the ledger's lock for
 * the quota ledger). Then no other process is between creating such a file
 * and renaming it; the pid test is a second guard, against a writer that
 * does not lock, and leaves the file of a live pid (a reused number
 * included) for a later call. Names that merely start with "BASENAME.tmp."
 * are never touched. Returns how many files were removed, or -1 when the
 * directory cannot be read (nothing is removed then). */
int pf_remove_stale_temps(const char *path);

/* Reads all of PATH into *OUT (malloc'd, NUL-terminated; the caller frees),
 * at most MAX bytes, *LEN (may be NULL) its length. A symbolic link is
 * followed, but the open never blocks and the file must be a regular file
 * (pf_open_regular): a FIFO, a device or a directory is refused at once.
 * PF_ENOTFOUND when PATH does not exist, PF_EIO "cannot read PATH: it is not
 * a regular file (FIFO)" and other failures naming PATH, PF_ETOOBIG over
 * MAX, PF_ENOMEM. On failure *OUT is NULL. */
pf_status pf_read_file(const char *path, size_t max, char **out, size_t *len, pf_error *err);

#endif
