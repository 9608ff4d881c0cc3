/* pipeline.h — portable, I/O-free export pipeline: drain blocks, batch, encode, retry policy, accounting. */
#ifndef POLYTEL_PIPELINE_H
#define POLYTEL_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"

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
  uint8_t *owned_body;
  int in_flight;
} polytel__request_t;

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
 * max_in_flight reached). The request stays owned by the pipeline.
 */
polytel__request_t *polytel__pipeline_next(polytel__pipeline_t *pl, uint64_t now_ms);

/*
 * A request finished. http_status 0 = network error / timeout.
 * retry_after_ms: from a Retry-After header, -1 when absent.
 * 2xx: exported. 429/502/503/504/0: retried with backoff + jitter, honouring
 * Retry-After, until the export timeout; then dropped. Other: dropped, counted,
 * rate-limited warning.
 */
void polytel__pipeline_done(polytel__pipeline_t *pl, polytel__request_t *req, int http_status,
                            int64_t retry_after_ms, uint64_t now_ms);

/*
 * Logs + spans recorded but not yet exported or dropped (all threads, all
 * stages; during a flush, only those recorded before it began), plus metrics
 * requests still queued or in backoff.
 */
uint64_t polytel__pipeline_pending(const polytel__pipeline_t *pl);

/* Requests handed out by next() and not yet done(). */
uint32_t polytel__pipeline_in_flight(const polytel__pipeline_t *pl);

/* Shutdown past its deadline: drop (and count) everything still queued, not in flight. */
void polytel__pipeline_abandon(polytel__pipeline_t *pl);

/*
 * Phase 2 without libuv (wasm): enters FULL and hands back the pipeline for the
 * host to drive (pump/next/done); polytel_shutdown() ends it.
 */
int polytel__init_full_external(const polytel_config_t *cfg, polytel__pipeline_t **out);
/* The configuration in force (NULL before phase 1). */
const polytel__cfg_t *polytel__current_cfg(void);

/* A monotonic millisecond clock for transports. */
uint64_t polytel__now_ms(void);

#endif
