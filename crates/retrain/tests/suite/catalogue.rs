//! The bad-input catalogue: one table of broken inputs for the real `retrain` and `extract`
//! binaries, each built in a fresh temp folder. Every error case must
//!
//! - exit with code 2 (clap usage errors exit 2 as well),
//! - print exactly one non-empty stderr line (notice lines are ignored: `retrain: bank ...`,
//!   `... fitting a stage-1 head ...`, and clap's fixed trailer `Usage: ...` /
//!   `For more information, try '--help'.`), containing every needle of the case (the file
//!   name and the field / tensor / flag name),
//! - not panic,
//! - leave no output behind (no `table1.csv` in `--out` for retrain; no bank folder and no
//!   `<name>.partial` for extract).
//!
//! `cargo test -p retrain --test catalogue -- --nocapture` prints the case list. All failures
//! are collected and reported together. Cases that expose a bug in the binaries are kept as
//! separate `#[ignore = "bug: ..."]` tests at the bottom, with the exact input.
//!
//! `extract` is found next to `retrain` in the target folder; when it is not built yet it is
//! built once with `cargo build -p extract`.

use safetensors::Dtype;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

// ---- writing tensors -----------------------------------------------------------------------

/// A raw tensor for writing test files with any dtype.
use bank::write::RawTensor as T;
fn f32s(shape: &[usize], v: &[f32]) -> T {
    assert_eq!(shape.iter().product::<usize>(), v.len());
    T {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}
fn i64s(shape: &[usize], v: &[i64]) -> T {
    assert_eq!(shape.iter().product::<usize>(), v.len());
    T {
        dtype: Dtype::I64,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}
fn zeros(shape: &[usize]) -> T {
    f32s(shape, &vec![0.0; shape.iter().product()])
}
fn save(path: &Path, tensors: Vec<(&str, T)>) {
    bank::write::save_tensors(path, tensors).unwrap();
}

// ---- the base bank ---------------------------------------------------------------------------

const K: usize = 3;
const D: usize = 4;

/// Features and labels of a tiny separable split: `counts[c]` rows of class c.
fn split_data(counts: &[usize], shift: f32) -> (Vec<f32>, Vec<i64>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (c, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let j = (i as f32 + shift) * 0.37;
            let mut row = vec![j.sin() * 0.3, j.cos() * 0.3, (j * 1.7).sin() * 0.3, 0.1];
            row[c] += 1.5;
            x.extend(row);
            y.push(c as i64);
        }
    }
    (x, y)
}

fn write_split(path: &Path, counts: &[usize], shift: f32) {
    let (x, y) = split_data(counts, shift);
    save(
        path,
        vec![
            ("features", f32s(&[y.len(), D], &x)),
            ("labels", i64s(&[y.len()], &y)),
        ],
    );
}

/// `<d>/bank`: K = 3, D = 4, train 30/12/4, test 10/10/10, a stage-1 head.
fn base(d: &Path) -> PathBuf {
    let b = d.join("bank");
    std::fs::create_dir_all(&b).unwrap();
    write_split(&b.join("train.safetensors"), &[30, 12, 4], 0.0);
    write_split(&b.join("test.safetensors"), &[10, 10, 10], 0.5);
    let mut w = vec![0.0f32; K * D];
    for c in 0..K {
        w[c * D + c] = 1.0;
    }
    save(
        &b.join("head.safetensors"),
        vec![("weight", f32s(&[K, D], &w)), ("bias", zeros(&[K]))],
    );
    b
}

/// The base bank with `train.safetensors` replaced by `tensors`.
fn with_train(d: &Path, tensors: Vec<(&str, T)>) {
    save(&base(d).join("train.safetensors"), tensors);
}
fn with_test(d: &Path, tensors: Vec<(&str, T)>) {
    save(&base(d).join("test.safetensors"), tensors);
}
fn with_meta(d: &Path, json: &str) {
    std::fs::write(base(d).join("meta.json"), json).unwrap();
}

/// Rewrite the JSON header of a safetensors file (8-byte LE length + JSON + data).
fn edit_header(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    f(&mut header);
    let mut h = serde_json::to_vec(&header).unwrap();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

// ---- extract fixtures ------------------------------------------------------------------------

fn backbone_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../extract/tests/fixtures/backbones")
}

/// A plain (not gzipped) IDX file: magic, dims, payload.
fn write_idx(path: &Path, magic: u32, dims: &[usize], data: &[u8]) {
    let mut out = magic.to_be_bytes().to_vec();
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// A tiny Fashion-MNIST layout in `<d>/fm` (20 images per split, labels i % 10).
fn fmnist(d: &Path) {
    let root = d.join("fm");
    std::fs::create_dir_all(&root).unwrap();
    let n = 20;
    let imgs: Vec<u8> = (0..n * 784).map(|i| (i * 31 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for p in ["train", "t10k"] {
        write_idx(
            &root.join(format!("{p}-images-idx3-ubyte.gz")),
            0x0803,
            &[n, 28, 28],
            &imgs,
        );
        write_idx(
            &root.join(format!("{p}-labels-idx1-ubyte.gz")),
            0x0801,
            &[n],
            &labels,
        );
    }
}

/// `extract` of the tiny Fashion-MNIST set as shard `shard` into `<d>/p` (the part
/// `<d>/p.shard-<i>-of-<n>`), with `extra` arguments.
fn shard_part(d: &Path, shard: &str, extra: &[&str]) {
    let args: Vec<String> = FMNIST
        .iter()
        .map(|a| subst(a, d))
        .chain(["--shard", shard, "--out", "p", "--quiet"].map(String::from))
        .chain(extra.iter().map(|s| s.to_string()))
        .collect();
    let o = Command::new(extract_bin())
        .args(&args)
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The small-cnn state_dict (no classifier), with `edit` applied to the (key, shape) list.
fn small_cnn_ckpt(path: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>)) {
    small_cnn_ckpt_values(path, edit, |_| false)
}

/// [`small_cnn_ckpt`] with the values of the keys `negate(key)` made negative.
fn small_cnn_ckpt_values(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>),
    negate: fn(&str) -> bool,
) {
    let ts: Vec<(String, T)> = small_cnn_tensors(edit, negate)
        .into_iter()
        .map(|(k, s, v)| (k, f32s(&s, &v)))
        .collect();
    let views: Vec<(&str, &T)> = ts.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// [`small_cnn_ckpt`] as a legacy `torch.save` file (torch < 1.6).
fn small_cnn_legacy(path: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>)) {
    legacy_pth(path, &small_cnn_tensors(edit, |_| false));
}

/// A legacy `torch.save` file (torch < 1.6; `_legacy_save`, torch/serialization.py:1022-1181)
/// of an OrderedDict of f32 tensors: the pickles of the magic number, the protocol version
/// 1001 and sys_info, the state_dict pickle (each tensor `_rebuild_tensor_v2` of a persistent
/// id `('storage', FloatStorage, key, 'cpu', numel)`), the pickle of the sorted storage keys,
/// then each storage in that order: an 8-byte little-endian element count and its bytes.
fn legacy_pth(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    fn text(o: &mut Vec<u8>, x: &str) {
        o.push(b'X');
        o.extend((x.len() as u32).to_le_bytes());
        o.extend(x.as_bytes());
    }
    fn int(o: &mut Vec<u8>, v: usize) {
        o.push(b'J');
        o.extend((v as i32).to_le_bytes());
    }
    fn ints(o: &mut Vec<u8>, v: &[usize]) {
        o.push(b'(');
        v.iter().for_each(|&x| int(o, x));
        o.push(b't');
    }
    let mut o = vec![0x80, 2, 0x8a, 10];
    o.extend([
        0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ]);
    o.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
    o.extend(b"\x80\x02}.");
    o.extend(b"\x80\x02ccollections\nOrderedDict\n)R(");
    for (n, (k, shape, v)) in tensors.iter().enumerate() {
        text(&mut o, k);
        o.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        text(&mut o, "storage");
        o.extend(b"ctorch\nFloatStorage\n");
        text(&mut o, &n.to_string());
        text(&mut o, "cpu");
        int(&mut o, v.len());
        o.extend(b"tQ");
        int(&mut o, 0);
        ints(&mut o, shape);
        let mut stride = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1];
        }
        ints(&mut o, &stride);
        o.extend(b"\x89ccollections\nOrderedDict\n)RtR");
    }
    o.extend(b"u.");
    let mut keys: Vec<String> = (0..tensors.len()).map(|n| n.to_string()).collect();
    keys.sort();
    o.extend(b"\x80\x02](");
    keys.iter().for_each(|k| text(&mut o, k));
    o.extend(b"e.");
    for k in &keys {
        let v = &tensors[k.parse::<usize>().unwrap()].2;
        o.extend((v.len() as u64).to_le_bytes());
        v.iter().for_each(|x| o.extend(x.to_le_bytes()));
    }
    std::fs::write(path, o).unwrap();
}

/// The committed legacy `torch.save` fixture (torch 2.15, `_use_new_zipfile_serialization=False`;
/// crates/extract/scripts/legacy_checkpoint_fixture.py), with `from` replaced by `to` once
/// after the first `after`.
fn legacy_fixture_edit(path: &Path, after: &[u8], from: &[u8], to: &[u8]) {
    let b = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../extract/tests/fixtures/checkpoints/tiny.legacy.pth"),
    )
    .unwrap();
    let find = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n).unwrap();
    let a = find(&b, after);
    let at = a + find(&b[a..], from);
    std::fs::write(path, [&b[..at], to, &b[at + from.len()..]].concat()).unwrap();
}

