"""test_siem.py: TAP SIEM flows end to end against the loopback mock.

Backfills, exactly-once across runs and kills, retries on 429/5xx/resets and
truncated bodies, clean failures on 401, retention clamping, `ppflow test`.
"""
import datetime as dt
import os
import random
import signal
import subprocess
import time
import unittest
import urllib.parse

from harness import (E2ETestCase, PPFLOW, SIEM_STREAMS, hour_floor, iso, slurp)


def repeated_guids(case, sink_dir="out"):
    """How many delivered message records repeat a GUID: a message sent to
    several recipients is one event per recipient, all with its GUID, told
    apart by `id` (the templates' key; harness.record_identity)."""
    n = 0
    for stream in ("messages_delivered", "messages_blocked"):
        guids = [r["GUID"] for r in case.read_records(stream, sink_dir)]
        n += len(guids) - len(set(guids))
    return n


class SiemBackfill(E2ETestCase):
    mock_seed = 11

    def test_six_hour_backfill_is_exact_and_rerun_adds_nothing(self):
        start, end = iso(hour_floor(-7)), iso(hour_floor(-1))
        flow = self.siem_flow(params={"since_time": start, "until": end})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)
        self.assertGreater(repeated_guids(self), 0,
                           "no message with several recipients: the test proves less")

        # Six one-hour windows, consecutive, JSON, explicit intervals.
        reqs = self.mock.requests("/v2/siem/all")
        self.assertEqual(len(reqs), 6)
        bounds = []
        for q in reqs:
            self.assertEqual(q["status"], 200)
            self.assertEqual(q["params"]["format"], ["json"])
            a, b = q["params"]["interval"][0].split("/")
            bounds.append((a, b))
        self.assertEqual(bounds[0][0], start)
        self.assertEqual(bounds[-1][1], end)
        for (a1, b1), (a2, _) in zip(bounds, bounds[1:]):
            self.assertEqual(b1, a2, "windows must be consecutive and non-overlapping")
        self.assertEqual(self.state()["cursor"], end)

        # A second run right after re-sweeps only the 30-minute look-back
        # before the checkpoint (late arrivals) and writes nothing.
        before = {s: slurp(os.path.join(self.dir, "out", s + ".ndjson"), "rb")
                  for s in SIEM_STREAMS}
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        look = iso(hour_floor(-1) - dt.timedelta(minutes=30))
        self.assertEqual([q["params"]["interval"][0] for q in self.mock.requests("/v2/siem/")],
                         [look + "/" + end])
        self.assertIn("0 new (0 late arrivals)", r.err)
        for s in SIEM_STREAMS:
            self.assertEqual(slurp(os.path.join(self.dir, "out", s + ".ndjson"), "rb"),
                             before[s])

    def test_next_run_starts_at_the_checkpoint(self):
        start, mid, end = iso(hour_floor(-6)), iso(hour_floor(-4)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": mid})
        self.assertEqual(self.ppflow("run", flow).code, 0)
        self.mock.reset()
        r = self.ppflow("run", "--set", "until=" + end, flow)
        self.assertEqual(r.code, 0, r)
        # The look-back window before the checkpoint, then on from the checkpoint.
        intervals = [q["params"]["interval"][0] for q in self.mock.requests("/v2/siem/all")]
        look = iso(hour_floor(-4) - dt.timedelta(minutes=30))
        self.assertEqual(intervals[0], look + "/" + mid)
        self.assertTrue(intervals[1].startswith(mid + "/"), intervals)
        self.assert_exact_siem(start, end)
        # With the look-back turned off, the run starts at the checkpoint.
        flow = self.siem_flow(name="nolook", params={"since_time": start, "until": mid})
        self.write("nolook.yaml", open(flow).read().replace("source:\n", "source:\n  lookback: 0s\n"))
        self.assertEqual(self.ppflow("run", flow).code, 0)
        self.mock.reset()
        r = self.ppflow("run", "--set", "until=" + end, flow)
        self.assertEqual(r.code, 0, r)
        first = self.mock.requests("/v2/siem/all")[0]["params"]["interval"][0]
        self.assertTrue(first.startswith(mid + "/"), first)

    def test_single_stream_template_and_filters(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.siem_flow(template="tap-siem-clicks-permitted",
                              params={"since_time": start, "until": end,
                                      "threat_status": ["active", "falsePositive"]})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        q = self.mock.requests("/v2/siem/clicks/permitted")
        self.assertEqual(len(q), 1)
        self.assertEqual(q[0]["params"]["threatStatus"], ["active", "falsePositive"])
        expected = self.mock.get(
            "/__mock/expected?path=/v2/siem/clicks/permitted&start=%s&end=%s"
            "&threatStatus=active&threatStatus=falsePositive" % (start, end))
        got = sorted(r["id"] for r in self.read_records("clicks_permitted"))
        self.assertEqual(got, sorted(expected["clicksPermitted"]))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out", "messages_delivered.ndjson")))

    def test_short_tail_is_left_for_the_next_run(self):
        start = hour_floor(-3)
        end = start + dt.timedelta(hours=1, seconds=20)
        flow = self.siem_flow(params={"since_time": iso(start), "until": iso(end)})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 1)
        self.assertEqual(self.state()["cursor"], iso(start + dt.timedelta(hours=1)))

    def test_start_older_than_retention_is_clamped_with_a_warning(self):
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        since = now - dt.timedelta(days=8)
        until = now - dt.timedelta(days=7) + dt.timedelta(minutes=30)
        flow = self.siem_flow(params={"since_time": iso(since), "until": iso(until)})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertIn("older than the API keeps", r.err)
        reqs = self.mock.requests("/v2/siem/all")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["status"], 200)


