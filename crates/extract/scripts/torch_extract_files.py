"""PyTorch's side of the GPU check's file extraction: what a user writes today to turn an
ImageNet-LT-layout JPEG tree into 2048-d features with a frozen torchvision backbone, timed end
to end on the same files as `extract --dataset imagenet-lt --root ROOT --arch ARCH`.

  python3 torch_extract_files.py ROOT LIST[,LIST...] ARCH [--batch 32] [--workers N]
                                 [--device cuda|cpu] [--limit N] [--flip auto|all|none]
                                 [--threads N]

ROOT: the image root the list paths are relative to; LIST: one or more `<path> <label>` list
files, comma-separated (e.g. ROOT/ImageNet_LT_{train,val,test}.txt), read one after the
other as ltbench reads its splits; ARCH: resnet50 | resnext50-32x4d (torchvision resnet50 /
resnext50_32x4d, random weights: weights=None; fc = Identity, so the output is the pooled
2048-d feature). Eval mode, fp32, `torch.inference_mode()`, cuDNN with benchmark mode on
CUDA. Per image: PIL open + convert("RGB"), Resize(256) (bilinear, antialiased), CenterCrop(224),
ToTensor, Normalize (ImageNet mean / std), in a DataLoader(num_workers=N, pin_memory on CUDA,
batch B, in order). For fairness with ltbench, which also writes `features_flip` (the
left-right flipped view) for val and test, the flipped batch goes through the network too for
every list whose file name does not contain "train" (`--flip auto`; `all` / `none` to force);
features (and flipped features) are copied to the host. Timed from the first list's loader
creation (the model is built and on the device before; the first batch, cuDNN's autotuning
and the workers' start are included) to the last copy. --limit N keeps the first N lines of
each list (as ltbench's --limit). Prints

  torch ARCH: N images in S s = R images/s (workers W, batch B, device D, ...)
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, root, list_path, limit, transform):
        self.items = []
        with open(list_path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                path, label = line.split()
                self.items.append((os.path.join(root, path), int(label)))
                if limit is not None and len(self.items) >= limit:
                    break
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        path, label = self.items[i]
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img), label


def build(arch):
    import torchvision
    if arch in ("resnet50",):
        m = torchvision.models.resnet50(weights=None)
    elif arch in ("resnext50-32x4d", "resnext50_32x4d"):
        m = torchvision.models.resnext50_32x4d(weights=None)
    else:
        sys.exit(f"unknown arch {arch} (resnet50 | resnext50-32x4d)")
    m.fc = nn.Identity()
    return m


def main():
    ap = argparse.ArgumentParser(description="torchvision feature extraction of list files, timed")
    ap.add_argument("root")
    ap.add_argument("lists", help="list file(s), comma-separated")
    ap.add_argument("arch")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--flip", choices=("auto", "all", "none"), default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the main process")
    a = ap.parse_args()
    import torchvision.transforms as T
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    tf = T.Compose([
        T.Resize(256),
        T.CenterCrop(224),
        T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    lists = [p for p in a.lists.split(",") if p]
    model = build(a.arch).eval().to(dev)
    if cuda:
        torch.cuda.synchronize()
    n = flipped = 0
    feats = []
    t0 = time.time()
    with torch.inference_mode():
        for lp in lists:
            ds = ListDataset(a.root, lp, a.limit, tf)
            flip = a.flip == "all" or (a.flip == "auto" and "train" not in os.path.basename(lp))
            dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=False,
                                             num_workers=a.workers, pin_memory=cuda)
            for x, y in dl:
                x = x.to(dev, non_blocking=True)
                f = model(x)
                out = [f.float().cpu()]
                if flip:
                    out.append(model(x.flip(3)).float().cpu())
                    flipped += len(y)
                feats.append(out)
                n += len(y)
    if cuda:
        torch.cuda.synchronize()
    secs = time.time() - t0
    dim = feats[0][0].shape[1] if feats else 0
    name = torch.cuda.get_device_name(dev) if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {a.arch}: {n} images in {secs:.2f} s = {n / secs:.1f} images/s "
          f"(workers {a.workers}, batch {a.batch}, device {a.device}; {len(lists)} lists, "
          f"D={dim}; flipped view also forwarded for {flipped} val/test images, as ltbench's "
          f"features_flip; fp32, torch {torch.__version__}, {name})")


if __name__ == "__main__":
    main()
