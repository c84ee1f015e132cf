#!/usr/bin/env python3
"""Exact Internal Influence references for piecewise-linear networks (issue #27), in float64,
computed independently of the library: tests/fixtures/exact/.

For a network built from affine maps (linear, convolution, average pooling, BatchNorm in
inference mode, dropout in inference mode, flatten) and piecewise-linear functions (ReLU, max
pooling), the straight path x(α) = x' + α (x − x') crosses finitely many regions on which the
network is affine; on each the gradient of the target output with respect to a hidden layer
is constant, so

    Internal Influence = ∫₀¹ ∂F_t/∂h (x(α)) dα = Σ_pieces (α_{i+1} − α_i) · ∂F_t/∂h (x(mid_i)).

The partition is computed analytically, layer by layer (ExactLine, Sotoudeh & Thakur,
NeurIPS 2019): with the breakpoints of every earlier nonlinearity inserted, the input of the
next one is affine on each segment, so its values at the segment's ends give every crossing:
a ReLU input's zero, or, for a max-pool window, the point where another element overtakes the
current maximum (kept only where the two are the window's maximum there). The gradients at
the pieces' midpoints come from PyTorch's autograd in float64.

Each fixture is a golden case (tests/fixtures/golden/README.md format: model, inputs,
baselines, target, layer, attribute_to_layer_input) with:
- `expected`: the exact attribution; `pieces`: the number of affine pieces per example;
- `breakpoints`: per example, the interior breakpoints α (sorted);
- `riemann_100k_max_abs_diff`: the largest difference from a 100,000-step midpoint Riemann
  sum in float64, and `riemann_100k_bound`, that sum's own error bound for a piecewise-constant
  integrand (pieces × largest jump / 100,000, summed over the breakpoints); the script fails
  when the difference exceeds the bound;
- `captum_default_rel_err`: Captum 0.9's InternalInfluence at its defaults (Gauss-Legendre,
  50 steps), float64, against the exact value, relative to max|expected|; and
  `case_quadrature_rel_err`: the golden case's own Captum value (its `n_steps` and `method`)
  against the exact one;
- `tolerance.abs`: max(2e-5 · max|expected|, 1e-6), as the golden files;
- `output_difference`: F_target(x) − F_target(x') per example;
- `layer_conductance`: the exact Layer Conductance on the same partition, Σ_pieces
  ∂F_t/∂h(mid) · (h(end) − h(start)) (`expected`, `tolerance`, `captum_default_rel_err` of
  Captum's LayerConductance at its defaults); the script fails unless it sums to
  `output_difference` within 1e-9 (completeness: every golden model is sequential, so h is
  a cut);
- `layer_integrated_gradients`: the exact Layer Integrated Gradients (multiply_by_inputs):
  the path h(x') + β (h(x) − h(x')) in the layer's space through the network above the
  layer, partitioned the same way (`pieces`, `breakpoints` in β), times h(x) − h(x')
  (`expected`, `tolerance`, `captum_default_rel_err`); the script fails unless it sums to
  `output_difference` within 1e-9.

`not_piecewise_linear.json` lists the golden cases whose models are not piecewise linear, each
with its first layer that is not (the exact method must refuse them with a typed error).

Three cases are made here rather than taken from the golden set, for the edge cases: ties
(a zero baseline with zero biases, where every pre-activation is zero at α = 0 and none crosses
inside), duplicate breakpoints (two hidden units with the same weights, so two crossings at the
same α), and a deeper MLP (many pieces).

Needs: pip install torch captum numpy   (CPU is enough)
usage: python3 scripts/exact/reference.py [--out tests/fixtures/exact]
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import captum
from captum.attr import InternalInfluence, LayerConductance, LayerIntegratedGradients

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from golden_models import baselines_of, build, load_case, target_of, tensor  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden")
AFFINE = {"linear", "conv2d", "conv1d", "avg_pool2d", "flatten", "batch_norm", "dropout"}
PIECEWISE = {"relu", "max_pool2d"}
RIEMANN_STEPS = 100_000
# Breakpoints closer than this (in α) are one: the same crossing found twice, or two units
# that cross together.
MERGE = 1e-13
# Breakpoints evaluated per forward of the reference (memory).
CHUNK = 128


def layers_of(model):
    return list(model.named_children())


def baseline_rows(case, x):
    """The baseline of each example, shaped like `x`."""
    b = baselines_of(case["baselines"])
    if b is None:
        return torch.zeros_like(x)
    if isinstance(b, float) or isinstance(b, int):
        return torch.full_like(x, float(b))
    return b.expand_as(x).clone()


def target_rows(case, batch):
    """The target of each example: an index tuple into the output's dims 1.., or () for none."""
    t = target_of(case["target"])
    if t is None:
        return [()] * batch
    if isinstance(t, int):
        return [(t,)] * batch
    if isinstance(t, tuple):
        return [t] * batch
    return [(v,) if isinstance(v, int) else tuple(v) for v in t]


