/* test_console.c — console lines (text, JSON, colour), sanitization, truncation, thresholds, diagnostics. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/console.h"

/* 2026-11-22T04:02:36.123456789Z */
#define T0 1795320156123456789ull
#define TS "2026-11-22T04:02:36.123456Z"

#include "capture.h"

/* Everything written since cap_begin; caller frees. */
static char *cap_end(void) {
  return cap_read_all();
}

/* Each line without its leading timestamp (diagnostics carry the current time). */
static char *strip_ts(char *s) {
  char *out = malloc(strlen(s) + 1), *w = out;
  for (char *line = s; *line;) {
    char *nl = strchr(line, '\n'), *sp = strchr(line, ' ');
    char *end = nl ? nl + 1 : line + strlen(line);
    char *from = sp && sp < end ? sp + 1 : line;
    memcpy(w, from, (size_t)(end - from));
    w += end - from;
    line = end;
  }
  *w = '\0';
  free(s);
  return out;
}

static void emit_str(int level, const char *target, const char *msg, const polytel_attr_t *attrs, size_t n) {
  polytel__console_emit(level, T0, target, target ? strlen(target) : 0, msg, msg ? strlen(msg) : 0, attrs, n);
}

/* Captured output of one text emit with the fixed time. */
static char *line_of(const char *target, const char *msg, size_t msg_len, const polytel_attr_t *attrs,
                     size_t n) {
  cap_begin();
  polytel__console_emit(POLYTEL_LEVEL_INFO, T0, target, target ? strlen(target) : 0, msg, msg_len, attrs, n);
  return cap_end();
}

static void expect_line(const char *msg, size_t msg_len, const char *want) {
  char *got = line_of("t", msg, msg_len, NULL, 0);
  assert_string_equal(got, want);
  free(got);
}

static int reset(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_INFO, 0);
  polytel__console_set_fd(-1);
  return 0;
}

/* ------------------------------------------------------------ tests */

/* Must run first: the state before any configure call. Captures the real stderr. */
static void test_defaults_before_configure(void **state) {
  (void)state;
  assert_true(polytel__console_enabled(POLYTEL_LEVEL_INFO));
  assert_false(polytel__console_enabled(POLYTEL_LEVEL_DEBUG));
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  emit_str(POLYTEL_LEVEL_WARN, "app", "to stderr", NULL, 0);
  emit_str(POLYTEL_LEVEL_DEBUG, "app", "below threshold", NULL, 0);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fds[1]);
  char buf[256] = {0};
  ssize_t k = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  assert_true(k > 0);
  assert_string_equal(buf, TS " WARN app: to stderr\n");
}

static void test_stdout_destination(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDOUT, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_INFO, 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  dup2(fds[1], STDOUT_FILENO);
  emit_str(POLYTEL_LEVEL_INFO, "app", "to stdout", NULL, 0);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  close(fds[1]);
  char buf[256] = {0};
  ssize_t k = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  assert_true(k > 0);
  assert_string_equal(buf, TS " INFO app: to stdout\n");
}

static void test_text_line(void **state) {
  (void)state;
  polytel_attr_t attrs[] = {
      POLYTEL_ATTR_STR("key", "value"),    POLYTEL_ATTR_STR("key2", "value with spaces"),
      POLYTEL_ATTR_STR("q", "say \"hi\""), POLYTEL_ATTR_STR("eq", "a=b"),
      POLYTEL_ATTR_STR("empty", ""),       POLYTEL_ATTR_INT("n", -42),
      POLYTEL_ATTR_DOUBLE("d", 1.5),       POLYTEL_ATTR_DOUBLE("tenth", 0.1),
      POLYTEL_ATTR_BOOL("ok", 1),          POLYTEL_ATTR_BOOL("no", 0),
      POLYTEL_ATTR_INT("big", INT64_MIN),  POLYTEL_ATTR_STR("path", "C:\\dir"),
  };
  char *got = line_of("target", "message", 7, attrs, sizeof attrs / sizeof attrs[0]);
  assert_string_equal(got, TS
                      " INFO target: message key=value key2=\"value with spaces\" q=\"say \\\"hi\\\"\" "
                      "eq=\"a=b\" empty=\"\" n=-42 d=1.5 tenth=0.1 ok=true no=false "
                      "big=-9223372036854775808 path=C:\\\\dir\n");
  free(got);
}

