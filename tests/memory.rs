//! Memory stays flat: over many calls, many of them failing with a typed error (1,000 in a
//! row), on a model with a branch after the explained layer that the target does not use; and
//! peak memory follows `internal_batch_size`, not `n_steps`.
//!
//! A counting global allocator (`common/heap.rs`) measures the bytes this process holds.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend as BackendTrait;
use burn::tensor::{Distribution, Tensor};
use burn_influence::{AnyTensor, InfluenceError, InternalInfluence, LayerProbe, Probe};
mod common;
use common::{Backend, device};
#[path = "common/heap.rs"]
mod heap;
use heap::{live_mib, peak_during};

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

/// `Linear(64→128)`, the explained layer, then two heads: the output, and an auxiliary
/// branch (an LSTM-style state, attention weights kept for inspection) that the forward
/// computes and drops.
#[derive(Module, Debug)]
struct TwoHeads<B: BackendTrait> {
    fc: Linear<B>,
    head: Linear<B>,
    aux1: Linear<B>,
    aux2: Linear<B>,
}

impl<B: BackendTrait> TwoHeads<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            fc: LinearConfig::new(64, 128).init(device),
            head: LinearConfig::new(128, 10).init(device),
            aux1: LinearConfig::new(128, 256).init(device),
            aux2: LinearConfig::new(256, 256).init(device),
        }
    }
}

impl<B: BackendTrait> LayerProbe<B> for TwoHeads<B> {
    type Inputs = Tensor<B, 2>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["fc".into()]
    }

    fn forward_probed(&self, x: Tensor<B, 2>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        let h = probe.layer("fc", x, |x| relu(self.fc.forward(x)));
        let _state = self.aux2.forward(relu(self.aux1.forward(h.clone())));
        self.head.forward(h).into()
    }
}

#[test]
fn memory_is_flat_over_calls_and_follows_the_chunk() {
    let device = device();
    let model = TwoHeads::<Backend>::new(&device);
    let ii = InternalInfluence::new(&model, "fc").unwrap();
    let x = Tensor::<Backend, 2>::random([16, 64], Distribution::Normal(0.0, 1.0), &device);
    let targets: Vec<usize> = (0..16).map(|i| i % 10).collect();
    let bad_inputs = Tensor::<Backend, 2>::random([16, 63], Distribution::Default, &device);
    let nan_inputs = x.clone().div_scalar(0.0);
    // One call: `kind` 0 succeeds; 1, 2 and 3 fail with a typed error, before (target out of
    // range, inputs that do not fit the model) or after (NaN inputs) the passes.
    let call = |kind: usize| {
        let inputs = match kind {
            2 => bad_inputs.clone(),
            3 => nan_inputs.clone(),
            _ => x.clone(),
        };
        let target = if kind == 1 {
            vec![10; 16]
        } else {
            targets.clone()
        };
        let r = ii
            .attribute(inputs)
            .target(target)
            .n_steps(20)
            .internal_batch_size(64)
            .run();
        match (kind, r) {
            (0, Ok(a)) => drop(a.to_vec().unwrap()),
            (1, Err(InfluenceError::TargetOutOfRange { .. }))
            | (2, Err(InfluenceError::Forward { .. }))
            | (3, Err(InfluenceError::NonFinite { .. })) => {}
            (kind, r) => panic!("call of kind {kind} gave {r:?}"),
        }
    };
    // Warm up: backend caches, thread pools, the allocator's own state.
    for i in 0..40 {
        call(i % 4);
    }
    let start = live_mib();
    // 1,000 failing calls in a row (no successful backward pass in between), then 1,000
    // calls alternating between success and each kind of failure.
    for i in 0..1000 {
        call(1 + i % 3);
    }
    let after_failures = live_mib();
    for i in 0..1000 {
        call(i % 4);
    }
    let end = live_mib();
    println!(
        "live heap: {start:.2} MiB after warm-up, {after_failures:.2} after 1000 failing calls, {end:.2} after 1000 mixed calls"
    );
    assert!(
        after_failures - start < 2.0,
        "live heap grew by {:.2} MiB over 1000 failing calls",
        after_failures - start
    );
    assert!(
        end - start < 2.0,
        "live heap grew by {:.2} MiB over 2000 calls",
        end - start
    );

    // Peak memory follows the chunk (one step of 16 rows), not n_steps.
    let run = |n_steps: usize| {
        drop(
            ii.attribute(x.clone())
                .target(targets.clone())
                .n_steps(n_steps)
                .internal_batch_size(16)
                .run()
                .unwrap()
                .to_vec()
                .unwrap(),
        )
    };
    let small = peak_during(|| run(50));
    let large = peak_during(|| run(2000));
    println!("peak above baseline: {small:.2} MiB at n_steps 50, {large:.2} MiB at n_steps 2000");
    assert!(
        large < small + 2.0,
        "peak grew from {small:.2} MiB (n_steps 50) to {large:.2} MiB (n_steps 2000)"
    );
    let after = live_mib();
    assert!(
        after - start < 2.0,
        "live heap grew by {:.2} MiB",
        after - start
    );
}
