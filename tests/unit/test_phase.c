/* test_phase.c — the phase state machine, console lines per phase, backpressure accounting, fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/console.h"
#include "record/record.h"
#include "polytel.h"

#include "capture.h"

static void capture_start(void) {
  cap_begin();
}

/* Everything printed since capture_start() (kept until the next call). */
static char *capture_end(void) {
  static char *last;
  free(last);
  last = cap_read_all();
  return last;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static int reset_env(void **state) {
  (void)state;
  unsetenv("TELEMETRY_ENABLED");
  unsetenv("POLYTEL_CONSOLE");
  unsetenv("POLYTEL_LOG_LEVEL");
  unsetenv("POLYTEL_MAX_MEMORY");
  unsetenv("NO_COLOR");
  setenv("NO_COLOR", "1", 1);
  return 0;
}

static int shutdown_all(void **state) {
  (void)state;
  polytel_shutdown(100);
  polytel_memory_sink_disable();
  return 0;
}

static void test_console_phase(void **state) {
  (void)state;
  capture_start();
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_NONE);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_CONSOLE);
  assert_int_equal(polytel_init_console_only(NULL), POLYTEL_EALREADY);
  polytel_log(POLYTEL_LEVEL_INFO, "app", "hello %d", 7);
  polytel_log(POLYTEL_LEVEL_DEBUG, "app", "hidden");
  /* Telemetry off: phase 2 is "already complete", nothing changes, nothing is printed. */
  assert_int_equal(polytel_init_full_telemetry(NULL, NULL), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_CONSOLE);
  char *out = capture_end();
  assert_int_equal(count_lines(out), 1);
  assert_non_null(strstr(out, " INFO app: hello 7\n"));
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.pending, 0);
}

static void test_deferred_notice_and_bad_value(void **state) {
  (void)state;
  setenv("TELEMETRY_ENABLED", "TRUE", 1);
  capture_start();
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_DEFERRED);
  polytel_log(POLYTEL_LEVEL_INFO, "app", "kept for phase 2");
  char *out = capture_end();
  assert_int_equal(count_lines(out), 2);
  assert_non_null(strstr(out, "INFO polytel: deferring full telemetry to worker bootstrap"));
  assert_non_null(strstr(out, "INFO app: kept for phase 2"));
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.pending, 1);
  /* Never bootstrapped: shutdown cannot deliver it and says so; the loss is counted. */
  assert_int_equal(polytel_shutdown(100), POLYTEL_EDROPPED);
  polytel_stats(&st);
  assert_int_equal(st.pending, 0);
  assert_true(st.dropped_export >= 1);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_NONE);

  setenv("TELEMETRY_ENABLED", "maybe", 1);
  capture_start();
  assert_int_equal(polytel_init_console_only(NULL), 0);
  out = capture_end();
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_CONSOLE);
  assert_int_equal(count_lines(out), 1);
  assert_non_null(strstr(out, "WARN polytel:"));
  assert_non_null(strstr(out, "TELEMETRY_ENABLED"));
  assert_non_null(strstr(out, "maybe"));
}

static void test_explicit_cfg_upgrade_without_restart(void **state) {
  (void)state;
#if !POLYTEL_WITH_UV
  skip(); /* phase 2 needs the libuv build */
#endif
  setenv("POLYTEL_CONSOLE", "off", 1);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_CONSOLE);
  polytel_config_t cfg;
  polytel_config_init(&cfg);
  cfg.telemetry_enabled = 1;
  cfg.exporter = POLYTEL_EXPORTER_NONE;
  assert_int_equal(polytel_init_full_telemetry(NULL, &cfg), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_FULL);
  assert_int_equal(polytel_init_full_telemetry(NULL, &cfg), POLYTEL_EALREADY);
  for (int i = 0; i < 1000; i++) polytel_log(POLYTEL_LEVEL_INFO, "app", "n=%d", i);
  assert_int_equal(polytel_flush(2000), 0);
  polytel_stats_t st;
  polytel_stats(&st);
  assert_int_equal(st.pending, 0);
  assert_int_equal(polytel_shutdown(2000), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_NONE);
}

