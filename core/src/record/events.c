/* events.c — the hot path: logs, spans and metrics recorded into the calling thread's block. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "record/record.h"

_Atomic int polytel__g_record_level = POLYTEL_LEVEL_OFF;
_Atomic int polytel__g_min_level = 0; /* 0: never initialized, the first event initializes */
_Atomic int polytel__g_console_level = POLYTEL_LEVEL_INFO;
_Atomic int polytel__g_recording = 0;

/* Export keeps INFO and above, whatever POLYTEL_LEVEL_LOG says (that is the console's threshold). */
#define EXPORT_LEVEL POLYTEL_LEVEL_INFO
static _Atomic int g_exporting;
static _Atomic int g_console_threshold = POLYTEL_LEVEL_INFO;

void polytel__levels_update(void) {
  int active = atomic_load(&g_exporting) || polytel__memsink_active();
  int con = atomic_load(&g_console_threshold);
  int rec = active ? EXPORT_LEVEL : POLYTEL_LEVEL_OFF;
  int min = rec < con ? rec : con;
  if (min < 1) min = 1; /* 0 means "never initialized" */
  atomic_store(&polytel__g_console_level, con);
  atomic_store(&polytel__g_record_level, rec);
  atomic_store(&polytel__g_recording, active);
  atomic_store(&polytel__g_min_level, min);
}

void polytel__levels_set(int exporting, int console_threshold) {
  atomic_store(&g_exporting, exporting);
  atomic_store(&g_console_threshold, console_threshold);
  polytel__levels_update();
}

#define REC_LEVEL() atomic_load_explicit(&polytel__g_record_level, POLYTEL__RELAXED)
#define MIN_LEVEL() atomic_load_explicit(&polytel__g_min_level, POLYTEL__RELAXED)
#define CON_LEVEL() atomic_load_explicit(&polytel__g_console_level, POLYTEL__RELAXED)

static _Atomic int g_warned_stray_end, g_warned_depth, g_warned_null_span, g_warned_percent_n,
    g_warned_negative;

/* counted_as names the stats field the caller increments for it, or NULL when nothing is counted. */
static void warn_once(_Atomic int *flag, const char *what, const char *counted_as) {
  if (atomic_exchange(flag, 1)) return;
  if (counted_as)
    polytel__diag(POLYTEL_LEVEL_WARN, "%s (counted as %s; warned once)", what, counted_as);
  else
    polytel__diag(POLYTEL_LEVEL_WARN, "%s (warned once)", what);
}

static void orphan_drop(void) {
  atomic_fetch_add(&polytel__acct.orphan_drop, 1);
}

/* ------------------------------------------------------------------ logs */

static polytel__fmt_sig_t *sig_lookup(polytel__thread_t *t, const char *fmt) {
  polytel__fmt_sig_t *e = &t->fmt_cache[((uintptr_t)fmt >> 3) & (POLYTEL__FMT_CACHE - 1)];
  if (POLYTEL__UNLIKELY(e->fmt != fmt)) polytel__fmt_parse(fmt, e);
  return e;
}

/* Captured arguments, before they are laid out. */
typedef struct cap_s {
  uint8_t kind;
  uint32_t len; /* strings */
  union {
    int64_t i;
    double d;
    long double ld;
    const void *p;
    const char *s;
  } v;
} cap_t;

/* Returns the bytes the arguments take; *trunc is set when a %s argument was cut to fit a block. */
static size_t capture(const polytel__fmt_sig_t *sig, va_list ap, cap_t *caps, int *trunc) {
  size_t size = 0;
  *trunc = 0;
  for (int i = 0; i < sig->n_args; i++) {
    cap_t *c = &caps[i];
    c->kind = sig->kinds[i];
    switch (c->kind) {
      case POLYTEL__ARG_INT:
        c->v.i = va_arg(ap, int);
        size += 8;
        break;
      case POLYTEL__ARG_LONG:
        c->v.i = va_arg(ap, long long);
        size += 8;
        break;
      case POLYTEL__ARG_DOUBLE:
        c->v.d = va_arg(ap, double);
        size += 8;
        break;
      case POLYTEL__ARG_LDOUBLE:
        c->v.ld = va_arg(ap, long double);
        size += 16;
        break;
      case POLYTEL__ARG_PTR:
        c->v.p = va_arg(ap, void *);
        size += 8;
        break;
      case POLYTEL__ARG_STR: {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        size_t len = strlen(s);
        if (len > POLYTEL__MAX_EVENT / 4) {
          len = POLYTEL__MAX_EVENT / 4;
          *trunc = 1;
        }
        c->v.s = s;
        c->len = (uint32_t)len;
        size += 8 + POLYTEL__ALIGN8(len);
        break;
      }
    }
  }
  return size;
}

static void lay_out(uint8_t *p, const cap_t *caps, int n) {
  for (int i = 0; i < n; i++) {
    const cap_t *c = &caps[i];
    switch (c->kind) {
      case POLYTEL__ARG_LDOUBLE:
        memset(p, 0, 16);
        memcpy(p, &c->v.ld, sizeof(long double) < 16 ? sizeof(long double) : 16);
        p += 16;
        break;
      case POLYTEL__ARG_STR: {
        uint32_t len = c->len;
        memcpy(p, &len, 4);
        memset(p + 4, 0, 4);
        memcpy(p + 8, c->v.s, len);
        size_t padded = POLYTEL__ALIGN8(len);
        if (padded > len) memset(p + 8 + len, 0, padded - len);
        p += 8 + padded;
        break;
      }
      default:
        memcpy(p, &c->v, 8);
        p += 8;
    }
  }
}

void polytel_log_attrs_ts(polytel_level_t level, const char *target, const char *msg, size_t msg_len,
                          const polytel_attr_t *attrs, size_t n_attrs, const polytel_span_ctx_t *span,
                          int console);

static void log_slow(polytel_level_t level, const char *target, const char *fmt, va_list ap) {
  if (MIN_LEVEL() == 0) {
    polytel__first_use();
    if ((int)level < MIN_LEVEL()) return;
  }
  if (!target) target = "";
  if (!fmt) fmt = "(null format)";
  int rec = (int)level >= REC_LEVEL();
  int con = (int)level >= CON_LEVEL();
  polytel__fmt_sig_t local, *sig = &local;
  polytel__thread_t *t = NULL;
  if (rec) {
    t = polytel__thread();
    if (t)
      sig = sig_lookup(t, fmt);
    else
      polytel__fmt_parse(fmt, &local);
  } else {
    polytel__fmt_parse(fmt, &local);
  }

  if (POLYTEL__UNLIKELY(!sig->ok)) {
    /* Not deferrable: format here (never with %n: the format is then shown as text). */
    char buf[4096];
    size_t n;
    if (sig->has_n) {
      warn_once(&g_warned_percent_n,
                "a log format contains %n; the record keeps the format as its text, unformatted", NULL);
      n = strlen(fmt);
      if (n >= sizeof buf) n = sizeof buf - 1;
      memcpy(buf, fmt, n);
    } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
      int r = vsnprintf(buf, sizeof buf, fmt, ap);
#pragma GCC diagnostic pop
      n = r < 0 ? 0 : ((size_t)r >= sizeof buf ? sizeof buf - 1 : (size_t)r);
    }
    polytel_log_attrs_ts(level, target, buf, n, NULL, 0, NULL, con);
    return;
  }

  cap_t caps[POLYTEL__MAX_FMT_ARGS];
  va_list ap2;
  va_copy(ap2, ap);
  int trunc;
  size_t args_size = capture(sig, ap2, caps, &trunc);
  va_end(ap2);

  if (rec) {
    if (!t) {
      orphan_drop();
    } else {
      size_t size = 32 + args_size;
      uint8_t *p = polytel__reserve(t, size);
      if (POLYTEL__LIKELY(p != NULL)) {
        polytel__ev_t *ev = (polytel__ev_t *)p;
        ev->type = POLYTEL__EV_LOG_FMT;
        ev->level = (uint8_t)level;
        ev->flags = sig->n_args;
        ev->size = (uint32_t)size;
        ev->ts = polytel__ticks();
        polytel__put_ptr(p + 16, target);
        polytel__put_ptr(p + 24, fmt);
        lay_out(p + 32, caps, sig->n_args);
        polytel__commit(t, size);
        if (trunc) polytel__inc(&t->n_truncated, 1);
      } else {
        polytel__inc(&t->n_drop_full, 1);
      }
      polytel__inc(&t->n_logs, 1);
    }
  }
  if (con) {
    uint8_t argbuf[2048];
    char line[4096];
    size_t n;
    if (args_size <= sizeof argbuf) {
      lay_out(argbuf, caps, sig->n_args);
      n = polytel__fmt_render(line, sizeof line, fmt, argbuf, args_size);
    } else {
      uint8_t *big = malloc(args_size);
      if (big) {
        lay_out(big, caps, sig->n_args);
        n = polytel__fmt_render(line, sizeof line, fmt, big, args_size);
        free(big);
      } else {
        n = polytel__fmt_render(line, sizeof line, fmt, NULL, 0);
      }
    }
    static const char mark[] = "...[truncated]";
    if (n + 1 >= sizeof line || trunc) { /* never cut silently */
      if (n > sizeof line - sizeof mark) n = sizeof line - sizeof mark;
      memcpy(line + n, mark, sizeof mark - 1);
      n += sizeof mark - 1;
    }
    polytel__console_emit((int)level, polytel_now_ns(), target, strlen(target), line, n, NULL, 0);
  }
}

