/* test_events.c — the hot path through the consumer into the memory sink: values, nesting, accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "record/record.h"
#include "polytel.h"

static int setup(void **state) {
  (void)state;
  setenv("POLYTEL_CONSOLE", "off", 1);
  unsetenv("TELEMETRY_ENABLED");
  unsetenv("POLYTEL_MAX_MEMORY");
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

static const polytel_record_t *find(polytel_record_kind_t kind, const char *name, size_t nth) {
  size_t n = polytel_memory_sink_count();
  for (size_t i = 0; i < n; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind == kind && strcmp(r->name, name) == 0 && nth-- == 0) return r;
  }
  return NULL;
}

static size_t count_kind(polytel_record_kind_t kind) {
  size_t c = 0, n = polytel_memory_sink_count();
  for (size_t i = 0; i < n; i++) c += polytel_memory_sink_get(i)->kind == kind;
  return c;
}

static void test_log_deferred_format(void **state) {
  (void)state;
  char dyn[16];
  strcpy(dyn, "copied");
  polytel_log(POLYTEL_LEVEL_INFO, "app", "static message");
  polytel_log(POLYTEL_LEVEL_WARN, "app", "two ints %d and %lld", 42, -7LL);
  polytel_log(POLYTEL_LEVEL_ERROR, "app", "mixed %s|%5.2f|%x|%c|%%|%zu", dyn, 3.14159, 255u, 'Z', (size_t)9);
  strcpy(dyn, "CHANGED"); /* the record must hold the copy, not the pointer */
  polytel_log(POLYTEL_LEVEL_DEBUG, "app", "below threshold %d", 1);
  assert_int_equal(polytel_memory_sink_collect(), 0);
  assert_int_equal(count_kind(POLYTEL_RECORD_LOG), 3);
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "app", 0);
  assert_string_equal(r->body, "static message");
  assert_int_equal(r->level, POLYTEL_LEVEL_INFO);
  r = find(POLYTEL_RECORD_LOG, "app", 1);
  assert_string_equal(r->body, "two ints 42 and -7");
  assert_int_equal(r->level, POLYTEL_LEVEL_WARN);
  r = find(POLYTEL_RECORD_LOG, "app", 2);
  assert_string_equal(r->body, "mixed copied| 3.14|ff|Z|%|9");
  assert_true(r->time_ns > 1600000000000000000ull); /* Unix nanoseconds */
}

static void test_log_percent_n_never_formatted(void **state) {
  (void)state;
  int sink = 0;
  polytel_log(POLYTEL_LEVEL_INFO, "sec", "count%n here", &sink);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "sec", 0);
  assert_non_null(r);
  assert_string_equal(r->body, "count%n here");
  assert_int_equal(sink, 0);
}

static void test_log_attrs_and_truncation(void **state) {
  (void)state;
  polytel_attr_t attrs[] = {POLYTEL_ATTR_STR("user", "ann"), POLYTEL_ATTR_INT("n", -5),
                            POLYTEL_ATTR_DOUBLE("ratio", 0.25), POLYTEL_ATTR_BOOL("ok", 1)};
  const char msg[] = "with\nnewline";
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "bridge", msg, sizeof msg - 1, attrs, 4, NULL);
  size_t big = 1u << 20;
  char *huge = malloc(big);
  memset(huge, 'x', big);
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "big", huge, big, NULL, 0, NULL);
  free(huge);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "bridge", 0);
  assert_non_null(r);
  assert_string_equal(r->body, "with\nnewline");
  assert_int_equal(r->n_attrs, 4);
  assert_string_equal(r->attrs[0].key, "user");
  assert_string_equal(r->attrs[0].value.str.ptr, "ann");
  assert_int_equal(r->attrs[1].value.i, -5);
  assert_true(r->attrs[2].value.d == 0.25);
  assert_int_equal(r->attrs[3].value.b, 1);
  r = find(POLYTEL_RECORD_LOG, "big", 0);
  assert_non_null(r);
  size_t len = strlen(r->body);
  assert_true(len > 1000 && len < big);
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.truncated, 1);
}

