/* test_transport.c — the libuv/libcurl transport and file exporter against a real local HTTP server, driven
 * by a scripted pipeline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/console.h"
#include "common/retry_after.h"
#include "transport/uv.h"

/*
 * The libuv transports as the library has them, driven through their function tables with a scripted
 * pipeline (its own polytel__pipeline_api_t), so the test asserts on exactly what a transport reports
 * (status, Retry-After) whatever the library's pipeline would do. Diagnostics come back through the
 * console's writer hook.
 */
static const polytel__pipeline_api_t tpt_api;
/* Waker threads read it while a test starts the next transport. */
static _Atomic(const polytel__transport_t *) tpt_current = &polytel__transport_none;

static const polytel__transport_t *tpt_for(int exporter) {
  return exporter == POLYTEL_EXPORTER_FILE   ? &polytel__transport_file
         : exporter == POLYTEL_EXPORTER_NONE ? &polytel__transport_none
                                             : &polytel__transport_otlp;
}

static int tpt_start(uv_loop_t *loop, polytel__pipeline_t *pl, const polytel__cfg_t *cfg) {
  atomic_store(&tpt_current, tpt_for(cfg->exporter));
  const polytel__transport_t *t = atomic_load(&tpt_current);
  return t->start(t, loop, pl, &tpt_api, cfg);
}
static void tpt_wake(void) {
  atomic_load(&tpt_current)->wake();
}
static int tpt_flush(uint32_t timeout_ms) {
  return atomic_load(&tpt_current)->flush(timeout_ms);
}
static int tpt_stop(uint32_t timeout_ms) {
  return atomic_load(&tpt_current)->stop(timeout_ms);
}
static void tpt_atfork_prepare(void) {
  atomic_load(&tpt_current)->atfork_prepare();
}
static void tpt_atfork_parent(void) {
  atomic_load(&tpt_current)->atfork_parent();
}
static void tpt_atfork_child(void) {
  atomic_load(&tpt_current)->atfork_child();
}

#if defined(__SANITIZE_THREAD__)
#define TPT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TPT_TSAN 1
#endif
#endif

/* ------------------------------------------------------------ diagnostics */

static pthread_mutex_t diag_mu = PTHREAD_MUTEX_INITIALIZER;
static int diag_count;
static char diag_all[8192];

/* The console's writer hook: every line polytel prints, as printed. */
static void tpt_diag(int level, const char *text, size_t len) {
  char line[1024];
  snprintf(line, sizeof line, "%.*s", (int)len, text);
  (void)level;
  pthread_mutex_lock(&diag_mu);
  diag_count++;
  size_t used = strlen(diag_all);
  snprintf(diag_all + used, sizeof diag_all - used, "%s\n", line);
  pthread_mutex_unlock(&diag_mu);
}

static void diag_reset(void) {
  pthread_mutex_lock(&diag_mu);
  diag_count = 0;
  diag_all[0] = '\0';
  pthread_mutex_unlock(&diag_mu);
}

static int diag_n(void) {
  pthread_mutex_lock(&diag_mu);
  int n = diag_count;
  pthread_mutex_unlock(&diag_mu);
  return n;
}

/* ------------------------------------------------------- scripted pipeline */

typedef struct treq_s {
  polytel__request_t req; /* first: the transport hands this pointer back */
  char url[160];
  char body[256];
  int status;
  int64_t retry_after;
  polytel__net_class_t net;
  int sent;
  char resp_body[256]; /* what the transport kept of the answer */
  size_t resp_len;
  char resp_ctype[64];
  int has_error;
  int n_done;
  int counted; /* adds to pending (logs/spans); 0 like a metrics request */
} treq_t;

struct polytel__pipeline_s {
  pthread_mutex_t mu;
  treq_t *queue[64];
  size_t q_head, q_len;
  uint32_t in_flight, max_in_flight;
  uint64_t pending; /* requests neither delivered nor failed */
  int forces, abandoned, freed;
};

static polytel__pipeline_t *stub_new(uint32_t max_in_flight) {
  polytel__pipeline_t *pl = calloc(1, sizeof *pl);
  pthread_mutex_init(&pl->mu, NULL);
  pl->max_in_flight = max_in_flight;
  return pl;
}

static void stub_delete(polytel__pipeline_t *pl) {
  pthread_mutex_destroy(&pl->mu);
  free(pl);
}

/* Any thread: what a drained block would become. */
static void stub_push(polytel__pipeline_t *pl, treq_t *r) {
  pthread_mutex_lock(&pl->mu);
  pl->queue[(pl->q_head + pl->q_len++) % 64] = r;
  pl->pending += (uint64_t)r->counted;
  pthread_mutex_unlock(&pl->mu);
}

static int stub_get(polytel__pipeline_t *pl, int *field) {
  pthread_mutex_lock(&pl->mu);
  int v = *field;
  pthread_mutex_unlock(&pl->mu);
  return v;
}

static void stub_free(polytel__pipeline_t *pl) {
  pthread_mutex_lock(&pl->mu);
  pl->freed++; /* the test owns the memory, to inspect it after stop */
  pthread_mutex_unlock(&pl->mu);
}

static uint32_t stub_pump(polytel__pipeline_t *pl, uint64_t now_ms) {
  (void)pl, (void)now_ms;
  return UINT32_MAX;
}

static void stub_force(polytel__pipeline_t *pl, uint64_t now_ms) {
  (void)now_ms;
  pthread_mutex_lock(&pl->mu);
  pl->forces++;
  pthread_mutex_unlock(&pl->mu);
}

static polytel__request_t *stub_next(polytel__pipeline_t *pl, uint64_t now_ms) {
  (void)now_ms;
  treq_t *r = NULL;
  pthread_mutex_lock(&pl->mu);
  if (pl->q_len && pl->in_flight < pl->max_in_flight) {
    r = pl->queue[pl->q_head];
    pl->q_head = (pl->q_head + 1) % 64;
    pl->q_len--;
    pl->in_flight++;
  }
  pthread_mutex_unlock(&pl->mu);
  return r ? &r->req : NULL;
}

