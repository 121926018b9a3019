// The dashboard: models and layers, live activations over the WebSocket
// stream, the draw pad (POST /infer), resident tensors and store metrics.
// Everything comes from this daemon's admin port.
import { parseNpy, toNpy, toNumbers } from './npy.js';  // client/js/src/npy.js
import { drawBars, drawHeatmap, drawHistogram, drawLegend, tileAt } from './plots.js';
import { DrawPad } from './pad.js';

const $ = (id) => document.getElementById(id);
const state = {
  models: [], model: null, layers: new Set(), socket: null, sent: null,
  useViews: true, views: {}, layouts: {}, focus: null, resubscribe: null,
};
// Read by the browser test: what the page last sent and showed.
window.npystream = { lastInput: null, predicted: null, live: {}, focus: null, errors: [] };

// A `?token=` in the address was turned into a cookie by the daemon; drop it
// from the address bar and history.
if (new URLSearchParams(location.search).has('token')) {
  history.replaceState(null, '', location.pathname);
}

async function getJson(path, init) {
  const res = await fetch(path, { credentials: 'same-origin', ...init });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function setStatus(text, ok) {
  $('status').textContent = text;
  $('status').className = `status ${ok ? 'ok' : 'bad'}`;
}

// ---- models and layers ----

async function loadModels() {
  const { models, errors } = await getJson('/v1/models');
  state.models = models;
  const list = $('models');
  list.replaceChildren(...models.map((m) => {
    const inputs = m.inputs.map((i) => `${i.name} ${i.dtype ?? 'any'} [${i.shape.join(',')}]`);
    const item = el('li', { className: 'model', tabIndex: 0 },
      el('strong', { textContent: m.name }), ` on ${m.device}`,
      el('div', { className: 'muted', textContent: `in: ${inputs.join('; ')} → ${m.outputs.join(', ')}` }));
    item.dataset.model = m.name;
    item.addEventListener('click', () => selectModel(m.name));
    return item;
  }), ...errors.map((e) => el('li', { className: 'error', textContent: `${e.name}: ${e.error}` })));
  if (!state.model && models.length) {
    selectModel((models.find((m) => m.name === 'demo') || models[0]).name);
  }
}

function selectModel(name) {
  const model = state.models.find((m) => m.name === name);
  state.model = model;
  for (const li of document.querySelectorAll('#models li.model')) {
    li.classList.toggle('selected', li.dataset.model === name);
  }
  const defaults = ['conv1', 'conv2', 'layer1', 'layer2', 'layer3', 'layer4', 'fc']
    .filter((l) => model.layers.includes(l));
  state.layers = new Set(defaults.length ? defaults : model.layers.slice(0, 2));
  state.useViews = true;
  state.views = defaultViews();
  state.layouts = {};
  $('layers').replaceChildren(el('h3', { textContent: 'Layers' }), ...model.layers.map((layer) => {
    const box = el('input', { type: 'checkbox', checked: state.layers.has(layer) });
    box.addEventListener('change', () => {
      if (box.checked) state.layers.add(layer); else state.layers.delete(layer);
      state.views = defaultViews();
      subscribe();
    });
    return el('label', { className: 'layer' }, box, ` ${layer}`);
  }));
  const input = model.inputs.length === 1 ? model.inputs[0] : null;
  const image = input && input.shape.length === 4 && input.shape.slice(1).join(',') === '1,28,28';
  $('pad-panel').hidden = !image;
  $('live-model').textContent = `· ${name}`;
  subscribe();
}

// ---- live activations (WebSocket) ----
//
// The page asks for views, so only what it draws crosses the link: each
// layer's chosen sample, as float16, mean-pooled so a tile is at most
// MAX_TILE px on a side (the pool is picked from the first value's shape,
// then the stream is reopened with it). Clicking a tile opens that channel
// at full resolution and the layer's own dtype on a second stream.

const MAX_TILE = 64;
const VIEW_DTYPE = '<f2';

function streamUrl(model, layers, views) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const hz = Math.max(0, Number($('max-hz').value) || 0);
  const query = new URLSearchParams({ layers: layers.join(','), max_hz: String(hz) });
  for (const [layer, view] of Object.entries(views)) {
    for (const [key, value] of Object.entries(view)) {
      if (value !== '' && value !== 0) query.set(`view.${layer}.${key}`, String(value));
    }
  }
  return `${scheme}://${location.host}/v1/models/${encodeURIComponent(model)}/subscribe?${query}`;
}

// Opens a stream; `onValue(meta, array)` per value, `onClose(event)` when it ends.
function openStream(url, onValue, onClose) {
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  let meta = null;
  socket.onmessage = (event) => {
    if (typeof event.data === 'string') {
      meta = JSON.parse(event.data);
      return;
    }
    if (meta) onValue(meta, parseNpy(event.data));
    meta = null;
  };
  socket.onclose = onClose;
  return socket;
}

function sample() {
  return Math.max(0, Math.floor(Number($('sample').value) || 0));
}

