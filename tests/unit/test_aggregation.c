/* test_aggregation.c — metrics aggregation on the consumer side (record/metrics.c), fed directly with events:
 * series identity (kind, name, unit, attribute set in any order), counter sums, gauge last value, histogram
 * buckets at their bounds, cumulative snapshots with stable start times, one metric record per instrument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "record/record.h"
#include "polytel.h"

static int setup(void **state) {
  (void)state;
  pthread_mutex_lock(&polytel__consume_mu);
  polytel__metrics_reset();
  pthread_mutex_unlock(&polytel__consume_mu);
  return 0;
}

static polytel__kv_t kv_str(const char *k, const char *v) {
  polytel__kv_t kv = {.key = k, .key_len = (uint32_t)strlen(k), .type = POLYTEL_ATTR_STRING};
  kv.v.str.ptr = v;
  kv.v.str.len = (uint32_t)strlen(v);
  return kv;
}

static polytel__kv_t kv_int(const char *k, int64_t v) {
  polytel__kv_t kv = {.key = k, .key_len = (uint32_t)strlen(k), .type = POLYTEL_ATTR_INT};
  kv.v.i = v;
  return kv;
}

static void event(int kind, const char *name, const char *unit, double value, int64_t ivalue,
                  const polytel__kv_t *attrs, uint32_t n) {
  pthread_mutex_lock(&polytel__consume_mu);
  polytel__metrics_event(kind, name, (uint32_t)strlen(name), unit, (uint32_t)strlen(unit), value, ivalue,
                         attrs, n);
  pthread_mutex_unlock(&polytel__consume_mu);
}

static void snapshot(polytel__metrics_snap_t *snap, uint64_t now_ns) {
  pthread_mutex_lock(&polytel__consume_mu);
  assert_int_equal(polytel__metrics_snapshot(snap, now_ns), 0);
  pthread_mutex_unlock(&polytel__consume_mu);
}

/* The record of instrument (name, kind), or NULL. */
static const polytel__metric_rec_t *rec(const polytel__metrics_snap_t *s, const char *name, int kind) {
  const polytel__metric_rec_t *found = NULL;
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->recs[i].name, name) && s->recs[i].kind == kind) {
      assert_null(found); /* one record per instrument */
      found = &s->recs[i];
    }
  return found;
}

/* Its point whose string attribute `key` is `val` (key NULL: the point without attributes). */
static const polytel__point_t *pt(const polytel__metric_rec_t *m, const char *key, const char *val) {
  assert_non_null(m);
  for (uint32_t i = 0; i < m->n_points; i++) {
    const polytel__point_t *p = &m->points[i];
    if (!key && p->n_attrs == 0) return p;
    for (uint32_t j = 0; key && j < p->n_attrs; j++)
      if (!strcmp(p->attrs[j].key, key) && p->attrs[j].type == POLYTEL_ATTR_STRING &&
          !strcmp(p->attrs[j].v.str.ptr, val))
        return p;
  }
  return NULL;
}

static void test_counter_sums_per_attribute_set(void **state) {
  (void)state;
  polytel__kv_t ab[] = {kv_str("route", "/a"), kv_int("code", 200)};
  polytel__kv_t ba[] = {kv_int("code", 200), kv_str("route", "/a")}; /* the same set in another order */
  polytel__kv_t b[] = {kv_str("route", "/b"), kv_int("code", 200)};
  event(POLYTEL_METRIC_COUNTER, "agg.requests", "{request}", 0, 3, ab, 2);
  event(POLYTEL_METRIC_COUNTER, "agg.requests", "{request}", 0, 4, ba, 2);
  event(POLYTEL_METRIC_COUNTER, "agg.requests", "{request}", 0, 10, b, 2);
  event(POLYTEL_METRIC_COUNTER, "agg.requests", "{request}", 0, 1, NULL, 0);
  event(POLYTEL_METRIC_COUNTER, "agg.requests", "{request}", 0, -5, NULL, 0); /* monotonic: refused */
  polytel__metrics_snap_t s;
  snapshot(&s, polytel_now_ns());
  const polytel__metric_rec_t *m = rec(&s, "agg.requests", POLYTEL_METRIC_COUNTER);
  assert_non_null(m);
  assert_string_equal(m->unit, "{request}");
  assert_int_equal(m->n_points, 3);
  assert_int_equal(pt(m, "route", "/a")->v.i, 7);
  assert_int_equal(pt(m, "route", "/a")->n_attrs, 2);
  assert_int_equal(pt(m, "route", "/b")->v.i, 10);
  assert_int_equal(pt(m, NULL, NULL)->v.i, 1);
  /* Attributes come out sorted by key, whatever order they were given in. */
  const polytel__point_t *p = pt(m, "route", "/a");
  assert_string_equal(p->attrs[0].key, "code");
  assert_string_equal(p->attrs[1].key, "route");
  polytel__metrics_snap_free(&s);
}

