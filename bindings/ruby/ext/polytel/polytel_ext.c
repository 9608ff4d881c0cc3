/* polytel_ext.c — the Ruby extension: phase 1 in Init_, recording, spans, blocking calls without the GVL. */
#include <ruby.h>
#include <ruby/thread.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "polytel.h"

/*
 * Ruby leaves a C frame by __builtin_longjmp (raise, throw, break), which AddressSanitizer does not
 * see: the redzones around that frame's address-taken locals stay poisoned, and a later frame of the
 * uninstrumented interpreter at the same depth trips over them. Frames Ruby may jump out of are not
 * instrumented (the core and the helpers they call still are), so an ASan build reports real errors.
 */
#if defined(__SANITIZE_ADDRESS__)
#define PT_LONGJMP_FRAME __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PT_LONGJMP_FRAME __attribute__((no_sanitize_address))
#endif
#endif
#ifndef PT_LONGJMP_FRAME
#define PT_LONGJMP_FRAME
#endif

/* Attributes per call: more than this are left out (counted by nobody, so keep it generous). */
#define PT_MAX_ATTRS 48

static VALUE pt_mPolytel;
static VALUE pt_cSpanContext;
static ID pt_id_span_key; /* the fiber-local that holds this fiber's span stack */
static ID pt_id_message;
static ID pt_id_success_p;
static VALUE pt_sym_unit;
static VALUE pt_sym_phase[4];

/* Bumped in every fork child: a span opened before the fork belongs to the parent, which finishes it. */
static volatile uint32_t pt_fork_gen;

