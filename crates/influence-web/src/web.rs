//! The JavaScript API (wasm-bindgen; TypeScript declarations in `pkg/influence_web.d.ts`):
//!
//! ```ts
//! const explainer = await Explainer.load("digits_cnn", recordBytes, "auto");
//! // or any ONNX model (with its external data's bytes when the export has them):
//! const onnx = await Explainer.fromOnnx(onnxBytes, "auto", dataBytes);
//! onnx.layers();                           // [{ name: "layer3", kind: "module", what, outputs }]
//! onnx.inputShape;                         // Uint32Array [3, 224, 224] (one example)
//! explainer.backend;                       // "webgpu" or "flex"
//! const logits = await explainer.predict(pixels, [1, 1, 8, 8]);
//! const attr = await explainer.attribute(pixels, [1, 1, 8, 8],
//!     { layer: "conv2", target: 3, nSteps: 50 });
//! attr.values;                             // Float32Array, row-major
//! attr.shape;                              // Uint32Array [1, 32, 8, 8]
//! ```
//!
//! Every error is a rejected promise whose `Error.message` is the typed error's message
//! ([`WebError`](crate::WebError), [`InfluenceError`](influence_core::InfluenceError)).

use wasm_bindgen::prelude::*;

use crate::api::{AttributeOptions, HostTensor, Model, OPTION_NAMES, ProgressFn};

#[wasm_bindgen(typescript_custom_section)]
const TS_OPTIONS: &str = r#"
/** The settings of `Explainer.attribute` (Captum's names, camelCase). */
export interface AttributeOptions {
  /** The layer to attribute to: one of the model's probe layers (digits_cnn: "conv1", "conv2", "fc1", ...). */
  layer: string;
  /** The layer method (default "internal_influence"). */
  attribution?: "internal_influence" | "layer_conductance" | "layer_integrated_gradients"
    | "layer_gradient_x_activation" | "layer_activation";
  /** The explained class: one for every example, or one per example. Required but for layer_activation. */
  target?: number | number[];
  /** Quadrature points (Captum's n_steps, default 50). */
  nSteps?: number;
  /** The quadrature rule (Captum's method, default "gausslegendre"). */
  method?: "gausslegendre" | "riemann_left" | "riemann_right" | "riemann_middle" | "riemann_trapezoid";
  /** Rows per pass (Captum's internal_batch_size); all steps in one pass when left out. */
  internalBatchSize?: number;
  /** Baselines: one number, or values of the input's shape (default zeros). */
  baselines?: number | Float32Array | number[];
}
"#;

/// The model on the backend in use.
enum Engine {
    Flex(Model<influence_flex::Backend>),
    #[cfg(feature = "webgpu")]
    WebGpu(Model<WebGpuBackend>),
}

/// Burn's wgpu backend with the library's fixes of Burn 0.21's cubecl kernels
/// (`influence_core::CubeclFixes`, as `influence-wgpu` natively): a 1×1 stride-2 convolution's
/// input gradient (a ResNet's downsample) is wrong without them. The digits CNN has none; an
/// ONNX ResNet has three.
#[cfg(feature = "webgpu")]
type WebGpuBackend = burn_autodiff::Autodiff<
    influence_core::Decorator<burn_wgpu::Wgpu, influence_core::CubeclFixes>,
>;
#[cfg(feature = "webgpu")]
type WebGpuDevice = burn_wgpu::WgpuDevice;
/// No WebGPU device in a build without WebGPU.
#[cfg(not(feature = "webgpu"))]
enum WebGpuDevice {}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A tensor read back from the device: `values` (row-major) of `shape`.
#[wasm_bindgen]
pub struct Tensor {
    values: Vec<f32>,
    shape: Vec<u32>,
}

#[wasm_bindgen]
impl Tensor {
    /// The values, row-major (a copy, as a `Float32Array`).
    #[wasm_bindgen(getter)]
    pub fn values(&self) -> Vec<f32> {
        self.values.clone()
    }

    /// The shape, e.g. `[batch, channels, height, width]` (a `Uint32Array`).
    #[wasm_bindgen(getter)]
    pub fn shape(&self) -> Vec<u32> {
        self.shape.clone()
    }
}

impl From<HostTensor> for Tensor {
    fn from(t: HostTensor) -> Self {
        Tensor {
            values: t.values,
            shape: t.shape.iter().map(|&d| d as u32).collect(),
        }
    }
}

/// A model compiled into the module, with its weights, on one backend.
#[wasm_bindgen]
pub struct Explainer {
    engine: Engine,
    backend: String,
}

