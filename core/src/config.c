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
#define SHOW_MAX 64 /* bytes of a bad value echoed in a warning */
#define MAX_RESOURCE_ATTRS 128

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
  size_t n = v.n;
  const char *more = "";
  if (n > SHOW_MAX) {
    n = SHOW_MAX;
    while (n > 0 && ((unsigned char)v.p[n] & 0xC0) == 0x80) n--;
    more = "\xe2\x80\xa6";
  }
  snprintf(buf, cap, "%.*s%s", (int)n, v.p, more);
  return buf;
}

static void warn_invalid(const char *var, sv_t val, const char *expected, const char *kept) {
  char b[SHOW_MAX + 8];
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

/* OTEL_RESOURCE_ATTRIBUTES entry: key=value, percent-decoded; a repeated key replaces the earlier one. */
static void resource_entry(ctx_t *c, void *state, sv_t e, size_t num) {
  pairs_t *ps = state;
  char b[SHOW_MAX + 8];
  const char *eq = memchr(e.p, '=', e.n);
  if (ps->n >= MAX_RESOURCE_ATTRS) {
    /* Bounded: a resource is sent with every request, and duplicate checks are quadratic. */
    if (ps->n == MAX_RESOURCE_ATTRS && !ps->full) {
      DIAG(POLYTEL_LEVEL_WARN, "%s has more than %d entries; entry #%zu and later are skipped", ps->var,
           MAX_RESOURCE_ATTRS, num);
    }
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
  for (size_t i = 0; i < ps->n; i++) {
    if (strcmp(ps->v[i].key, ks) == 0) {
      free(ps->v[i].value);
      ps->v[i].value = vs;
      free(ks);
      return;
    }
  }
  pairs_push(c, ps, ks, vs);
}

/* RFC 9110 token characters. */
static int is_tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
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
  int key_ok = kn > 0;
  for (size_t i = 0; i < kn; i++) key_ok = key_ok && is_tchar((unsigned char)ks[i]);
  if (!key_ok) {
    DIAG(POLYTEL_LEVEL_WARN, "invalid %s entry #%zu (%s; value not shown); skipped", ps->var, num,
         kn ? "the key is not a valid HTTP header name" : "empty key");
    free(ks), free(vs);
    return;
  }
  /* A decoded CR/LF would let the value forge further request headers. */
  for (size_t i = 0; i < vn; i++) {
    unsigned char ch = (unsigned char)vs[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
      DIAG(POLYTEL_LEVEL_WARN,
           "invalid %s entry #%zu (%s: the value contains control characters; value not shown); skipped",
           ps->var, num, ks);
      free(ks), free(vs);
      return;
    }
  }
  if (bad) {
    DIAG(POLYTEL_LEVEL_WARN, "%s entry #%zu (%s) has an invalid percent-escape; kept as written", ps->var,
         num, ks);
  }
  pairs_push(c, ps, ks, vs);
}

/* ------------------------------------------------------------ URLs */

static const char *const URL_EXPECTED = "an http:// or https:// URL with a host and an optional port 1-65535";

/*
 * http(s)://host[:port][/path] in printable ASCII. A base endpoint (base != 0)
 * takes no query or fragment, since /v1/<signal> is appended to it.
 */
static int url_valid(sv_t v, int base, int *has_userinfo) {
  size_t i;
  *has_userinfo = 0;
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
    *has_userinfo = 1;
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
            strchr("-._~%", ch)))
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

