/* test_spans.c — the span model through the memory sink: kinds, sampling at polytel_span_start, arrays,
 * events, links, scopes, tracestate, limits and their dropped counts, flags, sampled_out accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/record.h"
#include "polytel.h"
#include "common/propagation.h"

static const char *const k_vars[] = {"OTEL_TRACES_SAMPLER",
                                     "OTEL_TRACES_SAMPLER_ARG",
                                     "OTEL_PROPAGATORS",
                                     "OTEL_ATTRIBUTE_COUNT_LIMIT",
                                     "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                                     "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
                                     "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                                     "OTEL_SPAN_EVENT_COUNT_LIMIT",
                                     "OTEL_SPAN_LINK_COUNT_LIMIT",
                                     "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
                                     "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
                                     "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
                                     "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                                     NULL};

/* Phase 1 again with these variables (name, value, ..., NULL) and an empty memory sink. */
static void start(const char *const *env) {
  polytel_shutdown(1000);
  polytel_memory_sink_disable();
  for (const char *const *v = k_vars; *v; v++) unsetenv(*v);
  for (; env && *env; env += 2) setenv(env[0], env[1], 1);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_memory_sink_enable(100000), 0);
}

static int setup(void **state) {
  (void)state;
  setenv("POLYTEL_CONSOLE", "off", 1);
  unsetenv("TELEMETRY_ENABLED");
  start(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  polytel_shutdown(1000);
  polytel_memory_sink_disable();
  return 0;
}

static const polytel_record_t *find(polytel_record_kind_t kind, const char *name) {
  for (size_t i = 0; i < polytel_memory_sink_count(); i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind == kind && strcmp(r->name, name) == 0) return r;
  }
  return NULL;
}

static const polytel_attr_t *attr(const polytel_attr_t *a, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(a[i].key, key) == 0) return &a[i];
  return NULL;
}

static size_t count_spans(void) {
  size_t c = 0;
  for (size_t i = 0; i < polytel_memory_sink_count(); i++)
    c += polytel_memory_sink_get(i)->kind == POLYTEL_RECORD_SPAN;
  return c;
}

/* ------------------------------------------------------------------ kinds */

static void test_kind_names(void **state) {
  (void)state;
  static const char *const names[] = {"internal", "server", "client", "producer", "consumer"};
  for (int k = 1; k <= 5; k++) {
    assert_int_equal(polytel_span_kind_from_name(names[k - 1], strlen(names[k - 1])), k);
    assert_string_equal(polytel_span_kind_name((polytel_span_kind_t)k), names[k - 1]);
  }
  assert_int_equal(polytel_span_kind_from_name("SERVER", 6), POLYTEL_SPAN_KIND_SERVER);
  assert_int_equal(polytel_span_kind_from_name("consumerx", 8), POLYTEL_SPAN_KIND_CONSUMER); /* len rules */
  assert_int_equal(polytel_span_kind_from_name("consume", 7), POLYTEL_EINVAL);
  assert_int_equal(polytel_span_kind_from_name("unspecified", 11), POLYTEL_EINVAL);
  assert_int_equal(polytel_span_kind_from_name("", 0), POLYTEL_EINVAL);
  assert_int_equal(polytel_span_kind_from_name(NULL, 3), POLYTEL_EINVAL);
  assert_string_equal(polytel_span_kind_name(POLYTEL_SPAN_KIND_UNSPECIFIED), "unspecified");
  assert_null(polytel_span_kind_name((polytel_span_kind_t)6));
}

/* --------------------------------------------------------------- sampling */

