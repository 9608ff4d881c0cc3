/* record/record.h — the record layer: per-thread blocks, the event layout, recording levels, the consumer,
 * metrics aggregation, the memory sink. */
#ifndef POLYTEL_RECORD_H
#define POLYTEL_RECORD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "polytel.h"

/* ------------------------------------------------------------ event layout */

enum {
  POLYTEL__EV_LOG_FMT = 1,        /* static target + fmt, captured args */
  POLYTEL__EV_LOG_STR = 2,        /* copied target, message, attrs, optional span ctx */
  POLYTEL__EV_SPAN_BEGIN = 3,     /* static name */
  POLYTEL__EV_SPAN_BEGIN_DYN = 4, /* copied name + attrs */
  POLYTEL__EV_SPAN_END = 5,       /* flags = status */
  POLYTEL__EV_SPAN_END_DYN = 6,   /* status + message + attrs */
  POLYTEL__EV_SPAN_FULL = 7,      /* async span, whole */
  POLYTEL__EV_METRIC = 8,         /* dynamic metric: level = kind */
  POLYTEL__EV_HIST_STATIC = 9,    /* static histogram sample */
  POLYTEL__EV_CTX_ATTACH = 11,    /* a remote context attached: ids, flags, tracestate */
  POLYTEL__EV_CTX_DETACH = 12,    /* the innermost attached context is detached */
  /* The fast paths' span pair, 24 bytes in all (little-endian hosts; the layout is in words): */
  POLYTEL__EV_SPAN_BEGIN_PACKED = 13, /* 16 bytes: type | begin flags << 8 | static name << 16 (a pointer
                                         below 2^48), then ts */
  POLYTEL__EV_SPAN_END_PACKED = 14    /* 8 bytes: type | ts << 8 (a ts below 2^56); status unset */
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define POLYTEL__PACKED_SPANS 1 /* the fast paths write the packed pair */
#else
#define POLYTEL__PACKED_SPANS 0
#endif

/* EV_SPAN_BEGIN(_DYN) header flags: the sampler's decision (taken on the calling thread) and the kind. */
#define POLYTEL__BEGIN_UNSAMPLED 0x1u
#define POLYTEL__BEGIN_KIND_SHIFT 1 /* 3 bits: polytel_span_kind_t, 0 = internal */

/* Every event starts with this header; size is a multiple of 8. */
typedef struct polytel__ev_s {
  uint8_t type;
  uint8_t level;  /* log level / metric kind */
  uint16_t flags; /* span status, log arg count */
  uint32_t size;  /* whole event, bytes */
  uint64_t ts;    /* polytel__ticks(), or Unix ns for SPAN_FULL */
} polytel__ev_t;

/* An event's size in bytes: the packed span events have theirs by type (no size field). */
static inline uint32_t polytel__ev_size(const uint8_t *p) {
  if (p[0] == POLYTEL__EV_SPAN_BEGIN_PACKED) return 16;
  if (p[0] == POLYTEL__EV_SPAN_END_PACKED) return 8;
  uint32_t size;
  memcpy(&size, p + 4, 4);
  return size;
}

/* A packed end's timestamp: its low 56 bits (w >> 8) above its begin's `start`, within 2^56 ticks. */
static inline uint64_t polytel__packed_end_ts(uint64_t start, uint64_t w) {
  return start + (((w >> 8) - start) & (((uint64_t)1 << 56) - 1));
}

/* Serialized attribute header; key bytes, then value (8 bytes or string bytes), padded to 8. */
typedef struct polytel__ev_attr_s {
  uint8_t type;
  uint8_t pad;
  uint16_t key_len;
  uint32_t val_len;
} polytel__ev_attr_t;

/* Captured printf argument kinds. */
enum {
  POLYTEL__ARG_INT = 1, /* int and promoted smaller types */
  POLYTEL__ARG_LONG,    /* long, long long, size_t, intmax_t, ptrdiff_t */
  POLYTEL__ARG_DOUBLE,
  POLYTEL__ARG_LDOUBLE, /* stored as 16 bytes */
  POLYTEL__ARG_PTR,
  POLYTEL__ARG_STR /* u32 length + bytes, padded */
};
#define POLYTEL__MAX_FMT_ARGS 15

/* A parsed format: argument kinds in order. ok == 0: cannot be deferred (%n, %ls, %.Ns ...). */
typedef struct polytel__fmt_sig_s {
  const char *fmt;
  uint8_t ok;
  uint8_t n_args;
  uint8_t has_n;     /* contains %n: never formatted */
  uint8_t ints_only; /* ok, and every argument is an integer: the fast path applies */
  uint8_t kinds[POLYTEL__MAX_FMT_ARGS];
} polytel__fmt_sig_t;

void polytel__fmt_parse(const char *fmt, polytel__fmt_sig_t *sig);
/* Format fmt with captured args (as laid out in an event). Returns length written (< cap). */
size_t polytel__fmt_render(char *out, size_t cap, const char *fmt, const uint8_t *args, size_t args_len);

/* --------------------------------------------------------------- blocks */

#define POLYTEL__BLOCK_SIZE ((size_t)64 * 1024)

typedef struct polytel__block_s {
  struct polytel__block_s *next; /* the thread's next block (valid once sealed); free-list link */
  _Atomic uint32_t committed;    /* bytes of data published by the writer */
  _Atomic uint32_t sealed;       /* writer moved to `next` */
  uint32_t consumed;             /* consumer cursor (written once per pass: this line is the writer's) */
  uint32_t cap;                  /* usable data bytes */
  uint64_t data[];               /* events, 8-aligned */
} polytel__block_t;

#define POLYTEL__BLOCK_DATA_CAP ((uint32_t)(POLYTEL__BLOCK_SIZE - sizeof(polytel__block_t)))
/* A single event never exceeds this; longer strings are truncated (and counted). */
#define POLYTEL__MAX_EVENT (POLYTEL__BLOCK_DATA_CAP / 2)

#define POLYTEL__MAX_DEPTH 64
#define POLYTEL__MAX_STATIC_METRICS 256
#define POLYTEL__FMT_CACHE 64
#define POLYTEL__END_RESERVE 16 /* bytes one EV_SPAN_END needs */

struct polytel__cons_span_s;  /* consumer's replay stack entry (consumer.c) */
struct polytel__cons_frame_s; /* consumer's copy of an attached remote context (consumer.c) */

/* Attached remote contexts a thread may nest (polytel_context_attach); deeper attaches are counted levels. */
#define POLYTEL__MAX_ATTACH 8
/* The tracestate a frame keeps: what polytel propagates (propagation.h's POLYTEL__TRACESTATE_MAX_LEN). */
#define POLYTEL__FRAME_TS_CAP 513

/* An attached remote context, on the calling thread (context.c). */
typedef struct polytel__frame_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t flags;      /* the remote's trace flags */
  uint8_t has_remote; /* 0: attached "no span" (a failed extract): spans begun at its base start traces */
  uint8_t unsampled;  /* the sampler's decision for spans begun at its base (has_remote only) */
  uint8_t emitted;    /* its attach event is in a block: the consumer will know it (and room for its detach
                         event is kept below lim) */
  uint32_t base;      /* t->depth at attach; lowered when spans begun before it end first */
  uint16_t ts_len;
  char tracestate[POLYTEL__FRAME_TS_CAP];
} polytel__frame_t;

