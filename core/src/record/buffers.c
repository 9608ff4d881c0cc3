/* buffers.c — per-thread event blocks, the bounded block pool, thread registration and exit. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/common.h"
#include "record/record.h"

/* initial-exec: one pointer of static TLS, no __tls_get_addr on the hot path, dlopen-safe. */
__thread polytel__thread_t *polytel__tls __attribute__((tls_model("initial-exec")));

pthread_mutex_t polytel__registry_mu = PTHREAD_MUTEX_INITIALIZER;
polytel__thread_t *polytel__registry;

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static polytel__block_t *g_free;  /* free list */
static uint64_t g_pool_allocated; /* blocks malloc'd (guarded by pool_mu) */
/* Set when a get failed at the cap, cleared by a put: while the collector is down, a full pool
 * must cost the caller one load per event, not a mutex round-trip. */
static _Atomic int g_pool_exhausted;
/*
 * Blocks kept ready on the free list, allocated and faulted in by the exporter side
 * (polytel__pool_refill), so that a caller taking a block while the pool grows (a collector
 * outage, a burst) pays neither malloc, nor brk, nor 16 page faults. The reserve starts at zero
 * (a process that records little holds nothing extra) and doubles each time a caller found the
 * free list empty and had to allocate itself, up to POOL_RESERVE_MAX blocks; all within the cap.
 */
#define POOL_RESERVE_MAX 16u
static uint32_t g_free_n;      /* blocks on the free list (pool_mu) */
static uint32_t g_reserve;     /* free blocks the refiller keeps ready (pool_mu) */
static _Atomic int g_pool_low; /* the free list is below the reserve: the refiller has work */
static uint32_t g_next_thread_id;
/*
 * Blocks sealed since the exporter was last woken or last drained. A hand-off wakes it only every
 * wake_every() blocks (or when the pool runs short): a wake-up costs the calling thread a syscall (and, on a
 * VM, an inter-processor interrupt), and the woken exporter competes with it for a core; one every ~36 us
 * of spans was a fifth of a span pair's cost. Partial blocks are read on the exporter's own timers, as
 * before.
 */
static _Atomic uint32_t g_unwoken;
static _Atomic int g_pool_short; /* the pool's headroom (free + growable) is below wake_every() blocks */
static pthread_key_t g_exit_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg);
static void sum_threads(polytel__thread_sums_t *s);
/* Once: the exit key, and the accounting's view of the threads (stats sum them from here on). */
static void make_key(void) {
  pthread_key_create(&g_exit_key, thread_exit);
  polytel__acct_set_thread_sums(sum_threads);
}

void polytel__buffers_set_cap(uint64_t max_bytes) {
  if (max_bytes < 4 * POLYTEL__BLOCK_SIZE) max_bytes = 4 * POLYTEL__BLOCK_SIZE;
  atomic_store(&polytel__acct.pool_cap, max_bytes);
  atomic_store(&g_pool_exhausted, 0); /* a larger cap may have room */
}

void polytel__buffers_init(uint64_t max_bytes) {
  pthread_once(&g_key_once, make_key);
  polytel__buffers_set_cap(max_bytes);
}

uint32_t polytel__wake_every(void) {
  uint64_t blocks =
      atomic_load_explicit(&polytel__acct.pool_cap, POLYTEL__RELAXED) / POLYTEL__BLOCK_SIZE / 16;
  return blocks < 1 ? 1 : blocks > 16 ? 16 : (uint32_t)blocks;
}

void polytel__handoffs_drained(void) {
  atomic_store_explicit(&g_unwoken, 0, POLYTEL__RELAXED);
}

uint64_t polytel__pool_bytes(void) {
  return atomic_load_explicit(&polytel__acct.pool_bytes, POLYTEL__RELAXED);
}
uint64_t polytel__pool_cap(void) {
  return atomic_load_explicit(&polytel__acct.pool_cap, POLYTEL__RELAXED);
}

