/* errors.c — return-code names and messages, generated from POLYTEL_ERRNO_MAP. */
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
