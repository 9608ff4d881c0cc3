/* pipeline.h — portable, I/O-free export pipeline: drain blocks, batch, encode, retry policy, accounting. */
#ifndef POLYTEL_PIPELINE_H
#define POLYTEL_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/*
 * One encoded request, ready for a transport. Owned by the pipeline: the
 * transport reads it and hands it back with polytel__pipeline_done().
 */
typedef struct polytel__request_s {
  polytel__signal_t signal;
  const char *url; /* full URL (OTLP) */
  const uint8_t *body;
  size_t body_len;
  const char *content_type; /* "application/x-protobuf" or "application/json" */
  int gzip;                 /* polytel_compression_t of the body (0: none): its Content-Encoding */
  uint32_t timeout_ms;      /* per-request timeout */
  uint32_t attempt;         /* 0 for the first try */
  void *transport_data;     /* free for the transport's use */
  /* private */
  struct polytel__request_s *next;
  uint64_t n_items; /* logs or spans carried (0 for metrics) */
  uint64_t not_before_ms;
  uint64_t first_try_ms;
  uint64_t last_done_ms;  /* when the last attempt ended */
  int64_t retry_after_ms; /* what the collector last asked for, -1 when it did not */
  uint8_t *owned_body;
  int in_flight;
  int maybe_delivered; /* an attempt was sent and never answered: its records may have arrived */
  int owed;            /* a metrics snapshot a flush waits for (its own), not a periodic one */
} polytel__request_t;

/* How an attempt ended, as the transport saw it. */
typedef enum {
  POLYTEL__NET_OK = 0,      /* an HTTP answer was received (see status) */
  POLYTEL__NET_CONNECT = 1, /* could not connect / resolve: nothing was sent */
  POLYTEL__NET_TIMEOUT = 2, /* no (complete) answer before the per-request timeout */
  POLYTEL__NET_TLS = 3,     /* TLS verification or handshake failure: will not heal, not retried */
  POLYTEL__NET_OTHER = 4,   /* any other transport error (reset, send error, CORS/opaque in the browser) */
  POLYTEL__NET_ABORTED = 5  /* cancelled by shutdown */
} polytel__net_class_t;

/* A response, described by the transport; everything it points to need only live during done(). */
typedef struct polytel__response_s {
  int status; /* HTTP status when net == POLYTEL__NET_OK, else 0 */
  polytel__net_class_t net;
  int sent;               /* 1 when the whole body was handed to the network (it may have arrived) */
  int64_t retry_after_ms; /* from Retry-After, -1 when absent */
  const uint8_t
      *body; /* response body (the transport keeps at most POLYTEL__RESPONSE_BODY_MAX), may be NULL */
  size_t body_len;
  const char *content_type; /* response Content-Type, may be NULL */
  const char *error;        /* transport error text for warnings (curl errbuf, JS message), may be NULL */
} polytel__response_t;

#define POLYTEL__RESPONSE_BODY_MAX ((size_t)64 * 1024)

/* What became of the request: the transport never repeats this policy. */
typedef enum {
  POLYTEL__DONE_EXPORTED =
      0,                   /* accepted (records a partial_success rejected are counted as dropped_rejected) */
  POLYTEL__DONE_RETRY = 1, /* kept: next() hands it out again after its backoff */
  POLYTEL__DONE_DROPPED = 2,    /* gone, its records counted as dropped_export */
  POLYTEL__DONE_UNCONFIRMED = 3 /* gone, its records counted as unconfirmed (sent, never answered) */
} polytel__done_t;

typedef struct polytel__pipeline_s polytel__pipeline_t;

/* All functions below run on one thread at a time (the transport's loop thread). */
polytel__pipeline_t *polytel__pipeline_new(const polytel__cfg_t *cfg, const polytel__resource_t *res);
void polytel__pipeline_free(polytel__pipeline_t *pl);

/*
 * Drain events from every thread into batches, cut batches that are full or
 * due, collect metrics when the interval elapsed. Returns the milliseconds
 * until it wants to be pumped again (UINT32_MAX: only on a wake-up).
 */
uint32_t polytel__pipeline_pump(polytel__pipeline_t *pl, uint64_t now_ms);

/* Flush: drain everything now, cut every partial batch, collect metrics. */
void polytel__pipeline_force(polytel__pipeline_t *pl, uint64_t now_ms);

/*
 * The next request to send now, or NULL (nothing ready, in backoff, or
 * max_in_flight reached; at most one metrics request in flight, so snapshots
 * arrive in time order). The request stays owned by the pipeline.
 */
