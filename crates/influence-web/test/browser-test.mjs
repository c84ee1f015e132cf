// The browser test of the web demo: loads the page in headless Debian Chromium (driven by
// playwright-core; no browser is downloaded), explains every fixture digit in the page and
// compares the numbers with the native ones (`native-reference`, the same code on flex): every
// fixture with Internal Influence, then the first with each sibling method of the picker.
//
// usage: node browser-test.mjs URL NATIVE_JSON [N_STEPS]
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, nativePath, stepsArg] = process.argv.slice(2);
const nSteps = Number(stepsArg ?? 32);
const native = JSON.parse(fs.readFileSync(nativePath, 'utf8'));
const TOLERANCE = 1e-4; // relative to the largest absolute value of each compared vector

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'influence-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failures = 0;
try {
  const page = await context.newPage();
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`  [page error] ${e}`));
  await page.goto(url);
  await page.waitForFunction(() => window.demo && (window.demo.explainFixture || window.demo.error),
    null, { timeout: 180_000 });
  const error = await page.evaluate(() => window.demo.error);
  if (error) throw new Error(`the page failed to start: ${error}`);
  const backend = await page.evaluate(() => window.demo.backend);
  console.log(`browser test: page loaded, backend ${backend}`);

  const relDiff = (a, b) => {
    if (a.length !== b.length) return Infinity;
    const scale = Math.max(1e-12, ...b.map(Math.abs));
    return Math.max(...a.map((x, i) => Math.abs(x - b[i]))) / scale;
  };
  for (const ref of native) {
    const e = ref.explanation;
    const r = await page.evaluate(([i, n, a]) => window.demo.explainFixture(i, n, a),
      [ref.fixture, nSteps, e.attribution]);
    const diffs = {
      logits: relDiff(r.logits, e.logits),
      map: relDiff(r.map, e.map),
      channel_influence: relDiff(r.channel_influence, e.channel_influence),
    };
    const worst = Math.max(...Object.values(diffs));
    const ok = r.predicted === e.predicted && worst <= TOLERANCE;
    if (!ok) failures++;
    const ok2 = ok && r.attribution === e.attribution;
    if (ok && !ok2) failures++;
    console.log(`  digit ${ref.label} (row ${ref.index}), ${r.attribution}: predicted ${r.predicted} (native ${e.predicted}),` +
      ` largest relative difference ${worst.toExponential(2)} ${ok2 ? 'ok' : 'FAILED'}`);
  }
  await page.screenshot({ path: path.join(os.tmpdir(), 'influence-web-demo.png') });
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`browser test: ${native.length - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
