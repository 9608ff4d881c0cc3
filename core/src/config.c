/* config.c — resolves polytel_config_t, then the environment, then defaults; one warning per bad value. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console.h"
#include "process.h"
#include "record.h"

#define DEFAULT_ENDPOINT "http://localhost:4318"
#define DEFAULT_EXPORT_DIR "./polytel-out"
#define MIN_MAX_MEMORY ((uint64_t)256 << 10)
#define HEADERS_MAX_BYTES 65536
#define SHOW_MAX POLYTEL__SHOW_MAX /* bytes of a bad value echoed in a warning */
#define SHOW_BUF POLYTEL__SHOW_BUF
#define MAX_RESOURCE_ATTRS POLYTEL__MAX_RESOURCE_ATTRS

/* Set while polytel__cfg_resolve_quiet runs on this thread. */
static __thread int t_quiet;
#define DIAG(...)                             \
  do {                                        \
    if (!t_quiet) polytel__diag(__VA_ARGS__); \
  } while (0)

typedef struct sv_s {
  const char *p;
  size_t n;
} sv_t;

typedef struct ctx_s {
  const polytel_config_t *u; /* explicit config, NULL when none */
  polytel__getenv_fn get;    /* NULL when the environment is not consulted */
  int oom;
} ctx_t;

/* A field of the caller's struct counts only when their struct_size covers it (older callers). */
#define HAS(c, field) \
  ((c)->u && offsetof(polytel_config_t, field) + sizeof((c)->u->field) <= (c)->u->struct_size)

/* ------------------------------------------------------------ strings */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static sv_t sv_trim(const char *p, size_t n) {
  while (n > 0 && is_space(*p)) p++, n--;
  while (n > 0 && is_space(p[n - 1])) n--;
  return (sv_t){p, n};
}

static sv_t sv_of(const char *s) {
  return s ? sv_trim(s, strlen(s)) : (sv_t){"", 0};
}

static int sv_eq_ci(sv_t v, const char *lit) {
  size_t n = strlen(lit);
  if (v.n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char a = v.p[i], b = lit[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (a != b) return 0;
  }
  return 1;
}

static char *dup_n(ctx_t *c, const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) {
    c->oom = 1;
    return NULL;
  }
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* The trimmed value of an environment variable; 0 when unset, empty or not consulted. */
static int env(ctx_t *c, const char *name, sv_t *out) {
  if (!c->get) return 0;
  const char *s = c->get(name);
  if (!s) return 0;
  sv_t v = sv_of(s);
  if (v.n == 0) return 0;
  *out = v; /* untouched otherwise: callers preload their default */
  return 1;
}

/* The first SHOW_MAX bytes (at a character boundary) of a value, "…" when cut; the console escapes the rest.
 */
static const char *show(char *buf, size_t cap, sv_t v) {
  return polytel__show(buf, cap, v.p, v.n);
}

static void warn_invalid(const char *var, sv_t val, const char *expected, const char *kept) {
  char b[SHOW_BUF];
  DIAG(POLYTEL_LEVEL_WARN, "invalid %s=\"%s\" (expected %s); using %s", var, show(b, sizeof b, val), expected,
       kept);
}

static void warn_invalid_int(const char *var, long long val, const char *expected, const char *kept) {
  DIAG(POLYTEL_LEVEL_WARN, "invalid %s=%lld (expected %s); using %s", var, val, expected, kept);
}

int polytel__parse_bool(const char *s) {
  sv_t v = sv_of(s);
  static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (sv_eq_ci(v, yes[i])) return 1;
    if (sv_eq_ci(v, no[i])) return 0;
  }
  return -1;
}

/* Digits only (no sign, no spaces inside): 1 ok, 0 not a number, -1 overflow. */
static int parse_u64(sv_t v, uint64_t *out) {
  uint64_t x = 0;
  if (v.n == 0) return 0;
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9') return 0;
    unsigned d = (unsigned)(v.p[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return -1;
    x = x * 10 + d;
  }
  *out = x;
  return 1;
}

/* ------------------------------------------------------------ percent-decoding and lists */

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/*
 * Percent-decode v into a new string. An invalid escape (not two hex digits, or
 * %00, which would cut the C string) is kept as written and *bad is set.
 */
static char *pct_decode(ctx_t *c, sv_t v, size_t *outlen, int *bad) {
  char *s = malloc(v.n + 1);
  size_t w = 0;
  if (!s) {
    c->oom = 1;
    return NULL;
  }
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] == '%') {
      int hi = i + 2 < v.n ? hexval(v.p[i + 1]) : -1;
      int lo = i + 2 < v.n ? hexval(v.p[i + 2]) : -1;
      if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
        s[w++] = (char)(hi << 4 | lo);
        i += 2;
        continue;
      }
      *bad = 1;
    }
    s[w++] = v.p[i];
  }
  s[w] = '\0';
  *outlen = w;
  return s;
}

/* Split on ',' into trimmed entries; calls fn for each non-empty one with its 1-based number. */
typedef void (*entry_fn)(ctx_t *c, void *state, sv_t entry, size_t num);

static void for_each_entry(ctx_t *c, sv_t list, entry_fn fn, void *state) {
  size_t start = 0, num = 0;
  for (size_t i = 0; i <= list.n; i++) {
    if (i == list.n || list.p[i] == ',') {
      sv_t e = sv_trim(list.p + start, i - start);
      num++;
      if (e.n > 0) fn(c, state, e, num);
      start = i + 1;
    }
  }
}

typedef struct pairs_s {
  const char *var;
  polytel__strpair_t *v;
  size_t n, cap;
  int full;
  size_t bytes; /* resource: key + value bytes kept */
} pairs_t;

static int pairs_push(ctx_t *c, pairs_t *ps, char *k, char *v) {
  if (ps->n == ps->cap) {
    size_t ncap = ps->cap ? ps->cap * 2 : 8;
    polytel__strpair_t *nv = realloc(ps->v, ncap * sizeof *nv);
    if (!nv) {
      c->oom = 1;
      free(k), free(v);
      return -1;
    }
    ps->v = nv, ps->cap = ncap;
  }
  ps->v[ps->n].key = k;
  ps->v[ps->n].value = v;
  ps->n++;
  return 0;
}

static void pairs_free(polytel__strpair_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i].key), free(v[i].value);
  free(v);
}