static void test_text_levels_and_no_target(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_TRACE, 0);
  cap_begin();
  emit_str(POLYTEL_LEVEL_TRACE, "a", "t", NULL, 0);
  emit_str(POLYTEL_LEVEL_DEBUG, "a", "d", NULL, 0);
  emit_str(POLYTEL_LEVEL_INFO, "a", "i", NULL, 0);
  emit_str(POLYTEL_LEVEL_WARN, "a", "w", NULL, 0);
  emit_str(POLYTEL_LEVEL_ERROR, "a", "e", NULL, 0);
  emit_str(POLYTEL_LEVEL_FATAL, "a", "f", NULL, 0);
  emit_str(POLYTEL_LEVEL_INFO, NULL, "no target", NULL, 0);
  emit_str(POLYTEL_LEVEL_INFO, "", "empty target", NULL, 0);
  emit_str(POLYTEL_LEVEL_INFO, "a", NULL, NULL, 0);
  char *got = cap_end();
  assert_string_equal(got, TS " TRACE a: t\n" TS " DEBUG a: d\n" TS " INFO a: i\n" TS " WARN a: w\n" TS
                              " ERROR a: e\n" TS " FATAL a: f\n" TS " INFO no target\n" TS
                              " INFO empty target\n" TS " INFO a: \n");
  free(got);
}

static void test_level_names(void **state) {
  (void)state;
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_TRACE), "TRACE");
  assert_string_equal(polytel__level_name(4), "TRACE");
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_DEBUG), "DEBUG");
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_INFO), "INFO");
  assert_string_equal(polytel__level_name(10), "INFO");
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_WARN), "WARN");
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_ERROR), "ERROR");
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_FATAL), "FATAL");
  assert_string_equal(polytel__level_name(24), "FATAL");
  assert_string_equal(polytel__level_name(0), "UNKNOWN");
  assert_string_equal(polytel__level_name(25), "UNKNOWN");
  assert_string_equal(polytel__level_name(POLYTEL_LEVEL_OFF), "OFF");
}

static void test_colour(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_TRACE, 1);
  cap_begin();
  emit_str(POLYTEL_LEVEL_INFO, "a", "m", NULL, 0);
  emit_str(POLYTEL_LEVEL_WARN, "a", "m", NULL, 0);
  emit_str(POLYTEL_LEVEL_ERROR, "a", "m", NULL, 0);
  emit_str(POLYTEL_LEVEL_FATAL, "a", "m", NULL, 0);
  emit_str(POLYTEL_LEVEL_DEBUG, "a", "m", NULL, 0);
  emit_str(POLYTEL_LEVEL_TRACE, "a", "m", NULL, 0);
  char *got = cap_end();
  assert_string_equal(got, TS " \x1b[32mINFO\x1b[0m a: m\n" TS " \x1b[33mWARN\x1b[0m a: m\n" TS
                              " \x1b[31mERROR\x1b[0m a: m\n" TS " \x1b[1;31mFATAL\x1b[0m a: m\n" TS
                              " \x1b[34mDEBUG\x1b[0m a: m\n" TS " \x1b[90mTRACE\x1b[0m a: m\n");
  free(got);
  /* The message's own escapes are still neutralised with colour on. */
  cap_begin();
  emit_str(POLYTEL_LEVEL_INFO, "a", "\x1b[2J", NULL, 0);
  got = cap_end();
  assert_string_equal(got, TS " \x1b[32mINFO\x1b[0m a: \\x1b[2J\n");
  free(got);
}

