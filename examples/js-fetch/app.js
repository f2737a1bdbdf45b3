// Stock check: a JavaScript handler that calls an HTTP service with fetch().
//
// For each SKU in the input it asks an inventory service
// (GET {inventory_url}/stock/{sku} -> {"available": n}) and reports which
// lines can be shipped. The host lets the request out only because the
// activity's config lists the service's origin under [activity.X.http];
// any other origin is refused before a connection is made.
//
// Build (from the repository root): examples/js-fetch/build.sh, which runs
//
//   npm install @bytecodealliance/componentize-js@0.23.0
//   componentize-js examples/js-fetch/app.js --wit wit -n activity -o examples/js-fetch/stock_check.wasm
//
// Input:  {"inventory_url": "http://127.0.0.1:8080", "lines": [{"sku": "widget-1", "quantity": 3}]}
// Output: {"lines": [{"sku", "quantity", "available", "ok"}], "all_available": bool}

import { exportHandler, Failure, InvalidInput, log, progress } from '../../guest-sdk/js/wasm-activity.js';

async function available(base, sku) {
  const url = `${base.replace(/\/$/, '')}/stock/${encodeURIComponent(sku)}`;
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Failure('InventoryUnreachable', `GET ${url}: ${e.message}`);
  }
  if (!response.ok) {
    throw new Failure('InventoryError', `GET ${url}: HTTP ${response.status}`);
  }
  const body = await response.json();
  if (!Number.isInteger(body.available)) {
    throw new Failure('InventoryError', `GET ${url}: no integer "available" in ${JSON.stringify(body)}`);
  }
  return body.available;
}

async function checkStock(task) {
  if (typeof task?.inventory_url !== 'string' || !Array.isArray(task.lines)) {
    throw new InvalidInput('expected {"inventory_url": string, "lines": [{"sku", "quantity"}]}');
  }
  const lines = [];
  for (const [i, line] of task.lines.entries()) {
    if (typeof line?.sku !== 'string' || !Number.isInteger(line.quantity)) {
      throw new InvalidInput(`lines[${i}] must be {"sku": string, "quantity": integer}`);
    }
    const stock = await available(task.inventory_url, line.sku);
    lines.push({ sku: line.sku, quantity: line.quantity, available: stock, ok: stock >= line.quantity });
    progress(`checked ${lines.length} of ${task.lines.length}`);
  }
  const allAvailable = lines.every((l) => l.ok);
  log('info', `stock check: ${lines.length} lines, all available: ${allAvailable}`);
  return { lines, all_available: allAvailable };
}

export const handler = exportHandler(checkStock);