/* Where a cut of s[0..n) to at most max bytes falls: a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
  if (n <= max) return n;
  size_t cut = max;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  return cut;
}

/* OTEL_RESOURCE_ATTRIBUTES entry: key=value, percent-decoded; a repeated key replaces the earlier one. */
static void resource_entry(ctx_t *c, void *state, sv_t e, size_t num) {
  pairs_t *ps = state;
  char b[SHOW_BUF];
  const char *eq = memchr(e.p, '=', e.n);
  if (ps->full) return;
  if (ps->n >= MAX_RESOURCE_ATTRS) {
    /* Bounded: a resource is sent with every request, and duplicate checks are quadratic. */
    DIAG(POLYTEL_LEVEL_WARN, "%s has more than %d entries; entry #%zu and later are skipped", ps->var,
         MAX_RESOURCE_ATTRS, num);
    ps->full = 1;
    return;
  }
  if (!eq) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry \"%s\" (expected key=value); skipped", ps->var,
         show(b, sizeof b, e));
    return;
  }
  sv_t k = sv_trim(e.p, (size_t)(eq - e.p)), v = sv_trim(eq + 1, e.n - (size_t)(eq - e.p) - 1);
  if (k.n == 0) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry \"%s\" (empty key); skipped", ps->var, show(b, sizeof b, e));
    return;
  }
  int bad = 0;
  size_t kn = 0, vn = 0;
  char *ks = pct_decode(c, k, &kn, &bad), *vs = pct_decode(c, v, &vn, &bad);
  if (!ks || !vs) {
    free(ks), free(vs);
    return;
  }
  if (!polytel__utf8_valid(ks, kn) || !polytel__utf8_valid(vs, vn)) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry \"%s\" (not valid UTF-8 once decoded); skipped", ps->var,
         show(b, sizeof b, e));
    free(ks), free(vs);
    return;
  }
  if (bad) {
    DIAG(POLYTEL_LEVEL_WARN, "%s entry \"%s\" has an invalid percent-escape; kept as written", ps->var,
         show(b, sizeof b, e));
  }
  /* The resource goes out with every request: keys and values are bounded like a production SDK's. */
  if (kn > POLYTEL__MAX_RESOURCE_KEY) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry #%zu (the key is %zu bytes, over the %d-byte limit); skipped",
         ps->var, num, kn, POLYTEL__MAX_RESOURCE_KEY);
    free(ks), free(vs);
    return;
  }
  if (vn > POLYTEL__MAX_RESOURCE_VALUE) {
    size_t was = vn;
    vn = utf8_cut(vs, vn, POLYTEL__MAX_RESOURCE_VALUE);
    vs[vn] = '\0';
    DIAG(POLYTEL_LEVEL_WARN,
         "%s entry \"%s\": the value is %zu bytes, over the %d-byte limit; cut to %zu bytes", ps->var,
         show(b, sizeof b, (sv_t){ks, kn}), was, POLYTEL__MAX_RESOURCE_VALUE, vn);
  }
  for (size_t i = 0; i < ps->n; i++) {
    if (strcmp(ps->v[i].key, ks) == 0) {
      ps->bytes -= strlen(ps->v[i].value);
      ps->bytes += vn;
      free(ps->v[i].value);
      ps->v[i].value = vs;
      free(ks);
      return;
    }
  }
  if (ps->bytes + kn + vn > POLYTEL__MAX_RESOURCE_BYTES) {
    DIAG(POLYTEL_LEVEL_WARN,
         "%s passes the %d-byte limit on keys and values at entry #%zu; it and later entries are skipped",
         ps->var, POLYTEL__MAX_RESOURCE_BYTES, num);
    ps->full = 1;
    free(ks), free(vs);
    return;
  }
  ps->bytes += kn + vn;
  pairs_push(c, ps, ks, vs);
}

/* RFC 9110 token characters. */
static int is_tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/*
 * Framing and connection headers belong to libcurl and HTTP: a user's Content-Length or Host desynchronises
 * the connection or sends the body elsewhere, Content-Type/Content-Encoding would lie about the body.
 */
int polytel__header_forbidden(const char *name, size_t len) {
  static const char *const owned[] = {
      "content-length", "host",       "transfer-encoding", "connection", "content-encoding", "content-type",
      "expect",         "keep-alive", "proxy-connection",  "te",         "trailer",          "upgrade"};
  for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
    if (sv_eq_ci((sv_t){name, len}, owned[i])) return 1;
  return 0;
}

/*
 * OTEL_EXPORTER_OTLP_HEADERS entry. Header values are credentials: no warning
 * ever shows one, nor an entry without '=' (it may be a bare token), nor a key
 * that is not a valid header name (it may be a mangled "Authorization: ..." line).
 */
static void header_entry(ctx_t *c, void *state, sv_t e, size_t num) {
  pairs_t *ps = state;
  const char *eq = memchr(e.p, '=', e.n);
  if (!eq) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry #%zu (expected key=value; value not shown); skipped", ps->var,
         num);
    return;
  }
  sv_t k = sv_trim(e.p, (size_t)(eq - e.p)), v = sv_trim(eq + 1, e.n - (size_t)(eq - e.p) - 1);
  int bad = 0;
  size_t kn = 0, vn = 0;
  char *ks = pct_decode(c, k, &kn, &bad), *vs = pct_decode(c, v, &vn, &bad);
  if (!ks || !vs) {
    free(ks), free(vs);
    return;
  }
  char kb[SHOW_BUF]; /* keys are not secret, but as long as a value: shown like one */
  int key_ok = kn > 0;
  for (size_t i = 0; i < kn; i++) key_ok = key_ok && is_tchar((unsigned char)ks[i]);
  if (!key_ok) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry #%zu (%s; value not shown); skipped", ps->var, num,
         kn ? "the key is not a valid HTTP header name" : "empty key");
    free(ks), free(vs);
    return;
  }
  if (polytel__header_forbidden(ks, kn)) {
    DIAG(POLYTEL_LEVEL_WARN,
         "invalid %s entry #%zu (%s: a header polytel and HTTP set themselves; value not shown); skipped",
         ps->var, num, show(kb, sizeof kb, (sv_t){ks, kn}));
    free(ks), free(vs);
    return;
  }
  /* A decoded CR/LF would let the value forge further request headers. */
  for (size_t i = 0; i < vn; i++) {
    unsigned char ch = (unsigned char)vs[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
      DIAG(POLYTEL_LEVEL_WARN,
           "invalid %s entry #%zu (%s: the value contains control characters; value not shown); skipped",
           ps->var, num, show(kb, sizeof kb, (sv_t){ks, kn}));
      free(ks), free(vs);
      return;
    }
  }
  if (bad) {
    DIAG(POLYTEL_LEVEL_WARN, "%s entry #%zu (%s) has an invalid percent-escape; kept as written", ps->var,
         num, show(kb, sizeof kb, (sv_t){ks, kn}));
  }
  pairs_push(c, ps, ks, vs);
}

/* ------------------------------------------------------------ URLs */

static const char *const URL_EXPECTED = "an http:// or https:// URL with a host and an optional port 1-65535";

enum { URL_BAD = 0, URL_USERINFO = 1, URL_PCT_HOST = 2 };

/*
 * http(s)://host[:port][/path] in printable ASCII. A base endpoint (base != 0)
 * takes no query or fragment, since /v1/<signal> is appended to it. *why says
 * what made it invalid when the value must not be echoed: userinfo (raw or
 * percent-encoded) or any percent-escape in the host.
 */
