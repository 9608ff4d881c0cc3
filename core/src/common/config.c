/* config.c — resolves polytel_config_t, then the environment, then defaults; one warning per bad value. */
#include "common/config.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/console.h"
#include "common/process.h"
#include "common/types.h"

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

/* ------------------------------------------------------------ the schema (options.h) */

enum { LISTED = 0, ALIAS = 1, SETTER = 2, REFUSED = 3 };

typedef struct kw_s {
  const char *word;
  int value;
  int how;
} kw_t;

enum { T_BOOL, T_UINT, T_SIZE, T_CHOICE, T_STRING, T_CTEXT, T_CUSTOM };

typedef struct opt_s {
  const char *key, *env;
  int type;
  int64_t def_i;
  const char *def_s;
  uint64_t lo, hi;
  const kw_t *ch;
  int has_user; /* an explicit field: at uoff (usize bytes), `unset` when not set */
  size_t uoff, usize;
  int64_t unset;
  const char *ufield;
  size_t moff, msize; /* the polytel__cfg_t member */
} opt_t;

#define KW(word, value, how) {word, value, how},
#define KW_LEVEL(name, value, text) KW(text, POLYTEL_LEVEL_##name, LISTED)
#define CH(ch) ((const kw_t[]){POLYTEL__CHOICES_##ch(KW){NULL, 0, 0}})
#define DEF_BOOL(d) (int64_t)(d), NULL
#define DEF_UINT(d) (int64_t)(d), NULL
#define DEF_SIZE(d) (int64_t)(d), NULL
#define DEF_CHOICE(d) (int64_t)(d), NULL
#define DEF_STRING(d) 0, d
#define DEF_CTEXT(d) 0, d
#define DEF_CUSTOM(d) 0, d
#define U_UF(f, u) 1, offsetof(polytel_config_t, f), sizeof(((polytel_config_t *)0)->f), (int64_t)(u), #f
#define U_NOUF 0, 0, 0, 0, NULL
#define MEM_AT(path) offsetof(polytel__cfg_t, path), sizeof(((polytel__cfg_t *)0)->path)
#define OPT_ROW(key, type, env, def, lo, hi, ch, user, mem) \
  {#key,                                                    \
   env,                                                     \
   T_##type,                                                \
   DEF_##type(def),                                         \
   (uint64_t)(lo),                                          \
   (uint64_t)(hi),                                          \
   CH(ch),                                                  \
   U_##user,                                                \
   MEM_AT(POLYTEL__MEM_PATH_##mem(key))},
static const opt_t g_opts[POLYTEL__OPT_COUNT] = {POLYTEL__CONFIG_OPTIONS(OPT_ROW)};
#undef OPT_ROW

#define BOOL_EXPECTED_LIT "true/false/1/0/yes/no/on/off"
#define SIZE_EXPECTED_LIT "a byte count with an optional K, M or G suffix"
static const char *const BOOL_EXPECTED = BOOL_EXPECTED_LIT;
static const char *const SIZE_EXPECTED = SIZE_EXPECTED_LIT;

static int opt_find(const char *key) {
  for (int i = 0; i < POLYTEL__OPT_COUNT; i++)
    if (strcmp(g_opts[i].key, key) == 0) return i;
  return -1;
}

static const char *kw_name(const kw_t *t, int value) {
  for (; t->word; t++) {
    if (t->value == value && t->how == LISTED) return t->word;
  }
  return "?";
}

static int kw_has(const kw_t *t, int64_t value) {
  for (; t->word; t++) {
    if (t->value == value && t->how != REFUSED) return 1;
  }
  return 0;
}

/* A word of the table (any case); setter: the bindings' spellings count too. NULL when none. */
static const kw_t *kw_find(const kw_t *t, sv_t v, int setter) {
  for (; t->word; t++) {
    if ((t->how != SETTER || setter) && sv_eq_ci(v, t->word)) return t;
  }
  return NULL;
}

/* "a, b or c": the LISTED words. */
static const char *kw_expected(const kw_t *t, char *buf, size_t cap) {
  size_t n = 0, total = 0, k = 0;
  for (const kw_t *p = t; p->word; p++) total += p->how == LISTED;
  buf[0] = '\0';
  for (; t->word; t++) {
    if (t->how != LISTED) continue;
    k++;
    const char *sep = k == 1 ? "" : k == total ? " or " : ", ";
    int w = snprintf(buf + n, cap - n, "%s%s", sep, t->word);
    if (w < 0 || (size_t)w >= cap - n) break;
    n += (size_t)w;
  }
  return buf;
}

/* The expected text of an option's values, for warnings and polytel_config_set's errors. */
static const char *opt_expected(const opt_t *o, char *buf, size_t cap) {
  switch (o->type) {
    case T_BOOL:
      return BOOL_EXPECTED;
    case T_UINT:
      snprintf(buf, cap, "an integer from %llu to %llu", (unsigned long long)o->lo,
               (unsigned long long)o->hi);
      return buf;
    case T_SIZE:
      return SIZE_EXPECTED;
    case T_CHOICE:
      return kw_expected(o->ch, buf, cap);
    default:
      return "text";
  }
}

static int64_t load_int(const void *p, size_t size) {
  if (size == 8) {
    int64_t x;
    memcpy(&x, p, 8);
    return x;
  }
  int x;
  memcpy(&x, p, sizeof x);
  return x;
}

static void store_int(void *p, size_t size, int64_t v) {
  if (size == 8) {
    memcpy(p, &v, 8);
  } else if (size == 4) {
    uint32_t x = (uint32_t)v;
    memcpy(p, &x, 4);
  }
}

/* The explicit field of option o, when the caller's struct has it: 1 and *v, else 0. */
static int user_field(const ctx_t *c, const opt_t *o, int64_t *v) {
  if (!o->has_user || !c->u || o->uoff + o->usize > c->u->struct_size) return 0;
  *v = load_int((const char *)c->u + o->uoff, o->usize);
  return 1;
}

/* The text polytel_config_set() kept for option id (an option without a field), or NULL. */
static const char *user_extra(const ctx_t *c, int id) {
  if (!c->u || !HAS(c, polytel__extra)) return NULL;
  uint32_t n =
      c->u->polytel__n_extra < POLYTEL_CONFIG_EXTRA_MAX ? c->u->polytel__n_extra : POLYTEL_CONFIG_EXTRA_MAX;
  for (uint32_t i = 0; i < n; i++)
    if (c->u->polytel__extra[i].option == (uint32_t)id) return c->u->polytel__extra[i].value;
  return NULL;
}

/*
 * The text of option id that is not in a field: the config's extra, else its environment variable. 0 when
 * neither is set (or empty). *name says where it came from, for warnings.
 */
static int opt_text(ctx_t *c, int id, sv_t *out, const char **name, char *namebuf, size_t cap) {
  const char *x = user_extra(c, id);
  if (x && sv_of(x).n > 0) {
    *out = sv_of(x);
    snprintf(namebuf, cap, "polytel_config_t.%s", g_opts[id].key);
    *name = namebuf;
    return 2;
  }
  *name = g_opts[id].env;
  return g_opts[id].env ? env(c, g_opts[id].env, out) : 0;
}

static void mem_store_int(polytel__cfg_t *out, const opt_t *o, int64_t v) {
  store_int((char *)out + o->moff, o->msize, v);
}

static int64_t mem_load_int(const polytel__cfg_t *cfg, const opt_t *o) {
  if (o->msize == 8) {
    uint64_t x;
    memcpy(&x, (const char *)cfg + o->moff, 8);
    return (int64_t)x;
  }
  uint32_t x;
  memcpy(&x, (const char *)cfg + o->moff, 4);
  return o->type == T_UINT ? (int64_t)x : (int64_t)(int32_t)x;
}

static int parse_bool_sv(sv_t v) {
  static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (sv_eq_ci(v, yes[i])) return 1;
    if (sv_eq_ci(v, no[i])) return 0;
  }
  return -1;
}

static int parse_size(sv_t v, uint64_t *out);

static void resolve_bool_opt(ctx_t *c, int id, polytel__cfg_t *out) {
  const opt_t *o = &g_opts[id];
  int64_t uv, r = o->def_i;
  sv_t v;
  const char *name;
  char nb[80];
  if (user_field(c, o, &uv) && uv != o->unset) {
    r = uv != 0;
  } else if (opt_text(c, id, &v, &name, nb, sizeof nb)) {
    int b = parse_bool_sv(v);
    if (b >= 0)
      r = b;
    else
      warn_invalid(name, v, BOOL_EXPECTED, o->def_i ? "true" : "false");
  }
  mem_store_int(out, o, r);
}

static void resolve_uint_opt(ctx_t *c, int id, polytel__cfg_t *out) {
  const opt_t *o = &g_opts[id];
  int64_t uv = 0;
  int has = user_field(c, o, &uv) && uv != o->unset;
  if (has && uv >= (int64_t)o->lo && (uint64_t)uv <= o->hi) {
    mem_store_int(out, o, uv);
    return;
  }
  uint64_t r = (uint64_t)o->def_i, x = 0;
  sv_t v;
  const char *name;
  char nb[80], exp[80], kept[24];
  if (opt_text(c, id, &v, &name, nb, sizeof nb)) {
    if (parse_u64(v, &x) == 1 && x >= o->lo && x <= o->hi) {
      r = x;
    } else {
      snprintf(kept, sizeof kept, "%llu", (unsigned long long)r);
      warn_invalid(name, v, opt_expected(o, exp, sizeof exp), kept);
    }
  }
  mem_store_int(out, o, (int64_t)r);
  if (has) {
    char fname[64];
    snprintf(fname, sizeof fname, "polytel_config_t.%s", o->ufield);
    snprintf(exp, sizeof exp, "-1 (unset) or %llu to %llu", (unsigned long long)o->lo,
             (unsigned long long)o->hi);
    snprintf(kept, sizeof kept, "%llu", (unsigned long long)r);
    warn_invalid_int(fname, (long long)uv, exp, kept);
  }
}

/* Sizes: at least o->lo; a smaller one is raised to it (with a line), a bad one falls back to the default. */
static void resolve_size_opt(ctx_t *c, int id, polytel__cfg_t *out) {
  const opt_t *o = &g_opts[id];
  int64_t uv = 0;
  int has = user_field(c, o, &uv) && uv != o->unset;
  char fname[64], kept[24];
  if (has) snprintf(fname, sizeof fname, "polytel_config_t.%s", o->ufield);
  if (has && uv > 0) {
    uint64_t r = (uint64_t)uv;
    if (r < o->lo) {
      r = o->lo;
      DIAG(POLYTEL_LEVEL_WARN, "%s=%lld is below the %llu-byte minimum; using %llu", fname, (long long)uv,
           (unsigned long long)o->lo, (unsigned long long)o->lo);
    }
    mem_store_int(out, o, (int64_t)r);
    return;
  }
  uint64_t r = (uint64_t)o->def_i, x = 0;
  sv_t v;
  const char *name;
  char nb[80];
  if (opt_text(c, id, &v, &name, nb, sizeof nb)) {
    if (!parse_size(v, &x)) {
      snprintf(kept, sizeof kept, "%llu", (unsigned long long)r);
      warn_invalid(name, v, SIZE_EXPECTED, kept);
    } else if (x < o->lo) {
      char b[SHOW_BUF];
      DIAG(POLYTEL_LEVEL_WARN, "%s=\"%s\" is below the %llu-byte minimum; using %llu", name,
           show(b, sizeof b, v), (unsigned long long)o->lo, (unsigned long long)o->lo);
      r = o->lo;
    } else {
      r = x;
    }
  }
  mem_store_int(out, o, (int64_t)r);
  if (has) {
    snprintf(kept, sizeof kept, "%llu", (unsigned long long)r);
    warn_invalid_int(fname, (long long)uv, "-1 (unset) or a positive byte count", kept);
  }
}

/* An explicit value other than a choice's, read as the field meant it before the choice existed. */
static int64_t explicit_fixup(int id, int64_t v) {
  /* compression_gzip predates zstd: any other non-zero value meant gzip, and still does. */
  if (id == POLYTEL__OPT_compression && v != 0 && !kw_has(g_opts[id].ch, v)) return 1;
  return v;
}

static void resolve_choice_opt(ctx_t *c, int id, polytel__cfg_t *out) {
  const opt_t *o = &g_opts[id];
  int64_t uv = 0;
  int has = user_field(c, o, &uv) && uv != o->unset;
  if (has) uv = explicit_fixup(id, uv);
  if (has && kw_has(o->ch, uv)) {
    mem_store_int(out, o, uv);
    return;
  }
  int r = (int)o->def_i;
  sv_t v;
  const char *name;
  char nb[80], exp[160];
  int from = opt_text(c, id, &v, &name, nb, sizeof nb);
  if (from) {
    const kw_t *k = kw_find(o->ch, v, from == 2);
    if (k && k->how != REFUSED) {
      r = k->value;
    } else if (k) {
      char b[SHOW_BUF];
      DIAG(POLYTEL_LEVEL_WARN, "invalid %s=\"%s\" (%s is not supported, expected %s); using %s", name,
           show(b, sizeof b, v), k->word, kw_expected(o->ch, exp, sizeof exp), kw_name(o->ch, r));
    } else {
      warn_invalid(name, v, kw_expected(o->ch, exp, sizeof exp), kw_name(o->ch, r));
    }
  }
  mem_store_int(out, o, r);
  if (has) {
    char fname[64];
    snprintf(fname, sizeof fname, "polytel_config_t.%s", o->ufield);
    warn_invalid_int(fname, (long long)uv, kw_expected(o->ch, exp, sizeof exp), kw_name(o->ch, r));
  }
}

static const char *user_string(const ctx_t *c, const opt_t *o, int *has) {
  *has = o->has_user && c->u && o->uoff + sizeof(const char *) <= c->u->struct_size;
  if (!*has) return NULL;
  const char *s;
  memcpy(&s, (const char *)c->u + o->uoff, sizeof s);
  return s;
}

/* A free-form string: explicit (non-empty after trimming) > extra or env > default. */
static void resolve_string_opt(ctx_t *c, int id, polytel__cfg_t *out) {
  const opt_t *o = &g_opts[id];
  int has;
  const char *ex = user_string(c, o, &has), *name;
  char nb[80];
  sv_t v = sv_of(o->def_s);
  if (has && ex && sv_of(ex).n > 0)
    v = sv_of(ex);
  else
    opt_text(c, id, &v, &name, nb, sizeof nb);
  char *s = o->def_s || v.n ? dup_n(c, v.p, v.n) : NULL;
  memcpy((char *)out + o->moff, &s, sizeof s);
}

/* ------------------------------------------------------------ resolvers */

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
    if (who == 0)
      o->client_key = key;
    else
      free(key);
  }
  o->certificate = general[TLS_CA];
  o->client_certificate = general[TLS_CERT];
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
  o->general_limits[0] = count;
  o->general_limits[1] = len;
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

