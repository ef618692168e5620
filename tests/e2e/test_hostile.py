"""test_hostile.py: hostile response bodies at scale, end to end through `ppflow run`.

The mock's `generate` fault answers the second window of a two-window SIEM
backfill with a body built from repeated pieces and sent in chunks as it is
produced (a gigabyte costs the mock no memory): a 1 GiB string inside a
record and outside any record, arrays and objects nested 100,000 deep inside
and outside a record, numbers beyond 64 bits, invalid UTF-8 and other
invalid JSON. Each body goes through the streaming extractor (tap-siem-all)
and through the buffered one (the same template with a filter path, which
json-c and the JSONPath evaluator handle). Every case ends either in a clean
failure (exit 1, a message naming the limit or the byte offset, the
checkpoint still at the end of the first window, the committed records
exact) or in a faithful delivery (every digit and byte as sent); ppflow's
peak RSS is measured (wait4) for the huge cases and must stay far below the
string's size.

PPFLOW_HOSTILE_BYTES sets the huge string's size (default 1 GiB: the record
and body caps stop ppflow long before that, so it costs little).
PPFLOW_HOSTILE_SKIP_BYTES (default 1 GiB too) sets the size of the string
outside any record that one case reads to the end (about 1 s in the plain
build, 2 s with ASan); a smaller value (above 16 MiB, the record limit)
shortens it.
"""
import json
import os
import subprocess
import time
import unittest

from harness import PPFLOW, SOURCE_DIR, hour_floor, iso
from test_faults import FaultCase

MiB = 1 << 20
HUGE = int(os.environ.get("PPFLOW_HOSTILE_BYTES", str(1 << 30)))
SKIP_HUGE = int(os.environ.get("PPFLOW_HOSTILE_SKIP_BYTES", str(1 << 30)))
DEEP = 100_000
# Peak RSS allowed for a run that meets a huge value: the process's fixed
# size (the ASan build's shadow memory and quarantine included) plus the
# caps it was given, never anything near the value's size.
RSS_LIMIT = 192 * MiB

BIG_NUMBERS = ["123456789012345678901234567890", "-98765432109876543210987654321",
               "18446744073709551616", "9223372036854775808", "-9223372036854775809",
               "1.000000000000000000000000000000001", "1e400", "-2.5E-400",
               "12345678901234567890.12345678901234567890e+12"]


def text(s, times=1):
    return {"text": s, "times": times}


def siem_body(records_json, before="", after=""):
    """Pieces of a SIEM body whose messagesDelivered holds RECORDS_JSON
    (pieces), BEFORE and AFTER (pieces) around the array."""
    head = [text('{"queryEndTime":"2026-01-01T00:00:00Z",')] + (before or [])
    return head + [text('"messagesDelivered":[')] + records_json + \
        [text('],"messagesBlocked":[],"clicksPermitted":[],"clicksBlocked":[]')] + \
        (after or []) + [text("}")]


