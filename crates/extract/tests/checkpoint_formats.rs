//! Both `torch.save` formats on the same checkpoint: `tests/fixtures/checkpoints/tiny.{legacy,
//! zip}.pth`, saved by torch 2.15 (`scripts/legacy_checkpoint_fixture.py`), load to identical
//! tensors, equal to the values the script wrote to `tiny.json` (shared storages at an offset,
//! transposed, permuted / stepped and stride-0 views, f16 / bf16 / f64, an nn.Parameter, the
//! state_dict under a wrapper dict, the int64 `num_batches_tracked` dropped).
//!
//! A real legacy release, EfficientNet-Lite0 (`efficientnet-lite0-57934424.pth`, 296 keys), is
//! loaded when `LTBENCH_EFFNET_LITE0` names it (skipped otherwise).

use extract::model::checkpoint::{Format, format_of, load_state_dict};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

fn values(sd: &HashMap<String, candle_core::Tensor>, k: &str) -> (Vec<usize>, Vec<f32>) {
    let t = &sd[k];
    (
        t.dims().to_vec(),
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    )
}

#[test]
fn legacy_and_zip_fixtures_load_to_the_values_torch_saved() {
    let legacy = dir().join("tiny.legacy.pth");
    let zip = dir().join("tiny.zip.pth");
    assert_eq!(
        format_of(&std::fs::read(&legacy).unwrap()),
        Some(Format::Legacy)
    );
    assert_eq!(format_of(&std::fs::read(&zip).unwrap()), Some(Format::Zip));
    let a = load_state_dict(&legacy).unwrap();
    let b = load_state_dict(&zip).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("tiny.json")).unwrap()).unwrap();
    let tensors = want["tensors"].as_object().unwrap();
    let mut keys: Vec<&String> = a.keys().collect();
    keys.sort();
    let mut want_keys: Vec<&String> = tensors.keys().collect();
    want_keys.sort();
    assert_eq!(keys, want_keys);
    for k in want["dropped"].as_array().unwrap() {
        assert!(!a.contains_key(k.as_str().unwrap()), "{k} is not dropped");
    }
    for (k, w) in tensors {
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let vals: Vec<f32> = w["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(values(&a, k), (shape.clone(), vals.clone()), "legacy {k}");
        assert_eq!(values(&b, k), (shape, vals), "zip {k}");
    }
    // spot checks of the layouts, written out
    assert_eq!(values(&a, "shared.tail").1, [2.0, 2.5, 3.0, 3.5]);
    assert_eq!(
        values(&a, "expanded"),
        (vec![3, 2], vec![1.5, -2.0, 1.5, -2.0, 1.5, -2.0])
    );
    assert_eq!(values(&a, "half").1, [0.099975586, -1.5, 65504.0]);
    let (w, wt) = (values(&a, "fc.weight"), values(&a, "fc_t.weight"));
    assert_eq!((w.0.clone(), wt.0.clone()), (vec![3, 8], vec![8, 3]));
    for i in 0..3 {
        for j in 0..8 {
            assert_eq!(w.1[i * 8 + j], wt.1[j * 3 + i]);
        }
    }
    // strided = grid.permute(2, 0, 1)[1:4, 1:, ::2], grid[i][j][k] = (20 i + 5 j + k) / 8
    let (shape, v) = values(&a, "strided");
    assert_eq!(shape, [3, 2, 2]);
    for k in 0..3 {
        for i in 0..2 {
            for j in 0..2 {
                let want = (20 * (i + 1) + 5 * 2 * j + (k + 1)) as f32 / 8.0;
                assert_eq!(v[k * 4 + i * 2 + j], want, "[{k}, {i}, {j}]");
            }
        }
    }
}

#[test]
fn a_real_legacy_release_loads() {
    let Some(p) = std::env::var_os("LTBENCH_EFFNET_LITE0").map(PathBuf::from) else {
        eprintln!("skipped: set LTBENCH_EFFNET_LITE0 to efficientnet-lite0-57934424.pth");
        return;
    };
    let t0 = std::time::Instant::now();
    let sd = load_state_dict(&p).unwrap();
    let dt = t0.elapsed();
    let n: usize = sd.values().map(|t| t.elem_count()).sum();
    eprintln!(
        "{}: {} float tensors, {n} values, loaded in {:.3} s",
        p.display(),
        sd.len(),
        dt.as_secs_f64()
    );
    assert_eq!(
        sd.len(),
        296 - 49,
        "296 keys, 49 num_batches_tracked dropped"
    );
    assert_eq!(n, 4_694_024);
    assert_eq!(sd["_conv_stem.weight"].dims(), [32, 3, 3, 3]);
    assert_eq!(sd["_fc.weight"].dims(), [1000, 1280]);
}
