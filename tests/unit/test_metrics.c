/* test_metrics.c — aggregation limits: counter saturation on both paths, non-finite values, the series cap,
 * series start times, self-metrics against the stats they were taken from, histogram bucket bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "record/record.h"
#include "polytel.h"

#define MAX_SERIES_FOR_TEST 40

static int setup(void **state) {
  (void)state;
  unsetenv("POLYTEL_CONSOLE");
  unsetenv("TELEMETRY_ENABLED");
  setenv("POLYTEL_MAX_METRIC_SERIES", "40", 1);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_memory_sink_enable(100000), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  polytel_shutdown(1000);
  polytel_memory_sink_disable();
  return 0;
}

/* The last collected point of a metric with one attribute k=v (k NULL: no attributes). */
static const polytel_record_t *point(const char *name, const char *k, const char *v) {
  size_t n = polytel_memory_sink_count();
  const polytel_record_t *found = NULL;
  for (size_t i = 0; i < n; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind != POLYTEL_RECORD_METRIC || strcmp(r->name, name) != 0) continue;
    if (!k && r->n_attrs == 0) found = r;
    if (k && r->n_attrs == 1 && strcmp(r->attrs[0].key, k) == 0 &&
        (v == NULL || (r->attrs[0].type == POLYTEL_ATTR_STRING && strcmp(r->attrs[0].value.str.ptr, v) == 0)))
      found = r;
  }
  return found;
}

static size_t count_points(const char *name) {
  size_t c = 0, n = polytel_memory_sink_count();
  for (size_t i = 0; i < n; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    c += r->kind == POLYTEL_RECORD_METRIC && strcmp(r->name, name) == 0;
  }
  return c;
}

static size_t count_str(const char *hay, const char *needle) {
  size_t c = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) c++;
  return c;
}

static polytel_stats_t stats(void) {
  polytel_stats_t s;
  assert_int_equal(polytel_stats(&s), 0);
  return s;
}

/* The static per-thread slot path: INT64_MAX twice stays at INT64_MAX (UBSan would report a wrap). */
static void test_static_counter_saturates(void **state) {
  (void)state;
  static polytel_metric_t m = POLYTEL_METRIC_INIT("sat.static", "1", POLYTEL_METRIC_COUNTER);
  uint64_t before = stats().metric_saturated;
  cap_begin();
  polytel_counter_add_static(&m, INT64_MAX);
  polytel_counter_add_static(&m, INT64_MAX);
  polytel_counter_add_static(&m, 5);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  char *out = cap_read_all();
  const polytel_record_t *r = point("sat.static", NULL, NULL);
  assert_non_null(r);
  assert_true(r->int_value == INT64_MAX);
  assert_int_equal(stats().metric_saturated - before, 2); /* two increments lost */
  assert_int_equal(count_str(out, "counter \"sat.static\" reached INT64_MAX"), 1);
  assert_non_null(strstr(out, "counted as metric_saturated"));
  free(out);
}

/* The dynamic (event) path, aggregated on the consumer. */
static void test_dynamic_counter_saturates(void **state) {
  (void)state;
  polytel_attr_t a = {.key = "k", .type = POLYTEL_ATTR_STRING, .value.str = {"v", 1}};
  uint64_t before = stats().metric_saturated;
  cap_begin();
  polytel_counter_add("sat.dynamic", "1", INT64_MAX, &a, 1);
  polytel_counter_add("sat.dynamic", "1", INT64_MAX, &a, 1);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  polytel_counter_add("sat.dynamic", "1", 1, &a, 1);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  char *out = cap_read_all();
  const polytel_record_t *r = point("sat.dynamic", "k", "v");
  assert_non_null(r);
  assert_true(r->int_value == INT64_MAX);
  assert_int_equal(stats().metric_saturated - before, 2);
  assert_int_equal(count_str(out, "counter \"sat.dynamic\" reached INT64_MAX"), 1);
  free(out);
}

static polytel_metric_t g_shared = POLYTEL_METRIC_INIT("sat.threads", "1", POLYTEL_METRIC_COUNTER);