static void test_json_line(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_JSON, POLYTEL_LEVEL_INFO, 1);
  polytel_attr_t attrs[] = {
      POLYTEL_ATTR_STR("k", "v \"q\" \\ \n"), POLYTEL_ATTR_INT("n", 7),
      POLYTEL_ATTR_DOUBLE("d", 2.25),         POLYTEL_ATTR_DOUBLE("nan", 0.0 / 0.0),
      POLYTEL_ATTR_DOUBLE("inf", -1.0 / 0.0), POLYTEL_ATTR_BOOL("b", 1),
  };
  cap_begin();
  emit_str(POLYTEL_LEVEL_WARN, "svc.db", "hello \"world\"\x01\x7f\xff\xc2\x85\n", attrs, 6);
  emit_str(POLYTEL_LEVEL_INFO, "t", "no attrs", NULL, 0);
  char *got = cap_end();
  /* Colour never applies to JSON. */
  assert_string_equal(
      got, "{\"time\":\"" TS
           "\",\"level\":\"WARN\",\"target\":\"svc.db\",\"message\":\"hello "
           "\\\"world\\\"\\u0001\\u007f\\ufffd\\u0085\\n\",\"attributes\":{\"k\":\"v \\\"q\\\" \\\\ "
           "\\n\",\"n\":7,\"d\":2.25,\"nan\":\"NaN\",\"inf\":\"-Infinity\",\"b\":true}}\n"
           "{\"time\":\"" TS
           "\",\"level\":\"INFO\",\"target\":\"t\",\"message\":\"no "
           "attrs\",\"attributes\":{}}\n");
  free(got);
}

static void test_sanitize_text(void **state) {
  (void)state;
  expect_line("a\nb", 3, TS " INFO t: a\\nb\n");
  expect_line("a\r\nINFO forged: line", 20, TS " INFO t: a\\r\\nINFO forged: line\n");
  expect_line("\x1b[31mred\x1b[0m", 12, TS " INFO t: \\x1b[31mred\\x1b[0m\n");
  expect_line("tab\there", 8, TS " INFO t: tab\\there\n");
  expect_line("del\x7f", 4, TS " INFO t: del\\x7f\n");
  expect_line("nul\0x", 5, TS " INFO t: nul\\x00x\n");
  expect_line("back\\slash", 10, TS " INFO t: back\\\\slash\n");
  /* C1 controls: U+0085 (NEL) and U+009B (8-bit CSI) */
  expect_line(
      "\xc2\x85 \xc2\x9b"
      "31m",
      8, TS " INFO t: \\u0085 \\u009b31m\n");
  /* invalid UTF-8: lone byte, truncated sequence, overlong '/', surrogate, past U+10FFFF */
  expect_line("\xff", 1, TS " INFO t: \\xff\n");
  expect_line("\xc3", 1, TS " INFO t: \\xc3\n");
  expect_line("\xc0\xaf", 2, TS " INFO t: \\xc0\\xaf\n");
  expect_line("\xed\xa0\x80", 3, TS " INFO t: \\xed\\xa0\\x80\n");
  expect_line("\xf4\x90\x80\x80", 4, TS " INFO t: \\xf4\\x90\\x80\\x80\n");
  expect_line("\xe2\x82", 2, TS " INFO t: \\xe2\\x82\n");
  /* valid UTF-8 passes through: é, ✓, 😀, U+00A0 (first code point after C1) */
  expect_line("h\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xc2\xa0", 15,
              TS " INFO t: h\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xc2\xa0\n");
  /* a plain quote is fine in an unquoted message */
  expect_line("say \"x\"", 7, TS " INFO t: say \"x\"\n");

  /* target, keys and values are escaped too */
  polytel_attr_t attrs[] = {POLYTEL_ATTR_STR("k\n", "v\x1b[0m\nX")};
  cap_begin();
  polytel__console_emit(POLYTEL_LEVEL_INFO, T0, "tg\r\n", 4, "m", 1, attrs, 1);
  char *got = cap_end();
  assert_string_equal(got, TS " INFO tg\\r\\n: m k\\n=v\\x1b[0m\\nX\n");
  free(got);
}

