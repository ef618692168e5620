"""sink_plugins.py: sink plugins loaded with dlopen, and the engine's delivery
rules that only a plugin can exercise: checkpoints stored by the sink,
records the sink refuses (dead-letter file), transient sink failures.

Uses the test plugin tests/sinkplugin/faulty.c (and broken builds of it) from
PPFLOW_TEST_PLUGIN_DIR; registered by tests/sinkplugin/CMakeLists.txt.
"""
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, Record, hour_floor, iso

PLUGINS = os.environ.get("PPFLOW_TEST_PLUGIN_DIR", "")
SEED = int(os.environ.get("PPFLOW_TEST_SEED", random.randrange(1 << 30)))


def read_faulty(path):
    """(checkpoint or None, [(stream, key, record)]) from the test sink's file."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    cp = json.loads(lines[0])
    recs = []
    for line in lines[1:]:
        stream, key, rec = line.split("\t", 2)
        recs.append((stream, key, Record(rec)))
    return cp, recs


class SinkPlugins(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(PLUGINS):
            raise unittest.SkipTest("test plugins not built")
        super().setUpClass()

    def env(self, **extra):
        extra.setdefault("PPFLOW_SINK_PATH", PLUGINS)
        return super().env(**extra)

    def flow(self, start, end, name="siem", **sink):
        os.makedirs(os.path.join(self.dir, "out"), exist_ok=True)
        opts = {"type": "faulty", "path": "out/faulty.tsv"}
        opts.update(sink)
        return self.siem_flow(name=name, params={"since_time": start, "until": end}, sink=opts)

    def assert_exact(self, start, end, recs, missing=()):
        expected = self.mock.expected("/v2/siem/all", start, end)
        for stream, (array, key) in SIEM_STREAMS.items():
            got = [r.identity for s, _, r in recs if s == stream]
            keys = [k for s, k, _ in recs if s == stream]
            self.assertEqual(got, keys, "record keys differ from the records' identities")
            self.assertEqual(len(got), len(set(got)), "duplicates in " + stream)
            want = sorted(k for k in expected[array] if k not in missing)
            self.assertEqual(sorted(got), want, stream + " differs from the mock's records")

    # ---- loading -----------------------------------------------------------

    def test_sinks_lists_plugins_and_reports_broken_ones(self):
        r = self.ppflow("sinks")
        self.assertEqual(r.code, 0, r)
        self.assertIn("faulty", r.out)
        self.assertIn("x.*", r.out)
        self.assertIn("ndjson", r.out)
        self.assertIn("built for sink ABI version 99; this ppflow supports 1", r.err)
        self.assertIn("smaller than version 1's", r.err)
        self.assertIn("names sink 'other', not 'misnamed'", r.err)
        r = self.ppflow("sinks", "faulty")
        self.assertEqual(r.code, 0, r)
        self.assertIn("store_checkpoint", r.out)
        self.assertNotIn("ndjson", r.out)

    def test_unusable_plugins_are_refused_at_the_flow_position(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        for kind, msg in (("badabi", "built for sink ABI version 99"),
                          ("small", "smaller than version 1's"),
                          ("nosuch", "unknown sink type 'nosuch'")):
            path = self.flow(start, end, name=kind, type=kind)
            r = self.ppflow("validate", path)
            self.assertEqual(r.code, 2, r)
            line = [i for i, l in enumerate(open(path), 1) if l.strip() == "type: " + kind][0]
            self.assertIn("%s:%d:9:" % (os.path.basename(path), line), r.err)
            self.assertIn(msg, r.err)

    def test_options_are_checked_against_the_plugin_table(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        path = self.flow(start, end, retries="lots", colour="blue")
        r = self.ppflow("validate", path)
        self.assertEqual(r.code, 2, r)
        self.assertIn("sink option retries must be an integer", r.err)
        self.assertIn("unknown option 'colour' for sink faulty", r.err)
        path = self.flow(start, end, name="fam", **{"x.anything.goes": "1"})
        r = self.ppflow("run", path)
        self.assertEqual(r.code, 0, r)
        self.assertIn("settings: x.anything.goes=1;", r.err)

    def test_plugin_dir_in_the_flow(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        os.makedirs(os.path.join(self.dir, "myplugins"))
        shutil.copy(os.path.join(PLUGINS, "ppflow_sink_faulty.so"),
                    os.path.join(self.dir, "myplugins"))
        path = self.flow(start, end, plugin_dir="myplugins")
        r = self.ppflow("run", path, env=self.env(PPFLOW_SINK_PATH=""))
        self.assertEqual(r.code, 0, r)
        self.assert_exact(start, end, read_faulty(os.path.join(self.dir, "out/faulty.tsv"))[1])

    # ---- delivery ------------------------------------------------------------

    def test_run_delivers_exactly_and_stores_the_checkpoint(self):
        start, end = iso(hour_floor(-4)), iso(hour_floor(-1))
        r = self.ppflow("run", self.flow(start, end))
        self.assertEqual(r.code, 0, r)
        cp, recs = read_faulty(os.path.join(self.dir, "out/faulty.tsv"))
        self.assert_exact(start, end, recs)
        st = self.state()
        self.assertEqual(cp["cursor"], end)
        self.assertEqual(cp["seq"], st["seq"])
        self.assertEqual(st["cursor"], end)

    def test_transient_failures_are_retried(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        r = self.ppflow("run", self.flow(start, end, retries="3"))
        self.assertEqual(r.code, 0, r)
        self.assertIn("transient failure injected", r.err)
        self.assert_exact(start, end, read_faulty(os.path.join(self.dir, "out/faulty.tsv"))[1])

    def refusable(self, expected):
        """An identity of a delivered message that its record's text holds
        (an `id`, not a content hash), for the sink's `refuse` option."""
        ids = sorted(k for k in expected["messagesDelivered"] if not k.startswith("sha256:"))
        self.assertTrue(ids, "no message with an id in the range")
        return ids[len(ids) // 2]

    def test_refused_records_go_to_the_dead_letter_file(self):
        start, end = iso(hour_floor(-4)), iso(hour_floor(-1))
        expected = self.mock.expected("/v2/siem/all", start, end)
        bad = self.refusable(expected)
        r = self.ppflow("run", self.flow(start, end, refuse=bad))
        self.assertEqual(r.code, 1, r)
        self.assertIn("1 records were refused by the sink", r.err)
        _, recs = read_faulty(os.path.join(self.dir, "out/faulty.tsv"))
        self.assert_exact(start, end, recs, missing={bad})
        dl = os.path.join(self.dir, "state", "siem.json.deadletter.ndjson")
        self.assertEqual(os.stat(dl).st_mode & 0o777, 0o600)
        lines = [json.loads(l) for l in open(dl, encoding="utf-8")]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["key"], bad)
        self.assertEqual(lines[0]["record"]["id"], bad)
        self.assertEqual(lines[0]["stream"], "messages_delivered")
        self.assertEqual(lines[0]["flow"], "siem")
        self.assertIn("which this sink refuses", lines[0]["reason"])
        # The checkpoint moved on: a rerun fetches nothing again.
        self.assertEqual(self.state()["cursor"], end)

    def test_transient_write_failures_mid_window_replay_from_the_spool(self):
        """Records reach the sink while the response arrives (batches of 7):
        a write answering RETRY mid-window reopens the sink from its last
        commit and delivers the window again from the local spool, without
        another API call; nothing is lost or doubled."""
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        r = self.ppflow("run", self.flow(start, end, write_retries="2", batch_records="7"))
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.err, r"transient write failure injected \(1 more\); delivering window "
                                r"\S+ again from the spool in 1\.0 s \(\d+ records, no API call\)")
        self.assertIn("transient write failure injected (0 more); retrying in", r.err)
        self.assert_exact(start, end, read_faulty(os.path.join(self.dir, "out/faulty.tsv"))[1])
        self.assertEqual(self.state()["cursor"], end)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 2, "a window was fetched again")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state", "siem.json.spool")),
                         "the spool outlived the run")

    def test_without_a_spool_a_failed_window_is_fetched_again(self):
        """When the spool cannot be used (here: a symbolic link is at its
        path, which is never followed), a sink failure mid-window still loses
        nothing: the window is fetched again."""
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        os.makedirs(os.path.join(self.dir, "state"))
        victim = os.path.join(self.dir, "victim.txt")
        with open(victim, "w", encoding="utf-8") as f:
            f.write("keep me\n")
        os.symlink(victim, os.path.join(self.dir, "state", "siem.json.spool"))
        r = self.ppflow("run", self.flow(start, end, write_retries="2", batch_records="7"))
        self.assertEqual(r.code, 0, r)
        self.assertIn("cannot use the spool file state/siem.json.spool: it is a symbolic link",
                      r.err)
        with open(victim, encoding="utf-8") as f:
            self.assertEqual(f.read(), "keep me\n", "the spool followed a symbolic link")
        self.assertIn("transient write failure injected (1 more); retrying window", r.err)
        self.assertIn("fetching it again (attempt 2/5)", r.err)
        self.assert_exact(start, end, read_faulty(os.path.join(self.dir, "out/faulty.tsv"))[1])
        self.assertEqual(self.state()["cursor"], end)
        self.assertGreater(len(self.mock.requests("/v2/siem/all")), 2)

    def test_lost_commit_answers_are_not_delivered_twice(self):
        """A commit that succeeded but whose answer was lost: the sink's
        stored checkpoint says so, and the window is not sent again."""
        start, end = iso(hour_floor(-4)), iso(hour_floor(-1))
        r = self.ppflow("run", self.flow(start, end, lost_commits="2"))
        self.assertEqual(r.code, 0, r)
        self.assertIn("commit answer lost (injected, 1 more)", r.err)
        self.assertEqual(r.err.count("the sink had committed the batch before the error; "
                                     "not sending it again"), 2, r.err)
        cp, recs = read_faulty(os.path.join(self.dir, "out/faulty.tsv"))
        self.assert_exact(start, end, recs)
        self.assertEqual(cp["cursor"], end)
        self.assertEqual(self.state()["cursor"], end)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 3, "a window was fetched again")

    def test_refused_record_mid_window_is_isolated(self):
        """A record refused by a write while the window streams: the window
        is delivered again from the spool and split until the record at
        fault is found; everything else is delivered once, and the API is
        not asked again."""
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        expected = self.mock.expected("/v2/siem/all", start, end)
        bad = self.refusable(expected)
        r = self.ppflow("run", self.flow(start, end, refuse=bad, batch_records="7"))
        self.assertEqual(r.code, 1, r)
        self.assertNotIn("busy", r.err)
        self.assertRegex(r.err, r"delivering window \S+ from the spool \(\d+ records, no API call\) "
                                r"to isolate the records the sink refuses")
        _, recs = read_faulty(os.path.join(self.dir, "out/faulty.tsv"))
        self.assert_exact(start, end, recs, missing={bad})
        dl = os.path.join(self.dir, "state", "siem.json.deadletter.ndjson")
        self.assertEqual([json.loads(l)["key"] for l in open(dl, encoding="utf-8")], [bad])
        self.assertEqual(self.state()["cursor"], end)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 2, "a window was fetched again")

    def test_fatal_answer_stops_the_run_without_dead_letters(self):
        """A sink that cannot take any record (a dropped table, a revoked
        privilege) answers FATAL: the run stops at once with the sink's
        reason, nothing is dead-lettered, the checkpoint stays at the last
        durable commit and no further window is fetched."""
        start, end = iso(hour_floor(-4)), iso(hour_floor(-1))
        r = self.ppflow("run", self.flow(start, end, fatal_after="3", batch_records="7"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("destination gone (injected)", r.err)
        self.assertIn("the run stops here", r.err)
        self.assertNotIn("isolating", r.err)
        self.assertNotIn("retrying", r.err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state",
                                                     "siem.json.deadletter.ndjson")))
        self.assertIsNone(self.state().get("cursor"))
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 1)
        self.assertEqual(self.state()["last_run"]["outcome"], "failed")

    def test_lost_commit_answers_while_isolating_keep_the_unit_checkpoint(self):
        """Commit answers lost during the isolation of a refused record: the
        unit's final checkpoint still holds the unit's late-arrival ledger,
        so the next run's re-sweep delivers none of those records again."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        start = iso(now - dt.timedelta(minutes=40))
        expected = self.mock.expected("/v2/siem/all", start, iso(now))
        bad = self.refusable(expected)
        os.makedirs(os.path.join(self.dir, "out"))
        flow = self.siem_flow(params={"since_time": start}, sink={
            "type": "faulty", "path": "out/faulty.tsv", "refuse": bad, "lost_commits": "3"})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertGreaterEqual(r.err.count("the sink had committed the batch before the error"),
                                2, r.err)
        # A second run re-sweeps the look-back and must find it all delivered.
        flow = self.siem_flow(params={"since_time": start}, sink={
            "type": "faulty", "path": "out/faulty.tsv"})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        _, recs = read_faulty(os.path.join(self.dir, "out/faulty.tsv"))
        got = [k for _, k, _ in recs]
        self.assertEqual(len(got), len(set(got)), "the re-sweep delivered records again")
        self.assertNotIn(bad, got)

    def test_a_unit_failing_after_partial_commits_is_taken_back(self):
        """Refused records are isolated with partial commits; when the unit
        then fails (here the dead-letter file cannot be written), the
        checkpoint keeps the sink position from before the unit, so the next
        run takes the partial commits back and delivers the unit once."""
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        expected = self.mock.expected("/v2/siem/all", start, end)
        bad = self.refusable(expected)
        os.makedirs(os.path.join(self.dir, "state", "siem.json.deadletter.ndjson"))
        flow = self.flow(start, end, refuse=bad, store_checkpoint="false")
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("cannot open dead-letter file", r.err)
        self.assertIsNone(self.state().get("cursor"))
        os.rmdir(os.path.join(self.dir, "state", "siem.json.deadletter.ndjson"))
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("1 records were refused by the sink", r.err)
        _, recs = read_faulty(os.path.join(self.dir, "out/faulty.tsv"))
        self.assert_exact(start, end, recs, missing={bad})
        self.assertEqual(self.state()["cursor"], end)

    def test_a_bad_response_after_a_sink_failure_is_not_fetched_again(self):
        """The sink fails mid-window and then the response itself turns out
        to be broken: the run fails with the response's error, and the API
        is not asked again for the sink's sake."""
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        self.mock.post("/__mock/fault", {"path": "/v2/siem/all", "kind": "generate", "pieces": [
            {"text": '{"messagesDelivered":['}, {"text": '{"id":"r","n":1},', "times": 50},
            {"text": '{"id":"z","n":NaN}]}'}]})
        r = self.ppflow("run", self.flow(start, end, write_retries="1", batch_records="7"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("response for window", r.err)
        self.assertNotIn("fetching it again", r.err)
        self.assertNotIn("from the spool", r.err)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 1)
        self.assertIsNone(self.state().get("cursor"))

    def test_batch_settings_are_checked(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        r = self.ppflow("validate", self.flow(start, end, batch_records="0", batch_bytes="2GiB"))
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.err, r"siem\.yaml:\d+:\d+: .*batch_records")
        self.assertRegex(r.err, r"siem\.yaml:\d+:\d+: sink batch_bytes must be between 1B and 1GiB")

    def test_kill_after_the_sink_commit_loses_and_repeats_nothing(self):
        """Killed between the sink's commit and the checkpoint file's, the
        next run continues from the checkpoint the sink stored."""
        print("seed", SEED, file=sys.stderr)
        rnd = random.Random(SEED)
        start, end = iso(hour_floor(-8)), iso(hour_floor(-1))
        path = self.flow(start, end, pause="300ms")
        out = os.path.join(self.dir, "out/faulty.tsv")
        kills = adopted = 0
        for attempt in range(40):
            p = subprocess.Popen([PPFLOW, "run", path], cwd=self.dir, env=self.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Wait for a commit (the file's checkpoint line changes), then
            # kill during the sink's pause that follows it.
            def committed():
                return len(read_faulty(out)[1]) if os.path.exists(out) else 0
            before = committed()
            deadline = time.time() + 30
            while p.poll() is None and time.time() < deadline:
                if committed() != before:
                    time.sleep(rnd.uniform(0, 0.2))
                    p.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.01)
            so, se = p.communicate(timeout=60)
            self.outputs += [so, se]
            adopted += "holds a newer checkpoint" in se
            if p.returncode == 0:
                break
        self.assertEqual(p.returncode, 0, "the flow never completed")
        self.assertGreaterEqual(kills, 3, "too few kills to prove anything")
        self.assertGreaterEqual(adopted, 1, "no run continued from the sink's checkpoint")
        self.assert_exact(start, end, read_faulty(out)[1])
        self.assertEqual(self.state()["cursor"], end)


if __name__ == "__main__":
    unittest.main(verbosity=2)
