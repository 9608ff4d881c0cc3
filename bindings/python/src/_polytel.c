/* _polytel.c — the CPython extension: phase 1 at import, the recording hot path, spans and trace context
 * (inject/extract, SpanContext, baggage), blocking calls without the GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/propagation.h"
#include "polytel.h"
#include "record/record.h"

/* Python spans are async spans (explicit ids): the parent comes from a ContextVar, not the thread. */

#define ATTR_STACK 16
#define SPAN_FREE_MAX 16

/* Bumped in the fork child, so a span entered before fork is never recorded (again) by the child. */
static uint64_t fork_generation;

typedef struct {
  PyTypeObject *span_type;
  PyTypeObject *ctx_type; /* polytel.SpanContext */
  PyObject *current;      /* contextvars.ContextVar: the current Span, or None */
  PyObject *baggage;      /* contextvars.ContextVar: the current baggage, a dict never changed once set */
  PyObject *bg_dict;      /* the baggage dict last formatted by inject(), and its header */
  PyObject *bg_header;
  PyObject *decorate;         /* polytel._decorate(span, func), set by __init__.py */
  PyObject *format_exc;       /* polytel._logging._format_exc(exc_info, exc_text) -> (type, msg, stack) */
  PyObject *format_exception; /* traceback.format_exception, imported at the first exception event */
  PyObject *logrecord;        /* logging.LogRecord, for the getMessage() fast path */
  PyObject *std_keys;         /* frozenset of standard LogRecord attribute names */
  Py_ssize_t n_std_keys;      /* len(LogRecord(...).__dict__): fewer keys means no `extra` */
  PyObject *s_dict, *s_name, *s_msg, *s_args, *s_levelno, *s_pathname, *s_lineno, *s_funcName, *s_exc_info,
      *s_exc_text, *s_getMessage, *s_module, *s_qualname;
  /* Header names and the keyword arguments polytel.span() takes for itself (the rest are attributes). */
  PyObject *s_traceparent, *s_tracestate, *s_baggage, *s_get, *s_parent, *s_kind, *s_links, *s_attributes,
      *s_scope, *s_timestamp_ns, *s_carrier, *s_context, *s__scope, *s_empty;
  /* Span objects' memory, recycled (under the GIL): a `with polytel.span()` costs no malloc/free pair. */
  struct SpanObject *free_spans[SPAN_FREE_MAX];
  int n_free_spans;
} module_state;

static inline module_state *get_state(PyObject *module) {
  return (module_state *)PyModule_GetState(module);
}

/*
 * span.__enter__ / span.__exit__ as `with` looks them up: objects embedded in the span, so binding them
 * allocates nothing (a bound builtin method costs a GC allocation, tracking and a free per lookup, twice per
 * `with`). Alive (refcount > 0) while somebody holds one; each live one holds a reference to its span.
 */
typedef struct {
  PyObject_HEAD vectorcallfunc vectorcall;
} BoundObject;

typedef struct SpanObject {
  PyObject_HEAD PyObject *name; /* str */
  PyObject *attrs;              /* dict or NULL */
  PyObject *token;              /* ContextVar token while entered */
  PyObject *module;             /* borrowed through the type (see span_new_obj); kept for state access */
  polytel_span_ctx_t ctx;
  uint64_t generation;
  int state; /* SPAN_NEW, SPAN_ACTIVE, SPAN_DONE */
  int status;
  int kind;             /* polytel_span_kind_t */
  uint32_t ev_dropped;  /* events left out past OTEL_SPAN_EVENT_COUNT_LIMIT (the oldest, as the core does) */
  PyObject *status_msg; /* str or NULL */
  PyObject *parent;     /* parent=: a SpanContext or a Span, NULL for the current span */
  PyObject *links;      /* list of (SpanContext, dict or None), or NULL */
  PyObject *events;     /* list of (name, time_ns, dict or None), or NULL */
  PyObject *scope_name; /* str or NULL (the core's "polytel") */
  PyObject *scope_version;
  PyObject *tracestate; /* str or NULL: the parent's, from enter on */
  PyObject *bg_token;   /* baggage ContextVar token while entered under a parent context with baggage */
  uint64_t end_ns;      /* Span.end(end_ns): an explicit end time (Unix ns); 0: the time of the exit */
  uint64_t start_ns; /* Span.start_ns set before entering: the start time (Unix ns); 0: the time of entry */
  BoundObject b_enter, b_exit;
} SpanObject;

enum { SPAN_NEW = 0, SPAN_ACTIVE = 1, SPAN_DONE = 2 };

/* polytel.SpanContext: what inject() writes and extract() reads, and what parent= and links= take. */
typedef struct {
  PyObject_HEAD polytel_span_ctx_t ctx;
  PyObject *tracestate; /* normalized W3C tracestate, or NULL */
  PyObject *baggage;    /* dict str -> str from a baggage header, or NULL */
} CtxObject;
/* ------------------------------------------------------------ attributes */

/* polytel_attr_t views of Python objects, plus the temporary objects their pointers point into. */
typedef struct {
  polytel_attr_t *attrs;
  PyObject **tmp;
  size_t n, ntmp, cap, tmpcap;
  void *blocks; /* PyMem blocks (array values), chained through their first pointer */
  polytel_attr_t attrs_stack[ATTR_STACK];
  PyObject *tmp_stack[ATTR_STACK * 5 + 12];
} attrbuf_t;

/*
 * Each scalar attribute holds at most 5 objects (the key and value themselves, key bytes, str(value), its
 * bytes); 12 more for message, names and record fields. Arrays may need more: tmp grows.
 */
static int attrbuf_init(attrbuf_t *b, size_t cap) {
  b->n = b->ntmp = 0;
  b->blocks = NULL;
  b->cap = cap;
  b->tmpcap = cap * 5 + 12;
  if (cap <= ATTR_STACK) {
    b->attrs = b->attrs_stack;
    b->tmp = b->tmp_stack;
    return 0;
  }
  b->attrs = PyMem_Malloc(cap * sizeof(polytel_attr_t));
  b->tmp = PyMem_Malloc(b->tmpcap * sizeof(PyObject *));
  if (!b->attrs || !b->tmp) {
    PyMem_Free(b->attrs);
    PyMem_Free(b->tmp);
    b->attrs = b->attrs_stack;
    b->tmp = b->tmp_stack;
    b->cap = 0;
    b->tmpcap = 12;
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

static void attrbuf_free(attrbuf_t *b) {
  for (size_t i = 0; i < b->ntmp; i++) Py_DECREF(b->tmp[i]);
  while (b->blocks) {
    void *next = *(void **)b->blocks;
    PyMem_Free(b->blocks);
    b->blocks = next;
  }
  if (b->attrs != b->attrs_stack) PyMem_Free(b->attrs);
  if (b->tmp != b->tmp_stack) PyMem_Free(b->tmp);
}

/* Room for more temporaries (the stack array moves to the heap). -1 when out of memory. */
static int attrbuf_grow(attrbuf_t *b) {
  size_t cap = b->tmpcap * 2 + 16;
  PyObject **t = b->tmp == b->tmp_stack ? PyMem_Malloc(cap * sizeof(PyObject *))
                                        : PyMem_Realloc(b->tmp, cap * sizeof(PyObject *));
  if (!t) return -1;
  if (b->tmp == b->tmp_stack) memcpy(t, b->tmp_stack, b->ntmp * sizeof(PyObject *));
  b->tmp = t;
  b->tmpcap = cap;
  return 0;
}

/* Keep o (a new reference) until attrbuf_free; on failure it is released and -1 returned. */
static inline int attrbuf_keep(attrbuf_t *b, PyObject *o) {
  if (b->ntmp >= b->tmpcap && attrbuf_grow(b) < 0) {
    Py_DECREF(o);
    return -1;
  }
  b->tmp[b->ntmp++] = o;
  return 0;
}

/* n bytes (8-aligned) freed with the buffer, or NULL. */
static void *attrbuf_block(attrbuf_t *b, size_t n) {
  void **blk = PyMem_Malloc(sizeof(void *) * 2 + n);
  if (!blk) return NULL;
  blk[0] = b->blocks;
  b->blocks = blk;
  return blk + 2;
}

/* UTF-8 of a str; lone surrogates become backslash escapes instead of failing the call. */
static const char *utf8_of(attrbuf_t *b, PyObject *s, Py_ssize_t *len) {
  const char *p = PyUnicode_AsUTF8AndSize(s, len);
  if (p) return p;
  PyErr_Clear();
  PyObject *bytes = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
  if (!bytes || attrbuf_keep(b, bytes) < 0) {
    PyErr_Clear();
    *len = 0;
    return "";
  }
  *len = PyBytes_GET_SIZE(bytes);
  return PyBytes_AS_STRING(bytes);
}

/* str(value), never raising: a value whose __str__ fails is recorded as its type name. */
static PyObject *safe_str(PyObject *value) {
  PyObject *s = PyObject_Str(value);
  if (s) return s;
  PyErr_Clear();
  return PyUnicode_FromFormat("<unprintable %s>", Py_TYPE(value)->tp_name);
}

/*
 * A list or tuple of str, of bool, of int, or of int and float (all float then) as an OTLP array; 0, or -1
 * for anything else (mixed types, None, nesting, an int past int64), which is then recorded as str(value).
 */
static int attr_array(attrbuf_t *b, polytel_attr_t *a, PyObject *value) {
  PyObject *t = PyTuple_Check(value) ? (Py_INCREF(value), value) : PyList_AsTuple(value);
  if (!t || attrbuf_keep(b, t) < 0) { /* held: str(element) below runs no code, but t outlives the list */
    PyErr_Clear();
    return -1;
  }
  Py_ssize_t n = PyTuple_GET_SIZE(t);
  int kind = POLYTEL_ATTR_STRING_ARRAY; /* an empty list: an empty array */
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *it = PyTuple_GET_ITEM(t, i);
    int k = PyUnicode_Check(it) ? POLYTEL_ATTR_STRING_ARRAY
            : PyBool_Check(it)  ? POLYTEL_ATTR_BOOL_ARRAY
            : PyLong_Check(it)  ? POLYTEL_ATTR_INT_ARRAY
            : PyFloat_Check(it) ? POLYTEL_ATTR_DOUBLE_ARRAY
                                : 0;
    if (!k) return -1;
    if (i == 0 || k == kind) {
      kind = k;
    } else if ((k == POLYTEL_ATTR_INT_ARRAY || k == POLYTEL_ATTR_DOUBLE_ARRAY) &&
               (kind == POLYTEL_ATTR_INT_ARRAY || kind == POLYTEL_ATTR_DOUBLE_ARRAY)) {
      kind = POLYTEL_ATTR_DOUBLE_ARRAY;
    } else {
      return -1;
    }
  }
  size_t esz = kind == POLYTEL_ATTR_STRING_ARRAY ? sizeof(polytel_str_t)
               : kind == POLYTEL_ATTR_BOOL_ARRAY ? sizeof(int)
                                                 : sizeof(int64_t); /* == sizeof(double) */
  void *mem = attrbuf_block(b, (size_t)n * esz);
  if (!mem) {
    PyErr_Clear();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *it = PyTuple_GET_ITEM(t, i);
    if (kind == POLYTEL_ATTR_STRING_ARRAY) {
      Py_ssize_t len;
      polytel_str_t *sv = (polytel_str_t *)mem + i;
      sv->ptr = utf8_of(b, it, &len);
      sv->len = (size_t)len;
    } else if (kind == POLYTEL_ATTR_BOOL_ARRAY) {
      ((int *)mem)[i] = it == Py_True;
    } else if (kind == POLYTEL_ATTR_INT_ARRAY) {
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(it, &overflow);
      if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
      }
      ((int64_t *)mem)[i] = (int64_t)v;
    } else {
      double d = PyFloat_Check(it) ? PyFloat_AS_DOUBLE(it) : PyLong_AsDouble(it);
      if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
      }
      ((double *)mem)[i] = d;
    }
  }
  a->type = (polytel_attr_type_t)kind;
  a->value.arr.ptr = mem;
  a->value.arr.len = (size_t)n;
  return 0;
}

/* str, int, float, bool are typed, lists and tuples of them are arrays; anything else is str(value).
 * Never raises. */
static void attrbuf_add_k(attrbuf_t *b, const char *k, PyObject *value) {
  if (b->n >= b->cap || !value) return;
  polytel_attr_t *a = &b->attrs[b->n];
  a->key = k;
  if (PyUnicode_Check(value)) {
    Py_ssize_t len;
    a->type = POLYTEL_ATTR_STRING;
    a->value.str.ptr = utf8_of(b, value, &len);
    a->value.str.len = (size_t)len;
  } else if (PyBool_Check(value)) {
    a->type = POLYTEL_ATTR_BOOL;
    a->value.b = value == Py_True;
  } else if (PyLong_Check(value)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      goto as_str;
    }
    a->type = POLYTEL_ATTR_INT;
    a->value.i = (int64_t)v;
  } else if (PyFloat_Check(value)) {
    a->type = POLYTEL_ATTR_DOUBLE;
    a->value.d = PyFloat_AS_DOUBLE(value);
  } else if ((PyList_Check(value) || PyTuple_Check(value)) && attr_array(b, a, value) == 0) {
    /* typed above */
  } else {
  as_str:;
    PyObject *s = safe_str(value);
    if (!s || attrbuf_keep(b, s) < 0) {
      PyErr_Clear();
      return;
    }
    Py_ssize_t len;
    a->type = POLYTEL_ATTR_STRING;
    a->value.str.ptr = utf8_of(b, s, &len);
    a->value.str.len = (size_t)len;
  }
  b->n++;
}

static void attrbuf_add(attrbuf_t *b, PyObject *key, PyObject *value) {
  if (b->n >= b->cap || !PyUnicode_Check(key)) return;
  Py_ssize_t klen;
  attrbuf_add_k(b, utf8_of(b, key, &klen), value);
}

/* A new reference kept until attrbuf_free; NULL (and no error) when o is NULL or the buffer is full. */
static PyObject *attrbuf_hold(attrbuf_t *b, PyObject *o) {
  if (!o) return NULL;
  Py_INCREF(o);
  return attrbuf_keep(b, o) < 0 ? NULL : o;
}

/*
 * Every (str key, value) of dict whose key is not in skip (a frozenset, or NULL). The items are
 * held before any is converted: str(value) runs Python code, which could change the dict.
 */
static void attrbuf_add_dict(attrbuf_t *b, PyObject *dict, PyObject *skip) {
  if (!dict) return;
  size_t start = b->ntmp;
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  while (PyDict_Next(dict, &pos, &k, &v)) {
    if (!PyUnicode_CheckExact(k)) continue; /* exact str: hashing and comparing it runs no Python code */
    if (skip) {
      int in = PySet_Contains(skip, k);
      if (in != 0) {
        if (in < 0) PyErr_Clear();
        continue;
      }
    }
    if ((b->ntmp - start) / 2 >= b->cap - b->n) break;
    Py_INCREF(k);
    if (attrbuf_keep(b, k) < 0) break;
    Py_INCREF(v);
    if (attrbuf_keep(b, v) < 0) break;
  }
  PyErr_Clear();
  size_t end = b->ntmp - ((b->ntmp - start) & 1); /* pairs only: a key whose value found no room is left */
  for (size_t i = start; i < end; i += 2) attrbuf_add(b, b->tmp[i], b->tmp[i + 1]);
}

