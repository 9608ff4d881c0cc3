/* shim.c — the wasm binding's C side: config from JS, console lines to JS, the host transport (transport.h).
 */
#include <emscripten.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/config.h"
#include "common/console.h"
#include "common/propagation.h"
#include "export/encode.h"
#include "export/pipeline.h"
#include "polytel.h"
#include "transport/transport.h"
#include "common/process.h"
#include "common/types.h"
#include "record/record.h"

#define PTW_EXPORT EMSCRIPTEN_KEEPALIVE

/* ------------------------------------------------------------ JS callbacks */

/* index.js installs these on the Module object before anything can call them. */
// clang-format off
EM_JS(void, ptw_js_console, (int level, const char *line, size_t len), { Module.ptwConsole(level, line, len); })
/* what: 1 started, 3 stopped. */
EM_JS(void, ptw_js_transport, (int what), { Module.ptwTransport(what); })
// clang-format on

static void console_writer(int level, const char *line, size_t len) {
  ptw_js_console(level, line, len);
}

/*
 * Until console.c implements the writer hook declared in console.h, lines go to fd 2 (Emscripten
 * prints them with console.error / console.warn). console.c's definition replaces this one.
 */
__attribute__((weak)) void polytel__console_set_writer(polytel__console_writer_fn fn) {
  (void)fn;
}

/* ------------------------------------------------------------- process */

/*
 * Emscripten's getpid() is a constant 42. In Node the real one seeds the id generator (buffers.c); the
 * resource's process.pid comes from index.js (ptw_res_add). A C definition here wins over the JS library's.
 */
// clang-format off
EM_JS(int, ptw_js_pid, (void), {
  return (typeof process === 'object' && process && typeof process.pid === 'number') ? process.pid : 0;
})
// clang-format on

pid_t getpid(void) {
  int pid = ptw_js_pid();
  return pid > 0 ? (pid_t)pid : 42;
}

/* Emscripten 3.1.6 declares getrandom() but its libc does not define it; getentropy() is there
 * (crypto.getRandomValues). */
ssize_t getrandom(void *buf, size_t len, unsigned flags) {
  (void)flags;
  if (len > 256) len = 256; /* getentropy's limit; callers loop on short reads */
  return getentropy(buf, len) == 0 ? (ssize_t)len : -1;
}

/*
 * Lines go to console.* (devtools, a log collector, Node's console), never straight to a
 * terminal: no ANSI colors unless FORCE_COLOR asks for them.
 */
int isatty(int fd) {
  (void)fd;
  return 0;
}

/* ----------------------------------------------------- resource from the host */

/*
 * What the host runtime knows, typed (process.c's wasm branch puts it in the resource in place of a pid and
 * host name that wasm does not have): Node's pid, host and runtime; a browser's browser.*, user agent and a
 * per-page service.instance.id. Owned here; index.js fills it before phase 1.
 */
static polytel__kv_t *g_host_kv;
static size_t g_n_host, g_cap_host;

PTW_EXPORT void ptw_res_reset(void) {
  for (size_t i = 0; i < g_n_host; i++) {
    free((char *)g_host_kv[i].key);
    if (polytel__kv_has_bytes(g_host_kv[i].type)) free((char *)g_host_kv[i].v.str.ptr);
  }
  g_n_host = 0;
}

/* What index.js passes for a list of strings (browser.brands): the strings separated by NUL bytes. */
#define PTW_RES_STRINGS 16

