/* events.c — the hot path: logs, spans and metrics recorded into the calling thread's block. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "internal.h"

_Atomic int polytel__g_record_level = POLYTEL_LEVEL_OFF;
_Atomic int polytel__g_min_level = 0; /* 0: never initialized, the first event initializes */
_Atomic int polytel__g_console_level = POLYTEL_LEVEL_INFO;
_Atomic int polytel__g_recording = 0;

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
    polytel__implicit_init();
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
  size_t k = a->key ? strlen(a->key) : 0;
  return k > 255 ? 255 : k;
}

static size_t attrs_plan(const polytel_attr_t *attrs, size_t n, plan_t *pl, uint32_t *n_ok) {
  size_t total = 0;
  *n_ok = 0;
  for (size_t i = 0; i < n && attrs; i++) {
    const polytel_attr_t *a = &attrs[i];
    if (!a->key || a->type < POLYTEL_ATTR_STRING || a->type > POLYTEL_ATTR_BOOL) continue;
    size_t kl = attr_key_len(a);
    size_t need = 8 + POLYTEL__ALIGN8(kl);
    if (need + 8 > pl->budget) {
      pl->trunc = 1;
      break;
    }
    pl->budget -= need;
    size_t vsz = 8;
    if (a->type == POLYTEL_ATTR_STRING) {
      size_t vl = a->value.str.ptr ? a->value.str.len : 0;
      if (vl > pl->budget) {
        pl->trunc = 1;
        vl = pl->budget;
      }
      vsz = POLYTEL__ALIGN8(vl);
    }
    pl->budget = pl->budget > vsz ? pl->budget - vsz : 0;
    total += need + vsz;
    (*n_ok)++;
  }
  pl->size += total;
  return total;
}

static uint8_t *attrs_write(uint8_t *p, const polytel_attr_t *attrs, size_t n, uint32_t n_ok,
                            size_t *budget) {
  uint32_t done = 0;
  for (size_t i = 0; i < n && done < n_ok; i++) {
    const polytel_attr_t *a = &attrs[i];
    if (!a->key || a->type < POLYTEL_ATTR_STRING || a->type > POLYTEL_ATTR_BOOL) continue;
    size_t kl = attr_key_len(a);
    size_t need = 8 + POLYTEL__ALIGN8(kl);
    *budget -= need;
    polytel__ev_attr_t h = {.type = (uint8_t)a->type, .key_len = (uint16_t)kl};
    size_t vl = 8;
    if (a->type == POLYTEL_ATTR_STRING) {
      vl = a->value.str.ptr ? a->value.str.len : 0;
      if (vl > *budget) vl = *budget;
      h.val_len = (uint32_t)vl;
    }
    memcpy(p, &h, 8);
    memcpy(p + 8, a->key, kl);
    if (POLYTEL__ALIGN8(kl) > kl) memset(p + 8 + kl, 0, POLYTEL__ALIGN8(kl) - kl);
    p += need;
    if (a->type == POLYTEL_ATTR_STRING) {
      if (vl) memcpy(p, a->value.str.ptr, vl);
      size_t padded = POLYTEL__ALIGN8(vl);
      if (padded > vl) memset(p + vl, 0, padded - vl);
      p += padded;
      *budget = *budget > padded ? *budget - padded : 0;
    } else {
      int64_t v = 0;
      if (a->type == POLYTEL_ATTR_INT)
        v = a->value.i;
      else if (a->type == POLYTEL_ATTR_DOUBLE)
        memcpy(&v, &a->value.d, 8);
      else
        v = a->value.b ? 1 : 0;
      memcpy(p, &v, 8);
      p += 8;
      *budget = *budget > 8 ? *budget - 8 : 0;
    }
    done++;
  }
  return p;
}

/* ------------------------------------------------------ dynamic logs */