static void test_default_sampler_follows_parent(void **state) {
  (void)state;
  polytel_span_ctx_t root, child, remote, orphan;
  assert_int_equal(polytel_span_start(NULL, &root), 0);
  assert_int_equal(root.trace_flags,
                   POLYTEL_TRACE_FLAG_SAMPLED); /* parentbased_always_on: a root is sampled */
  assert_int_equal(polytel_span_start(&root, &child), 0);
  assert_int_equal(child.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, POLYTEL_TRACE_FLAG_SAMPLED);
  assert_int_equal(child.parent_remote, 0);
  /* An unsampled remote parent: the child is unsampled too, its other flags inherited. */
  assert_int_equal(
      polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", &remote), 0);
  assert_int_equal(remote.is_remote, 1);
  assert_int_equal(polytel_span_start(&remote, &orphan), 0);
  assert_int_equal(orphan.trace_flags, POLYTEL_TRACE_FLAG_RANDOM);
  assert_int_equal(orphan.parent_remote, 1);
  assert_memory_equal(orphan.trace_id, remote.trace_id, 16);
  assert_memory_equal(orphan.parent_id, remote.span_id, 8);

  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  assert_int_equal(polytel_span_finish(&orphan, "unsampled", POLYTEL_STATUS_OK, NULL, NULL, 0), 0);
  assert_int_equal(polytel_span_finish(&child, "child", POLYTEL_STATUS_OK, NULL, NULL, 0), 0);
  assert_int_equal(polytel_span_finish(&root, "root", POLYTEL_STATUS_OK, NULL, NULL, 0), 0);
  polytel_memory_sink_collect();
  polytel_stats(&s1);
  assert_int_equal(s1.sampled_out - s0.sampled_out, 1);
  assert_int_equal(s1.spans_recorded - s0.spans_recorded, 2); /* an unsampled span is not a record */
  assert_int_equal(s1.dropped - s0.dropped, 0);
  assert_int_equal(s1.recorded, s1.exported + s1.dropped + s1.unconfirmed + s1.pending);
  assert_null(find(POLYTEL_RECORD_SPAN, "unsampled"));
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "child");
  assert_non_null(r);
  assert_int_equal(r->flags, POLYTEL_TRACE_FLAG_SAMPLED | 0x100); /* HAS_IS_REMOTE, a local parent */
  r = find(POLYTEL_RECORD_SPAN, "root");
  assert_int_equal(r->flags, POLYTEL_TRACE_FLAG_SAMPLED | 0x100);
}

static void test_sampled_remote_parent_flags(void **state) {
  (void)state;
  polytel_span_ctx_t remote, work;
  polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &remote);
  polytel_span_start(&remote, &work);
  polytel_span_finish(&work, "work", POLYTEL_STATUS_UNSET, NULL, NULL, 0);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "work");
  assert_non_null(r);
  assert_int_equal(r->flags, 0x01 | 0x100 | 0x200); /* sampled, the parent known remote */
}

static void test_always_off_and_on(void **state) {
  (void)state;
  start((const char *const[]){"OTEL_TRACES_SAMPLER", "always_off", NULL});
  polytel_stats_t st0; /* stats are the process's: compare */
  polytel_stats(&st0);
  polytel_span_ctx_t a, b, c;
  polytel_span_start(NULL, &a);
  assert_int_equal(a.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, 0);
  /* always_off ignores even a sampled parent. */
  polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &b);
  polytel_span_start(&b, &c);
  assert_int_equal(c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, 0);
  polytel_span_finish(&a, "a", 0, NULL, NULL, 0);
  polytel_span_finish(&c, "c", 0, NULL, NULL, 0);
  polytel_memory_sink_collect();
  assert_int_equal(count_spans(), 0);
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.sampled_out - st0.sampled_out, 2);
  assert_int_equal(st.spans_recorded - st0.spans_recorded, 0);

  start((const char *const[]){"OTEL_TRACES_SAMPLER", "always_on", NULL});
  polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &b);
  polytel_span_start(&b, &c);
  assert_int_equal(c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, POLYTEL_TRACE_FLAG_SAMPLED);

  start((const char *const[]){"OTEL_TRACES_SAMPLER", "parentbased_always_off", NULL});
  polytel_span_start(NULL, &a);
  assert_int_equal(a.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, 0);
  polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &b);
  polytel_span_start(&b, &c);
  assert_int_equal(c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, POLYTEL_TRACE_FLAG_SAMPLED);
}

