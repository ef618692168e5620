"""test_kafka_preflight.py: a Kafka sink that cannot take records stops the run early.

The ppflow binary runs TAP SIEM flows with `sink: {type: kafka}` against the
mock Proofpoint API. Before its first API call the run opens the sink, whose
preflight asks the cluster for every topic's metadata within
preflight_timeout: brokers that cannot be reached fail the run within
seconds, naming them; a topic the cluster does not have and does not create,
or a refused authorization when producing, stops the run at once without
retries or dead-lettered records. The cluster is librdkafka's mock cluster
(tests/kafka/pf_kafka_mock); "unreachable" is a closed loopback port.
"""
import os
import socket
import time
import unittest

from harness import E2ETestCase, hour_floor, iso
from test_kafka import KAFKA_MOCK, KCAT, PLUGIN, KafkaCluster

# Generous: the preflight gives up after preflight_timeout (5 s by default).
RUN_BOUND_S = 30
TOPIC_AUTHORIZATION_FAILED = 29


def closed_port():
    """A loopback port nothing listens on."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@unittest.skipUnless(os.path.exists(KAFKA_MOCK) and os.path.exists(PLUGIN) and KCAT,
                     "Kafka sink, pf_kafka_mock or kcat not available")
class KafkaPreflight(E2ETestCase):
    mock_seed = 23

    def flow(self, brokers, **sink):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-1))
        opts = {"type": "kafka", "brokers": brokers, "topic": "siem.{stream}", "linger": "5ms"}
        opts.update(sink)
        return self.siem_flow(name="siem", params={"since_time": start, "until": end},
                              sink=opts), start

    def run_timed(self, flow):
        t0 = time.monotonic()
        r = self.ppflow("run", flow, timeout=120)
        return r, time.monotonic() - t0

    def assert_checkpoint_not_moved(self, start):
        path = os.path.join(self.dir, "state", "siem.json")
        if os.path.exists(path):
            self.assertIn(self.state().get("cursor"), (None, start))

    def assert_nothing_dead_lettered(self):
        self.assertFalse(os.path.exists(
            os.path.join(self.dir, "state", "siem.json.deadletter.ndjson")),
            "records were dead-lettered although none was at fault")

    def test_unreachable_brokers_fail_the_run_within_seconds_before_any_api_call(self):
        brokers = "127.0.0.1:%d,127.0.0.1:%d" % (closed_port(), closed_port())
        flow, start = self.flow(brokers, **{"librdkafka.sasl.username": "ppflow",
                                            "librdkafka.sasl.password": "${PP_SECRET}"})
        r, took = self.run_timed(flow)
        self.assertEqual(r.code, 1, r)
        self.assertLess(took, RUN_BOUND_S, "the run kept retrying unreachable brokers: %r" % r)
        self.assertIn(brokers, r.err)
        self.assertIn("preflight_timeout", r.err)
        self.assertLessEqual(len(self.mock.requests()), 1,
                             "the run called the API although the sink could not take records")
        self.assert_checkpoint_not_moved(start)

    def test_unknown_topic_stops_the_run_before_any_api_call(self):
        kafka = KafkaCluster(self.dir)
        self.addCleanup(kafka.stop)
        # Metadata requests that may forbid creating topics, and a producer
        # that forbids it: the cluster answers "unknown topic", as brokers
        # without auto.create.topics.enable do.
        kafka.command("apiversion metadata 0 4")
        flow, start = self.flow(kafka.brokers, preflight_timeout="1s",
                                **{"librdkafka.allow.auto.create.topics": "false"})
        r, took = self.run_timed(flow)
        self.assertEqual(r.code, 1, r)
        self.assertLess(took, RUN_BOUND_S, r)
        self.assertRegex(r.err, r"topic siem\.\w+ \(stream \w+\) does not exist")
        self.assertIn("UNKNOWN_TOPIC_OR_PART", r.err)
        self.assertIn(kafka.brokers, r.err)
        self.assertNotIn("retrying", r.err)
        self.assertEqual(self.mock.requests(), [], "the run called the API with an unusable sink")
        self.assert_nothing_dead_lettered()
        self.assert_checkpoint_not_moved(start)

    def test_topic_authorization_refused_when_producing_stops_the_run(self):
        kafka = KafkaCluster(self.dir)
        self.addCleanup(kafka.stop)
        # The topics exist and can be described, but every produce request is
        # refused: the principal lacks Write.
        kafka.command("err produce %d 100000" % TOPIC_AUTHORIZATION_FAILED)
        flow, start = self.flow(kafka.brokers, delivery_timeout="10s")
        r, took = self.run_timed(flow)
        self.assertEqual(r.code, 1, r)
        self.assertLess(took, RUN_BOUND_S, r)
        self.assertIn("TOPIC_AUTHORIZATION_FAILED", r.err)
        self.assertRegex(r.err, r"topic siem\.\w+")
        self.assertNotIn("retrying", r.err)
        # One window fetched, nothing refetched to isolate records.
        self.assertEqual(len(self.mock.requests()), 1, r)
        self.assert_nothing_dead_lettered()
        self.assert_checkpoint_not_moved(start)


if __name__ == "__main__":
    unittest.main()
