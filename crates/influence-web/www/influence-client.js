// `WorkerExplainer`: the module's `Explainer` API, run in a Web Worker (influence-worker.js).
// Same calls and results, as promises; `attribute` takes an `onProgress(progress)` callback:
// `{ done, total, fraction }` (examples) after each chunk of examples, and with `pass: { done,
// total }` after each forward/backward pass inside a chunk (set `internalBatchSize` for
// several passes per example: progress within one long attribution).
//
//   const explainer = await WorkerExplainer.load('digits_cnn', recordBytes, 'auto');
//   const attr = await explainer.attribute(pixels, [10, 1, 8, 8],
//       { layer: 'conv2', target: labels, nSteps: 50 }, { chunk: 1, onProgress: (p) => ... });
//   attr.values;  // Float32Array, row-major      attr.shape;  // [10, 32, 8, 8]
export class WorkerExplainer {
  #worker;
  #pending = new Map();
  #next = 0;

  constructor(worker) {
    this.#worker = worker;
    this.#worker.onmessage = ({ data }) => {
      const call = this.#pending.get(data.id);
      if (!call) return;
      if (data.progress) { call.onProgress?.(data.progress); return; }
      this.#pending.delete(data.id);
      if (data.error !== undefined) call.reject(new Error(data.error));
      else call.resolve(data.result);
    };
    this.#worker.onerror = (e) => {
      for (const call of this.#pending.values()) call.reject(new Error(`worker: ${e.message}`));
      this.#pending.clear();
    };
  }

  #call(message, onProgress) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, ...message });
    });
  }

  /** Starts the worker and loads `model` with the weights `record` (Uint8Array) on `backend`. */
  static async load(model, record, backend = 'auto', workerUrl = new URL('./influence-worker.js', import.meta.url)) {
    const explainer = new WorkerExplainer(new Worker(workerUrl, { type: 'module' }));
    try {
      explainer.backend = (await explainer.#call({ op: 'load', model, record, backend })).backend;
    } catch (e) {
      explainer.terminate();
      throw e;
    }
    return explainer;
  }

  /**
   * Starts the worker and loads an ONNX model from the bytes of its `.onnx` file (Uint8Array)
   * and, when the export keeps its weights beside it, of its `.onnx.data` file.
   * `explainer.inputShape` is one example's shape (without the batch).
   */
  static async fromOnnx(bytes, backend = 'auto', data = null, workerUrl = new URL('./influence-worker.js', import.meta.url)) {
    const explainer = new WorkerExplainer(new Worker(workerUrl, { type: 'module' }));
    try {
      const r = await explainer.#call({ op: 'loadOnnx', bytes, backend, data });
      explainer.backend = r.backend;
      explainer.inputShape = r.inputShape;
    } catch (e) {
      explainer.terminate();
      throw e;
    }
    return explainer;
  }

  /** The layers: [{ name, kind, what, outputs }], PyTorch modules first (all: nodes and values too). */
  async layers(all = false) {
    return (await this.#call({ op: 'layers', all })).layers;
  }

  /** The model's output: { values: Float32Array, shape }. */
  predict(input, shape) {
    return this.#call({ op: 'predict', input: Float32Array.from(input), shape });
  }

  /** The attribution: { values: Float32Array, shape }; `chunk` examples per call (default 1). */
  attribute(input, shape, options, { chunk = 1, onProgress } = {}) {
    return this.#call({ op: 'attribute', input: Float32Array.from(input), shape, options, chunk }, onProgress);
  }

  /** Stops the worker; pending calls never settle. */
  terminate() {
    this.#worker.terminate();
  }
}
