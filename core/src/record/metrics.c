/* metrics.c — static metric slots, and cumulative aggregation of every series on the consumer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "record/record.h"

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
      /* Release: retire() on the consumer reads the slot with no lock of ours (acquire there). */
      __atomic_store_n(&polytel__static_metrics[slot], m, __ATOMIC_RELEASE);
      atomic_store(&polytel__n_static_metrics, slot);
    }
    __atomic_store_n(&m->polytel__slot, slot, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&g_reg_mu);
  return slot == UINT32_MAX ? 0 : slot;
}

/* ------------------------------------------------------ per-instrument warnings */

/*
 * "Once per instrument" for saturation and non-finite values, from calling
 * threads (static descriptors) and the consumer alike: a small set of
 * (kind, name) hashes. Past its capacity, losses are still counted, only the
 * lines stop.
 */
#define WARNED_CAP 1024
static pthread_mutex_t g_warn_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t key;
  uint8_t flags;
} g_warned[WARNED_CAP];
static uint32_t g_n_warned;

enum { WARNED_SATURATED = 1, WARNED_NONFINITE = 2 };

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* 1 the first time `flag` is raised for this instrument. */
static int first_warning(int kind, const char *name, size_t nl, uint8_t flag) {
  uint8_t k = (uint8_t)kind;
  uint64_t key = fnv(name, nl, fnv(&k, 1, 0xcbf29ce484222325ull)) | 1; /* 0 marks a free slot */
  int first = 0;
  pthread_mutex_lock(&g_warn_mu);
  for (uint32_t i = 0, h = (uint32_t)(key % WARNED_CAP); i < WARNED_CAP; i++, h = (h + 1) % WARNED_CAP) {
    if (g_warned[h].key == key) {
      first = !(g_warned[h].flags & flag);
      g_warned[h].flags |= flag;
      break;
    }
    if (g_warned[h].key == 0) {
      if (g_n_warned + 1 < WARNED_CAP) {
        g_warned[h].key = key;
        g_warned[h].flags = flag;
        g_n_warned++;
        first = 1;
      }
      break;
    }
  }
  pthread_mutex_unlock(&g_warn_mu);
  return first;
}

static const char *kind_name(int kind) {
  return kind == POLYTEL_METRIC_COUNTER ? "counter" : kind == POLYTEL_METRIC_GAUGE ? "gauge" : "histogram";
}

/*
 * A counter that cannot go past INT64_MAX: it stays there, `lost` increments
 * are counted, and count_first adds one when this is the first time (a total
 * that passed INT64_MAX only as a sum of per-thread parts, which no single call
 * lost).
 */
static void saturated(const char *name, size_t nl, uint64_t lost, int count_first) {
  int first = first_warning(POLYTEL_METRIC_COUNTER, name, nl, WARNED_SATURATED);
  uint64_t n = lost + (uint64_t)(count_first && first);
  if (n) atomic_fetch_add(&polytel__acct.metric_saturated, n);
  if (first)
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "counter \"%.*s\" reached INT64_MAX and stays there; further increments are lost "
                  "(counted as metric_saturated; warned once per instrument)",
                  (int)(nl > 64 ? 64 : nl), name);
}

void polytel__counter_saturated(const char *name, size_t nl, uint64_t lost) {
  saturated(name, nl, lost, 0);
}

void polytel__counter_total_saturated(const char *name, size_t nl) {
  saturated(name, nl, 0, 1);
}

void polytel__metric_nonfinite(int kind, const char *name, size_t nl, double value) {
  if (first_warning(kind, name, nl, WARNED_NONFINITE))
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "%s \"%.*s\" was given %s; the value is refused (OTLP carries finite values only; "
                  "warned once per instrument)",
                  kind_name(kind), (int)(nl > 64 ? 64 : nl), name,
                  isnan(value) ? "NaN"
                  : value > 0  ? "+Inf"
                               : "-Inf");
}

/* ----------------------------------------------------------------- series */

static const double k_bounds[] = {0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000};
#define N_BOUNDS (sizeof k_bounds / sizeof k_bounds[0])
/*
 * Past the series cap each instrument folds new attribute sets into one
 * otel.metric.overflow=true series (the OpenTelemetry cardinality-limit rule).
 * Those overflow series are bounded too, or a stream of new instrument names
 * would still grow without limit.
 */
