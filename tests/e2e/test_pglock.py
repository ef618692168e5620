"""test_pglock.py: one flow, one runner, across machines that share only the
PostgreSQL database.

The PostgreSQL sink takes a session-level advisory lock per flow when it
opens, keyed on
    hashtextextended('ppflow-flow-lock:' || schema || '.' || state_table
                     || ':' || flow, 0)
(docs/sinks/postgres.md). Two flow files with the same flow name and
database but each with its own local state directory stand for two
machines. Proven here against a throwaway cluster (tests/pg/pgcluster.py):
a lock held by another session (psql holding the documented key, or another
ppflow run) makes `ppflow run` fail with "being run by another ppflow
process" before anything is fetched or written, and a scheduled run end as
`busy` (counted in the metrics); after the release the other side continues
exactly from the checkpoint stored in the database; and a run whose server
restarts mid-run takes the lock again on its new connection. A run waits
up to the sink's lock_wait for the lock before it answers busy, so runs of
one flow started back to back (each releasing the lock as it closes) never
find it taken by the run before.
"""
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

from harness import PPFLOW, hour_floor, iso
from test_postgres import PostgresCase
from test_schedule import Sched, clock


class PgLockCase(PostgresCase):
    def two_machines(self, start, end, schedule=None):
        """Flow 'siem' twice (a/siem.yaml, b/siem.yaml): same database, schema
        and flow name, separate state directories a-state/ and b-state/. A
        held lock is waited for 500 ms (lock_wait)."""
        base = self.pg_flow(start, end, lock_wait="500ms")
        with open(base) as f:
            text = f.read()
        os.unlink(base)
        if schedule:
            text += "schedule:\n  every: %s\n" % schedule
        paths = []
        for m in ("a", "b"):
            t = text.replace("path: state/siem.json", "path: %s-state/siem.json" % m)
            self.assertNotEqual(t, text)
            paths.append(self.write("%s/siem.yaml" % m, t))
        return paths

    def lock_key_sql(self, flow="siem", table="ppflow_state"):
        return ("hashtextextended('ppflow-flow-lock:' || '%s' || '.' || '%s' || ':' || '%s', 0)"
                % (self.schema, table, flow))

    def hold_lock(self):
        """A psql session holding the flow's advisory lock (key computed as
        documented); returns (process, its server pid)."""
        p = subprocess.Popen([self.pg.bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              self.pg.conninfo], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.stdin.write("SELECT pg_backend_pid(), pg_try_advisory_lock(%s);\n" % self.lock_key_sql())
        p.stdin.flush()
        line = p.stdout.readline().strip()
        pid, got = line.split("|")
        self.assertEqual(got, "t", "the lock was not free")
        return p, int(pid)

    def release(self, p):
        p.stdin.close()  # the session ends, and its lock with it
        p.wait(30)
        p.stdout.close()
        p.stderr.close()

    def lock_holders(self):
        """(pid, application_name) of the sessions holding the flow's lock."""
        out = self.pg.sql(
            "SELECT l.pid || '|' || coalesce(a.application_name, '') FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid, (SELECT %s AS k) x "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = (x.k >> 32) & 4294967295 "
            "AND l.objid::bigint = x.k & 4294967295" % self.lock_key_sql())
        return [tuple(l.split("|")) for l in out.splitlines() if l]

    def schema_exists(self):
        return self.pg.sql("SELECT count(*) FROM pg_namespace WHERE nspname = '%s'"
                           % self.schema) == "1"

    def scrape(self, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        return dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))