/* ------------------------------------------------------------ span context */

/*
 * thread.name on the wire: the Python thread's name (threading.current_thread().name, as logging's
 * %(threadName)s), handed to the core once per OS thread. Before anything imported threading (3 ms: not
 * ours to pay) the thread that imported polytel is "MainThread", as threading will call it.
 */
static _Thread_local int pt_thread_named;
static unsigned long pt_import_ident;
static void name_thread(void) {
  if (PyErr_Occurred()) return; /* never clear the caller's error: try again next time */
  pt_thread_named = 1;
  PyObject *mod_name = PyUnicode_FromString("threading");
  PyObject *threading = mod_name ? PyImport_GetModule(mod_name) : NULL;
  Py_XDECREF(mod_name);
  if (!threading && !PyErr_Occurred() && PyThread_get_thread_ident() == pt_import_ident)
    polytel_thread_set_name("MainThread");
  PyObject *th = threading ? PyObject_CallMethod(threading, "current_thread", NULL) : NULL;
  PyObject *name = th ? PyObject_GetAttrString(th, "name") : NULL;
  const char *s = name && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
  if (s) polytel_thread_set_name(s);
  Py_XDECREF(name);
  Py_XDECREF(th);
  Py_XDECREF(threading);
  PyErr_Clear();
}

/* The current span's context, or NULL. Borrowed from the ContextVar's value, valid while the GIL is held. */
static const polytel_span_ctx_t *current_ctx(module_state *st, PyObject **holder) {
  PyObject *v = NULL;
  *holder = NULL;
  if (!pt_thread_named) name_thread(); /* once per thread: every log and span start passes here */
  if (PyContextVar_Get(st->current, NULL, &v) < 0) {
    PyErr_Clear();
    return NULL;
  }
  if (!v) return NULL;
  if (Py_TYPE(v) == st->span_type && ((SpanObject *)v)->state == SPAN_ACTIVE) {
    *holder = v;
    return &((SpanObject *)v)->ctx;
  }
  Py_DECREF(v);
  return NULL;
}

/* -------------------------------------------------------------------- logs */

static const char *msg_utf8(attrbuf_t *b, PyObject *msg, Py_ssize_t *len) {
  if (PyUnicode_Check(msg)) return utf8_of(b, msg, len);
  PyObject *s = safe_str(msg);
  if (!s || attrbuf_keep(b, s) < 0) {
    PyErr_Clear();
    *len = 0;
    return "";
  }
  return utf8_of(b, s, len);
}

/*
 * Records msg (any object; str() of a non-str) at an enabled level, the call's keyword arguments
 * (kv[i] named by kwnames[i]) as attributes, under the current span. The target is `target`, or the
 * UTF-8 of the str `target_obj` when target is NULL.
 */
static PyObject *log_emit(PyObject *module, int level, const char *target, PyObject *target_obj,
                          PyObject *msg, PyObject *const *kv, PyObject *kwnames) {
  module_state *st = get_state(module);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  attrbuf_t b;
  if (attrbuf_init(&b, (size_t)nkw) < 0) return NULL;
  Py_ssize_t tlen, mlen;
  if (!target) target = utf8_of(&b, target_obj, &tlen);
  const char *m = msg_utf8(&b, msg, &mlen);
  for (Py_ssize_t i = 0; i < nkw; i++) attrbuf_add(&b, PyTuple_GET_ITEM(kwnames, i), kv[i]);
  PyObject *holder;
  const polytel_span_ctx_t *ctx = current_ctx(st, &holder);
  polytel_log_attrs((polytel_level_t)level, target, m, (size_t)mlen, b.attrs, b.n, ctx);
  Py_XDECREF(holder);
  attrbuf_free(&b);
  Py_RETURN_NONE;
}

static PyObject *log_impl(PyObject *module, int level, const char *target, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames, const char *fname) {
  if (nargs != 1) {
    PyErr_Format(PyExc_TypeError, "%s() takes exactly one positional argument (msg), got %zd", fname, nargs);
    return NULL;
  }
  if (!polytel_level_enabled((polytel_level_t)level)) Py_RETURN_NONE;
  return log_emit(module, level, target, NULL, args[0], args + nargs, kwnames);
}

/* One function per level of the core's table: trace(), debug(), info(), warn(), error(), fatal(). */
#define LEVEL_FN(name, value, text)                                                                          \
  static PyObject *py_##name(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) { \
    return log_impl(module, POLYTEL_LEVEL_##name, "app", args, nargs, kwnames, text);                        \
  }
POLYTEL_LEVEL_MAP(LEVEL_FN)
#undef LEVEL_FN

static int valid_level(long lv) {
  return lv != POLYTEL_LEVEL_OFF && polytel_level_name((int)lv) != NULL;
}

/* log(level, target, msg, **attrs): any level and target (logger name). */
static PyObject *py_log(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "log() takes exactly three positional arguments (level, target, msg)");
    return NULL;
  }
  long lv = PyLong_AsLong(args[0]);
  if (lv == -1 && PyErr_Occurred()) return NULL;
  if (!valid_level(lv)) {
    PyErr_Format(
        PyExc_ValueError,
        "log(): level %ld is not one of polytel.TRACE, DEBUG, INFO, WARN, ERROR, FATAL (the core's levels)",
        lv);
    return NULL;
  }
  if (!PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "log(): target must be a str");
    return NULL;
  }
  if (!polytel_level_enabled((polytel_level_t)lv)) Py_RETURN_NONE;
  return log_emit(module, (int)lv, NULL, args[1], args[2], args + nargs, kwnames);
}

/* ------------------------------------------------------- logging bridge */

static int map_pylevel(long levelno) {
  if (levelno < 10) return POLYTEL_LEVEL_TRACE;
  if (levelno < 20) return POLYTEL_LEVEL_DEBUG;
  if (levelno < 30) return POLYTEL_LEVEL_INFO;
  if (levelno < 40) return POLYTEL_LEVEL_WARN;
  if (levelno < 50) return POLYTEL_LEVEL_ERROR;
  return POLYTEL_LEVEL_FATAL;
}

/* _emit_record(record): the body of LoggingHandler.emit, in C because the LogRecord is the cost floor. */
static PyObject *py_emit_record(PyObject *module, PyObject *record) {
  module_state *st = get_state(module);
  if (!st->std_keys) {
    PyErr_SetString(PyExc_RuntimeError,
                    "polytel: the logging bridge is not set up (use polytel.LoggingHandler)");
    return NULL;
  }
  PyObject *d = PyObject_GetAttr(record, st->s_dict);
  if (!d) return NULL;
  if (!PyDict_Check(d)) {
    Py_DECREF(d);
    PyErr_SetString(PyExc_TypeError, "polytel: record has no __dict__");
    return NULL;
  }
  PyObject *result = NULL, *message = NULL, *exc = NULL;
  attrbuf_t b;
  b.attrs = NULL;

  long levelno = 0;
  PyObject *lv = PyDict_GetItemWithError(d, st->s_levelno);
  if (lv) {
    levelno = PyLong_AsLong(lv);
    if (levelno == -1 && PyErr_Occurred()) goto out;
  } else if (PyErr_Occurred()) {
    goto out;
  }
  int level = map_pylevel(levelno);
  if (!polytel_level_enabled((polytel_level_t)level)) {
    result = Py_None;
    Py_INCREF(result);
    goto out;
  }

  /* The common record has a str msg and no args: that is its message, no call needed. */
  PyObject *msg = PyDict_GetItemWithError(d, st->s_msg);
  PyObject *args = PyDict_GetItemWithError(d, st->s_args);
  if (PyErr_Occurred()) goto out;
  if ((PyObject *)Py_TYPE(record) == st->logrecord && msg && PyUnicode_CheckExact(msg) &&
      (!args || args == Py_None || (PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 0))) {
    message = msg;
    Py_INCREF(message);
  } else {
    message = PyObject_CallMethodNoArgs(record, st->s_getMessage);
    if (!message) goto out;
  }

  PyObject *exc_info = PyDict_GetItemWithError(d, st->s_exc_info);
  if (PyErr_Occurred()) goto out;
  if (exc_info && PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) >= 2 &&
      PyTuple_GET_ITEM(exc_info, 0) != Py_None) {
    PyObject *exc_text = PyDict_GetItemWithError(d, st->s_exc_text);
    if (PyErr_Occurred()) goto out;
    exc = PyObject_CallFunctionObjArgs(st->format_exc, exc_info, exc_text ? exc_text : Py_None, NULL);
    if (!exc) goto out;
    if (!PyTuple_Check(exc) || PyTuple_GET_SIZE(exc) != 3) {
      PyErr_SetString(PyExc_TypeError, "polytel: _format_exc must return a 3-tuple");
      goto out;
    }
  }

  /* Python code has run (getMessage, _format_exc) and may run again (str of an extra): hold, do not borrow.
   */
  Py_ssize_t nd = PyDict_GET_SIZE(d);
  size_t cap = 6 + (nd > st->n_std_keys ? (size_t)(nd - st->n_std_keys) + 4 : 0);
  if (attrbuf_init(&b, cap) < 0) {
    b.attrs = NULL;
    goto out;
  }
  PyObject *name = attrbuf_hold(&b, PyDict_GetItemWithError(d, st->s_name));
  PyObject *pathname = attrbuf_hold(&b, PyDict_GetItemWithError(d, st->s_pathname));
  PyObject *lineno = attrbuf_hold(&b, PyDict_GetItemWithError(d, st->s_lineno));
  PyObject *funcname = attrbuf_hold(&b, PyDict_GetItemWithError(d, st->s_funcName));
  if (PyErr_Occurred()) goto out_b;
  Py_ssize_t tlen = 0, mlen = 0;
  const char *target = (name && PyUnicode_Check(name)) ? utf8_of(&b, name, &tlen) : "root";
  const char *m = msg_utf8(&b, message, &mlen);

  attrbuf_add_k(&b, "code.filepath", pathname);
  attrbuf_add_k(&b, "code.lineno", lineno);
  attrbuf_add_k(&b, "code.function", funcname);
  if (exc) {
    attrbuf_add_k(&b, "exception.type", PyTuple_GET_ITEM(exc, 0));
    attrbuf_add_k(&b, "exception.message", PyTuple_GET_ITEM(exc, 1));
    attrbuf_add_k(&b, "exception.stacktrace", PyTuple_GET_ITEM(exc, 2));
  }
  /* `extra` keys are whatever the standard LogRecord does not have. */
  if (nd > st->n_std_keys) attrbuf_add_dict(&b, d, st->std_keys);
  {
    PyObject *holder;
    const polytel_span_ctx_t *ctx = current_ctx(st, &holder);
    polytel_log_attrs((polytel_level_t)level, target, m, (size_t)mlen, b.attrs, b.n, ctx);
    Py_XDECREF(holder);
  }
  result = Py_None;
  Py_INCREF(result);
out_b:
  attrbuf_free(&b);
out:
  Py_XDECREF(exc);
  Py_XDECREF(message);
  Py_DECREF(d);
  return result;
}

/* _set_logging(LogRecord, std_keys, n_std_keys, format_exc): done once, when LoggingHandler is first used. */
static PyObject *py_set_logging(PyObject *module, PyObject *args) {
  PyObject *logrecord, *std_keys, *format_exc;
  Py_ssize_t n;
  if (!PyArg_ParseTuple(args, "OO!nO:_set_logging", &logrecord, &PyFrozenSet_Type, &std_keys, &n,
                        &format_exc))
    return NULL;
  module_state *st = get_state(module);
  Py_INCREF(logrecord);
  Py_XSETREF(st->logrecord, logrecord);
  Py_INCREF(std_keys);
  Py_XSETREF(st->std_keys, std_keys);
  Py_INCREF(format_exc);
  Py_XSETREF(st->format_exc, format_exc);
  st->n_std_keys = n;
  Py_RETURN_NONE;
}

static PyObject *py_set_decorate(PyObject *module, PyObject *fn) {
  module_state *st = get_state(module);
  Py_INCREF(fn);
  Py_XSETREF(st->decorate, fn);
  Py_RETURN_NONE;
}

/* ------------------------------------------------------------------- spans */

static PyObject *hex_of(const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char buf[33];
  for (size_t i = 0; i < n; i++) {
    buf[2 * i] = digits[p[i] >> 4];
    buf[2 * i + 1] = digits[p[i] & 15];
  }
  return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)(2 * n));
}

static int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/*
 * A keyword name is `s` (interned). Keyword names in calls are interned, and two interned strings are equal
 * only when they are the same object: the compare is for names built at run time (**kwargs of a dict).
 */
static inline int kw_is(PyObject *key, PyObject *s) {
  return key == s || (!PyUnicode_CHECK_INTERNED(key) &&
                      PyUnicode_GET_LENGTH(key) == PyUnicode_GET_LENGTH(s) && PyUnicode_Compare(key, s) == 0);
}

static PyObject *ctx_new(module_state *st, const polytel_span_ctx_t *ctx, PyObject *tracestate,
                         PyObject *baggage) {
  CtxObject *c = PyObject_New(CtxObject, st->ctx_type);
  if (!c) return NULL;
  c->ctx = *ctx;
  Py_XINCREF(tracestate);
  c->tracestate = tracestate;
  Py_XINCREF(baggage);
  c->baggage = baggage;
  return (PyObject *)c;
}

/*
 * The context of a parent= or links= value: a SpanContext, or a Span that has started. Borrowed pointers,
 * valid while obj lives. -1 with TypeError/ValueError naming `what`.
 */
static int ctx_of(module_state *st, PyObject *obj, const char *what, const polytel_span_ctx_t **ctx,
                  PyObject **tracestate, PyObject **baggage) {
  if (Py_TYPE(obj) == st->ctx_type) {
    CtxObject *c = (CtxObject *)obj;
    *ctx = &c->ctx;
    *tracestate = c->tracestate;
    if (baggage) *baggage = c->baggage;
    return 0;
  }
  if (Py_TYPE(obj) == st->span_type) {
    SpanObject *s = (SpanObject *)obj;
    if (s->state == SPAN_NEW) {
      PyErr_Format(PyExc_ValueError, "%s: span %R has not started (enter it first), so it has no ids yet",
                   what, s->name);
      return -1;
    }
    *ctx = &s->ctx;
    *tracestate = s->tracestate;
    if (baggage) *baggage = NULL;
    return 0;
  }
  PyErr_Format(PyExc_TypeError, "%s: expected a polytel.SpanContext or a polytel.Span, not %.100s", what,
               Py_TYPE(obj)->tp_name);
  return -1;
}

