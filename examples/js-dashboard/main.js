// Subscribes to one layer (sample 0, channel 0, as float16: a view computed
// by the daemon) and draws it as a grey-scale image.
import { Client, toNumbers } from '../../client/js/src/index.js';

const q = new URLSearchParams(location.search);
const model = q.get('model') ?? 'demo';
const layer = q.get('layer') ?? 'conv1';
const client = new Client(q.get('daemon') ?? 'http://127.0.0.1:8080', { token: q.get('token') ?? undefined });
document.getElementById('title').textContent = `${model} · ${layer}[0, 0]`;
const status = document.getElementById('status');
const canvas = document.getElementById('plot');

client.subscribe(model, [layer], {
  views: { [layer]: { index: '0, 0', dtype: '<f2' } },
  maxHz: 10,
  onOpen: () => { status.textContent = 'live'; },
  onError: (e) => { status.textContent = e.message; },
  onValue: (meta, array) => {
    const [h, w] = array.shape.length >= 2 ? array.shape.slice(-2) : [1, array.shape[0] ?? 1];
    const values = toNumbers(array);
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) { if (v < min) min = v; if (v > max) max = v; }
    const scale = Math.max(1, Math.floor(448 / Math.max(w, h)));
    canvas.width = w;
    canvas.height = h;
    canvas.style.width = `${w * scale}px`;
    const ctx = canvas.getContext('2d');
    const image = ctx.createImageData(w, h);
    for (let i = 0; i < w * h; i++) {
      const g = max > min ? Math.round((255 * (values[i] - min)) / (max - min)) : 0;
      image.data.set([g, g, g, 255], 4 * i);
    }
    ctx.putImageData(image, 0, 0);
    status.textContent = `#${meta.seq} ${array.dtype} [${array.shape.join('×')}] ${min.toFixed(3)}…${max.toFixed(3)}`;
  },
});
