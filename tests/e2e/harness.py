"""harness.py: shared pieces of ppflow's end-to-end tests.

Starts the loopback mock Proofpoint API (tests/mock/ppmock.py), writes flow
files into a scratch directory, runs the ppflow binary there, and checks that
no test secret ever appears in anything ppflow printed or wrote.
"""
import base64
import hashlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SOURCE_DIR = os.environ.get("PPFLOW_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PPFLOW = os.environ.get("PPFLOW_BIN") or os.path.join(SOURCE_DIR, "build", "src", "ppflow")
MOCK = os.path.join(SOURCE_DIR, "tests", "mock", "ppmock.py")
PRINCIPAL = "mock-principal"
SECRET = "mock-secret-value"
# The same secret as it travels in an Authorization header: just as sensitive.
SECRET_FORMS = (SECRET, base64.b64encode(("%s:%s" % (PRINCIPAL, SECRET)).encode()).decode())

# Template stream name -> the SIEM array it comes from, and its key path's
# field. A record's identity is that field, else the SHA-256 of its bytes
# (see record_identity): messages are keyed by `id`, not GUID, since the API
# sends a message to several recipients as one event per recipient.
SIEM_STREAMS = {
    "messages_delivered": ("messagesDelivered", "id"),
    "messages_blocked": ("messagesBlocked", "id"),
    "clicks_permitted": ("clicksPermitted", "id"),
    "clicks_blocked": ("clicksBlocked", "id"),
}


def record_identity(raw, field="id"):
    """What identifies a delivered record (RAW: its bytes as delivered): the
    value of FIELD when it is a string or number, else "sha256:" and the hex
    SHA-256 of RAW, as ppflow computes it (src/engine/identity.h)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    rec = json.loads(raw)
    k = rec.get(field) if isinstance(rec, dict) else None
    if isinstance(k, str):
        return k
    if isinstance(k, (int, float)) and not isinstance(k, bool):
        return json.dumps(k)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class Record(dict):
    """A delivered record, parsed, with the bytes it was delivered as."""

    def __init__(self, raw):
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        super().__init__(json.loads(raw))
        self.raw = raw

    @property
    def identity(self):
        return record_identity(self.raw)


def slurp(path, mode="r"):
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        return f.read()


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def hour_floor(delta_hours):
    """The UTC hour boundary DELTA_HOURS from the current hour."""
    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    return now + dt.timedelta(hours=delta_hours)


class Mock:
    def __init__(self, workdir, seed=1, extra=()):
        self.portfile = os.path.join(workdir, "mock.port")
        self.proc = subprocess.Popen(
            [sys.executable, MOCK, "--port", "0", "--port-file", self.portfile, "--seed",
             str(seed), "--exit-with-parent", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while not os.path.exists(self.portfile):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("mock did not start")
            time.sleep(0.05)
        with open(self.portfile) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path, body=None):
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def fault(self, **kw):
        return self.post("/__mock/fault", kw)

    def reset(self):
        self.post("/__mock/reset")

    def requests(self, prefix="/v2/"):
        return [r for r in self.get("/__mock/requests") if r["path"].startswith(prefix)]

    def expected(self, path, start, end):
        """Keys per SIEM array for [start, end)."""
        return self.get("/__mock/expected?path=%s&start=%s&end=%s" % (path, start, end))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return "exit %d\nstdout:\n%s\nstderr:\n%s" % (self.code, self.out[-3000:], self.err[-3000:])


class E2ETestCase(unittest.TestCase):
    """A scratch directory per test, a mock per test class, and secret checks."""
    mock_seed = 1
    mock_args = ()

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(PPFLOW):
            raise unittest.SkipTest("ppflow binary not built: " + PPFLOW)
        cls.classdir = tempfile.mkdtemp(prefix="ppflow-e2e-")
        cls.mock = Mock(cls.classdir, cls.mock_seed, cls.mock_args)

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()
        shutil.rmtree(cls.classdir, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="case-", dir=self.classdir)
        self.mock.reset()
        self.outputs = []

    def tearDown(self):
        # No secret in anything ppflow printed or wrote: output, sink files,
        # checkpoints and dead-letter files (all under self.dir, plus any
        # directory a test adds to self.output_dirs).
        for text in self.outputs:
            for s in SECRET_FORMS:
                self.assertNotIn(s, text, "secret leaked into ppflow's output")
        for top in [self.dir] + getattr(self, "output_dirs", []):
            for root, _, files in os.walk(top):
                for name in files:
                    path = os.path.join(root, name)
                    if not os.path.isfile(path) or os.path.islink(path):
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                    for s in SECRET_FORMS:
                        self.assertNotIn(s.encode(), data, "secret leaked into " + path)

    def assert_no_secret_in_process(self, pid):
        """The running process's argv (its title in ps) holds no secret."""
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read()
        ps = ""
        if shutil.which("ps"):
            ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True,
                                text=True).stdout
        for s in SECRET_FORMS:
            self.assertNotIn(s.encode(), argv, "secret in the process's argv")
            self.assertNotIn(s, ps, "secret in the process title (ps)")
        return argv

    def env(self, **extra):
        e = dict(os.environ)
        e.update(PP_PRINCIPAL=PRINCIPAL, PP_SECRET=SECRET)
        e.pop("PPFLOW_TEMPLATE_PATH", None)
        e.update(extra)
        return e

    def ppflow(self, *args, env=None, timeout=120, input=None):
        # Credentials come from the environment or a file, never from argv.
        for a in args:
            self.assertNotIn(SECRET, str(a), "a test put the secret on the command line")
        p = subprocess.run([PPFLOW, *args], cwd=self.dir, env=env or self.env(),
                           capture_output=True, text=True, timeout=timeout, input=input)
        self.outputs += [p.stdout, p.stderr]
        return Result(p.returncode, p.stdout, p.stderr)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def siem_flow(self, name="siem", template="tap-siem-all", params=None, http=None,
                  sink_path="out/{stream}.ndjson", auth=True, base_url=None, sink=None,
                  lookback=None, insecure_http=True):
        """A flow over a SIEM template. SINK, a dict, replaces the NDJSON sink
        (its items become the `sink:` mapping, `type` first). The mock speaks
        plain http on loopback, so the flow allows credentials over http
        (source.allow_insecure_http) unless INSECURE_HTTP is False."""
        lines = ["name: %s" % name, "source:", "  template: %s" % template,
                 "  base_url: %s" % (base_url or self.mock.url)]
        if insecure_http:
            lines.append("  allow_insecure_http: true")
        if lookback is not None:
            lines.append("  lookback: %s" % lookback)
        if auth:
            lines += ["  auth:", "    principal: ${PP_PRINCIPAL}", "    secret: ${PP_SECRET}"]
        if params:
            lines.append("  params:")
            for k, v in params.items():
                if isinstance(v, list):
                    lines.append("    %s: [%s]" % (k, ", ".join(v)))
                else:
                    lines.append("    %s: %s" % (k, v))
        lines += ["  http:", "    backoff: 50ms", "    backoff_max: 200ms"]
        for k, v in (http or {}).items():
            lines.append("    %s: %s" % (k, v))
        if sink:
            lines += ["sink:"] + ["  %s: %s" % (k, v) for k, v in sink.items()]
        else:
            lines += ["sink:", "  type: ndjson", "  path: %s" % sink_path]
        lines += ["state:", "  path: state/%s.json" % name]
        return self.write(name + ".yaml", "\n".join(lines) + "\n")

    def read_records(self, stream, sink_dir="out"):
        path = os.path.join(self.dir, sink_dir, stream + ".ndjson")
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            return [Record(line.rstrip(b"\n")) for line in f]

    def state(self, name="siem"):
        return json.loads(slurp(os.path.join(self.dir, "state", name + ".json")))

    def assert_exact_siem(self, start, end, streams=SIEM_STREAMS, path="/v2/siem/all",
                          sink_dir="out"):
        """Every record the mock holds for [start, end) is in the sink exactly once."""
        expected = self.mock.expected(path, start, end)
        total = 0
        for stream, (array, key) in streams.items():
            got = [r.identity for r in self.read_records(stream, sink_dir)]
            self.assertEqual(len(got), len(set(got)), "duplicates in " + stream)
            self.assertEqual(sorted(got), sorted(expected[array]),
                             "%s differs from the mock's records" % stream)
            total += len(got)
        self.assertGreater(total, 0, "the range held no records; the test proves nothing")
        return total
