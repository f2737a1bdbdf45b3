// The {{name}} activity handler. Build with `./build.sh`.
import { exportHandler, Failure, InvalidInput, log } from './wasm-activity.js';

function handle(task) {
  if (typeof task !== 'object' || task === null || typeof task.name !== 'string') {
    throw new InvalidInput('expected an object with a string `name`');
  }
  const items = task.items ?? [];
  if (!Array.isArray(items)) throw new InvalidInput('`items` must be an array');
  const name = task.name.trim();
  if (!name) throw new Failure('EmptyName', '`name` must not be empty');
  log('info', `greeting ${name}`);
  return { greeting: `Hello, ${name}!`, item_count: items.length };
}

export const handler = exportHandler(handle);