/* type: POLYTEL_ATTR_STRING / _INT / _BOOL, or PTW_RES_STRINGS, kept as a string array (record.h). */
PTW_EXPORT int ptw_res_add(const char *key, int type, const char *str, size_t len, double num) {
  if (g_n_host == g_cap_host) {
    size_t cap = g_cap_host ? 2 * g_cap_host : 16;
    polytel__kv_t *kv = realloc(g_host_kv, cap * sizeof *kv);
    if (!kv) return POLYTEL_ENOMEM;
    g_host_kv = kv;
    g_cap_host = cap;
  }
  polytel__kv_t a;
  memset(&a, 0, sizeof a);
  char *k = strdup(key);
  if (!k) return POLYTEL_ENOMEM;
  a.key = k;
  a.key_len = (uint32_t)strlen(k);
  a.type = (uint8_t)type;
  if (type == POLYTEL_ATTR_STRING) {
    char *v = malloc(len + 1);
    if (!v) {
      free(k);
      return POLYTEL_ENOMEM;
    }
    if (len) memcpy(v, str, len);
    v[len] = '\0';
    a.v.str.ptr = v;
    a.v.str.len = (uint32_t)len;
  } else if (type == PTW_RES_STRINGS) {
    /* "a\0b" (n strings, n - 1 NULs) becomes [4-byte length][bytes] per string; "" is the empty list. */
    size_t n = len ? 1 : 0;
    for (size_t i = 0; i < len; i++) n += str[i] == '\0';
    char *v = malloc(len + 4 * n + 1), *w = v;
    if (!v) {
      free(k);
      return POLYTEL_ENOMEM;
    }
    for (size_t i = 0, start = 0; n && i <= len; i++) {
      if (i < len && str[i] != '\0') continue;
      uint32_t l = (uint32_t)(i - start);
      memcpy(w, &l, 4);
      memcpy(w + 4, str + start, l);
      w += 4 + l;
      start = i + 1;
    }
    a.type = POLYTEL_ATTR_STRING_ARRAY;
    a.v.str.ptr = v;
    a.v.str.len = (uint32_t)(w - v);
  } else if (type == POLYTEL_ATTR_BOOL) {
    a.v.b = num != 0;
  } else if (type == POLYTEL_ATTR_INT) {
    a.v.i = (int64_t)num;
  } else {
    free(k);
    return POLYTEL_EINVAL;
  }
  g_host_kv[g_n_host++] = a;
  return 0;
}

const polytel__kv_t *polytel__host_resource(size_t *n) {
  *n = g_n_host;
  return g_host_kv;
}

/* ------------------------------------------------------------------ config */

/*
 * One polytel_config_t filled field by field from JS, so index.js never has to
 * know the struct's layout. Strings are owned here until the next reset.
 */
#define PTW_MAX_OWNED 32
static polytel_config_t g_cfg;
static char *g_owned[PTW_MAX_OWNED];
static int g_n_owned;

PTW_EXPORT void ptw_cfg_reset(void) {
  for (int i = 0; i < g_n_owned; i++) free(g_owned[i]);
  g_n_owned = 0;
  polytel_config_init(&g_cfg);
  g_cfg.sdk_language = "webjs"; /* index.js says "nodejs" in Node */
  /* index.js turns the environment on only when it forwarded a real one (Node). */
  g_cfg.use_env = 0;
  /*
   * No zlib in the wasm build: the core's gzip step fails (polytel__gzip below) and leaves bodies as they
   * are; index.js reads the resolved compression (the resolved view) and compresses with CompressionStream.
   */
}

/* One option by name, as text (polytel_config_set: the core checks it). The value is copied, owned here
 * until the next reset. 0, or POLYTEL_EINVAL with ptw_cfg_error() saying why. */
PTW_EXPORT int ptw_cfg_set(const char *key, const char *value) {
  if (g_n_owned == PTW_MAX_OWNED) return POLYTEL_ENOMEM;
  char *copy = strdup(value);
  if (!copy) return POLYTEL_ENOMEM;
  int rc = polytel_config_set(&g_cfg, key, copy);
  if (rc != 0) {
    free(copy);
    return rc;
  }
  g_owned[g_n_owned++] = copy;
  return 0;
}

PTW_EXPORT const char *ptw_cfg_error(void) {
  return polytel_config_error();
}

