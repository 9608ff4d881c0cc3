/* consumer.c — drain every thread's block chain in order: replay spans, render logs, feed a sink. */
#include <stdlib.h>
#include <string.h>

#include "record/record.h"

pthread_mutex_t polytel__consume_mu = PTHREAD_MUTEX_INITIALIZER;

/* Consumer-owned copy of an open thread span (its begin's block may be recycled before its end). */
typedef struct polytel__cons_span_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];
  int has_parent;
  uint64_t start_ticks;
  const char *name;
  uint32_t name_len;
  polytel__kv_t *attrs;
  uint32_t n_attrs;
  void *owned; /* name + attrs copy for dynamic begins */
} cons_span_t;

static uint64_t g_rng[2];
static int g_rng_seeded;
static char *g_scratch;     /* rendered log bodies */
static polytel__kv_t *g_kv; /* decoded attributes */
static uint32_t g_kv_cap;

#define SCRATCH_CAP (POLYTEL__BLOCK_SIZE)

static polytel__kv_t *kv_room(uint32_t n) {
  if (n > g_kv_cap) {
    uint32_t cap = g_kv_cap ? g_kv_cap : 64;
    while (cap < n) cap *= 2;
    polytel__kv_t *k = realloc(g_kv, cap * sizeof *k);
    if (!k) return NULL;
    g_kv = k;
    g_kv_cap = cap;
  }
  return g_kv;
}

static const uint8_t *get_str(const uint8_t *p, const char **s, uint32_t *len) {
  memcpy(len, p, 4);
  *s = (const char *)p + 8;
  return p + 8 + POLYTEL__ALIGN8(*len);
}

/* Decode n serialized attributes at p into kv (pointers into the block). */
static const uint8_t *get_attrs(const uint8_t *p, uint32_t n, polytel__kv_t *kv) {
  for (uint32_t i = 0; i < n; i++) {
    polytel__ev_attr_t h;
    memcpy(&h, p, 8);
    kv[i].key = (const char *)p + 8;
    kv[i].key_len = h.key_len;
    kv[i].type = h.type;
    p += 8 + POLYTEL__ALIGN8(h.key_len);
    if (h.type == POLYTEL_ATTR_STRING) {
      kv[i].v.str.ptr = (const char *)p;
      kv[i].v.str.len = h.val_len;
      p += POLYTEL__ALIGN8(h.val_len);
    } else {
      int64_t v;
      memcpy(&v, p, 8);
      if (h.type == POLYTEL_ATTR_DOUBLE)
        memcpy(&kv[i].v.d, &v, 8);
      else if (h.type == POLYTEL_ATTR_BOOL)
        kv[i].v.b = v != 0;
      else
        kv[i].v.i = v;
      p += 8;
    }
  }
  return p;
}

/* Deep copy of a name + attributes into one allocation. */
static void *copy_span_data(const char *name, uint32_t name_len, const polytel__kv_t *kv, uint32_t n,
                            const char **name_out, polytel__kv_t **kv_out) {
  size_t sz = n * sizeof(polytel__kv_t) + name_len + 1;
  for (uint32_t i = 0; i < n; i++)
    sz += kv[i].key_len + 1 + (kv[i].type == POLYTEL_ATTR_STRING ? kv[i].v.str.len + 1 : 0);
  uint8_t *mem = malloc(sz);
  if (!mem) return NULL;
  polytel__kv_t *out = (polytel__kv_t *)mem;
  char *s = (char *)(mem + n * sizeof(polytel__kv_t));
  memcpy(s, name, name_len);
  s[name_len] = '\0';
  *name_out = s;
  s += name_len + 1;
  for (uint32_t i = 0; i < n; i++) {
    out[i] = kv[i];
    memcpy(s, kv[i].key, kv[i].key_len);
    out[i].key = s;
    s += kv[i].key_len + 1;
    if (kv[i].type == POLYTEL_ATTR_STRING) {
      memcpy(s, kv[i].v.str.ptr, kv[i].v.str.len);
      out[i].v.str.ptr = s;
      s += kv[i].v.str.len + 1;
    }
  }
  *kv_out = out;
  return mem;
}

