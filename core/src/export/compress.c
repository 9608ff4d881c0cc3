/* compress.c — request-body compression: gzip (RFC 1952) via libdeflate, zstd (RFC 8878) via libzstd. */
#include "export/encode.h"

#if !POLYTEL_WITH_UV
/* The loop-free build (POLYTEL_WITH_UV=OFF) has neither library: requests go uncompressed. (zstd's stubs
 * are inline in encode.h; the wasm build leaves this file out and its shim stubs polytel__gzip.) */
int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  (void)in, (void)len, (void)out;
  return POLYTEL_ENOSYS;
}
#else
#include <libdeflate.h>
#include <stdatomic.h>
#include <zstd.h>
#include <zstd_errors.h>

/*
 * Level 1 of each: this runs on the exporter thread, whose CPU is the budget that matters. On OTLP
 * batches libdeflate's level 1 is ~2.5x faster than zlib's fastest level for slightly smaller output
 * (bench/bench_encode.c prints both figures), and zstd's level 1 is faster again and smaller.
 * libdeflate's compressor is made per call: that costs under 2% of compressing one batch, and keeps
 * polytel__gzip free of shared state (any thread may call it).
 */
int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  if (!out || (len && !in)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
  if (!c) return POLYTEL_ENOMEM;
  size_t bound = libdeflate_gzip_compress_bound(c, len);
  int rc = 0;
  if (polytel__buf_reserve(out, bound) != 0) {
    rc = POLYTEL_ENOMEM;
  } else {
    /* libdeflate wants a non-NULL input even for an empty one. */
    size_t n = libdeflate_gzip_compress(c, len ? in : (const uint8_t *)"", len, out->data + out->len, bound);
    if (n == 0) rc = POLYTEL_EIO; /* cannot happen with the bound's room */
    out->len += n;
  }
  libdeflate_free_compressor(c);
  return rc;
}

/*
 * One spare compression context, taken and put back with an atomic exchange: the exporter thread reuses it
 * batch after batch (making one costs ~15% of compressing a 512-span batch), and any other caller simply
 * makes its own. It is never freed: a process keeps at most one, reachable from here.
 */
static _Atomic(ZSTD_CCtx *) g_spare_cctx;

int polytel__zstd(const uint8_t *in, size_t len, polytel__buf_t *out) {
  if (!out || (len && !in)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  size_t bound = ZSTD_compressBound(len);
  if (polytel__buf_reserve(out, bound) != 0) return POLYTEL_ENOMEM;
  ZSTD_CCtx *c = atomic_exchange(&g_spare_cctx, NULL);
  if (!c && !(c = ZSTD_createCCtx())) return POLYTEL_ENOMEM;
  /* The frame header carries the content size, so a receiver can size its buffer. */
  size_t n = ZSTD_compressCCtx(c, out->data + out->len, bound, len ? in : (const uint8_t *)"", len, 1);
  c = atomic_exchange(&g_spare_cctx, c);
  ZSTD_freeCCtx(c); /* another caller's, when two raced; NULL otherwise */
  if (ZSTD_isError(n))
    return ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ? POLYTEL_ENOMEM : POLYTEL_EIO;
  out->len += n;
  return 0;
}

int polytel__unzstd(const uint8_t *in, size_t len, polytel__buf_t *out) {
  if (!out || (len && !in)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  unsigned long long size = ZSTD_getFrameContentSize(in, len);
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > SIZE_MAX / 2)
    return POLYTEL_EINVAL; /* only frames from polytel__zstd, which always records the size */
  if (polytel__buf_reserve(out, (size_t)size) != 0) return POLYTEL_ENOMEM;
  uint8_t *dst = out->data ? out->data + out->len : NULL; /* an empty frame into an empty buffer */
  size_t n = ZSTD_decompress(dst, (size_t)size, in, len);
  if (ZSTD_isError(n) || n != size) return POLYTEL_EINVAL;
  out->len += n;
  return 0;
}
#endif