/* The decision is the trace id's, exactly polytel__traceid_ratio_sampled's: the same in every language. */
static void test_traceidratio_is_the_trace_ids_decision(void **state) {
  (void)state;
  start((const char *const[]){"OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.5", NULL});
  uint64_t bound = polytel__ratio_bound(0.5);
  int yes = 0, no = 0;
  polytel_stats_t st0;
  polytel_stats(&st0);
  for (int i = 0; i < 1000; i++) {
    polytel_span_ctx_t s, c, remote;
    polytel_span_start(NULL, &s);
    int want = polytel__traceid_ratio_sampled(s.trace_id, bound);
    assert_int_equal((s.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED) != 0, want);
    yes += want, no += !want;
    /* Not parent-based: a child decides on the (shared) trace id, so the same again. */
    polytel_span_start(&s, &c);
    assert_int_equal((c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED) != 0, want);
    /* A remote parent's flag does not matter either. */
    remote = s;
    remote.trace_flags ^= POLYTEL_TRACE_FLAG_SAMPLED;
    polytel_span_start(&remote, &c);
    assert_int_equal((c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED) != 0, want);
    polytel_span_finish(&s, "root", 0, NULL, NULL, 0);
  }
  assert_true(yes > 0 && no > 0); /* 1000 random ids at 0.5: both happen (p of not ~ 2^-999) */
  polytel_memory_sink_collect();
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.sampled_out - st0.sampled_out, (uint64_t)no);
  assert_int_equal(count_spans(), (size_t)yes);
  for (size_t i = 0; i < polytel_memory_sink_count(); i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind == POLYTEL_RECORD_SPAN) assert_true(polytel__traceid_ratio_sampled(r->trace_id, bound));
  }
}

static void test_propagators_exposed(void **state) {
  (void)state;
  assert_int_equal(polytel_propagators(), POLYTEL_PROPAGATOR_TRACECONTEXT | POLYTEL_PROPAGATOR_BAGGAGE);
  start((const char *const[]){"OTEL_PROPAGATORS", "none", NULL});
  assert_int_equal(polytel_propagators(), 0);
  start((const char *const[]){"OTEL_PROPAGATORS", " Baggage ", NULL});
  assert_int_equal(polytel_propagators(), POLYTEL_PROPAGATOR_BAGGAGE);
}

/* ------------------------------------------------------------ the model */

