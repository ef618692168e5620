"""test_suggest_decode.py: `ppflow suggest` on files, stdin and flows against
the mock (paths checked with `ppflow jsonpath` and against the mock's own
records), and `ppflow decode` offline and --online against the mock's TAP URL
Decoder: same output both ways, batching, credentials from a flow, the
environment or a secret file, and no secret in anything printed."""
import json
import os
import re
import stat

from harness import E2ETestCase, PRINCIPAL, SECRET, SOURCE_DIR, hour_floor, iso

VECTORS = os.path.join(SOURCE_DIR, "tests", "data", "urldefense", "urldefense-vectors.json")

SAMPLE = {
    "queryEndTime": "2024-05-02T11:00:00Z",
    "messagesDelivered": [
        {"GUID": "g1", "QID": None, "id": "i1", "recipient": ["a@x.example"],
         "threatsInfoMap": [{"threatID": "t1", "classification": "phish"}]},
        {"GUID": "g2", "QID": "q2", "id": "i2", "recipient": ["b@x.example", "c@x.example"],
         "threatsInfoMap": [{"threatID": "t2"}, {"threatID": "t3"}]},
    ],
    "messagesBlocked": [],
    "clicksPermitted": [
        {"GUID": "g1", "id": "c1", "url": "https://a.example/"},
        {"GUID": "g1", "id": "c2", "url": "https://b.example/"},
        {"GUID": "g2", "id": "c3", "url": "https://c.example/"},
    ],
    "odd key": [{"n": 1}],
}


