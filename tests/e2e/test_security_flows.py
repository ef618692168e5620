"""test_security_flows.py: what a flow may do, checked when it loads and when
it runs.

  - Credentials never travel in clear: a flow sending credentials to an
    http:// URL is refused by every command that loads it (FILE:LINE:COL of
    the URL, exit 2, nothing sent), unless `source.allow_insecure_http:
    true`, and then every run warns, also one with nothing to fetch. https,
    and http without credentials, are fine.
  - One output file, one flow: `validate` and `schedule` refuse two flows
    writing the same NDJSON file, naming both; at run time the NDJSON sink
    locks its files, so a second run on the same file fails at once and the
    first one's records stay intact.
"""
import json
import os
import re
import subprocess
import time
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, Record, hour_floor, iso, slurp

INSECURE_WARNING = "credentials travel in clear (insecure)"


class CredentialsInClear(E2ETestCase):
    mock_seed = 41

    def range(self):
        return iso(hour_floor(-3)), iso(hour_floor(-1))

    def test_refused_by_every_command_and_nothing_sent(self):
        start, end = self.range()
        flow = self.siem_flow(params={"since_time": start, "until": end}, insecure_http=False)
        with open(flow, "a") as f:
            f.write("schedule:\n  every: 1h\n")
        want = re.compile(
            r"siem\.yaml:4:13: the flow sends credentials \(auth: basic\) to "
            r"http://127\.0\.0\.1:%d/\.\.\.: refused because they would travel in clear; use "
            r"https, or set source\.allow_insecure_http: true" % self.mock.port)
        for args in (["validate"], ["run"], ["test"], ["plan"], ["schedule"],
                     ["schedule", "--list"]):
            r = self.ppflow(*(args + [flow]), timeout=60)
            self.assertEqual(r.code, 2, "%s: %r" % (args, r))
            self.assertRegex(r.err, want, args)
            self.assertEqual(r.out, "", args)
        self.assertEqual(self.mock.requests("/"), [], "a request was sent")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out")), "the sink was opened")
        # The base URL from the command line is checked the same way.
        https = self.siem_flow(name="tls", base_url="https://127.0.0.1:9",
                               params={"since_time": start, "until": end}, insecure_http=False)
        r = self.ppflow("run", "--set", "source.base_url=http://127.0.0.1:9", https)
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.err, r"--set:1:17: the flow sends credentials \(auth: basic\)")
        self.assertEqual(self.mock.requests("/"), [])

    def test_allowed_with_a_warning_on_every_run(self):
        start, end = self.range()
        # (lookback 0s: the second run then has nothing at all to fetch)
        flow = self.siem_flow(params={"since_time": start, "until": end}, lookback="0s")
        self.assertIn("allow_insecure_http: true", slurp(flow))
        r = self.ppflow("validate", flow)
        self.assertEqual(r.code, 0, r)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertIn(INSECURE_WARNING, r.err)
        self.assertIn("auth: basic over http to http://127.0.0.1:%d" % self.mock.port, r.err)
        self.assert_exact_siem(start, end)
        # Nothing left to fetch: the run still says it.
        n = len(self.mock.requests())
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.mock.requests()), n, "the second run had nothing to fetch")
        self.assertIn(INSECURE_WARNING, r.err)
        self.assertEqual(r.err.count(INSECURE_WARNING), 1, "once per run")
        # `test` and `suggest` send the credentials too: they warn as well.
        for cmd in ("test", "suggest"):
            r = self.ppflow(cmd, flow)
            self.assertEqual(r.code, 0, r)
            self.assertEqual(r.err.count(INSECURE_WARNING), 1, (cmd, r))

    def test_https_and_http_without_credentials_are_fine(self):
        start, end = self.range()
        # https: accepted without the key (validate and plan do not connect).
        flow = self.siem_flow(name="tls", base_url="https://tap.example",
                              params={"since_time": start, "until": end}, insecure_http=False)
        for cmd in ("validate", "plan"):
            r = self.ppflow(cmd, flow)
            self.assertEqual(r.code, 0, r)
            self.assertNotIn(INSECURE_WARNING, r.err)
        # http without credentials: a public endpoint (the mock's URL decoder).
        url = "https://urldefense.com/v3/__https://example.com/a__;!!x!y$"
        doc = {"name": "public", "source": {
            "template": "manual", "url": self.mock.url + "/v2/url/decode", "method": "POST",
            "headers": {"Content-Type": "application/json", "Accept": "application/json"},
            "body": json.dumps({"urls": [url]}), "auth": {"kind": "none"},
            "records": "$.urls[*]"},
            "sink": {"type": "ndjson", "path": "out/public.ndjson"},
            "state": {"path": "state/public.json"}}
        path = self.write("public.yaml", json.dumps(doc, indent=2) + "\n")
        r = self.ppflow("run", path)
        self.assertEqual(r.code, 0, r)
        self.assertNotIn(INSECURE_WARNING, r.err)
        with open(os.path.join(self.dir, "out", "public.ndjson")) as f:
            recs = [json.loads(line) for line in f]
        self.assertEqual([x["encodedUrl"] for x in recs], [url])
        self.assertEqual(len(self.mock.requests("/v2/url/decode")), 1)


