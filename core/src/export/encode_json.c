/* encode_json.c — OTLP/JSON encoder (logs, traces, metrics) following the OTLP/JSON mapping rules. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/encode.h"

/*
 * Each record reserves an upper bound of its size first, so the writers below
 * never check for room. Bounds: a string byte becomes at most 6 (\u00XX), a
 * number at most 32, every literal key is counted in the per-record constant.
 */
#define JSTR_BOUND(n) (6 * (size_t)(n) + 2)
#define JNUM_BOUND 34

typedef polytel__buf_t jb_t;

static inline void j_raw(jb_t *b, const char *s, size_t n) {
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
}
#define J(b, lit) j_raw((b), (lit), sizeof(lit) - 1)
static inline void j_ch(jb_t *b, char c) {
  b->data[b->len++] = (uint8_t)c;
}

static const char hexdig[] = "0123456789abcdef";

static void j_str(jb_t *b, const char *str, size_t n) {
  const uint8_t *s = (const uint8_t *)str;
  uint8_t *q = b->data + b->len;
  *q++ = '"';
  size_t i = 0, bad;
  while (i < n) {
    uint8_t c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *q++ = c;
      i++;
      continue;
    }
    if (c >= 0x80) {
      size_t k = polytel__utf8_step(s + i, n - i, &bad);
      if (k) {
        memcpy(q, s + i, k);
        q += k;
        i += k;
      } else { /* U+FFFD */
        *q++ = 0xEF, *q++ = 0xBF, *q++ = 0xBD;
        i += bad;
      }
      continue;
    }
    *q++ = '\\';
    switch (c) {
      case '"':
        *q++ = '"';
        break;
      case '\\':
        *q++ = '\\';
        break;
      case '\n':
        *q++ = 'n';
        break;
      case '\r':
        *q++ = 'r';
        break;
      case '\t':
        *q++ = 't';
        break;
      case '\b':
        *q++ = 'b';
        break;
      case '\f':
        *q++ = 'f';
        break;
      default:
        *q++ = 'u', *q++ = '0', *q++ = '0';
        *q++ = hexdig[c >> 4];
        *q++ = hexdig[c & 15];
    }
    i++;
  }
  *q++ = '"';
  b->len = (size_t)(q - b->data);
}

static inline void j_cstr(jb_t *b, const char *s) {
  j_str(b, s, s ? strlen(s) : 0);
}

static void j_u64_bare(jb_t *b, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) j_ch(b, tmp[--n]);
}

/* 64-bit integers are decimal strings in OTLP/JSON. */
static void j_u64(jb_t *b, uint64_t v) {
  j_ch(b, '"');
  j_u64_bare(b, v);
  j_ch(b, '"');
}

static void j_i64(jb_t *b, int64_t v) {
  j_ch(b, '"');
  if (v < 0) {
    j_ch(b, '-');
    j_u64_bare(b, (uint64_t)0 - (uint64_t)v);
  } else {
    j_u64_bare(b, (uint64_t)v);
  }
  j_ch(b, '"');
}

static void j_int(jb_t *b, int v) {
  if (v < 0) {
    j_ch(b, '-');
    j_u64_bare(b, (uint64_t)0 - (uint64_t)(int64_t)v);
  } else {
    j_u64_bare(b, (uint64_t)v);
  }
}

/* The shortest of %.15g/%.17g that reads back exactly; proto3 JSON strings for non-finite values. */
static void j_double(jb_t *b, double d) {
  if (isnan(d)) {
    J(b, "\"NaN\"");
    return;
  }
  if (isinf(d)) {
    if (d > 0)
      J(b, "\"Infinity\"");
    else
      J(b, "\"-Infinity\"");
    return;
  }
  char tmp[40];
  int n = snprintf(tmp, sizeof tmp, "%.15g", d);
  if (strtod(tmp, NULL) != d) n = snprintf(tmp, sizeof tmp, "%.17g", d);
  /* A host (Python, Ruby) may have set a locale whose decimal mark is a comma. */
  for (int i = 0; i < n; i++)
    if (tmp[i] == ',') tmp[i] = '.';
  j_raw(b, tmp, (size_t)n);
}

