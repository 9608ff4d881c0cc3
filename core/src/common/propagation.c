/* propagation.c — W3C traceparent/tracestate/baggage codecs, OTEL_PROPAGATORS and sampler settings, ratio
 * sampling. Pure functions: no state, no allocation, no I/O; warnings are handed back as text. */
#include "common/propagation.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KNOWN_TRACE_FLAGS (POLYTEL_TRACE_FLAG_SAMPLED | POLYTEL_TRACE_FLAG_RANDOM)

static const char hex_lc[] = "0123456789abcdef";

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* Optional whitespace (SP, HTAB) around a field value is not part of it (RFC 9110 5.5). */
static void trim(const char **p, size_t *n) {
  while (*n && is_ows(**p)) (*p)++, (*n)--;
  while (*n && is_ows((*p)[*n - 1])) (*n)--;
}

/* The next item of the comma list s[0..n) from *pos, without its optional whitespace; 0 past the end. */
static int next_item(const char *s, size_t n, size_t *pos, const char **item, size_t *len) {
  if (*pos > n) return 0;
  const char *comma = memchr(s + *pos, ',', n - *pos);
  size_t end = comma ? (size_t)(comma - s) : n;
  *item = s + *pos;
  *len = end - *pos;
  trim(item, len);
  *pos = end + 1;
  return 1;
}

static int all_zero(const uint8_t *b, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= b[i];
  return acc == 0;
}

static int lc_hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* uppercase too: the spec's HEXDIGLC */
}

static int any_hex_digit(char c) {
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return lc_hex_digit(c);
}

/* Lowercase hex digit + 1, 0 for anything else: one load per character on the extract path. */
static const uint8_t lc_hex_tab[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

static int lc_hex_bytes(const char *s, uint8_t *out, size_t n) {
  unsigned bad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned hi = lc_hex_tab[(unsigned char)s[2 * i]], lo = lc_hex_tab[(unsigned char)s[2 * i + 1]];
    bad |= (hi == 0) | (lo == 0);
    out[i] = (uint8_t)((hi - 1) << 4 | ((lo - 1) & 15));
  }
  return !bad;
}

static char *put_hex(char *p, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    *p++ = hex_lc[b[i] >> 4];
    *p++ = hex_lc[b[i] & 15];
  }
  return p;
}

/* ------------------------------------------------------------ traceparent */

int polytel__traceparent_parse_n(const char *s, size_t n, polytel_span_ctx_t *out) {
  if (!out) return POLYTEL_EINVAL;
  memset(out, 0, sizeof *out);
  if (!s) return POLYTEL_EINVAL;
  trim(&s, &n);
  if (n < POLYTEL_TRACEPARENT_LEN) return POLYTEL_EINVAL;
  int v_hi = lc_hex_digit(s[0]), v_lo = lc_hex_digit(s[1]);
  if (v_hi < 0 || v_lo < 0 || s[2] != '-') return POLYTEL_EINVAL;
  int version = v_hi << 4 | v_lo;
  if (version == 0xff) return POLYTEL_EINVAL;
  /* Version 00 is exactly 55 characters; a later one may add fields after a '-'. */
  if (version == 0 && n != POLYTEL_TRACEPARENT_LEN) return POLYTEL_EINVAL;
  if (n > POLYTEL_TRACEPARENT_LEN && s[POLYTEL_TRACEPARENT_LEN] != '-') return POLYTEL_EINVAL;
  if (s[35] != '-' || s[52] != '-') return POLYTEL_EINVAL;
  uint8_t trace_id[16], span_id[8], flags;
  if (!lc_hex_bytes(s + 3, trace_id, 16) || !lc_hex_bytes(s + 36, span_id, 8) ||
      !lc_hex_bytes(s + 53, &flags, 1))
    return POLYTEL_EINVAL;
  if (all_zero(trace_id, 16) || all_zero(span_id, 8)) return POLYTEL_EINVAL;
  memcpy(out->trace_id, trace_id, 16);
  memcpy(out->span_id, span_id, 8);
  out->trace_flags = flags & KNOWN_TRACE_FLAGS; /* unknown flags are not ours to pass on */
  out->is_remote = 1;
  return 0;
}

int polytel_traceparent_parse(const char *header, polytel_span_ctx_t *out) {
  return polytel__traceparent_parse_n(header, header ? strlen(header) : 0, out);
}