class OneOutputFileOneFlow(E2ETestCase):
    mock_seed = 42

    def two_flows(self, sink_a="shared/{stream}.ndjson", sink_b="shared/{stream}.ndjson",
                  params_a=None, params_b=None, directory="flows"):
        os.makedirs(os.path.join(self.dir, directory), exist_ok=True)
        paths = []
        for name, sink, params in (("a", sink_a, params_a), ("b", sink_b, params_b)):
            p = self.siem_flow(name=name, sink_path=sink, params=params or {"since_seconds": 3600})
            with open(p, "a") as f:
                f.write("schedule:\n  every: 1h\n")
            dest = os.path.join(self.dir, directory, name + ".yaml")
            os.rename(p, dest)
            paths.append(os.path.join(directory, name + ".yaml"))
        return paths

    def assert_collision(self, r, a="flows/a.yaml", b="flows/b.yaml"):
        self.assertEqual(r.code, 2, r)
        real = os.path.realpath(self.dir)
        self.assertRegex(
            r.err, r"%s:\d+:\d+: output file %s/shared/\w+\.ndjson is written by two flows: "
                   r"'a' \(%s\) and 'b' \(%s\); one output file, one flow"
                   % (re.escape(b), re.escape(real), re.escape(a), re.escape(b)))
        self.assertEqual(r.err.count("is written by two flows"), 1, "one report per pair")

    def test_validate_and_schedule_refuse_two_flows_on_one_file(self):
        a, b = self.two_flows()
        # Alone, each is fine.
        for p in (a, b):
            r = self.ppflow("validate", p)
            self.assertEqual(r.code, 0, r)
        # Together, as files or as their directory: refused, naming both.
        r = self.ppflow("validate", a, b)
        self.assert_collision(r)
        self.assertEqual(r.out, "", "neither flow is reported ok")
        r = self.ppflow("validate", "flows")
        self.assert_collision(r)
        r = self.ppflow("validate", "flows/")
        self.assert_collision(r, "flows/a.yaml", "flows/b.yaml")
        # The same file through another spelling of its path collides too.
        text = slurp(os.path.join(self.dir, b))
        with open(os.path.join(self.dir, b), "w") as f:
            f.write(text.replace("path: shared/{stream}.ndjson",
                                 "path: %s/x/../shared/{stream}.ndjson" % self.dir))
        self.assert_collision(self.ppflow("validate", a, b))
        for args in (["schedule", "flows"], ["schedule", "--list", "flows"]):
            r = self.ppflow(*args, timeout=60)
            self.assert_collision(r)
        self.assertEqual(self.mock.requests("/"), [], "nothing ran")
        # Their own files: accepted.
        with open(os.path.join(self.dir, b), "w") as f:
            f.write(text.replace("path: shared/{stream}.ndjson", "path: other/{stream}.ndjson"))
        r = self.ppflow("validate", "flows")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out.count(": ok ("), 2)
        r = self.ppflow("schedule", "--list", "flows")
        self.assertEqual(r.code, 0, r)

    def records(self):
        out = {}
        for stream in SIEM_STREAMS:
            path = os.path.join(self.dir, "shared", stream + ".ndjson")
            with open(path, "rb") as f:
                out[stream] = [Record(line.rstrip(b"\n")).identity for line in f]
        return out

    def expected(self, *ranges):
        want = {stream: [] for stream in SIEM_STREAMS}
        for start, end in ranges:
            exp = self.mock.expected("/v2/siem/all", start, end)
            for stream, (array, _) in SIEM_STREAMS.items():
                want[stream] += exp[array]
        return want

    def test_second_run_on_the_same_file_fails_fast_and_keeps_the_first_ones_records(self):
        r1 = (iso(hour_floor(-8)), iso(hour_floor(-7)))
        r2 = (iso(hour_floor(-5)), iso(hour_floor(-2)))
        a, b = self.two_flows(params_a={"since_time": r2[0], "until": r2[1]},
                              params_b={"since_time": r1[0], "until": r1[1]})
        # B delivers its hour: its checkpoint holds the files' lengths.
        r = self.ppflow("run", b)
        self.assertEqual(r.code, 0, r)
        sizes = {s: os.path.getsize(os.path.join(self.dir, "shared", s + ".ndjson"))
                 for s in SIEM_STREAMS}
        # A runs three windows; the second and third answer slowly, so A is
        # still running (sink open) after committing its first window.
        self.mock.fault(kind="slow", path="/v2/siem/all", seconds=0, count=1)
        self.mock.fault(kind="slow", path="/v2/siem/all", seconds=6, count=2)
        pa = subprocess.Popen([PPFLOW, "run", a], cwd=self.dir, env=self.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            while sum(os.path.getsize(os.path.join(self.dir, "shared", s + ".ndjson"))
                      for s in SIEM_STREAMS) <= sum(sizes.values()):
                self.assertIsNone(pa.poll(), "A ended before committing a window")
                self.assertLess(time.time(), deadline, "A committed nothing")
                time.sleep(0.05)
            before = len(self.mock.requests())
            # B again (nothing to fetch, but it would cut the files back to
            # its committed lengths): refused at once, nothing cut.
            t0 = time.monotonic()
            r = self.ppflow("run", b)
            self.assertLess(time.monotonic() - t0, 5, "not fast")
            self.assertIsNone(pa.poll(), "A must still be running for this test to mean anything")
            self.assertNotEqual(r.code, 0, r)
            want = r"output file shared/\w+\.ndjson is in use by another ppflow flow"
            if os.path.exists("/proc/locks"):
                want += r" \(pid %d\)" % pa.pid
            self.assertRegex(r.err, want)
            self.assertEqual(len(self.mock.requests()), before, "B sent nothing")
            out, err = pa.communicate(timeout=90)
        finally:
            if pa.poll() is None:
                pa.kill()
                pa.communicate()
        self.outputs += [out, err]
        self.assertEqual(pa.returncode, 0, err)
        # Both flows' records, each exactly once: B's hour, then A's three.
        got, want = self.records(), self.expected(r1, r2)
        total = 0
        for stream in SIEM_STREAMS:
            self.assertEqual(len(got[stream]), len(set(got[stream])), "duplicates in " + stream)
            self.assertEqual(sorted(got[stream]), sorted(want[stream]), stream)
            total += len(got[stream])
        self.assertGreater(total, 0)


if __name__ == "__main__":
    unittest.main()
