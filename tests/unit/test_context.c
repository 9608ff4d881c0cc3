/* test_context.c — thread-span context: polytel_span_ctx_current against what the consumer exports, attached
 * remote contexts, sampling decisions of thread spans, drops that must not shift ids, fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record/record.h"
#include "polytel.h"

static const uint8_t zero[16];

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
  unsetenv("TELEMETRY_ENABLED");
  unsetenv("POLYTEL_MAX_MEMORY");
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

static size_t count(polytel_record_kind_t kind, const char *name) {
  size_t c = 0, n = polytel_memory_sink_count();
  for (size_t i = 0; i < n; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    c += r->kind == kind && (!name || strcmp(r->name, name) == 0);
  }
  return c;
}

static polytel_span_ctx_t current(void) {
  polytel_span_ctx_t c;
  assert_int_equal(polytel_span_ctx_current(&c), 0);
  assert_memory_not_equal(c.trace_id, zero, 16);
  assert_memory_not_equal(c.span_id, zero, 8);
  return c;
}

/* The exported span `name` (nth of that name) has exactly the ids the calling thread computed. */
static const polytel_record_t *same_span(const char *name, size_t nth, const polytel_span_ctx_t *c) {
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, name, nth);
  assert_non_null(r);
  assert_memory_equal(r->trace_id, c->trace_id, 16);
  assert_memory_equal(r->span_id, c->span_id, 8);
  assert_memory_equal(r->parent_id, c->parent_id, 8);
  return r;
}

static polytel_span_ctx_t remote_ctx(const char *traceparent) {
  polytel_span_ctx_t r;
  assert_int_equal(polytel_traceparent_parse(traceparent, &r), 0);
  return r;
}

static void test_no_context(void **state) {
  (void)state;
  polytel_span_ctx_t c;
  memset(&c, 0xAA, sizeof c);
  assert_int_equal(polytel_span_ctx_current(&c), POLYTEL_ENOCTX);
  assert_memory_equal(c.trace_id, zero, 16); /* all zero: formatting it fails, parsing it means "no parent" */
  assert_int_equal(polytel_span_ctx_current(NULL), POLYTEL_EINVAL);
  {
    POLYTEL_SPAN_SCOPE("s");
    assert_int_equal(polytel_span_ctx_current(&c), 0);
  }
  assert_int_equal(polytel_span_ctx_current(&c), POLYTEL_ENOCTX);
  assert_string_equal(polytel_err_name(POLYTEL_ENOCTX), "POLYTEL_ENOCTX");
}

static void test_nested_ids_match_export(void **state) {
  (void)state;
  polytel_span_ctx_t root, a, a1, b, dyn, root2;
  {
    POLYTEL_SPAN_SCOPE("root");
    root = current();
    assert_memory_equal(root.parent_id, zero, 8);
    assert_int_equal(root.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, POLYTEL_TRACE_FLAG_SAMPLED);
    {
      POLYTEL_SPAN_SCOPE("a");
      a = current();
      {
        POLYTEL_SPAN_SCOPE("a1");
        a1 = current();
        polytel_log(POLYTEL_LEVEL_INFO, "ctx", "in a1 %d", 1);
      }
      polytel_span_ctx_t back = current(); /* a again once a1 ended */
      assert_memory_equal(back.span_id, a.span_id, 8);
    }
    {
      POLYTEL_SPAN_SCOPE("b");
      b = current();
      polytel_attr_t at[] = {POLYTEL_ATTR_INT("n", 3)};
      polytel_span_begin_dyn("dyn", at, 1);
      dyn = current();
      polytel_span_end();
    }
  }
  {
    POLYTEL_SPAN_SCOPE("root2");
    root2 = current();
  }
  assert_int_equal(polytel_memory_sink_collect(), 0);
  same_span("root", 0, &root);
  same_span("a", 0, &a);
  same_span("a1", 0, &a1);
  same_span("b", 0, &b);
  same_span("dyn", 0, &dyn);
  same_span("root2", 0, &root2);
  /* The tree: one trace per root, parents as nested. */
  assert_memory_equal(a.trace_id, root.trace_id, 16);
  assert_memory_equal(a1.trace_id, root.trace_id, 16);
  assert_memory_equal(a.parent_id, root.span_id, 8);
  assert_memory_equal(a1.parent_id, a.span_id, 8);
  assert_memory_equal(b.parent_id, root.span_id, 8);
  assert_memory_equal(dyn.parent_id, b.span_id, 8);
  assert_memory_not_equal(root2.trace_id, root.trace_id, 16);
  assert_memory_not_equal(a.span_id, b.span_id, 8);
  const polytel_record_t *l = find(POLYTEL_RECORD_LOG, "ctx", 0);
  assert_non_null(l);
  assert_memory_equal(l->span_id, a1.span_id, 8);
  assert_memory_equal(l->trace_id, root.trace_id, 16);
  /* The traceparent a producer would send is the exported span's. */
  char tp[POLYTEL_TRACEPARENT_LEN + 1];
  assert_int_equal(polytel_traceparent_format(&a1, tp, sizeof tp), 0);
  polytel_span_ctx_t back;
  assert_int_equal(polytel_traceparent_parse(tp, &back), 0);
  assert_memory_equal(back.span_id, find(POLYTEL_RECORD_SPAN, "a1", 0)->span_id, 8);
}

