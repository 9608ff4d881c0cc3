/* propagation.h — W3C Trace Context, tracestate and Baggage codecs; OTEL_PROPAGATORS and sampler settings. */
#ifndef POLYTEL_PROPAGATION_H
#define POLYTEL_PROPAGATION_H

#include <stddef.h>
#include <stdint.h>

#include "polytel.h"

/* Room for one warning line from the settings parsers below (longer text is cut, never overrun). */
#define POLYTEL__PROP_WARN_CAP 320

/* ------------------------------------------------------------ traceparent */

/* polytel_traceparent_parse() over s[0..n), which need not be NUL-terminated (bindings, fuzzing). */
int polytel__traceparent_parse_n(const char *s, size_t n, polytel_span_ctx_t *out);

/* ------------------------------------------------------------- tracestate */

#define POLYTEL__TRACESTATE_MAX_MEMBERS 32
/* What polytel propagates: the spec's "at least 512 characters"; longer lists lose whole members. */
#define POLYTEL__TRACESTATE_MAX_LEN 512
/* Members longer than this are the first to go when a list is cut (the spec's SHOULD). */
#define POLYTEL__TRACESTATE_BIG_MEMBER 128

/*
 * Validate a tracestate value (several header fields joined with ',') and
 * write its normal form to out: members joined by ',' without optional
 * whitespace, empty members left out, at most min(512, cap - 1) characters.
 * A longer list is cut by whole members: members over 128 characters first,
 * last first, then members from the end. Returns the length written (0 for an
 * empty list), or -1 when the value must be discarded whole (bad key or
 * value, more than 32 members, a duplicate key) or out/cap is unusable; out
 * is "" then (when cap > 0).
 */
int polytel__tracestate_normalize(const char *in, char *out, size_t cap);
int polytel__tracestate_normalize_n(const char *in, size_t n, char *out, size_t cap);

/* ---------------------------------------------------------------- baggage */

/* The spec's list-member limit (its ABNF), and the OTel SDKs' byte limits. */
#define POLYTEL__BAGGAGE_MAX_MEMBERS 180
#define POLYTEL__BAGGAGE_MAX_BYTES 8192        /* one baggage-string: members and commas */
#define POLYTEL__BAGGAGE_MAX_MEMBER_BYTES 4096 /* one list-member as it travels */
/* Storage that always holds a whole parsed header: decoded text never outgrows its encoding. */
#define POLYTEL__BAGGAGE_STORE_MIN (POLYTEL__BAGGAGE_MAX_BYTES + 3 * POLYTEL__BAGGAGE_MAX_MEMBERS)

typedef struct polytel__baggage_entry_s {
  const char *key;   /* a token (RFC 9110), NUL-terminated */
  const char *value; /* percent-decoded, NUL-terminated; value_len bytes (%00 decodes to a NUL) */
  const char *props; /* properties as received, optional whitespace removed: ";k=v;flag", or "" */
  uint32_t key_len, value_len, props_len;
} polytel__baggage_entry_t;

/*
 * A fixed-capacity baggage: entries point into caller-owned storage (at least
 * POLYTEL__BAGGAGE_STORE_MIN bytes to take any header). Nothing allocates.
 */
typedef struct polytel__baggage_s {
  polytel__baggage_entry_t e[POLYTEL__BAGGAGE_MAX_MEMBERS];
  uint32_t n;
  uint32_t skipped; /* list-members parse dropped: malformed, over a limit, no room */
  uint32_t taken;   /* well-formed list-members parse accepted (duplicates included) */
  uint32_t bytes;   /* their encoded size, with separators */
  char *store;
  size_t cap, used;
} polytel__baggage_t;

void polytel__baggage_init(polytel__baggage_t *b, char *store, size_t cap);
/*
 * Add the list-members of one baggage header value s[0..n) (call once per
 * header field; limits apply to all of them together). Values (and only
 * values) are percent-decoded; a decoded sequence that is not UTF-8 becomes
 * U+FFFD. A malformed member (no '=', a key that is not a token, a character
 * outside baggage-octet, a bad %-escape, a malformed property) is skipped and
 * counted, and so is a member past 180 members, past 8192 bytes in all, or
 * longer than 4096 bytes. A repeated key replaces the earlier value in place
 * (last wins, as in the OpenTelemetry SDKs). Returns the number of members
 * taken from s, or POLYTEL_EINVAL when b is NULL.
 */