static void test_arrays_round_trip(void **state) {
  (void)state;
  polytel_str_t strs[] = {{"a", 1}, {"", 0}, {"with\0nul", 8}, {"\xc3\xa9t\xc3\xa9", 5}};
  int64_t ints[] = {1, -2, INT64_MAX, INT64_MIN};
  double dbls[] = {0.5, -1e300, 3.0};
  int bools[] = {1, 0, 7};
  polytel_attr_t attrs[] = {POLYTEL_ATTR_STRS("s", strs, 4),     POLYTEL_ATTR_INTS("i", ints, 4),
                            POLYTEL_ATTR_DOUBLES("d", dbls, 3),  POLYTEL_ATTR_BOOLS("b", bools, 3),
                            POLYTEL_ATTR_INTS("empty", ints, 0), POLYTEL_ATTR_STR("plain", "x")};
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_span_finish(&s, "arrays", POLYTEL_STATUS_OK, NULL, attrs, 6);
  /* Logs and thread spans take arrays too. */
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "app", "m", 1, attrs, 2, NULL);
  polytel_span_begin_dyn("thread", attrs + 2, 2);
  polytel_span_end_status(POLYTEL_STATUS_UNSET, NULL, attrs + 3, 1);
  polytel_memory_sink_collect();

  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "arrays");
  assert_non_null(r);
  assert_int_equal(r->n_attrs, 6);
  const polytel_attr_t *a = attr(r->attrs, r->n_attrs, "s");
  assert_int_equal(a->type, POLYTEL_ATTR_STRING_ARRAY);
  assert_int_equal(a->value.arr.len, 4);
  const polytel_str_t *got = a->value.arr.ptr;
  for (int k = 0; k < 4; k++) {
    assert_int_equal(got[k].len, strs[k].len);
    assert_memory_equal(got[k].ptr, strs[k].ptr, strs[k].len);
    assert_int_equal(got[k].ptr[got[k].len], '\0');
  }
  a = attr(r->attrs, r->n_attrs, "i");
  assert_int_equal(a->type, POLYTEL_ATTR_INT_ARRAY);
  assert_int_equal(a->value.arr.len, 4);
  assert_memory_equal(a->value.arr.ptr, ints, sizeof ints);
  a = attr(r->attrs, r->n_attrs, "d");
  assert_int_equal(a->value.arr.len, 3);
  assert_memory_equal(a->value.arr.ptr, dbls, sizeof dbls);
  a = attr(r->attrs, r->n_attrs, "b");
  assert_int_equal(a->type, POLYTEL_ATTR_BOOL_ARRAY);
  const int *bs = a->value.arr.ptr;
  assert_int_equal(a->value.arr.len, 3);
  assert_true(bs[0] == 1 && bs[1] == 0 && bs[2] == 1);
  a = attr(r->attrs, r->n_attrs, "empty");
  assert_int_equal(a->type, POLYTEL_ATTR_INT_ARRAY);
  assert_int_equal(a->value.arr.len, 0);

  r = find(POLYTEL_RECORD_LOG, "app");
  assert_int_equal(r->n_attrs, 2);
  assert_int_equal(attr(r->attrs, 2, "i")->value.arr.len, 4);
  r = find(POLYTEL_RECORD_SPAN, "thread");
  assert_int_equal(r->n_attrs, 2);
  assert_int_equal(attr(r->attrs, 2, "d")->type, POLYTEL_ATTR_DOUBLE_ARRAY);
  assert_int_equal(attr(r->attrs, 2, "b")->value.arr.len, 3);
  assert_int_equal(r->span_kind, POLYTEL_SPAN_KIND_INTERNAL);
  assert_int_equal(r->flags, 0x101); /* thread spans: sampled, a local parent */
}

