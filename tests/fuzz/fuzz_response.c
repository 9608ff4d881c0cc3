/* fuzz_response.c — libFuzzer target for OTLP response parsing and untrusted-text quoting: arbitrary bodies
 * under every status class and content type (bounded results, nothing read past the body), answers built
 * from fuzz bytes in protobuf and JSON that must parse back to what was put in, and quoting that always
 * yields one safe, valid UTF-8 line within its buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/response.h"

#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* ------------------------------------------------------- quote properties */

/* The quoted text: valid UTF-8, no control byte, no bidi / zero-width / separator code point. */
static void check_safe(const char *q, size_t n) {
  const uint8_t *s = (const uint8_t *)q;
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    CHECK(c >= 0x20 && c != 0x7f);
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    CHECK(c >= 0xc2 && c <= 0xf4 && i + k <= n);
    uint32_t cp = c & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
    for (size_t j = 1; j < k; j++) {
      CHECK((s[i + j] & 0xc0) == 0x80);
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    CHECK(cp >= (k == 2   ? 0x80u
                 : k == 3 ? 0x800u
                          : 0x10000u) &&
          cp <= 0x10ffff && !(cp >= 0xd800 && cp < 0xe000));
    CHECK(!(cp <= 0x9f) && cp != 0x061c && cp != 0x00ad && !(cp >= 0x200b && cp <= 0x200f) &&
          !(cp >= 0x2028 && cp <= 0x202e) && !(cp >= 0x2060 && cp <= 0x2069) && cp != 0xfeff);
    i += k;
  }
}

static void check_quote(const uint8_t *src, size_t len, size_t cap, size_t max_bytes) {
  char *out = malloc(cap + 16);
  memset(out, 0x55, cap + 16);
  size_t n = polytel__quote_untrusted(out, cap, (const char *)src, len, max_bytes);
  if (cap == 0) {
    CHECK(n == 0 && (uint8_t)out[0] == 0x55);
  } else {
    CHECK(n < cap && out[n] == '\0' && strlen(out) == n);
    for (size_t i = cap; i < cap + 16; i++) CHECK((uint8_t)out[i] == 0x55); /* never past cap */
    check_safe(out, n);
    /* Room for every character of max_bytes: the whole source (up to max_bytes) is shown or marked cut. */
    static const char ell[] = "\xe2\x80\xa6";
    int cut = n >= 3 && memcmp(out + n - 3, ell, 3) == 0;
    if (cap >= 8 * max_bytes + 8 && len <= max_bytes)
      CHECK(!cut || (len >= 3 && !memcmp(src + len - 3, ell, 3)));
    if (len > max_bytes && cap >= 8) CHECK(cut);
  }
  free(out);
}

/* --------------------------------------------------- constructed answers */

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  do {
    p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}

static uint64_t take_u64(const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  for (int i = 0; i < 8 && *p < end; i++) v = v << 8 | *(*p)++;
  return v;
}

/* Export*ServiceResponse{partial_success{rejected, error_message}} in protobuf: parses back exactly. */
static void roundtrip_protobuf(polytel__signal_t sig, uint64_t rejected, const uint8_t *msg, size_t mlen) {
  uint8_t *inner = malloc(mlen + 32), *body = malloc(mlen + 64);
  size_t n = 0;
  inner[n++] = 0x08;
  n += put_varint(inner + n, rejected);
  inner[n++] = 0x12;
  n += put_varint(inner + n, mlen);
  memcpy(inner + n, msg, mlen), n += mlen;
  size_t b = 0;
  body[b++] = 0x0a;
  b += put_varint(body + b, n);
  memcpy(body + b, inner, n), b += n;
  polytel__otlp_answer_t a;
  polytel__response_parse(sig, 200, body, b, "application/x-protobuf", POLYTEL__FMT_JSON, &a);
  CHECK(a.has_partial);
  CHECK(a.rejected == ((int64_t)rejected > 0 ? rejected : 0));
  size_t want = mlen < POLYTEL__ANSWER_MSG_MAX ? mlen : POLYTEL__ANSWER_MSG_MAX;
  CHECK(a.message_len == want && memcmp(a.message, msg, want) == 0);
  free(inner);
  free(body);
}

/* The same in OTLP/JSON, the message escaped where JSON requires it: decodes back to the same bytes. */
static void roundtrip_json(polytel__signal_t sig, uint64_t rejected, const uint8_t *msg, size_t mlen) {
  static const char *const keys[] = {"rejectedSpans", "rejectedLogRecords", "rejectedDataPoints"};
  char *body = malloc(mlen * 6 + 128);
  size_t b = (size_t)sprintf(body, "{ \"partialSuccess\" : {\"%s\":\"%llu\", \"errorMessage\": \"",
                             keys[sig % 3], (unsigned long long)rejected);
  for (size_t i = 0; i < mlen; i++) {
    uint8_t c = msg[i];
    if (c < 0x20 || c == '"' || c == '\\')
      b += (size_t)sprintf(body + b, "\\u%04x", c);
    else
      body[b++] = (char)c;
  }
  b += (size_t)sprintf(body + b, "\"}, \"other\": [1, {\"x\": null}]}");
  polytel__otlp_answer_t a;
  polytel__response_parse(sig, 200, (const uint8_t *)body, b, "Application/JSON; charset=utf-8",
                          POLYTEL__FMT_PROTOBUF, &a);
  CHECK(a.has_partial);
  CHECK(a.rejected == rejected);
  size_t want = mlen < POLYTEL__ANSWER_MSG_MAX ? mlen : POLYTEL__ANSWER_MSG_MAX;
  CHECK(a.message_len == want && memcmp(a.message, msg, want) == 0);
  free(body);
}

/* ------------------------------------------------------------------ entry */

static const char *const k_types[] = {NULL, "application/json", "application/x-protobuf", "text/plain"};
static const int k_status[] = {200, 400, 503, 204};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint8_t sel = data[0], sel2 = data[1];
  const uint8_t *body = data + 2;
  size_t len = size - 2;
  polytel__signal_t sig = (polytel__signal_t)(sel % 3);

  if (sel & 0x80) {
    const uint8_t *p = body, *end = body + len;
    uint64_t rejected = take_u64(&p, end);
    if (sel & 0x40) rejected &= 0xffffff; /* mostly plausible counts */
    roundtrip_protobuf(sig, rejected, p, (size_t)(end - p));
    roundtrip_json(sig, rejected, p, (size_t)(end - p));
  }

  /* Arbitrary bytes as any answer: bounded, and an error answer never claims a partial_success. */
  int status = k_status[(sel >> 2) & 3];
  polytel__otlp_answer_t a;
  polytel__response_parse(sig, status, body, len, k_types[(sel >> 4) & 3],
                          (sel & 0x40) ? POLYTEL__FMT_JSON : POLYTEL__FMT_PROTOBUF, &a);
  CHECK(a.message_len <= sizeof a.message);
  if (status >= 300) CHECK(!a.has_partial && a.rejected == 0);
  if (!a.has_partial) CHECK(a.rejected == 0);

  /* Quoting: the parsed message as a warning shows it, and the raw body under tight buffers. */
  check_quote((const uint8_t *)a.message, a.message_len, 8 * POLYTEL__QUOTE_MAX + 16, POLYTEL__QUOTE_MAX);
  check_quote(body, len, sel2 % 80, (size_t)(sel2 >> 3));
  check_quote(body, len, 8 * len + 8, len);
  return 0;
}
