"""test_metrics_hostile.py: `ppflow schedule --metrics-port` against hostile clients,
and the scheduler's process hardening.

The scheduler runs on a sped-up test clock (as in test_schedule.py) with a
flow due every few real seconds. Raw sockets then send what once crashed it
(a full request without a space, then a head that ends before the first
space), garbage, request lines without spaces, NUL bytes, 100 KB of head
that never ends, connections that say nothing and stay open, clients that
close before reading (with a FIN or a reset), a slow reader of a response
larger than the socket buffers, and many connections at once. After each,
the scheduler is alive, /metrics scrapes, and runs go on; at the end it
stops with exit 0 and (in the sanitizer build) no report.

Proven too: the process is not dumpable and its core size limit is 0,
unless PPFLOW_ALLOW_CORE=1. Observable as root only through a process of
another user: a non-dumpable process's /proc/PID files belong to root,
a dumpable one's to its user; the test runs `ppflow schedule` as nobody
(setpriv) to see the difference, and reads /proc/PID/limits for the core
limit. Every wait is on a condition with a deadline; no fixed sleeps.
"""
import datetime as dt
import os
import random
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import E2ETestCase, PPFLOW, hour_floor, iso

METRICS_RE = re.compile(r"metrics at http://127\.0\.0\.1:(\d+)/metrics")
END_RE = re.compile(r"flow (\S+): run (\S+) (ok|failed|interrupted|busy|crashed) at ")
MAX_REQUEST = 8192       # PF_METRICS_MAX_REQUEST
CONN_TIMEOUT_S = 5.0     # PF_METRICS_CONN_TIMEOUT_MS
MAX_CONNS = 16           # PF_METRICS_MAX_CONNS
MIN = dt.timedelta(minutes=1)


class Sched:
    """A `ppflow schedule` process whose stderr lines are collected as they come."""

    def __init__(self, args, cwd, env, preexec=None, prefix=()):
        self.proc = subprocess.Popen([*prefix, PPFLOW, "schedule", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors="replace", preexec_fn=preexec)
        self.lines = []
        self.cond = threading.Condition()
        self.readers = [threading.Thread(target=self._read, args=(s,), daemon=True)
                        for s in (self.proc.stderr, self.proc.stdout)]
        for th in self.readers:
            th.start()

    def _read(self, stream):
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("timed out waiting for %s; scheduler %s; log:\n%s" % (
                        what, "exited %s" % self.proc.poll() if self.proc.poll() is not None
                        else "running", "\n".join(self.lines)[-4000:]))
                self.cond.wait(min(left, 0.2))

    def port(self):
        m = self.wait_for(lambda: METRICS_RE.search("\n".join(self.lines)), 60, "the metrics port")
        return int(m.group(1))

    def ends(self):
        return [l for l in self.lines if END_RE.search(l)]

    def stop(self, timeout=60):
        """SIGTERM (unless TIMEOUT is 0), then the exit code; None when it had
        to be killed after TIMEOUT s. Safe to call again."""
        if self.proc.poll() is None and timeout:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        killed = self.proc.poll() is None
        if killed:
            self.proc.kill()
            self.proc.wait()
        for th in self.readers:
            th.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return None if killed else self.proc.returncode


class HostileCase(E2ETestCase):
    mock_seed = 41

    def setUp(self):
        super().setUp()
        self.scheds = []

    def tearDown(self):
        for s in self.scheds:
            s.stop(timeout=0)
            self.outputs.append(s.text())
        super().tearDown()

    def flow(self, name, schedule, directory="flows"):
        since = hour_floor(-5)
        lines = ["name: %s" % name, "source:", "  template: tap-siem-all",
                 "  base_url: %s" % self.mock.url, "  allow_insecure_http: true",  # the mock
                 "  auth:",
                 "    principal: ${PP_PRINCIPAL}", "    secret: ${PP_SECRET}",
                 "  lookback: 0s", "  params:", "    since_time: %s" % iso(since),
                 "  http:", "    backoff: 50ms", "    backoff_max: 200ms", "    max_attempts: 2",
                 "sink:", "  type: ndjson", "  path: out/%s/{stream}.ndjson" % name,
                 "state:", "  path: state/%s.json" % name, "schedule:"]
        lines += ["  %s: %s" % kv for kv in schedule.items()]
        return self.write(os.path.join(directory, name + ".yaml"), "\n".join(lines) + "\n")

    def start(self, *args, speed=None, env=None, cwd=None, **kw):
        e = env or self.env()
        if speed:
            # Three hours ago, sped up: runs every few real seconds.
            e["PPFLOW_TEST_CLOCK"] = "%s@%d" % (iso(hour_floor(-3) + 2 * MIN), speed)
        e.pop("PPFLOW_NOW", None)
        s = Sched(["--metrics-port", "0", *args], cwd or self.dir, e, **kw)
        self.scheds.append(s)
        return s

    # ---- clients ----

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data, timeout=10):
        """Sends DATA, reads until the server closes; the reply's bytes (a reset
        after part of it ends the read too)."""
        with self.connect(timeout) as c:
            try:
                c.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            out = b""
            while True:
                try:
                    chunk = c.recv(65536)
                except ConnectionResetError:
                    return out
                if not chunk:
                    return out
                out += chunk

    @staticmethod
    def status(reply):
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", reply)
        return int(m.group(1)) if m else None

    def scrape(self, timeout=10):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port,
                                    timeout=timeout) as r:
            self.assertEqual(r.status, 200)
            body = r.read().decode()
            self.assertEqual(len(body.encode()), int(r.headers["Content-Length"]))
        self.assertIn("ppflow_scheduler_start_time_seconds ", body)
        return body

    def assert_alive_and_serving(self):
        self.assertIsNone(self.s.proc.poll(), "the scheduler died:\n" + self.s.text()[-4000:])
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port, timeout=10) as r:
            self.assertEqual((r.status, r.read()), (200, b"ok\n"))
        return self.scrape()

    def assert_clean_stop(self):
        code = self.s.stop()
        text = self.s.text()
        self.assertEqual(code, 0, text[-4000:])
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "DEADLYSIGNAL"):
            self.assertNotIn(bad, text)


