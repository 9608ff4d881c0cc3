/* types.h — decoded telemetry records: what the consumer produces and the sinks/encoders take. */
#ifndef POLYTEL_TYPES_H
#define POLYTEL_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
 * Arrays (POLYTEL_ATTR_*_ARRAY), resource and record attributes alike, hold their elements in v.str as one
 * byte string (ptr, len = bytes), so everything that copies a string copies an array the same way:
 * strings as [u32 length][bytes] each, unpadded; ints and doubles 8 bytes each; bools one byte (0/1)
 * each. Bytes may be unaligned: read them with memcpy (polytel__arr_* below).
 */
static inline int polytel__kv_has_bytes(uint8_t type) {
  return type == POLYTEL_ATTR_STRING ||
         (type >= POLYTEL_ATTR_STRING_ARRAY && type <= POLYTEL_ATTR_BOOL_ARRAY);
}
static inline int polytel__is_array(uint8_t type) {
  return type >= POLYTEL_ATTR_STRING_ARRAY && type <= POLYTEL_ATTR_BOOL_ARRAY;
}
/* The element count of an array's bytes. */
static inline uint32_t polytel__arr_count(uint8_t type, const char *p, uint32_t len) {
  if (type == POLYTEL_ATTR_BOOL_ARRAY) return len;
  if (type != POLYTEL_ATTR_STRING_ARRAY) return len / 8;
  uint32_t n = 0, off = 0, l;
  while (off + 4 <= len) {
    memcpy(&l, p + off, 4);
    off += 4 + l;
    n++;
  }
  return n;
}
/* The string at *off of a string array's bytes; advances *off. */
static inline const char *polytel__arr_str(const char *p, uint32_t *off, uint32_t *len) {
  memcpy(len, p + *off, 4);
  const char *s = p + *off + 4;
  *off += 4 + *len;
  return s;
}
static inline uint64_t polytel__arr_u64(const char *p, uint32_t i) {
  uint64_t v;
  memcpy(&v, p + 8 * (size_t)i, 8);
  return v;
}

/* Default instrumentation scope of spans and metrics. */
#define POLYTEL__SCOPE_NAME "polytel"

/* A span event as decoded. */
typedef struct polytel__event_rec_s {
  uint64_t time_ns;
  const char *name;
  uint32_t name_len;
  const polytel__kv_t *attrs;
  uint32_t n_attrs;
  uint32_t dropped_attrs;
} polytel__event_rec_t;

/* A span link as decoded. */
typedef struct polytel__link_rec_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint32_t flags; /* OTLP Link.flags: trace flags, bits 8-9 remote */
  const char *trace_state;
  uint32_t trace_state_len;
  const polytel__kv_t *attrs;
  uint32_t n_attrs;
  uint32_t dropped_attrs;
} polytel__link_rec_t;

/* OTLP SpanFlags bits 8 and 9: whether the parent (of a span) or the linked span is remote is known / true.
 */
#define POLYTEL__SPAN_FLAG_HAS_IS_REMOTE 0x100u
#define POLYTEL__SPAN_FLAG_IS_REMOTE 0x200u

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
  uint32_t flags; /* OTLP LogRecord.flags: the span's trace flags (0 without a span) */
  uint32_t dropped_attrs;
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
  int kind;       /* polytel_span_kind_t */
  uint32_t flags; /* OTLP Span.flags: trace flags, bits 8-9 parent remote */
  /* Instrumentation scope; an empty name means the default, POLYTEL__SCOPE_NAME with the library's version.
   */
  const char *scope_name;
  uint32_t scope_name_len;
  const char *scope_version;
  uint32_t scope_version_len;
  const char *trace_state;
  uint32_t trace_state_len;
  const polytel__event_rec_t *events;
  uint32_t n_events;
  const polytel__link_rec_t *links;
  uint32_t n_links;
  uint32_t dropped_attrs, dropped_events, dropped_links;
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
