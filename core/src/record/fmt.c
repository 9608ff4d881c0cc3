/* fmt.c — deferred printf: parse a format into argument kinds, render it later from captured args. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "record/record.h"

enum { FL_MINUS = 1, FL_PLUS = 2, FL_SPACE = 4, FL_HASH = 8, FL_ZERO = 16, FL_QUOTE = 32 };

/*
 * One conversion: [start, start + len) of the spec in fmt, its kind, how many '*' ints precede it, and its
 * parts, so rendering rebuilds a clean spec instead of replaying the user's bytes.
 */
typedef struct conv_s {
  const char *start;
  size_t len;
  uint8_t kind;
  uint8_t stars;
  uint8_t bad; /* %n, %ls, %lc, precision on %s, unknown */
  uint8_t flags;
  uint8_t width_star, prec_star, has_prec;
  uint8_t hs;      /* 'h' count for integer conversions (h, hh) */
  int width, prec; /* literal values, saturated */
  char conv;
} conv_t;

/* Digits at *p, saturated at INT_MAX (a literal width is the developer's, but still bounded). */
static int number(const char **p) {
  int v = 0;
  while (**p >= '0' && **p <= '9') {
    int d = **p - '0';
    v = v > (INT_MAX - d) / 10 ? INT_MAX : v * 10 + d;
    (*p)++;
  }
  return v;
}

/* Parse the spec at s (s[0] == '%'), s[1] != '%'. */
static const char *parse_conv(const char *s, conv_t *c) {
  const char *p = s + 1;
  memset(c, 0, sizeof *c);
  c->start = s;
  for (;; p++) {
    const char *f = *p ? strchr("-+ #0'", *p) : NULL;
    if (!f) break;
    c->flags |= (uint8_t)(1u << (f - "-+ #0'"));
  }
  if (*p == '*') {
    c->stars++;
    c->width_star = 1;
    p++;
  } else {
    c->width = number(&p);
  }
  if (*p == '.') {
    c->has_prec = 1;
    p++;
    if (*p == '*') {
      c->stars++;
      c->prec_star = 1;
      p++;
    } else {
      c->prec = number(&p);
    }
  }
  int lng = 0, ldbl = 0, wide = 0;
  for (;;) {
    if (*p == 'h') {
      if (c->hs < 2) c->hs++;
      p++;
    } else if (*p == 'l') {
      lng = 1;
      wide = 1;
      p++;
    } else if (*p == 'j' || *p == 'z' || *p == 't' || *p == 'q') {
      lng = 1;
      p++;
    } else if (*p == 'L') {
      ldbl = 1;
      p++;
    } else
      break;
  }
  c->conv = *p;
  switch (*p) {
    case 'd':
    case 'i':
    case 'o':
    case 'u':
    case 'x':
    case 'X':
      c->kind = lng ? POLYTEL__ARG_LONG : POLYTEL__ARG_INT;
      break;
    case 'c':
      c->kind = POLYTEL__ARG_INT;
      if (wide) c->bad = 1;
      break;
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
      c->kind = ldbl ? POLYTEL__ARG_LDOUBLE : POLYTEL__ARG_DOUBLE;
      break;
    case 'p':
      c->kind = POLYTEL__ARG_PTR;
      break;
    case 's':
      c->kind = POLYTEL__ARG_STR;
      if (wide || c->has_prec) c->bad = 1; /* %ls, or %.Ns of a possibly unterminated buffer */
      break;
    case 'n':
      c->kind = 0;
      c->bad = 2;
      break;
    default:
      c->kind = 0;
      c->bad = 1;
      return *p ? p + 1 : p;
  }
  p++;
  c->len = (size_t)(p - s);
  return p;
}

