"""The Python package against the CLI it is a face of (run by .ci/run after `pip install`).

The default bank (features/fmnist-lt-ir100, committed) is the test bank; the CLI binary is
`retrain` from $CARGO_TARGET_DIR (or target/) as `cargo test --workspace` built it.
"""

import functools
import json
import os
import shlex
import sys
import signal
import struct
import subprocess
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import ltbench

ROOT = Path(__file__).resolve().parents[3]
BANK = ROOT / "features" / "fmnist-lt-ir100"


def retrain_bin() -> str:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    b = target / "debug" / "retrain"
    if not b.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "retrain"], cwd=ROOT, check=True)
    return str(b)


def read_safetensors(path: Path) -> dict:
    """The tensors of a safetensors file as numpy arrays (no dependency beyond numpy)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


def arrays(split: str):
    t = read_safetensors(BANK / f"{split}.safetensors")
    return t["features"], t["labels"], t.get("features_flip")


def head():
    t = read_safetensors(BANK / "head.safetensors")
    return t["weight"], t["bias"]


def meta():
    return json.loads((BANK / "meta.json").read_text())


def numpy_los(logits, labels, ctx):
    """LOS (label smoothing, δ = 0.98) in numpy: the batch-mean loss and ∂/∂logits."""
    k, d = ctx["num_classes"], 0.98
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    q = np.full_like(p, d / k)
    q[np.arange(len(labels)), labels] += 1 - d
    loss = -(q * np.log(p)).sum(axis=1).mean()
    return loss, ((p - q) / len(labels)).astype(np.float32)


def test_open_and_run_give_the_cli_table(tmp_path):
    bank = ltbench.Bank.open(BANK)
    assert (bank.num_classes, bank.dim) == (10, 128)
    res = ltbench.run(bank, methods=["vanilla-fc", "los", "crt"], seeds=2, plots=False)
    cli = tmp_path / "cli"
    subprocess.run(
        [retrain_bin(), "--bank", str(BANK), "--method", "vanilla-fc,los,crt", "--seeds", "2",
         "--no-plots", "-q", "--out", str(cli)],
        check=True, capture_output=True,
    )
    want = pl.read_csv(cli / "table1.csv", infer_schema_length=None)
    got = res.table
    assert got.columns == want.columns
    assert got.height == want.height == 3
    for c in want.columns:
        if want[c].dtype in (pl.Float64, pl.Int64):
            # the CSV's printed precision: 4 decimals
            assert np.allclose(got[c].to_numpy(), want[c].to_numpy(), atol=5e-5, equal_nan=True), c
        else:
            assert got[c].to_list() == want[c].to_list(), c
    assert res.runs.height > 0 and res.per_class.height > 0
    assert res.predictions.height > 0
    saved = res.save(tmp_path / "saved")
    assert (saved / "table1.csv").exists() and (saved / "records.jsonl").exists()


def test_from_arrays_f32_f16_torch_equal_open():
    opened = ltbench.Bank.open(BANK)
    (x, y, xf), (xt, yt, xtf) = arrays("train"), arrays("test")
    w, b = head()
    f16 = ltbench.Bank.from_arrays(train=(x, y, xf), test=(xt, yt, xtf), head=(w, b), name="fmnist-lt-ir100", meta=meta())
    assert x.dtype == np.float16
    def as32(a):
        return None if a is None else a.astype(np.float32)

    f32 = ltbench.Bank.from_arrays(
        train=(as32(x), y, as32(xf)),
        test=(as32(xt), yt, as32(xtf)),
        head=(w, b), name="fmnist-lt-ir100", meta=meta(),
    )
    f64 = ltbench.Bank.from_arrays(
        train=(x.astype(np.float64), y, xf), test=(xt, yt, xtf), head=(w, b), meta=meta()
    )
    assert opened.fingerprint() == f16.fingerprint() == f32.fingerprint() == f64.fingerprint()
    torch = pytest.importorskip("torch")
    tb = ltbench.Bank.from_arrays(
        train=(torch.from_numpy(as32(x)), torch.from_numpy(y.copy()), xf),
        test=(xt, yt, xtf), head=(w, b), meta=meta(),
    )
    assert tb.fingerprint() == opened.fingerprint()


def test_run_on_arrays_equals_run_on_the_folder():
    (x, y, xf), (xt, yt, xtf) = arrays("train"), arrays("test")
    mem = ltbench.Bank.from_arrays(train=(x, y, xf), test=(xt, yt, xtf), head=head(), meta=meta())
    a = ltbench.run(mem, methods=["balanced-softmax"], seeds=1, plots=False).table
    # (a bank folder with train_views.safetensors would train on them: compare on features)
    b = ltbench.run(
        ltbench.Bank.open(BANK), methods=["balanced-softmax"], seeds=1, plots=False, no_views=True
    ).table
    assert a["all"].to_list() == b["all"].to_list()
    assert a["few"].to_list() == b["few"].to_list()


def test_numpy_los_through_custom_is_the_builtin_los():
    bank = ltbench.Bank.open(BANK)
    m = ltbench.Method.custom("my-los", numpy_los)
    t = ltbench.run(bank, methods=["los", m], seeds=2, plots=False).table
    los = t.filter(pl.col("method") == "los")
    mine = t.filter(pl.col("method") == "my-los")
    for c in ["all", "many", "medium", "few"]:
        assert abs(los[c][0] - mine[c][0]) <= 0.05, c


def test_a_custom_loss_declares_its_logit_prior_for_prior_correct(tmp_path):
    bank = ltbench.Bank.open(BANK)
    mine = ltbench.Method.custom("my-los", numpy_los, logit_prior="train")
    res = ltbench.run(bank, methods=["los", mine], seeds=1, plots=False, prior_correct=True,
                      test_prior=["uniform", "backward-10"], out=str(tmp_path / "r"))
    shift = pl.read_csv(res.folder / "prior-shift.csv")
    for prior in ["uniform", "backward-10"]:
        at = shift.filter(pl.col("prior") == prior)
        los = at.filter(pl.col("method") == "los")["all"][0]
        assert abs(at.filter(pl.col("method") == "my-los")["all"][0] - los) <= 0.05, prior
    # the base row's declaration is not the custom loss's: undeclared is refused, a typo too
    with pytest.raises(ValueError, match="logit_prior"):
        ltbench.run(bank, methods=[ltbench.Method.custom("undeclared", numpy_los)],
                    seeds=1, plots=False, prior_correct=True, test_prior=["uniform"])
    with pytest.raises(ValueError, match="logit_prior"):
        ltbench.Method.custom("typo", numpy_los, logit_prior="balance")


def test_torch_custom_loss_equals_the_numpy_one():
    torch = pytest.importorskip("torch")

    def torch_los(logits, labels, ctx):
        return torch.nn.functional.cross_entropy(logits.double(), labels, label_smoothing=0.98)

    bank = ltbench.Bank.open(BANK)
    t = ltbench.run(
        bank, methods=[ltbench.Method.custom("np", numpy_los), ltbench.Method.torch("pt", torch_los)],
        seeds=1, plots=False,
    ).table
    a, b = t.filter(pl.col("method") == "np"), t.filter(pl.col("method") == "pt")
    for c in ["all", "many", "few"]:
        assert abs(a[c][0] - b[c][0]) <= 0.05, c


def test_bad_arrays_raise_value_error_naming_the_field():
    (x, y, _), (xt, yt, _) = arrays("train"), arrays("test")
    with pytest.raises(ValueError, match=r"train\.safetensors.*labels"):
        ltbench.Bank.from_arrays(train=(x, y[:-1]), test=(xt, yt))
    bad = x.astype(np.float32)
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"train\.safetensors: `features`\[3, 5\] is not finite"):
        ltbench.Bank.from_arrays(train=(bad, y), test=(xt, yt))
    w, b = head()
    with pytest.raises(ValueError, match=r"head\.safetensors `weight` has 7 rows"):
        ltbench.Bank.from_arrays(
            train=(x, y), test=(xt, yt), head=(w[:7], b[:7]), meta={"num_classes": 10}
        )
    with pytest.raises(ValueError, match=r"head\.safetensors: `weight` has dimension 100"):
        ltbench.Bank.from_arrays(train=(x, y), test=(xt, yt), head=(w[:, :100], b))
    with pytest.raises(FileNotFoundError, match="nope"):
        ltbench.Bank.open("nope")


def test_unknown_keyword_is_a_type_error_and_bad_values_a_value_error():
    bank = ltbench.Bank.open(BANK)
    with pytest.raises(TypeError, match="learning_rate"):
        ltbench.run(bank, methods=["los"], learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown method `nope`"):
        ltbench.run(bank, methods=["nope"])
    with pytest.raises(ValueError, match="--init stage1.*`ncm`"):
        ltbench.run(bank, methods=["ncm"], init="stage1")


def test_a_failing_custom_loss_stops_the_run_with_its_name():
    def bad(logits, labels, ctx):
        return 0.0, np.zeros((3, 3), np.float32)

    with pytest.raises(ValueError, match=r"custom loss `bad`.*shape"):
        ltbench.run(ltbench.Bank.open(BANK), methods=[ltbench.Method.custom("bad", bad)], seeds=1)


def test_methods_and_rows():
    rows = ltbench.methods()
    names = [r["name"] for r in rows]
    assert "los" in names and "gcl" in names and len(rows) == 31
    assert {r["group"] for r in rows} == {"table1", "zoo"}
    m = ltbench.Method.row("los", delta=0.9)
    assert m.name == "los-delta0.9" and m.spec["loss"]["smoothing"] == pytest.approx(0.9)
    t = ltbench.Method.from_toml('name = "mine"\nloss = { kind = "ce", smoothing = 0.5 }')
    res = ltbench.run(ltbench.Bank.open(BANK), methods=["los", m, t], seeds=1, plots=False).table
    assert res["method"].to_list() == ["los", "los-delta0.9", "mine"]
    with pytest.raises(ValueError, match="smoothing"):
        ltbench.Method.from_toml('name = "x"\nloss = { kind = "ce", smoothing = 1.5 }')


def test_compare_is_the_cli_compare(tmp_path):
    bank = ltbench.Bank.open(BANK)
    a = ltbench.run(bank, methods=["los", "vanilla-fc"], seeds=2, plots=False)
    b = ltbench.run(bank, methods=["los", "vanilla-fc"], seeds=2, plots=False, lr=0.005)
    d = b.compare(a)
    assert d["method"].to_list() == ["los", "vanilla-fc"]
    cli = tmp_path / "compare.csv"
    subprocess.run(
        [retrain_bin(), "compare", str(a.folder), str(b.folder), "--out", str(cli)],
        check=True, capture_output=True,
    )
    want = pl.read_csv(cli)
    assert d.columns == want.columns
    assert d.equals(want)
    # a higher lr moves los: its Δ is not 0
    assert d.filter(pl.col("method") == "los")["delta_all"][0] != 0.0


def test_run_and_compare_write_nothing_to_stdout_by_default(capfd):
    # file descriptor 1 itself: a Rust print would land here, not in sys.stdout
    bank = ltbench.Bank.open(BANK)
    a = ltbench.run(bank, methods=["vanilla-fc"], seeds=1, plots=False)
    b = ltbench.run(bank, methods=["vanilla-fc"], seeds=1, plots=False, lr=0.005)
    ltbench.compare(a, b, bootstrap=100)
    out, _ = capfd.readouterr()
    assert out == ""
    assert a.table.height == 1


def test_verbose_writes_the_cli_table_to_sys_stdout_and_repr_shows_the_table(capsys):
    bank = ltbench.Bank.open(BANK)
    a = ltbench.run(bank, methods=["vanilla-fc"], seeds=1, plots=False, verbose=True)
    out, _ = capsys.readouterr()
    assert out.startswith("Top-1 accuracy (%) on fmnist-lt-ir100 test"), out
    assert "vanilla-fc" in out and f"wrote {a.folder}/: table1.csv" in out
    b = ltbench.run(bank, methods=["vanilla-fc"], seeds=1, plots=False, lr=0.005)
    assert capsys.readouterr().out == ""
    ltbench.compare(a, b, bootstrap=100, verbose=True)
    out, _ = capsys.readouterr()
    assert out.startswith("Paired comparison, ") and "vanilla-fc" in out, out
    r = repr(a)
    assert r.startswith(f"Results({str(a.folder)!r})") and "vanilla-fc" in r and "shape:" in r


def test_a_python_thread_runs_while_rust_trains():
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    start = time.perf_counter()
    ltbench.run(ltbench.Bank.open(BANK), methods=["zoo"], seeds=1, plots=False)
    took = time.perf_counter() - start
    stop.set()
    t.join()
    during = [x for x in ticks if start <= x <= start + took]
    # the GIL is free while Rust trains: the thread ticks through most of the run
    assert len(during) > 0.3 * took / 0.0012, (len(during), took)


def test_ctrl_c_raises_keyboard_interrupt_and_keeps_finished_runs(tmp_path):
    bank = ltbench.Bank.open(BANK)
    out = tmp_path / "r"

    def interrupt():
        time.sleep(0.8)
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, whatever this process inherited: a shell starts background
    # jobs (`cmd &`) with SIGINT ignored, and then Python never installs it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            ltbench.run(bank, methods=["all"], seeds=40, out=out, plots=False, jobs=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    kept = (out / "records.jsonl").read_text().splitlines()
    assert 0 < len(kept) < 31 * 40
    for line in kept:
        json.loads(line)  # whole lines only
    # the same call resumes from them
    res = ltbench.run(bank, methods=["vanilla-fc"], seeds=2, out=out, plots=False)
    assert res.table.height == 1


def test_records_of_a_custom_loss_are_reused_by_what_it_computes_and_never_when_unkeyable(tmp_path):
    bank = ltbench.Bank.open(BANK)
    out = tmp_path / "r"
    m = ltbench.Method.custom("my-los", numpy_los, epochs_note=1)
    assert m.loss_id == ltbench.Method.custom("my-los", numpy_los, epochs_note=1).loss_id
    assert m.loss_id != ltbench.Method.custom("my-los", numpy_los, epochs_note=2).loss_id
    ltbench.run(bank, methods=[m], seeds=1, out=out, plots=False, epochs=2)
    n = records(out)
    ltbench.run(bank, methods=[m], seeds=1, out=out, plots=False, epochs=2)
    assert records(out) == n, "the same loss is reused"
    # a function without readable source (made by eval) is keyed by its code all the same
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        anon = eval("lambda z, y, c: __import__('test_ltbench').numpy_los(z, y, c)")
        assert ltbench.Method.custom("anon", anon).loss_id == ltbench.Method.custom("anon", anon).loss_id
    # a loss holding state that cannot be hashed (a random generator) is never reused
    rng = np.random.default_rng(0)

    def noisy(z, y, c):
        loss, g = numpy_los(z, y, c)
        return loss, g + np.float32(1e-6) * rng.standard_normal(g.shape, dtype=np.float32)

    with pytest.warns(UserWarning, match=r"closure variable `rng`: a numpy\.random.*Generator.*never reused"):
        a = ltbench.Method.custom("noisy", noisy)
    with pytest.warns(UserWarning):
        b = ltbench.Method.custom("noisy", noisy)
    assert a.loss_id != b.loss_id


def smoothed(logits, labels, ctx, d, t=1.0):
    """Label smoothing δ = d on the logits divided by t, in numpy: the batch-mean loss and
    ∂/∂logits."""
    k = ctx["num_classes"]
    z = logits.astype(np.float64) / t
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    q = np.full_like(p, d / k)
    q[np.arange(len(labels)), labels] += 1 - d
    loss = -(q * np.log(p)).sum(axis=1).mean()
    return loss, ((p - q) / (len(labels) * t)).astype(np.float32)


def make_smoothing(d, gate=None):
    """A label-smoothing loss as a closure over δ (the first call waits at `gate`, if any)."""
    waited = []

    def loss(logits, labels, ctx):
        if gate is not None and not waited:
            waited.append(True)
            try:
                gate.wait(timeout=60)
            except threading.BrokenBarrierError:
                raise RuntimeError(f"δ = {d}: the other call's loss never ran (one loss for both?)") from None
        return smoothed(logits, labels, ctx, d)

    return loss


class Smoothing:
    """A label-smoothing loss as a callable object."""

    def __init__(self, d):
        self.d = d

    def __call__(self, logits, labels, ctx):
        return smoothed(logits, labels, ctx, self.d)


FAST = dict(seeds=1, epochs=2, plots=False)


def records(out: Path) -> int:
    return len((out / "records.jsonl").read_text().splitlines())


def numbers(res) -> list:
    t = res.table
    assert t.height == 1
    return [t[c][0] for c in ("all", "many", "medium", "few")]


def test_each_variant_of_a_parametrised_custom_loss_gets_its_own_records(tmp_path):
    """Issue 32 part 4: closures from a factory, partials, lambdas in a loop and callable
    objects share their source; each variant runs into one folder under one name, and must
    neither reuse another variant's records nor miss its own."""
    bank = ltbench.Bank.open(BANK)
    shared = tmp_path / "shared"
    fresh = iter(range(100))

    def run(name, fn, out=None):
        out = out or tmp_path / f"fresh{next(fresh)}"
        return numbers(ltbench.run(bank, methods=[ltbench.Method.custom(name, fn)], out=out, **FAST))

    def check(name, a, b, a_again):
        got_a = run(name, a, shared)
        n = records(shared)
        got_b = run(name, b, shared)
        assert records(shared) == n + 1, f"{name}: the second variant reused the first's records"
        assert got_b != got_a, name
        assert got_b == run(name, b), f"{name}: the second variant's numbers are not a fresh run's"
        assert run(name, a_again, shared) == got_a and records(shared) == n + 1, (
            f"{name}: the same variant, made again, was not reused"
        )

    check("closure", make_smoothing(0.5), make_smoothing(0.9), make_smoothing(0.5))
    check(
        "partial",
        functools.partial(smoothed, d=0.5, t=1.0),
        functools.partial(smoothed, d=0.5, t=2.0),
        functools.partial(smoothed, d=0.5, t=1.0),
    )
    defaults = [lambda z, y, c, d=d: smoothed(z, y, c, d) for d in (0.5, 0.9, 0.5)]
    check("lambda-default", *defaults)
    check("object", Smoothing(0.5), Smoothing(0.9), Smoothing(0.5))
    # a lambda in a loop that reads the loop variable through its closure, run in the loop:
    # each iteration computes with that iteration's δ
    got = {}
    for d in (0.5, 0.9):
        got[d] = run("lambda-closure", lambda z, y, c: smoothed(z, y, c, d), shared)
    assert got[0.5] != got[0.9] and records(shared) == 4 * 2 + 2
    assert got[0.9] == run("lambda-closure", make_smoothing(0.9))
    # made in the loop and run after it, every such lambda computes with the last δ: the key
    # is taken when the run starts, so they all reuse the δ = 0.9 records
    late = []
    for d in (0.5, 0.9):
        late.append(ltbench.Method.custom("lambda-closure", lambda z, y, c: smoothed(z, y, c, d)))
    assert numbers(ltbench.run(bank, methods=[late[0]], out=shared, **FAST)) == got[0.9]
    assert records(shared) == 4 * 2 + 2


