/* polytel_ext.c — the Ruby extension: phase 1 in Init_, recording, spans, blocking calls without the GVL. */
#include <ruby.h>
#include <ruby/thread.h>
#include <ruby/version.h>

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
static VALUE pt_cSpan;        /* an open (or ended) span: what Polytel.span's block gets */
static VALUE pt_cSpanContext; /* a span's identity only: extract(), span.context, links, parents */
static ID pt_id_span_key;     /* the fiber-local that holds this fiber's span stack */
static ID pt_id_message;
static ID pt_id_success_p;
static VALUE pt_sym_unit;
/* Polytel.span's own keywords: never attributes. */
static VALUE pt_sym_parent, pt_sym_kind, pt_sym_links, pt_sym_attributes, pt_sym_scope;
static VALUE pt_sym_timestamp;
static VALUE pt_str_traceparent, pt_str_tracestate, pt_str_baggage; /* frozen carrier keys */
static VALUE pt_empty_hash;                                         /* Polytel.baggage with none */
static ID pt_id_backtrace, pt_id_aset;
static VALUE pt_sym_phase[4];

/* Bumped in every fork child: a span opened before the fork belongs to the parent, which finishes it. */
static volatile uint32_t pt_fork_gen;

static void pt_atfork_child(void) {
  __atomic_add_fetch(&pt_fork_gen, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ attributes */

typedef struct {
  size_t n;
  VALUE skip;        /* a key to leave out (:unit for metrics), or Qundef */
  int skip_reserved; /* leave out Polytel.span's own keywords (parent:, kind:, ...) */
  /* Where strings made during conversion are kept: an Array (attribute sets that do not live on the C
   * stack: events, links), or Qfalse for keep[] below, on the C stack, where the conservative GC sees it. */
  VALUE keep_ary;
  polytel_attr_t a[PT_MAX_ATTRS];
  VALUE keep[PT_MAX_ATTRS * 3]; /* key, value, and an array's element buffer */
  size_t n_keep;
} pt_attrs_t;

static void pt_attrs_init(pt_attrs_t *as, VALUE skip) {
  as->n = 0;
  as->n_keep = 0;
  as->skip = skip;
  as->skip_reserved = 0;
  as->keep_ary = Qfalse;
}

static int pt_is_reserved(VALUE key) {
  return key == pt_sym_parent || key == pt_sym_kind || key == pt_sym_links || key == pt_sym_attributes ||
         key == pt_sym_scope;
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
  if (as->keep_ary != Qfalse)
    rb_ary_push(as->keep_ary, v);
  else
    as->keep[as->n_keep++] = v;
  return v;
}

/* An Integer as int64_t: 1 when it fits (Fixnum, or a Bignum within 64 bits). */
static int pt_int64_of(VALUE val, int64_t *out) {
  if (FIXNUM_P(val)) {
    *out = (int64_t)FIX2LONG(val);
    return 1;
  }
  if (!RB_TYPE_P(val, T_BIGNUM)) return 0;
  /* rb_integer_pack gives the magnitude and the sign (±2 when even the magnitude overflows). */
  uint64_t mag;
  int sign = rb_integer_pack(val, &mag, 1, sizeof mag, 0,
                             INTEGER_PACK_NATIVE_BYTE_ORDER | INTEGER_PACK_LSWORD_FIRST);
  if (sign == 1 && mag <= (uint64_t)INT64_MAX) {
    *out = (int64_t)mag;
    return 1;
  }
  if (sign == -1 && mag <= (uint64_t)INT64_MAX + 1) {
    *out = (int64_t)(~mag + 1);
    return 1;
  }
  return 0;
}

/* What an Array element is, for arrays: 0 for anything that cannot be an OTLP array element. */
static polytel_attr_type_t pt_elem_type(VALUE v) {
  int64_t i;
  if (RB_TYPE_P(v, T_STRING) || RB_TYPE_P(v, T_SYMBOL)) return POLYTEL_ATTR_STRING_ARRAY;
  if (RB_FLOAT_TYPE_P(v)) return POLYTEL_ATTR_DOUBLE_ARRAY;
  if (v == Qtrue || v == Qfalse) return POLYTEL_ATTR_BOOL_ARRAY;
  if (pt_int64_of(v, &i)) return POLYTEL_ATTR_INT_ARRAY;
  return (polytel_attr_type_t)0;
}

/*
 * A homogeneous Array (Strings/Symbols, Integers, Floats or booleans) as an OTLP array value: 1, or 0 when it
 * is not one (mixed, nested, nil inside), which keeps its string form. No user code runs here.
 */
static int pt_attr_array(pt_attrs_t *as, polytel_attr_t *a, VALUE ary) {
  long n = RARRAY_LEN(ary);
  polytel_attr_type_t t = n ? pt_elem_type(RARRAY_AREF(ary, 0)) : POLYTEL_ATTR_STRING_ARRAY;
  if (!t) return 0;
  for (long i = 1; i < n; i++)
    if (pt_elem_type(RARRAY_AREF(ary, i)) != t) return 0;
  size_t esz = t == POLYTEL_ATTR_STRING_ARRAY   ? sizeof(polytel_str_t)
               : t == POLYTEL_ATTR_INT_ARRAY    ? sizeof(int64_t)
               : t == POLYTEL_ATTR_DOUBLE_ARRAY ? sizeof(double)
                                                : sizeof(int);
  a->type = t;
  a->value.arr.len = (size_t)n;
  a->value.arr.ptr = NULL;
  if (!n) return 1;
  /* The elements' storage is a String's buffer: GC-owned, so an exception later frees it. */
  VALUE buf = rb_str_buf_new((long)esz * n);
  rb_str_set_len(buf, (long)esz * n);
  void *p = RSTRING_PTR(buf);
  for (long i = 0; i < n; i++) {
    VALUE e = RARRAY_AREF(ary, i);
    switch (t) {
      case POLYTEL_ATTR_STRING_ARRAY: {
        VALUE str = RB_TYPE_P(e, T_SYMBOL) ? rb_sym2str(e) : e;
        ((polytel_str_t *)p)[i] = (polytel_str_t){RSTRING_PTR(str), (size_t)RSTRING_LEN(str)};
        break;
      }
      case POLYTEL_ATTR_INT_ARRAY:
        pt_int64_of(e, &((int64_t *)p)[i]);
        break;
      case POLYTEL_ATTR_DOUBLE_ARRAY:
        ((double *)p)[i] = RFLOAT_VALUE(e);
        break;
      default:
        ((int *)p)[i] = e == Qtrue;
        break;
    }
  }
  pt_keep(as, buf);
  pt_keep(as, ary); /* its Strings are pointed at */
  a->value.arr.ptr = p;
  return 1;
}

PT_LONGJMP_FRAME static void pt_attr_string(pt_attrs_t *as, polytel_attr_t *a, VALUE val) {
  VALUE s = pt_safe_to_s(val);
  pt_keep(as, s);
  a->type = POLYTEL_ATTR_STRING;
  a->value.str.ptr = RSTRING_PTR(s);
  a->value.str.len = (size_t)RSTRING_LEN(s);
}

PT_LONGJMP_FRAME static int pt_attr_i(VALUE key, VALUE val, VALUE arg) {
  pt_attrs_t *as = (pt_attrs_t *)arg;
  if (as->n >= PT_MAX_ATTRS) return ST_STOP;
  if (key == as->skip || NIL_P(val)) return ST_CONTINUE;
  if (as->skip_reserved && pt_is_reserved(key)) return ST_CONTINUE;

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
      /* Typed when it fits 64 bits, else its decimal text. */
      if (pt_int64_of(val, &a->value.i)) {
        a->type = POLYTEL_ATTR_INT;
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
    case T_ARRAY:
      if (pt_attr_array(as, a, val)) break;
      pt_attr_string(as, a, val); /* mixed: its string form */
      break;
    default:
      /* Strings as they are; symbols, bignums and objects as their to_s. */
      pt_attr_string(as, a, val);
      break;
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

/* Both Polytel::Span and Polytel::SpanContext wrap one of these (a context is never OPEN). */
typedef struct pt_span_s {
  polytel_span_ctx_t ctx;
  uint32_t fork_gen;
  int state;
  polytel_span_kind_t kind;
  VALUE extra;      /* Hash of attributes set inside the block, or nil */
  int status;       /* set_status: a polytel_status_t, or -1 (unset by the user) */
  VALUE status_msg; /* set_status message (String) or nil */
  VALUE tracestate; /* frozen String (W3C tracestate, valid), or nil: inherited by children */
  VALUE baggage;    /* frozen Hash (String => String, W3C baggage), or nil: inherited by children */
  VALUE scope;      /* instrumentation scope name (frozen String) or nil ("polytel") */
  VALUE scope_version;
  VALUE links; /* the links: keyword (an Array, checked at the start) or nil */
  VALUE
  events; /* [[name, time_ns, attrs or nil, exception type, message, stacktrace or nil x3], ...] or nil */
  struct pt_span_s *next_free;
} pt_span_t;

static void pt_span_mark(void *p) {
  const pt_span_t *sp = p;
  rb_gc_mark(sp->extra);
  rb_gc_mark(sp->status_msg);
  rb_gc_mark(sp->tracestate);
  rb_gc_mark(sp->baggage);
  rb_gc_mark(sp->scope);
  rb_gc_mark(sp->scope_version);
  rb_gc_mark(sp->links);
  rb_gc_mark(sp->events);
}
static size_t pt_span_memsize(const void *p) {
  (void)p;
  return sizeof(pt_span_t);
}

/*
 * A span's struct is recycled through a per-thread free list, so a span costs no malloc/free pair. Per
 * thread, so no lock (dfree runs in whichever Ruby thread sweeps, and Ractors run in parallel); bounded, and
 * emptied when the thread exits. The bound is a GC cycle's worth: a lazy sweep frees thousands of spans at
 * once, and with room for 256 most of them went back to malloc (a sixth of a span's cost); 4096 structs are
 * at most 512 KiB per thread that records spans.
 */
#define PT_FREE_SPANS_MAX 4096
/* initial-exec, as the core's own thread pointer: 12 bytes of static TLS, no __tls_get_addr per span. */
static __thread pt_span_t *pt_free_spans __attribute__((tls_model("initial-exec")));
static __thread unsigned pt_n_free_spans __attribute__((tls_model("initial-exec")));
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

/*
 * Nothing here frees a VALUE or raises: safe to free immediately, during sweep. Write-barrier protected
 * (every VALUE stored into a pt_span_t after its allocation goes through RB_OBJ_WRITE): Ruby 3.1 allocates an
 * unprotected object on its slow path, under the VM lock, which was a fifth of a span's cost.
 */
static const rb_data_type_t pt_span_type = {
    .wrap_struct_name = "Polytel::Span",
    .function = {.dmark = pt_span_mark, .dfree = pt_span_free, .dsize = pt_span_memsize},
    .flags = RUBY_TYPED_FREE_IMMEDIATELY | RUBY_TYPED_WB_PROTECTED,
};

/*
 * A SpanContext in `state`. The object is made first (with no data, so a NoMemoryError there leaks
 * nothing), then its struct: nothing can raise between the struct's allocation and its wrap.
 */
static void pt_span_init(pt_span_t *sp, int state) {
  sp->extra = Qnil;
  sp->status = -1;
  sp->status_msg = Qnil;
  sp->tracestate = Qnil;
  sp->baggage = Qnil;
  sp->scope = Qnil;
  sp->scope_version = Qnil;
  sp->links = Qnil;
  sp->events = Qnil;
  sp->kind = POLYTEL_SPAN_KIND_INTERNAL;
  sp->state = state;
  sp->fork_gen = pt_fork_gen;
  sp->next_free = NULL;
  memset(&sp->ctx, 0, sizeof sp->ctx);
}

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
  pt_span_init(sp, state);
  DATA_PTR(obj) = sp;
  *out = sp;
  return obj;
}

/* v is a TypedData of exactly `type` (no type here has children): inline, where rb_typeddata_is_kind_of is
 * two calls per check on every span. */
static int pt_is_typed(VALUE v, const rb_data_type_t *type) {
  return RB_TYPE_P(v, T_DATA) && RTYPEDDATA_P(v) && RTYPEDDATA_TYPE(v) == type;
}

static pt_span_t *pt_span_of(VALUE v) {
  return pt_is_typed(v, &pt_span_type) ? (pt_span_t *)RTYPEDDATA_DATA(v) : NULL;
}

/*
 * The current span of each fiber: a stack of entries in one fiber-local (Thread#[] is fiber-local). One
 * lookup per span and no fiber-local writes: pushing and popping are array operations. An entry is a
 * SpanContext object (nil for with_span(nil)), or, for a span whose block takes no parameter, the span
 * itself by value with no Ruby object: Polytel.current_span makes that object only when it is asked for
 * (most blocks never see their span, and an object is an allocation, a sweep and a free-list round trip).
 */
typedef struct {
  VALUE obj;     /* a Polytel::Span / SpanContext, nil (with_span(nil)), or Qfalse: the span is `inl` */
  pt_span_t inl; /* the span while no object holds it (its VALUEs are marked with the stack) */
} pt_entry_t;

typedef struct {
  pt_entry_t *items;
  long depth;
  long cap;
} pt_stack_t;

static void pt_stack_mark(void *p) {
  const pt_stack_t *st = p;
  for (long i = 0; i < st->depth; i++) {
    rb_gc_mark(st->items[i].obj);
    if (st->items[i].obj == Qfalse) pt_span_mark(&st->items[i].inl);
  }
}
static void pt_stack_free(void *p) {
  pt_stack_t *st = p;
  free(st->items);
  free(st);
}
static size_t pt_stack_memsize(const void *p) {
  const pt_stack_t *st = p;
  return sizeof *st + (size_t)st->cap * sizeof(pt_entry_t);
}
/* Not write-barrier protected: the entries' VALUEs are stored without one, and the stack is marked whole. */
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
  if (pt_is_typed(v, &pt_stack_type)) {
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

/* Room for one more item. May raise (NoMemoryError) — call it before anything that must be undone. It moves
 * the entries: a pt_span_t * into an inline entry is good only until the next reserve. */
static void pt_stack_reserve(pt_stack_t *st) {
  if (st->depth < st->cap) return;
  long cap = st->cap ? st->cap * 2 : 8;
  pt_entry_t *items = realloc(st->items, (size_t)cap * sizeof *items);
  if (!items) rb_memerror();
  st->items = items;
  st->cap = cap;
}

/* An entry's span: its object's, or its own (pushed entries are checked: no type check here). */
static pt_span_t *pt_entry_span(pt_entry_t *e) {
  if (e->obj == Qfalse) return &e->inl;
  return NIL_P(e->obj) ? NULL : (pt_span_t *)RTYPEDDATA_DATA(e->obj);
}

static pt_entry_t *pt_stack_top(const pt_stack_t *st) {
  return st && st->depth ? &st->items[st->depth - 1] : NULL;
}

/* The current span (or with_span context) of this fiber, or NULL: its fields only, no object made. */
static pt_span_t *pt_current(VALUE *holder) {
  pt_entry_t *e = pt_stack_top(pt_stack(holder, 0));
  return e ? pt_entry_span(e) : NULL;
}

static const polytel_span_ctx_t *pt_current_ctx(void) {
  VALUE holder = Qnil;
  pt_span_t *sp = pt_current(&holder);
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
static int pt_sampled(const pt_span_t *sp) {
  return (sp->ctx.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED) != 0;
}
/* Open, in this process, and sampled: what is set on it will be exported. */
static int pt_recording(const pt_span_t *sp) {
  return sp->state == PT_SPAN_OPEN && sp->fork_gen == pt_fork_gen && pt_sampled(sp);
}
static VALUE pt_span_recording_p(VALUE self) {
  return pt_recording(pt_span_get(self)) ? Qtrue : Qfalse;
}
static VALUE pt_span_sampled_p(VALUE self) {
  return pt_sampled(pt_span_get(self)) ? Qtrue : Qfalse;
}
static VALUE pt_span_remote_p(VALUE self) {
  return pt_span_get(self)->ctx.is_remote ? Qtrue : Qfalse;
}
static VALUE pt_span_tracestate(VALUE self) {
  return pt_span_get(self)->tracestate;
}
/* The W3C traceparent header value of this span (what inject() sends for it). */
static VALUE pt_span_traceparent(VALUE self) {
  char buf[POLYTEL_TRACEPARENT_LEN + 1];
  if (polytel_traceparent_format(&pt_span_get(self)->ctx, buf, sizeof buf) != 0) return Qnil;
  return rb_usascii_str_new(buf, POLYTEL_TRACEPARENT_LEN);
}

static VALUE pt_context_new(const pt_span_t *from) {
  pt_span_t *c;
  VALUE obj = pt_span_new(pt_cSpanContext, PT_SPAN_ENDED, &c);
  c->ctx = from->ctx;
  RB_OBJ_WRITE(obj, &c->tracestate, from->tracestate);
  RB_OBJ_WRITE(obj, &c->baggage, from->baggage);
  return obj;
}

/* span.context: its identity as a Polytel::SpanContext (a value: frozen, comparable, usable after the end).
 */
static VALUE pt_span_context(VALUE self) {
  if (rb_obj_class(self) == pt_cSpanContext) return self;
  return rb_obj_freeze(pt_context_new(pt_span_get(self)));
}

/* Two contexts are equal when they name the same span: trace id, span id, flags and tracestate. */
static VALUE pt_ctx_eq(VALUE self, VALUE other) {
  pt_span_t *a = pt_span_get(self), *b = pt_span_of(other);
  if (!b || rb_obj_class(other) != rb_obj_class(self)) return Qfalse;
  return memcmp(a->ctx.trace_id, b->ctx.trace_id, 16) == 0 &&
                 memcmp(a->ctx.span_id, b->ctx.span_id, 8) == 0 && a->ctx.trace_flags == b->ctx.trace_flags &&
                 rb_equal(a->tracestate, b->tracestate)
             ? Qtrue
             : Qfalse;
}
static VALUE pt_ctx_hash(VALUE self) {
  pt_span_t *a = pt_span_get(self);
  uint64_t h;
  memcpy(&h, a->ctx.span_id, 8);
  return ULL2NUM(h >> 2);
}
static VALUE pt_ctx_inspect(VALUE self) {
  pt_span_t *a = pt_span_get(self);
  return rb_sprintf("#<%" PRIsVALUE " trace_id=%" PRIsVALUE " span_id=%" PRIsVALUE " sampled=%s%s%s>",
                    rb_class_name(rb_obj_class(self)), pt_hex(a->ctx.trace_id, 16), pt_hex(a->ctx.span_id, 8),
                    pt_sampled(a) ? "true" : "false", a->ctx.is_remote ? " remote" : "",
                    a->state == PT_SPAN_OPEN ? " open" : "");
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

/* One function per level of the core's table: Polytel.trace, debug, info, warn, error, fatal. */
#define PT_LEVEL_FN(name, value, text)                              \
  static VALUE pt_level_##name(int argc, VALUE *argv, VALUE self) { \
    (void)self;                                                     \
    return pt_log_level(argc, argv, POLYTEL_LEVEL_##name);          \
  }
POLYTEL_LEVEL_MAP(PT_LEVEL_FN)
#undef PT_LEVEL_FN

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

/* Logs msg with attrs at `level` (pt_level_arg) under `target` when that level is on; whether it was. */
PT_LONGJMP_FRAME static int pt_log_at(VALUE level, VALUE target, VALUE msg, VALUE attrs) {
  polytel_level_t lvl = pt_level_arg(level);
  if (!polytel_level_enabled(lvl)) return 0;
  VALUE t = pt_name_value(target);
  pt_emit_log(lvl, RSTRING_PTR(t), msg, attrs);
  RB_GC_GUARD(t);
  return 1;
}

/* Polytel.log(level, target, msg, **attrs): any level, any target (the OTLP scope name). */
PT_LONGJMP_FRAME static VALUE pt_log(int argc, VALUE *argv, VALUE self) {
  (void)self;
  VALUE level, target, msg, opts = Qnil;
  rb_scan_args(argc, argv, "3:", &level, &target, &msg, &opts);
  pt_log_at(level, target, msg, opts);
  return Qnil;
}

/* Polytel._log(level, target, msg, attrs_or_nil): Polytel::Logger's bridge, positional (no kwargs hash). */
static VALUE pt_log_raw(VALUE self, VALUE level, VALUE target, VALUE msg, VALUE attrs) {
  (void)self;
  return pt_log_at(level, target, msg, attrs) ? Qtrue : Qfalse;
}

static VALUE pt_level_enabled_p(VALUE self, VALUE level) {
  (void)self;
  return polytel_level_enabled(pt_level_arg(level)) ? Qtrue : Qfalse;
}

/* ------------------------------------------------------------ spans */

static int pt_is_exception(VALUE err) {
  return !SPECIAL_CONST_P(err) && BUILTIN_TYPE(err) == T_OBJECT && rb_obj_is_kind_of(err, rb_eException);
}

/*
 * The exception's Ruby stack trace text, as Ruby prints an uncaught one ("file:line:in `m': message (Class)"
 * then "\tfrom file:line:in `caller'" lines), from its backtrace; nil when it has none. Built here rather
 * than by Exception#full_message, which crashes Ruby 3.1 when called from C for an exception raised inside
 * a rescue clause (with a cause) while it is still propagating.
 */
static VALUE pt_stacktrace(VALUE err, VALUE type, VALUE msg) {
  VALUE bt = rb_funcall(err, pt_id_backtrace, 0);
  if (!RB_TYPE_P(bt, T_ARRAY) || RARRAY_LEN(bt) == 0) return Qnil;
  VALUE out = rb_str_buf_new(256);
  for (long i = 0; i < RARRAY_LEN(bt); i++) {
    VALUE line = RARRAY_AREF(bt, i);
    if (!RB_TYPE_P(line, T_STRING)) continue;
    if (i == 0) {
      rb_str_append(out, line);
      rb_str_cat_cstr(out, ": ");
      rb_str_append(out, msg);
      rb_str_cat_cstr(out, " (");
      rb_str_append(out, type);
      rb_str_cat_cstr(out, ")");
    } else {
      rb_str_cat_cstr(out, "\n\tfrom ");
      rb_str_append(out, line);
    }
  }
  return pt_cstr_value(out);
}

static void pt_push_event(VALUE self, pt_span_t *sp, VALUE ev) {
  if (NIL_P(sp->events)) RB_OBJ_WRITE(self, &sp->events, rb_ary_new());
  rb_ary_push(sp->events, ev);
}

/* A timestamp: a Time, or Integer Unix nanoseconds. */
static uint64_t pt_time_ns(VALUE t) {
  if (RB_INTEGER_TYPE_P(t)) {
    long long ns = NUM2LL(t);
    if (ns <= 0) rb_raise(rb_eArgError, "polytel: timestamp must be > 0 (Unix nanoseconds), not %lld", ns);
    return (uint64_t)ns;
  }
  if (rb_obj_is_kind_of(t, rb_cTime)) {
    struct timespec ts = rb_time_timespec(t);
    if (ts.tv_sec < 0) rb_raise(rb_eArgError, "polytel: timestamp before 1970");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  }
  rb_raise(rb_eTypeError, "polytel: timestamp must be a Time or Integer nanoseconds, not %" PRIsVALUE,
           rb_obj_class(t));
  return 0;
}

static int pt_aset_i(VALUE key, VALUE val, VALUE into) {
  rb_hash_aset(into, key, val);
  return ST_CONTINUE;
}

/* An event's attributes: **attrs, merged over attributes: (a Hash); timestamp: taken out into *time_ns. */
static VALUE pt_event_attrs(VALUE opts, uint64_t *time_ns) {
  if (NIL_P(opts)) return Qnil;
  VALUE attrs = rb_hash_lookup2(opts, pt_sym_attributes, Qundef);
  VALUE ts = rb_hash_lookup2(opts, pt_sym_timestamp, Qundef);
  if (attrs == Qundef && ts == Qundef) return opts;
  if (ts != Qundef && !NIL_P(ts)) *time_ns = pt_time_ns(ts);
  VALUE out = rb_hash_new();
  if (attrs != Qundef && !NIL_P(attrs)) {
    Check_Type(attrs, T_HASH);
    rb_hash_foreach(attrs, pt_aset_i, out);
  }
  rb_hash_foreach(opts, pt_aset_i, out);
  rb_hash_delete(out, pt_sym_attributes);
  rb_hash_delete(out, pt_sym_timestamp);
  return out;
}

/*
 * span.add_event(name, attributes: nil, timestamp: nil, **attrs): an event at this moment (or at timestamp:),
 * sent with the span. A span that is not recording (ended, unsampled, another process's) ignores it.
 */
PT_LONGJMP_FRAME static VALUE pt_span_add_event(int argc, VALUE *argv, VALUE self) {
  VALUE name, opts = Qnil;
  rb_scan_args(argc, argv, "1:", &name, &opts);
  pt_span_t *sp = pt_span_get(self);
  name = pt_name_value(name);
  if (!pt_recording(sp)) return self;
  uint64_t t = 0;
  VALUE attrs = pt_event_attrs(opts, &t);
  VALUE ev = rb_ary_new_from_args(6, rb_str_new_frozen(name), ULL2NUM(t ? t : polytel_now_ns()), attrs, Qnil,
                                  Qnil, Qnil);
  pt_push_event(self, sp, ev);
  return self;
}

/*
 * span.record_exception(exception, attributes: nil, **attrs): an `exception` event (exception.type,
 * exception.message, exception.stacktrace), without changing the status (an exception that leaves the
 * block sets ERROR by itself).
 */
PT_LONGJMP_FRAME static VALUE pt_span_record_exception(int argc, VALUE *argv, VALUE self) {
  VALUE err, opts = Qnil;
  rb_scan_args(argc, argv, "1:", &err, &opts);
  if (!rb_obj_is_kind_of(err, rb_eException))
    rb_raise(rb_eTypeError, "polytel: record_exception takes an Exception, not %" PRIsVALUE,
             rb_obj_class(err));
  pt_span_t *sp = pt_span_get(self);
  if (!pt_recording(sp)) return self;
  uint64_t t = 0;
  VALUE attrs = pt_event_attrs(opts, &t);
  VALUE type = pt_cstr_value(rb_class_name(rb_obj_class(err)));
  VALUE msg = pt_cstr_value(pt_safe_to_s(rb_funcall(err, pt_id_message, 0)));
  VALUE trace = pt_stacktrace(err, type, msg);
  VALUE ev = rb_ary_new_from_args(6, Qnil, ULL2NUM(t ? t : polytel_now_ns()), attrs, type, msg, trace);
  pt_push_event(self, sp, ev);
  return self;
}

/* The kind: keyword: nil (internal), or a String/Symbol naming one. */
static polytel_span_kind_t pt_kind_arg(VALUE v) {
  if (NIL_P(v)) return POLYTEL_SPAN_KIND_INTERNAL;
  if (RB_TYPE_P(v, T_SYMBOL) || RB_TYPE_P(v, T_STRING)) {
    VALUE str = RB_TYPE_P(v, T_SYMBOL) ? rb_sym2str(v) : v;
    int k = polytel_span_kind_from_name(RSTRING_PTR(str), (size_t)RSTRING_LEN(str));
    if (k > 0) return (polytel_span_kind_t)k;
  }
  rb_raise(rb_eArgError,
           "polytel: span kind must be :internal, :server, :client, :producer or :consumer, not %+" PRIsVALUE,
           v);
  return POLYTEL_SPAN_KIND_INTERNAL;
}

/* A link: a SpanContext or Span, or [context, attributes Hash]. NULL when it is neither. */
static pt_span_t *pt_link_of(VALUE link, VALUE *attrs) {
  *attrs = Qnil;
  if (RB_TYPE_P(link, T_ARRAY)) {
    if (RARRAY_LEN(link) != 2) return NULL;
    VALUE a = RARRAY_AREF(link, 1);
    if (!NIL_P(a) && !RB_TYPE_P(a, T_HASH)) return NULL;
    *attrs = a;
    link = RARRAY_AREF(link, 0);
  }
  return pt_span_of(link);
}

/* Polytel.span's own keywords, checked before the span starts (so a mistake raises at the call). */
typedef struct {
  VALUE parent, links, attributes, scope;
  polytel_span_kind_t kind;
  int any; /* one of them was given: the attributes skip them */
} pt_span_args_t;

static void pt_span_args(VALUE opts, pt_span_args_t *a) {
  a->parent = a->links = a->attributes = a->scope = Qundef;
  a->kind = POLYTEL_SPAN_KIND_INTERNAL;
  a->any = 0;
  if (NIL_P(opts) || RHASH_SIZE(opts) == 0) return;
  VALUE kind = rb_hash_lookup2(opts, pt_sym_kind, Qundef);
  a->parent = rb_hash_lookup2(opts, pt_sym_parent, Qundef);
  a->links = rb_hash_lookup2(opts, pt_sym_links, Qundef);
  a->attributes = rb_hash_lookup2(opts, pt_sym_attributes, Qundef);
  a->scope = rb_hash_lookup2(opts, pt_sym_scope, Qundef);
  a->any = kind != Qundef || a->parent != Qundef || a->links != Qundef || a->attributes != Qundef ||
           a->scope != Qundef;
  if (!a->any) return;
  if (kind != Qundef) a->kind = pt_kind_arg(kind);
  if (a->parent != Qundef && !NIL_P(a->parent) && a->parent != Qfalse && !pt_span_of(a->parent))
    rb_raise(rb_eTypeError,
             "polytel: span parent: must be a Polytel::SpanContext or Polytel::Span (nil: the current span; "
             "false: a new trace), not %" PRIsVALUE,
             rb_obj_class(a->parent));
  if (a->attributes != Qundef && !NIL_P(a->attributes) && !RB_TYPE_P(a->attributes, T_HASH))
    rb_raise(rb_eTypeError, "polytel: span attributes: must be a Hash, not %" PRIsVALUE,
             rb_obj_class(a->attributes));
  if (a->links != Qundef && !NIL_P(a->links)) {
    if (!RB_TYPE_P(a->links, T_ARRAY))
      rb_raise(rb_eTypeError, "polytel: span links: must be an Array, not %" PRIsVALUE,
               rb_obj_class(a->links));
    for (long i = 0; i < RARRAY_LEN(a->links); i++) {
      VALUE attrs;
      if (!pt_link_of(RARRAY_AREF(a->links, i), &attrs))
        rb_raise(rb_eTypeError,
                 "polytel: span links[%ld]: must be a Polytel::SpanContext, a Polytel::Span or [context, "
                 "attributes], not %" PRIsVALUE,
                 i, rb_obj_class(RARRAY_AREF(a->links, i)));
    }
    a->links = rb_ary_dup(a->links);
  }
  if (a->scope != Qundef && !NIL_P(a->scope)) {
    VALUE sc = a->scope;
    if (RB_TYPE_P(sc, T_ARRAY) && RARRAY_LEN(sc) == 2 &&
        (RB_TYPE_P(RARRAY_AREF(sc, 0), T_STRING) || RB_TYPE_P(RARRAY_AREF(sc, 0), T_SYMBOL)) &&
        (NIL_P(RARRAY_AREF(sc, 1)) || RB_TYPE_P(RARRAY_AREF(sc, 1), T_STRING)))
      return;
    if (!RB_TYPE_P(sc, T_STRING) && !RB_TYPE_P(sc, T_SYMBOL))
      rb_raise(rb_eTypeError,
               "polytel: span scope: must be a name (String or Symbol) or [name, version], not %" PRIsVALUE,
               rb_obj_class(sc));
  }
}

/* The scope keyword as the span keeps it (frozen, NUL-free Strings; nil when not given). */
static void pt_scope_values(VALUE sc, VALUE *name_out, VALUE *version_out) {
  *name_out = *version_out = Qnil;
  if (sc == Qundef || NIL_P(sc)) return;
  VALUE name = sc, version = Qnil;
  if (RB_TYPE_P(sc, T_ARRAY)) {
    name = RARRAY_AREF(sc, 0);
    version = RARRAY_AREF(sc, 1);
  }
  *name_out = rb_str_new_frozen(pt_name_value(name));
  if (!NIL_P(version)) *version_out = rb_str_new_frozen(pt_cstr_value(version));
}

/* A span field's store: through the write barrier when an object holds the span, plain in a stack entry. */
static void pt_span_store(VALUE obj, VALUE *field, VALUE v) {
  if (obj == Qfalse)
    *field = v;
  else
    RB_OBJ_WRITE(obj, field, v);
}

typedef struct {
  pt_span_t *sp;
  VALUE name;
  VALUE opts;
  VALUE attributes; /* the attributes: keyword, or Qundef */
  int skip_reserved;
  VALUE err; /* the exception that left the block, or nil */
} pt_finish_t;

static int pt_merge_i(VALUE key, VALUE val, VALUE into) {
  rb_hash_aset(into, RB_TYPE_P(key, T_SYMBOL) ? rb_sym2str(key) : key, val);
  return ST_CONTINUE;
}
static int pt_merge_opts_i(VALUE key, VALUE val, VALUE into) {
  if (pt_is_reserved(key)) return ST_CONTINUE;
  return pt_merge_i(key, val, into);
}

/* The span's events (and the exception that left the block) as the core takes them. */
typedef struct {
  size_t n;
  polytel_span_event_t *ev;
  pt_attrs_t *as; /* one per event */
  VALUE holder, as_holder;
  VALUE keep;    /* everything the attributes point at */
  VALUE err_msg; /* the message of the exception that left the block */
} pt_events_t;

PT_LONGJMP_FRAME static void pt_event_fill(pt_events_t *es, size_t i, VALUE name, uint64_t t, VALUE attrs,
                                           VALUE type, VALUE msg, VALUE trace) {
  pt_attrs_t *as = &es->as[i];
  polytel_span_event_t *ev = &es->ev[i];
  pt_attrs_init(as, Qundef);
  as->keep_ary = es->keep;
  if (!NIL_P(type)) {
    polytel_attr_t three[3];
    size_t k =
        polytel_span_exception_event(ev, three, RSTRING_PTR(type), NIL_P(msg) ? NULL : RSTRING_PTR(msg),
                                     NIL_P(trace) ? NULL : RSTRING_PTR(trace));
    memcpy(as->a, three, k * sizeof three[0]);
    as->n = k;
    if (t) ev->time_ns = t;
  } else {
    ev->name = RSTRING_PTR(name);
    ev->time_ns = t;
  }
  if (!NIL_P(attrs)) pt_attrs_fill(as, attrs);
  ev->attrs = as->a;
  ev->n_attrs = as->n;
}

PT_LONGJMP_FRAME static void pt_events_build(pt_events_t *es, pt_span_t *sp, VALUE err) {
  long n_user = NIL_P(sp->events) ? 0 : RARRAY_LEN(sp->events);
  es->n = (size_t)n_user + (NIL_P(err) ? 0 : 1);
  if (!es->n) return;
  es->keep = rb_ary_new();
  /* GC-owned buffers (an exception frees them), never alloca: they outlive this frame. */
  es->ev = rb_alloc_tmp_buffer(&es->holder, (long)(es->n * sizeof *es->ev));
  es->as = rb_alloc_tmp_buffer(&es->as_holder, (long)(es->n * sizeof *es->as));
  for (long i = 0; i < n_user; i++) {
    VALUE e = RARRAY_AREF(sp->events, i);
    pt_event_fill(es, (size_t)i, RARRAY_AREF(e, 0), NUM2ULL(RARRAY_AREF(e, 1)), RARRAY_AREF(e, 2),
                  RARRAY_AREF(e, 3), RARRAY_AREF(e, 4), RARRAY_AREF(e, 5));
  }
  if (!NIL_P(err)) {
    VALUE type = pt_cstr_value(rb_class_name(rb_obj_class(err)));
    VALUE msg = pt_cstr_value(pt_safe_to_s(rb_funcall(err, pt_id_message, 0)));
    VALUE trace = pt_stacktrace(err, type, msg);
    rb_ary_push(es->keep, type);
    rb_ary_push(es->keep, msg);
    if (!NIL_P(trace)) rb_ary_push(es->keep, trace);
    es->err_msg = msg;
    pt_event_fill(es, es->n - 1, Qnil, 0, Qnil, type, msg, trace);
  }
}

/* The links keyword as the core takes them. */
typedef struct {
  size_t n;
  polytel_span_link_t *l;
  pt_attrs_t *as;
  VALUE holder, as_holder;
  VALUE keep;
} pt_links_t;

PT_LONGJMP_FRAME static void pt_links_build(pt_links_t *ls, pt_span_t *sp) {
  long n = NIL_P(sp->links) ? 0 : RARRAY_LEN(sp->links);
  if (!n) return;
  ls->keep = rb_ary_new();
  ls->l = rb_alloc_tmp_buffer(&ls->holder, n * (long)sizeof *ls->l);
  ls->as = rb_alloc_tmp_buffer(&ls->as_holder, n * (long)sizeof *ls->as);
  for (long i = 0; i < n; i++) {
    VALUE attrs;
    pt_span_t *to = pt_link_of(RARRAY_AREF(sp->links, i), &attrs);
    if (!to) continue; /* checked at the start: cannot happen */
    polytel_span_link_t *l = &ls->l[ls->n];
    pt_attrs_t *as = &ls->as[ls->n++];
    pt_attrs_init(as, Qundef);
    as->keep_ary = ls->keep;
    l->ctx = to->ctx;
    l->tracestate = NIL_P(to->tracestate) ? NULL : RSTRING_PTR(pt_keep(as, to->tracestate));
    if (!NIL_P(attrs)) pt_attrs_fill(as, attrs);
    l->attrs = as->a;
    l->n_attrs = as->n;
  }
}

/* The span's kind, scope and tracestate as the core's finish options. */
static void pt_span_opts(const pt_span_t *sp, polytel_span_opts_t *o) {
  polytel_span_opts_init(o);
  o->kind = sp->kind;
  o->scope_name = NIL_P(sp->scope) ? NULL : RSTRING_PTR(sp->scope);
  o->scope_version = NIL_P(sp->scope_version) ? NULL : RSTRING_PTR(sp->scope_version);
  o->tracestate = NIL_P(sp->tracestate) ? NULL : RSTRING_PTR(sp->tracestate);
}

PT_LONGJMP_FRAME static VALUE pt_span_finish_body(VALUE arg) {
  pt_finish_t *f = (pt_finish_t *)arg;
  pt_span_t *sp = f->sp;
  pt_attrs_t as;
  pt_attrs_init(&as, Qundef);
  VALUE attributes = f->attributes == Qundef ? Qnil : f->attributes;
  int n_sources = !NIL_P(attributes) + !NIL_P(f->opts) + !NIL_P(sp->extra);
  VALUE merged = Qnil;
  if (n_sources <= 1 && NIL_P(sp->extra)) {
    as.skip_reserved = f->skip_reserved;
    pt_attrs_fill(&as, attributes);
    pt_attrs_fill(&as, f->opts);
  } else {
    /* One Hash, so one name is sent once: attributes:, then **attrs, then set_attribute (the last wins), a
     * name given as a Symbol or a String alike. */
    merged = rb_hash_new();
    if (!NIL_P(attributes)) rb_hash_foreach(attributes, pt_merge_i, merged);
    if (!NIL_P(f->opts)) rb_hash_foreach(f->opts, f->skip_reserved ? pt_merge_opts_i : pt_merge_i, merged);
    if (!NIL_P(sp->extra)) rb_hash_foreach(sp->extra, pt_merge_i, merged);
    pt_attrs_fill(&as, merged);
  }

  polytel_status_t status = POLYTEL_STATUS_UNSET;
  VALUE status_msg = Qnil;
  VALUE err = f->err;
  /* exit(0) inside a span is the program finishing, not the span failing. */
  if (!NIL_P(err) && rb_obj_is_kind_of(err, rb_eSystemExit) && RTEST(rb_funcall(err, pt_id_success_p, 0)))
    err = Qnil;
  pt_events_t es = {.keep = Qnil, .err_msg = Qnil};
  pt_links_t ls = {.keep = Qnil};
  pt_events_build(&es, sp, err);
  pt_links_build(&ls, sp);
  if (!NIL_P(err)) {
    status = POLYTEL_STATUS_ERROR;
    status_msg = es.err_msg;
  } else if (sp->status >= 0) {
    status = (polytel_status_t)sp->status;
    status_msg = sp->status_msg;
  }
  polytel_span_opts_t o;
  pt_span_opts(sp, &o);
  o.events = es.ev;
  o.n_events = es.n;
  o.links = ls.l;
  o.n_links = ls.n;
  sp->state = PT_SPAN_ENDED;
  polytel_span_finish_ex(&sp->ctx, RSTRING_PTR(f->name), status,
                         NIL_P(status_msg) ? NULL : RSTRING_PTR(status_msg), as.a, as.n, &o);
  if (es.holder) rb_free_tmp_buffer(&es.holder);
  if (es.as_holder) rb_free_tmp_buffer(&es.as_holder);
  if (ls.holder) rb_free_tmp_buffer(&ls.holder);
  if (ls.as_holder) rb_free_tmp_buffer(&ls.as_holder);
  RB_GC_GUARD(status_msg);
  RB_GC_GUARD(merged);
  RB_GC_GUARD(es.keep);
  RB_GC_GUARD(ls.keep);
  return Qnil;
}

/* The span's kind, scope and tracestate without anything that can raise. */
static void pt_span_finish_plain(pt_span_t *sp, VALUE name, polytel_status_t status) {
  sp->state = PT_SPAN_ENDED;
  if (sp->kind == POLYTEL_SPAN_KIND_INTERNAL && NIL_P(sp->scope) && NIL_P(sp->tracestate)) {
    polytel_span_finish(&sp->ctx, RSTRING_PTR(name), status, NULL, NULL, 0);
    return;
  }
  polytel_span_opts_t o;
  pt_span_opts(sp, &o);
  polytel_span_finish_ex(&sp->ctx, RSTRING_PTR(name), status, NULL, NULL, 0, &o);
}

/*
 * Something raised while the span was being ended (an exception's #message, an interrupt): the span is
 * still ended, without attributes or events. An interrupt or exit goes on; anything else is swallowed.
 */
static VALUE pt_span_finish_rescue(VALUE arg, VALUE exc) {
  pt_finish_t *f = (pt_finish_t *)arg;
  if (f->sp->state == PT_SPAN_OPEN)
    pt_span_finish_plain(f->sp, f->name, NIL_P(f->err) ? POLYTEL_STATUS_UNSET : POLYTEL_STATUS_ERROR);
  if (!rb_obj_is_kind_of(exc, rb_eStandardError)) rb_exc_raise(exc);
  return Qnil;
}

/*
 * Whether the block of the running C method takes no parameter ({ } or { || }), so that Polytel.span can
 * skip its Span object (a sixth of a span's cost). Ruby exports no way to ask without making a Proc
 * (rb_block_arity is internal), so on the Ruby this was built for (3.1; extconf.rb checks that its
 * ruby_current_ec links) it reads the VM's frame: the frame's block handler, its iseq, the iseq's parameter
 * count (layouts as in 3.1's vm_core.h). Each step checks what it finds (an iseq block, an imemo iseq, a
 * block-type body); pt_block_peek_check() compares the answer with Proc#arity at load and turns it off on any
 * mismatch. 0 ("may take one": make the object) whenever it is not sure.
 */
#if defined(PT_HAVE_CURRENT_EC) && RUBY_API_VERSION_MAJOR == 3 && RUBY_API_VERSION_MINOR == 1
extern __thread void *ruby_current_ec __attribute__((tls_model("initial-exec")));
static int pt_peek_ok;

static int pt_block_peek(void) {
  void *const *ec = ruby_current_ec;    /* vm_stack, vm_stack_size, cfp */
  const VALUE *cfp = ec ? ec[2] : NULL; /* pc, sp, iseq, self, ep */
  const VALUE *ep = cfp ? (const VALUE *)cfp[4] : NULL;
  if (!ep) return 0;
  VALUE bh = ep[-1]; /* VM_ENV_DATA_INDEX_SPECVAL: the block handler, tagged 0x01 for an iseq block */
  if ((bh & 3) != 1) return 0;
  const VALUE *captured = (const VALUE *)(bh & ~(VALUE)3); /* self, ep, code.iseq */
  const VALUE *iseq = (const VALUE *)captured[2];          /* flags, wrapper, body */
  if (!iseq || (iseq[0] & RUBY_T_MASK) != RUBY_T_IMEMO || ((iseq[0] >> RUBY_FL_USHIFT) & 15) != 7) return 0;
  const unsigned *body =
      (const unsigned *)iseq[2]; /* type, iseq_size, iseq_encoded (2), param.flags, .size */
  return body && body[0] == 2 /* ISEQ_TYPE_BLOCK */ && body[5] == 0;
}
static int pt_block_takes_nothing(void) {
  return pt_peek_ok && pt_block_peek();
}

/* Polytel.__block_peek { ... } → [what the peek says, the block's Proc#arity]: for the load-time check. */
static VALUE pt_block_peek_probe(VALUE self) {
  (void)self;
  int nothing = pt_block_peek();
  return rb_assoc_new(nothing ? Qtrue : Qfalse, INT2NUM(rb_proc_arity(rb_block_proc())));
}
static VALUE pt_block_peek_check_body(VALUE unused) {
  (void)unused;
  static const char *const probes[] = {
      "Polytel.__block_peek { }",      "Polytel.__block_peek { || }",         "Polytel.__block_peek { |a| }",
      "Polytel.__block_peek { |*a| }", "Polytel.__block_peek { |a, b = 1| }", "Polytel.__block_peek { _1 }",
      "Polytel.__block_peek(&:to_s)",  "Polytel.__block_peek(&proc { })"};
  static const int want[] = {1, 1, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    VALUE r = rb_eval_string(probes[i]);
    int nothing = RTEST(RARRAY_AREF(r, 0));
    if (nothing != want[i] || (nothing && NUM2INT(RARRAY_AREF(r, 1)) != 0)) return Qfalse;
  }
  return Qtrue;
}
static void pt_block_peek_check(void) {
  rb_define_singleton_method(pt_mPolytel, "__block_peek", pt_block_peek_probe, 0);
  int state = 0;
  VALUE ok = rb_protect(pt_block_peek_check_body, Qnil, &state);
  if (state) rb_set_errinfo(Qnil);
  pt_peek_ok = !state && ok == Qtrue;
  rb_undef_method(rb_singleton_class(pt_mPolytel), "__block_peek");
}
#else
static int pt_block_takes_nothing(void) {
  return 0;
}
static void pt_block_peek_check(void) {}
#endif

static VALUE pt_span_yield(VALUE obj) {
  return rb_yield(obj); /* Qundef: no argument */
}

/*
 * Polytel.span(name, parent: nil, kind: nil, links: nil, attributes: nil, scope: nil, **attrs) { |span| ...
 * }. The block runs under rb_protect so that every way out (value, exception, break, throw, Thread#kill) ends
 * the span exactly once and restores the parent. A block that takes no parameter gets no Span object: the
 * span is kept in its stack entry, and Polytel.current_span makes the object if the block asks for it.
 */
PT_LONGJMP_FRAME static VALUE pt_span(int argc, VALUE *argv, VALUE self) {
  (void)self;
  VALUE name, opts = Qnil;
  /* Polytel.span(name) { }: nothing to scan (keywords alone would come as one Hash: rb_scan_args says so) */
  if (argc == 1 && !RB_TYPE_P(argv[0], T_HASH))
    name = argv[0];
  else
    rb_scan_args(argc, argv, "1:", &name, &opts);
  rb_need_block();
  name = pt_name_value(name);
  pt_span_args_t args;
  pt_span_args(opts, &args);
  VALUE scope = Qnil, scope_version = Qnil;
  if (args.any) pt_scope_values(args.scope, &scope, &scope_version);

  VALUE holder;
  pt_stack_t *st = pt_stack(&holder, 1);
  pt_stack_reserve(st); /* the last thing that moves the entries before the block */
  long depth = st->depth;
  pt_span_t *parent;
  if (args.parent == Qundef || NIL_P(args.parent))
    parent = depth ? pt_entry_span(&st->items[depth - 1]) : NULL;
  else if (args.parent == Qfalse)
    parent = NULL;
  else
    parent = pt_span_of(args.parent);
  pt_entry_t *e = &st->items[depth];
  pt_span_t *sp;
  VALUE obj = Qfalse;
  if (!pt_block_takes_nothing()) {
    obj = pt_span_new(pt_cSpan, PT_SPAN_OPEN, &sp);
  } else {
    sp = &e->inl;
    pt_span_init(sp, PT_SPAN_OPEN);
  }
  /* From here to the push nothing allocates: the entry's VALUEs are marked once it is pushed. */
  e->obj = obj;
  polytel_span_start(parent ? &parent->ctx : NULL, &sp->ctx);
  if (parent) { /* W3C: a child carries its parent's tracestate, and its baggage */
    pt_span_store(obj, &sp->tracestate, parent->tracestate);
    pt_span_store(obj, &sp->baggage, parent->baggage);
  }
  if (args.any) {
    sp->kind = args.kind;
    pt_span_store(obj, &sp->scope, scope);
    pt_span_store(obj, &sp->scope_version, scope_version);
    if (args.links != Qundef) pt_span_store(obj, &sp->links, args.links);
  }
  st->depth = depth + 1;

  int state = 0;
  VALUE result = rb_protect(pt_span_yield, obj == Qfalse ? Qundef : obj, &state);
  st->depth = depth; /* pops this span and anything a non-local exit left above it */
  /* The entry again (spans inside may have moved the entries), and the object current_span made, if any. */
  e = &st->items[depth];
  obj = e->obj;
  sp = obj == Qfalse ? &e->inl : RTYPEDDATA_DATA(obj);

  if (sp->fork_gen != pt_fork_gen) {
    /* Opened in the parent before a fork: the parent ends and exports it, not this child. */
    sp->state = PT_SPAN_ENDED;
  } else if (sp->state == PT_SPAN_OPEN) {
    VALUE err = state ? rb_errinfo() : Qnil;
    pt_finish_t f = {sp, name, opts, args.attributes, args.any, pt_is_exception(err) ? err : Qnil};
    if (!pt_sampled(sp) || (NIL_P(f.opts) && NIL_P(sp->extra) && NIL_P(f.err) && sp->status < 0 &&
                            NIL_P(sp->events) && NIL_P(sp->links))) {
      /* Nothing that can raise, allocate or run Ruby code (so the entry stays put): the common case (and an
       * unsampled span, which records nothing but is counted as sampled_out) skips the rescue frame. */
      pt_span_finish_plain(sp, name, POLYTEL_STATUS_UNSET);
    } else {
      /* A span without an object is ended from a copy on this C stack: ending it may run Ruby code (to_s)
       * that pushes spans where its entry is, and the popped entry is no longer marked. */
      pt_span_t local;
      if (obj == Qfalse) {
        local = e->inl;
        f.sp = &local;
      }
      /* rb_rescue2 restores the pending errinfo afterwards, so rb_jump_tag re-raises the original. */
      rb_rescue2(pt_span_finish_body, (VALUE)&f, pt_span_finish_rescue, (VALUE)&f, rb_eException, (VALUE)0);
      if (obj == Qfalse) {
        RB_GC_GUARD(local.tracestate);
        RB_GC_GUARD(local.baggage);
        RB_GC_GUARD(local.scope);
        RB_GC_GUARD(local.scope_version);
        RB_GC_GUARD(local.links);
      }
    }
  }
  RB_GC_GUARD(obj);
  RB_GC_GUARD(name);
  RB_GC_GUARD(opts);
  RB_GC_GUARD(holder);
  RB_GC_GUARD(scope);
  RB_GC_GUARD(scope_version);
  if (state) rb_jump_tag(state);
  return result;
}

/* The current span's object, made now for a span kept in its stack entry (its block took no parameter). */
static VALUE pt_current_span(VALUE self) {
  (void)self;
  VALUE holder = Qnil;
  pt_entry_t *e = pt_stack_top(pt_stack(&holder, 0));
  if (!e) return Qnil;
  if (e->obj == Qfalse) {
    pt_span_t *sp;
    VALUE obj = pt_span_new(pt_cSpan, PT_SPAN_OPEN, &sp); /* nothing moves the entries meanwhile */
    *sp = e->inl;
    sp->next_free = NULL;
    RB_OBJ_WRITTEN(obj, Qundef, sp->extra);
    RB_OBJ_WRITTEN(obj, Qundef, sp->status_msg);
    RB_OBJ_WRITTEN(obj, Qundef, sp->tracestate);
    RB_OBJ_WRITTEN(obj, Qundef, sp->baggage);
    RB_OBJ_WRITTEN(obj, Qundef, sp->scope);
    RB_OBJ_WRITTEN(obj, Qundef, sp->scope_version);
    RB_OBJ_WRITTEN(obj, Qundef, sp->links);
    RB_OBJ_WRITTEN(obj, Qundef, sp->events);
    e->obj = obj;
  }
  RB_GC_GUARD(holder);
  return NIL_P(e->obj) ? Qnil : e->obj;
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
  st->items[st->depth++].obj = span;
  VALUE result = rb_ensure(pt_with_span_body, (VALUE)&w, pt_with_span_pop, (VALUE)&w);
  RB_GC_GUARD(holder);
  return result;
}

/* ------------------------------------------------------------ trace context */

static void pt_carrier_set(VALUE carrier, VALUE key, VALUE value) {
  if (RB_TYPE_P(carrier, T_HASH))
    rb_hash_aset(carrier, key, value);
  else
    rb_funcall(carrier, pt_id_aset, 2, key, value);
}

typedef struct {
  polytel_baggage_entry_t *e;
  size_t n;
} pt_bag_fill_t;

static int pt_bag_fill_i(VALUE key, VALUE val, VALUE arg) {
  pt_bag_fill_t *f = (pt_bag_fill_t *)arg;
  f->e[f->n++] = (polytel_baggage_entry_t){RSTRING_PTR(key), (size_t)RSTRING_LEN(key), RSTRING_PTR(val),
                                           (size_t)RSTRING_LEN(val)};
  return ST_CONTINUE;
}

/* A baggage Hash (frozen, checked by with_baggage or made by extract) as its header value; nil when empty. */
static VALUE pt_baggage_header(VALUE bag) {
  long n = RHASH_SIZE(bag);
  if (n == 0 || n > 180) return Qnil; /* with_baggage refuses more than the 180 members that can travel */
  VALUE holder = 0;
  polytel_baggage_entry_t *e = rb_alloc_tmp_buffer(&holder, n * (long)sizeof *e);
  pt_bag_fill_t f = {e, 0};
  rb_hash_foreach(bag, pt_bag_fill_i, (VALUE)&f);
  VALUE out = rb_usascii_str_new(NULL, 8193); /* 8192 bytes of header (the W3C limit) and the NUL */
  int len = polytel_baggage_format(e, f.n, RSTRING_PTR(out), 8193);
  rb_free_tmp_buffer(&holder);
  if (len <= 0) return Qnil;
  rb_str_set_len(out, len);
  return out;
}

/*
 * Polytel.inject(carrier = {}) → carrier: the current span's (or with_span context's) traceparent, its
 * tracestate when it has one, and its baggage when it has entries, as OTEL_PROPAGATORS says (the core read
 * it). Nothing when there is no current span. Any object with []= is a carrier.
 */
static VALUE pt_inject(int argc, VALUE *argv, VALUE self) {
  (void)self;
  VALUE carrier = Qnil;
  rb_scan_args(argc, argv, "01", &carrier);
  if (NIL_P(carrier)) carrier = rb_hash_new();
  VALUE holder = Qnil;
  pt_span_t *sp = pt_current(&holder);
  unsigned prop = sp ? polytel_propagators() : 0;
  /* All read before the carrier's []=, which may run spans that move the stack entry sp points into. */
  VALUE ts = sp ? sp->tracestate : Qnil, bag = sp ? sp->baggage : Qnil, tp = Qnil;
  if (prop & POLYTEL_PROPAGATOR_TRACECONTEXT) {
    char buf[POLYTEL_TRACEPARENT_LEN + 1];
    if (polytel_traceparent_format(&sp->ctx, buf, sizeof buf) == 0)
      tp = rb_usascii_str_new(buf, POLYTEL_TRACEPARENT_LEN);
  }
  if (!NIL_P(tp)) {
    pt_carrier_set(carrier, pt_str_traceparent, tp);
    if (!NIL_P(ts)) pt_carrier_set(carrier, pt_str_tracestate, rb_str_dup(ts));
  }
  if ((prop & POLYTEL_PROPAGATOR_BAGGAGE) && !NIL_P(bag)) {
    VALUE hdr = pt_baggage_header(bag);
    if (!NIL_P(hdr)) pt_carrier_set(carrier, pt_str_baggage, hdr);
  }
  RB_GC_GUARD(holder);
  RB_GC_GUARD(ts);
  RB_GC_GUARD(bag);
  return carrier;
}

/* The headers extract reads, in one walk over the carrier. */
enum { PT_H_TRACEPARENT, PT_H_TRACESTATE, PT_H_BAGGAGE, PT_N_HEADERS };
typedef struct {
  VALUE name[PT_N_HEADERS];  /* lowercase, or nil: not read (OTEL_PROPAGATORS) */
  VALUE found[PT_N_HEADERS]; /* Qundef until found */
  int missing;
} pt_find_t;

static int pt_find_i(VALUE key, VALUE val, VALUE arg) {
  pt_find_t *f = (pt_find_t *)arg;
  VALUE k = RB_TYPE_P(key, T_SYMBOL) ? rb_sym2str(key) : key;
  if (!RB_TYPE_P(k, T_STRING)) return ST_CONTINUE;
  for (int i = 0; i < PT_N_HEADERS; i++) {
    VALUE n = f->name[i];
    if (f->found[i] == Qundef && !NIL_P(n) && RSTRING_LEN(k) == RSTRING_LEN(n) &&
        strncasecmp(RSTRING_PTR(k), RSTRING_PTR(n), (size_t)RSTRING_LEN(k)) == 0) {
      f->found[i] = val; /* the first key of that name wins */
      return --f->missing ? ST_CONTINUE : ST_STOP;
    }
  }
  return ST_CONTINUE;
}

/* A header's value as a String, or nil. A header given several times (an Array of values) is joined with ","
 * as HTTP does. */
static VALUE pt_header_value(VALUE v) {
  if (v == Qundef || NIL_P(v)) return Qnil;
  if (RB_TYPE_P(v, T_ARRAY)) {
    for (long i = 0; i < RARRAY_LEN(v); i++)
      if (!RB_TYPE_P(RARRAY_AREF(v, i), T_STRING)) return Qnil;
    v = rb_ary_join(v, rb_str_new_cstr(","));
  }
  return RB_TYPE_P(v, T_STRING) ? pt_cstr_value(v) : Qnil;
}

/*
 * The headers the propagators read from a Hash carrier, each a String or nil, their names in any case
 * (String or Symbol keys): an exact lookup of each lowercase name, then one walk over the carrier for all
 * that were not found so.
 */
static void pt_carrier_headers(VALUE carrier, unsigned prop, VALUE out[PT_N_HEADERS]) {
  pt_find_t f = {{Qnil, Qnil, Qnil}, {Qnil, Qnil, Qnil}, 0};
  if (prop & POLYTEL_PROPAGATOR_TRACECONTEXT) {
    f.name[PT_H_TRACEPARENT] = pt_str_traceparent;
    f.name[PT_H_TRACESTATE] = pt_str_tracestate;
  }
  if (prop & POLYTEL_PROPAGATOR_BAGGAGE) f.name[PT_H_BAGGAGE] = pt_str_baggage;
  for (int i = 0; i < PT_N_HEADERS; i++) {
    if (NIL_P(f.name[i])) continue;
    f.found[i] = rb_hash_lookup2(carrier, f.name[i], Qundef);
    if (f.found[i] == Qundef) f.missing++;
  }
  if (f.missing) rb_hash_foreach(carrier, pt_find_i, (VALUE)&f);
  for (int i = 0; i < PT_N_HEADERS; i++) out[i] = pt_header_value(f.found[i]);
}

static int pt_bag_parse_i(void *arg, const polytel_baggage_entry_t *e) {
  VALUE h = (VALUE)arg; /* only NoMemoryError can leave here: the core's walk holds nothing but a malloc */
  rb_hash_aset(h, rb_obj_freeze(rb_usascii_str_new(e->key, (long)e->key_len)),
               rb_obj_freeze(rb_utf8_str_new(e->value, (long)e->value_len)));
  return 0;
}

/* A baggage header value (or nil) as the span keeps it: a frozen Hash of its valid members; nil when none. */
static VALUE pt_baggage_value(VALUE hdr) {
  if (NIL_P(hdr)) return Qnil;
  VALUE bag = rb_hash_new();
  polytel_baggage_parse(RSTRING_PTR(hdr), (size_t)RSTRING_LEN(hdr), pt_bag_parse_i, (void *)bag);
  RB_GC_GUARD(hdr);
  return RHASH_SIZE(bag) ? rb_hash_freeze(bag) : Qnil;
}

/*
 * Polytel.extract(carrier) → a remote Polytel::SpanContext, or nil when the carrier holds no valid
 * traceparent and no baggage (malformed headers are ignored as W3C Trace Context and Baggage say, silently:
 * the core parses them). A tracestate that is not valid is dropped, the traceparent kept; malformed baggage
 * members are dropped, the others kept. Baggage without a valid traceparent gives a context with all-zero
 * ids (valid? false): as a parent it starts a new trace that carries the baggage. The carrier is a Hash
 * (header names in any case) or anything with to_hash / to_h.
 */
static VALUE pt_extract(VALUE self, VALUE carrier) {
  (void)self;
  unsigned prop = polytel_propagators();
  if (!prop) return Qnil;
  if (NIL_P(carrier)) return Qnil;
  if (!RB_TYPE_P(carrier, T_HASH)) {
    VALUE h = rb_check_hash_type(carrier);
    if (NIL_P(h) && rb_respond_to(carrier, rb_intern("to_h"))) h = rb_funcall(carrier, rb_intern("to_h"), 0);
    if (!RB_TYPE_P(h, T_HASH))
      rb_raise(rb_eTypeError,
               "polytel: extract takes a Hash of headers (or anything with to_h), not %" PRIsVALUE,
               rb_obj_class(carrier));
    carrier = h;
  }
  polytel_span_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  VALUE h[PT_N_HEADERS];
  pt_carrier_headers(carrier, prop, h);
  VALUE tp = h[PT_H_TRACEPARENT], ts = Qnil, bag = pt_baggage_value(h[PT_H_BAGGAGE]);
  int valid = !NIL_P(tp) && polytel_traceparent_parse(RSTRING_PTR(tp), &ctx) == 0;
  if (valid && !NIL_P(h[PT_H_TRACESTATE])) {
    VALUE t = h[PT_H_TRACESTATE];
    ts = polytel_tracestate_valid(RSTRING_PTR(t)) && RSTRING_LEN(t) ? rb_str_new_frozen(t) : Qnil;
  }
  if (!valid && NIL_P(bag)) return Qnil;
  pt_span_t *sp;
  VALUE obj = pt_span_new(pt_cSpanContext, PT_SPAN_ENDED, &sp);
  sp->ctx = ctx;
  RB_OBJ_WRITE(obj, &sp->tracestate, ts);
  RB_OBJ_WRITE(obj, &sp->baggage, bag);
  RB_GC_GUARD(h[PT_H_TRACEPARENT]);
  RB_GC_GUARD(h[PT_H_TRACESTATE]);
  RB_GC_GUARD(h[PT_H_BAGGAGE]);
  return rb_obj_freeze(obj);
}

/* span.baggage / context.baggage: its W3C baggage (a frozen Hash, String => String; empty when none). */
static VALUE pt_span_baggage(VALUE self) {
  VALUE b = pt_span_get(self)->baggage;
  return NIL_P(b) ? pt_empty_hash : b;
}

/* context.valid?: it has a trace id and a span id (extract of baggage alone gives one that has not). */
static VALUE pt_ctx_valid_p(VALUE self) {
  const pt_span_t *sp = pt_span_get(self);
  return pt_all_zero(sp->ctx.trace_id, 16) || pt_all_zero(sp->ctx.span_id, 8) ? Qfalse : Qtrue;
}

/* Polytel.baggage: the current span's (or with_span context's) baggage; an empty frozen Hash when none. */
static VALUE pt_baggage(VALUE self) {
  (void)self;
  VALUE holder = Qnil;
  pt_span_t *sp = pt_current(&holder);
  RB_GC_GUARD(holder);
  return sp && !NIL_P(sp->baggage) ? sp->baggage : pt_empty_hash;
}

static int pt_bag_merge_i(VALUE key, VALUE val, VALUE into) {
  VALUE k = RB_TYPE_P(key, T_SYMBOL) ? rb_sym2str(key) : key;
  if (!RB_TYPE_P(k, T_STRING) || !polytel_baggage_key_valid(RSTRING_PTR(k), (size_t)RSTRING_LEN(k)))
    rb_raise(rb_eArgError,
             "polytel: with_baggage: key %+" PRIsVALUE
             " is not a W3C baggage key (an RFC 9110 token: letters, "
             "digits, !#$%%&'*+-.^_`|~)",
             key);
  k = rb_str_new_frozen(k);
  if (NIL_P(val)) {
    rb_hash_delete(into, k);
    return ST_CONTINUE;
  }
  VALUE v = RB_TYPE_P(val, T_STRING) ? val : rb_obj_as_string(val);
  if (RSTRING_LEN(v) > 4096)
    rb_raise(rb_eArgError,
             "polytel: with_baggage: the value of %" PRIsVALUE " is over 4096 bytes and cannot travel", k);
  rb_hash_aset(into, k, rb_str_new_frozen(v));
  return ST_CONTINUE;
}

/*
 * Polytel.with_baggage(entries) { ... }: the current baggage plus `entries` (a Hash; String or Symbol keys,
 * W3C tokens; values to_s; a nil value removes the key) for the block: spans begun inside carry it, and
 * inject sends it. The current span stays the parent of those spans (the block runs under a context with its
 * ids). Bad keys raise ArgumentError before the block runs.
 */
PT_LONGJMP_FRAME static VALUE pt_with_baggage(VALUE self, VALUE entries) {
  rb_need_block();
  Check_Type(entries, T_HASH);
  VALUE holder = Qnil;
  pt_span_t *cur = pt_current(&holder);
  /* Copied out: a value's to_s may run spans, which move the stack's entries (cur may point into one). */
  pt_span_t parent = {.tracestate = Qnil, .baggage = Qnil};
  if (cur) parent = *cur;
  VALUE bag = cur && !NIL_P(parent.baggage) ? rb_hash_dup(parent.baggage) : rb_hash_new();
  rb_hash_foreach(entries, pt_bag_merge_i, bag);
  if (RHASH_SIZE(bag) > 180)
    rb_raise(rb_eArgError, "polytel: with_baggage: more than 180 entries (the W3C limit of what can travel)");
  pt_span_t *c;
  VALUE ctx = pt_span_new(pt_cSpanContext, PT_SPAN_ENDED, &c);
  if (cur) {
    c->ctx = parent.ctx;
    RB_OBJ_WRITE(ctx, &c->tracestate, parent.tracestate);
  }
  RB_GC_GUARD(parent.tracestate);
  RB_GC_GUARD(parent.baggage);
  RB_OBJ_WRITE(ctx, &c->baggage, RHASH_SIZE(bag) ? rb_hash_freeze(bag) : Qnil);
  rb_obj_freeze(ctx);
  RB_GC_GUARD(holder);
  return pt_with_span(self, ctx);
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
  pt_sym_parent = ID2SYM(rb_intern("parent"));
  pt_sym_kind = ID2SYM(rb_intern("kind"));
  pt_sym_links = ID2SYM(rb_intern("links"));
  pt_sym_attributes = ID2SYM(rb_intern("attributes"));
  pt_sym_scope = ID2SYM(rb_intern("scope"));
  pt_sym_timestamp = ID2SYM(rb_intern("timestamp"));
  pt_id_backtrace = rb_intern("backtrace");
  pt_id_aset = rb_intern("[]=");
  pt_str_traceparent = rb_obj_freeze(rb_usascii_str_new_cstr("traceparent"));
  pt_str_tracestate = rb_obj_freeze(rb_usascii_str_new_cstr("tracestate"));
  pt_str_baggage = rb_obj_freeze(rb_usascii_str_new_cstr("baggage"));
  pt_empty_hash = rb_hash_freeze(rb_hash_new());
  rb_gc_register_mark_object(pt_str_baggage);
  rb_gc_register_mark_object(pt_empty_hash);
  rb_gc_register_mark_object(pt_str_traceparent);
  rb_gc_register_mark_object(pt_str_tracestate);
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

#define PT_LEVEL_DEF(name, value, text) rb_define_module_function(pt_mPolytel, text, pt_level_##name, -1);
  POLYTEL_LEVEL_MAP(PT_LEVEL_DEF)
#undef PT_LEVEL_DEF
  rb_define_module_function(pt_mPolytel, "log", pt_log, -1);
  rb_define_module_function(pt_mPolytel, "span", pt_span, -1);
  pt_block_peek_check();
  rb_define_module_function(pt_mPolytel, "current_span", pt_current_span, 0);
  rb_define_module_function(pt_mPolytel, "with_span", pt_with_span, 1);
  rb_define_module_function(pt_mPolytel, "inject", pt_inject, -1);
  rb_define_module_function(pt_mPolytel, "extract", pt_extract, 1);
  rb_define_module_function(pt_mPolytel, "baggage", pt_baggage, 0);
  rb_define_module_function(pt_mPolytel, "with_baggage", pt_with_baggage, 1);
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

  /* A span's identity (a value: extract() gives one, span.context too; parents and links take them). */
  pt_cSpanContext = rb_define_class_under(pt_mPolytel, "SpanContext", rb_cObject);
  rb_define_alloc_func(pt_cSpanContext, pt_span_alloc);
  rb_undef_method(rb_singleton_class(pt_cSpanContext), "new");
  /* The span itself: what Polytel.span's block gets. */
  pt_cSpan = rb_define_class_under(pt_mPolytel, "Span", rb_cObject);
  rb_define_alloc_func(pt_cSpan, pt_span_alloc);
  rb_undef_method(rb_singleton_class(pt_cSpan), "new");
  VALUE both[2] = {pt_cSpanContext, pt_cSpan};
  for (int i = 0; i < 2; i++) {
    rb_define_method(both[i], "trace_id", pt_span_trace_id, 0);
    rb_define_method(both[i], "span_id", pt_span_span_id, 0);
    rb_define_method(both[i], "sampled?", pt_span_sampled_p, 0);
    rb_define_method(both[i], "traceparent", pt_span_traceparent, 0);
    rb_define_method(both[i], "tracestate", pt_span_tracestate, 0);
    rb_define_method(both[i], "baggage", pt_span_baggage, 0);
    rb_define_method(both[i], "context", pt_span_context, 0);
    rb_define_method(both[i], "inspect", pt_ctx_inspect, 0);
  }
  rb_define_method(pt_cSpanContext, "sampled", pt_span_sampled_p, 0);
  rb_define_method(pt_cSpanContext, "remote?", pt_span_remote_p, 0);
  rb_define_method(pt_cSpanContext, "valid?", pt_ctx_valid_p, 0);
  rb_define_method(pt_cSpanContext, "==", pt_ctx_eq, 1);
  rb_define_method(pt_cSpanContext, "eql?", pt_ctx_eq, 1);
  rb_define_method(pt_cSpanContext, "hash", pt_ctx_hash, 0);
  rb_define_method(pt_cSpan, "parent_span_id", pt_span_parent_span_id, 0);
  rb_define_method(pt_cSpan, "recording?", pt_span_recording_p, 0);
  rb_define_method(pt_cSpan, "set_attribute", pt_span_set_attribute, 2);
  rb_define_method(pt_cSpan, "[]=", pt_span_set_attribute, 2);
  rb_define_method(pt_cSpan, "set_status", pt_span_set_status, -1);
  rb_define_method(pt_cSpan, "add_event", pt_span_add_event, -1);
  rb_define_method(pt_cSpan, "record_exception", pt_span_record_exception, -1);

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