/* ------------------------------------------------------- the core's tables */

/* index.js's constants come from here (scripts/build.mjs writes them to dist/polytel_tables.mjs). */

/* Level i of POLYTEL_LEVEL_MAP, then "off": what 0 its name, what 1 its number (as text). NULL past them. */
PTW_EXPORT const char *ptw_level(int i, int what) {
  static const struct {
    const char *text, *num;
  } levels[] = {
#define PTW_LEVEL(name, value, text) {text, #value},
      POLYTEL_LEVEL_MAP(PTW_LEVEL)
#undef PTW_LEVEL
  };
  size_t n = sizeof levels / sizeof levels[0];
  if (i >= 0 && (size_t)i == n) return what ? "255" : polytel_level_name(POLYTEL_LEVEL_OFF); /* a threshold */
  if (i < 0 || (size_t)i > n) return NULL;
  return what ? levels[i].num : levels[i].text;
}

/* Field i of polytel_stats_t (POLYTEL_STATS_FIELDS), NULL past the last. */
PTW_EXPORT const char *ptw_stats_field(int i) {
  static const char *const fields[] = {
#define PTW_STAT(f, metric, reason, doc) #f,
      POLYTEL_STATS_FIELDS(PTW_STAT)
#undef PTW_STAT
  };
  return i >= 0 && (size_t)i < sizeof fields / sizeof fields[0] ? fields[i] : NULL;
}

/* Error code i of POLYTEL_ERRNO_MAP, 0 past the last (its name: polytel_err_name). */
PTW_EXPORT int ptw_err_code(int i) {
  static const int codes[] = {
#define PTW_ERR(name, value, msg) value,
      POLYTEL_ERRNO_MAP(PTW_ERR)
#undef PTW_ERR
  };
  return i >= 0 && (size_t)i < sizeof codes / sizeof codes[0] ? codes[i] : 0;
}

/* Option i of the schema: what 0 key, 1 environment variable, 2 type (as text), 3 default. NULL past it. */
PTW_EXPORT const char *ptw_option(int i, int what) {
  static char type[4];
  polytel_setting_t o;
  if (i < 0 || polytel_config_option((size_t)i, &o) != 0) return NULL;
  if (what == 2) {
    type[0] = (char)('0' + o.type);
    type[1] = '\0';
    return type;
  }
  return what == 0 ? o.key : what == 1 ? o.env : o.value;
}

/* ------------------------------------------------------ the resolved view */

PTW_EXPORT polytel_resolved_t *ptw_resolved(void) {
  return polytel_config_resolved();
}
PTW_EXPORT void ptw_resolved_free(polytel_resolved_t *r) {
  polytel_config_resolved_free(r);
}
PTW_EXPORT int ptw_resolved_n(const polytel_resolved_t *r) {
  return r ? (int)r->n : 0;
}
/* Item i: what 0 key, 1 value (NULL for none); ptw_resolved_type for how to read it. */
PTW_EXPORT const char *ptw_resolved_item(const polytel_resolved_t *r, int i, int what) {
  if (!r || i < 0 || (size_t)i >= r->n) return NULL;
  return what == 0 ? r->items[i].key : r->items[i].value;
}
PTW_EXPORT int ptw_resolved_type(const polytel_resolved_t *r, int i) {
  return r && i >= 0 && (size_t)i < r->n ? (int)r->items[i].type : 0;
}

/* Node: index.js copies the OTEL_* / POLYTEL_* / TELEMETRY_ENABLED variables in, so the core reads them as
 * natively. */
PTW_EXPORT int ptw_setenv(const char *name, const char *value) {
  return setenv(name, value, 1);
}

/* ------------------------------------------------------------------ phases */

PTW_EXPORT int ptw_init_console(void) {
  /* Before phase 1, so even its notice line reaches console.* by level. */
  polytel__console_set_writer(console_writer);
  return polytel_init_console_only(&g_cfg);
}

