#!/usr/bin/env python3
"""Golden cases for NoiseTunnel (tests/fixtures/golden/noise_tunnel/, run by tests/golden.rs on
every backend): Captum 0.9's NoiseTunnel around
InternalInfluence (smoothgrad, smoothgrad_sq, vargrad), in float64, on four golden models
(tests/fixtures/golden/internal_influence: two CNNs, an MLP and a 1-D CNN, each with its own
inputs, baselines, target and quadrature; between them a scalar baseline, baselines with one
row per example and one broadcast row, and index-tuple, per-example and per-example-tuple
targets, which the tunnel repeats for every noisy copy), with noise drawn here from a seeded torch generator
and handed to Captum in place of its own draw (torch.normal), so that the Rust test can give
the same noise (NoiseTunnel::given).

Needs: pip install torch captum numpy   (CPU is enough)
usage: python3 scripts/noise_tunnel/reference.py [--out tests/fixtures/golden/noise_tunnel]
Writes one file per case, in the golden format (tests/fixtures/golden/README.md): the golden
case it comes from (model, inputs, baselines, target, layer, n_steps, method), with
`noise_tunnel` {nt_type, stdev, noise {shape [nt_samples, batch, ...], data}} (sample-major:
noise[s, i] is added to example i in noisy copy s), Captum's float64 `expected`, PyTorch's own
float32 error `float32_max_abs_err`, and the tolerance max(2e-5 * max|expected|,
min(1e-6, 10 * float32_max_abs_err), 1e-9).
"""
import argparse, json, os, sys

import torch
import captum
import captum.attr._core.noise_tunnel as nt_module
from captum.attr import InternalInfluence, NoiseTunnel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from golden_models import baselines_of, build, target_of, tensor  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden", "internal_influence")
CASES = [
    # (golden file, nt_samples, stdev, layer: None for the golden case's own)
    ("g020_cnn_out4d_conv1_riemann_left_3.json", 5, 0.3, None),
    ("g032_mlp_deep_act1_gausslegendre_64.json", 4, 0.5, None),
    # Its own layer, conv2, is the output (a one-hot influence): a hidden one instead.
    ("g008_cnn_out4d_conv2_gausslegendre_1.json", 3, 0.25, "conv1"),
    ("g004_conv1d_act1_gausslegendre_64.json", 3, 0.2, None),
]
NT_TYPES = ["smoothgrad", "smoothgrad_sq", "vargrad"]
SEED = 7


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "golden", "noise_tunnel"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    written = 0
    gen = torch.Generator().manual_seed(SEED)
    real_normal = torch.normal
    for name, nt_samples, stdev, layer in CASES:
        with open(os.path.join(GOLDEN, name)) as f:
            case = json.load(f)
        case = case[0] if isinstance(case, list) else case
        if layer is not None:
            case["layer"] = layer
        model = build(case)
        x = tensor(case["inputs"])
        batch = x.shape[0]
        for nt_type in NT_TYPES:
            noise = torch.randn((nt_samples,) + tuple(x.shape), generator=gen, dtype=torch.float64) * stdev
            # Captum adds torch.normal(0, stdev, size=[batch * nt_samples, ...]) to the inputs
            # repeated with repeat_interleave (row i * nt_samples + s is example i, copy s).
            interleaved = noise.transpose(0, 1).reshape((batch * nt_samples,) + tuple(x.shape[1:]))
            def run(dtype):
                calls = []
                noisy = interleaved.to(dtype)

                def given_normal(mean, std):
                    # Captum calls torch.normal(0, stdev_expanded), a tensor of the stdev per
                    # value of the repeated inputs.
                    calls.append(tuple(std.shape))
                    assert tuple(std.shape) == tuple(noisy.shape), (std.shape, noisy.shape)
                    assert torch.allclose(std.double(), torch.full(std.shape, stdev, dtype=torch.float64)) and mean == 0
                    return noisy.clone()

                m = model.to(dtype)
                b = baselines_of(case["baselines"])
                if isinstance(b, torch.Tensor):
                    b = b.to(dtype)
                nt_module.torch.normal = given_normal
                try:
                    ii = InternalInfluence(m, getattr(m, case["layer"]))
                    attr = NoiseTunnel(ii).attribute(
                        x.to(dtype), nt_type=nt_type, nt_samples=nt_samples, stdevs=stdev,
                        baselines=b, target=target_of(case["target"]),
                        n_steps=case["n_steps"], method=case["method"],
                        internal_batch_size=case["internal_batch_size"],
                        attribute_to_layer_input=case["attribute_to_layer_input"])
                finally:
                    nt_module.torch.normal = real_normal
                    model.double()
                assert len(calls) == 1, calls
                return attr.detach().double()

            attr = run(torch.float64)
            f32_err = (run(torch.float32) - attr).abs().max().item()
            scale = attr.abs().max().item()
            out = dict(case)
            out["name"] = f"nt_{nt_type}_{case['name']}"
            out["reference"] = (f"Captum {captum.__version__} NoiseTunnel(InternalInfluence), "
                                f"float64, given noise (scripts/noise_tunnel/reference.py)")
            out["noise_tunnel"] = {
                "nt_type": nt_type,
                "stdev": stdev,
                "noise": {"shape": list(noise.shape), "data": noise.flatten().tolist()},
            }
            out["expected"] = {"shape": list(attr.shape), "data": attr.flatten().tolist()}
            out["float32_max_abs_err"] = f32_err
            # The golden files' rule, max(2e-5 * max|expected|, 1e-6), without its floor where
            # the values are small (vargrad): 10x PyTorch's own float32 error instead.
            out["tolerance"] = {"abs": max(2e-5 * scale, min(1e-6, 10 * f32_err), 1e-9),
                                "note": "|actual - expected| <= abs, elementwise"}
            path = os.path.join(args.out, out["name"] + ".json")
            with open(path, "w") as f:
                json.dump(out, f)
            written += 1
            print(f"{out['name']}: |attr| max {scale:.3e}, PyTorch float32 error {f32_err:.2e}")
    print(f"wrote {written} cases to {args.out}")


if __name__ == "__main__":
    main()
