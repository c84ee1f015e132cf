#!/usr/bin/env python3
"""The ResNet-18 precision study (docs/backends.md, "Precision on deep networks"): how far
float32 activations sit from float64 ones, ours against PyTorch's, on the seeded ResNet-18 of
fixture.py at points of the path from a zero baseline (the inputs scaled by alpha).

The attribution of a deep ReLU network in float32 differs from float64 mostly where a unit's
input is within rounding of zero at some quadrature point and float32 puts it on the other
side of the kink. How often that happens follows how far the float32 forward is from the
float64 one: this compares that distance, layer by layer, and counts the sign flips of the
activations that feed a ReLU.

usage:
  cargo run --release --bin influence-bench -- --dump-activations /tmp/ours.safetensors [--backend B] [--size 224]
  python3 scripts/resnet18/precision_study.py /tmp/ours.safetensors [--size 224]
Needs: torch, torchvision, safetensors, numpy.
"""
import argparse, os, sys

import numpy as np
import torch, torchvision
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import weights, images  # noqa: E402


def build(dtype):
    m = torchvision.models.resnet18()
    sd = m.state_dict()
    w = weights([(k, tuple(v.shape)) for k, v in sd.items()], 0)
    m.load_state_dict({k: (torch.from_numpy(w[k]) if k in w else v) for k, v in sd.items()})
    return m.eval().to(dtype)


def activations(model, x, layers):
    out, hooks = {}, []
    mods = dict(model.named_modules())
    for name in layers:
        hooks.append(mods[name].register_forward_hook(
            lambda m, i, o, name=name: out.__setitem__(name, o.detach().double().numpy().copy())))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    ours = load_file(a.ours)
    alphas = sorted({k.split("/")[0] for k in ours}, key=float, reverse=True)
    layers = [k.split("/", 1)[1] for k in ours if k.startswith(alphas[0] + "/")]
    m64, m32 = build(torch.float64), build(torch.float32)
    x = torch.from_numpy(images(2, a.size, 0))
    print(f"{'alpha':>5} {'layer':<14} {'rms_ours':>9} {'rms_torch':>9} {'max_ours':>9} {'max_torch':>9}"
          f" {'flips_ours':>10} {'flips_torch':>11}")
    totals = {"ours": 0, "torch": 0}
    for alpha in alphas:
        xa = (float(alpha) * x.double()).float()  # the float32 input both sides see
        ref = activations(m64, xa.double(), layers)
        t32 = activations(m32, xa, layers)
        for layer in layers:
            r = ref[layer]
            o = ours[f"{alpha}/{layer}"].astype(np.float64).reshape(r.shape)
            t = t32[layer]
            scale_rms = np.sqrt(np.mean(r ** 2))
            scale_max = np.abs(r).max()
            rms = lambda v: np.sqrt(np.mean((v - r) ** 2)) / scale_rms
            mx = lambda v: np.abs(v - r).max() / scale_max
            # Sign flips of an activation that feeds a ReLU: float32 on the other side of 0.
            feeds_relu = layer.endswith("bn1")
            flips = lambda v: int(np.sum(np.sign(v) != np.sign(r))) if feeds_relu else 0
            fo, ft = flips(o), flips(t)
            totals["ours"] += fo
            totals["torch"] += ft
            print(f"{alpha:>5} {layer:<14} {rms(o):9.2e} {rms(t):9.2e} {mx(o):9.2e} {mx(t):9.2e}"
                  f" {fo if feeds_relu else '':>10} {ft if feeds_relu else '':>11}")
    print(f"sign flips before a ReLU, all layers and points: ours {totals['ours']}, PyTorch {totals['torch']}")


if __name__ == "__main__":
    main()
