"""test_schedule.py: `ppflow schedule` end to end against the loopback mock.

The scheduler runs on a test clock (PPFLOW_TEST_CLOCK: a start time and a
speed), so hours of schedule pass in seconds; its runs read the same clock.
The clock starts a few hours in the past, so every window the runs ask for is
in the mock's past. Proven here: ticks at the right times for `every` and
`cron` (UTC and a zone), no overlap, one catch-up run after a long run, a
slow flow not delaying another, SIGTERM ending in a consistent checkpoint and
exit 0, a second signal aborting, the grace period, SIGHUP with a broken file
keeping the old version (and its FILE:LINE:COL reported), a new file
writing another flow's output files not scheduled, two schedulers on
the same flows never running one flow twice at once, JSON logs, and the
metrics endpoint reporting the numbers the runs produced.
"""
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, SOURCE_DIR, hour_floor, iso, slurp

START_RE = re.compile(r"flow (\S+): run (\S+) started at (\S+) \(due (\S+); .*; pid (\d+)\)$")
LOCK_RE = re.compile(r"flow (\S+): run (\S+) held the flow's lock from (\S+) to (\S+)$")
END_RE = re.compile(r"flow (\S+): run (\S+) (ok|failed|interrupted|busy|crashed) at (\S+): "
                    r"(\d+) records, (\d+) windows, (\d+) requests, (\d+) retries, (\d+) bytes "
                    r"in ([\d.]+) s; "
                    r"checkpoint (\S+); next run (\S+)(?: \(stopping\))?(?:; error: (.*))?$")
MIN = dt.timedelta(minutes=1)
# How late (on the test clock) a run may start after it is due: about one real
# second at the speeds used, for a loaded machine. Due times are exact.
LATE_OK = dt.timedelta(seconds=90)


def t(s):
    """A logged time ("2026-11-23T09:03:00.540Z") as an aware datetime."""
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def clock(start, speed, anchor_ms=None):
    spec = "%s@%d" % (iso(start), speed)
    return spec if anchor_ms is None else "%s@%d" % (spec, anchor_ms)


class Sched:
    """A `ppflow schedule` process whose log lines are collected as they come."""

    def __init__(self, case, args, env, json_logs=False):
        self.case, self.json_logs = case, json_logs
        self.proc = subprocess.Popen([PPFLOW, "schedule", *args], cwd=case.dir, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.out = [], []
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stderr, self.lines)),
                        threading.Thread(target=self._read, args=(self.proc.stdout, self.out))]
        for th in self.threads:
            th.daemon = True
            th.start()

    def _read(self, stream, into):
        for line in stream:
            with self.cond:
                into.append(line.rstrip("\n"))
                self.cond.notify_all()

    def msgs(self):
        with self.cond:
            lines = list(self.lines)
        if not self.json_logs:
            return [re.sub(r"^ppflow: \w+: ", "", l) for l in lines]
        return [json.loads(l)["msg"] for l in lines]

    def starts(self, flow=None):
        out = []
        for m in self.msgs():
            g = START_RE.match(m)
            if g and (flow is None or g.group(1) == flow):
                out.append({"flow": g.group(1), "id": g.group(2), "at": t(g.group(3)),
                            "due": t(g.group(4)), "pid": int(g.group(5))})
        return out

    def ends(self, flow=None, outcome=None):
        out = []
        for m in self.msgs():
            g = END_RE.match(m)
            if g and (flow is None or g.group(1) == flow) and (outcome is None or
                                                               g.group(3) == outcome):
                out.append({"flow": g.group(1), "id": g.group(2), "outcome": g.group(3),
                            "at": t(g.group(4)), "records": int(g.group(5)),
                            "windows": int(g.group(6)), "requests": int(g.group(7)),
                            "retries": int(g.group(8)), "bytes": int(g.group(9)),
                            "checkpoint": g.group(11), "next": g.group(12),
                            "error": g.group(13)})
        return out

    def text(self):
        with self.cond:
            return "\n".join(self.lines + self.out)

    def wait_for(self, pred, timeout=60, what="condition"):
        deadline = time.time() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.time()
                if left <= 0 or (self.proc.poll() is not None and not pred()):
                    self.cond.release()
                    try:
                        self.case.fail("timed out waiting for %s; scheduler %s, log:\n%s" % (
                            what, "exited %s" % self.proc.poll() if self.proc.poll() is not None
                            else "running", self.text()[-4000:]))
                    finally:
                        self.cond.acquire()
                self.cond.wait(min(left, 0.2))

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for th in self.threads:
                th.join(5)
            self.case.outputs.append(self.text())
        return code

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)