static void test_events_links_scope_round_trip(void **state) {
  (void)state;
  polytel_span_ctx_t job1, job2, batch;
  polytel_span_start(NULL, &job1);
  polytel_traceparent_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &job2);
  polytel_span_start(NULL, &batch);
  polytel_attr_t ev_attrs[] = {POLYTEL_ATTR_INT("n", 3)};
  polytel_attr_t exc_attrs[3];
  polytel_span_event_t events[2] = {{"checkpoint", 1700000000000000001ull, ev_attrs, 1}};
  assert_int_equal(polytel_span_exception_event(&events[1], exc_attrs, "ValueError", "bad", "line 1\nline 2"),
                   3);
  polytel_attr_t ln_attrs[] = {POLYTEL_ATTR_STR("job", "1")};
  polytel_span_link_t links[] = {{job1, NULL, ln_attrs, 1},
                                 {job2, " congo=t61rcWkgMzE , rojo=00f067aa0ba902b7", NULL, 0}};
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  assert_int_equal(o.kind, POLYTEL_SPAN_KIND_INTERNAL);
  o.kind = POLYTEL_SPAN_KIND_CONSUMER;
  o.scope_name = "billing";
  o.scope_version = "2.1";
  o.tracestate = "vendor=abc";
  o.end_ns = batch.start_ns + 5000;
  o.events = events;
  o.n_events = 2;
  o.links = links;
  o.n_links = 2;
  assert_int_equal(polytel_span_finish_ex(&batch, "batch", POLYTEL_STATUS_ERROR, "failed", NULL, 0, &o), 0);
  polytel_span_finish(&job1, "job1", 0, NULL, NULL, 0);
  polytel_memory_sink_collect();

  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "batch");
  assert_non_null(r);
  assert_int_equal(r->span_kind, POLYTEL_SPAN_KIND_CONSUMER);
  assert_string_equal(r->scope_name, "billing");
  assert_string_equal(r->scope_version, "2.1");
  assert_string_equal(r->trace_state, "vendor=abc");
  assert_int_equal(r->time_ns, batch.start_ns + 5000);
  assert_int_equal(r->status, POLYTEL_STATUS_ERROR);
  assert_string_equal(r->body, "failed");
  assert_int_equal(r->n_events, 2);
  assert_string_equal(r->events[0].name, "checkpoint");
  assert_int_equal(r->events[0].time_ns, 1700000000000000001ull);
  assert_int_equal(r->events[0].n_attrs, 1);
  assert_int_equal(r->events[0].attrs[0].value.i, 3);
  assert_string_equal(r->events[1].name, "exception");
  assert_true(r->events[1].time_ns > 0);
  assert_string_equal(attr(r->events[1].attrs, 3, "exception.type")->value.str.ptr, "ValueError");
  assert_string_equal(attr(r->events[1].attrs, 3, "exception.message")->value.str.ptr, "bad");
  assert_string_equal(attr(r->events[1].attrs, 3, "exception.stacktrace")->value.str.ptr, "line 1\nline 2");
  assert_int_equal(r->n_links, 2);
  assert_memory_equal(r->links[0].trace_id, job1.trace_id, 16);
  assert_memory_equal(r->links[0].span_id, job1.span_id, 8);
  assert_int_equal(r->links[0].flags, 0x101); /* sampled, known local */
  assert_string_equal(r->links[0].trace_state, "");
  assert_string_equal(r->links[0].attrs[0].key, "job");
  assert_memory_equal(r->links[1].trace_id, job2.trace_id, 16);
  assert_int_equal(r->links[1].flags, 0x301); /* sampled, known remote */
  assert_string_equal(r->links[1].trace_state, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"); /* normalized */
  assert_int_equal(r->dropped_events + r->dropped_links + r->dropped_attrs, 0);

  r = find(POLYTEL_RECORD_SPAN, "job1");
  assert_string_equal(r->scope_name, "polytel"); /* no scope given: polytel's, with its version */
  assert_string_equal(r->scope_version, POLYTEL_VERSION_STRING);
  assert_int_equal(r->span_kind, POLYTEL_SPAN_KIND_INTERNAL);
}

static void test_invalid_tracestate_discarded(void **state) {
  (void)state;
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.tracestate = "Bad Key=1";
  polytel_span_finish_ex(&s, "ts", 0, NULL, NULL, 0, &o);
  polytel_memory_sink_collect();
  assert_string_equal(find(POLYTEL_RECORD_SPAN, "ts")->trace_state, "");
}

static void test_end_time_never_before_start(void **state) {
  (void)state;
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.end_ns = 1; /* long before the start */
  polytel_span_finish_ex(&s, "early", 0, NULL, NULL, 0, &o);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "early");
  assert_int_equal(r->time_ns, s.start_ns);
  assert_int_equal(r->start_ns, s.start_ns);
}

/* ------------------------------------------------------------------ limits */

