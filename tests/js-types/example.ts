// Type-checked against the packed npystream package (tests/test_js.py).
import { Client, NpyArray, NpystreamError, parseNpy, toNpy } from 'npystream';

const client = new Client('http://127.0.0.1:8080', { token: 'secret' });

async function main(): Promise<void> {
  const { models } = await client.models();
  const first: string = models[0].name;
  const part: NpyArray = await client.fetch('x', { index: '0, 2:8', dtype: '<f2', pool: 2 });
  const shape: number[] = part.shape;
  const bytes: Uint8Array = toNpy(new Float32Array(784), { dtype: '<f4', shape: [1, 1, 28, 28] });
  const reply = await client.infer(first, bytes, { capture: ['conv1'], ttl: 60 });
  const handle: string = reply.outputs.logits.handle;
  const again: NpyArray = parseNpy(bytes);
  const sub = client.subscribe(first, ['conv1'], {
    views: { conv1: { index: '0', dtype: '<f2' } },
    maxHz: 10,
    onValue: (meta, array) => console.log(meta.layer, meta.seq, array.shape, shape, handle, again.dtype),
    onError: (e) => console.error(e instanceof NpystreamError ? e.status : e),
  });
  sub.close();
}

main().catch(console.error);