void polytel__fmt_parse(const char *fmt, polytel__fmt_sig_t *sig) {
  sig->fmt = fmt;
  sig->ok = 1;
  sig->n_args = 0;
  sig->has_n = 0;
  sig->ints_only = 0;
  const char *p = fmt;
  while ((p = strchr(p, '%')) != NULL) {
    if (p[1] == '%') {
      p += 2;
      continue;
    }
    if (p[1] == '\0') break;
    conv_t c;
    p = parse_conv(p, &c);
    if (c.bad == 2) sig->has_n = 1;
    if (c.bad) {
      sig->ok = 0;
      continue;
    }
    if (sig->n_args + c.stars + 1 > POLYTEL__MAX_FMT_ARGS) {
      sig->ok = 0;
      continue;
    }
    for (int i = 0; i < c.stars; i++) sig->kinds[sig->n_args++] = POLYTEL__ARG_INT;
    sig->kinds[sig->n_args++] = c.kind;
  }
  sig->ints_only = sig->ok;
  for (int i = 0; i < sig->n_args; i++)
    if (sig->kinds[i] != POLYTEL__ARG_INT && sig->kinds[i] != POLYTEL__ARG_LONG) sig->ints_only = 0;
}

/* Reads the captured argument of `kind` at *pp. */
typedef struct argv_s {
  int64_t i;
  double d;
  long double ld;
  const void *ptr;
  const char *str;
  uint32_t len;
} argv_t;

static int read_arg(const uint8_t **pp, const uint8_t *end, uint8_t kind, argv_t *a) {
  const uint8_t *p = *pp;
  size_t need = (kind == POLYTEL__ARG_LDOUBLE) ? 16 : 8;
  if ((size_t)(end - p) < need) return 0;
  switch (kind) {
    case POLYTEL__ARG_INT:
    case POLYTEL__ARG_LONG:
      memcpy(&a->i, p, 8);
      break;
    case POLYTEL__ARG_DOUBLE:
      memcpy(&a->d, p, 8);
      break;
    case POLYTEL__ARG_LDOUBLE:
      memcpy(&a->ld, p, sizeof(long double) < 16 ? sizeof(long double) : 16);
      break;
    case POLYTEL__ARG_PTR:
      memcpy(&a->ptr, p, sizeof(void *));
      break;
    case POLYTEL__ARG_STR: {
      uint32_t len;
      memcpy(&len, p, 4);
      if ((size_t)(end - p) < 8 + (size_t)len) return 0;
      a->str = (const char *)p + 8;
      a->len = len;
      need = 8 + POLYTEL__ALIGN8(len);
      if ((size_t)(end - p) < need) need = (size_t)(end - p);
      break;
    }
    default:
      return 0;
  }
  *pp = p + need;
  return 1;
}

static size_t put(char *out, size_t cap, size_t n, const char *s, size_t len) {
  if (n + 1 >= cap) return n;
  if (len > cap - 1 - n) len = cap - 1 - n;
  memcpy(out + n, s, len);
  return n + len;
}

/* snprintf's return may exceed what fitted; keep n within the buffer. */
static size_t advance(size_t n, int r, size_t cap) {
  if (r < 0) return n;
  size_t m = n + (size_t)r;
  return m >= cap ? cap - 1 : m;
}

/*
 * Widths and precisions are clamped to FMT_LIMIT: a width or precision of 2^31 from an argument would
 * otherwise cost the consumer seconds and gigabytes inside printf. The limit is a constant, larger than
 * any buffer rendered into (64 KiB), so output is the same at every capacity; past it the text differs
 * from printf's only in how much padding or how many digits follow, none of which would fit anyway.
 */
#define FMT_LIMIT (1 << 17)

static int clamp(long long v) {
  return (int)(v > FMT_LIMIT ? FMT_LIMIT : v < -FMT_LIMIT ? -FMT_LIMIT : v);
}

