"""test_status.py: `ppflow status` reports what the runs did: checkpoint, lag,
last run (outcome, records, windows, bytes, retries, error), for files and directories,
as text and as JSON."""
import datetime as dt
import json
import os
import re
import unittest

from harness import E2ETestCase, hour_floor, iso


class Status(E2ETestCase):
    def test_status_reports_the_runs(self):
        start, end = hour_floor(-4), hour_floor(-1)
        ok = self.siem_flow(name="good", params={"since_time": iso(start), "until": iso(end)})
        never = self.siem_flow(name="never", params={"since_time": iso(start)})
        self.mock.fault(kind="status", status=503, count=2)
        r = self.ppflow("run", ok)
        self.assertEqual(r.code, 0, r)
        m = re.search(r"done: (\d+) records, (\d+) windows, (\d+) bytes received, "
                      r"(\d+) retries", r.err)
        self.assertIsNotNone(m, r)
        records, windows, nbytes, retries = map(int, m.groups())
        self.assertEqual(retries, 2)
        self.assertGreater(records, 0)
        now = end + dt.timedelta(hours=2)
        r = self.ppflow("status", "--json", self.dir, env=self.env(PPFLOW_NOW=iso(now)))
        self.assertEqual(r.code, 0, r)
        rows = {o["flow"]: o for o in map(json.loads, r.out.splitlines())}
        self.assertEqual(sorted(rows), ["good", "never"])
        g = rows["good"]
        self.assertEqual(g["checkpoint"], iso(end))
        self.assertEqual(g["lag_seconds"], 7200)
        run = g["last_run"]
        self.assertEqual((run["outcome"], run["records"], run["windows"], run["bytes"],
                          run["retries"]), ("ok", records, windows, nbytes, 2))
        self.assertIsNone(run["error"])
        self.assertIsNone(rows["never"]["last_run"])
        self.assertIsNone(rows["never"]["checkpoint"])
        r = self.ppflow("status", ok, never)
        self.assertEqual(r.code, 0, r)
        self.assertIn("%d records, %d windows, %d bytes, 2 retries" % (records, windows, nbytes),
                      r.out)
        self.assertIn("last run:   never", r.out)

    def test_failed_run_makes_status_fail(self):
        start, end = hour_floor(-3), hour_floor(-1)
        flow = self.siem_flow(name="bad", params={"since_time": iso(start), "until": iso(end)})
        self.mock.fault(kind="status", status=401, count=100)
        r = self.ppflow("run", flow)
        self.assertNotEqual(r.code, 0, r)
        r = self.ppflow("status", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("last run:   failed", r.out)
        self.assertIn("error:", r.out)
        self.assertIn("401", r.out)

    def test_json_logs_carry_flow_and_run(self):
        start, end = hour_floor(-4), hour_floor(-1)
        flow = self.siem_flow(name="jl", params={"since_time": iso(start), "until": iso(end)})
        runs = set()
        for _ in range(2):
            r = self.ppflow("run", "--log-format", "json", flow)
            self.assertEqual(r.code, 0, r)
            lines = [json.loads(l) for l in r.err.splitlines()]
            self.assertGreaterEqual(len(lines), 3)
            for o in lines:
                self.assertEqual(o["flow"], "jl")
                self.assertIn(o["level"], ("info", "warning", "error", "debug"))
            ids = {o["run"] for o in lines}
            self.assertEqual(len(ids), 1, "one run id per run")
            runs |= ids
        self.assertEqual(len(runs), 2, "each run has its own id")

    def test_status_usage(self):
        self.assertEqual(self.ppflow("status").code, 2)
        self.assertEqual(self.ppflow("status", "--bogus", "x").code, 2)
        r = self.ppflow("status", "--help")
        self.assertEqual(r.code, 0)
        self.assertIn("--json", r.out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
