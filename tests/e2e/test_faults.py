"""test_faults.py: fault injection against ppflow, end to end (loopback only,
every loop bounded in count and time).

Network: the mock's /__mock/fault answers the second window of a backfill
with 429 (Retry-After as seconds, as an HTTP date, above the limit),
500/502/503/504, a reset mid-body, a truncated body, truncated or non-JSON
content with correct framing, a stalled body (the stall timeout fires), a
corrupt gzip body, a redirect loop, or nobody listening. Each case ends in a
retry and success, or in a clean failure (message, non-zero exit) with the
checkpoint at the end of the first window and the committed part of every
NDJSON file holding exactly the mock's records up to the checkpoint; a rerun
then delivers everything exactly once.

Sink: a full file system (a small tmpfs when mount is permitted) and a file
size limit (RLIMIT_FSIZE, EFBIG) under the NDJSON sink.

Crashes: SIGKILL at exact points of the checkpoint write (inside the
temporary file, before and after the rename; the first three checkpoint
writes of a run) through an LD_PRELOAD shim built here. (Kills at random
points of a long backfill are test_crash.py's.)

Totals (faults injected, kills survived, records lost) are printed for
docs/reliability.md.
"""
import datetime as dt
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, Record, hour_floor, iso, slurp

TOTALS = {"faults injected": 0, "kills survived": 0, "records lost": 0}


def count(key, n=1):
    TOTALS[key] += n


class FaultCase(E2ETestCase):
    """Helpers to check that the checkpoint never passes undelivered records."""

    def committed(self, stream, sink_dir="out"):
        """The records of STREAM up to the length the checkpoint's sink token
        records (bytes after it are uncommitted and cut away on resume)."""
        path = os.path.join(self.dir, sink_dir, stream + ".ndjson")
        st_path = os.path.join(self.dir, "state", "siem.json")
        if not os.path.exists(st_path):
            return []
        files = (json.loads(slurp(st_path)).get("sink") or {}).get("resume", {}).get("files", {})
        n = files.get(os.path.join(sink_dir, stream + ".ndjson"), 0)
        if n == 0:
            return []
        data = slurp(path, "rb")
        self.assertGreaterEqual(len(data), n, "a committed file is shorter than its checkpoint")
        return [Record(line) for line in data[:n].split(b"\n")[:-1]]

    def assert_checkpoint_exact(self, start):
        """The checkpoint file parses, and everything committed before its
        cursor is there exactly once, nothing after it. Returns the cursor."""
        st_path = os.path.join(self.dir, "state", "siem.json")
        cursor = json.loads(slurp(st_path))["cursor"] if os.path.exists(st_path) else None
        expected = self.mock.expected("/v2/siem/all", start, cursor) if cursor else {}
        for stream, (array, key) in SIEM_STREAMS.items():
            got = [r.identity for r in self.committed(stream)]
            self.assertEqual(len(got), len(set(got)), "duplicates in " + stream)
            want = expected.get(array, [])
            missing = set(want) - set(got)
            count("records lost", len(missing))
            self.assertEqual(sorted(got), sorted(want),
                             "%s: committed records differ from the mock's up to %s"
                             % (stream, cursor))
        return cursor