static void test_attribute_limits(void **state) {
  (void)state;
  start((const char *const[]){"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                              "2", "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "1", NULL});
  polytel_str_t strs[] = {{"abc", 3}, {"\xc3\xa9\xc3\xa9\xc3\xa9", 6}, {"z", 1}};
  polytel_attr_t attrs[] = {
      POLYTEL_ATTR_STR("k1", "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), /* three characters, nine bytes */
      POLYTEL_ATTR_STR("", "empty key"),                              /* dropped and counted */
      POLYTEL_ATTR_STRS("k2", strs, 3),
      POLYTEL_ATTR_INT("k1", 7), /* a repeated key: its value replaces the first, in the first's place */
      POLYTEL_ATTR_INT("k3", 3),
      POLYTEL_ATTR_INT("k4", 4), /* past the count limit */
      POLYTEL_ATTR_INT("k5", 5),
  };
  attrs[1].key = "";
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_span_finish(&s, "limited", 0, NULL, attrs, 7);
  polytel_log_attrs(POLYTEL_LEVEL_WARN, "lg", "m", 1, attrs, 7, &s);
  polytel_memory_sink_collect();

  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "limited");
  assert_non_null(r);
  assert_int_equal(r->n_attrs, 3);
  assert_string_equal(r->attrs[0].key, "k1");
  assert_int_equal(r->attrs[0].type, POLYTEL_ATTR_INT);
  assert_int_equal(r->attrs[0].value.i, 7);
  assert_string_equal(r->attrs[1].key, "k2");
  const polytel_str_t *e = r->attrs[1].value.arr.ptr;
  assert_int_equal(r->attrs[1].value.arr.len, 3);
  assert_string_equal(e[0].ptr, "ab");
  assert_string_equal(e[1].ptr, "\xc3\xa9\xc3\xa9"); /* two characters, cut at a character boundary */
  assert_string_equal(e[2].ptr, "z");
  assert_string_equal(r->attrs[2].key, "k3");
  assert_int_equal(r->dropped_attrs, 3); /* the empty key, k4, k5 (the repeated k1 is not a drop) */

  r = find(POLYTEL_RECORD_LOG, "lg");
  assert_int_equal(r->n_attrs, 1);
  assert_string_equal(r->attrs[0].key, "k1");
  assert_int_equal(r->attrs[0].value.i, 7);
  assert_int_equal(r->dropped_attrs, 5); /* the empty key, then k2 to k5 past the log's limit of 1 */
}

static void test_log_limits_and_length(void **state) {
  (void)state;
  start((const char *const[]){"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "2",
                              "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3", NULL});
  polytel_attr_t attrs[] = {POLYTEL_ATTR_STR("a", "abcdef"), POLYTEL_ATTR_STR("", "x"),
                            POLYTEL_ATTR_INT("b", 2), POLYTEL_ATTR_INT("c", 3)};
  polytel_attr_t nokey = POLYTEL_ATTR_INT("x", 1);
  nokey.key = NULL;
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "lg", "m", 1, attrs, 4, NULL);
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "lg2", "m", 1, &nokey, 1, NULL);
  /* The span limits are not the log's: no length limit for spans here. */
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_span_finish(&s, "sp", 0, NULL, attrs, 1);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "lg");
  assert_int_equal(r->n_attrs, 2);
  assert_string_equal(r->attrs[0].value.str.ptr, "abc");
  assert_int_equal(r->attrs[0].value.str.len, 3);
  assert_string_equal(r->attrs[1].key, "b");
  assert_int_equal(r->dropped_attrs, 2); /* the empty key and c */
  r = find(POLYTEL_RECORD_LOG, "lg2");
  assert_int_equal(r->n_attrs, 0);
  assert_int_equal(r->dropped_attrs, 1);
  r = find(POLYTEL_RECORD_SPAN, "sp");
  assert_string_equal(r->attrs[0].value.str.ptr, "abcdef");
}

