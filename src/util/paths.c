/* paths.c: search paths, mkdir -p, lexical normalisation and containment,
 * atomic replace (and the removal of its stale temporary files), bounded
 * reads of regular files. */
#include "util/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/safefile.h"

#ifndef PPFLOW_BUILD_SINK_DIR
#define PPFLOW_BUILD_SINK_DIR ""
#endif

void pf_paths_free(char **dirs, size_t n)
{
    if (!dirs) return;
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
}

int pf_paths_running_from_build(void)
{
    /* PPFLOW_BUILD_SINK_DIR is <build>/sinks; the build root is its parent. */
    char exe[PATH_MAX], build[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l <= 0) return 0;
    exe[l] = '\0';
    snprintf(build, sizeof build, "%s", PPFLOW_BUILD_SINK_DIR);
    char *slash = strrchr(build, '/');
    if (!slash || slash == build) return 0;
    *slash = '\0';
    char real[PATH_MAX];
    if (!realpath(build, real)) return 0;
    size_t bl = strlen(real);
    return strncmp(exe, real, bl) == 0 && exe[bl] == '/';
}

static int push(char ***v, size_t *n, size_t *alloc, const char *s, size_t len)
{
    if (len == 0) return 0;
    if (*n == *alloc) {
        size_t na = *alloc ? *alloc * 2 : 8;
        char **p = realloc(*v, na * sizeof *p);
        if (!p) return -1;
        *v = p;
        *alloc = na;
    }
    char *c = strndup(s, len);
    if (!c) return -1;
    (*v)[(*n)++] = c;
    return 0;
}

#ifndef PPFLOW_INSTALL_PREFIX
#define PPFLOW_INSTALL_PREFIX ""
#endif
#ifndef PPFLOW_INSTALL_BINDIR
#define PPFLOW_INSTALL_BINDIR "bin"
#endif

/* INSTALL_DIR moved to where the running executable was installed: when
 * INSTALL_DIR lies under the configured prefix and the executable lives in
 * some PREFIX/BINDIR, that PREFIX with the rest of INSTALL_DIR, into OUT
 * (size N). 0, or -1 when it does not apply (then OUT is unspecified). A
 * tree installed with `cmake --install --prefix DIR`, or moved, finds its
 * templates and plugins this way. */
static int exe_relative(const char *install_dir, char *out, size_t n)
{
    const char *prefix = PPFLOW_INSTALL_PREFIX, *bindir = PPFLOW_INSTALL_BINDIR;
    size_t pl = strlen(prefix);
    if (!pl || bindir[0] == '/' || strncmp(install_dir, prefix, pl) != 0 ||
        install_dir[pl] != '/')
        return -1;
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l <= 0) return -1;
    exe[l] = '\0';
    char *slash = strrchr(exe, '/'); /* PREFIX/BINDIR/ppflow -> PREFIX/BINDIR */
    if (!slash) return -1;
    *slash = '\0';
    /* Up one directory per component of BINDIR ("bin": one). */
    for (const char *c = bindir; *c;) {
        size_t cl = strcspn(c, "/");
        if (cl) {
            slash = strrchr(exe, '/');
            if (!slash || strcmp(slash + 1, "") == 0) return -1;
            *slash = '\0';
        }
        c += cl;
        if (*c == '/') c++;
    }
    return (size_t)snprintf(out, n, "%s%s", exe, install_dir + pl) < n ? 0 : -1;
}

pf_status pf_paths_search_dirs(const char *envvar, const char *build_dir, const char *install_dir,
                               char ***dirs, size_t *n)
{
    char **v = NULL;
    size_t cnt = 0, alloc = 0;
    const char *env = envvar ? getenv(envvar) : NULL;
    int bad = 0;
    if (env) {
        for (const char *p = env;;) {
            const char *c = strchr(p, ':');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (push(&v, &cnt, &alloc, p, len) != 0) bad = 1;
            if (!c) break;
            p = c + 1;
        }
    }
    if (!bad && build_dir && pf_paths_running_from_build())
        bad = push(&v, &cnt, &alloc, build_dir, strlen(build_dir)) != 0;
    char rel[PATH_MAX];
    if (!bad && install_dir && exe_relative(install_dir, rel, sizeof rel) == 0 &&
        strcmp(rel, install_dir) != 0)
        bad = push(&v, &cnt, &alloc, rel, strlen(rel)) != 0;
    if (!bad && install_dir) bad = push(&v, &cnt, &alloc, install_dir, strlen(install_dir)) != 0;
    if (bad) {
        pf_paths_free(v, cnt);
        return PF_ENOMEM;
    }
    *dirs = v;
    *n = cnt;
    return PF_OK;
}

