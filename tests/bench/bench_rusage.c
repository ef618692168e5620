/* bench_rusage.c: runs one command and reports its wall time and peak
 * resident memory, for the benchmark (tests/bench/bench.py).
 *
 *   bench_rusage REPORT_FILE COMMAND [ARG...]
 *
 * COMMAND inherits stdin, stdout and stderr. When it ends, REPORT_FILE gets
 * "SECONDS MAXRSS_KIB EXIT_CODE\n" (from clock_gettime and wait4's
 * ru_maxrss). A small launcher is used instead of measuring from Python
 * because a child's ru_maxrss includes the memory of the process it was
 * forked from, until it calls exec. Exit: 0, or 2 on a usage or launch error. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s REPORT_FILE COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%.6f %ld %d\n", secs, ru.ru_maxrss, code) < 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 2;
    }
    return 0;
}
