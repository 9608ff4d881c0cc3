/* clock.c — fast timestamps: invariant TSC when available, calibrated lazily against CLOCK_MONOTONIC. */
#include <pthread.h>
#include <stdatomic.h>
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
EM_JS(double, polytel__js_wall_ms, (void), { return performance.timeOrigin + performance.now(); })
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

uint64_t polytel_now_ns(void) {
  return wall_ns();
}

uint64_t polytel__now_ms(void) {
  return polytel__mono_ns() / 1000000u;
}
