/* chain_producer.c — the C end of tests/smoke/test_chain.py: producer spans whose traceparent and baggage go
 * into a queue file, as a web process would enqueue jobs for a worker in another language.
 */
#include <polytel.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Usage: chain_producer JOBS QUEUE_FILE
 * Configuration comes from the environment (TELEMETRY_ENABLED, OTEL_*, the sampler). For each job j (0 to
 * JOBS-1), a PRODUCER span "enqueue job" (a new trace; chain.job = j) and one line in QUEUE_FILE:
 *   {"job": j, "headers": {"traceparent": "00-…", "baggage": "tenant=acme%20corp/job%20<j>"}}
 * The baggage entry (tenant = "acme corp/job <j>") is formatted by polytel_baggage_format. Then one line on
 * stdout: {"lang": "c", "stats": {...}} (polytel_stats after a flush), and a bounded shutdown.
 * Exit status 2 on bad arguments, 1 when something could not be written.
 */

static int job_line(FILE *q, int j) {
  polytel_span_ctx_t job;
  if (polytel_span_start(NULL, &job) != 0) return -1;
  char tp[POLYTEL_TRACEPARENT_LEN + 1];
  if (polytel_traceparent_format(&job, tp, sizeof tp) != 0) return -1;
  char tenant[64], bag[128];
  int tn = snprintf(tenant, sizeof tenant, "acme corp/job %d", j);
  polytel_baggage_entry_t entry = {"tenant", 6, tenant, (size_t)tn};
  if (polytel_baggage_format(&entry, 1, bag, sizeof bag) <= 0) return -1;
  /* The header values are JSON-safe as they are: hex and baggage-octets (no '"' or '\\'). */
  fprintf(q, "{\"job\": %d, \"headers\": {\"traceparent\": \"%s\", \"baggage\": \"%s\"}}\n", j, tp, bag);
  polytel_attr_t a[] = {POLYTEL_ATTR_INT("chain.job", j),
                        POLYTEL_ATTR_STR("messaging.destination.name", "jobs")};
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.kind = POLYTEL_SPAN_KIND_PRODUCER;
  /* A full pool (POLYTEL_EDROPPED) is counted in the stats, which the test checks. */
  return polytel_span_finish_ex(&job, "enqueue job", POLYTEL_STATUS_UNSET, NULL, a, 2, &o) == POLYTEL_EINVAL
             ? -1
             : 0;
}

int main(int argc, char **argv) {
  int jobs = argc == 3 ? atoi(argv[1]) : 0;
  if (jobs <= 0) {
    fprintf(stderr, "usage: chain_producer JOBS QUEUE_FILE\n");
    return 2;
  }
  FILE *q = fopen(argv[2], "w");
  if (!q) {
    perror(argv[2]);
    return 1;
  }
  polytel_init_full_telemetry(NULL, NULL);
  int rc = 0;
  for (int j = 0; j < jobs && rc == 0; j++) rc = job_line(q, j);
  if (fclose(q) != 0) rc = -1;
  polytel_flush(10000);
  polytel_stats_t st;
  polytel_stats(&st);
  printf(
      "{\"lang\": \"c\", \"stats\": {\"spans_recorded\": %llu, \"sampled_out\": %llu, \"dropped\": %llu}}\n",
      (unsigned long long)st.spans_recorded, (unsigned long long)st.sampled_out,
      (unsigned long long)st.dropped);
  fflush(stdout);
  if (polytel_shutdown(10000) != 0) fprintf(stderr, "chain_producer: shutdown did not deliver everything\n");
  return rc ? 1 : 0;
}
