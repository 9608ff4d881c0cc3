/* fuzz_fmt.c — libFuzzer target for deferred printf (core/src/record/fmt.c): a fuzzer-chosen format is parsed
 * as polytel_log's capture parses it, an argument area is laid out from fuzz bytes exactly as events.c
 * lays out captured arguments (or left short, or garbage), and rendered at several capacities. Checks: the
 * signature's invariants; output NUL-terminated and within capacity; a smaller capacity gives a prefix of
 * a larger one; a single plain conversion renders exactly as snprintf does; literal text is kept; missing
 * arguments show as "<?>"; bounded time whatever the widths and precisions say.
 *
 * Input: byte 0 small capacity, byte 1 flags (bit 0 garbage area, bit 1 cut area), then the format up to
 * the first NUL, then the argument bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "record/record.h"

#define BIG_CAP ((size_t)64 * 1024) /* the consumer's scratch buffer */
#define MAX_FMT 512

typedef struct {
  const uint8_t *p, *end;
} src_t;

static void take(src_t *s, void *out, size_t n) {
  memset(out, 0, n);
  size_t k = (size_t)(s->end - s->p) < n ? (size_t)(s->end - s->p) : n;
  memcpy(out, s->p, k);
  s->p += k;
}

/* The area as events.c's lay_out writes it: 8 bytes per scalar, 16 per long double, u32 len + pad + bytes
 * (padded to 8) per string. */
static size_t build_area(const polytel__fmt_sig_t *sig, src_t *s, uint8_t *area, size_t cap) {
  size_t w = 0;
  for (int i = 0; i < sig->n_args; i++) {
    switch (sig->kinds[i]) {
      case POLYTEL__ARG_LDOUBLE: {
        if (w + 16 > cap) return w;
        long double ld;
        take(s, &ld, sizeof ld < 16 ? sizeof ld : 16);
        memset(area + w, 0, 16);
        memcpy(area + w, &ld, sizeof ld < 16 ? sizeof ld : 16);
        w += 16;
        break;
      }
      case POLYTEL__ARG_STR: {
        uint8_t l8 = 0;
        take(s, &l8, 1);
        uint32_t len = l8;
        if (w + 8 + POLYTEL__ALIGN8(len) > cap) return w;
        memcpy(area + w, &len, 4);
        memset(area + w + 4, 0, 4);
        take(s, area + w + 8, len);
        memset(area + w + 8 + len, 0, POLYTEL__ALIGN8(len) - len);
        w += 8 + POLYTEL__ALIGN8(len);
        break;
      }
      default:
        if (w + 8 > cap) return w;
        take(s, area + w, 8);
        w += 8;
    }
  }
  return w;
}

/* A format that is literal text around exactly one simple conversion with a portable type: snprintf is
 * the reference. Returns the conversion character (0: not such a format) and its length modifier. */
static char simple_conversion(const char *fmt, char *lenmod) {
  const char *pct = NULL;
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') continue;
    if (p[1] == '%') {
      p++;
      continue;
    }
    if (pct) return 0;
    pct = p;
  }
  if (!pct) return 0;
  const char *p = pct + 1;
  while (*p && strchr("-+ #0", *p)) p++;
  for (int i = 0; i < 3 && *p >= '0' && *p <= '9'; i++) p++;
  if (*p >= '0' && *p <= '9') return 0;
  if (*p == '.') {
    p++;
    for (int i = 0; i < 3 && *p >= '0' && *p <= '9'; i++) p++;
    if (*p >= '0' && *p <= '9') return 0;
  }
  size_t ml = 0;
  while (p[ml] == 'l' || p[ml] == 'h') ml++;
  if (ml > 2 || (ml == 2 && p[0] != p[1])) return 0;
  memcpy(lenmod, p, ml);
  lenmod[ml] = '\0';
  char conv = p[ml];
  if (!conv || !strchr("diouxXcfeEgGaAs", conv)) return 0;
  if (conv == 's' && (ml || strchr(pct, '.'))) return 0; /* %.Ns is not deferrable */
  if (conv == 'c' && ml) return 0;
  if (strchr("feEgGaA", conv) && (ml == 2 || p[0] == 'h')) return 0;
  return conv;
}

