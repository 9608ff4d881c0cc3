"""test_fork_storm — a full-mode parent with emitting threads forks 20+ children mid-stream (C, Python, Ruby): nothing hangs, every child event arrives once under the child's pid, no parent event twice."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from conftest import SOAK, clean_env, program, run, run_python, run_ruby

CHILDREN = 100 if SOAK else 24
CHILD_EVENTS = 50
PARENT_MIN = 3000
HANG_GUARD = 300 if SOAK else 120

PY_STORM = r"""
import json, os, sys, threading, time
import polytel

children, child_events, parent_min = map(int, sys.argv[1:4])
polytel.bootstrap_worker()
over = threading.Event()
emitted = {}
progress = [0]

def emit(t):
    i = 0
    while i < parent_min or not over.is_set():
        with polytel.span("parent-span"):
            polytel.info(f"parent t{t} e{i}")
        i += 1
        progress[0] += 1
        if i % 50 == 0:
            time.sleep(0.001)
    emitted[t] = i

threads = [threading.Thread(target=emit, args=(t,)) for t in range(2)]
for th in threads:
    th.start()
pids, mid = [], 0
while progress[0] == 0:  # the first fork too lands mid-stream (on a loaded machine the threads may not have run)
    time.sleep(0.001)
for c in range(children):
    time.sleep(0.005)
    before = progress[0]
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            phase_before = polytel.phase()
            res = polytel.bootstrap_worker()
            with polytel.span(f"child-span c{c}"):
                for i in range(child_events):
                    polytel.info(f"child c{c} e{i}")
            rc = polytel.shutdown(10000)
            st = polytel.stats()
            line = "CHILD " + json.dumps({"who": c, "pid": os.getpid(), "phase_before": phase_before,
                                         "status": res["status"], "shutdown_rc": rc, "recorded": st["recorded"],
                                         "exported": st["exported"], "dropped": st["dropped"]}) + "\n"
            os.write(1, line.encode())  # one write: children share the pipe
            code = 0 if rc == 0 else 3
        finally:
            os._exit(code)
    pids.append(pid)
    mid += before > 0
over.set()
failed = 0
for pid in pids:
    _, status = os.waitpid(pid, 0)
    failed += status != 0
for th in threads:
    th.join()
rc = polytel.shutdown(10000)
st = polytel.stats()
print("FORKS " + json.dumps({"children": children, "forked_mid_stream": mid, "failed": failed,
                             "emitted": [emitted[0], emitted[1]]}))
print("PARENT " + json.dumps({"pid": os.getpid(), "shutdown_rc": rc, "recorded": st["recorded"],
                              "exported": st["exported"], "dropped": st["dropped"], "pending": st["pending"]}))
"""

RB_STORM = r"""
require "json"
require "polytel"

children, child_events, parent_min = ARGV.map(&:to_i)
Polytel.bootstrap_worker
over = false
emitted = {}
progress = 0
threads = (0..1).map do |t|
  Thread.new do
    i = 0
    while i < parent_min || !over
      Polytel.span("parent-span") { Polytel.info("parent t#{t} e#{i}") }
      i += 1
      progress += 1
      sleep 0.001 if (i % 50).zero?
    end
    emitted[t] = i
  end
end
pids = []
mid = 0
sleep 0.001 until progress.positive? # the first fork too lands mid-stream (a loaded machine may not have run them)
children.times do |c|
  sleep 0.005
  before = progress
  $stdout.flush
  pid = fork do
    code = 4
    begin
      phase_before = Polytel.phase
      res = Polytel.bootstrap_worker
      Polytel.span("child-span c#{c}") do
        child_events.times { |i| Polytel.info("child c#{c} e#{i}") }
      end
      ok = Polytel.shutdown(10_000)
      st = Polytel.stats
      # One write per line: children share the pipe.
      $stdout.syswrite("CHILD " + JSON.dump({ "who" => c, "pid" => Process.pid, "phase_before" => phase_before.to_s,
                                  "status" => res[:status], "shutdown_rc" => ok ? 0 : -1,
                                  "recorded" => st[:recorded], "exported" => st[:exported],
                                  "dropped" => st[:dropped] }) + "\n")
      code = ok ? 0 : 3
    ensure
      exit!(code)
    end
  end
  pids << pid
  mid += 1 if before.positive?
end
over = true
failed = 0
pids.each do |pid|
  Process.wait(pid)
  failed += 1 unless $?.exitstatus.zero?
end
threads.each(&:join)
ok = Polytel.shutdown(10_000)
st = Polytel.stats
puts "FORKS " + JSON.dump({ "children" => children, "forked_mid_stream" => mid, "failed" => failed,
                            "emitted" => [emitted[0], emitted[1]] })
puts "PARENT " + JSON.dump({ "pid" => Process.pid, "shutdown_rc" => ok ? 0 : -1, "recorded" => st[:recorded],
                             "exported" => st[:exported], "dropped" => st[:dropped], "pending" => st[:pending] })