static void *add_big(void *arg) {
  (void)arg;
  polytel_counter_add_static(&g_shared, INT64_MAX / 2 + 1);
  return NULL;
}

/* Two threads, each below INT64_MAX, pass it together: the sum saturates, one increment counted, said once.
 */
static void test_counter_sum_saturates_across_threads(void **state) {
  (void)state;
  uint64_t before = stats().metric_saturated;
  cap_begin();
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, add_big, NULL);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  assert_int_equal(polytel_memory_sink_collect(), 0); /* the exited threads are folded in, saturating */
  char *out = cap_read_all();
  const polytel_record_t *r = point("sat.threads", NULL, NULL);
  assert_non_null(r);
  assert_true(r->int_value == INT64_MAX);
  assert_int_equal(stats().metric_saturated - before, 1);
  assert_int_equal(count_str(out, "counter \"sat.threads\" reached INT64_MAX"), 1);
  free(out);
}

/* NaN and infinities: refused (the last finite value stays), one line per instrument. */
static void test_non_finite_values_refused(void **state) {
  (void)state;
  static polytel_metric_t g = POLYTEL_METRIC_INIT("nf.gauge.static", "1", POLYTEL_METRIC_GAUGE);
  static polytel_metric_t h = POLYTEL_METRIC_INIT("nf.hist.static", "ms", POLYTEL_METRIC_HISTOGRAM);
  cap_begin();
  polytel_gauge_set_static(&g, 2.5);
  polytel_gauge_set_static(&g, NAN);
  polytel_gauge_set_static(&g, INFINITY);
  polytel_histogram_record_static(&h, 10);
  polytel_histogram_record_static(&h, NAN);
  polytel_histogram_record_static(&h, -INFINITY);
  polytel_gauge_set("nf.gauge", "1", 1.5, NULL, 0);
  polytel_gauge_set("nf.gauge", "1", NAN, NULL, 0);
  polytel_gauge_set("nf.gauge", "1", NAN, NULL, 0);
  polytel_histogram_record("nf.hist", "ms", 3, NULL, 0);
  polytel_histogram_record("nf.hist", "ms", INFINITY, NULL, 0);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  char *out = cap_read_all();
  assert_true(point("nf.gauge.static", NULL, NULL)->double_value == 2.5);
  assert_true(point("nf.gauge", NULL, NULL)->double_value == 1.5);
  const polytel_record_t *r = point("nf.hist.static", NULL, NULL);
  assert_int_equal(r->count, 1);
  assert_true(r->double_value == 10);
  r = point("nf.hist", NULL, NULL);
  assert_int_equal(r->count, 1);
  assert_true(r->double_value == 3);
  assert_int_equal(count_str(out, "gauge \"nf.gauge.static\" was given"), 1);
  assert_int_equal(count_str(out, "histogram \"nf.hist.static\" was given NaN"), 1);
  assert_int_equal(count_str(out, "gauge \"nf.gauge\" was given NaN"), 1);
  assert_int_equal(count_str(out, "histogram \"nf.hist\" was given +Inf"), 1);
  assert_null(strstr(out, "counted as")); /* nothing is counted for these: the words say so */
  free(out);
}

/*
 * The series cap (POLYTEL_MAX_METRIC_SERIES=40 here): attribute sets past it go to the instrument's
 * otel.metric.overflow series, each such update counted as dropped_series, one warning.
 */
static void test_series_cap_counted(void **state) {
  (void)state;
  polytel__metrics_reset(); /* the cap counts every user series of the process */
  uint64_t before = stats().dropped_series;
  cap_begin();
  char v[16];
  for (int i = 0; i < MAX_SERIES_FOR_TEST + 25; i++) {
    snprintf(v, sizeof v, "s%d", i);
    polytel_attr_t a = {.key = "id", .type = POLYTEL_ATTR_STRING, .value.str = {v, strlen(v)}};
    polytel_counter_add("cap.requests", "1", 2, &a, 1);
  }
  assert_int_equal(polytel_memory_sink_collect(), 0);
  char *out = cap_read_all();
  assert_int_equal(stats().dropped_series - before, 25);
  const polytel_record_t *ov = point("cap.requests", "otel.metric.overflow", NULL);
  assert_non_null(ov);
  assert_int_equal(ov->int_value, 50); /* the values are kept, their attributes are not */
  assert_int_equal(count_points("cap.requests"), MAX_SERIES_FOR_TEST + 1);
  assert_int_equal(count_str(out, "metric series limit reached (POLYTEL_MAX_METRIC_SERIES=40)"), 1);
  assert_non_null(strstr(out, "counted as dropped_series"));
  /* Self-metrics and static descriptors are not subject to the cap. */
  assert_non_null(point("polytel.recorded", NULL, NULL));
  free(out);
}

