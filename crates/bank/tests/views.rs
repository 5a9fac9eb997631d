//! `train_views.safetensors` against train: a views file whose optional `labels` are train's
//! opens (and reports its dtype); one whose labels differ from train's at one row is refused,
//! naming the row and both labels (the views must be of train's rows, in order).

use bank::write::{FeatureDtype, RawTensor, save_tensors, write_split};
use bank::{Bank, BankError};
use safetensors::Dtype;
use std::path::Path;

const D: usize = 3;

fn f16s(shape: &[usize], v: &[f32]) -> RawTensor {
    RawTensor {
        dtype: Dtype::F16,
        shape: shape.to_vec(),
        bytes: v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
    }
}

fn i64s(v: &[i64]) -> RawTensor {
    RawTensor {
        dtype: Dtype::I64,
        shape: vec![v.len()],
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Train 6/3/1 rows (labels 0…0 1 1 1 2), test 2 per class; returns train's labels.
fn bank(dir: &Path) -> Vec<u32> {
    let labels: Vec<u32> = [(0, 6), (1, 3), (2, 1)]
        .iter()
        .flat_map(|&(c, n)| std::iter::repeat_n(c, n))
        .collect();
    let x: Vec<f32> = (0..labels.len() * D).map(|i| i as f32 * 0.1).collect();
    write_split(
        &dir.join("train.safetensors"),
        D,
        &x,
        None,
        &labels,
        FeatureDtype::F32,
    )
    .unwrap();
    let test = [0, 0, 1, 1, 2, 2];
    let xt: Vec<f32> = (0..test.len() * D).map(|i| i as f32).collect();
    write_split(
        &dir.join("test.safetensors"),
        D,
        &xt,
        None,
        &test,
        FeatureDtype::F32,
    )
    .unwrap();
    labels
}

/// Two f16 views of every train row, with `labels`.
fn views(dir: &Path, labels: &[i64]) {
    let n = labels.len();
    let v: Vec<f32> = (0..n * D).map(|i| i as f32 * 0.25).collect();
    save_tensors(
        &dir.join("train_views.safetensors"),
        vec![
            ("view0", f16s(&[n, D], &v)),
            ("view1", f16s(&[n, D], &v)),
            ("labels", i64s(labels)),
        ],
    )
    .unwrap();
}

#[test]
fn views_with_train_s_labels_open() {
    let t = tempfile::tempdir().unwrap();
    let labels = bank(t.path());
    let same: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    views(t.path(), &same);
    let b = Bank::open(t.path()).unwrap();
    let v = b.train_views.as_deref().unwrap();
    assert_eq!((v.count, v.rows, v.dim), (2, 10, D));
    assert_eq!(v.labels.as_deref(), Some(&same[..]));
    assert_eq!(v.dtype_name(), "f16");
}

#[test]
fn views_whose_labels_differ_from_train_s_are_refused_at_the_row() {
    let t = tempfile::tempdir().unwrap();
    let labels = bank(t.path());
    let mut other: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    // row 7 is class 1 in train; the views say 2 (still a valid class: only the check of
    // views against train can see it)
    other[7] = 2;
    views(t.path(), &other);
    let err = Bank::open(t.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BankError::Invalid { .. }), "{err:?}");
    assert!(
        msg.contains("train_views.safetensors")
            && msg.contains("`labels`[7] = 2")
            && msg.contains("has 1 there"),
        "{msg}"
    );
}
