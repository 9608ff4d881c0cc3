#!/usr/bin/env bash
# run.sh BUILD_DIR — every benchmark in one run; each table is kept in bench/out/ and the
# report (tables + chart) is written to docs/benchmarks.md and docs/benchmarks.png.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=bench/out
mkdir -p "$out"
rm -f "$out"/*.md "$out"/*.json "$out"/load-*.txt
status=0

section() { # name, command...
  local name=$1; shift
  echo "== bench: $name"
  if "$@" > "$out/$name.md" 2> "$out/$name.err"; then
    cat "$out/$name.md"
  else
    echo "(bench $name failed: see $out/$name.err)" | tee -a "$out/$name.md"
    tail -5 "$out/$name.err"
    status=1
  fi
}

# How busy the shared machine was: the report prints both lines.
cat /proc/loadavg > "$out/load-start.txt" 2>/dev/null

section 1-c-hotpath .venv/bin/python bench/peers/run.py "$build" "$out/peers.json"
section 1b-c-threads "$build/bench/bench_hotpath"
section 1b-c-propagation "$build/bench/bench_propagation"
section 1c-c-before-after .venv/bin/python bench/before_after.py "$build" "$out/before_after.json"
section 1d-c-speed env BENCH_BASELINE=5b0586eebd9383c6e67b0c01134193f05e64485a BENCH_BASELINE_WHAT="the wake and drain changes (issue 17)" \
  .venv/bin/python bench/before_after.py "$build" "$out/before_after_speed.json"
section 2-encode "$build/bench/bench_encode"
section 3-export .venv/bin/python bench/bench_export.py "$build"
section 4-python make -s --no-print-directory bench-python
section 4b-otel make -s --no-print-directory bench-otel
section 5-ruby make -s --no-print-directory bench-ruby
make -s --no-print-directory wasm-build > "$out/wasm-build.log" 2>&1 || status=1
section 6-node node bench/bench_wasm.mjs
section 6b-node-otel node bench/otel_bench.mjs
section 7-view make -s --no-print-directory bench-view

cat /proc/loadavg > "$out/load-end.txt" 2>/dev/null
.venv/bin/python bench/report.py "$out" docs/benchmarks.md docs/benchmarks.png
echo "bench: report written to docs/benchmarks.md and docs/benchmarks.png"
exit $status
