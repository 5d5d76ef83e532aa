#!/usr/bin/env bash
# Fuzzes every target for SECONDS each (default 20); fails on any crash, hang (a run of
# one input over 5 s) or memory blow-up (over 2 GiB). Longer: `crates/simian-fuzz/run.sh 600`.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). It builds with nightly flags,
# which RUSTC_BOOTSTRAP=1 lets the stable toolchain accept.
#   SIMIAN_FUZZ_TARGETS="experiment proxy_http"   only these targets
#   SIMIAN_FUZZ_SANITIZER=none                    no AddressSanitizer (faster build and runs)
#   SIMIAN_FUZZ_CODEGEN_UNITS=16                  build about twice as fast, fuzz ~25% slower
# Crashes land in crates/simian-fuzz/artifacts/TARGET/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir crates/simian-fuzz TARGET ARTIFACT
set -euo pipefail
secs=${1:-20}
fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$fuzz/../.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1
sanitizer=${SIMIAN_FUZZ_SANITIZER:-address}
cgu=${SIMIAN_FUZZ_CODEGEN_UNITS:-1}
read -r -a targets <<<"${SIMIAN_FUZZ_TARGETS:-experiment schedule proxy_http}"

# Seed corpora (copies, not committed: corpus/ is ignored); libFuzzer adds what it finds.
mkdir -p "$fuzz"/corpus/{experiment,schedule,proxy_http}
cp scenarios/*.yaml tests/fixtures/invalid/*.yaml "$fuzz/corpus/experiment/"
for f in scenarios/aws/*.yaml; do cp "$f" "$fuzz/corpus/experiment/aws-${f##*/}"; done
cp "$fuzz"/seeds/schedule/* "$fuzz/corpus/schedule/"
cp "$fuzz"/seeds/http/* "$fuzz/corpus/proxy_http/"

# Each run builds its target (the dependencies once, shared).
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  cargo fuzz run --fuzz-dir "$fuzz" --sanitizer "$sanitizer" --codegen-units "$cgu" "$t" -- \
    -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
done
