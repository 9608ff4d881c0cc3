/* retry_after.h — Retry-After header values (delay-seconds or an HTTP-date), parsed without libcurl. */
#ifndef POLYTEL_RETRY_AFTER_H
#define POLYTEL_RETRY_AFTER_H

#include <stddef.h>
#include <stdint.h>

/* The longest wait a collector can ask for: a day is already absurd for telemetry. */
#define POLYTEL__RETRY_AFTER_MAX_S 86400

/*
 * A Retry-After value (RFC 9110 10.2.3): delay-seconds, or an HTTP-date in any of
 * the three formats recipients must accept (IMF-fixdate, RFC 850, asctime).
 * Surrounding spaces, tabs and CR/LF are ignored. Returns the delay in ms from
 * now_s (Unix seconds), 0 for a date in the past, clamped to a day; -1 when
 * absent or not a valid value.
 */
int64_t polytel__retry_after_parse(const char *v, size_t len, int64_t now_s);

#endif
