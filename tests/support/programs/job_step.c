/* job_step.c — one step of a job run in another process: continues the caller's trace from a parent passed on
 * the command line, on three threads. The cross-process case of examples/python/jobs.py and the trace view.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <polytel.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Usage: job_step TRACE_ID SPAN_ID [ROWS]   (32 and 16 hex digits: the parent span, in another process)
 * Configuration comes from the environment (TELEMETRY_ENABLED, POLYTEL_EXPORTER, OTEL_SERVICE_NAME, ...).
 * Records: "store" (child of the given span) { "store.write" on two named threads, "store.commit" }, with
 * logs on each, and a counter. Exit status 2 on bad arguments.
 */

static polytel_span_ctx_t store;
static int rows = 100;

static int hex_to(const char *s, uint8_t *out, size_t n) {
  if (strlen(s) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void *writer(void *arg) {
  int part = (int)(intptr_t)arg;
  char name[16];
  snprintf(name, sizeof name, "writer-%d", part);
  pthread_setname_np(pthread_self(), name); /* before its first event: polytel reads the OS name then */
  polytel_span_ctx_t w;
  polytel_span_start(&store, &w);
  polytel_attr_t a[] = {POLYTEL_ATTR_INT("store.part", part), POLYTEL_ATTR_INT("store.rows", rows / 2)};
  char msg[64];
  int n = snprintf(msg, sizeof msg, "writing part %d (%d rows)", part, rows / 2);
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "job_step", msg, (size_t)n, a, 1, &w);
  sleep_ms(4 + 3 * part);
  if (part == 1) {
    static const char slow[] = "part 1: fsync took longer than expected";
    polytel_log_attrs(POLYTEL_LEVEL_WARN, "job_step", slow, sizeof slow - 1, a, 1, &w);
  }
  polytel_span_finish(&w, "store.write", POLYTEL_STATUS_OK, NULL, a, 2);
  polytel_counter_add("store.rows_written", "{row}", rows / 2, NULL, 0);
  return NULL;
}

int main(int argc, char **argv) {
  polytel_span_ctx_t parent = {0};
  if (argc < 3 || hex_to(argv[1], parent.trace_id, 16) || hex_to(argv[2], parent.span_id, 8)) {
    fprintf(stderr, "usage: job_step TRACE_ID(32 hex) SPAN_ID(16 hex) [ROWS]\n");
    return 2;
  }
  if (argc > 3) rows = atoi(argv[3]);
  /* The caller hands its span's ids, not a traceparent: it recorded them, so the parent is sampled (the
   * parent-based default sampler would otherwise leave this whole step out). */
  parent.trace_flags = POLYTEL_TRACE_FLAG_SAMPLED;
  polytel_init_full_telemetry(NULL, NULL);
  polytel_thread_set_name("main");
  polytel_span_start(&parent, &store);
  polytel_attr_t sa[] = {POLYTEL_ATTR_INT("store.rows", rows), POLYTEL_ATTR_STR("db.system", "sqlite")};
  static const char begin[] = "store step started in a separate process";
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "job_step", begin, sizeof begin - 1, NULL, 0, &store);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  polytel_span_ctx_t commit;
  polytel_span_start(&store, &commit);
  sleep_ms(2);
  polytel_span_finish(&commit, "store.commit", POLYTEL_STATUS_OK, NULL, NULL, 0);
  polytel_span_finish(&store, "store", POLYTEL_STATUS_OK, NULL, sa, 2);
  return polytel_shutdown(5000) == 0 ? 0 : 1;
}
