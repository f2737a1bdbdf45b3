"""The {{name}} activity handler. Build with `./build.sh`."""

import wasm_activity
from wasm_activity import Failure, InvalidInput, Level, log


def handle(task):
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise InvalidInput("expected an object with a string `name`")
    items = task.get("items", [])
    if not isinstance(items, list):
        raise InvalidInput("`items` must be a list")
    name = task["name"].strip()
    if not name:
        raise Failure("EmptyName", "`name` must not be empty")
    log(Level.INFO, f"greeting {name}")
    return {"greeting": f"Hello, {name}!", "item_count": len(items)}


Handler = wasm_activity.export_handler(handle)
