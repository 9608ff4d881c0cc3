/* options.h — every configuration option, once: its name, variable, type, range or choices, default, home. */
#ifndef POLYTEL_OPTIONS_H
#define POLYTEL_OPTIONS_H

/*
 * XX(key, type, env, default, lo, hi, choices, user, mem), in resolution order (also the order of the
 * resolved view and of docs/configuration.md's tables):
 *
 *   key      the option's name: polytel_config_set()'s key, the resolved view's key, the bindings' keyword
 *   type     BOOL (int 0/1), UINT (uint32_t in [lo, hi]), SIZE (uint64_t bytes with a K/M/G suffix, at
 *            least lo: a smaller one is raised to lo), CHOICE (an int from POLYTEL__CHOICES_<choices>),
 *            STRING (char *), CTEXT (a char * member that config.c resolves with code of its own), or
 *            CUSTOM (config.c resolves and shows it with code of its own)
 *   env      its environment variable, or NULL
 *   default  a number or a choice's value; a string literal for STRING (and, as documentation, CUSTOM)
 *   user     UF(field, unset): the polytel_config_t field an explicit value lives in and the value that means
 *            "unset" there; NOUF: none (polytel_config_set() keeps the text among the config's extras)
 *   mem      GEN: polytel__cfg_t gets a member named `key` from this line; AT(path): the member exists
 *
 * A bad value gets the warning of its type ("invalid X="v" (expected ...); using <default>"); the expected
 * text comes from the type, the range or the choices. So a new option of these types is one line here
 * (plus its line in docs/configuration.md); the code that uses it reads cfg-><key>.
 */
