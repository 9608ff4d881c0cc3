/* _polytel.c — the CPython extension: phase 1 at import, the recording hot path, blocking calls without the
 * GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

#include "polytel.h"

/* Python spans are async spans (explicit ids): the parent comes from a ContextVar, not the thread. */

#define ATTR_STACK 16

/* Bumped in the fork child, so a span entered before fork is never recorded (again) by the child. */
static uint64_t fork_generation;

typedef struct {
  PyTypeObject *span_type;
  PyObject *current;     /* contextvars.ContextVar: the current Span, or None */
  PyObject *decorate;    /* polytel._decorate(span, func), set by __init__.py */
  PyObject *format_exc;  /* polytel._logging._format_exc(exc_info, exc_text) -> (type, msg, stack) */
  PyObject *logrecord;   /* logging.LogRecord, for the getMessage() fast path */
  PyObject *std_keys;    /* frozenset of standard LogRecord attribute names */
  Py_ssize_t n_std_keys; /* len(LogRecord(...).__dict__): fewer keys means no `extra` */
  PyObject *s_dict, *s_name, *s_msg, *s_args, *s_levelno, *s_pathname, *s_lineno, *s_funcName, *s_exc_info,
      *s_exc_text, *s_getMessage, *s_module, *s_qualname;
} module_state;

static inline module_state *get_state(PyObject *module) {
  return (module_state *)PyModule_GetState(module);
}

typedef struct {
  PyObject_HEAD PyObject *name; /* str */
  PyObject *attrs;              /* dict or NULL */
  PyObject *token;              /* ContextVar token while entered */
  PyObject *module;             /* borrowed through the type; kept for state access */
  polytel_span_ctx_t ctx;
  uint64_t generation;
  int state; /* SPAN_NEW, SPAN_ACTIVE, SPAN_DONE */
  int status;
  PyObject *status_msg; /* str or NULL */
} SpanObject;

enum { SPAN_NEW = 0, SPAN_ACTIVE = 1, SPAN_DONE = 2 };

/* ------------------------------------------------------------ attributes */

/* polytel_attr_t views of Python objects, plus the temporary objects their pointers point into. */
typedef struct {
  polytel_attr_t *attrs;
  PyObject **tmp;
  size_t n, ntmp, cap, tmpcap;
  polytel_attr_t attrs_stack[ATTR_STACK];
  PyObject *tmp_stack[ATTR_STACK * 5 + 12];
} attrbuf_t;

/*
 * Each attribute holds at most 5 objects (the key and value themselves, key bytes, str(value), its
 * bytes); 12 more for message, names and record fields.
 */
static int attrbuf_init(attrbuf_t *b, size_t cap) {
  b->n = b->ntmp = 0;
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
  if (b->attrs != b->attrs_stack) PyMem_Free(b->attrs);
  if (b->tmp != b->tmp_stack) PyMem_Free(b->tmp);
}

static int attrbuf_keep(attrbuf_t *b, PyObject *o) {
  if (b->ntmp >= b->tmpcap) {
    Py_DECREF(o);
    return -1;
  }
  b->tmp[b->ntmp++] = o;
  return 0;
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

/* str, int, float, bool are typed; anything else is str(value). Never raises. */
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
    if (b->ntmp + 2 > b->tmpcap || (b->ntmp - start) / 2 >= b->cap - b->n) break;
    Py_INCREF(k);
    b->tmp[b->ntmp++] = k;
    Py_INCREF(v);
    b->tmp[b->ntmp++] = v;
  }
  size_t end = b->ntmp;
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