static int url_valid(sv_t v, int base, int *why) {
  size_t i;
  *why = URL_BAD;
  if (v.n >= 7 && sv_eq_ci((sv_t){v.p, 7}, "http://")) {
    i = 7;
  } else if (v.n >= 8 && sv_eq_ci((sv_t){v.p, 8}, "https://")) {
    i = 8;
  } else {
    return 0;
  }
  size_t a = i;
  while (i < v.n && v.p[i] != '/' && v.p[i] != '?' && v.p[i] != '#') i++;
  sv_t auth = {v.p + a, i - a};
  if (memchr(auth.p, '@', auth.n)) {
    *why = URL_USERINFO;
    return 0;
  }
  if (memchr(auth.p, '%', auth.n)) {
    /* "user%3Apw%40host" is userinfo in disguise (curl would decode it); no real collector needs an
     * escaped host name, so none is accepted, and the value is not echoed. */
    *why = URL_PCT_HOST;
    for (size_t k = 0; k + 2 < auth.n; k++)
      if (auth.p[k] == '%' && hexval(auth.p[k + 1]) == 4 && hexval(auth.p[k + 2]) == 0) *why = URL_USERINFO;
    return 0;
  }
  size_t h = 0;
  if (auth.n > 0 && auth.p[0] == '[') {
    h = 1;
    while (h < auth.n && auth.p[h] != ']') {
      char ch = auth.p[h];
      if (!(hexval(ch) >= 0 || ch == ':' || ch == '.')) return 0;
      h++;
    }
    if (h >= auth.n || h < 3) return 0; /* no ']' or "[]" / "[:]" */
    h++;
  } else {
    while (h < auth.n && auth.p[h] != ':') {
      unsigned char ch = (unsigned char)auth.p[h];
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~", ch)))
        return 0;
      h++;
    }
    if (h == 0) return 0;
  }
  if (h < auth.n) {
    uint64_t port = 0;
    if (auth.p[h] != ':') return 0;
    sv_t ps = {auth.p + h + 1, auth.n - h - 1};
    if (ps.n > 5 || parse_u64(ps, &port) != 1 || port < 1 || port > 65535) return 0;
  }
  for (; i < v.n; i++) {
    unsigned char ch = (unsigned char)v.p[i];
    if (ch <= 0x20 || ch >= 0x7f) return 0;
    if (base && (ch == '?' || ch == '#')) return 0;
  }
  return 1;
}

/*
 * The first bytes of a URL as a C string, enough for polytel__show_url to cut. The userinfo is found on
 * the whole value first (its last '@' may lie past the bytes kept) and replaced by a bare '@', so what
 * polytel__show_url sees never holds it.
 */
static const char *url_prefix(char *buf, size_t cap, sv_t v) {
  size_t len = 0;
  while (len < v.n && v.p[len] != '?' && v.p[len] != '#') len++;
  size_t a = 0;
  for (size_t i = 0; i + 2 < len; i++) {
    if (v.p[i] == '/') break;
    if (v.p[i] == ':' && v.p[i + 1] == '/' && v.p[i + 2] == '/') {
      a = i + 3;
      break;
    }
  }
  size_t from = 0, i = a;
  for (; i < v.n && v.p[i] != '/' && v.p[i] != '?' && v.p[i] != '#'; i++) {
    if (v.p[i] == '@') from = i + 1;
    if (v.p[i] == '%' && i + 2 < v.n && v.p[i + 1] == '4' && v.p[i + 2] == '0') from = i + 3;
  }
  size_t n = 0;
  if (from) {
    size_t head = a < cap - 2 ? a : cap - 2;
    memcpy(buf, v.p, head);
    buf[head] = '@';
    n = head + 1;
  }
  size_t rest = v.n - from, room = cap - 1 - n;
  if (rest > room) rest = room;
  memcpy(buf + n, v.p + from, rest);
  buf[n + rest] = '\0';
  return buf;
}

static void warn_url(const char *var, sv_t val, int why, const char *kept) {
  if (why == URL_USERINFO) {
    /* The userinfo part is a credential: never echo the URL. */
    DIAG(POLYTEL_LEVEL_WARN,
         "invalid %s (credentials in the URL are not supported, use OTEL_EXPORTER_OTLP_HEADERS; value not "
         "shown); using %s",
         var, kept);
  } else if (why == URL_PCT_HOST) {
    DIAG(POLYTEL_LEVEL_WARN,
         "invalid %s (a percent-escape in the host is not supported; value not shown); using %s", var, kept);
  } else {
    /* A query may carry an API key: the URL is shown without it. */
    char b[SHOW_BUF], raw[SHOW_MAX * 2 + 1];
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s=\"%s\" (expected %s); using %s", var,
         polytel__show_url(b, sizeof b, url_prefix(raw, sizeof raw, val)), URL_EXPECTED, kept);
  }
}

/* ------------------------------------------------------------ resolvers */

typedef struct kw_s {
  const char *word;
  int value;
} kw_t;

static const char *kw_name(const kw_t *t, int value) {
  for (; t->word; t++) {
    if (t->value == value) return t->word;
  }
  return "?";
}

/*
 * Keyword variable: explicit enum (when `explicit_val` != unset) > env > def.
 * An explicit value outside the table is warned about and ignored.
 */
static int resolve_kw(ctx_t *c, const char *field, int has, int explicit_val, int unset, const char *var,
                      const kw_t *tab, const char *expected, int def) {
  int bad_explicit = 0;
  if (has && explicit_val != unset) {
    for (const kw_t *t = tab; t->word; t++) {
      if (t->value == explicit_val) return explicit_val;
    }
    bad_explicit = 1;
  }
  int out = def;
  sv_t v;
  if (env(c, var, &v)) {
    const kw_t *t = tab;
    for (; t->word; t++) {
      if (sv_eq_ci(v, t->word)) break;
    }
    if (t->word) {
      out = t->value;
    } else {
      warn_invalid(var, v, expected, kw_name(tab, def));
    }
  }
  if (bad_explicit) {
    char fname[64];
    snprintf(fname, sizeof fname, "polytel_config_t.%s", field);
    warn_invalid_int(fname, explicit_val, expected, kw_name(tab, out));
  }
  return out;
}

/* Environment-only integer in [min, max]. */
static uint64_t resolve_uint_env(ctx_t *c, const char *var, uint64_t min, uint64_t max, uint64_t def) {
  sv_t v;
  uint64_t x = 0;
  if (!env(c, var, &v)) return def;
  if (parse_u64(v, &x) == 1 && x >= min && x <= max) return x;
  char expected[80], kept[24];
  snprintf(expected, sizeof expected, "an integer from %llu to %llu", (unsigned long long)min,
           (unsigned long long)max);
  snprintf(kept, sizeof kept, "%llu", (unsigned long long)def);
  warn_invalid(var, v, expected, kept);
  return def;
}

