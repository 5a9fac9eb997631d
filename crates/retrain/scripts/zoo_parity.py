"""PyTorch (f64) reference trajectories for the retrain "zoo" rows on the tiny parity bank.

Reads tests/fixtures/tiny-trajectories.safetensors and writes tests/fixtures/zoo-trajectories.json
and tests/fixtures/zoo-trajectories.safetensors. Needs torch and safetensors, installed in a venv
OUTSIDE the repository (nothing here depends on them); run from crates/retrain:

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch safetensors numpy
    /tmp/torchvenv/bin/python scripts/zoo_parity.py

Protocol (as tiny-trajectories.json): start from head_init, batches of 16 in file order (no
shuffle), 3 epochs, SGD(lr 0.1, momentum 0.9, weight decay 5e-4) over all trainable parameters in
one group, cosine per epoch stepped after each epoch. Gradients come from autograd; every
minibatch loss is recorded before backward. Rows that follow a source recipe say so below.

Each row is written from its source repository's code; comments cite `repo path:line` in these
GitHub repositories (commit in brackets): GCL = Keke921/GCLLoss [c2a62338eb], cvpods =
Megvii-BaseDetection/cvpods [2deea5dc65], DisAlign = Megvii-BaseDetection/DisAlign [a2fc3500a1],
Decoupling = facebookresearch/classifier-balancing [f162adef63], MiSLAS = dvlab-research/MiSLAS
[0fc381e333], LIFT = shijxcs/LIFT [661ead9b78], VS = orparask/VS-Loss [7ade9c9959], LADE =
hyperconnect/LADE [5db5d13472], BoT = zhangyongshun/BagofTricks-LT [ce7859a930].
DA_CFG = classification/imagenetlt/resnext50/resx50.scratch.imagenet_lt.224size.90e.disalign.10e.
"""
import json
import math
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

torch.set_default_dtype(torch.float64)
# crt steps the scheduler before the first optimizer step, as Decoupling does; torch warns
warnings.filterwarnings("ignore", message="Detected call of")
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
LRS = []  # learning rates of the last train() call, per epoch (last param group = common lr)
LRS0 = []  # the same for param group 0 (differs only with lr_factor)


def train(params, loss_fn, lr=0.1, epochs=3, batch=16, step_first=False, lr_factor=None):
    """SGD + per-epoch cosine; loss_fn(x, y, epoch, batch_index) -> scalar loss.

    step_first: step the scheduler at the start of each epoch (Decoupling) instead of after it.
    lr_factor: params is [group0, group1]; group 0 runs at lr_factor * the common lr (MiSLAS).
    """
    LRS.clear(); LRS0.clear()
    groups = [{"params": p} for p in params] if lr_factor is not None else params
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4)
    # lr_e = lr (1 + cos(pi e / epochs)) / 2; CosineAnnealingLR (as tiny-trajectories) computes it
    # recursively, which differs from the closed form in the last bit
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0.0)
    losses = []
    for e in range(epochs):
        if step_first:
            sched.step()
        if lr_factor is not None:  # MiSLAS train_stage2.py:458-462 (idx 0 gets lr_factor * lr)
            opt.param_groups[0]["lr"] = lr_factor * opt.param_groups[1]["lr"]
        LRS.append(opt.param_groups[-1]["lr"]); LRS0.append(opt.param_groups[0]["lr"])
        for b, s in enumerate(range(0, N, batch)):
            loss = loss_fn(X[s:s + batch], Y[s:s + batch], e, b)
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not step_first:
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
    """Linear head z = W f + b from head_init, loss_of_logits(z, y, epoch) in training, z at test."""
    W, b = linear_head()
    losses = train([W, b], lambda x, y, e, i: loss_of_logits(x @ W.T + b, y, e))
    record(name, losses, XT @ W.T + b, dict(weight=W, bias=b), **extra)


