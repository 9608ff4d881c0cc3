/* console.c — the human sink: sanitized text or JSON lines, one write(2) each, plus polytel's own
 * diagnostics. */
#include "common/console.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Destination, format, threshold and colour packed in one word, so the hot
 * path's polytel__console_enabled() is a single relaxed load and a reader never
 * sees half of a reconfiguration.
 */
#define ST_LEVEL(s) ((s)&0xff)
#define ST_DEST(s) (((s) >> 8) & 3)
#define ST_FORMAT(s) (((s) >> 10) & 3)
#define ST_COLOR(s) (((s) >> 12) & 1)
#define ST_PACK(dest, format, level, color) \
  ((unsigned)(level) | ((unsigned)(dest) << 8) | ((unsigned)(format) << 10) | ((unsigned)(color) << 12))

static _Atomic unsigned console_state =
    ST_PACK(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_INFO, 0);
static _Atomic int console_fd_override = -1;
/* wasm: finished lines go to a JS function (console.info/warn/...) instead of a descriptor. */
static _Atomic(polytel__console_writer_fn) console_writer;

/* Longest slice of one string field (message, target, key, value) printed; the rest is marked. */
#define FIELD_MAX 16384
/* Lines up to this size are built on the stack; longer ones (many attributes) are allocated. */
#define STACK_LINE 8192

void polytel__console_configure(int dest, int format, int level, int color) {
  if (dest < POLYTEL_CONSOLE_STDERR || dest > POLYTEL_CONSOLE_OFF) dest = POLYTEL_CONSOLE_STDERR;
  if (format != POLYTEL_CONSOLE_FORMAT_JSON) format = POLYTEL_CONSOLE_FORMAT_TEXT;
  if (level < POLYTEL_LEVEL_TRACE) level = POLYTEL_LEVEL_TRACE;
  if (level > POLYTEL_LEVEL_OFF) level = POLYTEL_LEVEL_OFF;
  atomic_store_explicit(&console_state, ST_PACK(dest, format, level, color ? 1 : 0), memory_order_relaxed);
}

void polytel__console_set_fd(int fd) {
  atomic_store_explicit(&console_fd_override, fd, memory_order_relaxed);
}

static int passes(unsigned s, int level) {
  unsigned thr = ST_LEVEL(s);
  return ST_DEST(s) != POLYTEL_CONSOLE_OFF && thr != POLYTEL_LEVEL_OFF && level >= (int)thr;
}

int polytel__console_enabled(int level) {
  return passes(atomic_load_explicit(&console_state, memory_order_relaxed), level);
}

const char *polytel__level_name(int level) {
  /* OTel severity ranges: 1-4 TRACE, 5-8 DEBUG, ... 21-24 FATAL. */
#define POLYTEL__XX(name, value, text) #name,
  static const char *const names[] = {POLYTEL_LEVEL_MAP(POLYTEL__XX)};
#undef POLYTEL__XX
  if (level == POLYTEL_LEVEL_OFF) return "OFF";
  if (level < 1 || level > 24) return "UNKNOWN";
  return names[(level - 1) / 4];
}

static const char *level_color(int level) {
  static const char *const colors[] = {"\x1b[90m", "\x1b[34m", "\x1b[32m",
                                       "\x1b[33m", "\x1b[31m", "\x1b[1;31m"};
  if (level < 1 || level > 24) return "\x1b[0m";
  return colors[(level - 1) / 4];
}

/* ------------------------------------------------------------ escaping */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the byte starts no valid sequence. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0], lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0; /* stray continuation or overlong lead */
  if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (c == 0xE0) lo = 0xA0; /* overlong */
    if (c == 0xED) hi = 0x9F; /* surrogates */
    return (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
  }
  if (c < 0xF5) {
    if (c == 0xF0) lo = 0x90; /* overlong */
    if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    return (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) ? 4 : 0;
  }
  return 0;
}

