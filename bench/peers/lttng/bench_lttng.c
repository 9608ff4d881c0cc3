/* bench_lttng.c — LTTng-UST timed with bench/bench_timing.h's loop (the one bench_hotpath.c uses): the same
 * four operations as tracepoints. Prints one JSON line. With BENCH_LTTNG_SESSION set (a snapshot session that
 * bench/peers/run.py created), each operation ends with a verification pass of VERIFY calls between two
 * markers and a snapshot of the session, in which run.py counts the events. */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "bench_tp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench_timing.h"

#define VERIFY 1000

static void op_span(int n) {
  for (int i = 0; i < n; i++) {
    lttng_ust_tracepoint(polytel_bench, span_begin, "bench.span");
    lttng_ust_tracepoint(polytel_bench, span_end, "bench.span");
  }
}

static void op_log_static(int n) {
  for (int i = 0; i < n; i++) lttng_ust_tracepoint(polytel_bench, log_static, "a static message");
}

static void op_log_2ints(int n) {
  for (int i = 0; i < n; i++)
    lttng_ust_tracepoint(polytel_bench, log_2ints, "request %d took %d us", i, n - i);
}

static void op_counter(int n) {
  for (int i = 0; i < n; i++) lttng_ust_tracepoint(polytel_bench, counter_add, "bench.counter", 1);
}

static const struct {
  const char *key;
  bench_op_fn fn;
} OPS[] = {
    {"span", op_span}, {"log_static", op_log_static}, {"log_2ints", op_log_2ints}, {"counter", op_counter}};

int main(void) {
  const char *session = getenv("BENCH_LTTNG_SESSION");
  if (session && !*session) session = NULL;
  bench_result_t tsc = bench_measure2(bench_op_rdtsc, NULL);
  printf(
      "{\"peer\": \"lttng\", \"version\": \"LTTng-UST %d.%d.%d\", \"session\": %s%s%s, \"verify_calls\": %d, "
      "\"ops\": {",
      LTTNG_UST_MAJOR_VERSION, LTTNG_UST_MINOR_VERSION, LTTNG_UST_PATCHLEVEL_VERSION, session ? "\"" : "",
      session ? session : "null", session ? "\"" : "", VERIFY);
  for (int i = 0; i < (int)(sizeof OPS / sizeof OPS[0]); i++) {
    bench_result_t ns = bench_measure2(OPS[i].fn, NULL);
    int snap = -1;
    if (session) {
      lttng_ust_tracepoint(polytel_bench, marker, i, 0);
      OPS[i].fn(VERIFY);
      lttng_ust_tracepoint(polytel_bench, marker, i, 1);
      char cmd[256];
      snprintf(cmd, sizeof cmd, "lttng snapshot record -s '%s' -n op%d >/dev/null", session, i);
      snap = system(cmd);
    }
    printf("%s\"%s\": {\"ns\": %.3f, \"cpu_ns\": %.3f, \"calls\": %llu, \"snapshot_rc\": %d}", i ? ", " : "",
           OPS[i].key, ns.wall, ns.cpu, (unsigned long long)(BENCH_N + BENCH_WARMUP) * BENCH_RUNS, snap);
  }
  tsc = bench_anchor_min(tsc, bench_measure2(bench_op_rdtsc, NULL));
  printf("}, \"anchor\": \"%s\", \"rdtsc_ns\": %.3f, \"rdtsc_cpu_ns\": %.3f}\n", BENCH_ANCHOR, tsc.wall,
         tsc.cpu);
  return 0;
}
