/* metrics.c — static metric slots, and cumulative aggregation of every series on the consumer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

polytel_metric_t *polytel__static_metrics[POLYTEL__MAX_STATIC_METRICS];
_Atomic uint32_t polytel__n_static_metrics;
_Atomic int64_t polytel__retired_counters[POLYTEL__MAX_STATIC_METRICS];
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;

/* Once per callsite: give the descriptor a per-thread counter slot (slot 0 means "unassigned"). */
uint32_t polytel__metric_register(polytel_metric_t *m) {
  pthread_mutex_lock(&g_reg_mu);
  uint32_t slot = __atomic_load_n(&m->polytel__slot, __ATOMIC_RELAXED);
  if (slot == 0) {
    uint32_t n = atomic_load(&polytel__n_static_metrics);
    int kind_ok = m->kind == POLYTEL_METRIC_COUNTER || m->kind == POLYTEL_METRIC_GAUGE ||
                  m->kind == POLYTEL_METRIC_HISTOGRAM;
    if (!m->name || !kind_ok || n + 1 >= POLYTEL__MAX_STATIC_METRICS) {
      /* Too many static metrics, or not a descriptor we know: this one goes through events. */
      slot = UINT32_MAX;
    } else {
      slot = n + 1;
      polytel__static_metrics[slot] = m;
      atomic_store(&polytel__n_static_metrics, slot);
    }
    __atomic_store_n(&m->polytel__slot, slot, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&g_reg_mu);
  return slot == UINT32_MAX ? 0 : slot;
}

/* ----------------------------------------------------------------- series */

static const double k_bounds[] = {0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000};
#define N_BOUNDS (sizeof k_bounds / sizeof k_bounds[0])
#define MAX_SERIES 2000 /* the OpenTelemetry default cardinality limit */

typedef struct series_s {
  struct series_s *next; /* hash chain */
  uint64_t hash;
  int kind;
  char *name, *unit;
  polytel__kv_t *attrs; /* owned, sorted by key */
  uint32_t n_attrs;
  char *key; /* canonical key for equality */
  size_t key_len;
  uint64_t start_ns;
  int64_t isum;         /* counter: events */
  uint32_t static_slot; /* counter/gauge fed by a static descriptor */
  polytel_metric_t *desc;
  double last; /* gauge */
  int has_value;
  uint64_t count;
  double sum, min, max;
  uint64_t buckets[N_BOUNDS + 1];
} series_t;

#define NBUCKETS 1024
static series_t *g_table[NBUCKETS];
static uint32_t g_n_series;
static uint64_t g_overflowed;

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static int kv_cmp(const void *a, const void *b) {
  const polytel__kv_t *x = a, *y = b;
  uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  int c = memcmp(x->key, y->key, n);
  return c ? c : (int)x->key_len - (int)y->key_len;
}

/* Canonical bytes of (kind, name, unit, sorted attrs) for hashing and equality. */
static char *make_key(int kind, const char *name, uint32_t nl, const char *unit, uint32_t ul,
                      const polytel__kv_t *sorted, uint32_t n, size_t *len) {
  size_t sz = 16 + nl + ul;
  for (uint32_t i = 0; i < n; i++)
    sz += 16 + sorted[i].key_len + (sorted[i].type == POLYTEL_ATTR_STRING ? sorted[i].v.str.len : 8);
  char *k = malloc(sz), *p = k;
  if (!k) return NULL;
  *p++ = (char)kind;
  memcpy(p, &nl, 4), p += 4;
  memcpy(p, name, nl), p += nl;
  memcpy(p, &ul, 4), p += 4;
  memcpy(p, unit, ul), p += ul;
  for (uint32_t i = 0; i < n; i++) {
    *p++ = (char)sorted[i].type;
    memcpy(p, &sorted[i].key_len, 4), p += 4;
    memcpy(p, sorted[i].key, sorted[i].key_len), p += sorted[i].key_len;
    if (sorted[i].type == POLYTEL_ATTR_STRING) {
      memcpy(p, &sorted[i].v.str.len, 4), p += 4;
      memcpy(p, sorted[i].v.str.ptr, sorted[i].v.str.len), p += sorted[i].v.str.len;
    } else {
      memcpy(p, &sorted[i].v, 8), p += 8;
    }
  }
  *len = (size_t)(p - k);
  return k;
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static series_t *find_or_add(int kind, const char *name, uint32_t nl, const char *unit, uint32_t ul,
                             const polytel__kv_t *attrs, uint32_t n) {
  polytel__kv_t stack_kv[16], *sorted = stack_kv;
  if (n > 16) {
    sorted = malloc(n * sizeof *sorted);
    if (!sorted) return NULL;
  }
  if (n) memcpy(sorted, attrs, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, kv_cmp);
  size_t klen;
  char *key = make_key(kind, name, nl, unit, ul, sorted, n, &klen);
  series_t *s = NULL;
  if (!key) goto out;
  uint64_t h = fnv(key, klen, 0xcbf29ce484222325ull);
  for (s = g_table[h % NBUCKETS]; s; s = s->next)
    if (s->hash == h && s->key_len == klen && memcmp(s->key, key, klen) == 0) break;
  if (s) {
    free(key);
    goto out;
  }
  if (g_n_series >= MAX_SERIES) {
    /* Cardinality cap: further series are folded into one overflow series per instrument. */
    g_overflowed++;
    free(key);
    if (n == 1 && sorted[0].key_len == 20 && memcmp(sorted[0].key, "otel.metric.overflow", 20) == 0) goto out;
    polytel__kv_t ov = {.key = "otel.metric.overflow", .key_len = 20, .type = POLYTEL_ATTR_BOOL};
    ov.v.b = 1;
    if (sorted != stack_kv) free(sorted);
    g_n_series--; /* let exactly the overflow series in */
    s = find_or_add(kind, name, nl, unit, ul, &ov, 1);
    g_n_series++;
    return s;
  }
  s = calloc(1, sizeof *s);
  if (!s) {
    free(key);
    goto out;
  }
  s->hash = h;
  s->kind = kind;
  s->key = key;
  s->key_len = klen;
  s->name = dupn(name, nl);
  s->unit = dupn(unit, ul);
  s->start_ns = polytel_now_ns();
  s->min = INFINITY;
  s->max = -INFINITY;
  /* Own copies of the attributes; strings point into one block. */
  size_t sz = n * sizeof(polytel__kv_t);
  for (uint32_t i = 0; i < n; i++)
    sz += sorted[i].key_len + 1 + (sorted[i].type == POLYTEL_ATTR_STRING ? sorted[i].v.str.len + 1 : 0);
  s->attrs = malloc(sz ? sz : 1);
  if (s->attrs) {
    char *str = (char *)(s->attrs + n);
    for (uint32_t i = 0; i < n; i++) {
      s->attrs[i] = sorted[i];
      memcpy(str, sorted[i].key, sorted[i].key_len);
      s->attrs[i].key = str;
      str += sorted[i].key_len + 1;
      if (sorted[i].type == POLYTEL_ATTR_STRING) {
        memcpy(str, sorted[i].v.str.ptr, sorted[i].v.str.len);
        s->attrs[i].v.str.ptr = str;
        str += sorted[i].v.str.len + 1;
      }
    }
    s->n_attrs = n;
  }
  s->next = g_table[h % NBUCKETS];
  g_table[h % NBUCKETS] = s;
  g_n_series++;
out:
  if (sorted != stack_kv) free(sorted);
  return s;
}

static void hist_add(series_t *s, double v) {
  if (isnan(v)) return;
  size_t i = 0;
  while (i < N_BOUNDS && v > k_bounds[i]) i++; /* bucket i holds (bounds[i-1], bounds[i]] */
  s->buckets[i]++;
  s->count++;
  s->sum += v;
  if (v < s->min) s->min = v;
  if (v > s->max) s->max = v;
}

void polytel__metrics_event(int kind, const char *name, uint32_t name_len, const char *unit,
                            uint32_t unit_len, double value, int64_t ivalue, const polytel__kv_t *attrs,
                            uint32_t n_attrs) {
  series_t *s = find_or_add(kind, name, name_len, unit, unit_len, attrs, n_attrs);
  if (!s) return;
  switch (kind) {
    case POLYTEL_METRIC_COUNTER:
      s->isum += ivalue;
      s->has_value = 1;
      break;
    case POLYTEL_METRIC_GAUGE:
      s->last = value;
      s->has_value = 1;
      break;
    case POLYTEL_METRIC_HISTOGRAM:
      hist_add(s, value);
      s->has_value = 1;
      break;
  }
}

void polytel__metrics_hist_static(polytel_metric_t *m, double value) {
  const char *unit = m->unit ? m->unit : "";
  series_t *s = find_or_add(POLYTEL_METRIC_HISTOGRAM, m->name, (uint32_t)strlen(m->name), unit,
                            (uint32_t)strlen(unit), NULL, 0);
  if (s) {
    hist_add(s, value);
    s->has_value = 1;
  }
}

static int cmp_series(const void *a, const void *b) {
  const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  if (x->kind != y->kind) return x->kind - y->kind;
  return strcmp(x->unit, y->unit);
}

/* Self-metrics: what polytel recorded, exported and dropped, so an operator sees losses. */
static void self_metrics(void) {
  polytel_stats_t st;
  polytel_stats(&st);
  struct {
    const char *reason;
    uint64_t v;
  } drops[] = {{"buffer_full", st.dropped_buffer_full},
               {"export", st.dropped_export},
               {"invalid", st.dropped_invalid}};
  for (size_t i = 0; i < 3; i++) {
    polytel__kv_t kv = {.key = "reason", .key_len = 6, .type = POLYTEL_ATTR_STRING};
    kv.v.str.ptr = drops[i].reason;
    kv.v.str.len = (uint32_t)strlen(drops[i].reason);
    series_t *s = find_or_add(POLYTEL_METRIC_COUNTER, "polytel.dropped", 15, "{item}", 6, &kv, 1);
    if (s) {
      s->isum = (int64_t)drops[i].v;
      s->has_value = 1;
    }
  }
  series_t *s = find_or_add(POLYTEL_METRIC_COUNTER, "polytel.recorded", 16, "{item}", 6, NULL, 0);
  if (s) {
    s->isum = (int64_t)st.recorded;
    s->has_value = 1;
  }
  s = find_or_add(POLYTEL_METRIC_COUNTER, "polytel.exported", 16, "{item}", 6, NULL, 0);
  if (s) {
    s->isum = (int64_t)st.exported;
    s->has_value = 1;
  }
}

int polytel__metrics_snapshot(polytel__metrics_snap_t *out, uint64_t now_ns) {
  memset(out, 0, sizeof *out);
  /* Static descriptors: counters summed over live threads + retired ones; gauges read. */
  uint32_t ns = atomic_load(&polytel__n_static_metrics);
  for (uint32_t slot = 1; slot <= ns; slot++) {
    polytel_metric_t *m = polytel__static_metrics[slot];
    if (!m || m->kind == POLYTEL_METRIC_HISTOGRAM) continue;
    const char *unit = m->unit ? m->unit : "";
    series_t *s =
        find_or_add(m->kind, m->name, (uint32_t)strlen(m->name), unit, (uint32_t)strlen(unit), NULL, 0);
    if (!s) continue;
    if (m->kind == POLYTEL_METRIC_COUNTER) {
      int64_t total = atomic_load(&polytel__retired_counters[slot]);
      pthread_mutex_lock(&polytel__registry_mu);
      for (polytel__thread_t *t = polytel__registry; t; t = t->next)
        total += atomic_load_explicit(&t->counters[slot], POLYTEL__RELAXED);
      pthread_mutex_unlock(&polytel__registry_mu);
      if (s->static_slot != slot) { /* first sight: the events part stays in isum */
        s->static_slot = slot;
      }
      s->desc = m;
      s->has_value = s->has_value || total != 0;
      s->last = (double)total; /* static part, added below */
    } else {
      uint64_t bits = __atomic_load_n(&m->polytel__gauge, __ATOMIC_ACQUIRE);
      memcpy(&s->last, &bits, 8);
      s->has_value = 1;
    }
  }
  self_metrics();

  series_t **all = malloc((g_n_series ? g_n_series : 1) * sizeof *all);
  if (!all) return POLYTEL_ENOMEM;
  size_t n = 0;
  for (size_t b = 0; b < NBUCKETS; b++)
    for (series_t *s = g_table[b]; s; s = s->next)
      if (s->has_value) all[n++] = s;
  qsort(all, n, sizeof *all, cmp_series);

  size_t n_hist = 0;
  for (size_t i = 0; i < n; i++) n_hist += all[i]->kind == POLYTEL_METRIC_HISTOGRAM;
  size_t sz = n * (sizeof(polytel__metric_rec_t) + sizeof(polytel__point_t)) + n_hist * (N_BOUNDS + 1) * 8;
  uint8_t *mem = malloc(sz ? sz : 1);
  if (!mem) {
    free(all);
    return POLYTEL_ENOMEM;
  }
  polytel__metric_rec_t *recs = (polytel__metric_rec_t *)mem;
  polytel__point_t *pts = (polytel__point_t *)(recs + n);
  uint64_t *bk = (uint64_t *)(pts + n);
  size_t nr = 0;
  for (size_t i = 0; i < n; i++) {
    series_t *s = all[i];
    polytel__point_t *pt = &pts[i];
    memset(pt, 0, sizeof *pt);
    pt->attrs = s->attrs;
    pt->n_attrs = s->n_attrs;
    pt->start_ns = s->start_ns;
    pt->time_ns = now_ns;
    if (s->kind == POLYTEL_METRIC_COUNTER) {
      pt->v.i = s->isum + (s->static_slot ? (int64_t)s->last : 0);
    } else if (s->kind == POLYTEL_METRIC_GAUGE) {
      pt->is_double = 1;
      pt->v.d = s->last;
    } else {
      pt->count = s->count;
      pt->sum = s->sum;
      pt->min = s->count ? s->min : 0;
      pt->max = s->count ? s->max : 0;
      pt->bounds = k_bounds;
      pt->n_bounds = N_BOUNDS;
      memcpy(bk, s->buckets, sizeof s->buckets);
      pt->buckets = bk;
      bk += N_BOUNDS + 1;
    }
    /* Consecutive series of one instrument share a metric record. */
    if (nr && recs[nr - 1].kind == s->kind && strcmp(recs[nr - 1].name, s->name) == 0 &&
        strcmp(recs[nr - 1].unit, s->unit) == 0) {
      recs[nr - 1].n_points++;
    } else {
      recs[nr].name = s->name;
      recs[nr].unit = s->unit;
      recs[nr].kind = s->kind;
      recs[nr].points = pt;
      recs[nr].n_points = 1;
      nr++;
    }
  }
  free(all);
  out->recs = recs;
  out->n = nr;
  out->mem = mem;
  return 0;
}

void polytel__metrics_snap_free(polytel__metrics_snap_t *s) {
  free(s->mem);
  memset(s, 0, sizeof *s);
}

/* Fork child / re-init: series start again (a child is a new process with its own start time). */
void polytel__metrics_reset(void) {
  for (size_t b = 0; b < NBUCKETS; b++) {
    series_t *s = g_table[b];
    while (s) {
      series_t *n = s->next;
      free(s->name);
      free(s->unit);
      free(s->attrs);
      free(s->key);
      free(s);
      s = n;
    }
    g_table[b] = NULL;
  }
  g_n_series = 0;
  for (int i = 0; i < POLYTEL__MAX_STATIC_METRICS; i++) atomic_store(&polytel__retired_counters[i], 0);
}

/* fork: registration must not be mid-flight in another thread when the child starts. */
void polytel__metrics_lock(void) {
  pthread_mutex_lock(&g_reg_mu);
}
void polytel__metrics_unlock(void) {
  pthread_mutex_unlock(&g_reg_mu);
}
