/* fuzz_console.c — libFuzzer target for console sanitization: records from fuzz bytes, printed as text and
 * JSON into a memfd; checks exactly one clean line, valid JSON, lossless escaping (the text message
 * unescapes back to the input bytes, the JSON message to the input with U+FFFD for invalid UTF-8), and that
 * polytel__sanitize never splits an escape.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/console.h"

#define FIELD_MAX 16384
#define T0 1795320156123456789ull /* 2026-11-22T04:02:36.123456Z */

/* ------------------------------------------------------------ independent UTF-8 and JSON checks */

static size_t seq(const unsigned char *s, size_t n) {
  uint32_t cp;
  size_t k;
  if (s[0] < 0x80) return 1;
  if ((s[0] & 0xE0) == 0xC0)
    k = 2, cp = s[0] & 0x1F;
  else if ((s[0] & 0xF0) == 0xE0)
    k = 3, cp = s[0] & 0x0F;
  else if ((s[0] & 0xF8) == 0xF0)
    k = 4, cp = s[0] & 0x07;
  else
    return 0;
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return k;
}

static uint32_t cp_at(const unsigned char *p, size_t k) {
  static const unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  uint32_t cp = p[0] & lead_mask[k];
  for (size_t i = 1; i < k; i++) cp = cp << 6 | (p[i] & 0x3F);
  return cp;
}

/* Bidi controls and invisible format characters (an independent list: docs/configuration.md). */
static int invisible_cp(uint32_t cp) {
  static const uint32_t ranges[][2] = {{0xAD, 0xAD},     {0x61C, 0x61C},   {0x180E, 0x180E},
                                       {0x200B, 0x200F}, {0x2028, 0x202E}, {0x2060, 0x206F},
                                       {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB}, {0xE0000, 0xE007F}};
  for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
    if (cp >= ranges[i][0] && cp <= ranges[i][1]) return 1;
  return 0;
}

