/* phase.c — the phase state machine, idempotence, fork hooks, flush/shutdown and stats. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* environ (_GNU_SOURCE) */

#include "config.h"
#include "console.h"
#include "internal.h"
#include "pipeline.h"
#include "process.h"
#if POLYTEL_WITH_UV
#include "transport.h"
#endif

polytel__acct_t polytel__acct;
#define POLYTEL__EXPORT_LEVEL POLYTEL_LEVEL_INFO

static pthread_mutex_t g_phase_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_phase = POLYTEL_PHASE_NONE;
static polytel__cfg_t g_cfg;
static int g_have_cfg;
static int g_phase1_active;     /* phase 1 decided "deferred": the fork child returns to it */
static polytel_config_t g_user; /* phase-1 explicit config, owned copies of strings */
static int g_have_user;
static polytel__resource_t g_res;
static int g_have_res;
static int g_external; /* phase 2 driven from outside (wasm/JS transport) */
static polytel__pipeline_t *g_ext_pl;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static polytel_stats_t g_base; /* stats at phase 1: shutdown judges this cycle only */

void polytel__buffers_fork_child(void);
void polytel__buffers_lock(void);
void polytel__buffers_unlock(void);

const char *polytel_phase_name(polytel_phase_t p) {
  switch (p) {
    case POLYTEL_PHASE_NONE:
      return "none";
    case POLYTEL_PHASE_CONSOLE:
      return "console";
    case POLYTEL_PHASE_DEFERRED:
      return "deferred";
    case POLYTEL_PHASE_FULL:
      return "full";
  }
  return "unknown";
}

polytel_phase_t polytel_phase(void) {
  return (polytel_phase_t)atomic_load(&g_phase);
}

void polytel_config_init(polytel_config_t *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->struct_size = sizeof *cfg;
  cfg->use_env = 1;
  cfg->telemetry_enabled = -1;
  cfg->sdk_disabled = -1;
  cfg->compression_gzip = -1;
  cfg->timeout_ms = -1;
  cfg->console_level = -1;
  cfg->max_memory_bytes = -1;
}

/* ------------------------------------------------------- explicit config */

// clang-format off
#define STR_FIELDS(X) \
  X(service_name) X(service_version) X(resource_attributes) X(endpoint) X(traces_endpoint) \
  X(logs_endpoint) X(metrics_endpoint) X(headers) X(certificate) X(export_dir) X(sdk_language) \
  X(client_certificate) X(client_key)
// clang-format on

static void user_free(polytel_config_t *c) {
#define X(f) free((char *)c->f);
  STR_FIELDS(X)
#undef X
  polytel_config_init(c);
}

/* dst (owned) takes every field that src sets (src may be an older, shorter struct: see struct_size). */
static void user_merge(polytel_config_t *dst, const polytel_config_t *src) {
  if (!src) return;
#define X(f)                                                                         \
  if (offsetof(polytel_config_t, f) + sizeof src->f <= src->struct_size && src->f) { \
    free((char *)dst->f);                                                            \
    dst->f = strdup(src->f);                                                         \
  }
  STR_FIELDS(X)
#undef X
  dst->use_env = src->use_env;
  if (src->telemetry_enabled != -1) dst->telemetry_enabled = src->telemetry_enabled;
  if (src->sdk_disabled != -1) dst->sdk_disabled = src->sdk_disabled;
  if (src->protocol) dst->protocol = src->protocol;
  if (src->compression_gzip != -1) dst->compression_gzip = src->compression_gzip;
  if (src->timeout_ms != -1) dst->timeout_ms = src->timeout_ms;
  if (src->console) dst->console = src->console;
  if (src->console_format) dst->console_format = src->console_format;
  if (src->console_level != -1) dst->console_level = src->console_level;
  if (src->exporter) dst->exporter = src->exporter;
  if (src->max_memory_bytes != -1) dst->max_memory_bytes = src->max_memory_bytes;
}

/* ----------------------------------------------------------------- levels */

