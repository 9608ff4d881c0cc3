/* polytel.h — the one public header of the polytel telemetry core. */
#ifndef POLYTEL_H
#define POLYTEL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "polytel/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#if defined(POLYTEL_BUILDING_SHARED)
#define POLYTEL_EXTERN __declspec(dllexport)
#elif defined(POLYTEL_USING_SHARED)
#define POLYTEL_EXTERN __declspec(dllimport)
#else
#define POLYTEL_EXTERN
#endif
#elif defined(__GNUC__)
#define POLYTEL_EXTERN __attribute__((visibility("default")))
#else
#define POLYTEL_EXTERN
#endif

#if defined(__GNUC__)
#define POLYTEL_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define POLYTEL_PRINTF(fmt_idx, arg_idx)
#endif

/* ------------------------------------------------------------------ errors */

/* One table; polytel_strerror() and polytel_err_name() are generated from it. */
#define POLYTEL_ERRNO_MAP(XX)                                            \
  XX(EINVAL, -1, "invalid argument")                                     \
  XX(ENOMEM, -2, "out of memory")                                        \
  XX(EALREADY, -3, "already initialized")                                \
  XX(ESTATE, -4, "not valid in the current phase")                       \
  XX(ETIMEDOUT, -5, "timed out before everything was delivered")         \
  XX(ENOSYS, -6, "not supported by this build")                          \
  XX(EIO, -7, "input/output error")                                      \
  XX(EDISABLED, -8, "telemetry export is disabled")                      \
  XX(EDROPPED, -9, "some telemetry was dropped and cannot be delivered") \
  XX(ENOCTX, -10, "no current span and no attached context")

typedef enum {
  POLYTEL_OK = 0,
#define POLYTEL__XX(name, value, msg) POLYTEL_##name = (value),
  POLYTEL_ERRNO_MAP(POLYTEL__XX)
#undef POLYTEL__XX
} polytel_errno_t;

/* Human text for a return code ("unknown error" for codes not in the table). */
POLYTEL_EXTERN const char *polytel_strerror(int err);
/* "POLYTEL_EINVAL" and so on; "POLYTEL_OK" for 0. */
POLYTEL_EXTERN const char *polytel_err_name(int err);

/* ------------------------------------------------------------------ phases */

typedef enum {
  POLYTEL_PHASE_NONE = 0,     /* nothing initialized, or after shutdown */
  POLYTEL_PHASE_CONSOLE = 1,  /* phase 1: console logging only */
  POLYTEL_PHASE_DEFERRED = 2, /* phase 1 with TELEMETRY_ENABLED: recording, waiting for phase 2 */
  POLYTEL_PHASE_FULL = 3      /* phase 2: batched export on a libuv loop */
} polytel_phase_t;

/*
 * Levels are OpenTelemetry severity numbers, so no mapping is ever needed. One table: the enum,
 * polytel_level_name() and polytel_level_parse() are generated from it, and the bindings take their level
 * constants from it. XX(NAME, severity number, lowercase name).
 */
#define POLYTEL_LEVEL_MAP(XX) \
  XX(TRACE, 1, "trace")       \
  XX(DEBUG, 5, "debug")       \
  XX(INFO, 9, "info")         \
  XX(WARN, 13, "warn")        \
  XX(ERROR, 17, "error")      \
  XX(FATAL, 21, "fatal")

typedef enum {
#define POLYTEL__XX(name, value, text) POLYTEL_LEVEL_##name = (value),
  POLYTEL_LEVEL_MAP(POLYTEL__XX)
#undef POLYTEL__XX
      POLYTEL_LEVEL_OFF = 255 /* only as a threshold */
} polytel_level_t;

/* "trace", "debug", "info", "warn", "error", "fatal", "off"; NULL for any other number. */
POLYTEL_EXTERN const char *polytel_level_name(int level);
/*
 * A level by name: the names above and "warning", any case, blanks around ignored, or its severity number in
 * decimal (1 to 24, or 255). -1 when it is neither (NULL included).
 */
POLYTEL_EXTERN int polytel_level_parse(const char *name);

/* ------------------------------------------------------------------ config */

typedef enum {
  POLYTEL_PROTOCOL_DEFAULT = 0, /* env, then http/protobuf */
  POLYTEL_PROTOCOL_PROTOBUF = 1,
  POLYTEL_PROTOCOL_JSON = 2
} polytel_protocol_t;

typedef enum {
  POLYTEL_CONSOLE_DEFAULT = 0, /* env, then stderr */
  POLYTEL_CONSOLE_STDERR = 1,
  POLYTEL_CONSOLE_STDOUT = 2,
  POLYTEL_CONSOLE_OFF = 3
} polytel_console_t;

typedef enum {
  POLYTEL_CONSOLE_FORMAT_DEFAULT = 0, /* env POLYTEL_CONSOLE_FORMAT, then text */
  POLYTEL_CONSOLE_FORMAT_TEXT = 1,
  POLYTEL_CONSOLE_FORMAT_JSON = 2
} polytel_console_format_t;

typedef enum {
  POLYTEL_EXPORTER_DEFAULT = 0, /* env POLYTEL_EXPORTER, then otlp */
  POLYTEL_EXPORTER_OTLP = 1,    /* OTLP/HTTP to a collector */
  POLYTEL_EXPORTER_FILE = 2,    /* OTLP/JSON lines under export_dir */
  POLYTEL_EXPORTER_NONE = 3     /* record and count, export nothing */
} polytel_exporter_t;