static void test_thread_spans_nest(void **state) {
  (void)state;
  {
    POLYTEL_SPAN_SCOPE("outer");
    polytel_log(POLYTEL_LEVEL_INFO, "span", "in outer");
    {
      POLYTEL_SPAN_SCOPE("inner");
      polytel_log(POLYTEL_LEVEL_INFO, "span", "in inner");
    }
  }
  POLYTEL_SPAN_SCOPE("second_root");
  polytel_span_end(); /* ends second_root explicitly... */
  polytel_memory_sink_collect();
  const polytel_record_t *outer = find(POLYTEL_RECORD_SPAN, "outer", 0);
  const polytel_record_t *inner = find(POLYTEL_RECORD_SPAN, "inner", 0);
  const polytel_record_t *root2 = find(POLYTEL_RECORD_SPAN, "second_root", 0);
  assert_non_null(outer);
  assert_non_null(inner);
  assert_non_null(root2);
  static const uint8_t zero[8];
  assert_memory_equal(outer->parent_id, zero, 8);
  assert_memory_equal(inner->parent_id, outer->span_id, 8);
  assert_memory_equal(inner->trace_id, outer->trace_id, 16);
  assert_memory_not_equal(root2->trace_id, outer->trace_id, 16); /* a top-level span starts a trace */
  assert_true(outer->start_ns <= inner->start_ns && inner->time_ns <= outer->time_ns);
  assert_true(inner->start_ns <= inner->time_ns);
  const polytel_record_t *l_in = find(POLYTEL_RECORD_LOG, "span", 1);
  assert_string_equal(l_in->body, "in inner");
  assert_memory_equal(l_in->span_id, inner->span_id, 8);
  /* ...and the scope's cleanup end is a stray end: counted, not recorded */
}

static void test_dyn_span_status(void **state) {
  (void)state;
  polytel_attr_t a[] = {POLYTEL_ATTR_STR("route", "/x")};
  polytel_span_begin_dyn("handler", a, 1);
  polytel_attr_t e[] = {POLYTEL_ATTR_STR("exception.type", "ValueError")};
  polytel_span_end_status(POLYTEL_STATUS_ERROR, "boom", e, 1);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "handler", 0);
  assert_non_null(r);
  assert_int_equal(r->status, POLYTEL_STATUS_ERROR);
  assert_string_equal(r->body, "boom");
  assert_int_equal(r->n_attrs, 2);
  assert_string_equal(r->attrs[0].key, "route");
  assert_string_equal(r->attrs[1].value.str.ptr, "ValueError");
}

static void test_async_spans(void **state) {
  (void)state;
  polytel_span_ctx_t root, child;
  assert_int_equal(polytel_span_start(NULL, &root), 0);
  assert_int_equal(polytel_span_start(&root, &child), 0);
  assert_memory_equal(child.trace_id, root.trace_id, 16);
  assert_memory_equal(child.parent_id, root.span_id, 8);
  assert_int_equal(polytel_span_finish(&child, "child", POLYTEL_STATUS_OK, NULL, NULL, 0), 0);
  assert_int_equal(polytel_span_finish(&root, "root", POLYTEL_STATUS_UNSET, NULL, NULL, 0), 0);
  polytel_memory_sink_collect();
  const polytel_record_t *c = find(POLYTEL_RECORD_SPAN, "child", 0),
                         *r = find(POLYTEL_RECORD_SPAN, "root", 0);
  assert_non_null(c);
  assert_non_null(r);
  assert_memory_equal(c->parent_id, r->span_id, 8);
  assert_memory_equal(c->span_id, child.span_id, 8);
  assert_int_equal(c->status, POLYTEL_STATUS_OK);
  assert_true(r->start_ns <= c->start_ns && c->time_ns <= r->time_ns);
}

#define N_THREADS 4
#define PER_THREAD 20000

static void *counting_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    POLYTEL_COUNTER_ADD("test.requests", "{request}", 1);
    if (i % 100 == 0) polytel_log(POLYTEL_LEVEL_INFO, "worker", "tick %d", i);
  }
  POLYTEL_HISTOGRAM_RECORD("test.latency", "ms", 7.0);
  return NULL;
}

