/* transport_uv.h — the libuv loop driver shared by the OTLP, file and none transports, and their senders. */
#ifndef POLYTEL_TRANSPORT_UV_H
#define POLYTEL_TRANSPORT_UV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "transport/transport.h"

typedef struct polytel__uv_s polytel__uv_t;

/*
 * What differs between the libuv transports: how a request is sent. The driver (transport_uv.c) owns the
 * loop (a thread of its own or the host's), the wake-ups, the pump timer, flush, stop and fork; a sender
 * owns its I/O. Every hook runs on the loop's thread except init and free.
 */
typedef struct polytel__sender_s {
  /* Copy what it needs from cfg into its state (tp->ss); on the starting thread. 0 or POLYTEL_ENOMEM. */
  int (*init)(polytel__uv_t *tp, const polytel__cfg_t *cfg);
  /* Create its loop handles (counted in tp->open_handles, closed with polytel__uv_close_handle). */
  int (*open)(polytel__uv_t *tp);
  /* Send one request handed out by next(); report it with polytel__uv_done(), now or later. */
  void (*send)(polytel__uv_t *tp, polytel__request_t *req);
  /*
   * A flush on the loop's own thread cannot run the loop (uv_run is not reentrant): wait at most wait_ms for
   * the sender's I/O and act on it. NULL: the sender has no I/O to wait for (requests end in send()).
   */
  void (*drive)(polytel__uv_t *tp, int wait_ms);
  /* When the sender next needs drive() without I/O (its own timer), UINT64_MAX for never. */
  uint64_t (*due_ms)(const polytel__uv_t *tp);
  /* Stop: cancel what is in flight (reporting each with POLYTEL__NET_ABORTED) and close its handles. */
  void (*teardown)(polytel__uv_t *tp);
  /* Free its state (any thread, after teardown or a failed start). */
  void (*free)(polytel__uv_t *tp);
} polytel__sender_t;

struct polytel__uv_s {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owned;
  pthread_t thread;   /* the owned loop thread */
  pthread_t loop_tid; /* whichever thread runs the loop */
  polytel__pipeline_t *pl;
  const polytel__pipeline_api_t *api;
  const polytel__sender_t *snd;
  void *ss; /* the sender's state */
  uint32_t default_timeout_ms;

  /* Loop-thread state. */
  uv_async_t async;
  uv_timer_t pump_timer;
  uint64_t pump_due_ms; /* UINT64_MAX: not armed */
  int open_handles;
  int in_kick, kick_again, closing;
  int in_io; /* inside the sender's library (curl): a flush on this thread must not re-enter it */
  uint64_t flush_served;
  /* The stop's flush is complete: nothing new starts before the teardown (a periodic metrics snapshot begun
   * in that gap was in flight at the teardown, and made a shutdown that lost nothing return ETIMEDOUT). */
  int settled;

  atomic_int refs;
  struct polytel__uv_s *forgotten_next; /* fork child: keeps leaked transports reachable */

  /* Shared with application threads: under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready, init_rc;
  uint64_t flush_req, flush_done;
  int stop_req, stopped, stop_result;
  int strict;        /* stopping: also wait for requests in flight (metrics carry no pending count) */
  uint64_t stop_gen; /* the flush generation the stop waits for; 0: not stopping */
  int park_req, parked;
};

/* The driver's side of a transport: each libuv transport is these with its sender (self->impl). */
int polytel__uv_start(const polytel__transport_t *self, uv_loop_t *loop, polytel__pipeline_t *pl,
                      const polytel__pipeline_api_t *api, const polytel__cfg_t *cfg);
void polytel__uv_wake(void);
int polytel__uv_flush(uint32_t timeout_ms);
int polytel__uv_stop(uint32_t timeout_ms);
void polytel__uv_atfork_prepare(void);
void polytel__uv_atfork_parent(void);
void polytel__uv_atfork_child(void);
/* 1 while a libuv transport runs. */
int polytel__uv_running(void);
/* Tests: 1 when the running transport's loop thread is parked for a fork. */
int polytel__uv_parked(void);

/* Connections the OTLP transport keeps open to one collector (a telemetry side-channel, not a race). */
#define POLYTEL__HTTP_MAX_HOST_CONNECTIONS 2

/* A libuv transport: the driver's functions and a sender. */
#define POLYTEL__UV_TRANSPORT(name, sender)                                                       \
  {                                                                                               \
    (name), polytel__uv_start, polytel__uv_wake, polytel__uv_flush, polytel__uv_stop,             \
        polytel__uv_atfork_prepare, polytel__uv_atfork_parent, polytel__uv_atfork_child, (sender) \
  }

/* For senders. An attempt ended: the pipeline decides. */
void polytel__uv_done(polytel__uv_t *tp, polytel__request_t *req, const polytel__response_t *r);
/* The same for an exporter without HTTP: an HTTP-like status, with the local error text for warnings. */
void polytel__uv_done_status(polytel__uv_t *tp, polytel__request_t *req, int status, const char *error);
/* Pump, send what is ready, re-arm the pump timer, wake flushers (after a sender's I/O completed). */
void polytel__uv_kick(polytel__uv_t *tp);
/* A handle of the sender's was closed (uv_close callback bookkeeping). */
void polytel__uv_handle_closed(polytel__uv_t *tp);
/* "traces", "logs", "metrics"; NULL for another value. */
const char *polytel__uv_signal_name(int sig);

#endif