#define MAX_OVERFLOW_SERIES 256

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
  int64_t istatic;      /* counter: the static descriptor's per-thread slots, summed at snapshot */
  uint32_t static_slot; /* counter/gauge fed by a static descriptor */
  int capped;           /* kept out of the series cap (static descriptors, self-metrics) */
  int overflow;         /* the otel.metric.overflow series */
  polytel_metric_t *desc;
  double last; /* gauge */
  int has_value;
  uint64_t count;
  double sum, min, max;
  const double *bounds; /* histogram: k_bounds, or the name's advised bounds (never freed) */
  uint32_t n_bounds;
  uint64_t *buckets; /* histogram: n_bounds + 1 counts (owned) */
} series_t;

/*
 * Advised bucket bounds per histogram name (polytel_histogram_set_bounds), from calling threads; read by the
 * consumer when it makes a series. Entries are never removed or changed (a fork child keeps its instruments'
 * advice), so a series points at its bounds for good.
 */
typedef struct {
  char *name;
  size_t nl;
  double *bounds;
  uint32_t n;
} advice_t;
static pthread_mutex_t g_advice_mu = PTHREAD_MUTEX_INITIALIZER;
static advice_t g_advice[POLYTEL_HISTOGRAM_MAX_ADVISED];
static _Atomic uint32_t g_n_advice;

static char *dupn(const char *s, size_t n);

static const advice_t *advice_find(const char *name, size_t nl) {
  uint32_t n = atomic_load(&g_n_advice);
  for (uint32_t i = 0; i < n; i++)
    if (g_advice[i].nl == nl && memcmp(g_advice[i].name, name, nl) == 0) return &g_advice[i];
  return NULL;
}

int polytel_histogram_set_bounds(const char *name, const double *bounds, size_t n_bounds) {
  if (!name || (!bounds && n_bounds)) return POLYTEL_EINVAL;
  size_t nl = strlen(name);
  int nl_shown = (int)(nl > 64 ? 64 : nl);
  if (n_bounds > POLYTEL_HISTOGRAM_MAX_BOUNDS) {
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "histogram \"%.*s\": %zu bucket bounds refused (at most %d); it keeps its "
                  "bounds",
                  nl_shown, name, n_bounds, POLYTEL_HISTOGRAM_MAX_BOUNDS);
    return POLYTEL_EINVAL;
  }
  for (size_t i = 0; i < n_bounds; i++)
    if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1]))) {
      polytel__diag(POLYTEL_LEVEL_WARN,
                    "histogram \"%.*s\": bucket bounds refused (bound %zu is %s); they must be "
                    "finite and strictly increasing; it keeps its bounds",
                    nl_shown, name, i, isfinite(bounds[i]) ? "not above the one before" : "not finite");
      return POLYTEL_EINVAL;
    }
  int rc = 0;
  pthread_mutex_lock(&g_advice_mu);
  const advice_t *a = advice_find(name, nl);
  uint32_t n = atomic_load(&g_n_advice);
  if (a) {
    rc = a->n == n_bounds && (!n_bounds || memcmp(a->bounds, bounds, n_bounds * sizeof *bounds) == 0)
             ? 0
             : POLYTEL_EALREADY;
  } else if (n == POLYTEL_HISTOGRAM_MAX_ADVISED) {
    rc = POLYTEL_ENOMEM;
  } else {
    advice_t *e = &g_advice[n];
    e->name = dupn(name, nl);
    e->bounds = malloc((n_bounds ? n_bounds : 1) * sizeof *bounds);
    if (!e->name || !e->bounds) {
      free(e->name);
      free(e->bounds);
      e->name = NULL;
      e->bounds = NULL;
      rc = POLYTEL_ENOMEM;
    } else {
      if (n_bounds) memcpy(e->bounds, bounds, n_bounds * sizeof *bounds);
      e->nl = nl;
      e->n = (uint32_t)n_bounds;
      atomic_store(&g_n_advice, n + 1); /* published whole: readers see the entry only from here */
    }
  }
  pthread_mutex_unlock(&g_advice_mu);
  if (rc == POLYTEL_EALREADY)
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "histogram \"%.*s\": other bucket bounds were set for it first; those stay", nl_shown,
                  name);
  return rc;
}

#define NBUCKETS 1024
static series_t *g_table[NBUCKETS];
static uint32_t g_n_series;   /* series subject to the cap */
static uint32_t g_n_overflow; /* overflow series */
static uint32_t g_n_total;    /* every series, for the snapshot's array */
static _Atomic uint32_t g_max_series = POLYTEL__DEFAULT_MAX_SERIES;
static _Atomic int g_warned_cap;

