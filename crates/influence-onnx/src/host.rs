//! Small tensors on the host: the shapes, indices, masks and constants of a graph.
//!
//! An ONNX graph computes its shapes with tensor operations (`Shape`, `Gather`, `Concat`,
//! `Reshape` of the result). Those values are known on the host from the shapes of the device
//! tensors, and must stay there: a reshape needs its target shape without reading a device
//! (which a browser's WebGPU cannot do synchronously). Integer and boolean tensors (token ids,
//! attention masks) live here too; only float activations are device tensors. The arithmetic
//! is [`ndarray`]'s, with NumPy's broadcasting, as ONNX defines it.

use ndarray::{ArrayD, Axis, Dimension, IxDyn, Slice as NdSlice, Zip};

use crate::proto::{MAX_COMPUTED_ELEMENTS, computed_count};

/// A host tensor: float32, int64 or bool, of any rank (rank 0 included).
#[derive(Debug, Clone, PartialEq)]
pub enum HostTensor {
    /// Float values (ONNX float, double, float16, bfloat16 are all read as float32).
    F32(ArrayD<f32>),
    /// Integer values (every ONNX integer type is read as int64).
    I64(ArrayD<i64>),
    /// Booleans.
    Bool(ArrayD<bool>),
}

/// Applies `$body` to the array inside a [`HostTensor`], whatever its element type, and wraps
/// the resulting array in the same variant.
macro_rules! map_host {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            HostTensor::F32($a) => HostTensor::F32($body),
            HostTensor::I64($a) => HostTensor::I64($body),
            HostTensor::Bool($a) => HostTensor::Bool($body),
        }
    };
}

/// As [`map_host!`], for a body that returns a `Result` of the array.
macro_rules! try_map_host {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            HostTensor::F32($a) => HostTensor::F32($body?),
            HostTensor::I64($a) => HostTensor::I64($body?),
            HostTensor::Bool($a) => HostTensor::Bool($body?),
        }
    };
}
pub(crate) use {map_host, try_map_host};

/// A fault of a host operation, worded for the node's error.
pub type HostResult<T> = Result<T, String>;

impl HostTensor {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            HostTensor::F32(a) => a.shape(),
            HostTensor::I64(a) => a.shape(),
            HostTensor::Bool(a) => a.shape(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name.
    pub fn kind(&self) -> &'static str {
        match self {
            HostTensor::F32(_) => "float",
            HostTensor::I64(_) => "int64",
            HostTensor::Bool(_) => "bool",
        }
    }

    /// A rank-0 int64.
    pub fn scalar_i64(v: i64) -> Self {
        HostTensor::I64(ArrayD::from_elem(IxDyn(&[]), v))
    }

    /// A rank-1 int64.
    pub fn vec_i64(v: Vec<i64>) -> Self {
        let n = v.len();
        HostTensor::I64(ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("length matches"))
    }

    /// The values as int64 (floats truncated, booleans as 0/1), row-major.
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            HostTensor::F32(a) => a.iter().map(|&x| x as i64).collect(),
            HostTensor::I64(a) => a.iter().copied().collect(),
            HostTensor::Bool(a) => a.iter().map(|&x| x as i64).collect(),
        }
    }

    /// The values as float32, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            HostTensor::F32(a) => a.iter().copied().collect(),
            HostTensor::I64(a) => a.iter().map(|&x| x as f32).collect(),
            HostTensor::Bool(a) => a.iter().map(|&x| x as u8 as f32).collect(),
        }
    }

    /// The single value of a one-element tensor, as float64.
    pub fn scalar_f64(&self) -> Option<f64> {
        if self.len() != 1 {
            return None;
        }
        Some(match self {
            HostTensor::F32(a) => *a.iter().next()? as f64,
            HostTensor::I64(a) => *a.iter().next()? as f64,
            HostTensor::Bool(a) => *a.iter().next()? as u8 as f64,
        })
    }

    /// Converts to ONNX element type `to` (float, int or bool: ONNX's `Cast`).
    pub fn cast(self, to: Kind) -> Self {
        match (self, to) {
            (HostTensor::F32(a), Kind::Float) => HostTensor::F32(a),
            (HostTensor::F32(a), Kind::Int) => HostTensor::I64(a.mapv(|x| x as i64)),
            (HostTensor::F32(a), Kind::Bool) => HostTensor::Bool(a.mapv(|x| x != 0.0)),
            (HostTensor::I64(a), Kind::Float) => HostTensor::F32(a.mapv(|x| x as f32)),
            (HostTensor::I64(a), Kind::Int) => HostTensor::I64(a),
            (HostTensor::I64(a), Kind::Bool) => HostTensor::Bool(a.mapv(|x| x != 0)),
            (HostTensor::Bool(a), Kind::Float) => HostTensor::F32(a.mapv(|x| x as u8 as f32)),
            (HostTensor::Bool(a), Kind::Int) => HostTensor::I64(a.mapv(|x| x as i64)),
            (HostTensor::Bool(a), Kind::Bool) => HostTensor::Bool(a),
        }
    }
}

