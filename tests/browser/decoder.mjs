// The JS package's decoder suite (client/js/test/decoder_suite.js) in
// Debian's chromium: the package's modules and numpy's files are served
// from disk to a page on a stand-in origin, and the suite runs there.
// usage: node decoder.mjs FIXTURE.json RESULT.json (FIXTURE: tests/test_js.py's)
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './launch.mjs';

const [fixturePath, resultPath] = process.argv.slice(2);
const fixture = JSON.parse(readFileSync(fixturePath, 'utf8'));
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'client', 'js');
const origin = 'http://npystream.test';

await run(resultPath, async (page, result) => {
  await page.route(`${origin}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>decoder</title>' });
    const file = /^\/case\/(\d+)$/.exec(path);
    if (file) return route.fulfill({ contentType: 'application/octet-stream', body: readFileSync(fixture.cases[+file[1]].file) });
    if (/^\/(src|test)\/[a-z_]+\.js$/.test(path)) {
      return route.fulfill({ contentType: 'text/javascript', body: readFileSync(join(packageRoot, path)) });
    }
    return route.fulfill({ status: 404, body: 'not here' });
  });
  await page.goto(`${origin}/`);
  result.userAgent = await page.evaluate(() => navigator.userAgent);
  const wants = fixture.cases.map(({ dtype, shape, values, file }) => ({ dtype, shape, values, file }));
  result.checked = await page.evaluate(async (cases) => {
    const { checkDecoder } = await import('/test/decoder_suite.js');
    const files = await Promise.all(cases.map(async (want, i) => ({
      want, bytes: new Uint8Array(await (await fetch(`/case/${i}`)).arrayBuffer()) })));
    return checkDecoder(files);
  }, wants);
});
