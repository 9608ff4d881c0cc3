/* fuzz_encode.c — libFuzzer target for the OTLP encoders: records built from fuzz bytes, encoded to protobuf
 * and JSON, then checked by an independent wire-format walker (every length, every nested message, UTF-8
 * strings, record counts) and an independent JSON validator.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "export/encode.h"

/* ------------------------------------------------------------ input reader */

static uint64_t u64(fz_rd_t *r) {
  uint64_t v = 0;
  int n = fz_u8(r) % 9; /* 0..8 bytes: small values are common */
  for (int i = 0; i < n; i++) v = v << 8 | fz_u8(r);
  return v;
}
static const char *str(fz_rd_t *r, uint32_t *len) {
  size_t n = fz_u8(r);
  if (n == 255) n = 255 + (size_t)fz_u8(r) * 8; /* sometimes longer */
  size_t avail = (size_t)(r->end - r->p);
  if (n > avail) n = avail;
  const char *s = (const char *)r->p;
  r->p += n;
  *len = (uint32_t)n;
  return n ? s : (fz_u8(r) & 1 ? "" : NULL);
}
static void ids(fz_rd_t *r, uint8_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = fz_u8(r);
}

enum { MAXR = 24, MAXA = 6, MAXP = 4, MAXB = 20 };

/* Array bytes as the records hold them (record.h), well-formed: the consumer only ever makes such. */
static char arrbuf[4096];
static size_t arrused;

static void array(fz_rd_t *r, polytel__kv_t *kv) {
  size_t n = fz_u8(r) % 6, room = sizeof arrbuf - arrused;
  char *w = arrbuf + arrused, *w0 = w;
  for (size_t k = 0; k < n; k++) {
    if (kv->type == POLYTEL_ATTR_STRING_ARRAY) {
      uint32_t l;
      const char *s = str(r, &l);
      if (l > 64) l = 64;
      if ((size_t)(w - w0) + 4 + l > room) break;
      memcpy(w, &l, 4);
      if (l) memcpy(w + 4, s, l);
      w += 4 + l;
    } else {
      size_t el = kv->type == POLYTEL_ATTR_BOOL_ARRAY ? 1 : 8;
      if ((size_t)(w - w0) + el > room) break;
      uint64_t v = u64(r);
      if (el == 1) v &= 1;
      memcpy(w, &v, el);
      w += el;
    }
  }
  kv->v.str.ptr = w0;
  kv->v.str.len = (uint32_t)(w - w0);
  arrused += (size_t)(w - w0);
}

static void attrs(fz_rd_t *r, polytel__kv_t *kv, uint32_t *n) {
  *n = fz_u8(r) % (MAXA + 1);
  for (uint32_t i = 0; i < *n; i++) {
    kv[i].key = str(r, &kv[i].key_len);
    kv[i].type = (uint8_t)(fz_u8(r) % 10); /* includes unknown types 0 and 9 */
    switch (kv[i].type) {
      case POLYTEL_ATTR_STRING:
        kv[i].v.str.ptr = str(r, &kv[i].v.str.len);
        break;
      case POLYTEL_ATTR_INT:
        kv[i].v.i = (int64_t)u64(r);
        break;
      case POLYTEL_ATTR_DOUBLE: {
        uint64_t bits = u64(r);
        memcpy(&kv[i].v.d, &bits, 8); /* any bit pattern: NaNs, infinities, denormals */
        break;
      }
      case POLYTEL_ATTR_STRING_ARRAY:
      case POLYTEL_ATTR_INT_ARRAY:
      case POLYTEL_ATTR_DOUBLE_ARRAY:
      case POLYTEL_ATTR_BOOL_ARRAY:
        array(r, &kv[i]);
        break;
      default:
        kv[i].v.b = fz_u8(r);
        break;
    }
  }
}

/* --------------------------------------------------- protobuf schema walker */

enum { K_NONE, K_STR, K_BYTES, K_PACKED8, K_MSG };
typedef struct msg_s msg_t;
typedef struct {
  uint8_t field, kind;
  const msg_t *sub;
} fdef_t;
struct msg_s {
  const char *name;
  fdef_t f[12];
};