int polytel_traceparent_format(const polytel_span_ctx_t *ctx, char *buf, size_t len) {
  if (buf && len > 0) buf[0] = '\0';
  if (!ctx || !buf || len < POLYTEL_TRACEPARENT_LEN + 1) return POLYTEL_EINVAL;
  if (all_zero(ctx->trace_id, 16) || all_zero(ctx->span_id, 8)) return POLYTEL_EINVAL;
  uint8_t flags = ctx->trace_flags & KNOWN_TRACE_FLAGS;
  char *p = buf;
  *p++ = '0';
  *p++ = '0';
  *p++ = '-';
  p = put_hex(p, ctx->trace_id, 16);
  *p++ = '-';
  p = put_hex(p, ctx->span_id, 8);
  *p++ = '-';
  p = put_hex(p, &flags, 1);
  *p = '\0';
  return 0;
}

/* ------------------------------------------------------------- tracestate */

static int lcalpha(char c) {
  return c >= 'a' && c <= 'z';
}

static int digit(char c) {
  return c >= '0' && c <= '9';
}

static int ts_keychar(char c) {
  return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

static int ts_keychars(const char *k, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!ts_keychar(k[i])) return 0;
  }
  return 1;
}

/*
 * Level 1 (the W3C Recommendation, as the OpenTelemetry SDKs read it):
 *   simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 *   multi-tenant-key = tenant-id "@" system-id
 *   tenant-id        = ( lcalpha / DIGIT ) 0*240( keychar )
 *   system-id        = lcalpha 0*13( keychar )
 */
static int ts_key_ok(const char *k, size_t n) {
  const char *at = memchr(k, '@', n);
  if (!at) return n >= 1 && n <= 256 && lcalpha(k[0]) && ts_keychars(k, n);
  size_t tn = (size_t)(at - k), sn = n - tn - 1;
  if (tn < 1 || tn > 241 || !(lcalpha(k[0]) || digit(k[0])) || !ts_keychars(k, tn)) return 0;
  return sn >= 1 && sn <= 14 && lcalpha(at[1]) && ts_keychars(at + 1, sn);
}

/* value = 0*255( chr ) nblk-chr, chr = %x20 / nblk-chr, nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static int ts_value_ok(const char *v, size_t n) {
  if (n < 1 || n > 256 || v[n - 1] == ' ') return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return 0;
  }
  return 1;
}

typedef struct {
  size_t off, len, key_len;
} ts_member_t;

static size_t ts_joined_len(const ts_member_t *m, const int *keep, size_t k) {
  size_t total = 0, kept = 0;
  for (size_t i = 0; i < k; i++) {
    if (keep[i]) total += m[i].len, kept++;
  }
  return kept ? total + kept - 1 : 0;
}

int polytel__tracestate_normalize_n(const char *in, size_t n, char *out, size_t cap) {
  if (!out || cap == 0) return -1;
  out[0] = '\0';
  if (!in) return -1;
  ts_member_t m[POLYTEL__TRACESTATE_MAX_MEMBERS];
  size_t k = 0;
  const char *p;
  size_t len;
  for (size_t pos = 0; next_item(in, n, &pos, &p, &len);) {
    if (len > 0) { /* empty and blank members are allowed, and dropped */
      if (k == POLYTEL__TRACESTATE_MAX_MEMBERS) return -1;
      const char *eq = memchr(p, '=', len);
      if (!eq) return -1;
      size_t kl = (size_t)(eq - p);
      if (!ts_key_ok(p, kl) || !ts_value_ok(eq + 1, len - kl - 1)) return -1;
      for (size_t x = 0; x < k; x++) {
        if (m[x].key_len == kl && memcmp(in + m[x].off, p, kl) == 0) return -1; /* duplicate key */
      }
      m[k++] = (ts_member_t){(size_t)(p - in), len, kl};
    }
  }
  size_t limit = cap - 1 < POLYTEL__TRACESTATE_MAX_LEN ? cap - 1 : POLYTEL__TRACESTATE_MAX_LEN;
  int keep[POLYTEL__TRACESTATE_MAX_MEMBERS];
  for (size_t i = 0; i < k; i++) keep[i] = 1;
  while (ts_joined_len(m, keep, k) > limit) {
    size_t victim = k;
    for (size_t i = k; i-- > 0;) {
      if (keep[i] && m[i].len > POLYTEL__TRACESTATE_BIG_MEMBER) {
        victim = i;
        break;
      }
    }
    if (victim == k) {
      for (size_t i = k; i-- > 0;) {
        if (keep[i]) {
          victim = i;
          break;
        }
      }
    }
    keep[victim] = 0;
  }
  size_t w = 0;
  for (size_t i = 0; i < k; i++) {
    if (!keep[i]) continue;
    if (w) out[w++] = ',';
    memcpy(out + w, in + m[i].off, m[i].len);
    w += m[i].len;
  }
  out[w] = '\0';
  return (int)w;
}

