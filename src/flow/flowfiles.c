/* flowfiles.c: expanding command-line paths into flow files (see flowfiles.h). */
#include "flow/flowfiles.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/log.h"

int pf_flow_file_name(const char *name)
{
    size_t l = strlen(name);
    if (name[0] == '.') return 0;
    return (l > 5 && strcmp(name + l - 5, ".yaml") == 0) ||
           (l > 4 && strcmp(name + l - 4, ".yml") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends DIR/NAME (or DIR alone when NAME is NULL) to V. */
static int push(char ***v, size_t *n, size_t *cap, const char *dir, const char *name)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **p = realloc(*v, nc * sizeof *p);
        if (!p) return -1;
        *v = p;
        *cap = nc;
    }
    size_t dl = strlen(dir);
    size_t len = dl + (name ? strlen(name) + 1 : 0) + 1;
    char *s = malloc(len);
    if (!s) return -1;
    /* "flows/" and "flows" both give "flows/NAME". */
    if (name)
        snprintf(s, len, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    else
        snprintf(s, len, "%s", dir);
    (*v)[(*n)++] = s;
    return 0;
}

int pf_flow_files(const char *const *paths, size_t n, char ***files, size_t *nfiles)
{
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    int bad = 0;
    *files = NULL;
    *nfiles = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = paths[i];
        struct stat st;
        if (stat(p, &st) != 0) {
            pf_log_error("%s: %s", p, strerror(errno));
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (push(&v, &cnt, &cap, p, NULL) != 0) goto oom;
            continue;
        }
        DIR *d = opendir(p);
        if (!d) {
            pf_log_error("%s: %s", p, strerror(errno));
            bad = 1;
            continue;
        }
        size_t first = cnt;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!pf_flow_file_name(de->d_name)) continue;
            if (push(&v, &cnt, &cap, p, de->d_name) != 0) {
                closedir(d);
                goto oom;
            }
            struct stat fs;
            if (stat(v[cnt - 1], &fs) != 0 || !S_ISREG(fs.st_mode)) free(v[--cnt]);
        }
        closedir(d);
        qsort(v + first, cnt - first, sizeof *v, cmp_str);
    }
    *files = v;
    *nfiles = cnt;
    return bad ? -1 : 0;
oom:
    for (size_t i = 0; i < cnt; i++)
        free(v[i]);
    free(v);
    pf_log_error("out of memory listing flow files");
    return -2;
}
