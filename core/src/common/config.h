/* config.h — the resolved configuration: explicit polytel_config_t, then environment, then defaults. */
#ifndef POLYTEL_CONFIG_H
#define POLYTEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/options.h"
#include "polytel.h"
#include "common/propagation.h"

typedef const char *(*polytel__getenv_fn)(const char *name);

/* The span model's limits (OTEL_*_LIMIT), indexes of polytel__cfg_t.limits. */
#define POLYTEL__NO_LIMIT UINT32_MAX /* the spec's default for value lengths */
enum {
  POLYTEL__LIM_SPAN_ATTRS,    /* OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, else OTEL_ATTRIBUTE_COUNT_LIMIT, 128 */
  POLYTEL__LIM_SPAN_ATTR_LEN, /* OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, else OTEL_ATTRIBUTE_VALUE_..., none
                               */
  POLYTEL__LIM_EVENTS,        /* OTEL_SPAN_EVENT_COUNT_LIMIT, 128 */
  POLYTEL__LIM_LINKS,         /* OTEL_SPAN_LINK_COUNT_LIMIT, 128 */
  POLYTEL__LIM_EVENT_ATTRS,   /* OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT, else OTEL_ATTRIBUTE_COUNT_LIMIT, 128 */
  POLYTEL__LIM_LINK_ATTRS,    /* OTEL_LINK_ATTRIBUTE_COUNT_LIMIT, else OTEL_ATTRIBUTE_COUNT_LIMIT, 128 */
  POLYTEL__LIM_LOG_ATTRS,     /* OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT, else OTEL_ATTRIBUTE_COUNT_LIMIT, 128 */
  POLYTEL__LIM_LOG_ATTR_LEN,  /* OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT, else the general one, none */
  POLYTEL__N_LIMITS
};

typedef struct polytel__strpair_s {
  char *key;
  char *value;
} polytel__strpair_t;

/* Batch settings for one signal (OTEL_BSP_* / OTEL_BLRP_*). */
typedef struct polytel__batch_cfg_s {
  uint32_t schedule_delay_ms;
  uint32_t export_timeout_ms;
  uint32_t max_queue_size;
  uint32_t max_export_batch_size;
} polytel__batch_cfg_t;

/* Everything owned (heap strings); free with polytel__cfg_free. */
typedef struct polytel__cfg_s {
  int telemetry_enabled;              /* 0/1 */
  int sdk_disabled;                   /* 0/1 */
  char *service_name;                 /* never NULL after resolve */
  char *service_version;              /* may be NULL */
  char *sdk_language;                 /* never NULL ("c" by default) */
  polytel__strpair_t *resource_attrs; /* from OTEL_RESOURCE_ATTRIBUTES, percent-decoded */
  size_t n_resource_attrs;
  char *endpoint;              /* base, for display ("http://localhost:4318") */
  char *signal_url[3];         /* indexed by polytel__signal_t: full URLs */
  polytel__strpair_t *headers; /* values never printed */
  size_t n_headers;
  /* OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_HEADERS: when has_signal_headers[s], signal s sends this
   * list instead of `headers` (even when every entry was refused). */
  polytel__strpair_t *signal_headers[3];
  size_t n_signal_headers[3];
  int has_signal_headers[3];
  char *certificate; /* general CA bundle, may be NULL */
  /* TLS files in force per signal (signal variable, else the general one): CA bundle, client
   * certificate and key (mTLS). NULL: system CAs / no client certificate. */
  char *tls_ca[3];
  char *tls_cert[3];
  char *tls_key[3];
  int protocol;              /* POLYTEL_PROTOCOL_PROTOBUF or _JSON */
  int gzip;                  /* a polytel_compression_t (0 = none) */
  uint32_t timeout_ms;       /* per request */
  int console;               /* POLYTEL_CONSOLE_STDERR/_STDOUT/_OFF */
  int console_format;        /* POLYTEL_CONSOLE_FORMAT_TEXT/_JSON */
  int console_level;         /* polytel_level_t threshold (POLYTEL_LEVEL_OFF = nothing) */
  int color;                 /* resolved: TTY, NO_COLOR, FORCE_COLOR */
  int exporter;              /* POLYTEL_EXPORTER_OTLP/_FILE/_NONE */
  char *export_dir;          /* file exporter; never NULL when exporter == FILE */
  int signal_enabled[3];     /* OTEL_{TRACES,LOGS,METRICS}_EXPORTER != none */
  uint64_t max_memory_bytes; /* block pool cap */
  polytel__batch_cfg_t bsp;  /* spans */
  polytel__batch_cfg_t blrp; /* logs */
  uint32_t metric_export_interval_ms;
  uint32_t metric_export_timeout_ms;
  uint32_t max_metric_series; /* POLYTEL_MAX_METRIC_SERIES: the cardinality cap over all instruments */
  polytel__sampler_t sampler; /* OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG */
  unsigned propagators;       /* OTEL_PROPAGATORS: POLYTEL_PROPAGATOR_* mask */
  uint32_t limits[POLYTEL__N_LIMITS];
  uint32_t general_limits[2]; /* OTEL_ATTRIBUTE_COUNT_LIMIT, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (shown only) */
  int use_env;                /* the environment was consulted */
  char *client_certificate;   /* the general mTLS files in force (tls_cert/tls_key hold each signal's) */
  char *client_key;
  /* One member per GEN line of options.h, named by its key. */
  POLYTEL__CONFIG_OPTIONS(POLYTEL__MEM_DECL)
} polytel__cfg_t;

/*
 * Resolve `user` (may be NULL) + environment (through `get`, NULL = getenv)
 * into `out`. Each bad value prints one warning line naming the variable, the
 * bad value (never for header values) and the value kept instead. Returns 0 or
 * POLYTEL_ENOMEM. Never fails on bad input.
 */
int polytel__cfg_resolve(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out);
/* The same, printing nothing: for resolving settings again whose warnings were already shown. */
int polytel__cfg_resolve_quiet(const polytel_config_t *user, polytel__getenv_fn get, polytel__cfg_t *out);
void polytel__cfg_free(polytel__cfg_t *cfg);

/*
 * The resolved view of `cfg` (polytel_config_resolved()): the `n_lead` (key, value) pairs of `lead` first
 * (runtime facts such as the phase), then one item per option. One allocation; NULL when out of memory.
 */
polytel_resolved_t *polytel__cfg_describe(const polytel__cfg_t *cfg, const char *const *lead, size_t n_lead);
/* Copy the extras (polytel_config_set's options without a field) of src into dst, owned; free them. */
void polytel__cfg_extras_merge(polytel_config_t *dst, const polytel_config_t *src);
void polytel__cfg_extras_free(polytel_config_t *cfg);

/* "true/false/1/0/yes/no/on/off", any case. Returns 1/0, or -1 when not a boolean. */
int polytel__parse_bool(const char *s);

/* Header names polytel or HTTP itself owns (case-insensitive): never taken from the headers variables. */
int polytel__header_forbidden(const char *name, size_t len);

/* Limits on resource values (sent with every request). */
#define POLYTEL__MAX_SERVICE_NAME 255
#define POLYTEL__MAX_RESOURCE_KEY 255
#define POLYTEL__MAX_RESOURCE_VALUE 4096
#define POLYTEL__MAX_RESOURCE_BYTES 16384
#define POLYTEL__MAX_RESOURCE_ATTRS 128

/* The default cap on buffered events. */
#define POLYTEL__DEFAULT_MAX_MEMORY ((uint64_t)16 << 20)

#endif
