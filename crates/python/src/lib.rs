//! `ltbench._ltbench`: the Rust half of the Python package. A thin face over the retrain
//! library, as the CLI is: banks (opened, or built from arrays the bank reader's checks
//! validate), the method table, a run (the CLI's own plan → jobs → records → tables, fed by
//! an argument vector, banks in memory and extra rows), `compare`, and custom losses (Python
//! callbacks the engine calls with each batch's logits). The pure-Python half
//! (`python/ltbench/`) gives them their typed API.

use bank::{Bank, BankError, ExternalF32, Features, Head, Meta, Split};
use clap::Parser;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use retrain::command::cli::{Cli, Command};
use retrain::engine::cancel::Cancel;
use retrain::method::MethodSpec;
use retrain::method::custom::{Ctx, CustomFn, CustomLoss};
use retrain::method::table::MethodTable;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The cancel reason of an interrupt (Ctrl-C in Python).
const INTERRUPTED: &str = "interrupted (KeyboardInterrupt)";

/// A bank error as Python sees it: files → `OSError` subclasses, contents → `ValueError`.
fn bank_err(e: BankError) -> PyErr {
    let msg = e.to_string();
    match e {
        BankError::MissingSplit { .. } => PyFileNotFoundError::new_err(msg),
        BankError::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        BankError::Io { .. } | BankError::Write { .. } => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A run's error: an I/O failure → `OSError`, anything else (a bad flag, row or value) →
/// `ValueError`, in one line.
fn run_err(e: anyhow::Error) -> PyErr {
    let msg = format!("{e:#}").replace('\n', " ");
    if let Some(b) = e.downcast_ref::<BankError>() {
        if matches!(b, BankError::Io { .. } | BankError::Write { .. }) {
            return PyOSError::new_err(msg);
        }
    }
    if e.chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some())
    {
        return PyOSError::new_err(msg);
    }
    PyValueError::new_err(msg)
}

/// A validated bank, in memory.
#[pyclass(name = "BankHandle", module = "ltbench._ltbench", frozen)]
struct PyBank {
    bank: Bank,
}

#[pymethods]
impl PyBank {
    #[getter]
    fn name(&self) -> String {
        self.bank.name()
    }
    #[getter]
    fn num_classes(&self) -> usize {
        self.bank.num_classes
    }
    #[getter]
    fn dim(&self) -> usize {
        self.bank.dim
    }
    #[getter]
    fn train_rows(&self) -> usize {
        self.bank.train.rows
    }
    #[getter]
    fn test_rows(&self) -> usize {
        self.bank.test.rows
    }
    #[getter]
    fn val_rows(&self) -> Option<usize> {
        self.bank.val.as_ref().map(|v| v.rows)
    }
    #[getter]
    fn has_head(&self) -> bool {
        self.bank.head.is_some()
    }
    #[getter]
    fn train_counts(&self) -> Vec<usize> {
        self.bank.train_counts.clone()
    }
    /// The content fingerprint (every feature, label and head value) records are keyed by.
    fn fingerprint(&self) -> String {
        self.bank.fingerprint()
    }
}

/// `Bank::open`: read and validate a bank folder.
#[pyfunction]
fn open_bank(py: Python<'_>, path: PathBuf) -> PyResult<PyBank> {
    let bank = py.detach(|| Bank::open(&path)).map_err(bank_err)?;
    // every run gets a clone: share the features so that it copies none
    Ok(PyBank {
        bank: bank.into_shared(),
    })
}

/// A numpy f32 matrix the bank borrows in place: the array is kept alive by `_owner`.
struct NumpyF32 {
    _owner: Py<PyArray2<f32>>,
    ptr: *const f32,
    len: usize,
}

// SAFETY: the data pointer belongs to `_owner`, whose reference keeps the array (and its
// buffer) alive for as long as this value lives; the bank only reads it. The Python side
// makes the array read-only (`setflags(write=False)`) before handing it over.
unsafe impl Send for NumpyF32 {}
unsafe impl Sync for NumpyF32 {}

impl ExternalF32 for NumpyF32 {
    fn as_f32(&self) -> &[f32] {
        // SAFETY: see the `Send` impl; ptr/len describe the C-contiguous buffer.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The borrowed features of a C-contiguous f32 array [N, D], and D.
fn borrow(x: &Bound<'_, PyArray2<f32>>, what: &str) -> PyResult<(Features, usize)> {
    if !x.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{what}: not C-contiguous (np.ascontiguousarray first)"
        )));
    }
    let dim = x.shape()[1];
    let len = x.len();
    let ext = NumpyF32 {
        _owner: x.clone().unbind(),
        ptr: x.data() as *const f32,
        len,
    };
    Ok((Features::External(Arc::new(ext)), dim))
}

