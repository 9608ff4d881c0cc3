"""run.py BUILD_DIR [OUT_JSON] — polytel, micromegas-tracing and LTTng-UST timed side by side in one run.

Builds the two peers (cargo; make with pkg-config lttng-ust), starts an LTTng session daemon and a per-UID
snapshot session when it can (root), then runs ROUNDS rounds of polytel, micromegas, LTTng, one process each,
alternating, so slow phases of a shared machine fall on all three. Every process times the same loop
(bench/bench_timing.h, ported to Rust for micromegas) beside one rdtsc in that same process, and reports what
was recorded against what was called. Prints a markdown table; writes every figure to OUT_JSON for
bench/report.py (the targets). Exits non-zero when a peer cannot be built or run, or its events were not all
recorded. See bench/peers/README.md for how each peer is set up.
"""
from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ROUNDS = int(os.environ.get("BENCH_PEER_ROUNDS", "3"))
OPS = [("span", "span begin+end pair"), ("log_static", "log, static message"), ("log_2ints", "log, two int args"),
       ("counter", "counter add")]
# LTTng: events per call of each op (a span is two tracepoints), for the verification pass.
LTTNG_EVENTS = {"span": {"span_begin": 1, "span_end": 1}, "log_static": {"log_static": 1},
                "log_2ints": {"log_2ints": 1}, "counter": {"counter_add": 1}}


def log(msg: str) -> None:
    print(f"peers: {msg}", file=sys.stderr, flush=True)


def cargo() -> str:
    """cargo on PATH, else rustup's default place (~/.cargo/bin), else CARGO_HOME's."""
    found = shutil.which("cargo")
    if found:
        return found
    for d in (os.environ.get("CARGO_HOME"), os.path.expanduser("~/.cargo")):
        if d and os.access(os.path.join(d, "bin", "cargo"), os.X_OK):
            return os.path.join(d, "bin", "cargo")
    raise SystemExit("peers: cargo not found (PATH, $CARGO_HOME/bin, ~/.cargo/bin); install Rust (rustup) to build "
                     "the micromegas peer")


def build(build_dir: str) -> dict:
    out = os.path.join(build_dir, "peers")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(out, "micromegas"))
    log("cargo build --release (micromegas-tracing 0.33.0 from crates.io)")
    subprocess.run([cargo(), "build", "--release", "--quiet", "-j2", "--manifest-path",
                    os.path.join(HERE, "micromegas", "Cargo.toml")], env=env, check=True, stdout=sys.stderr)
    log("make (LTTng-UST provider + bench)")
    subprocess.run(["make", "-s", "-C", os.path.join(HERE, "lttng"), f"OUT={os.path.join(out, 'lttng')}"],
                   check=True, stdout=sys.stderr)
    return {"polytel": [os.path.join(build_dir, "bench", "bench_hotpath"), "--peer"],
            "micromegas": [os.path.join(out, "micromegas", "release", "bench-micromegas")],
            "lttng": [os.path.join(out, "lttng", "bench_lttng")]}


class LttngSession:
    """A session daemon (started here only if none runs, and stopped by pid at the end) and one snapshot
    session with per-UID buffers for the polytel_bench provider. `name` stays None where that is impossible."""

    def __init__(self):
        self.name = None
        self.why_not = None
        self.started_pid = None
        self.dir = tempfile.mkdtemp(prefix="polytel-lttng-")

    def lttng(self, *args, check=True):
        return subprocess.run(["lttng", *args], capture_output=True, text=True, check=check)

    def start(self):
        if not shutil.which("lttng") or not shutil.which("lttng-sessiond"):
            self.why_not = "lttng-tools not installed"
            return self
        if os.geteuid() != 0:
            self.why_not = "not root: no session daemon (lttng-sessiond --no-kernel runs as root here)"
            return self
        # A zombie (an old daemon not yet reaped) does not count as running.
        if subprocess.run(["pgrep", "-x", "-r", "R,S,D", "lttng-sessiond"], capture_output=True).returncode != 0:
            r = subprocess.run(["lttng-sessiond", "--no-kernel", "--daemonize"], capture_output=True, text=True)
            if r.returncode != 0:
                self.why_not = f"lttng-sessiond failed: {r.stderr.strip()[:200]}"
                return self
            try:
                self.started_pid = int(open("/var/run/lttng/lttng-sessiond.pid").read().strip())
            except (OSError, ValueError):
                self.started_pid = None
        name = f"polytel-bench-{os.getpid()}"
        try:
            self.lttng("create", name, "--snapshot", f"--output={self.dir}")
            self.name = name
            self.lttng("enable-channel", "-u", "-s", name, "--buffers-uid", "bench")
            self.lttng("enable-event", "-u", "-s", name, "-c", "bench", "polytel_bench:*")
            self.lttng("start", name)
        except subprocess.CalledProcessError as e:
            self.why_not = f"lttng {e.args[1][:2]} failed: {(e.stderr or '').strip()[:200]}"
            self.stop()
        return self

    def stop(self):
        if self.name:
            self.lttng("destroy", self.name, check=False)
            self.name = None
        if self.started_pid:
            try:
                os.kill(self.started_pid, 15)
            except ProcessLookupError:
                pass
            self.started_pid = None

    def count(self, op_index: int, key: str) -> dict:
        """Events per name between marker(op, 0) and marker(op, 1) in the snapshot taken after op `key`."""
        snaps = sorted(d for d in os.listdir(self.dir) if d.startswith(f"op{op_index}-"))
        if not snaps:
            return {}
        path = os.path.join(self.dir, snaps[-1])
        txt = subprocess.run(["babeltrace2", path], capture_output=True, text=True, check=True).stdout
        counts, inside = collections.Counter(), False
        for line in txt.splitlines():
            m = re.search(r"polytel_bench:(\w+):", line)
            if not m:
                continue
            if m.group(1) == "marker":
                mm = re.search(r"op = (\d+), phase = (\d+)", line)
                if mm and int(mm.group(1)) == op_index:
                    inside = mm.group(2) == "0"
                continue
            if inside:
                counts[m.group(1)] += 1
        for d in snaps:  # a later round's snapshot of the same op gets its own count
            shutil.rmtree(os.path.join(self.dir, d), ignore_errors=True)
        return dict(counts)


