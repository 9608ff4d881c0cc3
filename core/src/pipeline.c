/* pipeline.c — drain blocks into batches, encode requests, retry/drop policy and accounting. No I/O. */
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "encode.h"
#include "internal.h"
#include "pipeline.h"

#define MAX_IN_FLIGHT 4
#define BACKOFF_INITIAL_MS 500
#define BACKOFF_MAX_MS 5000
#define WARN_EVERY_MS 10000

/* Chunked arena: pointers stay valid until the whole batch is freed. */
typedef struct chunk_s {
  struct chunk_s *next;
  size_t used, cap;
  uint8_t data[];
} chunk_t;

typedef struct batch_s {
  void *recs; /* polytel__log_rec_t[] or polytel__span_rec_t[] */
  uint32_t n, cap;
  uint64_t first_ms;
  chunk_t *arena;
} batch_t;

struct polytel__pipeline_s {
  const polytel__cfg_t *cfg;
  const polytel__resource_t *res;
  polytel__format_t fmt;
  int gzip;
  int encode; /* 0 for POLYTEL_EXPORTER_NONE: count, never encode */
  batch_t logs, spans;
  polytel__request_t *head, *tail;
  uint64_t queued_items[2]; /* per signal (traces, logs) in requests */
  uint32_t in_flight;
  uint64_t last_metrics_ms;
  int forcing;
  uint64_t flush_target; /* recorded count when the last flush began: what it must deliver */
  int metrics_owed;      /* a flush wants a metrics snapshot once every block is drained */
  uint64_t rng[2];
  uint64_t last_warn_ms;
  uint64_t warn_suppressed;
};

/* ------------------------------------------------------------------ arena */

static void *arena_alloc(chunk_t **a, size_t n) {
  n = POLYTEL__ALIGN8(n);
  chunk_t *c = *a;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 60000 ? n : 60000;
    chunk_t *nc = malloc(sizeof *nc + cap);
    if (!nc) return NULL;
    nc->used = 0;
    nc->cap = cap;
    nc->next = c;
    *a = nc;
    c = nc;
  }
  void *p = c->data + c->used;
  c->used += n;
  return p;
}

static void arena_free(chunk_t **a) {
  chunk_t *c = *a;
  while (c) {
    chunk_t *n = c->next;
    free(c);
    c = n;
  }
  *a = NULL;
}

static const char *arena_str(chunk_t **a, const char *s, uint32_t len) {
  char *d = arena_alloc(a, (size_t)len + 1);
  if (!d) return NULL;
  if (len) memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

static const polytel__kv_t *arena_kv(chunk_t **a, const polytel__kv_t *kv, uint32_t n) {
  if (!n) return NULL;
  polytel__kv_t *out = arena_alloc(a, n * sizeof *out);
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    out[i] = kv[i];
    out[i].key = arena_str(a, kv[i].key, kv[i].key_len);
    if (kv[i].type == POLYTEL_ATTR_STRING) out[i].v.str.ptr = arena_str(a, kv[i].v.str.ptr, kv[i].v.str.len);
    if (!out[i].key || (kv[i].type == POLYTEL_ATTR_STRING && !out[i].v.str.ptr)) return NULL;
  }
  return out;
}

/* --------------------------------------------------------------- warnings */

static void warn_limited(polytel__pipeline_t *pl, const char *what, int status, const char *signal) {
  uint64_t now = polytel__now_ms();
  if (pl->last_warn_ms && now - pl->last_warn_ms < WARN_EVERY_MS) {
    pl->warn_suppressed++;
    return;
  }
  if (pl->warn_suppressed)
    polytel__diag(POLYTEL_LEVEL_WARN, "export of %s %s (status %d); %llu similar warnings suppressed", signal,
                  what, status, (unsigned long long)pl->warn_suppressed);
  else
    polytel__diag(POLYTEL_LEVEL_WARN, "export of %s %s (status %d)", signal, what, status);
  pl->last_warn_ms = now;
  pl->warn_suppressed = 0;
}

static const char *sig_name(polytel__signal_t s) {
  return s == POLYTEL__SIG_TRACES ? "spans" : s == POLYTEL__SIG_LOGS ? "logs" : "metrics";
}

/* --------------------------------------------------------------- requests */

