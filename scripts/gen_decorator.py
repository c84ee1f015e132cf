#!/usr/bin/env python3
"""Generates crates/influence-core/src/decorator/ops.rs: the operation traits of the
`Decorator<B, P>` backend, every method forwarded to the wrapped backend `B`.

Burn's `Backend` is the sum of seven operation traits (about 450 methods, 200 without a
default). A decorator must behave exactly as `B` in every one of them, defaulted or not (an
autodiff backend overrides most defaults with its own backward), so each method is forwarded,
and writing them by hand would invite a typo. This script reads the trait declarations of the
pinned burn-backend release and writes one forwarding method per declaration; the few methods
a policy `P` may change get the bodies in OVERRIDES.

Usage: python3 scripts/gen_decorator.py [BURN_BACKEND_SRC_DIR]
Without an argument it finds burn-backend 0.21.0 in Cargo's registry. `--check` compares the
output with the committed file instead of writing it (CI runs that).
"""
import glob
import os
import re
import sys

VERSION = "0.21.0"
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "influence-core", "src", "decorator", "ops.rs")

# (file, trait) in the order of `Backend`'s supertraits.
TRAITS = [
    ("backend/ops/tensor.rs", "FloatTensorOps"),
    ("backend/ops/bool_tensor.rs", "BoolTensorOps"),
    ("backend/ops/int_tensor.rs", "IntTensorOps"),
    ("backend/ops/modules/base.rs", "ModuleOps"),
    ("backend/ops/activation.rs", "ActivationOps"),
    ("backend/ops/qtensor.rs", "QTensorOps"),
    ("backend/ops/transaction.rs", "TransactionOps"),
]

# Structs generic over the backend: `X<Eval<B>>` and `X<B>` are different types with the same
# fields, so values are rebuilt field by field. (type, expression turning `r: X<B>` into
# `X<Self>`, expression turning `x: X<Self>` into `X<B>`.)
REBUILT = {
    "TensorPrimitive": ("tp_out({})", "tp_in({})"),
    "MaxPool1dWithIndices": ("MaxPool1dWithIndices::new({0}.output, {0}.indices)", None),
    "MaxPool2dWithIndices": ("MaxPool2dWithIndices::new({0}.output, {0}.indices)", None),
    "MaxPool1dBackward": ("MaxPool1dBackward::new({0}.x_grad)", None),
    "MaxPool2dBackward": ("MaxPool2dBackward::new({0}.x_grad)", None),
    "DeformConv2dBackward": (
        "DeformConv2dBackward::new({0}.x_grad, {0}.offset_grad, {0}.weight_grad, {0}.mask_grad, {0}.bias_grad)",
        None,
    ),
    "QuantizationParametersPrimitive": (None, "QuantizationParametersPrimitive {{ scales: {}.scales }}"),
}

# Methods left to the trait's default, with the reason.
SKIPPED = {
    # `TransactionPrimitive<B>` has private fields, so it cannot be rebuilt for `B`; the
    # default reads each tensor with the forwarded `*_into_data`, which is what `B` does.
    "tr_execute",
}


