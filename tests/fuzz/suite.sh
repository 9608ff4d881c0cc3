#!/usr/bin/env bash
# suite.sh — one fuzz target as a ctest suite: run.sh TARGET SECONDS into $FUZZ_OUT/fuzz-TARGET.log, then one
# summary line (executions, rate); on a crash the log's tail and a failing exit.
#
#   tests/fuzz/suite.sh TARGET DEFAULT_SECONDS      (FUZZ_SECONDS in the environment overrides the default)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
t=${1:?usage: suite.sh TARGET DEFAULT_SECONDS}
secs=${FUZZ_SECONDS:-${2:-15}}
out=${FUZZ_OUT:-$ROOT/build-fuzz}
mkdir -p "$out"
log=$out/fuzz-$t.log
if ! "$ROOT/tests/fuzz/run.sh" "$t" "$secs" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "fuzz $t FAILED (log: $log)"
  exit 1
fi
echo "fuzz $t: ${secs}s, $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") executions," \
     "$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")/s, no crash"
