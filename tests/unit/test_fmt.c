/* test_fmt.c — deferred printf: format signatures, rendering from a captured argument area, bounds. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record/record.h"

/* An argument area laid out as events.c's capture does. */
typedef struct area_s {
  uint8_t b[1024];
  size_t n;
} area_t;

static void a_int(area_t *a, int64_t v) {
  memcpy(a->b + a->n, &v, 8);
  a->n += 8;
}
static void a_dbl(area_t *a, double v) {
  memcpy(a->b + a->n, &v, 8);
  a->n += 8;
}
static void a_str(area_t *a, const char *s, uint32_t len) {
  memcpy(a->b + a->n, &len, 4);
  memset(a->b + a->n + 4, 0, 4);
  memcpy(a->b + a->n + 8, s, len);
  a->n += 8 + POLYTEL__ALIGN8(len);
}

static void test_signatures(void **state) {
  (void)state;
  polytel__fmt_sig_t sig;
  polytel__fmt_parse("event %ld from thread %d", &sig);
  assert_true(sig.ok && sig.ints_only);
  assert_int_equal(sig.n_args, 2);
  assert_int_equal(sig.kinds[0], POLYTEL__ARG_LONG);
  assert_int_equal(sig.kinds[1], POLYTEL__ARG_INT);
  polytel__fmt_parse("%*.*f %s %p %Lg %%", &sig);
  assert_true(sig.ok && !sig.ints_only);
  assert_int_equal(sig.n_args, 6);
  static const uint8_t want[] = {POLYTEL__ARG_INT, POLYTEL__ARG_INT, POLYTEL__ARG_DOUBLE,
                                 POLYTEL__ARG_STR, POLYTEL__ARG_PTR, POLYTEL__ARG_LDOUBLE};
  assert_memory_equal(sig.kinds, want, 6);
  polytel__fmt_parse("x %n", &sig);
  assert_true(!sig.ok && sig.has_n);
  static const char *const bad[] = {"%ls", "%lc", "%.5s", "%q", "%1$d", "%k"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    polytel__fmt_parse(bad[i], &sig);
    assert_false(sig.ok);
  }
  polytel__fmt_parse("%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d", &sig); /* 16 arguments: one too many */
  assert_false(sig.ok);
}

static void expect(const char *fmt, const area_t *a, size_t cap, const char *want) {
  char out[256];
  size_t n = polytel__fmt_render(out, cap, fmt, a->b, a->n);
  assert_int_equal(n, strlen(want));
  assert_string_equal(out, want);
}

static void test_render_like_printf(void **state) {
  (void)state;
  area_t a = {{0}, 0};
  a_int(&a, 42), a_int(&a, -7), a_dbl(&a, 3.14159), a_int(&a, 255), a_str(&a, "str", 3), a_int(&a, 'c');
  char ref[256];
  snprintf(ref, sizeof ref, "%5d|%-5d|%08.2f|%#x|%s|%c|%%", 42, -7, 3.14159, 255, "str", 'c');
  expect("%5d|%-5d|%08.2f|%#x|%s|%c|%%", &a, 256, ref);
  /* cut at the capacity, never past it */
  expect("%5d|%-5d|%08.2f|%#x|%s|%c|%%", &a, 8, "   42|-");
  /* missing arguments are marked, never read past the area */
  area_t one = {{0}, 0};
  a_int(&one, 1);
  expect("%d and %d and %s", &one, 256, "1 and <?> and <?>");
  /* a captured string is printed by its length (the block holds no NUL after it), with its flags */
  area_t s = {{0}, 0};
  a_int(&s, 6), a_str(&s, "abcdXX", 4), a_int(&s, -4), a_str(&s, "xy", 2);
  expect("[%-*s][%*s]", &s, 256, "[abcd  ][xy  ]");
}

/* Regression: a width or precision from an argument is clamped (it took seconds and gigabytes inside
 * printf, or printf failed and the conversion vanished); the visible text is what printf would show. */
static void test_huge_widths_and_precisions(void **state) {
  (void)state;
  area_t a = {{0}, 0};
  a_int(&a, INT_MAX), a_dbl(&a, 1.5);
  char want[64] = "1.5";
  memset(want + 3, '0', 60);
  want[63] = '\0';
  expect("%.*f", &a, 64, want);
  area_t w = {{0}, 0};
  a_int(&w, INT_MAX), a_int(&w, 7);
  memset(want, ' ', 63);
  expect("%*d", &w, 64, want);
  area_t neg = {{0}, 0};
  a_int(&neg, INT_MIN), a_int(&neg, 7);
  memset(want, ' ', 63);
  want[0] = '7';
  expect("%*d", &neg, 64, want); /* a negative width left-justifies, as printf's '*' does */
  /* a literal width far past the buffer: padding, not a failure */
  area_t one = {{0}, 0};
  a_int(&one, 5);
  memset(want, '0', 63);
  expect("%09999999999d", &one, 64, want);
}

/* Regression: a spec longer than the renderer's 64-byte copy was cut and handed to printf without its
 * conversion character. */
static void test_long_spec(void **state) {
  (void)state;
  area_t a = {{0}, 0};
  a_int(&a, 5);
  expect("[%-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ +-+ 0000000000000000004d]", &a,
         64, "[+5  ]");
  expect("[%000000000000000000000000000000000000000000000000000000000000000000000005d]", &a, 64, "[00005]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signatures),
      cmocka_unit_test(test_render_like_printf),
      cmocka_unit_test(test_huge_widths_and_precisions),
      cmocka_unit_test(test_long_spec),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
