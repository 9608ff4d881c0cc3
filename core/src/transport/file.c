/* transport_file.c — the file exporter: one Export*ServiceRequest (OTLP/JSON) per line of
 * <dir>/{traces,logs,metrics}.jsonl, on the libuv loop driver. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/common.h"
#include "transport/uv.h"

#define TP_WARN_INTERVAL_MS 10000

/* The sender's state (tp->ss). */
typedef struct fs_s {
  char *dir;
  int fd[3]; /* per signal, opened on first use */
  uint64_t warn_after_ms;
} fs_t;

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

static void warn_file(fs_t *fs, const char *path, int err) {
  uint64_t now = polytel__now_ms();
  if (now < fs->warn_after_ms) return;
  fs->warn_after_ms = now + TP_WARN_INTERVAL_MS;
  char b[POLYTEL__SHOW_BUF];
  polytel__diag(POLYTEL_LEVEL_WARN, "file exporter cannot write %s: %s; the batch is dropped",
                polytel__show_path(b, sizeof b, path), strerror(err));
}

static void file_send(polytel__uv_t *tp, polytel__request_t *req) {
  fs_t *fs = tp->ss;
  const char *name = polytel__uv_signal_name((int)req->signal);
  char path[PATH_MAX];
  int err = 0;
  if (!name) {
    polytel__uv_done_status(tp, req, 500, "unknown signal");
    return;
  }
  snprintf(path, sizeof path, "%s/%s.jsonl", fs->dir, name);
  int *fd = &fs->fd[req->signal];
  if (*fd < 0) {
    if (mkdir_p(fs->dir) != 0)
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
    warn_file(fs, path, err);
    /* A local write error does not heal by retrying soon: report it as a non-retryable failure. */
    polytel__uv_done_status(tp, req, 500, strerror(err));
    return;
  }
  polytel__uv_done_status(tp, req, 200, NULL);
}

static int file_init(polytel__uv_t *tp, const polytel__cfg_t *cfg) {
  if (!cfg->export_dir) return POLYTEL_EINVAL;
  fs_t *fs = calloc(1, sizeof *fs);
  if (!fs) return POLYTEL_ENOMEM;
  fs->dir = strdup(cfg->export_dir);
  if (!fs->dir) {
    free(fs);
    return POLYTEL_ENOMEM;
  }
  for (int i = 0; i < 3; i++) fs->fd[i] = -1;
  tp->ss = fs;
  return 0;
}

/* Created at start so a bad directory is said at once (each write tries again). */
static int file_open(polytel__uv_t *tp) {
  fs_t *fs = tp->ss;
  if (mkdir_p(fs->dir) != 0) {
    char b[POLYTEL__SHOW_BUF];
    int err = errno;
    polytel__diag(POLYTEL_LEVEL_WARN, "file exporter cannot create %s: %s",
                  polytel__show_path(b, sizeof b, fs->dir), strerror(err));
  }
  return 0;
}

static void file_teardown(polytel__uv_t *tp) {
  fs_t *fs = tp->ss;
  for (int i = 0; i < 3; i++) {
    if (fs->fd[i] >= 0) close(fs->fd[i]);
    fs->fd[i] = -1;
  }
}

static void file_free(polytel__uv_t *tp) {
  fs_t *fs = tp->ss;
  if (!fs) return;
  free(fs->dir);
  free(fs);
  tp->ss = NULL;
}

/* Writes finish inside send(): nothing to drive, nothing in flight at teardown. */
static const polytel__sender_t g_file = {file_init, file_open,     file_send, NULL,
                                         NULL,      file_teardown, file_free};

const polytel__transport_t polytel__transport_file = POLYTEL__UV_TRANSPORT("file", &g_file);
