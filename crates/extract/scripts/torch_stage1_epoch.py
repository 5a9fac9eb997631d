"""PyTorch's side of the GPU check's stage-1 epoch: one epoch of the CIFAR ResNet-34 as
`extract --dataset cifar100-lt --arch resnet34-cifar --stage1 --epochs 1` trains it, on the
same CIFAR-100 binary set (e.g. Fashion-MNIST from fmnist_as_cifar.py).

  python3 torch_stage1_epoch.py CIFAR_DIR [--ir 100] [--img-max 500] [--classes 100]
                                [--batch 64] [--device cuda|cpu] [--threads N] [--seed 0]

CIFAR_DIR holds cifar-100-binary/train.bin (or is that folder). The same long-tailed subset as
ltbench (`n_c = int(img_max * (1/ir)^(c/(K-1)))`, the first n_c images of each fine class in
file order), the same model (torchvision ResNet + BasicBlock [3, 4, 6, 3], 3x3 stride-1 stem,
no max-pool, 512-d pooled feature, a K-way linear head), loss (cross-entropy), optimiser (SGD
lr 0.01, momentum 0.9, weight decay 5e-3, coupled), batch 64 (batches of one row skipped, as
ltbench), augmentation (random 32x32 crop of the zero-padded (4) uint8 image + horizontal
flip, then ToTensor + Normalize with the CIFAR mean / std). The data pipeline is in memory:
the whole uint8 subset sits on the device and each batch is cropped, flipped and normalised
there with a few vectorised ops, so this measures the GPU, not a loader. fp32, cuDNN
(benchmark mode on). The epoch is timed from its first batch (included) to the last step's
completion (synchronised); printed as

  torch stage1 epoch: N images in S s = R images/s (...)
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)  # ltbench's Normalize::cifar() (LOS = LTWB = LDAM)
STD = (0.2023, 0.1994, 0.2010)
REC = 2 + 3 * 32 * 32


def read_bin(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data or len(data) % REC:
        sys.exit(f"{path}: size {len(data)} is not a multiple of the {REC}-byte record")
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, REC)
    return t[:, 2:].reshape(-1, 3, 32, 32).clone(), t[:, 1].long().clone()


def lt_subset(labels, k, img_max, ir):
    idx = []
    for c in range(k):
        n = int(img_max * (1.0 / ir) ** (c / (k - 1))) if k > 1 else int(img_max)
        rows = (labels == c).nonzero().flatten()[:n]
        if len(rows) < n:
            sys.exit(f"class {c} has {len(rows)} training images, the IR={ir} profile needs {n}")
        idx.append(rows)
    return torch.cat(idx)


def resnet34_cifar(k):
    from torchvision.models.resnet import BasicBlock, ResNet
    m = ResNet(BasicBlock, [3, 4, 6, 3], num_classes=k)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m  # adaptive avg-pool of the 4x4 map = ltbench's avg_pool2d(4)


def main():
    ap = argparse.ArgumentParser(description="one stage-1 epoch of the CIFAR ResNet-34 in PyTorch")
    ap.add_argument("root")
    ap.add_argument("--ir", type=float, default=100.0)
    ap.add_argument("--img-max", type=float, default=500.0)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--wd", type=float, default=5e-3)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--pad", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    d = a.root
    if os.path.isdir(os.path.join(d, "cifar-100-binary")):
        d = os.path.join(d, "cifar-100-binary")
    x, y = read_bin(os.path.join(d, "train.bin"))
    keep = lt_subset(y, a.classes, a.img_max, a.ir)
    x, y = x[keep], y[keep]
    n = len(y)
    model = resnet34_cifar(a.classes).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.wd)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)
    p = a.pad
    xp = F.pad(x, (p, p, p, p)).to(dev)  # uint8, zero frame: crop of the padded raw image
    yd = y.to(dev)
    ar = torch.arange(32, device=dev)
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    order = torch.randperm(n, device=dev, generator=gen)
    seen, correct, loss_sum, steps = 0, torch.zeros((), device=dev), torch.zeros((), device=dev), 0
    for s in range(0, n, a.batch):
        r = order[s:s + a.batch]
        b = len(r)
        if b < 2:
            continue  # BatchNorm cannot normalise a batch of one (as ltbench)
        dy = torch.randint(0, 2 * p + 1, (b,), device=dev, generator=gen)
        dx = torch.randint(0, 2 * p + 1, (b,), device=dev, generator=gen)
        flip = torch.rand(b, device=dev, generator=gen) < 0.5
        rows = (dy[:, None] + ar)[:, None, :, None]  # b,1,32,1
        cols = (dx[:, None] + ar)
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # b,1,1,32
        xb = xp[r[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None], rows, cols]
        xb = (xb.float() / 255.0 - mean) / std
        yb = yd[r]
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * b
        correct += (out.argmax(1) == yb).sum()
        seen += b
        steps += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.time() - t0
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch stage1 epoch: {seen} images in {secs:.2f} s = {seen / secs:.1f} images/s "
          f"(ResNet-34 CIFAR, K={a.classes}, batch {a.batch}, {steps} steps, fp32, "
          f"on-device crop+flip; loss {loss_sum.item() / seen:.4f}, train acc "
          f"{100 * correct.item() / seen:.2f}%; torch {torch.__version__}, {name})")


if __name__ == "__main__":
    main()
