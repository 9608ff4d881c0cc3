/* transport.h — the libuv + libcurl-multi transport and the file exporter, driving a pipeline. */
#ifndef POLYTEL_TRANSPORT_H
#define POLYTEL_TRANSPORT_H

#include <stdint.h>

#include "config.h"
#include "pipeline.h"

struct uv_loop_s;

/*
 * Start exporting `pl` (owned by the transport from here on, freed at stop).
 * loop != NULL: handles are created on it; must be called on its thread.
 * loop == NULL: a polytel-owned loop thread is started (and joined at stop).
 * With cfg->exporter == FILE, requests are appended to <export_dir>/<signal>.jsonl
 * instead of sent; with NONE they are completed as delivered without I/O.
 * The cfg is copied (it need not outlive the call). On failure (POLYTEL_EINVAL,
 * _ENOMEM, _EIO, _EALREADY) the caller still owns `pl`.
 * Host loop: polytel's handles are unref'd (they never keep the loop alive);
 * after stop, run the loop once more (uv_run) so their close callbacks finish
 * before uv_loop_close().
 */
int polytel__transport_start(struct uv_loop_s *loop, polytel__pipeline_t *pl, const polytel__cfg_t *cfg);

/* Any thread, async-signal-unsafe, cheap: a block was handed off, pump soon. */
void polytel__transport_wake(void);

/*
 * Any thread: force the pipeline and wait until nothing is pending or the
 * timeout passed. On the loop's own thread (even inside one of its callbacks)
 * it drives curl's sockets itself with poll(2): uv_run is not reentrant.
 * 0 or POLYTEL_ETIMEDOUT.
 */
int polytel__transport_flush(uint32_t timeout_ms);

/*
 * Flush up to timeout_ms, then cancel what is in flight, drop (count) what is
 * left, close every handle, join the owned thread, free the pipeline.
 * 0 when everything was delivered, else POLYTEL_ETIMEDOUT. Bounded by the
 * timeout even when the collector accepts connections and never answers.
 */
int polytel__transport_stop(uint32_t timeout_ms);

/* 1 while started. */
int polytel__transport_running(void);

/* pthread_atfork: prepare parks the loop thread outside curl; parent resumes it;
 * child forgets the parent's transport without touching its sockets. */
void polytel__transport_atfork_prepare(void);
void polytel__transport_atfork_parent(void);
void polytel__transport_atfork_child(void);

#endif
