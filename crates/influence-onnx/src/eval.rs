//! Evaluating one node: each operator with Burn's backend operations on device values (float
//! activations, boolean masks) and with [`host`](crate::host) operations on host values
//! (shapes, indices, constants).
//!
//! Every device operation goes through the backend `B`, so on an attribution's backend
//! (`Eval<Autodiff<_>>`) it is recorded for the backward pass, runs in inference mode, and uses
//! the same kernels (flex's convolutions, the decorator's flat `linear`) as a hand-written
//! Burn model. Shapes are checked here before a backend sees them: a backend given shapes that
//! do not fit may panic or, on a GPU, compute garbage.

use burn::tensor::ops::{BoolTensor, FloatTensor};
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use burn_backend::ops::ConvOptions;
use burn_backend::{Scalar, Shape, Slice, TensorMetadata, get_device_settings};
use ndarray::{ArrayD, IxDyn};

use crate::graph::Node;
use crate::host::{
    self, HostTensor, Kind, broadcast_shape, map_host, reshape_target, shape_ops, slice_len,
    slice_range, try_map_host, where3, zip2,
};
use crate::ops::{Binary, Op, Reduce, Unary, Window};
use crate::proto::{MAX_COMPUTED_ELEMENTS as MAX_ELEMENTS, computed_count as checked_count};

/// A value while the graph runs.
#[derive(Debug, Clone)]
pub enum Value<B: Backend> {
    /// A float tensor on the device (an activation, a weight).
    Float(FloatTensor<B>),
    /// A boolean tensor on the device (a comparison of activations).
    Bool(BoolTensor<B>),
    /// A tensor on the host (a shape, indices, a mask, a small constant).
    Host(HostTensor),
}

impl<B: Backend> Value<B> {
    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Value::Float(t) => t.shape().to_vec(),
            Value::Bool(t) => t.shape().to_vec(),
            Value::Host(h) => h.shape().to_vec(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Float(_) => "float (device)",
            Value::Bool(_) => "bool (device)",
            Value::Host(h) => h.kind(),
        }
    }
}

/// What a node's evaluation needs besides its inputs.
pub struct Ctx<'a, B: Backend> {
    /// Where device tensors are made.
    pub device: &'a B::Device,
    /// Rows of this forward (dim 0 of the explained input).
    pub rows: usize,
    /// The batch the graph was exported with, when its input's dim 0 is fixed: constant shapes
    /// that start with it are rebound to `rows` (see docs/onnx.md, "Batch").
    pub export_batch: Option<usize>,
}

/// An evaluation fault, worded for [`OnnxError::Eval`](crate::OnnxError::Eval).
pub type EvalResult<T> = Result<T, String>;

fn fshape<B: Backend>(t: &FloatTensor<B>) -> Vec<usize> {
    t.shape().to_vec()
}

fn bool_dtype<B: Backend>(device: &B::Device) -> burn_backend::BoolDType {
    get_device_settings::<B>(device).bool_dtype
}

fn float_dtype<B: Backend>(device: &B::Device) -> burn_backend::FloatDType {
    get_device_settings::<B>(device).float_dtype
}

/// A device float tensor of `shape` holding `values` (row-major). Rank 0 becomes `[1]`.
///
/// Made at its rank (not reshaped after): on an autodiff backend a reshape would be one more
/// operation for its graph cleaner to scan, per upload and forward.
pub fn upload_f32<B: Backend>(
    values: Vec<f32>,
    shape: &[usize],
    device: &B::Device,
) -> FloatTensor<B> {
    let shape = if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    };
    if shape.len() > 6 {
        let n = values.len();
        let t = Tensor::<B, 1>::from_data(TensorData::new(values, [n]), device)
            .into_primitive()
            .tensor();
        return B::float_reshape(t, Shape::from(shape));
    }
    let data = TensorData::new(values, shape.clone());
    macro_rules! at {
        ($d:literal) => {
            Tensor::<B, $d>::from_data(data, device)
                .into_primitive()
                .tensor()
        };
    }
    match shape.len() {
        1 => at!(1),
        2 => at!(2),
        3 => at!(3),
        4 => at!(4),
        5 => at!(5),
        _ => at!(6),
    }
}

fn upload_bool<B: Backend>(a: &ArrayD<bool>, device: &B::Device) -> BoolTensor<B> {
    let values: Vec<bool> = a.iter().copied().collect();
    let n = values.len();
    let t = Tensor::<B, 1, Bool>::from_data(TensorData::new(values, [n]), device).into_primitive();
    let shape = if a.ndim() == 0 {
        vec![1]
    } else {
        a.shape().to_vec()
    };
    B::bool_reshape(t, Shape::from(shape))
}

fn upload_indices<B: Backend>(
    idx: Vec<i64>,
    device: &B::Device,
) -> burn::tensor::ops::IntTensor<B> {
    let n = idx.len();
    Tensor::<B, 1, burn::tensor::Int>::from_data(TensorData::new(idx, [n]), device).into_primitive()
}

/// The value as a device float tensor (host values are uploaded; booleans become 0/1).
fn to_float<B: Backend>(v: Value<B>, device: &B::Device) -> FloatTensor<B> {
    match v {
        Value::Float(t) => t,
        Value::Bool(t) => B::bool_into_float(t, float_dtype::<B>(device)),
        Value::Host(h) => {
            let shape = h.shape().to_vec();
            upload_f32::<B>(h.to_f32(), &shape, device)
        }
    }
}

fn to_bool<B: Backend>(v: Value<B>, device: &B::Device) -> EvalResult<BoolTensor<B>> {
    match v {
        Value::Bool(t) => Ok(t),
        Value::Host(h) => Ok(upload_bool::<B>(
            &match h.cast(Kind::Bool) {
                HostTensor::Bool(a) => a,
                _ => unreachable!("cast to bool gives bool"),
            },
            device,
        )),
        Value::Float(t) => Ok(B::float_not_equal_elem(
            t,
            Scalar::Float(0.0),
            bool_dtype::<B>(device),
        )),
    }
}

fn host<B: Backend>(v: &Value<B>, what: &str) -> EvalResult<HostTensor> {
    match v {
        Value::Host(h) => Ok(h.clone()),
        other => Err(format!(
            "its {what} must be known without reading the device (a constant or a shape), but it is a {} tensor computed from the input",
            other.kind()
        )),
    }
}

fn host_ints<B: Backend>(v: &Value<B>, what: &str) -> EvalResult<Vec<i64>> {
    let h = host(v, what)?;
    if let HostTensor::F32(_) = h {
        return Err(format!("its {what} must be integers"));
    }
    Ok(h.to_i64())
}

fn host_scalar<B: Backend>(v: &Value<B>, what: &str) -> EvalResult<f64> {
    host(v, what)?
        .scalar_f64()
        .ok_or_else(|| format!("its {what} must be a single value"))
}

fn usize_dims(v: &[i64], what: &str) -> EvalResult<Vec<usize>> {
    if v.len() > MAX_RANK {
        return Err(format!("{what} of rank {} (at most {MAX_RANK})", v.len()));
    }
    let dims = v
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{what} {v:?} has a negative dim")))
        .collect::<Result<Vec<_>, _>>()?;
    checked_count(&dims).ok_or_else(|| format!("{what} {v:?} is too large"))?;
    Ok(dims)
}

/// Reshapes to `rank` dims by adding leading 1s.
fn lift<B: Backend>(t: FloatTensor<B>, rank: usize) -> FloatTensor<B> {
    let s = fshape::<B>(&t);
    if s.len() >= rank {
        return t;
    }
    let mut dims = vec![1; rank - s.len()];
    dims.extend(s);
    B::float_reshape(t, Shape::from(dims))
}

fn lift_bool<B: Backend>(t: BoolTensor<B>, rank: usize) -> BoolTensor<B> {
    let s = t.shape().to_vec();
    if s.len() >= rank {
        return t;
    }
    let mut dims = vec![1; rank - s.len()];
    dims.extend(s);
    B::bool_reshape(t, Shape::from(dims))
}

/// Two device tensors at one rank, their shapes checked to broadcast.
fn align<B: Backend>(
    a: FloatTensor<B>,
    b: FloatTensor<B>,
) -> EvalResult<(FloatTensor<B>, FloatTensor<B>, Vec<usize>)> {
    let out = broadcast_shape(&fshape::<B>(&a), &fshape::<B>(&b))?;
    let r = out.len();
    Ok((lift::<B>(a, r), lift::<B>(b, r), out))
}

fn expand_to<B: Backend>(t: FloatTensor<B>, shape: &[usize]) -> FloatTensor<B> {
    let t = lift::<B>(t, shape.len());
    if fshape::<B>(&t) == shape {
        t
    } else {
        B::float_expand(t, Shape::from(shape.to_vec()))
    }
}

