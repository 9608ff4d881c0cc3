/* transport_uv.c — drives a pipeline on a libuv loop: libcurl multi for OTLP/HTTP, the file exporter,
 * flush/stop, fork. */
#include "transport.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "console.h"
#include "retry_after.h"

/* Bounds chosen for a telemetry side-channel, not for throughput races. */
#define TP_MAX_HOST_CONNECTIONS 2
#define TP_MAX_IDLE_EASY 4
#define TP_WARN_INTERVAL_MS 10000
#define TP_PARK_WAIT_MS 200
/* After the flush deadline, how long a stopper waits for a host loop to run the teardown. */
#define TP_STOP_GRACE_MS 1000

typedef struct tp_s tp_t;

/* One per socket curl asks us to watch. */
typedef struct tp_sock_s {
  uv_poll_t poll;
  curl_socket_t fd;
  int events; /* UV_READABLE | UV_WRITABLE, for the inline driver */
  tp_t *tp;
  struct tp_sock_s *prev, *next;
} tp_sock_t;

/* One per easy handle; idle ones are kept so connections and handles are reused. */
typedef struct tp_xfer_s {
  CURL *easy;
  polytel__request_t *req; /* NULL while idle */
  struct curl_slist *headers;
  int64_t retry_after_ms;
  uint8_t *resp; /* the answer's body, up to POLYTEL__RESPONSE_BODY_MAX (the rest is read and discarded) */
  size_t resp_len, resp_cap;
  tp_t *tp;
  struct tp_xfer_s *prev, *next;
  char errbuf[CURL_ERROR_SIZE];
} tp_xfer_t;

struct tp_s {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owned;
  pthread_t thread;   /* the owned loop thread */
  pthread_t loop_tid; /* whichever thread runs the loop */
  polytel__pipeline_t *pl;

  /* Configuration, copied: the caller's cfg need not outlive start. */
  int exporter;
  char *export_dir;
  /* Per signal (polytel__signal_t): TLS files (NULL: system CAs / no client certificate) and header lines. */
  struct tp_sig_s {
    char *ca, *cert, *key;
    char **headers; /* "Key: value" */
    size_t n_headers;
  } sig[3];
  uint32_t default_timeout_ms;
  int file_fd[3];

  /* Loop-thread state. */
  CURLM *multi;
  uv_async_t async;
  uv_timer_t pump_timer;
  uv_timer_t curl_timer;
  uint64_t pump_due_ms; /* UINT64_MAX: not armed */
  uint64_t curl_due_ms;
  tp_sock_t *socks;
  tp_xfer_t *active;
  tp_xfer_t *idle;
  unsigned n_idle;
  int open_handles;
  int in_kick, kick_again, in_curl, cleaning;
  uint64_t flush_served;
  uint64_t file_warn_after_ms;

  atomic_int refs;
  struct tp_s *forgotten_next; /* fork child: keeps leaked transports reachable */

  /* Shared with application threads: under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready, init_rc;
  uint64_t flush_req, flush_done;
  int stop_req, closing, stopped, stop_result;
  int strict; /* stopping: also wait for requests in flight (metrics carry no pending count) */
  int park_req, parked;
};

static _Atomic(tp_t *) g_tp;
/* App threads inside polytel__transport_wake(): the async handle is closed only once this is 0. */
static atomic_int g_wakers;
/* Serializes start/stop/flush against each other for the g_tp hand-over. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_rc;
static tp_t *g_forgotten;

/* ------------------------------------------------------------------ helpers */