class Hostile(FaultCase):
    mock_seed = 41
    tried = 0

    @classmethod
    def tearDownClass(cls):
        print("\nhostile responses tried: %d" % cls.tried)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        # Each run gets a fresh directory under self.base (own state and
        # sink files); the secret check of tearDown covers all of them.
        self.base = self.dir
        self.output_dirs = [self.base]
        self.runs = 0
        self.start, self.mid, self.end = (iso(hour_floor(-4)), iso(hour_floor(-3)),
                                          iso(hour_floor(-2)))
        # The same endpoint with a filter on one stream: every stream is then
        # extracted from the whole body (json-c), not streamed.
        self.tpl = os.path.join(self.base, "tpl")
        os.makedirs(self.tpl)
        with open(os.path.join(SOURCE_DIR, "templates", "tap-siem-all.yaml")) as f:
            t = f.read()
        t = t.replace("name: tap-siem-all", "name: tap-siem-buffered", 1)
        t = t.replace("path: $.messagesDelivered[*]", "path: $.messagesDelivered[?@.GUID]", 1)
        self.assertIn("tap-siem-buffered", t)
        self.assertIn("[?@.GUID]", t)
        with open(os.path.join(self.tpl, "tap-siem-buffered.yaml"), "w") as f:
            f.write(t)

    def env(self, **extra):
        e = super().env(**extra)
        e["PPFLOW_TEMPLATE_PATH"] = self.tpl
        return e

    def run_hostile(self, pieces, buffered=False, http=None, chunked=True):
        """Runs the two-window backfill with PIECES as every answer to the
        second window (CHUNKED: without announcing its size). Returns (exit
        code, stderr, peak RSS in bytes, [(status, fault)] of the second
        window's requests)."""
        Hostile.tried += 1
        self.runs += 1
        self.dir = os.path.join(self.base, "run%d" % self.runs)
        os.makedirs(self.dir)
        self.mock.reset()
        self.mock.fault(kind="slow", seconds=0, count=1)  # the first window passes
        self.mock.fault(kind="generate", pieces=pieces, count=10, chunked=chunked)
        h = {"max_attempts": 2}
        h.update(http or {})
        flow = self.siem_flow(template="tap-siem-buffered" if buffered else "tap-siem-all",
                              params={"since_time": self.start, "until": self.end}, http=h)
        out_path, err_path = (os.path.join(self.dir, n) for n in ("run.out", "run.err"))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            p = subprocess.Popen([PPFLOW, "run", "-v", flow], cwd=self.dir, env=self.env(),
                                 stdout=out, stderr=err)
            deadline = time.monotonic() + 300
            while True:  # wait4 gives this child's own peak RSS
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    p.wait()
                    raise AssertionError("ppflow did not finish in 300 s")
                time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        with open(err_path, encoding="utf-8", errors="replace") as f:
            err_text = f.read()
        with open(out_path, encoding="utf-8", errors="replace") as f:
            self.outputs += [f.read(), err_text]
        os.unlink(out_path)
        os.unlink(err_path)
        self.assertNotIn("Sanitizer", err_text)
        if buffered:
            self.assertIn("extracted from the whole response", err_text)
        reqs = self.mock.requests("/v2/siem/all")
        return p.returncode, err_text, ru.ru_maxrss * 1024, \
            [(q["status"], q["fault"]) for q in reqs[1:]]

    def assert_refused(self, code, err, w2, *want):
        """A clean failure: exit 1 with the messages WANT, the response not
        retried, the checkpoint at the end of the first window and the
        committed records exact; the next run delivers everything."""
        self.assertEqual(code, 1, err)
        for w in want:
            self.assertIn(w, err)
        self.assertEqual(w2, [(200, "generate")], "a bad body is not retried")
        self.assertEqual(self.assert_checkpoint_exact(self.start), self.mid)
        self.assertEqual(self.state()["last_run"]["outcome"], "failed")
        self.mock.reset()
        r = self.ppflow("run", os.path.join(self.dir, "siem.yaml"))
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(self.start, self.end)

    def delivered_lines(self, stream="messages_delivered"):
        path = os.path.join(self.dir, "out", stream + ".ndjson")
        with open(path, "rb") as f:
            return f.read().split(b"\n")[:-1]

    def both_paths(self, fn):
        """Runs FN(buffered) for the streaming and the buffered extractor."""
        for buffered in (False, True):
            with self.subTest(buffered=buffered):
                fn(buffered)

    # ---- huge strings ----

    def huge_case(self, label, pieces, want, **kw):
        code, err, rss, w2 = self.run_hostile(pieces, **kw)
        print("\n%s: %s; peak RSS %.1f MiB" % (label, err.strip().splitlines()[-2], rss / MiB))
        self.assert_refused(code, err, w2, *want)
        self.assertLess(rss, min(RSS_LIMIT, HUGE // 4))
        got = [r["GUID"] for r in self.read_records("messages_delivered")]
        self.assertNotIn("huge-1", got)

    def test_huge_string_inside_a_record_hits_the_record_limit(self):
        # Streaming, size not announced: the record limit (16 MiB by
        # default) stops the transfer.
        pieces = siem_body([text('{"GUID":"huge-1","subject":"'), text("x", HUGE), text('"}')])
        self.huge_case("huge string in a record, streaming, chunked", pieces,
                       ("record of stream messages_delivered is larger than the record limit "
                        "(16777216 bytes, source.http.max_record), the record starting at "
                        "offset 60",))
        # The limit as the flow sets it.
        self.huge_case("huge string in a record, streaming, chunked, max_record 4MiB", pieces,
                       ("record of stream messages_delivered is larger than the record limit "
                        "(4194304 bytes, source.http.max_record), the record starting at "
                        "offset 60",),
                       http={"max_record": "4MiB"})

    def test_huge_string_inside_a_record_buffered_hits_max_body(self):
        # Buffered, size not announced: the body cap (http.max_body, here
        # 32 MiB) stops it.
        pieces = siem_body([text('{"GUID":"huge-1","subject":"'), text("x", HUGE), text('"}')])
        self.huge_case("huge string in a record, buffered, chunked", pieces,
                       ("exceeds the limit of 33554432 bytes (max_body)",),
                       buffered=True, http={"max_body": "32MiB"})

    def test_announced_huge_body_is_refused_before_reading_it(self):
        # A Content-Length above http.max_body is refused at the headers.
        pieces = siem_body([text('{"GUID":"huge-1","subject":"'), text("x", HUGE), text('"}')])
        for buffered in (False, True):
            with self.subTest(buffered=buffered):
                self.huge_case("huge body announced, %s" % ("buffered" if buffered else
                                                             "streaming"), pieces,
                               ("is %d bytes, above the limit of 268435456 bytes (max_body)"
                                % sum(len(p["text"]) * p["times"] for p in pieces),),
                               buffered=buffered, chunked=False)

    def test_huge_string_outside_records_is_refused_at_max_body(self):
        # Outside any record nothing keeps the string, but the body as a
        # whole is still capped by http.max_body.
        pieces = siem_body([text('{"GUID":"after-junk-1"}')],
                           before=[text('"junk":"'), text("y", HUGE), text('",')])
        for buffered in (False, True):
            with self.subTest(buffered=buffered):
                self.huge_case("huge string outside records, %s, max_body 32MiB"
                               % ("buffered" if buffered else "streaming"), pieces,
                               ("exceeds the limit of 33554432 bytes (max_body)",),
                               buffered=buffered, http={"max_body": "32MiB"})

    def test_huge_string_outside_records_is_skipped_in_bounded_memory(self):
        # With a body cap above it, the streaming extractor reads past a
        # string far above the record limit without keeping it, and delivers
        # the records after it.
        pieces = siem_body([text('{"GUID":"after-junk-1","n":1}')],
                           before=[text('"junk":"'), text("y", SKIP_HUGE), text('",'),
                                   text('"junk2":['), text('"z",', 1000), text("0],")])
        t0 = time.monotonic()
        code, err, rss, w2 = self.run_hostile(pieces, http={"max_body": "4GiB",
                                                            "timeout": "10m"})
        print("\nhuge string (%d MiB) outside records, streaming: exit %d in %.1f s, "
              "peak RSS %.1f MiB" % (SKIP_HUGE // MiB, code, time.monotonic() - t0, rss / MiB))
        self.assertEqual(code, 0, err)
        self.assertEqual(w2, [(200, "generate")])
        self.assertEqual(self.state()["cursor"], self.end)
        self.assertGreater(self.state()["last_run"]["bytes"], SKIP_HUGE, "the body was not read")
        self.assertLess(rss, min(RSS_LIMIT, SKIP_HUGE // 2))
        expected = self.mock.expected("/v2/siem/all", self.start, self.mid)["messagesDelivered"]
        recs = self.read_records("messages_delivered")
        # The mock's records by identity, then the hostile window's one record.
        self.assertEqual(sorted(r.identity for r in recs[:-1]), sorted(expected))
        self.assertEqual(recs[-1]["GUID"], "after-junk-1")

    # ---- deep nesting ----

    def test_nesting_100000_deep_is_refused_inside_and_outside_records(self):
        cases = {
            "array in a record": siem_body([text('{"GUID":"deep-1","x":'), text("[", DEEP),
                                            text("]", DEEP), text("}")]),
            "object in a record": siem_body([text('{"GUID":"deep-2","x":'), text('{"a":', DEEP),
                                             text("1"), text("}", DEEP), text("}")]),
            "array outside records": siem_body([text('{"GUID":"deep-3"}')],
                                               before=[text('"junk":'), text("[", DEEP),
                                                       text("]", DEEP), text(",")]),
            "object outside records": siem_body([text('{"GUID":"deep-4"}')],
                                                after=[text(',"junk":'), text('{"a":', DEEP),
                                                       text("1"), text("}", DEEP)]),
            "unclosed": [text('{"messagesDelivered":[{"GUID":"deep-5","x":'), text("[", DEEP)],
        }

        def one(buffered):
            for name, pieces in cases.items():
                with self.subTest(case=name):
                    code, err, rss, w2 = self.run_hostile(pieces, buffered=buffered)
                    self.assert_refused(code, err, w2, "nested deeper than 1000 levels")
                    self.assertLess(rss, RSS_LIMIT)
                    got = [r["GUID"] for r in self.read_records("messages_delivered")]
                    self.assertFalse([g for g in got if g.startswith("deep-")], got)
        self.both_paths(one)

    # ---- numbers beyond 64 bits, NUL and escapes: delivered as sent ----

    def test_numbers_beyond_64_bits_keep_every_digit(self):
        fields = ",".join('"n%d":%s' % (i, n) for i, n in enumerate(BIG_NUMBERS))
        rec = '{"GUID":"big-1",%s,"arr":[%s],"nul":"a\\u0000b","snow":"\\u2603\\ud83d\\ude00"}' \
            % (fields, ",".join(BIG_NUMBERS))
        keyed = '{"GUID":123456789012345678901234567890123,"n":1}'
        pieces = siem_body([text(rec + "," + keyed)])

        def one(buffered):
            code, err, _, w2 = self.run_hostile(pieces, buffered=buffered)
            self.assertEqual(code, 0, err)
            self.assertEqual(self.state()["cursor"], self.end)
            lines = self.delivered_lines()
            big = [ln for ln in lines if b"big-1" in ln]
            self.assertEqual(len(big), 1, lines[-3:])
            line = big[0].decode("utf-8")
            for i, n in enumerate(BIG_NUMBERS):
                self.assertIn('"n%d":%s' % (i, n), line, "number %s changed" % n)
            self.assertIn("[%s]" % ",".join(BIG_NUMBERS), line)
            r = json.loads(line)
            self.assertEqual(r["nul"], "a\x00b")
            self.assertEqual(r["snow"], "\u2603\U0001F600")
            keyed_line = [ln for ln in lines if b"123456789012345678901234567890123" in ln]
            self.assertEqual(len(keyed_line), 1, "the record with a 107-bit numeric key")
            self.assertIn(b'"GUID":123456789012345678901234567890123', keyed_line[0])
        self.both_paths(one)

    # ---- invalid UTF-8 and invalid JSON: refused with the byte offset ----

    def test_invalid_utf8_in_strings_is_refused(self):
        # Bytes, and which of them (or the byte after them) is the first
        # that cannot be valid UTF-8: the offset the message must name.
        bad = {
            "lone continuation byte": ("80", 0),
            "0xFF": ("ff", 0),
            "overlong slash": ("c0af", 0),
            "overlong NUL": ("c080", 0),
            "encoded surrogate": ("eda080", 1),
            "beyond U+10FFFF": ("f4908080", 1),
            "cut sequence": ("e282", 2),
        }

        def one(buffered):
            for name, (hx, at) in bad.items():
                with self.subTest(case=name):
                    head = '{"messagesDelivered":[{"GUID":"utf-1","subject":"ok '
                    pieces = [text(head), {"hex": hx}, text(' end"}]}')]
                    code, err, _, w2 = self.run_hostile(pieces, buffered=buffered)
                    self.assert_refused(code, err, w2, "UTF-8")
                    # The offset of the bad byte is in the message.
                    self.assertRegex(err, r"error: .*UTF-8.* at offset %d\b"
                                     % (len(head.encode()) + at))
        self.both_paths(one)

    def test_invalid_json_is_refused(self):
        bad = {
            "unpaired surrogate escape": ('{"messagesDelivered":[{"GUID":"j","s":"\\ud800x"}]}',
                                          "unpaired surrogate"),
            "raw control character": ('{"messagesDelivered":[{"GUID":"j","s":"a\tb"}]}',
                                      "not valid JSON"),
            "NaN": ('{"messagesDelivered":[{"GUID":"j","n":NaN}]}', "not valid JSON"),
            "leading zero": ('{"messagesDelivered":[{"GUID":"j","n":012}]}', "leading zero"),
            "single quotes": ("{'messagesDelivered':[]}", "not valid JSON"),
            "trailing comma": ('{"messagesDelivered":[{"GUID":"j"},]}', "not valid JSON"),
            "two documents": ('{"messagesDelivered":[]} {"messagesDelivered":[]}',
                              "data after the JSON value"),
        }

        def one(buffered):
            for name, (body, want) in bad.items():
                with self.subTest(case=name):
                    code, err, _, w2 = self.run_hostile([text(body)], buffered=buffered)
                    self.assert_refused(code, err, w2, want)
                    got = [r["GUID"] for r in self.read_records("messages_delivered")]
                    self.assertNotIn("j", got)
        self.both_paths(one)

    # ---- a stream's array given twice ----

    REPEATED = ('{"messagesDelivered":[{"GUID":"first-1"}],"queryEndTime":"x",'
                '"messagesDelivered":[{"GUID":"second-1"}]}')

    def test_repeated_stream_array_is_refused_streaming(self):
        # The records of the first array cannot be taken back once streamed;
        # the body is refused at the repeated name.
        code, err, _, w2 = self.run_hostile([text(self.REPEATED)])
        self.assert_refused(code, err, w2, 'member name "messagesDelivered" appears twice')
        got = [r["GUID"] for r in self.read_records("messages_delivered")]
        self.assertFalse({"first-1", "second-1"} & set(got), got)

    def test_repeated_stream_array_is_refused_buffered(self):
        # json-c keeps only the last occurrence of a member name, so the
        # buffered path (pf_sx_check_body for a template that cannot stream)
        # refuses any object that repeats a name, at the second occurrence,
        # rather than drop first-1 without a word.
        code, err, _, w2 = self.run_hostile([text(self.REPEATED)], buffered=True)
        print("\nrepeated stream array, buffered: exit %d, messages_delivered ends with %s"
              % (code, [r["GUID"] for r in self.read_records("messages_delivered")][-1:]))
        self.assert_refused(code, err, w2, 'member name "messagesDelivered" appears twice')


if __name__ == "__main__":
    unittest.main(verbosity=2)
