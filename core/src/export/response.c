/* response.c — parse OTLP/HTTP answers (partial_success, google.rpc.Status, text) and quote untrusted text.
 */
#include "export/response.h"

#include <string.h>

/* ------------------------------------------------------------- helpers */

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* content_type starts with the media type want (case-insensitive), followed by nothing, ';' or space. */
static int media_is(const char *ct, const char *want) {
  size_t i = 0;
  while (ct[i] == ' ' || ct[i] == '\t') ct++;
  for (; want[i]; i++)
    if (lower((unsigned char)ct[i]) != want[i]) return 0;
  return ct[i] == '\0' || ct[i] == ';' || ct[i] == ' ' || ct[i] == '\t';
}

static void set_message(polytel__otlp_answer_t *out, const uint8_t *s, size_t n) {
  if (n > sizeof out->message) n = sizeof out->message;
  memcpy(out->message, s, n);
  out->message_len = n;
}

/* ------------------------------------------------------------ protobuf */

typedef struct {
  const uint8_t *p, *end;
} pb_t;

/* 0 ok, -1 malformed. */
static int pb_varint(pb_t *r, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return -1;
    uint8_t b = *r->p++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* Next field: number, wire type, and for length-delimited fields the payload. 0 ok, 1 end, -1 malformed. */
static int pb_field(pb_t *r, uint64_t *num, int *wt, uint64_t *v, pb_t *sub) {
  if (r->p >= r->end) return 1;
  uint64_t tag;
  if (pb_varint(r, &tag) != 0) return -1;
  *num = tag >> 3;
  *wt = (int)(tag & 7);
  if (*num == 0) return -1;
  switch (*wt) {
    case 0:
      return pb_varint(r, v);
    case 1:
      if (r->end - r->p < 8) return -1;
      r->p += 8;
      return 0;
    case 5:
      if (r->end - r->p < 4) return -1;
      r->p += 4;
      return 0;
    case 2: {
      uint64_t n;
      if (pb_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p)) return -1;
      sub->p = r->p;
      sub->end = r->p + n;
      r->p += n;
      return 0;
    }
    default:
      return -1; /* groups are not part of these messages */
  }
}

/* Export*ServiceResponse { Export*PartialSuccess partial_success = 1 { int64 rejected = 1; string
 * error_message = 2 } } */
static int pb_export_response(pb_t r, polytel__otlp_answer_t *out) {
  uint64_t num, v;
  int wt, rc;
  pb_t sub;
  while ((rc = pb_field(&r, &num, &wt, &v, &sub)) == 0) {
    if (num != 1 || wt != 2) continue;
    out->has_partial = 1;
    uint64_t n2, v2;
    int wt2, rc2;
    pb_t s2;
    while ((rc2 = pb_field(&sub, &n2, &wt2, &v2, &s2)) == 0) {
      if (n2 == 1 && wt2 == 0) out->rejected = (int64_t)v2 > 0 ? v2 : 0; /* int64: negative means nothing */
      if (n2 == 2 && wt2 == 2) set_message(out, s2.p, (size_t)(s2.end - s2.p));
    }
    if (rc2 < 0) return -1;
  }
  return rc < 0 ? -1 : 0;
}

/* google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3 } */
static int pb_status(pb_t r, polytel__otlp_answer_t *out) {
  uint64_t num, v;
  int wt, rc;
  pb_t sub;
  while ((rc = pb_field(&r, &num, &wt, &v, &sub)) == 0)
    if (num == 2 && wt == 2) set_message(out, sub.p, (size_t)(sub.end - sub.p));
  return rc < 0 ? -1 : 0;
}

/* ----------------------------------------------------------------- JSON */

typedef struct {
  const uint8_t *p, *end;
  int depth;
} js_t;

#define JS_MAX_DEPTH 32

static void js_ws(js_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int js_lit(js_t *j, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return -1;
  j->p += n;
  return 0;
}

static int hex4(const uint8_t *p, uint32_t *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (lower(c) >= 'a' && lower(c) <= 'f')
      d = lower(c) - 'a' + 10;
    else
      return -1;
    *v = *v << 4 | (uint32_t)d;
  }
  return 0;
}

