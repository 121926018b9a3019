// Types of the npystream package (src/index.js).

/** A numpy dtype descr as the daemon writes it: "<f4", "|u1", "<i8", ... */
export type Descr = string;

export type NpyData =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** A decoded .npy. float16 arrives widened (exactly) in a Float32Array;
 * complex as interleaved (re, im) pairs; data is in file order. */
export interface NpyArray {
  dtype: Descr;
  shape: number[];
  fortranOrder: boolean;
  complex: boolean;
  data: NpyData;
}

export class NpyError extends Error {}
export function parseNpy(buffer: ArrayBuffer | ArrayBufferView): NpyArray;
/** The bytes np.save writes for C-order `data` of `shape` as `dtype`. */
export function toNpy(data: NpyData | ArrayLike<number> | ArrayLike<bigint>,
  options?: { dtype?: Descr; shape?: number[] }): Uint8Array;
export function halfToFloat(bits: number): number;
export function floatToHalf(value: number): number;
/** Elements as numbers for drawing (complex: magnitudes). */
export function toNumbers(array: NpyArray): Float32Array | Float64Array | NpyData;

export class NpystreamError extends Error {
  /** The HTTP status (0 when no request was made). */
  status: number;
}

/** A view of a resident tensor, computed by the daemon (see README, Views). */
export interface View {
  index?: string;
  dtype?: Descr;
  pool?: number;
}

export interface TensorInfo {
  handle: string;
  name?: string;
  dtype: Descr;
  shape: number[];
  nbytes: number;
  [key: string]: unknown;
}

export interface ModelInfo {
  name: string;
  device: string;
  inputs: { name: string; dtype?: Descr; shape: number[] }[];
  outputs: string[];
  layers: string[];
  [key: string]: unknown;
}

export interface InferReply {
  outputs: Record<string, TensorInfo>;
  activations: Record<string, TensorInfo>;
  infer_ms: number;
}

export interface LiveMeta {
  layer: string;
  seq: number;
  dtype: Descr;
  shape: number[];
  infer_ms: number;
}

export interface SubscribeOptions {
  views?: Record<string, View>;
  maxHz?: number;
  every?: number;
  onValue?: (meta: LiveMeta, array: NpyArray) => void;
  onError?: (error: Error) => void;
  onOpen?: () => void;
}

export class Client {
  constructor(baseUrl: string, options?: { token?: string; WebSocket?: unknown });
  models(): Promise<{ models: ModelInfo[]; errors: { name: string; error: string }[] }>;
  tensors(): Promise<{ tensors: TensorInfo[]; [key: string]: unknown }>;
  fetch(handle: string, options?: View & { signal?: AbortSignal }): Promise<NpyArray>;
  infer(model: string, npy: Uint8Array,
    options?: { capture?: string[]; ttl?: number; signal?: AbortSignal }): Promise<InferReply>;
  subscribe(model: string, layers: string[], options?: SubscribeOptions): { close(): void };
}