/* Only the length-delimited fields of the messages polytel writes; anything else of wire type 2 fails. */
extern const msg_t M_KV, M_ANY;
extern const msg_t M_ARR;
const msg_t M_ANY = {"AnyValue", {{1, K_STR, 0}, {5, K_MSG, &M_ARR}, {7, K_BYTES, 0}}};
const msg_t M_ARR = {"ArrayValue", {{1, K_MSG, &M_ANY}}};
const msg_t M_KV = {"KeyValue", {{1, K_STR, 0}, {2, K_MSG, &M_ANY}}};
static const msg_t M_RES = {"Resource", {{1, K_MSG, &M_KV}}};
static const msg_t M_SCOPE = {"Scope", {{1, K_STR, 0}, {2, K_STR, 0}, {3, K_MSG, &M_KV}}};
static const msg_t M_STATUS = {"Status", {{2, K_STR, 0}}};
static const msg_t M_EVENT = {"Span.Event", {{2, K_STR, 0}, {3, K_MSG, &M_KV}}};
static const msg_t M_LINK = {"Span.Link",
                             {{1, K_BYTES, 0}, {2, K_BYTES, 0}, {3, K_STR, 0}, {4, K_MSG, &M_KV}}};
static const msg_t M_SPAN = {"Span",
                             {{1, K_BYTES, 0},
                              {2, K_BYTES, 0},
                              {3, K_STR, 0},
                              {4, K_BYTES, 0},
                              {5, K_STR, 0},
                              {9, K_MSG, &M_KV},
                              {11, K_MSG, &M_EVENT},
                              {13, K_MSG, &M_LINK},
                              {15, K_MSG, &M_STATUS}}};
static const msg_t M_SS = {"ScopeSpans", {{1, K_MSG, &M_SCOPE}, {2, K_MSG, &M_SPAN}}};
static const msg_t M_RS = {"ResourceSpans", {{1, K_MSG, &M_RES}, {2, K_MSG, &M_SS}}};
static const msg_t M_TREQ = {"ExportTraceServiceRequest", {{1, K_MSG, &M_RS}}};
static const msg_t M_LOG = {
    "LogRecord", {{3, K_STR, 0}, {5, K_MSG, &M_ANY}, {6, K_MSG, &M_KV}, {9, K_BYTES, 0}, {10, K_BYTES, 0}}};
static const msg_t M_SL = {"ScopeLogs", {{1, K_MSG, &M_SCOPE}, {2, K_MSG, &M_LOG}}};
static const msg_t M_RL = {"ResourceLogs", {{1, K_MSG, &M_RES}, {2, K_MSG, &M_SL}}};
static const msg_t M_LREQ = {"ExportLogsServiceRequest", {{1, K_MSG, &M_RL}}};
static const msg_t M_NDP = {"NumberDataPoint", {{7, K_MSG, &M_KV}}};
static const msg_t M_HDP = {"HistogramDataPoint", {{6, K_PACKED8, 0}, {7, K_PACKED8, 0}, {9, K_MSG, &M_KV}}};
static const msg_t M_GAUGE = {"Gauge", {{1, K_MSG, &M_NDP}}};
static const msg_t M_SUM = {"Sum", {{1, K_MSG, &M_NDP}}};
static const msg_t M_HIST = {"Histogram", {{1, K_MSG, &M_HDP}}};
static const msg_t M_METRIC = {
    "Metric", {{1, K_STR, 0}, {3, K_STR, 0}, {5, K_MSG, &M_GAUGE}, {7, K_MSG, &M_SUM}, {9, K_MSG, &M_HIST}}};
static const msg_t M_SM = {"ScopeMetrics", {{1, K_MSG, &M_SCOPE}, {2, K_MSG, &M_METRIC}}};
static const msg_t M_RM = {"ResourceMetrics", {{1, K_MSG, &M_RES}, {2, K_MSG, &M_SM}}};
static const msg_t M_MREQ = {"ExportMetricsServiceRequest", {{1, K_MSG, &M_RM}}};

/* Strict UTF-8 (no overlongs, surrogates, or > U+10FFFF), written independently of the encoder's. */
static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i], cp, len;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + len > n) return 0;
    for (uint32_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += len;
  }
  return 1;
}

static int rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  for (int s = 0; s < 70; s += 7) {
    if (*p >= end) return -1;
    uint8_t c = *(*p)++;
    if (s == 63 && c > 1) return -1;
    r |= (uint64_t)(c & 0x7f) << s;
    if (!(c & 0x80)) {
      *v = r;
      return 0;
    }
  }
  return -1;
}

typedef struct {
  size_t spans, logs, metrics, scopes;
} counts_t;