static void j_hex(jb_t *b, const uint8_t *id, size_t n) {
  j_ch(b, '"');
  for (size_t i = 0; i < n; i++) {
    j_ch(b, hexdig[id[i] >> 4]);
    j_ch(b, hexdig[id[i] & 15]);
  }
  j_ch(b, '"');
}

static size_t kv_bound(const polytel__kv_t *kv) {
  size_t n = 64 + JSTR_BOUND(kv->key_len) + JNUM_BOUND;
  if (kv->type == POLYTEL_ATTR_STRING) n += JSTR_BOUND(kv->v.str.len);
  /* An array: per element (at most one per byte) its wrapper, a number of JNUM_BOUND at most per 8 bytes. */
  if (polytel__is_array(kv->type)) n += JSTR_BOUND(kv->v.str.len) + 24 * ((size_t)kv->v.str.len + 1);
  return n;
}

static size_t kvs_bound(const polytel__kv_t *kv, size_t n) {
  size_t b = 32;
  for (size_t i = 0; i < n; i++) b += kv_bound(&kv[i]);
  return b;
}

static void j_array(jb_t *b, const polytel__kv_t *kv) {
  const char *p = kv->v.str.ptr;
  uint32_t len = kv->v.str.len, n = polytel__arr_count(kv->type, p, len), off = 0, l;
  J(b, "{\"arrayValue\":{");
  if (n) J(b, "\"values\":[");
  for (uint32_t i = 0; i < n; i++) {
    if (i) j_ch(b, ',');
    switch (kv->type) {
      case POLYTEL_ATTR_STRING_ARRAY: {
        const char *s = polytel__arr_str(p, &off, &l);
        J(b, "{\"stringValue\":");
        j_str(b, s, l);
        break;
      }
      case POLYTEL_ATTR_INT_ARRAY:
        J(b, "{\"intValue\":");
        j_i64(b, (int64_t)polytel__arr_u64(p, i));
        break;
      case POLYTEL_ATTR_DOUBLE_ARRAY: {
        uint64_t u = polytel__arr_u64(p, i);
        double d;
        memcpy(&d, &u, 8);
        J(b, "{\"doubleValue\":");
        j_double(b, d);
        break;
      }
      default:
        if (p[i])
          J(b, "{\"boolValue\":true");
        else
          J(b, "{\"boolValue\":false");
    }
    j_ch(b, '}');
  }
  if (n) j_ch(b, ']');
  j_ch(b, '}');
}

static void j_anyvalue_kv(jb_t *b, const polytel__kv_t *kv) {
  switch (kv->type) {
    case POLYTEL_ATTR_STRING:
      J(b, "{\"stringValue\":");
      j_str(b, kv->v.str.ptr, kv->v.str.len);
      break;
    case POLYTEL_ATTR_INT:
      J(b, "{\"intValue\":");
      j_i64(b, kv->v.i);
      break;
    case POLYTEL_ATTR_DOUBLE:
      J(b, "{\"doubleValue\":");
      j_double(b, kv->v.d);
      break;
    case POLYTEL_ATTR_BOOL:
      if (kv->v.b)
        J(b, "{\"boolValue\":true");
      else
        J(b, "{\"boolValue\":false");
      break;
    case POLYTEL_ATTR_STRING_ARRAY:
    case POLYTEL_ATTR_INT_ARRAY:
    case POLYTEL_ATTR_DOUBLE_ARRAY:
    case POLYTEL_ATTR_BOOL_ARRAY:
      j_array(b, kv);
      break;
    default:
      j_ch(b, '{');
      break;
  }
  j_ch(b, '}');
}

/* `{"key":...,"value":...}` entries, each but the first after a comma. */
static void j_kvs(jb_t *b, const polytel__kv_t *kv, size_t n, int comma_first) {
  for (size_t i = 0; i < n; i++) {
    if (i || comma_first) j_ch(b, ',');
    J(b, "{\"key\":");
    j_str(b, kv[i].key, kv[i].key_len);
    J(b, ",\"value\":");
    j_anyvalue_kv(b, &kv[i]);
    j_ch(b, '}');
  }
}