int polytel__tracestate_normalize(const char *in, char *out, size_t cap) {
  return polytel__tracestate_normalize_n(in, in ? strlen(in) : 0, out, cap);
}

int polytel_tracestate_valid(const char *tracestate) {
  char none; /* cap 1: validation runs in full, every member is then cut */
  return polytel__tracestate_normalize(tracestate, &none, 1) >= 0;
}

/* ---------------------------------------------------------------- baggage */

static const char no_props[] = "";

/* token = 1*tchar (RFC 9110 5.6.2) */
static int tchar(char c) {
  return lcalpha(c) || (c >= 'A' && c <= 'Z') || digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_token(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    if (!tchar(s[i])) return 0;
  }
  return 1;
}

/* baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E: no CTLs, space, DQUOTE, ',', ';' or '\'. */
static int baggage_octet(unsigned char c) {
  return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

/* A value as it travels: baggage-octets, every '%' starting a two-digit escape. */
static int bg_value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!baggage_octet((unsigned char)v[i])) return 0;
    if (v[i] == '%' && (i + 2 >= n || any_hex_digit(v[i + 1]) < 0 || any_hex_digit(v[i + 2]) < 0)) return 0;
  }
  return 1;
}

/*
 * Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 with *bad set
 * to the length of its maximal ill-formed subpart (Unicode 3.9, the WHATWG
 * decoder's U+FFFD substitution).
 */
static size_t utf8_seq(const uint8_t *p, size_t n, size_t *bad) {
  uint8_t c = p[0], lo = 0x80, hi = 0xbf;
  size_t need;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 1;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 2;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f; /* no surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f; /* nothing past U+10FFFF */
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= n || p[i] < lo || p[i] > hi) {
      *bad = i;
      return 0;
    }
    lo = 0x80, hi = 0xbf;
  }
  return need + 1;
}

/*
 * Percent-decode v[0..n) (checked by bg_value_ok) into out, ill-formed UTF-8
 * replaced by U+FFFD. Fits in n bytes: only %XX escapes (3 characters) make
 * bytes >= 0x80, and each ill-formed subpart becomes one 3-byte U+FFFD.
 */
static size_t bg_decode(const char *v, size_t n, char *out) {
  uint8_t raw[POLYTEL__BAGGAGE_MAX_MEMBER_BYTES];
  size_t r = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '%') {
      raw[r++] = (uint8_t)(any_hex_digit(v[i + 1]) << 4 | any_hex_digit(v[i + 2]));
      i += 2;
    } else {
      raw[r++] = (uint8_t)v[i];
    }
  }
  size_t o = 0;
  for (size_t i = 0; i < r;) {
    size_t bad = 0, ok = utf8_seq(raw + i, r - i, &bad);
    if (ok) {
      memcpy(out + o, raw + i, ok);
      o += ok, i += ok;
    } else {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3, i += bad;
    }
  }
  return o;
}

static polytel__baggage_entry_t *bg_find(const polytel__baggage_t *b, const char *key, size_t key_len) {
  for (uint32_t i = 0; i < b->n; i++) {
    const polytel__baggage_entry_t *e = &b->e[i];
    if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0) return (polytel__baggage_entry_t *)e;
  }
  return NULL;
}

static char *bg_take(polytel__baggage_t *b, size_t n) {
  if (b->cap - b->used < n) return NULL;
  char *p = b->store + b->used;
  b->used += n;
  return p;
}

/* A new entry for key; the caller checked there is an entry and room for the key left. */
static polytel__baggage_entry_t *bg_add(polytel__baggage_t *b, const char *key, size_t key_len) {
  polytel__baggage_entry_t *e = &b->e[b->n++];
  char *kp = bg_take(b, key_len + 1);
  memcpy(kp, key, key_len);
  kp[key_len] = '\0';
  e->key = kp;
  e->key_len = (uint32_t)key_len;
  return e;
}

void polytel__baggage_init(polytel__baggage_t *b, char *store, size_t cap) {
  if (!b) return;
  b->n = b->skipped = b->taken = b->bytes = 0;
  b->store = store;
  b->cap = store ? cap : 0;
  b->used = 0;
}

