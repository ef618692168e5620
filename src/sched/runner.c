/* runner.c: the scheduler loop of `ppflow schedule`: loading and reloading
 * flow files, due times, forked runs, signals, run logs and metrics. */
#define _GNU_SOURCE /* ppoll, pipe2, prctl */
#include "sched/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "engine/engine.h"
#include "flow/flow.h"
#include "flow/flowfiles.h"
#include "http/http.h"
#include "sched/metrics.h"
#include "sched/pacing.h"
#include "sched/schedule.h"
#include "state/state.h"
#include "util/log.h"
#include "util/safefile.h"
#include "util/timeutil.h"

#define RESULT_MAGIC 0x50465252u /* "PFRR" */
#define ERRTEXT_MAX (PF_ERROR_MSG_MAX + PF_ERROR_FILE_MAX + 64)
#define MAX_WAIT_MS 30000    /* re-read the clock at least this often */
#define RETRY_START_MS 10000 /* after a failed fork or pipe */
#define RUN_ID_LEN 12

/* What a run's child process reports to the scheduler when it ends: one
 * write on a pipe, small enough to be atomic. */
typedef struct run_result {
    uint32_t magic;
    int32_t outcome; /* pf_run_outcome */
    int32_t status;  /* pf_status of the engine */
    int32_t has_cursor;
    int64_t cursor_ms;
    long long records, windows, requests, bytes, dead_letters, retries;
    int64_t lock_from_ms, lock_until_ms; /* when the run held the flow's lock (0: never) */
    char error[ERRTEXT_MAX]; /* redacted; "" when none */
} run_result;
_Static_assert(sizeof(run_result) <= PIPE_BUF, "a run result must be written atomically");

typedef struct entry {
    char *path;          /* the flow file (the entry's identity across reloads) */
    pf_flow *flow;       /* its last version that loaded */
    int64_t due_ms;      /* next run on the scheduler clock; INT64_MAX: none */
    int64_t last_end_ms; /* end of the last run; 0: none yet */
    pid_t pid;           /* the run in flight; 0: none */
    int result_fd;       /* read end of the run's result pipe; -1: none */
    char run_id[RUN_ID_LEN + 1];
    char *run_name; /* the flow name of the version running */
    int64_t run_start_ms, run_due_ms;
    int removed; /* the file is gone: dropped when the run in flight ends */
} entry;

typedef struct sched {
    const pf_sched_opts *o;
    entry **e;
    size_t n, alloc;
    int running;
    int stopping;
    int64_t stop_deadline_mono;
    int64_t speed; /* test clock speed; 1 on the real clock */
    pf_metrics metrics;
    pf_metrics_server *server;
    sigset_t orig_mask;
    pid_t self;
} sched;

static volatile sig_atomic_t g_term, g_hup;

static void on_term(int sig)
{
    (void)sig;
    if (g_term < 2) g_term++;
}

static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

static void on_chld(int sig)
{
    (void)sig; /* only interrupts ppoll */
}

static int64_t now_ms(void)
{
    return pf_time_now_ms();
}

static void fmt_time(int64_t ms, char buf[PF_TIME_FMT_SIZE])
{
    if (ms == INT64_MAX)
        snprintf(buf, PF_TIME_FMT_SIZE, "never");
    else
        pf_time_format(ms, buf);
}

/* Logs each diagnostic as an error line ("FILE:LINE:COL: message"). */
static void log_diags(const pf_diags *d)
{
    for (size_t i = 0; i < d->count; i++) {
        char msg[PF_ERROR_MSG_MAX + PF_ERROR_FILE_MAX + 64];
        pf_error_format(&d->items[i], msg, sizeof msg);
        pf_log_error("%s", msg);
    }
    if (d->oom) pf_log_error("out of memory (some problems were not recorded)");
}

/* ---- flow files ---- */

typedef struct strvec {
    char **v;
    size_t n, alloc;
} strvec;

static void strvec_free(strvec *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The flow files named by O (see pf_flow_files). Returns 0, or -1 when
 * some path is missing or unreadable (logged; the rest is still listed). */
static int collect_files(const pf_sched_opts *o, strvec *out)
{
    char **files = NULL;
    size_t n = 0;
    int rc = pf_flow_files((const char *const *)o->paths, o->npaths, &files, &n);
    out->v = files;
    out->n = out->alloc = n;
    return rc == 0 ? 0 : -1;
}

/* Loads PATH as a scheduled flow; problems are logged. NULL on failure. */
static pf_flow *load_flow(const char *path)
{
    pf_diags d = {0};
    pf_flow *f = NULL;
    /* What the flow registers for redaction (its secret, ${VAR} values of its
     * query, headers and sink options) belongs to this file: a run keeps
     * exactly its own flow's secrets (child_run). */
    pf_log_secret_scope(path);
    pf_flow_load(path, NULL, 0, &f, &d);
    pf_log_secret_scope(NULL);
    if (f && !f->schedule) {
        pf_error e;
        const pf_ynode *root = f->doc ? f->doc->root : NULL;
        pf_error_at(&e, PF_ECONFIG, path, root ? root->line : 1, root ? root->col : 1,
                    "flow '%s' has no schedule (add e.g. schedule: {every: 5m}; `ppflow run` "
                    "runs a flow once without one)",
                    f->name);
        pf_diags_add(&d, &e);
        pf_flow_free(f);
        f = NULL;
    }
    log_diags(&d);
    pf_diags_free(&d);
    return f;
}

/* ---- entries ---- */

static entry *find_path(sched *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i]->path, path) == 0) return s->e[i];
    return NULL;
}