/*
 * The calling thread's state. The first cache line is all the span and log fast paths read or write.
 *
 * Thread-span ids are never stored: span_id = f(key, seq) and a root's trace_id = g(key, seq), where seq
 * numbers the thread's recorded begins (polytel__tspan_ids). The consumer counts begins in the same order,
 * so both sides derive the same ids, and polytel_span_ctx_current() computes them only when asked.
 */
typedef struct polytel__thread_s {
  /* --- writer (owning thread), hot --- */
  uint8_t *pos; /* next free byte in cur->data */
  uint8_t *lim; /* end of cur->data minus the reserve for open spans' ends (and emitted frames' detaches) */
  polytel__block_t *cur;
  uint32_t depth;      /* open thread spans */
  uint32_t fast_depth; /* begins below this depth may take the fast path: 64, or 0 (every begin is slow) */
  uint64_t slow_mask;  /* bit d: the end of the span at depth d takes the slow path (see context.c) */
  uint64_t seq;        /* recorded thread-span begins so far: the last one's id number */
  uint64_t begin_word; /* the fast begin's first word but its name, in the current sampling region: the
                          packed type and flags (record.h), or begin_hdr where the pair is not packed */
  _Atomic uint64_t *span_ctr; /* where an end in the current region counts: &n_spans or &n_sampled_out */
  /* --- writer, cold (slow paths, context.c) --- */
  uint64_t begin_hdr;        /* first word of an EV_SPAN_BEGIN in the current sampling region (its flags) */
  uint64_t drop_mask;        /* bit d: span at depth d was not recorded at begin (pool full) */
  uint64_t drop_inv_mask;    /* bit d: ... because the call was invalid (NULL name, too deep) */
  uint64_t frozen_mask;      /* bit d: the span at depth d keeps the decision in frozen_unsampled */
  uint64_t frozen_unsampled; /* ... bit set: it was begun unsampled */
  uint64_t guard_mask;       /* ends that must re-decide: a traceidratio root, the slot below a frame */
  uint64_t key[2];           /* per-thread random key of the thread-span ids (reseeded in a fork child) */
  uint64_t rng[2];           /* xorshift128+ for async span ids */
  uint8_t region_unsampled;  /* the decision new begins take at the current depth */
  uint8_t samp_kind;         /* the sampler the region was decided with (a change is picked up) */
  uint8_t n_frames;          /* attached remote contexts (frames[0..n_frames)) */
  uint8_t n_emitted;         /* frames[0..n_emitted) have their attach event written (always a prefix) */
  uint32_t frames_over;      /* attaches past POLYTEL__MAX_ATTACH: levels that change nothing */
  uint64_t samp_bound;
  polytel__frame_t *frames;      /* POLYTEL__MAX_ATTACH, allocated by the first attach */
  polytel__fmt_sig_t *fmt_cache; /* POLYTEL__FMT_CACHE entries */
  /* --- counters: written by the owner (relaxed), read by stats/consumer --- */
  _Atomic uint64_t n_logs;
  _Atomic uint64_t n_spans;
  _Atomic uint64_t n_drop_full;
  _Atomic uint64_t n_drop_invalid;
  _Atomic uint64_t n_drop_depth; /* thread spans past POLYTEL__MAX_DEPTH */
  _Atomic uint64_t n_truncated;
  _Atomic uint64_t n_sampled_out;        /* spans the sampler left out, ended: not records */
  _Atomic int64_t *counters;             /* POLYTEL__MAX_STATIC_METRICS static counter slots */
  uint64_t open_seq[POLYTEL__MAX_DEPTH]; /* writer: the seq of the span begun at each depth */
  /* --- consumer --- */
  polytel__block_t *head;             /* oldest block not fully consumed */
  struct polytel__cons_span_s *stack; /* replay of open thread spans */
  uint32_t stack_depth;
  uint32_t stack_cap;
  uint64_t cons_seq;                      /* begins replayed: the consumer's side of seq */
  struct polytel__cons_frame_s **cframes; /* replay of attached contexts (POLYTEL__MAX_ATTACH) */
  uint32_t n_cframes;
  uint32_t id;                    /* 1-based registration order */
  _Atomic int dead;               /* the thread exited: no more writes */
  struct polytel__thread_s *next; /* registry */
  /* thread.name: set at registration, then written and read only under polytel__consume_mu */
  char name[POLYTEL__THREAD_NAME_CAP];
} polytel__thread_t;