/* Values of polytel_config_t.compression_gzip (OTEL_EXPORTER_OTLP_COMPRESSION). */
typedef enum {
  POLYTEL_COMPRESSION_NONE = 0,
  POLYTEL_COMPRESSION_GZIP = 1,
  POLYTEL_COMPRESSION_ZSTD = 2 /* a collector that refuses it gets gzip instead (docs/configuration.md) */
} polytel_compression_t;

/* Options without a polytel_config_t field that one config can carry (polytel_config_set). */
#define POLYTEL_CONFIG_EXTRA_MAX 24

/*
 * Explicit configuration. Always fill with polytel_config_init() first: the
 * struct may grow, and init sets every field to "unset". An unset field is
 * taken from the environment (unless use_env is 0), then from the default.
 * Strings are copied during the init call; they need not outlive it.
 */
typedef struct polytel_config_s {
  uint32_t struct_size;     /* set by polytel_config_init */
  int use_env;              /* 1 (default): environment fills unset fields */
  int telemetry_enabled;    /* -1 unset, 0 off, 1 on (TELEMETRY_ENABLED) */
  int sdk_disabled;         /* -1 unset, 0, 1 (OTEL_SDK_DISABLED) */
  const char *service_name; /* OTEL_SERVICE_NAME */
  const char *service_version;
  const char *resource_attributes; /* "k=v,k2=v2", percent-decoded */
  const char *endpoint;            /* base URL; /v1/<signal> appended */
  const char *traces_endpoint;     /* used exactly as given */
  const char *logs_endpoint;
  const char *metrics_endpoint;
  const char *headers;     /* "k=v,..."; values are never printed */
  const char *certificate; /* CA bundle path for https */
  polytel_protocol_t protocol;
  int compression_gzip; /* -1 unset, else a polytel_compression_t (the name predates zstd) */
  int64_t timeout_ms;   /* -1 unset; OTEL_EXPORTER_OTLP_TIMEOUT */
  polytel_console_t console;
  polytel_console_format_t console_format;
  int console_level; /* -1 unset, else a polytel_level_t */
  polytel_exporter_t exporter;
  const char *export_dir;   /* file exporter directory (POLYTEL_EXPORT_DIR) */
  int64_t max_memory_bytes; /* -1 unset; bound on buffered events (POLYTEL_MAX_MEMORY) */
  const char *sdk_language; /* telemetry.sdk.language; bindings set theirs ("python", ...) */
  /* Fields below were appended: a caller built against an older header has a smaller struct_size, and they
   * count as unset. */
  const char
      *client_certificate; /* mTLS: client certificate (PEM) path (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE) */
  const char *client_key;  /* mTLS: its private key (PEM, unencrypted) (OTEL_EXPORTER_OTLP_CLIENT_KEY) */
  /* Private: options without a field of their own, as set by polytel_config_set() (same lifetime rule as
   * the strings above). */
  uint32_t polytel__n_extra;
  struct {
    uint32_t option;
    const char *value;
  } polytel__extra[POLYTEL_CONFIG_EXTRA_MAX];
} polytel_config_t;

POLYTEL_EXTERN void polytel_config_init(polytel_config_t *cfg);

/*
 * Set one option by its name, from text: the way the bindings pass their keyword arguments. `key` is an
 * option's name (docs/configuration.md lists them: "endpoint", "timeout_ms", "bsp_schedule_delay_ms", ...;
 * polytel_config_option() enumerates them). The value is read as its environment variable would be
 * ("true", "2500", "http/json", "16M", "k=v,k2=v2"); numbers, booleans and choices are checked here, the
 * rest (URLs, lists, paths) when the configuration is resolved, with the usual one-line warning. Strings are
 * not copied: `value` must stay valid until the init call, like any string field. Returns 0, or
 * POLYTEL_EINVAL for an unknown key or a bad value; polytel_config_error() then says which, in one line
 * (a value is echoed by its first 64 bytes, never a header's). A field set directly counts the same.
 */
POLYTEL_EXTERN int polytel_config_set(polytel_config_t *cfg, const char *key, const char *value);
/* The calling thread's last polytel_config_set() error, "" when there was none. */
POLYTEL_EXTERN const char *polytel_config_error(void);

/* How a setting's text reads (bindings turn it into their own types). */
typedef enum {
  POLYTEL_VALUE_BOOL = 1,  /* "true" or "false" */
  POLYTEL_VALUE_INT = 2,   /* decimal digits */
  POLYTEL_VALUE_STRING = 3 /* text; NULL when none */
} polytel_value_type_t;

typedef struct polytel_setting_s {
  const char *key; /* the option's name (polytel_config_set's key) */
  const char *env; /* its environment variable, NULL when it has none */
  polytel_value_type_t type;
  const char *value; /* the value as text: in force (resolved), or the default (polytel_config_option) */
} polytel_setting_t;

typedef struct polytel_resolved_s {
  size_t n;
  polytel_setting_t *items;
} polytel_resolved_t;

/*
 * What is running: "phase", "not_exporting" (why nothing is exported, NULL when it is), "destination"
 * (where the exporter sends: the collector's base URL, the file exporter's directory, NULL for none), then
 * every option as resolved after explicit settings, the environment, defaults and corrections (the
 * configuration of the last init; before any init, or after shutdown, what an init would resolve). Header
 * values are never included ("key=…"). NULL when out of memory. Free with polytel_config_resolved_free().
 */
POLYTEL_EXTERN polytel_resolved_t *polytel_config_resolved(void);
POLYTEL_EXTERN void polytel_config_resolved_free(polytel_resolved_t *r);
/* The i-th option of the schema (i from 0), its default as `value`. 0, or POLYTEL_EINVAL past the last. */
POLYTEL_EXTERN int polytel_config_option(size_t i, polytel_setting_t *out);
/*
 * The i-th word polytel_config_set() takes for option `key` (i from 0) and the enum value it stands for
 * ("http/json" and POLYTEL_PROTOCOL_JSON). 0, or POLYTEL_EINVAL past the last word or when `key` takes no
 * words.
 */
