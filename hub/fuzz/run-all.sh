#!/usr/bin/env bash
# Runs every fuzz target of this crate for N seconds each (default 600), one after the other, at
# low CPU priority, and prints per target how long it ran, how many inputs it executed and the
# size of its corpus. A crash stops the script with the target's exit status; libFuzzer leaves
# the input in artifacts/<target>/ (see README.md for turning it into a regression test).
#
#   hub/fuzz/run-all.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it
# use the nightly-only sanitizer flags. Corpora grow in corpus/<target>/ (the committed seeds
# are real traffic of the simulators, see README.md); pass FUZZ_MERGE=1 to minimize them after.
# `line_framing` opens one TCP connection on 127.0.0.1 per input (reset on close, no TIME_WAIT).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
# Panics are what we hunt (safe Rust): no AddressSanitizer, a release build with debug
# assertions and overflow checks on (see Cargo.toml).
build=(--sanitizer none --release --debug-assertions)
cargo fuzz build "${build[@]}"
printf '%-18s %8s %12s %8s %10s\n' target seconds executions files bytes
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    start=$(date +%s)
    nice -n "${FUZZ_NICE:-15}" cargo fuzz run "${build[@]}" "$t" -- \
        -max_total_time="$secs" -max_len=20000 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || { echo "$t: CRASH (see $log)"; tail -40 "$log"; exit 1; }
    end=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    files=$(find "corpus/$t" -type f | wc -l)
    bytes=$(du -sb "corpus/$t" | cut -f1)
    printf '%-18s %8s %12s %8s %10s\n' "$t" "$((end - start))" "$execs" "$files" "$bytes"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        mkdir -p "corpus/$t.min"
        cargo fuzz run "${build[@]}" "$t" -- -merge=1 "corpus/$t.min" "corpus/$t" >/dev/null 2>&1
        rm -rf "corpus/$t" && mv "corpus/$t.min" "corpus/$t"
    fi
done