// The view each layer starts with (its pool is added once its shape is known).
function defaultViews() {
  if (!state.useViews) return {};
  const views = {};
  for (const layer of state.layers) views[layer] = { index: String(sample()), dtype: VIEW_DTYPE, pool: 0 };
  return views;
}

function subscribe() {
  if (state.socket) state.socket.close();
  state.socket = null;
  $('live').replaceChildren();
  window.npystream.live = {};
  closeFocus();
  if (!state.model || state.layers.size === 0) return;
  const socket = openStream(streamUrl(state.model.name, [...state.layers], state.views),
    (meta, array) => {
      if (state.socket === socket) showLive(meta, array);
    },
    (event) => {
      if (state.socket !== socket) return;
      if (event.code === 1008 && state.useViews) {
        // A view does not fit this model's values (a non-float or 0-d layer,
        // a sample past the batch): show whole values instead.
        state.useViews = false;
        state.views = {};
        window.npystream.errors.push(`views off: ${event.reason}`);
        setStatus(`views off: ${event.reason}`, false);
        subscribe();
        return;
      }
      setStatus(`stream closed (${event.code}); retrying`, false);
      setTimeout(() => { if (state.socket === socket) subscribe(); }, 2000);
    });
  socket.onopen = () => {
    window.npystream.extensions = socket.extensions;  // "permessage-deflate; ..." when negotiated
    setStatus(`live: ${state.model.name}`, true);
  };
  state.socket = socket;
}

function resubscribeSoon() {
  clearTimeout(state.resubscribe);
  state.resubscribe = setTimeout(subscribe, 50);
}

function layerCard(layer) {
  let card = document.querySelector(`.card[data-layer="${CSS.escape(layer)}"]`);
  if (card) return card;
  const heatmap = el('canvas', { className: 'heatmap', width: 10, height: 10 });
  card = el('div', { className: 'card' },
    el('h3', {}, el('span', { textContent: layer }), el('span', { className: 'muted meta' })),
    heatmap,
    el('canvas', { className: 'legend', width: 240, height: 28 }),
    el('canvas', { className: 'histogram', width: 240, height: 80 }));
  card.dataset.layer = layer;
  heatmap.addEventListener('click', (event) => {
    const layout = state.layouts[layer];
    const view = state.views[layer];
    if (!layout || layout.tiles < 2) return;
    const box = heatmap.getBoundingClientRect();
    const t = tileAt(layout, (event.clientX - box.left) * (heatmap.width / box.width),
      (event.clientY - box.top) * (heatmap.height / box.height));
    if (t >= 0) openFocus(layer, view ? Number(view.index) : 0, t);
  });
  $('live').append(card);
  return card;
}

function viewText(view) {
  if (!view) return 'whole';
  return `[${view.index}] ${view.dtype}${view.pool > 1 ? ` mean ${view.pool}×${view.pool}` : ''}`;
}

function showLive(meta, array) {
  const view = state.views[meta.layer];
  const { shape } = array;
  if (view && !view.pool && shape.length >= 2) {
    const side = Math.max(shape[shape.length - 1], shape[shape.length - 2]);
    if (side > MAX_TILE) {  // the first value of this layer: ask for its pool and reopen
      view.pool = Math.ceil(side / MAX_TILE);
      resubscribeSoon();
    }
  }
  const values = toNumbers(array);
  const card = layerCard(meta.layer);
  card.querySelector('.meta').textContent =
    ` ${array.dtype} [${shape.join('×')}] ${viewText(view)} #${meta.seq} · ${meta.infer_ms.toFixed(1)} ms`;
  const heatmap = card.querySelector('.heatmap');
  const layout = drawHeatmap(heatmap, values, shape);
  state.layouts[meta.layer] = layout;
  drawLegend(card.querySelector('.legend'), layout.min, layout.max);
  drawHistogram(card.querySelector('.histogram'), values);
  window.npystream.live[meta.layer] = {
    seq: meta.seq, shape, dtype: array.dtype, view: view ? { ...view } : null,
    min: layout.min, max: layout.max, tiles: layout.tiles,
    grid: { cols: layout.cols, tileW: layout.tileW, tileH: layout.tileH },
  };
}

// ---- one channel at full resolution (a click on a tile) ----

function closeFocus() {
  if (state.focus) state.focus.socket.close();
  state.focus = null;
  $('focus').replaceChildren();
  window.npystream.focus = null;
}