#[wasm_bindgen]
impl Explainer {
    /// Loads the built-in architecture `model` (`"digits_cnn"`) with the weights `record`
    /// (the bytes of a Burn record, named MessagePack at full precision: a `.mpk` file from
    /// `NamedMpkFileRecorder::<FullPrecisionSettings>`), on `backend`: `"webgpu"`, `"flex"`
    /// (CPU, wasm) or `"auto"` (WebGPU when the browser offers an adapter, else flex).
    ///
    /// Rejects with the error's message: an unknown model or backend name, a record that
    /// does not fit the architecture, `"webgpu"` asked in a module or browser without it.
    pub async fn load(
        model: String,
        record: Vec<u8>,
        backend: String,
    ) -> Result<Explainer, JsError> {
        Self::start(backend, |device_webgpu| match device_webgpu {
            #[cfg(feature = "webgpu")]
            Some(device) => Model::load(&model, record.clone(), device).map(Engine::WebGpu),
            #[cfg(not(feature = "webgpu"))]
            Some(never) => match *never {},
            None => {
                Model::load(&model, record.clone(), &influence_flex::device()).map(Engine::Flex)
            }
        })
        .await
    }

    /// An ONNX model from the bytes of its `.onnx` file, and of its external data file
    /// (`model.onnx.data`, the dynamo exporter's default) when it has one. Its layers are
    /// its PyTorch module names (`layers()`); every fault of the file is a rejected promise
    /// with the typed error's message.
    #[wasm_bindgen(js_name = fromOnnx)]
    pub async fn from_onnx(
        bytes: Vec<u8>,
        backend: String,
        data: Option<Vec<u8>>,
    ) -> Result<Explainer, JsError> {
        Self::start(backend, |device_webgpu| match device_webgpu {
            #[cfg(feature = "webgpu")]
            Some(device) => Model::from_onnx(&bytes, data.as_deref(), device).map(Engine::WebGpu),
            #[cfg(not(feature = "webgpu"))]
            Some(never) => match *never {},
            None => Model::from_onnx(&bytes, data.as_deref(), &influence_flex::device())
                .map(Engine::Flex),
        })
        .await
    }

    /// The model's layers: for an ONNX model its PyTorch modules (with `all`, also every
    /// node and value), each `{ name, kind, what, outputs }` with its output shapes.
    pub fn layers(&self, all: Option<bool>) -> Result<JsValue, JsError> {
        let all = all.unwrap_or(false);
        let layers = match &self.engine {
            Engine::Flex(m) => m.layers(all, &influence_flex::device()),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(m) => m.layers(all, &burn_wgpu::WgpuDevice::DefaultDevice),
        };
        serde_wasm_bindgen::to_value(&layers).map_err(js_err)
    }

    /// The shape of one example of the model's input (without the batch).
    #[wasm_bindgen(getter, js_name = inputShape)]
    pub fn input_shape(&self) -> Result<Vec<u32>, JsError> {
        let shape = match &self.engine {
            Engine::Flex(m) => m.example_shape(),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(m) => m.example_shape(),
        }
        .map_err(js_err)?;
        Ok(shape.into_iter().map(|d| d as u32).collect())
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// The model's output for `input` (row-major values of `shape`, `[batch, 1, 8, 8]` for
    /// `digits_cnn`): `[batch, 10]` logits. Rejects on a wrong shape.
    pub async fn predict(&self, input: Vec<f32>, shape: Vec<u32>) -> Result<Tensor, JsError> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        match &self.engine {
            Engine::Flex(m) => m.predict(&input, &shape, &influence_flex::device()).await,
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(m) => {
                m.predict(&input, &shape, &burn_wgpu::WgpuDevice::DefaultDevice)
                    .await
            }
        }
        .map(Tensor::from)
        .map_err(js_err)
    }

    /// The attribution of `input` (row-major values of `shape`) at `options.layer` with the
    /// method and settings of `options` ([`AttributeOptions`]): the layer's shape, e.g.
    /// `[batch, 32, 8, 8]` for `digits_cnn`'s `conv2`. Rejects with the typed error's
    /// message: a wrong shape, an unknown layer or option, a missing or out-of-range target.
    /// `onProgress(passesDone, passes)`, when given, is called after each forward/backward
    /// pass (a chunk of steps: set `internalBatchSize` for several passes per call).
    pub async fn attribute(
        &self,
        input: Vec<f32>,
        shape: Vec<u32>,
        #[wasm_bindgen(unchecked_param_type = "AttributeOptions")] options: JsValue,
        #[wasm_bindgen(
            unchecked_param_type = "((passesDone: number, passes: number) => void) | undefined"
        )]
        on_progress: JsValue,
    ) -> Result<Tensor, JsError> {
        let options = read_options(options)?;
        let progress: Option<ProgressFn> = match on_progress.dyn_into::<js_sys::Function>() {
            Ok(f) => {
                let f = JsCallback(f);
                Some(std::sync::Arc::new(move |done: usize, total: usize| {
                    // An exception in the callback is the page's; the attribution goes on.
                    let _ = f.0.call2(
                        &JsValue::NULL,
                        &(done as u32).into(),
                        &(total as u32).into(),
                    );
                }))
            }
            Err(v) if v.is_undefined() || v.is_null() => None,
            Err(_) => return Err(JsError::new("onProgress: expected a function")),
        };
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        match &self.engine {
            Engine::Flex(m) => {
                let device = influence_flex::device();
                m.attribute(&input, &shape, &options, progress, &device)
                    .await
            }
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(m) => {
                let device = burn_wgpu::WgpuDevice::DefaultDevice;
                m.attribute(&input, &shape, &options, progress, &device)
                    .await
            }
        }
        .map(Tensor::from)
        .map_err(js_err)
    }
}

