/* test_compress.c — polytel__gzip / polytel__zstd: output that zlib's inflate and libzstd's streaming
 * decoder (independent of polytel's own calls) read back exactly; polytel__compress and polytel__unzstd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "export/encode.h"

/* Inflate with windowBits 15+32 would accept zlib too; 15+16 insists on a gzip header. */
static size_t gunzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
  z_stream zs = {0};
  assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)len;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
  assert_int_equal(zs.avail_in, 0); /* nothing after the trailer */
  size_t n = zs.total_out;
  inflateEnd(&zs);
  return n;
}

static void roundtrip(const uint8_t *in, size_t len) {
  polytel__buf_t b = {0};
  polytel__buf_append(&b, "hdr", 3); /* appends after what is there */
  assert_int_equal(polytel__gzip(in, len, &b), 0);
  assert_memory_equal(b.data, "hdr", 3);
  assert_true(b.len > 3 + 18);
  assert_int_equal(b.data[3], 0x1f);
  assert_int_equal(b.data[4], 0x8b);
  assert_int_equal(b.data[5], 8); /* deflate */
  uint8_t *out = malloc(len + 1);
  assert_non_null(out);
  assert_int_equal(gunzip(b.data + 3, b.len - 3, out, len + 1), len);
  if (len) assert_memory_equal(out, in, len);
  uint32_t isize = (uint32_t)b.data[b.len - 4] | (uint32_t)b.data[b.len - 3] << 8 |
                   (uint32_t)b.data[b.len - 2] << 16 | (uint32_t)b.data[b.len - 1] << 24;
  assert_int_equal(isize, (uint32_t)len);
  free(out);
  polytel__buf_free(&b);
}

static void test_gzip_small(void **state) {
  (void)state;
  static const char s[] = "hello hello hello hello";
  roundtrip((const uint8_t *)s, sizeof s - 1);
}

static void test_gzip_empty(void **state) {
  (void)state;
  roundtrip(NULL, 0);
}

/* 4 MiB of poorly compressible bytes: output can exceed the input. */
static void test_gzip_large_random(void **state) {
  (void)state;
  size_t n = 4u << 20;
  uint8_t *in = malloc(n);
  assert_non_null(in);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    in[i] = (uint8_t)x;
  }
  roundtrip(in, n);
  free(in);
}

static void test_gzip_compresses_otlp(void **state) {
  (void)state;
  polytel__span_rec_t s[64];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 64; i++) s[i].name = "GET /api/users", s[i].name_len = 14, s[i].start_ns = (uint64_t)i;
  polytel__buf_t pb = {0}, gz = {0};
  assert_int_equal(polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, NULL, s, 64), 0);
  assert_int_equal(polytel__gzip(pb.data, pb.len, &gz), 0);
  assert_true(gz.len < pb.len / 3);
  roundtrip(pb.data, pb.len);
  polytel__buf_free(&pb);
  polytel__buf_free(&gz);
}

/* The compressor's stream object is kept between calls: what one body leaves in it must not change the next
 * body's output (the same bytes as before, and they read back), whether the body before was larger,
 * random or empty. */
static void test_gzip_reuse_is_stateless(void **state) {
  (void)state;
  polytel__span_rec_t s[200];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 200; i++) s[i].name = "db.query", s[i].name_len = 8, s[i].start_ns = (uint64_t)i * 977;
  polytel__buf_t pb = {0}, first = {0}, again = {0}, other = {0};
  assert_int_equal(polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, NULL, s, 200), 0);
  assert_int_equal(polytel__gzip(pb.data, pb.len, &first), 0);
  size_t n = 300000;
  uint8_t *rnd = malloc(n);
  assert_non_null(rnd);
  uint64_t x = 0x2545f4914f6cdd1dULL;
  for (size_t i = 0; i < n; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, rnd[i] = (uint8_t)(x % 7);
  assert_int_equal(polytel__gzip(rnd, n, &other), 0);
  assert_int_equal(polytel__gzip(NULL, 0, &other), 0);
  assert_int_equal(polytel__gzip(pb.data, pb.len, &again), 0);
  assert_int_equal(again.len, first.len);
  assert_memory_equal(again.data, first.data, first.len);
  roundtrip(rnd, n);
  free(rnd);
  polytel__buf_free(&pb), polytel__buf_free(&first), polytel__buf_free(&again), polytel__buf_free(&other);
}