def crossings_relu(alphas, z):
    """Interior zeros of each unit, affine between consecutive breakpoints.

    z: [n, units], the ReLU's input at the n breakpoints `alphas`."""
    a, b = z[:-1], z[1:]
    mask = a * b < 0
    t = np.where(mask, a / np.where(mask, a - b, 1.0), 0.0)
    at = alphas[:-1, None] + (alphas[1:] - alphas[:-1])[:, None] * t
    return at[mask]


def crossings_max_pool(alphas, z, kernel, stride):
    """Where a max-pool window's maximum changes hands, affine between breakpoints.

    z: [n, C, H, W] at the breakpoints. For each pair of elements of a window, the point where
    they are equal, kept when both are the window's maximum there."""
    zt = torch.tensor(z)
    win = zt.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    win = win.reshape(win.shape[0], -1, kernel[0] * kernel[1]).numpy()  # [n, windows, k]
    a, b = win[:-1], win[1:]  # ends of each segment
    k = win.shape[2]
    out = []
    for i in range(k):
        for j in range(i + 1, k):
            da, db = a[..., i] - a[..., j], b[..., i] - b[..., j]
            mask = da * db < 0
            t = np.where(mask, da / np.where(mask, da - db, 1.0), 0.0)  # [n-1, windows]
            vals = a + t[..., None] * (b - a)  # every element at the crossing
            top = vals.max(axis=2)
            here = np.maximum(vals[..., i], vals[..., j])
            keep = mask & (here >= top - 1e-12 * (1 + np.abs(top)))
            at = alphas[:-1, None] + (alphas[1:] - alphas[:-1])[:, None] * t
            out.append(at[keep])
    return np.concatenate(out) if out else np.array([])


def merge(alphas):
    alphas = np.sort(alphas)
    keep = [alphas[0]]
    for v in alphas[1:]:
        if v - keep[-1] > MERGE:
            keep.append(v)
    if keep[-1] != 1.0:
        keep[-1] = 1.0
    return np.array(keep)


def partition(model, x0, x1):
    """The breakpoints 0 = α_0 < ... < α_n = 1 of one example's path (x0: baseline, x1: input,
    each [1, ...]), between which the network is affine."""
    alphas = np.array([0.0, 1.0])
    layers = layers_of(model)
    for i, (name, layer) in enumerate(layers):
        kind = layer_type(layer)
        if kind in AFFINE:
            continue
        if kind not in PIECEWISE:
            raise NotPiecewiseLinear(name, kind)
        # The nonlinearity's input at the breakpoints, a chunk at a time (consecutive chunks
        # share their boundary point, so every segment is seen once).
        found = []
        for c0 in range(0, len(alphas) - 1, CHUNK):
            part = alphas[c0:c0 + CHUNK + 1]
            with torch.no_grad():
                pts = x0 + torch.tensor(part).reshape((-1,) + (1,) * (x0.dim() - 1)) * (x1 - x0)
                h = pts
                for _, before in layers[:i]:
                    h = before(h)
                z = h.numpy()
            if kind == "relu":
                found.append(crossings_relu(part, z.reshape(len(part), -1)))
            else:
                ks, st = layer.kernel_size, layer.stride
                ks = (ks, ks) if isinstance(ks, int) else tuple(ks)
                st = (st, st) if isinstance(st, int) else tuple(st)
                found.append(crossings_max_pool(part, z, ks, st))
        new = np.concatenate(found)
        alphas = merge(np.concatenate([alphas, new]))
    return alphas


class NotPiecewiseLinear(Exception):
    def __init__(self, name, kind):
        super().__init__(f"{name} ({kind})")
        self.name, self.kind = name, kind