static polytel__done_t stub_done(polytel__pipeline_t *pl, polytel__request_t *req,
                                 const polytel__response_t *resp, uint64_t now_ms) {
  (void)now_ms;
  treq_t *r = (treq_t *)req;
  pthread_mutex_lock(&pl->mu);
  r->status = resp->net == POLYTEL__NET_OK ? resp->status : 0;
  r->retry_after = resp->retry_after_ms;
  r->net = resp->net;
  r->sent = resp->sent;
  r->resp_len = resp->body_len;
  if (resp->body_len) memcpy(r->resp_body, resp->body, resp->body_len < 256 ? resp->body_len : 256);
  snprintf(r->resp_ctype, sizeof r->resp_ctype, "%s", resp->content_type ? resp->content_type : "");
  r->has_error = resp->error && *resp->error;
  r->n_done++;
  pl->in_flight--;
  pl->pending -= (uint64_t)r->counted;
  pthread_mutex_unlock(&pl->mu);
  return POLYTEL__DONE_EXPORTED;
}

static uint64_t stub_pending(const polytel__pipeline_t *cpl) {
  polytel__pipeline_t *pl = (polytel__pipeline_t *)cpl;
  pthread_mutex_lock(&pl->mu);
  uint64_t v = pl->pending;
  pthread_mutex_unlock(&pl->mu);
  return v;
}

static uint32_t stub_in_flight(const polytel__pipeline_t *cpl) {
  polytel__pipeline_t *pl = (polytel__pipeline_t *)cpl;
  pthread_mutex_lock(&pl->mu);
  uint32_t v = pl->in_flight;
  pthread_mutex_unlock(&pl->mu);
  return v;
}

static void stub_abandon(polytel__pipeline_t *pl) {
  pthread_mutex_lock(&pl->mu);
  pl->abandoned += (int)pl->q_len;
  for (; pl->q_len; pl->q_len--, pl->q_head = (pl->q_head + 1) % 64)
    pl->pending -= (uint64_t)pl->queue[pl->q_head]->counted;
  pthread_mutex_unlock(&pl->mu);
}

static const polytel__pipeline_api_t tpt_api = {
    stub_pump, stub_force, stub_next, stub_done, stub_pending, stub_in_flight, stub_abandon, stub_free, NULL};

static treq_t *mkreq(const char *base, const char *path, polytel__signal_t sig, const char *body,
                     const char *ctype, int gzip, uint32_t timeout_ms) {
  treq_t *r = calloc(1, sizeof *r);
  snprintf(r->url, sizeof r->url, "%s%s", base, path);
  snprintf(r->body, sizeof r->body, "%s", body);
  r->req.signal = sig;
  r->req.url = r->url;
  r->req.body = (const uint8_t *)r->body;
  r->req.body_len = strlen(r->body);
  r->req.content_type = ctype;
  r->req.gzip = gzip;
  r->req.timeout_ms = timeout_ms;
  r->status = -100;
  r->counted = 1;
  return r;
}

static int req_status(polytel__pipeline_t *pl, treq_t *r, int64_t *ra) {
  pthread_mutex_lock(&pl->mu);
  int s = r->status;
  if (ra) *ra = r->retry_after;
  pthread_mutex_unlock(&pl->mu);
  return s;
}

static polytel__cfg_t mkcfg(int exporter, const char *dir) {
  polytel__cfg_t c;
  memset(&c, 0, sizeof c);
  c.exporter = exporter;
  c.export_dir = (char *)dir;
  c.timeout_ms = 5000;
  return c;
}

/* ------------------------------------------------------ a tiny HTTP server */

enum { REPLY = 0, STALL = 1, CLOSE = 2 };

typedef struct {
  const char *path;
  int mode;
  int status;
  char extra[160];  /* extra header lines, each ending in \r\n */
  const char *body; /* NULL: "{}" */
} route_t;

typedef struct {
  char path[64];
  char head[2048];
  char body[512];
} seen_t;

typedef struct {
  int fd;
  char buf[8192];
  size_t len;
} conn_t;

typedef struct {
  int lfd, port, wake[2];
  pthread_t th;
  pthread_mutex_t mu;
  route_t routes[16];
  int n_routes;
  seen_t seen[64];
  int n_seen, n_conn;
  /* Heap, not the server thread's stack: stays reachable in a forked child (valgrind). */
  conn_t *conns[32];
  int stalled[32];
  char base[64];
} srv_t;

static const route_t *srv_route(srv_t *s, const char *path) {
  for (int i = 0; i < s->n_routes; i++)
    if (strcmp(s->routes[i].path, path) == 0) return &s->routes[i];
  return NULL;
}

