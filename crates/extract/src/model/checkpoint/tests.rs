use super::allow::{self, Dt};
use super::tensors::{self, Storage, TensorRef};
use super::write::{Legacy, V, legacy};
use super::*;
use crate::source::datasets::pickle::{Py, parse_at};

fn s(x: &str) -> Py {
    Py::Str(x.into())
}

fn g(m: &str, n: &str) -> Py {
    Py::Global(m.into(), n.into())
}

fn call(callable: Py, args: Vec<Py>) -> Py {
    Py::Object {
        callable: Box::new(callable),
        args: Box::new(Py::Tuple(args)),
        state: None,
    }
}

/// torch._utils._rebuild_tensor_v2(persistent_load(('storage', FloatStorage, key, 'cpu', n)),
/// 0, (n,), (1,), False, OrderedDict())
fn tensor_obj(storage: &str, n: i64) -> Py {
    let pid = Py::Tuple(vec![
        s("storage"),
        g("torch", "FloatStorage"),
        s(storage),
        s("cpu"),
        Py::Int(n),
    ]);
    call(
        g("torch._utils", "_rebuild_tensor_v2"),
        vec![
            Py::Persistent(Box::new(pid)),
            Py::Int(0),
            Py::Tuple(vec![Py::Int(n)]),
            Py::Tuple(vec![Py::Int(1)]),
            Py::Bool(false),
            Py::Dict(vec![]),
        ],
    )
}

fn dict(items: Vec<(&str, Py)>) -> Py {
    Py::Dict(items.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoints")
        .join(name);
    std::fs::read(p).unwrap()
}

/// The error line of `tensors_from_bytes` on `data`, named `bad.pth`.
fn err(data: &[u8]) -> String {
    let e = match tensors_from_bytes(Path::new("bad.pth"), data) {
        Ok(t) => panic!("loaded {} tensors", t.len()),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("bad.pth: ") && !e.contains('\n'), "{e}");
    e
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = data
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern");
    [&data[..at], to, &data[at + from.len()..]].concat()
}

#[test]
fn decoupling_state_dict_best_merges_feat_model_and_classifier() {
    let ckpt = dict(vec![
        ("epoch", Py::Int(90)),
        (
            "state_dict_best",
            dict(vec![
                (
                    "feat_model",
                    dict(vec![("module.conv1.weight", tensor_obj("0", 4))]),
                ),
                (
                    "classifier",
                    dict(vec![
                        ("module.fc.weight", tensor_obj("1", 2)),
                        ("module.fc.bias", tensor_obj("2", 2)),
                    ]),
                ),
            ]),
        ),
        ("best_acc", tensor_obj("3", 1)),
    ]);
    let root = tensors::state_dict(&ckpt).unwrap();
    let mut found = Vec::new();
    tensors::collect(root, &mut found).unwrap();
    let mut names: Vec<String> = found.iter().map(|(k, _)| strip(k).to_owned()).collect();
    names.sort();
    assert_eq!(names, vec!["conv1.weight", "fc.bias", "fc.weight"]);
}

#[test]
fn a_plain_state_dict_is_its_own_root() {
    let sd = dict(vec![("conv1.weight", tensor_obj("0", 4))]);
    assert!(tensors::state_dict(&sd).is_some());
    assert!(tensors::state_dict(&dict(vec![("epoch", Py::Int(1))])).is_none());
}

#[test]
fn prefixes_are_stripped_repeatedly() {
    assert_eq!(strip("module.encoder.conv1.weight"), "conv1.weight");
    assert_eq!(strip("encoder.fc.bias"), "fc.bias");
    assert_eq!(strip("layer1.0.conv1.weight"), "layer1.0.conv1.weight");
}

#[test]
fn a_missing_file_is_named() {
    let err = load_state_dict(Path::new("/nonexistent/ckpt.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/ckpt.pth"), "{err}");
}

#[test]
fn neither_format_says_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.pth");
    std::fs::write(&p, b"\x80\x02legacy pickle").unwrap();
    let err = load_state_dict(&p).unwrap_err().to_string();
    for want in [
        "old.pth",
        "expected a zip-format",
        "legacy torch.save",
        "0x1950a86a20f9469cfc6c",
        "safetensors",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn the_format_is_told_by_content_not_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    for (src, name, format) in [
        ("tiny.legacy.pth", "a.safetensors", Format::Legacy),
        ("tiny.zip.pth", "b.tar", Format::Zip),
    ] {
        let data = fixture(src);
        assert_eq!(format_of(&data), Some(format));
        let p = dir.path().join(name);
        std::fs::write(&p, &data).unwrap();
        assert_eq!(load_state_dict(&p).unwrap().len(), 17, "{name}");
    }
    let st = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/backbones/resnet34_cifar.safetensors"),
    )
    .unwrap();
    assert_eq!(format_of(&st), Some(Format::Safetensors));
    assert_eq!(format_of(b"PK\x05\x06"), None);
}

