/* safefile.h: opening the files ppflow keeps next to a checkpoint so that
 * nobody else can redirect, block or own them, and checking the directory
 * they live in.
 *
 * Every file ppflow creates or opens for writing (the state lock, the quota
 * ledger and its lock, the dead-letter file, the spool, the temporary files
 * of atomic writes) is opened with pf_open_private: never through a symbolic
 * link, never blocking on a FIFO, and only when what is there is a regular
 * file owned by the running user. Files ppflow reads (checkpoints, ledgers,
 * templates, samples, secret files) are opened with pf_open_regular: a
 * symbolic link is followed (a Kubernetes secret is one), but the open never
 * blocks and what it reaches must be a regular file. The directory that holds
 * a checkpoint is checked with pf_check_private_dir.
 *
 * Messages name the file and say what is wrong and how to fix it; they never
 * hold file contents. */
#ifndef PF_UTIL_SAFEFILE_H
#define PF_UTIL_SAFEFILE_H

#include "util/status.h"

/* Opens PATH with FLAGS: one of O_RDONLY, O_WRONLY, O_RDWR, plus any of
 * O_CREAT, O_EXCL, O_APPEND, O_TRUNC. A file it creates has mode 0600 (the
 * umask can only remove bits). PATH itself is never followed when it is a
 * symbolic link (O_NOFOLLOW; the directories above it are the caller's to
 * check, see pf_check_private_dir); the open never blocks (O_NONBLOCK at
 * open, cleared before returning), so a FIFO cannot hang it; then the file
 * must be a regular file owned by the running user (geteuid()). O_TRUNC is
 * applied only after those checks, so a file that is refused is left as it
 * was.
 *
 * Returns a blocking, close-on-exec descriptor the caller closes, or -1 with
 * ERR set (ERR may be NULL) to "ACTION PATH: REASON", ACTION being what the
 * caller was doing (e.g. "cannot open lock file", "cannot use the spool
 * file"), REASON one of "it is a symbolic link (...)", "it is not a regular
 * file (FIFO)" (or directory, socket, device), "it is owned by uid N, not by
 * the user running ppflow (uid M)", or the system's error text. The code is
 * PF_ENOTFOUND when PATH does not exist and O_CREAT was not given, else
 * PF_EIO. On failure errno is open(2)'s (EEXIST for O_EXCL on an existing
 * name), or EPERM when the file was refused by a check. */
int pf_open_private(const char *path, int flags, const char *action, pf_error *err);

/* Opens PATH for reading. Symbolic links are followed; the open never
 * blocks (O_NONBLOCK at open, cleared before returning); what it reaches
 * must be a regular file. Returns a blocking, close-on-exec descriptor the
 * caller closes, or -1 with ERR set (ERR may be NULL): PF_ENOTFOUND "cannot
 * open PATH: No such file or directory", PF_EIO "cannot open PATH: ..." or
 * PF_EIO "cannot read PATH: it is not a regular file (FIFO)". */
int pf_open_regular(const char *path, pf_error *err);

/* Checks directory DIR (WHAT names it in messages, e.g. "state directory"):
 * PF_OK when it does not exist (the caller creates it, mode 0700) or is a
 * directory owned by the running user or by root and writable by neither
 * group nor others (whatever the sticky bit). Otherwise PF_EIO with ERR
 * (may be NULL) set to, e.g., "state directory /x is writable by group or
 * others (mode 777); chmod 700 it (...)", "state directory /x is owned by
 * uid N, not by the user running ppflow (uid M); chown it to uid M, or use
 * a directory of your own (...)", "state directory /x is not a
 * directory". A
 * symbolic link to a directory is checked at its target. */
pf_status pf_check_private_dir(const char *dir, const char *what, pf_error *err);

/* pf_check_private_dir on the directory that holds PATH ("." when PATH has
 * no '/'). PF_EINVAL when PATH is too long. */
pf_status pf_check_dir_of(const char *path, const char *what, pf_error *err);

#endif