POLYTEL_EXTERN int polytel_config_choice(const char *key, size_t i, const char **word, int *value);

/* ------------------------------------------------------------ init, phases */

struct uv_loop_s;

/*
 * Phase 1. NULL means defaults plus environment. Idempotent, thread-safe;
 * starts no thread, loop or network. Safe in a dlopen'd extension's init.
 * Returns 0, or POLYTEL_EALREADY when phase 1 (or 2) was already done.
 */
POLYTEL_EXTERN int polytel_init_console_only(const polytel_config_t *cfg);

/*
 * Phase 2. loop != NULL: polytel's handles live on that loop and this must be
 * called on the loop's thread. loop == NULL: polytel starts and owns a loop
 * thread. Runs phase 1 first if needed. Returns 0 (also when telemetry stays
 * off: "already complete"), POLYTEL_EALREADY when already full, POLYTEL_ENOSYS
 * in a build without libuv.
 */
POLYTEL_EXTERN int polytel_init_full_telemetry(struct uv_loop_s *loop, const polytel_config_t *cfg);

POLYTEL_EXTERN polytel_phase_t polytel_phase(void);
/* "none", "console", "deferred", "full". */
POLYTEL_EXTERN const char *polytel_phase_name(polytel_phase_t phase);

/*
 * Hand off every thread's pending events and wait up to timeout_ms for their
 * delivery. 0 when nothing is pending afterwards, POLYTEL_ETIMEDOUT otherwise.
 * Blocking: bindings release their interpreter lock around it.
 */
POLYTEL_EXTERN int polytel_flush(uint32_t timeout_ms);

/*
 * Flush, stop, release everything; the process may initialize again. Never
 * takes longer than timeout_ms (plus thread join). 0 only when everything
 * recorded was delivered (or nothing was to be delivered).
 */
POLYTEL_EXTERN int polytel_shutdown(uint32_t timeout_ms);

/* ------------------------------------------------------------- attributes */

typedef enum {
  POLYTEL_ATTR_STRING = 1,
  POLYTEL_ATTR_INT = 2,
  POLYTEL_ATTR_DOUBLE = 3,
  POLYTEL_ATTR_BOOL = 4,
  /* Homogeneous arrays (OTLP ArrayValue): value.arr points at len elements of the type named. */
  POLYTEL_ATTR_STRING_ARRAY = 5, /* const polytel_str_t[] */
  POLYTEL_ATTR_INT_ARRAY = 6,    /* const int64_t[] */
  POLYTEL_ATTR_DOUBLE_ARRAY = 7, /* const double[] */
  POLYTEL_ATTR_BOOL_ARRAY = 8    /* const int[] (0 false, anything else true) */
} polytel_attr_type_t;

/* A string with its length (need not be NUL-terminated): an element of a string array. */
typedef struct polytel_str_s {
  const char *ptr;
  size_t len;
} polytel_str_t;

/* Keys are NUL-terminated; string values carry a length. Everything is copied. */
typedef struct polytel_attr_s {
  const char *key;
  polytel_attr_type_t type;
  union {
    struct {
      const char *ptr;
      size_t len;
    } str;
    int64_t i;
    double d;
    int b;
    struct {
      const void *ptr; /* the array's first element (see polytel_attr_type_t) */
      size_t len;      /* elements */
    } arr;
  } value;
} polytel_attr_t;

/* Type checks for the array macros: a wrong element type is a compile-time warning, not a misread. */
static inline const void *polytel__strs(const polytel_str_t *p) {
  return p;
}
static inline const void *polytel__ints(const int64_t *p) {
  return p;
}
static inline const void *polytel__doubles(const double *p) {
  return p;
}
static inline const void *polytel__bools(const int *p) {
  return p;
}

#define POLYTEL_ATTR_STR(k, v) \
  ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_STRING, .value = {.str = {(v), strlen(v)}}})
#define POLYTEL_ATTR_INT(k, v) ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_INT, .value = {.i = (v)}})
#define POLYTEL_ATTR_DOUBLE(k, v) \
  ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_DOUBLE, .value = {.d = (v)}})
#define POLYTEL_ATTR_BOOL(k, v) ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_BOOL, .value = {.b = (v)}})
/* Arrays: (key, pointer to the first element, element count). */
#define POLYTEL_ATTR_STRS(k, v, n) \
  ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_STRING_ARRAY, .value = {.arr = {polytel__strs(v), (n)}}})
#define POLYTEL_ATTR_INTS(k, v, n) \
  ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_INT_ARRAY, .value = {.arr = {polytel__ints(v), (n)}}})
#define POLYTEL_ATTR_DOUBLES(k, v, n) \
  ((polytel_attr_t){                  \
      .key = (k), .type = POLYTEL_ATTR_DOUBLE_ARRAY, .value = {.arr = {polytel__doubles(v), (n)}}})
#define POLYTEL_ATTR_BOOLS(k, v, n) \
  ((polytel_attr_t){.key = (k), .type = POLYTEL_ATTR_BOOL_ARRAY, .value = {.arr = {polytel__bools(v), (n)}}})

/* -------------------------------------------------------------------- logs */

/*
 * Hot-path log. `target` and `fmt` are static metadata, passed by pointer:
 * they must stay valid for the life of the process (string literals). Only the
 * arguments are captured; formatting happens off the calling thread. A %s
 * argument is copied. %n is refused. Also printed to the console when the
 * level passes the console threshold (formatted then, on the caller).
 */
