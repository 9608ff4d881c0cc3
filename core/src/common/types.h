/* types.h — decoded telemetry records: what the consumer produces and the sinks/encoders take. */
#ifndef POLYTEL_TYPES_H
#define POLYTEL_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "polytel.h"

/* A thread's name, NUL included (Linux names are at most 15 bytes; language names can be longer). */
#define POLYTEL__THREAD_NAME_CAP 32

/* An attribute as held by a record. Strings are not NUL-terminated (use len). */
typedef struct polytel__kv_s {
  const char *key;
  uint32_t key_len;
  uint8_t type; /* polytel_attr_type_t */
  union {
    struct {
      const char *ptr;
      uint32_t len;
    } str;
    int64_t i;
    double d;
    int b;
  } v;
} polytel__kv_t;

/*
 * Resource attributes only: an OTLP array of strings (browser.brands), held in v.str as the strings separated
 * by NUL bytes ("a\0b" is ["a", "b"]; length 0 is the empty array). Never a record attribute.
 */
#define POLYTEL__ATTR_STRINGS 16

typedef struct polytel__log_rec_s {
  uint64_t time_ns;
  uint64_t observed_ns;
  int severity; /* polytel_level_t is the OTel severity number */
  const char *target;
  uint32_t target_len;
  const char *body;
  uint32_t body_len;
  int has_span; /* trace_id/span_id valid */
  uint8_t trace_id[16];
  uint8_t span_id[8];
  const polytel__kv_t *attrs;
  uint32_t n_attrs;
  uint32_t thread_id;                         /* 0: no thread (then no thread.* attributes) */
  char thread_name[POLYTEL__THREAD_NAME_CAP]; /* "" when unknown */
} polytel__log_rec_t;

typedef struct polytel__span_rec_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];
  int has_parent;
  const char *name;
  uint32_t name_len;
  uint64_t start_ns;
  uint64_t end_ns;
  int status; /* polytel_status_t */
  const char *status_msg;
  uint32_t status_msg_len;
  const polytel__kv_t *attrs;
  uint32_t n_attrs;
  uint32_t thread_id;
  char thread_name[POLYTEL__THREAD_NAME_CAP];
} polytel__span_rec_t;

/* One data point. Sum and gauge use is_double + v; histograms the rest. */
typedef struct polytel__point_s {
  const polytel__kv_t *attrs;
  uint32_t n_attrs;
  uint64_t start_ns;
  uint64_t time_ns;
  int is_double;
  union {
    int64_t i;
    double d;
  } v;
  uint64_t count;
  double sum, min, max;
  const double *bounds; /* n_bounds explicit bounds */
  uint32_t n_bounds;
  const uint64_t *buckets; /* n_bounds + 1 counts */
} polytel__point_t;

typedef struct polytel__metric_rec_s {
  const char *name;
  const char *unit;
  int kind; /* polytel_metric_kind_t; COUNTER = monotonic cumulative Sum */
  const polytel__point_t *points;
  uint32_t n_points;
} polytel__metric_rec_t;

typedef struct polytel__resource_s {
  polytel__kv_t *attrs;
  uint32_t n_attrs;
  char *storage; /* owns the strings */
} polytel__resource_t;

typedef enum { POLYTEL__SIG_TRACES = 0, POLYTEL__SIG_LOGS = 1, POLYTEL__SIG_METRICS = 2 } polytel__signal_t;

typedef enum { POLYTEL__FMT_PROTOBUF = 0, POLYTEL__FMT_JSON = 1 } polytel__format_t;

#endif