/// The small-cnn (key, shape, values), `edit` applied to the (key, shape) list, the values of
/// the keys `negate(key)` negative.
fn small_cnn_tensors(
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>),
    negate: fn(&str) -> bool,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut keys = Vec::new();
    for (i, (cin, cout)) in [(1, 32), (32, 64), (64, 128)].into_iter().enumerate() {
        keys.push((format!("conv{}.weight", i + 1), vec![cout, cin, 3, 3]));
        for p in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("bn{}.{p}", i + 1), vec![cout]));
        }
    }
    edit(&mut keys);
    keys.into_iter()
        .map(|(k, s)| {
            let n: usize = s.iter().product();
            let sign = if negate(&k) { -1.0 } else { 1.0 };
            let v: Vec<f32> = (0..n)
                .map(|i| sign * (0.5 + (i % 7) as f32 * 0.01))
                .collect();
            (k, s, v)
        })
        .collect()
}

/// `<d>/img/{0,1}.png` (8×8 RGB) for list datasets.
fn images(d: &Path) {
    let dir = d.join("img");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..2u8 {
        let f = std::fs::File::create(dir.join(format!("{i}.png"))).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 8, 8);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let data: Vec<u8> = (0..8 * 8 * 3)
            .map(|j| (j as u8).wrapping_mul(7 + i))
            .collect();
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&data).unwrap();
    }
}

fn lists(d: &Path, train: &str) {
    images(d);
    std::fs::write(d.join("train.txt"), train).unwrap();
    std::fs::write(d.join("test.txt"), "img/0.png 0\nimg/1.png 1\n").unwrap();
}

// ---- the table -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bin {
    /// `retrain` with [`RETRAIN_BANK`] prepended (bank `<d>/bank`, out `<d>/out`).
    RetrainBank,
    /// `retrain` with the case's args only.
    Retrain,
    /// `extract --quiet --out <d>/bankout` plus the case's args.
    Extract,
    /// `extract merge` plus the case's args plus `--out <d>/bankout`.
    ExtractMerge,
}

const RETRAIN_BANK: &[&str] = &[
    "--bank",
    "{d}/bank",
    "--method",
    "vanilla-fc",
    "--seeds",
    "1",
    "--epochs",
    "1",
    "--out",
    "{d}/out",
    "--jobs",
    "1",
    "-q",
];
const FMNIST: &[&str] = &[
    "--dataset",
    "fmnist-lt",
    "--root",
    "{d}/fm",
    "--img-max",
    "2",
    "--ir",
    "2",
];
const LIST: &[&str] = &[
    "--dataset",
    "list",
    "--root",
    "{d}",
    "--train-list",
    "{d}/train.txt",
    "--test-list",
    "{d}/test.txt",
    "--arch",
    "resnet32",
];

/// An error case lists the substrings its single error line must contain; `Ok` must succeed
/// and write its output.
#[derive(Clone, Copy, Debug)]
enum Want {
    Error(&'static [&'static str]),
    Ok,
}

struct Case {
    name: &'static str,
    /// Builds the broken input in the case's fresh temp folder.
    setup: fn(&Path),
    bin: Bin,
    /// `{d}`: the temp folder; `{fx}`: extract's backbone fixtures.
    args: Vec<&'static str>,
    want: Want,
}

fn case(name: &'static str, bin: Bin, setup: fn(&Path), args: &[&'static str], want: Want) -> Case {
    Case {
        name,
        setup,
        bin,
        args: args.to_vec(),
        want,
    }
}
fn cat(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    a.iter().chain(b).copied().collect()
}

