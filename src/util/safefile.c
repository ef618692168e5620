/* safefile.c: opening private files without following links, blocking on
 * FIFOs or writing into another user's file; reading regular files only;
 * the private-directory check. See safefile.h for the contract. */
#include "util/safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What kind of file mode M is, for "it is not a regular file (KIND)". */
static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m)) return "FIFO";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISDIR(m)) return "directory";
    if (S_ISCHR(m)) return "character device";
    if (S_ISBLK(m)) return "block device";
    if (S_ISLNK(m)) return "symbolic link";
    return "unknown file type";
}

/* Clears O_NONBLOCK on FD; 0 or -1 (errno set). */
static int make_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return (fl & O_NONBLOCK) ? fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) : 0;
}

int pf_open_private(const char *path, int flags, const char *action, pf_error *err)
{
    if (!action) action = "cannot open";
    int trunc = flags & O_TRUNC;
    int fd = open(path, (flags & ~O_TRUNC) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        struct stat lb;
        int have = lstat(path, &lb) == 0;
        if (e == ENOENT && !(flags & O_CREAT))
            pf_error_set(err, PF_ENOTFOUND, "%s %s: %s", action, path, strerror(e));
        else if (have && S_ISLNK(lb.st_mode) && e != EEXIST)
            /* ELOOP from O_NOFOLLOW (EMLINK on some systems). */
            pf_error_set(err, PF_EIO,
                         "%s %s: it is a symbolic link (ppflow never writes through one); "
                         "remove it",
                         action, path);
        else if (have && !S_ISREG(lb.st_mode) && e != EEXIST)
            /* ENXIO: a FIFO without a reader (or a socket); EISDIR. */
            pf_error_set(err, PF_EIO, "%s %s: it is not a regular file (%s); remove it", action,
                         path, kind_of(lb.st_mode));
        else
            pf_error_set(err, PF_EIO, "%s %s: %s", action, path, strerror(e));
        errno = e;
        return -1;
    }
    struct stat sb;
    int e = 0;
    if (fstat(fd, &sb) != 0) {
        e = errno;
        pf_error_set(err, PF_EIO, "%s %s: %s", action, path, strerror(e));
    } else if (!S_ISREG(sb.st_mode)) {
        e = EPERM;
        pf_error_set(err, PF_EIO, "%s %s: it is not a regular file (%s); remove it", action, path,
                     kind_of(sb.st_mode));
    } else if (sb.st_uid != geteuid()) {
        e = EPERM;
        pf_error_set(err, PF_EIO,
                     "%s %s: it is owned by uid %lu, not by the user running ppflow (uid %lu); "
                     "remove it",
                     action, path, (unsigned long)sb.st_uid, (unsigned long)geteuid());
    } else if (make_blocking(fd) != 0 || (trunc && ftruncate(fd, 0) != 0)) {
        e = errno;
        pf_error_set(err, PF_EIO, "%s %s: %s", action, path, strerror(e));
    }
    if (e) {
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int pf_open_regular(const char *path, pf_error *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        pf_error_set(err, e == ENOENT ? PF_ENOTFOUND : PF_EIO, "cannot open %s: %s", path,
                     strerror(e));
        errno = e;
        return -1;
    }
    struct stat sb;
    int e = 0;
    if (fstat(fd, &sb) != 0 || make_blocking(fd) != 0) {
        e = errno;
        pf_error_set(err, PF_EIO, "cannot open %s: %s", path, strerror(e));
    } else if (!S_ISREG(sb.st_mode)) {
        e = EPERM;
        pf_error_set(err, PF_EIO, "cannot read %s: it is not a regular file (%s)", path,
                     kind_of(sb.st_mode));
    }
    if (e) {
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

pf_status pf_check_private_dir(const char *dir, const char *what, pf_error *err)
{
    struct stat sb;
    const char *here = strcmp(dir, ".") == 0 ? " (the current directory)" : "";
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT) return PF_OK;
        return pf_error_set(err, PF_EIO, "cannot check %s %s%s: %s", what, dir, here,
                            strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return pf_error_set(err, PF_EIO, "%s %s%s is not a directory", what, dir, here);
    uid_t me = geteuid();
    if (sb.st_uid != me && sb.st_uid != 0)
        return pf_error_set(err, PF_EIO,
                            "%s %s%s is owned by uid %lu, not by the user running ppflow (uid "
                            "%lu); chown it to uid %lu, or use a directory of your own (its "
                            "owner could replace the files ppflow keeps there)",
                            what, dir, here, (unsigned long)sb.st_uid, (unsigned long)me,
                            (unsigned long)me);
    if (sb.st_mode & (S_IWGRP | S_IWOTH))
        return pf_error_set(err, PF_EIO,
                            "%s %s%s is writable by group or others (mode %03o); chmod 700 it "
                            "(they could replace the files ppflow keeps there)",
                            what, dir, here, (unsigned)(sb.st_mode & 07777));
    return PF_OK;
}

pf_status pf_check_dir_of(const char *path, const char *what, pf_error *err)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return pf_error_set(err, PF_EINVAL, "path too long: %.200s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        *(slash == dir ? slash + 1 : slash) = '\0';
    return pf_check_private_dir(dir, what, err);
}
