"""test_kafka.py: TAP SIEM flows into Kafka end to end.

The ppflow binary runs flows with `sink: {type: kafka}` (the plugin
<build>/sinks/ppflow_sink_kafka.so) over the tap-siem-all template against
the mock Proofpoint API, producing into librdkafka's mock cluster
(tests/kafka/pf_kafka_mock, a Kafka protocol peer on loopback ports). The
topics are read back with kcat, a real consumer. Faults are injected through
the cluster program's stdin: brokers down, produce request errors.
"""
import os
import shutil
import subprocess
import threading
import unittest

from harness import (E2ETestCase, PPFLOW, SECRET, SIEM_STREAMS, SOURCE_DIR, hour_floor, iso,
                     record_identity)

BUILD_DIR = os.environ.get("PPFLOW_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
KAFKA_MOCK = os.path.join(BUILD_DIR, "tests", "kafka", "pf_kafka_mock")
PLUGIN = os.path.join(BUILD_DIR, "sinks", "ppflow_sink_kafka.so")
KCAT = shutil.which("kcat")


class KafkaCluster:
    """pf_kafka_mock as a child process: its brokers and its fault commands."""

    def __init__(self, workdir, brokers=3):
        self.proc = subprocess.Popen(
            [KAFKA_MOCK, os.path.join(workdir, "kafka.bootstrap"), str(brokers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError("the Kafka mock cluster did not start: %r" % line)
        self.brokers = line.split()[1]

    def command(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError("pf_kafka_mock %s: %s" % (cmd, answer))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def consume(brokers, topic):
    """[(key or None, value)] of every message in TOPIC, read with kcat."""
    p = subprocess.run([KCAT, "-C", "-b", brokers, "-t", topic, "-e", "-q", "-Z",
                        "-f", "%k\\t%s\\n"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("kcat -t %s failed (%d): %s" % (topic, p.returncode, p.stderr))
    out = []
    for line in p.stdout.split("\n")[:-1]:
        key, value = line.split("\t", 1)
        out.append((None if key == "NULL" else key, value))
    return out


@unittest.skipUnless(os.path.exists(KAFKA_MOCK) and os.path.exists(PLUGIN) and KCAT,
                     "Kafka sink, pf_kafka_mock or kcat not available")
class KafkaSink(E2ETestCase):
    mock_seed = 21

    def setUp(self):
        super().setUp()
        self.kafka = KafkaCluster(self.dir)
        self.addCleanup(self.kafka.stop)

    def flow(self, start, end, name="siem", **sink):
        opts = {"type": "kafka", "brokers": self.kafka.brokers, "topic": "siem.{stream}",
                "linger": "5ms"}
        opts.update(sink)
        return self.siem_flow(name=name, params={"since_time": start, "until": end}, sink=opts)

    def topics(self):
        return {stream: consume(self.kafka.brokers, "siem." + stream) for stream in SIEM_STREAMS}

    def assert_delivered(self, start, end, exact):
        """Every record the mock holds for [start, end) is in its stream's topic
        (EXACT: exactly once), keyed by its identity: the value of its key
        field, or "sha256:" and the SHA-256 of the message value when the
        record lacks it."""

        expected = self.mock.expected("/v2/siem/all", start, end)
        total = 0
        got_all = self.topics()
        for stream, (array, field) in SIEM_STREAMS.items():
            got = got_all[stream]
            ids = []
            for key, value in got:
                identity = record_identity(value, field)
                self.assertEqual(key, identity, "message key differs from the record's identity")
                ids.append(identity)
            self.assertEqual(sorted(set(ids)), sorted(expected[array]),
                             "%s differs from the mock's records" % stream)
            if exact:
                self.assertEqual(len(ids), len(set(ids)), "duplicates in " + stream)
            total += len(set(ids))
        self.assertGreater(total, 0, "the range held no records; the test proves nothing")
        return got_all

    def test_sinks_lists_kafka(self):
        r = self.ppflow("sinks", "kafka")
        self.assertEqual(r.code, 0, r)
        for opt in ("brokers", "topic", "compression", "acks", "linger", "batch_size",
                    "delivery_timeout", "preflight_timeout", "librdkafka.*"):
            self.assertIn(opt, r.out)

    def test_run_delivers_every_record_keyed_and_rerun_adds_nothing(self):
        start, end = iso(hour_floor(-4)), iso(hour_floor(-1))
        flow = self.flow(start, end)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        before = self.assert_delivered(start, end, exact=True)
        # Records without their key field (documented-sample style blocked
        # messages) are keyed by the SHA-256 of their bytes.
        self.assertTrue(any(k.startswith("sha256:") for k, _ in before["messages_blocked"]),
                        "no record without id in the range; the fallback key is not tested")
        st = self.state()
        self.assertEqual(st["cursor"], end)
        # A second run has nothing to fetch and sends nothing.
        self.mock.reset()
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual({s: sorted(m) for s, m in self.topics().items()},
                         {s: sorted(m) for s, m in before.items()})

    def test_brokers_down_then_back_is_retried_and_nothing_is_lost(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        flow = self.flow(start, end, delivery_timeout="2s")
        # The first API answer comes 3 s late, so the brokers can go down
        # after the sink opened (its preflight reached them) and before any
        # record is produced.
        self.mock.fault(kind="slow", seconds=3, path="/v2/siem/")
        p = subprocess.Popen([PPFLOW, "run", "--verbose", flow], cwd=self.dir, env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(120, p.kill)
        watchdog.start()
        try:
            # Down once the sink has opened; back once it has answered RETRY.
            err, down = "", False
            for line in p.stderr:
                err += line
                if not down and "sink kafka: producing to" in line:
                    self.kafka.command("down -1")
                    down = True
                elif down and "retrying" in line:
                    self.kafka.command("up -1")
                    break
            out, rest = p.communicate()
            err += rest
        finally:
            watchdog.cancel()
        self.outputs += [out, err]
        self.assertEqual(p.returncode, 0, err)
        # librdkafka times the messages out or, at times with every broker
        # down, reports nothing within delivery_timeout + 5 s: then the commit
        # stops waiting for their reports.
        self.assertRegex(err, r"sink kafka: commit failed: \d+ of \d+ messages "
                              r"(were not delivered; first failure: topic siem\.\w+"
                              r"( partition \d+)?: Local: Message timed out"
                              r"|\(topic siem\.\w+, \.\.\.\) still had no delivery report)")
        self.assert_delivered(start, end, exact=False)
        self.assertEqual(self.state()["cursor"], end)

    def test_produce_errors_are_retried_without_duplicates(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        # NOT_ENOUGH_REPLICAS and NOT_LEADER_FOR_PARTITION on produce requests:
        # nothing is stored, librdkafka retries inside the commit.
        self.kafka.command("err produce 19 3")
        self.kafka.command("err produce 6 2")
        r = self.ppflow("run", self.flow(start, end))
        self.assertEqual(r.code, 0, r)
        self.assert_delivered(start, end, exact=True)

    def test_dropped_connections_lose_nothing(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        # The broker drops the connection on two produce requests; requests in
        # flight on it may have been stored and are sent again. A real broker
        # discards those repeats (idempotent producer); librdkafka's mock
        # cluster only does so for transactional producers, so here the
        # guarantee checked is at least once.
        self.kafka.command("err produce -195 2")
        r = self.ppflow("run", self.flow(start, end))
        self.assertEqual(r.code, 0, r)
        self.assert_delivered(start, end, exact=False)
        self.assertEqual(self.state()["cursor"], end)

    def test_credentials_in_pass_through_settings_never_leak(self):
        start, end = iso(hour_floor(-2)), iso(hour_floor(-1))
        flow = self.flow(start, end, **{"librdkafka.sasl.username": "ppflow",
                                        "librdkafka.sasl.password": "${PP_SECRET}",
                                        "librdkafka.debug": "conf,generic"})
        r = self.ppflow("run", "--verbose", flow)
        self.assertEqual(r.code, 0, r)
        self.assertIn("sasl.password = ***", r.err)
        self.assertNotIn(SECRET, r.out + r.err)
        self.assert_delivered(start, end, exact=True)

    def test_bad_options_fail_cleanly(self):
        start, end = iso(hour_floor(-2)), iso(hour_floor(-1))
        path = self.flow(start, end, compresion="lz4")
        r = self.ppflow("validate", path)
        self.assertEqual(r.code, 2, r)
        self.assertIn("unknown option 'compresion' for sink kafka", r.err)
        self.assertRegex(r.err, r"siem\.yaml:\d+:\d+:")
        r = self.ppflow("run", self.flow(start, end, **{"librdkafka.enable.idempotence": "false"}))
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("always uses the idempotent producer", r.err)
        state = os.path.join(self.dir, "state", "siem.json")
        self.assertTrue(not os.path.exists(state) or self.state()["cursor"] is None)

    def test_sample_flow_validates(self):
        sample = os.path.join(SOURCE_DIR, "samples", "flows", "kafka.yaml")
        env = self.env()
        env.pop("KAFKA_BROKERS", None)
        r = self.ppflow("validate", sample, env=env)
        self.assertEqual(r.code, 0, r)
        self.assertIn("sink kafka", r.out)


if __name__ == "__main__":
    unittest.main()
