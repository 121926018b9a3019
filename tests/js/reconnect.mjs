// The package's subscribe across a daemon restart (tests/test_js.py): one
// JSON line per event on stdout ({"event":"open"|"value"|"error"|"fetched"}),
// and a line "fetch HANDLE" on stdin fetches that tensor (a fresh request
// after the restart). Ends when stdin closes.
// usage: node --experimental-websocket reconnect.mjs BASE_URL TOKEN MODEL LAYER
import { createInterface } from 'node:readline';
import { Client } from '../../client/js/src/index.js';

const [base, token, model, layer] = process.argv.slice(2);
const client = new Client(base, { token });
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
let opens = 0;
const subscription = client.subscribe(model, [layer], {
  maxHz: 0,
  onOpen: () => say({ event: 'open', opens: ++opens }),
  onValue: (meta, array) => say({ event: 'value', opens, layer: meta.layer, shape: array.shape,
    values: Array.from(array.data) }),
  onError: (err) => say({ event: 'error', message: err.message }),
});
const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const [command, handle] = line.split(' ');
  if (command !== 'fetch') return;
  try {
    const array = await client.fetch(handle);
    say({ event: 'fetched', handle, shape: array.shape, values: Array.from(array.data) });
  } catch (err) {
    say({ event: 'error', message: err.message });
  }
});
lines.on('close', () => {
  subscription.close();
  process.exit(0);
});
