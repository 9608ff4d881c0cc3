/* test_pipeline.c — the export pipeline driven directly through pipeline.h, a fake host transport: outcomes
 * and their counts, partial_success, the retry schedule, metrics ordering, warning lines, abandon, the
 * shutdown line, the fall back from zstd to gzip; batching (batch size, schedule delay, the queue bound, the
 * in-flight cap) and the retry/drop policy outcome by outcome, with the accounting identity after each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if POLYTEL_WITH_UV
#include <zlib.h>
#endif

#include "capture.h"
#include "export/encode.h"
#include "record/record.h"
#include "export/pipeline.h"
#include "polytel.h"
#include "export/response.h"
#include "transport/transport.h"

#define EXPORT_TIMEOUT_MS 30000

static polytel__pipeline_t *pl;
static polytel_stats_t base;

static polytel_stats_t stats(void) {
  polytel_stats_t s;
  assert_int_equal(polytel_stats(&s), 0);
  assert_int_equal(s.recorded, s.exported + s.dropped + s.unconfirmed + s.pending);
  assert_int_equal(s.dropped, s.dropped_buffer_full + s.dropped_invalid + s.dropped_depth + s.dropped_export +
                                  s.dropped_rejected);
  return s;
}

/*
 * The transport is the test: a host transport that hands the pipeline to it (as the wasm binding's does), so
 * the test drives pump/next/done itself and scripts every answer.
 */
static const polytel__pipeline_api_t *fake_api;
static polytel__pipeline_t *fake_pl;
static int fake_started, fake_stopped;

static int fake_start(const polytel__transport_t *self, struct uv_loop_s *loop, polytel__pipeline_t *p,
                      const polytel__pipeline_api_t *api, const polytel__cfg_t *cfg) {
  (void)self, (void)loop, (void)cfg;
  fake_api = api, fake_pl = p;
  fake_started++;
  return 0;
}

static int fake_flush(uint32_t timeout_ms) {
  (void)timeout_ms;
  return 0;
}

/* What a transport does at stop: everything left is counted (abandon), the pipeline freed. */
static int fake_stop(uint32_t timeout_ms) {
  (void)timeout_ms;
  fake_api->abandon(fake_pl);
  fake_api->free(fake_pl);
  fake_pl = NULL;
  fake_stopped++;
  return 0;
}

static const polytel__transport_t fake_transport = {
    .name = "fake", .start = fake_start, .flush = fake_flush, .stop = fake_stop};

static int start(int metrics, const char *protocol) {
  unsetenv("POLYTEL_CONSOLE");
  unsetenv("TELEMETRY_ENABLED");
  setenv("POLYTEL_LOG_LEVEL", "warn", 1);             /* the test's own INFO logs stay off the console */
  setenv("OTEL_BLRP_SCHEDULE_DELAY", "100000000", 1); /* batches are cut by force() only */
  setenv("OTEL_BSP_SCHEDULE_DELAY", "100000000", 1);
  setenv("OTEL_METRIC_EXPORT_INTERVAL", "100000000", 1);
  setenv("OTEL_BLRP_EXPORT_TIMEOUT", "30000", 1);
  setenv("OTEL_BSP_EXPORT_TIMEOUT", "30000", 1);
  setenv("OTEL_METRIC_EXPORT_TIMEOUT", "30000", 1);
  setenv("OTEL_METRICS_EXPORTER", metrics ? "otlp" : "none", 1);
  setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol, 1);
  polytel_config_t c;
  polytel_config_init(&c);
  c.telemetry_enabled = 1;
  c.endpoint = "http://127.0.0.1:9";
  polytel__transport_set_host(&fake_transport);
  int started = fake_started;
  assert_int_equal(polytel_init_full_telemetry(NULL, &c), 0);
  assert_int_equal(fake_started, started + 1);
  assert_ptr_equal(fake_api, &polytel__pipeline_api);
  pl = fake_pl;
  assert_non_null(pl);
  base = stats();
  return 0;
}

static int setup(void **state) {
  (void)state;
  return start(0, "http/protobuf");
}
static int setup_json(void **state) {
  (void)state;
  return start(0, "http/json");
}
static int setup_metrics(void **state) {
  (void)state;
  return start(1, "http/protobuf");
}

static int teardown(void **state) {
  (void)state;
  int stopped = fake_stopped;
  polytel_shutdown(0); /* the transport's stop abandons and frees the pipeline */
  assert_int_equal(fake_stopped, stopped + 1);
  pl = NULL;
  return 0;
}

static void logs(int n) {
  for (int i = 0; i < n; i++) polytel_log(POLYTEL_LEVEL_INFO, "app", "record %d", i);
}

/* Every request ready at now, in order. */
static size_t ready(uint64_t now, polytel__request_t **out, size_t max) {
  size_t n = 0;
  polytel__request_t *r;
  while (n < max && (r = polytel__pipeline_next(pl, now)) != NULL) out[n++] = r;
  return n;
}

static polytel__request_t *one(uint64_t now, polytel__signal_t sig) {
  polytel__pipeline_force(pl, now);
  polytel__request_t *r[8];
  size_t n = ready(now, r, 8);
  assert_int_equal(n, 1);
  assert_int_equal(r[0]->signal, sig);
  return r[0];
}

static polytel__response_t http(int status, int64_t retry_after_ms) {
  return (polytel__response_t){
      .status = status, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = retry_after_ms};
}

static polytel__response_t net(polytel__net_class_t cls, int sent, const char *error) {
  return (polytel__response_t){.net = cls, .sent = sent, .retry_after_ms = -1, .error = error};
}

static size_t count_str(const char *hay, const char *needle) {
  size_t c = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) c++;
  return c;
}

/* ---------------------------------------------------------------- outcomes */

static void test_exported(void **state) {
  (void)state;
  logs(10);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  assert_int_equal(stats().pending - base.pending, 10);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, r, &ok, now), POLYTEL__DONE_EXPORTED);
  polytel_stats_t s = stats();
  assert_int_equal(s.exported - base.exported, 10);
  assert_int_equal(s.pending, 0);
  assert_int_equal(polytel__pipeline_pending(pl), 0);
}

/* An ExportLogsServiceResponse{partial_success{rejected_log_records: 3, error_message: "..."}} in protobuf.
 */
