#!/usr/bin/env python3
"""Reference values for the ResNet-18 tests: torchvision's resnet18 with the seeded random
weights of fixture.py (every BatchNorm with random running statistics, eval()), explained
by Captum's InternalInfluence in float64 (the reference) and in float32 (PyTorch's own
float32 error, which the tests compare ours with).

Needs: pip install torch torchvision captum safetensors numpy   (CPU is enough)
usage: python3 scripts/resnet18/reference.py [--out tests/fixtures/resnet18]
Writes, into --out:
  reference.json           cases (layer, side, size, n_steps, targets), PyTorch's float32
                           error per case, the f64 logits' top-2 margins, the state-dict manifest
  cases_<size>.safetensors float64 attributions, one tensor per case (named by the case),
                           and the float64 logits ("logits")
"""
import argparse, json, os, sys, time

import numpy as np
import torch, torchvision
from captum.attr import InternalInfluence
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import weights, images  # noqa: E402

SEED = 0
BATCH = 2
N_STEPS = 50
# (size, layer, attribute_to_layer_input): the three cases at full size, and the
# nesting of torchvision's names (a stage, a block, a module inside it, the shortcut, both
# sides) at a small size.
CASES = [
    (224, "layer2", False),
    (224, "layer3.0.conv1", False),
    (224, "layer4", True),
    (224, "layer3", False),
    (64, "conv1", False),
    (64, "maxpool", False),
    (64, "layer1.1.bn2", False),
    (64, "layer3", False),
    (64, "layer3", True),
    (64, "layer3.0", True),
    (64, "layer3.0.conv1", True),
    (64, "layer3.0.conv2", False),
    (64, "layer3.0.downsample", False),
    (64, "layer3.0.downsample.0", True),
    (64, "layer3.1", False),
    (64, "layer4", True),
    (64, "avgpool", False),
    (64, "fc", True),
]


def build(dtype):
    m = torchvision.models.resnet18()
    sd = m.state_dict()
    w = weights([(k, tuple(v.shape)) for k, v in sd.items()], SEED)
    m.load_state_dict({k: (torch.from_numpy(w[k]) if k in w else v) for k, v in sd.items()})
    return m.eval().to(dtype)


def module(m, name):
    return dict(m.named_modules())[name]


def case_name(size, layer, inp):
    return f"{size}/{layer}/{'input' if inp else 'output'}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/resnet18")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    m64, m32 = build(torch.float64), build(torch.float32)
    meta = {
        "generator": "scripts/resnet18/reference.py",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "captum": __import__("captum").__version__,
        "seed": SEED, "batch": BATCH, "n_steps": N_STEPS, "method": "gausslegendre",
        "state_dict": [[k, list(v.shape)] for k, v in m64.state_dict().items()
                       if not k.endswith("num_batches_tracked")],
        "sizes": {}, "cases": [],
    }
    for size in sorted({c[0] for c in CASES}):
        x32 = torch.from_numpy(images(BATCH, size, SEED))
        x64 = x32.double()
        with torch.no_grad():
            logits = m64(x64)
            logits32 = m32(x32)
        top2 = logits.topk(2, dim=1).values
        target = logits.argmax(1)
        tensors = {"logits": logits.numpy()}
        meta["sizes"][str(size)] = {
            "targets": target.tolist(),
            "top2_margin": (top2[:, 0] - top2[:, 1]).tolist(),
            "torch_f32_logits_error": (logits32.double() - logits).abs().max().item(),
        }
        for (s, layer, inp) in CASES:
            if s != size:
                continue
            t0 = time.time()
            ref = InternalInfluence(m64, module(m64, layer)).attribute(
                x64, target=target, n_steps=N_STEPS, method="gausslegendre",
                attribute_to_layer_input=inp)
            f32 = InternalInfluence(m32, module(m32, layer)).attribute(
                x32, target=target, n_steps=N_STEPS, method="gausslegendre",
                attribute_to_layer_input=inp)
            scale = ref.abs().max().item()
            err = (f32.double() - ref).abs().max().item() / scale
            name = case_name(size, layer, inp)
            tensors[name] = ref.numpy()
            meta["cases"].append({
                "name": name, "size": size, "layer": layer, "attribute_to_layer_input": inp,
                "shape": list(ref.shape), "max_abs": scale, "torch_f32_error": err,
            })
            print(f"{name:<32} max|ref| {scale:.3e}  torch f32 error {err:.2e}  ({time.time() - t0:.0f} s)",
                  flush=True)
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                  os.path.join(a.out, f"cases_{size}.safetensors"))
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
