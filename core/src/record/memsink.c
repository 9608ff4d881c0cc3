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
  free((void *)r->name); /* name, body, unit and attrs share this allocation */
  memset(r, 0, sizeof *r);
}

/* One allocation per record: attrs array, then NUL-terminated strings. */
static int rec_fill(polytel_record_t *r, const char *name, size_t nl, const char *body, size_t bl,
                    const char *unit, const polytel__kv_t *kv, uint32_t n) {
  size_t sz = nl + 1 + bl + 1 + (unit ? strlen(unit) : 0) + 1 + n * sizeof(polytel_attr_t) + 8;
  for (uint32_t i = 0; i < n; i++)
    sz += kv[i].key_len + 1 + (kv[i].type == POLYTEL_ATTR_STRING ? kv[i].v.str.len + 1 : 0);
  char *mem = malloc(sz);
  if (!mem) return POLYTEL_ENOMEM;
  char *p = mem;
  r->name = p;
  memcpy(p, name, nl);
  p[nl] = '\0';
  p += nl + 1;
  r->body = p;
  if (bl) memcpy(p, body, bl);
  p[bl] = '\0';
  p += bl + 1;
  size_t ul = unit ? strlen(unit) : 0;
  r->unit = p;
  if (ul) memcpy(p, unit, ul);
  p[ul] = '\0';
  p += ul + 1;
  p = (char *)(((uintptr_t)p + 7) & ~(uintptr_t)7);
  polytel_attr_t *attrs = (polytel_attr_t *)p;
  p += n * sizeof(polytel_attr_t);
  for (uint32_t i = 0; i < n; i++) {
    memcpy(p, kv[i].key, kv[i].key_len);
    p[kv[i].key_len] = '\0';
    attrs[i].key = p;
    p += kv[i].key_len + 1;
    attrs[i].type = (polytel_attr_type_t)kv[i].type;
    switch (kv[i].type) {
      case POLYTEL_ATTR_STRING:
        memcpy(p, kv[i].v.str.ptr, kv[i].v.str.len);
        p[kv[i].v.str.len] = '\0';
        attrs[i].value.str.ptr = p;
        attrs[i].value.str.len = kv[i].v.str.len;
        p += kv[i].v.str.len + 1;
        break;
      case POLYTEL_ATTR_INT:
        attrs[i].value.i = kv[i].v.i;
        break;
      case POLYTEL_ATTR_DOUBLE:
        attrs[i].value.d = kv[i].v.d;
        break;
      default:
        attrs[i].value.b = kv[i].v.b;
    }
  }
  r->attrs = attrs;
  r->n_attrs = n;
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
    if (rec_fill(r, l->target, l->target_len, l->body, l->body_len, NULL, l->attrs, l->n_attrs)) g_count--;
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
    if (rec_fill(r, s->name, s->name_len, s->status_msg, s->status_msg_len, NULL, s->attrs, s->n_attrs))
      g_count--;
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
      if (rec_fill(r, m->name, strlen(m->name), "", 0, m->unit, pt->attrs, pt->n_attrs)) g_count--;
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
