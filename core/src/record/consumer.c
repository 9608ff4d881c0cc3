/* consumer.c — drain every thread's block chain in order: replay spans and attached contexts, render logs,
 * apply the span model's limits, feed a sink. */
#include <stdlib.h>
#include <string.h>

#include "record/record.h"

pthread_mutex_t polytel__consume_mu = PTHREAD_MUTEX_INITIALIZER;

/* A remote context attached on a thread (EV_CTX_ATTACH), shared by the spans of its trace. */
typedef struct polytel__cons_frame_s {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t flags;      /* the remote's trace flags */
  uint8_t has_remote; /* 0: "no context" attached: spans begun at its base are roots */
  uint8_t unsampled;  /* the calling thread's decision for its children (for logs directly inside it) */
  uint32_t base;      /* stack depth at attach; follows the depth down (as on the calling thread) */
  uint32_t refs;      /* the frame stack's, and one per span of its trace still open */
  uint32_t ts_len;
  char ts[]; /* tracestate, NUL-terminated */
} cons_frame_t;

enum { PARENT_NONE = 0, PARENT_LOCAL = 1, PARENT_REMOTE = 2 };

/*
 * Consumer-owned copy of an open thread span (its begin's block may be recycled before its end). Ids are
 * derived from seq when first needed (context.c explains the numbering): a drain that only counts never
 * computes them.
 */
typedef struct polytel__cons_span_s {
  uint64_t seq;
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];
  uint8_t ids;         /* span_id, trace_id and parent_id are derived */
  uint8_t parent;      /* PARENT_*: the entry below, or the frame's remote span (ids copied at begin) */
  uint8_t unsampled;   /* the calling thread's sampling decision, from the begin's header */
  uint8_t kind;        /* polytel_span_kind_t; 0 = internal */
  cons_frame_t *frame; /* the remote context whose trace this is (a reference), or NULL */
  uint64_t start_ticks;
  const char *name;
  uint32_t name_len;
  polytel__kv_t *attrs;
  uint32_t n_attrs;
  uint32_t dropped_attrs; /* left out by the begin on the calling thread */
  void *owned;            /* name + attrs copy for dynamic begins */
} cons_span_t;

static char *g_scratch;     /* rendered log bodies */
static polytel__kv_t *g_kv; /* decoded attributes */
static uint32_t g_kv_cap;
static polytel__event_rec_t *g_evs; /* decoded span events */
static uint32_t g_evs_cap;
static polytel__link_rec_t *g_lns; /* decoded span links */
static uint32_t g_lns_cap;
/* Bytes one record's limits rewrote (cut string arrays, normalized tracestates); reset per record. */
static char *g_out;
static size_t g_out_used;

#define SCRATCH_CAP (POLYTEL__BLOCK_SIZE)
/* What one record may need from g_out: never more than the event's own bytes, plus its tracestates. */
#define OUT_CAP (2 * POLYTEL__BLOCK_SIZE)

static void *room(void *arr, uint32_t *cap, uint32_t n, size_t elem) {
  if (n <= *cap) return arr;
  uint32_t c = *cap ? *cap : 64;
  while (c < n) c *= 2;
  void *a = realloc(arr, (size_t)c * elem);
  if (!a) return NULL;
  *cap = c;
  return a;
}

static polytel__kv_t *kv_room(uint32_t n) {
  polytel__kv_t *k = room(g_kv, &g_kv_cap, n, sizeof *k);
  if (k) g_kv = k;
  return k;
}

static const uint8_t *get_str(const uint8_t *p, const char **s, uint32_t *len) {
  memcpy(len, p, 4);
  *s = (const char *)p + 8;
  return p + 8 + POLYTEL__ALIGN8(*len);
}

/* Decode n serialized attributes at p into kv (pointers into the block). */
static const uint8_t *get_attrs(const uint8_t *p, uint32_t n, polytel__kv_t *kv) {
  for (uint32_t i = 0; i < n; i++) {
    polytel__ev_attr_t h;
    memcpy(&h, p, 8);
    kv[i].key = (const char *)p + 8;
    kv[i].key_len = h.key_len;
    kv[i].type = h.type;
    p += 8 + POLYTEL__ALIGN8(h.key_len);
    if (polytel__kv_has_bytes(h.type)) {
      kv[i].v.str.ptr = (const char *)p;
      kv[i].v.str.len = h.val_len;
      p += POLYTEL__ALIGN8(h.val_len);
    } else {
      int64_t v;
      memcpy(&v, p, 8);
      if (h.type == POLYTEL_ATTR_DOUBLE)
        memcpy(&kv[i].v.d, &v, 8);
      else if (h.type == POLYTEL_ATTR_BOOL)
        kv[i].v.b = v != 0;
      else
        kv[i].v.i = v;
      p += 8;
    }
  }
  return p;
}

/* ------------------------------------------------------------------ limits */

/* The byte length of s[0..n)'s first max characters (code points; a stray byte counts as one). */
static uint32_t utf8_cut_chars(const char *s, uint32_t n, uint32_t max) {
  uint32_t chars = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max) return i;
  }
  return n;
}

