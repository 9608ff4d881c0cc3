/* fuzz.h — what every libFuzzer target here shares: a CHECK that aborts with its place, and a byte reader. */
#ifndef POLYTEL_FUZZ_H
#define POLYTEL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* An invariant: a violation aborts, which libFuzzer reports as a crash with its input saved. */
#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* Reads the fuzz input front to back; past the end every read gives zeros. */
typedef struct fz_rd_s {
  const uint8_t *p, *end;
} fz_rd_t;

static inline uint8_t fz_u8(fz_rd_t *r) {
  return r->p < r->end ? *r->p++ : 0;
}

/* Eight bytes, big-endian. */
static inline uint64_t fz_u64(fz_rd_t *r) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | fz_u8(r);
  return v;
}

/* Up to n bytes in place; *len gets how many there were. */
static inline const char *fz_bytes(fz_rd_t *r, size_t n, size_t *len) {
  size_t avail = (size_t)(r->end - r->p);
  if (n > avail) n = avail;
  const char *s = (const char *)r->p;
  r->p += n;
  *len = n;
  return s;
}

#endif
