/* fuzz_compress.c — libFuzzer target for request-body compression (core/src/export/compress.c): arbitrary
 * bodies through gzip (ISA-L) and zstd, each read back byte for byte by an independent decoder (zlib's
 * inflate, libzstd's ZSTD_decompress) and by polytel__unzstd; appends that keep what the buffer held; the
 * error paths (NULL arguments, a buffer already out of memory, a buffer grown from one byte, garbage and torn
 * frames to polytel__unzstd).
 *
 * run.sh links: -lisal -lzstd -lz
 */
/* The loop-free core that run.sh archives has only compress.c's stub (POLYTEL_WITH_UV=OFF has neither
 * library): the real codecs are compiled into this target, which also gives libFuzzer their coverage. */
#define POLYTEL_WITH_UV 1
#include "export/compress.c"

#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "fuzz.h"

enum {
  F_PREFIX = 1, /* the output buffer already holds bytes: they must stay */
  F_TINY = 2,   /* the output buffer starts with one byte of room */
  F_REPEAT =
      4,     /* the body repeated up to a few hundred KiB: several igzip stored blocks, long zstd matches */
  F_OOM = 8, /* a buffer already out of memory: POLYTEL_ENOMEM, nothing touched */
  F_GARBAGE = 16, /* the raw body to polytel__unzstd */
  F_TORN = 32,    /* polytel__zstd's frame with bytes cut off or flipped, to polytel__unzstd */
};

static const uint8_t PFX[] = "prefix\0bytes";

/* polytel__unzstd reserves the size a frame's header declares (it reads back polytel's own frames, in tests):
 * a forged header asks for up to SIZE_MAX / 2, which libFuzzer's malloc limit would report as a crash. Frames
 * declaring more than this go to it only when their header is not even readable. */
static int unzstd_may_try(const uint8_t *f, size_t n) {
  unsigned long long sz = ZSTD_getFrameContentSize(f, n);
  return sz == ZSTD_CONTENTSIZE_ERROR || sz == ZSTD_CONTENTSIZE_UNKNOWN || sz <= (1u << 20);
}

/* memcmp, where n == 0 allows NULL (an empty buffer has no data pointer). */
static int same(const void *a, const void *b, size_t n) {
  return n == 0 || memcmp(a, b, n) == 0;
}

/* A fresh output buffer as the flags say; *pre gets how many bytes it already holds. */
static void out_init(polytel__buf_t *b, unsigned flags, size_t *pre) {
  memset(b, 0, sizeof *b);
  *pre = 0;
  if (flags & F_TINY) CHECK(polytel__buf_reserve(b, 1) == 0);
  if (flags & F_PREFIX) {
    polytel__buf_append(b, PFX, sizeof PFX);
    CHECK(!b->oom && b->len == sizeof PFX);
    *pre = sizeof PFX;
  }
}

static void check_gzip(const uint8_t *in, size_t len, unsigned flags) {
  polytel__buf_t out;
  size_t pre;
  out_init(&out, flags, &pre);
  CHECK(polytel__gzip(in, len, &out) == 0);
  size_t n = out.len - pre;
  CHECK(same(out.data, PFX, pre));
  CHECK(n >= 18 && out.data[pre] == 0x1f && out.data[pre + 1] == 0x8b); /* RFC 1952 magic; header + trailer */
  CHECK(n <= gzip_bound(len));

  /* zlib's inflate, gzip wrapper only (16 + window bits): the whole stream, nothing after it. */
  uint8_t *back = malloc(len + 1);
  CHECK(back);
  z_stream z;
  memset(&z, 0, sizeof z);
  CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
  z.next_in = out.data + pre;
  z.avail_in = (uInt)n;
  z.next_out = back;
  z.avail_out = (uInt)(len + 1);
  CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
  CHECK(z.avail_in == 0 && z.total_out == len);
  CHECK(same(back, in, len));
  inflateEnd(&z);
  free(back);

  /* Appending a second body after the first keeps the first whole. */
  size_t first = out.len;
  CHECK(polytel__gzip(in, len < 64 ? len : 64, &out) == 0);
  CHECK(out.len > first && out.data[first] == 0x1f);
  polytel__buf_free(&out);
}

