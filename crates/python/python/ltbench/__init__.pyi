"""Type stubs of ltbench (the package's public API)."""

import os
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import polars as pl

PROTOCOL_KEYWORDS: list[str]

LossFn = Callable[[np.ndarray, np.ndarray, dict[str, Any]], tuple[float, np.ndarray]]

class Bank:
    path: str | None
    @staticmethod
    def open(path: str | os.PathLike[str]) -> Bank: ...
    @staticmethod
    def from_arrays(
        train: Sequence[Any],
        test: Sequence[Any],
        val: Sequence[Any] | None = ...,
        head: tuple[Any, Any] | None = ...,
        name: str = ...,
        meta: Mapping[str, Any] | None = ...,
    ) -> Bank: ...
    @property
    def name(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def train_counts(self) -> list[int]: ...
    def fingerprint(self) -> str: ...

class Method:
    name: str
    spec: dict[str, Any]
    builtin: bool
    loss_fn: LossFn | None
    loss_id: int | None
    @staticmethod
    def row(name: str, **constants: float) -> Method: ...
    @staticmethod
    def from_toml(text: str) -> Method: ...
    @staticmethod
    def custom(
        name: str,
        loss: LossFn,
        base: str = ...,
        logit_prior: Literal["train", "balanced"] | None = ...,
        **constants: Any,
    ) -> Method: ...
    @staticmethod
    def torch(
        name: str,
        loss: Callable[..., Any],
        base: str = ...,
        logit_prior: Literal["train", "balanced"] | None = ...,
        **constants: Any,
    ) -> Method: ...

class Results:
    folder: os.PathLike[str]
    @property
    def table(self) -> pl.DataFrame: ...
    @property
    def runs(self) -> pl.DataFrame: ...
    @property
    def per_class(self) -> pl.DataFrame: ...
    @property
    def predictions(self) -> pl.DataFrame: ...
    def save(self, folder: str | os.PathLike[str]) -> os.PathLike[str]: ...
    def compare(
        self, other: Results, bootstrap: int = ..., seed: int = ..., *, verbose: bool = ...
    ) -> pl.DataFrame: ...
    def __repr__(self) -> str: ...

def methods() -> list[dict[str, Any]]: ...
def run(
    bank: Bank | str | os.PathLike[str] | Iterable[Bank],
    methods: str | Sequence[str | Method] = ...,
    seeds: int = ...,
    *,
    out: str | os.PathLike[str] | None = ...,
    verbose: bool = ...,
    lr: float = ...,
    wd: float = ...,
    momentum: float = ...,
    epochs: int = ...,
    batch_size: int = ...,
    init: str = ...,
    schedule: str = ...,
    recipe: str = ...,
    delta: float = ...,
    tau: float = ...,
    bootstrap: int = ...,
    bootstrap_seed: int = ...,
    baseline: str = ...,
    jobs: int = ...,
    seed: int = ...,
    many_above: int = ...,
    few_below: int = ...,
    maxnorm_every: str = ...,
    test_prior: str | Sequence[str] = ...,
    oracle: bool = ...,
    no_tta: bool = ...,
    prior_correct: bool = ...,
    plots: bool = ...,
    rerun: bool = ...,
    reuse_stale: bool = ...,
    one_pass: bool = ...,
    no_views: bool = ...,
    quiet: bool = ...,
) -> Results: ...
def compare(
    a: Results | str,
    b: Results | str,
    bootstrap: int = ...,
    seed: int = ...,
    *,
    verbose: bool = ...,
) -> pl.DataFrame: ...
