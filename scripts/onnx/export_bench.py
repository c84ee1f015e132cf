#!/usr/bin/env python3
"""The ONNX models of influence-bench's `onnx_resnet18_224` and `onnx_minilm` workloads, the same
computations as its `resnet18_224` and `minilm` workloads:

- resnet18_224.onnx (+ .onnx.data): torchvision's resnet18 with the seeded weights of
  scripts/resnet18/fixture.py (what influence_resnet::fixture computes in Rust), eval(),
  exported by the dynamo exporter (its default: external data, BatchNorms fused into the
  convolutions) with a dynamic batch;
- resnet18_224.torchscript.onnx: the same by the TorchScript exporter;
- minilm_similarity.onnx: all-MiniLM-L6-v2 (transformers' BertModel from --minilm-dir) with
  the workload's head: the cosine similarity of the sentence's mean-pooled, normalised
  embedding to the query's (a buffer), inputs input_ids and attention_mask, dynamic batch.

Needs: torch torchvision transformers onnx onnxscript numpy.
usage: python3 scripts/onnx/export_bench.py --out DIR [--minilm-dir ../shared/models/all-MiniLM-L6-v2]
"""
import argparse, os, sys, warnings

import torch
import torchvision

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resnet18"))
from fixture import weights  # noqa: E402

QUERY = "How do I bake bread at home?"
SENTENCE = "A simple recipe for homemade bread, baked in a hot oven."


def resnet(out):
    m = torchvision.models.resnet18()
    sd = m.state_dict()
    w = weights([(k, tuple(v.shape)) for k, v in sd.items()], 0)
    m.load_state_dict({k: (torch.from_numpy(w[k]) if k in w else v) for k, v in sd.items()})
    m.eval()
    x = torch.zeros(1, 3, 224, 224)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(m, (x,), os.path.join(out, "resnet18_224.onnx"), input_names=["x"],
                      dynamic_shapes=({0: batch},))
    torch.onnx.export(m, (x,), os.path.join(out, "resnet18_224.torchscript.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})


def minilm(out, model_dir):
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)

    class Similarity(transformers.BertModel):
        def embed(self, input_ids=None, attention_mask=None, inputs_embeds=None):
            hidden = super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds,
                                     attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

        def forward(self, input_ids, attention_mask):
            return (self.embed(input_ids, attention_mask) * self.query).sum(1)

    m = Similarity.from_pretrained(model_dir, add_pooling_layer=False).eval()
    q = tok([QUERY], return_tensors="pt")
    with torch.no_grad():
        m.register_buffer("query", m.embed(q.input_ids, q.attention_mask))
    s = tok([SENTENCE], return_tensors="pt")
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(m, (s.input_ids, s.attention_mask), os.path.join(out, "minilm_similarity.onnx"),
                      input_names=["input_ids", "attention_mask"], external_data=False,
                      dynamic_shapes=({0: batch}, {0: batch}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--minilm-dir")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    resnet(a.out)
    if a.minilm_dir:
        minilm(a.out, a.minilm_dir)
    print("wrote", sorted(os.listdir(a.out)))


if __name__ == "__main__":
    main()
