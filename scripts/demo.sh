#!/usr/bin/env bash
# demo.sh — runs the smoke scenario's four workers (C, Python, Ruby, wasm/Node) in both phases; summarizes the export;
# then a Python job worker whose jobs cross threads and a C process, then the fleet (a Python producer, a Celery worker
# and a Sidekiq worker on one Redis: one trace across them), and writes demo-out/trace.html (polytel.view).
#
# Run by `make demo`, which first installs what is missing and builds everything. Each worker runs
# tests/smoke/scenario.json with TELEMETRY_ENABLED=true: logs at load (phase 1, deferred), bootstrap
# (phase 2), nested spans, a counter, a fork child (not in wasm), exit without an explicit shutdown.
# By default they use the embedded file exporter: OTLP/JSON lines in demo-out/<lang>/{traces,logs,metrics}.jsonl.
# With OTEL_EXPORTER_OTLP_ENDPOINT set, they export there over OTLP/HTTP instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${POLYTEL_BUILD_DIR:-$ROOT/build}
PY=${POLYTEL_PY:-$BUILD_DIR/py-venv/bin/python}
RUBY_GEMS=${POLYTEL_RUBY_GEM_HOME:-$BUILD_DIR/ruby-gems}
WASM_DIR=${POLYTEL_WASM_DIR:-$ROOT/bindings/wasm}
VENV_PY=${POLYTEL_VENV_PY:-$ROOT/.venv/bin/python}
OUT=${DEMO_OUT:-$ROOT/demo-out}
SCENARIO=$ROOT/tests/smoke/scenario.json
LANGS=(c python ruby wasm)

need() { # path, what builds it
  [ -e "$1" ] || { echo "demo: $1 is missing: run \`$2\` (or simply \`make demo\`)" >&2; exit 1; }
}
need "$BUILD_DIR/tests/smoke_worker" "make build"
need "$BUILD_DIR/tests/job_step" "make build"
need "$PY" "make py-venv"
need "$WASM_DIR/dist/polytel_wasm.mjs" "make wasm-build"
need "$VENV_PY" "make deps"
compgen -G "$RUBY_GEMS/specifications/polytel-*.gemspec" >/dev/null ||
  need "$RUBY_GEMS/specifications/polytel-*.gemspec" "make ruby-gem"

worker() {
  case $1 in
    c) echo "$BUILD_DIR/tests/smoke_worker" ;;
    python) echo "$PY $ROOT/tests/smoke/workers/worker.py" ;;
    ruby) echo "ruby $ROOT/tests/smoke/workers/worker.rb" ;;
    wasm) echo "node $ROOT/tests/smoke/workers/worker.mjs" ;;
  esac
}

# Only what the demo sets configures polytel: a stray POLYTEL_*/OTEL_* from the shell would change the result.
ENDPOINT=${OTEL_EXPORTER_OTLP_ENDPOINT:-}
for v in $(compgen -e); do
  case $v in OTEL_* | POLYTEL_* | TELEMETRY_ENABLED) unset "$v" ;; esac
done

rm -rf "$OUT"
mkdir -p "$OUT"
echo
if [ -n "$ENDPOINT" ]; then
  echo "demo: OTEL_EXPORTER_OTLP_ENDPOINT is set: exporting over OTLP/HTTP to $ENDPOINT (no files are written)"
else
  echo "demo: exporting with the embedded file exporter: OTLP/JSON lines under $OUT/<language>/"
fi
echo "demo: scenario $SCENARIO, TELEMETRY_ENABLED=true (phase 1 defers, bootstrap starts phase 2)"

for lang in "${LANGS[@]}"; do
  dir=$OUT/$lang
  mkdir -p "$dir"
  printf 'demo: running the %-6s worker ... ' "$lang"
  envs=(TELEMETRY_ENABLED=true OTEL_SERVICE_NAME="demo-$lang" POLYTEL_WASM_DIR="$WASM_DIR" GEM_HOME="$RUBY_GEMS")
  if [ -n "$ENDPOINT" ]; then
    envs+=(POLYTEL_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT")
  else
    envs+=(POLYTEL_EXPORTER=file POLYTEL_EXPORT_DIR="$dir")
  fi
  # The console (both streams) goes to a file beside the telemetry; the summary quotes its phase lines.
  # shellcheck disable=SC2046
  if ! (cd "$dir" && env "${envs[@]}" $(worker "$lang") "$SCENARIO" >"$OUT/$lang.console.log" 2>&1); then
    echo "FAILED"
    cat "$OUT/$lang.console.log" >&2
    exit 1
  fi
  echo "ok"
done

echo
"$VENV_PY" - "$OUT" "$ENDPOINT" "${LANGS[@]}" <<'PYEOF'
"""Summary per language: what the workers exported (read back with tests/support/jsonl.py) and a span tree."""
import os
import re
import sys

out, endpoint, langs = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "support"))
from jsonl import load_dir, span_tree  # noqa: E402  (strict: a malformed line fails the demo)

TITLES = {"c": "C", "python": "Python", "ruby": "Ruby", "wasm": "WebAssembly (Node)"}