void polytel_vlog(polytel_level_t level, const char *target, const char *fmt, va_list ap) {
  if ((int)level < MIN_LEVEL()) return;
  log_slow(level, target, fmt, ap);
}

void polytel_log(polytel_level_t level, const char *target, const char *fmt, ...) {
  if ((int)level < MIN_LEVEL()) return;
  va_list ap;
  va_start(ap, fmt);
  /* Fast path: recording only, format cached, no strings: no parse, no copy loop. */
  polytel__thread_t *t = polytel__tls;
  if (POLYTEL__LIKELY(t != NULL && (int)level < CON_LEVEL() && (int)level >= REC_LEVEL() && fmt && target)) {
    polytel__fmt_sig_t *sig = &t->fmt_cache[((uintptr_t)fmt >> 3) & (POLYTEL__FMT_CACHE - 1)];
    if (POLYTEL__LIKELY(sig->fmt == fmt && sig->ints_only)) {
      int n = sig->n_args;
      {
        size_t size = 32 + 8 * (size_t)n;
        uint8_t *p = polytel__reserve(t, size);
        if (POLYTEL__LIKELY(p != NULL)) {
          polytel__ev_t *ev = (polytel__ev_t *)p;
          ev->type = POLYTEL__EV_LOG_FMT;
          ev->level = (uint8_t)level;
          ev->flags = (uint16_t)n;
          ev->size = (uint32_t)size;
          ev->ts = polytel__ticks();
          polytel__put_ptr(p + 16, target);
          polytel__put_ptr(p + 24, fmt);
          int64_t *a = (int64_t *)(p + 32);
          for (int i = 0; i < n; i++)
            a[i] =
                sig->kinds[i] == POLYTEL__ARG_INT ? (int64_t)va_arg(ap, int) : (int64_t)va_arg(ap, long long);
          polytel__commit(t, size);
        } else {
          polytel__inc(&t->n_drop_full, 1);
        }
        polytel__inc(&t->n_logs, 1);
        va_end(ap);
        return;
      }
    }
  }
  log_slow(level, target, fmt, ap);
  va_end(ap);
}

int polytel_level_enabled(polytel_level_t level) {
  int min = MIN_LEVEL();
  return min == 0 || (int)level >= min;
}

/* ----------------------------------------------- serialized strings/attrs */

/* Size of a string field (u32 len + bytes, padded), within a remaining budget. */
static size_t str_fit(size_t len, size_t *budget, int *trunc) {
  if (len + 8 > *budget) {
    *trunc = 1;
    len = *budget > 8 ? *budget - 8 : 0;
  }
  size_t sz = 8 + POLYTEL__ALIGN8(len);
  *budget = *budget > sz ? *budget - sz : 0;
  return len;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len) {
  uint32_t l = (uint32_t)len;
  memcpy(p, &l, 4);
  memset(p + 4, 0, 4);
  if (len) memcpy(p + 8, s, len);
  size_t padded = POLYTEL__ALIGN8(len);
  if (padded > len) memset(p + 8 + len, 0, padded - len);
  return p + 8 + padded;
}

/*
 * A list of fields to lay out after an event's fixed part: strings and
 * attributes, fitted into the event budget in order (later ones truncated first
 * would be fairer, but order keeps the message whole before attributes).
 */
typedef struct plan_s {
  size_t size;
  int trunc;
  size_t budget;
} plan_t;

static size_t attr_key_len(const polytel_attr_t *a) {
  size_t k = strlen(a->key);
  return k > 255 ? 255 : k;
}

/* Recorded at all: a key (empty keys are dropped and counted, as the spec says), a known type, elements. */
static int attr_valid(const polytel_attr_t *a) {
  if (!a->key || !a->key[0] || a->type < POLYTEL_ATTR_STRING || a->type > POLYTEL_ATTR_BOOL_ARRAY) return 0;
  return a->type < POLYTEL_ATTR_STRING_ARRAY || a->value.arr.ptr || !a->value.arr.len;
}

/* An attribute as laid out: its value's bytes (arrays: the elements that fit) and its whole size. */
typedef struct fit_s {
  size_t key_len, val_len, n_elems, size;
} fit_t;

/* attr_fit() for arrays: the elements that fit whole. */
__attribute__((noinline)) static int attr_fit_array(const polytel_attr_t *a, size_t head, size_t room,
                                                    fit_t *f, int *trunc) {
  size_t vl = 0, k = 0, n = a->value.arr.len;
  switch (a->type) {
    case POLYTEL_ATTR_STRING_ARRAY: {
      const polytel_str_t *e = a->value.arr.ptr;
      for (; k < n; k++) {
        size_t l = e[k].ptr ? e[k].len : 0;
        if (l > room || vl + 4 + l > room) break;
        vl += 4 + l;
      }
      break;
    }
    case POLYTEL_ATTR_BOOL_ARRAY:
      k = n < room ? n : room;
      vl = k;
      break;
    default: /* ints, doubles: 8 bytes each */
      k = n < room / 8 ? n : room / 8;
      vl = 8 * k;
      break;
  }
  if (k < n) *trunc = 1;
  f->val_len = vl;
  f->n_elems = k;
  f->size = head + POLYTEL__ALIGN8(vl);
  return 1;
}

/*
 * Fit a valid attribute into budget: 0 when not even its key and an 8-byte value fit (it and the rest are
 * left out). A string is cut to what fits, an array to its elements that fit whole (*trunc set). Inlined:
 * the bindings' logs and spans pass a few scalars and strings, and this runs twice for each.
 */
static inline __attribute__((always_inline)) int attr_fit(const polytel_attr_t *a, size_t budget, fit_t *f,
                                                          int *trunc) {
  f->key_len = attr_key_len(a);
  size_t head = 8 + POLYTEL__ALIGN8(f->key_len);
  if (head + 8 > budget) return 0;
  size_t room = (budget - head) & ~(size_t)7;
  if (POLYTEL__UNLIKELY(a->type >= POLYTEL_ATTR_STRING_ARRAY)) return attr_fit_array(a, head, room, f, trunc);
  size_t vl = 8;
  if (a->type == POLYTEL_ATTR_STRING) {
    vl = a->value.str.ptr ? a->value.str.len : 0;
    if (vl > room) vl = room, *trunc = 1;
    f->size = head + POLYTEL__ALIGN8(vl);
  } else {
    f->size = head + 8;
  }
  f->val_len = vl;
  f->n_elems = 0;
  return 1;
}

/* Plans attrs into pl: *n_ok laid out, *n_dropped left out (invalid, or no room: counted on the wire). */
static void attrs_plan(const polytel_attr_t *attrs, size_t n, plan_t *pl, uint32_t *n_ok,
                       uint32_t *n_dropped) {
  *n_ok = 0;
  *n_dropped = 0;
  if (!attrs) return;
  for (size_t i = 0; i < n; i++) {
    fit_t f;
    if (!attr_valid(&attrs[i])) {
      (*n_dropped)++;
      continue;
    }
    if (!attr_fit(&attrs[i], pl->budget, &f, &pl->trunc)) {
      pl->trunc = 1;
      *n_dropped += (uint32_t)(n - i);
      break;
    }
    pl->budget -= f.size;
    pl->size += f.size;
    (*n_ok)++;
  }
}