class PgLockBusy(PgLockCase):
    mock_seed = 71

    def test_a_lock_held_elsewhere_makes_runs_busy_until_released(self):
        start, end = iso(hour_floor(-6)), iso(hour_floor(-2))
        a, b = self.two_machines(start, end, schedule="1h")
        holder, holder_pid = self.hold_lock()
        try:
            # `ppflow run`: fails once lock_wait has passed, says why, fetches
            # and writes nothing.
            r = self.ppflow("run", a)
            self.assertEqual(r.code, 1, r)
            self.assertIn("waiting up to 500 ms (lock_wait)", r.err)
            self.assertRegex(r.err, r"flow siem is being run by another ppflow process "
                                    r"\(PostgreSQL advisory lock -?\d+ on database ppflow at "
                                    r"127\.0\.0\.1:%d, held by server process %d\)"
                             % (self.pg.port, holder_pid))
            self.assertEqual(self.mock.requests("/v2/"), [])
            self.assertFalse(self.schema_exists(), "a busy run created the tables")
            self.assertFalse(os.path.exists(os.path.join(self.dir, "a-state", "siem.json")))

            # `ppflow schedule`: the run ends busy, counted as such.
            env = self.env(PPFLOW_TEST_CLOCK=clock(hour_floor(-2), 60))
            env.pop("PPFLOW_NOW", None)
            s = Sched(self, ["--metrics-port", "0", "b/"], env)
            try:
                s.wait_for(lambda: s.ends("siem"), 60, "the scheduled run")
                port = int(re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics",
                                     "\n".join(s.msgs())).group(1))
                v = self.scrape(port)
            finally:
                code = s.stop()
            self.assertEqual(code, 0, s.text())
            end_line = s.ends("siem")[0]
            self.assertEqual(end_line["outcome"], "busy", s.text())
            self.assertIn("PostgreSQL advisory lock", end_line["error"])
            self.assertEqual(v['ppflow_runs_total{flow="siem",outcome="busy"}'], "1")
            self.assertEqual(v['ppflow_runs_total{flow="siem",outcome="failed"}'], "0")
            self.assertEqual(v['ppflow_errors_total{flow="siem"}'], "0")
            self.assertEqual(self.mock.requests("/v2/"), [])
            self.assertFalse(self.schema_exists())
        finally:
            self.release(holder)

        # Released: machine a runs the flow exactly...
        r = self.ppflow("run", a)
        self.assertEqual(r.code, 0, r)
        total = self.assert_exact_pg(start, end)
        self.assertEqual(self.lock_holders(), [], "the lock outlived the run")
        before = self.snapshot()
        # ...and machine b, which has no checkpoint of its own, continues from
        # the one stored in the database: nothing fetched or written twice.
        self.mock.reset()
        r = self.ppflow("run", b)
        self.assertEqual(r.code, 0, r)
        self.assertIn("holds a newer checkpoint", r.err)
        self.assertEqual(self.mock.requests("/v2/"), [])
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.assert_exact_pg(start, end), total)

    def test_two_runs_of_one_flow_on_two_machines(self):
        start, end = iso(hour_floor(-8)), iso(hour_floor(-2))
        a, b = self.two_machines(start, end)
        self.mock.fault(kind="slow", seconds=0.4, count=20)
        p = self.start_run(a)
        try:
            self.assertTrue(self.wait_for_commits(p, 2), "no window was committed")
            holders = self.lock_holders()
            self.assertEqual(len(holders), 1)
            self.assertEqual(holders[0][1], "ppflow")
            r = self.ppflow("run", b)
            self.assertEqual(r.code, 1, r)
            self.assertIn("flow siem is being run by another ppflow process (PostgreSQL "
                          "advisory lock", r.err)
            self.assertIn("held by server process %s)" % holders[0][0], r.err)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "b-state", "siem.json")))
            code, _, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 6, "b fetched something")
        self.assert_exact_pg(start, end)
        self.mock.reset()
        r = self.ppflow("run", b)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.mock.requests("/v2/"), [])

    def test_back_to_back_runs_are_never_busy(self):
        """25 runs of one flow, each started as soon as the one before ended
        (the first loads the range, the next ones a window each)."""
        first = hour_floor(-26)
        start = iso(first)
        for i in range(25):
            end = iso(first + dt.timedelta(hours=2 + i))
            r = self.ppflow("run", self.pg_flow(start, end))
            self.assertEqual(r.code, 0, "run %d: %r" % (i + 1, r))
            self.assertNotIn("being run by another", r.err)
            self.assertEqual(self.lock_holders(), [], "the lock outlived run %d" % (i + 1))
        self.assertEqual(self.stored_checkpoint()["cursor"], end)
        self.assert_exact_pg(start, end)


class PgLockRestart(PgLockCase):
    mock_seed = 72

    def test_restart_mid_run_takes_the_lock_again(self):
        start, end = iso(hour_floor(-10)), iso(hour_floor(-2))
        flow = self.pg_flow(start, end)
        self.mock.fault(kind="slow", seconds=0.8, count=20)
        p = subprocess.Popen([PPFLOW, "run", "-v", flow], cwd=self.dir, env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(self.wait_for_commits(p, 2), "no window was committed")
            first = self.lock_holders()
            self.assertEqual(len(first), 1)
            self.pg.restart("fast")
            seq = self.committed_seq()
            # After the restart the run reconnects, takes the lock again on
            # its new session, and only then writes the next window.
            self.assertTrue(self.wait_for_commits(p, seq + 1, 60), "no commit after the restart")
            again = self.lock_holders()
            self.assertEqual(len(again), 1, "no session holds the flow's lock")
            self.assertNotEqual(again[0][0], first[0][0], "the lock is on the old session?")
            self.assertEqual(again[0][1], "ppflow")
            self.assertEqual(self.pg.sql("SELECT pg_try_advisory_lock(%s)" % self.lock_key_sql()),
                             "f")
            code, _, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(code, 0, err)
        self.assertGreaterEqual(
            len(re.findall(r"holding the advisory lock -?\d+ for flow siem", err)), 2, err)
        self.assert_exact_pg(start, end)


if __name__ == "__main__":
    unittest.main(verbosity=2)
