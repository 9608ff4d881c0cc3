/* test_buffers.c — the record layer's blocks (record/buffers.c): the bounded pool (get/put at the cap, the
 * floor, the refill reserve, a lowered cap giving memory back), the hand-off from a full block to the next
 * (order kept, nothing lost, the exporter woken), pool exhaustion (drops counted at record time, the kept
 * prefix intact, recording resumes once blocks come back), and a thread's blocks after it exited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/record.h"
#include "polytel.h"

#define BLOCK POLYTEL__BLOCK_SIZE
#define MAX_HELD 256

static uint64_t default_cap;

static int setup(void **state) {
  (void)state;
  setenv("POLYTEL_CONSOLE", "off", 1);
  unsetenv("TELEMETRY_ENABLED");
  unsetenv("POLYTEL_MAX_MEMORY");
  assert_int_equal(polytel_init_console_only(NULL), 0);
  assert_int_equal(polytel_memory_sink_enable(1000000), 0);
  default_cap = polytel__pool_cap();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  polytel__buffers_set_cap(default_cap);
  polytel_shutdown(1000);
  polytel_memory_sink_disable();
  return 0;
}

static polytel_stats_t stats(void) {
  polytel_stats_t s;
  assert_int_equal(polytel_stats(&s), 0);
  assert_int_equal(s.recorded, s.exported + s.dropped + s.unconfirmed + s.pending);
  assert_int_equal(s.dropped, s.dropped_buffer_full + s.dropped_invalid + s.dropped_depth + s.dropped_export +
                                  s.dropped_rejected);
  return s;
}

/* Lowers the cap and makes it hold: every free block taken, then given back (put frees past the cap). */
static void shrink_to(uint64_t cap) {
  polytel__buffers_set_cap(cap);
  polytel__block_t *held[MAX_HELD];
  size_t n = 0;
  while (n < MAX_HELD && (held[n] = polytel__pool_get()) != NULL) n++;
  assert_true(n < MAX_HELD);
  while (n) polytel__pool_put(held[--n]);
  assert_true(polytel__pool_bytes() <= polytel__pool_cap());
}

/* Collects everything recorded; returns how many logs of target `target` came out, checking they are
 * "<prefix> 0", "<prefix> 1", ... in order. */
static size_t collect_in_order(const char *target, const char *prefix) {
  polytel_memory_sink_clear();
  assert_int_equal(polytel_memory_sink_collect(), 0);
  size_t n = polytel_memory_sink_count(), seen = 0;
  char want[64];
  for (size_t i = 0; i < n; i++) {
    const polytel_record_t *r = polytel_memory_sink_get(i);
    if (r->kind != POLYTEL_RECORD_LOG || strcmp(r->name, target) != 0) continue;
    snprintf(want, sizeof want, "%s %zu", prefix, seen);
    assert_string_equal(r->body, want);
    seen++;
  }
  return seen;
}

/* ---------------------------------------------------------------- the pool */

static void test_pool_is_bounded_by_its_cap(void **state) {
  (void)state;
  shrink_to(8 * BLOCK);
  polytel__block_t *held[MAX_HELD];
  size_t n = 0;
  while (n < MAX_HELD && (held[n] = polytel__pool_get()) != NULL) {
    assert_int_equal(held[n]->cap, POLYTEL__BLOCK_DATA_CAP);
    assert_int_equal(atomic_load(&held[n]->committed), 0);
    assert_int_equal(atomic_load(&held[n]->sealed), 0);
    n++;
  }
  /* Exhausted exactly at the cap: every block of it allocated (some are the threads' current blocks). */
  assert_int_equal(polytel__pool_bytes(), 8 * BLOCK);
  assert_true(n >= 1 && n <= 8);
  assert_null(polytel__pool_get());
  /* One back: the next get has it again (the exhausted state ends with a put). */
  polytel__pool_put(held[--n]);
  polytel__block_t *again = polytel__pool_get();
  assert_non_null(again);
  held[n++] = again;
  assert_null(polytel__pool_get());
  while (n) polytel__pool_put(held[--n]);
  assert_int_equal(polytel__pool_bytes(), 8 * BLOCK); /* kept for reuse, within the cap */
}