"""


def check_storm(r, got: dict, service: str, children: int, child_events: int, spans_per_parent_event: int) -> dict:
    """The storm's assertions; returns its figures."""
    forks, parent, kids = r.one("FORKS"), r.one("PARENT"), r.lines("CHILD")
    assert forks["failed"] == 0, r.describe()
    assert forks["forked_mid_stream"] == children >= 20, forks
    assert sorted(k["who"] for k in kids) == list(range(children)), r.describe()
    pid_of = {k["who"]: k["pid"] for k in kids}
    assert len(set(pid_of.values()) | {parent["pid"]}) == children + 1

    logs = [lg for lg in got["logs"] if lg["service"] == service]
    spans = [s for s in got["spans"] if s["service"] == service]
    where = Counter((lg["body"], lg["resource"]["process.pid"]) for lg in logs)
    dup = {k: v for k, v in where.items() if v > 1}
    assert not dup, f"events arrived more than once: {list(dup.items())[:10]}"

    # Every child event exactly once, under the child's own process.pid.
    want_child = {(f"child c{c} e{i}", pid_of[c]) for c in range(children) for i in range(child_events)}
    got_child = {k for k in where if k[0].startswith("child ")}
    assert got_child == want_child, (f"missing {sorted(want_child - got_child)[:10]}, "
                                     f"unexpected {sorted(got_child - want_child)[:10]}")
    child_spans = Counter((s["name"], s["resource"]["process.pid"]) for s in spans if s["name"].startswith("child-"))
    assert child_spans == Counter({(f"child-span c{c}", pid_of[c]): 1 for c in range(children)})

    # No parent event twice, none under a child's pid, and (shutdown delivered everything) all of them.
    want_parent = {(f"parent t{t} e{i}", parent["pid"]) for t in range(2) for i in range(forks["emitted"][t])}
    got_parent = {k for k in where if k[0].startswith("parent ")}
    assert got_parent == want_parent, (f"missing {len(want_parent - got_parent)}, "
                                       f"unexpected {sorted(got_parent - want_parent)[:10]}")
    parent_spans = [s for s in spans if s["name"] == "parent-span"]
    assert len({s["span_id"] for s in parent_spans}) == len(parent_spans) == spans_per_parent_event * len(want_parent)
    assert {s["resource"]["process.pid"] for s in parent_spans} == {parent["pid"]}

    n_parent = len(want_parent) * (1 + spans_per_parent_event)
    assert parent["shutdown_rc"] == 0, parent
    assert (parent["recorded"], parent["exported"], parent["dropped"]) == (n_parent, n_parent, 0), parent
    for k in kids:
        assert k["shutdown_rc"] == 0 and k["recorded"] == k["exported"] == child_events + 1 and k["dropped"] == 0, k
    return {"children": children, "forked_mid_stream": forks["forked_mid_stream"], "child_events": child_events,
            "child_events_received": len(got_child), "parent_events": len(want_parent),
            "parent_events_received": len(got_parent), "duplicates": sum(v - 1 for v in where.values()),
            "seconds": round(r.elapsed, 2)}


def wait_all(receiver, service: str, n_logs: int) -> dict:
    # Everything was delivered before each process exited (shutdown_rc == 0); this only covers the
    # receiver's own bookkeeping threads.
    return receiver.wait_for(lambda g: sum(lg["service"] == service for lg in g["logs"]) >= n_logs, timeout=30)


def test_fork_storm_c(receiver, figures):
    svc = "storm-c"
    r = run([program("forkstorm"), "--children", CHILDREN, "--child-events", CHILD_EVENTS, "--parent-events",
             PARENT_MIN, "--threads", 2],
            clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": svc}),
            timeout=HANG_GUARD).ok()
    emitted = r.one("FORKS")["emitted"]
    got = wait_all(receiver, svc, CHILDREN * CHILD_EVENTS + sum(emitted))
    receiver.assert_no_errors()
    figures["fork_storm_c"] = check_storm(r, got, svc, CHILDREN, CHILD_EVENTS, 1)


@pytest.mark.parametrize("lang", ["python", "ruby"])
def test_fork_storm_binding(receiver, figures, lang):
    runner, script, svc = {"python": (run_python, PY_STORM, "storm-py"), "ruby": (run_ruby, RB_STORM, "storm-rb")}[lang]
    r = runner(script, clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": svc}),
               timeout=HANG_GUARD, args=(CHILDREN, CHILD_EVENTS, PARENT_MIN // 3)).ok()
    emitted = r.one("FORKS")["emitted"]
    got = wait_all(receiver, svc, CHILDREN * CHILD_EVENTS + sum(emitted))
    receiver.assert_no_errors()
    for k in r.lines("CHILD"):
        assert k["status"] == "started" and k["phase_before"] in ("console", "deferred"), k
    figures[f"fork_storm_{lang}"] = check_storm(r, got, svc, CHILDREN, CHILD_EVENTS, 1)