static void j_attrs_bare(jb_t *b, const polytel__kv_t *kv, size_t n) {
  J(b, "\"attributes\":[");
  j_kvs(b, kv, n, 0);
  j_ch(b, ']');
}

/* `,"attributes":[...]` with a record's own attributes then its thread's (tk, nt), or nothing when there are
 * none (a proto3 default). */
static void j_attrs_thread(jb_t *b, const polytel__kv_t *kv, size_t n, const polytel__kv_t *tk, uint32_t nt) {
  if (!n && !nt) return;
  J(b, ",\"attributes\":[");
  j_kvs(b, kv, n, 0);
  j_kvs(b, tk, nt, n > 0);
  j_ch(b, ']');
}

static void j_attrs(jb_t *b, const polytel__kv_t *kv, size_t n) {
  j_attrs_thread(b, kv, n, NULL, 0);
}

/* `{"resource":{...},"scope<Kind>":[` — the caller closes it. */
static int j_open(jb_t *b, const char *top, const char *scopes, const polytel__resource_t *res) {
  const polytel__kv_t *a = res ? res->attrs : NULL;
  size_t n = res ? res->n_attrs : 0;
  if (polytel__buf_reserve(b, 128 + kvs_bound(a, n))) return -1;
  J(b, "{\"");
  j_raw(b, top, strlen(top));
  J(b, "\":[{\"resource\":{");
  if (n) j_attrs_bare(b, a, n);
  J(b, "},\"");
  j_raw(b, scopes, strlen(scopes));
  J(b, "\":[");
  return 0;
}

static int j_close(jb_t *b) {
  if (polytel__buf_reserve(b, 8)) return -1;
  J(b, "]}]}");
  return 0;
}

static int j_scope(jb_t *b, const char *name, size_t name_len, const char *version, size_t vlen,
                   const char *items) {
  if (polytel__buf_reserve(b, 64 + JSTR_BOUND(name_len) + JSTR_BOUND(vlen) + strlen(items))) return -1;
  J(b, "{\"scope\":{");
  int comma = 0;
  if (name_len) {
    J(b, "\"name\":");
    j_str(b, name, name_len);
    comma = 1;
  }
  if (vlen) {
    if (comma) j_ch(b, ',');
    J(b, "\"version\":");
    j_str(b, version, vlen);
  }
  J(b, "},\"");
  j_raw(b, items, strlen(items));
  J(b, "\":[");
  return 0;
}

/* --------------------------------------------------------------------- spans */

/* `,"<key>":N` for a non-zero count (proto3 leaves zero out). */
static void j_count(jb_t *b, const char *key, uint32_t v) {
  if (!v) return;
  j_ch(b, ',');
  j_ch(b, '"');
  j_raw(b, key, strlen(key));
  J(b, "\":");
  j_u64_bare(b, v);
}