static uint8_t *pad8(uint8_t *p, size_t len) {
  size_t padded = POLYTEL__ALIGN8(len);
  if (padded > len) memset(p + len, 0, padded - len);
  return p + padded;
}

/* Lays out the n_ok attributes attrs_plan() kept, from the budget it started with. */
static uint8_t *attrs_write(uint8_t *p, const polytel_attr_t *attrs, size_t n, uint32_t n_ok, size_t budget) {
  uint32_t done = 0;
  for (size_t i = 0; i < n && done < n_ok; i++) {
    const polytel_attr_t *a = &attrs[i];
    fit_t f;
    int trunc = 0;
    if (!attr_valid(a) || !attr_fit(a, budget, &f, &trunc)) continue;
    budget -= f.size;
    polytel__ev_attr_t h = {.type = (uint8_t)a->type, .key_len = (uint16_t)f.key_len};
    if (polytel__kv_has_bytes(h.type)) h.val_len = (uint32_t)f.val_len;
    memcpy(p, &h, 8);
    memcpy(p + 8, a->key, f.key_len);
    p = pad8(p + 8, f.key_len);
    uint8_t *v = p;
    switch (a->type) {
      case POLYTEL_ATTR_STRING:
        if (f.val_len) memcpy(v, a->value.str.ptr, f.val_len);
        break;
      case POLYTEL_ATTR_STRING_ARRAY: {
        const polytel_str_t *e = a->value.arr.ptr;
        for (size_t k = 0; k < f.n_elems; k++) {
          uint32_t l = e[k].ptr ? (uint32_t)e[k].len : 0;
          memcpy(v, &l, 4);
          if (l) memcpy(v + 4, e[k].ptr, l);
          v += 4 + l;
        }
        break;
      }
      case POLYTEL_ATTR_INT_ARRAY:
      case POLYTEL_ATTR_DOUBLE_ARRAY:
        if (f.val_len) memcpy(v, a->value.arr.ptr, f.val_len);
        break;
      case POLYTEL_ATTR_BOOL_ARRAY: {
        const int *e = a->value.arr.ptr;
        for (size_t k = 0; k < f.n_elems; k++) v[k] = e[k] != 0;
        break;
      }
      default: {
        int64_t x = 0;
        if (a->type == POLYTEL_ATTR_INT)
          x = a->value.i;
        else if (a->type == POLYTEL_ATTR_DOUBLE)
          memcpy(&x, &a->value.d, 8);
        else
          x = a->value.b ? 1 : 0;
        memcpy(v, &x, 8);
        f.val_len = 8;
      }
    }
    p = pad8(p, f.val_len);
    done++;
  }
  return p;
}

/* ------------------------------------------------------ dynamic logs */

/*
 * EV_LOG_STR: hdr | u32 n_attrs, u32 has_span | u32 trace flags, u32 attrs dropped |
 * trace_id[16] span_id[8] (if has_span) | str target | str msg | attrs
 */
void polytel_log_attrs_ts(polytel_level_t level, const char *target, const char *msg, size_t msg_len,
                          const polytel_attr_t *attrs, size_t n_attrs, const polytel_span_ctx_t *span,
                          int console) {
  if (!target) target = "";
  if (!msg) {
    msg = "";
    msg_len = 0;
  }
  if ((int)level >= REC_LEVEL()) {
    polytel__thread_t *t = polytel__thread();
    if (!t) {
      orphan_drop();
    } else {
      plan_t pl = {.size = 32, .trunc = 0, .budget = POLYTEL__MAX_EVENT - 64};
      int has_span = span != NULL;
      if (has_span) pl.size += 24;
      size_t tl = str_fit(strlen(target), &pl.budget, &pl.trunc);
      size_t ml = str_fit(msg_len, &pl.budget, &pl.trunc);
      pl.size += 16 + POLYTEL__ALIGN8(tl) + POLYTEL__ALIGN8(ml);
      uint32_t n_ok, n_dropped;
      size_t budget0 = pl.budget;
      attrs_plan(attrs, n_attrs, &pl, &n_ok, &n_dropped);
      uint8_t *p = polytel__reserve(t, pl.size);
      if (p) {
        polytel__ev_t *ev = (polytel__ev_t *)p;
        ev->type = POLYTEL__EV_LOG_STR;
        ev->level = (uint8_t)level;
        ev->flags = 0;
        ev->size = (uint32_t)pl.size;
        ev->ts = polytel__ticks();
        uint32_t hdr2[4] = {n_ok, (uint32_t)has_span, has_span ? span->trace_flags : 0u, n_dropped};
        memcpy(p + 16, hdr2, 16);
        uint8_t *q = p + 32;
        if (has_span) {
          memcpy(q, span->trace_id, 16);
          memcpy(q + 16, span->span_id, 8);
          q += 24;
        }
        q = put_str(q, target, tl);
        q = put_str(q, msg, ml);
        attrs_write(q, attrs, n_attrs, n_ok, budget0);
        polytel__commit(t, pl.size);
        if (pl.trunc) polytel__inc(&t->n_truncated, 1);
      } else {
        polytel__inc(&t->n_drop_full, 1);
      }
      polytel__inc(&t->n_logs, 1);
    }
  }
  if (console)
    polytel__console_emit((int)level, polytel_now_ns(), target, strlen(target), msg, msg_len, attrs, n_attrs);
}

void polytel_log_attrs(polytel_level_t level, const char *target, const char *msg, size_t msg_len,
                       const polytel_attr_t *attrs, size_t n_attrs, const polytel_span_ctx_t *span) {
  int min = MIN_LEVEL();
  if (POLYTEL__UNLIKELY(min == 0)) {
    polytel__first_use();
    min = MIN_LEVEL();
  }
  if ((int)level < min) return;
  polytel_log_attrs_ts(level, target, msg, msg_len, attrs, n_attrs, span, (int)level >= CON_LEVEL());
}

/* ------------------------------------------------------------ thread spans */

static inline int recording(void) {
  if (POLYTEL__LIKELY(atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED))) return 1;
  if (MIN_LEVEL() == 0) {
    polytel__first_use();
    return atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED);
  }
  return 0;
}

/* A begin that records nothing still opens a level, so its end pairs with it. It takes no id number. */
static void begin_dropped(polytel__thread_t *t, int invalid) {
  uint32_t d = t->depth;
  if (d < POLYTEL__MAX_DEPTH) {
    uint64_t bit = 1ull << d;
    if (invalid)
      t->drop_inv_mask |= bit;
    else
      t->drop_mask |= bit;
  }
  t->depth = d + 1;
  polytel__ctx_region_update(t);
  polytel__adjust_reserve(t);
}

/* Too deep (counted as dropped_depth at its end) or nameless (dropped_invalid). */
static void begin_refused(polytel__thread_t *t, const char *name) {
  if (t->depth >= POLYTEL__MAX_DEPTH)
    warn_once(&g_warned_depth, "thread spans nested deeper than 64 are not recorded", "dropped_depth");
  else if (!name)
    warn_once(&g_warned_null_span, "a thread span was begun with a NULL name; not recorded",
              "dropped_invalid");
  begin_dropped(t, 1);
}

/*
 * The checks every begin makes before it writes: NULL when nothing is to be written (the begin was counted
 * as refused or dropped). `need` is the event's size; the 16 bytes its end needs are reserved with it.
 */
static polytel__thread_t *begin_prologue(const char *name, size_t need, uint8_t **p) {
  if (!recording()) return NULL;
  polytel__thread_t *t = polytel__thread();
  if (POLYTEL__UNLIKELY(!t)) {
    orphan_drop();
    return NULL;
  }
  if (POLYTEL__UNLIKELY(t->depth >= POLYTEL__MAX_DEPTH || !name)) {
    begin_refused(t, name);
    return NULL;
  }
  /* A context attached while its event could not be written: the consumer must know it before its spans. */
  if (POLYTEL__UNLIKELY(t->n_emitted < t->n_frames) && !polytel__ctx_emit_frames(t)) {
    begin_dropped(t, 0);
    return NULL;
  }
  polytel__ctx_region_update(t);
  *p = polytel__reserve(t, need + POLYTEL__END_RESERVE);
  if (POLYTEL__UNLIKELY(!*p)) {
    begin_dropped(t, 0);
    return NULL;
  }
  return t;
}

