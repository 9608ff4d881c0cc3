/* fmt.c — deferred printf: parse a format into argument kinds, render it later from captured args. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* One conversion: [start, end) of the spec in fmt, its kind, and how many '*' ints precede it. */
typedef struct conv_s {
  const char *start;
  size_t len;
  uint8_t kind;
  uint8_t stars;
  uint8_t bad; /* %n, %ls, %lc, precision on %s, unknown */
} conv_t;

/* Parse the spec at s (s[0] == '%'), s[1] != '%'. */
static const char *parse_conv(const char *s, conv_t *c) {
  const char *p = s + 1;
  c->start = s;
  c->stars = 0;
  c->bad = 0;
  int has_prec = 0;
  while (*p && strchr("-+ #0'", *p)) p++;
  if (*p == '*') {
    c->stars++;
    p++;
  } else
    while (*p >= '0' && *p <= '9') p++;
  if (*p == '.') {
    has_prec = 1;
    p++;
    if (*p == '*') {
      c->stars++;
      p++;
    } else
      while (*p >= '0' && *p <= '9') p++;
  }
  int lng = 0, ldbl = 0, wide = 0;
  for (;;) {
    if (*p == 'h') {
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
      if (wide || has_prec) c->bad = 1; /* %ls, or %.Ns of a possibly unterminated buffer */
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
    char spec[64];
    size_t sl = c.len < sizeof spec - 1 ? c.len : sizeof spec - 1;
    memcpy(spec, c.start, sl);
    spec[sl] = '\0';
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
    char *o = out + n;
    size_t room = cap - n;
    int r = 0;
    char last = spec[sl - 1];
    int is_long = strpbrk(spec, "ljztq") != NULL;
    int is_char = (last == 'c');
    /* The value is passed as the exact type the spec expects. */
#define EMIT(val)                                         \
  do {                                                    \
    if (c.stars == 2)                                     \
      r = snprintf(o, room, spec, star[0], star[1], val); \
    else if (c.stars == 1)                                \
      r = snprintf(o, room, spec, star[0], val);          \
    else                                                  \
      r = snprintf(o, room, spec, val);                   \
  } while (0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
    switch (c.kind) {
      case POLYTEL__ARG_INT:
        if (is_char)
          EMIT((int)a.i);
        else if (last == 'd' || last == 'i')
          EMIT((int)a.i);
        else
          EMIT((unsigned)a.i);
        break;
      case POLYTEL__ARG_LONG:
        (void)is_long;
        if (last == 'd' || last == 'i')
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
      case POLYTEL__ARG_STR: {
        /* Captured strings are not NUL-terminated in the block: print with an explicit length. */
        char sspec[80];
        size_t k = 0;
        memcpy(sspec, spec, sl - 1);
        k = sl - 1;
        if (c.stars) { /* width came from '*' */
          r = snprintf(o, room, "%*.*s", star[0], (int)a.len, a.str);
        } else {
          memcpy(sspec + k, ".*s", 4);
          r = snprintf(o, room, sspec, (int)a.len, a.str);
        }
        break;
      }
    }
#pragma GCC diagnostic pop
#undef EMIT
    n = advance(n, r, cap);
  }
  out[n] = '\0';
  return n;
}
