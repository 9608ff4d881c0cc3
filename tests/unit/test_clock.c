/* test_clock.c — polytel_now_ns (the TSC-extrapolated wall clock the bindings' spans read) against
 * CLOCK_REALTIME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "common/common.h"
#include "polytel.h"

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Every polytel_now_ns() lies between CLOCK_REALTIME read just before and just after it, give or take 20 µs
 * (the bound on extrapolating 1 ms at a rate calibrated over >= 10 ms from bracketed reads; a preempted
 * bracket only widens the window the value may fall in, it never makes the test fail).
 */
static void check_bracketed(int calls) {
  const uint64_t tol = 20000;
  uint64_t worst = 0;
  for (int i = 0; i < calls; i++) {
    uint64_t before = realtime_ns();
    uint64_t now = polytel_now_ns();
    uint64_t after = realtime_ns();
    if (now + tol < before || now > after + tol)
      fail_msg("polytel_now_ns %llu outside [%llu, %llu] +- %llu ns (call %d)", (unsigned long long)now,
               (unsigned long long)before, (unsigned long long)after, (unsigned long long)tol, i);
    uint64_t off = now < before ? before - now : now > after ? now - after : 0;
    if (off > worst) worst = off;
  }
  (void)worst;
}

static void test_now_follows_realtime(void **state) {
  (void)state;
  polytel__clock_init();
  /* Before calibration (read directly), through it and well past several 1 ms anchors. */
  uint64_t t0 = realtime_ns();
  while (realtime_ns() - t0 < 60000000u) check_bracketed(1000);
}

static void *reader(void *arg) {
  (void)arg;
  check_bracketed(300000);
  return NULL;
}

/* Threads re-anchoring at once (the seqlock's writer race) still read a sane time. */
static void test_now_from_threads(void **state) {
  (void)state;
  pthread_t th[3];
  for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, reader, NULL), 0);
  check_bracketed(300000);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
}

/* Successive reads of one thread never go back by more than the re-anchoring error. */
static void test_now_nearly_monotone(void **state) {
  (void)state;
  uint64_t prev = polytel_now_ns();
  for (int i = 0; i < 2000000; i++) {
    uint64_t now = polytel_now_ns();
    if (now + 20000 < prev) fail_msg("polytel_now_ns went back %llu ns", (unsigned long long)(prev - now));
    prev = now > prev ? now : prev;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_now_follows_realtime),
      cmocka_unit_test(test_now_from_threads),
      cmocka_unit_test(test_now_nearly_monotone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