/* A recorded begin takes the thread's next id number (context.c). */
static inline void begin_number(polytel__thread_t *t) {
  uint64_t seq = t->seq + 1;
  t->seq = seq;
  t->open_seq[t->depth] = seq;
}

/* Everything but the common case, out of line so the fast path needs no stack frame. */
__attribute__((noinline, cold)) static void span_begin_slow(const char *name) {
  uint8_t *p;
  polytel__thread_t *t = begin_prologue(name, 24, &p);
  if (!t) return;
  uint64_t hdr = t->begin_hdr, ts = polytel__ticks();
  memcpy(p, &hdr, 8);
  memcpy(p + 8, &ts, 8);
  polytel__put_ptr(p + 16, name);
  begin_number(t);
  t->depth++;
  polytel__adjust_reserve(t);
  polytel__commit(t, 24);
}

/*
 * The fast path: a thread with room, below the depth limit, nothing pending. A sampled and an unsampled begin
 * run the same instructions: the region's decision is in begin_word (see context.c). It writes the packed
 * begin (16 bytes, record.h), whose end is packed too: a leaf span is 24 bytes, three words.
 */
#define BEGIN_FAST_SIZE (POLYTEL__PACKED_SPANS ? 16 : 24)
static inline __attribute__((always_inline)) void span_begin(const char *name) {
  polytel__thread_t *t = polytel__tls;
  /*
   * The name is not NULL and fits the packed begin's 48 bits (user-space addresses do; one compare for both).
   * fast_depth is 0 without a TSC to read (polytel__ctx_refresh): no clock check of its own here. The bytes
   * now, and the 16 its end may need stay reserved below lim.
   */
  if (POLYTEL__LIKELY(t != NULL && atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED) &&
                      t->depth < t->fast_depth && (uint64_t)(uintptr_t)name - 1 < ((uint64_t)1 << 48) - 1 &&
                      t->pos + BEGIN_FAST_SIZE + POLYTEL__END_RESERVE <= t->lim)) {
    /* Every field read before the event is written: the stores through p could alias t's. */
    uint8_t *p = t->pos, *lim = t->lim;
    uint32_t d = t->depth;
    uint64_t seq = t->seq + 1, hdr = t->begin_word, ts = polytel__ticks_fast();
#if POLYTEL__PACKED_SPANS
    uint64_t w[2] = {hdr | (uint64_t)(uintptr_t)name << 16, ts};
    memcpy(p, w, 16);
#else
    memcpy(p, &hdr, 8);
    memcpy(p + 8, &ts, 8);
    polytel__put_ptr(p + 16, name);
#endif
    t->seq = seq; /* the span's id number (context.c) */
    t->open_seq[d] = seq;
    t->depth = d + 1;
    t->lim = lim - POLYTEL__END_RESERVE; /* == adjust_reserve() below the depth limit */
    t->pos = p + BEGIN_FAST_SIZE;
    /*
     * Not published here: the next event's commit (its end at the latest; a hand-off and a thread's exit
     * publish too) covers these bytes. Until then the consumer does not know the span, which it could not
     * export before its end anyway.
     */
    return;
  }
  span_begin_slow(name);
}

void polytel_span_begin(const char *name) {
  span_begin(name);
}

/* EV_SPAN_BEGIN_DYN: hdr(flags: decision, kind) | u32 n_attrs, u32 attrs dropped | str name | attrs */
void polytel_span_begin_dyn(const char *name, const polytel_attr_t *attrs, size_t n_attrs) {
  plan_t pl = {.size = 24, .trunc = 0, .budget = POLYTEL__MAX_EVENT - 64};
  size_t nl = str_fit(name ? strlen(name) : 0, &pl.budget, &pl.trunc);
  pl.size += 8 + POLYTEL__ALIGN8(nl);
  uint32_t n_ok, n_dropped;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok, &n_dropped);
  uint8_t *p;
  polytel__thread_t *t = begin_prologue(name, pl.size, &p);
  if (!t) return;
  polytel__ev_t *ev = (polytel__ev_t *)p;
  uint64_t hdr = t->begin_hdr;
  memcpy(ev, &hdr, 8);
  ev->type = POLYTEL__EV_SPAN_BEGIN_DYN;
  ev->size = (uint32_t)pl.size;
  ev->ts = polytel__ticks();
  uint32_t h[2] = {n_ok, n_dropped};
  memcpy(p + 16, h, 8);
  uint8_t *q = put_str(p + 24, name, nl);
  attrs_write(q, attrs, n_attrs, n_ok, budget0);
  begin_number(t);
  t->depth++;
  polytel__adjust_reserve(t);
  polytel__commit(t, pl.size);
  if (pl.trunc) polytel__inc(&t->n_truncated, 1);
}

/*
 * Returns 1 when an end event must be written for the span being closed. Counts it: as recorded (and its
 * drop), or, when the sampler left it out, as sampled_out.
 */
static int end_prologue(polytel__thread_t *t) {
  if (POLYTEL__UNLIKELY(t->depth == 0)) {
    if (atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED)) {
      warn_once(&g_warned_stray_end, "polytel_span_end() without a matching begin", "dropped_invalid");
      polytel__inc(&t->n_spans, 1);
      polytel__inc(&t->n_drop_invalid, 1);
    }
    return 0;
  }
  uint32_t d = --t->depth;
  polytel__ctx_lower_frames(t);
  int write = 0;
  if (d >= POLYTEL__MAX_DEPTH) {
    polytel__inc(&t->n_spans, 1);
    polytel__inc(&t->n_drop_depth, 1);
  } else {
    uint64_t bit = 1ull << d;
    if (POLYTEL__UNLIKELY((t->drop_mask | t->drop_inv_mask) & bit)) {
      polytel__inc(&t->n_spans, 1);
      if (t->drop_inv_mask & bit)
        polytel__inc(&t->n_drop_invalid, 1);
      else
        polytel__inc(&t->n_drop_full, 1);
      t->drop_mask &= ~bit;
      t->drop_inv_mask &= ~bit;
    } else {
      int unsampled = (t->frozen_mask & bit) ? (t->frozen_unsampled & bit) != 0 : t->region_unsampled;
      t->frozen_mask &= ~bit;
      t->frozen_unsampled &= ~bit;
      polytel__inc(unsampled ? &t->n_sampled_out : &t->n_spans, 1);
      write = 1;
    }
  }
  polytel__ctx_region_update(t);
  polytel__adjust_reserve(t);
  return write;
}

static void end_simple(polytel__thread_t *t, uint16_t status) {
  /* Room was reserved at begin (depth was decremented already): never fails, never hands off. */
  uint8_t *p = t->pos;
  polytel__ev_t *ev = (polytel__ev_t *)p;
  ev->type = POLYTEL__EV_SPAN_END;
  ev->level = 0;
  ev->flags = status;
  ev->size = 16;
  ev->ts = polytel__ticks();
  polytel__commit(t, 16);
}

__attribute__((noinline, cold)) static void span_end_slow(polytel__thread_t *t) {
  if (!t) {
    if (!atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED)) return;
    t = polytel__thread();
    if (!t) return;
  }
  if (end_prologue(t)) end_simple(t, 0);
}

#if !POLYTEL__PACKED_SPANS
/* The first word of a plain EV_SPAN_END (status unset), as end_simple writes it. */
static const polytel__ev_t k_end_hdr = {POLYTEL__EV_SPAN_END, 0, 0, 16, 0};
#endif
#define END_FAST_SIZE (POLYTEL__PACKED_SPANS ? 8 : 16)
/*
 * The common case: a recorded span within the depth limit ends, in the region it was begun in (sampled or
 * not: the same instructions, span_ctr says where it counts). Everything else takes end_prologue. The packed
 * end keeps the low 56 bits of its timestamp: the consumer restores the rest from its begin's (a span is
 * shorter than 2^56 ticks, centuries).
 */