/* ------------------------------------------------ attributes and numbers */

/* index.js writes polytel_attr_t arrays itself; these give it the layout. */
PTW_EXPORT int ptw_attr_layout(int what) {
  switch (what) {
    case 0:
      return (int)sizeof(polytel_attr_t);
    case 1:
      return (int)offsetof(polytel_attr_t, key);
    case 2:
      return (int)offsetof(polytel_attr_t, type);
    case 3:
      return (int)offsetof(polytel_attr_t, value.str.ptr);
    case 4:
      return (int)offsetof(polytel_attr_t, value.str.len);
    case 5:
      return (int)offsetof(polytel_attr_t, value.i);
    case 6:
      return (int)offsetof(polytel_attr_t, value.d);
    case 7:
      return (int)offsetof(polytel_attr_t, value.b);
    case 8:
      return (int)sizeof(polytel_span_ctx_t);
    case 9:
      return (int)sizeof(polytel_stats_t);
    default:
      return -1;
  }
}

/* int64 does not cross the JS boundary without BigInt legalization; a double holds every safe integer. */
PTW_EXPORT void ptw_counter_add(const char *name, const char *unit, double delta, const polytel_attr_t *attrs,
                                size_t n_attrs) {
  polytel_counter_add(name, unit, (int64_t)delta, attrs, n_attrs);
}

/* ----------------------------------------------------------- JS transport */

static struct {
  polytel__pipeline_t *pl;
  const polytel__pipeline_api_t *api;
  char **header_kv; /* key, value, key, value... */
  size_t n_headers;
  uint32_t generation; /* bumped at each start and stop, so late fetch results are ignored */
} T;

static void transport_forget(void) {
  for (size_t i = 0; i < 2 * T.n_headers; i++) free(T.header_kv[i]);
  free(T.header_kv);
  T.header_kv = NULL;
  T.n_headers = 0;
}

/* Copies what the JS side needs from the resolved config (it outlives no shutdown). */
static int transport_adopt(polytel__pipeline_t *pl, const polytel__pipeline_api_t *api,
                           const polytel__cfg_t *cfg) {
  transport_forget();
  if (cfg->n_headers) {
    T.header_kv = calloc(2 * cfg->n_headers, sizeof(char *));
    if (!T.header_kv) return POLYTEL_ENOMEM;
    T.n_headers = cfg->n_headers;
    for (size_t i = 0; i < cfg->n_headers; i++) {
      T.header_kv[2 * i] = strdup(cfg->headers[i].key ? cfg->headers[i].key : "");
      T.header_kv[2 * i + 1] = strdup(cfg->headers[i].value ? cfg->headers[i].value : "");
      if (!T.header_kv[2 * i] || !T.header_kv[2 * i + 1]) return POLYTEL_ENOMEM;
    }
  }
  T.pl = pl;
  T.api = api;
  T.generation++;
  return 0;
}

/*
 * The host transport (transport.h): phase 2 hands the pipeline to JS (index.js is told: 1), which drives it
 * from its event loop with the ptw_* calls below; stop tells JS first (3), then the core counts what is
 * left (requests still in flight as unconfirmed: their fetch may have delivered them) and frees it.
 */
static int host_start(const polytel__transport_t *self, struct uv_loop_s *loop, polytel__pipeline_t *pl,
                      const polytel__pipeline_api_t *api, const polytel__cfg_t *cfg) {
  (void)self, (void)loop;
  int rc = transport_adopt(pl, api, cfg);
  if (rc != 0) {
    transport_forget();
    T.pl = NULL;
    return rc;
  }
  ptw_js_transport(1);
  return 0;
}

/* index.js flushes asynchronously (Polytel.flush); a C-level flush has nothing to wait on. */
static int host_flush(uint32_t timeout_ms) {
  (void)timeout_ms;
  return 0;
}

