/* fuzz_config.c — libFuzzer target for the env/config parser: an injected environment (and sometimes an
 * explicit polytel_config_t) from fuzz bytes; checks every resolved field's invariants, that header values
 * never reach the console, and that every warning is one clean line.
 *
 * Input: lines "NAME=VALUE". NAME "cfg.FIELD" sets an explicit field (strings as given, numbers with
 * strtoll); "set.KEY" goes through polytel_config_set (0, or POLYTEL_EINVAL with a one-line error); the
 * resolved view (polytel__cfg_describe) never shows a header value. Also checked: every console line stays
 * short (echoed values are cut at 64 bytes), a "SECRET" in a URL's userinfo or query, or in key material
 * pasted into a CLIENT_KEY variable, is never printed; forbidden headers never pass; resource and TLS
 * settings stay within their documented limits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/config.h"
#include "common/console.h"
#include "common/process.h"

#define MAX_VARS 64
static const char *names[MAX_VARS], *values[MAX_VARS];
static size_t n_vars;
static int out_fd = -1;

static const char *fake_get(const char *name) {
  const char *hit = NULL;
  for (size_t i = 0; i < n_vars; i++) {
    if (strcmp(names[i], name) == 0) hit = values[i]; /* last one wins, like a shell */
  }
  return hit;
}

static void set_explicit(polytel_config_t *u, const char *field, const char *v) {
  static const struct {
    const char *name;
    size_t off;
  } strs[] = {
#define S(f) {#f, offsetof(polytel_config_t, f)}
      S(service_name),    S(service_version), S(resource_attributes), S(endpoint),
      S(traces_endpoint), S(logs_endpoint),   S(metrics_endpoint),    S(headers),
      S(certificate),     S(export_dir),      S(sdk_language),        S(client_certificate),
      S(client_key),
#undef S
  };
  for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
    if (strcmp(field, strs[i].name) == 0) {
      memcpy((char *)u + strs[i].off, &v, sizeof v);
      return;
    }
  }
  long long x = strtoll(v, NULL, 10);
  if (!strcmp(field, "use_env")) u->use_env = (int)x;
  if (!strcmp(field, "struct_size")) u->struct_size = (uint32_t)x;
  if (!strcmp(field, "telemetry_enabled")) u->telemetry_enabled = (int)x;
  if (!strcmp(field, "sdk_disabled")) u->sdk_disabled = (int)x;
  if (!strcmp(field, "protocol")) u->protocol = (polytel_protocol_t)x;
  if (!strcmp(field, "compression_gzip")) u->compression_gzip = (int)x;
  if (!strcmp(field, "timeout_ms")) u->timeout_ms = x;
  if (!strcmp(field, "console")) u->console = (polytel_console_t)x;
  if (!strcmp(field, "console_format")) u->console_format = (polytel_console_format_t)x;
  if (!strcmp(field, "console_level")) u->console_level = (int)x;
  if (!strcmp(field, "exporter")) u->exporter = (polytel_exporter_t)x;
  if (!strcmp(field, "max_memory_bytes")) u->max_memory_bytes = x;
}

static int is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static void check_url(const char *u) {
  CHECK(u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0));
  for (const unsigned char *p = (const unsigned char *)u; *p; p++) CHECK(*p > 0x20 && *p < 0x7f);
}

