/* span_model.c — the span model end to end, for tests/integration/test_span_model.py: async spans with
 * kinds, events, links, arrays, scopes and tracestate, logs inside sampled and unsampled spans, a thread
 * span, then N root spans for the sampler. Prints the ids it made and its stats as JSON lines. */
#include <polytel.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Usage: span_model [--roots N]. Configuration (sampler, limits, endpoint) comes from the environment. */

static void hex(char *out, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void print_ctx(const char *what, const polytel_span_ctx_t *c) {
  char t[33], s[17];
  hex(t, c->trace_id, 16);
  hex(s, c->span_id, 8);
  printf("{\"ctx\": \"%s\", \"trace_id\": \"%s\", \"span_id\": \"%s\", \"flags\": %u}\n", what, t, s,
         c->trace_flags);
}

int main(int argc, char **argv) {
  long roots = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--roots")) roots = atol(argv[i + 1]);
  }
  if (polytel_init_full_telemetry(NULL, NULL) != 0) {
    fprintf(stderr, "span_model: phase 2 failed\n");
    return 1;
  }

  if (roots == 0) {
    /* A producer, two jobs it enqueued, a consumer that links them, an exception, arrays, a scope. */
    polytel_span_ctx_t producer, job1, job2, remote, consumer, unsampled_parent, unsampled;
    polytel_span_start(NULL, &producer);
    polytel_span_start(&producer, &job1);
    polytel_span_start(&producer, &job2);
    print_ctx("producer", &producer);
    print_ctx("job1", &job1);
    print_ctx("job2", &job2);
    polytel_span_opts_t o;
    polytel_span_opts_init(&o);
    o.kind = POLYTEL_SPAN_KIND_PRODUCER;
    o.scope_name = "queue";
    o.scope_version = "1.2";
    polytel_span_finish_ex(&job1, "enqueue 1", POLYTEL_STATUS_OK, NULL, NULL, 0, &o);
    polytel_span_finish_ex(&job2, "enqueue 2", POLYTEL_STATUS_OK, NULL, NULL, 0, &o);
    o.kind = POLYTEL_SPAN_KIND_SERVER;
    polytel_span_finish_ex(&producer, "request", POLYTEL_STATUS_UNSET, NULL, NULL, 0, &o);

    char tp[POLYTEL_TRACEPARENT_LEN + 1];
    polytel_traceparent_format(&job2, tp, sizeof tp);
    polytel_traceparent_parse(tp, &remote); /* as the worker would read it from the job */
    polytel_span_start(&remote, &consumer);
    print_ctx("consumer", &consumer);
    polytel_str_t tags[] = {{"a", 1}, {"b\xc3\xa9", 3}};
    int64_t ids[] = {7, -8};
    double ratios[] = {0.25, 1e100};
    int oks[] = {1, 0};
    polytel_attr_t attrs[] = {POLYTEL_ATTR_STRS("tags", tags, 2),
                              POLYTEL_ATTR_INTS("ids", ids, 2),
                              POLYTEL_ATTR_DOUBLES("ratios", ratios, 2),
                              POLYTEL_ATTR_BOOLS("oks", oks, 2),
                              POLYTEL_ATTR_STR("long", "abcdefghij"),
                              POLYTEL_ATTR_INT("", 1),
                              POLYTEL_ATTR_INT("n1", 1),
                              POLYTEL_ATTR_INT("n2", 2)};
    attrs[5].key = "";
    polytel_attr_t ev_attrs[3], small[] = {POLYTEL_ATTR_INT("i", 1), POLYTEL_ATTR_INT("j", 2)};
    polytel_span_event_t events[3] = {{"first", 0, small, 2}, {"second", 0, NULL, 0}};
    polytel_span_exception_event(&events[2], ev_attrs, "ValueError", "bad input",
                                 "Traceback (most recent call last):\n  File \"job.py\", line 3");
    polytel_span_link_t links[] = {{job1, "vendor=one", small, 2}, {job2, NULL, NULL, 0}};
    polytel_span_opts_init(&o);
    o.kind = POLYTEL_SPAN_KIND_CONSUMER;
    o.scope_name = "worker";
    o.tracestate = "congo=t61rcWkgMzE";
    o.events = events;
    o.n_events = 3;
    o.links = links;
    o.n_links = 2;
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "worker", "in the consumer", 15, small, 1, &consumer);
    polytel_span_finish_ex(&consumer, "process", POLYTEL_STATUS_ERROR, "bad input", attrs, 8, &o);

    /* An unsampled remote parent: its child records nothing, its log is still exported, unsampled. */
    polytel_traceparent_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", &unsampled_parent);
    polytel_span_start(&unsampled_parent, &unsampled);
    print_ctx("unsampled", &unsampled);
    polytel_log_attrs(POLYTEL_LEVEL_WARN, "worker", "in the unsampled span", 21, NULL, 0, &unsampled);
    polytel_span_finish(&unsampled, "not recorded", POLYTEL_STATUS_OK, NULL, NULL, 0);
    {
      POLYTEL_SPAN_SCOPE("thread span");
      POLYTEL_INFO("worker", "in the thread span");
    }
  } else {
    /* The sampler over many roots: every id is printed, sampled or not. */
    for (long i = 0; i < roots; i++) {
      polytel_span_ctx_t s;
      polytel_span_start(NULL, &s);
      char t[33];
      hex(t, s.trace_id, 16);
      printf("{\"root\": \"%s\", \"flags\": %u}\n", t, s.trace_flags);
      polytel_span_finish(&s, "root", POLYTEL_STATUS_UNSET, NULL, NULL, 0);
    }
  }

  int rc = polytel_shutdown(30000);
  polytel_stats_t st;
  polytel_stats(&st);
  printf("{\"shutdown_rc\": %d, \"recorded\": %" PRIu64 ", \"exported\": %" PRIu64 ", \"dropped\": %" PRIu64
         ", \"unconfirmed\": %" PRIu64 ", \"pending\": %" PRIu64 ", \"spans_recorded\": %" PRIu64
         ", \"logs_recorded\": %" PRIu64 ", \"sampled_out\": %" PRIu64 "}\n",
         rc, st.recorded, st.exported, st.dropped, st.unconfirmed, st.pending, st.spans_recorded,
         st.logs_recorded, st.sampled_out);
  return 0;
}
