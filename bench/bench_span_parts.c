/* bench_span_parts.c — where a span pair's cycles go: polytel's POLYTEL_SPAN_SCOPE beside stand-ins that do
 * its work piece by piece (the same stores, checks and counters, in two out-of-line calls) on a private
 * buffer, interleaved in one process, best of 4 rounds x bench_timing.h's loop, then what the count-only
 * drain costs the loop thread per span. Not run by make bench: an analysis tool
 * (build/bench/bench_span_parts). What is left between the last stand-in and polytel is not the instructions
 * of the fast path but where its bytes go (blocks shared with the consumer thread). */
#include <polytel.h>

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_timing.h"

#ifdef BENCH_HAVE_RDTSC
#define TICKS() __rdtsc()
#else
#define TICKS() bench_clock_ns(CLOCK_MONOTONIC)
#endif

typedef struct {
  uint8_t *pos, *lim, *base;
  _Atomic uint32_t *committed;
  uint32_t depth;
  uint64_t masks[2];
  uint64_t n_spans;
} thr_t;

static __thread thr_t *g_t __attribute__((tls_model("initial-exec")));
static _Atomic int g_rec = 1;
static _Atomic uint32_t g_committed __attribute__((aligned(64)));

static void wrap(thr_t *t) {
  if (t->pos + 128 > t->lim + 64) t->pos = t->base;
}

/* S1: the packed pair's three words (type + name pointer, two timestamps), a bump each. */
__attribute__((noinline)) static void b1(const char *n) {
  thr_t *t = g_t;
  uint64_t *p = (uint64_t *)t->pos;
  p[0] = 13 | (uint64_t)(uintptr_t)n << 16, p[1] = TICKS();
  t->pos += 16;
}
__attribute__((noinline)) static void e1(void) {
  thr_t *t = g_t;
  uint64_t *p = (uint64_t *)t->pos;
  p[0] = 14 | TICKS() << 8;
  t->pos += 8;
  wrap(t);
}
/* S2: + the fast path's checks (recording, depth, name, room), the depth and the span count. */
__attribute__((noinline)) static void b2(const char *n) {
  thr_t *t = g_t;
  if (!(t && atomic_load_explicit(&g_rec, memory_order_relaxed) && t->depth < 64 && n &&
        t->pos + 32 <= t->lim + 64))
    abort();
  b1(n);
  t->depth++;
}
__attribute__((noinline)) static void e2(void) {
  thr_t *t = g_t;
  uint32_t d = t->depth - 1;
  if (!(d < 64 && !(((t->masks[0] | t->masks[1]) >> d) & 1))) abort();
  t->depth = d;
  t->n_spans++;
  e1();
}
/* S3: + the release store of the bytes committed, after each event, and the end's room reservation. */
__attribute__((noinline)) static void b3(const char *n) {
  b2(n);
  thr_t *t = g_t;
  t->lim -= 16;
  atomic_store_explicit(t->committed, (uint32_t)(t->pos - t->base), memory_order_release);
}
__attribute__((noinline)) static void e3(void) {
  e2();
  thr_t *t = g_t;
  t->lim += 16;
  atomic_store_explicit(t->committed, (uint32_t)(t->pos - t->base), memory_order_release);
}

static thr_t g_small, g_big;
static void use(thr_t *t, size_t bytes) {
  if (!t->base) {
    t->base = t->pos = malloc(bytes);
    memset(t->base, 1, bytes);
    t->lim = t->base + bytes - 128;
    t->committed = &g_committed;
  }
  g_t = t;
}

static void op_2ticks(int n) {
  uint64_t a = 0;
  for (int i = 0; i < n; i++) a += TICKS(), a ^= TICKS();
  bench_sink = a;
}
static void op_s1(int n) {
  use(&g_small, 64 << 10);
  for (int i = 0; i < n; i++) b1("x"), e1();
}
static void op_s2(int n) {
  use(&g_small, 64 << 10);
  for (int i = 0; i < n; i++) b2("x"), e2();
}
static void op_s3(int n) {
  use(&g_small, 64 << 10);
  for (int i = 0; i < n; i++) b3("x"), e3();
}
static void op_s4(int n) { /* S3 over 32 MiB: always lines the writer has not written lately */
  use(&g_big, 32 << 20);
  for (int i = 0; i < n; i++) b3("x"), e3();
}
static void op_polytel(int n) {
  for (int i = 0; i < n; i++) {
    POLYTEL_SPAN_SCOPE("bench.span");
  }
}

