"""test_crash.py: crash consistency of the NDJSON sink and the checkpoint.

A 24-window SIEM backfill is killed with SIGKILL at random points (30 kills by
default; PPFLOW_KILLS sets the count, PPFLOW_KILL_SEED repeats a sequence) and
restarted each time until it completes. After every kill the checkpoint must
be readable (old or new, never torn) and the NDJSON files must hold no record
twice once the flow has resumed; at the end every expected record is there
exactly once.
"""
import json
import os
import random
import signal
import subprocess
import unittest

from harness import E2ETestCase, PPFLOW, SIEM_STREAMS, hour_floor, iso

KILLS = int(os.environ.get("PPFLOW_KILLS", "30"))


class CrashConsistency(E2ETestCase):
    mock_seed = 31

    def test_random_kills_lose_and_repeat_nothing(self):
        seed = int(os.environ.get("PPFLOW_KILL_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        print("kill seed %d, %d kills (PPFLOW_KILL_SEED / PPFLOW_KILLS)" % (seed, KILLS))
        start, end = iso(hour_floor(-26)), iso(hour_floor(-2))
        kills = rounds = 0
        # A round is one backfill from scratch, killed until it completes;
        # rounds repeat (each into its own files) until enough kills landed.
        while kills < KILLS:
            rounds += 1
            self.assertLess(rounds, 20 + KILLS, "too few kills landed")
            name = "siem%d" % rounds
            flow = self.siem_flow(name=name, params={"since_time": start, "until": end},
                                  sink_path="out%d/{stream}.ndjson" % rounds)
            kills += self.kill_until_done(rng, flow, os.path.join(self.dir, "state",
                                                                  name + ".json"))
            self.assert_exact_siem(start, end, sink_dir="out%d" % rounds)
            with open(os.path.join(self.dir, "state", name + ".json"), encoding="utf-8") as f:
                self.assertEqual(json.load(f)["cursor"], end)
        print("kills: %d in %d rounds" % (kills, rounds))

    def kill_until_done(self, rng, flow, state):
        kills = runs = stalled = 0
        cursors = []
        while True:
            runs += 1
            self.assertLess(runs, 200, "the flow never completed")
            self.mock.fault(kind="slow", seconds=rng.choice([0.01, 0.05, 0.1]), count=100)
            p = subprocess.Popen([PPFLOW, "run", flow], cwd=self.dir, env=self.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                # On a loaded machine a run may need longer for its first
                # window: each kill that left the checkpoint where it was
                # lengthens the next delay, so the backfill always ends.
                out, err = p.communicate(timeout=rng.uniform(0.01, 0.6) * (1 + stalled))
                self.outputs += [out, err]
                self.assertEqual(p.returncode, 0, err)
                break
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                out, err = p.communicate()
                self.outputs += [out, err]
                kills += 1
            finally:
                self.mock.reset()
            # The checkpoint is whole after every kill: old or new, never torn.
            if os.path.exists(state):
                with open(state, encoding="utf-8") as f:
                    cursors.append(json.load(f).get("cursor"))
            moved = len(cursors) >= 2 and cursors[-1] != cursors[-2]
            stalled = 0 if moved else stalled + 1
        seen = [c for c in cursors if c]
        self.assertEqual(seen, sorted(seen), "the checkpoint moved backwards")
        return kills


if __name__ == "__main__":
    unittest.main(verbosity=2)