def layer_type(layer):
    return {
        torch.nn.Linear: "linear", torch.nn.Conv2d: "conv2d", torch.nn.Conv1d: "conv1d",
        torch.nn.AvgPool2d: "avg_pool2d", torch.nn.Flatten: "flatten",
        torch.nn.BatchNorm1d: "batch_norm", torch.nn.BatchNorm2d: "batch_norm",
        torch.nn.Dropout: "dropout", torch.nn.ReLU: "relu", torch.nn.MaxPool2d: "max_pool2d",
        torch.nn.Tanh: "tanh", torch.nn.Sigmoid: "sigmoid", torch.nn.GELU: "gelu",
        torch.nn.Softmax: "softmax", torch.nn.LayerNorm: "layer_norm",
    }[type(layer)]


def layer_gradients(model, layer_name, input_side, points, target):
    """∂F_target/∂h at each row of `points` ([m, ...]): [m, ...h]."""
    layer = dict(model.named_children())[layer_name]
    seen = {}

    def hook(mod, inp, out):
        v = inp[0] if input_side else out
        seen["h"] = v
        return None

    if input_side:
        handle = layer.register_forward_pre_hook(lambda mod, inp: hook(mod, inp, None))
    else:
        handle = layer.register_forward_hook(hook)
    try:
        x = points.clone().requires_grad_(True)
        out = model(x)
        sel = out
        for idx in target:
            sel = sel[:, idx]
        sel = sel.reshape(sel.shape[0], -1).sum()
        (g,) = torch.autograd.grad(sel, seen["h"])
    finally:
        handle.remove()
    return g.detach()


def gradients_chunked(model, layer_name, input_side, points, target, chunk=512):
    """layer_gradients over `points` a chunk at a time (memory)."""
    return torch.cat([layer_gradients(model, layer_name, input_side, points[c:c + chunk], target)
                      for c in range(0, points.shape[0], chunk)])


def layer_values(model, layer_name, input_side, points, chunk=512):
    """The layer's tensor h at each row of `points` ([m, ...]): [m, ...h], no gradient."""
    layer = dict(model.named_children())[layer_name]
    out = []

    def hook(mod, inp, o):
        out.append((inp[0] if input_side else o).detach())

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for c in range(0, points.shape[0], chunk):
                model(points[c:c + chunk])
    finally:
        handle.remove()
    return torch.cat(out)


def selected(out, target):
    """The explained output of each row: the target's element (or the sum of the row)."""
    sel = out
    for idx in target:
        sel = sel[:, idx]
    return sel.reshape(sel.shape[0], -1).sum(1)


def upper_net(model, layer_name, input_side):
    """The network above the layer's tensor: the layer and what follows it (input side), or
    what follows it (output side). The golden models are sequential, so this is all of F's
    dependence on h."""
    children = list(model.named_children())
    i = [n for n, _ in children].index(layer_name)
    return torch.nn.Sequential(OrderedDict(children[i if input_side else i + 1:])).eval()


def input_gradients(net, points, target, chunk=512):
    """∂F_target/∂z of `net` at each row of `points`."""
    out = []
    for c in range(0, points.shape[0], chunk):
        z = points[c:c + chunk].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(selected(net(z), target).sum(), z)
        out.append(g.detach())
    return torch.cat(out)