static void entry_free(entry *e)
{
    if (!e) return;
    if (e->result_fd >= 0) close(e->result_fd);
    pf_flow_free(e->flow);
    free(e->path);
    free(e->run_name);
    free(e);
}

static int name_in_use(const sched *s, const char *name, const entry *except)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i] != except && s->e[i]->flow && strcmp(s->e[i]->flow->name, name) == 0) return 1;
    return 0;
}

static void drop_entry(sched *s, size_t i)
{
    entry *e = s->e[i];
    if (e->flow && !name_in_use(s, e->flow->name, e))
        pf_metrics_flow_remove(&s->metrics, e->flow->name);
    entry_free(e);
    memmove(s->e + i, s->e + i + 1, (s->n - i - 1) * sizeof *s->e);
    s->n--;
}

/* Makes sure flow F has a metrics entry; reads its checkpoint for the lag
 * the first time. */
static void track_metrics(sched *s, const pf_flow *f, int64_t due)
{
    int fresh = 1;
    for (size_t i = 0; i < s->metrics.count; i++)
        if (strcmp(s->metrics.flows[i]->name, f->name) == 0) fresh = 0;
    pf_metrics_flow *m = pf_metrics_flow_get(&s->metrics, f->name);
    if (!m) return;
    m->next_run_ms = due;
    if (fresh) {
        pf_state st = {0};
        pf_error e;
        if (pf_state_load(f->state_path, &st, &e) == PF_OK && st.has_cursor) {
            m->has_cursor = 1;
            m->cursor_ms = st.cursor_ms;
        }
        pf_state_free(&st);
    }
}

/* Warns when F's schedule alone makes more calls a day than its
 * template's call budget allows, and says which interval would fit. */
static void warn_schedule_budget(const pf_flow *f, int64_t now)
{
    pf_pacing_fit fit;
    pf_pacing_fit_schedule(f, now, &fit);
    if (!fit.applies || fit.fits) return;
    char desc[320], iv[64] = "";
    pf_schedule_describe(f->schedule, desc, sizeof desc);
    if (fit.fit_interval_ms) pf_schedule_format_ms(fit.fit_interval_ms, iv, sizeof iv);
    pf_log_set_flow(f->name);
    pf_log_warn("flow %s: its schedule (%s) makes about %lld runs a day of about %lld calls "
                "each, %lld calls in 24 hours, more than the call budget '%s' allows per "
                "credential (%lld); its runs will be postponed to stay within the budget. %s%s%s",
                f->name, desc, fit.runs_per_day, fit.calls_per_run, fit.calls_per_day,
                f->tmpl->quota_pool, (long long)f->tmpl->quota_budget,
                fit.fit_interval_ms ? "A schedule of every "
                                    : "No schedule fits it: even one "
                                      "run a day makes more calls",
                iv, fit.fit_interval_ms ? " or longer would fit" : "");
    pf_log_set_flow(NULL);
}

/* The candidate flows of one load pass, parallel to the file list. */
typedef struct pass {
    strvec files;
    pf_flow **cand;  /* the version that loaded now; NULL: failed */
    pf_flow **final; /* the version that will be scheduled (borrowed) */
} pass;

static const char *other_file(const pass *p, size_t self, const pf_flow *f)
{
    for (size_t j = 0; j < p->files.n; j++) {
        if (j == self || !p->final[j]) continue;
        if (strcmp(p->final[j]->name, f->name) == 0 ||
            strcmp(p->final[j]->state_path, f->state_path) == 0)
            return p->files.v[j];
    }
    return NULL;
}

/* Loads every flow file. At start (INITIAL) any problem fails the whole
 * load (-1). On reload, a file that fails keeps its previous version, a new
 * one is added, a file no longer there is unscheduled. */