class SiemFaults(E2ETestCase):
    mock_seed = 12

    def run_with_faults(self, faults, http=None):
        start, end = iso(hour_floor(-4)), iso(hour_floor(-2))
        for f in faults:
            self.mock.fault(**f)
        flow = self.siem_flow(params={"since_time": start, "until": end}, http=http)
        r = self.ppflow("run", flow)
        return r, start, end

    def test_429_with_retry_after_is_honoured(self):
        t0 = time.time()
        r, start, end = self.run_with_faults([{"kind": "429", "retry_after": 1}])
        self.assertEqual(r.code, 0, r)
        self.assertGreaterEqual(time.time() - t0, 1.0, "Retry-After was not waited for")
        self.assertEqual([q["status"] for q in self.mock.requests("/v2/siem/all")],
                         [429, 200, 200])
        self.assert_exact_siem(start, end)

    def test_server_errors_resets_and_truncation_are_retried(self):
        r, start, end = self.run_with_faults([
            {"kind": "status", "status": 500}, {"kind": "status", "status": 503},
            {"kind": "reset"}, {"kind": "truncate"}, {"kind": "status", "status": 502},
            {"kind": "status", "status": 504}], http={"max_attempts": 7})
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)

    def test_stalled_body_times_out_and_is_retried(self):
        r, start, end = self.run_with_faults([{"kind": "stall"}], http={"timeout": "2s"})
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)

    def test_unauthorized_fails_cleanly_and_keeps_the_checkpoint(self):
        start, end = iso(hour_floor(-4)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": end})
        r = self.ppflow("run", flow, env=self.env(PP_SECRET="wrong-secret-value"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("401", r.err)
        self.assertNotIn("wrong-secret-value", r.out + r.err)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 1, "401 must not be retried")
        st = self.state()
        self.assertIsNone(st["cursor"])
        self.assertEqual(st["last_run"]["outcome"], "failed")
        self.assertNotIn("wrong-secret-value",
                         slurp(os.path.join(self.dir, "state", "siem.json")))

    def test_failure_in_a_later_window_keeps_earlier_windows(self):
        start, mid, end = iso(hour_floor(-5)), iso(hour_floor(-4)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": end},
                              http={"max_attempts": 2})
        # Let the first window through, then fail the second one for good.
        self.mock.fault(kind="slow", seconds=0, count=1)
        self.mock.fault(kind="status", status=500, count=2)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.state()["cursor"], mid)
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)


class SiemKill(E2ETestCase):
    mock_seed = 13

    def test_sigkill_at_random_points_then_resume_is_exact(self):
        seed = int(os.environ.get("PPFLOW_KILL_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        print("kill seed %d (PPFLOW_KILL_SEED to repeat)" % seed)
        start, end = iso(hour_floor(-8)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": end})
        kills = 0
        for attempt in range(12):
            # Requests are slowed so that kills land mid-run: some while a
            # response is awaited, some while records and checkpoints are written.
            # The first three runs are always killed (each can finish at most one of
            # the six windows); later ones at random points, or complete.
            slow = 0.3 if attempt < 3 else rng.choice([0.02, 0.3])
            self.mock.fault(kind="slow", seconds=slow, count=20)
            p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = p.communicate(
                    timeout=rng.uniform(0.02, 0.5) if attempt < 3 else rng.uniform(0.02, 1.2))
                self.outputs += [out, err]
                self.assertEqual(p.returncode, 0, err)
                break
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                out, err = p.communicate()
                self.outputs += [out, err]
                kills += 1
            self.mock.reset()
        else:
            r = self.ppflow("run", flow)
            self.assertEqual(r.code, 0, r)
        self.mock.reset()
        print("kills: %d" % kills)
        self.assertGreaterEqual(kills, 3, "runs were not killed; the test proves nothing")
        self.assert_exact_siem(start, end)


class SiemTestCommand(E2ETestCase):
    mock_seed = 14

    def test_prints_records_and_touches_nothing(self):
        start = iso(hour_floor(-5))
        flow = self.siem_flow(params={"since_time": start})
        r = self.ppflow("test", "--limit", "3", flow)
        self.assertEqual(r.code, 0, r)
        lines = r.out.rstrip("\n").split("\n")  # not splitlines: records hold U+2028
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertIsInstance(__import__("json").loads(line), dict)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state")))
        reqs = self.mock.requests("/v2/siem/all")
        self.assertEqual(len(reqs), 1, "test fetches the first window only")
        self.assertTrue(reqs[0]["params"]["interval"][0].startswith(start + "/"))

    def test_limit_all_prints_the_whole_window(self):
        start = hour_floor(-5)
        flow = self.siem_flow(params={"since_time": iso(start)})
        r = self.ppflow("test", "--limit", "-1", flow)
        self.assertEqual(r.code, 0, r)
        exp = self.mock.expected("/v2/siem/all", iso(start), iso(start + dt.timedelta(hours=1)))
        self.assertEqual(len(r.out.rstrip("\n").split("\n")), sum(len(v) for v in exp.values()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
