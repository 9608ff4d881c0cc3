/* bench_export.c — export cost: spans/s per export path, and exporter CPU at 100k events/s beside idle. */
#define _GNU_SOURCE /* memmem */
#include <polytel.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * bench_export [--spans N] [--receiver-spans N] [--seconds S] [--rate EV_PER_S]
 * OTEL_EXPORTER_OTLP_ENDPOINT (the test receiver, started by bench_export.py)
 * adds the "test receiver" rows. A forked minimal HTTP sink (answers 200,
 * decodes nothing) stands for a fast collector, so the CPU figures measure
 * polytel, not the receiver.
 */

static long n_spans = 300000, n_receiver_spans = 50000, rate = 100000;
static double seconds = 3.0;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------ a fast sink, in a child */

static void sink_serve(int lfd) {
  struct pollfd p[64];
  static char buf[64][65536];
  static size_t len[64];
  int n = 1;
  p[0] = (struct pollfd){lfd, POLLIN, 0};
  for (;;) {
    if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR) _exit(1);
    for (int i = n - 1; i >= 1; i--) {
      if (!p[i].revents) continue;
      ssize_t r = read(p[i].fd, buf[i] + len[i], sizeof buf[i] - len[i]);
      if (r <= 0) {
        close(p[i].fd);
        p[i] = p[n - 1];
        memcpy(buf[i], buf[n - 1], len[n - 1]);
        len[i] = len[n - 1];
        n--;
        continue;
      }
      len[i] += (size_t)r;
      for (;;) { /* answer every complete request in the buffer */
        char *end = memmem(buf[i], len[i], "\r\n\r\n", 4);
        if (!end) break;
        size_t head = (size_t)(end - buf[i]) + 4, clen = 0;
        char *cl = memmem(buf[i], head, "Content-Length:", 15);
        if (!cl) cl = memmem(buf[i], head, "content-length:", 15);
        if (cl) clen = strtoul(cl + 15, NULL, 10);
        if (len[i] < head + clen) {
          if (head + clen > sizeof buf[i]) { /* bigger than the buffer: skip the body as it streams */
            size_t skip = len[i] - head;
            len[i] = 0;
            while (skip < clen) {
              char tmp[65536];
              ssize_t k = read(p[i].fd, tmp, clen - skip < sizeof tmp ? clen - skip : sizeof tmp);
              if (k <= 0) break;
              skip += (size_t)k;
            }
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if (write(p[i].fd, ok, sizeof ok - 1) < 0) break;
          }
          break;
        }
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (write(p[i].fd, ok, sizeof ok - 1) < 0) break;
        memmove(buf[i], buf[i] + head + clen, len[i] - head - clen);
        len[i] -= head + clen;
      }
    }
    if (p[0].revents && n < 64) {
      int fd = accept(lfd, NULL, NULL);
      if (fd >= 0) {
        p[n] = (struct pollfd){fd, POLLIN, 0};
        len[n] = 0;
        n++;
      }
    }
  }
}

static pid_t start_sink(char *endpoint, size_t cap) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0) return -1;
  getsockname(lfd, (struct sockaddr *)&a, &al);
  snprintf(endpoint, cap, "http://127.0.0.1:%d", ntohs(a.sin_port));
  pid_t pid = fork();
  if (pid == 0) sink_serve(lfd);
  close(lfd);
  return pid;
}

/* ------------------------------------------------------------- scenarios */

typedef struct {
  const char *label;
  int exporter;
  const char *endpoint;
  int json;
} path_t;

static int start(const path_t *p, const char *dir) {
  polytel_config_t c;
  polytel_config_init(&c);
  c.telemetry_enabled = 1;
  c.console = POLYTEL_CONSOLE_OFF;
  c.service_name = "bench";
  c.exporter = p->exporter;
  c.endpoint = p->endpoint;
  c.export_dir = dir;
  c.protocol = p->json ? POLYTEL_PROTOCOL_JSON : POLYTEL_PROTOCOL_PROTOBUF;
  return polytel_init_full_telemetry(NULL, &c);
}

typedef struct {
  long events;       /* to emit; <0: paced by rate for `seconds` */
  double emit_cpu_s; /* the emitting thread's own CPU */
  long emitted;
} emit_t;

/* Closed loop: keeps at most ~100k events buffered so the figure is what the path sustains, not what it
 * drops. */
static void *emit_max(void *arg) {
  emit_t *e = arg;
  polytel_stats_t st;
  for (long i = 0; i < e->events; i++) {
    polytel_span_begin("bench.span");
    polytel_span_end();
    if ((i & 1023) == 1023) {
      polytel_stats(&st);
      while (st.pending > 100000) {
        usleep(200);
        polytel_stats(&st);
      }
    }
  }
  e->emitted = e->events;
  e->emit_cpu_s = cpu_s(CLOCK_THREAD_CPUTIME_ID);
  return NULL;
}