static void test_cap_has_a_floor_and_a_lowered_cap_gives_memory_back(void **state) {
  (void)state;
  polytel__buffers_set_cap(1);
  assert_int_equal(polytel__pool_cap(), 4 * BLOCK); /* never below four blocks */
  polytel__buffers_set_cap(16 * BLOCK);
  polytel__block_t *held[MAX_HELD];
  size_t n = 0;
  while (n < MAX_HELD && (held[n] = polytel__pool_get()) != NULL) n++;
  assert_int_equal(polytel__pool_bytes(), 16 * BLOCK);
  polytel__buffers_set_cap(4 * BLOCK);
  while (n) polytel__pool_put(held[--n]);
  assert_true(polytel__pool_bytes() <= 4 * BLOCK);
  assert_true(polytel__pool_bytes() >= BLOCK); /* the threads' current blocks are still theirs */
}

static void test_refill_keeps_a_reserve_within_the_cap(void **state) {
  (void)state;
  shrink_to(4 * BLOCK);
  polytel__buffers_set_cap(64 * BLOCK);
  polytel__block_t *held[MAX_HELD];
  size_t n = 0;
  /* Take blocks until one had to be allocated by the caller: the reserve grows, the refiller has work. */
  for (;;) {
    uint64_t before = polytel__pool_bytes();
    held[n] = polytel__pool_get();
    assert_non_null(held[n]);
    n++;
    if (polytel__pool_bytes() > before) break;
    assert_true(n < MAX_HELD);
  }
  uint64_t before = polytel__pool_bytes();
  polytel__pool_refill();
  assert_true(polytel__pool_bytes() > before); /* blocks made ready off the recording thread */
  assert_true(polytel__pool_bytes() <= polytel__pool_cap());
  uint64_t ready = polytel__pool_bytes();
  held[n] = polytel__pool_get(); /* served from the reserve: no allocation */
  assert_non_null(held[n++]);
  assert_int_equal(polytel__pool_bytes(), ready);
  /* At the cap the refiller adds nothing. */
  polytel__buffers_set_cap(polytel__pool_bytes());
  while (n < MAX_HELD && (held[n] = polytel__pool_get()) != NULL) n++;
  uint64_t at_cap = polytel__pool_bytes();
  polytel__pool_refill();
  assert_int_equal(polytel__pool_bytes(), at_cap);
  while (n) polytel__pool_put(held[--n]);
}

/* ---------------------------------------------------------------- hand-off */

static _Atomic int wakes;
static void count_wake(void) {
  atomic_fetch_add(&wakes, 1);
}

static void test_handoff_keeps_order_and_wakes_the_exporter(void **state) {
  (void)state;
  polytel__buffers_set_cap(64 * BLOCK);
  polytel_log(POLYTEL_LEVEL_INFO, "warmup", "w %d", 0); /* registers this thread */
  assert_int_equal(collect_in_order("warmup", "w"), 1);
  polytel__thread_t *t = polytel__tls;
  assert_non_null(t);
  polytel__block_t *first = t->cur;
  atomic_store(&wakes, 0);
  polytel__buffers_set_wake(count_wake);
  polytel_stats_t s0 = stats();
  const size_t N = 20000; /* several blocks of deferred-format logs */
  for (size_t i = 0; i < N; i++) polytel_log(POLYTEL_LEVEL_INFO, "handoff", "h %zu", i);
  polytel__buffers_set_wake(NULL);
  /* The first block was sealed and linked to its successor before the writer moved on. */
  assert_ptr_not_equal(t->cur, first);
  assert_int_equal(atomic_load(&first->sealed), 1);
  assert_non_null(first->next);
  size_t blocks = 1;
  for (polytel__block_t *b = first; b != t->cur; b = b->next) blocks++;
  assert_true(blocks >= 3);
  /*
   * A hand-off wakes the exporter every polytel__wake_every() hand-offs (buffers.c; the pool has headroom
   * here, so no "pool short" wake): h hand-offs after a drain give h / every wakes, one more at most if
   * the warm-up left some unwoken.
   */
  int handoffs = (int)blocks - 1, every = (int)polytel__wake_every();
  assert_true(every >= 1 && handoffs >= every); /* at least one wake is due */
  assert_in_range(atomic_load(&wakes), handoffs / every, (handoffs + every - 1) / every);
  polytel_stats_t s1 = stats();
  assert_int_equal(s1.logs_recorded - s0.logs_recorded, N);
  assert_int_equal(s1.dropped_buffer_full, s0.dropped_buffer_full);
  assert_int_equal(s1.pending - s0.pending, N);
  assert_int_equal(collect_in_order("handoff", "h"), N); /* in order, each once */
  assert_int_equal(stats().pending, s0.pending);
}

