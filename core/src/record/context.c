/* context.c — thread-span context on the calling thread: ids from a per-thread key, sampling regions,
 * attached remote contexts (polytel_context_attach/detach), polytel_span_ctx_current. */
#include <stdlib.h>
#include <string.h>

#include "record/record.h"
#include "common/common.h"

/*
 * How the calling thread knows a thread span's ids and sampling decision without doing anything for them on
 * the fast path:
 *
 * - Ids. A begin that is recorded takes the next number of the thread's `seq` and stores it at its depth
 *   (open_seq). Its span id is polytel__tspan_span_id(key, seq), a root's trace id
 *   polytel__tspan_trace_id(key, seq); a child has its parent's trace id. The consumer numbers the begins it
 *   replays the same way, so it derives the same ids; a begin that is not recorded (pool full, too deep, no
 *   name) takes no number on either side.
 *
 * - Sampling. Every span of a trace on this thread shares its root's decision (parentbased_* follow the
 *   parent; traceidratio decides on the trace id, which children share; always_* are constant), so the
 *   decision changes only where a trace starts: at an attached remote context (decided once, at attach) or
 *   at a local root. The thread keeps the decision new begins take (`region_unsampled`, spelled into
 *   begin_hdr and span_ctr), so a sampled and an unsampled begin run the same instructions; the consumer
 *   reads the decision from the begin's header and never re-decides. Under traceidratio a local root's
 *   decision depends on its trace id: the next root's number is seq + 1, so it is decided ahead, when the
 *   previous root ends (that end takes the slow path: guard_mask).
 *
 * - When the region's decision changes while spans are open (an attach, a detach, a new sampler), the open
 *   spans keep theirs: they are "frozen" (frozen_mask), which sends their ends through the slow path. Every
 *   open recorded span that is not frozen has the region's decision.
 *
 * - Attached contexts nest (POLYTEL__MAX_ATTACH frames). A frame's base is the depth at attach: spans begun
 *   at the base are children of the remote span; if spans begun before the attach end first, the base
 *   follows the depth down (the consumer applies the same rule), which the end of the span just below the
 *   base notices (guard_mask). An attach writes an event so the consumer knows the remote parent; when it
 *   cannot (pool full, not recording yet) the frame is pending and the next begin writes it first.
 */

static _Atomic int g_warned_attach_cap, g_warned_detach;

static uint64_t hdr_word(uint8_t type, uint16_t flags, uint32_t size) {
  polytel__ev_t h = {type, 0, flags, size, 0};
  uint64_t w;
  memcpy(&w, &h, 8);
  return w;
}

/* Open spans whose begin was recorded (depths below 64 whose begin was neither dropped nor refused). */
static uint64_t open_recorded(const polytel__thread_t *t) {
  uint64_t open = t->depth >= 64 ? ~0ull : ((1ull << t->depth) - 1);
  return open & ~(t->drop_mask | t->drop_inv_mask);
}

static uint64_t at_or_above(uint32_t lo) {
  return lo >= 64 ? 0 : ~0ull << lo;
}

static polytel__frame_t *top_frame(const polytel__thread_t *t) {
  return t->n_frames ? &t->frames[t->n_frames - 1] : NULL;
}

static int slot_unsampled(const polytel__thread_t *t, uint32_t d) {
  uint64_t bit = 1ull << d;
  return (t->frozen_mask & bit) ? (t->frozen_unsampled & bit) != 0 : t->region_unsampled;
}

static int sampler_is_ratio(int kind) {
  return kind == POLYTEL__SAMPLER_TRACEIDRATIO || kind == POLYTEL__SAMPLER_PARENTBASED_TRACEIDRATIO;
}

static polytel__sampler_t sampler_of(const polytel__thread_t *t) {
  polytel__sampler_t s = {(polytel__sampler_kind_t)t->samp_kind, 1.0, t->samp_bound};
  return s;
}

static int frame_decide(const polytel__thread_t *t, const polytel__frame_t *f) {
  polytel__sampler_t s = sampler_of(t);
  return !polytel__sampler_should_sample(&s, f->trace_id, (f->flags & POLYTEL_TRACE_FLAG_SAMPLED) != 0);
}