/// `retrain --method <method> --seeds 1 --epochs 1` on the base bank into `d/<folder>` (the
/// results folder a `compare` case reads); the base bank is written once.
fn results_folder(d: &Path, method: &str, folder: &str) {
    let b = if d.join("bank").exists() {
        d.join("bank")
    } else {
        base(d)
    };
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(["--bank", b.to_str().unwrap(), "--method", method])
        .args([
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--jobs",
            "1",
            "--no-plots",
            "-q",
            "--out",
        ])
        .arg(d.join(folder))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The base bank and `rows.toml`: a method table of the single row `row`.
fn bad_row(d: &Path, row: &str) {
    base(d);
    std::fs::write(d.join("rows.toml"), format!("[[method]]\n{row}\n")).unwrap();
}

fn cases() -> Vec<Case> {
    use Bin::*;
    use Want::{Error as E, Ok as Fine};
    let rb = RetrainBank;
    let mut v = vec![
        // -- bank files ------------------------------------------------------------------------
        case(
            "bank_truncated_safetensors",
            rb,
            |d| {
                let p = base(d).join("train.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 10]).unwrap();
            },
            &[],
            E(&["train.safetensors", "truncated or corrupt"]),
        ),
        case(
            "bank_header_lies_about_sizes",
            rb,
            |d| {
                let p = base(d).join("test.safetensors");
                edit_header(&p, |h| {
                    let end = h["features"]["data_offsets"][1].as_u64().unwrap();
                    h["features"]["data_offsets"][1] = (end + 16).into();
                });
            },
            &[],
            E(&["test.safetensors", "truncated or corrupt"]),
        ),
        case(
            "bank_header_shape_disagrees_with_offsets",
            rb,
            |d| {
                let p = base(d).join("train.safetensors");
                edit_header(&p, |h| h["features"]["shape"][1] = 5.into());
            },
            &[],
            E(&["train.safetensors", "truncated or corrupt"]),
        ),
        case(
            "bank_header_length_past_end_of_file",
            rb,
            |d| {
                let p = base(d).join("train.safetensors");
                let mut b = std::fs::read(&p).unwrap();
                b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                std::fs::write(&p, b).unwrap();
            },
            &[],
            E(&["train.safetensors", "truncated or corrupt"]),
        ),
        case(
            "bank_garbage_bytes",
            rb,
            |d| {
                std::fs::write(
                    base(d).join("train.safetensors"),
                    b"hello, not a tensor file",
                )
                .unwrap();
            },
            &[],
            E(&["train.safetensors", "truncated or corrupt"]),
        ),
        case(
            "bank_features_dtype_i64",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", i64s(&[2, D], &[0; 8])),
                        ("labels", i64s(&[2], &[0, 1])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`features`", "I64"]),
        ),
        case(
            "bank_labels_dtype_f32",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, D])),
                        ("labels", f32s(&[2], &[0.0, 1.0])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`labels`", "F32"]),
        ),
        case(
            "bank_features_rank_3",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, 2, 2])),
                        ("labels", i64s(&[2], &[0, 1])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`features`", "rank 3"]),
        ),
        case(
            "bank_labels_rank_2",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, D])),
                        ("labels", i64s(&[2, 1], &[0, 1])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`labels`", "rank 2"]),
        ),
        case(
            "bank_missing_labels_tensor",
            rb,
            |d| {
                with_train(d, vec![("features", zeros(&[2, D]))]);
            },
            &[],
            E(&["train.safetensors", "`labels`"]),
        ),
        case(
            "bank_row_count_mismatch",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, D])),
                        ("labels", i64s(&[3], &[0, 1, 2])),
                    ],
                );
            },
            &[],
            E(&[
                "test.safetensors",
                "`features` has 2 rows",
                "`labels` has 3",
            ]),
        ),
        case(
            "bank_dim_mismatch_across_splits",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, 3])),
                        ("labels", i64s(&[2], &[0, 1])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`features`", "dimension 3"]),
        ),
        case(
            "bank_val_dim_mismatch",
            rb,
            |d| {
                save(
                    &base(d).join("val.safetensors"),
                    vec![
                        ("features", zeros(&[3, 5])),
                        ("labels", i64s(&[3], &[0, 1, 2])),
                    ],
                );
            },
            &[],
            E(&["val.safetensors", "`features`", "dimension 5"]),
        ),
        case(
            "bank_dim_mismatch_with_head",
            rb,
            |d| {
                save(
                    &base(d).join("head.safetensors"),
                    vec![("weight", zeros(&[K, 5])), ("bias", zeros(&[K]))],
                );
            },
            &[],
            E(&["head.safetensors", "`weight`", "dimension 5"]),
        ),
        case(
            "bank_head_bias_length",
            rb,
            |d| {
                save(
                    &base(d).join("head.safetensors"),
                    vec![("weight", zeros(&[K, D])), ("bias", zeros(&[K + 1]))],
                );
            },
            &[],
            E(&["head.safetensors", "`bias`"]),
        ),
        case(
            "bank_head_nan",
            rb,
            |d| {
                let mut w = vec![0.0f32; K * D];
                w[5] = f32::NAN;
                save(
                    &base(d).join("head.safetensors"),
                    vec![("weight", f32s(&[K, D], &w)), ("bias", zeros(&[K]))],
                );
            },
            &[],
            E(&["head.safetensors", "non-finite"]),
        ),
        case(
            "bank_features_flip_shape",
            rb,
            |d| {
                let (x, y) = split_data(&[10, 10, 10], 0.5);
                with_test(
                    d,
                    vec![
                        ("features", f32s(&[30, D], &x)),
                        ("features_flip", zeros(&[30, D + 1])),
                        ("labels", i64s(&[30], &y)),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`features_flip`"]),
        ),
        case(
            "bank_features_flip_rows",
            rb,
            |d| {
                let (x, y) = split_data(&[10, 10, 10], 0.5);
                with_test(
                    d,
                    vec![
                        ("features", f32s(&[30, D], &x)),
                        ("features_flip", zeros(&[29, D])),
                        ("labels", i64s(&[30], &y)),
                    ],
                );
            },
            &[],
            E(&[
                "test.safetensors",
                "`features_flip` has 29 rows, but `features` has 30",
            ]),
        ),
        case(
            "bank_label_ge_k",
            rb,
            |d| {
                let (x, mut y) = split_data(&[10, 10, 10], 0.5);
                y[7] = 3;
                with_test(
                    d,
                    vec![
                        ("features", f32s(&[30, D], &x)),
                        ("labels", i64s(&[30], &y)),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`labels`[7] = 3", "out of range 0..3"]),
        ),
        case(
            "bank_negative_label",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, D])),
                        ("labels", i64s(&[2], &[0, -1])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`labels`[1] = -1", "negative"]),
        ),
        case(
            "bank_nan_feature",
            rb,
            |d| {
                let mut x = vec![0.0f32; 8];
                x[5] = f32::NAN;
                with_test(
                    d,
                    vec![
                        ("features", f32s(&[2, D], &x)),
                        ("labels", i64s(&[2], &[0, 1])),
                    ],
                );
            },
            &[],
            E(&["test.safetensors", "`features`[1, 1]", "not finite"]),
        ),
        case(
            "bank_pos_inf_feature",
            rb,
            |d| {
                let (mut x, y) = split_data(&[30, 12, 4], 0.0);
                x[2] = f32::INFINITY;
                with_train(
                    d,
                    vec![
                        ("features", f32s(&[46, D], &x)),
                        ("labels", i64s(&[46], &y)),
                    ],
                );
            },
            &[],
            E(&["train.safetensors", "`features`[0, 2]", "inf"]),
        ),
        case(
            "bank_empty_class",
            rb,
            |d| {
                // class 1 only in test: K = 3 from the head, no training sample for class 1
                let (x, y) = split_data(&[30, 0, 4], 0.0);
                let y: Vec<i64> = y.into_iter().map(|l| if l == 1 { 2 } else { l }).collect();
                with_train(
                    d,
                    vec![
                        ("features", f32s(&[34, D], &x)),
                        ("labels", i64s(&[34], &y)),
                    ],
                );
            },
            &[],
            E(&["train.safetensors", "class 1 has no training sample"]),
        ),
        case(
            "bank_empty_split",
            rb,
            |d| {
                with_test(
                    d,
                    vec![("features", zeros(&[0, D])), ("labels", i64s(&[0], &[]))],
                );
            },
            &[],
            E(&["test.safetensors", "empty (0 rows)"]),
        ),
        case(
            "bank_missing_test_split",
            rb,
            |d| {
                std::fs::remove_file(base(d).join("test.safetensors")).unwrap();
            },
            &[],
            E(&["bank", "missing test.safetensors"]),
        ),
        case(
            "bank_unknown_extra_tensors_are_fine",
            rb,
            |d| {
                let (x, y) = split_data(&[30, 12, 4], 0.0);
                with_train(
                    d,
                    vec![
                        ("features", f32s(&[46, D], &x)),
                        ("labels", i64s(&[46], &y)),
                        ("paths_hash", i64s(&[46], &vec![7; 46])),
                        ("logits", zeros(&[46, K])),
                    ],
                );
            },
            &[],
            Fine,
        ),
        case(
            "meta_empty_file",
            rb,
            |d| with_meta(d, ""),
            &[],
            E(&["meta.json"]),
        ),
        case(
            "meta_shots_incomplete",
            rb,
            |d| with_meta(d, r#"{"shots": {"many_above": 5}}"#),
            &[],
            E(&["meta.json", "shots", "few_below"]),
        ),
        // -- meta.json -------------------------------------------------------------------------
        case(
            "meta_not_json",
            rb,
            |d| with_meta(d, "this is { not json"),
            &[],
            E(&["meta.json"]),
        ),
        case(
            "meta_wrong_type",
            rb,
            |d| with_meta(d, "{\n  \"num_classes\": \"three\"\n}"),
            &[],
            E(&["meta.json", "num_classes"]),
        ),
        case(
            "meta_num_classes_vs_head_rows",
            rb,
            |d| with_meta(d, r#"{"num_classes": 4}"#),
            &[],
            E(&["meta.json", "num_classes", "head.safetensors"]),
        ),
        case(
            "meta_num_classes_below_labels",
            rb,
            |d| {
                std::fs::remove_file(base(d).join("head.safetensors")).unwrap();
                std::fs::write(d.join("bank/meta.json"), r#"{"num_classes": 2}"#).unwrap();
            },
            &[],
            E(&["train.safetensors", "`labels`", "out of range 0..2"]),
        ),
        case(
            "meta_train_counts_wrong",
            rb,
            |d| with_meta(d, r#"{"train_counts": [30, 12, 5]}"#),
            &[],
            E(&["meta.json", "train_counts"]),
        ),
        case(
            "meta_class_names_length",
            rb,
            |d| with_meta(d, r#"{"class_names": ["a", "b"]}"#),
            &[],
            E(&["meta.json", "class_names", "2 names for 3 classes"]),
        ),
        // -- retrain command line --------------------------------------------------------------
        case(
            "cli_delta_above_1",
            rb,
            |d| drop(base(d)),
            &["--delta", "1.5"],
            E(&["--delta", "[0, 1)"]),
        ),
        case(
            "cli_delta_negative",
            rb,
            |d| drop(base(d)),
            &["--delta=-0.1"],
            E(&["--delta", "[0, 1)"]),
        ),
        case(
            "cli_deltas_grid_contains_1",
            rb,
            |d| drop(base(d)),
            &["--method", "los", "--sweep-delta", "--deltas", "0,1"],
            E(&["--deltas", "[0, 1)"]),
        ),
        case(
            "cli_negative_lr",
            rb,
            |d| drop(base(d)),
            &["--lr=-1"],
            E(&["lr", "-1"]),
        ),
        case(
            "cli_zero_batch",
            rb,
            |d| drop(base(d)),
            &["--batch-size", "0"],
            E(&["batch_size"]),
        ),
        case(
            "cli_unknown_method",
            rb,
            |d| drop(base(d)),
            &["--method", "nope"],
            E(&["--method", "unknown method `nope`"]),
        ),
        case(
            "views_wrong_row_count",
            rb,
            |d| {
                save(
                    &base(d).join("train_views.safetensors"),
                    vec![("view0", zeros(&[45, D]))],
                )
            },
            &[],
            E(&["train_views.safetensors", "`view0` has 45 rows"]),
        ),
        case(
            "views_wrong_dimension",
            rb,
            |d| {
                save(
                    &base(d).join("train_views.safetensors"),
                    vec![("view0", zeros(&[46, D + 1]))],
                )
            },
            &[],
            E(&["train_views.safetensors", "view0", "dimension 5"]),
        ),
        case(
            "views_integer_dtype",
            rb,
            |d| {
                save(
                    &base(d).join("train_views.safetensors"),
                    vec![("view0", i64s(&[46, D], &vec![0; 46 * D]))],
                )
            },
            &[],
            E(&["train_views.safetensors", "view0", "dtype"]),
        ),
        case(
            "views_non_finite_value",
            rb,
            |d| {
                let mut v = vec![0.0f32; 46 * D];
                v[2 * D + 1] = f32::NAN;
                save(
                    &base(d).join("train_views.safetensors"),
                    vec![("view0", zeros(&[46, D])), ("view1", f32s(&[46, D], &v))],
                )
            },
            &[],
            E(&["train_views.safetensors", "`view1`[2, 1] is not finite"]),
        ),
        case(
            "views_named_out_of_order",
            rb,
            |d| {
                save(
                    &base(d).join("train_views.safetensors"),
                    vec![("view0", zeros(&[46, D])), ("view2", zeros(&[46, D]))],
                )
            },
            &[],
            E(&["train_views.safetensors", "`view2`", "view1 is missing"]),
        ),
        case(
            "config_row_custom_loss_from_the_cli",
            Retrain,
            |d| bad_row(d, "name = \"mine\"\nloss = { kind = \"custom\", id = 7 }"),
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "mine",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["`mine`", "loss.kind custom", "Method.custom"]),
        ),
        case(
            "cli_unknown_recipe",
            rb,
            |d| drop(base(d)),
            &["--method", "crt", "--recipe", "paper"],
            E(&["--recipe", "paper"]),
        ),
        case(
            "cli_recipe_source_for_a_row_without_one",
            rb,
            |d| drop(base(d)),
            &["--method", "crt,las", "--recipe", "source"],
            E(&["--recipe source", "`las`", "recipe"]),
        ),
        case(
            "cli_init_refused_by_a_row_whose_init_is_its_method",
            rb,
            |d| drop(base(d)),
            &["--method", "ncm", "--init", "stage1"],
            E(&["--init stage1", "`ncm`", "init"]),
        ),
        case(
            "cli_init_fresh_refused_by_class_mean_init",
            rb,
            |d| drop(base(d)),
            &["--method", "class-mean-init", "--init", "fresh"],
            E(&["--init fresh", "`class-mean-init`", "init"]),
        ),
        case(
            "cli_zero_jobs",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank", "{d}/bank", "--out", "{d}/out", "--jobs", "0", "-q",
            ],
            E(&["--jobs"]),
        ),
        case(
            "cli_seeds_0",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank", "{d}/bank", "--out", "{d}/out", "--seeds", "0", "-q",
            ],
            E(&["--seeds"]),
        ),
        case(
            "cli_shard_3_of_2",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank", "{d}/bank", "--out", "{d}/out", "--shard", "3/2", "-q",
            ],
            E(&["--shard", "3/2"]),
        ),
        case(
            "cli_shard_not_i_over_n",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank", "{d}/bank", "--out", "{d}/out", "--shard", "two", "-q",
            ],
            E(&["--shard", "two"]),
        ),
        case(
            "cli_unknown_flag",
            Retrain,
            |d| drop(base(d)),
            &["--bank", "{d}/bank", "--out", "{d}/out", "--bogus"],
            E(&["--bogus"]),
        ),
        case(
            "cli_unknown_bank_path",
            Retrain,
            |_| {},
            &[
                "--bank", "{d}/nope", "--out", "{d}/out", "--seeds", "1", "-q",
            ],
            E(&["nope", "no such bank folder"]),
        ),
        case(
            "cli_bank_is_a_file",
            Retrain,
            |d| std::fs::write(d.join("bankfile"), "x").unwrap(),
            &[
                "--bank",
                "{d}/bankfile",
                "--out",
                "{d}/out",
                "--seeds",
                "1",
                "-q",
            ],
            E(&["bankfile"]),
        ),
        case(
            "cli_out_is_a_file",
            Retrain,
            |d| {
                base(d);
                std::fs::write(d.join("out"), "x").unwrap();
            },
            &[
                "--bank",
                "{d}/bank",
                "--method",
                "vanilla-fc",
                "--seeds",
                "1",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["--out", "not a folder"]),
        ),
        case(
            "cli_out_under_a_regular_file",
            Retrain,
            |d| {
                base(d);
                std::fs::write(d.join("file"), "x").unwrap();
            },
            &[
                "--bank",
                "{d}/bank",
                "--method",
                "vanilla-fc",
                "--seeds",
                "1",
                "--out",
                "{d}/file/sub",
                "-q",
            ],
            E(&["--out", "file/sub"]),
        ),
        // -- zoo rows with a constant out of range, and --sweep ---------------------------------
        case(
            "zoo_las_eps_out_of_range",
            Retrain,
            |d| {
                bad_row(
                    d,
                    "name = \"las-bad\"\nloss = { kind = \"las\", eps_head = 1.0 }",
                )
            },
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "las-bad",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "las-bad", "loss.eps_head", "[0, 1)"]),
        ),
        case(
            "zoo_cdt_negative_gamma",
            Retrain,
            |d| {
                bad_row(
                    d,
                    "name = \"cdt-bad\"\nloss = { kind = \"cdt\", gamma = -0.2 }",
                )
            },
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "cdt-bad",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "cdt-bad", "loss.gamma", "≥ 0"]),
        ),
        case(
            "zoo_disalign_negative_rho",
            Retrain,
            |d| {
                bad_row(
                    d,
                    "name = \"da\"\nhead = { kind = \"dis-align\" }\nreweight = { kind = \"prior\", rho = -1.0 }",
                )
            },
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "da",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "da", "reweight.rho"]),
        ),
        case(
            "zoo_drw_beta_1",
            Retrain,
            |d| {
                bad_row(
                    d,
                    "name = \"drw-bad\"\nreweight = { kind = \"class-balanced\", beta = 1.0, from = 0.8 }",
                )
            },
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "drw-bad",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "drw-bad", "reweight.beta", "[0, 1)"]),
        ),
        case(
            "zoo_reweight_on_focal",
            Retrain,
            |d| {
                bad_row(
                    d,
                    "name = \"fw\"\nloss = { kind = \"focal\" }\nreweight = { kind = \"power\" }",
                )
            },
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "fw",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "fw", "reweight", "softmax cross-entropy"]),
        ),
        case(
            "cli_sweep_unknown_parameter",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank",
                "{d}/bank",
                "--method",
                "las",
                "--sweep",
                "eps_hed=0.2,0.3",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["las", "--sweep", "eps_hed", "eps_head"]),
        ),
        case(
            "cli_sweep_value_out_of_range",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank",
                "{d}/bank",
                "--method",
                "las",
                "--sweep",
                "eps_head=0.2,1.5",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["las", "loss.eps_head", "[0, 1)"]),
        ),
        case(
            "cli_sweep_not_a_number",
            Retrain,
            |d| drop(base(d)),
            &[
                "--bank",
                "{d}/bank",
                "--method",
                "las",
                "--sweep",
                "eps_head=0.2,x",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["--sweep", "`x`"]),
        ),
        case(
            "cli_missing_config_file",
            rb,
            |d| drop(base(d)),
            &["--config", "{d}/nope.toml"],
            E(&["nope.toml"]),
        ),
        // -- shifted test priors, and `retrain compare` on result folders ----------------------
        case(
            "cli_test_prior_unknown_kind",
            rb,
            |d| drop(base(d)),
            &["--test-prior", "uniform,sideways-2"],
            E(&["--test-prior", "sideways-2", "unknown prior"]),
        ),
        case(
            "cli_test_prior_ratio_not_offered",
            rb,
            |d| drop(base(d)),
            &["--test-prior", "forward-3"],
            E(&["--test-prior", "forward-3", "2, 5, 10, 25, 50"]),
        ),
        case(
            "compare_no_run_in_common",
            Retrain,
            |d| {
                // {d}/a: vanilla-fc only, {d}/b: los only
                results_folder(d, "vanilla-fc", "a");
                results_folder(d, "los", "b");
            },
            &["compare", "{d}/a", "{d}/b"],
            E(&["/a and ", "/b: no run in common", "method"]),
        ),
        case(
            "compare_banks_with_one_name_and_other_contents",
            Retrain,
            |d| {
                // {d}/a on the base bank; {d}/b on a copy named `bank` too (another parent)
                // whose test features are shifted: same labels, other rows
                results_folder(d, "vanilla-fc", "a");
                let other = d.join("copy");
                std::fs::create_dir_all(&other).unwrap();
                let copy = base(&other);
                write_split(&copy.join("test.safetensors"), &[10, 10, 10], 0.9);
                let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
                    .args(["--bank", copy.to_str().unwrap(), "--method", "vanilla-fc"])
                    .args(["--seeds", "1", "--epochs", "1", "--no-plots", "-q", "--out"])
                    .arg(d.join("b"))
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            },
            &["compare", "{d}/a", "{d}/b"],
            E(&["/a and ", "/b: bank `bank` differs", "fingerprint"]),
        ),
        case(
            "cli_absurd_bootstrap",
            rb,
            |d| drop(base(d)),
            &["--bootstrap", "1000000000000"],
            E(&["--bootstrap", "at most"]),
        ),
        case(
            "compare_absurd_bootstrap",
            Retrain,
            |d| results_folder(d, "vanilla-fc", "a"),
            &["compare", "{d}/a", "{d}/a", "--bootstrap", "1000000000000"],
            E(&["--bootstrap", "at most"]),
        ),
        case(
            "cli_absurd_seeds",
            rb,
            |d| drop(base(d)),
            &["--seeds", "100000000000"],
            E(&["--seeds", "at most"]),
        ),
        case(
            "cli_absurd_epochs",
            rb,
            |d| drop(base(d)),
            &["--epochs", "1000000000000"],
            E(&["epochs", "at most"]),
        ),
        case(
            "config_row_absurd_epochs",
            Retrain,
            |d| bad_row(d, "name = \"a\"\nepochs = 1000000000000"),
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "a",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "`a`", "epochs", "at most"]),
        ),
        case(
            "config_row_without_logit_prior_under_prior_correct",
            Retrain,
            |d| bad_row(d, "name = \"a\""),
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "a",
                "--prior-correct",
                "--test-prior",
                "uniform",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "`a`", "logit_prior", "--prior-correct"]),
        ),
        case(
            "config_row_with_a_bad_logit_prior",
            Retrain,
            |d| bad_row(d, "name = \"a\"\nlogit_prior = \"uniform\""),
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "a",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "line 3", "train", "balanced"]),
        ),
        case(
            "config_recipe_without_tta",
            Retrain,
            |d| {
                bad_row(
                    d,
                    "name = \"a\"\n[method.recipe]\nlr = 0.1\nsource = \"mine.py:1\"",
                )
            },
            &[
                "--bank",
                "{d}/bank",
                "--config",
                "{d}/rows.toml",
                "--method",
                "a",
                "--recipe",
                "source",
                "--out",
                "{d}/out",
                "-q",
            ],
            E(&["rows.toml", "tta"]),
        ),
        case(
            "synth_absurd_size",
            Retrain,
            |_| {},
            &[
                "synth",
                "--classes",
                "100000",
                "--img-max",
                "100000",
                "--dim",
                "1000",
                "--out",
                "{d}/synth",
            ],
            E(&["--classes", "memory"]),
        ),
        case(
            "compare_folder_without_predictions",
            Retrain,
            |d| {
                results_folder(d, "vanilla-fc", "a");
                std::fs::remove_file(d.join("a/predictions.parquet")).unwrap();
            },
            &["compare", "{d}/a", "{d}/a"],
            E(&["a/predictions.parquet", "cannot open"]),
        ),
        case(
            "compare_corrupt_predictions",
            Retrain,
            |d| {
                results_folder(d, "vanilla-fc", "a");
                std::fs::write(d.join("a/predictions.parquet"), b"garbage, not parquet").unwrap();
            },
            &["compare", "{d}/a", "{d}/a"],
            E(&["a/predictions.parquet", "not a predictions file"]),
        ),
        case(
            "compare_unknown_baseline",
            Retrain,
            |d| {
                results_folder(d, "vanilla-fc", "a");
            },
            &["compare", "--baseline", "nope", "{d}/a"],
            E(&[
                "--baseline",
                "`nope`",
                "a/predictions.parquet",
                "vanilla-fc",
            ]),
        ),
        // -- extract: checkpoints ---------------------------------------------------------------
        case(
            "extract_ckpt_wrong_architecture",
            Extract,
            |d| {
                fmnist(d);
                std::fs::copy(
                    backbone_fixtures().join("resnet32_ldam.state_dict.pt"),
                    d.join("resnet32.pt"),
                )
                .unwrap();
            },
            &cat(FMNIST, &["--checkpoint", "{d}/resnet32.pt"]),
            E(&[
                "pass --arch resnet32: ",
                "resnet32.pt",
                "small-cnn",
                "missing keys",
            ]),
        ),
        case(
            "extract_ckpt_missing_key",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |k| {
                    k.retain(|(n, _)| n != "bn3.running_var")
                });
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.safetensors"]),
            E(&[
                "ck.safetensors",
                "small-cnn",
                "missing keys: bn3.running_var",
            ]),
        ),
        case(
            "extract_ckpt_shape_mismatch",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |k| {
                    k.iter_mut().find(|(n, _)| n == "conv2.weight").unwrap().1 = vec![64, 32, 5, 5]
                });
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.safetensors"]),
            E(&["ck.safetensors", "shape mismatches", "conv2.weight"]),
        ),
        case(
            "extract_ckpt_negative_running_var",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt_values(
                    &d.join("ck.safetensors"),
                    |_| {},
                    |k| k == "bn2.running_var",
                );
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.safetensors"]),
            E(&["ck.safetensors", "`bn2.running_var`", "below 0"]),
        ),
        case(
            "extract_ckpt_zero_size_layer",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |k| {
                    k.iter_mut().find(|(n, _)| n == "conv2.weight").unwrap().1 = vec![0, 32, 3, 3]
                });
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.safetensors"]),
            E(&["ck.safetensors", "`conv2.weight`", "zero-size"]),
        ),
        case(
            "extract_shard_out_of_range",
            Extract,
            fmnist,
            &cat(FMNIST, &["--shard", "3/3"]),
            E(&["--shard", "3/3", "below the count"]),
        ),
        case(
            "extract_shard_with_stage1",
            Extract,
            fmnist,
            &cat(FMNIST, &["--shard", "0/2", "--stage1"]),
            E(&["--shard", "--stage1"]),
        ),
        case(
            "extract_merge_parts_of_different_runs",
            ExtractMerge,
            |d| {
                fmnist(d);
                shard_part(d, "0/2", &[]);
                shard_part(d, "1/2", &["--views", "1"]);
            },
            &["{d}/p.shard-0-of-2", "{d}/p.shard-1-of-2"],
            E(&[
                "p.shard-1-of-2",
                "`views` is 1 there but 0",
                "different runs",
            ]),
        ),
        case(
            "extract_merge_parts_with_different_checkpoints",
            ExtractMerge,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |_| {});
                shard_part(d, "0/2", &[]);
                shard_part(d, "1/2", &["--checkpoint", "ck.safetensors"]);
            },
            &["{d}/p.shard-0-of-2", "{d}/p.shard-1-of-2"],
            E(&["p.shard-1-of-2", "`weights`", "different runs"]),
        ),
        case(
            "extract_merge_missing_part",
            ExtractMerge,
            |d| {
                fmnist(d);
                shard_part(d, "0/3", &[]);
                shard_part(d, "2/3", &[]);
            },
            &["{d}/p.shard-0-of-3", "{d}/p.shard-2-of-3"],
            E(&["part 1 of 3 is missing"]),
        ),
        case(
            "extract_merge_unfinished_part",
            ExtractMerge,
            |d| {
                fmnist(d);
                shard_part(d, "0/2", &[]);
                std::fs::create_dir_all(d.join("p.shard-1-of-2.partial")).unwrap();
            },
            &["{d}/p.shard-0-of-2", "{d}/p.shard-1-of-2.partial"],
            E(&["p.shard-1-of-2.partial", "not a finished part", "--resume"]),
        ),
        case(
            "extract_resume_with_changed_arguments",
            Extract,
            |d| {
                fmnist(d);
                // an interrupted extraction of <d>/bankout: a part's chunks and run.json where
                // a killed one-shot run leaves them
                shard_part(d, "0/2", &[]);
                std::fs::rename(d.join("p.shard-0-of-2"), d.join("bankout.partial")).unwrap();
            },
            &cat(FMNIST, &["--resume", "--batch-size", "3"]),
            E(&["bankout.partial/run.json", "`batch_size` was 64, now 3"]),
        ),
        case(
            "extract_ckpt_unexpected_key",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |k| {
                    k.push(("conv9.weight".into(), vec![2]))
                });
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.safetensors"]),
            E(&["ck.safetensors", "unexpected keys: conv9.weight"]),
        ),
        case(
            "extract_ckpt_garbage_pth",
            Extract,
            |d| {
                fmnist(d);
                std::fs::write(d.join("garbage.pth"), b"\x80\x02this is not a zip at all").unwrap();
            },
            &cat(FMNIST, &["--checkpoint", "{d}/garbage.pth"]),
            E(&[
                "garbage.pth",
                "expected a zip-format torch.save file",
                "legacy",
            ]),
        ),
        case(
            "extract_ckpt_legacy_truncated",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_legacy(&d.join("ck.pth"), |_| {});
                let b = std::fs::read(d.join("ck.pth")).unwrap();
                std::fs::write(d.join("ck.pth"), &b[..b.len() - 1000]).unwrap();
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.pth"]),
            E(&["ck.pth", "tensor at `bn2.weight`", "a truncated file?"]),
        ),
        case(
            "extract_ckpt_legacy_offset_past_storage",
            Extract,
            |d| {
                fmnist(d);
                // shared.tail = base[6:]: storage offset 6 -> 7, its last element past the 10
                legacy_fixture_edit(&d.join("ck.pth"), b"shared.tail", b"QK\x06", b"QK\x07");
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.pth"]),
            E(&["ck.pth", "tensor `shared.tail`", "runs past its storage"]),
        ),
        case(
            "extract_ckpt_legacy_unknown_global",
            Extract,
            |d| {
                fmnist(d);
                legacy_fixture_edit(
                    &d.join("ck.pth"),
                    b"OrderedDict",
                    b"torch._utils\n_rebuild_tensor_v2\n",
                    b"posix\nsystem\n",
                );
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.pth"]),
            E(&["ck.pth", "global `posix.system`", "state_dict/conv.weight"]),
        ),
        case(
            "extract_ckpt_legacy_pickled_model_class",
            Extract,
            |d| {
                fmnist(d);
                // torch.save(model) of a class defined in the training script
                legacy_fixture_edit(
                    &d.join("ck.pth"),
                    b"OrderedDict",
                    b"torch._utils\n_rebuild_tensor_v2\n",
                    b"__main__\nNet\n",
                );
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.pth"]),
            E(&["ck.pth", "global `__main__.Net`", "model.state_dict()"]),
        ),
        case(
            "extract_ckpt_legacy_unexpected_key",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_legacy(&d.join("ck.pth"), |k| {
                    k.push(("conv9.weight".into(), vec![2]))
                });
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.pth"]),
            E(&["ck.pth", "unexpected keys: conv9.weight"]),
        ),
        case(
            "extract_ckpt_legacy_wrong_architecture",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_legacy(&d.join("ck.pth"), |_| {});
            },
            &cat(
                FMNIST,
                &["--checkpoint", "{d}/ck.pth", "--arch", "resnet34-cifar"],
            ),
            E(&[
                "pass --arch small-cnn: ",
                "ck.pth",
                "resnet34-cifar",
                "missing keys",
            ]),
        ),
        case(
            "extract_valid_small_cnn_legacy_checkpoint_is_fine",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_legacy(&d.join("ck.tar"), |_| {});
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.tar"]),
            Fine,
        ),
        case(
            "extract_ckpt_truncated_pth",
            Extract,
            |d| {
                fmnist(d);
                let b =
                    std::fs::read(backbone_fixtures().join("resnet32_ldam.ckpt.pth.tar")).unwrap();
                std::fs::write(d.join("cut.pth.tar"), &b[..b.len() / 2]).unwrap();
            },
            &cat(
                FMNIST,
                &["--checkpoint", "{d}/cut.pth.tar", "--arch", "resnet32"],
            ),
            E(&["cut.pth.tar"]),
        ),
        case(
            "extract_ckpt_garbage_safetensors",
            Extract,
            |d| {
                fmnist(d);
                std::fs::write(d.join("bad.safetensors"), b"\x10\0\0\0\0\0\0\0{not json}").unwrap();
            },
            &cat(FMNIST, &["--checkpoint", "{d}/bad.safetensors"]),
            E(&["bad.safetensors", "safetensors"]),
        ),
        case(
            "extract_ckpt_missing_file",
            Extract,
            fmnist,
            &cat(FMNIST, &["--checkpoint", "{d}/absent.pth"]),
            E(&["absent.pth"]),
        ),
        case(
            "extract_valid_small_cnn_checkpoint_is_fine",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |_| {});
            },
            &cat(FMNIST, &["--checkpoint", "{d}/ck.safetensors"]),
            Fine,
        ),
        // -- extract: data -------------------------------------------------------------------------
        case(
            "extract_idx_truncated_payload",
            Extract,
            |d| {
                fmnist(d);
                let p = d.join("fm/train-images-idx3-ubyte.gz");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 100]).unwrap();
            },
            FMNIST,
            E(&["train-images-idx3-ubyte.gz"]),
        ),
        case(
            "extract_idx_header_cut",
            Extract,
            |d| {
                fmnist(d);
                std::fs::write(d.join("fm/train-labels-idx1-ubyte.gz"), [0u8, 0, 8]).unwrap();
            },
            FMNIST,
            E(&["train-labels-idx1-ubyte.gz"]),
        ),
        case(
            "list_bad_line_three_fields",
            Extract,
            |d| lists(d, "img/0.png 0\nimg/1.png 1 extra\n"),
            LIST,
            E(&["train.txt:2", "3 fields"]),
        ),
        case(
            "list_missing_label",
            Extract,
            |d| lists(d, "img/0.png 0\nimg/1.png\n"),
            LIST,
            E(&["train.txt:2", "missing label"]),
        ),
        case(
            "list_non_integer_label",
            Extract,
            |d| lists(d, "img/0.png zero\nimg/1.png 1\n"),
            LIST,
            E(&["train.txt:1", "`zero`"]),
        ),
        case(
            "list_negative_label",
            Extract,
            |d| lists(d, "img/0.png -1\nimg/1.png 1\n"),
            LIST,
            E(&["train.txt:1", "`-1`"]),
        ),
        case(
            "list_only_comments",
            Extract,
            |d| lists(d, "# nothing\n\n"),
            LIST,
            E(&["train.txt", "no image lines"]),
        ),
        case(
            "list_file_absent",
            Extract,
            |d| images(d),
            LIST,
            E(&["train.txt"]),
        ),
        case(
            "list_truncated_jpeg",
            Extract,
            |d| {
                lists(d, "img/0.png 0\nimg/cut.jpg 1\n");
                // a 64×64 grey baseline JPEG (one-code Huffman tables: 64 blocks of DC
                // difference 0 and end-of-block, 16 bytes of scan data) cut after 8 of them, so
                // without its end-of-image marker: the `image` crate decodes it without an error
                let mut j = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0];
                j.extend([1u8; 64]);
                j.extend([0xFF, 0xC0, 0, 11, 8, 0, 64, 0, 64, 1, 1, 0x11, 0]);
                for class in [0x00, 0x10] {
                    j.extend([0xFF, 0xC4, 0, 20, class, 1]);
                    j.extend([0u8; 16]);
                }
                j.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
                j.extend([0u8; 8]);
                std::fs::write(d.join("img/cut.jpg"), j).unwrap();
            },
            LIST,
            E(&["cut.jpg", "train.txt:2", "image file is truncated"]),
        ),
        // -- extract command line ------------------------------------------------------------------
        case(
            "extract_unknown_dataset",
            Extract,
            |_| {},
            &["--dataset", "mnist"],
            E(&["--dataset", "mnist"]),
        ),
        case(
            "extract_unknown_arch",
            Extract,
            fmnist,
            &cat(FMNIST, &["--arch", "vgg16"]),
            E(&["--arch", "vgg16"]),
        ),
        // -- extract: counts beyond the machine (checked before any work) ----------------------
        case(
            // the issue's command: it grew to 24 GB and was killed
            "extract_views_beyond_memory",
            Extract,
            fmnist,
            &cat(
                FMNIST,
                &[
                    "--arch",
                    "efficientnet-lite0",
                    "--views",
                    "100000000",
                    "--limit",
                    "8",
                ],
            ),
            E(&[
                "--views 100000000: needs at least ",
                " of memory (the train inputs of a batch: ",
                "the machine has ",
            ]),
        ),
        case(
            "extract_workers_beyond_memory",
            Extract,
            fmnist,
            &cat(FMNIST, &["--workers", "1000000000000"]),
            E(&[
                "--workers 1000000000000: needs at least ",
                " of memory (",
                "loader threads",
                "the machine has ",
            ]),
        ),
        case(
            "extract_shards_beyond_disk",
            Extract,
            fmnist,
            &cat(FMNIST, &["--shard", "0/1000000000000"]),
            E(&[
                "--shard 0/1000000000000: needs at least ",
                " of disk (1000000000000 parts × 3 blocks",
                " free (on the file system of ",
            ]),
        ),
        case(
            "extract_views_with_a_broken_stage1_record",
            Extract,
            |d| {
                fmnist(d);
                small_cnn_ckpt(&d.join("ck.safetensors"), |_| {});
                std::fs::write(
                    d.join("ck.safetensors.stage1.json"),
                    "{\"arch\": \"small-cnn\"",
                )
                .unwrap();
            },
            &cat(
                FMNIST,
                &["--checkpoint", "{d}/ck.safetensors", "--views", "2"],
            ),
            E(&[
                "ck.safetensors.stage1.json",
                "not a stage-1 record of",
                "ck.safetensors",
            ]),
        ),
        case(
            "extract_list_without_root",
            Extract,
            |_| {},
            &["--dataset", "places-lt"],
            E(&["--root"]),
        ),
    ];
    v.sort_by_key(|c| c.name);
    v
}