static int same_key(const polytel__kv_t *a, const polytel__kv_t *b) {
  return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* A string array with every element cut to max characters, in g_out. */
static void cut_string_array(polytel__kv_t *kv, uint32_t max) {
  const char *p = kv->v.str.ptr;
  uint32_t len = kv->v.str.len, off = 0, l;
  int any = 0;
  while (off + 4 <= len) {
    const char *s = polytel__arr_str(p, &off, &l);
    if (utf8_cut_chars(s, l, max) < l) any = 1;
  }
  if (!any || g_out_used + len > OUT_CAP) return;
  char *w = g_out + g_out_used, *w0 = w;
  off = 0;
  while (off + 4 <= len) {
    const char *s = polytel__arr_str(p, &off, &l);
    uint32_t c = utf8_cut_chars(s, l, max);
    memcpy(w, &c, 4);
    memcpy(w + 4, s, c);
    w += 4 + c;
  }
  kv->v.str.ptr = w0;
  kv->v.str.len = (uint32_t)(w - w0);
  g_out_used += kv->v.str.len;
}

/*
 * The attribute rules of the spec, off the calling thread: a repeated key keeps its first place and its last
 * value; past max_count the rest are dropped (counted); strings and the strings of arrays are cut to
 * max_len characters.
 */
static void apply_limits(polytel__kv_t *kv, uint32_t *n, uint32_t max_count, uint32_t max_len,
                         uint32_t *dropped) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < *n; i++) {
    uint32_t j = 0;
    while (j < w && !same_key(&kv[j], &kv[i])) j++;
    kv[j] = kv[i];
    if (j == w) w++;
  }
  if (w > max_count) {
    *dropped += w - max_count;
    w = max_count;
  }
  *n = w;
  if (max_len == POLYTEL__NO_LIMIT) return;
  for (uint32_t i = 0; i < w; i++) {
    if (kv[i].type == POLYTEL_ATTR_STRING)
      kv[i].v.str.len = utf8_cut_chars(kv[i].v.str.ptr, kv[i].v.str.len, max_len);
    else if (kv[i].type == POLYTEL_ATTR_STRING_ARRAY)
      cut_string_array(&kv[i], max_len);
  }
}

#define LIMIT(f) atomic_load_explicit(&polytel__limits.f, POLYTEL__RELAXED)

/* A tracestate as it goes out: normalized (W3C), or nothing when it must be discarded. */
static void tracestate_out(const char *in, uint32_t n, const char **out, uint32_t *out_len) {
  *out = "";
  *out_len = 0;
  /* The normal form is never longer than the input (it only removes). */
  size_t cap = n < POLYTEL__TRACESTATE_MAX_LEN ? (size_t)n + 1 : POLYTEL__TRACESTATE_MAX_LEN + 1;
  if (!n || g_out_used + cap > OUT_CAP) return;
  char *w = g_out + g_out_used;
  int r = polytel__tracestate_normalize_n(in, n, w, cap);
  if (r <= 0) return;
  *out = w;
  *out_len = (uint32_t)r;
  g_out_used += (size_t)r + 1;
}

/* ------------------------------------------------------------ thread spans */

/* Deep copy of a name + attributes into one allocation. */
static void *copy_span_data(const char *name, uint32_t name_len, const polytel__kv_t *kv, uint32_t n,
                            const char **name_out, polytel__kv_t **kv_out) {
  size_t sz = n * sizeof(polytel__kv_t) + name_len + 1;
  for (uint32_t i = 0; i < n; i++)
    sz += kv[i].key_len + 1 + (polytel__kv_has_bytes(kv[i].type) ? kv[i].v.str.len + 1 : 0);
  uint8_t *mem = malloc(sz);
  if (!mem) return NULL;
  polytel__kv_t *out = (polytel__kv_t *)mem;
  char *s = (char *)(mem + n * sizeof(polytel__kv_t));
  memcpy(s, name, name_len);
  s[name_len] = '\0';
  *name_out = s;
  s += name_len + 1;
  for (uint32_t i = 0; i < n; i++) {
    out[i] = kv[i];
    memcpy(s, kv[i].key, kv[i].key_len);
    out[i].key = s;
    s += kv[i].key_len + 1;
    if (polytel__kv_has_bytes(kv[i].type)) {
      memcpy(s, kv[i].v.str.ptr, kv[i].v.str.len);
      out[i].v.str.ptr = s;
      s += kv[i].v.str.len + 1;
    }
  }
  *kv_out = out;
  return mem;
}

static void frame_release(cons_frame_t *f) {
  if (f && --f->refs == 0) free(f);
}

/* A recorded begin: its number, its parent. NULL when the stack could not be allocated (counted at its end).
 */