/// Where the legacy fixture's storages start (after its five pickles).
fn storages_start(data: &[u8]) -> usize {
    (0..5).fold(0, |at, _| parse_at(data, at).unwrap().end)
}

#[test]
fn a_truncated_legacy_file_is_an_error_naming_the_tensor() {
    let data = fixture("tiny.legacy.pth");
    let start = storages_start(&data);
    for cut in 0..data.len() {
        let e = err(&data[..cut]);
        if cut >= start {
            assert!(
                e.contains("tensor at `") && e.contains("a truncated file?"),
                "cut {cut}: {e}"
            );
        }
    }
    // the last storage, cut by one byte
    let e = err(&data[..data.len() - 1]);
    assert!(
        e.contains(&format!("the file ends at byte {}", data.len() - 1)),
        "{e}"
    );
}

#[test]
fn a_tensor_past_the_end_of_its_storage_is_an_error_naming_it() {
    let data = fixture("tiny.legacy.pth");
    // shared.tail is base[6:]: storage offset 6 (BININT1 6 right after its BINPERSID), 4
    // elements of a storage of 10; at offset 7 its last element is the 11th
    let at = data.windows(11).position(|w| w == b"shared.tail").unwrap();
    let rest = replace(&data[at..], b"QK\x06", b"QK\x07");
    let bad = [&data[..at], &rest[..]].concat();
    let e = err(&bad);
    assert!(
        e.contains("tensor `shared.tail`")
            && e.contains("storage offset 7 + extent 4 runs past its storage")
            && e.contains("of 10 elements"),
        "{e}"
    );
}

#[test]
fn an_unknown_global_is_refused_naming_it_and_its_key() {
    // every tensor rebuilt by os.system instead (the first one met: conv.weight)
    let data = fixture("tiny.legacy.pth");
    let bad = replace(
        &data,
        b"ctorch._utils\n_rebuild_tensor_v2\n",
        b"cposix\nsystem\n",
    );
    let e = err(&bad);
    assert!(
        e.contains("global `posix.system` (at `state_dict/conv.weight`)"),
        "{e}"
    );
    // the zip format shares the check
    let zip = fixture("tiny.zip.pth");
    assert!(tensors_from_bytes(Path::new("z.pth"), &zip).is_ok());
    // a pickled model class
    let e = err(&legacy(&V::Dict(vec![
        ("epoch".into(), V::Int(3)),
        (
            "model".into(),
            V::Call("__main__".into(), "Net".into(), vec![]),
        ),
    ])));
    assert!(e.contains("global `__main__.Net` (at `model`)"), "{e}");
    assert!(e.contains("model.state_dict()"), "{e}");
    // Python 2 names are mapped as torch maps them: __builtin__.set is builtins.set
    assert!(allow::allowed("__builtin__", "set") && !allow::allowed("__builtin__", "eval"));
    // a global the pickle leaves on its stack, outside the object it returns
    let p = parse_at(b"\x80\x02cposix\nsystem\n}.", 0).unwrap();
    let e = allow::check_globals(&p).unwrap_err();
    assert!(
        e.contains("`posix.system` (at outside the loaded object)"),
        "{e}"
    );
}

