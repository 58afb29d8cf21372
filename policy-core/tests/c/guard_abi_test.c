/*
 * Exercises the policy-core C ABI through the committed header, as a C
 * caller would. Run by tests/c_abi.rs (under valgrind when it is installed).
 *
 * Usage: guard_abi_test VALID_POLICY INVALID_POLICY TICKET
 *
 * VALID_POLICY must allow user `alice` in environment `dev`, deny user
 * `mallory` in environment `prod` with rule `environment.access`, and give
 * `prod` the alias `production`. INVALID_POLICY must fail to load with a
 * problem reported on line 3. TICKET must be signed by a key of VALID_POLICY
 * for user `alice`, environment `prod` and job name `train`, and be valid
 * at NOW.
 *
 * Prints one line per failed check and ends with
 * "c_abi: N checks passed, M failed"; exits 1 when any check failed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_policy.h"

static int checks_passed = 0;
static int checks_failed = 0;

#define CHECK(condition)                                                      \
  do {                                                                        \
    if (condition) {                                                          \
      checks_passed++;                                                        \
    } else {                                                                  \
      checks_failed++;                                                        \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #condition);            \
    }                                                                         \
  } while (0)

/* Returns the calling thread's last error in a static buffer. */
static const char *last_error(void) {
  static char buffer[4096];
  guard_error_last(buffer, sizeof buffer);
  return buffer;
}

