/* consumer.c — a C program using the installed polytel: phase 1, a log, a span, a counter, a traceparent,
 * shutdown. */
#include <polytel.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  /* Phase 1: console logging at once; no thread, loop or network. */
  int rc = polytel_init_console_only(NULL);
  if (rc != 0) {
    fprintf(stderr, "init: %s\n", polytel_strerror(rc));
    return 1;
  }
  /* Keep what is recorded in memory, so this example can show it without a collector. */
  polytel_memory_sink_enable(64);

  polytel_log(POLYTEL_LEVEL_INFO, "consumer", "hello from %s, version %s", "c-consumer", polytel_version());
  {
    POLYTEL_SPAN_SCOPE("consumer.work");
    for (int i = 0; i < 3; i++) POLYTEL_COUNTER_ADD("consumer.items", "{item}", 1);
  }
  polytel_memory_sink_collect();
  for (size_t i = 0; i < polytel_memory_sink_count(); i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind == POLYTEL_RECORD_SPAN) printf("span %s\n", r->name);
    if (r->kind == POLYTEL_RECORD_METRIC && strcmp(r->name, "consumer.items") == 0)
      printf("counter %s = %lld\n", r->name, (long long)r->int_value);
    if (r->kind == POLYTEL_RECORD_LOG) printf("log %s: %s\n", r->name, r->body);
  }
  /* A remote parent, read and written back as a propagator does. */
  polytel_span_ctx_t remote;
  char tp[POLYTEL_TRACEPARENT_LEN + 1];
  if (polytel_traceparent_parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &remote) == 0 &&
      polytel_traceparent_format(&remote, tp, sizeof tp) == 0)
    printf("traceparent %s sampled=%d\n", tp, remote.trace_flags & POLYTEL_TRACE_FLAG_SAMPLED);
  rc = polytel_shutdown(1000);
  printf("shutdown: %s\n", polytel_err_name(rc));
  return rc == 0 ? 0 : 1;
}
