#!/usr/bin/env python3
"""ONNX fixtures for tests/onnx.rs: reduced versions of torchvision's resnet18 and
mobilenet_v2, timm's vit_tiny_patch16_224 and the all-MiniLM-L6-v2 BERT (same operators and
module names, fewer channels and blocks), with seeded random weights and random BatchNorm
statistics, exported by both PyTorch exporters, and Captum 0.9's attributions on the PyTorch
module in float64 (the reference) and float32 (PyTorch's own error, which sets the tolerance).

Needs: pip install torch torchvision timm transformers captum onnx onnxscript safetensors numpy
usage: python3 scripts/onnx/fixtures.py [--out tests/fixtures/onnx]
Writes, into --out, per model M:
  M.dynamo.onnx (+ M.dynamo.onnx.data for resnet: external data, the dynamo exporter's
  default), M.torchscript.onnx     the exports (dynamic batch)
  M.safetensors                    inputs ("input", "args.<name>") and the float64
                                   attributions, one tensor per case ("case<i>")
and reference.json: per model, its files, input name, arguments, and cases (method, layer,
side, target, n_steps, the tensor's name, PyTorch's float32 error against float64).
"""
import argparse, json, os, warnings

import numpy as np
import torch
import torchvision
from captum.attr import (InternalInfluence, LayerActivation, LayerConductance,
                         LayerGradientXActivation, LayerIntegratedGradients)
from safetensors.numpy import save_file

warnings.filterwarnings("ignore")
SEED = 0
BATCH = 2
N_STEPS = 8
METHODS = {
    "internal_influence": InternalInfluence,
    "layer_conductance": LayerConductance,
    "layer_integrated_gradients": LayerIntegratedGradients,
    "layer_gradient_x_activation": LayerGradientXActivation,
    "layer_activation": LayerActivation,
}


def randomize(model, seed):
    """Seeded random weights, and random BatchNorm running statistics (as trained ones are)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan = p[0].numel() if p.dim() > 1 else 1
            scale = 1.0 / np.sqrt(fan) if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * scale + (1.0 if name.endswith("norm1.weight") or "LayerNorm.weight" in name or name.endswith("norm.weight") or name.endswith("norm2.weight") else 0.0))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.data = 0.5 + torch.rand(m.weight.shape, generator=g)
                m.bias.data = 0.2 * torch.randn(m.bias.shape, generator=g)
                m.running_mean = 0.2 * torch.randn(m.running_mean.shape, generator=g)
                m.running_var = 0.5 + torch.rand(m.running_var.shape, generator=g)
    return model.eval()


class SmallResNet(torchvision.models.resnet.ResNet):
    """torchvision's resnet18 (BasicBlock, [2, 2, 2, 2], the same module names) with widths
    4, 8, 16, 32 instead of 64 ... 512."""

    def __init__(self, widths=(4, 8, 16, 32), num_classes=10):
        torch.nn.Module.__init__(self)
        block = torchvision.models.resnet.BasicBlock
        self._norm_layer = torch.nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = torch.nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(self.inplanes)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], 2)
        self.layer2 = self._make_layer(block, widths[1], 2, stride=2)
        self.layer3 = self._make_layer(block, widths[2], 2, stride=2)
        self.layer4 = self._make_layer(block, widths[3], 2, stride=2)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(widths[3] * block.expansion, num_classes)


def resnet():
    return randomize(SmallResNet(), SEED)


def mobilenet():
    m = torchvision.models.mobilenet_v2(
        num_classes=10, width_mult=0.25,
        inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]])
    return randomize(m, SEED + 1)


def vit():
    import timm
    m = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10)
    return randomize(m, SEED + 2)


def bert(hidden=32, layers=2, heads=4, inter=64, vocab=100):
    """all-MiniLM-L6-v2's architecture (transformers' BertModel), reduced; its forward takes
    the three token inputs and returns the last hidden state, and its module names are the
    BertModel's own (`embeddings.word_embeddings`, `encoder.layer.0.output`)."""
    import transformers

    class BertHidden(transformers.BertModel):
        def forward(self, input_ids, attention_mask, token_type_ids):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids).last_hidden_state

    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=inter,
                                  max_position_embeddings=64)
    return randomize(BertHidden(cfg, add_pooling_layer=False), SEED + 3)