/* Every point starts at or before its time, on the first snapshot too (series created during it). */
static void test_start_never_after_time(void **state) {
  (void)state;
  static polytel_metric_t c = POLYTEL_METRIC_INIT("start.static", "1", POLYTEL_METRIC_COUNTER);
  polytel_counter_add_static(&c, 1);
  polytel_counter_add("start.dynamic", "1", 1, NULL, 0);
  polytel_histogram_record("start.hist", "ms", 1, NULL, 0);
  for (int round = 0; round < 2; round++) {
    assert_int_equal(polytel_memory_sink_collect(), 0);
    size_t n = polytel_memory_sink_count(), metrics = 0;
    for (size_t i = 0; i < n; i++) {
      const polytel_record_t *r = polytel_memory_sink_get(i);
      if (r->kind != POLYTEL_RECORD_METRIC) continue;
      metrics++;
      assert_true(r->start_ns <= r->time_ns);
    }
    assert_true(metrics >= 8);
  }
}

/* The self-metrics of a snapshot are the stats it was taken from, and satisfy the identity. */
static void test_self_metrics_match_stats(void **state) {
  (void)state;
  for (int i = 0; i < 5; i++) polytel_log(POLYTEL_LEVEL_INFO, "app", "self %d", i);
  polytel_span_end(); /* a stray end: one recorded, one dropped_invalid */
  pthread_mutex_lock(&polytel__consume_mu);
  polytel__consume(&polytel__memsink_sink, UINT64_MAX);
  polytel__metrics_snap_t snap;
  assert_int_equal(polytel__metrics_snapshot(&snap, polytel_now_ns()), 0);
  pthread_mutex_unlock(&polytel__consume_mu);
  const polytel_stats_t *st = &snap.self;
  assert_true(st->recorded >= 6);
  assert_int_equal(st->recorded, st->exported + st->dropped + st->unconfirmed + st->pending);
  int seen = 0;
  for (size_t i = 0; i < snap.n; i++) {
    const polytel__metric_rec_t *m = &snap.recs[i];
    for (uint32_t j = 0; j < m->n_points; j++) {
      const polytel__point_t *p = &m->points[j];
      if (!strcmp(m->name, "polytel.recorded")) seen++, assert_true((uint64_t)p->v.i == st->recorded);
      if (!strcmp(m->name, "polytel.exported")) seen++, assert_true((uint64_t)p->v.i == st->exported);
      if (!strcmp(m->name, "polytel.unconfirmed")) seen++, assert_true((uint64_t)p->v.i == st->unconfirmed);
      if (!strcmp(m->name, "polytel.pending")) seen++, assert_true(p->v.d == (double)st->pending);
      if (!strcmp(m->name, "polytel.dropped")) {
        const char *why = p->attrs[0].v.str.ptr;
        uint64_t want = !strcmp(why, "invalid")       ? st->dropped_invalid
                        : !strcmp(why, "buffer_full") ? st->dropped_buffer_full
                        : !strcmp(why, "export")      ? st->dropped_export
                        : !strcmp(why, "depth")       ? st->dropped_depth
                                                      : st->dropped_rejected;
        assert_true((uint64_t)p->v.i == want);
        seen++;
      }
    }
  }
  assert_int_equal(seen, 4 + 5);
  assert_true(st->dropped_invalid >= 1);
  polytel__metrics_snap_free(&snap);
}