/* Serves one complete request from c->buf if there is one; returns 0 to close the connection. */
static int srv_serve(srv_t *s, conn_t *c, int *stalled) {
  for (;;) {
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return 1;
    size_t head_len = (size_t)(end - c->buf) + 4;
    size_t clen = 0;
    for (char *p = c->buf; p < end; p = strstr(p, "\r\n") + 2) {
      if (strncasecmp(p, "content-length:", 15) == 0) clen = strtoul(p + 15, NULL, 10);
      if (!strstr(p, "\r\n")) break;
    }
    if (c->len < head_len + clen) return 1;
    char path[64] = "";
    sscanf(c->buf, "%*s %63s", path);
    pthread_mutex_lock(&s->mu);
    if (s->n_seen < 64) {
      seen_t *sn = &s->seen[s->n_seen++];
      snprintf(sn->path, sizeof sn->path, "%s", path);
      snprintf(sn->head, sizeof sn->head, "%.*s", (int)head_len, c->buf);
      snprintf(sn->body, sizeof sn->body, "%.*s", (int)clen, c->buf + head_len);
    }
    const route_t *rt = srv_route(s, path);
    route_t r = rt ? *rt : (route_t){path, REPLY, 200, "", NULL};
    pthread_mutex_unlock(&s->mu);
    memmove(c->buf, c->buf + head_len + clen, c->len - head_len - clen);
    c->len -= head_len + clen;
    if (r.mode == CLOSE) return 0;
    if (r.mode == STALL) {
      *stalled = 1;
      return 1;
    }
    char out[512];
    const char *body = r.body ? r.body : "{}";
    size_t blen = strlen(body);
    int n =
        snprintf(out, sizeof out, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", r.status, blen, r.extra);
    if (write(c->fd, out, (size_t)n) != n) return 0;
    for (size_t off = 0; off < blen;) {
      ssize_t w = write(c->fd, body + off, blen - off);
      if (w <= 0) return 0;
      off += (size_t)w;
    }
  }
}

static void *srv_main(void *arg) {
  srv_t *s = arg;
  conn_t **conns = s->conns;
  int *stalled = s->stalled;
  for (;;) {
    struct pollfd p[34];
    int n = 0, idx[32];
    p[n++] = (struct pollfd){s->wake[0], POLLIN, 0};
    p[n++] = (struct pollfd){s->lfd, POLLIN, 0};
    for (int i = 0; i < 32; i++)
      if (conns[i]) {
        idx[n - 2] = i;
        p[n++] = (struct pollfd){conns[i]->fd, POLLIN, 0};
      }
    if (poll(p, (nfds_t)n, -1) < 0) continue;
    if (p[0].revents) break;
    if (p[1].revents) {
      int fd = accept(s->lfd, NULL, NULL);
      for (int i = 0; fd >= 0 && i < 32; i++)
        if (!conns[i]) {
          conns[i] = calloc(1, sizeof(conn_t));
          conns[i]->fd = fd;
          stalled[i] = 0;
          pthread_mutex_lock(&s->mu);
          s->n_conn++;
          pthread_mutex_unlock(&s->mu);
          fd = -1;
        }
      if (fd >= 0) close(fd);
    }
    for (int k = 2; k < n; k++) {
      if (!p[k].revents) continue;
      int i = idx[k - 2];
      conn_t *c = conns[i];
      ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
      int keep = r > 0;
      if (keep) {
        c->len += (size_t)r;
        if (!stalled[i])
          keep = srv_serve(s, c, &stalled[i]);
        else
          c->len = 0;
      }
      if (!keep) {
        close(c->fd);
        free(c);
        conns[i] = NULL;
      }
    }
  }
  for (int i = 0; i < 32; i++)
    if (conns[i]) {
      close(conns[i]->fd);
      free(conns[i]);
    }
  return NULL;
}

static srv_t *srv_start(void) {
  srv_t *s = calloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->lfd, 64), 0);
  socklen_t al = sizeof a;
  getsockname(s->lfd, (struct sockaddr *)&a, &al);
  s->port = ntohs(a.sin_port);
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
  assert_int_equal(pipe(s->wake), 0);
  pthread_create(&s->th, NULL, srv_main, s);
  return s;
}

static void srv_add(srv_t *s, const char *path, int mode, int status, const char *extra) {
  pthread_mutex_lock(&s->mu);
  route_t *r = &s->routes[s->n_routes++];
  r->path = path;
  r->mode = mode;
  r->status = status;
  snprintf(r->extra, sizeof r->extra, "%s", extra ? extra : "");
  pthread_mutex_unlock(&s->mu);
}

static const seen_t *srv_find(srv_t *s, const char *path) {
  const seen_t *f = NULL;
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n_seen; i++)
    if (strcmp(s->seen[i].path, path) == 0) f = &s->seen[i];
  pthread_mutex_unlock(&s->mu);
  return f;
}

