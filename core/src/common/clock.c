/* clock.c — fast timestamps: invariant TSC when available, calibrated lazily against CLOCK_MONOTONIC. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#ifdef POLYTEL__HAVE_TSC
#include <cpuid.h>
#endif

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
/* CLOCK_REALTIME is Date.now() there: whole milliseconds, while CLOCK_MONOTONIC (performance.now()) has
 * microseconds. Span times (polytel_now_ns) and converted log ticks must come from one clock, or a log
 * lands outside its span. */
/* timeOrigin is fixed for the page or process, and its getter is a native call in Node: read once. Node's
 * process.hrtime() (the same monotonic clock as performance.now(), without the Performance brand check) costs
 * less per read, and spans read twice each: there the wall time is an offset taken once plus hrtime. */
/* clang-format off */
EM_JS(double, polytel__js_wall_ms, (void), {
  var f = Module.ptWallMs;
  if (!f) {
    var o = performance.timeOrigin;
    var hr = typeof process === 'object' && process && typeof process.hrtime === 'function' ? process.hrtime : null;
    if (hr) {
      var h = hr();
      var base = o + performance.now() - (h[0] * 1e3 + h[1] / 1e6);
      f = function() {
        var t = hr();
        return base + (t[0] * 1e3 + t[1] / 1e6);
      };
    } else {
      f = function() { return o + performance.now(); };
    }
    Module.ptWallMs = f;
  }
  return f();
})
/* clang-format on */
static uint64_t wall_ns(void) {
  return (uint64_t)(polytel__js_wall_ms() * 1e6);
}
#else
static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

int polytel__g_use_tsc;
static uint64_t g_tick0, g_mono0;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void clock_init_once(void) {
#ifdef POLYTEL__HAVE_TSC
  unsigned a, b, c, d;
  /* Invariant TSC (CPUID 0x80000007 EDX bit 8): constant rate across P/C-states and cores. */
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000007u &&
      __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8)))
    polytel__g_use_tsc = 1;
#endif
  g_mono0 = polytel__mono_ns();
  g_tick0 = polytel__ticks();
}

void polytel__clock_init(void) {
  pthread_once(&g_once, clock_init_once);
}

/*
 * The rate is measured over the whole interval since init, at conversion time
 * (on the consumer): no start-up calibration delay, and the error shrinks as
 * the process runs. Wall time is re-read each pass so NTP steps are followed.
 */
void polytel__clock_conv(polytel__clock_conv_t *c) {
  polytel__clock_init();
  /*
   * mono, tick and wall must be one instant: a preemption between the reads (a
   * loaded machine) shifted every record of the pass by its length, e.g. a log
   * 2.6 ms past the end of its span. Keep the tightest of a few bracketed tries.
   */
  uint64_t mono = 0, tick = 0, wall = 0, window = UINT64_MAX;
  for (int i = 0; i < 4 && window > 20000; i++) {
    uint64_t m1 = polytel__mono_ns(), t = polytel__ticks(), w = wall_ns(), m2 = polytel__mono_ns();
    if (m2 - m1 < window) {
      window = m2 - m1;
      mono = m1 + window / 2;
      tick = t;
      wall = w;
    }
  }
  c->tick0 = g_tick0;
  c->mono0 = g_mono0;
  if (polytel__g_use_tsc && tick > g_tick0 && mono > g_mono0)
    c->ns_per_tick = (double)(mono - g_mono0) / (double)(tick - g_tick0);
  else
    c->ns_per_tick = 1.0; /* ticks are monotonic ns (or no time has passed) */
  if (polytel__g_use_tsc && !(tick > g_tick0 && mono > g_mono0)) c->ns_per_tick = 0.0;
  c->wall_minus_mono = (int64_t)wall - (int64_t)mono;
}

uint64_t polytel__mono_ns_call(void) {
  return polytel__mono_ns();
}

#ifdef POLYTEL__HAVE_TSC
/*
 * polytel_now_ns from the TSC: the bindings' spans read it twice each, and CLOCK_REALTIME costs two rdtsc
 * here (20 ns against 9 on a KVM guest). An anchor (a tick and the wall time read at it) is re-taken every
 * millisecond, so a step of the wall clock (NTP, settimeofday) is followed within 1 ms; in between, the
 * time is extrapolated at a rate measured on CLOCK_MONOTONIC since the first anchor (its error shrinks as
 * the process runs; none is used before 10 ms of calibration: until then every call reads the clock).
 * An anchor is taken only from reads bracketed by two rdtsc close together (a preempted read is not one).
 * The anchor is a seqlock: readers retry nothing, they read the clock themselves when a writer is busy.
 */
