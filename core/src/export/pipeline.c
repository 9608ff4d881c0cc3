/* pipeline.c — drain blocks into batches, encode requests, retry/drop policy and accounting. No I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "export/encode.h"
#include "record/record.h"
#include "export/pipeline.h"
#include "export/response.h"

#define MAX_IN_FLIGHT 4
/* Backoff step n (0-based): min(INITIAL << n, MAX), then full jitter in [step/2, step]. */
#define BACKOFF_INITIAL_MS 500
#define BACKOFF_MAX_MS 5000
/* The shortest wait between two attempts of one request, whatever asks for sooner (a flush included). */
#define BACKOFF_FLOOR_MS (BACKOFF_INITIAL_MS / 2)
#define WARN_EVERY_MS 10000
#define WARN_SLOTS 32

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

/* One warning line per (signal, cause, outcome) per interval; what it could not say yet accumulates. */
typedef struct warn_slot_s {
  int used;
  int signal;
  int cause; /* HTTP status, or -1 - net class */
  int outcome;
  uint64_t last_ms;
  uint64_t requests, items; /* since the last line */
} warn_slot_t;

struct polytel__pipeline_s {
  const polytel__cfg_t *cfg;
  const polytel__resource_t *res;
  polytel__format_t fmt;
  int gzip;        /* polytel_compression_t of new requests; zstd falls back to gzip once refused */
  int zstd_warned; /* the fallback's one warning line was written */
  int encode;      /* 0 for POLYTEL_EXPORTER_NONE: count, never encode */
  batch_t logs, spans;
  polytel__request_t *head, *tail;
  uint64_t queued_items[2]; /* per signal (traces, logs) in requests */
  uint32_t in_flight;
  uint64_t last_metrics_ms;
  int forcing;
  uint64_t flush_target; /* recorded count when the last flush began: what it must deliver */
  int metrics_owed;      /* a flush wants a metrics snapshot once every block is drained */
  int settle_owed;       /* a flush wants the self-metrics once its records are settled */
  int metrics_in_flight; /* at most one: cumulative snapshots must arrive in time order */
  int stopping;          /* the stop's flush: no periodic snapshots */
  int unbounded;         /* page exit: drain past the queue bound (what does not fit is dropped next) */
  uint64_t rng[2];
  warn_slot_t warn[WARN_SLOTS];
  polytel_stats_t last_self; /* the stats the last snapshot's self-metrics were taken from */
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
    int bytes = polytel__kv_has_bytes(kv[i].type);
    if (bytes) out[i].v.str.ptr = arena_str(a, kv[i].v.str.ptr, kv[i].v.str.len);
    if (!out[i].key || (bytes && !out[i].v.str.ptr)) return NULL;
  }
  return out;
}

/* A span's parts beyond name, status and attributes: scope, tracestate, events, links. 0, or -1 (no memory).
 */
static int arena_span_parts(chunk_t **a, polytel__span_rec_t *d, const polytel__span_rec_t *r) {
  d->scope_name = arena_str(a, r->scope_name ? r->scope_name : "", r->scope_name_len);
  d->scope_version = arena_str(a, r->scope_version ? r->scope_version : "", r->scope_version_len);
  d->trace_state = arena_str(a, r->trace_state ? r->trace_state : "", r->trace_state_len);
  if (!d->scope_name || !d->scope_version || !d->trace_state) return -1;
  d->events = NULL;
  d->links = NULL;
  if (r->n_events) {
    polytel__event_rec_t *e = arena_alloc(a, r->n_events * sizeof *e);
    if (!e) return -1;
    for (uint32_t i = 0; i < r->n_events; i++) {
      e[i] = r->events[i];
      e[i].name = arena_str(a, r->events[i].name, r->events[i].name_len);
      e[i].attrs = arena_kv(a, r->events[i].attrs, r->events[i].n_attrs);
      if (!e[i].name || (e[i].n_attrs && !e[i].attrs)) return -1;
    }
    d->events = e;
  }
  if (r->n_links) {
    polytel__link_rec_t *l = arena_alloc(a, r->n_links * sizeof *l);
    if (!l) return -1;
    for (uint32_t i = 0; i < r->n_links; i++) {
      l[i] = r->links[i];
      l[i].trace_state =
          arena_str(a, r->links[i].trace_state ? r->links[i].trace_state : "", r->links[i].trace_state_len);
      l[i].attrs = arena_kv(a, r->links[i].attrs, r->links[i].n_attrs);
      if (!l[i].trace_state || (l[i].n_attrs && !l[i].attrs)) return -1;
    }
    d->links = l;
  }
  return 0;
}

/* --------------------------------------------------------------- warnings */

