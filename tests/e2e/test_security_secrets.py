"""test_security_secrets.py: no secret leaks in part or in an encoded form,
values from the environment in requests and sink options are secrets, and
the header bytes of a response are bounded.

Owns these end-to-end checks (each run looks at everything ppflow printed,
the checkpoint's last_run.error and `ppflow status`, text and JSON):
  - a server error body with a secret just around the first 4 KiB (after
    white space that collapses): neither the secret nor any 6-byte piece of
    it shows (the body used to be cut before redaction);
  - a secret with non-ASCII and special characters echoed JSON-escaped,
    percent-encoded or HTML-escaped is redacted in every form;
  - ${VAR} values in a manual flow's query, URL query and headers, echoed by
    a server as it received them (percent-encoded), as JSON or as HTML, are
    redacted; a ${VAR} in a sink option too (Kafka topic);
  - librdkafka pass-through credentials (sasl.password, a sasl.* value
    librdkafka refuses) are never printed, with or without -v;
  - endless chunked trailers, 10 MB of header lines and one 10 MB header
    line end the run with a clear message and a bounded peak RSS (wait4).
The harness's tearDown still checks the standard test secret everywhere.
"""
import html
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import E2ETestCase, PPFLOW, SOURCE_DIR, Result, hour_floor, iso

BUILD_DIR = os.environ.get("PPFLOW_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
KAFKA_MOCK = os.path.join(BUILD_DIR, "tests", "kafka", "pf_kafka_mock")
KAFKA_PLUGIN = os.path.join(BUILD_DIR, "sinks", "ppflow_sink_kafka.so")

MiB = 1 << 20
# Peak RSS allowed for a run against a hostile server (an unbounded one grows
# to gigabytes; ASan builds need more than plain ones for the same run).
RSS_LIMIT = 160 * MiB


def slurp_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def pieces(secret, n=6):
    """Every N-byte piece of SECRET (and SECRET itself)."""
    out = {secret}
    for i in range(0, max(1, len(secret) - n + 1)):
        out.add(secret[i:i + n])
    return out


def json_forms(s):
    """JSON string encodings of S (without the quotes) a server may send:
    minimal escaping, every non-ASCII character as \\uXXXX (lower- and
    upper-case hex, surrogate pairs), and json-c's escaped slash."""
    minimal = json.dumps(s, ensure_ascii=False)[1:-1]
    lower = json.dumps(s)[1:-1]
    upper = re.sub(r"\\u[0-9a-f]{4}", lambda m: m.group(0)[:2] + m.group(0)[2:].upper(), lower)
    return [minimal, lower, upper, lower.replace("/", "\\/"), minimal.replace("/", "\\/")]


def percent_forms(s):
    """S percent-encoded as in a URL query: space as + or %20, upper- and
    lower-case hex."""
    plus = urllib.parse.quote_plus(s, safe="")
    pct = urllib.parse.quote(s, safe="")
    low = lambda t: re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), t)
    return [plus, low(plus), pct, low(pct)]


def html_forms(s):
    """S HTML-escaped: Python's html.escape, with numeric references for
    non-ASCII, and every character but ASCII letters and digits as a
    decimal or hexadecimal reference."""
    esc = html.escape(s, quote=True)
    plain = lambda c: c.isascii() and c.isalnum()
    return [esc, esc.encode("ascii", "xmlcharrefreplace").decode(),
            "".join(c if plain(c) else "&#%d;" % ord(c) for c in s),
            "".join(c if plain(c) else "&#x%X;" % ord(c) for c in s)]


class SecretChecks(E2ETestCase):
    """What every test here checks after a failed run."""

    def texts_after_run(self, flow, run):
        """RUN's output, the checkpoint and `ppflow status` (text and JSON)."""
        texts = [run.out, run.err]
        state_dir = os.path.join(self.dir, "state")
        for name in os.listdir(state_dir) if os.path.isdir(state_dir) else []:
            with open(os.path.join(state_dir, name), encoding="utf-8", errors="replace") as f:
                texts.append(f.read())
        st = self.ppflow("status", flow)
        texts += [st.out, st.err]
        sj = self.ppflow("status", "--json", flow)
        texts += [sj.out, sj.err]
        return texts, st, sj

    def assert_nowhere(self, texts, forbidden, what):
        for t in texts:
            for f in forbidden:
                self.assertNotIn(f, t, "%s: %r shows in %r" % (what, f, t[-2000:]))