class ScheduleCase(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.scheds = []
        # The test clock starts two minutes into the hour three hours ago; the
        # flows backfill from five hours ago.
        self.t0 = hour_floor(-3) + 2 * MIN
        self.since = hour_floor(-5)

    def tearDown(self):
        for s in self.scheds:
            if s.proc.poll() is None:
                s.proc.kill()
                s.wait()
        super().tearDown()

    def flow(self, name, schedule, template="tap-siem-all", directory="flows", secret_env="PP_SECRET"):
        lines = ["name: %s" % name, "source:", "  template: %s" % template,
                 "  base_url: %s" % self.mock.url, "  allow_insecure_http: true", "  auth:",
                 "    principal: ${PP_PRINCIPAL}", "    secret: ${%s}" % secret_env,
                 # These tests follow the window sequence; the late-arrival
                 # re-sweep has its own tests (test_late.py).
                 "  lookback: 0s",
                 "  params:", "    since_time: %s" % iso(self.since),
                 "  http:", "    backoff: 50ms", "    backoff_max: 200ms", "    max_attempts: 2",
                 "sink:", "  type: ndjson", "  path: out/%s/{stream}.ndjson" % name,
                 "state:", "  path: state/%s.json" % name, "schedule:"]
        lines += ["  %s: %s" % kv for kv in schedule.items()]
        return self.write(os.path.join(directory, name + ".yaml"), "\n".join(lines) + "\n")

    def schedule(self, *args, speed=60, anchor_ms=None, env=None):
        e = env or self.env()
        e["PPFLOW_TEST_CLOCK"] = clock(self.t0, speed, anchor_ms)
        e.pop("PPFLOW_NOW", None)
        json_logs = any(a == "json" and b == "--log-format" for b, a in zip(args, args[1:]))
        s = Sched(self, list(args), e, json_logs)
        self.scheds.append(s)
        return s

    def records(self, name, stream):
        return self.read_records(stream, sink_dir=os.path.join("out", name))

    def assert_exact(self, name, start, end, streams=SIEM_STREAMS, path="/v2/siem/all"):
        """Every record the mock holds for [start, end) is in NAME's sink exactly once."""
        expected = self.mock.expected(path, start, end)
        total = 0
        for stream, (array, key) in streams.items():
            got = [r.identity for r in self.records(name, stream)]
            self.assertEqual(len(got), len(set(got)), "duplicates in %s/%s" % (name, stream))
            self.assertEqual(sorted(got), sorted(expected[array]), "%s/%s differs" % (name, stream))
            total += len(got)
        self.assertGreater(total, 0, "the range held no records; the test proves nothing")
        return total

    def assert_windows_consecutive(self, path="/v2/siem/all"):
        """The windows asked for follow each other: none asked twice, none skipped."""
        ivs = [q["params"]["interval"][0].split("/") for q in self.mock.requests(path)
               if q["status"] == 200]
        self.assertGreater(len(ivs), 1)
        self.assertEqual(ivs[0][0], iso(self.since))
        for (a1, b1), (a2, b2) in zip(ivs, ivs[1:]):
            self.assertEqual(t(b1), t(a2), "windows must follow each other: %s" % ivs)
        return ivs


class ScheduleTicks(ScheduleCase):
    mock_seed = 31

    def test_every_counts_from_the_end_of_each_run(self):
        self.flow("ev", {"every": "5m"})
        s = self.schedule("flows/")
        s.wait_for(lambda: len(s.ends("ev")) >= 4, 90, "four runs")
        self.assertEqual(s.stop(), 0, s.text())
        starts, ends = s.starts("ev"), s.ends("ev")
        self.assertTrue(all(e["outcome"] == "ok" for e in ends), s.text())
        # The first run at once; each next one due exactly five clock minutes
        # after the previous run ended, and started then.
        self.assertLess(starts[0]["at"] - self.t0, LATE_OK)
        for prev_end, nxt in zip(ends, starts[1:]):
            self.assertEqual(nxt["due"], prev_end["at"] + 5 * MIN)
            self.assertGreaterEqual(nxt["at"], nxt["due"])
            self.assertLess(nxt["at"] - nxt["due"], LATE_OK)
        # The runs read the scheduler's clock: each checkpoint is just before
        # its run's end on that clock, hours before the real now.
        for e in ends:
            cp = t(e["checkpoint"])
            self.assertLessEqual(cp, e["at"])
            self.assertLess(e["at"] - cp, dt.timedelta(minutes=2))
        last = self.state("ev")["cursor"]
        self.assertEqual(t(last), t(ends[-1]["checkpoint"]))
        self.assert_exact("ev", iso(self.since), last)
        self.assert_windows_consecutive()

    def test_cron_runs_at_its_times_in_utc_and_in_a_zone(self):
        # Every ten minutes in UTC; and in Asia/Kathmandu (UTC+05:45), whose
        # "every ten minutes" falls at :05, :15, :25... UTC.
        self.flow("utc", {"cron": "'*/10 * * * *'"})
        self.flow("ktm", {"cron": "'*/10 * * * *'", "timezone": "Asia/Kathmandu"},
                  template="tap-siem-clicks-permitted")
        s = self.schedule("flows/", speed=120)
        s.wait_for(lambda: len(s.ends("utc")) >= 3 and len(s.ends("ktm")) >= 3, 90,
                   "three runs of each flow")
        self.assertEqual(s.stop(), 0, s.text())
        for name, first in (("utc", self.t0 + 8 * MIN), ("ktm", self.t0 + 3 * MIN)):
            starts = s.starts(name)
            self.assertEqual([x["due"] for x in starts[:3]],
                             [first, first + 10 * MIN, first + 20 * MIN], name)
            for x in starts:
                self.assertGreaterEqual(x["at"], x["due"])
                self.assertLess(x["at"] - x["due"], LATE_OK)
            self.assertTrue(all(e["outcome"] == "ok" for e in s.ends(name)), s.text())
        self.assert_exact("utc", iso(self.since), self.state("utc")["cursor"])

    def test_list_prints_the_next_times(self):
        self.flow("ber", {"cron": "'30 2 * * *'", "timezone": "Europe/Berlin"})
        self.flow("ev", {"every": "90m"})
        r = self.ppflow("schedule", "--list=3", "flows/",
                        env=self.env(PPFLOW_NOW="2026-03-28T12:00:00Z"))
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out.splitlines(), [
            "ber\tcron '30 2 * * *' in Europe/Berlin\tflows/ber.yaml",
            # 02:30 does not exist on 2026-03-29 in Berlin: the run is at the change.
            "  2026-03-29T01:00:00Z  (2026-03-29T03:00:00+02:00)",
            "  2026-03-30T00:30:00Z  (2026-03-30T02:30:00+02:00)",
            "  2026-03-31T00:30:00Z  (2026-03-31T02:30:00+02:00)",
            "ev\tevery 1h30m\tflows/ev.yaml",
            "  2026-03-28T12:00:00Z", "  2026-03-28T13:30:00Z", "  2026-03-28T15:00:00Z"])


