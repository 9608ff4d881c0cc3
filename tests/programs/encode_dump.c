/* encode_dump.c — writes the OTLP encodings (pb, json, gzip'd pb) of a fixed sample set into argv[1], for
 * tests/integration/test_encode_interop.py. The values here are asserted there: change both together. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/encode.h"

#define STR(k, s)                                                                                  \
  {                                                                                                \
    .key = k, .key_len = sizeof(k) - 1, .type = POLYTEL_ATTR_STRING, .v.str = { s, sizeof(s) - 1 } \
  }
#define INT(k, x) \
  { .key = k, .key_len = sizeof(k) - 1, .type = POLYTEL_ATTR_INT, .v.i = (x) }
#define DBL(k, x) \
  { .key = k, .key_len = sizeof(k) - 1, .type = POLYTEL_ATTR_DOUBLE, .v.d = (x) }
#define BOOL(k, x) \
  { .key = k, .key_len = sizeof(k) - 1, .type = POLYTEL_ATTR_BOOL, .v.b = (x) }
/* An array attribute: its elements' bytes as the records hold them (record.h). */
#define ARR(k, t, p, n)                                                                 \
  {                                                                                     \
    .key = k, .key_len = sizeof(k) - 1, .type = (t), .v.str = {(const char *)(p), (n) } \
  }
#define N(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))
#define S(s) s, sizeof(s) - 1

static const uint8_t T1[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                               0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};
static const uint8_t T2[16] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
                               0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f};
static const uint8_t S1[8] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11};
static const uint8_t S2[8] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02};
static const uint8_t S3[8] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
static const uint8_t S4[8] = {0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};

static int write_file(const char *dir, const char *name, const polytel__buf_t *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t w = b->len ? fwrite(b->data, 1, b->len, f) : 0;
  int rc = fclose(f);
  return (w == b->len && rc == 0) ? 0 : -1;
}

