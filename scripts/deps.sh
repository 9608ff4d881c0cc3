#!/usr/bin/env bash
# deps.sh [--bench] — install what polytel's build, tests, benchmarks and demo need, only what is missing.
# apt (as root; otherwise prints the exact command), a Python venv in .venv, npm in bindings/wasm.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential libuv1-dev libcurl4-openssl-dev libisal-dev libdeflate-dev libzstd-dev zlib1g-dev libcmocka-dev pkg-config cmake
  ninja-build ruby-full ruby-dev rake-compiler emscripten chromium protobuf-compiler clang
  clang-format valgrind libclang-rt-14-dev openssl python3-venv dpkg-dev
  redis-server)
# Sidekiq (make test-sidekiq): the worker and its Redis client from Debian (no gem registry here).
APT_PACKAGES+=(ruby-sidekiq ruby-redis)

# `deps.sh --bench` (make bench): also the peers bench/peers/ times polytel against (LTTng-UST, its session
# daemon and trace reader). Kept out of the list above so that make test does not pay for them.
BENCH_APT_PACKAGES=(liblttng-ust-dev lttng-tools babeltrace2)
if [ "${1:-}" = "--bench" ]; then
  APT_PACKAGES+=("${BENCH_APT_PACKAGES[@]}")
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "deps: missing system packages. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Python tools for the tests (official OTLP protos for the receiver), benches and docs.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "deps: creating .venv"
  "$PY" -m venv .venv
fi
# The stamp names the requirements it installed: a change to the file installs again.
stamp=.venv/.polytel-deps-$(sha1sum scripts/requirements-dev.txt | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "deps: pip install into .venv (test receiver, pytest, reference SDK, chart)"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r scripts/requirements-dev.txt
  touch "$stamp"
fi

# `deps.sh --fleet VENV` (make test-fleet): the worker systems tests/fleet runs for real (Celery, RQ, gunicorn,
# uWSGI, redis-py), into the venv that holds the built binding, only when tests/fleet/requirements.txt changed.
if [ "${1:-}" = "--fleet" ]; then
  fleet_venv=${2:?deps.sh --fleet VENV}
  fleet_stamp=$fleet_venv/.polytel-fleet-$(sha1sum tests/fleet/requirements.txt | cut -c1-12)
  if [ ! -f "$fleet_stamp" ]; then
    echo "deps: pip install into $fleet_venv (celery, rq, gunicorn, uwsgi, redis)"
    "$fleet_venv/bin/pip" install -q -r tests/fleet/requirements.txt
    touch "$fleet_stamp"
  fi
fi

# Node packages for the wasm binding (playwright-core drives Debian's chromium; no browser download).
if [ -f bindings/wasm/package.json ] && [ ! -d bindings/wasm/node_modules ]; then
  echo "deps: npm install in bindings/wasm"
  (cd bindings/wasm && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error)
fi

# The micromegas peer (bench/peers/micromegas) is a cargo project: Rust comes from rustup, not apt.
if [ "${1:-}" = "--bench" ] && ! command -v cargo >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  echo "deps: cargo not found: the micromegas peer of make bench needs Rust (https://rustup.rs)" >&2
  exit 1
fi

# Go builds the real OpenTelemetry Collector for the test suites (mk/collector.mk); its modules come from the Go
# module proxy at build time. Not installable from Debian at a usable version (bookworm has 1.19), so only checked.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ] && [ -z "${GO:-}" ]; then
  echo "deps: Go is missing (not on PATH, not in /usr/local/go/bin): \`make test\` needs Go >= 1.21 to build" \
       "the test Collector (tests/support/collector); set GO=/path/to/go" >&2
fi