static int starts_with(const char *text, const char *prefix) {
  return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Returns 1 when `text` is not NULL and contains `part`. */
static int contains(const char *text, const char *part) {
  return text != NULL && strstr(text, part) != NULL;
}

static const char ALLOW_REQUEST[] =
    "{\"user\": \"alice\", \"groups\": [\"users\"], \"options\": {\"env\": \"dev\"},"
    " \"argv\": [\"/bin/true\"]}";
static const char DENY_REQUEST[] =
    "{\"user\": \"mallory\", \"groups\": [\"users\"], \"options\": {\"env\": \"prod\"},"
    " \"argv\": [\"/bin/true\"]}";

/* 2026-06-01T12:00:00Z, a Monday. */
static const int64_t NOW = 1780315200;

static void test_version(void) {
  CHECK(strcmp(guard_version_get(), GUARD_POLICY_VERSION) == 0);
}

static void test_load_path_null_arguments(const char *valid_path) {
  guard_policy *policy = (guard_policy *)&checks_passed; /* sentinel */
  CHECK(guard_policy_load_path(NULL, &policy) == GUARD_RESULT_NULL_POINTER);
  CHECK(policy == (guard_policy *)&checks_passed);
  CHECK(strcmp(last_error(), "guard_policy_load_path: argument `path` is NULL") == 0);

  CHECK(guard_policy_load_path(valid_path, NULL) == GUARD_RESULT_NULL_POINTER);
  CHECK(strcmp(last_error(), "guard_policy_load_path: argument `policy_out` is NULL") == 0);
}

static void test_load_invalid_policy(const char *invalid_path) {
  guard_policy *policy = NULL;
  char expected_line[4096];

  CHECK(guard_policy_load_path(invalid_path, &policy) == GUARD_RESULT_POLICY_LOAD);
  CHECK(policy == NULL);
  CHECK(starts_with(last_error(), "guard_policy_load_path: policy is invalid:\n"));
  snprintf(expected_line, sizeof expected_line, "\n%s:3:", invalid_path);
  CHECK(strstr(last_error(), expected_line) != NULL);

  CHECK(guard_policy_load_path("/nonexistent/policy.json", &policy) == GUARD_RESULT_POLICY_LOAD);
  CHECK(policy == NULL);
  CHECK(strstr(last_error(), "/nonexistent/policy.json") != NULL);
  guard_policy_free(&policy); /* only does something after a failed check */
}

static void test_load_buffer(const char *valid_path) {
  guard_policy *policy = NULL;
  char text[65536];
  size_t length;
  FILE *file = fopen(valid_path, "rb");

  CHECK(file != NULL);
  if (file == NULL) {
    return;
  }
  length = fread(text, 1, sizeof text, file);
  fclose(file);

  CHECK(guard_policy_load_buffer((const uint8_t *)text, length, "inline", &policy) == GUARD_RESULT_OK);
  CHECK(policy != NULL);
  guard_policy_free(&policy);
  CHECK(policy == NULL);

  CHECK(guard_policy_load_buffer(NULL, 0, NULL, &policy) == GUARD_RESULT_NULL_POINTER);
  CHECK(guard_policy_load_buffer((const uint8_t *)"{", 1, NULL, &policy) == GUARD_RESULT_POLICY_LOAD);
  CHECK(starts_with(last_error(), "guard_policy_load_buffer: policy is invalid:\n<buffer>:"));
  CHECK(policy == NULL);
}

static void test_evaluate(const guard_policy *policy) {
  char *decision = NULL;
  guard_outcome outcome = GUARD_OUTCOME_WOULD_DENY;

  CHECK(guard_request_evaluate(policy, ALLOW_REQUEST, NOW, &outcome, &decision) == GUARD_RESULT_OK);
  CHECK(outcome == GUARD_OUTCOME_ALLOW);
  CHECK(contains(decision, "\"outcome\":\"allow\""));
  CHECK(guard_error_last(NULL, 0) == 0);
  guard_string_free(&decision);
  CHECK(decision == NULL);

  CHECK(guard_request_evaluate(policy, DENY_REQUEST, NOW, &outcome, &decision) == GUARD_RESULT_OK);
  CHECK(outcome == GUARD_OUTCOME_DENY);
  CHECK(contains(decision, "\"outcome\":\"deny\""));
  CHECK(contains(decision, "\"rule\":\"environment.access\""));
  guard_string_free(&decision);

  /* The outcome out-param is optional. */
  CHECK(guard_request_evaluate(policy, ALLOW_REQUEST, GUARD_NOW_SYSTEM_CLOCK, NULL, &decision) == GUARD_RESULT_OK);
  CHECK(decision != NULL);
  guard_string_free(&decision);
}

static void test_evaluate_rejects_bad_input(const guard_policy *policy) {
  char *decision = NULL;
  guard_outcome outcome = GUARD_OUTCOME_WOULD_DENY;

  CHECK(guard_request_evaluate(policy, "{\"user\": ", NOW, &outcome, &decision) == GUARD_RESULT_REQUEST_JSON);
  CHECK(decision == NULL);
  CHECK(outcome == GUARD_OUTCOME_WOULD_DENY);
  CHECK(starts_with(last_error(),
                    "guard_request_evaluate: argument `request_json` is not a valid request: "));

  CHECK(guard_request_evaluate(policy, "{\"colour\": \"red\"}", NOW, &outcome, &decision) ==
        GUARD_RESULT_REQUEST_JSON);
  CHECK(strstr(last_error(), "unknown field `colour`") != NULL);

  CHECK(guard_request_evaluate(policy, "{\"user\": \"\xff\"}", NOW, &outcome, &decision) ==
        GUARD_RESULT_INVALID_UTF8);
  CHECK(starts_with(last_error(), "guard_request_evaluate: argument `request_json` is not valid UTF-8"));

  CHECK(guard_request_evaluate(NULL, ALLOW_REQUEST, NOW, &outcome, &decision) == GUARD_RESULT_NULL_POINTER);
  CHECK(strcmp(last_error(), "guard_request_evaluate: argument `policy` is NULL") == 0);
  CHECK(guard_request_evaluate(policy, ALLOW_REQUEST, NOW, &outcome, NULL) == GUARD_RESULT_NULL_POINTER);
  CHECK(strcmp(last_error(), "guard_request_evaluate: argument `decision_json_out` is NULL") == 0);
  CHECK(guard_request_evaluate(policy, ALLOW_REQUEST, INT64_MAX, &outcome, &decision) ==
        GUARD_RESULT_INVALID_ARGUMENT);
  CHECK(decision == NULL);
}

static void test_error_last_truncates(const guard_policy *policy) {
  char small[8];
  const char *expected = "guard_request_evaluate: argument `policy` is NULL";
  char *decision = NULL;

  CHECK(guard_request_evaluate(NULL, ALLOW_REQUEST, NOW, NULL, &decision) == GUARD_RESULT_NULL_POINTER);
  CHECK(guard_error_last(small, sizeof small) == strlen(expected));
  CHECK(strcmp(small, "guard_r") == 0);
  CHECK(guard_error_last(NULL, 0) == strlen(expected));

  /* A successful call clears the message. */
  CHECK(guard_request_evaluate(policy, ALLOW_REQUEST, NOW, NULL, &decision) == GUARD_RESULT_OK);
  CHECK(guard_error_last(small, sizeof small) == 0);
  CHECK(small[0] == '\0');
  guard_string_free(&decision);
}

static void test_ticket_verify(const guard_policy *policy, const char *ticket) {
  char *claims = NULL;

  CHECK(guard_ticket_verify(policy, ticket, NULL, NULL, NULL, NOW, &claims) == GUARD_RESULT_OK);
  CHECK(contains(claims, "\"user\":\"alice\""));
  CHECK(contains(claims, "\"env\":\"prod\""));
  guard_string_free(&claims);

  /* Binding checks: aliases in any case match, other users and job names do not. */
  CHECK(guard_ticket_verify(policy, ticket, "alice", "PRODUCTION", "train", NOW, &claims) == GUARD_RESULT_OK);
  guard_string_free(&claims);
  CHECK(guard_ticket_verify(policy, ticket, "mallory", NULL, NULL, NOW, &claims) == GUARD_RESULT_TICKET_INVALID);
  CHECK(claims == NULL);
  CHECK(strstr(last_error(), "is for user `alice`, not `mallory`") != NULL);
  CHECK(guard_ticket_verify(policy, ticket, NULL, NULL, "other-job", NOW, &claims) == GUARD_RESULT_TICKET_INVALID);
  CHECK(guard_ticket_verify(policy, ticket, NULL, "nowhere", NULL, NOW, &claims) == GUARD_RESULT_INVALID_ARGUMENT);
  CHECK(strcmp(last_error(),
               "guard_ticket_verify: argument `environment` names no environment of the policy: `nowhere`") == 0);

  /* A day later the ticket has expired. */
  CHECK(guard_ticket_verify(policy, ticket, NULL, NULL, NULL, NOW + 86400, &claims) == GUARD_RESULT_TICKET_INVALID);
  CHECK(strstr(last_error(), "expired") != NULL);
  CHECK(claims == NULL);
}

static void test_ticket_verify_rejects_garbage(const guard_policy *policy) {
  char *claims = NULL;

  CHECK(guard_ticket_verify(policy, "not-a-ticket", NULL, NULL, NULL, NOW, &claims) == GUARD_RESULT_TICKET_INVALID);
  CHECK(claims == NULL);
  CHECK(starts_with(last_error(), "guard_ticket_verify: approval ticket is malformed: "));
  CHECK(guard_ticket_verify(policy, NULL, NULL, NULL, NULL, NOW, &claims) == GUARD_RESULT_NULL_POINTER);
  CHECK(strcmp(last_error(), "guard_ticket_verify: argument `ticket` is NULL") == 0);
}

static void test_free_is_null_safe(void) {
  guard_policy *policy = NULL;
  char *string = NULL;

  guard_policy_free(NULL);
  guard_policy_free(&policy);
  guard_string_free(NULL);
  guard_string_free(&string);
  CHECK(policy == NULL);
  CHECK(string == NULL);
}

static void test_double_free_of_same_variable(const char *valid_path) {
  guard_policy *policy = NULL;
  char *decision = NULL;

  CHECK(guard_policy_load_path(valid_path, &policy) == GUARD_RESULT_OK);
  CHECK(guard_request_evaluate(policy, ALLOW_REQUEST, NOW, NULL, &decision) == GUARD_RESULT_OK);

  guard_string_free(&decision);
  guard_string_free(&decision);
  CHECK(decision == NULL);

  guard_policy_free(&policy);
  guard_policy_free(&policy);
  CHECK(policy == NULL);
}

struct thread_result {
  const guard_policy *policy;
  int failures;
};

static void *evaluate_many(void *argument) {
  struct thread_result *result = argument;
  int round;

  for (round = 0; round < 50; round++) {
    char *decision = NULL;
    guard_outcome outcome = GUARD_OUTCOME_WOULD_DENY;
    if (guard_request_evaluate(result->policy, DENY_REQUEST, NOW, &outcome, &decision) != GUARD_RESULT_OK ||
        outcome != GUARD_OUTCOME_DENY) {
      result->failures++;
    }
    guard_string_free(&decision);
  }
  return NULL;
}

static void test_shared_policy_across_threads(const guard_policy *policy) {
  pthread_t threads[2];
  struct thread_result results[2] = {{policy, 0}, {policy, 0}};
  int index;

  for (index = 0; index < 2; index++) {
    CHECK(pthread_create(&threads[index], NULL, evaluate_many, &results[index]) == 0);
  }
  for (index = 0; index < 2; index++) {
    CHECK(pthread_join(threads[index], NULL) == 0);
    CHECK(results[index].failures == 0);
  }
}

int main(int argc, char **argv) {
  guard_policy *policy = NULL;

  if (argc != 4) {
    fprintf(stderr, "usage: %s VALID_POLICY INVALID_POLICY TICKET\n", argv[0]);
    return 2;
  }

  test_version();
  test_load_path_null_arguments(argv[1]);
  test_load_invalid_policy(argv[2]);
  test_load_buffer(argv[1]);
  test_free_is_null_safe();
  test_double_free_of_same_variable(argv[1]);

  CHECK(guard_policy_load_path(argv[1], &policy) == GUARD_RESULT_OK);
  if (policy == NULL) {
    printf("FAIL cannot load %s: %s\n", argv[1], last_error());
  } else {
    test_evaluate(policy);
    test_evaluate_rejects_bad_input(policy);
    test_error_last_truncates(policy);
    test_ticket_verify(policy, argv[3]);
    test_ticket_verify_rejects_garbage(policy);
    test_shared_policy_across_threads(policy);
  }
  guard_policy_free(&policy);

  printf("c_abi: %d checks passed, %d failed\n", checks_passed, checks_failed);
  return checks_failed == 0 ? 0 : 1;
}
