//! Backbone parity with PyTorch: the fixtures in `tests/fixtures/backbones/` (a copy of
//! `shared/fixtures/backbones/`, so a clean clone tests alone) hold PyTorch outputs
//! (`features`, `logits`, `features_flip`) for weights defined by a hash rule (README there).
//! We rebuild the weights by the rule, run the candle forward and the compiled inference path
//! ([`extract::infer`]) and compare per element, relative to `feature_abs_max` (resp.
//! `logit_abs_max`), to ten times the error measured per backbone ([`bounds`]: 3e-6 to 5e-6 for
//! the features). The inference path is also run as `extract` runs it: batches of 9 and 11
//! images on 2 threads, against PyTorch and against candle ([`batch_path`]).
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
use extract::model::backbones::{Arch, flip_lr};
use extract::model::checkpoint::{build_checked, load_state_dict};
use extract::model::weights::{ParamKind, expected_state_dict, hash_rule};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// The bounds of a backbone, relative to the scale: ten times the largest error measured, over
/// the batch of 2 and the batches of [`batch_path`], rounded up to one digit (measured
/// 2026-12-07 on the 2-core AMD EPYC Zen 3, AVX2; the README quotes these figures).
struct Bounds {
    /// Every feature compared with PyTorch (candle and fast path, features and
    /// features_flip), relative to the fixture's `feature_abs_max`.
    features: f32,
    /// candle's logits against PyTorch's, relative to `logit_abs_max`.
    logits: f32,
    /// The fast path against the candle path on distinct seeded images, relative to the
    /// largest candle feature.
    fast_vs_candle: f32,
}

fn bounds(arch: Arch) -> Bounds {
    let b = |features, logits, fast_vs_candle| Bounds {
        features,
        logits,
        fast_vs_candle,
    };
    match arch {
        // measured: features 3.2e-7 (candle and fast path), logits 2.9e-7, vs candle 4.0e-7
        Arch::Resnet32 => b(4e-6, 3e-6, 5e-6),
        // features 4.4e-7 (fast path; candle 2.8e-7), logits 2.3e-7, vs candle 8.1e-7
        Arch::Resnet34Cifar => b(5e-6, 3e-6, 9e-6),
        // features 2.1e-7 (candle flip; fast path 1.5e-7), logits 6.2e-7, vs candle 1.5e-6
        Arch::Resnet50 => b(3e-6, 7e-6, 2e-5),
        // features 2.4e-7 (candle and fast path), logits 7.1e-7, vs candle 8.3e-7
        Arch::Resnext50 => b(3e-6, 8e-6, 9e-6),
        // no PyTorch fixture; fast vs candle on the committed checkpoint: 4.6e-7
        Arch::SmallCnn => b(f32::NAN, f32::NAN, 5e-6),
        // features 2.8e-7 (candle; fast path 1.8e-7 to 2.8e-7), logits 4.8e-7, vs candle 5.8e-7
        Arch::EfficientnetLite0 => b(3e-6, 5e-6, 6e-6),
    }
}

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
    let b = bounds(c.arch);
    for ((what, e), bound) in ["features", "logits", "features_flip"]
        .iter()
        .zip(errs)
        .zip([b.features, b.logits, b.features])
    {
        assert!(
            e < bound,
            "{}: {what} differ by {e:.3e} of the scale (bound {bound:.0e})",
            c.arch
        );
    }
    // the compiled CPU inference path, where the architecture has one, to the same bound
    if let Some(fast) = extract::infer::compile(model) {
        let bound = b.features;
        let scale = c.feature_abs_max;
        let f = fast.features(x).unwrap();
        let ff = fast.features(&flip_lr(x).unwrap()).unwrap();
        let e = [
            max_abs_diff(&f, &c.reference["features"]) / scale,
            max_abs_diff(&ff, &c.reference["features_flip"]) / scale,
        ];
        eprintln!(
            "{}: fast path, relative max error features {:.2e}, features_flip {:.2e}",
            c.arch, e[0], e[1]
        );
        for (what, e) in ["features", "features_flip"].iter().zip(e) {
            assert!(
                e < bound,
                "{} fast path: {what} differ by {e:.3e} of the scale (bound {bound:.0e})",
                c.arch
            );
        }
    }
    errs
}

