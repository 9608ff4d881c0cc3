/* counter_shutdown.c — threads add to a dynamic counter and log; shutdown must export the exact total. */
#include <polytel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define THREADS 4
#define PER_THREAD 1000

static atomic_int done;

static void *work(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    polytel_attr_t a = POLYTEL_ATTR_STR("kind", "job");
    polytel_counter_add("shutdown.counter", "{job}", 1, &a, 1);
    polytel_log_attrs(POLYTEL_LEVEL_INFO, "worker", "job", 3, NULL, 0, NULL);
  }
  atomic_fetch_add(&done, 1);
  pause(); /* stays alive, like a runtime that keeps finished native threads around */
  return NULL;
}

int main(void) {
  if (polytel_init_full_telemetry(NULL, NULL) != 0) return 2;
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    pthread_create(&t[i], NULL, work, NULL);
    pthread_detach(t[i]);
  }
  while (atomic_load(&done) < THREADS) usleep(1000);
  int rc = polytel_shutdown(5000);
  polytel_stats_t st;
  polytel_stats(&st);
  printf("{\"rc\": %d, \"recorded\": %llu, \"exported\": %llu}\n", rc, (unsigned long long)st.recorded,
         (unsigned long long)st.exported);
  return 0;
}