static inline cons_span_t *push(polytel__thread_t *t, uint16_t flags) {
  uint64_t seq = ++t->cons_seq; /* numbered even if it cannot be kept: the calling thread numbered it */
  /* The calling thread records at most 64 nested spans: one allocation, never grown. */
  if (POLYTEL__UNLIKELY(!t->stack)) {
    t->stack = malloc(POLYTEL__MAX_DEPTH * sizeof *t->stack);
    if (!t->stack) return NULL;
    t->stack_cap = POLYTEL__MAX_DEPTH;
  }
  if (POLYTEL__UNLIKELY(t->stack_depth == t->stack_cap)) return NULL;
  uint32_t i = t->stack_depth++;
  cons_span_t *e = &t->stack[i];
  e->seq = seq;
  e->ids = 0;
  e->unsampled = (flags & POLYTEL__BEGIN_UNSAMPLED) != 0;
  e->kind = (uint8_t)((flags >> POLYTEL__BEGIN_KIND_SHIFT) & 7);
  e->attrs = NULL;
  e->n_attrs = 0;
  e->dropped_attrs = 0;
  e->owned = NULL;
  e->parent = PARENT_NONE;
  e->frame = NULL;
  cons_frame_t *f = t->n_cframes ? t->cframes[t->n_cframes - 1] : NULL;
  if (POLYTEL__UNLIKELY(f && i == f->base)) {
    if (f->has_remote) { /* the first span in an attached context: the remote span's child */
      e->parent = PARENT_REMOTE;
      memcpy(e->trace_id, f->trace_id, 16);
      memcpy(e->parent_id, f->span_id, 8);
      e->frame = f;
      f->refs++;
    }
  } else if (i > 0) {
    e->parent = PARENT_LOCAL;
    e->frame = t->stack[i - 1].frame;
    if (e->frame) e->frame->refs++;
  }
  return e;
}

/* Derive the ids of stack[i] (and of the entries below it they come from). */
static void ensure_ids(polytel__thread_t *t, uint32_t i) {
  uint32_t j = i;
  while (!t->stack[j].ids && t->stack[j].parent == PARENT_LOCAL) j--;
  for (; j <= i; j++) {
    cons_span_t *e = &t->stack[j];
    if (e->ids) continue;
    polytel__tspan_span_id(t->key, e->seq, e->span_id);
    if (e->parent == PARENT_LOCAL) {
      memcpy(e->trace_id, t->stack[j - 1].trace_id, 16);
      memcpy(e->parent_id, t->stack[j - 1].span_id, 8);
    } else if (e->parent == PARENT_NONE) {
      polytel__tspan_trace_id(t->key, e->seq, e->trace_id); /* a root starts a trace */
    }
    e->ids = 1;
  }
}

/* The span on top ends: frame bases follow the depth down, as polytel__ctx_lower_frames does. */
static inline void pop(polytel__thread_t *t) {
  cons_span_t *e = &t->stack[--t->stack_depth];
  if (e->frame) frame_release(e->frame);
  if (e->owned) free(e->owned);
  for (uint32_t i = 0; i < t->n_cframes; i++)
    if (t->cframes[i]->base > t->stack_depth) t->cframes[i]->base = t->stack_depth;
}

void polytel__consume_reset_thread(polytel__thread_t *t) {
  while (t->stack_depth) pop(t);
  while (t->n_cframes) frame_release(t->cframes[--t->n_cframes]);
  t->cons_seq = 0;
}

/* What a log inside the thread's current context carries: its innermost span, or the attached remote. */
static void log_context(polytel__thread_t *t, polytel__log_rec_t *r) {
  cons_frame_t *f = t->n_cframes ? t->cframes[t->n_cframes - 1] : NULL;
  if (t->stack_depth && (!f || t->stack_depth - 1 >= f->base)) {
    ensure_ids(t, t->stack_depth - 1);
    cons_span_t *top = &t->stack[t->stack_depth - 1];
    r->has_span = 1;
    memcpy(r->trace_id, top->trace_id, 16);
    memcpy(r->span_id, top->span_id, 8);
    r->flags = (uint8_t)((top->frame ? top->frame->flags & ~1u : 0u) | (top->unsampled ? 0u : 1u));
  } else if (f && f->has_remote) {
    r->has_span = 1;
    memcpy(r->trace_id, f->trace_id, 16);
    memcpy(r->span_id, f->span_id, 8);
    r->flags = (uint8_t)((f->flags & ~1u) | (f->unsampled ? 0u : 1u));
  }
}

/*
 * Thread-span and context events, in full or (sink without callbacks) only counted. Returns 1 for an item:
 * the end of a span the sampler kept.
 */
