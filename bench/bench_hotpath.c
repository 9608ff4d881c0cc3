/* bench_hotpath.c — calling-thread cost of spans, counters and logs, beside one rdtsc, 1 and 2 threads. */
#include <polytel.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#endif

#define N 4000000
#define RUNS 5

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t g_sink;

static void op_rdtsc(int n) {
  uint64_t acc = 0;
#ifdef HAVE_RDTSC
  for (int i = 0; i < n; i++) acc += __rdtsc();
#else
  struct timespec ts;
  for (int i = 0; i < n; i++) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    acc += (uint64_t)ts.tv_nsec;
  }
#endif
  g_sink = acc;
}

static void op_clock_gettime(int n) {
  uint64_t acc = 0;
  struct timespec ts;
  for (int i = 0; i < n; i++) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    acc += (uint64_t)ts.tv_nsec;
  }
  g_sink = acc;
}

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

typedef void (*op_fn)(int);

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

typedef struct {
  op_fn fn;
  int n;
  uint64_t ns;
} job_t;

static void *run_job(void *arg) {
  job_t *j = arg;
  j->fn(1000); /* register the thread, warm the caches */
  uint64_t t0 = now_ns();
  j->fn(j->n);
  j->ns = now_ns() - t0;
  return NULL;
}

/* Best of RUNS: the least disturbed run on a shared VM. Returns ns/op (1 thread) or aggregate ns/op. */
static double measure(op_fn fn, int threads) {
  double best = 1e30;
  for (int r = 0; r < RUNS; r++) {
    pthread_t th[2];
    job_t jobs[2];
    uint64_t t0 = now_ns();
    for (int t = 0; t < threads; t++) {
      jobs[t] = (job_t){fn, N, 0};
      pthread_create(&th[t], NULL, run_job, &jobs[t]);
    }
    uint64_t worst = 0;
    for (int t = 0; t < threads; t++) {
      pthread_join(th[t], NULL);
      if (jobs[t].ns > worst) worst = jobs[t].ns;
    }
    (void)t0;
    double per_op = (double)worst / N / threads; /* aggregate: threads*N ops in `worst` ns */
    if (per_op < best) best = per_op;
    polytel_flush(2000); /* let the consumer catch up between runs */
  }
  return best;
}

int main(void) {
  /* Steady state: full telemetry, a consumer draining blocks, nothing printed, nothing sent. */
  setenv("TELEMETRY_ENABLED", "true", 0);
  setenv("POLYTEL_CONSOLE", "off", 0);
  setenv("POLYTEL_EXPORTER", "none", 0);
  if (polytel_init_full_telemetry(NULL, NULL) != 0) {
    fprintf(stderr, "bench: phase 2 failed\n");
    return 1;
  }
  double tsc = measure(op_rdtsc, 1);
  double cgt = measure(op_clock_gettime, 1);
  struct {
    const char *name;
    op_fn fn;
    double target;
  } ops[] = {
      {"span begin+end pair", op_span, 2.6},
      {"counter add", op_counter, 0.6},
      {"log, static message", op_log_static, 2.5},
      {"log, two int args", op_log_2ints, 3.5},
  };
  printf("## C hot path (calling thread), %d ops x best of %d runs\n\n", N, RUNS);
  printf(
      "Phase 2 with POLYTEL_EXPORTER=none and POLYTEL_CONSOLE=off: the recording cost, with the consumer\n");
  printf(
      "thread draining blocks. Anchor, measured in the same run: one %s = %.2f ns (clock_gettime = %.2f "
      "ns).\n\n",
#ifdef HAVE_RDTSC
      "rdtsc",
#else
      "clock_gettime",
#endif
      tsc, cgt);
  printf(
      "| operation | ns/op (1 thread) | x rdtsc | target | within | dropped | 2 threads: rate vs 1 thread "
      "| target | dropped |\n");
  printf("|---|---:|---:|---:|:-:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    /* Drops per row, beside the figure: a dropped event takes a cheaper path than a kept one. */
    polytel_stats_t s0, s1, s2;
    polytel_stats(&s0);
    double one = measure(ops[i].fn, 1);
    polytel_stats(&s1);
    double two = measure(ops[i].fn, 2);
    polytel_stats(&s2);
    double ratio = one / tsc, scale = one / two;
    printf("| %s | %.2f | %.2fx | <= %.1fx | %s | %.1f%% | %.2fx | >= 1.9x | %.1f%% |\n", ops[i].name, one,
           ratio, ops[i].target, ratio <= ops[i].target ? "yes" : "no",
           pct(s1.dropped - s0.dropped, s1.recorded - s0.recorded), scale,
           pct(s2.dropped - s1.dropped, s2.recorded - s1.recorded));
  }
  printf("| (reference) micromegas tracer, as published | ~20 | | | | | | | |\n\n");
  printf(
      "On 2 cores, two emitting threads leave the exporter thread no core of its own: when it falls\n"
      "behind, the bounded pool fills and events are dropped (counted: the 'dropped' columns).\n"
      "Counter adds are not events and never drop.\n\n");
  polytel_stats_t st;
  polytel_stats(&st);
  printf(
      "Accounting after the run: recorded %llu, exported %llu, dropped %llu (buffer full %llu), pending "
      "%llu\n",
      (unsigned long long)st.recorded, (unsigned long long)st.exported, (unsigned long long)st.dropped,
      (unsigned long long)st.dropped_buffer_full, (unsigned long long)st.pending);
  polytel_shutdown(5000);
  return 0;
}
