/* process.h — resource attributes: service.*, process.*, host.*, telemetry.sdk.*. */
#ifndef POLYTEL_PROCESS_H
#define POLYTEL_PROCESS_H

#include "common/config.h"
#include "common/types.h"

/*
 * Build the resource for this process (reads getpid(), the executable name and
 * the host name now: call again after fork). Precedence for service.name:
 * cfg->service_name (OTEL_SERVICE_NAME) > service.name in OTEL_RESOURCE_ATTRIBUTES
 * > executable name. Always includes service.name, process.pid,
 * process.executable.name, host.name, telemetry.sdk.name ("polytel"),
 * telemetry.sdk.language (cfg->sdk_language), telemetry.sdk.version. In wasm,
 * polytel__host_resource() replaces process.pid, process.executable.name and host.name.
 */
int polytel__resource_build(const polytel__cfg_t *cfg, polytel__resource_t *out);
void polytel__resource_free(polytel__resource_t *res);
/*
 * The executable's name (basename of /proc/self/exe, else
 * program_invocation_short_name, else "unknown") into buf; returns its length.
 */
size_t polytel__exe_name(char *buf, size_t cap);
#if defined(__EMSCRIPTEN__)
/*
 * wasm: the attributes the host runtime knows (process.*, host.*, browser.*, ...), typed, in place of
 * process.pid / process.executable.name / host.name. Defined by the binding (bindings/wasm/src/shim.c).
 */
const polytel__kv_t *polytel__host_resource(size_t *n);
#endif
/* Value of a string attribute, or NULL. */
const char *polytel__resource_get(const polytel__resource_t *res, const char *key, uint32_t *len);

#endif
