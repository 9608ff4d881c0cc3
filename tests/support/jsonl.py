"""jsonl — loads the file exporter's OTLP/JSON lines (*.jsonl) into the receiver's normalized dict, with the same strict rules."""
from __future__ import annotations

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from otlp_receiver import (  # noqa: E402
    ITEM_KEYS,
    JSON_TOP_KEYS,
    OtlpDecodeError,
    empty_received,
    load_json_text,
    normalize,
    parse_otlp_json,
)


def parse_line(line: str | bytes, where: str = "line") -> tuple[str, list[dict]]:
    """One Export*ServiceRequest in OTLP/JSON -> (signal, normalized items). Raises OtlpDecodeError."""
    obj = load_json_text(line)
    if not isinstance(obj, dict):
        raise OtlpDecodeError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    keys = [k for k in obj if k in JSON_TOP_KEYS]
    if len(keys) != 1:
        raise OtlpDecodeError(f"{where}: want exactly one of {sorted(JSON_TOP_KEYS)} at top level, "
                              f"got keys {sorted(obj)}")
    signal = JSON_TOP_KEYS[keys[0]]
    return signal, normalize(signal, parse_otlp_json(obj, signal, where))


def load_file(path: str, into: dict | None = None) -> dict:
    got = into if into is not None else empty_received()
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            if not line.endswith(b"\n"):
                # A torn last line means the writer did not finish (or was not flushed).
                raise OtlpDecodeError(f"{where}: last line has no newline (incomplete write)")
            signal, items = parse_line(line, where)
            got[ITEM_KEYS[signal]].extend(items)
            got["requests"].append({"path": path, "line": n, "signal": signal, "items": len(items),
                                    "bytes": len(line)})
    return got


def load_dir(path: str) -> dict:
    """Every *.jsonl in `path` (sorted by name; lines in file order) -> {"spans","logs","metrics","requests","errors"}.

    Strict: the first malformed line raises OtlpDecodeError naming file:line.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"jsonl.load_dir: {path!r} is not a directory")
    got = empty_received()
    for file in sorted(glob.glob(os.path.join(path, "*.jsonl"))):
        load_file(file, got)
    return got


def span_tree(spans: list[dict], logs: list[dict] = ()):
    """Yields (depth, "span" | "log", item) depth-first: roots (spans whose parent is not among `spans`) by start,
    each span's logs (by time) then its children (by start). What the demo's summaries print."""
    ids = {s["span_id"] for s in spans}
    children: dict = {}
    for s in spans:
        children.setdefault(s["parent_span_id"] if s["parent_span_id"] in ids else "", []).append(s)
    logs_of: dict = {}
    for lg in logs:
        logs_of.setdefault(lg["span_id"], []).append(lg)

    def walk(s, depth):
        yield depth, "span", s
        for lg in sorted(logs_of.get(s["span_id"], []), key=lambda x: x["time_ns"]):
            yield depth + 1, "log", lg
        for c in sorted(children.get(s["span_id"], []), key=lambda x: x["start_ns"]):
            yield from walk(c, depth + 1)

    for root in sorted(children.get("", []), key=lambda x: x["start_ns"]):
        yield from walk(root, 0)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: jsonl.py DIR   (prints what the file exporter wrote, by signal)", file=sys.stderr)
        return 2
    got = load_dir(argv[0])
    print(f"spans={len(got['spans'])} logs={len(got['logs'])} metrics={len(got['metrics'])} "
          f"lines={len(got['requests'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