static void pt_atfork_child(void) {
  __atomic_add_fetch(&pt_fork_gen, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ attributes */

typedef struct {
  size_t n;
  VALUE skip; /* a key to leave out (:unit for metrics), or Qundef */
  polytel_attr_t a[PT_MAX_ATTRS];
  /* Strings made during conversion. They live on the C stack, where the conservative GC sees them. */
  VALUE keep[PT_MAX_ATTRS * 2];
  size_t n_keep;
} pt_attrs_t;

static void pt_attrs_init(pt_attrs_t *as, VALUE skip) {
  as->n = 0;
  as->n_keep = 0;
  as->skip = skip;
}

/* A NUL-terminated, NUL-free view of str; a copy only in the rare case the original is not. */
static VALUE pt_cstr_value(VALUE str) {
  const char *p = RSTRING_PTR(str);
  long len = RSTRING_LEN(str);
  const char *nul = memchr(p, 0, (size_t)len);
  if (nul) return rb_str_new(p, nul - p);
  if (p[len] != '\0') return rb_str_new(p, len);
  return str;
}

static VALUE pt_name_value(VALUE v) {
  if (RB_TYPE_P(v, T_STRING)) return pt_cstr_value(v);
  if (RB_TYPE_P(v, T_SYMBOL)) return rb_sym2str(v);
  rb_raise(rb_eTypeError, "polytel: name must be a String or Symbol, not %" PRIsVALUE, rb_obj_class(v));
  return Qnil;
}

static VALUE pt_to_s_body(VALUE v) {
  return rb_obj_as_string(v);
}

/*
 * to_s that cannot make a telemetry call raise because of its data: a StandardError from a user's
 * to_s gives "<unprintable Class>". Interrupts, exit and Thread#kill still propagate.
 */
PT_LONGJMP_FRAME static VALUE pt_safe_to_s(VALUE v) {
  if (RB_TYPE_P(v, T_STRING)) return v;
  if (RB_TYPE_P(v, T_SYMBOL)) return rb_sym2str(v);
  int state = 0;
  VALUE s = rb_protect(pt_to_s_body, v, &state);
  if (state) {
    VALUE err = rb_errinfo();
    if (!rb_obj_is_kind_of(err, rb_eStandardError)) rb_jump_tag(state);
    rb_set_errinfo(Qnil);
    s = rb_sprintf("<unprintable %" PRIsVALUE ">", rb_class_name(rb_obj_class(v)));
  }
  return s;
}

static VALUE pt_keep(pt_attrs_t *as, VALUE v) {
  as->keep[as->n_keep++] = v;
  return v;
}

PT_LONGJMP_FRAME static int pt_attr_i(VALUE key, VALUE val, VALUE arg) {
  pt_attrs_t *as = (pt_attrs_t *)arg;
  if (as->n >= PT_MAX_ATTRS) return ST_STOP;
  if (key == as->skip || NIL_P(val)) return ST_CONTINUE;

  VALUE k;
  if (RB_TYPE_P(key, T_SYMBOL)) {
    k = rb_sym2str(key);
  } else {
    k = pt_cstr_value(pt_safe_to_s(key));
  }
  polytel_attr_t *a = &as->a[as->n];
  a->key = RSTRING_PTR(pt_keep(as, k));

  switch (TYPE(val)) {
    case T_FIXNUM:
      a->type = POLYTEL_ATTR_INT;
      a->value.i = (int64_t)FIX2LONG(val);
      break;
    case T_BIGNUM: {
      /* Typed when it fits 64 bits, else its decimal text. rb_integer_pack gives the magnitude and the
       * sign (±2 when even the magnitude overflows). */
      uint64_t mag;
      int sign = rb_integer_pack(val, &mag, 1, sizeof mag, 0,
                                 INTEGER_PACK_NATIVE_BYTE_ORDER | INTEGER_PACK_LSWORD_FIRST);
      if ((sign == 1 && mag <= (uint64_t)INT64_MAX) || (sign == -1 && mag <= (uint64_t)INT64_MAX + 1)) {
        a->type = POLYTEL_ATTR_INT;
        a->value.i = sign == 1 ? (int64_t)mag : (int64_t)(~mag + 1);
      } else {
        VALUE txt = pt_keep(as, rb_big2str(val, 10));
        a->type = POLYTEL_ATTR_STRING;
        a->value.str.ptr = RSTRING_PTR(txt);
        a->value.str.len = (size_t)RSTRING_LEN(txt);
      }
      break;
    }
    case T_FLOAT:
      a->type = POLYTEL_ATTR_DOUBLE;
      a->value.d = RFLOAT_VALUE(val);
      break;
    case T_TRUE:
    case T_FALSE:
      a->type = POLYTEL_ATTR_BOOL;
      a->value.b = val == Qtrue;
      break;
    default: {
      /* Strings as they are; symbols, bignums, arrays and objects as their to_s. */
      VALUE s = pt_safe_to_s(val);
      pt_keep(as, s);
      a->type = POLYTEL_ATTR_STRING;
      a->value.str.ptr = RSTRING_PTR(s);
      a->value.str.len = (size_t)RSTRING_LEN(s);
      break;
    }
  }
  as->n++;
  return ST_CONTINUE;
}

static void pt_attrs_fill(pt_attrs_t *as, VALUE hash) {
  if (NIL_P(hash)) return;
  Check_Type(hash, T_HASH);
  rb_hash_foreach(hash, pt_attr_i, (VALUE)as);
}

static void pt_attrs_add_str(pt_attrs_t *as, const char *key, VALUE str) {
  if (as->n >= PT_MAX_ATTRS) return;
  polytel_attr_t *a = &as->a[as->n++];
  pt_keep(as, str);
  a->key = key;
  a->type = POLYTEL_ATTR_STRING;
  a->value.str.ptr = RSTRING_PTR(str);
  a->value.str.len = (size_t)RSTRING_LEN(str);
}

/* ------------------------------------------------------------ span objects */

enum { PT_SPAN_OPEN = 0, PT_SPAN_ENDED = 1 };

typedef struct pt_span_s {
  polytel_span_ctx_t ctx;
  uint32_t fork_gen;
  int state;
  VALUE extra;      /* Hash of attributes set inside the block, or nil */
  int status;       /* set_status: a polytel_status_t, or -1 (unset by the user) */
  VALUE status_msg; /* set_status message (String) or nil */
  struct pt_span_s *next_free;
} pt_span_t;

static void pt_span_mark(void *p) {
  const pt_span_t *sp = p;
  rb_gc_mark(sp->extra);
  rb_gc_mark(sp->status_msg);
}
static size_t pt_span_memsize(const void *p) {
  (void)p;
  return sizeof(pt_span_t);
}

/*
 * A span's struct is recycled through a per-thread free list, so a span costs no malloc/free pair. Per
 * thread, so no lock (dfree runs in whichever Ruby thread sweeps, and Ractors run in parallel); bounded, and
 * emptied when the thread exits.
 */
#define PT_FREE_SPANS_MAX 256
static __thread pt_span_t *pt_free_spans;
static __thread unsigned pt_n_free_spans;
static pthread_key_t pt_free_spans_key;

static void pt_free_spans_at_thread_exit(void *unused) {
  (void)unused;
  while (pt_free_spans) {
    pt_span_t *next = pt_free_spans->next_free;
    free(pt_free_spans);
    pt_free_spans = next;
  }
  pt_n_free_spans = 0;
}

static void pt_span_free(void *p) {
  pt_span_t *sp = p;
  if (pt_n_free_spans >= PT_FREE_SPANS_MAX) {
    free(sp);
    return;
  }
  if (!pt_free_spans) pthread_setspecific(pt_free_spans_key, (void *)1); /* arms the exit destructor */
  sp->next_free = pt_free_spans;
  pt_free_spans = sp;
  pt_n_free_spans++;
}

/* Nothing here frees a VALUE or raises: safe to free immediately, during sweep. */
static const rb_data_type_t pt_span_type = {
    .wrap_struct_name = "Polytel::SpanContext",
    .function = {.dmark = pt_span_mark, .dfree = pt_span_free, .dsize = pt_span_memsize},
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};

/*
 * A SpanContext in `state`. The object is made first (with no data, so a NoMemoryError there leaks
 * nothing), then its struct: nothing can raise between the struct's allocation and its wrap.
 */
static VALUE pt_span_new(VALUE klass, int state, pt_span_t **out) {
  VALUE obj = TypedData_Wrap_Struct(klass, &pt_span_type, NULL);
  pt_span_t *sp = pt_free_spans;
  if (sp) {
    pt_free_spans = sp->next_free;
    pt_n_free_spans--;
  } else {
    sp = malloc(sizeof *sp);
    if (!sp) rb_memerror();
  }
  sp->extra = Qnil;
  sp->status = -1;
  sp->status_msg = Qnil;
  sp->state = state;
  sp->fork_gen = pt_fork_gen;
  sp->next_free = NULL;
  memset(&sp->ctx, 0, sizeof sp->ctx);
  DATA_PTR(obj) = sp;
  *out = sp;
  return obj;
}

static pt_span_t *pt_span_of(VALUE v) {
  if (NIL_P(v) || !rb_typeddata_is_kind_of(v, &pt_span_type)) return NULL;
  return (pt_span_t *)RTYPEDDATA_DATA(v);
}

/*
 * The current span of each fiber: a stack of SpanContext objects (nil for with_span(nil)) in one
 * fiber-local (Thread#[] is fiber-local). One lookup per span and no fiber-local writes: pushing and
 * popping are array operations.
 */
typedef struct {
  VALUE *items;
  long depth;
  long cap;
} pt_stack_t;

static void pt_stack_mark(void *p) {
  const pt_stack_t *st = p;
  for (long i = 0; i < st->depth; i++) rb_gc_mark(st->items[i]);
}
static void pt_stack_free(void *p) {
  pt_stack_t *st = p;
  free(st->items);
  free(st);
}
static size_t pt_stack_memsize(const void *p) {
  const pt_stack_t *st = p;
  return sizeof *st + (size_t)st->cap * sizeof(VALUE);
}
static const rb_data_type_t pt_stack_type = {
    .wrap_struct_name = "Polytel::SpanStack",
    .function = {.dmark = pt_stack_mark, .dfree = pt_stack_free, .dsize = pt_stack_memsize},
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};
static VALUE pt_cSpanStack;

/* This fiber's stack; with `create`, made on first use. *holder keeps it alive on the caller's C stack. */
static pt_stack_t *pt_stack(VALUE *holder, int create) {
  VALUE th = rb_thread_current();
  VALUE v = rb_thread_local_aref(th, pt_id_span_key);
  if (!NIL_P(v) && rb_typeddata_is_kind_of(v, &pt_stack_type)) {
    *holder = v;
    return RTYPEDDATA_DATA(v);
  }
  if (!create) return NULL;
  VALUE obj = TypedData_Wrap_Struct(pt_cSpanStack, &pt_stack_type, NULL);
  pt_stack_t *st = calloc(1, sizeof *st);
  if (!st) rb_memerror();
  DATA_PTR(obj) = st;
  rb_thread_local_aset(th, pt_id_span_key, obj);
  *holder = obj;
  return st;
}

/* Room for one more item. May raise (NoMemoryError) — call it before anything that must be undone. */
static void pt_stack_reserve(pt_stack_t *st) {
  if (st->depth < st->cap) return;
  long cap = st->cap ? st->cap * 2 : 8;
  VALUE *items = realloc(st->items, (size_t)cap * sizeof(VALUE));
  if (!items) rb_memerror();
  st->items = items;
  st->cap = cap;
}

static VALUE pt_stack_top(const pt_stack_t *st) {
  return st && st->depth ? st->items[st->depth - 1] : Qnil;
}

static const polytel_span_ctx_t *pt_current_ctx(void) {
  VALUE holder = Qnil;
  pt_span_t *sp = pt_span_of(pt_stack_top(pt_stack(&holder, 0)));
  RB_GC_GUARD(holder);
  return sp ? &sp->ctx : NULL;
}

static VALUE pt_hex(const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char buf[32];
  for (size_t i = 0; i < n; i++) {
    buf[2 * i] = digits[p[i] >> 4];
    buf[2 * i + 1] = digits[p[i] & 15];
  }
  return rb_usascii_str_new(buf, (long)(2 * n));
}

static int pt_all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

static pt_span_t *pt_span_get(VALUE self) {
  return rb_check_typeddata(self, &pt_span_type);
}

static VALUE pt_span_trace_id(VALUE self) {
  return pt_hex(pt_span_get(self)->ctx.trace_id, 16);
}
static VALUE pt_span_span_id(VALUE self) {
  return pt_hex(pt_span_get(self)->ctx.span_id, 8);
}
static VALUE pt_span_parent_span_id(VALUE self) {
  pt_span_t *sp = pt_span_get(self);
  return pt_all_zero(sp->ctx.parent_id, 8) ? Qnil : pt_hex(sp->ctx.parent_id, 8);
}
static VALUE pt_span_recording_p(VALUE self) {
  pt_span_t *sp = pt_span_get(self);
  return sp->state == PT_SPAN_OPEN && sp->fork_gen == pt_fork_gen ? Qtrue : Qfalse;
}

/* Attributes known only inside the block; sent with the span when it ends. */
static VALUE pt_span_set_attribute(VALUE self, VALUE key, VALUE value) {
  pt_span_t *sp = pt_span_get(self);
  if (sp->state != PT_SPAN_OPEN) return value;
  if (NIL_P(sp->extra)) RB_OBJ_WRITE(self, &sp->extra, rb_hash_new());
  rb_hash_aset(sp->extra, key, value);
  return value;
}

/* set_status(:ok | :error | :unset, message = nil): the status the span ends with, unless an exception
 * leaves the block (then it is ERROR with the exception's message). */
PT_LONGJMP_FRAME static VALUE pt_span_set_status(int argc, VALUE *argv, VALUE self) {
  VALUE status, msg = Qnil;
  rb_scan_args(argc, argv, "11", &status, &msg);
  pt_span_t *sp = pt_span_get(self);
  VALUE name = RB_TYPE_P(status, T_SYMBOL) ? rb_sym2str(status) : StringValue(status);
  const char *n = RSTRING_PTR(name);
  long len = RSTRING_LEN(name);
  int st;
  if (len == 2 && !strncasecmp(n, "ok", 2))
    st = POLYTEL_STATUS_OK;
  else if (len == 5 && !strncasecmp(n, "error", 5))
    st = POLYTEL_STATUS_ERROR;
  else if (len == 5 && !strncasecmp(n, "unset", 5))
    st = POLYTEL_STATUS_UNSET;
  else
    rb_raise(rb_eArgError, "polytel: span status must be :ok, :error or :unset, not %" PRIsVALUE, status);
  VALUE m = NIL_P(msg) ? Qnil : pt_cstr_value(rb_str_dup(pt_safe_to_s(msg)));
  if (sp->state != PT_SPAN_OPEN) return self;
  sp->status = st;
  RB_OBJ_WRITE(self, &sp->status_msg, m);
  return self;
}

/* SpanContext.allocate makes an inert context (all-zero ids, not recording); only Polytel.span opens one. */
static VALUE pt_span_alloc(VALUE klass) {
  pt_span_t *sp;
  return pt_span_new(klass, PT_SPAN_ENDED, &sp);
}

/* ------------------------------------------------------------ logs */

/* The target (OTLP scope) of Polytel.info and friends; the same in every binding. */
static const char pt_default_target[] = "app";

PT_LONGJMP_FRAME static void pt_emit_log(polytel_level_t level, const char *target, VALUE msg, VALUE attrs) {
  pt_attrs_t as;
  pt_attrs_init(&as, Qundef);
  pt_attrs_fill(&as, attrs);
  /* After the attributes: their to_s may run user code, which must not see a half-made record. */
  VALUE s = pt_safe_to_s(msg);
  polytel_log_attrs(level, target, RSTRING_PTR(s), (size_t)RSTRING_LEN(s), as.a, as.n, pt_current_ctx());
  RB_GC_GUARD(s);
}

PT_LONGJMP_FRAME static VALUE pt_log_level(int argc, VALUE *argv, polytel_level_t level) {
  VALUE msg, opts = Qnil;
  rb_scan_args(argc, argv, "1:", &msg, &opts);
  if (polytel_level_enabled(level)) pt_emit_log(level, pt_default_target, msg, opts);
  return Qnil;
}

static VALUE pt_trace(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_log_level(argc, argv, POLYTEL_LEVEL_TRACE);
}
static VALUE pt_debug(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_log_level(argc, argv, POLYTEL_LEVEL_DEBUG);
}
static VALUE pt_info(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_log_level(argc, argv, POLYTEL_LEVEL_INFO);
}
static VALUE pt_warn(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_log_level(argc, argv, POLYTEL_LEVEL_WARN);
}
static VALUE pt_error(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_log_level(argc, argv, POLYTEL_LEVEL_ERROR);
}
static VALUE pt_fatal(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_log_level(argc, argv, POLYTEL_LEVEL_FATAL);
}

/* An Integer (an OTel severity number, 1..24) or :trace/:debug/:info/:warn/:warning/:error/:fatal. */
static polytel_level_t pt_level_arg(VALUE v) {
  if (FIXNUM_P(v)) {
    long l = FIX2LONG(v);
    if (l < 1 || l > 24) rb_raise(rb_eArgError, "polytel: level %ld is not a severity number (1..24)", l);
    return (polytel_level_t)l;
  }
  VALUE s = RB_TYPE_P(v, T_SYMBOL) ? rb_sym2str(v) : StringValue(v);
  /* The core's level names (and "warning"); "off" is a threshold, not a level to log at. */
  int l = polytel_level_parse(StringValueCStr(s));
  if (l > 0 && l != POLYTEL_LEVEL_OFF && !(RSTRING_PTR(s)[0] >= '0' && RSTRING_PTR(s)[0] <= '9'))
    return (polytel_level_t)l;
  rb_raise(rb_eArgError, "polytel: unknown level %" PRIsVALUE, v);
  return POLYTEL_LEVEL_OFF;
}

/* Polytel.log(level, target, msg, **attrs): any level, any target (the OTLP scope name). */
PT_LONGJMP_FRAME static VALUE pt_log(int argc, VALUE *argv, VALUE self) {
  (void)self;
  VALUE level, target, msg, opts = Qnil;
  rb_scan_args(argc, argv, "3:", &level, &target, &msg, &opts);
  polytel_level_t lvl = pt_level_arg(level);
  if (!polytel_level_enabled(lvl)) return Qnil;
  VALUE t = pt_name_value(target);
  pt_emit_log(lvl, RSTRING_PTR(t), msg, opts);
  RB_GC_GUARD(t);
  return Qnil;
}

/* Polytel._log(level, target, msg, attrs_or_nil): Polytel::Logger's bridge, positional (no kwargs hash). */
static VALUE pt_log_raw(VALUE self, VALUE level, VALUE target, VALUE msg, VALUE attrs) {
  (void)self;
  polytel_level_t lvl = pt_level_arg(level);
  if (!polytel_level_enabled(lvl)) return Qfalse;
  VALUE t = pt_name_value(target);
  pt_emit_log(lvl, RSTRING_PTR(t), msg, attrs);
  RB_GC_GUARD(t);
  return Qtrue;
}

static VALUE pt_level_enabled_p(VALUE self, VALUE level) {
  (void)self;
  return polytel_level_enabled(pt_level_arg(level)) ? Qtrue : Qfalse;
}

/* ------------------------------------------------------------ spans */

static int pt_is_exception(VALUE err) {
  return !SPECIAL_CONST_P(err) && BUILTIN_TYPE(err) == T_OBJECT && rb_obj_is_kind_of(err, rb_eException);
}

typedef struct {
  pt_span_t *sp;
  VALUE name;
  VALUE opts;
  VALUE err; /* the exception that left the block, or nil */
} pt_finish_t;

static int pt_merge_i(VALUE key, VALUE val, VALUE into) {
  rb_hash_aset(into, RB_TYPE_P(key, T_SYMBOL) ? rb_sym2str(key) : key, val);
  return ST_CONTINUE;
}

PT_LONGJMP_FRAME static VALUE pt_span_finish_body(VALUE arg) {
  pt_finish_t *f = (pt_finish_t *)arg;
  pt_attrs_t as;
  pt_attrs_init(&as, Qundef);
  if (NIL_P(f->sp->extra)) {
    pt_attrs_fill(&as, f->opts);
  } else {
    /* set_attribute overrides an attribute given at the start, whether named by Symbol or String. */
    VALUE merged = rb_hash_new();
    if (!NIL_P(f->opts)) rb_hash_foreach(f->opts, pt_merge_i, merged);
    rb_hash_foreach(f->sp->extra, pt_merge_i, merged);
    pt_attrs_fill(&as, merged);
    RB_GC_GUARD(merged);
  }

  polytel_status_t status = POLYTEL_STATUS_UNSET;
  VALUE status_msg = Qnil;
  VALUE err = f->err;
  /* exit(0) inside a span is the program finishing, not the span failing. */
  if (!NIL_P(err) && rb_obj_is_kind_of(err, rb_eSystemExit) && RTEST(rb_funcall(err, pt_id_success_p, 0)))
    err = Qnil;
  if (!NIL_P(err)) {
    VALUE type = rb_class_name(rb_obj_class(err));
    status_msg = pt_cstr_value(pt_safe_to_s(rb_funcall(err, pt_id_message, 0)));
    pt_attrs_add_str(&as, "exception.type", type);
    pt_attrs_add_str(&as, "exception.message", status_msg);
    status = POLYTEL_STATUS_ERROR;
  } else if (f->sp->status >= 0) {
    status = (polytel_status_t)f->sp->status;
    status_msg = f->sp->status_msg;
  }
  f->sp->state = PT_SPAN_ENDED;
  polytel_span_finish(&f->sp->ctx, RSTRING_PTR(f->name), status,
                      NIL_P(status_msg) ? NULL : RSTRING_PTR(status_msg), as.a, as.n);
  RB_GC_GUARD(status_msg);
  return Qnil;
}

/*
 * Something raised while the span was being ended (an exception's #message, an interrupt): the span is
 * still ended, without attributes. An interrupt or exit goes on; anything else is swallowed.
 */
static VALUE pt_span_finish_rescue(VALUE arg, VALUE exc) {
  pt_finish_t *f = (pt_finish_t *)arg;
  if (f->sp->state == PT_SPAN_OPEN) {
    f->sp->state = PT_SPAN_ENDED;
    polytel_span_finish(&f->sp->ctx, RSTRING_PTR(f->name),
                        NIL_P(f->err) ? POLYTEL_STATUS_UNSET : POLYTEL_STATUS_ERROR, NULL, NULL, 0);
  }
  if (!rb_obj_is_kind_of(exc, rb_eStandardError)) rb_exc_raise(exc);
  return Qnil;
}

static VALUE pt_span_yield(VALUE obj) {
  return rb_yield(obj);
}

/*
 * Polytel.span(name, **attrs) { |span| ... }. The block runs under rb_protect so that every way out
 * (value, exception, break, throw, Thread#kill) ends the span exactly once and restores the parent.
 */
PT_LONGJMP_FRAME static VALUE pt_span(int argc, VALUE *argv, VALUE self) {
  (void)self;
  VALUE name, opts = Qnil;
  rb_scan_args(argc, argv, "1:", &name, &opts);
  rb_need_block();
  name = pt_name_value(name);

  VALUE holder;
  pt_stack_t *st = pt_stack(&holder, 1);
  pt_stack_reserve(st);
  pt_span_t *parent = pt_span_of(pt_stack_top(st));
  pt_span_t *sp;
  VALUE obj = pt_span_new(pt_cSpanContext, PT_SPAN_OPEN, &sp);
  polytel_span_start(parent ? &parent->ctx : NULL, &sp->ctx);

  long depth = st->depth;
  st->items[depth] = obj;
  st->depth = depth + 1;
  int state = 0;
  VALUE result = rb_protect(pt_span_yield, obj, &state);
  st->depth = depth; /* pops this span and anything a non-local exit left above it */

  if (sp->fork_gen != pt_fork_gen) {
    /* Opened in the parent before a fork: the parent ends and exports it, not this child. */
    sp->state = PT_SPAN_ENDED;
  } else if (sp->state == PT_SPAN_OPEN) {
    VALUE err = state ? rb_errinfo() : Qnil;
    pt_finish_t f = {sp, name, opts, pt_is_exception(err) ? err : Qnil};
    if (NIL_P(f.opts) && NIL_P(sp->extra) && NIL_P(f.err) && sp->status < 0) {
      /* Nothing that can raise: the common case skips the rescue frame. */
      sp->state = PT_SPAN_ENDED;
      polytel_span_finish(&sp->ctx, RSTRING_PTR(name), POLYTEL_STATUS_UNSET, NULL, NULL, 0);
    } else {
      /* rb_rescue2 restores the pending errinfo afterwards, so rb_jump_tag re-raises the original. */
      rb_rescue2(pt_span_finish_body, (VALUE)&f, pt_span_finish_rescue, (VALUE)&f, rb_eException, (VALUE)0);
    }
  }
  RB_GC_GUARD(obj);
  RB_GC_GUARD(name);
  RB_GC_GUARD(opts);
  RB_GC_GUARD(holder);
  if (state) rb_jump_tag(state);
  return result;
}

static VALUE pt_current_span(VALUE self) {
  (void)self;
  VALUE holder = Qnil;
  VALUE top = pt_stack_top(pt_stack(&holder, 0));
  RB_GC_GUARD(holder);
  return pt_span_of(top) ? top : Qnil;
}

typedef struct {
  pt_stack_t *st;
  long depth;
  VALUE span;
} pt_with_t;

static VALUE pt_with_span_body(VALUE arg) {
  return rb_yield(((pt_with_t *)arg)->span);
}
static VALUE pt_with_span_pop(VALUE arg) {
  pt_with_t *w = (pt_with_t *)arg;
  w->st->depth = w->depth;
  return Qnil;
}

/*
 * Polytel.with_span(span) { |span| ... }: `span` (a SpanContext, e.g. from another thread, or nil
 * for "none") is the current span inside the block. It is not ended here: its own block ends it.
 */
PT_LONGJMP_FRAME static VALUE pt_with_span(VALUE self, VALUE span) {
  (void)self;
  rb_need_block();
  if (!NIL_P(span)) rb_check_typeddata(span, &pt_span_type);
  VALUE holder;
  pt_stack_t *st = pt_stack(&holder, 1);
  pt_stack_reserve(st);
  pt_with_t w = {st, st->depth, span};
  st->items[st->depth++] = span;
  VALUE result = rb_ensure(pt_with_span_body, (VALUE)&w, pt_with_span_pop, (VALUE)&w);
  RB_GC_GUARD(holder);
  return result;
}

/* ------------------------------------------------------------ metrics */

static VALUE pt_unit_value(VALUE opts) {
  if (NIL_P(opts)) return Qnil;
  VALUE u = rb_hash_lookup2(opts, pt_sym_unit, Qnil);
  return NIL_P(u) ? Qnil : pt_name_value(u);
}

typedef enum { PT_COUNTER, PT_GAUGE, PT_HISTOGRAM } pt_metric_kind_t;

PT_LONGJMP_FRAME static VALUE pt_metric(int argc, VALUE *argv, pt_metric_kind_t kind) {
  VALUE name, value = Qnil, opts = Qnil;
  if (kind == PT_COUNTER)
    rb_scan_args(argc, argv, "11:", &name, &value, &opts);
  else
    rb_scan_args(argc, argv, "2:", &name, &value, &opts);
  name = pt_name_value(name);
  VALUE unit = pt_unit_value(opts);
  int64_t delta = 1;
  double d = 0;
  if (kind == PT_COUNTER) {
    if (!NIL_P(value)) {
      if (!RB_INTEGER_TYPE_P(value)) rb_raise(rb_eTypeError, "polytel: a counter adds Integers");
      delta = NUM2LL(value);
      if (delta < 0) rb_raise(rb_eArgError, "polytel: a counter only goes up (delta %lld)", (long long)delta);
    }
  } else {
    d = NUM2DBL(value);
  }
  pt_attrs_t as;
  pt_attrs_init(&as, pt_sym_unit);
  pt_attrs_fill(&as, opts);
  const char *n = RSTRING_PTR(name);
  const char *u = NIL_P(unit) ? "" : RSTRING_PTR(unit);
  switch (kind) {
    case PT_COUNTER:
      polytel_counter_add(n, u, delta, as.a, as.n);
      break;
    case PT_GAUGE:
      polytel_gauge_set(n, u, d, as.a, as.n);
      break;
    case PT_HISTOGRAM:
      polytel_histogram_record(n, u, d, as.a, as.n);
      break;
  }
  RB_GC_GUARD(name);
  RB_GC_GUARD(unit);
  return Qnil;
}

static VALUE pt_counter_add(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_metric(argc, argv, PT_COUNTER);
}
static VALUE pt_gauge_set(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_metric(argc, argv, PT_GAUGE);
}
static VALUE pt_histogram_record(int argc, VALUE *argv, VALUE self) {
  (void)self;
  return pt_metric(argc, argv, PT_HISTOGRAM);
}

/* ------------------------------------------------------------ blocking calls, without the GVL */

static uint64_t pt_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Flush and shutdown wait in one core call each: polytel_flush cannot be cancelled, and slicing it
 * would not do (each call waits for what was recorded before *it* and queues a metrics export, so a
 * slow collector would never let a slice finish). The call runs on a helper thread so that an
 * interrupt can end the *wait*: the Ruby thread waits without the GVL on a condition variable that
 * the unblock function signals. The helper finishes within the timeout on its own and frees the job
 * if nobody waits for it any more.
 */
enum { PT_JOB_FLUSH = 1, PT_JOB_SHUTDOWN = 2 };

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int op;
  uint32_t timeout_ms;
  int rc;
  int started;   /* the helper exists (or the call ran inline) */
  int done;      /* the core call has returned */
  int abandoned; /* the caller stopped waiting: the helper frees the job */
  int interrupted;
} pt_job_t;

static void pt_job_free(pt_job_t *job) {
  pthread_cond_destroy(&job->cv);
  pthread_mutex_destroy(&job->mu);
  free(job);
}

/*
 * Shutdown flushes first, then stops with what is left of the timeout: polytel_shutdown alone drains
 * the logs and spans still in other threads' blocks but exports metrics collected before that drain
 * (Ruby caches native threads, so finished Ruby threads never hand their blocks off at thread exit),
 * and a counter would lose its last increments. A caller who stopped waiting makes the stop immediate.
 */
static int pt_job_run(pt_job_t *job) {
  if (polytel_phase() != POLYTEL_PHASE_FULL) {
    /* Only phase 2 has a loop to deliver with; elsewhere waiting would only burn the timeout. */
    return job->op == PT_JOB_FLUSH ? polytel_flush(0) : polytel_shutdown(job->timeout_ms);
  }
  uint64_t deadline = pt_mono_ms() + job->timeout_ms;
  int rc = polytel_flush(job->timeout_ms);
  if (job->op == PT_JOB_FLUSH) return rc;
  uint64_t now = pt_mono_ms();
  int quick = __atomic_load_n(&job->abandoned, __ATOMIC_ACQUIRE) || now >= deadline;
  return polytel_shutdown(quick ? 0 : (uint32_t)(deadline - now));
}

static void *pt_job_helper(void *p) {
  pt_job_t *job = p;
  int rc = pt_job_run(job);
  pthread_mutex_lock(&job->mu);
  job->rc = rc;
  job->done = 1;
  pthread_cond_signal(&job->cv);
  int free_it = job->abandoned;
  pthread_mutex_unlock(&job->mu);
  if (free_it) pt_job_free(job);
  return NULL;
}

static void pt_job_ubf(void *p) {
  pt_job_t *job = p;
  pthread_mutex_lock(&job->mu);
  job->interrupted = 1;
  pthread_cond_signal(&job->cv);
  pthread_mutex_unlock(&job->mu);
}

static void *pt_job_nogvl(void *p) {
  pt_job_t *job = p;
  pthread_mutex_lock(&job->mu);
  if (!job->started) {
    job->started = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, pt_job_helper, job) != 0) {
      pthread_mutex_unlock(&job->mu);
      int rc = pt_job_run(job); /* no thread to spare: wait here, uninterruptibly */
      pthread_mutex_lock(&job->mu);
      job->rc = rc;
      job->done = 1;
    } else {
      pthread_detach(t);
    }
  }
  while (!job->done && !job->interrupted) pthread_cond_wait(&job->cv, &job->mu);
  job->interrupted = 0;
  pthread_mutex_unlock(&job->mu);
  return NULL;
}

