/* fuzz_retry_after.c — libFuzzer target for Retry-After parsing (core/src/common/retry_after.c): arbitrary header
 * values must give -1 or a whole number of seconds within [0, a day]; delay-seconds read exactly; every
 * HTTP-date format (IMF-fixdate, RFC 850, asctime) of a fuzzer-chosen instant, formatted independently
 * here, reads back as that instant; a date mangled by one byte never crashes.
 *
 * Input: byte 0 picks the mode, bytes 1-8 the current time; mode even: the rest is a raw header value;
 * mode odd: 8 bytes of instant, 1 byte of format and padding, 2 bytes of mutation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "common/retry_after.h"

#define DAY_MS ((int64_t)POLYTEL__RETRY_AFTER_MAX_S * 1000)
#define T_MIN (-2208988800LL) /* 1900-01-01 */
#define T_MAX 253402300799LL  /* 9999-12-31T23:59:59 */

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void sane(int64_t r) {
  CHECK(r == -1 || (r >= 0 && r <= DAY_MS && r % 1000 == 0));
}

static int64_t expect_from(int64_t t, int64_t now) {
  if (t <= now) return 0;
  return t - now > POLYTEL__RETRY_AFTER_MAX_S ? DAY_MS : (t - now) * 1000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 9) return 0;
  int mode = data[0];
  /* now: 1970 .. ~36812 (2^40 s) */
  int64_t now = (int64_t)(rd64(data + 1) & ((1ull << 40) - 1));
  const char *v = (const char *)data + 9;
  size_t n = size - 9;

  if (!(mode & 1)) {
    int64_t r = polytel__retry_after_parse(v, n, now);
    sane(r);
    CHECK(polytel__retry_after_parse(v, n, now) == r); /* deterministic */
    /* delay-seconds, read exactly (surrounding blanks allowed) */
    size_t a = 0, b = n;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\r' || v[b - 1] == '\n')) b--;
    int all_digits = a < b;
    uint64_t secs = 0;
    for (size_t i = a; i < b; i++) {
      if (v[i] < '0' || v[i] > '9') {
        all_digits = 0;
        break;
      }
      if (secs < 1000000) secs = secs * 10 + (uint64_t)(v[i] - '0');
    }
    if (all_digits)
      CHECK(r == (int64_t)(secs > POLYTEL__RETRY_AFTER_MAX_S ? POLYTEL__RETRY_AFTER_MAX_S : secs) * 1000);
    if (a == b) CHECK(r == -1);
    return 0;
  }

  if (n < 11) return 0;
  int64_t t = T_MIN + (int64_t)(rd64((const uint8_t *)v) % (uint64_t)(T_MAX - T_MIN + 1));
  int fmt = (uint8_t)v[8] % 3, pad = (uint8_t)v[8] / 3 % 4;
  time_t tt = (time_t)t;
  struct tm tm;
  CHECK(gmtime_r(&tt, &tm) != NULL);
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const wdl[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                    "Thursday", "Friday", "Saturday"};
  char buf[96];
  const char *lead = pad & 1 ? " \t" : "", *trail = pad & 2 ? "\r\n" : "";
  int year = tm.tm_year + 1900, k;
  if (fmt == 0)
    k = snprintf(buf, sizeof buf, "%s%s, %02d %s %04d %02d:%02d:%02d GMT%s", lead, wd[tm.tm_wday], tm.tm_mday,
                 mon[tm.tm_mon], year, tm.tm_hour, tm.tm_min, tm.tm_sec, trail);
  else if (fmt == 1)
    k = snprintf(buf, sizeof buf, "%s%s, %02d-%s-%02d %02d:%02d:%02d GMT%s", lead, wdl[tm.tm_wday],
                 tm.tm_mday, mon[tm.tm_mon], year % 100, tm.tm_hour, tm.tm_min, tm.tm_sec, trail);
  else
    k = snprintf(buf, sizeof buf, "%s%s %s %2d %02d:%02d:%02d %04d%s", lead, wd[tm.tm_wday], mon[tm.tm_mon],
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, year, trail);
  CHECK(k > 0 && (size_t)k < sizeof buf);
  int64_t r = polytel__retry_after_parse(buf, (size_t)k, now);
  sane(r);
  if (fmt != 1) {
    CHECK(r == expect_from(t, now));
  } else {
    /* two digits of year: the instant is recovered when it lies within 50 years of now (RFC 9110) */
    time_t nt = (time_t)now;
    struct tm ntm;
    CHECK(gmtime_r(&nt, &ntm) != NULL);
    int dy = year - (ntm.tm_year + 1900);
    /* (outside that window it names another century, where 29 Feb may not exist: -1 is fine) */
    if (dy > -49 && dy < 50) CHECK(r == expect_from(t, now));
  }
  /* one byte changed: anything but a crash or an out-of-range answer */
  buf[(uint8_t)v[9] % k] = v[10];
  sane(polytel__retry_after_parse(buf, (size_t)k, now));
  return 0;
}