/* links=: an iterable of SpanContext, Span or (SpanContext | Span, attributes dict). A new list. */
static PyObject *links_of(module_state *st, PyObject *links) {
  PyObject *seq = PySequence_Fast(links, "span(): links must be an iterable of SpanContext or Span");
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject *out = PyList_New(0);
  for (Py_ssize_t i = 0; out && i < n; i++) {
    PyObject *it = PySequence_Fast_GET_ITEM(seq, i), *target = it, *attrs = Py_None;
    if (PyTuple_Check(it)) {
      if (PyTuple_GET_SIZE(it) != 2 || !PyDict_Check(PyTuple_GET_ITEM(it, 1))) {
        PyErr_SetString(PyExc_TypeError,
                        "span(): a link is a SpanContext, a Span or (context, attributes dict)");
        Py_CLEAR(out);
        break;
      }
      target = PyTuple_GET_ITEM(it, 0);
      attrs = PyTuple_GET_ITEM(it, 1);
    }
    const polytel_span_ctx_t *c;
    PyObject *ts, *ctx = NULL, *copy = NULL, *pair = NULL;
    if (ctx_of(st, target, "span(): a link", &c, &ts, NULL) < 0 || !(ctx = ctx_new(st, c, ts, NULL)) ||
        (attrs != Py_None && !(copy = PyDict_Copy(attrs))) ||
        !(pair = PyTuple_Pack(2, ctx, copy ? copy : Py_None)) || PyList_Append(out, pair) < 0)
      Py_CLEAR(out);
    Py_XDECREF(pair);
    Py_XDECREF(copy);
    Py_XDECREF(ctx);
  }
  Py_DECREF(seq);
  return out;
}

/* scope=: a name (str), (name, version), or an object with a `_scope` (name, version) (polytel.Tracer). */
static int scope_of(module_state *st, PyObject *v, PyObject **name, PyObject **version) {
  PyObject *held = NULL;
  if (!PyUnicode_Check(v) && !PyTuple_Check(v)) {
    held = PyObject_GetAttr(v, st->s__scope);
    if (!held) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError,
                   "span(): scope must be a str, a (name, version) tuple or a polytel.Tracer, not %.100s",
                   Py_TYPE(v)->tp_name);
      return -1;
    }
    v = held;
  }
  PyObject *n = v, *ver = NULL;
  if (PyTuple_Check(v)) {
    if (PyTuple_GET_SIZE(v) != 2) goto bad;
    n = PyTuple_GET_ITEM(v, 0);
    ver = PyTuple_GET_ITEM(v, 1);
    if (ver == Py_None) ver = NULL;
  }
  if (!PyUnicode_Check(n) || PyUnicode_GET_LENGTH(n) == 0 || (ver && !PyUnicode_Check(ver))) goto bad;
  Py_INCREF(n);
  *name = n;
  Py_XINCREF(ver);
  *version = ver;
  Py_XDECREF(held);
  return 0;
bad:
  Py_XDECREF(held);
  PyErr_SetString(PyExc_ValueError, "span(): scope is a non-empty name (str) and an optional version (str)");
  return -1;
}

static int kind_of(PyObject *v) {
  Py_ssize_t len;
  const char *s = PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &len) : NULL;
  int k = s ? polytel_span_kind_from_name(s, (size_t)len) : POLYTEL_EINVAL;
  if (k < 0) {
    PyErr_Clear();
    PyErr_Format(
        PyExc_ValueError,
        "span(): kind %R is not one of \"internal\", \"server\", \"client\", \"producer\", \"consumer\"", v);
  }
  return k;
}

static PyObject *span_new_obj(module_state *st, PyObject *module, PyObject *name, PyObject *attrs) {
  SpanObject *sp;
  if (st->n_free_spans) {
    sp = st->free_spans[--st->n_free_spans];
    (void)PyObject_Init((PyObject *)sp, st->span_type);
  } else if (!(sp = PyObject_New(SpanObject, st->span_type))) {
    return NULL;
  }
  Py_INCREF(name);
  sp->name = name;
  sp->attrs = attrs; /* stolen */
  sp->token = NULL;
  sp->module = module; /* borrowed: the span holds its type, and the type (ht_module) holds the module */
  memset(&sp->ctx, 0, sizeof(sp->ctx));
  sp->generation = 0;
  sp->state = SPAN_NEW;
  sp->status = POLYTEL_STATUS_UNSET;
  sp->kind = POLYTEL_SPAN_KIND_INTERNAL;
  sp->ev_dropped = 0;
  sp->status_msg = sp->parent = sp->links = sp->events = sp->scope_name = sp->scope_version = NULL;
  sp->tracestate = sp->bg_token = NULL;
  sp->end_ns = sp->start_ns = 0;
  memset(&sp->b_enter, 0, sizeof sp->b_enter); /* refcount 0: not bound yet */
  memset(&sp->b_exit, 0, sizeof sp->b_exit);
  return (PyObject *)sp;
}

/*
 * span(name, /, *, parent=None, kind=None, links=None, attributes=None, scope=None, **attrs): a Span to use
 * as `with` block or decorator. None leaves an option at its default.
 */
static PyObject *py_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs != 1 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "span() takes exactly one positional argument: name (str)");
    return NULL;
  }
  module_state *st = get_state(module);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject *parent = NULL, *kind = NULL, *links = NULL, *attributes = NULL, *scope = NULL, *attrs = NULL;
  Py_ssize_t n_plain = 0;
  uint64_t options =
      0; /* bit i: keyword i is one of span()'s own (the first 64; later ones are asked again) */
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i];
    if (kw_is(k, st->s_parent))
      parent = v;
    else if (kw_is(k, st->s_kind))
      kind = v;
    else if (kw_is(k, st->s_links))
      links = v;
    else if (kw_is(k, st->s_attributes))
      attributes = v;
    else if (kw_is(k, st->s_scope))
      scope = v;
    else {
      n_plain++;
      continue;
    }
    if (i < 64) options |= (uint64_t)1 << i;
  }
  if (attributes && attributes != Py_None) {
    if (!PyDict_Check(attributes) && !PyMapping_Check(attributes)) {
      PyErr_Format(PyExc_TypeError, "span(): attributes must be a dict, not %.100s",
                   Py_TYPE(attributes)->tp_name);
      return NULL;
    }
    attrs = PyDict_New();
    if (!attrs || PyDict_Merge(attrs, attributes, 1) < 0) goto fail;
  }
  if (n_plain) {
    if (!attrs && !(attrs = PyDict_New())) return NULL;
    for (Py_ssize_t i = 0; i < nkw; i++) {
      PyObject *k = PyTuple_GET_ITEM(kwnames, i);
      if (i < 64 ? (options >> i) & 1
                 : kw_is(k, st->s_parent) || kw_is(k, st->s_kind) || kw_is(k, st->s_links) ||
                       kw_is(k, st->s_attributes) || kw_is(k, st->s_scope))
        continue;
      if (PyDict_SetItem(attrs, k, args[nargs + i]) < 0) goto fail;
    }
  }
  SpanObject *sp = (SpanObject *)span_new_obj(st, module, args[0], attrs);
  if (!sp) goto fail;
  attrs = NULL;
  if (parent && parent != Py_None) {
    const polytel_span_ctx_t *c;
    PyObject *ts, *bg;
    if (ctx_of(st, parent, "span(): parent", &c, &ts, &bg) < 0) goto fail_sp;
    Py_INCREF(parent);
    sp->parent = parent;
  }
  if (kind && kind != Py_None && (sp->kind = kind_of(kind)) < 0) goto fail_sp;
  if (links && links != Py_None && !(sp->links = links_of(st, links))) goto fail_sp;
  if (scope && scope != Py_None && scope_of(st, scope, &sp->scope_name, &sp->scope_version) < 0) goto fail_sp;
  return (PyObject *)sp;
fail_sp:
  Py_DECREF(sp);
  return NULL;
fail:
  Py_XDECREF(attrs);
  return NULL;
}

/* _span_from(template): the decorator's fresh span per call, with the template's name and options. */
static PyObject *py_span_from(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  module_state *st = get_state(module);
  if (nargs == 1 && Py_TYPE(args[0]) == st->span_type) {
    SpanObject *t = (SpanObject *)args[0];
    PyObject *attrs = t->attrs ? PyDict_Copy(t->attrs) : NULL;
    if (t->attrs && !attrs) return NULL;
    SpanObject *sp = (SpanObject *)span_new_obj(st, module, t->name, attrs);
    if (!sp) {
      Py_XDECREF(attrs);
      return NULL;
    }
    sp->kind = t->kind;
    Py_XINCREF(t->parent);
    sp->parent = t->parent;
    Py_XINCREF(t->scope_name);
    sp->scope_name = t->scope_name;
    Py_XINCREF(t->scope_version);
    sp->scope_version = t->scope_version;
    if (t->links && !(sp->links = PyList_GetSlice(t->links, 0, PY_SSIZE_T_MAX))) {
      Py_DECREF(sp);
      return NULL;
    }
    return (PyObject *)sp;
  }
  if (nargs != 2 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "_span_from(template_span) or _span_from(name, attrs)");
    return NULL;
  }
  PyObject *attrs = NULL;
  if (args[1] != Py_None) {
    attrs = PyDict_Copy(args[1]);
    if (!attrs) return NULL;
  }
  PyObject *sp = span_new_obj(st, module, args[0], attrs);
  if (!sp) Py_XDECREF(attrs);
  return sp;
}

static void span_dealloc(SpanObject *sp) {
  PyTypeObject *tp = Py_TYPE(sp);
  Py_XDECREF(sp->name);
  Py_XDECREF(sp->attrs);
  Py_XDECREF(sp->token);
  Py_XDECREF(sp->status_msg);
  Py_XDECREF(sp->parent);
  Py_XDECREF(sp->links);
  Py_XDECREF(sp->events);
  Py_XDECREF(sp->scope_name);
  Py_XDECREF(sp->scope_version);
  Py_XDECREF(sp->tracestate);
  Py_XDECREF(sp->bg_token);
  PyObject *module = sp->module;
  module_state *st = module ? get_state(module) : NULL;
  if (st && tp == st->span_type && st->n_free_spans < SPAN_FREE_MAX)
    st->free_spans[st->n_free_spans++] = sp; /* freed by module_clear if never reused */
  else
    PyObject_Free(sp);
  Py_DECREF(tp); /* last: the module (borrowed) lives as long as the type */
}

static PyObject *span_enter(SpanObject *sp, PyObject *Py_UNUSED(ignored)) {
  if (sp->state != SPAN_NEW) {
    PyErr_SetString(
        PyExc_RuntimeError,
        "polytel: a span can be entered once; call polytel.span() again (as a decorator it does)");
    return NULL;
  }
  module_state *st = get_state(sp->module);
  PyObject *holder = NULL, *ts = NULL, *bg = NULL;
  const polytel_span_ctx_t *parent;
  if (sp->parent) {
    if (!pt_thread_named) name_thread();
    if (ctx_of(st, sp->parent, "span(): parent", &parent, &ts, &bg) < 0) return NULL;
  } else {
    parent = current_ctx(st, &holder);
    if (holder) ts = ((SpanObject *)holder)->tracestate;
  }
  polytel_span_start(parent, &sp->ctx);
  if (sp->start_ns) sp->ctx.start_ns = sp->start_ns;
  Py_XINCREF(ts); /* the trace's tracestate travels on with its spans (W3C: a vendor may update its member) */
  Py_XSETREF(sp->tracestate, ts);
  Py_XDECREF(holder);
  PyObject *token = PyContextVar_Set(st->current, (PyObject *)sp);
  if (!token) return NULL;
  if (bg) { /* a remote context's baggage is the baggage of the work done under it */
    sp->bg_token = PyContextVar_Set(st->baggage, bg);
    if (!sp->bg_token) {
      PyContextVar_Reset(st->current, token);
      Py_DECREF(token);
      return NULL;
    }
  }
  sp->token = token;
  sp->generation = fork_generation;
  sp->state = SPAN_ACTIVE;
  Py_INCREF(sp);
  return (PyObject *)sp;
}

/* "ValueError" for builtins, "pkg.mod.MyError" otherwise. */
static PyObject *exc_type_name(module_state *st, PyObject *type) {
  PyObject *qual = PyObject_GetAttr(type, st->s_qualname);
  if (!qual) {
    PyErr_Clear();
    return safe_str(type);
  }
  PyObject *mod = PyObject_GetAttr(type, st->s_module);
  if (!mod) PyErr_Clear();
  PyObject *res = qual;
  if (mod && PyUnicode_Check(mod) && !(PyUnicode_CompareWithASCIIString(mod, "builtins") == 0)) {
    res = PyUnicode_FromFormat("%U.%U", mod, qual);
    Py_DECREF(qual);
    if (!res) PyErr_Clear();
  }
  Py_XDECREF(mod);
  return res;
}

/* The events limit in force (OTEL_SPAN_EVENT_COUNT_LIMIT): a span keeps no more than the core would send. */
static uint32_t events_limit(void) {
  return atomic_load_explicit(&polytel__limits.events, memory_order_relaxed);
}

/* Append (name, time_ns, attrs) to the span's events, the oldest making room past the limit. Steals attrs. */
static int span_push_event(SpanObject *sp, PyObject *name, uint64_t time_ns, PyObject *attrs) {
  uint32_t limit = events_limit();
  if (!sp->events && !(sp->events = PyList_New(0))) {
    Py_XDECREF(attrs);
    return -1;
  }
  if ((size_t)PyList_GET_SIZE(sp->events) >= limit) {
    if (sp->ev_dropped < UINT32_MAX) sp->ev_dropped++;
    if (limit == 0) {
      Py_XDECREF(attrs);
      return 0;
    }
    if (PySequence_DelItem(sp->events, 0) < 0) {
      Py_XDECREF(attrs);
      return -1;
    }
  }
  PyObject *t = PyLong_FromUnsignedLongLong(time_ns);
  PyObject *ev = t ? PyTuple_Pack(3, name, t, attrs ? attrs : Py_None) : NULL;
  Py_XDECREF(t);
  Py_XDECREF(attrs);
  int rc = ev ? PyList_Append(sp->events, ev) : -1;
  Py_XDECREF(ev);
  return rc;
}

/* traceback.format_exception(type, value, tb) joined: the Python traceback text, or NULL (no error set). */
static PyObject *stack_text(module_state *st, PyObject *type, PyObject *value, PyObject *tb) {
  if (!st->format_exception) {
    PyObject *mod = PyImport_ImportModule("traceback");
    st->format_exception = mod ? PyObject_GetAttrString(mod, "format_exception") : NULL;
    Py_XDECREF(mod);
    if (!st->format_exception) {
      PyErr_Clear();
      return NULL;
    }
  }
  PyObject *lines = PyObject_CallFunctionObjArgs(st->format_exception, type, value, tb ? tb : Py_None, NULL);
  PyObject *text = lines ? PyUnicode_Join(st->s_empty, lines) : NULL;
  Py_XDECREF(lines);
  if (!text) PyErr_Clear();
  return text;
}

/*
 * An `exception` event (semantic conventions: exception.type, .message, .stacktrace) for value, of type
 * `type`, plus extra attributes (a dict or NULL). Sets *msg_out (new reference, may be NULL) to the
 * message. 0, or -1 with an error set.
 */