static int pt_job_done(pt_job_t *job) {
  pthread_mutex_lock(&job->mu);
  int done = job->done;
  pthread_mutex_unlock(&job->mu);
  return done;
}

/* The caller's side, on its C stack. */
typedef struct {
  pt_job_t *job;
  int rc;
} pt_job_call_t;

/*
 * A real interrupt raises out of rb_thread_call_without_gvl (which may even skip the call); one
 * that does not raise (a trap handler ran) only resumes the wait.
 */
static VALUE pt_job_wait(VALUE arg) {
  pt_job_t *job = ((pt_job_call_t *)arg)->job;
  do {
    rb_thread_call_without_gvl(pt_job_nogvl, job, pt_job_ubf, job);
  } while (!pt_job_done(job));
  return Qnil;
}

/*
 * Runs however the wait ended. A job whose helper is still running becomes the helper's to free;
 * any other is ours (a helper that set `done` under the lock touches the job no more).
 */
static VALUE pt_job_release(VALUE arg) {
  pt_job_call_t *call = (pt_job_call_t *)arg;
  pt_job_t *job = call->job;
  pthread_mutex_lock(&job->mu);
  int helper_owns = job->started && !job->done;
  if (helper_owns) __atomic_store_n(&job->abandoned, 1, __ATOMIC_RELEASE);
  if (job->done) call->rc = job->rc;
  pthread_mutex_unlock(&job->mu);
  if (!helper_owns) pt_job_free(job);
  return Qnil;
}

