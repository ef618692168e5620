"""test_postgres.py: TAP SIEM flows into PostgreSQL end to end.

The ppflow binary runs flows with `sink: {type: postgres, ...}` over
tap-siem-all against the loopback mock Proofpoint API and a throwaway
PostgreSQL cluster (tests/pg/pgcluster.py); the tables are checked with SQL.
Every record the mock holds must be in PostgreSQL exactly once: after a
plain run and its rerun, after the server restarts (cleanly, by crash, or
stays down) in the middle of a multi-window run, and after ppflow is killed
with SIGKILL at random points (the seed is printed; PPFLOW_KILL_SEED repeats
a run). The conninfo's password never appears in anything ppflow prints or
writes.
"""
import os
import random
import signal
import subprocess
import sys
import time
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, hour_floor, iso

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
import pgcluster  # noqa: E402

BUILD_DIR = os.environ.get("PPFLOW_BUILD_DIR") or os.path.dirname(os.path.dirname(PPFLOW))
PLUGIN = os.path.join(BUILD_DIR, "sinks", "ppflow_sink_postgres.so")


class PostgresCase(E2ETestCase):
    """A PostgreSQL cluster per test class, a schema per test."""
    pg = None
    counter = 0

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(PLUGIN):
            raise unittest.SkipTest("the postgres sink is not built (libpq missing?)")
        try:
            pgcluster.find_bindir()
        except pgcluster.Unavailable as e:
            raise unittest.SkipTest(str(e))
        super().setUpClass()
        try:
            cls.pg = pgcluster.Cluster().start()
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.pg:
            cls.pg.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        PostgresCase.counter += 1
        self.schema = "e2e_%d" % PostgresCase.counter

    def tearDown(self):
        super().tearDown()
        # The database password is a secret too.
        for text in self.outputs:
            self.assertNotIn(self.pg.password, text, "the database password leaked")
        for root, _, files in os.walk(self.dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertNotIn(self.pg.password.encode(), f.read(),
                                     "the database password leaked into " + name)

    def env(self, **extra):
        extra.setdefault("PG_CONNINFO", self.pg.conninfo)
        extra.setdefault("PG_CONNINFO_PW", self.pg.conninfo_password)
        return super().env(**extra)

    def pg_flow(self, start, end, name="siem", **sink):
        opts = {"type": "postgres", "conninfo": "${PG_CONNINFO}", "create": "true",
                "schema": self.schema}
        opts.update(sink)
        # The window sequence is checked exactly; the late-arrival re-sweep
        # has its own tests (test_late.py), and PostgreSQL's key constraint
        # would absorb it anyway.
        return self.siem_flow(name=name, params={"since_time": start, "until": end}, sink=opts,
                              lookback="0s")

    def table(self, stream):
        return '%s."ppflow_%s"' % (self.schema, stream)

    def rows(self, stream):
        """[(key, record's key field (None when it lacks it), flow)] of STREAM's table."""
        keyfield = SIEM_STREAMS[stream][1]
        got = self.pg.json("SELECT coalesce(json_agg(json_build_array(key, record->>'%s', flow)), "
                           "'[]') FROM %s" % (keyfield, self.table(stream)))
        return [tuple(r) for r in got]

    def snapshot(self):
        return {s: self.pg.sql("SELECT count(*), max(ingested_at), md5(string_agg(key || "
                               "record::text, ',' ORDER BY key)) FROM %s" % self.table(s))
                for s in SIEM_STREAMS}

    def stored_checkpoint(self, flow="siem"):
        return self.pg.json("SELECT checkpoint FROM %s.ppflow_state WHERE flow = '%s'"
                            % (self.schema, flow))

    def committed_seq(self):
        out = self.pg.sql("SELECT coalesce(max(seq), 0) FROM %s.ppflow_state" % self.schema,
                          check=False)
        return int(out) if out.isdigit() else 0

    def assert_exact_pg(self, start, end, flow="siem"):
        """Every record the mock holds for [start, end) is a row exactly once
        (the primary key rules out a second copy; a missing one fails), keyed
        by its identity: its key field, or "sha256:..." when it lacks it."""
        expected = self.mock.expected("/v2/siem/all", start, end)
        total = 0
        for stream, (array, _) in SIEM_STREAMS.items():
            rows = self.rows(stream)
            keys = [k for k, _, _ in rows]
            self.assertEqual(keys, [f if f is not None else k if k.startswith("sha256:") else None
                                    for k, f, _ in rows], "keys differ from the records' keys")
            self.assertEqual({fl for _, _, fl in rows} or {flow}, {flow})
            self.assertEqual(sorted(keys), sorted(expected[array]),
                             "%s differs from the mock's records" % stream)
            total += len(keys)
        self.assertGreater(total, 0, "the range held no records; the test proves nothing")
        return total

    def start_run(self, flow):
        return subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, p, timeout=120):
        out, err = p.communicate(timeout=timeout)
        self.outputs += [out, err]
        return p.returncode, out, err

    def wait_for_commits(self, p, seq, timeout=30):
        """Waits until the state table shows commit SEQ (or ppflow ended)."""
        deadline = time.time() + timeout
        while time.time() < deadline and p.poll() is None:
            if self.committed_seq() >= seq:
                return True
            time.sleep(0.05)
        return False


