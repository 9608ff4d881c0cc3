/* transports.c — which transport exports: the host's when it registered one, else this build's for the
 * configured exporter. */
#include <stdatomic.h>

#include "transport/transport.h"

static _Atomic(const polytel__transport_t *) g_host;

void polytel__transport_set_host(const polytel__transport_t *t) {
  atomic_store(&g_host, t);
}

const polytel__transport_t *polytel__transport_for(const polytel__cfg_t *cfg) {
  const polytel__transport_t *host = atomic_load(&g_host);
  if (host) return host;
#if POLYTEL_WITH_UV
  switch (cfg->exporter) {
    case POLYTEL_EXPORTER_FILE:
      return &polytel__transport_file;
    case POLYTEL_EXPORTER_NONE:
      return &polytel__transport_none;
    default:
      return &polytel__transport_otlp;
  }
#else
  (void)cfg;
  return NULL; /* no libuv: only a host can export */
#endif
}
