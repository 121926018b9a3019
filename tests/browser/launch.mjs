// One way to start Debian's chromium (never a downloaded one) for the
// dashboard drivers: headless, a fresh profile, no background traffic.
// run(resultPath, body) calls body(page, result), writes result as JSON and
// exits: 0, 1 on an error (result.error), 3 when chromium cannot start
// (result.skip). Console errors and page errors are collected.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export async function run(resultPath, body) {
  const result = { console: [], pageErrors: [] };
  const save = () => writeFileSync(resultPath, JSON.stringify(result, null, 1));
  const userDataDir = mkdtempSync(join(tmpdir(), 'npystream-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  } catch (err) {
    result.skip = `chromium could not start: ${err.message.split('\n')[0]}`;
    save();
    rmSync(userDataDir, { recursive: true, force: true });
    process.exit(3);
  }
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') result.console.push(m.text()); });
    page.on('pageerror', (e) => result.pageErrors.push(e.message));
    await body(page, result);
  } catch (err) {
    result.error = err.stack || String(err);
  } finally {
    save();
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(result.error ? 1 : 0);
}