static int replay(polytel__thread_t *t, const uint8_t *p, const polytel__sink_t *sink,
                  const polytel__clock_conv_t *cc, int count_only) {
  const polytel__ev_t *ev = (const polytel__ev_t *)p;
  switch (ev->type) {
    case POLYTEL__EV_SPAN_BEGIN_PACKED: { /* replayed as the EV_SPAN_BEGIN it stands for */
      uint64_t w0, c[3];
      memcpy(&w0, p, 8);
      polytel__ev_t h = {POLYTEL__EV_SPAN_BEGIN, 0, p[1], 24, 0};
      memcpy(c, &h, 8);
      memcpy(&c[1], p + 8, 8);
      polytel__put_ptr((uint8_t *)&c[2], (const void *)(uintptr_t)(w0 >> 16));
      return replay(t, (const uint8_t *)c, sink, cc, count_only);
    }
    case POLYTEL__EV_SPAN_END_PACKED: { /* as an EV_SPAN_END, its timestamp's top bits from its begin's */
      uint64_t w;
      memcpy(&w, p, 8);
      uint64_t start = t->stack_depth ? t->stack[t->stack_depth - 1].start_ticks : 0;
      polytel__ev_t h = {POLYTEL__EV_SPAN_END, 0, 0, 16, polytel__packed_end_ts(start, w)};
      return replay(t, (const uint8_t *)&h, sink, cc, count_only);
    }
    case POLYTEL__EV_SPAN_BEGIN: {
      cons_span_t *e = push(t, ev->flags);
      if (!e) return 0;
      e->name = polytel__get_ptr(p + 16);
      e->name_len = count_only ? 0 : (uint32_t)strlen(e->name);
      e->start_ticks = ev->ts;
      return 0;
    }
    case POLYTEL__EV_SPAN_BEGIN_DYN: {
      cons_span_t *e = push(t, ev->flags);
      if (!e) return 0;
      e->start_ticks = ev->ts;
      e->name = "";
      if (count_only) return 0; /* nobody will read its name (a sink enabled before its end sees "") */
      uint32_t h[2];
      memcpy(h, p + 16, 8);
      const char *name;
      uint32_t nl;
      const uint8_t *q = get_str(p + 24, &name, &nl);
      polytel__kv_t *kv = kv_room(h[0]);
      e->dropped_attrs = h[1] + (kv ? 0 : h[0]);
      if (kv) get_attrs(q, h[0], kv);
      e->owned = copy_span_data(name, nl, kv, kv ? h[0] : 0, &e->name, &e->attrs);
      if (e->owned) {
        e->name_len = nl;
        e->n_attrs = kv ? h[0] : 0;
      } else {
        e->name = "(out of memory)";
        e->name_len = 15;
      }
      return 0;
    }
    case POLYTEL__EV_SPAN_END:
    case POLYTEL__EV_SPAN_END_DYN: {
      if (t->stack_depth == 0) {
        /* Its begin could not be kept (no memory for the stack): recorded, never sent. */
        atomic_fetch_add(&polytel__acct.dropped_export, 1);
        return 0;
      }
      uint32_t i = t->stack_depth - 1;
      cons_span_t *e = &t->stack[i];
      int item = !e->unsampled; /* an unsampled span was counted apart by the calling thread */
      if (item && !count_only && sink->span) {
        ensure_ids(t, i);
        polytel__span_rec_t r = {0};
        memcpy(r.trace_id, e->trace_id, 16);
        memcpy(r.span_id, e->span_id, 8);
        memcpy(r.parent_id, e->parent_id, 8);
        r.has_parent = e->parent != PARENT_NONE;
        r.kind = e->kind ? e->kind : POLYTEL_SPAN_KIND_INTERNAL;
        r.flags = (uint32_t)((e->frame ? e->frame->flags & ~1u : 0u) | POLYTEL_TRACE_FLAG_SAMPLED) |
                  POLYTEL__SPAN_FLAG_HAS_IS_REMOTE |
                  (e->parent == PARENT_REMOTE ? POLYTEL__SPAN_FLAG_IS_REMOTE : 0u);
        if (e->frame) tracestate_out(e->frame->ts, e->frame->ts_len, &r.trace_state, &r.trace_state_len);
        r.dropped_attrs = e->dropped_attrs;
        r.name = e->name;
        r.name_len = e->name_len;
        r.start_ns = polytel__ticks_to_unix(cc, e->start_ticks);
        r.end_ns = polytel__ticks_to_unix(cc, ev->ts);
        if (r.end_ns < r.start_ns) r.end_ns = r.start_ns;
        r.status = ev->flags & 0xff;
        r.thread_id = t->id;
        memcpy(r.thread_name, t->name, sizeof r.thread_name);
        uint32_t n_end = 0;
        const uint8_t *q = NULL;
        if (ev->type == POLYTEL__EV_SPAN_END_DYN) {
          uint32_t h[2];
          memcpy(h, p + 16, 8);
          q = get_str(p + 24, &r.status_msg, &r.status_msg_len);
          n_end = h[0];
          r.dropped_attrs += h[1];
        }
        /* The limits may rewrite the list: always a scratch copy, never the begin's own. */
        polytel__kv_t *kv = kv_room(e->n_attrs + n_end);
        if (kv) {
          if (e->n_attrs) memcpy(kv, e->attrs, e->n_attrs * sizeof *kv);
          if (n_end) get_attrs(q, n_end, kv + e->n_attrs);
          r.attrs = kv;
          r.n_attrs = e->n_attrs + n_end;
          apply_limits(kv, &r.n_attrs, LIMIT(span_attrs), LIMIT(span_attr_len), &r.dropped_attrs);
        } else {
          r.dropped_attrs += e->n_attrs + n_end;
        }
        sink->span(sink->ctx, &r);
      }
      pop(t);
      return item;
    }
    case POLYTEL__EV_CTX_ATTACH: {
      uint8_t h[4];
      uint32_t tl;
      memcpy(h, p + 40, 4);
      memcpy(&tl, p + 44, 4);
      if (!t->cframes) t->cframes = calloc(POLYTEL__MAX_ATTACH, sizeof *t->cframes);
      cons_frame_t *f = t->cframes && t->n_cframes < POLYTEL__MAX_ATTACH ? malloc(sizeof *f + tl + 1) : NULL;
      if (!f) return 0; /* out of memory: its spans join the enclosing trace */
      memcpy(f->trace_id, p + 16, 16);
      memcpy(f->span_id, p + 32, 8);
      f->has_remote = h[0];
      f->flags = h[1];
      f->unsampled = h[2];
      f->base = t->stack_depth;
      f->refs = 1;
      f->ts_len = tl;
      memcpy(f->ts, p + 48, tl);
      f->ts[tl] = '\0';
      t->cframes[t->n_cframes++] = f;
      return 0;
    }
    case POLYTEL__EV_CTX_DETACH:
      if (t->n_cframes) frame_release(t->cframes[--t->n_cframes]);
      return 0;
    default:
      return 0;
  }
}