#define POLYTEL__CONFIG_OPTIONS(XX)                                                                          \
  XX(use_env, CUSTOM, NULL, "true", 0, 0, NONE, UF(use_env, -1), AT(use_env))                                \
  XX(telemetry_enabled, BOOL, "TELEMETRY_ENABLED", 0, 0, 0, NONE, UF(telemetry_enabled, -1),                 \
     AT(telemetry_enabled))                                                                                  \
  XX(sdk_disabled, BOOL, "OTEL_SDK_DISABLED", 0, 0, 0, NONE, UF(sdk_disabled, -1), AT(sdk_disabled))         \
  XX(resource_attributes, CUSTOM, "OTEL_RESOURCE_ATTRIBUTES", NULL, 0, 0, NONE, UF(resource_attributes, 0),  \
     AT(resource_attrs))                                                                                     \
  XX(service_name, CTEXT, "OTEL_SERVICE_NAME", "the executable's name", 0, 0, NONE, UF(service_name, 0),     \
     AT(service_name))                                                                                       \
  XX(service_version, CTEXT, "OTEL_SERVICE_VERSION", NULL, 0, 0, NONE, UF(service_version, 0),               \
     AT(service_version))                                                                                    \
  XX(sdk_language, CTEXT, NULL, "c", 0, 0, NONE, UF(sdk_language, 0), AT(sdk_language))                      \
  XX(endpoint, CTEXT, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318", 0, 0, NONE, UF(endpoint, 0),   \
     AT(endpoint))                                                                                           \
  XX(traces_endpoint, CTEXT, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "<endpoint>/v1/traces", 0, 0, NONE,       \
     UF(traces_endpoint, 0), AT(signal_url[0]))                                                              \
  XX(logs_endpoint, CTEXT, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "<endpoint>/v1/logs", 0, 0, NONE,             \
     UF(logs_endpoint, 0), AT(signal_url[1]))                                                                \
  XX(metrics_endpoint, CTEXT, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "<endpoint>/v1/metrics", 0, 0, NONE,    \
     UF(metrics_endpoint, 0), AT(signal_url[2]))                                                             \
  XX(headers, CUSTOM, "OTEL_EXPORTER_OTLP_HEADERS", NULL, 0, 0, NONE, UF(headers, 0), AT(headers))           \
  XX(traces_headers, CUSTOM, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "<headers>", 0, 0, NONE, NOUF,             \
     AT(signal_headers[0]))                                                                                  \
  XX(logs_headers, CUSTOM, "OTEL_EXPORTER_OTLP_LOGS_HEADERS", "<headers>", 0, 0, NONE, NOUF,                 \
     AT(signal_headers[1]))                                                                                  \
  XX(metrics_headers, CUSTOM, "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "<headers>", 0, 0, NONE, NOUF,           \
     AT(signal_headers[2]))                                                                                  \
  XX(certificate, CTEXT, "OTEL_EXPORTER_OTLP_CERTIFICATE", NULL, 0, 0, NONE, UF(certificate, 0),             \
     AT(certificate))                                                                                        \
  XX(client_certificate, CTEXT, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", NULL, 0, 0, NONE,                   \
     UF(client_certificate, 0), AT(client_certificate))                                                      \
  XX(client_key, CTEXT, "OTEL_EXPORTER_OTLP_CLIENT_KEY", NULL, 0, 0, NONE, UF(client_key, 0),                \
     AT(client_key))                                                                                         \
  XX(traces_certificate, CTEXT, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "<certificate>", 0, 0, NONE, NOUF,  \
     AT(tls_ca[0]))                                                                                          \
  XX(logs_certificate, CTEXT, "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "<certificate>", 0, 0, NONE, NOUF,      \
     AT(tls_ca[1]))                                                                                          \
  XX(metrics_certificate, CTEXT, "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "<certificate>", 0, 0, NONE,      \
     NOUF, AT(tls_ca[2]))                                                                                    \
  XX(traces_client_certificate, CTEXT, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",                       \
     "<client_certificate>", 0, 0, NONE, NOUF, AT(tls_cert[0]))                                              \
  XX(logs_client_certificate, CTEXT, "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "<client_certificate>",   \
     0, 0, NONE, NOUF, AT(tls_cert[1]))                                                                      \
  XX(metrics_client_certificate, CTEXT, "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",                     \
     "<client_certificate>", 0, 0, NONE, NOUF, AT(tls_cert[2]))                                              \
  XX(traces_client_key, CTEXT, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "<client_key>", 0, 0, NONE, NOUF,     \
     AT(tls_key[0]))                                                                                         \
  XX(logs_client_key, CTEXT, "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "<client_key>", 0, 0, NONE, NOUF,         \
     AT(tls_key[1]))                                                                                         \
  XX(metrics_client_key, CTEXT, "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "<client_key>", 0, 0, NONE, NOUF,   \
     AT(tls_key[2]))                                                                                         \
  XX(protocol, CHOICE, "OTEL_EXPORTER_OTLP_PROTOCOL", POLYTEL_PROTOCOL_PROTOBUF, 0, 0, protocol,             \
     UF(protocol, POLYTEL_PROTOCOL_DEFAULT), AT(protocol))                                                   \
  XX(compression, CHOICE, "OTEL_EXPORTER_OTLP_COMPRESSION", 0, 0, 0, compression, UF(compression_gzip, -1),  \
     AT(gzip))                                                                                               \
  XX(timeout_ms, UINT, "OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, UINT32_MAX, NONE, UF(timeout_ms, -1),         \
     AT(timeout_ms))                                                                                         \
  XX(console, CHOICE, "POLYTEL_CONSOLE", POLYTEL_CONSOLE_STDERR, 0, 0, console,                              \
     UF(console, POLYTEL_CONSOLE_DEFAULT), AT(console))                                                      \
  XX(console_format, CHOICE, "POLYTEL_CONSOLE_FORMAT", POLYTEL_CONSOLE_FORMAT_TEXT, 0, 0, console_format,    \
     UF(console_format, POLYTEL_CONSOLE_FORMAT_DEFAULT), AT(console_format))                                 \
  XX(console_level, CHOICE, "POLYTEL_LOG_LEVEL", POLYTEL_LEVEL_INFO, 0, 0, level, UF(console_level, -1),     \
     AT(console_level))                                                                                      \
  XX(exporter, CHOICE, "POLYTEL_EXPORTER", POLYTEL_EXPORTER_OTLP, 0, 0, exporter,                            \
     UF(exporter, POLYTEL_EXPORTER_DEFAULT), AT(exporter))                                                   \
  XX(export_dir, STRING, "POLYTEL_EXPORT_DIR", "./polytel-out", 0, 0, NONE, UF(export_dir, 0),               \
     AT(export_dir))                                                                                         \
  XX(traces_exporter, CUSTOM, "OTEL_TRACES_EXPORTER", "otlp", 0, 0, NONE, NOUF, AT(signal_enabled[0]))       \
  XX(logs_exporter, CUSTOM, "OTEL_LOGS_EXPORTER", "otlp", 0, 0, NONE, NOUF, AT(signal_enabled[1]))           \
  XX(metrics_exporter, CUSTOM, "OTEL_METRICS_EXPORTER", "otlp", 0, 0, NONE, NOUF, AT(signal_enabled[2]))     \
  XX(max_memory_bytes, SIZE, "POLYTEL_MAX_MEMORY", POLYTEL__DEFAULT_MAX_MEMORY, 256 << 10, UINT64_MAX, NONE, \
     UF(max_memory_bytes, -1), AT(max_memory_bytes))                                                         \
  XX(bsp_schedule_delay_ms, UINT, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1, UINT32_MAX, NONE, NOUF,                \
     AT(bsp.schedule_delay_ms))                                                                              \
  XX(bsp_export_timeout_ms, UINT, "OTEL_BSP_EXPORT_TIMEOUT", 30000, 1, UINT32_MAX, NONE, NOUF,               \
     AT(bsp.export_timeout_ms))                                                                              \
  XX(bsp_max_queue_size, UINT, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, UINT32_MAX, NONE, NOUF,                   \
     AT(bsp.max_queue_size))                                                                                 \
  XX(bsp_max_export_batch_size, UINT, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, UINT32_MAX, NONE, NOUF,      \
     AT(bsp.max_export_batch_size))                                                                          \
  XX(blrp_schedule_delay_ms, UINT, "OTEL_BLRP_SCHEDULE_DELAY", 1000, 1, UINT32_MAX, NONE, NOUF,              \
     AT(blrp.schedule_delay_ms))                                                                             \
  XX(blrp_export_timeout_ms, UINT, "OTEL_BLRP_EXPORT_TIMEOUT", 30000, 1, UINT32_MAX, NONE, NOUF,             \
     AT(blrp.export_timeout_ms))                                                                             \
  XX(blrp_max_queue_size, UINT, "OTEL_BLRP_MAX_QUEUE_SIZE", 2048, 1, UINT32_MAX, NONE, NOUF,                 \
     AT(blrp.max_queue_size))                                                                                \
  XX(blrp_max_export_batch_size, UINT, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512, 1, UINT32_MAX, NONE, NOUF,    \
     AT(blrp.max_export_batch_size))                                                                         \
  XX(metric_export_interval_ms, UINT, "OTEL_METRIC_EXPORT_INTERVAL", 60000, 1, UINT32_MAX, NONE, NOUF,       \
     AT(metric_export_interval_ms))                                                                          \
  XX(metric_export_timeout_ms, UINT, "OTEL_METRIC_EXPORT_TIMEOUT", 30000, 1, UINT32_MAX, NONE, NOUF,         \
     AT(metric_export_timeout_ms))                                                                           \
  XX(max_metric_series, UINT, "POLYTEL_MAX_METRIC_SERIES", 2000, 1, 1000000, NONE, NOUF,                     \
     AT(max_metric_series))                                                                                  \
  XX(exit_timeout_ms, UINT, "POLYTEL_EXIT_TIMEOUT_MS", 5000, 0, UINT32_MAX, NONE, NOUF, GEN)                 \
  XX(traces_sampler, CUSTOM, "OTEL_TRACES_SAMPLER", "parentbased_always_on", 0, 0, NONE, NOUF, AT(sampler))  \
  XX(traces_sampler_arg, CUSTOM, "OTEL_TRACES_SAMPLER_ARG", "1.0", 0, 0, NONE, NOUF, AT(sampler))            \
  XX(propagators, CUSTOM, "OTEL_PROPAGATORS", "tracecontext,baggage", 0, 0, NONE, NOUF, AT(propagators))     \
  XX(attribute_count_limit, CUSTOM, "OTEL_ATTRIBUTE_COUNT_LIMIT", "128", 0, 0, NONE, NOUF,                   \
     AT(general_limits[0]))                                                                                  \
  XX(attribute_value_length_limit, CUSTOM, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", NULL, 0, 0, NONE, NOUF,      \
     AT(general_limits[1]))                                                                                  \
  XX(span_attribute_count_limit, CUSTOM, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "<attribute_count_limit>", 0, 0, \
     NONE, NOUF, AT(limits[POLYTEL__LIM_SPAN_ATTRS]))                                                        \
  XX(span_attribute_value_length_limit, CUSTOM, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",                    \
     "<attribute_value_length_limit>", 0, 0, NONE, NOUF, AT(limits[POLYTEL__LIM_SPAN_ATTR_LEN]))             \
  XX(span_event_count_limit, CUSTOM, "OTEL_SPAN_EVENT_COUNT_LIMIT", "128", 0, 0, NONE, NOUF,                 \
     AT(limits[POLYTEL__LIM_EVENTS]))                                                                        \
  XX(span_link_count_limit, CUSTOM, "OTEL_SPAN_LINK_COUNT_LIMIT", "128", 0, 0, NONE, NOUF,                   \
     AT(limits[POLYTEL__LIM_LINKS]))                                                                         \
  XX(event_attribute_count_limit, CUSTOM, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "<attribute_count_limit>", 0,  \
     0, NONE, NOUF, AT(limits[POLYTEL__LIM_EVENT_ATTRS]))                                                    \
  XX(link_attribute_count_limit, CUSTOM, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "<attribute_count_limit>", 0, 0, \
     NONE, NOUF, AT(limits[POLYTEL__LIM_LINK_ATTRS]))                                                        \
  XX(logrecord_attribute_count_limit, CUSTOM, "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",                        \
     "<attribute_count_limit>", 0, 0, NONE, NOUF, AT(limits[POLYTEL__LIM_LOG_ATTRS]))                        \
  XX(logrecord_attribute_value_length_limit, CUSTOM, "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",          \
     "<attribute_value_length_limit>", 0, 0, NONE, NOUF, AT(limits[POLYTEL__LIM_LOG_ATTR_LEN]))