/* Shutdown: index.js has already spent the caller's timeout in an async flush. */
static int host_stop(uint32_t timeout_ms) {
  (void)timeout_ms;
  polytel__pipeline_t *pl = T.pl;
  if (!pl) return 0;
  T.pl = NULL;
  T.generation++;
  ptw_js_transport(3);
  transport_forget();
  T.api->abandon(pl);
  T.api->free(pl);
  return 0;
}

static const polytel__transport_t g_host = {
    .name = "host", .start = host_start, .flush = host_flush, .stop = host_stop};

/*
 * Phase 2. 0 with the transport started (index.js is told: 1), 0 with telemetry still off
 * (phase stays console), POLYTEL_EALREADY when already full, or an error.
 */
PTW_EXPORT int ptw_init_full(void) {
  polytel__console_set_writer(console_writer);
  polytel__transport_set_host(&g_host);
  return polytel_init_full_telemetry(NULL, &g_cfg);
}

PTW_EXPORT int ptw_shutdown(uint32_t timeout_ms) {
  return polytel_shutdown(timeout_ms);
}

/* gzip.c (zlib) is not part of the wasm build: the pipeline keeps the body as it is (index.js compresses). */
int polytel__gzip(const uint8_t *in, size_t len, polytel__buf_t *out) {
  (void)in;
  (void)len;
  (void)out;
  return POLYTEL_ENOSYS;
}

/* ------------------------------------------- the pipeline, driven from JS */

PTW_EXPORT double ptw_now_ms(void) {
  return (double)polytel__now_ms();
}
PTW_EXPORT uint32_t ptw_generation(void) {
  return T.generation;
}
PTW_EXPORT int ptw_n_headers(void) {
  return (int)T.n_headers;
}
PTW_EXPORT const char *ptw_header(int i, int value) {
  return (i >= 0 && (size_t)i < T.n_headers) ? T.header_kv[2 * i + (value ? 1 : 0)] : NULL;
}

/* Milliseconds until the pipeline wants to run again; -1: only when woken; -2: not running. */
PTW_EXPORT double ptw_pump(void) {
  if (!T.pl) return -2;
  uint32_t ms = T.api->pump(T.pl, polytel__now_ms());
  return ms == UINT32_MAX ? -1 : (double)ms;
}

PTW_EXPORT void ptw_force(void) {
  if (T.pl) T.api->force(T.pl, polytel__now_ms());
}

PTW_EXPORT polytel__request_t *ptw_next(void) {
  return T.pl ? T.api->next(T.pl, polytel__now_ms()) : NULL;
}

/*
 * The answer of the next ptw_done(): index.js writes the body (at most
 * POLYTEL__RESPONSE_BODY_MAX bytes), the Content-Type and the error text here
 * (NUL-terminated strings; empty means none), then calls ptw_done.
 */
static uint8_t g_resp_body[POLYTEL__RESPONSE_BODY_MAX];
static char g_resp_ctype[256];
static char g_resp_error[512];

/* which: 0 body, 1 content type, 2 error text. */
PTW_EXPORT void *ptw_resp_buf(int which) {
  return which == 0 ? (void *)g_resp_body : which == 1 ? (void *)g_resp_ctype : (void *)g_resp_error;
}
PTW_EXPORT int ptw_resp_cap(int which) {
  return which == 0   ? (int)sizeof g_resp_body
         : which == 1 ? (int)sizeof g_resp_ctype
                      : (int)sizeof g_resp_error;
}

/*
 * An attempt ended (polytel__pipeline_done): net is a polytel__net_class_t, sent 1 when the body may
 * have arrived. Returns the polytel__done_t (1 = kept for a retry), or -1 when not running.
 */
