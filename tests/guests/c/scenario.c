/* Adversarial basics for C guests: behaviour chosen by the input's `action`.
 * Built by tests/guests/build-polyglot.sh. Implements the export directly
 * (not through WASM_ACTIVITY_HANDLER) so it can return output that is not
 * JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm_activity.h"

static cJSON *run(const cJSON *task, wa_failure *failure) {
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(task, "action");
    const char *a = cJSON_IsString(action) ? action->valuestring : "";
    if (strcmp(a, "echo") == 0) {
        wa_log(WA_INFO, "c scenario echo");
        cJSON *out = cJSON_CreateObject();
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(task, "value");
        cJSON_AddItemToObject(out, "echo", value ? cJSON_Duplicate(value, 1) : cJSON_CreateNull());
        cJSON_AddStringToObject(out, "language", "c");
        return out;
    }
    if (strcmp(a, "fail") == 0) return wa_fail(failure, "Planned", "failed on purpose");
    if (strcmp(a, "trap") == 0) {
        fprintf(stderr, "c guest trapped on purpose\n");
        abort();
    }
    if (strcmp(a, "spin") == 0) {
        volatile unsigned long n = 0;
        for (;;) n++;
    }
    if (strcmp(a, "alloc") == 0) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) abort();
            memset(p, 1, 1 << 20);
        }
    }
    return wa_fail(failure, "UnknownAction", "no such action: %s", a);
}

bool exports_wasm_activity_handler_handler_handle(activity_string_t *input, activity_string_t *ret,
                                                   exports_wasm_activity_handler_handler_failure_t *err) {
    if (input->len >= 10 && memmem(input->ptr, input->len, "bad_output", 10)) {
        activity_string_free(input);
        activity_string_dup(ret, "<html>nope</html>");
        return true;
    }
    return wa_run(run, input, ret, err);
}
