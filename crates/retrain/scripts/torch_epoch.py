"""PyTorch reference for one LOS re-training epoch on a bank (the loop users write today):
features resident on the GPU, a linear head from the bank's stage-1 head, CrossEntropyLoss
with label_smoothing 0.98, SGD momentum 0.9, batch 512, shuffled. Prints the best of 3
epochs' wall time. Usage: python3 torch_epoch.py BANK_DIR [BATCH]"""
import sys, time
import torch
from safetensors.torch import load_file

bank = sys.argv[1]
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 512
dev = "cuda"
tr = load_file(f"{bank}/train.safetensors")
hd = load_file(f"{bank}/head.safetensors")
x = tr["features"].float().to(dev)
y = tr["labels"].long().to(dev)
n, d = x.shape
k = hd["weight"].shape[0]
for tf32 in (False, True):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    best = float("inf")
    for rep in range(4):
        fc = torch.nn.Linear(d, k).to(dev)
        with torch.no_grad():
            fc.weight.copy_(hd["weight"]); fc.bias.copy_(hd["bias"])
        opt = torch.optim.SGD(fc.parameters(), lr=5e-4, momentum=0.9)
        crit = torch.nn.CrossEntropyLoss(label_smoothing=0.98)
        g = torch.Generator(device=dev).manual_seed(rep)
        torch.cuda.synchronize(); t = time.time()
        order = torch.randperm(n, device=dev, generator=g)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            loss = crit(fc(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        if rep > 0:
            best = min(best, time.time() - t)
    print(f"pytorch {torch.__version__} LOS epoch, batch {batch}, tf32={tf32}: {best:.3f} s "
          f"({4.0 * n * d * k / best / 1e9:.0f} GFLOP/s counting 2 GEMMs)")