/// Evaluates one node.
pub fn eval<B: Backend>(
    node: &Node,
    mut inputs: Vec<Option<Value<B>>>,
    ctx: &Ctx<'_, B>,
) -> EvalResult<Vec<Value<B>>> {
    let dev = ctx.device;
    let n_in = inputs.len();
    let mut take = |i: usize| -> EvalResult<Value<B>> {
        inputs
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let one = |v: Value<B>| Ok(vec![v]);
    match &node.op {
        Op::Constant { value } => one(Value::Host(value.clone())),
        Op::Unary(u) => one(unary::<B>(*u, take(0)?, dev)?),
        Op::LeakyRelu { alpha } => {
            let x = float_in::<B>(take(0)?, dev);
            one(Value::Float(B::leaky_relu(x, Scalar::Float(*alpha as f64))))
        }
        Op::Elu { alpha } => {
            let x = float_in::<B>(take(0)?, dev);
            let neg = B::float_mul_scalar(
                B::float_sub_scalar(B::float_exp(x.clone()), Scalar::Float(1.0)),
                Scalar::Float(*alpha as f64),
            );
            let mask = B::float_greater_elem(x.clone(), Scalar::Float(0.0), bool_dtype::<B>(dev));
            one(Value::Float(B::float_mask_where(neg, mask, x)))
        }
        Op::HardSigmoid { alpha, beta } => {
            let x = float_in::<B>(take(0)?, dev);
            one(Value::Float(B::hard_sigmoid(
                x,
                Scalar::Float(*alpha as f64),
                Scalar::Float(*beta as f64),
            )))
        }
        Op::Gelu { tanh } => {
            let x = float_in::<B>(take(0)?, dev);
            one(Value::Float(if *tanh {
                gelu_tanh::<B>(x)
            } else {
                gelu_exact::<B>(x, dev)
            }))
        }
        Op::Clip { min, max } => {
            let x = take(0)?;
            let lo = match min {
                Some(m) => Some(*m as f64),
                None if n_in > 1 => inputs[1]
                    .as_ref()
                    .map(|v| host_scalar::<B>(v, "min"))
                    .transpose()?,
                None => None,
            };
            let hi = match max {
                Some(m) => Some(*m as f64),
                None if n_in > 2 => inputs[2]
                    .as_ref()
                    .map(|v| host_scalar::<B>(v, "max"))
                    .transpose()?,
                None => None,
            };
            match x {
                Value::Host(h) => match h.cast(Kind::Float) {
                    HostTensor::F32(a) => one(Value::Host(HostTensor::F32(a.mapv(|v| {
                        let v = lo.map_or(v, |l| v.max(l as f32));
                        hi.map_or(v, |h| v.min(h as f32))
                    })))),
                    _ => unreachable!("cast to float gives float"),
                },
                other => {
                    let mut t = float_in::<B>(other, dev);
                    if let Some(l) = lo {
                        t = B::float_clamp_min(t, Scalar::Float(l));
                    }
                    if let Some(h) = hi {
                        t = B::float_clamp_max(t, Scalar::Float(h));
                    }
                    one(Value::Float(t))
                }
            }
        }
        Op::Binary(op) => {
            let (a, b) = (take(0)?, take(1)?);
            one(binary::<B>(*op, a, b, dev)?)
        }
        Op::Where => {
            let (c, x, y) = (take(0)?, take(1)?, take(2)?);
            one(where_::<B>(c, x, y, dev)?)
        }
        Op::Cast { to } => one(cast::<B>(take(0)?, *to)?),
        Op::CastLike => {
            let x = take(0)?;
            let like = take(1)?;
            let to = match &like {
                Value::Float(_) => Kind::Float,
                Value::Bool(_) => Kind::Bool,
                Value::Host(HostTensor::F32(_)) => Kind::Float,
                Value::Host(HostTensor::I64(_)) => Kind::Int,
                Value::Host(HostTensor::Bool(_)) => Kind::Bool,
            };
            one(cast::<B>(x, to)?)
        }
        Op::MatMul => {
            let (a, b) = (take(0)?, take(1)?);
            one(Value::Float(matmul::<B>(
                float_in::<B>(a, dev),
                float_in::<B>(b, dev),
            )?))
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let mut a = float_in::<B>(take(0)?, dev);
            let mut b = float_in::<B>(take(1)?, dev);
            let c = if n_in > 2 { inputs[2].take() } else { None };
            if fshape::<B>(&a).len() != 2 || fshape::<B>(&b).len() != 2 {
                return Err(format!(
                    "Gemm of {:?} and {:?} (both must be matrices)",
                    fshape::<B>(&a),
                    fshape::<B>(&b)
                ));
            }
            if *trans_a {
                a = B::float_transpose(a);
            }
            if *trans_b {
                b = B::float_transpose(b);
            }
            let mut y = matmul::<B>(a, b)?;
            if *alpha != 1.0 {
                y = B::float_mul_scalar(y, Scalar::Float(*alpha as f64));
            }
            if let Some(c) = c {
                let mut c = float_in::<B>(c, dev);
                if *beta != 1.0 {
                    c = B::float_mul_scalar(c, Scalar::Float(*beta as f64));
                }
                let (y2, c2, _) = align::<B>(y, c)?;
                y = B::float_add(y2, c2);
            }
            one(Value::Float(y))
        }
        Op::Conv { window, group } => {
            let x = float_in::<B>(take(0)?, dev);
            let w = float_in::<B>(take(1)?, dev);
            let bias = if n_in > 2 {
                inputs[2].take().map(|b| float_in::<B>(b, dev))
            } else {
                None
            };
            one(Value::Float(conv::<B>(x, w, bias, window, *group, dev)?))
        }
        Op::MaxPool { window } => one(Value::Float(pool::<B>(
            float_in::<B>(take(0)?, dev),
            window,
            None,
            dev,
        )?)),
        Op::AveragePool {
            window,
            count_include_pad,
        } => one(Value::Float(pool::<B>(
            float_in::<B>(take(0)?, dev),
            window,
            Some(*count_include_pad),
            dev,
        )?)),
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            let mut x = float_in::<B>(take(0)?, dev);
            let rank = fshape::<B>(&x).len();
            if rank < 3 {
                return Err(format!("global pooling of rank {rank}"));
            }
            for d in 2..rank {
                x = if matches!(node.op, Op::GlobalAveragePool) {
                    B::float_mean_dim(x, d)
                } else {
                    B::float_max_dim(x, d)
                };
            }
            one(Value::Float(x))
        }
        Op::BatchNorm { epsilon } => {
            let x = float_in::<B>(take(0)?, dev);
            let (scale, bias, mean, var) = (take(1)?, take(2)?, take(3)?, take(4)?);
            one(Value::Float(batch_norm::<B>(
                x, scale, bias, mean, var, *epsilon, dev,
            )?))
        }
        Op::LayerNorm { axis, epsilon } => {
            let x = float_in::<B>(take(0)?, dev);
            let scale = float_in::<B>(take(1)?, dev);
            let bias = if n_in > 2 {
                inputs[2].take().map(|b| float_in::<B>(b, dev))
            } else {
                None
            };
            one(Value::Float(layer_norm::<B>(
                x, scale, bias, *axis, *epsilon,
            )?))
        }
        Op::Softmax { axis, log, legacy } => {
            let x = float_in::<B>(take(0)?, dev);
            let shape = fshape::<B>(&x);
            let ax = host::axis(*axis, shape.len())?;
            let y = if *legacy && ax + 1 != shape.len() {
                let rows: usize = shape[..ax].iter().product();
                let cols: usize = shape[ax..].iter().product();
                let flat = B::float_reshape(x, Shape::from(vec![rows, cols]));
                let y = if *log {
                    B::log_softmax(flat, 1)
                } else {
                    B::softmax(flat, 1)
                };
                B::float_reshape(y, Shape::from(shape))
            } else if *log {
                B::log_softmax(x, ax)
            } else {
                B::softmax(x, ax)
            };
            one(Value::Float(y))
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
            noop_with_empty_axes,
        } => {
            let x = take(0)?;
            let axes = match axes {
                Some(a) => a.clone(),
                None if n_in > 1 && inputs[1].is_some() => {
                    host_ints::<B>(inputs[1].as_ref().expect("checked"), "axes")?
                }
                None => Vec::new(),
            };
            one(reduce::<B>(
                x,
                *kind,
                &axes,
                *keepdims,
                *noop_with_empty_axes,
                dev,
            )?)
        }
        Op::Reshape { allowzero } => {
            let x = take(0)?;
            let mut target = host_ints::<B>(&take(1)?, "target shape")?;
            let shape = x.shape();
            rebind(&mut target, &shape, ctx);
            let out = reshape_target(&shape, &target, *allowzero)?;
            one(reshape::<B>(x, &out)?)
        }
        Op::Flatten { axis } => {
            let x = take(0)?;
            let shape = x.shape();
            let ax = if *axis == shape.len() as i64 {
                shape.len()
            } else {
                host::axis(*axis, shape.len())?
            };
            let out = vec![shape[..ax].iter().product(), shape[ax..].iter().product()];
            one(reshape::<B>(x, &out)?)
        }
        Op::Transpose { perm } => {
            let x = take(0)?;
            let rank = x.shape().len();
            let perm = perm.clone().unwrap_or_else(|| (0..rank).rev().collect());
            one(match x {
                Value::Float(t) => {
                    check_perm(&perm, rank)?;
                    Value::Float(B::float_permute(t, &perm))
                }
                Value::Bool(t) => {
                    check_perm(&perm, rank)?;
                    Value::Bool(B::bool_permute(t, &perm))
                }
                Value::Host(h) => {
                    Value::Host(try_map_host!(h, a => shape_ops::transpose(a, &perm)))
                }
            })
        }
        Op::Squeeze { axes } => {
            let x = take(0)?;
            let shape = x.shape();
            let axes = match axes {
                Some(a) => Some(a.clone()),
                None if n_in > 1 && inputs[1].is_some() => Some(host_ints::<B>(
                    inputs[1].as_ref().expect("checked"),
                    "axes",
                )?),
                None => None,
            };
            let drop: Vec<usize> = match axes {
                Some(a) => {
                    let mut v = a
                        .iter()
                        .map(|&i| host::axis(i, shape.len()))
                        .collect::<Result<Vec<_>, _>>()?;
                    v.sort_unstable();
                    v.dedup();
                    if let Some(&bad) = v.iter().find(|&&i| shape[i] != 1) {
                        return Err(format!("cannot squeeze axis {bad} of {shape:?}"));
                    }
                    v
                }
                None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
            };
            let out: Vec<usize> = (0..shape.len())
                .filter(|i| !drop.contains(i))
                .map(|i| shape[i])
                .collect();
            one(reshape::<B>(x, &out)?)
        }
        Op::Unsqueeze { axes } => {
            let x = take(0)?;
            let shape = x.shape();
            let axes = match axes {
                Some(a) => a.clone(),
                None => host_ints::<B>(&take(1)?, "axes")?,
            };
            let rank = shape.len() + axes.len();
            if rank > MAX_RANK {
                return Err(format!("a shape of rank {rank} (at most {MAX_RANK})"));
            }
            let mut pos = axes
                .iter()
                .map(|&a| host::axis(a, rank))
                .collect::<Result<Vec<_>, _>>()?;
            pos.sort_unstable();
            if pos.windows(2).any(|w| w[0] == w[1]) {
                return Err(format!("axes {axes:?} repeat"));
            }
            let mut out = Vec::with_capacity(rank);
            let mut it = shape.iter();
            for i in 0..rank {
                if pos.contains(&i) {
                    out.push(1);
                } else {
                    out.push(*it.next().ok_or("axes out of range")?);
                }
            }
            one(reshape::<B>(x, &out)?)
        }
        Op::Concat { axis } => {
            let parts: Vec<Value<B>> = (0..n_in).map(&mut take).collect::<Result<_, _>>()?;
            one(concat::<B>(parts, *axis, ctx)?)
        }
        Op::Split {
            axis,
            split,
            num_outputs,
        } => {
            let x = take(0)?;
            let shape = x.shape();
            let ax = host::axis(*axis, shape.len())?;
            let n_out = node.outputs.len();
            let sizes: Vec<usize> = match split {
                Some(s) => s.clone(),
                None if n_in > 1 && inputs[1].is_some() => usize_dims(
                    &host_ints::<B>(inputs[1].as_ref().expect("checked"), "split")?,
                    "split",
                )?,
                None => {
                    if num_outputs.is_some_and(|n| n != n_out) {
                        return Err(format!("num_outputs {num_outputs:?} but {n_out} outputs"));
                    }
                    let n = n_out.max(1);
                    let each = shape[ax].div_ceil(n);
                    (0..n)
                        .map(|i| each.min(shape[ax].saturating_sub(i * each)))
                        .collect()
                }
            };
            if sizes.iter().sum::<usize>() != shape[ax] || sizes.len() != n_out {
                return Err(format!(
                    "cannot split {shape:?} along axis {ax} into {sizes:?} ({n_out} outputs)"
                ));
            }
            let mut outs = Vec::with_capacity(n_out);
            let mut start = 0;
            for s in sizes {
                let mut ranges = vec![None; shape.len()];
                ranges[ax] = Some((start as i64, (start + s) as i64, 1));
                outs.push(slice::<B>(x.clone(), &ranges)?);
                start += s;
            }
            Ok(outs)
        }
        Op::Slice { starts, ends, axes } => {
            let x = take(0)?;
            let shape = x.shape();
            let opt = |i: usize, what: &str| -> EvalResult<Option<Vec<i64>>> {
                match inputs.get(i).and_then(Option::as_ref) {
                    Some(v) => host_ints::<B>(v, what).map(Some),
                    None => Ok(None),
                }
            };
            let starts = match starts {
                Some(s) => s.clone(),
                None => opt(1, "starts")?.ok_or("Slice without starts")?,
            };
            let ends = match ends {
                Some(e) => e.clone(),
                None => opt(2, "ends")?.ok_or("Slice without ends")?,
            };
            let axes = match axes {
                Some(a) => Some(a.clone()),
                None => opt(3, "axes")?,
            };
            let steps = opt(4, "steps")?;
            let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return Err("starts, ends, axes and steps differ in length".into());
            }
            let mut ranges = vec![None; shape.len()];
            for i in 0..starts.len() {
                let ax = host::axis(axes[i], shape.len())?;
                if ranges[ax].is_some() {
                    return Err(format!("axis {ax} is sliced twice"));
                }
                ranges[ax] = Some(slice_range(shape[ax], starts[i], ends[i], steps[i])?);
            }
            one(slice::<B>(x, &ranges)?)
        }
        Op::Gather { axis } => {
            let (x, idx) = (take(0)?, take(1)?);
            one(gather::<B>(x, idx, *axis, dev)?)
        }
        Op::GatherElements { axis } => {
            let (x, idx) = (take(0)?, take(1)?);
            let idx = match host::<B>(&idx, "indices")? {
                HostTensor::I64(a) => a,
                _ => return Err("GatherElements indices must be integers".into()),
            };
            let ax = host::axis(*axis, x.shape().len())?;
            one(match x {
                Value::Host(h) => {
                    Value::Host(try_map_host!(h, a => shape_ops::gather_elements(&a, &idx, ax)))
                }
                Value::Float(t) => {
                    let shape = fshape::<B>(&t);
                    if idx.shape() != shape.as_slice() {
                        // Burn's gather takes indices of the data's shape.
                        return Err(format!(
                            "GatherElements of a device tensor {shape:?} with indices {:?} (the same shape is supported)",
                            idx.shape()
                        ));
                    }
                    let dim = shape[ax] as i64;
                    let flat: Vec<i64> = idx
                        .iter()
                        .map(|&i| {
                            let j = if i < 0 { i + dim } else { i };
                            if (0..dim).contains(&j) {
                                Ok(j)
                            } else {
                                Err(format!("index {i} out of range for a dim of {dim}"))
                            }
                        })
                        .collect::<Result<_, _>>()?;
                    let n = flat.len();
                    let i =
                        B::int_reshape(upload_indices::<B>(flat, dev), Shape::from(shape.clone()));
                    let _ = n;
                    Value::Float(B::float_gather(ax, t, i))
                }
                Value::Bool(_) => return Err("GatherElements of a device boolean tensor".into()),
            })
        }
        Op::GatherND { batch_dims } => {
            let (x, idx) = (take(0)?, take(1)?);
            let idx = match host::<B>(&idx, "indices")? {
                HostTensor::I64(a) => a,
                _ => return Err("GatherND indices must be integers".into()),
            };
            let x = host::<B>(&x, "data")?;
            one(Value::Host(
                try_map_host!(x, a => shape_ops::gather_nd(&a, &idx, *batch_dims)),
            ))
        }
        Op::Expand => {
            let x = take(0)?;
            let mut target = host_ints::<B>(&take(1)?, "shape")?;
            rebind(&mut target, &x.shape(), ctx);
            let target = usize_dims(&target, "shape")?;
            one(match x {
                Value::Host(h) => {
                    Value::Host(try_map_host!(h, a => shape_ops::expand(&a, &target)))
                }
                Value::Float(t) => {
                    let out = broadcast_shape(&fshape::<B>(&t), &target)?;
                    Value::Float(expand_to::<B>(t, &out))
                }
                Value::Bool(t) => {
                    let out = broadcast_shape(&t.shape().to_vec(), &target)?;
                    let t = lift_bool::<B>(t, out.len());
                    Value::Bool(B::bool_expand(t, Shape::from(out)))
                }
            })
        }
        Op::Tile => {
            let x = take(0)?;
            let reps = usize_dims(&host_ints::<B>(&take(1)?, "repeats")?, "repeats")?;
            one(match x {
                Value::Host(h) => Value::Host(try_map_host!(h, a => shape_ops::tile(&a, &reps))),
                Value::Float(t) => {
                    let shape = fshape::<B>(&t);
                    if reps.len() != shape.len() {
                        return Err(format!("{} repeats for rank {}", reps.len(), shape.len()));
                    }
                    let out: Vec<usize> = shape.iter().zip(&reps).map(|(a, b)| a * b).collect();
                    checked_count(&out).ok_or("Tile: result too large")?;
                    let mut t = t;
                    for (d, &r) in reps.iter().enumerate() {
                        if r != 1 {
                            t = B::float_repeat_dim(t, d, r);
                        }
                    }
                    Value::Float(t)
                }
                Value::Bool(_) => return Err("Tile of a device boolean tensor".into()),
            })
        }
        Op::Shape { start, end } => {
            let shape = take(0)?.shape();
            let r = shape.len() as i64;
            let fix = |v: i64| {
                if v < 0 {
                    (v + r).clamp(0, r)
                } else {
                    v.clamp(0, r)
                }
            };
            let (s, e) = (fix(*start), fix(end.unwrap_or(r)));
            let dims: Vec<i64> = if s < e {
                shape[s as usize..e as usize]
                    .iter()
                    .map(|&d| d as i64)
                    .collect()
            } else {
                Vec::new()
            };
            one(Value::Host(HostTensor::vec_i64(dims)))
        }
        Op::Size => {
            let n: usize = take(0)?.shape().iter().product();
            one(Value::Host(HostTensor::scalar_i64(n as i64)))
        }
        Op::ConstantOfShape { value } => {
            let dims = usize_dims(&host_ints::<B>(&take(0)?, "shape")?, "shape")?;
            if checked_count(&dims).is_none_or(|n| n > MAX_ELEMENTS / 8) {
                return Err(format!("shape {dims:?} is too large"));
            }
            let s = IxDyn(&dims);
            one(Value::Host(match value {
                HostTensor::F32(a) => HostTensor::F32(ArrayD::from_elem(
                    s,
                    a.iter().next().copied().unwrap_or(0.0),
                )),
                HostTensor::I64(a) => {
                    HostTensor::I64(ArrayD::from_elem(s, a.iter().next().copied().unwrap_or(0)))
                }
                HostTensor::Bool(a) => HostTensor::Bool(ArrayD::from_elem(
                    s,
                    a.iter().next().copied().unwrap_or(false),
                )),
            }))
        }
        Op::Range => {
            let (s, l, d) = (take(0)?, take(1)?, take(2)?);
            let (s, l, d) = (
                host::<B>(&s, "start")?,
                host::<B>(&l, "limit")?,
                host::<B>(&d, "delta")?,
            );
            let float = matches!(s, HostTensor::F32(_));
            let (s, l, d) = (
                s.scalar_f64().ok_or("start must be a scalar")?,
                l.scalar_f64().ok_or("limit must be a scalar")?,
                d.scalar_f64().ok_or("delta must be a scalar")?,
            );
            if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
                return Err("Range with delta 0 or a non-finite bound".into());
            }
            let n = ((l - s) / d).ceil().max(0.0);
            if n > (MAX_ELEMENTS / 8) as f64 {
                return Err(format!("Range of {n} values is too large"));
            }
            let n = n as usize;
            one(Value::Host(if float {
                HostTensor::F32(ArrayD::from_shape_fn(IxDyn(&[n]), |i| {
                    (s + d * i[0] as f64) as f32
                }))
            } else {
                HostTensor::I64(ArrayD::from_shape_fn(IxDyn(&[n]), |i| {
                    (s + d * i[0] as f64) as i64
                }))
            }))
        }
        Op::Pad { pads, value } => {
            let x = take(0)?;
            let rank = x.shape().len();
            let pads = match pads {
                Some(p) => p.clone(),
                None => host_ints::<B>(&take(1)?, "pads")?,
            };
            let value = match inputs.get(2).and_then(Option::as_ref) {
                Some(v) => host_scalar::<B>(v, "constant value")? as f32,
                None => *value,
            };
            let axes: Vec<usize> = match inputs.get(3).and_then(Option::as_ref) {
                Some(v) => host_ints::<B>(v, "axes")?
                    .iter()
                    .map(|&a| host::axis(a, rank))
                    .collect::<Result<_, _>>()?,
                None => (0..rank).collect(),
            };
            if pads.len() != 2 * axes.len() {
                return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
            }
            let mut begin = vec![0usize; rank];
            let mut end = vec![0usize; rank];
            for (i, &ax) in axes.iter().enumerate() {
                let (b, e) = (pads[i], pads[i + axes.len()]);
                if b < 0 || e < 0 {
                    return Err("negative pads (cropping) are not supported".into());
                }
                begin[ax] = b as usize;
                end[ax] = e as usize;
            }
            one(Value::Float(pad::<B>(
                float_in::<B>(x, dev),
                &begin,
                &end,
                value,
                dev,
            )?))
        }
    }
}

