/* bench_tp.h — the LTTng-UST tracepoint provider of the LTTng peer bench: the same four operations as
 * bench_hotpath.c, each with what a user of LTTng would record for it (bench/peers/README.md). */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER polytel_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./bench_tp.h"

#if !defined(BENCH_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define BENCH_TP_H

#include <lttng/tracepoint.h>
#include <stdint.h>

/* Spans: a begin and an end event carrying the static name by pointer (as polytel and micromegas do). */
LTTNG_UST_TRACEPOINT_EVENT(polytel_bench, span_begin, LTTNG_UST_TP_ARGS(const char *, name),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_integer_hex(uintptr_t, name, (uintptr_t)name)))
LTTNG_UST_TRACEPOINT_EVENT(polytel_bench, span_end, LTTNG_UST_TP_ARGS(const char *, name),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_integer_hex(uintptr_t, name, (uintptr_t)name)))
/* Logs: the message as a string field (LTTng has no deferred rendering of a static string), and the two
 * ints as integer fields beside the format (no formatting on the calling thread, as in polytel). */
LTTNG_UST_TRACEPOINT_EVENT(polytel_bench, log_static, LTTNG_UST_TP_ARGS(const char *, msg),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_string(msg, msg)))
LTTNG_UST_TRACEPOINT_EVENT(polytel_bench, log_2ints, LTTNG_UST_TP_ARGS(const char *, fmt, int, a, int, b),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_string(fmt, fmt)
                                                   lttng_ust_field_integer(int, a, a)
                                                       lttng_ust_field_integer(int, b, b)))
/* A counter add is an event here (as in micromegas), not an in-process sum (as in polytel). */
LTTNG_UST_TRACEPOINT_EVENT(polytel_bench, counter_add, LTTNG_UST_TP_ARGS(const char *, name, int64_t, delta),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_integer_hex(uintptr_t, name, (uintptr_t)name)
                                                   lttng_ust_field_integer(int64_t, delta, delta)))
/* Brackets the verification pass of one operation (bench/peers/run.py counts the events between). */
LTTNG_UST_TRACEPOINT_EVENT(polytel_bench, marker, LTTNG_UST_TP_ARGS(int, op, int, phase),
                           LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(int, op, op)
                                                   lttng_ust_field_integer(int, phase, phase)))

#endif

#include <lttng/tracepoint-event.h>