class Suggest(E2ETestCase):
    mock_seed = 5

    def sample_file(self, obj=SAMPLE, name="sample.json"):
        return self.write(name, json.dumps(obj))

    def test_file_text_output(self):
        path = self.sample_file()
        r = self.ppflow("suggest", path)
        self.assertEqual(r.code, 0, r)
        lines = r.out.rstrip("\n").split("\n")
        self.assertRegex(lines[0], r"^\$\.clicksPermitted\[\*\] +3 records  GUID, id, url  "
                                   r"key: \$\.id$")
        self.assertRegex(lines[1], r"^\$\.messagesDelivered\[\*\] +2 records  GUID, QID, id, "
                                   r"recipient, threatsInfoMap  key: \$\.id$")
        self.assertRegex(lines[2], r"^\$\['odd key'\]\[\*\] +1 record   n$")
        self.assertRegex(lines[3], r"^\$\.messagesDelivered\[\*\]\.threatsInfoMap\[\*\] +3 "
                                   r"records  threatID  key: \$\.threatID$")
        self.assertRegex(lines[4], r"^\$\.messagesBlocked\[\*\] +0 records  \(empty in this "
                                   r"sample\)$")
        self.assertRegex(lines[5], r"^\$\.messagesDelivered\[\*\]\.recipient\[\*\] +3 records  "
                                   r"\(strings\)$")
        self.assertRegex(lines[6], r"^\$ +1 record   queryEndTime, messagesDelivered, ")
        self.assertEqual(len(lines), 7)
        r = self.ppflow("suggest", "--limit", "2", path)
        self.assertEqual(len(r.out.rstrip("\n").split("\n")), 3)
        self.assertIn("(5 more; --limit 0 shows all)", r.out)

    def test_json_paths_work_with_the_jsonpath_command(self):
        path = self.sample_file()
        r = self.ppflow("suggest", "--json", path)
        self.assertEqual(r.code, 0, r)
        cands = json.loads(r.out)
        self.assertEqual(cands[0], {"path": "$.clicksPermitted[*]", "records": 3,
                                    "kind": "objects", "fields": ["GUID", "id", "url"],
                                    "key": "$.id"})
        self.assertEqual(cands[5]["elements"], "strings")
        for c in cands:
            q = self.ppflow("jsonpath", c["path"], path)
            self.assertEqual(q.code, 0, q)
            self.assertEqual(len(json.loads(q.out)), c["records"], c["path"])

    def test_stdin_root_array_and_errors(self):
        r = self.ppflow("suggest", "-", input='[{"b": 1, "a": 2}, {"a": 3, "b": 4}]')
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"^\$\[\*\]  2 records  b, a\n$")
        bad = self.write("bad.json", '{"a": [1, 2,, 3]}')
        r = self.ppflow("suggest", bad)
        self.assertEqual(r.code, 1)
        self.assertRegex(r.err, r"bad\.json: the sample is not valid JSON: .* at offset 12")
        self.assertEqual(r.out, "")
        r = self.ppflow("suggest", "missing.json")
        self.assertEqual(r.code, 2)
        self.assertEqual(self.ppflow("suggest").code, 2)
        self.assertEqual(self.ppflow("suggest", "--set", "a=b", bad).code, 2)
        r = self.ppflow("suggest", "--help")
        self.assertEqual(r.code, 0)
        self.assertIn("usage: ppflow suggest", r.out)

    def test_flow_sample_against_the_mock(self):
        # Pin "now" two hours back so the window is complete in the mock.
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        flow = self.siem_flow()
        r = self.ppflow("suggest", "--json", "--window", "1h", "--save", "saved/sample.json",
                        flow, env=self.env(PPFLOW_NOW=end))
        self.assertEqual(r.code, 0, r)
        self.assertIn("sample: GET %s/v2/siem/all, window %s/%s, HTTP 200" %
                      (self.mock.url, start, end), r.err)
        reqs = self.mock.requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["params"]["interval"], ["%s/%s" % (start, end)])
        self.assertEqual(reqs[0]["params"]["format"], ["json"])
        self.assertTrue(reqs[0]["headers"]["Authorization"].startswith("Basic "))
        # Record counts are the mock's own for that window.
        expected = self.mock.expected("/v2/siem/all", start, end)
        full = self.mock.get("/__mock/expected?path=/v2/siem/all&start=%s&end=%s&full=1"
                             % (start, end))
        cands = {c["path"]: c for c in json.loads(r.out)}
        repeated = 0
        for array in ("messagesDelivered", "messagesBlocked", "clicksPermitted", "clicksBlocked"):
            c = cands["$.%s[*]" % array]
            self.assertEqual(c["records"], len(expected[array]), array)
            if c["records"] < 2:
                continue
            recs = full[array]
            guids = [x["GUID"] for x in recs]
            ids = [x.get("id") for x in recs]
            repeated += len(guids) - len(set(guids))
            if array.startswith("clicks"):
                self.assertEqual(c["key"], "$.id", array)
            # A key is suggested only where its values are unique in the sample:
            # never GUID where a message to several recipients repeats it.
            if c["key"] is not None:
                vals = [x.get(c["key"][2:]) for x in recs]
                self.assertNotIn(None, vals, array)
                self.assertEqual(len(set(vals)), len(vals), array)
            if len(set(guids)) < len(guids):
                self.assertNotEqual(c["key"], "$.GUID", array)
            if None in ids:
                self.assertNotEqual(c["key"], "$.id", array)
        self.assertGreater(repeated, 0, "no message with several recipients in the sample")
        self.assertGreater(sum(len(v) for v in expected.values()), 0)
        # Nothing delivered, no checkpoint; the sample is saved privately.
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state")))
        saved = os.path.join(self.dir, "saved", "sample.json")
        self.assertEqual(stat.S_IMODE(os.stat(saved).st_mode), 0o600)
        r2 = self.ppflow("suggest", "--json", saved)
        self.assertEqual(json.loads(r2.out), json.loads(r.out))

    def test_flow_errors(self):
        flow = self.siem_flow()
        env = self.env()
        env.pop("PP_SECRET")
        r = self.ppflow("suggest", flow, env=env)
        self.assertEqual(r.code, 2)
        self.assertIn("PP_SECRET is not set", r.err)
        self.assertEqual(self.mock.requests(), [])
        r = self.ppflow("suggest", flow, env=self.env(PP_SECRET="wrong-" + SECRET))
        self.assertEqual(r.code, 1)
        self.assertIn("HTTP 401", r.err)
        self.assertNotIn("wrong-", r.err)
        self.assertEqual(self.ppflow("suggest", "--window", "soon", flow).code, 2)
        # A syslog flow has no record path to suggest: said plainly, nothing fetched.
        self.mock.reset()
        r = self.ppflow("suggest", "--set", "format=syslog", flow)
        self.assertEqual(r.code, 2)
        self.assertIn("syslog", r.err)
        self.assertEqual(self.mock.requests(), [])


