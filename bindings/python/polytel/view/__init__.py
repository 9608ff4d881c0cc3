"""polytel.view — one self-contained HTML page from the file exporter's OTLP/JSON lines.

    python -m polytel.view DIR... [-o trace.html]

reads every traces.jsonl, logs.jsonl and metrics.jsonl under the given folders (a file given by name is
read too, whatever its name) and writes one page with no network access: a timeline per trace, a
per-process view of every thread, details on click, search, metrics charts and the accounting from
polytel's self-metrics. Only the standard library is used. See docs/trace-view.md.

Exit status: 0 when something was read (corrupt lines are skipped, counted, and named on the page and on
stderr); 1 when nothing at all could be read (no file, or no readable record: no page is written);
2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ._reader import read

__all__ = ["read", "render", "write", "main"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _asset(name: str) -> str:
    with open(os.path.join(_HERE, name), encoding="utf-8") as f:
        return f.read()


def render(model: dict, title: str = "polytel trace view") -> str:
    """The page for a model from read(): HTML with the styles, the script and the data inline."""
    data = json.dumps(model, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    # Inside <script type="application/json"> only "</" can end the element early; "<\/" is the same JSON.
    data = data.replace("</", "<\\/").replace("<!--", "<\\u0021--")
    js = _asset("page.js")
    if "</script" in js.lower():  # pragma: no cover - a guard on our own asset
        raise RuntimeError("page.js must not contain </script")
    page = _asset("page.html")
    # Substituted last-first so that no inserted text is searched for the next placeholder.
    head, rest = page.split("__DATA__", 1)
    rest = rest.replace("__JS__", js, 1)
    head = head.replace("__CSS__", _asset("page.css"), 1).replace("__TITLE__", _html_escape(title), 1)
    return head + data + rest


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write_page(model: dict, out: str, title: str) -> None:
    html = render(model, title)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, out)  # a reader of `out` never sees half a page


def _title(paths) -> str:
    return "polytel: " + ", ".join(os.path.basename(os.path.normpath(p)) or p for p in paths)


def write(paths, out: str, title: str | None = None) -> dict:
    """Read `paths` and write the page to `out`; returns the model (its "input" part says what was read)."""
    model = read(paths)
    _write_page(model, out, title or _title(paths))
    return model


def _empty(model: dict) -> bool:
    return not (model["spans"]["start"] or model["logs"]["time"] or model["series"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m polytel.view",
        description="Write one self-contained HTML page (no network) showing the traces, logs and metrics in "
                    "the traces.jsonl, logs.jsonl and metrics.jsonl files under DIR (the file exporter's "
                    "OTLP/JSON lines, or the OpenTelemetry Collector's file exporter's).")  # fmt: skip
    ap.add_argument("paths", nargs="+", metavar="DIR", help="folders to search (recursively), or files to read")
    ap.add_argument("-o", "--output", default="trace.html", help="the page to write (default: trace.html)")
    ap.add_argument("--title", help="the page title")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    args = ap.parse_args(argv)
    model = read(args.paths)
    inp = model["input"]
    prog = "polytel.view"
    for p in inp["empty"]:
        kind = "does not exist" if not os.path.exists(p) else "has no traces.jsonl, logs.jsonl or metrics.jsonl"
        print("%s: %s %s" % (prog, p, kind), file=sys.stderr)
    if inp["badLines"] or inp["badRecords"]:
        print("%s: skipped %d corrupt line(s) and %d malformed record(s) of %d lines; first: %s"
              % (prog, inp["badLines"], inp["badRecords"], inp["lines"], inp["examples"][0]), file=sys.stderr)  # fmt: skip
    if _empty(model):
        print("%s: nothing to show: no span, log or metric could be read from %s; no page written"
              % (prog, ", ".join(args.paths)), file=sys.stderr)  # fmt: skip
        return 1
    try:
        _write_page(model, args.output, args.title or _title(args.paths))
    except OSError as e:
        print("%s: cannot write %s: %s" % (prog, args.output, e.strerror), file=sys.stderr)
        return 1
    if not args.quiet:
        n = len(model["spans"]["start"]), len(model["logs"]["time"]), sum(len(s["points"]) for s in model["series"])
        print("%s: %d spans, %d logs, %d metric points from %d files (%d processes) -> %s"
              % (prog, n[0], n[1], n[2], len(inp["files"]), len(model["processes"]), args.output))  # fmt: skip
    return 0
