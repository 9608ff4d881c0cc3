/* fuzz_propagation.c — libFuzzer target for the trace-context codecs and settings parsers: every input goes
 * through traceparent, tracestate, baggage, OTEL_PROPAGATORS and the sampler; round trips must agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/propagation.h"

#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* A warning is terminated within its buffer; a newline in it can only be the user's own text, quoted (the
 * console escapes it when the line is printed). */
static void check_warning(const char *w, size_t cap, const char *user) {
  CHECK(memchr(w, '\0', cap) != NULL);
  if (!user || !strchr(user, '\n')) CHECK(strchr(w, '\n') == NULL);
}

static void fuzz_traceparent(const char *s, size_t n) {
  polytel_span_ctx_t a, b;
  char buf[POLYTEL_TRACEPARENT_LEN + 1];
  if (polytel__traceparent_parse_n(s, n, &a) != 0) {
    static const polytel_span_ctx_t zero;
    CHECK(memcmp(&a, &zero, sizeof a) == 0);
    CHECK(polytel_traceparent_format(&a, buf, sizeof buf) == POLYTEL_EINVAL && buf[0] == '\0');
    return;
  }
  CHECK((a.trace_flags & ~(POLYTEL_TRACE_FLAG_SAMPLED | POLYTEL_TRACE_FLAG_RANDOM)) == 0);
  CHECK(a.start_ns == 0);
  for (int i = 0; i < 8; i++) CHECK(a.parent_id[i] == 0);
  CHECK(polytel_traceparent_format(&a, buf, sizeof buf) == 0);
  CHECK(strlen(buf) == POLYTEL_TRACEPARENT_LEN);
  for (size_t i = 0; i < POLYTEL_TRACEPARENT_LEN; i++) {
    int dash = i == 2 || i == 35 || i == 52;
    CHECK(dash ? buf[i] == '-' : ((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f')));
  }
  CHECK(polytel_traceparent_parse(buf, &b) == 0);
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  /* a version-00 input with known flags only comes back byte for byte (less its whitespace) */
  while (n && is_ows(*s)) s++, n--;
  while (n && is_ows(s[n - 1])) n--;
  if (n == POLYTEL_TRACEPARENT_LEN && s[0] == '0' && s[1] == '0' && (s[53] == '0') && s[54] >= '0' &&
      s[54] <= '3')
    CHECK(memcmp(buf, s, POLYTEL_TRACEPARENT_LEN) == 0);
}

static void fuzz_tracestate(const char *s, size_t n, size_t cap) {
  char out[POLYTEL__TRACESTATE_MAX_LEN + 1], again[POLYTEL__TRACESTATE_MAX_LEN + 1];
  if (cap > sizeof out) cap = sizeof out;
  int r = polytel__tracestate_normalize_n(s, n, out, cap);
  if (r < 0) {
    CHECK(r == -1 && out[0] == '\0');
    /* the verdict does not depend on the room */
    CHECK(polytel__tracestate_normalize_n(s, n, again, sizeof again) == -1);
    return;
  }
  CHECK((size_t)r == strlen(out) && (size_t)r < cap && r <= POLYTEL__TRACESTATE_MAX_LEN);
  size_t members = r ? 1 : 0;
  for (int i = 0; i < r; i++) {
    CHECK((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] <= 0x7e);
    if (out[i] == ',') {
      members++;
      CHECK(i > 0 && out[i - 1] != ' ' && out[i + 1] != ' ' && out[i + 1] != ',');
    }
  }
  CHECK(members <= POLYTEL__TRACESTATE_MAX_MEMBERS);
  CHECK(r == 0 || (out[0] != ' ' && out[r - 1] != ' '));
  /* the normal form is a fixed point, and a valid header by itself */
  CHECK(polytel__tracestate_normalize(out, again, sizeof again) == r);
  CHECK(strcmp(out, again) == 0);
  CHECK(polytel_tracestate_valid(out) == 1);
}

static char store_a[POLYTEL__BAGGAGE_STORE_MIN], store_b[POLYTEL__BAGGAGE_STORE_MIN];
static polytel__baggage_t bag_a, bag_b;

static int baggage_octet(unsigned char c) {
  return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

static void fuzz_baggage(const char *s, size_t n) {
  static char out[POLYTEL__BAGGAGE_MAX_BYTES + 1], out2[POLYTEL__BAGGAGE_MAX_BYTES + 1];
  polytel__baggage_init(&bag_a, store_a, sizeof store_a);
  int taken = polytel__baggage_parse(&bag_a, s, n);
  CHECK(taken >= 0 && (uint32_t)taken == bag_a.taken);
  CHECK(bag_a.n <= bag_a.taken && bag_a.taken <= POLYTEL__BAGGAGE_MAX_MEMBERS);
  CHECK(bag_a.bytes <= POLYTEL__BAGGAGE_MAX_BYTES && bag_a.used <= bag_a.cap);
  for (uint32_t i = 0; i < bag_a.n; i++) {
    const polytel__baggage_entry_t *e = &bag_a.e[i];
    CHECK(e->key_len > 0 && strlen(e->key) == e->key_len && e->value[e->value_len] == '\0');
    CHECK(strlen(e->props) == e->props_len);
    for (uint32_t j = 0; j < i; j++) CHECK(strcmp(bag_a.e[j].key, e->key) != 0);
    CHECK(polytel__baggage_get(&bag_a, e->key, e->key_len) == e);
  }
  int len = polytel__baggage_format(&bag_a, out, sizeof out);
  CHECK(len >= 0 && (size_t)len == strlen(out) && len <= POLYTEL__BAGGAGE_MAX_BYTES);
  for (int i = 0; i < len; i++) {
    unsigned char c = (unsigned char)out[i];
    CHECK(baggage_octet(c) || c == ',' || c == ';');
  }
  /* parse(format(x)) holds the same entries, in order, less the ones format had no room for */
  polytel__baggage_init(&bag_b, store_b, sizeof store_b);
  CHECK(polytel__baggage_parse(&bag_b, out, (size_t)len) == (int)bag_b.n);
  CHECK(bag_b.skipped == 0 && bag_b.n <= bag_a.n);
  uint32_t j = 0;
  for (uint32_t i = 0; i < bag_b.n; i++) {
    while (j < bag_a.n && strcmp(bag_a.e[j].key, bag_b.e[i].key) != 0) j++;
    CHECK(j < bag_a.n);
    const polytel__baggage_entry_t *x = &bag_a.e[j], *y = &bag_b.e[i];
    CHECK(x->value_len == y->value_len && memcmp(x->value, y->value, x->value_len) == 0);
    CHECK(strcmp(x->props, y->props) == 0);
  }
  if (bag_b.n == bag_a.n) {
    CHECK(polytel__baggage_format(&bag_b, out2, sizeof out2) == len);
    CHECK(strcmp(out, out2) == 0);
  }
}

static void fuzz_settings(const char *s, size_t n) {
  /* "sampler\narg": the first line is also tried as OTEL_PROPAGATORS */
  char *text = malloc(n + 1);
  memcpy(text, s, n);
  text[n] = '\0';
  char *nl = strchr(text, '\n');
  const char *arg = NULL;
  if (nl) {
    *nl = '\0';
    arg = nl + 1;
  }
  char w[POLYTEL__PROP_WARN_CAP];
  unsigned mask = polytel__propagators_parse(text, w, sizeof w);
  CHECK((mask & ~POLYTEL__PROPAGATORS_DEFAULT) == 0);
  check_warning(w, sizeof w, text);
  polytel__sampler_t smp;
  CHECK(polytel__sampler_parse(text, arg, &smp, w, sizeof w) == 0);
  check_warning(w, sizeof w, arg);
  CHECK(smp.kind >= POLYTEL__SAMPLER_ALWAYS_ON && smp.kind <= POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO);
  CHECK(smp.ratio >= 0.0 && smp.ratio <= 1.0);
  CHECK(smp.bound == polytel__ratio_bound(smp.ratio));
  /* consistency: a ratio sampler with a larger ratio samples every trace a smaller one does */
  if (n >= 16) {
    const uint8_t *tid = (const uint8_t *)s + n - 16;
    double lower = smp.ratio * 0.5;
    if (polytel__traceid_ratio_sampled(tid, polytel__ratio_bound(lower)))
      CHECK(polytel__traceid_ratio_sampled(tid, smp.bound));
    int root = polytel__sampler_should_sample(&smp, tid, -1);
    CHECK(root == 0 || root == 1);
    if (smp.kind >= POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON) {
      CHECK(polytel__sampler_should_sample(&smp, tid, 1) == 1);
      CHECK(polytel__sampler_should_sample(&smp, tid, 0) == 0);
    }
  }
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
  char *s = malloc(size ? size : 1);
  memcpy(s, data, size);
  fuzz_traceparent(s, size);
  fuzz_tracestate(s, size, size ? (size_t)data[0] * 2 + 1 : 1);
  fuzz_tracestate(s, size, POLYTEL__TRACESTATE_MAX_LEN + 1);
  fuzz_baggage(s, size);
  fuzz_settings(s, size);
  free(s);
  return 0;
}
