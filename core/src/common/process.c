/* process.c — the resource: service.*, process.*, host.*, telemetry.sdk.* and OTEL_RESOURCE_ATTRIBUTES pairs.
 */
#include "common/process.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t polytel__exe_name(char *buf, size_t cap) {
  const char *name = NULL;
  if (!buf || cap == 0) return 0;
#if defined(__linux__)
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n > 0) {
    path[n] = '\0';
    /* An executable replaced on disk reads back as "/path/exe (deleted)". */
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && strcmp(path + n - dl, deleted) == 0) path[n - dl] = '\0';
    const char *slash = strrchr(path, '/');
    name = slash ? slash + 1 : path;
  }
#endif
#if defined(__GLIBC__)
  if (!name || !*name) name = program_invocation_short_name;
#endif
  if (!name || !*name) name = "unknown";
  snprintf(buf, cap, "%s", name);
  return strlen(buf);
}

typedef struct item_s {
  const char *key;
  uint8_t type; /* POLYTEL_ATTR_STRING, _INT, _BOOL or an array (its bytes in str, record.h) */
  const char *str;
  uint32_t len; /* of str */
  int64_t i;
} item_t;

static item_t str_item(const char *key, const char *value) {
  return (item_t){key, POLYTEL_ATTR_STRING, value, (uint32_t)strlen(value), 0};
}

int polytel__resource_build(const polytel__cfg_t *cfg, polytel__resource_t *out) {
  if (!cfg || !out) return POLYTEL_EINVAL;
  memset(out, 0, sizeof *out);
#if defined(__EMSCRIPTEN__)
  /*
   * wasm: getpid() is a constant and the host name is "emscripten", values of no process. The binding
   * supplies what its runtime knows instead (Node: the real pid, host, runtime; a browser: browser.*,
   * user_agent.original, a per-page service.instance.id).
   */
  size_t n_host = 0;
  const polytel__kv_t *host_kv = polytel__host_resource(&n_host);
  const char *fallback = "unknown_service";
#else
  char exe[256], host[256];
  size_t n_host = 0;
  polytel__exe_name(exe, sizeof exe);
  if (gethostname(host, sizeof host) != 0 || !host[0]) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  const char *fallback = exe;
#endif

  const char *service = cfg->service_name;
  if (!service) {
    for (size_t i = 0; i < cfg->n_resource_attrs; i++) {
      if (strcmp(cfg->resource_attrs[i].key, "service.name") == 0) service = cfg->resource_attrs[i].value;
    }
  }
  if (!service || !*service) service = fallback;

  size_t max_items = 8 + n_host + cfg->n_resource_attrs, n = 0;
  item_t *items = calloc(max_items, sizeof *items);
  if (!items) return POLYTEL_ENOMEM;
  items[n++] = str_item("service.name", service);
  if (cfg->service_version && *cfg->service_version)
    items[n++] = str_item("service.version", cfg->service_version);
  items[n++] = str_item("telemetry.sdk.name", "polytel");
  items[n++] = str_item("telemetry.sdk.language", cfg->sdk_language ? cfg->sdk_language : "c");
  items[n++] = str_item("telemetry.sdk.version", POLYTEL_VERSION_STRING);
#if defined(__EMSCRIPTEN__)
  for (size_t h = 0; h < n_host; h++) {
    const polytel__kv_t *kv = &host_kv[h];
    item_t it = {kv->key, kv->type, NULL, 0, 0};
    if (polytel__kv_has_bytes(kv->type)) {
      it.str = kv->v.str.ptr;
      it.len = kv->v.str.len;
    } else if (kv->type == POLYTEL_ATTR_BOOL) {
      it.i = kv->v.b;
    } else if (kv->type == POLYTEL_ATTR_INT) {
      it.i = kv->v.i;
    } else {
      continue;
    }
    items[n++] = it;
  }
#else
  items[n++] = (item_t){"process.pid", POLYTEL_ATTR_INT, NULL, 0, (int64_t)getpid()};
  items[n++] = str_item("process.executable.name", exe);
  items[n++] = str_item("host.name", host);
#endif

  /* User pairs override what was detected (as in the OTel SDKs), except service.name, settled above. */
  for (size_t p = 0; p < cfg->n_resource_attrs; p++) {
    const polytel__strpair_t *pair = &cfg->resource_attrs[p];
    if (!pair->key || !pair->value || strcmp(pair->key, "service.name") == 0) continue;
    size_t j = 0;
    while (j < n && strcmp(items[j].key, pair->key) != 0) j++;
    items[j] = str_item(pair->key, pair->value);
    if (j == n) n++;
  }

  /* One block: the kv array, then every key and string value, NUL-terminated. */
  size_t bytes = n * sizeof(polytel__kv_t);
  for (size_t j = 0; j < n; j++) {
    bytes += strlen(items[j].key) + 1;
    if (items[j].str) bytes += (size_t)items[j].len + 1;
  }
  char *block = malloc(bytes);
  if (!block) {
    free(items);
    return POLYTEL_ENOMEM;
  }
  polytel__kv_t *kv = (polytel__kv_t *)(void *)block;
  char *w = block + n * sizeof(polytel__kv_t);
  for (size_t j = 0; j < n; j++) {
    size_t kl = strlen(items[j].key);
    memset(&kv[j], 0, sizeof kv[j]);
    memcpy(w, items[j].key, kl + 1);
    kv[j].key = w;
    kv[j].key_len = (uint32_t)kl;
    kv[j].type = items[j].type;
    w += kl + 1;
    if (items[j].str) {
      if (items[j].len) memcpy(w, items[j].str, items[j].len);
      w[items[j].len] = '\0';
      kv[j].v.str.ptr = w;
      kv[j].v.str.len = items[j].len;
      w += items[j].len + 1;
    } else if (items[j].type == POLYTEL_ATTR_BOOL) {
      kv[j].v.b = items[j].i != 0;
    } else {
      kv[j].v.i = items[j].i;
    }
  }
  free(items);
  out->attrs = kv;
  out->n_attrs = (uint32_t)n;
  out->storage = block;
  return 0;
}

void polytel__resource_free(polytel__resource_t *res) {
  if (!res) return;
  free(res->storage);
  res->storage = NULL;
  res->attrs = NULL;
  res->n_attrs = 0;
}

const char *polytel__resource_get(const polytel__resource_t *res, const char *key, uint32_t *len) {
  if (!res || !key) return NULL;
  for (uint32_t i = 0; i < res->n_attrs; i++) {
    const polytel__kv_t *a = &res->attrs[i];
    if (a->type == POLYTEL_ATTR_STRING && strcmp(a->key, key) == 0) {
      if (len) *len = a->v.str.len;
      return a->v.str.ptr;
    }
  }
  return NULL;
}
