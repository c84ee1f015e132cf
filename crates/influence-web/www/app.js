// The page's logic: load the wasm module (WebGPU when the browser offers an adapter, else
// flex), let the user draw or pick a digit, and show the prediction and its influence map.
// `window.demo` is what the browser test drives.
import initWasm, { load, explain, fixture_digits } from './pkg/influence_web.js';

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

async function run(nSteps) {
  const t0 = performance.now();
  const r = JSON.parse(await explain(Array.from(pixels), nSteps, $('attribution').value));
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
  await initWasm();
  let preferWebgpu = false;
  if (navigator.gpu) {
    try { preferWebgpu = !!(await navigator.gpu.requestAdapter()); } catch (_) { preferWebgpu = false; }
  }
  const backend = await load(preferWebgpu);
  $('backend').textContent = backend;
  $('status').textContent = `model loaded (${backend}${preferWebgpu ? '' : '; no WebGPU adapter, using the CPU'}).`;

  const fixtures = JSON.parse(fixture_digits());
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

  window.demo.backend = backend;
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