/* A span open across several block hand-offs and consumer passes keeps the ids both sides computed. */
static void test_ids_across_handoffs(void **state) {
  (void)state;
  POLYTEL_SPAN_SCOPE("long");
  polytel_span_ctx_t outer = current();
  for (int i = 0; i < 6000; i++) polytel_log(POLYTEL_LEVEL_INFO, "fill", "log %d of %d", i, 6000);
  assert_int_equal(polytel_memory_sink_collect(), 0); /* the consumer passes while "long" stays open */
  polytel_span_ctx_t inner[50];
  for (int i = 0; i < 50; i++) {
    POLYTEL_SPAN_SCOPE("child");
    inner[i] = current();
    for (int j = 0; j < 100; j++) polytel_log(POLYTEL_LEVEL_INFO, "fill", "log %d of %d", j, i);
    if (i % 10 == 0) polytel_memory_sink_collect();
  }
  polytel_span_end(); /* "long" */
  polytel_memory_sink_collect();
  same_span("long", 0, &outer);
  for (int i = 0; i < 50; i++) {
    const polytel_record_t *r = same_span("child", (size_t)i, &inner[i]);
    assert_memory_equal(r->parent_id, outer.span_id, 8);
  }
  const polytel_record_t *last = find(POLYTEL_RECORD_LOG, "fill", 6000 + 50 * 100 - 1);
  assert_non_null(last);
  assert_memory_equal(last->span_id, inner[49].span_id, 8);
}

