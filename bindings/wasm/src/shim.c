/* shim.c — the wasm binding's C side: config from JS, console lines to JS, the JS transport (transport.h). */
#include <emscripten.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "config.h"
#include "console.h"
#include "encode.h"
#include "pipeline.h"
#include "polytel.h"
#include "process.h"
#include "record.h"

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
   * are; index.js reads the resolved setting (ptw_gzip) and compresses with CompressionStream instead.
   */
}

PTW_EXPORT int ptw_cfg_str(const char *key, const char *value) {
  const char **slot = NULL;
  if (!strcmp(key, "service_name"))
    slot = &g_cfg.service_name;
  else if (!strcmp(key, "service_version"))
    slot = &g_cfg.service_version;
  else if (!strcmp(key, "resource_attributes"))
    slot = &g_cfg.resource_attributes;
  else if (!strcmp(key, "endpoint"))
    slot = &g_cfg.endpoint;
  else if (!strcmp(key, "traces_endpoint"))
    slot = &g_cfg.traces_endpoint;
  else if (!strcmp(key, "logs_endpoint"))
    slot = &g_cfg.logs_endpoint;
  else if (!strcmp(key, "metrics_endpoint"))
    slot = &g_cfg.metrics_endpoint;
  else if (!strcmp(key, "headers"))
    slot = &g_cfg.headers;
  else if (!strcmp(key, "export_dir"))
    slot = &g_cfg.export_dir;
  else if (!strcmp(key, "sdk_language"))
    slot = &g_cfg.sdk_language;
  if (!slot || g_n_owned == PTW_MAX_OWNED) return POLYTEL_EINVAL;
  char *copy = strdup(value);
  if (!copy) return POLYTEL_ENOMEM;
  g_owned[g_n_owned++] = copy;
  *slot = copy;
  return 0;
}

PTW_EXPORT int ptw_cfg_int(const char *key, double value) {
  int v = (int)value;
  if (!strcmp(key, "use_env"))
    g_cfg.use_env = v;
  else if (!strcmp(key, "telemetry_enabled"))
    g_cfg.telemetry_enabled = v;
  else if (!strcmp(key, "sdk_disabled"))
    g_cfg.sdk_disabled = v;
  else if (!strcmp(key, "protocol"))
    g_cfg.protocol = (polytel_protocol_t)v;
  else if (!strcmp(key, "timeout_ms"))
    g_cfg.timeout_ms = (int64_t)value;
  else if (!strcmp(key, "console"))
    g_cfg.console = (polytel_console_t)v;
  else if (!strcmp(key, "console_format"))
    g_cfg.console_format = (polytel_console_format_t)v;
  else if (!strcmp(key, "console_level"))
    g_cfg.console_level = v;
  else if (!strcmp(key, "exporter"))
    g_cfg.exporter = (polytel_exporter_t)v;
  else if (!strcmp(key, "max_memory_bytes"))
    g_cfg.max_memory_bytes = (int64_t)value;
  else if (!strcmp(key, "compression_gzip"))
    g_cfg.compression_gzip = v;
  else
    return POLYTEL_EINVAL;
  return 0;
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

/*
 * Phase 2 without libuv (phase.c): the core builds the pipeline from the resolved config and
 * hands it to the host, which drives it. Declared here until a header carries them.
 */
int polytel__init_full_external(const polytel_config_t *cfg, polytel__pipeline_t **out);
const polytel__cfg_t *polytel__current_cfg(void);

static struct {
  polytel__pipeline_t *pl;
  int exporter;
  char *export_dir;
  char **header_kv; /* key, value, key, value... */
  size_t n_headers;
  uint32_t generation; /* bumped at each start and stop, so late fetch results are ignored */
} T;

static void transport_forget(void) {
  free(T.export_dir);
  T.export_dir = NULL;
  for (size_t i = 0; i < 2 * T.n_headers; i++) free(T.header_kv[i]);
  free(T.header_kv);
  T.header_kv = NULL;
  T.n_headers = 0;
}

/* Copies what the JS side needs from the resolved config (it outlives no shutdown). */
static int transport_adopt(polytel__pipeline_t *pl) {
  const polytel__cfg_t *cfg = polytel__current_cfg();
  transport_forget();
  T.exporter = cfg ? cfg->exporter : POLYTEL_EXPORTER_OTLP;
  T.export_dir = cfg && cfg->export_dir ? strdup(cfg->export_dir) : NULL;
  if (cfg && cfg->n_headers) {
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
  T.generation++;
  return 0;
}

/*
 * Phase 2. 0 with the transport started (index.js is told: 1), 0 with telemetry still off
 * (phase stays console), POLYTEL_EALREADY when already full, or an error.
 */
PTW_EXPORT int ptw_init_full(void) {
  polytel__console_set_writer(console_writer);
  polytel__pipeline_t *pl = NULL;
  int rc = polytel__init_full_external(&g_cfg, &pl);
  if (rc != 0 || !pl) return rc;
  rc = transport_adopt(pl);
  if (rc != 0) return rc;
  ptw_js_transport(1);
  return 0;
}

/*
 * Shutdown: index.js has already spent the caller's timeout in an async flush. The core counts
 * what is left (requests still in flight as unconfirmed: their fetch may have delivered them) and
 * frees the pipeline, so JS forgets its requests first.
 */
PTW_EXPORT int ptw_shutdown(uint32_t timeout_ms) {
  if (T.pl) {
    T.pl = NULL;
    T.generation++;
    ptw_js_transport(3);
    transport_forget();
  }
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
PTW_EXPORT int ptw_exporter(void) {
  return T.exporter;
}
PTW_EXPORT const char *ptw_export_dir(void) {
  return T.export_dir;
}
/* OTEL_EXPORTER_OTLP_COMPRESSION (or the option) as resolved: 1 when bodies should go out gzip'd. */
PTW_EXPORT int ptw_gzip(void) {
  const polytel__cfg_t *cfg = polytel__current_cfg();
  return cfg && cfg->exporter == POLYTEL_EXPORTER_OTLP ? cfg->gzip : 0;
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
  uint32_t ms = polytel__pipeline_pump(T.pl, polytel__now_ms());
  return ms == UINT32_MAX ? -1 : (double)ms;
}

PTW_EXPORT void ptw_force(void) {
  if (T.pl) polytel__pipeline_force(T.pl, polytel__now_ms());
}

PTW_EXPORT polytel__request_t *ptw_next(void) {
  return T.pl ? polytel__pipeline_next(T.pl, polytel__now_ms()) : NULL;
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
  int rc = T.pl ? (int)polytel__pipeline_done(T.pl, req, &r, polytel__now_ms()) : -1;
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
  return T.pl ? (double)polytel__pipeline_pending(T.pl) : 0;
}
PTW_EXPORT int ptw_in_flight(void) {
  return T.pl ? (int)polytel__pipeline_in_flight(T.pl) : 0;
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