/* Append one code point as UTF-8 within cap. */
static void put_cp(uint8_t *o, size_t cap, size_t *n, uint32_t cp) {
  uint8_t b[4];
  size_t k;
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    k = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xc0 | cp >> 6);
    b[1] = (uint8_t)(0x80 | (cp & 0x3f));
    k = 2;
  } else if (cp < 0x10000) {
    b[0] = (uint8_t)(0xe0 | cp >> 12);
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (uint8_t)(0x80 | (cp & 0x3f));
    k = 3;
  } else {
    b[0] = (uint8_t)(0xf0 | cp >> 18);
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    k = 4;
  }
  if (*n + k > cap) return;
  memcpy(o + *n, b, k);
  *n += k;
}

/*
 * A string at j->p (the opening quote). With o, its decoded bytes go there (at
 * most cap; the rest is parsed and dropped). 0 ok, -1 malformed.
 */
static int js_string(js_t *j, uint8_t *o, size_t cap, size_t *n) {
  if (n) *n = 0;
  if (j->p >= j->end || *j->p != '"') return -1;
  j->p++;
  size_t dummy = 0;
  if (!n) n = &dummy;
  while (j->p < j->end) {
    uint8_t c = *j->p++;
    if (c == '"') return 0;
    if (c < 0x20) return -1;
    if (c != '\\') {
      if (o && *n < cap) o[(*n)++] = c;
      continue;
    }
    if (j->p >= j->end) return -1;
    uint8_t e = *j->p++;
    uint32_t cp;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        cp = e;
        break;
      case 'b':
        cp = '\b';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'n':
        cp = '\n';
        break;
      case 'r':
        cp = '\r';
        break;
      case 't':
        cp = '\t';
        break;
      case 'u':
        if (j->end - j->p < 4 || hex4(j->p, &cp) != 0) return -1;
        j->p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
          uint32_t lo;
          if (hex4(j->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            j->p += 6;
          }
        }
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; /* a lone surrogate */
        break;
      default:
        return -1;
    }
    if (o) put_cp(o, cap, n, cp);
  }
  return -1;
}

static int js_value(js_t *j);

/* Skip any value. 0 ok, -1 malformed. */
static int js_value(js_t *j) {
  js_ws(j);
  if (j->p >= j->end) return -1;
  uint8_t c = *j->p;
  if (c == '"') return js_string(j, NULL, 0, NULL);
  if (c == '{' || c == '[') {
    if (++j->depth > JS_MAX_DEPTH) return -1;
    uint8_t close = c == '{' ? '}' : ']';
    j->p++;
    js_ws(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      j->depth--;
      return 0;
    }
    for (;;) {
      if (c == '{') {
        js_ws(j);
        if (js_string(j, NULL, 0, NULL) != 0) return -1;
        js_ws(j);
        if (j->p >= j->end || *j->p++ != ':') return -1;
      }
      if (js_value(j) != 0) return -1;
      js_ws(j);
      if (j->p >= j->end) return -1;
      uint8_t d = *j->p++;
      if (d == close) break;
      if (d != ',') return -1;
    }
    j->depth--;
    return 0;
  }
  if (c == 't') return js_lit(j, "true");
  if (c == 'f') return js_lit(j, "false");
  if (c == 'n') return js_lit(j, "null");
  if (c == '-' || (c >= '0' && c <= '9')) {
    j->p++;
    while (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' || *j->p == 'E' ||
                             *j->p == '+' || *j->p == '-'))
      j->p++;
    return 0;
  }
  return -1;
}

/* An int64 written as a number or a decimal string (OTLP/JSON writes int64 as strings). Negative: 0. */
static int js_count(js_t *j, uint64_t *v) {
  js_ws(j);
  const uint8_t *start = j->p;
  uint8_t digits[24];
  size_t n = 0;
  if (j->p < j->end && *j->p == '"') {
    if (js_string(j, digits, sizeof digits, &n) != 0) return -1;
  } else {
    if (js_value(j) != 0) return -1;
    n = (size_t)(j->p - start);
    if (n > sizeof digits) n = sizeof digits;
    memcpy(digits, start, n);
  }
  *v = 0;
  for (size_t i = 0; i < n; i++) {
    if (digits[i] < '0' || digits[i] > '9') {
      if (i == 0 || (digits[i] != '.' && digits[i] != 'e' && digits[i] != 'E')) *v = 0;
      break; /* "-3" → 0; "3.0" → 3 */
    }
    uint64_t d = (uint64_t)(digits[i] - '0');
    *v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
  }
  return 0;
}

