/* transport_uv.c — the libuv loop driver of the OTLP, file and none transports: wake-ups, pumping, flush,
 * stop, fork. */
#include "transport/uv.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define TP_PARK_WAIT_MS 200
/* After the flush deadline, how long a stopper waits for a host loop to run the teardown. */
#define TP_STOP_GRACE_MS 1000

typedef polytel__uv_t tp_t;

static _Atomic(tp_t *) g_tp;
/* App threads inside polytel__uv_wake(): the async handle is closed only once this is 0. */
static atomic_int g_wakers;
/* Serializes start/stop/flush against each other for the g_tp hand-over. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static tp_t *g_forgotten;

/* ------------------------------------------------------------------ helpers */

static int on_loop_thread(const tp_t *tp) {
  return pthread_equal(pthread_self(), tp->loop_tid);
}

static void tp_free(tp_t *tp) {
  if (tp->snd->free) tp->snd->free(tp);
  pthread_cond_destroy(&tp->cv);
  pthread_mutex_destroy(&tp->mu);
  free(tp);
}

static void tp_unref(tp_t *tp) {
  if (atomic_fetch_sub(&tp->refs, 1) == 1) tp_free(tp);
}

/* Takes a reference on the running transport, or NULL. */
static tp_t *tp_acquire(void) {
  pthread_mutex_lock(&g_mu);
  tp_t *tp = atomic_load(&g_tp);
  if (tp) atomic_fetch_add(&tp->refs, 1);
  pthread_mutex_unlock(&g_mu);
  return tp;
}