/* ------------------------------------------------------------- async spans */

/* Decodes an EV_SPAN_FULL (layout: events.c, full_layout) into r; events and links go to g_evs/g_lns,
 * attributes to kv. */
static int decode_full(const uint8_t *p, const polytel__ev_t *ev, polytel__span_rec_t *r, polytel__kv_t *kv) {
  memcpy(&r->start_ns, p + 16, 8);
  memcpy(r->trace_id, p + 24, 16);
  memcpy(r->span_id, p + 40, 8);
  memcpy(r->parent_id, p + 48, 8);
  static const uint8_t zero[8];
  r->has_parent = memcmp(r->parent_id, zero, 8) != 0;
  r->end_ns = ev->ts;
  r->status = ev->flags & 0xff;
  uint32_t h[2], x[4] = {0, 0, 0, 0}; /* n_events, n_links, events dropped, links dropped */
  memcpy(h, p + 56, 8);
  r->kind = p[64];
  r->flags = p[65] | POLYTEL__SPAN_FLAG_HAS_IS_REMOTE | (p[66] ? POLYTEL__SPAN_FLAG_IS_REMOTE : 0u);
  const uint8_t *q = get_str(p + 72, &r->name, &r->name_len);
  q = get_str(q, &r->status_msg, &r->status_msg_len);
  if (p[67]) { /* the scope, tracestate, events and links are there */
    memcpy(x, q, 16);
    q = get_str(q + 16, &r->scope_name, &r->scope_name_len);
    q = get_str(q, &r->scope_version, &r->scope_version_len);
    const char *ts;
    uint32_t tl;
    q = get_str(q, &ts, &tl);
    tracestate_out(ts, tl, &r->trace_state, &r->trace_state_len);
  }
  r->dropped_events = x[2];
  r->dropped_links = x[3];
  uint32_t used = h[0];
  q = get_attrs(q, h[0], kv);
  r->attrs = kv;
  r->n_attrs = h[0];
  r->dropped_attrs = h[1];
  apply_limits(kv, &r->n_attrs, LIMIT(span_attrs), LIMIT(span_attr_len), &r->dropped_attrs);

  polytel__event_rec_t *evs = room(g_evs, &g_evs_cap, x[0], sizeof *evs);
  polytel__link_rec_t *lns = room(g_lns, &g_lns_cap, x[1], sizeof *lns);
  if ((x[0] && !evs) || (x[1] && !lns)) return -1;
  g_evs = evs;
  g_lns = lns;
  for (uint32_t i = 0; i < x[0]; i++) {
    polytel__event_rec_t *e = &evs[i];
    memcpy(&e->time_ns, q, 8);
    memcpy(h, q + 8, 8);
    q = get_str(q + 16, &e->name, &e->name_len);
    q = get_attrs(q, h[0], kv + used);
    e->attrs = kv + used;
    e->n_attrs = h[0];
    e->dropped_attrs = h[1];
    used += h[0];
    apply_limits(kv + used - h[0], &e->n_attrs, LIMIT(event_attrs), LIMIT(span_attr_len), &e->dropped_attrs);
  }
  for (uint32_t i = 0; i < x[1]; i++) {
    polytel__link_rec_t *l = &lns[i];
    memcpy(l->trace_id, q, 16);
    memcpy(l->span_id, q + 16, 8);
    l->flags = q[24] | POLYTEL__SPAN_FLAG_HAS_IS_REMOTE | (q[25] ? POLYTEL__SPAN_FLAG_IS_REMOTE : 0u);
    memcpy(&h[0], q + 28, 4);
    memcpy(&h[1], q + 32, 4);
    const char *ts;
    uint32_t tl;
    q = get_str(q + 40, &ts, &tl);
    tracestate_out(ts, tl, &l->trace_state, &l->trace_state_len);
    q = get_attrs(q, h[0], kv + used);
    l->attrs = kv + used;
    l->n_attrs = h[0];
    l->dropped_attrs = h[1];
    used += h[0];
    apply_limits(kv + used - h[0], &l->n_attrs, LIMIT(link_attrs), LIMIT(span_attr_len), &l->dropped_attrs);
  }
  r->events = evs;
  r->n_events = x[0];
  r->links = lns;
  r->n_links = x[1];
  return 0;
}