polytel__block_t *polytel__pool_get(void) {
  polytel__block_t *b = NULL;
  if (atomic_load_explicit(&g_pool_exhausted, POLYTEL__RELAXED)) return NULL;
  pthread_mutex_lock(&g_pool_mu);
  if (g_free) {
    b = g_free;
    g_free = b->next;
    g_free_n--;
  } else if ((g_pool_allocated + 1) * POLYTEL__BLOCK_SIZE <= atomic_load(&polytel__acct.pool_cap)) {
    /* Lazily grown: a process that records little never holds the whole cap. The refiller was
     * behind (or this is the first growth): this caller pays once, and the reserve grows. */
    b = malloc(POLYTEL__BLOCK_SIZE);
    if (b) {
      g_pool_allocated++;
      atomic_fetch_add(&polytel__acct.pool_bytes, POLYTEL__BLOCK_SIZE);
      g_reserve = g_reserve ? (g_reserve * 2 < POOL_RESERVE_MAX ? g_reserve * 2 : POOL_RESERVE_MAX) : 1;
    }
  }
  if (!b) atomic_store_explicit(&g_pool_exhausted, 1, POLYTEL__RELAXED);
  if (g_free_n < g_reserve) atomic_store_explicit(&g_pool_low, 1, POLYTEL__RELAXED);
  uint64_t cap_blocks = atomic_load(&polytel__acct.pool_cap) / POLYTEL__BLOCK_SIZE;
  uint64_t headroom = g_free_n + (cap_blocks > g_pool_allocated ? cap_blocks - g_pool_allocated : 0);
  atomic_store_explicit(&g_pool_short, headroom < polytel__wake_every(), POLYTEL__RELAXED);
  pthread_mutex_unlock(&g_pool_mu);
  if (b) {
    b->next = NULL;
    atomic_store_explicit(&b->committed, 0, POLYTEL__RELAXED);
    atomic_store_explicit(&b->sealed, 0, POLYTEL__RELAXED);
    b->consumed = 0;
    b->cap = POLYTEL__BLOCK_DATA_CAP;
  }
  return b;
}

void polytel__pool_put(polytel__block_t *b) {
  pthread_mutex_lock(&g_pool_mu);
  if ((g_pool_allocated)*POLYTEL__BLOCK_SIZE > atomic_load(&polytel__acct.pool_cap)) {
    /* The cap was lowered: give memory back. */
    g_pool_allocated--;
    atomic_fetch_sub(&polytel__acct.pool_bytes, POLYTEL__BLOCK_SIZE);
    free(b);
  } else {
    b->next = g_free;
    g_free = b;
    g_free_n++;
  }
  atomic_store_explicit(&g_pool_exhausted, 0, POLYTEL__RELAXED);
  pthread_mutex_unlock(&g_pool_mu);
}

/*
 * Exporter side (each pipeline pump): tops the free list up to the reserve, within the cap. The
 * malloc and the page faults happen here, outside the pool lock, never on a recording thread.
 */
void polytel__pool_refill(void) {
  if (!atomic_load_explicit(&g_pool_low, POLYTEL__RELAXED)) return;
  atomic_store_explicit(&g_pool_low, 0, POLYTEL__RELAXED);
  for (;;) {
    pthread_mutex_lock(&g_pool_mu);
    int grow = g_free_n < g_reserve &&
               (g_pool_allocated + 1) * POLYTEL__BLOCK_SIZE <= atomic_load(&polytel__acct.pool_cap);
    if (grow) g_pool_allocated++; /* the slot is taken before the lock is let go: the cap holds */
    pthread_mutex_unlock(&g_pool_mu);
    if (!grow) return;
    polytel__block_t *b = malloc(POLYTEL__BLOCK_SIZE);
    if (b) {
      /* One write per page faults the block in now (the kernel zeroes it here, not under a caller). */
      for (size_t off = 0; off < POLYTEL__BLOCK_SIZE; off += 4096) ((volatile uint8_t *)b)[off] = 0;
      atomic_fetch_add(&polytel__acct.pool_bytes, POLYTEL__BLOCK_SIZE);
    }
    pthread_mutex_lock(&g_pool_mu);
    if (b) {
      b->next = g_free;
      g_free = b;
      g_free_n++;
      atomic_store_explicit(&g_pool_exhausted, 0, POLYTEL__RELAXED);
    } else {
      g_pool_allocated--;
    }
    pthread_mutex_unlock(&g_pool_mu);
    if (!b) return;
  }
}

