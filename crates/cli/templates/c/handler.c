/* The {{name}} activity handler. Build with `./build.sh`. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "wasm_activity.h"

static cJSON *handle(const cJSON *task, wa_failure *failure) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(task, "name");
    if (!cJSON_IsString(name))
        return wa_invalid_input(failure, "expected an object with a string `name`");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(task, "items");
    if (items && !cJSON_IsArray(items)) return wa_invalid_input(failure, "`items` must be an array");

    const char *start = name->valuestring;
    while (isspace((unsigned char)*start)) start++;
    size_t len = strlen(start);
    while (len > 0 && isspace((unsigned char)start[len - 1])) len--;
    if (len == 0) return wa_fail(failure, "EmptyName", "`name` must not be empty");

    wa_log(WA_INFO, "greeting %.*s", (int)len, start);
    char greeting[512];
    snprintf(greeting, sizeof greeting, "Hello, %.*s!", (int)len, start);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "greeting", greeting);
    cJSON_AddNumberToObject(out, "item_count", items ? cJSON_GetArraySize(items) : 0);
    return out;
}

WASM_ACTIVITY_HANDLER(handle)
