"""The stdlib logging bridge: LoggingHandler sends LogRecords to polytel (loaded on first use)."""
import logging

from . import _polytel

__all__ = ["LoggingHandler"]

_emit = _polytel._emit_record


def _type_name(etype):
    mod = getattr(etype, "__module__", None)
    qual = getattr(etype, "__qualname__", None) or getattr(etype, "__name__", None) or str(etype)
    return qual if mod in (None, "builtins") else "%s.%s" % (mod, qual)


def _format_exc(exc_info, exc_text):
    """(exception.type, exception.message, exception.stacktrace) for a record's exc_info."""
    etype, evalue = exc_info[0], exc_info[1]
    tb = exc_info[2] if len(exc_info) > 2 else None
    try:
        message = "" if evalue is None else str(evalue)
    except Exception:  # a broken __str__ must not lose the record
        message = "<unprintable %s>" % _type_name(etype)
    if exc_text:
        stack = exc_text
    else:
        import traceback

        stack = "".join(traceback.format_exception(etype, evalue, tb)).rstrip("\n")
    return _type_name(etype), message, stack


def _std_keys():
    record = logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None)
    # Keys set by formatters (message, asctime) and newer Pythons (taskName) are not `extra` either.
    return frozenset(record.__dict__) | {"message", "asctime", "taskName"}, len(record.__dict__)


_keys, _n_keys = _std_keys()
_polytel._set_logging(logging.LogRecord, _keys, _n_keys, _format_exc)


class LoggingHandler(logging.Handler):
    """A logging.Handler that records each LogRecord as a polytel log.

    body = record.getMessage(); level DEBUG/INFO/WARNING/ERROR/CRITICAL -> DEBUG/INFO/WARN/ERROR/FATAL
    (below DEBUG -> TRACE); target (the OTLP scope) = the logger name; attributes: code.filepath,
    code.lineno, code.function, exception.type/message/stacktrace for exc_info, and every `extra` key.
    The record is linked to the current polytel span. Thread-safe without the handler lock.
    """

    def handle(self, record):
        # Handler.handle() without the lock: the core is thread-safe, and the lock is most of the cost.
        if self.filters:
            rv = self.filter(record)
            if not rv:
                return False
            if isinstance(rv, logging.LogRecord):
                record = rv
        try:
            _emit(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
        return True

    def emit(self, record):
        try:
            _emit(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