POLYTEL_EXTERN void polytel_log(polytel_level_t level, const char *target, const char *fmt, ...)
    POLYTEL_PRINTF(3, 4);
POLYTEL_EXTERN void polytel_vlog(polytel_level_t level, const char *target, const char *fmt, va_list ap)
    POLYTEL_PRINTF(3, 0);

/*
 * Dynamic log for bindings: target, message and attributes are copied. The
 * message is never interpreted as a format. `span` (may be NULL) links the
 * record to a span started with polytel_span_start().
 */
struct polytel_span_ctx_s;
POLYTEL_EXTERN void polytel_log_attrs(polytel_level_t level, const char *target, const char *msg,
                                      size_t msg_len, const polytel_attr_t *attrs, size_t n_attrs,
                                      const struct polytel_span_ctx_s *span);

/* Nonzero when a record at `level` would go anywhere (console or export). */
POLYTEL_EXTERN int polytel_level_enabled(polytel_level_t level);

#define POLYTEL_TRACE(target, ...) polytel_log(POLYTEL_LEVEL_TRACE, target, __VA_ARGS__)
#define POLYTEL_DEBUG(target, ...) polytel_log(POLYTEL_LEVEL_DEBUG, target, __VA_ARGS__)
#define POLYTEL_INFO(target, ...) polytel_log(POLYTEL_LEVEL_INFO, target, __VA_ARGS__)
#define POLYTEL_WARN(target, ...) polytel_log(POLYTEL_LEVEL_WARN, target, __VA_ARGS__)
#define POLYTEL_ERROR(target, ...) polytel_log(POLYTEL_LEVEL_ERROR, target, __VA_ARGS__)

/* ------------------------------------------------------------------- spans */

typedef enum { POLYTEL_STATUS_UNSET = 0, POLYTEL_STATUS_OK = 1, POLYTEL_STATUS_ERROR = 2 } polytel_status_t;

/*
 * Thread spans: nest on the calling thread; the parent is the enclosing span
 * on the same thread, or the remote context attached with
 * polytel_context_attach() when the span begins at the attach's depth; a
 * top-level span starts a new trace. The configured sampler decides a new
 * trace (OTEL_TRACES_SAMPLER); an unsampled span costs the same, exports
 * nothing, and still has ids (polytel_span_ctx_current). `name` is static (by
 * pointer).
 */
POLYTEL_EXTERN void polytel_span_begin(const char *static_name);
POLYTEL_EXTERN void polytel_span_end(void);
/* Same, with a copied name and attributes (bindings). */
POLYTEL_EXTERN void polytel_span_begin_dyn(const char *name, const polytel_attr_t *attrs, size_t n_attrs);
/* Ends the innermost thread span with a status, a message and more attributes. */
POLYTEL_EXTERN void polytel_span_end_status(polytel_status_t status, const char *msg,
                                            const polytel_attr_t *attrs, size_t n_attrs);

/* Internal helper for POLYTEL_SPAN_SCOPE's cleanup attribute (kept for code built with older headers). */
POLYTEL_EXTERN void polytel__span_scope_end(int *unused);
/* The cleanup POLYTEL_SPAN_SCOPE uses: inline, so its variable is never stored and the end is a tail call. */
static inline void polytel__span_scope_close(int *unused) {
  (void)unused;
  polytel_span_end();
}
#define POLYTEL__CAT2(a, b) a##b
#define POLYTEL__CAT(a, b) POLYTEL__CAT2(a, b)
/* A thread span that ends when the enclosing C scope exits. */
#define POLYTEL_SPAN_SCOPE(static_name)                                                            \
  __attribute__((cleanup(polytel__span_scope_close))) int POLYTEL__CAT(polytel__span_, __LINE__) = \
      (polytel_span_begin(static_name), 0)

/* OTLP SpanKind. Thread spans are INTERNAL. */
typedef enum {
  POLYTEL_SPAN_KIND_UNSPECIFIED = 0,
  POLYTEL_SPAN_KIND_INTERNAL = 1,
  POLYTEL_SPAN_KIND_SERVER = 2,
  POLYTEL_SPAN_KIND_CLIENT = 3,
  POLYTEL_SPAN_KIND_PRODUCER = 4,
  POLYTEL_SPAN_KIND_CONSUMER = 5
} polytel_span_kind_t;

/*
 * The bindings' kind names: "internal", "server", "client", "producer", "consumer" (ASCII case ignored; len
 * bytes, no NUL needed). Returns the kind, or POLYTEL_EINVAL for anything else ("unspecified" included: a
 * user names what the span is).
 */
POLYTEL_EXTERN int polytel_span_kind_from_name(const char *name, size_t len);
/* "internal" ... "consumer"; "unspecified" for 0; NULL for a value outside the enum. */
POLYTEL_EXTERN const char *polytel_span_kind_name(polytel_span_kind_t kind);

/*
 * Async spans carry explicit ids: start() assigns ids and the start time and
 * records nothing; finish() records the whole span at once, from any thread.
 * A span that is started and never finished is never recorded.
 */
typedef struct polytel_span_ctx_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8]; /* all zero for a root span */
  uint64_t start_ns;    /* Unix nanoseconds */
  uint8_t trace_flags;  /* W3C trace flags: POLYTEL_TRACE_FLAG_* */
  /* In what was padding (the size is unchanged): */
  uint8_t is_remote;     /* 1: this context came from another process (polytel_traceparent_parse) */
  uint8_t parent_remote; /* 1: the parent was remote (polytel_span_start copies the parent's is_remote) */
} polytel_span_ctx_t;

