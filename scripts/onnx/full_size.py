#!/usr/bin/env python3
"""The full-size check of influence-onnx, run on a developer's machine (not in CI: the models
are 10-90 MB): torchvision's resnet18 and mobilenet_v2 and timm's vit_tiny_patch16_224 at
224x224 with seeded random weights and BatchNorm statistics, and the real all-MiniLM-L6-v2
(from --minilm-dir), each exported by both PyTorch exporters, with Captum 0.9's attributions on
the PyTorch module in float64 and float32, written in the format of tests/fixtures/onnx:

    python3 scripts/onnx/full_size.py --out /var/tmp/onnx-full --minilm-dir ../shared/models/all-MiniLM-L6-v2
    INFLUENCE_ONNX_FIXTURES=/var/tmp/onnx-full INFLUENCE_ONNX_BACKEND=flex \\
        cargo test --features onnx --test onnx

The numbers of the last run are in docs/onnx.md ("Full size").
Needs: torch torchvision timm transformers captum onnx onnxscript safetensors numpy.
"""
import argparse, json, os, sys, warnings

import numpy as np
import torch
import torchvision

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures as fx  # noqa: E402

BATCH = 2


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--minilm-dir")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    images = torch.randn(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(fx.SEED))
    image_example = lambda dtype, m: (images.to(dtype), [])
    plain = lambda m: (lambda x: m(x))
    reference = {"seed": fx.SEED, "batch": BATCH, "n_steps": fx.N_STEPS, "torch": torch.__version__,
                 "captum": __import__("captum").__version__, "models": {}}
    reference["models"]["resnet18"] = fx.run_model(
        "resnet18", lambda: fx.randomize(torchvision.models.resnet18(), fx.SEED), image_example, plain,
        "input", [], ["input"],
        [("internal_influence", "layer3", "output"),
         ("internal_influence", "layer4", "input"),
         ("internal_influence", "layer3.0.downsample", "output"),
         ("layer_conductance", "layer2", "output"),
         ("layer_integrated_gradients", "layer4.1", "output")],
        207, a.out, external=True)
    reference["models"]["mobilenet_v2"] = fx.run_model(
        "mobilenet_v2", lambda: fx.randomize(torchvision.models.mobilenet_v2(), fx.SEED + 1),
        image_example, plain, "input", [], ["input"],
        [("internal_influence", "features.7", "output"),
         ("internal_influence", "features.14", "input"),
         ("layer_conductance", "features.10.conv", "output")],
        207, a.out, external=False)

    def vit():
        import timm
        return fx.randomize(timm.create_model("vit_tiny_patch16_224", pretrained=False), fx.SEED + 2)

    reference["models"]["vit"] = fx.run_model(
        "vit", vit, image_example, plain, "input", [], ["input"],
        [("internal_influence", "blocks.5", "output"),
         ("internal_influence", "blocks.9.mlp.fc1", "output"),
         ("layer_conductance", "blocks.2", "output")],
        207, a.out, external=False)

    if a.minilm_dir:
        import transformers

        class BertHidden(transformers.BertModel):
            def forward(self, input_ids, attention_mask, token_type_ids):
                return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                       token_type_ids=token_type_ids).last_hidden_state

        tok = transformers.AutoTokenizer.from_pretrained(a.minilm_dir)
        enc = tok(["A simple recipe for homemade bread, baked in a hot oven.",
                   "The stock market fell sharply today."], return_tensors="pt", padding=True)
        fx.TOKENS.update(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                         token_type_ids=enc.token_type_ids)
        build = lambda: BertHidden.from_pretrained(a.minilm_dir, add_pooling_layer=False).eval()

        def example(dtype, m):
            return m.embeddings.word_embeddings(enc.input_ids).detach(), [enc.attention_mask, enc.token_type_ids]

        def forward(m):
            return lambda e, mk, t: transformers.BertModel.forward(
                m, inputs_embeds=e, attention_mask=mk, token_type_ids=t).last_hidden_state

        ref = fx.run_model(
            "minilm", build, example, forward, "embeddings.word_embeddings",
            ["attention_mask", "token_type_ids"], ["input_ids", "attention_mask", "token_type_ids"],
            [("internal_influence", "encoder.layer.2", "output"),
             ("internal_influence", "encoder.layer.4.attention.self.query", "output"),
             ("layer_integrated_gradients", "embeddings", "output")],
            (0, 5), a.out, external=False, explained_layer="embeddings.word_embeddings")
        ref["tokens"] = {k: v.tolist() for k, v in fx.TOKENS.items()}
        reference["models"]["minilm"] = ref
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
    for name, m in reference["models"].items():
        print(f"{name}: PyTorch float32 error (largest) {m['torch_f32_error']:.2e}")


if __name__ == "__main__":
    main()
