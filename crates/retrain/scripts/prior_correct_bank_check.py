"""LADE's test-time prior rule on a real bank, independently of the engine: the rows that train
nothing (stage1, tau-norm, logit-adjust, prior-correct, ncm) are computed here in numpy from the
bank's files, corrected for every test prior of a results folder's prior-shift.csv as LADE does
(hyperconnect/LADE run_networks.py:594-599: a plain-CE dot-product model gets - log pi_train,
every prior-balanced model + log q; the paper's + log q kept on the first branch), and compared
with what `retrain --prior-correct` wrote. For every row of the folder, a balanced row's
uniform-prior accuracy must equal its uncorrected one (table1.csv).

    /tmp/npvenv/bin/python crates/retrain/scripts/prior_correct_bank_check.py BANK RESULTS

BANK: a bank folder (train/test/head.safetensors); RESULTS: the folder of
`retrain --bank BANK --method all --seeds 1 --prior-correct --test-prior <all priors> --out RESULTS`
(flip TTA as the LOS protocol: logits averaged over features and features_flip). Needs numpy,
safetensors and polars; not part of CI (the committed fixture test is `zoo_parity`).
"""
import sys
from pathlib import Path

import numpy as np
import polars as pl
from safetensors.numpy import load_file

bank, res = Path(sys.argv[1]), Path(sys.argv[2])
tr = load_file(bank / "train.safetensors")
te = load_file(bank / "test.safetensors")
# a bank without head.safetensors gets a head fitted by retrain (not saved): then only the rows
# that need no head (ncm) are recomputed here
hd = load_file(bank / "head.safetensors") if (bank / "head.safetensors").exists() else None
X = tr["features"].astype(np.float64)
Y = tr["labels"]
views = [te["features"].astype(np.float64)]
if "features_flip" in te:
    views.append(te["features_flip"].astype(np.float64))
YT = te["labels"]
K = int(Y.max()) + 1
n = np.bincount(Y, minlength=K).astype(np.float64)
pi = n / n.sum()
lpi = np.log(pi)


def tta(f):
    return sum(f(v) for v in views) / len(views)


def normalize(a):
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


# Decoupling KNNClassifier (cl2n, l2): centre on the train mean, L2-normalise, class means.
mean = X.mean(0)
Xc = normalize(X - mean)
mu = np.stack([Xc[Y == c].mean(0) for c in range(K)])
rows = {
    # name: (final test logits, LADE's branch)
    "ncm": (tta(lambda v: -((normalize(v - mean)[:, None, :] - mu[None]) ** 2).sum(-1)), "balanced"),
}
if hd is not None:
    W, b = hd["weight"].astype(np.float64), hd["bias"].astype(np.float64)
    rows.update({
        "stage1": (tta(lambda v: v @ W.T + b), "train"),
        "tau-norm": (tta(lambda v: v @ (W / np.linalg.norm(W, axis=1, keepdims=True)).T),
                     "balanced"),
        "logit-adjust": (tta(lambda v: v @ W.T + b - lpi), "balanced"),
        "prior-correct": (tta(lambda v: v @ W.T + b - lpi - np.log(K)), "balanced"),
    })


def weights(prior):
    rank = np.empty(K, dtype=np.int64)
    rank[np.lexsort((np.arange(K), -n))] = np.arange(K)
    if prior == "uniform":
        w = np.ones(K)
    else:
        kind, r = prior.split("-")
        e = rank if kind == "forward" else (K - 1 - rank)
        w = float(r) ** (-e / (K - 1))
    return w / w.sum()


shift = pl.read_csv(res / "prior-shift.csv")
table = pl.read_csv(res / "table1.csv")
worst = 0.0
for prior in shift["prior"].unique(maintain_order=True).to_list():
    q = weights(prior)
    for name, (z, branch) in rows.items():
        s = (-lpi + np.log(q)) if branch == "train" else np.log(q)
        hit = (z + s).argmax(1) == YT
        acc = np.array([hit[YT == c].mean() for c in range(K)])
        mine = 100 * float((q * acc).sum())
        got = shift.filter((pl.col("method") == name) & (pl.col("prior") == prior))["all"][0]
        worst = max(worst, abs(mine - got))
        print(f"{prior:12s} {name:14s} LADE rule {mine:7.3f}  retrain {got:7.3f}")
print(f"largest difference on the untrained rows: {worst:.4f} pt")
uni = shift.filter(pl.col("prior") == "uniform")
moved = []
for name in uni["method"].to_list():
    a = uni.filter(pl.col("method") == name)["all"][0]
    t = table.filter(pl.col("method") == name)["all"][0]
    moved.append((name, a - t))
print("uniform-prior corrected minus uncorrected (All, pt):")
print("  " + ", ".join(f"{m} {d:+.2f}" for m, d in moved))