/*
 * A new span's context. parent NULL (or an all-zero span id) starts a new
 * trace. The configured sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG;
 * default parentbased_always_on) decides, and its decision is the
 * POLYTEL_TRACE_FLAG_SAMPLED bit of out->trace_flags: parentbased_* follow the
 * parent's bit, traceidratio decides on the trace id alone (the same in every
 * language). Other parent flags are inherited. An unsampled span still has
 * ids: its children and its traceparent work; finishing it records nothing.
 */
POLYTEL_EXTERN int polytel_span_start(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out);
POLYTEL_EXTERN int polytel_span_finish(const polytel_span_ctx_t *span, const char *name,
                                       polytel_status_t status, const char *status_msg,
                                       const polytel_attr_t *attrs, size_t n_attrs);

/* A span event. The layout is final (arrays of it are passed): anything new goes into polytel_span_opts_t. */
typedef struct polytel_span_event_s {
  const char *name;
  uint64_t time_ns; /* Unix nanoseconds; 0 = when the span is finished */
  const polytel_attr_t *attrs;
  size_t n_attrs;
} polytel_span_event_t;

/* A link to another span (a batch consumer links the jobs it took). The layout is final, like the event's. */
typedef struct polytel_span_link_s {
  polytel_span_ctx_t ctx; /* trace_id, span_id, trace_flags and is_remote are read */
  const char *tracestate; /* W3C tracestate of the linked span, or NULL */
  const polytel_attr_t *attrs;
  size_t n_attrs;
} polytel_span_link_t;

/* What polytel_span_finish_ex() takes beyond the plain finish. Fill with polytel_span_opts_init() first. */
typedef struct polytel_span_opts_s {
  uint32_t struct_size;     /* set by polytel_span_opts_init */
  polytel_span_kind_t kind; /* default POLYTEL_SPAN_KIND_INTERNAL */
  const char *scope_name;   /* instrumentation scope; NULL: "polytel" (with the library's version) */
  const char *scope_version;
  const char *tracestate; /* the span's W3C tracestate; invalid values are discarded whole (W3C), NULL none */
  uint64_t end_ns;        /* Unix nanoseconds; 0 = now (never before the start) */
  const polytel_span_event_t *events;
  size_t n_events;
  const polytel_span_link_t *links;
  size_t n_links;
} polytel_span_opts_t;

POLYTEL_EXTERN void polytel_span_opts_init(polytel_span_opts_t *opts);

/*
 * polytel_span_finish() with a kind, a scope, events, links, a tracestate and
 * an end time (opts may be NULL: the defaults). Everything is copied. Limits
 * (OTEL_SPAN_EVENT_COUNT_LIMIT, ..._ATTRIBUTE_COUNT_LIMIT, ...) are applied
 * and what they cut is counted on the wire (dropped_*_count). An unsampled
 * span (trace_flags without POLYTEL_TRACE_FLAG_SAMPLED) records nothing and is
 * counted in polytel_stats_t.sampled_out. Returns 0, POLYTEL_EINVAL (NULL span
 * or name: counted as dropped_invalid), POLYTEL_EDROPPED (the pool was full:
 * dropped_buffer_full).
 */
POLYTEL_EXTERN int polytel_span_finish_ex(const polytel_span_ctx_t *span, const char *name,
                                          polytel_status_t status, const char *status_msg,
                                          const polytel_attr_t *attrs, size_t n_attrs,
                                          const polytel_span_opts_t *opts);

/*
 * An `exception` event per the semantic conventions, for a span whose work
 * raised: fills *event (time now) and attrs[0..2] with exception.type,
 * exception.message and exception.stacktrace, leaving out the NULL ones.
 * The strings are referenced, not copied: keep them until the finish.
 * Returns the number of attributes used.
 */
POLYTEL_EXTERN size_t polytel_span_exception_event(polytel_span_event_t *event, polytel_attr_t attrs[3],
                                                   const char *type, const char *message,
                                                   const char *stacktrace);

/* ----------------------------------------------------------- trace context */

/* W3C trace-flags bits; a flag polytel does not know is never sent. */
#define POLYTEL_TRACE_FLAG_SAMPLED 0x01 /* the caller may have recorded the trace */
#define POLYTEL_TRACE_FLAG_RANDOM 0x02  /* Trace Context level 2: the trace id's right 7 bytes are random */
/* A traceparent value is exactly this long ("00-<32 hex>-<16 hex>-<2 hex>"); buffers need one more byte. */
#define POLYTEL_TRACEPARENT_LEN 55

/*
 * Parse a W3C traceparent header value (the remote parent). Optional
 * whitespace around the value is ignored; version 00 must be exactly 55
 * characters; a later version (not ff) is read by its first 55 characters when
 * they are followed by '-' or the end; lowercase hex only; all-zero ids are
 * invalid. On success `out` holds the trace id, the remote span id in span_id,
 * the known trace flags, is_remote 1, a zero parent_id and start_ns 0. Returns 0, or
 * POLYTEL_EINVAL (then `out`, if not NULL, is all zero: a new trace). Any
 * input is safe, NULL included.
 */
POLYTEL_EXTERN int polytel_traceparent_parse(const char *header, polytel_span_ctx_t *out);
/*
 * Write ctx's traceparent ("00-trace-span-flags", 55 characters and a NUL)
 * into buf. POLYTEL_EINVAL when len < POLYTEL_TRACEPARENT_LEN + 1 or ctx has
 * an all-zero trace or span id (buf is then "" when len > 0).
 */