static void resolve_service(ctx_t *c, polytel__cfg_t *out) {
  int has;
  const char *ex = user_string(c, &g_opts[POLYTEL__OPT_service_name], &has);
  out->service_name = resolve_name(c, has, ex, "service_name", "OTEL_SERVICE_NAME");
  ex = user_string(c, &g_opts[POLYTEL__OPT_service_version], &has);
  out->service_version = resolve_name(c, has, ex, "service_version", "OTEL_SERVICE_VERSION");
  if (!out->service_name) {
    /* A service.name pair in the resource attributes beats the executable name. */
    for (size_t i = 0; i < out->n_resource_attrs; i++) {
      if (strcmp(out->resource_attrs[i].key, "service.name") == 0 && out->resource_attrs[i].value[0]) {
        free(out->service_name);
        out->service_name =
            bounded_name(c, "OTEL_RESOURCE_ATTRIBUTES service.name", sv_of(out->resource_attrs[i].value));
      }
    }
  }
  if (!out->service_name && !c->oom) {
    char exe[256];
    size_t n = polytel__exe_name(exe, sizeof exe);
    out->service_name = dup_n(c, exe, n);
  }
  sv_t lang = {"c", 1};
  ex = user_string(c, &g_opts[POLYTEL__OPT_sdk_language], &has);
  if (has && ex && sv_of(ex).n > 0) lang = sv_of(ex);
  out->sdk_language = dup_n(c, lang.p, lang.n);
}

