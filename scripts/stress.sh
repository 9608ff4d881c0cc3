#!/usr/bin/env bash
# stress.sh — `make test-stress`: the integration, reliability and smoke suites STRESS_RUNS times in a row (3) with
# STRESS_BURNERS CPU-burning processes (2) beside them; the burners are always stopped. Writes one line per suite
# run and a total to $STRESS_OUT/summary.txt; exits non-zero if any run failed. The suites' own environment
# (POLYTEL_BUILD_DIR, POLYTEL_PY, ...) comes from the make target.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${STRESS_RUNS:-3}
BURNERS=${STRESS_BURNERS:-2}
OUT=${STRESS_OUT:-build/stress}
PY=${STRESS_PYTHON:-.venv/bin/python}
SUITES=(${STRESS_SUITES:-integration reliability smoke})
mkdir -p "$OUT"

burners=()
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null; done
  burners=()
}
trap stop_burners EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$BURNERS"); do
  (while :; do :; done) &
  burners+=($!)
done

summary="$OUT/summary.txt"
{
  echo "test-stress: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), $(nproc) cpus," \
       "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $BURNERS CPU burners (pids ${burners[*]})," \
       "$RUNS runs of: ${SUITES[*]}"
} | tee "$summary"
failed=0
t_all=$(date +%s)
for run in $(seq "$RUNS"); do
  for suite in "${SUITES[@]}"; do
    log="$OUT/run$run-$suite.log"
    t0=$(date +%s)
    # Figures measured under stress are not the quiet-machine figures the docs quote: written beside the logs.
    POLYTEL_RELIABILITY_FIGURES="$OUT/reliability-figures-run$run.json" \
      POLYTEL_COLLECTOR_FIGURES="$OUT/collector-figures-run$run.json" \
      "$PY" -m pytest -q -p no:cacheprovider -rfE "tests/$suite" >"$log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || failed=$((failed + 1))
    result=$(grep -E '^=*.*[0-9]+ (passed|failed|error)' "$log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
    echo "run $run $suite: $([ $rc -eq 0 ] && echo PASS || echo "FAIL (rc $rc)"): ${result:-no summary}," \
         "$(($(date +%s) - t0)) s wall" | tee -a "$summary"
    [ $rc -eq 0 ] || grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /' | tee -a "$summary"
  done
done
stop_burners
echo "test-stress: $((RUNS * ${#SUITES[@]} - failed)) of $((RUNS * ${#SUITES[@]})) suite runs passed," \
     "$(($(date +%s) - t_all)) s wall in all (logs: $OUT)" | tee -a "$summary"
[ $failed -eq 0 ]