/* Retired totals are read under the registry lock: a thread retiring meanwhile is counted exactly once. */
static void sum_threads(polytel__thread_sums_t *s) {
  pthread_mutex_lock(&polytel__registry_mu);
  s->logs = atomic_load(&polytel__acct.retired_logs);
  s->spans = atomic_load(&polytel__acct.retired_spans);
  s->full = atomic_load(&polytel__acct.retired_drop_full);
  s->inv = atomic_load(&polytel__acct.retired_drop_invalid);
  s->depth = atomic_load(&polytel__acct.retired_drop_depth);
  s->trunc = atomic_load(&polytel__acct.retired_truncated);
  s->sampled_out = atomic_load(&polytel__acct.retired_sampled_out);
  for (polytel__thread_t *t = polytel__registry; t; t = t->next) {
    s->logs += atomic_load_explicit(&t->n_logs, POLYTEL__RELAXED);
    s->spans += atomic_load_explicit(&t->n_spans, POLYTEL__RELAXED);
    s->full += atomic_load_explicit(&t->n_drop_full, POLYTEL__RELAXED);
    s->inv += atomic_load_explicit(&t->n_drop_invalid, POLYTEL__RELAXED);
    s->depth += atomic_load_explicit(&t->n_drop_depth, POLYTEL__RELAXED);
    s->trunc += atomic_load_explicit(&t->n_truncated, POLYTEL__RELAXED);
    s->sampled_out += atomic_load_explicit(&t->n_sampled_out, POLYTEL__RELAXED);
  }
  pthread_mutex_unlock(&polytel__registry_mu);
}

static void set_block(polytel__thread_t *t, polytel__block_t *b) {
  t->cur = b;
  t->pos = (uint8_t *)b->data;
  polytel__adjust_reserve(t);
}

/* First event of a thread: the only allocation a thread ever makes. */
static void (*_Atomic g_on_exit)(polytel__thread_t *t); /* every registration passes the same one */
static void (*_Atomic g_wake)(void);

void polytel__buffers_set_wake(void (*wake)(void)) {
  atomic_store(&g_wake, wake);
}

void polytel__wake(void) {
  void (*wake)(void) = atomic_load(&g_wake);
  if (wake) wake();
}

polytel__thread_t *polytel__thread_register(void (*on_exit)(polytel__thread_t *t)) {
  if (polytel__tls) return polytel__tls;
  pthread_once(&g_key_once, make_key);
  atomic_store_explicit(&g_on_exit, on_exit, memory_order_relaxed);
  /*
   * All of it under the registry lock, which fork's prepare hook holds: a fork never lands inside this
   * thread's mallocs. An allocator without fork handlers (ASan before LLVM 18) would otherwise leave the
   * child a size class locked forever, and the child's next malloc of that size hangs.
   */
  pthread_mutex_lock(&polytel__registry_mu);
  polytel__thread_t *t = calloc(1, sizeof *t);
  _Atomic int64_t *counters = calloc(POLYTEL__MAX_STATIC_METRICS, sizeof *counters);
  polytel__fmt_sig_t *cache = calloc(POLYTEL__FMT_CACHE, sizeof *cache);
  polytel__block_t *b = polytel__pool_get();
  if (!t || !counters || !cache || !b) {
    free(t);
    free(counters);
    free(cache);
    if (b) polytel__pool_put(b);
    pthread_mutex_unlock(&polytel__registry_mu);
    return NULL;
  }
  t->counters = counters;
  t->fmt_cache = cache;
  polytel__rng_seed(t->rng);
  polytel__clock_init(); /* the fast paths' TSC choice is part of the thread's state */
  set_block(t, b);
  t->head = b;
  polytel__ctx_thread_init(t);
#ifdef __GLIBC__
  pthread_getname_np(pthread_self(), t->name, sizeof t->name); /* thread.name; once, off the hot path */
#endif
  t->id = ++g_next_thread_id;
  t->next = polytel__registry;
  polytel__registry = t;
  polytel__tls = t;
  pthread_setspecific(g_exit_key, t); /* glibc allocates past the 32nd key */
  pthread_mutex_unlock(&polytel__registry_mu);
  return t;
}

int polytel__handoff(polytel__thread_t *t) {
  polytel__block_t *nb = polytel__pool_get();
  if (!nb) return 0;
  polytel__block_t *old = t->cur;
  old->next = nb;
  /* A fast begin leaves its bytes unpublished (events.c): the sealed block's committed is final. */
  atomic_store_explicit(&old->committed, (uint32_t)(t->pos - (uint8_t *)old->data), memory_order_release);
  /* `next` must be visible before `sealed`: the consumer follows it after seeing the seal. */
  atomic_store_explicit(&old->sealed, 1, memory_order_release);
  set_block(t, nb);
  if (atomic_fetch_add_explicit(&g_unwoken, 1, POLYTEL__RELAXED) + 1 >= polytel__wake_every() ||
      atomic_load_explicit(&g_pool_short, POLYTEL__RELAXED)) {
    atomic_store_explicit(&g_unwoken, 0, POLYTEL__RELAXED);
    polytel__wake();
  }
  return 1;
}

