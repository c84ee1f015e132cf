"""The golden cases' models, inputs, baselines and targets in PyTorch (float64), shared by the
reference generators (scripts/noise_tunnel/reference.py, scripts/exact/reference.py).

Format: tests/fixtures/golden/README.md (layer types and parameters in PyTorch's conventions).
"""
from collections import OrderedDict

import numpy as np
import torch


def tensor(d):
    """A `{shape, data}` object as a float64 tensor."""
    return torch.tensor(np.array(d["data"], dtype=np.float64).reshape(d["shape"]))


def load_case(path):
    """One golden file's case (a file holds one case, or a list whose first is the case)."""
    import json

    with open(path) as f:
        case = json.load(f)
    return case[0] if isinstance(case, list) else case


def build(spec):
    """The golden model (its README's layer types), float64, eval mode."""
    mods = OrderedDict()
    for l in spec["model"]["layers"]:
        t = l["type"]
        if t == "linear":
            m = torch.nn.Linear(l["in_features"], l["out_features"], bias=l["bias"] is not None)
        elif t in ("conv2d", "conv1d"):
            cls = torch.nn.Conv2d if t == "conv2d" else torch.nn.Conv1d
            m = cls(l["in_channels"], l["out_channels"], l["kernel_size"],
                    stride=l["stride"], padding=l["padding"], bias=l["bias"] is not None)
        elif t == "relu":
            m = torch.nn.ReLU()
        elif t == "tanh":
            m = torch.nn.Tanh()
        elif t == "sigmoid":
            m = torch.nn.Sigmoid()
        elif t == "gelu":
            m = torch.nn.GELU()
        elif t == "softmax":
            m = torch.nn.Softmax(dim=l["dim"])
        elif t == "max_pool2d":
            m = torch.nn.MaxPool2d(l["kernel_size"], l["stride"])
        elif t == "avg_pool2d":
            m = torch.nn.AvgPool2d(l["kernel_size"], l["stride"])
        elif t == "flatten":
            m = torch.nn.Flatten()
        elif t == "layer_norm":
            m = torch.nn.LayerNorm(l["normalized_shape"], eps=l["eps"])
        elif t == "batch_norm":
            cls = torch.nn.BatchNorm1d if l["dims"] == 1 else torch.nn.BatchNorm2d
            m = cls(l["num_features"], eps=l["eps"])
        elif t == "dropout":
            m = torch.nn.Dropout(l["p"])
        else:
            raise ValueError(f"unknown layer type {t}")
        m = m.double()
        with torch.no_grad():
            if l.get("weight") is not None:
                m.weight.copy_(tensor(l["weight"]))
            if l.get("bias") is not None:
                m.bias.copy_(tensor(l["bias"]))
            if t == "batch_norm":
                m.running_mean.copy_(tensor(l["running_mean"]))
                m.running_var.copy_(tensor(l["running_var"]))
        mods[l["name"]] = m
    return torch.nn.Sequential(mods).eval()


def target_of(t):
    """A golden `target` as Captum's argument."""
    if t is None:
        return None
    if "index" in t:
        return t["index"]
    if "per_example" in t:
        return t["per_example"]
    if "tuple" in t:
        return tuple(t["tuple"])
    return [tuple(v) for v in t["per_example_tuple"]]


def baselines_of(b):
    """A golden `baselines` as Captum's argument."""
    if b is None:
        return None
    if "scalar" in b:
        return b["scalar"]
    return tensor(b["tensor"])