/* Walks one message: consumes exactly its bytes, recurses into every known sub-message. */
static void walk(const msg_t *m, const uint8_t *p, const uint8_t *end, counts_t *c, int depth) {
  CHECK(depth < 16);
  uint32_t last_field = 0;
  while (p < end) {
    uint64_t tag, v;
    CHECK(rd_varint(&p, end, &tag) == 0);
    uint32_t field = (uint32_t)(tag >> 3);
    int wt = (int)(tag & 7);
    CHECK(field != 0);
    /* Fields in number order (repeats allowed): what the official serializers produce. */
    CHECK(field >= last_field);
    last_field = field;
    switch (wt) {
      case 0:
        CHECK(rd_varint(&p, end, &v) == 0);
        break;
      case 1:
        CHECK(end - p >= 8);
        p += 8;
        break;
      case 5:
        CHECK(end - p >= 4);
        p += 4;
        break;
      case 2: {
        CHECK(rd_varint(&p, end, &v) == 0);
        CHECK(v <= (uint64_t)(end - p));
        const fdef_t *fd = NULL;
        for (int i = 0; i < 12 && m->f[i].field; i++)
          if (m->f[i].field == field) fd = &m->f[i];
        if (!fd) {
          fprintf(stderr, "%s: unexpected length-delimited field %u\n", m->name, field);
          abort();
        }
        switch (fd->kind) {
          case K_STR:
            CHECK(utf8_ok(p, (size_t)v));
            break;
          case K_PACKED8:
            CHECK(v % 8 == 0);
            break;
          case K_MSG:
            if (fd->sub == &M_SPAN) c->spans++;
            if (fd->sub == &M_LOG) c->logs++;
            if (fd->sub == &M_METRIC) c->metrics++;
            if (fd->sub == &M_SCOPE) c->scopes++;
            walk(fd->sub, p, p + v, c, depth + 1);
            break;
          default:
            break;
        }
        p += v;
        break;
      }
      default:
        CHECK(!"bad wire type");
    }
  }
  CHECK(p == end);
}

/* ----------------------------------------------------------- JSON validator */

typedef struct {
  const uint8_t *p, *end;
} js_t;

static void ws(js_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')) j->p++;
}
static int lit(js_t *j, const char *s) {
  size_t n = strlen(s);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n)) return 0;
  j->p += n;
  return 1;
}
static int hex4(const uint8_t *p) {
  for (int i = 0; i < 4; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F')))
      return 0;
  return 1;
}
static int jstring(js_t *j) {
  if (j->p >= j->end || *j->p != '"') return 0;
  const uint8_t *start = ++j->p;
  while (j->p < j->end && *j->p != '"') {
    uint8_t c = *j->p;
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (j->end - j->p < 2) return 0;
      uint8_t e = j->p[1];
      if (e == 'u') {
        if (j->end - j->p < 6 || !hex4(j->p + 2)) return 0;
        j->p += 6;
      } else if (strchr("\"\\/bfnrt", e) && e) {
        j->p += 2;
      } else {
        return 0;
      }
    } else {
      j->p++;
    }
  }
  if (j->p >= j->end) return 0;
  if (!utf8_ok(start, (size_t)(j->p - start))) return 0;
  j->p++;
  return 1;
}
static int jnumber(js_t *j) {
  const uint8_t *s = j->p;
  if (j->p < j->end && *j->p == '-') j->p++;
  if (j->p >= j->end) return 0;
  if (*j->p == '0') {
    j->p++;
  } else if (*j->p >= '1' && *j->p <= '9') {
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  } else {
    return 0;
  }
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  return j->p > s;
}
static int jvalue(js_t *j, int depth) {
  if (depth > 64) return 0;
  ws(j);
  if (j->p >= j->end) return 0;
  switch (*j->p) {
    case '{':
      j->p++;
      ws(j);
      if (j->p < j->end && *j->p == '}') return j->p++, 1;
      for (;;) {
        ws(j);
        if (!jstring(j)) return 0;
        ws(j);
        if (!lit(j, ":") || !jvalue(j, depth + 1)) return 0;
        ws(j);
        if (lit(j, "}")) return 1;
        if (!lit(j, ",")) return 0;
      }
    case '[':
      j->p++;
      ws(j);
      if (j->p < j->end && *j->p == ']') return j->p++, 1;
      for (;;) {
        if (!jvalue(j, depth + 1)) return 0;
        ws(j);
        if (lit(j, "]")) return 1;
        if (!lit(j, ",")) return 0;
      }
    case '"':
      return jstring(j);
    case 't':
      return lit(j, "true");
    case 'f':
      return lit(j, "false");
    case 'n':
      return lit(j, "null");
    default:
      return jnumber(j);
  }
}
static void check_json(const polytel__buf_t *b) {
  js_t j = {b->data, b->data + b->len};
  CHECK(jvalue(&j, 0));
  CHECK(j.p == j.end); /* nothing after the value, not even a newline */
}

