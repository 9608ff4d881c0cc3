"""polytel.view reader: OTLP/JSON lines (one Export*ServiceRequest per line) into the page's compact model.

Lenient where a viewer should be: a line that is not JSON, or not an Export*ServiceRequest, is skipped and
counted (file:line and why); a record missing its essentials (ids, times) is skipped and counted; both
lowerCamelCase and snake_case keys are read (the OTLP/JSON rules ask receivers to accept both).
"""
from __future__ import annotations

import json
import os
import re

SIGNAL_FILES = ("traces.jsonl", "logs.jsonl", "metrics.jsonl")
_TOP = {
    "resourceSpans": "traces", "resource_spans": "traces",
    "resourceLogs": "logs", "resource_logs": "logs",
    "resourceMetrics": "metrics", "resource_metrics": "metrics",
}  # fmt: skip
_MAX_EXAMPLES = 20  # bad lines quoted on the page (all are counted)
_SAFE_INT = 2**53


def _num(v):
    """A JSON-able number: NaN and infinities (valid in OTLP, not in JSON) become their text."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    return v


def _fnum(v):
    if v is None:
        return None
    try:
        return _num(float(v))
    except (TypeError, ValueError):
        return str(v)


class BadRecord(ValueError):
    """A record that cannot be shown (no ids, no time): skipped and counted."""


def _g(obj, camel, snake=None, default=None):
    """obj[camel], else obj[snake]: the OTLP/JSON mapping allows both spellings."""
    if camel in obj:
        return obj[camel]
    if snake is not None and snake in obj:
        return obj[snake]
    return default


def _u64(v, what):
    """64-bit integers are decimal strings in OTLP/JSON; plain numbers are accepted too."""
    if v is None or v == "":
        return 0
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise BadRecord("%s is not an integer: %r" % (what, v)) from None
    if n < 0:
        raise BadRecord("%s is negative: %r" % (what, v))
    return n


_HEX = {8: re.compile(r"[0-9a-fA-F]{16}"), 16: re.compile(r"[0-9a-fA-F]{32}")}


def _hex_id(v, nbytes, what, required):
    if not v:
        if required:
            raise BadRecord("no %s" % what)
        return ""
    if not isinstance(v, str) or not _HEX[nbytes].fullmatch(v):
        if isinstance(v, str) and len(v) == 2 * nbytes:
            raise BadRecord("%s is not hex: %r" % (what, v))
        raise BadRecord("%s is not %d hex digits: %r" % (what, 2 * nbytes, v))
    v = v.lower()
    if v.count("0") == len(v):
        if required:
            raise BadRecord("%s is all zero" % what)
        return ""
    return v


def any_value(v):
    """An OTLP AnyValue as a JSON-able Python value (ints past 2**53 stay exact as text)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:  # the common case first
        return v["stringValue"]
    if "stringValue" in v or "string_value" in v:
        return _g(v, "stringValue", "string_value")
    if "intValue" in v or "int_value" in v:
        try:
            n = int(_g(v, "intValue", "int_value"))
        except (TypeError, ValueError):
            return str(_g(v, "intValue", "int_value"))
        return n if -_SAFE_INT < n < _SAFE_INT else str(n)
    if "doubleValue" in v or "double_value" in v:
        d = _g(v, "doubleValue", "double_value")
        return _num(d) if isinstance(d, (int, float)) else str(d)  # "NaN", "Infinity"
    if "boolValue" in v or "bool_value" in v:
        return bool(_g(v, "boolValue", "bool_value"))
    if "arrayValue" in v or "array_value" in v:
        return [any_value(x) for x in (_g(v, "arrayValue", "array_value") or {}).get("values", [])]
    if "kvlistValue" in v or "kvlist_value" in v:
        return {kv.get("key", ""): any_value(kv.get("value")) for kv in
                (_g(v, "kvlistValue", "kvlist_value") or {}).get("values", [])}  # fmt: skip
    if "bytesValue" in v or "bytes_value" in v:
        return _g(v, "bytesValue", "bytes_value")  # base64 text, as OTLP/JSON writes it
    return None


def attr_list(kvs):
    """[{key, value: AnyValue}] -> [(key, value)] in wire order."""
    out = []
    for kv in kvs or ():
        if isinstance(kv, dict):
            out.append((str(kv.get("key", "")), any_value(kv.get("value"))))
    return out