static void test_metrics_and_threads(void **state) {
  (void)state;
  polytel_stats_t st0;
  polytel_stats(&st0); /* stats are cumulative for the process: compare deltas */
  pthread_t th[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) pthread_create(&th[i], NULL, counting_thread, NULL);
  for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
  POLYTEL_GAUGE_SET("test.temperature", "Cel", 21.5);
  polytel_attr_t a[] = {POLYTEL_ATTR_STR("route", "/a")};
  polytel_counter_add("test.dyn", "1", 3, a, 1);
  polytel_counter_add("test.dyn", "1", 4, a, 1);
  polytel_counter_add("test.dyn", "1", -1, a, 1); /* monotonic: ignored */
  polytel_histogram_record("test.size", "By", 100.0, NULL, 0);
  polytel_histogram_record("test.size", "By", 300.0, NULL, 0);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_METRIC, "test.requests", 0);
  assert_non_null(r);
  assert_int_equal(r->int_value, N_THREADS * PER_THREAD);
  assert_string_equal(r->unit, "{request}");
  r = find(POLYTEL_RECORD_METRIC, "test.temperature", 0);
  assert_true(r->double_value == 21.5);
  r = find(POLYTEL_RECORD_METRIC, "test.dyn", 0);
  assert_int_equal(r->int_value, 7);
  assert_int_equal(r->n_attrs, 1);
  r = find(POLYTEL_RECORD_METRIC, "test.size", 0);
  assert_int_equal(r->count, 2);
  assert_true(r->double_value == 400.0);
  r = find(POLYTEL_RECORD_METRIC, "test.latency", 0);
  assert_int_equal(r->count, N_THREADS);
  /* Every thread's logs arrived, each under its own thread id; exited threads were retired. */
  assert_int_equal(count_kind(POLYTEL_RECORD_LOG), N_THREADS * (PER_THREAD / 100));
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.logs_recorded - st0.logs_recorded, N_THREADS * (PER_THREAD / 100));
  assert_int_equal(st.recorded, st.exported + st.dropped + st.pending);
  assert_int_equal(st.pending, 0);
  /* A second collect: counters are cumulative, not reset. */
  polytel_memory_sink_collect();
  r = find(POLYTEL_RECORD_METRIC, "test.requests", 0);
  assert_int_equal(r->int_value, N_THREADS * PER_THREAD);
}

static void test_invalid_calls_counted(void **state) {
  (void)state;
  polytel_stats_t before, after;
  polytel_stats(&before);
  polytel_log(POLYTEL_LEVEL_INFO, NULL, NULL);
  polytel_span_begin(NULL);
  polytel_span_end(); /* pairs with the NULL-name begin */
  polytel_span_end(); /* stray */
  polytel_span_finish(NULL, "x", 0, NULL, NULL, 0);
  polytel_stats(&after);
  assert_int_equal(after.dropped_invalid - before.dropped_invalid, 2);
  assert_int_equal(after.recorded, after.exported + after.dropped + after.unconfirmed + after.pending);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "", 0);
  assert_non_null(r);
  assert_string_equal(r->body, "(null format)");
}

/* The OS name at registration; a binding's name replaces it, cut at a character boundary. */
static void *named_thread(void *arg) {
  const char *rename = arg;
  pthread_setname_np(pthread_self(), "os-name-7");
  polytel_log(POLYTEL_LEVEL_INFO, "names", "first");
  if (rename) polytel_thread_set_name(rename);
  polytel_span_begin("named.span");
  polytel_span_end();
  return NULL;
}

