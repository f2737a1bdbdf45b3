"""Stock check: a Python handler that calls an HTTP service through wasi:http.

For each SKU in the input it asks an inventory service
(GET {inventory_url}/stock/{sku} -> {"available": n}) and reports which lines
can be shipped. The host lets the request out only because the activity's
config lists the service's origin under [activity.X.http]; any other origin
is refused before a connection is made.

Build (from the repository root): examples/python-http/build.sh, which runs

    pip install componentize-py==0.25.1
    componentize-py -d wit -w activity-http componentize app \\
        -p examples/python-http -p guest-sdk/python -o examples/python-http/stock_check.wasm

`-w activity-http` (not `-w activity`) is what gives the component its
wasi:http import.

Input:  {"inventory_url": "http://127.0.0.1:8080", "lines": [{"sku": "widget-1", "quantity": 3}]}
Output: {"lines": [{"sku", "quantity", "available", "ok"}], "all_available": bool}
"""

import urllib.parse

import wasm_activity
from wasm_activity import Failure, HttpError, InvalidInput, Level, http_get, log, progress


def available(base, sku):
    url = f"{base.rstrip('/')}/stock/{urllib.parse.quote(sku, safe='')}"
    try:
        response = http_get(url, timeout=10)
    except HttpError as e:
        raise Failure("InventoryUnreachable", str(e)) from None
    if not response.ok:
        raise Failure("InventoryError", f"GET {url}: HTTP {response.status}")
    try:
        count = response.json()["available"]
    except (ValueError, KeyError, TypeError):
        count = None
    if not isinstance(count, int) or isinstance(count, bool):
        raise Failure("InventoryError", f'GET {url}: no integer "available" in {response.text()}')
    return count


def check_stock(task):
    if not isinstance(task, dict) or not isinstance(task.get("inventory_url"), str):
        raise InvalidInput('expected {"inventory_url": string, "lines": [{"sku", "quantity"}]}')
    if not isinstance(task.get("lines"), list):
        raise InvalidInput('expected {"inventory_url": string, "lines": [{"sku", "quantity"}]}')
    lines = []
    for i, line in enumerate(task["lines"]):
        if (
            not isinstance(line, dict)
            or not isinstance(line.get("sku"), str)
            or not isinstance(line.get("quantity"), int)
            or isinstance(line.get("quantity"), bool)
        ):
            raise InvalidInput(f'lines[{i}] must be {{"sku": string, "quantity": integer}}')
        stock = available(task["inventory_url"], line["sku"])
        lines.append(
            {"sku": line["sku"], "quantity": line["quantity"], "available": stock, "ok": stock >= line["quantity"]}
        )
        progress(f"checked {len(lines)} of {len(task['lines'])}")
    all_available = all(line["ok"] for line in lines)
    log(Level.INFO, f"stock check: {len(lines)} lines, all available: {all_available}")
    return {"lines": lines, "all_available": all_available}


Handler = wasm_activity.export_handler(check_stock)
