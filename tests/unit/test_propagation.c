/* test_propagation.c — traceparent, tracestate and baggage against the W3C specs' examples and test suites;
 * OTEL_PROPAGATORS and sampler settings (exact warnings); the ratio decision against the OTel Python SDK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polytel.h"
#include "common/propagation.h"
#include "sampling_vectors.h"

#define TP_EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_W3C_TEST "00-12345678901234567890123456789012-1234567890123456-01"

static void hex_to(const char *hex, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static void assert_bytes(const uint8_t *got, const char *hex, size_t n) {
  uint8_t want[16];
  hex_to(hex, want, n);
  assert_memory_equal(got, want, n);
}

/* ------------------------------------------------------------ traceparent */

static void test_traceparent_spec_examples(void **state) {
  (void)state;
  polytel_span_ctx_t c;
  memset(&c, 0xaa, sizeof c);
  assert_int_equal(polytel_traceparent_parse(TP_EXAMPLE, &c), 0);
  assert_bytes(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 16);
  assert_bytes(c.span_id, "00f067aa0ba902b7", 8);
  assert_bytes(c.parent_id, "0000000000000000", 8);
  assert_int_equal(c.start_ns, 0);
  assert_int_equal(c.trace_flags, POLYTEL_TRACE_FLAG_SAMPLED);
  char buf[POLYTEL_TRACEPARENT_LEN + 1];
  assert_int_equal(polytel_traceparent_format(&c, buf, sizeof buf), 0);
  assert_string_equal(buf, TP_EXAMPLE);

  assert_int_equal(polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c),
                   0);
  assert_int_equal(c.trace_flags, 0);
  assert_int_equal(polytel_traceparent_format(&c, buf, sizeof buf), 0);
  assert_string_equal(buf, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

static void expect_invalid(const char *header) {
  polytel_span_ctx_t c;
  memset(&c, 0xaa, sizeof c);
  int rc = polytel_traceparent_parse(header, &c);
  if (rc != POLYTEL_EINVAL) fail_msg("accepted traceparent \"%s\"", header ? header : "(null)");
  polytel_span_ctx_t zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(&c, &zero, sizeof c); /* a failed parse leaves a new-trace context, never garbage */
}

static void expect_valid(const char *header, const char *trace_hex, uint8_t flags) {
  polytel_span_ctx_t c;
  if (polytel_traceparent_parse(header, &c) != 0) fail_msg("rejected traceparent \"%s\"", header);
  assert_bytes(c.trace_id, trace_hex, 16);
  assert_int_equal(c.trace_flags, flags);
}

/* The cases of the W3C trace-context test suite (test/test.py), one by one. */
static void test_traceparent_w3c_suite(void **state) {
  (void)state;
  const char *id = "12345678901234567890123456789012";
  expect_invalid("00-12345678901234567890123456789012-1234567890123456-01.");
  expect_invalid("00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like");
  expect_valid("cc-12345678901234567890123456789012-1234567890123456-01", id, 1);
  expect_valid("cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like", id, 1);
  expect_invalid("cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like");
  expect_invalid("ff-12345678901234567890123456789012-1234567890123456-01");
  expect_invalid(".0-12345678901234567890123456789012-1234567890123456-01");
  expect_invalid("0.-12345678901234567890123456789012-1234567890123456-01");
  expect_invalid("000-12345678901234567890123456789012-1234567890123456-01");
  expect_invalid("0000-12345678901234567890123456789012-1234567890123456-01");
  expect_invalid("0-12345678901234567890123456789012-1234567890123456-01");
  expect_invalid("00-00000000000000000000000000000000-1234567890123456-01");
  expect_invalid("00-.2345678901234567890123456789012-1234567890123456-01");
  expect_invalid("00-1234567890123456789012345678901.-1234567890123456-01");
  expect_invalid("00-123456789012345678901234567890123-1234567890123456-01");
  expect_invalid("00-1234567890123456789012345678901-1234567890123456-01");
  expect_invalid("00-12345678901234567890123456789012-0000000000000000-01");
  expect_invalid("00-12345678901234567890123456789012-.234567890123456-01");
  expect_invalid("00-12345678901234567890123456789012-123456789012345.-01");
  expect_invalid("00-12345678901234567890123456789012-12345678901234567-01");
  expect_invalid("00-12345678901234567890123456789012-123456789012345-01");
  expect_invalid("00-12345678901234567890123456789012-1234567890123456-.0");
  expect_invalid("00-12345678901234567890123456789012-1234567890123456-0.");
  expect_invalid("00-12345678901234567890123456789012-1234567890123456-001");
  expect_invalid("00-12345678901234567890123456789012-1234567890123456-1");
  /* OWS around the value */
  expect_valid(" " TP_W3C_TEST, id, 1);
  expect_valid("\t" TP_W3C_TEST, id, 1);
  expect_valid(TP_W3C_TEST " ", id, 1);
  expect_valid(TP_W3C_TEST "\t", id, 1);
  expect_valid("\t " TP_W3C_TEST " \t", id, 1);
  expect_invalid("\n" TP_W3C_TEST); /* only SP and HTAB are optional whitespace */
  expect_invalid(" 0 0-12345678901234567890123456789012-1234567890123456-01");
}

static void test_traceparent_malformed(void **state) {
  (void)state;
  expect_invalid(NULL);
  expect_invalid("");
  expect_invalid("   ");
  expect_invalid("00");
  /* uppercase hex anywhere: HEXDIGLC only */
  expect_invalid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01");
  expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01");
  expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A");
  expect_invalid("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01");
  expect_invalid("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01");
  expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01");
  expect_invalid("00-00000000000000000000000000000000-0000000000000000-01");
  expect_invalid("fe-12345678901234567890123456789012-1234567890123456"); /* a later version is not shorter */
  expect_invalid("cc-12345678901234567890123456789012-1234567890123456-01x");
  /* an embedded NUL ends the C string: too short */
  expect_invalid("00-12345678901234567890123456789012-1234567890123456\0-01");
  const char nul[] = "00-12345678901234567890123456789012-1234567890123456-0\0";
  polytel_span_ctx_t c;
  assert_int_equal(polytel__traceparent_parse_n(nul, sizeof nul - 1, &c), POLYTEL_EINVAL);
  assert_int_equal(polytel_traceparent_parse(TP_EXAMPLE, NULL), POLYTEL_EINVAL);
  /* the _n form reads exactly n bytes */
  assert_int_equal(polytel__traceparent_parse_n(TP_EXAMPLE "garbage", POLYTEL_TRACEPARENT_LEN, &c), 0);
  assert_int_equal(polytel__traceparent_parse_n(TP_EXAMPLE, POLYTEL_TRACEPARENT_LEN - 1, &c), POLYTEL_EINVAL);
}

static void test_traceparent_flags(void **state) {
  (void)state;
  polytel_span_ctx_t c;
  char buf[64];
  /* Every flag value parses; only the known ones (sampled, random) travel on. */
  assert_int_equal(polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", &c),
                   0);
  assert_int_equal(c.trace_flags, POLYTEL_TRACE_FLAG_SAMPLED | POLYTEL_TRACE_FLAG_RANDOM);
  assert_int_equal(polytel_traceparent_format(&c, buf, sizeof buf), 0);
  assert_string_equal(buf, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
  assert_int_equal(polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", &c),
                   0);
  assert_int_equal(c.trace_flags, POLYTEL_TRACE_FLAG_RANDOM);
  assert_int_equal(polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fc", &c),
                   0);
  assert_int_equal(c.trace_flags, 0);
  /* a later version is written back as 00 */
  assert_int_equal(
      polytel_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-xyz", &c), 0);
  assert_int_equal(polytel_traceparent_format(&c, buf, sizeof buf), 0);
  assert_string_equal(buf, TP_EXAMPLE);
  c.trace_flags = 0xf1; /* set by hand: unknown bits are not sent */
  assert_int_equal(polytel_traceparent_format(&c, buf, sizeof buf), 0);
  assert_string_equal(buf, TP_EXAMPLE);
}

static void test_traceparent_format_errors(void **state) {
  (void)state;
  polytel_span_ctx_t c;
  assert_int_equal(polytel_traceparent_parse(TP_EXAMPLE, &c), 0);
  char buf[64];
  memset(buf, 'x', sizeof buf);
  assert_int_equal(polytel_traceparent_format(&c, buf, POLYTEL_TRACEPARENT_LEN), POLYTEL_EINVAL);
  assert_int_equal(buf[0], '\0');
  assert_int_equal(buf[1], 'x'); /* nothing written past what was allowed */
  assert_int_equal(polytel_traceparent_format(&c, buf, POLYTEL_TRACEPARENT_LEN + 1), 0);
  assert_int_equal(strlen(buf), POLYTEL_TRACEPARENT_LEN);
  assert_int_equal(buf[POLYTEL_TRACEPARENT_LEN + 1], 'x');
  assert_int_equal(polytel_traceparent_format(NULL, buf, sizeof buf), POLYTEL_EINVAL);
  assert_string_equal(buf, "");
  assert_int_equal(polytel_traceparent_format(&c, NULL, sizeof buf), POLYTEL_EINVAL);
  assert_int_equal(polytel_traceparent_format(&c, buf, 0), POLYTEL_EINVAL);
  polytel_span_ctx_t z = c;
  memset(z.trace_id, 0, 16);
  assert_int_equal(polytel_traceparent_format(&z, buf, sizeof buf), POLYTEL_EINVAL);
  z = c;
  memset(z.span_id, 0, 8);
  assert_int_equal(polytel_traceparent_format(&z, buf, sizeof buf), POLYTEL_EINVAL);
}

/* polytel_span_start: a root is flagged sampled (everything is recorded until a sampler is wired), a child
 * carries its parent's flags, so an unsampled remote parent stays unsampled downstream. */
static void test_span_start_flags(void **state) {
  (void)state;
  polytel_span_ctx_t root, child, remote, grandchild;
  assert_int_equal(polytel_span_start(NULL, &root), 0);
  assert_int_equal(root.trace_flags, POLYTEL_TRACE_FLAG_SAMPLED);
  assert_int_equal(polytel_span_start(&root, &child), 0);
  assert_int_equal(child.trace_flags, POLYTEL_TRACE_FLAG_SAMPLED);
  assert_int_equal(
      polytel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", &remote), 0);
  assert_int_equal(polytel_span_start(&remote, &child), 0);
  assert_memory_equal(child.trace_id, remote.trace_id, 16);
  assert_memory_equal(child.parent_id, remote.span_id, 8);
  assert_int_equal(child.trace_flags, POLYTEL_TRACE_FLAG_RANDOM);
  assert_int_equal(polytel_span_start(&child, &grandchild), 0);
  assert_int_equal(grandchild.trace_flags, POLYTEL_TRACE_FLAG_RANDOM);
  char buf[64];
  assert_int_equal(polytel_traceparent_format(&grandchild, buf, sizeof buf), 0);
  assert_memory_equal(buf, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
  assert_string_equal(buf + 52, "-02");
}

/* ------------------------------------------------------------- tracestate */

static int norm(const char *in, char *out, size_t cap) {
  return polytel__tracestate_normalize(in, out, cap);
}

static void expect_ts(const char *in, const char *want) {
  char out[600];
  int n = norm(in, out, sizeof out);
  if (n < 0) fail_msg("discarded tracestate \"%s\"", in);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
  assert_int_equal(polytel_tracestate_valid(in), 1);
}

static void expect_ts_discarded(const char *in) {
  char out[600];
  memset(out, 'x', sizeof out);
  int n = norm(in, out, sizeof out);
  if (n != -1) fail_msg("kept tracestate \"%s\" as \"%s\"", in, out);
  assert_string_equal(out, "");
  assert_int_equal(polytel_tracestate_valid(in), 0);
}

static char *repeat(char *p, char c, size_t n) {
  memset(p, c, n);
  return p + n;
}

static void test_tracestate_spec_examples(void **state) {
  (void)state;
  expect_ts("congo=t61rcWkgMzE", "congo=t61rcWkgMzE");
  expect_ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  expect_ts("vendorname1=opaqueValue1,vendorname2=opaqueValue2",
            "vendorname1=opaqueValue1,vendorname2=opaqueValue2");
  expect_ts("fw529a3039@dt=abc", "fw529a3039@dt=abc");
  /* several header fields, joined by the caller: order kept */
  expect_ts("foo=1,bar=2,rojo=1,congo=2,baz=3", "foo=1,bar=2,rojo=1,congo=2,baz=3");
  /* OWS (the W3C suite's cases) */
  expect_ts("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3");
  expect_ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3");
  expect_ts(" foo=1", "foo=1");
  expect_ts("\tfoo=1", "foo=1");
  expect_ts("foo=1 ", "foo=1");
  expect_ts("foo=1\t", "foo=1");
  expect_ts("\t foo=1 \t", "foo=1");
  /* empty and blank members are allowed, and dropped */
  expect_ts("", "");
  expect_ts(" , ,\t,", "");
  expect_ts("foo=1,", "foo=1");
  expect_ts(",foo=1,,bar=2", "foo=1,bar=2");
  /* leading spaces of a value are part of it */
  expect_ts("foo= 1", "foo= 1");
}

static void test_tracestate_all_allowed_characters(void **state) {
  (void)state;
  char key[64], in[400], want[400], value[128];
  char *k = key;
  for (char c = 'a'; c <= 'z'; c++) *k++ = c;
  k = stpcpy(k, "0123456789_-*/");
  *k = '\0';
  char *v = value;
  for (int c = 0x20; c <= 0x7e; c++) {
    if (c != ',' && c != '=') *v++ = (char)c;
  }
  *v = '\0';
  snprintf(in, sizeof in, "%s=%s", key, value);
  expect_ts(in, in);
  snprintf(in, sizeof in, "%s@a-z0-9_-*/=%s", key, value);
  expect_ts(in, in);
  snprintf(in, sizeof in, " %s=%s \t", key, value);
  snprintf(want, sizeof want, "%s=%s", key, value);
  expect_ts(in, want);
}

static void test_tracestate_keys(void **state) {
  (void)state;
  expect_ts_discarded("foo =1");
  expect_ts_discarded("FOO=1");
  expect_ts_discarded("foo.bar=1");
  expect_ts_discarded("1foo=1"); /* a simple key starts with a letter */
  expect_ts("1tenant@sys=1", "1tenant@sys=1");
  expect_ts_discarded("foo@=1,bar=2"); /* level 1: one '@', between a tenant and a system */
  expect_ts_discarded("@foo=1,bar=2");
  expect_ts_discarded("foo@@bar=1,bar=2");
  expect_ts_discarded("foo@bar@baz=1,bar=2");
  expect_ts_discarded("foo@1bar=1"); /* a system id starts with a letter */
  expect_ts_discarded("=1");
  expect_ts_discarded("foo");
  expect_ts_discarded("foo=1,bar");

  char in[600], *p;
  p = repeat(in, 'z', 256);
  strcpy(p, "=1");
  expect_ts(in, in);
  p = repeat(in, 'z', 257);
  strcpy(p, "=1");
  expect_ts_discarded(in);
  p = repeat(in, 't', 241);
  *p++ = '@';
  p = repeat(p, 'v', 14);
  strcpy(p, "=1");
  expect_ts(in, in);
  p = repeat(in, 't', 242);
  strcpy(p, "@v=1");
  expect_ts_discarded(in);
  p = stpcpy(in, "t@");
  p = repeat(p, 'v', 15);
  strcpy(p, "=1");
  expect_ts_discarded(in);
}

static void test_tracestate_values(void **state) {
  (void)state;
  expect_ts_discarded("foo=");
  expect_ts_discarded("foo= ");
  expect_ts_discarded("foo=a=b");
  expect_ts_discarded("foo=a\tb");
  expect_ts_discarded("foo=a\x7f");
  expect_ts_discarded("foo=\xc3\xa9");
  expect_ts_discarded("bar=2,foo=a\nb");
  char in[600], *p;
  p = stpcpy(in, "k=");
  p = repeat(p, 'v', 256);
  *p = '\0';
  expect_ts(in, in);
  p = stpcpy(in, "k=");
  p = repeat(p, 'v', 257);
  *p = '\0';
  expect_ts_discarded(in);
}

static char *members(char *p, int from, int to) {
  for (int i = from; i <= to; i++) p += sprintf(p, "%sbar%02d=%02d", i == from ? "" : ",", i, i);
  return p;
}

static void test_tracestate_member_limit(void **state) {
  (void)state;
  char in[800], out[800];
  members(in, 1, 32);
  expect_ts(in, in);
  char *p = members(in, 1, 10);
  p = stpcpy(p, ", ,");
  members(p, 11, 32); /* empty members do not count */
  members(out, 1, 32);
  expect_ts(in, out);
  members(in, 1, 33);
  expect_ts_discarded(in);
  expect_ts_discarded("foo=1,foo=1");
  expect_ts_discarded("foo=1,foo=2");
  expect_ts_discarded("foo=1,bar=2,foo=3");
  expect_ts("foo=1,foo@x=2", "foo=1,foo@x=2");
}

static void test_tracestate_truncation(void **state) {
  (void)state;
  char in[2000], out[600], want[600], *p = in;
  /* 20 members of 35 characters: 719 in all; whole members go from the end until 512 fit. */
  for (int i = 0; i < 20; i++) p += sprintf(p, "%skey%02d=%029d", i ? "," : "", i, i);
  int n = norm(in, out, sizeof out);
  assert_int_equal(n, 14 * 35 + 13);
  memcpy(want, in, (size_t)n);
  want[n] = '\0';
  assert_string_equal(out, want);
  assert_int_equal(polytel_tracestate_valid(in), 1);

  /* Members over 128 characters go first (the last of them first), then from the end. */
  char big1[260], big2[260];
  p = stpcpy(big1, "big1=");
  p = repeat(p, 'a', 245);
  *p = '\0';
  p = stpcpy(big2, "big2=");
  p = repeat(p, 'b', 245);
  *p = '\0';
  snprintf(in, sizeof in, "s1=1,%s,s2=2,%s,s3=3", big1, big2);
  assert_true(strlen(in) > 512);
  n = norm(in, out, sizeof out);
  snprintf(want, sizeof want, "s1=1,%s,s2=2,s3=3", big1);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
  /* A small buffer is one more limit, with the same rule. */
  assert_int_equal(norm("aaa=1,bbb=2,ccc=3,ddd=4,eee=5", out, 20), 17);
  assert_string_equal(out, "aaa=1,bbb=2,ccc=3");
  assert_int_equal(norm("aaa=1", out, 1), 0);
  assert_string_equal(out, "");
  assert_int_equal(norm("aaa=1", out, 5), 0);
  assert_int_equal(norm("aaa=1", out, 6), 5);
  /* invalid stays invalid whatever the room */
  assert_int_equal(norm("aaa=1,BAD=2", out, 6), -1);
}

static void test_tracestate_api_edges(void **state) {
  (void)state;
  char out[16];
  assert_int_equal(norm(NULL, out, sizeof out), -1);
  assert_int_equal(norm("a=1", NULL, 16), -1);
  assert_int_equal(norm("a=1", out, 0), -1);
  assert_int_equal(polytel_tracestate_valid(NULL), 0);
  assert_int_equal(polytel_tracestate_valid(""), 1);
  const char bytes[] = {'a', '=', '1', '\0', ',', 'b', '=', '2'};
  assert_int_equal(polytel__tracestate_normalize_n(bytes, sizeof bytes, out, sizeof out), -1);
  assert_int_equal(polytel__tracestate_normalize_n(bytes, 3, out, sizeof out), 3);
  assert_string_equal(out, "a=1");
}

/* ---------------------------------------------------------------- baggage */

static char store[POLYTEL__BAGGAGE_STORE_MIN];

static polytel__baggage_t *bag_new(void) {
  static polytel__baggage_t b;
  polytel__baggage_init(&b, store, sizeof store);
  return &b;
}

static int bag_parse(polytel__baggage_t *b, const char *s) {
  return polytel__baggage_parse(b, s, strlen(s));
}

static void assert_entry(const polytel__baggage_t *b, uint32_t i, const char *key, const char *value,
                         const char *props) {
  assert_true(i < b->n);
  assert_string_equal(b->e[i].key, key);
  assert_int_equal(b->e[i].key_len, strlen(key));
  assert_string_equal(b->e[i].value, value);
  assert_int_equal(b->e[i].value_len, strlen(value));
  assert_string_equal(b->e[i].props, props);
  assert_int_equal(b->e[i].props_len, strlen(props));
}

static void assert_format(const polytel__baggage_t *b, const char *want) {
  static char out[POLYTEL__BAGGAGE_MAX_BYTES + 64];
  int n = polytel__baggage_format(b, out, sizeof out);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
}

static void test_baggage_spec_examples(void **state) {
  (void)state;
  polytel__baggage_t *b = bag_new();
  assert_int_equal(
      bag_parse(b, "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"),
      3);
  assert_int_equal(b->n, 3);
  assert_int_equal(b->skipped, 0);
  assert_entry(b, 0, "key1", "value1", ";property1;property2");
  assert_entry(b, 1, "key2", "value2", "");
  assert_entry(b, 2, "key3", "value3", ";propertyKey=propertyValue");
  assert_format(b, "key1=value1;property1;property2,key2=value2,key3=value3;propertyKey=propertyValue");

  b = bag_new();
  assert_int_equal(bag_parse(b, "userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false"), 3);
  assert_entry(b, 0, "userId", "Am\xc3\xa9lie", "");
  assert_entry(b, 1, "serverNode", "DF 28", "");
  assert_entry(b, 2, "isProduction", "false", "");
  assert_format(b, "userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false");

  /* split over two headers, with whitespace around names and values */
  b = bag_new();
  assert_int_equal(bag_parse(b, "userId =   alice"), 1);
  assert_int_equal(bag_parse(b, "serverNode = DF%2028, isProduction = false"), 2);
  assert_entry(b, 0, "userId", "alice", "");
  assert_entry(b, 1, "serverNode", "DF 28", "");
  assert_entry(b, 2, "isProduction", "false", "");
  assert_format(b, "userId=alice,serverNode=DF%2028,isProduction=false");
}

static void test_baggage_values(void **state) {
  (void)state;
  polytel__baggage_t *b = bag_new();
  assert_int_equal(bag_parse(b, "plus=a+b,eq=a=b==,pct=100%25,empty=,lower=%c3%a9,nul=a%00b"), 6);
  assert_entry(b, 0, "plus", "a+b", ""); /* '+' is a baggage-octet, not a space */
  assert_entry(b, 1, "eq", "a=b==", "");
  assert_entry(b, 2, "pct", "100%", "");
  assert_entry(b, 3, "empty", "", "");
  assert_entry(b, 4, "lower", "\xc3\xa9", "");
  assert_int_equal(b->e[5].value_len, 3);
  assert_memory_equal(b->e[5].value, "a\0b", 4);
  assert_format(b, "plus=a+b,eq=a=b==,pct=100%25,empty=,lower=%C3%A9,nul=a%00b");
}

/* Decoded sequences that are not UTF-8 become U+FFFD, one per maximal ill-formed subpart (Python's
 * bytes.decode('utf-8', 'replace') gives the same). */
static void test_baggage_invalid_utf8(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"%FF", "\xef\xbf\xbd"},
      {"%E2%82", "\xef\xbf\xbd"},
      {"%E2%82%AC", "\xe2\x82\xac"},
      {"%ED%A0%80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"%C0%AF", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"%F4%90%80%80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"%F0%9F%98", "\xef\xbf\xbd"},
      {"%F0%9F%98%80", "\xf0\x9f\x98\x80"},
      {"a%E2b",
       "a\xef\xbf\xbd"
       "b"},
      {"%80x%BF", "\xef\xbf\xbdx\xef\xbf\xbd"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    polytel__baggage_t *b = bag_new();
    char in[64];
    snprintf(in, sizeof in, "k=%s", cases[i].in);
    assert_int_equal(bag_parse(b, in), 1);
    assert_string_equal(b->e[0].value, cases[i].want);
  }
}

static void test_baggage_malformed_skipped(void **state) {
  (void)state;
  polytel__baggage_t *b = bag_new();
  int n = bag_parse(b,
                    "a=1,novalue,=x,bad key=1,k=va lue,k=a\"b,k=a\\b,k=%zz,k=%4,k=v;,k=v;=x,k=v;p q,"
                    "k=v;p=a b,k\xc3\xa9=1,b=2, ,,c=3;p;q=%41");
  assert_int_equal(n, 3);
  assert_int_equal(b->n, 3);
  assert_int_equal(b->skipped, 13);
  assert_entry(b, 0, "a", "1", "");
  assert_entry(b, 1, "b", "2", "");
  assert_entry(b, 2, "c", "3", ";p;q=%41"); /* property values travel as received */
  assert_format(b, "a=1,b=2,c=3;p;q=%41");
  assert_int_equal(polytel__baggage_parse(NULL, "a=1", 3), POLYTEL_EINVAL);
  assert_int_equal(polytel__baggage_parse(b, NULL, 5), 0);
}

static void test_baggage_duplicates(void **state) {
  (void)state;
  polytel__baggage_t *b = bag_new();
  assert_int_equal(bag_parse(b, "a=1;p,b=2,a=3"), 3);
  assert_int_equal(b->n, 2);
  assert_entry(b, 0, "a", "3", ""); /* last wins, first position */
  assert_entry(b, 1, "b", "2", "");
  assert_format(b, "a=3,b=2");
  assert_int_equal(b->taken, 3);
}

static void test_baggage_limits(void **state) {
  (void)state;
  static char in[20000];
  char *p = in;
  polytel__baggage_t *b = bag_new();
  for (int i = 0; i < 181; i++) p += sprintf(p, "%sk%03d=%d", i ? "," : "", i, i);
  assert_int_equal(bag_parse(b, in), 180);
  assert_int_equal(b->n, 180);
  assert_int_equal(b->skipped, 1);
  assert_string_equal(b->e[179].key, "k179");
  assert_int_equal(bag_parse(b, "more=1"), 0); /* the limit covers every header together */
  assert_int_equal(b->skipped, 2);

  /* 4096 bytes per member */
  b = bag_new();
  p = stpcpy(in, "big=");
  p = repeat(p, 'v', 4096 - 4);
  p = stpcpy(p, ",big2=");
  p = repeat(p, 'v', 4096 - 5 + 1);
  strcpy(p, ",small=1");
  assert_int_equal(bag_parse(b, in), 2);
  assert_int_equal(b->skipped, 1);
  assert_int_equal(b->e[0].value_len, 4092);
  assert_string_equal(b->e[1].key, "small");

  /* 8192 bytes in all: a member that does not fit is dropped, a later one that does is kept */
  b = bag_new();
  p = in;
  for (int i = 0; i < 3; i++) {
    p += sprintf(p, "%sm%d=", i ? "," : "", i);
    p = repeat(p, 'v', 3997);
  }
  strcpy(p, ",last=1");
  assert_int_equal(bag_parse(b, in), 3);
  assert_int_equal(b->n, 3);
  assert_string_equal(b->e[2].key, "last");
  assert_int_equal(b->bytes, 4000 + 1 + 4000 + 1 + 6);
  static char out[POLYTEL__BAGGAGE_MAX_BYTES + 64];
  assert_int_equal(polytel__baggage_format(b, out, sizeof out), 8008);

  /* storage: a full header always fits in POLYTEL__BAGGAGE_STORE_MIN; a smaller store skips members */
  char small[16];
  polytel__baggage_t tiny;
  polytel__baggage_init(&tiny, small, sizeof small);
  assert_int_equal(polytel__baggage_parse(&tiny, "a=1,bbbbbb=222222,c=3", 21), 2);
  assert_int_equal(tiny.skipped, 1);
  assert_entry(&tiny, 1, "c", "3", "");
}

static void test_baggage_set_get_remove(void **state) {
  (void)state;
  polytel__baggage_t *b = bag_new();
  assert_int_equal(bag_parse(b, "a=1;p=x,b=2"), 2);
  const char *odd = "new value, \"quoted\"; 100% \\ \xc3\xa9";
  assert_int_equal(polytel__baggage_set(b, "a", 1, odd, strlen(odd)), 0);
  assert_entry(b, 0, "a", "new value, \"quoted\"; 100% \\ \xc3\xa9", "");
  assert_int_equal(polytel__baggage_set(b, "c", 1, "", 0), 0);
  assert_int_equal(polytel__baggage_set(b, "user.id", 7, "7", 1), 0);
  assert_format(b, "a=new%20value%2C%20%22quoted%22%3B%20100%25%20%5C%20%C3%A9,b=2,c=,user.id=7");
  const polytel__baggage_entry_t *e = polytel__baggage_get(b, "user.id", 7);
  assert_non_null(e);
  assert_string_equal(e->value, "7");
  assert_null(polytel__baggage_get(b, "user", 4));
  assert_null(polytel__baggage_get(b, "A", 1)); /* keys are case-sensitive */
  assert_int_equal(polytel__baggage_remove(b, "b", 1), 1);
  assert_int_equal(polytel__baggage_remove(b, "b", 1), 0);
  assert_int_equal(b->n, 3);
  assert_string_equal(b->e[1].key, "c");
  assert_int_equal(polytel__baggage_set(b, "bad key", 7, "x", 1), POLYTEL_EINVAL);
  assert_int_equal(polytel__baggage_set(b, "", 0, "x", 1), POLYTEL_EINVAL);
  assert_int_equal(polytel__baggage_set(b, "k", 1, NULL, 1), POLYTEL_EINVAL);
  assert_int_equal(polytel__baggage_set(b, "k", 1, NULL, 0), 0);
  static char longv[POLYTEL__BAGGAGE_MAX_MEMBER_BYTES + 1];
  memset(longv, 'v', sizeof longv);
  assert_int_equal(polytel__baggage_set(b, "k", 1, longv, sizeof longv), POLYTEL_EINVAL);

  /* round trip: what format writes, parse reads back the same */
  polytel__baggage_t *c = &(polytel__baggage_t){0};
  static char store2[POLYTEL__BAGGAGE_STORE_MIN], out[POLYTEL__BAGGAGE_MAX_BYTES + 1];
  polytel__baggage_init(c, store2, sizeof store2);
  int n = polytel__baggage_format(b, out, sizeof out);
  assert_int_equal(polytel__baggage_parse(c, out, (size_t)n), (int)b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    assert_string_equal(c->e[i].key, b->e[i].key);
    assert_int_equal(c->e[i].value_len, b->e[i].value_len);
    assert_memory_equal(c->e[i].value, b->e[i].value, b->e[i].value_len);
  }

  /* no room */
  char small[8];
  polytel__baggage_t tiny;
  polytel__baggage_init(&tiny, small, sizeof small);
  assert_int_equal(polytel__baggage_set(&tiny, "ab", 2, "cd", 2), 0);
  assert_int_equal(polytel__baggage_set(&tiny, "ef", 2, "gh", 2), POLYTEL_ENOMEM);
  b = bag_new();
  for (int i = 0; i < POLYTEL__BAGGAGE_MAX_MEMBERS; i++) {
    char k[8];
    snprintf(k, sizeof k, "k%d", i);
    assert_int_equal(polytel__baggage_set(b, k, strlen(k), "v", 1), 0);
  }
  assert_int_equal(polytel__baggage_set(b, "one", 3, "v", 1), POLYTEL_ENOMEM);
  assert_int_equal(polytel__baggage_set(b, "k0", 2, "w", 1), 0); /* replacing needs no new entry */
}

/* The public codec (polytel_baggage_*): what a C program and the Ruby binding call. */
typedef struct {
  char got[8][64];
  int n, stop_after;
} bag_seen_t;

static int bag_collect(void *arg, const polytel_baggage_entry_t *e) {
  bag_seen_t *s = arg;
  assert_int_equal(e->value[e->value_len], '\0');
  snprintf(s->got[s->n++], sizeof s->got[0], "%.*s=%.*s", (int)e->key_len, e->key, (int)e->value_len,
           e->value);
  return s->stop_after && s->n == s->stop_after;
}

static void test_baggage_public_api(void **state) {
  (void)state;
  char out[128];
  polytel_baggage_entry_t in[] = {
      {"tenant", 6, "acme", 4}, {"user.name", 9, "Zoë Ü", strlen("Zoë Ü")}, {"tenant", 6, "acme 2", 6}};
  int len = polytel_baggage_format(in, 3, out, sizeof out);
  assert_int_equal(len, (int)strlen(out));
  assert_string_equal(out, "tenant=acme%202,user.name=Zo%C3%AB%20%C3%9C"); /* first place, last value */
  assert_int_equal(polytel_baggage_format(in, 0, out, sizeof out), 0);
  assert_string_equal(out, "");
  polytel_baggage_entry_t bad[] = {{"tenant", 6, "acme", 4}, {"bad key", 7, "x", 1}};
  strcpy(out, "junk");
  assert_int_equal(polytel_baggage_format(bad, 2, out, sizeof out), POLYTEL_EINVAL);
  assert_string_equal(out, "");
  polytel_baggage_entry_t nullv = {"k", 1, NULL, 1};
  assert_int_equal(polytel_baggage_format(&nullv, 1, out, sizeof out), POLYTEL_EINVAL);
  assert_int_equal(polytel_baggage_format(NULL, 1, out, sizeof out), POLYTEL_EINVAL);
  assert_int_equal(polytel_baggage_format(in, 1, NULL, 8), POLYTEL_EINVAL);
  assert_int_equal(polytel_baggage_format(in, 1, out, 0), POLYTEL_EINVAL);
  assert_int_equal(polytel_baggage_format(in, 181, out, sizeof out), POLYTEL_EINVAL);
  /* too small a buffer leaves the member out whole */
  assert_int_equal(polytel_baggage_format(in, 1, out, 8), 0);
  assert_string_equal(out, "");

  assert_int_equal(polytel_baggage_key_valid("user.id", 7), 1);
  assert_int_equal(polytel_baggage_key_valid("a b", 3), 0);
  assert_int_equal(polytel_baggage_key_valid("", 0), 0);
  assert_int_equal(polytel_baggage_key_valid(NULL, 3), 0);

  const char *hdr = "tenant=acme%202, bad member ,user.name=Zo%C3%AB;prop=1,tenant=last,=x";
  bag_seen_t seen = {0};
  assert_int_equal(polytel_baggage_parse(hdr, strlen(hdr), bag_collect, &seen), 2);
  assert_int_equal(seen.n, 2);
  assert_string_equal(seen.got[0], "tenant=last");
  assert_string_equal(seen.got[1], "user.name=Zoë");
  bag_seen_t first = {.stop_after = 1};
  assert_int_equal(polytel_baggage_parse(hdr, strlen(hdr), bag_collect, &first), 1);
  assert_int_equal(polytel_baggage_parse(NULL, 5, bag_collect, &seen), 0);
  assert_int_equal(polytel_baggage_parse(hdr, strlen(hdr), NULL, NULL), POLYTEL_EINVAL);
  /* format then parse is the identity on the entries */
  bag_seen_t round = {0};
  int n = polytel_baggage_format(in, 2, out, sizeof out);
  assert_true(n > 0);
  assert_int_equal(polytel_baggage_parse(out, (size_t)n, bag_collect, &round), 2);
  assert_string_equal(round.got[0], "tenant=acme");
  assert_string_equal(round.got[1], "user.name=Zoë Ü");
}

static void test_baggage_format_limits(void **state) {
  (void)state;
  polytel__baggage_t *b = bag_new();
  static char v[4000];
  memset(v, ' ', sizeof v);                                         /* encodes to three times its size */
  assert_int_equal(polytel__baggage_set(b, "wide", 4, v, 1400), 0); /* 4 + 1 + 4200: too big to travel */
  assert_int_equal(polytel__baggage_set(b, "ok", 2, v, 1300), 0);   /* 2 + 1 + 3900 */
  assert_int_equal(polytel__baggage_set(b, "ok2", 3, "x", 1), 0);
  static char out[POLYTEL__BAGGAGE_MAX_BYTES + 1];
  int n = polytel__baggage_format(b, out, sizeof out);
  assert_int_equal(n, 3 + 3900 + 1 + 5);
  assert_memory_equal(out, "ok=%20%20", 9);
  assert_string_equal(out + n - 6, ",ok2=x");
  /* a small buffer drops whole members, never a part of one */
  assert_int_equal(polytel__baggage_format(b, out, 7), 5);
  assert_string_equal(out, "ok2=x");
  assert_int_equal(polytel__baggage_format(b, out, 1), 0);
  assert_string_equal(out, "");
  assert_int_equal(polytel__baggage_format(b, out, 0), POLYTEL_EINVAL);
  assert_int_equal(polytel__baggage_format(NULL, out, 8), POLYTEL_EINVAL);
}

/* ------------------------------------------------------------ propagators */

static void expect_props(const char *value, unsigned mask, const char *warning) {
  char w[POLYTEL__PROP_WARN_CAP];
  memset(w, 'x', sizeof w);
  unsigned got = polytel__propagators_parse(value, w, sizeof w);
  if (got != mask)
    fail_msg("OTEL_PROPAGATORS=\"%s\": mask %u, expected %u", value ? value : "(null)", got, mask);
  assert_string_equal(w, warning);
}

static void test_propagators(void **state) {
  (void)state;
  const unsigned tc = POLYTEL__PROPAGATOR_TRACECONTEXT, bg = POLYTEL__PROPAGATOR_BAGGAGE;
  expect_props(NULL, tc | bg, "");
  expect_props("", tc | bg, "");
  expect_props(" \t ", tc | bg, "");
  expect_props("tracecontext", tc, "");
  expect_props("baggage", bg, "");
  expect_props("tracecontext,baggage", tc | bg, "");
  expect_props(" TraceContext , BAGGAGE ", tc | bg, "");
  expect_props("tracecontext,,tracecontext", tc, "");
  expect_props("none", 0, "");
  expect_props("NONE", 0, "");
  expect_props(
      "b3", tc | bg,
      "OTEL_PROPAGATORS: ignoring unsupported \"b3\" (polytel propagates tracecontext and baggage, or "
      "none); using tracecontext,baggage");
  expect_props(
      "b3,jaeger,B3,b3multi,xray,ottrace,b3", tc | bg,
      "OTEL_PROPAGATORS: ignoring unsupported \"b3\", \"jaeger\", \"b3multi\", \"xray\", \"ottrace\" "
      "(polytel propagates tracecontext and baggage, or none); using tracecontext,baggage");
  expect_props("tracecontext,foo,b3,foo", tc,
               "OTEL_PROPAGATORS: ignoring unsupported \"b3\" and unknown \"foo\" (polytel propagates "
               "tracecontext and baggage, or none); using tracecontext");
  expect_props("baggage,trace-context", bg,
               "OTEL_PROPAGATORS: ignoring unknown \"trace-context\" (polytel propagates tracecontext and "
               "baggage, or none); using baggage");
  expect_props("none,tracecontext", 0,
               "OTEL_PROPAGATORS: \"none\" is listed with other propagators and wins; using none");
  expect_props(
      "b3,none", 0,
      "OTEL_PROPAGATORS: ignoring unsupported \"b3\" (polytel propagates tracecontext and baggage, or "
      "none); \"none\" is listed with other propagators and wins; using none");
  /* many distinct bad names: a bounded line */
  expect_props(
      "a1,a2,a3,a4,a5,a6,a7,a8,a9,a10", tc | bg,
      "OTEL_PROPAGATORS: ignoring unknown \"a1\", \"a2\", \"a3\", \"a4\", \"a5\", \"a6\", \"a7\", \"a8\" "
      "and more (polytel propagates tracecontext and baggage, or none); using tracecontext,baggage");
  char w[16];
  assert_int_equal(polytel__propagators_parse("b3", w, sizeof w), tc | bg);
  assert_string_equal(w, "OTEL_PROPAGATOR"); /* cut, terminated */
  assert_int_equal(polytel__propagators_parse("b3", NULL, 0), tc | bg);
}

/* ---------------------------------------------------------------- sampler */

static polytel__sampler_t sampler(const char *name, const char *arg, const char *warning) {
  polytel__sampler_t s;
  char w[POLYTEL__PROP_WARN_CAP];
  memset(&s, 0xaa, sizeof s);
  assert_int_equal(polytel__sampler_parse(name, arg, &s, w, sizeof w), 0);
  assert_string_equal(w, warning);
  assert_int_equal(s.bound, polytel__ratio_bound(s.ratio));
  return s;
}

static void test_sampler_settings(void **state) {
  (void)state;
  polytel__sampler_t s = sampler(NULL, NULL, "");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON);
  assert_true(s.ratio == 1.0);
  s = sampler("  ", "0.5", "");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON);
  assert_int_equal(sampler("always_on", NULL, "").kind, POLYTEL__SAMPLER_ALWAYS_ON);
  assert_int_equal(sampler("ALWAYS_OFF", NULL, "").kind, POLYTEL__SAMPLER_ALWAYS_OFF);
  assert_int_equal(sampler(" parentbased_always_off ", NULL, "").kind,
                   POLYTEL__SAMPLER_PARENTBASED_ALWAYS_OFF);
  s = sampler("traceidratio", "0.25", "");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_TRACEIDRATIO);
  assert_true(s.ratio == 0.25);
  assert_true(s.bound == (uint64_t)1 << 62);
  s = sampler("parentbased_traceidratio", " 1e-3 ", "");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO);
  assert_true(s.ratio == 0.001);
  s = sampler("traceidratio", NULL, "");
  assert_true(s.ratio == 1.0);
  s = sampler("traceidratio", "", "");
  assert_true(s.ratio == 1.0);
  s = sampler("traceidratio", "-0", "");
  assert_true(s.ratio == 0.0 && s.bound == 0);
  s = sampler(
      "traceidratio", "1.5",
      "invalid OTEL_TRACES_SAMPLER_ARG=\"1.5\" (expected a ratio from 0 to 1, such as 0.25); using 1.0");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_TRACEIDRATIO);
  assert_true(s.ratio == 1.0);
  const char *bad[] = {"-0.1", "abc", "inf", "nan", "1e999", "0x1p-1", "0,5",
                       "50%",  "1/2", ".",   "e5",  "1e",    "0.5.1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char want[160];
    snprintf(want, sizeof want,
             "invalid OTEL_TRACES_SAMPLER_ARG=\"%s\" (expected a ratio from 0 to 1, such as 0.25); using 1.0",
             bad[i]);
    s = sampler("parentbased_traceidratio", bad[i], want);
    assert_true(s.ratio == 1.0);
  }
  /* the argument belongs to the ratio samplers: elsewhere it is not read, so not judged */
  s = sampler("always_on", "abc", "");
  s = sampler("foo", "0.5",
              "invalid OTEL_TRACES_SAMPLER=\"foo\" (expected always_on, always_off, traceidratio, "
              "parentbased_always_on, parentbased_always_off or parentbased_traceidratio); using "
              "parentbased_always_on");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON);
  s = sampler(
      "jaeger_remote", NULL,
      "OTEL_TRACES_SAMPLER=\"jaeger_remote\" is not supported by polytel; using parentbased_always_on");
  assert_int_equal(s.kind, POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON);
  assert_string_equal(polytel__sampler_name(POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO),
                      "parentbased_traceidratio");
  assert_int_equal(polytel__sampler_parse("always_on", NULL, NULL, NULL, 0), POLYTEL_EINVAL);
}

