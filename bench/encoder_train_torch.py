"""PyTorch peer of bench/encoder-train.ts: one training step (forward, MNRL loss, backward to every
parameter) of the same Universal Sentence Encoder lite graph with the same weights and batch, the
texts padded to the batch's longest with an attention mask, as a PyTorch training loop batches
them. Prints one JSON line: the median ms and the loss; gradients of a few tensors go to
WORK/<name>.torch.f32 for comparison.
Usage: /usr/bin/python3 bench/encoder_train_torch.py WORK THREADS"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

work, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
meta = json.load(open(f"{work}/meta.json"))
dims, layout = meta["dims"], meta["layout"]
flat = torch.from_numpy(np.fromfile(f"{work}/params.f32", dtype=np.float32))
timing = torch.from_numpy(np.fromfile(f"{work}/timing.f32", dtype=np.float32)).view(dims["maxTokens"], dims["embed"])
P = {t["name"]: flat[t["offset"]:t["offset"] + t["rows"] * t["cols"]].view(t["rows"], t["cols"]).clone().requires_grad_(True) for t in layout}
offsets = meta["offsets"]
tokens = meta["tokens"]
B = len(offsets) - 1
T = max(offsets[i + 1] - offsets[i] for i in range(B))
ids = torch.zeros(B, T, dtype=torch.long)
mask = torch.zeros(B, T)
for i in range(B):
    n = offsets[i + 1] - offsets[i]
    ids[i, :n] = torch.tensor(tokens[offsets[i]:offsets[i + 1]])
    mask[i, :n] = 1
eps = dims.get("lnEps", 1e-6)


def forward():
    emb = P["embeddings"][ids]
    x = (emb + (emb + timing[:T])) * mask[..., None]
    bias = ((1 - mask) * -1e9)[:, None, None, :]
    for l, d in enumerate(dims["layers"]):
        p = lambda n: P[f"layer{l}.{n}"]
        wi, heads = d["widthIn"], d["heads"]
        h = F.layer_norm(x, (wi,), p("ln1.scale")[0], p("ln1.bias")[0], eps)
        qkv = h @ p("qkv.weight") + p("qkv.bias")[0]
        q, k, v = (t.view(B, T, heads, wi // heads).transpose(1, 2) for t in qkv.split(wi, dim=-1))
        s = (q * d["queryScale"]) @ k.transpose(-1, -2) + bias
        ctx = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, wi)
        res = x @ p("residual.weight") + p("residual.bias")[0] if d["residualProjection"] else x
        x1 = ctx @ p("out.weight") + p("out.bias")[0] + res
        f = F.relu(F.layer_norm(x1, (d["widthOut"],), p("ln2.scale")[0], p("ln2.bias")[0], eps) @ p("ffn1.weight") + p("ffn1.bias")[0])
        x = f @ p("ffn2.weight") + p("ffn2.bias")[0] + x1
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(torch.tanh(pooled @ P["head.weight"].T + P["head.bias"][0]), dim=1)


def step():
    for t in P.values():
        t.grad = None
    e = forward()
    half = B // 2
    scores = meta["scale"] * e[:half] @ e[half:].T
    loss = F.cross_entropy(scores, torch.arange(half))
    loss.backward()
    return loss.item()


times = []
for r in range(meta["reps"] + 1):
    t0 = time.perf_counter()
    loss = step()
    if r >= 1:
        times.append((time.perf_counter() - t0) * 1e3)
for name in meta["compare"]:
    P[name].grad.numpy().astype(np.float32).tofile(f"{work}/{name}.torch.f32")
print(json.dumps({"ms": sorted(times)[len(times) // 2], "loss": loss, "padded_tokens": B * T}))
