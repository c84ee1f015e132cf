//! The JavaScript surface (wasm-bindgen): `load(preferWebgpu)`, `explain(pixels, nSteps, attribution)`,
//! `fixture_digits()`.

use std::cell::RefCell;

use influence_digits::model::DigitsCnn;
use wasm_bindgen::prelude::*;

use crate::{explain_digit, fixtures, load_model};

/// The model on the backend in use.
#[derive(Clone)]
enum Engine {
    Flex(DigitsCnn<influence_flex::Backend>),
    #[cfg(feature = "webgpu")]
    WebGpu(DigitsCnn<WebGpuBackend>),
}

#[cfg(feature = "webgpu")]
type WebGpuBackend = burn_autodiff::Autodiff<burn_wgpu::Wgpu>;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Loads the model, on WebGPU when `prefer_webgpu` (the page passes whether the browser
/// offers a WebGPU adapter) and the `webgpu` feature is built in, else on flex. Returns the
/// backend's name: `"webgpu"` or `"flex"`.
#[wasm_bindgen]
pub async fn load(prefer_webgpu: bool) -> Result<String, JsError> {
    console_error_panic_hook::set_once();
    #[cfg(feature = "webgpu")]
    if prefer_webgpu {
        let device = burn_wgpu::WgpuDevice::DefaultDevice;
        burn_wgpu::init_setup_async::<burn_wgpu::graphics::WebGpu>(&device, Default::default())
            .await;
        let model = load_model::<WebGpuBackend>(&device).map_err(js_err)?;
        ENGINE.with(|e| *e.borrow_mut() = Some(Engine::WebGpu(model)));
        return Ok("webgpu".into());
    }
    #[cfg(not(feature = "webgpu"))]
    let _ = prefer_webgpu;
    let model = load_model::<influence_flex::Backend>(&influence_flex::device()).map_err(js_err)?;
    ENGINE.with(|e| *e.borrow_mut() = Some(Engine::Flex(model)));
    Ok("flex".into())
}

/// Predicts and explains one digit (64 pixel values in [0, 1], row-major 8×8) with the
/// layer method `attribution` (Captum's name: `internal_influence`, `layer_conductance`,
/// `layer_integrated_gradients`, `layer_gradient_x_activation`, `layer_activation`) and
/// `n_steps` Gauss-Legendre points; returns the [`crate::DigitExplanation`] as JSON.
#[wasm_bindgen]
pub async fn explain(
    pixels: Vec<f32>,
    n_steps: usize,
    attribution: String,
) -> Result<String, JsError> {
    let method: crate::LayerMethod = attribution.parse().map_err(|e: String| JsError::new(&e))?;
    let engine = ENGINE
        .with(|e| e.borrow().clone())
        .ok_or_else(|| JsError::new("call load() first"))?;
    let result = match engine {
        Engine::Flex(model) => {
            let device = influence_flex::device();
            explain_digit(&model, &pixels, method, n_steps, "flex", &device).await
        }
        #[cfg(feature = "webgpu")]
        Engine::WebGpu(model) => {
            let device = burn_wgpu::WgpuDevice::DefaultDevice;
            explain_digit(&model, &pixels, method, n_steps, "webgpu", &device).await
        }
    }
    .map_err(js_err)?;
    serde_json::to_string(&result).map_err(js_err)
}

/// The fixture digits (JSON: `[{index, label, pixels}]`).
#[wasm_bindgen]
pub fn fixture_digits() -> String {
    serde_json::to_string(&fixtures()).expect("fixtures serialise")
}