/* Sizes around igzip's block and window edges (32 KiB history, 64 KiB stored blocks) and mixes of runs,
 * repeats and noise: each reads back exactly, one call after another on the kept stream object. */
static void test_gzip_sizes_and_mixes(void **state) {
  (void)state;
  static const size_t sizes[] = {1,   2,    3,     7,     8,     9,     31,    32,    33,    257,    258,
                                 259, 4095, 32767, 32768, 32769, 65534, 65535, 65536, 65537, 131072, 200003};
  size_t max = 200003;
  uint8_t *in = malloc(max);
  assert_non_null(in);
  uint64_t x = 0x853c49e6748fea9bULL;
  for (int mix = 0; mix < 3; mix++) {
    for (size_t i = 0; i < max; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      in[i] = mix == 0   ? (uint8_t)(i / 300)
              : mix == 1 ? (uint8_t) "span.name=db.query;"[i % 19] ^ (x % 64 == 0)
                         : (uint8_t)(x >> 56);
    }
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) roundtrip(in, sizes[k]);
  }
  free(in);
}

static void test_gzip_oom_and_args(void **state) {
  (void)state;
  polytel__buf_t b = {0};
  b.oom = 1;
  assert_int_equal(polytel__gzip((const uint8_t *)"x", 1, &b), POLYTEL_ENOMEM);
  assert_int_equal(b.len, 0);
  assert_int_equal(polytel__gzip((const uint8_t *)"x", 1, NULL), POLYTEL_EINVAL);
  assert_int_equal(polytel__gzip(NULL, 5, &b), POLYTEL_EINVAL);
}

/* The streaming decoder, not ZSTD_decompress: it does not need the content size that polytel writes. */
static size_t unzstd_stream(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
  ZSTD_DStream *d = ZSTD_createDStream();
  assert_non_null(d);
  ZSTD_inBuffer ib = {in, len, 0};
  ZSTD_outBuffer ob = {out, cap, 0};
  size_t rc;
  do {
    rc = ZSTD_decompressStream(d, &ob, &ib);
    assert_false(ZSTD_isError(rc));
  } while (rc != 0 && ib.pos < ib.size);
  assert_int_equal(rc, 0); /* a whole frame */
  assert_int_equal(ib.pos, len);
  ZSTD_freeDStream(d);
  return ob.pos;
}

static void zstd_roundtrip(const uint8_t *in, size_t len) {
  polytel__buf_t b = {0}, back = {0};
  polytel__buf_append(&b, "hdr", 3);
  assert_int_equal(polytel__compress(POLYTEL_COMPRESSION_ZSTD, in, len, &b), 0);
  assert_memory_equal(b.data, "hdr", 3);
  static const uint8_t magic[4] = {0x28, 0xb5, 0x2f, 0xfd}; /* RFC 8878 frame magic */
  assert_memory_equal(b.data + 3, magic, 4);
  assert_int_equal(ZSTD_getFrameContentSize(b.data + 3, b.len - 3), len);
  uint8_t *out = malloc(len + 1);
  assert_non_null(out);
  assert_int_equal(unzstd_stream(b.data + 3, b.len - 3, out, len + 1), len);
  if (len) assert_memory_equal(out, in, len);
  polytel__buf_append(&back, "x", 1);
  assert_int_equal(polytel__unzstd(b.data + 3, b.len - 3, &back), 0);
  assert_int_equal(back.len, len + 1);
  if (len) assert_memory_equal(back.data + 1, in, len);
  free(out);
  polytel__buf_free(&b);
  polytel__buf_free(&back);
}

static void test_zstd_small_empty_random(void **state) {
  (void)state;
  static const char s[] = "hello hello hello hello";
  zstd_roundtrip((const uint8_t *)s, sizeof s - 1);
  zstd_roundtrip(NULL, 0);
  size_t n = 3u << 20;
  uint8_t *in = malloc(n);
  assert_non_null(in);
  uint64_t x = 0x2545f4914f6cdd1dULL;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    in[i] = (uint8_t)x;
  }
  zstd_roundtrip(in, n);
  free(in);
}

