"""test_pg_reality.py: what a PostgreSQL destination does to a run, end to end.

The ppflow binary runs tap-siem-all flows into a throwaway cluster
(tests/pg/pgcluster.py) against the loopback mock Proofpoint API, and each
test changes the destination the way a database administrator might:

- a CHECK constraint that refuses some records: exactly those records go to
  `<state.path>.deadletter.ndjson`, the rest are loaded, the run exits 1, and
  the sink's reopenings while it isolates them never make the run "busy";
- a database that does not exist: the run fails after one connection attempt
  (counted in the server's log), before any request to the API;
- a table dropped, or a privilege revoked, while the flow runs: the run stops
  with the server's message and dead-letters nothing;
- a table of the old layout (no record identity recorded) holding rows:
  when every row is keyed as the stream's identity gives ($.id, else the
  content hash), the run adopts it and goes on; when its rows are keyed by
  another field (GUID, as earlier templates did), the run fails before any
  request, naming the migration, and the documented migration works.

The sink's outcomes are described in docs/sinks/postgres.md ("Failures",
"Record identity").
"""
import json
import os
import re
import unittest

from harness import SIEM_STREAMS, hour_floor, iso
from test_postgres import PostgresCase


def deadletters(case, name="siem"):
    path = os.path.join(case.dir, "state", name + ".json.deadletter.ndjson")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class PgRefusedRecords(PostgresCase):
    mock_seed = 81

    def test_check_constraint_refuses_exactly_those_records(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        # The window's delivered messages: their identities and records, in
        # the same order.
        keys = self.mock.expected("/v2/siem/all", start, end)["messagesDelivered"]
        full = self.mock.get("/__mock/expected?path=/v2/siem/all&start=%s&end=%s&full=1"
                             % (start, end))["messagesDelivered"]
        self.assertEqual(len(keys), len(full))
        # A rule the database enforces on one table; about one message in
        # eight breaks it (GUIDs are URL-safe base64), and with it every
        # recipient's event of that message.
        rule = re.compile(r"^[A-H]")
        refused = {k for k, r in zip(keys, full) if rule.match(r.get("GUID") or "")}
        kept = set(keys) - refused
        self.assertTrue(refused and kept, "the window does not exercise the rule")
        self.pg.sql("CREATE SCHEMA %s; CREATE TABLE %s (key text PRIMARY KEY, record jsonb NOT "
                    "NULL, ingested_at timestamptz NOT NULL DEFAULT now(), flow text NOT NULL, "
                    "CONSTRAINT no_a_to_h CHECK (record->>'GUID' !~ '^[A-H]'))"
                    % (self.schema, self.table("messages_delivered")))
        r = self.ppflow("run", self.pg_flow(start, end))
        self.assertEqual(r.code, 1, r)
        self.assertNotIn("busy", (r.out + r.err).lower())
        self.assertNotIn("being run by another", r.err)
        self.assertIn("deadletter.ndjson", r.err)

        dl = deadletters(self)
        self.assertIsNotNone(dl, "no dead-letter file")
        self.assertEqual(sorted(d["key"] for d in dl), sorted(refused))
        for d in dl:
            self.assertRegex(d["record"]["GUID"], rule)
            self.assertEqual(d["stream"], "messages_delivered")
            self.assertEqual(d["flow"], "siem")
            self.assertIn("no_a_to_h", d["reason"])
            self.assertIn("23514", d["reason"])
        # Everything else is loaded, exactly once; the checkpoint moved on.
        got = [k for k, _, _ in self.rows("messages_delivered")]
        self.assertEqual(sorted(got), sorted(kept))
        expected = self.mock.expected("/v2/siem/all", start, end)
        for stream, (array, _) in SIEM_STREAMS.items():
            if stream != "messages_delivered":
                self.assertEqual(sorted(k for k, _, _ in self.rows(stream)),
                                 sorted(expected[array]), stream)
        self.assertEqual(self.stored_checkpoint()["cursor"], end)
        self.assertEqual(self.state()["cursor"], end)


class PgRunStops(PostgresCase):
    mock_seed = 82

    def server_log_count(self, text):
        with open(self.pg.log, encoding="utf-8", errors="replace") as f:
            return f.read().count(text)

    def test_missing_database_fails_after_one_attempt_before_any_request(self):
        db = "ppflow_missing_%s" % self.schema
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.pg_flow(start, end)
        said = 'database "%s" does not exist' % db
        self.assertEqual(self.server_log_count(said), 0)
        r = self.ppflow("run", flow,
                        env=self.env(PG_CONNINFO=self.pg.conninfo_for(dbname=db)))
        self.assertEqual(r.code, 1, r)
        self.assertIn("cannot connect to PostgreSQL database %s at 127.0.0.1:%d as user ppflow"
                      % (db, self.pg.port), r.err)
        self.assertIn("SQLSTATE 3D000", r.err)
        self.assertEqual(self.mock.requests("/v2/"), [], "the API was called")
        # The server logged each attempt before it closed the connection,
        # that is before ppflow ended.
        self.assertEqual(self.server_log_count(said), 1, "not exactly one connection attempt")
        self.assertIsNone(deadletters(self))

    def setup_tables(self, start, end, name):
        """A first run that creates the flow's tables and loads [start, end)."""
        r = self.ppflow("run", self.pg_flow(start, end, name=name))
        self.assertEqual(r.code, 0, r)

    def run_and_break(self, flow, name, breakage):
        """Runs FLOW (six slow windows) and, once two windows are committed,
        applies BREAKAGE (SQL); returns (exit code, stderr)."""
        self.mock.fault(kind="slow", seconds=0.4, count=20)
        seq = self.committed_seq()
        p = self.start_run(flow)
        try:
            self.assertTrue(self.wait_for_commits(p, seq + 2), "no window was committed")
            self.pg.sql(breakage)
            code, _, err = self.finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        return code, err

    def assert_stopped_at_a_commit(self, name, end, err, says):
        """The run stopped at once with the server's message SAYS (the last
        error reported), without trying to isolate records: nothing
        dead-lettered, the stored checkpoint is that of the last commit,
        short of END."""
        errors = [l for l in err.splitlines() if " error: " in l]
        self.assertTrue(errors, err)
        self.assertIn(says, errors[-1], err)
        self.assertNotIn("isolat", err)
        self.assertIsNone(deadletters(self, name), "records were dead-lettered")
        cp = self.stored_checkpoint(name)
        self.assertLess(cp["cursor"], end)
        self.assertEqual(self.state(name)["cursor"], cp["cursor"])

    def test_table_dropped_while_running_stops_the_run(self):
        self.setup_tables(iso(hour_floor(-9)), iso(hour_floor(-8)), "dropped")
        end = iso(hour_floor(-2))
        flow = self.pg_flow(iso(hour_floor(-9)), end, name="dropped", create="false")
        code, err = self.run_and_break(flow, "dropped",
                                       "DROP TABLE %s" % self.table("messages_delivered"))
        self.assertEqual(code, 1, err)
        self.assert_stopped_at_a_commit(
            "dropped", end, err,
            'relation "%s.ppflow_messages_delivered" does not exist' % self.schema)

    def test_privilege_revoked_while_running_stops_the_run(self):
        self.setup_tables(iso(hour_floor(-9)), iso(hour_floor(-8)), "revoked")
        tables = ", ".join(self.table(s) for s in SIEM_STREAMS)
        self.pg.sql("GRANT USAGE ON SCHEMA {s} TO ppflow_pw; "
                    "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {s} TO ppflow_pw"
                    .format(s=self.schema))
        end = iso(hour_floor(-2))
        flow = self.pg_flow(iso(hour_floor(-9)), end, name="revoked", create="false",
                            conninfo="${PG_CONNINFO_PW}")
        code, err = self.run_and_break(flow, "revoked",
                                       "REVOKE INSERT ON %s FROM ppflow_pw" % tables)
        self.assertEqual(code, 1, err)
        self.assert_stopped_at_a_commit("revoked", end, err, "permission denied for table ppflow_")


class PgOldLayout(PostgresCase):
    mock_seed = 83

    def identity(self, stream):
        return self.pg.sql("SELECT col_description('%s'::regclass, 1)" % self.table(stream))

    def test_table_of_the_old_layout_keyed_by_identity_is_adopted(self):
        start, mid, end = iso(hour_floor(-4)), iso(hour_floor(-3)), iso(hour_floor(-2))
        r = self.ppflow("run", self.pg_flow(start, mid))
        self.assertEqual(r.code, 0, r)
        # Tables of an earlier version whose keys already are the identity
        # ($.id, else the content hash): no record identity on them.
        for s in SIEM_STREAMS:
            self.pg.sql('COMMENT ON COLUMN %s."key" IS NULL' % self.table(s))
        self.mock.reset()
        r = self.ppflow("run", self.pg_flow(start, end))
        self.assertEqual(r.code, 0, r)
        self.assertIn("table %s.ppflow_messages_delivered: adopted" % self.schema, r.err)
        for s in SIEM_STREAMS:
            self.assertEqual(self.identity(s), "ppflow record identity: $.id | sha256", s)
        self.assert_exact_pg(start, end)

    def test_table_of_the_old_layout_stops_the_run_naming_the_migration(self):
        start, mid, end = iso(hour_floor(-4)), iso(hour_floor(-3)), iso(hour_floor(-2))
        r = self.ppflow("run", self.pg_flow(start, mid))
        self.assertEqual(r.code, 0, r)
        for s in SIEM_STREAMS:
            self.assertTrue(self.identity(s).startswith("ppflow record identity: "), s)
        # The layout of earlier versions keyed by GUID: no record identity
        # on the tables, one row per GUID (the other recipients' events were
        # dropped as duplicates), keyed by it.
        for s in SIEM_STREAMS:
            t = self.table(s)
            self.pg.sql('COMMENT ON COLUMN %s."key" IS NULL' % t)
            self.pg.sql("DELETE FROM {t} a USING {t} b WHERE a.record->>'GUID' = "
                        "b.record->>'GUID' AND a.key > b.key".format(t=t))
            self.pg.sql("UPDATE %s SET key = record->>'GUID' WHERE record ? 'GUID'" % t)
        before = self.snapshot()
        self.mock.reset()
        flow = self.pg_flow(start, end)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("holds rows keyed by an earlier record identity (none recorded)", r.err)
        self.assertIn("may have been dropped", r.err)
        self.assertRegex(r.err, r'ALTER TABLE "%s"\."ppflow_\w+" RENAME TO "ppflow_\w+_old"'
                         % self.schema)
        self.assertEqual(self.mock.requests("/v2/"), [], "the API was called")
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.stored_checkpoint()["cursor"], mid)

        # The migration as documented: rename the tables, forget the
        # checkpoint, run again: new tables, every record the API holds.
        for s in SIEM_STREAMS:
            self.pg.sql('ALTER TABLE %s RENAME TO "ppflow_%s_old"' % (self.table(s), s))
        self.pg.sql("DELETE FROM %s.ppflow_state WHERE flow = 'siem'" % self.schema)
        os.unlink(os.path.join(self.dir, "state", "siem.json"))
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_pg(start, end)
        for s in SIEM_STREAMS:
            self.assertTrue(self.identity(s).startswith("ppflow record identity: "), s)


if __name__ == "__main__":
    unittest.main(verbosity=2)
