"""Speed of the Python face, measured in one run (`just bench-python`; needs torch for part 3).

1. the default-bank table (every row × 3 seeds) from Python vs the CLI (`retrain --rerun`);
2. a custom numpy loss (LOS) vs the built-in `los` row: the overhead per optimiser step;
3. the custom-loss row vs a plain PyTorch loop with the same loss on the same features
   (linear head from the stage-1 head, SGD momentum 0.9, lr 5e-4, batch 64, 20 epochs,
   cosine per epoch), 3 seeds each.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ltbench

ROOT = Path(__file__).resolve().parents[3]
BANK = ROOT / "features" / "fmnist-lt-ir100"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def numpy_los(logits, labels, ctx):
    k, d = ctx["num_classes"], 0.98
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    q = np.full_like(p, d / k)
    q[np.arange(len(labels)), labels] += 1 - d
    loss = float(-(q * np.log(p)).sum(axis=1).mean())
    return loss, ((p - q) / len(labels)).astype(np.float32)


def timed(f, n=3):
    best = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        best.append(time.perf_counter() - t)
    return min(best), max(best)


def main():
    bank = ltbench.Bank.open(BANK)
    cli = str(TARGET / "debug" / "retrain")
    with tempfile.TemporaryDirectory() as d:
        py = timed(lambda: ltbench.run(bank, "all", seeds=3, out=f"{d}/py", rerun=True, plots=False))
        sh = timed(lambda: subprocess.run(
            [cli, "--method", "all", "--seeds", "3", "--rerun", "--no-plots", "-q", "--out", f"{d}/cli"],
            check=True, capture_output=True))
        print(f"1. every row x 3 seeds: Python {py[0]:.2f}-{py[1]:.2f} s, CLI {sh[0]:.2f}-{sh[1]:.2f} s "
              f"(ratio {py[0] / sh[0]:.3f})")
        los = ltbench.Method.custom("np-los", numpy_los)
        b = timed(lambda: ltbench.run(bank, ["los"], seeds=1, out=f"{d}/b", rerun=True, plots=False, jobs=1))
        c = timed(lambda: ltbench.run(bank, [los], seeds=1, out=f"{d}/c", rerun=True, plots=False, jobs=1))
        steps = 20 * -(-bank._h.train_rows // 64)
        print(f"2. los built in {b[0]:.2f} s, numpy custom {c[0]:.2f} s for {steps} steps: "
              f"{(c[0] - b[0]) / steps * 1e6:.0f} us per step of overhead")
        c3 = timed(lambda: ltbench.run(bank, [los], seeds=3, out=f"{d}/c3", rerun=True, plots=False), n=1)[0]
    try:
        import torch
    except ImportError:
        print("3. torch is not importable: skipped")
        return
    torch.set_num_threads(2)
    sys.path.insert(0, str(ROOT / "crates" / "python" / "tests"))
    from test_ltbench import arrays, head  # the bank read with numpy

    (x, y, _), (xt, yt, xtf) = arrays("train"), arrays("test")
    X, Y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.copy())
    w0, b0 = (torch.from_numpy(a.copy()) for a in head())

    def torch_loop(seed):
        g = torch.Generator().manual_seed(seed)
        lin = torch.nn.Linear(X.shape[1], w0.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w0)
            lin.bias.copy_(b0)
        opt = torch.optim.SGD(lin.parameters(), lr=5e-4, momentum=0.9)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 20)
        for _ in range(20):
            order = torch.randperm(len(Y), generator=g)
            for s in range(0, len(Y), 64):
                i = order[s:s + 64]
                loss = torch.nn.functional.cross_entropy(lin(X[i]), Y[i], label_smoothing=0.98)
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        with torch.no_grad():
            zt = lin(torch.from_numpy(xt.astype(np.float32)))
        return (zt.argmax(1).numpy() == yt).mean()

    t = time.perf_counter()
    accs = [torch_loop(s) for s in range(3)]
    pt = time.perf_counter() - t
    print(f"3. LOS x 3 seeds: ltbench with the numpy custom loss {c3:.2f} s, a plain PyTorch loop "
          f"{pt:.2f} s (ratio {pt / c3:.2f}; PyTorch top-1 {100 * np.mean(accs):.2f} without TTA)")


if __name__ == "__main__":
    main()
