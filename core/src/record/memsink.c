/* memsink.c — the in-process memory sink: decoded records kept for tests and embedders. */
#include <stdlib.h>
#include <string.h>

#include "record/record.h"

pthread_mutex_t polytel__memsink_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_active;
static polytel_record_t *g_recs; /* ring: g_head is the oldest */
static size_t g_cap, g_count, g_head;
static polytel_record_t *g_view; /* ordered copy handed to readers */

int polytel__memsink_active(void) {
  return atomic_load_explicit(&g_active, POLYTEL__RELAXED);
}

static void rec_free(polytel_record_t *r) {
  free((void *)r->name); /* everything the record points to shares this allocation */
  memset(r, 0, sizeof *r);
}

/*
 * One allocation per record, laid out by a bump allocator that first only measures (base NULL), then
 * writes: the name first (rec_free frees it), then every string, attribute and array of the record.
 */
typedef struct bump_s {
  char *base;
  size_t off;
} bump_t;

static void *bump(bump_t *b, size_t n, size_t align) {
  b->off = (b->off + align - 1) & ~(align - 1);
  void *p = b->base ? b->base + b->off : NULL;
  b->off += n;
  return p;
}

static const char *bump_str(bump_t *b, const char *s, size_t n) {
  char *p = bump(b, n + 1, 1);
  if (p) {
    if (n) memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* Public attributes (arrays as arrays of their element type) from decoded ones. */
static const polytel_attr_t *bump_attrs(bump_t *b, const polytel__kv_t *kv, uint32_t n) {
  polytel_attr_t *attrs = bump(b, n * sizeof(polytel_attr_t), 8);
  for (uint32_t i = 0; i < n; i++) {
    polytel_attr_t a;
    memset(&a, 0, sizeof a);
    a.key = bump_str(b, kv[i].key, kv[i].key_len);
    a.type = (polytel_attr_type_t)kv[i].type;
    const char *p = kv[i].v.str.ptr;
    uint32_t len = kv[i].v.str.len,
             cnt = polytel__is_array(kv[i].type) ? polytel__arr_count(kv[i].type, p, len) : 0;
    switch (kv[i].type) {
      case POLYTEL_ATTR_STRING:
        a.value.str.ptr = bump_str(b, p, len);
        a.value.str.len = len;
        break;
      case POLYTEL_ATTR_INT:
        a.value.i = kv[i].v.i;
        break;
      case POLYTEL_ATTR_DOUBLE:
        a.value.d = kv[i].v.d;
        break;
      case POLYTEL_ATTR_BOOL:
        a.value.b = kv[i].v.b;
        break;
      case POLYTEL_ATTR_STRING_ARRAY: {
        polytel_str_t *e = bump(b, cnt * sizeof *e, 8);
        uint32_t off = 0, l;
        for (uint32_t k = 0; k < cnt; k++) {
          const char *s = polytel__arr_str(p, &off, &l);
          const char *c = bump_str(b, s, l);
          if (e) e[k] = (polytel_str_t){c, l};
        }
        a.value.arr.ptr = e;
        break;
      }
      case POLYTEL_ATTR_INT_ARRAY:
      case POLYTEL_ATTR_DOUBLE_ARRAY: {
        void *e = bump(b, 8 * (size_t)cnt, 8);
        if (e && cnt) memcpy(e, p, 8 * (size_t)cnt);
        a.value.arr.ptr = e;
        break;
      }
      case POLYTEL_ATTR_BOOL_ARRAY: {
        int *e = bump(b, cnt * sizeof *e, sizeof(int));
        for (uint32_t k = 0; e && k < cnt; k++) e[k] = p[k] != 0;
        a.value.arr.ptr = e;
        break;
      }
      default:
        break;
    }
    a.value.arr.len = polytel__is_array(kv[i].type) ? cnt : a.value.arr.len;
    if (attrs) attrs[i] = a;
  }
  return attrs;
}

typedef struct fill_s {
  const char *name, *body, *unit;
  size_t nl, bl;
  const polytel__kv_t *kv;
  uint32_t n;
  const polytel__span_rec_t *span; /* spans: scope, tracestate, events, links */
  const char *scope;               /* logs: the target */
  size_t scope_len;
} fill_t;

static void fill_layout(bump_t *b, polytel_record_t *r, const fill_t *f) {
  polytel_record_t w;
  memset(&w, 0, sizeof w);
  w.name = bump_str(b, f->name, f->nl);
  w.body = bump_str(b, f->body, f->bl);
  w.unit = bump_str(b, f->unit ? f->unit : "", f->unit ? strlen(f->unit) : 0);
  w.attrs = bump_attrs(b, f->kv, f->n);
  const polytel__span_rec_t *s = f->span;
  if (s) {
    const char *sn = s->scope_name_len ? s->scope_name : POLYTEL__SCOPE_NAME;
    size_t snl = s->scope_name_len ? s->scope_name_len : strlen(POLYTEL__SCOPE_NAME);
    const char *sv = s->scope_name_len ? (s->scope_version ? s->scope_version : "") : POLYTEL_VERSION_STRING;
    size_t svl = s->scope_name_len ? s->scope_version_len : strlen(POLYTEL_VERSION_STRING);
    w.scope_name = bump_str(b, sn, snl);
    w.scope_version = bump_str(b, sv, svl);
    w.trace_state = bump_str(b, s->trace_state ? s->trace_state : "", s->trace_state_len);
    polytel_record_event_t *ev = bump(b, s->n_events * sizeof *ev, 8);
    for (uint32_t i = 0; i < s->n_events; i++) {
      const polytel__event_rec_t *e = &s->events[i];
      polytel_record_event_t x = {bump_str(b, e->name, e->name_len), e->time_ns, e->n_attrs,
                                  bump_attrs(b, e->attrs, e->n_attrs), e->dropped_attrs};
      if (ev) ev[i] = x;
    }
    polytel_record_link_t *ln = bump(b, s->n_links * sizeof *ln, 8);
    for (uint32_t i = 0; i < s->n_links; i++) {
      const polytel__link_rec_t *l = &s->links[i];
      polytel_record_link_t x;
      memset(&x, 0, sizeof x);
      memcpy(x.trace_id, l->trace_id, 16);
      memcpy(x.span_id, l->span_id, 8);
      x.flags = l->flags;
      x.trace_state = bump_str(b, l->trace_state ? l->trace_state : "", l->trace_state_len);
      x.n_attrs = l->n_attrs;
      x.attrs = bump_attrs(b, l->attrs, l->n_attrs);
      x.dropped_attrs = l->dropped_attrs;
      if (ln) ln[i] = x;
    }
    w.events = ev;
    w.n_events = s->n_events;
    w.links = ln;
    w.n_links = s->n_links;
  } else {
    w.scope_name = bump_str(b, f->scope ? f->scope : "", f->scope_len);
    w.scope_version = bump_str(b, "", 0);
    w.trace_state = w.scope_version;
  }
  if (!b->base) return;
  r->name = w.name;
  r->body = w.body;
  r->unit = w.unit;
  r->attrs = w.attrs;
  r->n_attrs = f->n;
  r->scope_name = w.scope_name;
  r->scope_version = w.scope_version;
  r->trace_state = w.trace_state;
  r->events = w.events;
  r->n_events = w.n_events;
  r->links = w.links;
  r->n_links = w.n_links;
}

static int rec_fill(polytel_record_t *r, const fill_t *f) {
  bump_t b = {NULL, 0};
  fill_layout(&b, r, f);
  b.base = malloc(b.off ? b.off : 1);
  if (!b.base) return POLYTEL_ENOMEM;
  b.off = 0;
  fill_layout(&b, r, f);
  return 0;
}

static polytel_record_t *slot(void) {
  if (!g_cap) return NULL;
  polytel_record_t *r;
  if (g_count == g_cap) { /* full: the oldest goes */
    r = &g_recs[g_head];
    rec_free(r);
    g_head = (g_head + 1) % g_cap;
    g_count--;
  }
  r = &g_recs[(g_head + g_count) % g_cap];
  g_count++;
  memset(r, 0, sizeof *r);
  return r;
}

static void sink_log(void *ctx, const polytel__log_rec_t *l) {
  (void)ctx;
  pthread_mutex_lock(&polytel__memsink_mu);
  polytel_record_t *r = slot();
  if (r) {
    r->kind = POLYTEL_RECORD_LOG;
    r->time_ns = l->time_ns;
    r->level = l->severity;
    r->thread_id = l->thread_id;
    memcpy(r->thread_name, l->thread_name, sizeof r->thread_name);
    if (l->has_span) {
      memcpy(r->trace_id, l->trace_id, 16);
      memcpy(r->span_id, l->span_id, 8);
    }
    r->flags = l->flags;
    r->dropped_attrs = l->dropped_attrs;
    fill_t f = {l->target, l->body,    NULL, l->target_len, l->body_len,
                l->attrs,  l->n_attrs, NULL, l->target,     l->target_len};
    if (rec_fill(r, &f)) g_count--;
  }
  pthread_mutex_unlock(&polytel__memsink_mu);
  atomic_fetch_add(&polytel__acct.exported, 1);
}

static void sink_span(void *ctx, const polytel__span_rec_t *s) {
  (void)ctx;
  pthread_mutex_lock(&polytel__memsink_mu);
  polytel_record_t *r = slot();
  if (r) {
    r->kind = POLYTEL_RECORD_SPAN;
    r->time_ns = s->end_ns;
    r->start_ns = s->start_ns;
    r->status = s->status;
    r->thread_id = s->thread_id;
    memcpy(r->thread_name, s->thread_name, sizeof r->thread_name);
    memcpy(r->trace_id, s->trace_id, 16);
    memcpy(r->span_id, s->span_id, 8);
    if (s->has_parent) memcpy(r->parent_id, s->parent_id, 8);
    r->span_kind = (polytel_span_kind_t)s->kind;
    r->flags = s->flags;
    r->dropped_attrs = s->dropped_attrs;
    r->dropped_events = s->dropped_events;
    r->dropped_links = s->dropped_links;
    fill_t f = {s->name,
                s->status_msg ? s->status_msg : "",
                NULL,
                s->name_len,
                s->status_msg_len,
                s->attrs,
                s->n_attrs,
                s,
                NULL,
                0};
    if (rec_fill(r, &f)) g_count--;
  }
  pthread_mutex_unlock(&polytel__memsink_mu);
  atomic_fetch_add(&polytel__acct.exported, 1);
}

const polytel__sink_t polytel__memsink_sink = {sink_log, sink_span, NULL, NULL};

int polytel_memory_sink_enable(size_t capacity) {
  if (capacity == 0) return POLYTEL_EINVAL;
  pthread_mutex_lock(&polytel__memsink_mu);
  for (size_t i = 0; i < g_count; i++) rec_free(&g_recs[(g_head + i) % g_cap]);
  free(g_recs);
  free(g_view);
  g_view = NULL;
  g_recs = calloc(capacity, sizeof *g_recs);
  g_cap = g_recs ? capacity : 0;
  g_count = g_head = 0;
  pthread_mutex_unlock(&polytel__memsink_mu);
  if (!g_recs) return POLYTEL_ENOMEM;
  atomic_store(&g_active, 1);
  polytel__levels_update();
  return 0;
}

void polytel_memory_sink_clear(void) {
  pthread_mutex_lock(&polytel__memsink_mu);
  for (size_t i = 0; i < g_count; i++) rec_free(&g_recs[(g_head + i) % g_cap]);
  g_count = g_head = 0;
  free(g_view);
  g_view = NULL;
  pthread_mutex_unlock(&polytel__memsink_mu);
}

void polytel_memory_sink_disable(void) {
  atomic_store(&g_active, 0);
  polytel_memory_sink_clear();
  pthread_mutex_lock(&polytel__memsink_mu);
  free(g_recs);
  g_recs = NULL;
  g_cap = 0;
  pthread_mutex_unlock(&polytel__memsink_mu);
  polytel__levels_update();
}

/* Metric records are a snapshot: each collect replaces the previous one. */
static void add_metrics(void) {
  polytel__metrics_snap_t snap;
  if (polytel__metrics_snapshot(&snap, polytel_now_ns()) != 0) return;
  pthread_mutex_lock(&polytel__memsink_mu);
  /* Drop old metric records, keeping order of the rest. */
  size_t w = 0;
  for (size_t i = 0; i < g_count; i++) {
    polytel_record_t *r = &g_recs[(g_head + i) % g_cap];
    if (r->kind == POLYTEL_RECORD_METRIC) {
      rec_free(r);
      continue;
    }
    if (w != i) {
      g_recs[(g_head + w) % g_cap] = *r;
      memset(r, 0, sizeof *r);
    }
    w++;
  }
  g_count = w;
  for (size_t i = 0; i < snap.n; i++) {
    const polytel__metric_rec_t *m = &snap.recs[i];
    for (uint32_t j = 0; j < m->n_points; j++) {
      const polytel__point_t *pt = &m->points[j];
      polytel_record_t *r = slot();
      if (!r) break;
      r->kind = POLYTEL_RECORD_METRIC;
      r->metric_kind = (polytel_metric_kind_t)m->kind;
      r->time_ns = pt->time_ns;
      r->start_ns = pt->start_ns;
      if (m->kind == POLYTEL_METRIC_COUNTER)
        r->int_value = pt->v.i;
      else if (m->kind == POLYTEL_METRIC_GAUGE)
        r->double_value = pt->v.d;
      else {
        r->double_value = pt->sum;
        r->count = pt->count;
      }
      fill_t f = {m->name,   "",          m->unit, strlen(m->name),     0,
                  pt->attrs, pt->n_attrs, NULL,    POLYTEL__SCOPE_NAME, strlen(POLYTEL__SCOPE_NAME)};
      if (rec_fill(r, &f)) g_count--;
    }
  }
  pthread_mutex_unlock(&polytel__memsink_mu);
  polytel__metrics_snap_free(&snap);
}

int polytel_memory_sink_collect(void) {
  if (!polytel__memsink_active()) return POLYTEL_ESTATE;
  pthread_mutex_lock(&polytel__consume_mu);
  polytel__consume(&polytel__memsink_sink, UINT64_MAX);
  add_metrics();
  pthread_mutex_unlock(&polytel__consume_mu);
  return 0;
}

size_t polytel_memory_sink_count(void) {
  pthread_mutex_lock(&polytel__memsink_mu);
  size_t n = g_count;
  pthread_mutex_unlock(&polytel__memsink_mu);
  return n;
}

const polytel_record_t *polytel_memory_sink_get(size_t i) {
  pthread_mutex_lock(&polytel__memsink_mu);
  const polytel_record_t *r = i < g_count ? &g_recs[(g_head + i) % g_cap] : NULL;
  pthread_mutex_unlock(&polytel__memsink_mu);
  return r;
}