/// Cases that expose bugs in the binaries (see the `#[ignore]`d tests below): each must pass
/// once its bug is fixed, then move into [`cases`].
fn bug_cases() -> Vec<Case> {
    use Bin::*;
    use Want::Error as E;
    let rb = RetrainBank;
    vec![
        case(
            "bank_label_above_u32",
            rb,
            |d| {
                with_test(
                    d,
                    vec![
                        ("features", zeros(&[2, D])),
                        ("labels", i64s(&[2], &[0, 1 << 40])),
                    ],
                );
            },
            &[],
            E(&[
                "test.safetensors",
                "`labels`[1] = 1099511627776",
                "out of range",
            ]),
        ),
        case(
            "bank_label_u32_max_without_head",
            rb,
            |d| {
                std::fs::remove_file(base(d).join("head.safetensors")).unwrap();
                let (x, mut y) = split_data(&[10, 10, 10], 0.5);
                y[3] = u32::MAX as i64;
                save(
                    &d.join("bank/test.safetensors"),
                    vec![
                        ("features", f32s(&[30, D], &x)),
                        ("labels", i64s(&[30], &y)),
                    ],
                );
            },
            &[],
            E(&["`labels`"]),
        ),
        case(
            "bank_zero_dim_features",
            rb,
            |d| {
                let b = base(d);
                std::fs::remove_file(b.join("head.safetensors")).unwrap();
                for (f, n) in [("train", 46usize), ("test", 30)] {
                    let (_, y) =
                        split_data(if n == 46 { &[30, 12, 4] } else { &[10, 10, 10] }, 0.0);
                    save(
                        &b.join(format!("{f}.safetensors")),
                        vec![("features", zeros(&[n, 0])), ("labels", i64s(&[n], &y))],
                    );
                }
            },
            &[],
            E(&["train.safetensors", "`features`"]),
        ),
        case(
            "meta_num_classes_huge_without_head",
            rb,
            |d| {
                std::fs::remove_file(base(d).join("head.safetensors")).unwrap();
                std::fs::write(
                    d.join("bank/meta.json"),
                    r#"{"num_classes": 1000000000000000000}"#,
                )
                .unwrap();
            },
            &[],
            E(&["meta.json", "num_classes"]),
        ),
        case(
            "list_corrupt_image",
            Extract,
            |d| {
                lists(d, "img/0.png 0\nimg/bad.jpg 1\n");
                std::fs::write(d.join("img/bad.jpg"), b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
            },
            LIST,
            E(&["bad.jpg", "train.txt:2"]),
        ),
        case(
            "extract_limit_0",
            Extract,
            fmnist,
            &cat(FMNIST, &["--limit", "0"]),
            E(&["--limit"]),
        ),
        case(
            "extract_ir_inf",
            Extract,
            fmnist,
            &[
                "--dataset",
                "fmnist-lt",
                "--root",
                "{d}/fm",
                "--img-max",
                "2",
                "--ir",
                "inf",
            ],
            E(&["--ir"]),
        ),
        case(
            "list_missing_image_file",
            Extract,
            |d| lists(d, "img/0.png 0\nimg/missing.png 1\n"),
            LIST,
            E(&["missing.png", "train.txt:2"]),
        ),
    ]
}

// ---- running ---------------------------------------------------------------------------------

fn extract_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let p = Path::new(env!("CARGO_BIN_EXE_retrain"))
            .with_file_name(format!("extract{}", std::env::consts::EXE_SUFFIX));
        if !p.exists() {
            // same CARGO_TARGET_DIR (inherited) and profile as this test
            let st = Command::new(env!("CARGO"))
                .args(["build", "-p", "extract", "--bin", "extract"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build -p extract");
            assert!(st.success(), "cargo build -p extract failed");
        }
        assert!(
            p.exists(),
            "extract binary not found at {} (build it with `cargo build -p extract`)",
            p.display()
        );
        p
    })
}