# Methods whose body depends on the policy: `P::EXACT_RECIP` computes reciprocals as a true
# division (Burn's ndarray backend computes `recip`, and `powi` with exponent -1 or -2, with an
# approximate SIMD reciprocal, about 3e-4 relative error; autodiff's division backward uses it).
OVERRIDES = {
    "float_recip": """if P::EXACT_RECIP {
            let device = B::float_device(&tensor);
            let ones = B::float_ones(tensor.shape(), &device, tensor.dtype().into());
            B::float_div(ones, tensor)
        } else {
            <B as FloatTensorOps<B>>::float_recip(tensor)
        }""",
    "float_powi_scalar": """match rhs.elem::<i64>() {
            -1 if P::EXACT_RECIP => Self::float_recip(lhs),
            -2 if P::EXACT_RECIP => Self::float_recip(B::float_mul(lhs.clone(), lhs)),
            _ => <B as FloatTensorOps<B>>::float_powi_scalar(lhs, rhs),
        }""",
    # `P::FLAT_LINEAR`: a `Linear` over `[d0, .., dn, d_in]` runs as one matrix product over
    # all `d0·..·dn` rows, as PyTorch's does, instead of Burn's default (the weight broadcast
    # in a batched matmul: one small product per leading index, each packing the weight
    # again). Autodiff records the two reshapes, so the backward is one product too.
    "linear": """let dims = x.shape();
        let rank = dims.num_dims();
        let d_in = dims[rank - 1];
        if P::FLAT_LINEAR && rank > 2 && d_in > 0 {
            let rows = dims.num_elements() / d_in;
            let flat = B::float_reshape(x, Shape::new([rows, d_in]));
            let y = <B as ModuleOps<B>>::linear(flat, weight, bias);
            let mut out: Vec<usize> = (0..rank).map(|i| dims[i]).collect();
            out[rank - 1] = y.shape()[1];
            B::float_reshape(y, Shape::from(out))
        } else if P::LINEAR_FROM_OPS {
            super::linear_from_ops::<Self>(x, weight, bias)
        } else {
            <B as ModuleOps<B>>::linear(x, weight, bias)
        }""",
    # `P::LINEAR_FROM_OPS`: the linear's backward products through the decorator's own
    # `float_matmul` (Burn's default formulas, with `Self` in place of `B`).
    "linear_x_backward": """if P::LINEAR_FROM_OPS {
            // dx = output_grad @ weightᵀ, the weight broadcast over the leading dimensions.
            let rank = output_grad.shape().num_dims();
            let weight = super::unsqueeze_leading::<Self>(Self::float_swap_dims(weight, 0, 1), rank);
            Self::float_matmul(output_grad, weight)
        } else {
            <B as ModuleOps<B>>::linear_x_backward(weight, output_grad)
        }""",
    # `Policy::conv2d`: a convolution kernel of the policy's own (forward only; autodiff's
    # backward still calls `B`'s `conv2d_*_backward`); `Err` hands the call back to `B`.
    "conv2d": """match P::conv2d::<B>(Conv2dArgs {
            x,
            weight,
            bias,
            options,
        }) {
            Ok(y) => y,
            Err(a) => <B as ModuleOps<B>>::conv2d(a.x, a.weight, a.bias, a.options),
        }""",
    # `Policy::conv2d_x_backward`: the input gradient of a convolution, a kernel of the
    # policy's own (autodiff's conv2d backward calls it); `Err` hands the call back to `B`.
    "conv2d_x_backward": """match P::conv2d_x_backward::<B>(Conv2dBackwardArgs {
            x,
            weight,
            output_grad,
            options,
        }) {
            Ok(y) => y,
            Err(a) => <B as ModuleOps<B>>::conv2d_x_backward(a.x, a.weight, a.output_grad, a.options),
        }""",
    # `Policy::max_pool2d`: a max pool kernel of the policy's own (autodiff calls it for an
    # untracked pool); `Err` hands the call back to `B`.
    "max_pool2d": """match P::max_pool2d::<B>(MaxPool2dArgs {
            x,
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        }) {
            Ok(y) => y,
            Err(a) => <B as ModuleOps<B>>::max_pool2d(a.x, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode),
        }""",
    # `Policy::gelu` / `Policy::gelu_backward`: the policy's own GELU kernels (autodiff's
    # GELU calls `B::gelu` forward and `B::gelu_backward` backward); `Err` hands the call back.
    "gelu": """match P::gelu::<B>(tensor) {
            Ok(y) => y,
            Err(tensor) => <B as ActivationOps<B>>::gelu(tensor),
        }""",
    "gelu_backward": """match P::gelu_backward::<B>(x, grad) {
            Ok(y) => y,
            Err((x, grad)) => <B as ActivationOps<B>>::gelu_backward(x, grad),
        }""",
    # `Policy::float_matmul`: a matrix product kernel of the policy's own (forward and, under
    # autodiff, the backward's products).
    "float_matmul": """match P::float_matmul::<B>(lhs, rhs) {
            Ok(y) => y,
            Err((lhs, rhs)) => <B as FloatTensorOps<B>>::float_matmul(lhs, rhs),
        }""",
    # `Policy::float_reshape`: a reshape the policy runs (one that must copy, say).
    "float_reshape": """match P::float_reshape::<B>(tensor, shape) {
            Ok(y) => y,
            Err((tensor, shape)) => <B as FloatTensorOps<B>>::float_reshape(tensor, shape),
        }""",
    "float_add": """match P::float_binary::<B>(BinaryOp::Add, lhs, rhs) {
            Ok(y) => y,
            Err((lhs, rhs)) => <B as FloatTensorOps<B>>::float_add(lhs, rhs),
        }""",
    "float_sub": """match P::float_binary::<B>(BinaryOp::Sub, lhs, rhs) {
            Ok(y) => y,
            Err((lhs, rhs)) => <B as FloatTensorOps<B>>::float_sub(lhs, rhs),
        }""",
    "float_mul": """match P::float_binary::<B>(BinaryOp::Mul, lhs, rhs) {
            Ok(y) => y,
            Err((lhs, rhs)) => <B as FloatTensorOps<B>>::float_mul(lhs, rhs),
        }""",
    "float_div": """match P::float_binary::<B>(BinaryOp::Div, lhs, rhs) {
            Ok(y) => y,
            Err((lhs, rhs)) => <B as FloatTensorOps<B>>::float_div(lhs, rhs),
        }""",
    "float_powf_scalar": """match value.try_as_integer() {
            Some(exp) if P::EXACT_RECIP => Self::float_powi_scalar(tensor, exp),
            _ => <B as FloatTensorOps<B>>::float_powf_scalar(tensor, value),
        }""",
}


