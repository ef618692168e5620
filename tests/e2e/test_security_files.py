"""test_security_files.py: the files ppflow keeps next to a checkpoint cannot
be redirected, and a checkpoint is read as untrusted input, end to end.

A symbolic link planted at the state lock or at the dead-letter file is
refused and its target left as it was; a FIFO as state.path makes `run`,
`status` and `plan` fail at once (each command runs under a timeout, so a
hang fails the test instead of stalling the suite); a state directory that
group or others can write to, or that another user owns, is refused with
the fix; stale temporary files of killed runs are removed when the lock is
taken; a checkpoint with a bad member is refused naming the file and the
member, before anything is fetched. The tests run as root, which bypasses
permission checks but not O_NOFOLLOW or the fstat checks.
"""
import json
import os
import stat
import unittest

from harness import E2ETestCase, hour_floor, iso, slurp

NOBODY = 65534
# Seconds a command may take here: each one fails before any long work.
QUICK = 30
BUILD_DIR = os.environ.get("PPFLOW_BUILD_DIR", "")
PLUGINS = os.environ.get("PPFLOW_TEST_PLUGIN_DIR") or os.path.join(
    BUILD_DIR, "tests", "sinkplugin", "plugins")


class SecurityFiles(E2ETestCase):
    mock_seed = 11

    def setUp(self):
        super().setUp()
        self.start, self.end = iso(hour_floor(-3)), iso(hour_floor(-2))
        self.state_dir = os.path.join(self.dir, "state")

    def flow(self, **kw):
        return self.siem_flow(params={"since_time": self.start, "until": self.end}, **kw)

    def make_state_dir(self, mode=0o700):
        os.makedirs(self.state_dir, exist_ok=True)
        os.chmod(self.state_dir, mode)

    def victim(self, text="precious, not ppflow's\n"):
        path = os.path.join(self.dir, "victim.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path, text

    def assert_refused(self, r, *needles):
        self.assertNotEqual(r.code, 0, r)
        for n in needles:
            self.assertIn(n, r.err, r)

    def assert_nothing_fetched(self):
        self.assertEqual(self.mock.requests(), [], "the API was called")

    # ---- files that cannot be redirected ---------------------------------

    def test_symlink_at_the_state_lock_is_refused_and_its_target_kept(self):
        flow = self.flow()
        self.make_state_dir()
        victim, text = self.victim()
        os.symlink(victim, os.path.join(self.state_dir, "siem.json.lock"))
        r = self.ppflow("run", flow, timeout=QUICK)
        self.assert_refused(r, "cannot open lock file state/siem.json.lock: it is a symbolic link")
        self.assertEqual(slurp(victim), text, "the lock followed a symbolic link")
        self.assertEqual(os.stat(victim).st_size, len(text))
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "siem.json")))
        self.assert_nothing_fetched()

    def test_symlink_at_the_dead_letter_file_is_refused_and_its_target_kept(self):
        if not os.path.exists(os.path.join(PLUGINS, "ppflow_sink_faulty.so")):
            raise unittest.SkipTest("the test sink plugin is not built: " + PLUGINS)
        expected = self.mock.expected("/v2/siem/all", self.start, self.end)
        ids = sorted(k for k in expected["messagesDelivered"] if not k.startswith("sha256:"))
        self.assertTrue(ids, "no message with an id in the range")
        os.makedirs(os.path.join(self.dir, "out"))
        flow = self.flow(sink={"type": "faulty", "path": "out/faulty.tsv",
                               "refuse": ids[len(ids) // 2], "store_checkpoint": "false"})
        self.make_state_dir()
        victim, text = self.victim()
        os.symlink(victim, os.path.join(self.state_dir, "siem.json.deadletter.ndjson"))
        r = self.ppflow("run", flow, env=self.env(PPFLOW_SINK_PATH=PLUGINS), timeout=120)
        self.assertEqual(r.code, 1, r)
        self.assertIn("cannot open dead-letter file state/siem.json.deadletter.ndjson: it is a "
                      "symbolic link", r.err)
        self.assertEqual(slurp(victim), text, "server text was appended through a link")
        self.assertTrue(os.path.islink(os.path.join(self.state_dir,
                                                    "siem.json.deadletter.ndjson")))
        # The unit failed: the checkpoint did not move past it.
        self.assertIsNone(self.state().get("cursor"))

    def test_fifo_as_state_path_fails_run_status_and_plan_at_once(self):
        flow = self.flow()
        self.make_state_dir()
        os.mkfifo(os.path.join(self.state_dir, "siem.json"), 0o600)
        for cmd in ("run", "status", "plan"):
            # A hang raises TimeoutExpired: the test fails, the suite goes on.
            r = self.ppflow(cmd, flow, timeout=QUICK)
            self.assert_refused(r, "state/siem.json", "is not a regular file (FIFO)")
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(self.state_dir, "siem.json")).st_mode))
        self.assert_nothing_fetched()

    def test_fifo_as_flow_or_template_file_is_refused_without_hanging(self):
        os.mkfifo(os.path.join(self.dir, "fifo.yaml"), 0o600)
        for args in (["validate", "fifo.yaml"], ["run", "fifo.yaml"],
                     ["templates", "./fifo.yaml"]):
            r = self.ppflow(*args, timeout=QUICK)
            self.assert_refused(r, "fifo.yaml", "not a regular file (FIFO)")
        self.assert_nothing_fetched()

    # ---- the state directory ---------------------------------------------

    def test_state_directory_writable_by_others_is_refused(self):
        flow = self.flow()
        self.make_state_dir(0o777)
        for cmd in ("run", "status"):
            r = self.ppflow(cmd, flow, timeout=QUICK)
            self.assert_refused(r, "state directory state is writable by group or others "
                                   "(mode 777); chmod 700 it")
        self.assertEqual(os.listdir(self.state_dir), [], "a file was created in it")
        os.chmod(self.state_dir, 0o770)
        r = self.ppflow("run", flow, timeout=QUICK)
        self.assert_refused(r, "(mode 770); chmod 700 it")
        self.assert_nothing_fetched()
        # Fixed as told, the run goes ahead.
        os.chmod(self.state_dir, 0o700)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(self.start, self.end)

    def test_state_directory_of_another_user_is_refused(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("only root can give a directory away")
        flow = self.flow()
        self.make_state_dir()
        os.chown(self.state_dir, NOBODY, NOBODY)
        for cmd in ("run", "status"):
            r = self.ppflow(cmd, flow, timeout=QUICK)
            self.assert_refused(r, "state directory state is owned by uid %d, not by the user "
                                   "running ppflow (uid 0)" % NOBODY)
        self.assertEqual(os.listdir(self.state_dir), [])
        self.assert_nothing_fetched()

    def test_lock_file_of_another_user_is_refused(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("only root can give a file away")
        flow = self.flow()
        self.make_state_dir()
        lock = os.path.join(self.state_dir, "siem.json.lock")
        with open(lock, "w", encoding="utf-8") as f:
            f.write("theirs\n")
        os.chown(lock, NOBODY, NOBODY)
        r = self.ppflow("run", flow, timeout=QUICK)
        self.assert_refused(r, "state/siem.json.lock: it is owned by uid %d" % NOBODY)
        self.assertEqual(slurp(lock), "theirs\n")
        self.assert_nothing_fetched()

    # ---- stale temporary files -------------------------------------------

    def test_stale_temporary_files_are_removed_when_the_lock_is_taken(self):
        flow = self.flow()
        self.make_state_dir()
        stale = [os.path.join(self.state_dir, n) for n in
                 ("siem.json.tmp.99999999", "ppflow-quota.json.tmp.99999999")]
        # A live pid's file (this test's own) and look-alike names stay.
        kept = [os.path.join(self.state_dir, n) for n in
                ("siem.json.tmp.%d" % os.getpid(), "siem.json.tmp.notapid",
                 "other.json.tmp.99999999")]
        for p in stale + kept:
            with open(p, "w", encoding="utf-8") as f:
                f.write('{"version": 1, "cursor": "20')
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(self.start, self.end)
        for p in stale:
            self.assertFalse(os.path.exists(p), p + " was left")
        for p in kept:
            self.assertTrue(os.path.exists(p), p + " was removed")
        self.assertIn("removed 1 stale temporary file of checkpoint state/siem.json", r.err)

    # ---- the checkpoint as untrusted input -------------------------------

    def write_checkpoint(self, text):
        self.make_state_dir()
        with open(os.path.join(self.state_dir, "siem.json"), "w", encoding="utf-8") as f:
            f.write(text)

    def test_checkpoint_with_a_bad_member_is_refused_naming_it(self):
        flow = self.flow()
        cases = [
            ('{"version": 1, "flow": "siem", "cursor": {"token": "ab\\u0000cd"}}',
             "member cursor.token holds a NUL character"),
            ('{"version": 1.5, "flow": "siem", "cursor": null}',
             "member version is 1.5, not the integer 1"),
            ('{"version": "1", "flow": "siem", "cursor": null}',
             'member version is "1", not the integer 1'),
            ('{"version": 1, "flow": "siem", "cursor": {"page": -2}}',
             "member cursor.page is -2, not an integer from 0"),
            ('{"version": 1, "flow": "siem", "seq": 1.0, "cursor": null}', "member seq is 1.0"),
            ('{"version": 1, "flow": "siem", "cursor": "2026-11-22T00:00:00Z\\u0000"}',
             "member cursor holds a NUL character"),
            ('{"version": 1, "flow": "siem", "cursor": null, "sink": "ndjson"}',
             'member sink is "ndjson", not an object'),
            ('{"version": 1, "flow": "siem", "cursor": null, "ledger": "x"}',
             'member ledger is "x", not an object'),
            ('{"version": 1, "flow": "siem", "cursor": null, "extra": true}',
             "member extra is not one ppflow writes"),
            ('{"version": 1, "flow": "other-flow", "cursor": null}',
             'member flow is "other-flow", but the flow being run is siem'),
        ]
        for text, needle in cases:
            with self.subTest(needle=needle):
                self.write_checkpoint(text)
                for cmd in ("run", "status"):
                    r = self.ppflow(cmd, flow, timeout=QUICK)
                    self.assert_refused(r, "checkpoint state/siem.json: " + needle)
                self.assertEqual(slurp(os.path.join(self.state_dir, "siem.json")), text,
                                 "the refused checkpoint was rewritten")
        self.assert_nothing_fetched()

    def test_valid_checkpoint_written_by_ppflow_is_accepted(self):
        # The other side: what ppflow writes reads back, run after run.
        flow = self.flow()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        cp = self.state()
        self.assertEqual(cp["flow"], "siem")
        self.assertEqual(cp["cursor"], self.end)
        r = self.ppflow("status", flow)
        self.assertEqual(r.code, 0, r)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        again = json.loads(slurp(os.path.join(self.state_dir, "siem.json")))
        self.assertEqual(again["cursor"], self.end)
        self.assertGreaterEqual(again["seq"], cp["seq"])
        self.assertEqual(stat.S_IMODE(os.stat(self.state_dir).st_mode), 0o700)


if __name__ == "__main__":
    unittest.main(verbosity=2)