/*
 * Choices: XX(word, value, how). how: LISTED (named in the warning), ALIAS (accepted, not named),
 * SETTER (accepted by polytel_config_set() only: the bindings' spellings, never the variable's),
 * REFUSED (a known word polytel does not support: its own warning). A value's first LISTED word is shown.
 */
#define POLYTEL__CHOICES_protocol(XX)                    \
  XX("http/protobuf", POLYTEL_PROTOCOL_PROTOBUF, LISTED) \
  XX("http/json", POLYTEL_PROTOCOL_JSON, LISTED)         \
  XX("grpc", 0, REFUSED)                                 \
  XX("protobuf", POLYTEL_PROTOCOL_PROTOBUF, SETTER)      \
  XX("json", POLYTEL_PROTOCOL_JSON, SETTER)
#define POLYTEL__CHOICES_compression(XX)       \
  XX("gzip", POLYTEL_COMPRESSION_GZIP, LISTED) \
  XX("zstd", POLYTEL_COMPRESSION_ZSTD, LISTED) \
  XX("none", POLYTEL_COMPRESSION_NONE, LISTED) \
  XX("true", POLYTEL_COMPRESSION_GZIP, SETTER) \
  XX("false", POLYTEL_COMPRESSION_NONE, SETTER)
#define POLYTEL__CHOICES_console(XX)           \
  XX("stderr", POLYTEL_CONSOLE_STDERR, LISTED) \
  XX("stdout", POLYTEL_CONSOLE_STDOUT, LISTED) \
  XX("off", POLYTEL_CONSOLE_OFF, LISTED)
