/* fuzz_metrics.c — libFuzzer target for metric aggregation (core/src/record/metrics.c): fuzzer-chosen instruments,
 * names, units, attributes and values (NaN, infinities, -0, subnormals, INT64_MAX and other extremes) fed to
 * polytel__metrics_event, snapshots taken between them and compared with an independent model: counter
 * totals (saturating at INT64_MAX), last gauge values, histogram counts, buckets, min and max; cumulative
 * values never go down; start <= time; the series cap bounds the series and conserves counter totals.
 *
 * Input: a list of operations, each an opcode byte and its operands (see next_op).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "record/record.h"

/*
 * Counter saturation and non-finite refusal arrived with issue 12's accounting work
 * (POLYTEL__DEFAULT_MAX_SERIES comes with it). Before it, a counter passing INT64_MAX was signed overflow:
 * the extremes are only sent where they are defined, and the model follows the semantics in force.
 */
#ifdef POLYTEL__DEFAULT_MAX_SERIES
#define SATURATES 1
#else
#define SATURATES 0
#endif

#define MAX_OPS 256
#define MAX_SERIES_MODEL 512
#define MAX_ATTRS 4

/* ------------------------------------------------------------ the model */

typedef struct {
  int kind;
  char name[40], unit[8];
  size_t nl, ul;
  polytel__kv_t attrs[MAX_ATTRS];
  char strs[MAX_ATTRS][8];
  uint32_t n_attrs;
  int has_value;
  int64_t isum;
  int saturated;
  double last;
  uint64_t count, buckets[16];
  double min, max;
  int64_t prev_total; /* last snapshot's value: cumulative sums never go down */
} mseries_t;

static mseries_t g_model[MAX_SERIES_MODEL];
static size_t g_n_model;

static int kv_equal(const polytel__kv_t *a, const polytel__kv_t *b) {
  if (a->key_len != b->key_len || memcmp(a->key, b->key, a->key_len) || a->type != b->type) return 0;
  switch (a->type) {
    case POLYTEL_ATTR_STRING:
      return a->v.str.len == b->v.str.len && !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len);
    case POLYTEL_ATTR_BOOL:
      return !a->v.b == !b->v.b;
    default:
      return a->v.i == b->v.i; /* doubles compare by their bits: -0 and 0, NaNs, are distinct keys */
  }
}

/* Same attribute set (keys are distinct by construction): order does not matter. */
static int attrs_equal(const polytel__kv_t *a, uint32_t na, const polytel__kv_t *b, uint32_t nb) {
  if (na != nb) return 0;
  for (uint32_t i = 0; i < na; i++) {
    int found = 0;
    for (uint32_t j = 0; j < nb && !found; j++) found = kv_equal(&a[i], &b[j]);
    if (!found) return 0;
  }
  return 1;
}

static mseries_t *model_find(int kind, const char *name, size_t nl, const char *unit, size_t ul,
                             const polytel__kv_t *attrs, uint32_t n) {
  for (size_t i = 0; i < g_n_model; i++) {
    mseries_t *m = &g_model[i];
    if (m->kind == kind && m->nl == nl && !memcmp(m->name, name, nl) && m->ul == ul &&
        !memcmp(m->unit, unit, ul) && attrs_equal(m->attrs, m->n_attrs, attrs, n))
      return m;
  }
  return NULL;
}

static const double k_bounds[] = {0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000};

static int finite_value(double v) {
  return SATURATES ? isfinite(v) : !isnan(v);
}

/* ------------------------------------------------------------ operations */

static const char *const k_names[] = {"jobs.done", "latency", "queue.depth"};
static const char *const k_keys[] = {"route", "status", "region", "shard", "k"};

static double special_double(fz_rd_t *r) {
  static const double sp[] = {0.0,     -0.0,    1.0,     -1.0,     5.0,     7500.0,
                              10000.0, 10000.5, DBL_MAX, -DBL_MAX, DBL_MIN, 4.9406564584124654e-324};
  uint8_t k = fz_u8(r);
  if (k < 12) return sp[k];
  if (k == 12) return NAN;
  if (k == 13) return INFINITY;
  if (k == 14) return -INFINITY;
  uint64_t bits = fz_u64(r);
  double d;
  memcpy(&d, &bits, 8);
  return d;
}

static int64_t counter_delta(fz_rd_t *r) {
  uint8_t k = fz_u8(r);
  if (!SATURATES)
    return (int64_t)(fz_u64(r) & 0xFFFFFFFFull) >> (k & 31); /* totals stay far from INT64_MAX */
  switch (k % 6) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return INT64_MAX;
    case 3:
      return INT64_MAX / 2 + 1;
    case 4:
      return (int64_t)(fz_u64(r) & (uint64_t)INT64_MAX);
    default:
      return k;
  }
}

