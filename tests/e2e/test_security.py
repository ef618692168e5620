"""test_security.py: ppflow's security defences end to end.

TLS against loopback TLS servers with a throwaway CA generated here by the
openssl CLI (verification on by default, ca_file, wrong host name, the
explicit verify_tls: false switch and its warning, client certificates);
header, query and path injection refused before anything is sent; secrets
kept out of argv, process titles, errors, state and sink files; private file
modes. Every counted TLS failure and injection attempt is printed for
docs/reliability.md and docs/security.md.
"""
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import E2ETestCase, Mock, PPFLOW, SECRET, SIEM_STREAMS, hour_floor, iso, slurp

OPENSSL = shutil.which("openssl")


def make_pki(d):
    """A throwaway CA and certificates signed by it, valid for two days:
    server (127.0.0.1 and localhost), wrong (only wrong.example), client."""
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        subprocess.run([OPENSSL, *args], cwd=d, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=ppflow throwaway test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaves = {
        "server": ("127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                "extendedKeyUsage=serverAuth\n"),
        "wrong": ("wrong.example", "subjectAltName=DNS:wrong.example\n"
                                   "extendedKeyUsage=serverAuth\n"),
        "client": ("ppflow-test-client", "extendedKeyUsage=clientAuth\n"),
    }
    for serial, (name, (cn, ext)) in enumerate(leaves.items(), start=2):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        ossl("req", *key, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-set_serial", str(serial), "-days", "2", "-out", name + ".pem",
             "-extfile", name + ".ext")
    for name in os.listdir(d):
        if name.endswith(".key"):
            os.chmod(os.path.join(d, name), 0o600)
    return {n: os.path.join(d, n) for n in os.listdir(d)}


class TlsMock(Mock):
    """The mock API served over TLS; its control endpoints are reached with
    a client context that trusts the test CA but ignores the host name."""

    def __init__(self, workdir, seed, cert, key, cafile):
        os.makedirs(workdir, exist_ok=True)
        super().__init__(workdir, seed, ["--tls-cert", cert, "--tls-key", key])
        self.url = "https://127.0.0.1:%d" % self.port
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.check_hostname = False

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30, context=self.ctx) as r:
            return json.loads(r.read())

    def post(self, path, body=None):
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30, context=self.ctx) as r:
            return json.loads(r.read() or b"{}")


class ClientCertRelay:
    """A TLS front that requires a client certificate signed by CA and relays
    the bytes to a plain HTTP server on UPSTREAM_PORT."""

    def __init__(self, cert, key, ca, upstream_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(ca)
        self.upstream = upstream_port
        self.refused = 0
        self.accepted = 0
        self.stop_flag = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop_flag.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        conn.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.refused += 1
            conn.close()
            return
        self.accepted += 1
        up = socket.create_connection(("127.0.0.1", self.upstream))

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, tls), daemon=True)
        t.start()
        pump(tls, up)
        t.join(30)
        tls.close()
        up.close()

    def stop(self):
        self.stop_flag.set()
        self.sock.close()