enum { ESC_JSON = 1, ESC_QUOTE = 2 };

/*
 * Characters a terminal shows as nothing or that reorder what follows (the "Trojan Source" trick):
 * bidi embeddings, overrides, isolates and marks, zero-width characters, line/paragraph separators,
 * the BOM, the soft hyphen, interlinear annotations and the tag block.
 */
static int invisible(uint32_t cp) {
  return cp == 0xAD || cp == 0x61C || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF ||
         (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE0000 && cp <= 0xE007F);
}

static uint32_t decode_cp(const unsigned char *s, size_t k) {
  if (k == 2) return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
  if (k == 3) return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
         (s[3] & 0x3F);
}

static size_t put_u16(char *u, uint32_t v) {
  static const char hex[] = "0123456789abcdef";
  u[0] = '\\', u[1] = 'u';
  for (int i = 0; i < 4; i++) u[2 + i] = hex[(v >> (12 - 4 * i)) & 15];
  return 6;
}

/*
 * One input unit starting at s: writes its escaped form to u (at most 12 bytes)
 * and returns how many input bytes it covers; *ulen gets the output length.
 */
static size_t escape_unit(const unsigned char *s, size_t n, int flags, char *u, size_t *ulen) {
  static const char hex[] = "0123456789abcdef";
  unsigned c = s[0];
  if (c < 0x80) {
    const char *simple = NULL;
    switch (c) {
      case '\n':
        simple = "\\n";
        break;
      case '\r':
        simple = "\\r";
        break;
      case '\t':
        simple = "\\t";
        break;
      case '\\':
        simple = "\\\\";
        break;
      case '"':
        if (flags & (ESC_JSON | ESC_QUOTE)) simple = "\\\"";
        break;
      default:
        break;
    }
    if (simple) {
      u[0] = simple[0], u[1] = simple[1], *ulen = 2;
    } else if (c < 0x20 || c == 0x7f) {
      if (flags & ESC_JSON) {
        memcpy(u, "\\u00", 4), u[4] = hex[c >> 4], u[5] = hex[c & 15], *ulen = 6;
      } else {
        u[0] = '\\', u[1] = 'x', u[2] = hex[c >> 4], u[3] = hex[c & 15], *ulen = 4;
      }
    } else {
      u[0] = (char)c, *ulen = 1;
    }
    return 1;
  }
  size_t k = utf8_seq(s, n);
  if (k == 0) {
    /* JSON cannot carry a raw byte: the replacement character, as other JSON encoders do. */
    if (flags & ESC_JSON) {
      memcpy(u, "\\ufffd", 6), *ulen = 6;
    } else {
      u[0] = '\\', u[1] = 'x', u[2] = hex[c >> 4], u[3] = hex[c & 15], *ulen = 4;
    }
    return 1;
  }
  if (k == 2 && c == 0xC2 && s[1] < 0xA0) { /* C1 control (U+0080..U+009F), e.g. the 8-bit CSI */
    memcpy(u, "\\u00", 4), u[4] = hex[s[1] >> 4], u[5] = hex[s[1] & 15], *ulen = 6;
    return 2;
  }
  /* Only these lead bytes start an invisible character: the common case costs one comparison chain. */
  if (c == 0xC2 || c == 0xD8 || c == 0xE1 || c == 0xE2 || c == 0xEF || c == 0xF3) {
    uint32_t cp = decode_cp(s, k);
    if (invisible(cp)) {
      if (cp < 0x10000) {
        *ulen = put_u16(u, cp);
      } else if (flags & ESC_JSON) {
        uint32_t v = cp - 0x10000;
        *ulen = put_u16(u, 0xD800 + (v >> 10));
        *ulen += put_u16(u + 6, 0xDC00 + (v & 0x3FF));
      } else {
        u[0] = '\\', u[1] = 'U';
        for (int i = 0; i < 8; i++) u[2 + i] = hex[(cp >> (28 - 4 * i)) & 15];
        *ulen = 10;
      }
      return k;
    }
  }
  memcpy(u, s, k), *ulen = k;
  return k;
}

