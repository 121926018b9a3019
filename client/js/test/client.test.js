// The package against a real daemon (tests/test_js.py starts it and writes
// the fixture: numpy-written .npy files of every dtype, their handles, and
// numpy's answers). Run: node --experimental-websocket --test test/*.test.js
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Client, NpystreamError, parseNpy, toNpy } from '../src/index.js';
import { checkDecoder } from './decoder_suite.js';

const fixture = JSON.parse(readFileSync(process.env.NPYSTREAM_JS_FIXTURE, 'utf8'));
const client = new Client(fixture.base, { token: fixture.token });

const exact = (a) => Array.from(a.data, (v) => (typeof v === 'bigint' ? v.toString() : v));
const same = (got, want, what) => {
  assert.equal(got.dtype, want.dtype, what);
  assert.deepEqual(got.shape, want.shape, what);
  const values = exact(got);
  assert.equal(values.length, want.values.length, what);
  for (let i = 0; i < values.length; i++) {
    const [a, b] = [values[i], want.values[i]];
    if (typeof a === 'number' && Number.isNaN(a)) assert.ok(b === 'nan', `${what}[${i}]`);
    else assert.equal(String(a), String(b), `${what}[${i}]`);
  }
};

test('parseNpy reads every dtype numpy writes; toNpy writes its bytes (decoder_suite.js)', () => {
  const files = fixture.cases.map((c) => ({ want: c, bytes: new Uint8Array(readFileSync(c.file)) }));
  assert.equal(checkDecoder(files), fixture.cases.length);
});

test('fetch gives every stored dtype as numpy does, and views of it', async () => {
  for (const c of fixture.cases) same(await client.fetch(c.handle), c, c.handle);
  for (const v of fixture.views) {
    same(await client.fetch(v.handle, v.view), v, `${v.handle} ${JSON.stringify(v.view)}`);
  }
});

test('errors carry the status and the daemon\'s message', async () => {
  await assert.rejects(client.fetch('no-such-tensor'),
    (e) => e instanceof NpystreamError && e.status === 404);
  await assert.rejects(client.fetch(fixture.cases[0].handle, { index: '0, 0, 0, 0, 0, 0' }),
    (e) => e.status === 400 && /view index/.test(e.message));
  const anonymous = new Client(fixture.base);
  await assert.rejects(anonymous.models(), (e) => e.status === 401);
});

test('abort a fetch with a signal', async () => {
  const controller = new AbortController();
  const pending = client.fetch(fixture.big, { signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, (e) => e.name === 'AbortError');
});

test('models, tensors and infer agree with the Python client', async () => {
  const { models } = await client.models();
  assert.deepEqual(models.map((m) => m.name), fixture.models);
  const { tensors } = await client.tensors();
  for (const c of fixture.cases) assert.ok(tensors.some((t) => t.handle === c.handle), c.handle);
  const input = parseNpy(readFileSync(fixture.infer.input));
  const reply = await client.infer('demo', toNpy(input.data, { dtype: '<f4', shape: input.shape }),
    { capture: ['conv1'], ttl: 60 });
  same(await client.fetch(reply.outputs.logits.handle), fixture.infer.logits, 'logits');
  assert.deepEqual(reply.activations.conv1.shape, fixture.infer.conv1_shape);
});

test('subscribe delivers views of live values', async () => {
  const input = parseNpy(readFileSync(fixture.infer.input));
  const npy = toNpy(input.data, { dtype: '<f4', shape: input.shape });
  const got = await new Promise((resolve, reject) => {
    const sub = client.subscribe('demo', ['conv1', 'fc'], {
      views: { conv1: { index: '0, 1:3', dtype: '<f2' } },
      maxHz: 0,
      onOpen: () => setTimeout(() => client.infer('demo', npy, { ttl: 5 }).catch(reject), 100),
      onValue: (meta, array) => {
        if (meta.layer === 'conv1') {
          sub.close();
          resolve({ meta, array });
        }
      },
      onError: reject,
    });
  });
  assert.equal(got.meta.dtype, '<f2');
  same(got.array, fixture.infer.conv1_view, 'conv1 view');
});

test('a view that does not fit the values ends the stream with onError', async () => {
  const input = parseNpy(readFileSync(fixture.infer.input));
  const npy = toNpy(input.data, { dtype: '<f4', shape: input.shape });
  const error = await new Promise((resolve) => {
    client.subscribe('demo', ['conv1'], {
      views: { conv1: { index: '0, 99' } },
      onOpen: () => setTimeout(() => client.infer('demo', npy, { ttl: 5 }), 100),
      onError: resolve,
    });
  });
  assert.ok(error instanceof NpystreamError && /99 is out of range/.test(error.message), error.message);
});
