/* encode_pb.c — the OTLP protobuf encoders (logs, traces, metrics). */
#include <stdlib.h>
#include <string.h>

#include "export/encode.h"

/* Encoded length of s after replacing invalid sequences with U+FFFD. */
static size_t utf8_clean_len(const uint8_t *s, size_t n) {
  size_t i = 0, out = 0, bad;
  while (i < n) {
    size_t k = polytel__utf8_step(s + i, n - i, &bad);
    if (k) {
      out += k;
      i += k;
    } else {
      out += 3;
      i += bad;
    }
  }
  return out;
}

/* Length of the leading all-valid part; the common case is the whole string. */
static inline size_t utf8_valid_prefix(const uint8_t *s, size_t n) {
  size_t i = 0, bad;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (!(w & 0x8080808080808080ULL)) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = polytel__utf8_step(s + i, n - i, &bad);
    if (!k) break;
    i += k;
  }
  return i;
}

/* ------------------------------------------------------- back-to-front writer */

/*
 * The message is written from the end of out's spare capacity towards its
 * start. A nested message's body is then complete before its header, so every
 * length is exact with one pass and no sizing functions. Each record reserves
 * an upper bound of its size first; the primitives below never check.
 * Positions are counted from the top, so they survive a reallocation.
 */
typedef struct {
  polytel__buf_t *b;
  size_t base; /* b->len at start: where the result goes */
  uint8_t *p;  /* write cursor, moves down */
} rw_t;

static inline size_t rw_pos(const rw_t *w) {
  return (size_t)(w->b->data + w->b->cap - w->p);
}

static int rw_grow(rw_t *w, size_t n) {
  polytel__buf_t *b = w->b;
  size_t written = rw_pos(w);
  size_t need = w->base + written + n;
  if (need < n) goto oom;
  size_t cap = polytel__buf_grown_cap(b->cap, need);
  /* Not realloc: that would also copy the unused gap in the middle. */
  uint8_t *d = malloc(cap);
  if (!d) goto oom;
  if (w->base) memcpy(d, b->data, w->base);
  if (written) memcpy(d + cap - written, w->p, written);
  free(b->data);
  b->data = d;
  b->cap = cap;
  w->p = d + cap - written;
  return 0;
oom:
  b->oom = 1;
  return -1;
}

static inline int rw_need(rw_t *w, size_t n) {
  if ((size_t)(w->p - (w->b->data + w->base)) >= n) return 0;
  return rw_grow(w, n);
}

static int rw_init(rw_t *w, polytel__buf_t *b, size_t hint) {
  w->b = b;
  w->base = b->len;
  if (b->oom || polytel__buf_reserve(b, hint) != 0) return -1;
  w->p = b->data + b->cap;
  return 0;
}

static int rw_finish(rw_t *w) {
  polytel__buf_t *b = w->b;
  if (b->oom) return POLYTEL_ENOMEM;
  size_t written = rw_pos(w);
  memmove(b->data + w->base, w->p, written);
  b->len = w->base + written;
  return 0;
}

static inline void w_byte(rw_t *w, uint8_t c) {
  *--w->p = c;
}

static inline void w_raw(rw_t *w, const void *s, size_t n) {
  w->p -= n;
  if (n) memcpy(w->p, s, n);
}