void polytel__update_levels(void) {
  int phase = atomic_load(&g_phase);
  int active = phase == POLYTEL_PHASE_DEFERRED || phase == POLYTEL_PHASE_FULL || polytel__memsink_active();
  int threshold = g_have_cfg ? g_cfg.console_level : POLYTEL_LEVEL_INFO;
  int con = (!g_have_cfg || g_cfg.console != POLYTEL_CONSOLE_OFF) ? threshold : POLYTEL_LEVEL_OFF;
  /* POLYTEL_LOG_LEVEL is the console's threshold only; export keeps INFO and above. */
  int rec = active ? POLYTEL__EXPORT_LEVEL : POLYTEL_LEVEL_OFF;
  int min = rec < con ? rec : con;
  if (min < 1) min = 1; /* 0 means "never initialized" */
  atomic_store(&polytel__g_console_level, con);
  atomic_store(&polytel__g_record_level, rec);
  atomic_store(&polytel__g_recording, active);
  atomic_store(&polytel__g_min_level, min);
}

/* ------------------------------------------------------------------- fork */

void polytel__metrics_lock(void);
void polytel__metrics_unlock(void);

static void atfork_prepare(void) {
  pthread_mutex_lock(&g_phase_mu);
#if POLYTEL_WITH_UV
  if (atomic_load(&g_phase) == POLYTEL_PHASE_FULL && !g_external) polytel__transport_atfork_prepare();
#endif
  pthread_mutex_lock(&polytel__consume_mu);
  pthread_mutex_lock(&polytel__memsink_mu);
  polytel__metrics_lock();
  polytel__buffers_lock();
}

static void atfork_parent(void) {
  polytel__buffers_unlock();
  polytel__metrics_unlock();
  pthread_mutex_unlock(&polytel__memsink_mu);
  pthread_mutex_unlock(&polytel__consume_mu);
#if POLYTEL_WITH_UV
  if (atomic_load(&g_phase) == POLYTEL_PHASE_FULL && !g_external) polytel__transport_atfork_parent();
#endif
  pthread_mutex_unlock(&g_phase_mu);
}

/* The child is a new process: its own identity, none of the parent's events, its phase-1 state. */
static void atfork_child(void) {
  polytel__buffers_unlock();
  polytel__metrics_unlock();
  pthread_mutex_unlock(&polytel__memsink_mu);
  pthread_mutex_unlock(&polytel__consume_mu);
  int phase = atomic_load(&g_phase);
#if POLYTEL_WITH_UV
  if (phase == POLYTEL_PHASE_FULL && !g_external) polytel__transport_atfork_child();
#endif
  polytel__buffers_fork_child();
  polytel__metrics_reset();
  if (polytel__memsink_active()) polytel_memory_sink_clear();
  memset(&polytel__acct, 0, sizeof polytel__acct);
  memset(&g_base, 0, sizeof g_base);
  if (g_have_res) {
    polytel__resource_free(&g_res); /* rebuilt (new process.pid) at the child's phase 2 */
    g_have_res = 0;
  }
  g_ext_pl = NULL;
  g_external = 0;
  if (phase == POLYTEL_PHASE_FULL)
    atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
  polytel__update_levels();
  pthread_mutex_unlock(&g_phase_mu);
}

static void register_atfork(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---------------------------------------------------------------- phase 1 */

static int phase1_locked(const polytel_config_t *cfg) {
  polytel__cfg_t c;
  polytel_stats(&g_base);
  if (!g_have_user) {
    polytel_config_init(&g_user);
    g_have_user = 1;
  }
  user_merge(&g_user, cfg);
  if (polytel__cfg_resolve(g_have_user ? &g_user : cfg, NULL, &c) != 0) return POLYTEL_ENOMEM;
  if (g_have_cfg) polytel__cfg_free(&g_cfg);
  g_cfg = c;
  g_have_cfg = 1;
  polytel__console_configure(c.console, c.console_format, c.console_level, c.color);
  polytel__buffers_init(c.max_memory_bytes);
  polytel__metrics_set_max_series(c.max_metric_series);
  pthread_once(&g_atfork_once, register_atfork);
  g_phase1_active = c.telemetry_enabled && !c.sdk_disabled;
  atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
  polytel__update_levels();
  return 0;
}

/*
 * The first variable (in environ order) that says the user meant to export: an OTLP exporter
 * setting or an exporter choice other than none. NULL when there is none.
 */
static const char *export_var_set(void) {
  static const char *const prefixes[] = {"OTEL_EXPORTER_OTLP_", "POLYTEL_EXPORTER", "OTEL_TRACES_EXPORTER=",
                                         "OTEL_LOGS_EXPORTER=", "OTEL_METRICS_EXPORTER="};
  for (char **e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || !eq[1] || strcmp(eq + 1, "none") == 0) continue;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
      if (strncmp(*e, prefixes[i], strlen(prefixes[i])) == 0) return *e;
  }
  return NULL;
}

