/* transport_curl.c — the OTLP/HTTP transport: libcurl's multi interface on the libuv loop driver
 * (curl's multi-uv pattern: a uv_poll_t per socket, one uv_timer_t, curl never re-entered from its
 * callbacks). */
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/common.h"
#include "transport/uv.h"

/* Bounds chosen for a telemetry side-channel, not for throughput races. */
#define TP_MAX_IDLE_EASY 4

typedef struct cs_s cs_t;

/* One per socket curl asks us to watch. */
typedef struct tp_sock_s {
  uv_poll_t poll;
  curl_socket_t fd;
  int events; /* UV_READABLE | UV_WRITABLE, for the inline driver */
  cs_t *cs;
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
  cs_t *cs;
  struct tp_xfer_s *prev, *next;
  char errbuf[CURL_ERROR_SIZE];
} tp_xfer_t;

/* The sender's state (tp->ss). */
struct cs_s {
  polytel__uv_t *tp;
  /* Per signal (polytel__signal_t): TLS files (NULL: system CAs / no client certificate) and header lines. */
  struct tp_sig_s {
    char *ca, *cert, *key;
    char **headers; /* "Key: value" */
    size_t n_headers;
  } sig[3];
  /* Loop-thread state. */
  CURLM *multi;
  uv_timer_t curl_timer;
  uint64_t curl_due_ms;
  tp_sock_t *socks;
  tp_xfer_t *active;
  tp_xfer_t *idle;
  unsigned n_idle;
  int cleaning;
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_rc;

static void tp_curl_global_init(void) {
  g_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void check_multi_info(cs_t *cs);

static void curl_action(cs_t *cs, curl_socket_t fd, int flags) {
  int running = 0;
  cs->tp->in_io++;
  curl_multi_socket_action(cs->multi, fd, flags, &running);
  cs->tp->in_io--;
}

static void on_sock_closed(uv_handle_t *h) {
  tp_sock_t *sk = (tp_sock_t *)((char *)h - offsetof(tp_sock_t, poll));
  cs_t *cs = sk->cs;
  free(sk);
  polytel__uv_handle_closed(cs->tp);
}

static void sock_close(cs_t *cs, tp_sock_t *sk) {
  if (sk->prev)
    sk->prev->next = sk->next;
  else
    cs->socks = sk->next;
  if (sk->next) sk->next->prev = sk->prev;
  sk->prev = sk->next = NULL;
  uv_poll_stop(&sk->poll);
  uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  tp_sock_t *sk = (tp_sock_t *)((char *)h - offsetof(tp_sock_t, poll));
  cs_t *cs = sk->cs;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_action(cs, sk->fd, flags);
  check_multi_info(cs);
}

/* CURLMOPT_SOCKETFUNCTION: only libuv calls here, never back into curl (but curl_multi_assign). */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)easy;
  cs_t *cs = userp;
  tp_sock_t *sk = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sk) {
      sock_close(cs, sk);
      if (!cs->cleaning) curl_multi_assign(cs->multi, s, NULL);
    }
    return 0;
  }
  if (!sk) {
    sk = calloc(1, sizeof *sk);
    if (!sk) return -1;
    if (uv_poll_init_socket(cs->tp->loop, &sk->poll, s) != 0) {
      free(sk);
      return -1;
    }
    uv_unref((uv_handle_t *)&sk->poll);
    cs->tp->open_handles++;
    sk->fd = s;
    sk->cs = cs;
    sk->next = cs->socks;
    if (cs->socks) cs->socks->prev = sk;
    cs->socks = sk;
    curl_multi_assign(cs->multi, s, sk);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
  sk->events = ev;
  uv_poll_start(&sk->poll, ev, on_poll);
  return 0;
}

static void on_curl_timeout(uv_timer_t *t) {
  cs_t *cs = t->data;
  cs->curl_due_ms = UINT64_MAX;
  curl_action(cs, CURL_SOCKET_TIMEOUT, 0);
  check_multi_info(cs);
}