class ScheduleLongRuns(ScheduleCase):
    mock_seed = 32

    def test_no_overlap_one_catch_up_and_no_delay_for_others(self):
        # "slow" runs every clock minute, but its first run takes about five
        # minutes (its three SIEM requests are held 1.2 s each, 60x); "fast" runs every
        # minute on another endpoint meanwhile.
        self.mock.fault(kind="slow", seconds=1.2, count=3, path="/v2/siem/all")
        self.flow("slow", {"cron": "'* * * * *'"})
        self.flow("fast", {"every": "1m"}, template="tap-siem-clicks-permitted")
        s = self.schedule("flows/")
        s.wait_for(lambda: len(s.ends("slow")) >= 4, 90, "four runs of the slow flow")
        self.assertEqual(s.stop(), 0, s.text())
        starts, ends = s.starts("slow"), s.ends("slow")
        self.assertTrue(all(e["outcome"] == "ok" for e in ends), s.text())
        # Never two runs of one flow at once.
        for e, nxt in zip(ends, starts[1:]):
            self.assertGreaterEqual(nxt["at"], e["at"])
        long_run = ends[0]["at"] - starts[0]["at"]
        self.assertGreater(long_run, 3 * MIN, "the first run was meant to be long")
        # It ran past several cron times: exactly one catch-up run, due when it
        # ended. In general each run is due at the first whole minute after
        # the previous run's start, or, when the previous run went past that
        # minute, at once when it ended (once, however many minutes it missed).
        self.assertEqual(starts[0]["due"], self.t0 + MIN)  # strictly after the start
        self.assertEqual(starts[1]["due"], ends[0]["at"])
        for s_prev, e_prev, nxt in zip(starts, ends, starts[1:]):
            tick = s_prev["at"].replace(second=0, microsecond=0) + MIN
            self.assertEqual(nxt["due"], e_prev["at"] if tick <= e_prev["at"] else tick)
        # The fast flow was not held up by the slow one.
        during = [x for x in s.starts("fast") if starts[0]["at"] <= x["at"] <= ends[0]["at"]]
        self.assertGreaterEqual(len(during), 2, s.text())
        self.assert_exact("slow", iso(self.since), self.state("slow")["cursor"])
        self.assert_windows_consecutive()

    def test_max_parallel_one_runs_flows_in_turn(self):
        self.mock.fault(kind="slow", seconds=0.5, count=100)
        for n in ("a", "b", "c"):
            self.flow(n, {"every": "1m"})
        s = self.schedule("--max-parallel", "1", "flows/")
        s.wait_for(lambda: len(s.ends()) >= 6, 90, "six runs")
        self.assertEqual(s.stop(), 0, s.text())
        runs = sorted(zip(s.starts(), s.ends()), key=lambda p: p[0]["at"])
        # With one slot, runs never overlap, whatever the flow.
        events = sorted([(x["at"], 1) for x in s.starts()] + [(x["at"], -1) for x in s.ends()])
        level = 0
        for _, d in events:
            level += d
            self.assertLessEqual(level, 1, s.text())
        self.assertEqual({x["flow"] for x, _ in runs[:3]}, {"a", "b", "c"})


