"""Order pricing: an activity handler that validates an order and prices it.

The same transform as examples/rust, in Python; outputs are identical for the
inputs in examples/orders. Build (from the repository root):

    pip install componentize-py==0.25.1
    componentize-py -d wit -w activity componentize app \\
        -p examples/python -p guest-sdk/python -o examples/python/order_pricing.wasm

or just `examples/python/build.sh`, which installs componentize-py into a cache
first. Then try it:

    wasm-activity invoke examples/python/order_pricing.wasm --input @examples/orders/input.json

Input: {"order_id", "currency", "customer": {"tier"}, "items": [{"sku",
"quantity", "unit_price"}], "coupon"?} with prices as decimal strings
("19.99"). Output: the priced order with per-line totals, discount, tax and
grand total in integer cents, so no float rounding ever reaches a bill.
"""

import json

import wasm_activity
from wasm_activity import Failure, InvalidInput, Level, log, progress

CURRENCIES = {"USD": 800, "EUR": 2000, "GBP": 2000}  # tax in basis points
TIER_DISCOUNT_PERCENT = {"standard": 0, "gold": 5}
MAX_ITEMS = 500
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


def invalid(cause):
    return Failure("InvalidOrder", cause)


def ascii_upper(s):
    return "".join(c.upper() if "a" <= c <= "z" else c for c in s)


def quoted(s):
    return json.dumps(s, ensure_ascii=False)


def field(obj, name, kind, where, optional=False):
    """The field `name` of `obj`, checked to be of type `kind`."""
    if name not in obj:
        if optional:
            return None
        raise InvalidInput(f"{where}: missing field `{name}`")
    value = obj[name]
    if optional and value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InvalidInput(f"{where}: `{name}` must be a {kind.__name__}")
    return value


def only_fields(obj, allowed, where):
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise InvalidInput(f"{where}: unknown field `{unknown[0]}`, expected one of {', '.join(allowed)}")


def parse_order(order):
    """Checks the shape of the input, the way serde does for the Rust example."""
    if not isinstance(order, dict):
        raise InvalidInput("the order must be a JSON object")
    only_fields(order, ["order_id", "currency", "customer", "items", "coupon"], "order")
    customer = field(order, "customer", dict, "order")
    only_fields(customer, ["tier"], "customer")
    tier = field(customer, "tier", str, "customer")
    if tier not in TIER_DISCOUNT_PERCENT:
        raise InvalidInput(f"customer: unknown tier {quoted(tier)}, expected standard or gold")
    items = field(order, "items", list, "order")
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object")
        only_fields(item, ["sku", "quantity", "unit_price"], where)
        field(item, "sku", str, where)
        quantity = field(item, "quantity", int, where)
        if not 0 <= quantity <= U32_MAX:
            raise InvalidInput(f"{where}: quantity {quantity} is out of range")
        field(item, "unit_price", str, where)
    return {
        "order_id": field(order, "order_id", str, "order"),
        "currency": field(order, "currency", str, "order"),
        "tier": tier,
        "items": items,
        "coupon": field(order, "coupon", str, "order", optional=True),
    }


def parse_cents(price):
    """"19.99" -> 1999. At most two decimals, no sign, no exponent."""
    whole, _, frac = price.partition(".")
    digits = whole + frac
    if not whole or len(frac) > 2 or not all("0" <= c <= "9" for c in digits):
        return None
    cents = int(whole) * 100 + int(frac.ljust(2, "0"))
    return cents if cents <= U64_MAX else None


def price(raw):
    order = parse_order(raw)
    order_id = order["order_id"].strip()
    if not order_id:
        raise invalid("order_id must not be empty")
    currency = ascii_upper(order["currency"])
    if currency not in CURRENCIES:
        raise invalid(
            f"order {order_id}: currency {quoted(order['currency'])} is not supported "
            "(expected one of USD, EUR, GBP)"
        )
    items = order["items"]
    if not items:
        raise invalid(f"order {order_id} has no items")
    if len(items) > MAX_ITEMS:
        raise invalid(f"order {order_id} has {len(items)} items; at most {MAX_ITEMS} are allowed")

    lines = []
    for i, item in enumerate(items):
        sku = item["sku"]
        if item["quantity"] == 0:
            raise invalid(f"items[{i}] ({sku}): quantity must be at least 1")
        unit = parse_cents(item["unit_price"])
        if unit is None:
            raise invalid(
                f"items[{i}] ({sku}): unit_price {quoted(item['unit_price'])} "
                'is not a decimal amount like "19.99"'
            )
        total = unit * item["quantity"]
        if total > U64_MAX:
            raise invalid(f"items[{i}] ({sku}): line total overflows")
        lines.append(
            {"sku": ascii_upper(sku.strip()), "quantity": item["quantity"], "line_total_cents": total}
        )
    progress(f"priced {len(lines)} lines")

    subtotal = sum(line["line_total_cents"] for line in lines)
    discount_percent = TIER_DISCOUNT_PERCENT[order["tier"]]
    coupon = order["coupon"]
    if coupon == "SAVE10":
        discount_percent += 10
    elif coupon is not None:
        log(Level.WARN, f"order {order_id}: unknown coupon {quoted(coupon)} ignored")
    discount = subtotal * discount_percent // 100
    taxable = subtotal - discount
    # Basis points, rounded half up.
    tax = (taxable * CURRENCIES[currency] + 5_000) // 10_000
    log(Level.INFO, f"order {order_id}: {len(lines)} lines, total {taxable + tax}")

    return {
        "order_id": order_id,
        "currency": currency,
        "lines": lines,
        "subtotal_cents": subtotal,
        "discount_cents": discount,
        "tax_cents": tax,
        "total_cents": taxable + tax,
    }


Handler = wasm_activity.export_handler(price)