static PyObject *log_impl(PyObject *module, int level, const char *target, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames, const char *fname) {
  if (nargs != 1) {
    PyErr_Format(PyExc_TypeError, "%s() takes exactly one positional argument (msg), got %zd", fname, nargs);
    return NULL;
  }
  if (!polytel_level_enabled((polytel_level_t)level)) Py_RETURN_NONE;
  module_state *st = get_state(module);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  attrbuf_t b;
  if (attrbuf_init(&b, (size_t)nkw) < 0) return NULL;
  Py_ssize_t mlen;
  const char *m = msg_utf8(&b, args[0], &mlen);
  for (Py_ssize_t i = 0; i < nkw; i++) attrbuf_add(&b, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]);
  PyObject *holder;
  const polytel_span_ctx_t *ctx = current_ctx(st, &holder);
  polytel_log_attrs((polytel_level_t)level, target, m, (size_t)mlen, b.attrs, b.n, ctx);
  Py_XDECREF(holder);
  attrbuf_free(&b);
  Py_RETURN_NONE;
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
  module_state *st = get_state(module);
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  attrbuf_t b;
  if (attrbuf_init(&b, (size_t)nkw) < 0) return NULL;
  Py_ssize_t tlen, mlen;
  const char *target = utf8_of(&b, args[1], &tlen);
  const char *m = msg_utf8(&b, args[2], &mlen);
  for (Py_ssize_t i = 0; i < nkw; i++) attrbuf_add(&b, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]);
  PyObject *holder;
  const polytel_span_ctx_t *ctx = current_ctx(st, &holder);
  polytel_log_attrs((polytel_level_t)lv, target, m, (size_t)mlen, b.attrs, b.n, ctx);
  Py_XDECREF(holder);
  attrbuf_free(&b);
  Py_RETURN_NONE;
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

static PyObject *span_new_obj(module_state *st, PyObject *module, PyObject *name, PyObject *attrs) {
  SpanObject *sp = PyObject_New(SpanObject, st->span_type);
  if (!sp) return NULL;
  Py_INCREF(name);
  sp->name = name;
  sp->attrs = attrs; /* stolen */
  sp->token = NULL;
  sp->module = module;
  Py_INCREF(module);
  memset(&sp->ctx, 0, sizeof(sp->ctx));
  sp->generation = 0;
  sp->state = SPAN_NEW;
  sp->status = POLYTEL_STATUS_UNSET;
  sp->status_msg = NULL;
  return (PyObject *)sp;
}

/* span(name, **attrs): a Span to use as `with` block or decorator. */
static PyObject *py_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs != 1 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "span() takes exactly one positional argument: name (str)");
    return NULL;
  }
  module_state *st = get_state(module);
  PyObject *attrs = NULL;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nkw) {
    attrs = PyDict_New();
    if (!attrs) return NULL;
    for (Py_ssize_t i = 0; i < nkw; i++) {
      if (PyDict_SetItem(attrs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
        Py_DECREF(attrs);
        return NULL;
      }
    }
  }
  PyObject *sp = span_new_obj(st, module, args[0], attrs);
  if (!sp) Py_XDECREF(attrs);
  return sp;
}

/* _span_from(name, attrs_dict_or_None): used by the decorator, one fresh span per call. */
static PyObject *py_span_from(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "_span_from(name, attrs)");
    return NULL;
  }
  PyObject *attrs = NULL;
  if (args[1] != Py_None) {
    attrs = PyDict_Copy(args[1]);
    if (!attrs) return NULL;
  }
  PyObject *sp = span_new_obj(get_state(module), module, args[0], attrs);
  if (!sp) Py_XDECREF(attrs);
  return sp;
}

static void span_dealloc(SpanObject *sp) {
  PyTypeObject *tp = Py_TYPE(sp);
  Py_XDECREF(sp->name);
  Py_XDECREF(sp->attrs);
  Py_XDECREF(sp->token);
  Py_XDECREF(sp->status_msg);
  Py_XDECREF(sp->module);
  PyObject_Free(sp);
  Py_DECREF(tp);
}

