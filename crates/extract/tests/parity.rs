//! Backbone parity with PyTorch: the fixtures in `tests/fixtures/backbones/` (a copy of
//! `shared/fixtures/backbones/`, so a clean clone tests alone) hold PyTorch outputs
//! (`features`, `logits`, `features_flip`) for weights defined by a hash rule (README there).
//! We rebuild the weights by the rule, run the candle forward and compare to
//! 1e-4 × `feature_abs_max` (resp. `logit_abs_max`).
//!
//! The PyTorch side, per case:
//! ```python
//! sd = {k: rule(k, v.shape, kind(k)) for k, v in model.state_dict().items()}
//! model.load_state_dict(sd); model.eval()
//! x = rule("input", (2, 3, H, W)); f = features(model, x); logits = model.fc(f)
//! f_flip = features(model, torch.flip(x, dims=[3]))
//! ```

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use extract::backbones::{Arch, flip_lr};
use extract::checkpoint::{build_checked, load_state_dict};
use extract::weights::{ParamKind, expected_state_dict, hash_rule};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones");
    assert!(
        dir.join("index.json").is_file(),
        "backbone parity fixtures not found at {} (expected crates/extract/tests/fixtures/backbones)",
        dir.display()
    );
    dir
}

struct Case {
    arch: Arch,
    keys: Vec<String>,
    num_classes: usize,
    feature_abs_max: f32,
    logit_abs_max: f32,
    input_shape: Vec<usize>,
    reference: HashMap<String, Tensor>,
}