/* Thread exit: end its open spans, publish the block, mark it dead for the consumer to retire. */
static void thread_exit(void *arg) {
  polytel__thread_t *t = arg;
  if (!t) return;
  void (*on_exit)(polytel__thread_t *) = atomic_load_explicit(&g_on_exit, memory_order_relaxed);
  if (on_exit) on_exit(t);
  /* Every open span was just ended (published); a begin's bytes are never left unpublished at exit. */
  atomic_store_explicit(&t->cur->committed, (uint32_t)(t->pos - (uint8_t *)t->cur->data),
                        memory_order_release);
  polytel__tls = NULL;
  atomic_store_explicit(&t->dead, 1, memory_order_release);
  polytel__wake();
}

/*
 * Fork child (single-threaded, locks already released): the parent's threads
 * are gone and their events are the parent's to send, so all of it is freed.
 */
void polytel__buffers_fork_child(void) {
  polytel__thread_t *self = polytel__tls;
  polytel__thread_t *t = polytel__registry;
  /* Free every block and thread but the forking one, whose struct is reused. */
  while (t) {
    polytel__thread_t *next = t->next;
    polytel__block_t *b = t->head;
    while (b) {
      polytel__block_t *bn = (b == t->cur) ? NULL : b->next;
      free(b);
      b = bn;
    }
    if (t != self) {
      free((void *)t->counters);
      free(t->fmt_cache);
      free(t->stack);
      free(t->cframes);
      free(t->frames);
      free(t);
    }
    t = next;
  }
  while (g_free) {
    polytel__block_t *n = g_free->next;
    free(g_free);
    g_free = n;
  }
  g_pool_allocated = 0;
  g_free_n = 0;
  g_reserve = 0;
  atomic_store(&g_pool_low, 0);
  atomic_store(&polytel__acct.pool_bytes, 0);
  atomic_store(&g_pool_exhausted, 0);
  polytel__registry = NULL;
  g_next_thread_id = 0;
  if (self) {
    polytel__block_t *b = polytel__pool_get();
    if (!b) {
      polytel__tls = NULL;
      free((void *)self->counters);
      free(self->fmt_cache);
      free(self->stack);
      free(self->cframes);
      free(self->frames);
      free(self);
      return;
    }
    polytel__fmt_sig_t *cache = self->fmt_cache;
    _Atomic int64_t *counters = self->counters;
    free(self->stack); /* the consumer's replay stack: the parent's spans are not the child's */
    free(self->cframes);
    /* Attached contexts stay (the child runs the same code, detaches included); its spans do not. */
    polytel__frame_t *frames = self->frames;
    uint8_t n_frames = self->n_frames;
    uint32_t frames_over = self->frames_over;
    char name[sizeof self->name];
    memcpy(name, self->name, sizeof name);
    memset(self, 0, sizeof *self);
    memcpy(self->name, name, sizeof name);
    self->frames = frames;
    self->n_frames = n_frames;
    self->frames_over = frames_over;
    for (uint32_t i = 0; i < n_frames; i++)
      frames[i].base = 0; /* pending: the child's first begin writes them */
    memset(cache, 0, POLYTEL__FMT_CACHE * sizeof *cache);
    memset((void *)counters, 0, POLYTEL__MAX_STATIC_METRICS * sizeof *counters);
    self->fmt_cache = cache;
    self->counters = counters;
    polytel__rng_seed(self->rng); /* never the parent's ids */
    set_block(self, b);
    self->head = b;
    polytel__ctx_thread_init(self); /* a new key, numbering from 1: never the parent's thread-span ids */
    self->id = ++g_next_thread_id;
    polytel__registry = self;
  }
}

void polytel__buffers_lock(void) {
  pthread_mutex_lock(&polytel__registry_mu);
  pthread_mutex_lock(&g_pool_mu);
}
void polytel__buffers_unlock(void) {
  pthread_mutex_unlock(&g_pool_mu);
  pthread_mutex_unlock(&polytel__registry_mu);
}
