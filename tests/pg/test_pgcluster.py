"""test_pgcluster.py: the throwaway PostgreSQL cluster the sink tests rely on.

It must listen on loopback only, trust the test user, demand the password of
the password user, survive restarts, and leave nothing behind: not after a
clean stop, and not after the process that started it is killed.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgcluster  # noqa: E402

try:
    pgcluster.find_bindir()
except pgcluster.Unavailable as e:
    print("skipped: %s" % e)
    sys.exit(77)


def postmaster_alive(datadir):
    try:
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            pid = int(f.readline())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def process_alive(pid):
    """True while PID runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ClusterTest(unittest.TestCase):
    def test_start_use_restart_stop(self):
        with pgcluster.Cluster() as pg:
            d = pg.dir
            self.assertEqual(pg.sql("SELECT current_user"), "ppflow")
            self.assertEqual(pg.sql("SHOW listen_addresses"), "127.0.0.1")
            self.assertEqual(pg.sql("SHOW unix_socket_directories"), pg.dir)
            psql = pg.bin("psql")
            ok = subprocess.run([psql, "-X", "-Atc", "SELECT current_user", pg.conninfo_password],
                                capture_output=True, text=True)
            self.assertEqual(ok.stdout.strip(), "ppflow_pw", ok.stderr)
            bad = subprocess.run([psql, "-X", "-Atc", "SELECT 1",
                                  pg.conninfo_for("ppflow_pw", password="not-it")],
                                 capture_output=True, text=True)
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn("password authentication failed", bad.stderr)
            pg.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            pg.restart("immediate")
            self.assertEqual(pg.sql("SELECT x FROM t"), "1")
            pg.restart("fast")
            self.assertEqual(pg.json("SELECT json_agg(x) FROM t"), [1])
        self.assertFalse(os.path.exists(d), "the cluster directory was left behind")

    def test_killed_owner_leaves_nothing_behind(self):
        code = ("import sys, time; sys.path.insert(0, %r); import pgcluster;"
                "c = pgcluster.Cluster().start(); print(c.dir, flush=True); time.sleep(600)"
                % os.path.dirname(os.path.abspath(__file__)))
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        d = p.stdout.readline().strip()
        p.stdout.close()
        self.assertTrue(d and postmaster_alive(os.path.join(d, "data")), d)
        data = os.path.join(d, "data")
        with open(os.path.join(data, "postmaster.pid")) as f:
            pid = int(f.readline())
        p.send_signal(signal.SIGKILL)
        p.wait()
        deadline = time.time() + 30
        while time.time() < deadline and os.path.exists(d):
            time.sleep(0.2)
        self.assertFalse(os.path.exists(d), "the watchdog did not remove the cluster")
        while time.time() < deadline and process_alive(pid):
            time.sleep(0.2)
        self.assertFalse(process_alive(pid), "the server still runs")

    def test_command_line_start_and_stop(self):
        info = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pgcluster-test-%d.json" % os.getpid())
        here = os.path.abspath(pgcluster.__file__)
        r = subprocess.run([sys.executable, here, "start", "--info", info], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            self.assertIn("export PG_CONNINFO='host=127.0.0.1 port=", r.stdout)
            self.assertEqual(os.stat(info).st_mode & 0o777, 0o600)
        finally:
            r = subprocess.run([sys.executable, here, "stop", "--info", info], capture_output=True,
                               text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(info))


if __name__ == "__main__":
    unittest.main(verbosity=2)