static void srv_stop(srv_t *s) {
  assert_int_equal(write(s->wake[1], "x", 1), 1);
  pthread_join(s->th, NULL);
  close(s->lfd);
  close(s->wake[0]);
  close(s->wake[1]);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static int has_header(const seen_t *sn, const char *line) {
  char needle[256];
  snprintf(needle, sizeof needle, "\r\n%s\r\n", line);
  return strcasestr(sn->head, needle) != NULL;
}

/* -------------------------------------------------------------------- tests */

static void test_retry_after_parsing(void **state) {
  (void)state;
#define RA(s, now) polytel__retry_after_parse((s), strlen(s), (now))
  /* libcurl's parser is the reference for the formats both accept */
  int64_t now = (int64_t)curl_getdate("Wed, 21 Oct 2015 07:28:00 GMT", NULL);
  assert_int_equal(now, 1445412480);
  assert_int_equal(RA("120", now), 120000);
  assert_int_equal(RA(" 5\r\n", now), 5000);
  assert_int_equal(RA("0", now), 0);
  assert_int_equal(RA("86401", now), 86400000);
  assert_int_equal(RA("99999999999999999999", now), 86400000);
  assert_int_equal(RA(" Wed, 21 Oct 2015 07:28:10 GMT\r\n", now), 10000);
  assert_int_equal(RA("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
  assert_int_equal(RA("Thu, 01 Jan 1970 00:00:00 GMT", now), 0);
  /* the other two formats RFC 9110 makes recipients accept */
  assert_int_equal(RA("Wednesday, 21-Oct-15 07:29:00 GMT", now), 60000);
  assert_int_equal(RA("Wed Oct 21 07:28:30 2015", now), 30000);
  assert_int_equal(RA("Wed Oct  1 07:28:30 2015", now), 0);
  /* a date a week ahead is clamped to a day */
  assert_int_equal(RA("Wed, 28 Oct 2015 07:28:00 GMT", now), 86400000);
  /* leap days; two-digit years more than 50 years ahead are in the past */
  int64_t leap_now = (int64_t)curl_getdate("Sat, 28 Feb 2004 23:59:00 GMT", NULL);
  assert_int_equal(RA("Sun, 29 Feb 2004 00:00:00 GMT", leap_now), 60000);
  assert_int_equal(RA("Sun, 30 Feb 2004 00:00:00 GMT", leap_now), -1);
  assert_int_equal(RA("Sunday, 29-Feb-04 00:00:30 GMT", leap_now), 90000);
  assert_int_equal(RA("Sunday, 29-Feb-60 00:00:30 GMT", leap_now), 0); /* 1960 */
  static const char *const bad[] = {"",
                                    "\r\n",
                                    "soon",
                                    "-5",
                                    "+5",
                                    "5s",
                                    "1.5",
                                    "Wed, 21 Oct 2015 07:28:10",
                                    "Wed, 21 Oct 2015 24:00:00 GMT",
                                    "Wed, 21 Foo 2015 07:28:10 GMT",
                                    "Wed, 1 Oct 2015 07:28:10 GMT",
                                    "Wed, 21 Oct 2015 07:28:10 GMT junk"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(polytel__retry_after_parse(bad[i], strlen(bad[i]), now), -1);
  assert_int_equal(polytel__retry_after_parse(NULL, 0, now), -1);
#undef RA
}

/* Bodies, headers, content types, gzip/zstd flag, user headers, keep-alive on the owned loop. */
static void test_owned_loop_posts(void **state) {
  (void)state;
  diag_reset();
  srv_t *s = srv_start();
  polytel__pipeline_t *pl = stub_new(8);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  polytel__strpair_t hdrs[2] = {{"x-api-key", "s3cret"}, {"x-bad", "a\r\nInjected: 1"}};
  cfg.headers = hdrs;
  cfg.n_headers = 2;
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  assert_int_equal(polytel__uv_running(), 1);
  assert_int_equal(tpt_start(NULL, pl, &cfg), POLYTEL_EALREADY);

  treq_t *r[6];
  char path[32], body[64];
  for (int i = 0; i < 6; i++) {
    snprintf(path, sizeof path, "/v1/t%d", i);
    snprintf(body, sizeof body, "body-%d-%s", i, i % 2 ? "json" : "pb");
    r[i] =
        mkreq(s->base, path, POLYTEL__SIG_TRACES, body, i % 2 ? "application/json" : "application/x-protobuf",
              i == 3   ? POLYTEL_COMPRESSION_GZIP
              : i == 5 ? POLYTEL_COMPRESSION_ZSTD
                       : 0,
              5000);
    stub_push(pl, r[i]);
  }
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(stub_get(pl, &pl->forces), 1);

  for (int i = 0; i < 6; i++) {
    snprintf(path, sizeof path, "/v1/t%d", i);
    const seen_t *sn = srv_find(s, path);
    assert_non_null(sn);
    assert_int_equal(strncmp(sn->head, "POST ", 5), 0);
    assert_string_equal(sn->body, r[i]->body);
    assert_true(
        has_header(sn, i % 2 ? "Content-Type: application/json" : "Content-Type: application/x-protobuf"));
    assert_int_equal(has_header(sn, "Content-Encoding: gzip"), i == 3);
    assert_int_equal(has_header(sn, "Content-Encoding: zstd"), i == 5);
    assert_true(has_header(sn, "x-api-key: s3cret"));
    assert_null(strcasestr(sn->head, "Injected"));
    assert_null(strcasestr(sn->head, "100-continue"));
    assert_int_equal(req_status(pl, r[i], NULL), 200);
  }
  pthread_mutex_lock(&s->mu);
  int n_conn = s->n_conn, n_seen = s->n_seen;
  pthread_mutex_unlock(&s->mu);
  assert_int_equal(n_seen, 6);
  assert_in_range(n_conn, 1, POLYTEL__HTTP_MAX_HOST_CONNECTIONS); /* six requests, connections reused */

  /* A second round reuses the same connections. */
  treq_t *again = mkreq(s->base, "/v1/again", POLYTEL__SIG_LOGS, "again", "application/x-protobuf", 0, 5000);
  stub_push(pl, again);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  pthread_mutex_lock(&s->mu);
  int n_conn2 = s->n_conn;
  pthread_mutex_unlock(&s->mu);
  assert_int_equal(n_conn2, n_conn);

  assert_int_equal(tpt_stop(2000), 0);
  assert_int_equal(polytel__uv_running(), 0);
  assert_int_equal(stub_get(pl, &pl->freed), 1);
  assert_int_equal(stub_get(pl, &pl->abandoned), 0);
  /* The bad header was reported by name, its value never printed. */
  assert_int_equal(diag_n(), 1);
  assert_non_null(strstr(diag_all, "x-bad"));
  assert_null(strstr(diag_all, "Injected"));
  assert_null(strstr(diag_all, "s3cret"));
  for (int i = 0; i < 6; i++) free(r[i]);
  free(again);
  stub_delete(pl);
  srv_stop(s);
}

/* A signal's own header list replaces the general one; framing headers never reach the wire. */
static void test_signal_headers(void **state) {
  (void)state;
  diag_reset();
  srv_t *s = srv_start();
  polytel__pipeline_t *pl = stub_new(8);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  polytel__strpair_t general[2] = {{"authorization", "general"}, {"Content-Length", "1"}};
  polytel__strpair_t logs[2] = {{"authorization", "logs"}, {"HOST", "evil.example"}};
  cfg.headers = general;
  cfg.n_headers = 2;
  cfg.signal_headers[POLYTEL__SIG_LOGS] = logs;
  cfg.n_signal_headers[POLYTEL__SIG_LOGS] = 2;
  cfg.has_signal_headers[POLYTEL__SIG_LOGS] = 1;
  cfg.has_signal_headers[POLYTEL__SIG_METRICS] = 1; /* set, and empty: no headers at all */
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *r[3];
  static const char *const paths[3] = {"/v1/traces", "/v1/logs", "/v1/metrics"};
  for (int i = 0; i < 3; i++) {
    r[i] = mkreq(s->base, paths[i], (polytel__signal_t)i, "0123456789", "application/x-protobuf", 0, 5000);
    stub_push(pl, r[i]);
  }
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  const seen_t *t = srv_find(s, "/v1/traces"), *l = srv_find(s, "/v1/logs"), *m = srv_find(s, "/v1/metrics");
  assert_non_null(t);
  assert_non_null(l);
  assert_non_null(m);
  assert_true(has_header(t, "authorization: general"));
  assert_true(has_header(l, "authorization: logs"));
  assert_null(strcasestr(m->head, "authorization"));
  for (int i = 0; i < 3; i++) {
    const seen_t *sn = srv_find(s, paths[i]);
    assert_string_equal(sn->body, "0123456789"); /* the whole body: no user Content-Length */
    assert_null(strstr(sn->head, "evil.example"));
    assert_null(strstr(sn->head, "Content-Length: 1\r"));
  }
  assert_int_equal(tpt_stop(2000), 0);
  /* each refused header named once, its value never */
  assert_int_equal(diag_n(), 2);
  assert_non_null(strstr(diag_all, "Content-Length"));
  assert_non_null(strstr(diag_all, "HOST"));
  assert_null(strstr(diag_all, "evil"));
  for (int i = 0; i < 3; i++) free(r[i]);
  stub_delete(pl);
  srv_stop(s);
}

static void test_status_and_retry_after(void **state) {
  (void)state;
  srv_t *s = srv_start();
  char date[128], extra[160];
  time_t later = time(NULL) + 30;
  struct tm tm;
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&later, &tm));
  snprintf(extra, sizeof extra, "Retry-After: %s\r\n", date);
  srv_add(s, "/503", REPLY, 503, "Retry-After: 7\r\n");
  srv_add(s, "/429", REPLY, 429, extra);
  srv_add(s, "/400", REPLY, 400, NULL);
  srv_add(s, "/502", REPLY, 502, "retry-after: later\r\n");
  srv_add(s, "/504", REPLY, 504, NULL);
  polytel__pipeline_t *pl = stub_new(8);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  const char *paths[] = {"/503", "/429", "/400", "/502", "/504"};
  treq_t *r[5];
  for (int i = 0; i < 5; i++) {
    r[i] = mkreq(s->base, paths[i], POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
    stub_push(pl, r[i]);
  }
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  int64_t ra;
  assert_int_equal(req_status(pl, r[0], &ra), 503);
  assert_int_equal(ra, 7000);
  assert_int_equal(req_status(pl, r[1], &ra), 429);
  assert_in_range(ra, 27000, 30000); /* an HTTP-date has one-second resolution */
  assert_int_equal(req_status(pl, r[2], &ra), 400);
  assert_int_equal(ra, -1);
  assert_int_equal(req_status(pl, r[3], &ra), 502);
  assert_int_equal(ra, -1);
  assert_int_equal(req_status(pl, r[4], &ra), 504);
  assert_int_equal(ra, -1);
  assert_int_equal(tpt_stop(2000), 0);
  for (int i = 0; i < 5; i++) free(r[i]);
  stub_delete(pl);
  srv_stop(s);
}

/*
 * What the pipeline needs of an answer: the body (bounded at 64 KiB, the rest
 * read and dropped), its Content-Type; of a timeout: whether the body went out.
 */
static void test_answer_body_and_timeout(void **state) {
  (void)state;
  srv_t *s = srv_start();
  static const char ps[] = "{\"partialSuccess\":{\"rejectedLogRecords\":\"2\",\"errorMessage\":\"bad\"}}";
  srv_add(s, "/ps", REPLY, 200, "Content-Type: application/json\r\n");
  size_t big_len = POLYTEL__RESPONSE_BODY_MAX + 40000;
  char *big = malloc(big_len + 1);
  memset(big, 'z', big_len);
  big[big_len] = '\0';
  srv_add(s, "/big", REPLY, 400, "Content-Type: text/plain\r\n");
  srv_add(s, "/slow", STALL, 0, NULL);
  pthread_mutex_lock(&s->mu);
  s->routes[0].body = ps;
  s->routes[1].body = big;
  pthread_mutex_unlock(&s->mu);
  polytel__pipeline_t *pl = stub_new(8);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *a = mkreq(s->base, "/ps", POLYTEL__SIG_LOGS, "x", "application/json", 0, 5000);
  treq_t *b = mkreq(s->base, "/big", POLYTEL__SIG_LOGS, "x", "application/json", 0, 5000);
  treq_t *c = mkreq(s->base, "/slow", POLYTEL__SIG_LOGS, "x", "application/json", 0, 300);
  stub_push(pl, a);
  stub_push(pl, b);
  stub_push(pl, c);
  tpt_wake();
  assert_int_equal(tpt_flush(20000), 0);
  assert_int_equal(req_status(pl, a, NULL), 200);
  assert_int_equal(a->net, POLYTEL__NET_OK);
  assert_int_equal(a->resp_len, strlen(ps));
  assert_memory_equal(a->resp_body, ps, strlen(ps));
  assert_string_equal(a->resp_ctype, "application/json");
  assert_int_equal(req_status(pl, b, NULL), 400);
  assert_int_equal(b->resp_len, POLYTEL__RESPONSE_BODY_MAX);
  assert_string_equal(b->resp_ctype, "text/plain");
  assert_int_equal(c->net, POLYTEL__NET_TIMEOUT);
  assert_int_equal(c->sent, 1); /* the stalled server never read it; the kernel took it */
  assert_true(c->has_error);
  assert_int_equal(tpt_stop(2000), 0);
  free(a);
  free(b);
  free(c);
  stub_delete(pl);
  srv_stop(s); /* before the body it serves goes */
  free(big);
}

/*
 * A port that refuses connections: bound and never listening, and left open until the test process exits. A
 * port closed right after it was picked can be handed to the next random-port server of a suite running
 * beside this one, which would then accept what this test means to be refused.
 */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&a, sizeof a);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  return ntohs(a.sin_port);
}

/* Connection refused: nothing sent, a transport error text; the pipeline (not the transport) warns. */
static void test_network_error(void **state) {
  (void)state;
  diag_reset();
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%d", closed_port());
  polytel__pipeline_t *pl = stub_new(1);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *r[3];
  for (int i = 0; i < 3; i++) {
    r[i] = mkreq(base, "/v1/logs", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
    stub_push(pl, r[i]);
  }
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  for (int i = 0; i < 3; i++) {
    int64_t ra;
    assert_int_equal(req_status(pl, r[i], &ra), 0);
    assert_int_equal(ra, -1);
    assert_int_equal(r[i]->net, POLYTEL__NET_CONNECT);
    assert_int_equal(r[i]->sent, 0);
    assert_true(r[i]->has_error);
  }
  assert_int_equal(diag_n(), 0);
  assert_int_equal(tpt_stop(1000), 0);
  for (int i = 0; i < 3; i++) free(r[i]);
  stub_delete(pl);
}

/*
 * A collector that accepts and never answers: flush and stop return
 * ETIMEDOUT; stop aborts the transfer (reported as a network failure) and
 * abandons what was queued behind it. The request timeout is far beyond the
 * ctest timeout, so returning at all proves stop is bounded by its own timeout.
 */
static void test_stalled_collector(void **state) {
  (void)state;
  srv_t *s = srv_start();
  srv_add(s, "/stall", STALL, 0, NULL);
  polytel__pipeline_t *pl = stub_new(1);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *a = mkreq(s->base, "/stall", POLYTEL__SIG_TRACES, "a", "application/x-protobuf", 0, 600000);
  treq_t *b = mkreq(s->base, "/stall", POLYTEL__SIG_TRACES, "b", "application/x-protobuf", 0, 600000);
  stub_push(pl, a);
  stub_push(pl, b);
  tpt_wake();
  assert_int_equal(tpt_flush(200), POLYTEL_ETIMEDOUT);
  assert_int_equal(tpt_stop(200), POLYTEL_ETIMEDOUT);
  assert_int_equal(polytel__uv_running(), 0);
  assert_int_equal(req_status(pl, a, NULL), 0);
  assert_int_equal(a->n_done, 1);
  /* Cancelled at the deadline after its body went out: the pipeline will count it unconfirmed. */
  assert_int_equal(a->net, POLYTEL__NET_ABORTED);
  assert_int_equal(a->sent, 1);
  assert_int_equal(b->n_done, 0);
  assert_int_equal(stub_get(pl, &pl->abandoned), 1);
  assert_int_equal(stub_get(pl, &pl->freed), 1);
  assert_int_equal(stub_pending(pl), 0);
  free(a);
  free(b);
  stub_delete(pl);
  srv_stop(s);
}

/*
 * Flush waits for what is pending, not for every request in flight (under
 * load there always is one); stop also waits for in-flight requests (a
 * metrics request carries no pending count) and reports them undelivered.
 */
static void test_flush_vs_stop_in_flight(void **state) {
  (void)state;
  srv_t *s = srv_start();
  srv_add(s, "/v1/metrics", STALL, 0, NULL);
  polytel__pipeline_t *pl = stub_new(4);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *m = mkreq(s->base, "/v1/metrics", POLYTEL__SIG_METRICS, "m", "application/x-protobuf", 0, 600000);
  m->counted = 0;
  treq_t *l = mkreq(s->base, "/v1/logs", POLYTEL__SIG_LOGS, "l", "application/x-protobuf", 0, 5000);
  stub_push(pl, m);
  stub_push(pl, l);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(req_status(pl, l, NULL), 200);
  assert_int_equal(stub_in_flight(pl), 1);
  assert_int_equal(tpt_stop(200), POLYTEL_ETIMEDOUT);
  assert_int_equal(m->n_done, 1);
  assert_int_equal(m->status, 0);
  assert_int_equal(m->net, POLYTEL__NET_ABORTED);
  free(m);
  free(l);
  stub_delete(pl);
  srv_stop(s);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void test_file_exporter(void **state) {
  (void)state;
  diag_reset();
  char root[] = "/tmp/polytel-tt-XXXXXX";
  assert_non_null(mkdtemp(root));
  char dir[128], path[192];
  snprintf(dir, sizeof dir, "%s/a/b", root); /* created, parents included */
  polytel__pipeline_t *pl = stub_new(4);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_FILE, dir);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *r[4] = {
      mkreq("", "", POLYTEL__SIG_TRACES, "{\"resourceSpans\":[]}", "application/json", 0, 0),
      mkreq("", "", POLYTEL__SIG_LOGS, "{\"l\":1}", "application/json", 0, 0),
      mkreq("", "", POLYTEL__SIG_LOGS, "{\"l\":2}", "application/json", 0, 0),
      mkreq("", "", POLYTEL__SIG_METRICS, "{\"m\":1}", "application/json", 0, 0),
  };
  for (int i = 0; i < 4; i++) stub_push(pl, r[i]);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(tpt_stop(1000), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(r[i]->status, 200);
  snprintf(path, sizeof path, "%s/traces.jsonl", dir);
  assert_string_equal(slurp(path), "{\"resourceSpans\":[]}\n");
  snprintf(path, sizeof path, "%s/logs.jsonl", dir);
  assert_string_equal(slurp(path), "{\"l\":1}\n{\"l\":2}\n");
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  assert_string_equal(slurp(path), "{\"m\":1}\n");
  assert_int_equal(diag_n(), 0);
  for (int i = 0; i < 4; i++) free(r[i]);
  stub_delete(pl);

  /* Appends across restarts; an unwritable directory fails each batch as 500 with one warning. */
  pl = stub_new(4);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *more = mkreq("", "", POLYTEL__SIG_LOGS, "{\"l\":3}", "application/json", 0, 0);
  stub_push(pl, more);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(tpt_stop(1000), 0);
  snprintf(path, sizeof path, "%s/logs.jsonl", dir);
  assert_string_equal(slurp(path), "{\"l\":1}\n{\"l\":2}\n{\"l\":3}\n");
  free(more);
  stub_delete(pl);

  snprintf(path, sizeof path, "%s/logs.jsonl", dir); /* a file where a directory is expected */
  pl = stub_new(4);
  cfg = mkcfg(POLYTEL_EXPORTER_FILE, path);
  diag_reset();
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *bad[2] = {mkreq("", "", POLYTEL__SIG_LOGS, "{}", "application/json", 0, 0),
                    mkreq("", "", POLYTEL__SIG_TRACES, "{}", "application/json", 0, 0)};
  stub_push(pl, bad[0]);
  stub_push(pl, bad[1]);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(tpt_stop(1000), 0);
  assert_int_equal(bad[0]->status, 500);
  assert_int_equal(bad[1]->status, 500);
  assert_int_equal(diag_n(), 2); /* one at start (cannot create), one rate-limited for the writes */
  free(bad[0]);
  free(bad[1]);
  stub_delete(pl);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  assert_int_equal(system(cmd), 0);
}

static void test_none_exporter(void **state) {
  (void)state;
  polytel__pipeline_t *pl = stub_new(4);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_NONE, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *r = mkreq("http://127.0.0.1:1", "/never", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 0);
  stub_push(pl, r);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(tpt_stop(1000), 0);
  assert_int_equal(r->status, 200);
  free(r);
  stub_delete(pl);
}

/* Host loop, flush and stop on the loop's own thread: the transport drives curl itself. */
static void test_host_loop_same_thread(void **state) {
  (void)state;
  srv_t *s = srv_start();
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  polytel__pipeline_t *pl = stub_new(4);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(&loop, pl, &cfg), 0);
  /* polytel's handles do not keep the host's loop alive. */
  assert_int_equal(uv_loop_alive(&loop), 0);
  treq_t *r[3];
  for (int i = 0; i < 3; i++) {
    r[i] =
        mkreq(s->base, i == 1 ? "/v1/b" : "/v1/a", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
    stub_push(pl, r[i]);
  }
  assert_int_equal(tpt_flush(10000), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(r[i]->status, 200);
  assert_non_null(srv_find(s, "/v1/b"));
  treq_t *last = mkreq(s->base, "/v1/last", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
  stub_push(pl, last);
  assert_int_equal(tpt_stop(10000), 0); /* stop flushes first */
  assert_int_equal(last->status, 200);
  assert_int_equal(stub_get(pl, &pl->freed), 1);
  uv_run(&loop, UV_RUN_DEFAULT); /* lets the closed handles finish */
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int i = 0; i < 3; i++) free(r[i]);
  free(last);
  stub_delete(pl);
  srv_stop(s);
}

typedef struct {
  uv_loop_t loop;
  uv_async_t quit; /* the host's own handle, keeps its loop running */
  uv_timer_t boot;
  polytel__pipeline_t *pl;
  polytel__cfg_t cfg;
  int start_rc, close_rc;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started;
} host_t;

static void host_boot(uv_timer_t *t) {
  host_t *h = t->data;
  int rc = tpt_start(&h->loop, h->pl, &h->cfg);
  pthread_mutex_lock(&h->mu);
  h->start_rc = rc;
  h->started = 1;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  uv_close((uv_handle_t *)t, NULL);
}

static void host_quit(uv_async_t *a) {
  uv_close((uv_handle_t *)a, NULL);
}

static void *host_main(void *arg) {
  host_t *h = arg;
  uv_run(&h->loop, UV_RUN_DEFAULT);
  h->close_rc = uv_loop_close(&h->loop);
  return NULL;
}

/* Host loop running on its own thread; the app thread wakes, flushes and stops it from outside. */
static void test_host_loop_other_thread(void **state) {
  (void)state;
  srv_t *s = srv_start();
  host_t h;
  memset(&h, 0, sizeof h);
  pthread_mutex_init(&h.mu, NULL);
  pthread_cond_init(&h.cv, NULL);
  h.pl = stub_new(4);
  h.cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(uv_loop_init(&h.loop), 0);
  uv_async_init(&h.loop, &h.quit, host_quit);
  uv_timer_init(&h.loop, &h.boot);
  h.boot.data = &h;
  uv_timer_start(&h.boot, host_boot, 0, 0);
  pthread_t th;
  pthread_create(&th, NULL, host_main, &h);
  pthread_mutex_lock(&h.mu);
  while (!h.started) pthread_cond_wait(&h.cv, &h.mu);
  pthread_mutex_unlock(&h.mu);
  assert_int_equal(h.start_rc, 0);

  treq_t *r[4];
  for (int i = 0; i < 4; i++) {
    r[i] = mkreq(s->base, "/v1/traces", POLYTEL__SIG_TRACES, "x", "application/x-protobuf", 0, 5000);
    stub_push(h.pl, r[i]);
    tpt_wake();
  }
  assert_int_equal(tpt_flush(10000), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(req_status(h.pl, r[i], NULL), 200);
  assert_int_equal(tpt_stop(2000), 0);
  assert_int_equal(stub_get(h.pl, &h.pl->freed), 1);
  uv_async_send(&h.quit);
  pthread_join(th, NULL);
  assert_int_equal(h.close_rc, 0); /* every polytel handle was closed */
  pthread_mutex_lock(&s->mu);
  assert_int_equal(s->n_seen, 4);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < 4; i++) free(r[i]);
  stub_delete(h.pl);
  pthread_mutex_destroy(&h.mu);
  pthread_cond_destroy(&h.cv);
  srv_stop(s);
}

typedef struct {
  uint32_t timeout;
  int rc;
} stopper_t;

static void host_timer_done(uv_timer_t *t) {
  uv_close((uv_handle_t *)t, NULL);
}

static void *stopper_main(void *arg) {
  stopper_t *st = arg;
  st->rc = tpt_stop(st->timeout);
  return NULL;
}

/*
 * A host loop that is not running when another thread stops the transport:
 * stop gives up after its grace period instead of hanging, and the teardown
 * happens when the host runs its loop again.
 */
static void test_host_loop_not_running(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  polytel__pipeline_t *pl = stub_new(1);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_NONE, NULL);
  assert_int_equal(tpt_start(&loop, pl, &cfg), 0);
  treq_t *r = mkreq("", "", POLYTEL__SIG_LOGS, "x", "application/json", 0, 0);
  stub_push(pl, r);
  stopper_t st = {100, 1};
  pthread_t th;
  pthread_create(&th, NULL, stopper_main, &st);
  pthread_join(th, NULL);
  assert_int_equal(st.rc, POLYTEL_ETIMEDOUT);
  assert_int_equal(polytel__uv_running(), 0);
  assert_int_equal(stub_get(pl, &pl->freed), 0); /* nothing touched the loop's objects off its thread */
  /* The host resumes with work of its own (polytel's handles alone never keep a loop running). */
  uv_timer_t own;
  uv_timer_init(&loop, &own);
  uv_timer_start(&own, host_timer_done, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(stub_get(pl, &pl->freed), 1);
  assert_int_equal(stub_get(pl, &pl->abandoned), 1);
  assert_int_equal(r->n_done, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(r);
  stub_delete(pl);
}

static atomic_int wakers_stop;
static atomic_long wakes;

static void *waker_main(void *arg) {
  (void)arg;
  while (!atomic_load(&wakers_stop)) {
    tpt_wake();
    atomic_fetch_add(&wakes, 1);
  }
  return NULL;
}

/* wake() from four threads while the transport starts and stops repeatedly (run under TSan too). */
static void test_wake_during_start_stop(void **state) {
  (void)state;
  pthread_t th[4];
  atomic_store(&wakers_stop, 0);
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, waker_main, NULL);
  for (int cycle = 0; cycle < 5; cycle++) {
    polytel__pipeline_t *pl = stub_new(4);
    polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_NONE, NULL);
    assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
    treq_t *r[3];
    for (int i = 0; i < 3; i++) {
      r[i] = mkreq("", "", POLYTEL__SIG_LOGS, "x", "application/json", 0, 0);
      stub_push(pl, r[i]);
    }
    assert_int_equal(tpt_flush(10000), 0);
    assert_int_equal(tpt_stop(1000), 0);
    for (int i = 0; i < 3; i++) {
      assert_int_equal(r[i]->n_done, 1);
      free(r[i]);
    }
    stub_delete(pl);
  }
  atomic_store(&wakers_stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  assert_true(atomic_load(&wakes) > 0);
  assert_int_equal(polytel__uv_running(), 0);
}

/*
 * fork(): prepare parks the loop thread, the child forgets the parent's
 * transport and starts its own, the parent carries on.
 */
static void test_fork(void **state) {
  (void)state;
  srv_t *s = srv_start();
  polytel__pipeline_t *pl = stub_new(4);
  polytel__cfg_t cfg = mkcfg(POLYTEL_EXPORTER_OTLP, NULL);
  assert_int_equal(tpt_start(NULL, pl, &cfg), 0);
  treq_t *before =
      mkreq(s->base, "/parent/before", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
  stub_push(pl, before);
  assert_int_equal(tpt_flush(10000), 0); /* a live keep-alive connection exists across the fork */

  tpt_atfork_prepare();
  int parked = polytel__uv_parked();
  pid_t pid = fork();
  if (pid == 0) {
    tpt_atfork_child();
    int ok = polytel__uv_running() == 0;
    polytel__pipeline_t *cpl = stub_new(4);
    treq_t *cr = mkreq(s->base, "/child", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
#ifdef TPT_TSAN
    /* TSan cannot start threads after a multi-threaded fork: use a host loop in the child. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    ok = ok && tpt_start(&loop, cpl, &cfg) == 0;
#else
    ok = ok && tpt_start(NULL, cpl, &cfg) == 0;
#endif
    stub_push(cpl, cr);
    tpt_wake();
    ok = ok && tpt_flush(10000) == 0 && cr->status == 200;
    ok = ok && tpt_stop(1000) == 0;
    free(cr);
    stub_delete(cpl);
#ifdef TPT_TSAN
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
#endif
    _exit(ok ? 0 : 1);
  }
  tpt_atfork_parent();
  assert_true(pid > 0);
  assert_int_equal(parked, 1);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_non_null(srv_find(s, "/child"));

  treq_t *after = mkreq(s->base, "/parent/after", POLYTEL__SIG_LOGS, "x", "application/x-protobuf", 0, 5000);
  stub_push(pl, after);
  tpt_wake();
  assert_int_equal(tpt_flush(10000), 0);
  assert_int_equal(req_status(pl, after, NULL), 200);
  assert_int_equal(tpt_stop(1000), 0);
  pthread_mutex_lock(&s->mu);
  assert_int_equal(s->n_seen, 3);
  pthread_mutex_unlock(&s->mu);
  free(before);
  free(after);
  stub_delete(pl);
  srv_stop(s);
}

/* A failed assertion must not leave a transport running into the next test. */
static int stop_leftover(void **state) {
  (void)state;
  if (polytel__uv_running()) tpt_stop(0);
  return 0;
}

#define T(f) cmocka_unit_test_teardown(f, stop_leftover)

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  polytel__console_set_writer(tpt_diag);
  const struct CMUnitTest tests[] = {
      T(test_retry_after_parsing),    T(test_owned_loop_posts),        T(test_signal_headers),
      T(test_status_and_retry_after), T(test_answer_body_and_timeout), T(test_network_error),
      T(test_stalled_collector),      T(test_flush_vs_stop_in_flight), T(test_file_exporter),
      T(test_none_exporter),          T(test_host_loop_same_thread),   T(test_host_loop_other_thread),
      T(test_host_loop_not_running),  T(test_wake_during_start_stop),  T(test_fork),
  };
  return cmocka_run_group_tests_name("transport", tests, NULL, NULL);
}