pf_status pf_mkdirs_for(const char *path, pf_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return pf_error_set(err, PF_EINVAL, "path too long: %s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return PF_OK;
    *slash = '\0';
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return pf_error_set(err, PF_EIO, "cannot create directory %s: %s", buf,
                                    strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return PF_OK;
}

pf_status pf_path_normalize(const char *path, char *out, size_t n, pf_error *err)
{
    if (n == 0) return pf_error_set(err, PF_ETOOBIG, "no room to normalise a path");
    out[0] = '\0';
    if (!path || !*path) return pf_error_set(err, PF_EINVAL, "empty path");
    int abs = path[0] == '/';
    size_t o = 0, kept = 0; /* kept: segments in OUT that a ".." may remove */
    if (abs) out[o++] = '/';
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 1 && p[0] == '.') {
            p += l;
            continue;
        }
        if (l == 2 && p[0] == '.' && p[1] == '.') {
            if (kept > 0) {
                /* Drop the last segment (and the '/' before it). */
                while (o > (size_t)abs && out[o - 1] != '/')
                    o--;
                if (o > (size_t)abs) o--;
                kept--;
                p += l;
                continue;
            }
            if (abs) { /* "/.." is "/" */
                p += l;
                continue;
            }
        }
        size_t need = (o > (size_t)abs ? 1 : 0) + l;
        if (o + need + 1 > n) {
            out[0] = '\0';
            return pf_error_set(err, PF_ETOOBIG, "path too long: %.200s", path);
        }
        if (o > (size_t)abs) out[o++] = '/';
        memcpy(out + o, p, l);
        o += l;
        if (!(l == 2 && p[0] == '.' && p[1] == '.')) kept++;
        p += l;
    }
    if (o == 0) {
        if (n < 2) return pf_error_set(err, PF_ETOOBIG, "path too long: %.200s", path);
        out[o++] = '.';
    }
    out[o] = '\0';
    return PF_OK;
}

int pf_path_within(const char *dir, const char *path)
{
    char d[PATH_MAX], p[PATH_MAX];
    if (!dir || !path || pf_path_normalize(dir, d, sizeof d, NULL) != PF_OK ||
        pf_path_normalize(path, p, sizeof p, NULL) != PF_OK)
        return 0;
    if (strcmp(d, ".") == 0)
        return p[0] != '/' && !(p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'));
    size_t dl = strlen(d);
    if (strncmp(p, d, dl) != 0) return 0;
    return p[dl] == '\0' || p[dl] == '/' || (dl == 1 && d[0] == '/');
}

pf_status pf_write_file_atomic(const char *path, const char *data, size_t len, pf_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return pf_error_set(err, PF_EINVAL, "path too long: %s", path);
    pf_status st = pf_mkdirs_for(path, err);
    if (st != PF_OK) return st;
    /* Exclusive and not through a link: a file planted under the temporary
     * name cannot redirect the write. A stale one (a kill, a reused pid) is
     * removed once. */
    const int flags = O_WRONLY | O_CREAT | O_EXCL;
    int fd = pf_open_private(tmp, flags, "cannot create", err);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = pf_open_private(tmp, flags, "cannot create", err);
    if (fd < 0) return PF_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return pf_error_set(err, PF_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    /* The descriptor is closed whatever fsync answers. */
    int synced = fsync(fd) == 0, e = errno;
    if (close(fd) != 0 && synced) {
        synced = 0;
        e = errno;
    }
    if (!synced) {
        unlink(tmp);
        return pf_error_set(err, PF_EIO, "cannot sync %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return pf_error_set(err, PF_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return PF_OK;
}

pf_status pf_read_file(const char *path, size_t max, char **out, size_t *len, pf_error *err)
{
    *out = NULL;
    if (len) *len = 0;
    pf_error e;
    pf_error_clear(&e);
    int fd = pf_open_regular(path, &e);
    if (fd < 0) {
        if (err) *err = e;
        return e.code;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    pf_status st = buf ? PF_OK : PF_ENOMEM;
    /* One byte past MAX is read, to tell a file of MAX bytes from a larger one. */
    size_t lim = max < SIZE_MAX ? max + 1 : SIZE_MAX;
    while (st == PF_OK && n < lim) {
        if (n + 1 >= cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                st = PF_ENOMEM;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t want = cap - n - 1;
        if (want > lim - n) want = lim - n;
        ssize_t r = read(fd, buf + n, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = pf_error_set(err, PF_EIO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (st == PF_ENOMEM) pf_error_set(err, PF_ENOMEM, "out of memory reading %s", path);
    if (st == PF_OK && n > max)
        st = pf_error_set(err, PF_ETOOBIG, "%s is larger than %zu bytes", path, max);
    close(fd);
    if (st != PF_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return PF_OK;
}

/* 1 when NAME is BASE ".tmp." and 1 to 19 decimal digits (*PID: their
 * value, or -1 when it is 0 or beyond any pid). */
static int temp_name(const char *name, const char *base, size_t bl, long long *pid)
{
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".tmp.", 5) != 0) return 0;
    const char *d = name + bl + 5;
    size_t nd = strspn(d, "0123456789");
    if (nd == 0 || nd > 19 || d[nd] != '\0') return 0;
    unsigned long long v = strtoull(d, NULL, 10);
    *pid = v == 0 || v > INT_MAX ? -1 : (long long)v;
    return 1;
}

int pf_remove_stale_temps(const char *path)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return -1;
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else {
        base = path + (slash - dir) + 1;
        *(slash == dir ? slash + 1 : slash) = '\0';
    }
    size_t bl = strlen(base);
    if (bl == 0) return -1;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long long pid;
        struct stat sb;
        if (!temp_name(de->d_name, base, bl, &pid)) continue;
        /* A live process of that pid may be a writer that does not lock
         * (or merely reuse the number): its file stays. */
        if (pid > 0 && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(sb.st_mode))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0) removed++;
    }
    closedir(d);
    return removed;
}
