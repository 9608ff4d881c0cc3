/* bench_timing.h — the one timing loop of the hot-path benches (polytel's bench_hotpath.c and the LTTng peer;
 * bench/peers/micromegas/src/main.rs is its line-for-line Rust port): best of BENCH_RUNS runs of BENCH_N
 * calls, each run on a fresh thread after 1000 warm-up calls, beside one rdtsc timed the same way; wall time
 * and the calling thread's CPU time from the same runs. */
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
  pthread_barrier_t *start;
  uint64_t wall_ns, cpu_ns; /* CLOCK_MONOTONIC, and this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) */
} bench_job_t;

static inline void *bench_run_job(void *arg) {
  bench_job_t *j = arg;
  j->fn(BENCH_WARMUP); /* register the thread, warm the caches */
  if (j->start) pthread_barrier_wait(j->start);
  uint64_t c0 = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID), w0 = bench_clock_ns(CLOCK_MONOTONIC);
  j->fn(j->n);
  j->wall_ns = bench_clock_ns(CLOCK_MONOTONIC) - w0;
  j->cpu_ns = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
  return NULL;
}

/* ns per call on each thread, best of BENCH_RUNS by each clock: wall time, and the calling thread's own CPU
 * time (which leaves out the time it waited for a core, e.g. while another thread of the process ran). */
typedef struct {
  double wall, cpu;
} bench_result_t;

/*
 * Best of BENCH_RUNS (the least disturbed run on a shared VM). With more than one thread they start together
 * (a barrier after the warm-up) and the figure is the mean of the threads' own costs. `between` runs after
 * each run (polytel: a flush, so the consumer catches up), may be NULL.
 */
static inline bench_result_t bench_measure_threads(bench_op_fn fn, int threads, void (*between)(void)) {
  bench_result_t best = {1e30, 1e30};
  enum { MAXT = 8 };
  if (threads > MAXT) threads = MAXT;
  for (int r = 0; r < BENCH_RUNS; r++) {
    pthread_t th[MAXT];
    bench_job_t jobs[MAXT];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
      jobs[t] = (bench_job_t){fn, BENCH_N, threads > 1 ? &start : NULL, 0, 0};
      pthread_create(&th[t], NULL, bench_run_job, &jobs[t]);
    }
    uint64_t wall = 0, cpu = 0;
    for (int t = 0; t < threads; t++) {
      pthread_join(th[t], NULL);
      wall += jobs[t].wall_ns, cpu += jobs[t].cpu_ns;
    }
    pthread_barrier_destroy(&start);
    double w = (double)wall / threads / BENCH_N, c = (double)cpu / threads / BENCH_N;
    if (w < best.wall) best.wall = w;
    if (c < best.cpu) best.cpu = c;
    if (between) between();
  }
  return best;
}

static inline bench_result_t bench_measure2(bench_op_fn fn, void (*between)(void)) {
  return bench_measure_threads(fn, 1, between);
}

/* The anchor before and after the operations, the lower of each: a slow phase of a shared machine during one
 * of the two does not inflate it (and so flatter every ratio to it). */
static inline bench_result_t bench_anchor_min(bench_result_t a, bench_result_t b) {
  return (bench_result_t){a.wall < b.wall ? a.wall : b.wall, a.cpu < b.cpu ? a.cpu : b.cpu};
}

/* Wall time only, one thread. */
static inline double bench_measure(bench_op_fn fn, void (*between)(void)) {
  return bench_measure2(fn, between).wall;
}

#endif
