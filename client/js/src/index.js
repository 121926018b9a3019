// npystream: tensors resident in npystreamd, as typed arrays, from node or a
// browser page. See README.md.
export { Client, NpystreamError } from './client.js';
export { NpyError, floatToHalf, halfToFloat, parseNpy, toNpy, toNumbers } from './npy.js';
