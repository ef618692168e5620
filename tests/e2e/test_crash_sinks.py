"""test_crash_sinks.py: crash consistency of the PostgreSQL and Kafka sinks.

A SIEM backfill (12 windows into PostgreSQL, 24 into Kafka) is killed with
SIGKILL at random points and restarted each time until it completes; rounds
(each into fresh tables or topics) repeat until at least PPFLOW_KILLS kills
(default 30) have landed per sink. The kill delays come from a seeded generator: the
seed is printed and PPFLOW_KILL_SEED repeats a sequence (as in
test_crash.py, which does the same for the NDJSON sink).

PostgreSQL (a throwaway cluster, tests/pg/pgcluster.py): after every kill
the stored checkpoint never moves backwards and the tables hold every record
before it, and nothing outside the backfill's range; at the end of a round
every expected record is a row exactly once and the stored checkpoint is at
the end. Kafka (librdkafka's mock cluster in its own process,
tests/kafka/pf_kafka_mock, so it outlives ppflow's kills): the checkpoint
file is whole after every kill and never moves backwards; at the end of a
round every expected record key is in its topic at least once (repeats are
counted and printed: at-least-once allows them) and the checkpoint is at
the end.
"""
import json
import os
import random
import signal
import subprocess
import time
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, hour_floor, iso, record_identity
from test_kafka import KAFKA_MOCK, KCAT, PLUGIN as KAFKA_PLUGIN, KafkaCluster, consume
from test_postgres import PostgresCase

KILLS = int(os.environ.get("PPFLOW_KILLS", "30"))
WINDOWS = 12
# Both bounds hold the whole test: rounds (a round may end before its
# first kill) and runs per round.
MAX_ROUNDS = 10 + KILLS
MAX_RUNS = 300


def kill_seed():
    seed = int(os.environ.get("PPFLOW_KILL_SEED", random.randrange(1 << 30)))
    return seed, random.Random(seed)