/// The value as a device float (see [`to_float`]).
fn float_in<B: Backend>(v: Value<B>, device: &B::Device) -> FloatTensor<B> {
    to_float::<B>(v, device)
}

/// Rebinds a constant target shape exported for a fixed batch: a first dim equal to the
/// export batch becomes this forward's rows when the data's first dim is the rows.
fn rebind<B: Backend>(target: &mut [i64], data_shape: &[usize], ctx: &Ctx<'_, B>) {
    if let (Some(b0), Some(first)) = (ctx.export_batch, target.first_mut())
        && ctx.rows != b0
        && *first == b0 as i64
        && data_shape.first() == Some(&ctx.rows)
    {
        *first = ctx.rows as i64;
    }
}

fn check_perm(perm: &[usize], rank: usize) -> EvalResult<()> {
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!("{perm:?} is not a permutation of {rank} axes"));
    }
    Ok(())
}

/// GELU, `x · (1 + erf(x / √2)) / 2`, with its exact gradient on every backend: Burn 0.21's
/// `gelu` has the exact backward on flex only (the default one, ndarray's, wgpu's and CUDA's,
/// differentiates the tanh approximation, off by up to 1e-4; see
/// `influence_core::activation::gelu_exact`), so elsewhere it is composed from `erf`.
fn gelu_exact<B: Backend>(x: FloatTensor<B>, dev: &B::Device) -> FloatTensor<B> {
    if B::name(dev).contains("flex") {
        return B::gelu(x);
    }
    let e = B::float_erf(B::float_div_scalar(
        x.clone(),
        Scalar::Float(std::f64::consts::SQRT_2),
    ));
    B::float_mul_scalar(
        B::float_mul(x, B::float_add_scalar(e, Scalar::Float(1.0))),
        Scalar::Float(0.5),
    )
}