PT_LONGJMP_FRAME static int pt_job(int op, uint32_t timeout_ms) {
  pt_job_t *job = calloc(1, sizeof *job);
  if (!job) rb_memerror();
  pthread_mutex_init(&job->mu, NULL);
  pthread_cond_init(&job->cv, NULL);
  job->op = op;
  job->timeout_ms = timeout_ms;
  pt_job_call_t call = {job, POLYTEL_ETIMEDOUT};
  rb_ensure(pt_job_wait, (VALUE)&call, pt_job_release, (VALUE)&call);
  return call.rc;
}

/* bootstrap_worker's wait: phase 2's start is brief, so its unblock function only takes note. */
typedef struct {
  int interrupted;
  int finished;
  int rc;
  const polytel_config_t *cfg;
} pt_block_t;

static void pt_ubf(void *p) {
  __atomic_store_n(&((pt_block_t *)p)->interrupted, 1, __ATOMIC_RELEASE);
}

static void *pt_bootstrap_nogvl(void *p) {
  pt_block_t *b = p;
  b->rc = polytel_init_full_telemetry(NULL, b->cfg);
  b->finished = 1;
  return NULL;
}

static uint32_t pt_timeout_arg(VALUE v) {
  long long t = NUM2LL(v);
  if (t < 0) rb_raise(rb_eArgError, "polytel: timeout_ms must be >= 0");
  return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static VALUE pt_flush(VALUE self, VALUE timeout_ms) {
  (void)self;
  return INT2NUM(pt_job(PT_JOB_FLUSH, pt_timeout_arg(timeout_ms)));
}

static VALUE pt_shutdown(VALUE self, VALUE timeout_ms) {
  (void)self;
  return INT2NUM(pt_job(PT_JOB_SHUTDOWN, pt_timeout_arg(timeout_ms)));
}

/*
 * Polytel._bootstrap(pairs) → return code. pairs is an Array of [key, value] Strings that the Ruby layer made
 * from the keyword arguments; each goes through polytel_config_set(), so the core checks every value
 * (ArgumentError with its message). The strings are copied into one GC-owned buffer first: the call runs
 * without the GVL, when Ruby strings may move or change.
 */
PT_LONGJMP_FRAME static VALUE pt_bootstrap(VALUE self, VALUE pairs) {
  (void)self;
  Check_Type(pairs, T_ARRAY);
  long n = RARRAY_LEN(pairs);
  size_t total = 0;
  for (long i = 0; i < n; i++) {
    VALUE kv = rb_ary_entry(pairs, i);
    Check_Type(kv, T_ARRAY);
    if (RARRAY_LEN(kv) != 2) rb_raise(rb_eArgError, "polytel: _bootstrap takes [key, value] pairs");
    for (int j = 0; j < 2; j++) {
      VALUE str = pt_cstr_value(rb_ary_entry(kv, j)); /* raises on a NUL byte: before anything is held */
      rb_ary_store(kv, j, str);
      total += (size_t)RSTRING_LEN(str) + 1;
    }
  }
  polytel_config_t cfg;
  polytel_config_init(&cfg);
  cfg.sdk_language = "ruby";
  VALUE holder = 0;
  char *buf = total ? ALLOCV(holder, total) : NULL, *w = buf;
  char err[512] = "";
  for (long i = 0; i < n; i++) {
    VALUE kv = rb_ary_entry(pairs, i);
    const char *kp[2];
    for (int j = 0; j < 2; j++) {
      VALUE str = rb_ary_entry(kv, j);
      size_t len = (size_t)RSTRING_LEN(str);
      memcpy(w, RSTRING_PTR(str), len);
      w[len] = '\0';
      kp[j] = w;
      w += len + 1;
    }
    if (polytel_config_set(&cfg, kp[0], kp[1]) != 0) {
      snprintf(err, sizeof err, "%s", polytel_config_error());
      break;
    }
  }
  if (err[0]) {
    if (holder) ALLOCV_END(holder);
    rb_raise(rb_eArgError, "polytel: bootstrap_worker: %s", err);
  }
  /* The unblock function cannot cut phase 2's start short (it is brief); a non-raising interrupt
   * that made Ruby skip the call gets it run again. */
  pt_block_t b = {.rc = POLYTEL_ESTATE, .cfg = &cfg};
  do {
    rb_thread_call_without_gvl(pt_bootstrap_nogvl, &b, pt_ubf, &b);
  } while (!b.finished);
  if (holder) ALLOCV_END(holder);
  return INT2NUM(b.rc);
}

/* A setting's text as a Ruby value: true/false, Integer, String or nil. */
static VALUE pt_setting_value(const polytel_setting_t *it) {
  if (!it->value) return Qnil;
  if (it->type == POLYTEL_VALUE_BOOL) return strcmp(it->value, "true") == 0 ? Qtrue : Qfalse;
  if (it->type == POLYTEL_VALUE_INT) return rb_cstr2inum(it->value, 10);
  return rb_utf8_str_new_cstr(it->value);
}

/* Polytel.resolved_config → Hash: what is running, as the core resolved it (polytel_config_resolved). */
static VALUE pt_resolved(VALUE self) {
  (void)self;
  polytel_resolved_t *r = polytel_config_resolved();
  if (!r) rb_raise(rb_eNoMemError, "polytel: out of memory");
  /* Built from copies, so nothing raises while the snapshot is held. */
  VALUE keys = rb_ary_new_capa((long)r->n), vals = rb_ary_new_capa((long)r->n);
  for (size_t i = 0; i < r->n; i++) {
    rb_ary_push(keys, ID2SYM(rb_intern(r->items[i].key)));
    rb_ary_push(vals, pt_setting_value(&r->items[i]));
  }
  polytel_config_resolved_free(r);
  VALUE h = rb_hash_new();
  for (long i = 0; i < RARRAY_LEN(keys); i++) rb_hash_aset(h, rb_ary_entry(keys, i), rb_ary_entry(vals, i));
  return h;
}

/* Polytel._options → [[key, env, default], ...]: the core's option table. */
static VALUE pt_options(VALUE self) {
  (void)self;
  VALUE out = rb_ary_new();
  polytel_setting_t o;
  for (size_t i = 0; polytel_config_option(i, &o) == 0; i++)
    rb_ary_push(out, rb_ary_new_from_args(3, ID2SYM(rb_intern(o.key)), o.env ? rb_str_new_cstr(o.env) : Qnil,
                                          pt_setting_value(&o)));
  return out;
}

/* Polytel._choices(key) → { word => value } the core takes for an option ({} when it takes no words). */
static VALUE pt_choices(VALUE self, VALUE key) {
  (void)self;
  VALUE h = rb_hash_new();
  const char *k = StringValueCStr(key), *word;
  int value;
  for (size_t i = 0; polytel_config_choice(k, i, &word, &value) == 0; i++)
    rb_hash_aset(h, rb_str_new_cstr(word), INT2NUM(value));
  return h;
}

/* ------------------------------------------------------------ state */

static VALUE pt_phase(VALUE self) {
  (void)self;
  polytel_phase_t p = polytel_phase();
  return (unsigned)p < 4 ? pt_sym_phase[p] : ID2SYM(rb_intern(polytel_phase_name(p)));
}

static VALUE pt_stats(VALUE self) {
  (void)self;
  polytel_stats_t s;
  memset(&s, 0, sizeof s);
  int rc = polytel_stats(&s);
  if (rc != 0) rb_raise(rb_eRuntimeError, "polytel_stats: %s", polytel_strerror(rc));
  VALUE h = rb_hash_new();
#define PT_STAT(f, metric, reason, doc) rb_hash_aset(h, ID2SYM(rb_intern(#f)), ULL2NUM(s.f));
  POLYTEL_STATS_FIELDS(PT_STAT)
#undef PT_STAT
  return h;
}

static VALUE pt_err_name(VALUE self, VALUE rc) {
  (void)self;
  return rb_str_new_cstr(polytel_err_name(NUM2INT(rc)));
}

static VALUE pt_strerror(VALUE self, VALUE rc) {
  (void)self;
  return rb_str_new_cstr(polytel_strerror(NUM2INT(rc)));
}

static VALUE pt_fork_generation(VALUE self) {
  (void)self;
  return UINT2NUM(pt_fork_gen);
}

void Init_polytel_ext(void) {
#ifdef HAVE_RB_EXT_RACTOR_SAFE
  /* Every C method here touches only the thread-safe core, per-fiber storage and immutable globals. */
  rb_ext_ractor_safe(true);
#endif
  pt_mPolytel = rb_define_module("Polytel");
  pt_id_span_key = rb_intern("__polytel_span");
  pt_id_message = rb_intern("message");
  pt_id_success_p = rb_intern("success?");
  pt_sym_unit = ID2SYM(rb_intern("unit"));
  const char *phase_names[4] = {"none", "console", "deferred", "full"};
  for (int i = 0; i < 4; i++) {
    pt_sym_phase[i] = ID2SYM(rb_intern(phase_names[i]));
    rb_gc_register_mark_object(pt_sym_phase[i]);
  }

  rb_define_const(pt_mPolytel, "VERSION", rb_obj_freeze(rb_str_new_cstr(POLYTEL_VERSION_STRING)));
  rb_define_const(pt_mPolytel, "CORE_VERSION", rb_obj_freeze(rb_str_new_cstr(polytel_version())));
  VALUE levels = rb_ary_new();
#define PT_LEVEL(name, value, text) rb_ary_push(levels, INT2FIX(value));
  POLYTEL_LEVEL_MAP(PT_LEVEL)
#undef PT_LEVEL
  rb_define_const(pt_mPolytel, "LEVELS", rb_obj_freeze(levels));

  rb_define_module_function(pt_mPolytel, "trace", pt_trace, -1);
  rb_define_module_function(pt_mPolytel, "debug", pt_debug, -1);
  rb_define_module_function(pt_mPolytel, "info", pt_info, -1);
  rb_define_module_function(pt_mPolytel, "warn", pt_warn, -1);
  rb_define_module_function(pt_mPolytel, "error", pt_error, -1);
  rb_define_module_function(pt_mPolytel, "fatal", pt_fatal, -1);
  rb_define_module_function(pt_mPolytel, "log", pt_log, -1);
  rb_define_module_function(pt_mPolytel, "span", pt_span, -1);
  rb_define_module_function(pt_mPolytel, "current_span", pt_current_span, 0);
  rb_define_module_function(pt_mPolytel, "with_span", pt_with_span, 1);
  rb_define_module_function(pt_mPolytel, "counter_add", pt_counter_add, -1);
  rb_define_module_function(pt_mPolytel, "gauge_set", pt_gauge_set, -1);
  rb_define_module_function(pt_mPolytel, "histogram_record", pt_histogram_record, -1);
  rb_define_module_function(pt_mPolytel, "phase", pt_phase, 0);
  rb_define_module_function(pt_mPolytel, "stats", pt_stats, 0);
  rb_define_module_function(pt_mPolytel, "level_enabled?", pt_level_enabled_p, 1);

  /* Private plumbing for lib/polytel.rb, which adds keyword handling and the return values. */
  rb_define_singleton_method(pt_mPolytel, "_log", pt_log_raw, 4);
  rb_define_singleton_method(pt_mPolytel, "_bootstrap", pt_bootstrap, 1);
  rb_define_module_function(pt_mPolytel, "resolved_config", pt_resolved, 0);
  rb_define_singleton_method(pt_mPolytel, "_options", pt_options, 0);
  rb_define_singleton_method(pt_mPolytel, "_choices", pt_choices, 1);
  rb_define_singleton_method(pt_mPolytel, "_flush", pt_flush, 1);
  rb_define_singleton_method(pt_mPolytel, "_shutdown", pt_shutdown, 1);
  rb_define_singleton_method(pt_mPolytel, "_err_name", pt_err_name, 1);
  rb_define_singleton_method(pt_mPolytel, "_strerror", pt_strerror, 1);
  rb_define_singleton_method(pt_mPolytel, "_fork_generation", pt_fork_generation, 0);
  VALUE sc = rb_singleton_class(pt_mPolytel);
  /* _log stays public: Polytel::Logger calls it on every record. */
  const char *private_names[] = {"_bootstrap", "_flush",           "_shutdown", "_err_name",
                                 "_strerror",  "_fork_generation", "_options",  "_choices"};
  for (size_t i = 0; i < sizeof private_names / sizeof private_names[0]; i++)
    rb_funcall(sc, rb_intern("private"), 1, ID2SYM(rb_intern(private_names[i])));

  pt_cSpanContext = rb_define_class_under(pt_mPolytel, "SpanContext", rb_cObject);
  rb_define_alloc_func(pt_cSpanContext, pt_span_alloc);
  rb_undef_method(rb_singleton_class(pt_cSpanContext), "new");
  rb_define_method(pt_cSpanContext, "trace_id", pt_span_trace_id, 0);
  rb_define_method(pt_cSpanContext, "span_id", pt_span_span_id, 0);
  rb_define_method(pt_cSpanContext, "parent_span_id", pt_span_parent_span_id, 0);
  rb_define_method(pt_cSpanContext, "recording?", pt_span_recording_p, 0);
  rb_define_method(pt_cSpanContext, "set_attribute", pt_span_set_attribute, 2);
  rb_define_method(pt_cSpanContext, "[]=", pt_span_set_attribute, 2);
  rb_define_method(pt_cSpanContext, "set_status", pt_span_set_status, -1);

  /* What Thread.current[:__polytel_span] holds; not for use outside the extension. */
  pt_cSpanStack = rb_define_class_under(pt_mPolytel, "SpanStack", rb_cObject);
  rb_undef_alloc_func(pt_cSpanStack);

  pthread_atfork(NULL, NULL, pt_atfork_child);
  pthread_key_create(&pt_free_spans_key, pt_free_spans_at_thread_exit);

  /* Phase 1: no thread, no loop, no network; TELEMETRY_ENABLED=true makes it defer. */
  polytel_config_t cfg;
  polytel_config_init(&cfg);
  cfg.sdk_language = "ruby";
  polytel_init_console_only(&cfg);
}