/* The sorted-by-nothing attributes of one update; keys distinct. */
static uint32_t make_attrs(fz_rd_t *r, polytel__kv_t *kv, char strs[][8]) {
  uint32_t n = fz_u8(r) % (MAX_ATTRS + 1);
  unsigned used = 0;
  uint32_t w = 0;
  for (uint32_t i = 0; i < n; i++) {
    unsigned k = fz_u8(r) % 5;
    if (used & (1u << k)) continue;
    used |= 1u << k;
    polytel__kv_t *a = &kv[w];
    memset(a, 0, sizeof *a);
    a->key = k_keys[k];
    a->key_len = (uint32_t)strlen(k_keys[k]);
    a->type = (uint8_t)(1 + fz_u8(r) % 4);
    switch (a->type) {
      case POLYTEL_ATTR_STRING: {
        uint32_t len = fz_u8(r) % 8;
        for (uint32_t j = 0; j < len; j++) strs[w][j] = (char)fz_u8(r);
        a->v.str.ptr = strs[w];
        a->v.str.len = len;
        break;
      }
      case POLYTEL_ATTR_INT:
        a->v.i = (int64_t)fz_u64(r);
        break;
      case POLYTEL_ATTR_DOUBLE: {
        double d = special_double(r);
        a->v.d = d;
        break;
      }
      default:
        a->type = POLYTEL_ATTR_BOOL;
        a->v.i = 0;
        a->v.b = fz_u8(r) & 1;
    }
    w++;
  }
  return w;
}

static void update_model(mseries_t *m, int kind, double v, int64_t iv) {
  if (kind == POLYTEL_METRIC_COUNTER) {
    m->has_value = 1;
    if (SATURATES && m->isum > INT64_MAX - iv) {
      m->isum = INT64_MAX;
      m->saturated = 1;
    } else {
      m->isum += iv;
    }
  } else if (kind == POLYTEL_METRIC_GAUGE) {
    if (!finite_value(v) && SATURATES) return;
    m->has_value = 1;
    m->last = v;
  } else {
    if (!SATURATES) m->has_value = 1; /* before the fix, a NaN still made an (empty) point */
    if (!finite_value(v)) return;
    size_t b = 0;
    while (b < 15 && v > k_bounds[b]) b++;
    m->buckets[b]++;
    if (!m->count || v < m->min) m->min = v;
    if (!m->count || v > m->max) m->max = v;
    m->count++;
    m->has_value = 1;
  }
}

/* ------------------------------------------------------------ snapshot checks */

static uint64_t g_now;