/* Bidi controls and invisible characters ("Trojan Source"): escaped in text and JSON, on a TTY or not. */
static void test_bidi_and_invisible_escaped(void **state) {
  (void)state;
  /* RLO U+202E, LRI U+2066, PDI U+2069, ZWSP U+200B, RLM U+200F, LS U+2028, PS U+2029, BOM U+FEFF,
   * ALM U+061C, WJ U+2060, soft hyphen U+00AD, tag 'A' U+E0041 */
  static const char in[] =
      "a\xe2\x80\xae"
      "b\xe2\x81\xa6"
      "c\xe2\x81\xa9"
      "d\xe2\x80\x8b"
      "e\xe2\x80\x8f"
      "f\xe2\x80\xa8"
      "g\xe2\x80\xa9"
      "h\xef\xbb\xbf"
      "i\xd8\x9c"
      "j\xe2\x81\xa0"
      "k\xc2\xad"
      "l\xf3\xa0\x81\x81"
      "m";
  expect_line(
      in, sizeof in - 1,
      TS
      " INFO t: a\\u202eb\\u2066c\\u2069d\\u200be\\u200ff\\u2028g\\u2029h\\ufeffi\\u061cj\\u2060k\\u00adl"
      "\\U000e0041m\n");
  /* neighbours stay as they are: U+2030 (per mille), U+2070 (superscript zero), U+FEFE, U+E0080 */
  expect_line("\xe2\x80\xb0\xe2\x81\xb0\xef\xbb\xbe\xf3\xa0\x82\x80", 13,
              TS " INFO t: \xe2\x80\xb0\xe2\x81\xb0\xef\xbb\xbe\xf3\xa0\x82\x80\n");
  char out[64];
  assert_int_equal(polytel__sanitize(out, sizeof out, "\xe2\x80\xae\xf3\xa0\x81\x81", 7, 1), 18);
  assert_string_equal(out, "\\u202e\\udb40\\udc41"); /* JSON: a surrogate pair for the tag */
  assert_int_equal(polytel__sanitize(out, sizeof out, "\xe2\x80\xae\xf3\xa0\x81\x81", 7, 0), 16);
  assert_string_equal(out, "\\u202e\\U000e0041");
  /* an attribute value in a terminal (colour on) is escaped the same way */
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_INFO, 1);
  polytel_attr_t attrs[] = {POLYTEL_ATTR_STR("k\xe2\x80\xae", "v\xe2\x81\xa7")};
  cap_begin();
  polytel__console_emit(POLYTEL_LEVEL_INFO, T0, "t\xe2\x80\x8d", 4, "m", 1, attrs, 1);
  char *got = cap_end();
  assert_string_equal(got, TS " \x1b[32mINFO\x1b[0m t\\u200d: m k\\u202e=v\\u2067\n");
  free(got);
}

/* polytel's own messages are never cut silently: past the line buffer they end with a visible mark. */
static void test_diag_cut_is_visible(void **state) {
  (void)state;
  char *big = malloc(5000);
  memset(big, 'x', 4999);
  big[4999] = '\0';
  big[2040] = '\xc3', big[2041] = '\xa9'; /* a 2-byte character where a byte cut would split it */
  cap_begin();
  polytel__diag(POLYTEL_LEVEL_WARN, "long: %s", big);
  char *got = strip_ts(cap_end());
  size_t n = strlen(got);
  assert_true(n > 2000 && n < 2100);
  assert_non_null(strstr(got, "\xe2\x80\xa6[truncated "));
  assert_int_equal(got[n - 1], '\n');
  assert_true(polytel__utf8_valid(got, n));
  free(got);
  free(big);
}