class Network(FaultCase):
    mock_seed = 21

    def setUp(self):
        super().setUp()
        self.start, self.mid, self.end = (iso(hour_floor(-4)), iso(hour_floor(-3)),
                                          iso(hour_floor(-2)))

    def flow(self, http=None, base_url=None, until=None):
        h = {"max_attempts": 3}
        h.update(http or {})
        return self.siem_flow(params={"since_time": self.start, "until": until or self.end},
                              http=h, base_url=base_url, sink=getattr(self, "sink", None))

    def second_window(self, faults, http=None, ok=False, want=()):
        """Runs the two-window backfill with FAULTS on the second window's
        requests. Returns (result, seconds, [(status, fault) of window 2])."""
        self.mock.fault(kind="slow", seconds=0, count=1)  # the first window passes
        for f in faults:
            self.mock.fault(**f)
        t0 = time.monotonic()
        r = self.ppflow("run", self.flow(http))
        took = time.monotonic() - t0
        reqs = self.mock.requests("/v2/siem/all")
        count("faults injected", sum(1 for q in reqs if q["fault"] not in (None, "slow")))
        w2 = [(q["status"], q["fault"]) for q in reqs[1:]]
        if ok:
            self.assertEqual(r.code, 0, r)
            self.assert_exact_siem(self.start, self.end)
        else:
            self.assertNotEqual(r.code, 0, r)
            for w in want:
                self.assertIn(w, r.err)
            self.assertEqual(self.assert_checkpoint_exact(self.start), self.mid)
            self.assertEqual(json.loads(slurp(os.path.join(self.dir, "state", "siem.json")))
                             ["last_run"]["outcome"], "failed")
            # Nothing is lost: the next run delivers the rest exactly once.
            self.mock.reset()
            r2 = self.ppflow("run", self.flow(http))
            self.assertEqual(r2.code, 0, r2)
            self.assert_exact_siem(self.start, self.end)
        return r, took, w2

    def in_subdirs(self, cases, fn):
        """Runs FN(case) in a fresh sub-directory (own flow state) per case."""
        base = self.dir
        try:
            for c in cases:
                with self.subTest(case=c):
                    self.dir = os.path.join(base, str(c))
                    os.makedirs(self.dir)
                    self.mock.reset()
                    fn(c)
        finally:
            self.dir = base

    # ---- retry, then success ----

    def test_every_fault_once_then_success(self):
        faults = [{"kind": "status", "status": 503}, {"kind": "reset"},
                  {"kind": "gzip_corrupt"}, {"kind": "stall", "seconds": 30},
                  {"kind": "truncate"}, {"kind": "429", "retry_after": 0},
                  {"kind": "status", "status": 500}, {"kind": "status", "status": 502},
                  {"kind": "status", "status": 504}]
        _, took, w2 = self.second_window(
            faults, http={"max_attempts": 10, "stall_timeout": "1s"}, ok=True)
        self.assertEqual([f for _, f in w2], [f["kind"] for f in faults] + [None])
        self.assertLess(took, 60)

    def test_body_failures_after_records_reached_the_sink(self):
        """A reset or truncation after part of the window's records were
        already written to the sink (batches of 3 records): the retry takes
        them back before the body starts again, so none is written twice."""
        self.sink = {"type": "ndjson", "path": "out/{stream}.ndjson", "batch_records": 3}
        _, _, w2 = self.second_window([{"kind": "reset"}, {"kind": "truncate"}],
                                      http={"max_attempts": 5}, ok=True)
        self.assertEqual([f for _, f in w2], ["reset", "truncate", None])

    def test_429_with_an_http_date_retry_after(self):
        _, _, w2 = self.second_window(
            [{"kind": "429", "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}], ok=True)
        self.assertEqual(w2, [(429, "429"), (200, None)])

    def test_stall_timeout_fires_and_the_retry_succeeds(self):
        # Only the stall timeout can end this attempt: the total timeout is 5 min.
        _, took, w2 = self.second_window([{"kind": "stall", "seconds": 60}],
                                         http={"stall_timeout": "1s"}, ok=True)
        self.assertEqual(w2, [(200, "stall"), (200, None)])
        self.assertLess(took, 20, "the stalled body was not abandoned in time")

    def test_ctrl_c_says_interrupted_and_how_to_resume(self):
        # The second window stalls; Ctrl-C (SIGINT) while it is in flight.
        self.mock.fault(kind="slow", seconds=0, count=1)
        self.mock.fault(kind="stall", seconds=60)
        flow = self.flow()
        p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while len(self.mock.requests("/v2/siem/all")) < 2:
                self.assertLess(time.monotonic(), deadline, "the second window never started")
                self.assertIsNone(p.poll())
                time.sleep(0.05)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.outputs += [out, err]
        self.assertEqual(p.returncode, 130, err)
        self.assertRegex(err, r"ppflow run: interrupted after delivering \d+ records; `ppflow run "
                              r"\S*siem\.yaml` resumes at the checkpoint")
        # As it says: the checkpoint is at the first window, and running again
        # delivers everything exactly once.
        self.assertEqual(self.assert_checkpoint_exact(self.start), self.mid)
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(self.start, self.end)

    def test_corrupt_gzip_is_retried(self):
        _, _, w2 = self.second_window([{"kind": "gzip_corrupt"}], ok=True)
        self.assertEqual(w2, [(200, "gzip_corrupt"), (200, None)])

    # ---- clean failures ----

    def test_persistent_server_errors_fail_cleanly(self):
        def one(status):
            _, _, w2 = self.second_window([{"kind": "status", "status": status, "count": 10}],
                                          want=("HTTP %d" % status, "gave up after 3 attempts"))
            self.assertEqual(w2, [(status, "status")] * 3)
        self.in_subdirs([500, 502, 503, 504], one)

    def test_429_until_attempts_run_out(self):
        _, _, w2 = self.second_window([{"kind": "429", "retry_after": 0, "count": 10}],
                                      want=("HTTP 429", "gave up after 3 attempts"))
        self.assertEqual(len(w2), 3)

    def test_retry_after_above_the_limit_fails_at_once(self):
        _, took, w2 = self.second_window([{"kind": "429", "retry_after": 3600}],
                                         http={"retry_after_max": "10s"},
                                         want=("HTTP 429", "Retry-After 3600 s is above"))
        self.assertEqual(w2, [(429, "429")])
        self.assertLess(took, 10)

    def test_persistent_resets_truncations_stalls_and_gzip_fail_cleanly(self):
        cases = {
            "reset": ({"kind": "reset"}, "gave up after 2 attempts"),
            "truncate": ({"kind": "truncate"}, "gave up after 2 attempts"),
            "stall": ({"kind": "stall", "seconds": 60}, "too slow"),
            "gzip_corrupt": ({"kind": "gzip_corrupt"}, "gave up after 2 attempts"),
        }

        def one(name):
            f, want = cases[name]
            t0 = time.monotonic()
            _, _, w2 = self.second_window([dict(f, count=10)],
                                          http={"max_attempts": 2, "stall_timeout": "1s"},
                                          want=(want,))
            self.assertEqual([k for _, k in w2], [name, name])
            self.assertLess(time.monotonic() - t0, 60)
        self.in_subdirs(sorted(cases), one)

    def test_truncated_or_invalid_json_fails_cleanly(self):
        bodies = {
            "truncated": ('{"queryEndTime":"2026-01-01T00:00:00Z","messagesDelivered":'
                          '[{"GUID":"g-1","subject":"hello",', "truncated JSON"),
            "html": ("<html><body>maintenance</body></html>", "not valid JSON"),
        }

        def one(name):
            body, want = bodies[name]
            self.second_window([{"kind": "status", "status": 200, "body": body, "count": 10}],
                               want=(want,))
            self.assertNotIn("g-1", [r["GUID"] for r in self.read_records("messages_delivered")])
        self.in_subdirs(sorted(bodies), one)

    def test_redirect_loop_fails_cleanly(self):
        _, _, w2 = self.second_window([{"kind": "redirect_loop"}], want=("HTTP 302",))
        self.assertEqual(w2, [(302, "redirect_loop")], "a redirect is not retried")

    def test_nobody_listening(self):
        r = self.ppflow("run", self.flow(until=self.mid))
        self.assertEqual(r.code, 0, r)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = self.ppflow("run", self.flow(base_url="http://127.0.0.1:%d" % port))
        count("faults injected", 3)
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("gave up after 3 attempts", r.err)
        self.assertEqual(self.assert_checkpoint_exact(self.start), self.mid)
        r = self.ppflow("run", self.flow())
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(self.start, self.end)


class DiskFull(FaultCase):
    """The NDJSON sink on a full file system: RETRY, then a clean failure
    naming the file and the errno; the checkpoint covers exactly what was
    committed; after space is freed a rerun delivers everything once."""
    mock_seed = 22

    def run_full(self, preexec, want):
        start, end = iso(hour_floor(-5)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": end})
        p = subprocess.run([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                           capture_output=True, text=True, timeout=300, preexec_fn=preexec)
        self.outputs += [p.stdout, p.stderr]
        count("faults injected")
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, r"cannot write out/\w+\.ndjson: ")
        self.assertIn(want, p.stderr)
        cursor = self.assert_checkpoint_exact(start)
        self.assertNotEqual(cursor, end, "the run cannot have completed")
        return flow, start, end

    def test_tmpfs_full(self):
        out = os.path.join(self.dir, "out")
        os.makedirs(out)
        # Room for about one window of the four files, not three.
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k,mode=0700", "tmpfs", out],
                           capture_output=True, text=True)
        if m.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (%s); the RLIMIT_FSIZE test covers "
                          "write errors" % (m.stderr.strip() or "mount failed"))
        self.addCleanup(subprocess.run, ["umount", "-l", out], capture_output=True)
        flow, start, end = self.run_full(None, "No space left on device (ENOSPC)")
        subprocess.run(["mount", "-o", "remount,size=64m", out], check=True)
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)

    def test_file_size_limit(self):
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))
        flow, start, end = self.run_full(limit, "File too large (EFBIG)")
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)