/* CUSTOM options: their own resolvers. Options resolved together are done at the first of them. */
static void resolve_custom(ctx_t *c, int id, polytel__cfg_t *out) {
  switch (id) {
    case POLYTEL__OPT_use_env:
      out->use_env = c->get != NULL;
      break;
    case POLYTEL__OPT_resource_attributes:
      resolve_resource(c, out);
      break;
    case POLYTEL__OPT_service_name: /* with service_version and sdk_language */
      resolve_service(c, out);
      break;
    case POLYTEL__OPT_endpoint: /* with the three per-signal URLs */
      resolve_endpoints(c, out);
      break;
    case POLYTEL__OPT_headers: /* with the three per-signal lists */
      resolve_headers(c, out);
      break;
    case POLYTEL__OPT_certificate: /* with the client certificate and key, general and per signal */
      resolve_tls(c, out);
      break;
    case POLYTEL__OPT_traces_exporter: /* with logs and metrics */
      resolve_signal_exporters(c, out);
      break;
    case POLYTEL__OPT_traces_sampler: /* with its arg, the propagators and every limit */
      resolve_trace(c, out);
      break;
    default:
      break;
  }
}

/* Corrections that need more than one option. */
static void resolve_after(ctx_t *c, int id, polytel__cfg_t *out) {
  polytel__batch_cfg_t *b = NULL;
  int q = 0;
  switch (id) {
    case POLYTEL__OPT_console_level:
      resolve_color(c, out);
      return;
    case POLYTEL__OPT_bsp_max_export_batch_size:
      b = &out->bsp, q = POLYTEL__OPT_bsp_max_queue_size;
      break;
    case POLYTEL__OPT_blrp_max_export_batch_size:
      b = &out->blrp, q = POLYTEL__OPT_blrp_max_queue_size;
      break;
    default:
      return;
  }
  if (b->max_export_batch_size > b->max_queue_size) {
    DIAG(POLYTEL_LEVEL_WARN, "%s=%u is larger than %s=%u; using %u", g_opts[id].env, b->max_export_batch_size,
         g_opts[q].env, b->max_queue_size, b->max_queue_size);
    b->max_export_batch_size = b->max_queue_size;
  }
}

