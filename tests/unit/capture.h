/* capture.h — unit tests read polytel's console output back through a real pipe. */
#ifndef POLYTEL_TEST_CAPTURE_H
#define POLYTEL_TEST_CAPTURE_H

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/console.h"

static int cap_rd = -1, cap_wr = -1;

/* From now on the console writes into a pipe (1 MiB, non-blocking: a test can never hang on it). */
static void cap_begin(void) {
  int fds[2];
  assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  cap_rd = fds[0], cap_wr = fds[1];
  polytel__console_set_fd(cap_wr);
}

/* Everything written since cap_begin(), NUL-terminated; the console goes back to its destination. Caller
 * frees. */
static char *cap_read_all(void) {
  polytel__console_set_fd(-1);
  close(cap_wr);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    ssize_t k = read(cap_rd, buf + n, cap - n);
    if (k <= 0) break;
    n += (size_t)k;
  }
  close(cap_rd);
  buf[n] = '\0';
  return buf;
}

#endif