SHIM = r"""
/* LD_PRELOAD shim for ppflow's fault tests: SIGKILL at an exact point of an
 * atomic file replacement whose target contains $PFSHIM_MATCH.
 *   PFSHIM_WRITE=N    the N-th write() into the temporary file writes half
 *                     its bytes, then the process is killed;
 *   PFSHIM_RENAME=bN  killed just before the N-th rename onto the target;
 *   PFSHIM_RENAME=aN  killed just after it.
 * And out of memory at an exact point:
 *   PFSHIM_STRDUP=N   the N-th strdup() of a text starting with
 *                     $PFSHIM_STRDUP_PREFIX fails with ENOMEM. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tmp_of_target(int fd, const char *match)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    return strstr(path, match) && strstr(path, ".tmp.");
}

ssize_t write(int fd, const void *buf, size_t len)
{
    static ssize_t (*real)(int, const void *, size_t);
    static int n;
    if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    const char *when = getenv("PFSHIM_WRITE"), *m = getenv("PFSHIM_MATCH");
    if (when && m && tmp_of_target(fd, m) && ++n == atoi(when)) {
        real(fd, buf, len / 2);
        kill(getpid(), SIGKILL);
    }
    return real(fd, buf, len);
}

char *strdup(const char *s)
{
    static char *(*real)(const char *);
    static int n;
    if (!real) real = (char *(*)(const char *))dlsym(RTLD_NEXT, "strdup");
    const char *when = getenv("PFSHIM_STRDUP"), *p = getenv("PFSHIM_STRDUP_PREFIX");
    if (when && p && s && strncmp(s, p, strlen(p)) == 0 && ++n == atoi(when)) {
        errno = ENOMEM;
        return NULL;
    }
    return real(s);
}

int rename(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    static int n;
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    const char *when = getenv("PFSHIM_RENAME"), *m = getenv("PFSHIM_MATCH");
    if (when && m && strstr(to, m) && strstr(from, ".tmp.") && ++n == atoi(when + 1)) {
        if (when[0] == 'b') kill(getpid(), SIGKILL);
        int r = real(from, to);
        kill(getpid(), SIGKILL);
        return r;
    }
    return real(from, to);
}
"""