static int load_all(sched *s, int initial)
{
    pass p = {0};
    int failed = collect_files(s->o, &p.files) != 0;
    if (failed && !initial) {
        /* A path that cannot be read now (unmounted, permissions) must not
         * unschedule every flow it held. */
        pf_log_error("reload abandoned: the flow files could not all be listed; the flows "
                     "scheduled stay as they were");
        strvec_free(&p.files);
        return -1;
    }
    if (p.files.n > PF_SCHED_MAX_FLOWS) {
        pf_log_error("%zu flow files; at most %d are scheduled by one process", p.files.n,
                     PF_SCHED_MAX_FLOWS);
        strvec_free(&p.files);
        return -1;
    }
    if (p.files.n) {
        p.cand = calloc(p.files.n, sizeof *p.cand);
        p.final = calloc(p.files.n, sizeof *p.final);
        if (!p.cand || !p.final) {
            pf_log_error("out of memory loading flows");
            free(p.cand);
            free(p.final);
            strvec_free(&p.files);
            return -1;
        }
    }
    for (size_t i = 0; i < p.files.n; i++) {
        p.cand[i] = load_flow(p.files.v[i]);
        entry *e = find_path(s, p.files.v[i]);
        if (!p.cand[i]) {
            failed = 1;
            if (e)
                pf_log_error("%s: not reloaded; its previous version keeps running", e->path);
            else if (!initial)
                pf_log_error("%s: not scheduled", p.files.v[i]);
        }
        p.final[i] = e ? e->flow : NULL;
    }
    /* One name and one state path per flow. */
    for (size_t i = 0; i < p.files.n; i++) {
        if (!p.cand[i]) continue;
        const char *other = other_file(&p, i, p.cand[i]);
        if (other) {
            pf_log_error("%s: flow '%s' has the same name or state path as %s; each flow needs "
                         "its own%s",
                         p.files.v[i], p.cand[i]->name, other,
                         find_path(s, p.files.v[i]) ? " (its previous version keeps running)" : "");
            pf_flow_free(p.cand[i]);
            p.cand[i] = NULL;
            failed = 1;
        } else {
            p.final[i] = p.cand[i];
        }
    }
    /* One output file, one flow: a new version that would write a file
     * another flow writes is not scheduled (its previous version, if any,
     * keeps running). */
    if (p.files.n > 1) {
        int *involved = calloc(p.files.n, sizeof *involved);
        pf_diags d = {0};
        if (!involved) {
            pf_log_error("out of memory comparing the flows' output files");
            failed = 1;
        } else if (pf_flow_outputs_check(p.final, p.files.n, involved, &d) > 0) {
            for (size_t i = 0; i < d.count; i++) {
                char line[PF_ERROR_MSG_MAX + PF_ERROR_FILE_MAX + 64];
                pf_error_format(&d.items[i], line, sizeof line);
                pf_log_error("%s", line);
            }
            for (size_t i = 0; i < p.files.n; i++) {
                if (!involved[i] || !p.cand[i] || p.final[i] != p.cand[i]) continue;
                entry *e = find_path(s, p.files.v[i]);
                if (e)
                    pf_log_error("%s: not reloaded; its previous version keeps running",
                                 e->path);
                pf_flow_free(p.cand[i]);
                p.cand[i] = NULL;
                p.final[i] = e ? e->flow : NULL;
            }
            failed = 1;
        }
        pf_diags_free(&d);
        free(involved);
    }
    if (initial && (failed || p.files.n == 0)) {
        if (!failed) pf_log_error("no flow files found (*.yaml or *.yml)");
        for (size_t i = 0; i < p.files.n; i++)
            pf_flow_free(p.cand[i]);
        free(p.cand);
        free(p.final);
        strvec_free(&p.files);
        return -1;
    }

    int64_t now = now_ms();
    int added = 0, changed = 0, removed = 0;
    for (size_t i = 0; i < s->n; i++)
        s->e[i]->removed = 1;
    for (size_t i = 0; i < p.files.n; i++) {
        entry *e = find_path(s, p.files.v[i]);
        if (e) e->removed = 0;
        if (!p.cand[i]) continue;
        pf_flow *f = p.cand[i];
        p.cand[i] = NULL;
        if (!e) {
            if (s->n == s->alloc) {
                size_t na = s->alloc ? s->alloc * 2 : 16;
                entry **ne = realloc(s->e, na * sizeof *ne);
                if (!ne) {
                    pf_log_error("out of memory adding %s", p.files.v[i]);
                    pf_flow_free(f);
                    continue;
                }
                s->e = ne;
                s->alloc = na;
            }
            e = calloc(1, sizeof *e);
            if (!e || !(e->path = strdup(p.files.v[i]))) {
                pf_log_error("out of memory adding %s", p.files.v[i]);
                free(e);
                pf_flow_free(f);
                continue;
            }
            e->result_fd = -1;
            e->flow = f;
            e->due_ms = pf_schedule_first(f->schedule, now);
            s->e[s->n++] = e;
            added++;
        } else {
            int same_schedule = pf_schedule_equal(e->flow->schedule, f->schedule);
            if (strcmp(e->flow->name, f->name) != 0 && !name_in_use(s, e->flow->name, e) && !e->pid)
                pf_metrics_flow_remove(&s->metrics, e->flow->name);
            pf_flow_free(e->flow);
            e->flow = f;
            if (!same_schedule && !e->pid) {
                /* every: an interval after the last run; cron: its next time. */
                if (f->schedule->kind == PF_SCHEDULE_EVERY && e->last_end_ms)
                    e->due_ms = pf_schedule_after_run(f->schedule, e->last_end_ms, e->last_end_ms);
                else
                    e->due_ms = pf_schedule_first(f->schedule, now);
            }
            changed++;
        }
        track_metrics(s, e->flow, e->due_ms);
        warn_schedule_budget(e->flow, now);
    }
    for (size_t i = s->n; i-- > 0;) {
        if (!s->e[i]->removed) continue;
        removed++;
        pf_log_info("%s: file removed; flow '%s' is no longer scheduled%s", s->e[i]->path,
                    s->e[i]->flow->name, s->e[i]->pid ? " (its run in flight continues)" : "");
        if (!s->e[i]->pid) drop_entry(s, i);
    }
    if (!initial)
        pf_log_info("reloaded: %zu flows scheduled (%d added, %d reloaded, %d removed, %s)", s->n,
                    added, changed, removed, failed ? "some files have errors" : "no errors");
    free(p.cand);
    free(p.final);
    strvec_free(&p.files);
    return 0;
}