/* Returns 1 if the event was an item (log or span). */
static int decode(polytel__thread_t *t, const uint8_t *p, const polytel__sink_t *sink,
                  const polytel__clock_conv_t *cc) {
  const polytel__ev_t *ev = (const polytel__ev_t *)p;
  const uint8_t *end = p + ev->size;
  g_out_used = 0;
  switch (ev->type) {
    case POLYTEL__EV_LOG_FMT: {
      const char *target, *fmt;
      target = polytel__get_ptr(p + 16);
      fmt = polytel__get_ptr(p + 24);
      size_t n = polytel__fmt_render(g_scratch, SCRATCH_CAP, fmt, p + 32, (size_t)(end - (p + 32)));
      polytel__log_rec_t r = {0};
      r.time_ns = polytel__ticks_to_unix(cc, ev->ts);
      r.observed_ns = r.time_ns;
      r.severity = ev->level;
      r.target = target;
      r.target_len = (uint32_t)strlen(target);
      r.body = g_scratch;
      r.body_len = (uint32_t)n;
      r.thread_id = t->id;
      memcpy(r.thread_name, t->name, sizeof r.thread_name);
      log_context(t, &r);
      if (sink->log) sink->log(sink->ctx, &r);
      return 1;
    }
    case POLYTEL__EV_LOG_STR: {
      uint32_t h[4]; /* n_attrs, has_span, trace flags, attrs dropped */
      memcpy(h, p + 16, 16);
      const uint8_t *q = p + 32;
      polytel__log_rec_t r = {0};
      if (h[1]) {
        r.has_span = 1;
        r.flags = h[2];
        memcpy(r.trace_id, q, 16);
        memcpy(r.span_id, q + 16, 8);
        q += 24;
      } else {
        log_context(t, &r);
      }
      q = get_str(q, &r.target, &r.target_len);
      q = get_str(q, &r.body, &r.body_len);
      r.dropped_attrs = h[3];
      polytel__kv_t *kv = kv_room(h[0]);
      if (kv) {
        get_attrs(q, h[0], kv);
        r.attrs = kv;
        r.n_attrs = h[0];
        apply_limits(kv, &r.n_attrs, LIMIT(log_attrs), LIMIT(log_attr_len), &r.dropped_attrs);
      } else {
        r.dropped_attrs += h[0];
      }
      r.time_ns = polytel__ticks_to_unix(cc, ev->ts);
      r.observed_ns = r.time_ns;
      r.severity = ev->level;
      r.thread_id = t->id;
      memcpy(r.thread_name, t->name, sizeof r.thread_name);
      if (sink->log) sink->log(sink->ctx, &r);
      return 1;
    }
    case POLYTEL__EV_SPAN_BEGIN:
    case POLYTEL__EV_SPAN_BEGIN_PACKED:
    case POLYTEL__EV_SPAN_BEGIN_DYN:
    case POLYTEL__EV_SPAN_END:
    case POLYTEL__EV_SPAN_END_PACKED:
    case POLYTEL__EV_SPAN_END_DYN:
    case POLYTEL__EV_CTX_ATTACH:
    case POLYTEL__EV_CTX_DETACH:
      return replay(t, p, sink, cc, 0);
    case POLYTEL__EV_SPAN_FULL: {
      polytel__span_rec_t r = {0};
      /* Every serialized attribute takes at least 16 bytes: the event's size bounds the count. */
      polytel__kv_t *kv = kv_room(ev->size / 16 + 1);
      if (kv && decode_full(p, ev, &r, kv) == 0) {
        r.thread_id = t->id;
        memcpy(r.thread_name, t->name, sizeof r.thread_name);
        if (sink->span) sink->span(sink->ctx, &r);
      } else if (sink->span) {
        /* No memory for its parts: the span goes out bare rather than not at all. */
        polytel__span_rec_t bare = {0};
        memcpy(&bare.start_ns, p + 16, 8);
        memcpy(bare.trace_id, p + 24, 16);
        memcpy(bare.span_id, p + 40, 8);
        memcpy(bare.parent_id, p + 48, 8);
        static const uint8_t zero[8];
        bare.has_parent = memcmp(bare.parent_id, zero, 8) != 0;
        bare.end_ns = ev->ts;
        bare.status = ev->flags & 0xff;
        get_str(p + 72, &bare.name, &bare.name_len);
        bare.kind = p[64];
        bare.thread_id = t->id;
        memcpy(bare.thread_name, t->name, sizeof bare.thread_name);
        sink->span(sink->ctx, &bare);
      }
      return 1;
    }
    case POLYTEL__EV_METRIC: {
      double d;
      int64_t i;
      memcpy(&d, p + 16, 8);
      memcpy(&i, p + 16, 8);
      uint32_t h[2];
      memcpy(h, p + 24, 8);
      const char *name, *unit;
      uint32_t nl, ul;
      const uint8_t *q = get_str(p + 32, &name, &nl);
      q = get_str(q, &unit, &ul);
      polytel__kv_t *kv = kv_room(h[0]);
      if (kv) get_attrs(q, h[0], kv);
      polytel__metrics_event(ev->level, name, nl, unit, ul, d, i, kv, kv ? h[0] : 0);
      return 0;
    }
    case POLYTEL__EV_HIST_STATIC: {
      polytel_metric_t *m;
      double v;
      m = (polytel_metric_t *)(uintptr_t)polytel__get_ptr(p + 16);
      memcpy(&v, p + 24, 8);
      polytel__metrics_hist_static(m, v);
      return 0;
    }
    default:
      return 0;
  }
}

