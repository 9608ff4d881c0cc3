/* ids.c — random numbers and trace/span ids: xorshift128+ per thread, seeded from the kernel. */
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/common.h"

void polytel__rng_seed(uint64_t s[2]) {
  if (getrandom(s, 16, GRND_NONBLOCK) != 16) {
    /* No entropy syscall (old kernel, wasm): mix time, address and pid. */
    uint64_t x = polytel__mono_ns() ^ ((uint64_t)(uintptr_t)s << 17) ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < 2; i++) {
      x += 0x9e3779b97f4a7c15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s[i] = z ^ (z >> 31);
    }
  }
  if (!s[0] && !s[1]) s[0] = 1;
}

void polytel__gen_ids(uint64_t rng[2], uint8_t *trace_id, uint8_t span_id[8]) {
  uint64_t v;
  do v = polytel__rng_next(rng);
  while (v == 0); /* all-zero ids are invalid */
  memcpy(span_id, &v, 8);
  if (trace_id) {
    uint64_t a = polytel__rng_next(rng), b;
    do b = polytel__rng_next(rng);
    while (b == 0 && a == 0);
    memcpy(trace_id, &a, 8);
    memcpy(trace_id + 8, &b, 8);
  }
}
