"""PyTorch (f64) reference trajectories for the retrain "zoo" rows on the tiny parity bank.

Reads tests/fixtures/tiny-trajectories.safetensors and writes tests/fixtures/zoo-trajectories.json
and tests/fixtures/zoo-trajectories.safetensors. Needs torch and safetensors, installed in a venv
OUTSIDE the repository (nothing here depends on them); run from crates/retrain:

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch safetensors
    /tmp/torchvenv/bin/python scripts/zoo_parity.py

Protocol (as tiny-trajectories.json): start from head_init, batches of 16 in file order (no
shuffle), 3 epochs, SGD(lr 0.1, momentum 0.9, weight decay 5e-4) over all trainable parameters in
one group, cosine per epoch stepped after each epoch. Gradients come from autograd; every
minibatch loss is recorded before backward.
"""
import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

torch.set_default_dtype(torch.float64)
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
bank = load_file(os.path.join(HERE, "tiny-trajectories.safetensors"))
X, Y = bank["train.features"], bank["train.labels"]
XT, YT = bank["test.features"], bank["test.labels"]
W0, B0 = bank["head_init.weight"], bank["head_init.bias"]
K, D = W0.shape
N = X.shape[0]
n = torch.bincount(Y, minlength=K).to(torch.float64)  # [60, 35, 17, 8]
pi = n / N
n_max, n_min = n.max(), n.min()
CONFIG = dict(batch_size=16, epochs=3, lr=0.1, momentum=0.9, weight_decay=5e-4, shuffle=False)

tensors, methods = {}, {}
LRS = []  # learning rates of the last train() call, per epoch


def train(params, loss_fn, lr=0.1, epochs=3, batch=16):
    """SGD + per-epoch cosine; loss_fn(x, y, epoch, batch_index) -> scalar loss."""
    LRS.clear()
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    # lr_e = lr (1 + cos(pi e / epochs)) / 2; CosineAnnealingLR (as tiny-trajectories) computes it
    # recursively, which differs from the closed form in the last bit
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    losses = []
    for e in range(epochs):
        LRS.append(opt.param_groups[0]["lr"])
        for b, s in enumerate(range(0, N, batch)):
            loss = loss_fn(X[s:s + batch], Y[s:s + batch], e, b)
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return losses


def linear_head():
    return W0.clone().requires_grad_(), B0.clone().requires_grad_()


def record(name, losses, test_logits, params=None, **extra):
    row = {}
    if losses is not None:
        row["losses"] = losses
        row["lrs"] = list(LRS)
    if test_logits is not None:
        test_logits = test_logits.detach()
        row["test_top1"] = (test_logits.argmax(1) == YT).double().mean().item()
        tensors[f"{name}.test_logits"] = test_logits
    for key, t in (params or {}).items():
        tensors[f"{name}.{key}"] = t.detach()
    for key, v in extra.items():
        row[key] = v.tolist() if torch.is_tensor(v) else v
    methods[name] = row


def linear_row(name, loss_of_logits, **extra):
    """Linear head z = W f + b from head_init, loss_of_logits(z, y, epoch) in training, plain z at test."""
    W, b = linear_head()
    losses = train([W, b], lambda x, y, e, i: loss_of_logits(x @ W.T + b, y, e))
    record(name, losses, XT @ W.T + b, dict(weight=W, bias=b), **extra)


def class_means():
    fh = F.normalize(X, dim=1, eps=1e-12)
    return torch.stack([fh[Y == c].mean(0) for c in range(K)])


# 1. crt: Decoupling cRT recipe: lr 0.2, one batch of all 120 rows, 10 epochs.
def row_crt():
    W, b = linear_head()
    losses = train([W, b], lambda x, y, e, i: F.cross_entropy(x @ W.T + b, y),
                   lr=0.2, epochs=10, batch=512)
    record("crt", losses, XT @ W.T + b, dict(weight=W, bias=b))