/* Fold an exited thread's counters into the retired totals and free it. Registry lock held. */
static void retire(polytel__thread_t *t) {
  atomic_fetch_add(&polytel__acct.retired_logs, atomic_load(&t->n_logs));
  atomic_fetch_add(&polytel__acct.retired_spans, atomic_load(&t->n_spans));
  atomic_fetch_add(&polytel__acct.retired_drop_full, atomic_load(&t->n_drop_full));
  atomic_fetch_add(&polytel__acct.retired_drop_invalid, atomic_load(&t->n_drop_invalid));
  atomic_fetch_add(&polytel__acct.retired_drop_depth, atomic_load(&t->n_drop_depth));
  atomic_fetch_add(&polytel__acct.retired_truncated, atomic_load(&t->n_truncated));
  atomic_fetch_add(&polytel__acct.retired_sampled_out, atomic_load(&t->n_sampled_out));
  for (int i = 0; i < POLYTEL__MAX_STATIC_METRICS; i++) {
    int64_t v = atomic_load_explicit(&t->counters[i], POLYTEL__RELAXED);
    if (!v) continue;
    /* Saturating: past INT64_MAX the total stays there (the snapshot says so), never wraps. */
    int64_t old = atomic_load(&polytel__retired_counters[i]), sum;
    int sat;
    do sat = polytel__sat_add(old, v, &sum);
    while (!atomic_compare_exchange_weak(&polytel__retired_counters[i], &old, sum));
    if (!sat) continue;
    /* Acquire: pairs with the registering thread's release (nothing else orders us after it). */
    polytel_metric_t *m = __atomic_load_n(&polytel__static_metrics[i], __ATOMIC_ACQUIRE);
    if (m && m->name) polytel__counter_total_saturated(m->name, strlen(m->name));
  }
  polytel__consume_reset_thread(t);
  polytel__pool_put(t->head);
  free((void *)t->counters);
  free(t->fmt_cache);
  free(t->stack);
  free(t->cframes);
  free(t->frames);
  free(t);
}

/*
 * Leaf spans from data[cur]: a span begin (any decision, any kind) directly followed by its plain end, as the
 * fast paths write them (packed: 24 bytes; 40 on a big-endian host), told by their first bytes. Their push
 * and pop would leave no trace on the replay stack or the frames (a frame's reference taken at the push is
 * let go at the pop, bases only follow the depth down below where it was): what remains is the number each
 * begin takes (cons_seq) and the count of the sampled ones. Only on a stack with room, so push() would have
 * kept each: the same counts either way. The next event's address is a constant step, not a loaded size, so
 * the walk is no chain of dependent loads. Steps over at most `max` pairs; returns the bytes stepped over,
 * adds the items.
 */
#if POLYTEL__PACKED_SPANS
#define LEAF_SIZE 24u
#define LEAF_END_AT 16u
static const uint64_t k_hdr_mask = 0xffu, k_begin = POLYTEL__EV_SPAN_BEGIN_PACKED,
                      k_end = POLYTEL__EV_SPAN_END_PACKED, k_unsampled = POLYTEL__BEGIN_UNSAMPLED << 8;
#else
#define LEAF_SIZE 40u
#define LEAF_END_AT 24u
static const polytel__ev_t k_hdr_mask = {0xff, 0xff, 0, 0xffffffffu, 0};
static const polytel__ev_t k_begin = {POLYTEL__EV_SPAN_BEGIN, 0, 0, 24, 0};
static const polytel__ev_t k_end = {POLYTEL__EV_SPAN_END, 0, 0, 16, 0};
static const polytel__ev_t k_unsampled = {0, 0, POLYTEL__BEGIN_UNSAMPLED, 0, 0};
#endif

static inline uint64_t word_of(const void *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
}

static uint32_t leaf_run(polytel__thread_t *t, const uint8_t *data, uint32_t cur, uint32_t committed,
                         uint64_t max, uint64_t *items) {
  if (committed < cur + LEAF_SIZE || !t->stack || t->stack_depth >= t->stack_cap) return 0;
  uint64_t m = word_of(&k_hdr_mask), b = word_of(&k_begin), e = word_of(&k_end), u = word_of(&k_unsampled);
  uint32_t c = cur, last = committed - LEAF_SIZE;
  uint64_t n = 0, unsampled = 0;
  while (c <= last && n < max) {
    uint64_t w0 = word_of(data + c), w1 = word_of(data + c + LEAF_END_AT);
    if (((w0 & m) != b) | ((w1 & m) != e)) break;
    unsampled += (w0 & u) != 0;
    n++;
    c += LEAF_SIZE;
  }
  t->cons_seq += n;
  *items += n - unsampled;
  return c - cur;
}