static inline void span_end(void) {
  polytel__thread_t *t = polytel__tls;
  if (POLYTEL__LIKELY(t != NULL)) {
    uint32_t d = t->depth - 1; /* wraps to UINT32_MAX at depth 0: the slow path */
    /* slow_mask is all ones without a TSC to read (polytel__ctx_refresh): no clock check of its own here. */
    if (POLYTEL__LIKELY(d < POLYTEL__MAX_DEPTH && !((t->slow_mask >> d) & 1))) {
      /*
       * Every field read before the stores, which could alias t's. pos and lim are stored apart (the event's
       * stores between them): stored together the compiler pairs them into one 16-byte load and store, and
       * the next end's 16-byte load of the begin's two 8-byte stores cannot be forwarded from them.
       */
      uint8_t *p = t->pos, *lim = t->lim;
      polytel__block_t *cur = t->cur;
      _Atomic uint64_t *ctr = t->span_ctr;
      t->depth = d;
      t->pos = p + END_FAST_SIZE;
      polytel__inc(ctr, 1);
#if POLYTEL__PACKED_SPANS
      uint64_t w = POLYTEL__EV_SPAN_END_PACKED | polytel__ticks_fast() << 8;
      memcpy(p, &w, 8);
#else
      uint64_t ev[2] = {0, polytel__ticks_fast()};
      memcpy(ev, &k_end_hdr, 8);
      memcpy(p, ev, 16);
#endif
      t->lim = lim + POLYTEL__END_RESERVE; /* == adjust_reserve() below the depth limit */
      atomic_store_explicit(&cur->committed, (uint32_t)(p + END_FAST_SIZE - (uint8_t *)cur->data),
                            memory_order_release);
      return;
    }
  }
  span_end_slow(t);
}

void polytel_span_end(void) {
  span_end();
}

void polytel__span_scope_end(int *unused) {
  (void)unused;
  span_end();
}

/* EV_SPAN_END_DYN: hdr(flags = status) | u32 n_attrs, u32 attrs dropped | str msg | attrs */
void polytel_span_end_status(polytel_status_t status, const char *msg, const polytel_attr_t *attrs,
                             size_t n_attrs) {
  polytel__thread_t *t = polytel__tls;
  if (!t) {
    if (!atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED)) return;
    t = polytel__thread();
    if (!t) return;
  }
  if (!end_prologue(t)) return;
  if (status > POLYTEL_STATUS_ERROR) status = POLYTEL_STATUS_UNSET;
  if (!msg && n_attrs == 0) {
    end_simple(t, (uint16_t)status);
    return;
  }
  plan_t pl = {.size = 24, .trunc = 0, .budget = POLYTEL__MAX_EVENT - 64};
  size_t ml = str_fit(msg ? strlen(msg) : 0, &pl.budget, &pl.trunc);
  pl.size += 8 + POLYTEL__ALIGN8(ml);
  uint32_t n_ok, n_dropped;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok, &n_dropped);
  /* The 16 reserved bytes are ours now (depth was decremented); the rest must fit like any event. */
  uint8_t *p = polytel__reserve(t, pl.size);
  if (!p) {
    /* No room for the details: end it plainly, in the 16 bytes that were kept for it. */
    end_simple(t, (uint16_t)status);
    polytel__inc(&t->n_truncated, 1);
    return;
  }
  polytel__ev_t *ev = (polytel__ev_t *)p;
  ev->type = POLYTEL__EV_SPAN_END_DYN;
  ev->level = 0;
  ev->flags = (uint16_t)status;
  ev->size = (uint32_t)pl.size;
  ev->ts = polytel__ticks();
  uint32_t h[2] = {n_ok, n_dropped};
  memcpy(p + 16, h, 8);
  uint8_t *q = put_str(p + 24, msg ? msg : "", ml);
  attrs_write(q, attrs, n_attrs, n_ok, budget0);
  polytel__commit(t, pl.size);
  if (pl.trunc) polytel__inc(&t->n_truncated, 1);
}

/* Thread exit: open spans end now, flagged, so nothing recorded is lost. */
void polytel__close_open_spans(polytel__thread_t *t) {
  while (t->depth > 0) {
    if (end_prologue(t)) end_simple(t, 0x100 /* ended at thread exit */);
  }
}

/* ------------------------------------------------------------ async spans */

/* Settings read on every span start/finish: set at phase 1 (and 2) from the configuration. */
_Atomic int polytel__g_sampler_kind = POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON;
_Atomic uint64_t polytel__g_sampler_bound = UINT64_MAX;
_Atomic unsigned polytel__g_propagators = POLYTEL__PROPAGATORS_DEFAULT;
polytel__limits_t polytel__limits = {128, POLYTEL__NO_LIMIT, 128, 128, 128, 128, 128, POLYTEL__NO_LIMIT};

void polytel__trace_settings_apply(const polytel__sampler_t *s, unsigned propagators,
                                   const uint32_t limits[POLYTEL__N_LIMITS]) {
  atomic_store(&polytel__g_sampler_kind, (int)s->kind);
  atomic_store(&polytel__g_sampler_bound, s->bound);
  atomic_store(&polytel__g_propagators, propagators);
  _Atomic uint32_t *dst[POLYTEL__N_LIMITS] = {&polytel__limits.span_attrs,  &polytel__limits.span_attr_len,
                                              &polytel__limits.events,      &polytel__limits.links,
                                              &polytel__limits.event_attrs, &polytel__limits.link_attrs,
                                              &polytel__limits.log_attrs,   &polytel__limits.log_attr_len};
  for (int i = 0; i < POLYTEL__N_LIMITS; i++) atomic_store(dst[i], limits[i]);
}

unsigned polytel_propagators(void) {
  if (POLYTEL__UNLIKELY(MIN_LEVEL() == 0)) polytel__first_use();
  return atomic_load_explicit(&polytel__g_propagators, POLYTEL__RELAXED);
}

static const char *const k_kind_names[] = {"unspecified", "internal", "server",
                                           "client",      "producer", "consumer"};

int polytel_span_kind_from_name(const char *name, size_t len) {
  if (!name) return POLYTEL_EINVAL;
  for (int k = POLYTEL_SPAN_KIND_INTERNAL; k <= POLYTEL_SPAN_KIND_CONSUMER; k++) {
    const char *w = k_kind_names[k];
    size_t i = 0;
    while (i < len && w[i] && (name[i] | 0x20) == w[i]) i++;
    if (i == len && !w[i]) return k;
  }
  return POLYTEL_EINVAL;
}

const char *polytel_span_kind_name(polytel_span_kind_t kind) {
  return (unsigned)kind <= POLYTEL_SPAN_KIND_CONSUMER ? k_kind_names[kind] : NULL;
}

static inline int span_start(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out, uint64_t start_ns) {
  if (!out) return POLYTEL_EINVAL;
  if (POLYTEL__UNLIKELY(MIN_LEVEL() == 0)) polytel__first_use(); /* the sampler comes from the config */
  polytel__thread_t *t = polytel__thread();
  static const uint8_t zero[8];
  memset(out, 0, sizeof *out);
  int has_parent = parent && memcmp(parent->span_id, zero, 8) != 0;
  if (t) {
    polytel__gen_ids(t->rng, has_parent ? NULL : out->trace_id, out->span_id);
  } else {
    uint64_t rng[2];
    polytel__rng_seed(rng);
    polytel__gen_ids(rng, has_parent ? NULL : out->trace_id, out->span_id);
  }
  int parent_sampled = -1;
  uint8_t flags = 0;
  if (has_parent) {
    memcpy(out->trace_id, parent->trace_id, 16);
    memcpy(out->parent_id, parent->span_id, 8);
    out->parent_remote = parent->is_remote != 0;
    flags = parent->trace_flags;
    parent_sampled = (flags & POLYTEL_TRACE_FLAG_SAMPLED) != 0;
  }
  int kind = atomic_load_explicit(&polytel__g_sampler_kind, POLYTEL__RELAXED), sampled;
  if (POLYTEL__LIKELY(kind == POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON)) {
    sampled = parent_sampled != 0; /* the default, decided here: a root (-1) or a sampled parent */
  } else {
    polytel__sampler_t s = {(polytel__sampler_kind_t)kind, 1.0,
                            atomic_load_explicit(&polytel__g_sampler_bound, POLYTEL__RELAXED)};
    sampled = polytel__sampler_should_sample(&s, out->trace_id, parent_sampled);
  }
  out->trace_flags =
      (uint8_t)((flags & ~POLYTEL_TRACE_FLAG_SAMPLED) | (sampled ? POLYTEL_TRACE_FLAG_SAMPLED : 0));
  out->start_ns = start_ns ? start_ns : polytel_now_ns();
  return 0;
}

