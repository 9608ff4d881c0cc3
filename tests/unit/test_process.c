/* test_process.c — resource attributes: detected values, precedence, user pairs, fork, free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/console.h"
#include "common/process.h"

static const char *const *fake_env;

static const char *fake_get(const char *name) {
  for (const char *const *p = fake_env; p && *p; p += 2) {
    if (strcmp(p[0], name) == 0) return p[1];
  }
  return NULL;
}

static void cfg_from(const char *const *env, const polytel_config_t *user, polytel__cfg_t *c) {
  fake_env = env;
  assert_int_equal(polytel__cfg_resolve(user, fake_get, c), 0);
}

static const polytel__kv_t *find(const polytel__resource_t *r, const char *key) {
  const polytel__kv_t *hit = NULL;
  for (uint32_t i = 0; i < r->n_attrs; i++) {
    if (strcmp(r->attrs[i].key, key) == 0) {
      assert_null(hit); /* keys are unique */
      hit = &r->attrs[i];
    }
  }
  return hit;
}

static void assert_str_attr(const polytel__resource_t *r, const char *key, const char *want) {
  uint32_t len = 0;
  const char *v = polytel__resource_get(r, key, &len);
  if (!v) print_error("missing %s\n", key);
  assert_non_null(v);
  assert_string_equal(v, want);
  assert_int_equal(len, strlen(want));
  const polytel__kv_t *kv = find(r, key);
  assert_int_equal(kv->key_len, strlen(key));
  assert_int_equal(kv->type, POLYTEL_ATTR_STRING);
}

static void test_defaults(void **state) {
  (void)state;
  polytel__cfg_t c;
  polytel__resource_t r;
  cfg_from(NULL, NULL, &c);
  assert_int_equal(polytel__resource_build(&c, &r), 0);
  char host[256] = "";
  gethostname(host, sizeof host);
  assert_str_attr(&r, "service.name", "test_process");
  assert_str_attr(&r, "process.executable.name", "test_process");
  assert_str_attr(&r, "host.name", host);
  assert_str_attr(&r, "telemetry.sdk.name", "polytel");
  assert_str_attr(&r, "telemetry.sdk.language", "c");
  assert_str_attr(&r, "telemetry.sdk.version", POLYTEL_VERSION_STRING);
  assert_null(polytel__resource_get(&r, "service.version", NULL));
  const polytel__kv_t *pid = find(&r, "process.pid");
  assert_non_null(pid);
  assert_int_equal(pid->type, POLYTEL_ATTR_INT);
  assert_int_equal(pid->v.i, getpid());
  assert_null(polytel__resource_get(&r, "process.pid", NULL)); /* not a string */
  assert_int_equal(r.n_attrs, 7);
  polytel__resource_free(&r);
  assert_null(r.attrs);
  assert_int_equal(r.n_attrs, 0);
  polytel__resource_free(&r); /* twice is harmless */
  polytel__cfg_free(&c);
}

static void test_service_and_pairs(void **state) {
  (void)state;
  polytel__cfg_t c;
  polytel__resource_t r;
  const char *env[] = {"OTEL_SERVICE_NAME",
                       "checkout",
                       "OTEL_SERVICE_VERSION",
                       "1.4.2",
                       "OTEL_RESOURCE_ATTRIBUTES",
                       "service.name=ignored,host.name=pod-7,deployment.environment=prod,"
                       "team=pay%20ments",
                       NULL};
  polytel_config_t u;
  polytel_config_init(&u);
  u.sdk_language = "ruby";
  cfg_from(env, &u, &c);
  assert_int_equal(polytel__resource_build(&c, &r), 0);
  assert_str_attr(&r, "service.name", "checkout"); /* OTEL_SERVICE_NAME beats the pair */
  assert_str_attr(&r, "service.version", "1.4.2");
  assert_str_attr(&r, "host.name", "pod-7"); /* a user pair beats detection */
  assert_str_attr(&r, "deployment.environment", "prod");
  assert_str_attr(&r, "team", "pay ments");
  assert_str_attr(&r, "telemetry.sdk.language", "ruby");
  assert_int_equal(r.n_attrs, 10);
  polytel__resource_free(&r);
  polytel__cfg_free(&c);

  /* the pair beats the executable name */
  const char *env2[] = {"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-pair", NULL};
  cfg_from(env2, NULL, &c);
  assert_int_equal(polytel__resource_build(&c, &r), 0);
  assert_str_attr(&r, "service.name", "from-pair");
  assert_str_attr(&r, "process.executable.name", "test_process");
  polytel__resource_free(&r);
  polytel__cfg_free(&c);
}

/* A hand-built config (as other components' tests make): NULL service name, pairs only. */
static void test_hand_built_cfg(void **state) {
  (void)state;
  polytel__strpair_t pairs[] = {{"service.name", "pair-svc"}, {"k", "v"}};
  polytel__cfg_t c;
  memset(&c, 0, sizeof c);
  c.resource_attrs = pairs;
  c.n_resource_attrs = 2;
  polytel__resource_t r;
  assert_int_equal(polytel__resource_build(&c, &r), 0);
  assert_str_attr(&r, "service.name", "pair-svc");
  assert_str_attr(&r, "k", "v");
  assert_str_attr(&r, "telemetry.sdk.language", "c");
  polytel__resource_free(&r);

  c.n_resource_attrs = 0;
  assert_int_equal(polytel__resource_build(&c, &r), 0);
  assert_str_attr(&r, "service.name", "test_process");
  polytel__resource_free(&r);
  assert_int_equal(polytel__resource_build(NULL, &r), POLYTEL_EINVAL);
  assert_int_equal(polytel__resource_build(&c, NULL), POLYTEL_EINVAL);
}

/* After fork the child builds its own identity. */
static void test_fork_rebuild(void **state) {
  (void)state;
  polytel__cfg_t c;
  cfg_from(NULL, NULL, &c);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    polytel__resource_t r;
    int64_t pid = -1;
    if (polytel__resource_build(&c, &r) == 0) {
      for (uint32_t i = 0; i < r.n_attrs; i++) {
        if (strcmp(r.attrs[i].key, "process.pid") == 0) pid = r.attrs[i].v.i;
      }
    }
    ssize_t k = write(fds[1], &pid, sizeof pid);
    _exit(k == sizeof pid ? 0 : 1);
  }
  close(fds[1]);
  int64_t got = 0;
  assert_int_equal(read(fds[0], &got, sizeof got), sizeof got);
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  assert_int_equal(got, child);
  assert_true(got != getpid());
  polytel__cfg_free(&c);
}

static void test_exe_name(void **state) {
  (void)state;
  char buf[64];
  assert_int_equal(polytel__exe_name(buf, sizeof buf), strlen("test_process"));
  assert_string_equal(buf, "test_process");
  assert_int_equal(polytel__exe_name(buf, 5), 4);
  assert_string_equal(buf, "test");
  assert_int_equal(polytel__exe_name(NULL, 0), 0);
}

int main(void) {
  /* Config warnings (none expected here) must not pollute the test output. */
  polytel__console_configure(POLYTEL_CONSOLE_STDERR, POLYTEL_CONSOLE_FORMAT_TEXT, POLYTEL_LEVEL_INFO, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),       cmocka_unit_test(test_service_and_pairs),
      cmocka_unit_test(test_hand_built_cfg), cmocka_unit_test(test_fork_rebuild),
      cmocka_unit_test(test_exe_name),
  };
  return cmocka_run_group_tests_name("process", tests, NULL, NULL);
}