#[test]
fn storages_must_be_listed_named_and_counted_as_their_tensors_say() {
    let sd = V::Dict(vec![
        (
            "a.weight".into(),
            V::F32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
        ),
        ("b.bias".into(), V::F32(vec![3], vec![5.0, 6.0, 7.0])),
    ]);
    let good = Legacy::new(&sd);
    let loaded = tensors_from_bytes(Path::new("ok.pth"), &good.bytes()).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[1].1.to_vec1::<f32>().unwrap(), vec![5.0, 6.0, 7.0]);
    // named but absent from the key list
    let mut l = Legacy::new(&sd);
    l.keys.retain(|k| k != "0");
    let e = err(&l.bytes());
    assert!(
        e.contains("tensor at `a.weight`: its storage `0` is not among the file's 1 storages"),
        "{e}"
    );
    // listed but named by no tensor
    let mut l = Legacy::new(&sd);
    l.keys.push("9".into());
    l.storages.push(("9".into(), 1, vec![0; 4]));
    assert!(err(&l.bytes()).contains("storage `9` is listed but no tensor names it"));
    // an element count that disagrees with the persistent id
    let mut l = Legacy::new(&sd);
    l.storages[1].1 = 4;
    let e = err(&l.bytes());
    assert!(
        e.contains("tensor at `b.bias`: storage `1` holds 4 elements"),
        "{e}"
    );
    // a count that would run past the end: refused before anything is allocated
    let mut l = Legacy::new(&sd);
    l.storages[1].1 = u64::MAX;
    assert!(err(&l.bytes()).contains("holds 18446744073709551615 elements"));
}

fn small_cnn(extra: &[(&str, Vec<usize>)]) -> V {
    let mut kv = Vec::new();
    let mut push = |k: String, shape: Vec<usize>| {
        let n = shape.iter().product();
        kv.push((k, V::F32(shape, vec![0.5; n])));
    };
    for (i, (cin, cout)) in [(1, 32), (32, 64), (64, 128)].into_iter().enumerate() {
        push(format!("conv{}.weight", i + 1), vec![cout, cin, 3, 3]);
        for p in ["weight", "bias", "running_mean", "running_var"] {
            push(format!("bn{}.{p}", i + 1), vec![cout]);
        }
    }
    for (k, s) in extra {
        push(k.to_string(), s.clone());
    }
    V::Dict(kv)
}

#[test]
fn legacy_state_dicts_are_checked_against_the_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, obj: &V, arch: Arch| {
        let p = dir.path().join(name);
        std::fs::write(&p, legacy(obj)).unwrap();
        build_checked(arch, load_state_dict(&p).unwrap(), &p, &Device::Cpu).map(|_| ())
    };
    load("ok.pth", &small_cnn(&[]), Arch::SmallCnn).unwrap();
    let e = load(
        "extra.pth",
        &small_cnn(&[("conv9.weight", vec![2])]),
        Arch::SmallCnn,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("extra.pth") && e.contains("unexpected keys: conv9.weight"),
        "{e}"
    );
    let e = load("other.pth", &small_cnn(&[]), Arch::Resnet32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("other.pth") && e.contains("resnet32") && e.contains("missing keys"),
        "{e}"
    );
}