static int resolve_bool(ctx_t *c, int has, int explicit_val, const char *var, int def) {
  sv_t v;
  if (has && explicit_val != -1) return explicit_val != 0;
  if (!env(c, var, &v)) return def;
  char tmp[16];
  int b = -1;
  if (v.n < sizeof tmp) {
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = '\0';
    b = polytel__parse_bool(tmp);
  }
  if (b >= 0) return b;
  warn_invalid(var, v, "true/false/1/0/yes/no/on/off", def ? "true" : "false");
  return def;
}

/* A free-form string: explicit (non-empty after trimming) > env > NULL. */
static int pick_string(ctx_t *c, int has, const char *explicit_val, const char *var, sv_t *out) {
  if (has && explicit_val && sv_of(explicit_val).n > 0) {
    *out = sv_of(explicit_val);
    return 1;
  }
  return env(c, var, out);
}

/* service.name / service.version: at most POLYTEL__MAX_SERVICE_NAME bytes, cut at a character boundary. */
static char *bounded_name(ctx_t *c, const char *var, sv_t v) {
  if (v.n > POLYTEL__MAX_SERVICE_NAME) {
    char b[SHOW_BUF];
    size_t cut = utf8_cut(v.p, v.n, POLYTEL__MAX_SERVICE_NAME);
    DIAG(POLYTEL_LEVEL_WARN, "%s is %zu bytes, over the %d-byte limit; using its first %zu bytes (\"%s\")",
         var, v.n, POLYTEL__MAX_SERVICE_NAME, cut, show(b, sizeof b, v));
    v.n = cut;
  }
  return dup_n(c, v.p, v.n);
}

static char *resolve_name(ctx_t *c, int has, const char *explicit_val, const char *field, const char *var) {
  sv_t v;
  char fname[64];
  snprintf(fname, sizeof fname, "polytel_config_t.%s", field);
  if (has && explicit_val) {
    v = sv_of(explicit_val);
    if (v.n > 0 && polytel__utf8_valid(v.p, v.n)) return bounded_name(c, fname, v);
    if (v.n > 0) warn_invalid(fname, v, "valid UTF-8", "the environment or default");
  }
  if (!env(c, var, &v)) return NULL;
  if (polytel__utf8_valid(v.p, v.n)) return bounded_name(c, var, v);
  warn_invalid(var, v, "valid UTF-8", "the default");
  return NULL;
}

static void parse_pairs(ctx_t *c, const char *var, sv_t list, entry_fn fn, polytel__strpair_t **out,
                        size_t *n) {
  pairs_t ps = {var, NULL, 0, 0, 0, 0};
  for_each_entry(c, list, fn, &ps);
  *out = ps.v;
  *n = ps.n;
}

static void resolve_resource(ctx_t *c, polytel__cfg_t *o) {
  sv_t v;
  const char *var = "OTEL_RESOURCE_ATTRIBUTES";
  if (HAS(c, resource_attributes) && sv_of(c->u->resource_attributes).n > 0) {
    v = sv_of(c->u->resource_attributes);
    var = "polytel_config_t.resource_attributes";
  } else if (!env(c, var, &v)) {
    return;
  }
  parse_pairs(c, var, v, resource_entry, &o->resource_attrs, &o->n_resource_attrs);
}

/* One headers list; over HEADERS_MAX_BYTES it is ignored whole (a cut list could send half a credential). */
static void parse_headers(ctx_t *c, const char *var, sv_t v, polytel__strpair_t **out, size_t *n) {
  if (v.n > HEADERS_MAX_BYTES) {
    DIAG(POLYTEL_LEVEL_WARN, "%s is %zu bytes, over the %d-byte limit; no headers are sent", var, v.n,
         HEADERS_MAX_BYTES);
    return;
  }
  parse_pairs(c, var, v, header_entry, out, n);
}

/*
 * The general list (explicit > env), then the per-signal variables: as in the OTel SDKs, a signal's own
 * list replaces the general one for that signal (like a per-signal endpoint replaces the base).
 */
static void resolve_headers(ctx_t *c, polytel__cfg_t *o) {
  static const char *const per_signal[] = {"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                                           "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
                                           "OTEL_EXPORTER_OTLP_METRICS_HEADERS"};
  sv_t v;
  const char *var = "OTEL_EXPORTER_OTLP_HEADERS";
  int general = 1;
  if (HAS(c, headers) && sv_of(c->u->headers).n > 0) {
    v = sv_of(c->u->headers);
    var = "polytel_config_t.headers";
  } else if (!env(c, var, &v)) {
    general = 0;
  }
  if (general) parse_headers(c, var, v, &o->headers, &o->n_headers);
  for (int s = 0; s < 3; s++) {
    if (!env(c, per_signal[s], &v)) continue;
    o->has_signal_headers[s] = 1;
    parse_headers(c, per_signal[s], v, &o->signal_headers[s], &o->n_signal_headers[s]);
  }
}

/* Validated URL: explicit > env > fallback (NULL: none). Returns the chosen view in *out. */
static int resolve_url(ctx_t *c, int has, const char *explicit_val, const char *field, const char *var,
                       int base, const char *fallback_desc, sv_t *out) {
  int ui = 0, bad_explicit = 0, found = 0;
  sv_t ev = {"", 0};
  if (has && explicit_val) {
    ev = sv_of(explicit_val);
    if (ev.n > 0) {
      if (url_valid(ev, base, &ui)) {
        *out = ev;
        return 1;
      }
      bad_explicit = 1;
    }
  }
  sv_t v;
  int eui = 0;
  if (env(c, var, &v)) {
    if (url_valid(v, base, &eui)) {
      *out = v;
      found = 1;
    } else {
      warn_url(var, v, eui, fallback_desc);
    }
  }
  if (bad_explicit) {
    char fname[64], kept[SHOW_BUF], raw[SHOW_MAX * 2 + 1];
    snprintf(fname, sizeof fname, "polytel_config_t.%s", field);
    warn_url(fname, ev, ui,
             found ? polytel__show_url(kept, sizeof kept, url_prefix(raw, sizeof raw, *out)) : fallback_desc);
  }
  return found;
}

static char *join(ctx_t *c, sv_t a, const char *b) {
  size_t bn = strlen(b);
  char *s = malloc(a.n + bn + 1);
  if (!s) {
    c->oom = 1;
    return NULL;
  }
  memcpy(s, a.p, a.n);
  memcpy(s + a.n, b, bn + 1);
  return s;
}