static size_t count(const char *hay, size_t n, const char *needle) {
  size_t k = 0, nl = strlen(needle);
  for (size_t i = 0; i + nl <= n; i++) k += memcmp(hay + i, needle, nl) == 0;
  return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (out_fd < 0) {
    out_fd = memfd_create("fuzz_config", 0);
    CHECK(out_fd >= 0);
    polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_TRACE, 0);
    polytel__console_set_fd(out_fd);
  }
  CHECK(ftruncate(out_fd, 0) == 0);
  CHECK(lseek(out_fd, 0, SEEK_SET) == 0);

  char *buf = malloc(size + 1);
  memcpy(buf, data, size);
  buf[size] = '\0';

  polytel_config_t u;
  memset(&u, 0, sizeof u);
  u.struct_size = sizeof u;
  u.use_env = 1;
  u.telemetry_enabled = u.sdk_disabled = u.compression_gzip = u.console_level = -1;
  u.timeout_ms = u.max_memory_bytes = -1;
  int have_user = 0, quiet = 0;
  const char *headers_line = NULL;
  const char *secret_var = NULL, *secret_val = NULL; /* the variable whose value holds the one "SECRET" */

  n_vars = 0;
  for (char *line = buf; line && n_vars < MAX_VARS;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *eq = strchr(line, '=');
    if (eq) {
      *eq = '\0';
      if (strncmp(line, "cfg.", 4) == 0) {
        set_explicit(&u, line + 4, eq + 1);
        have_user = 1;
      } else if (strncmp(line, "set.", 4) == 0) {
        int src = polytel_config_set(&u, line + 4, eq + 1);
        const char *err = polytel_config_error();
        CHECK(src == 0 || src == POLYTEL_EINVAL);
        CHECK((src == 0) == (err[0] == '\0'));
        CHECK(strlen(err) < 512 && !strchr(err, '\n'));
        have_user = 1;
      } else if (strcmp(line, "quiet") == 0) {
        quiet = 1;
      } else {
        names[n_vars] = line;
        values[n_vars++] = eq + 1;
        if (strcmp(line, "OTEL_EXPORTER_OTLP_HEADERS") == 0) headers_line = eq + 1;
        if (strstr(eq + 1, "SECRET")) secret_var = line, secret_val = eq + 1;
      }
    }
    line = nl ? nl + 1 : NULL;
  }

  polytel__cfg_t c;
  int rc = quiet ? polytel__cfg_resolve_quiet(have_user ? &u : NULL, fake_get, &c)
                 : polytel__cfg_resolve(have_user ? &u : NULL, fake_get, &c);
  CHECK(rc == 0);

  polytel_resolved_t *view = polytel__cfg_describe(&c, NULL, 0);
  CHECK(view && view->n == POLYTEL__OPT_COUNT);
  for (size_t i = 0; i < view->n; i++) {
    CHECK(view->items[i].key);
    const char *v = view->items[i].value;
    if (!v || !strstr(view->items[i].key, "headers")) continue;
    /* "k=…,k2=…": keys (',' and '=' escaped), never a value */
    for (const char *e = v; *e;) {
      size_t n = strcspn(e, ",");
      CHECK(n >= 4 && memcmp(e + n - 4, "=\xe2\x80\xa6", 4) == 0 && memchr(e, '=', n) == e + n - 4);
      e += n + (e[n] == ',');
    }
  }
  polytel_config_resolved_free(view);
  (void)headers_line;

  CHECK(c.telemetry_enabled == 0 || c.telemetry_enabled == 1);
  CHECK(c.sdk_disabled == 0 || c.sdk_disabled == 1);
  CHECK(c.service_name && c.service_name[0]);
  CHECK(polytel__utf8_valid(c.service_name, strlen(c.service_name)));
  CHECK(!c.service_version || polytel__utf8_valid(c.service_version, strlen(c.service_version)));
  CHECK(c.sdk_language && c.sdk_language[0]);
  check_url(c.endpoint);
  CHECK(c.endpoint[strlen(c.endpoint) - 1] != '/');
  for (int s = 0; s < 3; s++) check_url(c.signal_url[s]);
  for (int s = -1; s < 3; s++) {
    /* no userinfo, raw or percent-encoded, in anything that will be used (or printed) */
    const char *u = s < 0 ? c.endpoint : c.signal_url[s];
    const char *a = strstr(u, "://") + 3;
    size_t an = strcspn(a, "/?#");
    CHECK(!memchr(a, '@', an) && !memchr(a, '%', an));
  }
  for (size_t i = 0; i < c.n_resource_attrs; i++) {
    CHECK(c.resource_attrs[i].key[0]);
    CHECK(polytel__utf8_valid(c.resource_attrs[i].key, strlen(c.resource_attrs[i].key)));
    CHECK(polytel__utf8_valid(c.resource_attrs[i].value, strlen(c.resource_attrs[i].value)));
    for (size_t j = 0; j < i; j++) CHECK(strcmp(c.resource_attrs[i].key, c.resource_attrs[j].key) != 0);
  }
  size_t res_bytes = 0;
  CHECK(c.n_resource_attrs <= POLYTEL__MAX_RESOURCE_ATTRS);
  for (size_t i = 0; i < c.n_resource_attrs; i++) {
    size_t kl = strlen(c.resource_attrs[i].key), vl = strlen(c.resource_attrs[i].value);
    CHECK(kl <= POLYTEL__MAX_RESOURCE_KEY && vl <= POLYTEL__MAX_RESOURCE_VALUE);
    res_bytes += kl + vl;
  }
  CHECK(res_bytes <= POLYTEL__MAX_RESOURCE_BYTES);
  CHECK(strlen(c.service_name) <= POLYTEL__MAX_SERVICE_NAME);
  CHECK(!c.service_version || strlen(c.service_version) <= POLYTEL__MAX_SERVICE_NAME);
  for (int s = -1; s < 3; s++) {
    const polytel__strpair_t *hs = s < 0 ? c.headers : c.signal_headers[s];
    size_t nh = s < 0 ? c.n_headers : c.n_signal_headers[s];
    CHECK(s < 0 || c.has_signal_headers[s] || nh == 0);
    for (size_t i = 0; i < nh; i++) {
      CHECK(hs[i].key[0]);
      for (const unsigned char *p = (const unsigned char *)hs[i].key; *p; p++) CHECK(is_tchar(*p));
      CHECK(!polytel__header_forbidden(hs[i].key, strlen(hs[i].key)));
      for (const unsigned char *p = (const unsigned char *)hs[i].value; *p; p++) {
        CHECK(*p >= 0x20 || *p == '\t');
        CHECK(*p != 0x7f);
      }
    }
  }
  for (int s = 0; s < 3; s++) {
    CHECK(!c.tls_key[s] || c.tls_cert[s]); /* a key is only ever used with its certificate */
    for (char *const *f = (char *const[]){c.tls_cert[s], c.tls_key[s]}, *const *e = f + 2; f < e; f++)
      CHECK(!*f || !strstr(*f, "-----BEGIN")); /* key material is never passed on as a path */
  }
  CHECK(c.protocol == POLYTEL_PROTOCOL_PROTOBUF || c.protocol == POLYTEL_PROTOCOL_JSON);
  CHECK(c.gzip >= POLYTEL_COMPRESSION_NONE && c.gzip <= POLYTEL_COMPRESSION_ZSTD);
  CHECK(c.timeout_ms >= 1);
  CHECK(c.console >= POLYTEL_CONSOLE_STDERR && c.console <= POLYTEL_CONSOLE_OFF);
  CHECK(c.console_format == POLYTEL_CONSOLE_FORMAT_TEXT || c.console_format == POLYTEL_CONSOLE_FORMAT_JSON);
  CHECK(c.console_level == POLYTEL_LEVEL_TRACE || c.console_level == POLYTEL_LEVEL_DEBUG ||
        c.console_level == POLYTEL_LEVEL_INFO || c.console_level == POLYTEL_LEVEL_WARN ||
        c.console_level == POLYTEL_LEVEL_ERROR || c.console_level == POLYTEL_LEVEL_FATAL ||
        c.console_level == POLYTEL_LEVEL_OFF);
  CHECK(c.color == 0 || c.color == 1);
  CHECK(c.exporter >= POLYTEL_EXPORTER_OTLP && c.exporter <= POLYTEL_EXPORTER_NONE);
  CHECK(c.export_dir && c.export_dir[0]);
  CHECK(c.max_memory_bytes >= (256u << 10));
  const polytel__batch_cfg_t *b[2] = {&c.bsp, &c.blrp};
  for (int i = 0; i < 2; i++) {
    CHECK(b[i]->schedule_delay_ms >= 1 && b[i]->export_timeout_ms >= 1);
    CHECK(b[i]->max_export_batch_size >= 1 && b[i]->max_export_batch_size <= b[i]->max_queue_size);
  }
  CHECK(c.metric_export_interval_ms >= 1 && c.metric_export_timeout_ms >= 1);

  polytel__resource_t r;
  CHECK(polytel__resource_build(&c, &r) == 0);
  CHECK(polytel__resource_get(&r, "service.name", NULL) != NULL);
  polytel__resource_free(&r);
  polytel__cfg_free(&c);

  /* What the console got: clean lines only, and never a header value. */
  off_t n = lseek(out_fd, 0, SEEK_CUR);
  CHECK(n >= 0);
  char *out = malloc((size_t)n + 1);
  CHECK(pread(out_fd, out, (size_t)n, 0) == n);
  out[n] = '\0';
  CHECK(!quiet || n == 0);
  CHECK(n == 0 || out[n - 1] == '\n');
  CHECK(polytel__utf8_valid(out, (size_t)n));
  off_t line_start = 0;
  for (off_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)out[i];
    CHECK(ch >= 0x20 || ch == '\n');
    CHECK(ch != 0x7f);
    CHECK(!(ch == 0xc2 && i + 1 < n && (unsigned char)out[i + 1] < 0xa0)); /* C1 controls */
    if (ch == '\n') {
      /* Values are echoed 64 bytes at most (escaped: x4), names and fixed text around them: never the 2 KB
       * buffer, never the whole value. */
      CHECK(i - line_start < 1024);
      line_start = i + 1;
    }
  }
  /* A "SECRET" that occurs once, in a URL's userinfo (raw or escaped) or query/fragment, or in key material
   * pasted into a CLIENT_KEY variable, is never printed. */
  if (secret_var && count((const char *)data, size, "SECRET") == 1) {
    const char *at = strstr(secret_val, "SECRET");
    int hidden = 0;
    if (strstr(secret_var, "ENDPOINT")) {
      /* independent of polytel__show_url: the userinfo is whatever precedes the authority's last '@' or
       * "%40" (the authority starts after the first "://", or at the start when there is none) */
      size_t q = strcspn(secret_val, "?#"), pos = (size_t)(at - secret_val);
      if (pos > q) hidden = 1; /* in the query or fragment */
      const char *sep = strstr(secret_val, "://");
      size_t a = 0;
      if (sep && (size_t)(sep - secret_val) < q) {
        a = (size_t)(sep - secret_val) + 3;
        for (const char *p = secret_val; p < sep; p++)
          if (*p == '/') a = 0;
      }
      size_t an = strcspn(secret_val + a, "/?#"), last = 0;
      for (size_t i = a; i < a + an; i++) {
        if (secret_val[i] == '@') last = i;
        if (i + 2 < a + an && !strncmp(secret_val + i, "%40", 3)) last = i;
      }
      if (last && pos >= a && pos < last) hidden = 1;
    } else if (strstr(secret_var, "CLIENT_KEY") && strstr(secret_val, "-----BEGIN")) {
      hidden = 1;
    }
    if (hidden) CHECK(count(out, (size_t)n, "SECRET") == 0);
  }
  /* A marker that occurs once in the input, inside the headers, must never be printed. */
  const char *secret = headers_line ? strstr(headers_line, "SECRET") : NULL;
  if (secret && count((const char *)data, size, "SECRET") == 1) {
    const char *start = secret;
    while (start > headers_line && start[-1] != ',') start--;
    const char *eq = strchr(start, '='), *comma = strchr(start, ',');
    int in_key = eq && eq > secret && (!comma || eq < comma);
    if (!in_key) CHECK(count(out, (size_t)n, "SECRET") == 0);
  }
  free(out);
  free(buf);
  return 0;
}
