/* retry_after.c — Retry-After parsing (delay-seconds or HTTP-date, RFC 9110), portable and curl-free. */
#include "common/retry_after.h"

#include <string.h>

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* Exactly n digits at *p (advanced). */
static int digits(const char **p, const char *end, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (*p >= end || !is_digit(**p)) return 0;
    v = v * 10 + (**p - '0');
    (*p)++;
  }
  *out = v;
  return 1;
}

/* The literal s at *p, ASCII case-insensitively (advanced). */
static int lit(const char **p, const char *end, const char *s) {
  size_t n = strlen(s);
  if ((size_t)(end - *p) < n) return 0;
  for (size_t i = 0; i < n; i++) {
    char a = (*p)[i], b = s[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
    if (a != b) return 0;
  }
  *p += n;
  return 1;
}

/* One of the names (3-letter forms, or full day names for RFC 850); returns its index or -1. */
static int name_of(const char **p, const char *end, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (lit(p, end, names[i])) return i;
  return -1;
}

static const char *const k_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const k_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const k_long_days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};

static int leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int valid_date(int y, int mon, int d, int h, int mi, int s) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mon < 0 || mon > 11 || d < 1) return 0;
  int md = mdays[mon] + (mon == 1 && leap(y));
  return d <= md && h <= 23 && mi <= 59 && s <= 60; /* 60: a leap second */
}

/* "HH:MM:SS" */
static int time_of_day(const char **p, const char *end, int *h, int *mi, int *s) {
  return digits(p, end, 2, h) && lit(p, end, ":") && digits(p, end, 2, mi) && lit(p, end, ":") &&
         digits(p, end, 2, s);
}

/* The year of a day count since 1970-01-01 (H. Hinnant's civil_from_days, year only). */
static int64_t year_of(int64_t z) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10);
}

/* Unix seconds of an HTTP-date filling [p, end) exactly into *out; 0 when it is not one. now_s resolves
 * RFC 850's two-digit year. */
static int http_date(const char *p, const char *end, int64_t now_s, int64_t *out) {
  const char *q = p;
  int y = 0, mon = 0, d = 0, h = 0, mi = 0, s = 0;
  if (name_of(&q, end, k_long_days, 7) >= 0) {
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    int yy;
    if (!(lit(&q, end, ", ") && digits(&q, end, 2, &d) && lit(&q, end, "-") &&
          (mon = name_of(&q, end, k_months, 12)) >= 0 && lit(&q, end, "-") && digits(&q, end, 2, &yy) &&
          lit(&q, end, " ") && time_of_day(&q, end, &h, &mi, &s) && lit(&q, end, " GMT") && q == end))
      return 0;
    /* RFC 9110: a two-digit year more than 50 years ahead is the most recent past year with those digits:
     * the year is the one with these digits in (now - 50, now + 50]. */
    int64_t cur = year_of((now_s >= 0 ? now_s : now_s - 86399) / 86400);
    int64_t full = cur - cur % 100 + yy;
    if (full > cur + 50) full -= 100;
    if (full <= cur - 50) full += 100;
    if (full < 0 || full > 9999) return 0;
    y = (int)full;
  } else if (name_of(&q, end, k_days, 7) >= 0) {
    if (q < end && *q == ',') {
      /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
      if (!(lit(&q, end, ", ") && digits(&q, end, 2, &d) && lit(&q, end, " ") &&
            (mon = name_of(&q, end, k_months, 12)) >= 0 && lit(&q, end, " ") && digits(&q, end, 4, &y) &&
            lit(&q, end, " ") && time_of_day(&q, end, &h, &mi, &s) && lit(&q, end, " GMT") && q == end))
        return 0;
    } else {
      /* asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space) */
      if (!(lit(&q, end, " ") && (mon = name_of(&q, end, k_months, 12)) >= 0 && lit(&q, end, " "))) return 0;
      if (q < end && *q == ' ') {
        q++;
        if (!digits(&q, end, 1, &d)) return 0;
      } else if (!digits(&q, end, 2, &d)) {
        return 0;
      }
      if (!(lit(&q, end, " ") && time_of_day(&q, end, &h, &mi, &s) && lit(&q, end, " ") &&
            digits(&q, end, 4, &y) && q == end))
        return 0;
    }
  } else {
    return 0;
  }
  if (!valid_date(y, mon, d, h, mi, s)) return 0;
  if (s == 60) s = 59;
  *out = days_from_civil(y, mon + 1, d) * 86400 + h * 3600 + mi * 60 + s;
  return 1;
}

int64_t polytel__retry_after_parse(const char *v, size_t len, int64_t now_s) {
  if (!v) return -1;
  const char *p = v, *end = v + len;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
  if (p == end) return -1;
  const char *q = p;
  while (q < end && is_digit(*q)) q++;
  if (q == end) {
    /* delay-seconds: clamp before the arithmetic can overflow */
    int64_t secs = 0;
    for (q = p; q < end && secs <= POLYTEL__RETRY_AFTER_MAX_S; q++) secs = secs * 10 + (*q - '0');
    return (secs > POLYTEL__RETRY_AFTER_MAX_S ? POLYTEL__RETRY_AFTER_MAX_S : secs) * 1000;
  }
  int64_t t;
  if (!http_date(p, end, now_s, &t)) return -1;
  if (t <= now_s) return 0;
  int64_t d = t - now_s;
  return (d > POLYTEL__RETRY_AFTER_MAX_S ? POLYTEL__RETRY_AFTER_MAX_S : d) * 1000;
}
