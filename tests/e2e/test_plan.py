"""test_plan.py: call budgets. `ppflow plan` counts the calls a run will make
before making any, the runs record every call in the shared 24-hour ledger,
and a run stops at the budget instead of running into 429s."""
import datetime as dt
import os
import re
import unittest

from harness import E2ETestCase, SOURCE_DIR, hour_floor, iso, slurp


class Plan(E2ETestCase):
    mock_seed = 61

    def small_budget_template(self, budget):
        text = slurp(os.path.join(SOURCE_DIR, "templates", "tap-siem-all.yaml"))
        text = re.sub(r"budget: \d+", "budget: %d" % budget, text)
        text = text.replace("name: tap-siem-all", "name: siem-small")
        return self.write("siem-small.yaml", text)

    def plan(self, flow, *extra, code=0):
        r = self.ppflow("plan", *extra, flow)
        self.assertEqual(r.code, code, r)
        return r.out

    def test_plan_matches_the_calls_then_made(self):
        start, end = hour_floor(-8), hour_floor(-2)
        flow = self.siem_flow(params={"since_time": iso(start), "until": iso(end)})
        out = self.plan(flow)
        self.assertIn("windows:  6\n", out)
        self.assertIn("calls:    6\n", out)
        self.assertIn("budget:   tap-siem: 0 of 1800 calls used in the last 24 hours; 1800 left",
                      out)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.mock.requests("/v2/siem/")), 6)
        # The ledger counted them; the next run re-sweeps the look-back only.
        out = self.plan(flow, "--set", "until=" + iso(end + dt.timedelta(hours=1)))
        self.assertIn("calls:    2\n", out)  # the look-back window, then one new hour
        self.assertIn("with a 30 min look-back", out)
        self.assertIn("tap-siem: 6 of 1800 calls used", out)
        # The ledger holds no credential.
        ledger = slurp(os.path.join(self.dir, "state", "ppflow-quota.json"))
        self.assertNotIn("mock-principal", ledger)

    def test_run_stops_at_the_budget_and_resumes_later(self):
        tmpl = self.small_budget_template(4)
        start, end = hour_floor(-8), hour_floor(-2)
        flow = self.siem_flow(template=tmpl, params={"since_time": iso(start), "until": iso(end)})
        out = self.plan(flow, code=1)
        self.assertIn("this run needs 6 calls but only 4 are left", out)
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("the call budget 'tap-siem' is used up: 4 calls in the last 24 hours", r.err)
        self.assertEqual(len(self.mock.requests("/v2/siem/")), 4, "no call beyond the budget")
        self.assertEqual(self.state()["cursor"], iso(start + dt.timedelta(hours=4)))
        # 24 hours later the budget is free again and the run completes exactly.
        later = self.env(PPFLOW_NOW=iso(dt.datetime.now(dt.timezone.utc) +
                                        dt.timedelta(hours=24, minutes=1)))
        self.mock.post("/__mock/config", {"now": later["PPFLOW_NOW"]})
        try:
            r = self.ppflow("run", "--set", "since_time=" + iso(start), flow, env=later)
        finally:
            self.mock.post("/__mock/config", {"now": None})
        self.assertEqual(r.code, 0, r)
        self.assert_exact_siem(iso(start), iso(end))


if __name__ == "__main__":
    unittest.main(verbosity=2)
