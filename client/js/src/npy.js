// NumPy .npy bytes <-> typed arrays, for every dtype npystreamd serves.
// parseNpy (format 1.0-3.0) gives {dtype, shape, fortranOrder, complex, data}:
// `data` is a typed array of the file's elements in file order: float16 is
// widened to a Float32Array (exactly: every half is a float), complex as
// interleaved (re, im) pairs, bool as Uint8Array, 64-bit integers as
// BigInt64Array/BigUint64Array. toNpy writes the bytes np.save writes.
// No DOM and no dependencies: node and browsers. The dashboard page is
// served this same file (server/http/CMakeLists.txt embeds it).

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const KINDS = {
  b1: { size: 1, array: Uint8Array },
  i1: { size: 1, array: Int8Array },
  u1: { size: 1, array: Uint8Array },
  i2: { size: 2, array: Int16Array, get: 'getInt16' },
  u2: { size: 2, array: Uint16Array, get: 'getUint16' },
  i4: { size: 4, array: Int32Array, get: 'getInt32' },
  u4: { size: 4, array: Uint32Array, get: 'getUint32' },
  i8: { size: 8, array: BigInt64Array, get: 'getBigInt64' },
  u8: { size: 8, array: BigUint64Array, get: 'getBigUint64' },
  f2: { size: 2, array: Uint16Array, get: 'getUint16', half: true },
  f4: { size: 4, array: Float32Array, get: 'getFloat32' },
  f8: { size: 8, array: Float64Array, get: 'getFloat64' },
  c8: { size: 4, array: Float32Array, get: 'getFloat32', complex: true },
  c16: { size: 8, array: Float64Array, get: 'getFloat64', complex: true },
};

export class NpyError extends Error {}

// IEEE half (as its 16 bits) -> number.
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function parseHeader(text) {
  // A Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
  const descr = /'descr':\s*'([^']+)'/.exec(text);
  const fortran = /'fortran_order':\s*(True|False)/.exec(text);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw new NpyError(`npy header not understood: ${text}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return {
    descr: descr[1],
    fortranOrder: fortran[1] === 'True',
    shape: dims.map((d) => {
      const n = Number(d.replace(/L$/, ''));
      if (!Number.isInteger(n) || n < 0) throw new NpyError(`bad dimension ${d}`);
      return n;
    }),
  };
}

// `buffer`: an ArrayBuffer (or a typed array view) holding one whole .npy.
export function parseNpy(buffer) {
  const bytes = buffer instanceof ArrayBuffer
    ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError('not an .npy file (bad magic)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const lenBytes = major === 1 ? 2 : 4;
  const headerLen = lenBytes === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lenBytes + headerLen;
  if (start > bytes.length) throw new NpyError('npy header truncated');
  const header = parseHeader(new TextDecoder(major === 3 ? 'utf-8' : 'latin1')
    .decode(bytes.subarray(8 + lenBytes, start)));
  const order = header.descr[0];
  const kind = KINDS[header.descr.slice(1)];
  if (!kind || !'<>|='.includes(order)) throw new NpyError(`unsupported dtype ${header.descr}`);
  const count = header.shape.reduce((a, b) => a * b, 1) * (kind.complex ? 2 : 1);
  if (bytes.length - start < count * kind.size) {
    throw new NpyError(`npy payload truncated: ${bytes.length - start} of ${count * kind.size} bytes`);
  }
  let data;
  const little = order !== '>';
  if (little && (bytes.byteOffset + start) % kind.size === 0) {
    data = new kind.array(bytes.buffer, bytes.byteOffset + start, count);
  } else if (kind.size === 1) {
    data = new kind.array(bytes.slice(start, start + count).buffer);
  } else {
    data = new kind.array(count);
    for (let i = 0; i < count; i++) data[i] = view[kind.get](start + i * kind.size, little);
  }
  if (kind.half) data = Float32Array.from(data, halfToFloat);
  return {
    dtype: header.descr,
    shape: header.shape,
    fortranOrder: header.fortranOrder,
    complex: !!kind.complex,
    data,
  };
}

// The elements as plain numbers (complex: magnitudes), for drawing.
export function toNumbers(array) {
  const { data } = array;
  if (array.complex) {
    const out = new Float64Array(data.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = Math.hypot(data[2 * i], data[2 * i + 1]);
    return out;
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    return Float64Array.from(data, Number);
  }
  return data;
}

// number -> IEEE half bits, rounded to nearest even (as numpy's astype).
export function floatToHalf(value) {
  const f = new Float32Array([value]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);  // inf, nan
  // float32 -> float16 from the float32 (numpy casts float64 via float32
  // only for f4 inputs; callers with doubles pass Float32Array data).
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h += 1;  // may carry into the exponent
  return sign | h;
}

const ARRAY_DTYPES = new Map([
  [Float32Array, '<f4'], [Float64Array, '<f8'], [Int8Array, '|i1'], [Uint8Array, '|u1'],
  [Int16Array, '<i2'], [Uint16Array, '<u2'], [Int32Array, '<i4'], [Uint32Array, '<u4'],
  [BigInt64Array, '<i8'], [BigUint64Array, '<u8'],
]);

// The C-order .npy of `data` (a typed array or array of numbers) with
// `shape` (default: 1-d) as `dtype` (default: the typed array's own; '<f2'
// takes numbers and rounds them, '|b1' takes 0/1, complex takes (re, im)
// pairs). Byte-identical to np.save of the same array.
export function toNpy(data, { dtype, shape } = {}) {
  const descr = dtype ?? ARRAY_DTYPES.get(data.constructor) ?? '<f8';
  const kind = KINDS[descr.slice(1)];
  if (!kind || !'<|'.includes(descr[0])) throw new NpyError(`unsupported dtype ${descr}`);
  const per = kind.complex ? 2 : 1;
  const dims = shape ?? [data.length / per];
  const count = dims.reduce((a, b) => a * b, 1);
  if (count * per !== data.length) {
    throw new NpyError(`${data.length} values do not fill shape (${dims.join(', ')})`);
  }
  const shapeText = dims.length === 1 ? `${dims[0]},` : dims.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shapeText}), }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const start = 10 + header.length;
  const out = new Uint8Array(start + count * per * kind.size);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const n = count * per;
  if (kind.half) {
    for (let i = 0; i < n; i++) view.setUint16(start + 2 * i, floatToHalf(Number(data[i])), true);
  } else if (kind.size === 1) {
    for (let i = 0; i < n; i++) out[start + i] = descr === '|b1' ? (data[i] ? 1 : 0) : Number(data[i]);
  } else {
    const setter = kind.get.replace('get', 'set');
    const big = kind.array === BigInt64Array || kind.array === BigUint64Array;
    for (let i = 0; i < n; i++) {
      view[setter](start + i * kind.size, big ? BigInt(data[i]) : Number(data[i]), true);
    }
  }
  return out;
}