POLYTEL_EXTERN int polytel_traceparent_format(const polytel_span_ctx_t *ctx, char *buf, size_t len);
/*
 * The calling thread's current context, for a traceparent to send on: its
 * innermost open thread span, or, when no thread span was begun since the last
 * polytel_context_attach(), the remote context attached. The ids are computed
 * here, on request, and are the ones the span is exported with; trace_flags
 * carries the sampler's decision (an unsampled span has ids too). parent_id is
 * the span's parent (zero for a root); start_ns is 0. Returns 0,
 * POLYTEL_ENOCTX when there is neither (out all zero; also after an attach of
 * no context), or POLYTEL_EINVAL when out is NULL.
 */
POLYTEL_EXTERN int polytel_span_ctx_current(polytel_span_ctx_t *out);
/*
 * Make `remote` (a parsed traceparent) the parent of the thread spans begun
 * from now on at the current depth, until polytel_context_detach(): they join
 * its trace, and the sampler's parentbased_* kinds follow its sampled flag.
 * Spans begun inside those are their children as usual. Attaches nest, up to 8
 * per thread. Every attach is matched by one detach, whatever it returned:
 * 0; POLYTEL_EINVAL for NULL (and, like a remote with all-zero ids, a failed
 * extract, it attaches "no context": spans begun at its depth start new
 * traces); POLYTEL_ENOMEM past 8 (a level that changes nothing; warned once).
 * Cheap: no allocation after a thread's first attach, no lock, no syscall
 * unless a block is full.
 */
POLYTEL_EXTERN int polytel_context_attach(const polytel_span_ctx_t *remote);
/*
 * The same, with the remote's W3C tracestate (NULL: none), exported as the
 * trace_state of the spans of that trace begun on this thread. A tracestate
 * that breaks the spec is discarded whole; a long one is cut by whole members
 * to 512 characters (docs/c-api.md).
 */
POLYTEL_EXTERN int polytel_context_attach_ex(const polytel_span_ctx_t *remote, const char *tracestate);
/* Undo the innermost polytel_context_attach() of the calling thread. Unmatched: ignored, warned once. */
POLYTEL_EXTERN void polytel_context_detach(void);

/*
 * 1 when a tracestate header value is valid W3C Trace Context (level 1: at most
 * 32 list-members, keys simple or tenant@system, no duplicate key), 0 when it
 * must be discarded. Empty lists are valid. NULL is not.
 */
POLYTEL_EXTERN int polytel_tracestate_valid(const char *tracestate);

/* OTEL_PROPAGATORS, read at phase 1: the bindings inject/extract what this says and never parse it. */
#define POLYTEL_PROPAGATOR_TRACECONTEXT 0x1u /* traceparent, tracestate */
#define POLYTEL_PROPAGATOR_BAGGAGE 0x2u      /* baggage */
/* The POLYTEL_PROPAGATOR_* mask in force (0 for "none"); the default before phase 1 and when unset. */
POLYTEL_EXTERN unsigned polytel_propagators(void);

/*
 * W3C Baggage for C programs (and bindings without a baggage store of their own): the core's codec, the one
 * every binding uses. Keys are RFC 9110 tokens; values are any bytes, percent-encoded in the header.
 */
typedef struct polytel_baggage_entry_s {
  const char *key; /* need not be NUL-terminated */
  size_t key_len;
  const char *value; /* parse: percent-decoded, NUL-terminated (value_len bytes; %00 decodes to a NUL) */
  size_t value_len;
} polytel_baggage_entry_t;
/* 1 when key[0..len) can be a baggage key (a non-empty RFC 9110 token), else 0 (NULL included). */
POLYTEL_EXTERN int polytel_baggage_key_valid(const char *key, size_t len);
/*
 * The `baggage` header value of entries[0..n) into buf (NUL-terminated): a repeated key keeps its first
 * place and its last value. An entry that cannot travel (over 4096 bytes encoded, past 8192 bytes in all,
 * or past len - 1) is left out whole, later ones may still fit. Returns the length (0: nothing to send), or
 * POLYTEL_EINVAL (buf "" when len > 0): NULL buf, len 0, NULL entries with n > 0, more than 180 entries, a
 * key that is not a token, a NULL value with value_len > 0.
 */
POLYTEL_EXTERN int polytel_baggage_format(const polytel_baggage_entry_t *entries, size_t n, char *buf,
                                          size_t len);
/*
 * Reads a received `baggage` header value header[0..len) (several header fields joined with ',') and calls
 * fn(arg, entry) for each entry kept, in order; the entry's strings are valid during the call only. A
 * malformed member is skipped, as are members past the limits (180 members, 4096 bytes each, 8192 in all);
 * a repeated key keeps the last value; properties are not passed. fn returning nonzero stops the walk.
 * Returns the number of entries passed to fn, or POLYTEL_EINVAL for a NULL fn (POLYTEL_ENOMEM when out of
 * memory). NULL header: 0. Silent: headers come from outside.
 */
typedef int (*polytel_baggage_fn)(void *arg, const polytel_baggage_entry_t *entry);
POLYTEL_EXTERN int polytel_baggage_parse(const char *header, size_t len, polytel_baggage_fn fn, void *arg);

/* ----------------------------------------------------------------- metrics */

typedef enum {
  POLYTEL_METRIC_COUNTER = 1,  /* monotonic cumulative Sum of int64 deltas */
  POLYTEL_METRIC_GAUGE = 2,    /* last value (double) */
  POLYTEL_METRIC_HISTOGRAM = 3 /* explicit-bucket histogram of doubles */
} polytel_metric_kind_t;

/*
 * A static metric descriptor, one per callsite (the macros below make it).
 * The polytel__ fields are private.
 */
