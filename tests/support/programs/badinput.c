/* badinput.c — reliability: bad input through the C API (NULLs everywhere, calls before init and after
 * shutdown, huge and non-UTF-8 messages, 100k distinct span names, env as given); prints return codes and
 * stats as JSON. */
#include <polytel.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "vmhwm.h"

/*
 * Usage: badinput MODE
 *   env        phase 1 + 2 from the environment as given, 10 logs + 10 spans, shutdown
 *   nullapi    every public function with NULL pointers (and NULL inside structs), in phases none, full, none
 *   lifecycle  every recording/flush/stats call before any init and after shutdown
 *   bigmsg     a 1 MiB log message (dynamic and through %s), non-UTF-8 messages and attributes
 *   spans      100k spans with distinct (copied) names
 *   threadspans  nested thread spans whose events straddle block boundaries (pins a core bug)
 *   fmtbomb [N]  printf widths/precisions of 2^31 from the arguments, bidi and zero-width characters
 * stdout: "CALL <name>" before each risky call (a crash names its call), then "RESULT {...}".
 */

/* BADINPUT_SKIP: comma-separated call names not to make (known crashes, tested one by one with
 * BADINPUT_ONLY). */
static int call(const char *name) {
  const char *only = getenv("BADINPUT_ONLY"), *skip = getenv("BADINPUT_SKIP");
  if (only && strcmp(only, name) != 0) return 0;
  if (skip) {
    size_t n = strlen(name);
    for (const char *p = skip; (p = strstr(p, name)) != NULL; p += n)
      if ((p == skip || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 0;
  }
  printf("CALL %s\n", name);
  fflush(stdout);
  return 1;
}

static int rcs[256];
static int n_rcs;
static void keep(int rc) {
  if (n_rcs < 256) rcs[n_rcs++] = rc;
}

static void result(const char *extra) {
  polytel_stats_t st;
  memset(&st, 0, sizeof st);
  int rc = polytel_stats(&st);
  printf(
      "RESULT {\"stats_rc\": %d, \"phase\": \"%s\", \"recorded\": %llu, \"exported\": %llu, \"dropped\": "
      "%llu, "
      "\"pending\": %llu, \"dropped_buffer_full\": %llu, \"dropped_export\": %llu, \"dropped_invalid\": "
      "%llu, "
      "\"truncated\": %llu, \"logs_recorded\": %llu, \"spans_recorded\": %llu, \"rcs\": [",
      rc, polytel_phase_name(polytel_phase()), (unsigned long long)st.recorded,
      (unsigned long long)st.exported, (unsigned long long)st.dropped, (unsigned long long)st.pending,
      (unsigned long long)st.dropped_buffer_full, (unsigned long long)st.dropped_export,
      (unsigned long long)st.dropped_invalid, (unsigned long long)st.truncated,
      (unsigned long long)st.logs_recorded, (unsigned long long)st.spans_recorded);
  for (int i = 0; i < n_rcs; i++) printf("%s%d", i ? ", " : "", rcs[i]);
  printf("]%s}\n", extra ? extra : "");
  fflush(stdout);
}

static void vlog_helper(const char *target, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  polytel_vlog(POLYTEL_LEVEL_INFO, target, fmt, ap);
  va_end(ap);
}

/* Every public entry point with NULL where a pointer goes. Must not crash; bad records count as
 * dropped_invalid. */
static void null_calls(void) {
  polytel_attr_t bad[3] = {{.key = NULL, .type = POLYTEL_ATTR_INT, .value = {.i = 1}},
                           {.key = "s", .type = POLYTEL_ATTR_STRING, .value = {.str = {NULL, 10}}},
                           {.key = "x", .type = (polytel_attr_type_t)77, .value = {.i = 2}}};
  polytel_span_ctx_t sp;
  memset(&sp, 0, sizeof sp);
  if (call("polytel_strerror/err_name")) {
    if (!polytel_strerror(12345) || !polytel_err_name(-12345)) abort();
  }
  if (call("polytel_phase_name(99)")) {
    if (!polytel_phase_name((polytel_phase_t)99)) abort();
  }
  if (call("polytel_config_init(NULL)")) {
    polytel_config_init(NULL);
  }
  if (call("polytel_log(NULL target, NULL fmt)")) {
    polytel_log(POLYTEL_LEVEL_INFO, NULL, NULL);
  }
  if (call("polytel_log(NULL target)")) {
    polytel_log(POLYTEL_LEVEL_INFO, NULL, "no target %d", 1);
  }
  if (call("polytel_log(NULL fmt)")) {
    polytel_log(POLYTEL_LEVEL_INFO, "t", NULL);
  }
  if (call("polytel_log(%s with NULL)")) {
    const char *volatile null_str = NULL; /* volatile: a run-time NULL, not a compile-time diagnostic */
    polytel_log(POLYTEL_LEVEL_INFO, "t", "null string arg: %s", null_str);
  }
  if (call("polytel_vlog(NULL fmt)")) {
    vlog_helper(NULL, NULL);
  }
  if (call("polytel_log_attrs(NULL msg len 5, NULL attrs n 3, NULL span)")) {
    polytel_log_attrs(POLYTEL_LEVEL_INFO, NULL, NULL, 5, NULL, 3, NULL);
  }
  if (call("polytel_log_attrs(attr NULL key, NULL string value)")) {
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "t", "msg", 3, bad, 3, NULL);
  }
  if (call("polytel_level_enabled(0)")) {
    (void)polytel_level_enabled((polytel_level_t)0);
  }
  if (call("polytel_span_begin(NULL)")) {
    polytel_span_begin(NULL);
    polytel_span_end();
  }
  if (call("polytel_span_end() unmatched")) {
    polytel_span_end();
  }
  if (call("polytel_span_begin_dyn(NULL, NULL, 2)")) {
    polytel_span_begin_dyn(NULL, NULL, 2);
    polytel_span_end();
  }
  if (call("polytel_span_begin_dyn(name, NULL attrs, 2)")) {
    polytel_span_begin_dyn("dyn", NULL, 2);
  }
  if (call("polytel_span_end_status(NULL msg, NULL attrs, 3)")) {
    polytel_span_end_status(POLYTEL_STATUS_ERROR, NULL, NULL, 3);
  }
  if (call("polytel_span_end_status() unmatched, bad attrs")) {
    polytel_span_end_status((polytel_status_t)9, NULL, bad, 3);
  }
  if (call("polytel__span_scope_end(NULL)")) {
    polytel__span_scope_end(NULL);
  }
  if (call("polytel_span_start(NULL, NULL)")) {
    keep(polytel_span_start(NULL, NULL));
  }
  if (call("polytel_span_finish(NULL, ...)")) {
    keep(polytel_span_finish(NULL, "x", POLYTEL_STATUS_OK, NULL, NULL, 0));
    keep(polytel_span_start(NULL, &sp));
  }
  if (call("polytel_span_finish(ctx, NULL name, NULL msg, NULL attrs n 2)")) {
    keep(polytel_span_finish(&sp, NULL, POLYTEL_STATUS_OK, NULL, NULL, 2));
  }
  if (call("polytel_span_finish(ctx, bad attrs)")) {
    keep(polytel_span_finish(&sp, "named", POLYTEL_STATUS_OK, "m", bad, 3));
  }
  if (call("polytel_counter_add_static(NULL)")) {
    polytel_counter_add_static(NULL, 1);
  }
  if (call("polytel_gauge_set_static(NULL)")) {
    polytel_gauge_set_static(NULL, 1.0);
  }
  if (call("polytel_histogram_record_static(NULL)")) {
    polytel_histogram_record_static(NULL, 1.0);
  }
  if (call("static descriptor with NULL name/unit")) {
    static polytel_metric_t nameless = POLYTEL_METRIC_INIT(NULL, NULL, POLYTEL_METRIC_COUNTER);
    polytel_counter_add_static(&nameless, 1);
  }
  if (call("static descriptor of an unknown kind")) {
    static polytel_metric_t wrongkind = POLYTEL_METRIC_INIT("wrong.kind", "1", (polytel_metric_kind_t)42);
    polytel_gauge_set_static(&wrongkind, 2.0);
  }
  if (call("polytel_counter_add(NULL name, NULL unit, NULL attrs n 2)")) {
    polytel_counter_add(NULL, NULL, 1, NULL, 2);
  }
  if (call("polytel_gauge_set(NULL...)")) {
    polytel_gauge_set(NULL, NULL, 1.0, NULL, 2);
  }
  if (call("polytel_histogram_record(NULL...)")) {
    polytel_histogram_record(NULL, NULL, 1.0, NULL, 2);
  }
  if (call("polytel_counter_add(bad attrs)")) {
    polytel_counter_add("c", "1", 1, bad, 3);
  }
  if (call("polytel_stats(NULL)")) {
    keep(polytel_stats(NULL));
  }
  if (call("polytel_memory_sink_get(huge)")) {
    if (polytel_memory_sink_get((size_t)-1) != NULL) abort();
  }
  if (call("polytel_flush(0)")) {
    keep(polytel_flush(0));
  }
}

static void lifecycle_calls(void) {
  call("log");
  polytel_log(POLYTEL_LEVEL_INFO, "t", "lifecycle %d", 1);
  polytel_log_attrs(POLYTEL_LEVEL_INFO, "t", "dyn", 3, NULL, 0, NULL);
  call("spans");
  polytel_span_begin("s");
  polytel_span_end();
  polytel_span_ctx_t sp;
  keep(polytel_span_start(NULL, &sp));
  keep(polytel_span_finish(&sp, "async", POLYTEL_STATUS_OK, NULL, NULL, 0));
  call("metrics");
  POLYTEL_COUNTER_ADD("life.count", "1", 1);
  polytel_gauge_set("life.gauge", "1", 1.0, NULL, 0);
  call("flush");
  keep(polytel_flush(100));
  call("stats");
  polytel_stats_t st;
  keep(polytel_stats(&st));
  call("shutdown");
  keep(polytel_shutdown(100));
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "env")) {
    keep(polytel_init_console_only(NULL));
    keep(polytel_init_full_telemetry(NULL, NULL));
    for (int i = 0; i < 10; i++) {
      polytel_span_ctx_t sp;
      polytel_span_start(NULL, &sp);
      polytel_log(POLYTEL_LEVEL_INFO, "env", "env event %d", i);
      polytel_span_finish(&sp, "env-span", POLYTEL_STATUS_OK, NULL, NULL, 0);
    }
    keep(polytel_shutdown(3000));
    result(NULL);
  } else if (!strcmp(mode, "nullapi")) {
    null_calls(); /* phase none */
    call("init");
    keep(polytel_init_full_telemetry(NULL, NULL));
    null_calls(); /* full */
    keep(polytel_shutdown(3000));
    null_calls(); /* after shutdown */
    result(NULL);
  } else if (!strcmp(mode, "lifecycle")) {
    lifecycle_calls(); /* before any init */
    call("init");
    keep(polytel_init_full_telemetry(NULL, NULL));
    polytel_log(POLYTEL_LEVEL_INFO, "t", "during %d", 1);
    keep(polytel_shutdown(3000));
    lifecycle_calls();           /* after shutdown */
    keep(polytel_shutdown(100)); /* twice */
    result(NULL);
  } else if (!strcmp(mode, "bigmsg")) {
    keep(polytel_init_full_telemetry(NULL, NULL));
    size_t big = (size_t)1 << 20;
    char *m = malloc(big + 1);
    if (!m) return 1;
    memset(m, 'a', big);
    m[big] = '\0';
    m[0] = 'B';
    call("log_attrs 1 MiB");
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "big", m, big, NULL, 0, NULL);
    call("log %s 1 MiB");
    polytel_log(POLYTEL_LEVEL_INFO, "big", "fmt:%s", m);
    static const char bad_utf8[] = "bad \xff\xfe utf8 \xc3\x28 \xed\xa0\x80 end";
    call("log_attrs non-UTF-8");
    polytel_attr_t a = POLYTEL_ATTR_STR("bad\xffkey", bad_utf8);
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "big", bad_utf8, sizeof bad_utf8 - 1, &a, 1, NULL);
    call("log %s non-UTF-8");
    polytel_log(POLYTEL_LEVEL_INFO, "big", "fmt:%s", bad_utf8);
    call("log_attrs embedded NUL");
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "big", "nul\0inside", 10, NULL, 0, NULL);
    free(m);
    keep(polytel_shutdown(10000));
    result(NULL);
  } else if (!strcmp(mode, "spans")) {
    int n = argc > 2 ? atoi(argv[2]) : 100000;
    keep(polytel_init_full_telemetry(NULL, NULL));
    char name[64];
    for (int i = 0; i < n; i++) {
      snprintf(name, sizeof name, "span-name-%d", i);
      polytel_span_ctx_t sp;
      polytel_span_start(NULL, &sp);
      polytel_span_finish(&sp, name, POLYTEL_STATUS_OK, NULL, NULL, 0);
    }
    keep(polytel_shutdown(30000));
    result(NULL);
  } else if (!strcmp(mode, "threadspans")) {
    keep(polytel_init_full_telemetry(NULL, NULL));
    call("span_begin/log/span_end x 100000");
    for (int i = 0; i < 100000; i++) {
      polytel_span_begin("s");
      polytel_log(POLYTEL_LEVEL_INFO, "t", "parent t%d e%d", 0, i);
      polytel_span_end();
    }
    keep(polytel_shutdown(30000));
    result(NULL);
  } else if (!strcmp(mode, "fmtbomb")) {
    /* Widths and precisions of 2^31 from the arguments (rendered on the exporter, and on the caller for
     * the console), and bidi/zero-width characters in a record. */
    int big = argc > 2 ? atoi(argv[2]) : INT_MAX; /* a runtime value, as a program's would be */
    keep(polytel_init_full_telemetry(NULL, NULL));
    call("polytel_log with 2^31 widths and precisions x 100, bidi text x 100");
    for (int i = 0; i < 100; i++) {
      polytel_log(POLYTEL_LEVEL_INFO, "fmt", "w%*d|p%.*f|e%.*e|s%-*s|", big, i, big, 1.5, big, 2.5, big, "x");
      polytel_log(POLYTEL_LEVEL_INFO, "fmt", "bidi \xe2\x80\xae%s\xe2\x81\xa6 zw\xe2\x80\x8b%d", "txet", i);
    }
    keep(polytel_shutdown(30000));
    result(NULL);
  } else {
    fprintf(stderr, "usage: badinput env|nullapi|lifecycle|bigmsg|spans [N]|threadspans|fmtbomb [N]\n");
    return 2;
  }
  printf("VMHWM %ld\n", vmhwm_kib()); /* peak RSS, for the hostile-input figures */
  return 0;
}