/*
 * Escape in[0..len) into out (NULL: count only), never splitting an escape.
 * Stops before exceeding cap; *used gets the input bytes consumed.
 */
static size_t escape(char *out, size_t cap, const char *in, size_t len, int flags, size_t *used) {
  const unsigned char *s = (const unsigned char *)in;
  size_t i = 0, w = 0;
  char u[16];
  while (i < len) {
    size_t ulen, k = escape_unit(s + i, len - i, flags, u, &ulen);
    if (w + ulen > cap) break;
    if (out) memcpy(out + w, u, ulen);
    w += ulen;
    i += k;
  }
  if (used) *used = i;
  return w;
}

size_t polytel__sanitize(char *out, size_t cap, const char *in, size_t len, int json) {
  if (!out || cap == 0) return 0;
  if (!in) len = 0;
  size_t w = escape(out, cap - 1, in, len, json ? ESC_JSON : 0, NULL);
  out[w] = '\0';
  return w;
}

/* -------------------------------------------------------------- lines */

/* A line under construction; buf == NULL only measures (first pass). */
typedef struct line_s {
  char *buf;
  size_t n;
} line_t;

static void put(line_t *L, const char *s, size_t n) {
  if (L->buf) memcpy(L->buf + L->n, s, n);
  L->n += n;
}

static void puts_(line_t *L, const char *s) {
  put(L, s, strlen(s));
}

/* The cut point of a field: FIELD_MAX bytes, moved back to a UTF-8 sequence start. */
static size_t field_cut(const char *s, size_t len) {
  if (len <= FIELD_MAX) return len;
  size_t cut = FIELD_MAX;
  for (int back = 0; back < 3 && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80; back++) cut--;
  return cut;
}

/* An escaped string field, cut at FIELD_MAX with the marker `…[truncated N bytes]` inside it. */
static void put_field(line_t *L, const char *s, size_t len, int flags) {
  if (!s) len = 0;
  size_t cut = field_cut(s, len);
  L->n += escape(L->buf ? L->buf + L->n : NULL, (size_t)-1 / 2, s, cut, flags, NULL);
  if (cut < len) {
    char m[64];
    int k = snprintf(m, sizeof m, "\xe2\x80\xa6[truncated %zu bytes]", len - cut);
    put(L, m, (size_t)k);
  }
}

/* A text-mode value needs quotes when it is empty, cut, or holds a space, a quote or '='. */
static int needs_quotes(const char *s, size_t len) {
  if (!s || len == 0 || len > FIELD_MAX) return 1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == ' ' || s[i] == '"' || s[i] == '=') return 1;
  }
  return 0;
}

static void put_double(line_t *L, double d, int json) {
  char b[40];
  if (isnan(d) || isinf(d)) {
    /* JSON has no NaN/Infinity literals: strings, as OTLP/JSON does. */
    const char *t = isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity");
    if (json) put(L, "\"", 1);
    puts_(L, t);
    if (json) put(L, "\"", 1);
    return;
  }
  /* Shortest of %.15g / %.17g that reads back exactly. */
  snprintf(b, sizeof b, "%.15g", d);
  if (strtod(b, NULL) != d) snprintf(b, sizeof b, "%.17g", d);
  puts_(L, b);
}