static void test_event_and_link_limits(void **state) {
  (void)state;
  start((const char *const[]){"OTEL_SPAN_EVENT_COUNT_LIMIT", "2", "OTEL_SPAN_LINK_COUNT_LIMIT", "1",
                              "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "1", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "0",
                              NULL});
  polytel_attr_t two[] = {POLYTEL_ATTR_INT("a", 1), POLYTEL_ATTR_INT("b", 2)};
  polytel_span_event_t ev[4] = {
      {"e0", 1, NULL, 0}, {"e1", 2, NULL, 0}, {NULL, 3, NULL, 0}, {"e3", 4, two, 2}};
  polytel_span_ctx_t l0, l1, zero, s;
  polytel_span_start(NULL, &l0);
  polytel_span_start(NULL, &l1);
  memset(&zero, 0, sizeof zero);
  polytel_span_link_t ln[3] = {{l0, NULL, NULL, 0}, {zero, NULL, NULL, 0}, {l1, NULL, two, 2}};
  polytel_span_start(NULL, &s);
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.events = ev;
  o.n_events = 4;
  o.links = ln;
  o.n_links = 3;
  polytel_span_finish_ex(&s, "lim", 0, NULL, NULL, 0, &o);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "lim");
  assert_non_null(r);
  /* The newest two events are kept (as the OTel SDKs keep them); the nameless one is dropped too. */
  assert_int_equal(r->n_events, 1);
  assert_string_equal(r->events[0].name, "e3");
  assert_int_equal(r->events[0].n_attrs, 1);
  assert_int_equal(r->events[0].dropped_attrs, 1);
  assert_int_equal(r->dropped_events, 3);
  assert_int_equal(r->n_links, 1);
  assert_memory_equal(r->links[0].span_id, l1.span_id, 8);
  assert_int_equal(r->links[0].n_attrs, 0);
  assert_int_equal(r->links[0].dropped_attrs, 2);
  assert_int_equal(r->dropped_links, 2);
}

/* ------------------------------------------------------- logs and flags */

static void test_logs_carry_the_span_and_its_flags(void **state) {
  (void)state;
  polytel_span_ctx_t on;
  polytel_span_start(NULL, &on);
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "in-sampled", "m", 1, NULL, 0, &on);
  {
    POLYTEL_SPAN_SCOPE("thread");
    POLYTEL_INFO("in-thread", "x");
  }
  POLYTEL_INFO("no-span", "x");
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "in-sampled");
  assert_non_null(r);
  assert_memory_equal(r->trace_id, on.trace_id, 16);
  assert_int_equal(r->flags, 1);
  r = find(POLYTEL_RECORD_LOG, "in-thread");
  assert_int_equal(r->flags, 1);
  r = find(POLYTEL_RECORD_LOG, "no-span");
  assert_int_equal(r->flags, 0);
}

static void test_log_in_unsampled_span_is_exported(void **state) {
  (void)state;
  start((const char *const[]){"OTEL_TRACES_SAMPLER", "always_off", NULL});
  polytel_span_ctx_t off;
  polytel_span_start(NULL, &off);
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "in-unsampled", "m", 1, NULL, 0, &off);
  polytel_span_finish(&off, "off", 0, NULL, NULL, 0);
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_LOG, "in-unsampled");
  assert_non_null(r);
  assert_memory_equal(r->trace_id, off.trace_id, 16);
  assert_memory_equal(r->span_id, off.span_id, 8);
  assert_int_equal(r->flags, 0);
  assert_null(find(POLYTEL_RECORD_SPAN, "off"));
}

/* ------------------------------------------------------------ bad input */

static void test_bad_calls(void **state) {
  (void)state;
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  assert_int_equal(polytel_span_finish_ex(NULL, "x", 0, NULL, NULL, 0, NULL), POLYTEL_EINVAL);
  assert_int_equal(polytel_span_finish_ex(&s, NULL, 0, NULL, NULL, 0, NULL), POLYTEL_EINVAL);
  polytel_span_opts_t o;
  memset(&o, 0, sizeof o); /* not initialized: struct_size 0, the defaults apply */
  o.kind = POLYTEL_SPAN_KIND_SERVER;
  assert_int_equal(polytel_span_finish_ex(&s, "raw", 0, NULL, NULL, 0, &o), 0);
  polytel_span_opts_init(&o);
  o.kind = (polytel_span_kind_t)42;
  o.events = NULL;
  o.n_events = 5; /* no array: no events */
  assert_int_equal(polytel_span_finish_ex(&s, "odd", 0, NULL, NULL, 0, &o), 0);
  polytel_attr_t nul_arr = POLYTEL_ATTR_INTS("n", (const int64_t *)NULL, 3);
  assert_int_equal(polytel_span_finish(&s, "nularr", 0, NULL, &nul_arr, 1), 0);
  polytel_memory_sink_collect();
  polytel_stats(&s1);
  assert_int_equal(s1.dropped_invalid - s0.dropped_invalid, 1); /* the nameless finish */
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "raw");
  assert_int_equal(r->span_kind, POLYTEL_SPAN_KIND_INTERNAL);
  r = find(POLYTEL_RECORD_SPAN, "odd");
  assert_int_equal(r->span_kind, POLYTEL_SPAN_KIND_INTERNAL);
  assert_int_equal(r->n_events, 0);
  r = find(POLYTEL_RECORD_SPAN, "nularr");
  assert_int_equal(r->n_attrs, 0);
  assert_int_equal(r->dropped_attrs, 1);
  polytel_span_event_t ev;
  polytel_attr_t a[3];
  assert_int_equal(polytel_span_exception_event(&ev, a, NULL, "only a message", NULL), 1);
  assert_string_equal(a[0].key, "exception.message");
  assert_int_equal(polytel_span_exception_event(NULL, a, "t", NULL, NULL), 0);
}

