#!/usr/bin/env bash
# Bench: time from a stop condition's breach becoming visible to the engine to
# every fault reverted, over N runs against the lab (a killed zone must be
# restarted by the revert). Not run in CI.
#   benches/stop-to-revert.sh [RUNS] [ACTION]     (ACTION: kill | stop; default kill)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
action=${2:-kill}
[ "$runs" -ge 1 ] && [ "$runs" -le 50 ] || { echo "RUNS must be 1..50" >&2; exit 2; }
cargo build --release -q
bin=target/release/simian
dir=$(mktemp -d)
trap '"$bin" --state-dir "$dir" lab down >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin" --state-dir "$dir" lab up --regions 1 --zones 3 --instances 2 >/dev/null
cat > "$dir/stop.yaml" <<YAML
version: 1
name: stop-latency
steady_state:
  probes:
    users: { http: { url: "\${lab.us-east.edge}/play", rate: 100, timeout: 1s } }
    zone: { http: { url: "\${lab.us-east-a-1}/play", rate: 100, timeout: 200ms } }
  hypothesis: [ "users.success_ratio >= 99%" ]
  before: 2s
  window: 1s
  after: 1s
stop_when: [ "zone.success_ratio < 50%" ]
method:
  - inject: { name: zone-down, process: { target: { lab: { zone: us-east-a } }, action: $action } }
  - wait: 60s
guards: { max_blast_radius: 34%, max_duration: 2m }
YAML
echo "stop condition → all faults reverted, action=$action, $runs runs (ms):"
for i in $(seq 1 "$runs"); do
  "$bin" --state-dir "$dir" run "$dir/stop.yaml" --quiet --json "$dir/r$i.json" >/dev/null || true
  python3 - "$dir/r$i.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["stop"]
inj = r["faults"][0]["injected_ms"]
print(f"  breach visible {s['detected_ms'] - inj:5d} ms after the fault; reverted {s['reverted_ms'] - s['detected_ms']:4d} ms after that (exit {r['exit_code']})")
PY
done
