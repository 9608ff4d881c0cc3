/* transport.h — what moves a pipeline's requests: a table of functions, one per way of exporting. */
#ifndef POLYTEL_TRANSPORT_H
#define POLYTEL_TRANSPORT_H

#include <stdint.h>

#include "common/common.h"
#include "export/export.h"

struct uv_loop_s;

/*
 * A transport drives one pipeline at a time: it pumps it on its timers and wake-ups, sends what next()
 * hands out and reports each attempt with done() (the pipeline decides retries, drops and counts; a
 * transport never repeats that policy). Implementations: OTLP/HTTP with libcurl on libuv
 * (polytel__transport_otlp), the file exporter (polytel__transport_file) and none (polytel__transport_none),
 * which share the libuv loop driver (transport_uv.c), and the host's own (the wasm binding's JS, registered
 * with polytel__transport_set_host()). Tests drive a transport with a scripted pipeline through `api`, and
 * the pipeline with a scripted transport.
 */
typedef struct polytel__transport_s {
  const char *name;
  /*
   * Start exporting `pl` (owned by the transport from here on: api->free() at stop). loop != NULL: handles
   * are created on it; must be called on its thread. loop == NULL: the transport runs its own loop thread
   * (or, for the host's, the host drives it). The cfg is copied (it need not outlive the call). On failure
   * (POLYTEL_EINVAL, _ENOMEM, _EIO, _EALREADY) the caller still owns `pl`.
   */
  int (*start)(const struct polytel__transport_s *self, struct uv_loop_s *loop, polytel__pipeline_t *pl,
               const polytel__pipeline_api_t *api, const polytel__cfg_t *cfg);
  /* Any thread, cheap (a block was handed off: pump soon). NULL: the host polls. */
  void (*wake)(void);
  /* Any thread: force the pipeline, wait until nothing recorded before is pending or the timeout passed.
   * 0 or POLYTEL_ETIMEDOUT. */
  int (*flush)(uint32_t timeout_ms);
  /* Flush up to the timeout, then cancel what is in flight, count what is left (api->abandon), free the
   * pipeline, release everything. 0 when everything was delivered, else POLYTEL_ETIMEDOUT. Bounded. */
  int (*stop)(uint32_t timeout_ms);
  /* pthread_atfork, around the core's own handlers (NULL: nothing to do). The child forgets the parent's
   * transport without touching what it shares with the parent (sockets, TLS sessions, the loop). */
  void (*atfork_prepare)(void);
  void (*atfork_parent)(void);
  void (*atfork_child)(void);
  const void *impl; /* the implementation's own (the libuv transports: their sender) */
} polytel__transport_t;

/* The libuv transports (NULL-free only in a build with POLYTEL_WITH_UV). */
extern const polytel__transport_t polytel__transport_otlp;
extern const polytel__transport_t polytel__transport_file;
extern const polytel__transport_t polytel__transport_none;

/*
 * The transport for a resolved configuration: the host's when one is registered, else the libuv transport
 * of cfg->exporter; NULL when this build has none (POLYTEL_WITH_UV=OFF and no host transport).
 */
const polytel__transport_t *polytel__transport_for(const polytel__cfg_t *cfg);

/* A host that drives export itself (the wasm binding) registers its transport before phase 2; NULL removes
 * it. Not thread-safe against a running phase 2. */
void polytel__transport_set_host(const polytel__transport_t *t);

#endif