/* A negative delta is ignored, and the warning does not claim to count it. */
static void test_negative_delta_words(void **state) {
  (void)state;
  polytel_stats_t before = stats();
  cap_begin();
  polytel_counter_add("neg.delta", "1", -3, NULL, 0);
  char *out = cap_read_all();
  polytel_stats_t after = stats();
  assert_non_null(strstr(out, "negative delta"));
  assert_null(strstr(out, "counted as"));
  assert_int_equal(after.dropped, before.dropped);
  free(out);
}

/* polytel_histogram_set_bounds: what it accepts and refuses, each refusal one line naming the histogram. The
 * buckets themselves are checked on the wire (tests/otel/test_metrics.py: the memory sink has no buckets). */
static void test_histogram_bounds_refusals(void **state) {
  (void)state;
  const double ok[] = {1, 10, 100}, other[] = {2, 3}, unsorted[] = {5, 5}, inf[] = {1, INFINITY};
  static double many[POLYTEL_HISTOGRAM_MAX_BOUNDS + 1];
  for (size_t i = 0; i < sizeof many / sizeof many[0]; i++) many[i] = (double)i;
  cap_begin();
  assert_int_equal(polytel_histogram_set_bounds("hb.lat", ok, 3), 0);
  assert_int_equal(polytel_histogram_set_bounds("hb.lat", ok, 3), 0); /* the same again */
  assert_int_equal(polytel_histogram_set_bounds("hb.lat", other, 2), POLYTEL_EALREADY);
  assert_int_equal(polytel_histogram_set_bounds("hb.unsorted", unsorted, 2), POLYTEL_EINVAL);
  assert_int_equal(polytel_histogram_set_bounds("hb.inf", inf, 2), POLYTEL_EINVAL);
  assert_int_equal(polytel_histogram_set_bounds("hb.many", many, POLYTEL_HISTOGRAM_MAX_BOUNDS + 1),
                   POLYTEL_EINVAL);
  assert_int_equal(polytel_histogram_set_bounds("hb.max", many, POLYTEL_HISTOGRAM_MAX_BOUNDS), 0);
  assert_int_equal(polytel_histogram_set_bounds(NULL, ok, 3), POLYTEL_EINVAL);
  assert_int_equal(polytel_histogram_set_bounds("hb.null", NULL, 1), POLYTEL_EINVAL);
  assert_int_equal(polytel_histogram_set_bounds("hb.none", NULL, 0), 0); /* one bucket */
  polytel_histogram_record("hb.lat", "ms", 7, NULL, 0);
  polytel_histogram_record("hb.max", "", 300, NULL, 0);
  polytel_histogram_record("hb.none", "", 4, NULL, 0);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  char *out = cap_read_all();
  assert_int_equal(
      count_str(out, "histogram \"hb.lat\": other bucket bounds were set for it first; those stay"), 1);
  assert_int_equal(count_str(out, "histogram \"hb.unsorted\": bucket bounds refused (bound 1 is not above"),
                   1);
  assert_int_equal(count_str(out, "histogram \"hb.inf\": bucket bounds refused (bound 1 is not finite)"), 1);
  assert_int_equal(count_str(out, "histogram \"hb.many\": 257 bucket bounds refused (at most 256)"), 1);
  free(out);
  const polytel_record_t *r = point("hb.lat", NULL, NULL);
  assert_non_null(r);
  assert_true(r->count == 1 && r->double_value == 7);
  r = point("hb.max", NULL, NULL);
  assert_non_null(r);
  assert_true(r->count == 1 && r->double_value == 300);
  r = point("hb.none", NULL, NULL);
  assert_non_null(r);
  assert_true(r->count == 1 && r->double_value == 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_histogram_bounds_refusals), /* first: test_series_cap_counted fills the cap */
      cmocka_unit_test(test_static_counter_saturates),
      cmocka_unit_test(test_dynamic_counter_saturates),
      cmocka_unit_test(test_counter_sum_saturates_across_threads),
      cmocka_unit_test(test_non_finite_values_refused),
      cmocka_unit_test(test_series_cap_counted),
      cmocka_unit_test(test_start_never_after_time),
      cmocka_unit_test(test_self_metrics_match_stats),
      cmocka_unit_test(test_negative_delta_words),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