/*
 * Properties after a value: *( OWS ";" OWS ( key OWS "=" OWS value / key OWS ) ). Checks them and, when out
 * is not NULL, writes them without the whitespace. Returns the normal length, or -1 when malformed.
 */
static long bg_props(const char *s, size_t n, char *out) {
  size_t len = 0;
  for (size_t i = 0; i < n;) { /* s[i] == ';' */
    const char *semi = memchr(s + i + 1, ';', n - i - 1);
    size_t j = semi ? (size_t)(semi - s) : n;
    const char *p = s + i + 1;
    size_t pn = j - i - 1;
    trim(&p, &pn);
    const char *eq = memchr(p, '=', pn);
    const char *k = p, *v = NULL;
    size_t kn = eq ? (size_t)(eq - p) : pn, vn = 0;
    trim(&k, &kn);
    if (!is_token(k, kn)) return -1;
    if (eq) {
      v = eq + 1;
      vn = (size_t)(p + pn - v);
      trim(&v, &vn);
      if (!bg_value_ok(v, vn)) return -1;
    }
    if (out) {
      out[len] = ';';
      memcpy(out + len + 1, k, kn);
      if (eq) {
        out[len + 1 + kn] = '=';
        memcpy(out + len + 2 + kn, v, vn);
      }
    }
    len += 1 + kn + (eq ? 1 + vn : 0);
    i = j;
  }
  return (long)len;
}

/* One list-member, trimmed and not empty: 1 when taken, 0 when skipped. */
static int bg_member(polytel__baggage_t *b, const char *s, size_t n) {
  if (n > POLYTEL__BAGGAGE_MAX_MEMBER_BYTES || b->taken >= POLYTEL__BAGGAGE_MAX_MEMBERS) return 0;
  size_t add = n + (b->taken ? 1 : 0);
  if (b->bytes + add > POLYTEL__BAGGAGE_MAX_BYTES) return 0;
  const char *semi = memchr(s, ';', n);
  size_t hn = semi ? (size_t)(semi - s) : n;
  const char *eq = memchr(s, '=', hn);
  if (!eq) return 0;
  const char *k = s, *v = eq + 1;
  size_t kn = (size_t)(eq - s), vn = (size_t)(s + hn - v);
  trim(&k, &kn);
  trim(&v, &vn);
  if (!is_token(k, kn) || !bg_value_ok(v, vn)) return 0;
  long pl = semi ? bg_props(semi, n - hn, NULL) : 0;
  if (pl < 0) return 0;
  polytel__baggage_entry_t *e = bg_find(b, k, kn);
  if (!e && b->n == POLYTEL__BAGGAGE_MAX_MEMBERS) return 0;
  size_t need = (e ? 0 : kn + 1) + vn + 1 + (pl ? (size_t)pl + 1 : 0);
  if (b->cap - b->used < need) return 0;
  if (!e) e = bg_add(b, k, kn);
  char *vp = b->store + b->used;
  size_t dn = bg_decode(v, vn, vp);
  vp[dn] = '\0';
  b->used += dn + 1;
  e->value = vp;
  e->value_len = (uint32_t)dn;
  e->props = no_props;
  e->props_len = 0;
  if (pl) {
    char *pp = bg_take(b, (size_t)pl + 1);
    bg_props(semi, n - hn, pp);
    pp[pl] = '\0';
    e->props = pp;
    e->props_len = (uint32_t)pl;
  }
  b->taken++;
  b->bytes += (uint32_t)add;
  return 1;
}

int polytel__baggage_parse(polytel__baggage_t *b, const char *s, size_t n) {
  if (!b) return POLYTEL_EINVAL;
  if (!s) return 0;
  int taken = 0;
  const char *p;
  size_t len;
  for (size_t pos = 0; next_item(s, n, &pos, &p, &len);) {
    if (len == 0) continue;
    if (bg_member(b, p, len)) {
      taken++;
    } else {
      b->skipped++;
    }
  }
  return taken;
}