static void check_zstd(const uint8_t *in, size_t len, unsigned flags, uint8_t cut) {
  polytel__buf_t out;
  size_t pre;
  out_init(&out, flags, &pre);
  CHECK(polytel__zstd(in, len, &out) == 0);
  size_t n = out.len - pre;
  const uint8_t *frame = out.data + pre;
  CHECK(same(out.data, PFX, pre));
  CHECK(n <= ZSTD_compressBound(len));
  /* One frame, exactly n bytes, its content size in the header (what a receiver sizes its buffer by). */
  CHECK(ZSTD_findFrameCompressedSize(frame, n) == n);
  CHECK(ZSTD_getFrameContentSize(frame, n) == (unsigned long long)len);

  /* libzstd's own decoder. */
  uint8_t *back = malloc(len + 1);
  CHECK(back);
  size_t got = ZSTD_decompress(back, len + 1, frame, n);
  CHECK(!ZSTD_isError(got) && got == len);
  CHECK(same(back, in, len));
  free(back);

  /* polytel__unzstd (the test receiver's side of zstd bodies in the C tests) reads it back too, appended. */
  polytel__buf_t dec;
  size_t dpre;
  out_init(&dec, flags, &dpre);
  CHECK(polytel__unzstd(frame, n, &dec) == 0);
  CHECK(dec.len == dpre + len && same(dec.data, PFX, dpre));
  CHECK(len == 0 || same(dec.data + dpre, in, len));
  polytel__buf_free(&dec);

  if (flags & F_TORN) {
    /* Cut short: never accepted. Flipped: rejected, or (a flip in a literal the checksum-free frame cannot
     * see) decoded to exactly the declared size. Either way nothing is read or written out of bounds (ASan).
     */
    size_t keep = cut % n;
    polytel__buf_t t = {0};
    CHECK(polytel__unzstd(frame, keep, &t) == POLYTEL_EINVAL);
    polytel__buf_free(&t);
    uint8_t *flip = malloc(n);
    CHECK(flip);
    memcpy(flip, frame, n);
    flip[keep] ^= (uint8_t)(cut | 1);
    if (unzstd_may_try(flip, n)) {
      int rc = polytel__unzstd(flip, n, &t);
      CHECK(rc == POLYTEL_EINVAL || (rc == 0 && t.len == ZSTD_getFrameContentSize(flip, n)));
      polytel__buf_free(&t);
    }
    free(flip);
  }
  polytel__buf_free(&out);
}

static void check_errors(const uint8_t *in, size_t len, unsigned flags) {
  /* NULL output, or a NULL body that claims bytes: POLYTEL_EINVAL. A NULL empty body is an empty body. */
  CHECK(polytel__gzip(in, len, NULL) == POLYTEL_EINVAL);
  CHECK(polytel__zstd(in, len, NULL) == POLYTEL_EINVAL);
  CHECK(polytel__unzstd(in, len, NULL) == POLYTEL_EINVAL);
  polytel__buf_t b = {0};
  CHECK(polytel__gzip(NULL, len + 1, &b) == POLYTEL_EINVAL && b.len == 0);
  CHECK(polytel__zstd(NULL, len + 1, &b) == POLYTEL_EINVAL && b.len == 0);
  CHECK(polytel__unzstd(NULL, len + 1, &b) == POLYTEL_EINVAL && b.len == 0);
  CHECK(polytel__gzip(NULL, 0, &b) == 0 && b.len >= 18);
  polytel__buf_reset(&b);
  CHECK(polytel__zstd(NULL, 0, &b) == 0 && ZSTD_getFrameContentSize(b.data, b.len) == 0);
  polytel__buf_free(&b);

  if (flags & F_OOM) {
    /* An earlier append failed: every codec refuses at once and leaves the buffer as it was. */
    size_t pre;
    out_init(&b, flags, &pre);
    b.oom = 1;
    CHECK(polytel__gzip(in, len, &b) == POLYTEL_ENOMEM && b.len == pre);
    CHECK(polytel__zstd(in, len, &b) == POLYTEL_ENOMEM && b.len == pre);
    CHECK(polytel__unzstd(in, len, &b) == POLYTEL_ENOMEM && b.len == pre);
    CHECK(polytel__compress(POLYTEL_COMPRESSION_GZIP, in, len, &b) == POLYTEL_ENOMEM && b.len == pre);
    polytel__buf_free(&b);
  }
  /* No codec: refused by the dispatcher, nothing written. */
  CHECK(polytel__compress(POLYTEL_COMPRESSION_NONE, in, len, &b) == POLYTEL_EINVAL && b.len == 0);

  if ((flags & F_GARBAGE) && unzstd_may_try(in, len)) {
    /* Arbitrary bytes as a frame: rejected, or (a valid frame) exactly its declared size. */
    int rc = polytel__unzstd(in, len, &b);
    CHECK(rc == POLYTEL_EINVAL || (rc == 0 && b.len == ZSTD_getFrameContentSize(in, len)));
    polytel__buf_free(&b);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_rd_t r = {data, data + size};
  unsigned flags = fz_u8(&r);
  uint8_t reps = fz_u8(&r), cut = fz_u8(&r);
  size_t len;
  const uint8_t *body = (const uint8_t *)fz_bytes(&r, size, &len);

  uint8_t *big = NULL;
  if ((flags & F_REPEAT) && len) {
    /* Up to 256 copies, at most 384 KiB: past igzip's 64 KiB stored blocks, with matches far back. */
    size_t copies = (size_t)reps + 1, cap = 384 << 10;
    if (copies * len > cap) copies = cap / len ? cap / len : 1;
    big = malloc(copies * len);
    CHECK(big);
    for (size_t i = 0; i < copies; i++) memcpy(big + i * len, body, len);
    body = big;
    len *= copies;
  }
  check_gzip(len ? body : NULL, len, flags);
  check_zstd(len ? body : NULL, len, flags, cut);
  check_errors(body, len, flags);
  free(big);
  return 0;
}