static int span_exception_event(SpanObject *sp, PyObject *type, PyObject *value, PyObject *tb,
                                PyObject *extra, PyObject **msg_out, PyObject **type_out) {
  module_state *st = get_state(sp->module);
  PyObject *tname = exc_type_name(st, type);
  PyObject *emsg = value && value != Py_None ? safe_str(value) : PyUnicode_FromString("");
  if (!emsg) PyErr_Clear();
  PyObject *stack = stack_text(st, type, value ? value : Py_None, tb);
  PyObject *attrs = PyDict_New();
  int rc = -1;
  if (attrs && (!extra || PyDict_Update(attrs, extra) == 0) &&
      (!tname || PyDict_SetItemString(attrs, "exception.type", tname) == 0) &&
      (!emsg || PyDict_SetItemString(attrs, "exception.message", emsg) == 0) &&
      (!stack || PyDict_SetItemString(attrs, "exception.stacktrace", stack) == 0)) {
    PyObject *name = PyUnicode_FromString("exception");
    rc = name ? span_push_event(sp, name, polytel_now_ns(), attrs) : -1;
    attrs = NULL;
    Py_XDECREF(name);
  }
  Py_XDECREF(attrs);
  Py_XDECREF(stack);
  if (msg_out)
    *msg_out = emsg;
  else
    Py_XDECREF(emsg);
  if (type_out)
    *type_out = tname;
  else
    Py_XDECREF(tname);
  return rc;
}

static Py_ssize_t dict_len(PyObject *d) {
  return d && d != Py_None ? PyDict_GET_SIZE(d) : 0;
}

/* Record the whole span (polytel_span_finish_ex) with its status, attributes, events and links. */
static void span_record(SpanObject *sp, int status, const char *smsg_in, PyObject *smsg_obj) {
  /* Left out by the sampler: the core counts it (sampled_out); nothing else is worth converting. */
  if (!(sp->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED)) {
    polytel_span_finish(&sp->ctx, "", POLYTEL_STATUS_UNSET, NULL, NULL, 0);
    return;
  }
  Py_ssize_t n_ev = sp->events ? PyList_GET_SIZE(sp->events) : 0;
  Py_ssize_t n_ln = sp->links ? PyList_GET_SIZE(sp->links) : 0;
  size_t cap = (size_t)dict_len(sp->attrs);
  for (Py_ssize_t i = 0; i < n_ev; i++)
    cap += (size_t)dict_len(PyTuple_GET_ITEM(PyList_GET_ITEM(sp->events, i), 2));
  for (Py_ssize_t i = 0; i < n_ln; i++)
    cap += (size_t)dict_len(PyTuple_GET_ITEM(PyList_GET_ITEM(sp->links, i), 1));
  attrbuf_t b;
  if (attrbuf_init(&b, cap) < 0) {
    PyErr_Clear();
    attrbuf_init(&b, 0);
  }
  /* Python code (str of a value) may run while converting: everything read below is held first. */
  PyObject *events = sp->events ? PyList_GetSlice(sp->events, 0, n_ev) : NULL;
  PyObject *links = sp->links ? PyList_GetSlice(sp->links, 0, n_ln) : NULL;
  if ((sp->events && !events) || (sp->links && !links)) {
    PyErr_Clear();
    n_ev = events ? n_ev : 0;
    n_ln = links ? n_ln : 0;
  }
  attrbuf_add_dict(&b, sp->attrs, NULL);
  size_t n_span_attrs = b.n;
  Py_ssize_t len;
  const char *smsg = smsg_obj ? utf8_of(&b, smsg_obj, &len) : smsg_in;
  const char *name = utf8_of(&b, sp->name, &len);
  if (sp->kind == POLYTEL_SPAN_KIND_INTERNAL && !sp->scope_name && !sp->tracestate && !n_ev && !n_ln &&
      !sp->ev_dropped && !sp->end_ns) { /* the plain span: no options to fill */
    polytel_span_finish(&sp->ctx, name, (polytel_status_t)status, smsg, b.attrs, n_span_attrs);
    Py_XDECREF(events);
    Py_XDECREF(links);
    attrbuf_free(&b);
    return;
  }
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.kind = (polytel_span_kind_t)sp->kind;
  o.scope_name = sp->scope_name ? utf8_of(&b, sp->scope_name, &len) : NULL;
  o.scope_version = sp->scope_version ? utf8_of(&b, sp->scope_version, &len) : NULL;
  o.tracestate = sp->tracestate ? utf8_of(&b, sp->tracestate, &len) : NULL;
  o.end_ns = sp->end_ns;
  /* Events dropped here sit before the kept ones, nameless: the core counts them in dropped_events_count. */
  size_t ev_total = (size_t)n_ev + sp->ev_dropped;
  polytel_span_event_t *evs = ev_total ? PyMem_Calloc(ev_total, sizeof *evs) : NULL;
  polytel_span_link_t *lns = n_ln ? PyMem_Calloc((size_t)n_ln, sizeof *lns) : NULL;
  size_t *ranges = (n_ev + n_ln) ? PyMem_Malloc(sizeof(size_t) * 2 * (size_t)(n_ev + n_ln)) : NULL;
  if ((ev_total && !evs) || (n_ln && !lns) || ((n_ev + n_ln) && !ranges)) {
    PyErr_Clear();
    n_ev = n_ln = 0;
    ev_total = 0;
  }
  for (Py_ssize_t i = 0; i < n_ev; i++) {
    PyObject *ev = PyList_GET_ITEM(events, i);
    size_t first = b.n;
    PyObject *d = PyTuple_GET_ITEM(ev, 2);
    attrbuf_add_dict(&b, d == Py_None ? NULL : d, NULL);
    ranges[2 * i] = first;
    ranges[2 * i + 1] = b.n - first;
    polytel_span_event_t *e = &evs[sp->ev_dropped + (size_t)i];
    e->name = utf8_of(&b, PyTuple_GET_ITEM(ev, 0), &len);
    e->time_ns = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(ev, 1));
    if (e->time_ns == (uint64_t)-1 && PyErr_Occurred()) {
      PyErr_Clear();
      e->time_ns = 0;
    }
  }
  for (Py_ssize_t i = 0; i < n_ln; i++) {
    PyObject *ln = PyList_GET_ITEM(links, i);
    CtxObject *c = (CtxObject *)PyTuple_GET_ITEM(ln, 0);
    size_t first = b.n;
    PyObject *d = PyTuple_GET_ITEM(ln, 1);
    attrbuf_add_dict(&b, d == Py_None ? NULL : d, NULL);
    ranges[2 * (n_ev + i)] = first;
    ranges[2 * (n_ev + i) + 1] = b.n - first;
    lns[i].ctx = c->ctx;
    lns[i].tracestate = c->tracestate ? utf8_of(&b, c->tracestate, &len) : NULL;
  }
  /* b.attrs is final now (conversions done): point into it. */
  for (Py_ssize_t i = 0; i < n_ev; i++) {
    polytel_span_event_t *e = &evs[sp->ev_dropped + (size_t)i];
    e->attrs = b.attrs + ranges[2 * i];
    e->n_attrs = ranges[2 * i + 1];
  }
  for (Py_ssize_t i = 0; i < n_ln; i++) {
    lns[i].attrs = b.attrs + ranges[2 * (n_ev + i)];
    lns[i].n_attrs = ranges[2 * (n_ev + i) + 1];
  }
  o.events = evs;
  o.n_events = ev_total;
  o.links = lns;
  o.n_links = (size_t)n_ln;
  polytel_span_finish_ex(&sp->ctx, name, (polytel_status_t)status, smsg, b.attrs, n_span_attrs, &o);
  PyMem_Free(evs);
  PyMem_Free(lns);
  PyMem_Free(ranges);
  Py_XDECREF(events);
  Py_XDECREF(links);
  attrbuf_free(&b);
}

static PyObject *span_exit(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs) {
  if (sp->state != SPAN_ACTIVE) {
    PyErr_SetString(PyExc_RuntimeError, "polytel: span exited without being entered");
    return NULL;
  }
  module_state *st = get_state(sp->module);
  PyObject *et = nargs > 0 ? args[0] : Py_None;
  PyObject *ev = nargs > 1 ? args[1] : Py_None;
  PyObject *tb = nargs > 2 ? args[2] : Py_None;
  sp->state = SPAN_DONE;
  /* A generator closed before its end (GeneratorExit) stopped early; it did not fail. */
  if (et != Py_None && PyType_Check(et) &&
      PyType_IsSubtype((PyTypeObject *)et, (PyTypeObject *)PyExc_GeneratorExit))
    et = ev = Py_None;
  /* A span entered before fork belongs to the parent, which records it; the child must not. */
  if (sp->generation == fork_generation) {
    PyObject *emsg = NULL, *tname = NULL, *smsg = NULL;
    int status = sp->status;
    if (et != Py_None && (sp->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED)) {
      if (span_exception_event(sp, et, ev, tb, NULL, &emsg, &tname) < 0) PyErr_Clear();
      /* An empty message says nothing: the type name does. */
      smsg = emsg && PyUnicode_GET_LENGTH(emsg) > 0 ? emsg : tname;
    }
    if (et != Py_None)
      status = POLYTEL_STATUS_ERROR;
    else
      smsg = sp->status_msg;
    span_record(sp, status, NULL, smsg);
    Py_XDECREF(emsg);
    Py_XDECREF(tname);
  }
  if (sp->bg_token) {
    if (PyContextVar_Reset(st->baggage, sp->bg_token) < 0)
      PyErr_Clear(); /* another context: it keeps its own */
    Py_CLEAR(sp->bg_token);
  }
  if (sp->token) {
    if (PyContextVar_Reset(st->current, sp->token) < 0) {
      /* Entered in one context, exited in another (a generator moved between tasks): drop our value. */
      PyErr_Clear();
      PyObject *t = PyContextVar_Set(st->current, Py_None);
      if (t)
        Py_DECREF(t);
      else
        PyErr_Clear();
    }
    Py_CLEAR(sp->token);
  }
  Py_RETURN_FALSE;
}

/* A time given as Unix nanoseconds (the OpenTelemetry API's start_time/end_time); 0 stands for "now". */
static int unix_ns_of(PyObject *v, const char *what, uint64_t *out) {
  uint64_t t = PyLong_Check(v) ? PyLong_AsUnsignedLongLong(v) : (uint64_t)-1;
  if (t == (uint64_t)-1) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s is Unix nanoseconds (a non-negative int), not %R", what, v);
    return -1;
  }
  *out = t;
  return 0;
}

/* end(end_ns=None): exit (no exception) at an explicit end time (Unix ns; the OpenTelemetry API's end_time).
 */
static PyObject *span_end(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "end() takes at most one argument: end_ns (Unix nanoseconds, int)");
    return NULL;
  }
  if (sp->state != SPAN_ACTIVE) {
    PyErr_SetString(PyExc_RuntimeError,
                    "polytel: end() on a span that is not active (not entered, or ended)");
    return NULL;
  }
  if (nargs == 1 && args[0] != Py_None && unix_ns_of(args[0], "end(): end_ns", &sp->end_ns) < 0) return NULL;
  PyObject *r = span_exit(sp, NULL, 0);
  if (!r) return NULL;
  Py_DECREF(r);
  Py_RETURN_NONE;
}

static PyObject *span_call(SpanObject *sp, PyObject *args, PyObject *kwargs) {
  PyObject *fn;
  if ((kwargs && PyDict_GET_SIZE(kwargs)) || !PyArg_ParseTuple(args, "O:span decorator", &fn)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a span decorates exactly one function");
    return NULL;
  }
  module_state *st = get_state(sp->module);
  if (!st->decorate) {
    PyErr_SetString(PyExc_RuntimeError, "polytel: decorator support not initialized (import polytel)");
    return NULL;
  }
  return PyObject_CallFunctionObjArgs(st->decorate, (PyObject *)sp, fn, NULL);
}

static PyObject *span_set_attribute(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "set_attribute(key: str, value)");
    return NULL;
  }
  if (!sp->attrs) {
    sp->attrs = PyDict_New();
    if (!sp->attrs) return NULL;
  }
  if (PyDict_SetItem(sp->attrs, args[0], args[1]) < 0) return NULL;
  Py_RETURN_NONE;
}

/* Keyword arguments as a dict, leaving out `skip` keys whose values are taken by *slot (NULL: none). */
static PyObject *kw_attrs(PyObject *const *kv, PyObject *kwnames, PyObject *s1, PyObject **v1, PyObject *s2,
                          PyObject **v2) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject *d = NULL;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i);
    if (s1 && kw_is(k, s1)) {
      *v1 = kv[i];
      continue;
    }
    if (s2 && kw_is(k, s2)) {
      *v2 = kv[i];
      continue;
    }
    if (!d && !(d = PyDict_New())) return NULL;
    if (PyDict_SetItem(d, k, kv[i]) < 0) {
      Py_DECREF(d);
      return NULL;
    }
  }
  if (!d && !(d = PyDict_New())) return NULL;
  return d;
}

/* add_event(name, /, *, attributes=None, timestamp_ns=None, **attrs) */
static PyObject *span_add_event(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs != 1 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "add_event() takes exactly one positional argument: name (str)");
    return NULL;
  }
  /* Nothing an unsampled or ended span keeps is ever sent. */
  if (sp->state == SPAN_DONE ||
      (sp->state == SPAN_ACTIVE && !(sp->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED)))
    Py_RETURN_NONE;
  module_state *st = get_state(sp->module);
  PyObject *attributes = NULL, *ts = NULL;
  PyObject *d = kw_attrs(args + nargs, kwnames, st->s_attributes, &attributes, st->s_timestamp_ns, &ts);
  if (!d) return NULL;
  uint64_t when = polytel_now_ns();
  if (ts && ts != Py_None) {
    when = PyLong_AsUnsignedLongLong(ts);
    if (when == (uint64_t)-1 && PyErr_Occurred()) {
      Py_DECREF(d);
      PyErr_SetString(PyExc_ValueError, "add_event(): timestamp_ns is Unix nanoseconds (a non-negative int)");
      return NULL;
    }
  }
  if (attributes && attributes != Py_None) {
    PyObject *merged = PyDict_New();
    if (!merged || PyDict_Merge(merged, attributes, 1) < 0 || PyDict_Update(merged, d) < 0) {
      Py_XDECREF(merged);
      Py_DECREF(d);
      return NULL;
    }
    Py_SETREF(d, merged);
  }
  if (PyDict_GET_SIZE(d) == 0) Py_CLEAR(d);
  if (span_push_event(sp, args[0], when, d) < 0) return NULL;
  Py_RETURN_NONE;
}

/* record_exception(exc, /, **attrs): an `exception` event; the status is the caller's to set. */
static PyObject *span_record_exception(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames) {
  if (nargs != 1 || !PyExceptionInstance_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError,
                    "record_exception() takes one positional argument: an exception instance");
    return NULL;
  }
  if (sp->state == SPAN_DONE ||
      (sp->state == SPAN_ACTIVE && !(sp->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED)))
    Py_RETURN_NONE;
  PyObject *d = kw_attrs(args + nargs, kwnames, NULL, NULL, NULL, NULL);
  if (!d) return NULL;
  PyObject *exc = args[0], *tb = PyException_GetTraceback(exc);
  int rc = span_exception_event(sp, (PyObject *)Py_TYPE(exc), exc, tb, d, NULL, NULL);
  Py_XDECREF(tb);
  Py_DECREF(d);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

