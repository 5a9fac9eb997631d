"""What a bank looks like to a stage-2 method (README, "The second real bank"): per bank, K, D,
train rows, the mean L2 norm of the train features overall and per shot group, how far apart
the classes are (mean cosine between the class means of centred features), and how separable
they are (the test accuracy of the nearest centred class mean). Needs numpy and safetensors.

Usage: python bank_profile.py BANK [BANK ...]
"""

import json
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file


def profile(bank: pathlib.Path) -> str:
    meta = json.loads((bank / "meta.json").read_text())
    tr = load_file(str(bank / "train.safetensors"))
    te = load_file(str(bank / "test.safetensors"))
    x, y = tr["features"].astype(np.float64), tr["labels"].astype(np.int64)
    xt, yt = te["features"].astype(np.float64), te["labels"].astype(np.int64)
    k = int(meta["num_classes"])
    counts = np.bincount(y, minlength=k)
    many, few = meta["shots"]["many_above"], meta["shots"]["few_below"]
    group = np.where(counts > many, "many", np.where(counts < few, "few", "medium"))
    norms = np.linalg.norm(x, axis=1)
    by_group = {g: norms[np.isin(y, np.flatnonzero(group == g))].mean() for g in ("many", "medium", "few")}
    mu = x.mean(0)
    means = np.stack([(x[y == c] - mu).mean(0) for c in range(k)])
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    cos = unit @ unit.T
    off = cos[~np.eye(k, dtype=bool)].mean()
    # nearest centred class mean on the test split
    d = ((xt - mu)[:, None, :] - means[None]) ** 2
    ncm = (d.sum(-1).argmin(1) == yt).mean() * 100
    sparsity = (x == 0).mean() * 100
    return (f"{bank.name}: K={k} D={x.shape[1]} train={len(y)} | feature L2 norm {norms.mean():.2f} "
            f"(many {by_group['many']:.2f}, medium {by_group['medium']:.2f}, few {by_group['few']:.2f}); "
            f"zeros {sparsity:.1f} %; class means: mean pairwise cosine {off:.3f}; "
            f"nearest centred class mean on test {ncm:.1f} %")


if __name__ == "__main__":
    for b in sys.argv[1:]:
        print(profile(pathlib.Path(b)))
