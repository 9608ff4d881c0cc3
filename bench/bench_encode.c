/* bench_encode.c — spans encoded per second on one core (OTLP protobuf, JSON, protobuf+gzip) beside a memcpy
 * of the same bytes (the idle baseline). Prints a table; asserts nothing about timings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encode.h"

enum { BATCH = 512 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
  const char *name;
  double spans_per_s, bytes_per_span;
} row_t;

static volatile uint8_t sink;

/* Runs `fn` over whole batches for about `secs`; returns spans per second. */
#define MEASURE(secs, out_rate, body)         \
  do {                                        \
    size_t iters_ = 0;                        \
    double t0_ = now_s(), t_;                 \
    do {                                      \
      for (int k_ = 0; k_ < 16; k_++) {       \
        body;                                 \
      }                                       \
      iters_ += 16;                           \
      t_ = now_s() - t0_;                     \
    } while (t_ < (secs));                    \
    (out_rate) = (double)iters_ * BATCH / t_; \
  } while (0)

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 0.5;
  if (secs <= 0) secs = 0.5;
  static polytel__span_rec_t spans[BATCH];
  static polytel__kv_t attrs[BATCH][3];
  static const char *routes[] = {"/api/users", "/api/orders/{id}", "/healthz", "/api/search"};
  for (int i = 0; i < BATCH; i++) {
    polytel__span_rec_t *s = &spans[i];
    for (int b = 0; b < 16; b++) s->trace_id[b] = (uint8_t)(i * 31 + b * 7);
    for (int b = 0; b < 8; b++) s->span_id[b] = (uint8_t)(i * 13 + b), s->parent_id[b] = (uint8_t)(i + b);
    s->has_parent = i % 4 != 0;
    s->name = i % 3 ? "handle_request" : "db.query";
    s->name_len = (uint32_t)strlen(s->name);
    s->start_ns = 1700000000000000000ULL + (uint64_t)i * 1000;
    s->end_ns = s->start_ns + 250000 + (uint64_t)i;
    s->status = i % 50 == 0 ? POLYTEL_STATUS_ERROR : POLYTEL_STATUS_UNSET;
    const char *route = routes[i % 4];
    attrs[i][0] = (polytel__kv_t){.key = "http.route",
                                  .key_len = 10,
                                  .type = POLYTEL_ATTR_STRING,
                                  .v.str = {route, (uint32_t)strlen(route)}};
    attrs[i][1] =
        (polytel__kv_t){.key = "http.status_code", .key_len = 16, .type = POLYTEL_ATTR_INT, .v.i = 200};
    attrs[i][2] =
        (polytel__kv_t){.key = "db.rows", .key_len = 7, .type = POLYTEL_ATTR_DOUBLE, .v.d = i * 0.5};
    s->attrs = attrs[i];
    s->n_attrs = 3;
  }
  static const polytel__kv_t res_attrs[] = {
      {.key = "service.name", .key_len = 12, .type = POLYTEL_ATTR_STRING, .v.str = {"bench", 5}}};
  polytel__resource_t res = {.attrs = (polytel__kv_t *)res_attrs, .n_attrs = 1};

  polytel__buf_t pb = {0}, js = {0}, gz = {0};
  if (polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, &res, spans, BATCH) ||
      polytel__encode_spans(&js, POLYTEL__FMT_JSON, &res, spans, BATCH) ||
      polytel__gzip(pb.data, pb.len, &gz)) {
    fprintf(stderr, "bench_encode: encoding failed\n");
    return 1;
  }
  size_t pb_len = pb.len, js_len = js.len, gz_len = gz.len;
  uint8_t *copy = malloc(pb_len);
  if (!copy) return 1;

  row_t rows[4];
  MEASURE(secs, rows[0].spans_per_s, {
    polytel__buf_reset(&pb);
    polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, &res, spans, BATCH);
    sink ^= pb.data[k_];
  });
  rows[0] = (row_t){"protobuf", rows[0].spans_per_s, (double)pb_len / BATCH};
  MEASURE(secs, rows[1].spans_per_s, {
    polytel__buf_reset(&js);
    polytel__encode_spans(&js, POLYTEL__FMT_JSON, &res, spans, BATCH);
    sink ^= js.data[k_];
  });
  rows[1] = (row_t){"json", rows[1].spans_per_s, (double)js_len / BATCH};
  MEASURE(secs / 2, rows[2].spans_per_s, {
    polytel__buf_reset(&pb);
    polytel__buf_reset(&gz);
    polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, &res, spans, BATCH);
    polytel__gzip(pb.data, pb.len, &gz);
    sink ^= gz.data[k_];
  });
  rows[2] = (row_t){"protobuf+gzip", rows[2].spans_per_s, (double)gz_len / BATCH};
  MEASURE(secs, rows[3].spans_per_s, {
    memcpy(copy, pb.data, pb_len);
    __asm__ __volatile__("" : : "r"(copy) : "memory");
    sink ^= copy[k_];
  });
  rows[3] = (row_t){"memcpy (baseline)", rows[3].spans_per_s, (double)pb_len / BATCH};

  printf("encode: batches of %d spans, 3 attributes each, one core, %.2fs per row\n", BATCH, secs);
  printf("%-18s %14s %10s %10s %12s\n", "format", "spans/s", "ns/span", "MB/s", "bytes/span");
  for (int i = 0; i < 4; i++) {
    double r = rows[i].spans_per_s;
    printf("%-18s %14.0f %10.1f %10.1f %12.1f\n", rows[i].name, r, 1e9 / r, r * rows[i].bytes_per_span / 1e6,
           rows[i].bytes_per_span);
  }
  printf("protobuf target: >= 2000000 spans/s (%s)\n", rows[0].spans_per_s >= 2e6 ? "met" : "NOT met");
  free(copy);
  polytel__buf_free(&pb), polytel__buf_free(&js), polytel__buf_free(&gz);
  return 0;
}
