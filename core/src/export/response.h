/* response.h — what an OTLP/HTTP answer says (partial_success, the collector's message), and quoting it for a
 * line. */
#ifndef POLYTEL_RESPONSE_H
#define POLYTEL_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* Bytes of the collector's message kept (more than a warning line shows, so a cut is visible). */
#define POLYTEL__ANSWER_MSG_MAX 256
/* Bytes of an untrusted message a warning line shows before "…". */
#define POLYTEL__QUOTE_MAX 200

typedef struct polytel__otlp_answer_s {
  int has_partial;   /* a partial_success field was present */
  uint64_t rejected; /* its rejected_spans / rejected_log_records / rejected_data_points (0 when absent) */
  /* error_message (2xx), google.rpc.Status.message or the body text (other statuses); raw bytes, not NUL-safe
   */
  char message[POLYTEL__ANSWER_MSG_MAX];
  size_t message_len;
} polytel__otlp_answer_t;

/*
 * Read an OTLP/HTTP response body. 2xx: Export{Trace,Logs,Metrics}ServiceResponse
 * (protobuf or JSON, lowerCamelCase or snake_case keys); any other status:
 * google.rpc.Status, or plain text. The format comes from content_type
 * (parameters ignored); without one, from hint (the request's format). Never
 * fails: whatever cannot be read is left empty (rejected 0, no message).
 */
void polytel__response_parse(polytel__signal_t sig, int status, const uint8_t *body, size_t len,
                             const char *content_type, polytel__format_t hint, polytel__otlp_answer_t *out);

/*
 * Untrusted text made safe for one console line: at most max_bytes of s, cut on
 * a character boundary and marked with "…"; tabs and line breaks become spaces;
 * other control characters, C1 controls, bidi controls, zero-width characters
 * and line separators become <U+XXXX>, invalid UTF-8 bytes <0xNN> (no
 * backslashes: the console escapes those again). Always NUL-terminates out
 * (cap >= 1) and never writes past cap; cap >= 8 * max_bytes + 8 keeps every
 * character that max_bytes allows. Returns the length written.
 */
size_t polytel__quote_untrusted(char *out, size_t cap, const char *s, size_t len, size_t max_bytes);

#endif
