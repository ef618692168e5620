"""test_late.py: late-arriving SIEM events and gaps.

The mock indexes a share of events minutes after their time (late_pct,
late_delay), as the SIEM API does. Consecutive runs at a controlled "now"
(PPFLOW_NOW for ppflow, the mock's clock for the API) must deliver every event
exactly once: the late ones through the look-back re-sweep, nothing twice.
A message to several recipients is one event per recipient, all with the same
GUID; when one of them is indexed late, keying the re-sweep on GUID would drop
it as already delivered, so the templates identify records by `id`.
A checkpoint older than the API's retention gives a gap record and exit 3.
"""
import datetime as dt
import json
import os
import unittest

from harness import E2ETestCase, SIEM_STREAMS, hour_floor, iso


class Clocked(E2ETestCase):
    def at(self, t):
        """The environment for a run at T, with the mock's clock at T too."""
        self.mock.post("/__mock/config", {"now": iso(t)})
        return self.env(PPFLOW_NOW=iso(t))


class LateArrivals(Clocked):
    mock_seed = 41

    def test_the_resweep_never_reaches_before_the_flow_start(self):
        """A run 10 minutes after since_time, then another: the second
        re-sweeps the look-back, but only from since_time, so it never
        fetches or delivers anything from before the range asked for."""
        start = hour_floor(-6) + dt.timedelta(minutes=20)
        flow = self.siem_flow(params={"since_time": iso(start)})
        r = self.ppflow("run", flow, env=self.at(start + dt.timedelta(minutes=10)))
        self.assertEqual(r.code, 0, r)
        before = len(self.mock.requests("/v2/siem/all"))
        r = self.ppflow("run", flow, env=self.at(start + dt.timedelta(minutes=12)))
        self.assertEqual(r.code, 0, r)
        second = self.mock.requests("/v2/siem/all")[before:]
        self.assertTrue(second, "the second run made no request")
        for req in second:
            interval = req["params"]["interval"][0]
            self.assertGreaterEqual(interval.split("/")[0], iso(start), interval)
        # Exactly what the API holds for [since_time, the last run's time):
        # nothing from before since_time.
        self.assert_exact_siem(iso(start), iso(start + dt.timedelta(minutes=12)))

    def test_the_resweep_of_a_since_seconds_flow_starts_at_its_first_start(self):
        """since_seconds moves with the clock; the checkpoint remembers where
        the first run started, and no re-sweep reaches before it."""
        t = hour_floor(-6) + dt.timedelta(minutes=30)
        flow = self.siem_flow(params={"since_seconds": 600})
        r = self.ppflow("run", flow, env=self.at(t))
        self.assertEqual(r.code, 0, r)
        first = iso(t - dt.timedelta(minutes=10))
        self.assertEqual(self.state()["origin"], first)
        before = len(self.mock.requests("/v2/siem/all"))
        r = self.ppflow("run", flow, env=self.at(t + dt.timedelta(minutes=3)))
        self.assertEqual(r.code, 0, r)
        second = self.mock.requests("/v2/siem/all")[before:]
        self.assertTrue(second, "the second run made no request")
        self.assertEqual(second[0]["params"]["interval"][0].split("/")[0], first)
        self.assert_exact_siem(first, iso(t + dt.timedelta(minutes=3)))

    def test_late_events_are_delivered_exactly_once(self):
        self.mock.post("/__mock/config", {"late_pct": 30, "late_delay": 600, "rate": 6})
        try:
            t0 = hour_floor(-6)
            start = t0 - dt.timedelta(hours=2)
            flow = self.siem_flow(params={"since_time": iso(start)})
            late_total = 0
            # Runs every 15 minutes; events become visible up to 10 minutes late.
            for step in range(5):
                now = t0 + dt.timedelta(minutes=15 * step)
                r = self.ppflow("run", flow, env=self.at(now))
                self.assertEqual(r.code, 0, r)
                if step:
                    self.assertIn("late arrivals)", r.err)
                for line in r.err.splitlines():
                    if "late arrivals)" in line:
                        late_total += int(line.split("(")[1].split(" ")[0])
            # One more run later, bounded at the last run's time: by then every
            # event before it is visible, and the re-sweep catches the rest.
            last = t0 + dt.timedelta(minutes=60)
            self.assertEqual(self.state()["cursor"], iso(last))
            r = self.ppflow("run", "--set", "until=" + iso(last), flow,
                            env=self.at(last + dt.timedelta(minutes=15)))
            self.assertEqual(r.code, 0, r)
            for line in r.err.splitlines():
                if "late arrivals)" in line:
                    late_total += int(line.split("(")[1].split(" ")[0])
            self.assert_exact_siem(iso(start), iso(last))
            guids = [r["GUID"] for s in ("messages_delivered", "messages_blocked")
                     for r in self.read_records(s)]
            self.assertGreater(len(guids) - len(set(guids)), 0, "no message with several recipients")
            self.assertGreater(late_total, 0, "no late arrival happened: the test proves nothing")
            # The ledger in the checkpoint stays bounded by the look-back.
            ledger = self.state()["ledger"]
            ends = [w["end"] for w in ledger["windows"]]
            self.assertTrue(all(e >= (last - dt.timedelta(minutes=30)).timestamp() * 1000
                                for e in ends), ends)
        finally:
            self.mock.post("/__mock/config", {"late_pct": 0, "late_delay": 0, "now": None})

    def test_without_lookback_late_events_are_missed(self):
        """The control: the same schedule with the look-back off loses events."""
        self.mock.post("/__mock/config", {"late_pct": 30, "late_delay": 600, "rate": 6})
        try:
            t0 = hour_floor(-6)
            start = t0 - dt.timedelta(hours=1)
            flow = self.siem_flow(name="nolook", params={"since_time": iso(start)})
            self.write("nolook.yaml",
                       open(flow).read().replace("source:\n", "source:\n  lookback: 0s\n"))
            for step in range(3):
                r = self.ppflow("run", flow, env=self.at(t0 + dt.timedelta(minutes=15 * step)))
                self.assertEqual(r.code, 0, r)
            end = t0 + dt.timedelta(minutes=30)
            expected = self.mock.expected("/v2/siem/all", iso(start), iso(end))
            got = sum(len(self.read_records(s)) for s in SIEM_STREAMS)
            want = sum(len(expected[a]) for a, _ in SIEM_STREAMS.values())
            self.assertLess(got, want, "late events were not late: the control proves nothing")
        finally:
            self.mock.post("/__mock/config", {"late_pct": 0, "late_delay": 0, "now": None})


    def test_guid_keys_lose_late_recipients(self):
        """The control: keyed on GUID (as the templates were), a recipient's event
        indexed after another recipient's of the same message is dropped by the
        re-sweep as already delivered."""
        self.mock.post("/__mock/config", {"late_pct": 30, "late_delay": 600, "rate": 6})
        try:
            t0 = hour_floor(-6)
            start = t0 - dt.timedelta(hours=2)
            flow = self.siem_flow(name="guid", params={"since_time": iso(start)})
            with open(flow) as f:
                text = f.read()
            self.write("guid.yaml", text.replace(
                "source:\n", "source:\n  streams: {messages_delivered: {key: $.GUID}, "
                "messages_blocked: {key: $.GUID}}\n"))
            for step in range(5):
                r = self.ppflow("run", flow, env=self.at(t0 + dt.timedelta(minutes=15 * step)))
                self.assertEqual(r.code, 0, r)
            last = t0 + dt.timedelta(minutes=60)
            r = self.ppflow("run", "--set", "until=" + iso(last), flow,
                            env=self.at(last + dt.timedelta(minutes=15)))
            self.assertEqual(r.code, 0, r)
            expected = self.mock.expected("/v2/siem/all", iso(start), iso(last))
            for stream in ("messages_delivered", "messages_blocked"):
                array = SIEM_STREAMS[stream][0]
                got = len(self.read_records(stream))
                self.assertLessEqual(got, len(expected[array]), stream)
            lost = sum(len(expected[SIEM_STREAMS[s][0]]) - len(self.read_records(s))
                       for s in ("messages_delivered", "messages_blocked"))
            self.assertGreater(lost, 0, "no late recipient was dropped: the control proves nothing")
            # Clicks, keyed by their own id, are all there.
            for stream in ("clicks_permitted", "clicks_blocked"):
                self.assertEqual(sorted(r["id"] for r in self.read_records(stream)),
                                 sorted(expected[SIEM_STREAMS[stream][0]]), stream)
        finally:
            self.mock.post("/__mock/config", {"late_pct": 0, "late_delay": 0, "now": None})


