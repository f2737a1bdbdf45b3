/* The C guest SDK: JSON in and out, failures, and the host functions. See
 * wasm_activity.h. Every instance runs one task, so nothing here needs to be
 * thread- or reentrancy-safe. */
#include "wasm_activity.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *vformat(const char *format, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int len = vsnprintf(NULL, 0, format, copy);
    va_end(copy);
    if (len < 0) return strdup(format);
    char *out = malloc((size_t)len + 1);
    if (!out) abort();
    vsnprintf(out, (size_t)len + 1, format, args);
    return out;
}

static void set_failure(wa_failure *failure, const char *error, char *cause) {
    free(failure->error);
    free(failure->cause);
    failure->error = strdup(error);
    failure->cause = cause;
}

cJSON *wa_fail(wa_failure *failure, const char *error, const char *cause_format, ...) {
    va_list args;
    va_start(args, cause_format);
    set_failure(failure, error, vformat(cause_format, args));
    va_end(args);
    return NULL;
}

cJSON *wa_invalid_input(wa_failure *failure, const char *cause_format, ...) {
    va_list args;
    va_start(args, cause_format);
    set_failure(failure, WA_INVALID_INPUT, vformat(cause_format, args));
    va_end(args);
    return NULL;
}

void wa_log(wa_level level, const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *text = vformat(format, args);
    va_end(args);
    activity_string_t message = {(uint8_t *)text, strlen(text)};
    wasm_activity_handler_host_log((wasm_activity_handler_host_log_level_t)level, &message);
    free(text);
}

void wa_progress(const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *text = vformat(format, args);
    va_end(args);
    activity_string_t details = {(uint8_t *)text, strlen(text)};
    wasm_activity_handler_host_progress(&details);
    free(text);
}

bool wa_cancelled(void) { return wasm_activity_handler_host_cancelled(); }

char *wa_quote(const char *s) {
    cJSON *str = cJSON_CreateString(s);
    char *out = str ? cJSON_PrintUnformatted(str) : NULL;
    cJSON_Delete(str);
    return out ? out : strdup("\"\"");
}

/* Moves a NUL-terminated malloc'd string into a WIT string (which the
 * generated post-return function frees). */
static void give(activity_string_t *to, char *s) {
    to->ptr = (uint8_t *)s;
    to->len = strlen(s);
}

static bool fail_with(exports_wasm_activity_handler_handler_failure_t *err, wa_failure *f) {
    give(&err->error, f->error ? f->error : strdup("Error"));
    give(&err->cause, f->cause ? f->cause : strdup(""));
    return false;
}

bool wa_run(wa_handler handler, activity_string_t *input, activity_string_t *ret,
            exports_wasm_activity_handler_handler_failure_t *err) {
    wa_failure failure = {NULL, NULL};

    /* The input is ours to free; cJSON wants it NUL-terminated. */
    char *text = malloc(input->len + 1);
    if (!text) abort();
    memcpy(text, input->ptr, input->len);
    text[input->len] = '\0';
    activity_string_free(input);
    const char *end = NULL;
    cJSON *value = cJSON_ParseWithOpts(text, &end, true);
    if (!value) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        wa_invalid_input(&failure, "the task input is not JSON: syntax error at byte %zu", at);
        free(text);
        return fail_with(err, &failure);
    }
    free(text);

    cJSON *output = handler(value, &failure);
    cJSON_Delete(value);
    if (!output) {
        if (!failure.error)
            wa_fail(&failure, WA_INVALID_OUTPUT, "the handler returned no output and no failure");
        return fail_with(err, &failure);
    }
    free(failure.error);
    free(failure.cause);
    char *printed = cJSON_PrintUnformatted(output);
    cJSON_Delete(output);
    if (!printed) {
        wa_fail(&failure, WA_INVALID_OUTPUT, "the handler's output could not be printed as JSON");
        return fail_with(err, &failure);
    }
    give(ret, printed);
    return true;
}