/* add_link(context, /, **attrs): a link added before the span ends. */
static PyObject *span_add_link(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs != 1) {
    PyErr_SetString(PyExc_TypeError, "add_link() takes one positional argument: a SpanContext or Span");
    return NULL;
  }
  if (sp->state == SPAN_DONE) Py_RETURN_NONE;
  module_state *st = get_state(sp->module);
  const polytel_span_ctx_t *c;
  PyObject *ts;
  if (ctx_of(st, args[0], "add_link()", &c, &ts, NULL) < 0) return NULL;
  PyObject *d = kw_attrs(args + nargs, kwnames, NULL, NULL, NULL, NULL);
  PyObject *ctx = d ? ctx_new(st, c, ts, NULL) : NULL;
  PyObject *pair = ctx ? PyTuple_Pack(2, ctx, PyDict_GET_SIZE(d) ? d : Py_None) : NULL;
  int rc = pair && (sp->links || (sp->links = PyList_New(0))) ? PyList_Append(sp->links, pair) : -1;
  Py_XDECREF(pair);
  Py_XDECREF(ctx);
  Py_XDECREF(d);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *span_set_status(SpanObject *sp, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"status", "message", NULL};
  const char *status;
  PyObject *msg = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|U:set_status", kwlist, &status, &msg)) return NULL;
  if (!strcmp(status, "ok"))
    sp->status = POLYTEL_STATUS_OK;
  else if (!strcmp(status, "error"))
    sp->status = POLYTEL_STATUS_ERROR;
  else if (!strcmp(status, "unset"))
    sp->status = POLYTEL_STATUS_UNSET;
  else {
    PyErr_Format(PyExc_ValueError, "set_status: status must be 'ok', 'error' or 'unset', not %R",
                 PyTuple_GET_ITEM(args, 0));
    return NULL;
  }
  Py_XINCREF(msg);
  Py_XSETREF(sp->status_msg, msg);
  Py_RETURN_NONE;
}

static PyObject *span_get_trace_id(SpanObject *sp, void *Py_UNUSED(c)) {
  return hex_of(sp->ctx.trace_id, 16);
}
static PyObject *span_get_span_id(SpanObject *sp, void *Py_UNUSED(c)) {
  return hex_of(sp->ctx.span_id, 8);
}
static PyObject *span_get_parent_id(SpanObject *sp, void *Py_UNUSED(c)) {
  return hex_of(sp->ctx.parent_id, 8);
}
static PyObject *span_get_name(SpanObject *sp, void *Py_UNUSED(c)) {
  Py_INCREF(sp->name);
  return sp->name;
}
static PyObject *span_get_attributes(SpanObject *sp, void *Py_UNUSED(c)) {
  if (!sp->attrs) return PyDict_New();
  return PyDict_Copy(sp->attrs);
}
static PyObject *span_get_active(SpanObject *sp, void *Py_UNUSED(c)) {
  return PyBool_FromLong(sp->state == SPAN_ACTIVE);
}
static PyObject *span_get_context(SpanObject *sp, void *Py_UNUSED(c)) {
  return ctx_new(get_state(sp->module), &sp->ctx, sp->tracestate, NULL);
}
static PyObject *span_get_kind(SpanObject *sp, void *Py_UNUSED(c)) {
  return PyUnicode_FromString(polytel_span_kind_name((polytel_span_kind_t)sp->kind));
}

/* The start time (Unix ns): None before entering unless set; settable until the span ends. */
static PyObject *span_get_start_ns(SpanObject *sp, void *Py_UNUSED(c)) {
  uint64_t t = sp->state == SPAN_NEW ? sp->start_ns : sp->ctx.start_ns;
  if (!t) Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong(t);
}
static int span_set_start_ns(SpanObject *sp, PyObject *v, void *Py_UNUSED(c)) {
  if (!v) {
    PyErr_SetString(PyExc_TypeError, "span.start_ns cannot be deleted");
    return -1;
  }
  if (sp->state == SPAN_DONE) {
    PyErr_SetString(PyExc_RuntimeError, "polytel: start_ns set on a span that has ended");
    return -1;
  }
  if (sp->state == SPAN_NEW) {
    if (v == Py_None) {
      sp->start_ns = 0; /* the time of entry */
      return 0;
    }
    return unix_ns_of(v, "span.start_ns", &sp->start_ns);
  }
  uint64_t t;
  if (unix_ns_of(v, "span.start_ns", &t) < 0) return -1;
  if (t) sp->ctx.start_ns = t; /* 0 ("now") on a started span: it keeps the time it started at */
  return 0;
}

static PyObject *span_repr(SpanObject *sp) {
  static const char *states[] = {"new", "active", "ended"};
  return PyUnicode_FromFormat("<polytel.Span %R %s>", sp->name, states[sp->state]);
}

/* ---------------------------------------------- __enter__ / __exit__ without an allocation (BoundObject) */

static PyObject *bound_enter_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  SpanObject *sp = (SpanObject *)(void *)((char *)self - offsetof(SpanObject, b_enter));
  (void)args;
  if (PyVectorcall_NARGS(nargsf) || (kwnames && PyTuple_GET_SIZE(kwnames))) {
    PyErr_SetString(PyExc_TypeError, "Span.__enter__() takes no arguments");
    return NULL;
  }
  return span_enter(sp, NULL);
}

static PyObject *bound_exit_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  SpanObject *sp = (SpanObject *)(void *)((char *)self - offsetof(SpanObject, b_exit));
  if (kwnames && PyTuple_GET_SIZE(kwnames)) {
    PyErr_SetString(PyExc_TypeError, "Span.__exit__() takes no keyword arguments");
    return NULL;
  }
  return span_exit(sp, args, PyVectorcall_NARGS(nargsf));
}

static SpanObject *bound_span(BoundObject *b) {
  return b->vectorcall == bound_enter_call ? (SpanObject *)(void *)((char *)b - offsetof(SpanObject, b_enter))
                                           : (SpanObject *)(void *)((char *)b - offsetof(SpanObject, b_exit));
}

/* The last reference went: the memory is the span's, so only the references it held are given back. */
static void bound_dealloc(BoundObject *b) {
  PyTypeObject *tp = Py_TYPE(b);
  SpanObject *sp = bound_span(b);
  Py_DECREF(tp);
  Py_DECREF(sp);
}

static PyObject *bound_repr(BoundObject *b) {
  return PyUnicode_FromFormat("<bound method Span.%s of %R>",
                              b->vectorcall == bound_enter_call ? "__enter__" : "__exit__",
                              (PyObject *)bound_span(b));
}

static PyObject *bound_get_self(BoundObject *b, void *Py_UNUSED(c)) {
  PyObject *sp = (PyObject *)bound_span(b);
  Py_INCREF(sp);
  return sp;
}

static PyObject *bound_get_name(BoundObject *b, void *Py_UNUSED(c)) {
  return PyUnicode_FromString(b->vectorcall == bound_enter_call ? "__enter__" : "__exit__");
}

