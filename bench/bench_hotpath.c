/* bench_hotpath.c — calling-thread cost of spans, counters and logs beside one rdtsc (--peer: one JSON line
 * for bench/peers/run.py, which alternates it with micromegas and LTTng), and the per-thread cost at 2
 * threads against 1 (the default table). Asserts nothing about timings. */
#include <polytel.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_timing.h"

static void op_span(int n) {
  for (int i = 0; i < n; i++) {
    POLYTEL_SPAN_SCOPE("bench.span");
  }
}

static void op_counter(int n) {
  for (int i = 0; i < n; i++) POLYTEL_COUNTER_ADD("bench.counter", "1", 1);
}

static void op_log_static(int n) {
  for (int i = 0; i < n; i++) polytel_log(POLYTEL_LEVEL_INFO, "bench", "a static message");
}

static void op_log_2ints(int n) {
  for (int i = 0; i < n; i++) polytel_log(POLYTEL_LEVEL_INFO, "bench", "request %d took %d us", i, n - i);
}

/*
 * Async spans, as the bindings record them: a child of a parent context, started and finished. Only API that
 * polytel had before the sampler, so bench/before_after.py builds this same file against the library of
 * before and of now. The unsampled parent's flag is 0: the default sampler (parentbased_always_on) leaves
 * its child out; a library without a sampler records it like the sampled one.
 */
static polytel_span_ctx_t g_parent_on, g_parent_off;

static void op_async(const polytel_span_ctx_t *parent, int n) {
  for (int i = 0; i < n; i++) {
    polytel_span_ctx_t c;
    polytel_span_start(parent, &c);
    polytel_span_finish(&c, "bench.async", POLYTEL_STATUS_OK, NULL, NULL, 0);
  }
}
/* The bindings' log: copied target, message and attributes (polytel_log_attrs). */
static void op_log_attrs(int n) {
  polytel_attr_t a[2] = {POLYTEL_ATTR_STR("user", "alice"), POLYTEL_ATTR_INT("n", 0)};
  for (int i = 0; i < n; i++) {
    a[1].value.i = i;
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "bench", "a dynamic message", 17, a, 2, NULL);
  }
}

static void op_async_sampled(int n) {
  op_async(&g_parent_on, n);
}
static void op_async_unsampled(int n) {
  op_async(&g_parent_off, n);
}

static void flush(void) {
  polytel_flush(5000); /* let the consumer catch up between runs */
}

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

typedef struct {
  const char *key, *name;
  bench_op_fn fn;
  int events; /* polytel records per call (0: a counter add is an aggregate, not a record) */
} op_t;

static const op_t OPS[] = {
    {"span", "span begin+end pair", op_span, 1},
    {"log_static", "log, static message", op_log_static, 1},
    {"log_2ints", "log, two int args", op_log_2ints, 1},
    {"counter", "counter add", op_counter, 0},
};
enum { NOPS = sizeof OPS / sizeof OPS[0] };

/* The counter's total as the exporter would send it, read back through the memory sink. */
static int64_t counter_total(void) {
  int64_t v = -1;
  polytel_memory_sink_enable(64);
  polytel_memory_sink_collect();
  for (size_t i = 0; i < polytel_memory_sink_count(); i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind == POLYTEL_RECORD_METRIC && !strcmp(r->name, "bench.counter")) v = r->int_value;
  }
  polytel_memory_sink_disable();
  return v;
}