def find_files(paths):
    """Every traces/logs/metrics.jsonl under each path (a file given directly is read whatever its name).

    Returns (files, empty): the files in a stable order, and the paths that held none.
    """
    files, empty, seen = [], [], set()
    for p in paths:
        found = []
        if os.path.isfile(p):
            found = [p]
        elif os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, n) for n in sorted(names) if n in SIGNAL_FILES]
        if not found:
            empty.append(p)
        for f in found:  # a file reached twice (a folder and its subfolder given) is read once
            real = os.path.realpath(f)
            if real not in seen:
                seen.add(real)
                files.append(f)
    return files, empty


class Model:
    """Everything read, interned and columnar, ready for JSON: see to_json() for the shape."""

    def __init__(self):
        self.strings, self.strtab = {}, []
        self.proc_ix, self.procs = {}, []
        self.lane_ix, self.lanes = {}, []
        self.attr_ix, self.attrsets = {}, []
        self.span_key = {}  # (trace, span) -> index, for parents, logs and duplicates
        self.trace_ix, self.trace_ids = {}, []
        # spans, columnar
        self.s_lane, self.s_start, self.s_end, self.s_name, self.s_trace, self.s_id = [], [], [], [], [], []
        self.s_parent, self.s_status, self.s_msg, self.s_attrs, self.s_kind, self.s_scope = [], [], [], [], [], []
        self.s_events, self.s_links = {}, {}  # sparse: index -> list
        # logs, columnar
        self.l_lane, self.l_time, self.l_sev, self.l_body, self.l_span, self.l_attrs, self.l_scope = ([] for _ in range(7))
        self.l_span_key = []  # (trace, span) or None, resolved at the end
        self.series_ix, self.series = {}, []
        self.files, self.bad_examples = [], []
        self.bad_lines = self.bad_records = self.duplicates = 0
        self.lines = 0

    # ---------------------------------------------------------------- interning

    def s(self, text):
        i = self.strings.get(text)
        if i is None:
            i = self.strings[text] = len(self.strtab)
            self.strtab.append(text)
        return i

    def attrs(self, pairs):
        if not pairs:
            return -1
        # The type is part of the key: True and 1 are equal (and hash alike) in Python, not on the wire.
        try:
            key = tuple((k, type(v), v) for k, v in pairs)
            i = self.attr_ix.get(key)
        except TypeError:  # a list or map value: not hashable
            key = json.dumps(pairs, separators=(",", ":"), ensure_ascii=False, default=str)
            i = self.attr_ix.get(key)
        if i is None:
            i = self.attr_ix[key] = len(self.attrsets)
            self.attrsets.append([[self.s(k), v] for k, v in pairs])
        return i

    def process(self, res_pairs):
        res = dict(res_pairs)
        key = (str(res.get("service.name", "")), str(res.get("host.name", "")), str(res.get("process.pid", "")),
               str(res.get("service.instance.id", "")))  # fmt: skip
        i = self.proc_ix.get(key)
        if i is None:
            i = self.proc_ix[key] = len(self.procs)
            self.procs.append({
                "service": key[0] or "(unknown service)", "host": key[1], "pid": res.get("process.pid"),
                "lang": res.get("telemetry.sdk.language", ""), "resource": self.attrs(res_pairs),
                "counts": {"spans": 0, "logs": 0, "points": 0}, "acct": {},
            })  # fmt: skip
        return i

    def lane(self, proc, tid, tname):
        key = (proc, tid)
        i = self.lane_ix.get(key)
        if i is None:
            i = self.lane_ix[key] = len(self.lanes)
            self.lanes.append([proc, tid, tname or ""])
        elif tname and not self.lanes[i][2]:
            self.lanes[i][2] = tname
        return i

    def trace(self, tid):
        i = self.trace_ix.get(tid)
        if i is None:
            i = self.trace_ix[tid] = len(self.trace_ids)
            self.trace_ids.append(tid)
        return i

    # -------------------------------------------------------------- reading

    def bad(self, where, why):
        self.bad_lines += 1
        if len(self.bad_examples) < _MAX_EXAMPLES:
            self.bad_examples.append("%s: %s" % (where, why))

    def bad_record(self, where, why):
        self.bad_records += 1
        if len(self.bad_examples) < _MAX_EXAMPLES:
            self.bad_examples.append("%s: record skipped: %s" % (where, why))

    def read_file(self, path):
        info = {"path": path, "lines": 0, "bad": 0, "signal": ""}
        self.files.append(info)
        try:
            f = open(path, "rb")
        except OSError as e:
            self.bad(path, "cannot open: %s" % e.strerror)
            info["bad"] += 1
            return
        with f:
            n = 0
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                info["lines"] += 1
                self.lines += 1
                where = "%s:%d" % (path, n)
                before = self.bad_lines
                self.read_line(raw, where, info)
                info["bad"] += self.bad_lines - before

    def read_line(self, raw, where, info):
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError:
            self.bad(where, "not UTF-8")
            return
        except ValueError as e:
            torn = not raw.endswith(b"\n")
            self.bad(where, ("truncated line (no newline at the end, an unfinished write): " if torn else
                             "not JSON: ") + str(e).split(":")[0])  # fmt: skip
            return
        if not isinstance(obj, dict):
            self.bad(where, "a JSON %s, not an Export*ServiceRequest object" % type(obj).__name__)
            return
        keys = [k for k in obj if k in _TOP]
        if len(keys) != 1 or not isinstance(obj[keys[0]], list):
            self.bad(where, "no resourceSpans, resourceLogs or resourceMetrics list (keys: %s)"
                     % ", ".join(sorted(obj)[:5]))  # fmt: skip
            return
        signal = _TOP[keys[0]]
        info["signal"] = info["signal"] or signal
        for block in obj[keys[0]]:
            if not isinstance(block, dict):
                self.bad_record(where, "a resource entry is not an object")
                continue
            res = attr_list((block.get("resource") or {}).get("attributes"))
            proc = self.process(res)
            if signal == "traces":
                self._spans(block, proc, where)
            elif signal == "logs":
                self._logs(block, proc, where)
            else:
                self._metrics(block, proc, where)

    def _spans(self, block, proc, where):
        for ss in _g(block, "scopeSpans", "scope_spans") or ():
            scope = self.s(str((ss.get("scope") or {}).get("name", "")))
            for sp in ss.get("spans") or ():
                try:
                    self._span(sp, proc, scope)
                except (BadRecord, AttributeError, TypeError) as e:
                    self.bad_record(where, "span %s" % (e if isinstance(e, BadRecord) else "is malformed"))

    def _span(self, sp, proc, scope):
        trace = _hex_id(_g(sp, "traceId", "trace_id"), 16, "traceId", True)
        sid = _hex_id(_g(sp, "spanId", "span_id"), 8, "spanId", True)
        parent = _hex_id(_g(sp, "parentSpanId", "parent_span_id"), 8, "parentSpanId", False)
        start = _u64(_g(sp, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
        end = _u64(_g(sp, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
        if not start:
            raise BadRecord("no startTimeUnixNano")
        end = max(end, start)
        if (trace, sid) in self.span_key:
            self.duplicates += 1
            return
        attrs = attr_list(sp.get("attributes"))
        tid, tname = _thread(attrs)
        i = len(self.s_start)
        self.span_key[(trace, sid)] = i
        status = sp.get("status") or {}
        self.s_lane.append(self.lane(proc, tid, tname))
        self.s_start.append(start)
        self.s_end.append(end)
        self.s_name.append(self.s(str(sp.get("name", ""))))
        self.s_trace.append(self.trace(trace))
        self.s_id.append(sid)
        self.s_parent.append(parent)  # resolved to an index in finish()
        self.s_status.append(int(status.get("code", 0) or 0))
        self.s_msg.append(self.s(str(status.get("message", ""))) if status.get("message") else -1)
        self.s_attrs.append(self.attrs(attrs))
        self.s_kind.append(int(sp.get("kind", 0) or 0))
        self.s_scope.append(scope)
        evs = sp.get("events")
        if evs:
            self.s_events[i] = [[_u64(_g(e, "timeUnixNano", "time_unix_nano"), "event time"), str(e.get("name", "")),
                                 self.attrs(attr_list(e.get("attributes")))] for e in evs]  # fmt: skip
        links = sp.get("links")
        if links:
            self.s_links[i] = [[_hex_id(_g(ln, "traceId", "trace_id"), 16, "link traceId", True),
                                _hex_id(_g(ln, "spanId", "span_id"), 8, "link spanId", True),
                                self.attrs(attr_list(ln.get("attributes")))] for ln in links]  # fmt: skip
        self.procs[proc]["counts"]["spans"] += 1

    def _logs(self, block, proc, where):
        for sl in _g(block, "scopeLogs", "scope_logs") or ():
            scope = self.s(str((sl.get("scope") or {}).get("name", "")))
            for lr in _g(sl, "logRecords", "log_records") or ():
                try:
                    self._log(lr, proc, scope)
                except (BadRecord, AttributeError, TypeError) as e:
                    self.bad_record(where, "log %s" % (e if isinstance(e, BadRecord) else "is malformed"))

    def _log(self, lr, proc, scope):
        t = _u64(_g(lr, "timeUnixNano", "time_unix_nano"), "timeUnixNano") or _u64(
            _g(lr, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano")
        if not t:
            raise BadRecord("no timeUnixNano")
        trace = _hex_id(_g(lr, "traceId", "trace_id"), 16, "traceId", False)
        sid = _hex_id(_g(lr, "spanId", "span_id"), 8, "spanId", False)
        attrs = attr_list(lr.get("attributes"))
        tid, tname = _thread(attrs)
        body = any_value(lr.get("body"))
        if not isinstance(body, str):
            body = "" if body is None else json.dumps(body, ensure_ascii=False, default=str)
        self.l_lane.append(self.lane(proc, tid, tname) if tid is not None else -1 - proc)  # -1-proc: resolved later
        self.l_time.append(t)
        self.l_sev.append(int(_g(lr, "severityNumber", "severity_number", 0) or 0))
        self.l_body.append(body)
        self.l_span_key.append((trace, sid) if trace and sid else None)
        self.l_attrs.append(self.attrs(attrs))
        self.l_scope.append(scope)
        self.procs[proc]["counts"]["logs"] += 1

    def _metrics(self, block, proc, where):
        for sm in _g(block, "scopeMetrics", "scope_metrics") or ():
            for m in sm.get("metrics") or ():
                try:
                    self._metric(m, proc)
                except (BadRecord, AttributeError, TypeError, ValueError) as e:
                    self.bad_record(where, "metric %s" % (e if isinstance(e, BadRecord) else "is malformed"))

    def _metric(self, m, proc):
        name, unit = str(m.get("name", "")), str(m.get("unit", ""))
        for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary"):
            data = m.get(kind) or (m.get("exponential_histogram") if kind == "exponentialHistogram" else None)
            if data is not None:
                break
        else:
            raise BadRecord("%s has no sum, gauge or histogram" % name)
        temporality = int(_g(data, "aggregationTemporality", "aggregation_temporality", 0) or 0)
        monotonic = bool(_g(data, "isMonotonic", "is_monotonic", False))
        for dp in _g(data, "dataPoints", "data_points") or ():
            attrs = attr_list(dp.get("attributes"))
            t = _u64(_g(dp, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
            if not t:
                raise BadRecord("%s: a point has no timeUnixNano" % name)
            start = _u64(_g(dp, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
            key = (proc, name, kind, json.dumps(attrs, sort_keys=True, default=str))
            si = self.series_ix.get(key)
            if si is None:
                si = self.series_ix[key] = len(self.series)
                self.series.append({"proc": proc, "name": name, "unit": unit, "kind": kind,
                                    "temporality": temporality, "monotonic": monotonic,
                                    "attrs": self.attrs(attrs), "points": [], "last": None})  # fmt: skip
            ser = self.series[si]
            if kind in ("sum", "gauge"):
                v = _g(dp, "asInt", "as_int")
                v = int(v) if v is not None else _fnum(_g(dp, "asDouble", "as_double", 0) or 0)
                ser["points"].append([t, start, v])
            else:
                count = _u64(dp.get("count"), "count")
                total = dp.get("sum")
                ser["points"].append([t, start, count])
                if ser["last"] is None or t >= ser["last"]["t"]:
                    ser["last"] = {
                        "t": t, "count": count, "sum": _fnum(total),
                        "bounds": [_fnum(b) for b in _g(dp, "explicitBounds", "explicit_bounds") or ()],
                        "buckets": [_u64(c, "bucketCounts") for c in _g(dp, "bucketCounts", "bucket_counts") or ()],
                        "min": _fnum(dp.get("min")), "max": _fnum(dp.get("max")),
                    }  # fmt: skip
            if name.startswith("polytel.") and kind in ("sum", "gauge"):  # counters, and the pending gauge
                self._account(proc, name, dict(attrs), t, ser["points"][-1][2])
            self.procs[proc]["counts"]["points"] += 1

    def _account(self, proc, name, attrs, t, v):
        """The newest value of each self-metric of the process (cumulative counters: the newest is the total)."""
        field = name[len("polytel."):]
        if field == "dropped":
            field = "dropped." + str(attrs.get("reason", "other"))
        acct = self.procs[proc]["acct"]
        old = acct.get(field)
        if old is None or t >= old[0]:
            acct[field] = [t, v]

    # ----------------------------------------------------------------- output

    def finish(self):
        """Resolve parents and log spans to indices, times to offsets from t0; returns the page's model."""
        times = [x for x in (min(self.s_start, default=0), min(self.l_time, default=0)) if x]
        times += [p[0] for ser in self.series for p in ser["points"][:1]]
        t0 = min(times) if times else 0
        key = self.span_key
        parents = []
        for i, p in enumerate(self.s_parent):
            parents.append(key.get((self.trace_ids[self.s_trace[i]], p), -1) if p else -1)
        # A parent that was never exported (or lives in files not given) is kept as text for the details.
        missing_parent = {i: p for i, p in enumerate(self.s_parent) if p and parents[i] < 0}
        l_span, l_lane = [], []
        for j, k in enumerate(self.l_span_key):
            si = key.get(k, -1) if k else -1
            l_span.append(si)
            lane = self.l_lane[j]
            if lane < 0:  # no thread.id: the lane of its span, else the process's "no thread" lane
                lane = self.s_lane[si] if si >= 0 and self.lanes[self.s_lane[si]][0] == -1 - lane else \
                    self.lane(-1 - lane, None, "")  # fmt: skip
            l_lane.append(lane)
        order = sorted(range(len(self.l_time)), key=self.l_time.__getitem__)
        series = []
        for ser in self.series:
            ser["points"].sort()
            ser["points"] = [[p[0] - t0, (p[1] - t0) if p[1] else None, p[2]] for p in ser["points"]]
            if ser["last"] is not None:
                ser["last"]["t"] -= t0
            series.append(ser)
        for p in self.procs:
            p["acct"] = {k: v[1] for k, v in p["acct"].items()}
        return {
            "version": 1, "t0": str(t0), "strings": self.strtab, "attrsets": self.attrsets,
            "processes": self.procs, "lanes": self.lanes, "traces": self.trace_ids,
            "spans": {
                "lane": self.s_lane, "start": [x - t0 for x in self.s_start], "end": [x - t0 for x in self.s_end],
                "name": self.s_name, "trace": self.s_trace, "id": self.s_id, "parent": parents,
                "status": self.s_status, "msg": self.s_msg, "attrs": self.s_attrs, "kind": self.s_kind,
                "scope": self.s_scope, "missingParent": {str(k): v for k, v in missing_parent.items()},
                "events": {str(k): [[e[0] - t0 if e[0] else None, e[1], e[2]] for e in v]
                           for k, v in self.s_events.items()},
                "links": {str(k): v for k, v in self.s_links.items()},
            },
            "logs": {
                "lane": [l_lane[j] for j in order], "time": [self.l_time[j] - t0 for j in order],
                "sev": [self.l_sev[j] for j in order], "body": [self.l_body[j] for j in order],
                "span": [l_span[j] for j in order], "attrs": [self.l_attrs[j] for j in order],
                "scope": [self.l_scope[j] for j in order],
            },
            "series": series,
            "input": {"files": self.files, "lines": self.lines, "badLines": self.bad_lines,
                      "badRecords": self.bad_records, "duplicates": self.duplicates, "examples": self.bad_examples},
        }  # fmt: skip


def _thread(attrs):
    """thread.id / thread.name from a record's attributes (they stay in them too, for the details)."""
    tid = tname = None
    for k, v in attrs:
        if k == "thread.id":
            tid = v if isinstance(v, int) else str(v)
        elif k == "thread.name":
            tname = str(v)
    return tid, tname


def read(paths):
    """Read every signal file under `paths`; returns (model dict, list of paths that held no file)."""
    files, empty = find_files(paths)
    m = Model()
    for f in files:
        m.read_file(f)
    out = m.finish()
    out["input"]["empty"] = empty
    return out