static void deadline_ts(struct timespec *ts, uint64_t deadline_ms) {
  /* Condvars use CLOCK_MONOTONIC; polytel__now_ms() may have another origin. */
  uint64_t now = polytel__now_ms();
  uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(left / 1000);
  ts->tv_nsec += (long)(left % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Wait on tp->cv (mu held) until deadline_ms. Returns 0 on timeout. */
static int tp_wait(tp_t *tp, uint64_t deadline_ms) {
  if (polytel__now_ms() >= deadline_ms) return 0;
  struct timespec ts;
  deadline_ts(&ts, deadline_ms);
  return pthread_cond_timedwait(&tp->cv, &tp->mu, &ts) != ETIMEDOUT;
}

static uint64_t add_ms(uint64_t now, uint32_t ms) {
  return ms == UINT32_MAX ? UINT64_MAX : now + ms;
}

const char *polytel__uv_signal_name(int sig) {
  switch (sig) {
    case POLYTEL__SIG_TRACES:
      return "traces";
    case POLYTEL__SIG_LOGS:
      return "logs";
    case POLYTEL__SIG_METRICS:
      return "metrics";
    default:
      return NULL;
  }
}

/* ---------------------------------------------------------------- loop core */

/*
 * A flush is done when nothing recorded before it is pending (the pipeline
 * counts only those during a flush), even if newer requests are in flight:
 * under continuous load there always are. Stop also waits for those.
 */
static int tp_idle(tp_t *tp, int strict) {
  return tp->api->pending(tp->pl) == 0 && (!strict || tp->api->in_flight(tp->pl) == 0);
}

/* Wake flush waiters whose request was served once nothing is pending. */
static void check_idle(tp_t *tp) {
  if (!tp->pl) return;
  pthread_mutex_lock(&tp->mu);
  int want = tp->flush_served > tp->flush_done, strict = tp->strict;
  uint64_t stop_gen = tp->stop_gen;
  pthread_mutex_unlock(&tp->mu);
  if (!want || !tp_idle(tp, strict)) return;
  pthread_mutex_lock(&tp->mu);
  tp->flush_done = tp->flush_served;
  /* Served the stop's own flush (not an older one that completed after the stop asked). */
  if (stop_gen && tp->flush_served >= stop_gen) tp->settled = 1;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
}

void polytel__uv_done(tp_t *tp, polytel__request_t *req, const polytel__response_t *r) {
  tp->api->done(tp->pl, req, r, polytel__now_ms());
}

void polytel__uv_done_status(tp_t *tp, polytel__request_t *req, int status, const char *error) {
  polytel__response_t r = {
      .status = status, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1, .error = error};
  polytel__uv_done(tp, req, &r);
}

void polytel__uv_handle_closed(tp_t *tp) {
  if (--tp->open_handles == 0 && tp->closing && !tp->owned) tp_unref(tp);
}

static void on_pump_timer(uv_timer_t *t) {
  tp_t *tp = t->data;
  tp->pump_due_ms = UINT64_MAX;
  polytel__uv_kick(tp);
}

/* Pump, start every ready request, re-arm the pump timer, wake flushers. */
void polytel__uv_kick(tp_t *tp) {
  if (tp->closing || tp->settled || !tp->pl) return;
  if (tp->in_kick) {
    tp->kick_again = 1;
    return;
  }
  tp->in_kick = 1;
  do {
    tp->kick_again = 0;
    uint64_t now = polytel__now_ms();
    uint32_t wait = tp->api->pump(tp->pl, now);
    polytel__request_t *req;
    while ((req = tp->api->next(tp->pl, now)) != NULL) tp->snd->send(tp, req);
    if (wait == UINT32_MAX) {
      uv_timer_stop(&tp->pump_timer);
      tp->pump_due_ms = UINT64_MAX;
    } else {
      if (wait == 0) wait = 1; /* a pipeline asking for "now" forever must not spin the loop */
      tp->pump_due_ms = add_ms(polytel__now_ms(), wait);
      uv_timer_start(&tp->pump_timer, on_pump_timer, wait, 0);
    }
  } while (tp->kick_again);
  tp->in_kick = 0;
  check_idle(tp);
}

/* Runs on the loop thread with nothing of the sender's library or libuv on the stack below us but uv_run. */
static void teardown(tp_t *tp);

static void on_close_tp_handle(uv_handle_t *h) {
  polytel__uv_handle_closed(h->data);
}

static void on_async(uv_async_t *a) {
  tp_t *tp = a->data;
  pthread_mutex_lock(&tp->mu);
  if (tp->park_req) {
    /* fork(): hold still, outside any sender or libuv call, until the parent hook releases us. */
    tp->parked = 1;
    pthread_cond_broadcast(&tp->cv);
    while (tp->park_req) pthread_cond_wait(&tp->cv, &tp->mu);
    tp->parked = 0;
  }
  int stop = tp->stop_req && !tp->closing;
  uint64_t flush = tp->flush_req, stop_gen = tp->stop_gen;
  pthread_mutex_unlock(&tp->mu);
  if (stop) {
    teardown(tp);
    return;
  }
  if (flush > tp->flush_served) {
    if (stop_gen && flush >= stop_gen && tp->api->stopping) tp->api->stopping(tp->pl);
    tp->api->force(tp->pl, polytel__now_ms());
    tp->flush_served = flush;
  }
  polytel__uv_kick(tp);
}

/*
 * Flush on the loop's own thread. uv_run is not reentrant (this may be a
 * callback of that loop), so the sender waits for its own I/O instead
 * (curl: poll(2) on its sockets, curl_multi_socket_action still the only way curl is driven).
 */
static int drive_inline(tp_t *tp, uint64_t deadline, int strict) {
  if (tp->closing || !tp->pl) return 0;
  if (tp->in_io || tp->in_kick) return tp_idle(tp, strict);
  if (strict && tp->api->stopping) tp->api->stopping(tp->pl);
  tp->api->force(tp->pl, polytel__now_ms());
  polytel__uv_kick(tp);
  while (!tp_idle(tp, strict)) {
    uint64_t now = polytel__now_ms();
    if (now >= deadline) break;
    uint64_t until = deadline, sd = tp->snd->due_ms ? tp->snd->due_ms(tp) : UINT64_MAX;
    if (sd < until) until = sd;
    if (tp->pump_due_ms < until) until = tp->pump_due_ms;
    int wait = until > now ? (int)(until - now) : 0;
    if (tp->snd->drive)
      tp->snd->drive(tp, wait); /* also pumps, when I/O completed */
    else
      poll(NULL, 0, wait);
    if (tp->pump_due_ms <= polytel__now_ms()) polytel__uv_kick(tp);
  }
  return tp_idle(tp, strict);
}

static void teardown(tp_t *tp) {
  int delivered = tp->pl ? tp_idle(tp, 1) : 1;
  pthread_mutex_lock(&tp->mu);
  tp->closing = 1;
  pthread_mutex_unlock(&tp->mu);
  /*
   * In flight at the deadline: cancelled. One whose body went out may have
   * arrived (the pipeline counts it unconfirmed); the rest is dropped, counted.
   */
  if (tp->snd->teardown) tp->snd->teardown(tp);
  tp->api->abandon(tp->pl);
  tp->api->free(tp->pl);
  tp->pl = NULL;
  uv_close((uv_handle_t *)&tp->async, on_close_tp_handle);
  uv_close((uv_handle_t *)&tp->pump_timer, on_close_tp_handle);

  pthread_mutex_lock(&tp->mu);
  tp->stopped = 1;
  tp->stop_result = delivered ? 0 : POLYTEL_ETIMEDOUT;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
}

/* Create every handle on tp->loop; runs on the loop's thread. */
static int init_handles(tp_t *tp) {
  if (uv_async_init(tp->loop, &tp->async, on_async) != 0) return POLYTEL_EIO;
  tp->async.data = tp;
  uv_timer_init(tp->loop, &tp->pump_timer);
  tp->pump_timer.data = tp;
  /* On a host loop, telemetry must never keep the application's loop alive. */
  if (!tp->owned) uv_unref((uv_handle_t *)&tp->async);
  uv_unref((uv_handle_t *)&tp->pump_timer);
  tp->open_handles = 2;
  int rc = tp->snd->open ? tp->snd->open(tp) : 0;
  if (rc != 0) {
    /* The sender opened nothing. Ours close on the loop's next turn: the owned loop runs it at once, a host
     * loop when it runs again, and then its last close callback frees tp (start must not). */
    tp->closing = 1;
    uv_close((uv_handle_t *)&tp->async, on_close_tp_handle);
    uv_close((uv_handle_t *)&tp->pump_timer, on_close_tp_handle);
  }
  return rc;
}

static void *loop_thread(void *arg) {
  tp_t *tp = arg;
#if defined(__GLIBC__)
  pthread_setname_np(pthread_self(), "polytel-loop");
#endif
  /*
   * Left at the default policy: SCHED_BATCH (session 6) made a counter add on a recording thread 0.2-0.3 ns
   * (~20 %) dearer by that thread's own CPU time, in every alternating round, and a span pair no cheaper by
   * either clock (docs/architecture.md, "Threads, loops, fork, exit").
   */
  int rc = uv_loop_init(&tp->own_loop) == 0 ? 0 : POLYTEL_EIO;
  tp->loop = &tp->own_loop;
  if (rc == 0) {
    rc = init_handles(tp);
    if (rc != 0) {
      uv_run(&tp->own_loop, UV_RUN_NOWAIT); /* the close callbacks */
      uv_loop_close(&tp->own_loop);
    }
  }
  pthread_mutex_lock(&tp->mu);
  tp->loop_tid = pthread_self();
  tp->init_rc = rc;
  tp->ready = 1;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
  if (rc != 0) return NULL;
  uv_run(&tp->own_loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&tp->own_loop) != 0) {
    uv_run(&tp->own_loop, UV_RUN_NOWAIT);
    uv_loop_close(&tp->own_loop);
  }
  tp_unref(tp);
  return NULL;
}

/* ---------------------------------------------------------------- the transport */

int polytel__uv_start(const polytel__transport_t *self, uv_loop_t *loop, polytel__pipeline_t *pl,
                      const polytel__pipeline_api_t *api, const polytel__cfg_t *cfg) {
  const polytel__sender_t *snd = self ? self->impl : NULL;
  if (!pl || !cfg || !api || !snd) return POLYTEL_EINVAL;
  pthread_mutex_lock(&g_mu);
  if (atomic_load(&g_tp)) {
    pthread_mutex_unlock(&g_mu);
    return POLYTEL_EALREADY;
  }
  tp_t *tp = calloc(1, sizeof *tp);
  if (!tp) {
    pthread_mutex_unlock(&g_mu);
    return POLYTEL_ENOMEM;
  }
  /* The loop's reference: released by the owned thread at exit, or by the last close callback. */
  atomic_init(&tp->refs, 1);
  tp->snd = snd;
  tp->api = api;
  tp->pl = pl;
  tp->owned = loop == NULL;
  tp->pump_due_ms = UINT64_MAX;
  tp->default_timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
  pthread_mutex_init(&tp->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&tp->cv, &ca);
  pthread_condattr_destroy(&ca);
  int rc = snd->init ? snd->init(tp, cfg) : 0;
  if (rc == 0 && loop) {
    tp->loop = loop;
    tp->loop_tid = pthread_self();
    rc = init_handles(tp);
  } else if (rc == 0) {
    /* The loop thread takes no signals: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&tp->thread, NULL, loop_thread, tp) == 0 ? 0 : POLYTEL_EIO;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
      pthread_mutex_lock(&tp->mu);
      while (!tp->ready) pthread_cond_wait(&tp->cv, &tp->mu);
      rc = tp->init_rc;
      pthread_mutex_unlock(&tp->mu);
      if (rc != 0) pthread_join(tp->thread, NULL);
    }
  }
  if (rc != 0) {
    tp->pl = NULL;                          /* on failure the caller keeps the pipeline */
    if (tp->open_handles == 0) tp_free(tp); /* else a host loop's close callbacks free it */
    pthread_mutex_unlock(&g_mu);
    return rc;
  }
  atomic_store(&g_tp, tp);
  /* Whatever was recorded before start (deferred phase) goes out on the first turn of the loop. */
  uv_async_send(&tp->async);
  pthread_mutex_unlock(&g_mu);
  return 0;
}

void polytel__uv_wake(void) {
  atomic_fetch_add(&g_wakers, 1);
  tp_t *tp = atomic_load(&g_tp);
  if (tp) uv_async_send(&tp->async);
  atomic_fetch_sub(&g_wakers, 1);
}

/* From a thread other than the loop's: ask the loop to force, wait for idle. */
static int flush_remote(tp_t *tp, uint64_t deadline, int strict) {
  pthread_mutex_lock(&tp->mu);
  if (strict) tp->strict = 1;
  if (tp->closing) {
    pthread_mutex_unlock(&tp->mu);
    return POLYTEL_ETIMEDOUT;
  }
  uint64_t gen = ++tp->flush_req;
  if (strict) tp->stop_gen = gen;
  uv_async_send(&tp->async);
  while (tp->flush_done < gen && !tp->closing)
    if (!tp_wait(tp, deadline)) break;
  int rc = tp->flush_done >= gen ? 0 : POLYTEL_ETIMEDOUT;
  pthread_mutex_unlock(&tp->mu);
  return rc;
}

int polytel__uv_flush(uint32_t timeout_ms) {
  tp_t *tp = tp_acquire();
  if (!tp) return 0;
  uint64_t deadline = polytel__now_ms() + timeout_ms;
  int rc;
  if (on_loop_thread(tp))
    rc = drive_inline(tp, deadline, 0) ? 0 : POLYTEL_ETIMEDOUT;
  else
    rc = flush_remote(tp, deadline, 0);
  tp_unref(tp);
  return rc;
}

int polytel__uv_stop(uint32_t timeout_ms) {
  pthread_mutex_lock(&g_mu);
  tp_t *tp = atomic_load(&g_tp);
  if (!tp) {
    pthread_mutex_unlock(&g_mu);
    return 0;
  }
  atomic_fetch_add(&tp->refs, 1);
  uint64_t deadline = polytel__now_ms() + timeout_ms;
  /* Flush first, while wake-ups still work (other threads may hand off blocks meanwhile). */
  int self = on_loop_thread(tp);
  if (self)
    drive_inline(tp, deadline, 1);
  else
    flush_remote(tp, deadline, 1);
  atomic_store(&g_tp, NULL);
  while (atomic_load(&g_wakers) != 0) sched_yield();
  pthread_mutex_unlock(&g_mu);

  int rc;
  if (self) {
    teardown(tp);
    rc = tp->stop_result;
    if (tp->owned) pthread_detach(tp->thread); /* stopped from inside our own loop: it exits by itself */
  } else {
    pthread_mutex_lock(&tp->mu);
    tp->stop_req = 1;
    if (!tp->closing) uv_async_send(&tp->async);
    if (tp->owned) {
      while (!tp->stopped) pthread_cond_wait(&tp->cv, &tp->mu);
    } else {
      /* A host loop that no longer runs cannot tear down; leave it the work rather than hang. */
      uint64_t give_up = polytel__now_ms() + TP_STOP_GRACE_MS;
      if (give_up < deadline) give_up = deadline;
      while (!tp->stopped)
        if (!tp_wait(tp, give_up)) break;
    }
    rc = tp->stopped ? tp->stop_result : POLYTEL_ETIMEDOUT;
    pthread_mutex_unlock(&tp->mu);
    if (tp->owned) pthread_join(tp->thread, NULL);
  }
  tp_unref(tp);
  return rc;
}

void polytel__uv_atfork_prepare(void) {
  tp_t *tp = atomic_load(&g_tp);
  if (!tp || !tp->owned || on_loop_thread(tp)) return;
  uint64_t deadline = polytel__now_ms() + TP_PARK_WAIT_MS;
  pthread_mutex_lock(&tp->mu);
  if (!tp->closing) {
    tp->park_req = 1;
    uv_async_send(&tp->async);
    while (!tp->parked)
      if (!tp_wait(tp, deadline)) break;
  }
  pthread_mutex_unlock(&tp->mu);
}

void polytel__uv_atfork_parent(void) {
  tp_t *tp = atomic_load(&g_tp);
  if (!tp) return;
  pthread_mutex_lock(&tp->mu);
  tp->park_req = 0;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
}

void polytel__uv_atfork_child(void) {
  /*
   * The parent's sockets, TLS sessions and loop are shared with the parent:
   * closing them here (TLS close_notify, epoll changes) would break its
   * connections. Forget them; a new transport may be started.
   */
  tp_t *tp = atomic_load(&g_tp);
  if (tp) {
    tp->forgotten_next = g_forgotten;
    g_forgotten = tp;
  }
  atomic_store(&g_tp, NULL);
  atomic_store(&g_wakers, 0);
  pthread_mutex_init(&g_mu, NULL);
}

int polytel__uv_running(void) {
  return atomic_load(&g_tp) != NULL;
}

int polytel__uv_parked(void) {
  tp_t *tp = atomic_load(&g_tp);
  if (!tp) return 0;
  pthread_mutex_lock(&tp->mu);
  int parked = tp->parked;
  pthread_mutex_unlock(&tp->mu);
  return parked;
}