/* ------------------------------------------------------------------ target */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_rd_t r = {data, data + size};
  int signal = fz_u8(&r) % 3;
  static polytel__kv_t kv[MAXR + 2][MAXA];
  static polytel__kv_t pkv[MAXR][MAXP][MAXA];
  static polytel__point_t pts[MAXR][MAXP];
  static double bounds[MAXR][MAXP][MAXB];
  static uint64_t buckets[MAXR][MAXP][MAXB + 1];
  static polytel__log_rec_t logs[MAXR];
  static polytel__event_rec_t evs[MAXR][2];
  static polytel__link_rec_t lns[MAXR][2];
  static polytel__kv_t ekv[MAXR][4][MAXA];
  static const char *const scope_names[] = {"", "billing", "queue"};
  static polytel__span_rec_t spans[MAXR];
  static polytel__metric_rec_t metrics[MAXR];
  static char names[MAXR][16];

  arrused = 0;
  unsigned scopes_seen = 0; /* bit per distinct (name, version) of the spans */
  polytel__resource_t res = {.attrs = kv[MAXR], .n_attrs = 0};
  attrs(&r, kv[MAXR], &res.n_attrs);
  size_t n = fz_u8(&r) % (MAXR + 1);
  size_t expect_metrics = 0;
  for (size_t i = 0; i < n; i++) {
    if (signal == 0) {
      polytel__span_rec_t *s = &spans[i];
      memset(s, 0, sizeof *s);
      ids(&r, s->trace_id, 16), ids(&r, s->span_id, 8), ids(&r, s->parent_id, 8);
      s->has_parent = fz_u8(&r) & 1;
      s->name = str(&r, &s->name_len);
      s->start_ns = u64(&r), s->end_ns = u64(&r);
      s->status = (int)(int8_t)fz_u8(&r) % 4;
      s->status_msg = str(&r, &s->status_msg_len);
      s->attrs = kv[i];
      attrs(&r, kv[i], &s->n_attrs);
      /* The span model: a few scopes (versions "" and "1"), kind, flags, tracestate, events, links. */
      uint8_t sc = fz_u8(&r) % 6;
      s->scope_name = scope_names[sc % 3];
      s->scope_name_len = (uint32_t)strlen(s->scope_name);
      s->scope_version = sc >= 3 ? "1" : "";
      s->scope_version_len = sc >= 3 ? 1 : 0;
      scopes_seen |= 1u << (sc % 3 == 0 ? 0 : sc); /* no name: polytel's scope, whatever the version */
      s->kind = fz_u8(&r) % 7;
      s->flags = (uint32_t)u64(&r);
      s->trace_state = str(&r, &s->trace_state_len);
      s->n_events = fz_u8(&r) % 3;
      s->events = evs[i];
      for (uint32_t k = 0; k < s->n_events; k++) {
        polytel__event_rec_t *e = &evs[i][k];
        memset(e, 0, sizeof *e);
        e->time_ns = u64(&r);
        e->name = str(&r, &e->name_len);
        e->attrs = ekv[i][k];
        attrs(&r, ekv[i][k], &e->n_attrs);
        e->dropped_attrs = (uint32_t)u64(&r);
      }
      s->n_links = fz_u8(&r) % 3;
      s->links = lns[i];
      for (uint32_t k = 0; k < s->n_links; k++) {
        polytel__link_rec_t *l = &lns[i][k];
        memset(l, 0, sizeof *l);
        ids(&r, l->trace_id, 16), ids(&r, l->span_id, 8);
        l->flags = (uint32_t)u64(&r);
        l->trace_state = str(&r, &l->trace_state_len);
        l->attrs = ekv[i][2 + k];
        attrs(&r, ekv[i][2 + k], &l->n_attrs);
        l->dropped_attrs = (uint32_t)u64(&r);
      }
      s->dropped_attrs = (uint32_t)u64(&r), s->dropped_events = (uint32_t)u64(&r);
      s->dropped_links = (uint32_t)u64(&r);
    } else if (signal == 1) {
      polytel__log_rec_t *l = &logs[i];
      memset(l, 0, sizeof *l);
      l->time_ns = u64(&r), l->observed_ns = u64(&r);
      l->severity = (int)(int8_t)fz_u8(&r);
      /* Few distinct targets, sometimes equal content at different addresses. */
      uint8_t t = fz_u8(&r);
      if (t & 0x80) {
        l->target = str(&r, &l->target_len);
      } else {
        snprintf(names[i], sizeof names[i], "t%d", t % 4);
        l->target = names[i];
        l->target_len = (uint32_t)strlen(names[i]);
      }
      l->body = str(&r, &l->body_len);
      l->has_span = fz_u8(&r) & 1;
      ids(&r, l->trace_id, 16), ids(&r, l->span_id, 8);
      l->attrs = kv[i];
      attrs(&r, kv[i], &l->n_attrs);
      l->flags = fz_u8(&r);
      l->dropped_attrs = (uint32_t)u64(&r);
    } else {
      polytel__metric_rec_t *m = &metrics[i];
      uint32_t len;
      const char *nm = str(&r, &len);
      snprintf(names[i], sizeof names[i], "%.*s", (int)(len < 15 ? len : 15), nm ? nm : "");
      m->name = names[i];
      m->unit = fz_u8(&r) & 1 ? "ms" : NULL;
      m->kind = fz_u8(&r) % 5; /* includes unknown kinds 0 and 4 */
      if (m->kind >= 1 && m->kind <= 3) expect_metrics++;
      m->n_points = fz_u8(&r) % (MAXP + 1);
      m->points = pts[i];
      for (uint32_t k = 0; k < m->n_points; k++) {
        polytel__point_t *p = &pts[i][k];
        memset(p, 0, sizeof *p);
        p->attrs = pkv[i][k];
        attrs(&r, pkv[i][k], &p->n_attrs);
        p->start_ns = u64(&r), p->time_ns = u64(&r);
        p->is_double = fz_u8(&r) & 1;
        p->v.i = (int64_t)u64(&r);
        p->count = u64(&r);
        uint64_t bits = u64(&r);
        memcpy(&p->sum, &bits, 8);
        p->min = (double)(int8_t)fz_u8(&r), p->max = (double)fz_u8(&r);
        p->n_bounds = fz_u8(&r) % (MAXB + 1);
        for (uint32_t b = 0; b < p->n_bounds; b++) bounds[i][k][b] = (double)fz_u8(&r) - 20;
        for (uint32_t b = 0; b <= p->n_bounds; b++) buckets[i][k][b] = u64(&r);
        uint8_t which = fz_u8(&r);
        p->bounds = which & 1 ? bounds[i][k] : NULL;
        p->buckets = which & 2 ? buckets[i][k] : NULL;
      }
    }
  }

  polytel__buf_t pb = {0}, js = {0}, again = {0};
  int rc;
  if (signal == 0) {
    rc = polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, &res, spans, n);
    CHECK(rc == 0);
    CHECK(polytel__encode_spans(&js, POLYTEL__FMT_JSON, &res, spans, n) == 0);
    polytel__buf_append(&again, "x", 1);
    CHECK(polytel__encode_spans(&again, POLYTEL__FMT_PROTOBUF, &res, spans, n) == 0);
  } else if (signal == 1) {
    rc = polytel__encode_logs(&pb, POLYTEL__FMT_PROTOBUF, &res, logs, n);
    CHECK(rc == 0);
    CHECK(polytel__encode_logs(&js, POLYTEL__FMT_JSON, &res, logs, n) == 0);
    polytel__buf_append(&again, "x", 1);
    CHECK(polytel__encode_logs(&again, POLYTEL__FMT_PROTOBUF, &res, logs, n) == 0);
  } else {
    rc = polytel__encode_metrics(&pb, POLYTEL__FMT_PROTOBUF, &res, metrics, n);
    CHECK(rc == 0);
    CHECK(polytel__encode_metrics(&js, POLYTEL__FMT_JSON, &res, metrics, n) == 0);
    polytel__buf_append(&again, "x", 1);
    CHECK(polytel__encode_metrics(&again, POLYTEL__FMT_PROTOBUF, &res, metrics, n) == 0);
  }
  /* Deterministic, and independent of what the buffer already held. */
  CHECK(again.len == pb.len + 1 && memcmp(again.data + 1, pb.data, pb.len) == 0);

  counts_t c = {0};
  const msg_t *top = signal == 0 ? &M_TREQ : signal == 1 ? &M_LREQ : &M_MREQ;
  walk(top, pb.data, pb.data + pb.len, &c, 0);
  if (signal == 0) CHECK(c.spans == n && c.scopes == (size_t)__builtin_popcount(scopes_seen));
  if (signal == 1) CHECK(c.logs == n && c.scopes <= n);
  if (signal == 2) CHECK(c.metrics == expect_metrics && c.scopes == 1);
  check_json(&js);

  polytel__buf_free(&pb);
  polytel__buf_free(&js);
  polytel__buf_free(&again);
  return 0;
}