static const char *sys_getenv(const char *name) {
  return getenv(name);
}

int polytel__cfg_resolve(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out) {
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

  for (int id = 0; id < POLYTEL__OPT_COUNT; id++) {
    switch (g_opts[id].type) {
      case T_BOOL:
        resolve_bool_opt(&c, id, out);
        break;
      case T_UINT:
        resolve_uint_opt(&c, id, out);
        break;
      case T_SIZE:
        resolve_size_opt(&c, id, out);
        break;
      case T_CHOICE:
        resolve_choice_opt(&c, id, out);
        break;
      case T_STRING:
        resolve_string_opt(&c, id, out);
        break;
      default:
        resolve_custom(&c, id, out);
        break;
    }
    resolve_after(&c, id, out);
  }

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
  free(cfg->client_certificate);
  free(cfg->client_key);
  for (int id = 0; id < POLYTEL__OPT_COUNT; id++) {
    if (g_opts[id].type != T_STRING) continue;
    char *s;
    memcpy(&s, (char *)cfg + g_opts[id].moff, sizeof s);
    free(s);
  }
  memset(cfg, 0, sizeof *cfg);
}

int polytel__cfg_resolve_quiet(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out) {
  t_quiet = 1;
  int rc = polytel__cfg_resolve(user, get, out);
  t_quiet = 0;
  return rc;
}

