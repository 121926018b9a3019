// Runs the dashboard's own modules (server/http/web/*.js and the JS package's
// npy.js it imports, no DOM needed) on
// inputs from tests/test_dashboard.py, which checks the answers against
// numpy and torch. usage: node page_modules.mjs REQUEST.json RESULT.json
import { readFileSync, writeFileSync } from 'node:fs';
import { parseNpy, toNpy } from '../../client/js/src/npy.js';
import { upsample } from '../../server/http/web/pad.js';

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const result = { decoded: {}, errors: {} };
for (const path of request.npy_files) {
  try {
    const a = parseNpy(readFileSync(path));
    // Exact text for every element: BigInt and float alike.
    result.decoded[path] = { dtype: a.dtype, shape: a.shape, fortranOrder: a.fortranOrder,
      complex: a.complex, values: Array.from(a.data, (v) => (typeof v === 'bigint' ? v.toString() : v)) };
  } catch (err) {
    result.errors[path] = err.message;
  }
}
result.upsampled = Array.from(upsample(Float32Array.from(request.upsample), 8, 28));
result.encoded = Buffer.from(toNpy(Float32Array.from(request.encode.data),
  { dtype: '<f4', shape: request.encode.shape })).toString('base64');
writeFileSync(process.argv[3], JSON.stringify(result));