class KillLoop:
    """The kill-and-restart loop shared by the sink cases (a mixin for E2ETestCase)."""

    # Kill delays: uniform in [0.02, KILL_MAX] seconds after the start.
    KILL_MAX = 0.8

    def kill_until_done(self, rng, flow, after_kill):
        """Runs FLOW, killing it with SIGKILL at a random delay, until a run
        completes (exit 0). Calls AFTER_KILL() after every kill. Returns the
        number of kills."""
        kills = runs = 0
        while True:
            runs += 1
            self.assertLess(runs, MAX_RUNS, "the flow never completed")
            # Slowed responses spread the kills over fetching, writing and
            # committing.
            self.mock.fault(kind="slow", seconds=rng.choice([0.01, 0.03, 0.08]), count=100)
            p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                # Every tenth kill of a round lengthens the delays, so that a
                # loaded machine still completes the backfill.
                out, err = p.communicate(timeout=rng.uniform(0.02, self.KILL_MAX) *
                                         (1 + kills // 10))
                self.outputs += [out, err]
                self.assertEqual(p.returncode, 0, err)
                return kills
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                out, err = p.communicate()
                self.outputs += [out, err]
                if p.returncode == 0:
                    return kills  # it finished just before the signal
                self.assertEqual(p.returncode, -signal.SIGKILL, err)
                kills += 1
            finally:
                self.mock.reset()
            after_kill()

    def rounds(self, label, one_round):
        """Runs ONE_ROUND(rng, round) until KILLS kills have landed."""
        seed, rng = kill_seed()
        print("\n%s: kill seed %d, %d kills (PPFLOW_KILL_SEED / PPFLOW_KILLS)"
              % (label, seed, KILLS))
        kills = rounds = 0
        t0 = time.monotonic()
        while kills < KILLS:
            rounds += 1
            self.assertLessEqual(rounds, MAX_ROUNDS, "too few kills landed")
            kills += one_round(rng, rounds)
        print("%s: %d kills survived in %d rounds, %.0f s" % (label, kills, rounds,
                                                               time.monotonic() - t0))
        return kills


class PostgresCrash(KillLoop, PostgresCase):
    mock_seed = 33

    def keys(self, stream):
        return self.pg.json("SELECT coalesce(json_agg(key), '[]') FROM %s" % self.table(stream))

    def tables_exist(self):
        """1 when the stream tables and the state table have been created."""
        names = [self.table(s) for s in SIEM_STREAMS] + ["%s.ppflow_state" % self.schema]
        got = self.pg.sql("SELECT %s" % ",".join("to_regclass('%s')" % t for t in names))
        return "" not in got.split("|")

    def test_random_kills_keep_postgres_exact(self):
        start, end = iso(hour_floor(-WINDOWS - 2)), iso(hour_floor(-2))
        everything = self.mock.expected("/v2/siem/all", start, end)
        checks = [0]

        def one_round(rng, n):
            # Each round into a schema of its own: fresh tables, fresh state row.
            self.schema = "crash_%d_%d" % (PostgresCase.counter, n)
            name = "crash%d" % n
            flow = self.pg_flow(start, end, name=name)
            cursors = []

            def after_kill():
                # The committed part is exact: every record before the stored
                # checkpoint (the rows and the checkpoint share a transaction),
                # each once, and nothing from outside the range.
                if not self.tables_exist():
                    return
                cursor = (self.stored_checkpoint(name) or {}).get("cursor")
                if cursor:
                    cursors.append(cursor)
                before = self.mock.expected("/v2/siem/all", start, cursor) if cursor else {}
                for stream, (array, _) in SIEM_STREAMS.items():
                    got = self.keys(stream)
                    self.assertEqual(len(got), len(set(got)), "duplicates in " + stream)
                    self.assertLessEqual(set(before.get(array, [])), set(got),
                                         "%s lost records before the checkpoint %s"
                                         % (stream, cursor))
                    self.assertLessEqual(set(got), set(everything[array]),
                                         "%s holds records from outside the range" % stream)
                checks[0] += 1

            kills = self.kill_until_done(rng, flow, after_kill)
            self.assertEqual(cursors, sorted(cursors), "the stored checkpoint moved backwards")
            self.assert_exact_pg(start, end, flow=name)
            self.assertEqual(self.stored_checkpoint(name)["cursor"], end)
            self.assertEqual(self.state(name)["cursor"], end)
            return kills

        self.rounds("postgres", one_round)
        self.assertGreater(checks[0], 0)


@unittest.skipUnless(os.path.exists(KAFKA_MOCK) and os.path.exists(KAFKA_PLUGIN) and KCAT,
                     "Kafka sink, pf_kafka_mock or kcat not available")
class KafkaCrash(KillLoop, E2ETestCase):
    mock_seed = 34

    def test_random_kills_lose_no_kafka_record(self):
        # The cluster is a separate process: ppflow's kills leave it running.
        self.kafka = KafkaCluster(self.dir)
        self.addCleanup(self.kafka.stop)
        # Twice the windows: a producer's run is short, and longer rounds
        # leave fewer topics to read back.
        start, end = iso(hour_floor(-2 * WINDOWS - 2)), iso(hour_floor(-2))
        expected = self.mock.expected("/v2/siem/all", start, end)
        dups = {"total": 0}

        def one_round(rng, n):
            name = "crash%d" % n
            flow = self.siem_flow(name=name, params={"since_time": start, "until": end},
                                  sink={"type": "kafka", "brokers": self.kafka.brokers,
                                        "topic": "crash%d.{stream}" % n, "linger": "5ms"})
            state = os.path.join(self.dir, "state", name + ".json")
            cursors = []

            def after_kill():
                # The checkpoint is whole after every kill: old or new, never torn.
                if os.path.exists(state):
                    with open(state, encoding="utf-8") as f:
                        c = json.load(f).get("cursor")
                    if c:
                        cursors.append(c)

            kills = self.kill_until_done(rng, flow, after_kill)
            self.assertEqual(cursors, sorted(cursors), "the checkpoint moved backwards")
            self.assertEqual(self.state(name)["cursor"], end)
            total = 0
            for stream, (array, field) in SIEM_STREAMS.items():
                got = consume(self.kafka.brokers, "crash%d.%s" % (n, stream))
                ids = []
                for key, value in got:
                    self.assertEqual(key, record_identity(value),
                                     "message key differs from the record's identity")
                    ids.append(key)
                missing = set(expected[array]) - set(ids)
                self.assertEqual(missing, set(), "%s: records missing from the topic" % stream)
                self.assertLessEqual(set(ids), set(expected[array]), "records from elsewhere")
                dups["total"] += len(ids) - len(set(ids))
                total += len(set(ids))
            self.assertGreater(total, 0)
            print("kafka round %d: %d kills, %d records, %d repeats so far"
                  % (n, kills, total, dups["total"]))
            return kills

        self.rounds("kafka", one_round)
        print("kafka: records missing 0, repeated deliveries %d (at least once allows them)"
              % dups["total"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
