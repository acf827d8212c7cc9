// Drives Chromium through the picstats dashboard as a person would, against
// a running pipeline. Run by e2e/browser_test.go, which starts the pipeline,
// restarts the API when asked and checks the exit status.
//
//   node dashboard.mjs URL OUTDIR
//
// Protocol with the driver: this script prints "RESTART API" on stdout and
// waits for a line "RESTARTED" on stdin. Every step prints one "ok: ..."
// line; any failure exits non-zero with the reason.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error('usage: node dashboard.mjs URL OUTDIR');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const stdin = createInterface({ input: process.stdin });
// Lines from the driver, kept until asked for: the driver may answer before
// this script waits for the answer.
const lines = [];
const waiting = [];
stdin.on('line', (line) => (waiting.length > 0 ? waiting.shift()(line) : lines.push(line)));
const nextLine = (timeoutMs) => new Promise((resolve, reject) => {
  if (lines.length > 0) return resolve(lines.shift());
  const timer = setTimeout(() => reject(new Error(`no answer from the driver in ${timeoutMs} ms`)), timeoutMs);
  waiting.push((line) => { clearTimeout(timer); resolve(line); });
});

const browser = await chromium.launch({
  executablePath: process.env.PICSTATS_CHROMIUM || '/usr/bin/chromium', // never a downloaded browser
  args: ['--no-sandbox'], // CI runs as root
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(url);
  await page.waitForSelector('#conn[data-state="open"]', { timeout: 30_000 });
  console.log('ok: connected');

  const total = async () => Number((await page.textContent('#total')).replace(/[^0-9]/g, '') || '0');
  const first = await total();
  await page.waitForFunction(
    (n) => Number(document.querySelector('#total').textContent.replace(/[^0-9]/g, '') || '0') > n,
    first, { timeout: 30_000 });
  console.log(`ok: the count rose from ${first} to ${await total()} without a reload`);

  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('[data-stat="top_pictures"] img.thumb')];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 30_000 });
  const thumbs = await page.$$eval('[data-stat="top_pictures"] img.thumb', (imgs) => imgs.length);
  console.log(`ok: ${thumbs} top-picture thumbnails loaded`);

  const tiles = await page.$$eval('section.tile[data-stat]', (s) => s.map((e) => e.dataset.stat));
  console.log(`ok: tiles ${tiles.join(',')}`);

  const before = await total();
  console.log('RESTART API');
  await page.waitForSelector('#conn:not([data-state="open"])', { timeout: 30_000 });
  console.log('ok: the page shows the connection lost');
  if ((await nextLine(90_000)) !== 'RESTARTED') throw new Error('driver did not restart the API');
  await page.waitForSelector('#conn[data-state="open"]', { timeout: 60_000 });
  await page.waitForFunction(
    (n) => Number(document.querySelector('#total').textContent.replace(/[^0-9]/g, '') || '0') > n,
    before, { timeout: 30_000 });
  console.log(`ok: reconnected after the API restart, count ${before} -> ${await total()}`);

  await page.screenshot({ path: `${outDir}/dashboard.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${outDir}/dashboard-phone.png`, fullPage: true });
  console.log(`ok: screenshots ${outDir}/dashboard.png ${outDir}/dashboard-phone.png`);

  if (errors.length > 0) throw new Error(`errors in the page: ${errors.join('; ')}`);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  stdin.close();
}