/* Global buffer state (buffers.c). */
void polytel__buffers_init(uint64_t max_bytes);
void polytel__buffers_set_cap(uint64_t max_bytes);
/* First event of a thread (on_exit: what ends its open spans at thread exit, events.c's). */
polytel__thread_t *polytel__thread_register(void (*on_exit)(polytel__thread_t *t));
/* polytel_span_start with its start time given (0: read the clock): the wasm binding's deferred start. */
int polytel__span_start_at(const polytel_span_ctx_t *parent, polytel_span_ctx_t *out, uint64_t start_ns);
#ifdef __EMSCRIPTEN__
/* The wasm binding's plain span started and finished in one call (events.c); end_ns 0: now. */
int polytel__span_plain(const polytel_span_ctx_t *parent, polytel_span_ctx_t *span, uint64_t start_ns,
                        const char *name, polytel_status_t status, const char *status_msg, int kind,
                        const char *scope, const char *scope_version, uint64_t end_ns);
#endif
/* End a thread's open spans (thread exit: they must not come out unpaired). */
void polytel__close_open_spans(polytel__thread_t *t);
/* Seal the current block and move to a fresh one; 0 if the pool is exhausted. */
int polytel__handoff(polytel__thread_t *t);
polytel__block_t *polytel__pool_get(void);
void polytel__pool_put(polytel__block_t *b);
void polytel__pool_refill(void);      /* exporter side: keeps free blocks ready ahead of demand */
uint32_t polytel__wake_every(void);   /* hand-offs per exporter wake-up (1..16, from the pool's cap) */
void polytel__handoffs_drained(void); /* the consumer is draining: the hand-off count starts again */
uint64_t polytel__pool_bytes(void);
uint64_t polytel__pool_cap(void);