/* ---- runs ---- */

static volatile sig_atomic_t g_child_cancel;

static void child_on_term(int sig)
{
    (void)sig;
    g_child_cancel = 1;
}

/* 1 when another process holds the lock of the flow whose checkpoint is at
 * STATE_PATH (the lock file is STATE_PATH + ".lock", see state.h); MSG
 * then says who. Takes and drops the lock when it is free. */
static int lock_busy(const char *state_path, char *msg, size_t n)
{
    char lp[PATH_MAX];
    if ((size_t)snprintf(lp, sizeof lp, "%s.lock", state_path) >= sizeof lp) return 0;
    /* Never through a link and never blocking on a FIFO: a lock file that
     * is refused here is refused, with its reason, by the run itself. */
    int fd = pf_open_private(lp, O_RDONLY, "cannot open lock file", NULL);
    if (fd < 0) return 0;
    int busy = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        char pid[32] = "";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        if (r > 0) pid[r] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(msg, n, "flow is being run by another ppflow process%s%s%s",
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        busy = 1;
    }
    close(fd);
    return busy;
}

/* The child side of a run: what `ppflow run` does, then one result on WFD. */
static void child_run(sched *s, entry *e, int wfd) __attribute__((noreturn));
static void child_run(sched *s, entry *e, int wfd)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = child_on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
    /* Own process group: a Ctrl-C in a terminal reaches the scheduler only,
     * which forwards one SIGTERM. */
    setpgid(0, 0);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != s->self) g_child_cancel = 1;
    pf_metrics_server_close(s->server);
    s->server = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i]->result_fd >= 0) close(s->e[i]->result_fd);
    pf_http_set_cancel_flag(&g_child_cancel);
    /* The parent's table holds the secrets of every flow and may be full;
     * this run needs its own flow's (all that its load registered under its
     * path: the secret, ${VAR} values of its query, headers and sink
     * options, secret parameters), and room for what the HTTP layer
     * registers (the encoded Basic token, credential headers). */
    pf_log_keep_secrets_of(e->path);
    if (e->flow->secret && pf_log_add_secret(e->flow->secret) != 0) {
        static const char msg[] = "ppflow: error: cannot register the flow's secret for "
                                  "redaction; not running\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(1);
    }

    run_result r;
    memset(&r, 0, sizeof r);
    r.magic = RESULT_MAGIC;
    int code = 0;
    if (lock_busy(e->flow->state_path, r.error, sizeof r.error)) {
        r.outcome = PF_RUN_BUSY;
        r.status = PF_ESTATE;
    } else {
        pf_run_opts ro;
        pf_run_opts_default(&ro);
        pf_run_stats stats;
        pf_error err;
        pf_error_clear(&err);
        pf_status st = pf_engine_run(e->flow, &ro, &stats, &err);
        r.status = st;
        r.records = stats.records;
        r.windows = stats.windows;
        r.requests = stats.requests;
        r.bytes = stats.bytes;
        r.dead_letters = stats.dead_letters;
        r.retries = stats.retries;
        r.has_cursor = stats.has_cursor;
        r.cursor_ms = stats.cursor_ms;
        r.lock_from_ms = stats.lock_from_ms;
        r.lock_until_ms = stats.lock_until_ms;
        if (st != PF_OK) {
            char msg[ERRTEXT_MAX];
            pf_error_format(&err, msg, sizeof msg);
            pf_log_redact(msg, r.error, sizeof r.error);
        }
        r.outcome = st == PF_OK             ? PF_RUN_OK
                    : st == PF_EINTERRUPTED ? PF_RUN_INTERRUPTED
                                            : PF_RUN_FAILED;
        if (stats.busy) /* the sink's lock (PostgreSQL advisory lock): its message stays */
            r.outcome = PF_RUN_BUSY;
        else if (st == PF_ESTATE && lock_busy(e->flow->state_path, r.error, sizeof r.error))
            r.outcome = PF_RUN_BUSY;
        if (st == PF_OK && stats.dead_letters > 0) {
            /* As `ppflow run`: kept, not lost, but a failure monitoring sees. */
            r.outcome = PF_RUN_FAILED;
            snprintf(r.error, sizeof r.error,
                     "%lld records were refused by the sink and written to "
                     "%.256s.deadletter.ndjson",
                     stats.dead_letters, e->flow->state_path);
        }
        code = r.outcome == PF_RUN_OK ? 0 : r.outcome == PF_RUN_INTERRUPTED ? 130 : 1;
    }
    ssize_t w = write(wfd, &r, sizeof r);
    (void)w;
    fflush(stderr);
    _exit(code);
}