static int emit(const char *dir, const char *stem, polytel__buf_t *pb, polytel__buf_t *js) {
  char name[64];
  polytel__buf_t gz = {0};
  int rc = polytel__gzip(pb->data, pb->len, &gz);
  if (rc != 0) {
    fprintf(stderr, "gzip %s: %d\n", stem, rc);
    return -1;
  }
  snprintf(name, sizeof name, "%s.pb", stem);
  rc |= write_file(dir, name, pb);
  snprintf(name, sizeof name, "%s.json", stem);
  rc |= write_file(dir, name, js);
  snprintf(name, sizeof name, "%s.pb.gz", stem);
  rc |= write_file(dir, name, &gz);
  polytel__buf_free(&gz);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];

  polytel__kv_t res_attrs[] = {STR("service.name", "encode-dump"), INT("host.cores", 2),
                               DBL("sample.ratio", 0.25), BOOL("debug", 1)};
  polytel__resource_t res = {.attrs = res_attrs, .n_attrs = N(res_attrs)};

  /* ---- logs: three targets, interleaved, so grouping and in-group order both matter */
  static const polytel__kv_t la1[] = {STR("path", "/a\"b\\c"), INT("status", 200), DBL("dur", 1.5),
                                      BOOL("ok", 1)};
  static const polytel__kv_t la2[] = {STR("q",
                                          "SELECT \x01 \xc3\xbcn\xc3\xaf"
                                          "c\xc3\xb8"
                                          "d\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89"),
                                      INT("rows", -42), INT("big", INT64_MIN), BOOL("cached", 0)};
  static const polytel__kv_t la3[] = {DBL("nan", NAN), DBL("inf", INFINITY), DBL("ninf", -INFINITY),
                                      DBL("tiny", 1e-300), DBL("third", 1.0 / 3.0)};
  static const polytel__kv_t la5[] = {STR("k\x7f\x1f", "tab\there\r\nnul\0end"), STR("", "empty key")};
  polytel__log_rec_t logs[] = {
      {.time_ns = 1700000000000000001ULL,
       .observed_ns = 1700000000000000006ULL,
       .severity = 9,
       .target = S("app.http"),
       .body = S("request done"),
       .has_span = 1,
       .attrs = la1,
       .n_attrs = N(la1)},
      {.time_ns = 1700000000000000002ULL,
       .observed_ns = 1700000000000000007ULL,
       .severity = 13,
       .target = S("app.db"),
       .body = S("slow query\n\ttab"),
       .attrs = la2,
       .n_attrs = N(la2)},
      {.time_ns = 1700000000000000003ULL,
       .observed_ns = 1700000000000000008ULL,
       .severity = 17,
       .target = S("app.http"),
       .body = S("bad \xff\xfe utf8 \xe2\x82 end \xed\xa0\x80"),
       .attrs = la3,
       .n_attrs = N(la3)},
      {.time_ns = 1700000000000000004ULL,
       .severity = 1,
       .target = "",
       .target_len = 0,
       .body = S("no target")},
      {.time_ns = 1700000000000000005ULL,
       .observed_ns = 1700000000000000009ULL,
       .severity = 21,
       .target = S("app.db"),
       .body = S(""),
       .attrs = la5,
       .n_attrs = N(la5)},
      {.time_ns = 1700000000000000010ULL, .severity = 10, .target = S("app.http"), .body = NULL},
  };
  memcpy(logs[0].trace_id, T1, 16);
  memcpy(logs[0].span_id, S1, 8);
  logs[0].flags = 1;
  logs[0].dropped_attrs = 2;

  /* ---- spans: a trace of three nested spans, and a second root */
  static const polytel__kv_t sa_root[] = {STR("http.method", "GET"), INT("http.status_code", 200)};
  static const polytel__kv_t sa_cache[] = {STR("key", "user:\xe2\x9c\x93"), INT("size", 9007199254740993LL),
                                           DBL("hit_ratio", 0.875), BOOL("hit", 1)};
  /* The span model: a consumer span of its own scope, with arrays, events, links, tracestate, dropped counts.
   */
  static const int64_t ints[] = {1, -2, INT64_MAX};
  static const double dbls[] = {0.5, -1e300};
  static const polytel__kv_t sa_batch[] = {ARR("tags", POLYTEL_ATTR_STRING_ARRAY,
                                               "\x01\x00\x00\x00"
                                               "a"
                                               "\x00\x00\x00\x00"
                                               "\x04\x00\x00\x00"
                                               "\xc3\xa9\xe2\x9c",
                                               17),
                                           ARR("ids", POLYTEL_ATTR_INT_ARRAY, ints, 24),
                                           ARR("ratios", POLYTEL_ATTR_DOUBLE_ARRAY, dbls, 16),
                                           ARR("flags", POLYTEL_ATTR_BOOL_ARRAY, "\x01\x00\x01", 3),
                                           ARR("none", POLYTEL_ATTR_STRING_ARRAY, "", 0)};
  static const polytel__kv_t ea[] = {STR("exception.type", "ValueError"), STR("exception.message", "bad"),
                                     STR("exception.stacktrace", "Traceback:\n  line 1")};
  static const polytel__event_rec_t events[] = {{.time_ns = 1700000003000000100ULL, .name = S("checkpoint")},
                                                {.time_ns = 1700000003000000200ULL,
                                                 .name = S("exception"),
                                                 .attrs = ea,
                                                 .n_attrs = N(ea),
                                                 .dropped_attrs = 1}};
  static const polytel__kv_t lna[] = {STR("job", "7")};
  polytel__link_rec_t links[] = {{.flags = 0x301,
                                  .trace_state = S("rojo=00f067aa0ba902b7"),
                                  .attrs = lna,
                                  .n_attrs = N(lna),
                                  .dropped_attrs = 3},
                                 {.flags = 0x100}};
  memcpy(links[0].trace_id, T2, 16), memcpy(links[0].span_id, S4, 8);
  memcpy(links[1].trace_id, T1, 16), memcpy(links[1].span_id, S3, 8);
  polytel__span_rec_t spans[] = {
      {.has_parent = 1,
       .name = S("db.query"),
       .start_ns = 1700000001000000100ULL,
       .end_ns = 1700000001000000900ULL,
       .status = POLYTEL_STATUS_ERROR,
       .status_msg = S("timeout \"db\"")},
      {.has_parent = 1,
       .name = S("cache.get"),
       .start_ns = 1700000001000000200ULL,
       .end_ns = 1700000001000000300ULL,
       .attrs = sa_cache,
       .n_attrs = N(sa_cache)},
      {.has_parent = 0,
       .name = S("GET /users"),
       .start_ns = 1700000001000000000ULL,
       .end_ns = 1700000001000001000ULL,
       .status = POLYTEL_STATUS_OK,
       .attrs = sa_root,
       .n_attrs = N(sa_root)},
      {.has_parent = 0,
       .name = S("tick"),
       .start_ns = 1700000002000000000ULL,
       .end_ns = 1700000002000000000ULL},
      {.has_parent = 1,
       .name = S("batch"),
       .kind = POLYTEL_SPAN_KIND_CONSUMER,
       .flags = 0x301,
       .scope_name = S("billing"),
       .scope_version = S("2.1"),
       .trace_state = S("congo=t61rcWkgMzE"),
       .start_ns = 1700000003000000000ULL,
       .end_ns = 1700000003000001000ULL,
       .attrs = sa_batch,
       .n_attrs = N(sa_batch),
       .events = events,
       .n_events = N(events),
       .links = links,
       .n_links = N(links),
       .dropped_attrs = 4,
       .dropped_events = 5,
       .dropped_links = 6},
  };
  for (uint32_t i = 0; i < 4; i++) spans[i].kind = POLYTEL_SPAN_KIND_INTERNAL, spans[i].flags = 0x101;
  memcpy(spans[0].trace_id, T1, 16), memcpy(spans[0].span_id, S2, 8), memcpy(spans[0].parent_id, S1, 8);
  memcpy(spans[1].trace_id, T1, 16), memcpy(spans[1].span_id, S3, 8), memcpy(spans[1].parent_id, S2, 8);
  memcpy(spans[2].trace_id, T1, 16), memcpy(spans[2].span_id, S1, 8);
  memcpy(spans[3].trace_id, T2, 16), memcpy(spans[3].span_id, S4, 8);
  memcpy(spans[4].trace_id, T2, 16), memcpy(spans[4].span_id, S3, 8), memcpy(spans[4].parent_id, S4, 8);

  /* ---- metrics: a counter with two series, a gauge, a histogram, an empty histogram */
  static const polytel__kv_t ma_get[] = {STR("method", "GET")};
  static const polytel__kv_t ma_post[] = {STR("method", "POST")};
  static const double bounds[] = {0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000};
  static const uint64_t buckets[16] = {1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint64_t one_bucket[1] = {0};
  const uint64_t t0 = 1700000000000000000ULL, t1 = 1700000060000000000ULL;
  polytel__point_t counter_pts[] = {
      {.attrs = ma_get, .n_attrs = 1, .start_ns = t0, .time_ns = t1, .v.i = 42},
      {.attrs = ma_post, .n_attrs = 1, .start_ns = t0, .time_ns = t1, .v.i = 7},
  };
  polytel__point_t gauge_pts[] = {{.time_ns = t1, .is_double = 1, .v.d = 21.5}};
  polytel__point_t hist_pts[] = {{.attrs = ma_get,
                                  .n_attrs = 1,
                                  .start_ns = t0,
                                  .time_ns = t1,
                                  .count = 4,
                                  .sum = 10017.25,
                                  .min = -1,
                                  .max = 12000,
                                  .bounds = bounds,
                                  .n_bounds = 15,
                                  .buckets = buckets}};
  polytel__point_t empty_pts[] = {{.start_ns = t0, .time_ns = t1, .buckets = one_bucket}};
  polytel__metric_rec_t metrics[] = {
      {.name = "http.requests",
       .unit = "1",
       .kind = POLYTEL_METRIC_COUNTER,
       .points = counter_pts,
       .n_points = 2},
      {.name = "temperature",
       .unit = "Cel",
       .kind = POLYTEL_METRIC_GAUGE,
       .points = gauge_pts,
       .n_points = 1},
      {.name = "latency", .unit = "ms", .kind = POLYTEL_METRIC_HISTOGRAM, .points = hist_pts, .n_points = 1},
      {.name = "empty", .unit = "", .kind = POLYTEL_METRIC_HISTOGRAM, .points = empty_pts, .n_points = 1},
  };

  polytel__buf_t pb = {0}, js = {0};
  int rc = 0;
  rc |= polytel__encode_logs(&pb, POLYTEL__FMT_PROTOBUF, &res, logs, N(logs));
  rc |= polytel__encode_logs(&js, POLYTEL__FMT_JSON, &res, logs, N(logs));
  rc |= emit(dir, "logs", &pb, &js);
  polytel__buf_reset(&pb), polytel__buf_reset(&js);
  rc |= polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, &res, spans, N(spans));
  rc |= polytel__encode_spans(&js, POLYTEL__FMT_JSON, &res, spans, N(spans));
  rc |= emit(dir, "traces", &pb, &js);
  polytel__buf_reset(&pb), polytel__buf_reset(&js);
  rc |= polytel__encode_metrics(&pb, POLYTEL__FMT_PROTOBUF, &res, metrics, N(metrics));
  rc |= polytel__encode_metrics(&js, POLYTEL__FMT_JSON, &res, metrics, N(metrics));
  rc |= emit(dir, "metrics", &pb, &js);
  polytel__buf_free(&pb), polytel__buf_free(&js);
  if (rc) fprintf(stderr, "encode_dump: failed\n");
  return rc ? 1 : 0;
}
