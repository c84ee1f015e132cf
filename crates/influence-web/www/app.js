// The page's logic: load the model through the module's JavaScript API in a Web Worker
// (`WorkerExplainer`, influence-client.js; WebGPU when the browser offers an adapter, else
// flex; `?backend=flex` or `?backend=webgpu` in the URL chooses), let the user draw or pick a
// digit, and show the prediction and its influence map; explain the ten dataset digits as one
// batch with a progress bar. The page stays responsive: the attribution runs in the worker.
// `window.demo` is what the browser test drives.
import { WorkerExplainer } from './influence-client.js';

const SIDE = 8, CELL = 32;
const pixels = new Float32Array(SIDE * SIDE);
const $ = (id) => document.getElementById(id);

function drawDigit(canvas, values) {
  const ctx = canvas.getContext('2d');
  for (let p = 0; p < SIDE * SIDE; p++) {
    const g = Math.round(255 * (1 - Math.min(1, Math.max(0, values[p]))));
    ctx.fillStyle = `rgb(${g},${g},${g})`;
    ctx.fillRect((p % SIDE) * CELL, Math.floor(p / SIDE) * CELL, CELL, CELL);
  }
}

// Diverging colour of v in [-1, 1]: blue, white, red (as the digits example's PNGs).
function heat(v) {
  const c = Math.max(-1, Math.min(1, v));
  const fade = Math.round(255 * (1 - Math.abs(c)));
  return c >= 0 ? [255, fade, fade] : [fade, fade, 255];
}

function drawMaps(map) {
  const scale = Math.max(1e-12, ...map.map(Math.abs));
  const h = $('heat').getContext('2d'), o = $('overlay').getContext('2d');
  for (let p = 0; p < SIDE * SIDE; p++) {
    const v = map[p] / scale, [r, g, b] = heat(v);
    const x = (p % SIDE) * CELL, y = Math.floor(p / SIDE) * CELL;
    h.fillStyle = `rgb(${r},${g},${b})`;
    h.fillRect(x, y, CELL, CELL);
    const gray = 255 * (1 - pixels[p]), a = 0.65 * Math.abs(v);
    o.fillStyle = `rgb(${gray * (1 - a) + r * a},${gray * (1 - a) + g * a},${gray * (1 - a) + b * a})`;
    o.fillRect(x, y, CELL, CELL);
  }
}

function showResult(r, ms) {
  $('predicted').textContent = r.predicted;
  $('backend').textContent = r.backend;
  $('timing').textContent = `${r.attribution}, ${r.n_steps} Gauss-Legendre steps, ${ms.toFixed(0)} ms.`;
  const lo = Math.min(...r.logits), hi = Math.max(...r.logits);
  const rows = r.logits.map((l, c) =>
    `<tr class="${c === r.predicted ? 'pred' : ''}"><td>${c}</td><td>${l.toFixed(2)}</td>` +
    `<td><span class="bar" style="width:${(6 * (l - lo) / (hi - lo + 1e-9)).toFixed(2)}em"></span></td></tr>`);
  $('logits').innerHTML = '<tr><th>class</th><th>logit</th><th></th></tr>' + rows.join('');
  drawMaps(r.map);
}

let explainer = null;
const SHAPE = [1, 1, SIDE, SIDE];

// Predicts the digit and explains the prediction at conv2: the map is the attribution
// `[1, 32, 8, 8]` summed over the channels, the channel influence summed over positions.
async function explainDigit(nSteps, attribution) {
  const logits = Array.from((await explainer.predict(pixels, SHAPE)).values);
  const predicted = logits.indexOf(Math.max(...logits));
  const t = await explainer.attribute(pixels, SHAPE, { layer: 'conv2', attribution, target: predicted, nSteps });
  const [, channels, h, w] = t.shape, values = t.values, plane = h * w;
  const map = new Array(plane).fill(0), channel_influence = new Array(channels).fill(0);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < plane; p++) {
      map[p] += values[c * plane + p];
      channel_influence[c] += values[c * plane + p];
    }
  }
  return { backend: explainer.backend, attribution, logits, predicted, n_steps: nSteps, channel_influence, map };
}