fn storage(numel: u64, view: Option<(u64, u64)>) -> Storage {
    Storage {
        key: "k".into(),
        dtype: Dt::F32,
        numel,
        view,
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn strided_views_and_old_storage_views_are_gathered() {
    let bytes = f32_bytes(&(0..12).map(|i| i as f32).collect::<Vec<_>>());
    let mut budget = 1000;
    let t = |view, offset, shape: &[u64], stride: &[u64]| TensorRef {
        storage: storage(12, view),
        dtype: Dt::F32,
        offset,
        shape: shape.to_vec(),
        stride: stride.to_vec(),
    };
    let v = |t: &TensorRef, budget: &mut u64| {
        tensors::to_f32(t, &bytes, budget)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    // the transpose of a 3×4 matrix at offset 0
    assert_eq!(
        v(&t(None, 0, &[4, 3], &[1, 4]), &mut budget),
        [0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
    );
    // every other element from offset 1, and a stride-0 broadcast
    assert_eq!(
        v(&t(None, 1, &[2, 3], &[6, 2]), &mut budget),
        [1., 3., 5., 7., 9., 11.]
    );
    assert_eq!(
        v(&t(None, 2, &[2, 2], &[0, 1]), &mut budget),
        [2., 3., 2., 3.]
    );
    // a legacy view (torch < 0.4 view_metadata): elements 4..10 of the storage, offset 1 in it
    assert_eq!(v(&t(Some((4, 6)), 1, &[2], &[2]), &mut budget), [5., 7.]);
    // ... whose extent is bounded by the view, not the storage
    let e = tensors::to_f32(&t(Some((4, 6)), 5, &[2], &[1]), &bytes, &mut budget).unwrap_err();
    assert!(e.contains("runs past its storage `k` of 6 elements"), "{e}");
    // a broadcast of 2^40 values from one element: more than the budget, refused
    let e = tensors::to_f32(
        &t(None, 0, &[1 << 20, 1 << 20], &[0, 0]),
        &bytes,
        &mut budget,
    )
    .unwrap_err();
    assert!(
        e.contains("more than a file of this size may expand to"),
        "{e}"
    );
    // a dim of size 1 with a huge stride does not overflow
    assert_eq!(
        v(&t(None, 3, &[1, 2], &[u64::MAX, 1]), &mut budget),
        [3., 4.]
    );
    // storage_of reads the view metadata and bounds it
    let pid = |view: Py| {
        Py::Tuple(vec![
            s("storage"),
            g("torch", "FloatStorage"),
            s("k"),
            s("cpu"),
            Py::Int(12),
            view,
        ])
    };
    let st = tensors::storage_of(&pid(Py::Tuple(vec![s("v"), Py::Int(4), Py::Int(6)]))).unwrap();
    assert_eq!(st, storage(12, Some((4, 6))));
    let e = tensors::storage_of(&pid(Py::Tuple(vec![s("v"), Py::Int(8), Py::Int(6)]))).unwrap_err();
    assert!(e.contains("runs past its 12"), "{e}");
}

#[test]
fn parameters_and_tensor_subclasses_are_tensors() {
    let t = tensor_obj("0", 3);
    let param = call(
        g("torch._utils", "_rebuild_parameter"),
        vec![t.clone(), Py::Bool(true), Py::Dict(vec![])],
    );
    let Py::Object { callable, args, .. } = &t else {
        unreachable!()
    };
    let sub = call(
        g("torch._tensor", "_rebuild_from_type_v2"),
        vec![
            (**callable).clone(),
            g("torch.nn.parameter", "Parameter"),
            (**args).clone(),
            Py::Dict(vec![]),
        ],
    );
    for p in [t.clone(), param, sub] {
        let r = tensors::tensor_of(&p).unwrap().unwrap();
        assert_eq!((r.shape, r.storage.numel), (vec![3], 3));
    }
    let q = call(g("torch._utils", "_rebuild_qtensor"), vec![]);
    assert!(
        tensors::tensor_of(&q)
            .unwrap_err()
            .contains("_rebuild_qtensor")
    );
    assert!(tensors::tensor_of(&Py::Int(3)).unwrap().is_none());
}