int polytel_span_start(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out) {
  return span_start(parent, out, 0);
}

/* The wasm binding reads a span's start time itself and starts it in the core only when its ids are first
 * needed or when it ends: the same ids and sampling, without a second clock read. */
int polytel__span_start_at(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out, uint64_t start_ns) {
  return span_start(parent, out, start_ns);
}

void polytel_span_opts_init(polytel_span_opts_t *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
  opts->kind = POLYTEL_SPAN_KIND_INTERNAL;
}

size_t polytel_span_exception_event(polytel_span_event_t *event, polytel_attr_t attrs[3], const char *type,
                                    const char *message, const char *stacktrace) {
  if (!event || !attrs) return 0;
  size_t n = 0;
  if (type) attrs[n++] = POLYTEL_ATTR_STR("exception.type", type);
  if (message) attrs[n++] = POLYTEL_ATTR_STR("exception.message", message);
  if (stacktrace) attrs[n++] = POLYTEL_ATTR_STR("exception.stacktrace", stacktrace);
  event->name = "exception";
  event->time_ns = polytel_now_ns();
  event->attrs = attrs;
  event->n_attrs = n;
  return n;
}

static _Atomic int g_warned_opts, g_warned_kind;

/* The caller's options over the defaults, as far as their struct_size reaches (older callers). */
static void opts_resolve(const polytel_span_opts_t *in, polytel_span_opts_t *o) {
  polytel_span_opts_init(o);
  if (!in) return;
  if (in->struct_size < offsetof(polytel_span_opts_t, kind) + sizeof in->kind) {
    warn_once(
        &g_warned_opts,
        "polytel_span_opts_t was not filled by polytel_span_opts_init() (struct_size too small); the span "
        "is recorded with the default options",
        NULL);
    return;
  }
  memcpy(o, in, in->struct_size < sizeof *o ? in->struct_size : sizeof *o);
  o->struct_size = sizeof *o;
  if ((unsigned)o->kind > POLYTEL_SPAN_KIND_CONSUMER) {
    warn_once(&g_warned_kind, "a span was finished with an unknown kind; recorded as internal", NULL);
    o->kind = POLYTEL_SPAN_KIND_INTERNAL;
  }
}

/* A link worth recording: a span context, or (as the spec asks) a tracestate or attributes beside a zero one.
 */
static int link_valid(const polytel_span_link_t *l) {
  static const uint8_t zero[16];
  if (memcmp(l->ctx.trace_id, zero, 16) != 0 && memcmp(l->ctx.span_id, zero, 8) != 0) return 1;
  return (l->tracestate && *l->tracestate) || (l->attrs && l->n_attrs);
}

typedef struct full_s {
  const polytel_span_ctx_t *span;
  const char *strs[5]; /* name, status message, scope name, scope version, tracestate */
  size_t lens[5];
  const polytel_attr_t *attrs;
  size_t n_attrs;
  const polytel_span_opts_t *o;
  size_t ev_first, ln_first; /* the first event and link kept by the count limits (the newest are kept) */
  uint64_t end_ns;
  uint16_t status;
  uint8_t ext; /* the scope, tracestate, events and links are laid out (a plain finish leaves them out) */
} full_t;

/* A string laid out whole or not at all: a cut tracestate could still parse, and mean something else. */
static size_t str_whole(size_t len, size_t *budget, int *trunc) {
  size_t sz = 8 + POLYTEL__ALIGN8(len);
  if (sz > *budget) {
    *trunc = 1;
    len = 0;
    sz = 8;
  }
  *budget = *budget > sz ? *budget - sz : 0;
  return len;
}

/*
 * EV_SPAN_FULL: hdr(ts = end Unix ns, flags = status) | u64 start | trace[16] span[8] parent[8] |
 * u32 n_attrs, u32 attrs dropped | u8 kind, u8 trace flags, u8 parent remote, u8 ext, pad | str name |
 * str msg | and when ext: u32 n_events, u32 n_links, u32 events dropped, u32 links dropped |
 * str scope name | str scope version | str tracestate | then attrs | and when ext: events | links, where an
 * event is u64 time | u32 n_attrs, u32 attrs dropped | str name | attrs, and a link is trace[16] span[8] |
 * u8 trace flags, u8 remote, pad, u32 n_attrs | u32 attrs dropped, pad | str tracestate | attrs.
 * Sized (p == NULL) and laid out (p) by the same code, so both passes make the same cuts.
 */
/* The fixed part of an EV_SPAN_FULL, but for the attribute counts at p + 56. */
static void full_header(const full_t *f, uint8_t *p, size_t size) {
  const polytel_span_ctx_t *s = f->span;
  polytel__ev_t *ev = (polytel__ev_t *)p;
  ev->type = POLYTEL__EV_SPAN_FULL;
  ev->level = 0;
  ev->flags = f->status;
  ev->size = (uint32_t)size;
  ev->ts = f->end_ns;
  memcpy(p + 16, &s->start_ns, 8);
  memcpy(p + 24, s->trace_id, 16);
  memcpy(p + 40, s->span_id, 8);
  memcpy(p + 48, s->parent_id, 8);
  uint8_t b[8] = {(uint8_t)f->o->kind, s->trace_flags, s->parent_remote != 0, f->ext, 0, 0, 0, 0};
  memcpy(p + 64, b, 8);
}

#define FULL_FIXED 72
#define FULL_EXT 16
static size_t full_layout(const full_t *f, uint8_t *p, int *trunc) {
  const polytel_span_opts_t *o = f->o;
  size_t budget = POLYTEL__MAX_EVENT - 256, size = FULL_FIXED;
  int tr = 0;
  uint8_t *q = p ? p + FULL_FIXED : NULL, *ext = NULL;
  for (int k = 0; k < 5; k++) {
    if (k == 2) {
      if (!f->ext) break;
      ext = q;
      if (q) q += FULL_EXT;
      size += FULL_EXT;
    }
    size_t l = k == 4 ? str_whole(f->lens[k], &budget, &tr) : str_fit(f->lens[k], &budget, &tr);
    size += 8 + POLYTEL__ALIGN8(l);
    if (q) q = put_str(q, f->strs[k], l);
  }

  plan_t pl = {0, 0, budget};
  uint32_t n_ok, n_drop;
  attrs_plan(f->attrs, f->n_attrs, &pl, &n_ok, &n_drop);
  if (q) q = attrs_write(q, f->attrs, f->n_attrs, n_ok, budget);
  size += pl.size;
  budget = pl.budget;
  tr |= pl.trunc;
  if (p) {
    uint32_t h[2] = {n_ok, n_drop};
    memcpy(p + 56, h, 8);
  }

  uint32_t n_ev = 0, ev_dropped = (uint32_t)f->ev_first;
  for (size_t i = f->ev_first; f->ext && i < o->n_events; i++) {
    const polytel_span_event_t *e = &o->events[i];
    if (!e->name) {
      ev_dropped++;
      continue;
    }
    if (budget < 24 + 8) {
      tr = 1;
      ev_dropped += (uint32_t)(o->n_events - i);
      break;
    }
    budget -= 16;
    size_t nl = str_fit(strlen(e->name), &budget, &tr);
    pl = (plan_t){0, 0, budget};
    attrs_plan(e->attrs, e->n_attrs, &pl, &n_ok, &n_drop);
    if (q) {
      uint64_t when = e->time_ns ? e->time_ns : f->end_ns;
      uint32_t h[2] = {n_ok, n_drop};
      memcpy(q, &when, 8);
      memcpy(q + 8, h, 8);
      q = put_str(q + 16, e->name, nl);
      q = attrs_write(q, e->attrs, e->n_attrs, n_ok, budget);
    }
    size += 16 + 8 + POLYTEL__ALIGN8(nl) + pl.size;
    budget = pl.budget;
    tr |= pl.trunc;
    n_ev++;
  }

  uint32_t n_ln = 0, ln_dropped = (uint32_t)f->ln_first;
  for (size_t i = f->ln_first; f->ext && i < o->n_links; i++) {
    const polytel_span_link_t *l = &o->links[i];
    if (!link_valid(l)) {
      ln_dropped++;
      continue;
    }
    if (budget < 40 + 8 + 8) {
      tr = 1;
      ln_dropped += (uint32_t)(o->n_links - i);
      break;
    }
    budget -= 40;
    const char *lts = l->tracestate ? l->tracestate : "";
    size_t ll = str_whole(strlen(lts), &budget, &tr);
    pl = (plan_t){0, 0, budget};
    attrs_plan(l->attrs, l->n_attrs, &pl, &n_ok, &n_drop);
    if (q) {
      memcpy(q, l->ctx.trace_id, 16);
      memcpy(q + 16, l->ctx.span_id, 8);
      uint8_t b[4] = {l->ctx.trace_flags, l->ctx.is_remote != 0, 0, 0};
      memcpy(q + 24, b, 4);
      memcpy(q + 28, &n_ok, 4);
      uint32_t h[2] = {n_drop, 0};
      memcpy(q + 32, h, 8);
      q = put_str(q + 40, lts, ll);
      q = attrs_write(q, l->attrs, l->n_attrs, n_ok, budget);
    }
    size += 40 + 8 + POLYTEL__ALIGN8(ll) + pl.size;
    budget = pl.budget;
    tr |= pl.trunc;
    n_ln++;
  }

  if (p) {
    full_header(f, p, size);
    if (ext) {
      uint32_t h[4] = {n_ev, n_ln, ev_dropped, ln_dropped};
      memcpy(ext, h, 16);
    }
  }
  *trunc = tr;
  return size;
}

