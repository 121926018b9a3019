// The draw-a-digit pad and the demo model's input contract
// (models/make_demo_model.py): the ink's bounding square averaged down to an
// 8x8 image in [0, 1] (as sklearn's digits were made: ink counted in blocks),
// then upsampled to 28x28 bilinearly exactly as torch's
// interpolate(mode="bilinear", align_corners=False).

export class DrawPad {
  constructor(canvas, onStroke) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.onStroke = onStroke;
    this.clear();
    let drawing = false;
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * (canvas.width / r.width),
        (e.clientY - r.top) * (canvas.height / r.height)];
    };
    canvas.addEventListener('pointerdown', (e) => {
      drawing = true;
      canvas.setPointerCapture(e.pointerId);
      const [x, y] = at(e);
      this.ctx.beginPath();
      this.ctx.moveTo(x, y);
      this.ctx.lineTo(x + 0.1, y);
      this.ctx.stroke();
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!drawing) return;
      const [x, y] = at(e);
      this.ctx.lineTo(x, y);
      this.ctx.stroke();
    });
    const end = () => {
      if (!drawing) return;
      drawing = false;
      this.onStroke(this.modelInput());
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  clear() {
    const { ctx, canvas } = this;
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = canvas.width / 11;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
  }

  // The drawing as the model's 1x1x28x28 input, or null when it is blank.
  modelInput() {
    const { width, height } = this.canvas;
    const rgba = this.ctx.getImageData(0, 0, width, height).data;
    const ink = new Float32Array(width * height);
    let x0 = width;
    let y0 = height;
    let x1 = -1;
    let y1 = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = rgba[(y * width + x) * 4] / 255;
        ink[y * width + x] = v;
        if (v > 0.1) {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x);
          y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
      }
    }
    if (x1 < 0) return null;
    return upsample(blocks8(ink, width, height, x0, y0, x1, y1), 8, 28);
  }
}

// The ink inside the square around [x0..x1]x[y0..y1] averaged into 8x8.
export function blocks8(ink, width, height, x0, y0, x1, y1) {
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const cx = (x0 + x1 + 1) / 2;
  const cy = (y0 + y1 + 1) / 2;
  const left = cx - side / 2;
  const top = cy - side / 2;
  const out = new Float32Array(64);
  const cell = side / 8;
  for (let by = 0; by < 8; by++) {
    for (let bx = 0; bx < 8; bx++) {
      let sum = 0;
      let n = 0;
      for (let y = Math.floor(top + by * cell); y < Math.floor(top + (by + 1) * cell); y++) {
        for (let x = Math.floor(left + bx * cell); x < Math.floor(left + (bx + 1) * cell); x++) {
          n++;
          if (x >= 0 && y >= 0 && x < width && y < height) sum += ink[y * width + x];
        }
      }
      out[by * 8 + bx] = n ? sum / n : 0;
    }
  }
  return out;
}

// torch.nn.functional.interpolate(size=(m, m), mode="bilinear",
// align_corners=False) of an n x n image.
export function upsample(src, n, m) {
  const out = new Float32Array(m * m);
  const scale = n / m;
  const axis = (i) => {
    const s = Math.max(0, (i + 0.5) * scale - 0.5);
    const i0 = Math.floor(s);
    const i1 = i0 < n - 1 ? i0 + 1 : i0;
    const f = s - i0;
    return [i0, i1, 1 - f, f];
  };
  for (let y = 0; y < m; y++) {
    const [y0, y1, wy0, wy1] = axis(y);
    for (let x = 0; x < m; x++) {
      const [x0, x1, wx0, wx1] = axis(x);
      out[y * m + x] = wy0 * (wx0 * src[y0 * n + x0] + wx1 * src[y0 * n + x1]) +
        wy1 * (wx0 * src[y1 * n + x0] + wx1 * src[y1 * n + x1]);
    }
  }
  return out;
}