static int retryable_status(int status) {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

enum { OUT_RETRY, OUT_DROPPED, OUT_UNCONFIRMED, OUT_REJECTED_PART };

static const char *sig_name(polytel__signal_t s) {
  return s == POLYTEL__SIG_TRACES ? "spans" : s == POLYTEL__SIG_LOGS ? "logs" : "metrics";
}

static const char *item_noun(polytel__signal_t s, uint64_t n) {
  if (s == POLYTEL__SIG_TRACES) return n == 1 ? "span" : "spans";
  return n == 1 ? "log record" : "log records";
}

/*
 * Due now? Accumulates this event's requests and items in its slot, and when
 * a line is due hands back the totals since the last one.
 */
static int warn_due(polytel__pipeline_t *pl, polytel__signal_t sig, int cause, int outcome, uint64_t items,
                    uint64_t now, uint64_t *requests, uint64_t *total) {
  warn_slot_t *w = NULL, *oldest = &pl->warn[0];
  for (int i = 0; i < WARN_SLOTS; i++) {
    warn_slot_t *c = &pl->warn[i];
    if (c->used && c->signal == (int)sig && c->cause == cause && c->outcome == outcome) {
      w = c;
      break;
    }
    if (!c->used || (oldest->used && c->last_ms < oldest->last_ms)) oldest = c;
  }
  if (!w) {
    w = oldest;
    memset(w, 0, sizeof *w);
    w->used = 1;
    w->signal = (int)sig;
    w->cause = cause;
    w->outcome = outcome;
  }
  w->requests++;
  w->items += items;
  if (w->last_ms && now - w->last_ms < WARN_EVERY_MS) return 0;
  *requests = w->requests;
  *total = w->items;
  w->requests = w->items = 0;
  w->last_ms = now ? now : 1;
  return 1;
}

/* "(HTTP 400: "message")", "(connect: Connection refused)": the cause, its untrusted text quoted. */
static void cause_text(char *out, size_t cap, int file, const polytel__response_t *r,
                       const polytel__otlp_answer_t *a) {
  char q[8 * POLYTEL__QUOTE_MAX + 16];
  if (file) {
    polytel__quote_untrusted(q, sizeof q, r->error ? r->error : "", r->error ? strlen(r->error) : 0,
                             POLYTEL__QUOTE_MAX);
    snprintf(out, cap, "write: %s", q);
    return;
  }
  if (r->net == POLYTEL__NET_OK) {
    if (a->message_len) {
      polytel__quote_untrusted(q, sizeof q, a->message, a->message_len, POLYTEL__QUOTE_MAX);
      snprintf(out, cap, "HTTP %d: \"%s\"", r->status, q);
    } else {
      snprintf(out, cap, "HTTP %d", r->status);
    }
    return;
  }
  static const char *const names[] = {"ok", "connect", "timeout", "tls", "network", "shutdown"};
  const char *name = (unsigned)r->net < 6 ? names[r->net] : "network";
  if (r->error && *r->error) {
    polytel__quote_untrusted(q, sizeof q, r->error, strlen(r->error), POLYTEL__QUOTE_MAX);
    snprintf(out, cap, "%s: %s", name, q);
  } else {
    snprintf(out, cap, "%s", name);
  }
}

/* What went wrong, in words, before the cause in parentheses. */
static const char *failure_words(const polytel__pipeline_t *pl, const polytel__response_t *r) {
  if (pl->cfg->exporter == POLYTEL_EXPORTER_FILE)
    return "failed: could not be written to the export directory";
  switch (r->net) {
    case POLYTEL__NET_OK:
      return r->status == 429 ? "failed: the collector is rate limiting"
             : r->status == 502 || r->status == 503 || r->status == 504
                 ? "failed: the collector is unavailable"
                 : "rejected by the collector";
    case POLYTEL__NET_CONNECT:
      return "failed: collector unreachable";
    case POLYTEL__NET_TIMEOUT:
      return "failed: no answer in time";
    case POLYTEL__NET_TLS:
      return "failed: TLS verification or handshake failed";
    default:
      return "failed: transport error";
  }
}

/* The warning line for one finished attempt (rate-limited). */
static void warn_outcome(polytel__pipeline_t *pl, const polytel__request_t *req, const polytel__response_t *r,
                         const polytel__otlp_answer_t *a, int outcome, uint64_t now) {
  int cause = r->net == POLYTEL__NET_OK ? r->status : -1 - (int)r->net;
  uint64_t requests, n;
  if (!warn_due(pl, req->signal, cause, outcome, req->n_items, now, &requests, &n)) return;
  char why[8 * POLYTEL__QUOTE_MAX + 64], more[64] = "";
  cause_text(why, sizeof why, pl->cfg->exporter == POLYTEL_EXPORTER_FILE, r, a);
  const char *sig = sig_name(req->signal), *words = failure_words(pl, r);
  if (requests > 1) snprintf(more, sizeof more, " over %llu requests", (unsigned long long)requests);
  int metrics = req->signal == POLYTEL__SIG_METRICS;
  switch (outcome) {
    case OUT_RETRY:
      if (requests > 1)
        snprintf(more, sizeof more, "; %llu failed attempts since the last such line",
                 (unsigned long long)requests);
      if (metrics)
        polytel__diag(POLYTEL_LEVEL_WARN, "export of metrics %s (%s); retrying%s", words, why, more);
      else
        polytel__diag(POLYTEL_LEVEL_WARN, "export of %s %s (%s); retrying (%llu %s waiting)%s", sig, words,
                      why, (unsigned long long)pl->queued_items[req->signal == POLYTEL__SIG_LOGS],
                      item_noun(req->signal, pl->queued_items[req->signal == POLYTEL__SIG_LOGS]), more);
      break;
    case OUT_DROPPED: {
      /* A rejection says itself that it is final; a network failure says why it stopped. */
      const char *how =
          r->net == POLYTEL__NET_TLS ? "; not retried: this will not heal without a configuration "
                                       "change (the certificate, OTEL_EXPORTER_OTLP_CERTIFICATE)"
          : r->net == POLYTEL__NET_OK && !retryable_status(r->status) ? ""
                                                                      : "; retries exhausted within "
                                                                        "the export timeout";
      if (metrics)
        polytel__diag(
            POLYTEL_LEVEL_WARN,
            "export of metrics %s (%s)%s; the snapshot is dropped%s (metric points are not records: "
            "the next snapshot carries the cumulative totals)",
            words, why, how, more);
      else
        polytel__diag(POLYTEL_LEVEL_WARN,
                      "export of %s %s (%s)%s; %llu %s dropped%s (counted as dropped_export)", sig, words,
                      why, how, (unsigned long long)n, item_noun(req->signal, n), more);
      break;
    }
    case OUT_UNCONFIRMED:
      polytel__diag(POLYTEL_LEVEL_WARN,
                    "export of %s %s (%s); %llu %s unconfirmed%s: sent, but no answer came within the export "
                    "timeout, so they may or may not have arrived (counted as unconfirmed)",
                    sig, words, why, (unsigned long long)n, item_noun(req->signal, n), more);
      break;
  }
}

/* A 2xx that carried a partial_success: the rejected records and the collector's message. */
static void warn_partial(polytel__pipeline_t *pl, const polytel__request_t *req,
                         const polytel__otlp_answer_t *a, uint64_t rejected, uint64_t now) {
  uint64_t requests, n;
  if (!warn_due(pl, req->signal, 200, OUT_REJECTED_PART, rejected, now, &requests, &n)) return;
  char q[8 * POLYTEL__QUOTE_MAX + 16], what[8 * POLYTEL__QUOTE_MAX + 48], more[64] = "";
  polytel__quote_untrusted(q, sizeof q, a->message, a->message_len, POLYTEL__QUOTE_MAX);
  if (a->message_len)
    snprintf(what, sizeof what, "partial_success: \"%s\"", q);
  else
    snprintf(what, sizeof what, "partial_success, no message");
  if (requests > 1) snprintf(more, sizeof more, " over %llu requests", (unsigned long long)requests);
  const char *sig = sig_name(req->signal);
  if (req->signal == POLYTEL__SIG_METRICS)
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "export of metrics partially rejected by the collector (%s); %llu data points rejected%s",
                  what, (unsigned long long)n, more);
  else if (n)
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "export of %s partially rejected by the collector (%s); %llu %s dropped%s (counted as "
                  "dropped_rejected)",
                  sig, what, (unsigned long long)n, item_noun(req->signal, n), more);
  else
    polytel__diag(POLYTEL_LEVEL_WARN, "export of %s accepted with a warning from the collector (%s)", sig,
                  what);
}