PTW_EXPORT int ptw_done(polytel__request_t *req, int status, int net, int sent, double retry_after_ms,
                        size_t body_len) {
  g_resp_ctype[sizeof g_resp_ctype - 1] = '\0';
  g_resp_error[sizeof g_resp_error - 1] = '\0';
  polytel__response_t r = {
      .status = status,
      .net = (polytel__net_class_t)net,
      .sent = sent != 0,
      .retry_after_ms = (int64_t)retry_after_ms,
      .body = body_len ? g_resp_body : NULL,
      .body_len = body_len < sizeof g_resp_body ? body_len : sizeof g_resp_body,
      .content_type = g_resp_ctype[0] ? g_resp_ctype : NULL,
      .error = g_resp_error[0] ? g_resp_error : NULL,
  };
  int rc = T.pl ? (int)T.api->done(T.pl, req, &r, polytel__now_ms()) : -1;
  g_resp_ctype[0] = g_resp_error[0] = '\0';
  return rc;
}

/* Page exit: see polytel__pipeline_exit_* in pipeline.h. */
PTW_EXPORT double ptw_exit_cut(void) {
  return T.pl ? (double)polytel__pipeline_exit_cut(T.pl, polytel__now_ms()) : 0;
}
PTW_EXPORT polytel__request_t *ptw_exit_take(void) {
  return T.pl ? polytel__pipeline_exit_take(T.pl) : NULL;
}
PTW_EXPORT void ptw_exit_release(polytel__request_t *req) {
  if (T.pl) polytel__pipeline_exit_release(T.pl, req);
}
PTW_EXPORT void ptw_exit_drop(polytel__request_t *req) {
  if (T.pl) polytel__pipeline_exit_drop(T.pl, req);
}
PTW_EXPORT polytel__request_t *ptw_exit_metrics(int final) {
  return T.pl ? polytel__pipeline_exit_metrics(T.pl, polytel__now_ms(), final) : NULL;
}

PTW_EXPORT double ptw_pending(void) {
  return T.pl ? (double)T.api->pending(T.pl) : 0;
}
PTW_EXPORT int ptw_in_flight(void) {
  return T.pl ? (int)T.api->in_flight(T.pl) : 0;
}

PTW_EXPORT int ptw_req_signal(const polytel__request_t *r) {
  return (int)r->signal;
}
PTW_EXPORT const char *ptw_req_url(const polytel__request_t *r) {
  return r->url;
}
PTW_EXPORT const uint8_t *ptw_req_body(const polytel__request_t *r) {
  return r->body;
}
PTW_EXPORT size_t ptw_req_body_len(const polytel__request_t *r) {
  return r->body_len;
}
PTW_EXPORT const char *ptw_req_content_type(const polytel__request_t *r) {
  return r->content_type;
}
PTW_EXPORT int ptw_req_gzip(const polytel__request_t *r) {
  return r->gzip;
}
PTW_EXPORT uint32_t ptw_req_timeout_ms(const polytel__request_t *r) {
  return r->timeout_ms;
}
PTW_EXPORT uint32_t ptw_req_attempt(const polytel__request_t *r) {
  return r->attempt;
}
/* Log records or spans carried (0 for metrics). */
PTW_EXPORT double ptw_req_items(const polytel__request_t *r) {
  return (double)r->n_items;
}

/* ------------------------------------------------------------ the span model */

/*
 * polytel_span_finish_ex() with its options passed flat: index.js writes attributes, events and links in
 * its arena (their layout from ptw_span_layout) and never the options struct. end_ns 0: now.
 */
PTW_EXPORT int ptw_span_finish(const polytel_span_ctx_t *span, const char *name, int status, const char *msg,
                               const polytel_attr_t *attrs, size_t n_attrs, int kind, const char *scope,
                               const char *scope_version, const char *tracestate,
                               const polytel_span_event_t *events, size_t n_events,
                               const polytel_span_link_t *links, size_t n_links, double end_ns) {
  polytel_span_opts_t o;
  polytel_span_opts_init(&o);
  o.kind = (polytel_span_kind_t)kind;
  o.scope_name = scope;
  o.scope_version = scope_version;
  o.tracestate = tracestate;
  o.end_ns = end_ns > 0 ? (uint64_t)end_ns : 0;
  o.events = events;
  o.n_events = n_events;
  o.links = links;
  o.n_links = n_links;
  return polytel_span_finish_ex(span, name, (polytel_status_t)status, msg, attrs, n_attrs, &o);
}