static void test_kind_and_unit_are_part_of_the_identity(void **state) {
  (void)state;
  event(POLYTEL_METRIC_COUNTER, "agg.same", "1", 0, 2, NULL, 0);
  event(POLYTEL_METRIC_GAUGE, "agg.same", "1", 5.5, 0, NULL, 0);
  event(POLYTEL_METRIC_COUNTER, "agg.same", "By", 0, 9, NULL, 0);
  polytel__metrics_snap_t s;
  snapshot(&s, polytel_now_ns());
  size_t counters = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (strcmp(s.recs[i].name, "agg.same") != 0) continue;
    assert_int_equal(s.recs[i].n_points, 1);
    if (s.recs[i].kind == POLYTEL_METRIC_COUNTER) {
      counters++;
      assert_int_equal(s.recs[i].points[0].v.i, strcmp(s.recs[i].unit, "By") == 0 ? 9 : 2);
    }
  }
  assert_int_equal(counters, 2);
  const polytel__metric_rec_t *g = rec(&s, "agg.same", POLYTEL_METRIC_GAUGE);
  assert_true(g->points[0].is_double && g->points[0].v.d == 5.5);
  polytel__metrics_snap_free(&s);
}

static void test_gauge_keeps_the_last_value(void **state) {
  (void)state;
  polytel__kv_t room[] = {kv_str("room", "lab")};
  event(POLYTEL_METRIC_GAUGE, "agg.temp", "Cel", 20.0, 0, room, 1);
  event(POLYTEL_METRIC_GAUGE, "agg.temp", "Cel", -3.25, 0, room, 1);
  event(POLYTEL_METRIC_GAUGE, "agg.temp", "Cel", NAN, 0, room, 1); /* refused: the last finite value stays */
  polytel__metrics_snap_t s;
  snapshot(&s, polytel_now_ns());
  const polytel__point_t *p = pt(rec(&s, "agg.temp", POLYTEL_METRIC_GAUGE), "room", "lab");
  assert_non_null(p);
  assert_true(p->is_double);
  assert_true(p->v.d == -3.25);
  polytel__metrics_snap_free(&s);
}

static void test_histogram_buckets_at_their_bounds(void **state) {
  (void)state;
  /* Bucket i holds (bounds[i-1], bounds[i]]: a value equal to a bound is in that bound's bucket. */
  const double values[] = {-1, 0, 0.5, 5, 5.0001, 10, 10000, 10000.5, 1e9};
  const size_t n = sizeof values / sizeof values[0];
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    event(POLYTEL_METRIC_HISTOGRAM, "agg.size", "By", values[i], 0, NULL, 0);
    sum += values[i];
  }
  event(POLYTEL_METRIC_HISTOGRAM, "agg.size", "By", INFINITY, 0, NULL, 0); /* refused */
  polytel__metrics_snap_t s;
  snapshot(&s, polytel_now_ns());
  const polytel__point_t *p = pt(rec(&s, "agg.size", POLYTEL_METRIC_HISTOGRAM), NULL, NULL);
  assert_non_null(p);
  assert_int_equal(p->count, n);
  assert_true(p->sum == sum);
  assert_true(p->min == -1 && p->max == 1e9);
  assert_true(p->n_bounds >= 2 && p->bounds[0] == 0 && p->bounds[1] == 5);
  uint64_t total = 0;
  for (uint32_t i = 0; i <= p->n_bounds; i++) total += p->buckets[i];
  assert_int_equal(total, n);
  assert_int_equal(p->buckets[0], 2); /* -1, 0 */
  assert_int_equal(p->buckets[1], 2); /* 0.5, 5 */
  assert_int_equal(p->buckets[2], 2); /* 5.0001, 10 */
  assert_true(p->bounds[p->n_bounds - 1] == 10000);
  assert_int_equal(p->buckets[p->n_bounds - 1], 1); /* 10000: the last bounded bucket */
  assert_int_equal(p->buckets[p->n_bounds], 2);     /* 10000.5, 1e9: past every bound */
  polytel__metrics_snap_free(&s);
}