/*
 * Console-only is the right default, but a user who set an endpoint and sees nothing leave must be
 * told why, once per process (a fork child has already been told): one line, at INFO.
 */
static void explain_export_off(void) {
  static _Atomic int told;
  const char *var = export_var_set();
  if (!var || atomic_exchange(&told, 1)) return;
  char name[POLYTEL__SHOW_BUF]; /* a variable's name is whatever the environment holds: echoed bounded */
  polytel__show(name, sizeof name, var, (size_t)(strchr(var, '=') - var));
  polytel__diag(POLYTEL_LEVEL_INFO,
                "export is off: %s is set but TELEMETRY_ENABLED is not true; set TELEMETRY_ENABLED=true to "
                "export (console-only logging until then)",
                name);
}

int polytel_init_console_only(const polytel_config_t *cfg) {
  polytel__clock_init();
  pthread_mutex_lock(&g_phase_mu);
  if (atomic_load(&g_phase) != POLYTEL_PHASE_NONE) {
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_EALREADY;
  }
  int rc = phase1_locked(cfg);
  int deferred = atomic_load(&g_phase) == POLYTEL_PHASE_DEFERRED;
  /* Only where TELEMETRY_ENABLED would be read: not when the environment is off or telemetry set in code. */
  int explain =
      rc == 0 && !deferred && g_user.use_env && g_user.telemetry_enabled == -1 && !g_cfg.sdk_disabled;
  pthread_mutex_unlock(&g_phase_mu);
  if (rc == 0) {
    if (deferred)
      polytel__diag(POLYTEL_LEVEL_INFO,
                    "deferring full telemetry to worker bootstrap (TELEMETRY_ENABLED=true); events are kept "
                    "until then");
    else
      polytel__diag(POLYTEL_LEVEL_DEBUG, "console-only logging (TELEMETRY_ENABLED is not true)");
    if (explain) explain_export_off();
  }
  return rc;
}

void polytel__implicit_init(void) {
  if (atomic_load(&polytel__g_min_level) != 0) return;
  polytel_init_console_only(NULL);
}

/* ---------------------------------------------------------------- phase 2 */

static const char *protocol_name(int p) {
  return p == POLYTEL_PROTOCOL_JSON ? "http/json" : "http/protobuf";
}

/* Resolve the phase-2 config; on success the phase lock is held and *pl is a new pipeline. */
static int phase2_prepare(const polytel_config_t *cfg, polytel__cfg_t *out, int *enable) {
  if (atomic_load(&g_phase) == POLYTEL_PHASE_NONE) polytel_init_console_only(cfg);
  pthread_mutex_lock(&g_phase_mu);
  int phase = atomic_load(&g_phase);
  if (phase == POLYTEL_PHASE_FULL) {
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_EALREADY;
  }
  user_merge(&g_user, cfg);
  /* Phase 1 already warned about the environment's bad values: once is enough. */
  if (polytel__cfg_resolve_quiet(&g_user, NULL, out) != 0) {
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_ENOMEM;
  }
  *enable = out->telemetry_enabled && !out->sdk_disabled;
  if (!*enable) {
    /* Telemetry stays off: phase 1 already is the complete setup. */
    polytel__cfg_free(out);
    pthread_mutex_unlock(&g_phase_mu);
    return 0;
  }
  return 1;
}

static void phase2_commit(polytel__cfg_t *c) {
  polytel__cfg_free(&g_cfg);
  g_cfg = *c;
  polytel__console_configure(g_cfg.console, g_cfg.console_format, g_cfg.console_level, g_cfg.color);
  polytel__buffers_set_cap(g_cfg.max_memory_bytes);
  polytel__metrics_set_max_series(g_cfg.max_metric_series);
  atomic_store(&g_phase, POLYTEL_PHASE_FULL);
  polytel__update_levels();
}