/* ------------------------------------------------------------ polytel_config_set */

static __thread char t_err[SHOW_BUF + 224];

const char *polytel_config_error(void) {
  return t_err;
}

static int set_error(const char *key, const char *value, const char *why) {
  char k[SHOW_BUF], v[SHOW_BUF];
  if (value)
    snprintf(t_err, sizeof t_err, "invalid %s=\"%s\" (%s)", polytel__show(k, sizeof k, key, strlen(key)),
             polytel__show(v, sizeof v, value, strlen(value)), why);
  else
    snprintf(t_err, sizeof t_err, "%s: %s", polytel__show(k, sizeof k, key, strlen(key)), why);
  return POLYTEL_EINVAL;
}

static int set_extra(polytel_config_t *cfg, int id, const char *value) {
  uint32_t n =
      cfg->polytel__n_extra < POLYTEL_CONFIG_EXTRA_MAX ? cfg->polytel__n_extra : POLYTEL_CONFIG_EXTRA_MAX;
  for (uint32_t i = 0; i < n; i++) {
    if (cfg->polytel__extra[i].option != (uint32_t)id) continue;
    if (value) {
      cfg->polytel__extra[i].value = value;
    } else { /* unset: the last one takes its place */
      cfg->polytel__extra[i] = cfg->polytel__extra[n - 1];
      cfg->polytel__n_extra = n - 1;
    }
    return 0;
  }
  if (!value) return 0;
  if (n == POLYTEL_CONFIG_EXTRA_MAX) {
    char why[96];
    snprintf(why, sizeof why, "more than %d options without a polytel_config_t field in one config",
             POLYTEL_CONFIG_EXTRA_MAX);
    return set_error(g_opts[id].key, NULL, why);
  }
  cfg->polytel__extra[n].option = (uint32_t)id;
  cfg->polytel__extra[n].value = value;
  cfg->polytel__n_extra = n + 1;
  return 0;
}

int polytel_config_set(polytel_config_t *cfg, const char *key, const char *value) {
  t_err[0] = '\0';
  if (!cfg || !key) {
    snprintf(t_err, sizeof t_err, "polytel_config_set: %s is NULL", cfg ? "the key" : "the config");
    return POLYTEL_EINVAL;
  }
  if (cfg->struct_size < offsetof(polytel_config_t, polytel__extra) + sizeof cfg->polytel__extra) {
    snprintf(t_err, sizeof t_err, "polytel_config_set: the config was not filled by polytel_config_init()");
    return POLYTEL_EINVAL;
  }
  int id = opt_find(key);
  if (id < 0) return set_error(key, NULL, "unknown option");
  const opt_t *o = &g_opts[id];
  char exp[160];
  int64_t iv = 0;
  if (value) {
    sv_t v = sv_of(value);
    uint64_t x = 0;
    switch (o->type) {
      case T_BOOL: {
        int b = parse_bool_sv(v);
        if (b < 0) return set_error(key, value, "expected " BOOL_EXPECTED_LIT);
        iv = b;
        break;
      }
      case T_UINT:
        if (parse_u64(v, &x) != 1 || x < o->lo || x > o->hi) {
          char why[200];
          snprintf(why, sizeof why, "expected %s", opt_expected(o, exp, sizeof exp));
          return set_error(key, value, why);
        }
        iv = (int64_t)x;
        break;
      case T_SIZE:
        if (!parse_size(v, &x) || x == 0 || x > INT64_MAX)
          return set_error(key, value, "expected " SIZE_EXPECTED_LIT);
        iv = (int64_t)x;
        break;
      case T_CHOICE: {
        const kw_t *k = kw_find(o->ch, v, 1);
        if (!k) {
          /* A choice's number is taken too (a level's severity number, say). */
          if (parse_u64(v, &x) == 1 && x <= INT32_MAX && kw_has(o->ch, (int64_t)x)) {
            iv = (int64_t)x;
            break;
          }
          char why[200];
          snprintf(why, sizeof why, "expected %s", kw_expected(o->ch, exp, sizeof exp));
          return set_error(key, value, why);
        }
        if (k->how == REFUSED) {
          char why[200];
          snprintf(why, sizeof why, "%s is not supported, expected %s", k->word,
                   kw_expected(o->ch, exp, sizeof exp));
          return set_error(key, value, why);
        }
        iv = k->value;
        break;
      }
      default:
        break;
    }
  }
  if (!o->has_user) {
    if (o->type == T_CUSTOM || o->type == T_CTEXT) {
      char why[120];
      snprintf(why, sizeof why, "can only be set by the environment variable %s", o->env ? o->env : "(none)");
      return set_error(key, NULL, why);
    }
    return set_extra(cfg, id, value);
  }
  char *field = (char *)cfg + o->uoff;
  if (o->type == T_STRING || o->type == T_CTEXT || o->type == T_CUSTOM) {
    if (id == POLYTEL__OPT_use_env) { /* the one CUSTOM option that is not text */
      int b = value ? parse_bool_sv(sv_of(value)) : 1;
      if (b < 0) return set_error(key, value, "expected " BOOL_EXPECTED_LIT);
      store_int(field, o->usize, b);
      return 0;
    }
    memcpy(field, &value, sizeof value);
    return 0;
  }
  store_int(field, o->usize, value ? iv : o->unset);
  return 0;
}