int polytel__baggage_set(polytel__baggage_t *b, const char *key, size_t key_len, const char *value,
                         size_t value_len) {
  if (!b || !key || !is_token(key, key_len) || (!value && value_len)) return POLYTEL_EINVAL;
  /* Neither could ever travel: a member is at most 4096 bytes encoded. */
  if (key_len > POLYTEL__BAGGAGE_MAX_MEMBER_BYTES || value_len > POLYTEL__BAGGAGE_MAX_MEMBER_BYTES)
    return POLYTEL_EINVAL;
  polytel__baggage_entry_t *e = bg_find(b, key, key_len);
  if (!e && b->n == POLYTEL__BAGGAGE_MAX_MEMBERS) return POLYTEL_ENOMEM;
  if (b->cap - b->used < (e ? 0 : key_len + 1) + value_len + 1) return POLYTEL_ENOMEM;
  if (!e) e = bg_add(b, key, key_len);
  char *vp = bg_take(b, value_len + 1);
  if (value_len) memcpy(vp, value, value_len);
  vp[value_len] = '\0';
  e->value = vp;
  e->value_len = (uint32_t)value_len;
  e->props = no_props;
  e->props_len = 0;
  return 0;
}

const polytel__baggage_entry_t *polytel__baggage_get(const polytel__baggage_t *b, const char *key,
                                                     size_t key_len) {
  if (!b || !key) return NULL;
  return bg_find(b, key, key_len);
}

int polytel__baggage_remove(polytel__baggage_t *b, const char *key, size_t key_len) {
  if (!b || !key) return 0;
  polytel__baggage_entry_t *e = bg_find(b, key, key_len);
  if (!e) return 0;
  size_t i = (size_t)(e - b->e);
  memmove(e, e + 1, (b->n - i - 1) * sizeof *e);
  b->n--;
  return 1;
}

static size_t bg_encoded_len(const char *v, size_t n) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    len += baggage_octet(c) && c != '%' ? 1 : 3;
  }
  return len;
}

int polytel__baggage_format(const polytel__baggage_t *b, char *out, size_t cap) {
  if (!b || !out || cap == 0) return POLYTEL_EINVAL;
  size_t limit = cap - 1 < POLYTEL__BAGGAGE_MAX_BYTES ? cap - 1 : POLYTEL__BAGGAGE_MAX_BYTES, len = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    const polytel__baggage_entry_t *e = &b->e[i];
    size_t need = e->key_len + 1 + bg_encoded_len(e->value, e->value_len) + e->props_len;
    if (need > POLYTEL__BAGGAGE_MAX_MEMBER_BYTES || len + (len ? 1 : 0) + need > limit) continue;
    if (len) out[len++] = ',';
    memcpy(out + len, e->key, e->key_len);
    len += e->key_len;
    out[len++] = '=';
    for (uint32_t j = 0; j < e->value_len; j++) {
      unsigned char c = (unsigned char)e->value[j];
      if (baggage_octet(c) && c != '%') {
        out[len++] = (char)c;
      } else {
        out[len++] = '%';
        out[len++] = "0123456789ABCDEF"[c >> 4]; /* RFC 3986: uppercase escapes */
        out[len++] = "0123456789ABCDEF"[c & 15];
      }
    }
    memcpy(out + len, e->props, e->props_len);
    len += e->props_len;
  }
  out[len] = '\0';
  return (int)len;
}

/* The public codec: one parsed header (or the entries to format) in a heap block (16 KiB: too big for
 * small stacks such as Ruby fibers'). */
typedef struct {
  polytel__baggage_t b;
  char store[POLYTEL__BAGGAGE_STORE_MIN];
} bg_work_t;

int polytel_baggage_key_valid(const char *key, size_t len) {
  return key && is_token(key, len);
}

int polytel_baggage_format(const polytel_baggage_entry_t *entries, size_t n, char *buf, size_t len) {
  if (buf && len) buf[0] = '\0';
  if (!buf || !len || (!entries && n) || n > POLYTEL__BAGGAGE_MAX_MEMBERS) return POLYTEL_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (!polytel_baggage_key_valid(entries[i].key, entries[i].key_len) ||
        (!entries[i].value && entries[i].value_len))
      return POLYTEL_EINVAL;
  }
  if (n == 0) return 0;
  bg_work_t *w = malloc(sizeof *w);
  if (!w) return POLYTEL_ENOMEM;
  polytel__baggage_init(&w->b, w->store, sizeof w->store);
  for (size_t i = 0; i < n; i++) {
    /* EINVAL here: a value over 4096 bytes, which could never travel: left out like any member too big. */
    polytel__baggage_set(&w->b, entries[i].key, entries[i].key_len, entries[i].value, entries[i].value_len);
  }
  int rc = polytel__baggage_format(&w->b, buf, len);
  free(w);
  return rc;
}