static void announce(void) {
  /* Echoed values follow the documented limit (64 bytes, URLs without userinfo or query). */
  char svc[POLYTEL__SHOW_BUF], where[POLYTEL__SHOW_BUF];
  const char *name = g_cfg.service_name ? g_cfg.service_name : "";
  polytel__show(svc, sizeof svc, name, strlen(name));
  if (g_cfg.exporter == POLYTEL_EXPORTER_FILE)
    polytel__diag(POLYTEL_LEVEL_INFO, "full telemetry: writing OTLP/JSON lines to %s/ as service \"%s\"",
                  polytel__show_path(where, sizeof where, g_cfg.export_dir), svc);
  else if (g_cfg.exporter == POLYTEL_EXPORTER_NONE)
    polytel__diag(POLYTEL_LEVEL_INFO,
                  "full telemetry: recording with no exporter (POLYTEL_EXPORTER=none) as service \"%s\"",
                  svc);
  else
    polytel__diag(POLYTEL_LEVEL_INFO, "full telemetry: exporting to %s (%s%s) as service \"%s\"",
                  polytel__show_url(where, sizeof where, g_cfg.endpoint), protocol_name(g_cfg.protocol),
                  g_cfg.gzip == POLYTEL_COMPRESSION_ZSTD ? ", zstd"
                  : g_cfg.gzip                           ? ", gzip"
                                                         : "",
                  svc);
}

int polytel_init_full_telemetry(struct uv_loop_s *loop, const polytel_config_t *cfg) {
  polytel__cfg_t c;
  int enable;
  int rc = phase2_prepare(cfg, &c, &enable);
  if (rc <= 0) return rc;
#if !POLYTEL_WITH_UV
  /* Telemetry would start here, but this build has no loop to run it on. */
  (void)loop;
  polytel__cfg_free(&c);
  pthread_mutex_unlock(&g_phase_mu);
  return POLYTEL_ENOSYS;
#else
  if (g_have_res) polytel__resource_free(&g_res);
  if (polytel__resource_build(&c, &g_res) != 0) {
    g_have_res = 0;
    polytel__cfg_free(&c);
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_ENOMEM;
  }
  g_have_res = 1;
  /* The pipeline keeps pointers into the config: it must be the one kept globally. */
  phase2_commit(&c);
  polytel__pipeline_t *pl = polytel__pipeline_new(&g_cfg, &g_res);
  rc = pl ? polytel__transport_start(loop, pl, &g_cfg) : POLYTEL_ENOMEM;
  if (rc != 0) {
    if (pl) polytel__pipeline_free(pl);
    atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
    polytel__update_levels();
    pthread_mutex_unlock(&g_phase_mu);
    polytel__diag(POLYTEL_LEVEL_ERROR, "full telemetry could not start: %s", polytel_strerror(rc));
    return rc;
  }
  pthread_mutex_unlock(&g_phase_mu);
  announce();
  return 0;
#endif
}

/* Phase 2 without libuv: the host (the wasm/JS transport) drives the returned pipeline. */
int polytel__init_full_external(const polytel_config_t *cfg, polytel__pipeline_t **out) {
  polytel__cfg_t c;
  int enable;
  *out = NULL;
  int rc = phase2_prepare(cfg, &c, &enable);
  if (rc <= 0) return rc;
  if (g_have_res) polytel__resource_free(&g_res);
  g_have_res = polytel__resource_build(&c, &g_res) == 0;
  if (!g_have_res) {
    polytel__cfg_free(&c);
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_ENOMEM;
  }
  phase2_commit(&c);
  polytel__pipeline_t *pl = polytel__pipeline_new(&g_cfg, &g_res);
  if (!pl) {
    atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
    polytel__update_levels();
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_ENOMEM;
  }
  g_external = 1;
  g_ext_pl = pl;
  *out = pl;
  pthread_mutex_unlock(&g_phase_mu);
  announce();
  return 0;
}

const polytel__cfg_t *polytel__current_cfg(void) {
  return g_have_cfg ? &g_cfg : NULL;
}

/* --------------------------------------------------------- flush, shutdown */

static void drop_sink_log(void *ctx, const polytel__log_rec_t *r) {
  (void)r;
  (*(uint64_t *)ctx)++;
}
static void drop_sink_span(void *ctx, const polytel__span_rec_t *r) {
  (void)r;
  (*(uint64_t *)ctx)++;
}

/* What is still in blocks can no longer be delivered: count it as dropped. Returns how many. */
static uint64_t discard_buffered(void) {
  uint64_t n = 0;
  polytel__sink_t sink = {drop_sink_log, drop_sink_span, NULL, &n};
  pthread_mutex_lock(&polytel__consume_mu);
  if (polytel__memsink_active())
    polytel__consume(&polytel__memsink_sink, UINT64_MAX);
  else
    polytel__consume(&sink, UINT64_MAX);
  pthread_mutex_unlock(&polytel__consume_mu);
  if (n) atomic_fetch_add(&polytel__acct.dropped_export, n);
  return n;
}