static void tp_curl_global_init(void) {
  g_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int on_loop_thread(const tp_t *tp) {
  return pthread_equal(pthread_self(), tp->loop_tid);
}

static void tp_free(tp_t *tp) {
  for (int s = 0; s < 3; s++) {
    for (size_t i = 0; i < tp->sig[s].n_headers; i++) free(tp->sig[s].headers[i]);
    free(tp->sig[s].headers);
    free(tp->sig[s].ca);
    free(tp->sig[s].cert);
    free(tp->sig[s].key);
  }
  free(tp->export_dir);
  pthread_cond_destroy(&tp->cv);
  pthread_mutex_destroy(&tp->mu);
  free(tp);
}

static void tp_unref(tp_t *tp) {
  if (atomic_fetch_sub(&tp->refs, 1) == 1) tp_free(tp);
}

/* Takes a reference on the running transport, or NULL. */
static tp_t *tp_acquire(void) {
  pthread_mutex_lock(&g_mu);
  tp_t *tp = atomic_load(&g_tp);
  if (tp) atomic_fetch_add(&tp->refs, 1);
  pthread_mutex_unlock(&g_mu);
  return tp;
}

static void deadline_ts(struct timespec *ts, uint64_t deadline_ms) {
  /* Condvars use CLOCK_MONOTONIC; polytel__now_ms() may have another origin. */
  uint64_t now = polytel__now_ms();
  uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(left / 1000);
  ts->tv_nsec += (long)(left % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Wait on tp->cv (mu held) until deadline_ms. Returns 0 on timeout. */
static int tp_wait(tp_t *tp, uint64_t deadline_ms) {
  if (polytel__now_ms() >= deadline_ms) return 0;
  struct timespec ts;
  deadline_ts(&ts, deadline_ms);
  return pthread_cond_timedwait(&tp->cv, &tp->mu, &ts) != ETIMEDOUT;
}

static uint64_t add_ms(uint64_t now, uint32_t ms) {
  return ms == UINT32_MAX ? UINT64_MAX : now + ms;
}

static const char *signal_name(int sig) {
  switch (sig) {
    case POLYTEL__SIG_TRACES:
      return "traces";
    case POLYTEL__SIG_LOGS:
      return "logs";
    case POLYTEL__SIG_METRICS:
      return "metrics";
    default:
      return NULL;
  }
}

/* ---------------------------------------------------------------- loop core */

static void kick(tp_t *tp);
static void check_multi_info(tp_t *tp);

/*
 * A flush is done when nothing recorded before it is pending (the pipeline
 * counts only those during a flush), even if newer requests are in flight:
 * under continuous load there always are. Stop also waits for those.
 */
static int tp_idle(tp_t *tp, int strict) {
  return polytel__pipeline_pending(tp->pl) == 0 && (!strict || polytel__pipeline_in_flight(tp->pl) == 0);
}

/* Wake flush waiters whose request was served once nothing is pending. */
static void check_idle(tp_t *tp) {
  if (!tp->pl) return;
  pthread_mutex_lock(&tp->mu);
  int want = tp->flush_served > tp->flush_done, strict = tp->strict;
  pthread_mutex_unlock(&tp->mu);
  if (!want || !tp_idle(tp, strict)) return;
  pthread_mutex_lock(&tp->mu);
  tp->flush_done = tp->flush_served;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
}

static void curl_action(tp_t *tp, curl_socket_t fd, int flags) {
  int running = 0;
  tp->in_curl++;
  curl_multi_socket_action(tp->multi, fd, flags, &running);
  tp->in_curl--;
}

static void on_sock_closed(uv_handle_t *h) {
  tp_sock_t *sk = (tp_sock_t *)((char *)h - offsetof(tp_sock_t, poll));
  tp_t *tp = sk->tp;
  free(sk);
  if (--tp->open_handles == 0 && tp->closing && !tp->owned) tp_unref(tp);
}

static void sock_close(tp_t *tp, tp_sock_t *sk) {
  if (sk->prev)
    sk->prev->next = sk->next;
  else
    tp->socks = sk->next;
  if (sk->next) sk->next->prev = sk->prev;
  sk->prev = sk->next = NULL;
  uv_poll_stop(&sk->poll);
  uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  tp_sock_t *sk = (tp_sock_t *)((char *)h - offsetof(tp_sock_t, poll));
  tp_t *tp = sk->tp;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_action(tp, sk->fd, flags);
  check_multi_info(tp);
}

/* CURLMOPT_SOCKETFUNCTION: only libuv calls here, never back into curl (but curl_multi_assign). */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)easy;
  tp_t *tp = userp;
  tp_sock_t *sk = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sk) {
      sock_close(tp, sk);
      if (!tp->cleaning) curl_multi_assign(tp->multi, s, NULL);
    }
    return 0;
  }
  if (!sk) {
    sk = calloc(1, sizeof *sk);
    if (!sk) return -1;
    if (uv_poll_init_socket(tp->loop, &sk->poll, s) != 0) {
      free(sk);
      return -1;
    }
    uv_unref((uv_handle_t *)&sk->poll);
    tp->open_handles++;
    sk->fd = s;
    sk->tp = tp;
    sk->next = tp->socks;
    if (tp->socks) tp->socks->prev = sk;
    tp->socks = sk;
    curl_multi_assign(tp->multi, s, sk);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
  sk->events = ev;
  uv_poll_start(&sk->poll, ev, on_poll);
  return 0;
}

static void on_curl_timeout(uv_timer_t *t) {
  tp_t *tp = t->data;
  tp->curl_due_ms = UINT64_MAX;
  curl_action(tp, CURL_SOCKET_TIMEOUT, 0);
  check_multi_info(tp);
}

/* CURLMOPT_TIMERFUNCTION: arm our one timer; socket_action runs from the timer callback, not here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  tp_t *tp = userp;
  if (tp->closing) return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(&tp->curl_timer);
    tp->curl_due_ms = UINT64_MAX;
  } else {
    tp->curl_due_ms = polytel__now_ms() + (uint64_t)timeout_ms;
    uv_timer_start(&tp->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

/* The answer's body (partial_success, the collector's message): bounded, the rest is read and dropped. */
static size_t on_body(char *ptr, size_t size, size_t n, void *ud) {
  tp_xfer_t *x = ud;
  size_t len = size * n, room = POLYTEL__RESPONSE_BODY_MAX - x->resp_len;
  size_t take = len < room ? len : room;
  if (take && x->resp_len + take > x->resp_cap) {
    size_t cap = x->resp_cap ? x->resp_cap : 1024;
    while (cap < x->resp_len + take) cap *= 2;
    if (cap > POLYTEL__RESPONSE_BODY_MAX) cap = POLYTEL__RESPONSE_BODY_MAX;
    uint8_t *b = realloc(x->resp, cap);
    if (!b) return len; /* no memory: the status still counts */
    x->resp = b;
    x->resp_cap = cap;
  }
  if (take) memcpy(x->resp + x->resp_len, ptr, take);
  x->resp_len += take;
  return len;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  tp_xfer_t *x = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    x->retry_after_ms = -1; /* a new response (redirect, 1xx) */
    x->resp_len = 0;
  } else if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0)
    x->retry_after_ms = polytel__retry_after_parse(buf + 12, len - 12, (int64_t)time(NULL));
  return len;
}

