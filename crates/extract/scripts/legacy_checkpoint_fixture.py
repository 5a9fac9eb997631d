"""The checkpoint-format fixtures of `extract`'s loader (crates/extract/src/model/checkpoint/):
one tiny checkpoint saved by PyTorch twice, in the legacy format (torch < 1.6,
`_use_new_zipfile_serialization=False`) and in the zip format (torch >= 1.6), with the values
every float tensor must load to.

  /path/to/torch/venv/bin/python crates/extract/scripts/legacy_checkpoint_fixture.py [OUT_DIR]

OUT_DIR (default crates/extract/tests/fixtures/checkpoints/) receives

  tiny.legacy.pth   legacy torch.save of OBJ (below)
  tiny.zip.pth      zip torch.save of OBJ
  tiny.json         {"torch": version, "tensors": {key: {"shape", "dtype", "values"}}, "dropped": [...]}
                    every floating tensor of OBJ["state_dict"], values flattened in row-major
                    order as f32 (exact: Python floats of f32 values), and the integer keys a
                    loader drops (num_batches_tracked)

OBJ is the LDAM-style wrapper {"state_dict": sd, "epoch": 3, "best_acc1": tensor, "arch": str}
whose state dict sd holds, besides a conv + BatchNorm + linear model (`conv.*`, `bn.*`,
`fc.*`, with the int64 `bn.num_batches_tracked`), the layouts a reader must get right:

  shared.head / shared.tail  two views of one storage, at storage offsets 0 and 6
  fc_t.weight                fc.weight.t(): a transposed view of fc.weight's storage
  strided                    a permuted, sliced, stepped view (offset 21, strides (1, 20, 10))
  expanded                   an expanded view (stride 0)
  half / bf16 / double       f16, bf16 and f64 tensors (loaded as f32)
  param                      an nn.Parameter (pickled through torch._utils._rebuild_parameter,
                             torch/nn/parameter.py:88-96)

What the legacy file holds (torch/serialization.py, torch 2.15):
  - _legacy_save, 1022-1181: five pickles and the raw storages: MAGIC_NUMBER (65,
    0x1950a86a20f9469cfc6c), PROTOCOL_VERSION (66, 1001), sys_info (1150-1158), the object
    pickle (1164-1171) whose storages are persistent ids ('storage', storage_type, key,
    location, numel, view_metadata) (persistent_id, 1034-1148; view_metadata is None since
    torch 0.4), the sorted list of storage keys (1174-1175), then for each key in that order
    `storage._write_file(f, ..., True, element_size)` (1176-1181): an 8-byte little-endian
    element count followed by the storage's bytes, little-endian;
  - _legacy_load, 1668-1943, reads it back the same way (1909-1942), and checks the magic
    number and the protocol version (1910-1914);
  - tensors pickle as torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
    requires_grad, backward_hooks[, metadata]) (torch/_tensor.py:496-535,
    torch/_utils.py:229-250), which is `tensor.set_(storage, offset, size, stride)`
    (torch/_utils.py:195-198): any stride, offsets in elements.
The zip file holds the same object pickle as `archive/data.pkl` and each storage as the
record `archive/data/<key>` (_save, 1184-1313; _load, 1999-2268).

Storage keys of the legacy format are memory addresses (str(storage._cdata)), so two runs do
not write identical files; the values do not change (torch.manual_seed(0)).
"""

import json
import os
import sys
from collections import OrderedDict

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(8, 3)


def build():
    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():
        m.bn.running_mean.copy_(torch.tensor([0.125, -0.25]))
        m.bn.running_var.copy_(torch.tensor([0.5, 2.0]))
        m.bn.num_batches_tracked.fill_(7)
    sd = m.state_dict()
    base = torch.arange(10, dtype=torch.float32) * 0.5 - 1.0
    sd["shared.head"] = base[:4]
    sd["shared.tail"] = base[6:]
    sd["fc_t.weight"] = sd["fc.weight"].t()
    grid = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5) / 8
    sd["strided"] = grid.permute(2, 0, 1)[1:4, 1:, ::2]
    sd["expanded"] = torch.tensor([1.5, -2.0]).expand(3, 2)
    sd["half"] = torch.tensor([0.1, -1.5, 65504.0], dtype=torch.float16)
    sd["bf16"] = torch.tensor([[3.140625, -0.0078125]], dtype=torch.bfloat16)
    sd["double"] = torch.tensor([1e-3, 2.5], dtype=torch.float64)
    sd["param"] = nn.Parameter(torch.tensor([0.25, 0.5]))
    assert sd["shared.tail"].storage_offset() == 6
    assert sd["strided"].stride() == (1, 20, 10) and sd["strided"].storage_offset() == 21
    assert not sd["fc_t.weight"].is_contiguous()
    return {"state_dict": sd, "epoch": 3, "best_acc1": torch.tensor(71.5), "arch": "tiny"}


def expected(sd):
    tensors, dropped = OrderedDict(), []
    for k, v in sd.items():
        if not v.is_floating_point():
            dropped.append(k)
            continue
        tensors[k] = {
            "shape": list(v.shape),
            "dtype": str(v.dtype).removeprefix("torch."),
            "values": [float(x) for x in v.detach().float().contiguous().view(-1)],
        }
    return {"torch": torch.__version__, "tensors": tensors, "dropped": dropped}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../tests/fixtures/checkpoints")
    os.makedirs(out, exist_ok=True)
    obj = build()
    legacy = os.path.join(out, "tiny.legacy.pth")
    zipped = os.path.join(out, "tiny.zip.pth")
    torch.save(obj, legacy, _use_new_zipfile_serialization=False)
    torch.save(obj, zipped)
    with open(legacy, "rb") as f:
        head = f.read(4)
    assert head == b"\x80\x02\x8a\x0a", head  # protocol 2, LONG1 of 10 bytes: the magic number
    with open(zipped, "rb") as f:
        assert f.read(4) == b"PK\x03\x04"
    want = expected(obj["state_dict"])
    for path in (legacy, zipped):
        got = expected(torch.load(path, weights_only=True)["state_dict"])
        assert got == want, path
    with open(os.path.join(out, "tiny.json"), "w") as f:
        json.dump(want, f, indent=1)
        f.write("\n")
    for p in (legacy, zipped):
        print(f"{p}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