/* The fast paths' view of the slow state. */
void polytel__ctx_refresh(polytel__thread_t *t) {
  unsigned flags = t->region_unsampled ? POLYTEL__BEGIN_UNSAMPLED : 0;
  t->begin_hdr = hdr_word(POLYTEL__EV_SPAN_BEGIN, flags, 24);
#if POLYTEL__PACKED_SPANS
  t->begin_word = POLYTEL__EV_SPAN_BEGIN_PACKED | (uint64_t)flags << 8;
#else
  t->begin_word = t->begin_hdr;
#endif
  t->span_ctr = t->region_unsampled ? &t->n_sampled_out : &t->n_spans;
  t->slow_mask = t->drop_mask | t->drop_inv_mask | t->frozen_mask | t->guard_mask;
  /* A pending frame is written by the next begin, which must take the slow path. */
  t->fast_depth = t->n_emitted < t->n_frames ? 0 : POLYTEL__MAX_DEPTH;
#ifdef POLYTEL__HAVE_TSC
  if (!polytel__g_use_tsc) { /* the fast paths read the TSC: without it every begin and end is slow */
    t->slow_mask = ~0ull;
    t->fast_depth = 0;
  }
#endif
}

typedef struct {
  uint8_t unsampled;
  uint64_t guard;
} region_t;

static region_t region_compute(const polytel__thread_t *t) {
  region_t r = {t->region_unsampled, 0};
  const polytel__frame_t *f = top_frame(t);
  uint32_t lo = f ? f->base : 0;
  if (f && lo >= 1 && lo <= 64) r.guard |= 1ull << (lo - 1); /* an end below the base lowers it */
  if (f && f->has_remote) {
    r.unsampled = f->unsampled;
    return r;
  }
  int ratio = sampler_is_ratio(t->samp_kind);
  uint64_t rec = open_recorded(t) & at_or_above(lo);
  if (rec) { /* a trace is open here: new begins are its children */
    uint32_t root = (uint32_t)__builtin_ctzll(rec);
    r.unsampled = (uint8_t)slot_unsampled(t, root);
    if (ratio) r.guard |= 1ull << root;
    return r;
  }
  /* The next recorded begin is a root, number seq + 1. */
  polytel__sampler_t s = sampler_of(t);
  uint8_t tid[16] = {0};
  if (ratio) {
    polytel__tspan_trace_id(t->key, t->seq + 1, tid);
    if (t->depth < 64) r.guard |= 1ull << t->depth;
  }
  r.unsampled = !polytel__sampler_should_sample(&s, tid, -1);
  return r;
}

/* Open spans keep the decision they were begun with. */
static void freeze_open(polytel__thread_t *t) {
  uint64_t m = open_recorded(t) & ~t->frozen_mask;
  t->frozen_mask |= m;
  if (t->region_unsampled)
    t->frozen_unsampled |= m;
  else
    t->frozen_unsampled &= ~m;
}

/* Picks up a new sampler: it decides what starts from now on; what is open keeps its decision. */
static void sampler_sync(polytel__thread_t *t) {
  int kind = atomic_load_explicit(&polytel__g_sampler_kind, POLYTEL__RELAXED);
  uint64_t bound = atomic_load_explicit(&polytel__g_sampler_bound, POLYTEL__RELAXED);
  if (POLYTEL__LIKELY(kind == t->samp_kind && bound == t->samp_bound)) return;
  freeze_open(t);
  t->samp_kind = (uint8_t)kind;
  t->samp_bound = bound;
  for (uint32_t i = 0; i < t->n_frames; i++)
    if (t->frames[i].has_remote) t->frames[i].unsampled = (uint8_t)frame_decide(t, &t->frames[i]);
}

/* After anything that may move the region (slow begins and ends, attach, detach): decide it again. */
void polytel__ctx_region_update(polytel__thread_t *t) {
  sampler_sync(t);
  region_t r = region_compute(t);
  if (r.unsampled != t->region_unsampled) freeze_open(t);
  t->region_unsampled = r.unsampled;
  t->guard_mask = r.guard;
  polytel__ctx_refresh(t);
}