/* Echoed values: the first 64 bytes at a character boundary, then "…"; URLs without userinfo or query. */
static void test_show_helpers(void **state) {
  (void)state;
  char b[POLYTEL__SHOW_BUF];
  assert_string_equal(polytel__show(b, sizeof b, "short", 5), "short");
  char v[100];
  memset(v, 'a', sizeof v);
  v[63] = '\xc3', v[64] = '\xa9';
  const char *s = polytel__show(b, sizeof b, v, sizeof v);
  assert_int_equal(strlen(s), 63 + 3);
  assert_memory_equal(s + 63, "\xe2\x80\xa6", 3);
  assert_string_equal(polytel__show_url(b, sizeof b, "https://h:1/v1/logs?api_key=SECRET#frag"),
                      "https://h:1/v1/logs?\xe2\x80\xa6");
  assert_string_equal(polytel__show_url(b, sizeof b, "https://h:1/v1/logs#SECRET"),
                      "https://h:1/v1/logs#\xe2\x80\xa6");
  assert_string_equal(polytel__show_url(b, sizeof b, "http://user:SECRET@h:1/p"),
                      "http://\xe2\x80\xa6@h:1/p");
  assert_string_equal(polytel__show_url(b, sizeof b, "http://h:1/p"), "http://h:1/p");
  /* bad values too: no scheme, a misspelt one, percent-encoded userinfo */
  assert_string_equal(polytel__show_url(b, sizeof b, "user:SECRET@h:1"), "\xe2\x80\xa6@h:1");
  assert_string_equal(polytel__show_url(b, sizeof b, "htp://u%3ASECRET%40h/x"), "htp://\xe2\x80\xa6@h/x");
  assert_string_equal(polytel__show_url(b, sizeof b, "localhost:4318/v1/traces"), "localhost:4318/v1/traces");
  assert_string_equal(polytel__show_url(b, sizeof b, NULL), "");
  /* a path keeps its end (the file's name) */
  char path[120];
  snprintf(path, sizeof path, "/very/long/%090d/client.pem", 0);
  s = polytel__show_path(b, sizeof b, path);
  assert_int_equal(strlen(s), 3 + 64);
  assert_memory_equal(s, "\xe2\x80\xa6", 3);
  assert_string_equal(s + 3, path + strlen(path) - 64);
  assert_string_equal(polytel__show_path(b, sizeof b, "/etc/ca.pem"), "/etc/ca.pem");
  char longurl[200];
  snprintf(longurl, sizeof longurl, "http://h/%0150d?k=SECRET", 0);
  s = polytel__show_url(b, sizeof b, longurl);
  assert_null(strstr(s, "SECRET"));
  assert_int_equal(strlen(s), 64 + 3);
}

static void test_sanitize_function(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(polytel__sanitize(out, sizeof out, "a\nb\x1b\xc2\x9b\xff\\\"", 9, 0), 21);
  assert_string_equal(out, "a\\nb\\x1b\\u009b\\xff\\\\\"");
  assert_int_equal(polytel__sanitize(out, sizeof out, "a\nb\x1b\xc2\x9b\xff\\\"", 9, 1), 26);
  assert_string_equal(out, "a\\nb\\u001b\\u009b\\ufffd\\\\\\\"");
  /* never a partial escape; always NUL-terminated */
  assert_int_equal(polytel__sanitize(out, 4, "ab\n", 3, 0), 2);
  assert_string_equal(out, "ab");
  assert_int_equal(polytel__sanitize(out, 5, "ab\n", 3, 0), 4);
  assert_string_equal(out, "ab\\n");
  assert_int_equal(polytel__sanitize(out, 3, "\xe2\x9c\x93", 3, 0), 0);
  assert_string_equal(out, "");
  assert_int_equal(polytel__sanitize(out, 1, "abc", 3, 0), 0);
  assert_string_equal(out, "");
  assert_int_equal(polytel__sanitize(NULL, 0, "abc", 3, 0), 0);
  assert_int_equal(polytel__sanitize(out, sizeof out, NULL, 5, 0), 0);
  assert_string_equal(out, "");
  assert_true(polytel__utf8_valid("h\xc3\xa9", 3));
  assert_false(polytel__utf8_valid("\xc3", 1));
  assert_false(polytel__utf8_valid("\xed\xbf\xbf", 3));
  assert_true(polytel__utf8_valid("", 0));
}