/* --------------------------------------------------------------- requests */

/* The request the body went into (a new one, or the waiting snapshot it superseded), or NULL (dropped). */
static polytel__request_t *enqueue(polytel__pipeline_t *pl, polytel__signal_t sig, polytel__buf_t *body,
                                   uint64_t n_items, uint64_t now) {
  polytel__request_t *r = calloc(1, sizeof *r);
  polytel__buf_t z = {0};
  if (r && pl->gzip && polytel__compress(pl->gzip, body->data, body->len, &z) == 0 && !z.oom) {
    polytel__buf_free(body);
    *body = z;
    r->gzip = pl->gzip;
  } else {
    polytel__buf_free(&z);
  }
  if (!r || body->oom) {
    free(r);
    polytel__buf_free(body);
    atomic_fetch_add(&polytel__acct.dropped_export, n_items);
    atomic_fetch_add(&polytel__acct.export_failures, 1);
    return NULL;
  }
  if (sig == POLYTEL__SIG_METRICS) {
    /* Cumulative: a snapshot still waiting (queued or in backoff) is superseded; it keeps its place and pace.
     */
    for (polytel__request_t *q = pl->head; q; q = q->next) {
      if (q->signal != POLYTEL__SIG_METRICS || q->in_flight) continue;
      free(q->owned_body);
      q->owned_body = body->data;
      q->body = body->data;
      q->body_len = body->len;
      q->gzip = r->gzip;
      q->first_try_ms = now;
      memset(body, 0, sizeof *body);
      free(r);
      return q; /* still owed if it was: the newer snapshot carries what the flush waited for */
    }
  }
  r->retry_after_ms = -1;
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
  return r;
}