static inline void w_varint(rw_t *w, uint64_t v) {
  if (v < 0x80) {
    *--w->p = (uint8_t)v;
    return;
  }
  int n = 1;
  for (uint64_t t = v >> 7; t; t >>= 7) n++;
  uint8_t *q = w->p -= n;
  while (v >= 0x80) {
    *q++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *q = (uint8_t)v;
}

static inline void w_fixed64(rw_t *w, uint64_t v) {
  uint8_t *q = w->p -= 8;
  for (int i = 0; i < 8; i++) q[i] = (uint8_t)(v >> (8 * i));
}

static inline void w_double(rw_t *w, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  w_fixed64(w, v);
}

/* Closes a length-delimited field opened at `mark`. Fields here are all < 16: one tag byte. */
static inline void w_close(rw_t *w, size_t mark, unsigned field) {
  w_varint(w, rw_pos(w) - mark);
  w_byte(w, (uint8_t)(field << 3 | 2));
}

static void w_utf8(rw_t *w, const char *str, size_t n) {
  const uint8_t *s = (const uint8_t *)str;
  size_t v = utf8_valid_prefix(s, n);
  if (v == n) {
    w_raw(w, s, n);
    return;
  }
  size_t len = v + utf8_clean_len(s + v, n - v), i = v, bad;
  uint8_t *q = w->p -= len;
  if (v) memcpy(q, s, v);
  q += v;
  while (i < n) {
    size_t k = polytel__utf8_step(s + i, n - i, &bad);
    if (k) {
      memcpy(q, s + i, k);
      q += k;
      i += k;
    } else {
      *q++ = 0xEF, *q++ = 0xBF, *q++ = 0xBD;
      i += bad;
    }
  }
}

/* A string field; proto3 omits an empty one unless it is a oneof member (always). */
static inline void w_str(rw_t *w, unsigned field, const char *s, size_t n, int always) {
  if (!n && !always) return;
  size_t m = rw_pos(w);
  w_utf8(w, s, n);
  w_close(w, m, field);
}

static inline void w_bytes(rw_t *w, unsigned field, const uint8_t *s, size_t n) {
  w_raw(w, s, n);
  w_varint(w, n);
  w_byte(w, (uint8_t)(field << 3 | 2));
}

static inline void w_fixed64_field(rw_t *w, unsigned field, uint64_t v) {
  if (!v) return;
  w_fixed64(w, v);
  w_byte(w, (uint8_t)(field << 3 | 1));
}

/* Worst case: every byte invalid becomes 3, plus a tag and a 10-byte length. */
#define STR_BOUND(n) (3 * (size_t)(n) + 12)

static size_t kv_bound(const polytel__kv_t *kv) {
  size_t b = 40 + STR_BOUND(kv->key_len);
  if (kv->type == POLYTEL_ATTR_STRING) b += STR_BOUND(kv->v.str.len);
  /* An array: its bytes, and per element (at most one per byte) two tags and two lengths. */
  if (polytel__is_array(kv->type)) b += STR_BOUND(kv->v.str.len) + 24 * ((size_t)kv->v.str.len + 1);
  return b;
}

static size_t kvs_bound(const polytel__kv_t *kv, size_t n) {
  size_t b = 0;
  for (size_t i = 0; i < n; i++) b += kv_bound(&kv[i]);
  return b;
}

/* AnyValue.array_value (5) = ArrayValue {values = 1: AnyValue}, the last element first. */
static void w_array(rw_t *w, const polytel__kv_t *kv) {
  const char *p = kv->v.str.ptr;
  uint32_t len = kv->v.str.len, n = polytel__arr_count(kv->type, p, len);
  size_t mv = rw_pos(w);
  if (kv->type == POLYTEL_ATTR_STRING_ARRAY) {
    /* Length-prefixed: the offsets, found forwards, are written backwards. */
    uint32_t stack[64], *offs = n <= 64 ? stack : malloc(n * sizeof *offs), off = 0, l;
    if (!offs) {
      w->b->oom = 1;
      return;
    }
    for (uint32_t i = 0; i < n; i++) {
      offs[i] = off;
      polytel__arr_str(p, &off, &l);
    }
    for (uint32_t i = n; i-- > 0;) {
      off = offs[i];
      const char *s = polytel__arr_str(p, &off, &l);
      size_t me = rw_pos(w);
      w_str(w, 1, s, l, 1);
      w_close(w, me, 1);
    }
    if (offs != stack) free(offs);
  } else {
    for (uint32_t i = n; i-- > 0;) {
      size_t me = rw_pos(w);
      if (kv->type == POLYTEL_ATTR_BOOL_ARRAY) {
        w_byte(w, p[i] ? 1 : 0);
        w_byte(w, 2 << 3 | 0);
      } else if (kv->type == POLYTEL_ATTR_INT_ARRAY) {
        w_varint(w, polytel__arr_u64(p, i));
        w_byte(w, 3 << 3 | 0);
      } else {
        w_fixed64(w, polytel__arr_u64(p, i));
        w_byte(w, 4 << 3 | 1);
      }
      w_close(w, me, 1);
    }
  }
  w_close(w, mv, 5);
}

/* One KeyValue {key=1, value=2: AnyValue}. */
static void w_kv(rw_t *w, unsigned field, const polytel__kv_t *kv) {
  size_t m = rw_pos(w);
  size_t mv = m;
  switch (kv->type) {
    case POLYTEL_ATTR_STRING:
      w_str(w, 1, kv->v.str.ptr, kv->v.str.len, 1);
      break;
    case POLYTEL_ATTR_BOOL:
      w_byte(w, kv->v.b ? 1 : 0);
      w_byte(w, 2 << 3 | 0);
      break;
    case POLYTEL_ATTR_INT:
      w_varint(w, (uint64_t)kv->v.i);
      w_byte(w, 3 << 3 | 0);
      break;
    case POLYTEL_ATTR_DOUBLE:
      w_double(w, kv->v.d);
      w_byte(w, 4 << 3 | 1);
      break;
    case POLYTEL_ATTR_STRING_ARRAY:
    case POLYTEL_ATTR_INT_ARRAY:
    case POLYTEL_ATTR_DOUBLE_ARRAY:
    case POLYTEL_ATTR_BOOL_ARRAY:
      w_array(w, kv);
      break;
    default: /* unknown type: an empty AnyValue, as OTLP allows */
      break;
  }
  w_close(w, mv, 2);
  w_str(w, 1, kv->key, kv->key_len, 0);
  w_close(w, m, field);
}

/* Repeated fields keep their order: back to front means last first. */
static void w_kvs(rw_t *w, unsigned field, const polytel__kv_t *kv, size_t n) {
  for (size_t i = n; i-- > 0;) w_kv(w, field, &kv[i]);
}

/* Resource {attributes=1} as field 1 of Resource{Logs,Spans,Metrics}. */
static int w_resource(rw_t *w, const polytel__resource_t *res) {
  const polytel__kv_t *a = res ? res->attrs : NULL;
  size_t n = res ? res->n_attrs : 0;
  if (rw_need(w, kvs_bound(a, n) + 16)) return -1;
  size_t m = rw_pos(w);
  w_kvs(w, 1, a, n);
  w_close(w, m, 1);
  return 0;
}

/* InstrumentationScope {name=1, version=2} as field 1 of Scope{Logs,Spans,Metrics}. */
static int w_scope(rw_t *w, const char *name, size_t name_len, const char *version, size_t vlen) {
  if (rw_need(w, STR_BOUND(name_len) + STR_BOUND(vlen) + 16)) return -1;
  size_t m = rw_pos(w);
  w_str(w, 2, version, vlen, 0);
  w_str(w, 1, name, name_len, 0);
  w_close(w, m, 1);
  return 0;
}

/* --------------------------------------------------------------------- spans */

static inline void w_varint_field(rw_t *w, unsigned field, uint64_t v) {
  if (!v) return;
  w_varint(w, v);
  w_varint(w, (uint64_t)field << 3 | 0);
}

static inline void w_fixed32_field(rw_t *w, unsigned field, uint32_t v) {
  if (!v) return;
  uint8_t *q = w->p -= 4;
  for (int i = 0; i < 4; i++) q[i] = (uint8_t)(v >> (8 * i));
  w_varint(w, (uint64_t)field << 3 | 5);
}

static size_t span_bound(const polytel__span_rec_t *s) {
  size_t b = 160 + STR_BOUND(s->name_len) + STR_BOUND(s->status_msg_len) + STR_BOUND(s->trace_state_len) +
             kvs_bound(s->attrs, s->n_attrs);
  for (uint32_t i = 0; i < s->n_events; i++)
    b += 48 + STR_BOUND(s->events[i].name_len) + kvs_bound(s->events[i].attrs, s->events[i].n_attrs);
  for (uint32_t i = 0; i < s->n_links; i++)
    b += 72 + STR_BOUND(s->links[i].trace_state_len) + kvs_bound(s->links[i].attrs, s->links[i].n_attrs);
  return b;
}

/* Span.Event {time=1, name=2, attributes=3, dropped_attributes_count=4} as Span field 11. */
static void w_event(rw_t *w, const polytel__event_rec_t *e) {
  size_t m = rw_pos(w);
  w_varint_field(w, 4, e->dropped_attrs);
  w_kvs(w, 3, e->attrs, e->n_attrs);
  w_str(w, 2, e->name, e->name_len, 0);
  w_fixed64_field(w, 1, e->time_ns);
  w_close(w, m, 11);
}

/* Span.Link {trace_id=1, span_id=2, trace_state=3, attributes=4, dropped_attributes_count=5, flags=6}. */
static void w_link(rw_t *w, const polytel__link_rec_t *l) {
  size_t m = rw_pos(w);
  w_fixed32_field(w, 6, l->flags);
  w_varint_field(w, 5, l->dropped_attrs);
  w_kvs(w, 4, l->attrs, l->n_attrs);
  w_str(w, 3, l->trace_state, l->trace_state_len, 0);
  w_bytes(w, 2, l->span_id, 8);
  w_bytes(w, 1, l->trace_id, 16);
  w_close(w, m, 13);
}

static void w_span(rw_t *w, const polytel__span_rec_t *s, const polytel__kv_t *tk, uint32_t nt) {
  size_t m = rw_pos(w);
  w_fixed32_field(w, 16, s->flags);
  if (s->status != POLYTEL_STATUS_UNSET || s->status_msg_len) {
    size_t ms = rw_pos(w);
    if (s->status != POLYTEL_STATUS_UNSET) {
      w_varint(w, (uint64_t)(int64_t)s->status);
      w_byte(w, 3 << 3 | 0);
    }
    w_str(w, 2, s->status_msg, s->status_msg_len, 0);
    w_close(w, ms, 15);
  }
  w_varint_field(w, 14, s->dropped_links);
  for (uint32_t i = s->n_links; i-- > 0;) w_link(w, &s->links[i]);
  w_varint_field(w, 12, s->dropped_events);
  for (uint32_t i = s->n_events; i-- > 0;) w_event(w, &s->events[i]);
  w_varint_field(w, 10, s->dropped_attrs);
  w_kvs(w, 9, tk, nt); /* back to front: after the span's own on the wire */
  w_kvs(w, 9, s->attrs, s->n_attrs);
  w_fixed64_field(w, 8, s->end_ns);
  w_fixed64_field(w, 7, s->start_ns);
  w_varint_field(w, 6, (uint64_t)(uint32_t)s->kind);
  w_str(w, 5, s->name, s->name_len, 0);
  if (s->has_parent) w_bytes(w, 4, s->parent_id, 8);
  w_str(w, 3, s->trace_state, s->trace_state_len, 0);
  w_bytes(w, 2, s->span_id, 8);
  w_bytes(w, 1, s->trace_id, 16);
  w_close(w, m, 2); /* ScopeSpans.spans */
}

/* ---------------------------------------------------------------------- logs */

static const char *severity_text(int sev) {
  static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
  if (sev < 1 || sev > 24) return NULL;
  return names[(sev - 1) / 4];
}

static size_t log_bound(const polytel__log_rec_t *r) {
  return 144 + STR_BOUND(r->body_len) + kvs_bound(r->attrs, r->n_attrs);
}

static void w_log(rw_t *w, const polytel__log_rec_t *r, const polytel__kv_t *tk, uint32_t nt) {
  size_t m = rw_pos(w);
  w_fixed64_field(w, 11, r->observed_ns);
  if (r->has_span) {
    w_bytes(w, 10, r->span_id, 8);
    w_bytes(w, 9, r->trace_id, 16);
    w_fixed32_field(w, 8, r->flags & 0xff); /* LogRecordFlags: the trace flags */
  }
  w_varint_field(w, 7, r->dropped_attrs);
  w_kvs(w, 6, tk, nt);
  w_kvs(w, 6, r->attrs, r->n_attrs);
  if (r->body) {
    size_t mb = rw_pos(w);
    w_str(w, 1, r->body, r->body_len, 1);
    w_close(w, mb, 5);
  }
  const char *text = severity_text(r->severity);
  if (text) w_str(w, 3, text, strlen(text), 0);
  if (r->severity) {
    w_varint(w, (uint64_t)(int64_t)r->severity);
    w_byte(w, 2 << 3 | 0);
  }
  w_fixed64_field(w, 1, r->time_ns);
  w_close(w, m, 2); /* ScopeLogs.log_records */
}

/* ------------------------------------------------------- logs and spans by scope */

/* One record of a grouped batch, its bound reserved first (ScopeLogs.log_records, ScopeSpans.spans). */
static int w_scoped_rec(rw_t *w, const polytel__groups_t *g, uint32_t i) {
  polytel__kv_t tk[2];
  if (g->kind == POLYTEL__SCOPED_SPANS) {
    const polytel__span_rec_t *s = (const polytel__span_rec_t *)g->recs + i;
    uint32_t nt = polytel__thread_attrs(tk, s->attrs, s->n_attrs, s->thread_id, s->thread_name);
    if (rw_need(w, span_bound(s) + kvs_bound(tk, nt))) return -1;
    w_span(w, s, tk, nt);
  } else {
    const polytel__log_rec_t *r = (const polytel__log_rec_t *)g->recs + i;
    uint32_t nt = polytel__thread_attrs(tk, r->attrs, r->n_attrs, r->thread_id, r->thread_name);
    if (rw_need(w, log_bound(r) + kvs_bound(tk, nt))) return -1;
    w_log(w, r, tk, nt);
  }
  return 0;
}

/*
 * Export{Logs,Trace}ServiceRequest {resource_*=1: Resource* {resource=1, scope_*=2: Scope* {scope=1,
 * records=2}}}: logs and spans share every field number, so one writer serves both.
 */
int polytel__pb_scoped(polytel__buf_t *out, const polytel__resource_t *res, polytel__scoped_t kind,
                       const void *recs, size_t n) {
  polytel__groups_t g;
  if (polytel__groups_build(&g, kind, recs, n)) {
    out->oom = 1;
    return POLYTEL_ENOMEM;
  }
  rw_t w;
  int rc = POLYTEL_ENOMEM;
  if (rw_init(&w, out, 256 + n * 160)) goto done;
  size_t m_rs = rw_pos(&w);
  for (uint32_t k = g.n_groups; k-- > 0;) {
    size_t m_ss = rw_pos(&w);
    for (uint32_t i = g.last[k]; i != UINT32_MAX; i = g.prev[i])
      if (w_scoped_rec(&w, &g, i)) goto done;
    const char *name, *version;
    size_t nl, vl;
    polytel__groups_scope(&g, k, &name, &nl, &version, &vl);
    if (w_scope(&w, name, nl, version, vl)) goto done;
    w_close(&w, m_ss, 2); /* Resource*.scope_* */
  }
  if (w_resource(&w, res) || rw_need(&w, 16)) goto done;
  w_close(&w, m_rs, 1); /* Export*ServiceRequest.resource_* */
  rc = rw_finish(&w);
done:
  polytel__groups_free(&g);
  return rc;
}

/* ------------------------------------------------------------------- metrics */

static size_t point_bound(const polytel__point_t *p) {
  return 160 + kvs_bound(p->attrs, p->n_attrs) + (p->bounds ? 8 * (size_t)p->n_bounds : 0) +
         (p->buckets ? 8 * ((size_t)p->n_bounds + 1) : 0);
}

/* NumberDataPoint {start=2, time=3, as_double=4, as_int=6, attributes=7} */
static void w_number_point(rw_t *w, const polytel__point_t *p) {
  size_t m = rw_pos(w);
  w_kvs(w, 7, p->attrs, p->n_attrs);
  if (p->is_double) {
    w_double(w, p->v.d);
    w_byte(w, 4 << 3 | 1);
  } else {
    w_fixed64(w, (uint64_t)p->v.i);
    w_byte(w, 6 << 3 | 1);
  }
  w_fixed64_field(w, 3, p->time_ns);
  w_fixed64_field(w, 2, p->start_ns);
  w_close(w, m, 1); /* data_points */
}

/* HistogramDataPoint {start=2, time=3, count=4, sum=5, bucket_counts=6, explicit_bounds=7, attributes=9,
 * min=11, max=12} */
static void w_hist_point(rw_t *w, const polytel__point_t *p) {
  size_t m = rw_pos(w);
  if (p->count) { /* min and max mean nothing for an empty histogram */
    w_double(w, p->max);
    w_byte(w, 12 << 3 | 1);
    w_double(w, p->min);
    w_byte(w, 11 << 3 | 1);
  }
  w_kvs(w, 9, p->attrs, p->n_attrs);
  if (p->bounds && p->n_bounds) {
    for (uint32_t i = p->n_bounds; i-- > 0;) w_double(w, p->bounds[i]);
    w_varint(w, 8 * (uint64_t)p->n_bounds);
    w_byte(w, 7 << 3 | 2);
  }
  if (p->buckets) {
    for (uint32_t i = p->n_bounds + 1; i-- > 0;) w_fixed64(w, p->buckets[i]);
    w_varint(w, 8 * ((uint64_t)p->n_bounds + 1));
    w_byte(w, 6 << 3 | 2);
  }
  w_double(w, p->sum);
  w_byte(w, 5 << 3 | 1);
  w_fixed64_field(w, 4, p->count);
  w_fixed64_field(w, 3, p->time_ns);
  w_fixed64_field(w, 2, p->start_ns);
  w_close(w, m, 1); /* data_points */
}

static int w_metric(rw_t *w, const polytel__metric_rec_t *mr) {
  unsigned field;
  switch (mr->kind) {
    case POLYTEL_METRIC_COUNTER:
      field = 7;
      break; /* sum */
    case POLYTEL_METRIC_GAUGE:
      field = 5;
      break; /* gauge */
    case POLYTEL_METRIC_HISTOGRAM:
      field = 9;
      break; /* histogram */
    default:
      return 0; /* nothing an OTLP reader could use */
  }
  size_t name_len = mr->name ? strlen(mr->name) : 0, unit_len = mr->unit ? strlen(mr->unit) : 0;
  if (rw_need(w, 32)) return -1;
  size_t m = rw_pos(w);
  size_t md = rw_pos(w);
  if (field == 7) {
    w_byte(w, 1); /* is_monotonic */
    w_byte(w, 3 << 3 | 0);
  }
  if (field != 5) {
    w_byte(w, 2); /* AGGREGATION_TEMPORALITY_CUMULATIVE */
    w_byte(w, 2 << 3 | 0);
  }
  for (uint32_t i = mr->n_points; i-- > 0;) {
    const polytel__point_t *p = &mr->points[i];
    if (rw_need(w, point_bound(p))) return -1;
    if (field == 9)
      w_hist_point(w, p);
    else
      w_number_point(w, p);
  }
  if (rw_need(w, STR_BOUND(name_len) + STR_BOUND(unit_len) + 32)) return -1;
  w_close(w, md, field);
  w_str(w, 3, mr->unit, unit_len, 0);
  w_str(w, 1, mr->name, name_len, 0);
  w_close(w, m, 2); /* ScopeMetrics.metrics */
  return 0;
}

int polytel__pb_metrics(polytel__buf_t *out, const polytel__resource_t *res,
                        const polytel__metric_rec_t *recs, size_t n) {
  rw_t w;
  if (rw_init(&w, out, 256 + n * 128)) return POLYTEL_ENOMEM;
  size_t m_rm = rw_pos(&w);
  size_t m_sm = rw_pos(&w);
  for (size_t i = n; i-- > 0;)
    if (w_metric(&w, &recs[i])) return POLYTEL_ENOMEM;
  if (w_scope(&w, POLYTEL__SCOPE_NAME, sizeof POLYTEL__SCOPE_NAME - 1, POLYTEL_VERSION_STRING,
              sizeof POLYTEL_VERSION_STRING - 1))
    return POLYTEL_ENOMEM;
  w_close(&w, m_sm, 2); /* ResourceMetrics.scope_metrics */
  if (w_resource(&w, res) || rw_need(&w, 16)) return POLYTEL_ENOMEM;
  w_close(&w, m_rm, 1); /* ExportMetricsServiceRequest.resource_metrics */
  return rw_finish(&w);
}