static void xfer_free(tp_xfer_t *x) {
  curl_slist_free_all(x->headers);
  curl_easy_cleanup(x->easy);
  free(x->resp);
  free(x);
}

static void xfer_release(tp_t *tp, tp_xfer_t *x) {
  curl_slist_free_all(x->headers);
  x->headers = NULL;
  x->req = NULL;
  x->resp_len = 0;
  if (tp->n_idle >= TP_MAX_IDLE_EASY) {
    xfer_free(x);
    return;
  }
  x->prev = NULL;
  x->next = tp->idle;
  tp->idle = x;
  tp->n_idle++;
}

/* An attempt that never reached the network (no handle, no memory): the pipeline retries it. */
static void done_unsent(tp_t *tp, polytel__request_t *req, const char *why) {
  polytel__response_t r = {.net = POLYTEL__NET_OTHER, .retry_after_ms = -1, .error = why};
  polytel__pipeline_done(tp->pl, req, &r, polytel__now_ms());
}

/* File and none exporters: an HTTP-like status, with the local error text for the warning. */
static void done_status(tp_t *tp, polytel__request_t *req, int status, const char *error) {
  polytel__response_t r = {
      .status = status, .net = POLYTEL__NET_OK, .sent = 1, .retry_after_ms = -1, .error = error};
  polytel__pipeline_done(tp->pl, req, &r, polytel__now_ms());
}

/* The whole body was handed to the network: an unanswered request may still have arrived. */
static int body_sent(CURL *e, const polytel__request_t *req) {
  curl_off_t up = 0;
  if (curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up) != CURLE_OK) return 0;
  return up > 0 && (uint64_t)up >= (uint64_t)req->body_len;
}

/* What a CURLcode means for the pipeline's policy. */
static polytel__net_class_t net_class(CURL *e, CURLcode res) {
  switch (res) {
    case CURLE_OK:
      return POLYTEL__NET_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return POLYTEL__NET_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
      return POLYTEL__NET_TIMEOUT;
    /* Certificates that do not verify do not start verifying by themselves: not retried. */
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
      return POLYTEL__NET_TLS;
    case CURLE_SSL_CONNECT_ERROR: {
      /* A handshake cut by the network may heal; one that failed verification will not. */
      long verify = 0;
      if (curl_easy_getinfo(e, CURLINFO_SSL_VERIFYRESULT, &verify) == CURLE_OK && verify != 0)
        return POLYTEL__NET_TLS;
      return POLYTEL__NET_OTHER;
    }
    default:
      return POLYTEL__NET_OTHER;
  }
}

static int build_headers(tp_t *tp, tp_xfer_t *x, const polytel__request_t *req) {
  char ct[160];
  struct curl_slist *l = NULL, *t;
  snprintf(ct, sizeof ct, "Content-Type: %s",
           req->content_type ? req->content_type : "application/x-protobuf");
#define TP_APPEND(s)               \
  do {                             \
    t = curl_slist_append(l, (s)); \
    if (!t) goto fail;             \
    l = t;                         \
  } while (0)
  TP_APPEND(ct);
  if (req->gzip)
    TP_APPEND(req->gzip == POLYTEL_COMPRESSION_ZSTD ? "Content-Encoding: zstd" : "Content-Encoding: gzip");
  TP_APPEND("Expect:"); /* no 100-continue round trip for large bodies */
  const struct tp_sig_s *sg = &tp->sig[req->signal <= POLYTEL__SIG_METRICS ? req->signal : 0];
  for (size_t i = 0; i < sg->n_headers; i++) TP_APPEND(sg->headers[i]);
#undef TP_APPEND
  x->headers = l;
  return 0;
fail:
  curl_slist_free_all(l);
  return -1;
}