/* The logs or spans batched so far become one encoded request on the queue. */
static void cut(polytel__pipeline_t *pl, int sig, uint64_t now) {
  batch_t *b = sig == POLYTEL__SIG_LOGS ? &pl->logs : &pl->spans;
  if (!b->n) return;
  polytel__buf_t body = {0};
  int rc = sig == POLYTEL__SIG_LOGS ? polytel__encode_logs(&body, pl->fmt, pl->res, b->recs, b->n)
                                    : polytel__encode_spans(&body, pl->fmt, pl->res, b->recs, b->n);
  if (rc != 0) body.oom = 1;
  enqueue(pl, sig, &body, b->n, now);
  b->n = 0;
  arena_free(&b->arena);
}

/* A snapshot now; owed: a flush waits for it (polytel__pipeline_pending), a periodic one it does not. */
static void collect_metrics(polytel__pipeline_t *pl, uint64_t now, int owed) {
  pl->last_metrics_ms = now;
  if (!pl->cfg->signal_enabled[POLYTEL__SIG_METRICS] || !pl->encode) return;
  polytel__metrics_snap_t snap;
  pthread_mutex_lock(&polytel__consume_mu);
  int rc = polytel__metrics_snapshot(&snap, polytel_now_ns());
  pthread_mutex_unlock(&polytel__consume_mu);
  if (rc != 0) return;
  pl->last_self = snap.self;
  if (snap.n) {
    polytel__buf_t body = {0};
    if (polytel__encode_metrics(&body, pl->fmt, pl->res, snap.recs, snap.n) != 0) body.oom = 1;
    polytel__request_t *r = enqueue(pl, POLYTEL__SIG_METRICS, &body, 0, now);
    if (r && owed) r->owed = 1;
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

/*
 * The slot of the next log or span in its batch, or NULL when the record is accounted already: exported
 * (the "none" exporter, or the signal off) or dropped (no memory for the batch).
 */
static void *batch_slot(polytel__pipeline_t *pl, int sig, size_t rec_size, uint32_t max) {
  if (!pl->encode || !pl->cfg->signal_enabled[sig]) {
    atomic_fetch_add(&polytel__acct.exported, 1); /* the "none" exporter accepts everything */
    return NULL;
  }
  batch_t *b = sig == POLYTEL__SIG_LOGS ? &pl->logs : &pl->spans;
  if (!batch_room(b, rec_size, max)) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return NULL;
  }
  return (char *)b->recs + b->n * rec_size;
}

/* The slot filled: the batch is cut when full (its schedule delay cuts it otherwise, polytel__pipeline_pump).
 */
static void batch_added(polytel__pipeline_t *pl, int sig) {
  batch_t *b = sig == POLYTEL__SIG_LOGS ? &pl->logs : &pl->spans;
  uint64_t now = polytel__now_ms();
  if (b->n++ == 0) b->first_ms = now;
  if (b->n >= b->cap) cut(pl, sig, now);
}

static void sink_log(void *ctx, const polytel__log_rec_t *r) {
  polytel__pipeline_t *pl = ctx;
  polytel__log_rec_t *d =
      batch_slot(pl, POLYTEL__SIG_LOGS, sizeof(polytel__log_rec_t), pl->cfg->blrp.max_export_batch_size);
  if (!d) return;
  chunk_t **ar = &pl->logs.arena;
  *d = *r;
  d->target = arena_str(ar, r->target, r->target_len);
  d->body = arena_str(ar, r->body, r->body_len);
  d->attrs = arena_kv(ar, r->attrs, r->n_attrs);
  if (!d->target || !d->body || (r->n_attrs && !d->attrs)) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return;
  }
  batch_added(pl, POLYTEL__SIG_LOGS);
}