static PyMemberDef bound_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(BoundObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef bound_getset[] = {
    {"__self__", (getter)bound_get_self, NULL, NULL, NULL},
    {"__name__", (getter)bound_get_name, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Span.__enter__ / Span.__exit__ in the type's dict: binding hands out the span's embedded BoundObject. */
typedef struct {
  PyObject_HEAD PyTypeObject *bound_type;
  int exit;
} SmethObject;

static PyObject *smeth_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type)) {
  SmethObject *d = (SmethObject *)self;
  if (!obj || obj == Py_None) { /* looked up on the class */
    Py_INCREF(self);
    return self;
  }
  if (Py_TYPE(obj)->tp_dealloc != (destructor)span_dealloc) {
    PyErr_Format(PyExc_TypeError,
                 "descriptor '%s' for 'polytel.Span' objects doesn't apply to a '%.100s' object",
                 d->exit ? "__exit__" : "__enter__", Py_TYPE(obj)->tp_name);
    return NULL;
  }
  SpanObject *sp = (SpanObject *)obj;
  BoundObject *b = d->exit ? &sp->b_exit : &sp->b_enter;
  if (Py_REFCNT(b) > 0) { /* bound already (someone holds it): the same object */
    Py_INCREF(b);
    return (PyObject *)b;
  }
  (void)PyObject_Init((PyObject *)b, d->bound_type);
  b->vectorcall = d->exit ? bound_exit_call : bound_enter_call;
  Py_INCREF(sp);
  return (PyObject *)b;
}

/* Span.__enter__(span) / Span.__exit__(span, et, ev, tb): the unbound call. */
static PyObject *smeth_call(PyObject *self, PyObject *args, PyObject *kwargs) {
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (n < 1) {
    PyErr_Format(PyExc_TypeError, "unbound method Span.%s() needs a polytel.Span argument",
                 ((SmethObject *)self)->exit ? "__exit__" : "__enter__");
    return NULL;
  }
  PyObject *b = smeth_get(self, PyTuple_GET_ITEM(args, 0), NULL);
  if (!b) return NULL;
  PyObject *rest = PyTuple_GetSlice(args, 1, n);
  PyObject *r = rest ? PyObject_Call(b, rest, kwargs) : NULL;
  Py_XDECREF(rest);
  Py_DECREF(b);
  return r;
}

static void smeth_dealloc(SmethObject *d) {
  PyTypeObject *tp = Py_TYPE(d);
  Py_XDECREF(d->bound_type);
  PyObject_Free(d);
  Py_DECREF(tp);
}

static PyObject *smeth_repr(SmethObject *d) {
  return PyUnicode_FromFormat("<method '%s' of 'polytel.Span' objects>", d->exit ? "__exit__" : "__enter__");
}

static PyObject *smeth_get_name(SmethObject *d, void *Py_UNUSED(c)) {
  return PyUnicode_FromString(d->exit ? "__exit__" : "__enter__");
}

static PyObject *smeth_get_qualname(SmethObject *d, void *Py_UNUSED(c)) {
  return PyUnicode_FromString(d->exit ? "Span.__exit__" : "Span.__enter__");
}

/* What inspect.signature() reads of a method descriptor. */
static PyObject *smeth_get_sig(SmethObject *d, void *Py_UNUSED(c)) {
  return PyUnicode_FromString(d->exit ? "($self, exc_type, exc, tb, /)" : "($self, /)");
}

static PyObject *smeth_get_doc(SmethObject *d, void *Py_UNUSED(c)) {
  return PyUnicode_FromString(d->exit ? "End the span (as failed if an exception is passed); returns False."
                                      : "Start the span and make it the current one; returns the span.");
}

static PyGetSetDef smeth_getset[] = {
    {"__name__", (getter)smeth_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)smeth_get_qualname, NULL, NULL, NULL},
    {"__text_signature__", (getter)smeth_get_sig, NULL, NULL, NULL},
    {"__doc__", (getter)smeth_get_doc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define FASTKW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef span_methods[] = {
    {"end", (PyCFunction)(void (*)(void))span_end, METH_FASTCALL,
     "end(end_ns=None): end the span (as a `with` block's exit without an exception), at end_ns if given."},
    {"set_attribute", (PyCFunction)(void (*)(void))span_set_attribute, METH_FASTCALL,
     "set_attribute(key, value): add an attribute before the span ends."},
    {"set_status", (PyCFunction)(void (*)(void))span_set_status, METH_VARARGS | METH_KEYWORDS,
     "set_status('ok'|'error'|'unset', message=None): the status when no exception ends the span."},
    {"add_event", FASTKW(span_add_event),
     "add_event(name, /, *, attributes=None, timestamp_ns=None, **attrs): a span event (time: now)."},
    {"record_exception", FASTKW(span_record_exception),
     "record_exception(exc, /, **attrs): an `exception` event with exc's type, message and traceback."},
    {"add_link", FASTKW(span_add_link), "add_link(context, /, **attrs): link a SpanContext or Span."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef span_getset[] = {
    {"name", (getter)span_get_name, NULL, "span name", NULL},
    {"attributes", (getter)span_get_attributes, NULL, "a copy of the span's attributes", NULL},
    {"trace_id", (getter)span_get_trace_id, NULL, "32 hex digits (zero before entering)", NULL},
    {"span_id", (getter)span_get_span_id, NULL, "16 hex digits (zero before entering)", NULL},
    {"parent_span_id", (getter)span_get_parent_id, NULL, "16 hex digits, all zero for a root span", NULL},
    {"active", (getter)span_get_active, NULL, "True between enter and exit", NULL},
    {"context", (getter)span_get_context, NULL, "the span's SpanContext (ids, sampled, tracestate)", NULL},
    {"kind", (getter)span_get_kind, NULL, "'internal', 'server', 'client', 'producer' or 'consumer'", NULL},
    {"start_ns", (getter)span_get_start_ns, (setter)span_set_start_ns,
     "the start time, Unix ns (None before entering, unless set): set it to start the span at that time",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* CPython's slot tables hold functions as void *: the API requires what -Wpedantic flags. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
static PyType_Slot span_slots[] = {
    {Py_tp_dealloc, span_dealloc},
    {Py_tp_methods, span_methods},
    {Py_tp_getset, span_getset},
    {Py_tp_call, span_call},
    {Py_tp_repr, span_repr},
    {Py_tp_doc,
     "A span: `with polytel.span(name, **attrs):` or `@polytel.span(name)`. Create with polytel.span()."},
    {0, NULL},
};
static PyType_Slot bound_slots[] = {
    {Py_tp_dealloc, bound_dealloc}, {Py_tp_call, PyVectorcall_Call}, {Py_tp_repr, bound_repr},
    {Py_tp_members, bound_members}, {Py_tp_getset, bound_getset},    {0, NULL},
};
static PyType_Slot smeth_slots[] = {
    {Py_tp_dealloc, smeth_dealloc}, {Py_tp_descr_get, smeth_get}, {Py_tp_call, smeth_call},
    {Py_tp_repr, smeth_repr},       {Py_tp_getset, smeth_getset}, {0, NULL},
};
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#if PY_VERSION_HEX >= 0x030A0000
#define SPAN_TYPE_FLAGS (Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION)
#else
#define SPAN_TYPE_FLAGS 0
#endif

static PyType_Spec span_spec = {
    .name = "polytel.Span",
    .basicsize = sizeof(SpanObject),
    .flags = Py_TPFLAGS_DEFAULT | SPAN_TYPE_FLAGS,
    .slots = span_slots,
};

static PyType_Spec bound_spec = {
    .name = "polytel.bound_span_method",
    .basicsize = sizeof(BoundObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | SPAN_TYPE_FLAGS,
    .slots = bound_slots,
};

static PyType_Spec smeth_spec = {
    .name = "polytel.span_method",
    .basicsize = sizeof(SmethObject),
    .flags = Py_TPFLAGS_DEFAULT | SPAN_TYPE_FLAGS,
    .slots = smeth_slots,
};

/*
 * Put the two descriptors into Span's dict. The helper types are made without the module (PyType_FromSpec):
 * the descriptors hold the bound type, and nothing of theirs leads back to the module (no cycle to collect).
 */
static int span_type_add_methods(PyTypeObject *span_type) {
  PyTypeObject *bound_type = (PyTypeObject *)PyType_FromSpec(&bound_spec);
  PyTypeObject *smeth_type = bound_type ? (PyTypeObject *)PyType_FromSpec(&smeth_spec) : NULL;
  int rc = smeth_type ? 0 : -1;
  for (int exit = 0; exit < 2 && rc == 0; exit++) {
    SmethObject *d = PyObject_New(SmethObject, smeth_type);
    if (!d) {
      rc = -1;
      break;
    }
    Py_INCREF(bound_type);
    d->bound_type = bound_type;
    d->exit = exit;
    rc = PyDict_SetItemString(span_type->tp_dict, exit ? "__exit__" : "__enter__", (PyObject *)d);
    Py_DECREF(d);
  }
  Py_XDECREF(smeth_type);
  Py_XDECREF(bound_type);
  PyType_Modified(span_type);
  return rc;
}

static PyObject *py_current_span(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  module_state *st = get_state(module);
  PyObject *holder;
  current_ctx(st, &holder);
  if (holder) return holder;
  Py_RETURN_NONE;
}
/* ----------------------------------------------------------- trace context */

static void ctx_dealloc(CtxObject *c) {
  PyTypeObject *tp = Py_TYPE(c);
  Py_XDECREF(c->tracestate);
  Py_XDECREF(c->baggage);
  PyObject_Free(c);
  Py_DECREF(tp);
}

/* An id from an int (0 < v < 2^(8n)) or n*2 hex digits (any case); 0, or -1 with ValueError/TypeError. */
static int id_of(PyObject *v, uint8_t *out, size_t n, const char *what) {
  if (PyLong_Check(v) && !PyBool_Check(v)) {
    PyObject *b =
        PyObject_CallMethod(v, "to_bytes", "ns", (Py_ssize_t)n, "big"); /* negative, too big: raise */
    if (!b) {
      if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
      PyErr_Clear();
      goto bad;
    }
    memcpy(out, PyBytes_AS_STRING(b), n);
    Py_DECREF(b);
    if (all_zero(out, n)) goto bad;
    return 0;
  }
  if (!PyUnicode_Check(v)) {
    PyErr_Format(PyExc_TypeError, "SpanContext(): %s must be an int or a hex str, not %.100s", what,
                 Py_TYPE(v)->tp_name);
    return -1;
  }
  Py_ssize_t len;
  const char *s = PyUnicode_AsUTF8AndSize(v, &len);
  if (!s) return -1;
  if ((size_t)len != 2 * n) goto bad;
  for (size_t i = 0; i < 2 * n; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) goto bad;
    if (i % 2 == 0)
      out[i / 2] = (uint8_t)(d << 4);
    else
      out[i / 2] |= (uint8_t)d;
  }
  if (all_zero(out, n)) goto bad;
  return 0;
bad:
  PyErr_Format(PyExc_ValueError, "SpanContext(): %s must be %zu hex digits or an int, not all zero: %R", what,
               2 * n, v);
  return -1;
}

/* A tracestate as W3C reads it: normalized, or NULL when empty or invalid (discarded whole). New ref. */
static PyObject *tracestate_of(const char *s, size_t n) {
  char buf[POLYTEL__TRACESTATE_MAX_LEN + 1];
  int len = polytel__tracestate_normalize_n(s, n, buf, sizeof buf);
  if (len <= 0) return NULL;
  return PyUnicode_DecodeASCII(buf, len, "replace");
}

/* SpanContext(trace_id, span_id, sampled=True, tracestate=None, is_remote=True) */
static PyObject *ctx_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"trace_id", "span_id", "sampled", "tracestate", "is_remote", NULL};
  PyObject *tid, *sid, *ts = Py_None;
  int sampled = 1, remote = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|pOp:SpanContext", kwlist, &tid, &sid, &sampled, &ts,
                                   &remote))
    return NULL;
  polytel_span_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  if (id_of(tid, ctx.trace_id, 16, "trace_id") < 0 || id_of(sid, ctx.span_id, 8, "span_id") < 0) return NULL;
  ctx.trace_flags = sampled ? POLYTEL_TRACE_FLAG_SAMPLED : 0;
  ctx.is_remote = (uint8_t)(remote != 0);
  PyObject *norm = NULL;
  if (ts != Py_None) {
    Py_ssize_t len;
    const char *s = PyUnicode_Check(ts) ? PyUnicode_AsUTF8AndSize(ts, &len) : NULL;
    if (!s) {
      PyErr_Clear();
      PyErr_SetString(PyExc_TypeError, "SpanContext(): tracestate must be a str");
      return NULL;
    }
    char buf[POLYTEL__TRACESTATE_MAX_LEN + 1];
    int n = polytel__tracestate_normalize_n(s, (size_t)len, buf, sizeof buf);
    if (n < 0)
      return PyErr_Format(PyExc_ValueError, "SpanContext(): tracestate %R is not valid W3C tracestate", ts);
    if (n > 0 && !(norm = PyUnicode_DecodeASCII(buf, n, "replace"))) return NULL;
  }
  CtxObject *c = (CtxObject *)type->tp_alloc(type, 0);
  if (!c) {
    Py_XDECREF(norm);
    return NULL;
  }
  c->ctx = ctx;
  c->tracestate = norm;
  c->baggage = NULL;
  return (PyObject *)c;
}

static PyObject *ctx_get_trace_id(CtxObject *c, void *Py_UNUSED(x)) {
  return hex_of(c->ctx.trace_id, 16);
}
static PyObject *ctx_get_span_id(CtxObject *c, void *Py_UNUSED(x)) {
  return hex_of(c->ctx.span_id, 8);
}
static PyObject *ctx_get_sampled(CtxObject *c, void *Py_UNUSED(x)) {
  return PyBool_FromLong(c->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED);
}
static PyObject *ctx_get_flags(CtxObject *c, void *Py_UNUSED(x)) {
  return PyLong_FromLong(c->ctx.trace_flags);
}
static PyObject *ctx_get_remote(CtxObject *c, void *Py_UNUSED(x)) {
  return PyBool_FromLong(c->ctx.is_remote);
}
static PyObject *ctx_get_valid(CtxObject *c, void *Py_UNUSED(x)) {
  return PyBool_FromLong(!all_zero(c->ctx.trace_id, 16) && !all_zero(c->ctx.span_id, 8));
}
static PyObject *ctx_get_traceparent(CtxObject *c, void *Py_UNUSED(x)) {
  char buf[POLYTEL_TRACEPARENT_LEN + 1];
  if (polytel_traceparent_format(&c->ctx, buf, sizeof buf) != 0) Py_RETURN_NONE;
  return PyUnicode_DecodeASCII(buf, POLYTEL_TRACEPARENT_LEN, NULL);
}
static PyObject *ctx_get_tracestate(CtxObject *c, void *Py_UNUSED(x)) {
  PyObject *v = c->tracestate ? c->tracestate : Py_None;
  Py_INCREF(v);
  return v;
}
static PyObject *ctx_get_baggage(CtxObject *c, void *Py_UNUSED(x)) {
  return c->baggage ? PyDict_Copy(c->baggage) : PyDict_New();
}

static PyObject *ctx_repr(CtxObject *c) {
  char buf[POLYTEL_TRACEPARENT_LEN + 1];
  if (polytel_traceparent_format(&c->ctx, buf, sizeof buf) != 0) strcpy(buf, "invalid");
  return PyUnicode_FromFormat("<polytel.SpanContext %s%s%s>", buf, c->ctx.is_remote ? " remote" : "",
                              c->baggage ? " +baggage" : "");
}

static PyObject *ctx_richcompare(PyObject *a, PyObject *b, int op) {
  if ((op != Py_EQ && op != Py_NE) || Py_TYPE(b) != Py_TYPE(a)) Py_RETURN_NOTIMPLEMENTED;
  const polytel_span_ctx_t *x = &((CtxObject *)a)->ctx, *y = &((CtxObject *)b)->ctx;
  int eq = !memcmp(x->trace_id, y->trace_id, 16) && !memcmp(x->span_id, y->span_id, 8) &&
           x->trace_flags == y->trace_flags;
  return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t ctx_hash(CtxObject *c) {
  uint64_t h;
  memcpy(&h, c->ctx.span_id, 8);
  h ^= (uint64_t)c->ctx.trace_flags << 56;
  Py_hash_t r = (Py_hash_t)(h >> 1);
  return r == -1 ? -2 : r;
}

/* Pickle/copy: (SpanContext, (trace_id, span_id, sampled), {tracestate, is_remote}) through _ctx_restore. */
static PyObject *ctx_reduce(CtxObject *c, PyObject *Py_UNUSED(ignored)) {
  PyObject *tid = hex_of(c->ctx.trace_id, 16), *sid = hex_of(c->ctx.span_id, 8);
  PyObject *res =
      tid && sid
          ? Py_BuildValue("O(OOOOO)", Py_TYPE(c), tid, sid,
                          (c->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED) ? Py_True : Py_False,
                          c->tracestate ? c->tracestate : Py_None, c->ctx.is_remote ? Py_True : Py_False)
          : NULL;
  Py_XDECREF(tid);
  Py_XDECREF(sid);
  return res;
}

static PyGetSetDef ctx_getset[] = {
    {"trace_id", (getter)ctx_get_trace_id, NULL, "32 lowercase hex digits", NULL},
    {"span_id", (getter)ctx_get_span_id, NULL, "16 lowercase hex digits", NULL},
    {"sampled", (getter)ctx_get_sampled, NULL, "the W3C sampled flag", NULL},
    {"trace_flags", (getter)ctx_get_flags, NULL, "the W3C trace flags (sampled 0x01, random 0x02)", NULL},
    {"is_remote", (getter)ctx_get_remote, NULL, "True when it came from another process (extract)", NULL},
    {"is_valid", (getter)ctx_get_valid, NULL, "False for the all-zero ids of a baggage-only context", NULL},
    {"traceparent", (getter)ctx_get_traceparent, NULL, "the W3C traceparent value, None when not valid",
     NULL},
    {"tracestate", (getter)ctx_get_tracestate, NULL, "the W3C tracestate value, or None", NULL},
    {"baggage", (getter)ctx_get_baggage, NULL, "the extracted W3C baggage (a new dict)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef ctx_methods[] = {
    {"__reduce__", (PyCFunction)ctx_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
static PyType_Slot ctx_slots[] = {
    {Py_tp_dealloc, ctx_dealloc},
    {Py_tp_new, ctx_tp_new},
    {Py_tp_getset, ctx_getset},
    {Py_tp_methods, ctx_methods},
    {Py_tp_repr, ctx_repr},
    {Py_tp_richcompare, ctx_richcompare},
    {Py_tp_hash, ctx_hash},
    {Py_tp_doc,
     "SpanContext(trace_id, span_id, sampled=True, tracestate=None, is_remote=True): a span's identity "
     "(W3C Trace Context), as polytel.extract() returns it and parent=/links= take it."},
    {0, NULL},
};
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#if PY_VERSION_HEX >= 0x030A0000
#define CTX_TYPE_FLAGS Py_TPFLAGS_IMMUTABLETYPE
#else
#define CTX_TYPE_FLAGS 0
#endif

static PyType_Spec ctx_spec = {
    .name = "polytel.SpanContext",
    .basicsize = sizeof(CtxObject),
    .flags = Py_TPFLAGS_DEFAULT | CTX_TYPE_FLAGS,
    .slots = ctx_slots,
};

/* ------------------------------------------------------- inject, extract */

/* Set carrier[key] = value (dicts directly). Steals value. */
static int carrier_set(PyObject *carrier, PyObject *key, PyObject *value) {
  if (!value) return -1;
  int rc = PyDict_CheckExact(carrier) ? PyDict_SetItem(carrier, key, value)
                                      : PyObject_SetItem(carrier, key, value);
  Py_DECREF(value);
  return rc;
}

/* The baggage header of a baggage dict (str -> str), "" when nothing can travel. New ref. */
static PyObject *baggage_header(module_state *st, PyObject *bg) {
  if (bg == st->bg_dict && st->bg_header) { /* the dict never changes once current: format it once */
    Py_INCREF(st->bg_header);
    return st->bg_header;
  }
  typedef struct {
    polytel__baggage_t b;
    char store[POLYTEL__BAGGAGE_STORE_MIN];
    char out[POLYTEL__BAGGAGE_MAX_BYTES + 1];
  } work_t;
  work_t *w = PyMem_Malloc(sizeof *w);
  if (!w) return PyErr_NoMemory();
  polytel__baggage_init(&w->b, w->store, sizeof w->store);
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  while (PyDict_Next(bg, &pos, &k, &v)) {
    Py_ssize_t kl, vl;
    const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kl) : NULL;
    const char *vs = ks && PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &vl) : NULL;
    if (!vs) {
      PyErr_Clear();
      continue;
    }
    polytel__baggage_set(&w->b, ks, (size_t)kl, vs, (size_t)vl); /* set_baggage() checked the key */
  }
  int n = polytel__baggage_format(&w->b, w->out, sizeof w->out);
  PyObject *h = PyUnicode_DecodeASCII(w->out, n > 0 ? n : 0, "replace");
  PyMem_Free(w);
  if (h && PyDict_CheckExact(bg)) {
    Py_INCREF(bg);
    Py_XSETREF(st->bg_dict, bg);
    Py_INCREF(h);
    Py_XSETREF(st->bg_header, h);
  }
  return h;
}

/* inject(carrier=None, *, context=None) -> carrier: the current (or given) span's headers written in. */
static PyObject *py_inject(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  module_state *st = get_state(module);
  PyObject *carrier = nargs > 0 ? args[0] : NULL, *context = NULL;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs > 1) goto usage;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i);
    if (kw_is(k, st->s_carrier) && !carrier)
      carrier = args[nargs + i];
    else if (kw_is(k, st->s_context))
      context = args[nargs + i];
    else
      goto usage;
  }
  if (!carrier || carrier == Py_None) {
    carrier = PyDict_New();
    if (!carrier) return NULL;
  } else if (PyDict_Check(carrier) || (PyMapping_Check(carrier) && !PyList_Check(carrier) &&
                                       !PyTuple_Check(carrier) && !PyUnicode_Check(carrier))) {
    Py_INCREF(carrier);
  } else {
    return PyErr_Format(PyExc_TypeError,
                        "inject(): carrier must be a mutable mapping (dict, headers), not %.100s",
                        Py_TYPE(carrier)->tp_name);
  }
  const polytel_span_ctx_t *ctx = NULL;
  PyObject *holder = NULL, *ts = NULL, *bg = NULL;
  if (context && context != Py_None) {
    if (ctx_of(st, context, "inject(): context", &ctx, &ts, &bg) < 0) goto fail;
  } else {
    ctx = current_ctx(st, &holder);
    if (holder) ts = ((SpanObject *)holder)->tracestate;
  }
  unsigned prop = polytel_propagators();
  if ((prop & POLYTEL_PROPAGATOR_TRACECONTEXT) && ctx) {
    char buf[POLYTEL_TRACEPARENT_LEN + 1];
    if (polytel_traceparent_format(ctx, buf, sizeof buf) == 0) {
      if (carrier_set(carrier, st->s_traceparent, PyUnicode_DecodeASCII(buf, POLYTEL_TRACEPARENT_LEN, NULL)) <
          0)
        goto fail;
      if (ts) {
        Py_INCREF(ts);
        if (carrier_set(carrier, st->s_tracestate, ts) < 0) goto fail;
      }
    }
  }
  if (prop & POLYTEL_PROPAGATOR_BAGGAGE) {
    PyObject *cur = NULL;
    if (!bg) {
      if (PyContextVar_Get(st->baggage, NULL, &cur) < 0) goto fail;
      bg = cur;
    }
    if (bg && PyDict_Check(bg) && PyDict_GET_SIZE(bg)) {
      PyObject *h = baggage_header(st, bg);
      if (h && PyUnicode_GET_LENGTH(h) > 0) {
        if (carrier_set(carrier, st->s_baggage, h) < 0) {
          Py_XDECREF(cur);
          goto fail;
        }
      } else if (!h) {
        Py_XDECREF(cur);
        goto fail;
      } else {
        Py_DECREF(h);
      }
    }
    Py_XDECREF(cur);
  }
  Py_XDECREF(holder);
  return carrier;
fail:
  Py_XDECREF(holder);
  Py_DECREF(carrier);
  return NULL;
usage:
  PyErr_SetString(PyExc_TypeError, "inject(carrier=None, *, context=None)");
  return NULL;
}

/* 1 when key (str or bytes) equals the lowercase ASCII name, ignoring ASCII case. */
static int key_is(PyObject *key, const char *name, size_t n) {
  if (PyUnicode_Check(key)) {
    if (!PyUnicode_IS_ASCII(key) || (size_t)PyUnicode_GET_LENGTH(key) != n) return 0;
    return strncasecmp((const char *)PyUnicode_DATA(key), name, n) == 0;
  }
  if (PyBytes_Check(key))
    return (size_t)PyBytes_GET_SIZE(key) == n && strncasecmp(PyBytes_AS_STRING(key), name, n) == 0;
  return 0;
}

static const char *const header_names[3] = {"traceparent", "tracestate", "baggage"};

/*
 * carrier's values for the wanted headers (mask bit i: header_names[i]), found by exact name first and by
 * any ASCII case after. New references in out (NULL when absent). -1 with an error for a carrier that is
 * not a mapping (or whose lookups raise).
 */
static int carrier_get(module_state *st, PyObject *carrier, unsigned want, PyObject *out[3]) {
  PyObject *names[3] = {st->s_traceparent, st->s_tracestate, st->s_baggage};
  unsigned missing = 0;
  if (PyDict_Check(carrier)) {
    for (int i = 0; i < 3; i++) {
      if (!(want & (1u << i))) continue;
      PyObject *v = PyDict_GetItemWithError(carrier, names[i]);
      if (!v && PyErr_Occurred()) return -1;
      Py_XINCREF(v);
      out[i] = v;
      if (!v) missing |= 1u << i;
    }
    if (!missing) return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (missing && PyDict_Next(carrier, &pos, &k, &v)) { /* comparing runs no Python code */
      for (int i = 0; i < 3; i++) {
        if ((missing & (1u << i)) && key_is(k, header_names[i], strlen(header_names[i]))) {
          Py_INCREF(v);
          out[i] = v;
          missing &= ~(1u << i);
        }
      }
    }
    return 0;
  }
  if (!PyMapping_Check(carrier) || PyList_Check(carrier) || PyTuple_Check(carrier) ||
      PyUnicode_Check(carrier) || PyBytes_Check(carrier)) {
    PyErr_Format(PyExc_TypeError,
                 "extract(): carrier must be a mapping of header names to values, not %.100s",
                 Py_TYPE(carrier)->tp_name);
    return -1;
  }
  PyObject *get = PyObject_GetAttr(carrier, st->s_get);
  if (!get) PyErr_Clear();
  for (int i = 0; i < 3; i++) {
    if (!(want & (1u << i))) continue;
    PyObject *v = get ? PyObject_CallOneArg(get, names[i]) : PyObject_GetItem(carrier, names[i]);
    if (!v) {
      if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
        Py_XDECREF(get);
        return -1;
      }
      PyErr_Clear();
    } else if (v == Py_None) {
      Py_CLEAR(v);
    }
    out[i] = v;
    if (!v) missing |= 1u << i;
  }
  Py_XDECREF(get);
  if (!missing) return 0;
  PyObject *keys = PyMapping_Keys(carrier);
  PyObject *seq = keys ? PySequence_Fast(keys, "keys") : NULL;
  Py_XDECREF(keys);
  if (!seq) {
    PyErr_Clear();
    return 0;
  }
  for (Py_ssize_t j = 0; missing && j < PySequence_Fast_GET_SIZE(seq); j++) {
    PyObject *k = PySequence_Fast_GET_ITEM(seq, j);
    for (int i = 0; i < 3; i++) {
      if ((missing & (1u << i)) && key_is(k, header_names[i], strlen(header_names[i]))) {
        out[i] = PyObject_GetItem(carrier, k);
        if (!out[i]) PyErr_Clear();
        missing &= ~(1u << i);
      }
    }
  }
  Py_DECREF(seq);
  return 0;
}