def exact_case(case):
    model = build(case)
    x = tensor(case["inputs"])
    base = baseline_rows(case, x)
    targets = target_rows(case, x.shape[0])
    side = case["attribute_to_layer_input"]
    rows, pieces, breaks, riemann, bounds = [], [], [], [], []
    lc_rows, lig_rows, lig_pieces, lig_breaks, deltas = [], [], [], [], []
    upper = upper_net(model, case["layer"], side)
    for e in range(x.shape[0]):
        x0, x1 = base[e:e + 1], x[e:e + 1]
        alphas = partition(model, x0, x1)
        mids = (alphas[:-1] + alphas[1:]) / 2
        shape = (-1,) + (1,) * (x0.dim() - 1)
        pts = x0 + torch.tensor(mids).reshape(shape) * (x1 - x0)
        g = gradients_chunked(model, case["layer"], side, pts, targets[e])
        w = torch.tensor(alphas[1:] - alphas[:-1]).reshape((-1,) + (1,) * (g.dim() - 1))
        exact = (g * w).sum(0)
        rows.append(exact)
        with torch.no_grad():
            delta = (selected(model(x1), targets[e]) - selected(model(x0), targets[e])).item()
        deltas.append(delta)
        # Layer Conductance: on each piece h is affine and ∂F/∂h constant, so the flow through
        # each neuron is Σ_pieces ∂F/∂h(mid) · (h(end) − h(start)).
        h = layer_values(model, case["layer"], side,
                         x0 + torch.tensor(alphas).reshape(shape) * (x1 - x0))
        lc = (g * (h[1:] - h[:-1])).sum(0)
        assert abs(lc.sum().item() - delta) <= 1e-9 * (1 + abs(delta)), \
            f"{case['name']} example {e}: conductance sums to {lc.sum().item()}, F(x) - F(x') = {delta}"
        lc_rows.append(lc)
        # Layer Integrated Gradients (multiply_by_inputs): the path in the layer's space,
        # h(x') + β (h(x) − h(x')), through the network above the layer, partitioned the same
        # way; (h(x) − h(x')) times the integral of its gradient.
        h0, h1 = h[:1], h[-1:]
        betas = partition(upper, h0, h1)
        bmids = (betas[:-1] + betas[1:]) / 2
        hshape = (-1,) + (1,) * (h0.dim() - 1)
        gu = input_gradients(upper, h0 + torch.tensor(bmids).reshape(hshape) * (h1 - h0), targets[e])
        wu = torch.tensor(betas[1:] - betas[:-1]).reshape(hshape)
        lig = (h1 - h0)[0] * (gu * wu).sum(0)
        assert abs(lig.sum().item() - delta) <= 1e-9 * (1 + abs(delta)), \
            f"{case['name']} example {e}: LIG sums to {lig.sum().item()}, F(x) - F(x') = {delta}"
        lig_rows.append(lig)
        lig_pieces.append(len(betas) - 1)
        lig_breaks.append(betas[1:-1].tolist())
        pieces.append(len(alphas) - 1)
        breaks.append(alphas[1:-1].tolist())
        # 100,000-step midpoint rule in float64, in chunks.
        acc = torch.zeros_like(exact)
        for s in range(0, RIEMANN_STEPS, 20_000):
            a = (torch.arange(s, min(s + 20_000, RIEMANN_STEPS), dtype=torch.float64) + 0.5) / RIEMANN_STEPS
            acc += layer_gradients(model, case["layer"], side, x0 + a.reshape(shape) * (x1 - x0), targets[e]).sum(0)
        acc /= RIEMANN_STEPS
        riemann.append((acc - exact).abs().max().item())
        # Error bound: each breakpoint costs at most one step's share of the jump there.
        jumps = (g[1:] - g[:-1]).abs().reshape(len(mids) - 1, -1).max(1).values if len(mids) > 1 else torch.zeros(0)
        bounds.append(float(jumps.sum().item()) / RIEMANN_STEPS + 1e-10 * (1 + g.abs().max().item()))
    expected = torch.stack(rows)
    others = {
        "layer_conductance": {"expected": torch.stack(lc_rows)},
        "layer_integrated_gradients": {"expected": torch.stack(lig_rows), "pieces": lig_pieces,
                                       "breakpoints": lig_breaks},
        "output_difference": deltas,
    }
    return model, expected, pieces, breaks, riemann, bounds, others


def captum_rel_err(model, case, expected, n_steps=50, method="gausslegendre", cls=None):
    x = tensor(case["inputs"])
    layer = dict(model.named_children())[case["layer"]]
    attr = (cls or InternalInfluence)(model, layer).attribute(
        x, baselines=baselines_of(case["baselines"]), target=target_of(case["target"]),
        n_steps=n_steps, method=method, attribute_to_layer_input=case["attribute_to_layer_input"])
    scale = expected.abs().max().item()
    return (attr.detach() - expected).abs().max().item() / max(scale, 1e-300)