static void test_ratio_bound(void **state) {
  (void)state;
  assert_true(polytel__ratio_bound(0.0) == 0);
  assert_true(polytel__ratio_bound(-1.0) == 0);
  assert_true(polytel__ratio_bound(NAN) == 0);
  assert_true(polytel__ratio_bound(1.0) == UINT64_MAX);
  assert_true(polytel__ratio_bound(2.0) == UINT64_MAX);
  assert_true(polytel__ratio_bound(0.5) == (uint64_t)1 << 63);
  assert_true(polytel__ratio_bound(0x1p-65) == 0);   /* 0.5 rounds to even: 0 */
  assert_true(polytel__ratio_bound(0x3p-65) == 2);   /* 1.5 -> 2 */
  assert_true(polytel__ratio_bound(0x5p-65) == 2);   /* 2.5 -> 2 */
  assert_true(polytel__ratio_bound(0x1.8p-64) == 2); /* 1.5 */
  assert_true(polytel__ratio_bound(0x1.4p-64) == 1); /* 1.25 */
  assert_true(polytel__ratio_bound(1.0 - 0x1p-53) == UINT64_MAX - 2047);

  uint8_t tid[16] = {0};
  tid[15] = 1;
  assert_int_equal(polytel__traceid_ratio_sampled(tid, 0), 0);
  assert_int_equal(polytel__traceid_ratio_sampled(tid, 1), 0); /* low 64 bits 1: not below 1 */
  assert_int_equal(polytel__traceid_ratio_sampled(tid, 2), 1);
  memset(tid + 8, 0xff, 8);
  assert_int_equal(polytel__traceid_ratio_sampled(tid, UINT64_MAX - 1), 0);
  assert_int_equal(polytel__traceid_ratio_sampled(tid, UINT64_MAX), 1); /* ratio 1: every trace */
  /* the high 8 bytes play no part; the low 8 are big-endian */
  uint8_t a[16], c[16];
  memset(a, 0, 16);
  memset(c, 0xff, 8);
  memset(c + 8, 0, 8);
  a[8] = 0x80;
  c[8] = 0x80;
  assert_int_equal(polytel__traceid_ratio_sampled(a, (uint64_t)1 << 63), 0);
  assert_int_equal(polytel__traceid_ratio_sampled(c, (uint64_t)1 << 63), 0);
  a[8] = 0x7f;
  assert_int_equal(polytel__traceid_ratio_sampled(a, (uint64_t)1 << 63), 1);
}