static void test_threshold_and_off(void **state) {
  (void)state;
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_ERROR, 0);
  assert_false(polytel__console_enabled(POLYTEL_LEVEL_WARN));
  assert_true(polytel__console_enabled(POLYTEL_LEVEL_ERROR));
  cap_begin();
  emit_str(POLYTEL_LEVEL_WARN, "a", "hidden", NULL, 0);
  emit_str(POLYTEL_LEVEL_ERROR, "a", "shown", NULL, 0);
  polytel__diag(POLYTEL_LEVEL_WARN, "hidden diag %d", 1);
  polytel__diag(POLYTEL_LEVEL_ERROR, "shown diag %d", 2);
  char *got = strip_ts(cap_end());
  assert_string_equal(got, "ERROR a: shown\nERROR polytel: shown diag 2\n");
  free(got);

  /* level threshold OFF: nothing, not even FATAL */
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_OFF, 0);
  assert_false(polytel__console_enabled(POLYTEL_LEVEL_FATAL));
  /* destination off: nothing, diagnostics included, even with an fd override */
  polytel__console_configure(POLYTEL_CONSOLE_OFF, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_TRACE, 0);
  assert_false(polytel__console_enabled(POLYTEL_LEVEL_FATAL));
  cap_begin();
  emit_str(POLYTEL_LEVEL_FATAL, "a", "nothing", NULL, 0);
  polytel__diag(POLYTEL_LEVEL_FATAL, "nothing");
  got = cap_end();
  assert_string_equal(got, "");
  free(got);
}

static void test_diag(void **state) {
  (void)state;
  cap_begin();
  polytel__diag(POLYTEL_LEVEL_WARN, "value %s=\"%s\"", "X", "a\nb");
  polytel__diag(POLYTEL_LEVEL_DEBUG, "not shown at info");
  polytel__diag(POLYTEL_LEVEL_INFO, "%s", "notice");
  char *got = cap_end();
  /* diag lines carry the current time, in the same format */
  assert_int_equal(strlen(TS), (size_t)(strchr(got, ' ') - got));
  assert_int_equal(got[strlen(TS) - 1], 'Z');
  got = strip_ts(got);
  assert_string_equal(got, "WARN polytel: value X=\"a\\nb\"\nINFO polytel: notice\n");
  free(got);
}

static void test_truncation(void **state) {
  (void)state;
  size_t len = 20000;
  char *msg = malloc(len);
  memset(msg, 'a', len);
  char *got = line_of("t", msg, len, NULL, 0);
  char *want = malloc(len + 200);
  int k = snprintf(want, 200, TS " INFO t: ");
  memset(want + k, 'a', 16384);
  snprintf(want + k + 16384, 100, "\xe2\x80\xa6[truncated %zu bytes]\n", len - 16384);
  assert_string_equal(got, want);
  free(got);

  /* the cut never splits a UTF-8 character: 16383 'a' then "é" straddling the limit */
  msg[16383] = '\xc3', msg[16384] = '\xa9';
  got = line_of("t", msg, len, NULL, 0);
  memset(want + k, 'a', 16383);
  snprintf(want + k + 16383, 100, "\xe2\x80\xa6[truncated %zu bytes]\n", len - 16383);
  assert_string_equal(got, want);
  free(got);

  /* a long string value is cut the same way, inside its quotes; the line stays one line */
  memset(msg, 'b', len);
  polytel_attr_t a = {.key = "v", .type = POLYTEL_ATTR_STRING, .value = {.str = {msg, len}}};
  got = line_of("t", "m", 1, &a, 1);
  k = snprintf(want, 200, TS " INFO t: m v=\"");
  memset(want + k, 'b', 16384);
  snprintf(want + k + 16384, 100, "\xe2\x80\xa6[truncated %zu bytes]\"\n", len - 16384);
  assert_string_equal(got, want);
  free(got);

  /* 1 MiB of newlines: escaped, cut, still exactly one line */
  size_t big = 1 << 20;
  char *nls = malloc(big);
  memset(nls, '\n', big);
  got = line_of("t", nls, big, NULL, 0);
  assert_int_equal(strlen(got),
                   strlen(TS " INFO t: ") + 16384 * 2 + strlen("\xe2\x80\xa6[truncated 1032192 bytes]\n"));
  assert_ptr_equal(strchr(got, '\n'), got + strlen(got) - 1);
  assert_non_null(strstr(got, "\xe2\x80\xa6[truncated 1032192 bytes]\n"));
  free(got);
  free(nls);
  free(msg);
  free(want);
}