/// One split from arrays: `x` f32 [N, D], `flip` f32 [N, D] or None, `y` int64 [N].
fn split_of(
    dir: &Path,
    file: &str,
    x: &Bound<'_, PyArray2<f32>>,
    flip: Option<&Bound<'_, PyArray2<f32>>>,
    y: &Bound<'_, PyArray1<i64>>,
) -> PyResult<Split> {
    let path = dir.join(file);
    let (features, dim) = borrow(x, &path.display().to_string())?;
    let flip = match flip {
        Some(f) => Some(borrow(f, &path.display().to_string())?.0),
        None => None,
    };
    let labels = y.readonly().as_slice()?.to_vec();
    Split::from_values(&path, dim, features, flip, &labels).map_err(bank_err)
}

type SplitArrays<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<i64>>,
    Option<Bound<'py, PyArray2<f32>>>,
);

/// `Bank.from_arrays`: a bank from arrays, with every check of the bank reader. The name
/// stands for the folder in messages (`<name>/train.safetensors: ...`).
#[pyfunction]
#[pyo3(signature = (name, train, test, val=None, head=None, meta_json=None))]
fn bank_from_arrays(
    name: String,
    train: SplitArrays<'_>,
    test: SplitArrays<'_>,
    val: Option<SplitArrays<'_>>,
    head: Option<(Bound<'_, PyArray2<f32>>, Bound<'_, PyArray1<f32>>)>,
    meta_json: Option<String>,
) -> PyResult<PyBank> {
    let dir = PathBuf::from(&name);
    let split = |file: &str, s: &SplitArrays<'_>| split_of(&dir, file, &s.0, s.2.as_ref(), &s.1);
    let train = split("train.safetensors", &train)?;
    let test = split("test.safetensors", &test)?;
    let val = match &val {
        Some(v) => Some(split("val.safetensors", v)?),
        None => None,
    };
    let head = match head {
        Some((w, b)) => {
            let (k, d) = (w.shape()[0], w.shape()[1]);
            Some(Head {
                num_classes: k,
                dim: d,
                weight: w.readonly().as_slice()?.to_vec(),
                bias: b.readonly().as_slice()?.to_vec(),
            })
        }
        None => None,
    };
    let mut meta: Meta = match meta_json {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            PyValueError::new_err(format!("{}: {e}", dir.join("meta.json").display()))
        })?,
        None => Meta::default(),
    };
    meta.dataset.get_or_insert(name);
    let bank = Bank::from_parts(&dir, train, val, test, head, meta).map_err(bank_err)?;
    Ok(PyBank {
        bank: bank.into_shared(),
    })
}

/// The rows of the embedded method table (Table 1, then the zoo) as JSON: each row's spec
/// with its `group`.
#[pyfunction]
fn methods_json() -> String {
    let t = MethodTable::embedded();
    let rows: Vec<serde_json::Value> = t
        .methods
        .iter()
        .zip(&t.groups)
        .map(|(m, g)| {
            let mut v = serde_json::to_value(m).expect("a row serialises");
            v["group"] = serde_json::Value::String(g.clone());
            v
        })
        .collect();
    serde_json::to_string(&rows).expect("rows serialise")
}

