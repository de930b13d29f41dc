#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain (README: Fuzzing): builds the
# targets of fuzz/ with SanitizerCoverage, then runs each for SECONDS, one after another, from
# its seed corpus (fuzz/corpus/TARGET, read only) and what earlier local runs kept
# (fuzz/target/corpus/TARGET). Prints executions and coverage per target; exits non-zero on
# any crash, broken invariant, timeout (10 s for one input) or out-of-memory, naming the
# saved input (replay it: the binary with the file as its argument; then add it under
# tests/fuzz/TARGET/, which tests/fuzz_regressions.rs replays).
#
# use: ./scripts/fuzz.sh                    # every target, 120 s each
# use: ./scripts/fuzz.sh 600                # every target, 600 s each
# use: ./scripts/fuzz.sh stamp 3600         # one target (resolve, stamp, parsers), an hour
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

all=(resolve stamp parsers)
targets=("${all[@]}")
seconds=120
case "${1:-}" in
  "") ;;
  resolve | stamp | parsers)
    targets=("$1")
    seconds=${2:-120}
    ;;
  *[!0-9]*)
    echo "fuzz.sh: unknown target '$1' (one of: ${all[*]})" >&2
    exit 2
    ;;
  *) seconds=$1 ;;
esac

# What cargo-fuzz passes, all of it stable: SanitizerCoverage's inline 8-bit counters and PC
# table (the coverage libFuzzer reads), comparison tracing (its value profile and dictionary),
# and `--cfg fuzzing`. Debug assertions and overflow checks make arithmetic overflow a crash.
# `--target` keeps the flags off build scripts and proc macros (they would not link).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$host"
bin=target/$host/release

# The targets' temporary stores go here, removed at the end (a crashing target cannot remove
# its own).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch

failed=()
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "target/artifacts/$t" target/logs
  log=target/logs/$t.log
  echo "fuzz.sh: $t for ${seconds}s (log: fuzz/$log)"
  status=0
  "$bin/$t" "target/corpus/$t" "corpus/$t" -max_total_time="$seconds" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="target/artifacts/$t/" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
  echo "fuzz.sh: $t: ${runs:-?} executions, ${cov:-no coverage line}, exit $status"
  if grep -q 'no interesting inputs were found' "$log"; then
    echo "fuzz.sh: $t: libFuzzer sees no coverage: the build is not instrumented" >&2
    status=1
  fi
  if [ "$status" != 0 ]; then
    tail -n 40 "$log" >&2
    grep -h 'Test unit written to' "$log" >&2 || true
    failed+=("$t")
  fi
done

# The closing line counts targets: one passed when its run ended with no finding.
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
