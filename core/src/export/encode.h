/* encode.h — OTLP protobuf and OTLP/JSON encoders for logs, traces and metrics; body compression. */
#ifndef POLYTEL_ENCODE_H
#define POLYTEL_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* A growable byte buffer. On allocation failure `oom` is set and appends become no-ops. */
typedef struct polytel__buf_s {
  uint8_t *data;
  size_t len;
  size_t cap;
  int oom;
} polytel__buf_t;

void polytel__buf_free(polytel__buf_t *b);
void polytel__buf_reset(polytel__buf_t *b); /* len = 0, keeps memory */
void polytel__buf_append(polytel__buf_t *b, const void *p, size_t n);
/* Make room for n more bytes (geometric growth). 0, or -1 with oom set. */
int polytel__buf_reserve(polytel__buf_t *b, size_t n);
/* The capacity a buffer of `cap` grows to for `need` bytes: doubled (from 256) until it is enough. Shared by
 * polytel__buf_reserve and the protobuf encoder's back-to-front writer, which grows its buffer itself. */
static inline size_t polytel__buf_grown_cap(size_t cap, size_t need) {
  if (!cap) cap = 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) return need;
    cap *= 2;
  }
  return cap;
}

/*
 * UTF-8 scanning shared by the encoders (OTLP strings must be valid UTF-8).
 * At s[0..n), n > 0: returns the length of the valid sequence there, or 0 and
 * sets *bad to the length of the maximal invalid subpart (Unicode 3.9, the
 * same rule as Python's "replace"), which becomes one U+FFFD.
 */
size_t polytel__utf8_step(const uint8_t *s, size_t n, size_t *bad);

/*
 * A batch of logs or spans grouped by scope (logs: their target, no version; spans: polytel__span_scope),
 * groups in order of first appearance, records in order within a group (encode.c). Both encoders walk the
 * same grouping, so a batch comes out grouped alike in protobuf and JSON. One allocation; free with
 * polytel__groups_free.
 */
typedef enum { POLYTEL__SCOPED_LOGS, POLYTEL__SCOPED_SPANS } polytel__scoped_t;
typedef struct polytel__groups_s {
  polytel__scoped_t kind;
  const void *recs; /* polytel__log_rec_t or polytel__span_rec_t, by kind */
  uint32_t n_groups;
  uint32_t *first, *last; /* per group */
  uint32_t *next, *prev;  /* per record, UINT32_MAX ends */
} polytel__groups_t;
/* 0, or -1 when out of memory (or n does not fit the indexes). */
int polytel__groups_build(polytel__groups_t *g, polytel__scoped_t kind, const void *recs, size_t n);
void polytel__groups_free(polytel__groups_t *g);
/* Group k's scope as exported: name and version (version "" for logs). */
void polytel__groups_scope(const polytel__groups_t *g, uint32_t k, const char **name, size_t *name_len,
                           const char **version, size_t *version_len);

/* A span's scope as exported: its own, or POLYTEL__SCOPE_NAME with the library's version. */
static inline void polytel__span_scope(const polytel__span_rec_t *s, const char **name, size_t *name_len,
                                       const char **version, size_t *version_len) {
  if (s->scope_name_len) {
    *name = s->scope_name;
    *name_len = s->scope_name_len;
    *version = s->scope_version ? s->scope_version : "";
    *version_len = s->scope_version ? s->scope_version_len : 0;
  } else {
    *name = POLYTEL__SCOPE_NAME;
    *name_len = sizeof POLYTEL__SCOPE_NAME - 1;
    *version = POLYTEL_VERSION_STRING;
    *version_len = sizeof POLYTEL_VERSION_STRING - 1;
  }
}

/*
 * Each encoder appends one Export{Logs,Trace,Metrics}ServiceRequest to `out`:
 * one ResourceLogs/ResourceSpans/ResourceMetrics with `res`. Metrics get one
 * scope "polytel" (version POLYTEL_VERSION_STRING); spans one per distinct
 * scope (name + version; a span without one is in "polytel"), logs one per
 * distinct target (name = target, no version), in order of first appearance,
 * records in order within it. Strings are made valid UTF-8
 * (invalid sequences become U+FFFD). Protobuf fields are in field-number order
 * with proto3 defaults omitted, so the output is the canonical serialization. JSON follows the OTLP/JSON
 * rules: hex ids, 64-bit integers as decimal strings, integer enums, lowerCamelCase keys, no trailing
 * newline. Returns 0 or POLYTEL_ENOMEM.
 */