/*
 * A header value's text: a str or bytes; a list or tuple of them is several header fields, joined with ','
 * when `join` (tracestate, baggage), taken only when alone otherwise (traceparent: two are invalid). The
 * text lives in *hold (new reference). NULL for anything else: a malformed header is absent.
 */
static const char *header_text(module_state *st, PyObject *v, int join, PyObject **hold, size_t *len) {
  *hold = NULL;
  if (!v) return NULL;
  if (PyList_Check(v) || PyTuple_Check(v)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    if (n == 1) return header_text(st, PySequence_Fast_GET_ITEM(v, 0), join, hold, len);
    if (!join || n == 0) return NULL;
    PyObject *sep = PyUnicode_FromString(",");
    PyObject *j = sep ? PyUnicode_Join(sep, v) : NULL; /* str items only */
    Py_XDECREF(sep);
    if (!j) {
      PyErr_Clear();
      return NULL;
    }
    const char *s = header_text(st, j, join, hold, len);
    Py_DECREF(j); /* *hold has its own reference */
    return s;
  }
  if (PyUnicode_Check(v)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (!s) {
      PyErr_Clear();
      return NULL;
    }
    Py_INCREF(v);
    *hold = v;
    *len = (size_t)n;
    return s;
  }
  if (PyBytes_Check(v)) {
    Py_INCREF(v);
    *hold = v;
    *len = (size_t)PyBytes_GET_SIZE(v);
    return PyBytes_AS_STRING(v);
  }
  return NULL;
}

/* A baggage header as a dict (properties are not kept), or NULL (no error) when no member is well-formed. */
static PyObject *baggage_dict(const char *s, size_t n) {
  typedef struct {
    polytel__baggage_t b;
    char store[POLYTEL__BAGGAGE_STORE_MIN];
  } work_t;
  work_t *w = PyMem_Malloc(sizeof *w);
  if (!w) return NULL;
  polytel__baggage_init(&w->b, w->store, sizeof w->store);
  polytel__baggage_parse(&w->b, s, n);
  PyObject *d = w->b.n ? PyDict_New() : NULL;
  for (uint32_t i = 0; d && i < w->b.n; i++) {
    const polytel__baggage_entry_t *e = &w->b.e[i];
    PyObject *k = PyUnicode_DecodeASCII(e->key, e->key_len, "replace");
    PyObject *val = PyUnicode_DecodeUTF8(e->value, e->value_len, "replace");
    if (!k || !val || PyDict_SetItem(d, k, val) < 0) Py_CLEAR(d);
    Py_XDECREF(k);
    Py_XDECREF(val);
  }
  PyMem_Free(w);
  PyErr_Clear();
  return d;
}

/* extract(carrier) -> SpanContext | None: the remote parent the headers describe (W3C; malformed: ignored).
 */
static PyObject *py_extract(PyObject *module, PyObject *carrier) {
  module_state *st = get_state(module);
  if (carrier == Py_None) Py_RETURN_NONE;
  unsigned prop = polytel_propagators(), want = 0;
  if (prop & POLYTEL_PROPAGATOR_TRACECONTEXT) want |= 3u;
  if (prop & POLYTEL_PROPAGATOR_BAGGAGE) want |= 4u;
  PyObject *vals[3] = {NULL, NULL, NULL};
  if (!want) {
    if (!PyMapping_Check(carrier)) /* the same TypeError whatever OTEL_PROPAGATORS says */
      return PyErr_Format(PyExc_TypeError, "extract(): carrier must be a mapping, not %.100s",
                          Py_TYPE(carrier)->tp_name);
    Py_RETURN_NONE;
  }
  if (carrier_get(st, carrier, want, vals) < 0) return NULL;
  PyObject *hold, *ts = NULL, *bg = NULL, *res = NULL;
  polytel_span_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  size_t len = 0;
  const char *s = header_text(st, vals[0], 0, &hold, &len);
  int valid = s && polytel__traceparent_parse_n(s, len, &ctx) == 0;
  Py_XDECREF(hold);
  if (valid) { /* W3C: a tracestate is read only beside a valid traceparent */
    s = header_text(st, vals[1], 1, &hold, &len);
    if (s) ts = tracestate_of(s, len);
    Py_XDECREF(hold);
  }
  s = header_text(st, vals[2], 1, &hold, &len);
  if (s) bg = baggage_dict(s, len);
  Py_XDECREF(hold);
  if (valid || bg) res = ctx_new(st, &ctx, ts, bg);
  Py_XDECREF(ts);
  Py_XDECREF(bg);
  for (int i = 0; i < 3; i++) Py_XDECREF(vals[i]);
  if (!res && !PyErr_Occurred()) Py_RETURN_NONE;
  return res;
}
/* ----------------------------------------------------------------- metrics */

typedef struct {
  PyObject *name, *value, *unit;
  attrbuf_t b;
} metric_args_t;

/* (name, value=default, unit="", **attrs); `value` and `unit` may also come as keywords. */
static int parse_metric(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                        metric_args_t *ma, int value_optional) {
  ma->name = NULL;
  ma->value = NULL;
  ma->unit = NULL;
  if (nargs < 1 || nargs > 3) {
    PyErr_Format(PyExc_TypeError, "%s() takes 1 to 3 positional arguments (name, value, unit)", fname);
    return -1;
  }
  ma->name = args[0];
  if (nargs > 1) ma->value = args[1];
  if (nargs > 2) ma->unit = args[2];
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (attrbuf_init(&ma->b, (size_t)nkw) < 0) return -1;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i);
    if ((PyUnicode_CompareWithASCIIString(k, "value") == 0) && nargs < 2)
      ma->value = args[nargs + i];
    else if ((PyUnicode_CompareWithASCIIString(k, "unit") == 0) && nargs < 3)
      ma->unit = args[nargs + i];
    else
      attrbuf_add(&ma->b, k, args[nargs + i]);
  }
  if (!PyUnicode_Check(ma->name)) {
    PyErr_Format(PyExc_TypeError, "%s(): name must be a str", fname);
    goto fail;
  }
  if (ma->unit && ma->unit != Py_None && !PyUnicode_Check(ma->unit)) {
    PyErr_Format(PyExc_TypeError, "%s(): unit must be a str", fname);
    goto fail;
  }
  if (!ma->value && !value_optional) {
    PyErr_Format(PyExc_TypeError, "%s() missing the value", fname);
    goto fail;
  }
  return 0;
fail:
  attrbuf_free(&ma->b);
  return -1;
}

static PyObject *py_counter_add(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  (void)module;
  metric_args_t ma;
  if (parse_metric("counter_add", args, nargs, kwnames, &ma, 1) < 0) return NULL;
  PyObject *res = NULL;
  long long v = 1;
  if (ma.value && (!PyLong_Check(ma.value) || PyBool_Check(ma.value))) {
    PyErr_Format(PyExc_TypeError, "counter_add(): value must be an int, not %.100s",
                 Py_TYPE(ma.value)->tp_name);
    goto out;
  }
  if (ma.value) {
    v = PyLong_AsLongLong(ma.value);
    if (v == -1 && PyErr_Occurred()) goto out;
  }
  if (v < 0) {
    PyErr_SetString(PyExc_ValueError, "counter_add(): a counter only goes up (value must be >= 0)");
    goto out;
  }
  Py_ssize_t l;
  const char *name = utf8_of(&ma.b, ma.name, &l);
  const char *unit = ma.unit && ma.unit != Py_None ? utf8_of(&ma.b, ma.unit, &l) : "";
  polytel_counter_add(name, unit, (int64_t)v, ma.b.attrs, ma.b.n);
  res = Py_None;
  Py_INCREF(res);
out:
  attrbuf_free(&ma.b);
  return res;
}

static PyObject *double_metric(const char *fname, int kind, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
  metric_args_t ma;
  if (parse_metric(fname, args, nargs, kwnames, &ma, 0) < 0) return NULL;
  PyObject *res = NULL;
  double v = PyFloat_AsDouble(ma.value);
  if (v == -1.0 && PyErr_Occurred()) goto out;
  Py_ssize_t l;
  const char *name = utf8_of(&ma.b, ma.name, &l);
  const char *unit = ma.unit && ma.unit != Py_None ? utf8_of(&ma.b, ma.unit, &l) : "";
  if (kind == POLYTEL_METRIC_GAUGE)
    polytel_gauge_set(name, unit, v, ma.b.attrs, ma.b.n);
  else
    polytel_histogram_record(name, unit, v, ma.b.attrs, ma.b.n);
  res = Py_None;
  Py_INCREF(res);
out:
  attrbuf_free(&ma.b);
  return res;
}

static PyObject *py_gauge_set(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  (void)module;
  return double_metric("gauge_set", POLYTEL_METRIC_GAUGE, args, nargs, kwnames);
}

static PyObject *py_histogram_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
  (void)module;
  return double_metric("histogram_record", POLYTEL_METRIC_HISTOGRAM, args, nargs, kwnames);
}

/* histogram_set_bounds(name, bounds) -> int: the core's polytel_histogram_set_bounds (bucket advice). */
static PyObject *py_histogram_set_bounds(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  (void)module;
  if (nargs != 2 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "histogram_set_bounds(name: str, bounds: sequence of float)");
    return NULL;
  }
  const char *name = PyUnicode_AsUTF8(args[0]);
  PyObject *seq = name ? PySequence_Fast(args[1], "histogram_set_bounds(): bounds must be a sequence") : NULL;
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  double *b = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *b);
  if (!b) {
    Py_DECREF(seq);
    return PyErr_NoMemory();
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    b[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
    if (b[i] == -1.0 && PyErr_Occurred()) {
      PyMem_Free(b);
      Py_DECREF(seq);
      return NULL;
    }
  }
  int rc = polytel_histogram_set_bounds(name, b, (size_t)n);
  PyMem_Free(b);
  Py_DECREF(seq);
  return PyLong_FromLong(rc);
}

/* ------------------------------------------------------ phases, lifecycle */

static PyObject *py_phase(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  (void)module;
  return PyUnicode_FromString(polytel_phase_name(polytel_phase()));
}

/*
 * _bootstrap(pairs): phase 2. pairs is a sequence of (key, str) that polytel/__init__.py made from the
 * keyword arguments; each goes through polytel_config_set(), so the core checks every value (ValueError with
 * its message). The strings live in `pairs`, which the caller keeps alive while the GIL is released.
 */