static void test_partial_success_protobuf(void **state) {
  (void)state;
  logs(10);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  static const char msg[] = "3 records had no body";
  uint8_t body[64];
  size_t n = 0;
  body[n++] = 0x0a; /* field 1, length-delimited */
  body[n++] = (uint8_t)(2 + 2 + sizeof msg - 1);
  body[n++] = 0x08, body[n++] = 3; /* rejected_log_records = 3 */
  body[n++] = 0x12, body[n++] = (uint8_t)(sizeof msg - 1);
  memcpy(body + n, msg, sizeof msg - 1), n += sizeof msg - 1;
  polytel__response_t ok = http(200, -1);
  ok.body = body, ok.body_len = n, ok.content_type = "application/x-protobuf";
  cap_begin();
  assert_int_equal(polytel__pipeline_done(pl, r, &ok, now), POLYTEL__DONE_EXPORTED);
  char *out = cap_read_all();
  polytel_stats_t s = stats();
  assert_int_equal(s.exported - base.exported, 7);
  assert_int_equal(s.dropped_rejected - base.dropped_rejected, 3);
  assert_int_equal(s.dropped - base.dropped, 3);
  assert_non_null(
      strstr(out,
             "export of logs partially rejected by the collector (partial_success: \"3 records had "
             "no body\"); 3 log records dropped (counted as dropped_rejected)"));
  free(out);
}

static void test_partial_success_json(void **state) {
  (void)state;
  for (int i = 0; i < 4; i++) {
    polytel_span_begin("work");
    polytel_span_end();
  }
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_TRACES);
  assert_string_equal(r->content_type, "application/json");
  static const char body[] =
      "{\"partialSuccess\": {\"rejectedSpans\": \"9\", \"errorMessage\": \"span \\u202e name\"}}";
  polytel__response_t ok = http(200, -1);
  ok.body = (const uint8_t *)body, ok.body_len = sizeof body - 1,
  ok.content_type = "application/json; charset=utf-8";
  cap_begin();
  assert_int_equal(polytel__pipeline_done(pl, r, &ok, now), POLYTEL__DONE_EXPORTED);
  char *out = cap_read_all();
  polytel_stats_t s = stats();
  /* A collector cannot reject more than it got: 9 is capped at the 4 sent. */
  assert_int_equal(s.exported - base.exported, 0);
  assert_int_equal(s.dropped_rejected - base.dropped_rejected, 4);
  assert_non_null(strstr(
      out, "(partial_success: \"span <U+202E> name\"); 4 spans dropped (counted as dropped_rejected)"));
  assert_null(strstr(out, "\xe2\x80\xae")); /* never the raw bidi control */
  free(out);
}

/* A 2xx with error_message and nothing rejected: a warning, everything exported. */
static void test_partial_success_warning_only(void **state) {
  (void)state;
  logs(2);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  static const char body[] = "{\"partialSuccess\":{\"errorMessage\":\"deprecated field\"}}";
  polytel__response_t ok = http(200, -1);
  ok.body = (const uint8_t *)body, ok.body_len = sizeof body - 1, ok.content_type = "application/json";
  cap_begin();
  polytel__pipeline_done(pl, r, &ok, now);
  char *out = cap_read_all();
  assert_int_equal(stats().exported - base.exported, 2);
  assert_non_null(strstr(out,
                         "export of logs accepted with a warning from the collector (partial_success: "
                         "\"deprecated field\")"));
  assert_null(strstr(out, "counted as"));
  free(out);
}

/* A non-retryable status: dropped at once, with the collector's message (google.rpc.Status) in the line. */
static void test_rejected_with_message(void **state) {
  (void)state;
  logs(5);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  static const char msg[] = "http: request body too large";
  uint8_t body[64] = {0x08, 3, 0x12, (uint8_t)(sizeof msg - 1)};
  memcpy(body + 4, msg, sizeof msg - 1);
  polytel__response_t bad = http(400, -1);
  bad.body = body, bad.body_len = 4 + sizeof msg - 1, bad.content_type = "application/x-protobuf";
  cap_begin();
  assert_int_equal(polytel__pipeline_done(pl, r, &bad, now), POLYTEL__DONE_DROPPED);
  char *out = cap_read_all();
  polytel_stats_t s = stats();
  assert_int_equal(s.dropped_export - base.dropped_export, 5);
  assert_int_equal(s.export_retries - base.export_retries, 0);
  assert_non_null(
      strstr(out,
             "export of logs rejected by the collector (HTTP 400: \"http: request body too large\"); "
             "5 log records dropped (counted as dropped_export)"));
  free(out);
}

/* A text body with terminal tricks and more than 200 bytes: escaped and cut visibly. */
static void test_message_sanitized_and_cut(void **state) {
  (void)state;
  logs(1);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  char body[400];
  memset(body, 'x', sizeof body);
  memcpy(body, "evil\x1b[2J\xe2\x80\xae\xe2\x80\x8b\n<html>", 21);
  polytel__response_t bad = http(413, -1);
  bad.body = (const uint8_t *)body, bad.body_len = sizeof body, bad.content_type = "text/html";
  cap_begin();
  polytel__pipeline_done(pl, r, &bad, now);
  char *out = cap_read_all();
  assert_non_null(strstr(out, "(HTTP 413: \"evil<U+001B>[2J<U+202E><U+200B> <html>xxx"));
  assert_non_null(strstr(out, "xxx\xe2\x80\xa6\")"));
  assert_null(strstr(out, "\x1b[2J"));
  assert_null(strstr(out, "\xe2\x80\xae"));
  char *q = strstr(out, "(HTTP 413: \"");
  char *e = strstr(q, "\xe2\x80\xa6\")");
  assert_true(e - q < 12 + 200 + 5 * 8); /* 200 source bytes at most */
  free(out);
}

/* Connect failures send nothing: when the export timeout runs out the records are dropped, not unconfirmed.
 */