def phase_lines(lang):
    """polytel's own console lines; the worker bootstraps before it forks, so a second phase-2 line is the child's."""
    lines = open(os.path.join(out, f"{lang}.console.log")).read().splitlines()
    shown, full = [], 0
    for ln in lines:
        if " polytel: " not in ln:
            continue
        text = re.sub(r"^\S+ ", "", ln)
        if text.split(": ", 1)[-1].startswith("full telemetry"):
            full += 1
            text += " (fork child)" if full > 1 else ""
        shown.append(text)
    return shown


def fmt_attrs(attrs, limit=4):
    items = [f"{k}={v}" for k, v in attrs.items()]
    more = f" +{len(items) - limit}" if len(items) > limit else ""
    return ("  {" + ", ".join(items[:limit]) + more + "}") if items else ""


bad = []
for lang in langs:
    title = TITLES.get(lang, lang)
    if endpoint:
        print(f"{title}: exported to {endpoint} as service \"demo-{lang}\"")
        for ln in phase_lines(lang):
            print(f"    console: {ln}")
        continue
    got = load_dir(os.path.join(out, lang))
    spans, logs = got["spans"], got["logs"]
    metrics = [m for m in got["metrics"] if not m["name"].startswith("polytel.")]
    services = sorted({x["service"] for k in ("spans", "logs", "metrics") for x in got[k]})
    pids = sorted({x["resource"].get("process.pid") for k in ("spans", "logs", "metrics") for x in got[k]})
    files = sorted(f for f in os.listdir(os.path.join(out, lang)) if f.endswith(".jsonl"))
    print(f"{title}: service {', '.join(services) or '(none)'}, {len(pids)} process(es) {pids}")
    print(f"    {len(spans)} spans, {len(logs)} logs, {len(got['metrics'])} metric points "
          f"in {os.path.relpath(os.path.join(out, lang))}/{{{','.join(files)}}}")
    # Counters: the latest cumulative value per process.
    last = {}
    for m in metrics:
        k = (m["name"], m["resource"].get("process.pid"))
        if k not in last or m["time_ns"] >= last[k]["time_ns"]:
            last[k] = m
    for (name, pid), m in sorted(last.items(), key=lambda kv: str(kv[0])):
        print(f"    metric {name} = {m['value']} (pid {pid}){fmt_attrs(m['attributes'])}")
    # The span tree, with each span's logs under it.
    for depth, what, x in span_tree(spans, logs):
        if what == "log":
            print(f"    {'  ' * depth}- {x['severity_text']} {x['body']}")
        else:
            ms = (x["end_ns"] - x["start_ns"]) / 1e6
            print(f"    {'  ' * depth}{x['name']} ({ms:.2f} ms){fmt_attrs(x['attributes'])}")
    outside = sum(1 for lg in logs if not lg["span_id"])
    print(f"    ({outside} logs outside any span)")
    for ln in phase_lines(lang):
        print(f"    console: {ln}")
    if services != [f"demo-{lang}"] or not spans or not logs or not metrics:
        bad.append(lang)
    print()

if bad:
    print(f"demo: FAILED: no or wrong telemetry from {', '.join(bad)}", file=sys.stderr)
    sys.exit(1)
if not endpoint:
    print(f"demo: OTLP/JSON lines from {len(langs)} services in {out}/ "
          f"(read them back: .venv/bin/python tests/support/jsonl.py {os.path.relpath(out)}/c)")
PYEOF

# Jobs that cross threads (asyncio, a thread pool) and processes (each job's store step is a C program that continues
# the job's trace), then one page showing everything above: python -m polytel.view.
if [ -z "$ENDPOINT" ]; then
  echo
  printf 'demo: running the jobs worker (examples/python/jobs.py: asyncio, a thread pool, a C step per job) ... '
  mkdir -p "$OUT/jobs"
  if ! (cd "$OUT/jobs" && env TELEMETRY_ENABLED=true OTEL_SERVICE_NAME=demo-jobs POLYTEL_EXPORTER=file POLYTEL_EXPORT_DIR="$OUT/jobs" \
    OTEL_METRIC_EXPORT_INTERVAL=100 OTEL_BSP_SCHEDULE_DELAY=100 OTEL_BLRP_SCHEDULE_DELAY=100 POLYTEL_CONSOLE=off \
    "$PY" "$ROOT/examples/python/jobs.py" --jobs 4 --job-step "$BUILD_DIR/tests/job_step" >"$OUT/jobs.console.log" 2>&1); then
    echo "FAILED"
    cat "$OUT/jobs.console.log" >&2
    exit 1
  fi
  echo "ok"
  # The fleet: a Python producer, a Celery worker and a Sidekiq (Ruby) worker on one redis-server that the scene
  # starts on 127.0.0.1 and stops (examples/fleet/run.py); it prints the one trace they share.
  echo
  echo "demo: running the fleet (examples/fleet: a Python producer, a Celery worker, a Sidekiq worker, one Redis)"
  if ! "$PY" "$ROOT/examples/fleet/run.py" "$OUT/fleet" --gem-home "$RUBY_GEMS"; then
    echo "demo: the fleet scene FAILED (consoles: $OUT/fleet/*.console.log)" >&2
    exit 1
  fi
  echo
  "$PY" -m polytel.view "$OUT" -o "$OUT/trace.html" --title "polytel demo"
  echo "demo: open $OUT/trace.html in a browser (one file, no network): traces, threads, processes, logs, metrics"
fi