/* An array value: [a,b,...] (strings quoted, JSON-escaped in JSON), at most ARRAY_SHOWN elements shown. */
#define ARRAY_SHOWN 64
static void put_array(line_t *L, const polytel_attr_t *a, int json) {
  size_t n = a->value.arr.ptr ? a->value.arr.len : 0, shown = n < ARRAY_SHOWN ? n : ARRAY_SHOWN;
  char b[32];
  put(L, "[", 1);
  for (size_t i = 0; i < shown; i++) {
    if (i) put(L, ",", 1);
    switch (a->type) {
      case POLYTEL_ATTR_STRING_ARRAY: {
        const polytel_str_t *e = (const polytel_str_t *)a->value.arr.ptr + i;
        put(L, "\"", 1);
        put_field(L, e->ptr, e->ptr ? e->len : 0, json ? ESC_JSON : ESC_QUOTE);
        put(L, "\"", 1);
        break;
      }
      case POLYTEL_ATTR_INT_ARRAY:
        put(L, b, (size_t)snprintf(b, sizeof b, "%lld", (long long)((const int64_t *)a->value.arr.ptr)[i]));
        break;
      case POLYTEL_ATTR_DOUBLE_ARRAY:
        put_double(L, ((const double *)a->value.arr.ptr)[i], json);
        break;
      default:
        puts_(L, ((const int *)a->value.arr.ptr)[i] ? "true" : "false");
    }
  }
  if (shown < n) {
    int k = json ? snprintf(b, sizeof b, ",\"\xe2\x80\xa6%zu more\"", n - shown)
                 : snprintf(b, sizeof b, ",\xe2\x80\xa6%zu more", n - shown);
    put(L, b, (size_t)k);
  }
  put(L, "]", 1);
}

static void put_time(line_t *L, uint64_t time_ns) {
  char b[48];
  time_t secs = (time_t)(time_ns / 1000000000u);
  unsigned usec = (unsigned)((time_ns % 1000000000u) / 1000u);
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) memset(&tm, 0, sizeof tm);
  int k = snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
  put(L, b, k > 0 && (size_t)k < sizeof b ? (size_t)k : 0);
}

/* One attribute's value: as text (a string quoted when it needs it) or as JSON. */
static void put_value(line_t *L, const polytel_attr_t *a, int json) {
  char b[32];
  switch (a->type) {
    case POLYTEL_ATTR_STRING: {
      const char *p = a->value.str.ptr;
      size_t len = p ? a->value.str.len : 0;
      if (json || needs_quotes(p, len)) {
        put(L, "\"", 1);
        put_field(L, p, len, json ? ESC_JSON : ESC_QUOTE);
        put(L, "\"", 1);
      } else {
        put_field(L, p, len, 0);
      }
      break;
    }
    case POLYTEL_ATTR_INT:
      put(L, b, (size_t)snprintf(b, sizeof b, "%lld", (long long)a->value.i));
      break;
    case POLYTEL_ATTR_DOUBLE:
      put_double(L, a->value.d, json);
      break;
    case POLYTEL_ATTR_BOOL:
      puts_(L, a->value.b ? "true" : "false");
      break;
    case POLYTEL_ATTR_STRING_ARRAY:
    case POLYTEL_ATTR_INT_ARRAY:
    case POLYTEL_ATTR_DOUBLE_ARRAY:
    case POLYTEL_ATTR_BOOL_ARRAY:
      put_array(L, a, json);
      break;
    default:
      puts_(L, json ? "null" : "?");
      break;
  }
}

static void build_text(line_t *L, unsigned st, int level, uint64_t time_ns, const char *target,
                       size_t target_len, const char *msg, size_t msg_len, const polytel_attr_t *attrs,
                       size_t n_attrs) {
  put_time(L, time_ns);
  put(L, " ", 1);
  if (ST_COLOR(st)) {
    puts_(L, level_color(level));
    puts_(L, polytel__level_name(level));
    puts_(L, "\x1b[0m");
  } else {
    puts_(L, polytel__level_name(level));
  }
  put(L, " ", 1);
  if (target && target_len) {
    put_field(L, target, target_len, 0);
    put(L, ": ", 2);
  }
  put_field(L, msg, msg_len, 0);
  for (size_t i = 0; i < n_attrs; i++) {
    const polytel_attr_t *a = &attrs[i];
    if (!a->key) continue;
    put(L, " ", 1);
    put_field(L, a->key, strlen(a->key), 0);
    put(L, "=", 1);
    put_value(L, a, 0);
  }
  put(L, "\n", 1);
}

