// npystream's admin HTTP API from JavaScript (node >= 18 and browsers): the
// model and tensor lists, .npy downloads (whole or views), infer, and the
// live WebSocket stream with reconnects. Errors are NpystreamError with the
// HTTP status and the daemon's message.
import { parseNpy } from './npy.js';

export class NpystreamError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'NpystreamError';
    this.status = status;
  }
}

function viewQuery(params, view, prefix) {
  if (!view) return;
  if (view.index !== undefined && view.index !== '') params.set(`${prefix}index`, String(view.index));
  if (view.dtype) params.set(`${prefix}dtype`, view.dtype);
  if (view.pool) params.set(`${prefix}pool`, String(view.pool));
}

export class Client {
  // baseUrl: the admin port, e.g. "http://127.0.0.1:8080". token: the
  // daemon's bearer token, if it has one (browsers on the daemon's own page
  // can rely on its cookie instead). WebSocket: an implementation for
  // runtimes without a global one (node 18-21: the `ws` package, or node's
  // --experimental-websocket).
  constructor(baseUrl, { token, WebSocket: ws } = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.token = token;
    this.WebSocket = ws ?? globalThis.WebSocket;
  }

  async #get(path, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.baseUrl}${path}`, { ...init, headers });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const body = await res.json();
        if (body.error) message = body.error;
      } catch { /* not JSON */ }
      throw new NpystreamError(message, res.status);
    }
    return res;
  }

  // The models: [{name, device, inputs, outputs, layers, ...}] and errors.
  async models() {
    return (await this.#get('/v1/models')).json();
  }

  // The resident tensors: [{handle, name, dtype, shape, nbytes, ...}].
  async tensors() {
    return (await this.#get('/v1/tensors')).json();
  }

  // A tensor, or a view of it ({index: "0, 2:8", dtype: "<f2", pool: 2},
  // computed by the daemon), as parseNpy gives it; `signal` aborts it.
  async fetch(handle, { index, dtype, pool, signal } = {}) {
    const params = new URLSearchParams();
    viewQuery(params, { index, dtype, pool }, '');
    const query = params.toString();
    const res = await this.#get(`/v1/tensors/${encodeURIComponent(handle)}.npy${query ? `?${query}` : ''}`,
      { signal });
    return parseNpy(await res.arrayBuffer());
  }

  // Runs `model` on one input, `npy` (the bytes toNpy writes). Returns the
  // daemon's reply: {outputs: {name: info}, activations: {layer: info},
  // infer_ms}, each info {handle, dtype, shape, nbytes, ...} a resident
  // tensor to fetch(); capture: layer names; ttl: seconds they stay.
  async infer(model, npy, { capture, ttl, signal } = {}) {
    const params = new URLSearchParams();
    if (capture?.length) params.set('capture', capture.join(','));
    if (ttl) params.set('ttl', String(ttl));
    const query = params.toString();
    const res = await this.#get(`/v1/models/${encodeURIComponent(model)}/infer${query ? `?${query}` : ''}`,
      { method: 'POST', body: npy, headers: { 'Content-Type': 'application/x-npy' }, signal });
    return res.json();
  }

  // Streams `layers` of `model`: onValue(meta, array) for every value
  // (meta: {layer, seq, dtype, shape, infer_ms}); views: {layer: {index,
  // dtype, pool}}; maxHz/every thin each layer. The stream reopens after a
  // drop with backoff (0.25 s doubling to 8 s, reset by a value). A view
  // that does not fit a layer's values closes the stream with 1008: that is
  // reported to onError and not retried. (A view the daemon refuses before
  // the upgrade, HTTP 400, looks like a drop to a WebSocket and is retried:
  // check a view with fetch() first.) Returns {close()}.
  subscribe(model, layers, { views, maxHz, every, onValue, onError, onOpen } = {}) {
    const WebSocketImpl = this.WebSocket;
    if (!WebSocketImpl) throw new NpystreamError('no WebSocket implementation: pass {WebSocket}', 0);
    const params = new URLSearchParams({ layers: layers.join(',') });
    if (maxHz !== undefined) params.set('max_hz', String(maxHz));
    if (every !== undefined) params.set('every', String(every));
    for (const [layer, view] of Object.entries(views ?? {})) viewQuery(params, view, `view.${layer}.`);
    if (this.token) params.set('token', this.token);
    const url = `${this.baseUrl.replace(/^http/, 'ws')}/v1/models/${encodeURIComponent(model)}/subscribe?${params}`;
    let closed = false;
    let socket = null;
    let timer = null;
    let delay = 250;
    const open = () => {
      if (closed) return;
      let meta = null;
      let refused = false;
      let retried = false;
      // Once per socket: browsers fire close after error, but node 20's
      // WebSocket fires only error when a connection fails.
      const retry = () => {
        if (closed || refused || retried) return;
        retried = true;
        timer = setTimeout(open, delay);
        delay = Math.min(delay * 2, 8000);
      };
      socket = new WebSocketImpl(url);
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => onOpen?.();
      socket.onmessage = (event) => {
        if (typeof event.data === 'string') {
          meta = JSON.parse(event.data);
          return;
        }
        delay = 250;
        try {
          onValue?.(meta, parseNpy(event.data));
        } catch (err) {
          onError?.(err);
        }
      };
      socket.onclose = (event) => {
        if (closed) return;
        if (event.code === 1008) {
          refused = true;
          clearTimeout(timer);
          onError?.(new NpystreamError(`stream refused: ${event.reason}`, 400));
          return;
        }
        retry();
      };
      socket.onerror = retry;
    };
    open();
    return {
      close() {
        closed = true;
        clearTimeout(timer);
        socket?.close();
      },
    };
  }
}
