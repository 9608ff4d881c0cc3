"""worker.py — runs tests/smoke/scenario.json step by step with the Python binding (polytel, pip-installed).

Usage: python worker.py [SCENARIO]  (default: ../scenario.json). Configuration comes from the environment
(TELEMETRY_ENABLED, OTEL_*, POLYTEL_*). With SMOKE_REPORT=FILE, each process appends JSON lines saying what it
observed (phase after load/bootstrap, the fork child's pid and exit status).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Exit(Exception):
    """The scenario's exit step: unwinds to main(), which leaves through sys.exit (atexit runs)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Worker:
    def __init__(self, scenario):
        self.target = scenario["target"]
        self.pt = None
        self.spans = []  # the open spans, innermost last

    def note(self, **kv):
        path = os.environ.get("SMOKE_REPORT")
        if path:
            kv["pid"] = os.getpid()
            with open(path, "a") as f:
                f.write(json.dumps(kv) + "\n")

    def run(self, steps):
        for step in steps:
            getattr(self, "op_" + step["op"])(step)

    def op_load(self, step):
        import polytel  # phase 1

        self.pt = polytel
        self.note(event="load", phase=polytel.phase())

    def op_log(self, step):
        level = getattr(self.pt, step["level"].upper())
        self.pt.log(level, self.target, step["body"], **step.get("attributes", {}))

    def op_bootstrap(self, step):
        st = self.pt.bootstrap_worker()
        self.note(event="bootstrap", phase=self.pt.phase(), status=st["status"], config=st["config"])

    def op_span(self, step):
        with self.pt.span(step["name"], **step.get("attributes", {})) as sp:
            self.spans.append(sp)
            try:
                self.run(step["steps"])
            finally:
                self.spans.pop()

    def op_set_attribute(self, step):
        self.spans[-1].set_attribute(step["key"], step["value"])

    def op_counter_add(self, step):
        self.pt.counter_add(step["name"], step["value"], unit=step.get("unit", ""), **step.get("attributes", {}))

    def op_fork(self, step):
        pid = os.fork()
        if pid == 0:
            self.note(event="fork-child")
            self.run(step["steps"])
            raise Exit(0)
        _, status = os.waitpid(pid, 0)
        self.note(event="fork", child_pid=pid, child_exit=os.waitstatus_to_exitcode(status))

    def op_exit(self, step):
        raise Exit(step.get("code", 0))


def main(argv):
    path = argv[1] if len(argv) > 1 else os.path.join(HERE, "..", "scenario.json")
    with open(path) as f:
        scenario = json.load(f)
    try:
        Worker(scenario).run(scenario["steps"])
    except Exit as e:
        # No shutdown here: polytel's atexit hook flushes, in the parent and in the fork child alike.
        sys.exit(e.code)


if __name__ == "__main__":
    main(sys.argv)