static cons_span_t *push(polytel__thread_t *t) {
  if (t->stack_depth == t->stack_cap) {
    uint32_t cap = t->stack_cap ? t->stack_cap * 2 : 8;
    cons_span_t *s = realloc(t->stack, cap * sizeof *s);
    if (!s) return NULL;
    t->stack = s;
    t->stack_cap = cap;
  }
  cons_span_t *e = &t->stack[t->stack_depth++];
  memset(e, 0, sizeof *e);
  if (t->stack_depth > 1) {
    cons_span_t *parent = &t->stack[t->stack_depth - 2];
    memcpy(e->trace_id, parent->trace_id, 16);
    memcpy(e->parent_id, parent->span_id, 8);
    e->has_parent = 1;
    polytel__gen_ids(g_rng, NULL, e->span_id);
  } else {
    polytel__gen_ids(g_rng, e->trace_id, e->span_id); /* a top-level span starts a trace */
  }
  return e;
}

void polytel__consume_reset_thread(polytel__thread_t *t) {
  for (uint32_t i = 0; i < t->stack_depth; i++) free(t->stack[i].owned);
  t->stack_depth = 0;
}

/* Returns 1 if the event was an item (log or span). */
static int decode(polytel__thread_t *t, const uint8_t *p, const polytel__sink_t *sink,
                  const polytel__clock_conv_t *cc) {
  const polytel__ev_t *ev = (const polytel__ev_t *)p;
  const uint8_t *end = p + ev->size;
  switch (ev->type) {
    case POLYTEL__EV_LOG_FMT: {
      const char *target, *fmt;
      target = polytel__get_ptr(p + 16);
      fmt = polytel__get_ptr(p + 24);
      size_t n = polytel__fmt_render(g_scratch, SCRATCH_CAP, fmt, p + 32, (size_t)(end - (p + 32)));
      polytel__log_rec_t r = {0};
      r.time_ns = polytel__ticks_to_unix(cc, ev->ts);
      r.observed_ns = r.time_ns;
      r.severity = ev->level;
      r.target = target;
      r.target_len = (uint32_t)strlen(target);
      r.body = g_scratch;
      r.body_len = (uint32_t)n;
      r.thread_id = t->id;
      memcpy(r.thread_name, t->name, sizeof r.thread_name);
      if (t->stack_depth) {
        cons_span_t *top = &t->stack[t->stack_depth - 1];
        r.has_span = 1;
        memcpy(r.trace_id, top->trace_id, 16);
        memcpy(r.span_id, top->span_id, 8);
      }
      if (sink->log) sink->log(sink->ctx, &r);
      return 1;
    }
    case POLYTEL__EV_LOG_STR: {
      uint32_t h[2];
      memcpy(h, p + 16, 8);
      const uint8_t *q = p + 24;
      polytel__log_rec_t r = {0};
      if (h[1]) {
        r.has_span = 1;
        memcpy(r.trace_id, q, 16);
        memcpy(r.span_id, q + 16, 8);
        q += 24;
      } else if (t->stack_depth) {
        cons_span_t *top = &t->stack[t->stack_depth - 1];
        r.has_span = 1;
        memcpy(r.trace_id, top->trace_id, 16);
        memcpy(r.span_id, top->span_id, 8);
      }
      q = get_str(q, &r.target, &r.target_len);
      q = get_str(q, &r.body, &r.body_len);
      polytel__kv_t *kv = kv_room(h[0]);
      if (kv) {
        get_attrs(q, h[0], kv);
        r.attrs = kv;
        r.n_attrs = h[0];
      }
      r.time_ns = polytel__ticks_to_unix(cc, ev->ts);
      r.observed_ns = r.time_ns;
      r.severity = ev->level;
      r.thread_id = t->id;
      memcpy(r.thread_name, t->name, sizeof r.thread_name);
      if (sink->log) sink->log(sink->ctx, &r);
      return 1;
    }
    case POLYTEL__EV_SPAN_BEGIN: {
      cons_span_t *e = push(t);
      if (!e) return 0;
      e->name = polytel__get_ptr(p + 16);
      e->name_len = (uint32_t)strlen(e->name);
      e->start_ticks = ev->ts;
      return 0;
    }
    case POLYTEL__EV_SPAN_BEGIN_DYN: {
      uint32_t h[2];
      memcpy(h, p + 16, 8);
      const char *name;
      uint32_t nl;
      const uint8_t *q = get_str(p + 24, &name, &nl);
      polytel__kv_t *kv = kv_room(h[0]);
      cons_span_t *e = push(t);
      if (!e) return 0;
      e->start_ticks = ev->ts;
      if (kv) get_attrs(q, h[0], kv);
      e->owned = copy_span_data(name, nl, kv, kv ? h[0] : 0, &e->name, &e->attrs);
      if (e->owned) {
        e->name_len = nl;
        e->n_attrs = kv ? h[0] : 0;
      } else {
        e->name = "(out of memory)";
        e->name_len = 15;
      }
      return 0;
    }
    case POLYTEL__EV_SPAN_END:
    case POLYTEL__EV_SPAN_END_DYN: {
      if (t->stack_depth == 0) return 0; /* its begin belonged to a parent process */
      cons_span_t *e = &t->stack[t->stack_depth - 1];
      polytel__span_rec_t r = {0};
      memcpy(r.trace_id, e->trace_id, 16);
      memcpy(r.span_id, e->span_id, 8);
      memcpy(r.parent_id, e->parent_id, 8);
      r.has_parent = e->has_parent;
      r.name = e->name;
      r.name_len = e->name_len;
      r.start_ns = polytel__ticks_to_unix(cc, e->start_ticks);
      r.end_ns = polytel__ticks_to_unix(cc, ev->ts);
      if (r.end_ns < r.start_ns) r.end_ns = r.start_ns;
      r.status = ev->flags & 0xff;
      r.thread_id = t->id;
      memcpy(r.thread_name, t->name, sizeof r.thread_name);
      r.attrs = e->attrs;
      r.n_attrs = e->n_attrs;
      if (ev->type == POLYTEL__EV_SPAN_END_DYN) {
        uint32_t h[2];
        memcpy(h, p + 16, 8);
        const uint8_t *q = get_str(p + 24, &r.status_msg, &r.status_msg_len);
        polytel__kv_t *kv = kv_room(e->n_attrs + h[0]);
        if (kv) {
          if (e->n_attrs) memcpy(kv, e->attrs, e->n_attrs * sizeof *kv);
          get_attrs(q, h[0], kv + e->n_attrs);
          r.attrs = kv;
          r.n_attrs = e->n_attrs + h[0];
        }
      }
      if (sink->span) sink->span(sink->ctx, &r);
      free(e->owned);
      t->stack_depth--;
      return 1;
    }
    case POLYTEL__EV_SPAN_FULL: {
      polytel__span_rec_t r = {0};
      memcpy(&r.start_ns, p + 16, 8);
      memcpy(r.trace_id, p + 24, 16);
      memcpy(r.span_id, p + 40, 8);
      memcpy(r.parent_id, p + 48, 8);
      static const uint8_t zero[8];
      r.has_parent = memcmp(r.parent_id, zero, 8) != 0;
      r.end_ns = ev->ts;
      r.status = ev->flags & 0xff;
      uint32_t h[2];
      memcpy(h, p + 56, 8);
      const uint8_t *q = get_str(p + 64, &r.name, &r.name_len);
      q = get_str(q, &r.status_msg, &r.status_msg_len);
      polytel__kv_t *kv = kv_room(h[0]);
      if (kv) {
        get_attrs(q, h[0], kv);
        r.attrs = kv;
        r.n_attrs = h[0];
      }
      r.thread_id = t->id;
      memcpy(r.thread_name, t->name, sizeof r.thread_name);
      if (sink->span) sink->span(sink->ctx, &r);
      return 1;
    }
    case POLYTEL__EV_METRIC: {
      double d;
      int64_t i;
      memcpy(&d, p + 16, 8);
      memcpy(&i, p + 16, 8);
      uint32_t h[2];
      memcpy(h, p + 24, 8);
      const char *name, *unit;
      uint32_t nl, ul;
      const uint8_t *q = get_str(p + 32, &name, &nl);
      q = get_str(q, &unit, &ul);
      polytel__kv_t *kv = kv_room(h[0]);
      if (kv) get_attrs(q, h[0], kv);
      polytel__metrics_event(ev->level, name, nl, unit, ul, d, i, kv, kv ? h[0] : 0);
      return 0;
    }
    case POLYTEL__EV_HIST_STATIC: {
      polytel_metric_t *m;
      double v;
      m = (polytel_metric_t *)(uintptr_t)polytel__get_ptr(p + 16);
      memcpy(&v, p + 24, 8);
      polytel__metrics_hist_static(m, v);
      return 0;
    }
    default:
      return 0;
  }
}