def synthetic_cases():
    """Cases made here for the edge cases (golden format)."""
    g = torch.Generator().manual_seed(27)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale)

    def td(t):
        return {"shape": list(t.shape), "data": t.flatten().tolist()}

    def linear(name, w, b):
        return {"name": name, "type": "linear", "in_features": w.shape[1], "out_features": w.shape[0],
                "weight": td(w), "bias": None if b is None else td(b)}

    def case(name, layers, inputs, baselines, target, layer):
        return {"name": name, "model": {"layers": layers}, "input_shape": list(inputs.shape[1:]),
                "layer": layer, "attribute_to_layer_input": False, "inputs": td(inputs),
                "baselines": baselines, "target": target, "n_steps": 50, "method": "gausslegendre",
                "internal_batch_size": None}

    out = []
    # Ties: zero baseline and zero biases; every pre-activation is 0 at α = 0 and keeps its sign
    # inside, so the path is one piece.
    w1, w2 = rnd(6, 4), rnd(3, 6)
    out.append(case("x_ties_zero_bias", [
        linear("fc1", w1, torch.zeros(6)), {"name": "act1", "type": "relu"},
        linear("fc2", w2, torch.zeros(3))], rnd(3, 4), None, {"index": 1}, "act1"))
    # Duplicate breakpoints: units 0 and 1 have the same weights and bias, so cross together.
    w1, b1 = rnd(5, 4), rnd(5, scale=0.5)
    w1[1], b1[1] = w1[0], b1[0]
    out.append(case("x_duplicate_units", [
        linear("fc1", w1, b1), {"name": "act1", "type": "relu"},
        linear("fc2", rnd(2, 5), rnd(2))], rnd(3, 4, scale=2.0),
        {"tensor": td(rnd(1, 4))}, {"per_example": [0, 1, 0]}, "act1"))
    # Deeper: three hidden ReLU layers of 24, many pieces.
    layers = [linear("fc1", rnd(24, 10, scale=0.6), rnd(24, scale=0.3)), {"name": "act1", "type": "relu"},
              linear("fc2", rnd(24, 24, scale=0.3), rnd(24, scale=0.3)), {"name": "act2", "type": "relu"},
              linear("fc3", rnd(24, 24, scale=0.3), rnd(24, scale=0.3)), {"name": "act3", "type": "relu"},
              linear("head", rnd(4, 24, scale=0.3), rnd(4))]
    out.append(case("x_deep_mlp", layers, rnd(4, 10, scale=1.5), {"scalar": -0.25},
                    {"per_example": [0, 1, 2, 3]}, "act1"))
    return out


