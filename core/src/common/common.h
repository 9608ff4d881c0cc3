/* common/common.h — the leaf layer: what every other layer may use. Options and their resolution, the
 * console and diagnostics, decoded record types, the clock, accounting and stats, ids, the runtime hooks. */
#ifndef POLYTEL_COMMON_H
#define POLYTEL_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/config.h"
#include "common/console.h"
#include "common/process.h"
#include "common/propagation.h"
#include "common/retry_after.h"
#include "common/types.h"
#include "polytel.h"

#define POLYTEL__LIKELY(x) __builtin_expect(!!(x), 1)
#define POLYTEL__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define POLYTEL__RELAXED memory_order_relaxed
#define POLYTEL__ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

/* ------------------------------------------------------------------ clock */

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define POLYTEL__HAVE_TSC 1
#endif

extern int polytel__g_use_tsc;

static inline uint64_t polytel__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Out of line on purpose: inlined, its timespec would give every hot-path function a stack frame. */
uint64_t polytel__mono_ns_call(void);

/* Hot-path timestamp: TSC ticks when invariant, else CLOCK_MONOTONIC ns. */
static inline uint64_t polytel__ticks(void) {
#ifdef POLYTEL__HAVE_TSC
  if (POLYTEL__LIKELY(polytel__g_use_tsc)) return __rdtsc();
#endif
  return polytel__mono_ns_call();
}

/*
 * For fast paths that must stay call-free (no stack frame): test
 * POLYTEL__TICKS_FAST() in their condition, then use polytel__ticks_fast().
 */
#ifdef POLYTEL__HAVE_TSC
#define POLYTEL__TICKS_FAST() (polytel__g_use_tsc)
static inline uint64_t polytel__ticks_fast(void) {
  return __rdtsc();
}
#else
#define POLYTEL__TICKS_FAST() 1
static inline uint64_t polytel__ticks_fast(void) {
  return polytel__mono_ns();
}
#endif

void polytel__clock_init(void);
/* A conversion snapshot taken once per consumer pass: monotone within it. */
typedef struct polytel__clock_conv_s {
  uint64_t tick0;
  uint64_t mono0;
  double ns_per_tick;
  int64_t wall_minus_mono;
} polytel__clock_conv_t;
void polytel__clock_conv(polytel__clock_conv_t *c);
static inline uint64_t polytel__ticks_to_unix(const polytel__clock_conv_t *c, uint64_t t) {
  int64_t d = (int64_t)(t - c->tick0);
  int64_t mono = (int64_t)c->mono0 + (int64_t)((double)d * c->ns_per_tick);
  return (uint64_t)(mono + c->wall_minus_mono);
}

/* A monotonic millisecond clock (pipeline schedules, transports). */
uint64_t polytel__now_ms(void);

/* ----------------------------------------------------------- accounting (acct.c) */

/*
 * Outcome counters, one set per process; polytel_stats() reads them (outcomes before attempts, so pending
 * never goes negative). Written by the pipeline, the memory sink and the consumer; reset in a fork child.
 */

typedef struct polytel__acct_s {
  _Atomic uint64_t exported;
  _Atomic uint64_t dropped_export;
  _Atomic uint64_t dropped_rejected; /* partial_success */
  _Atomic uint64_t unconfirmed;      /* sent, never answered */
  _Atomic uint64_t dropped_series;   /* metric updates refused a series of their own */
  _Atomic uint64_t metric_saturated; /* counter increments lost at INT64_MAX */
  _Atomic uint64_t export_requests;
  _Atomic uint64_t export_retries;
  _Atomic uint64_t export_failures;
  /* folded in from exited threads */
  _Atomic uint64_t retired_logs, retired_spans, retired_drop_full, retired_drop_invalid, retired_drop_depth,
      retired_truncated, retired_sampled_out;
  _Atomic uint64_t orphan_drop; /* events dropped with no thread state (registration failed) */
  /* the block pool (the record layer keeps them current) */
  _Atomic uint64_t pool_bytes, pool_cap;
} polytel__acct_t;
extern polytel__acct_t polytel__acct;

/* What the live threads recorded, summed (the record layer owns the threads: it registers the function). */
typedef struct polytel__thread_sums_s {
  uint64_t logs, spans, full, inv, depth, trunc, sampled_out;
} polytel__thread_sums_t;
typedef void (*polytel__thread_sums_fn)(polytel__thread_sums_t *out);
/* Set once, when the first thread registers; before that there is nothing to sum. */
void polytel__acct_set_thread_sums(polytel__thread_sums_fn fn);
/* A fork child: every counter back to 0 (the pool's figures stay: the record layer resets its pool). */
void polytel__acct_reset(void);
uint64_t polytel__recorded_total(void);
uint64_t polytel__pending_total(void);

/* ----------------------------------------------------------------- ids */

/* xorshift128+, seeded from getrandom() (or time, address and pid) (ids.c). */
void polytel__rng_seed(uint64_t s[2]);
static inline uint64_t polytel__rng_next(uint64_t s[2]) {
  uint64_t s1 = s[0];
  const uint64_t s0 = s[1];
  s[0] = s0;
  s1 ^= s1 << 23;
  s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return s[1] + s0;
}
/* A span id (and a trace id when trace_id is not NULL), never all zero. */
void polytel__gen_ids(uint64_t rng[2], uint8_t *trace_id /* 16 or NULL */, uint8_t span_id[8]);

/* ------------------------------------------------------------- hooks */

/*
 * What the layers below need from the runtime above them, without calling up: the runtime fills these at
 * load (runtime/phase.c). NULL until then (a static link without the runtime: nothing initializes).
 */
typedef struct polytel__hooks_s {
  /* The first record before any init: phase 1, implicitly (nothing is lost). */
  void (*first_use)(void);
} polytel__hooks_t;
extern polytel__hooks_t polytel__hooks;

#endif
