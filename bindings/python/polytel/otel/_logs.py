"""OTel API logs (the logs bridge) on polytel's log records: LoggerProvider and Logger."""
from opentelemetry import _logs as _l

import polytel

_log = polytel.log
# OTel SeverityNumber 1-24 in bands of four: TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
_LEVELS = (polytel.TRACE, polytel.DEBUG, polytel.INFO, polytel.WARN, polytel.ERROR, polytel.FATAL)


def _level(severity_number):
    n = int(getattr(severity_number, "value", severity_number) or 0)
    if n <= 0:
        return polytel.INFO  # UNSPECIFIED: a record with no severity is informational
    return _LEVELS[min((n - 1) // 4, 5)]


def _exc_attrs(exc, attrs):
    from polytel._logging import _format_exc

    t, msg, stack = _format_exc((type(exc), exc, exc.__traceback__), None)
    attrs.setdefault("exception.type", t)
    attrs.setdefault("exception.message", msg)
    attrs.setdefault("exception.stacktrace", stack)


class Logger(_l.Logger):
    """Records go to polytel with the logger's name as the target (the OTLP scope), linked to the current span."""

    def __init__(self, name, version=None, schema_url=None, attributes=None):
        super().__init__(name, version, schema_url, attributes)
        self._target = name or "app"

    def enabled(self, *args, **kwargs):
        # polytel applies its levels in the core (console_level and export): a record is always worth passing.
        return True

    def emit(self, record=None, *, timestamp=None, observed_timestamp=None, context=None, severity_number=None,
             severity_text=None, body=None, attributes=None, event_name=None, exception=None):  # fmt: skip
        if record is not None:
            severity_number = getattr(record, "severity_number", None)
            body = getattr(record, "body", None)
            attributes = getattr(record, "attributes", None)
            event_name = getattr(record, "event_name", None)
            exception = getattr(record, "exception", None)
        attrs = {k: (list(v) if type(v) is tuple else v) for k, v in attributes.items()} if attributes else {}
        if event_name:
            attrs.setdefault("event.name", event_name)
        if exception is not None:
            _exc_attrs(exception, attrs)
        _log(_level(severity_number), self._target, "" if body is None else body, **attrs)


class LoggerProvider(_l.LoggerProvider):
    """polytel as the OpenTelemetry API's logger provider: `_logs.set_logger_provider(LoggerProvider())`."""

    def __init__(self):
        self._loggers = {}

    def get_logger(self, name, version=None, schema_url=None, attributes=None):
        key = (name, version, schema_url)
        lg = self._loggers.get(key)
        if lg is None:
            lg = self._loggers[key] = Logger(name, version, schema_url, attributes)
        return lg

    def force_flush(self, timeout_millis=30000):
        return polytel.flush(timeout_ms=timeout_millis) == polytel.OK

    def shutdown(self):
        polytel.flush()