/*
 * EV_LOG_STR: hdr | u32 n_attrs, u32 has_span | trace_id[16] span_id[8] (if has_span) |
 * str target | str msg | attrs
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
      plan_t pl = {.size = 24, .trunc = 0, .budget = POLYTEL__MAX_EVENT - 64};
      int has_span = span != NULL;
      if (has_span) pl.size += 24;
      size_t tl = str_fit(strlen(target), &pl.budget, &pl.trunc);
      size_t ml = str_fit(msg_len, &pl.budget, &pl.trunc);
      pl.size += 16 + POLYTEL__ALIGN8(tl) + POLYTEL__ALIGN8(ml);
      uint32_t n_ok;
      size_t budget0 = pl.budget;
      attrs_plan(attrs, n_attrs, &pl, &n_ok);
      uint8_t *p = polytel__reserve(t, pl.size);
      if (p) {
        polytel__ev_t *ev = (polytel__ev_t *)p;
        ev->type = POLYTEL__EV_LOG_STR;
        ev->level = (uint8_t)level;
        ev->flags = 0;
        ev->size = (uint32_t)pl.size;
        ev->ts = polytel__ticks();
        uint32_t hdr2[2] = {n_ok, (uint32_t)has_span};
        memcpy(p + 16, hdr2, 8);
        uint8_t *q = p + 24;
        if (has_span) {
          memcpy(q, span->trace_id, 16);
          memcpy(q + 16, span->span_id, 8);
          q += 24;
        }
        q = put_str(q, target, tl);
        q = put_str(q, msg, ml);
        attrs_write(q, attrs, n_attrs, n_ok, &budget0);
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
    polytel__implicit_init();
    min = MIN_LEVEL();
  }
  if ((int)level < min) return;
  polytel_log_attrs_ts(level, target, msg, msg_len, attrs, n_attrs, span, (int)level >= CON_LEVEL());
}

/* ------------------------------------------------------------ thread spans */

