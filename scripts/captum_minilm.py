#!/usr/bin/env python3
"""Captum's timing of the `minilm` benchmark workload, beside influence-bench's: Internal
Influence at encoder layer 2 of all-MiniLM-L6-v2 (Hugging Face transformers, float32, CPU) for
the cosine similarity of one sentence to a query; input = the sentence's word embeddings,
baseline zeros, attention mask as an additional forward argument, n_steps 50, Gauss-Legendre.

Needs: pip install torch captum transformers
usage: captum_minilm.py --model-dir DIR [--repeats N] [--n-steps N] [--json OUT]
Prints: minilm  median_s  min_s  max_s   (seconds per attribute() call, after one warm-up)
"""
import argparse, json, statistics, time

import torch
from captum.attr import InternalInfluence
from transformers import AutoModel, AutoTokenizer

QUERY = "How do I bake bread at home?"
SENTENCE = "A simple recipe for homemade bread, baked in a hot oven."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-steps", type=int, default=50)
    ap.add_argument("--json")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModel.from_pretrained(a.model_dir).eval()

    def embed(inputs_embeds, mask):
        hidden = model(inputs_embeds=inputs_embeds, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=1)

    words = lambda ids: model.embeddings.word_embeddings(ids).detach()
    q = tok([QUERY], return_tensors="pt")
    with torch.no_grad():
        query = embed(words(q.input_ids), q.attention_mask)
    s = tok([SENTENCE], return_tensors="pt")
    x, mask = words(s.input_ids), s.attention_mask

    def similarity(inputs_embeds, mask):
        return (embed(inputs_embeds, mask) * query).sum(1)

    ii = InternalInfluence(similarity, model.encoder.layer[2].output)
    run = lambda: ii.attribute(x, additional_forward_args=(mask,), n_steps=a.n_steps, method="gausslegendre")
    run()  # warm-up
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
    result = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
              "tokens": int(s.input_ids.shape[1]), "n_steps": a.n_steps, "threads": torch.get_num_threads()}
    print(f"minilm\t{result['median_s']:.4f}\t{result['min_s']:.4f}\t{result['max_s']:.4f}")
    if a.json:
        json.dump({"minilm": result}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