fn gelu_tanh<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let x3 = B::float_powi_scalar(x.clone(), Scalar::Int(3));
    let inner = B::float_add(x.clone(), B::float_mul_scalar(x3, Scalar::Float(0.044715)));
    let t = B::float_tanh(B::float_mul_scalar(inner, Scalar::Float(c)));
    B::float_mul(
        B::float_mul_scalar(x, Scalar::Float(0.5)),
        B::float_add_scalar(t, Scalar::Float(1.0)),
    )
}

fn unary<B: Backend>(op: Unary, x: Value<B>, dev: &B::Device) -> EvalResult<Value<B>> {
    if let Value::Host(h) = &x {
        return unary_host(op, h.clone()).map(Value::Host);
    }
    if op == Unary::Identity {
        return Ok(x);
    }
    if op == Unary::Not {
        return Ok(Value::Bool(B::bool_not(to_bool::<B>(x, dev)?)));
    }
    let Value::Float(t) = x else {
        return Err(format!("{op:?} of a device boolean tensor"));
    };
    let bd = bool_dtype::<B>(dev);
    Ok(Value::Float(match op {
        Unary::Relu => B::relu(t),
        Unary::Sigmoid => B::sigmoid(t),
        Unary::Tanh => B::float_tanh(t),
        Unary::Exp => B::float_exp(t),
        Unary::Log => B::float_log(t),
        Unary::Sqrt => B::float_sqrt(t),
        Unary::Neg => B::float_neg(t),
        Unary::Abs => B::float_abs(t),
        Unary::Erf => B::float_erf(t),
        Unary::Reciprocal => B::float_recip(t),
        Unary::Floor => B::float_floor(t),
        Unary::Ceil => B::float_ceil(t),
        Unary::Sin => B::float_sin(t),
        Unary::Cos => B::float_cos(t),
        Unary::Sign => B::float_sign(t),
        Unary::Softplus => B::float_log1p(B::float_exp(t)),
        Unary::HardSwish => B::float_mul(
            t.clone(),
            B::hard_sigmoid(t, Scalar::Float(1.0 / 6.0), Scalar::Float(0.5)),
        ),
        Unary::IsNaN => return Ok(Value::Bool(B::float_is_nan(t, bd))),
        Unary::IsInf => return Ok(Value::Bool(B::float_is_inf(t, bd))),
        Unary::Not | Unary::Identity => unreachable!("handled above"),
    }))
}