static void enqueue(polytel__pipeline_t *pl, polytel__signal_t sig, polytel__buf_t *body, uint64_t n_items,
                    uint64_t now) {
  polytel__request_t *r = calloc(1, sizeof *r);
  polytel__buf_t z = {0};
  if (r && pl->gzip && polytel__gzip(body->data, body->len, &z) == 0 && !z.oom) {
    polytel__buf_free(body);
    *body = z;
    r->gzip = 1;
  } else {
    polytel__buf_free(&z);
  }
  if (!r || body->oom) {
    free(r);
    polytel__buf_free(body);
    atomic_fetch_add(&polytel__acct.dropped_export, n_items);
    atomic_fetch_add(&polytel__acct.export_failures, 1);
    return;
  }
  r->signal = sig;
  r->url = pl->cfg->signal_url[sig];
  r->owned_body = body->data;
  r->body = body->data;
  r->body_len = body->len;
  r->content_type = pl->fmt == POLYTEL__FMT_JSON ? "application/json" : "application/x-protobuf";
  r->timeout_ms = pl->cfg->timeout_ms;
  r->n_items = n_items;
  r->first_try_ms = now;
  r->not_before_ms = now;
  memset(body, 0, sizeof *body);
  if (sig != POLYTEL__SIG_METRICS) pl->queued_items[sig == POLYTEL__SIG_LOGS] += n_items;
  if (pl->tail)
    pl->tail->next = r;
  else
    pl->head = r;
  pl->tail = r;
}

static void cut_logs(polytel__pipeline_t *pl, uint64_t now) {
  batch_t *b = &pl->logs;
  if (!b->n) return;
  polytel__buf_t body = {0};
  int rc = polytel__encode_logs(&body, pl->fmt, pl->res, b->recs, b->n);
  if (rc != 0) body.oom = 1;
  enqueue(pl, POLYTEL__SIG_LOGS, &body, b->n, now);
  b->n = 0;
  arena_free(&b->arena);
}

static void cut_spans(polytel__pipeline_t *pl, uint64_t now) {
  batch_t *b = &pl->spans;
  if (!b->n) return;
  polytel__buf_t body = {0};
  int rc = polytel__encode_spans(&body, pl->fmt, pl->res, b->recs, b->n);
  if (rc != 0) body.oom = 1;
  enqueue(pl, POLYTEL__SIG_TRACES, &body, b->n, now);
  b->n = 0;
  arena_free(&b->arena);
}

static void collect_metrics(polytel__pipeline_t *pl, uint64_t now) {
  pl->last_metrics_ms = now;
  if (!pl->cfg->signal_enabled[POLYTEL__SIG_METRICS] || !pl->encode) return;
  polytel__metrics_snap_t snap;
  pthread_mutex_lock(&polytel__consume_mu);
  int rc = polytel__metrics_snapshot(&snap, polytel_now_ns());
  pthread_mutex_unlock(&polytel__consume_mu);
  if (rc != 0) return;
  if (snap.n) {
    polytel__buf_t body = {0};
    if (polytel__encode_metrics(&body, pl->fmt, pl->res, snap.recs, snap.n) != 0) body.oom = 1;
    enqueue(pl, POLYTEL__SIG_METRICS, &body, 0, now);
  }
  polytel__metrics_snap_free(&snap);
}

/* ------------------------------------------------------------------ sinks */

static int batch_room(batch_t *b, size_t rec_size, uint32_t max) {
  if (!b->recs) {
    b->recs = calloc(max, rec_size);
    if (!b->recs) return 0;
    b->cap = max;
  }
  return b->n < b->cap;
}

static void sink_log(void *ctx, const polytel__log_rec_t *r) {
  polytel__pipeline_t *pl = ctx;
  if (!pl->encode || !pl->cfg->signal_enabled[POLYTEL__SIG_LOGS]) {
    atomic_fetch_add(&polytel__acct.exported, 1); /* the "none" exporter accepts everything */
    return;
  }
  batch_t *b = &pl->logs;
  uint64_t now = polytel__now_ms();
  if (!batch_room(b, sizeof(polytel__log_rec_t), pl->cfg->blrp.max_export_batch_size)) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return;
  }
  polytel__log_rec_t *d = &((polytel__log_rec_t *)b->recs)[b->n];
  *d = *r;
  d->target = arena_str(&b->arena, r->target, r->target_len);
  d->body = arena_str(&b->arena, r->body, r->body_len);
  d->attrs = arena_kv(&b->arena, r->attrs, r->n_attrs);
  if (!d->target || !d->body || (r->n_attrs && !d->attrs)) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return;
  }
  if (b->n++ == 0) b->first_ms = now;
  if (b->n >= b->cap) cut_logs(pl, now);
}

