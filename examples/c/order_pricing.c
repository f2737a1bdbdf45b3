/*
 * Order pricing: an activity handler that validates an order and prices it.
 *
 * The same transform as examples/rust, in C; outputs are identical for the
 * inputs in examples/orders. Build with `examples/c/build.sh`, which runs
 * (from the repository root):
 *
 *     apt-get install clang lld libclang-rt-dev-wasm32 wasi-libc
 *     npm install @bytecodealliance/jco@1.35.0
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror \
 *         -I guest-sdk/c -I guest-sdk/c/bindings -I guest-sdk/c/vendor/cjson \
 *         examples/c/order_pricing.c guest-sdk/c/wasm_activity.c \
 *         guest-sdk/c/bindings/activity.c guest-sdk/c/vendor/cjson/cJSON.c \
 *         guest-sdk/c/bindings/activity_component_type.o \
 *         -Wl,--strip-all -o examples/c/build/order_pricing.core.wasm
 *     jco new examples/c/build/order_pricing.core.wasm --wasi-reactor \
 *         -o examples/c/order_pricing.wasm
 *
 * Then: wasm-activity invoke examples/c/order_pricing.wasm --input @examples/orders/input.json
 *
 * Input: {"order_id", "currency", "customer": {"tier"}, "items": [{"sku",
 * "quantity", "unit_price"}], "coupon"?} with prices as decimal strings
 * ("19.99"). Output: the priced order with per-line totals, discount, tax and
 * grand total in integer cents (uint64_t, written as exact JSON integers).
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm_activity.h"

#define MAX_ITEMS 500

static const struct {
    const char *code;
    uint64_t tax_basis_points;
} CURRENCIES[] = {{"USD", 800}, {"EUR", 2000}, {"GBP", 2000}};

static const char *const ORDER_FIELDS[] = {"order_id", "currency", "customer", "items", "coupon", NULL};
static const char *const CUSTOMER_FIELDS[] = {"tier", NULL};
static const char *const ITEM_FIELDS[] = {"sku", "quantity", "unit_price", NULL};

/* A fresh string: `s` with surrounding ASCII whitespace removed (if `trim`)
 * and ASCII letters upper-cased (if `upper`). */
static char *normalized(const char *s, int trim, int upper) {
    if (trim)
        while (isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    if (trim)
        while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
    char *out = strndup(s, len);
    if (upper)
        for (char *p = out; *p; p++)
            if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    return out;
}

/* Checks that `obj` has only `allowed` keys; the first unknown one (in
 * sorted order) is reported. */
static int only_fields(const cJSON *obj, const char *const *allowed, const char *where,
                       wa_failure *failure) {
    const char *first = NULL;
    const cJSON *child;
    cJSON_ArrayForEach(child, obj) {
        int known = 0;
        for (const char *const *a = allowed; *a; a++) known |= strcmp(*a, child->string) == 0;
        if (!known && (!first || strcmp(child->string, first) < 0)) first = child->string;
    }
    if (!first) return 1;
    char list[128] = "";
    for (const char *const *a = allowed; *a; a++) {
        if (a != allowed) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, *a, sizeof list - strlen(list) - 1);
    }
    wa_invalid_input(failure, "%s: unknown field `%s`, expected one of %s", where, first, list);
    return 0;
}

/* The string field `name`, or NULL after reporting InvalidInput. A missing
 * optional field (or null) yields "" with *present = 0. */
static const char *string_field(const cJSON *obj, const char *name, const char *where, int optional,
                                int *present, wa_failure *failure) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (present) *present = v != NULL && !cJSON_IsNull(v);
    if (!v || (optional && cJSON_IsNull(v))) {
        if (optional) return "";
        wa_invalid_input(failure, "%s: missing field `%s`", where, name);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        wa_invalid_input(failure, "%s: `%s` must be a string", where, name);
        return NULL;
    }
    return v->valuestring;
}