/* One line of JSON: the single-thread figures, each with what was recorded against what was called. */
static int peer_mode(void) {
  bench_result_t tsc = bench_measure2(bench_op_rdtsc, NULL);
  double cgt = bench_measure(bench_op_clock_gettime, NULL);
  printf("{\"peer\": \"polytel\", \"ops\": {");
  int ok = 1;
  for (int i = 0; i < NOPS; i++) {
    polytel_stats_t s0, s1;
    polytel_stats(&s0);
    bench_result_t ns = bench_measure2(OPS[i].fn, flush);
    polytel_stats(&s1);
    uint64_t calls = (uint64_t)(BENCH_N + BENCH_WARMUP) * BENCH_RUNS;
    uint64_t expected = calls * (uint64_t)OPS[i].events, recorded, dropped = s1.dropped - s0.dropped;
    if (OPS[i].events) {
      recorded = s1.recorded - s0.recorded;
    } else {
      int64_t total = counter_total(); /* every add of every run, none lost */
      expected = calls;
      recorded = total < 0 ? 0 : (uint64_t)total;
    }
    ok &= recorded == expected;
    printf(
        "%s\"%s\": {\"ns\": %.3f, \"cpu_ns\": %.3f, \"calls\": %llu, \"expected\": %llu, \"recorded\": %llu, "
        "\"dropped\": %llu}",
        i ? ", " : "", OPS[i].key, ns.wall, ns.cpu, (unsigned long long)calls, (unsigned long long)expected,
        (unsigned long long)recorded, (unsigned long long)dropped);
  }
  tsc = bench_anchor_min(tsc, bench_measure2(bench_op_rdtsc, NULL));
  printf("}, \"anchor\": \"%s\", \"rdtsc_ns\": %.3f, \"rdtsc_cpu_ns\": %.3f, \"clock_gettime_ns\": %.3f",
         BENCH_ANCHOR, tsc.wall, tsc.cpu, cgt);
  polytel_stats_t st;
  polytel_stats(&st);
  printf(
      ", \"verified\": %s, \"accounting\": {\"recorded\": %llu, \"exported\": %llu, \"dropped\": %llu, "
      "\"pending\": %llu}}\n",
      ok ? "true" : "false", (unsigned long long)st.recorded, (unsigned long long)st.exported,
      (unsigned long long)st.dropped, (unsigned long long)st.pending);
  return 0;
}

/*
 * --rows: one JSON line, every row on one thread (the four hot-path rows and the two async pairs), CPU time
 * of the calling thread and wall time, with what each recorded. bench/before_after.py runs it from two
 * builds, alternately, for its before/after table.
 */
static int rows_mode(void) {
  static const op_t rows[] = {
      {"span", "span begin+end pair", op_span, 1},
      {"log_static", "log, static message", op_log_static, 1},
      {"log_2ints", "log, two int args", op_log_2ints, 1},
      {"counter", "counter add", op_counter, 0},
      {"log_attrs", "log_attrs, copied message + 2 attributes", op_log_attrs, 1},
      {"async_sampled", "async span start+finish, sampled", op_async_sampled, 1},
      {"async_unsampled", "async span start+finish, unsampled", op_async_unsampled, 1},
  };
  bench_result_t tsc = bench_measure2(bench_op_rdtsc, NULL);
  printf("{\"ops\": {");
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    polytel_stats_t s0, s1;
    polytel_stats(&s0);
    bench_result_t ns = bench_measure2(rows[i].fn, flush);
    polytel_stats(&s1);
    printf(
        "%s\"%s\": {\"name\": \"%s\", \"ns\": %.3f, \"cpu_ns\": %.3f, \"recorded\": %llu, \"dropped\": %llu}",
        i ? ", " : "", rows[i].key, rows[i].name, ns.wall, ns.cpu,
        (unsigned long long)(s1.recorded - s0.recorded), (unsigned long long)(s1.dropped - s0.dropped));
  }
  tsc = bench_anchor_min(tsc, bench_measure2(bench_op_rdtsc, NULL));
  printf("}, \"anchor\": \"%s\", \"anchor_ns\": %.3f, \"anchor_cpu_ns\": %.3f}\n", BENCH_ANCHOR, tsc.wall,
         tsc.cpu);
  return 0;
}

/* Per-thread cost at 2 threads against 1: each thread's own CPU time, so a thread waiting for a core (three
 * runnable threads on a 2-core machine: two emitters and the consumer) is not counted as recording cost. */
