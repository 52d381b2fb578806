"""PyTorch peer of bench/losses.ts: the same losses forward and backward on unit rows (gradient of
the anchors), the same losses with the head in front (gradient of W), the head's two products
alone, and the AdamW step, on the inputs the TypeScript side wrote. Prints one JSON line: per case
the median ms and the loss; the gradients go to WORK/<case>.torch.f32 for comparison.
Usage: /usr/bin/python3 bench/losses_torch.py WORK THREADS"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

work, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
meta = json.load(open(f"{work}/meta.json"))
B, D = meta["batch"], meta["dim"]


def load(name, shape):
    return torch.from_numpy(np.fromfile(f"{work}/{name}.f32", dtype=np.float32).reshape(shape))


xa, xp, xn = load("xa", (B, D)), load("xp", (B, D)), load("xn", (B, D))
targets = load("targets", (B,))
w0, b0 = load("w", (D, D)), load("b", (D,))
scale, margin = meta["scale"], meta["margin"]


WARM_UP_S = 0.2


def head(x, w, b):
    return F.normalize(torch.tanh(x @ w.T + b), dim=1)


def timed(step):
    # Warm-up: three repetitions and at least WARM_UP_S, as the Node side does.
    start = time.perf_counter()
    warm = 0
    while warm < 3 or time.perf_counter() - start < WARM_UP_S:
        step()
        warm += 1
    times = []
    for r in range(meta["reps"]):
        t0 = time.perf_counter()
        loss, grad = step()
        times.append((time.perf_counter() - t0) * 1e3)
    return loss, grad, float(np.median(times))


def mnrl(a, p, n):
    return F.cross_entropy(scale * a @ p.T, torch.arange(B))


def triplet(a, p, n):
    return torch.relu((1 - (a * p).sum(1)) - (1 - (a * n).sum(1)) + margin).mean()


def cosine_mse(a, p, n):
    return (((a * p).sum(1) - targets) ** 2).mean()


def cosent(a, p, n):
    cos = (a * p).sum(1) * scale
    diff = cos[None, :] - cos[:, None]  # diff[i, j] = s (cos_j - cos_i)
    mask = targets[:, None] > targets[None, :]
    logits = torch.cat([torch.zeros(1), diff[mask]])
    return torch.logsumexp(logits, 0)


losses = {"mnrl": mnrl, "triplet": triplet, "cosine_mse": cosine_mse, "cosent": cosent}
out = {}
with torch.no_grad():
    units = [head(x, w0, b0) for x in (xa, xp, xn)]
# Leaves made once, their gradients cleared per step, as a training loop does.
leaves = [u.clone().requires_grad_(True) for u in units]
for name, fn in losses.items():
    # Every side's gradient, as the native losses give (the triplet loss reads all three sides).
    def raw_step():
        for leaf in leaves:
            leaf.grad = None
        loss = fn(*leaves)
        loss.backward()
        return loss, leaves[0].grad

    loss, grad, ms = timed(raw_step)
    grad.numpy().astype(np.float32).tofile(f"{work}/{name}_raw.torch.f32")
    out[f"{name}_raw"] = {"ms": ms, "loss": float(loss)}

for name, fn in losses.items():
    # Only the sides the loss reads go through the head (negatives: the triplet loss alone).
    sides = (xa, xp, xn) if name == "triplet" else (xa, xp)

    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)

    def step():
        w.grad = None
        b.grad = None
        embedded = [head(x, w, b) for x in sides]
        loss = fn(*embedded, *([None] * (3 - len(embedded))))
        loss.backward()
        return loss, w.grad

    loss, grad, ms = timed(step)
    grad.numpy().astype(np.float32).tofile(f"{work}/{name}.torch.f32")
    out[name] = {"ms": ms, "loss": float(loss)}

# The head's two products alone at the MNRL step's shapes, on the same stacked rows as the Node side.
x2, g2 = torch.cat([xa, xp]), torch.cat([xn, xa])


def products():
    x2 @ w0.T
    return torch.zeros(()), g2.T @ x2


_, grad, ms = timed(products)
grad.numpy().astype(np.float32).tofile(f"{work}/products.torch.f32")
out["products"] = {"ms": ms, "loss": 0.0}

w = w0.clone().requires_grad_(True)
opt = torch.optim.AdamW([w], lr=1e-3, weight_decay=0.01)
w.grad = load("w", (D, D)) * 0.01
_, _, ms = timed(lambda: (opt.step(), None))
out["adamw"] = {"ms": ms}
print(json.dumps(out))
