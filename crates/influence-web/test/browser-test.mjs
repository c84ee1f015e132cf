// The browser test of the web demo: loads the page in headless Debian Chromium (driven by
// playwright-core; no browser is downloaded), explains every fixture digit in the page and
// compares the numbers with the native ones (`native-reference`, the same code on flex): every
// fixture with Internal Influence, then the first with each sibling method of the picker.
//
// The backend: `flex` (Chromium with --disable-gpu, the page asked for flex) or `webgpu`
// (Chromium's WebGPU on SwiftShader, its CPU Vulkan: --enable-unsafe-webgpu
// --use-webgpu-adapter=swiftshader, the page asked for webgpu). The page must report the one
// asked for.
//
// Then "open your ONNX model" (onnx-app.js): fixture ONNX models (one with external data) loaded
// from their bytes, explained in the page's worker and compared with the native numbers
// (`native-reference --onnx`, the same API natively); the page's own path (file pickers, layer
// list, an image, the map); and a typed error for a misspelt layer.
//
// usage: node browser-test.mjs URL NATIVE_JSON [N_STEPS] [flex|webgpu] [ONNX_NATIVE_JSON ONNX_DIR IMAGE]
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, nativePath, stepsArg, backendArg, onnxNativePath, onnxDir, imagePath] = process.argv.slice(2);
const nSteps = Number(stepsArg ?? 32);
const wanted = backendArg ?? 'flex';
if (!['flex', 'webgpu'].includes(wanted)) throw new Error(`backend must be flex or webgpu, not ${wanted}`);
const gpuArgs = wanted === 'webgpu'
  ? ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan']
  : ['--disable-gpu'];