def run_json(cmd, env=None) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"peers: {cmd[0]} exited {r.returncode}: {r.stderr.strip()[-500:]}")
    line = next((l for l in r.stdout.splitlines() if l.startswith("{")), None)
    if line is None:
        raise SystemExit(f"peers: {cmd[0]} printed no JSON line: {r.stdout[-500:]}")
    return json.loads(line)


def fmt_ns(v: float) -> str:
    return f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def main() -> int:
    build_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
    out_json = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "bench", "out", "peers.json")
    cmds = build(build_dir)
    sess = LttngSession().start()
    rounds = {p: [] for p in cmds}
    problems = []
    try:
        for r in range(ROUNDS):
            for peer, cmd in cmds.items():
                log(f"round {r + 1}/{ROUNDS}: {peer}")
                env = dict(os.environ)
                if peer == "lttng" and sess.name:
                    env["BENCH_LTTNG_SESSION"] = sess.name
                res = run_json(cmd, env)
                if peer == "lttng":
                    res["verified"] = bool(sess.name)
                    for i, (key, _label) in enumerate(OPS):
                        op = res["ops"][key]
                        if not sess.name:
                            op["recorded"] = op["expected"] = 0
                            continue
                        got = sess.count(i, key)
                        want = {ev: n * res["verify_calls"] for ev, n in LTTNG_EVENTS[key].items()}
                        op["expected"], op["recorded"] = sum(want.values()), sum(got.get(ev, 0) for ev in want)
                        op["snapshot_events"] = got
                        if got != want or op.get("snapshot_rc") != 0:
                            res["verified"] = False
                            problems.append(f"LTTng round {r + 1}, {key}: snapshot holds {got}, want {want}")
                elif not res.get("verified"):
                    problems.append(f"{peer} round {r + 1}: recorded != called: "
                                    + ", ".join(f"{k} {v['recorded']}/{v['expected']}" for k, v in res["ops"].items()))
                rounds[peer].append(res)
    finally:
        sess.stop()
        shutil.rmtree(sess.dir, ignore_errors=True)

    # Per peer and op: the best round (least disturbed), its ratio to the rdtsc of the same process, the range.
    summary = {}
    for peer, rs in rounds.items():
        summary[peer] = {"rdtsc_ns": min(x["rdtsc_ns"] for x in rs),
                         "rdtsc_cpu_ns": min(x["rdtsc_cpu_ns"] for x in rs), "ops": {}}
        for key, _ in OPS:
            best = min(rs, key=lambda x: x["ops"][key]["ns"])
            best_cpu = min(rs, key=lambda x: x["ops"][key]["cpu_ns"])
            vals = [x["ops"][key]["ns"] for x in rs]
            summary[peer]["ops"][key] = {
                "ns": best["ops"][key]["ns"], "x_rdtsc": best["ops"][key]["ns"] / best["rdtsc_ns"],
                "min": min(vals), "max": max(vals), "cpu_ns": best_cpu["ops"][key]["cpu_ns"],
                "x_rdtsc_cpu": best_cpu["ops"][key]["cpu_ns"] / best_cpu["rdtsc_cpu_ns"]}
    lttng_label = "LTTng (session)" if sess.why_not is None else "LTTng (no session)"
    doc = {"rounds": ROUNDS, "lttng_session": sess.why_not is None, "lttng_why_not": sess.why_not,
           "summary": summary, "raw": rounds, "problems": problems}
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)

    pt, mm, lt = (summary[p] for p in ("polytel", "micromegas", "lttng"))
    print(f"## C hot path beside rdtsc, micromegas and LTTng ({ROUNDS} alternating rounds)\n")
    print("Each round runs polytel, micromegas-tracing 0.33.0 and LTTng-UST one after the other, a process each,")
    print("every one timing the same loop (bench/bench_timing.h: best of 5 runs of 4000000 calls, each on a fresh")
    print("thread after 1000 warm-up calls) beside one rdtsc timed the same way in the same process. ns/op: the best")
    print("round (the range over rounds in brackets); x rdtsc: that figure over that process's rdtsc. polytel runs")
    print("phase 2 with POLYTEL_EXPORTER=none: the consumer thread drains and counts every record. How each peer")
    print("is set up: bench/peers/README.md.")
    if sess.why_not:
        print(f"\nLTTng ran **without a session** ({sess.why_not}): its figures are the cost of a tracepoint")
        print("that records nothing.")
    else:
        print("\nLTTng: a snapshot session (overwrite mode) with per-UID buffers, started by this run "
              "(lttng-sessiond --no-kernel).")
    print(f"\n| operation | polytel ns/op | x rdtsc | micromegas ns/op | x rdtsc | {lttng_label} ns/op | x rdtsc "
          "| polytel / micromegas | polytel / LTTng |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, label in OPS:
        a, b, c = pt["ops"][key], mm["ops"][key], lt["ops"][key]
        cells = []
        for v in (a, b, c):
            cells += [f"{fmt_ns(v['ns'])} ({fmt_ns(v['min'])}–{fmt_ns(v['max'])})", f"{v['x_rdtsc']:.2f}x"]
        print(f"| {label} | " + " | ".join(cells) + f" | {a['ns'] / b['ns']:.2f} | {a['ns'] / c['ns']:.2f} |")
    print(f"| one rdtsc (anchor) | {pt['rdtsc_ns']:.2f} | 1.00x | {mm['rdtsc_ns']:.2f} | 1.00x | "
          f"{lt['rdtsc_ns']:.2f} | 1.00x | | |")
    print("\nThe same runs by the calling thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), which leaves out the time")
    print("it was not running: on a busy 2-core machine, polytel's consumer thread (woken when a block is handed")
    print("off) can be scheduled on the emitting thread's core; micromegas has no such thread, LTTng's consumer is")
    print("another process. Targets are judged on the wall-time table above.\n")
    print(f"| operation | polytel CPU ns/op | x rdtsc | micromegas CPU ns/op | x rdtsc | {lttng_label} CPU ns/op "
          "| x rdtsc | polytel / micromegas |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, label in OPS:
        a, b, c = pt["ops"][key], mm["ops"][key], lt["ops"][key]
        print(f"| {label} | {fmt_ns(a['cpu_ns'])} | {a['x_rdtsc_cpu']:.2f}x | {fmt_ns(b['cpu_ns'])} | "
              f"{b['x_rdtsc_cpu']:.2f}x | {fmt_ns(c['cpu_ns'])} | {c['x_rdtsc_cpu']:.2f}x | "
              f"{a['cpu_ns'] / b['cpu_ns']:.2f} |")
    print("\nRecorded, checked against the calls made (every round):")

    def recorded(peer):
        tot_r = sum(x["ops"][k]["recorded"] for x in rounds[peer] for k, _ in OPS)
        tot_e = sum(x["ops"][k]["expected"] for x in rounds[peer] for k, _ in OPS)
        return tot_r, tot_e, all(x.get("verified") for x in rounds[peer])

    r, e, ok = recorded("polytel")
    print(f"- polytel: {r} of {e} ({'all' if ok else 'NOT all'}): spans and logs from polytel_stats() "
          "(recorded, with 0 dropped), counter adds from the exported counter total.")
    r, e, ok = recorded("micromegas")
    print(f"- micromegas: {r} of {e} events ({'all' if ok else 'NOT all'}) counted in the blocks its sink received "
          "(a span is a begin and an end event).")
    if sess.why_not:
        print("- LTTng: nothing recorded (no session).")
    else:
        r, e, ok = recorded("lttng")
        print(f"- LTTng: {r} of {e} events ({'all' if ok else 'NOT all'}) of a 1000-call pass after each operation's "
              "timed runs, counted between two markers in a snapshot of the session (babeltrace2); the timed runs' "
              "own events overwrite the ring buffer, as snapshot mode does.")
    for p in problems:
        print(f"- PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