async function run(nSteps) {
  const t0 = performance.now();
  const r = await explainDigit(nSteps, $('attribution').value);
  showResult(r, performance.now() - t0);
  window.demo.last = r;
  return r;
}

function setPixels(values) {
  pixels.set(values);
  drawDigit($('draw'), pixels);
}

function paint(ev) {
  const rect = $('draw').getBoundingClientRect();
  const x = Math.floor((ev.clientX - rect.left) / CELL), y = Math.floor((ev.clientY - rect.top) / CELL);
  if (x < 0 || y < 0 || x >= SIDE || y >= SIDE) return;
  const erase = ev.shiftKey || ev.buttons === 2;
  pixels[y * SIDE + x] = erase ? 0 : Math.min(1, pixels[y * SIDE + x] + 0.5);
  drawDigit($('draw'), pixels);
}

async function main() {
  const asked = new URLSearchParams(location.search).get('backend') ?? 'auto';
  const record = new Uint8Array(await (await fetch('models/digits_cnn.mpk')).arrayBuffer());
  // Rejects with the typed error's message (e.g. webgpu asked in a browser without it).
  explainer = await WorkerExplainer.load('digits_cnn', record, asked);
  const backend = explainer.backend;
  $('backend').textContent = backend;
  const why = asked === 'flex' ? '; flex asked' : backend === 'webgpu' ? '' : '; no WebGPU adapter, using the CPU';
  $('status').textContent = `model loaded (${backend}${why}).`;

  const fixtures = await (await fetch('fixtures.json')).json();
  for (const [i, f] of fixtures.entries()) {
    const opt = document.createElement('option');
    opt.value = i; opt.textContent = `digit ${f.label} (row ${f.index})`;
    $('fixture').appendChild(opt);
  }
  $('fixture').onchange = async () => {
    if ($('fixture').value === '') return;
    setPixels(fixtures[+$('fixture').value].pixels);
    await run(+$('steps').value);
  };
  const canvas = $('draw');
  canvas.oncontextmenu = (ev) => ev.preventDefault();
  canvas.onmousedown = paint;
  canvas.onmousemove = (ev) => { if (ev.buttons) paint(ev); };
  canvas.onmouseup = () => run(+$('steps').value);
  $('clear').onclick = () => setPixels(new Float32Array(SIDE * SIDE));
  $('explain').onclick = () => run(+$('steps').value);

  // The ten dataset digits as one batch, each for its label, with progress after each digit.
  const explainBatch = async (nSteps, attribution = $('attribution').value) => {
    const input = new Float32Array(fixtures.flatMap((f) => f.pixels));
    const targets = fixtures.map((f) => f.label);
    const events = [];
    const t = await explainer.attribute(input, [fixtures.length, 1, SIDE, SIDE],
      { layer: 'conv2', attribution, target: targets, nSteps },
      { chunk: 1, onProgress: (p) => {
        events.push(p);
        $('progress').value = p.fraction;
        $('status').textContent = `explained ${p.done} of ${p.total} digits`;
      } });
    return { events, shape: t.shape, values: Array.from(t.values) };
  };
  $('batch').onclick = () => explainBatch(+$('steps').value);

  window.demo.backend = backend;
  window.demo.explainBatch = explainBatch;
  // One digit with many steps in passes of `rows` rows: progress events per pass.
  window.demo.explainLong = async (i, nSteps, rows) => {
    const events = [];
    const t = await explainer.attribute(fixtures[i].pixels, [1, 1, SIDE, SIDE],
      { layer: 'conv2', target: fixtures[i].label, nSteps, internalBatchSize: rows },
      { onProgress: (p) => events.push(p) });
    return { events, shape: t.shape };
  };
  window.demo.fixtures = fixtures;
  // The picker's method unless one is given (Captum's name, as in the method picker).
  window.demo.explainFixture = async (i, nSteps, attribution) => {
    if (attribution) $('attribution').value = attribution;
    setPixels(fixtures[i].pixels);
    return run(nSteps);
  };
  setPixels(fixtures[0].pixels);
  await run(+$('steps').value);
}

window.demo = {};
window.demo.ready = main().catch((e) => {
  $('status').textContent = `error: ${e}`;
  window.demo.error = String(e);
  throw e;
});