/// The three element kinds this crate computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// float32.
    Float,
    /// int64.
    Int,
    /// bool.
    Bool,
}

/// NumPy's broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> HostResult<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    computed_count(&out).ok_or_else(|| format!("broadcast shape {out:?} is too large"))?;
    Ok(out)
}

/// `f` applied element-wise to `a` and `b` broadcast together.
pub fn zip2<A: Clone, B: Clone, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> C,
) -> HostResult<ArrayD<C>> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let av = a.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    Ok(Zip::from(&av)
        .and(&bv)
        .map_collect(|x, y| f(x.clone(), y.clone())))
}

/// `cond ? x : y`, broadcast together (ONNX's `Where`).
pub fn where3<T: Clone>(
    cond: &ArrayD<bool>,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
) -> HostResult<ArrayD<T>> {
    let shape = broadcast_shape(&broadcast_shape(cond.shape(), x.shape())?, y.shape())?;
    let s = IxDyn(&shape);
    let (c, xv, yv) = (
        cond.broadcast(s.clone()).ok_or("broadcast failed")?,
        x.broadcast(s.clone()).ok_or("broadcast failed")?,
        y.broadcast(s).ok_or("broadcast failed")?,
    );
    Ok(Zip::from(&c)
        .and(&xv)
        .and(&yv)
        .map_collect(|&c, a, b| if c { a.clone() } else { b.clone() }))
}

/// An axis in `[-rank, rank)` as an index in `[0, rank)`.
pub fn axis(axis: i64, rank: usize) -> HostResult<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r.max(1) && !(rank == 0 && axis == 0) {
        return Err(format!("axis {axis} is outside a tensor of rank {rank}"));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// ONNX's `Reshape` target resolved against the input's shape: `0` copies the input's dim
/// (unless `allowzero`), one `-1` takes what remains.
pub fn reshape_target(input: &[usize], target: &[i64], allowzero: bool) -> HostResult<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| {
                format!("target {target:?}: dim {i} copies a dim the input {input:?} lacks")
            })?),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(format!("target shape {target:?} is not valid")),
        }
    }
    let known =
        computed_count(&out).ok_or_else(|| format!("target shape {target:?} is too large"))?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} into {target:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!(
            "cannot reshape {input:?} ({total} values) into {target:?} ({known} values)"
        ));
    }
    Ok(out)
}

/// ONNX's `Slice` on one axis: `(start, end, step)` clamped as the specification says,
/// returned as ndarray's slice.
pub fn slice_range(dim: usize, start: i64, end: i64, step: i64) -> HostResult<(i64, i64, i64)> {
    if step == 0 {
        return Err("slice step 0".into());
    }
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(-1, d - 1), e.clamp(-1, d - 1))
    };
    Ok((s, e, step))
}

/// Elements of a slice `(start, end, step)` as [`slice_range`] returns it.
pub fn slice_len((s, e, step): (i64, i64, i64)) -> usize {
    if step > 0 {
        if e > s {
            ((e - s + step - 1) / step) as usize
        } else {
            0
        }
    } else if s > e {
        ((s - e + (-step) - 1) / (-step)) as usize
    } else {
        0
    }
}

