# Sourced by the proxy benches: builds (release) `simian` and the proxy-bench example,
# starts `simian proxy` on 127.0.0.1, stops it on exit. Sets BENCH, PID and API.
cargo build --release -q --bin simian
cargo build --release -q -p simian-proxy --example proxy-bench
BIN=target/release/simian
BENCH=target/release/examples/proxy-bench

OUT=$(mktemp /tmp/simian-proxy-bench.XXXXXX)
"$BIN" proxy --listen 127.0.0.1:0 >"$OUT" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$OUT"' EXIT
for _ in $(seq 100); do [[ -s $OUT ]] && break; sleep 0.05; done
API=$(awk '/^listening /{print $2; exit}' "$OUT")
[[ -n $API ]] || { echo "simian proxy did not print its listening line" >&2; exit 1; }
