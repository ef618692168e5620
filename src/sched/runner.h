/* runner.h: the scheduler loop of `ppflow schedule`.
 *
 * One parent process loads every flow (files, or the *.yaml / *.yml files of
 * directories), keeps each flow's next due time, and starts each run in a
 * forked child that calls pf_engine_run exactly as `ppflow run` does. The
 * parent is single-threaded and never talks to the network; children share
 * nothing with it or with each other but the copy of memory fork gives them,
 * so a run that crashes takes only itself down.
 *
 *   - at most max_parallel runs at once; a flow never overlaps with itself,
 *     and the engine's lock on the flow's state keeps other ppflow processes
 *     out (a run that finds the lock held ends as "busy");
 *   - due times follow the flow's schedule (sched/schedule.h), on the clock
 *     of pf_time_now_ms (so PPFLOW_TEST_CLOCK drives it in tests);
 *   - SIGTERM/SIGINT: no new runs; SIGTERM to the runs in flight, which stop
 *     after their last commit; exit 0 when they are done or after grace_ms
 *     (then they are killed: checkpoints keep that safe). A second signal
 *     kills them at once and exits 130;
 *   - SIGHUP: the flow files are read again; a file that does not load is
 *     reported (FILE:LINE:COL) and its previous version keeps its schedule;
 *     new files are added; removed files are no longer scheduled;
 *   - one log line when a run starts and one when it ends (flow, run id,
 *     outcome, records); an optional metrics endpoint (sched/metrics.h).
 *
 * Not reentrant: it installs signal handlers and owns the process while it
 * runs. Meant to be called once, from the main thread of a process with no
 * other threads. */
#ifndef PF_SCHED_RUNNER_H
#define PF_SCHED_RUNNER_H

#include <stdint.h>
#include <stdio.h>

#define PF_SCHED_DEFAULT_MAX_PARALLEL 4
#define PF_SCHED_MAX_PARALLEL_LIMIT 256
#define PF_SCHED_DEFAULT_GRACE_MS 30000
#define PF_SCHED_MAX_FLOWS 1024

/* Exit codes of pf_sched_main (the same meaning as ppflow's). */
enum {
    PF_SCHED_EXIT_OK = 0,            /* stopped by SIGTERM/SIGINT */
    PF_SCHED_EXIT_FAIL = 1,          /* could not start (metrics port, fork...) */
    PF_SCHED_EXIT_USAGE = 2,         /* a flow did not load at start */
    PF_SCHED_EXIT_INTERRUPTED = 130, /* a second signal aborted the runs */
};

typedef struct pf_sched_opts {
    char *const *paths; /* flow files and directories (borrowed, not NULL) */
    size_t npaths;      /* >= 1 */
    int max_parallel;   /* 1..PF_SCHED_MAX_PARALLEL_LIMIT */
    int64_t grace_ms;   /* real milliseconds to wait for runs after a stop signal */
    int metrics_port;   /* -1: no metrics endpoint; 0: any free port; else the port */
    const char *metrics_bind; /* the metrics endpoint's address; NULL: 127.0.0.1 */
} pf_sched_opts;

/* Loads the flows of O and runs them on their schedules until a signal stops
 * it. Every problem is logged (pf_log); returns one of the exit codes above.
 * Refuses to run (exit 2) when PPFLOW_NOW pins the clock or PPFLOW_TEST_CLOCK
 * does not parse. An unanchored PPFLOW_TEST_CLOCK is anchored here and
 * exported, so that the runs read the same clock. */
int pf_sched_main(const pf_sched_opts *o);

/* Loads the flows of O and prints, for each, its schedule and the COUNT
 * (>= 1) run times that follow now (pf_time_now_ms) to OUT, one per line;
 * for `every` they assume runs that take no time. Runs nothing. Returns 0,
 * or 2 when a flow does not load (problems logged). */
int pf_sched_list(const pf_sched_opts *o, int count, FILE *out);

#endif