static void resolve_endpoints(ctx_t *c, polytel__cfg_t *o) {
  sv_t base = {DEFAULT_ENDPOINT, sizeof DEFAULT_ENDPOINT - 1};
  resolve_url(c, HAS(c, endpoint), HAS(c, endpoint) ? c->u->endpoint : NULL, "endpoint",
              "OTEL_EXPORTER_OTLP_ENDPOINT", 1, DEFAULT_ENDPOINT, &base);
  while (base.n > 0 && base.p[base.n - 1] == '/') base.n--;
  o->endpoint = dup_n(c, base.p, base.n);

  static const char *const vars[] = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                                     "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"};
  static const char *const fields[] = {"traces_endpoint", "logs_endpoint", "metrics_endpoint"};
  static const char *const suffix[] = {"/v1/traces", "/v1/logs", "/v1/metrics"};
  const char *explicit_vals[3] = {NULL, NULL, NULL};
  int has[3] = {HAS(c, traces_endpoint), HAS(c, logs_endpoint), HAS(c, metrics_endpoint)};
  if (has[0]) explicit_vals[0] = c->u->traces_endpoint;
  if (has[1]) explicit_vals[1] = c->u->logs_endpoint;
  if (has[2]) explicit_vals[2] = c->u->metrics_endpoint;
  for (int s = 0; s < 3; s++) {
    char desc[SHOW_MAX + 24];
    char b[SHOW_BUF];
    snprintf(desc, sizeof desc, "%s%s", show(b, sizeof b, base), suffix[s]);
    sv_t v;
    if (resolve_url(c, has[s], explicit_vals[s], fields[s], vars[s], 0, desc, &v)) {
      o->signal_url[s] = dup_n(c, v.p, v.n);
    } else {
      o->signal_url[s] = join(c, base, suffix[s]);
    }
  }
}

enum { TLS_CA = 0, TLS_CERT = 1, TLS_KEY = 2 };

/* Never a file ("/dev/null" is not a directory): https fails closed, and libcurl's error says why. */
#define PEM_CA_PLACEHOLDER "/dev/null/PEM data in the CA variable, not a path"

/* A PEM block pasted where a path belongs: never echoed (a private key must not reach a log). */
static int looks_like_pem(sv_t v) {
  static const char begin[] = "-----BEGIN";
  if (memchr(v.p, '\n', v.n)) return 1;
  for (size_t i = 0; i + sizeof begin - 1 <= v.n; i++)
    if (memcmp(v.p + i, begin, sizeof begin - 1) == 0) return 1;
  return 0;
}

/*
 * One TLS file variable (explicit field first when `has`). An unreadable path is kept: for the CA, falling
 * back to the system CAs would quietly trust a collector the user did not name; for the client certificate
 * and key, libcurl then fails the request with its reason instead of connecting without them.
 */
static char *resolve_tls_file(ctx_t *c, int has, const char *explicit_val, const char *field, const char *var,
                              int kind) {
  static const char *const consequence[] = {
      "https exports will fail certificate verification",
      "https exports will fail: no client certificate can be presented",
      "https exports will fail: no client certificate can be presented"};
  sv_t v;
  char fname[64];
  if (!pick_string(c, has, explicit_val, var, &v)) return NULL;
  if (has && explicit_val && sv_of(explicit_val).n > 0) {
    snprintf(fname, sizeof fname, "polytel_config_t.%s", field);
    var = fname;
  }
  if (looks_like_pem(v)) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s (PEM data, expected the path of a PEM file; value not shown); %s",
         var, kind == TLS_CA ? consequence[TLS_CA] : "no client certificate is presented");
    /* The CA stays set so https fails closed; a client certificate or key is dropped, never passed on. */
    return kind == TLS_CA ? dup_n(c, PEM_CA_PLACEHOLDER, sizeof PEM_CA_PLACEHOLDER - 1) : NULL;
  }
  char *path = dup_n(c, v.p, v.n);
  if (path && access(path, R_OK) != 0) {
    char b[SHOW_BUF];
    int err = errno;
    DIAG(POLYTEL_LEVEL_WARN, "cannot read %s=\"%s\" (%s); %s", var, polytel__show_path(b, sizeof b, path),
         strerror(err), consequence[kind]);
  }
  return path;
}

/*
 * OTEL_EXPORTER_OTLP_{CERTIFICATE,CLIENT_CERTIFICATE,CLIENT_KEY} and their per-signal forms: each per-signal
 * variable replaces the general one for its signal. A key needs a certificate (a certificate alone may hold
 * its key: libcurl then reads both from that file).
 */