static void check_snapshot(int capped) {
  polytel__metrics_snap_t snap;
  g_now += 1000;
  uint64_t now = polytel_now_ns() + g_now;
  CHECK(polytel__metrics_snapshot(&snap, now) == 0);
  size_t user_points = 0;
  for (size_t i = 0; i < snap.n; i++) {
    const polytel__metric_rec_t *rec = &snap.recs[i];
    CHECK(rec->name && rec->unit && rec->n_points >= 1);
    CHECK(rec->kind >= POLYTEL_METRIC_COUNTER && rec->kind <= POLYTEL_METRIC_HISTOGRAM);
    if (i) {
      /* one record per instrument, sorted */
      const polytel__metric_rec_t *prev = &snap.recs[i - 1];
      CHECK(strcmp(prev->name, rec->name) <= 0);
      CHECK(strcmp(prev->name, rec->name) || prev->kind != rec->kind || strcmp(prev->unit, rec->unit));
    }
    int self = strncmp(rec->name, "polytel.", 8) == 0;
    for (uint32_t j = 0; j < rec->n_points; j++) {
      const polytel__point_t *pt = &rec->points[j];
      CHECK(pt->time_ns == now);
      /* (before issue 11's fix, self-metrics created inside the snapshot started after its time) */
      if (SATURATES || !self) CHECK(pt->start_ns <= pt->time_ns);
      if (rec->kind == POLYTEL_METRIC_HISTOGRAM) {
        uint64_t total = 0;
        CHECK(pt->n_bounds == 15 && pt->bounds && pt->buckets);
        for (uint32_t b = 0; b <= pt->n_bounds; b++) total += pt->buckets[b];
        CHECK(total == pt->count);
        if (pt->count) CHECK(pt->min <= pt->max);
      }
      if (rec->kind == POLYTEL_METRIC_COUNTER) CHECK(!pt->is_double && pt->v.i >= 0);
      if (self) continue;
      user_points++;
      int overflow = 0;
      for (uint32_t a = 0; a < pt->n_attrs; a++)
        overflow |= pt->attrs[a].key_len == 20 && !memcmp(pt->attrs[a].key, "otel.metric.overflow", 20);
      if (overflow) {
        CHECK(capped);
        continue;
      }
      mseries_t *m = model_find(rec->kind, rec->name, strlen(rec->name), rec->unit, strlen(rec->unit),
                                pt->attrs, pt->n_attrs);
      CHECK(m != NULL); /* nothing appears that was never recorded */
      if (capped) continue;
      CHECK(m->has_value);
      if (rec->kind == POLYTEL_METRIC_COUNTER) {
        CHECK(pt->v.i == m->isum);
        CHECK(pt->v.i >= m->prev_total); /* cumulative: never down */
        m->prev_total = pt->v.i;
      } else if (rec->kind == POLYTEL_METRIC_GAUGE) {
        CHECK(!memcmp(&pt->v.d, &m->last, 8) || (isnan(pt->v.d) && isnan(m->last)));
      } else {
        CHECK(pt->count == m->count && !memcmp(pt->buckets, m->buckets, 16 * 8));
        if (m->count) CHECK(pt->min == m->min && pt->max == m->max);
      }
    }
  }
  if (!capped) {
    size_t want = 0;
    for (size_t i = 0; i < g_n_model; i++) want += g_model[i].has_value;
    CHECK(user_points == want); /* and nothing recorded is missing */
  }
  polytel__metrics_snap_free(&snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_rd_t r = {data, data + size};
  polytel__metrics_reset();
  memset(g_model, 0, sizeof g_model);
  g_n_model = 0;
  uint8_t mode = fz_u8(&r);
  int capped = 0;
#if SATURATES
  /* sometimes a tiny series cap, so the overflow path is fuzzed without thousands of series */
  capped = (mode & 7) == 7;
  polytel__metrics_set_max_series(capped ? 1 + (mode >> 3) % 8 : 0);
  polytel_stats_t before;
  polytel_stats(&before);
#endif
  (void)mode;
  for (int op = 0; op < MAX_OPS && r.p < r.end; op++) {
    uint8_t o = fz_u8(&r);
    if ((o & 0x1f) == 0x1f) {
      check_snapshot(capped);
      continue;
    }
    int kind = 1 + o % 3;
    char name[40], unit[8];
    size_t nl, ul = (o >> 4) & 1 ? 2 : 0;
    memcpy(unit, "ms", 2);
    unsigned ns = (o >> 2) & 3;
    if (ns < 3) {
      nl = strlen(k_names[ns]);
      memcpy(name, k_names[ns], nl);
    } else {
      /* any bytes but NUL (names are C strings in the API), after a prefix that keeps clear of polytel's
       * own "polytel." self-metrics */
      nl = 2 + fz_u8(&r) % 24;
      name[0] = 'c', name[1] = '.';
      for (size_t i = 2; i < nl; i++) {
        uint8_t b = fz_u8(&r);
        name[i] = (char)(b ? b : 0x7f);
      }
    }
    polytel__kv_t kv[MAX_ATTRS];
    char strs[MAX_ATTRS][8];
    uint32_t n = make_attrs(&r, kv, strs);
    double v = kind == POLYTEL_METRIC_COUNTER ? 0 : special_double(&r);
    int64_t iv = kind == POLYTEL_METRIC_COUNTER ? counter_delta(&r) : 0;
    polytel__metrics_event(kind, name, (uint32_t)nl, unit, (uint32_t)ul, v, iv, kv, n);
    mseries_t *m = model_find(kind, name, nl, unit, ul, kv, n);
    if (!m) {
      if (g_n_model == MAX_SERIES_MODEL) continue;
      m = &g_model[g_n_model++];
      m->kind = kind;
      memcpy(m->name, name, nl), m->nl = nl;
      memcpy(m->unit, unit, ul), m->ul = ul;
      m->n_attrs = n;
      for (uint32_t i = 0; i < n; i++) {
        m->attrs[i] = kv[i];
        if (kv[i].type == POLYTEL_ATTR_STRING) {
          memcpy(m->strs[i], kv[i].v.str.ptr, kv[i].v.str.len);
          m->attrs[i].v.str.ptr = m->strs[i];
        }
      }
    }
    update_model(m, kind, v, iv);
  }
  check_snapshot(capped);
#if SATURATES
  polytel_stats_t after;
  polytel_stats(&after);
  if (capped) CHECK(after.dropped_series >= before.dropped_series);
  polytel__metrics_set_max_series(0);
#endif
  return 0;
}