def syslog_text(v):
    """A JSON value as the mock's syslog layout writes it inside quotes."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


class SyslogRecords(E2ETestCase):
    """format=syslog through `ppflow test`: one record per line, whose fields
    are the JSON record's members as text, in the stream of its event kind."""
    mock_seed = 7
    TOKENS = {"messagesDelivered": "MSGDLV", "messagesBlocked": "MSGBLK",
              "clicksPermitted": "CLKPER", "clicksBlocked": "CLKBLK"}

    def test_syslog_records_match_json_records(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-3)).replace(":00:00Z", ":20:00Z")
        flow = self.siem_flow(params={"interval": "%s/%s" % (start, end), "format": "syslog"})
        r = self.ppflow("test", "-n", "-1", flow)
        self.assertEqual(r.code, 0, r)
        got = [json.loads(x) for x in r.out.split("\n") if x]  # not splitlines: U+2028
        full = self.mock.get("/__mock/expected?path=/v2/siem/all&start=%s&end=%s&full=1" %
                             (start, end))
        self.assertEqual(len(got), sum(len(v) for v in full.values()))
        self.assertGreater(len(got), 10)
        # Per event kind, the records come in API order; a message to several
        # recipients gives one record per recipient (same GUID), and messages
        # in the documented-sample style have no `id`.
        by_kind = {}
        for g in got:
            by_kind.setdefault(g["syslog"]["event"], []).append(g)
        self.assertTrue(any(len({r["GUID"] for r in recs}) < len(recs)
                            for a, recs in full.items() if a.startswith("messages")))
        for array, recs in full.items():
            self.assertEqual(len(by_kind.get(self.TOKENS[array], [])), len(recs), array)
            for rec, g in zip(recs, by_kind.get(self.TOKENS[array], [])):
                self.assertEqual((g.get("id"), g["GUID"]), (rec.get("id"), rec["GUID"]))
                self.assertEqual(g["syslog"]["event"], self.TOKENS[array])
                self.assertEqual(g["syslog"]["host"], "tap-api-v2.proofpoint.com")
                self.assertTrue(g["raw"].startswith("<13"))
                self.assertNotIn("raw_base64", g)
                fields = {k: v for k, v in g.items() if k not in ("raw", "syslog")}
                want = {k: syslog_text(v) for k, v in rec.items() if v is not None}
                self.assertEqual(fields, want)
                self.assertEqual(list(fields), list(want), "member order is the line's")


def vectors():
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


