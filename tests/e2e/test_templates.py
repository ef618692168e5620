"""test_templates.py: every bundled template (and manual flows) end to end
against the loopback mock, into the NDJSON sink, with the exact records the
mock holds; the pagination kinds (page/size, offset/limit, cursor, next link,
time windows with pages), their stop rules, the cap on requests per run,
resuming at the next page after a cap or a SIGKILL, and credentials that
never leak."""
import base64
import datetime as dt
import json
import os
import re
import signal
import subprocess
import unittest
import urllib.parse
import urllib.request

from harness import E2ETestCase, PPFLOW, PRINCIPAL, SECRET, SOURCE_DIR, hour_floor, iso, slurp

TRAP_KEY = "mock-trap-key"
ETI_KEY = "mock-eti-key"
ESS_USER, ESS_PASSWORD = "admin@corp.example", "mock-ess-password"
CASB_TOKEN = "mock-casb-token"
GENERIC_KEY = "mock-generic-key"
ALL_SECRETS = [SECRET, TRAP_KEY, ETI_KEY, ESS_PASSWORD, CASB_TOKEN, GENERIC_KEY]


class TemplateCase(E2ETestCase):
    """Flows written as JSON (a YAML subset), credentials from the environment,
    and no mock credential in anything ppflow printed or wrote."""

    def env(self, **extra):
        e = super().env(**extra)
        e.update(TRAP_KEY=TRAP_KEY, ETI_KEY=ETI_KEY, ESS_USER=ESS_USER,
                 ESS_PASSWORD=ESS_PASSWORD, CASB_TOKEN=CASB_TOKEN, GENERIC_KEY=GENERIC_KEY)
        e.update(extra)
        return e

    def tearDown(self):
        super().tearDown()
        for text in self.outputs:
            for s in ALL_SECRETS:
                self.assertNotIn(s, text, "a credential leaked into ppflow's output")
        for root, _, files in os.walk(self.dir):
            for name in files:
                data = slurp(os.path.join(root, name), "rb")
                for s in ALL_SECRETS:
                    self.assertNotIn(s.encode(), data, "a credential leaked into " + name)

    def flow(self, template, name="f", params=None, auth="tap", base_url=None, source=None,
             http=None):
        src = {"template": template}
        if template != "manual":
            src["base_url"] = base_url or self.mock.url
        src["allow_insecure_http"] = True  # the mock is plain http on loopback
        if auth == "tap":
            src["auth"] = {"principal": "${PP_PRINCIPAL}", "secret": "${PP_SECRET}"}
        elif auth:
            src["auth"] = auth
        if params:
            src["params"] = params
        src["http"] = dict({"backoff": "50ms", "backoff_max": "200ms"}, **(http or {}))
        src.update(source or {})
        doc = {"name": name, "source": src,
               "sink": {"type": "ndjson", "path": "out/%s-{stream}.ndjson" % name},
               "state": {"path": "state/%s.json" % name}}
        return self.write(name + ".yaml", json.dumps(doc, indent=2) + "\n")

    def records(self, name, stream):
        path = os.path.join(self.dir, "out", "%s-%s.ndjson" % (name, stream))
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def api(self, path, headers=None, basic=False, method="GET", body=None):
        """The mock's own answer (ground truth), fetched directly."""
        h = dict(headers or {})
        if basic:
            h["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (PRINCIPAL, SECRET)).encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        if data:
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.mock.url + path, headers=h, method=method, data=data)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def run_ok(self, path, *extra):
        r = self.ppflow("run", *extra, path)
        self.assertEqual(r.code, 0, r)
        return r

    def state(self, name="f"):
        return json.loads(slurp(os.path.join(self.dir, "state", name + ".json")))

    def params_of(self, prefix):
        return [q["params"] for q in self.mock.requests(prefix)]