/* "19.99" -> 1999. At most two decimals, no sign, no exponent. */
static int parse_cents(const char *price, uint64_t *cents) {
    const char *dot = strchr(price, '.');
    size_t whole_len = dot ? (size_t)(dot - price) : strlen(price);
    const char *frac = dot ? dot + 1 : "";
    size_t frac_len = strlen(frac);
    if (whole_len == 0 || frac_len > 2) return 0;
    uint64_t whole = 0;
    for (size_t i = 0; i < whole_len; i++) {
        if (!isdigit((unsigned char)price[i])) return 0;
        if (whole > (UINT64_MAX - 9) / 10) return 0;
        whole = whole * 10 + (uint64_t)(price[i] - '0');
    }
    uint64_t f = 0;
    for (size_t i = 0; i < 2; i++) {
        if (i < frac_len && !isdigit((unsigned char)frac[i])) return 0;
        f = f * 10 + (i < frac_len ? (uint64_t)(frac[i] - '0') : 0);
    }
    if (whole > (UINT64_MAX - f) / 100) return 0;
    *cents = whole * 100 + f;
    return 1;
}

/* An exact JSON integer (cJSON numbers are doubles). */
static cJSON *integer(uint64_t n) {
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, n);
    return cJSON_CreateRaw(text);
}

