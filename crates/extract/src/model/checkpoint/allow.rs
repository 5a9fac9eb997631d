//! The names a checkpoint's pickle may use, and what they mean: the default allow-list of
//! torch's `weights_only` unpickler (`torch/_weights_only_unpickler.py:156-232`), checked on
//! every global a pickle names ([`check_globals`]; nothing is ever called, so this refuses
//! what torch would refuse and says where), and the element types of storage classes and
//! dtypes.

use crate::source::datasets::pickle::{Parsed, Py};

/// Element type of a storage or tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dt {
    F32,
    F64,
    F16,
    BF16,
    /// Integer, bool, complex and quantised types: read past, never loaded. (size, name)
    Other(usize, &'static str),
}

impl Dt {
    pub(super) fn size(self) -> usize {
        match self {
            Dt::F32 => 4,
            Dt::F64 => 8,
            Dt::F16 | Dt::BF16 => 2,
            Dt::Other(s, _) => s,
        }
    }
    pub(super) fn is_float(self) -> bool {
        !matches!(self, Dt::Other(..))
    }
}

/// The element type of `torch.<name>` storage classes (`torch/storage.py`'s
/// `_dtype_to_storage_type_map`, plus the untyped byte storage).
pub(super) fn storage_dtype(name: &str) -> Option<Dt> {
    Some(match name {
        "FloatStorage" => Dt::F32,
        "DoubleStorage" => Dt::F64,
        "HalfStorage" => Dt::F16,
        "BFloat16Storage" => Dt::BF16,
        "LongStorage" => Dt::Other(8, "int64"),
        "IntStorage" => Dt::Other(4, "int32"),
        "ShortStorage" => Dt::Other(2, "int16"),
        "CharStorage" => Dt::Other(1, "int8"),
        "ByteStorage" => Dt::Other(1, "uint8"),
        "BoolStorage" => Dt::Other(1, "bool"),
        "ComplexFloatStorage" => Dt::Other(8, "complex64"),
        "ComplexDoubleStorage" => Dt::Other(16, "complex128"),
        "QUInt8Storage" => Dt::Other(1, "quint8"),
        "QInt8Storage" => Dt::Other(1, "qint8"),
        "QInt32Storage" => Dt::Other(4, "qint32"),
        "QUInt4x2Storage" => Dt::Other(1, "quint4x2"),
        "QUInt2x4Storage" => Dt::Other(1, "quint2x4"),
        "UntypedStorage" | "TypedStorage" => Dt::Other(1, "uint8"),
        _ => return None,
    })
}

/// Whether `name` is one of torch's typed storage classes (`FloatStorage`, ..., `QUInt2x4Storage`).
fn is_typed_storage(name: &str) -> bool {
    storage_dtype(name).is_some() && !matches!(name, "UntypedStorage" | "TypedStorage")
}

/// The element type of a `torch.<dtype>` global (`_rebuild_tensor_v3`'s dtype argument).
pub(super) fn dtype_global(name: &str) -> Dt {
    match name {
        "float32" | "float" => Dt::F32,
        "float64" | "double" => Dt::F64,
        "float16" | "half" => Dt::F16,
        "bfloat16" => Dt::BF16,
        "uint16" | "int16" => Dt::Other(2, "int16"),
        "uint32" | "int32" => Dt::Other(4, "int32"),
        "uint64" | "int64" => Dt::Other(8, "int64"),
        _ => Dt::Other(1, "other"),
    }
}

const TENSOR_TYPES: [&str; 9] = [
    "BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long",
];
const DTYPES: [&str; 52] = [
    "bcomplex32",
    "bfloat16",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bool",
    "complex128",
    "complex32",
    "complex64",
    "float16",
    "float32",
    "float4_e2m1fn_x2",
    "float64",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "int1",
    "int16",
    "int2",
    "int3",
    "int32",
    "int4",
    "int5",
    "int6",
    "int64",
    "int7",
    "int8",
    "qint32",
    "qint8",
    "quint2x4",
    "quint4x2",
    "quint8",
    "uint1",
    "uint16",
    "uint2",
    "uint3",
    "uint32",
    "uint4",
    "uint5",
    "uint6",
    "uint64",
    "uint7",
    "uint8",
    // quantisation schemes
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_channel_symmetric",
    "per_tensor_symmetric",
    "per_tensor_affine",
];