def test_two_threads_running_two_closures_each_get_their_own_numbers(tmp_path):
    """Two calls at the same time, each with its own closure from one factory (one source),
    under different names: each gets the numbers of a lone run of its own loss."""
    bank = ltbench.Bank.open(BANK)
    kw = dict(FAST, seeds=2, jobs=1)
    alone = {
        d: ltbench.run(bank, methods=[ltbench.Method.custom(f"d{d}", make_smoothing(d))],
                       out=tmp_path / f"alone{d}", **kw).table
        for d in (0.5, 0.9)
    }
    assert alone[0.5]["all"][0] != alone[0.9]["all"][0]
    # both runs are inside their first step before either goes on
    gate = threading.Barrier(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a loss holding a Barrier is never reused
        made = {d: ltbench.Method.custom(f"d{d}", make_smoothing(d, gate)) for d in (0.5, 0.9)}
    got, errors = {}, []

    def go(d):
        try:
            got[d] = ltbench.run(bank, methods=[made[d]], out=tmp_path / f"thread{d}", **kw).table
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            gate.abort()

    threads = [threading.Thread(target=go, args=(d,)) for d in (0.5, 0.9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for d in (0.5, 0.9):
        for c in ("all", "many", "medium", "few", "nll"):
            if c in alone[d].columns:
                assert got[d][c].to_list() == alone[d][c].to_list(), (d, c)


def test_a_failing_custom_loss_stops_only_its_own_call(tmp_path):
    """Two calls at the same time: one whose custom loss raises after a few steps, one a
    normal row. The first raises ValueError naming its loss; the second, whose cancellation
    token is its own, returns exactly the table of a lone run."""
    bank = ltbench.Bank.open(BANK)
    kw = dict(FAST, seeds=2, jobs=1)

    def smoothing_after(started, raised):
        """LOS; its first step says it started and waits until the other call raised."""

        def gate(logits, labels, ctx):
            started.set()
            raised.wait(timeout=60)
            return smoothed(logits, labels, ctx, 0.98)

        return gate

    def run_normal(started, raised, out):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a loss holding an Event is never reused
            row = ltbench.Method.custom("gate", smoothing_after(started, raised))
        return ltbench.run(bank, methods=[row], out=out, **kw).table

    done = threading.Event()
    done.set()
    alone = run_normal(done, done, tmp_path / "alone")

    # the failing call raises only once the normal call is training, and the normal call
    # goes on only once the failing call has raised
    started, raised = threading.Event(), threading.Event()

    def failing(logits, labels, ctx):
        if ctx["step"] >= 3:
            started.wait(timeout=60)
            raise RuntimeError("boom at step 3")
        return smoothed(logits, labels, ctx, 0.98)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a loss holding an Event is never reused
        bad = ltbench.Method.custom("failing", failing)
    got, errors = {}, {}

    def go_failing():
        try:
            got["failing"] = ltbench.run(bank, methods=[bad], out=tmp_path / "f", **kw).table
        except BaseException as e:  # noqa: BLE001 (checked below)
            errors["failing"] = e
        finally:
            raised.set()

    def go_normal():
        try:
            got["normal"] = run_normal(started, raised, tmp_path / "n")
        except BaseException as e:  # noqa: BLE001 (checked below)
            errors["normal"] = e
        finally:
            started.set()

    threads = [threading.Thread(target=go_failing), threading.Thread(target=go_normal)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(errors) == {"failing"}, errors
    assert isinstance(errors["failing"], ValueError), errors
    assert "custom loss `failing`" in str(errors["failing"]), errors
    assert "boom at step 3" in str(errors["failing"]), errors
    assert got["normal"].columns == alone.columns
    for c in alone.columns:
        assert got["normal"][c].to_list() == alone[c].to_list(), c


def test_a_python_results_folder_names_its_call_and_its_command_remakes_its_table(tmp_path):
    out = tmp_path / "py"
    ltbench.run(str(BANK), methods=["vanilla-fc", "los"], seeds=1, out=out, epochs=3, plots=False)
    readme = (out / "README.md").read_text()
    config = json.loads((out / "config.json").read_text())
    prov = config["provenance"]
    assert prov["face"] == "python"
    want_call = (
        f"ltbench.run({str(BANK)!r}, methods=['vanilla-fc', 'los'], seeds=1, out={str(out)!r}, "
        "epochs=3, plots=False)"
    )
    assert prov["call"] == want_call
    assert want_call in readme
    # the interpreter's own arguments (pytest's) are nowhere
    # (what `retrain <argv>` read from the process made: the interpreter's arguments)
    for a in (sys.executable, sys.argv[0], shlex.join(sys.argv[1:]) or sys.argv[0]):
        assert a not in readme and a not in json.dumps(prov), a
    assert readme.count("```sh\n") == 1 and f"```python\n{want_call}\n```" in readme
    command = prov["command"]
    assert command.startswith("retrain ") and f"```sh\n{command}\n```" in readme
    # the equivalent command, run into another folder, remakes table1.csv byte for byte
    argv = shlex.split(command)
    argv[0] = retrain_bin()
    other = tmp_path / "cli"
    argv[argv.index("--out") + 1] = str(other)
    subprocess.run(argv + ["-q"], check=True, capture_output=True)
    assert (other / "table1.csv").read_bytes() == (out / "table1.csv").read_bytes()
    # a custom row has no equivalent command: it is named by its loss key
    res = ltbench.run(BANK, methods=[ltbench.Method.custom("mine", numpy_los)], seeds=1,
                      epochs=1, plots=False)
    prov = json.loads((res.folder / "config.json").read_text())["provenance"]
    assert prov["command"] is None and "loss key" in prov["no_command"], prov
    assert "Method.custom('mine', <loss key " in prov["call"]
    assert "No equivalent `retrain` command" in (res.folder / "README.md").read_text()
