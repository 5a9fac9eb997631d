"""Reference for `--prior-correct`: LADE's test-time prior rule, written from LADE's code, applied
to the final test logits of every row the parity fixtures hold.

Reads tests/fixtures/tiny-trajectories.safetensors and tests/fixtures/zoo-trajectories.safetensors
(the rows' test logits, each computed there from its source) and writes
tests/fixtures/prior-correct-reference.json. Needs numpy and safetensors only (no torch), in a
venv OUTSIDE the repository; run from crates/retrain:

    python -m venv /tmp/npvenv && /tmp/npvenv/bin/pip install numpy safetensors
    /tmp/npvenv/bin/python scripts/prior_correct_reference.py

The rule is LADE's (hyperconnect/LADE, commit 5db5d13472), run_networks.py:594-599, in `eval`:

    if "Softmax" in self.config["criterions"]["PerformanceLoss"]["def_file"] and \\
            "RouteWeightLoss" not in self.config["criterions"] and \\
            "DotProductClassifier" in self.config["networks"]["classifier"]["def_file"]:
        self.logits -= torch.log(self.prior_distribution["train"]).cuda()
    else:
        self.logits += torch.log(self.prior_distribution[phase]).cuda()

with prior_distribution[split] = img_num_list / img_num_list.sum() (data/dataloader.py:173,180).
The first branch is a model trained with plain softmax CE (loss/SoftmaxLoss.py) on a
dot-product head (models/DotProductClassifier.py) from instance-balanced draws
(config/*/ce.yaml: no sampler); the second every model trained prior-balanced: PriorCELoss
(loss/PriorCELoss.py:22-25, z + log pi in training; config/*/balanced_softmax.yaml:3) and LADE
(config/*/lade.yaml). LADE evaluates on a test split whose class frequencies are the prior; here
the test prior q is a weight vector (SADE's forward-R / backward-R), so "log prior_distribution
[phase]" is log q. On the first branch LADE adds no log q (:597); the paper's PC-softmax (Hong et
al. 2021, Eq. 7) does, and so does this reference (a uniform q is a constant either way).

Which branch a row is on is decided below from what the row trains with (`ROWS`, written from
each method's description in its source, not from ltbench's TOML): the first branch is exactly
"an unweighted softmax-CE-family loss with no prior term, on instance-balanced draws, through a
plain linear or cosine map, no post-hoc step" (ltbench's smoothed CE, focal and LAS losses count
as CE here: none adds a class prior); anything that balances (sampler, class weights, a prior or
margin term in the loss, a balancing head or post-hoc step) is on the second.
"""
import json
import os

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
tiny = load_file(os.path.join(HERE, "tiny-trajectories.safetensors"))
zoo = load_file(os.path.join(HERE, "zoo-trajectories.safetensors"))
Y, YT = tiny["train.labels"], tiny["test.labels"]
XT = tiny["test.features"].astype(np.float64)
W0, B0 = tiny["head_init.weight"].astype(np.float64), tiny["head_init.bias"].astype(np.float64)
K = W0.shape[0]
n = np.bincount(Y, minlength=K).astype(np.float64)
pi = n / n.sum()  # LADE data/dataloader.py:173

# What each row trains with: loss family, draws, class weights, head, post-hoc step.
CE, PRIOR, MARGIN = "softmax-ce", "prior-term", "margin"
ROWS = {
    # Table 1 rows
    "stage1": (CE, "instance", "none", "linear", "none"),
    "logreg-balanced": (CE, "instance", "balanced", "linear", "none"),
    "vanilla-fc": (CE, "instance", "none", "linear", "none"),
    "vanilla-cosine": (CE, "instance", "none", "cosine", "none"),
    "lws": (CE, "class-aware", "none", "lws", "none"),
    "ldam": (MARGIN, "instance", "none", "cosine", "none"),
    "balanced-softmax": (PRIOR, "instance", "none", "linear", "none"),
    "re-sampling": (CE, "class-balanced", "none", "linear", "none"),
    "focal": (CE, "instance", "none", "linear", "none"),
    "class-balanced": (CE, "instance", "class-balanced", "linear", "none"),
    "maxnorm": (CE, "instance", "none", "linear", "none"),
    "tau-norm": (CE, "instance", "none", "linear", "tau-norm"),
    "logit-adjust": (CE, "instance", "none", "linear", "logit-adjust"),
    "los": (CE, "instance", "none", "linear", "none"),
    # the zoo
    "crt": (CE, "class-aware", "none", "linear", "none"),
    "ncm": ("none", "none", "none", "class-means", "none"),
    "las": (CE, "instance", "none", "linear", "none"),
    "mislas": (CE, "class-aware", "none", "lws", "none"),
    "cdt": (MARGIN, "instance", "none", "linear", "none"),
    "vs": (PRIOR, "instance", "none", "linear", "none"),
    "la-loss": (PRIOR, "instance", "none", "linear", "none"),
    "cs-ce": (CE, "instance", "inverse-count", "linear", "none"),
    "drw": (CE, "instance", "class-balanced (deferred)", "linear", "none"),
    "sqrt-sampling": (CE, "square-root", "none", "linear", "none"),
    "progressive": (CE, "progressive", "none", "linear", "none"),
    "disalign": (CE, "instance", "generalised (rho 1.2)", "disalign", "none"),
    "gcl": (MARGIN, "class-balanced", "none", "cosine", "none"),
    "lade": (PRIOR, "instance", "none", "linear", "none"),
    "bal-bce": (PRIOR, "instance", "none", "linear", "none"),
    "class-mean-init": (CE, "instance", "none", "linear", "none"),
    "prior-correct": (CE, "instance", "none", "linear", "prior-correct"),
}