int polytel_flush(uint32_t timeout_ms) {
  pthread_mutex_lock(&g_phase_mu);
  int phase = atomic_load(&g_phase);
  int rc = 0;
  if (polytel__memsink_active()) {
    rc = polytel_memory_sink_collect();
  } else if (phase == POLYTEL_PHASE_FULL && !g_external) {
#if POLYTEL_WITH_UV
    rc = polytel__transport_flush(timeout_ms);
#endif
  } else if (phase == POLYTEL_PHASE_DEFERRED) {
    rc = polytel__pending_total() ? POLYTEL_ESTATE : 0; /* nothing can be sent before phase 2 */
  }
  (void)timeout_ms;
  pthread_mutex_unlock(&g_phase_mu);
  return rc;
}

/*
 * The last word of a cycle, from the core so every language prints it: what
 * was lost since this init, by cause, and what could not be confirmed.
 */
static void shutdown_summary(const polytel_stats_t *st, int deferred) {
  uint64_t dropped = st->dropped - g_base.dropped, unconfirmed = st->unconfirmed - g_base.unconfirmed;
  if (!dropped && !unconfirmed) return;
  struct {
    const char *name;
    uint64_t n;
  } causes[] = {{"dropped_export", st->dropped_export - g_base.dropped_export},
                {"dropped_buffer_full", st->dropped_buffer_full - g_base.dropped_buffer_full},
                {"dropped_rejected", st->dropped_rejected - g_base.dropped_rejected},
                {"dropped_invalid", st->dropped_invalid - g_base.dropped_invalid},
                {"dropped_depth", st->dropped_depth - g_base.dropped_depth}};
  char by[256] = "";
  size_t used = 0;
  for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++) {
    if (!causes[i].n) continue;
    int k = snprintf(by + used, sizeof by - used, "%s%s %llu", used ? ", " : " (", causes[i].name,
                     (unsigned long long)causes[i].n);
    if (k > 0 && (size_t)k < sizeof by - used) used += (size_t)k;
  }
  if (used && used + 1 < sizeof by) by[used++] = ')', by[used] = '\0';
  /* Expected in a pre-fork master that leaves export to its workers (already explained above). */
  polytel__diag(deferred ? POLYTEL_LEVEL_INFO : POLYTEL_LEVEL_WARN,
                "shutdown: %llu record%s dropped%s, %llu unconfirmed (sent, no answer before the deadline)",
                (unsigned long long)dropped, dropped == 1 ? "" : "s", by, (unsigned long long)unconfirmed);
}

int polytel_shutdown(uint32_t timeout_ms) {
  pthread_mutex_lock(&g_phase_mu);
  int phase = atomic_load(&g_phase);
  if (phase == POLYTEL_PHASE_NONE) {
    pthread_mutex_unlock(&g_phase_mu);
    return 0;
  }
  int rc = 0;
  /* Recording stops first, so threads still emitting cannot keep shutdown waiting. */
  atomic_store(&g_phase, POLYTEL_PHASE_NONE);
  polytel__update_levels();
#if POLYTEL_WITH_UV
  if (phase == POLYTEL_PHASE_FULL && !g_external) rc = polytel__transport_stop(timeout_ms);
#endif
  if (g_external && g_ext_pl) {
    polytel__pipeline_abandon(g_ext_pl);
    polytel__pipeline_free(g_ext_pl);
    g_ext_pl = NULL;
    g_external = 0;
  }
  (void)timeout_ms;
  atomic_store(&g_phase, POLYTEL_PHASE_NONE);
  polytel__update_levels(); /* recording stops; the console keeps working */
  uint64_t discarded = discard_buffered();
  if (discarded && phase == POLYTEL_PHASE_DEFERRED)
    /* Expected in a pre-fork master that leaves export to its workers; say it, never silently. */
    polytel__diag(POLYTEL_LEVEL_INFO,
                  "shutdown: %llu log records/spans recorded while deferred were never exported "
                  "(phase 2 never ran in this process); counted as dropped_export",
                  (unsigned long long)discarded);
  if (g_have_res) {
    polytel__resource_free(&g_res);
    g_have_res = 0;
  }
  if (g_have_user) {
    user_free(&g_user);
    g_have_user = 0;
  }
  polytel_stats_t st;
  polytel_stats(&st);
  shutdown_summary(&st, phase == POLYTEL_PHASE_DEFERRED);
  pthread_mutex_unlock(&g_phase_mu);
  /* 0 only if everything recorded since this init was delivered and confirmed (bad calls aside). */
  uint64_t bad_calls =
      (st.dropped_invalid - g_base.dropped_invalid) + (st.dropped_depth - g_base.dropped_depth);
  if (rc == 0 && st.unconfirmed != g_base.unconfirmed)
    rc = POLYTEL_ETIMEDOUT; /* answers that never came */
  else if (rc == 0 && (st.exported - g_base.exported) + bad_calls != st.recorded - g_base.recorded)
    rc = POLYTEL_EDROPPED;
  return rc;
}