class Gaps(Clocked):
    mock_seed = 42

    def test_outage_longer_than_retention_writes_a_gap_record(self):
        now = hour_floor(0)
        old = now - dt.timedelta(days=8)
        flow = self.siem_flow(params={"since_time": iso(old - dt.timedelta(hours=1))})
        # A checkpoint from eight days ago, as after a long outage.
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        with open(os.path.join(self.dir, "state", "siem.json"), "w") as f:
            json.dump({"version": 1, "flow": "siem", "seq": 3, "template": "tap-siem-all",
                       "cursor": iso(old), "updated": iso(old)}, f)
        env = self.at(now)
        r = self.ppflow("run", flow, env=env)
        self.assertEqual(r.code, 3, r)
        self.assertIn("gap: events from %s to " % iso(old), r.err)
        gaps = self.read_records("gaps")
        self.assertEqual(len(gaps), 1)
        g = gaps[0]
        self.assertEqual((g["type"], g["flow"], g["lost_start"]), ("gap", "siem", iso(old)))
        lost_end = dt.datetime.strptime(g["lost_end"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc)
        self.assertAlmostEqual((now - lost_end).total_seconds(), 7 * 86400 - 60, delta=1)
        # No request asked for data the API no longer holds, and the run went on.
        for q in self.mock.requests("/v2/siem/all"):
            self.assertEqual(q["status"], 200, q)
        self.assertEqual(self.state()["cursor"], iso(now))
        # The next run has no gap.
        r = self.ppflow("run", flow, env=env)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.read_records("gaps")), 1)
        self.mock.post("/__mock/config", {"now": None})


if __name__ == "__main__":
    unittest.main(verbosity=2)