static void test_connect_then_dropped(void **state) {
  (void)state;
  logs(3);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  polytel__response_t refused = net(POLYTEL__NET_CONNECT, 0, "Connection refused");
  cap_begin();
  polytel__done_t d;
  int attempts = 1;
  while ((d = polytel__pipeline_done(pl, r, &refused, now)) == POLYTEL__DONE_RETRY) {
    now = r->not_before_ms;
    assert_ptr_equal(polytel__pipeline_next(pl, now), r);
    attempts++;
  }
  char *out = cap_read_all();
  assert_int_equal(d, POLYTEL__DONE_DROPPED);
  polytel_stats_t s = stats();
  assert_int_equal(s.dropped_export - base.dropped_export, 3);
  assert_int_equal(s.unconfirmed - base.unconfirmed, 0);
  assert_int_equal(s.export_retries - base.export_retries, (uint64_t)attempts - 1);
  /* One line per 10 s of the (simulated) 30 s export timeout at most, however many attempts. */
  size_t lines = count_str(out,
                           "export of logs failed: collector unreachable (connect: Connection refused); "
                           "retrying (3 log records waiting)");
  assert_in_range(lines, 1, 1 + EXPORT_TIMEOUT_MS / 10000);
  assert_true((size_t)attempts > lines);
  assert_non_null(strstr(out,
                         "retries exhausted within the export timeout; 3 log records dropped (counted as "
                         "dropped_export)"));
  free(out);
}

/* The final attempt timed out after its body went out: unconfirmed (it may have arrived), said so. */
static void test_timeout_after_send_is_unconfirmed(void **state) {
  (void)state;
  logs(4);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  polytel__response_t slow = net(POLYTEL__NET_TIMEOUT, 1, "Operation timed out");
  polytel__response_t busy = http(503, -1);
  cap_begin();
  /* Sent once and never answered, then answered 503 until the end: still may have arrived the first time. */
  assert_int_equal(polytel__pipeline_done(pl, r, &slow, now), POLYTEL__DONE_RETRY);
  polytel__done_t d;
  do {
    now = r->not_before_ms;
    assert_ptr_equal(polytel__pipeline_next(pl, now), r);
  } while ((d = polytel__pipeline_done(pl, r, &busy, now)) == POLYTEL__DONE_RETRY);
  char *out = cap_read_all();
  assert_int_equal(d, POLYTEL__DONE_UNCONFIRMED);
  polytel_stats_t s = stats();
  assert_int_equal(s.unconfirmed - base.unconfirmed, 4);
  assert_int_equal(s.dropped - base.dropped, 0);
  assert_non_null(
      strstr(out, "4 log records unconfirmed: sent, but no answer came within the export timeout"));
  assert_non_null(strstr(out, "(counted as unconfirmed)"));
  free(out);
}

/* A certificate that does not verify: dropped on the first failure, and the line says it will not heal. */
static void test_tls_not_retried(void **state) {
  (void)state;
  logs(2);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  polytel__response_t tls = net(POLYTEL__NET_TLS, 0, "SSL certificate problem: self-signed certificate");
  cap_begin();
  assert_int_equal(polytel__pipeline_done(pl, r, &tls, now), POLYTEL__DONE_DROPPED);
  char *out = cap_read_all();
  assert_int_equal(stats().dropped_export - base.dropped_export, 2);
  assert_int_equal(stats().export_retries - base.export_retries, 0);
  assert_non_null(strstr(out,
                         "export of logs failed: TLS verification or handshake failed (tls: SSL certificate "
                         "problem: self-signed certificate); not retried: this will not heal"));
  assert_non_null(strstr(out, "2 log records dropped (counted as dropped_export)"));
  free(out);
}

/* ------------------------------------------------------------ retry policy */

static uint64_t step_min(uint32_t a) {
  uint64_t b = (uint64_t)500 << (a < 16 ? a : 16);
  return (b > 5000 ? 5000 : b) / 2;
}
static uint64_t step_max(uint32_t a) {
  uint64_t b = (uint64_t)500 << (a < 16 ? a : 16);
  return b > 5000 ? 5000 : b;
}
/* Attempts the schedule allows within the export timeout when each retry waits `step(n)`. */
static int attempts_allowed(uint64_t (*step)(uint32_t)) {
  uint64_t t = 0;
  int n = 1;
  for (uint32_t a = 0; t + step(a) <= EXPORT_TIMEOUT_MS; a++) t += step(a), n++;
  return n;
}

/*
 * A collector answering 503 + Retry-After: 0 for the whole export timeout: every retry waits at least the
 * backoff step, so the attempts are bounded by what the schedule allows (never a hot loop).
 */
static void test_retry_after_zero_uses_the_step(void **state) {
  (void)state;
  logs(3);
  uint64_t now = polytel__now_ms(), t0 = now;
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  polytel__response_t busy = http(503, 0);
  int attempts = 1;
  polytel__done_t d;
  while ((d = polytel__pipeline_done(pl, r, &busy, now)) == POLYTEL__DONE_RETRY) {
    uint32_t a = r->attempt - 1; /* the step this wait used */
    assert_in_range(r->not_before_ms - now, step_min(a), step_max(a));
    assert_null(polytel__pipeline_next(pl, r->not_before_ms - 1)); /* not one millisecond sooner */
    now = r->not_before_ms;
    assert_ptr_equal(polytel__pipeline_next(pl, now), r); /* one attempt in flight, the same request */
    attempts++;
  }
  assert_int_equal(d, POLYTEL__DONE_DROPPED);
  assert_in_range(attempts, attempts_allowed(step_max), attempts_allowed(step_min));
  assert_true(now - t0 <= EXPORT_TIMEOUT_MS);
  assert_int_equal(stats().dropped_export - base.dropped_export, 3);
}

/* A Retry-After longer than the step is honoured; one past the export timeout ends the request now. */
static void test_retry_after_above_step_honoured(void **state) {
  (void)state;
  logs(1);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  polytel__response_t later = http(429, 7000);
  assert_int_equal(polytel__pipeline_done(pl, r, &later, now), POLYTEL__DONE_RETRY);
  assert_int_equal(r->not_before_ms - now, 7000);
  now += 7000;
  assert_ptr_equal(polytel__pipeline_next(pl, now), r);
  polytel__response_t never = http(503, 3600 * 1000);
  assert_int_equal(polytel__pipeline_done(pl, r, &never, now), POLYTEL__DONE_DROPPED);
}

/* A flush sends what waits in backoff, but never sooner than the floor after the last attempt. */
static void test_flush_respects_the_floor(void **state) {
  (void)state;
  logs(1);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  polytel__response_t busy = http(503, 0);
  for (int i = 0; i < 4; i++) { /* a long step by now */
    assert_int_equal(polytel__pipeline_done(pl, r, &busy, now), POLYTEL__DONE_RETRY);
    now = r->not_before_ms;
    assert_ptr_equal(polytel__pipeline_next(pl, now), r);
  }
  assert_int_equal(polytel__pipeline_done(pl, r, &busy, now), POLYTEL__DONE_RETRY);
  assert_true(r->not_before_ms - now >= 1000);
  polytel__pipeline_force(pl, now + 10);
  assert_int_equal(r->not_before_ms, now + 250);
  assert_null(polytel__pipeline_next(pl, now + 249));
  assert_ptr_equal(polytel__pipeline_next(pl, now + 250), r);
}