/* ------------------------------------------------------------------ stats */

typedef struct thread_sums_s {
  uint64_t logs, spans, full, inv, depth, trunc;
} thread_sums_t;

/* Retired totals are read under the registry lock: a thread retiring meanwhile is counted exactly once. */
static void sum_threads(thread_sums_t *s) {
  pthread_mutex_lock(&polytel__registry_mu);
  s->logs = atomic_load(&polytel__acct.retired_logs);
  s->spans = atomic_load(&polytel__acct.retired_spans);
  s->full = atomic_load(&polytel__acct.retired_drop_full);
  s->inv = atomic_load(&polytel__acct.retired_drop_invalid);
  s->depth = atomic_load(&polytel__acct.retired_drop_depth);
  s->trunc = atomic_load(&polytel__acct.retired_truncated);
  for (polytel__thread_t *t = polytel__registry; t; t = t->next) {
    s->logs += atomic_load_explicit(&t->n_logs, POLYTEL__RELAXED);
    s->spans += atomic_load_explicit(&t->n_spans, POLYTEL__RELAXED);
    s->full += atomic_load_explicit(&t->n_drop_full, POLYTEL__RELAXED);
    s->inv += atomic_load_explicit(&t->n_drop_invalid, POLYTEL__RELAXED);
    s->depth += atomic_load_explicit(&t->n_drop_depth, POLYTEL__RELAXED);
    s->trunc += atomic_load_explicit(&t->n_truncated, POLYTEL__RELAXED);
  }
  pthread_mutex_unlock(&polytel__registry_mu);
}

int polytel_stats(polytel_stats_t *out) {
  if (!out) return POLYTEL_EINVAL;
  memset(out, 0, sizeof *out);
  /*
   * Outcomes first, then attempts: pending can never go negative. An outcome
   * is always counted after its record, and a partial_success moves records by
   * adding to dropped_rejected only what it does not add to exported.
   */
  out->exported = atomic_load(&polytel__acct.exported);
  out->dropped_export = atomic_load(&polytel__acct.dropped_export);
  out->dropped_rejected = atomic_load(&polytel__acct.dropped_rejected);
  out->unconfirmed = atomic_load(&polytel__acct.unconfirmed);
  uint64_t orphan = atomic_load(&polytel__acct.orphan_drop);
  thread_sums_t ts;
  sum_threads(&ts);
  out->logs_recorded = ts.logs;
  out->spans_recorded = ts.spans;
  out->recorded = ts.logs + ts.spans + orphan;
  out->dropped_buffer_full = ts.full + orphan;
  out->dropped_invalid = ts.inv;
  out->dropped_depth = ts.depth;
  out->truncated = ts.trunc;
  out->dropped = out->dropped_buffer_full + out->dropped_invalid + out->dropped_depth + out->dropped_export +
                 out->dropped_rejected;
  uint64_t done = out->exported + out->dropped + out->unconfirmed;
  out->pending = out->recorded > done ? out->recorded - done : 0;
  out->export_requests = atomic_load(&polytel__acct.export_requests);
  out->export_retries = atomic_load(&polytel__acct.export_retries);
  out->export_failures = atomic_load(&polytel__acct.export_failures);
  out->dropped_series = atomic_load(&polytel__acct.dropped_series);
  out->metric_saturated = atomic_load(&polytel__acct.metric_saturated);
  out->buffer_bytes = polytel__pool_bytes();
  out->buffer_bytes_max = polytel__pool_cap();
  return 0;
}

uint64_t polytel__recorded_total(void) {
  polytel_stats_t st;
  polytel_stats(&st);
  return st.recorded;
}

uint64_t polytel__pending_total(void) {
  polytel_stats_t st;
  polytel_stats(&st);
  return st.pending;
}

void polytel__wake(void) {
#if POLYTEL_WITH_UV
  polytel__transport_wake();
#endif
}
