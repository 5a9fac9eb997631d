"""Fashion-MNIST as a CIFAR-100 binary set, for stage-1 benchmarks of the CIFAR ResNet-34
(`extract --dataset cifar100-lt --root OUT --arch resnet34-cifar --stage1`) on machines
without CIFAR-100. Standard library only (gzip, struct; no numpy).

  python3 fmnist_as_cifar.py [IDX_DIR] OUT [--train N] [--test N] [--fine-per-class M]
                             [--synthetic-if-missing]

Reads IDX_DIR/{train,t10k}-{images-idx3-ubyte,labels-idx1-ubyte}.gz (default
/usr/share/datasets/fashion-mnist) and writes OUT/cifar-100-binary/{train.bin,test.bin}: per
image 1 coarse-label byte, 1 fine-label byte, 3072 pixel bytes channel-major 3x32x32 (the
28x28 grey image in the middle of a zero 32x32 frame, copied to the three channels).

Labels: the coarse label is the Fashion-MNIST label. ltbench's CIFAR-100 loader takes fine
labels 0..99 and its long-tailed subset (`--ir`, `--img-max`, the exponential profile) needs
at least one image in *every* one of the 100 classes -- with the 10 Fashion-MNIST labels as
fine labels, classes 10..99 are empty and `extract` stops ("class 10 has 0 training images"),
whatever --ir / --img-max. So by default each Fashion-MNIST class is split into M = 10 fine
classes: fine = 10 * label + (rank of the image within its class mod 10), which gives 600
train / 100 test images per fine class -- CIFAR-100's sizes (50 000 train at --ir 1,
CIFAR-100-LT's 10 847 at the default --ir 100 --img-max 500). `--fine-per-class 1` keeps
fine = Fashion-MNIST label (a 10-class set: fine for the reader, not for cifar100-lt's LT
subset). With M = 10, OUT/cifar-100-binary/fine_label_names.txt names the 100 classes.

--train N / --test N keep the first N images of each split (dry runs).
--synthetic-if-missing: when the IDX files are not there (a GPU machine without the data
set), write deterministic synthetic 28x28 images instead (a class-dependent pattern plus
noise; 60 000 / 10 000 as Fashion-MNIST, balanced labels) and say so.
"""
import argparse
import gzip
import os
import random
import struct
import sys
import time

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
NAMES = ["t-shirt_top", "trouser", "pullover", "dress", "coat",
         "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
SIDE, PAD = 28, 2


def read_idx(path, want_rank):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or rank != want_rank:
        sys.exit(f"{path}: not a uint8 IDX file of rank {want_rank}")
    dims = struct.unpack(f">{rank}I", data[4:4 + 4 * rank])
    body = data[4 + 4 * rank:]
    n = 1
    for d in dims:
        n *= d
    if len(body) != n:
        sys.exit(f"{path}: {len(body)} data bytes, the header says {n}")
    return dims, body


def load_split(root, prefix):
    (n, h, w), images = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), 3)
    (m,), labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), 1)
    if (h, w) != (SIDE, SIDE) or m != n:
        sys.exit(f"{root}/{prefix}: {n} images of {h}x{w}, {m} labels; expected 28x28, one label each")
    return images, labels


