"""before_after.py BUILD_DIR [OUT_JSON] — the calling thread's cost of every hot-path row and of the async span
pairs, with the library of before the span model (the commit in bench/baseline.txt) and of now, in one run.

The same source, bench/bench_hotpath.c --rows, is compiled with the same flags against each library (the
baseline's is built once from `git archive` of its commit, cached under BUILD_DIR/bench-baseline/), and the
two binaries run alternately for ROUNDS rounds, so a slow phase of a shared machine falls on both. Each
figure is the best run's CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), beside one rdtsc timed the
same way. Prints two markdown tables: before/after, and an unsampled async pair against a sampled one
(target <= 1.0x). Asserts nothing about timings; exits non-zero when a build or a run fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import io

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROUNDS = int(os.environ.get("BENCH_BEFORE_AFTER_ROUNDS", "3"))
CFLAGS = ["-std=gnu11", "-O2", "-g", "-DNDEBUG", "-D_GNU_SOURCE"]
LIBS = ["-luv", "-lcurl", "-lisal", "-ldeflate", "-lzstd", "-lpthread", "-lm"]


def log(msg: str) -> None:
    print(f"before_after: {msg}", file=sys.stderr, flush=True)


def baseline_commit() -> str:
    # BENCH_BASELINE: another commit to compare with (bench/run.sh: main before the speed work of issue 17).
    if os.environ.get("BENCH_BASELINE"):
        return os.environ["BENCH_BASELINE"]
    with open(os.path.join(HERE, "baseline.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line.split()[0]
    raise SystemExit("before_after: bench/baseline.txt names no commit")


def build_baseline_lib(build_dir: str, commit: str) -> tuple[str, list[str]]:
    """The baseline's static library and include directories (built once per commit)."""
    d = os.path.join(build_dir, "bench-baseline", commit[:12])
    lib = os.path.join(d, "build", "core", "libpolytel.a")
    incs = [os.path.join(d, "src", "core", "include"), os.path.join(d, "build", "core", "include")]
    if os.path.exists(lib):
        return lib, incs
    src = os.path.join(d, "src")
    os.makedirs(src, exist_ok=True)
    log(f"building the baseline library of {commit[:12]} (git archive, once)")
    tar = subprocess.run(["git", "-C", ROOT, "archive", commit], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(src)
    subprocess.run(["cmake", "-S", src, "-B", os.path.join(d, "build"), "-G", "Ninja", "-DPOLYTEL_BUILD_BENCH=OFF",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=sys.stderr)
    subprocess.run(["cmake", "--build", os.path.join(d, "build"), "-j2", "--target", "polytel_static"], check=True,
                   stdout=sys.stderr)
    return lib, incs


def compile_bench(out: str, lib: str, incs: list[str]) -> str:
    cmd = ["cc", *CFLAGS, *[f"-I{i}" for i in incs], f"-I{HERE}", os.path.join(HERE, "bench_hotpath.c"), lib,
           *LIBS, "-o", out]
    subprocess.run(cmd, check=True)
    return out


def main() -> int:
    build_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    out_json = sys.argv[2] if len(sys.argv) > 2 else None
    commit = baseline_commit()
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    base_lib, base_incs = build_baseline_lib(build_dir, commit)
    d = os.path.join(build_dir, "bench-baseline")
    exes = {
        "before": compile_bench(os.path.join(d, "bench_hotpath_before"), base_lib, base_incs),
        "after": compile_bench(os.path.join(d, "bench_hotpath_after"), os.path.join(build_dir, "core", "libpolytel.a"),
                               [os.path.join(ROOT, "core", "include"), os.path.join(build_dir, "core", "include")]),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_", "POLYTEL_"))}
    best: dict = {"before": {}, "after": {}}
    anchor = {"before": 1e30, "after": 1e30}
    wall: dict = {"before": {}, "after": {}}
    for r in range(ROUNDS):
        for side, exe in exes.items():
            log(f"round {r + 1}/{ROUNDS}: {side}")
            p = subprocess.run([exe, "--rows"], env=env, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                log(f"{side} failed: {p.stderr.strip()[-400:]}")
                return 1
            res = json.loads(p.stdout.strip().splitlines()[-1])
            anchor[side] = min(anchor[side], res["anchor_cpu_ns"])
            for key, row in res["ops"].items():
                wall[side][key] = min(wall[side].get(key, 1e30), row["ns"])
                prev = best[side].get(key)
                if prev is None or row["cpu_ns"] < prev["cpu_ns"]:
                    best[side][key] = row
    b, a = best["before"], best["after"]
    what = os.environ.get("BENCH_BASELINE_WHAT", "the span model")
    print(f"## C hot path before and after {what}, {ROUNDS} alternating rounds\n")
    print(f"`bench/bench_hotpath.c --rows`, one source compiled with the same flags against the library of {commit[:12]}\n"
          f"(before: {'BENCH_BASELINE' if os.environ.get('BENCH_BASELINE') else 'bench/baseline.txt'}) and of {head} "
          "(after); one thread, best run of 5 x 4,000,000 calls per round,\n"
          "the best round kept, the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), and the wall time of the best\n"
          "wall-time run beside it. Phase 2 with POLYTEL_EXPORTER=none, POLYTEL_CONSOLE=off. Anchor, same clock: one rdtsc = "
          f"{anchor['before']:.2f} ns (before run), {anchor['after']:.2f} ns (after run).\n")
    print("| operation | before ns/op | after ns/op | after / before | before wall ns/op | after wall ns/op | "
          "recorded per call (before, after) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for key, row in a.items():
        calls = 5 * 4001000
        if key in b:
            print(f"| {row['name']} | {b[key]['cpu_ns']:.2f} | {row['cpu_ns']:.2f} | "
                  f"{row['cpu_ns'] / b[key]['cpu_ns']:.2f}x | {wall['before'][key]:.2f} | {wall['after'][key]:.2f} | "
                  f"{b[key]['recorded'] / calls:.0f}, {row['recorded'] / calls:.0f} |")
    if os.environ.get("BENCH_BASELINE"):
        print()
        return write_json(out_json, commit, head, b, a, anchor, None)
    print("\nBefore the span model there was no sampler: the unsampled pair was recorded like the sampled one.\n")
    ratio = a["async_unsampled"]["cpu_ns"] / a["async_sampled"]["cpu_ns"]
    print("## Async spans: an unsampled pair against a sampled one (after)\n")
    print("| operation | ns/op | vs sampled | target | within |")
    print("|---|---:|---:|---:|:-:|")
    print(f"| {a['async_sampled']['name']} | {a['async_sampled']['cpu_ns']:.2f} | 1.00x | | |")
    print(f"| {a['async_unsampled']['name']} | {a['async_unsampled']['cpu_ns']:.2f} | {ratio:.2f}x | <= 1.0x | "
          f"{'yes' if ratio <= 1.0 else 'no'} |")
    return write_json(out_json, commit, head, b, a, anchor, ratio)


def write_json(out_json, commit, head, b, a, anchor, ratio) -> int:
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"baseline": commit, "head": head, "rounds": ROUNDS, "before": b, "after": a,
                       "anchor": anchor, "unsampled_vs_sampled": ratio}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