/* Is the key at j->p (a string) one of the names? Consumes it. -1 malformed. */
static int js_key(js_t *j, const char *const *names, int *which) {
  uint8_t k[32];
  size_t n;
  js_ws(j);
  if (js_string(j, k, sizeof k, &n) != 0) return -1;
  *which = -1;
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == n && memcmp(k, names[i], n) == 0) *which = i;
  js_ws(j);
  if (j->p >= j->end || *j->p++ != ':') return -1;
  return 0;
}

/*
 * Walk the members of the object at j->p; for a member named names[i] call
 * on(ctx, i, j) with j at its value (which must consume it), else skip it.
 */
typedef int (*js_member_fn)(void *ctx, int which, js_t *j);
static int js_object(js_t *j, const char *const *names, js_member_fn on, void *ctx) {
  js_ws(j);
  if (j->p >= j->end || *j->p != '{') return -1;
  if (++j->depth > JS_MAX_DEPTH) return -1;
  j->p++;
  js_ws(j);
  if (j->p < j->end && *j->p == '}') {
    j->p++;
    j->depth--;
    return 0;
  }
  for (;;) {
    int which;
    if (js_key(j, names, &which) != 0) return -1;
    if ((which >= 0 ? on(ctx, which, j) : js_value(j)) != 0) return -1;
    js_ws(j);
    if (j->p >= j->end) return -1;
    uint8_t d = *j->p++;
    if (d == '}') break;
    if (d != ',') return -1;
  }
  j->depth--;
  return 0;
}

static const char *const k_partial_keys[] = {
    "rejectedSpans",        "rejected_spans",     "rejectedLogRecords",
    "rejected_log_records", "rejectedDataPoints", "rejected_data_points",
    "errorMessage",         "error_message",      NULL};

static int on_partial_member(void *ctx, int which, js_t *j) {
  polytel__otlp_answer_t *out = ctx;
  if (which < 6) return js_count(j, &out->rejected);
  js_ws(j);
  if (j->p < j->end && *j->p == 'n') return js_lit(j, "null");
  size_t n;
  if (js_string(j, (uint8_t *)out->message, sizeof out->message, &n) != 0) return -1;
  out->message_len = n;
  return 0;
}

static int on_response_member(void *ctx, int which, js_t *j) {
  (void)which;
  polytel__otlp_answer_t *out = ctx;
  js_ws(j);
  if (j->p < j->end && *j->p == 'n') return js_lit(j, "null");
  out->has_partial = 1;
  return js_object(j, k_partial_keys, on_partial_member, out);
}

static int on_status_member(void *ctx, int which, js_t *j) {
  (void)which;
  polytel__otlp_answer_t *out = ctx;
  js_ws(j);
  if (j->p >= j->end || *j->p != '"') return js_value(j);
  size_t n;
  if (js_string(j, (uint8_t *)out->message, sizeof out->message, &n) != 0) return -1;
  out->message_len = n;
  return 0;
}

static int json_parse(int ok, const uint8_t *body, size_t len, polytel__otlp_answer_t *out) {
  static const char *const response_keys[] = {"partialSuccess", "partial_success", NULL};
  static const char *const status_keys[] = {"message", NULL};
  js_t j = {body, body + len, 0};
  int rc = ok ? js_object(&j, response_keys, on_response_member, out)
              : js_object(&j, status_keys, on_status_member, out);
  if (rc != 0) return -1;
  js_ws(&j);
  return j.p == j.end ? 0 : -1;
}

/* ----------------------------------------------------------------- text */

/* A text body (a proxy's error page, a plain message): whitespace runs become one space, ends trimmed. */
static void text_message(const uint8_t *body, size_t len, polytel__otlp_answer_t *out) {
  size_t n = 0;
  int space = 0;
  for (size_t i = 0; i < len && n < sizeof out->message; i++) {
    uint8_t c = body[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = n > 0;
      continue;
    }
    if (space && n + 1 < sizeof out->message) out->message[n++] = ' ';
    space = 0;
    out->message[n++] = (char)c;
  }
  out->message_len = n;
}