int polytel_baggage_parse(const char *header, size_t len, polytel_baggage_fn fn, void *arg) {
  if (!fn) return POLYTEL_EINVAL;
  if (!header || !len) return 0;
  bg_work_t *w = malloc(sizeof *w);
  if (!w) return POLYTEL_ENOMEM;
  polytel__baggage_init(&w->b, w->store, sizeof w->store);
  polytel__baggage_parse(&w->b, header, len);
  int passed = 0;
  for (uint32_t i = 0; i < w->b.n; i++) {
    const polytel__baggage_entry_t *e = &w->b.e[i];
    polytel_baggage_entry_t out = {e->key, e->key_len, e->value, e->value_len};
    passed++;
    if (fn(arg, &out)) break;
  }
  free(w);
  return passed;
}

/* --------------------------------------------------------------- settings */

typedef struct {
  const char *p;
  size_t n;
} sv_t;

static int sv_eq_ci(sv_t v, const char *word) {
  size_t n = strlen(word);
  if (v.n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = v.p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != word[i]) return 0;
  }
  return 1;
}

static int sv_in_ci(sv_t v, const char *const *words, size_t n_words) {
  for (size_t i = 0; i < n_words; i++) {
    if (sv_eq_ci(v, words[i])) return 1;
  }
  return 0;
}

static int sv_same_ci(sv_t a, sv_t b) {
  if (a.n != b.n) return 0;
  for (size_t i = 0; i < a.n; i++) {
    char x = a.p[i], y = b.p[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return 0;
  }
  return 1;
}

static sv_t sv_trimmed(const char *s) {
  sv_t v = {s ? s : "", s ? strlen(s) : 0};
  while (v.n && (is_ows(*v.p) || *v.p == '\n' || *v.p == '\r')) v.p++, v.n--;
  while (v.n && (is_ows(v.p[v.n - 1]) || v.p[v.n - 1] == '\n' || v.p[v.n - 1] == '\r')) v.n--;
  return v;
}

/* One warning line, built piece by piece; cut (never overrun) when the buffer is small. */
typedef struct {
  char *p;
  size_t cap, len;
} wbuf_t;

static void w_add(wbuf_t *w, const char *fmt, ...) POLYTEL_PRINTF(2, 3);
static void w_add(wbuf_t *w, const char *fmt, ...) {
  if (!w->p || w->cap == 0 || w->len + 1 >= w->cap) return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(w->p + w->len, w->cap - w->len, fmt, ap);
  va_end(ap);
  if (k > 0) w->len += (size_t)k < w->cap - w->len ? (size_t)k : w->cap - w->len - 1;
}

/* A user's text, quoted: its first `max` bytes (cut at a character boundary, then "…"). The console
 * escapes control characters when the line is printed. */
static void w_quoted(wbuf_t *w, sv_t v, size_t max) {
  size_t n = v.n;
  const char *more = "";
  if (n > max) {
    n = max;
    while (n > 0 && ((unsigned char)v.p[n] & 0xc0) == 0x80) n--;
    more = "\xe2\x80\xa6";
  }
  w_add(w, "\"%.*s%s\"", (int)n, v.p, more);
}

#define MAX_NAMED 8 /* bad propagator names quoted in one warning */

typedef struct {
  sv_t names[MAX_NAMED];
  size_t n, more;
} namelist_t;

static void names_add(namelist_t *l, sv_t v) {
  for (size_t i = 0; i < l->n; i++) {
    if (sv_same_ci(l->names[i], v)) return; /* each name once */
  }
  if (l->n < MAX_NAMED) {
    l->names[l->n++] = v;
  } else {
    l->more++;
  }
}

static void w_names(wbuf_t *w, const namelist_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    if (i) w_add(w, ", ");
    w_quoted(w, l->names[i], 32);
  }
  if (l->more) w_add(w, " and more");
}

static const char *propagators_name(unsigned mask) {
  switch (mask) {
    case POLYTEL__PROPAGATOR_TRACECONTEXT:
      return "tracecontext";
    case POLYTEL__PROPAGATOR_BAGGAGE:
      return "baggage";
    case POLYTEL__PROPAGATORS_DEFAULT:
      return "tracecontext,baggage";
    default:
      return "none";
  }
}