/* ---------------------------------------------------------------- metrics */

static int metrics_in(polytel__request_t **r, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; i++) m += r[i]->signal == POLYTEL__SIG_METRICS;
  return m;
}

/*
 * Cumulative snapshots: one in flight at a time (arrival order is time order); a newer one replaces an
 * older one still waiting; a failed old one is not retried once a newer one waits.
 */
static void test_metrics_snapshots_in_order(void **state) {
  (void)state;
  polytel_counter_add("orders", "1", 1, NULL, 0);
  uint64_t now = polytel__now_ms();
  polytel__pipeline_force(pl, now);
  polytel__request_t *r[8];
  size_t n = ready(now, r, 8);
  assert_int_equal(metrics_in(r, n), 1);
  polytel__request_t *first = r[0];
  assert_int_equal(first->signal, POLYTEL__SIG_METRICS);
  /* A second snapshot while the first is in flight: queued, not sent. */
  polytel_counter_add("orders", "1", 1, NULL, 0);
  polytel__pipeline_force(pl, now + 1);
  assert_int_equal(ready(now + 1, r, 8), 0);
  /* A third replaces the second in the queue (still one waiting). */
  polytel__pipeline_force(pl, now + 2);
  size_t waiting = 0;
  polytel__pipeline_pump(pl, now + 2);
  assert_int_equal(ready(now + 2, r, 8), 0);
  /* The first fails retryably: superseded by the waiting newer one, so it is dropped, not retried. */
  polytel__response_t busy = http(503, -1);
  assert_int_equal(polytel__pipeline_done(pl, first, &busy, now + 3), POLYTEL__DONE_DROPPED);
  n = ready(now + 3, r, 8);
  waiting = (size_t)metrics_in(r, n);
  assert_int_equal(waiting, 1);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, r[0], &ok, now + 4), POLYTEL__DONE_EXPORTED);
  /* Metrics carry no records: nothing was counted as dropped for the superseded snapshot. */
  assert_int_equal(stats().dropped - base.dropped, 0);
}

/* A snapshot in backoff is replaced by the next collection, which keeps its pace (no request sooner). */
static void test_metrics_replaced_in_backoff(void **state) {
  (void)state;
  polytel_counter_add("orders2", "1", 1, NULL, 0);
  uint64_t now = polytel__now_ms();
  polytel__request_t *m = one(now, POLYTEL__SIG_METRICS);
  polytel__response_t busy = http(503, 2000);
  assert_int_equal(polytel__pipeline_done(pl, m, &busy, now), POLYTEL__DONE_RETRY);
  uint64_t due = m->not_before_ms;
  const uint8_t *old_body = m->body;
  polytel_counter_add("orders2", "1", 5, NULL, 0);
  polytel__pipeline_force(pl, now + 10);
  polytel__request_t *r[8];
  assert_int_equal(ready(now + 10, r, 8), 0); /* the replacement waits where the old one waited */
  assert_true(m->body != old_body);
  assert_int_equal(m->not_before_ms, due);
  assert_ptr_equal(polytel__pipeline_next(pl, due), m);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, m, &ok, due), POLYTEL__DONE_EXPORTED);
}

/*
 * While a flush settles no periodic snapshot is taken, and the interval counts again from its end: with a
 * collector slower than the interval, each answer found a newer snapshot due, so shutdown never went idle.
 */
static void test_no_periodic_snapshot_while_flushing(void **state) {
  (void)state;
  polytel_counter_add("orders3", "1", 1, NULL, 0);
  const uint64_t interval = 100000000; /* OTEL_METRIC_EXPORT_INTERVAL of start() */
  uint64_t now = polytel__now_ms();
  polytel__request_t *m = one(now, POLYTEL__SIG_METRICS);
  /* The answer takes longer than the interval: still flushing, only the flush's own snapshot is owed. */
  uint64_t late = now + interval + 5;
  polytel__pipeline_pump(pl, late);
  assert_int_equal(polytel__pipeline_pending(pl), 1);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, m, &ok, late), POLYTEL__DONE_EXPORTED);
  /* The flush ends idle: nothing new due, so a waiter (or a stopping transport) sees it done. */
  polytel__pipeline_pump(pl, late + 1);
  assert_int_equal(polytel__pipeline_pending(pl), 0);
  assert_null(polytel__pipeline_next(pl, late + 1));
  polytel__pipeline_pump(pl, late + interval);
  assert_int_equal(polytel__pipeline_pending(pl), 0);
  /* One interval after the flush's end the schedule goes on (a periodic snapshot: no flush waits for it). */
  polytel__pipeline_pump(pl, late + 1 + interval);
  assert_int_equal(polytel__pipeline_pending(pl), 0);
  polytel__request_t *p = polytel__pipeline_next(pl, late + 1 + interval);
  assert_non_null(p);
  assert_int_equal(p->signal, POLYTEL__SIG_METRICS);
  assert_int_equal(polytel__pipeline_done(pl, p, &ok, late + 1 + interval), POLYTEL__DONE_EXPORTED);
}

/*
 * A plain flush (polytel_flush, not the stop's) waits for what was recorded before it and for the one
 * snapshot taken at it, never for a periodic snapshot: neither one in flight when it began (a collector as
 * slow as the interval holds one nearly always) nor the settling one queued after its records were answered.
 * Counting those held the flush to its timeout with everything before it delivered. The stop's flush still
 * owes both. Returns the settling snapshot, queued after the flush's own one was handed out.
 */