fn unary_host(op: Unary, h: HostTensor) -> EvalResult<HostTensor> {
    let f = |g: fn(f32) -> f32| -> EvalResult<HostTensor> {
        match h.clone().cast(Kind::Float) {
            HostTensor::F32(a) => Ok(HostTensor::F32(a.mapv(g))),
            _ => unreachable!("cast to float gives float"),
        }
    };
    match op {
        Unary::Identity => Ok(h),
        Unary::Not => match h {
            HostTensor::Bool(a) => Ok(HostTensor::Bool(a.mapv(|x| !x))),
            _ => Err("Not of a non-boolean tensor".into()),
        },
        Unary::Neg => match h {
            HostTensor::I64(a) => Ok(HostTensor::I64(a.mapv(|x| x.wrapping_neg()))),
            _ => f(|x| -x),
        },
        Unary::Abs => match h {
            HostTensor::I64(a) => Ok(HostTensor::I64(a.mapv(|x| x.wrapping_abs()))),
            _ => f(f32::abs),
        },
        Unary::IsNaN => match h {
            HostTensor::F32(a) => Ok(HostTensor::Bool(a.mapv(f32::is_nan))),
            other => Ok(HostTensor::Bool(ArrayD::from_elem(
                IxDyn(other.shape()),
                false,
            ))),
        },
        Unary::IsInf => match h {
            HostTensor::F32(a) => Ok(HostTensor::Bool(a.mapv(f32::is_infinite))),
            other => Ok(HostTensor::Bool(ArrayD::from_elem(
                IxDyn(other.shape()),
                false,
            ))),
        },
        Unary::Relu => f(|x| x.max(0.0)),
        Unary::Sigmoid => f(|x| 1.0 / (1.0 + (-x).exp())),
        Unary::Tanh => f(f32::tanh),
        Unary::Exp => f(f32::exp),
        Unary::Log => f(f32::ln),
        Unary::Sqrt => f(f32::sqrt),
        Unary::Erf => Err("Erf of a host tensor".into()),
        Unary::Reciprocal => f(|x| 1.0 / x),
        Unary::Floor => f(f32::floor),
        Unary::Ceil => f(f32::ceil),
        Unary::Sin => f(f32::sin),
        Unary::Cos => f(f32::cos),
        Unary::Sign => f(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Unary::Softplus => f(|x| x.exp().ln_1p()),
        Unary::HardSwish => f(|x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
    }
}

fn binary<B: Backend>(
    op: Binary,
    a: Value<B>,
    b: Value<B>,
    dev: &B::Device,
) -> EvalResult<Value<B>> {
    if let (Value::Host(x), Value::Host(y)) = (&a, &b) {
        return binary_host(op, x.clone(), y.clone()).map(Value::Host);
    }
    if matches!(op, Binary::And | Binary::Or | Binary::Xor) {
        let (x, y) = (to_bool::<B>(a, dev)?, to_bool::<B>(b, dev)?);
        let out = broadcast_shape(&x.shape().to_vec(), &y.shape().to_vec())?;
        let x = B::bool_expand(lift_bool::<B>(x, out.len()), Shape::from(out.clone()));
        let y = B::bool_expand(lift_bool::<B>(y, out.len()), Shape::from(out));
        return Ok(Value::Bool(match op {
            Binary::And => B::bool_and(x, y),
            Binary::Or => B::bool_or(x, y),
            _ => B::bool_not_equal(x, y),
        }));
    }
    if op == Binary::Mod {
        return Err("Mod of device tensors".into());
    }
    // A one-element host operand on the right: a scalar operation.
    let scalar = match &b {
        Value::Host(h) if h.len() == 1 && a.shape().len() >= h.shape().len() => h.scalar_f64(),
        _ => None,
    };
    let bd = bool_dtype::<B>(dev);
    let x = to_float::<B>(a, dev);
    if let Some(s) = scalar {
        let s = Scalar::Float(s);
        return Ok(match op {
            Binary::Add => Value::Float(B::float_add_scalar(x, s)),
            Binary::Sub => Value::Float(B::float_sub_scalar(x, s)),
            Binary::Mul => Value::Float(B::float_mul_scalar(x, s)),
            Binary::Div => Value::Float(B::float_div_scalar(x, s)),
            Binary::Pow => Value::Float(B::float_powf_scalar(x, s)),
            Binary::Max => Value::Float(B::float_clamp_min(x, s)),
            Binary::Min => Value::Float(B::float_clamp_max(x, s)),
            Binary::Equal => Value::Bool(B::float_equal_elem(x, s, bd)),
            Binary::Greater => Value::Bool(B::float_greater_elem(x, s, bd)),
            Binary::GreaterOrEqual => Value::Bool(B::float_greater_equal_elem(x, s, bd)),
            Binary::Less => Value::Bool(B::float_lower_elem(x, s, bd)),
            Binary::LessOrEqual => Value::Bool(B::float_lower_equal_elem(x, s, bd)),
            Binary::And | Binary::Or | Binary::Xor | Binary::Mod => unreachable!("handled above"),
        });
    }
    let y = to_float::<B>(b, dev);
    let (x, y, out) = align::<B>(x, y)?;
    // Burn's binary operations broadcast dims of size 1 within one rank.
    Ok(match op {
        Binary::Add => Value::Float(B::float_add(x, y)),
        Binary::Sub => Value::Float(B::float_sub(x, y)),
        Binary::Mul => Value::Float(B::float_mul(x, y)),
        Binary::Div => Value::Float(B::float_div(x, y)),
        Binary::Pow => Value::Float(B::float_powf(
            expand_to::<B>(x, &out),
            expand_to::<B>(y, &out),
        )),
        Binary::Max | Binary::Min => {
            let (x, y) = (expand_to::<B>(x, &out), expand_to::<B>(y, &out));
            let take_y = if op == Binary::Max {
                B::float_lower(x.clone(), y.clone(), bd)
            } else {
                B::float_greater(x.clone(), y.clone(), bd)
            };
            Value::Float(B::float_mask_where(x, take_y, y))
        }
        Binary::Equal => Value::Bool(B::float_equal(
            expand_to::<B>(x, &out),
            expand_to::<B>(y, &out),
            bd,
        )),
        Binary::Greater => Value::Bool(B::float_greater(
            expand_to::<B>(x, &out),
            expand_to::<B>(y, &out),
            bd,
        )),
        Binary::GreaterOrEqual => Value::Bool(B::float_greater_equal(
            expand_to::<B>(x, &out),
            expand_to::<B>(y, &out),
            bd,
        )),
        Binary::Less => Value::Bool(B::float_lower(
            expand_to::<B>(x, &out),
            expand_to::<B>(y, &out),
            bd,
        )),
        Binary::LessOrEqual => Value::Bool(B::float_lower_equal(
            expand_to::<B>(x, &out),
            expand_to::<B>(y, &out),
            bd,
        )),
        Binary::And | Binary::Or | Binary::Xor | Binary::Mod => unreachable!("handled above"),
    })
}

fn binary_host(op: Binary, a: HostTensor, b: HostTensor) -> EvalResult<HostTensor> {
    use HostTensor::*;
    // Mixed int/float operands (ONNX forbids them; some exporters' shape arithmetic has them)
    // are computed as floats.
    let (a, b) = match (&a, &b) {
        (F32(_), I64(_)) => (a, b.cast(Kind::Float)),
        (I64(_), F32(_)) => (a.cast(Kind::Float), b),
        _ => (a, b),
    };
    Ok(match (op, a, b) {
        (Binary::And, Bool(x), Bool(y)) => Bool(zip2(&x, &y, |p, q| p && q)?),
        (Binary::Or, Bool(x), Bool(y)) => Bool(zip2(&x, &y, |p, q| p || q)?),
        (Binary::Xor, Bool(x), Bool(y)) => Bool(zip2(&x, &y, |p, q| p ^ q)?),
        (Binary::Equal, Bool(x), Bool(y)) => Bool(zip2(&x, &y, |p, q| p == q)?),
        (op, F32(x), F32(y)) => match op {
            Binary::Add => F32(zip2(&x, &y, |p, q| p + q)?),
            Binary::Sub => F32(zip2(&x, &y, |p, q| p - q)?),
            Binary::Mul => F32(zip2(&x, &y, |p, q| p * q)?),
            Binary::Div => F32(zip2(&x, &y, |p, q| p / q)?),
            Binary::Pow => F32(zip2(&x, &y, f32::powf)?),
            Binary::Max => F32(zip2(&x, &y, f32::max)?),
            Binary::Min => F32(zip2(&x, &y, f32::min)?),
            Binary::Mod => F32(zip2(&x, &y, |p, q| p - q * (p / q).floor())?),
            Binary::Equal => Bool(zip2(&x, &y, |p, q| p == q)?),
            Binary::Greater => Bool(zip2(&x, &y, |p, q| p > q)?),
            Binary::GreaterOrEqual => Bool(zip2(&x, &y, |p, q| p >= q)?),
            Binary::Less => Bool(zip2(&x, &y, |p, q| p < q)?),
            Binary::LessOrEqual => Bool(zip2(&x, &y, |p, q| p <= q)?),
            _ => return Err(format!("{op:?} of float tensors")),
        },
        (op, I64(x), I64(y)) => match op {
            Binary::Add => I64(zip2(&x, &y, i64::wrapping_add)?),
            Binary::Sub => I64(zip2(&x, &y, i64::wrapping_sub)?),
            Binary::Mul => I64(zip2(&x, &y, i64::wrapping_mul)?),
            Binary::Div => {
                if y.iter().any(|&q| q == 0) {
                    return Err("integer division by zero".into());
                }
                // ONNX's integer Div truncates (C semantics).
                I64(zip2(&x, &y, i64::wrapping_div)?)
            }
            Binary::Mod => {
                if y.iter().any(|&q| q == 0) {
                    return Err("integer modulo by zero".into());
                }
                // fmod = 0: the sign of the divisor (Python's %).
                I64(zip2(&x, &y, |p, q| ((p % q) + q) % q)?)
            }
            Binary::Pow => I64(zip2(&x, &y, |p, q| p.wrapping_pow(q.clamp(0, 63) as u32))?),
            Binary::Max => I64(zip2(&x, &y, i64::max)?),
            Binary::Min => I64(zip2(&x, &y, i64::min)?),
            Binary::Equal => Bool(zip2(&x, &y, |p, q| p == q)?),
            Binary::Greater => Bool(zip2(&x, &y, |p, q| p > q)?),
            Binary::GreaterOrEqual => Bool(zip2(&x, &y, |p, q| p >= q)?),
            Binary::Less => Bool(zip2(&x, &y, |p, q| p < q)?),
            Binary::LessOrEqual => Bool(zip2(&x, &y, |p, q| p <= q)?),
            _ => return Err(format!("{op:?} of integer tensors")),
        },
        (op, x, y) => return Err(format!("{op:?} of {} and {} tensors", x.kind(), y.kind())),
    })
}

fn where_<B: Backend>(
    c: Value<B>,
    x: Value<B>,
    y: Value<B>,
    dev: &B::Device,
) -> EvalResult<Value<B>> {
    if let (Value::Host(c), Value::Host(x), Value::Host(y)) = (&c, &x, &y) {
        let HostTensor::Bool(c) = c.clone().cast(Kind::Bool) else {
            unreachable!("cast to bool gives bool")
        };
        return Ok(Value::Host(match (x.clone(), y.clone()) {
            (HostTensor::F32(a), HostTensor::F32(b)) => HostTensor::F32(where3(&c, &a, &b)?),
            (HostTensor::I64(a), HostTensor::I64(b)) => HostTensor::I64(where3(&c, &a, &b)?),
            (HostTensor::Bool(a), HostTensor::Bool(b)) => HostTensor::Bool(where3(&c, &a, &b)?),
            (a, b) => {
                let (a, b) = (a.cast(Kind::Float), b.cast(Kind::Float));
                match (a, b) {
                    (HostTensor::F32(a), HostTensor::F32(b)) => {
                        HostTensor::F32(where3(&c, &a, &b)?)
                    }
                    _ => unreachable!("cast to float gives float"),
                }
            }
        }));
    }
    let c = to_bool::<B>(c, dev)?;
    let (x, y) = (to_float::<B>(x, dev), to_float::<B>(y, dev));
    let out = broadcast_shape(
        &broadcast_shape(&c.shape().to_vec(), &fshape::<B>(&x))?,
        &fshape::<B>(&y),
    )?;
    let c = lift_bool::<B>(c, out.len());
    let c = if c.shape().to_vec() == out {
        c
    } else {
        B::bool_expand(c, Shape::from(out.clone()))
    };
    Ok(Value::Float(B::float_mask_where(
        expand_to::<B>(y, &out),
        c,
        expand_to::<B>(x, &out),
    )))
}

fn cast<B: Backend>(x: Value<B>, to: Kind) -> EvalResult<Value<B>> {
    Ok(match (x, to) {
        (Value::Host(h), to) => Value::Host(h.cast(to)),
        (Value::Float(t), Kind::Float) => Value::Float(t),
        (Value::Bool(t), Kind::Bool) => Value::Bool(t),
        (Value::Bool(t), Kind::Float) => {
            let dev = B::bool_device(&t);
            Value::Float(B::bool_into_float(t, float_dtype::<B>(&dev)))
        }
        (v, to) => {
            return Err(format!(
                "a cast of a {} tensor computed on the device to {to:?} is not supported (its values would have to be read back)",
                v.kind()
            ));
        }
    })
}

/// The highest rank a computed shape may have.
const MAX_RANK: usize = 16;

fn reshape<B: Backend>(x: Value<B>, out: &[usize]) -> EvalResult<Value<B>> {
    if out.len() > MAX_RANK {
        return Err(format!(
            "a shape of rank {} (at most {MAX_RANK})",
            out.len()
        ));
    }
    let n: usize = x.shape().iter().product();
    if out.iter().product::<usize>() != n {
        return Err(format!("cannot reshape {:?} into {out:?}", x.shape()));
    }
    Ok(match x {
        Value::Host(h) => Value::Host(try_map_host!(h, a => shape_ops::reshape(a, out))),
        Value::Float(t) => {
            let out = if out.is_empty() {
                vec![1]
            } else {
                out.to_vec()
            };
            Value::Float(B::float_reshape(t, Shape::from(out)))
        }
        Value::Bool(t) => {
            let out = if out.is_empty() {
                vec![1]
            } else {
                out.to_vec()
            };
            Value::Bool(B::bool_reshape(t, Shape::from(out)))
        }
    })
}

/// Slices a value; `ranges[axis]` is `(start, end, step)` as [`slice_range`] resolved it, or
/// `None` for the whole axis.
fn slice<B: Backend>(x: Value<B>, ranges: &[Option<(i64, i64, i64)>]) -> EvalResult<Value<B>> {
    let shape = x.shape();
    match x {
        Value::Host(h) => {
            let r: Vec<(usize, (i64, i64, i64))> = ranges
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (i, r)))
                .collect();
            Ok(Value::Host(map_host!(h, a => shape_ops::slice(a, &r))))
        }
        Value::Float(t) => {
            let mut slices = Vec::with_capacity(shape.len());
            let mut out = shape.clone();
            for (ax, r) in ranges.iter().enumerate() {
                match r {
                    None => slices.push(Slice::new(0, Some(shape[ax] as isize), 1)),
                    Some(r @ (s, e, step)) => {
                        if *step < 0 {
                            return Err("a slice with a negative step of a device tensor".into());
                        }
                        out[ax] = slice_len(*r);
                        slices.push(Slice::new(*s as isize, Some(*e as isize), *step as isize));
                    }
                }
            }
            if out.contains(&0) {
                return Err(format!("the slice of {shape:?} is empty ({out:?})"));
            }
            Ok(Value::Float(B::float_slice(t, &slices)))
        }
        Value::Bool(_) => Err("a slice of a device boolean tensor".into()),
    }
}