# The traits whose operations the exact method traces (`decorator/trace.rs`).
TRACED_TRAITS = {"FloatTensorOps", "ModuleOps", "ActivationOps"}
# A pool without indices, traced as the pool with indices (whose indices are the pattern).
POOL_WITH_INDICES = {
    "max_pool1d": "max_pool1d_with_indices",
    "max_pool2d": "max_pool2d_with_indices",
}
# Return type -> (trace function, expression of the outcome from `r`).
OUTCOMES = {
    "FloatTensor<B>": ("float_outcome", "&r"),
    "BoolTensor<B>": ("bool_outcome", "&r"),
    "IntTensor<B>": ("int_outcome", "&r"),
    "MaxPool1dWithIndices<B>": ("int_outcome", "&r.indices"),
    "MaxPool2dWithIndices<B>": ("int_outcome", "&r.indices"),
    "(FloatTensor<B>, IntTensor<B>)": ("int_outcome", "&r.1"),
}


def find_src():
    if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
        return sys.argv[1]
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    hits = glob.glob(os.path.join(home, "registry", "src", "*", f"burn-backend-{VERSION}", "src"))
    if not hits:
        sys.exit(f"burn-backend {VERSION} not in Cargo's registry; run `cargo fetch` first")
    return hits[0]


def trait_body(text, trait):
    m = re.search(r"pub trait " + trait + r"<B: Backend>\s*\{", text)
    if not m:
        sys.exit(f"trait {trait} not found")
    i, depth = m.end(), 1
    start = i
    while depth:
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return text[start : i - 1]


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def items(body):
    """Yields (attributes, signature) for each `fn` declared at the top of a trait body."""
    body = strip_comments(body)
    i, n, depth = 0, len(body), 0
    attrs = []
    while i < n:
        c = body[i]
        if depth == 0 and body.startswith("#[", i):
            j = match_close(body, i + 1, "[", "]")
            attrs.append(body[i : j + 1])
            i = j + 1
            continue
        if depth == 0 and re.match(r"\bfn\b", body[i : i + 3]) and (i == 0 or not body[i - 1].isalnum()):
            # The signature runs to the first `{` or `;` outside brackets.
            j, par = i, 0
            while True:
                ch = body[j]
                if ch in "([":
                    par += 1
                elif ch in ")]":
                    par -= 1
                elif par == 0 and ch in "{;":
                    break
                j += 1
            sig = " ".join(body[i:j].split())
            if body[j] == "{":
                j = match_close(body, j, "{", "}")
            yield attrs, sig
            attrs = []
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1


