#!/usr/bin/env python3
"""Split-brain figures: run scenarios/split-brain.yaml with a long partition and read
the run's journal for how replication behaved.

    python3 benches/split-brain.py [SIMIAN_BIN] [HOLD] [-- extra simian run args]
    python3 benches/split-brain.py target/release/simian 60s
    sudo python3 benches/split-brain.py target/release/simian 60s -- --netns   # (see README)

Prints, per replication probe: the most records queued during the split, the time from
heal (the revert) to `queued == 0` (every record written during the split seen in the
other region), `lost` at the end, the slowest convergence (a record written as the split
began), and the convergence percentiles of the last window.
The heal-to-drained time is bounded below by the probe's read schedule (reads of a
queued record are at most 1 s apart), so it is an upper bound within 1 s.
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    simian = args[0] if args else "target/debug/simian"
    hold = args[1] if len(args) > 1 else "60s"
    state = tempfile.mkdtemp(prefix="simian-bench-")
    journal = os.path.join(state, "split.jsonl")
    cmd = [simian, "run", "--lab", "scenarios/split-brain.yaml", "--state-dir", state,
           "--journal", journal, "--var", f"hold={hold}", "--var", "settle=20s",
           "--var", "after=5s", "--var", "before=5s"] + extra
    print("$", " ".join(cmd), file=sys.stderr)
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         timeout=3600)
    print(f"exit {run.returncode}")

    events = [json.loads(line) for line in open(journal)]
    at = lambda kind: [e["at_ms"] for e in events
                       if e.get("type") == "event" and e["kind"]["event"] == kind]
    injected, healed = at("injected")[0], at("reverted")[0]
    samples = [(e["at_ms"], e["kind"]["probe"], e["kind"]["metrics"]) for e in events
               if e.get("type") == "event" and e["kind"]["event"] == "sample"]
    probes = sorted({p for _, p, m in samples if "queued" in m})
    print(f"split held {(healed - injected) / 1000:.1f} s")
    for probe in probes:
        mine = [(t, m) for t, p, m in samples if p == probe]
        most = max(m.get("queued", 0) for t, m in mine if injected <= t <= healed)
        drained = next((t for t, m in mine if t > healed and m.get("queued") == 0), None)
        last = mine[-1][1]
        worst = max((m.get("max") or 0 for t, m in mine if t > healed), default=None)
        drain = "never" if drained is None else f"{(drained - healed) / 1000:.2f} s"
        print(f"{probe}: most queued {most:.0f}; heal -> queued == 0 in {drain}; "
              f"lost {last.get('lost', 0):.0f}; slowest record converged in {fmt(worst)}; "
              f"last window p50 {fmt(last.get('p50'))} p99 {fmt(last.get('p99'))}")
    summary = [line for line in run.stdout.splitlines() if "queued" in line or "lost" in line]
    print("\n".join(summary))


def fmt(v):
    return "-" if v is None else (f"{v:.3f} s" if v >= 1 else f"{v * 1000:.1f} ms")


if __name__ == "__main__":
    main()