/* On an OTLP batch zstd is smaller than gzip, both far smaller than the protobuf. */
static void test_zstd_compresses_otlp(void **state) {
  (void)state;
  polytel__span_rec_t s[64];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 64; i++) s[i].name = "GET /api/users", s[i].name_len = 14, s[i].start_ns = (uint64_t)i;
  polytel__buf_t pb = {0}, gz = {0}, zs = {0};
  assert_int_equal(polytel__encode_spans(&pb, POLYTEL__FMT_PROTOBUF, NULL, s, 64), 0);
  assert_int_equal(polytel__compress(POLYTEL_COMPRESSION_GZIP, pb.data, pb.len, &gz), 0);
  assert_int_equal(polytel__compress(POLYTEL_COMPRESSION_ZSTD, pb.data, pb.len, &zs), 0);
  assert_true(zs.len < pb.len / 3);
  assert_true(gz.len < pb.len / 3);
  zstd_roundtrip(pb.data, pb.len);
  polytel__buf_free(&pb);
  polytel__buf_free(&gz);
  polytel__buf_free(&zs);
}

static void test_compress_args(void **state) {
  (void)state;
  polytel__buf_t b = {0};
  assert_int_equal(polytel__compress(POLYTEL_COMPRESSION_NONE, (const uint8_t *)"x", 1, &b), POLYTEL_EINVAL);
  assert_int_equal(polytel__compress(7, (const uint8_t *)"x", 1, &b), POLYTEL_EINVAL);
  assert_int_equal(polytel__zstd(NULL, 5, &b), POLYTEL_EINVAL);
  assert_int_equal(polytel__zstd((const uint8_t *)"x", 1, NULL), POLYTEL_EINVAL);
  assert_int_equal(b.len, 0);
  b.oom = 1;
  assert_int_equal(polytel__zstd((const uint8_t *)"x", 1, &b), POLYTEL_ENOMEM);
  assert_int_equal(polytel__unzstd((const uint8_t *)"x", 1, &b), POLYTEL_ENOMEM);
  b.oom = 0;
  /* Not a frame, a truncated frame: refused, nothing appended. */
  assert_int_equal(polytel__unzstd((const uint8_t *)"not zstd", 8, &b), POLYTEL_EINVAL);
  polytel__buf_t z = {0};
  static const char msg[] = "a message that compresses, a message that compresses";
  assert_int_equal(polytel__zstd((const uint8_t *)msg, sizeof msg, &z), 0);
  assert_int_equal(polytel__unzstd(z.data, z.len - 2, &b), POLYTEL_EINVAL);
  assert_int_equal(b.len, 0);
  /* An empty frame read back into a buffer that has no memory yet. */
  polytel__buf_t e = {0}, back = {0};
  assert_int_equal(polytel__zstd(NULL, 0, &e), 0);
  assert_int_equal(polytel__unzstd(e.data, e.len, &back), 0);
  assert_int_equal(back.len, 0);
  polytel__buf_free(&e);
  polytel__buf_free(&back);
  assert_string_equal(polytel__compression_name(POLYTEL_COMPRESSION_ZSTD), "zstd");
  assert_string_equal(polytel__compression_name(POLYTEL_COMPRESSION_GZIP), "gzip");
  assert_string_equal(polytel__compression_name(POLYTEL_COMPRESSION_NONE), "none");
  polytel__buf_free(&z);
  polytel__buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gzip_small),
      cmocka_unit_test(test_gzip_empty),
      cmocka_unit_test(test_gzip_large_random),
      cmocka_unit_test(test_gzip_compresses_otlp),
      cmocka_unit_test(test_gzip_reuse_is_stateless),
      cmocka_unit_test(test_gzip_sizes_and_mixes),
      cmocka_unit_test(test_gzip_oom_and_args),
      cmocka_unit_test(test_zstd_small_empty_random),
      cmocka_unit_test(test_zstd_compresses_otlp),
      cmocka_unit_test(test_compress_args),
  };
  return cmocka_run_group_tests_name("compress", tests, NULL, NULL);
}