#define WALL_REFRESH_NS 1000000.0
#define WALL_CALIBRATE_NS 10000000u
#define WALL_MAX_WINDOW 20000u                          /* ticks: a few microseconds */
static _Atomic uint64_t g_wseq;                         /* odd while the anchor is rewritten */
static _Atomic uint64_t g_wtick, g_wwall, g_wrate_bits; /* the anchor; ns per tick as a double's bits */
static _Atomic uint64_t g_wspan;                        /* ticks an anchor is used for; 0: none yet */
static _Atomic uint64_t g_best_window = UINT64_MAX;     /* the tightest rdtsc bracket of a clock read seen */
static _Atomic uint64_t g_ftick, g_fmono;               /* the first anchor: the rate is measured from it */

__attribute__((noinline)) static uint64_t wall_anchor(void) {
  uint64_t t1 = __rdtsc();
  uint64_t w = wall_ns(), m = polytel__mono_ns();
  uint64_t t2 = __rdtsc(), window = t2 - t1;
  uint64_t best = atomic_load_explicit(&g_best_window, POLYTEL__RELAXED);
  if (window < best) atomic_store_explicit(&g_best_window, best = window, POLYTEL__RELAXED);
  /* Interrupted between the reads (or a slow read): not an anchor. The absolute bound keeps a first read
   * that was preempted from becoming the calibration's start. */
  if (window > 2 * best + 64 || window > WALL_MAX_WINDOW) return w;
  uint64_t tm = t1 + window / 2;
  uint64_t ftick = atomic_load_explicit(&g_ftick, POLYTEL__RELAXED);
  if (!ftick) {
    uint64_t zero = 0;
    if (atomic_compare_exchange_strong(&g_ftick, &zero, tm)) atomic_store(&g_fmono, m);
    return w;
  }
  uint64_t fmono = atomic_load(&g_fmono);
  if (!fmono || m <= fmono || m - fmono < WALL_CALIBRATE_NS || tm <= ftick) return w;
  double rate = (double)(m - fmono) / (double)(tm - ftick);
  uint64_t s = atomic_load_explicit(&g_wseq, memory_order_acquire);
  if ((s & 1) || !atomic_compare_exchange_strong(&g_wseq, &s, s + 1)) return w; /* another thread writes */
  atomic_thread_fence(memory_order_release);
  uint64_t bits;
  memcpy(&bits, &rate, sizeof bits);
  atomic_store_explicit(&g_wtick, tm, POLYTEL__RELAXED);
  atomic_store_explicit(&g_wwall, w, POLYTEL__RELAXED);
  atomic_store_explicit(&g_wrate_bits, bits, POLYTEL__RELAXED);
  atomic_store_explicit(&g_wspan, (uint64_t)(WALL_REFRESH_NS / rate), POLYTEL__RELAXED);
  atomic_store_explicit(&g_wseq, s + 2, memory_order_release);
  return w;
}
#endif

uint64_t polytel_now_ns(void) {
#ifdef POLYTEL__HAVE_TSC
  if (POLYTEL__LIKELY(polytel__g_use_tsc)) {
    uint64_t s = atomic_load_explicit(&g_wseq, memory_order_acquire);
    uint64_t tick = atomic_load_explicit(&g_wtick, POLYTEL__RELAXED);
    uint64_t wall = atomic_load_explicit(&g_wwall, POLYTEL__RELAXED);
    uint64_t bits = atomic_load_explicit(&g_wrate_bits, POLYTEL__RELAXED);
    uint64_t span = atomic_load_explicit(&g_wspan, POLYTEL__RELAXED);
    atomic_thread_fence(memory_order_acquire);
    uint64_t t = __rdtsc();
    if (POLYTEL__LIKELY(!(s & 1) && atomic_load_explicit(&g_wseq, POLYTEL__RELAXED) == s &&
                        t - tick < span)) {
      double rate;
      memcpy(&rate, &bits, sizeof rate);
      return wall + (uint64_t)((double)(t - tick) * rate);
    }
    return wall_anchor();
  }
#endif
  return wall_ns();
}

uint64_t polytel__now_ms(void) {
  return polytel__mono_ns() / 1000000u;
}