const native = JSON.parse(fs.readFileSync(nativePath, 'utf8'));
const TOLERANCE = 1e-4; // relative to the largest absolute value of each compared vector

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'influence-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', ...gpuArgs, '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failures = 0;
let onnxChecks = 0;
try {
  const page = await context.newPage();
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`  [page error] ${e}`));
  await page.goto(`${url}${url.includes('?') ? '&' : '?'}backend=${wanted}`);
  await page.waitForFunction(() => window.demo && (window.demo.explainFixture || window.demo.error),
    null, { timeout: 180_000 });
  const error = await page.evaluate(() => window.demo.error);
  if (error) throw new Error(`the page failed to start: ${error}`);
  const backend = await page.evaluate(() => window.demo.backend);
  console.log(`browser test: page loaded, backend ${backend}`);
  if (backend !== wanted) throw new Error(`the page ran ${backend}, the test asked for ${wanted}`);

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
  // The demo's batch in its Web Worker: one progress event per digit, each digit's
  // attribution equal to the native one where the label is the native prediction; and with
  // 256 steps (each digit long enough to block a page for several timer periods) the page's
  // main thread stays free meanwhile: a 10 ms timer keeps firing, at least half as often as
  // it would on an idle page.
  const runBatch = (n) => page.evaluate(async (steps) => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const t0 = performance.now();
    const r = await window.demo.explainBatch(steps, 'internal_influence');
    clearInterval(timer);
    return { ...r, ticks, ms: performance.now() - t0 };
  }, n);
  const batch = await runBatch(nSteps);
  const long = await runBatch(256);
  const perDigit = (b) => b.events.filter((p) => !p.pass);
  const progressOk = [batch, long].every((b) => perDigit(b).length === 10
    && perDigit(b).every((p, i) => p.done === i + 1 && p.total === 10));
  // One digit, 256 steps in passes of 32 rows: a progress event per pass, 8 in all.
  const one = await page.evaluate(() => window.demo.explainLong(0, 256, 32));
  const passes = one.events.filter((p) => p.pass);
  const passOk = passes.length === 8 && passes.every((p, i) => p.pass.done === i + 1 && p.pass.total === 8)
    && Math.abs(passes[7].fraction - 1) < 1e-9;
  if (!passOk) failures++;
  console.log(`  demo, one digit with 256 steps: ${passes.length} progress events per pass ` +
    `(${passes.map((p) => p.fraction.toFixed(3)).join(' ')}) ${passOk ? 'ok' : 'FAILED'}`);
  const responsive = long.ticks >= long.ms / 20;
  console.log(`  demo batch, 256 steps: ${long.ticks} timer ticks in ${long.ms.toFixed(0)} ms (an idle page: ${(long.ms / 10).toFixed(0)}) ${responsive ? 'ok' : 'FAILED'}`);
  let batchWorst = 0, compared = 0;
  for (const ref of native.filter((r) => r.explanation.attribution === 'internal_influence')) {
    if (ref.label !== ref.explanation.predicted) continue;
    const v = batch.values.slice(ref.fixture * 2048, (ref.fixture + 1) * 2048);
    const sums = Array.from({ length: 32 }, (_, c) => v.slice(c * 64, (c + 1) * 64).reduce((a, b) => a + b, 0));
    batchWorst = Math.max(batchWorst, relDiff(sums, ref.explanation.channel_influence));
    compared++;
  }
  const batchOk = progressOk && responsive && compared > 0 && batchWorst <= TOLERANCE
    && JSON.stringify(batch.shape) === JSON.stringify([10, 32, 8, 8]);
  if (!batchOk) failures++;
  console.log(`  demo batch in the worker: shape [${batch.shape}], ${batch.events.length} progress events,` +
    ` ${compared} digits compared,` +
    ` largest relative difference ${batchWorst.toExponential(2)} ${batchOk ? 'ok' : 'FAILED'}`);
  await page.screenshot({ path: path.join(os.tmpdir(), `influence-web-demo-${wanted}.png`) });

  // The minimal app (minimal.html): the JavaScript API as an app calls it. The attribution of
  // each fixture at conv2 has the shape [1, 32, 8, 8], and its sums over positions are the
  // native channel influence; bad calls are rejected promises with the typed error's message.
  const app = await context.newPage();
  app.on('console', (m) => console.log(`  [app] ${m.text()}`));
  await app.goto(`${url.replace(/index\.html.*$/, '')}minimal.html?backend=${wanted}`);
  await app.waitForFunction(() => window.app, null, { timeout: 180_000 });
  const failed = await app.evaluate(() => window.app.failed);
  if (failed) throw new Error(`the minimal app failed to start: ${failed}`);
  const appBackend = await app.evaluate(() => window.app.backend);
  if (appBackend !== wanted) throw new Error(`the minimal app ran ${appBackend}, the test asked for ${wanted}`);
  for (const ref of native.filter((r) => r.explanation.attribution === 'internal_influence').slice(0, 3)) {
    const e = ref.explanation;
    const r = await app.evaluate(([i, target, n]) => window.app.attribute(window.app.digits[i].pixels,
      [1, 1, 8, 8], { layer: 'conv2', target, nSteps: n }), [ref.fixture, e.predicted, nSteps]);
    const shapeOk = JSON.stringify(r.shape) === JSON.stringify([1, 32, 8, 8]);
    const sums = shapeOk ? Array.from({ length: 32 }, (_, c) =>
      r.values.slice(c * 64, (c + 1) * 64).reduce((a, b) => a + b, 0)) : [];
    const diff = shapeOk ? relDiff(sums, e.channel_influence) : Infinity;
    const ok = !r.error && shapeOk && diff <= TOLERANCE;
    if (!ok) failures++;
    console.log(`  minimal app, digit ${ref.label}: shape [${r.shape}] ${r.error ?? ''} largest relative difference ${diff.toExponential(2)} ${ok ? 'ok' : 'FAILED'}`);
  }
  // Baselines as a Float32Array and as one number: the same attribution.
  const [typed, scalar] = await app.evaluate(async () => {
    const px = window.app.digits[0].pixels, o = { layer: 'conv2', target: 0, nSteps: 8 };
    return [await window.app.attribute(px, [1, 1, 8, 8], { ...o, baselines: new Float32Array(64).fill(0.25) }),
      await window.app.attribute(px, [1, 1, 8, 8], { ...o, baselines: 0.25 })];
  });
  const baselineDiff = typed.error || scalar.error ? Infinity : relDiff(typed.values, scalar.values);
  const baselineOk = baselineDiff <= 1e-6;
  if (!baselineOk) failures++;
  console.log(`  minimal app, Float32Array baselines against a number: ${typed.error ?? scalar.error ?? ''} largest relative difference ${baselineDiff.toExponential(2)} ${baselineOk ? 'ok' : 'FAILED'}`);
  const rejected = [
    [[1, 8, 8], { layer: 'conv2', target: 0 }, 'shape: expected [batch, 1, 8, 8], got [1, 8, 8] with 64 values'],
    [[1, 1, 8, 8], { layer: 'conv9', target: 0 }, 'conv9'],
    [[1, 1, 8, 8], { layer: 'conv2', target: 0, n_steps: 5 }, 'unknown field `n_steps`'],
    [[1, 1, 8, 8], { layer: 'conv2' }, 'needs a target'],
  ];
  for (const [shape, options, expected] of rejected) {
    const r = await app.evaluate(([s, o]) => window.app.attribute(window.app.digits[0].pixels, s, o), [shape, options]);
    const ok = typeof r.error === 'string' && r.error.includes(expected);
    if (!ok) failures++;
    console.log(`  minimal app, rejected ${JSON.stringify(options)} ${JSON.stringify(shape)}: ${r.error ?? 'resolved'} ${ok ? 'ok' : 'FAILED'}`);
  }

  // "Open your ONNX model".
  if (onnxNativePath) {
    const onnxNative = JSON.parse(fs.readFileSync(onnxNativePath, 'utf8'));
    for (const ref of onnxNative) {
      const loaded = await page.evaluate(([m, d]) => window.onnxDemo.loadUrls(`test-onnx/${m}`, d && `test-onnx/${d}`),
        [ref.model, ref.data]);
      const r = await page.evaluate(([x, shape, layer, target, n]) => window.onnxDemo.explain(x, shape, layer, target, n),
        [ref.input, ref.shape, ref.layer, ref.target, ref.n_steps]);
      const diff = Math.max(relDiff(r.values, ref.values), relDiff(r.logits, ref.logits));
      const ok = loaded.backend === wanted && JSON.stringify(r.shape) === JSON.stringify(ref.attribution_shape)
        && diff <= TOLERANCE && loaded.layers.some((l) => l.name === ref.layer);
      if (!ok) failures++;
      console.log(`  onnx ${ref.model}${ref.data ? ' + external data' : ''}, ${ref.layer}: ${loaded.layers.length} modules,` +
        ` shape [${r.shape}], largest relative difference ${diff.toExponential(2)} ${ok ? 'ok' : 'FAILED'}`);
    }
    const misspelt = await page.evaluate(() => window.onnxDemo.error(new Array(3 * 32 * 32).fill(0), [1, 3, 32, 32],
      { layer: 'block.0', target: 0, nSteps: 4 }));
    const misspeltOk = typeof misspelt === 'string' && misspelt.includes('blocks.0');
    if (!misspeltOk) failures++;
    console.log(`  onnx, a misspelt layer: ${misspelt} ${misspeltOk ? 'ok' : 'FAILED'}`);
    // The page's own path: file pickers, the module list, an image, the map.
    await page.setInputFiles('#onnx-file', path.join(onnxDir, 'resnet18.dynamo.onnx'));
    await page.setInputFiles('#onnx-data', path.join(onnxDir, 'resnet18.dynamo.onnx.data'));
    await page.click('#onnx-load');
    await page.waitForFunction(() => /^(loaded|error)/.test(document.getElementById('onnx-status').textContent), null, { timeout: 120_000 });
    await page.selectOption('#onnx-layer', 'layer2');
    await page.setInputFiles('#onnx-image', imagePath);
    await page.waitForFunction(() => !document.getElementById('onnx-explain').disabled, null, { timeout: 30_000 });
    await page.click('#onnx-explain');
    await page.waitForFunction(() => /^(class|error)/.test(document.getElementById('onnx-caption').textContent), null, { timeout: 120_000 });
    const ui = await page.evaluate(() => ({
      status: document.getElementById('onnx-status').textContent,
      caption: document.getElementById('onnx-caption').textContent,
      options: document.getElementById('onnx-layer').options.length,
      painted: Array.from(document.getElementById('onnx-map').getContext('2d').getImageData(0, 0, 224, 224).data)
        .some((v, i) => i % 4 !== 3 && v !== 0),
    }));
    const uiOk = ui.status.startsWith('loaded') && ui.caption.startsWith('class') && ui.options > 10 && ui.painted;
    if (!uiOk) failures++;
    console.log(`  onnx page: "${ui.status}", ${ui.options} layers listed, "${ui.caption}" ${uiOk ? 'ok' : 'FAILED'}`);
    // A picture for people, not a check (SwiftShader can take long to render the page).
    await page.screenshot({ path: path.join(os.tmpdir(), `influence-web-onnx-${wanted}.png`), fullPage: true, timeout: 60_000 })
      .catch((e) => console.log(`  (no screenshot: ${e.message.split('\n')[0]})`));
    onnxChecks = onnxNative.length + 2;
  }
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
const checks = native.length + 1 + 1 + 3 + 1 + 4 + onnxChecks;
console.log(`browser test (${wanted}): ${checks - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