static void http_send(tp_t *tp, polytel__request_t *req) {
  tp_xfer_t *x = tp->idle;
  if (x) {
    tp->idle = x->next;
    tp->n_idle--;
    curl_easy_reset(x->easy);
  } else {
    x = calloc(1, sizeof *x);
    if (x) x->easy = curl_easy_init();
    if (!x || !x->easy) {
      free(x);
      done_unsent(tp, req, "could not create a transfer (out of memory)"); /* the pipeline retries */
      return;
    }
    x->tp = tp;
  }
  x->req = req;
  x->retry_after_ms = -1;
  x->errbuf[0] = '\0';
  if (build_headers(tp, x, req) != 0) {
    xfer_release(tp, x);
    done_unsent(tp, req, "could not build the request headers (out of memory)");
    return;
  }
  uint32_t timeout = req->timeout_ms ? req->timeout_ms : tp->default_timeout_ms;
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)req->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "polytel/" POLYTEL_VERSION_STRING);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  const struct tp_sig_s *sg = &tp->sig[req->signal <= POLYTEL__SIG_METRICS ? req->signal : 0];
  if (sg->ca) curl_easy_setopt(e, CURLOPT_CAINFO, sg->ca);
  if (sg->cert) {
    /* mTLS. Without a key file the key is read from the certificate file (one PEM with both). */
    curl_easy_setopt(e, CURLOPT_SSLCERT, sg->cert);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    if (sg->key) curl_easy_setopt(e, CURLOPT_SSLKEY, sg->key);
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    /* An encrypted key must fail, not make OpenSSL prompt for a passphrase on the terminal. */
    curl_easy_setopt(e, CURLOPT_KEYPASSWD, "");
  }
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  /* Aborting a transfer that is still resolving must not join curl's resolver thread (stop stays bounded). */
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  req->transport_data = x;
  if (curl_multi_add_handle(tp->multi, e) != CURLM_OK) {
    xfer_release(tp, x);
    done_unsent(tp, req, "could not start the transfer");
    return;
  }
  x->prev = NULL;
  x->next = tp->active;
  if (tp->active) tp->active->prev = x;
  tp->active = x;
}