def lade_branch(loss, draws, weights, head, posthoc):
    """run_networks.py:594-596: the `-= log pi_train` branch is plain softmax CE ("Softmax" in
    the loss file, no RouteWeightLoss) on a dot-product head; everything else is :598-599."""
    plain = loss == CE and draws == "instance" and weights == "none"
    return "train" if plain and head in ("linear", "cosine") and posthoc == "none" else "balanced"


def forward_backward(kind, r):
    """SADE's test priors: classes ranked by train count (0 = most), forward-R weight
    R^(-rank/(K-1)), backward-R the reverse, uniform 1/K; normalised."""
    rank = np.empty(K, dtype=np.int64)
    rank[np.lexsort((np.arange(K), -n))] = np.arange(K)
    if kind == "uniform":
        w = np.ones(K)
    elif kind == "forward":
        w = float(r) ** (-rank / (K - 1))
    else:
        w = float(r) ** (-(K - 1 - rank) / (K - 1))
    return w / w.sum()


PRIORS = {"uniform": forward_backward("uniform", 0), "forward-10": forward_backward("forward", 10),
          "backward-10": forward_backward("backward", 10), "forward-50": forward_backward("forward", 50),
          "backward-2": forward_backward("backward", 2)}

# Each row's final test logits, as its source evaluates it (from the fixtures, which compute them
# from the sources), or from the stage-1 head here:
z0 = XT @ W0.T + B0
logits = {
    "stage1": z0,
    # Decoupling tau_norm.py:102-107 pnorm(W, p = 1), :96 dotproduct_similarity (no bias)
    "tau-norm": XT @ (W0 / np.linalg.norm(W0, axis=1, keepdims=True) ** 1.0).T,
    # the prior-correct row: PC-softmax at the uniform prior, z - log pi + log(1/K)
    "prior-correct": z0 - np.log(pi) + np.log(1.0 / K),
}
for name in ("vanilla-fc", "focal", "los", "balanced-softmax", "logit-adjust"):
    logits[name] = tiny[f"{name}.test_logits"].astype(np.float64)
for name in ("crt", "ncm", "las", "mislas", "cdt", "vs", "la-loss", "cs-ce", "drw", "disalign",
             "gcl", "lade", "bal-bce", "class-mean-init"):
    logits[name] = zoo[f"{name}.test_logits"].astype(np.float64)

rows = {}
for name, what in ROWS.items():
    branch = lade_branch(*what)
    row = {"logit_prior": branch, "trains_with": list(what)}
    if name in logits:
        z = logits[name]
        row["shift"], row["correct"] = {}, {}
        for pname, q in PRIORS.items():
            if branch == "train":
                shift = -np.log(pi) + np.log(q)  # :597 (plus the paper's + log q)
            else:
                shift = np.log(q)  # :599
            hit = (z + shift).argmax(1) == YT
            row["shift"][pname] = shift.tolist()
            row["correct"][pname] = [int((hit & (YT == c)).sum()) for c in range(K)]
        row["correct_uncorrected"] = [int(((z.argmax(1) == YT) & (YT == c)).sum()) for c in range(K)]
    rows[name] = row

out = dict(
    source="hyperconnect/LADE 5db5d13472 run_networks.py:594-599; data/dataloader.py:173",
    counts=n.astype(int).tolist(),
    priors={k: v.tolist() for k, v in PRIORS.items()},
    rows=rows,
    semantics=[
        "rows.<name>.logit_prior: LADE's branch for what the row trains with (trains_with: loss, "
        "draws, class weights, head, post-hoc): 'train' = run_networks.py:597 (logits - log pi), "
        "'balanced' = :599 (logits + log q)",
        "rows.<name>.shift.<prior>: what the rule adds to the row's final test logits: train: "
        "-log pi + log q; balanced: log q (LADE adds no -log(1/K): a constant)",
        "rows.<name>.correct.<prior>: per-class counts of argmax(logits + shift) == y on the test "
        "split of tiny-trajectories; correct_uncorrected: the same without the shift",
    ],
)
with open(os.path.join(HERE, "prior-correct-reference.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {len(rows)} rows, {sum('shift' in r for r in rows.values())} with logits")