static void sink_span(void *ctx, const polytel__span_rec_t *r) {
  polytel__pipeline_t *pl = ctx;
  polytel__span_rec_t *d =
      batch_slot(pl, POLYTEL__SIG_TRACES, sizeof(polytel__span_rec_t), pl->cfg->bsp.max_export_batch_size);
  if (!d) return;
  chunk_t **ar = &pl->spans.arena;
  *d = *r;
  d->name = arena_str(ar, r->name, r->name_len);
  d->status_msg = arena_str(ar, r->status_msg ? r->status_msg : "", r->status_msg_len);
  d->attrs = arena_kv(ar, r->attrs, r->n_attrs);
  if (!d->name || !d->status_msg || (r->n_attrs && !d->attrs) || arena_span_parts(ar, d, r) != 0) {
    atomic_fetch_add(&polytel__acct.dropped_export, 1);
    return;
  }
  batch_added(pl, POLYTEL__SIG_TRACES);
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
  if (pl->unbounded) return UINT64_MAX;
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
    collect_metrics(pl, now, 1);
  }
  if (pl->forcing && pl->settle_owed && !pl->metrics_owed && items_pending(pl) == 0) {
    /*
     * Everything the flush owed is settled: the self-metrics go once more, so
     * the last polytel.exported a backend sees is what polytel_stats() says
     * (the first snapshot went before these records were answered).
     */
    pl->settle_owed = 0;
    polytel_stats_t st;
    polytel_stats(&st);
    if (st.recorded != pl->last_self.recorded || st.exported != pl->last_self.exported ||
        st.dropped != pl->last_self.dropped || st.unconfirmed != pl->last_self.unconfirmed)
      collect_metrics(pl, now, pl->stopping); /* a plain flush owes only the snapshot taken at it */
  }
  if (pl->forcing && drained) {
    cut(pl, POLYTEL__SIG_LOGS, now);
    cut(pl, POLYTEL__SIG_TRACES, now);
    if (polytel__pipeline_pending(pl) == 0) {
      /*
       * flush_target stays until the next force: the waiter looks after this
       * pump, and under continuous load records newer than the flush are
       * always pending (clearing it here made a flush miss its completion).
       */
      pl->forcing = 0;
      pl->last_metrics_ms = now;
    }
  }
  /* first_ms comes from the sink's clock, read after `now`: `now - first_ms` may be negative. */
  if (pl->logs.n && now >= pl->logs.first_ms + c->blrp.schedule_delay_ms) cut(pl, POLYTEL__SIG_LOGS, now);
  if (pl->spans.n && now >= pl->spans.first_ms + c->bsp.schedule_delay_ms) cut(pl, POLYTEL__SIG_TRACES, now);
  /*
   * Not while flushing or stopping: a flush (or shutdown) owes its own snapshots (above), and with a
   * collector slower than the interval each answer found a newer snapshot due at once, so a shutdown never
   * went idle before its deadline. The interval counts again from the flush's end.
   */
  int periodic = !pl->forcing && !pl->stopping;
  if (periodic && now - pl->last_metrics_ms >= c->metric_export_interval_ms) collect_metrics(pl, now, 0);

  /* Next wake-up: the soonest of a batch deadline, a retry, the metrics interval, or a poll of blocks. */
  uint64_t next = now + (c->blrp.schedule_delay_ms < c->bsp.schedule_delay_ms ? c->blrp.schedule_delay_ms
                                                                              : c->bsp.schedule_delay_ms);
  if (pl->logs.n && pl->logs.first_ms + c->blrp.schedule_delay_ms < next)
    next = pl->logs.first_ms + c->blrp.schedule_delay_ms;
  if (pl->spans.n && pl->spans.first_ms + c->bsp.schedule_delay_ms < next)
    next = pl->spans.first_ms + c->bsp.schedule_delay_ms;
  if (periodic && pl->last_metrics_ms + c->metric_export_interval_ms < next)
    next = pl->last_metrics_ms + c->metric_export_interval_ms;
  for (polytel__request_t *r = pl->head; r; r = r->next)
    if (!r->in_flight && r->not_before_ms < next) next = r->not_before_ms;
  if (pl->forcing && next > now + 10) next = now + 10;
  return next <= now ? 0 : (uint32_t)(next - now);
}

void polytel__pipeline_stopping(polytel__pipeline_t *pl) {
  pl->stopping = 1;
}

void polytel__pipeline_force(polytel__pipeline_t *pl, uint64_t now) {
  pl->forcing = 1;
  pl->flush_target = polytel__recorded_total();
  pl->settle_owed = pl->encode && pl->cfg->signal_enabled[POLYTEL__SIG_METRICS];
  int drained = drain(pl);
  cut(pl, POLYTEL__SIG_LOGS, now);
  cut(pl, POLYTEL__SIG_TRACES, now);
  /*
   * Metric events sit in the blocks among logs and spans: the snapshot waits
   * until the bounded drain has reached them all (else late increments are lost).
   */
  if (drained)
    collect_metrics(pl, now, 1);
  else
    pl->metrics_owed = 1;
  /*
   * Anything in backoff goes now (a flush is an explicit request to deliver),
   * but never sooner than the floor after its last attempt, nor before the
   * collector's Retry-After: a flush loop must not become a request loop.
   */
  for (polytel__request_t *r = pl->head; r; r = r->next) {
    if (r->in_flight || r->not_before_ms <= now || !r->attempt) continue;
    uint64_t wait = BACKOFF_FLOOR_MS;
    if (r->retry_after_ms > (int64_t)wait) wait = (uint64_t)r->retry_after_ms;
    uint64_t at = r->last_done_ms + wait;
    if (at < now) at = now;
    if (at < r->not_before_ms) r->not_before_ms = at;
  }
}

