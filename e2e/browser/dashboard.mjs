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

  // Thumbnails load lazily: scroll to them, as a person would.
  await page.locator('[data-stat="top_pictures"]').scrollIntoViewIfNeeded({ timeout: 30_000 });
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

  // Time ranges. The driver produced 3,000 registrations 40 days old (late
  // for every window: all time only), 3,000 three days old (days only) and
  // 3,000 five hours old (hours and days), and the feed adds 20 a second:
  // each shorter range shows at least 1,500 fewer, whatever the feed added
  // meanwhile (it would take 75 s to add as many).
  const GAP = 1500;
  const choose = async (range, label) => {
    await page.click(`#ranges button[data-range="${range}"]`);
    await page.waitForFunction((l) => [...document.querySelectorAll('.big-range')].every((e) => e.textContent === l), label, { timeout: 10_000 });
  };
  const fewer = async (than, what) => {
    await page.waitForFunction(
      (n) => { const v = Number(document.querySelector('#total').textContent.replace(/[^0-9]/g, '') || '0'); return v > 0 && v < n; },
      than, { timeout: 30_000 });
    const n = await total();
    console.log(`ok: ${what}: ${n} registrations (fewer than ${than})`);
    return n;
  };
  const allTime = await total();
  await choose('7d', 'last 7 days');
  const week = await fewer(allTime - GAP, 'last 7 days leaves out the 40-day-old ones');
  const note = await page.textContent('[data-stat="count"] .range-note');
  if (!/day windows/.test(note)) throw new Error(`the count tile's range note is "${note}", want the days it covers`);
  console.log(`ok: the count tile says what it covers: "${note}"`);
  await choose('24h', 'last 24 hours');
  const day = await fewer(week - GAP, 'last 24 hours leaves out the 3-day-old ones');
  await choose('1h', 'last hour');
  const hour = await fewer(day - GAP, 'last hour leaves out the 5-hour-old ones');
  await page.waitForFunction(
    (n) => Number(document.querySelector('#total').textContent.replace(/[^0-9]/g, '') || '0') > n,
    hour, { timeout: 30_000 });
  console.log(`ok: the last hour's count rose from ${hour} to ${await total()} without a reload`);
  const pictures = await page.textContent('[data-stat="pictures"] .range-note');
  if (!/all time/.test(pictures)) throw new Error(`the pictures tile's note is "${pictures}", want it to say it is all time`);
  console.log('ok: a statistic kept over no windows says it shows all time');

  // The chart: count per hour (the default), then per day, then another
  // statistic's numeric field.
  const bars = () => page.$$eval('#chart svg rect', (r) => r.length);
  await page.waitForFunction(() => Number(document.querySelector('#chart').dataset.windows) >= 2, null, { timeout: 30_000 });
  console.log(`ok: the chart shows count per hour: ${await bars()} bars`);
  await page.selectOption('#chart-size', '1d');
  await page.waitForFunction(() => /per day/.test(document.querySelector('#chart svg')?.getAttribute('aria-label') || ''), null, { timeout: 30_000 });
  const daily = await bars();
  if (daily < 2) throw new Error(`the daily chart has ${daily} bars, want the day 3 days ago and today`);
  console.log(`ok: per day: ${daily} bars`);
  await page.selectOption('#chart-stat', 'average_weight');
  await page.waitForFunction(() => /of average weight per/.test(document.querySelector('#chart svg')?.getAttribute('aria-label') || ''), null, { timeout: 30_000 });
  console.log(`ok: the chart switched to ${await page.getAttribute('#chart svg', 'aria-label')}`);

  await choose('24h', 'last 24 hours');
  await page.waitForFunction((n) => Number(document.querySelector('#total').textContent.replace(/[^0-9]/g, '') || '0') > n, hour, { timeout: 30_000 });
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