/*
 * A span finish's accounting, shared by every finish path so they count alike: NULL when the finish records
 * nothing (*rc says why: 0 not recording or left out by the sampler, counted apart and never a drop; an error
 * for no thread state or no name, each counted), else the thread to write into.
 */
static inline polytel__thread_t *finish_gate(const polytel_span_ctx_t *span, const char *name, int *rc) {
  *rc = 0;
  if (!recording()) return NULL;
  polytel__thread_t *t = polytel__thread();
  if (!t) {
    orphan_drop();
    *rc = POLYTEL_ENOMEM;
    return NULL;
  }
  if (!(span->trace_flags & POLYTEL_TRACE_FLAG_SAMPLED)) {
    polytel__inc(&t->n_sampled_out, 1);
    return NULL;
  }
  polytel__inc(&t->n_spans, 1);
  if (!name) {
    polytel__inc(&t->n_drop_invalid, 1);
    *rc = POLYTEL_EINVAL;
    return NULL;
  }
  return t;
}

static const polytel_span_opts_t k_default_opts = {.struct_size = sizeof(polytel_span_opts_t),
                                                   .kind = POLYTEL_SPAN_KIND_INTERNAL};

int polytel_span_finish_ex(const polytel_span_ctx_t *span, const char *name, polytel_status_t status,
                           const char *status_msg, const polytel_attr_t *attrs, size_t n_attrs,
                           const polytel_span_opts_t *opts) {
  if (!span) return POLYTEL_EINVAL;
  int gate_rc;
  polytel__thread_t *t = finish_gate(span, name, &gate_rc);
  if (!t) return gate_rc;
  if (status > POLYTEL_STATUS_ERROR) status = POLYTEL_STATUS_UNSET;
  polytel_span_opts_t o;
  const polytel_span_opts_t *op = &k_default_opts;
  if (opts) {
    opts_resolve(opts, &o);
    if (!o.events) o.n_events = 0;
    if (!o.links) o.n_links = 0;
    op = &o;
  }
  full_t f;
  memset(&f, 0, sizeof f);
  f.span = span;
  f.strs[0] = name;
  f.strs[1] = status_msg ? status_msg : "";
  f.strs[2] = op->scope_name ? op->scope_name : "";
  f.strs[3] = op->scope_version ? op->scope_version : "";
  f.strs[4] = op->tracestate ? op->tracestate : "";
  for (int k = 0; k < 5; k++) f.lens[k] = k < 2 || f.strs[k][0] ? strlen(f.strs[k]) : 0;
  f.attrs = attrs;
  f.n_attrs = attrs ? n_attrs : 0;
  f.o = op;
  f.status = (uint16_t)status;
  f.ext = f.lens[2] || f.lens[3] || f.lens[4] || op->n_events || op->n_links;
  /* The count limits cut here, before anything is copied; the newest are kept (as the OTel SDKs keep them).
   */
  uint32_t max_ev = atomic_load_explicit(&polytel__limits.events, POLYTEL__RELAXED);
  uint32_t max_ln = atomic_load_explicit(&polytel__limits.links, POLYTEL__RELAXED);
  if (op->n_events > max_ev) f.ev_first = op->n_events - max_ev;
  if (op->n_links > max_ln) f.ln_first = op->n_links - max_ln;
  uint64_t end = op->end_ns ? op->end_ns : polytel_now_ns();
  f.end_ns = end < span->start_ns ? span->start_ns : end;
  int trunc = 0;
  size_t size;
  uint8_t *p;
  if (!op->n_events && !op->n_links) {
    /* The bindings' plain finish (name, status, attributes; a tracer's scope, a tracestate: no events or
     * links): sized and laid out in one go, the bytes full_layout would write. */
    size_t budget = POLYTEL__MAX_EVENT - 256, l[5] = {0, 0, 0, 0, 0};
    int n_str = f.ext ? 5 : 2;
    size = FULL_FIXED + (f.ext ? FULL_EXT : 0);
    for (int k = 0; k < n_str; k++) {
      l[k] = k == 4 ? str_whole(f.lens[k], &budget, &trunc) : str_fit(f.lens[k], &budget, &trunc);
      size += 8 + POLYTEL__ALIGN8(l[k]);
    }
    plan_t pl = {0, 0, budget};
    uint32_t h[2];
    attrs_plan(f.attrs, f.n_attrs, &pl, &h[0], &h[1]);
    size += pl.size;
    trunc |= pl.trunc;
    p = polytel__reserve(t, size);
    if (p) {
      full_header(&f, p, size);
      memcpy(p + 56, h, 8);
      uint8_t *q = put_str(put_str(p + FULL_FIXED, name, l[0]), f.strs[1], l[1]);
      if (f.ext) {
        uint32_t x[4] = {0, 0, 0, 0}; /* n_events, n_links, events dropped, links dropped */
        memcpy(q, x, FULL_EXT);
        q += FULL_EXT;
        for (int k = 2; k < 5; k++) q = put_str(q, f.strs[k], l[k]);
      }
      if (h[0]) attrs_write(q, f.attrs, f.n_attrs, h[0], budget);
    }
  } else {
    size = full_layout(&f, NULL, &trunc);
    p = polytel__reserve(t, size);
    if (p) full_layout(&f, p, &trunc);
  }
  if (!p) {
    polytel__inc(&t->n_drop_full, 1);
    return POLYTEL_EDROPPED;
  }
  polytel__commit(t, size);
  if (trunc) polytel__inc(&t->n_truncated, 1);
  return 0;
}

#ifdef __EMSCRIPTEN__
/* The wasm binding's plain span (a name, a status and its message, a kind, maybe a scope; no attributes,
 * tracestate, events or links), started and finished in one call: the bytes polytel_span_finish_ex's plain
 * finish writes, without its options' init, resolve and copy, its full_t and the lengths of empty strings
 * (profiled: those and their memset/memcpy calls were a third of the record in wasm). */