/* A small pool in deferred mode: drops are counted exactly, memory stays at the cap. */
static void test_backpressure_accounting(void **state) {
  (void)state;
  setenv("TELEMETRY_ENABLED", "1", 1);
  setenv("POLYTEL_CONSOLE", "off", 1);
  setenv("POLYTEL_MAX_MEMORY", "256K", 1);
  polytel_stats_t st0, st;
  polytel_stats(&st0);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  const int n = 100000;
  for (int i = 0; i < n; i++) polytel_log(POLYTEL_LEVEL_INFO, "bp", "event %d", i);
  polytel_stats(&st);
  assert_int_equal(st.recorded - st0.recorded, n);
  assert_true(st.dropped_buffer_full - st0.dropped_buffer_full > 0);
  assert_int_equal(st.recorded, st.exported + st.dropped + st.pending);
  assert_true(st.buffer_bytes <= st.buffer_bytes_max);
  assert_int_equal(st.buffer_bytes_max, 256 * 1024);
  /* What was kept is exactly what was not dropped: drain it into the memory sink. */
  uint64_t kept = st.pending;
  assert_int_equal(polytel_memory_sink_enable(200000), 0);
  polytel_memory_sink_collect();
  uint64_t logs = 0;
  for (size_t i = 0; i < polytel_memory_sink_count(); i++)
    logs += polytel_memory_sink_get(i)->kind == POLYTEL_RECORD_LOG;
  assert_int_equal(logs, kept);
  const polytel_record_t *first = polytel_memory_sink_get(0);
  assert_string_equal(first->body, "event 0"); /* the oldest are kept; newer ones were dropped */
  polytel_stats(&st);
  assert_int_equal(st.pending, 0);
}

/*
 * Spans and logs interleaved into a tiny pool: every block boundary and every
 * pool-exhausted begin is crossed. Regression: a begin that filled a block to
 * its limit once let the next event write past the block (ASan catches it).
 */
static void test_backpressure_spans_pair(void **state) {
  (void)state;
  setenv("TELEMETRY_ENABLED", "1", 1);
  setenv("POLYTEL_CONSOLE", "off", 1);
  setenv("POLYTEL_MAX_MEMORY", "256K", 1);
  polytel_stats_t st0, st;
  polytel_stats(&st0);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  const int n = 30000;
  for (int i = 0; i < n; i++) {
    polytel_span_begin("outer");
    polytel_span_begin("inner");
    polytel_log(POLYTEL_LEVEL_INFO, "bp", "event %d", i);
    polytel_span_end();
    polytel_span_end();
  }
  polytel_stats(&st);
  assert_int_equal(st.recorded - st0.recorded, 3 * n);
  assert_true(st.dropped_buffer_full > st0.dropped_buffer_full);
  assert_int_equal(st.recorded, st.exported + st.dropped + st.pending);
  uint64_t kept = st.pending;
  assert_int_equal(polytel_memory_sink_enable(400000), 0);
  polytel_memory_sink_collect();
  uint64_t items = 0, inner = 0, paired = 0;
  const polytel_record_t *last_outer = NULL;
  size_t count = polytel_memory_sink_count();
  for (size_t i = 0; i < count; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind == POLYTEL_RECORD_METRIC) continue;
    items++;
    if (r->kind == POLYTEL_RECORD_SPAN && strcmp(r->name, "inner") == 0) inner++;
    if (r->kind == POLYTEL_RECORD_SPAN && strcmp(r->name, "outer") == 0) last_outer = r;
  }
  assert_int_equal(items, kept);
  assert_true(inner > 0);
  /* Every recorded inner span has its recorded outer as parent, in the same trace. */
  for (size_t i = 0; i + 1 < count; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind != POLYTEL_RECORD_SPAN || strcmp(r->name, "inner") != 0) continue;
    for (size_t j = i + 1; j < count && j < i + 4; j++) {
      const polytel_record_t *o = polytel_memory_sink_get(j);
      if (o->kind == POLYTEL_RECORD_SPAN && strcmp(o->name, "outer") == 0) {
        paired += memcmp(r->parent_id, o->span_id, 8) == 0 && memcmp(r->trace_id, o->trace_id, 16) == 0;
        break;
      }
    }
  }
  assert_non_null(last_outer);
  assert_int_equal(paired, inner);
}