static int threads_mode(void) {
  double tsc = bench_measure_threads(bench_op_rdtsc, 1, NULL).cpu;
  double tsc2 = bench_measure_threads(bench_op_rdtsc, 2, NULL).cpu;
  printf("## C hot path: 2 threads against 1, %d calls per thread, best of %d runs\n\n", BENCH_N, BENCH_RUNS);
  printf(
      "Per-thread recording cost, from each thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), so that\n"
      "waiting for a core is not counted. Phase 2 with POLYTEL_EXPORTER=none, POLYTEL_CONSOLE=off and\n"
      "POLYTEL_MAX_MEMORY=%s (the pool holds a whole run, so the rows time recording, not dropping).\n"
      "Anchor, same clock: one %s = %.2f ns on 1 thread, %.2f ns on each of 2.\n\n",
      getenv("POLYTEL_MAX_MEMORY"), BENCH_ANCHOR, tsc, tsc2);
  printf(
      "| operation | 1 thread ns/op | 2 threads ns/op (each) | 2 vs 1 | target | within | dropped (1) | "
      "dropped (2) |\n");
  printf("|---|---:|---:|---:|---:|:-:|---:|---:|\n");
  for (int i = 0; i < NOPS; i++) {
    polytel_stats_t s0, s1, s2;
    polytel_stats(&s0);
    double one = bench_measure_threads(OPS[i].fn, 1, flush).cpu;
    polytel_stats(&s1);
    double two = bench_measure_threads(OPS[i].fn, 2, flush).cpu;
    polytel_stats(&s2);
    double ratio = two / one;
    char d1[32] = "n/a", d2[32] = "n/a"; /* counter adds are not records and never drop */
    if (OPS[i].events) {
      snprintf(d1, sizeof d1, "%.1f%%", pct(s1.dropped - s0.dropped, s1.recorded - s0.recorded));
      snprintf(d2, sizeof d2, "%.1f%%", pct(s2.dropped - s1.dropped, s2.recorded - s1.recorded));
    }
    printf("| %s | %.2f | %.2f | %.2fx | <= 1.1x | %s | %s | %s |\n", OPS[i].name, one, two, ratio,
           ratio <= 1.1 ? "yes" : "no", d1, d2);
  }
  polytel_stats_t st;
  polytel_stats(&st);
  printf(
      "\nAccounting after the run: recorded %llu, exported %llu, dropped %llu (buffer full %llu), pending "
      "%llu\n",
      (unsigned long long)st.recorded, (unsigned long long)st.exported, (unsigned long long)st.dropped,
      (unsigned long long)st.dropped_buffer_full, (unsigned long long)st.pending);
  return 0;
}

int main(int argc, char **argv) {
  /* Steady state: full telemetry, a consumer draining blocks, nothing printed, nothing sent. */
  setenv("TELEMETRY_ENABLED", "true", 0);
  setenv("POLYTEL_CONSOLE", "off", 0);
  setenv("POLYTEL_EXPORTER", "none", 0);
  setenv("POLYTEL_MAX_MEMORY", "1073741824", 0);
  if (polytel_init_full_telemetry(NULL, NULL) != 0) {
    fprintf(stderr, "bench: phase 2 failed\n");
    return 1;
  }
  for (int i = 0; i < 16; i++) g_parent_on.trace_id[i] = g_parent_off.trace_id[i] = (uint8_t)(i + 1);
  for (int i = 0; i < 8; i++) g_parent_on.span_id[i] = g_parent_off.span_id[i] = (uint8_t)(0x10 + i);
  g_parent_on.trace_flags = 1; /* POLYTEL_TRACE_FLAG_SAMPLED, spelled so that older headers compile this */
  int rc = argc > 1 && !strcmp(argv[1], "--peer")   ? peer_mode()
           : argc > 1 && !strcmp(argv[1], "--rows") ? rows_mode()
                                                    : threads_mode();
  polytel_shutdown(5000);
  return rc;
}
