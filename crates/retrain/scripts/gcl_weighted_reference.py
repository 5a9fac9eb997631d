"""Reference for GCL's loss WITH class weights (GCLLoss(weight=...), the source's `--train_rule
EffectNumRW / BalancedRW` path), written from the source, in numpy f64 (no torch).

Reads tests/fixtures/tiny-trajectories.safetensors (rows 0..15 of train, head_init) and the noise
draw `gcl-step.noise` of tests/fixtures/zoo-trajectories.safetensors; writes
tests/fixtures/gcl-weighted-reference.json. Run from crates/retrain:

    python -m venv /tmp/npvenv && /tmp/npvenv/bin/pip install numpy safetensors
    /tmp/npvenv/bin/python scripts/gcl_weighted_reference.py

GCLLoss = Keke921/GCLLoss [c2a62338eb]. Stage 2 builds it as (cifar_train_classifier.py:221-222)
GCLLoss(cls_num_list, m=0.1, s=20, weight=per_cls_weights, train_cls=True, noise_mul=0.5,
gamma=1.), and its forward (losses.py:70-81) is, with train_cls:

    cosine = cosine - noise_mul * noise.abs() / m_list.max() * m_list      # :78
    output = torch.where(index, cosine - m, cosine)                         # :79
    return focal_loss(F.cross_entropy(s * output, target, reduction='none',
                                      weight=self.weight), self.gamma)      # :81

focal_loss (losses.py:9-13): p = exp(-input_values); (1 - p.detach())**gamma * input_values,
.mean(). With a weight, F.cross_entropy(reduction='none') gives w_{y_i} * CE_i per row, so the
class weight is inside p (p_i = exp(-w_{y_i} CE_i)) and the mean is over the B rows (not the
weighted mean sum_i w_{y_i} CE_i / sum_i w_{y_i} of reduction='mean'). m_list = log n_max -
log n_c (losses.py:58-60). The weights here are cs-ce's (n_min / n_c): any vector exercises the
formula (the source's BalancedRW is the same direction normalised to sum 1, sampler.py:26,
cifar_train_classifier.py:191).

The gradient with respect to the training logits z = s * cos (ltbench's logits) is the autograd
of that expression with p detached: dL/dz_ic = (1/B) (1 - p_i)^gamma w_{y_i} (softmax(a_i)_c -
1{c = y_i}), a = s * output; it is checked here against central differences of the same
expression with the factors (1 - p_i)^gamma held fixed (what .detach() does).
"""
import json
import os

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
tiny = load_file(os.path.join(HERE, "tiny-trajectories.safetensors"))
zoo = load_file(os.path.join(HERE, "zoo-trajectories.safetensors"))
X, Y = tiny["train.features"].astype(np.float64), tiny["train.labels"]
W0 = tiny["head_init.weight"].astype(np.float64)
K = W0.shape[0]
n = np.bincount(Y, minlength=K).astype(np.float64)
B = 16
x, y = X[:B], Y[:B]
noise = zoo["gcl-step.noise"].astype(np.float64)  # clamp(randn/3, -1, 1), losses.py:65,75
s, m, noise_mul, gamma = 20.0, 0.1, 0.5, 1.0      # cifar_train_classifier.py:221-222
w = n.min() / n                                   # the class weights under test
m_list = np.log(n).max() - np.log(n)              # losses.py:58-60


def normalize(a):  # F.normalize(dim=1, eps=1e-12)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


cos = normalize(x) @ normalize(W0).T              # resnet_cifar.py:47 NormedLinear
z = s * cos                                       # ltbench's logits


def weighted_ce(z):
    c = z / s - noise_mul * np.abs(noise) / m_list.max() * m_list  # :78
    c[np.arange(B), y] -= m                                         # :79
    a = s * c
    lse = np.log(np.exp(a - a.max(1, keepdims=True)).sum(1)) + a.max(1)
    return w[y] * (lse - a[np.arange(B), y]), a                     # :81, weight, reduction none


ce, a = weighted_ce(z)
p = np.exp(-ce)                                   # losses.py:11
factor = (1 - p) ** gamma                         # losses.py:12, detached
loss = float((factor * ce).mean())                # losses.py:12-13
soft = np.exp(a - a.max(1, keepdims=True))
soft /= soft.sum(1, keepdims=True)
onehot = np.eye(K)[y]
grad = (factor * w[y])[:, None] * (soft - onehot) / B

h = 1e-6
fd = np.zeros_like(z)
for i in range(B):
    for c in range(K):
        zp, zm = z.copy(), z.copy()
        zp[i, c] += h
        zm[i, c] -= h
        fd[i, c] = ((factor * weighted_ce(zp)[0]).mean() - (factor * weighted_ce(zm)[0]).mean()) / (2 * h)
assert np.abs(fd - grad).max() < 1e-7, np.abs(fd - grad).max()

out = dict(
    source="Keke921/GCLLoss c2a62338eb losses.py:9-13,58-60,70-81; cifar_train_classifier.py:221-222",
    rows=B, s=s, m=m, noise_mul=noise_mul, gamma=gamma, weights=w.tolist(),
    loss=loss, grad_logits=grad.ravel().tolist(),
    semantics="loss = mean_i (1 - exp(-w_y CE_i)) * w_y CE_i over rows 0..15 of train at head_init "
              "(cosine head, z = 20 cos), noise = gcl-step.noise; grad_logits = dloss/dz [16, K] "
              "row-major, p detached",
)
with open(os.path.join(HERE, "gcl-weighted-reference.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"loss {loss:.12f}; |grad - central differences| {np.abs(fd - grad).max():.2e}")