/* CURLMOPT_TIMERFUNCTION: arm our one timer; socket_action runs from the timer callback, not here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  cs_t *cs = userp;
  if (cs->tp->closing) return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(&cs->curl_timer);
    cs->curl_due_ms = UINT64_MAX;
  } else {
    cs->curl_due_ms = polytel__now_ms() + (uint64_t)timeout_ms;
    uv_timer_start(&cs->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
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

static void xfer_release(cs_t *cs, tp_xfer_t *x) {
  curl_slist_free_all(x->headers);
  x->headers = NULL;
  x->req = NULL;
  x->resp_len = 0;
  if (cs->n_idle >= TP_MAX_IDLE_EASY) {
    xfer_free(x);
    return;
  }
  x->prev = NULL;
  x->next = cs->idle;
  cs->idle = x;
  cs->n_idle++;
}

/* An attempt that never reached the network (no handle, no memory): the pipeline retries it. */
static void done_unsent(cs_t *cs, polytel__request_t *req, const char *why) {
  polytel__response_t r = {.net = POLYTEL__NET_OTHER, .retry_after_ms = -1, .error = why};
  polytel__uv_done(cs->tp, req, &r);
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

static int build_headers(cs_t *cs, tp_xfer_t *x, const polytel__request_t *req) {
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
  const struct tp_sig_s *sg = &cs->sig[req->signal <= POLYTEL__SIG_METRICS ? req->signal : 0];
  for (size_t i = 0; i < sg->n_headers; i++) TP_APPEND(sg->headers[i]);
#undef TP_APPEND
  x->headers = l;
  return 0;
fail:
  curl_slist_free_all(l);
  return -1;
}

static void http_send(polytel__uv_t *tp, polytel__request_t *req) {
  cs_t *cs = tp->ss;
  tp_xfer_t *x = cs->idle;
  if (x) {
    cs->idle = x->next;
    cs->n_idle--;
    curl_easy_reset(x->easy);
  } else {
    x = calloc(1, sizeof *x);
    if (x) x->easy = curl_easy_init();
    if (!x || !x->easy) {
      free(x);
      done_unsent(cs, req, "could not create a transfer (out of memory)"); /* the pipeline retries */
      return;
    }
    x->cs = cs;
  }
  x->req = req;
  x->retry_after_ms = -1;
  x->errbuf[0] = '\0';
  if (build_headers(cs, x, req) != 0) {
    xfer_release(cs, x);
    done_unsent(cs, req, "could not build the request headers (out of memory)");
    return;
  }
  uint32_t timeout = req->timeout_ms ? req->timeout_ms : cs->tp->default_timeout_ms;
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
  const struct tp_sig_s *sg = &cs->sig[req->signal <= POLYTEL__SIG_METRICS ? req->signal : 0];
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
  if (curl_multi_add_handle(cs->multi, e) != CURLM_OK) {
    xfer_release(cs, x);
    done_unsent(cs, req, "could not start the transfer");
    return;
  }
  x->prev = NULL;
  x->next = cs->active;
  if (cs->active) cs->active->prev = x;
  cs->active = x;
}

static void check_multi_info(cs_t *cs) {
  CURLMsg *m;
  int left;
  if (!cs->multi) return;
  while ((m = curl_multi_info_read(cs->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode res = m->data.result;
    tp_xfer_t *x = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    if (res == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(cs->multi, e);
    if (x->prev)
      x->prev->next = x->next;
    else
      cs->active = x->next;
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
    polytel__uv_done(cs->tp, req, &r);
    xfer_release(cs, x);
  }
  polytel__uv_kick(cs->tp);
}

/* ------------------------------------------------------------------ the sender */

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static void curl_free_state(polytel__uv_t *tp) {
  cs_t *cs = tp->ss;
  if (!cs) return;
  for (int s = 0; s < 3; s++) {
    for (size_t i = 0; i < cs->sig[s].n_headers; i++) free(cs->sig[s].headers[i]);
    free(cs->sig[s].headers);
    free(cs->sig[s].ca);
    free(cs->sig[s].cert);
    free(cs->sig[s].key);
  }
  free(cs);
  tp->ss = NULL;
}

static int curl_init(polytel__uv_t *tp, const polytel__cfg_t *cfg) {
  pthread_once(&g_curl_once, tp_curl_global_init);
  if (g_curl_rc != CURLE_OK) return POLYTEL_EIO;
  cs_t *cs = calloc(1, sizeof *cs);
  if (!cs) return POLYTEL_ENOMEM;
  cs->tp = tp;
  cs->curl_due_ms = UINT64_MAX;
  tp->ss = cs;
  for (int s = 0; s < 3; s++) {
    struct tp_sig_s *sg = &cs->sig[s];
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
  return 0;
nomem:
  curl_free_state(tp);
  return POLYTEL_ENOMEM;
}

static int curl_open(polytel__uv_t *tp) {
  cs_t *cs = tp->ss;
  cs->multi = curl_multi_init();
  if (!cs->multi) return POLYTEL_ENOMEM;
  curl_multi_setopt(cs->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(cs->multi, CURLMOPT_SOCKETDATA, cs);
  curl_multi_setopt(cs->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(cs->multi, CURLMOPT_TIMERDATA, cs);
  curl_multi_setopt(cs->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)POLYTEL__HTTP_MAX_HOST_CONNECTIONS);
  uv_timer_init(tp->loop, &cs->curl_timer);
  cs->curl_timer.data = cs;
  uv_unref((uv_handle_t *)&cs->curl_timer);
  tp->open_handles++;
  return 0;
}

static void on_close_curl_timer(uv_handle_t *h) {
  polytel__uv_handle_closed(((cs_t *)h->data)->tp);
}

/* A flush on the loop's thread: poll(2) curl's sockets directly (uv_run is not reentrant). */
static void curl_drive(polytel__uv_t *tp, int wait) {
  cs_t *cs = tp->ss;
  struct pollfd stackfds[16];
  size_t n = 0;
  for (tp_sock_t *sk = cs->socks; sk; sk = sk->next) n++;
  struct pollfd *fds = n <= 16 ? stackfds : calloc(n, sizeof *fds);
  if (!fds) return;
  size_t i = 0;
  for (tp_sock_t *sk = cs->socks; sk; sk = sk->next, i++) {
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
    curl_action(cs, fds[i].fd, flags);
  }
  if (fds != stackfds) free(fds);
  if (cs->multi && cs->curl_due_ms <= polytel__now_ms()) {
    cs->curl_due_ms = UINT64_MAX;
    uv_timer_stop(&cs->curl_timer);
    curl_action(cs, CURL_SOCKET_TIMEOUT, 0);
  }
  check_multi_info(cs); /* also pumps */
}

static uint64_t curl_due(const polytel__uv_t *tp) {
  return ((const cs_t *)tp->ss)->curl_due_ms;
}

static void curl_teardown(polytel__uv_t *tp) {
  cs_t *cs = tp->ss;
  while (cs->active) {
    tp_xfer_t *x = cs->active;
    cs->active = x->next;
    polytel__request_t *req = x->req;
    polytel__response_t r = {
        .net = POLYTEL__NET_ABORTED, .sent = body_sent(x->easy, req), .retry_after_ms = -1};
    curl_multi_remove_handle(cs->multi, x->easy);
    xfer_free(x);
    polytel__uv_done(tp, req, &r);
  }
  while (cs->idle) {
    tp_xfer_t *x = cs->idle;
    cs->idle = x->next;
    xfer_free(x);
  }
  cs->n_idle = 0;
  if (cs->multi) {
    cs->cleaning = 1;
    curl_multi_cleanup(cs->multi); /* closes cached connections: REMOVE callbacks close their polls */
    cs->multi = NULL;
  }
  while (cs->socks) sock_close(cs, cs->socks);
  uv_close((uv_handle_t *)&cs->curl_timer, on_close_curl_timer);
}

static const polytel__sender_t g_curl = {curl_init, curl_open,     http_send,      curl_drive,
                                         curl_due,  curl_teardown, curl_free_state};

const polytel__transport_t polytel__transport_otlp = POLYTEL__UV_TRANSPORT("otlp", &g_curl);