class ServerEchoes(SecretChecks):
    mock_seed = 41

    def window_flow(self, name="siem"):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        return self.siem_flow(name=name, params={"since_time": start, "until": end})

    def test_secret_around_the_first_4_KiB_never_shows_in_part(self):
        secret = "Kx7-Straddle-Q9pW-2fZ"
        env = self.env(PP_SECRET=secret)
        flow = self.window_flow()
        for off in range(4080, 4102, 2):
            # White space collapses to one space in the error: the secret
            # lands right after "denied:" whatever the padding.
            pad = (" " if off % 4 else "\n\t ") * off
            body = ("denied:" + pad)[:off] + secret + " (retry later)"
            self.mock.fault(kind="status", status=400, body=body)
            r = self.ppflow("run", flow, env=env)
            self.assertEqual(r.code, 1, r)
            self.assertIn("HTTP 400", r.err)
            self.assertIn("denied: *** (retry later)", r.err)
            texts, st, sj = self.texts_after_run(flow, r)
            self.assertIn("***", self.state()["last_run"]["error"])
            self.assertIn("***", st.out)
            self.assert_nowhere(texts, pieces(secret), "offset %d" % off)

    def test_encoded_echoes_of_a_secret_are_redacted(self):
        # Non-ASCII (2 bytes and a surrogate pair in JSON), and every
        # character JSON, URLs and HTML escape.
        secret = "Pa/ss\"w&rd<\u00df>'\U0001F4A5 +x-Q7"
        env = self.env(PP_SECRET=secret)
        flow = self.window_flow()
        forms = json_forms(secret) + percent_forms(secret) + html_forms(secret)
        self.assertGreater(len(set(forms)), 10)
        for form in sorted(set(forms)):
            self.mock.fault(kind="status", status=400,
                            body='{"error":"invalid password %s","code":7}' % form)
            r = self.ppflow("run", flow, env=env)
            self.assertEqual(r.code, 1, r)
            self.assertIn('invalid password ***","code":7}', r.err)
            texts, _, _ = self.texts_after_run(flow, r)
            self.assert_nowhere(texts, {form, form[:8]} | pieces(secret), "form %r" % form)