unsigned polytel__propagators_parse(const char *value, char *warn, size_t warn_cap) {
  static const char *const unsupported[] = {"b3", "b3multi", "jaeger", "xray", "ottrace"};
  wbuf_t w = {warn, warn_cap, 0};
  if (warn && warn_cap) warn[0] = '\0';
  sv_t all = sv_trimmed(value);
  if (all.n == 0) return POLYTEL__PROPAGATORS_DEFAULT; /* empty is unset */
  unsigned mask = 0;
  int none = 0, usable = 0;
  namelist_t unsup = {{{0}}, 0, 0}, unknown = {{{0}}, 0, 0};
  sv_t e;
  for (size_t pos = 0; next_item(all.p, all.n, &pos, &e.p, &e.n);) {
    if (e.n == 0) continue;
    if (sv_eq_ci(e, "tracecontext")) {
      mask |= POLYTEL__PROPAGATOR_TRACECONTEXT, usable = 1;
    } else if (sv_eq_ci(e, "baggage")) {
      mask |= POLYTEL__PROPAGATOR_BAGGAGE, usable = 1;
    } else if (sv_eq_ci(e, "none")) {
      none = usable = 1;
    } else if (sv_in_ci(e, unsupported, sizeof unsupported / sizeof *unsupported)) {
      names_add(&unsup, e);
    } else {
      names_add(&unknown, e);
    }
  }
  unsigned result = none ? 0 : usable ? mask : POLYTEL__PROPAGATORS_DEFAULT;
  int crowded_none = none && (mask || unsup.n || unknown.n);
  if (!unsup.n && !unknown.n && !crowded_none) return result;
  w_add(&w, "OTEL_PROPAGATORS: ");
  if (unsup.n || unknown.n) {
    w_add(&w, "ignoring ");
    if (unsup.n) {
      w_add(&w, "unsupported ");
      w_names(&w, &unsup);
    }
    if (unknown.n) {
      w_add(&w, "%sunknown ", unsup.n ? " and " : "");
      w_names(&w, &unknown);
    }
    w_add(&w, " (polytel propagates tracecontext and baggage, or none)%s", crowded_none ? "; " : "");
  }
  if (crowded_none) w_add(&w, "\"none\" is listed with other propagators and wins");
  w_add(&w, "; using %s", propagators_name(result));
  return result;
}

static const struct {
  const char *name;
  polytel__sampler_kind_t kind;
} samplers[] = {
    {"always_on", POLYTEL__SAMPLER_ALWAYS_ON},
    {"always_off", POLYTEL__SAMPLER_ALWAYS_OFF},
    {"traceidratio", POLYTEL__SAMPLER_TRACEIDRATIO},
    {"parentbased_always_on", POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON},
    {"parentbased_always_off", POLYTEL__SAMPLER_PARENTBASED_ALWAYS_OFF},
    {"parentbased_traceidratio", POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO},
};

const char *polytel__sampler_name(polytel__sampler_kind_t kind) {
  for (size_t i = 0; i < sizeof samplers / sizeof *samplers; i++) {
    if (samplers[i].kind == kind) return samplers[i].name;
  }
  return "unknown";
}

/*
 * A decimal number, the way Python's float() reads one (what the OTel Python SDK does with the argument),
 * less its inf/nan words, hex and underscores: [+-] digits [. digits] [e [+-] digits], one digit at least.
 * strtod rounds correctly, like float(), so both get the same double and so the same bound.
 */
static int parse_ratio(sv_t v, double *out) {
  size_t i = 0, digits = 0;
  if (i < v.n && (v.p[i] == '+' || v.p[i] == '-')) i++;
  while (i < v.n && digit(v.p[i])) i++, digits++;
  if (i < v.n && v.p[i] == '.') {
    i++;
    while (i < v.n && digit(v.p[i])) i++, digits++;
  }
  if (digits == 0) return 0;
  if (i < v.n && (v.p[i] == 'e' || v.p[i] == 'E')) {
    i++;
    if (i < v.n && (v.p[i] == '+' || v.p[i] == '-')) i++;
    size_t exp_digits = 0;
    while (i < v.n && digit(v.p[i])) i++, exp_digits++;
    if (exp_digits == 0) return 0;
  }
  if (i != v.n || v.n > 256) return 0;
  /* strtod reads the locale's decimal point; an embedding application may have set LC_NUMERIC. */
  const char *dp = localeconv()->decimal_point;
  size_t dpn = dp && dp[0] ? strlen(dp) : 1;
  if (dpn > 8) return 0;
  char buf[256 * 8 + 1];
  size_t b = 0;
  for (size_t k = 0; k < v.n; k++) {
    if (v.p[k] == '.' && dp && dp[0]) {
      memcpy(buf + b, dp, dpn);
      b += dpn;
    } else {
      buf[b++] = v.p[k];
    }
  }
  buf[b] = '\0';
  char *end;
  double r = strtod(buf, &end);
  if (end != buf + b || !(r >= 0.0 && r <= 1.0)) return 0; /* also inf (1e999) */
  *out = r == 0.0 ? 0.0 : r;                               /* -0 is 0 */
  return 1;
}