/// Generic shape operations on host arrays.
pub mod shape_ops {
    use super::*;

    /// Reshapes (row-major).
    pub fn reshape<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> HostResult<ArrayD<T>> {
        let a = a.as_standard_layout().into_owned();
        a.into_shape_with_order(IxDyn(shape))
            .map_err(|e| e.to_string())
    }

    /// Permutes the axes (`perm[i]` is the input axis of output axis `i`).
    pub fn transpose<T: Clone>(a: ArrayD<T>, perm: &[usize]) -> HostResult<ArrayD<T>> {
        if perm.len() != a.ndim() {
            return Err(format!("permutation {perm:?} for rank {}", a.ndim()));
        }
        let mut seen = vec![false; perm.len()];
        for &p in perm {
            if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                return Err(format!("{perm:?} is not a permutation"));
            }
        }
        Ok(a.permuted_axes(IxDyn(perm))
            .as_standard_layout()
            .into_owned())
    }

    /// Concatenates along `axis`.
    pub fn concat<T: Clone>(parts: &[ArrayD<T>], axis: usize) -> HostResult<ArrayD<T>> {
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(axis), &views).map_err(|e| format!("concat: {e}"))
    }

    /// Slices along each `(axis, (start, end, step))`, as [`slice_range`] resolved them.
    pub fn slice<T: Clone>(a: ArrayD<T>, ranges: &[(usize, (i64, i64, i64))]) -> ArrayD<T> {
        let mut v = a.view();
        for &(ax, (s, e, step)) in ranges {
            let sl = if step > 0 {
                NdSlice::new(s as isize, Some(e as isize), step as isize)
            } else {
                // ndarray's negative step walks a [start, end) range backwards: ONNX's
                // (s, e, step<0) keeps s, s+step, ... > e, which is the range (e, s].
                NdSlice::new((e + 1) as isize, Some((s + 1) as isize), step as isize)
            };
            v.slice_axis_inplace(Axis(ax), sl);
        }
        v.to_owned()
    }

    /// ONNX's `Gather` along `axis` with int64 `indices` (negative counting from the end).
    pub fn gather<T: Clone>(
        a: &ArrayD<T>,
        indices: &ArrayD<i64>,
        axis: usize,
    ) -> HostResult<ArrayD<T>> {
        let dim = a.shape()[axis] as i64;
        let idx: Vec<usize> = indices
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + dim } else { i };
                if (0..dim).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(format!("index {i} is out of range for a dim of {dim}"))
                }
            })
            .collect::<Result<_, _>>()?;
        let picked = a.select(Axis(axis), &idx);
        let mut shape = a.shape()[..axis].to_vec();
        shape.extend_from_slice(indices.shape());
        shape.extend_from_slice(&a.shape()[axis + 1..]);
        reshape(picked, &shape)
    }

    /// ONNX's `GatherElements` along `axis`: `out[i..] = a[i.. with axis index idx[i..]]`,
    /// `indices` of `a`'s rank, no larger than `a` on the other axes.
    pub fn gather_elements<T: Clone>(
        a: &ArrayD<T>,
        indices: &ArrayD<i64>,
        axis: usize,
    ) -> HostResult<ArrayD<T>> {
        if indices.ndim() != a.ndim()
            || indices
                .shape()
                .iter()
                .zip(a.shape())
                .enumerate()
                .any(|(i, (n, d))| i != axis && n > d)
        {
            return Err(format!(
                "GatherElements: indices {:?} do not fit data {:?}",
                indices.shape(),
                a.shape()
            ));
        }
        let dim = a.shape()[axis] as i64;
        let mut out = Vec::with_capacity(indices.len());
        for (pos, &i) in indices.indexed_iter() {
            let j = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&j) {
                return Err(format!(
                    "GatherElements: index {i} out of range for a dim of {dim}"
                ));
            }
            let mut at = pos.slice().to_vec();
            at[axis] = j as usize;
            out.push(a[IxDyn(&at)].clone());
        }
        ArrayD::from_shape_vec(IxDyn(indices.shape()), out).map_err(|e| e.to_string())
    }

    /// ONNX's `GatherND` with `batch_dims`.
    pub fn gather_nd<T: Clone>(
        a: &ArrayD<T>,
        indices: &ArrayD<i64>,
        batch_dims: usize,
    ) -> HostResult<ArrayD<T>> {
        let (r, q) = (a.ndim(), indices.ndim());
        if q == 0 || batch_dims >= q || batch_dims >= r {
            return Err("GatherND: indices rank too small".into());
        }
        let k = indices.shape()[q - 1];
        if batch_dims + k > r || a.shape()[..batch_dims] != indices.shape()[..batch_dims] {
            return Err(format!(
                "GatherND: indices {:?} do not fit data {:?} (batch_dims {batch_dims})",
                indices.shape(),
                a.shape()
            ));
        }
        let slice_shape = &a.shape()[batch_dims + k..];
        let slice_len: usize = slice_shape.iter().product();
        let mut out_shape = indices.shape()[..q - 1].to_vec();
        out_shape.extend_from_slice(slice_shape);
        computed_count(&out_shape).ok_or("GatherND: result too large")?;
        let data = a.as_standard_layout();
        let flat = data.as_slice().ok_or("GatherND: layout")?;
        let idx = indices.as_standard_layout();
        let idx = idx.as_slice().ok_or("GatherND: layout")?;
        let batch: usize = a.shape()[..batch_dims].iter().product();
        let per_batch_data: usize = a.shape()[batch_dims..].iter().product();
        let tuples = idx.len() / k.max(1);
        let per_batch_tuples = tuples / batch.max(1);
        let mut out = Vec::with_capacity(tuples * slice_len);
        for t in 0..tuples {
            let b = t / per_batch_tuples.max(1);
            let mut offset = b * per_batch_data;
            let mut stride = per_batch_data;
            for j in 0..k {
                let dim = a.shape()[batch_dims + j];
                stride /= dim.max(1);
                let i = idx[t * k + j];
                let i = if i < 0 { i + dim as i64 } else { i };
                if !(0..dim as i64).contains(&i) {
                    return Err(format!(
                        "GatherND: index {i} out of range for a dim of {dim}"
                    ));
                }
                offset += i as usize * stride;
            }
            out.extend_from_slice(&flat[offset..offset + slice_len]);
        }
        ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
    }

    /// ONNX's `Expand`: broadcast to `shape` (the two broadcast together).
    pub fn expand<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> HostResult<ArrayD<T>> {
        let out = broadcast_shape(a.shape(), shape)?;
        Ok(a.broadcast(IxDyn(&out)).ok_or("expand failed")?.to_owned())
    }

    /// ONNX's `Tile`.
    pub fn tile<T: Clone>(a: &ArrayD<T>, repeats: &[usize]) -> HostResult<ArrayD<T>> {
        if repeats.len() != a.ndim() {
            return Err(format!(
                "Tile: {} repeats for rank {}",
                repeats.len(),
                a.ndim()
            ));
        }
        let mut out = a.clone();
        for (ax, &r) in repeats.iter().enumerate() {
            let views: Vec<_> = (0..r).map(|_| out.view()).collect();
            out = if r == 0 {
                let mut s = out.shape().to_vec();
                s[ax] = 0;
                ArrayD::from_shape_vec(IxDyn(&s), Vec::new()).map_err(|e| e.to_string())?
            } else {
                ndarray::concatenate(Axis(ax), &views).map_err(|e| e.to_string())?
            };
            if out.len() > MAX_COMPUTED_ELEMENTS {
                return Err("Tile: result too large".into());
            }
        }
        Ok(out)
    }

    /// Splits along `axis` into parts of the given sizes.
    pub fn split<T: Clone>(a: &ArrayD<T>, axis: usize, sizes: &[usize]) -> Vec<ArrayD<T>> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&s| {
                let part = a
                    .slice_axis(Axis(axis), NdSlice::from(start..start + s))
                    .to_owned();
                start += s;
                part
            })
            .collect()
    }
}