def match_close(text, i, open_, close):
    depth = 0
    while True:
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1


def split_top(s, sep=","):
    out, depth, cur, k = [], 0, "", 0
    while k < len(s):
        if s.startswith("->", k):
            cur += "->"
            k += 2
            continue
        c = s[k]
        if c in "(<[":
            depth += 1
        elif c in ")>]":
            depth -= 1
        if c == sep and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        k += 1
    if cur.strip():
        out.append(cur.strip())
    return out


def parse(sig):
    m = re.match(r"fn (\w+)\s*", sig)
    name, rest = m.group(1), sig[m.end() :]
    generics = ""
    if rest.startswith("<"):
        depth, k = 0, 0
        while True:
            if rest.startswith("->", k):
                k += 2
                continue
            if rest[k] == "<":
                depth += 1
            elif rest[k] == ">":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        generics, rest = rest[: k + 1], rest[k + 1 :].strip()
    end = match_close(rest, 0, "(", ")")
    params, tail = rest[1:end], rest[end + 1 :].strip()
    ret, where = "", ""
    if " where " in " " + tail + " " or tail.startswith("where"):
        idx = tail.find("where")
        ret, where = tail[:idx].strip(), tail[idx:].strip()
    else:
        ret = tail
    ret = ret[2:].strip() if ret.startswith("->") else ret
    plist = []
    for p in split_top(params):
        pname, ptype = p.split(":", 1)
        pname = pname.replace("mut ", "").strip().lstrip("_") or "arg"
        plist.append((pname, ptype.strip()))
    return name, generics, plist, ret, where


def rebuilt(ty):
    m = re.match(r"(\w+)<B>$", ty)
    return REBUILT.get(m.group(1)) if m else None


def selfify(text):
    text = text.replace("crate::tensor::", "").replace("crate::", "burn_backend::")
    return re.sub(r"\bB\b", "Self", text)


def type_args(generics):
    if not generics:
        return ""
    args = []
    for g in split_top(generics[1:-1]):
        g = g.strip()
        if g.startswith("'") or g.startswith("const "):
            if g.startswith("const "):
                args.append(g.split()[1].split(":")[0])
            continue
        args.append(g.split(":")[0].strip())
    return "::<" + ", ".join(args) + ">" if args else ""