static size_t reference(char *out, size_t cap, const char *fmt, char conv, const char *lenmod,
                        const uint8_t *area) {
  int64_t i;
  double d;
  memcpy(&i, area, 8);
  memcpy(&d, area, 8);
  int r = -1;
  int is_long = lenmod[0] == 'l';
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  if (conv == 's') {
    uint32_t len;
    memcpy(&len, area, 4);
    char *str = malloc(len + 1);
    memcpy(str, area + 8, len);
    str[len] = '\0';
    if (strlen(str) != len) {
      free(str);
      return (size_t)-1; /* an embedded NUL: printf's %s would stop there, the renderer does not */
    }
    r = snprintf(out, cap, fmt, str);
    free(str);
  } else if (strchr("feEgGaA", conv)) {
    r = snprintf(out, cap, fmt, d);
  } else if (is_long) {
    if (conv == 'd' || conv == 'i')
      r = snprintf(out, cap, fmt, (long long)i);
    else
      r = snprintf(out, cap, fmt, (unsigned long long)i);
  } else if (conv == 'd' || conv == 'i' || conv == 'c') {
    r = snprintf(out, cap, fmt, (int)i);
  } else {
    r = snprintf(out, cap, fmt, (unsigned)i);
  }
#pragma GCC diagnostic pop
  CHECK(r >= 0);
  return (size_t)r < cap ? (size_t)r : cap - 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t small = 1 + data[0] % 128;
  int garbage = data[1] & 1, cut = data[1] & 2;
  const uint8_t *f = data + 2, *nul = memchr(f, 0, size - 2);
  size_t fl = nul ? (size_t)(nul - f) : size - 2;
  if (fl > MAX_FMT) fl = MAX_FMT;
  char fmt[MAX_FMT + 1];
  memcpy(fmt, f, fl);
  fmt[fl] = '\0';
  src_t s = {f + fl + (nul ? 1 : 0), data + size};
  if (s.p > s.end) s.p = s.end;

  polytel__fmt_sig_t sig;
  polytel__fmt_parse(fmt, &sig);
  CHECK(sig.fmt == fmt);
  CHECK(sig.n_args <= POLYTEL__MAX_FMT_ARGS);
  for (int i = 0; i < sig.n_args; i++)
    CHECK(sig.kinds[i] >= POLYTEL__ARG_INT && sig.kinds[i] <= POLYTEL__ARG_STR);
  CHECK(!sig.has_n || !sig.ok);
  if (sig.ints_only) {
    CHECK(sig.ok);
    for (int i = 0; i < sig.n_args; i++)
      CHECK(sig.kinds[i] == POLYTEL__ARG_INT || sig.kinds[i] == POLYTEL__ARG_LONG);
  }

  static uint8_t area[4096];
  size_t alen;
  if (garbage) {
    alen = (size_t)(s.end - s.p) < sizeof area ? (size_t)(s.end - s.p) : sizeof area;
    memcpy(area, s.p, alen);
  } else {
    alen = build_area(&sig, &s, area, sizeof area);
    if (cut && alen) alen = alen * 2 / 3;
  }

  static char big[BIG_CAP];
  char sm[129];
  size_t nb = polytel__fmt_render(big, BIG_CAP, fmt, area, alen);
  CHECK(nb < BIG_CAP && big[nb] == '\0');
  size_t ns = polytel__fmt_render(sm, small, fmt, area, alen);
  CHECK(ns < small && sm[ns] == '\0');
  if (!(ns <= nb && memcmp(sm, big, ns) == 0))
    fprintf(stderr, "fmt \"%s\": cap %zu gave \"%.*s\", cap %zu \"%.*s\"\n", fmt, small, (int)ns, sm, BIG_CAP,
            (int)(nb < 200 ? nb : 200), big);
  CHECK(ns <= nb && memcmp(sm, big, ns) == 0); /* a smaller buffer is a prefix, never different text */
  CHECK(polytel__fmt_render(sm, 0, fmt, area, alen) == 0);

  if (!strchr(fmt, '%')) CHECK(nb == strlen(fmt) && memcmp(big, fmt, nb) == 0);
  char lenmod[4];
  char conv = sig.ok && !garbage && !cut && sig.n_args == 1 ? simple_conversion(fmt, lenmod) : 0;
  if (conv) {
    static char ref[BIG_CAP];
    size_t nr = reference(ref, BIG_CAP, fmt, conv, lenmod, area);
    if (nr != (size_t)-1) {
      if (nr != nb || memcmp(ref, big, nb) != 0)
        fprintf(stderr, "fmt \"%s\": rendered \"%.*s\", snprintf \"%.*s\"\n", fmt, (int)nb, big, (int)nr,
                ref);
      CHECK(nr == nb && memcmp(ref, big, nb) == 0);
    }
  }
  return 0;
}
