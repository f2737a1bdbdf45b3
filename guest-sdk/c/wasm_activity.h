/*
 * Write wasm-activity handlers in C.
 *
 * A handler is a function from the task input (parsed JSON, a cJSON tree) to
 * an output tree, or NULL after describing a failure with wa_fail():
 *
 *     #include "wasm_activity.h"
 *
 *     static cJSON *handle(const cJSON *input, wa_failure *failure) {
 *         const cJSON *id = cJSON_GetObjectItemCaseSensitive(input, "id");
 *         if (!cJSON_IsString(id))
 *             return wa_invalid_input(failure, "`id` must be a string");
 *         wa_log(WA_INFO, "handling %s", id->valuestring);
 *         cJSON *out = cJSON_CreateObject();
 *         cJSON_AddBoolToObject(out, "accepted", 1);
 *         return out;
 *     }
 *
 *     WASM_ACTIVITY_HANDLER(handle)
 *
 * Build with clang and wasi-libc as a reactor, then wrap the core module into
 * a component (see examples/c/build.sh for the exact commands):
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 \
 *         -I guest-sdk/c -I guest-sdk/c/bindings -I guest-sdk/c/vendor/cjson \
 *         handler.c guest-sdk/c/wasm_activity.c guest-sdk/c/bindings/activity.c \
 *         guest-sdk/c/vendor/cjson/cJSON.c guest-sdk/c/bindings/activity_component_type.o \
 *         -Wl,--strip-all -o handler.core.wasm
 *     jco new handler.core.wasm --wasi-reactor -o handler.wasm
 *
 * Failures, the same as the Rust SDK:
 *  - Input that is not valid JSON fails the task with `InvalidInput` and the
 *    parse position as the cause; the handler is not called. Return
 *    wa_invalid_input(...) when the JSON does not have the shape you need.
 *  - Return wa_fail(failure, error, ...) for a handled failure.
 *  - Returning NULL without a failure fails with `InvalidOutput`.
 *  - A crash (abort, out-of-bounds access) traps; the host reports
 *    `WasmActivity.Trap` with the guest's last stderr output.
 *
 * The SDK owns what crosses the boundary: it frees the input tree after the
 * handler returns and frees the output tree after printing it.
 */
#ifndef WASM_ACTIVITY_H
#define WASM_ACTIVITY_H

#include <stdbool.h>

#include "activity.h"
#include "cJSON.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The error name reported when the task input is not valid JSON (or not the
 * shape the handler needs). */
#define WA_INVALID_INPUT "InvalidInput"
/* The error name reported when the handler produces no output. */
#define WA_INVALID_OUTPUT "InvalidOutput"

/* Severity of a log line sent to the host with wa_log(). */
typedef enum wa_level {
    WA_TRACE = WASM_ACTIVITY_HANDLER_HOST_LOG_LEVEL_TRACE,
    WA_DEBUG = WASM_ACTIVITY_HANDLER_HOST_LOG_LEVEL_DEBUG,
    WA_INFO = WASM_ACTIVITY_HANDLER_HOST_LOG_LEVEL_INFO,
    WA_WARN = WASM_ACTIVITY_HANDLER_HOST_LOG_LEVEL_WARN,
    WA_ERROR = WASM_ACTIVITY_HANDLER_HOST_LOG_LEVEL_ERROR,
} wa_level;

/* A handled failure: `error` is the error name Step Functions' Retry/Catch
 * match on (short, stable, not starting with `States.`), `cause` the detail.
 * Filled in by wa_fail(); both strings are owned by the SDK. */
typedef struct wa_failure {
    char *error;
    char *cause;
} wa_failure;

/* A handler: returns the output tree (the SDK takes ownership), or NULL after
 * calling wa_fail() or wa_invalid_input(). */
typedef cJSON *(*wa_handler)(const cJSON *input, wa_failure *failure);

/* Describes a failure (printf-style cause) and returns NULL, so a handler can
 * `return wa_fail(failure, "InvalidOrder", "order %s has no items", id);`. */
cJSON *wa_fail(wa_failure *failure, const char *error, const char *cause_format, ...)
    __attribute__((format(printf, 3, 4)));

/* wa_fail() with the error name `InvalidInput`. */
cJSON *wa_invalid_input(wa_failure *failure, const char *cause_format, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes one line (printf-style) to the host's log, tagged with the activity
 * and task. Lines count against the task's log budget. */
void wa_log(wa_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Records the latest progress report (printf-style; sent with SWF heartbeats
 * as details, at most 2,048 characters; logged at debug level on Step
 * Functions). */
void wa_progress(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* True once the task should stop (cancelled, timed out, or host shutdown). */
bool wa_cancelled(void);

/* `s` as a JSON string literal (quotes and escapes), for causes that quote
 * input values. Returns a malloc'd string; free() it. */
char *wa_quote(const char *s);

/* Runs `handler` for one task; used by WASM_ACTIVITY_HANDLER. */
bool wa_run(wa_handler handler, activity_string_t *input, activity_string_t *ret,
            exports_wasm_activity_handler_handler_failure_t *err);

/* Exports `handler` as the component's `handle` function. Use it once. */
#define WASM_ACTIVITY_HANDLER(handler)                                                        \
    bool exports_wasm_activity_handler_handler_handle(                                        \
        activity_string_t *input, activity_string_t *ret,                                     \
        exports_wasm_activity_handler_handler_failure_t *err) {                               \
        return wa_run((handler), input, ret, err);                                            \
    }

#ifdef __cplusplus
}
#endif

#endif