/* Fold an exited thread's counters into the retired totals and free it. Registry lock held. */
static void retire(polytel__thread_t *t) {
  atomic_fetch_add(&polytel__acct.retired_logs, atomic_load(&t->n_logs));
  atomic_fetch_add(&polytel__acct.retired_spans, atomic_load(&t->n_spans));
  atomic_fetch_add(&polytel__acct.retired_drop_full, atomic_load(&t->n_drop_full));
  atomic_fetch_add(&polytel__acct.retired_drop_invalid, atomic_load(&t->n_drop_invalid));
  atomic_fetch_add(&polytel__acct.retired_drop_depth, atomic_load(&t->n_drop_depth));
  atomic_fetch_add(&polytel__acct.retired_truncated, atomic_load(&t->n_truncated));
  for (int i = 0; i < POLYTEL__MAX_STATIC_METRICS; i++) {
    int64_t v = atomic_load_explicit(&t->counters[i], POLYTEL__RELAXED);
    if (!v) continue;
    /* Saturating: past INT64_MAX the total stays there (the snapshot says so), never wraps. */
    int64_t old = atomic_load(&polytel__retired_counters[i]), sum;
    int sat;
    do sat = polytel__sat_add(old, v, &sum);
    while (!atomic_compare_exchange_weak(&polytel__retired_counters[i], &old, sum));
    polytel_metric_t *m = polytel__static_metrics[i];
    if (sat && m && m->name) polytel__counter_total_saturated(m->name, strlen(m->name));
  }
  polytel__consume_reset_thread(t);
  polytel__pool_put(t->head);
  free((void *)t->counters);
  free(t->fmt_cache);
  free(t->stack);
  free(t);
}