extern __thread polytel__thread_t *polytel__tls __attribute__((tls_model("initial-exec")));
extern pthread_mutex_t polytel__registry_mu;
extern polytel__thread_t *polytel__registry; /* list head, guarded by registry_mu */

static inline polytel__thread_t *polytel__thread(void) {
  polytel__thread_t *t = polytel__tls;
  if (POLYTEL__UNLIKELY(t == NULL)) t = polytel__thread_register(polytel__close_open_spans);
  return t;
}

/* Reserve n bytes (n multiple of 8) for an event; NULL = pool exhausted (caller counts the drop). */
/* Pointer comparison, never a size_t difference: lim may sit below pos after a dropped begin. */
static inline uint8_t *polytel__reserve(polytel__thread_t *t, size_t n) {
  if (POLYTEL__UNLIKELY(t->pos + n > t->lim)) {
    if (!polytel__handoff(t) || t->pos + n > t->lim) return NULL;
  }
  return t->pos;
}

/*
 * lim keeps room for the end of every open span (up to the depth limit; deeper
 * spans are never recorded) and the detach of every emitted frame: they always fit in the current block.
 */
static inline void polytel__adjust_reserve(polytel__thread_t *t) {
  uint32_t d = (t->depth < 64 ? t->depth : 64) + t->n_emitted;
  t->lim = (uint8_t *)t->cur->data + t->cur->cap - (size_t)(d + 1) * 16;
}
/* Publish the event written at t->pos (n bytes). */
static inline void polytel__commit(polytel__thread_t *t, size_t n) {
  t->pos += n;
  atomic_store_explicit(&t->cur->committed, (uint32_t)(t->pos - (uint8_t *)t->cur->data),
                        memory_order_release);
}

/* Pointers live in 8-byte event slots whatever their size (4 bytes on wasm32). */
static inline void polytel__put_ptr(uint8_t *p, const void *ptr) {
  uint64_t v = (uint64_t)(uintptr_t)ptr;
  memcpy(p, &v, 8);
}
static inline const void *polytel__get_ptr(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return (const void *)(uintptr_t)v;
}

/* Relaxed single-writer increment: a plain add on x86, clean under TSan. */
static inline void polytel__inc(_Atomic uint64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, POLYTEL__RELAXED) + n, POLYTEL__RELAXED);
}

/* ------------------------------------------------------------- recording */

/* Lowest level that is recorded for export (POLYTEL_LEVEL_OFF when not recording). */
extern _Atomic int polytel__g_record_level;
/* Lowest level that goes anywhere (record or console); 0 before the first init. */
extern _Atomic int polytel__g_min_level;
/* Spans/metrics recorded at all. */
extern _Atomic int polytel__g_recording;
/* Console threshold (POLYTEL_LEVEL_OFF when the console is off). */
extern _Atomic int polytel__g_console_level;
/*
 * What the runtime decided: whether records are kept for export (phases deferred and full), and the console's
 * threshold (POLYTEL_LEVEL_OFF when the console is off). The levels above follow, with the memory sink.
 */