static void check_multi_info(tp_t *tp) {
  CURLMsg *m;
  int left;
  if (!tp->multi) return;
  while ((m = curl_multi_info_read(tp->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode res = m->data.result;
    tp_xfer_t *x = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    if (res == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(tp->multi, e);
    if (x->prev)
      x->prev->next = x->next;
    else
      tp->active = x->next;
    if (x->next) x->next->prev = x->prev;
    polytel__request_t *req = x->req;
    polytel__response_t r = {.status = (int)code, .net = net_class(e, res), .retry_after_ms = -1};
    if (r.net == POLYTEL__NET_OK) {
      char *ct = NULL;
      curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct); /* valid until the handle is reused */
      r.content_type = ct;
      r.retry_after_ms = x->retry_after_ms;
      r.body = x->resp;
      r.body_len = x->resp_len;
      r.sent = 1;
    } else {
      r.sent = body_sent(e, req);
      r.error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
    }
    /* The pipeline warns (per signal and cause); the URL is the configured endpoint, header values never
     * appear. */
    polytel__pipeline_done(tp->pl, req, &r, polytel__now_ms());
    xfer_release(tp, x);
  }
  kick(tp);
}

/* --------------------------------------------------------------- file export */

static int mkdir_p(const char *dir) {
  char path[PATH_MAX];
  size_t len = strlen(dir);
  if (len == 0 || len >= sizeof path) return -1;
  memcpy(path, dir, len + 1);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

static void warn_file(tp_t *tp, const char *path, int err) {
  uint64_t now = polytel__now_ms();
  if (now < tp->file_warn_after_ms) return;
  tp->file_warn_after_ms = now + TP_WARN_INTERVAL_MS;
  char b[POLYTEL__SHOW_BUF];
  polytel__diag(POLYTEL_LEVEL_WARN, "file exporter cannot write %s: %s; the batch is dropped",
                polytel__show_path(b, sizeof b, path), strerror(err));
}

static void file_send(tp_t *tp, polytel__request_t *req) {
  const char *name = signal_name((int)req->signal);
  char path[PATH_MAX];
  int err = 0;
  if (!name) {
    done_status(tp, req, 500, "unknown signal");
    return;
  }
  snprintf(path, sizeof path, "%s/%s.jsonl", tp->export_dir, name);
  int *fd = &tp->file_fd[req->signal];
  if (*fd < 0) {
    if (mkdir_p(tp->export_dir) != 0)
      err = errno;
    else if ((*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
      err = errno;
  }
  if (!err) {
    /* One writev per line: O_APPEND keeps lines whole even with several writers on the file. */
    struct iovec iov[2] = {{(void *)req->body, req->body_len}, {(void *)"\n", 1}};
    int iovcnt = 2;
    struct iovec *v = iov;
    while (iovcnt > 0) {
      ssize_t w = writev(*fd, v, iovcnt);
      if (w < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      while (iovcnt > 0 && (size_t)w >= v->iov_len) {
        w -= (ssize_t)v->iov_len;
        v++;
        iovcnt--;
      }
      if (iovcnt > 0) {
        v->iov_base = (char *)v->iov_base + w;
        v->iov_len -= (size_t)w;
      }
    }
  }
  if (err) {
    warn_file(tp, path, err);
    /* A local write error does not heal by retrying soon: report it as a non-retryable failure. */
    done_status(tp, req, 500, strerror(err));
    return;
  }
  done_status(tp, req, 200, NULL);
}

/* ------------------------------------------------------------------ pumping */

static void on_pump_timer(uv_timer_t *t) {
  tp_t *tp = t->data;
  tp->pump_due_ms = UINT64_MAX;
  kick(tp);
}

static void send_request(tp_t *tp, polytel__request_t *req) {
  switch (tp->exporter) {
    case POLYTEL_EXPORTER_FILE:
      file_send(tp, req);
      break;
    case POLYTEL_EXPORTER_NONE:
      done_status(tp, req, 200, NULL);
      break;
    default:
      http_send(tp, req);
      break;
  }
}

/* Pump, start every ready request, re-arm the pump timer, wake flushers. */
static void kick(tp_t *tp) {
  if (tp->closing || !tp->pl) return;
  if (tp->in_kick) {
    tp->kick_again = 1;
    return;
  }
  tp->in_kick = 1;
  do {
    tp->kick_again = 0;
    uint64_t now = polytel__now_ms();
    uint32_t wait = polytel__pipeline_pump(tp->pl, now);
    polytel__request_t *req;
    while ((req = polytel__pipeline_next(tp->pl, now)) != NULL) send_request(tp, req);
    if (wait == UINT32_MAX) {
      uv_timer_stop(&tp->pump_timer);
      tp->pump_due_ms = UINT64_MAX;
    } else {
      if (wait == 0) wait = 1; /* a pipeline asking for "now" forever must not spin the loop */
      tp->pump_due_ms = add_ms(polytel__now_ms(), wait);
      uv_timer_start(&tp->pump_timer, on_pump_timer, wait, 0);
    }
  } while (tp->kick_again);
  tp->in_kick = 0;
  check_idle(tp);
}

/* Runs on the loop thread with nothing of curl or libuv on the stack below us but uv_run. */
static void teardown(tp_t *tp);

static void on_close_tp_handle(uv_handle_t *h) {
  tp_t *tp = h->data;
  if (--tp->open_handles == 0 && tp->closing && !tp->owned) tp_unref(tp);
}

static void on_async(uv_async_t *a) {
  tp_t *tp = a->data;
  pthread_mutex_lock(&tp->mu);
  if (tp->park_req) {
    /* fork(): hold still, outside any curl or libuv call, until the parent hook releases us. */
    tp->parked = 1;
    pthread_cond_broadcast(&tp->cv);
    while (tp->park_req) pthread_cond_wait(&tp->cv, &tp->mu);
    tp->parked = 0;
  }
  int stop = tp->stop_req && !tp->closing;
  uint64_t flush = tp->flush_req;
  pthread_mutex_unlock(&tp->mu);
  if (stop) {
    teardown(tp);
    return;
  }
  if (flush > tp->flush_served) {
    polytel__pipeline_force(tp->pl, polytel__now_ms());
    tp->flush_served = flush;
  }
  kick(tp);
}

/*
 * Flush on the loop's own thread. uv_run is not reentrant (this may be a
 * callback of that loop), so curl's sockets are polled directly instead:
 * curl_multi_socket_action stays the only way curl is driven.
 */
static int drive_inline(tp_t *tp, uint64_t deadline, int strict) {
  if (tp->closing || !tp->pl) return 0;
  if (tp->in_curl || tp->in_kick) return tp_idle(tp, strict);
  polytel__pipeline_force(tp->pl, polytel__now_ms());
  kick(tp);
  struct pollfd stackfds[16];
  while (!tp_idle(tp, strict)) {
    uint64_t now = polytel__now_ms();
    if (now >= deadline) break;
    uint64_t until = deadline;
    if (tp->curl_due_ms < until) until = tp->curl_due_ms;
    if (tp->pump_due_ms < until) until = tp->pump_due_ms;
    int wait = until > now ? (int)(until - now) : 0;
    size_t n = 0;
    for (tp_sock_t *sk = tp->socks; sk; sk = sk->next) n++;
    struct pollfd *fds = n <= 16 ? stackfds : calloc(n, sizeof *fds);
    if (!fds) break;
    size_t i = 0;
    for (tp_sock_t *sk = tp->socks; sk; sk = sk->next, i++) {
      fds[i].fd = sk->fd;
      fds[i].events =
          (short)(((sk->events & UV_READABLE) ? POLLIN : 0) | ((sk->events & UV_WRITABLE) ? POLLOUT : 0));
      fds[i].revents = 0;
    }
    int r = poll(fds, (nfds_t)n, wait);
    for (i = 0; r > 0 && i < n; i++) {
      if (!fds[i].revents) continue;
      int flags = 0;
      if (fds[i].revents & (POLLIN | POLLHUP)) flags |= CURL_CSELECT_IN;
      if (fds[i].revents & POLLOUT) flags |= CURL_CSELECT_OUT;
      if (fds[i].revents & (POLLERR | POLLNVAL)) flags |= CURL_CSELECT_ERR;
      curl_action(tp, fds[i].fd, flags);
    }
    if (fds != stackfds) free(fds);
    now = polytel__now_ms();
    if (tp->multi && tp->curl_due_ms <= now) {
      tp->curl_due_ms = UINT64_MAX;
      uv_timer_stop(&tp->curl_timer);
      curl_action(tp, CURL_SOCKET_TIMEOUT, 0);
    }
    check_multi_info(tp); /* also pumps */
    if (tp->pump_due_ms <= polytel__now_ms()) kick(tp);
  }
  return tp_idle(tp, strict);
}

static void teardown(tp_t *tp) {
  int delivered = tp->pl ? tp_idle(tp, 1) : 1;
  pthread_mutex_lock(&tp->mu);
  tp->closing = 1;
  pthread_mutex_unlock(&tp->mu);

  /*
   * In flight at the deadline: cancelled. One whose body went out may have
   * arrived (the pipeline counts it unconfirmed); the rest is dropped, counted.
   */
  while (tp->active) {
    tp_xfer_t *x = tp->active;
    tp->active = x->next;
    polytel__request_t *req = x->req;
    polytel__response_t r = {
        .net = POLYTEL__NET_ABORTED, .sent = body_sent(x->easy, req), .retry_after_ms = -1};
    curl_multi_remove_handle(tp->multi, x->easy);
    xfer_free(x);
    polytel__pipeline_done(tp->pl, req, &r, polytel__now_ms());
  }
  polytel__pipeline_abandon(tp->pl);
  polytel__pipeline_free(tp->pl);
  tp->pl = NULL;
  while (tp->idle) {
    tp_xfer_t *x = tp->idle;
    tp->idle = x->next;
    xfer_free(x);
  }
  tp->n_idle = 0;
  if (tp->multi) {
    tp->cleaning = 1;
    curl_multi_cleanup(tp->multi); /* closes cached connections: REMOVE callbacks close their polls */
    tp->multi = NULL;
  }
  while (tp->socks) sock_close(tp, tp->socks);
  for (int i = 0; i < 3; i++) {
    if (tp->file_fd[i] >= 0) close(tp->file_fd[i]);
    tp->file_fd[i] = -1;
  }
  uv_close((uv_handle_t *)&tp->async, on_close_tp_handle);
  uv_close((uv_handle_t *)&tp->pump_timer, on_close_tp_handle);
  uv_close((uv_handle_t *)&tp->curl_timer, on_close_tp_handle);

  pthread_mutex_lock(&tp->mu);
  tp->stopped = 1;
  tp->stop_result = delivered ? 0 : POLYTEL_ETIMEDOUT;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
}

/* Create every handle on tp->loop; runs on the loop's thread. */
static int init_handles(tp_t *tp) {
  if (tp->exporter == POLYTEL_EXPORTER_OTLP) {
    tp->multi = curl_multi_init();
    if (!tp->multi) return POLYTEL_ENOMEM;
    curl_multi_setopt(tp->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(tp->multi, CURLMOPT_SOCKETDATA, tp);
    curl_multi_setopt(tp->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(tp->multi, CURLMOPT_TIMERDATA, tp);
    curl_multi_setopt(tp->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)TP_MAX_HOST_CONNECTIONS);
  }
  if (uv_async_init(tp->loop, &tp->async, on_async) != 0) {
    if (tp->multi) curl_multi_cleanup(tp->multi);
    tp->multi = NULL;
    return POLYTEL_EIO;
  }
  tp->async.data = tp;
  uv_timer_init(tp->loop, &tp->pump_timer);
  tp->pump_timer.data = tp;
  uv_timer_init(tp->loop, &tp->curl_timer);
  tp->curl_timer.data = tp;
  /* On a host loop, telemetry must never keep the application's loop alive. */
  if (!tp->owned) uv_unref((uv_handle_t *)&tp->async);
  uv_unref((uv_handle_t *)&tp->pump_timer);
  uv_unref((uv_handle_t *)&tp->curl_timer);
  tp->open_handles = 3;
  if (tp->exporter == POLYTEL_EXPORTER_FILE && mkdir_p(tp->export_dir) != 0) {
    char b[POLYTEL__SHOW_BUF];
    int err = errno;
    polytel__diag(POLYTEL_LEVEL_WARN, "file exporter cannot create %s: %s",
                  polytel__show_path(b, sizeof b, tp->export_dir), strerror(err));
  }
  return 0;
}

static void *loop_thread(void *arg) {
  tp_t *tp = arg;
#if defined(__GLIBC__)
  pthread_setname_np(pthread_self(), "polytel-loop");
#endif
  int rc = uv_loop_init(&tp->own_loop) == 0 ? 0 : POLYTEL_EIO;
  tp->loop = &tp->own_loop;
  if (rc == 0) {
    rc = init_handles(tp);
    if (rc != 0) uv_loop_close(&tp->own_loop);
  }
  pthread_mutex_lock(&tp->mu);
  tp->loop_tid = pthread_self();
  tp->init_rc = rc;
  tp->ready = 1;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
  if (rc != 0) return NULL;
  uv_run(&tp->own_loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&tp->own_loop) != 0) {
    uv_run(&tp->own_loop, UV_RUN_NOWAIT);
    uv_loop_close(&tp->own_loop);
  }
  tp_unref(tp);
  return NULL;
}

/* ---------------------------------------------------------------- public API */

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

int polytel__transport_start(struct uv_loop_s *loop, polytel__pipeline_t *pl, const polytel__cfg_t *cfg) {
  if (!pl || !cfg) return POLYTEL_EINVAL;
  int exporter = cfg->exporter;
  if (exporter != POLYTEL_EXPORTER_FILE && exporter != POLYTEL_EXPORTER_NONE)
    exporter = POLYTEL_EXPORTER_OTLP;
  if (exporter == POLYTEL_EXPORTER_FILE && !cfg->export_dir) return POLYTEL_EINVAL;
  if (exporter == POLYTEL_EXPORTER_OTLP) {
    pthread_once(&g_curl_once, tp_curl_global_init);
    if (g_curl_rc != CURLE_OK) return POLYTEL_EIO;
  }

  pthread_mutex_lock(&g_mu);
  if (atomic_load(&g_tp)) {
    pthread_mutex_unlock(&g_mu);
    return POLYTEL_EALREADY;
  }
  tp_t *tp = calloc(1, sizeof *tp);
  if (!tp) goto nomem;
  atomic_init(&tp->refs,
              1); /* the loop's: released by the owned thread at exit, or by the last close callback */
  tp->exporter = exporter;
  tp->pl = pl;
  tp->owned = loop == NULL;
  tp->pump_due_ms = tp->curl_due_ms = UINT64_MAX;
  tp->default_timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
  for (int i = 0; i < 3; i++) tp->file_fd[i] = -1;
  pthread_mutex_init(&tp->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&tp->cv, &ca);
  pthread_condattr_destroy(&ca);
  tp->export_dir = dup_or_null(cfg->export_dir);
  if (cfg->export_dir && !tp->export_dir) goto nomem;
  for (int s = 0; s < 3; s++) {
    struct tp_sig_s *sg = &tp->sig[s];
    /* A config built by hand (tests, embedders) may carry only the general CA. */
    const char *cafile = cfg->tls_ca[s] ? cfg->tls_ca[s] : cfg->certificate;
    sg->ca = dup_or_null(cafile);
    sg->cert = dup_or_null(cfg->tls_cert[s]);
    sg->key = dup_or_null(cfg->tls_key[s]);
    if ((cafile && !sg->ca) || (cfg->tls_cert[s] && !sg->cert) || (cfg->tls_key[s] && !sg->key)) goto nomem;
    const polytel__strpair_t *hs = cfg->has_signal_headers[s] ? cfg->signal_headers[s] : cfg->headers;
    size_t nh = cfg->has_signal_headers[s] ? cfg->n_signal_headers[s] : cfg->n_headers;
    if (!nh) continue;
    sg->headers = calloc(nh, sizeof *sg->headers);
    if (!sg->headers) goto nomem;
    for (size_t i = 0; i < nh; i++) {
      const char *k = hs[i].key, *v = hs[i].value ? hs[i].value : "";
      if (!k || !*k || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n") || polytel__header_forbidden(k, strlen(k))) {
        /* Would forge header lines or framing; the value is a credential, so only the key is named. */
        if (s == 0 || cfg->has_signal_headers[s]) {
          char b[POLYTEL__SHOW_BUF];
          polytel__diag(POLYTEL_LEVEL_WARN,
                        "export headers: header \"%s\" skipped (not a header polytel may send)",
                        polytel__show(b, sizeof b, k, k ? strlen(k) : 0));
        }
        continue;
      }
      size_t len = strlen(k) + strlen(v) + 3;
      char *h = malloc(len);
      if (!h) goto nomem;
      snprintf(h, len, "%s: %s", k, v);
      sg->headers[sg->n_headers++] = h;
    }
  }

  int rc;
  if (loop) {
    tp->loop = loop;
    tp->loop_tid = pthread_self();
    rc = init_handles(tp);
  } else {
    /* The loop thread takes no signals: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&tp->thread, NULL, loop_thread, tp) == 0 ? 0 : POLYTEL_EIO;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
      pthread_mutex_lock(&tp->mu);
      while (!tp->ready) pthread_cond_wait(&tp->cv, &tp->mu);
      rc = tp->init_rc;
      pthread_mutex_unlock(&tp->mu);
      if (rc != 0) pthread_join(tp->thread, NULL);
    }
  }
  if (rc != 0) {
    tp->pl = NULL; /* on failure the caller keeps the pipeline */
    tp_free(tp);
    pthread_mutex_unlock(&g_mu);
    return rc;
  }
  atomic_store(&g_tp, tp);
  /* Whatever was recorded before start (deferred phase) goes out on the first turn of the loop. */
  uv_async_send(&tp->async);
  pthread_mutex_unlock(&g_mu);
  return 0;

nomem:
  if (tp) tp_free(tp);
  pthread_mutex_unlock(&g_mu);
  return POLYTEL_ENOMEM;
}

void polytel__transport_wake(void) {
  atomic_fetch_add(&g_wakers, 1);
  tp_t *tp = atomic_load(&g_tp);
  if (tp) uv_async_send(&tp->async);
  atomic_fetch_sub(&g_wakers, 1);
}

int polytel__transport_running(void) {
  return atomic_load(&g_tp) != NULL;
}

/* From a thread other than the loop's: ask the loop to force, wait for idle. */
static int flush_remote(tp_t *tp, uint64_t deadline, int strict) {
  pthread_mutex_lock(&tp->mu);
  if (strict) tp->strict = 1;
  if (tp->closing) {
    pthread_mutex_unlock(&tp->mu);
    return POLYTEL_ETIMEDOUT;
  }
  uint64_t gen = ++tp->flush_req;
  uv_async_send(&tp->async);
  while (tp->flush_done < gen && !tp->closing)
    if (!tp_wait(tp, deadline)) break;
  int rc = tp->flush_done >= gen ? 0 : POLYTEL_ETIMEDOUT;
  pthread_mutex_unlock(&tp->mu);
  return rc;
}

int polytel__transport_flush(uint32_t timeout_ms) {
  tp_t *tp = tp_acquire();
  if (!tp) return 0;
  uint64_t deadline = polytel__now_ms() + timeout_ms;
  int rc;
  if (on_loop_thread(tp))
    rc = drive_inline(tp, deadline, 0) ? 0 : POLYTEL_ETIMEDOUT;
  else
    rc = flush_remote(tp, deadline, 0);
  tp_unref(tp);
  return rc;
}

int polytel__transport_stop(uint32_t timeout_ms) {
  pthread_mutex_lock(&g_mu);
  tp_t *tp = atomic_load(&g_tp);
  if (!tp) {
    pthread_mutex_unlock(&g_mu);
    return 0;
  }
  atomic_fetch_add(&tp->refs, 1);
  uint64_t deadline = polytel__now_ms() + timeout_ms;
  /* Flush first, while wake-ups still work (other threads may hand off blocks meanwhile). */
  int self = on_loop_thread(tp);
  if (self)
    drive_inline(tp, deadline, 1);
  else
    flush_remote(tp, deadline, 1);
  atomic_store(&g_tp, NULL);
  while (atomic_load(&g_wakers) != 0) sched_yield();
  pthread_mutex_unlock(&g_mu);

  int rc;
  if (self) {
    teardown(tp);
    rc = tp->stop_result;
    if (tp->owned) pthread_detach(tp->thread); /* stopped from inside our own loop: it exits by itself */
  } else {
    pthread_mutex_lock(&tp->mu);
    tp->stop_req = 1;
    if (!tp->closing) uv_async_send(&tp->async);
    if (tp->owned) {
      while (!tp->stopped) pthread_cond_wait(&tp->cv, &tp->mu);
    } else {
      /* A host loop that no longer runs cannot tear down; leave it the work rather than hang. */
      uint64_t give_up = polytel__now_ms() + TP_STOP_GRACE_MS;
      if (give_up < deadline) give_up = deadline;
      while (!tp->stopped)
        if (!tp_wait(tp, give_up)) break;
    }
    rc = tp->stopped ? tp->stop_result : POLYTEL_ETIMEDOUT;
    pthread_mutex_unlock(&tp->mu);
    if (tp->owned) pthread_join(tp->thread, NULL);
  }
  tp_unref(tp);
  return rc;
}

void polytel__transport_atfork_prepare(void) {
  tp_t *tp = atomic_load(&g_tp);
  if (!tp || !tp->owned || on_loop_thread(tp)) return;
  uint64_t deadline = polytel__now_ms() + TP_PARK_WAIT_MS;
  pthread_mutex_lock(&tp->mu);
  if (!tp->closing) {
    tp->park_req = 1;
    uv_async_send(&tp->async);
    while (!tp->parked)
      if (!tp_wait(tp, deadline)) break;
  }
  pthread_mutex_unlock(&tp->mu);
}

void polytel__transport_atfork_parent(void) {
  tp_t *tp = atomic_load(&g_tp);
  if (!tp) return;
  pthread_mutex_lock(&tp->mu);
  tp->park_req = 0;
  pthread_cond_broadcast(&tp->cv);
  pthread_mutex_unlock(&tp->mu);
}

void polytel__transport_atfork_child(void) {
  /*
   * The parent's sockets, TLS sessions and loop are shared with the parent:
   * closing them here (TLS close_notify, epoll changes) would break its
   * connections. Forget them; a new transport may be started.
   */
  tp_t *tp = atomic_load(&g_tp);
  if (tp) {
    tp->forgotten_next = g_forgotten;
    g_forgotten = tp;
  }
  atomic_store(&g_tp, NULL);
  atomic_store(&g_wakers, 0);
  pthread_mutex_init(&g_mu, NULL);
}