def synthetic_split(n, seed):
    """n deterministic 28x28 images, labels i mod 10 shuffled: a class stripe pattern + noise."""
    rng = random.Random(seed)
    labels = bytes(i % 10 for i in range(n))
    labels = bytes(rng.sample(labels, n))
    patterns = []
    for c in range(10):
        p = bytearray(SIDE * SIDE)
        for y in range(SIDE):
            for x in range(SIDE):
                p[y * SIDE + x] = 200 if ((x * (c % 5 + 1) + y * (c // 5 + 1)) // 4) % 2 else 40
        patterns.append(bytes(p))
    shift3 = bytes(b >> 3 for b in range(256))
    big = [int.from_bytes(p, "big") for p in patterns]
    out = bytearray()
    for i in range(n):
        # pattern bytes (40 or 200) + noise bytes (0..31): no carry between bytes
        noise = int.from_bytes(rng.randbytes(SIDE * SIDE).translate(shift3), "big")
        out += (big[labels[i]] + noise).to_bytes(SIDE * SIDE, "big")
    return bytes(out), labels


def padded_plane(img):
    """A 28x28 grey image in the middle of a zero 32x32 plane (1024 bytes)."""
    side = SIDE + 2 * PAD
    edge = bytes(PAD * side)
    lr = bytes(PAD)
    rows = [lr + img[y * SIDE:(y + 1) * SIDE] + lr for y in range(SIDE)]
    return edge + b"".join(rows) + edge


def write_split(path, images, labels, keep, per_class):
    n = min(len(labels), keep) if keep is not None else len(labels)
    seen = [0] * 10
    counts = {}
    with open(path, "wb") as f:
        for i in range(n):
            lab = labels[i]
            if lab > 9:
                sys.exit(f"label {lab} at image {i}: Fashion-MNIST labels are 0..9")
            fine = lab * per_class + seen[lab] % per_class if per_class > 1 else lab
            seen[lab] += 1
            counts[fine] = counts.get(fine, 0) + 1
            plane = padded_plane(images[i * SIDE * SIDE:(i + 1) * SIDE * SIDE])
            f.write(bytes((lab, fine)) + plane * 3)
    return n, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", metavar="[IDX_DIR] OUT")
    ap.add_argument("--train", type=int, default=None, help="keep the first N train images")
    ap.add_argument("--test", type=int, default=None, help="keep the first N test images")
    ap.add_argument("--fine-per-class", type=int, default=10, choices=range(1, 11),
                    metavar="M", help="fine classes per Fashion-MNIST class (1..10; default 10)")
    ap.add_argument("--synthetic-if-missing", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic images")
    a = ap.parse_args()
    if len(a.paths) > 2:
        ap.error("expected [IDX_DIR] OUT")
    root, out = (DEFAULT_ROOT, a.paths[0]) if len(a.paths) == 1 else a.paths
    t0 = time.time()
    have = all(os.path.isfile(os.path.join(root, f"{p}-{k}-idx{r}-ubyte.gz"))
               for p in ("train", "t10k") for k, r in (("images", 3), ("labels", 1)))
    if have:
        train, test = load_split(root, "train"), load_split(root, "t10k")
        source = f"Fashion-MNIST from {root}"
    elif a.synthetic_if_missing:
        ntr = a.train if a.train is not None else 60000
        nte = a.test if a.test is not None else 10000
        train, test = synthetic_split(ntr, a.seed), synthetic_split(nte, a.seed + 1)
        source = f"SYNTHETIC 28x28 images (no Fashion-MNIST IDX files in {root})"
    else:
        sys.exit(f"no Fashion-MNIST IDX files in {root} (pass --synthetic-if-missing for synthetic images)")
    d = os.path.join(out, "cifar-100-binary")
    os.makedirs(d, exist_ok=True)
    m = a.fine_per_class
    ntr, ctr = write_split(os.path.join(d, "train.bin"), *train, a.train, m)
    nte, _ = write_split(os.path.join(d, "test.bin"), *test, a.test, m)
    names_path = os.path.join(d, "fine_label_names.txt")
    if m == 10:
        with open(names_path, "w") as f:
            f.write("".join(f"{NAMES[c // 10]}.{c % 10}\n" for c in range(100)))
    elif os.path.exists(names_path):
        os.remove(names_path)
    k = 10 * m if m > 1 else 10
    lo, hi = min(ctr.get(c, 0) for c in range(k)), max(ctr.values())
    print(f"fmnist_as_cifar: {source} -> {d}: train {ntr}, test {nte} records of 3x32x32 "
          f"({k} fine classes, {lo}..{hi} train images each) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