/* A span index.js started on its side (its start time read there, nobody asked for its ids yet), started and
 * finished at once: polytel_span_start's ids and sampling, the context left at out (index.js keeps it for a
 * late reader of the span's ids), then the plain finish. One call and one clock read instead of two each. */
PTW_EXPORT int ptw_span_run(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out, double start_ns,
                            const char *name, int status, const char *msg, const polytel_attr_t *attrs,
                            size_t n_attrs, int kind, const char *scope, const char *scope_version,
                            double end_ns) {
  if (!attrs || !n_attrs)
    return polytel__span_plain(parent, out, start_ns > 0 ? (uint64_t)start_ns : 0, name,
                               (polytel_status_t)status, msg, kind, scope, scope_version,
                               end_ns > 0 ? (uint64_t)end_ns : 0);
  polytel__span_start_at(parent, out, start_ns > 0 ? (uint64_t)start_ns : 0);
  return ptw_span_finish(out, name, status, msg, attrs, n_attrs, kind, scope, scope_version, NULL, NULL, 0,
                         NULL, 0, end_ns);
}

/* A plain span index.js staged (Core.stage: a name, a status, maybe a tracer's scope, no attributes), as it
 * lies in the staging area in wasm memory; ptw_span_ingest records a run of them in one call. */
typedef struct ptw_staged_s {
  polytel_span_ctx_t parent; /* read only when has_parent */
  double start_ns, end_ns;
  polytel_span_ctx_t *out; /* the span's ring slot (Core.ringSlot) */
  const char *name, *scope, *scope_version;
  int32_t status, kind, has_parent;
} ptw_staged_t;

/* The staged spans r[0..n), each as ptw_span_run would have recorded it when it ended (its ids and sampling
 * decided here, its times the ones read then); returns how many ptw_span_finish accepted. */
PTW_EXPORT int ptw_span_ingest(const ptw_staged_t *r, int n) {
  int ok = 0;
  for (int i = 0; i < n; i++, r++) {
    ok += polytel__span_plain(r->has_parent ? &r->parent : NULL, r->out,
                              r->start_ns > 0 ? (uint64_t)r->start_ns : 0, r->name,
                              (polytel_status_t)r->status, NULL, r->kind, r->scope, r->scope_version,
                              r->end_ns > 0 ? (uint64_t)r->end_ns : 0) == 0;
  }
  return ok;
}

/* ptw_staged_t's layout for index.js: 0 its size, then the offsets of its fields; -1 past the last. */
PTW_EXPORT int ptw_staged_layout(int what) {
  switch (what) {
    case 0:
      return (int)sizeof(ptw_staged_t);
    case 1:
      return (int)offsetof(ptw_staged_t, start_ns);
    case 2:
      return (int)offsetof(ptw_staged_t, end_ns);
    case 3:
      return (int)offsetof(ptw_staged_t, out);
    case 4:
      return (int)offsetof(ptw_staged_t, name);
    case 5:
      return (int)offsetof(ptw_staged_t, scope);
    case 6:
      return (int)offsetof(ptw_staged_t, scope_version);
    case 7:
      return (int)offsetof(ptw_staged_t, status);
    case 8:
      return (int)offsetof(ptw_staged_t, kind);
    case 9:
      return (int)offsetof(ptw_staged_t, has_parent);
    default:
      return -1;
  }
}

/* polytel_span_start at a start time index.js read (a deferred span whose ids are asked for before it ends).
 */