class MetricsHostile(HostileCase):
    """Hostile requests against one scheduler running a flow every few seconds."""

    def setUp(self):
        super().setUp()
        self.flow("h", {"every": "5m"})
        self.s = self.start("flows/", speed=60)
        self.port = self.s.port()

    def runs_go_on(self):
        """A run ends after now: the scheduler still runs flows."""
        n = len(self.s.ends())
        self.s.wait_for(lambda: len(self.s.ends()) > n, 90, "another run to end")

    def test_bind_address_is_checked(self):
        r = self.ppflow("schedule", "--metrics-port", "0", "--metrics-bind", "localhost",
                        "flows/", timeout=60)
        self.assertEqual(r.code, 1, r)
        self.assertIn("metrics address 'localhost' is not an IPv4 or IPv6 address", r.err)

    def test_crash_sequence_garbage_and_malformed_lines(self):
        # The sequence that crashed the scheduler: a full buffer without a
        # space, then a head that ends before the first space.
        self.assertEqual(self.status(self.raw(b"A" * MAX_REQUEST)), 431)
        self.assertEqual(self.status(self.raw(b"\r\n\r\n A")), 400)
        self.assertEqual(self.status(self.raw(b"\r\n\r\nGET / HTTP/1.1")), 400)
        self.assertEqual(self.status(self.raw(b"A" * MAX_REQUEST)), 431)
        self.assertEqual(self.status(self.raw(b"\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n")), 400)
        malformed = [
            b"garbage\r\n\r\n",
            b"GET/metricsHTTP/1.1\r\n\r\n",               # no space at all
            b"GET /metrics\r\n\r\n",                      # no version
            b"GET /metrics\x00 HTTP/1.1\r\n\r\n",         # NUL in the target
            b"GET /metrics HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"\x00" * 64,
            b"GET /metrics HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX : a\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
        ]
        for req in malformed:
            self.assertEqual(self.status(self.raw(req)), 400, req)
        self.assertEqual(self.status(self.raw(b"DELETE /metrics HTTP/1.1\r\n\r\n")), 405)
        self.assertEqual(self.status(self.raw(b"GET /nothing HTTP/1.1\r\n\r\n")), 404)
        self.assertEqual(self.status(self.raw(b"GET /metrics?a=b HTTP/1.1\r\n\r\n")), 200)
        head = self.raw(b"HEAD /metrics HTTP/1.1\r\n\r\n")
        self.assertEqual(self.status(head), 200)
        self.assertTrue(head.endswith(b"\r\n\r\n"))
        # Random binary garbage of every size up to past the cap.
        rnd = random.Random(7)
        for size in (1, 2, 7, 100, 4096, MAX_REQUEST - 1, MAX_REQUEST, MAX_REQUEST + 1, 20000):
            reply = self.raw(bytes(rnd.randrange(256) for _ in range(size)))
            self.assertIn(self.status(reply), (400, 431, None), reply[:100])
        self.assert_alive_and_serving()
        self.runs_go_on()
        self.assert_clean_stop()

    def test_endless_head(self):
        # 100 KB of head that never ends: 431 once the cap is reached, and the
        # client reads it (what it sends after is drained, not reset).
        flood = b"GET /metrics HTTP/1.1\r\nX-Flood: " + b"x" * (100 * 1024)
        self.assertEqual(self.status(self.raw(flood)), 431)
        # The same in a single header line sent slowly, chunk by chunk.
        with self.connect() as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\n")
            got = b""
            try:
                for _ in range(200):
                    c.sendall(b"X-A: " + b"y" * 1000 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
        self.assertIn(self.status(got), (431, None))
        self.assert_alive_and_serving()
        self.assert_clean_stop()

    def test_idle_and_half_requests_block_neither_scrapes_nor_runs(self):
        # More idle connections than the server serves at once, and some that
        # send half a request; all stay open.
        idle = [self.connect() for _ in range(MAX_CONNS + 8)]
        half = []
        for _ in range(4):
            c = self.connect()
            c.sendall(b"GET /metr")
            half.append(c)
        try:
            t0 = time.monotonic()
            for _ in range(3):
                self.scrape(timeout=CONN_TIMEOUT_S)
            self.assertLess(time.monotonic() - t0, CONN_TIMEOUT_S,
                            "scrapes waited behind idle connections")
            self.runs_go_on()
            self.assert_alive_and_serving()
        finally:
            for c in idle + half:
                c.close()
        # An idle connection is closed by the server after its timeout.
        with self.connect(timeout=CONN_TIMEOUT_S * 4) as c:
            t0 = time.monotonic()
            self.assertEqual(c.recv(1), b"")
            self.assertGreater(time.monotonic() - t0, CONN_TIMEOUT_S - 1)
        self.assert_clean_stop()

    def test_clients_that_close_before_reading(self):
        for k in range(20):
            c = self.connect()
            c.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            if k % 2:  # close with a reset
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
        for k in range(5):  # half a request, then gone
            c = self.connect()
            c.sendall(b"GET /met")
            c.close()
        self.assert_alive_and_serving()
        self.runs_go_on()
        self.assert_alive_and_serving()
        self.assert_clean_stop()

    def test_many_connections_at_once(self):
        n = 120
        results = [None] * n
        go = threading.Event()

        def client(i):
            go.wait(30)
            try:
                results[i] = self.status(self.raw(b"GET /metrics HTTP/1.1\r\n\r\n", timeout=30))
            except OSError as e:
                results[i] = e

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        go.set()
        for th in threads:
            th.join(60)
        self.assertFalse(any(th.is_alive() for th in threads), "clients hung")
        ok = sum(1 for r in results if r == 200)
        # Past the connections served at once the oldest is dropped, so a
        # client of a burst may see its connection closed; most are served.
        self.assertGreater(ok, n // 2, results)
        for r in results:
            self.assertIn(r, (200, None), results)
        self.assert_alive_and_serving()
        self.assert_clean_stop()


class MetricsLargeResponse(HostileCase):
    """A response far larger than a connection's socket buffer."""

    def test_slow_reader_gets_it_all_while_others_are_served(self):
        for i in range(300):  # never due while the test runs
            self.flow("f%03d-%s" % (i, "x" * 110), {"cron": "'0 0 1 1 *'"})
        self.s = self.start("flows/")
        self.port = self.s.port()
        whole = self.scrape()
        self.assertGreater(len(whole), 400 * 1024)
        with socket.socket() as slow:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.settimeout(10)
            slow.connect(("127.0.0.1", self.port))
            slow.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            got = slow.recv(1000)
            self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"))
            # The server is blocked on this client's full socket: others are served.
            for _ in range(3):
                self.assertEqual(self.scrape(), whole)
            while True:
                chunk = slow.recv(4096)
                if not chunk:
                    break
                got += chunk
        head, body = got.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        self.assertEqual(len(body), length)
        self.assertEqual(body.decode(), whole)
        self.assert_alive_and_serving()
        self.assert_clean_stop()


def proc_uid(pid, name):
    return os.stat("/proc/%d/%s" % (pid, name)).st_uid


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    raise AssertionError("no core limit in /proc/%d/limits" % pid)


class CoreDumps(HostileCase):
    """No core dumps unless PPFLOW_ALLOW_CORE=1 (src/cli/main.c)."""

    def run_as(self, env, user=None):
        self.flow("c", {"every": "1h"})
        kw = {}
        if user is not None:
            kw["prefix"] = ("setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                            "--")
            os.chmod(self.dir, 0o777)
            os.chmod(self.classdir, 0o755)
            for root, dirs, files in os.walk(self.dir):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o777)
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)
        # A core limit the scheduler would keep, were nothing done.
        kw["preexec"] = lambda: resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
        self.s = self.start("flows/", env=env, **kw)
        self.port = self.s.port()  # main() ran long before this line
        return self.s.proc.pid

    def test_core_limit_zero_unless_allowed(self):
        pid = self.run_as(self.env())
        self.assertEqual(core_limit(pid), ["0", "0"])
        self.assert_alive_and_serving()
        self.assert_clean_stop()

    def test_core_limit_kept_when_allowed(self):
        pid = self.run_as(self.env(PPFLOW_ALLOW_CORE="1"))
        soft, hard = core_limit(pid)
        self.assertEqual(hard, str(1 << 20))
        # AddressSanitizer lowers the soft limit itself (its disable_coredump).
        if os.environ.get("PPFLOW_SANITIZED") != "1":
            self.assertEqual(soft, str(1 << 20))
        self.assert_clean_stop()

    def can_switch_user(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            return False
        # The binary must be reachable by nobody.
        path = os.path.dirname(os.path.abspath(PPFLOW))
        while path != "/":
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
            path = os.path.dirname(path)
        return True

    def test_not_dumpable_unless_allowed(self):
        if not self.can_switch_user():
            self.skipTest("needs root, setpriv and a ppflow binary other users can reach")
        nobody = 65534
        pid = self.run_as(self.env(), user=nobody)
        self.assertEqual(os.stat("/proc/%d" % pid).st_uid, nobody)  # really nobody's process
        self.assertEqual(proc_uid(pid, "environ"), 0, "a non-dumpable process's files are root's")
        self.assertEqual(proc_uid(pid, "mem"), 0)
        self.assertEqual(core_limit(pid), ["0", "0"])
        self.assert_alive_and_serving()
        self.assert_clean_stop()

    def test_dumpable_when_allowed(self):
        if not self.can_switch_user():
            self.skipTest("needs root, setpriv and a ppflow binary other users can reach")
        nobody = 65534
        pid = self.run_as(self.env(PPFLOW_ALLOW_CORE="1"), user=nobody)
        self.assertEqual(proc_uid(pid, "environ"), nobody)
        self.assert_clean_stop()


if __name__ == "__main__":
    unittest.main()
