// "Open your ONNX model": the page's second part. Loads a user's ONNX model (and its external
// data) into a WorkerExplainer, lists its PyTorch modules, takes an image (file picker or drop),
// resizes and normalises it as torchvision's ImageNet transforms do, and draws the influence
// map of the chosen layer (the attribution summed over channels, red raising the predicted
// class, blue lowering it) for the predicted class. `window.onnxDemo` is what the browser test
// drives.
import { WorkerExplainer } from './influence-client.js';

const $ = (id) => document.getElementById(id);
const MEAN = [0.485, 0.456, 0.406], STD = [0.229, 0.224, 0.225];
const backend = new URLSearchParams(location.search).get('backend') ?? 'auto';
let explainer = null, image = null;

const status = (text) => { $('onnx-status').textContent = text; };

async function load(bytes, data) {
  explainer?.terminate();
  explainer = null;
  $('onnx-explain').disabled = true;
  status('loading …');
  explainer = await WorkerExplainer.fromOnnx(bytes, backend, data);
  const layers = await explainer.layers();
  const select = $('onnx-layer');
  select.replaceChildren(...layers.map((l) => {
    const o = document.createElement('option');
    o.value = l.name;
    o.textContent = `${l.name} — ${l.what.split('.').pop()} ${l.outputs.join(', ')}`;
    return o;
  }));
  status(`loaded: input [${explainer.inputShape}], ${layers.length} modules, ${explainer.backend}`);
  $('onnx-explain').disabled = !image;
  return { backend: explainer.backend, inputShape: explainer.inputShape, layers };
}

// The image as the model's input [1, 3, H, W], normalised; drawn on the input canvas.
function pixels(img) {
  const [c, h, w] = explainer.inputShape;
  if (c !== 3) throw new Error(`the model takes ${c} channels; this page feeds RGB images`);
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const x = new Float32Array(3 * h * w);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) x[k * h * w + i] = (rgba[4 * i + k] / 255 - MEAN[k]) / STD[k];
  }
  const view = $('onnx-input');
  view.getContext('2d').drawImage(canvas, 0, 0, view.width, view.height);
  return x;
}

async function explain(x, shape, layer, target, nSteps) {
  const t0 = performance.now();
  const logits = await explainer.predict(x, shape);
  const classes = logits.shape[1];
  const predicted = Array.from(logits.values.slice(0, classes)).reduce((b, v, i, a) => (v > a[b] ? i : b), 0);
  const attr = await explainer.attribute(x, shape, { layer, target: target ?? predicted, nSteps });
  return { predicted, logits: Array.from(logits.values), values: Array.from(attr.values), shape: attr.shape, ms: performance.now() - t0 };
}

function draw(r) {
  const canvas = $('onnx-map'), ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (r.shape.length !== 4) {
    $('onnx-caption').textContent = `class ${r.predicted}: the layer's values [${r.shape}] have no [channels, height, width] grid`;
    return;
  }
  const [, c, h, w] = r.shape;
  const map = new Float64Array(h * w);
  for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) map[i] += r.values[k * h * w + i];
  const top = Math.max(1e-30, ...Array.from(map, Math.abs));
  const cw = canvas.width / w, ch = canvas.height / h;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = map[y * w + x] / top, a = Math.round(255 * (1 - Math.abs(v)));
    ctx.fillStyle = v >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
    ctx.fillRect(x * cw, y * ch, Math.ceil(cw), Math.ceil(ch));
  }
  $('onnx-caption').textContent = `class ${r.predicted}: influence map of ${$('onnx-layer').value} (channels summed), largest ${top.toExponential(2)}, ${r.ms.toFixed(0)} ms`;
}

const readFile = (f) => f.arrayBuffer().then((b) => new Uint8Array(b));
$('onnx-load').onclick = async () => {
  const f = $('onnx-file').files[0], d = $('onnx-data').files[0];
  if (!f) return status('pick an .onnx file first');
  try {
    await load(await readFile(f), d ? await readFile(d) : null);
  } catch (e) {
    status(`error: ${e.message}`);
  }
};
const takeImage = (file) => {
  const img = new Image();
  img.onload = () => {
    image = img;
    if (explainer) pixels(img);
    $('onnx-explain').disabled = !explainer;
  };
  img.src = URL.createObjectURL(file);
};
$('onnx-image').onchange = () => $('onnx-image').files[0] && takeImage($('onnx-image').files[0]);
$('onnx-input').ondragover = (e) => e.preventDefault();
$('onnx-input').ondrop = (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) takeImage(e.dataTransfer.files[0]); };
$('onnx-explain').onclick = async () => {
  try {
    $('onnx-caption').textContent = 'explaining …';
    const x = pixels(image);
    draw(await explain(x, [1, ...explainer.inputShape], $('onnx-layer').value, undefined, Number($('onnx-steps').value)));
  } catch (e) {
    $('onnx-caption').textContent = `error: ${e.message}`;
  }
};

window.onnxDemo = {
  // Loads a model from URLs (the test's fixtures).
  async loadUrls(modelUrl, dataUrl) {
    const get = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    return load(await get(modelUrl), dataUrl ? await get(dataUrl) : null);
  },
  explain: (values, shape, layer, target, nSteps) => explain(Float32Array.from(values), shape, layer, target, nSteps),
  error: async (values, shape, options) => {
    try { await explainer.attribute(Float32Array.from(values), shape, options); return null; } catch (e) { return e.message; }
  },
};