static void test_pool_exhaustion_drops_counts_and_recovers(void **state) {
  (void)state;
  polytel_log(POLYTEL_LEVEL_INFO, "warmup", "w %d", 0); /* registers this thread */
  assert_int_equal(collect_in_order("warmup", "w"), 1);
  shrink_to(4 * BLOCK);
  polytel_stats_t s0 = stats();
  const size_t N = 30000; /* far more than four blocks hold */
  for (size_t i = 0; i < N; i++) polytel_log(POLYTEL_LEVEL_INFO, "full", "f %zu", i);
  polytel_stats_t s1 = stats();
  uint64_t dropped = s1.dropped_buffer_full - s0.dropped_buffer_full;
  assert_int_equal(s1.logs_recorded - s0.logs_recorded, N); /* recorded counts what was dropped too */
  assert_true(dropped > 0 && dropped < N);
  assert_int_equal(s1.dropped - s0.dropped, dropped);
  assert_int_equal(s1.pending - s0.pending, N - dropped);
  assert_true(polytel__pool_bytes() <= 4 * BLOCK);
  /* What was kept is the prefix recorded before the pool filled, whole and in order. */
  assert_int_equal(collect_in_order("full", "f"), N - dropped);
  /* The consumer gave the blocks back: recording resumes, nothing more dropped. */
  for (size_t i = 0; i < 100; i++) polytel_log(POLYTEL_LEVEL_INFO, "after", "a %zu", i);
  polytel_stats_t s2 = stats();
  assert_int_equal(s2.dropped_buffer_full, s1.dropped_buffer_full);
  assert_int_equal(collect_in_order("after", "a"), 100);
}

#define THREAD_LOGS 5000

static void *logging_thread(void *arg) {
  (void)arg;
  for (size_t i = 0; i < THREAD_LOGS; i++) polytel_log(POLYTEL_LEVEL_INFO, "exited", "x %zu", i);
  return NULL;
}

/* A thread that filled several blocks and exited: its blocks are still drained, whole, then retired. */
static void test_exited_thread_blocks_are_drained(void **state) {
  (void)state;
  polytel__buffers_set_cap(64 * BLOCK);
  polytel_stats_t s0 = stats();
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, logging_thread, NULL), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(collect_in_order("exited", "x"), THREAD_LOGS);
  polytel_stats_t s1 = stats();
  assert_int_equal(s1.logs_recorded - s0.logs_recorded, THREAD_LOGS);
  assert_int_equal(s1.pending, s0.pending);
  assert_int_equal(s1.dropped_buffer_full, s0.dropped_buffer_full);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pool_is_bounded_by_its_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cap_has_a_floor_and_a_lowered_cap_gives_memory_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_refill_keeps_a_reserve_within_the_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_handoff_keeps_order_and_wakes_the_exporter, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pool_exhaustion_drops_counts_and_recovers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exited_thread_blocks_are_drained, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