static void test_attach_detach(void **state) {
  (void)state;
  polytel_span_ctx_t r1 = remote_ctx("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  polytel_span_ctx_t r2 = remote_ctx("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  polytel_span_ctx_t local, job, inner, nested, after, c;
  POLYTEL_SPAN_SCOPE("local");
  local = current();
  assert_int_equal(polytel_context_attach(&r1), 0);
  c = current(); /* nothing begun yet: the remote itself */
  assert_memory_equal(c.trace_id, r1.trace_id, 16);
  assert_memory_equal(c.span_id, r1.span_id, 8);
  polytel_log(POLYTEL_LEVEL_INFO, "in_frame", "directly in the attached context");
  polytel_span_begin("job");
  job = current();
  assert_memory_equal(job.trace_id, r1.trace_id, 16);
  assert_memory_equal(job.parent_id, r1.span_id, 8);
  polytel_span_begin("inner");
  inner = current();
  assert_memory_equal(inner.parent_id, job.span_id, 8);
  assert_int_equal(polytel_context_attach(&r2), 0); /* nested */
  polytel_span_begin("nested");
  nested = current();
  assert_memory_equal(nested.trace_id, r2.trace_id, 16);
  assert_memory_equal(nested.parent_id, r2.span_id, 8);
  polytel_span_end();
  polytel_context_detach();
  c = current();
  assert_memory_equal(c.span_id, inner.span_id, 8);
  polytel_span_end(); /* inner */
  polytel_span_end(); /* job */
  polytel_context_detach();
  c = current();
  assert_memory_equal(c.span_id, local.span_id, 8);
  polytel_span_begin("after");
  after = current();
  assert_memory_equal(after.parent_id, local.span_id, 8);
  assert_memory_equal(after.trace_id, local.trace_id, 16);
  polytel_span_end();
  polytel_span_end(); /* local */
  polytel_memory_sink_collect();
  same_span("job", 0, &job);
  same_span("inner", 0, &inner);
  same_span("nested", 0, &nested);
  same_span("after", 0, &after);
  same_span("local", 0, &local);
  const polytel_record_t *l = find(POLYTEL_RECORD_LOG, "in_frame", 0);
  assert_non_null(l);
  assert_memory_equal(l->trace_id, r1.trace_id, 16);
  assert_memory_equal(l->span_id, r1.span_id, 8);
}

/* Attaching "no context" (NULL, or what a failed parse leaves) makes the spans begun at its depth roots. */
static void test_attach_no_context(void **state) {
  (void)state;
  POLYTEL_SPAN_SCOPE("outer");
  polytel_span_ctx_t outer = current(), bad, fresh, c;
  assert_int_equal(polytel_traceparent_parse("00-zz", &bad), POLYTEL_EINVAL);
  assert_int_equal(polytel_context_attach(&bad), 0);
  assert_int_equal(polytel_span_ctx_current(&c), POLYTEL_ENOCTX);
  polytel_span_begin("fresh");
  fresh = current();
  assert_memory_equal(fresh.parent_id, zero, 8);
  assert_memory_not_equal(fresh.trace_id, outer.trace_id, 16);
  polytel_span_end();
  polytel_context_detach();
  assert_int_equal(polytel_context_attach(NULL), POLYTEL_EINVAL); /* a level all the same */
  assert_int_equal(polytel_span_ctx_current(&c), POLYTEL_ENOCTX);
  polytel_context_detach();
  c = current();
  assert_memory_equal(c.span_id, outer.span_id, 8);
  polytel_span_end();
  polytel_memory_sink_collect();
  same_span("fresh", 0, &fresh);
  same_span("outer", 0, &outer);
}

/* Past 8 attaches: an error and a level that changes nothing, so detaches still balance. */
static void test_attach_cap_balances(void **state) {
  (void)state;
  char tp[64];
  polytel_span_ctx_t r[10], c;
  for (int i = 0; i < 10; i++) {
    snprintf(tp, sizeof tp, "00-%032x-%016x-01", i + 1, i + 100);
    r[i] = remote_ctx(tp);
    int rc = polytel_context_attach(&r[i]);
    assert_int_equal(rc, i < POLYTEL__MAX_ATTACH ? 0 : POLYTEL_ENOMEM);
  }
  c = current();
  assert_memory_equal(c.span_id, r[POLYTEL__MAX_ATTACH - 1].span_id, 8); /* the 8th is the one in force */
  polytel_context_detach();
  polytel_context_detach(); /* the two refused levels */
  c = current();
  assert_memory_equal(c.span_id, r[POLYTEL__MAX_ATTACH - 1].span_id, 8);
  for (int i = POLYTEL__MAX_ATTACH - 1; i >= 0; i--) {
    c = current();
    assert_memory_equal(c.span_id, r[i].span_id, 8);
    polytel_context_detach();
  }
  assert_int_equal(polytel_span_ctx_current(&c), POLYTEL_ENOCTX);
  polytel_context_detach(); /* unmatched: ignored */
  assert_int_equal(polytel_span_ctx_current(&c), POLYTEL_ENOCTX);
  polytel_span_begin("root");
  c = current();
  assert_memory_equal(c.parent_id, zero, 8);
  polytel_span_end();
}

/* Spans begun before an attach that end inside it: the attach's depth follows, on both sides. */
static void test_misnested_end_inside_attach(void **state) {
  (void)state;
  polytel_span_ctx_t r = remote_ctx("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), b, d;
  polytel_span_begin("a");
  polytel_span_begin("a2");
  assert_int_equal(polytel_context_attach(&r), 0);
  polytel_span_end(); /* a2, begun before the attach */
  polytel_span_end(); /* a */
  polytel_span_begin("b");
  b = current();
  assert_memory_equal(b.parent_id, r.span_id, 8);
  polytel_span_begin("d");
  d = current();
  polytel_span_end();
  polytel_span_end();
  polytel_context_detach();
  polytel_memory_sink_collect();
  same_span("b", 0, &b);
  same_span("d", 0, &d);
  assert_non_null(find(POLYTEL_RECORD_SPAN, "a", 0));
}

/* An unsampled remote parent (flags 00) under parentbased_always_on: nothing exported, ids and logs kept. */
static void test_unsampled_parent(void **state) {
  (void)state;
  polytel_span_ctx_t r = remote_ctx("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"), job, sub;
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  assert_int_equal(polytel_context_attach(&r), 0);
  polytel_span_ctx_t c = current();
  assert_int_equal(c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, 0);
  polytel_span_begin("job");
  job = current();
  assert_int_equal(job.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, 0);
  assert_memory_equal(job.parent_id, r.span_id, 8);
  {
    POLYTEL_SPAN_SCOPE("sub"); /* children and their ids work inside an unsampled span */
    sub = current();
    assert_memory_equal(sub.parent_id, job.span_id, 8);
    assert_int_equal(sub.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, 0);
    polytel_log(POLYTEL_LEVEL_INFO, "unsampled", "a log in an unsampled span %d", 7);
  }
  polytel_span_end();
  polytel_context_detach();
  polytel_stats(&s1);
  assert_int_equal(s1.spans_recorded - s0.spans_recorded, 0); /* not records */
  assert_int_equal(s1.logs_recorded - s0.logs_recorded, 1);
  polytel_memory_sink_collect();
  assert_int_equal(count(POLYTEL_RECORD_SPAN, NULL), 0);
  const polytel_record_t *l = find(POLYTEL_RECORD_LOG, "unsampled", 0);
  assert_non_null(l);
  assert_memory_equal(l->trace_id, r.trace_id, 16);
  assert_memory_equal(l->span_id, sub.span_id, 8);
  polytel_stats(&s1);
  assert_int_equal(s1.recorded, s1.exported + s1.dropped + s1.unconfirmed + s1.pending);
  /* A sampled parent right after: recorded and exported again. */
  r = remote_ctx("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  assert_int_equal(polytel_context_attach(&r), 0);
  polytel_span_begin("sampled_job");
  c = current();
  assert_int_equal(c.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED, POLYTEL_TRACE_FLAG_SAMPLED);
  polytel_span_end();
  polytel_context_detach();
  polytel_memory_sink_collect();
  same_span("sampled_job", 0, &c);
}

/* Refused and dropped begins take no id number, on either side. */
static void test_refused_begins_keep_numbering(void **state) {
  (void)state;
  polytel_span_ctx_t deepest, after, c;
  for (int i = 0; i < POLYTEL__MAX_DEPTH + 3; i++) {
    polytel_span_begin("deep");
    if (i == POLYTEL__MAX_DEPTH - 1) deepest = current();
  }
  c = current(); /* past the cap: the deepest recorded span is current */
  assert_memory_equal(c.span_id, deepest.span_id, 8);
  polytel_span_begin(NULL); /* refused: dropped_invalid */
  c = current();
  assert_memory_equal(c.span_id, deepest.span_id, 8);
  polytel_span_end();
  for (int i = 0; i < POLYTEL__MAX_DEPTH + 3; i++) polytel_span_end();
  polytel_span_begin("after");
  after = current();
  polytel_span_end();
  polytel_memory_sink_collect();
  same_span("deep", 0, &deepest); /* the innermost recorded one ends first */
  same_span("after", 0, &after);
  assert_int_equal(count(POLYTEL_RECORD_SPAN, "deep"), POLYTEL__MAX_DEPTH);
}

/* Pool full while nothing drains (deferred phase 1, 4 blocks): dropped begins, then ids still agree. */
static void test_dropped_begins_keep_numbering(void **state) {
  (void)state;
  polytel_shutdown(1000);
  setenv("TELEMETRY_ENABLED", "true", 1);
  setenv("POLYTEL_MAX_MEMORY", "262144", 1);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_memory_sink_enable(100000), 0);
  polytel_span_ctx_t outer, child, root, c;
  polytel_span_begin("outer");
  outer = current();
  polytel_stats_t st;
  do {
    polytel_log(POLYTEL_LEVEL_INFO, "fill", "%d", 1);
    polytel_stats(&st);
  } while (st.dropped_buffer_full == 0);
  polytel_span_begin("lost");
  c = current(); /* a dropped span is not current: its parent is */
  assert_memory_equal(c.span_id, outer.span_id, 8);
  polytel_span_begin("lost_child");
  polytel_span_end();
  polytel_span_end();
  polytel_memory_sink_collect(); /* the pool empties */
  polytel_span_begin("child");
  child = current();
  assert_memory_equal(child.parent_id, outer.span_id, 8);
  polytel_span_end();
  polytel_span_end(); /* outer */
  polytel_span_begin("root");
  root = current();
  polytel_span_end();
  polytel_memory_sink_collect();
  same_span("outer", 0, &outer);
  same_span("child", 0, &child);
  same_span("root", 0, &root);
  assert_null(find(POLYTEL_RECORD_SPAN, "lost", 0));
  polytel_stats(&st);
  assert_true(st.dropped_buffer_full >= 2);
  assert_int_equal(st.recorded, st.exported + st.dropped + st.unconfirmed + st.pending);
}

typedef struct {
  polytel_span_ctx_t remote;
  polytel_span_ctx_t seen[3];
} worker_t;

/* A consumer thread: attach what a producer sent, nest, record the ids it computed. */
static void *worker(void *arg) {
  worker_t *w = arg;
  polytel_context_attach(&w->remote);
  polytel_span_begin("consume");
  polytel_span_ctx_current(&w->seen[0]);
  polytel_span_begin("step");
  polytel_span_ctx_current(&w->seen[1]);
  polytel_span_end();
  polytel_span_end();
  polytel_context_detach();
  polytel_span_begin("own");
  polytel_span_ctx_current(&w->seen[2]);
  polytel_span_end();
  return NULL;
}

static void test_threads_and_traceparent(void **state) {
  (void)state;
  polytel_span_begin("produce");
  polytel_span_ctx_t prod = current();
  char tp[POLYTEL_TRACEPARENT_LEN + 1];
  assert_int_equal(polytel_traceparent_format(&prod, tp, sizeof tp), 0);
  worker_t w[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    assert_int_equal(polytel_traceparent_parse(tp, &w[i].remote), 0);
    assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  polytel_span_end();
  polytel_memory_sink_collect();
  same_span("produce", 0, &prod);
  for (int i = 0; i < 2; i++) {
    assert_memory_equal(w[i].seen[0].trace_id, prod.trace_id, 16);
    assert_memory_equal(w[i].seen[0].parent_id, prod.span_id, 8);
    assert_memory_equal(w[i].seen[1].parent_id, w[i].seen[0].span_id, 8);
    assert_memory_not_equal(w[i].seen[2].trace_id, prod.trace_id, 16);
  }
  assert_memory_not_equal(w[0].seen[0].span_id, w[1].seen[0].span_id, 8); /* per-thread keys */
  const char *names[] = {"consume", "step", "own"};
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < 2; i++) {
      const polytel_record_t *r0 = find(POLYTEL_RECORD_SPAN, names[k], 0);
      const polytel_record_t *r1 = find(POLYTEL_RECORD_SPAN, names[k], 1);
      assert_non_null(r0);
      assert_non_null(r1);
      const polytel_record_t *r = memcmp(r0->span_id, w[i].seen[k].span_id, 8) == 0 ? r0 : r1;
      assert_memory_equal(r->span_id, w[i].seen[k].span_id, 8);
      assert_memory_equal(r->trace_id, w[i].seen[k].trace_id, 16);
      assert_memory_equal(r->parent_id, w[i].seen[k].parent_id, 8);
    }
  }
}

/* A drain with no exporter (POLYTEL_EXPORTER=none): it only counts. Returns the items, as the pipeline does.
 */
static uint64_t drain_counting(void) {
  polytel__sink_t counter = {NULL, NULL, NULL, NULL};
  pthread_mutex_lock(&polytel__consume_mu);
  uint64_t got = polytel__consume(&counter, UINT64_MAX);
  pthread_mutex_unlock(&polytel__consume_mu);
  atomic_fetch_add(&polytel__acct.exported, got);
  return got;
}

/*
 * The count-only drain steps over leaf spans (a begin with its end right after it) without replaying them:
 * it must count exactly the sampled ones and number every begin, so that spans open across it, and spans
 * begun after it, keep the ids the calling thread gave them (a later drain that exports derives them).
 */
static void test_count_only_drain_keeps_numbering(void **state) {
  (void)state;
  polytel_span_ctx_t sampled = remote_ctx("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  polytel_span_ctx_t unsampled = remote_ctx("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  drain_counting(); /* whatever the tests before left */
  uint64_t items = 0;
  polytel_span_begin("outer");
  polytel_span_ctx_t outer = current();
  const int N = 5000; /* leaf pairs over several blocks */
  for (int i = 0; i < N; i++) {
    if (i % 7 == 0) {
      POLYTEL_SPAN_SCOPE("mid"); /* not a leaf: replayed */
      { POLYTEL_SPAN_SCOPE("leaf"); }
      polytel_span_begin("leaf2");
      polytel_span_end_status(POLYTEL_STATUS_ERROR, "x", NULL, 0); /* an EV_SPAN_END_DYN */
      polytel_span_begin("leaf3");
      polytel_span_end_status(POLYTEL_STATUS_OK, NULL, NULL, 0);
    } else if (i % 11 == 0) {
      polytel_span_begin("logged");
      polytel_log(POLYTEL_LEVEL_INFO, "ctx", "between a begin and its end %d", i);
      polytel_span_end();
    } else {
      POLYTEL_SPAN_SCOPE("leaf");
    }
  }
  assert_int_equal(polytel_context_attach(&unsampled), 0);
  for (int i = 0; i < 300; i++) {
    POLYTEL_SPAN_SCOPE("unsampled_leaf"); /* the sampler left them out: no items */
  }
  polytel_context_detach();
  assert_int_equal(polytel_context_attach(&sampled), 0);
  for (int i = 0; i < 300; i++) {
    POLYTEL_SPAN_SCOPE("remote_leaf");
  }
  polytel_span_begin("job"); /* open across the counting drain */
  polytel_span_ctx_t job = current();
  for (int i = 0; i < 100; i++) {
    POLYTEL_SPAN_SCOPE("job_leaf");
  }
  items += drain_counting();
  polytel_span_begin("child");
  polytel_span_ctx_t child = current();
  polytel_span_end();
  polytel_span_end(); /* job */
  polytel_context_detach();
  polytel_span_begin("root_after");
  polytel_span_ctx_t root_after = current();
  polytel_span_end();
  polytel_span_end(); /* outer */
  polytel_stats(&s1);
  /* Every span ended before the drain that the sampler kept, and every log: counted once, nothing else. */
  uint64_t n7 = (uint64_t)(N + 6) / 7, n11 = 0;
  for (int i = 0; i < N; i++) n11 += i % 7 != 0 && i % 11 == 0;
  uint64_t leaves = (uint64_t)N - n7; /* the plain leaves, "logged" included */
  assert_int_equal(items, leaves + 4 * n7 + n11 + 300 + 100);
  assert_int_equal(s1.spans_recorded - s0.spans_recorded, leaves + 4 * n7 + 300 + 100 + 4);
  assert_int_equal(s1.logs_recorded - s0.logs_recorded, n11);
  assert_int_equal(s1.sampled_out - s0.sampled_out, 300);
  /* The four spans that ended after it are exported with the ids the calling thread computed. */
  polytel_memory_sink_collect();
  assert_int_equal(count(POLYTEL_RECORD_SPAN, NULL), 4);
  const polytel_record_t *ch = same_span("child", 0, &child);
  /* A span begun before a counting drain has no name to export (nobody read it): "" (consumer.c). */
  const polytel_record_t *j = same_span("", 0, &job);
  /* Its start was kept by the counting drain, its end (packed: the low 56 bits) restored from it. */
  assert_true(j->start_ns <= ch->start_ns);
  assert_true(ch->start_ns <= ch->time_ns);
  assert_true(ch->time_ns <= j->time_ns);
  assert_memory_equal(j->trace_id, sampled.trace_id, 16);
  assert_memory_equal(child.parent_id, job.span_id, 8);
  same_span("root_after", 0, &root_after);
  const polytel_record_t *o = same_span("", 1, &outer);
  assert_true(o->start_ns <= j->start_ns);
  assert_true(j->time_ns <= o->time_ns);
  polytel_stats(&s1);
  assert_int_equal(s1.recorded, s1.exported + s1.dropped + s1.unconfirmed + s1.pending);
  assert_int_equal(s1.pending, 0);
}

/* A packed end keeps its timestamp's low 56 bits: the consumer restores the rest from its begin's. */
static void test_packed_end_timestamp(void **state) {
  (void)state;
  const uint64_t top = (uint64_t)1 << 56;
  uint64_t cases[][2] = {{1000, 1000},
                         {1000, 5000},
                         {top - 10, top + 5},
                         {3 * top + 7, 3 * top + 7 + top - 1},
                         {UINT64_MAX - 100, UINT64_MAX},
                         {0, top - 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t w = POLYTEL__EV_SPAN_END_PACKED | cases[i][1] << 8;
    assert_int_equal(polytel__packed_end_ts(cases[i][0], w), cases[i][1]);
  }
  /* A span across a 2 ms sleep lasts more than 1 ms once exported (the tick rate is an estimate). */
  polytel_span_begin("slept");
  usleep(2000);
  polytel_span_end();
  polytel_memory_sink_collect();
  const polytel_record_t *r = find(POLYTEL_RECORD_SPAN, "slept", 0);
  assert_non_null(r);
  assert_true(r->time_ns >= r->start_ns + 1000000u);
}

/* A real fork: the child's ids are its own (never the parent's), agree with its export, attaches survive. */
static void test_fork(void **state) {
  (void)state;
  polytel_span_ctx_t r = remote_ctx("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  polytel_span_ctx_t before[4];
  for (int i = 0; i < 4; i++) {
    polytel_span_begin("parent");
    before[i] = current();
    polytel_span_end();
  }
  assert_int_equal(polytel_context_attach(&r), 0);
  fflush(NULL);
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int bad = 0;
    polytel_span_ctx_t c[4];
    for (int i = 0; i < 4; i++) {
      polytel_span_begin("child");
      polytel_span_ctx_current(&c[i]);
      polytel_span_end();
      bad |= memcmp(c[i].trace_id, r.trace_id, 16) != 0; /* still inside the attach */
      bad |= (memcmp(c[i].parent_id, r.span_id, 8) != 0) << 1;
      for (int j = 0; j < 4; j++) bad |= (memcmp(c[i].span_id, before[j].span_id, 8) == 0) << 2;
    }
    polytel_context_detach();
    polytel_span_begin("child_root");
    polytel_span_ctx_t root;
    polytel_span_ctx_current(&root);
    polytel_span_end();
    polytel_memory_sink_collect();
    for (int i = 0; i < 4; i++) {
      const polytel_record_t *e = find(POLYTEL_RECORD_SPAN, "child", (size_t)i);
      bad |= (!e || memcmp(e->span_id, c[i].span_id, 8) || memcmp(e->parent_id, r.span_id, 8)) << 3;
    }
    const polytel_record_t *e = find(POLYTEL_RECORD_SPAN, "child_root", 0);
    bad |= (!e || memcmp(e->span_id, root.span_id, 8) || memcmp(e->trace_id, root.trace_id, 16)) << 4;
    bad |= (find(POLYTEL_RECORD_SPAN, "parent", 0) != NULL) << 5;
    if (write(pipefd[1], c[0].span_id, 8) != 8) bad |= 1 << 6;
    _exit(bad);
  }
  close(pipefd[1]);
  uint8_t child_id[8];
  assert_int_equal(read(pipefd[0], child_id, 8), 8);
  close(pipefd[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  /* The parent goes on numbering with its own key: its next span is not the child's first. */
  polytel_span_begin("parent_after");
  polytel_span_ctx_t after = current();
  polytel_span_end();
  polytel_context_detach();
  assert_memory_not_equal(after.span_id, child_id, 8);
  polytel_memory_sink_collect();
  same_span("parent_after", 0, &after);
  for (int i = 0; i < 4; i++) same_span("parent", (size_t)i, &before[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_no_context, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nested_ids_match_export, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ids_across_handoffs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attach_detach, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attach_no_context, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attach_cap_balances, setup, teardown),
      cmocka_unit_test_setup_teardown(test_misnested_end_inside_attach, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unsampled_parent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_begins_keep_numbering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dropped_begins_keep_numbering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads_and_traceparent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_count_only_drain_keeps_numbering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_packed_end_timestamp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