class PostgresDelivery(PostgresCase):
    mock_seed = 21

    def test_backfill_is_exact_and_rerun_adds_nothing(self):
        start, end = iso(hour_floor(-7)), iso(hour_floor(-1))
        flow = self.pg_flow(start, end)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertIn("created table %s.ppflow_messages_delivered" % self.schema, r.err)
        total = self.assert_exact_pg(start, end)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 6)
        cp = self.stored_checkpoint()
        self.assertEqual(cp["cursor"], end)
        self.assertEqual(cp["seq"], self.state()["seq"])
        self.assertEqual(self.state()["sink"]["type"], "postgres")
        before = self.snapshot()

        # A rerun fetches nothing and changes nothing.
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.mock.requests("/v2/siem/"), [])
        self.assertEqual(self.snapshot(), before)

        # Without its checkpoint file the flow continues from the checkpoint
        # stored in PostgreSQL: nothing is fetched or written twice.
        os.unlink(os.path.join(self.dir, "state", "siem.json"))
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertIn("holds a newer checkpoint", r.err)
        self.assertEqual(self.mock.requests("/v2/siem/"), [])
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.state()["cursor"], end)
        self.assertEqual(self.assert_exact_pg(start, end), total)

    def test_lost_checkpoint_rerun_adds_nothing(self):
        """Both checkpoints gone (state file and state row): the rerun fetches
        and delivers every record again; the batches meet stored keys, fall
        back from COPY to INSERT ... ON CONFLICT, and commit without error,
        duplicate or change. A row another program wrote first is kept."""
        start, end = iso(hour_floor(-4)), iso(hour_floor(-1))
        flow = self.pg_flow(start, end)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_pg(start, end)
        one = self.pg.sql("SELECT key FROM %s ORDER BY key LIMIT 1"
                          % self.table("messages_delivered"))
        self.pg.sql("UPDATE %s SET record = '{\"by\": \"someone else\"}' WHERE key = '%s'"
                    % (self.table("messages_delivered"), one))
        before = self.snapshot()
        os.unlink(os.path.join(self.dir, "state", "siem.json"))
        self.pg.sql("DELETE FROM %s.ppflow_state" % self.schema)
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 3)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.pg.sql("SELECT record->>'by' FROM %s WHERE key = '%s'"
                                     % (self.table("messages_delivered"), one)), "someone else")
        self.assertEqual(self.stored_checkpoint()["cursor"], end)

    def test_sinks_lists_postgres_and_its_options(self):
        r = self.ppflow("sinks", "postgres")
        self.assertEqual(r.code, 0, r)
        for opt in ("conninfo", "schema", "table", "create", "on_conflict", "state_table",
                    "column.*"):
            self.assertIn(opt, r.out)
        # A wrong option type is caught by ppflow before the sink is opened.
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        r = self.ppflow("validate", self.pg_flow(start, end, create="maybe"))
        self.assertEqual(r.code, 2, r)
        self.assertIn("sink option create must be true or false", r.err)

    def test_extra_columns_from_the_flow(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.pg_flow(start, end, **{"column.sender": '"text $.sender"',
                                           "column.sent_at": '"timestamptz $.messageTime"',
                                           "on_conflict": "update"})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_pg(start, end)
        t = self.table("messages_delivered")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM %s WHERE sender IS DISTINCT FROM "
                                     "record->>'sender' OR sent_at IS DISTINCT FROM "
                                     "(record->>'messageTime')::timestamptz" % t), "0")
        self.assertNotEqual(self.pg.sql("SELECT count(sender) FROM %s" % t), "0")

    def test_missing_table_without_create_fails_cleanly(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        r = self.ppflow("run", self.pg_flow(start, end, create="false"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("schema %s does not exist (set create: true" % self.schema, r.err)
        self.assertEqual(self.mock.requests("/v2/siem/"), [])

    def test_password_conninfo_is_never_shown(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.pg_flow(start, end, conninfo="${PG_CONNINFO_PW}")
        r = self.ppflow("run", "-v", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_pg(start, end)
        self.assertEqual(self.pg.sql("SELECT DISTINCT tableowner FROM pg_tables WHERE "
                                     "schemaname = '%s'" % self.schema), "ppflow_pw")
        # A wrong password: a clean failure that shows neither password.
        wrong = self.pg.conninfo_password.replace(self.pg.password, "Wr0ng-" + self.pg.password)
        r = self.ppflow("run", flow, env=self.env(PG_CONNINFO_PW=wrong))
        self.assertEqual(r.code, 1, r)
        self.assertIn("cannot connect to PostgreSQL", r.err)
        self.assertIn("password authentication failed", r.err)
        self.assertNotIn("Wr0ng-", r.out + r.err)
        r = self.ppflow("status", flow)
        self.assertNotIn("Wr0ng-", r.out + r.err)


class PostgresRestart(PostgresCase):
    mock_seed = 22

    def run_with_server_event(self, event, name):
        """Runs a six-window backfill, makes EVENT happen to the server after
        the first window is committed, and returns (code, err) of the run."""
        start, end = iso(hour_floor(-8)), iso(hour_floor(-2))
        flow = self.pg_flow(start, end, name=name)
        self.mock.fault(kind="slow", seconds=0.4, count=20)
        p = self.start_run(flow)
        try:
            self.assertTrue(self.wait_for_commits(p, 2), "no window was committed")
            event()
            still_running = p.poll() is None
            code, _, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        # Finished or failed cleanly: never a crash.
        self.assertIn(code, (0, 1), err)
        if code == 1:
            self.assertIn("sink postgres", err)
        if still_running:
            self.assertIn("connection", err, "the server's restart went unnoticed")
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_pg(start, end, flow=name)
        self.assertEqual(self.stored_checkpoint(name)["cursor"], end)
        return code, err

    def test_fast_restart_mid_run(self):
        code, err = self.run_with_server_event(lambda: self.pg.restart("fast"), "fast")
        self.assertEqual(code, 0, "a short restart must be ridden out by retries:\n" + err)

    def test_crash_restart_mid_run(self):
        code, err = self.run_with_server_event(lambda: self.pg.restart("immediate"), "crash")
        self.assertEqual(code, 0, "a short crash must be ridden out by retries:\n" + err)

    def test_server_down_for_good_fails_cleanly(self):
        def outage():
            self.pg.stop_server("fast")
            time.sleep(25)  # longer than the sink's five attempts with backoff
            self.pg.start_server()

        code, err = self.run_with_server_event(outage, "down")
        self.assertEqual(code, 1, err)
        self.assertIn("cannot connect to PostgreSQL", err)


class PostgresKill(PostgresCase):
    mock_seed = 23

    def test_sigkill_at_random_points_then_resume_is_exact(self):
        seed = int(os.environ.get("PPFLOW_KILL_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        print("kill seed %d (PPFLOW_KILL_SEED to repeat)" % seed)
        start, end = iso(hour_floor(-8)), iso(hour_floor(-2))
        flow = self.pg_flow(start, end)
        kills = 0
        for attempt in range(12):
            # Slowed requests make kills land mid-run: while a response is
            # awaited, while COPY and INSERT run, around COMMIT. The first three
            # runs are always killed; later ones at random points, or complete.
            slow = 0.3 if attempt < 3 else rng.choice([0.02, 0.3])
            self.mock.fault(kind="slow", seconds=slow, count=20)
            p = self.start_run(flow)
            try:
                out, err = p.communicate(
                    timeout=rng.uniform(0.05, 0.6) if attempt < 3 else rng.uniform(0.05, 1.5))
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
        self.assert_exact_pg(start, end)
        self.assertEqual(self.stored_checkpoint()["cursor"], end)
        # A last run finds nothing left to do.
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.mock.requests("/v2/siem/"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