/// A row as JSON from a TOML row (`name = ...`, or one `[[method]]` table), checked.
#[pyfunction]
fn row_from_toml(text: &str) -> PyResult<String> {
    let doc = if text.contains("[[method]]") {
        text.to_string()
    } else {
        format!("[[method]]\n{text}")
    };
    let t = MethodTable::parse(&doc, "Method.from_toml").map_err(run_err)?;
    match t.methods.as_slice() {
        [one] => {
            one.check(&retrain::method::los_defaults())
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            Ok(serde_json::to_string(one).expect("a row serialises"))
        }
        rows => Err(PyValueError::new_err(format!(
            "Method.from_toml: one row expected, got {}",
            rows.len()
        ))),
    }
}

/// A row (JSON) with numeric constants changed (`eps_head`, `loss.smoothing`, `lr`, …, as
/// `--sweep` names them), checked; returned as JSON.
#[pyfunction]
fn row_with(row_json: &str, changes: Vec<(String, f64)>) -> PyResult<String> {
    let spec: MethodSpec = serde_json::from_str(row_json)
        .map_err(|e| PyValueError::new_err(format!("method row: {e}")))?;
    let err = |e: retrain::method::MethodError| PyValueError::new_err(e.to_string());
    let mut m = spec.check(&retrain::method::los_defaults()).map_err(err)?;
    for (name, value) in changes {
        m = retrain::method::params::with_param(&m, &name, value).map_err(err)?;
    }
    let mut out = m.respec();
    out.recipe = spec.recipe;
    Ok(serde_json::to_string(&out).expect("a row serialises"))
}

/// A Python loss function the engine calls with every batch.
struct PyLoss {
    name: String,
    f: Py<PyAny>,
}

impl std::fmt::Debug for PyLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyLoss({})", self.name)
    }
}

impl CustomLoss for PyLoss {
    fn loss_and_grad(
        &self,
        z: &[f32],
        y: &[u32],
        ctx: &Ctx,
        grad: &mut [f32],
    ) -> Result<f64, String> {
        let (b, k) = (y.len(), ctx.num_classes);
        Python::attach(|py| -> PyResult<f64> {
            let logits = PyArray1::from_slice(py, z).reshape([b, k])?;
            let labels: Vec<i64> = y.iter().map(|&v| v as i64).collect();
            let labels = PyArray1::from_vec(py, labels);
            let c = PyDict::new(py);
            c.set_item("class_counts", ctx.class_counts.clone())?;
            c.set_item("num_classes", ctx.num_classes)?;
            c.set_item("epoch", ctx.epoch)?;
            c.set_item("epochs", ctx.epochs)?;
            c.set_item("step", ctx.step)?;
            c.set_item("seed", ctx.seed)?;
            let out = self.f.call1(py, (logits, labels, c))?;
            let (loss, g): (f64, Bound<'_, PyAny>) = out.extract(py).map_err(|_| {
                PyValueError::new_err("must return (loss: float, grad: float32 array [B, K])")
            })?;
            let g = g.cast_into::<PyArray2<f32>>().map_err(|_| {
                PyValueError::new_err("grad must be a float32 numpy array of shape [B, K]")
            })?;
            if g.shape() != [b, k] {
                return Err(PyValueError::new_err(format!(
                    "grad has shape {:?}, expected [{b}, {k}]",
                    g.shape()
                )));
            }
            let ro = g.readonly();
            let src = ro.as_slice().map_err(|_| {
                PyValueError::new_err("grad must be C-contiguous (np.ascontiguousarray)")
            })?;
            grad.copy_from_slice(src);
            if !loss.is_finite() || src.iter().any(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "loss or grad is not finite (loss {loss}) at epoch {}, step {}",
                    ctx.epoch, ctx.step
                )));
            }
            Ok(loss)
        })
        .map_err(|e| format!("custom loss `{}`: {e}", self.name))
    }
}

