#!/usr/bin/env bash
# Builds the cargo-fuzz targets of fuzz/ and runs each in turn.
#   scripts/fuzz.sh [SECONDS]         each target for SECONDS (default 30)
#   scripts/fuzz.sh -runs=N           each target for N executions
#   TARGETS="frame batch" scripts/fuzz.sh 60   only some targets
#   JOBS=2 scripts/fuzz.sh 600        libFuzzer workers per target
#   SANITIZER=none scripts/fuzz.sh -runs=10000000
#                                     without AddressSanitizer (default
#                                     address): several times the executions
#                                     a second, for the long runs
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked).
# New corpus entries go to fuzz/corpus/<target>/ (only seed-* files are kept
# in git); a crash leaves its input in fuzz/artifacts/<target>/ and fails.
# Each target's libFuzzer log is fuzz/logs/<target>.log; its last line of
# statistics (executions, exec/s) is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
arg="${1:-30}"
if [[ "$arg" == -runs=* ]]; then
    limit=("$arg")
else
    limit=("-max_total_time=$arg")
fi
targets=(${TARGETS:-frame request batch quorum})
jobs="${JOBS:-1}"
# -a: debug assertions and overflow checks on, so arithmetic that would wrap
# is found too. The broker's own allocator (protocol::alloc_guard) is each
# target's global allocator, as in the broker; libFuzzer's malloc limit
# (= rss_limit_mb, 2 GiB) then catches what it would not absorb.
sanitizer="${SANITIZER:-address}"
cargo +nightly fuzz build -a -s "$sanitizer"
mkdir -p logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t ${limit[*]}"
    flags=("${limit[@]}" -rss_limit_mb=2048 -print_final_stats=1)
    if [ "$jobs" -gt 1 ]; then
        flags+=("-fork=$jobs")
    fi
    if ! cargo +nightly fuzz run -a -s "$sanitizer" "$t" "corpus/$t" -- "${flags[@]}" >"logs/$t.log" 2>&1; then
        echo "fuzz: $t FAILED; see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        tail -n 40 "logs/$t.log"
        status=1
    fi
    grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1 || true
    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "logs/$t.log" || true
done
exit $status