static void make_run_id(char out[RUN_ID_LEN + 1])
{
    unsigned char b[RUN_ID_LEN / 2];
    if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
        static unsigned long seq;
        uint64_t x = (uint64_t)pf_time_real_ms() ^ ((uint64_t)getpid() << 40) ^ ++seq;
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)(x >> (8 * i));
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[RUN_ID_LEN] = '\0';
}

static void start_run(sched *s, entry *e, int64_t now)
{
    int fds[2];
    char *name = strdup(e->flow->name);
    if (!name || pipe2(fds, O_CLOEXEC) != 0) {
        pf_log_error("flow %s: cannot start a run: %s; retrying in %d s", e->flow->name,
                     name ? strerror(errno) : "out of memory", RETRY_START_MS / 1000);
        free(name);
        e->due_ms = now + RETRY_START_MS;
        return;
    }
    make_run_id(e->run_id);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        pf_log_error("flow %s: cannot start a run: fork: %s; retrying in %d s", e->flow->name,
                     strerror(errno), RETRY_START_MS / 1000);
        close(fds[0]);
        close(fds[1]);
        free(name);
        e->due_ms = now + RETRY_START_MS;
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child_run(s, e, fds[1]);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    setpgid(pid, pid); /* as the child does; whichever runs first */
    e->pid = pid;
    e->result_fd = fds[0];
    free(e->run_name);
    e->run_name = name;
    e->run_start_ms = now;
    e->run_due_ms = e->due_ms;
    s->running++;
    pf_metrics_flow *m = pf_metrics_flow_get(&s->metrics, name);
    if (m) {
        m->running = 1;
        m->next_run_ms = 0; /* known when the run ends */
    }
    char t[PF_TIME_FMT_SIZE], due[PF_TIME_FMT_SIZE], desc[320];
    fmt_time(now, t);
    fmt_time(e->due_ms, due);
    pf_schedule_describe(e->flow->schedule, desc, sizeof desc);
    pf_log_set_flow(name);
    pf_log_info("flow %s: run %s started at %s (due %s; %s; pid %ld)", name, e->run_id, t, due,
                desc, (long)pid);
    pf_log_set_flow(NULL);
}