typedef struct polytel_metric_s {
  const char *name;
  const char *unit;
  polytel_metric_kind_t kind;
  uint32_t polytel__slot;
  uint64_t polytel__gauge;
  struct polytel_metric_s *polytel__next;
} polytel_metric_t;

#define POLYTEL_METRIC_INIT(name, unit, kind) \
  { (name), (unit), (kind), 0, 0, 0 }

POLYTEL_EXTERN void polytel_counter_add_static(polytel_metric_t *m, int64_t delta);
POLYTEL_EXTERN void polytel_gauge_set_static(polytel_metric_t *m, double value);
POLYTEL_EXTERN void polytel_histogram_record_static(polytel_metric_t *m, double value);

#define POLYTEL_COUNTER_ADD(name, unit, delta)                                                    \
  do {                                                                                            \
    static polytel_metric_t polytel__m = POLYTEL_METRIC_INIT(name, unit, POLYTEL_METRIC_COUNTER); \
    polytel_counter_add_static(&polytel__m, (delta));                                             \
  } while (0)
#define POLYTEL_GAUGE_SET(name, unit, value)                                                    \
  do {                                                                                          \
    static polytel_metric_t polytel__m = POLYTEL_METRIC_INIT(name, unit, POLYTEL_METRIC_GAUGE); \
    polytel_gauge_set_static(&polytel__m, (value));                                             \
  } while (0)
#define POLYTEL_HISTOGRAM_RECORD(name, unit, value)                                                 \
  do {                                                                                              \
    static polytel_metric_t polytel__m = POLYTEL_METRIC_INIT(name, unit, POLYTEL_METRIC_HISTOGRAM); \
    polytel_histogram_record_static(&polytel__m, (value));                                          \
  } while (0)

/* Dynamic names and attributes (copied). Series are keyed by name + attributes. */
POLYTEL_EXTERN void polytel_counter_add(const char *name, const char *unit, int64_t delta,
                                        const polytel_attr_t *attrs, size_t n_attrs);
POLYTEL_EXTERN void polytel_gauge_set(const char *name, const char *unit, double value,
                                      const polytel_attr_t *attrs, size_t n_attrs);
POLYTEL_EXTERN void polytel_histogram_record(const char *name, const char *unit, double value,
                                             const polytel_attr_t *attrs, size_t n_attrs);

/*
 * Explicit bucket bounds for the histogram `name` in place of the default (0, 5, 10, 25, ... 10000): the
 * OpenTelemetry API's bucket advice. n_bounds finite, strictly increasing bounds (0: one bucket, count and
 * sum only), at most POLYTEL_HISTOGRAM_MAX_BOUNDS. Bucket i holds (bounds[i-1], bounds[i]]. Set before the
 * first record: the series made from then on (every attribute set, every unit) take them; series that exist
 * keep theirs. The first setting of a name stays; at most POLYTEL_HISTOGRAM_MAX_ADVISED names. Copied.
 * Returns 0 (also for the same bounds again), POLYTEL_EINVAL (NULL name, NULL bounds with n_bounds > 0,
 * bounds not finite and strictly increasing, too many: a warning names it), POLYTEL_EALREADY (other bounds
 * were set for the name: they stay), POLYTEL_ENOMEM (no memory, or POLYTEL_HISTOGRAM_MAX_ADVISED names
 * already).
 */
#define POLYTEL_HISTOGRAM_MAX_BOUNDS 256
#define POLYTEL_HISTOGRAM_MAX_ADVISED 1024
POLYTEL_EXTERN int polytel_histogram_set_bounds(const char *name, const double *bounds, size_t n_bounds);

/* ------------------------------------------------------------------- stats */

/*
 * Log records and spans. recorded = exported + dropped + unconfirmed + pending,
 * at every read; dropped = dropped_buffer_full + dropped_invalid + dropped_depth
 * + dropped_export + dropped_rejected. Metric points are aggregated, not counted
 * here (dropped_series and metric_saturated count metric updates).
 *
 * One table: polytel_stats_t, the bindings' stats dict/Hash/object and polytel's self-metrics come from it.
 * XX(field, self-metric, its reason attribute, what it counts). The self-metric is COUNTER("name"),
 * GAUGE("name") or NONE. Rows are only ever appended (ABI: the struct grows at its end).
 */
#define POLYTEL_STATS_FIELDS(XX)                                                                             \
  XX(recorded, COUNTER("polytel.recorded"), NULL, "log records and spans recorded")                          \
  XX(exported, COUNTER("polytel.exported"), NULL, "accepted by the collector")                               \
  XX(dropped, NONE, NULL, "the sum of the dropped_* causes")                                                 \
  XX(pending, GAUGE("polytel.pending"), NULL, "recorded, no outcome yet (in blocks, batches or requests)")   \
  XX(dropped_buffer_full, COUNTER("polytel.dropped"), "buffer_full", "pool exhausted at record time")        \
  XX(dropped_export, COUNTER("polytel.dropped"), "export",                                                   \
     "rejected by the collector, retries exhausted, or never sent before shutdown")                          \
  XX(dropped_invalid, COUNTER("polytel.dropped"), "invalid", "bad calls: unmatched span end, NULL name")     \
  XX(logs_recorded, NONE, NULL, "log records recorded")                                                      \
  XX(spans_recorded, NONE, NULL, "spans recorded")                                                           \
  XX(export_requests, NONE, NULL, "HTTP requests completed (any status)")                                    \
  XX(export_retries, NONE, NULL, "attempts that were retries")                                               \
  XX(export_failures, NONE, NULL, "requests whose batch was dropped or left unconfirmed")                    \
  XX(truncated, NONE, NULL, "records whose strings were cut to fit a block")                                 \
  XX(buffer_bytes, NONE, NULL, "memory held by event blocks now")                                            \
  XX(buffer_bytes_max, NONE, NULL, "the cap (POLYTEL_MAX_MEMORY)")                                           \
  XX(unconfirmed, COUNTER("polytel.unconfirmed"), NULL,                                                      \
     "sent (the whole body handed to the network) but no answer before a deadline: may have arrived")        \
  XX(dropped_series, NONE, NULL, "metric updates without a series of their own (POLYTEL_MAX_METRIC_SERIES)") \
  XX(dropped_depth, COUNTER("polytel.dropped"), "depth",                                                     \
     "thread spans nested deeper than 64, not recorded (part of dropped)")                                   \
  XX(metric_saturated, NONE, NULL, "counter increments lost: the counter stands at INT64_MAX")               \
  XX(dropped_rejected, COUNTER("polytel.dropped"), "rejected",                                               \
     "refused by the collector in an OTLP partial_success (part of dropped)")                                \
  XX(sampled_out, NONE, NULL,                                                                                \
     "spans the sampler left out: ended, not recorded (not part of recorded or dropped)")

