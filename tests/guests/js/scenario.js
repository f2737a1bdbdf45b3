// Adversarial basics for JavaScript guests: behaviour chosen by the input's
// `action`. Built by tests/guests/build-polyglot.sh.
import { exportHandler, Failure, log } from '../../../guest-sdk/js/wasm-activity.js';

async function run(task) {
  switch (task.action) {
    case 'echo':
      log('info', 'js scenario echo');
      return { echo: task.value ?? null, language: 'js' };
    case 'fail':
      throw new Failure(task.error ?? 'Planned', task.cause ?? 'failed on purpose');
    case 'spin': {
      let n = 0;
      for (;;) n++;
    }
    case 'fetch': {
      const response = await fetch(task.url);
      return { status: response.status, body: await response.text() };
    }
    case 'say': {
      // Guest text that tries to leak a secret and forge host log lines.
      log('warn', task.text);
      console.log(task.text);
      console.error(task.text);
      throw new Failure(task.error ?? 'Said', task.text);
    }
    case 'log_loop': {
      const message = 'y'.repeat(task.kib * 1024);
      const deadline = Date.now() + task.ms;
      let calls = 0;
      while (Date.now() < deadline) {
        log('info', message);
        calls++;
      }
      return { calls };
    }
    default:
      throw new Failure('UnknownAction', `no such action: ${JSON.stringify(task.action)}`);
  }
}

const sdk = exportHandler(run);

// Adds what the SDK would never do: a trap and output that is not JSON.
export const handler = {
  handle(input) {
    const action = JSON.parse(input).action;
    if (action === 'trap') {
      // Not the {error, cause} shape: componentize-js cannot lower it and traps.
      throw new Error('js guest trapped on purpose');
    }
    if (action === 'bad_output') return '<html>nope</html>';
    return sdk.handle(input);
  },
};