def method(trait, attrs, sig):
    name, generics, params, ret, where = parse(sig)
    if name in SKIPPED:
        return None
    args = []
    for pname, ptype in params:
        conv = rebuilt(ptype)
        if conv:
            if conv[1] is None:
                sys.exit(f"{name}: no conversion into B for parameter type {ptype}")
            args.append(conv[1].format(pname))
        else:
            args.append(pname)
    call = f"<B as {trait}<B>>::{name}{type_args(generics)}({', '.join(args)})"
    conv = rebuilt(ret)
    if conv:
        if conv[0] is None:
            sys.exit(f"{name}: no conversion from B for return type {ret}")
        call = "{ let r = " + call + "; " + conv[0].format("r") + " }" if "{0}" in conv[0] else conv[0].format(call)
    elif re.search(r"\b(" + "|".join(REBUILT) + r")<B>", ret):
        sys.exit(f"{name}: return type {ret} needs a conversion")
    keep = [a for a in attrs if a.startswith("#[allow") or a.startswith("#[cfg")]
    plist = ", ".join(f"{p}: {selfify(t)}" for p, t in params)
    head = f"fn {name}{selfify(generics)}({plist})"
    if ret:
        head += f" -> {selfify(ret)}"
    if where:
        head += f" {selfify(where)}"
    lines = [f"    {a}" for a in keep]
    lines.append(f"    {head} {{")
    body = OVERRIDES.get(name, call)
    floats = [p for p, t in params if t == "FloatTensor<B>"]
    if floats and trait in TRACED_TRAITS and not name.endswith("_backward"):
        # The exact method's trace (`trace.rs`): the operation and its float operands before,
        # its outcome after (a pattern: comparisons, arg-max, max-pool indices, ReLU's side).
        # A max pool without indices runs as one with indices while tracing.
        refs = ", ".join(f"&{p}" for p in floats)
        lines.append(f'        let traced = P::TRACE && super::trace::active();')
        lines.append(f'        let token = if traced {{ super::trace::operands::<B>("{name}", &[{refs}]) }} else {{ None }};')
        if name in POOL_WITH_INDICES:
            args_ = ", ".join(p for p, _ in params)
            lines.append(f"        if traced {{ return Self::{POOL_WITH_INDICES[name]}({args_}).output; }}")
        outcome = OUTCOMES.get(ret)
        lines.append(f"        let r = {{ {body} }};")
        if outcome:
            lines.append(f'        if traced {{ super::trace::{outcome[0]}::<B>("{name}", token, {outcome[1]}); }}')
        else:
            lines.append("        let _ = token;")
        lines.append("        r")
    else:
        lines.append(f"        {body}")
    lines.append("    }")
    return "\n".join(lines)


def generate(src):
    out = [
        f"// @generated by scripts/gen_decorator.py from burn-backend {VERSION}; do not edit.",
        "//",
        "// Every operation of `Decorator<B, P>` forwards to `B`, but for the few that the",
        "// policy `P` changes; see `decorator.rs`.",
        "",
        "use core::future::Future;",
        "use core::ops::Range;",
        "",
        "use burn_backend::ops::*;",
        "use burn_backend::quantization::{QuantScheme, QuantizationParametersPrimitive};",
        "use burn_backend::tensor::{BoolTensor, Device, FloatTensor, IndexingUpdateOp, IntTensor, QuantizedTensor};",
        "use burn_backend::{Backend, Distribution, ExecutionError, Scalar, TensorData, TensorMetadata, TensorPrimitive};",
        "use burn_std::{BoolDType, FloatDType, IntDType, Shape, Slice};",
        "",
        "use super::{BinaryOp, Conv2dArgs, Conv2dBackwardArgs, Decorator, MaxPool2dArgs, Policy, tp_in, tp_out};",
        "",
    ]
    count = 0
    for path, trait in TRAITS:
        with open(os.path.join(src, path)) as f:
            body = trait_body(f.read(), trait)
        methods = [m for m in (method(trait, a, s) for a, s in items(body)) if m]
        count += len(methods)
        out.append(f"impl<B: Backend, P: Policy> {trait}<Self> for Decorator<B, P> {{")
        out.append("\n\n".join(methods))
        out.append("}")
        out.append("")
    return "\n".join(out), count


def rustfmt(text):
    import subprocess

    return subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main():
    src = find_src()
    text, count = generate(src)
    text = rustfmt(text)
    path = os.path.normpath(OUT)
    if "--check" in sys.argv:
        with open(path) as f:
            if f.read() != text:
                sys.exit(f"{path} is out of date: run python3 scripts/gen_decorator.py")
        print(f"{path}: up to date ({count} methods)")
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}: {count} methods")


if __name__ == "__main__":
    main()