class Crash(FaultCase):
    mock_seed = 23

    def shim(self):
        """The LD_PRELOAD shim, built once per class."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler to build the LD_PRELOAD shim")
        src = os.path.join(self.classdir, "pfshim.c")
        lib = os.path.join(self.classdir, "pfshim.so")
        if not os.path.exists(lib):
            with open(src, "w") as f:
                f.write(SHIM)
            subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", lib, src, "-ldl"], check=True)
        return lib

    def test_out_of_memory_saving_the_ledger_keeps_it(self):
        """Memory runs out while the late-arrival ledger is copied before a
        unit: the run fails, and the checkpoint still holds the ledger, so
        the next run's re-sweep delivers nothing twice."""
        lib = self.shim()
        t = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2)
        start = t - dt.timedelta(minutes=50)
        flow = self.siem_flow(params={"since_time": iso(start)})

        def at(when, **extra):
            self.mock.post("/__mock/config", {"now": iso(when)})
            return self.env(PPFLOW_NOW=iso(when), **extra)

        r = self.ppflow("run", flow, env=at(t))
        self.assertEqual(r.code, 0, r)
        ledger = self.state()["ledger"]
        self.assertTrue(ledger)
        # Copies of the ledger's text are made when the checkpoint is read,
        # then before each unit: fail each one in turn until it is the copy
        # before a unit that fails (the earlier failures change nothing).
        for n in range(1, 10):
            env = at(t + dt.timedelta(minutes=5), LD_PRELOAD=lib, PFSHIM_STRDUP=str(n),
                     PFSHIM_STRDUP_PREFIX='{"v":1,',
                     ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                     ":verify_asan_link_order=0")
            r = self.ppflow("run", flow, env=env)
            self.assertEqual(r.code, 1, r)
            self.assertIn("out of memory", r.err)
            if "out of memory saving the late-arrival ledger" in r.err:
                break
        self.assertIn("out of memory saving the late-arrival ledger", r.err)
        self.assertEqual(self.state()["ledger"], ledger, "the ledger was lost")
        r = self.ppflow("run", flow, env=at(t + dt.timedelta(minutes=5)))
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(iso(start), iso(t + dt.timedelta(minutes=5)))

    def test_kill_during_the_checkpoint_write(self):
        lib = self.shim()
        start, end = iso(hour_floor(-5)), iso(hour_floor(-2))
        points = [("PFSHIM_WRITE", str(n)) for n in (1, 2, 3)] + \
                 [("PFSHIM_RENAME", w + str(n)) for w in "ba" for n in (1, 2, 3)]
        base = self.dir
        try:
            for var, when in points:
                with self.subTest(point=var + "=" + when):
                    self.dir = os.path.join(base, var + when)
                    os.makedirs(self.dir)
                    self.mock.reset()
                    flow = self.siem_flow(params={"since_time": start, "until": end})
                    env = self.env(LD_PRELOAD=lib, PFSHIM_MATCH="state/siem.json",
                                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                                   ":verify_asan_link_order=0")
                    env[var] = when
                    p = subprocess.run([PPFLOW, "run", flow], cwd=self.dir, env=env,
                                       capture_output=True, text=True, timeout=120)
                    self.outputs += [p.stdout, p.stderr]
                    self.assertEqual(p.returncode, -signal.SIGKILL, p.stderr)
                    count("kills survived")
                    # Old or new, but readable, and consistent with the files.
                    self.assert_checkpoint_exact(start)
                    r = self.ppflow("run", flow)
                    self.assertEqual(r.code, 0, r)
                    self.assert_exact_siem(start, end)
        finally:
            self.dir = base


def tearDownModule():
    print("\n" + ", ".join("%s: %d" % kv for kv in TOTALS.items()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