/* Many attributes: a line longer than the stack buffer is still one exact line. */
static void test_long_line_with_many_attributes(void **state) {
  (void)state;
  enum { N = 1200 };
  polytel_attr_t attrs[N];
  char keys[N][8];
  char *want = malloc(N * 16 + 100), *w = want;
  w += sprintf(w, TS " INFO t: m");
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    attrs[i] = POLYTEL_ATTR_INT(keys[i], i);
    w += sprintf(w, " k%d=%d", i, i);
  }
  sprintf(w, "\n");
  assert_true(strlen(want) > 8192);
  char *got = line_of("t", "m", 1, attrs, N);
  assert_string_equal(got, want);
  free(got);
  free(want);
}

/* One write(2) per line: over SOCK_SEQPACKET every write is one message. */
static void test_one_write_per_line(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  int sz = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  size_t len = 20000;
  char *msg = malloc(len);
  memset(msg, 'x', len);
  polytel__console_set_fd(sv[0]);
  polytel__console_emit(POLYTEL_LEVEL_INFO, T0, "t", 1, msg, len, NULL, 0);
  polytel__console_emit(POLYTEL_LEVEL_INFO, T0, "t", 1, "short", 5, NULL, 0);
  polytel__console_set_fd(-1);
  char *buf = malloc(1 << 16);
  ssize_t k1 = recv(sv[1], buf, 1 << 16, 0);
  assert_int_equal(
      k1, (ssize_t)(strlen(TS " INFO t: ") + 16384 + strlen("\xe2\x80\xa6[truncated 3616 bytes]\n")));
  assert_int_equal(buf[k1 - 1], '\n');
  ssize_t k2 = recv(sv[1], buf, 1 << 16, 0);
  buf[k2] = '\0';
  assert_string_equal(buf, TS " INFO t: short\n");
  close(sv[0]);
  close(sv[1]);
  free(buf);
  free(msg);
}

static void test_configure_clamps(void **state) {
  (void)state;
  /* out-of-range arguments fall back to sane values rather than corrupting the packed state */
  polytel__console_configure(99, 99, -5, 7);
  assert_true(polytel__console_enabled(POLYTEL_LEVEL_TRACE));
  cap_begin();
  emit_str(POLYTEL_LEVEL_TRACE, "a", "m", NULL, 0);
  char *got = cap_end();
  assert_string_equal(got, TS " \x1b[90mTRACE\x1b[0m a: m\n");
  free(got);
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, 1000, 0);
  assert_false(polytel__console_enabled(POLYTEL_LEVEL_FATAL));
}

/* Threads print while another reconfigures: every line is whole, in one of the two formats. */
enum { THREADS = 4, PER_THREAD = 200 };
static _Atomic int stop_flipping;

static void *emitter(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) emit_str(POLYTEL_LEVEL_INFO, "thr", "concurrent line", NULL, 0);
  return NULL;
}

static void *flipper(void *arg) {
  (void)arg;
  for (int i = 0; !stop_flipping; i++) {
    polytel__console_configure(POLYTEL_CONSOLE_STDERR,
                               i % 2 ? POLYTEL_CONSOLE_FORMAT_JSON : POLYTEL_CONSOLE_FORMAT_TEXT,
                               POLYTEL_LEVEL_INFO, i % 3 == 0);
  }
  return NULL;
}