/* The CPU time (ns) the loop thread has used so far, from /proc (schedstat's first field); 0 if not found. */
static uint64_t loop_thread_cpu_ns(void) {
  DIR *d = opendir("/proc/self/task");
  uint64_t ns = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    char path[96], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    int ok = fgets(comm, sizeof comm, f) != NULL && !strncmp(comm, "polytel-loop", 12);
    fclose(f);
    if (!ok) continue;
    snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", e->d_name);
    if ((f = fopen(path, "r")) != NULL) {
      unsigned long long v = 0;
      if (fscanf(f, "%llu", &v) == 1) ns = v;
      fclose(f);
    }
  }
  if (d) closedir(d);
  return ns;
}

/*
 * What the count-only drain costs per span, wherever it runs: the loop thread's CPU time over BENCH_RUNS runs
 * of polytel spans and the flush after them (the caller's CPU time in the flush added), per span recorded.
 */
static double drain_ns_per_span(void) {
  polytel_flush(5000);
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  uint64_t l0 = loop_thread_cpu_ns();
  bench_measure2(op_polytel, NULL);
  uint64_t c0 = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
  polytel_flush(5000);
  uint64_t flush_cpu = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0, l1 = loop_thread_cpu_ns();
  polytel_stats(&s1);
  uint64_t spans = s1.recorded - s0.recorded;
  return l0 && spans ? (double)(l1 - l0 + flush_cpu) / (double)spans : -1;
}

int main(void) {
  setenv("TELEMETRY_ENABLED", "true", 0);
  setenv("POLYTEL_CONSOLE", "off", 0);
  setenv("POLYTEL_EXPORTER", "none", 0);
  if (polytel_init_full_telemetry(NULL, NULL) != 0) return 1;
  struct {
    const char *name;
    bench_op_fn fn;
    double best, best_cpu;
  } v[] = {
      {"one " BENCH_ANCHOR, bench_op_rdtsc, 1e30, 1e30},
      {"two " BENCH_ANCHOR " inline", op_2ticks, 1e30, 1e30},
      {"S1 stores + 2 timestamps, 2 calls", op_s1, 1e30, 1e30},
      {"S2 S1 + checks, depth, count", op_s2, 1e30, 1e30},
      {"S3 S2 + commit store, reservation", op_s3, 1e30, 1e30},
      {"S4 S3 on a 32 MiB buffer", op_s4, 1e30, 1e30},
      {"polytel span begin+end", op_polytel, 1e30, 1e30},
  };
  int nv = (int)(sizeof v / sizeof v[0]);
  for (int r = 0; r < 4; r++)
    for (int i = 0; i < nv; i++) {
      bench_result_t x = bench_measure2(v[i].fn, NULL);
      if (x.wall < v[i].best) v[i].best = x.wall;
      if (x.cpu < v[i].best_cpu) v[i].best_cpu = x.cpu;
    }
  /* The thread's CPU time beside wall time: on a loaded machine only the former still compares. */
  printf("| variant | ns/pair | x %s | CPU ns/pair | x %s |\n|---|---:|---:|---:|---:|\n", BENCH_ANCHOR,
         BENCH_ANCHOR);
  for (int i = 0; i < nv; i++)
    printf("| %s | %.2f | %.2fx | %.2f | %.2fx |\n", v[i].name, v[i].best, v[i].best / v[0].best,
           v[i].best_cpu, v[i].best_cpu / v[0].best_cpu);
  double drain = 1e30;
  for (int r = 0; r < 4; r++) {
    double x = drain_ns_per_span();
    if (x >= 0 && x < drain) drain = x;
  }
  if (drain < 1e30)
    printf(
        "\ncount-only drain (POLYTEL_EXPORTER=none), best of 4: %.2f ns of the loop thread's CPU per span\n",
        drain);
  polytel_shutdown(2000);
  return 0;
}