static void test_should_sample_matrix(void **state) {
  (void)state;
  uint8_t lo[16] = {0}, hi[16];
  lo[15] = 1;           /* low 64 bits: 1, sampled by any ratio above 2^-64 */
  memset(hi, 0xff, 16); /* low 64 bits: 2^64 - 1, sampled only at ratio 1 */
  polytel__sampler_t s;
  struct {
    const char *name;
    int root_lo, root_hi, parent_sampled, parent_unsampled;
  } rows[] = {
      {"always_on", 1, 1, 1, 1},
      {"always_off", 0, 0, 0, 0},
      {"traceidratio", 1, 0, 0, 1}, /* ignores the parent: decides on the id (lo yes, hi no) */
      {"parentbased_always_on", 1, 1, 1, 0},
      {"parentbased_always_off", 0, 0, 1, 0},
      {"parentbased_traceidratio", 1, 0, 1, 0},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    char w[POLYTEL__PROP_WARN_CAP];
    assert_int_equal(polytel__sampler_parse(rows[i].name, "0.5", &s, w, sizeof w), 0);
    assert_int_equal(polytel__sampler_should_sample(&s, lo, -1), rows[i].root_lo);
    assert_int_equal(polytel__sampler_should_sample(&s, hi, -1), rows[i].root_hi);
    assert_int_equal(polytel__sampler_should_sample(&s, hi, 1), rows[i].parent_sampled);
    assert_int_equal(polytel__sampler_should_sample(&s, lo, 0), rows[i].parent_unsampled);
  }
  assert_int_equal(polytel__sampler_should_sample(&s, hi, 0), 0);
  assert_int_equal(s.kind, POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO);
  assert_int_equal(polytel__sampler_should_sample(&s, hi, 1), 1);    /* a sampled parent wins over the id */
  assert_int_equal(polytel__sampler_should_sample(NULL, hi, -1), 1); /* no sampler: the default */
  assert_int_equal(polytel__sampler_should_sample(NULL, hi, 0), 0);
}