static void sink_span(void *ctx, const polytel__span_rec_t *r) {
  polytel__pipeline_t *pl = ctx;
  if (!pl->encode || !pl->cfg->signal_enabled[POLYTEL__SIG_TRACES]) {
    atomic_fetch_add(&polytel__acct.exported, 1);
    return;
  }
  batch_t *b = &pl->spans;
  uint64_t now = polytel__now_ms();
  if (!batch_room(b, sizeof(polytel__span_rec_t), pl->cfg->bsp.max_export_batch_size)) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return;
  }
  polytel__span_rec_t *d = &((polytel__span_rec_t *)b->recs)[b->n];
  *d = *r;
  d->name = arena_str(&b->arena, r->name, r->name_len);
  d->status_msg = arena_str(&b->arena, r->status_msg ? r->status_msg : "", r->status_msg_len);
  d->attrs = arena_kv(&b->arena, r->attrs, r->n_attrs);
  if (!d->name || !d->status_msg || (r->n_attrs && !d->attrs)) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return;
  }
  if (b->n++ == 0) b->first_ms = now;
  if (b->n >= b->cap) cut_spans(pl, now);
}

/* ------------------------------------------------------------------ public */

polytel__pipeline_t *polytel__pipeline_new(const polytel__cfg_t *cfg, const polytel__resource_t *res) {
  polytel__pipeline_t *pl = calloc(1, sizeof *pl);
  if (!pl) return NULL;
  pl->cfg = cfg;
  pl->res = res;
  pl->encode = cfg->exporter != POLYTEL_EXPORTER_NONE;
  /* The file exporter writes the Collector's file format: OTLP/JSON lines, uncompressed. */
  if (cfg->exporter == POLYTEL_EXPORTER_FILE) {
    pl->fmt = POLYTEL__FMT_JSON;
    pl->gzip = 0;
  } else {
    pl->fmt = cfg->protocol == POLYTEL_PROTOCOL_JSON ? POLYTEL__FMT_JSON : POLYTEL__FMT_PROTOBUF;
    pl->gzip = cfg->gzip;
  }
  pl->last_metrics_ms = polytel__now_ms();
  polytel__rng_seed(pl->rng);
  return pl;
}

static void free_request(polytel__request_t *r) {
  free(r->owned_body);
  free(r);
}

void polytel__pipeline_free(polytel__pipeline_t *pl) {
  if (!pl) return;
  polytel__request_t *r = pl->head;
  while (r) {
    polytel__request_t *n = r->next;
    free_request(r);
    r = n;
  }
  arena_free(&pl->logs.arena);
  arena_free(&pl->spans.arena);
  free(pl->logs.recs);
  free(pl->spans.recs);
  free(pl);
}

/* Items the queue may still take, so memory stays bounded when the collector is slow or down. */
static uint64_t room(const polytel__pipeline_t *pl) {
  uint64_t ql = pl->queued_items[1] + pl->logs.n, qs = pl->queued_items[0] + pl->spans.n;
  uint64_t ml = pl->cfg->blrp.max_queue_size, ms = pl->cfg->bsp.max_queue_size;
  uint64_t rl = ql < ml ? ml - ql : 0, rs = qs < ms ? ms - qs : 0;
  return rl < rs ? rl : rs;
}

static uint64_t items_pending(const polytel__pipeline_t *pl);

/* Returns 1 when every block was drained (not stopped by the queue bound). */
static int drain(polytel__pipeline_t *pl) {
  uint64_t r = pl->encode ? room(pl) : UINT64_MAX;
  if (!r) return 0;
  polytel__sink_t sink = {sink_log, sink_span, NULL, pl};
  uint64_t got;
  pthread_mutex_lock(&polytel__consume_mu);
  if (polytel__memsink_active()) {
    got = polytel__consume(&polytel__memsink_sink, UINT64_MAX);
    r = UINT64_MAX;
  } else if (!pl->encode) {
    /* The "none" exporter accepts everything; no record needs rendering. */
    polytel__sink_t counter = {NULL, NULL, NULL, NULL};
    got = polytel__consume(&counter, r);
    atomic_fetch_add(&polytel__acct.exported, got);
  } else {
    got = polytel__consume(&sink, r);
  }
  pthread_mutex_unlock(&polytel__consume_mu);
  return got < r;
}

