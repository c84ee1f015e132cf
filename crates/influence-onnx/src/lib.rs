//! # influence-onnx
//!
//! Any ONNX model (PyTorch's `torch.onnx.export`, timm, Hugging Face) explained as it is, by
//! its PyTorch module names, with every attribution method of
//! [`influence_core`](https://docs.rs/influence-core) (Internal Influence and Captum's
//! sibling layer methods) on every Burn backend.
//!
//! [`OnnxModel`] reads an `.onnx` file (with its external data), evaluates the graph with Burn
//! tensor operations (so the attribution's autodiff, inference mode and kernels are those of a
//! hand-written Burn model), and implements `LayerProbe` with the model's layers named as
//! Captum names them: `layer3`, `layer3.0.conv1`, `features.3`,
//! `encoder.layer.2.output`, from the exporter's metadata (dynamo) or node names
//! (TorchScript), and every node and value name of the graph.
//!
//! ```ignore
//! use burn_influence::{AnyTensor, InternalInfluence};
//! use influence_onnx::OnnxModel;
//!
//! let model = OnnxModel::<Backend>::from_file("resnet18.onnx", &device)?;
//! let attribution = InternalInfluence::new(&model, "layer3")?
//!     .attribute(AnyTensor::from(images))          // [batch, 3, 224, 224]
//!     .target(207)
//!     .run()?;
//! ```
//!
//! The pieces:
//! - `proto.rs`: the file's protobuf messages (onnx-ir's generated types) decoded, external
//!   data read, every tensor checked;
//! - `ops.rs`: the operator table, attributes read per operator set;
//! - `graph.rs`: values numbered, weights split from host constants;
//! - `modules.rs`: PyTorch module paths and the layers' sides;
//! - `eval.rs`: each operator on Burn's backend operations or on the host;
//! - `host.rs`: host tensors (shapes, indices, masks);
//! - `model.rs`: [`OnnxModel`] and [`OnnxArgs`].
//!
//! The guide, with the operator table and the exporters' differences, is `docs/onnx.md`.

#![warn(missing_docs)]

mod error;
mod eval;
mod graph;
pub mod host;
mod model;
mod modules;
mod ops;
mod proto;

pub use error::OnnxError;
pub use model::{ArgValue, OnnxArgs, OnnxModel, Weight};
pub use modules::{LayerInfo, LayerKind, Naming};
pub use ops::SUPPORTED as SUPPORTED_OPS;
pub use proto::{Dim, MAX_ELEMENTS};