/* Open loop: `rate` events/s in 1 ms steps, half spans, half logs. */
static void *emit_paced(void *arg) {
  emit_t *e = arg;
  long per_ms = rate / 1000;
  long steps = (long)(seconds * 1000);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long s = 0; s < steps; s++) {
    for (long i = 0; i < per_ms; i += 2) {
      polytel_span_begin("bench.span");
      polytel_span_end();
      polytel_log(POLYTEL_LEVEL_INFO, "bench", "event %ld", i);
    }
    e->emitted += per_ms;
    next.tv_nsec += 1000000;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_sec++;
      next.tv_nsec -= 1000000000L;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  e->emit_cpu_s = cpu_s(CLOCK_THREAD_CPUTIME_ID);
  return NULL;
}

static void throughput_row(const path_t *p, long spans, const char *dir) {
  if (start(p, dir) != 0) {
    printf("| %-44s | %9s | %8s | %12s | %9s |\n", p->label, "-", "-", "init failed", "-");
    return;
  }
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  emit_t e = {.events = spans};
  double t0 = now_s();
  pthread_t th;
  pthread_create(&th, NULL, emit_max, &e);
  pthread_join(th, NULL);
  int rc = polytel_shutdown(60000);
  double dt = now_s() - t0;
  polytel_stats(&s1);
  uint64_t exported = s1.exported - s0.exported, dropped = s1.dropped - s0.dropped;
  printf("| %-44s | %9ld | %8.2f | %12.0f | %9llu |%s\n", p->label, spans, dt, (double)exported / dt,
         (unsigned long long)dropped, rc ? " (shutdown timed out)" : "");
}

static void cpu_row(const char *label, const path_t *p, int paced) {
  if (start(p, NULL) != 0) return;
  polytel_stats_t s0, s1;
  polytel_stats(&s0);
  emit_t e = {0};
  double w0 = now_s(), c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  pthread_t th;
  if (paced) {
    pthread_create(&th, NULL, emit_paced, &e);
    pthread_join(th, NULL);
  } else {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
  }
  double wall = now_s() - w0, cpu = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  polytel_shutdown(10000);
  polytel_stats(&s1);
  /* Everything but the emitting thread: the loop thread (pipeline, encoding, gzip, curl) and curl's helpers.
   */
  double exporter = cpu - e.emit_cpu_s;
  printf("| %-42s | %9.0f | %13.1f %% | %12.1f %% | %9llu | %8llu |\n", label, (double)e.emitted / wall,
         100.0 * exporter / wall, 100.0 * e.emit_cpu_s / wall,
         (unsigned long long)(s1.exported - s0.exported), (unsigned long long)(s1.dropped - s0.dropped));
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--spans"))
      n_spans = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--receiver-spans"))
      n_receiver_spans = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate"))
      rate = atol(argv[i + 1]);
  }
  signal(SIGPIPE, SIG_IGN);
  char sink[64];
  pid_t sink_pid = start_sink(sink, sizeof sink);
  if (sink_pid < 0) return 1;
  const char *receiver = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  char dir[] = "/tmp/polytel-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;

  printf("\nEnd-to-end export throughput (one emitting thread, closed loop; spans/s delivered)\n\n");
  printf("| %-44s | %9s | %8s | %12s | %9s |\n", "export path", "spans", "seconds", "spans/s", "dropped");
  printf("|%s|%s|%s|%s|%s|\n", "----------------------------------------------", "-----------", "----------",
         "--------------", "-----------");
  path_t none = {"baseline: none exporter (pipeline, no I/O)", POLYTEL_EXPORTER_NONE, NULL, 0};
  path_t file = {"file exporter (OTLP/JSON lines)", POLYTEL_EXPORTER_FILE, NULL, 0};
  path_t pb = {"OTLP/HTTP protobuf -> fast C sink", POLYTEL_EXPORTER_OTLP, sink, 0};
  path_t js = {"OTLP/HTTP JSON -> fast C sink", POLYTEL_EXPORTER_OTLP, sink, 1};
  throughput_row(&none, n_spans, NULL);
  throughput_row(&file, n_spans, dir);
  throughput_row(&pb, n_spans, NULL);
  throughput_row(&js, n_spans, NULL);
  if (receiver && *receiver) {
    path_t rp = {"OTLP/HTTP protobuf -> test receiver (Python)", POLYTEL_EXPORTER_OTLP, receiver, 0};
    throughput_row(&rp, n_receiver_spans, NULL);
  }

  printf("\nExporter CPU at %ld events/s (half spans, half logs; %.0f s; %% of one core)\n\n", rate, seconds);
  printf("| %-42s | %9s | %15s | %14s | %9s | %8s |\n", "scenario", "events/s", "exporter CPU", "emitter CPU",
         "exported", "dropped");
  printf("|%s|%s|%s|%s|%s|%s|\n", "--------------------------------------------", "-----------",
         "-----------------", "----------------", "-----------", "----------");
  cpu_row("idle baseline: phase 2 on, no events", &pb, 0);
  cpu_row("OTLP/HTTP protobuf -> fast C sink", &pb, 1);
  cpu_row("none exporter (no encoding, no I/O)", &none, 1);
  printf("\n");

  kill(sink_pid, SIGKILL);
  waitpid(sink_pid, NULL, 0);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