class ScheduleSignals(ScheduleCase):
    mock_seed = 33

    def slow_flow(self, seconds):
        self.mock.fault(kind="slow", seconds=seconds, count=100, path="/v2/siem/all")
        self.flow("sig", {"every": "1h"})

    def test_sigterm_stops_after_the_last_commit_and_exits_0(self):
        self.slow_flow(0.7)
        s = self.schedule("flows/")
        # Stop once two windows are committed and the third is in flight.
        s.wait_for(lambda: sum("records" in m and m.startswith("window ") for m in s.msgs()) >= 2,
                   60, "two windows")
        t_sig = time.time()
        self.assertEqual(s.stop(), 0, s.text())
        self.assertLess(time.time() - t_sig, 10)
        ends = s.ends("sig")
        self.assertEqual(len(ends), 1)
        self.assertEqual(ends[0]["outcome"], "interrupted", s.text())
        self.assertIn("stopped", s.text())
        # The checkpoint is consistent with the sink: exactly the records up
        # to it, none after it.
        st = self.state("sig")
        self.assertEqual(st["last_run"]["outcome"], "interrupted")
        self.assertGreaterEqual(t(st["cursor"]), self.since + dt.timedelta(hours=2))
        self.assertEqual(st["cursor"], ends[0]["checkpoint"])
        self.assert_exact("sig", iso(self.since), st["cursor"])
        # A new scheduler resumes there and finishes, still exactly once.
        self.mock.reset()
        s2 = self.schedule("flows/")
        s2.wait_for(lambda: s2.ends("sig"), 60, "the resumed run")
        self.assertEqual(s2.stop(), 0, s2.text())
        self.assertEqual(s2.ends("sig")[0]["outcome"], "ok", s2.text())
        first = self.mock.requests("/v2/siem/all")[0]["params"]["interval"][0]
        self.assertEqual(t(first.split("/")[0]), t(st["cursor"]))
        self.assert_exact("sig", iso(self.since), self.state("sig")["cursor"])

    def run_stopped_child(self, *args):
        """A scheduler whose one run is in flight and SIGSTOPped (so it cannot
        react to SIGTERM)."""
        self.slow_flow(0.5)
        s = self.schedule(*args, "flows/")
        s.wait_for(lambda: s.starts("sig"), 30, "a run")
        pid = s.starts("sig")[0]["pid"]
        os.kill(pid, signal.SIGSTOP)
        return s, pid

    def assert_gone(self, pid):
        # Reaped by the scheduler: no such process any more (not even a zombie).
        self.assertFalse(os.path.exists("/proc/%d" % pid), "run process %d still exists" % pid)

    def test_second_signal_aborts_at_once(self):
        s, pid = self.run_stopped_child()
        s.signal(signal.SIGTERM)
        time.sleep(1.0)
        self.assertIsNone(s.proc.poll(), "the first signal must wait for the run (grace 30s)")
        t_sig = time.time()
        s.signal(signal.SIGINT)
        self.assertEqual(s.wait(10), 130, s.text())
        self.assertLess(time.time() - t_sig, 5)
        self.assert_gone(pid)
        self.assertIn("second signal", s.text())
        self.assertEqual(s.ends("sig")[0]["outcome"], "crashed")
        # The flow is free again and its checkpoint (if the run got that far)
        # consistent.
        if os.path.exists(os.path.join(self.dir, "state", "sig.json")) and \
                self.state("sig").get("cursor"):
            self.assert_exact("sig", iso(self.since), self.state("sig")["cursor"])
        r = self.ppflow("run", "flows/sig.yaml",
                        env=self.env(PPFLOW_NOW=iso(self.t0 + 10 * MIN)))
        self.assertEqual(r.code, 0, r)

    def test_grace_period_ends_in_a_kill_and_exit_0(self):
        s, pid = self.run_stopped_child("--grace", "2s")
        t_sig = time.time()
        s.signal(signal.SIGTERM)
        self.assertEqual(s.wait(20), 0, s.text())
        self.assertGreaterEqual(time.time() - t_sig, 1.8)
        self.assertIn("grace period over", s.text())
        self.assert_gone(pid)