static void test_thread_names(void **state) {
  (void)state;
  pthread_t a, b;
  /* 30 ASCII bytes then a 3-byte character: 33 bytes, cut to the 30 before it (the cap holds 31). */
  static const char long_name[] = "abcdefghijklmnopqrstuvwxyz0123\xe2\x9c\x93";
  pthread_create(&a, NULL, named_thread, NULL);
  pthread_join(a, NULL);
  pthread_create(&b, NULL, named_thread, (void *)long_name);
  pthread_join(b, NULL);
  polytel_thread_set_name(NULL); /* ignored */
  polytel_memory_sink_collect();
  const polytel_record_t *l0 = find(POLYTEL_RECORD_LOG, "names", 0),
                         *l1 = find(POLYTEL_RECORD_LOG, "names", 1);
  const polytel_record_t *s0 = find(POLYTEL_RECORD_SPAN, "named.span", 0);
  const polytel_record_t *s1 = find(POLYTEL_RECORD_SPAN, "named.span", 1);
  assert_non_null(l0), assert_non_null(l1), assert_non_null(s0), assert_non_null(s1);
  /* The consumer drains threads in rotating order: the first thread is the one registered first. */
  const polytel_record_t *t;
  if (l0->thread_id > l1->thread_id) t = l0, l0 = l1, l1 = t;
  if (s0->thread_id > s1->thread_id) t = s0, s0 = s1, s1 = t;
  assert_int_not_equal(l0->thread_id, l1->thread_id);
  assert_int_equal(s0->thread_id, l0->thread_id);
  assert_string_equal(l0->thread_name, "os-name-7");
  assert_string_equal(s0->thread_name, "os-name-7");
  /* Collected after the rename: both of that thread's records carry the new name. */
  assert_string_equal(l1->thread_name, "abcdefghijklmnopqrstuvwxyz0123");
  assert_string_equal(s1->thread_name, "abcdefghijklmnopqrstuvwxyz0123");
}

/* The console on (warnings visible), WARN and above: for tests that read polytel's own lines. */
static int setup_console(void **state) {
  (void)state;
  unsetenv("POLYTEL_CONSOLE");
  setenv("POLYTEL_LOG_LEVEL", "warn", 1);
  unsetenv("TELEMETRY_ENABLED");
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_memory_sink_enable(100000), 0);
  return 0;
}

/*
 * Spans past the depth cap are counted as dropped_depth (not dropped_invalid), and every warn-once line
 * that names a counter names the one that was incremented.
 */
static void test_depth_cap_and_warning_words(void **state) {
  (void)state;
  polytel_stats_t before, after;
  polytel_stats(&before);
  cap_begin();
  for (int i = 0; i < 70; i++) polytel_span_begin("deep");
  for (int i = 0; i < 70; i++) polytel_span_end();
  int sink = 0;
  polytel_log(POLYTEL_LEVEL_WARN, "sec", "count%n here", &sink);
  polytel_span_begin(NULL);
  polytel_span_end();
  polytel_counter_add("neg", "1", -1, NULL, 0);
  char *out = cap_read_all();
  polytel_stats(&after);
  assert_int_equal(after.dropped_depth - before.dropped_depth, 6);
  assert_int_equal(after.dropped_invalid - before.dropped_invalid, 1); /* the NULL name */
  assert_int_equal(after.spans_recorded - before.spans_recorded, 71);
  assert_int_equal(after.recorded, after.exported + after.dropped + after.unconfirmed + after.pending);
  assert_non_null(strstr(out,
                         "thread spans nested deeper than 64 are not recorded (counted as dropped_depth; "
                         "warned once)"));
  assert_non_null(strstr(out, "NULL name; not recorded (counted as dropped_invalid; warned once)"));
  assert_non_null(strstr(out, "contains %n"));
  assert_non_null(strstr(out, "negative delta"));
  /* %n and negative deltas count nothing, and their lines do not claim they do. */
  for (const char *p = out; (p = strstr(p, "counted as ")) != NULL; p++)
    assert_true(!strncmp(p, "counted as dropped_depth", 24) || !strncmp(p, "counted as dropped_invalid", 26));
  polytel_memory_sink_collect();
  assert_int_equal(count_kind(POLYTEL_RECORD_SPAN), 64);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* First: the warn-once lines are once per process. */
      cmocka_unit_test_setup_teardown(test_depth_cap_and_warning_words, setup_console, teardown),
      cmocka_unit_test_setup_teardown(test_log_deferred_format, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_percent_n_never_formatted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_attrs_and_truncation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread_spans_nest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dyn_span_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_spans, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics_and_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_calls_counted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread_names, setup, teardown),
  };
  return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