int polytel__baggage_parse(polytel__baggage_t *b, const char *s, size_t n);
/*
 * Set key (a token) to value[0..value_len) (any bytes; encoded when
 * formatted), replacing an existing entry and its properties. Returns 0,
 * POLYTEL_EINVAL (bad key) or POLYTEL_ENOMEM (no entry or storage left).
 */
int polytel__baggage_set(polytel__baggage_t *b, const char *key, size_t key_len, const char *value,
                         size_t value_len);
/* The entry for key, or NULL. */
const polytel__baggage_entry_t *polytel__baggage_get(const polytel__baggage_t *b, const char *key,
                                                     size_t key_len);
/* Remove key's entry; 1 when there was one. Order of the others is kept. */
int polytel__baggage_remove(polytel__baggage_t *b, const char *key, size_t key_len);
/*
 * Write the baggage header value: "key=value;props" members joined by ',',
 * values percent-encoded (every byte outside baggage-octet, and '%'). A member
 * that would exceed 4096 bytes, 180 members, 8192 bytes or cap - 1 is left
 * out whole (never cut), later ones may still fit. Returns the length (0 when
 * empty), or POLYTEL_EINVAL when b or out is NULL or cap is 0.
 */
int polytel__baggage_format(const polytel__baggage_t *b, char *out, size_t cap);

/* --------------------------------------------------------------- settings */

#define POLYTEL__PROPAGATOR_TRACECONTEXT 0x1u
#define POLYTEL__PROPAGATOR_BAGGAGE 0x2u
#define POLYTEL__PROPAGATORS_DEFAULT (POLYTEL__PROPAGATOR_TRACECONTEXT | POLYTEL__PROPAGATOR_BAGGAGE)

/*
 * OTEL_PROPAGATORS (NULL or blank: unset): a comma list of tracecontext,
 * baggage, none, any case. Returns the POLYTEL__PROPAGATOR_* mask. Names the
 * OTel spec knows but polytel does not implement (b3, b3multi, jaeger, xray,
 * ottrace) and unknown names are ignored and named once each in one warning
 * line written to warn (warn[0] == '\0' when there is nothing to say); a list
 * with no usable name means the default, tracecontext,baggage; "none" wins
 * over anything listed beside it.
 */
unsigned polytel__propagators_parse(const char *value, char *warn, size_t warn_cap);

typedef enum {
  POLYTEL__SAMPLER_ALWAYS_ON = 1,
  POLYTEL__SAMPLER_ALWAYS_OFF = 2,
  POLYTEL__SAMPLER_TRACEIDRATIO = 3,
  POLYTEL__SAMPLER_PARENTBASED_ALWAYS_ON = 4,
  POLYTEL__SAMPLER_PARENTBASED_ALWAYS_OFF = 5,
  POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO = 6
} polytel__sampler_kind_t;

typedef struct polytel__sampler_s {
  polytel__sampler_kind_t kind;
  double ratio;   /* the TraceIdRatioBased ratio in [0, 1]; 1.0 for the other kinds */
  uint64_t bound; /* polytel__ratio_bound(ratio) */
} polytel__sampler_t;

/*
 * OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (NULL or blank: unset).
 * Default parentbased_always_on; the arg is read only by traceidratio and
 * parentbased_traceidratio: a decimal ratio in [0, 1] (exponent allowed),
 * default 1.0. A bad value writes one warning line to warn and keeps the
 * default. Always fills out; returns 0, or POLYTEL_EINVAL when out is NULL.
 */
int polytel__sampler_parse(const char *sampler, const char *arg, polytel__sampler_t *out, char *warn,
                           size_t warn_cap);
/* "parentbased_always_on" and so on. */
const char *polytel__sampler_name(polytel__sampler_kind_t kind);

/* The TraceIdRatioBased bound: round-half-even(ratio * 2^64); UINT64_MAX (every trace) from ratio 1 up. */
uint64_t polytel__ratio_bound(double ratio);
/*
 * The OpenTelemetry Python (and, but for the last bit, Go) SDK's decision:
 * the trace id's low 8 bytes, big-endian, are below the bound. 1 = sample.
 */
int polytel__traceid_ratio_sampled(const uint8_t trace_id[16], uint64_t bound);
/*
 * The sampler's decision for a new span: parent is -1 for a root span, else
 * the parent's sampled flag (0/1), local or remote alike (the ParentBased
 * defaults). 1 = record and sample, 0 = drop.
 */
int polytel__sampler_should_sample(const polytel__sampler_t *s, const uint8_t trace_id[16], int parent);

#endif
