/* errors.c — return-code and level names, generated from POLYTEL_ERRNO_MAP and POLYTEL_LEVEL_MAP. */
#include <stdlib.h>
#include <strings.h>

#include "polytel.h"

const char *polytel_strerror(int err) {
  switch (err) {
    case 0:
      return "success";
#define XX(name, value, msg) \
  case POLYTEL_##name:       \
    return msg;
      POLYTEL_ERRNO_MAP(XX)
#undef XX
    default:
      return "unknown error";
  }
}

const char *polytel_err_name(int err) {
  switch (err) {
    case 0:
      return "POLYTEL_OK";
#define XX(name, value, msg) \
  case POLYTEL_##name:       \
    return "POLYTEL_" #name;
      POLYTEL_ERRNO_MAP(XX)
#undef XX
    default:
      return "POLYTEL_EUNKNOWN";
  }
}

const char *polytel_version(void) {
  return POLYTEL_VERSION_STRING;
}

const char *polytel_level_name(int level) {
  switch (level) {
#define XX(name, value, text) \
  case POLYTEL_LEVEL_##name:  \
    return text;
    POLYTEL_LEVEL_MAP(XX)
#undef XX
    case POLYTEL_LEVEL_OFF:
      return "off";
    default:
      return NULL;
  }
}

int polytel_level_parse(const char *name) {
  if (!name) return -1;
  while (*name == ' ' || *name == '\t') name++;
  size_t n = strlen(name);
  while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t')) n--;
  if (n == 0) return -1;
  if (name[0] >= '0' && name[0] <= '9') {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
      if (name[i] < '0' || name[i] > '9' || v > 255) return -1;
      v = v * 10 + (name[i] - '0');
    }
    return (v >= 1 && v <= 24) || v == POLYTEL_LEVEL_OFF ? v : -1;
  }
  static const struct {
    const char *text;
    int level;
  } names[] = {
#define XX(name, value, text) {text, POLYTEL_LEVEL_##name},
      POLYTEL_LEVEL_MAP(XX)
#undef XX
          {"warning", POLYTEL_LEVEL_WARN},
      {"off", POLYTEL_LEVEL_OFF}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i].text) == n && strncasecmp(name, names[i].text, n) == 0) return names[i].level;
  return -1;
}