fn gather<B: Backend>(
    x: Value<B>,
    idx: Value<B>,
    axis: i64,
    dev: &B::Device,
) -> EvalResult<Value<B>> {
    let shape = x.shape();
    let ax = host::axis(axis, shape.len())?;
    let idx = match host::<B>(&idx, "indices")? {
        HostTensor::I64(a) => a,
        HostTensor::F32(_) | HostTensor::Bool(_) => {
            return Err("Gather indices must be integers".into());
        }
    };
    match x {
        Value::Host(h) => Ok(Value::Host(
            try_map_host!(h, a => shape_ops::gather(&a, &idx, ax)),
        )),
        Value::Float(t) => {
            let dim = shape[ax] as i64;
            let flat: Vec<i64> = idx
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + dim } else { i };
                    if (0..dim).contains(&j) {
                        Ok(j)
                    } else {
                        Err(format!("index {i} is out of range for a dim of {dim}"))
                    }
                })
                .collect::<Result<_, _>>()?;
            if flat.is_empty() {
                return Err("Gather with no indices".into());
            }
            let picked = B::float_select(t, ax, upload_indices::<B>(flat, dev));
            let mut out = shape[..ax].to_vec();
            out.extend_from_slice(idx.shape());
            out.extend_from_slice(&shape[ax + 1..]);
            let out = if out.is_empty() { vec![1] } else { out };
            Ok(Value::Float(B::float_reshape(picked, Shape::from(out))))
        }
        Value::Bool(_) => Err("Gather of a device boolean tensor".into()),
    }
}