/* A span bigger than an event: cut to fit, what was cut counted (truncated, dropped counts). */
static void test_oversized_span(void **state) {
  (void)state;
  static char big[20000];
  memset(big, 'x', sizeof big - 1);
  polytel_attr_t a[] = {POLYTEL_ATTR_STR("big", big), POLYTEL_ATTR_STR("big2", big)};
  polytel_span_event_t ev[64];
  for (int i = 0; i < 64; i++) ev[i] = (polytel_span_event_t){"e", 0, a, 1};
  polytel_span_ctx_t s;
  polytel_span_start(NULL, &s);
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.events = ev;
  o.n_events = 64;
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  assert_int_equal(polytel_span_finish_ex(&s, "big", 0, NULL, a, 2, &o), 0);
  polytel_memory_sink_collect();
  polytel_stats(&s1);
  assert_int_equal(s1.truncated - s0.truncated, 1);
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "big");
  assert_non_null(r);
  assert_int_equal(r->n_attrs + r->dropped_attrs, 2);
  assert_int_equal(r->n_events + r->dropped_events, 64);
  assert_true(r->dropped_events > 0);
}

/* Metric series take array attributes as part of their key, and export them as arrays. */
static void test_metric_array_attribute(void **state) {
  (void)state;
  int64_t a[] = {1, 2}, b[] = {1, 3};
  polytel_attr_t x = POLYTEL_ATTR_INTS("codes", a, 2), y = POLYTEL_ATTR_INTS("codes", b, 2);
  polytel_counter_add("arr.counter", "1", 1, &x, 1);
  polytel_counter_add("arr.counter", "1", 2, &x, 1);
  polytel_counter_add("arr.counter", "1", 5, &y, 1);
  polytel_memory_sink_collect();
  int64_t got12 = -1, got13 = -1;
  for (size_t i = 0; i < polytel_memory_sink_count(); i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind != POLYTEL_RECORD_METRIC || strcmp(r->name, "arr.counter")) continue;
    assert_int_equal(r->n_attrs, 1);
    assert_int_equal(r->attrs[0].type, POLYTEL_ATTR_INT_ARRAY);
    assert_int_equal(r->attrs[0].value.arr.len, 2);
    const int64_t *v = r->attrs[0].value.arr.ptr;
    if (v[1] == 2) got12 = r->int_value;
    if (v[1] == 3) got13 = r->int_value;
  }
  assert_int_equal(got12, 3);
  assert_int_equal(got13, 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kind_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_default_sampler_follows_parent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sampled_remote_parent_flags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_always_off_and_on, setup, teardown),
      cmocka_unit_test_setup_teardown(test_traceidratio_is_the_trace_ids_decision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_propagators_exposed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_arrays_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_links_scope_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_tracestate_discarded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_end_time_never_before_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attribute_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_limits_and_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_and_link_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_logs_carry_the_span_and_its_flags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_in_unsampled_span_is_exported, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oversized_span, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metric_array_attribute, setup, teardown),
  };
  return cmocka_run_group_tests_name("spans", tests, NULL, NULL);
}