static polytel__request_t *flush_behind_a_slow_periodic_snapshot(int stopping) {
  const uint64_t interval = 100000000; /* OTEL_METRIC_EXPORT_INTERVAL of start() */
  polytel_counter_add("orders4", "1", 1, NULL, 0);
  uint64_t t = polytel__now_ms() + interval;
  polytel_stats_t before = stats();
  polytel__pipeline_pump(pl, t);
  polytel__request_t *p = polytel__pipeline_next(pl, t); /* periodic, held by the slow collector */
  assert_non_null(p);
  assert_int_equal(p->signal, POLYTEL__SIG_METRICS);
  assert_int_equal(polytel__pipeline_pending(pl), 0);

  logs(3);
  polytel_counter_add("orders4", "1", 2, NULL, 0);
  if (stopping) polytel__pipeline_stopping(pl);
  polytel__pipeline_force(pl, t);
  /* Three logs and the flush's snapshot (plus, stopping, the periodic one and the settling one to come). */
  assert_int_equal(polytel__pipeline_pending(pl), stopping ? 3 + 1 + 1 + 1 : 3 + 1);
  polytel__request_t *l = polytel__pipeline_next(pl, t);
  assert_non_null(l);
  assert_int_equal(l->signal, POLYTEL__SIG_LOGS);
  assert_null(polytel__pipeline_next(pl, t)); /* one metrics request in flight at a time */
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, p, &ok, t + interval), POLYTEL__DONE_EXPORTED);
  polytel__request_t *f = polytel__pipeline_next(pl, t + interval);
  assert_non_null(f);
  assert_int_equal(f->signal, POLYTEL__SIG_METRICS);
  assert_int_equal(polytel__pipeline_done(pl, l, &ok, t + interval), POLYTEL__DONE_EXPORTED);
  /* The logs are answered: the settling snapshot (the counts moved since the flush's) queues behind f. */
  polytel__pipeline_pump(pl, t + interval);
  assert_int_equal(polytel__pipeline_pending(pl), stopping ? 2 : 1);
  assert_int_equal(polytel__pipeline_done(pl, f, &ok, t + 2 * interval), POLYTEL__DONE_EXPORTED);
  polytel__pipeline_pump(pl, t + 2 * interval);
  assert_int_equal(polytel__pipeline_pending(pl), stopping ? 1 : 0);
  polytel_stats_t s = stats();
  assert_int_equal(s.recorded - before.recorded, 3);
  assert_int_equal(s.exported - before.exported, 3);
  assert_int_equal(s.dropped - before.dropped, 0);
  polytel__request_t *settle = polytel__pipeline_next(pl, t + 2 * interval); /* sent all the same */
  assert_non_null(settle);
  assert_int_equal(settle->signal, POLYTEL__SIG_METRICS);
  assert_true(settle != f);
  return settle;
}

static void test_plain_flush_owes_its_snapshot_not_the_periodic_ones(void **state) {
  (void)state;
  polytel__request_t *settle = flush_behind_a_slow_periodic_snapshot(0);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, settle, &ok, polytel__now_ms()), POLYTEL__DONE_EXPORTED);
  assert_int_equal(polytel__pipeline_pending(pl), 0);
}

static void test_stop_flush_owes_every_snapshot(void **state) {
  (void)state;
  polytel__request_t *settle = flush_behind_a_slow_periodic_snapshot(1);
  assert_int_equal(polytel__pipeline_pending(pl), 1);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, settle, &ok, polytel__now_ms()), POLYTEL__DONE_EXPORTED);
  assert_int_equal(polytel__pipeline_pending(pl), 0);
}

/* ---------------------------------------------------------------- warnings */

/* One line per (signal, cause, outcome) per interval; what was held back is counted in the next one. */
static void test_warnings_per_signal_and_cause(void **state) {
  (void)state;
  uint64_t now = polytel__now_ms();
  polytel__response_t bad = http(400, -1), busy = http(503, -1);
  cap_begin();
  polytel__request_t *r;
  for (int i = 0; i < 3; i++) {
    logs(2);
    r = one(now, POLYTEL__SIG_LOGS);
    polytel__pipeline_done(pl, r, &bad, now + (uint64_t)i);
  }
  polytel_span_begin("s");
  polytel_span_end();
  r = one(now, POLYTEL__SIG_TRACES);
  polytel__pipeline_done(pl, r, &bad, now); /* another signal: its own line */
  char *mid = cap_read_all();
  assert_int_equal(count_str(mid,
                             "export of logs rejected by the collector (HTTP 400); 2 log records dropped "
                             "(counted as dropped_export)"),
                   1);
  assert_int_equal(count_str(mid, "export of spans rejected by the collector (HTTP 400); 1 span dropped"), 1);
  free(mid);
  /* After the interval: the next line carries the two held back. */
  cap_begin();
  logs(2);
  r = one(now + 10001, POLYTEL__SIG_LOGS);
  polytel__pipeline_done(pl, r, &bad, now + 10001);
  logs(1);
  r = one(now + 10001, POLYTEL__SIG_LOGS);
  polytel__pipeline_done(pl, r, &busy, now + 10001); /* another cause: its own line at once */
  char *out = cap_read_all();
  assert_non_null(strstr(out, "6 log records dropped over 3 requests (counted as dropped_export)"));
  assert_int_equal(count_str(out,
                             "export of logs failed: the collector is unavailable (HTTP 503); retrying "
                             "(1 log record waiting)"),
                   1);
  free(out);
  assert_int_equal(stats().dropped_export - base.dropped_export, 2 * 3 + 1 + 2);
}

/* ---------------------------------------------------------------- shutdown */

/*
 * Abandon (shutdown past its deadline): never-sent records are dropped, records whose request went out
 * unanswered (or is still in flight) are unconfirmed; the final line says both.
 */
static void test_abandon_and_shutdown_line(void **state) {
  (void)state;
  uint64_t now = polytel__now_ms();
  logs(3);
  polytel__request_t *a = one(now, POLYTEL__SIG_LOGS); /* will stay in flight */
  (void)a;
  logs(4);
  polytel__request_t *b = one(now, POLYTEL__SIG_LOGS); /* sent, timed out, waiting for a retry */
  polytel__response_t slow = net(POLYTEL__NET_TIMEOUT, 1, "timeout");
  assert_int_equal(polytel__pipeline_done(pl, b, &slow, now), POLYTEL__DONE_RETRY);
  logs(5);
  polytel__request_t *c = one(now, POLYTEL__SIG_LOGS); /* could not connect, waiting for a retry */
  polytel__response_t refused = net(POLYTEL__NET_CONNECT, 0, "refused");
  assert_int_equal(polytel__pipeline_done(pl, c, &refused, now), POLYTEL__DONE_RETRY);
  logs(6); /* still in the blocks */
  cap_begin();
  polytel_shutdown(0);
  pl = NULL;
  char *out = cap_read_all();
  polytel_stats_t s = stats();
  assert_int_equal(s.unconfirmed - base.unconfirmed, 3 + 4);
  assert_int_equal(s.dropped_export - base.dropped_export, 5 + 6);
  assert_int_equal(s.pending, 0);
  assert_non_null(strstr(out,
                         "shutdown: 11 records dropped (dropped_export 11), 7 unconfirmed (sent, no answer "
                         "before the deadline)"));
  free(out);
  start(0, "http/protobuf"); /* for the teardown */
}