size_t polytel__fmt_render(char *out, size_t cap, const char *fmt, const uint8_t *args, size_t args_len) {
  if (cap == 0) return 0;
  size_t n = 0;
  const uint8_t *ap = args, *aend = args + args_len;
  const char *p = fmt;
  while (*p && n + 1 < cap) {
    const char *pct = strchr(p, '%');
    if (!pct) {
      n = put(out, cap, n, p, strlen(p));
      break;
    }
    n = put(out, cap, n, p, (size_t)(pct - p));
    if (pct[1] == '%') {
      n = put(out, cap, n, "%", 1);
      p = pct + 2;
      continue;
    }
    if (pct[1] == '\0') {
      n = put(out, cap, n, "%", 1);
      break;
    }
    conv_t c;
    p = parse_conv(pct, &c);
    if (c.bad) { /* never reached for recorded events; kept literal for safety */
      n = put(out, cap, n, c.start, (size_t)(p - c.start));
      continue;
    }
    int star[2] = {0, 0};
    argv_t a;
    int okargs = 1;
    for (int i = 0; i < c.stars; i++) {
      if (!read_arg(&ap, aend, POLYTEL__ARG_INT, &a)) okargs = 0;
      star[i] = (int)a.i;
    }
    if (!okargs || !read_arg(&ap, aend, c.kind, &a)) {
      n = put(out, cap, n, "<?>", 3);
      continue;
    }
    int si = 0;
    long long width = c.width_star ? star[si++] : c.width;
    long long prec = !c.has_prec ? -1 : c.prec_star ? star[si] : c.prec;
    int w = clamp(width), pr = prec < 0 ? -1 : clamp(prec);
    /* The spec is rebuilt: flags that mean something for this conversion, '*' width and precision (always
     * clamped), and the length modifier that matches the value passed, so the type is always exact. */
    char conv = c.conv, spec[24];
    size_t k = 0;
    int integer = strchr("diouxX", conv) != NULL, floating = strchr("eEfFgGaA", conv) != NULL;
    unsigned fl = c.flags;
    if (!integer && !floating) fl &= FL_MINUS; /* c, s, p: only '-' is defined */
    if (conv == 'd' || conv == 'i' || conv == 'u') fl &= (unsigned)~FL_HASH;
    if (strchr("oxX", conv)) fl &= (unsigned)~(FL_PLUS | FL_SPACE | FL_QUOTE);
    if (strchr("eEaA", conv)) fl &= (unsigned)~FL_QUOTE;
    spec[k++] = '%';
    for (int b = 0; b < 6; b++)
      if (fl & (1u << b)) spec[k++] = "-+ #0'"[b];
    spec[k++] = '*';
    int with_prec = conv != 'c' && conv != 'p';
    if (with_prec) spec[k++] = '.', spec[k++] = '*';
    if (c.kind == POLYTEL__ARG_INT && conv != 'c')
      for (int h = 0; h < c.hs; h++) spec[k++] = 'h';
    if (c.kind == POLYTEL__ARG_LONG) spec[k++] = 'l', spec[k++] = 'l';
    if (c.kind == POLYTEL__ARG_LDOUBLE) spec[k++] = 'L';
    spec[k++] = conv;
    spec[k] = '\0';
    char *o = out + n;
    size_t room = cap - n;
    int r = 0;
    int is_signed = conv == 'd' || conv == 'i';
#define EMIT(val)                              \
  do {                                         \
    if (with_prec)                             \
      r = snprintf(o, room, spec, w, pr, val); \
    else                                       \
      r = snprintf(o, room, spec, w, val);     \
  } while (0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
    switch (c.kind) {
      case POLYTEL__ARG_INT:
        if (is_signed || conv == 'c')
          EMIT((int)a.i);
        else
          EMIT((unsigned)a.i);
        break;
      case POLYTEL__ARG_LONG:
        if (is_signed)
          EMIT((long long)a.i);
        else
          EMIT((unsigned long long)a.i);
        break;
      case POLYTEL__ARG_DOUBLE:
        EMIT(a.d);
        break;
      case POLYTEL__ARG_LDOUBLE:
        EMIT(a.ld);
        break;
      case POLYTEL__ARG_PTR:
        EMIT(a.ptr);
        break;
      case POLYTEL__ARG_STR:
        /* Captured strings are not NUL-terminated in the block: the precision is their length. */
        pr = (int)a.len;
        EMIT(a.str);
        break;
    }
#pragma GCC diagnostic pop
#undef EMIT
    n = advance(n, r, cap);
  }
  out[n] = '\0';
  return n;
}
