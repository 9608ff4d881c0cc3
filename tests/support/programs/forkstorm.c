/* forkstorm.c — reliability: a full-mode parent with emitting threads forks many children mid-stream; each
 * child bootstraps phase 2 on its own loop, emits marked events, shuts down; one JSON line per process on
 * stdout. */
#include <polytel.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage: forkstorm [--children N] [--threads T] [--parent-events N] [--child-events N] [--shutdown-ms N]
 *                  [--fresh-threads K]
 * Configuration from the environment (TELEMETRY_ENABLED=true, OTEL_EXPORTER_OTLP_ENDPOINT, ...).
 * Parent thread t logs "parent t<t> e<i>" inside thread span "parent-span", paced so children are
 * forked while the threads are still emitting. Child c logs "child c<c> e<i>" and records span "child-span
 * c<c>". Output: "CHILD {...}" from each child, "PARENT {...}" from the parent (stats after shutdown).
 * --fresh-threads K: before each fork, K new threads wait at a gate (their own start-up done); the gate opens
 * just before the fork, so each fork lands while they record their first event (thread registration, the
 * only allocations polytel makes on a calling thread). Each logs "fresh c<c> k<k>" and exits after the fork.
 */

static int n_children = 24, n_threads = 2, parent_events = 3000, child_events = 50;
static uint32_t shutdown_ms = 10000;
static atomic_int storm_over;
static int emitted[16];
static atomic_int progress; /* parent events so far, all threads */
static atomic_int started;  /* emitting threads that recorded their first event */
static int fresh_threads;
static atomic_int fresh_ready, fresh_go, fresh_forked;

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void *emit(void *arg) {
  int t = (int)(intptr_t)arg;
  int i = 0;
  /* At least parent_events, and on until the last child was forked: every fork lands mid-stream. */
  for (; i < parent_events || !atomic_load(&storm_over); i++) {
    polytel_span_begin("parent-span");
    polytel_log(POLYTEL_LEVEL_INFO, "storm", "parent t%d e%d", t, i);
    polytel_span_end();
    if (i == 0) atomic_fetch_add(&started, 1);
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    if (i % 50 == 49) sleep_us(1000); /* keep emitting across the whole storm */
  }
  emitted[t] = i;
  return NULL;
}

typedef struct {
  int c, k;
} fresh_arg_t;

static void *fresh(void *arg) {
  const fresh_arg_t *a = arg;
  atomic_fetch_add(&fresh_ready, 1);
  while (!atomic_load(&fresh_go)) sched_yield();
  polytel_log(POLYTEL_LEVEL_INFO, "storm", "fresh c%d k%d", a->c, a->k);
  /* Exit only after the fork: a thread's exit (the runtime's, glibc's) is no part of what this mode tests. */
  while (!atomic_load(&fresh_forked)) sched_yield();
  return NULL;
}

static void print_stats(const char *who, int c, int init_rc, int shutdown_rc, const char *phase_before) {
  polytel_stats_t st;
  memset(&st, 0, sizeof st);
  int rc = polytel_stats(&st);
  printf(
      "%s {\"who\": %d, \"pid\": %d, \"init_rc\": %d, \"shutdown_rc\": %d, \"phase_before\": \"%s\", "
      "\"stats_rc\": %d, \"recorded\": %llu, \"exported\": %llu, \"dropped\": %llu, \"unconfirmed\": %llu, "
      "\"pending\": %llu}\n",
      who, c, (int)getpid(), init_rc, shutdown_rc, phase_before, rc, (unsigned long long)st.recorded,
      (unsigned long long)st.exported, (unsigned long long)st.dropped, (unsigned long long)st.unconfirmed,
      (unsigned long long)st.pending);
  fflush(stdout);
}

static void child_main(int c) {
  const char *before = polytel_phase_name(polytel_phase());
  int init_rc = polytel_init_full_telemetry(NULL, NULL);
  char name[32];
  snprintf(name, sizeof name, "child-span c%d", c);
  polytel_span_begin_dyn(name, NULL, 0);
  for (int i = 0; i < child_events; i++) polytel_log(POLYTEL_LEVEL_INFO, "storm", "child c%d e%d", c, i);
  polytel_span_end();
  int rc = polytel_shutdown(shutdown_ms);
  print_stats("CHILD", c, init_rc, rc, before);
  _exit(rc == 0 && init_rc == 0 ? 0 : 3);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--children"))
      n_children = v;
    else if (!strcmp(argv[i], "--threads"))
      n_threads = v;
    else if (!strcmp(argv[i], "--parent-events"))
      parent_events = v;
    else if (!strcmp(argv[i], "--child-events"))
      child_events = v;
    else if (!strcmp(argv[i], "--shutdown-ms"))
      shutdown_ms = (uint32_t)v;
    else if (!strcmp(argv[i], "--fresh-threads"))
      fresh_threads = v;
    else {
      fprintf(stderr, "forkstorm: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (n_threads < 1 || n_threads > 16 || n_children < 1 || n_children > 1000 || fresh_threads < 0 ||
      fresh_threads > 16)
    return 2;

  int init_rc = polytel_init_full_telemetry(NULL, NULL);
  pthread_t th[16];
  for (int t = 0; t < n_threads; t++) pthread_create(&th[t], NULL, emit, (void *)(intptr_t)t);

  pid_t pids[1000];
  int forked_mid_stream = 0, failed = 0, fresh_total = 0;
  /*
   * The first fork too lands mid-stream: on a loaded machine the threads may not have run yet. Every thread
   * has started: a fork while a thread is still being created may leave the child a lock of the sanitizer's
   * allocator that thread held (ASan before LLVM 18 has no fork handlers) — that would test the runtime, not
   * polytel.
   */
  while (atomic_load(&started) < n_threads) sleep_us(1000);
  for (int c = 0; c < n_children; c++) {
    sleep_us(2000);
    pthread_t fth[16];
    fresh_arg_t fa[16];
    int nf = 0;
    atomic_store(&fresh_ready, 0);
    atomic_store(&fresh_go, 0);
    atomic_store(&fresh_forked, 0);
    for (int k = 0; k < fresh_threads; k++) {
      fa[nf] = (fresh_arg_t){c, k};
      if (pthread_create(&fth[nf], NULL, fresh, &fa[nf]) == 0) nf++;
    }
    while (atomic_load(&fresh_ready) < nf) sched_yield();
    int before = atomic_load(&progress);
    fflush(stdout);
    atomic_store(&fresh_go, 1);
    pid_t p = fork();
    if (p == 0) child_main(c);
    pids[c] = p;
    atomic_store(&fresh_forked, 1);
    for (int k = 0; k < nf; k++) pthread_join(fth[k], NULL);
    fresh_total += nf;
    /* Mid-stream: the threads emitted before this fork and keep emitting (storm_over is still 0). */
    forked_mid_stream += p > 0 && before > 0;
  }
  atomic_store(&storm_over, 1);
  for (int c = 0; c < n_children; c++) {
    int status = 0;
    if (pids[c] < 0 || waitpid(pids[c], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failed++;
  }
  for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
  int rc = polytel_shutdown(shutdown_ms);
  printf("FORKS {\"children\": %d, \"forked_mid_stream\": %d, \"failed\": %d, \"fresh\": %d, \"emitted\": [",
         n_children, forked_mid_stream, failed, fresh_total);
  for (int t = 0; t < n_threads; t++) printf("%s%d", t ? ", " : "", emitted[t]);
  printf("]}\n");
  print_stats("PARENT", -1, init_rc, rc, "full");
  return 0;
}
