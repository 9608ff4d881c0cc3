/* gzip.c — polytel__gzip: RFC 1952 compression of request bodies via zlib. */
#include "encode.h"

#if !POLYTEL_WITH_UV
/* The loop-free build (wasm) has no zlib: requests go uncompressed. */
int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  (void)in;
  (void)len;
  (void)out;
  return POLYTEL_ENOSYS;
}
#else
#include <zlib.h>

int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  if (!out || (len && !in)) return POLYTEL_EINVAL;
  if (out->oom) return POLYTEL_ENOMEM;
  z_stream zs = {0};
  /*
   * windowBits 15 + 16: a gzip header and trailer instead of zlib's. Level 1: on OTLP batches it is
   * ~2.4x faster than the default level for ~15% more bytes (bench/bench_encode.c), and this runs on
   * the exporter thread, whose CPU budget is the tighter one.
   */
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return POLYTEL_ENOMEM;
  int rc = 0;
  size_t in_off = 0, len0 = out->len;
  for (;;) {
    /* deflateBound covers the whole input, so one pass usually suffices; uInt limits chunks to 1 GiB. */
    size_t chunk = len - in_off > (1u << 30) ? (1u << 30) : len - in_off;
    size_t room = deflateBound(&zs, (uLong)chunk) + 64;
    if (polytel__buf_reserve(out, room) != 0) {
      rc = POLYTEL_ENOMEM;
      break;
    }
    zs.next_in = len ? (Bytef *)(uintptr_t)(in + in_off) : Z_NULL; /* in may be NULL when len is 0 */
    zs.avail_in = (uInt)chunk;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)(room > (1u << 31) ? (1u << 31) : room);
    in_off += chunk;
    int flush = in_off == len ? Z_FINISH : Z_NO_FLUSH;
    size_t before = zs.avail_out;
    int z = deflate(&zs, flush);
    out->len += before - zs.avail_out;
    if (z == Z_STREAM_END) break;
    if (z != Z_OK && z != Z_BUF_ERROR) {
      rc = POLYTEL_EIO;
      break;
    }
    /* Input left over (avail_out ran out): feed the rest again from where zlib stopped. */
    in_off -= zs.avail_in;
  }
  deflateEnd(&zs);
  if (rc) out->len = len0;
  return rc;
}
#endif