/* ------------------------------------------------------------ extras (phase.c keeps the user's config) */

void polytel__cfg_extras_merge(polytel_config_t *dst, const polytel_config_t *src) {
  if (!src || src->struct_size < offsetof(polytel_config_t, polytel__extra) + sizeof src->polytel__extra)
    return;
  uint32_t n =
      src->polytel__n_extra < POLYTEL_CONFIG_EXTRA_MAX ? src->polytel__n_extra : POLYTEL_CONFIG_EXTRA_MAX;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t id = src->polytel__extra[i].option;
    char *copy = src->polytel__extra[i].value ? strdup(src->polytel__extra[i].value) : NULL;
    if (!copy || id >= POLYTEL__OPT_COUNT) {
      free(copy);
      continue;
    }
    uint32_t j = 0;
    while (j < dst->polytel__n_extra && dst->polytel__extra[j].option != id) j++;
    if (j == POLYTEL_CONFIG_EXTRA_MAX) {
      free(copy);
      continue;
    }
    if (j < dst->polytel__n_extra)
      free((char *)dst->polytel__extra[j].value);
    else
      dst->polytel__n_extra++;
    dst->polytel__extra[j].option = id;
    dst->polytel__extra[j].value = copy;
  }
}

void polytel__cfg_extras_free(polytel_config_t *cfg) {
  for (uint32_t i = 0; i < cfg->polytel__n_extra && i < POLYTEL_CONFIG_EXTRA_MAX; i++)
    free((char *)cfg->polytel__extra[i].value);
  cfg->polytel__n_extra = 0;
}

/* ------------------------------------------------------------ the resolved view */

typedef struct text_s {
  char *p;
  size_t n, cap;
  int oom;
} text_t;

static size_t text_add(text_t *t, const char *s, size_t n) {
  size_t at = t->n;
  if (t->oom) return 0;
  if (t->n + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 1024;
    while (cap < t->n + n + 1) cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
      t->oom = 1;
      return 0;
    }
    t->p = p, t->cap = cap;
  }
  memcpy(t->p + t->n, s, n);
  t->n += n;
  t->p[t->n] = '\0';
  return at;
}

/* Resource attributes as OTEL_RESOURCE_ATTRIBUTES reads them back: ',', '=' and '%' escaped. */
static void text_add_pct(text_t *t, const char *s) {
  for (; *s; s++) {
    if (*s == ',' || *s == '=' || *s == '%') {
      char e[4];
      snprintf(e, sizeof e, "%%%02X", (unsigned char)*s);
      text_add(t, e, 3);
    } else {
      text_add(t, s, 1);
    }
  }
}

static void text_add_pairs(text_t *t, const polytel__strpair_t *v, size_t n, int hide_values) {
  for (size_t i = 0; i < n; i++) {
    if (i) text_add(t, ",", 1);
    text_add_pct(t, v[i].key);
    text_add(t, "=", 1);
    if (hide_values)
      text_add(t, "\xe2\x80\xa6", 3); /* header values are credentials: never shown */
    else
      text_add_pct(t, v[i].value ? v[i].value : "");
  }
}