/// The rebuild functions of `torch._utils` that torch's `weights_only` unpickler allows
/// (`torch/_weights_only_unpickler.py:156-175`).
pub(super) const REBUILDS: [&str; 11] = [
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_numpy",
    "_rebuild_device_tensor_from_cpu_tensor",
];

/// `module.name` as torch's `weights_only` unpickler looks it up: Python 2 module names mapped
/// as in `torch/_utils.py:1122-1140` (`__builtin__` → `builtins`, `copy_reg` → `copyreg`).
pub(super) fn global_name(module: &str, name: &str) -> String {
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    format!("{module}.{name}")
}

/// Whether `module.name` is on torch's default `weights_only` allow-list
/// (`torch/_weights_only_unpickler.py:179-232`; `builtins.frozenset` added, a container like
/// `builtins.set`).
pub(super) fn allowed(module: &str, name: &str) -> bool {
    let full = global_name(module, name);
    let (module, name) = full.split_at(full.len() - name.len() - 1);
    let name = &name[1..];
    match module {
        "collections" => matches!(name, "OrderedDict" | "Counter"),
        "builtins" => matches!(name, "bytearray" | "set" | "frozenset" | "complex"),
        "_codecs" => name == "encode",
        "torch.nn.parameter" => name == "Parameter",
        "torch.serialization" => name == "_get_layout",
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch._utils" => REBUILDS.contains(&name),
        "torch.storage" => matches!(name, "TypedStorage" | "UntypedStorage"),
        "torch" | "torch.cuda" => {
            (is_typed_storage(name) && (module == "torch" || !name.starts_with('Q')))
                || name
                    .strip_suffix("Tensor")
                    .is_some_and(|t| TENSOR_TYPES.contains(&t))
                || (module == "torch"
                    && (matches!(name, "Size" | "Tensor" | "device") || DTYPES.contains(&name)))
        }
        "torch.sparse" | "torch.cuda.sparse" => name
            .strip_suffix("Tensor")
            .is_some_and(|t| TENSOR_TYPES.contains(&t) && t != "Bool"),
        _ => false,
    }
}

/// A key as text for messages and state-dict names (`str`, Python 2 `bytes`, or an int).
pub(super) fn key_text(k: &Py) -> Option<String> {
    match k {
        Py::Int(i) => Some(i.to_string()),
        k => k.as_key().map(str::to_owned),
    }
}

/// Where a value sits: its dict keys from the top, `a/b/c`.
pub(super) fn place(path: &[String]) -> String {
    if path.is_empty() {
        "the top level".into()
    } else {
        format!("`{}`", path.join("/"))
    }
}

/// The first global of `p` not on the allow-list, with where it sits.
fn disallowed_global(p: &Py, path: &mut Vec<String>) -> Option<(String, String)> {
    match p {
        Py::Global(m, n) if !allowed(m, n) => Some((global_name(m, n), place(path))),
        Py::List(v) | Py::Tuple(v) => v.iter().find_map(|x| disallowed_global(x, path)),
        Py::Persistent(x) => disallowed_global(x, path),
        Py::Object {
            callable,
            args,
            state,
        } => [Some(&**callable), Some(&**args), state.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|x| disallowed_global(x, path)),
        Py::Dict(kv) => kv.iter().find_map(|(k, v)| {
            disallowed_global(k, path).or_else(|| {
                path.push(key_text(k).unwrap_or_else(|| "?".into()));
                let found = disallowed_global(v, path);
                path.pop();
                found
            })
        }),
        _ => None,
    }
}

/// Refuse a pickle that names a global outside the allow-list: one line with the global and
/// the key it sits under (or "outside the loaded object" for one the pickle left on its stack).
pub(super) fn check_globals(parsed: &Parsed) -> Result<(), String> {
    let found = disallowed_global(&parsed.value, &mut Vec::new()).or_else(|| {
        parsed
            .globals
            .iter()
            .find(|(m, n)| !allowed(m, n))
            .map(|(m, n)| (global_name(m, n), "outside the loaded object".into()))
    });
    match found {
        None => Ok(()),
        Some((g, at)) => Err(format!(
            "global `{g}` (at {at}) is not one a checkpoint may name: only the globals of torch's weights_only unpickler load (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage, torch dtypes, ...); save `model.state_dict()`, not the model or other objects"
        )),
    }
}