/* A thread's first event, or the forking thread in the child: a new key, numbering from 1. */
void polytel__ctx_thread_init(polytel__thread_t *t) {
  polytel__rng_seed(t->key);
  t->seq = 0;
  t->samp_kind = (uint8_t)atomic_load_explicit(&polytel__g_sampler_kind, POLYTEL__RELAXED);
  t->samp_bound = atomic_load_explicit(&polytel__g_sampler_bound, POLYTEL__RELAXED);
  for (uint32_t i = 0; i < t->n_frames; i++)
    if (t->frames[i].has_remote) t->frames[i].unsampled = (uint8_t)frame_decide(t, &t->frames[i]);
  region_t r = region_compute(t);
  t->region_unsampled = r.unsampled;
  t->guard_mask = r.guard;
  polytel__ctx_refresh(t);
}

/* Bases follow the depth down when spans begun before an attach end inside it (the consumer does the same).
 */
void polytel__ctx_lower_frames(polytel__thread_t *t) {
  for (uint32_t i = 0; i < t->n_frames; i++)
    if (t->frames[i].base > t->depth) t->frames[i].base = t->depth;
}

/*
 * EV_CTX_ATTACH: hdr | trace_id[16] span_id[8] | u8 has_remote, u8 flags, u16 pad, u32 ts_len | tracestate
 * (padded). Written with room for its detach kept below lim. Returns 0 when the pool had no room.
 */
int polytel__ctx_emit_frames(polytel__thread_t *t) {
  while (t->n_emitted < t->n_frames) {
    polytel__frame_t *f = &t->frames[t->n_emitted];
    size_t size = 16 + 24 + 8 + POLYTEL__ALIGN8((size_t)f->ts_len);
    uint8_t *p = polytel__reserve(t, size + POLYTEL__END_RESERVE);
    if (!p) return 0;
    *(polytel__ev_t *)p = (polytel__ev_t){POLYTEL__EV_CTX_ATTACH, 0, 0, (uint32_t)size, 0};
    memcpy(p + 16, f->trace_id, 16);
    memcpy(p + 32, f->span_id, 8);
    uint8_t h[4] = {f->has_remote, f->flags, f->unsampled, 0};
    uint32_t tl = f->ts_len;
    memcpy(p + 40, h, 4);
    memcpy(p + 44, &tl, 4);
    memset(p + 48, 0, size - 48);
    memcpy(p + 48, f->tracestate, tl);
    t->n_emitted++;
    polytel__adjust_reserve(t);
    polytel__commit(t, size);
  }
  polytel__ctx_refresh(t);
  return 1;
}

static int recording_now(void) {
  return atomic_load_explicit(&polytel__g_recording, POLYTEL__RELAXED) != 0;
}

int polytel_context_attach_ex(const polytel_span_ctx_t *remote, const char *tracestate) {
  if (POLYTEL__UNLIKELY(atomic_load_explicit(&polytel__g_min_level, POLYTEL__RELAXED) == 0))
    polytel__first_use(); /* the sampler comes from the configuration */
  polytel__thread_t *t = polytel__thread();
  if (!t) return POLYTEL_ENOMEM;
  if (t->n_frames == POLYTEL__MAX_ATTACH ||
      (!t->frames && !(t->frames = malloc(POLYTEL__MAX_ATTACH * sizeof *t->frames)))) {
    /* A level that changes nothing, so the detach that matches it still balances. */
    t->frames_over++;
    if (!atomic_exchange(&g_warned_attach_cap, 1))
      polytel__diag(
          POLYTEL_LEVEL_WARN,
          "polytel_context_attach(): more than %d contexts attached on one thread (is a "
          "polytel_context_detach() missing?); the extra ones are ignored until detached (warned once)",
          POLYTEL__MAX_ATTACH);
    return POLYTEL_ENOMEM;
  }
  polytel__frame_t *f = &t->frames[t->n_frames];
  memset(f, 0, offsetof(polytel__frame_t, tracestate) + 1);
  static const uint8_t zero[16];
  if (remote && memcmp(remote->trace_id, zero, 16) != 0 && memcmp(remote->span_id, zero, 8) != 0) {
    memcpy(f->trace_id, remote->trace_id, 16);
    memcpy(f->span_id, remote->span_id, 8);
    f->flags = remote->trace_flags;
    f->has_remote = 1;
    if (tracestate) {
      int n = polytel__tracestate_normalize(tracestate, f->tracestate, sizeof f->tracestate);
      f->ts_len = (uint16_t)(n > 0 ? n : 0);
    }
  }
  f->base = t->depth;
  sampler_sync(t);
  if (f->has_remote) f->unsampled = (uint8_t)frame_decide(t, f);
  t->n_frames++;
  if (recording_now()) polytel__ctx_emit_frames(t); /* else (or no room) the next begin writes it */
  polytel__ctx_region_update(t);
  polytel__adjust_reserve(t);
  return remote ? 0 : POLYTEL_EINVAL;
}

