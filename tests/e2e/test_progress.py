"""test_progress.py: the live progress line of `ppflow run` is drawn on a
terminal (and erased before log lines), and never into a pipe or a file."""
import os
import pty
import select
import subprocess
import unittest

from harness import E2ETestCase, PPFLOW, hour_floor, iso


class Progress(E2ETestCase):
    mock_seed = 51

    def test_drawn_on_a_terminal_only(self):
        start, end = iso(hour_floor(-7)), iso(hour_floor(-1))
        flow = self.siem_flow(params={"since_time": start, "until": end})
        self.mock.fault(kind="slow", seconds=0.25, count=10)
        master, slave = pty.openpty()
        p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                             stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 60)
            if not r:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        self.assertEqual(p.wait(60), 0, out)
        os.close(master)
        text = out.decode("utf-8", "replace")
        self.outputs.append(text)
        self.assertRegex(text, r"\r\x1b\[K\d/6 windows \(\d+%\), \d+ records \(\d+/s\)")
        # Every log line starts on a clean line: the progress line was erased.
        for line in text.split("\n"):
            if "info: window" in line:
                self.assertTrue(line.startswith("ppflow") or line.startswith("\r\x1b[K"), line)
        # Not a terminal: no progress line at all.
        r = self.ppflow("run", "--set", "until=" + iso(hour_floor(0)), flow)
        self.assertEqual(r.code, 0, r)
        self.assertNotIn("\x1b[K", r.err)
        self.assertNotIn("\r", r.err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