polytel__request_t *polytel__pipeline_next(polytel__pipeline_t *pl, uint64_t now_ms);

/*
 * An attempt ended (the request was handed out by next()). The pipeline
 * decides, once for every transport: 2xx exported (minus what a
 * partial_success rejected); 429/502/503/504 and connect/timeout/other network
 * errors retried after max(backoff step, Retry-After), the step exponential
 * with jitter, while the export timeout allows; other statuses and TLS failures
 * dropped at once. A request that ends without an answer after any attempt
 * was sent is unconfirmed, not dropped. Every outcome is counted and warned
 * about, rate-limited per (signal, cause, outcome). After DONE_EXPORTED,
 * DONE_DROPPED and DONE_UNCONFIRMED the request is freed.
 */
polytel__done_t polytel__pipeline_done(polytel__pipeline_t *pl, polytel__request_t *req,
                                       const polytel__response_t *resp, uint64_t now_ms);

/*
 * Logs + spans recorded but not yet exported or dropped (all threads, all
 * stages; during a flush, only those recorded before it began), plus the
 * metrics snapshot a flush owes (its own, until answered or dropped). Periodic
 * snapshots count only once the stop's flush began (stopping), where every
 * metrics request queued or in backoff does, and so does the settling one.
 */
uint64_t polytel__pipeline_pending(const polytel__pipeline_t *pl);

/* Requests handed out by next() and not yet done(). */
uint32_t polytel__pipeline_in_flight(const polytel__pipeline_t *pl);

/*
 * Shutdown past its deadline: everything left is counted and freed. Records in
 * batches or in requests never sent are dropped_export; requests with an attempt
 * sent and never answered, and requests still in flight (a transport that could
 * not report them, e.g. a fetch the page left running), are unconfirmed.
 */
void polytel__pipeline_abandon(polytel__pipeline_t *pl);

/*
 * Page exit (the wasm transport in a browser, which has one last chance to send within the browser's
 * keepalive budget). exit_cut drains every block, past the queue bound, and cuts every partial batch;
 * returns the requests queued and not in flight. exit_take hands out the next log or span request
 * of those whatever the in-flight cap and backoff. A taken request then goes to done() as usual, or
 * back to the queue (exit_release), or is dropped and counted as dropped_export (exit_drop).
 * exit_metrics collects a snapshot now (so its self-metrics count those drops), replacing the
 * snapshots still queued, and hands it out; NULL when there is nothing to report, or (not final) while
 * a snapshot is in flight, so snapshots keep arriving in time order.
 */
size_t polytel__pipeline_exit_cut(polytel__pipeline_t *pl, uint64_t now_ms);
polytel__request_t *polytel__pipeline_exit_take(polytel__pipeline_t *pl);
void polytel__pipeline_exit_release(polytel__pipeline_t *pl, polytel__request_t *req);
void polytel__pipeline_exit_drop(polytel__pipeline_t *pl, polytel__request_t *req);
polytel__request_t *polytel__pipeline_exit_metrics(polytel__pipeline_t *pl, uint64_t now_ms, int final);

/*
 * The functions above that a transport calls, as a table: transports drive a pipeline through it, so a
 * transport can be tested against a scripted pipeline (tests/unit/test_transport.c).
 */
typedef struct polytel__pipeline_api_s {
  uint32_t (*pump)(polytel__pipeline_t *pl, uint64_t now_ms);
  void (*force)(polytel__pipeline_t *pl, uint64_t now_ms);
  polytel__request_t *(*next)(polytel__pipeline_t *pl, uint64_t now_ms);
  polytel__done_t (*done)(polytel__pipeline_t *pl, polytel__request_t *req, const polytel__response_t *resp,
                          uint64_t now_ms);
  uint64_t (*pending)(const polytel__pipeline_t *pl);
  uint32_t (*in_flight)(const polytel__pipeline_t *pl);
  void (*abandon)(polytel__pipeline_t *pl);
  void (*free)(polytel__pipeline_t *pl);
  /* Optional (NULL: none): the flush being served is the stop's; periodic snapshots end. */
  void (*stopping)(polytel__pipeline_t *pl);
} polytel__pipeline_api_t;

/* The pipeline's own (pipeline.c). */
/*
 * The stop's flush has begun: no more periodic metrics snapshots (the flush's own carry the totals). Under
 * load a snapshot's export can take as long as the interval: each one begun during the flush kept it pending.
 */
void polytel__pipeline_stopping(polytel__pipeline_t *pl);

extern const polytel__pipeline_api_t polytel__pipeline_api;

#endif