static int j_span(jb_t *b, const polytel__span_rec_t *s) {
  polytel__kv_t tk[2];
  uint32_t nt = polytel__thread_attrs(tk, s->attrs, s->n_attrs, s->thread_id, s->thread_name);
  size_t bound = 400 + JSTR_BOUND(s->name_len) + JSTR_BOUND(s->status_msg_len) +
                 JSTR_BOUND(s->trace_state_len) + kvs_bound(s->attrs, s->n_attrs) + kvs_bound(tk, nt);
  for (uint32_t i = 0; i < s->n_events; i++)
    bound += 128 + JSTR_BOUND(s->events[i].name_len) + kvs_bound(s->events[i].attrs, s->events[i].n_attrs);
  for (uint32_t i = 0; i < s->n_links; i++)
    bound +=
        192 + JSTR_BOUND(s->links[i].trace_state_len) + kvs_bound(s->links[i].attrs, s->links[i].n_attrs);
  if (polytel__buf_reserve(b, bound)) return -1;
  J(b, "{\"traceId\":");
  j_hex(b, s->trace_id, 16);
  J(b, ",\"spanId\":");
  j_hex(b, s->span_id, 8);
  if (s->trace_state_len) {
    J(b, ",\"traceState\":");
    j_str(b, s->trace_state, s->trace_state_len);
  }
  if (s->has_parent) {
    J(b, ",\"parentSpanId\":");
    j_hex(b, s->parent_id, 8);
  }
  j_count(b, "flags", s->flags);
  J(b, ",\"name\":");
  j_str(b, s->name, s->name_len);
  j_count(b, "kind", (uint32_t)s->kind);
  if (s->start_ns) {
    J(b, ",\"startTimeUnixNano\":");
    j_u64(b, s->start_ns);
  }
  if (s->end_ns) {
    J(b, ",\"endTimeUnixNano\":");
    j_u64(b, s->end_ns);
  }
  j_attrs_thread(b, s->attrs, s->n_attrs, tk, nt);
  j_count(b, "droppedAttributesCount", s->dropped_attrs);
  if (s->n_events) {
    J(b, ",\"events\":[");
    for (uint32_t i = 0; i < s->n_events; i++) {
      const polytel__event_rec_t *e = &s->events[i];
      if (i) j_ch(b, ',');
      J(b, "{\"timeUnixNano\":");
      j_u64(b, e->time_ns);
      J(b, ",\"name\":");
      j_str(b, e->name, e->name_len);
      j_attrs(b, e->attrs, e->n_attrs);
      j_count(b, "droppedAttributesCount", e->dropped_attrs);
      j_ch(b, '}');
    }
    j_ch(b, ']');
  }
  j_count(b, "droppedEventsCount", s->dropped_events);
  if (s->n_links) {
    J(b, ",\"links\":[");
    for (uint32_t i = 0; i < s->n_links; i++) {
      const polytel__link_rec_t *l = &s->links[i];
      if (i) j_ch(b, ',');
      J(b, "{\"traceId\":");
      j_hex(b, l->trace_id, 16);
      J(b, ",\"spanId\":");
      j_hex(b, l->span_id, 8);
      if (l->trace_state_len) {
        J(b, ",\"traceState\":");
        j_str(b, l->trace_state, l->trace_state_len);
      }
      j_attrs(b, l->attrs, l->n_attrs);
      j_count(b, "droppedAttributesCount", l->dropped_attrs);
      j_count(b, "flags", l->flags);
      j_ch(b, '}');
    }
    j_ch(b, ']');
  }
  j_count(b, "droppedLinksCount", s->dropped_links);
  if (s->status != POLYTEL_STATUS_UNSET || s->status_msg_len) {
    J(b, ",\"status\":{");
    if (s->status_msg_len) {
      J(b, "\"message\":");
      j_str(b, s->status_msg, s->status_msg_len);
      if (s->status != POLYTEL_STATUS_UNSET) j_ch(b, ',');
    }
    if (s->status != POLYTEL_STATUS_UNSET) {
      J(b, "\"code\":");
      j_int(b, s->status);
    }
    j_ch(b, '}');
  }
  j_ch(b, '}');
  return 0;
}

/* ---------------------------------------------------------------------- logs */

static const char *severity_text(int sev) {
  static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
  if (sev < 1 || sev > 24) return NULL;
  return names[(sev - 1) / 4];
}