static void warn_url(const char *var, sv_t val, int userinfo, const char *kept) {
  if (userinfo) {
    /* The userinfo part is a credential: never echo the URL. */
    DIAG(POLYTEL_LEVEL_WARN,
         "invalid %s (credentials in the URL are not supported, use OTEL_EXPORTER_OTLP_HEADERS; value not "
         "shown); using %s",
         var, kept);
  } else {
    warn_invalid(var, val, URL_EXPECTED, kept);
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

static char *resolve_name(ctx_t *c, int has, const char *explicit_val, const char *field, const char *var) {
  sv_t v;
  char fname[64];
  if (has && explicit_val) {
    v = sv_of(explicit_val);
    if (v.n > 0 && polytel__utf8_valid(v.p, v.n)) return dup_n(c, v.p, v.n);
    if (v.n > 0) {
      snprintf(fname, sizeof fname, "polytel_config_t.%s", field);
      warn_invalid(fname, v, "valid UTF-8", "the environment or default");
    }
  }
  if (!env(c, var, &v)) return NULL;
  if (polytel__utf8_valid(v.p, v.n)) return dup_n(c, v.p, v.n);
  warn_invalid(var, v, "valid UTF-8", "the default");
  return NULL;
}

static void parse_pairs(ctx_t *c, const char *var, sv_t list, entry_fn fn, polytel__strpair_t **out,
                        size_t *n) {
  pairs_t ps = {var, NULL, 0, 0, 0};
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

static void resolve_headers(ctx_t *c, polytel__cfg_t *o) {
  static const char *const per_signal[] = {"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                                           "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
                                           "OTEL_EXPORTER_OTLP_METRICS_HEADERS"};
  sv_t v;
  const char *var = "OTEL_EXPORTER_OTLP_HEADERS";
  for (int i = 0; i < 3; i++) {
    if (env(c, per_signal[i], &v)) {
      DIAG(POLYTEL_LEVEL_WARN, "%s is not supported (use OTEL_EXPORTER_OTLP_HEADERS); ignored",
           per_signal[i]);
    }
  }
  if (HAS(c, headers) && sv_of(c->u->headers).n > 0) {
    v = sv_of(c->u->headers);
    var = "polytel_config_t.headers";
  } else if (!env(c, var, &v)) {
    return;
  }
  if (v.n > HEADERS_MAX_BYTES) {
    DIAG(POLYTEL_LEVEL_WARN, "%s is %zu bytes, over the %d-byte limit; no headers are sent", var, v.n,
         HEADERS_MAX_BYTES);
    return;
  }
  parse_pairs(c, var, v, header_entry, &o->headers, &o->n_headers);
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
    char fname[64], kept[SHOW_MAX + 8];
    snprintf(fname, sizeof fname, "polytel_config_t.%s", field);
    warn_url(fname, ev, ui, found ? show(kept, sizeof kept, *out) : fallback_desc);
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
    char b[SHOW_MAX + 8];
    snprintf(desc, sizeof desc, "%s%s", show(b, sizeof b, base), suffix[s]);
    sv_t v;
    if (resolve_url(c, has[s], explicit_vals[s], fields[s], vars[s], 0, desc, &v)) {
      o->signal_url[s] = dup_n(c, v.p, v.n);
    } else {
      o->signal_url[s] = join(c, base, suffix[s]);
    }
  }
}

static void resolve_certificate(ctx_t *c, polytel__cfg_t *o) {
  sv_t v;
  const char *var = HAS(c, certificate) && sv_of(c->u->certificate).n > 0 ? "polytel_config_t.certificate"
                                                                          : "OTEL_EXPORTER_OTLP_CERTIFICATE";
  if (!pick_string(c, HAS(c, certificate), HAS(c, certificate) ? c->u->certificate : NULL,
                   "OTEL_EXPORTER_OTLP_CERTIFICATE", &v))
    return;
  o->certificate = dup_n(c, v.p, v.n);
  if (o->certificate && access(o->certificate, R_OK) != 0) {
    char b[SHOW_MAX + 8];
    /* Kept anyway: falling back to the system CAs would quietly trust a collector the user did not name. */
    DIAG(POLYTEL_LEVEL_WARN, "cannot read %s=\"%s\" (%s); https exports will fail certificate verification",
         var, show(b, sizeof b, v), strerror(errno));
  }
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
      char b[SHOW_MAX + 8];
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

static const char *sys_getenv(const char *name) {
  return getenv(name);
}

int polytel__cfg_resolve(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out) {
  static const kw_t protocols[] = {
      {"http/protobuf", POLYTEL_PROTOCOL_PROTOBUF}, {"http/json", POLYTEL_PROTOCOL_JSON}, {NULL, 0}};
  static const kw_t compressions[] = {{"none", 0}, {"gzip", 1}, {NULL, 0}};
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
        out->service_name = dup_n(&c, out->resource_attrs[i].value, strlen(out->resource_attrs[i].value));
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
  resolve_certificate(&c, out);

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
    out->gzip = c.u->compression_gzip != 0;
  } else {
    out->gzip = resolve_kw(&c, "compression_gzip", 0, 0, 0, "OTEL_EXPORTER_OTLP_COMPRESSION", compressions,
                           "gzip or none", 0);
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