# 1. crt: Decoupling cRT, config/ImageNet_LT/cls_crt.yaml:15 `optim_params: {lr: 0.2, momentum:
# 0.9, weight_decay: 0.0005}`, :27 `batch_size: 512`, :34 `num_epochs: 10`, :1 `coslr: true`,
# :8 `endlr: 0.0`; run_networks.py:159-160 CosineAnnealingLR(optimizer, num_epochs, eta_min=endlr),
# stepped at the top of each epoch, :255 `self.model_optimizer_scheduler.step()`. Steps per epoch
# are run_networks.py:62-63 int(N / batch_size) = 0 here, so one batch of min(512, N) rows is used.
def row_crt():
    W, b = linear_head()
    # CE: Decoupling loss/SoftmaxLoss.py:20 nn.CrossEntropyLoss()
    losses = train([W, b], lambda x, y, e, i: F.cross_entropy(x @ W.T + b, y),
                   lr=0.2, epochs=10, batch=min(512, N), step_first=True)
    record("crt", losses, XT @ W.T + b, dict(weight=W, bias=b), batch=min(512, N))


# 2. ncm: Decoupling KNN classifier with main.py:39 `--feat_type default='cl2n'`, :40 `--dist_type
# default='l2'`; centroids from run_networks.py:631 `featmean = feats.mean(axis=0)`, :648-652 cl2n.
def norm_rows(a):  # torch.norm(a, 2, 1, keepdim=True): run_networks.py:650, KNNClassifier.py:51
    return a / torch.norm(a, 2, 1, keepdim=True)


def centroids(f):  # run_networks.py:633-637 np.mean(feats_[labels_==i], axis=0) per class
    return torch.stack([f[Y == c].mean(0) for c in range(K)])


def row_ncm():
    featmean = X.mean(0)                                  # run_networks.py:631
    mu = centroids(norm_rows(X - featmean))               # run_networks.py:649-652 (cl2n)
    x = norm_rows(XT - featmean)                          # KNNClassifier.py:46-52
    AB, AA, BB = x @ mu.T, (x ** 2).sum(1, keepdim=True), (mu ** 2).sum(1, keepdim=True)
    logits = -(AA + BB.T - 2 * AB)                        # KNNClassifier.py:65-75 l2_similarity
    record("ncm", None, logits, dict(mean=featmean, centroids=mu))
    mu2 = centroids(norm_rows(X))                         # run_networks.py:642-645 (l2n)
    logits = (norm_rows(XT) @ mu2.T) / D                  # KNNClassifier.py:77-81 cos_similarity
    record("ncm-l2n-cos", None, logits, dict(centroids=mu2))


# 3./4. MiSLAS LabelAwareSmoothing, methods.py:31-64; smooth_head 0.4 / smooth_tail 0.1 from
# config/cifar100/cifar100_imb001_stage2_mislas.yaml:39-40.
def las_eps(shape, eps_h=0.4, eps_t=0.1, power=3):
    x = (n - n_min) / (n_max - n_min)
    if shape == "concave":  # methods.py:39
        return eps_t + (eps_h - eps_t) * torch.sin(math.pi / 2 * x)
    if shape == "linear":  # methods.py:42
        return eps_t + (eps_h - eps_t) * x
    if shape == "convex":  # methods.py:45: starts from eps_head
        return eps_h + (eps_h - eps_t) * torch.sin(1.5 * math.pi + math.pi / 2 * x)
    return eps_t + (eps_h - eps_t) * x ** power  # "exp", methods.py:48 (power 3 here)