function openFocus(layer, sampleIndex, channel) {
  closeFocus();
  const index = `${sampleIndex},${channel}`;
  const title = `${layer}[${index}]`;
  const close = el('button', { type: 'button', textContent: '×', title: 'close' });
  close.addEventListener('click', closeFocus);
  const card = el('div', { className: 'card focus' },
    el('h3', {}, el('span', { textContent: title }), el('span', { className: 'muted meta' }), close),
    el('canvas', { className: 'heatmap', width: 10, height: 10 }),
    el('canvas', { className: 'legend', width: 240, height: 28 }));
  card.dataset.layer = title;
  $('focus').replaceChildren(card);
  const views = { [layer]: { index, dtype: '', pool: 0 } };
  const socket = openStream(streamUrl(state.model.name, [layer], views), (meta, array) => {
    const values = toNumbers(array);
    card.querySelector('.meta').textContent = ` ${array.dtype} [${array.shape.join('×')}] #${meta.seq}`;
    const { min, max } = drawHeatmap(card.querySelector('.heatmap'), values, array.shape, 448);
    drawLegend(card.querySelector('.legend'), min, max);
    window.npystream.focus = { layer, index, seq: meta.seq, shape: array.shape, dtype: array.dtype, min, max };
  }, (event) => {
    if (state.focus?.socket === socket) {
      card.querySelector('.meta').textContent = ` closed (${event.code}) ${event.reason}`;
    }
  });
  state.focus = { layer, index, socket };
}

// ---- the draw pad ----

async function runPad(input) {
  if (!input || !state.model) return;
  window.npystream.lastInput = Array.from(input);
  drawPreview(input);
  const capture = [...state.layers].filter((l) => state.model.layers.includes(l)).join(',');
  try {
    const result = await getJson(
      `/v1/models/${encodeURIComponent(state.model.name)}/infer?capture=${capture}&ttl=300`,
      { method: 'POST', headers: { 'Content-Type': 'application/x-npy' },
        body: toNpy(Float32Array.from(input), { dtype: '<f4', shape: [1, 1, 28, 28] }) });
    const [name, out] = Object.entries(result.outputs)[0];
    const res = await fetch(`/v1/tensors/${encodeURIComponent(out.handle)}.npy`);
    if (!res.ok) throw new Error(`${name}: ${res.status}`);
    const values = toNumbers(parseNpy(await res.arrayBuffer()));
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    drawBars($('output-bars'), values, best);
    $('predicted').textContent = String(best);
    window.npystream.predicted = best;
    $('infer-error').textContent = '';
    refreshTensors();
  } catch (err) {
    $('infer-error').textContent = err.message;
    window.npystream.errors.push(err.message);
  }
}

function drawPreview(input) {
  const canvas = $('input-preview');
  const tmp = el('canvas', { width: 28, height: 28 });
  const img = tmp.getContext('2d').createImageData(28, 28);
  input.forEach((v, i) => {
    const g = Math.round(Math.min(1, Math.max(0, v)) * 255);
    img.data.set([g, g, g, 255], i * 4);
  });
  tmp.getContext('2d').putImageData(img, 0, 0);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

// ---- resident tensors and metrics ----

async function refreshTensors() {
  const { tensors } = await getJson('/v1/tensors');
  const now = Date.now();
  tensors.sort((a, b) => b.created_unix_ms - a.created_unix_ms);
  $('tensor-count').textContent = `(${tensors.length})`;
  $('tensors').replaceChildren(...tensors.slice(0, 200).map((t) => {
    const ttl = t.expires_unix_ms ? `${Math.max(0, (t.expires_unix_ms - now) / 1000).toFixed(0)} s` : '∞';
    const row = el('tr', {},
      el('td', {}, el('a', { href: `/v1/tensors/${encodeURIComponent(t.handle)}.npy`, textContent: t.handle })),
      el('td', { textContent: t.name }), el('td', { textContent: t.dtype }),
      el('td', { textContent: `[${t.shape.join(', ')}]` }), el('td', { textContent: bytes(t.nbytes) }),
      el('td', { textContent: t.device }),
      el('td', { textContent: `${((now - t.created_unix_ms) / 1000).toFixed(0)} s` }),
      el('td', { textContent: ttl }));
    row.dataset.handle = t.handle;
    return row;
  }));
}

// Sums every sample of `name` in Prometheus text.
function metric(text, name) {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      seen = true;
    }
  }
  return seen ? sum : NaN;
}

async function refreshMetrics() {
  const text = await (await fetch('/metrics')).text();
  const used = metric(text, 'npystream_store_bytes');
  const budget = metric(text, 'npystream_store_budget_bytes');
  $('store-usage').textContent = `${bytes(used)} of ${budget ? bytes(budget) : 'no budget'}`;
  $('store-bar').value = budget ? used / budget : 0;
  const sent = metric(text, 'npystream_bytes_sent_total');
  const t = performance.now();
  if (state.sent) {
    const rate = (sent - state.sent.bytes) / ((t - state.sent.t) / 1000);
    $('throughput').textContent = `${bytes(Math.max(0, rate))}/s`;
  }
  state.sent = { bytes: sent, t };
}

async function poll(fn, ms) {
  try {
    await fn();
  } catch (err) {
    setStatus(err.message, false);
  }
  setTimeout(() => poll(fn, ms), ms);
}

const pad = new DrawPad($('pad'), runPad);
$('clear').addEventListener('click', () => pad.clear());
$('max-hz').addEventListener('change', subscribe);
$('sample').addEventListener('change', () => {
  state.useViews = true;
  state.views = defaultViews();
  subscribe();
});
loadModels().catch((err) => setStatus(err.message, false));
poll(refreshTensors, 1000);
poll(refreshMetrics, 2000);