/* The identity holds at every read while threads record and the pipeline settles outcomes. */
static _Atomic int g_stop;
static void *reader(void *arg) {
  (void)arg;
  long reads = 0;
  /* At least one read even when the scheduler starts this thread late (a busy machine). */
  do {
    polytel_stats_t s;
    polytel_stats(&s);
    if (s.recorded != s.exported + s.dropped + s.unconfirmed + s.pending) return (void *)-1;
    reads++;
  } while (!atomic_load(&g_stop));
  return (void *)reads;
}
static void *writer(void *arg) {
  (void)arg;
  for (int i = 0; i < 20000; i++) polytel_log(POLYTEL_LEVEL_INFO, "w", "n %d", i);
  return NULL;
}

static void test_identity_at_every_read(void **state) {
  (void)state;
  atomic_store(&g_stop, 0);
  pthread_t rd, wr[2];
  pthread_create(&rd, NULL, reader, NULL);
  for (int i = 0; i < 2; i++) pthread_create(&wr[i], NULL, writer, NULL);
  uint64_t now = polytel__now_ms();
  polytel__response_t outcomes[4] = {http(200, -1), http(400, -1), net(POLYTEL__NET_ABORTED, 1, NULL),
                                     net(POLYTEL__NET_TLS, 0, "x")};
  static const char ps[] = "{\"partialSuccess\":{\"rejectedLogRecords\":\"7\"}}";
  outcomes[0].body = (const uint8_t *)ps, outcomes[0].body_len = sizeof ps - 1;
  outcomes[0].content_type = "application/json";
  for (int round = 0; round < 200; round++) {
    polytel__pipeline_force(pl, now);
    polytel__request_t *r[8];
    size_t n = ready(now, r, 8);
    for (size_t i = 0; i < n; i++) polytel__pipeline_done(pl, r[i], &outcomes[(round + i) % 4], now);
  }
  for (int i = 0; i < 2; i++) pthread_join(wr[i], NULL);
  atomic_store(&g_stop, 1);
  void *reads;
  pthread_join(rd, &reads);
  assert_true((intptr_t)reads > 0); /* -1: a read broke the identity */
  stats();
}

/* ------------------------------------------------------------ batching */

#define BATCH 10
#define QUEUE 50

static int setup_batching(void **state) {
  (void)state;
  setenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10", 1);
  setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "50", 1);
  return start(0, "http/protobuf");
}
static int teardown_batching(void **state) {
  unsetenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE");
  unsetenv("OTEL_BLRP_MAX_QUEUE_SIZE");
  return teardown(state);
}

/* As a transport does after a flush: pump, send what is ready, answer 200, until nothing is pending (bounded:
 * a hang is a failure). The clock is read after each pump: a batch cut while draining is due from the
 * moment it was cut, which may be a millisecond after a `now` read before. */
static void deliver_all(void) {
  polytel__response_t ok = http(200, -1);
  polytel__pipeline_force(pl, polytel__now_ms());
  for (int round = 0; polytel__pipeline_pending(pl) && round < 100; round++) {
    uint64_t now = polytel__now_ms();
    polytel__pipeline_pump(pl, now);
    polytel__request_t *r[8];
    size_t n = ready(now, r, 8);
    for (size_t i = 0; i < n; i++) {
      assert_in_range(r[i]->n_items, 1, BATCH);
      assert_int_equal(polytel__pipeline_done(pl, r[i], &ok, now), POLYTEL__DONE_EXPORTED);
    }
  }
  assert_int_equal(polytel__pipeline_pending(pl), 0);
}

/* A batch is cut when it reaches max_export_batch_size; the rest waits as a partial batch for the flush. */
static void test_batches_cut_at_the_batch_size(void **state) {
  (void)state;
  logs(25);
  polytel__pipeline_pump(pl, polytel__now_ms());
  uint64_t now = polytel__now_ms(); /* batches cut while draining are due from when they were cut */
  polytel__request_t *r[8];
  size_t n = ready(now, r, 8);
  assert_int_equal(n, 2); /* 10 + 10 cut; 5 wait (the schedule delay is far away) */
  assert_int_equal(r[0]->n_items, BATCH);
  assert_int_equal(r[1]->n_items, BATCH);
  assert_int_equal(polytel__pipeline_pending(pl), 25);
  polytel__response_t ok = http(200, -1);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(polytel__pipeline_done(pl, r[i], &ok, now), POLYTEL__DONE_EXPORTED);
  assert_int_equal(polytel__pipeline_pending(pl), 5);
  polytel__request_t *rest = one(now, POLYTEL__SIG_LOGS); /* force cuts the partial batch */
  assert_int_equal(rest->n_items, 5);
  assert_int_equal(polytel__pipeline_done(pl, rest, &ok, now), POLYTEL__DONE_EXPORTED);
  polytel_stats_t s = stats();
  assert_int_equal(s.exported - base.exported, 25);
  assert_int_equal(s.dropped - base.dropped, 0);
}

/* A partial batch goes when its first record is schedule_delay old, not a millisecond sooner. */
static void test_partial_batch_waits_for_the_schedule_delay(void **state) {
  (void)state;
  const uint64_t delay = 100000000; /* start() sets OTEL_BLRP_SCHEDULE_DELAY */
  uint64_t t0 = polytel__now_ms();
  logs(3);
  uint32_t wait = polytel__pipeline_pump(pl, t0); /* drained into a partial batch, first_ms >= t0 */
  uint64_t t1 = polytel__now_ms();
  assert_true(wait <= delay);
  assert_null(polytel__pipeline_next(pl, t0));
  polytel__pipeline_pump(pl, t0 + delay - 1);
  assert_null(polytel__pipeline_next(pl, t0 + delay - 1));
  polytel__pipeline_pump(pl, t1 + delay);
  polytel__request_t *r = polytel__pipeline_next(pl, t1 + delay);
  assert_non_null(r);
  assert_int_equal(r->n_items, 3);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, r, &ok, t1 + delay), POLYTEL__DONE_EXPORTED);
  assert_int_equal(stats().exported - base.exported, 3);
}