/// Lines that are not the error: notices, and clap's fixed usage trailer.
fn is_noise(line: &str) -> bool {
    let l = line.trim_end();
    l.trim().is_empty()
        || l.starts_with("retrain: bank ")
        || l.contains("fitting a stage-1 head")
        || l.starts_with("For more information, try")
        || l.starts_with("Usage: ")
        // clap's indented hints under its `error:` line
        || l.starts_with("  [possible values: ")
        || l.starts_with("  tip: ")
        || (l.starts_with("       ") && (l.contains("retrain") || l.contains("extract")))
}

fn subst(a: &str, d: &Path) -> String {
    a.replace("{d}", d.to_str().unwrap())
        .replace("{fx}", backbone_fixtures().to_str().unwrap())
}

fn command_line(c: &Case, d: &Path) -> (PathBuf, Vec<String>) {
    let mut args: Vec<String> = Vec::new();
    let bin = match c.bin {
        Bin::RetrainBank => {
            args.extend(RETRAIN_BANK.iter().map(|a| subst(a, d)));
            PathBuf::from(env!("CARGO_BIN_EXE_retrain"))
        }
        Bin::Retrain => PathBuf::from(env!("CARGO_BIN_EXE_retrain")),
        Bin::Extract => {
            args.extend([
                "--quiet".to_string(),
                "--out".into(),
                subst("{d}/bankout", d),
            ]);
            extract_bin().to_path_buf()
        }
        Bin::ExtractMerge => {
            args.push("merge".to_string());
            extract_bin().to_path_buf()
        }
    };
    // later flags override earlier ones for retrain's Option flags only when given once:
    // drop a default flag the case sets itself
    let own: Vec<String> = c.args.iter().map(|a| subst(a, d)).collect();
    if c.bin == Bin::RetrainBank {
        for flag in ["--method", "--seeds", "--epochs", "--out", "--jobs"] {
            if own
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
            {
                if let Some(i) = args.iter().position(|a| a == flag) {
                    args.drain(i..i + 2);
                }
            }
        }
    }
    args.extend(own);
    if c.bin == Bin::ExtractMerge {
        args.extend(["--out".to_string(), subst("{d}/bankout", d)]);
    }
    (bin, args)
}