#define POLYTEL__CHOICES_console_format(XX)       \
  XX("text", POLYTEL_CONSOLE_FORMAT_TEXT, LISTED) \
  XX("json", POLYTEL_CONSOLE_FORMAT_JSON, LISTED)
/* The levels of POLYTEL_LEVEL_MAP (through XX##_LEVEL(name, value, text)), then "warning" and "off". */
#define POLYTEL__CHOICES_level(XX)         \
  POLYTEL_LEVEL_MAP(XX##_LEVEL)            \
  XX("warning", POLYTEL_LEVEL_WARN, ALIAS) \
  XX("off", POLYTEL_LEVEL_OFF, LISTED)
#define POLYTEL__CHOICES_NONE(XX)
#define POLYTEL__CHOICES_exporter(XX)       \
  XX("otlp", POLYTEL_EXPORTER_OTLP, LISTED) \
  XX("file", POLYTEL_EXPORTER_FILE, LISTED) \
  XX("none", POLYTEL_EXPORTER_NONE, LISTED)

/* Option ids: POLYTEL__OPT_<key>. */
typedef enum {
#define POLYTEL__OPT_ID(key, ...) POLYTEL__OPT_##key,
  POLYTEL__CONFIG_OPTIONS(POLYTEL__OPT_ID)
#undef POLYTEL__OPT_ID
      POLYTEL__OPT_COUNT
} polytel__opt_id_t;

/* The C type of a generated member. */
#define POLYTEL__CTYPE_BOOL int
#define POLYTEL__CTYPE_UINT uint32_t
#define POLYTEL__CTYPE_SIZE uint64_t
#define POLYTEL__CTYPE_CHOICE int
#define POLYTEL__CTYPE_STRING char *
/* Declarations of the GEN members (config.h puts them inside polytel__cfg_t), and every member's path. */
#define POLYTEL__EAT(...)
#define POLYTEL__MEM_DECL_GEN(type, key) POLYTEL__CTYPE_##type key;
#define POLYTEL__MEM_DECL_AT(path) POLYTEL__EAT
#define POLYTEL__MEM_DECL(key, type, env, def, lo, hi, ch, user, mem) POLYTEL__MEM_DECL_##mem(type, key)
#define POLYTEL__MEM_PATH_GEN(key) key
#define POLYTEL__MEM_PATH_AT(path) path POLYTEL__EAT

#endif