int polytel__sampler_parse(const char *sampler, const char *arg, polytel__sampler_t *out, char *warn,
                           size_t warn_cap) {
  static const char *const unsupported[] = {"jaeger_remote", "parentbased_jaeger_remote", "xray"};
  wbuf_t w = {warn, warn_cap, 0};
  if (warn && warn_cap) warn[0] = '\0';
  if (!out) return POLYTEL_EINVAL;
  out->kind = POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON;
  out->ratio = 1.0;
  out->bound = polytel__ratio_bound(1.0);
  sv_t s = sv_trimmed(sampler);
  if (s.n == 0) return 0;
  size_t i = 0;
  while (i < sizeof samplers / sizeof *samplers && !sv_eq_ci(s, samplers[i].name)) i++;
  if (i == sizeof samplers / sizeof *samplers) {
    if (sv_in_ci(s, unsupported, sizeof unsupported / sizeof *unsupported)) {
      w_add(&w, "OTEL_TRACES_SAMPLER=");
      w_quoted(&w, s, 64);
      w_add(&w, " is not supported by polytel; using parentbased_always_on");
    } else {
      w_add(&w, "invalid OTEL_TRACES_SAMPLER=");
      w_quoted(&w, s, 64);
      w_add(&w,
            " (expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off "
            "or parentbased_traceidratio); using parentbased_always_on");
    }
    return 0;
  }
  out->kind = samplers[i].kind;
  if (out->kind != POLYTEL__SAMPLER_TRACEIDRATIO && out->kind != POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO)
    return 0; /* the argument is the ratio samplers' alone */
  sv_t a = sv_trimmed(arg);
  if (a.n == 0) return 0;
  double r;
  if (!parse_ratio(a, &r)) {
    w_add(&w, "invalid OTEL_TRACES_SAMPLER_ARG=");
    w_quoted(&w, a, 64);
    w_add(&w, " (expected a ratio from 0 to 1, such as 0.25); using 1.0");
    return 0;
  }
  out->ratio = r;
  out->bound = polytel__ratio_bound(r);
  return 0;
}

/* ------------------------------------------------------------- sampling */

uint64_t polytel__ratio_bound(double ratio) {
  if (!(ratio > 0.0)) return 0; /* NaN too */
  if (ratio >= 1.0) return UINT64_MAX;
  double x = ratio * 18446744073709551616.0; /* exact: a power-of-two scale */
  uint64_t f = (uint64_t)x;                  /* x < 2^64: truncation is floor */
  double frac = x - (double)f;               /* exact: f is x's integer part */
  /* Python's round(): halves to even. x <= 2^64 - 2^11, so f + 1 cannot wrap. */
  if (frac > 0.5 || (frac == 0.5 && (f & 1))) f++;
  return f;
}

int polytel__traceid_ratio_sampled(const uint8_t trace_id[16], uint64_t bound) {
  if (bound == UINT64_MAX) return 1; /* ratio 1: the real bound, 2^64, does not fit */
  uint64_t low = 0;
  for (int i = 8; i < 16; i++) low = low << 8 | trace_id[i];
  return low < bound;
}

int polytel__sampler_should_sample(const polytel__sampler_t *s, const uint8_t trace_id[16], int parent) {
  polytel__sampler_kind_t kind = s ? s->kind : POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON;
  switch (kind) {
    case POLYTEL__SAMPLER_ALWAYS_ON:
      return 1;
    case POLYTEL__SAMPLER_ALWAYS_OFF:
      return 0;
    case POLYTEL__SAMPLER_TRACEIDRATIO:
      return polytel__traceid_ratio_sampled(trace_id, s->bound);
    case POLYTEL__SAMPLER_PARENTBASED_ALWAYS_OFF:
      return parent >= 0 ? parent != 0 : 0;
    case POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO:
      return parent >= 0 ? parent != 0 : polytel__traceid_ratio_sampled(trace_id, s->bound);
    case POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON:
    default:
      return parent >= 0 ? parent != 0 : 1;
  }
}