static inline int recording(void) {
  if (POLYTEL__LIKELY(atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED))) return 1;
  if (MIN_LEVEL() == 0) {
    polytel__implicit_init();
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
__attribute__((noinline, cold)) static void span_begin_slow(const char *name, uint64_t kind_bits) {
  uint8_t *p;
  polytel__thread_t *t = begin_prologue(name, 24, &p);
  if (!t) return;
  uint64_t hdr = t->begin_hdr | kind_bits, ts = polytel__ticks();
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
 * run the same instructions: the region's decision is in begin_hdr (see context.c).
 */
static inline __attribute__((always_inline)) void span_begin(const char *name, uint64_t kind_bits) {
  polytel__thread_t *t = polytel__tls;
  /* 24 bytes now, and the 16 its end will need stay reserved below lim. */
  if (POLYTEL__LIKELY(t != NULL && atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED) &&
                      t->depth < t->fast_depth && name != NULL &&
                      t->pos + 24 + POLYTEL__END_RESERVE <= t->lim)) {
    /* Every field read before the event is written: the stores through p could alias t's. */
    uint8_t *p = t->pos, *lim = t->lim;
    polytel__block_t *cur = t->cur;
    uint32_t d = t->depth;
    uint64_t seq = t->seq + 1, hdr = t->begin_hdr | kind_bits, ts = polytel__ticks_fast();
    memcpy(p, &hdr, 8);
    memcpy(p + 8, &ts, 8);
    polytel__put_ptr(p + 16, name);
    t->seq = seq; /* the span's id number (context.c) */
    t->open_seq[d] = seq;
    t->depth = d + 1;
    t->lim = lim - POLYTEL__END_RESERVE; /* == adjust_reserve() below the depth limit */
    t->pos = p + 24;
    atomic_store_explicit(&cur->committed, (uint32_t)(p + 24 - (uint8_t *)cur->data), memory_order_release);
    return;
  }
  span_begin_slow(name, kind_bits);
}

void polytel_span_begin(const char *name) {
  span_begin(name, 0);
}

/* EV_SPAN_BEGIN_DYN: hdr(flags: decision, kind) | u32 n_attrs, pad | str name | attrs */
void polytel_span_begin_dyn(const char *name, const polytel_attr_t *attrs, size_t n_attrs) {
  plan_t pl = {.size = 24, .trunc = 0, .budget = POLYTEL__MAX_EVENT - 64};
  size_t nl = str_fit(name ? strlen(name) : 0, &pl.budget, &pl.trunc);
  pl.size += 8 + POLYTEL__ALIGN8(nl);
  uint32_t n_ok;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok);
  uint8_t *p;
  polytel__thread_t *t = begin_prologue(name, pl.size, &p);
  if (!t) return;
  polytel__ev_t *ev = (polytel__ev_t *)p;
  uint64_t hdr = t->begin_hdr;
  memcpy(ev, &hdr, 8);
  ev->type = POLYTEL__EV_SPAN_BEGIN_DYN;
  ev->size = (uint32_t)pl.size;
  ev->ts = polytel__ticks();
  uint32_t h[2] = {n_ok, 0};
  memcpy(p + 16, h, 8);
  uint8_t *q = put_str(p + 24, name, nl);
  attrs_write(q, attrs, n_attrs, n_ok, &budget0);
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

/*
 * The common case: a recorded span within the depth limit ends, in the region it was begun in (sampled or
 * not: the same instructions, span_ctr says where it counts). Everything else takes end_prologue.
 */
static inline void span_end(void) {
  polytel__thread_t *t = polytel__tls;
  if (POLYTEL__LIKELY(t != NULL)) {
    uint32_t d = t->depth - 1; /* wraps to UINT32_MAX at depth 0: the slow path */
    if (POLYTEL__LIKELY(d < POLYTEL__MAX_DEPTH && !((t->slow_mask >> d) & 1))) {
      t->depth = d;
      polytel__inc(t->span_ctr, 1);
      *(polytel__ev_t *)t->pos = (polytel__ev_t){POLYTEL__EV_SPAN_END, 0, 0, 16, polytel__ticks_fast()};
      t->lim += POLYTEL__END_RESERVE; /* == adjust_reserve() below the depth limit */
      polytel__commit(t, 16);
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

/* EV_SPAN_END_DYN: hdr(flags = status) | u32 n_attrs, pad | str msg | attrs */
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
  uint32_t n_ok;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok);
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
  uint32_t h[2] = {n_ok, 0};
  memcpy(p + 16, h, 8);
  uint8_t *q = put_str(p + 24, msg ? msg : "", ml);
  attrs_write(q, attrs, n_attrs, n_ok, &budget0);
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

int polytel_span_start(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out) {
  if (!out) return POLYTEL_EINVAL;
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
  if (has_parent) {
    memcpy(out->trace_id, parent->trace_id, 16);
    memcpy(out->parent_id, parent->span_id, 8);
  }
  out->trace_flags = has_parent ? parent->trace_flags : POLYTEL_TRACE_FLAG_SAMPLED; /* no sampler yet */
  out->start_ns = polytel_now_ns();
  return 0;
}

/* EV_SPAN_FULL: hdr(ts = end Unix ns, flags = status) | u64 start | trace[16] span[8] parent[8] |
 * u32 n_attrs, pad | str name | str msg | attrs */
int polytel_span_finish(const polytel_span_ctx_t *span, const char *name, polytel_status_t status,
                        const char *status_msg, const polytel_attr_t *attrs, size_t n_attrs) {
  if (!span) return POLYTEL_EINVAL;
  if (!recording()) return 0;
  polytel__thread_t *t = polytel__thread();
  if (!t) {
    orphan_drop();
    return POLYTEL_ENOMEM;
  }
  polytel__inc(&t->n_spans, 1);
  if (!name) {
    polytel__inc(&t->n_drop_invalid, 1);
    return POLYTEL_EINVAL;
  }
  if (status > POLYTEL_STATUS_ERROR) status = POLYTEL_STATUS_UNSET;
  plan_t pl = {.size = 16 + 8 + 32 + 8, .trunc = 0, .budget = POLYTEL__MAX_EVENT - 128};
  size_t nl = str_fit(strlen(name), &pl.budget, &pl.trunc);
  size_t ml = str_fit(status_msg ? strlen(status_msg) : 0, &pl.budget, &pl.trunc);
  pl.size += 16 + POLYTEL__ALIGN8(nl) + POLYTEL__ALIGN8(ml);
  uint32_t n_ok;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok);
  uint8_t *p = polytel__reserve(t, pl.size);
  if (!p) {
    polytel__inc(&t->n_drop_full, 1);
    return POLYTEL_EDROPPED;
  }
  polytel__ev_t *ev = (polytel__ev_t *)p;
  ev->type = POLYTEL__EV_SPAN_FULL;
  ev->level = 0;
  ev->flags = (uint16_t)status;
  ev->size = (uint32_t)pl.size;
  uint64_t end = polytel_now_ns();
  ev->ts = end < span->start_ns ? span->start_ns : end;
  memcpy(p + 16, &span->start_ns, 8);
  memcpy(p + 24, span->trace_id, 16);
  memcpy(p + 40, span->span_id, 8);
  memcpy(p + 48, span->parent_id, 8);
  uint32_t h[2] = {n_ok, 0};
  memcpy(p + 56, h, 8);
  uint8_t *q = put_str(p + 64, name, nl);
  q = put_str(q, status_msg ? status_msg : "", ml);
  attrs_write(q, attrs, n_attrs, n_ok, &budget0);
  polytel__commit(t, pl.size);
  if (pl.trunc) polytel__inc(&t->n_truncated, 1);
  return 0;
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
  uint32_t n_ok;
  size_t budget0 = pl.budget;
  attrs_plan(attrs, n_attrs, &pl, &n_ok);
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
  uint32_t h[2] = {n_ok, 0};
  memcpy(p + 24, h, 8);
  uint8_t *q = put_str(p + 32, name, nl);
  q = put_str(q, unit, ul);
  attrs_write(q, attrs, n_attrs, n_ok, &budget0);
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