uint64_t polytel__consume(const polytel__sink_t *sink, uint64_t max_items) {
  if (!g_scratch) {
    g_scratch = malloc(SCRATCH_CAP);
    if (!g_scratch) return 0;
  }
  if (!g_out) {
    g_out = malloc(OUT_CAP);
    if (!g_out) return 0;
  }
  polytel__clock_conv_t cc;
  polytel__clock_conv(&cc);
  polytel__handoffs_drained();

  /* Snapshot the registry: entries are only freed here, by the consumer. */
  pthread_mutex_lock(&polytel__registry_mu);
  size_t n = 0;
  for (polytel__thread_t *t = polytel__registry; t; t = t->next) n++;
  polytel__thread_t **list = malloc((n ? n : 1) * sizeof *list);
  n = 0;
  if (list)
    for (polytel__thread_t *t = polytel__registry; t; t = t->next) list[n++] = t;
  pthread_mutex_unlock(&polytel__registry_mu);
  if (!list) return 0;

  uint64_t items = 0;
  int any_dead = 0;
  /* A bounded drain starts one thread further each time: a busy thread cannot starve the others. */
  static size_t rotate;
  size_t start = n ? rotate++ % n : 0;
  int count_only = !sink->log && !sink->span;
  for (size_t k = 0; k < n && items < max_items; k++) {
    polytel__thread_t *t = list[(start + k) % n];
    int dead = atomic_load_explicit(&t->dead, memory_order_acquire);
    polytel__block_t *b = t->head;
    while (b && items < max_items) {
      uint32_t committed = atomic_load_explicit(&b->committed, memory_order_acquire);
      const uint8_t *base = (const uint8_t *)b->data;
      /* A local cursor, stored once: the header line is the writer's, which stores `committed` per event. */
      uint32_t cur = b->consumed;
      if (count_only) {
        /* Nobody reads logs or spans (no exporter): count them, replay spans, aggregate metrics only. */
        while (cur < committed && items < max_items) {
          const uint8_t *ev = base + cur;
          uint32_t leaves = leaf_run(t, base, cur, committed, max_items - items, &items);
          if (leaves) {
            cur += leaves;
            continue;
          }
          uint8_t ty = ((const polytel__ev_t *)ev)->type;
          if (ty == POLYTEL__EV_LOG_FMT || ty == POLYTEL__EV_LOG_STR || ty == POLYTEL__EV_SPAN_FULL) {
            items++;
          } else if (ty == POLYTEL__EV_SPAN_BEGIN ||
                     ty == POLYTEL__EV_SPAN_BEGIN_PACKED) { /* the common ones */
            cons_span_t *e =
                push(t, ty == POLYTEL__EV_SPAN_BEGIN ? ((const polytel__ev_t *)ev)->flags : ev[1]);
            if (e) {
              /* The start at ev + 8 in both layouts: a later export times it, a packed end reads it. */
              memcpy(&e->start_ticks, ev + 8, 8);
              e->name = "";
              e->name_len = 0;
            }
          } else if ((ty == POLYTEL__EV_SPAN_END || ty == POLYTEL__EV_SPAN_END_PACKED) && t->stack_depth) {
            items += !t->stack[t->stack_depth - 1].unsampled;
            pop(t);
          } else if (ty == POLYTEL__EV_METRIC || ty == POLYTEL__EV_HIST_STATIC)
            decode(t, ev, sink, &cc);
          else
            items += (uint64_t)replay(t, ev, sink, &cc, 1);
          cur += polytel__ev_size(ev);
        }
      } else {
        while (cur < committed && items < max_items) {
          const uint8_t *ev = base + cur;
          items += (uint64_t)decode(t, ev, sink, &cc);
          cur += polytel__ev_size(ev);
        }
      }
      b->consumed = cur;
      if (b->consumed < committed) break;
      if (!atomic_load_explicit(&b->sealed, memory_order_acquire)) break;
      /* Sealed: committed is final once the seal is seen. */
      if (b->consumed < atomic_load_explicit(&b->committed, memory_order_acquire)) continue;
      polytel__block_t *next = b->next;
      polytel__pool_put(b);
      b = next;
      t->head = b;
    }
    if (dead && t->head && !atomic_load(&t->head->sealed) &&
        t->head->consumed == atomic_load(&t->head->committed))
      any_dead = 1;
  }
  free(list);

  if (any_dead) {
    pthread_mutex_lock(&polytel__registry_mu);
    polytel__thread_t **pp = &polytel__registry;
    while (*pp) {
      polytel__thread_t *t = *pp;
      if (atomic_load_explicit(&t->dead, memory_order_acquire) && t->head && !atomic_load(&t->head->sealed) &&
          t->head->consumed == atomic_load(&t->head->committed)) {
        *pp = t->next;
        retire(t);
      } else {
        pp = &t->next;
      }
    }
    pthread_mutex_unlock(&polytel__registry_mu);
  }
  return items;
}

void polytel_thread_set_name(const char *name) {
  if (!name) return;
  polytel__thread_t *t = polytel__thread();
  if (!t) return;
  size_t n = strnlen(name, sizeof t->name - 1);
  /* A cut inside a UTF-8 sequence would reach the wire as U+FFFD: cut before it. */
  if (n == sizeof t->name - 1 && name[n] != '\0')
    while (n && ((uint8_t)name[n] & 0xC0) == 0x80) n--;
  /* The consumer reads the name under this lock; the calling thread takes it once, not per event. */
  pthread_mutex_lock(&polytel__consume_mu);
  memcpy(t->name, name, n);
  t->name[n] = '\0';
  pthread_mutex_unlock(&polytel__consume_mu);
}

/* Fork child: the thread-span ids come from per-thread keys, which buffers.c reseeds. */
void polytel__consume_fork_child(void) {
  /* Before buffers.c frees the parent's threads: their replay stacks hold copies the child owns now. */
  for (polytel__thread_t *t = polytel__registry; t; t = t->next) polytel__consume_reset_thread(t);
}