/// The run of `argv` (the CLI's arguments: `retrain --method ... --out ...`) on `banks`,
/// with `rows_json` (a JSON list of extra rows) and `losses` ((row name, callable) of the
/// custom rows: this call's own, carried by its rows' jobs). The GIL is released while Rust
/// trains; Ctrl-C stops the run (the finished runs stay in the records) and raises
/// KeyboardInterrupt. `provenance_json`: how the results folder was made, as the Python face
/// says it (`{"face": "python", "call": "ltbench.run(...)", "command": "retrain ..." | null,
/// "no_command": why}`), for its README, `index.md` and `config.json`. Returns the text the CLI
/// prints on stdout (the tables); nothing is written to stdout.
#[pyfunction]
#[pyo3(signature = (argv, banks, rows_json=None, losses=Vec::new(), provenance_json=None))]
fn run(
    py: Python<'_>,
    argv: Vec<String>,
    banks: Vec<PyRef<'_, PyBank>>,
    rows_json: Option<String>,
    losses: Vec<(String, Py<PyAny>)>,
    provenance_json: Option<String>,
) -> PyResult<String> {
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        PyValueError::new_err(e.to_string().lines().next().unwrap_or("").to_string())
    })?;
    let mut args = cli.run;
    args.embedded = true;
    args.provenance = match provenance_json {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("provenance: {e}")))?,
        // a caller that says nothing: the arguments it passed, never the interpreter's
        None => retrain::output::notebook::Provenance::Python {
            call: "ltbench._ltbench.run(...)".into(),
            command: None,
            no_command: Some("the caller gave no provenance".into()),
        },
    };
    args.preloaded = banks.iter().map(|b| b.bank.clone()).collect();
    if let Some(text) = rows_json {
        args.extra_rows = serde_json::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("method rows: {e}")))?;
    }
    args.custom_losses = losses
        .into_iter()
        .map(|(name, f)| (name.clone(), CustomFn(Arc::new(PyLoss { name, f }))))
        .collect();
    // this call's own token: an interrupt here, or a custom loss of this call that raises,
    // stops this run only (another call running in the process keeps its own)
    let cancel = Cancel::new();
    args.cancel = cancel.clone();
    // the arguments come back with the result: their Python functions are let go here,
    // with the GIL held
    let worker = std::thread::spawn(move || (retrain::command::run::run(&args), args));
    let mut interrupt: Option<PyErr> = None;
    while !worker.is_finished() {
        py.detach(|| std::thread::sleep(Duration::from_millis(20)));
        if interrupt.is_none() {
            if let Err(e) = py.check_signals() {
                cancel.cancel(INTERRUPTED);
                interrupt = Some(e);
            }
        }
    }
    let result = worker.join().map(|(result, _args)| result);
    let reason = cancel.reason();
    if let Some(e) = interrupt {
        return Err(e);
    }
    match result {
        Err(_) => Err(PyRuntimeError::new_err(
            "ltbench: the run panicked (a bug: please report it)",
        )),
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => match reason {
            Some(r) if r == INTERRUPTED => Err(PyKeyboardInterrupt::new_err(r)),
            Some(r) => Err(PyValueError::new_err(r)),
            None => Err(run_err(e)),
        },
    }
}

/// `retrain compare A B [--baseline M] ...` (argv as the CLI's); returns the text the CLI
/// prints on stdout, printing nothing.
#[pyfunction]
fn compare(py: Python<'_>, argv: Vec<String>) -> PyResult<String> {
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        PyValueError::new_err(e.to_string().lines().next().unwrap_or("").to_string())
    })?;
    match cli.command {
        Some(Command::Compare(args)) => py
            .detach(|| retrain::command::compare::run(&args))
            .map_err(run_err),
        _ => Err(PyValueError::new_err("compare: not a compare command")),
    }
}

#[pymodule]
fn _ltbench(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBank>()?;
    m.add_function(wrap_pyfunction!(open_bank, m)?)?;
    m.add_function(wrap_pyfunction!(bank_from_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(methods_json, m)?)?;
    m.add_function(wrap_pyfunction!(row_from_toml, m)?)?;
    m.add_function(wrap_pyfunction!(row_with, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    Ok(())
}
