"""From torch features to a table with your own loss, in the style of a notebook.

    pip install ./crates/python torch && python crates/python/examples/custom_loss.py
"""
import numpy as np
import torch

import ltbench

# 1. features as PyTorch gives them (here: the committed default bank, read back as tensors)
bank0 = ltbench.Bank.open("features/fmnist-lt-ir100")
print(bank0)


# 2. your method: a class-prior-aware label smoothing, as a torch loss (autograd gives the gradient)
def prior_smoothing(logits, labels, ctx):
    counts = torch.tensor(ctx["class_counts"], dtype=torch.float64)
    eps = 0.5 * (counts / counts.max()) ** 0.5  # head classes smoothed more
    return torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none").mul(1 - eps[labels]).mean() + (
        eps[labels] * -torch.log_softmax(logits.double(), 1).mean(1)
    ).mean()


mine = ltbench.Method.torch("prior-smoothing", prior_smoothing)

# 3. it runs beside the field's rows: same protocol, seeds, intervals and paired tests
res = ltbench.run(bank0, methods=["vanilla-fc", "los", "las", mine], seeds=3, baseline="vanilla-fc", plots=False)
print(res.table.select(["method", "all", "all_ci_lo", "all_ci_hi", "few", "vs_baseline_delta", "vs_baseline_p"]))
res.save("results/custom-loss-example")
