"""test_cli.py: the command-line contract: help and version, templates,
validate (FILE:LINE:COL errors, exit 2), the quickstart flow, status."""
import glob
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import E2ETestCase, PPFLOW, SOURCE_DIR, slurp

COMMANDS = ["run", "test", "validate", "templates", "sinks", "suggest", "decode", "jsonpath",
            "schedule", "status", "plan"]
SIEM_TEMPLATES = ["tap-siem-all", "tap-siem-messages-delivered", "tap-siem-messages-blocked",
                  "tap-siem-clicks-permitted", "tap-siem-clicks-blocked"]
BAD_FLOWS = os.path.join(SOURCE_DIR, "tests", "data", "flows", "bad")


class Cli(E2ETestCase):
    def test_version_and_help(self):
        r = self.ppflow("--version")
        self.assertEqual(r.code, 0)
        self.assertRegex(r.out, r"^ppflow \d+\.\d+\.\d+\n$")
        r = self.ppflow("--help")
        self.assertEqual(r.code, 0)
        for c in COMMANDS:
            self.assertRegex(r.out, r"\n  %s\s" % c)
        for c in COMMANDS:
            r = self.ppflow(c, "--help")
            self.assertEqual(r.code, 0, "%s --help: %r" % (c, r))
            self.assertIn("usage: ppflow %s" % c, r.out)
        r = self.ppflow("frobnicate")
        self.assertEqual(r.code, 2)
        self.assertIn("unknown command", r.err)
        self.assertEqual(self.ppflow().code, 2)

    def test_templates_list_and_show(self):
        r = self.ppflow("templates")
        self.assertEqual(r.code, 0, r)
        for t in SIEM_TEMPLATES:
            self.assertRegex(r.out, r"(?m)^%s\s+\S" % re.escape(t))
        r = self.ppflow("templates", "tap-siem-all")
        self.assertEqual(r.code, 0, r)
        for p in ["since_time", "since_seconds", "interval", "until", "format", "threat_type",
                  "threat_status"]:
            self.assertRegex(r.out, r"(?m)^  %s\s+\w+\s+(optional|required)" % p)
        self.assertIn("[30..604800]", r.out)
        for s in ["messages_delivered", "messages_blocked", "clicks_permitted", "clicks_blocked"]:
            self.assertIn(s, r.out)
        r = self.ppflow("templates", "no-such-template")
        self.assertEqual(r.code, 2)
        self.assertIn("no template named", r.err)

    def test_user_template_directory(self):
        tdir = os.path.join(self.dir, "mytemplates")
        os.makedirs(tdir)
        src = slurp(os.path.join(SOURCE_DIR, "templates", "tap-siem-all.yaml"))
        with open(os.path.join(tdir, "my-siem.yaml"), "w") as f:
            f.write(src.replace("name: tap-siem-all", "name: my-siem"))
        r = self.ppflow("templates", env=self.env(PPFLOW_TEMPLATE_PATH=tdir))
        self.assertIn("my-siem", r.out)
        self.assertIn("tap-siem-all", r.out, "bundled templates are still listed")

    def test_sinks(self):
        r = self.ppflow("sinks")
        self.assertEqual(r.code, 0)
        self.assertRegex(r.out, r"(?m)^ndjson\s")
        self.assertRegex(r.out, r"(?m)^  path\s+string\s+required")
        self.assertEqual(self.ppflow("sinks", "nope").code, 2)

    def test_bad_flows_report_file_line_col_and_exit_2(self):
        files = sorted(glob.glob(os.path.join(BAD_FLOWS, "*.yaml")))
        self.assertGreaterEqual(len(files), 40)
        for path in files:
            name = os.path.basename(path)
            shutil.copy(path, os.path.join(self.dir, name))
            expect = slurp(path).split("\n", 1)[0]
            m = re.match(r"# expect: (.*)$", expect.rstrip("\n"))
            self.assertIsNotNone(m, "%s has no '# expect:' line" % name)
            r = self.ppflow("validate", name)
            self.assertEqual(r.code, 2, "%s: %r" % (name, r))
            self.assertIn("%s:%s" % (name, m.group(1)), r.err, name)
            self.assertEqual(r.out, "")

    def test_missing_variable_is_named_never_empty(self):
        flow = self.siem_flow()
        env = self.env()
        env.pop("PP_SECRET")
        r = self.ppflow("validate", flow, env=env)
        self.assertEqual(r.code, 2)
        self.assertRegex(r.err, r"siem\.yaml:\d+:\d+: auth\.secret: environment variable "
                                r"PP_SECRET is not set")
        r = self.ppflow("run", flow, env=env)
        self.assertEqual(r.code, 2)
        # Set but empty: the same refusal, not an empty password.
        env["PP_SECRET"] = ""
        for cmd in ("validate", "run"):
            r = self.ppflow(cmd, flow, env=env)
            self.assertEqual(r.code, 2, r)
            self.assertRegex(r.err, r"siem\.yaml:\d+:\d+: auth\.secret is empty")
        self.assertEqual(self.mock.requests(), [], "no request without credentials")

    def test_validate_reports_every_problem(self):
        path = self.write("many.yaml", "name: f\nsource:\n  template: tap-siem-all\n"
                          "  file: x.json\n  params:\n    since_seconds: 1\n"
                          "    format: xml\nsink:\n  type: ndjson\n  colour: red\n")
        r = self.ppflow("validate", path)
        self.assertEqual(r.code, 2)
        for pat in [r"many\.yaml:6:20: .*since_seconds", r"many\.yaml:7:13: .*format",
                    r"many\.yaml:10:3: unknown option 'colour'", r"many\.yaml:\d+:\d+: .*path",
                    r"many\.yaml:1:1: flow has no state"]:
            self.assertRegex(r.err, pat)

    def test_validate_reports_flows_sharing_a_name_or_a_checkpoint(self):
        a = self.siem_flow(name="same", sink_path="out/a/{stream}.ndjson")
        os.makedirs(os.path.join(self.dir, "flows"))
        os.rename(a, os.path.join(self.dir, "flows", "a.yaml"))
        b = self.siem_flow(name="same", sink_path="out/b/{stream}.ndjson")
        os.rename(b, os.path.join(self.dir, "flows", "b.yaml"))
        r = self.ppflow("validate", "flows")
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.err, r"flows/b\.yaml:1:7: flow name 'same' is also the name of the "
                                r"flow in flows/a\.yaml")
        self.assertNotIn("b.yaml: ok", r.out)
        # Another name, the same checkpoint.
        text = slurp(os.path.join(self.dir, "flows", "b.yaml"))
        with open(os.path.join(self.dir, "flows", "b.yaml"), "w") as f:
            f.write(text.replace("name: same", "name: other", 1))
        r = self.ppflow("validate", "flows/a.yaml", "flows/b.yaml")
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.err, r"flows/b\.yaml:\d+:\d+: state\.path \S+ is also the checkpoint "
                                r"of flow 'same' \(flows/a\.yaml\)")
        # The same file twice is no clash.
        r = self.ppflow("validate", "flows/a.yaml", "flows/a.yaml")
        self.assertEqual(r.code, 0, r)
        # plan takes a directory too: each flow in turn, in name order.
        r = self.ppflow("plan", "flows")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(re.findall(r"^flow:\s+(\S+)", r.out, re.M), ["same", "other"])

    def test_did_you_mean(self):
        r = self.ppflow("tempaltes")
        self.assertEqual(r.code, 2, r)
        self.assertIn("unknown command 'tempaltes'; did you mean 'templates'?", r.err)
        r = self.ppflow("deploy")
        self.assertEqual(r.code, 2, r)
        self.assertNotIn("did you mean", r.err)
        r = self.ppflow("templates", "tap-siem-al")
        self.assertEqual(r.code, 2, r)
        self.assertIn("no template named 'tap-siem-al'; did you mean 'tap-siem-all'?", r.err)
        flow = self.siem_flow()
        text = slurp(os.path.join(self.dir, flow))
        with open(os.path.join(self.dir, flow), "w") as f:
            f.write(text.replace("  base_url:", "  base_ulr:", 1))
        r = self.ppflow("validate", flow)
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.err, r"siem\.yaml:4:3: unknown key 'base_ulr' in source: did you mean "
                                r"'base_url'\?")

    def test_init_writes_a_flow_that_validates_for_every_template(self):
        r = self.ppflow("templates")
        self.assertEqual(r.code, 0, r)
        names = [l.split()[0] for l in r.out.splitlines() if l.strip()]
        self.assertGreater(len(names), 10)
        for name in names:
            with self.subTest(template=name):
                path = name + ".yaml"
                r = self.ppflow("init", name, "-o", path)
                self.assertEqual(r.code, 0, r)
                text = slurp(os.path.join(self.dir, path))
                self.assertIn("template: %s" % name, text)
                # Credentials only as ${VAR} references, never values.
                live = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
                self.assertNotRegex(live, r"secret: (?!\$\{)")
                env = self.env(**{v: "value-of-" + v.lower()
                                  for v in re.findall(r"\$\{([A-Z_]+)\}", live)})
                r = self.ppflow("validate", path, env=env)
                self.assertEqual(r.code, 0, (name, r, text))
        # Not over an existing file, unless asked; to stdout without -o.
        r = self.ppflow("init", "tap-siem-all", "-o", "tap-siem-all.yaml")
        self.assertEqual(r.code, 2, r)
        self.assertIn("--force replaces it", r.err)
        self.assertEqual(self.ppflow("init", "tap-siem-all", "-o", "tap-siem-all.yaml",
                                     "--force").code, 0)
        r = self.ppflow("init", "tap-siem-all")
        self.assertEqual(r.code, 0, r)
        # (The example times move with the clock's hour.)
        def stamp(t):
            return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "T", t)
        self.assertEqual(stamp(r.out), stamp(slurp(os.path.join(self.dir, "tap-siem-all.yaml"))))
        r = self.ppflow("init", "tap-siem-al")
        self.assertEqual(r.code, 2, r)
        self.assertIn("did you mean 'tap-siem-all'?", r.err)

    def test_installed_anywhere_finds_its_templates_and_sinks(self):
        build = os.path.dirname(os.path.dirname(os.path.realpath(PPFLOW)))
        prefix = os.path.join(self.dir, "prefix")
        p = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        installed = os.path.join(prefix, "bin", "ppflow")
        env = self.env()
        env.pop("PPFLOW_SINK_PATH", None)
        ours = subprocess.run([PPFLOW, "templates"], capture_output=True, text=True, env=env)
        r = subprocess.run([installed, "templates"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, ours.stdout, "the installed tree lists every template")
        r = subprocess.run([installed, "templates", "tap-siem-all"], capture_output=True,
                           text=True, env=env)
        self.assertIn("file:    %s/share/ppflow/templates/tap-siem-all.yaml" % prefix, r.stdout)
        built = sorted(f[len("ppflow_sink_"):-3] for f in os.listdir(os.path.join(build, "sinks"))
                       if f.endswith(".so"))
        r = subprocess.run([installed, "sinks"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in built:
            self.assertRegex(r.stdout, r"(?m)^%s " % name)
        # Manual pages and the bash completion are installed, and the completion
        # completes commands, options and template names.
        for page in ("man1/ppflow.1", "man5/ppflow-flow.5"):
            text = slurp(os.path.join(prefix, "share", "man", page))
            self.assertTrue(text.startswith(".\\\" ppflow"), page)
            self.assertIn(".SH NAME", text)
        comp = os.path.join(prefix, "share", "bash-completion", "completions", "ppflow")
        def complete(*words):
            script = ('PATH=%s:$PATH; source %s; COMP_WORDS=(ppflow %s); COMP_CWORD=%d; '
                      '_ppflow; echo "${COMPREPLY[@]}"'
                      % (os.path.dirname(installed), comp, " ".join(words), len(words)))
            return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                  env=env).stdout.split()
        self.assertEqual(complete("te"), ["test", "templates"])
        self.assertIn("--metrics-bind", complete("schedule", "--metrics-"))
        self.assertEqual(complete("init", "tap-siem-al"), ["tap-siem-all"])
        # A lone copy of the binary has no templates: exit 2, saying where it looked.
        lone = os.path.join(self.dir, "lone", "bin", "ppflow")
        os.makedirs(os.path.dirname(lone))
        shutil.copy(installed, lone)
        r = subprocess.run([lone, "templates"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("no templates found; searched: %s/lone/share/ppflow/templates"
                      % os.path.realpath(self.dir), r.stderr)

    def test_set_overrides_and_bad_set(self):
        flow = self.siem_flow()
        r = self.ppflow("test", "--set", "since_seconds=abc", flow)
        self.assertEqual(r.code, 2)
        self.assertIn("--set:1:", r.err)
        self.assertIn("since_seconds", r.err)
        r = self.ppflow("run", "--set", "nonsense", flow)
        self.assertEqual(r.code, 2)

    def test_options_before_or_after_operands(self):
        # As the README writes them: `ppflow test siem.yaml -n 5`. Each command
        # gives the same answer with its options before or after the flow.
        flow = self.siem_flow(params={"since_seconds": 7200})
        after = self.ppflow("test", flow, "-n", "2", "--set", "since_seconds=3600")
        before = self.ppflow("test", "-n", "2", "--set", "since_seconds=3600", flow)
        self.assertEqual(after.code, 0, after)
        self.assertEqual(after.out, before.out)
        self.assertGreater(len(after.out.splitlines()), 0)
        for args in (["plan", flow, "--set", "since_seconds=3600"],
                     ["plan", "--set=since_seconds=3600", flow]):
            r = self.ppflow(*args)
            self.assertEqual(r.code, 0, r)
            self.assertIn("3600", " ".join(args))
        loud = self.ppflow("run", flow, "--set", "since_seconds=3600")
        r = self.ppflow("run", flow, "-q", "--set", "since_seconds=3600")
        self.assertEqual(r.code, 0, r)
        # -q after the flow is honoured: warnings only (the mock is http://).
        self.assertTrue(any("warning" not in l for l in loud.err.splitlines()), loud)
        self.assertTrue(all("warning" in l for l in r.err.splitlines()), r)
        a, b = self.ppflow("status", flow, "--json"), self.ppflow("status", "--json", flow)
        self.assertEqual(a.code, 0, a)
        self.assertEqual(json.loads(a.out)["flow"], json.loads(b.out)["flow"])
        # "--" ends the options: what follows is an operand.
        r = self.ppflow("plan", "--", "-n")
        self.assertEqual(r.code, 2, r)
        self.assertIn("-n", r.err)
        r = self.ppflow("plan", flow, "--bogus")
        self.assertEqual(r.code, 2, r)
        self.assertIn("unknown option '--bogus'", r.err)
        doc = '{"a":[1,2]}'
        with open(os.path.join(self.dir, "doc.json"), "w") as f:
            f.write(doc)
        r1 = self.ppflow("jsonpath", "$.a[*]", "doc.json", "--paths")
        r2 = self.ppflow("jsonpath", "--paths", "$.a[*]", "doc.json")
        self.assertEqual(r1.code, 0, r1)
        self.assertEqual(r1.out, r2.out)
        self.assertIn("$['a'][1]", r1.out)

    def test_quickstart_flow_and_status(self):
        shutil.copytree(os.path.join(SOURCE_DIR, "samples"), os.path.join(self.dir, "samples"))
        r = self.ppflow("validate", "samples/quickstart.yaml")
        self.assertEqual(r.code, 0, r)
        r = self.ppflow("run", "samples/quickstart.yaml")
        self.assertEqual(r.code, 0, r)
        sample = json.loads(slurp(os.path.join(self.dir, "samples", "data",
                                              "siem-all-sample.json")))
        for stream, array in [("messages_delivered", "messagesDelivered"),
                              ("clicks_blocked", "clicksBlocked")]:
            with open(os.path.join(self.dir, "out", "quickstart", stream + ".ndjson"),
                      encoding="utf-8") as f:
                got = [json.loads(line) for line in f]
            self.assertEqual(got, sample[array], "records must be delivered unchanged")
        r = self.ppflow("status", "samples/quickstart.yaml")
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"last run:\s+ok, .*97 records")

    def test_records_keep_member_order_and_text(self):
        shutil.copytree(os.path.join(SOURCE_DIR, "samples"), os.path.join(self.dir, "samples"))
        self.assertEqual(self.ppflow("run", "samples/quickstart.yaml").code, 0)
        raw = json.loads(slurp(os.path.join(self.dir, "samples", "data", "siem-all-sample.json")),
                         object_pairs_hook=list)
        arrays = dict(raw)
        with open(os.path.join(self.dir, "out", "quickstart", "messages_blocked.ndjson"),
                  encoding="utf-8") as f:
            lines = f.read().split("\n")[:-1]
        for line, rec in zip(lines, arrays["messagesBlocked"]):
            self.assertEqual([k for k, _ in json.loads(line, object_pairs_hook=list)],
                             [k for k, _ in rec])
            self.assertNotIn("\n", line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