def las_loss(z, y, eps):  # methods.py:55-64
    logp = F.log_softmax(z, dim=-1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    smooth = -logp.mean(dim=-1)
    return ((1 - eps[y]) * nll + eps[y] * smooth).mean()


def row_las():
    eps = las_eps("concave")
    linear_row("las", lambda z, y, e: las_loss(z, y, eps),
               eps={s: las_eps(s).tolist() for s in ("concave", "linear", "convex", "exp")})


# MiSLAS stage 2: train_stage2.py:241-244 SGD([{"params": classifier}, {"params": lws_model}]),
# train_stage2.py:452-462 adjust_learning_rate (group 0 at lr_factor * lr), lr_factor 0.2 from
# cifar100_imb001_stage2_mislas.yaml:42; LWS methods.py:67-73 learned_norm = ones(1, K), * x.
def row_mislas():
    eps, lr_factor = las_eps("concave"), 0.2
    W, b = linear_head()
    c = torch.ones(K, requires_grad=True)
    losses = train([[W, b], [c]], lambda x, y, e, i: las_loss(c * (x @ W.T + b), y, eps),
                   lr_factor=lr_factor)
    record("mislas", losses, c * (XT @ W.T + b), dict(weight=W, bias=b, scales=c), eps=eps,
           lr_factor=lr_factor, lrs_classifier=list(LRS0))


# 5. CDT: BoT lib/loss/loss_impl/class_dependent_temperatures_loss.py:22 a_j = (n_max/n_j)^gamma,
# :30-31 CE(inputs / a); GAMMA 0.2 in configs/cao_cifar/re_weighting/cdt/cifar100_im100.yaml:29.
def row_cdt():
    a = (n_max / n) ** 0.2
    linear_row("cdt", lambda z, y, e: F.cross_entropy(z / a, y), a=a)


# 6. VS loss: VS class_imbalance/losses.py:36 defaults gamma=0.3, tau=1.0; :40-41 Delta =
# (1/n)^gamma / min; :43 iota = tau log(pi); :51 output = x / Delta_list + iota_list.
def row_vs():
    gamma, tau = 0.3, 1.0
    temp = (1.0 / n) ** gamma
    Delta = temp / temp.min()
    iota = tau * torch.log(n / n.sum())
    linear_row("vs", lambda z, y, e: F.cross_entropy(z / Delta + iota, y),
               delta=1 / Delta, iota=iota, gamma=gamma, tau=tau)


# 7. Logit-adjusted loss CE(z + tau log pi). tau = 1 equals BoT
# lib/loss/loss_impl/balanced_softmax_cross_entropy_loss.py:24 (z + log n_c; a constant shift) and
# LADE loss/PriorCELoss.py:23 (z + log(prior + 1e-9)); no tau-0.5 source is mirrored.
def row_la(name, tau):
    adj = tau * torch.log(pi)
    linear_row(name, lambda z, y, e: F.cross_entropy(z + adj, y), adjust=adj)


# 8. Cost-sensitive CE: BoT lib/loss/loss_impl/cost_sensitive_cross_entropy_loss.py:21
# (min n / n_c)^gamma, lib/loss/loss_base.py:24 F.cross_entropy(weight=...); GAMMA 1.0 in
# configs/cao_cifar/re_weighting/csce/cifar100_im100.yaml:28.
def row_cs_ce():
    w = (n_min / n) ** 1.0
    linear_row("cs-ce", lambda z, y, e: F.cross_entropy(z, y, weight=w), w=w)


# 9. DRW: BoT lib/loss/loss_impl/class_balanced_loss.py:27-28 w = (1-b)/(1-b^n), w / sum * K;
# :38-40 switched on at START_EPOCH, 160 of MAX_EPOCH 200 = floor(0.8 E)
# (configs/cao_cifar/two_stage/drw/cbce/cifar100_im100.yaml:34,37). beta 0.9999 as GCL
# sampler.py:66 (that BoT config has BETA 0.9, :28).
def row_drw():
    beta, E = 0.9999, CONFIG["epochs"]
    w = (1 - beta) / (1 - beta ** n)
    w = w / w.sum() * K
    start = math.floor(0.8 * E)
    linear_row("drw", lambda z, y, e: F.cross_entropy(z, y, weight=w if e >= start else None),
               w=w, drw_start_epoch=start)


# 10. DisAlign: cvpods cvpods/layers/wrappers.py:450-466 DisAlignLinear; DisAlign
# DA_CFG/net.py:55-62 trains only logit_scale, logit_bias and confidence_layer; loss cvpods
# cvpods/modeling/losses/grw_loss.py:24-28, exp_scale = GRW_SCALE 1.2 (DisAlign DA_CFG/config.py:27).
DISALIGN = {}


def disalign_logits(x, s, t, v, c):
    before = x @ W0.T + B0                                 # wrappers.py:462 F.linear(W, b)
    conf = torch.sigmoid(x @ v + c)[:, None]               # wrappers.py:463
    return (1 + conf * s) * before + conf * t              # wrappers.py:464-465


def row_disalign():
    s = torch.ones(K, requires_grad=True)                  # wrappers.py:457 logit_scale ones
    t = torch.zeros(K, requires_grad=True)                 # wrappers.py:458 logit_bias zeros
    v = torch.full((D,), 0.1, requires_grad=True)          # wrappers.py:459 constant_(weight, 0.1)
    g = torch.Generator().manual_seed(0)  # wrappers.py:456 nn.Linear(D, 1) bias ~ U(+-1/sqrt(D))
    c0 = (torch.rand(1, generator=g) * 2 - 1) / math.sqrt(D)
    c = c0.clone().requires_grad_()
    exp_scale = 1.2                                        # DA_CFG/config.py:27 GRW_SCALE=1.2
    w = 1 / (pi ** exp_scale)                              # grw_loss.py:25-26
    w = w / w.sum() * K                                    # grw_loss.py:28
    losses = train([s, t, v, c], lambda x, y, e, i: F.cross_entropy(
        disalign_logits(x, s, t, v, c), y, weight=w))      # grw_loss.py:54-60
    DISALIGN.update(s=s.detach(), t=t.detach(), v=v.detach(), c=c.detach())
    record("disalign", losses, disalign_logits(XT, s, t, v, c),
           dict(scale=s, shift=t, gate_weight=v, gate_bias=c, gate_bias_init=c0),
           w=w, exp_scale=exp_scale)


# 11. GCL stage 2: GCL cifar_train_classifier.py:221-222 GCLLoss(m=0.1, s=20, weight=None with
# train_rule BalancedRS (:37, :171-173), train_cls=True, noise_mul=0.5, gamma=1.); cosine head
# models/resnet_cifar.py:39-49 NormedLinear (no bias), used via :107-108 when use_norm.
m_list = torch.log(n).max() - torch.log(n)                # losses.py:58-59
sigma = m_list / m_list.max()                            # per-class noise scale, losses.py:78


def gcl_loss(cos, y, noise, noise_mul, m=0.1, s=20.0, gamma=1.0):
    index = F.one_hot(y, K).bool()                                          # losses.py:72-73
    cos = cos - noise_mul * noise.abs() / m_list.max() * m_list             # losses.py:78
    output = torch.where(index, cos - m, cos)                               # losses.py:79
    ce = F.cross_entropy(s * output, y, reduction="none")                   # losses.py:81
    p = torch.exp(-ce)                                                      # losses.py:11
    return ((1 - p.detach()) ** gamma * ce).mean()                          # losses.py:12-13


def cosine(x, W):  # resnet_cifar.py:47 F.normalize(x, dim=1).mm(F.normalize(weight, dim=0))
    return F.normalize(x, dim=1, eps=1e-12) @ F.normalize(W, dim=1, eps=1e-12).T


def row_gcl():
    W = W0.clone().requires_grad_()
    losses = train([W], lambda x, y, e, i: gcl_loss(cosine(x, W), y, torch.zeros(len(y), K), 0.0))
    record("gcl", losses, 20 * cosine(XT, W), dict(weight=W), sigma=sigma, noise_mul=0.0, m=0.1,
           s=20, gamma=1)


def row_gcl_step():
    g = torch.Generator().manual_seed(0)
    noise = (torch.randn(16, K, generator=g) / 3).clamp(-1, 1)  # losses.py:65,75 N(0,1/3) clamped
    W = W0.clone().requires_grad_()
    cos = cosine(X[:16], W)
    cos.retain_grad()
    loss = gcl_loss(cos, Y[:16], noise, 0.5)
    loss.backward()
    tensors.update({"gcl-step.noise": noise, "gcl-step.grad_weight": W.grad,
                    "gcl-step.grad_logits": cos.grad / 20})  # z = 20 cos
    record("gcl-step", None, None, loss=loss.item(), noise_mul=0.5, m=0.1, s=20, gamma=1)


# 12. LADE: README.md:30 `--remine_lambda 0.01 --alpha 0.1` (CIFAR-100, ratio 0.01); utils.py:61-65
# put alpha on RouteWeightLoss (weight) and remine_lambda into LADELoss; run_networks.py:270-280
# total = PriorCELoss + alpha * LADELoss on the same logits (DotProductClassifier.py:29-30).
def lade_term(z, y, lam):
    B = z.shape[0]
    mask = (y[None, :] == torch.arange(K)[:, None]).to(z.dtype)          # LADELoss.py:46,49
    first = (z.T * mask).sum(-1) / (mask.sum(-1) + 1e-8)                  # LADELoss.py:31
    q = (z - torch.log(pi + 1e-9) + math.log(1 / K + 1e-9)).T             # LADELoss.py:47
    second = torch.logsumexp(q, -1) - math.log(B)                         # LADELoss.py:30,32
    est = first - second - lam * second ** 2                              # LADELoss.py:34,38-39
    return -(est * pi).sum()                                              # LADELoss.py:27,52


def row_lade():
    alpha, lam = 0.1, 0.01
    lp = torch.log(pi + 1e-9)                                             # PriorCELoss.py:23
    linear_row("lade", lambda z, y, e: F.cross_entropy(z + lp, y) + alpha * lade_term(z, y, lam),
               alpha=alpha, remine_lambda=lam)


# 13. Balanced BCE: per-class sigmoid with the logit prior log(pi/(1-pi)) (no source mirrored).
def row_bal_bce():
    adj = torch.log(pi) - torch.log(1 - pi)
    linear_row("bal-bce", lambda z, y, e: F.binary_cross_entropy_with_logits(
        z + adj, F.one_hot(y, K).to(z.dtype), reduction="sum") / z.shape[0], adjust=adj)


# 14. Class-mean initialisation: LIFT trainer.py:384-388 class means of the raw features, then
# F.normalize(class_means, dim=-1); scaled here by r (LIFT's cosine head has unit rows), b = 0.
def row_class_mean_init():
    r = W0.norm(dim=1).mean()
    mu = torch.stack([X[Y == c].mean(0) for c in range(K)])              # trainer.py:385
    Wi = F.normalize(mu, dim=-1) * r                                      # trainer.py:388
    W, b = Wi.clone().requires_grad_(), torch.zeros(K, requires_grad=True)
    losses = train([W, b], lambda x, y, e, i: F.cross_entropy(x @ W.T + b, y))
    record("class-mean-init", losses, XT @ W.T + b, dict(weight_init=Wi, weight=W, bias=b),
           radius=r.item())


# 15. Samplers (class-level sampling probabilities).
def row_samplers():
    sq = n.sqrt()  # BoT lib/dataset/cao_cifar.py:83-84 square_p = sqrt(n) / sum sqrt(n)
    record("sqrt-sampling", None, None, class_probs=sq / sq.sum())
    # Decoupling data/MixedPrioritizedSampler.py:232 lams = np.linspace(0, 1, epochs); :286
    # balanced * lam + (1 - lam) per sample, balanced class totals N/K (:295, :310)
    E = 4
    lams = np.linspace(0, 1, E)
    record("progressive", None, None, epochs=E,
           class_probs=[((1 - lam) * pi + lam / K).tolist() for lam in lams.tolist()])
    beta = 0.9999  # GCL sampler.py:66-68 per_cls_weights = (1 - beta) / (1 - beta^n)
    en = n * (1 - beta) / (1 - beta ** n)
    record("effective-number", None, None, beta=beta, class_probs=en / en.sum())


SEMANTICS = [
    "common: head_init, batch 16 in file order, 3 epochs, SGD lr 0.1 momentum 0.9 wd 5e-4 over all trainable params (one group), cosine per epoch stepped after each epoch (torch CosineAnnealingLR, T_max = epochs; the per-epoch values are in each row's lrs); losses recorded before backward; all f64. Sources cited as repo path:line (commits in scripts/zoo_parity.py)",
    "crt: Decoupling cRT (classifier-balancing config/ImageNet_LT/cls_crt.yaml:15,27,34): linear head from head_init, CE, lr 0.2, momentum 0.9, wd 5e-4, batch 512 = min(512, 120): one batch of all 120 rows per epoch (Decoupling's run_networks.py:62-63 int(N/B) would give 0 steps on this bank), 10 epochs, CosineAnnealingLR(T_max 10, eta_min 0) stepped at the START of each epoch (run_networks.py:255), so epoch k = 1..10 trains at 0.2 (1+cos(pi k/10))/2 and the last at 0 (lrs)",
    "ncm: Decoupling KNN, main.py:39-40 defaults feat_type cl2n, dist_type l2: mean = mean of train features (run_networks.py:631); centroids_c = mean over class c of (f-mean)/||f-mean|| (torch.norm, no eps; run_networks.py:648-652); test x = (f-mean)/||f-mean||, logits = -(||x||^2 + ||mu_c||^2 - 2 x.mu_c) (KNNClassifier.py:46-52,65-75). ncm-l2n-cos: feat_type l2n (no centring), centroids = class means of f/||f|| (run_networks.py:642-645, not re-normalised), logits = (f/||f||).mu_c / D (KNNClassifier.py:77-81)",
    "las: MiSLAS LabelAwareSmoothing (methods.py:31-64) concave, eps_head 0.4, eps_tail 0.1; loss_i = (1-eps_y) NLL_i + eps_y mean_c(-log p_ic), batch mean; eps for the four shapes in 'eps' (convex starts from eps_head, methods.py:45; exp power 3)",
    "mislas: las loss on c * (W f + b) (LWS c, methods.py:67-73, starts at ones); two SGD groups as train_stage2.py:241-244: group 0 = (W, b) at lr_factor * lr, lr_factor 0.2 (cifar100_imb001_stage2_mislas.yaml:42; train_stage2.py:458-462), group 1 = c at lr; both momentum 0.9, wd 5e-4; lrs = the common (group 1) cosine lr, lrs_classifier = 0.2 * it; test c * (W f + b)",
    "cdt: CE(z / a), a_c = (n_max/n_c)^0.2 (BagofTricks-LT class_dependent_temperatures_loss.py:22,30); test plain z",
    "vs: VS-Loss class_imbalance/losses.py:36-51 defaults gamma 0.3, tau 1: CE(z / Delta + iota), Delta_c = (1/n_c)^0.3 / min_c (1/n_c)^0.3, iota_c = log pi_c; 'delta' stores the multiplier 1/Delta_c = (n_c/n_max)^0.3; test plain z",
    "la-loss: CE(z + tau log pi_c), tau 1 (same losses as balanced-softmax; BagofTricks-LT balanced_softmax_cross_entropy_loss.py:24); la-loss-tau0.5: tau 0.5; test plain z",
    "cs-ce: F.cross_entropy(weight=w), w_c = n_min/n_c (BagofTricks-LT cost_sensitive_cross_entropy_loss.py:21, gamma 1), mean = sum w_y CE / sum w_y",
    "drw: plain CE for epochs < floor(0.8 E) = 2, then F.cross_entropy(weight=w), w_c = (1-b)/(1-b^n_c), b 0.9999, sum w = K (BagofTricks-LT class_balanced_loss.py:27-28,38-40)",
    "disalign: cvpods DisAlignLinear (cvpods/layers/wrappers.py:450-466): W b frozen at head_init, u = W f + b, conf = sigmoid(v.f + c), z' = (1 + conf*logit_scale) u + conf*logit_bias; logit_scale ones, logit_bias zeros, v = 0.1 everywhere, c = (rand(1, Generator seed 0)*2-1)/sqrt(D) (gate_bias_init; nn.Linear's U(-1/sqrt(D), 1/sqrt(D))); logit_scale logit_bias v c trained, one group, wd on all; GRWCrossEntropyLoss (cvpods/modeling/losses/grw_loss.py:24-28,54-60) exp_scale 1.2 (DisAlign config.py:27): w = 1/pi^1.2, w = w/sum w * K, F.cross_entropy(weight=w); scale = logit_scale, shift = logit_bias; test z'",
    "gcl: GCL stage 2 (GCLLoss cifar_train_classifier.py:221-222, losses.py:53-83): cosine head (both f and W_c L2-normalised, no bias), s 20, m 0.1, gamma 1, weight None; m_list_c = log n_max - log n_c, sigma = m_list/max m_list; output = cos - noise_mul |eps| / max(m_list) * m_list, minus m on the true class; CE_i = F.cross_entropy(20 output, y, reduction none), loss = mean_i((1 - exp(-CE_i)).detach()^1 * CE_i) (focal_loss, losses.py:9-13); trajectory with noise_mul 0, test logits 20 cos; gcl-step: one loss+gradient on rows 0..15 at head_init, noise_mul 0.5, eps = clamp(randn(16,4, Generator seed 0)/3, -1, 1) (stored signed); grad_logits = dloss/d(20 cos) = cos.grad / 20",
    "lade: LADE README.md:30 (CIFAR-100 IR 0.01) remine_lambda 0.01, alpha 0.1: CE(z + log(pi + 1e-9)) (PriorCELoss.py:23) + 0.1 * L (LADELoss.py:29-53); L = -sum_c pi_c (first_c - second_c - 0.01 second_c^2), first_c = sum_{y_i=c} z_ic / (b_c + 1e-8), second_c = logsumexp_i(z_ic - log(pi_c+1e-9) + log(1/K+1e-9)) - log B; test plain z (LADE adds log test prior, run_networks.py:599: a constant on this balanced test)",
    "bal-bce: BCEWithLogits(z + log pi - log(1-pi), onehot, reduction sum) / B",
    "class-mean-init: LIFT trainer.py:384-388: mu_c = mean of RAW train features of class c, W_c = F.normalize(mu_c) * r, r = mean_c |head_init.weight_c|, b = 0, then plain CE",
    "samplers: sqrt-sampling sqrt(n)/sum (BagofTricks-LT cao_cifar.py:83-84); progressive (Decoupling MixedPrioritizedSampler.py:232,286, E = 4, e = 0..3): (1-t_e) pi + t_e/K, t_e = e/(E-1) = np.linspace(0, 1, E) (first epoch instance-balanced, last class-balanced); effective-number prop. to n_c (1-b)/(1-b^n_c), b 0.9999, normalised (GCLLoss sampler.py:66-68)",
]

if __name__ == "__main__":
    row_crt(); row_ncm(); row_las(); row_mislas(); row_cdt(); row_vs()
    row_la("la-loss", 1.0); row_la("la-loss-tau0.5", 0.5); row_cs_ce(); row_drw(); row_disalign()
    row_gcl(); row_gcl_step(); row_lade(); row_bal_bce(); row_class_mean_init(); row_samplers()
    for name, row in methods.items():
        assert all(math.isfinite(v) for v in row.get("losses", [])), name
        assert math.isfinite(row.get("loss", 0.0)), name
    out = dict(config=CONFIG, counts=n.long().tolist(), methods=methods, semantics=SEMANTICS)
    with open(os.path.join(HERE, "zoo-trajectories.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    save_file({k: v.detach().to(torch.float64).contiguous() for k, v in sorted(tensors.items())},
              os.path.join(HERE, "zoo-trajectories.safetensors"))
    print(f"wrote {len(methods)} rows, {len(tensors)} tensors; all losses finite")