/* The queue bound defers draining (records wait in their blocks, still pending), it never drops. */
static void test_queue_bound_defers_and_never_drops(void **state) {
  (void)state;
  logs(80);
  polytel__pipeline_pump(pl, polytel__now_ms());
  uint64_t now = polytel__now_ms();
  polytel__request_t *r[8];
  size_t n = ready(now, r, 8);
  assert_int_equal(n, 4); /* five batches queued (the bound: 50), four in flight at most */
  for (size_t i = 0; i < n; i++) assert_int_equal(r[i]->n_items, BATCH);
  polytel_stats_t s = stats();
  assert_int_equal(s.pending - base.pending, 80); /* 40 in flight, 10 queued, 30 still in blocks */
  assert_int_equal(s.dropped - base.dropped, 0);
  polytel__response_t ok = http(200, -1);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(polytel__pipeline_done(pl, r[i], &ok, now), POLYTEL__DONE_EXPORTED);
  deliver_all();
  s = stats();
  assert_int_equal(s.exported - base.exported, 80);
  assert_int_equal(s.dropped - base.dropped, 0);
}

/* At most four requests in flight; one answered lets the next one out. */
static void test_in_flight_cap(void **state) {
  (void)state;
  logs(6 * BATCH);
  polytel__pipeline_force(pl, polytel__now_ms());
  uint64_t now = polytel__now_ms();
  polytel__request_t *r[8];
  size_t n = ready(now, r, 8);
  assert_int_equal(n, 4);
  assert_int_equal(polytel__pipeline_in_flight(pl), 4);
  assert_null(polytel__pipeline_next(pl, now));
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, r[0], &ok, now), POLYTEL__DONE_EXPORTED);
  assert_int_equal(polytel__pipeline_in_flight(pl), 3);
  polytel__request_t *fifth = polytel__pipeline_next(pl, now);
  assert_non_null(fifth);
  assert_null(polytel__pipeline_next(pl, now));
  for (size_t i = 1; i < n; i++)
    assert_int_equal(polytel__pipeline_done(pl, r[i], &ok, now), POLYTEL__DONE_EXPORTED);
  assert_int_equal(polytel__pipeline_done(pl, fifth, &ok, now), POLYTEL__DONE_EXPORTED);
  deliver_all();
  assert_int_equal(stats().exported - base.exported, 6 * BATCH);
}

/* --------------------------------------------------- the retry/drop policy, outcome by outcome */

/*
 * DESIGN.md: 2xx exported; 429, 502, 503, 504 and network errors (connect, timeout, other) retried; every
 * other status (redirects included: never followed) and TLS failures dropped at once. One record each.
 */
