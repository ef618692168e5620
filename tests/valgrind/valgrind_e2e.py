"""valgrind_e2e.py: the ppflow binary under valgrind memcheck, end to end.

A small but representative set of runs against the loopback mock: validate,
a two-window SIEM backfill with a retried 503 and a rerun that resumes from
the checkpoint, a clean failure (401), and `ppflow test`. Every invocation
must exit as it would without valgrind, and valgrind must report no memory
error and no leak (its log, one file per process, must stay empty).

Registered by tests/valgrind/CMakeLists.txt (plain builds with valgrind
installed); VALGRIND and VALGRIND_ARGS come from there.
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from harness import E2ETestCase, PPFLOW, Result, hour_floor, iso  # noqa: E402

VALGRIND = os.environ.get("VALGRIND") or shutil.which("valgrind")
# ppflow's own exit codes are 0, 1 and 2: valgrind's error exit is set apart.
ARGS = [a for a in os.environ.get("VALGRIND_ARGS", "--leak-check=full").split()
        if not a.startswith("--error-exitcode")] + ["--error-exitcode=99"]


class UnderValgrind(E2ETestCase):
    mock_seed = 41
    runs = 0

    @classmethod
    def setUpClass(cls):
        if not VALGRIND:
            raise unittest.SkipTest("valgrind is not installed")
        super().setUpClass()

    def ppflow(self, *args, env=None, timeout=600, input=None):
        logdir = os.path.join(self.dir, "vg")
        os.makedirs(logdir, exist_ok=True)
        before = set(os.listdir(logdir))
        cmd = [VALGRIND, *ARGS, "--log-file=%s/vg.%%p.log" % logdir, PPFLOW, *args]
        p = subprocess.run(cmd, cwd=self.dir, env=env or self.env(), capture_output=True,
                           text=True, timeout=timeout, input=input)
        self.outputs += [p.stdout, p.stderr]
        UnderValgrind.runs += 1
        reports = ""
        for name in sorted(set(os.listdir(logdir)) - before):
            with open(os.path.join(logdir, name)) as f:
                reports += f.read()
        self.assertNotEqual(p.returncode, 99, "valgrind found errors:\n" + reports)
        self.assertEqual(reports.strip(), "", "valgrind reported:\n" + reports)
        return Result(p.returncode, p.stdout, p.stderr)

    def test_backfill_retry_resume_and_failure(self):
        start, mid, end = iso(hour_floor(-4)), iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": mid})
        r = self.ppflow("validate", flow)
        self.assertEqual(r.code, 0, r)
        self.mock.fault(kind="status", status=503)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        r = self.ppflow("run", "--set", "until=" + end, flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)
        r = self.ppflow("run", "--set", "until=" + iso(hour_floor(-1)), flow,
                        env=self.env(PP_SECRET="wrong-secret-value"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("401", r.err)

    def test_test_command(self):
        flow = self.siem_flow(params={"since_time": iso(hour_floor(-5))})
        r = self.ppflow("test", "--limit", "3", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(r.out.rstrip("\n").split("\n")), 3)


def tearDownModule():
    print("\nppflow runs under valgrind: %d" % UnderValgrind.runs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
