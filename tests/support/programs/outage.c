/* outage.c — reliability: emits logs at a paced rate for a fixed time (while a test takes the collector down
 * and back), then shuts down and prints the caller's cost, peak RSS and the exact accounting as one JSON
 * line. */
#include <polytel.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "vmhwm.h"

/*
 * Usage: outage [--rate N/s] [--seconds S] [--shutdown-ms N] [--counter 1]
 * Configuration from the environment. Each event is log "seq <n>" (n = 0, 1, ... unique), so the test can
 * find duplicates and losses. With --counter 1, each tick also adds its events to the cumulative counter
 * "outage.events" (snapshot ordering across an outage; its final value is "counter_total"). The loop runs in
 * 1 ms ticks of rate/1000 events; the time spent inside the polytel calls is measured per tick (the caller's
 * cost: its throughput is events / busy time). Output lines: STARTED {}            after phase 2, before the
 * first event RESULT {...}          after shutdown
 */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Peak RSS: VmHWM (vmhwm.h); ru_maxrss is printed beside it but carries pytest's size under pytest. */
static long max_rss_kib(void) {
  return vmhwm_kib();
}

static long ru_maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  long rate = 100000;
  double seconds = 8;
  uint32_t shutdown_ms = 30000;
  int counter = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--rate"))
      rate = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--shutdown-ms"))
      shutdown_ms = (uint32_t)atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--counter"))
      counter = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "outage: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (rate < 1000 || seconds <= 0) return 2;
  long rss_before_init = max_rss_kib();
  int init_rc = polytel_init_full_telemetry(NULL, NULL);
  long rss_after_init = max_rss_kib();
  printf("STARTED {}\n");
  fflush(stdout);

  const long per_tick = rate / 1000;
  const uint64_t ticks = (uint64_t)(seconds * 1000);
  uint64_t t0 = mono_ns(), busy_ns = 0, cpu0 = cpu_ns(), late_ticks = 0, worst_tick_ns = 0;
  /* Per-tick cost: the median is the caller's steady cost; the sum also carries preemption on a shared
   * machine. */
  uint64_t *tick_ns = calloc(ticks, sizeof *tick_ns);
  if (!tick_ns) return 1;
  int64_t seq = 0;
  for (uint64_t k = 0; k < ticks; k++) {
    uint64_t due = t0 + k * 1000000u;
    uint64_t now = mono_ns();
    if (now < due) {
      struct timespec ts = {0, (long)(due - now)};
      nanosleep(&ts, NULL);
    } else if (now - due > 1000000u) {
      late_ticks++; /* the machine (shared) or the caller fell behind: the loop catches up */
    }
    uint64_t b0 = mono_ns();
    for (long i = 0; i < per_tick; i++)
      polytel_log(POLYTEL_LEVEL_INFO, "outage", "seq %lld", (long long)seq++);
    if (counter) POLYTEL_COUNTER_ADD("outage.events", "1", per_tick);
    uint64_t d = mono_ns() - b0;
    busy_ns += d;
    tick_ns[k] = d;
    if (d > worst_tick_ns) worst_tick_ns = d;
  }
  uint64_t emit_cpu_ns = cpu_ns() - cpu0, wall_ns = mono_ns() - t0;
  /* Medians per 500 ms window: where in the run (up, down, recovering) the caller paid more. */
  char windows[2048];
  size_t wl = 0;
  windows[0] = '\0';
  for (uint64_t w = 0; w + 500 <= ticks && wl + 32 < sizeof windows; w += 500) {
    qsort(tick_ns + w, 500, sizeof *tick_ns, cmp_u64);
    wl += (size_t)snprintf(windows + wl, sizeof windows - wl, "%s%.1f", w ? ", " : "",
                           (double)tick_ns[w + 250] / (double)per_tick);
  }
  qsort(tick_ns, ticks, sizeof *tick_ns, cmp_u64);
  double median_ns_per_event = (double)tick_ns[ticks / 2] / (double)per_tick;
  double p99_ns_per_event = (double)tick_ns[ticks - 1 - ticks / 100] / (double)per_tick;
  free(tick_ns);
  polytel_stats_t mid;
  memset(&mid, 0, sizeof mid);
  polytel_stats(&mid);

  uint64_t s0 = mono_ns();
  int rc = polytel_shutdown(shutdown_ms);
  uint64_t shutdown_wall_ns = mono_ns() - s0;
  polytel_stats_t st;
  memset(&st, 0, sizeof st);
  polytel_stats(&st);
  printf(
      "RESULT {\"init_rc\": %d, \"shutdown_rc\": %d, \"emitted\": %lld, \"rate\": %ld, \"wall_s\": %.3f, "
      "\"busy_s\": %.4f, \"median_ns_per_event\": %.2f, \"p99_ns_per_event\": %.2f, \"window_median_ns\": "
      "[%s], \"emit_cpu_s\": %.4f, "
      "\"late_ticks\": %llu, \"worst_tick_ms\": %.3f, "
      "\"shutdown_s\": %.3f, \"max_rss_kib\": %ld, \"ru_maxrss_kib\": %ld, \"rss_before_init_kib\": %ld, "
      "\"rss_after_init_kib\": "
      "%ld, "
      "\"buffer_bytes_max\": %llu, \"buffer_bytes_at_end_of_emit\": %llu, \"recorded\": %llu, \"exported\": "
      "%llu, "
      "\"dropped\": %llu, \"pending\": %llu, \"dropped_buffer_full\": %llu, \"dropped_export\": %llu, "
      "\"dropped_invalid\": %llu, \"export_requests\": %llu, \"export_retries\": %llu, \"export_failures\": "
      "%llu, \"counter_total\": %lld, \"unconfirmed\": %llu, \"dropped_depth\": %llu, \"dropped_rejected\": "
      "%llu}\n",
      init_rc, rc, (long long)seq, rate, (double)wall_ns / 1e9, (double)busy_ns / 1e9, median_ns_per_event,
      p99_ns_per_event, windows, (double)emit_cpu_ns / 1e9, (unsigned long long)late_ticks,
      (double)worst_tick_ns / 1e6, (double)shutdown_wall_ns / 1e9, max_rss_kib(), ru_maxrss_kib(),
      rss_before_init, rss_after_init, (unsigned long long)st.buffer_bytes_max,
      (unsigned long long)mid.buffer_bytes, (unsigned long long)st.recorded, (unsigned long long)st.exported,
      (unsigned long long)st.dropped, (unsigned long long)st.pending,
      (unsigned long long)st.dropped_buffer_full, (unsigned long long)st.dropped_export,
      (unsigned long long)st.dropped_invalid, (unsigned long long)st.export_requests,
      (unsigned long long)st.export_retries, (unsigned long long)st.export_failures,
      counter ? (long long)seq : 0LL, (unsigned long long)st.unconfirmed,
      (unsigned long long)st.dropped_depth, (unsigned long long)st.dropped_rejected);
  return 0;
}
