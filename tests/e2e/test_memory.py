"""test_memory.py: a run's memory does not grow with the response.

Records reach the sink in batches while the body is still being read, so the
peak resident memory of `ppflow run` is the same for a small and a large
response; one record larger than source.http.max_record fails the run
cleanly. The responses come from the benchmark's generator
(tests/bench/gen_siem.py) and are read through `source.file`, which takes the
same streaming path as an HTTP body; peak memory is measured by
tests/bench/bench_rusage (wait4's ru_maxrss of the ppflow process alone).

PPFLOW_MEMORY_TEST_MB sets the large response's size (default 48).
"""
import json
import os
import subprocess
import sys
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, Record

SRC = os.environ.get("PPFLOW_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("PPFLOW_BUILD_DIR", "")
RUSAGE = os.path.join(BUILD, "tests", "bench", "bench_rusage")
GEN = os.path.join(SRC, "tests", "bench", "gen_siem.py")
LARGE_MB = float(os.environ.get("PPFLOW_MEMORY_TEST_MB", "48"))
SMALL_MB = 12.0
# The target for any input size; the run itself needs far less.
RSS_LIMIT_KIB = 32 * 1024
# How much more a response LARGE_MB / SMALL_MB times larger may cost (both
# fill whole batches; what remains is allocator noise).
GROWTH_LIMIT_KIB = 3 * 1024


class Memory(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("PPFLOW_SANITIZED") == "1":
            raise unittest.SkipTest("sanitizer builds have their own memory overhead")
        if not os.access(RUSAGE, os.X_OK):
            raise unittest.SkipTest("bench_rusage not built")
        super().setUpClass()
        cls.inputs = {}
        for mb in (SMALL_MB, LARGE_MB):
            path = os.path.join(cls.classdir, "siem-%g.json" % mb)
            subprocess.run([sys.executable, GEN, str(mb), "7", "--out", path], check=True)
            cls.inputs[mb] = path

    def file_flow(self, name, data, http=None, sink=()):
        lines = ["name: %s" % name, "source:", "  template: tap-siem-all",
                 "  file: %s" % data, "  params:", "    since_seconds: 3600",
                 "  http:", "    max_body: 1GiB"]
        lines += ["    %s: %s" % kv for kv in (http or {}).items()]
        lines += ["sink:", "  type: ndjson", "  path: out-%s/{stream}.ndjson" % name,
                  "  fsync: false"] + ["  " + line for line in sink]
        lines += ["state:", "  path: state/%s.json" % name]
        return self.write(name + ".yaml", "\n".join(lines) + "\n")

    def measured_run(self, flow):
        """(exit code, peak RSS in KiB, stderr) of `ppflow run FLOW`."""
        report = os.path.join(self.dir, "rusage.txt")
        p = subprocess.run([RUSAGE, report, PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=300)
        self.outputs += [p.stdout, p.stderr]
        self.assertEqual(p.returncode, 0, "bench_rusage failed: " + p.stderr)
        with open(report) as f:
            _, rss, code = f.read().split()
        return int(code), int(rss), p.stderr

    def assert_delivered(self, name, data):
        """Every record of the input file is in the sink once, as its own bytes."""
        with open(data, encoding="utf-8") as f:
            doc = json.load(f)
        for stream, (array, key) in SIEM_STREAMS.items():
            path = os.path.join(self.dir, "out-" + name, stream + ".ndjson")
            got = []
            if os.path.exists(path):
                with open(path, "rb") as f:
                    got = [Record(line.rstrip(b"\n")) for line in f]
            self.assertEqual(len(got), len(doc[array]), stream)
            # In the order of the input, each record as its own bytes.
            self.assertEqual(got, doc[array], stream)
            self.assertEqual(got[:3], doc[array][:3], stream)

    def test_peak_memory_does_not_grow_with_the_response(self):
        rss = {}
        for mb, data in self.inputs.items():
            name = "m%d" % int(mb)
            code, rss[mb], err = self.measured_run(self.file_flow(name, data))
            self.assertEqual(code, 0, err)
            self.assert_delivered(name, data)
        print("peak RSS: %g MB response %d KiB, %g MB response %d KiB"
              % (SMALL_MB, rss[SMALL_MB], LARGE_MB, rss[LARGE_MB]), file=sys.stderr)
        self.assertLess(rss[LARGE_MB], RSS_LIMIT_KIB)
        self.assertLess(rss[LARGE_MB] - rss[SMALL_MB], GROWTH_LIMIT_KIB,
                        "peak memory grew with the response size")

    def test_small_batches_give_the_same_records(self):
        data = self.inputs[SMALL_MB]
        flow = self.file_flow("b", data, sink=("batch_records: 3", "batch_bytes: 1KiB"))
        code, _, err = self.measured_run(flow)
        self.assertEqual(code, 0, err)
        self.assert_delivered("b", data)

    def test_an_oversized_record_fails_cleanly(self):
        big = "x" * 20000
        doc = {"queryEndTime": "2026-11-22T01:00:00Z",
               "messagesDelivered": [{"GUID": "g1", "subject": "small"},
                                     {"GUID": "g2", "subject": big}],
               "messagesBlocked": [], "clicksPermitted": [], "clicksBlocked": []}
        data = self.write("big.json", json.dumps(doc))
        code, _, err = self.measured_run(self.file_flow("o", data, {"max_record": "16KiB"}))
        self.assertEqual(code, 1, err)
        offset = json.dumps(doc).index('{"GUID": "g2"')
        self.assertIn("record of stream messages_delivered is larger than the record limit "
                      "(16384 bytes, source.http.max_record), the record starting at offset %d"
                      % offset, err)
        # Nothing of the failed response was committed.
        out = os.path.join(self.dir, "out-o", "messages_delivered.ndjson")
        self.assertEqual(os.path.getsize(out) if os.path.exists(out) else 0, 0)
        # Raised, the same file goes through.
        code, _, err = self.measured_run(self.file_flow("o2", data, {"max_record": "64KiB"}))
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()