void polytel__levels_set(int exporting, int console_threshold);
/* Recompute them (the memory sink came or went). */
void polytel__levels_update(void);
/* The first record before any init: the runtime's phase 1 (polytel__hooks), so nothing is lost. */
static inline void polytel__first_use(void) {
  if (polytel__hooks.first_use) polytel__hooks.first_use();
}

/*
 * The span model's limits (OTEL_*_LIMIT), in the order of polytel__cfg_t.limits. Counts are applied where
 * that saves the calling thread work (events and links, at finish), attribute counts and lengths by the
 * consumer. Indexes and defaults: config.h.
 */
typedef struct polytel__limits_s {
  _Atomic uint32_t span_attrs, span_attr_len, events, links, event_attrs, link_attrs, log_attrs, log_attr_len;
} polytel__limits_t;
extern polytel__limits_t polytel__limits;
/* The sampler in force (polytel__trace_settings_apply): a polytel__sampler_kind_t and its traceidratio bound.
 */
extern _Atomic int polytel__g_sampler_kind;
extern _Atomic uint64_t polytel__g_sampler_bound;
/* OTEL_TRACES_SAMPLER(_ARG), OTEL_PROPAGATORS and the limits in force from now on (phase 1 and 2). */
struct polytel__sampler_s;
void polytel__trace_settings_apply(const struct polytel__sampler_s *s, unsigned propagators,
                                   const uint32_t limits[POLYTEL__N_LIMITS]);

/* ------------------------------------------------------- thread context */

/* context.c: the calling thread's thread-span ids, sampling region and attached contexts. */
void polytel__ctx_thread_init(polytel__thread_t *t);   /* registration, and the forking thread in a child */
void polytel__ctx_refresh(polytel__thread_t *t);       /* the fast paths' fields from the slow state */
void polytel__ctx_region_update(polytel__thread_t *t); /* after a slow begin/end, attach, detach */
void polytel__ctx_lower_frames(polytel__thread_t *t);  /* after an end: frame bases follow the depth down */
int polytel__ctx_emit_frames(polytel__thread_t *t);    /* write pending attach events; 0: no room */

/* ------------------------------------------------------------- consumer */

typedef struct polytel__sink_s {
  void (*log)(void *ctx, const polytel__log_rec_t *rec);
  void (*span)(void *ctx, const polytel__span_rec_t *rec);
  void (*metric_event)(void *ctx, int kind, const char *name, const char *unit, double value, int64_t ivalue,
                       const polytel__kv_t *attrs, uint32_t n_attrs);
  void *ctx;
} polytel__sink_t;

extern pthread_mutex_t polytel__consume_mu;
/*
 * Drain up to max_items logs+spans from every thread into sink (metric
 * events do not count). Caller holds polytel__consume_mu. Returns items.
 * A sink with neither log nor span callback only counts (no rendering).
 */
uint64_t polytel__consume(const polytel__sink_t *sink, uint64_t max_items);
/* Reset consumer-side state of every thread (fork child, shutdown discard). */
void polytel__consume_reset_thread(polytel__thread_t *t);

/* ------------------------------------------------------------- metrics */

/* a + b, saturating at INT64_MAX / INT64_MIN (never signed overflow). Returns 1 when it saturated. */
static inline int polytel__sat_add(int64_t a, int64_t b, int64_t *out) {
  if (POLYTEL__LIKELY(!__builtin_add_overflow(a, b, out))) return 0;
  *out = b > 0 ? INT64_MAX : INT64_MIN;
  return 1;
}

#define POLYTEL__DEFAULT_MAX_SERIES 2000u /* the OpenTelemetry default cardinality limit */
/* POLYTEL_MAX_METRIC_SERIES: user series across all instruments (0 = the default). */
void polytel__metrics_set_max_series(uint32_t n);
/* A counter could not take `lost` increments (INT64_MAX): counted as metric_saturated, warned once. */
void polytel__counter_saturated(const char *name, size_t name_len, uint64_t lost);
/* A counter's total passed INT64_MAX only as a sum of parts no single call lost: one, the first time. */
void polytel__counter_total_saturated(const char *name, size_t name_len);
/* A NaN or infinite gauge/histogram value was refused: warned once per instrument. */
void polytel__metric_nonfinite(int kind, const char *name, size_t name_len, double value);