polytel__request_t *polytel__pipeline_next(polytel__pipeline_t *pl, uint64_t now) {
  if (pl->in_flight >= MAX_IN_FLIGHT) return NULL;
  for (polytel__request_t *r = pl->head; r; r = r->next) {
    if (r->in_flight || r->not_before_ms > now) continue;
    if (r->signal == POLYTEL__SIG_METRICS && pl->metrics_in_flight) continue;
    r->in_flight = 1;
    r->transport_data = NULL;
    pl->in_flight++;
    if (r->signal == POLYTEL__SIG_METRICS) pl->metrics_in_flight = 1;
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

/* Step n of the schedule, jittered: [base/2, base], base = min(INITIAL << n, MAX). */
static uint64_t backoff_step(polytel__pipeline_t *pl, uint32_t attempt) {
  uint32_t a = attempt < 16 ? attempt : 16;
  uint64_t base = (uint64_t)BACKOFF_INITIAL_MS << a;
  if (base > BACKOFF_MAX_MS) base = BACKOFF_MAX_MS;
  /* Full jitter in [base/2, base]: clients that failed together do not retry together. */
  return base / 2 + polytel__rng_next(pl->rng) % (base / 2 + 1);
}

static polytel__request_t *newer_metrics_queued(const polytel__pipeline_t *pl,
                                                const polytel__request_t *req) {
  for (polytel__request_t *r = pl->head; r; r = r->next)
    if (r != req && r->signal == POLYTEL__SIG_METRICS) return r;
  return NULL;
}

/* Counts a request's records as dropped or unconfirmed, frees it. */
static polytel__done_t finish(polytel__pipeline_t *pl, polytel__request_t *req, polytel__done_t how) {
  if (how == POLYTEL__DONE_UNCONFIRMED)
    atomic_fetch_add(&polytel__acct.unconfirmed, req->n_items);
  else if (how == POLYTEL__DONE_DROPPED)
    atomic_fetch_add(&polytel__acct.dropped_export, req->n_items);
  if (how != POLYTEL__DONE_EXPORTED && (req->n_items || req->signal == POLYTEL__SIG_METRICS))
    atomic_fetch_add(&polytel__acct.export_failures, 1);
  unlink_req(pl, req);
  free_request(req);
  return how;
}

static void accepted(polytel__pipeline_t *pl, polytel__request_t *req, const polytel__response_t *resp,
                     uint64_t now) {
  polytel__otlp_answer_t a;
  polytel__response_parse(req->signal, resp->status, resp->body, resp->body_len, resp->content_type, pl->fmt,
                          &a);
  uint64_t rejected = a.rejected;
  if (req->signal == POLYTEL__SIG_METRICS) {
    if (a.rejected || a.message_len) warn_partial(pl, req, &a, rejected, now);
    return;
  }
  if (rejected > req->n_items) rejected = req->n_items; /* a collector cannot reject more than it got */
  /* Two adds, the exported part first: a reader in between sees them pending, never counted twice. */
  atomic_fetch_add(&polytel__acct.exported, req->n_items - rejected);
  if (rejected) atomic_fetch_add(&polytel__acct.dropped_rejected, rejected);
  if (rejected || a.message_len) warn_partial(pl, req, &a, rejected, now);
}

/* ------------------------------------------------------ zstd fallback */

static int has_ci(const char *s, size_t n, const char *word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= n; i++) {
    size_t k = 0;
    while (k < w && (s[i + k] | 0x20) == word[k]) k++;
    if (k == w) return 1;
  }
  return 0;
}

/*
 * A collector without zstd: a 415, or a 400 whose message is about the encoding (the OpenTelemetry
 * Collector's answer is 400 "unsupported Content-Encoding: zstd"), to a zstd body.
 */
static int zstd_refused(const polytel__request_t *req, const polytel__response_t *r,
                        const polytel__otlp_answer_t *a) {
  if (req->gzip != POLYTEL_COMPRESSION_ZSTD || r->net != POLYTEL__NET_OK) return 0;
  int about_it = has_ci(a->message, a->message_len, "encoding") || has_ci(a->message, a->message_len, "zstd");
  return r->status == 415 ? about_it || a->message_len == 0 : r->status == 400 && about_it;
}

/* The same records, gzip'd: the zstd frame read back and compressed again. 0, or -1 leaving req as it was. */
static int regzip(polytel__request_t *req) {
  polytel__buf_t raw = {0}, gz = {0};
  int rc = polytel__unzstd(req->body, req->body_len, &raw) == 0 &&
                   polytel__compress(POLYTEL_COMPRESSION_GZIP, raw.data, raw.len, &gz) == 0 && !gz.oom
               ? 0
               : -1;
  polytel__buf_free(&raw);
  if (rc) {
    polytel__buf_free(&gz);
    return -1;
  }
  free(req->owned_body);
  req->owned_body = gz.data;
  req->body = gz.data;
  req->body_len = gz.len;
  req->gzip = POLYTEL_COMPRESSION_GZIP;
  return 0;
}

/*
 * From now on gzip. This request and every queued zstd one are gzip'd again, and this one goes again at once
 * (no backoff; one export_retries): nothing is lost to the switch. Requests still in flight come back
 * refused in turn and take the same path. One warning line per pipeline.
 */
static int fall_back_to_gzip(polytel__pipeline_t *pl, polytel__request_t *req, const polytel__response_t *r,
                             const polytel__otlp_answer_t *a, uint64_t now) {
  pl->gzip = POLYTEL_COMPRESSION_GZIP;
  if (!pl->zstd_warned) {
    char why[8 * POLYTEL__QUOTE_MAX + 64];
    cause_text(why, sizeof why, 0, r, a);
    polytel__diag(POLYTEL_LEVEL_WARN,
                  "the collector refused zstd (%s); compressing with gzip from now on, nothing lost "
                  "(OTEL_EXPORTER_OTLP_COMPRESSION=gzip avoids the retry)",
                  why);
    pl->zstd_warned = 1;
  }
  for (polytel__request_t *q = pl->head; q; q = q->next)
    if (q != req && !q->in_flight && q->gzip == POLYTEL_COMPRESSION_ZSTD) regzip(q);
  if (regzip(req) != 0) return 0;
  req->not_before_ms = now;
  atomic_fetch_add(&polytel__acct.export_retries, 1);
  return 1;
}

polytel__done_t polytel__pipeline_done(polytel__pipeline_t *pl, polytel__request_t *req,
                                       const polytel__response_t *resp, uint64_t now) {
  static const polytel__response_t none = {.net = POLYTEL__NET_OTHER, .retry_after_ms = -1};
  polytel__response_t r = resp ? *resp : none;
  if (r.net == POLYTEL__NET_OK && r.status <= 0) r.net = POLYTEL__NET_OTHER; /* an answer has a status */
  if (r.net != POLYTEL__NET_OK) r.status = 0;
  req->in_flight = 0;
  if (pl->in_flight) pl->in_flight--;
  if (req->signal == POLYTEL__SIG_METRICS) pl->metrics_in_flight = 0;
  req->last_done_ms = now;
  if (r.net != POLYTEL__NET_ABORTED) atomic_fetch_add(&polytel__acct.export_requests, 1);
  int answered = r.net == POLYTEL__NET_OK;
  if (!answered && r.sent) req->maybe_delivered = 1;
  /* A failure after any attempt was sent unanswered: those records may have arrived. */
  polytel__done_t lost = req->maybe_delivered ? POLYTEL__DONE_UNCONFIRMED : POLYTEL__DONE_DROPPED;
  static const polytel__otlp_answer_t no_answer;
  polytel__otlp_answer_t a = no_answer;

  if (answered && r.status >= 200 && r.status < 300) {
    accepted(pl, req, &r, now);
    return finish(pl, req, POLYTEL__DONE_EXPORTED);
  }
  if (r.net == POLYTEL__NET_ABORTED) return finish(pl, req, lost); /* shutdown: its summary line says it */
  if (answered)
    polytel__response_parse(req->signal, r.status, r.body, r.body_len, r.content_type, pl->fmt, &a);
  if (zstd_refused(req, &r, &a) && fall_back_to_gzip(pl, req, &r, &a, now)) return POLYTEL__DONE_RETRY;

  const polytel__cfg_t *c = pl->cfg;
  int file = c->exporter == POLYTEL_EXPORTER_FILE;
  int retry = !file && (answered ? retryable_status(r.status) : r.net != POLYTEL__NET_TLS);
  polytel__request_t *newer =
      retry && req->signal == POLYTEL__SIG_METRICS ? newer_metrics_queued(pl, req) : NULL;
  if (newer) {
    newer->owed |= req->owed; /* a flush waiting for this one waits for the newer: it carries the totals */
    return finish(pl, req, POLYTEL__DONE_DROPPED); /* superseded: the newer snapshot carries the totals */
  }
  if (retry) {
    uint64_t timeout = req->signal == POLYTEL__SIG_TRACES ? c->bsp.export_timeout_ms
                       : req->signal == POLYTEL__SIG_LOGS ? c->blrp.export_timeout_ms
                                                          : c->metric_export_timeout_ms;
    /* The floor is the backoff step: a Retry-After may ask for longer, never for sooner. */
    uint64_t delay = backoff_step(pl, req->attempt);
    req->retry_after_ms = answered ? r.retry_after_ms : -1;
    if (req->retry_after_ms > 0 && (uint64_t)req->retry_after_ms > delay)
      delay = (uint64_t)req->retry_after_ms;
    if (now - req->first_try_ms + delay <= timeout) {
      req->attempt++;
      req->not_before_ms = now + delay;
      atomic_fetch_add(&polytel__acct.export_retries, 1);
      warn_outcome(pl, req, &r, &a, OUT_RETRY, now);
      return POLYTEL__DONE_RETRY;
    }
  }
  warn_outcome(pl, req, &r, &a, lost == POLYTEL__DONE_UNCONFIRMED ? OUT_UNCONFIRMED : OUT_DROPPED, now);
  return finish(pl, req, lost);
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
    uint64_t done = st.exported + st.dropped + st.unconfirmed;
    return pl->flush_target > done ? pl->flush_target - done : 0;
  }
  return st.pending;
}