class TapTemplates(TemplateCase):
    mock_seed = 21

    def catalog(self):
        return self.mock.get("/__mock/catalog")

    def test_tap_forensics_threat_with_campaign_forensics(self):
        th = next(t for t in self.catalog()["threats"] if t["campaignID"])
        q = urllib.parse.urlencode({"threatId": th["id"], "includeCampaignForensics": "true"})
        want = self.api("/v2/forensics?" + q, basic=True)["reports"]
        self.mock.reset()
        self.run_ok(self.flow("tap-forensics", params={"threat_id": th["id"],
                                                       "include_campaign_forensics": True}))
        self.assertEqual(self.records("f", "reports"), want)
        self.assertEqual([r["scope"] for r in want], ["THREAT", "CAMPAIGN"])
        (p,) = self.params_of("/v2/forensics")
        self.assertEqual(p, {"threatId": [th["id"]], "includeCampaignForensics": ["true"]})

    def test_tap_forensics_campaign_and_the_exactly_one_rule(self):
        cid = self.catalog()["campaigns"][3]
        want = self.api("/v2/forensics?campaignId=" + cid, basic=True)["reports"]
        self.mock.reset()
        self.run_ok(self.flow("tap-forensics", params={"campaign_id": cid}))
        self.assertEqual(self.records("f", "reports"), want)
        (p,) = self.params_of("/v2/forensics")
        self.assertEqual(p, {"campaignId": [cid]}, "unset parameters are not sent")
        self.mock.reset()
        # Neither, both, and includeCampaignForensics without a threat: refused
        # before any request, at the flow's position.
        for name, params, msg in [
                ("neither", {}, "give exactly one of threat_id, campaign_id"),
                ("both", {"threat_id": "a" * 64, "campaign_id": cid}, "give only one of"),
                ("inc", {"campaign_id": cid, "include_campaign_forensics": True},
                 "parameter 'include_campaign_forensics' needs 'threat_id'")]:
            r = self.ppflow("run", self.flow("tap-forensics", name=name, params=params))
            self.assertEqual(r.code, 2, r)
            self.assertRegex(r.err, r"%s\.yaml:\d+:\d+: %s" % (name, msg))
        self.assertEqual(self.mock.requests("/v2/forensics"), [])

    def test_tap_forensics_unknown_threat_is_a_clean_404(self):
        r = self.ppflow("run", self.flow("tap-forensics", params={"threat_id": "f" * 64}))
        self.assertEqual(r.code, 1, r)
        self.assertIn("404", r.err)
        self.assertEqual(self.records("f", "reports"), [])

    def test_tap_campaign_details_and_members(self):
        cid = next(t["campaignID"] for t in self.catalog()["threats"] if t["campaignID"])
        want = self.api("/v2/campaign/" + cid, basic=True)
        self.mock.reset()
        self.run_ok(self.flow("tap-campaign", params={"campaign_id": cid}))
        self.assertEqual(self.records("f", "campaign"), [want])
        self.assertEqual(self.records("f", "members"), want["campaignMembers"])
        self.assertGreater(len(want["campaignMembers"]), 0)

    def test_tap_threat_summary(self):
        th = self.catalog()["threats"][7]
        want = self.api("/v2/threat/summary/" + th["id"], basic=True)
        self.mock.reset()
        self.run_ok(self.flow("tap-threat-summary", params={"threat_id": th["id"]}))
        self.assertEqual(self.records("f", "threat"), [want])

    def test_tap_people_vap_pages_until_a_short_page(self):
        want = self.mock.get("/__mock/expected?path=/v2/people/vap&window=30")["users"]
        self.assertEqual(len(want), 221)
        self.run_ok(self.flow("tap-people-vap", params={"window": 30, "size": 100}))
        self.assertEqual(self.records("f", "users"), want, "every user once, in API order")
        self.assertEqual([(p["page"], p["size"], p["window"]) for p in self.params_of("/v2/")],
                         [(["1"], ["100"], ["30"]), (["2"], ["100"], ["30"]),
                          (["3"], ["100"], ["30"])])
        self.assertIsNone(self.state()["cursor"], "a finished run keeps no page position")

    def test_tap_people_top_clickers_stops_on_an_empty_page(self):
        want = self.mock.get("/__mock/expected?path=/v2/people/top-clickers&window=14")["users"]
        self.assertEqual(len(want), 64)
        self.run_ok(self.flow("tap-people-top-clickers", params={"window": 14, "size": 16}))
        self.assertEqual(self.records("f", "users"), want)
        self.assertEqual([p["page"][0] for p in self.params_of("/v2/")], ["1", "2", "3", "4", "5"])
        # A completed run of a template without windows starts again at page 1.
        self.mock.reset()
        self.run_ok(self.flow("tap-people-top-clickers", params={"window": 14, "size": 16}))
        self.assertEqual(self.params_of("/v2/")[0]["page"], ["1"])
        self.assertEqual(self.records("f", "users"), want + want)

    def test_tap_campaign_ids_windows_of_a_day_with_pages_and_404(self):
        start = iso(hour_floor(-24 * 3 - 5))
        self.run_ok(self.flow("tap-campaign-ids", params={"since_time": start, "size": 10}))
        end = self.state()["cursor"]
        want = self.mock.get("/__mock/expected?path=/v2/campaign/ids&start=%s&end=%s"
                             % (start, end))["campaigns"]
        got = [c["id"] for c in self.records("f", "campaigns")]
        # One record per (window, campaign): a campaign updated in two windows
        # appears in both, as the API lists it; per window the set is exact.
        reqs = self.mock.requests("/v2/campaign/ids")
        self.assertTrue(any(q["status"] == 404 for q in reqs) or
                        all(len(q) for q in reqs), reqs)
        self.assertEqual(sorted(set(got)), sorted(set(want)))
        intervals = []
        for q in reqs:
            iv = q["params"]["interval"][0]
            if not intervals or intervals[-1][0] != iv:
                intervals.append([iv, []])
            intervals[-1][1].append(int(q["params"]["page"][0]))
        for iv, pages in intervals:
            self.assertEqual(pages, list(range(1, len(pages) + 1)), iv)
            a, b = iv.split("/")
            per = self.mock.get("/__mock/expected?path=/v2/campaign/ids&start=%s&end=%s"
                                % (a, b))["campaigns"]
            self.assertEqual(len(pages), len(per) // 10 + 1, (iv, len(per)))
        self.assertEqual(intervals[0][0].split("/")[0], start)
        for (a, _), (b, _) in zip(intervals, intervals[1:]):
            self.assertEqual(a.split("/")[1], b.split("/")[0], "windows must be consecutive")
        self.assertLessEqual(len(reqs), 50, "at most 50 requests a run (the API's daily budget)")

    def test_max_pages_stops_the_run_and_the_next_run_resumes_at_the_next_page(self):
        want = self.mock.get("/__mock/expected?path=/v2/people/vap&window=90")["users"]
        flow = self.flow("tap-people-vap", params={"window": 90, "size": 40},
                         source={"max_pages": 3})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("stopped after 3 requests", r.err)
        self.assertIn("page 4", r.err)
        self.assertEqual(self.state()["cursor"], {"page": 4})
        self.assertEqual(self.records("f", "users"), want[:120])
        self.mock.reset()
        r = self.ppflow("run", "--set", "source.max_pages=10", flow)
        self.assertEqual(r.code, 0, r)
        self.assertEqual([p["page"][0] for p in self.params_of("/v2/")],
                         ["4", "5", "6", "7", "8", "9"])
        self.assertEqual(self.records("f", "users"), want, "exactly once across the two runs")
        self.assertIsNone(self.state()["cursor"])

    def test_a_window_stopped_between_pages_resumes_at_its_next_page(self):
        start, until = iso(hour_floor(-24 * 2 - 3)), iso(hour_floor(-3))
        flow = self.flow("tap-campaign-ids", params={"since_time": start, "until": until,
                                                     "size": 4}, source={"max_pages": 2})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("stopped after 2 requests", r.err)
        cur = self.state()["cursor"]
        first = self.mock.requests("/v2/campaign/ids")[0]["params"]["interval"][0]
        a, b = first.split("/")
        self.assertEqual(cur, {"time": a, "window_end": b, "page": 3})
        self.assertEqual(len(self.records("f", "campaigns")), 8)
        for max_pages in ("3", "50"):
            self.mock.reset()
            r = self.ppflow("run", "--set", "source.max_pages=" + max_pages, flow)
            if r.code == 0:
                break
            self.assertIn("stopped after 3 requests", r.err)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.state()["cursor"], until)
        # Per window, every campaign exactly once, across the three runs.
        got = [c["id"] for c in self.records("f", "campaigns")]
        want = []
        t = a
        while t < until:
            nxt = min(iso(dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
                          + dt.timedelta(days=1)), until)
            want += self.mock.get("/__mock/expected?path=/v2/campaign/ids&start=%s&end=%s"
                                  % (t, nxt))["campaigns"]
            t = nxt
        self.assertEqual(sorted(got), sorted(want))
        self.assertGreater(len(want), 8)

    def test_test_command_fetches_the_first_page_only(self):
        r = self.ppflow("test", "--limit", "-1", self.flow("tap-people-vap",
                                                           params={"window": 14, "size": 50}))
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(r.out.rstrip("\n").split("\n")), 50)
        self.assertEqual(len(self.mock.requests("/v2/people/")), 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state")))


class SiemIssuesAndSyslog(TemplateCase):
    mock_seed = 22

    def test_tap_siem_issues_json(self):
        start, end = iso(hour_floor(-4)), iso(hour_floor(-2))
        self.run_ok(self.flow("tap-siem-issues", params={"since_time": start, "until": end}))
        want = self.mock.get("/__mock/expected?path=/v2/siem/issues&start=%s&end=%s&full=1"
                             % (start, end))
        self.assertEqual(self.records("f", "messages_delivered"), want["messagesDelivered"])
        self.assertEqual(self.records("f", "clicks_permitted"), want["clicksPermitted"])
        self.assertGreater(len(want["messagesDelivered"]) + len(want["clicksPermitted"]), 0)
        self.assertEqual(len(self.mock.requests("/v2/siem/issues")), 2)

    def test_siem_syslog_lines_become_records_in_their_streams(self):
        start, end = iso(hour_floor(-3)), iso(hour_floor(-2))
        self.run_ok(self.flow("tap-siem-all", params={"since_time": start, "until": end,
                                                      "format": "syslog"}))
        (q,) = self.mock.requests("/v2/siem/all")
        self.assertEqual(q["params"]["format"], ["syslog"])
        lines = self.mock.get("/__mock/expected?path=/v2/siem/all&start=%s&end=%s&format=syslog"
                              % (start, end))["lines"]
        full = self.mock.get("/__mock/expected?path=/v2/siem/all&start=%s&end=%s&full=1"
                             % (start, end))
        self.assertGreater(len(lines), 0)
        got = []
        for stream, array in [("messages_delivered", "messagesDelivered"),
                              ("messages_blocked", "messagesBlocked"),
                              ("clicks_permitted", "clicksPermitted"),
                              ("clicks_blocked", "clicksBlocked")]:
            recs = self.records("f", stream)
            # In API order, each recipient's event of a message (same GUID) with
            # its own id (none in the documented-sample style) and recipient.
            self.assertEqual([(r.get("id"), r["GUID"], r["recipient"]) for r in recs],
                             [(x.get("id"), x["GUID"],
                               x["recipient"] if isinstance(x["recipient"], str)
                               else json.dumps(x["recipient"], ensure_ascii=False,
                                               separators=(",", ":")))
                              for x in full[array]], stream)
            got += [r["raw"] for r in recs]
        self.assertEqual(sorted(got), sorted(lines), "every line once, kept byte for byte")


class TrapTemplates(TemplateCase):
    mock_seed = 23
    trap_auth = {"secret": "${TRAP_KEY}"}

    def test_trap_incidents_in_created_windows(self):
        start, end = iso(hour_floor(-30)), iso(hour_floor(-1))
        self.run_ok(self.flow("trap-incidents", auth=self.trap_auth,
                              params={"since_time": start, "until": end,
                                      "state": ["open", "closed"]}))
        want = self.mock.get("/__mock/expected?path=/api/incidents&start=%s&end=%s&state=open"
                             "&state=closed" % (start, end))["incidents"]
        got = [i["id"] for i in self.records("f", "incidents")]
        self.assertEqual(len(got), len(set(got)))
        self.assertEqual(sorted(got), sorted(want))
        self.assertGreater(len(want), 0)
        reqs = self.mock.requests("/api/incidents")
        self.assertEqual(len(reqs), 5, "29 hours in windows of at most six hours")
        self.assertEqual(reqs[0]["params"]["created_after"], [start])
        self.assertEqual(reqs[-1]["params"]["created_before"], [end])
        self.assertEqual(reqs[0]["params"]["state"], ["open", "closed"])
        self.assertEqual(reqs[0]["headers"]["Authorization"], TRAP_KEY, "the raw key, no scheme")
        self.assertEqual(self.state()["cursor"], end)

    def test_trap_incidents_without_events(self):
        """expand_events: false: each incident lists event_ids and has events null."""
        start, end = iso(hour_floor(-12)), iso(hour_floor(-1))
        self.run_ok(self.flow("trap-incidents", auth=self.trap_auth,
                              params={"since_time": start, "until": end, "expand_events": False}))
        self.assertEqual(self.params_of("/api/incidents")[0]["expand_events"], ["false"])
        got = self.records("f", "incidents")
        want = self.mock.get("/__mock/expected?path=/api/incidents&start=%s&end=%s"
                             % (start, end))["incidents"]
        self.assertEqual(sorted(i["id"] for i in got), sorted(want))
        self.assertGreater(len(got), 0)
        for i in got:
            self.assertIsNone(i["events"])
            self.assertEqual(len(i["event_ids"]), i["event_count"])

    def test_trap_incidents_wrapped_in_result_with_a_stream_override(self):
        self.mock.post("/__mock/config", {"trap_wrap_result": True})
        try:
            start, end = iso(hour_floor(-12)), iso(hour_floor(-1))
            self.run_ok(self.flow("trap-incidents", auth=self.trap_auth,
                                  params={"since_time": start, "until": end},
                                  source={"streams": {"incidents": {"path": "$.result[*]"}}}))
        finally:
            self.mock.post("/__mock/config", {"trap_wrap_result": False})
        want = self.mock.get("/__mock/expected?path=/api/incidents&start=%s&end=%s"
                             % (start, end))["incidents"]
        self.assertEqual(sorted(i["id"] for i in self.records("f", "incidents")), sorted(want))

    def test_trap_needs_its_server(self):
        path = self.flow("trap-incidents", auth=self.trap_auth)
        doc = json.loads(slurp(path))
        del doc["source"]["base_url"]
        self.write("f.yaml", json.dumps(doc))
        r = self.ppflow("validate", "f.yaml")
        self.assertEqual(r.code, 2)
        self.assertIn("template trap-incidents has no fixed server: set source.base_url", r.err)

    def test_trap_list_members_whole_list_then_pages(self):
        want = self.mock.get("/__mock/expected?path=/api/lists/3/members.json")["members"]
        self.assertGreater(len(want), 7)
        self.run_ok(self.flow("trap-list-members", auth=self.trap_auth, params={"list_id": 3}))
        self.assertEqual(self.records("f", "members"), want)
        (q,) = self.mock.requests("/api/lists/")
        self.assertEqual(q["query"], "", "no paging parameters unless page_size is set")
        self.mock.reset()
        self.run_ok(self.flow("trap-list-members", name="g", auth=self.trap_auth,
                              params={"list_id": 3, "page_size": 7}))
        self.assertEqual(self.records("g", "members"), want)
        pages = [p["page"][0] for p in self.params_of("/api/lists/")]
        self.assertEqual(len(pages), len(want) // 7 + 1)


class EtiEssentialsCasb(TemplateCase):
    mock_seed = 24

    def test_eti_domain_resources_go_to_their_streams(self):
        for res, many in [("events", True), ("whois", False), ("reputation", True)]:
            want = self.api("/v1/domains/bad-cdn.example/" + res,
                            headers={"Authorization": ETI_KEY})["response"]
            self.mock.reset()
            name = "eti-" + res
            self.run_ok(self.flow("eti-domain", name=name, auth={"secret": "${ETI_KEY}"},
                                  base_url=self.mock.url + "/v1",
                                  params={"domain": "bad-cdn.example", "resource": res}))
            self.assertEqual(self.records(name, res), want if many else [want])
            files = sorted(os.listdir(os.path.join(self.dir, "out")))
            self.assertNotIn(name + "-ips.ndjson", files, "only the chosen resource's stream")
            (q,) = self.mock.requests("/v1/")
            self.assertEqual(q["path"], "/v1/domains/bad-cdn.example/" + res)
            self.assertEqual(q["headers"]["Authorization"], ETI_KEY)

    def test_essentials_users_and_domains_with_header_auth(self):
        ess_auth = {"principal": "${ESS_USER}", "secret": "${ESS_PASSWORD}"}
        want = self.api("/api/v1/orgs/corp.example/users",
                        headers={"X-User": ESS_USER, "X-Password": ESS_PASSWORD})["users"]
        want_d = self.api("/api/v1/orgs/corp.example/domains",
                          headers={"X-User": ESS_USER, "X-Password": ESS_PASSWORD})["domains"]
        self.mock.reset()
        self.run_ok(self.flow("essentials-users", auth=ess_auth, params={"org": "corp.example"}))
        self.assertEqual(self.records("f", "users"), want)
        self.assertEqual(len(want), 57)
        self.run_ok(self.flow("essentials-domains", name="d", auth=ess_auth,
                              params={"org": "corp.example"}))
        self.assertEqual(self.records("d", "domains"), want_d)
        for q in self.mock.requests("/api/v1/"):
            self.assertEqual(q["headers"]["X-User"], ESS_USER)
            self.assertNotIn("Basic", q["headers"].get("Authorization", ""))
        r = self.ppflow("run", self.flow("essentials-users", name="bad", auth=ess_auth,
                                         params={"org": "corp.example"}),
                        env=self.env(ESS_PASSWORD="wrong-password"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("401", r.err)

    def test_essentials_stack_fills_the_host(self):
        path = self.flow("essentials-users", auth={"principal": "${ESS_USER}",
                                                   "secret": "${ESS_PASSWORD}"},
                         params={"org": "corp.example", "stack": "eu1"})
        doc = json.loads(slurp(path))
        del doc["source"]["base_url"]
        self.write("f.yaml", json.dumps(doc))
        r = self.ppflow("validate", "f.yaml")
        self.assertEqual(r.code, 0, r)
        doc["source"]["params"]["stack"] = "eu1.evil.example/x"
        self.write("f.yaml", json.dumps(doc))
        r = self.ppflow("validate", "f.yaml")
        self.assertEqual(r.code, 2, r)
        self.assertIn("part of the server's host name", r.err)

    def test_casb_alerts_with_limit_and_status(self):
        want = self.api("/api/v1/alerts?limit=5&status=open",
                        headers={"Authorization": "Bearer " + CASB_TOKEN})["alerts"]
        self.mock.reset()
        self.run_ok(self.flow("casb-alerts", auth={"secret": "${CASB_TOKEN}"},
                              params={"limit": 5, "status": "open"}))
        self.assertEqual(self.records("f", "alerts"), want)
        self.assertEqual(len(want), 5)
        (q,) = self.mock.requests("/api/")
        self.assertEqual(q["path"], "/api/v1/alerts")
        self.assertEqual(q["params"], {"limit": ["5"], "status": ["open"]})


class CasbOtherPath(TemplateCase):
    mock_seed = 25
    mock_args = ("--casb-path", "/casb/v2/alert-feed")

    def test_casb_alerts_path_is_a_parameter(self):
        want = self.api("/casb/v2/alert-feed",
                        headers={"Authorization": "Bearer " + CASB_TOKEN})["alerts"]
        self.mock.reset()
        flow = self.flow("casb-alerts", auth={"secret": "${CASB_TOKEN}"})
        r = self.ppflow("run", flow)
        self.assertEqual(r.code, 1, r)
        self.assertIn("404", r.err)
        self.run_ok(flow, "--set", "alerts_path=/casb/v2/alert-feed")
        self.assertEqual(self.records("f", "alerts"), want)


class ManualFlows(TemplateCase):
    mock_seed = 26
    key_auth = {"kind": "headers", "headers": {"X-Api-Key": "{secret}"},
                "secret": "${GENERIC_KEY}"}

    def expected_items(self):
        return self.mock.get("/__mock/expected?path=/generic/v1/items")["items"]

    def manual(self, name="m", url=None, **source):
        src = {"url": url or self.mock.url + "/generic/v1/items", "auth": self.key_auth}
        src.update(source)
        return self.flow("manual", name=name, auth=None, source=src)

    def test_offset_limit(self):
        want = self.expected_items()
        self.run_ok(self.manual(records="$.data[*]", key="$.id",
                                pagination={"kind": "offset", "size": 100}))
        self.assertEqual(self.records("m", "records"), want)
        self.assertEqual([(p["offset"], p["limit"]) for p in self.params_of("/generic/")],
                         [(["0"], ["100"]), (["100"], ["100"]), (["200"], ["100"])])

    def test_cursor_token(self):
        want = self.expected_items()
        self.run_ok(self.manual(url=self.mock.url + "/generic/v1/cursor?limit=60",
                                records="$.items[*]",
                                pagination={"kind": "cursor", "cursor_param": "cursor",
                                            "from": "$.meta.next_cursor"}))
        self.assertEqual(self.records("m", "records"), want)
        ps = self.params_of("/generic/")
        self.assertEqual(len(ps), 4)
        self.assertNotIn("cursor", ps[0])
        self.assertTrue(all("cursor" in p for p in ps[1:]))

    def test_next_links_relative_and_absolute(self):
        want = self.expected_items()
        for name, mode in [("rel", "relative"), ("abs", "absolute")]:
            self.mock.reset()
            self.run_ok(self.manual(name=name,
                                    url=self.mock.url + "/generic/v1/links?per_page=50&links="
                                    + mode,
                                    records="$.results[*]", key="$.id",
                                    pagination={"kind": "next_link", "from": "$.links.next"}))
            self.assertEqual(self.records(name, "records"), want)
            self.assertEqual([p.get("page", ["1"])[0] for p in self.params_of("/generic/")],
                             ["1", "2", "3", "4", "5"])
            for q in self.mock.requests("/generic/"):
                self.assertEqual(q["headers"]["X-Api-Key"], GENERIC_KEY)

    def test_next_link_to_another_server_is_refused(self):
        r = self.ppflow("run", self.manual(url=self.mock.url + "/generic/v1/links?links=foreign",
                                           records="$.results[*]",
                                           pagination={"kind": "next_link",
                                                       "from": "$.links.next"}))
        self.assertEqual(r.code, 1, r)
        self.assertIn("leads to another server", r.err)
        self.assertEqual(len(self.mock.requests("/generic/")), 1)
        self.assertEqual(self.records("m", "records"), [], "the refused page is not delivered")

    def test_post_with_a_body_and_default_records_path(self):
        want = self.api("/generic/v1/search", headers={"X-Api-Key": GENERIC_KEY}, method="POST",
                        body={"tag": "b"})
        self.mock.reset()
        self.run_ok(self.manual(url=self.mock.url + "/generic/v1/search", method="POST",
                                headers={"Content-Type": "application/json"},
                                body='{"tag": "b"}'))
        self.assertEqual(self.records("m", "records"), [want], "records default to $")
        (q,) = self.mock.requests("/generic/")
        self.assertEqual(q["method"], "POST")
        self.assertEqual(json.loads(q["body"]), {"tag": "b"})

    def test_a_server_that_ignores_the_page_parameter_is_caught(self):
        ess = {"kind": "headers", "headers": {"X-User": "{principal}", "X-Password": "{secret}"},
               "principal": "${ESS_USER}", "secret": "${ESS_PASSWORD}"}
        r = self.ppflow("run", self.flow("manual", name="m", auth=None, source={
            "url": self.mock.url + "/api/v1/orgs/corp.example/users", "auth": ess,
            "records": "$.users[*]", "pagination": {"kind": "page", "size": 10}}))
        self.assertEqual(r.code, 1, r)
        self.assertIn("page 2 has the same content as the page before it", r.err)
        self.assertEqual(len(self.records("m", "records")), 57, "page 1 only, once")
        self.assertEqual(self.state("m")["cursor"], {"page": 2})

    def test_manual_time_windows(self):
        start, end = iso(hour_floor(-9)), iso(hour_floor(-1))
        self.run_ok(self.flow("manual", name="m", auth=None, params={"since_time": start,
                                                                    "until": end}, source={
            "url": self.mock.url + "/api/incidents", "auth": {"kind": "headers",
                                                             "headers": {"Authorization":
                                                                         "{secret}"},
                                                             "secret": "${TRAP_KEY}"},
            "records": "$[*]", "key": "$.id",
            "pagination": {"kind": "time_window", "max": "4h",
                           "query": {"created_after": "{window_start}",
                                     "created_before": "{window_end}"}}}))
        want = self.mock.get("/__mock/expected?path=/api/incidents&start=%s&end=%s"
                             % (start, end))["incidents"]
        self.assertEqual(sorted(i["id"] for i in self.records("m", "records")), sorted(want))
        self.assertEqual(len(self.mock.requests("/api/incidents")), 2)

    def test_sigkill_between_pages_then_resume_is_exact(self):
        want = self.expected_items()
        flow = self.manual(records="$.data[*]", key="$.id",
                           pagination={"kind": "offset", "size": 10})
        kills = 0
        for attempt in range(10):
            self.mock.fault(kind="slow", seconds=0.4, count=40, path="/generic/")
            p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = p.communicate(timeout=1.0 + 0.35 * attempt)
                self.outputs += [out, err]
                self.assertEqual(p.returncode, 0, err)
                break
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                out, err = p.communicate()
                self.outputs += [out, err]
                kills += 1
            self.mock.reset()
            st = self.state("m")
            if st.get("cursor"):
                self.assertEqual(len(self.records("m", "records")), st["cursor"]["offset"],
                                 "the sink holds exactly the pages before the checkpoint")
        else:
            self.mock.reset()
            self.run_ok(flow)
        self.assertGreaterEqual(kills, 2, "runs were not killed; the test proves nothing")
        self.assertEqual(self.records("m", "records"), want, "exactly once across the kills")


class SamplesAndDocs(TemplateCase):
    """Every bundled template has an example flow that `ppflow validate` accepts
    and a docs page that lists each of its parameters."""
    mock_seed = 28
    SAMPLE_ENV = dict(TAP_PRINCIPAL="p", TAP_SECRET="sample-secret", CASB_TOKEN="sample-tok",
                      TRAP_API_KEY="sample-key", ETI_API_KEY="sample-eti", ESS_USER="u@x",
                      ESS_PASSWORD="sample-pw", PTP_TOKEN="sample-ptp")

    def templates(self):
        tdir = os.path.join(SOURCE_DIR, "templates")
        return sorted(f[:-5] for f in os.listdir(tdir) if f.endswith(".yaml"))

    def test_every_template_is_listed_with_a_sample_that_validates(self):
        names = self.templates()
        self.assertGreaterEqual(len(names), 19)
        r = self.ppflow("templates")
        self.assertEqual(r.code, 0, r)
        for n in names:
            self.assertRegex(r.out, r"(?m)^%s\s+\S" % re.escape(n))
        for n in names:
            sample = os.path.join(SOURCE_DIR, "samples", "flows", n + ".yaml")
            self.assertTrue(os.path.exists(sample), "no sample flow for " + n)
            r = self.ppflow("validate", sample, env=self.env(**self.SAMPLE_ENV))
            self.assertEqual(r.code, 0, r)
            self.assertIn("template %s," % n, r.out)

    IDENTITIES = {
        # A message sent to several recipients is one event per recipient with one
        # GUID; `id` tells them apart, and the records without it are hashed.
        "tap-siem-all": {"messages_delivered": "$.id | sha256", "messages_blocked": "$.id | sha256",
                         "clicks_permitted": "$.id | sha256", "clicks_blocked": "$.id | sha256"},
        "tap-siem-issues": {"messages_delivered": "$.id | sha256",
                            "clicks_permitted": "$.id | sha256"},
        "tap-siem-messages-delivered": {"messages_delivered": "$.id | sha256"},
        "tap-siem-messages-blocked": {"messages_blocked": "$.id | sha256"},
        "tap-siem-clicks-permitted": {"clicks_permitted": "$.id | sha256"},
        "tap-siem-clicks-blocked": {"clicks_blocked": "$.id | sha256"},
        "tap-forensics": {"reports": "$.id | sha256"},
        # A campaign updated in several windows is listed in each: one record per update.
        "tap-campaign-ids": {"campaigns": "sha256"},
        "tap-campaign": {"campaign": "$.id | sha256", "members": "$.id | sha256"},
        "tap-people-vap": {"users": "$.identity.guid | sha256"},
        "tap-people-top-clickers": {"users": "$.identity.guid | sha256"},
        "tap-threat-summary": {"threat": "$.id | sha256"},
        "trap-incidents": {"incidents": "$.id | sha256"},
        "trap-list-members": {"members": "$.id | $.host.host | sha256"},
        "casb-alerts": {"alerts": "$.id | sha256"},
        "essentials-users": {"users": "$.primary_email | sha256"},
        "essentials-domains": {"domains": "$.name | sha256"},
        "eti-domain": {"reputation": "$.category | sha256", "urls": "$ | sha256",
                       "samples": "$.source | sha256", "ips": "$.ip | sha256", "events": "sha256",
                       "nameservers": "$.server | sha256", "whois": "$.domain | sha256",
                       "geoloc": "$.ip | sha256"},
    }

    def test_record_identity_of_each_stream(self):
        """What identifies a record of each bundled stream (docs/templates/*.md,
        "Record identity")."""
        self.assertEqual(sorted(self.IDENTITIES), sorted(n for n in self.templates() if n != "manual"))
        for name, streams in self.IDENTITIES.items():
            r = self.ppflow("templates", name)
            self.assertEqual(r.code, 0, r)
            got = dict(re.findall(r"(?m)^  (\w+) +\S+  identity (.+)$", r.out))
            self.assertEqual(got, streams, name)

    def test_every_template_has_a_docs_page_listing_its_parameters(self):
        ddir = os.path.join(SOURCE_DIR, "docs", "templates")
        pages = {f: slurp(os.path.join(ddir, f)) for f in os.listdir(ddir) if f.endswith(".md")}
        for n in self.templates():
            page = [t for t in pages.values()
                    if re.match(r"# [^\n]*`%s`" % re.escape(n), t)]  # the page's title
            self.assertEqual(len(page), 1, "docs page of " + n)
            r = self.ppflow("templates", n)
            self.assertEqual(r.code, 0, r)
            params = re.findall(r"(?m)^  (\w+)\s+\w+\s+(?:required|optional)", r.out)
            for p in params:
                self.assertIn("`%s`" % p, page[0], "%s: parameter %s is not documented" % (n, p))


class ManualValidation(TemplateCase):
    mock_seed = 27

    def test_manual_problems_are_reported_at_their_positions(self):
        text = ("name: m\n"
                "source:\n"
                "  template: manual\n"
                "  url: ftp://example.com/x\n"
                "  method: FETCH\n"
                "  records: $.data[\n"
                "  pagination:\n"
                "    kind: cursor\n"
                "    cursor_param: c\n"
                "sink:\n"
                "  type: ndjson\n"
                "  path: out/m.ndjson\n"
                "state:\n"
                "  path: state/m.json\n")
        self.write("m.yaml", text)
        r = self.ppflow("validate", "m.yaml")
        self.assertEqual(r.code, 2, r)
        for pat in [r"m\.yaml:4:8: source\.url must start with https:// or http://",
                    r"m\.yaml:5:11: method must be GET, POST",
                    r"m\.yaml:6:12: invalid JSONPath",
                    r"m\.yaml:8:5: cursor pagination needs from"]:
            self.assertRegex(r.err, pat)


if __name__ == "__main__":
    unittest.main(verbosity=2)
