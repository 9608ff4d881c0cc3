/* lazy_curl.c — the libcurl functions the core uses, loaded with dlopen at the first phase-2 call, not at
 * import. */
/*
 * Loading libcurl means loading its whole dependency tree (TLS, GSSAPI, LDAP, SSH, HTTP/2...):
 * about 5 ms, more than the rest of `import polytel`. Phase 1 never touches curl (the
 * transport calls curl_global_init() when it starts), so these definitions stand in for
 * libcurl's and resolve the real ones on first use. The version script keeps them local to
 * the extension. setup.py links -lcurl instead when the core calls a function missing here.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#ifndef CURLOPTTYPE_BLOB
#define CURLOPTTYPE_BLOB 40000
#endif
/* libcurl's soname since 2006; Debian/Ubuntu also ship a GnuTLS build under another name. */
static const char *const curl_sonames[] = {"libcurl.so.4", "libcurl-gnutls.so.4"};
static const char *soname = "libcurl.so.4";

/* XX(return type, name, (parameters), (arguments), value when libcurl cannot be loaded) */
#define LAZY_CURL_FUNCS(XX)                                                                                \
  XX(CURLcode, curl_global_init, (long flags), (flags), CURLE_FAILED_INIT)                                 \
  XX(CURL *, curl_easy_init, (void), (), NULL)                                                             \
  XX(const char *, curl_easy_strerror, (CURLcode code), (code), "libcurl could not be loaded")             \
  XX(CURLM *, curl_multi_init, (void), (), NULL)                                                           \
  XX(CURLMcode, curl_multi_cleanup, (CURLM * m), (m), CURLM_INTERNAL_ERROR)                                \
  XX(CURLMcode, curl_multi_add_handle, (CURLM * m, CURL * e), (m, e), CURLM_INTERNAL_ERROR)                \
  XX(CURLMcode, curl_multi_remove_handle, (CURLM * m, CURL * e), (m, e), CURLM_INTERNAL_ERROR)             \
  XX(CURLMcode, curl_multi_assign, (CURLM * m, curl_socket_t s, void *p), (m, s, p), CURLM_INTERNAL_ERROR) \
  XX(CURLMcode, curl_multi_socket_action, (CURLM * m, curl_socket_t s, int ev, int *running),              \
     (m, s, ev, running), CURLM_INTERNAL_ERROR)                                                            \
  XX(CURLMsg *, curl_multi_info_read, (CURLM * m, int *left), (m, left), NULL)                             \
  XX(struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s), (l, s), NULL)         \
  XX(time_t, curl_getdate, (const char *p, const time_t *unused), (p, unused), -1)

#define LAZY_CURL_VOID(XX)                     \
  XX(curl_easy_cleanup, (CURL * curl), (curl)) \
  XX(curl_easy_reset, (CURL * curl), (curl))   \
  XX(curl_slist_free_all, (struct curl_slist * l), (l))

/* The variadic ones take exactly one argument after the option, typed by the option's range. */
#define LAZY_CURL_VARIADIC(XX)                                          \
  XX(CURLcode, curl_easy_setopt, CURL *, CURLoption, CURLE_FAILED_INIT) \
  XX(CURLMcode, curl_multi_setopt, CURLM *, CURLMoption, CURLM_INTERNAL_ERROR)

static struct {
#define XX(ret, name, params, args, fail) ret(*name) params;
  LAZY_CURL_FUNCS(XX)
#undef XX
#define XX(name, params, args) void(*name) params;
  LAZY_CURL_VOID(XX)
#undef XX
#define XX(ret, name, handle_t, opt_t, fail) ret (*name)(handle_t, opt_t, ...);
  LAZY_CURL_VARIADIC(XX)
#undef XX
  CURLcode (*curl_easy_getinfo)(CURL *, CURLINFO, ...);
} real;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic" /* dlsym() returns object pointers; POSIX makes them callable */
#endif
static void load(void) {
  void *h = NULL;
  char why[256] = "";
  for (size_t i = 0; i < sizeof curl_sonames / sizeof curl_sonames[0] && !h; i++) {
    h = dlopen(curl_sonames[i], RTLD_NOW | RTLD_LOCAL);
    if (h)
      soname = curl_sonames[i];
    else if (i == 0) {
      const char *e = dlerror();
      snprintf(why, sizeof why, "%s", e ? e : "not found");
    }
  }
  if (!h) {
    /* One line, naming the library and the package: the wheel carries everything else. */
    fprintf(stderr,
            "polytel: OTLP export needs libcurl, which cannot be loaded (%s); install it "
            "(Debian/Ubuntu: apt-get install libcurl4, Fedora: dnf install libcurl)\n",
            why);
    return;
  }
  int ok = 1;
#define LOAD(name)                                             \
  if (!(*(void **)&real.name = dlsym(h, #name))) {             \
    fprintf(stderr, "polytel: %s has no %s\n", soname, #name); \
    ok = 0;                                                    \
  }
#define XX(ret, name, ...) LOAD(name)
  LAZY_CURL_FUNCS(XX)
  LAZY_CURL_VARIADIC(XX)
#undef XX
#define XX(name, ...) LOAD(name)
  LAZY_CURL_VOID(XX)
#undef XX
  LOAD(curl_easy_getinfo)
#undef LOAD
  loaded = ok;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static int ready(void) {
  pthread_once(&load_once, load);
  return loaded;
}

#define XX(ret, name, params, args, fail) \
  ret name params {                       \
    if (!ready()) return fail;            \
    return real.name args;                \
  }
LAZY_CURL_FUNCS(XX)
#undef XX

#define XX(name, params, args)   \
  void name params {             \
    if (ready()) real.name args; \
  }
LAZY_CURL_VOID(XX)
#undef XX

/* libcurl's option numbers encode the argument type: long < 10000 <= pointer < 30000 <= curl_off_t < 40000 <=
 * blob. */
#define XX(ret, name, handle_t, opt_t, fail)                                           \
  ret name(handle_t h, opt_t option, ...) {                                            \
    if (!ready()) return fail;                                                         \
    va_list ap;                                                                        \
    va_start(ap, option);                                                              \
    ret rc;                                                                            \
    if ((long)option < CURLOPTTYPE_OBJECTPOINT) {                                      \
      long v = va_arg(ap, long);                                                       \
      rc = real.name(h, option, v);                                                    \
    } else if ((long)option >= CURLOPTTYPE_OFF_T && (long)option < CURLOPTTYPE_BLOB) { \
      curl_off_t v = va_arg(ap, curl_off_t);                                           \
      rc = real.name(h, option, v);                                                    \
    } else {                                                                           \
      void *v = va_arg(ap, void *);                                                    \
      rc = real.name(h, option, v);                                                    \
    }                                                                                  \
    va_end(ap);                                                                        \
    return rc;                                                                         \
  }
LAZY_CURL_VARIADIC(XX)
#undef XX

/* Every CURLINFO takes a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...) {
  if (!ready()) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, info);
  void *out = va_arg(ap, void *);
  va_end(ap);
  return real.curl_easy_getinfo(curl, info, out);
}
