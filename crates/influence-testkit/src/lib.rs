//! Test models and the golden-case runner of burn-influence (not published).
//!
//! - [`sequential`]: a sequential model built from a JSON layer list (the format of the
//!   golden files), with every layer exposed to the probe under its name;
//! - [`captum_models`]: Captum's `BasicModel_MultiLayer` and
//!   `BasicModel_MultiLayer_MultiInput` test models, written in Burn;
//! - [`golden`]: loading the golden cases (Captum 0.9.0 reference values) and running them
//!   on a backend.

pub mod captum_models;
pub mod golden;
pub mod sequential;
