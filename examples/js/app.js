// Order pricing: an activity handler that validates an order and prices it.
//
// The same transform as examples/rust, in JavaScript; outputs are identical
// for the inputs in examples/orders. Build (from the repository root):
//
//   npm install @bytecodealliance/componentize-js@0.23.0
//   componentize-js examples/js/app.js --wit wit -n activity -o examples/js/order_pricing.wasm
//
// or just `examples/js/build.sh`, which installs componentize-js into a cache
// first. Then try it:
//
//   wasm-activity invoke examples/js/order_pricing.wasm --input @examples/orders/input.json
//
// Input: {"order_id", "currency", "customer": {"tier"}, "items": [{"sku",
// "quantity", "unit_price"}], "coupon"?} with prices as decimal strings
// ("19.99"). Output: the priced order with per-line totals, discount, tax and
// grand total in integer cents. Amounts are BigInts inside, so no float
// rounding ever reaches a bill.

import { exportHandler, Failure, InvalidInput, log, progress } from '../../guest-sdk/js/wasm-activity.js';

const CURRENCIES = { USD: 800n, EUR: 2000n, GBP: 2000n }; // tax in basis points
const TIER_DISCOUNT_PERCENT = { standard: 0n, gold: 5n };
const MAX_ITEMS = 500;
const U32_MAX = 2 ** 32 - 1;
const U64_MAX = 2n ** 64n - 1n;

const invalid = (cause) => new Failure('InvalidOrder', cause);
const asciiUpper = (s) => s.replace(/[a-z]+/g, (m) => m.toUpperCase());
const quoted = (s) => JSON.stringify(s);
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeOk = { string: (v) => typeof v === 'string', object: isObject, array: Array.isArray };

function field(obj, name, kind, where, optional = false) {
  if (!(name in obj)) {
    if (optional) return null;
    throw new InvalidInput(`${where}: missing field \`${name}\``);
  }
  const value = obj[name];
  if (optional && value === null) return null;
  if (!typeOk[kind](value)) throw new InvalidInput(`${where}: \`${name}\` must be a ${kind}`);
  return value;
}

function onlyFields(obj, allowed, where) {
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k)).sort();
  if (unknown.length) {
    throw new InvalidInput(`${where}: unknown field \`${unknown[0]}\`, expected one of ${allowed.join(', ')}`);
  }
}

// Checks the shape of the input, the way serde does for the Rust example.
function parseOrder(order) {
  if (!isObject(order)) throw new InvalidInput('the order must be a JSON object');
  onlyFields(order, ['order_id', 'currency', 'customer', 'items', 'coupon'], 'order');
  const customer = field(order, 'customer', 'object', 'order');
  onlyFields(customer, ['tier'], 'customer');
  const tier = field(customer, 'tier', 'string', 'customer');
  if (!(tier in TIER_DISCOUNT_PERCENT)) {
    throw new InvalidInput(`customer: unknown tier ${quoted(tier)}, expected standard or gold`);
  }
  const items = field(order, 'items', 'array', 'order');
  items.forEach((item, i) => {
    const where = `items[${i}]`;
    if (!isObject(item)) throw new InvalidInput(`${where} must be an object`);
    onlyFields(item, ['sku', 'quantity', 'unit_price'], where);
    field(item, 'sku', 'string', where);
    const q = item.quantity;
    if (!Number.isInteger(q) || q < 0 || q > U32_MAX) {
      throw new InvalidInput(`${where}: quantity must be an integer from 0 to ${U32_MAX}`);
    }
    field(item, 'unit_price', 'string', where);
  });
  return {
    orderId: field(order, 'order_id', 'string', 'order'),
    currency: field(order, 'currency', 'string', 'order'),
    tier,
    items,
    coupon: field(order, 'coupon', 'string', 'order', true),
  };
}

// "19.99" -> 1999n. At most two decimals, no sign, no exponent.
function parseCents(price) {
  const dot = price.indexOf('.');
  const whole = dot < 0 ? price : price.slice(0, dot);
  const frac = dot < 0 ? '' : price.slice(dot + 1);
  if (!whole || frac.length > 2 || !/^[0-9]*$/.test(whole + frac)) return null;
  const cents = BigInt(whole) * 100n + BigInt(frac.padEnd(2, '0'));
  return cents <= U64_MAX ? cents : null;
}

// Amounts leave as numbers; an order above 2^53 cents (90 trillion dollars) is refused.
function amount(cents, orderId) {
  if (cents > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`order ${orderId}: amount ${cents} is too large`);
  return Number(cents);
}

function price(raw) {
  const order = parseOrder(raw);
  const orderId = order.orderId.trim();
  if (!orderId) throw invalid('order_id must not be empty');
  const currency = asciiUpper(order.currency);
  if (!(currency in CURRENCIES)) {
    throw invalid(`order ${orderId}: currency ${quoted(order.currency)} is not supported (expected one of USD, EUR, GBP)`);
  }
  if (order.items.length === 0) throw invalid(`order ${orderId} has no items`);
  if (order.items.length > MAX_ITEMS) {
    throw invalid(`order ${orderId} has ${order.items.length} items; at most ${MAX_ITEMS} are allowed`);
  }

  const lines = order.items.map((item, i) => {
    if (item.quantity === 0) throw invalid(`items[${i}] (${item.sku}): quantity must be at least 1`);
    const unit = parseCents(item.unit_price);
    if (unit === null) {
      throw invalid(`items[${i}] (${item.sku}): unit_price ${quoted(item.unit_price)} is not a decimal amount like "19.99"`);
    }
    const total = unit * BigInt(item.quantity);
    if (total > U64_MAX) throw invalid(`items[${i}] (${item.sku}): line total overflows`);
    return { sku: asciiUpper(item.sku.trim()), quantity: item.quantity, total };
  });
  progress(`priced ${lines.length} lines`);

  const subtotal = lines.reduce((sum, l) => sum + l.total, 0n);
  let discountPercent = TIER_DISCOUNT_PERCENT[order.tier];
  if (order.coupon === 'SAVE10') {
    discountPercent += 10n;
  } else if (order.coupon !== null) {
    log('warn', `order ${orderId}: unknown coupon ${quoted(order.coupon)} ignored`);
  }
  const discount = (subtotal * discountPercent) / 100n;
  const taxable = subtotal - discount;
  // Basis points, rounded half up.
  const tax = (taxable * CURRENCIES[currency] + 5000n) / 10000n;
  log('info', `order ${orderId}: ${lines.length} lines, total ${taxable + tax}`);

  return {
    order_id: orderId,
    currency,
    lines: lines.map((l) => ({ sku: l.sku, quantity: l.quantity, line_total_cents: amount(l.total, orderId) })),
    subtotal_cents: amount(subtotal, orderId),
    discount_cents: amount(discount, orderId),
    tax_cents: amount(tax, orderId),
    total_cents: amount(taxable + tax, orderId),
  };
}

export const handler = exportHandler(price);