def bert_similarity(hidden=32, layers=2, heads=4, inter=64, vocab=100):
    """The reduced BERT with all-MiniLM-L6-v2's sentence head, as influence-bench's
    `onnx_minilm` exports the real one: the cosine similarity of the mean-pooled, normalised
    embedding to a query (a buffer); inputs input_ids and attention_mask only (the token types
    come from the model's buffer: a GatherElements), its normalisation a ReduceL2."""
    import transformers

    class Similarity(transformers.BertModel):
        def embed(self, input_ids=None, attention_mask=None, inputs_embeds=None):
            hidden = super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds,
                                     attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

        def forward(self, input_ids, attention_mask):
            return (self.embed(input_ids, attention_mask) * self.query).sum(1)

    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=inter,
                                  max_position_embeddings=64)
    m = randomize(Similarity(cfg, add_pooling_layer=False), SEED + 5)
    q = torch.randn(1, hidden, generator=torch.Generator().manual_seed(SEED + 6))
    m.register_buffer("query", torch.nn.functional.normalize(q, dim=1))
    return m


class Tiny(torch.nn.Module):
    """The fuzz test's model: small (a few kB), fast, and many operator kinds (convolution,
    BatchNorm, pooling, reshapes, attention's matrix products and softmax, LayerNorm, GELU,
    slicing, concatenation)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.pool = torch.nn.MaxPool2d(2)
        self.norm = torch.nn.LayerNorm(16)
        self.qkv = torch.nn.Linear(16, 48)
        self.head = torch.nn.Linear(16 * 4 + 16, 5)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn(self.conv(x))))          # [b, 4, 4, 4]
        t = self.norm(h.flatten(2))                                # [b, 4, 16]
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(1, 2) / 4.0, dim=-1) @ v
        g = torch.nn.functional.gelu(a)
        pooled = torch.cat([g.flatten(1), g[:, 1:3].mean(1)], dim=1)
        return self.head(pooled)


def tiny_fixtures(out_dir):
    m = randomize(Tiny(), SEED + 9)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(SEED))
    export(m, (x,), ["input"], None, out_dir, "tiny", external=False)
    save_file({"input": x.numpy(), "output": m(x).detach().numpy().astype(np.float64)},
              os.path.join(out_dir, "tiny.safetensors"))


def module(model, path):
    m = model
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def captum(model, forward, inputs, args, method, layer, side, target, dtype):
    """One Captum attribution; model/inputs/args in dtype."""
    lay = module(model, layer)
    cls = METHODS[method]
    kwargs = {}
    if method in ("internal_influence", "layer_conductance", "layer_integrated_gradients"):
        kwargs["n_steps"] = N_STEPS
    if method != "layer_activation":
        kwargs["target"] = target
    if args:
        kwargs["additional_forward_args"] = args
    if method == "layer_integrated_gradients":
        a = cls(forward, lay).attribute(inputs, attribute_to_layer_input=side == "input", **kwargs)
    else:
        a = cls(forward, lay).attribute(inputs, attribute_to_layer_input=side == "input", **kwargs)
    if isinstance(a, (tuple, list)):
        assert len(a) == 1, f"{layer}: {len(a)} tensors"
        a = a[0]
    return a.detach().to(torch.float64).numpy()


def export(model, example, names, dynamic, out_dir, stem, external, unfused=False):
    """Both exporters, batch dynamic; with `unfused`, also each exporter with the option that
    keeps the BatchNorms (dynamo: optimize=False; TorchScript: do_constant_folding=False)."""
    dyn_path = os.path.join(out_dir, f"{stem}.dynamo.onnx")
    ts_path = os.path.join(out_dir, f"{stem}.torchscript.onnx")
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = tuple({0: batch} for _ in names)
    torch.onnx.export(model, example, dyn_path, input_names=names, dynamic_shapes=shapes,
                      external_data=external)
    torch.onnx.export(model, example, ts_path, dynamo=False, input_names=names,
                      dynamic_axes={n: {0: "batch"} for n in names})
    files = [os.path.basename(dyn_path), os.path.basename(ts_path)]
    if external:
        files.append(os.path.basename(dyn_path) + ".data")
    if unfused:
        noopt = os.path.join(out_dir, f"{stem}.dynamo_noopt.onnx")
        nofold = os.path.join(out_dir, f"{stem}.torchscript_nofold.onnx")
        torch.onnx.export(model, example, noopt, input_names=names, dynamic_shapes=shapes,
                          external_data=False, optimize=False)
        torch.onnx.export(model, example, nofold, dynamo=False, input_names=names,
                          dynamic_axes={n: {0: "batch"} for n in names}, do_constant_folding=False)
        files += [os.path.basename(noopt), os.path.basename(nofold)]
    return files


def cases_for(spec):
    out = []
    for method, layer, side in spec:
        out.append({"method": method, "layer": layer, "side": side})
    return out


def run_model(name, build, example_fn, forward_fn, input_name, arg_names, export_names, spec,
              target, out_dir, external, explained_layer=None, unfused=False):
    torch.manual_seed(SEED)
    m64 = build().double()
    m32 = build().float()
    inputs64, args64 = example_fn(torch.float64, m64)
    inputs32, args32 = example_fn(torch.float32, m32)
    tensors = {"input": inputs64.numpy().astype(np.float32)}
    for n, a in zip(arg_names, args64):
        tensors[f"args.{n}"] = a.numpy()
    f64 = forward_fn(m64)
    f32 = forward_fn(m32)
    tensors["output"] = f64(inputs64, *args64).detach().numpy().astype(np.float64)
    cases = []
    for i, c in enumerate(cases_for(spec)):
        a64 = captum(m64, f64, inputs64, tuple(args64), c["method"], c["layer"], c["side"], target, torch.float64)
        a32 = captum(m32, f32, inputs32, tuple(args32), c["method"], c["layer"], c["side"], target, torch.float32)
        scale = float(np.abs(a64).max())
        err32 = float(np.abs(a32 - a64).max() / scale) if scale > 0 else 0.0
        key = f"case{i}"
        tensors[key] = a64
        cases.append(dict(c, tensor=key, shape=list(a64.shape), n_steps=N_STEPS,
                          torch_f32_error=err32, max_abs=scale))
        print(f"  {name} {c['method']:28s} {c['layer']:40s} {c['side']:6s} {list(a64.shape)} f32 err {err32:.2e}")
    # The export, from the float32 model.
    model_for_export = export_model_for(name, m32)
    example = export_example_for(name, inputs32, args32, m32)
    files = export(model_for_export, example, export_names, None, out_dir, name, external, unfused)
    exports = ["dynamo", "torchscript"] + (["dynamo_noopt", "torchscript_nofold"] if unfused else [])
    save_file(tensors, os.path.join(out_dir, f"{name}.safetensors"))
    return {"files": files, "exports": exports, "input": input_name, "explained": explained_layer,
            "args": arg_names, "target": target, "cases": cases,
            "torch_f32_error": max(c["torch_f32_error"] for c in cases)}


# The exported modules and their example inputs: the image models as they are; BERT with the
# three token inputs (Captum explains its word embeddings, the ONNX model from
# `embeddings.word_embeddings`).
def export_model_for(name, m32):
    return m32


def export_example_for(name, inputs32, args32, m32):
    if name == "minilm":
        return (TOKENS["input_ids"], TOKENS["attention_mask"], TOKENS["token_type_ids"])
    if name == "minilm_similarity":
        return (TOKENS["input_ids"], TOKENS["attention_mask"])
    return (inputs32,)


TOKENS = {}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="tests/fixtures/onnx")
    out_dir = p.parse_args().out
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    images = torch.randn(BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(SEED))
    image_example = lambda dtype, m: (images.to(dtype), [])
    plain = lambda m: (lambda x: m(x))
    reference = {"seed": SEED, "batch": BATCH, "n_steps": N_STEPS,
                 "torch": torch.__version__, "captum": __import__("captum").__version__,
                 "models": {}}

    tiny_fixtures(out_dir)
    reference["models"]["resnet18"] = run_model(
        "resnet18", resnet, image_example, plain, "input", [], ["input"],
        [("internal_influence", "layer3", "output"),
         ("internal_influence", "layer3", "input"),
         ("internal_influence", "layer2.0.downsample", "output"),
         ("internal_influence", "layer1.1.bn2", "output"),
         ("internal_influence", "maxpool", "output"),
         ("internal_influence", "fc", "input"),
         ("layer_conductance", "layer2", "output"),
         ("layer_integrated_gradients", "layer4.0", "output"),
         ("layer_gradient_x_activation", "layer3.1", "output"),
         ("layer_activation", "layer1", "output"),
         ("internal_influence", "layer1.0.conv1", "output"),
         ("internal_influence", "layer2.0.bn1", "input")],
        3, out_dir, external=True, unfused=True)
    # The TorchScript exporter folds each BatchNorm into its convolution: there, a BatchNorm's
    # output is its convolution node's.
    # The default exports fuse each BatchNorm with its convolution: the convolution's output
    # (and the BatchNorm's input) exist only in the exports that keep the BatchNorms.
    for c in reference["models"]["resnet18"]["cases"]:
        if c["layer"] == "layer1.1.bn2":
            c["torchscript_layer"] = "/layer1/layer1.1/conv2/Conv"
        if c["layer"] in ("layer1.0.conv1", "layer2.0.bn1"):
            c["unavailable_in"] = ["dynamo", "torchscript"]
    reference["models"]["mobilenet_v2"] = run_model(
        "mobilenet_v2", mobilenet, image_example, plain, "input", [], ["input"],
        [("internal_influence", "features.3", "output"),
         ("internal_influence", "features.3", "input"),
         ("internal_influence", "features.1.conv", "output"),
         ("internal_influence", "features.4.conv.0", "output"),
         ("layer_conductance", "features.2", "output"),
         ("layer_integrated_gradients", "features.5", "output"),
         ("layer_gradient_x_activation", "features.6", "output")],
        4, out_dir, external=False)
    reference["models"]["vit"] = run_model(
        "vit", vit, image_example, plain, "input", [], ["input"],
        [("internal_influence", "blocks.0", "output"),
         ("internal_influence", "blocks.1.mlp.fc1", "output"),
         ("internal_influence", "blocks.1.mlp", "input"),
         ("internal_influence", "blocks.0.attn.proj", "output"),
         ("internal_influence", "norm", "output"),
         ("layer_conductance", "blocks.1", "output"),
         ("layer_integrated_gradients", "patch_embed.proj", "output"),
         ("layer_gradient_x_activation", "blocks.0.mlp.fc2", "output")],
        5, out_dir, external=False)

    # BERT: token ids, a padded batch (the second sentence's last two tokens masked).
    g = torch.Generator().manual_seed(SEED + 7)
    ids = torch.randint(1, 100, (BATCH, 7), generator=g)
    mask = torch.ones(BATCH, 7, dtype=torch.long)
    mask[1, 5:] = 0
    tt = torch.zeros(BATCH, 7, dtype=torch.long)
    tt[:, 4:] = 1
    TOKENS.update(input_ids=ids, attention_mask=mask, token_type_ids=tt)

    def bert_example(dtype, m):
        words = m.embeddings.word_embeddings(ids).detach()
        return words, [mask, tt]

    def bert_forward(m):
        import transformers
        return lambda e, mk, t: transformers.BertModel.forward(
            m, inputs_embeds=e, attention_mask=mk, token_type_ids=t).last_hidden_state

    ref = run_model(
        "minilm", bert, bert_example, bert_forward, "embeddings.word_embeddings",
        ["attention_mask", "token_type_ids"], ["input_ids", "attention_mask", "token_type_ids"],
        [("internal_influence", "encoder.layer.0.output", "output"),
         ("internal_influence", "encoder.layer.1.attention.self.query", "output"),
         ("internal_influence", "encoder.layer.1.intermediate", "output"),
         ("internal_influence", "encoder.layer.1.output.dense", "input"),
         ("layer_conductance", "encoder.layer.0", "output"),
         ("layer_integrated_gradients", "embeddings", "output"),
         ("layer_gradient_x_activation", "encoder.layer.1.output.LayerNorm", "output")],
        (0, 5), out_dir, external=False, explained_layer="embeddings.word_embeddings")
    ref["tokens"] = {k: v.tolist() for k, v in TOKENS.items()}
    reference["models"]["minilm"] = ref

    def sim_example(dtype, m):
        return m.embeddings.word_embeddings(ids).detach(), [mask]

    def sim_forward(m):
        import transformers
        return lambda e, mk: (m.embed(inputs_embeds=e, attention_mask=mk) * m.query).sum(1)

    ref = run_model(
        "minilm_similarity", bert_similarity, sim_example, sim_forward, "embeddings.word_embeddings",
        ["attention_mask"], ["input_ids", "attention_mask"],
        [("internal_influence", "encoder.layer.0", "output"),
         ("internal_influence", "encoder.layer.1.output", "output"),
         ("layer_integrated_gradients", "embeddings", "output")],
        None, out_dir, external=False, explained_layer="embeddings.word_embeddings")
    ref["tokens"] = {k: TOKENS[k].tolist() for k in ("input_ids", "attention_mask")}
    reference["models"]["minilm_similarity"] = ref
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"wrote {out_dir}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
