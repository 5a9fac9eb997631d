"""PyTorch's CPU inference throughput of ltbench's backbones, for `just bench-extract`: the
same architectures, batch, thread count and input size as the `throughput` example, eval mode,
`torch.inference_mode()`, random weights, one warm-up batch then N timed ones. Needs torch and
torchvision (a venv outside the repository); prints one line per architecture.

Usage: python3 torch_infer_bench.py ARCH BATCH BATCHES THREADS"""
import sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def resnet34_cifar():
    from torchvision.models.resnet import ResNet, BasicBlock
    m = ResNet(BasicBlock, [3, 4, 6, 3])
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m, 32


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.ModuleList([nn.Conv2d(a, b, 3, 1, 1, bias=False) for a, b in [(1, 32), (32, 64), (64, 128)]])
        self.b = nn.ModuleList([nn.BatchNorm2d(n) for n in (32, 64, 128)])

    def forward(self, x):
        for i, (c, b) in enumerate(zip(self.c, self.b)):
            x = F.relu(b(c(x)))
            if i >= 1:
                x = F.max_pool2d(x, 2)
        return x.mean((2, 3))


class Features(nn.Module):
    """EfficientNet's pooled features (model.py:284, 310-311), without the classifier."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m._avg_pooling(self.m.extract_features(x)).flatten(1)


def build(arch):
    if arch.startswith("resnet") or arch.startswith("resnext"):
        import torchvision
    if arch == "resnet50":
        m = torchvision.models.resnet50(); m.fc = nn.Identity(); return m, 224
    if arch == "resnext50-32x4d":
        m = torchvision.models.resnext50_32x4d(); m.fc = nn.Identity(); return m, 224
    if arch == "resnet34-cifar":
        return resnet34_cifar()
    if arch == "small-cnn":
        return SmallCnn(), 28
    if arch == "efficientnet-lite0":
        # the package's own model (pip install efficientnet-lite-pytorch); features: extract_features + pool
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            print("pytorch: efficientnet-lite-pytorch is not importable here (pip install efficientnet-lite-pytorch); not compared")
            sys.exit(0)
        m = EfficientNet.from_name("efficientnet-lite0")
        return Features(m), 224
    raise SystemExit(f"unknown arch {arch}")


arch, batch, batches, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if arch == "resnet32":
    print("pytorch: resnet32 (LDAM's CIFAR ResNet) is not in torchvision; not compared")
    sys.exit(0)
torch.set_num_threads(threads)
model, size = build(arch)
model.eval()
cin = 1 if arch == "small-cnn" else 3
x = torch.randn(batch, cin, size, size)
with torch.inference_mode():
    model(x)
    model(x)  # oneDNN picks its kernels on the first calls
    t = time.time()
    for _ in range(batches):
        model(x)
    s = time.time() - t
print(f"pytorch {torch.__version__} {arch} {size}x{size} batch {batch}, {threads} threads: {batch * batches / s:.2f} images/s")
