/* worker_c.c — a C worker for the integration suites: threads emit spans, logs and a counter, then it shuts
 * down and prints its stats as one JSON line. */
#include <polytel.h>
#include <polytel/uv.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmhwm.h"

/*
 * Usage: worker_c [--threads N] [--events N] [--pre N] [--loop owned|host|host-after]
 *                 [--shutdown-ms N] [--flush-ms N]
 * Configuration comes from the environment (OTEL_*, TELEMETRY_ENABLED, POLYTEL_*).
 *  --pre N       N logs before phase 2 (phase 1 first: deferred when TELEMETRY_ENABLED=true)
 *  --loop owned  phase 2 on a polytel-owned loop thread (default)
 *  --loop host   phase 2 on this program's uv loop; shutdown from inside a loop callback
 *  --loop host-after  same, shutdown after uv_run returned
 *  --flush-ms N  polytel_flush(N) after the threads finished, before shutdown
 *  --flush-under-load 1  (owned loop) polytel_flush(10000) while the threads keep emitting (at most 2000
 *                events/s each); they stop when it returned. "emitted" lists each thread's event count.
 * Per event: span "outer" { span "inner" { log "event <i> from thread <t>" } }, counter worker.events += 1.
 */

static int n_threads = 4, n_events = 100, n_pre = 0, flush_ms = -1;
/* Generous by default: the suites that check exact delivery must not time out on a loaded machine; the
 * tests of bounded shutdown pass their own. */
static uint32_t shutdown_ms = 30000;
static const char *loop_mode = "owned";
static atomic_int threads_done;
static uv_async_t all_done;
static int shutdown_rc = 1, flush_rc = 1;
static uint64_t shutdown_elapsed_ms;
static int under_load, load_flush_rc = 1;
static atomic_int load_flush_returned;
static long emitted[64];

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *emit(void *arg) {
  int t = (int)(intptr_t)arg;
  long i;
  for (i = 0; i < n_events || (under_load && !atomic_load(&load_flush_returned)); i++) {
    /* Keeps emitting through the flush at a steady, bounded rate (<= 2000 events/s per thread): the test
     * receiver keeps up even on a loaded machine, so nothing has to be dropped. */
    if (under_load && i % 10 == 9) usleep(5000);
    polytel_span_begin("outer");
    polytel_span_begin("inner");
    polytel_log(POLYTEL_LEVEL_INFO, "worker", "event %ld from thread %d", i, t);
    polytel_span_end();
    polytel_span_end();
    POLYTEL_COUNTER_ADD("worker.events", "1", 1);
  }
  emitted[t] = i;
  if (atomic_fetch_add(&threads_done, 1) + 1 == n_threads && strcmp(loop_mode, "owned") != 0)
    uv_async_send(&all_done);
  return NULL;
}

static void do_shutdown(void) {
  if (flush_ms >= 0) flush_rc = polytel_flush((uint32_t)flush_ms);
  uint64_t t0 = now_ms();
  shutdown_rc = polytel_shutdown(shutdown_ms);
  shutdown_elapsed_ms = now_ms() - t0;
}

static void on_all_done(uv_async_t *a) {
  uv_close((uv_handle_t *)a, NULL);
  if (strcmp(loop_mode, "host") == 0) do_shutdown(); /* on the loop thread, inside a callback */
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads"))
      n_threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--events"))
      n_events = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pre"))
      n_pre = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--loop"))
      loop_mode = argv[i + 1];
    else if (!strcmp(argv[i], "--shutdown-ms"))
      shutdown_ms = (uint32_t)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--flush-ms"))
      flush_ms = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--flush-under-load"))
      under_load = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "worker_c: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (n_threads < 1 || n_threads > 64) return 2;

  int init1 = polytel_init_console_only(NULL);
  for (int i = 0; i < n_pre; i++) polytel_log(POLYTEL_LEVEL_INFO, "boot", "pre %d", i);
  const char *phase1 = polytel_phase_name(polytel_phase());

  int host = strcmp(loop_mode, "owned") != 0;
  uv_loop_t loop;
  if (host) {
    uv_loop_init(&loop);
    uv_async_init(&loop, &all_done, on_all_done);
  }
  int init2 = polytel_init_full_telemetry(host ? &loop : NULL, NULL);
  const char *phase2 = polytel_phase_name(polytel_phase());

  pthread_t th[64];
  for (int t = 0; t < n_threads; t++) pthread_create(&th[t], NULL, emit, (void *)(intptr_t)t);
  int loop_close = 0;
  if (host) {
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
    if (strcmp(loop_mode, "host-after") == 0) do_shutdown();
    uv_run(&loop, UV_RUN_DEFAULT); /* polytel's closed handles finish here */
    loop_close = uv_loop_close(&loop);
  } else {
    if (under_load) {
      usleep(100000);
      load_flush_rc = polytel_flush(10000);
      atomic_store(&load_flush_returned, 1);
    }
    for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
    do_shutdown();
  }

  polytel_stats_t st;
  memset(&st, 0, sizeof st);
  int stats_rc = polytel_stats(&st);
  printf(
      "{\"init1\": %d, \"init2\": %d, \"phase1\": \"%s\", \"phase2\": \"%s\", \"flush_rc\": %d, "
      "\"shutdown_rc\": %d, \"shutdown_ms\": %llu, \"loop_close\": %d, \"stats_rc\": %d, \"recorded\": %llu, "
      "\"exported\": %llu, \"dropped\": %llu, \"pending\": %llu, \"dropped_export\": %llu, "
      "\"dropped_buffer_full\": %llu, \"logs_recorded\": %llu, \"spans_recorded\": %llu, "
      "\"export_requests\": %llu, \"export_retries\": %llu, \"export_failures\": %llu, "
      "\"load_flush_rc\": %d, \"unconfirmed\": %llu, \"dropped_rejected\": %llu, \"dropped_invalid\": %llu, "
      "\"dropped_depth\": %llu, \"dropped_series\": %llu, \"metric_saturated\": %llu, \"emitted\": [",
      init1, init2, phase1, phase2, flush_rc, shutdown_rc, (unsigned long long)shutdown_elapsed_ms,
      loop_close, stats_rc, (unsigned long long)st.recorded, (unsigned long long)st.exported,
      (unsigned long long)st.dropped, (unsigned long long)st.pending, (unsigned long long)st.dropped_export,
      (unsigned long long)st.dropped_buffer_full, (unsigned long long)st.logs_recorded,
      (unsigned long long)st.spans_recorded, (unsigned long long)st.export_requests,
      (unsigned long long)st.export_retries, (unsigned long long)st.export_failures, load_flush_rc,
      (unsigned long long)st.unconfirmed, (unsigned long long)st.dropped_rejected,
      (unsigned long long)st.dropped_invalid, (unsigned long long)st.dropped_depth,
      (unsigned long long)st.dropped_series, (unsigned long long)st.metric_saturated);
  for (int t = 0; t < n_threads; t++) printf("%s%ld", t ? ", " : "", emitted[t]);
  printf("]}\n");
  printf("VMHWM %ld\n", vmhwm_kib()); /* peak RSS, for the hostile-collector figures */
  return 0;
}