static PyObject *span_enter(SpanObject *sp, PyObject *Py_UNUSED(ignored)) {
  if (sp->state != SPAN_NEW) {
    PyErr_SetString(
        PyExc_RuntimeError,
        "polytel: a span can be entered once; call polytel.span() again (as a decorator it does)");
    return NULL;
  }
  module_state *st = get_state(sp->module);
  PyObject *holder;
  const polytel_span_ctx_t *parent = current_ctx(st, &holder);
  polytel_span_start(parent, &sp->ctx);
  Py_XDECREF(holder);
  PyObject *token = PyContextVar_Set(st->current, (PyObject *)sp);
  if (!token) return NULL;
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

/* Record the whole span (polytel_span_finish) with its status and attributes. */
static void span_record(SpanObject *sp, PyObject *exc_type, PyObject *exc_value) {
  module_state *st = get_state(sp->module);
  PyObject *tname = NULL, *emsg = NULL;
  int status = sp->status;
  const char *smsg = NULL;
  size_t extra = 0;
  if (exc_type && exc_type != Py_None) {
    tname = exc_type_name(st, exc_type);
    emsg = exc_value && exc_value != Py_None ? safe_str(exc_value) : PyUnicode_FromString("");
    if (!emsg) PyErr_Clear();
    status = POLYTEL_STATUS_ERROR;
    extra = 2;
  }
  attrbuf_t b;
  if (attrbuf_init(&b, (sp->attrs ? (size_t)PyDict_GET_SIZE(sp->attrs) : 0) + extra) < 0) {
    PyErr_Clear();
    attrbuf_init(&b, 0);
  }
  attrbuf_add_dict(&b, sp->attrs, NULL);
  Py_ssize_t len;
  if (extra) {
    attrbuf_add_k(&b, "exception.type", tname);
    attrbuf_add_k(&b, "exception.message", emsg);
    /* An empty message says nothing: the type name does. */
    if (emsg && PyUnicode_GET_LENGTH(emsg) > 0)
      smsg = utf8_of(&b, emsg, &len);
    else if (tname)
      smsg = utf8_of(&b, tname, &len);
  } else if (sp->status_msg) {
    smsg = utf8_of(&b, sp->status_msg, &len);
  }
  Py_ssize_t nlen;
  const char *name = utf8_of(&b, sp->name, &nlen);
  polytel_span_finish(&sp->ctx, name, (polytel_status_t)status, smsg, b.attrs, b.n);
  attrbuf_free(&b);
  Py_XDECREF(tname);
  Py_XDECREF(emsg);
}

static PyObject *span_exit(SpanObject *sp, PyObject *const *args, Py_ssize_t nargs) {
  if (sp->state != SPAN_ACTIVE) {
    PyErr_SetString(PyExc_RuntimeError, "polytel: span exited without being entered");
    return NULL;
  }
  module_state *st = get_state(sp->module);
  PyObject *et = nargs > 0 ? args[0] : Py_None;
  PyObject *ev = nargs > 1 ? args[1] : Py_None;
  sp->state = SPAN_DONE;
  /* A span entered before fork belongs to the parent, which records it; the child must not. */
  /* A generator closed before its end (GeneratorExit) stopped early; it did not fail. */
  if (et != Py_None && PyType_Check(et) &&
      PyType_IsSubtype((PyTypeObject *)et, (PyTypeObject *)PyExc_GeneratorExit))
    et = ev = Py_None;
  if (sp->generation == fork_generation) span_record(sp, et, ev);
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

static PyObject *hex_of(const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char buf[33];
  for (size_t i = 0; i < n; i++) {
    buf[2 * i] = digits[p[i] >> 4];
    buf[2 * i + 1] = digits[p[i] & 15];
  }
  return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)(2 * n));
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

static PyObject *span_repr(SpanObject *sp) {
  static const char *states[] = {"new", "active", "ended"};
  return PyUnicode_FromFormat("<polytel.Span %R %s>", sp->name, states[sp->state]);
}

static PyMethodDef span_methods[] = {
    {"__enter__", (PyCFunction)span_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))span_exit, METH_FASTCALL, NULL},
    {"set_attribute", (PyCFunction)(void (*)(void))span_set_attribute, METH_FASTCALL,
     "set_attribute(key, value): add an attribute before the span ends."},
    {"set_status", (PyCFunction)(void (*)(void))span_set_status, METH_VARARGS | METH_KEYWORDS,
     "set_status('ok'|'error'|'unset', message=None): the status when no exception ends the span."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef span_getset[] = {
    {"name", (getter)span_get_name, NULL, "span name", NULL},
    {"attributes", (getter)span_get_attributes, NULL, "a copy of the span's attributes", NULL},
    {"trace_id", (getter)span_get_trace_id, NULL, "32 hex digits (zero before entering)", NULL},
    {"span_id", (getter)span_get_span_id, NULL, "16 hex digits (zero before entering)", NULL},
    {"parent_span_id", (getter)span_get_parent_id, NULL, "16 hex digits, all zero for a root span", NULL},
    {"active", (getter)span_get_active, NULL, "True between enter and exit", NULL},
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

static PyObject *py_current_span(PyObject *module, PyObject *Py_UNUSED(ignored)) {
  module_state *st = get_state(module);
  PyObject *holder;
  current_ctx(st, &holder);
  if (holder) return holder;
  Py_RETURN_NONE;
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

static PyObject *py_flush(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  (void)module;
  uint32_t t = 5000;
  if (parse_timeout(args, nargs, kwnames, "flush", &t) < 0) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = polytel_flush(t);
  Py_END_ALLOW_THREADS return PyLong_FromLong(rc);
}

static PyObject *py_shutdown(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  (void)module;
  uint32_t t = 5000;
  if (parse_timeout(args, nargs, kwnames, "shutdown", &t) < 0) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = polytel_shutdown(t);
  Py_END_ALLOW_THREADS return PyLong_FromLong(rc);
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

#define FASTKW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

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
     "span(name, **attrs) -> Span: a context manager and a decorator (sync and async)."},
    {"_span_from", (PyCFunction)(void (*)(void))py_span_from, METH_FASTCALL, NULL},
    {"current_span", py_current_span, METH_NOARGS, "current_span() -> Span | None"},
    {"counter_add", FASTKW(py_counter_add),
     "counter_add(name, value=1, unit='', **attrs): int64 monotonic counter."},
    {"gauge_set", FASTKW(py_gauge_set), "gauge_set(name, value, unit='', **attrs)"},
    {"histogram_record", FASTKW(py_histogram_record), "histogram_record(name, value, unit='', **attrs)"},
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
  if (PyModule_AddType(m, st->span_type) < 0) return -1;
  st->current = PyContextVar_New("polytel.current_span", NULL);
  if (!st->current) return -1;
  if (intern_into(&st->s_dict, "__dict__") || intern_into(&st->s_name, "name") ||
      intern_into(&st->s_msg, "msg") || intern_into(&st->s_args, "args") ||
      intern_into(&st->s_levelno, "levelno") || intern_into(&st->s_pathname, "pathname") ||
      intern_into(&st->s_lineno, "lineno") || intern_into(&st->s_funcName, "funcName") ||
      intern_into(&st->s_exc_info, "exc_info") || intern_into(&st->s_exc_text, "exc_text") ||
      intern_into(&st->s_getMessage, "getMessage") || intern_into(&st->s_module, "__module__") ||
      intern_into(&st->s_qualname, "__qualname__"))
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
  /* The core's options and their defaults: bootstrap_worker's TypeError on an unknown keyword, the defaults. */
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
  Py_VISIT(st->current);
  Py_VISIT(st->decorate);
  Py_VISIT(st->format_exc);
  Py_VISIT(st->logrecord);
  Py_VISIT(st->std_keys);
  return 0;
}

static int module_clear(PyObject *m) {
  module_state *st = get_state(m);
  Py_CLEAR(st->span_type);
  Py_CLEAR(st->current);
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
