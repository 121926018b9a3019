// Canvas drawings of one tensor: a heatmap grid (one tile per channel of an
// N,C,H,W or C,H,W value; a 2-D value as one image), a histogram and a bar
// chart. Colours: a viridis-like scale between the value's min and max.

const STOPS = [
  [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37],
];

export function colour(t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f));
}

export function range(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return min <= max ? { min, max } : { min: 0, max: 0 };
}

// How a shape is laid out as tiles: {tiles, h, w} over the first sample.
export function tileLayout(shape) {
  const s = shape.length === 0 ? [1] : shape;
  if (s.length === 1) return { tiles: 1, h: 1, w: s[0] };
  if (s.length === 2) return { tiles: 1, h: s[0], w: s[1] };
  const h = s[s.length - 2];
  const w = s[s.length - 1];
  // N,C,H,W: sample 0's channels; C,H,W: its channels; more dims fold into C.
  const lead = s.slice(s.length === 4 ? 1 : 0, -2).reduce((a, b) => a * b, 1);
  return { tiles: lead, h, w };
}

export function drawHeatmap(canvas, values, shape, maxWidth = 560) {
  const { tiles, h, w } = tileLayout(shape);
  const cols = Math.ceil(Math.sqrt(tiles));
  const rows = Math.ceil(tiles / cols);
  const gap = tiles > 1 ? 2 : 0;
  const scale = Math.max(1, Math.min(16, Math.floor((maxWidth - gap * cols) / (cols * w))));
  const sw = h === 1 ? Math.max(scale, 24) : scale; // a single row is drawn taller
  canvas.width = cols * (w * scale + gap);
  canvas.height = rows * (h * sw + gap);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#111';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const shown = values.subarray ? values.subarray(0, tiles * h * w) : values.slice(0, tiles * h * w);
  const { min, max } = range(shown);
  const span = max - min || 1;
  const image = ctx.createImageData(w, h);
  const tile = document.createElement('canvas');
  tile.width = w;
  tile.height = h;
  const tctx = tile.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  for (let t = 0; t < tiles; t++) {
    for (let i = 0; i < h * w; i++) {
      const [r, g, b] = colour((shown[t * h * w + i] - min) / span);
      image.data.set([r, g, b, 255], i * 4);
    }
    tctx.putImageData(image, 0, 0);
    const x = (t % cols) * (w * scale + gap);
    const y = Math.floor(t / cols) * (h * sw + gap);
    ctx.drawImage(tile, x, y, w * scale, h * sw);
  }
  return { min, max, tiles, cols, tileW: w * scale + gap, tileH: h * sw + gap };
}

// The tile under canvas pixel (x, y) of a heatmap drawn with `layout`, or -1.
export function tileAt(layout, x, y) {
  const col = Math.floor(x / layout.tileW);
  const t = Math.floor(y / layout.tileH) * layout.cols + col;
  return col >= 0 && col < layout.cols && t >= 0 && t < layout.tiles ? t : -1;
}

export function drawLegend(canvas, min, max) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const bar = 12;
  ctx.clearRect(0, 0, w, canvas.height);
  for (let x = 0; x < w; x++) {
    const [r, g, b] = colour(x / (w - 1));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x, 0, 1, bar);
  }
  ctx.fillStyle = '#ccc';
  ctx.font = '11px sans-serif';
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillText(format(min), 0, bar + 2);
  ctx.textAlign = 'right';
  ctx.fillText(format(max), w, bar + 2);
}

export function drawHistogram(canvas, values, bins = 32) {
  const ctx = canvas.getContext('2d');
  const { min, max } = range(values);
  const counts = new Array(bins).fill(0);
  const span = max - min || 1;
  for (const v of values) {
    if (Number.isFinite(v)) counts[Math.min(bins - 1, Math.floor(((v - min) / span) * bins))]++;
  }
  const top = Math.max(...counts, 1);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const bw = canvas.width / bins;
  for (let i = 0; i < bins; i++) {
    const [r, g, b] = colour((i + 0.5) / bins);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    const bh = (counts[i] / top) * (canvas.height - 14);
    ctx.fillRect(i * bw, canvas.height - 14 - bh, Math.max(1, bw - 1), bh);
  }
  ctx.fillStyle = '#ccc';
  ctx.font = '11px sans-serif';
  ctx.textBaseline = 'bottom';
  ctx.textAlign = 'left';
  ctx.fillText(format(min), 0, canvas.height);
  ctx.textAlign = 'right';
  ctx.fillText(format(max), canvas.width, canvas.height);
}

export function drawBars(canvas, values, highlight) {
  const ctx = canvas.getContext('2d');
  const n = values.length;
  const { min, max } = range(values);
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const span = hi - lo || 1;
  const plot = canvas.height - 16;
  const zero = plot * (hi / span);
  const bw = canvas.width / Math.max(1, n);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = '11px sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const y = plot * ((hi - Math.max(v, 0)) / span);
    const bh = (Math.abs(v) / span) * plot;
    ctx.fillStyle = i === highlight ? '#fde725' : '#3b528b';
    ctx.fillRect(i * bw + 2, v >= 0 ? y : zero, Math.max(1, bw - 4), Math.max(1, bh));
    ctx.fillStyle = '#ccc';
    ctx.fillText(String(i), i * bw + bw / 2, plot + 2);
  }
}

export function format(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(3);
}
