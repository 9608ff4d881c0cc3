"""OTel API metrics on polytel's metric series: MeterProvider, Meter and its instruments, observable callbacks run
by one collection thread at polytel's metric export interval."""
import os
import sys
import threading
import weakref
from typing import Any

from opentelemetry import metrics as _m
from opentelemetry.metrics import CallbackOptions, Observation

import polytel

_counter_add = polytel.counter_add
_gauge_set = polytel.gauge_set
_histogram_record = polytel.histogram_record
_histogram_set_bounds = polytel._polytel.histogram_set_bounds
_warned: set = set()


def _warn_once(key, msg):
    if key not in _warned:
        _warned.add(key)
        sys.stderr.write("polytel.otel: %s\n" % msg)


def _record(fn, name, amount, unit, attributes):
    if not attributes:
        fn(name, amount, unit)
    elif "value" in attributes or "unit" in attributes:
        # polytel's metric calls take attributes as keywords beside value= and unit=: those two names would be
        # taken as the call's own arguments.
        _warn_once(("attr", name), "metric %r: points with an attribute named 'value' or 'unit' are dropped "
                   "(polytel's metric calls cannot carry those two keys)" % (name,))  # fmt: skip
    else:
        fn(name, amount, unit, **attributes)


def _key(attributes):
    return tuple(sorted(attributes.items())) if attributes else ()


def _clean(attributes):
    if not attributes:
        return {}
    return {k: (list(v) if type(v) is tuple else v) for k, v in attributes.items()}


class _Series:
    """Per-series Python state (float remainders, up-down totals, observed cumulative values)."""

    __slots__ = ("lock", "values")

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}


class Counter(_m.Counter):
    """A monotonic sum (OTLP Sum, cumulative). polytel's counters are int64: a float add carries its fraction
    in the series until it makes a whole unit."""

    def __init__(self, name, unit="", description=""):
        self._name, self._unit, self.description = name, unit or "", description
        self._frac = _Series()

    def add(self, amount, attributes=None, context=None):
        if type(amount) is int and amount >= 0:
            _record(_counter_add, self._name, amount, self._unit, attributes)
            return
        if not amount >= 0:
            _warn_once(("neg", self._name), "Counter %r: add(%r) ignored (a counter only goes up; use an "
                       "UpDownCounter)" % (self._name, amount))  # fmt: skip
            return
        k = _key(attributes)
        with self._frac.lock:
            total = self._frac.values.get(k, 0.0) + float(amount)
            whole = int(total)
            self._frac.values[k] = total - whole
        if whole:
            _record(_counter_add, self._name, whole, self._unit, _clean(attributes))


class UpDownCounter(_m.UpDownCounter):
    """A sum that goes both ways; polytel has no non-monotonic sum, so the running total is sent as a gauge."""

    def __init__(self, name, unit="", description=""):
        self._name, self._unit, self.description = name, unit or "", description
        self._totals = _Series()

    def add(self, amount, attributes=None, context=None):
        k = _key(attributes)
        with self._totals.lock:
            total = self._totals.values[k] = self._totals.values.get(k, 0) + amount
        _record(_gauge_set, self._name, float(total), self._unit, _clean(attributes))


def _advise(name, bounds):
    """The API's bucket advice as the core's bounds for the name (before its first record: series made from
    then on take them). The core refuses bounds that are not finite and increasing, or others set first, with
    a warning naming the histogram; what is not a sequence of numbers is refused here, also with one line."""
    try:
        _histogram_set_bounds(name, [float(b) for b in bounds])
    except (TypeError, ValueError) as e:
        _warn_once(("advice", name), "histogram %r: explicit_bucket_boundaries_advisory %r ignored (%s); it "
                   "keeps the default buckets" % (name, bounds, e))  # fmt: skip


class Histogram(_m.Histogram):
    """An explicit-bucket histogram: the API's bucket advice, else the core's default bounds."""

    def __init__(self, name, unit="", description="", explicit_bucket_boundaries_advisory=None):
        self._name, self._unit, self.description = name, unit or "", description
        self.explicit_bucket_boundaries_advisory = explicit_bucket_boundaries_advisory

    def record(self, amount, attributes=None, context=None):
        _record(_histogram_record, self._name, float(amount), self._unit, attributes)


_GaugeBase: Any = getattr(_m, "_Gauge", None) or getattr(_m, "Gauge")  # the API's synchronous gauge (once _Gauge)


class Gauge(_GaugeBase):
    """The last value set, per series."""

    def __init__(self, name, unit="", description=""):
        self._name, self._unit, self.description = name, unit or "", description

    def set(self, amount, attributes=None, context=None):
        _record(_gauge_set, self._name, float(amount), self._unit, attributes)


class _Observable:
    def __init__(self, name, callbacks=None, unit="", description=""):
        self._name, self._unit, self.description = name, unit or "", description
        self._callbacks = list(callbacks or ())
        self._last = _Series()
        _collector.register(self)

    def _observe(self, options):
        for cb in self._callbacks:
            try:
                if hasattr(cb, "__next__"):  # a generator: send() the options, it yields observations
                    obs = cb.send(options)
                else:
                    obs = cb(options)
                for o in obs or ():
                    self._record(o.value, o.attributes)
            except StopIteration:
                pass
            except Exception as e:  # a failing callback loses its own points, never the others'
                _warn_once(("cb", self._name, type(e)), "observable %r: callback %r raised %s: %s" % (
                    self._name, getattr(cb, "__qualname__", cb), type(e).__name__, e))