uint32_t polytel__pipeline_pump(polytel__pipeline_t *pl, uint64_t now) {
  polytel__pool_refill(); /* the allocations and page faults of pool growth, here rather than on a caller */
  int drained = drain(pl);
  const polytel__cfg_t *c = pl->cfg;
  /* Flushing: partial batches go once the blocks are empty, not on every pump (no tiny requests). */
  if (pl->forcing && pl->metrics_owed && (drained || items_pending(pl) == 0)) {
    /* The consumer has passed everything recorded before the flush: its metric events are aggregated. */
    pl->metrics_owed = 0;
    collect_metrics(pl, now);
  }
  if (pl->forcing && drained) {
    cut_logs(pl, now);
    cut_spans(pl, now);
    if (polytel__pipeline_pending(pl) == 0) {
      /*
       * flush_target stays until the next force: the waiter looks after this
       * pump, and under continuous load records newer than the flush are
       * always pending (clearing it here made a flush miss its completion).
       */
      pl->forcing = 0;
    }
  }
  if (pl->logs.n && now - pl->logs.first_ms >= c->blrp.schedule_delay_ms) cut_logs(pl, now);
  if (pl->spans.n && now - pl->spans.first_ms >= c->bsp.schedule_delay_ms) cut_spans(pl, now);
  if (now - pl->last_metrics_ms >= c->metric_export_interval_ms) collect_metrics(pl, now);

  /* Next wake-up: the soonest of a batch deadline, a retry, the metrics interval, or a poll of blocks. */
  uint64_t next = now + (c->blrp.schedule_delay_ms < c->bsp.schedule_delay_ms ? c->blrp.schedule_delay_ms
                                                                              : c->bsp.schedule_delay_ms);
  if (pl->logs.n && pl->logs.first_ms + c->blrp.schedule_delay_ms < next)
    next = pl->logs.first_ms + c->blrp.schedule_delay_ms;
  if (pl->spans.n && pl->spans.first_ms + c->bsp.schedule_delay_ms < next)
    next = pl->spans.first_ms + c->bsp.schedule_delay_ms;
  if (pl->last_metrics_ms + c->metric_export_interval_ms < next)
    next = pl->last_metrics_ms + c->metric_export_interval_ms;
  for (polytel__request_t *r = pl->head; r; r = r->next)
    if (!r->in_flight && r->not_before_ms < next) next = r->not_before_ms;
  if (pl->forcing && next > now + 10) next = now + 10;
  return next <= now ? 0 : (uint32_t)(next - now);
}

void polytel__pipeline_force(polytel__pipeline_t *pl, uint64_t now) {
  pl->forcing = 1;
  pl->flush_target = polytel__recorded_total();
  int drained = drain(pl);
  cut_logs(pl, now);
  cut_spans(pl, now);
  /*
   * Metric events sit in the blocks among logs and spans: the snapshot waits
   * until the bounded drain has reached them all (else late increments are lost).
   */
  if (drained)
    collect_metrics(pl, now);
  else
    pl->metrics_owed = 1;
  /* Anything in backoff goes now: a flush is an explicit request to deliver. */
  for (polytel__request_t *r = pl->head; r; r = r->next)
    if (r->not_before_ms > now) r->not_before_ms = now;
}

polytel__request_t *polytel__pipeline_next(polytel__pipeline_t *pl, uint64_t now) {
  if (pl->in_flight >= MAX_IN_FLIGHT) return NULL;
  for (polytel__request_t *r = pl->head; r; r = r->next) {
    if (r->in_flight || r->not_before_ms > now) continue;
    r->in_flight = 1;
    r->transport_data = NULL;
    pl->in_flight++;
    return r;
  }
  return NULL;
}

static void unlink_req(polytel__pipeline_t *pl, polytel__request_t *req) {
  polytel__request_t **pp = &pl->head, *prev = NULL;
  while (*pp && *pp != req) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp) return;
  *pp = req->next;
  if (pl->tail == req) pl->tail = prev;
  if (req->signal != POLYTEL__SIG_METRICS) pl->queued_items[req->signal == POLYTEL__SIG_LOGS] -= req->n_items;
}

