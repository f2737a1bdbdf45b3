//! The {{name}} activity handler. Build with `./build.sh`.

use serde::{Deserialize, Serialize};
use wasm_activity_guest::{Failure, Level, log};

#[derive(Deserialize)]
struct Input {
    name: String,
    #[serde(default)]
    items: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
    item_count: usize,
}

fn handle(input: Input) -> Result<Output, Failure> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(Failure::new("EmptyName", "`name` must not be empty"));
    }
    log(Level::Info, &format!("greeting {name}"));
    Ok(Output {
        greeting: format!("Hello, {name}!"),
        item_count: input.items.len(),
    })
}

wasm_activity_guest::export_handler!(handle);