/* The value of option id in cfg, appended to t; 0 when it has none (NULL). */
static int describe_value(const polytel__cfg_t *cfg, int id, text_t *t, polytel_value_type_t *type) {
  const opt_t *o = &g_opts[id];
  char num[32];
  const char *s = NULL;
  int sig = -1;
  *type = POLYTEL_VALUE_STRING;
  switch (o->type) {
    case T_BOOL:
      *type = POLYTEL_VALUE_BOOL;
      s = mem_load_int(cfg, o) ? "true" : "false";
      break;
    case T_UINT:
    case T_SIZE:
      *type = POLYTEL_VALUE_INT;
      snprintf(num, sizeof num, "%llu", (unsigned long long)mem_load_int(cfg, o));
      s = num;
      break;
    case T_CHOICE:
      s = kw_name(o->ch, (int)mem_load_int(cfg, o));
      break;
    case T_STRING:
    case T_CTEXT:
      memcpy(&s, (const char *)cfg + o->moff, sizeof s);
      break;
    default:
      break;
  }
  if (o->type != T_CUSTOM) {
    if (!s) return 0;
    text_add(t, s, strlen(s));
    return 1;
  }
  switch (id) {
    case POLYTEL__OPT_use_env:
      *type = POLYTEL_VALUE_BOOL;
      s = cfg->use_env ? "true" : "false";
      break;
    case POLYTEL__OPT_resource_attributes:
      if (!cfg->n_resource_attrs) return 0;
      text_add_pairs(t, cfg->resource_attrs, cfg->n_resource_attrs, 0);
      return 1;
    case POLYTEL__OPT_headers:
      if (!cfg->n_headers) return 0;
      text_add_pairs(t, cfg->headers, cfg->n_headers, 1);
      return 1;
    case POLYTEL__OPT_traces_headers:
    case POLYTEL__OPT_logs_headers:
    case POLYTEL__OPT_metrics_headers:
      sig = id - POLYTEL__OPT_traces_headers;
      if (!cfg->has_signal_headers[sig] && !cfg->n_headers) return 0;
      if (cfg->has_signal_headers[sig])
        text_add_pairs(t, cfg->signal_headers[sig], cfg->n_signal_headers[sig], 1);
      else
        text_add_pairs(t, cfg->headers, cfg->n_headers, 1);
      return 1;
    case POLYTEL__OPT_traces_exporter:
    case POLYTEL__OPT_logs_exporter:
    case POLYTEL__OPT_metrics_exporter:
      s = cfg->signal_enabled[id - POLYTEL__OPT_traces_exporter] ? "otlp" : "none";
      break;
    case POLYTEL__OPT_traces_sampler:
      s = polytel__sampler_name(cfg->sampler.kind);
      break;
    case POLYTEL__OPT_traces_sampler_arg:
      if (cfg->sampler.kind != POLYTEL__SAMPLER_TRACEIDRATIO &&
          cfg->sampler.kind != POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO)
        return 0;
      snprintf(num, sizeof num, "%.17g", cfg->sampler.ratio);
      s = num;
      break;
    case POLYTEL__OPT_propagators:
      s = cfg->propagators == POLYTEL__PROPAGATORS_DEFAULT       ? "tracecontext,baggage"
          : cfg->propagators == POLYTEL__PROPAGATOR_TRACECONTEXT ? "tracecontext"
          : cfg->propagators == POLYTEL__PROPAGATOR_BAGGAGE      ? "baggage"
                                                                 : "none";
      break;
#define LIMIT_OF(cfg, lim) ((lim) < 0 ? (cfg)->general_limits[-1 - (lim)] : (cfg)->limits[lim])
#define POLYTEL__LIMIT_CASE(key, lim)                              \
  case POLYTEL__OPT_##key:                                         \
    if (LIMIT_OF(cfg, lim) == POLYTEL__NO_LIMIT) return 0;         \
    *type = POLYTEL_VALUE_INT;                                     \
    snprintf(num, sizeof num, "%u", (unsigned)LIMIT_OF(cfg, lim)); \
    s = num;                                                       \
    break;
      POLYTEL__LIMIT_CASE(attribute_count_limit, -1)
      POLYTEL__LIMIT_CASE(attribute_value_length_limit, -2)
      POLYTEL__LIMIT_CASE(span_attribute_count_limit, POLYTEL__LIM_SPAN_ATTRS)
      POLYTEL__LIMIT_CASE(span_attribute_value_length_limit, POLYTEL__LIM_SPAN_ATTR_LEN)
      POLYTEL__LIMIT_CASE(span_event_count_limit, POLYTEL__LIM_EVENTS)
      POLYTEL__LIMIT_CASE(span_link_count_limit, POLYTEL__LIM_LINKS)
      POLYTEL__LIMIT_CASE(event_attribute_count_limit, POLYTEL__LIM_EVENT_ATTRS)
      POLYTEL__LIMIT_CASE(link_attribute_count_limit, POLYTEL__LIM_LINK_ATTRS)
      POLYTEL__LIMIT_CASE(logrecord_attribute_count_limit, POLYTEL__LIM_LOG_ATTRS)
      POLYTEL__LIMIT_CASE(logrecord_attribute_value_length_limit, POLYTEL__LIM_LOG_ATTR_LEN)
#undef POLYTEL__LIMIT_CASE
#undef LIMIT_OF
    default:
      break;
  }
  if (!s) return 0;
  text_add(t, s, strlen(s));
  return 1;
}

