"""bench_export — starts the test OTLP receiver and runs <build>/bench/bench_export against it (tables on stdout).

Usage: python bench/bench_export.py [BUILD_DIR] [bench_export options...]
"""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from otlp_receiver import Receiver  # noqa: E402


def main() -> int:
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    exe = os.path.join(build, "bench", "bench_export")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_", "POLYTEL_"))}
    with Receiver() as r:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = r.endpoint
        rc = subprocess.run([exe, *sys.argv[2:]], env=env).returncode
        got = r.received()
    print(f"test receiver: {len(got['spans'])} spans decoded with the official protos, "
          f"{len(got['requests'])} requests")
    return rc


if __name__ == "__main__":
    sys.exit(main())