static void check_clean(const char *s, size_t n, int allow_esc) {
  for (size_t i = 0; i < n;) {
    const unsigned char *p = (const unsigned char *)s + i;
    size_t k = seq(p, n - i);
    CHECK(k > 0);
    if (k == 1) CHECK(p[0] >= 0x20 ? p[0] != 0x7f : (allow_esc && p[0] == 0x1b));
    if (k == 2) CHECK(!(p[0] == 0xC2 && p[1] < 0xA0));
    if (k > 1) CHECK(!invisible_cp(cp_at(p, k))); /* nothing that hides or reorders text reaches a terminal */
    i += k;
  }
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void put_utf8(char *out, size_t *w, uint32_t cp) {
  if (cp < 0x80) {
    out[(*w)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*w)++] = (char)(0xC0 | cp >> 6), out[(*w)++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out[(*w)++] = (char)(0xE0 | cp >> 12), out[(*w)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*w)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    out[(*w)++] = (char)(0xF0 | cp >> 18), out[(*w)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[(*w)++] = (char)(0x80 | ((cp >> 6) & 0x3F)), out[(*w)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static uint32_t hex4(const char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexv(p[i]);
    CHECK(h >= 0);
    v = v << 4 | (uint32_t)h;
  }
  return v;
}

typedef struct {
  const char *p, *e;
  char *msg; /* decoded "message" (top level) */
  size_t msg_len;
  int depth;
} js_t;

static void ws(js_t *j) {
  while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')) j->p++;
}

/* A JSON string at j->p; decoded into out (capacity >= raw length) when out != NULL. */
static void jstring(js_t *j, char *out, size_t *outlen) {
  size_t w = 0;
  CHECK(j->p < j->e && *j->p == '"');
  j->p++;
  for (;;) {
    CHECK(j->p < j->e);
    unsigned char c = (unsigned char)*j->p++;
    if (c == '"') break;
    CHECK(c >= 0x20);
    if (c != '\\') {
      if (out) out[w++] = (char)c;
      continue;
    }
    CHECK(j->p < j->e);
    char esc = *j->p++;
    uint32_t cp = 0;
    switch (esc) {
      case '"':
        cp = '"';
        break;
      case '\\':
        cp = '\\';
        break;
      case '/':
        cp = '/';
        break;
      case 'b':
        cp = 8;
        break;
      case 'f':
        cp = 12;
        break;
      case 'n':
        cp = 10;
        break;
      case 'r':
        cp = 13;
        break;
      case 't':
        cp = 9;
        break;
      case 'u':
        CHECK(j->e - j->p >= 4);
        cp = hex4(j->p);
        j->p += 4;
        CHECK(cp < 0xDC00 || cp > 0xDFFF); /* never a lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          /* a pair, only for an escaped invisible character past the BMP (the tag block) */
          CHECK(j->e - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u');
          uint32_t lo = hex4(j->p + 2);
          CHECK(lo >= 0xDC00 && lo <= 0xDFFF);
          j->p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          CHECK(invisible_cp(cp));
        }
        break;
      default:
        CHECK(0);
    }
    if (out) put_utf8(out, &w, cp);
  }
  if (outlen) *outlen = w;
}

static void jvalue(js_t *j, int top);

static void jobject(js_t *j, int top) {
  CHECK(*j->p == '{');
  j->p++;
  CHECK(++j->depth < 8);
  ws(j);
  if (j->p < j->e && *j->p == '}') {
    j->p++;
    j->depth--;
    return;
  }
  for (;;) {
    ws(j);
    char key[32];
    size_t kl = 0;
    const char *kstart = j->p;
    jstring(j, NULL, NULL);
    kl = (size_t)(j->p - kstart);
    snprintf(key, sizeof key, "%.*s", (int)(kl < 31 ? kl : 31), kstart);
    ws(j);
    CHECK(j->p < j->e && *j->p == ':');
    j->p++;
    ws(j);
    if (top && strcmp(key, "\"message\"") == 0) {
      j->msg = malloc((size_t)(j->e - j->p) + 1); /* decoding never grows a JSON string */
      jstring(j, j->msg, &j->msg_len);
    } else {
      jvalue(j, 0);
    }
    ws(j);
    CHECK(j->p < j->e);
    if (*j->p == ',') {
      j->p++;
      continue;
    }
    CHECK(*j->p == '}');
    j->p++;
    break;
  }
  j->depth--;
}

static void jvalue(js_t *j, int top) {
  ws(j);
  CHECK(j->p < j->e);
  char c = *j->p;
  if (c == '{') return jobject(j, top);
  if (c == '"') return jstring(j, NULL, NULL);
  static const char *const lits[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(lits[i]);
    if ((size_t)(j->e - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
      j->p += n;
      return;
    }
  }
  /* number */
  const char *s = j->p;
  if (*j->p == '-') j->p++;
  CHECK(j->p < j->e && *j->p >= '0' && *j->p <= '9');
  while (j->p < j->e && strchr("0123456789.eE+-", *j->p)) j->p++;
  char tmp[64];
  size_t n = (size_t)(j->p - s);
  CHECK(n < sizeof tmp);
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *end;
  strtod(tmp, &end);
  CHECK(*end == '\0');
}

/* Text-mode escapes back to bytes; aborts on anything the console would not have written. */
static size_t text_unescape(const char *s, size_t n, char *out) {
  size_t w = 0;
  for (size_t i = 0; i < n;) {
    if (s[i] != '\\') {
      out[w++] = s[i++];
      continue;
    }
    CHECK(i + 1 < n);
    char e = s[i + 1];
    if (e == 'n' || e == 'r' || e == 't' || e == '\\') {
      out[w++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : '\\';
      i += 2;
    } else if (e == 'x') {
      CHECK(i + 3 < n && hexv(s[i + 2]) >= 0 && hexv(s[i + 3]) >= 0);
      out[w++] = (char)(hexv(s[i + 2]) << 4 | hexv(s[i + 3]));
      i += 4;
    } else if (e == 'u') {
      CHECK(i + 5 < n);
      uint32_t v = hex4(s + i + 2);
      CHECK((v >= 0x80 && v <= 0x9f) || invisible_cp(v)); /* C1 controls, or hidden/bidi characters */
      put_utf8(out, &w, v);
      i += 6;
    } else {
      CHECK(e == 'U' && i + 9 < n);
      uint32_t v = hex4(s + i + 2) << 16 | hex4(s + i + 6);
      CHECK(v > 0xFFFF && invisible_cp(v));
      put_utf8(out, &w, v);
      i += 10;
    }
  }
  return w;
}

/* polytel__sanitize output: whole escapes only, clean, and a prefix of any larger-capacity output. */
static void check_sanitize(const char *in, size_t len, size_t cap, int json) {
  size_t big = len * 6 + 1;
  char *full = malloc(big), *part = malloc(cap + 1);
  size_t fn = polytel__sanitize(full, big, in, len, json);
  CHECK(full[fn] == '\0' && fn < big);
  size_t pn = polytel__sanitize(part, cap + 1, in, len, json);
  CHECK(pn <= cap && part[pn] == '\0');
  CHECK(pn <= fn && memcmp(part, full, pn) == 0);
  check_clean(full, fn, 0);
  if (json) {
    js_t j = {full, full + fn, NULL, 0, 0};
    char *q = malloc(fn + 3);
    q[0] = '"';
    memcpy(q + 1, full, fn);
    q[fn + 1] = '"';
    j.p = q, j.e = q + fn + 2;
    jstring(&j, NULL, NULL);
    CHECK(j.p == j.e);
    free(q);
  } else {
    char *back = malloc(fn + 1);
    size_t bn = text_unescape(full, fn, back);
    CHECK(bn == len && memcmp(back, in, len) == 0);
    free(back);
  }
  free(full);
  free(part);
}

static int out_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (out_fd < 0) {
    out_fd = memfd_create("fuzz_console", 0);
    CHECK(out_fd >= 0);
    polytel__console_set_fd(out_fd);
  }
  fz_rd_t r = {data, data + size};
  uint8_t flags = fz_u8(&r);
  int level = fz_u8(&r);
  size_t cap = fz_u8(&r);
  int json = flags & 1, color = (flags >> 1) & 1, use_target = (flags >> 2) & 1,
      repeat = (flags & 0x88) == 0x88; /* rare: long lines cost ~16 KiB of instrumented work */
  size_t n_attrs = (flags >> 4) & 7;

  size_t target_len = 0;
  const char *target = use_target ? fz_bytes(&r, fz_u8(&r), &target_len) : NULL;
  polytel_attr_t attrs[8];
  char keys[8][64];
  for (size_t i = 0; i < n_attrs; i++) {
    size_t kl;
    const char *k = fz_bytes(&r, fz_u8(&r) % 63, &kl);
    memcpy(keys[i], k, kl);
    keys[i][kl] = '\0'; /* keys are C strings: an embedded NUL just ends the key */
    attrs[i].key = keys[i];
    switch (fz_u8(&r) % 5) {
      case 0:
        attrs[i].type = POLYTEL_ATTR_INT, attrs[i].value.i = (int64_t)fz_u64(&r);
        break;
      case 1: {
        uint64_t bits = fz_u64(&r);
        attrs[i].type = POLYTEL_ATTR_DOUBLE;
        memcpy(&attrs[i].value.d, &bits, sizeof bits);
        break;
      }
      case 2:
        attrs[i].type = POLYTEL_ATTR_BOOL, attrs[i].value.b = fz_u8(&r);
        break;
      case 3:
        attrs[i].type = (polytel_attr_type_t)99, attrs[i].value.i = 0;
        break; /* unknown type */
      default: {
        size_t vl;
        const char *v = fz_bytes(&r, (size_t)fz_u8(&r) * 4, &vl);
        attrs[i].type = POLYTEL_ATTR_STRING;
        attrs[i].value.str.ptr = v;
        attrs[i].value.str.len = vl;
      }
    }
  }
  size_t msg_len;
  const char *rest = fz_bytes(&r, SIZE_MAX, &msg_len);
  char *msg = NULL;
  if (repeat && msg_len > 0) {
    /* long messages reach the truncation path */
    size_t reps = FIELD_MAX / msg_len + 2;
    msg = malloc(msg_len * reps);
    for (size_t i = 0; i < reps; i++) memcpy(msg + i * msg_len, rest, msg_len);
    msg_len *= reps;
  } else {
    msg = malloc(msg_len + 1);
    memcpy(msg, rest, msg_len);
  }

  polytel__console_configure(POLYTEL_CONSOLE_STDERR,
                             json ? POLYTEL_CONSOLE_FORMAT_JSON : POLYTEL_CONSOLE_FORMAT_TEXT,
                             POLYTEL_LEVEL_TRACE, color);
  CHECK(ftruncate(out_fd, 0) == 0);
  polytel__console_emit(level, T0, target, target_len, msg, msg_len, attrs, n_attrs);
  off_t n = lseek(out_fd, 0, SEEK_CUR);
  CHECK(lseek(out_fd, 0, SEEK_SET) == 0);
  CHECK(n >= 0);
  char *out = malloc((size_t)n + 1);
  CHECK(pread(out_fd, out, (size_t)n, 0) == n);
  out[n] = '\0';

  if (level < POLYTEL_LEVEL_TRACE) {
    CHECK(n == 0);
  } else {
    /* exactly one line */
    CHECK(n > 0 && out[n - 1] == '\n' && memchr(out, '\n', (size_t)n) == out + n - 1);
    check_clean(out, (size_t)n - 1, color && !json);
    if (json) {
      CHECK(memcmp(out, "{\"time\":\"2026-11-22T04:02:36.123456Z\",\"level\":\"", 46) == 0);
    } else {
      CHECK(memcmp(out, "2026-11-22T04:02:36.123456Z ", 28) == 0);
    }
    if (color && !json) {
      size_t esc = 0;
      for (off_t i = 0; i < n; i++) esc += out[i] == 0x1b;
      CHECK(esc == 2); /* the level's colour on and off, nothing from the record */
    }
    int cut = msg_len > FIELD_MAX;
    if (json) {
      js_t j = {out, out + n - 1, NULL, 0, 0};
      jvalue(&j, 1);
      ws(&j);
      CHECK(j.p == j.e);
      CHECK(j.msg != NULL);
      if (!cut) {
        /* the decoded message is the input, with U+FFFD for each byte that is not valid UTF-8 */
        char *want = malloc(msg_len * 3 + 1);
        size_t w = 0;
        for (size_t i = 0; i < msg_len;) {
          size_t k = seq((const unsigned char *)msg + i, msg_len - i);
          if (k == 0) {
            memcpy(want + w, "\xef\xbf\xbd", 3), w += 3, i++;
          } else {
            memcpy(want + w, msg + i, k), w += k, i += k;
          }
        }
        CHECK(j.msg_len == w && memcmp(j.msg, want, w) == 0);
        free(want);
      }
      free(j.msg);
    } else if (!target_len && !n_attrs && !cut) {
      /* "<time> <LEVEL> <message>\n": the message unescapes to exactly the input bytes */
      const char *m = strchr(out + 28, ' ');
      CHECK(m != NULL);
      m++;
      size_t mlen = (size_t)(out + n - 1 - m);
      char *back = malloc(mlen + 1);
      size_t bn = text_unescape(m, mlen, back);
      CHECK(bn == msg_len && memcmp(back, msg, msg_len) == 0);
      free(back);
    }
  }
  free(out);

  size_t slen = msg_len < 4096 ? msg_len : 4096;
  check_sanitize(msg, slen, cap, 0);
  check_sanitize(msg, slen, cap, 1);
  free(msg);
  return 0;
}