static void test_snapshots_are_cumulative_with_a_stable_start(void **state) {
  (void)state;
  uint64_t t0 = polytel_now_ns();
  event(POLYTEL_METRIC_COUNTER, "agg.cum", "1", 0, 5, NULL, 0);
  event(POLYTEL_METRIC_HISTOGRAM, "agg.cumh", "ms", 1, 0, NULL, 0);
  polytel__metrics_snap_t s1, s2;
  snapshot(&s1, t0 + 1000000000ull);
  event(POLYTEL_METRIC_COUNTER, "agg.cum", "1", 0, 2, NULL, 0);
  event(POLYTEL_METRIC_HISTOGRAM, "agg.cumh", "ms", 3, 0, NULL, 0);
  snapshot(&s2, t0 + 2000000000ull);
  const polytel__point_t *c1 = pt(rec(&s1, "agg.cum", POLYTEL_METRIC_COUNTER), NULL, NULL);
  const polytel__point_t *c2 = pt(rec(&s2, "agg.cum", POLYTEL_METRIC_COUNTER), NULL, NULL);
  assert_int_equal(c1->v.i, 5);
  assert_int_equal(c2->v.i, 7); /* cumulative: not reset by the first snapshot */
  assert_int_equal(c1->start_ns, c2->start_ns);
  assert_int_equal(c1->time_ns, t0 + 1000000000ull);
  assert_int_equal(c2->time_ns, t0 + 2000000000ull);
  assert_true(c1->start_ns <= c1->time_ns);
  const polytel__point_t *h2 = pt(rec(&s2, "agg.cumh", POLYTEL_METRIC_HISTOGRAM), NULL, NULL);
  assert_int_equal(h2->count, 2);
  assert_true(h2->sum == 4 && h2->min == 1 && h2->max == 3);
  polytel__metrics_snap_free(&s1);
  polytel__metrics_snap_free(&s2);
}

static void test_records_are_sorted_and_grouped(void **state) {
  (void)state;
  polytel__kv_t x[] = {kv_str("k", "x")}, y[] = {kv_str("k", "y")};
  event(POLYTEL_METRIC_COUNTER, "agg.zeta", "1", 0, 1, x, 1);
  event(POLYTEL_METRIC_COUNTER, "agg.alpha", "1", 0, 1, x, 1);
  event(POLYTEL_METRIC_COUNTER, "agg.zeta", "1", 0, 1, y, 1);
  polytel__metrics_snap_t s;
  snapshot(&s, polytel_now_ns());
  for (size_t i = 1; i < s.n; i++) assert_true(strcmp(s.recs[i - 1].name, s.recs[i].name) <= 0);
  assert_int_equal(rec(&s, "agg.zeta", POLYTEL_METRIC_COUNTER)->n_points, 2);
  assert_int_equal(rec(&s, "agg.alpha", POLYTEL_METRIC_COUNTER)->n_points, 1);
  polytel__metrics_snap_free(&s);
}

/* A reset (fork child, re-init) forgets every series: the next snapshot starts from nothing. */
static void test_reset_forgets_series(void **state) {
  (void)state;
  event(POLYTEL_METRIC_COUNTER, "agg.gone", "1", 0, 4, NULL, 0);
  setup(NULL);
  event(POLYTEL_METRIC_COUNTER, "agg.gone", "1", 0, 1, NULL, 0);
  polytel__metrics_snap_t s;
  snapshot(&s, polytel_now_ns());
  assert_int_equal(pt(rec(&s, "agg.gone", POLYTEL_METRIC_COUNTER), NULL, NULL)->v.i, 1);
  polytel__metrics_snap_free(&s);
}

int main(void) {
  setenv("POLYTEL_CONSOLE", "off", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_counter_sums_per_attribute_set, setup),
      cmocka_unit_test_setup(test_kind_and_unit_are_part_of_the_identity, setup),
      cmocka_unit_test_setup(test_gauge_keeps_the_last_value, setup),
      cmocka_unit_test_setup(test_histogram_buckets_at_their_bounds, setup),
      cmocka_unit_test_setup(test_snapshots_are_cumulative_with_a_stable_start, setup),
      cmocka_unit_test_setup(test_records_are_sorted_and_grouped, setup),
      cmocka_unit_test_setup(test_reset_forgets_series, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