/// A JavaScript function as the attribution's progress callback.
impl Explainer {
    /// Picks the backend (`webgpu`, `flex` or `auto`) and builds the model on it.
    async fn start(
        backend: String,
        build: impl Fn(Option<&WebGpuDevice>) -> Result<Engine, crate::WebError>,
    ) -> Result<Explainer, JsError> {
        console_error_panic_hook::set_once();
        let webgpu = match backend.as_str() {
            "webgpu" => true,
            "flex" => false,
            "auto" => webgpu_adapter().await,
            other => {
                return Err(JsError::new(&format!(
                    "backend: unknown backend '{other}' (webgpu, flex or auto)"
                )));
            }
        };
        if webgpu {
            #[cfg(feature = "webgpu")]
            {
                // "auto" found an adapter already; "webgpu" has not looked.
                if backend == "webgpu" && !webgpu_adapter().await {
                    return Err(JsError::new(
                        "backend: webgpu asked, but this browser offers no WebGPU adapter",
                    ));
                }
                let device = burn_wgpu::WgpuDevice::DefaultDevice;
                burn_wgpu::init_setup_async::<burn_wgpu::graphics::WebGpu>(
                    &device,
                    Default::default(),
                )
                .await;
                let engine = build(Some(&device)).map_err(js_err)?;
                return Ok(Explainer {
                    engine,
                    backend: "webgpu".into(),
                });
            }
            #[cfg(not(feature = "webgpu"))]
            if backend == "webgpu" {
                return Err(JsError::new(
                    "backend: this module was built without WebGPU (feature webgpu)",
                ));
            }
        }
        let engine = build(None).map_err(js_err)?;
        Ok(Explainer {
            engine,
            backend: "flex".into(),
        })
    }
}

struct JsCallback(js_sys::Function);
// SAFETY: wasm32-unknown-unknown without the `atomics` target feature (this build) has one
// thread: the callback is created, called and dropped on it (the attribution runs its passes
// on the calling thread there, `threads` being 1).
unsafe impl Send for JsCallback {}
unsafe impl Sync for JsCallback {}

/// The options object as [`AttributeOptions`]: an unknown key is an error (serde-wasm-bindgen
/// reads only the keys it knows, so they are checked here), and typed-array `baselines` are
/// read as an array.
fn read_options(options: JsValue) -> Result<AttributeOptions, JsError> {
    if !options.is_object() || js_sys::Array::is_array(&options) {
        return Err(JsError::new(
            "options: expected an object such as { layer: 'conv2', target: 3 }",
        ));
    }
    let object: &js_sys::Object = options.unchecked_ref();
    for key in js_sys::Object::keys(object).iter() {
        let key = key.as_string().unwrap_or_default();
        if !OPTION_NAMES.contains(&key.as_str()) {
            return Err(JsError::new(&format!(
                "options: unknown field `{key}`, expected one of {}",
                OPTION_NAMES.map(|n| format!("`{n}`")).join(", ")
            )));
        }
    }
    let baselines = js_sys::Reflect::get(object, &"baselines".into()).unwrap_or(JsValue::UNDEFINED);
    let options = if js_sys::ArrayBuffer::is_view(&baselines) {
        let copy = js_sys::Object::assign(&js_sys::Object::new(), object);
        js_sys::Reflect::set(&copy, &"baselines".into(), &js_sys::Array::from(&baselines))
            .map_err(|_| JsError::new("options: baselines could not be read"))?;
        copy.into()
    } else {
        options
    };
    serde_wasm_bindgen::from_value(options).map_err(|e| JsError::new(&format!("options: {e}")))
}

/// Whether the browser offers a WebGPU adapter (`navigator.gpu.requestAdapter()`, on the
/// global object: a page's `window` or a worker's `self`).
async fn webgpu_adapter() -> bool {
    let get = |o: &JsValue, key: &str| js_sys::Reflect::get(o, &key.into()).ok();
    let Some(gpu) = get(&js_sys::global(), "navigator").and_then(|n| get(&n, "gpu")) else {
        return false;
    };
    if gpu.is_undefined() || gpu.is_null() {
        return false;
    }
    let request = get(&gpu, "requestAdapter")
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(&gpu).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
    let Some(promise) = request else {
        return false;
    };
    matches!(wasm_bindgen_futures::JsFuture::from(promise).await,
        Ok(adapter) if !adapter.is_null() && !adapter.is_undefined())
}