polytel_resolved_t *polytel__cfg_describe(const polytel__cfg_t *cfg, const char *const *lead, size_t n_lead) {
  size_t n = n_lead + POLYTEL__OPT_COUNT;
  size_t *at = malloc(n * sizeof *at);
  polytel_value_type_t *types = malloc(n * sizeof *types);
  text_t t = {NULL, 0, 0, 0};
  polytel_resolved_t *r = NULL;
  if (!at || !types) goto done;
  text_add(&t, "", 1); /* offset 0 is "none" */
  for (size_t i = 0; i < n_lead; i++) {
    types[i] = POLYTEL_VALUE_STRING;
    at[i] = lead[2 * i + 1] ? text_add(&t, lead[2 * i + 1], strlen(lead[2 * i + 1]) + 1) : 0;
  }
  for (int id = 0; id < POLYTEL__OPT_COUNT; id++) {
    size_t start = t.n;
    if (describe_value(cfg, id, &t, &types[n_lead + (size_t)id])) {
      text_add(&t, "", 1); /* its NUL, kept apart from the next value */
      at[n_lead + (size_t)id] = start;
    } else {
      at[n_lead + (size_t)id] = 0;
    }
  }
  if (t.oom) goto done;
  r = malloc(sizeof *r + n * sizeof *r->items + t.n + 1);
  if (!r) goto done;
  r->n = n;
  r->items = (polytel_setting_t *)(r + 1);
  char *strings = (char *)(r->items + n);
  memcpy(strings, t.p, t.n + 1);
  for (size_t i = 0; i < n; i++) {
    int opt = i >= n_lead;
    r->items[i].key = opt ? g_opts[i - n_lead].key : lead[2 * i];
    r->items[i].env = opt ? g_opts[i - n_lead].env : NULL;
    r->items[i].type = types[i];
    r->items[i].value = at[i] ? strings + at[i] : NULL;
  }
done:
  free(t.p);
  free(at);
  free(types);
  return r;
}

void polytel_config_resolved_free(polytel_resolved_t *r) {
  free(r);
}

/* Defaults as text, made once. */
static char g_default_text[POLYTEL__OPT_COUNT][24];
static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;

static void make_default_text(void) {
  for (int id = 0; id < POLYTEL__OPT_COUNT; id++) {
    const opt_t *o = &g_opts[id];
    if (o->type == T_BOOL)
      snprintf(g_default_text[id], sizeof g_default_text[id], "%s", o->def_i ? "true" : "false");
    else if (o->type == T_UINT || o->type == T_SIZE)
      snprintf(g_default_text[id], sizeof g_default_text[id], "%lld", (long long)o->def_i);
    else if (o->type == T_CHOICE)
      snprintf(g_default_text[id], sizeof g_default_text[id], "%s", kw_name(o->ch, (int)o->def_i));
  }
}

int polytel_config_option(size_t i, polytel_setting_t *out) {
  if (i >= POLYTEL__OPT_COUNT || !out) return POLYTEL_EINVAL;
  pthread_once(&g_default_once, make_default_text);
  const opt_t *o = &g_opts[i];
  out->key = o->key;
  out->env = o->env;
  out->type = o->type == T_BOOL || i == POLYTEL__OPT_use_env ? POLYTEL_VALUE_BOOL
              : o->type == T_UINT || o->type == T_SIZE       ? POLYTEL_VALUE_INT
                                                             : POLYTEL_VALUE_STRING;
  out->value =
      o->type == T_STRING || o->type == T_CTEXT || o->type == T_CUSTOM ? o->def_s : g_default_text[i];
  return 0;
}

int polytel_config_choice(const char *key, size_t i, const char **word, int *value) {
  int id = key ? opt_find(key) : -1;
  if (id < 0 || g_opts[id].type != T_CHOICE) return POLYTEL_EINVAL;
  for (const kw_t *k = g_opts[id].ch; k->word; k++) {
    if (k->how == REFUSED) continue;
    if (i-- == 0) {
      if (word) *word = k->word;
      if (value) *value = k->value;
      return 0;
    }
  }
  return POLYTEL_EINVAL;
}