# 2. ncm: nearest class mean on L2-normalised features, cosine logits.
def row_ncm():
    mu = class_means()
    logits = F.normalize(XT, dim=1, eps=1e-12) @ F.normalize(mu, dim=1, eps=1e-12).T
    record("ncm", None, logits, dict(means=mu))


# 3./4. MiSLAS label-aware smoothing.
def las_eps(shape, eps_h=0.4, eps_t=0.1, power=3):
    x = (n - n_min) / (n_max - n_min)
    if shape == "concave":
        return eps_t + (eps_h - eps_t) * torch.sin(math.pi / 2 * x)
    if shape == "linear":
        return eps_t + (eps_h - eps_t) * x
    if shape == "convex":  # as in the MiSLAS code: starts from eps_head
        return eps_h + (eps_h - eps_t) * torch.sin(1.5 * math.pi + math.pi / 2 * x)
    return eps_t + (eps_h - eps_t) * x ** power  # "exp"


def las_loss(z, y, eps):
    logp = F.log_softmax(z, dim=-1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    smooth = -logp.mean(dim=-1)
    return ((1 - eps[y]) * nll + eps[y] * smooth).mean()


def row_las():
    eps = las_eps("concave")
    linear_row("las", lambda z, y, e: las_loss(z, y, eps),
               eps={s: las_eps(s).tolist() for s in ("concave", "linear", "convex", "exp")})


def row_mislas():
    eps = las_eps("concave")
    W, b = linear_head()
    c = torch.ones(K, requires_grad=True)
    losses = train([W, b, c], lambda x, y, e, i: las_loss(c * (x @ W.T + b), y, eps))
    record("mislas", losses, c * (XT @ W.T + b), dict(weight=W, bias=b, scales=c), eps=eps)


# 5. CDT: class-dependent temperatures, z_c / a_c in training.
def row_cdt():
    a = (n_max / n) ** 0.2
    linear_row("cdt", lambda z, y, e: F.cross_entropy(z / a, y), a=a)


# 6. VS loss: multiplicative Delta_c and additive tau log pi_c.
def row_vs():
    delta, iota = (n / n_max) ** 0.2, 1.5 * torch.log(pi)
    linear_row("vs", lambda z, y, e: F.cross_entropy(delta * z + iota, y), delta=delta, iota=iota)


# 7. Logit-adjusted loss.
def row_la(name, tau):
    adj = tau * torch.log(pi)
    linear_row(name, lambda z, y, e: F.cross_entropy(z + adj, y), adjust=adj)


# 8. Cost-sensitive CE.
def row_cs_ce():
    w = (n_min / n) ** 1.0
    linear_row("cs-ce", lambda z, y, e: F.cross_entropy(z, y, weight=w), w=w)


# 9. DRW: plain CE for epochs < floor(0.8 E), then effective-number class weights.
def row_drw():
    beta, E = 0.9999, CONFIG["epochs"]
    w = (1 - beta) / (1 - beta ** n)
    w = w / w.sum() * K
    start = math.floor(0.8 * E)
    linear_row("drw", lambda z, y, e: F.cross_entropy(z, y, weight=w if e >= start else None),
               w=w, drw_start_epoch=start)


# 10. DisAlign: frozen head, learnable magnitude/margin with an input-dependent gate.
def row_disalign():
    s, t = torch.ones(K, requires_grad=True), torch.zeros(K, requires_grad=True)
    v, c = torch.zeros(D, requires_grad=True), torch.zeros(1, requires_grad=True)
    w = pi ** -0.3
    w = w / w.sum() * K

    def logits(x):
        z = x @ W0.T + B0
        g = torch.sigmoid(x @ v + c)[:, None]
        return (1 - g) * z + g * (s * z + t)

    losses = train([s, t, v, c], lambda x, y, e, i: F.cross_entropy(logits(x), y, weight=w))
    record("disalign", losses, logits(XT),
           dict(scale=s, shift=t, gate_weight=v, gate_bias=c), w=w)


# 11. GCL: cosine head, scale 30, margin on the true class, |noise| scaled by sigma_c.
sigma = (torch.log(n_max) - torch.log(n)) / (torch.log(n_max) - torch.log(n_min))


def gcl_loss(cos, y, noise, noise_mul=0.5, m=0.5):
    onehot = F.one_hot(y, K).to(cos.dtype)
    return F.cross_entropy(30 * (cos - noise_mul * noise.abs() * sigma - m * onehot), y)


def cosine(x, W):
    return F.normalize(x, dim=1, eps=1e-12) @ F.normalize(W, dim=1, eps=1e-12).T


def row_gcl():
    W = W0.clone().requires_grad_()
    losses = train([W], lambda x, y, e, i: gcl_loss(cosine(x, W), y, torch.zeros(len(y), K), 0.0))
    record("gcl", losses, 30 * cosine(XT, W), dict(weight=W), sigma=sigma, noise_mul=0.0, m=0.5)


def row_gcl_step():
    g = torch.Generator().manual_seed(0)
    noise = (torch.randn(16, K, generator=g) / 3).clamp(-1, 1)
    W = W0.clone().requires_grad_()
    cos = cosine(X[:16], W)
    cos.retain_grad()
    loss = gcl_loss(cos, Y[:16], noise, 0.5)
    loss.backward()
    tensors.update({"gcl-step.noise": noise, "gcl-step.grad_weight": W.grad,
                    "gcl-step.grad_logits": cos.grad / 30})  # z = 30 cos
    record("gcl-step", None, None, loss=loss.item(), noise_mul=0.5, m=0.5)


# 12. LADE: prior-CE plus alpha times the ReMINE-regularised LADE term.
def lade_term(z, y, lam=0.1):
    B = z.shape[0]
    mask = (y[None, :] == torch.arange(K)[:, None]).to(z.dtype)          # [K, B]
    first = (z.T * mask).sum(-1) / (mask.sum(-1) + 1e-8)
    q = (z - torch.log(pi + 1e-9) + math.log(1 / K + 1e-9)).T             # [K, B]
    second = torch.logsumexp(q, -1) - math.log(B)
    est = first - second - lam * second ** 2
    return -(est * pi).sum()


def row_lade():
    lp = torch.log(pi + 1e-9)
    linear_row("lade", lambda z, y, e: F.cross_entropy(z + lp, y) + 0.1 * lade_term(z, y),
               alpha=0.1, remine_lambda=0.1)


# 13. Balanced BCE: per-class sigmoid with the logit prior log(pi/(1-pi)).
def row_bal_bce():
    adj = torch.log(pi) - torch.log(1 - pi)
    linear_row("bal-bce", lambda z, y, e: F.binary_cross_entropy_with_logits(
        z + adj, F.one_hot(y, K).to(z.dtype), reduction="sum") / z.shape[0], adjust=adj)


# 14. Class-mean initialisation, then plain CE.
def row_class_mean_init():
    r = W0.norm(dim=1).mean()
    Wi = F.normalize(class_means(), dim=1, eps=1e-12) * r
    W, b = Wi.clone().requires_grad_(), torch.zeros(K, requires_grad=True)
    losses = train([W, b], lambda x, y, e, i: F.cross_entropy(x @ W.T + b, y))
    record("class-mean-init", losses, XT @ W.T + b, dict(weight_init=Wi, weight=W, bias=b),
           radius=r.item())


# 15. Samplers (class-level sampling probabilities).
def row_samplers():
    sq = n.sqrt()
    record("sqrt-sampling", None, None, class_probs=sq / sq.sum())
    E = 4
    record("progressive", None, None, epochs=E,
           class_probs=[((1 - e / E) * pi + (e / E) / K).tolist() for e in range(E)])
    beta = 0.9999
    en = n * (1 - beta) / (1 - beta ** n)
    record("effective-number", None, None, beta=beta, class_probs=en / en.sum())


SEMANTICS = [
    "common: head_init, batch 16 in file order, 3 epochs, SGD lr 0.1 momentum 0.9 wd 5e-4 over all trainable params (one group), cosine per epoch stepped after each epoch (torch CosineAnnealingLR, T_max = epochs; the per-epoch values are in each row's lrs); losses recorded before backward; all f64",
    "crt: linear head, CE, lr 0.2, batch 512 (one batch of 120 per epoch), 10 epochs, cosine over 10",
    "ncm: no training; means = class means of L2-normalised train features; test logits = normalize(f) . normalize(mu_c)",
    "las: MiSLAS LabelAwareSmoothing concave, eps_head 0.4, eps_tail 0.1; loss_i = (1-eps_y) NLL_i + eps_y mean_c(-log p_ic), batch mean; eps for the four shapes in 'eps' (convex starts from eps_head, as in the MiSLAS code; exp power 3)",
    "mislas: las loss on c * (W f + b), W b c trained (c starts at ones, wd on all); file order; test c * (W f + b)",
    "cdt: CE(z / a), a_c = (n_max/n_c)^0.2; test plain z",
    "vs: CE(delta * z + iota), delta_c = (n_c/n_max)^0.2, iota_c = 1.5 log pi_c; test plain z",
    "la-loss: CE(z + tau log pi_c), tau 1 (same losses as balanced-softmax); la-loss-tau0.5: tau 0.5; test plain z",
    "cs-ce: F.cross_entropy(weight=w), w_c = n_min/n_c, mean = sum w_y CE / sum w_y",
    "drw: plain CE for epochs < floor(0.8 E) = 2, then F.cross_entropy(weight=w), w_c = (1-b)/(1-b^n_c), b 0.9999, sum w = K",
    "disalign: W b frozen at head_init; z' = (1-g) z + g (s*z + t), g = sigmoid(v.f + c); s t v c trained with wd; F.cross_entropy(weight=w), w = pi^-0.3 with sum w = K; test z'",
    "gcl: z = 30 cos(W_c, f) (both normalised, no bias); train CE(30 (cos - noise_mul |eps| sigma_c - 0.5 onehot)), sigma_c = (log n_max - log n_c)/(log n_max - log n_min); trajectory with noise_mul 0; gcl-step: one evaluation on rows 0..15 at head_init, noise_mul 0.5, noise = clamp(randn(16,4, Generator seed 0)/3, -1, 1); grad_logits = dloss/d(30 cos)",
    "lade: CE(z + log(pi + 1e-9)) + 0.1 * L; L = -sum_c pi_c (first_c - second_c - 0.1 second_c^2), first_c = sum_{y_i=c} z_ic / (b_c + 1e-8), second_c = logsumexp_i(z_ic - log(pi_c+1e-9) + log(1/K+1e-9)) - log B",
    "bal-bce: BCEWithLogits(z + log pi - log(1-pi), onehot, reduction sum) / B",
    "class-mean-init: W_c = normalize(mu_c) * r, r = mean_c |head_init.weight_c|, b = 0, then plain CE",
    "samplers: sqrt-sampling sqrt(n)/sum; progressive (E = 4, e = 0..3): (1-e/E) pi + (e/E)/K; effective-number prop. to n_c (1-b)/(1-b^n_c), b 0.9999, normalised",
]

if __name__ == "__main__":
    row_crt(); row_ncm(); row_las(); row_mislas(); row_cdt(); row_vs()
    row_la("la-loss", 1.0); row_la("la-loss-tau0.5", 0.5); row_cs_ce(); row_drw(); row_disalign()
    row_gcl(); row_gcl_step(); row_lade(); row_bal_bce(); row_class_mean_init(); row_samplers()
    for name, row in methods.items():
        assert all(math.isfinite(v) for v in row.get("losses", [])), name
    out = dict(config=CONFIG, counts=n.long().tolist(), methods=methods, semantics=SEMANTICS)
    with open(os.path.join(HERE, "zoo-trajectories.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    save_file({k: v.detach().to(torch.float64).contiguous() for k, v in sorted(tensors.items())},
              os.path.join(HERE, "zoo-trajectories.safetensors"))
    print(f"wrote {len(methods)} rows, {len(tensors)} tensors")