static int j_log(jb_t *b, const polytel__log_rec_t *r) {
  polytel__kv_t tk[2];
  uint32_t nt = polytel__thread_attrs(tk, r->attrs, r->n_attrs, r->thread_id, r->thread_name);
  if (polytel__buf_reserve(
          b, 360 + JSTR_BOUND(r->body_len) + kvs_bound(r->attrs, r->n_attrs) + kvs_bound(tk, nt)))
    return -1;
  /* Every field is optional; a leading comma is dropped by starting at "{" + field. */
  size_t start = b->len;
  j_ch(b, '{');
  if (r->time_ns) {
    J(b, ",\"timeUnixNano\":");
    j_u64(b, r->time_ns);
  }
  if (r->observed_ns) {
    J(b, ",\"observedTimeUnixNano\":");
    j_u64(b, r->observed_ns);
  }
  if (r->severity) {
    J(b, ",\"severityNumber\":");
    j_int(b, r->severity);
  }
  const char *text = severity_text(r->severity);
  if (text) {
    J(b, ",\"severityText\":");
    j_cstr(b, text);
  }
  if (r->body) {
    J(b, ",\"body\":{\"stringValue\":");
    j_str(b, r->body, r->body_len);
    j_ch(b, '}');
  }
  j_attrs_thread(b, r->attrs, r->n_attrs, tk, nt);
  j_count(b, "droppedAttributesCount", r->dropped_attrs);
  if (r->has_span) {
    j_count(b, "flags", r->flags & 0xff);
    J(b, ",\"traceId\":");
    j_hex(b, r->trace_id, 16);
    J(b, ",\"spanId\":");
    j_hex(b, r->span_id, 8);
  }
  j_ch(b, '}');
  if (b->data[start + 1] == ',') { /* drop the comma after "{" */
    memmove(b->data + start + 1, b->data + start + 2, b->len - start - 2);
    b->len--;
  }
  return 0;
}

/* ------------------------------------------------------- logs and spans by scope */

/* The one writer of both requests, over the grouping the protobuf encoder walks too. */
int polytel__json_scoped(polytel__buf_t *out, const polytel__resource_t *res, polytel__scoped_t kind,
                         const void *recs, size_t n) {
  int spans = kind == POLYTEL__SCOPED_SPANS;
  polytel__groups_t g;
  if (polytel__groups_build(&g, kind, recs, n)) return POLYTEL_ENOMEM;
  int rc = POLYTEL_ENOMEM;
  if (polytel__buf_reserve(out, 128 + n * 256)) goto done;
  if (j_open(out, spans ? "resourceSpans" : "resourceLogs", spans ? "scopeSpans" : "scopeLogs", res))
    goto done;
  for (uint32_t k = 0; k < g.n_groups; k++) {
    const char *name, *version;
    size_t nl, vl;
    polytel__groups_scope(&g, k, &name, &nl, &version, &vl);
    if (k && polytel__buf_reserve(out, 1) == 0) j_ch(out, ',');
    if (j_scope(out, name, nl, version, vl, spans ? "spans" : "logRecords")) goto done;
    for (uint32_t i = g.first[k]; i != UINT32_MAX; i = g.next[i]) {
      if (i != g.first[k] && polytel__buf_reserve(out, 1) == 0) j_ch(out, ',');
      if (spans ? j_span(out, (const polytel__span_rec_t *)recs + i)
                : j_log(out, (const polytel__log_rec_t *)recs + i))
        goto done;
    }
    if (polytel__buf_reserve(out, 2)) goto done;
    J(out, "]}");
  }
  rc = j_close(out) ? POLYTEL_ENOMEM : 0;
done:
  polytel__groups_free(&g);
  return rc;
}

/* ------------------------------------------------------------------- metrics */

static int j_point(jb_t *b, const polytel__point_t *p, int hist) {
  size_t bound = 320 + kvs_bound(p->attrs, p->n_attrs);
  if (hist) bound += ((size_t)p->n_bounds + 1) * (JNUM_BOUND + 24);
  if (polytel__buf_reserve(b, bound)) return -1;
  size_t start = b->len;
  j_ch(b, '{');
  j_attrs(b, p->attrs, p->n_attrs);
  if (p->start_ns) {
    J(b, ",\"startTimeUnixNano\":");
    j_u64(b, p->start_ns);
  }
  if (p->time_ns) {
    J(b, ",\"timeUnixNano\":");
    j_u64(b, p->time_ns);
  }
  if (!hist) {
    if (p->is_double) {
      J(b, ",\"asDouble\":");
      j_double(b, p->v.d);
    } else {
      J(b, ",\"asInt\":");
      j_i64(b, p->v.i);
    }
  } else {
    if (p->count) {
      J(b, ",\"count\":");
      j_u64(b, p->count);
    }
    J(b, ",\"sum\":");
    j_double(b, p->sum);
    if (p->buckets) {
      J(b, ",\"bucketCounts\":[");
      for (uint32_t i = 0; i <= p->n_bounds; i++) {
        if (i) j_ch(b, ',');
        j_u64(b, p->buckets[i]);
      }
      j_ch(b, ']');
    }
    if (p->bounds && p->n_bounds) {
      J(b, ",\"explicitBounds\":[");
      for (uint32_t i = 0; i < p->n_bounds; i++) {
        if (i) j_ch(b, ',');
        j_double(b, p->bounds[i]);
      }
      j_ch(b, ']');
    }
    if (p->count) {
      J(b, ",\"min\":");
      j_double(b, p->min);
      J(b, ",\"max\":");
      j_double(b, p->max);
    }
  }
  j_ch(b, '}');
  if (b->data[start + 1] == ',') {
    memmove(b->data + start + 1, b->data + start + 2, b->len - start - 2);
    b->len--;
  }
  return 0;
}