class Tls(E2ETestCase):
    mock_seed = 31
    tls_failures = 0

    @classmethod
    def setUpClass(cls):
        if not OPENSSL:
            raise unittest.SkipTest("the openssl command is not installed (tests/deps.sh)")
        super().setUpClass()
        try:
            cls.pki = make_pki(os.path.join(cls.classdir, "pki"))
            p = cls.pki
            cls.good = TlsMock(os.path.join(cls.classdir, "good"), cls.mock_seed,
                               p["server.pem"], p["server.key"], p["ca.pem"])
            cls.wrong = TlsMock(os.path.join(cls.classdir, "wrong"), cls.mock_seed,
                                p["wrong.pem"], p["wrong.key"], p["ca.pem"])
            cls.relay = ClientCertRelay(p["server.pem"], p["server.key"], p["ca.pem"],
                                        cls.mock.port)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for name in ("relay", "wrong", "good"):
            obj = getattr(cls, name, None)
            if obj:
                obj.stop()
        print("\nTLS failures provoked: %d" % cls.tls_failures)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.good.reset()
        self.wrong.reset()

    def flow(self, base_url, start, end, **http):
        return self.siem_flow(base_url=base_url, params={"since_time": start, "until": end},
                              http=dict({"max_attempts": 2}, **http))

    def out_bytes(self):
        d = os.path.join(self.dir, "out")
        return {n: slurp(os.path.join(d, n), "rb") for n in sorted(os.listdir(d))} \
            if os.path.isdir(d) else {}

    def test_ca_file_verifies_the_server(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        r = self.ppflow("run", self.flow(self.good.url, start, end, ca_file=self.pki["ca.pem"]))
        self.assertEqual(r.code, 0, r)
        self.assertNotIn("verification is disabled", r.err)
        self.assertEqual([q["status"] for q in self.good.requests("/v2/siem/all")], [200])
        self.assert_exact_siem(start, end)

    def test_unknown_ca_fails_cleanly_and_keeps_the_checkpoint(self):
        start, mid, end = iso(hour_floor(-4)), iso(hour_floor(-3)), iso(hour_floor(-2))
        ca = self.pki["ca.pem"]
        r = self.ppflow("run", self.flow(self.good.url, start, mid, ca_file=ca))
        self.assertEqual(r.code, 0, r)
        before, served = self.out_bytes(), len(self.good.requests("/v2/"))
        # Verification is on by default: without ca_file the system store is
        # used, and it does not know the throwaway CA.
        r = self.ppflow("run", self.flow(self.good.url, start, end))
        Tls.tls_failures += 1
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("TLS certificate verification failed", r.err)
        self.assertIn("certificate", r.err.split("verification failed", 1)[1])
        self.assertEqual(self.state()["cursor"], mid)
        self.assertEqual(self.out_bytes(), before)
        self.assertEqual(len(self.good.requests("/v2/")), served, "no request may be sent")
        r = self.ppflow("run", self.flow(self.good.url, start, end, ca_file=ca))
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)

    def test_certificate_for_another_host_is_refused(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        r = self.ppflow("run", self.flow(self.wrong.url, start, end, ca_file=self.pki["ca.pem"]))
        Tls.tls_failures += 1
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("TLS certificate verification failed", r.err)
        self.assertIn("127.0.0.1", r.err)
        self.assertIsNone(self.state()["cursor"])
        self.assertEqual(self.read_records("messages_delivered"), [])
        self.assertEqual(self.wrong.requests("/v2/"), [])

    def test_verify_tls_false_works_and_warns_on_every_run(self):
        start, mid, end = iso(hour_floor(-4)), iso(hour_floor(-3)), iso(hour_floor(-2))
        # Wrong host name and an unknown CA: only the explicit switch lets it through.
        for until in (mid, end):
            r = self.ppflow("run", self.flow(self.wrong.url, start, until, verify_tls="false"))
            self.assertEqual(r.code, 0, r)
            self.assertIn("warning: TLS certificate verification is disabled", r.err)
        self.assert_exact_siem(start, end)
        # The warning comes with every run, also one with nothing to fetch.
        r = self.ppflow("run", self.flow(self.wrong.url, start, end, verify_tls="false"))
        self.assertEqual(r.code, 0, r)
        self.assertIn("verification is disabled", r.err)

    def test_client_certificate(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        ca = self.pki["ca.pem"]
        refused = self.relay.refused
        r = self.ppflow("run", self.flow(self.relay.url, start, end, ca_file=ca))
        Tls.tls_failures += 1
        self.assertNotEqual(r.code, 0, r)
        self.assertGreater(self.relay.refused, refused, "the relay saw no refused handshake")
        self.assertEqual(self.mock.requests("/v2/"), [])
        self.assertIsNone(self.state()["cursor"])
        r = self.ppflow("run", self.flow(self.relay.url, start, end, ca_file=ca,
                                         client_cert=self.pki["client.pem"],
                                         client_key=self.pki["client.key"]))
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.mock.requests("/v2/siem/all")), 1)
        self.assert_exact_siem(start, end)

    def test_unusable_ca_file_is_a_clear_error(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        junk = self.write("junk.pem", "this is not a certificate\n")
        r = self.ppflow("run", self.flow(self.good.url, start, end, ca_file=junk))
        Tls.tls_failures += 1
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("ca_file", r.err)
        r = self.ppflow("run", self.flow(self.good.url, start, end,
                                         ca_file=os.path.join(self.dir, "missing.pem")))
        self.assertEqual(r.code, 2, r)
        self.assertIn("ca_file", r.err)
        self.assertIn("missing.pem", r.err)
        self.assertEqual(self.good.requests("/v2/"), [])


INJ_TEMPLATE = """name: inj-api
description: "a test endpoint with free-text parameters in path, query and a header"
request:
  method: GET
  base_url: http://127.0.0.1
  path: /v2/siem/{which}
  query:
    format: json
    sinceSeconds: "3600"
    q: "{q}"
  headers:
    X-Trace: "{trace}"
auth:
  kind: basic
params:
  which:
    type: string
    required: true
    description: the last path segment
  q:
    type: string
    description: free text sent as a query parameter
  trace:
    type: string
    description: free text sent in a header
streams:
  messages_delivered:
    path: $.messagesDelivered[*]
    key: $.GUID
"""

HDR_TEMPLATE = """name: inj-hdr
description: "a test endpoint with the secret in a header"
request:
  method: GET
  base_url: http://127.0.0.1
  path: /v2/siem/all
  query:
    format: json
    sinceSeconds: "3600"
auth:
  kind: headers
  headers:
    Authorization: "Bearer {secret}"
streams:
  messages_delivered:
    path: $.messagesDelivered[*]
    key: $.GUID
"""


class Injection(E2ETestCase):
    """CR, LF and NUL in anything that becomes part of a request are refused
    before a byte is sent; the message names the header or parameter and
    never shows the value."""
    mock_seed = 32
    attempts = 0

    @classmethod
    def tearDownClass(cls):
        print("\ninjection attempts refused: %d" % cls.attempts)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.tpl = os.path.join(self.dir, "tpl")
        os.makedirs(self.tpl)
        with open(os.path.join(self.tpl, "inj-api.yaml"), "w") as f:
            f.write(INJ_TEMPLATE)
        with open(os.path.join(self.tpl, "inj-hdr.yaml"), "w") as f:
            f.write(HDR_TEMPLATE)

    def env(self, **extra):
        e = super().env(**extra)
        e["PPFLOW_TEMPLATE_PATH"] = self.tpl
        return e

    def flow(self, params, template="inj-api", secret_var="PP_SECRET"):
        lines = ["name: inj", "source:", "  template: %s" % template,
                 "  base_url: %s" % self.mock.url, "  allow_insecure_http: true", "  auth:",
                 "    principal: ${PP_PRINCIPAL}", "    secret: ${%s}" % secret_var]
        if params:
            lines.append("  params:")
            lines += ["    %s: %s" % kv for kv in params.items()]
        lines += ["  http:", "    max_attempts: 1", "sink:", "  type: ndjson",
                  "  path: out/{stream}.ndjson", "state:", "  path: state/inj.json"]
        return self.write("inj.yaml", "\n".join(lines) + "\n")

    def assert_refused(self, r, names, hidden):
        Injection.attempts += 1
        self.assertNotEqual(r.code, 0, r)
        self.assertIn(names, r.err)
        for h in hidden:
            self.assertNotIn(h, r.out + r.err, "the refused value is shown")
        self.assertEqual(self.mock.requests("/"), [], "a request was sent")
        self.assertEqual(self.read_records("messages_delivered"), [])

    def test_plain_values_are_percent_encoded_and_delivered(self):
        r = self.ppflow("run", self.flow({"which": "all", "q": '"a b&c=d/\u00e9+%0A"',
                                          "trace": '"t-1 2"'}))
        self.assertEqual(r.code, 0, r)
        q = self.mock.requests("/v2/siem/all")
        self.assertEqual(len(q), 1)
        self.assertEqual(q[0]["params"]["q"], ["a b&c=d/\u00e9+%0A"])
        self.assertEqual(q[0]["params"]["format"], ["json"])
        self.assertEqual(q[0]["headers"]["X-Trace"], "t-1 2")
        self.assertGreater(len(self.read_records("messages_delivered")), 0)

    def test_line_break_in_a_query_parameter(self):
        for v in ('"x\\r\\nX-Injected: 1"', '"x\\nX-Injected: 1"', '"x\\rX-Injected: 1"'):
            r = self.ppflow("run", self.flow({"which": "all", "q": v}))
            self.assert_refused(r, "query parameter 'q'", ["X-Injected"])

    def test_line_break_in_a_header_value(self):
        r = self.ppflow("run", self.flow({"which": "all", "trace": '"t\\r\\nX-Injected: 1"'}))
        self.assert_refused(r, "X-Trace", ["X-Injected"])

    def test_line_break_in_a_path_parameter(self):
        for v in ('"all\\r\\nHost: evil.example"', '"all\\n"'):
            r = self.ppflow("run", self.flow({"which": v}))
            self.assert_refused(r, "parameter which contains a line break", ["evil.example"])

    def test_line_break_in_a_header_secret_is_refused_without_showing_it(self):
        evil = "tok-SECRETPART\r\nX-Injected: 1"
        r = self.ppflow("run", self.flow({}, template="inj-hdr", secret_var="PP_EVIL"),
                        env=self.env(PP_EVIL=evil))
        self.assert_refused(r, "Authorization", ["SECRETPART", "X-Injected"])
        state_dir = os.path.join(self.dir, "state")
        for name in os.listdir(state_dir) if os.path.isdir(state_dir) else []:
            self.assertNotIn("SECRETPART", slurp(os.path.join(state_dir, name)))

    def test_nul_in_a_flow_value_is_refused_at_load(self):
        r = self.ppflow("run", self.flow({"which": "all", "q": '"a\\0b"'}))
        Injection.attempts += 1
        self.assertEqual(r.code, 2, r)
        self.assertIn("inj.yaml:", r.err)
        self.assertIn("NUL", r.err)
        self.assertEqual(self.mock.requests("/"), [])


class Secrets(E2ETestCase):
    mock_seed = 33

    def test_secret_never_in_argv_or_process_title(self):
        start, end = iso(hour_floor(-5)), iso(hour_floor(-2))
        self.mock.fault(kind="slow", seconds=0.6, count=3)
        flow = self.siem_flow(params={"since_time": start, "until": end})
        args = [PPFLOW, "run", flow]
        for a in args:
            self.assertNotIn(SECRET, a)
        p = subprocess.Popen(args, cwd=self.dir, env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        samples = 0
        try:
            while p.poll() is None:
                try:
                    argv = self.assert_no_secret_in_process(p.pid)
                    if argv:
                        samples += 1
                        self.assertTrue(argv.startswith(PPFLOW.encode()), argv)
                    with open("/proc/%d/comm" % p.pid) as f:
                        self.assertNotIn(SECRET, f.read())
                except FileNotFoundError:
                    break  # exited between poll and read
                time.sleep(0.1)
        finally:
            out, err = p.communicate(timeout=120)
            self.outputs += [out, err]
        self.assertEqual(p.returncode, 0, err)
        self.assertGreaterEqual(samples, 5, "the run ended before it could be observed")
        self.assert_exact_siem(start, end)

    def test_secret_echoed_by_the_server_is_redacted_everywhere(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        self.mock.fault(kind="status", status=400,
                        body="bad request for user mock-principal with password %s" % SECRET)
        r = self.ppflow("run", self.siem_flow(params={"since_time": start, "until": end}))
        self.assertEqual(r.code, 1, r)
        self.assertIn("HTTP 400", r.err)
        self.assertIn("password ***", r.err)
        st = self.state()
        self.assertIn("password ***", st["last_run"]["error"])
        # tearDown checks every output and file (state included) once more.

    def test_text_in_errors_cannot_forge_output_lines(self):
        """Line breaks and terminal escapes in a server's error text or in a
        file name stay inside their message, which stays one line."""
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        self.mock.fault(kind="status", status=400,
                        body="bad\r\nppflow run: done: 0 records\n\x1b[2Jcleared")
        r = self.ppflow("run", self.siem_flow(params={"since_time": start, "until": end}))
        self.assertEqual(r.code, 1, r)
        self.assertFalse([l for l in r.err.splitlines() if l.startswith("ppflow run: done")],
                         r.err)
        self.assertNotIn("\x1b", r.err)
        self.assertEqual(len([l for l in r.err.splitlines() if "HTTP 400" in l]), 1, r.err)
        for cmd in ("run", "validate", "status"):
            r = self.ppflow(cmd, os.path.join(self.dir, "no\nppflow %s: ok\x1b[2J.yaml" % cmd))
            self.assertEqual(r.code, 2, r)
            lines = r.err.splitlines()
            self.assertEqual(len(lines), 1, r.err)
            self.assertIn("no\\nppflow %s: ok\\x1b[2J.yaml" % cmd, lines[0])
            self.assertNotIn("\x1b", r.err)

    def test_state_and_sink_files_are_private_whatever_the_umask(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.siem_flow(params={"since_time": start, "until": end})
        p = subprocess.run([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                           capture_output=True, text=True, timeout=120,
                           preexec_fn=lambda: os.umask(0))
        self.outputs += [p.stdout, p.stderr]
        self.assertEqual(p.returncode, 0, p.stderr)
        for d in ("out", "state"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, d)).st_mode), 0o700, d)
        files = [os.path.join("out", s + ".ndjson") for s in SIEM_STREAMS] + ["state/siem.json"]
        for f in files:
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, f)).st_mode), 0o600, f)

    def test_secret_file_must_be_private(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        sf = self.write("tap.secret", SECRET + "\n")
        flow = self.siem_flow(params={"since_time": start, "until": end}, auth=False)
        text = slurp(flow).replace(
            "source:\n", "source:\n  auth:\n    principal: %s\n    secret_file: %s\n"
            % ("mock-principal", sf), 1)
        with open(flow, "w") as f:
            f.write(text)
        os.chmod(sf, 0o644)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 2, r)
        self.assertIn("tap.secret", r.err)
        os.chmod(sf, 0o600)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(start, end)
        os.unlink(sf)  # the one file that holds the secret on purpose


if __name__ == "__main__":
    unittest.main(verbosity=2)