static int looks_like_text(const uint8_t *body, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (body[i] == 0 || (body[i] < 0x20 && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')) return 0;
  return 1;
}

void polytel__response_parse(polytel__signal_t sig, int status, const uint8_t *body, size_t len,
                             const char *content_type, polytel__format_t hint, polytel__otlp_answer_t *out) {
  (void)sig; /* the three responses share one layout; any rejected_* key is read */
  memset(out, 0, sizeof *out);
  if (!body || !len) return;
  int ok = status >= 200 && status < 300;
  enum { PB, JSON, TEXT } kind;
  if (content_type && *content_type) {
    if (media_is(content_type, "application/json"))
      kind = JSON;
    else if (media_is(content_type, "application/x-protobuf") ||
             media_is(content_type, "application/protobuf"))
      kind = PB;
    else
      kind = TEXT;
  } else {
    kind = hint == POLYTEL__FMT_JSON ? JSON : PB;
  }
  if (kind == TEXT) { /* a proxy's error page, a plain message: what it says, sanitized when shown */
    if (!ok) text_message(body, len, out);
    return;
  }
  int rc;
  if (kind == PB) {
    pb_t r = {body, body + len};
    rc = ok ? pb_export_response(r, out) : pb_status(r, out);
  } else {
    rc = json_parse(ok, body, len, out);
  }
  if (rc != 0) {
    /* Unreadable as what it claims: trust nothing of it but, for an error answer, text that reads as text. */
    memset(out, 0, sizeof *out);
    if (!ok && looks_like_text(body, len)) text_message(body, len, out);
  }
}

/* ---------------------------------------------------------------- quote */

/* Length of the valid UTF-8 sequence at s (0 when invalid), its code point in *cp. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
  uint8_t c = s[0];
  size_t k;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    k = 2;
    v = c & 0x1f;
    min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    k = 3;
    v = c & 0x0f;
    min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 4;
    v = c & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) return 0;
  *cp = v;
  return k;
}

/* Characters a terminal would act on or hide: escaped, never shown raw. */
static int invisible(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x00ad || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff;
}

size_t polytel__quote_untrusted(char *out, size_t cap, const char *src, size_t len, size_t max_bytes) {
  static const char ellipsis[] = "\xe2\x80\xa6";
  static const char hex[] = "0123456789ABCDEF";
  const uint8_t *s = (const uint8_t *)src;
  if (!cap) return 0;
  size_t o = 0, i = 0;
  /* Room kept for "…" and the NUL, so a cut can always be marked. */
  size_t lim = cap > sizeof ellipsis ? cap - sizeof ellipsis : 0;
  if (!s) len = 0;
  while (i < len) {
    uint32_t cp;
    size_t k = utf8_decode(s + i, len - i, &cp);
    char esc[12];
    size_t en;
    /*
     * No backslash escapes here: the console escapes backslashes itself, and
     * "\u202e" would come out as "\\u202e". A marker it leaves alone instead.
     */
    if (k == 0) { /* an invalid byte */
      memcpy(esc, "<0x", 3), esc[3] = hex[s[i] >> 4], esc[4] = hex[s[i] & 15], esc[5] = '>';
      en = 6;
      k = 1;
    } else if (cp == '\t' || cp == '\n' || cp == '\r') {
      esc[0] = ' ';
      en = 1;
    } else if (cp < 0x20 || cp == 0x7f || invisible(cp)) {
      memcpy(esc, "<U+", 3);
      for (int d = 0; d < 4; d++) esc[3 + d] = hex[(cp >> (12 - 4 * d)) & 15];
      esc[7] = '>';
      en = 8;
    } else {
      memcpy(esc, s + i, k);
      en = k;
    }
    if (i + k > max_bytes || o + en > lim) break;
    memcpy(out + o, esc, en);
    o += en;
    i += k;
  }
  if (i < len && o + sizeof ellipsis <= cap) {
    memcpy(out + o, ellipsis, sizeof ellipsis - 1);
    o += sizeof ellipsis - 1;
  }
  out[o] = '\0';
  return o;
}