fn concat<B: Backend>(parts: Vec<Value<B>>, axis: i64, ctx: &Ctx<'_, B>) -> EvalResult<Value<B>> {
    let rank = parts.first().ok_or("Concat of nothing")?.shape().len();
    if parts.iter().any(|p| p.shape().len() != rank) {
        return Err(format!(
            "Concat of ranks {:?}",
            parts.iter().map(|p| p.shape().len()).collect::<Vec<_>>()
        ));
    }
    let ax = host::axis(axis, rank)?;
    if parts.iter().all(|p| matches!(p, Value::Host(_))) {
        let hosts: Vec<HostTensor> = parts
            .into_iter()
            .map(|p| match p {
                Value::Host(h) => h,
                _ => unreachable!("all host"),
            })
            .collect();
        let kind = hosts[0].kind();
        if hosts.iter().any(|h| h.kind() != kind) {
            return Err("Concat of host tensors of different types".into());
        }
        return Ok(Value::Host(match &hosts[0] {
            HostTensor::F32(_) => HostTensor::F32(shape_ops::concat(
                &hosts
                    .iter()
                    .map(|h| match h {
                        HostTensor::F32(a) => a.clone(),
                        _ => unreachable!(),
                    })
                    .collect::<Vec<_>>(),
                ax,
            )?),
            HostTensor::I64(_) => HostTensor::I64(shape_ops::concat(
                &hosts
                    .iter()
                    .map(|h| match h {
                        HostTensor::I64(a) => a.clone(),
                        _ => unreachable!(),
                    })
                    .collect::<Vec<_>>(),
                ax,
            )?),
            HostTensor::Bool(_) => HostTensor::Bool(shape_ops::concat(
                &hosts
                    .iter()
                    .map(|h| match h {
                        HostTensor::Bool(a) => a.clone(),
                        _ => unreachable!(),
                    })
                    .collect::<Vec<_>>(),
                ax,
            )?),
        }));
    }
    let mut tensors: Vec<FloatTensor<B>> = parts
        .into_iter()
        .map(|p| to_float::<B>(p, ctx.device))
        .collect();
    // A constant exported for a fixed batch (a class token [1, 1, d]) beside activations of
    // this forward's rows: broadcast along dim 0.
    if ax != 0 && ctx.export_batch == Some(1) {
        let rows = tensors.iter().map(|t| fshape::<B>(t)[0]).max().unwrap_or(1);
        for t in &mut tensors {
            let mut s = fshape::<B>(t);
            if s[0] == 1 && rows == ctx.rows {
                s[0] = rows;
                *t = B::float_expand(t.clone(), Shape::from(s));
            }
        }
    }
    let first = fshape::<B>(&tensors[0]);
    for t in &tensors[1..] {
        let s = fshape::<B>(t);
        if s.iter().enumerate().any(|(i, &d)| i != ax && d != first[i]) {
            return Err(format!("Concat along axis {ax} of {first:?} and {s:?}"));
        }
    }
    Ok(Value::Float(B::float_cat(tensors, ax)))
}

fn matmul<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>) -> EvalResult<FloatTensor<B>> {
    let (sa, sb) = (fshape::<B>(&a), fshape::<B>(&b));
    let (a1, b1) = (sa.len() == 1, sb.len() == 1);
    let a = if a1 {
        B::float_reshape(a, Shape::from(vec![1, sa[0]]))
    } else {
        a
    };
    let b = if b1 {
        B::float_reshape(b, Shape::from(vec![sb[0], 1]))
    } else {
        b
    };
    let (sa, sb) = (fshape::<B>(&a), fshape::<B>(&b));
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(format!("MatMul of {sa:?} and {sb:?}"));
    }
    if checked_count(&[
        sa[..sa.len() - 1].iter().product(),
        sb[..sb.len() - 2].iter().product(),
        n,
    ])
    .is_none()
    {
        return Err(format!(
            "MatMul of {sa:?} and {sb:?}: the result is too large"
        ));
    }
    let y = if sb.len() == 2 {
        // [.., K] × [K, N]: one product over all rows (what a linear layer is).
        B::linear(a, b, None)
    } else {
        let batch = broadcast_shape(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
        let mut fa = batch.clone();
        fa.extend([m, k]);
        let mut fb = batch.clone();
        fb.extend([k, n]);
        B::float_matmul(expand_to::<B>(a, &fa), expand_to::<B>(b, &fb))
    };
    let mut out = fshape::<B>(&y);
    if a1 || b1 {
        let r = out.len();
        if b1 {
            out.remove(r - 1);
        }
        if a1 {
            out.remove(out.len() - if b1 { 1 } else { 2 });
        }
        let out = if out.is_empty() { vec![1] } else { out };
        return Ok(B::float_reshape(y, Shape::from(out)));
    }
    Ok(y)
}

/// Explicit per-side pads (`[begin..., end...]` for the spatial dims) of a window over the
/// spatial dims `input`, and the kernel extent (dilated).
fn resolve_pads(
    w: &Window,
    input: &[usize],
    kernel: &[usize],
) -> EvalResult<(Vec<usize>, Vec<usize>)> {
    let n = input.len();
    let strides = if w.strides.is_empty() {
        vec![1; n]
    } else {
        w.strides.clone()
    };
    let dil = if w.dilations.is_empty() {
        vec![1; n]
    } else {
        w.dilations.clone()
    };
    let (mut begin, mut end) = (vec![0; n], vec![0; n]);
    match w.auto_pad.as_str() {
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..n {
                let out = input[i].div_ceil(strides[i]);
                let extent = (kernel[i] - 1) * dil[i] + 1;
                let total = ((out - 1) * strides[i] + extent).saturating_sub(input[i]);
                let small = total / 2;
                if w.auto_pad == "SAME_UPPER" {
                    begin[i] = small;
                    end[i] = total - small;
                } else {
                    begin[i] = total - small;
                    end[i] = small;
                }
            }
        }
        "VALID" => {}
        _ => {
            if !w.pads.is_empty() {
                if w.pads.len() != 2 * n {
                    return Err(format!("{} pads for {n} spatial dims", w.pads.len()));
                }
                begin.copy_from_slice(&w.pads[..n]);
                end.copy_from_slice(&w.pads[n..]);
            }
        }
    }
    Ok((begin, end))
}

fn pad<B: Backend>(
    x: FloatTensor<B>,
    begin: &[usize],
    end: &[usize],
    value: f32,
    dev: &B::Device,
) -> EvalResult<FloatTensor<B>> {
    let shape = fshape::<B>(&x);
    if begin.iter().chain(end).all(|&p| p == 0) {
        return Ok(x);
    }
    let out: Vec<usize> = shape
        .iter()
        .zip(begin.iter().zip(end))
        .map(|(d, (b, e))| d + b + e)
        .collect();
    checked_count(&out).ok_or("padded shape too large")?;
    let base = B::float_add_scalar(
        B::float_zeros(Shape::from(out), dev, float_dtype::<B>(dev)),
        Scalar::Float(value as f64),
    );
    let slices: Vec<Slice> = shape
        .iter()
        .zip(begin)
        .map(|(&d, &b)| Slice::new(b as isize, Some((b + d) as isize), 1))
        .collect();
    Ok(B::float_slice_assign(base, &slices, x))
}

fn conv<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    window: &Window,
    group: usize,
    dev: &B::Device,
) -> EvalResult<FloatTensor<B>> {
    let (sx, sw) = (fshape::<B>(&x), fshape::<B>(&w));
    let rank = sx.len();
    if !(rank == 3 || rank == 4) || sw.len() != rank {
        return Err(format!(
            "Conv of {sx:?} with weight {sw:?} (1-D and 2-D convolutions are supported)"
        ));
    }
    let kernel = sw[2..].to_vec();
    if !window.kernel.is_empty() && window.kernel != kernel {
        return Err(format!(
            "kernel_shape {:?} but weight {sw:?}",
            window.kernel
        ));
    }
    if sx[1] != sw[1] * group || sw[0] % group != 0 {
        return Err(format!(
            "Conv of {sx:?} with weight {sw:?} in {group} groups"
        ));
    }
    if let Some(b) = &bias
        && fshape::<B>(b) != [sw[0]]
    {
        return Err(format!("bias {:?} for {} channels", fshape::<B>(b), sw[0]));
    }
    let spatial = &sx[2..];
    let n = spatial.len();
    let strides = if window.strides.is_empty() {
        vec![1; n]
    } else {
        window.strides.clone()
    };
    let dil = if window.dilations.is_empty() {
        vec![1; n]
    } else {
        window.dilations.clone()
    };
    let (begin, end) = resolve_pads(window, spatial, &kernel)?;
    for i in 0..n {
        if spatial[i] + begin[i] + end[i] < (kernel[i] - 1) * dil[i] + 1 {
            return Err(format!(
                "Conv: input {sx:?} is smaller than the kernel {kernel:?}"
            ));
        }
    }
    let (x, padding) = if begin == end {
        (x, begin)
    } else {
        let mut b = vec![0, 0];
        b.extend(&begin);
        let mut e = vec![0, 0];
        e.extend(&end);
        (pad::<B>(x, &b, &e, 0.0, dev)?, vec![0; n])
    };
    Ok(if rank == 4 {
        B::conv2d(
            x,
            w,
            bias,
            ConvOptions {
                stride: [strides[0], strides[1]],
                padding: [padding[0], padding[1]],
                dilation: [dil[0], dil[1]],
                groups: group,
            },
        )
    } else {
        B::conv1d(
            x,
            w,
            bias,
            ConvOptions {
                stride: [strides[0]],
                padding: [padding[0]],
                dilation: [dil[0]],
                groups: group,
            },
        )
    })
}

