// The module in a Web Worker: `Explainer` runs off the main thread, so a page stays
// responsive during long attributions. Driven by `WorkerExplainer` (influence-client.js) with
// messages { id, op: 'load' | 'loadOnnx' | 'layers' | 'predict' | 'attribute', ... }; answers { id, result },
// { id, error } (the typed error's message) and, during `attribute`, { id, progress }:
// { done, total } examples after each chunk of examples, and { done, total, pass: { done,
// total }, fraction } after each forward/backward pass inside a chunk (several per call with
// `internalBatchSize`: progress for one example with many steps).
import init, { Explainer } from './pkg/influence_web.js';

let explainer = null;

// `attribute` over a batch, `chunk` examples per call, a progress message after each call.
async function attribute({ id, input, shape, options, chunk }) {
  const batch = shape[0], per = batch ? input.length / batch : 0, step = Math.max(1, chunk ?? 1);
  const perExample = (v) => Array.isArray(v) || ArrayBuffer.isView(v);
  const parts = [];
  let layerShape = null;
  for (let start = 0; start < batch; start += step) {
    const end = Math.min(batch, start + step);
    const part = { ...options };
    if (Array.isArray(options.target)) part.target = options.target.slice(start, end);
    if (perExample(options.baselines)) part.baselines = options.baselines.slice(start * per, end * per);
    const onPass = (passesDone, passes) => self.postMessage({ id, progress: {
      done: start, total: batch, pass: { done: passesDone, total: passes },
      fraction: (start + (end - start) * passesDone / passes) / batch } });
    const t = await explainer.attribute(input.subarray(start * per, end * per), [end - start, ...shape.slice(1)], part, onPass);
    parts.push(t.values);
    layerShape = Array.from(t.shape);
    self.postMessage({ id, progress: { done: end, total: batch, fraction: end / batch } });
  }
  const values = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { values.set(p, at); at += p.length; }
  if (layerShape) layerShape[0] = batch;
  return { values, shape: layerShape ?? [0] };
}

self.onmessage = async ({ data: msg }) => {
  try {
    let result;
    if (msg.op === 'load') {
      await init();
      explainer = await Explainer.load(msg.model, msg.record, msg.backend);
      result = { backend: explainer.backend };
    } else if (msg.op === 'loadOnnx') {
      await init();
      explainer = await Explainer.fromOnnx(msg.bytes, msg.backend, msg.data ?? undefined);
      result = { backend: explainer.backend, inputShape: Array.from(explainer.inputShape) };
    } else if (!explainer) {
      throw new Error('load the model first');
    } else if (msg.op === 'predict') {
      const t = await explainer.predict(msg.input, msg.shape);
      result = { values: t.values, shape: Array.from(t.shape) };
    } else if (msg.op === 'attribute') {
      result = await attribute(msg);
    } else if (msg.op === 'layers') {
      result = { layers: explainer.layers(msg.all ?? false) };
    } else {
      throw new Error(`unknown operation ${msg.op}`);
    }
    self.postMessage({ id: msg.id, result }, result.values ? [result.values.buffer] : []);
  } catch (e) {
    self.postMessage({ id: msg.id, error: e instanceof Error ? e.message : String(e) });
  }
};
