"""Ground truth for ltbench's stage 1 on Fashion-MNIST-LT IR=100 (issue 4).

The same small CNN, LT subset, normalisation, augmentation and recipe as
`extract --dataset fmnist-lt --stage1`, in PyTorch (CPU). Prints per-epoch loss / train
accuracy and the final test top-1 (All / Many / Medium / Few, shot groups of the bank's
meta.json: many > 1200, few < 240 train images).

  python3 crates/extract/scripts/stage1_fmnist_lt_torch.py --epochs 3 [--pool-grad-scale 0.25]

--pool-grad-scale s multiplies the gradient through every max-pool by s (s = 0.25 imitates
candle 0.11.1's max_pool2d backward, which returns grad * (#maxima / 4) instead of grad).
"""
import argparse, gzip, math, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = "/usr/share/datasets/fashion-mnist"
COUNTS = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]


def idx(path, rank):
    b = gzip.open(path).read()
    dims = [int.from_bytes(b[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(prefix):
    x = idx(f"{ROOT}/{prefix}-images-idx3-ubyte.gz", 3)
    y = idx(f"{ROOT}/{prefix}-labels-idx1-ubyte.gz", 1).astype(np.int64)
    return x, y


class ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, s):
        ctx.s = s
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.s, None


class SmallCnn(nn.Module):
    def __init__(self, k=10, pool_grad_scale=1.0):
        super().__init__()
        self.s = pool_grad_scale
        chans = [(1, 32), (32, 64), (64, 128)]
        for i, (a, b) in enumerate(chans):
            setattr(self, f"conv{i+1}", nn.Conv2d(a, b, 3, padding=1, bias=False))
            setattr(self, f"bn{i+1}", nn.BatchNorm2d(b))
        self.fc = nn.Linear(128, k)

    def features(self, x):
        for i in range(3):
            x = F.relu(getattr(self, f"bn{i+1}")(getattr(self, f"conv{i+1}")(x)))
            if i >= 1:
                x = F.max_pool2d(x, 2)
                if self.s != 1.0:
                    x = ScaleGrad.apply(x, self.s)
        return x.mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def augment(xb, pad, gen):
    # random crop with zero padding + horizontal flip, per image
    b, _, h, w = xb.shape
    xp = F.pad(xb, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    out = torch.empty_like(xb)
    for i in range(b):
        v = xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = v.flip(2) if flip[i] else v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--wd", type=float, default=5e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pad", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool-grad-scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    keep = np.concatenate([np.flatnonzero(ytr == c)[:n] for c, n in enumerate(COUNTS)])
    xtr, ytr = xtr[keep], ytr[keep]
    norm = lambda x: (torch.from_numpy(x.astype(np.float32) / 255.0)[:, None] - 0.286) / 0.353
    Xtr, Ytr = norm(xtr), torch.from_numpy(ytr)
    # augmentation pads the *normalised* image with zeros in ltbench? No: ltbench pads the raw
    # uint8 image with 0 (black) and then normalises, so pad with the normalised value of 0.
    zero = (0.0 - 0.286) / 0.353
    Xte, Yte = norm(xte), torch.from_numpy(yte)
    model = SmallCnn(pool_grad_scale=a.pool_grad_scale)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs)
    gen = torch.Generator().manual_seed(a.seed)
    t_start = time.time()
    for ep in range(a.epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(Ytr), generator=gen)
        tot, correct, loss_sum = 0, 0, 0.0
        for s in range(0, len(perm), a.batch):
            r = perm[s:s + a.batch]
            if len(r) < 2:
                continue
            xb = augment(Xtr[r] - zero, a.pad, gen) + zero
            yb = Ytr[r]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(r)
            correct += (out.argmax(1) == yb).sum().item()
            tot += len(r)
        sched.step()
        print(f"epoch {ep+1}: loss {loss_sum/tot:.4f} train acc {100*correct/tot:.2f} "
              f"({time.time()-t0:.1f} s, {tot/(time.time()-t0):.0f} img/s)", flush=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(Xte[i:i + 1000]).argmax(1) for i in range(0, len(Yte), 1000)])
    acc = [(pred[Yte == c] == c).float().mean().item() * 100 for c in range(10)]
    many = [c for c, n in enumerate(COUNTS) if n > 1200]
    few = [c for c, n in enumerate(COUNTS) if n < 240]
    med = [c for c in range(10) if c not in many and c not in few]
    g = lambda cs: sum(acc[c] for c in cs) / len(cs)
    print(f"test top-1 {100*(pred == Yte).float().mean().item():.2f}  many {g(many):.1f}  "
          f"medium {g(med):.1f}  few {g(few):.1f}  per-class {[round(v, 1) for v in acc]}  "
          f"train wall {time.time()-t_start:.0f} s")


if __name__ == "__main__":
    main()