static PyObject *py_bootstrap(PyObject *module, PyObject *pairs) {
  (void)module;
  polytel_config_t cfg;
  polytel_config_init(&cfg);
  cfg.sdk_language = "python";
  PyObject *seq = PySequence_Fast(pairs, "_bootstrap() takes a sequence of (key, value) pairs");
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *kv = PySequence_Fast_GET_ITEM(seq, i);
    const char *key, *value;
    if (!PyTuple_Check(kv) || !PyArg_ParseTuple(kv, "ss:_bootstrap", &key, &value)) {
      Py_DECREF(seq);
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_bootstrap() takes (key, value) str tuples");
      return NULL;
    }
    if (polytel_config_set(&cfg, key, value) != 0) {
      Py_DECREF(seq);
      return PyErr_Format(PyExc_ValueError, "bootstrap_worker(): %s", polytel_config_error());
    }
  }
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = polytel_init_full_telemetry(NULL, &cfg);
  Py_END_ALLOW_THREADS Py_DECREF(seq);
  return PyLong_FromLong(rc);
}

/* One value of the resolved view as a Python object: bool, int, str or None. */
static PyObject *setting_value(const polytel_setting_t *it) {
  if (!it->value) Py_RETURN_NONE;
  if (it->type == POLYTEL_VALUE_BOOL) return PyBool_FromLong(strcmp(it->value, "true") == 0);
  if (it->type == POLYTEL_VALUE_INT) return PyLong_FromString(it->value, NULL, 10);
  return PyUnicode_DecodeUTF8(it->value, (Py_ssize_t)strlen(it->value), "surrogateescape");
}

/* resolved_config() -> dict: what is running, as the core resolved it (polytel_config_resolved). */
static PyObject *py_resolved(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  (void)module;
  polytel_resolved_t *r = polytel_config_resolved();
  if (!r) return PyErr_NoMemory();
  PyObject *d = PyDict_New();
  for (size_t i = 0; d && i < r->n; i++) {
    PyObject *v = setting_value(&r->items[i]);
    if (!v || PyDict_SetItemString(d, r->items[i].key, v) < 0) Py_CLEAR(d);
    Py_XDECREF(v);
  }
  polytel_config_resolved_free(r);
  return d;
}

static int parse_timeout(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *fname,
                         uint32_t *out) {
  PyObject *v = NULL;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs > 1 || nargs + nkw > 1) goto bad;
  if (nargs == 1) v = args[0];
  if (nkw == 1) {
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout_ms") != 0) goto bad;
    v = args[nargs];
  }
  if (!v || v == Py_None) return 0;
  long long t = PyLong_AsLongLong(v);
  if (t == -1 && PyErr_Occurred()) return -1;
  if (t < 0 || t > UINT32_MAX) {
    PyErr_Format(PyExc_ValueError, "%s(): timeout_ms must be between 0 and %lu", fname,
                 (unsigned long)UINT32_MAX);
    return -1;
  }
  *out = (uint32_t)t;
  return 0;
bad:
  PyErr_Format(PyExc_TypeError, "%s() takes one optional argument: timeout_ms", fname);
  return -1;
}

/* flush() and shutdown(): the core call without the GIL (it blocks up to the timeout); its return code. */
static PyObject *timeout_call(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *fname,
                              int (*call)(uint32_t)) {
  uint32_t t = 5000;
  if (parse_timeout(args, nargs, kwnames, fname, &t) < 0) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = call(t);
  Py_END_ALLOW_THREADS return PyLong_FromLong(rc);
}

static PyObject *py_flush(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  (void)module;
  return timeout_call(args, nargs, kwnames, "flush", polytel_flush);
}

static PyObject *py_shutdown(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  (void)module;
  return timeout_call(args, nargs, kwnames, "shutdown", polytel_shutdown);
}

static int dict_set_u64(PyObject *d, const char *k, uint64_t v) {
  PyObject *o = PyLong_FromUnsignedLongLong(v);
  if (!o) return -1;
  int rc = PyDict_SetItemString(d, k, o);
  Py_DECREF(o);
  return rc;
}

static PyObject *py_stats(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  (void)module;
  polytel_stats_t s;
  memset(&s, 0, sizeof(s));
  int rc = polytel_stats(&s);
  if (rc != 0) return PyErr_Format(PyExc_RuntimeError, "polytel_stats: %s", polytel_strerror(rc));
  PyObject *d = PyDict_New();
  if (!d) return NULL;
#define STAT(f, metric, reason, doc) \
  if (dict_set_u64(d, #f, s.f) < 0) goto fail;
  POLYTEL_STATS_FIELDS(STAT)
#undef STAT
  return d;
fail:
  Py_DECREF(d);
  return NULL;
}

static PyObject *py_strerror(PyObject *module, PyObject *arg) {
  (void)module;
  long rc = PyLong_AsLong(arg);
  if (rc == -1 && PyErr_Occurred()) return NULL;
  return PyUnicode_FromString(polytel_strerror((int)rc));
}

static PyObject *py_err_name(PyObject *module, PyObject *arg) {
  (void)module;
  long rc = PyLong_AsLong(arg);
  if (rc == -1 && PyErr_Occurred()) return NULL;
  return PyUnicode_FromString(polytel_err_name((int)rc));
}

static PyObject *py_after_fork_child(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  module_state *st = get_state(module);
  fork_generation++;
  PyObject *t = PyContextVar_Set(st->current, Py_None);
  if (!t) return NULL;
  Py_DECREF(t);
  Py_RETURN_NONE;
}

static PyObject *py_now_ns(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  (void)module;
  return PyLong_FromUnsignedLongLong(polytel_now_ns());
}

static PyMethodDef module_methods[] = {
    {"phase", py_phase, METH_NOARGS, "phase() -> 'none' | 'console' | 'deferred' | 'full'"},
    {"_bootstrap", py_bootstrap, METH_O, "phase 2 with (key, value) pairs; use polytel.bootstrap_worker()"},
    {"resolved_config", py_resolved, METH_NOARGS,
     "resolved_config() -> dict: phase, not_exporting and every option as the core resolved it."},
#define LEVEL_DEF(name, value, text) \
  {text, FASTKW(py_##name), text "(msg, **attrs): a " #name " log record; msg is never a format string."},
    POLYTEL_LEVEL_MAP(LEVEL_DEF)
#undef LEVEL_DEF
        {"warning", FASTKW(py_WARN), "warning(msg, **attrs): alias of warn()"},
    {"critical", FASTKW(py_FATAL), "critical(msg, **attrs): alias of fatal()"},
    {"log", FASTKW(py_log), "log(level, target, msg, **attrs): any level, any target (logger name)."},
    {"span", FASTKW(py_span),
     "span(name, /, *, parent=None, kind=None, links=None, attributes=None, scope=None, **attrs) -> Span: a "
     "context manager and a decorator (sync and async)."},
    {"inject", FASTKW(py_inject),
     "inject(carrier=None, *, context=None) -> carrier: write the current span's traceparent (and "
     "tracestate, "
     "baggage) into carrier (a new dict when None)."},
    {"extract", py_extract, METH_O,
     "extract(carrier) -> SpanContext | None: the remote parent in carrier's traceparent (tracestate, "
     "baggage); header names in any case; malformed headers are ignored."},
    {"_span_from", (PyCFunction)(void (*)(void))py_span_from, METH_FASTCALL, NULL},
    {"current_span", py_current_span, METH_NOARGS, "current_span() -> Span | None"},
    {"counter_add", FASTKW(py_counter_add),
     "counter_add(name, value=1, unit='', **attrs): int64 monotonic counter."},
    {"gauge_set", FASTKW(py_gauge_set), "gauge_set(name, value, unit='', **attrs)"},
    {"histogram_record", FASTKW(py_histogram_record), "histogram_record(name, value, unit='', **attrs)"},
    {"histogram_set_bounds", (PyCFunction)(void (*)(void))py_histogram_set_bounds, METH_FASTCALL,
     "histogram_set_bounds(name, bounds) -> int: explicit bucket bounds for the histogram `name`, set before "
     "its first record (polytel_histogram_set_bounds)."},
    {"flush", FASTKW(py_flush), "flush(timeout_ms=5000) -> int: 0 when everything pending was delivered."},
    {"shutdown", FASTKW(py_shutdown), "shutdown(timeout_ms=5000) -> int: 0 when everything was delivered."},
    {"stats", py_stats, METH_NOARGS, "stats() -> dict of every polytel_stats_t field."},
    {"strerror", py_strerror, METH_O, "strerror(code) -> str"},
    {"err_name", py_err_name, METH_O, "err_name(code) -> 'POLYTEL_ETIMEDOUT', ..."},
    {"now_ns", py_now_ns, METH_NOARGS, "polytel's wall clock, Unix nanoseconds"},
    {"_emit_record", py_emit_record, METH_O, NULL},
    {"_set_logging", py_set_logging, METH_VARARGS, NULL},
    {"_set_decorate", py_set_decorate, METH_O, NULL},
    {"_after_fork_child", py_after_fork_child, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------ module init */

static int intern_into(PyObject **slot, const char *s) {
  *slot = PyUnicode_InternFromString(s);
  return *slot ? 0 : -1;
}

static int module_exec(PyObject *m) {
  module_state *st = get_state(m);
  pt_import_ident = PyThread_get_thread_ident();
  st->span_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &span_spec, NULL);
  if (!st->span_type) return -1;
  if (span_type_add_methods(st->span_type) < 0) return -1;
  if (PyModule_AddType(m, st->span_type) < 0) return -1;
  st->ctx_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &ctx_spec, NULL);
  if (!st->ctx_type) return -1;
  if (PyModule_AddType(m, st->ctx_type) < 0) return -1;
  st->current = PyContextVar_New("polytel.current_span", NULL);
  if (!st->current) return -1;
  st->baggage = PyContextVar_New("polytel.baggage", NULL);
  if (!st->baggage) return -1;
  Py_INCREF(st->baggage);
  if (PyModule_AddObject(m, "_baggage_var", st->baggage) < 0) {
    Py_DECREF(st->baggage);
    return -1;
  }
  if (intern_into(&st->s_dict, "__dict__") || intern_into(&st->s_name, "name") ||
      intern_into(&st->s_msg, "msg") || intern_into(&st->s_args, "args") ||
      intern_into(&st->s_levelno, "levelno") || intern_into(&st->s_pathname, "pathname") ||
      intern_into(&st->s_lineno, "lineno") || intern_into(&st->s_funcName, "funcName") ||
      intern_into(&st->s_exc_info, "exc_info") || intern_into(&st->s_exc_text, "exc_text") ||
      intern_into(&st->s_getMessage, "getMessage") || intern_into(&st->s_module, "__module__") ||
      intern_into(&st->s_qualname, "__qualname__") || intern_into(&st->s_traceparent, "traceparent") ||
      intern_into(&st->s_tracestate, "tracestate") || intern_into(&st->s_baggage, "baggage") ||
      intern_into(&st->s_get, "get") || intern_into(&st->s_parent, "parent") ||
      intern_into(&st->s_kind, "kind") || intern_into(&st->s_links, "links") ||
      intern_into(&st->s_attributes, "attributes") || intern_into(&st->s_scope, "scope") ||
      intern_into(&st->s_timestamp_ns, "timestamp_ns") || intern_into(&st->s_carrier, "carrier") ||
      intern_into(&st->s_context, "context") || intern_into(&st->s__scope, "_scope") ||
      intern_into(&st->s_empty, ""))
    return -1;

  struct {
    const char *name;
    long value;
  } consts[] = {
#define POLYTEL__PYL(name, value, text) {#name, value},
      POLYTEL_LEVEL_MAP(POLYTEL__PYL)
#undef POLYTEL__PYL
          {"OK", POLYTEL_OK},
#define POLYTEL__PYC(name, value, msg) {#name, value},
      POLYTEL_ERRNO_MAP(POLYTEL__PYC)
#undef POLYTEL__PYC
  };
  for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) return -1;
  if (PyModule_AddStringConstant(m, "core_version", polytel_version()) < 0) return -1;
  /* The core's options and their defaults: bootstrap_worker's TypeError on an unknown keyword, the defaults.
   */
  PyObject *defaults = PyDict_New();
  if (!defaults) return -1;
  polytel_setting_t opt;
  for (size_t i = 0; polytel_config_option(i, &opt) == 0; i++) {
    PyObject *v = setting_value(&opt);
    if (!v || PyDict_SetItemString(defaults, opt.key, v) < 0) {
      Py_XDECREF(v);
      Py_DECREF(defaults);
      return -1;
    }
    Py_DECREF(v);
  }
  if (PyModule_AddObject(m, "option_defaults", defaults) < 0) {
    Py_DECREF(defaults);
    return -1;
  }

  /* Phase 1: no thread, no loop, no network; with TELEMETRY_ENABLED=true it starts recording for phase 2. */
  polytel_config_t cfg;
  polytel_config_init(&cfg);
  cfg.sdk_language = "python";
  int rc = polytel_init_console_only(&cfg);
  if (rc != 0 && rc != POLYTEL_EALREADY) {
    PyErr_Format(PyExc_ImportError, "polytel: phase 1 failed: %s", polytel_strerror(rc));
    return -1;
  }
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  module_state *st = get_state(m);
  Py_VISIT(st->span_type);
  Py_VISIT(st->ctx_type);
  Py_VISIT(st->current);
  Py_VISIT(st->baggage);
  Py_VISIT(st->bg_dict);
  Py_VISIT(st->format_exception);
  Py_VISIT(st->decorate);
  Py_VISIT(st->format_exc);
  Py_VISIT(st->logrecord);
  Py_VISIT(st->std_keys);
  return 0;
}

static int module_clear(PyObject *m) {
  module_state *st = get_state(m);
  while (st->n_free_spans) PyObject_Free(st->free_spans[--st->n_free_spans]);
  Py_CLEAR(st->span_type);
  Py_CLEAR(st->ctx_type);
  Py_CLEAR(st->current);
  Py_CLEAR(st->baggage);
  Py_CLEAR(st->bg_dict);
  Py_CLEAR(st->bg_header);
  Py_CLEAR(st->format_exception);
  PyObject **strs[] = {&st->s_traceparent, &st->s_tracestate,   &st->s_baggage, &st->s_get,
                       &st->s_parent,      &st->s_kind,         &st->s_links,   &st->s_attributes,
                       &st->s_scope,       &st->s_timestamp_ns, &st->s_carrier, &st->s_context,
                       &st->s__scope,      &st->s_empty};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) Py_CLEAR(*strs[i]);
  Py_CLEAR(st->decorate);
  Py_CLEAR(st->format_exc);
  Py_CLEAR(st->logrecord);
  Py_CLEAR(st->std_keys);
  Py_CLEAR(st->s_dict);
  Py_CLEAR(st->s_name);
  Py_CLEAR(st->s_msg);
  Py_CLEAR(st->s_args);
  Py_CLEAR(st->s_levelno);
  Py_CLEAR(st->s_pathname);
  Py_CLEAR(st->s_lineno);
  Py_CLEAR(st->s_funcName);
  Py_CLEAR(st->s_exc_info);
  Py_CLEAR(st->s_exc_text);
  Py_CLEAR(st->s_getMessage);
  Py_CLEAR(st->s_module);
  Py_CLEAR(st->s_qualname);
  return 0;
}

static void module_free(void *m) {
  module_clear((PyObject *)m);
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* The core is one per process: subinterpreters may share it, but only under the one GIL. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_USED}, /* module state and Span objects rely on the GIL */
#endif
    {0, NULL},
};
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static struct PyModuleDef polytel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "polytel._polytel",
    .m_doc = "polytel's C core, bound for CPython. Use the `polytel` package.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__polytel(void) {
  return PyModuleDef_Init(&polytel_module);
}
