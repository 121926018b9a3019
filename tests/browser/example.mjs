// examples/js-dashboard in Debian's chromium: opens PAGE_URL (served by a
// static server, the daemon elsewhere) and waits for a drawn value.
// usage: node example.mjs PAGE_URL RESULT.json
import { run } from './launch.mjs';

const [url, resultPath] = process.argv.slice(2);
await run(resultPath, async (page, result) => {
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('#'),
    null, { timeout: 60000 });
  result.status = await page.locator('#status').textContent();
  result.title = await page.locator('#title').textContent();
  result.canvas = await page.locator('#plot').evaluate((c) => [c.width, c.height]);
});