/* A real fork: the child gets its phase-1 state, none of the parent's events, fresh ids. */
static void test_fork_child(void **state) {
  (void)state;
  setenv("TELEMETRY_ENABLED", "true", 1);
  setenv("POLYTEL_CONSOLE", "off", 1);
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_memory_sink_enable(1000), 0);
  for (int i = 0; i < 5; i++) polytel_log(POLYTEL_LEVEL_INFO, "parent", "p%d", i);
  POLYTEL_COUNTER_ADD("forked.counter", "1", 10);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int bad = 0;
    polytel_stats_t st;
    polytel_stats(&st);
    bad |= st.recorded != 0;
    bad |= (polytel_phase() != POLYTEL_PHASE_DEFERRED) << 1;
    for (int i = 0; i < 3; i++) polytel_log(POLYTEL_LEVEL_INFO, "child", "c%d", i);
    POLYTEL_COUNTER_ADD("forked.counter", "1", 1);
    polytel_memory_sink_collect();
    size_t logs = 0;
    int64_t counter = -1;
    for (size_t i = 0; i < polytel_memory_sink_count(); i++) {
      const polytel_record_t *r = polytel_memory_sink_get(i);
      if (r->kind == POLYTEL_RECORD_LOG) {
        logs++;
        bad |= (strcmp(r->name, "child") != 0) << 2;
      }
      if (r->kind == POLYTEL_RECORD_METRIC && strcmp(r->name, "forked.counter") == 0) counter = r->int_value;
    }
    bad |= (logs != 3) << 3;
    bad |= (counter != 1) << 4; /* the child's counters start at zero */
    _exit(bad);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  polytel_memory_sink_collect();
  size_t logs = 0;
  for (size_t i = 0; i < polytel_memory_sink_count(); i++)
    logs += polytel_memory_sink_get(i)->kind == POLYTEL_RECORD_LOG;
  assert_int_equal(logs, 5);
}

static void test_errors_table(void **state) {
  (void)state;
  assert_string_equal(polytel_err_name(POLYTEL_EALREADY), "POLYTEL_EALREADY");
  assert_string_equal(polytel_strerror(POLYTEL_EALREADY), "already initialized");
  assert_string_equal(polytel_err_name(0), "POLYTEL_OK");
  assert_string_equal(polytel_strerror(-999), "unknown error");
  assert_string_equal(polytel_phase_name(POLYTEL_PHASE_DEFERRED), "deferred");
  assert_string_equal(polytel_version(), POLYTEL_VERSION_STRING);
}

/* An exporter variable set while TELEMETRY_ENABLED is not true: one INFO line saying so, once per process. */
static void test_export_off_is_explained_once(void **state) {
  (void)state;
  polytel_config_t off;
  /* An exporter chosen as none, or telemetry decided in code: nothing to explain. */
  setenv("POLYTEL_EXPORTER", "none", 1);
  capture_start();
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_null(strstr(capture_end(), "export is off"));
  polytel_shutdown(100);
  unsetenv("POLYTEL_EXPORTER");
  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/", 1);
  polytel_config_init(&off);
  off.telemetry_enabled = 0;
  capture_start();
  assert_int_equal(polytel_init_console_only(&off), 0);
  assert_null(strstr(capture_end(), "export is off"));
  polytel_shutdown(100);
  /* The first run a new user makes: told why nothing leaves, and how to change it. */
  capture_start();
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_phase(), POLYTEL_PHASE_CONSOLE);
  char *out = capture_end();
  assert_int_equal(count_lines(out), 1);
  assert_non_null(
      strstr(out,
             " INFO polytel: export is off: OTEL_EXPORTER_OTLP_ENDPOINT is set but TELEMETRY_ENABLED "
             "is not true; set TELEMETRY_ENABLED=true to export (console-only logging until then)\n"));
  polytel_shutdown(100);
  /* Once: a second phase 1 in the same process says nothing more. */
  capture_start();
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_null(strstr(capture_end(), "export is off"));
  unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_console_phase, reset_env, shutdown_all),
      cmocka_unit_test_setup_teardown(test_deferred_notice_and_bad_value, reset_env, shutdown_all),
      cmocka_unit_test_setup_teardown(test_explicit_cfg_upgrade_without_restart, reset_env, shutdown_all),
      cmocka_unit_test_setup_teardown(test_backpressure_accounting, reset_env, shutdown_all),
      cmocka_unit_test_setup_teardown(test_backpressure_spans_pair, reset_env, shutdown_all),
      cmocka_unit_test_setup_teardown(test_fork_child, reset_env, shutdown_all),
      cmocka_unit_test_setup_teardown(test_errors_table, reset_env, shutdown_all),
      /* Last: the line is printed once per process. */
      cmocka_unit_test_setup_teardown(test_export_off_is_explained_once, reset_env, shutdown_all),
  };
  return cmocka_run_group_tests_name("phase", tests, NULL, NULL);
}