/* The same answers as the OpenTelemetry Python SDK, vector by vector (tests/unit/sampling_vectors.py). */
static void test_sdk_vectors(void **state) {
  (void)state;
  char w[POLYTEL__PROP_WARN_CAP];
  polytel__sampler_t s;
  size_t n_bounds = sizeof sdk_bounds / sizeof *sdk_bounds,
         n_dec = sizeof sdk_decisions / sizeof *sdk_decisions;
  assert_true(n_bounds > 30 && n_dec > 1000);
  for (size_t i = 0; i < n_bounds; i++) {
    assert_int_equal(polytel__sampler_parse("traceidratio", sdk_bounds[i].arg, &s, w, sizeof w), 0);
    uint64_t want = strcmp(sdk_bounds[i].bound, "18446744073709551616") == 0
                        ? UINT64_MAX
                        : strtoull(sdk_bounds[i].bound, NULL, 10);
    if (s.bound != want)
      fail_msg("OTEL_TRACES_SAMPLER_ARG=\"%s\": bound %llu, the SDK's %s", sdk_bounds[i].arg,
               (unsigned long long)s.bound, sdk_bounds[i].bound);
  }
  size_t sampled = 0;
  for (size_t i = 0; i < n_dec; i++) {
    uint8_t tid[16];
    hex_to(sdk_decisions[i].trace_id, tid, 16);
    assert_int_equal(polytel__sampler_parse(sdk_decisions[i].sampler, sdk_decisions[i].arg, &s, w, sizeof w),
                     0);
    int got = polytel__sampler_should_sample(&s, tid, sdk_decisions[i].parent);
    if (got != sdk_decisions[i].sampled)
      fail_msg("%s arg \"%s\" parent %d trace %s: polytel %d, the SDK %d", sdk_decisions[i].sampler,
               sdk_decisions[i].arg, sdk_decisions[i].parent, sdk_decisions[i].trace_id, got,
               sdk_decisions[i].sampled);
    sampled += (size_t)got;
  }
  /* the vectors exercise both answers, often */
  assert_true(sampled > n_dec / 4 && sampled < n_dec * 3 / 4 + n_dec / 8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_traceparent_spec_examples),
      cmocka_unit_test(test_traceparent_w3c_suite),
      cmocka_unit_test(test_traceparent_malformed),
      cmocka_unit_test(test_traceparent_flags),
      cmocka_unit_test(test_traceparent_format_errors),
      cmocka_unit_test(test_span_start_flags),
      cmocka_unit_test(test_tracestate_spec_examples),
      cmocka_unit_test(test_tracestate_all_allowed_characters),
      cmocka_unit_test(test_tracestate_keys),
      cmocka_unit_test(test_tracestate_values),
      cmocka_unit_test(test_tracestate_member_limit),
      cmocka_unit_test(test_tracestate_truncation),
      cmocka_unit_test(test_tracestate_api_edges),
      cmocka_unit_test(test_baggage_spec_examples),
      cmocka_unit_test(test_baggage_values),
      cmocka_unit_test(test_baggage_invalid_utf8),
      cmocka_unit_test(test_baggage_malformed_skipped),
      cmocka_unit_test(test_baggage_duplicates),
      cmocka_unit_test(test_baggage_limits),
      cmocka_unit_test(test_baggage_set_get_remove),
      cmocka_unit_test(test_baggage_format_limits),
      cmocka_unit_test(test_baggage_public_api),
      cmocka_unit_test(test_propagators),
      cmocka_unit_test(test_sampler_settings),
      cmocka_unit_test(test_ratio_bound),
      cmocka_unit_test(test_should_sample_matrix),
      cmocka_unit_test(test_sdk_vectors),
  };
  return cmocka_run_group_tests_name("propagation", tests, NULL, NULL);
}