/// The compiled inference path of the small CNN (BatchNorm folded, im2col + GEMM) against the
/// candle path, on the committed checkpoint of the default bank (no PyTorch fixture exists for
/// ltbench's own CNN): a seeded batch of 37 1×28×28 inputs and its flip, on 2 threads (tasks
/// of 16 images: 16 + 16 + 5), eval mode; training mode is the candle model's.
#[test]
fn small_cnn_fast_path_equals_candle_on_the_committed_checkpoint() {
    let ck = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../features/checkpoints/small-cnn-fmnist-lt-ir100.safetensors");
    let (model, _, _) =
        extract::model::checkpoint::load_backbone(Arch::SmallCnn, Some(&ck), 0, &Device::Cpu)
            .unwrap();
    let fast = extract::infer::compile(model.as_ref()).expect("the small CNN has a fast path");
    let x = seeded_input(11, (37, 1, 28, 28));
    let e = on_two_threads(|| fast_vs_candle(model.as_ref(), fast.as_ref(), &x));
    eprintln!(
        "small-cnn fast vs candle: max |Δ| / scale = {:.2e} (features), {:.2e} (features_flip)",
        e[0], e[1]
    );
    for (what, e) in ["features", "features_flip"].iter().zip(e) {
        assert!(
            e < bounds(Arch::SmallCnn).fast_vs_candle,
            "{what}: the fast path differs by {e:.3e} of the feature scale"
        );
    }
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
fn efficientnet_lite0_matches_pytorch() {
    check_rule_case("efficientnet_lite0", Arch::EfficientnetLite0);
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
    // the way out comes first, before the key report
    assert!(err.starts_with("pass --arch resnet32: "), "{err}");
    assert!(
        err.contains("has the keys of resnet32, not of `resnet34-cifar`"),
        "{err}"
    );
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
    assert!(
        max_abs_diff(&f, &c.reference["features"]) / c.feature_abs_max
            < bounds(Arch::Resnet32).features
    );
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

// ---- the inference path as `extract` runs it -------------------------------------------------

/// A seeded input of `shape`, N(0, 1) (SplitMix64 + Box–Muller): the same on every run.
fn seeded_input(seed: u64, shape: (usize, usize, usize, usize)) -> Tensor {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (u, v) = (1.0 - next(), next());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `f` on a pool of 2 threads, as `extract` runs on this project's 2-core machines (the fast
/// path sizes its tasks by `rayon::current_num_threads()`).
fn on_two_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(f)
}

/// The fast path against the candle path on the batch `x` and on its flip: max |Δ| over the
/// batch, relative to the largest candle feature.
fn fast_vs_candle(
    model: &dyn extract::Backbone,
    fast: &dyn extract::Backbone,
    x: &Tensor,
) -> [f32; 2] {
    let xf = flip_lr(x).unwrap();
    let (a, b) = (model.features(x).unwrap(), fast.features(x).unwrap());
    let (af, bf) = (model.features(&xf).unwrap(), fast.features(&xf).unwrap());
    let scale = a.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let scale = scale.to_scalar::<f32>().unwrap();
    [max_abs_diff(&a, &b) / scale, max_abs_diff(&af, &bf) / scale]
}

/// Which fixture image (0 or 1) each row of a fixture batch holds: both at even and odd rows,
/// at the start and end of every task, so that rows mixed up between images or tasks show.
const PATTERN: [u32; 11] = [0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1];

/// D1 of the second test audit: the compiled ResNets as `extract` runs them. `FastResNet` runs
/// `per_task = ceil(B / threads).clamp(G, 8·G)` images a task; with more than G (`group`)
/// images in a task it runs the stem and the large-map blocks group by group, gathers the
/// groups into `late` and runs the small-map blocks (maps ≤ 8×8) on all of them at once. On 2
/// threads (as here) the batches below give tasks larger than G: CIFAR nets (G = 4) with
/// B = 11: per_task = 6, tasks of 6 and 5 images (groups 4 + 2 and 4 + 1, both gathered);
/// ResNet-50 / ResNeXt-50 (G = 1) with B = 9: per_task = 5, tasks of 5 and 4 one-image groups.
/// The PyTorch fixtures have 2 images, so the batch repeats them ([`PATTERN`]) and every row
/// is compared with PyTorch's features (and the flipped batch with `features_flip`); a batch
/// of `batch` distinct seeded images at `side`² (ImageNet nets: 64², where layer2–4 are the
/// small-map blocks) is compared with the candle path. Returns the relative errors: fixture
/// features, fixture flip, candle features, candle flip.
fn batch_path(name: &str, arch: Arch, batch: usize, side: usize) -> [f32; 4] {
    let c = case(name, arch);
    let vb = VarBuilder::from_tensors(rule_state_dict(&c), DType::F32, &Device::Cpu);
    let model = arch.build(Some(c.num_classes), vb).unwrap();
    let fast = extract::infer::compile(model.as_ref()).expect("a fast path");
    // a compiled ResNet runs groups of G images; EfficientNet one image at a time
    let group = match fast
        .as_any()
        .downcast_ref::<extract::infer::resnet::FastResNet>()
    {
        Some(r) => r.group,
        None => {
            let effnet = fast.as_any();
            assert!(effnet.is::<extract::infer::efficientnet::FastEfficientNet>());
            1
        }
    };
    assert!(
        batch.div_ceil(2).clamp(group, 8 * group) > group,
        "{arch}: batch {batch} on 2 threads never gathers groups of {group}"
    );
    let idx = Tensor::new(&PATTERN[..batch], &Device::Cpu).unwrap();
    let x = c.reference["input"].index_select(&idx, 0).unwrap();
    let want = c.reference["features"].index_select(&idx, 0).unwrap();
    let want_flip = c.reference["features_flip"].index_select(&idx, 0).unwrap();
    let distinct = seeded_input(batch as u64 * 1000 + side as u64, (batch, 3, side, side));
    let (f, ff, vs) = on_two_threads(|| {
        let f = fast.features(&x).unwrap();
        let ff = fast.features(&flip_lr(&x).unwrap()).unwrap();
        (
            f,
            ff,
            fast_vs_candle(model.as_ref(), fast.as_ref(), &distinct),
        )
    });
    let e = [
        max_abs_diff(&f, &want) / c.feature_abs_max,
        max_abs_diff(&ff, &want_flip) / c.feature_abs_max,
        vs[0],
        vs[1],
    ];
    eprintln!(
        "{arch} fast path, batch {batch} on 2 threads: vs PyTorch {:.2e} (features), {:.2e} (flip); vs candle at {side}² {:.2e} (features), {:.2e} (flip)",
        e[0], e[1], e[2], e[3]
    );
    let b = bounds(arch);
    for ((what, e), bound) in [
        "PyTorch features",
        "PyTorch features_flip",
        "candle features",
        "candle features_flip",
    ]
    .iter()
    .zip(e)
    .zip([b.features, b.features, b.fast_vs_candle, b.fast_vs_candle])
    {
        assert!(
            e < bound,
            "{arch} fast path, batch {batch}: {what} differ by {e:.3e} of the scale (bound {bound:.0e})"
        );
    }
    e
}

#[test]
fn resnet32_batch_path_matches_pytorch_and_candle() {
    batch_path("resnet32_ldam", Arch::Resnet32, 11, 32);
}

#[test]
fn resnet34_cifar_batch_path_matches_pytorch_and_candle() {
    batch_path("resnet34_cifar", Arch::Resnet34Cifar, 11, 32);
}

#[test]
fn resnet50_batch_path_matches_pytorch_and_candle() {
    batch_path("resnet50", Arch::Resnet50, 9, 64);
}

#[test]
fn resnext50_batch_path_matches_pytorch_and_candle() {
    batch_path("resnext50_32x4d", Arch::Resnext50, 9, 64);
}

/// EfficientNet-Lite0's compiled path as `extract` runs it: on 2 threads a batch of 9 gives
/// tasks of 5 and 4 images, each run image by image through the blocks of large maps and
/// gathered for the 14×14 and 7×7 blocks; 9 distinct images at 96² against the candle path
/// (the stem's "same" padding fixed for 224 applied to a 96 input, as the package does).
#[test]
fn efficientnet_lite0_batch_path_matches_pytorch_and_candle() {
    batch_path("efficientnet_lite0", Arch::EfficientnetLite0, 9, 96);
}

/// Fashion-MNIST shown to an ImageNet network: two 28×28 grey images (pixels by the rule of
/// the fixture script) through `present_chw` against PyTorch's `ToTensor`,
/// `F.interpolate(size=224, mode="bilinear", align_corners=False)`, 3-channel repeat and
/// ImageNet `Normalize` (`scripts/efficientnet_lite0_fixtures.py`).
#[test]
fn fmnist_at_224_is_pytorchs_bilinear_interpolate() {
    use extract::source::datasets::{Normalize, Present};
    let t =
        candle_core::safetensors::load(fixtures().join("fmnist_at_224.safetensors"), &Device::Cpu)
            .unwrap();
    let px: Vec<u8> = t["pixels"].flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = t["input"].flatten_all().unwrap().to_vec1().unwrap();
    let present = Present {
        side: 224,
        channels: 3,
    };
    let mut got = Vec::new();
    for img in px.chunks_exact(28 * 28) {
        extract::source::transform::present_chw(
            img,
            (1, 28, 28),
            present,
            &Normalize::imagenet(),
            &mut got,
        );
    }
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("fmnist at 224: max |Δ| = {err:.2e} (values up to 2.6)");
    assert!(err < 6e-6, "max |Δ| = {err}");
}