/// Run one case; `Err` describes every way it failed.
fn check(c: &Case) -> Result<(), String> {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    (c.setup)(d);
    // what the setup made is not output of the run (an interrupted extraction's partial)
    let before: Vec<PathBuf> = ["bankout", "bankout.partial"]
        .iter()
        .map(|p| d.join(p))
        .filter(|p| p.exists())
        .collect();
    let (bin, args) = command_line(c, d);
    let o: Output = Command::new(&bin)
        .args(&args)
        .current_dir(d)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let shown = format!(
        "    $ {} {}\n    exit {:?}, stderr:\n{}",
        bin.file_name().unwrap().to_string_lossy(),
        args.join(" "),
        o.status.code(),
        err.lines()
            .map(|l| format!("      | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut problems = Vec::new();
    if err.contains("panicked") {
        problems.push("panicked".to_string());
    }
    match c.want {
        Want::Ok => {
            if !o.status.success() {
                problems.push("expected success".into());
            }
            let made = match c.bin {
                Bin::Extract | Bin::ExtractMerge => d.join("bankout/train.safetensors"),
                _ => d.join("out/table1.csv"),
            };
            if o.status.success() && !made.exists() {
                problems.push(format!("{} not written", made.display()));
            }
        }
        Want::Error(needles) => {
            if o.status.code() != Some(2) {
                problems.push(format!("expected exit 2, got {:?}", o.status.code()));
            }
            let lines: Vec<&str> = err.lines().filter(|l| !is_noise(l)).collect();
            if lines.len() != 1 {
                problems.push(format!("expected one error line, got {}", lines.len()));
            }
            let line = lines.join(" / ");
            for n in needles {
                if !line.contains(n) {
                    problems.push(format!("error line lacks `{n}`"));
                }
            }
            let left: Vec<PathBuf> = match c.bin {
                Bin::Extract | Bin::ExtractMerge => vec![
                    d.join("bankout"),
                    d.join("bankout.partial"),
                    d.join("features"),
                ],
                _ => ["table1.csv", "runs.csv", "per-class.csv"]
                    .iter()
                    .map(|f| d.join("out").join(f))
                    .collect(),
            };
            for p in left {
                if p.exists() && !before.contains(&p) {
                    problems.push(format!("left behind: {}", p.display()));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{shown}", problems.join("; ")))
    }
}

#[test]
fn catalogue() {
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    // two workers: the cases are independent processes in their own folders
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(c) = cases.get(i) else { break };
                    let t0 = std::time::Instant::now();
                    let r = check(c);
                    results.lock().unwrap().push((i, r, t0.elapsed()));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    let mut failures = Vec::new();
    println!("bad-input catalogue: {} cases", cases.len());
    for (i, r, dt) in &results {
        let c = &cases[*i];
        let kind = match c.want {
            Want::Ok => "ok   ",
            Want::Error(_) => "error",
        };
        println!(
            "  {} {kind} {:<48} {:>6.2}s",
            if r.is_ok() { "pass" } else { "FAIL" },
            c.name,
            dt.as_secs_f64()
        );
        if let Err(e) = r {
            failures.push(format!("- {}: {e}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} catalogue cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---- known bugs: exact inputs, ignored until fixed ---------------------------------------------

fn run_bug(name: &str) {
    let cases = bug_cases();
    let c = cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no bug case {name}"));
    if let Err(e) = check(c) {
        panic!("{name}: {e}");
    }
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_bank_label_above_u32_is_called_negative() {
    run_bug("bank_label_above_u32");
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_bank_label_u32_max_aborts_with_oom() {
    run_bug("bank_label_u32_max_without_head");
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_meta_huge_num_classes_aborts_with_oom() {
    run_bug("meta_num_classes_huge_without_head");
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_bank_zero_dim_features_panic_in_retrain() {
    run_bug("bank_zero_dim_features");
}

#[test]
// fixed: bank::BankDir removes <dir>.partial when dropped unfinished
fn bug_list_missing_image_leaves_partial() {
    run_bug("list_missing_image_file");
}

#[test]
// fixed: bank::BankDir removes <dir>.partial when dropped unfinished
fn bug_list_corrupt_image_leaves_partial() {
    run_bug("list_corrupt_image");
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_extract_limit_0_vague_and_leaves_partial() {
    run_bug("extract_limit_0");
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_extract_ir_inf_writes_an_invalid_bank() {
    run_bug("extract_ir_inf");
}

#[test]
// fixed (was a bug found by this catalogue)
fn bug_io_error_source_is_printed_twice() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(["--bank", missing.to_str().unwrap(), "--seeds", "1", "-q"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(
        e.matches("no such bank folder").count(),
        1,
        "the cause must appear once: {e}"
    );
}
