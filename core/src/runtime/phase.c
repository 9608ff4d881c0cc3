/* phase.c — the phase state machine, idempotence, fork hooks, flush/shutdown and stats. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* environ (_GNU_SOURCE) */

#include "runtime/runtime.h"

static pthread_mutex_t g_phase_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_phase = POLYTEL_PHASE_NONE;
static polytel__cfg_t g_cfg;
static int g_have_cfg;
static int g_phase1_active;     /* phase 1 decided "deferred": the fork child returns to it */
static polytel_config_t g_user; /* phase-1 explicit config, owned copies of strings */
static int g_have_user;
static polytel__resource_t g_res;
static int g_have_res;
/* The transport phase 2 started (NULL outside phase full); wake-ups read it from any thread. */
static _Atomic(const polytel__transport_t *) g_transport;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static polytel_stats_t g_base; /* stats at phase 1: shutdown judges this cycle only */

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
  polytel__cfg_extras_free(c);
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
  polytel__cfg_extras_merge(dst, src);
}

/* ----------------------------------------------------------------- levels */

/* What the record layer keeps: records for export in phases deferred and full; the console's threshold. */
static void update_levels(void) {
  int phase = atomic_load(&g_phase);
  int threshold = g_have_cfg ? g_cfg.console_level : POLYTEL_LEVEL_INFO;
  int con = (!g_have_cfg || g_cfg.console != POLYTEL_CONSOLE_OFF) ? threshold : POLYTEL_LEVEL_OFF;
  polytel__levels_set(phase == POLYTEL_PHASE_DEFERRED || phase == POLYTEL_PHASE_FULL, con);
}

/* ------------------------------------------------------------------- fork */

static void atfork_prepare(void) {
  pthread_mutex_lock(&g_phase_mu);
  const polytel__transport_t *t = atomic_load(&g_transport);
  if (t && t->atfork_prepare) t->atfork_prepare();
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
  const polytel__transport_t *t = atomic_load(&g_transport);
  if (t && t->atfork_parent) t->atfork_parent();
  pthread_mutex_unlock(&g_phase_mu);
}

