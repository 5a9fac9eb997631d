"""ltbench from Python: the stage-2 methods of long-tailed recognition on cached features.

    import ltbench
    bank = ltbench.Bank.open("features/fmnist-lt-ir100")
    res = ltbench.run(bank, methods=["vanilla-fc", "los"], seeds=3)
    res.table                      # polars DataFrame: the CLI's table1.csv

A thin face over the same Rust library as the `retrain` command: the same rows, protocol,
seeds, records, tables and intervals. Your own loss runs inside the engine with
``Method.custom`` (numpy) or ``Method.torch`` (autograd).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from . import _ltbench
from ._losskey import Unkeyable, loss_key

__all__ = ["Bank", "Method", "Results", "run", "methods", "compare", "PROTOCOL_KEYWORDS"]

# keyword → CLI flag (value flags); every other keyword of `run` is a TypeError
_VALUE_FLAGS = {
    "lr": "--lr",
    "wd": "--wd",
    "momentum": "--momentum",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "init": "--init",
    "schedule": "--schedule",
    "recipe": "--recipe",
    "delta": "--delta",
    "tau": "--tau",
    "bootstrap": "--bootstrap",
    "bootstrap_seed": "--bootstrap-seed",
    "baseline": "--baseline",
    "jobs": "--jobs",
    "seed": "--seed",
    "many_above": "--many-above",
    "few_below": "--few-below",
    "maxnorm_every": "--maxnorm-every",
}
_LIST_FLAGS = {"test_prior": "--test-prior"}
_SWITCHES = {
    "oracle": "--oracle",
    "no_tta": "--no-tta",
    "prior_correct": "--prior-correct",
    "plots": None,  # True draws the figures (the CLI's default); False: --no-plots
    "rerun": "--rerun",
    "reuse_stale": "--reuse-stale",
    "one_pass": "--one-pass",
    "no_views": "--no-views",
    "quiet": "--quiet",
}
PROTOCOL_KEYWORDS = sorted([*_VALUE_FLAGS, *_LIST_FLAGS, *_SWITCHES])


def _as_f32_matrix(x: Any, what: str) -> np.ndarray:
    """A C-contiguous float32 [N, D] array; f32 numpy arrays and CPU torch tensors are
    borrowed without a copy, f16 / f64 are converted once."""
    if type(x).__module__.startswith("torch"):
        if x.device.type != "cpu":
            raise ValueError(f"{what}: a torch tensor on {x.device}; move it to the CPU (.cpu())")
        x = x.detach().numpy()
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{what}: features must be 2-D [N, D], got shape {a.shape}")
    if a.dtype not in (np.float32, np.float16, np.float64):
        raise ValueError(f"{what}: features must be float32, float16 or float64, got {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    # the bank borrows this buffer (no copy of float32 data): hand it a read-only view
    a = a.view()
    a.setflags(write=False)
    return a


def _as_labels(y: Any, what: str) -> np.ndarray:
    if type(y).__module__.startswith("torch"):
        y = y.detach().cpu().numpy()
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{what}: labels must be 1-D [N], got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what}: labels must be integers, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _split(arg: Any, name: str) -> tuple:
    if not isinstance(arg, (tuple, list)) or len(arg) not in (2, 3):
        raise ValueError(f"{name}: expected (X, y) or (X, y, X_flip)")
    x = _as_f32_matrix(arg[0], f"{name}.features")
    y = _as_labels(arg[1], f"{name}.labels")
    flip = None
    if len(arg) == 3 and arg[2] is not None:
        flip = _as_f32_matrix(arg[2], f"{name}.features_flip")
    return (x, y, flip)


class Bank:
    """A validated feature bank: ``Bank.open(folder)`` or ``Bank.from_arrays(...)``.

    Every check and message of the CLI's bank reader applies; bad data raises
    ``ValueError`` naming the file and the field, a missing folder or file an ``OSError``.
    """

    def __init__(self, handle: Any, path: str | None = None):
        self._h = handle
        self.path = path

    @staticmethod
    def open(path: str | os.PathLike) -> "Bank":
        """Open the bank folder ``path`` (``train.safetensors``, ``test.safetensors``, ...)."""
        return Bank(_ltbench.open_bank(os.fspath(path)), os.fspath(path))

    @staticmethod
    def from_arrays(
        train: Sequence[Any],
        test: Sequence[Any],
        val: Sequence[Any] | None = None,
        head: tuple[Any, Any] | None = None,
        name: str = "bank",
        meta: Mapping[str, Any] | None = None,
    ) -> "Bank":
        """A bank from arrays: ``train`` / ``test`` / ``val`` = ``(X, y)`` or
        ``(X, y, X_flip)`` (X float32/float16/float64 [N, D] numpy arrays or CPU torch
        tensors, y integer [N]); ``head`` = ``(W [K, D], b [K])``, the stage-1 classifier
        (fitted when absent); ``meta`` as ``meta.json``. float32 features are used in place,
        not copied (made read-only)."""
        h = None
        if head is not None:
            w = np.ascontiguousarray(_as_f32_matrix(head[0], "head.weight"), dtype=np.float32)
            b = np.ascontiguousarray(np.asarray(head[1], dtype=np.float32).reshape(-1))
            h = (w, b)
        handle = _ltbench.bank_from_arrays(
            name,
            _split(train, "train"),
            _split(test, "test"),
            None if val is None else _split(val, "val"),
            h,
            None if meta is None else json.dumps(dict(meta)),
        )
        return Bank(handle)

    name = property(lambda self: self._h.name)
    num_classes = property(lambda self: self._h.num_classes)
    dim = property(lambda self: self._h.dim)
    train_counts = property(lambda self: list(self._h.train_counts))

    def fingerprint(self) -> str:
        """The content fingerprint that run records are keyed by."""
        return self._h.fingerprint()

    def __repr__(self) -> str:
        h = self._h
        return (
            f"Bank({h.name!r}: K={h.num_classes} D={h.dim}, train {h.train_rows} rows, "
            f"test {h.test_rows}{'' if h.val_rows is None else f', val {h.val_rows}'}, "
            f"{'stage-1 head' if h.has_head else 'no head'})"
        )


def methods() -> list[dict]:
    """Every row of the method table (Table 1, then the zoo), as dicts with their group."""
    return json.loads(_ltbench.methods_json())


def _row(name: str) -> dict:
    for r in methods():
        if r["name"] == name:
            return r
    raise ValueError(f"unknown method `{name}` (ltbench.methods() lists them)")


_ALIASES = {"delta": "loss.smoothing"}


@dataclass
class Method:
    """A row of the method table: a built-in one (``Method.row``), one from TOML
    (``Method.from_toml``), or your own loss on a built-in row (``Method.custom``,
    ``Method.torch``)."""

    name: str
    spec: dict = field(repr=False)
    builtin: bool = False
    loss_fn: Callable | None = field(default=None, repr=False)
    loss_id: int | None = None
    # a custom loss: (kind, the function keyed, constants, keyable when made); `run` keys it
    # again as it is when it runs
    _keyed: tuple | None = field(default=None, repr=False)

    @staticmethod
    def row(name: str, **constants: float) -> "Method":
        """The built-in row ``name``, with constants changed (``delta``, ``tau``, ``lr``,
        ``eps_head``, ... as ``--sweep`` names them); renamed ``name-k1v1-...`` when changed."""
        spec = _row(name)
        spec.pop("group", None)
        if not constants:
            return Method(name, spec, builtin=True)
        changes = [(_ALIASES.get(k, k), float(v)) for k, v in constants.items()]
        spec = json.loads(_ltbench.row_with(json.dumps(spec), changes))
        new = name + "".join(f"-{k}{v:g}" for k, v in constants.items())
        spec["name"] = new
        return Method(new, spec)

    @staticmethod
    def from_toml(text: str) -> "Method":
        """A row from TOML (a ``[[method]]`` table of ``baselines/*.toml``, or its body)."""
        spec = json.loads(_ltbench.row_from_toml(text))
        return Method(spec["name"], spec)

    @staticmethod
    def custom(
        name: str,
        loss: Callable,
        base: str = "vanilla-fc",
        logit_prior: str | None = None,
        **constants: Any,
    ) -> "Method":
        """Your loss inside the engine. ``loss(logits, labels, ctx)`` gets ``logits``
        float32 [B, K] and ``labels`` int64 [B] (numpy) and ``ctx`` (``class_counts``,
        ``num_classes``, ``epoch``, ``epochs``, ``step``, ``seed``) and returns
        ``(loss, grad)``: the batch-mean loss and ∂loss/∂logits, float32 [B, K]. The ``base``
        row gives the head, sampler, optimiser and protocol. ``logit_prior`` (``"train"`` or
        ``"balanced"``) says which label prior your loss's logits estimate, for
        ``prior_correct``: ``"train"`` for a plain CE-like loss on instance draws (corrected
        by log q − log π), ``"balanced"`` for a loss that balances (log q only); a row that
        does not say is refused under ``prior_correct``.

        Records are keyed by a hash of what determines the computation, taken when ``run``
        starts: the code (bytecode, constants, names, nested functions), closure values,
        defaults, ``functools.partial`` arguments, a bound method's or callable object's
        class code and state (``__dict__``, ``__slots__``), the module globals the code
        reads (recursively; modules and installed packages by name and version), and
        ``constants``. So ``make(0.5)`` and ``make(0.9)`` from one factory, two partials, two
        lambdas with other defaults get records of their own, and the same one made again
        reuses them. Values are hashed only when of a known kind (numbers, strings, bytes,
        containers of them, numpy arrays, torch tensors, functions, instances of Python
        classes); a loss that holds anything else (a random generator, a lock, an object
        whose state lives in C) warns and is never reused from records."""
        return _custom(name, loss, base, constants, "numpy", logit_prior)

    @staticmethod
    def torch(
        name: str,
        loss: Callable,
        base: str = "vanilla-fc",
        logit_prior: str | None = None,
        **constants: Any,
    ) -> "Method":
        """Your loss on torch tensors: ``loss(logits, labels, ctx)`` returns a scalar tensor
        (the batch mean); the gradient comes from autograd. Needs torch. Records are keyed
        as ``Method.custom``'s."""
        import torch  # noqa: F401  (fails here, not mid-run, when torch is missing)

        def numpy_loss(logits, labels, ctx):
            z = torch.from_numpy(logits).requires_grad_(True)
            value = loss(z, torch.from_numpy(labels), ctx)
            (g,) = torch.autograd.grad(value, z)
            return float(value.detach()), np.ascontiguousarray(g.numpy(), dtype=np.float32)

        m = _custom(name, loss, base, constants, "torch", logit_prior)
        m.loss_fn = numpy_loss
        return m


def _never_reused(name: str, why: Unkeyable) -> int:
    warnings.warn(
        f"ltbench: the loss of `{name}` cannot be keyed by what it computes ({why}): its runs "
        "are never reused from records",
        stacklevel=4,
    )
    return secrets.randbits(63)


def _custom(
    name: str,
    fn: Callable,
    base: str,
    constants: Mapping[str, Any],
    kind: str,
    logit_prior: str | None = None,
) -> Method:
    if logit_prior not in (None, "train", "balanced"):
        raise ValueError(
            f"Method.custom `{name}`: logit_prior must be \"train\" or \"balanced\", "
            f"got {logit_prior!r}"
        )
    constants = dict(constants)
    try:
        loss_id, keyable = loss_key(kind, fn, constants), True
    except Unkeyable as e:
        loss_id, keyable = _never_reused(name, e), False
    spec = _row(base)
    spec.pop("group", None)
    spec["name"] = name
    spec["loss"] = {"kind": "custom", "id": loss_id}
    spec.pop("reweight", None)
    spec["posthoc"] = {"kind": "none"}
    spec["train"] = True
    spec.pop("recipe", None)
    # the base row's declaration is about its own loss, not this one
    spec.pop("logit_prior_why", None)
    spec.pop("logit_prior", None)
    if logit_prior is not None:
        spec["logit_prior"] = logit_prior
    return Method(name, spec, loss_fn=fn, loss_id=loss_id, _keyed=(kind, fn, constants, keyable))


def _run_spec(m: Method) -> dict:
    """The row of ``m`` as it runs now: a custom loss keyed by its state at this moment (a
    closure made in a loop reads the loop variable's value when it runs, not when made)."""
    if m._keyed is None:
        return m.spec
    kind, fn, constants, keyable = m._keyed
    try:
        loss_id = loss_key(kind, fn, constants)
    except Unkeyable as e:
        # warned once when made; never reused either way
        loss_id = _never_reused(m.name, e) if keyable else secrets.randbits(63)
    return {**m.spec, "loss": {"kind": "custom", "id": loss_id}}


class Results:
    """What a run wrote, as polars DataFrames: ``table`` (table1.csv), ``runs`` (runs.csv),
    ``per_class`` (per-class.csv), ``predictions`` (predictions.parquet); ``save(folder)``
    keeps the CLI's files; ``compare(other)`` is ``retrain compare`` as a DataFrame."""

    def __init__(self, folder: str | os.PathLike, temporary: bool = False):
        self.folder = Path(folder)
        self._temporary = temporary

    def _csv(self, name: str) -> pl.DataFrame:
        return pl.read_csv(self.folder / name, infer_schema_length=None)

    @property
    def table(self) -> pl.DataFrame:
        return self._csv("table1.csv")

    @property
    def runs(self) -> pl.DataFrame:
        return self._csv("runs.csv")

    @property
    def per_class(self) -> pl.DataFrame:
        return self._csv("per-class.csv")

    @property
    def predictions(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / "predictions.parquet")

    def save(self, folder: str | os.PathLike) -> Path:
        """Copy the run's files (tables, records, README, figures) into ``folder``."""
        dest = Path(folder)
        shutil.copytree(self.folder, dest, dirs_exist_ok=True)
        return dest

    def compare(
        self, other: "Results", bootstrap: int = 1000, seed: int = 0, *, verbose: bool = False
    ) -> pl.DataFrame:
        """Every method of ``self`` against the same method of ``other`` (Δ = self − other),
        paired on the same test rows: the CLI's ``retrain compare other self``. Nothing is
        written to stdout unless ``verbose=True``: then the CLI's printed comparison goes to
        ``sys.stdout`` (a notebook cell's output)."""
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "compare.csv"
            text = _ltbench.compare(
                ["retrain", "compare", str(other.folder), str(self.folder), "--out", str(out),
                 "--bootstrap", str(bootstrap), "--bootstrap-seed", str(seed)]
            )
            if verbose:
                sys.stdout.write(text)
            return pl.read_csv(out)

    def __repr__(self) -> str:
        head = f"Results({str(self.folder)!r})"
        try:
            return f"{head}\n{self.table!r}"
        except Exception:  # no table1.csv (a shard's folder, or removed): the folder alone
            return head

    def __del__(self):
        if getattr(self, "_temporary", False):
            shutil.rmtree(self.folder, ignore_errors=True)


def _argv(protocol: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for k, v in protocol.items():
        if v is None:
            continue
        if k in _VALUE_FLAGS:
            argv += [_VALUE_FLAGS[k], str(v)]
        elif k in _LIST_FLAGS:
            vals = v if isinstance(v, (list, tuple)) else [v]
            argv += [_LIST_FLAGS[k], ",".join(str(x) for x in vals)]
        elif k == "plots":
            if not v:
                argv.append("--no-plots")
        elif k in _SWITCHES:
            if v:
                argv.append(_SWITCHES[k])
        else:
            raise TypeError(
                f"run() got an unexpected keyword argument '{k}' (protocol keywords: "
                f"{', '.join(PROTOCOL_KEYWORDS)})"
            )
    return argv


def _bank_call(b: Any) -> str:
    """A bank argument as the call names it: a path, ``Bank.open(path)``, or
    ``Bank.from_arrays(...)`` with its name and fingerprint."""
    if isinstance(b, Bank):
        if b.path is not None:
            return f"Bank.open({b.path!r})"
        return f"Bank.from_arrays(..., name={b.name!r})  # fingerprint {b.fingerprint()}"
    return repr(os.fspath(b))


def _method_call(m: Any, spec: dict | None) -> str:
    """A row as the call names it: a name, ``Method.row(name)``, a custom loss by its key,
    another row by its spec."""
    if isinstance(m, str):
        return repr(m)
    if m.builtin:
        return f"Method.row({m.name!r})"
    if spec is not None and spec.get("loss", {}).get("kind") == "custom":
        kind = "torch" if m._keyed is not None and m._keyed[0] == "torch" else "custom"
        return f"Method.{kind}({m.name!r}, <loss key {spec['loss']['id']}>)"
    return f"Method({m.name!r}, <row {json.dumps(spec, sort_keys=True, separators=(',', ':'))}>)"


def _provenance(
    bank_arg: Any,
    banks: list[Bank],
    methods_arg: Any,
    calls: list[str],
    custom: list[str],
    names: list[str],
    seeds: int,
    out: Any,
    folder: Path,
    protocol: Mapping[str, Any],
) -> str:
    """How this call's results folder was made: the ``ltbench.run(...)`` call with its
    keywords and, when every row is built-in and every bank a folder, the equivalent
    ``retrain`` command line (else why there is none), as JSON for the native run."""
    if isinstance(bank_arg, (Bank, str, os.PathLike)):
        bank_text = _bank_call(bank_arg)
    else:
        bank_text = "[" + ", ".join(_bank_call(b) for b in bank_arg) + "]"
    methods_text = repr(methods_arg) if isinstance(methods_arg, str) else "[" + ", ".join(calls) + "]"
    args = [bank_text, f"methods={methods_text}", f"seeds={seeds!r}"]
    if out is not None:
        args.append(f"out={os.fspath(out)!r}")
    args += [f"{k}={v!r}" for k, v in protocol.items()]
    call = f"ltbench.run({', '.join(args)})"
    why = []
    arrays = [b.name for b in banks if b.path is None]
    if arrays:
        why.append("banks built from arrays (" + ", ".join(f"`{n}`" for n in arrays) + ")")
    if custom:
        why.append("rows that are not built-in (" + ", ".join(custom) + ")")
    command = None
    if not why:
        argv = ["retrain", "--bank", ",".join(str(b.path) for b in banks),
                "--method", ",".join(names), "--seeds", str(seeds), "--out", str(folder)]
        command = shlex.join(argv + _argv(protocol))
    return json.dumps({
        "face": "python",
        "call": call,
        "command": command,
        **({"no_command": "; ".join(why)} if why else {}),
    })


def run(
    bank: Bank | str | os.PathLike | Iterable[Bank],
    methods: str | Sequence[str | Method] = "all",
    seeds: int = 3,
    *,
    out: str | os.PathLike | None = None,
    verbose: bool = False,
    **protocol: Any,
) -> Results:
    """Run ``methods`` × ``seeds`` on ``bank`` with the LOS protocol (or what ``protocol``
    says: ``lr``, ``wd``, ``epochs``, ``batch_size``, ``init``, ``delta``, ``tau``,
    ``recipe``, ``test_prior``, ``bootstrap``, ``baseline``, ``jobs``, ... as the CLI flags).

    ``methods``: ``"all"``, ``"table1"``, ``"zoo"``, or a list of row names and ``Method``
    objects. ``out``: the results folder (runs recorded there are reused by a later call;
    default: a temporary folder). The GIL is released while Rust trains; Ctrl-C raises
    KeyboardInterrupt and keeps the finished runs in ``out``'s records.

    Nothing is written to stdout (file descriptor 1) unless ``verbose=True``: then the
    table as the CLI prints it goes to ``sys.stdout`` (a notebook cell's output). The
    returned ``Results`` shows its table when displayed."""
    for k in protocol:
        if k not in PROTOCOL_KEYWORDS:
            raise TypeError(
                f"run() got an unexpected keyword argument '{k}' (protocol keywords: "
                f"{', '.join(PROTOCOL_KEYWORDS)})"
            )
    bank_arg = bank if isinstance(bank, (Bank, str, os.PathLike)) else list(bank)
    banks = [bank_arg] if isinstance(bank_arg, (Bank, str, os.PathLike)) else bank_arg
    banks = [b if isinstance(b, Bank) else Bank.open(b) for b in banks]
    methods_arg = methods
    if isinstance(methods, str):
        methods = [methods]
    names: list[str] = []
    rows: list[dict] = []
    # each custom row's function goes with this call (no registry shared between calls)
    losses: list[tuple[str, Callable]] = []
    # how the call names each row, and the rows no `retrain` command can name
    calls: list[str] = []
    custom: list[str] = []
    for m in methods:
        if isinstance(m, str):
            names.append(m)
            calls.append(_method_call(m, None))
        elif isinstance(m, Method):
            names.append(m.name)
            spec = None
            if not m.builtin:
                spec = _run_spec(m)
                rows.append(spec)
                loss = spec.get("loss", {})
                custom.append(
                    f"`{m.name}`, loss key {loss['id']}" if loss.get("kind") == "custom" else f"`{m.name}`"
                )
            calls.append(_method_call(m, spec))
            if m.loss_fn is not None:
                losses.append((m.name, m.loss_fn))
        else:
            raise TypeError(f"methods: a row name or an ltbench.Method, got {type(m).__name__}")
    temporary = out is None
    folder = Path(tempfile.mkdtemp(prefix="ltbench-")) if temporary else Path(out)
    argv = ["retrain", "--method", ",".join(names), "--seeds", str(seeds), "--out", str(folder)]
    argv += _argv(protocol)
    if not sys.stderr.isatty() and "quiet" not in protocol:
        argv.append("--quiet")
    provenance = _provenance(
        bank_arg, banks, methods_arg, calls, custom, names, seeds, out, folder, protocol
    )
    text = _ltbench.run(
        argv, [b._h for b in banks], json.dumps(rows) if rows else None, losses, provenance
    )
    if verbose:
        sys.stdout.write(text)
    return Results(folder, temporary=temporary)


def compare(
    a: Results | str,
    b: Results | str,
    bootstrap: int = 1000,
    seed: int = 0,
    *,
    verbose: bool = False,
) -> pl.DataFrame:
    """``retrain compare a b`` as a DataFrame (Δ = b − a, paired on the same test rows).
    Nothing is written to stdout unless ``verbose=True``: then the comparison as the CLI
    prints it goes to ``sys.stdout``."""
    ra = a if isinstance(a, Results) else Results(a)
    rb = b if isinstance(b, Results) else Results(b)
    return rb.compare(ra, bootstrap=bootstrap, seed=seed, verbose=verbose)