PTW_EXPORT int ptw_span_start_at(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out, double start_ns) {
  return polytel__span_start_at(parent, out, start_ns > 0 ? (uint64_t)start_ns : 0);
}

/* The layout of what index.js writes for ptw_span_finish; -1 past the last. */
PTW_EXPORT int ptw_span_layout(int what) {
  switch (what) {
    case 0:
      return (int)sizeof(polytel_span_event_t);
    case 1:
      return (int)offsetof(polytel_span_event_t, name);
    case 2:
      return (int)offsetof(polytel_span_event_t, time_ns);
    case 3:
      return (int)offsetof(polytel_span_event_t, attrs);
    case 4:
      return (int)offsetof(polytel_span_event_t, n_attrs);
    case 5:
      return (int)sizeof(polytel_span_link_t);
    case 6:
      return (int)offsetof(polytel_span_link_t, ctx);
    case 7:
      return (int)offsetof(polytel_span_link_t, tracestate);
    case 8:
      return (int)offsetof(polytel_span_link_t, attrs);
    case 9:
      return (int)offsetof(polytel_span_link_t, n_attrs);
    case 10:
      return (int)sizeof(polytel_str_t);
    case 11:
      return (int)offsetof(polytel_str_t, len);
    case 12:
      return (int)offsetof(polytel_span_ctx_t, start_ns);
    case 13:
      return (int)offsetof(polytel_span_ctx_t, trace_flags);
    case 14:
      return (int)offsetof(polytel_span_ctx_t, is_remote);
    case 15:
      return (int)offsetof(polytel_span_ctx_t, parent_id);
    case 16:
      return (int)offsetof(polytel_attr_t, value.arr.ptr);
    case 17:
      return (int)offsetof(polytel_attr_t, value.arr.len);
    default:
      return -1;
  }
}

/* A tracestate as received (header fields joined by ','), in its normal form into out; -1: discard it. */
PTW_EXPORT int ptw_tracestate(const char *in, size_t n, char *out, size_t cap) {
  return polytel__tracestate_normalize_n(in, n, out, cap);
}

/*
 * Baggage, through the core's codec: one baggage at a time (index.js reads it out at once, or fills it and
 * formats it at once). The storage holds any header the codec accepts.
 */
static polytel__baggage_t g_bag;
static char g_bag_store[POLYTEL__BAGGAGE_STORE_MIN];

PTW_EXPORT void ptw_baggage_reset(void) {
  polytel__baggage_init(&g_bag, g_bag_store, sizeof g_bag_store);
}
/* One baggage header field; returns the members taken. */
PTW_EXPORT int ptw_baggage_parse(const char *s, size_t n) {
  return polytel__baggage_parse(&g_bag, s, n);
}
PTW_EXPORT int ptw_baggage_n(void) {
  return (int)g_bag.n;
}
/* Entry i: what 0 its key, 1 its value (ptw_baggage_value_len bytes). NULL past the last. */
PTW_EXPORT const char *ptw_baggage_item(int i, int what) {
  if (i < 0 || (uint32_t)i >= g_bag.n) return NULL;
  return what == 0 ? g_bag.e[i].key : g_bag.e[i].value;
}
PTW_EXPORT int ptw_baggage_value_len(int i) {
  return i >= 0 && (uint32_t)i < g_bag.n ? (int)g_bag.e[i].value_len : 0;
}
PTW_EXPORT int ptw_baggage_set(const char *key, size_t key_len, const char *value, size_t value_len) {
  return polytel__baggage_set(&g_bag, key, key_len, value, value_len);
}
PTW_EXPORT int ptw_baggage_format(char *out, size_t cap) {
  return polytel__baggage_format(&g_bag, out, cap);
}

/* Unix nanoseconds on the core's clock (span and event times), as a double: int64 does not cross into JS. */
PTW_EXPORT double ptw_now_ns(void) {
  return (double)polytel_now_ns();
}