/* The child is a new process: its own identity, none of the parent's events, its phase-1 state. */
static void atfork_child(void) {
  polytel__buffers_unlock();
  polytel__metrics_unlock();
  pthread_mutex_unlock(&polytel__memsink_mu);
  pthread_mutex_unlock(&polytel__consume_mu);
  int phase = atomic_load(&g_phase);
  const polytel__transport_t *t = atomic_load(&g_transport);
  if (t && t->atfork_child) t->atfork_child();
  atomic_store(&g_transport, NULL);
  polytel__buffers_set_wake(NULL);
  polytel__consume_fork_child();
  polytel__buffers_fork_child();
  polytel__metrics_reset();
  if (polytel__memsink_active()) polytel_memory_sink_clear();
  polytel__acct_reset();
  memset(&g_base, 0, sizeof g_base);
  if (g_have_res) {
    polytel__resource_free(&g_res); /* rebuilt (new process.pid) at the child's phase 2 */
    g_have_res = 0;
  }
  if (phase == POLYTEL_PHASE_FULL)
    atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
  update_levels();
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
  polytel__trace_settings_apply(&c.sampler, c.propagators, c.limits);
  pthread_once(&g_atfork_once, register_atfork);
  g_phase1_active = c.telemetry_enabled && !c.sdk_disabled;
  atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
  update_levels();
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

static void first_use(void) {
  if (atomic_load(&polytel__g_min_level) != 0) return;
  polytel_init_console_only(NULL);
}

/* The layers below call up only through polytel__hooks: set before any code can record. */
__attribute__((constructor)) static void install_hooks(void) {
  polytel__hooks.first_use = first_use;
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
  polytel__trace_settings_apply(&g_cfg.sampler, g_cfg.propagators, g_cfg.limits);
  atomic_store(&g_phase, POLYTEL_PHASE_FULL);
  update_levels();
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
  const polytel__transport_t *t = polytel__transport_for(&c);
  if (!t) {
    /* Telemetry would start here, but this build has no transport to run it on. */
    polytel__cfg_free(&c);
    pthread_mutex_unlock(&g_phase_mu);
    return POLYTEL_ENOSYS;
  }
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
  /* Set first: a block handed off while the transport starts must wake it. */
  atomic_store(&g_transport, t);
  polytel__buffers_set_wake(t->wake);
  rc = pl ? t->start(t, loop, pl, &polytel__pipeline_api, &g_cfg) : POLYTEL_ENOMEM;
  if (rc != 0) {
    atomic_store(&g_transport, NULL);
    polytel__buffers_set_wake(NULL);
    if (pl) polytel__pipeline_free(pl);
    atomic_store(&g_phase, g_phase1_active ? POLYTEL_PHASE_DEFERRED : POLYTEL_PHASE_CONSOLE);
    update_levels();
    pthread_mutex_unlock(&g_phase_mu);
    polytel__diag(POLYTEL_LEVEL_ERROR, "full telemetry could not start: %s", polytel_strerror(rc));
    return rc;
  }
  pthread_mutex_unlock(&g_phase_mu);
  announce();
  return 0;
}

const polytel__cfg_t *polytel__current_cfg(void) {
  return g_have_cfg ? &g_cfg : NULL;
}

/* Why nothing is exported in this phase with this configuration; NULL when it is. */
static const char *not_exporting(int phase, const polytel__cfg_t *c) {
  if (c->sdk_disabled) return "OTEL_SDK_DISABLED is true";
  if (!c->telemetry_enabled) return "TELEMETRY_ENABLED is not true: console only";
  switch (phase) {
    case POLYTEL_PHASE_NONE:
      return "not initialized, or shut down";
    case POLYTEL_PHASE_DEFERRED:
      return "deferred: phase 2 (bootstrap_worker) has not run";
    case POLYTEL_PHASE_CONSOLE:
      return "console only";
    default:
      break;
  }
  if (c->exporter == POLYTEL_EXPORTER_NONE) return "the exporter is none: recording and counting only";
  if (!c->signal_enabled[0] && !c->signal_enabled[1] && !c->signal_enabled[2])
    return "OTEL_TRACES_EXPORTER, OTEL_LOGS_EXPORTER and OTEL_METRICS_EXPORTER are none";
  return NULL;
}

polytel_resolved_t *polytel_config_resolved(void) {
  pthread_mutex_lock(&g_phase_mu);
  int phase = atomic_load(&g_phase);
  polytel__cfg_t fresh;
  const polytel__cfg_t *c = &g_cfg;
  if (!g_have_cfg || phase == POLYTEL_PHASE_NONE) {
    /* Nothing runs: what an init would resolve now, without its warnings (an init prints those). */
    if (polytel__cfg_resolve_quiet(NULL, NULL, &fresh) != 0) {
      pthread_mutex_unlock(&g_phase_mu);
      return NULL;
    }
    c = &fresh;
  }
  /* Where export goes with this exporter: the collector's base URL, the file exporter's directory, or none.
   */
  const char *dest = c->exporter == POLYTEL_EXPORTER_NONE   ? NULL
                     : c->exporter == POLYTEL_EXPORTER_FILE ? c->export_dir
                                                            : c->endpoint;
  const char *lead[] = {"phase",         polytel_phase_name((polytel_phase_t)phase),
                        "not_exporting", not_exporting(phase, c),
                        "destination",   dest};
  polytel_resolved_t *r = polytel__cfg_describe(c, lead, 3);
  if (c == &fresh) polytel__cfg_free(&fresh);
  pthread_mutex_unlock(&g_phase_mu);
  return r;
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
  } else if (phase == POLYTEL_PHASE_FULL) {
    const polytel__transport_t *t = atomic_load(&g_transport);
    rc = t ? t->flush(timeout_ms) : 0;
  } else if (phase == POLYTEL_PHASE_DEFERRED) {
    rc = polytel__pending_total() ? POLYTEL_ESTATE : 0; /* nothing can be sent before phase 2 */
  }
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
  update_levels();
  const polytel__transport_t *t = atomic_load(&g_transport);
  if (phase == POLYTEL_PHASE_FULL && t) rc = t->stop(timeout_ms);
  atomic_store(&g_transport, NULL);
  polytel__buffers_set_wake(NULL);
  atomic_store(&g_phase, POLYTEL_PHASE_NONE);
  update_levels(); /* recording stops; the console keeps working */
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
