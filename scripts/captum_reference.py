#!/usr/bin/env python3
# From the project's shared bench folder (shared/bench/captum_reference.py); this line, the
# resnet18_224 workload and the --internal-batch-size flag added.
"""Reference timings: Captum's InternalInfluence on PyTorch (CPU) for the standard
benchmark workloads. Run it beside the project's own benchmark of the same workloads
to get a side-by-side ratio on the same machine in the same minute.

Needs: pip install torch captum   (CPU is enough)
usage: captum_reference.py [--workload NAME ...] [--repeats N] [--n-steps N] [--internal-batch-size N] [--json OUT]
Prints one line per workload: name, median seconds per attribute() call, min, max.
"""
import argparse, json, statistics, time

import torch
import torch.nn as nn
from captum.attr import InternalInfluence


def digits_cnn():
    m = nn.Sequential()
    m.add_module("conv1", nn.Conv2d(1, 16, 3, padding=1)); m.add_module("relu1", nn.ReLU())
    m.add_module("conv2", nn.Conv2d(16, 32, 3, padding=1)); m.add_module("relu2", nn.ReLU())
    m.add_module("pool", nn.MaxPool2d(2)); m.add_module("flatten", nn.Flatten())
    m.add_module("fc1", nn.Linear(32 * 4 * 4, 64)); m.add_module("relu3", nn.ReLU())
    m.add_module("fc2", nn.Linear(64, 10))
    return m, torch.rand(64, 1, 8, 8), "conv2"


def mlp_784():
    m = nn.Sequential()
    m.add_module("fc1", nn.Linear(784, 512)); m.add_module("relu1", nn.ReLU())
    m.add_module("fc2", nn.Linear(512, 256)); m.add_module("relu2", nn.ReLU())
    m.add_module("fc3", nn.Linear(256, 10))
    return m, torch.rand(128, 784), "fc2"


def cifar_cnn():
    m = nn.Sequential()
    m.add_module("conv1", nn.Conv2d(3, 32, 3, padding=1)); m.add_module("relu1", nn.ReLU())
    m.add_module("conv2", nn.Conv2d(32, 32, 3, padding=1)); m.add_module("relu2", nn.ReLU())
    m.add_module("pool1", nn.MaxPool2d(2))
    m.add_module("conv3", nn.Conv2d(32, 64, 3, padding=1)); m.add_module("relu3", nn.ReLU())
    m.add_module("pool2", nn.MaxPool2d(2)); m.add_module("flatten", nn.Flatten())
    m.add_module("fc1", nn.Linear(64 * 8 * 8, 128)); m.add_module("relu4", nn.ReLU())
    m.add_module("fc2", nn.Linear(128, 10))
    return m, torch.rand(16, 3, 32, 32), "conv3"


def resnet18_224():
    """torchvision's resnet18 with the seeded weights of scripts/resnet18/fixture.py (needs
    torchvision), batch 2 at 224x224, layer3; each image explained for its predicted class."""
    import os, sys
    import torchvision
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "resnet18"))
    from fixture import weights, images
    m = torchvision.models.resnet18()
    sd = m.state_dict()
    w = weights([(k, tuple(v.shape)) for k, v in sd.items()], 0)
    m.load_state_dict({k: (torch.from_numpy(w[k]) if k in w else v) for k, v in sd.items()})
    return m, torch.from_numpy(images(2, 224, 0)), "layer3"


WORKLOADS = {"digits_cnn": digits_cnn, "mlp_784": mlp_784, "cifar_cnn": cifar_cnn,
             "resnet18_224": resnet18_224}
# Not run unless asked for (--workload resnet18_224): needs torchvision.
DEFAULT = ["digits_cnn", "mlp_784", "cifar_cnn"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", action="append")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-steps", type=int, default=50)
    ap.add_argument("--internal-batch-size", type=int, default=None)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(0)
    results = {}
    for name in a.workload or DEFAULT:
        model, x, layer = WORKLOADS[name]()
        model.eval()
        if name.startswith("resnet"):
            with torch.no_grad():
                target = model(x).argmax(1)  # the predicted classes
        else:
            target = torch.arange(x.shape[0]) % 10
        ii = InternalInfluence(model, dict(model.named_modules())[layer])
        run = lambda: ii.attribute(x, target=target, n_steps=a.n_steps, method="gausslegendre",
                                   internal_batch_size=a.internal_batch_size)
        run()  # warm-up
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
        results[name] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                         "batch": x.shape[0], "n_steps": a.n_steps, "threads": torch.get_num_threads(),
                         "internal_batch_size": a.internal_batch_size}
        print(f"{name}\t{statistics.median(times):.4f}\t{min(times):.4f}\t{max(times):.4f}")
    if a.json:
        json.dump(results, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
