/* encode.c — the encoders' shared parts: growable buffers, UTF-8 scanning, thread attributes, the
 * grouping of logs and spans by scope, and the dispatch to the protobuf (encode_pb.c) or JSON (encode_json.c)
 * encoder. */
#include <stdlib.h>
#include <string.h>

#include "export/encode.h"

/* ------------------------------------------------------------------ buffers */

int polytel__buf_reserve(polytel__buf_t *b, size_t n) {
  if (b->oom) return -1;
  if (b->cap - b->len >= n) return 0;
  size_t need = b->len + n;
  if (need < b->len) goto oom;
  size_t cap = polytel__buf_grown_cap(b->cap, need);
  uint8_t *d = realloc(b->data, cap);
  if (!d) goto oom;
  b->data = d;
  b->cap = cap;
  return 0;
oom:
  b->oom = 1;
  return -1;
}

void polytel__buf_append(polytel__buf_t *b, const void *p, size_t n) {
  if (n == 0 || polytel__buf_reserve(b, n) != 0) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void polytel__buf_free(polytel__buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

void polytel__buf_reset(polytel__buf_t *b) {
  b->len = 0;
  b->oom = 0;
}

/* ------------------------------------------------------------ thread attrs */

static int has_key(const polytel__kv_t *attrs, uint32_t n, const char *key, uint32_t len) {
  for (uint32_t i = 0; i < n; i++)
    if (attrs[i].key_len == len && memcmp(attrs[i].key, key, len) == 0) return 1;
  return 0;
}

uint32_t polytel__thread_attrs(polytel__kv_t out[2], const polytel__kv_t *attrs, uint32_t n_attrs,
                               uint32_t thread_id, const char *thread_name) {
  uint32_t k = 0;
  if (!thread_id) return 0;
  if (!has_key(attrs, n_attrs, "thread.id", 9))
    out[k++] = (polytel__kv_t){.key = "thread.id", .key_len = 9, .type = POLYTEL_ATTR_INT, .v.i = thread_id};
  size_t nl = thread_name ? strnlen(thread_name, POLYTEL__THREAD_NAME_CAP - 1) : 0;
  if (nl && !has_key(attrs, n_attrs, "thread.name", 11))
    out[k++] = (polytel__kv_t){.key = "thread.name",
                               .key_len = 11,
                               .type = POLYTEL_ATTR_STRING,
                               .v.str = {thread_name, (uint32_t)nl}};
  return k;
}

/* -------------------------------------------------------------------- UTF-8 */

size_t polytel__utf8_step(const uint8_t *s, size_t n, size_t *bad) {
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte (Unicode Table 3-7) */
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
  } else {
    *bad = 1;
    return 0;
  }
  size_t i = 1;
  for (; i <= need; i++) {
    if (i >= n) break;
    uint8_t t = s[i];
    if (i == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) break;
  }
  if (i == need + 1) return i;
  *bad = i;
  return 0;
}

/* ----------------------------------------------------------------- grouping */

static int same_log_scope(const void *recs, uint32_t i, uint32_t j) {
  const polytel__log_rec_t *a = (const polytel__log_rec_t *)recs + i,
                           *b = (const polytel__log_rec_t *)recs + j;
  if (a->target_len != b->target_len) return 0;
  return a->target == b->target || !a->target_len || memcmp(a->target, b->target, a->target_len) == 0;
}

static int same_span_scope(const void *recs, uint32_t i, uint32_t j) {
  const polytel__span_rec_t *a = (const polytel__span_rec_t *)recs + i,
                            *b = (const polytel__span_rec_t *)recs + j;
  const char *an, *av, *bn, *bv;
  size_t anl, avl, bnl, bvl;
  polytel__span_scope(a, &an, &anl, &av, &avl);
  polytel__span_scope(b, &bn, &bnl, &bv, &bvl);
  return anl == bnl && avl == bvl && memcmp(an, bn, anl) == 0 && memcmp(av, bv, avl) == 0;
}

void polytel__groups_free(polytel__groups_t *g) {
  free(g->first);
  g->first = NULL;
  g->n_groups = 0;
}

void polytel__groups_scope(const polytel__groups_t *g, uint32_t k, const char **name, size_t *name_len,
                           const char **version, size_t *version_len) {
  if (g->kind == POLYTEL__SCOPED_SPANS) {
    polytel__span_scope((const polytel__span_rec_t *)g->recs + g->first[k], name, name_len, version,
                        version_len);
    return;
  }
  const polytel__log_rec_t *r = (const polytel__log_rec_t *)g->recs + g->first[k];
  *name = r->target;
  *name_len = r->target_len;
  *version = "";
  *version_len = 0;
}

int polytel__groups_build(polytel__groups_t *g, polytel__scoped_t kind, const void *recs, size_t n) {
  int (*same)(const void *, uint32_t, uint32_t) =
      kind == POLYTEL__SCOPED_SPANS ? same_span_scope : same_log_scope;
  g->kind = kind;
  g->recs = recs;
  g->n_groups = 0;
  g->first = g->last = g->next = g->prev = NULL; /* n == 0: no group, and gcc sees every field set */
  if (n == 0) return 0;
  if (n >= UINT32_MAX || n > SIZE_MAX / (4 * sizeof(uint32_t))) return -1;
  uint32_t *mem = malloc(4 * n * sizeof(uint32_t));
  if (!mem) return -1;
  g->first = mem;
  g->last = mem + n;
  g->next = mem + 2 * n;
  g->prev = mem + 3 * n;
  uint32_t hit = 0;
  for (uint32_t i = 0; i < (uint32_t)n; i++) {
    uint32_t k = UINT32_MAX;
    /* Consecutive records usually share a group: try the last hit first. */
    if (g->n_groups && same(recs, g->first[hit], i)) {
      k = hit;
    } else {
      for (uint32_t j = 0; j < g->n_groups; j++) {
        if (same(recs, g->first[j], i)) {
          k = j;
          break;
        }
      }
    }
    g->next[i] = UINT32_MAX;
    if (k == UINT32_MAX) {
      k = g->n_groups++;
      g->first[k] = i;
      g->prev[i] = UINT32_MAX;
    } else {
      g->next[g->last[k]] = i;
      g->prev[i] = g->last[k];
    }
    g->last[k] = i;
    hit = k;
  }
  return 0;
}

/* ------------------------------------------------------------------ dispatch */

/* On failure, out is left as it was before the call (length-wise), with oom set. */
static int finish(polytel__buf_t *out, size_t len0, int rc) {
  if (rc != 0 || out->oom) {
    out->len = len0;
    out->oom = 1;
    return POLYTEL_ENOMEM;
  }
  return 0;
}

static int encode_scoped(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                         polytel__scoped_t kind, const void *recs, size_t n) {
  if (!out || (n && !recs)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  size_t len0 = out->len;
  int rc = fmt == POLYTEL__FMT_JSON ? polytel__json_scoped(out, res, kind, recs, n)
                                    : polytel__pb_scoped(out, res, kind, recs, n);
  return finish(out, len0, rc);
}

int polytel__encode_logs(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                         const polytel__log_rec_t *recs, size_t n) {
  return encode_scoped(out, fmt, res, POLYTEL__SCOPED_LOGS, recs, n);
}

int polytel__encode_spans(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                          const polytel__span_rec_t *recs, size_t n) {
  return encode_scoped(out, fmt, res, POLYTEL__SCOPED_SPANS, recs, n);
}

int polytel__encode_metrics(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                            const polytel__metric_rec_t *recs, size_t n) {
  if (!out || (n && !recs)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  size_t len0 = out->len;
  int rc = fmt == POLYTEL__FMT_JSON ? polytel__json_metrics(out, res, recs, n)
                                    : polytel__pb_metrics(out, res, recs, n);
  return finish(out, len0, rc);
}