static int j_metric(jb_t *b, const polytel__metric_rec_t *mr) {
  const char *kind;
  switch (mr->kind) {
    case POLYTEL_METRIC_COUNTER:
      kind = "sum";
      break;
    case POLYTEL_METRIC_GAUGE:
      kind = "gauge";
      break;
    case POLYTEL_METRIC_HISTOGRAM:
      kind = "histogram";
      break;
    default:
      return 0;
  }
  size_t name_len = mr->name ? strlen(mr->name) : 0, unit_len = mr->unit ? strlen(mr->unit) : 0;
  if (polytel__buf_reserve(b, 96 + JSTR_BOUND(name_len) + JSTR_BOUND(unit_len))) return -1;
  J(b, "{\"name\":");
  j_str(b, mr->name, name_len);
  if (unit_len) {
    J(b, ",\"unit\":");
    j_str(b, mr->unit, unit_len);
  }
  j_ch(b, ',');
  j_ch(b, '"');
  j_raw(b, kind, strlen(kind));
  J(b, "\":{\"dataPoints\":[");
  for (uint32_t i = 0; i < mr->n_points; i++) {
    if (i && polytel__buf_reserve(b, 1) == 0) j_ch(b, ',');
    if (j_point(b, &mr->points[i], mr->kind == POLYTEL_METRIC_HISTOGRAM)) return -1;
  }
  if (polytel__buf_reserve(b, 64)) return -1;
  j_ch(b, ']');
  if (mr->kind != POLYTEL_METRIC_GAUGE) J(b, ",\"aggregationTemporality\":2"); /* CUMULATIVE */
  if (mr->kind == POLYTEL_METRIC_COUNTER) J(b, ",\"isMonotonic\":true");
  J(b, "}}");
  return 0;
}

int polytel__json_metrics(polytel__buf_t *out, const polytel__resource_t *res,
                          const polytel__metric_rec_t *recs, size_t n) {
  if (polytel__buf_reserve(out, 128 + n * 256)) return POLYTEL_ENOMEM;
  if (j_open(out, "resourceMetrics", "scopeMetrics", res)) return POLYTEL_ENOMEM;
  if (j_scope(out, POLYTEL__SCOPE_NAME, sizeof POLYTEL__SCOPE_NAME - 1, POLYTEL_VERSION_STRING,
              sizeof POLYTEL_VERSION_STRING - 1, "metrics"))
    return POLYTEL_ENOMEM;
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    int k = recs[i].kind;
    if (k != POLYTEL_METRIC_COUNTER && k != POLYTEL_METRIC_GAUGE && k != POLYTEL_METRIC_HISTOGRAM) continue;
    if (any && polytel__buf_reserve(out, 1) == 0) j_ch(out, ',');
    any = 1;
    if (j_metric(out, &recs[i])) return POLYTEL_ENOMEM;
  }
  if (polytel__buf_reserve(out, 4)) return POLYTEL_ENOMEM;
  J(out, "]}");
  return j_close(out) ? POLYTEL_ENOMEM : 0;
}