typedef struct polytel_stats_s {
#define POLYTEL__XX(field, metric, reason, doc) uint64_t field;
  POLYTEL_STATS_FIELDS(POLYTEL__XX)
#undef POLYTEL__XX
} polytel_stats_t;

POLYTEL_EXTERN int polytel_stats(polytel_stats_t *out);

/* ------------------------------------------------------------- memory sink */

/*
 * An in-process sink for tests and embedders: decoded records, as they would
 * be exported. While enabled, records that reach it count as exported. In
 * phase 1 (no loop), polytel_memory_sink_collect() runs the consumer on the
 * calling thread.
 */
typedef enum {
  POLYTEL_RECORD_LOG = 1,
  POLYTEL_RECORD_SPAN = 2,
  POLYTEL_RECORD_METRIC = 3
} polytel_record_kind_t;

typedef struct polytel_record_s {
  polytel_record_kind_t kind;
  uint64_t time_ns;  /* log time, span end, metric collection time */
  uint64_t start_ns; /* span start, metric series start */
  int level;         /* log severity */
  const char *name;  /* log target, span name, metric name */
  const char *body;  /* log message (formatted), span status message */
  const char *unit;  /* metric unit */
  int status;        /* span status */
  polytel_metric_kind_t metric_kind;
  int64_t int_value;   /* counter total */
  double double_value; /* gauge value, histogram sum */
  uint64_t count;      /* histogram count */
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];
  size_t n_attrs;
  const polytel_attr_t *attrs; /* string values NUL-terminated */
  uint32_t thread_id;          /* recording thread (registration order, 1-based) */
  char thread_name[32];        /* its name (OS name, or polytel_thread_set_name()); "" when unknown */
  /* Appended with the span model: */
  polytel_span_kind_t span_kind; /* spans */
  uint32_t flags;                /* OTLP Span.flags / LogRecord.flags as sent: trace flags, span: bits 8-9 */
  const char *scope_name;        /* spans: instrumentation scope ("polytel" by default); logs: the target */
  const char *scope_version;     /* "" when none */
  const char *trace_state;       /* spans: W3C tracestate as sent, "" when none */
  size_t n_events;
  const struct polytel_record_event_s *events; /* spans */
  size_t n_links;
  const struct polytel_record_link_s *links; /* spans */
  uint32_t dropped_attrs;                    /* spans, logs: dropped_attributes_count */
  uint32_t dropped_events;                   /* spans: dropped_events_count */
  uint32_t dropped_links;                    /* spans: dropped_links_count */
} polytel_record_t;

/* A span event as exported. */
typedef struct polytel_record_event_s {
  const char *name;
  uint64_t time_ns;
  size_t n_attrs;
  const polytel_attr_t *attrs;
  uint32_t dropped_attrs;
} polytel_record_event_t;

/* A span link as exported. */
typedef struct polytel_record_link_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint32_t flags; /* OTLP Link.flags */
  const char *trace_state;
  size_t n_attrs;
  const polytel_attr_t *attrs;
  uint32_t dropped_attrs;
} polytel_record_link_t;

/* Start keeping up to `capacity` records (oldest dropped from the sink first). */
POLYTEL_EXTERN int polytel_memory_sink_enable(size_t capacity);
POLYTEL_EXTERN void polytel_memory_sink_disable(void);
/* Drain every thread's events into the sink now (any phase). */
POLYTEL_EXTERN int polytel_memory_sink_collect(void);
/* Number of records held. */
POLYTEL_EXTERN size_t polytel_memory_sink_count(void);
/* The i-th record, valid until the next collect/clear/disable. NULL past the end. */
POLYTEL_EXTERN const polytel_record_t *polytel_memory_sink_get(size_t i);
POLYTEL_EXTERN void polytel_memory_sink_clear(void);

/* ----------------------------------------------------------------- threads */
/*
 * Names the calling thread on its spans and logs (the `thread.name` attribute; `thread.id` is its
 * registration order). A thread starts with its OS name (pthread_getname_np, read once when it records
 * its first event); bindings pass their language's thread name. Copied, cut to 31 bytes at a character
 * boundary. Records not yet exported carry the new name too. Takes a lock: call it once per thread,
 * not per event.
 */
POLYTEL_EXTERN void polytel_thread_set_name(const char *name);
/* -------------------------------------------------------------------- misc */

POLYTEL_EXTERN const char *polytel_version(void);
/* Wall-clock Unix nanoseconds from polytel's clock. */
POLYTEL_EXTERN uint64_t polytel_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* POLYTEL_H */