uint64_t polytel__pipeline_pending(const polytel__pipeline_t *pl) {
  /*
   * A metrics request carries no items, but it can be owed all the same (e.g. in backoff at shutdown). A
   * plain flush owes the snapshot taken at it, not the periodic ones: with a collector as slow as the
   * interval one is nearly always queued or in flight, and counting them held a flush to its timeout after
   * everything recorded before it was delivered. The stop's flush owes every one, and the settling snapshot.
   */
  uint64_t metrics = (uint64_t)pl->metrics_owed + (pl->stopping ? (uint64_t)pl->settle_owed : 0);
  for (const polytel__request_t *r = pl->head; r; r = r->next)
    metrics += r->signal == POLYTEL__SIG_METRICS && (r->owed || pl->stopping);
  return items_pending(pl) + metrics;
}

uint32_t polytel__pipeline_in_flight(const polytel__pipeline_t *pl) {
  return pl->in_flight;
}

void polytel__pipeline_abandon(polytel__pipeline_t *pl) {
  uint64_t dropped = pl->logs.n + pl->spans.n, unconfirmed = 0;
  pl->logs.n = pl->spans.n = 0;
  arena_free(&pl->logs.arena);
  arena_free(&pl->spans.arena);
  polytel__request_t *r = pl->head;
  while (r) {
    polytel__request_t *next = r->next;
    /* In flight still: handed to the network and never reported back, so it may have arrived. */
    if (r->maybe_delivered || r->in_flight)
      unconfirmed += r->n_items;
    else
      dropped += r->n_items;
    if (r->n_items || r->signal == POLYTEL__SIG_METRICS) atomic_fetch_add(&polytel__acct.export_failures, 1);
    free_request(r);
    r = next;
  }
  pl->head = pl->tail = NULL;
  pl->queued_items[0] = pl->queued_items[1] = 0;
  pl->in_flight = 0;
  pl->metrics_in_flight = 0;
  pl->metrics_owed = pl->settle_owed = 0;
  if (dropped) atomic_fetch_add(&polytel__acct.dropped_export, dropped);
  if (unconfirmed) atomic_fetch_add(&polytel__acct.unconfirmed, unconfirmed);
}

