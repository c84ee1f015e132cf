//! Burn 0.21 flex's `conv2d` against this crate's ([`FlexKernels`](influence_flex::FlexKernels)) on
//! the convolutions of the benchmark models (`influence-bench`'s workloads, one thread's
//! half of a call: 400 or 1,600 rows), and on a few other geometries.
//!
//! `cargo bench -p influence-flex --bench conv` prints, per case, the best of 5 calls of
//! each and the throughput in GFLOP/s (2 · multiply-adds / time).

use std::time::Instant;

use burn_backend::TensorData;
use burn_backend::ops::{ConvOptions, ModuleOps};
use burn_flex::{Flex, FlexTensor};
use influence_flex::InnerBackend;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn case(name: &str, [b, ci, h, w]: [usize; 4], co: usize, k: usize, s: usize, p: usize, d: usize) {
    let x = values(b * ci * h * w, 1);
    let wt = values(co * ci * k * k, 2);
    let bias = values(co, 3);
    let options = ConvOptions::new([s, s], [p, p], [d, d], 1);
    let tensors = || {
        (
            FlexTensor::from_data(TensorData::new(x.clone(), [b, ci, h, w])),
            FlexTensor::from_data(TensorData::new(wt.clone(), [co, ci, k, k])),
            Some(FlexTensor::from_data(TensorData::new(bias.clone(), [co]))),
        )
    };
    let (mut flex_s, mut ours_s) = (f64::MAX, f64::MAX);
    let (mut flex_y, mut ours_y) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (x, w, b) = tensors();
        let t = Instant::now();
        let y = <Flex as ModuleOps<Flex>>::conv2d(x, w, b, options.clone());
        flex_s = flex_s.min(t.elapsed().as_secs_f64());
        flex_y = y.into_data().to_vec::<f32>().unwrap();
        let (x, w, b) = tensors();
        let t = Instant::now();
        let y = <InnerBackend as ModuleOps<InnerBackend>>::conv2d(x, w, b, options.clone());
        ours_s = ours_s.min(t.elapsed().as_secs_f64());
        ours_y = y.into_data().to_vec::<f32>().unwrap();
    }
    let out_hw = flex_y.len() / (b * co);
    let gflop = 2.0 * (b * co * out_hw * ci * k * k) as f64 / 1e9;
    let max_diff = flex_y
        .iter()
        .zip(&ours_y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{name:<22} flex {flex_s:>8.4} s {:>5.0} GFLOP/s   ours {ours_s:>8.4} s {:>5.0} GFLOP/s   {:>4.2}x   max |diff| {max_diff:.1e}",
        gflop / flex_s,
        gflop / ours_s,
        flex_s / ours_s,
    );
}

fn main() {
    println!(
        "conv2d, best of 5 calls, {} rayon threads",
        rayon::current_num_threads()
    );
    case("cifar_cnn conv1", [400, 3, 32, 32], 32, 3, 1, 1, 1);
    case("cifar_cnn conv2", [400, 32, 32, 32], 32, 3, 1, 1, 1);
    case("cifar_cnn conv3", [400, 32, 16, 16], 64, 3, 1, 1, 1);
    case("digits_cnn conv1", [1600, 1, 8, 8], 16, 3, 1, 1, 1);
    case("digits_cnn conv2", [1600, 16, 8, 8], 32, 3, 1, 1, 1);
    case("stride 2", [64, 16, 33, 33], 24, 3, 2, 0, 1);
    case("dilation 2", [64, 16, 20, 20], 24, 3, 1, 2, 2);
    case("5x5 stride 2", [32, 5, 28, 28], 7, 5, 2, 3, 1);
    case("one 224x224 image", [1, 64, 224, 224], 64, 3, 1, 1, 1);
}