class EchoServer:
    """A loopback HTTP server that answers 400 with what it received: the
    request line and the X-Trace-Id header, as sent (/plain), as JSON
    (/json, ASCII-only escapes) or HTML-escaped (/html)."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                # http.server reads the head as Latin-1: back to the bytes sent.
                hdr = self.headers.get("X-Trace-Id", "").encode("latin-1")
                q = urllib.parse.parse_qs(u.query)
                vals = [q.get("filter", [""])[0], q.get("u", [""])[0], hdr.decode("utf-8")]
                mode = u.path.strip("/")
                if mode == "json":
                    data = json.dumps({"f": vals[0], "u": vals[1], "h": vals[2]}).encode()
                elif mode == "html":
                    data = " ".join(html.escape(v).encode("ascii", "xmlcharrefreplace").decode()
                                    for v in vals).encode()
                else:
                    data = b"got " + self.requestline.encode("latin-1") + b" h=" + hdr
                self.send_response(400)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class EnvValuesInRequests(SecretChecks):
    mock_seed = 42
    QUERY = "qv@l/ue \u00df+&=1"
    HEADER = "hdr-t0ken-\u00df\"q\""
    URLQ = "urlq-S3cretValue"

    def setUp(self):
        super().setUp()
        self.echo = EchoServer()
        self.addCleanup(self.echo.stop)

    def manual_flow(self, mode, schedule=False):
        text = ("name: echo\n"
                "source:\n"
                "  template: manual\n"
                "  url: http://127.0.0.1:%d/%s?fixed=1&u=${PP_URLQ}\n"
                "  query: {filter: \"${PP_QUERY}\", plain: \"${PP_PLAIN}\"}\n"
                "  headers: {X-Trace-Id: \"${PP_HEADER}\"}\n"
                "  records: $[*]\n"
                "  http: {max_attempts: 1}\n"
                "sink:\n"
                "  type: ndjson\n"
                "  path: out/echo.ndjson\n"
                "state:\n"
                "  path: state/echo.json\n") % (self.echo.port, mode)
        if schedule:
            return self.write("flows/echo.yaml", text + "schedule: {every: 1h}\n")
        return self.write("echo.yaml", text)

    def forbidden(self):
        out = set()
        for v in (self.QUERY, self.HEADER, self.URLQ):
            out |= pieces(v)
            for f in json_forms(v) + percent_forms(v) + html_forms(v):
                out |= {f, f[:8]}
        return out

    def test_env_values_in_query_and_headers_echoed_are_redacted(self):
        env = self.env(PP_QUERY=self.QUERY, PP_HEADER=self.HEADER, PP_URLQ=self.URLQ,
                       PP_PLAIN="ok")
        forbidden = self.forbidden()
        for mode in ("plain", "json", "html"):
            flow = self.manual_flow(mode)
            r = self.ppflow("run", flow, env=env)
            self.assertEqual(r.code, 1, r)
            self.assertIn("HTTP 400 from http://127.0.0.1:%d/%s" % (self.echo.port, mode), r.err)
            # The three values were in the text quoted (within its first 300
            # characters) and each became ***.
            self.assertGreaterEqual(r.err.count("***"), 3, r.err)
            texts, _, _ = self.texts_after_run(flow, r)
            self.assert_nowhere(texts, forbidden, "mode %s" % mode)
            # A two-byte value is no secret (3 bytes at least): the rest of
            # the text stays readable.
            if mode == "plain":
                self.assertIn("plain=ok", r.err)

    def test_env_values_are_redacted_in_a_scheduled_run(self):
        """The run's child process keeps the values its flow's load
        registered (under the flow file's path) for its own messages and
        checkpoint, not only the flow's auth secret."""
        env = self.env(PP_QUERY=self.QUERY, PP_HEADER=self.HEADER, PP_URLQ=self.URLQ,
                       PP_PLAIN="ok")
        flow = self.manual_flow("plain", schedule=True)
        log = os.path.join(self.dir, "schedule.log")
        with open(log, "w") as err:
            p = subprocess.Popen([PPFLOW, "schedule", "flows/"], cwd=self.dir, env=env,
                                 stdout=subprocess.DEVNULL, stderr=err)
            try:
                deadline = time.monotonic() + 60
                while "flow echo: run" not in slurp_text(log) or \
                        " failed at " not in slurp_text(log):
                    self.assertLess(time.monotonic(), deadline, slurp_text(log))
                    self.assertIsNone(p.poll(), slurp_text(log))
                    time.sleep(0.1)
            finally:
                p.terminate()
                p.wait(30)
        text = slurp_text(log)
        os.unlink(log)
        self.outputs.append(text)
        self.assertIn("HTTP 400", text)
        self.assertGreaterEqual(text.count("***"), 3, text)
        st = json.loads(slurp_text(os.path.join(self.dir, "state", "echo.json")))
        self.assertGreaterEqual(st["last_run"]["error"].count("***"), 3, st)
        texts, _, _ = self.texts_after_run(flow, Result(1, "", text))
        self.assert_nowhere(texts, self.forbidden(), "scheduled run")


@unittest.skipUnless(os.path.exists(KAFKA_PLUGIN), "Kafka sink not built")
class KafkaCredentials(SecretChecks):
    mock_seed = 43
    PASSWORD = "Kafka-Pw-7Tq9-Zx"

    def kafka_flow(self, brokers, **opts):
        start, end = iso(hour_floor(-2)), iso(hour_floor(-1))
        sink = {"type": "kafka", "brokers": brokers, "topic": "siem.{stream}", "linger": "5ms",
                "preflight_timeout": "3s"}
        sink.update(opts)
        return self.siem_flow(params={"since_time": start, "until": end}, sink=sink)

    @unittest.skipUnless(os.path.exists(KAFKA_MOCK), "pf_kafka_mock not built")
    def test_sasl_password_never_printed_with_or_without_verbose(self):
        from test_kafka import KafkaCluster
        kafka = KafkaCluster(self.dir)
        self.addCleanup(kafka.stop)
        # Written in the flow (not from the environment), so only the sink
        # itself can mask it; librdkafka's debug logs are on.
        flow = self.kafka_flow(kafka.brokers, **{"librdkafka.sasl.username": "ppflow",
                                                 "librdkafka.sasl.password": self.PASSWORD,
                                                 "librdkafka.debug": "all"})
        texts = []
        for args in ((), ("-v",)):
            r = self.ppflow("run", *args, flow, timeout=180)
            texts += [r.out, r.err]
            if args:
                self.assertIn("sasl.password = ***", r.err)
        for name in ("validate", "plan"):
            r = self.ppflow(name, flow)
            texts += [r.out, r.err]
        r = self.ppflow("sinks", "kafka")
        texts += [r.out, r.err]
        self.assert_nowhere(texts, pieces(self.PASSWORD), "sasl.password")

    def test_refused_sasl_value_is_named_not_shown(self):
        # librdkafka refuses the value and quotes it; the sink names the
        # setting only (every sasl.* value is a credential but the user name
        # and the mechanism). No broker is reached.
        flow = self.kafka_flow("127.0.0.1:9", **{
            "librdkafka.sasl.kerberos.min.time.before.relogin": self.PASSWORD})
        r = self.ppflow("run", flow)
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("librdkafka.sasl.kerberos.min.time.before.relogin", r.err)
        self.assertIn("not shown", r.err)
        texts, _, _ = self.texts_after_run(flow, r)
        self.assert_nowhere(texts, pieces(self.PASSWORD), "refused sasl value")

    def test_env_value_in_a_sink_option_is_redacted(self):
        # A ${VAR} in a sink's text option is a secret: the sink's error
        # quotes the topic, the value shows as ***.
        flow = self.kafka_flow("127.0.0.1:9", topic='"t-${PP_KTOPIC}-{stream}"')
        r = self.ppflow("run", flow, env=self.env(PP_KTOPIC="Zq8 Wx!Mk3"))
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("not a valid Kafka topic name", r.err)
        self.assertIn("t-***-", r.err)
        texts, _, _ = self.texts_after_run(flow, r)
        self.assert_nowhere(texts, pieces("Zq8 Wx!Mk3"), "topic from the environment")


class HostileHeaders:
    """A raw loopback server: after the request, one of
       trailers  a chunked 200 whose trailer never ends;
       lines     10 MB of header lines (1 KiB each);
       line      one 10 MB header line.
    It stops sending when the client hangs up (or after 1 GiB / 60 s)."""

    def __init__(self, mode):
        self.mode = mode
        self.sent = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    def answer(self, c):
        try:
            c.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    return
                data += chunk
            deadline = time.monotonic() + 60
            if self.mode == "trailers":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n")
                block = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"t" * 200) for i in range(300))
                while self.sent < (1 << 30) and time.monotonic() < deadline:
                    c.sendall(block)
                    self.sent += len(block)
            elif self.mode == "lines":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                line = b"X-Pad: " + b"h" * 1000 + b"\r\n"
                c.sendall(line * (10 * 1024 * 1024 // len(line)))
                c.sendall(b"Content-Length: 2\r\n\r\n[]")
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Big: ")
                c.sendall(b"b" * (10 * 1024 * 1024))
                c.sendall(b"\r\nContent-Length: 2\r\n\r\n[]")
        except OSError:
            pass  # the client hung up: what a bounded client does
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


class BoundedHeaders(E2ETestCase):
    mock_seed = 44

    def run_against(self, mode):
        """Runs a manual flow against a HostileHeaders server in MODE;
        returns (exit code, stderr, peak RSS in bytes)."""
        srv = HostileHeaders(mode)
        self.addCleanup(srv.stop)
        flow = self.write("h.yaml", (
            "name: h\nsource:\n  template: manual\n  url: http://127.0.0.1:%d/h\n"
            "  records: $[*]\n  http: {max_attempts: 1}\n"
            "sink:\n  type: ndjson\n  path: out/h.ndjson\nstate:\n  path: state/h.json\n")
            % srv.port)
        out_path, err_path = (os.path.join(self.dir, n) for n in ("run.out", "run.err"))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                                 stdout=out, stderr=err)
            deadline = time.monotonic() + 120
            while True:  # wait4: this child's own peak RSS
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    p.wait()
                    raise AssertionError("ppflow did not finish in 120 s")
                time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        with open(err_path, encoding="utf-8", errors="replace") as f:
            err_text = f.read()
        with open(out_path, encoding="utf-8", errors="replace") as f:
            self.outputs += [f.read(), err_text]
        os.unlink(out_path)
        os.unlink(err_path)
        print("\n%s: %s; peak RSS %.1f MiB" % (mode, err_text.strip().splitlines()[-1][:160],
                                                ru.ru_maxrss * 1024 / MiB))
        return p.returncode, err_text, ru.ru_maxrss * 1024, srv

    def test_endless_trailers_end_the_run_cleanly(self):
        code, err, rss, srv = self.run_against("trailers")
        self.assertEqual(code, 1, err)
        self.assertIn("response headers from http://127.0.0.1:%d/h exceed 256 KiB" % srv.port,
                      err)
        self.assertLess(rss, RSS_LIMIT)
        self.assertLess(srv.sent, 256 * MiB, "the client kept reading trailers")

    def test_ten_megabytes_of_header_lines_end_the_run_cleanly(self):
        code, err, rss, srv = self.run_against("lines")
        self.assertEqual(code, 1, err)
        self.assertIn("response headers from http://127.0.0.1:%d/h exceed 256 KiB" % srv.port,
                      err)
        self.assertNotIn("out of memory", err.lower())
        self.assertLess(rss, RSS_LIMIT)

    def test_one_ten_megabyte_header_line_ends_the_run_cleanly(self):
        code, err, rss, srv = self.run_against("line")
        self.assertEqual(code, 1, err)
        self.assertIn("response headers from http://127.0.0.1:%d/h: a header or trailer line is "
                      "longer than 100 KiB" % srv.port, err)
        self.assertNotIn("Out of memory", err)
        self.assertLess(rss, RSS_LIMIT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
