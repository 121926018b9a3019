// Drives Debian's chromium (never a downloaded one) against a running
// daemon's dashboard and writes what it saw as JSON for tests/test_dashboard.py.
// usage: node dashboard.mjs BASE_URL TOKEN SCREENSHOT.png RESULT.json
// Exit 3 (and {"skip": reason}) when chromium cannot start (launch.mjs).
import { run } from './launch.mjs';

const [base, token, screenshot, resultPath] = process.argv.slice(2);

// Strokes in pad coordinates (224x224): a 7, then a 0, then a 1.
const DIGITS = {
  7: [[[50, 45], [170, 45], [120, 120], [95, 190]]],
  0: [[[112, 30], [70, 50], [55, 112], [70, 175], [112, 195], [155, 175], [170, 112],
    [155, 50], [112, 30]]],
  1: [[[100, 50], [120, 35], [120, 195]]],
};

async function drawDigit(page, strokes) {
  const box = await page.locator('#pad').boundingBox();
  const sx = box.width / 224;
  const sy = box.height / 224;
  await page.locator('#clear').click();
  for (const stroke of strokes) {
    const [[x0, y0], ...rest] = stroke;
    await page.mouse.move(box.x + x0 * sx, box.y + y0 * sy);
    await page.mouse.down();
    let [px, py] = [x0, y0];
    for (const [x, y] of rest) {
      for (let i = 1; i <= 8; i++) {  // in small steps, as a hand would
        await page.mouse.move(box.x + (px + ((x - px) * i) / 8) * sx,
          box.y + (py + ((y - py) * i) / 8) * sy);
      }
      [px, py] = [x, y];
    }
    await page.mouse.up();
  }
}

await run(resultPath, async (page, result) => {
  result.draws = [];
  await page.goto(`${base}/?token=${encodeURIComponent(token)}`);
  result.url = page.url();  // the token must be gone from it
  await page.locator('#models li.model[data-model="demo"]').waitFor();
  result.models = await page.locator('#models li.model').evaluateAll(
    (items) => items.map((li) => li.dataset.model));
  await page.waitForFunction(() => document.getElementById('status').textContent === 'live: demo');
  let previous = null;
  for (const digit of [7, 0, 1]) {
    const before = await page.evaluate(() => window.npystream.live.conv1?.seq ?? 0);
    const inferDone = page.waitForResponse((r) => r.url().includes('/v1/models/demo/infer'));
    await drawDigit(page, DIGITS[digit]);
    const reply = await (await inferDone).json();
    const handle = reply.outputs.logits.handle;
    await page.waitForFunction((b) => (window.npystream.live.conv1?.seq ?? 0) > b, before);
    await page.locator(`#tensors tr[data-handle="${handle}"]`).waitFor();
    const pixels = await page.locator('.card[data-layer="conv1"] canvas.heatmap')
      .evaluate((c) => c.toDataURL());
    const seen = await page.evaluate(() => ({
      predicted: window.npystream.predicted,
      input: window.npystream.lastInput,
      live: window.npystream.live,
      shown: document.getElementById('predicted').textContent,
      errors: window.npystream.errors,
    }));
    result.draws.push({
      drawn: digit, handle, ...seen,
      heatmapChanged: previous !== null && pixels !== previous,
      heatmapBlank: pixels.length < 2000,
    });
    previous = pixels;
  }
  result.cards = await page.locator('.card').evaluateAll((cs) => cs.map((c) => c.dataset.layer));
  await page.screenshot({ path: screenshot, fullPage: true });
});
