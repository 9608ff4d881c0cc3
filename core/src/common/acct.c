/* acct.c — the outcome counters and polytel_stats(): the accounting identity, read in one place. */
#include <stdatomic.h>
#include <string.h>

#include "common/common.h"

polytel__acct_t polytel__acct = {.pool_cap = POLYTEL__DEFAULT_MAX_MEMORY};

/* The record layer's sum over its threads (retired and live), set when it first has threads. */
static _Atomic(polytel__thread_sums_fn) g_sums;

void polytel__acct_set_thread_sums(polytel__thread_sums_fn fn) {
  atomic_store(&g_sums, fn);
}

void polytel__acct_reset(void) {
  uint64_t cap = atomic_load(&polytel__acct.pool_cap), bytes = atomic_load(&polytel__acct.pool_bytes);
  memset(&polytel__acct, 0, sizeof polytel__acct);
  atomic_store(&polytel__acct.pool_cap, cap);
  atomic_store(&polytel__acct.pool_bytes, bytes);
}

int polytel_stats(polytel_stats_t *out) {
  if (!out) return POLYTEL_EINVAL;
  memset(out, 0, sizeof *out);
  /*
   * Outcomes first, then attempts: pending can never go negative. An outcome
   * is always counted after its record, and a partial_success moves records by
   * adding to dropped_rejected only what it does not add to exported.
   */
  out->exported = atomic_load(&polytel__acct.exported);
  out->dropped_export = atomic_load(&polytel__acct.dropped_export);
  out->dropped_rejected = atomic_load(&polytel__acct.dropped_rejected);
  out->unconfirmed = atomic_load(&polytel__acct.unconfirmed);
  uint64_t orphan = atomic_load(&polytel__acct.orphan_drop);
  polytel__thread_sums_t ts = {0, 0, 0, 0, 0, 0, 0};
  polytel__thread_sums_fn sum = atomic_load(&g_sums);
  if (sum) sum(&ts);
  out->logs_recorded = ts.logs;
  out->spans_recorded = ts.spans;
  out->recorded = ts.logs + ts.spans + orphan;
  out->dropped_buffer_full = ts.full + orphan;
  out->dropped_invalid = ts.inv;
  out->dropped_depth = ts.depth;
  out->truncated = ts.trunc;
  out->sampled_out = ts.sampled_out;
  out->dropped = out->dropped_buffer_full + out->dropped_invalid + out->dropped_depth + out->dropped_export +
                 out->dropped_rejected;
  uint64_t done = out->exported + out->dropped + out->unconfirmed;
  out->pending = out->recorded > done ? out->recorded - done : 0;
  out->export_requests = atomic_load(&polytel__acct.export_requests);
  out->export_retries = atomic_load(&polytel__acct.export_retries);
  out->export_failures = atomic_load(&polytel__acct.export_failures);
  out->dropped_series = atomic_load(&polytel__acct.dropped_series);
  out->metric_saturated = atomic_load(&polytel__acct.metric_saturated);
  out->buffer_bytes = atomic_load_explicit(&polytel__acct.pool_bytes, memory_order_relaxed);
  out->buffer_bytes_max = atomic_load_explicit(&polytel__acct.pool_cap, memory_order_relaxed);
  return 0;
}

uint64_t polytel__recorded_total(void) {
  polytel_stats_t st;
  polytel_stats(&st);
  return st.recorded;
}

uint64_t polytel__pending_total(void) {
  polytel_stats_t st;
  polytel_stats(&st);
  return st.pending;
}