def workloads(limit):
    """The benchmark workloads of scripts/captum_reference.py (digits_cnn, mlp_784, cifar_cnn:
    same architectures, batches and layers), seeded, float64: Captum's error at its defaults
    against the exact value (docs/quadrature.md's exact column)."""
    import time
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import captum_reference as cr

    rows = []
    for name in ("mlp_784", "digits_cnn", "cifar_cnn"):
        torch.manual_seed(0)
        model, x, layer = getattr(cr, name)()
        model = model.double().eval()
        x = x.double()[:limit.get(name)]
        with torch.no_grad():
            target = model(x).argmax(1).tolist()
        case = {"layer": layer, "attribute_to_layer_input": False, "target": {"per_example": target}}
        t0 = time.time()
        base = torch.zeros_like(x)
        exact, pieces = [], []
        for e in range(x.shape[0]):
            alphas = partition(model, base[e:e + 1], x[e:e + 1])
            mids = (alphas[:-1] + alphas[1:]) / 2
            shape = (-1,) + (1,) * (x.dim() - 1)
            g = gradients_chunked(model, layer, False, x[e:e + 1] * torch.tensor(mids).reshape(shape), (target[e],))
            w = torch.tensor(alphas[1:] - alphas[:-1]).reshape((-1,) + (1,) * (g.dim() - 1))
            exact.append((g * w).sum(0))
            pieces.append(len(alphas) - 1)
        exact = torch.stack(exact)
        secs = time.time() - t0
        ii = InternalInfluence(model, dict(model.named_children())[layer])
        errs = {}
        for n in (50, 2000):
            attr = ii.attribute(x, target=target, n_steps=n, method="gausslegendre",
                                internal_batch_size=x.shape[0] * 50).detach()
            d = (attr - exact).reshape(x.shape[0], -1).norm(dim=1)
            errs[n] = (d / exact.reshape(x.shape[0], -1).norm(dim=1)).max().item()
        p = sorted(pieces)
        row = {"workload": name, "batch": x.shape[0], "layer": layer,
               "pieces_min": p[0], "pieces_median": p[len(p) // 2], "pieces_max": p[-1],
               "captum_gl50_err": errs[50], "captum_gl2000_err": errs[2000],
               "reference_seconds": secs}
        rows.append(row)
        print(json.dumps(row))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "exact"))
    ap.add_argument("--workloads", action="store_true",
                    help="instead of the fixtures: Captum's error at its defaults on the benchmark "
                         "workloads against the exact value, written to docs/quadrature-exact.json")
    ap.add_argument("--limit", action="append", default=[], metavar="WORKLOAD=N",
                    help="with --workloads: only the first N examples of WORKLOAD (the reference "
                         "takes minutes per example where the path has thousands of pieces)")
    args = ap.parse_args()
    if args.workloads:
        rows = workloads({k: int(v) for k, v in (a.split("=") for a in args.limit)})
        with open(os.path.join(ROOT, "docs", "quadrature-exact.json"), "w") as f:
            json.dump({"note": "scripts/exact/reference.py --workloads: Captum 0.9 InternalInfluence "
                               "(Gauss-Legendre, float64) against the exact integral; error = the largest "
                               "per-example relative L2 error; seeded torch models of "
                               "scripts/captum_reference.py (torch.manual_seed(0))",
                       "captum": captum.__version__, "torch": torch.__version__, "rows": rows}, f, indent=1)
        return
    os.makedirs(args.out, exist_ok=True)
    refused, written = [], 0
    sources = []
    for d in ("internal_influence", "internal_influence_train_mode"):
        for f in sorted(os.listdir(os.path.join(GOLDEN, d))):
            if f.endswith(".json"):
                sources.append((d, load_case(os.path.join(GOLDEN, d, f))))
    sources += [("synthetic", c) for c in synthetic_cases()]
    for source, case in sources:
        model = build(case)
        first = next(((n, layer_type(m)) for n, m in model.named_children()
                      if layer_type(m) not in AFFINE | PIECEWISE), None)
        if first is not None:
            refused.append({"case": case["name"], "source": source, "layer": first[0], "type": first[1]})
            continue
        model, expected, pieces, breaks, riemann, bounds, others = exact_case(case)
        for e, (d, bnd) in enumerate(zip(riemann, bounds)):
            assert d <= bnd, f"{case['name']} example {e}: Riemann 100k differs by {d} > bound {bnd}"
        out = dict(case)
        out["source"] = source
        out["reference"] = ("exact piecewise-linear integral, float64 (ExactLine partition, "
                            "PyTorch autograd at the pieces' midpoints; scripts/exact/reference.py)")
        out["expected"] = {"shape": list(expected.shape), "data": expected.flatten().tolist()}
        out["pieces"] = pieces
        out["breakpoints"] = breaks
        out["riemann_100k_max_abs_diff"] = max(riemann)
        out["riemann_100k_bound"] = max(bounds)
        out["captum_default_rel_err"] = captum_rel_err(model, case, expected)
        if source != "synthetic" and case.get("expected") is not None:
            golden = tensor(case["expected"])
            scale = expected.abs().max().item()
            out["case_quadrature_rel_err"] = (golden - expected).abs().max().item() / max(scale, 1e-300)
        scale = expected.abs().max().item()
        out["tolerance"] = {"abs": max(2e-5 * scale, 1e-6), "note": "|actual - expected| <= abs, elementwise"}
        out["output_difference"] = others["output_difference"]
        for name, cls in (("layer_conductance", LayerConductance),
                          ("layer_integrated_gradients", LayerIntegratedGradients)):
            o = dict(others[name])
            e = o["expected"]
            sc = e.abs().max().item()
            o["expected"] = {"shape": list(e.shape), "data": e.flatten().tolist()}
            o["tolerance"] = {"abs": max(2e-5 * sc, 1e-6), "note": "|actual - expected| <= abs, elementwise"}
            o["captum_default_rel_err"] = captum_rel_err(model, case, e, cls=cls)
            out[name] = o
        for k in ("n_steps", "method", "internal_batch_size"):
            out.pop(k, None)
        with open(os.path.join(args.out, case["name"] + ".json"), "w") as f:
            json.dump(out, f)
        written += 1
        print(f"{case['name']}: pieces {pieces}, Riemann-100k diff {max(riemann):.1e} "
              f"(bound {max(bounds):.1e}), Captum GL-50 rel err {out['captum_default_rel_err']:.2e}; "
              f"LIG pieces {others['layer_integrated_gradients']['pieces']}, GL-50 rel err LC "
              f"{out['layer_conductance']['captum_default_rel_err']:.2e} LIG "
              f"{out['layer_integrated_gradients']['captum_default_rel_err']:.2e}")
    with open(os.path.join(args.out, "not_piecewise_linear.json"), "w") as f:
        json.dump({"note": "golden cases whose model is not piecewise linear: the first such layer",
                   "cases": refused}, f, indent=1)
    print(f"wrote {written} exact cases and {len(refused)} refusals to {args.out} "
          f"(Captum {captum.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