static void finish_run(sched *s, size_t idx, int status)
{
    entry *e = s->e[idx];
    run_result r;
    ssize_t n = read(e->result_fd, &r, sizeof r);
    if (n != (ssize_t)sizeof r || r.magic != RESULT_MAGIC) {
        memset(&r, 0, sizeof r);
        r.outcome = PF_RUN_CRASHED;
        if (WIFSIGNALED(status))
            snprintf(r.error, sizeof r.error, "the run's process was killed by signal %d",
                     WTERMSIG(status));
        else
            snprintf(r.error, sizeof r.error,
                     "the run's process exited (code %d) without reporting a result",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    r.error[sizeof r.error - 1] = '\0';
    close(e->result_fd);
    e->result_fd = -1;
    e->pid = 0;
    s->running--;

    int64_t now = now_ms();
    e->last_end_ms = now;
    e->due_ms = pf_schedule_after_run(e->flow->schedule, e->run_start_ms, now);
    pf_metrics_flow *m = pf_metrics_flow_get(&s->metrics, e->run_name);
    if (m) {
        m->running = 0;
        if (r.outcome >= 0 && r.outcome < PF_RUN__COUNT) m->runs[r.outcome]++;
        m->records += r.records;
        m->bytes += r.bytes;
        m->requests += r.requests;
        m->windows += r.windows;
        m->dead_letters += r.dead_letters;
        m->retries += r.retries;
        if (r.has_cursor) {
            m->has_cursor = 1;
            m->cursor_ms = r.cursor_ms;
        }
        if (r.outcome == PF_RUN_OK) m->last_success_ms = now;
        m->last_duration_ms = now - e->run_start_ms;
        m->next_run_ms = s->stopping || e->removed ? 0 : e->due_ms;
    }
    char t[PF_TIME_FMT_SIZE], cur[PF_TIME_FMT_SIZE] = "none", next[PF_TIME_FMT_SIZE];
    fmt_time(now, t);
    if (r.has_cursor) fmt_time(r.cursor_ms, cur);
    fmt_time(e->due_ms, next);
    int64_t dur = now - e->run_start_ms;
    pf_log_set_flow(e->run_name);
    pf_log(r.outcome == PF_RUN_OK || r.outcome == PF_RUN_INTERRUPTED ? PF_LOG_INFO
           : r.outcome == PF_RUN_BUSY                                ? PF_LOG_WARN
                                                                     : PF_LOG_ERROR,
           "flow %s: run %s %s at %s: %lld records, %lld windows, %lld requests, %lld retries, "
           "%lld bytes in %lld.%03lld s; checkpoint %s; next run %s%s%s",
           e->run_name, e->run_id, pf_run_outcome_name(r.outcome), t, r.records, r.windows,
           r.requests, r.retries, r.bytes, (long long)(dur / 1000), (long long)(dur % 1000), cur,
           s->stopping || e->removed ? "none (stopping)" : next, r.error[0] ? "; error: " : "",
           r.error);
    if (r.lock_from_ms && r.lock_until_ms) {
        /* When the run really held the flow: start and end above are when
         * the process was started and reaped. */
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        fmt_time(r.lock_from_ms, a);
        fmt_time(r.lock_until_ms, b);
        pf_log_debug("flow %s: run %s held the flow's lock from %s to %s", e->run_name, e->run_id,
                     a, b);
    }
    pf_log_set_flow(NULL);
    if (e->removed) drop_entry(s, idx);
}

static void reap(sched *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < s->n; i++) {
            if (s->e[i]->pid == pid) {
                finish_run(s, i, status);
                break;
            }
        }
    }
}

static void signal_runs(sched *s, int sig)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i]->pid > 0) kill(s->e[i]->pid, sig);
}

/* Kills the runs in flight and waits for them. */
static void kill_runs(sched *s)
{
    signal_runs(s, SIGKILL);
    while (s->running > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (size_t i = 0; i < s->n; i++) {
            if (s->e[i]->pid == pid) {
                finish_run(s, i, status);
                break;
            }
        }
    }
}

/* Before E's run starts at NOW: when the calls it is expected to make do
 * not fit its call budget's last 24 hours, postpones it to when they do
 * (logged, counted) and returns 1. A budget that cannot be read does not
 * hold the run back (the run stops at the budget itself). */
static int pace_run(sched *s, entry *e, int64_t now)
{
    pf_pacing p;
    pf_error err;
    pf_error_clear(&err);
    pf_status st = pf_pacing_check(e->flow, now, &p, &err);
    pf_log_set_flow(e->flow->name);
    if (st != PF_OK) {
        char msg[ERRTEXT_MAX], clean[ERRTEXT_MAX];
        pf_error_format(&err, msg, sizeof msg);
        pf_log_redact(msg, clean, sizeof clean);
        pf_log_warn("flow %s: cannot check the call budget before the run (%s); running it "
                    "anyway (a run stops at its budget)",
                    e->flow->name, clean);
        pf_log_set_flow(NULL);
        return 0;
    }
    if (!p.applies || p.start_ms <= now) {
        pf_log_set_flow(NULL);
        return 0;
    }
    e->due_ms = p.start_ms;
    pf_metrics_flow *m = pf_metrics_flow_get(&s->metrics, e->flow->name);
    if (m) {
        m->delayed_budget++;
        m->next_run_ms = e->due_ms;
    }
    char at[PF_TIME_FMT_SIZE];
    fmt_time(e->due_ms, at);
    pf_log_warn("flow %s: run postponed to %s: the call budget '%s' has %ld of %lld calls used "
                "in the last 24 hours and this run needs about %lld; it starts when enough of "
                "those calls have left the 24-hour window",
                e->flow->name, at, p.pool, p.used, p.budget, p.estimate);
    pf_log_set_flow(NULL);
    return 1;
}