void polytel__metrics_set_max_series(uint32_t n) {
  atomic_store(&g_max_series, n ? n : POLYTEL__DEFAULT_MAX_SERIES);
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
    sz += 16 + sorted[i].key_len + (polytel__kv_has_bytes(sorted[i].type) ? sorted[i].v.str.len : 8);
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
    if (polytel__kv_has_bytes(sorted[i].type)) {
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

enum { SERIES_CAPPED = 0, SERIES_UNCAPPED = 1, SERIES_OVERFLOW = 2 };

/*
 * The series of (kind, name, unit, attrs), created at start_ns (0: now) if new. mode:
 * SERIES_CAPPED for user series (the cap applies), SERIES_UNCAPPED for static
 * descriptors and self-metrics (bounded by construction), SERIES_OVERFLOW for
 * an instrument's overflow series. NULL: no memory, or refused by the cap.
 */
static series_t *find_or_add(int kind, const char *name, uint32_t nl, const char *unit, uint32_t ul,
                             const polytel__kv_t *attrs, uint32_t n, uint64_t start_ns, int mode) {
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
  if (mode == SERIES_CAPPED && g_n_series >= atomic_load_explicit(&g_max_series, POLYTEL__RELAXED)) {
    /* Cardinality cap: this update goes to the instrument's overflow series (or nowhere), counted. */
    free(key);
    if (sorted != stack_kv) free(sorted);
    atomic_fetch_add(&polytel__acct.dropped_series, 1);
    if (!atomic_exchange(&g_warned_cap, 1))
      polytel__diag(
          POLYTEL_LEVEL_WARN,
          "metric series limit reached (POLYTEL_MAX_METRIC_SERIES=%u): new attribute sets of \"%.*s\" "
          "and other instruments go to their otel.metric.overflow=true series (counted as "
          "dropped_series; warned once)",
          (unsigned)atomic_load(&g_max_series), (int)(nl > 64 ? 64 : nl), name);
    polytel__kv_t ov = {.key = "otel.metric.overflow", .key_len = 20, .type = POLYTEL_ATTR_BOOL};
    ov.v.b = 1;
    return find_or_add(kind, name, nl, unit, ul, &ov, 1, start_ns, SERIES_OVERFLOW);
  }
  if (mode == SERIES_OVERFLOW && g_n_overflow >= MAX_OVERFLOW_SERIES) {
    free(key); /* the update is counted as dropped_series already */
    goto out;
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
  s->start_ns = start_ns ? start_ns : polytel_now_ns();
  s->capped = mode == SERIES_CAPPED;
  s->overflow = mode == SERIES_OVERFLOW;
  s->min = INFINITY;
  s->max = -INFINITY;
  if (kind == POLYTEL_METRIC_HISTOGRAM) {
    const advice_t *a = advice_find(name, nl);
    s->bounds = a ? a->bounds : k_bounds;
    s->n_bounds = a ? a->n : (uint32_t)N_BOUNDS;
    s->buckets = calloc(s->n_bounds + 1, sizeof *s->buckets);
    if (!s->buckets) {
      free(key);
      free(s->name);
      free(s->unit);
      free(s);
      s = NULL;
      goto out;
    }
  }
  /* Own copies of the attributes; strings point into one block. */
  size_t sz = n * sizeof(polytel__kv_t);
  for (uint32_t i = 0; i < n; i++)
    sz += sorted[i].key_len + 1 + (polytel__kv_has_bytes(sorted[i].type) ? sorted[i].v.str.len + 1 : 0);
  s->attrs = malloc(sz ? sz : 1);
  if (s->attrs) {
    char *str = (char *)(s->attrs + n);
    for (uint32_t i = 0; i < n; i++) {
      s->attrs[i] = sorted[i];
      memcpy(str, sorted[i].key, sorted[i].key_len);
      str[sorted[i].key_len] = '\0'; /* lengths rule, but a NUL costs nothing and helps every reader */
      s->attrs[i].key = str;
      str += sorted[i].key_len + 1;
      if (polytel__kv_has_bytes(sorted[i].type)) {
        memcpy(str, sorted[i].v.str.ptr, sorted[i].v.str.len);
        str[sorted[i].v.str.len] = '\0';
        s->attrs[i].v.str.ptr = str;
        str += sorted[i].v.str.len + 1;
      }
    }
    s->n_attrs = n;
  }
  s->next = g_table[h % NBUCKETS];
  g_table[h % NBUCKETS] = s;
  if (mode == SERIES_CAPPED) g_n_series++;
  if (mode == SERIES_OVERFLOW) g_n_overflow++;
  g_n_total++;
out:
  if (sorted != stack_kv) free(sorted);
  return s;
}

static void hist_add(series_t *s, double v) {
  size_t i = 0;
  while (i < s->n_bounds && v > s->bounds[i]) i++; /* bucket i holds (bounds[i-1], bounds[i]] */
  s->buckets[i]++;
  s->count++;
  s->sum += v;
  if (v < s->min) s->min = v;
  if (v > s->max) s->max = v;
  s->has_value = 1;
}

static void counter_add(series_t *s, int64_t v) {
  if (polytel__sat_add(s->isum, v, &s->isum)) polytel__counter_saturated(s->name, strlen(s->name), 1);
  s->has_value = 1;
}

void polytel__metrics_event(int kind, const char *name, uint32_t name_len, const char *unit,
                            uint32_t unit_len, double value, int64_t ivalue, const polytel__kv_t *attrs,
                            uint32_t n_attrs) {
  if (kind != POLYTEL_METRIC_COUNTER && !isfinite(value)) {
    polytel__metric_nonfinite(kind, name, name_len, value);
    return;
  }
  if (kind == POLYTEL_METRIC_COUNTER && ivalue < 0) return; /* refused (and warned) when recorded */
  series_t *s = find_or_add(kind, name, name_len, unit, unit_len, attrs, n_attrs, 0, SERIES_CAPPED);
  if (!s) return;
  switch (kind) {
    case POLYTEL_METRIC_COUNTER:
      counter_add(s, ivalue);
      break;
    case POLYTEL_METRIC_GAUGE:
      s->last = value;
      s->has_value = 1;
      break;
    case POLYTEL_METRIC_HISTOGRAM:
      hist_add(s, value);
      break;
  }
}

void polytel__metrics_hist_static(polytel_metric_t *m, double value) {
  const char *unit = m->unit ? m->unit : "";
  size_t nl = strlen(m->name);
  if (!isfinite(value)) {
    polytel__metric_nonfinite(POLYTEL_METRIC_HISTOGRAM, m->name, nl, value);
    return;
  }
  series_t *s = find_or_add(POLYTEL_METRIC_HISTOGRAM, m->name, (uint32_t)nl, unit, (uint32_t)strlen(unit),
                            NULL, 0, 0, SERIES_UNCAPPED);
  if (s) hist_add(s, value);
}

static int cmp_series(const void *a, const void *b) {
  const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  if (x->kind != y->kind) return x->kind - y->kind;
  return strcmp(x->unit, y->unit);
}

/* One self-metric series: a counter (with its reason attribute, when it has one) or a gauge. */
static void self_metric(int kind, const char *name, const char *reason, uint64_t v, uint64_t now_ns) {
  if (!kind) return;
  polytel__kv_t kv = {.key = "reason", .key_len = 6, .type = POLYTEL_ATTR_STRING};
  if (reason) {
    kv.v.str.ptr = reason;
    kv.v.str.len = (uint32_t)strlen(reason);
  }
  series_t *s = find_or_add(kind, name, (uint32_t)strlen(name), "{item}", 6, &kv, reason ? 1 : 0, now_ns,
                            SERIES_UNCAPPED);
  if (!s) return;
  if (kind == POLYTEL_METRIC_GAUGE)
    s->last = (double)v;
  else
    s->isum = v > INT64_MAX ? INT64_MAX : (int64_t)v;
  s->has_value = 1;
}

/*
 * Self-metrics (the metric column of POLYTEL_STATS_FIELDS): what polytel recorded, exported, dropped and
 * could not confirm, all from the one stats read given (so they satisfy the identity among themselves), so
 * an operator sees losses.
 */
#define SELF_COUNTER(name) POLYTEL_METRIC_COUNTER, name
#define SELF_GAUGE(name) POLYTEL_METRIC_GAUGE, name
#define SELF_NONE 0, NULL
static void self_metrics(const polytel_stats_t *st, uint64_t now_ns) {
#define XX(field, metric, reason, doc) self_metric(SELF_##metric, reason, st->field, now_ns);
  POLYTEL_STATS_FIELDS(XX)
#undef XX
}

/* Sum of a static counter over retired and live threads, saturating. Returns 1 when it saturated. */
static int static_total(uint32_t slot, int64_t *total) {
  int sat = 0;
  pthread_mutex_lock(&polytel__registry_mu); /* retired and live together: a retiring thread counts once */
  int64_t sum = atomic_load(&polytel__retired_counters[slot]);
  for (polytel__thread_t *t = polytel__registry; t; t = t->next)
    sat |= polytel__sat_add(sum, atomic_load_explicit(&t->counters[slot], POLYTEL__RELAXED), &sum);
  pthread_mutex_unlock(&polytel__registry_mu);
  *total = sum;
  return sat;
}

int polytel__metrics_snapshot(polytel__metrics_snap_t *out, uint64_t now_ns) {
  memset(out, 0, sizeof *out);
  /* Static descriptors: counters summed over live threads + retired ones; gauges read. */
  uint32_t ns = atomic_load(&polytel__n_static_metrics);
  for (uint32_t slot = 1; slot <= ns; slot++) {
    polytel_metric_t *m = polytel__static_metrics[slot];
    if (!m || m->kind == POLYTEL_METRIC_HISTOGRAM) continue;
    const char *unit = m->unit ? m->unit : "";
    size_t nl = strlen(m->name);
    series_t *s = find_or_add(m->kind, m->name, (uint32_t)nl, unit, (uint32_t)strlen(unit), NULL, 0, now_ns,
                              SERIES_UNCAPPED);
    if (!s) continue;
    s->desc = m;
    if (m->kind == POLYTEL_METRIC_COUNTER) {
      int64_t total;
      /* The threads' parts may pass INT64_MAX only together: one lost increment, said once. */
      if (static_total(slot, &total)) polytel__counter_total_saturated(m->name, nl);
      s->static_slot = slot;
      s->has_value = s->has_value || total != 0;
      s->istatic = total;
    } else {
      uint64_t bits = __atomic_load_n(&m->polytel__gauge, __ATOMIC_ACQUIRE);
      double v;
      memcpy(&v, &bits, 8);
      if (isfinite(v)) { /* set_static refuses non-finite values; this is only the initial 0 bits */
        s->last = v;
        s->has_value = 1;
      }
    }
  }
  polytel_stats(&out->self);
  self_metrics(&out->self, now_ns);

  series_t **all = malloc((g_n_total ? g_n_total : 1) * sizeof *all);
  if (!all) return POLYTEL_ENOMEM;
  size_t n = 0;
  for (size_t b = 0; b < NBUCKETS; b++)
    for (series_t *s = g_table[b]; s; s = s->next)
      if (s->has_value) all[n++] = s;
  qsort(all, n, sizeof *all, cmp_series);

  size_t n_buckets = 0;
  for (size_t i = 0; i < n; i++)
    if (all[i]->kind == POLYTEL_METRIC_HISTOGRAM) n_buckets += all[i]->n_bounds + 1;
  size_t sz = n * (sizeof(polytel__metric_rec_t) + sizeof(polytel__point_t)) + n_buckets * 8;
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
    /* A series never starts after the snapshot that reports it (wall-clock steps included): kept for good. */
    if (s->start_ns > now_ns) s->start_ns = now_ns;
    pt->attrs = s->attrs;
    pt->n_attrs = s->n_attrs;
    pt->start_ns = s->start_ns;
    pt->time_ns = now_ns;
    if (s->kind == POLYTEL_METRIC_COUNTER) {
      int64_t v;
      if (polytel__sat_add(s->isum, s->static_slot ? s->istatic : 0, &v))
        saturated(s->name, strlen(s->name), 0, 1);
      pt->v.i = v;
    } else if (s->kind == POLYTEL_METRIC_GAUGE) {
      pt->is_double = 1;
      pt->v.d = s->last;
    } else {
      pt->count = s->count;
      pt->sum = s->sum;
      pt->min = s->count ? s->min : 0;
      pt->max = s->count ? s->max : 0;
      pt->bounds = s->bounds;
      pt->n_bounds = s->n_bounds;
      memcpy(bk, s->buckets, (s->n_bounds + 1) * sizeof *bk);
      pt->buckets = bk;
      bk += s->n_bounds + 1;
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
      free(s->buckets);
      free(s);
      s = n;
    }
    g_table[b] = NULL;
  }
  g_n_series = g_n_overflow = g_n_total = 0;
  atomic_store(&g_warned_cap, 0);
  memset(g_warned, 0, sizeof g_warned);
  g_n_warned = 0;
  for (int i = 0; i < POLYTEL__MAX_STATIC_METRICS; i++) atomic_store(&polytel__retired_counters[i], 0);
}

/* fork: registration must not be mid-flight in another thread when the child starts. */
void polytel__metrics_lock(void) {
  pthread_mutex_lock(&g_reg_mu);
  pthread_mutex_lock(&g_warn_mu);
  pthread_mutex_lock(&g_advice_mu);
}
void polytel__metrics_unlock(void) {
  pthread_mutex_unlock(&g_advice_mu);
  pthread_mutex_unlock(&g_warn_mu);
  pthread_mutex_unlock(&g_reg_mu);
}