static int retryable(int status) {
  return status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
}

void polytel__pipeline_done(polytel__pipeline_t *pl, polytel__request_t *req, int status,
                            int64_t retry_after_ms, uint64_t now) {
  req->in_flight = 0;
  if (pl->in_flight) pl->in_flight--;
  atomic_fetch_add(&polytel__acct.export_requests, 1);
  if (status >= 200 && status < 300) {
    atomic_fetch_add(&polytel__acct.exported, req->n_items);
    unlink_req(pl, req);
    free_request(req);
    return;
  }
  const polytel__cfg_t *c = pl->cfg;
  uint64_t timeout = req->signal == POLYTEL__SIG_TRACES ? c->bsp.export_timeout_ms
                     : req->signal == POLYTEL__SIG_LOGS ? c->blrp.export_timeout_ms
                                                        : c->metric_export_timeout_ms;
  if (retryable(status)) {
    uint64_t backoff;
    if (retry_after_ms >= 0) {
      backoff = (uint64_t)retry_after_ms; /* the server knows best */
    } else {
      uint32_t a = req->attempt < 16 ? req->attempt : 16;
      uint64_t base = (uint64_t)BACKOFF_INITIAL_MS << a;
      if (base > BACKOFF_MAX_MS) base = BACKOFF_MAX_MS;
      /* Full jitter in [base/2, base]: clients that failed together do not retry together. */
      backoff = base / 2 + polytel__rng_next(pl->rng) % (base / 2 + 1);
    }
    if (now - req->first_try_ms + backoff <= timeout) {
      req->attempt++;
      req->not_before_ms = now + backoff;
      atomic_fetch_add(&polytel__acct.export_retries, 1);
      if (status == 0)
        warn_limited(pl, "failed: collector unreachable or timed out; retrying", status,
                     sig_name(req->signal));
      return;
    }
    warn_limited(pl, "dropped: retries exhausted within the export timeout", status, sig_name(req->signal));
  } else {
    warn_limited(pl,
                 c->exporter == POLYTEL_EXPORTER_FILE
                     ? "could not be written to the export directory; dropped"
                     : "rejected by the collector; dropped (not retried)",
                 status, sig_name(req->signal));
  }
  atomic_fetch_add(&polytel__acct.dropped_export, req->n_items);
  atomic_fetch_add(&polytel__acct.export_failures, 1);
  unlink_req(pl, req);
  free_request(req);
}

/*
 * Since a flush began (until the next one), what it still owes: events
 * recorded before it began, not yet exported or dropped. Events recorded since
 * do not make it wait, so a flush completes even while other threads keep
 * emitting.
 */
static uint64_t items_pending(const polytel__pipeline_t *pl) {
  polytel_stats_t st;
  polytel_stats(&st);
  if (pl->flush_target) {
    uint64_t done = st.exported + st.dropped;
    return pl->flush_target > done ? pl->flush_target - done : 0;
  }
  return st.pending;
}

uint64_t polytel__pipeline_pending(const polytel__pipeline_t *pl) {
  /* A metrics request carries no items, but it is owed all the same (e.g. in backoff at shutdown). */
  uint64_t metrics = (uint64_t)pl->metrics_owed;
  for (const polytel__request_t *r = pl->head; r; r = r->next) metrics += r->signal == POLYTEL__SIG_METRICS;
  return items_pending(pl) + metrics;
}

uint32_t polytel__pipeline_in_flight(const polytel__pipeline_t *pl) {
  return pl->in_flight;
}

void polytel__pipeline_abandon(polytel__pipeline_t *pl) {
  uint64_t n = pl->logs.n + pl->spans.n;
  pl->logs.n = pl->spans.n = 0;
  arena_free(&pl->logs.arena);
  arena_free(&pl->spans.arena);
  polytel__request_t *r = pl->head;
  while (r) {
    polytel__request_t *next = r->next;
    n += r->n_items;
    if (r->n_items || r->signal == POLYTEL__SIG_METRICS) atomic_fetch_add(&polytel__acct.export_failures, 1);
    free_request(r);
    r = next;
  }
  pl->head = pl->tail = NULL;
  pl->queued_items[0] = pl->queued_items[1] = 0;
  pl->in_flight = 0;
  if (n) atomic_fetch_add(&polytel__acct.dropped_export, n);
}
