/* compress.c — request-body compression: gzip (RFC 1952) via ISA-L (igzip), zstd (RFC 8878) via libzstd. */
#include "export/encode.h"

#if !POLYTEL_WITH_UV
/* The loop-free build (POLYTEL_WITH_UV=OFF) has neither library: requests go uncompressed. (zstd's stubs
 * are inline in encode.h; the wasm build leaves this file out and its shim stubs polytel__gzip.) */
int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  (void)in, (void)len, (void)out;
  return POLYTEL_ENOSYS;
}
#else
#include <isa-l/igzip_lib.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/*
 * gzip is ISA-L's igzip at level 1, one shot (isal_deflate_stateless): this runs on the exporter thread,
 * whose CPU is the budget that matters, and on OTLP batches igzip level 1 compresses ~1.5x faster than
 * libdeflate's level 1 and ~2.5x faster than zlib's fastest level, for output within 2% of libdeflate's
 * size (bench/bench_encode.c prints all three in one run). Without a level buffer igzip's level 1 keeps
 * its hash table in the stream object, which was as fast as any level-buffer size on these bodies.
 *
 * The stream object is 80 KiB, so, like zstd's context below, one spare is kept and taken with an atomic
 * exchange: the exporter thread reuses it batch after batch, any other caller makes its own.
 */
static _Atomic(struct isal_zstream *) g_spare_igzip;

/* igzip's worst case: the input as stored blocks (5 bytes of header per 64 KiB), the gzip header and
 * trailer (18 bytes), and room for a final empty block. */
static size_t gzip_bound(size_t len) {
  return len + 5 * (len / 65535 + 1) + 18 + 64;
}

int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  if (!out || (len && !in)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  if (len > UINT32_MAX - 1024) return POLYTEL_EINVAL; /* igzip counts in 32 bits; bodies are far smaller */
  size_t bound = gzip_bound(len);
  if (polytel__buf_reserve(out, bound) != 0) return POLYTEL_ENOMEM;
  struct isal_zstream *s = atomic_exchange(&g_spare_igzip, NULL);
  /* Zeroed: igzip reads parts of a new stream before it writes them (valgrind shows it). */
  if (!s && !(s = calloc(1, sizeof *s))) return POLYTEL_ENOMEM;
  isal_deflate_stateless_init(s);
  s->level = 1;
  s->level_buf = NULL;
  s->level_buf_size = 0;
  s->gzip_flag = IGZIP_GZIP;
  s->end_of_stream = 1;
  s->flush = NO_FLUSH;
  s->next_in = (uint8_t *)(uintptr_t)(len ? in : (const uint8_t *)"");
  s->avail_in = (uint32_t)len;
  s->next_out = out->data + out->len;
  s->avail_out = (uint32_t)bound;
  int rc = isal_deflate_stateless(s);
  size_t n = s->total_out;
  free(atomic_exchange(&g_spare_igzip, s)); /* another caller's, when two raced; NULL otherwise */
  if (rc != COMP_OK) return POLYTEL_EIO;    /* cannot happen with the bound's room */
  out->len += n;
  return 0;
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