int polytel__encode_logs(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                         const polytel__log_rec_t *recs, size_t n);
int polytel__encode_spans(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                          const polytel__span_rec_t *recs, size_t n);
int polytel__encode_metrics(polytel__buf_t *out, polytel__format_t fmt, const polytel__resource_t *res,
                            const polytel__metric_rec_t *recs, size_t n);

/*
 * The two formats behind polytel__encode_* (encode.c dispatches and restores `out` on failure): the
 * protobuf encoders (encode_pb.c) and the JSON ones (encode_json.c). Each appends one request; 0 or
 * POLYTEL_ENOMEM. Logs and spans go through one writer per format (recs by kind, polytel__groups_t).
 */
int polytel__pb_scoped(polytel__buf_t *out, const polytel__resource_t *res, polytel__scoped_t kind,
                       const void *recs, size_t n);
int polytel__pb_metrics(polytel__buf_t *out, const polytel__resource_t *res,
                        const polytel__metric_rec_t *recs, size_t n);
int polytel__json_scoped(polytel__buf_t *out, const polytel__resource_t *res, polytel__scoped_t kind,
                         const void *recs, size_t n);
int polytel__json_metrics(polytel__buf_t *out, const polytel__resource_t *res,
                          const polytel__metric_rec_t *recs, size_t n);

/*
 * The record's thread as `thread.id` (int) and `thread.name` (string, when known): the semantic
 * conventions' attributes, after the record's own. Fills out[0..2) and returns how many; none for
 * thread_id 0, and none that the record's own attributes already have (a user's value wins).
 */
uint32_t polytel__thread_attrs(polytel__kv_t out[2], const polytel__kv_t *attrs, uint32_t n_attrs,
                               uint32_t thread_id, const char *thread_name);

/*
 * Compression of in[0..len), appended to out (compress.c). 0, POLYTEL_ENOMEM, POLYTEL_EINVAL, or
 * POLYTEL_ENOSYS when built without the libraries (POLYTEL_WITH_UV=OFF, the wasm build).
 * polytel__compress takes a polytel_compression_t other than NONE; polytel__unzstd reads back a frame
 * of polytel__zstd (its content size is in the header).
 */
int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out); /* RFC 1952, ISA-L igzip */
#if POLYTEL_WITH_UV
int polytel__zstd(const uint8_t *in, size_t len, polytel__buf_t *out); /* RFC 8878, libzstd */
int polytel__unzstd(const uint8_t *in, size_t len, polytel__buf_t *out);
#else
/* No libzstd in the loop-free builds (the wasm one has no compress.c at all). */
static inline int polytel__zstd(const uint8_t *in, size_t len, polytel__buf_t *out) {
  (void)in, (void)len, (void)out;
  return POLYTEL_ENOSYS;
}
static inline int polytel__unzstd(const uint8_t *in, size_t len, polytel__buf_t *out) {
  (void)in, (void)len, (void)out;
  return POLYTEL_ENOSYS;
}
#endif

/* Inline, so the wasm build (no compress.c; its shim stubs polytel__gzip) needs no other symbol. */
static inline int polytel__compress(int codec, const uint8_t *in, size_t len, polytel__buf_t *out) {
  if (codec == POLYTEL_COMPRESSION_GZIP) return polytel__gzip(in, len, out);
  if (codec == POLYTEL_COMPRESSION_ZSTD) return polytel__zstd(in, len, out);
  return POLYTEL_EINVAL;
}

/* The Content-Encoding of a codec: "gzip", "zstd", or "none". */
static inline const char *polytel__compression_name(int codec) {
  return codec == POLYTEL_COMPRESSION_GZIP ? "gzip" : codec == POLYTEL_COMPRESSION_ZSTD ? "zstd" : "none";
}

#endif
