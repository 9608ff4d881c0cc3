/* bench_timing.h — the one timing loop of the hot-path benches (polytel's bench_hotpath.c and the LTTng peer;
 * bench/peers/micromegas/src/main.rs is its line-for-line Rust port): best of BENCH_RUNS runs of BENCH_N
 * calls, each run on a fresh thread after 1000 warm-up calls, beside one rdtsc timed the same way. */
#ifndef POLYTEL_BENCH_TIMING_H
#define POLYTEL_BENCH_TIMING_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_RDTSC 1
#define BENCH_ANCHOR "rdtsc"
#else
#define BENCH_ANCHOR "clock_gettime"
#endif

#define BENCH_N 4000000
#define BENCH_RUNS 5
#define BENCH_WARMUP 1000

typedef void (*bench_op_fn)(int n);

static inline uint64_t bench_clock_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t bench_sink;

/* The anchor: one rdtsc per iteration, summed so the compiler keeps every one. */
static inline void bench_op_rdtsc(int n) {
  uint64_t acc = 0;
#ifdef BENCH_HAVE_RDTSC
  for (int i = 0; i < n; i++) acc += __rdtsc();
#else
  struct timespec ts;
  for (int i = 0; i < n; i++) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    acc += (uint64_t)ts.tv_nsec;
  }
#endif
  bench_sink = acc;
}

static inline void bench_op_clock_gettime(int n) {
  uint64_t acc = 0;
  struct timespec ts;
  for (int i = 0; i < n; i++) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    acc += (uint64_t)ts.tv_nsec;
  }
  bench_sink = acc;
}

typedef struct {
  bench_op_fn fn;
  int n;
  clockid_t clk; /* CLOCK_MONOTONIC (wall) or CLOCK_THREAD_CPUTIME_ID (this thread's CPU) */
  pthread_barrier_t *start;
  uint64_t ns;
} bench_job_t;

static inline void *bench_run_job(void *arg) {
  bench_job_t *j = arg;
  j->fn(BENCH_WARMUP); /* register the thread, warm the caches */
  if (j->start) pthread_barrier_wait(j->start);
  uint64_t t0 = bench_clock_ns(j->clk);
  j->fn(j->n);
  j->ns = bench_clock_ns(j->clk) - t0;
  return NULL;
}

/*
 * Best of BENCH_RUNS, in ns per call on each thread: the least disturbed run on a shared VM. With more than
 * one thread they start together (a barrier after the warm-up) and the figure is the mean of the threads'
 * own costs. `between` runs after each run (polytel: a flush, so the consumer catches up), may be NULL.
 */
static inline double bench_measure_on(bench_op_fn fn, int threads, clockid_t clk, void (*between)(void)) {
  double best = 1e30;
  enum { MAXT = 8 };
  if (threads > MAXT) threads = MAXT;
  for (int r = 0; r < BENCH_RUNS; r++) {
    pthread_t th[MAXT];
    bench_job_t jobs[MAXT];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
      jobs[t] = (bench_job_t){fn, BENCH_N, clk, threads > 1 ? &start : NULL, 0};
      pthread_create(&th[t], NULL, bench_run_job, &jobs[t]);
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
      pthread_join(th[t], NULL);
      sum += jobs[t].ns;
    }
    pthread_barrier_destroy(&start);
    double per_op = (double)sum / threads / BENCH_N;
    if (per_op < best) best = per_op;
    if (between) between();
  }
  return best;
}

static inline double bench_measure(bench_op_fn fn, void (*between)(void)) {
  return bench_measure_on(fn, 1, CLOCK_MONOTONIC, between);
}

#endif
