"""Seeded random torchvision ResNet-18 weights and images, reproducible bit for bit in Rust.

Every value is drawn from a counter-based generator keyed by the tensor's name (SplitMix64 of
FNV-1a(name) ^ seed, plus the element index), 24 bits of it mapped to [lo, hi) in float64,
then rounded to float32: `crates/influence-resnet/src/fixture.rs` computes the same bits.
"""
import numpy as np

MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(name: str, n: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """n float32 values in [lo, hi), as float32."""
    key = np.uint64(fnv1a64(name.encode()) ^ seed)
    with np.errstate(over="ignore"):
        z = splitmix64(key + np.arange(n, dtype=np.uint64))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return (lo + (hi - lo) * u).astype(np.float32)


def param_range(name: str, shape) -> tuple:
    """The range of a parameter of torchvision's resnet18, from its name and shape."""
    if name.endswith("running_mean"):
        return (-0.2, 0.2)
    if name.endswith("running_var"):
        return (0.5, 1.5)
    if len(shape) == 4:  # convolution: He uniform (variance 2 / fan_in)
        fan_in = shape[1] * shape[2] * shape[3]
        b = float(np.sqrt(6.0 / fan_in))
        return (-b, b)
    if name.startswith("fc."):
        b = 1.0 / float(np.sqrt(512.0))
        return (-b, b)
    if name.endswith("weight"):  # BatchNorm gamma
        return (0.5, 1.2)
    if name.endswith("bias"):  # BatchNorm beta
        return (-0.2, 0.2)
    raise ValueError(name)


def weights(state_dict_shapes, seed: int = 0):
    """{name: float32 array} for every float tensor of the state dict (num_batches_tracked left out)."""
    out = {}
    for name, shape in state_dict_shapes:
        if name.endswith("num_batches_tracked"):
            continue
        lo, hi = param_range(name, shape)
        out[name] = uniform(name, int(np.prod(shape)), lo, hi, seed).reshape(shape)
    return out


def images(batch: int, size: int, seed: int = 0) -> np.ndarray:
    """[batch, 3, size, size] float32 in [-2, 2): normalised-image-like values."""
    return uniform(f"images/{batch}x{size}", batch * 3 * size * size, -2.0, 2.0, seed).reshape(
        batch, 3, size, size
    )