int polytel_context_attach(const polytel_span_ctx_t *remote) {
  return polytel_context_attach_ex(remote, NULL);
}

void polytel_context_detach(void) {
  polytel__thread_t *t = polytel__tls;
  if (!t) return;
  if (t->frames_over) {
    t->frames_over--;
    return;
  }
  if (!t->n_frames) {
    if (!atomic_exchange(&g_warned_detach, 1))
      polytel__diag(
          POLYTEL_LEVEL_WARN,
          "polytel_context_detach() without a matching polytel_context_attach(); ignored (warned once)");
    return;
  }
  if (t->n_emitted == t->n_frames) {
    /* Its 16 bytes were kept below lim when the attach was written: never fails, never hands off. */
    *(polytel__ev_t *)t->pos = (polytel__ev_t){POLYTEL__EV_CTX_DETACH, 0, 0, 16, 0};
    t->n_emitted--;
    t->n_frames--;
    polytel__adjust_reserve(t);
    polytel__commit(t, 16);
  } else {
    t->n_frames--;
  }
  polytel__ctx_region_update(t);
  polytel__adjust_reserve(t);
}

int polytel_span_ctx_current(polytel_span_ctx_t *out) {
  if (!out) return POLYTEL_EINVAL;
  memset(out, 0, sizeof *out);
  polytel__thread_t *t = polytel__tls;
  if (!t) return POLYTEL_ENOCTX;
  const polytel__frame_t *f = top_frame(t);
  uint64_t rec = open_recorded(t) & at_or_above(f ? f->base : 0);
  if (!rec) {
    if (!f || !f->has_remote) return POLYTEL_ENOCTX;
    memcpy(out->trace_id, f->trace_id, 16);
    memcpy(out->span_id, f->span_id, 8);
    out->trace_flags =
        (uint8_t)((f->flags & ~POLYTEL_TRACE_FLAG_SAMPLED) | (f->unsampled ? 0 : POLYTEL_TRACE_FLAG_SAMPLED));
    out->is_remote = 1; /* the attached remote span itself */
    return 0;
  }
  uint32_t d = 63u - (uint32_t)__builtin_clzll(rec);
  uint32_t root = (uint32_t)__builtin_ctzll(rec);
  polytel__tspan_span_id(t->key, t->open_seq[d], out->span_id);
  uint64_t below = rec & ((1ull << d) - 1);
  uint8_t flags = 0;
  if (f && f->has_remote) {
    memcpy(out->trace_id, f->trace_id, 16);
    flags = f->flags & ~POLYTEL_TRACE_FLAG_SAMPLED;
    if (!below) memcpy(out->parent_id, f->span_id, 8);
  } else {
    polytel__tspan_trace_id(t->key, t->open_seq[root], out->trace_id);
  }
  if (below)
    polytel__tspan_span_id(t->key, t->open_seq[63u - (uint32_t)__builtin_clzll(below)], out->parent_id);
  out->trace_flags = (uint8_t)(flags | (slot_unsampled(t, d) ? 0 : POLYTEL_TRACE_FLAG_SAMPLED));
  return 0;
}
