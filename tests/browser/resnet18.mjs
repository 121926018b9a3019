// The dashboard on resnet18 in Debian's chromium: selects the model, waits
// for the layer1 tiles (the default view: sample 0 as float16), clicks tile
// CHANNEL and waits for that channel at full resolution. Something else
// (tests/test_dashboard.py) runs Infer meanwhile: resnet18 has no draw pad.
// usage: node resnet18.mjs BASE_URL TOKEN SCREENSHOT.png RESULT.json CHANNEL
import { run } from './launch.mjs';

const [base, token, screenshot, resultPath, channelText] = process.argv.slice(2);
const channel = Number(channelText);

await run(resultPath, async (page, result) => {
  await page.goto(`${base}/?token=${encodeURIComponent(token)}`);
  await page.locator('#models li.model[data-model="resnet18"]').click();
  await page.waitForFunction(() => document.getElementById('status').textContent === 'live: resnet18');
  // conv1 is 112 px: its pool (2) is asked for on its first value, and the
  // stream reopens; wait for values of both after that.
  await page.waitForFunction(() => {
    const { live } = window.npystream;
    return live.conv1?.view?.pool === 2 && live.conv1.shape[1] === 56 && live.layer1 && live.fc;
  }, null, { timeout: 120000 });
  result.extensions = await page.evaluate(() => window.npystream.extensions);
  result.live = await page.evaluate(() => window.npystream.live);
  const { grid } = result.live.layer1;
  const canvas = page.locator('.card[data-layer="layer1"] canvas.heatmap');
  const box = await canvas.boundingBox();
  const width = await canvas.evaluate((c) => c.width);
  const scale = box.width / width;
  await canvas.click({
    position: {
      x: ((channel % grid.cols) + 0.5) * grid.tileW * scale,
      y: (Math.floor(channel / grid.cols) + 0.5) * grid.tileH * scale,
    },
  });
  await page.waitForFunction(() => window.npystream.focus?.seq > 0, null, { timeout: 60000 });
  result.focus = await page.evaluate(() => window.npystream.focus);
  result.focusTitle = await page.locator('#focus .card h3').textContent();
  result.cards = await page.locator('#live .card').evaluateAll((cs) => cs.map((c) => c.dataset.layer));
  await page.screenshot({ path: screenshot, fullPage: true });
});