static void test_policy_per_outcome(void **state) {
  (void)state;
  static const struct {
    polytel__response_t resp;
    polytel__done_t want;
  } cases[] = {
      {{.status = 200, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_EXPORTED},
      {{.status = 202, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_EXPORTED},
      {{.status = 204, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_EXPORTED},
      {{.status = 429, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_RETRY},
      {{.status = 502, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_RETRY},
      {{.status = 503, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_RETRY},
      {{.status = 504, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_RETRY},
      {{.net = POLYTEL__NET_CONNECT, .retry_after_ms = -1, .error = "refused"}, POLYTEL__DONE_RETRY},
      {{.net = POLYTEL__NET_TIMEOUT, .sent = 1, .retry_after_ms = -1, .error = "slow"}, POLYTEL__DONE_RETRY},
      {{.net = POLYTEL__NET_OTHER, .sent = 1, .retry_after_ms = -1, .error = "reset"}, POLYTEL__DONE_RETRY},
      {{.status = 307, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 400, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 401, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 403, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 404, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 408, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 413, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 500, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.status = 501, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1}, POLYTEL__DONE_DROPPED},
      {{.net = POLYTEL__NET_TLS, .retry_after_ms = -1, .error = "bad cert"}, POLYTEL__DONE_DROPPED},
  };
  const size_t n = sizeof cases / sizeof cases[0];
  uint64_t now = polytel__now_ms(), exported = 0, dropped = 0, retries = 0;
  polytel__response_t ok = http(200, -1);
  cap_begin(); /* the warnings are test_warnings_per_signal_and_cause's */
  for (size_t i = 0; i < n; i++) {
    logs(1);
    polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
    polytel__done_t d = polytel__pipeline_done(pl, r, &cases[i].resp, now);
    if (d != cases[i].want)
      fail_msg("case %zu (status %d, net %d): done %d, want %d", i, cases[i].resp.status,
               (int)cases[i].resp.net, (int)d, (int)cases[i].want);
    if (d == POLYTEL__DONE_RETRY) {
      assert_true(r->not_before_ms > now); /* never at once: a backoff step at least */
      assert_int_equal(r->attempt, 1);
      now = r->not_before_ms;
      assert_ptr_equal(polytel__pipeline_next(pl, now), r);
      assert_int_equal(polytel__pipeline_done(pl, r, &ok, now), POLYTEL__DONE_EXPORTED);
      retries++;
    }
    if (d == POLYTEL__DONE_DROPPED)
      dropped++;
    else
      exported++;
    polytel_stats_t s = stats(); /* the identity holds after every outcome */
    assert_int_equal(s.exported - base.exported, exported);
    assert_int_equal(s.dropped_export - base.dropped_export, dropped);
    assert_int_equal(s.export_retries - base.export_retries, retries);
    assert_int_equal(s.pending, 0);
  }
  free(cap_read_all());
}

/* ------------------------------------------------------------ zstd refused */

#if POLYTEL_WITH_UV
static int setup_zstd(void **state) {
  (void)state;
  setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", 1);
  return start(0, "http/protobuf");
}
static int teardown_zstd(void **state) {
  unsetenv("OTEL_EXPORTER_OTLP_COMPRESSION");
  return teardown(state);
}

/* The protobuf a request carries, whatever its encoding (gzip through zlib itself, not polytel). */
static polytel__buf_t plain_body(const polytel__request_t *r) {
  polytel__buf_t out = {0};
  if (r->gzip == POLYTEL_COMPRESSION_ZSTD) {
    assert_int_equal(polytel__unzstd(r->body, r->body_len, &out), 0);
  } else {
    assert_int_equal(r->gzip, POLYTEL_COMPRESSION_GZIP);
    assert_int_equal(polytel__buf_reserve(&out, 1 << 20), 0);
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)r->body, zs.avail_in = (uInt)r->body_len;
    zs.next_out = out.data, zs.avail_out = (uInt)out.cap;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    out.len = zs.total_out;
    inflateEnd(&zs);
  }
  return out;
}

/* A 415 (or a 400 about the encoding) to zstd: that request and the queued ones go again in gzip, same bytes
 * inside, at once; later ones are gzip; one warning; nothing dropped. */
static void test_zstd_refused_falls_back_to_gzip(void **state) {
  (void)state;
  logs(20);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  assert_int_equal(r->gzip, POLYTEL_COMPRESSION_ZSTD);
  polytel__buf_t sent = plain_body(r);
  logs(5);
  polytel__pipeline_force(pl, now); /* a second request, queued behind the one in flight */
  static const char msg[] = "unsupported Content-Encoding: zstd";
  polytel__response_t refused = http(415, -1);
  refused.body = (const uint8_t *)msg, refused.body_len = sizeof msg - 1, refused.content_type = "text/plain";
  cap_begin();
  assert_int_equal(polytel__pipeline_done(pl, r, &refused, now), POLYTEL__DONE_RETRY);
  char *out = cap_read_all();
  assert_int_equal(count_str(out, "refused zstd"), 1);
  assert_non_null(strstr(out,
                         "the collector refused zstd (HTTP 415: \"unsupported Content-Encoding: zstd\"); "
                         "compressing with gzip from now on"));
  free(out);
  /* Both go now, in gzip; the first carries exactly the bytes it carried in zstd. */
  polytel__request_t *q[4];
  assert_int_equal(ready(now, q, 4), 2);
  assert_ptr_equal(q[0], r);
  polytel__buf_t again = plain_body(q[0]), second = plain_body(q[1]);
  assert_int_equal(again.len, sent.len);
  assert_memory_equal(again.data, sent.data, sent.len);
  assert_true(second.len > 0);
  polytel__response_t ok = http(200, -1);
  for (int i = 0; i < 2; i++)
    assert_int_equal(polytel__pipeline_done(pl, q[i], &ok, now), POLYTEL__DONE_EXPORTED);
  logs(3);
  polytel__request_t *later = one(now, POLYTEL__SIG_LOGS);
  assert_int_equal(later->gzip, POLYTEL_COMPRESSION_GZIP);
  assert_int_equal(polytel__pipeline_done(pl, later, &ok, now), POLYTEL__DONE_EXPORTED);
  polytel_stats_t s = stats();
  assert_int_equal(s.exported - base.exported, 28);
  assert_int_equal(s.dropped - base.dropped, 0);
  assert_int_equal(s.export_retries - base.export_retries, 1);
  polytel__buf_free(&sent), polytel__buf_free(&again), polytel__buf_free(&second);
}

/* A 400 that is not about the encoding is a plain rejection: dropped, counted, zstd kept. */
static void test_zstd_other_400_is_a_rejection(void **state) {
  (void)state;
  logs(4);
  uint64_t now = polytel__now_ms();
  polytel__request_t *r = one(now, POLYTEL__SIG_LOGS);
  static const char msg[] = "invalid span id";
  polytel__response_t bad = http(400, -1);
  bad.body = (const uint8_t *)msg, bad.body_len = sizeof msg - 1, bad.content_type = "text/plain";
  cap_begin();
  assert_int_equal(polytel__pipeline_done(pl, r, &bad, now), POLYTEL__DONE_DROPPED);
  free(cap_read_all());
  assert_int_equal(stats().dropped_export - base.dropped_export, 4);
  logs(1);
  r = one(now, POLYTEL__SIG_LOGS);
  assert_int_equal(r->gzip, POLYTEL_COMPRESSION_ZSTD);
  polytel__response_t ok = http(200, -1);
  assert_int_equal(polytel__pipeline_done(pl, r, &ok, now), POLYTEL__DONE_EXPORTED);
}
#endif

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
    T(test_exported),
    T(test_partial_success_protobuf),
    cmocka_unit_test_setup_teardown(test_partial_success_json, setup_json, teardown),
    cmocka_unit_test_setup_teardown(test_partial_success_warning_only, setup_json, teardown),
    T(test_rejected_with_message),
    T(test_message_sanitized_and_cut),
    T(test_connect_then_dropped),
    T(test_timeout_after_send_is_unconfirmed),
    T(test_tls_not_retried),
    T(test_retry_after_zero_uses_the_step),
    T(test_retry_after_above_step_honoured),
    T(test_flush_respects_the_floor),
    cmocka_unit_test_setup_teardown(test_metrics_snapshots_in_order, setup_metrics, teardown),
    cmocka_unit_test_setup_teardown(test_metrics_replaced_in_backoff, setup_metrics, teardown),
    cmocka_unit_test_setup_teardown(test_no_periodic_snapshot_while_flushing, setup_metrics, teardown),
    cmocka_unit_test_setup_teardown(test_plain_flush_owes_its_snapshot_not_the_periodic_ones, setup_metrics,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_stop_flush_owes_every_snapshot, setup_metrics, teardown),
    T(test_warnings_per_signal_and_cause),
    T(test_abandon_and_shutdown_line),
    T(test_identity_at_every_read),
    cmocka_unit_test_setup_teardown(test_batches_cut_at_the_batch_size, setup_batching, teardown_batching),
    cmocka_unit_test_setup_teardown(test_partial_batch_waits_for_the_schedule_delay, setup_batching,
                                    teardown_batching),
    cmocka_unit_test_setup_teardown(test_queue_bound_defers_and_never_drops, setup_batching,
                                    teardown_batching),
    cmocka_unit_test_setup_teardown(test_in_flight_cap, setup_batching, teardown_batching),
    T(test_policy_per_outcome),
#if POLYTEL_WITH_UV
    cmocka_unit_test_setup_teardown(test_zstd_refused_falls_back_to_gzip, setup_zstd, teardown_zstd),
    cmocka_unit_test_setup_teardown(test_zstd_other_400_is_a_rejection, setup_zstd, teardown_zstd),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