class ScheduleReload(ScheduleCase):
    mock_seed = 34

    def test_sighup_keeps_a_broken_flow_adds_and_removes(self):
        self.flow("a", {"every": "1m"})
        self.flow("c", {"every": "1m"}, template="tap-siem-clicks-permitted")
        s = self.schedule("flows/")
        s.wait_for(lambda: s.ends("a") and s.ends("c"), 60, "first runs")
        # a.yaml breaks (its schedule line), b.yaml appears, c.yaml goes.
        path_a = os.path.join(self.dir, "flows", "a.yaml")
        with open(path_a) as f:
            text = f.read()
        broken = text.replace("  every: 1m", "  every: 5x")
        with open(path_a, "w") as f:
            f.write(broken)
        line = broken.splitlines().index("  every: 5x") + 1
        self.flow("b", {"every": "1m"}, template="tap-siem-messages-blocked")
        # d.yaml appears writing a's output files: one output file, one flow.
        path_d = self.flow("d", {"every": "1m"})
        with open(path_d) as f:
            text_d = f.read()
        with open(path_d, "w") as f:
            f.write(text_d.replace("path: out/d/", "path: out/a/"))
        os.unlink(os.path.join(self.dir, "flows", "c.yaml"))
        s.signal(signal.SIGHUP)
        s.wait_for(lambda: any(m.startswith("reloaded:") for m in s.msgs()), 30, "the reload")
        n_before = {n: len(s.starts(n)) for n in "abc"}
        s.wait_for(lambda: len(s.starts("a")) >= n_before["a"] + 2 and s.ends("b"), 60,
                   "runs of a and b after the reload")
        time.sleep(2)  # two more clock minutes
        self.assertEqual(s.stop(), 0, s.text())
        log = s.text()
        self.assertIn("flows/a.yaml:%d:10: " % line, log)
        self.assertIn("flows/a.yaml: not reloaded; its previous version keeps running", log)
        self.assertIn("flows/c.yaml: file removed; flow 'c' is no longer scheduled", log)
        self.assertEqual(len(s.starts("c")), n_before["c"], "c ran after it was removed")
        self.assertRegex(log, r"flows/d\.yaml:\d+:\d+: output file \S+/out/a/\w+\.ndjson is "
                              r"written by two flows: 'a' \(\S*flows/a\.yaml\) and 'd'")
        self.assertEqual(s.starts("d"), [], "d shares a's output files and never ran")
        self.assertTrue(all(e["outcome"] == "ok" for e in s.ends()), log)
        self.assertEqual(s.starts("a")[-1]["due"] - s.ends("a")[-2]["at"], MIN)

    def test_planted_lock_file_fails_the_run_without_hanging_the_scheduler(self):
        # A FIFO and a symbolic link where a flow's lock file goes: each run
        # of that flow fails with the reason; the other flow keeps running.
        self.flow("a", {"every": "1m"})
        self.flow("b", {"every": "1m"}, template="tap-siem-clicks-permitted")
        os.makedirs(os.path.join(self.dir, "state"), mode=0o700, exist_ok=True)
        os.mkfifo(os.path.join(self.dir, "state", "a.json.lock"), 0o600)
        s = self.schedule("flows/")
        s.wait_for(lambda: len(s.ends("a")) >= 2 and len(s.ends("b")) >= 2, 60, "two runs each")
        self.assertEqual(s.stop(), 0, s.text())
        for e in s.ends("a"):
            self.assertEqual(e["outcome"], "failed", s.text())
            self.assertIn("is not a regular file (FIFO)", e["error"])
        self.assertTrue(all(e["outcome"] == "ok" for e in s.ends("b")), s.text())

    def test_start_refuses_broken_or_unscheduled_flows(self):
        self.flow("ok", {"every": "1m"})
        bad = self.flow("bad", {"cron": "'*/5 * * 13 *'"})
        r = self.ppflow("schedule", "flows/", env=self.env(PPFLOW_TEST_CLOCK=clock(self.t0, 60)))
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.err, r"flows/bad\.yaml:\d+:9: invalid cron expression '\*/5 \* \* 13 "
                                r"\*': month: value out of range 1-12 \(at character 9\)")
        os.unlink(bad)
        plain = self.siem_flow(name="plain")
        r = self.ppflow("schedule", "flows/", plain)
        self.assertEqual(r.code, 2, r)
        self.assertIn("plain.yaml:1:1: flow 'plain' has no schedule", r.err)
        r = self.ppflow("schedule", "flows/", env=self.env(PPFLOW_NOW=iso(self.t0)))
        self.assertEqual(r.code, 2, r)
        self.assertIn("PPFLOW_NOW pins the clock", r.err)
        r = self.ppflow("schedule", "nowhere/")
        self.assertEqual(r.code, 2, r)
        r = self.ppflow("schedule", "--max-parallel", "0", "flows/")
        self.assertEqual(r.code, 2, r)
        self.assertEqual(self.mock.requests("/v2/"), [])