class ObservableCounter(_Observable, _m.ObservableCounter):
    """A callback's cumulative value; polytel adds the increase since the last observation of the series."""

    def _record(self, value, attributes):
        k = _key(attributes)
        with self._last.lock:
            last = self._last.values.get(k)
            self._last.values[k] = value
        if last is None:
            delta = value
        elif value >= last:
            delta = value - last
        else:  # the source restarted: a cumulative counter begins again from its new value
            delta = value
        whole = int(delta)
        if whole > 0:
            _record(_counter_add, self._name, whole, self._unit, _clean(attributes))


class ObservableUpDownCounter(_Observable, _m.ObservableUpDownCounter):
    def _record(self, value, attributes):
        _record(_gauge_set, self._name, float(value), self._unit, _clean(attributes))


class ObservableGauge(_Observable, _m.ObservableGauge):
    def _record(self, value, attributes):
        _record(_gauge_set, self._name, float(value), self._unit, _clean(attributes))


class _Collector:
    """One daemon thread runs every observable callback each metric export interval (OTEL_METRIC_EXPORT_INTERVAL)."""

    def __init__(self):
        self._instruments = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread = None
        self._wake = threading.Event()
        self._stopped = False

    def register(self, inst):
        with self._lock:
            self._instruments.add(inst)
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="polytel-otel-metrics", daemon=True)
                self._thread.start()

    def interval_s(self):
        try:
            return max(polytel.resolved_config()["metric_export_interval_ms"], 10) / 1000.0
        except Exception:
            return 60.0

    def collect(self):
        """Run every callback now (also what the thread does each interval)."""
        timeout_ms = 10000
        opts = CallbackOptions(timeout_millis=timeout_ms)
        with self._lock:
            instruments = list(self._instruments)
        for inst in instruments:
            inst._observe(opts)

    def _run(self):
        # The first collection comes one interval after the first instrument, as the core's first export does.
        while True:
            self._wake.wait(self.interval_s())
            self._wake.clear()
            if self._stopped:
                return
            self.collect()

    def stop(self):
        """A last collection, then no more callbacks (MeterProvider.shutdown)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)  # hang guard: a callback that never returns
        self.collect()

    def _after_fork_in_child(self):
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        if len(self._instruments) and not self._stopped:
            self._thread = threading.Thread(target=self._run, name="polytel-otel-metrics", daemon=True)
            self._thread.start()


_collector = _Collector()
os.register_at_fork(after_in_child=_collector._after_fork_in_child)


class Meter(_m.Meter):
    """Instruments of one meter. polytel's metric series have one scope ("polytel"): see docs/opentelemetry.md."""

    def __init__(self, name, version=None, schema_url=None, attributes=None):
        super().__init__(name, version=version, schema_url=schema_url)
        self._made = {}

    def _get(self, cls, name, unit, description, *extra):
        key = (cls, name, unit or "")
        inst = self._made.get(key)
        if inst is None:
            inst = self._made[key] = cls(name, *extra, unit=unit or "", description=description or "")
        elif extra and isinstance(inst, _Observable) and extra[0]:
            inst._callbacks.extend(extra[0])
        return inst

    def create_counter(self, name, unit="", description=""):
        return self._get(Counter, name, unit, description)

    def create_up_down_counter(self, name, unit="", description=""):
        return self._get(UpDownCounter, name, unit, description)

    def create_histogram(self, name, unit="", description="", *, explicit_bucket_boundaries_advisory=None):
        h = self._get(Histogram, name, unit, description)
        if explicit_bucket_boundaries_advisory is not None and h.explicit_bucket_boundaries_advisory is None:
            _advise(name, explicit_bucket_boundaries_advisory)
            h.explicit_bucket_boundaries_advisory = list(explicit_bucket_boundaries_advisory)
        return h

    def create_gauge(self, name, unit="", description=""):
        return self._get(Gauge, name, unit, description)

    def create_observable_counter(self, name, callbacks=None, unit="", description=""):
        return self._get(ObservableCounter, name, unit, description, callbacks)

    def create_observable_up_down_counter(self, name, callbacks=None, unit="", description=""):
        return self._get(ObservableUpDownCounter, name, unit, description, callbacks)

    def create_observable_gauge(self, name, callbacks=None, unit="", description=""):
        return self._get(ObservableGauge, name, unit, description, callbacks)


class MeterProvider(_m.MeterProvider):
    """polytel as the OpenTelemetry API's meter provider: `metrics.set_meter_provider(MeterProvider())`."""

    def __init__(self):
        self._meters = {}

    def get_meter(self, name, version=None, schema_url=None, attributes=None):
        key = (name, version, schema_url)
        m = self._meters.get(key)
        if m is None:
            m = self._meters[key] = Meter(name, version, schema_url)
        return m

    def force_flush(self, timeout_millis=30000):
        _collector.collect()
        return polytel.flush(timeout_ms=timeout_millis) == polytel.OK

    def shutdown(self, timeout_millis=30000):
        _collector.stop()
        polytel.flush(timeout_ms=timeout_millis)
