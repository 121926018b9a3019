// The decoder's checks, one suite for both runtimes: node's test runner
// (client.test.js) and chromium (tests/browser/decoder.mjs) call
// checkDecoder with numpy-written .npy files and numpy's values. No node:
// modules here. Throws an Error naming the first difference; returns the
// number of files checked.
import { floatToHalf, halfToFloat, parseNpy, toNpy } from '../src/npy.js';

const fail = (what) => { throw new Error(what); };

// `want`: {dtype, shape, values} with values as tests/test_js.py writes them
// (64-bit ints as text, NaN and infinities as text).
export function sameArray(got, want, what) {
  if (got.dtype !== want.dtype) fail(`${what}: dtype ${got.dtype}, want ${want.dtype}`);
  if (JSON.stringify(got.shape) !== JSON.stringify(want.shape)) {
    fail(`${what}: shape ${JSON.stringify(got.shape)}, want ${JSON.stringify(want.shape)}`);
  }
  const values = Array.from(got.data, (v) => (typeof v === 'bigint' ? v.toString() : v));
  if (values.length !== want.values.length) fail(`${what}: ${values.length} values`);
  for (let i = 0; i < values.length; i++) {
    const [a, b] = [values[i], want.values[i]];
    if (typeof a === 'number' && Number.isNaN(a)) {
      if (b !== 'nan') fail(`${what}[${i}]: NaN, want ${b}`);
    } else if (String(a) !== String(b)) {
      fail(`${what}[${i}]: ${a}, want ${b}`);
    } else if (a === 0 && typeof b === 'number' && Object.is(b, -0) !== Object.is(a, -0)) {
      fail(`${what}[${i}]: the sign of zero`);
    }
  }
}

// files: [{want: {dtype, shape, values, file}, bytes: Uint8Array}].
export function checkDecoder(files) {
  for (const { want, bytes } of files) {
    const array = parseNpy(bytes);
    sameArray(array, want, want.file);
    const written = new Uint8Array(toNpy(array.data, { dtype: array.dtype, shape: array.shape }));
    if (written.length !== bytes.length || written.some((b, i) => b !== bytes[i])) {
      fail(`toNpy ${want.file}: the bytes differ from numpy's`);
    }
  }
  // float16 both ways: every one of the 65536 bit patterns survives.
  for (let bits = 0; bits < 0x10000; bits++) {
    const back = floatToHalf(halfToFloat(bits));
    const nan = (bits & 0x7c00) === 0x7c00 && (bits & 0x03ff) !== 0;
    if (nan ? !Number.isNaN(halfToFloat(back)) : back !== bits) {
      fail(`float16 0x${bits.toString(16)} -> ${halfToFloat(bits)} -> 0x${back.toString(16)}`);
    }
  }
  return files.length;
}