static void build_json(line_t *L, int level, uint64_t time_ns, const char *target, size_t target_len,
                       const char *msg, size_t msg_len, const polytel_attr_t *attrs, size_t n_attrs) {
  puts_(L, "{\"time\":\"");
  put_time(L, time_ns);
  puts_(L, "\",\"level\":\"");
  puts_(L, polytel__level_name(level));
  puts_(L, "\",\"target\":\"");
  put_field(L, target, target ? target_len : 0, ESC_JSON);
  puts_(L, "\",\"message\":\"");
  put_field(L, msg, msg ? msg_len : 0, ESC_JSON);
  puts_(L, "\",\"attributes\":{");
  int first = 1;
  for (size_t i = 0; i < n_attrs; i++) {
    const polytel_attr_t *a = &attrs[i];
    if (!a->key) continue;
    if (!first) put(L, ",", 1);
    first = 0;
    put(L, "\"", 1);
    put_field(L, a->key, strlen(a->key), ESC_JSON);
    put(L, "\":", 2);
    put_value(L, a, 1);
  }
  puts_(L, "}}\n");
}

static void build(line_t *L, unsigned st, int level, uint64_t time_ns, const char *target, size_t target_len,
                  const char *msg, size_t msg_len, const polytel_attr_t *attrs, size_t n_attrs) {
  if (ST_FORMAT(st) == POLYTEL_CONSOLE_FORMAT_JSON) {
    build_json(L, level, time_ns, target, target_len, msg, msg_len, attrs, n_attrs);
  } else {
    build_text(L, st, level, time_ns, target, target_len, msg, msg_len, attrs, n_attrs);
  }
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return; /* EPIPE, EAGAIN, EBADF: the console is best effort, never a reason to block or crash */
    }
    p += k;
    n -= (size_t)k;
  }
}

static uint64_t wall_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void polytel__console_emit(int level, uint64_t time_ns, const char *target, size_t target_len,
                           const char *msg, size_t msg_len, const polytel_attr_t *attrs, size_t n_attrs) {
  unsigned st = atomic_load_explicit(&console_state, memory_order_relaxed);
  if (!passes(st, level)) return;
  if (!attrs) n_attrs = 0;
  if (time_ns == 0) time_ns = wall_now_ns();

  line_t L = {NULL, 0};
  build(&L, st, level, time_ns, target, target_len, msg, msg_len, attrs, n_attrs);
  size_t need = L.n;
  char stack[STACK_LINE];
  char *buf = need <= sizeof stack ? stack : malloc(need);
  if (!buf) return; /* out of memory: lose the console line, not the process */
  L.buf = buf, L.n = 0;
  build(&L, st, level, time_ns, target, target_len, msg, msg_len, attrs, n_attrs);

  polytel__console_writer_fn writer = atomic_load_explicit(&console_writer, memory_order_acquire);
  int fd = atomic_load_explicit(&console_fd_override, memory_order_relaxed);
  if (writer && fd < 0) {
    writer(level, buf, L.n && buf[L.n - 1] == '\n' ? L.n - 1 : L.n);
  } else {
    if (fd < 0) fd = ST_DEST(st) == POLYTEL_CONSOLE_STDOUT ? STDOUT_FILENO : STDERR_FILENO;
    write_all(fd, buf, L.n);
  }
  if (buf != stack) free(buf);
}

void polytel__console_set_writer(polytel__console_writer_fn fn) {
  atomic_store_explicit(&console_writer, fn, memory_order_release);
}

/* Start of the UTF-8 character holding byte `cut` (never more than 3 bytes back). */
static size_t char_start(const char *s, size_t cut) {
  for (int back = 0; back < 3 && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80; back++) cut--;
  return cut;
}