class ScheduleTwoProcesses(ScheduleCase):
    mock_seed = 35

    def test_two_schedulers_never_run_one_flow_at_once(self):
        self.mock.fault(kind="slow", seconds=0.4, count=1000, path="/v2/siem/all")
        self.flow("shared", {"every": "1m"})
        anchor = int(time.time() * 1000)
        a = self.schedule("-v", "flows/", anchor_ms=anchor)
        b = self.schedule("-v", "flows/", anchor_ms=anchor)
        busy = lambda: len(a.ends(outcome="busy")) + len(b.ends(outcome="busy"))
        done = lambda: len(a.ends(outcome="ok")) + len(b.ends(outcome="ok"))
        a.wait_for(lambda: busy() >= 2 and done() >= 6, 90, "contention and six runs")
        self.assertEqual(a.stop(), 0, a.text())
        self.assertEqual(b.stop(), 0, b.text())
        self.assertIn("flow is being run by another ppflow process (pid ",
                      a.text() + b.text())
        # On the shared clock, the runs that ran (not the busy skips) of both
        # processes never held the flow at once. (A process is started before
        # it takes the flow's lock and reaped after it let go, so start and
        # end lines of two processes may overlap by the time that takes.)
        runs = []
        for s in (a, b):
            for m in s.msgs():
                g = LOCK_RE.match(m)
                if g and g.group(1) == "shared":
                    runs.append((t(g.group(3)), t(g.group(4))))
        ran = sum(1 for s in (a, b) for e in s.ends("shared") if e["outcome"] != "busy")
        self.assertEqual(len(runs), ran, "a run that ran did not report its lock")
        runs.sort()
        for (s1, e1), (s2, e2) in zip(runs, runs[1:]):
            self.assertGreaterEqual(s2, e1, "two runs of one flow at once: %s" % runs)
        # Each window asked for once, each record delivered once.
        self.assert_windows_consecutive()
        self.assert_exact("shared", iso(self.since), self.state("shared")["cursor"])