class Decode(E2ETestCase):
    mock_seed = 6

    def good_and_bad(self):
        vs = vectors()
        good = [v for v in vs if "decoded" in v][:12]
        bad = [v for v in vs if "error" in v][:2]
        return good, bad

    def test_offline(self):
        good, bad = self.good_and_bad()
        args = [good[0]["encoded"], bad[0]["encoded"], good[1]["encoded"]]
        r = self.ppflow("decode", *args)
        self.assertEqual(r.code, 1)
        self.assertEqual(r.out.split("\n"), [good[0]["decoded"], "", good[1]["decoded"], ""])
        self.assertIn("argument 2", r.err)
        self.assertEqual([l for l in r.err.split("\n") if l][0][:7], "error: ")
        r = self.ppflow("decode", good[0]["encoded"])
        self.assertEqual(r.code, 0)
        r = self.ppflow("decode", "--json", "--", good[2]["encoded"])
        self.assertEqual(r.code, 0)
        [o] = json.loads(r.out)
        self.assertEqual(o["decoded"], good[2]["decoded"])
        self.assertEqual(o["encoded"], good[2]["encoded"])
        self.assertNotIn("error", o)
        # --json: an array of {encoded, decoded} or {encoded, error}, in order.
        r = self.ppflow("decode", "--json", *args)
        self.assertEqual(r.code, 1)
        arr = json.loads(r.out)
        self.assertEqual([x["encoded"] for x in arr], args)
        self.assertEqual([x.get("decoded") for x in arr],
                         [good[0]["decoded"], None, good[1]["decoded"]])
        self.assertIn("error", arr[1])
        r = self.ppflow("decode", "--json", input="")
        self.assertEqual((r.code, json.loads(r.out)), (0, []))

    def test_online_output_equals_offline(self):
        good, bad = self.good_and_bad()
        urls = [v["encoded"] for v in good] + [bad[0]["encoded"]]
        offline = self.ppflow("decode", *urls)
        flow = self.siem_flow()
        online = self.ppflow("decode", "--online", "--flow", flow, *urls)
        self.assertEqual(online.code, 1, online)
        self.assertEqual(online.out, offline.out)
        # The flow allows http:// to the mock (allow_insecure_http): warned.
        self.assertIn("warning: credentials travel in clear (insecure)", online.err)
        self.assertEqual(online.out.split("\n")[:len(good)], [v["decoded"] for v in good])
        self.assertRegex(online.err, r"argument %d \"" % (len(urls) + 3))
        reqs = self.mock.requests("/v2/url/decode")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["method"], "POST")
        self.assertEqual(json.loads(reqs[0]["body"]), {"urls": urls})
        self.assertTrue(reqs[0]["headers"]["Authorization"].startswith("Basic "))

    def test_online_json_and_batches(self):
        good, _ = self.good_and_bad()
        urls = [v["encoded"] for v in good[:5]]
        flow = self.siem_flow()
        stdin = "\n".join(["", urls[0], "   " + urls[1] + "  ", ""] + urls[2:]) + "\n"
        r = self.ppflow("decode", "--online", "--json", "--batch", "2", "--flow", flow,
                        input=stdin)
        self.assertEqual(r.code, 0, r)
        lines = json.loads(r.out)
        self.assertEqual([x["encoded"] for x in lines], urls)
        self.assertEqual([x["decoded"] for x in lines], [v["decoded"] for v in good[:5]])
        for x in lines:
            self.assertNotIn("error", x)
            # Authenticated: the API's message details are kept.
            self.assertRegex(x["recipientEmail"], r"@corp\.example$")
            self.assertIn("messageGuid", x)
            self.assertNotIn("version", x)
        reqs = self.mock.requests("/v2/url/decode")
        self.assertEqual([len(json.loads(q["body"])["urls"]) for q in reqs], [2, 2, 1])

    def test_online_with_environment_or_secret_file_or_none(self):
        good, _ = self.good_and_bad()
        url = good[0]["encoded"]
        env = self.env(PPFLOW_PRINCIPAL=PRINCIPAL, PPFLOW_SECRET=SECRET)
        # Credentials are not sent to an http:// URL unless asked.
        r = self.ppflow("decode", "--online", "--json", "--base-url", self.mock.url, url, env=env)
        self.assertEqual(r.code, 2, r)
        self.assertIn("refused to send credentials to an http:// URL", r.err)
        self.assertIn("--allow-insecure-http", r.err)
        self.assertEqual(self.mock.requests("/v2/url/decode"), [])
        r = self.ppflow("decode", "--online", "--json", "--allow-insecure-http", "--base-url",
                        self.mock.url, url, env=env)
        self.assertEqual(r.code, 0, r)
        self.assertIn("recipientEmail", json.loads(r.out)[0])
        self.assertIn("warning: credentials travel in clear (insecure)", r.err)

        # The secret file lives outside the case directory, which is checked
        # for leaks.
        secret = os.path.join(self.classdir, "tap.secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret, 0o600)
        r = self.ppflow("decode", "--online", "--base-url", self.mock.url, "--principal",
                        PRINCIPAL, "--secret-file", secret, "--allow-insecure-http", url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(r.out, good[0]["decoded"] + "\n")
        os.chmod(secret, 0o644)
        r = self.ppflow("decode", "--online", "--base-url", self.mock.url, "--principal",
                        PRINCIPAL, "--secret-file", secret, url)
        self.assertEqual(r.code, 2)
        self.assertIn("chmod 600", r.err)

        # No credentials: the API still decodes, without the message details.
        r = self.ppflow("decode", "--online", "--json", "--base-url", self.mock.url, url)
        self.assertEqual(r.code, 0, r)
        [o] = json.loads(r.out)
        self.assertEqual(o["decoded"], good[0]["decoded"])
        self.assertNotIn("recipientEmail", o)
        auths = ["Authorization" in q["headers"] for q in self.mock.requests("/v2/url/decode")]
        self.assertEqual(auths, [True, True, False])

    def test_online_failures(self):
        good, _ = self.good_and_bad()
        url = good[0]["encoded"]
        env = self.env(PPFLOW_PRINCIPAL=PRINCIPAL, PPFLOW_SECRET="wrong-" + SECRET)
        r = self.ppflow("decode", "--online", "--allow-insecure-http", "--base-url", self.mock.url,
                        url, env=env)
        self.assertEqual(r.code, 1)
        self.assertIn("HTTP 401", r.err)
        self.assertNotIn("wrong-", r.err + r.out)
        # Secrets are never taken from the command line, nor echoed.
        r = self.ppflow("decode", "--online", "--secret", "cmdline-secret", url)
        self.assertEqual(r.code, 2)
        self.assertIn("not taken from the command line", r.err)
        self.assertNotIn("cmdline-secret", r.err + r.out)
        self.assertEqual(self.ppflow("decode", "--online", "--secret=x1y2z3", url).code, 2)
        r = self.ppflow("decode", "--flow", "x.yaml", url)
        self.assertEqual(r.code, 2)
        self.assertIn("need --online", r.err)
        r = self.ppflow("decode", "--online", "--base-url", self.mock.url, url,
                        env=self.env(PPFLOW_PRINCIPAL=PRINCIPAL))
        self.assertEqual(r.code, 2)
        r = self.ppflow("decode", "--online", "--batch", "0", url)
        self.assertEqual(r.code, 2)
        r = self.ppflow("decode", "--online", "--base-url", "ftp://x", url)
        self.assertEqual(r.code, 2)
        self.assertEqual(len(self.mock.requests("/v2/url/decode")), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