static void test_concurrent_configure(void **state) {
  (void)state;
  cap_begin();
  pthread_t th[THREADS], fl;
  stop_flipping = 0;
  pthread_create(&fl, NULL, flipper, NULL);
  for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, emitter, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  stop_flipping = 1;
  pthread_join(fl, NULL);
  char *got = cap_end();
  static const char *const forms[] = {
      TS " INFO thr: concurrent line",
      TS " \x1b[32mINFO\x1b[0m thr: concurrent line",
      "{\"time\":\"" TS
      "\",\"level\":\"INFO\",\"target\":\"thr\",\"message\":\"concurrent line\",\"attributes\":{}}",
  };
  int lines = 0;
  for (char *save = NULL, *line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    int ok = 0;
    for (int f = 0; f < 3; f++) ok |= strcmp(line, forms[f]) == 0;
    if (!ok) print_error("unexpected line: %s\n", line);
    assert_true(ok);
    lines++;
  }
  assert_int_equal(lines, THREADS * PER_THREAD);
  free(got);
}

/* Array attributes print as arrays, strings quoted; long arrays show their first 64 elements and a count. */
static void test_array_attributes(void **state) {
  (void)state;
  polytel_str_t strs[] = {{"a b", 3}, {"q\"", 2}};
  int64_t ints[70];
  for (int i = 0; i < 70; i++) ints[i] = i;
  double dbls[] = {0.5, -2};
  int bools[] = {1, 0};
  polytel_attr_t attrs[] = {POLYTEL_ATTR_STRS("s", strs, 2), POLYTEL_ATTR_INTS("i", ints, 3),
                            POLYTEL_ATTR_DOUBLES("d", dbls, 2), POLYTEL_ATTR_BOOLS("b", bools, 2),
                            POLYTEL_ATTR_INTS("none", ints, 0)};
  char *got = line_of("t", "m", 1, attrs, 5);
  assert_string_equal(got,
                      TS " INFO t: m s=[\"a b\",\"q\\\"\"] i=[0,1,2] d=[0.5,-2] b=[true,false] none=[]\n");
  free(got);
  polytel_attr_t many = POLYTEL_ATTR_INTS("n", ints, 70);
  got = line_of("t", "m", 1, &many, 1);
  assert_non_null(strstr(got,
                         ",62,63,\xe2\x80\xa6"
                         "6 more]\n"));
  free(got);
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_JSON, POLYTEL_LEVEL_INFO, 0);
  got = line_of("t", "m", 1, attrs, 5);
  assert_non_null(strstr(got,
                         "\"attributes\":{\"s\":[\"a b\",\"q\\\"\"],\"i\":[0,1,2],\"d\":[0.5,-2],"
                         "\"b\":[true,false],\"none\":[]}}\n"));
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_before_configure),
      cmocka_unit_test_setup(test_stdout_destination, reset),
      cmocka_unit_test_setup(test_text_line, reset),
      cmocka_unit_test_setup(test_text_levels_and_no_target, reset),
      cmocka_unit_test_setup(test_level_names, reset),
      cmocka_unit_test_setup(test_colour, reset),
      cmocka_unit_test_setup(test_json_line, reset),
      cmocka_unit_test_setup(test_sanitize_text, reset),
      cmocka_unit_test_setup(test_sanitize_function, reset),
      cmocka_unit_test_setup(test_bidi_and_invisible_escaped, reset),
      cmocka_unit_test_setup(test_diag_cut_is_visible, reset),
      cmocka_unit_test_setup(test_show_helpers, reset),
      cmocka_unit_test_setup(test_threshold_and_off, reset),
      cmocka_unit_test_setup(test_diag, reset),
      cmocka_unit_test_setup(test_truncation, reset),
      cmocka_unit_test_setup(test_long_line_with_many_attributes, reset),
      cmocka_unit_test_setup(test_one_write_per_line, reset),
      cmocka_unit_test_setup(test_configure_clamps, reset),
      cmocka_unit_test_setup(test_concurrent_configure, reset),
      cmocka_unit_test_setup(test_array_attributes, reset),
  };
  return cmocka_run_group_tests_name("console", tests, NULL, NULL);
}