class ScheduleMetrics(ScheduleCase):
    mock_seed = 36

    def scrape(self, port, path="/metrics"):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                values[k] = float(v)
        return values

    def raw(self, port, data):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(data)
            out = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return out.decode(errors="replace")
                out += chunk

    def test_metrics_report_what_the_runs_did(self):
        self.flow("m", {"every": "1h"})
        self.flow("f", {"every": "1h"}, secret_env="PP_WRONG")
        env = self.env(PP_WRONG="wrong-secret-value")
        s = self.schedule("--metrics-port", "0", "--log-format", "json", "flows/", env=env)
        s.wait_for(lambda: s.ends("m") and s.ends("f"), 60, "a run of each flow")
        port = int(re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics",
                             "\n".join(s.msgs())).group(1))
        v = self.scrape(port)
        end = s.ends("m")[0]
        self.assertEqual(end["outcome"], "ok")
        lines = sum(len(self.records("m", st)) for st in SIEM_STREAMS)
        reqs = [q for q in self.mock.requests("/v2/siem/all") if q["status"] != 401]  # not f's
        L = lambda name, flow="m": '%s{flow="%s"}' % (name, flow)
        self.assertEqual(v['ppflow_runs_total{flow="m",outcome="ok"}'], 1)
        self.assertEqual(v['ppflow_runs_total{flow="m",outcome="failed"}'], 0)
        self.assertEqual(v[L("ppflow_records_total")], lines)
        self.assertEqual(v[L("ppflow_records_total")], end["records"])
        self.assertEqual(v[L("ppflow_requests_total")], len(reqs))
        self.assertEqual(v[L("ppflow_windows_total")], end["windows"])
        self.assertEqual(v[L("ppflow_bytes_total")], end["bytes"])
        self.assertGreater(v[L("ppflow_bytes_total")], 0)
        self.assertEqual(v[L("ppflow_errors_total")], 0)
        self.assertEqual(v[L("ppflow_running")], 0)
        self.assertEqual(v[L("ppflow_last_success_timestamp_seconds")], end["at"].timestamp())
        self.assertEqual(v[L("ppflow_next_run_timestamp_seconds")], end["at"].timestamp() + 3600)
        cursor = t(self.state("m")["cursor"]).timestamp()
        lag = v[L("ppflow_lag_seconds")]
        self.assertGreaterEqual(lag, end["at"].timestamp() - cursor)
        self.assertLess(lag, 1200)  # the clock moved on by at most minutes since
        # The failing flow: counted, with its error, and no lag (no checkpoint).
        self.assertEqual(s.ends("f")[0]["outcome"], "failed")
        self.assertIn("401", s.ends("f")[0]["error"])
        self.assertEqual(v['ppflow_runs_total{flow="f",outcome="failed"}'], 1)
        self.assertEqual(v[L("ppflow_errors_total", "f")], 1)
        self.assertEqual(v[L("ppflow_records_total", "f")], 0)
        self.assertNotIn(L("ppflow_lag_seconds", "f"), v)
        self.assertNotIn(L("ppflow_last_success_timestamp_seconds", "f"), v)

        # The responder: other paths, methods, oversized requests; still serving after.
        self.assertIn("404 Not Found", self.raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        self.assertIn("405 Method Not Allowed",
                      self.raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
        self.assertIn("400 Bad Request", self.raw(port, b"garbage\r\n\r\n"))
        big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
        self.assertIn("431", self.raw(port, big))
        head = self.raw(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        self.assertIn("200 OK", head)
        self.assertTrue(head.endswith("\r\n\r\n"))
        # A client that connects and says nothing is dropped after a few
        # seconds; the scrape queued behind it gets through.
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            self.assertEqual(self.scrape(port)[L("ppflow_records_total")], lines)
        finally:
            idle.close()
        self.assertEqual(s.stop(), 0, s.text())
        # Every log line was one JSON object; run lines carry the flow.
        for line in s.lines:
            obj = json.loads(line)
            self.assertIn(obj["level"], ("info", "warning", "error", "debug"))
            if START_RE.match(obj["msg"]) or END_RE.match(obj["msg"]):
                self.assertIn(obj["flow"], ("m", "f"))
        self.assertNotIn("wrong-secret-value", s.text())
        # The metrics port is closed once the scheduler is gone.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def fnv1a64(text):
    """The credential hash of the call ledger's keys (engine/quota.c)."""
    h = 1469598103934665603
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return "%016x" % h


class ScheduleRetries(ScheduleCase):
    mock_seed = 37
    scrape = ScheduleMetrics.scrape

    def test_retries_are_counted_in_the_metrics_and_the_run_line(self):
        # Three windows; the first attempt of each fails (503, 503, 502) and
        # its retry succeeds ("slow" for 0 s lets a request through).
        self.mock.fault(kind="status", status=503, path="/v2/siem/all")
        self.mock.fault(kind="slow", seconds=0, path="/v2/siem/all")
        self.mock.fault(kind="status", status=503, path="/v2/siem/all")
        self.mock.fault(kind="slow", seconds=0, path="/v2/siem/all")
        self.mock.fault(kind="status", status=502, path="/v2/siem/all")
        self.since = self.t0 - dt.timedelta(minutes=2, hours=2)
        self.flow("r", {"every": "1h"})
        s = self.schedule("--metrics-port", "0", "flows/")
        s.wait_for(lambda: s.ends("r"), 60, "a run")
        port = int(re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics",
                             "\n".join(s.msgs())).group(1))
        v = self.scrape(port)
        self.assertEqual(s.stop(), 0, s.text())
        reqs = self.mock.requests("/v2/siem/all")
        failed = [q for q in reqs if q["status"] >= 500]
        self.assertEqual(len(failed), 3, reqs)
        end = s.ends("r")[0]
        self.assertEqual(end["outcome"], "ok", s.text())
        self.assertEqual(end["windows"], 3)
        self.assertEqual(end["retries"], len(failed))
        self.assertEqual(end["requests"], 3)  # requests made; their attempts are the mock's
        self.assertEqual(len(reqs), end["requests"] + end["retries"])
        self.assertEqual(v['ppflow_retries_total{flow="r"}'], len(failed))
        self.assertEqual(v['ppflow_requests_total{flow="r"}'], end["requests"])
        self.assertEqual(v['ppflow_runs_delayed_total{flow="r",reason="budget"}'], 0)
        self.assert_exact("r", iso(self.since), self.state("r")["cursor"])


class ScheduleBudget(ScheduleCase):
    mock_seed = 38
    scrape = ScheduleMetrics.scrape

    def small_budget_template(self, budget, name):
        text = slurp(os.path.join(SOURCE_DIR, "templates", "tap-siem-all.yaml"))
        text = re.sub(r"budget: \d+", "budget: %d" % budget, text)
        text = text.replace("name: tap-siem-all", "name: %s" % name)
        return self.write("%s.yaml" % name, text)

    def ledger(self, times):
        key = "tap-siem:" + fnv1a64("mock-principal")
        ms = [int(x.timestamp() * 1000) for x in times]
        self.write("state/ppflow-quota.json",
                   json.dumps({"version": 1, "calls": {key: ms}}))

    def test_a_run_that_would_exceed_the_budget_waits_for_it(self):
        tmpl = self.small_budget_template(10, "siem-ten")
        # The backfill from five hours ago to now (t0 = two minutes past an
        # hour) is three windows of at most one hour: [-5h, -4h), [-4h, -3h),
        # [-3h, -3h + 2 min). The ledger holds 9 calls of the last 24 hours;
        # the four oldest leave the window six clock minutes after t0.
        self.since = self.t0 - dt.timedelta(minutes=2, hours=2)
        old = self.t0 - dt.timedelta(hours=24) + 6 * MIN
        recent = self.t0 - dt.timedelta(hours=2)
        self.ledger([old] * 4 + [recent] * 5)
        self.flow("paced", {"every": "1h"}, template=tmpl)
        s = self.schedule("--metrics-port", "0", "flows/")
        s.wait_for(lambda: s.ends("paced"), 60, "the postponed run")
        port = int(re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics",
                             "\n".join(s.msgs())).group(1))
        v = self.scrape(port)
        self.assertEqual(s.stop(), 0, s.text())
        log = "\n".join(s.msgs())
        m = re.search(r"flow paced: run postponed to (\S+): the call budget 'tap-siem' has "
                      r"(\d+) of 10 calls used in the last 24 hours and this run needs about "
                      r"(\d+);", log)
        self.assertTrue(m, log)
        self.assertEqual(t(m.group(1)), old + dt.timedelta(hours=24))
        self.assertEqual(int(m.group(2)), 9)
        start, end = s.starts("paced")[0], s.ends("paced")[0]
        self.assertEqual(start["due"], t(m.group(1)))
        self.assertGreaterEqual(start["at"], t(m.group(1)))
        self.assertLess(start["at"] - start["due"], LATE_OK)
        # The run then made the calls estimated, within the budget: no 429,
        # no stop at the budget, everything delivered.
        self.assertEqual(end["outcome"], "ok", s.text())
        reqs = self.mock.requests("/v2/siem/")
        self.assertEqual(len(reqs), int(m.group(3)))
        self.assertEqual(end["requests"], len(reqs))
        self.assertTrue(all(q["status"] == 200 for q in reqs), reqs)
        self.assertEqual(len(reqs), 3)  # with the 5 calls still in the window: 8 <= 10
        self.assertEqual(v['ppflow_runs_delayed_total{flow="paced",reason="budget"}'], 1)
        self.assertEqual(v['ppflow_runs_total{flow="paced",outcome="ok"}'], 1)
        self.assert_exact("paced", iso(self.since), self.state("paced")["cursor"])
        # The schedule alone (24 runs a day, a window each) does not fit 10
        # calls: said when it was loaded.
        self.assertIn("flow paced: its schedule (every 1h) makes about 24 runs a day of about "
                      "1 calls each, 24 calls in 24 hours, more than the call budget "
                      "'tap-siem' allows per credential (10)", log)

    def test_load_says_which_interval_fits_the_budget(self):
        tmpl = self.small_budget_template(100, "siem-hundred")
        self.flow("often", {"every": "1m"}, template=tmpl)
        self.flow("fine", {"every": "15m"}, template=tmpl)
        r = self.ppflow("schedule", "--list=1", "flows/",
                        env=self.env(PPFLOW_NOW="2026-03-28T12:00:00Z"))
        self.assertEqual(r.code, 0, r)
        self.assertIn("flow often: its schedule (every 1m) makes about 1440 runs a day of about "
                      "1 calls each, 1440 calls in 24 hours, more than the call budget "
                      "'tap-siem' allows per credential (100); its runs will be postponed to "
                      "stay within the budget. A schedule of every 15m or longer would fit",
                      r.err)
        self.assertNotIn("flow fine:", r.err)
        # Nothing was run, and no ledger was created.
        self.assertEqual(self.mock.requests("/v2/"), [])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state", "ppflow-quota.json")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