uint64_t polytel__consume(const polytel__sink_t *sink, uint64_t max_items) {
  if (!g_scratch) {
    g_scratch = malloc(SCRATCH_CAP);
    if (!g_scratch) return 0;
  }
  if (!g_rng_seeded) {
    polytel__rng_seed(g_rng);
    g_rng_seeded = 1;
  }
  polytel__clock_conv_t cc;
  polytel__clock_conv(&cc);

  /* Snapshot the registry: entries are only freed here, by the consumer. */
  pthread_mutex_lock(&polytel__registry_mu);
  size_t n = 0;
  for (polytel__thread_t *t = polytel__registry; t; t = t->next) n++;
  polytel__thread_t **list = malloc((n ? n : 1) * sizeof *list);
  n = 0;
  if (list)
    for (polytel__thread_t *t = polytel__registry; t; t = t->next) list[n++] = t;
  pthread_mutex_unlock(&polytel__registry_mu);
  if (!list) return 0;

  uint64_t items = 0;
  int any_dead = 0;
  /* A bounded drain starts one thread further each time: a busy thread cannot starve the others. */
  static size_t rotate;
  size_t start = n ? rotate++ % n : 0;
  int count_only = !sink->log && !sink->span;
  for (size_t k = 0; k < n && items < max_items; k++) {
    polytel__thread_t *t = list[(start + k) % n];
    int dead = atomic_load_explicit(&t->dead, memory_order_acquire);
    polytel__block_t *b = t->head;
    while (b && items < max_items) {
      uint32_t committed = atomic_load_explicit(&b->committed, memory_order_acquire);
      const uint8_t *base = (const uint8_t *)b->data;
      if (count_only) {
        /* Nobody reads logs or spans (no exporter): count them, aggregate metrics only. */
        while (b->consumed < committed && items < max_items) {
          const polytel__ev_t *ev = (const polytel__ev_t *)(base + b->consumed);
          uint8_t ty = ev->type;
          if (ty == POLYTEL__EV_METRIC || ty == POLYTEL__EV_HIST_STATIC)
            decode(t, (const uint8_t *)ev, sink, &cc);
          else
            items += ty == POLYTEL__EV_LOG_FMT || ty == POLYTEL__EV_LOG_STR || ty == POLYTEL__EV_SPAN_END ||
                     ty == POLYTEL__EV_SPAN_END_DYN || ty == POLYTEL__EV_SPAN_FULL;
          b->consumed += ev->size;
        }
      } else {
        while (b->consumed < committed && items < max_items) {
          const polytel__ev_t *ev = (const polytel__ev_t *)(base + b->consumed);
          items += (uint64_t)decode(t, (const uint8_t *)ev, sink, &cc);
          b->consumed += ev->size;
        }
      }
      if (b->consumed < committed) break;
      if (!atomic_load_explicit(&b->sealed, memory_order_acquire)) break;
      /* Sealed: committed is final once the seal is seen. */
      if (b->consumed < atomic_load_explicit(&b->committed, memory_order_acquire)) continue;
      polytel__block_t *next = b->next;
      polytel__pool_put(b);
      b = next;
      t->head = b;
    }
    if (dead && t->head && !atomic_load(&t->head->sealed) &&
        t->head->consumed == atomic_load(&t->head->committed))
      any_dead = 1;
  }
  free(list);

  if (any_dead) {
    pthread_mutex_lock(&polytel__registry_mu);
    polytel__thread_t **pp = &polytel__registry;
    while (*pp) {
      polytel__thread_t *t = *pp;
      if (atomic_load_explicit(&t->dead, memory_order_acquire) && t->head && !atomic_load(&t->head->sealed) &&
          t->head->consumed == atomic_load(&t->head->committed)) {
        *pp = t->next;
        retire(t);
      } else {
        pp = &t->next;
      }
    }
    pthread_mutex_unlock(&polytel__registry_mu);
  }
  return items;
}

void polytel_thread_set_name(const char *name) {
  if (!name) return;
  polytel__thread_t *t = polytel__thread();
  if (!t) return;
  size_t n = strnlen(name, sizeof t->name - 1);
  /* A cut inside a UTF-8 sequence would reach the wire as U+FFFD: cut before it. */
  if (n == sizeof t->name - 1 && name[n] != '\0')
    while (n && ((uint8_t)name[n] & 0xC0) == 0x80) n--;
  /* The consumer reads the name under this lock; the calling thread takes it once, not per event. */
  pthread_mutex_lock(&polytel__consume_mu);
  memcpy(t->name, name, n);
  t->name[n] = '\0';
  pthread_mutex_unlock(&polytel__consume_mu);
}

/* Fork child: ids must never repeat the parent's. */
void polytel__consume_fork_child(void) {
  /* Before buffers.c frees the parent's threads: their replay stacks hold copies the child owns now. */
  for (polytel__thread_t *t = polytel__registry; t; t = t->next) polytel__consume_reset_thread(t);
  polytel__rng_seed(g_rng);
  g_rng_seeded = 1;
}