/// Max pooling (`average` `None`) or average pooling (`Some(count_include_pad)`), 1-D or 2-D.
fn pool<B: Backend>(
    x: FloatTensor<B>,
    window: &Window,
    average: Option<bool>,
    dev: &B::Device,
) -> EvalResult<FloatTensor<B>> {
    let sx = fshape::<B>(&x);
    let n = window.kernel.len();
    if !(n == 1 || n == 2) || sx.len() != n + 2 {
        return Err(format!("pooling of {sx:?} with kernel {:?}", window.kernel));
    }
    // 1-D pooling as 2-D over [.., 1, L].
    let (x, spatial) = if n == 1 {
        (
            B::float_reshape(x, Shape::from(vec![sx[0], sx[1], 1, sx[2]])),
            vec![1, sx[2]],
        )
    } else {
        (x, sx[2..].to_vec())
    };
    let lift2 = |v: &[usize], fill: usize| if n == 1 { vec![fill, v[0]] } else { v.to_vec() };
    let kernel = lift2(&window.kernel, 1);
    let strides = if window.strides.is_empty() {
        vec![1, 1]
    } else {
        lift2(&window.strides, 1)
    };
    let dil = if window.dilations.is_empty() {
        vec![1, 1]
    } else {
        lift2(&window.dilations, 1)
    };
    let w2 = Window {
        kernel: kernel.clone(),
        strides: strides.clone(),
        dilations: dil.clone(),
        pads: if window.pads.is_empty() {
            Vec::new()
        } else if n == 1 {
            vec![0, window.pads[0], 0, window.pads[1]]
        } else {
            window.pads.clone()
        },
        auto_pad: window.auto_pad.clone(),
        ceil_mode: window.ceil_mode,
    };
    let (begin, end) = resolve_pads(&w2, &spatial, &kernel)?;
    for i in 0..2 {
        if spatial[i] + begin[i] + end[i] < (kernel[i] - 1) * dil[i] + 1 {
            return Err(format!(
                "pooling: input {sx:?} is smaller than the kernel {kernel:?}"
            ));
        }
        if begin[i] > kernel[i] / 2 || end[i] > kernel[i] / 2 {
            return Err(format!(
                "pooling pads {begin:?}/{end:?} larger than half the kernel {kernel:?}"
            ));
        }
    }
    let (x, padding) = if begin == end {
        (x, begin)
    } else if average == Some(false) {
        return Err("average pooling with uneven pads that exclude the padding".into());
    } else {
        let fill = if average.is_some() {
            0.0
        } else {
            f32::NEG_INFINITY
        };
        (
            pad::<B>(
                x,
                &[0, 0, begin[0], begin[1]],
                &[0, 0, end[0], end[1]],
                fill,
                dev,
            )?,
            vec![0, 0],
        )
    };
    let y = match average {
        None => B::max_pool2d(
            x,
            [kernel[0], kernel[1]],
            [strides[0], strides[1]],
            [padding[0], padding[1]],
            [dil[0], dil[1]],
            window.ceil_mode,
        ),
        Some(include) => {
            if dil != [1, 1] {
                return Err("dilated average pooling".into());
            }
            B::avg_pool2d(
                x,
                [kernel[0], kernel[1]],
                [strides[0], strides[1]],
                [padding[0], padding[1]],
                include,
                window.ceil_mode,
            )
        }
    };
    if n == 1 {
        let s = fshape::<B>(&y);
        return Ok(B::float_reshape(y, Shape::from(vec![s[0], s[1], s[3]])));
    }
    Ok(y)
}

fn batch_norm<B: Backend>(
    x: FloatTensor<B>,
    scale: Value<B>,
    bias: Value<B>,
    mean: Value<B>,
    var: Value<B>,
    epsilon: f32,
    dev: &B::Device,
) -> EvalResult<FloatTensor<B>> {
    let sx = fshape::<B>(&x);
    if sx.len() < 2 {
        return Err(format!("BatchNormalization of {sx:?}"));
    }
    let c = sx[1];
    for (what, v) in [
        ("scale", &scale),
        ("B", &bias),
        ("mean", &mean),
        ("var", &var),
    ] {
        if v.shape() != [c] {
            return Err(format!("{what} of shape {:?} for {c} channels", v.shape()));
        }
    }
    // Inference, as PyTorch computes it: y = x · a + b with a = γ / √(var + ε), b = β − μ a.
    let (scale, bias, mean, var) = (
        to_float::<B>(scale, dev),
        to_float::<B>(bias, dev),
        to_float::<B>(mean, dev),
        to_float::<B>(var, dev),
    );
    let a = B::float_div(
        scale,
        B::float_sqrt(B::float_add_scalar(var, Scalar::Float(epsilon as f64))),
    );
    let b = B::float_sub(bias, B::float_mul(mean, a.clone()));
    let mut per = vec![1; sx.len()];
    per[1] = c;
    let a = B::float_reshape(a, Shape::from(per.clone()));
    let b = B::float_reshape(b, Shape::from(per));
    Ok(B::float_add(B::float_mul(x, a), b))
}

fn layer_norm<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    axis: i64,
    epsilon: f32,
) -> EvalResult<FloatTensor<B>> {
    let sx = fshape::<B>(&x);
    let ax = host::axis(axis, sx.len())?;
    let norm: Vec<usize> = sx[ax..].to_vec();
    let d: usize = norm.iter().product();
    let s_scale = fshape::<B>(&scale);
    if s_scale.iter().product::<usize>() != d {
        return Err(format!("scale {s_scale:?} for normalized dims {norm:?}"));
    }
    if let Some(b) = &bias
        && fshape::<B>(b).iter().product::<usize>() != d
    {
        return Err(format!(
            "bias {:?} for normalized dims {norm:?}",
            fshape::<B>(b)
        ));
    }
    let mut flat = sx[..ax].to_vec();
    flat.push(d);
    let y = B::layer_norm(
        B::float_reshape(x, Shape::from(flat)),
        B::float_reshape(scale, Shape::from(vec![d])),
        bias.map(|b| B::float_reshape(b, Shape::from(vec![d]))),
        epsilon as f64,
    );
    Ok(B::float_reshape(y, Shape::from(sx)))
}

fn reduce<B: Backend>(
    x: Value<B>,
    kind: Reduce,
    axes: &[i64],
    keepdims: bool,
    noop_with_empty_axes: bool,
    dev: &B::Device,
) -> EvalResult<Value<B>> {
    let shape = x.shape();
    if axes.is_empty() && noop_with_empty_axes {
        return Ok(x);
    }
    let mut axes: Vec<usize> = if axes.is_empty() {
        (0..shape.len()).collect()
    } else {
        axes.iter()
            .map(|&a| host::axis(a, shape.len()))
            .collect::<Result<_, _>>()?
    };
    axes.sort_unstable();
    axes.dedup();
    let mut out: Vec<usize> = shape.clone();
    for &a in &axes {
        out[a] = 1;
    }
    let kept: Vec<usize> = if keepdims {
        out.clone()
    } else {
        (0..shape.len())
            .filter(|i| !axes.contains(i))
            .map(|i| shape[i])
            .collect()
    };
    let mut t = match x {
        Value::Float(t) => t,
        Value::Host(h) => {
            // Host reductions (rare: shape arithmetic) run on the device's float path.
            to_float::<B>(Value::Host(h), dev)
        }
        Value::Bool(_) => return Err("a reduction of a device boolean tensor".into()),
    };
    match kind {
        Reduce::L2 | Reduce::SumSquare => t = B::float_mul(t.clone(), t),
        Reduce::L1 => t = B::float_abs(t),
        _ => {}
    }
    for &a in &axes {
        t = match kind {
            Reduce::Mean => B::float_mean_dim(t, a),
            Reduce::Sum | Reduce::L2 | Reduce::L1 | Reduce::SumSquare => B::float_sum_dim(t, a),
            Reduce::Max => B::float_max_dim(t, a),
            Reduce::Min => B::float_min_dim(t, a),
            Reduce::Prod => B::float_prod_dim(t, a),
        };
    }
    if kind == Reduce::L2 {
        t = B::float_sqrt(t);
    }
    let kept = if kept.is_empty() { vec![1] } else { kept };
    Ok(Value::Float(B::float_reshape(t, Shape::from(kept))))
}
