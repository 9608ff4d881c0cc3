/* test_config.c — every variable (good, bad → exact warning, kept value), precedence, bool words, defaults.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/console.h"
#include "common/types.h"

/* ------------------------------------------------------------ injected environment */

static const char *const *fake_env; /* name, value, name, value, ..., NULL */

static const char *fake_get(const char *name) {
  for (const char *const *p = fake_env; p && *p; p += 2) {
    if (strcmp(p[0], name) == 0) return p[1];
  }
  return NULL;
}

/* ------------------------------------------------------------ warnings, captured through a real pipe */

#include "capture.h"

/* Captured lines, each without its leading timestamp. */
static char *cap_end(void) {
  char *buf = cap_read_all();
  size_t n = strlen(buf);
  char *out = malloc(n + 1), *w = out;
  for (char *line = buf; *line;) {
    char *nl = strchr(line, '\n'), *sp = strchr(line, ' ');
    char *end = nl ? nl + 1 : line + strlen(line);
    char *from = sp && sp < end ? sp + 1 : line;
    memcpy(w, from, (size_t)(end - from));
    w += end - from;
    line = end;
  }
  *w = '\0';
  free(buf);
  return out;
}

/* Resolve with an injected environment; returns the warnings printed (caller frees). */
static char *resolve(const char *const *envp, const polytel_config_t *user, polytel__cfg_t *out) {
  fake_env = envp;
  cap_begin();
  int rc = polytel__cfg_resolve(user, fake_get, out);
  char *w = cap_end();
  assert_int_equal(rc, 0);
  return w;
}

static void resolve_quiet(const char *const *envp, const polytel_config_t *user, polytel__cfg_t *out) {
  char *w = resolve(envp, user, out);
  assert_string_equal(w, "");
  free(w);
}

static int reset(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_INFO, 0);
  return 0;
}

/* A field of polytel__cfg_t read as an unsigned number. */
typedef struct field_s {
  size_t off, size;
} field_t;
#define F(member) \
  { offsetof(polytel__cfg_t, member), sizeof(((polytel__cfg_t *)0)->member) }

static uint64_t get_field(const polytel__cfg_t *c, field_t f) {
  const char *p = (const char *)c + f.off;
  if (f.size == 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
  }
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* ------------------------------------------------------------ tests */

static void test_defaults(void **state) {
  (void)state;
  polytel__cfg_t c;
  resolve_quiet(NULL, NULL, &c);
  assert_int_equal(c.telemetry_enabled, 0);
  assert_int_equal(c.sdk_disabled, 0);
  assert_string_equal(c.service_name, "test_config"); /* the executable name */
  assert_null(c.service_version);
  assert_string_equal(c.sdk_language, "c");
  assert_int_equal(c.n_resource_attrs, 0);
  assert_string_equal(c.endpoint, "http://localhost:4318");
  assert_string_equal(c.signal_url[POLYTEL__SIG_TRACES], "http://localhost:4318/v1/traces");
  assert_string_equal(c.signal_url[POLYTEL__SIG_LOGS], "http://localhost:4318/v1/logs");
  assert_string_equal(c.signal_url[POLYTEL__SIG_METRICS], "http://localhost:4318/v1/metrics");
  assert_int_equal(c.n_headers, 0);
  assert_null(c.certificate);
  assert_int_equal(c.protocol, POLYTEL_PROTOCOL_PROTOBUF);
  assert_int_equal(c.gzip, 0);
  assert_int_equal(c.timeout_ms, 10000);
  assert_int_equal(c.console, POLYTEL_CONSOLE_STDERR);
  assert_int_equal(c.console_format, POLYTEL_CONSOLE_FORMAT_TEXT);
  assert_int_equal(c.console_level, POLYTEL_LEVEL_INFO);
  assert_int_equal(c.color, isatty(STDERR_FILENO) ? 1 : 0);
  assert_int_equal(c.exporter, POLYTEL_EXPORTER_OTLP);
  assert_string_equal(c.export_dir, "./polytel-out");
  for (int s = 0; s < 3; s++) assert_int_equal(c.signal_enabled[s], 1);
  assert_int_equal(c.max_memory_bytes, 16u << 20);
  assert_int_equal(c.bsp.schedule_delay_ms, 5000);
  assert_int_equal(c.bsp.export_timeout_ms, 30000);
  assert_int_equal(c.bsp.max_queue_size, 2048);
  assert_int_equal(c.bsp.max_export_batch_size, 512);
  assert_int_equal(c.blrp.schedule_delay_ms, 1000);
  assert_int_equal(c.blrp.export_timeout_ms, 30000);
  assert_int_equal(c.blrp.max_queue_size, 2048);
  assert_int_equal(c.blrp.max_export_batch_size, 512);
  assert_int_equal(c.metric_export_interval_ms, 60000);
  assert_int_equal(c.metric_export_timeout_ms, 30000);
  assert_int_equal(c.max_metric_series, 2000);
  polytel__cfg_free(&c);
  assert_null(c.service_name);
  polytel__cfg_free(&c); /* twice is harmless */
}

static void test_bool_words(void **state) {
  (void)state;
  static const char *const t[] = {"true", "TRUE", "True", "1",      "yes",
                                  "YES",  "on",   "On",   " true ", "\ttrue\n"};
  static const char *const f[] = {"false", "FALSE", "0", "no", "No", "off", "OFF", " off "};
  static const char *const bad[] = {"maybe", "", " ", "2", "tru", "truee", "y", "n", "+1", "on off", NULL};
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) assert_int_equal(polytel__parse_bool(t[i]), 1);
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) assert_int_equal(polytel__parse_bool(f[i]), 0);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(polytel__parse_bool(bad[i]), -1);

  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    const char *env[] = {"TELEMETRY_ENABLED", t[i], "OTEL_SDK_DISABLED", t[i], NULL};
    polytel__cfg_t c;
    resolve_quiet(env, NULL, &c);
    assert_int_equal(c.telemetry_enabled, 1);
    assert_int_equal(c.sdk_disabled, 1);
    polytel__cfg_free(&c);
  }
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    const char *env[] = {"TELEMETRY_ENABLED", f[i], NULL};
    polytel__cfg_t c;
    resolve_quiet(env, NULL, &c);
    assert_int_equal(c.telemetry_enabled, 0);
    polytel__cfg_free(&c);
  }
  /* empty or blank = unset: no warning */
  const char *empty[] = {"TELEMETRY_ENABLED", "", "OTEL_SDK_DISABLED", "   ", NULL};
  polytel__cfg_t c;
  resolve_quiet(empty, NULL, &c);
  assert_int_equal(c.telemetry_enabled, 0);
  polytel__cfg_free(&c);
}

/* Numbers and keywords: one row per variable and kind of good value. */
typedef struct good_row_s {
  const char *var, *value;
  field_t field;
  uint64_t want;
} good_row_t;