static void resolve_tls(ctx_t *c, polytel__cfg_t *o) {
  static const char *const vars[4][3] = {
      {"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
       "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
      {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
       "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"},
      {"OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
       "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY"},
      {"OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
       "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY"}};
  static const char *const fields[3] = {"certificate", "client_certificate", "client_key"};
  int has[3] = {HAS(c, certificate), HAS(c, client_certificate), HAS(c, client_key)};
  const char *ex[3] = {has[0] ? c->u->certificate : NULL, has[1] ? c->u->client_certificate : NULL,
                       has[2] ? c->u->client_key : NULL};
  char *general[2];
  for (int k = TLS_CA; k <= TLS_CERT; k++)
    general[k] = resolve_tls_file(c, has[k], ex[k], fields[k], vars[0][k], k);
  char **slot[2] = {o->tls_ca, o->tls_cert};
  for (int s = 0; s < 3; s++) {
    for (int k = TLS_CA; k <= TLS_CERT; k++) {
      slot[k][s] = resolve_tls_file(c, 0, NULL, NULL, vars[s + 1][k], k);
      if (!slot[k][s] && general[k]) slot[k][s] = dup_n(c, general[k], strlen(general[k]));
    }
  }
  /* Keys: which variable each signal would use (-1: none), and whether a certificate goes with it. A key
   * variable no signal can use gets one warning and is not read at all. */
  sv_t v;
  int set[4], src[3], used[4] = {0, 0, 0, 0};
  set[0] = pick_string(c, has[TLS_KEY], ex[TLS_KEY], vars[0][TLS_KEY], &v);
  for (int s = 0; s < 3; s++) set[s + 1] = env(c, vars[s + 1][TLS_KEY], &v);
  for (int s = 0; s < 3; s++) {
    src[s] = set[s + 1] ? s + 1 : set[0] ? 0 : -1;
    if (src[s] >= 0 && o->tls_cert[s]) used[src[s]] = 1;
  }
  for (int who = 0; who < 4; who++) {
    if (!set[who]) continue;
    int explicit_key = who == 0 && has[TLS_KEY] && ex[TLS_KEY] && sv_of(ex[TLS_KEY]).n > 0;
    if (!used[who]) {
      DIAG(POLYTEL_LEVEL_WARN, "%s is set without %s (a client key needs its certificate); ignored",
           explicit_key ? "polytel_config_t.client_key" : vars[who][TLS_KEY], vars[who][TLS_CERT]);
      continue;
    }
    char *key =
        who == 0 ? resolve_tls_file(c, has[TLS_KEY], ex[TLS_KEY], fields[TLS_KEY], vars[0][TLS_KEY], TLS_KEY)
                 : resolve_tls_file(c, 0, NULL, NULL, vars[who][TLS_KEY], TLS_KEY);
    for (int s = 0; s < 3; s++)
      if (key && src[s] == who && o->tls_cert[s]) o->tls_key[s] = dup_n(c, key, strlen(key));
    free(key);
  }
  o->certificate = general[TLS_CA];
  free(general[TLS_CERT]);
}

static void resolve_timeout(ctx_t *c, polytel__cfg_t *o) {
  int64_t t = HAS(c, timeout_ms) ? c->u->timeout_ms : -1;
  if (t >= 1 && t <= (int64_t)UINT32_MAX) {
    o->timeout_ms = (uint32_t)t;
    return;
  }
  o->timeout_ms = (uint32_t)resolve_uint_env(c, "OTEL_EXPORTER_OTLP_TIMEOUT", 1, UINT32_MAX, 10000);
  if (t != -1) {
    char kept[24];
    snprintf(kept, sizeof kept, "%u", o->timeout_ms);
    warn_invalid_int("polytel_config_t.timeout_ms", (long long)t, "-1 (unset) or 1 to 4294967295", kept);
  }
}

/* "16M", "512 KiB", "1048576": bytes, K/M/G suffixes are powers of 1024. */
static int parse_size(sv_t v, uint64_t *out) {
  size_t i = 0;
  while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9') i++;
  uint64_t x = 0, mult = 1;
  if (parse_u64((sv_t){v.p, i}, &x) != 1) return 0;
  sv_t suf = sv_trim(v.p + i, v.n - i);
  static const struct {
    const char *s;
    uint64_t m;
  } sfx[] = {{"", 1},           {"b", 1},           {"k", 1 << 10},      {"kb", 1 << 10},
             {"kib", 1 << 10},  {"m", 1 << 20},     {"mb", 1 << 20},     {"mib", 1 << 20},
             {"g", 1ull << 30}, {"gb", 1ull << 30}, {"gib", 1ull << 30}, {NULL, 0}};
  int ok = 0;
  for (int k = 0; sfx[k].s; k++) {
    if (sv_eq_ci(suf, sfx[k].s)) mult = sfx[k].m, ok = 1;
  }
  if (!ok || x > UINT64_MAX / mult) return 0;
  *out = x * mult;
  return 1;
}

static void resolve_max_memory(ctx_t *c, polytel__cfg_t *o) {
  int64_t m = HAS(c, max_memory_bytes) ? c->u->max_memory_bytes : -1;
  char kept[24];
  o->max_memory_bytes = POLYTEL__DEFAULT_MAX_MEMORY;
  if (m > 0) {
    o->max_memory_bytes = (uint64_t)m;
    if ((uint64_t)m < MIN_MAX_MEMORY) {
      o->max_memory_bytes = MIN_MAX_MEMORY;
      DIAG(POLYTEL_LEVEL_WARN,
           "polytel_config_t.max_memory_bytes=%lld is below the %llu-byte minimum; using %llu", (long long)m,
           (unsigned long long)MIN_MAX_MEMORY, (unsigned long long)MIN_MAX_MEMORY);
    }
    return;
  }
  sv_t v;
  uint64_t x = 0;
  if (env(c, "POLYTEL_MAX_MEMORY", &v)) {
    if (!parse_size(v, &x)) {
      snprintf(kept, sizeof kept, "%llu", (unsigned long long)POLYTEL__DEFAULT_MAX_MEMORY);
      warn_invalid("POLYTEL_MAX_MEMORY", v, "a byte count with an optional K, M or G suffix", kept);
    } else if (x < MIN_MAX_MEMORY) {
      char b[SHOW_BUF];
      DIAG(POLYTEL_LEVEL_WARN, "POLYTEL_MAX_MEMORY=\"%s\" is below the %llu-byte minimum; using %llu",
           show(b, sizeof b, v), (unsigned long long)MIN_MAX_MEMORY, (unsigned long long)MIN_MAX_MEMORY);
      o->max_memory_bytes = MIN_MAX_MEMORY;
    } else {
      o->max_memory_bytes = x;
    }
  }
  if (m != -1) {
    snprintf(kept, sizeof kept, "%llu", (unsigned long long)o->max_memory_bytes);
    warn_invalid_int("polytel_config_t.max_memory_bytes", (long long)m, "-1 (unset) or a positive byte count",
                     kept);
  }
}

static void resolve_batch(ctx_t *c, const char *prefix, uint32_t delay, polytel__batch_cfg_t *b) {
  char var[64], qvar[64];
  snprintf(var, sizeof var, "%s_SCHEDULE_DELAY", prefix);
  b->schedule_delay_ms = (uint32_t)resolve_uint_env(c, var, 1, UINT32_MAX, delay);
  snprintf(var, sizeof var, "%s_EXPORT_TIMEOUT", prefix);
  b->export_timeout_ms = (uint32_t)resolve_uint_env(c, var, 1, UINT32_MAX, 30000);
  snprintf(qvar, sizeof qvar, "%s_MAX_QUEUE_SIZE", prefix);
  b->max_queue_size = (uint32_t)resolve_uint_env(c, qvar, 1, UINT32_MAX, 2048);
  snprintf(var, sizeof var, "%s_MAX_EXPORT_BATCH_SIZE", prefix);
  b->max_export_batch_size = (uint32_t)resolve_uint_env(c, var, 1, UINT32_MAX, 512);
  if (b->max_export_batch_size > b->max_queue_size) {
    DIAG(POLYTEL_LEVEL_WARN, "%s=%u is larger than %s=%u; using %u", var, b->max_export_batch_size, qvar,
         b->max_queue_size, b->max_queue_size);
    b->max_export_batch_size = b->max_queue_size;
  }
}

static void resolve_signal_exporters(ctx_t *c, polytel__cfg_t *o) {
  static const char *const vars[] = {"OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER"};
  static const char *const what[] = {"spans are", "log records are", "metrics are"};
  for (int s = 0; s < 3; s++) {
    sv_t v;
    o->signal_enabled[s] = 1;
    if (!env(c, vars[s], &v)) continue;
    /* The spec allows a comma-separated list: exported when "otlp" is in it. */
    int otlp = 0, console = 0, bad = 0;
    size_t start = 0;
    for (size_t i = 0; i <= v.n; i++) {
      if (i < v.n && v.p[i] != ',') continue;
      sv_t w = sv_trim(v.p + start, i - start);
      start = i + 1;
      if (sv_eq_ci(w, "otlp")) {
        otlp = 1;
      } else if (sv_eq_ci(w, "console")) {
        console = 1;
      } else if (!sv_eq_ci(w, "none")) {
        bad = 1;
      }
    }
    if (bad) {
      warn_invalid(vars[s], v, "otlp, none or console", "otlp");
      continue;
    }
    o->signal_enabled[s] = otlp;
    if (console) {
      DIAG(POLYTEL_LEVEL_INFO,
           "%s=console: %s not exported; polytel's console (POLYTEL_CONSOLE) prints log records only",
           vars[s], what[s]);
    }
  }
}

static void resolve_color(ctx_t *c, polytel__cfg_t *o) {
  o->color = 0;
  if (o->console == POLYTEL_CONSOLE_OFF) return;
  if (c->get) {
    const char *no = c->get("NO_COLOR"), *force = c->get("FORCE_COLOR");
    if (no && *no) return;
    if (force && *force) {
      sv_t f = sv_of(force);
      if (!sv_eq_ci(f, "0") && !sv_eq_ci(f, "false")) {
        o->color = 1;
        return;
      }
    }
  }
  o->color = isatty(o->console == POLYTEL_CONSOLE_STDOUT ? STDOUT_FILENO : STDERR_FILENO) ? 1 : 0;
}

/* ------------------------------------------------------------ span model: sampler, propagators, limits */

/* A raw environment value for the parsers in propagation.c (they trim and take NULL as unset). */
static const char *env_raw(ctx_t *c, const char *name) {
  return c->get ? c->get(name) : NULL;
}

/* One limit variable: a count or a length in [0, UINT32_MAX - 1]; unset or bad keeps def. */
static uint32_t resolve_limit(ctx_t *c, const char *var, uint32_t def) {
  sv_t v;
  uint64_t x = 0;
  if (!env(c, var, &v)) return def;
  if (parse_u64(v, &x) == 1 && x < POLYTEL__NO_LIMIT) return (uint32_t)x;
  char kept[24];
  if (def == POLYTEL__NO_LIMIT)
    snprintf(kept, sizeof kept, "no limit");
  else
    snprintf(kept, sizeof kept, "%u", def);
  warn_invalid(var, v, "an integer from 0 to 4294967294", kept);
  return def;
}

static void resolve_trace(ctx_t *c, polytel__cfg_t *o) {
  char w[POLYTEL__PROP_WARN_CAP];
  polytel__sampler_parse(env_raw(c, "OTEL_TRACES_SAMPLER"), env_raw(c, "OTEL_TRACES_SAMPLER_ARG"),
                         &o->sampler, w, sizeof w);
  if (w[0]) DIAG(POLYTEL_LEVEL_WARN, "%s", w);
  o->propagators = polytel__propagators_parse(env_raw(c, "OTEL_PROPAGATORS"), w, sizeof w);
  if (w[0]) DIAG(POLYTEL_LEVEL_WARN, "%s", w);
  /* A model's own variable wins over the general one, which wins over the spec's default. */
  uint32_t count = resolve_limit(c, "OTEL_ATTRIBUTE_COUNT_LIMIT", 128);
  uint32_t len = resolve_limit(c, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", POLYTEL__NO_LIMIT);
  static const struct {
    const char *var;
    int general; /* 0: none, 1: the general count, 2: the general length */
    uint32_t def;
  } lim[POLYTEL__N_LIMITS] = {
      [POLYTEL__LIM_SPAN_ATTRS] = {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", 1, 128},
      [POLYTEL__LIM_SPAN_ATTR_LEN] = {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", 2, POLYTEL__NO_LIMIT},
      [POLYTEL__LIM_EVENTS] = {"OTEL_SPAN_EVENT_COUNT_LIMIT", 0, 128},
      [POLYTEL__LIM_LINKS] = {"OTEL_SPAN_LINK_COUNT_LIMIT", 0, 128},
      [POLYTEL__LIM_EVENT_ATTRS] = {"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", 1, 128},
      [POLYTEL__LIM_LINK_ATTRS] = {"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", 1, 128},
      [POLYTEL__LIM_LOG_ATTRS] = {"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", 1, 128},
      [POLYTEL__LIM_LOG_ATTR_LEN] = {"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", 2, POLYTEL__NO_LIMIT},
  };
  for (int i = 0; i < POLYTEL__N_LIMITS; i++)
    o->limits[i] = resolve_limit(c, lim[i].var,
                                 lim[i].general == 1   ? count
                                 : lim[i].general == 2 ? len
                                                       : lim[i].def);
}

static const char *sys_getenv(const char *name) {
  return getenv(name);
}

int polytel__cfg_resolve(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out) {
  static const kw_t protocols[] = {
      {"http/protobuf", POLYTEL_PROTOCOL_PROTOBUF}, {"http/json", POLYTEL_PROTOCOL_JSON}, {NULL, 0}};
  static const kw_t compressions[] = {{"none", POLYTEL_COMPRESSION_NONE},
                                      {"gzip", POLYTEL_COMPRESSION_GZIP},
                                      {"zstd", POLYTEL_COMPRESSION_ZSTD},
                                      {NULL, 0}};
  static const kw_t consoles[] = {{"stderr", POLYTEL_CONSOLE_STDERR},
                                  {"stdout", POLYTEL_CONSOLE_STDOUT},
                                  {"off", POLYTEL_CONSOLE_OFF},
                                  {NULL, 0}};
  static const kw_t formats[] = {
      {"text", POLYTEL_CONSOLE_FORMAT_TEXT}, {"json", POLYTEL_CONSOLE_FORMAT_JSON}, {NULL, 0}};
  static const kw_t levels[] = {
      {"trace", POLYTEL_LEVEL_TRACE}, {"debug", POLYTEL_LEVEL_DEBUG},  {"info", POLYTEL_LEVEL_INFO},
      {"warn", POLYTEL_LEVEL_WARN},   {"warning", POLYTEL_LEVEL_WARN}, {"error", POLYTEL_LEVEL_ERROR},
      {"fatal", POLYTEL_LEVEL_FATAL}, {"off", POLYTEL_LEVEL_OFF},      {NULL, 0}};
  static const kw_t exporters[] = {{"otlp", POLYTEL_EXPORTER_OTLP},
                                   {"file", POLYTEL_EXPORTER_FILE},
                                   {"none", POLYTEL_EXPORTER_NONE},
                                   {NULL, 0}};
  if (!out) return POLYTEL_EINVAL;
  memset(out, 0, sizeof *out);
  ctx_t c = {user, NULL, 0};
  if (user && user->struct_size < offsetof(polytel_config_t, use_env) + sizeof user->use_env) {
    DIAG(POLYTEL_LEVEL_WARN,
         "polytel_config_t was not filled by polytel_config_init() (struct_size=%u); using the "
         "environment and defaults",
         (unsigned)user->struct_size);
    c.u = NULL;
  }
  if (!c.u || c.u->use_env) c.get = get ? get : sys_getenv;

  out->telemetry_enabled =
      resolve_bool(&c, HAS(&c, telemetry_enabled), HAS(&c, telemetry_enabled) ? c.u->telemetry_enabled : -1,
                   "TELEMETRY_ENABLED", 0);
  out->sdk_disabled = resolve_bool(&c, HAS(&c, sdk_disabled), HAS(&c, sdk_disabled) ? c.u->sdk_disabled : -1,
                                   "OTEL_SDK_DISABLED", 0);

  resolve_resource(&c, out);
  out->service_name =
      resolve_name(&c, HAS(&c, service_name), HAS(&c, service_name) ? c.u->service_name : NULL,
                   "service_name", "OTEL_SERVICE_NAME");
  out->service_version =
      resolve_name(&c, HAS(&c, service_version), HAS(&c, service_version) ? c.u->service_version : NULL,
                   "service_version", "OTEL_SERVICE_VERSION");
  if (!out->service_name) {
    /* A service.name pair in the resource attributes beats the executable name. */
    for (size_t i = 0; i < out->n_resource_attrs; i++) {
      if (strcmp(out->resource_attrs[i].key, "service.name") == 0 && out->resource_attrs[i].value[0]) {
        free(out->service_name);
        out->service_name =
            bounded_name(&c, "OTEL_RESOURCE_ATTRIBUTES service.name", sv_of(out->resource_attrs[i].value));
      }
    }
  }
  if (!out->service_name && !c.oom) {
    char exe[256];
    size_t n = polytel__exe_name(exe, sizeof exe);
    out->service_name = dup_n(&c, exe, n);
  }
  sv_t lang = {"c", 1};
  if (HAS(&c, sdk_language) && c.u->sdk_language && sv_of(c.u->sdk_language).n > 0)
    lang = sv_of(c.u->sdk_language);
  out->sdk_language = dup_n(&c, lang.p, lang.n);

  resolve_endpoints(&c, out);
  resolve_headers(&c, out);
  resolve_tls(&c, out);

  /* grpc is the spec's default elsewhere: say plainly that it is not spoken here. */
  sv_t pv;
  if (!(HAS(&c, protocol) && c.u->protocol != POLYTEL_PROTOCOL_DEFAULT) &&
      env(&c, "OTEL_EXPORTER_OTLP_PROTOCOL", &pv) && sv_eq_ci(pv, "grpc")) {
    DIAG(POLYTEL_LEVEL_WARN,
         "invalid OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" (grpc is not supported, expected http/protobuf or "
         "http/json); using http/protobuf");
    out->protocol = POLYTEL_PROTOCOL_PROTOBUF;
  } else {
    out->protocol = resolve_kw(&c, "protocol", HAS(&c, protocol), HAS(&c, protocol) ? (int)c.u->protocol : 0,
                               POLYTEL_PROTOCOL_DEFAULT, "OTEL_EXPORTER_OTLP_PROTOCOL", protocols,
                               "http/protobuf or http/json", POLYTEL_PROTOCOL_PROTOBUF);
  }
  if (HAS(&c, compression_gzip) && c.u->compression_gzip != -1) {
    /* Any other non-zero value meant gzip before zstd existed, and still does. */
    int v = c.u->compression_gzip;
    out->gzip = v == POLYTEL_COMPRESSION_ZSTD ? v
                : v != 0                      ? POLYTEL_COMPRESSION_GZIP
                                              : POLYTEL_COMPRESSION_NONE;
  } else {
    out->gzip = resolve_kw(&c, "compression_gzip", 0, 0, 0, "OTEL_EXPORTER_OTLP_COMPRESSION", compressions,
                           "gzip, zstd or none", 0);
  }
  resolve_timeout(&c, out);

  out->console = resolve_kw(&c, "console", HAS(&c, console), HAS(&c, console) ? (int)c.u->console : 0,
                            POLYTEL_CONSOLE_DEFAULT, "POLYTEL_CONSOLE", consoles, "stderr, stdout or off",
                            POLYTEL_CONSOLE_STDERR);
  out->console_format =
      resolve_kw(&c, "console_format", HAS(&c, console_format),
                 HAS(&c, console_format) ? (int)c.u->console_format : 0, POLYTEL_CONSOLE_FORMAT_DEFAULT,
                 "POLYTEL_CONSOLE_FORMAT", formats, "text or json", POLYTEL_CONSOLE_FORMAT_TEXT);
  out->console_level = resolve_kw(
      &c, "console_level", HAS(&c, console_level), HAS(&c, console_level) ? c.u->console_level : -1, -1,
      "POLYTEL_LOG_LEVEL", levels, "trace, debug, info, warn, error, fatal or off", POLYTEL_LEVEL_INFO);
  resolve_color(&c, out);

  out->exporter = resolve_kw(&c, "exporter", HAS(&c, exporter), HAS(&c, exporter) ? (int)c.u->exporter : 0,
                             POLYTEL_EXPORTER_DEFAULT, "POLYTEL_EXPORTER", exporters, "otlp, file or none",
                             POLYTEL_EXPORTER_OTLP);
  sv_t dir = {DEFAULT_EXPORT_DIR, sizeof DEFAULT_EXPORT_DIR - 1};
  pick_string(&c, HAS(&c, export_dir), HAS(&c, export_dir) ? c.u->export_dir : NULL, "POLYTEL_EXPORT_DIR",
              &dir);
  out->export_dir = dup_n(&c, dir.p, dir.n);
  resolve_signal_exporters(&c, out);
  resolve_max_memory(&c, out);

  resolve_batch(&c, "OTEL_BSP", 5000, &out->bsp);
  resolve_batch(&c, "OTEL_BLRP", 1000, &out->blrp);
  out->metric_export_interval_ms =
      (uint32_t)resolve_uint_env(&c, "OTEL_METRIC_EXPORT_INTERVAL", 1, UINT32_MAX, 60000);
  out->metric_export_timeout_ms =
      (uint32_t)resolve_uint_env(&c, "OTEL_METRIC_EXPORT_TIMEOUT", 1, UINT32_MAX, 30000);
  out->max_metric_series = (uint32_t)resolve_uint_env(&c, "POLYTEL_MAX_METRIC_SERIES", 1, 1000000, 2000);
  resolve_trace(&c, out);

  if (c.oom) {
    polytel__cfg_free(out);
    return POLYTEL_ENOMEM;
  }
  return 0;
}

void polytel__cfg_free(polytel__cfg_t *cfg) {
  if (!cfg) return;
  free(cfg->service_name);
  free(cfg->service_version);
  free(cfg->sdk_language);
  pairs_free(cfg->resource_attrs, cfg->n_resource_attrs);
  free(cfg->endpoint);
  for (int i = 0; i < 3; i++) free(cfg->signal_url[i]);
  pairs_free(cfg->headers, cfg->n_headers);
  for (int i = 0; i < 3; i++) {
    pairs_free(cfg->signal_headers[i], cfg->n_signal_headers[i]);
    free(cfg->tls_ca[i]);
    free(cfg->tls_cert[i]);
    free(cfg->tls_key[i]);
  }
  free(cfg->certificate);
  free(cfg->export_dir);
  memset(cfg, 0, sizeof *cfg);
}

int polytel__cfg_resolve_quiet(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out) {
  t_quiet = 1;
  int rc = polytel__cfg_resolve(user, get, out);
  t_quiet = 0;
  return rc;
}