void polytel__diag(int level, const char *fmt, ...) {
  if (!polytel__console_enabled(level)) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  size_t len = (size_t)k;
  if (len >= sizeof msg) {
    /* Echoed values are bounded (POLYTEL__SHOW_MAX), so this is a bug somewhere: never hide it. */
    char mark[48];
    size_t keep = char_start(msg, sizeof msg - sizeof mark);
    int mk = snprintf(mark, sizeof mark, "\xe2\x80\xa6[truncated %zu bytes]", len - keep);
    memcpy(msg + keep, mark, (size_t)mk);
    len = keep + (size_t)mk;
  }
  polytel__console_emit(level, 0, "polytel", 7, msg, len, NULL, 0);
}

const char *polytel__show(char *buf, size_t cap, const char *s, size_t len) {
  if (!buf || cap == 0) return "";
  if (!s) len = 0;
  const char *more = "";
  if (len > POLYTEL__SHOW_MAX) {
    len = char_start(s, POLYTEL__SHOW_MAX);
    more = "\xe2\x80\xa6";
  }
  snprintf(buf, cap, "%.*s%s", (int)len, s ? s : "", more);
  return buf;
}

const char *polytel__show_path(char *buf, size_t cap, const char *path) {
  if (!buf || cap == 0) return "";
  if (!path) path = "";
  size_t len = strlen(path);
  if (len <= POLYTEL__SHOW_MAX) return polytel__show(buf, cap, path, len);
  size_t from = len - POLYTEL__SHOW_MAX;
  while (from < len && ((unsigned char)path[from] & 0xC0) == 0x80) from++; /* a character boundary */
  snprintf(buf, cap, "\xe2\x80\xa6%s", path + from);
  return buf;
}

const char *polytel__show_url(char *buf, size_t cap, const char *url) {
  if (!buf || cap == 0) return "";
  if (!url) url = "";
  char tmp[POLYTEL__SHOW_MAX * 2 + 16];
  size_t n = 0, len = strcspn(url, "?#");
  /* The authority: after "scheme://", or from the start when a bad value has no scheme ("user:pw@host"). */
  const char *sep = strstr(url, "://");
  size_t a = 0;
  if (sep && (size_t)(sep - url) < len && !memchr(url, '/', (size_t)(sep - url))) a = (size_t)(sep - url) + 3;
  size_t auth_end = a + strcspn(url + a, "/?#");
  size_t from = 0;
  int userinfo = 0;
  for (size_t i = a; i < auth_end; i++) {
    /* userinfo ends at the last '@', raw or percent-encoded (curl would decode "%40") */
    if (url[i] == '@') from = i, userinfo = 1;
    if (url[i] == '%' && i + 2 < auth_end && url[i + 1] == '4' && url[i + 2] == '0')
      from = i + 2, userinfo = 1;
  }
  if (userinfo) {
    memcpy(tmp, url, a);
    memcpy(tmp + a, "\xe2\x80\xa6@", 4);
    n = a + 4;
    from++;
  }
  /* Enough of the rest to reach the cut (the cut applies to what is shown, marks included). */
  size_t take = len - from;
  if (take > sizeof tmp - n - 1) take = sizeof tmp - n - 1;
  memcpy(tmp + n, url + from, take);
  n += take;
  if (n > POLYTEL__SHOW_MAX) return polytel__show(buf, cap, tmp, n);
  if (url[len]) {
    /* "?…" or "#…": the query names API keys and tokens often enough */
    tmp[n++] = url[len];
    memcpy(tmp + n, "\xe2\x80\xa6", 3);
    n += 3;
  }
  snprintf(buf, cap, "%.*s", (int)n, tmp);
  return buf;
}

int polytel__utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < len;) {
    size_t k = utf8_seq(p + i, len - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}