static void test_good_values(void **state) {
  (void)state;
  static const good_row_t rows[] = {
      {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", F(protocol), POLYTEL_PROTOCOL_JSON},
      {"OTEL_EXPORTER_OTLP_PROTOCOL", " HTTP/PROTOBUF ", F(protocol), POLYTEL_PROTOCOL_PROTOBUF},
      {"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", F(gzip), 1},
      {"OTEL_EXPORTER_OTLP_COMPRESSION", "NONE", F(gzip), 0},
      {"OTEL_EXPORTER_OTLP_COMPRESSION", " Zstd ", F(gzip), POLYTEL_COMPRESSION_ZSTD},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "2500", F(timeout_ms), 2500},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", " 007 ", F(timeout_ms), 7},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "4294967295", F(timeout_ms), 4294967295u},
      {"OTEL_BSP_SCHEDULE_DELAY", "250", F(bsp.schedule_delay_ms), 250},
      {"OTEL_BSP_EXPORT_TIMEOUT", "1500", F(bsp.export_timeout_ms), 1500},
      {"OTEL_BSP_MAX_QUEUE_SIZE", "4096", F(bsp.max_queue_size), 4096},
      {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100", F(bsp.max_export_batch_size), 100},
      {"OTEL_BLRP_SCHEDULE_DELAY", "20", F(blrp.schedule_delay_ms), 20},
      {"OTEL_BLRP_EXPORT_TIMEOUT", "900", F(blrp.export_timeout_ms), 900},
      {"OTEL_BLRP_MAX_QUEUE_SIZE", "8192", F(blrp.max_queue_size), 8192},
      {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "2048", F(blrp.max_export_batch_size), 2048},
      {"OTEL_METRIC_EXPORT_INTERVAL", "15000", F(metric_export_interval_ms), 15000},
      {"OTEL_METRIC_EXPORT_TIMEOUT", "5000", F(metric_export_timeout_ms), 5000},
      {"POLYTEL_MAX_METRIC_SERIES", "50000", F(max_metric_series), 50000},
      {"OTEL_TRACES_EXPORTER", "none", F(signal_enabled[POLYTEL__SIG_TRACES]), 0},
      {"OTEL_LOGS_EXPORTER", "None", F(signal_enabled[POLYTEL__SIG_LOGS]), 0},
      {"OTEL_METRICS_EXPORTER", "none", F(signal_enabled[POLYTEL__SIG_METRICS]), 0},
      {"OTEL_TRACES_EXPORTER", "otlp", F(signal_enabled[POLYTEL__SIG_TRACES]), 1},
      {"OTEL_METRICS_EXPORTER", "otlp", F(signal_enabled[POLYTEL__SIG_METRICS]), 1},
      {"POLYTEL_EXPORTER", "file", F(exporter), POLYTEL_EXPORTER_FILE},
      {"POLYTEL_EXPORTER", "NONE", F(exporter), POLYTEL_EXPORTER_NONE},
      {"POLYTEL_EXPORTER", "otlp", F(exporter), POLYTEL_EXPORTER_OTLP},
      {"POLYTEL_MAX_MEMORY", "64M", F(max_memory_bytes), 64u << 20},
      {"POLYTEL_MAX_MEMORY", "512 KiB", F(max_memory_bytes), 512u << 10},
      {"POLYTEL_MAX_MEMORY", "1g", F(max_memory_bytes), 1u << 30},
      {"POLYTEL_MAX_MEMORY", "2GB", F(max_memory_bytes), 2ull << 30},
      {"POLYTEL_MAX_MEMORY", "300000", F(max_memory_bytes), 300000},
      {"POLYTEL_MAX_MEMORY", "262144b", F(max_memory_bytes), 262144},
      {"POLYTEL_LOG_LEVEL", "trace", F(console_level), POLYTEL_LEVEL_TRACE},
      {"POLYTEL_LOG_LEVEL", "DEBUG", F(console_level), POLYTEL_LEVEL_DEBUG},
      {"POLYTEL_LOG_LEVEL", "Info", F(console_level), POLYTEL_LEVEL_INFO},
      {"POLYTEL_LOG_LEVEL", "warn", F(console_level), POLYTEL_LEVEL_WARN},
      {"POLYTEL_LOG_LEVEL", "WARNING", F(console_level), POLYTEL_LEVEL_WARN},
      {"POLYTEL_LOG_LEVEL", "error", F(console_level), POLYTEL_LEVEL_ERROR},
      {"POLYTEL_LOG_LEVEL", "fatal", F(console_level), POLYTEL_LEVEL_FATAL},
      {"POLYTEL_LOG_LEVEL", "off", F(console_level), POLYTEL_LEVEL_OFF},
      {"POLYTEL_CONSOLE", "stdout", F(console), POLYTEL_CONSOLE_STDOUT},
      {"POLYTEL_CONSOLE", "OFF", F(console), POLYTEL_CONSOLE_OFF},
      {"POLYTEL_CONSOLE", "stderr", F(console), POLYTEL_CONSOLE_STDERR},
      {"POLYTEL_CONSOLE_FORMAT", "json", F(console_format), POLYTEL_CONSOLE_FORMAT_JSON},
      {"POLYTEL_CONSOLE_FORMAT", "Text", F(console_format), POLYTEL_CONSOLE_FORMAT_TEXT},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const char *env[] = {rows[i].var, rows[i].value, NULL};
    polytel__cfg_t c;
    char *w = resolve(env, NULL, &c);
    if (strcmp(w, "") != 0 || get_field(&c, rows[i].field) != rows[i].want) {
      print_error("%s=\"%s\": got %llu, warnings: %s\n", rows[i].var, rows[i].value,
                  (unsigned long long)get_field(&c, rows[i].field), w);
      fail();
    }
    free(w);
    polytel__cfg_free(&c);
  }
}

typedef struct bad_row_s {
  const char *var, *value;
  field_t field;
  uint64_t kept;
  const char *warning;
} bad_row_t;

#define NUM_EXPECTED "(expected an integer from 1 to 4294967295)"

static void test_bad_values(void **state) {
  (void)state;
  static const bad_row_t rows[] = {
      {"TELEMETRY_ENABLED", "maybe", F(telemetry_enabled), 0,
       "invalid TELEMETRY_ENABLED=\"maybe\" (expected true/false/1/0/yes/no/on/off); using false"},
      {"OTEL_SDK_DISABLED", " nah ", F(sdk_disabled), 0,
       "invalid OTEL_SDK_DISABLED=\"nah\" (expected true/false/1/0/yes/no/on/off); using false"},
      {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", F(protocol), POLYTEL_PROTOCOL_PROTOBUF,
       "invalid OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" (grpc is not supported, expected http/protobuf or "
       "http/json); "
       "using http/protobuf"},
      {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml", F(protocol), POLYTEL_PROTOCOL_PROTOBUF,
       "invalid OTEL_EXPORTER_OTLP_PROTOCOL=\"http/xml\" (expected http/protobuf or http/json); using "
       "http/protobuf"},
      {"OTEL_EXPORTER_OTLP_COMPRESSION", "br", F(gzip), 0,
       "invalid OTEL_EXPORTER_OTLP_COMPRESSION=\"br\" (expected gzip, zstd or none); using none"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "10s", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"10s\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "0", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"0\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "-5", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"-5\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "+5", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"+5\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "1 000", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"1 000\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "4294967296", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"4294967296\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999999999999999", F(timeout_ms), 10000,
       "invalid OTEL_EXPORTER_OTLP_TIMEOUT=\"99999999999999999999999\" " NUM_EXPECTED "; using 10000"},
      {"OTEL_BSP_SCHEDULE_DELAY", "5s", F(bsp.schedule_delay_ms), 5000,
       "invalid OTEL_BSP_SCHEDULE_DELAY=\"5s\" " NUM_EXPECTED "; using 5000"},
      {"OTEL_BSP_EXPORT_TIMEOUT", "x", F(bsp.export_timeout_ms), 30000,
       "invalid OTEL_BSP_EXPORT_TIMEOUT=\"x\" " NUM_EXPECTED "; using 30000"},
      {"OTEL_BSP_MAX_QUEUE_SIZE", "0", F(bsp.max_queue_size), 2048,
       "invalid OTEL_BSP_MAX_QUEUE_SIZE=\"0\" " NUM_EXPECTED "; using 2048"},
      {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1.5", F(bsp.max_export_batch_size), 512,
       "invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE=\"1.5\" " NUM_EXPECTED "; using 512"},
      {"OTEL_BLRP_SCHEDULE_DELAY", "-1", F(blrp.schedule_delay_ms), 1000,
       "invalid OTEL_BLRP_SCHEDULE_DELAY=\"-1\" " NUM_EXPECTED "; using 1000"},
      {"OTEL_BLRP_EXPORT_TIMEOUT", "0x10", F(blrp.export_timeout_ms), 30000,
       "invalid OTEL_BLRP_EXPORT_TIMEOUT=\"0x10\" " NUM_EXPECTED "; using 30000"},
      {"OTEL_BLRP_MAX_QUEUE_SIZE", "big", F(blrp.max_queue_size), 2048,
       "invalid OTEL_BLRP_MAX_QUEUE_SIZE=\"big\" " NUM_EXPECTED "; using 2048"},
      {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "", F(blrp.max_export_batch_size), 512, ""},
      {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "5e2", F(blrp.max_export_batch_size), 512,
       "invalid OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=\"5e2\" " NUM_EXPECTED "; using 512"},
      {"OTEL_METRIC_EXPORT_INTERVAL", "1m", F(metric_export_interval_ms), 60000,
       "invalid OTEL_METRIC_EXPORT_INTERVAL=\"1m\" " NUM_EXPECTED "; using 60000"},
      {"OTEL_METRIC_EXPORT_TIMEOUT", "never", F(metric_export_timeout_ms), 30000,
       "invalid OTEL_METRIC_EXPORT_TIMEOUT=\"never\" " NUM_EXPECTED "; using 30000"},
      {"POLYTEL_MAX_METRIC_SERIES", "0", F(max_metric_series), 2000,
       "invalid POLYTEL_MAX_METRIC_SERIES=\"0\" (expected an integer from 1 to 1000000); using 2000"},
      {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", F(bsp.max_export_batch_size), 2048,
       "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096 is larger than OTEL_BSP_MAX_QUEUE_SIZE=2048; using 2048"},
      {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "2049", F(blrp.max_export_batch_size), 2048,
       "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=2049 is larger than OTEL_BLRP_MAX_QUEUE_SIZE=2048; using 2048"},
      {"OTEL_TRACES_EXPORTER", "zipkin", F(signal_enabled[POLYTEL__SIG_TRACES]), 1,
       "invalid OTEL_TRACES_EXPORTER=\"zipkin\" (expected otlp, none or console); using otlp"},
      {"OTEL_LOGS_EXPORTER", "otlp,kafka", F(signal_enabled[POLYTEL__SIG_LOGS]), 1,
       "invalid OTEL_LOGS_EXPORTER=\"otlp,kafka\" (expected otlp, none or console); using otlp"},
      {"OTEL_METRICS_EXPORTER", "prometheus", F(signal_enabled[POLYTEL__SIG_METRICS]), 1,
       "invalid OTEL_METRICS_EXPORTER=\"prometheus\" (expected otlp, none or console); using otlp"},
      {"OTEL_TRACES_EXPORTER", "console", F(signal_enabled[POLYTEL__SIG_TRACES]), 0,
       "INFO polytel: OTEL_TRACES_EXPORTER=console: spans are not exported; polytel's console "
       "(POLYTEL_CONSOLE) "
       "prints log records only"},
      {"OTEL_LOGS_EXPORTER", "console", F(signal_enabled[POLYTEL__SIG_LOGS]), 0,
       "INFO polytel: OTEL_LOGS_EXPORTER=console: log records are not exported; polytel's console "
       "(POLYTEL_CONSOLE) prints log records only"},
      {"OTEL_METRICS_EXPORTER", "otlp, console", F(signal_enabled[POLYTEL__SIG_METRICS]), 1,
       "INFO polytel: OTEL_METRICS_EXPORTER=console: metrics are not exported; polytel's console "
       "(POLYTEL_CONSOLE) prints log records only"},
      {"POLYTEL_EXPORTER", "kafka", F(exporter), POLYTEL_EXPORTER_OTLP,
       "invalid POLYTEL_EXPORTER=\"kafka\" (expected otlp, file or none); using otlp"},
      {"POLYTEL_MAX_MEMORY", "lots", F(max_memory_bytes), 16u << 20,
       "invalid POLYTEL_MAX_MEMORY=\"lots\" (expected a byte count with an optional K, M or G suffix); using "
       "16777216"},
      {"POLYTEL_MAX_MEMORY", "-1", F(max_memory_bytes), 16u << 20,
       "invalid POLYTEL_MAX_MEMORY=\"-1\" (expected a byte count with an optional K, M or G suffix); using "
       "16777216"},
      {"POLYTEL_MAX_MEMORY", "99999999999G", F(max_memory_bytes), 16u << 20,
       "invalid POLYTEL_MAX_MEMORY=\"99999999999G\" (expected a byte count with an optional K, M or G "
       "suffix); "
       "using 16777216"},
      {"POLYTEL_MAX_MEMORY", "16T", F(max_memory_bytes), 16u << 20,
       "invalid POLYTEL_MAX_MEMORY=\"16T\" (expected a byte count with an optional K, M or G suffix); using "
       "16777216"},
      {"POLYTEL_MAX_MEMORY", "100", F(max_memory_bytes), 262144,
       "POLYTEL_MAX_MEMORY=\"100\" is below the 262144-byte minimum; using 262144"},
      {"POLYTEL_MAX_MEMORY", "0", F(max_memory_bytes), 262144,
       "POLYTEL_MAX_MEMORY=\"0\" is below the 262144-byte minimum; using 262144"},
      {"POLYTEL_LOG_LEVEL", "verbose", F(console_level), POLYTEL_LEVEL_INFO,
       "invalid POLYTEL_LOG_LEVEL=\"verbose\" (expected trace, debug, info, warn, error, fatal or off); "
       "using "
       "info"},
      {"POLYTEL_CONSOLE", "stdlog", F(console), POLYTEL_CONSOLE_STDERR,
       "invalid POLYTEL_CONSOLE=\"stdlog\" (expected stderr, stdout or off); using stderr"},
      {"POLYTEL_CONSOLE_FORMAT", "xml", F(console_format), POLYTEL_CONSOLE_FORMAT_TEXT,
       "invalid POLYTEL_CONSOLE_FORMAT=\"xml\" (expected text or json); using text"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    const char *env[] = {rows[i].var, rows[i].value, NULL};
    polytel__cfg_t c;
    char *w = resolve(env, NULL, &c);
    char want[512] = "";
    if (rows[i].warning[0]) {
      snprintf(want, sizeof want, "%s%s\n", strncmp(rows[i].warning, "INFO ", 5) ? "WARN polytel: " : "",
               rows[i].warning);
    }
    if (strcmp(w, want) != 0 || get_field(&c, rows[i].field) != rows[i].kept) {
      print_error("%s=\"%s\": kept %llu (want %llu)\n got:  %s want: %s", rows[i].var, rows[i].value,
                  (unsigned long long)get_field(&c, rows[i].field), (unsigned long long)rows[i].kept, w,
                  want);
      fail();
    }
    free(w);
    polytel__cfg_free(&c);
  }
}

static void test_warning_value_is_escaped_and_truncated(void **state) {
  (void)state;
  char longv[101];
  memset(longv, 'x', 100);
  longv[100] = '\0';
  const char *env[] = {"TELEMETRY_ENABLED", longv, "POLYTEL_CONSOLE", "std\x1b[31mout\nINFO forged", NULL};
  polytel__cfg_t c;
  char *w = resolve(env, NULL, &c);
  char want[512];
  snprintf(
      want, sizeof want,
      "WARN polytel: invalid TELEMETRY_ENABLED=\"%.64s\xe2\x80\xa6\" (expected "
      "true/false/1/0/yes/no/on/off); using false\n"
      "WARN polytel: invalid POLYTEL_CONSOLE=\"std\\x1b[31mout\\nINFO forged\" (expected stderr, stdout or "
      "off); using stderr\n",
      longv);
  assert_string_equal(w, want);
  free(w);
  polytel__cfg_free(&c);
}

static void test_service_and_resource(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *e1[] = {"OTEL_RESOURCE_ATTRIBUTES", "service.name=fromattrs,deployment.environment=prod", NULL};
  resolve_quiet(e1, NULL, &c);
  assert_string_equal(c.service_name, "fromattrs"); /* the pair beats the executable name */
  polytel__cfg_free(&c);

  const char *e2[] = {"OTEL_RESOURCE_ATTRIBUTES",
                      "service.name=fromattrs",
                      "OTEL_SERVICE_NAME",
                      " svc ",
                      "OTEL_SERVICE_VERSION",
                      "1.2.3",
                      NULL};
  resolve_quiet(e2, NULL, &c);
  assert_string_equal(c.service_name, "svc"); /* OTEL_SERVICE_NAME beats the pair */
  assert_string_equal(c.service_version, "1.2.3");
  polytel__cfg_free(&c);

  polytel_config_t u;
  polytel_config_init(&u);
  u.service_name = "explicit";
  u.service_version = "9";
  u.sdk_language = "python";
  resolve_quiet(e2, &u, &c);
  assert_string_equal(c.service_name, "explicit");
  assert_string_equal(c.service_version, "9");
  assert_string_equal(c.sdk_language, "python");
  polytel__cfg_free(&c);

  const char *e3[] = {"OTEL_SERVICE_NAME", "bad\xff", NULL};
  char *w = resolve(e3, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_SERVICE_NAME=\"bad\\xff\" (expected valid UTF-8); using the "
      "default\n");
  assert_string_equal(c.service_name, "test_config");
  free(w);
  polytel__cfg_free(&c);

  const char *e4[] = {"OTEL_SERVICE_VERSION", "1.0\xc3", NULL};
  w = resolve(e4, NULL, &c);
  assert_string_equal(w,
                      "WARN polytel: invalid OTEL_SERVICE_VERSION=\"1.0\\xc3\" (expected valid UTF-8); using "
                      "the default\n");
  assert_null(c.service_version);
  free(w);
  polytel__cfg_free(&c);
}

static void test_resource_attributes(void **state) {
  (void)state;
  const char *env[] = {"OTEL_RESOURCE_ATTRIBUTES",
                       "a=1, b = x%20y ,c=100%zz, noeq, =v,,a=2, d=%C3%A9%2C, e=%FF, k%3Dx=v%3D, z=", NULL};
  polytel__cfg_t c;
  char *w = resolve(env, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: OTEL_RESOURCE_ATTRIBUTES entry \"c=100%zz\" has an invalid percent-escape; "
      "kept as written\n"
      "WARN polytel: invalid OTEL_RESOURCE_ATTRIBUTES entry \"noeq\" (expected key=value); skipped\n"
      "WARN polytel: invalid OTEL_RESOURCE_ATTRIBUTES entry \"=v\" (empty key); skipped\n"
      "WARN polytel: invalid OTEL_RESOURCE_ATTRIBUTES entry \"e=%FF\" (not valid UTF-8 once "
      "decoded); skipped\n");
  free(w);
  assert_int_equal(c.n_resource_attrs, 6);
  static const char *const want[][2] = {{"a", "2"},         {"b", "x y"},  {"c", "100%zz"},
                                        {"d", "\xc3\xa9,"}, {"k=x", "v="}, {"z", ""}};
  for (size_t i = 0; i < 6; i++) {
    assert_string_equal(c.resource_attrs[i].key, want[i][0]);
    assert_string_equal(c.resource_attrs[i].value, want[i][1]);
  }
  polytel__cfg_free(&c);

  /* at most 128 entries */
  char *many = malloc(200 * 12), *m = many;
  for (int i = 0; i < 200; i++) m += sprintf(m, "%sk%d=v", i ? "," : "", i);
  const char *e3[] = {"OTEL_RESOURCE_ATTRIBUTES", many, NULL};
  w = resolve(e3, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: OTEL_RESOURCE_ATTRIBUTES has more than 128 entries; entry #129 and later "
      "are skipped\n");
  assert_int_equal(c.n_resource_attrs, 128);
  assert_string_equal(c.resource_attrs[127].key, "k127");
  free(w);
  free(many);
  polytel__cfg_free(&c);

  /* %00 would cut the C string: kept as written */
  const char *e2[] = {"OTEL_RESOURCE_ATTRIBUTES", "k=a%00b", NULL};
  w = resolve(e2, NULL, &c);
  assert_string_equal(w,
                      "WARN polytel: OTEL_RESOURCE_ATTRIBUTES entry \"k=a%00b\" has an invalid "
                      "percent-escape; kept as written\n");
  assert_string_equal(c.resource_attrs[0].value, "a%00b");
  free(w);
  polytel__cfg_free(&c);
}

#define URL_EXPECTED "(expected an http:// or https:// URL with a host and an optional port 1-65535)"

static void test_endpoints(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *good[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", " https://collector.example.com:4318/otlp// ", NULL};
  resolve_quiet(good, NULL, &c);
  assert_string_equal(c.endpoint, "https://collector.example.com:4318/otlp");
  assert_string_equal(c.signal_url[POLYTEL__SIG_TRACES], "https://collector.example.com:4318/otlp/v1/traces");
  assert_string_equal(c.signal_url[POLYTEL__SIG_LOGS], "https://collector.example.com:4318/otlp/v1/logs");
  assert_string_equal(c.signal_url[POLYTEL__SIG_METRICS],
                      "https://collector.example.com:4318/otlp/v1/metrics");
  polytel__cfg_free(&c);

  static const char *const ok[] = {"http://[::1]:4318", "HTTP://127.0.0.1:1", "http://h:65535/",
                                   "https://a-b.c_d~e", "http://host/p%20ath"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", ok[i], NULL};
    resolve_quiet(env, NULL, &c);
    assert_int_equal(strncmp(c.endpoint, ok[i], strlen(c.endpoint)), 0);
    polytel__cfg_free(&c);
  }

  static const char *const bad[] = {
      "localhost:4318",    "ftp://host",      "http://",        "http://:4318",       "http://host:0",
      "http://host:65536", "http://host:abc", "http://host:",   "http://h\xc3\xb4st", "http://host/a b",
      "http://host/?q=1",  "http://host/#f",  "http://[zz]:80", "http://[]",          "http://host:080000",
      "https//host"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", bad[i], NULL};
    char *w = resolve(env, NULL, &c);
    char want[512];
    /* a query or fragment is never echoed (it may hold an API key): "?…" */
    size_t shown = strcspn(bad[i], "?#");
    snprintf(want, sizeof want,
             "WARN polytel: invalid OTEL_EXPORTER_OTLP_ENDPOINT=\"%.*s%s\" " URL_EXPECTED
             "; using "
             "http://localhost:4318\n",
             (int)shown, bad[i],
             bad[i][shown] == '?'   ? "?\xe2\x80\xa6"
             : bad[i][shown] == '#' ? "#\xe2\x80\xa6"
                                    : "");
    if (strcmp(w, want) != 0) print_error("got:  %swant: %s", w, want);
    assert_string_equal(w, want);
    assert_string_equal(c.endpoint, "http://localhost:4318");
    assert_string_equal(c.signal_url[POLYTEL__SIG_LOGS], "http://localhost:4318/v1/logs");
    free(w);
    polytel__cfg_free(&c);
  }

  /* credentials in the URL: refused, and never echoed */
  const char *creds[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:s3cret@host:4318", NULL};
  char *w = resolve(creds, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_ENDPOINT (credentials in the URL are not "
      "supported, use OTEL_EXPORTER_OTLP_HEADERS; value not shown); using http://localhost:4318\n");
  free(w);
  polytel__cfg_free(&c);

  /* per-signal endpoints are used exactly as given; a bad one falls back to base + path */
  const char *sig[] = {"OTEL_EXPORTER_OTLP_ENDPOINT",
                       "http://base:1",
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                       "http://t:2/custom?x=1",
                       "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                       "nope",
                       "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                       "https://m/",
                       NULL};
  w = resolve(sig, NULL, &c);
  assert_string_equal(w, "WARN polytel: invalid OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=\"nope\" " URL_EXPECTED
                         "; using http://base:1/v1/logs\n");
  assert_string_equal(c.endpoint, "http://base:1");
  assert_string_equal(c.signal_url[POLYTEL__SIG_TRACES], "http://t:2/custom?x=1");
  assert_string_equal(c.signal_url[POLYTEL__SIG_LOGS], "http://base:1/v1/logs");
  assert_string_equal(c.signal_url[POLYTEL__SIG_METRICS], "https://m/");
  free(w);
  polytel__cfg_free(&c);

  const char *sig2[] = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://t:4317",
                        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:99999/v1/metrics", NULL};
  w = resolve(sig2, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=\"grpc://t:4317\" " URL_EXPECTED
      "; using http://localhost:4318/v1/traces\n"
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=\"http://m:99999/v1/metrics\" " URL_EXPECTED
      "; using http://localhost:4318/v1/metrics\n");
  assert_string_equal(c.signal_url[POLYTEL__SIG_TRACES], "http://localhost:4318/v1/traces");
  assert_string_equal(c.signal_url[POLYTEL__SIG_METRICS], "http://localhost:4318/v1/metrics");
  free(w);
  polytel__cfg_free(&c);
}

static void test_headers(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *good[] = {"OTEL_EXPORTER_OTLP_HEADERS",
                        "api-key=secret1, x-b = a%20b%3Dc ,,empty=,Authorization=Basic%20eA==", NULL};
  resolve_quiet(good, NULL, &c);
  assert_int_equal(c.n_headers, 4);
  assert_string_equal(c.headers[0].key, "api-key");
  assert_string_equal(c.headers[0].value, "secret1");
  assert_string_equal(c.headers[1].key, "x-b");
  assert_string_equal(c.headers[1].value, "a b=c");
  assert_string_equal(c.headers[2].key, "empty");
  assert_string_equal(c.headers[2].value, "");
  assert_string_equal(c.headers[3].key, "Authorization");
  assert_string_equal(c.headers[3].value, "Basic eA==");
  polytel__cfg_free(&c);

  const char *bad[] = {"OTEL_EXPORTER_OTLP_HEADERS",
                       "Authorization: Bearer hunter1,=hunter2,bad key=hunter3,x=%0D%0AEvil: hunter4,"
                       "k=%zzhunter5,ok=hunter6",
                       NULL};
  char *w = resolve(bad, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_HEADERS entry #1 (expected key=value; value not shown); "
      "skipped\n"
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_HEADERS entry #2 (empty key; value not shown); skipped\n"
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_HEADERS entry #3 (the key is not a valid HTTP header name; "
      "value not "
      "shown); skipped\n"
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_HEADERS entry #4 (x: the value contains control characters; "
      "value "
      "not shown); skipped\n"
      "WARN polytel: OTEL_EXPORTER_OTLP_HEADERS entry #5 (k) has an invalid percent-escape; kept as "
      "written\n");
  assert_null(strstr(w, "hunter"));
  assert_int_equal(c.n_headers, 2);
  assert_string_equal(c.headers[0].key, "k");
  assert_string_equal(c.headers[0].value, "%zzhunter5");
  assert_string_equal(c.headers[1].value, "hunter6");
  free(w);
  polytel__cfg_free(&c);

  /* over 64 KiB: no headers at all (a cut list could send half a credential) */
  size_t n = 70000;
  char *huge = malloc(n + 1);
  memset(huge, 'a', n);
  memcpy(huge, "k=", 2);
  huge[n] = '\0';
  const char *big[] = {"OTEL_EXPORTER_OTLP_HEADERS", huge, NULL};
  w = resolve(big, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: OTEL_EXPORTER_OTLP_HEADERS is 70000 bytes, over the 65536-byte limit; no "
      "headers are sent\n");
  assert_int_equal(c.n_headers, 0);
  free(w);
  free(huge);
  polytel__cfg_free(&c);
}

/* Framing and connection headers are HTTP's and libcurl's: refused by name, case-insensitively, one warning
 * each, the value never shown (regression: Content-Length=1 made the collector read 1-byte bodies). */
static void test_forbidden_headers(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *env[] = {
      "OTEL_EXPORTER_OTLP_HEADERS",
      "Content-Length=1hunter,host=evil.example,Transfer-Encoding=chunked,CONNECTION=close,"
      "content-encoding=br,Content-Type=text/plain,eXpect=100-continue,x-ok=fine,te=trailers,"
      "Upgrade=h2c,Keep-Alive=1,Proxy-Connection=x,Trailer=y,x-content-length=kept",
      "OTEL_EXPORTER_OTLP_LOGS_HEADERS", "Host=hunter2,a=b", NULL};
  char *w = resolve(env, NULL, &c);
  static const char *const names[] = {"Content-Length",
                                      "host",
                                      "Transfer-Encoding",
                                      "CONNECTION",
                                      "content-encoding",
                                      "Content-Type",
                                      "eXpect",
                                      NULL,
                                      "te",
                                      "Upgrade",
                                      "Keep-Alive",
                                      "Proxy-Connection",
                                      "Trailer"};
  char want[4096] = "";
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    if (!names[i]) continue;
    char line[256];
    snprintf(line, sizeof line,
             "WARN polytel: invalid OTEL_EXPORTER_OTLP_HEADERS entry #%zu (%s: a header polytel and HTTP set "
             "themselves; value not shown); skipped\n",
             i + 1, names[i]);
    strcat(want, line);
  }
  strcat(
      want,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_LOGS_HEADERS entry #1 (Host: a header polytel and HTTP set "
      "themselves; value not shown); skipped\n");
  if (strcmp(w, want) != 0) print_error("got:\n%s\nwant:\n%s", w, want);
  assert_string_equal(w, want);
  assert_null(strstr(w, "hunter"));
  assert_null(strstr(w, "evil"));
  assert_int_equal(c.n_headers, 2);
  assert_string_equal(c.headers[0].key, "x-ok");
  assert_string_equal(c.headers[1].key, "x-content-length");
  assert_true(c.has_signal_headers[POLYTEL__SIG_LOGS]);
  assert_int_equal(c.n_signal_headers[POLYTEL__SIG_LOGS], 1);
  assert_string_equal(c.signal_headers[POLYTEL__SIG_LOGS][0].key, "a");
  free(w);
  polytel__cfg_free(&c);
  assert_true(polytel__header_forbidden("HOST", 4));
  assert_false(polytel__header_forbidden("hostname", 8));
  assert_false(polytel__header_forbidden("authorization", 13));
}

/* OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_HEADERS replace the general list for their signal. */
static void test_signal_headers(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *env[] = {"OTEL_EXPORTER_OTLP_HEADERS",
                       "authorization=general",
                       "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                       "authorization=traces,x-t=1",
                       "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                       "bad entry",
                       NULL};
  char *w = resolve(env, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_METRICS_HEADERS entry #1 (expected key=value; "
      "value not shown); skipped\n");
  free(w);
  assert_int_equal(c.n_headers, 1);
  assert_string_equal(c.headers[0].value, "general");
  assert_true(c.has_signal_headers[POLYTEL__SIG_TRACES]);
  assert_int_equal(c.n_signal_headers[POLYTEL__SIG_TRACES], 2);
  assert_string_equal(c.signal_headers[POLYTEL__SIG_TRACES][0].value, "traces");
  assert_false(c.has_signal_headers[POLYTEL__SIG_LOGS]); /* logs use the general list */
  /* a signal variable that is set replaces the general list even when nothing in it was usable: a credential
   * meant for one endpoint is never sent to another */
  assert_true(c.has_signal_headers[POLYTEL__SIG_METRICS]);
  assert_int_equal(c.n_signal_headers[POLYTEL__SIG_METRICS], 0);
  polytel__cfg_free(&c);
}

/* mTLS: the client certificate and key, general and per signal, explicit fields first. */
static void test_client_certificates(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *env[] = {"OTEL_EXPORTER_OTLP_CERTIFICATE",
                       "/dev/null",
                       "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                       "/dev/zero",
                       "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                       "/dev/full",
                       "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
                       "/dev/urandom",
                       "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                       "/dev/random",
                       "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
                       "/dev/tty0",
                       NULL};
  resolve_quiet(env, NULL, &c);
  assert_string_equal(c.certificate, "/dev/null");
  for (int s = 0; s < 3; s++) {
    assert_string_equal(c.tls_ca[s], s == POLYTEL__SIG_METRICS ? "/dev/random" : "/dev/null");
    assert_string_equal(c.tls_cert[s], s == POLYTEL__SIG_LOGS ? "/dev/urandom" : "/dev/zero");
    assert_string_equal(c.tls_key[s], s == POLYTEL__SIG_METRICS ? "/dev/tty0" : "/dev/full");
  }
  polytel__cfg_free(&c);

  /* explicit fields beat the environment */
  polytel_config_t u;
  polytel_config_init(&u);
  u.client_certificate = "/dev/null";
  u.client_key = "/dev/zero";
  resolve_quiet(env, &u, &c);
  assert_string_equal(c.tls_cert[POLYTEL__SIG_TRACES], "/dev/null");
  assert_string_equal(c.tls_key[POLYTEL__SIG_TRACES], "/dev/zero");
  assert_string_equal(c.tls_cert[POLYTEL__SIG_LOGS],
                      "/dev/urandom"); /* the signal's own variable still wins */
  polytel__cfg_free(&c);
  /* an older caller's struct (no client_* fields) leaves them unset */
  u.struct_size = (uint32_t)offsetof(polytel_config_t, client_certificate);
  const char *none[] = {NULL};
  resolve_quiet(none, &u, &c);
  assert_null(c.tls_cert[0]);
  assert_null(c.tls_key[0]);
  polytel__cfg_free(&c);

  /* unreadable files: one warning each naming the variable; the path is kept (the export fails, it never
   * connects without the certificate it was told to present) */
  const char *bad[] = {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/nonexistent/client.pem",
                       "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/nonexistent/client.key", NULL};
  char *w = resolve(bad, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: cannot read OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=\"/nonexistent/client.pem\" "
      "(No such file or directory); https exports will fail: no client certificate can be "
      "presented\n"
      "WARN polytel: cannot read OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY=\"/nonexistent/client.key\" "
      "(No such file or directory); https exports will fail: no client certificate can be "
      "presented\n");
  assert_string_equal(c.tls_cert[POLYTEL__SIG_LOGS], "/nonexistent/client.pem");
  assert_string_equal(c.tls_key[POLYTEL__SIG_TRACES], "/nonexistent/client.key");
  assert_null(c.tls_key[POLYTEL__SIG_LOGS]);
  free(w);
  polytel__cfg_free(&c);

  /* key material pasted into a variable: never echoed, never passed on */
  const char *pem[] = {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                       "/dev/null",
                       "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                       "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANhunter\n-----END PRIVATE KEY-----",
                       "OTEL_EXPORTER_OTLP_CERTIFICATE",
                       "-----BEGIN CERTIFICATE-----MIIB",
                       NULL};
  w = resolve(pem, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_CERTIFICATE (PEM data, expected the path of a PEM "
      "file; value not shown); https exports will fail certificate verification\n"
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_CLIENT_KEY (PEM data, expected the path of a PEM "
      "file; value not shown); no client certificate is presented\n");
  assert_null(strstr(w, "MII"));
  assert_null(c.tls_key[0]);
  assert_string_equal(c.tls_cert[0], "/dev/null");
  assert_non_null(c.tls_ca[0]); /* https fails closed */
  assert_int_not_equal(access(c.tls_ca[0], F_OK), 0);
  free(w);
  polytel__cfg_free(&c);

  /* a key is used by every signal that has a certificate; a key variable no signal can use is warned about
   * once (and not read: no second warning about the file) */
  const char *pair[] = {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/dev/null",
                        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "/dev/zero", NULL};
  resolve_quiet(pair, NULL, &c);
  assert_null(c.tls_key[POLYTEL__SIG_TRACES]);
  assert_null(c.tls_key[POLYTEL__SIG_METRICS]);
  assert_string_equal(c.tls_key[POLYTEL__SIG_LOGS], "/dev/null"); /* paired with the logs certificate */
  polytel__cfg_free(&c);
  const char *lone[] = {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/k",
                        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/nonexistent/k2", NULL};
  w = resolve(lone, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: OTEL_EXPORTER_OTLP_CLIENT_KEY is set without "
      "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (a client key needs its certificate); ignored\n"
      "WARN polytel: OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY is set without "
      "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE (a client key needs its certificate); ignored\n");
  for (int s = 0; s < 3; s++) assert_null(c.tls_key[s]);
  free(w);
  polytel__cfg_free(&c);
}

/* Credentials never printed: userinfo, raw or percent-encoded, is refused without an echo; a query is shown
 * as "?…" (regression: http://user%3ASECRET%40host:1 was accepted and printed at start-up and in warnings).
 */
static void test_url_credentials_never_echoed(void **state) {
  (void)state;
  polytel__cfg_t c;
  static const char *const creds[] = {"http://user%3Ahunter1%40127.0.0.1:1", "http://user%3ahunter1%40h",
                                      "https://hunter1@h:4318", "http://u:hunter1@h/v1?x=1"};
  for (size_t i = 0; i < sizeof creds / sizeof *creds; i++) {
    for (int var = 0; var < 2; var++) {
      const char *name = var ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
      const char *env[] = {name, creds[i], NULL};
      char *w = resolve(env, NULL, &c);
      char want[400];
      snprintf(want, sizeof want,
               "WARN polytel: invalid %s (credentials in the URL are not supported, use "
               "OTEL_EXPORTER_OTLP_HEADERS; value not shown); using http://localhost:4318%s\n",
               name, var ? "/v1/traces" : "");
      assert_string_equal(w, want);
      assert_null(strstr(c.endpoint, "hunter"));
      for (int s = 0; s < 3; s++) assert_null(strstr(c.signal_url[s], "hunter"));
      free(w);
      polytel__cfg_free(&c);
    }
  }
  /* any other percent-escape in the host: refused, not echoed either */
  const char *pct[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://ho%73t:1", NULL};
  char *w = resolve(pct, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_EXPORTER_OTLP_ENDPOINT (a percent-escape in the host is not "
      "supported; value not shown); using http://localhost:4318\n");
  free(w);
  polytel__cfg_free(&c);
  /* a query is used as given, but never echoed: a bad per-signal URL, a base URL (no query allowed), an
   * explicit field that loses to it */
  const char *q[] = {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                     "http://h:99999/v1/logs?api_key=hunter2",
                     "OTEL_EXPORTER_OTLP_ENDPOINT",
                     "http://h:1?api_key=hunter3",
                     "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                     "http://m:1/v1/metrics?api_key=hunter4",
                     NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  u.metrics_endpoint = "not a url";
  w = resolve(q, &u, &c);
  assert_string_equal(
      w, "WARN polytel: invalid OTEL_EXPORTER_OTLP_ENDPOINT=\"http://h:1?\xe2\x80\xa6\" " URL_EXPECTED
         "; using http://localhost:4318\n"
         "WARN polytel: invalid "
         "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=\"http://h:99999/v1/logs?\xe2\x80\xa6\" " URL_EXPECTED
         "; using http://localhost:4318/v1/logs\n"
         "WARN polytel: invalid polytel_config_t.metrics_endpoint=\"not a url\" " URL_EXPECTED
         "; using http://m:1/v1/metrics?\xe2\x80\xa6\n");
  assert_null(strstr(w, "hunter"));
  assert_string_equal(c.signal_url[POLYTEL__SIG_METRICS], "http://m:1/v1/metrics?api_key=hunter4");
  free(w);
  polytel__cfg_free(&c);
}

/* Resource values go out with every request: bounded, cut visibly (regression: a 1 MB OTEL_SERVICE_NAME was
 * accepted and sent whole). */
static void test_resource_limits(void **state) {
  (void)state;
  polytel__cfg_t c;
  size_t big = 1 << 20;
  char *name = malloc(big + 1);
  memset(name, 'n', big);
  name[253] = '\xc3', name[254] = '\xa9'; /* a character across the 255-byte limit: cut before it */
  name[255] = '\xc3', name[256] = '\xa9';
  name[big] = '\0';
  const char *env[] = {"OTEL_SERVICE_NAME", name, "OTEL_SERVICE_VERSION", name, NULL};
  char *w = resolve(env, NULL, &c);
  char want[600];
  snprintf(
      want, sizeof want,
      "WARN polytel: OTEL_SERVICE_NAME is 1048576 bytes, over the 255-byte limit; using its first 255 bytes "
      "(\"%.64s\xe2\x80\xa6\")\n"
      "WARN polytel: OTEL_SERVICE_VERSION is 1048576 bytes, over the 255-byte limit; using its first 255 "
      "bytes (\"%.64s\xe2\x80\xa6\")\n",
      name, name);
  assert_string_equal(w, want);
  assert_int_equal(strlen(c.service_name), 255);
  assert_int_equal(strlen(c.service_version), 255);
  free(w);
  polytel__cfg_free(&c);
  free(name);

  /* resource attributes: a key over 255 bytes is skipped, a value over 4 KiB is cut, 16 KiB in total */
  size_t n = 64 << 10;
  char *ra = malloc(n), *p = ra;
  p += sprintf(p, "k%0300d=v,big=", 0);
  memset(p, 'v', 5000), p += 5000;
  for (int i = 0; i < 10; i++) {
    p += sprintf(p, ",k%d=", i);
    memset(p, 'x', 3000), p += 3000;
  }
  *p = '\0';
  const char *renv[] = {"OTEL_RESOURCE_ATTRIBUTES", ra, NULL};
  w = resolve(renv, NULL, &c);
  assert_string_equal(
      w,
      "WARN polytel: invalid OTEL_RESOURCE_ATTRIBUTES entry #1 (the key is 301 bytes, over the "
      "255-byte limit); skipped\n"
      "WARN polytel: OTEL_RESOURCE_ATTRIBUTES entry \"big\": the value is 5000 bytes, over the "
      "4096-byte limit; cut to 4096 bytes\n"
      "WARN polytel: OTEL_RESOURCE_ATTRIBUTES passes the 16384-byte limit on keys and values at "
      "entry #7; it and later entries are skipped\n");
  assert_int_equal(c.n_resource_attrs, 5); /* big (4099) + k0..k3 (4 x 3002) = 16107; k4 would pass 16384 */
  assert_string_equal(c.resource_attrs[0].key, "big");
  assert_int_equal(strlen(c.resource_attrs[0].value), 4096);
  free(w);
  polytel__cfg_free(&c);
  free(ra);
}

static void test_certificate(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *good[] = {"OTEL_EXPORTER_OTLP_CERTIFICATE", "/dev/null", NULL};
  resolve_quiet(good, NULL, &c);
  assert_string_equal(c.certificate, "/dev/null");
  polytel__cfg_free(&c);
  const char *bad[] = {"OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", NULL};
  char *w = resolve(bad, NULL, &c);
  assert_string_equal(w,
                      "WARN polytel: cannot read OTEL_EXPORTER_OTLP_CERTIFICATE=\"/nonexistent/ca.pem\" (No "
                      "such file or directory); https exports will fail certificate verification\n");
  assert_string_equal(c.certificate, "/nonexistent/ca.pem"); /* kept: fail closed, never fall back */
  free(w);
  polytel__cfg_free(&c);
}

static void test_export_dir_and_colour(void **state) {
  (void)state;
  polytel__cfg_t c;
  const char *e1[] = {"POLYTEL_EXPORTER", "file", "POLYTEL_EXPORT_DIR", " /tmp/out ", NULL};
  resolve_quiet(e1, NULL, &c);
  assert_int_equal(c.exporter, POLYTEL_EXPORTER_FILE);
  assert_string_equal(c.export_dir, "/tmp/out");
  polytel__cfg_free(&c);

  /* empty directory = unset: the default, also behind an empty explicit one */
  const char *e2[] = {"POLYTEL_EXPORTER", "file", "POLYTEL_EXPORT_DIR", "  ", NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  u.export_dir = "";
  resolve_quiet(e2, &u, &c);
  assert_string_equal(c.export_dir, "./polytel-out");
  polytel__cfg_free(&c);

  const char *force[] = {"FORCE_COLOR", "1", NULL};
  resolve_quiet(force, NULL, &c);
  assert_int_equal(c.color, 1);
  polytel__cfg_free(&c);
  const char *both[] = {"FORCE_COLOR", "1", "NO_COLOR", "1", NULL};
  resolve_quiet(both, NULL, &c);
  assert_int_equal(c.color, 0);
  polytel__cfg_free(&c);
  const char *force0[] = {"FORCE_COLOR", "0", NULL};
  resolve_quiet(force0, NULL, &c);
  assert_int_equal(c.color, isatty(STDERR_FILENO) ? 1 : 0);
  polytel__cfg_free(&c);
  const char *no_empty[] = {"NO_COLOR", "", "FORCE_COLOR", "yes", NULL};
  resolve_quiet(no_empty, NULL, &c);
  assert_int_equal(c.color, 1);
  polytel__cfg_free(&c);
  const char *off[] = {"FORCE_COLOR", "1", "POLYTEL_CONSOLE", "off", NULL};
  resolve_quiet(off, NULL, &c);
  assert_int_equal(c.color, 0);
  polytel__cfg_free(&c);
}

/* Every explicit field beats the environment, and a bad environment value it overrides is not warned about.
 */
static void test_explicit_beats_env(void **state) {
  (void)state;
  const char *env[] = {"TELEMETRY_ENABLED",
                       "maybe",
                       "OTEL_SDK_DISABLED",
                       "maybe",
                       "OTEL_SERVICE_NAME",
                       "envsvc",
                       "OTEL_SERVICE_VERSION",
                       "envver",
                       "OTEL_RESOURCE_ATTRIBUTES",
                       "env=1,noeq",
                       "OTEL_EXPORTER_OTLP_ENDPOINT",
                       "bad",
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                       "bad",
                       "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                       "bad",
                       "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                       "bad",
                       "OTEL_EXPORTER_OTLP_HEADERS",
                       "noeq",
                       "OTEL_EXPORTER_OTLP_CERTIFICATE",
                       "/nonexistent",
                       "OTEL_EXPORTER_OTLP_PROTOCOL",
                       "grpc",
                       "OTEL_EXPORTER_OTLP_COMPRESSION",
                       "zstd",
                       "OTEL_EXPORTER_OTLP_TIMEOUT",
                       "x",
                       "POLYTEL_CONSOLE",
                       "x",
                       "POLYTEL_CONSOLE_FORMAT",
                       "x",
                       "POLYTEL_LOG_LEVEL",
                       "x",
                       "POLYTEL_EXPORTER",
                       "x",
                       "POLYTEL_EXPORT_DIR",
                       "/env/dir",
                       "POLYTEL_MAX_MEMORY",
                       "x",
                       NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  u.telemetry_enabled = 1;
  u.sdk_disabled = 1;
  u.service_name = "svc";
  u.service_version = "2.0";
  u.resource_attributes = "team=core";
  u.endpoint = "http://explicit:9";
  u.traces_endpoint = "http://t:1/x";
  u.logs_endpoint = "http://l:1/x";
  u.metrics_endpoint = "http://m:1/x";
  u.headers = "h=v";
  u.certificate = "/dev/null";
  u.protocol = POLYTEL_PROTOCOL_JSON;
  u.compression_gzip = 1;
  u.timeout_ms = 1234;
  u.console = POLYTEL_CONSOLE_STDOUT;
  u.console_format = POLYTEL_CONSOLE_FORMAT_JSON;
  u.console_level = POLYTEL_LEVEL_DEBUG;
  u.exporter = POLYTEL_EXPORTER_FILE;
  u.export_dir = "/explicit/dir";
  u.max_memory_bytes = 1 << 20;
  polytel__cfg_t c;
  resolve_quiet(env, &u, &c);
  assert_int_equal(c.telemetry_enabled, 1);
  assert_int_equal(c.sdk_disabled, 1);
  assert_string_equal(c.service_name, "svc");
  assert_string_equal(c.service_version, "2.0");
  assert_int_equal(c.n_resource_attrs, 1);
  assert_string_equal(c.resource_attrs[0].key, "team");
  assert_string_equal(c.endpoint, "http://explicit:9");
  assert_string_equal(c.signal_url[0], "http://t:1/x");
  assert_string_equal(c.signal_url[1], "http://l:1/x");
  assert_string_equal(c.signal_url[2], "http://m:1/x");
  assert_int_equal(c.n_headers, 1);
  assert_string_equal(c.certificate, "/dev/null");
  assert_int_equal(c.protocol, POLYTEL_PROTOCOL_JSON);
  assert_int_equal(c.gzip, 1);
  assert_int_equal(c.timeout_ms, 1234);
  assert_int_equal(c.console, POLYTEL_CONSOLE_STDOUT);
  assert_int_equal(c.console_format, POLYTEL_CONSOLE_FORMAT_JSON);
  assert_int_equal(c.console_level, POLYTEL_LEVEL_DEBUG);
  assert_int_equal(c.exporter, POLYTEL_EXPORTER_FILE);
  assert_string_equal(c.export_dir, "/explicit/dir");
  assert_int_equal(c.max_memory_bytes, 1 << 20);
  polytel__cfg_free(&c);

  /* explicit empty strings count as unset: the environment applies */
  const char *env2[] = {"OTEL_RESOURCE_ATTRIBUTES",
                        "a=1",
                        "OTEL_EXPORTER_OTLP_HEADERS",
                        "h=1",
                        "OTEL_SERVICE_NAME",
                        "envsvc",
                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                        "http://e:1",
                        NULL};
  polytel_config_init(&u);
  u.resource_attributes = "";
  u.headers = " ";
  u.service_name = "";
  u.endpoint = "";
  resolve_quiet(env2, &u, &c);
  assert_int_equal(c.n_resource_attrs, 1);
  assert_int_equal(c.n_headers, 1);
  assert_string_equal(c.service_name, "envsvc");
  assert_string_equal(c.endpoint, "http://e:1");
  polytel__cfg_free(&c);

  /* explicit 0 (off) also beats an env "true" */
  const char *on[] = {"TELEMETRY_ENABLED", "true", "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", NULL};
  polytel_config_init(&u);
  u.telemetry_enabled = 0;
  u.compression_gzip = 0;
  resolve_quiet(on, &u, &c);
  assert_int_equal(c.telemetry_enabled, 0);
  assert_int_equal(c.gzip, 0);
  polytel__cfg_free(&c);

  /* explicit zstd beats an env "gzip"; any other non-zero value still means gzip */
  u.compression_gzip = POLYTEL_COMPRESSION_ZSTD;
  resolve_quiet(on, &u, &c);
  assert_int_equal(c.gzip, POLYTEL_COMPRESSION_ZSTD);
  polytel__cfg_free(&c);
  u.compression_gzip = 9;
  resolve_quiet(on, &u, &c);
  assert_int_equal(c.gzip, POLYTEL_COMPRESSION_GZIP);
  polytel__cfg_free(&c);
}

static void test_use_env_zero(void **state) {
  (void)state;
  const char *env[] = {"TELEMETRY_ENABLED",
                       "true",
                       "OTEL_SERVICE_NAME",
                       "envsvc",
                       "POLYTEL_LOG_LEVEL",
                       "bogus",
                       "FORCE_COLOR",
                       "1",
                       NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  u.use_env = 0;
  polytel__cfg_t c;
  resolve_quiet(env, &u, &c);
  assert_int_equal(c.telemetry_enabled, 0);
  assert_string_equal(c.service_name, "test_config");
  assert_int_equal(c.console_level, POLYTEL_LEVEL_INFO);
  assert_int_equal(c.color, isatty(STDERR_FILENO) ? 1 : 0);
  polytel__cfg_free(&c);

  /* cfg NULL: the environment applies */
  char *w = resolve(env, NULL, &c);
  assert_string_equal(w,
                      "WARN polytel: invalid POLYTEL_LOG_LEVEL=\"bogus\" (expected trace, debug, info, warn, "
                      "error, fatal or off); using info\n");
  assert_int_equal(c.telemetry_enabled, 1);
  assert_string_equal(c.service_name, "envsvc");
  assert_int_equal(c.color, 1);
  free(w);
  polytel__cfg_free(&c);
}

static void test_explicit_invalid(void **state) {
  (void)state;
  const char *env[] = {"OTEL_EXPORTER_OTLP_TIMEOUT", "500", NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  u.timeout_ms = 0;
  u.protocol = (polytel_protocol_t)7;
  u.console_level = 10;
  u.endpoint = "collector:4318";
  u.traces_endpoint = "http://ok:1/t";
  u.max_memory_bytes = 1000;
  u.console = (polytel_console_t)9;
  polytel__cfg_t c;
  char *w = resolve(env, &u, &c);
  assert_string_equal(
      w, "WARN polytel: invalid polytel_config_t.endpoint=\"collector:4318\" " URL_EXPECTED
         "; using http://localhost:4318\n"
         "WARN polytel: invalid polytel_config_t.protocol=7 (expected http/protobuf or http/json); using "
         "http/protobuf\n"
         "WARN polytel: invalid polytel_config_t.timeout_ms=0 (expected -1 (unset) or 1 to 4294967295); "
         "using 500\n"
         "WARN polytel: invalid polytel_config_t.console=9 (expected stderr, stdout or off); using stderr\n"
         "WARN polytel: invalid polytel_config_t.console_level=10 (expected trace, debug, info, warn, error, "
         "fatal or "
         "off); using info\n"
         "WARN polytel: polytel_config_t.max_memory_bytes=1000 is below the 262144-byte minimum; using "
         "262144\n");
  assert_string_equal(c.endpoint, "http://localhost:4318");
  assert_string_equal(c.signal_url[0], "http://ok:1/t");
  assert_int_equal(c.timeout_ms, 500);
  assert_int_equal(c.protocol, POLYTEL_PROTOCOL_PROTOBUF);
  assert_int_equal(c.console_level, POLYTEL_LEVEL_INFO);
  assert_int_equal(c.max_memory_bytes, 262144);
  free(w);
  polytel__cfg_free(&c);

  /* a struct never passed through polytel_config_init */
  polytel_config_t z;
  memset(&z, 0, sizeof z);
  const char *e2[] = {"TELEMETRY_ENABLED", "1", NULL};
  w = resolve(e2, &z, &c);
  assert_string_equal(
      w,
      "WARN polytel: polytel_config_t was not filled by polytel_config_init() (struct_size=0); "
      "using the environment and defaults\n");
  assert_int_equal(c.telemetry_enabled, 1);
  free(w);
  polytel__cfg_free(&c);

  /* an older, smaller struct: fields past struct_size are unset */
  polytel_config_init(&u);
  u.struct_size = (uint32_t)offsetof(polytel_config_t, service_version);
  u.service_version = (const char *)(uintptr_t)1; /* would crash if read */
  u.telemetry_enabled = 1;
  resolve_quiet(NULL, &u, &c);
  assert_int_equal(c.telemetry_enabled, 1);
  assert_null(c.service_version);
  polytel__cfg_free(&c);
}

static void test_quiet_resolve(void **state) {
  (void)state;
  const char *env[] = {
      "TELEMETRY_ENABLED", "maybe", "OTEL_EXPORTER_OTLP_TIMEOUT", "x", "OTEL_SERVICE_NAME", "q", NULL};
  polytel__cfg_t c;
  fake_env = env;
  cap_begin();
  assert_int_equal(polytel__cfg_resolve_quiet(NULL, fake_get, &c), 0);
  char *w = cap_end();
  assert_string_equal(w, "");
  assert_int_equal(c.telemetry_enabled, 0);
  assert_int_equal(c.timeout_ms, 10000);
  assert_string_equal(c.service_name, "q");
  free(w);
  polytel__cfg_free(&c);
  /* and the next ordinary resolve warns again */
  w = resolve(env, NULL, &c);
  assert_non_null(strstr(w, "invalid TELEMETRY_ENABLED=\"maybe\""));
  free(w);
  polytel__cfg_free(&c);
}

static void test_real_getenv(void **state) {
  (void)state;
  setenv("TELEMETRY_ENABLED", "yes", 1);
  setenv("OTEL_SERVICE_NAME", "from-getenv", 1);
  polytel__cfg_t c;
  assert_int_equal(polytel__cfg_resolve(NULL, NULL, &c), 0);
  assert_int_equal(c.telemetry_enabled, 1);
  assert_string_equal(c.service_name, "from-getenv");
  polytel__cfg_free(&c);
  unsetenv("TELEMETRY_ENABLED");
  unsetenv("OTEL_SERVICE_NAME");
  polytel_config_t u;
  polytel_config_init(&u);
  assert_int_equal(u.struct_size, sizeof u);
  assert_int_equal(u.use_env, 1);
  assert_int_equal(u.telemetry_enabled, -1);
  assert_int_equal(u.timeout_ms, -1);
  assert_null(u.endpoint);
  assert_int_equal(polytel__cfg_resolve(NULL, NULL, NULL), POLYTEL_EINVAL);
}

static const char *item(const polytel_resolved_t *r, const char *key);

/* The span model: sampler, propagators and limits, each bad value one warning with the value kept. */
static void test_trace_settings(void **state) {
  (void)state;
  polytel__cfg_t c;
  resolve_quiet((const char *const[]){NULL}, NULL, &c);
  assert_int_equal(c.sampler.kind, POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON);
  assert_int_equal(c.propagators, POLYTEL_PROPAGATOR_TRACECONTEXT | POLYTEL_PROPAGATOR_BAGGAGE);
  static const uint32_t defaults[POLYTEL__N_LIMITS] = {128, POLYTEL__NO_LIMIT, 128, 128, 128, 128,
                                                       128, POLYTEL__NO_LIMIT};
  assert_memory_equal(c.limits, defaults, sizeof defaults);
  polytel__cfg_free(&c);

  /* The general variables fill every model that has no variable of its own set. */
  resolve_quiet((const char *const[]){"OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG",
                                      "0.25", "OTEL_PROPAGATORS", "baggage", "OTEL_ATTRIBUTE_COUNT_LIMIT",
                                      "5", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "7",
                                      "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "0", "OTEL_SPAN_EVENT_COUNT_LIMIT",
                                      "3", "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "9", NULL},
                NULL, &c);
  assert_int_equal(c.sampler.kind, POLYTEL__SAMPLER_TRACEIDRATIO);
  assert_true(c.sampler.ratio == 0.25);
  assert_int_equal(c.propagators, POLYTEL_PROPAGATOR_BAGGAGE);
  static const uint32_t general[POLYTEL__N_LIMITS] = {5, 7, 3, 128, 5, 0, 5, 9};
  assert_memory_equal(c.limits, general, sizeof general);
  /* The resolved view names them by the option table's keys. */
  polytel_resolved_t *r = polytel__cfg_describe(&c, NULL, 0);
  assert_non_null(r);
  assert_string_equal(item(r, "traces_sampler"), "traceidratio");
  assert_string_equal(item(r, "traces_sampler_arg"), "0.25");
  assert_string_equal(item(r, "propagators"), "baggage");
  assert_string_equal(item(r, "attribute_count_limit"), "5");
  assert_string_equal(item(r, "attribute_value_length_limit"), "7");
  assert_string_equal(item(r, "span_event_count_limit"), "3");
  assert_string_equal(item(r, "span_link_count_limit"), "128");
  assert_string_equal(item(r, "link_attribute_count_limit"), "0");
  assert_string_equal(item(r, "logrecord_attribute_value_length_limit"), "9");
  polytel_config_resolved_free(r);
  polytel__cfg_free(&c);

  char *w = resolve(
      (const char *const[]){"OTEL_TRACES_SAMPLER", "sometimes", "OTEL_PROPAGATORS", "b3,tracecontext",
                            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "-1", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                            "4294967295", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "12abc", NULL},
      NULL, &c);
  assert_int_equal(c.sampler.kind, POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON);
  assert_int_equal(c.propagators, POLYTEL_PROPAGATOR_TRACECONTEXT);
  assert_int_equal(c.limits[POLYTEL__LIM_SPAN_ATTRS], 128);
  assert_int_equal(c.limits[POLYTEL__LIM_SPAN_ATTR_LEN], POLYTEL__NO_LIMIT);
  assert_int_equal(c.limits[POLYTEL__LIM_LINK_ATTRS], 128);
  /* One line per bad variable, each naming it and the value kept. */
  assert_non_null(strstr(w, "OTEL_TRACES_SAMPLER"));
  assert_non_null(strstr(w, "using parentbased_always_on"));
  assert_non_null(strstr(w, "b3"));
  assert_non_null(
      strstr(w,
             "WARN polytel: invalid OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=\"-1\" (expected an integer from 0 to "
             "4294967294); using 128\n"));
  assert_non_null(strstr(w,
                         "WARN polytel: invalid OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT=\"4294967295\" "
                         "(expected an integer from 0 to 4294967294); using no limit\n"));
  assert_non_null(strstr(w, "WARN polytel: invalid OTEL_LINK_ATTRIBUTE_COUNT_LIMIT=\"12abc\""));
  size_t lines = 0;
  for (const char *q = w; *q; q++) lines += *q == '\n';
  assert_int_equal(lines, 5);
  free(w);
  polytel__cfg_free(&c);
}

/* ------------------------------------------------------------ polytel_config_set, the resolved view */

static const char *item(const polytel_resolved_t *r, const char *key) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->items[i].key, key) == 0) return r->items[i].value;
  fail_msg("no item %s", key);
  return NULL;
}

static void test_setter_typed_fields(void **state) {
  (void)state;
  polytel_config_t u;
  polytel_config_init(&u);
  assert_int_equal(polytel_config_set(&u, "telemetry_enabled", " Yes "), 0);
  assert_int_equal(u.telemetry_enabled, 1);
  assert_int_equal(polytel_config_set(&u, "sdk_disabled", "false"), 0);
  assert_int_equal(u.sdk_disabled, 0);
  assert_int_equal(polytel_config_set(&u, "timeout_ms", "2500"), 0);
  assert_int_equal(u.timeout_ms, 2500);
  assert_int_equal(polytel_config_set(&u, "protocol", "HTTP/JSON"), 0);
  assert_int_equal(u.protocol, POLYTEL_PROTOCOL_JSON);
  assert_int_equal(polytel_config_set(&u, "protocol", "protobuf"), 0); /* a bindings' spelling */
  assert_int_equal(u.protocol, POLYTEL_PROTOCOL_PROTOBUF);
  assert_int_equal(polytel_config_set(&u, "compression", "gzip"), 0);
  assert_int_equal(u.compression_gzip, 1);
  assert_int_equal(polytel_config_set(&u, "compression", "false"), 0);
  assert_int_equal(u.compression_gzip, 0);
  assert_int_equal(polytel_config_set(&u, "console_level", "warning"), 0);
  assert_int_equal(u.console_level, POLYTEL_LEVEL_WARN);
  assert_int_equal(polytel_config_set(&u, "console_level", "17"), 0); /* a level's number */
  assert_int_equal(u.console_level, POLYTEL_LEVEL_ERROR);
  assert_int_equal(polytel_config_set(&u, "exporter", "file"), 0);
  assert_int_equal(u.exporter, POLYTEL_EXPORTER_FILE);
  assert_int_equal(polytel_config_set(&u, "max_memory_bytes", "1M"), 0);
  assert_int_equal(u.max_memory_bytes, 1 << 20);
  assert_int_equal(polytel_config_set(&u, "endpoint", "http://c:1"), 0);
  assert_string_equal(u.endpoint, "http://c:1");
  assert_int_equal(polytel_config_set(&u, "use_env", "0"), 0);
  assert_int_equal(u.use_env, 0);
  assert_string_equal(polytel_config_error(), "");
  /* NULL unsets */
  assert_int_equal(polytel_config_set(&u, "timeout_ms", NULL), 0);
  assert_int_equal(u.timeout_ms, -1);
  assert_int_equal(polytel_config_set(&u, "endpoint", NULL), 0);
  assert_null(u.endpoint);
}

static void test_setter_errors(void **state) {
  (void)state;
  polytel_config_t u;
  polytel_config_init(&u);
  static const struct {
    const char *key, *value, *error;
  } bad[] = {
      {"timeout_ms", "0", "invalid timeout_ms=\"0\" (expected an integer from 1 to 4294967295)"},
      {"timeout_ms", "10s", "invalid timeout_ms=\"10s\" (expected an integer from 1 to 4294967295)"},
      {"telemetry_enabled", "maybe",
       "invalid telemetry_enabled=\"maybe\" (expected true/false/1/0/yes/no/on/off)"},
      {"protocol", "grpc",
       "invalid protocol=\"grpc\" (grpc is not supported, expected http/protobuf or http/json)"},
      {"exporter", "kafka", "invalid exporter=\"kafka\" (expected otlp, file or none)"},
      {"console_level", "verbose",
       "invalid console_level=\"verbose\" (expected trace, debug, info, warn, error, fatal or off)"},
      {"max_memory_bytes", "0",
       "invalid max_memory_bytes=\"0\" (expected a byte count with an optional K, M or G suffix)"},
      {"bsp_max_queue_size", "-1",
       "invalid bsp_max_queue_size=\"-1\" (expected an integer from 1 to 4294967295)"},
      {"no_such_option", "x", "no_such_option: unknown option"},
      {"traces_headers", "a=b",
       "traces_headers: can only be set by the environment variable "
       "OTEL_EXPORTER_OTLP_TRACES_HEADERS"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(polytel_config_set(&u, bad[i].key, bad[i].value), POLYTEL_EINVAL);
    assert_string_equal(polytel_config_error(), bad[i].error);
  }
  /* nothing was changed by a refused value */
  assert_int_equal(u.timeout_ms, -1);
  assert_int_equal(u.telemetry_enabled, -1);
  assert_int_equal(u.polytel__n_extra, 0);
  /* a long or hostile value is echoed by its first 64 bytes, escaped by the console only when printed */
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(polytel_config_set(&u, "timeout_ms", big), POLYTEL_EINVAL);
  assert_non_null(strstr(polytel_config_error(), "xxxx\xe2\x80\xa6\" (expected"));
  assert_true(strlen(polytel_config_error()) < 200);
  assert_int_equal(polytel_config_set(NULL, "timeout_ms", "1"), POLYTEL_EINVAL);
  assert_int_equal(polytel_config_set(&u, NULL, "1"), POLYTEL_EINVAL);
  polytel_config_t old = {0};
  assert_int_equal(polytel_config_set(&old, "timeout_ms", "1"), POLYTEL_EINVAL);
  assert_non_null(strstr(polytel_config_error(), "polytel_config_init"));
}

/* Options without a field: the text is kept and resolved like the variable, ahead of it. */
static void test_setter_extras(void **state) {
  (void)state;
  polytel_config_t u;
  polytel_config_init(&u);
  assert_int_equal(polytel_config_set(&u, "bsp_schedule_delay_ms", "250"), 0);
  assert_int_equal(polytel_config_set(&u, "exit_timeout_ms", "0"), 0);
  assert_int_equal(polytel_config_set(&u, "bsp_schedule_delay_ms", "300"), 0); /* replaces */
  assert_int_equal(u.polytel__n_extra, 2);
  const char *env[] = {"OTEL_BSP_SCHEDULE_DELAY", "999", "OTEL_BLRP_SCHEDULE_DELAY", "77", NULL};
  polytel__cfg_t c;
  resolve_quiet(env, &u, &c);
  assert_int_equal(c.bsp.schedule_delay_ms, 300);
  assert_int_equal(c.exit_timeout_ms, 0);
  assert_int_equal(c.blrp.schedule_delay_ms, 77);
  polytel__cfg_free(&c);
  /* a copy owns its extras */
  polytel_config_t kept;
  polytel_config_init(&kept);
  polytel__cfg_extras_merge(&kept, &u);
  assert_int_equal(kept.polytel__n_extra, 2);
  assert_ptr_not_equal(kept.polytel__extra[0].value, u.polytel__extra[0].value);
  assert_int_equal(polytel_config_set(&u, "bsp_schedule_delay_ms", NULL), 0);
  assert_int_equal(u.polytel__n_extra, 1);
  polytel__cfg_extras_free(&kept);
  assert_int_equal(kept.polytel__n_extra, 0);
  /* more than the room is refused, by name */
  polytel_config_t full;
  polytel_config_init(&full);
  full.polytel__n_extra = POLYTEL_CONFIG_EXTRA_MAX;
  for (uint32_t i = 0; i < POLYTEL_CONFIG_EXTRA_MAX; i++) full.polytel__extra[i].option = 0xffff;
  assert_int_equal(polytel_config_set(&full, "exit_timeout_ms", "1"), POLYTEL_EINVAL);
  assert_non_null(strstr(polytel_config_error(), "exit_timeout_ms: more than"));
}

static void test_resolved_view(void **state) {
  (void)state;
  const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT",
                       "http://collector:4318/",
                       "OTEL_EXPORTER_OTLP_HEADERS",
                       "authorization=Bearer%20secret,x-tenant=t1",
                       "OTEL_RESOURCE_ATTRIBUTES",
                       "deployment.environment=prod,odd=a%2Cb",
                       "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                       "5000",
                       "OTEL_LOGS_EXPORTER",
                       "none",
                       "POLYTEL_EXIT_TIMEOUT_MS",
                       "1500",
                       NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  assert_int_equal(polytel_config_set(&u, "service_name", "svc"), 0);
  assert_int_equal(polytel_config_set(&u, "protocol", "json"), 0);
  polytel__cfg_t c;
  char *w = resolve(env, &u, &c);
  free(w);
  const char *lead[] = {"phase", "full", "not_exporting", NULL};
  polytel_resolved_t *r = polytel__cfg_describe(&c, lead, 2);
  assert_non_null(r);
  assert_int_equal(r->n, 2 + POLYTEL__OPT_COUNT);
  assert_string_equal(r->items[0].key, "phase");
  assert_string_equal(item(r, "phase"), "full");
  assert_null(item(r, "not_exporting"));
  assert_string_equal(item(r, "service_name"), "svc");
  assert_string_equal(item(r, "endpoint"), "http://collector:4318"); /* corrected: trailing / trimmed */
  assert_string_equal(item(r, "logs_endpoint"), "http://collector:4318/v1/logs");
  assert_string_equal(item(r, "protocol"), "http/json");
  assert_string_equal(item(r, "compression"), "none");
  assert_string_equal(item(r, "timeout_ms"), "10000");
  assert_string_equal(item(r, "bsp_max_export_batch_size"), "2048"); /* clamped to the queue */
  assert_string_equal(item(r, "logs_exporter"), "none");
  assert_string_equal(item(r, "traces_exporter"), "otlp");
  assert_string_equal(item(r, "exit_timeout_ms"), "1500");
  assert_string_equal(item(r, "export_dir"), "./polytel-out");
  assert_string_equal(item(r, "console_level"), "info");
  assert_string_equal(item(r, "telemetry_enabled"), "false");
  assert_string_equal(item(r, "use_env"), "true");
  assert_string_equal(item(r, "resource_attributes"), "deployment.environment=prod,odd=a%2Cb");
  /* header values never: only their names */
  assert_string_equal(item(r, "headers"), "authorization=\xe2\x80\xa6,x-tenant=\xe2\x80\xa6");
  assert_string_equal(item(r, "traces_headers"), "authorization=\xe2\x80\xa6,x-tenant=\xe2\x80\xa6");
  for (size_t i = 0; i < r->n; i++) {
    if (r->items[i].value) assert_null(strstr(r->items[i].value, "secret"));
  }
  assert_null(item(r, "certificate"));
  /* types and variables */
  for (size_t i = 0; i < r->n; i++) {
    if (strcmp(r->items[i].key, "timeout_ms") == 0) {
      assert_int_equal(r->items[i].type, POLYTEL_VALUE_INT);
      assert_string_equal(r->items[i].env, "OTEL_EXPORTER_OTLP_TIMEOUT");
    }
    if (strcmp(r->items[i].key, "sdk_disabled") == 0) assert_int_equal(r->items[i].type, POLYTEL_VALUE_BOOL);
  }
  polytel_config_resolved_free(r);
  polytel__cfg_free(&c);
}

/* The schema, enumerable: every key settable or named by its variable, defaults as text. */
static void test_option_introspection(void **state) {
  (void)state;
  polytel_setting_t o;
  size_t n = 0;
  int saw_timeout = 0, saw_exit = 0;
  while (polytel_config_option(n, &o) == 0) {
    assert_non_null(o.key);
    assert_true(o.env != NULL || strcmp(o.key, "use_env") == 0 || strcmp(o.key, "sdk_language") == 0);
    if (strcmp(o.key, "timeout_ms") == 0) {
      saw_timeout = 1;
      assert_string_equal(o.value, "10000");
      assert_int_equal(o.type, POLYTEL_VALUE_INT);
    }
    if (strcmp(o.key, "exit_timeout_ms") == 0) {
      saw_exit = 1;
      assert_string_equal(o.env, "POLYTEL_EXIT_TIMEOUT_MS");
      assert_string_equal(o.value, "5000");
    }
    if (strcmp(o.key, "protocol") == 0) assert_string_equal(o.value, "http/protobuf");
    if (strcmp(o.key, "export_dir") == 0) assert_string_equal(o.value, "./polytel-out");
    n++;
  }
  assert_int_equal(n, POLYTEL__OPT_COUNT);
  assert_true(saw_timeout && saw_exit);
  assert_int_equal(polytel_config_option(n, &o), POLYTEL_EINVAL);
  /* the words of a choice, as the setter takes them (the refused grpc is not one) */
  const char *word;
  int value, json = 0;
  size_t k = 0;
  for (; polytel_config_choice("protocol", k, &word, &value) == 0; k++) {
    assert_string_not_equal(word, "grpc");
    if (strcmp(word, "json") == 0) json = value;
  }
  assert_int_equal(k, 4);
  assert_int_equal(json, POLYTEL_PROTOCOL_JSON);
  assert_int_equal(polytel_config_choice("console_level", 4, &word, &value), 0);
  assert_string_equal(word, "error");
  assert_int_equal(polytel_config_choice("timeout_ms", 0, &word, &value), POLYTEL_EINVAL);
  assert_int_equal(polytel_config_choice("nope", 0, &word, &value), POLYTEL_EINVAL);
}

static void test_levels_table(void **state) {
  (void)state;
  assert_string_equal(polytel_level_name(POLYTEL_LEVEL_INFO), "info");
  assert_string_equal(polytel_level_name(POLYTEL_LEVEL_OFF), "off");
  assert_null(polytel_level_name(10));
  assert_int_equal(polytel_level_parse(" WARNING "), POLYTEL_LEVEL_WARN);
  assert_int_equal(polytel_level_parse("fatal"), POLYTEL_LEVEL_FATAL);
  assert_int_equal(polytel_level_parse("off"), POLYTEL_LEVEL_OFF);
  assert_int_equal(polytel_level_parse("3"), 3);
  assert_int_equal(polytel_level_parse("25"), -1);
  assert_int_equal(polytel_level_parse("255"), POLYTEL_LEVEL_OFF);
  assert_int_equal(polytel_level_parse("verbose"), -1);
  assert_int_equal(polytel_level_parse(""), -1);
  assert_int_equal(polytel_level_parse(NULL), -1);
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_DEBUG + 1), "DEBUG");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_defaults, reset),
      cmocka_unit_test_setup(test_bool_words, reset),
      cmocka_unit_test_setup(test_good_values, reset),
      cmocka_unit_test_setup(test_bad_values, reset),
      cmocka_unit_test_setup(test_warning_value_is_escaped_and_truncated, reset),
      cmocka_unit_test_setup(test_service_and_resource, reset),
      cmocka_unit_test_setup(test_resource_attributes, reset),
      cmocka_unit_test_setup(test_endpoints, reset),
      cmocka_unit_test_setup(test_headers, reset),
      cmocka_unit_test_setup(test_certificate, reset),
      cmocka_unit_test_setup(test_forbidden_headers, reset),
      cmocka_unit_test_setup(test_signal_headers, reset),
      cmocka_unit_test_setup(test_client_certificates, reset),
      cmocka_unit_test_setup(test_url_credentials_never_echoed, reset),
      cmocka_unit_test_setup(test_resource_limits, reset),
      cmocka_unit_test_setup(test_export_dir_and_colour, reset),
      cmocka_unit_test_setup(test_explicit_beats_env, reset),
      cmocka_unit_test_setup(test_use_env_zero, reset),
      cmocka_unit_test_setup(test_explicit_invalid, reset),
      cmocka_unit_test_setup(test_quiet_resolve, reset),
      cmocka_unit_test_setup(test_real_getenv, reset),
      cmocka_unit_test_setup(test_trace_settings, reset),
      cmocka_unit_test_setup(test_setter_typed_fields, reset),
      cmocka_unit_test_setup(test_setter_errors, reset),
      cmocka_unit_test_setup(test_setter_extras, reset),
      cmocka_unit_test_setup(test_resolved_view, reset),
      cmocka_unit_test_setup(test_option_introspection, reset),
      cmocka_unit_test_setup(test_levels_table, reset),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