/* Starts due runs while there are free slots, most overdue first. */
static void start_due(sched *s)
{
    int64_t now = now_ms();
    while (s->running < s->o->max_parallel) {
        entry *best = NULL;
        for (size_t i = 0; i < s->n; i++) {
            entry *e = s->e[i];
            if (e->pid || e->removed || e->due_ms > now) continue;
            if (!best || e->due_ms < best->due_ms) best = e;
        }
        if (!best) return;
        if (pace_run(s, best, now)) continue;
        start_run(s, best, now);
        if (!best->pid) return; /* could not start: try again later */
    }
}

/* Real milliseconds until something is due (capped). */
static int64_t wait_ms(const sched *s)
{
    int64_t w = MAX_WAIT_MS;
    if (!s->stopping && s->running < s->o->max_parallel) {
        int64_t now = now_ms();
        for (size_t i = 0; i < s->n; i++) {
            const entry *e = s->e[i];
            if (e->pid || e->removed || e->due_ms == INT64_MAX) continue;
            int64_t d = e->due_ms - now;
            if (d <= 0) return 0;
            int64_t real = d / s->speed + (d % s->speed != 0);
            if (real < w) w = real;
        }
    }
    if (s->stopping) {
        int64_t d = s->stop_deadline_mono - pf_time_mono_ms();
        if (d < w) w = d < 0 ? 0 : d;
    }
    return w;
}

/* ---- the loop ---- */

static int setup_clock(sched *s)
{
    const char *pin = getenv("PPFLOW_NOW");
    if (pin && *pin) {
        pf_log_error("PPFLOW_NOW pins the clock, so nothing would ever become due; unset it "
                     "(tests use PPFLOW_TEST_CLOCK)");
        return -1;
    }
    s->speed = 1;
    const char *tc = getenv(PF_TEST_CLOCK_ENV);
    if (!tc || !*tc) return 0;
    pf_test_clock c;
    pf_error e;
    if (pf_test_clock_parse(tc, &c, &e) != PF_OK) {
        pf_log_error("%s: %s", PF_TEST_CLOCK_ENV, e.msg);
        return -1;
    }
    if (!c.anchored) {
        c.anchor_ms = pf_time_real_ms();
        c.anchored = 1;
        char buf[PF_TEST_CLOCK_FMT_SIZE];
        pf_test_clock_format(&c, buf);
        if (setenv(PF_TEST_CLOCK_ENV, buf, 1) != 0) {
            pf_log_error("cannot set %s: %s", PF_TEST_CLOCK_ENV, strerror(errno));
            return -1;
        }
    }
    s->speed = c.speed;
    char t[PF_TIME_FMT_SIZE];
    pf_time_format(pf_test_clock_at(&c, pf_time_real_ms()), t);
    pf_log_warn("test clock in use (%s): now is %s, running %lld times faster than real time",
                PF_TEST_CLOCK_ENV, t, (long long)c.speed);
    return 0;
}

static void sched_free(sched *s)
{
    for (size_t i = 0; i < s->n; i++)
        entry_free(s->e[i]);
    free(s->e);
    s->e = NULL;
    s->n = s->alloc = 0;
    pf_metrics_free(&s->metrics);
    pf_metrics_server_close(s->server);
    s->server = NULL;
}

static void install_handlers(sched *s)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &s->orig_mask);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
}