/* Static metric slot registration (metrics.c); 0 = could not register. */
uint32_t polytel__metric_register(polytel_metric_t *m);
extern polytel_metric_t *polytel__static_metrics[POLYTEL__MAX_STATIC_METRICS];
extern _Atomic uint32_t polytel__n_static_metrics;
extern _Atomic int64_t polytel__retired_counters[POLYTEL__MAX_STATIC_METRICS];

/* Consumer-side aggregation (metrics.c), under polytel__consume_mu. */
void polytel__metrics_event(int kind, const char *name, uint32_t name_len, const char *unit,
                            uint32_t unit_len, double value, int64_t ivalue, const polytel__kv_t *attrs,
                            uint32_t n_attrs);
void polytel__metrics_hist_static(polytel_metric_t *m, double value);
typedef struct polytel__metrics_snap_s {
  polytel__metric_rec_t *recs;
  size_t n;
  void *mem;            /* owns points, attrs, buckets */
  polytel_stats_t self; /* the stats the self-metrics of this snapshot were taken from */
} polytel__metrics_snap_t;
/* Every series, cumulative since its start, at now_ns; self-metrics included. */
int polytel__metrics_snapshot(polytel__metrics_snap_t *out, uint64_t now_ns);
void polytel__metrics_snap_free(polytel__metrics_snap_t *s);
void polytel__metrics_reset(void);

/* ------------------------------------------------------------- misc */

/* A bijection of 64-bit words (the splitmix64 / murmur3 finalizer). */
static inline uint64_t polytel__fmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline void polytel__put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
/*
 * Thread-span ids from the thread's key and a begin's number: for a fixed key each function is a bijection
 * of seq (an odd multiple, a keyed finalizer twice), so ids never repeat within a thread. Both the calling
 * thread (polytel_span_ctx_current) and the consumer use these. Big-endian bytes, so the trace id's low 8
 * bytes (what traceidratio reads) are the word `lo`. An all-zero id (one seq in 2^64) is replaced by a
 * fixed nonzero one, deterministically.
 */
#define POLYTEL__ID_MUL 0x9e3779b97f4a7c15ull
static inline void polytel__tspan_span_id(const uint64_t k[2], uint64_t seq, uint8_t out[8]) {
  uint64_t v = polytel__fmix64(polytel__fmix64(k[0] + seq * POLYTEL__ID_MUL) ^ k[1]);
  polytel__put_be64(out, v ? v : 0x5bd1e9955bd1e995ull);
}
static inline void polytel__tspan_trace_id(const uint64_t k[2], uint64_t seq, uint8_t out[16]) {
  uint64_t hi = polytel__fmix64(polytel__fmix64(k[1] + seq * POLYTEL__ID_MUL) ^ k[0]);
  uint64_t lo = polytel__fmix64(polytel__fmix64(k[0] - seq * POLYTEL__ID_MUL) + k[1]);
  polytel__put_be64(out, hi);
  polytel__put_be64(out + 8, (hi | lo) ? lo : 1);
}

/* memsink.c */
int polytel__memsink_active(void);
extern const polytel__sink_t polytel__memsink_sink;
extern pthread_mutex_t polytel__memsink_mu;

/* ------------------------------------------------------------- the runtime's hand on this layer */

/*
 * Wake the exporter after a handoff or a thread's exit: the runtime sets its transport's wake (NULL: none,
 * the host polls). Any thread; the function stays callable after its transport stopped.
 */
void polytel__buffers_set_wake(void (*wake)(void));
void polytel__wake(void);

/* pthread_atfork, in this order in the child: consumer state, then the blocks and threads it was about. */
void polytel__buffers_lock(void);
void polytel__buffers_unlock(void);
void polytel__buffers_fork_child(void);
void polytel__consume_fork_child(void);
void polytel__metrics_lock(void);
void polytel__metrics_unlock(void);

#endif