/* ------------------------------------------------ page exit (wasm transport) */

size_t polytel__pipeline_exit_cut(polytel__pipeline_t *pl, uint64_t now) {
  pl->unbounded = 1;
  drain(pl);
  pl->unbounded = 0;
  cut(pl, POLYTEL__SIG_LOGS, now);
  cut(pl, POLYTEL__SIG_TRACES, now);
  size_t n = 0;
  for (const polytel__request_t *r = pl->head; r; r = r->next) n += !r->in_flight;
  return n;
}

polytel__request_t *polytel__pipeline_exit_take(polytel__pipeline_t *pl) {
  for (polytel__request_t *r = pl->head; r; r = r->next) {
    /* Snapshots are not handed out here: exit_metrics supersedes them with one that counts the exit. */
    if (r->in_flight || r->signal == POLYTEL__SIG_METRICS) continue;
    r->in_flight = 1;
    r->transport_data = NULL;
    pl->in_flight++;
    return r;
  }
  return NULL;
}

void polytel__pipeline_exit_release(polytel__pipeline_t *pl, polytel__request_t *req) {
  if (!req->in_flight) return;
  req->in_flight = 0;
  if (pl->in_flight) pl->in_flight--;
  if (req->signal == POLYTEL__SIG_METRICS) pl->metrics_in_flight = 0;
}

void polytel__pipeline_exit_drop(polytel__pipeline_t *pl, polytel__request_t *req) {
  polytel__pipeline_exit_release(pl, req);
  atomic_fetch_add(&polytel__acct.dropped_export, req->n_items);
  atomic_fetch_add(&polytel__acct.export_failures, 1);
  unlink_req(pl, req);
  free_request(req);
}

polytel__request_t *polytel__pipeline_exit_metrics(polytel__pipeline_t *pl, uint64_t now, int final) {
  /* Snapshots arrive in time order; only the last word of a leaving page may overtake one in flight. */
  if (pl->metrics_in_flight && !final) return NULL;
  /* Only the newest cumulative snapshot matters: older ones still queued are superseded, not lost. */
  for (polytel__request_t *r = pl->head, *next; r; r = next) {
    next = r->next;
    if (r->signal != POLYTEL__SIG_METRICS || r->in_flight) continue;
    unlink_req(pl, r);
    free_request(r);
  }
  pl->metrics_owed = 0;
  collect_metrics(pl, now, 1);
  polytel__request_t *t = pl->tail;
  if (!t || t->signal != POLYTEL__SIG_METRICS || t->in_flight) return NULL;
  t->in_flight = 1;
  t->transport_data = NULL;
  pl->in_flight++;
  pl->metrics_in_flight = 1;
  return t;
}

const polytel__pipeline_api_t polytel__pipeline_api = {
    polytel__pipeline_pump,    polytel__pipeline_force,   polytel__pipeline_next,
    polytel__pipeline_done,    polytel__pipeline_pending, polytel__pipeline_in_flight,
    polytel__pipeline_abandon, polytel__pipeline_free,    polytel__pipeline_stopping,
};