int pf_sched_main(const pf_sched_opts *o)
{
    sched s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.self = getpid();
    if (setup_clock(&s) != 0) return PF_SCHED_EXIT_USAGE;
    g_term = g_hup = 0;
    /* Signals are handled only inside ppoll, so the loop never races them. */
    install_handlers(&s);
    s.metrics.started_ms = now_ms();
    if (load_all(&s, 1) != 0) {
        sched_free(&s);
        sigprocmask(SIG_SETMASK, &s.orig_mask, NULL);
        return PF_SCHED_EXIT_USAGE;
    }
    if (o->metrics_port >= 0) {
        pf_error e;
        if (pf_metrics_server_open(o->metrics_bind, o->metrics_port, &s.server, &e) != PF_OK) {
            pf_log_error("%s", e.msg);
            sched_free(&s);
            sigprocmask(SIG_SETMASK, &s.orig_mask, NULL);
            return PF_SCHED_EXIT_FAIL;
        }
        const char *ba = o->metrics_bind ? o->metrics_bind : "127.0.0.1";
        int v6 = strchr(ba, ':') != NULL;
        pf_log_info("metrics at http://%s%s%s:%d/metrics (health at /healthz)", v6 ? "[" : "", ba,
                    v6 ? "]" : "", pf_metrics_server_port(s.server));
    }
    pf_log_info("scheduling %zu flows (at most %d runs at once); SIGTERM stops, SIGHUP reloads",
                s.n, o->max_parallel);
    for (size_t i = 0; i < s.n; i++) {
        char desc[320], due[PF_TIME_FMT_SIZE];
        pf_schedule_describe(s.e[i]->flow->schedule, desc, sizeof desc);
        fmt_time(s.e[i]->due_ms, due);
        pf_log_info("flow %s (%s): %s; first run %s", s.e[i]->flow->name, s.e[i]->path, desc, due);
    }

    int code = PF_SCHED_EXIT_OK;
    for (;;) {
        if (g_term >= 2) {
            pf_log_warn("second signal: killing %d runs in flight and exiting", s.running);
            kill_runs(&s);
            code = PF_SCHED_EXIT_INTERRUPTED;
            break;
        }
        if (g_term && !s.stopping) {
            s.stopping = 1;
            s.stop_deadline_mono = pf_time_mono_ms() + o->grace_ms;
            if (s.running)
                pf_log_info("stopping: %d runs in flight stop after their last commit; waiting "
                            "up to %lld.%03lld s (signal again to abort)",
                            s.running, (long long)(o->grace_ms / 1000),
                            (long long)(o->grace_ms % 1000));
            signal_runs(&s, SIGTERM);
        }
        if (g_hup) {
            g_hup = 0;
            if (s.stopping) {
                pf_log_info("SIGHUP ignored: stopping");
            } else {
                pf_log_info("SIGHUP: reloading the flow files");
                load_all(&s, 0);
            }
        }
        reap(&s);
        if (s.stopping && s.running == 0) {
            pf_log_info("stopped");
            break;
        }
        if (s.stopping && pf_time_mono_ms() >= s.stop_deadline_mono) {
            pf_log_warn("grace period over: killing %d runs in flight (their checkpoints stay "
                        "at the last commit)",
                        s.running);
            kill_runs(&s);
            break;
        }
        if (!s.stopping) start_due(&s);

        int64_t w = wait_ms(&s);
        struct pollfd pfd = {.fd = -1};
        int64_t conn_deadline = INT64_MAX;
        if (s.server) {
            pf_metrics_server_pollfd(s.server, &pfd, &conn_deadline);
            if (conn_deadline != INT64_MAX) {
                int64_t d = conn_deadline - pf_time_mono_ms();
                if (d < w) w = d < 0 ? 0 : d;
            }
        }
        struct timespec ts = {.tv_sec = (time_t)(w / 1000), .tv_nsec = (long)(w % 1000) * 1000000L};
        int r = ppoll(s.server ? &pfd : NULL, s.server ? 1 : 0, &ts, &s.orig_mask);
        if (r < 0 && errno != EINTR) {
            pf_log_error("poll: %s", strerror(errno));
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 100000000L};
            nanosleep(&pause, NULL);
        }
        if (s.server)
            pf_metrics_server_handle(s.server, r > 0 ? pfd.revents : 0, &s.metrics, now_ms());
    }
    sched_free(&s);
    sigprocmask(SIG_SETMASK, &s.orig_mask, NULL);
    return code;
}

/* ---- --list ---- */

static void fmt_local(int64_t ms, const pf_tz *tz, char *buf, size_t n)
{
    int32_t off = pf_tz_offset(tz, ms / 1000);
    char t[PF_TIME_FMT_SIZE];
    pf_time_format(ms + (int64_t)off * 1000, t);
    t[strcspn(t, "Z")] = '\0';
    int a = off < 0 ? -off : off;
    snprintf(buf, n, "%s%c%02d:%02d", t, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

int pf_sched_list(const pf_sched_opts *o, int count, FILE *out)
{
    sched s;
    memset(&s, 0, sizeof s);
    s.o = o;
    if (load_all(&s, 1) != 0) {
        sched_free(&s);
        return PF_SCHED_EXIT_USAGE;
    }
    int64_t now = now_ms();
    for (size_t i = 0; i < s.n; i++) {
        const pf_schedule *sc = s.e[i]->flow->schedule;
        char desc[320];
        pf_schedule_describe(sc, desc, sizeof desc);
        fprintf(out, "%s\t%s\t%s\n", s.e[i]->flow->name, desc, s.e[i]->path);
        int64_t t = pf_schedule_first(sc, now);
        for (int k = 0; k < count && t != INT64_MAX; k++) {
            char u[PF_TIME_FMT_SIZE];
            pf_time_format(t, u);
            if (sc->kind == PF_SCHEDULE_CRON && strcmp(sc->tz_name, "UTC") != 0) {
                char l[64];
                fmt_local(t, sc->tz, l, sizeof l);
                fprintf(out, "  %s  (%s)\n", u, l);
            } else {
                fprintf(out, "  %s\n", u);
            }
            t = pf_schedule_after_run(sc, t, t);
        }
    }
    sched_free(&s);
    return 0;
}
