/* smoke_worker.c — runs tests/smoke/scenario.json step by step with the C API (the smoke suite's C worker).
 */
#include <polytel.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Usage: smoke_worker SCENARIO.json
 * Configuration comes from the environment (TELEMETRY_ENABLED, OTEL_*, POLYTEL_*). With SMOKE_REPORT=FILE,
 * each process appends JSON lines saying what it observed (phase after load/bootstrap, the fork child).
 *
 * "exit" leaves with exit(3) and no explicit shutdown: the worker registers an atexit handler at load that
 * calls polytel_shutdown(), which is how a C program delivers what is pending when it ends. A fork child
 * inherits the handler.
 */

/* ------------------------------------------------------------ a small JSON reader (the scenario only) */

typedef enum { J_NULL, J_BOOL, J_INT, J_DOUBLE, J_STRING, J_ARRAY, J_OBJECT } jtype_t;

typedef struct jval_s {
  jtype_t type;
  int b;
  long long i;
  double d;
  char *s; /* J_STRING; also the key when this is an object member */
  size_t len;
  char *key;
  struct jval_s *items; /* J_ARRAY / J_OBJECT members */
  size_t n;
} jval_t;

typedef struct {
  const char *p, *end;
  const char *err;
} jparser_t;

static void skip_ws(jparser_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int parse_value(jparser_t *j, jval_t *out);

static void put_utf8(char *buf, size_t *n, unsigned cp) {
  if (cp < 0x80) {
    buf[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    buf[(*n)++] = (char)(0xC0 | (cp >> 6));
    buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    buf[(*n)++] = (char)(0xE0 | (cp >> 12));
    buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    buf[(*n)++] = (char)(0xF0 | (cp >> 18));
    buf[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    char c = p[k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static int parse_string(jparser_t *j, char **s, size_t *len) {
  if (j->p >= j->end || *j->p != '"') return j->err = "expected a string", -1;
  j->p++;
  /* Escapes only shrink the text (\uXXXX is 6 bytes for at most 4), so the raw length bounds the result. */
  char *buf = malloc((size_t)(j->end - j->p) + 1);
  size_t n = 0;
  if (!buf) return j->err = "out of memory", -1;
  while (j->p < j->end && *j->p != '"') {
    char c = *j->p++;
    if (c != '\\') {
      buf[n++] = c;
      continue;
    }
    if (j->p >= j->end) break;
    char e = *j->p++;
    switch (e) {
      case 'n':
        buf[n++] = '\n';
        break;
      case 't':
        buf[n++] = '\t';
        break;
      case 'r':
        buf[n++] = '\r';
        break;
      case 'b':
        buf[n++] = '\b';
        break;
      case 'f':
        buf[n++] = '\f';
        break;
      case 'u': {
        unsigned cp;
        if (j->end - j->p < 4 || hex4(j->p, &cp) != 0) return free(buf), j->err = "bad \\u escape", -1;
        j->p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
          unsigned lo;
          if (hex4(j->p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            j->p += 6;
          }
        }
        put_utf8(buf, &n, cp);
        break;
      }
      default:
        buf[n++] = e;
        break; /* \" \\ \/ */
    }
  }
  if (j->p >= j->end) return free(buf), j->err = "unterminated string", -1;
  j->p++;
  buf[n] = 0;
  *s = buf;
  *len = n;
  return 0;
}

static int push(jval_t *v, jval_t *item) {
  jval_t *grown = realloc(v->items, (v->n + 1) * sizeof *grown);
  if (!grown) return -1;
  v->items = grown;
  v->items[v->n++] = *item;
  return 0;
}

static int parse_value(jparser_t *j, jval_t *out) {
  memset(out, 0, sizeof *out);
  skip_ws(j);
  if (j->p >= j->end) return j->err = "unexpected end", -1;
  char c = *j->p;
  if (c == '{' || c == '[') {
    out->type = c == '{' ? J_OBJECT : J_ARRAY;
    char close = c == '{' ? '}' : ']';
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) return j->p++, 0;
    for (;;) {
      jval_t item;
      char *key = NULL;
      size_t klen;
      skip_ws(j);
      if (out->type == J_OBJECT) {
        if (parse_string(j, &key, &klen) != 0) return -1;
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':') return free(key), j->err = "expected ':'", -1;
        j->p++;
      }
      if (parse_value(j, &item) != 0) return free(key), -1;
      item.key = key;
      if (push(out, &item) != 0) return j->err = "out of memory", -1;
      skip_ws(j);
      if (j->p < j->end && *j->p == ',') {
        j->p++;
        continue;
      }
      if (j->p < j->end && *j->p == close) return j->p++, 0;
      return j->err = "expected ',' or a closing bracket", -1;
    }
  }
  if (c == '"') {
    out->type = J_STRING;
    return parse_string(j, &out->s, &out->len);
  }
  if (j->end - j->p >= 4 && !strncmp(j->p, "true", 4)) return out->type = J_BOOL, out->b = 1, j->p += 4, 0;
  if (j->end - j->p >= 5 && !strncmp(j->p, "false", 5)) return out->type = J_BOOL, out->b = 0, j->p += 5, 0;
  if (j->end - j->p >= 4 && !strncmp(j->p, "null", 4)) return out->type = J_NULL, j->p += 4, 0;
  /* A number: with a fraction or exponent it is a double (as in every binding), else an int64. */
  const char *start = j->p;
  int is_double = 0;
  while (j->p < j->end && strchr("+-0123456789.eE", *j->p)) {
    if (*j->p == '.' || *j->p == 'e' || *j->p == 'E') is_double = 1;
    j->p++;
  }
  if (j->p == start) return j->err = "unexpected character", -1;
  char num[64];
  size_t nl = (size_t)(j->p - start);
  if (nl >= sizeof num) return j->err = "number too long", -1;
  memcpy(num, start, nl);
  num[nl] = 0;
  char *endp;
  errno = 0;
  if (is_double) {
    out->type = J_DOUBLE;
    out->d = strtod(num, &endp);
  } else {
    out->type = J_INT;
    out->i = strtoll(num, &endp, 10);
  }
  if (*endp || errno) return j->err = "bad number", -1;
  return 0;
}

static const jval_t *get(const jval_t *obj, const char *key) {
  if (!obj || obj->type != J_OBJECT) return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (!strcmp(obj->items[i].key, key)) return &obj->items[i];
  return NULL;
}

static const char *get_str(const jval_t *obj, const char *key, const char *dflt) {
  const jval_t *v = get(obj, key);
  return v && v->type == J_STRING ? v->s : dflt;
}

/* ------------------------------------------------------------ the scenario */

static const char *g_target = "smoke";

static void die(const char *what, const char *detail) {
  fprintf(stderr, "smoke_worker: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

/* The core's resolved configuration as a JSON object (what the bindings' bootstrap_worker report). */
static void config_json(char *out, size_t cap) {
  polytel_resolved_t *r = polytel_config_resolved();
  size_t n = 0;
#define PUT(...)                                                    \
  do {                                                              \
    int k_ = snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__); \
    if (k_ > 0) n += (size_t)k_;                                    \
  } while (0)
  PUT("{");
  for (size_t i = 0; r && i < r->n; i++) {
    const polytel_setting_t *it = &r->items[i];
    PUT("%s\"%s\": ", i ? ", " : "", it->key);
    if (!it->value) {
      PUT("null");
    } else if (it->type != POLYTEL_VALUE_STRING) {
      PUT("%s", it->value);
    } else {
      PUT("\"");
      for (const char *c = it->value; *c; c++) {
        if (*c == '"' || *c == '\\')
          PUT("\\%c", *c);
        else if ((unsigned char)*c < 0x20)
          PUT("\\u%04x", (unsigned char)*c);
        else
          PUT("%c", *c);
      }
      PUT("\"");
    }
  }
  PUT("}");
#undef PUT
  polytel_config_resolved_free(r);
  if (n >= cap) die("the resolved configuration does not fit the report line", NULL);
}

static void note(const char *fmt, ...) POLYTEL_PRINTF(1, 2);
static void note(const char *fmt, ...) {
  const char *path = getenv("SMOKE_REPORT");
  if (!path || !*path) return;
  FILE *f = fopen(path, "a");
  if (!f) die("cannot open SMOKE_REPORT", path);
  va_list ap;
  va_start(ap, fmt);
  fprintf(f, "{\"pid\": %ld, ", (long)getpid());
  vfprintf(f, fmt, ap);
  fputs("}\n", f);
  va_end(ap);
  fclose(f);
}

/* The attributes of an object, as polytel_attr_t (pointing into the parsed scenario, which lives on). */
static size_t to_attrs(const jval_t *obj, polytel_attr_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; obj && obj->type == J_OBJECT && i < obj->n && n < cap; i++) {
    const jval_t *v = &obj->items[i];
    polytel_attr_t *a = &out[n];
    a->key = v->key;
    switch (v->type) {
      case J_STRING:
        a->type = POLYTEL_ATTR_STRING;
        a->value.str.ptr = v->s;
        a->value.str.len = v->len;
        break;
      case J_INT:
        a->type = POLYTEL_ATTR_INT;
        a->value.i = v->i;
        break;
      case J_DOUBLE:
        a->type = POLYTEL_ATTR_DOUBLE;
        a->value.d = v->d;
        break;
      case J_BOOL:
        a->type = POLYTEL_ATTR_BOOL;
        a->value.b = v->b;
        break;
      default:
        die("unsupported attribute value for", v->key);
    }
    n++;
  }
  return n;
}

static polytel_level_t level_of(const char *name) {
  static const struct {
    const char *name;
    polytel_level_t level;
  } levels[] = {{"trace", POLYTEL_LEVEL_TRACE}, {"debug", POLYTEL_LEVEL_DEBUG},
                {"info", POLYTEL_LEVEL_INFO},   {"warn", POLYTEL_LEVEL_WARN},
                {"error", POLYTEL_LEVEL_ERROR}, {"fatal", POLYTEL_LEVEL_FATAL}};
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    if (!strcmp(levels[i].name, name)) return levels[i].level;
  die("unknown level", name);
  return POLYTEL_LEVEL_OFF;
}

#define MAX_ATTRS 32
#define MAX_DEPTH 16

/* Attributes set while a span is open, sent when it ends (polytel_span_end_status). */
typedef struct {
  polytel_attr_t extra[MAX_ATTRS];
  size_t n_extra;
} open_span_t;

static open_span_t g_spans[MAX_DEPTH];
static int g_depth;

static void at_exit_shutdown(void) {
  /* The C user's exit hook: deliver what is pending, bounded (an unreachable collector costs 5 s at most). */
  polytel_shutdown(5000);
}

static void run_steps(const jval_t *steps);

static void run_step(const jval_t *step) {
  const char *op = get_str(step, "op", "");
  polytel_attr_t attrs[MAX_ATTRS];
  if (!strcmp(op, "load")) {
    polytel_init_console_only(NULL);
    if (atexit(at_exit_shutdown) != 0) die("atexit failed", NULL);
    note("\"event\": \"load\", \"phase\": \"%s\"", polytel_phase_name(polytel_phase()));
  } else if (!strcmp(op, "log")) {
    const jval_t *body = get(step, "body");
    if (!body || body->type != J_STRING) die("log without a body", NULL);
    size_t n = to_attrs(get(step, "attributes"), attrs, MAX_ATTRS);
    polytel_log_attrs(level_of(get_str(step, "level", "info")), g_target, body->s, body->len, attrs, n, NULL);
  } else if (!strcmp(op, "bootstrap")) {
    int rc = polytel_init_full_telemetry(NULL, NULL);
    static char cfg[16384];
    config_json(cfg, sizeof cfg);
    note("\"event\": \"bootstrap\", \"phase\": \"%s\", \"rc\": \"%s\", \"config\": %s",
         polytel_phase_name(polytel_phase()), polytel_err_name(rc), cfg);
  } else if (!strcmp(op, "span")) {
    if (g_depth >= MAX_DEPTH) die("spans nested too deep", NULL);
    size_t n = to_attrs(get(step, "attributes"), attrs, MAX_ATTRS);
    polytel_span_begin_dyn(get_str(step, "name", "?"), attrs, n);
    g_spans[g_depth++].n_extra = 0;
    run_steps(get(step, "steps"));
    open_span_t *sp = &g_spans[--g_depth];
    polytel_span_end_status(POLYTEL_STATUS_UNSET, NULL, sp->extra, sp->n_extra);
  } else if (!strcmp(op, "set_attribute")) {
    if (g_depth == 0) die("set_attribute outside a span", NULL);
    open_span_t *sp = &g_spans[g_depth - 1];
    /* {"key": k, "value": v} read as a one-member object, so to_attrs does the typing. */
    const jval_t *key = get(step, "key");
    const jval_t *value = get(step, "value");
    if (!key || key->type != J_STRING || !value || sp->n_extra == MAX_ATTRS) die("bad set_attribute", NULL);
    jval_t member = *value;
    member.key = key->s;
    jval_t one = {.type = J_OBJECT, .items = &member, .n = 1};
    to_attrs(&one, &sp->extra[sp->n_extra++], 1);
  } else if (!strcmp(op, "counter_add")) {
    const jval_t *value = get(step, "value");
    if (!value || value->type != J_INT) die("counter_add needs an integer value", NULL);
    size_t n = to_attrs(get(step, "attributes"), attrs, MAX_ATTRS);
    polytel_counter_add(get_str(step, "name", "?"), get_str(step, "unit", ""), value->i, attrs, n);
  } else if (!strcmp(op, "fork")) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) die("fork failed", strerror(errno));
    if (pid == 0) {
      note("\"event\": \"fork-child\"");
      run_steps(get(step, "steps"));
      exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    note("\"event\": \"fork\", \"child_pid\": %ld, \"child_exit\": %d", (long)pid,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  } else if (!strcmp(op, "exit")) {
    const jval_t *code = get(step, "code");
    exit(code && code->type == J_INT ? (int)code->i : 0); /* no shutdown here: the atexit handler does it */
  } else {
    die("unknown op", op);
  }
}

static void run_steps(const jval_t *steps) {
  if (!steps || steps->type != J_ARRAY) die("steps must be an array", NULL);
  for (size_t i = 0; i < steps->n; i++) run_step(&steps->items[i]);
}

int main(int argc, char **argv) {
  if (argc != 2) die("usage: smoke_worker SCENARIO.json", NULL);
  FILE *f = fopen(argv[1], "rb");
  if (!f) die("cannot open", argv[1]);
  static char text[1 << 16];
  size_t len = fread(text, 1, sizeof text, f);
  fclose(f);
  if (len == sizeof text) die("scenario too large", argv[1]);
  jparser_t j = {text, text + len, NULL};
  static jval_t scenario;
  if (parse_value(&j, &scenario) != 0) die("bad scenario JSON", j.err);
  g_target = get_str(&scenario, "target", "smoke");
  run_steps(get(&scenario, "steps"));
  return 0;
}