int polytel__span_plain(const polytel_span_ctx_t *parent, polytel_span_ctx_t *span, uint64_t start_ns,
                        const char *name, polytel_status_t status, const char *status_msg, int kind,
                        const char *scope, const char *scope_version, uint64_t end_ns) {
  int rc = span_start(parent, span, start_ns);
  if (rc) return rc;
  int gate_rc;
  polytel__thread_t *t = finish_gate(span, name, &gate_rc);
  if (!t) return gate_rc;
  if (status > POLYTEL_STATUS_ERROR) status = POLYTEL_STATUS_UNSET;
  if ((unsigned)kind > POLYTEL_SPAN_KIND_CONSUMER) {
    warn_once(&g_warned_kind, "a span was finished with an unknown kind; recorded as internal", NULL);
    kind = POLYTEL_SPAN_KIND_INTERNAL;
  }
  const char *strs[4] = {name, status_msg ? status_msg : "", scope && *scope ? scope : "",
                         scope_version && *scope_version ? scope_version : ""};
  size_t budget = POLYTEL__MAX_EVENT - 256, l[5] = {0, 0, 0, 0, 0};
  int trunc = 0, ext = strs[2][0] || strs[3][0];
  size_t size = FULL_FIXED + (ext ? FULL_EXT : 0);
  for (int k = 0; k < (ext ? 5 : 2); k++) {
    size_t len = k < 2 || (k < 4 && strs[k][0]) ? strlen(strs[k]) : 0;
    l[k] = k == 4 ? str_whole(len, &budget, &trunc) : str_fit(len, &budget, &trunc);
    size += 8 + POLYTEL__ALIGN8(l[k]);
  }
  uint8_t *p = polytel__reserve(t, size);
  if (!p) {
    polytel__inc(&t->n_drop_full, 1);
    return POLYTEL_EDROPPED;
  }
  polytel_span_opts_t o = {.kind = (polytel_span_kind_t)kind};
  full_t f = {.span = span, .o = &o, .status = (uint16_t)status, .ext = (uint8_t)ext};
  if (!end_ns) end_ns = polytel_now_ns();
  f.end_ns = end_ns < span->start_ns ? span->start_ns : end_ns;
  full_header(&f, p, size);
  memset(p + 56, 0, 8); /* no attributes, none dropped */
  uint8_t *q = put_str(put_str(p + FULL_FIXED, name, l[0]), strs[1], l[1]);
  if (ext) {
    memset(q, 0, FULL_EXT); /* n_events, n_links, events dropped, links dropped */
    q += FULL_EXT;
    for (int k = 2; k < 5; k++) q = put_str(q, k < 4 ? strs[k] : "", l[k]);
  }
  polytel__commit(t, size);
  if (trunc) polytel__inc(&t->n_truncated, 1);
  return 0;
}
#endif

int polytel_span_finish(const polytel_span_ctx_t *span, const char *name, polytel_status_t status,
                        const char *status_msg, const polytel_attr_t *attrs, size_t n_attrs) {
  return polytel_span_finish_ex(span, name, status, status_msg, attrs, n_attrs, NULL);
}

/* ---------------------------------------------------------------- metrics */

static void metric_event(int kind, const char *name, const char *unit, int64_t ival, double dval,
                         const polytel_attr_t *attrs, size_t n_attrs);

static _Atomic int g_warned_null_metric;
#define NEGATIVE_DELTA \
  "a counter was given a negative delta (counters are monotonic); the increment is ignored"

static int bad_descriptor(const polytel_metric_t *m) {
  if (POLYTEL__LIKELY(m != NULL && m->name != NULL)) return 0;
  warn_once(&g_warned_null_metric, "a static metric call got a NULL descriptor or name; ignored", NULL);
  return 1;
}

__attribute__((noinline, cold)) static void counter_saturated(const polytel_metric_t *m) {
  polytel__counter_saturated(m->name, strlen(m->name), 1);
}

void polytel_counter_add_static(polytel_metric_t *m, int64_t delta) {
  if (POLYTEL__UNLIKELY(!m)) {
    bad_descriptor(m);
    return;
  }
  uint32_t slot = __atomic_load_n(&m->polytel__slot, __ATOMIC_RELAXED);
  if (POLYTEL__UNLIKELY(slot == 0 || slot == UINT32_MAX || delta < 0)) {
    if (delta < 0) {
      warn_once(&g_warned_negative, NEGATIVE_DELTA, NULL);
      return;
    }
    if (slot == 0) slot = polytel__metric_register(m);
    if (slot == 0 || slot == UINT32_MAX) {
      metric_event(POLYTEL_METRIC_COUNTER, m->name, m->unit, delta, 0, NULL, 0);
      return;
    }
  }
  polytel__thread_t *t = polytel__thread();
  if (POLYTEL__UNLIKELY(!t)) return;
  _Atomic int64_t *c = &t->counters[slot];
  int64_t v;
  if (POLYTEL__UNLIKELY(polytel__sat_add(atomic_load_explicit(c, POLYTEL__RELAXED), delta, &v)))
    counter_saturated(m); /* v is INT64_MAX: the counter stays there */
  atomic_store_explicit(c, v, POLYTEL__RELAXED);
}

void polytel_gauge_set_static(polytel_metric_t *m, double value) {
  if (bad_descriptor(m)) return;
  if (POLYTEL__UNLIKELY(!isfinite(value))) {
    polytel__metric_nonfinite(POLYTEL_METRIC_GAUGE, m->name, strlen(m->name), value);
    return;
  }
  uint64_t bits;
  memcpy(&bits, &value, 8);
  /* Value first, then registration: a registered gauge always has a value. */
  __atomic_store_n(&m->polytel__gauge, bits, __ATOMIC_RELEASE);
  if (POLYTEL__UNLIKELY(__atomic_load_n(&m->polytel__slot, __ATOMIC_RELAXED) == 0)) {
    if (polytel__metric_register(m) == 0)
      metric_event(POLYTEL_METRIC_GAUGE, m->name, m->unit, 0, value, NULL, 0);
  }
}

void polytel_histogram_record_static(polytel_metric_t *m, double value) {
  if (bad_descriptor(m) || !recording()) return;
  polytel__thread_t *t = polytel__thread();
  if (!t) return;
  uint8_t *p = polytel__reserve(t, 32);
  if (!p) {
    polytel__inc(&t->n_drop_full, 0); /* metric samples are not log/span items */
    return;
  }
  polytel__ev_t *ev = (polytel__ev_t *)p;
  ev->type = POLYTEL__EV_HIST_STATIC;
  ev->level = POLYTEL_METRIC_HISTOGRAM;
  ev->flags = 0;
  ev->size = 32;
  ev->ts = 0;
  polytel__put_ptr(p + 16, m);
  memcpy(p + 24, &value, 8);
  polytel__commit(t, 32);
}

/* EV_METRIC: hdr(level = kind) | i64/double value | u32 n_attrs, pad | str name | str unit | attrs */
static void metric_event(int kind, const char *name, const char *unit, int64_t ival, double dval,
                         const polytel_attr_t *attrs, size_t n_attrs) {
  if (!name || !*name) return;
  if (!unit) unit = "";
  if (!recording()) return;
  polytel__thread_t *t = polytel__thread();
  if (!t) return;
  plan_t pl = {.size = 32, .trunc = 0, .budget = 4096};
  size_t nl = str_fit(strlen(name), &pl.budget, &pl.trunc);
  size_t ul = str_fit(strlen(unit), &pl.budget, &pl.trunc);
  pl.size += 16 + POLYTEL__ALIGN8(nl) + POLYTEL__ALIGN8(ul);
  uint32_t n_ok, n_dropped;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok, &n_dropped);
  uint8_t *p = polytel__reserve(t, pl.size);
  if (!p) return;
  polytel__ev_t *ev = (polytel__ev_t *)p;
  ev->type = POLYTEL__EV_METRIC;
  ev->level = (uint8_t)kind;
  ev->flags = 0;
  ev->size = (uint32_t)pl.size;
  ev->ts = 0;
  if (kind == POLYTEL_METRIC_COUNTER)
    memcpy(p + 16, &ival, 8);
  else
    memcpy(p + 16, &dval, 8);
  uint32_t h[2] = {n_ok, n_dropped};
  memcpy(p + 24, h, 8);
  uint8_t *q = put_str(p + 32, name, nl);
  q = put_str(q, unit, ul);
  attrs_write(q, attrs, n_attrs, n_ok, budget0);
  polytel__commit(t, pl.size);
}

void polytel_counter_add(const char *name, const char *unit, int64_t delta, const polytel_attr_t *attrs,
                         size_t n_attrs) {
  if (delta < 0) {
    warn_once(&g_warned_negative, NEGATIVE_DELTA, NULL);
    return;
  }
  metric_event(POLYTEL_METRIC_COUNTER, name, unit, delta, 0, attrs, n_attrs);
}
void polytel_gauge_set(const char *name, const char *unit, double value, const polytel_attr_t *attrs,
                       size_t n_attrs) {
  metric_event(POLYTEL_METRIC_GAUGE, name, unit, 0, value, attrs, n_attrs);
}
void polytel_histogram_record(const char *name, const char *unit, double value, const polytel_attr_t *attrs,
                              size_t n_attrs) {
  metric_event(POLYTEL_METRIC_HISTOGRAM, name, unit, 0, value, attrs, n_attrs);
}