static cJSON *price(const cJSON *order, wa_failure *failure) {
    if (!cJSON_IsObject(order)) return wa_invalid_input(failure, "the order must be a JSON object");
    if (!only_fields(order, ORDER_FIELDS, "order", failure)) return NULL;
    const cJSON *customer = cJSON_GetObjectItemCaseSensitive(order, "customer");
    if (!cJSON_IsObject(customer))
        return wa_invalid_input(failure, "order: `customer` must be an object");
    if (!only_fields(customer, CUSTOMER_FIELDS, "customer", failure)) return NULL;
    const char *tier = string_field(customer, "tier", "customer", 0, NULL, failure);
    if (!tier) return NULL;
    int gold = strcmp(tier, "gold") == 0;
    if (!gold && strcmp(tier, "standard") != 0) {
        char *q = wa_quote(tier);
        wa_invalid_input(failure, "customer: unknown tier %s, expected standard or gold", q);
        free(q);
        return NULL;
    }
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(order, "items");
    if (!cJSON_IsArray(items)) return wa_invalid_input(failure, "order: `items` must be an array");
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, items) {
        char where[32];
        snprintf(where, sizeof where, "items[%d]", i++);
        if (!cJSON_IsObject(item)) return wa_invalid_input(failure, "%s must be an object", where);
        if (!only_fields(item, ITEM_FIELDS, where, failure)) return NULL;
        if (!string_field(item, "sku", where, 0, NULL, failure)) return NULL;
        if (!string_field(item, "unit_price", where, 0, NULL, failure)) return NULL;
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(item, "quantity");
        if (!cJSON_IsNumber(q) || q->valuedouble != floor(q->valuedouble) || q->valuedouble < 0 ||
            q->valuedouble > 4294967295.0)
            return wa_invalid_input(failure, "%s: quantity must be an integer from 0 to 4294967295",
                                    where);
    }
    const char *raw_id = string_field(order, "order_id", "order", 0, NULL, failure);
    const char *raw_currency = raw_id ? string_field(order, "currency", "order", 0, NULL, failure) : NULL;
    int has_coupon = 0;
    const char *coupon =
        raw_currency ? string_field(order, "coupon", "order", 1, &has_coupon, failure) : NULL;
    if (!coupon) return NULL;

    /* The shape is right; from here on failures are about the order itself. */
    cJSON *result = NULL;
    char *order_id = normalized(raw_id, 1, 0);
    char *currency = normalized(raw_currency, 0, 1);
    cJSON *lines = NULL;
    uint64_t tax_bp = 0;
    for (size_t c = 0; c < sizeof CURRENCIES / sizeof CURRENCIES[0]; c++)
        if (strcmp(currency, CURRENCIES[c].code) == 0) tax_bp = CURRENCIES[c].tax_basis_points;
    int count = cJSON_GetArraySize(items);
    if (!*order_id) {
        wa_fail(failure, "InvalidOrder", "order_id must not be empty");
        goto done;
    }
    if (!tax_bp) {
        char *q = wa_quote(raw_currency);
        wa_fail(failure, "InvalidOrder",
                "order %s: currency %s is not supported (expected one of USD, EUR, GBP)", order_id, q);
        free(q);
        goto done;
    }
    if (count == 0) {
        wa_fail(failure, "InvalidOrder", "order %s has no items", order_id);
        goto done;
    }
    if (count > MAX_ITEMS) {
        wa_fail(failure, "InvalidOrder", "order %s has %d items; at most %d are allowed", order_id,
                count, MAX_ITEMS);
        goto done;
    }

    lines = cJSON_CreateArray();
    uint64_t subtotal = 0;
    i = 0;
    cJSON_ArrayForEach(item, items) {
        const char *sku = cJSON_GetObjectItemCaseSensitive(item, "sku")->valuestring;
        const char *unit_price = cJSON_GetObjectItemCaseSensitive(item, "unit_price")->valuestring;
        uint64_t quantity = (uint64_t)cJSON_GetObjectItemCaseSensitive(item, "quantity")->valuedouble;
        uint64_t unit;
        if (quantity == 0) {
            wa_fail(failure, "InvalidOrder", "items[%d] (%s): quantity must be at least 1", i, sku);
            goto done;
        }
        if (!parse_cents(unit_price, &unit)) {
            char *q = wa_quote(unit_price);
            wa_fail(failure, "InvalidOrder",
                    "items[%d] (%s): unit_price %s is not a decimal amount like \"19.99\"", i, sku, q);
            free(q);
            goto done;
        }
        if (unit > UINT64_MAX / quantity) {
            wa_fail(failure, "InvalidOrder", "items[%d] (%s): line total overflows", i, sku);
            goto done;
        }
        uint64_t total = unit * quantity;
        subtotal += total;
        cJSON *line = cJSON_CreateObject();
        char *upper_sku = normalized(sku, 1, 1);
        cJSON_AddStringToObject(line, "sku", upper_sku);
        free(upper_sku);
        cJSON_AddItemToObject(line, "quantity", integer(quantity));
        cJSON_AddItemToObject(line, "line_total_cents", integer(total));
        cJSON_AddItemToArray(lines, line);
        i++;
    }
    wa_progress("priced %d lines", count);

    uint64_t discount_percent = gold ? 5 : 0;
    if (has_coupon && strcmp(coupon, "SAVE10") == 0) {
        discount_percent += 10;
    } else if (has_coupon) {
        char *q = wa_quote(coupon);
        wa_log(WA_WARN, "order %s: unknown coupon %s ignored", order_id, q);
        free(q);
    }
    uint64_t discount = subtotal * discount_percent / 100;
    uint64_t taxable = subtotal - discount;
    /* Basis points, rounded half up. */
    uint64_t tax = (taxable * tax_bp + 5000) / 10000;
    wa_log(WA_INFO, "order %s: %d lines, total %" PRIu64, order_id, count, taxable + tax);

    result = cJSON_CreateObject();
    cJSON_AddStringToObject(result, "order_id", order_id);
    cJSON_AddStringToObject(result, "currency", currency);
    cJSON_AddItemToObject(result, "lines", lines);
    lines = NULL;
    cJSON_AddItemToObject(result, "subtotal_cents", integer(subtotal));
    cJSON_AddItemToObject(result, "discount_cents", integer(discount));
    cJSON_AddItemToObject(result, "tax_cents", integer(tax));
    cJSON_AddItemToObject(result, "total_cents", integer(taxable + tax));
done:
    cJSON_Delete(lines);
    free(order_id);
    free(currency);
    return result;
}

WASM_ACTIVITY_HANDLER(price)