fn case(name: &str, arch: Arch) -> Case {
    let dir = fixtures();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let c = &index["cases"][name];
    assert!(c.is_object(), "index.json has no case {name}");
    let reference =
        candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu)
            .unwrap();
    Case {
        arch,
        keys: c["state_dict_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect(),
        num_classes: c["num_classes"].as_u64().unwrap() as usize,
        feature_abs_max: c["feature_abs_max"].as_f64().unwrap() as f32,
        logit_abs_max: c["logit_abs_max"].as_f64().unwrap() as f32,
        input_shape: c["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect(),
        reference,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Compare the candle outputs of `model` with the case's reference; returns relative errors.
fn compare(c: &Case, model: &dyn extract::Backbone) -> [f32; 3] {
    let x = &c.reference["input"];
    assert_eq!(x.dims(), c.input_shape.as_slice());
    let f = model.features(x).unwrap();
    let logits = model.logits(x).unwrap();
    let ff = model.features(&flip_lr(x).unwrap()).unwrap();
    let errs = [
        max_abs_diff(&f, &c.reference["features"]) / c.feature_abs_max,
        max_abs_diff(&logits, &c.reference["logits"]) / c.logit_abs_max,
        max_abs_diff(&ff, &c.reference["features_flip"]) / c.feature_abs_max,
    ];
    eprintln!(
        "{}: relative max error features {:.2e}, logits {:.2e}, features_flip {:.2e}",
        c.arch, errs[0], errs[1], errs[2]
    );
    for (what, e) in ["features", "logits", "features_flip"].iter().zip(errs) {
        assert!(
            e < 1e-4,
            "{}: {what} differ by {e:.3e} of the scale",
            c.arch
        );
    }
    // the compiled CPU inference path, where the architecture has one, to the same bound
    if let Some(fast) = extract::infer::compile(model) {
        let e =
            max_abs_diff(&fast.features(x).unwrap(), &c.reference["features"]) / c.feature_abs_max;
        eprintln!("{}: fast path, relative max error features {e:.2e}", c.arch);
        assert!(e < 1e-4, "{} fast path: features differ by {e:.3e}", c.arch);
    }
    errs
}

/// The compiled inference path of the small CNN (BatchNorm folded, im2col + GEMM) against the
/// candle path, on the committed checkpoint of the default bank (no PyTorch fixture exists for
/// ltbench's own CNN): a seeded batch of 1×28×28 inputs, eval mode, |Δ| ≤ 1e-4 of the feature
/// scale (measured: ~3e-7); training mode is the candle model's.
#[test]
fn small_cnn_fast_path_equals_candle_on_the_committed_checkpoint() {
    let ck = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../features/checkpoints/small-cnn-fmnist-lt-ir100.safetensors");
    let (model, _, _) =
        extract::checkpoint::load_backbone(Arch::SmallCnn, Some(&ck), 0, &Device::Cpu).unwrap();
    let fast = extract::infer::compile(model.as_ref()).expect("the small CNN has a fast path");
    let x = Tensor::randn(0f32, 1.0, (17, 1, 28, 28), &Device::Cpu).unwrap();
    let (a, b) = (model.features(&x).unwrap(), fast.features(&x).unwrap());
    let scale = a
        .abs()
        .unwrap()
        .max_keepdim(0)
        .unwrap()
        .max_keepdim(1)
        .unwrap();
    let scale: f32 = scale.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let e = max_abs_diff(&a, &b) / scale;
    eprintln!("small-cnn fast vs candle: max |Δ| / scale = {e:.2e}");
    assert!(
        e < 1e-4,
        "fast path differs by {e:.3e} of the feature scale"
    );
    assert_eq!(a.dims(), b.dims());
    let (ta, tb) = (
        model.features_t(&x, true).unwrap(),
        fast.features_t(&x, true).unwrap(),
    );
    assert_eq!(
        max_abs_diff(&ta, &tb),
        0.0,
        "training mode is the candle model's"
    );
}

/// The state_dict by the hash rule, built from the keys in index.json (shapes from the model).
fn rule_state_dict(c: &Case) -> HashMap<String, Tensor> {
    let expected = expected_state_dict(c.arch, Some(c.num_classes)).unwrap();
    let ours: HashSet<&str> = expected.iter().map(|(k, _, _)| k.as_str()).collect();
    let theirs: HashSet<&str> = c
        .keys
        .iter()
        .map(String::as_str)
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(
        ours, theirs,
        "{}: model keys differ from PyTorch's state_dict keys",
        c.arch
    );
    expected
        .into_iter()
        .map(|(k, shape, kind)| {
            let t = Tensor::from_vec(hash_rule(&k, &shape, kind), shape, &Device::Cpu).unwrap();
            (k, t)
        })
        .collect()
}

fn check_rule_case(name: &str, arch: Arch) -> [f32; 3] {
    let c = case(name, arch);
    // The input follows the rule too: a check on our reading of it.
    let x = &c.reference["input"];
    let input = Tensor::from_vec(
        hash_rule("input", x.dims(), ParamKind::Input),
        x.dims(),
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        max_abs_diff(&input, x) < 1e-6,
        "input does not follow the hash rule"
    );
    let vb = VarBuilder::from_tensors(rule_state_dict(&c), DType::F32, &Device::Cpu);
    let model = arch.build(Some(c.num_classes), vb).unwrap();
    compare(&c, model.as_ref())
}

#[test]
fn resnet34_cifar_matches_pytorch() {
    check_rule_case("resnet34_cifar", Arch::Resnet34Cifar);
}

#[test]
fn resnet32_ldam_matches_pytorch() {
    check_rule_case("resnet32_ldam", Arch::Resnet32);
}

#[test]
fn resnet50_matches_pytorch() {
    check_rule_case("resnet50", Arch::Resnet50);
}

#[test]
fn resnext50_32x4d_matches_pytorch() {
    check_rule_case("resnext50_32x4d", Arch::Resnext50);
}

#[test]
fn ldam_checkpoint_with_module_prefix_loads_and_matches() {
    let c = case("resnet32_ldam", Arch::Resnet32);
    let path = fixtures().join("resnet32_ldam.ckpt.pth.tar");
    let sd = load_state_dict(&path).unwrap();
    let loaded = build_checked(Arch::Resnet32, sd, &path, &Device::Cpu).unwrap();
    assert_eq!(loaded.num_classes, Some(100));
    compare(&c, loaded.model.as_ref());
}

#[test]
fn plain_state_dict_pt_loads_and_matches() {
    let c = case("resnet32_ldam", Arch::Resnet32);
    let path = fixtures().join("resnet32_ldam.state_dict.pt");
    let loaded = build_checked(
        Arch::Resnet32,
        load_state_dict(&path).unwrap(),
        &path,
        &Device::Cpu,
    )
    .unwrap();
    compare(&c, loaded.model.as_ref());
}

#[test]
fn wrong_arch_reports_missing_unexpected_and_mismatched_keys_by_name() {
    let path = fixtures().join("resnet32_ldam.state_dict.pt");
    let sd = load_state_dict(&path).unwrap();
    let err = match build_checked(Arch::Resnet34Cifar, sd, &path, &Device::Cpu) {
        Ok(_) => panic!("a ResNet-32 checkpoint must not load into a ResNet-34"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("resnet32_ldam.state_dict.pt"), "{err}");
    assert!(
        err.contains("55 missing keys: layer2.0.downsample.0.weight"),
        "{err}"
    );
    assert!(
        err.contains("32 unexpected keys: layer1.3.bn1.bias"),
        "{err}"
    );
    assert!(err.contains("shape mismatches: layer1.0.conv1.weight: checkpoint [16, 16, 3, 3] vs model [64, 64, 3, 3]"), "{err}");
}

#[test]
fn ldam_normed_linear_head_is_left_out_with_a_note() {
    // LDAM with --loss_type LDAM saves NormedLinear: `linear.weight` [64, K], no bias.
    let c = case("resnet32_ldam", Arch::Resnet32);
    let mut sd = rule_state_dict(&c);
    let w = sd
        .remove("linear.weight")
        .unwrap()
        .t()
        .unwrap()
        .contiguous()
        .unwrap();
    sd.remove("linear.bias");
    sd.insert("linear.weight".into(), w);
    let loaded = build_checked(
        Arch::Resnet32,
        sd,
        std::path::Path::new("ldam.pth"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(loaded.num_classes, None);
    assert!(loaded.head_note.unwrap().contains("NormedLinear"));
    let f = loaded.model.features(&c.reference["input"]).unwrap();
    assert!(max_abs_diff(&f, &c.reference["features"]) / c.feature_abs_max < 1e-4);
}

#[test]
fn encoder_prefixed_safetensors_checkpoint_loads() {
    // LTWB saves `encoder.`-prefixed keys; a safetensors copy of them must load unchanged.
    let c = case("resnet34_cifar", Arch::Resnet34Cifar);
    let sd: HashMap<String, Tensor> = rule_state_dict(&c)
        .into_iter()
        .map(|(k, v)| (format!("encoder.{k}"), v))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ltwb.safetensors");
    candle_core::safetensors::save(&sd, &path).unwrap();
    let loaded = build_checked(
        Arch::Resnet34Cifar,
        load_state_dict(&path).unwrap(),
        &path,
        &Device::Cpu,
    )
    .unwrap();
    compare(&c, loaded.model.as_ref());
}
