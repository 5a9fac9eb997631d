//! Parity of the zoo rows with their SOURCES: `fixtures/zoo-trajectories.*` are written by
//! `scripts/zoo_parity.py`, which re-implements every row from its source repository's code
//! (each constant and step with its file:line: GCLLoss, cvpods' DisAlignLinear, Decoupling's
//! KNNClassifier and cRT loop, MiSLAS, LIFT, VS-Loss, LADE, BagofTricks-LT), in PyTorch 2.15, f64,
//! on the tiny bank and `head_init` of `tiny-trajectories.safetensors` (K = 4, D = 8, counts
//! 60/35/17/8, batch 16 in file order, 3 epochs, SGD lr 0.1 / momentum 0.9 / wd 5e-4, cosine
//! per epoch stepped after the epoch; cRT with its own recipe). The rows under test are the
//! ones `retrain` runs: the embedded `baselines/zoo.toml`, with only the fixture's protocol
//! and file order (instance-balanced) put in, so a constant of the TOML that is not its
//! source's fails here. Checked: every minibatch loss, the trained parameters, the test
//! logits and top-1; NCM's centroids and logits; one GCL loss and gradient with a stored
//! noise draw (`gcl-step`); the per-class constants. The prior corrections of
//! `--prior-correct` are checked against `fixtures/prior-correct-reference.json`, written by
//! `scripts/prior_correct_reference.py` from LADE's test-time rule.
//!
//! Tolerances, |got − want| ≤ rel·max(1, |want|): 2e-6 on losses, 3e-6 on parameters and
//! gradients, 1e-5 on test logits (an f32 engine against f64), 1e-12 on the f64 constants.

use bank::{Features, Split};
use retrain::engine::head::{HeadState, StepBuffers, backward, forward};
use retrain::engine::linalg::Parallelism;
use retrain::engine::loss::weights::{self, log_priors};
use retrain::engine::loss::{LossFn, dec};
use retrain::engine::sampler::class_probabilities;
use retrain::engine::trainer::{TrainOptions, train};
use retrain::eval::priors::{TestPrior, corrected_eval_head, prior_shift};
use retrain::method::table::MethodTable;
use retrain::method::{
    Head, Hyper, HyperSpec, Init, LasShape, Loss, Method, MethodSpec, NcmDistance, NcmFeatures,
    PostHoc, Reweight, Sampler, Schedule,
};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

const K: usize = 4;
const D: usize = 8;
// Tolerances, f32 engine vs f64 PyTorch, each about 5× the worst error seen over all rows
// (losses 2.7e-7 (drw); parameters 4.7e-7 (gcl-step ∂W, gcl W); logits 2.2e-6 (gcl's 30·cos)).
/// Every step loss, and the gcl-step loss.
const LOSS_REL: f64 = 2e-6;
/// Trained parameters and gradients.
const PARAM_REL: f64 = 3e-6;
/// Test logits.
const LOGIT_REL: f64 = 1e-5;
/// The per-class constants (f64 on both sides).
const CONST_REL: f64 = 1e-12;

struct Fixture {
    bank: Vec<u8>,
    zoo: Vec<u8>,
    json: Value,
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|_| panic!("fixture {f}"));
        Fixture {
            bank: read("tiny-trajectories.safetensors"),
            zoo: read("zoo-trajectories.safetensors"),
            json: serde_json::from_slice(&read("zoo-trajectories.json")).unwrap(),
        }
    })
}

impl Fixture {
    /// An F64 tensor of the zoo file (`None` when absent).
    fn zoo(&self, name: &str) -> Option<Vec<f64>> {
        f64s(&self.zoo, name)
    }
    fn zoo_req(&self, name: &str) -> Vec<f64> {
        self.zoo(name)
            .unwrap_or_else(|| panic!("zoo tensor {name}"))
    }
    fn bank_f32(&self, name: &str) -> Vec<f32> {
        let v = f64s(&self.bank, name).unwrap_or_else(|| panic!("bank tensor {name}"));
        v.iter().map(|&v| v as f32).collect()
    }
    fn split(&self, which: &str) -> Split {
        let st = SafeTensors::deserialize(&self.bank).unwrap();
        let labels: Vec<u32> = st
            .tensor(&format!("{which}.labels"))
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect();
        Split {
            path: which.into(),
            rows: labels.len(),
            dim: D,
            features: Features::Owned(self.bank_f32(&format!("{which}.features"))),
            features_flip: None,
            labels,
        }
    }
    fn row(&self, name: &str) -> &Value {
        &self.json["methods"][name]
    }
    fn head_init(&self, kind: Head) -> HeadState {
        let w = self.bank_f32("head_init.weight");
        HeadState::from_linear(kind, K, D, w, self.bank_f32("head_init.bias"))
    }
}

fn f64s(bytes: &[u8], name: &str) -> Option<Vec<f64>> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let le = |c: &[u8]| f64::from_le_bytes(c.try_into().unwrap());
    Some(
        st.tensor(name)
            .ok()?
            .data()
            .chunks_exact(8)
            .map(le)
            .collect(),
    )
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Per element: |got − want| ≤ rel · max(1, |want|) (absolute near 0, relative above 1).
fn close(got: &[f32], want: &[f64], rel: f64, what: &str) {
    let got: Vec<f64> = got.iter().map(|&g| g as f64).collect();
    close64(&got, want, rel, what);
}

fn close64(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let bound = rel * w.abs().max(1.0);
        assert!(
            err <= bound,
            "{what}[{i}]: got {g}, PyTorch {w} (err {err:.2e} > {bound:.2e})"
        );
    }
}

fn counts() -> Vec<usize> {
    let c = fx().split("train").class_counts(K);
    assert_eq!(c, vec![60, 35, 17, 8]);
    c
}

/// The fixture's protocol: lr 0.1, momentum 0.9, wd 5e-4, batch 16, 3 epochs, cosine-epoch.
fn protocol() -> Hyper {
    Hyper {
        lr: 0.1,
        wd: 5e-4,
        momentum: 0.9,
        epochs: 3,
        batch_size: 16,
        init: Init::Stage1,
        schedule: Schedule::CosineEpoch,
    }
}

/// The row `name` of the embedded zoo table as `retrain` runs it, in file order
/// (instance-balanced: the samplers are checked by their probabilities), with the fixture's
/// protocol — except cRT, whose recipe is part of the row — and `edit` applied.
fn zoo_row(name: &str, edit: impl FnOnce(&mut MethodSpec)) -> Method {
    let table = MethodTable::embedded();
    let mut spec = (table.methods.iter().find(|m| m.name == name))
        .unwrap_or_else(|| panic!("zoo row {name}"))
        .clone();
    spec.sampler = Sampler::InstanceBalanced;
    if name != "crt" {
        spec.hyper = HyperSpec::default();
    }
    spec.hyper.init = Some(Init::Stage1);
    edit(&mut spec);
    spec.check(&protocol()).unwrap()
}

/// Test logits of `head` (no post-hoc rule) against `<name>.test_logits`, and their top-1.
fn check_test_logits(head: &HeadState, name: &str) {
    let test = fx().split("test");
    let mut z = vec![0.0; test.rows * K];
    let eval = head.eval_head(PostHoc::None, &log_priors(&counts()));
    let (x, rows) = (test.features(), test.rows);
    eval.logits(x, rows, &mut z, &mut Vec::new(), Parallelism::None);
    let want = fx().zoo_req(&format!("{name}.test_logits"));
    close(&z, &want, LOGIT_REL, &format!("{name} test logits"));
    let argmax = |r: &[f32]| (0..K).fold(0, |m, c| if r[c] > r[m] { c } else { m });
    let hits = (z.chunks_exact(K).zip(&test.labels))
        .filter(|(r, y)| argmax(r) == **y as usize)
        .count();
    let top1 = fx().row(name)["test_top1"].as_f64().unwrap();
    let want_hits = (top1 * rows as f64).round() as usize;
    assert_eq!(hits, want_hits, "{name} test top-1");
}

/// Train `method` (fixture row `name`) from `init` in file order and compare every step
/// loss, the trained parameters (one the fixture does not hold is frozen in PyTorch: it must
/// still equal `init`'s), the test logits and the test top-1; returns the trained head.
fn check_row(name: &str, method: &Method, init: HeadState) -> HeadState {
    let method = method.clone();
    assert_eq!(method.head, init.kind, "{name}: head kind");
    let opts = TrainOptions {
        shuffle: false,
        record_steps: true,
        par: Parallelism::None,
        views: None,
        cancel: None,
    };
    let (split, counts) = (fx().split("train"), counts());
    let out = train(&split, &counts, init.clone(), &method, 0, &opts, |_, _| {});
    let want = floats(&fx().row(name)["losses"]);
    assert_eq!(out.step_loss.len(), want.len(), "{name}: steps");
    close64(&out.step_loss, &want, LOSS_REL, &format!("{name} losses"));

    let t = |s: &str| fx().zoo(&format!("{name}.{s}"));
    let h = &out.head;
    let scales = t("scales").or_else(|| t("scale"));
    let gate = t("gate_weight")
        .zip(t("gate_bias"))
        .map(|(v, c)| [v, c].concat());
    let fields: [(&str, &[f32], &[f32], Option<Vec<f64>>); 5] = [
        ("weight", &h.weight, &init.weight, t("weight")),
        ("bias", &h.bias, &init.bias, t("bias")),
        ("scales", &h.scales, &init.scales, scales),
        ("shift", &h.shift, &init.shift, t("shift")),
        ("gate", &h.gate, &init.gate, gate),
    ];
    for (field, got, start, want) in fields {
        match want {
            Some(w) => close(got, &w, PARAM_REL, &format!("{name} {field}")),
            None => assert_eq!(got, start, "{name} {field}: frozen in PyTorch"),
        }
    }
    check_test_logits(h, name);
    out.head
}

/// cRT under `--recipe source`, with the row's own optimiser settings taken away first (as if
/// the row said only what the LOS protocol does): the recipe alone must bring back
/// Decoupling's lr 0.2, wd 5e-4, 10 epochs and the schedule stepped at the epoch's start
/// (`cls_crt.yaml:15,34`, `run_networks.py:255`), and the trajectory is the fixture's.
#[test]
fn crt_under_recipe_source_matches_decoupling() {
    let table = MethodTable::embedded();
    let mut spec = table
        .methods
        .iter()
        .find(|m| m.name == "crt")
        .unwrap()
        .clone();
    spec.hyper = HyperSpec::default();
    let mut spec = spec.with_recipe(retrain::method::Recipe::Source).unwrap();
    spec.sampler = Sampler::InstanceBalanced;
    spec.hyper.init = Some(Init::Stage1);
    let m = spec.check(&protocol()).unwrap();
    assert!(!m.tta, "Decoupling evaluates one forward per image");
    check_row("crt", &m, fx().head_init(m.head));
}

/// One `#[test]` per zoo row trained from `head_init`: test name, row name.
macro_rules! rows {
    ($($test:ident: $name:literal;)*) => {$(
        #[test]
        fn $test() {
            let method = zoo_row($name, |_| {});
            check_row($name, &method, fx().head_init(method.head));
        }
    )*};
}

rows! {
    crt_matches_decoupling: "crt";
    las_matches_mislas: "las";
    mislas_matches_mislas_two_groups: "mislas";
    cdt_matches_bagoftricks: "cdt";
    vs_matches_vs_loss: "vs";
    la_loss_matches_pytorch: "la-loss";
    cs_ce_matches_bagoftricks: "cs-ce";
    drw_matches_pytorch: "drw";
    lade_matches_lade: "lade";
    bal_bce_matches_pytorch: "bal-bce";
}

/// la-loss at τ = 0.5 (the row with τ changed, as `--tau 0.5` does).
#[test]
fn la_loss_tau_half_matches_pytorch() {
    let m = zoo_row("la-loss", |s| s.loss = Loss::BalancedSoftmax { tau: 0.5 });
    check_row("la-loss-tau0.5", &m, fx().head_init(m.head));
}

/// DisAlign as cvpods' DisAlignLinear: s = 1, t = 0, v = 0.1, c the fixture's draw; ρ = 1.2.
fn disalign_trained() -> HeadState {
    let m = zoo_row("disalign", |_| {});
    let mut init = fx().head_init(m.head);
    assert!(init.gate[..D].iter().all(|&v| v == 0.1) && init.scales.iter().all(|&s| s == 1.0));
    init.gate[D] = fx().zoo_req("disalign.gate_bias_init")[0] as f32;
    check_row("disalign", &m, init)
}

#[test]
fn disalign_matches_cvpods() {
    disalign_trained();
}

/// GCL's trajectory with the noise off (noise_mul 0; `gcl-step` checks the noisy loss).
#[test]
fn gcl_without_noise_matches_gclloss() {
    let m = zoo_row("gcl", |s| {
        if let Loss::Gcl { noise_mul, .. } = &mut s.loss {
            *noise_mul = 0.0;
        }
    });
    check_row("gcl", &m, fx().head_init(m.head));
}

/// The mean row norm of `head_init` (LIFT's radius for the class-mean head).
fn head_init_radius() -> f32 {
    let w0 = fx().bank_f32("head_init.weight");
    let norms = w0
        .chunks_exact(D)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt());
    norms.sum::<f32>() / K as f32
}

/// LIFT's head: rows μ_c/‖μ_c‖ at head_init's mean row norm, b = 0; then plain CE.
#[test]
fn class_mean_init_matches_pytorch() {
    let (fx, split, radius) = (fx(), fx().split("train"), head_init_radius());
    let want = fx.row("class-mean-init")["radius"].as_f64().unwrap();
    close(&[radius], &[want], PARAM_REL, "class-mean-init radius");
    let init = HeadState::class_mean(Head::Linear, K, split.features(), &split.labels, radius);
    let want = fx.zoo_req("class-mean-init.weight_init");
    close(&init.weight, &want, PARAM_REL, "weight_init");
    let m = zoo_row("class-mean-init", |s| s.hyper.init = Some(Init::ClassMean));
    check_row("class-mean-init", &m, init);
}

/// NCM as Decoupling's defaults (cl2n + l2, the zoo row), and the l2n + cos variant.
#[test]
fn ncm_matches_decoupling() {
    let (fx, split) = (fx(), fx().split("train"));
    let Head::Ncm { features, distance } = zoo_row("ncm", |_| {}).head else {
        panic!("the ncm row has an ncm head");
    };
    let head = HeadState::ncm(features, distance, K, split.features(), &split.labels);
    close(&head.center, &fx.zoo_req("ncm.mean"), PARAM_REL, "ncm mean");
    close(
        &head.weight,
        &fx.zoo_req("ncm.centroids"),
        PARAM_REL,
        "ncm centroids",
    );
    check_test_logits(&head, "ncm");
    let cos = HeadState::ncm(
        NcmFeatures::L2n,
        NcmDistance::Cos,
        K,
        split.features(),
        &split.labels,
    );
    let want = fx.zoo_req("ncm-l2n-cos.centroids");
    close(&cos.weight, &want, PARAM_REL, "ncm-l2n-cos centroids");
    check_test_logits(&cos, "ncm-l2n-cos");
}

/// One GCL loss and gradient (the zoo row: s = 20, m = 0.1, noise_mul = 0.5, focal γ = 1) at
/// head_init on rows 0..15 with the stored ε (clamped, signed): ν_ic = |ε_ic|·s·noise_mul·σ_c.
/// The fixture's `grad_logits` is ∂loss/∂cos / 20, i.e. ∂loss/∂z for z = 20·cos.
#[test]
fn gcl_step_with_fixed_noise_matches_gclloss() {
    let fx = fx();
    let method = zoo_row("gcl", |_| {});
    let (Head::Cosine { scale }, Loss::Gcl { noise_mul, .. }) = (method.head, method.loss) else {
        panic!("gcl: a cosine head and the gcl loss");
    };
    let (head, b) = (fx.head_init(method.head), 16);
    let (l, mut buf) = gcl_step(&method, scale, noise_mul, &head);
    let want = fx.row("gcl-step")["loss"].as_f64().unwrap();
    close64(&[l], &[want], LOSS_REL, "gcl-step loss");
    let want = fx.zoo_req("gcl-step.grad_logits");
    close(&buf.g, &want, PARAM_REL, "gcl-step ∂loss/∂z");
    backward(&head, &mut buf, b, Parallelism::None);
    let want = fx.zoo_req("gcl-step.grad_weight");
    close(&buf.dw, &want, PARAM_REL, "gcl-step ∂loss/∂W");
}

/// One GCL loss and gradient on train rows 0..15 at `head` with the fixture's stored noise draw
/// ε (clamped, signed): ν_ic = |ε_ic|·s·noise_mul·σ_c. Returns the loss and the buffers (the
/// gradient in `g`).
fn gcl_step(method: &Method, scale: f32, noise_mul: f32, head: &HeadState) -> (f64, StepBuffers) {
    let (fx, counts) = (fx(), counts());
    let (b, split) = (16, fx.split("train"));
    let mut buf = StepBuffers::new(b, K, D);
    buf.xb.copy_from_slice(&split.features()[..b * D]);
    buf.yb.copy_from_slice(&split.labels[..b]);
    forward(head, &mut buf, b, Parallelism::None);
    let sigma = weights::gcl_sigma(&counts);
    let f = (scale * noise_mul) as f64;
    let eps = fx.zoo_req("gcl-step.noise");
    let noise = eps.iter().enumerate();
    let noise = noise.map(|(j, e)| (e.abs() * f * sigma[j % K]) as f32);
    let mut loss = LossFn::for_method(method, &counts);
    loss.set_noise(noise.collect());
    let l = loss.loss_and_grad(&buf.z[..b * K], &buf.yb, &mut buf.g[..b * K]);
    (l, buf)
}

/// GCL's loss with class weights (the source's `GCLLoss(weight=...)`): the weight is inside the
/// focal factor, p_i = exp(−w_{y_i}·CE_i), and the mean is over the B rows (`losses.py:9-13,
/// 81`), against `scripts/gcl_weighted_reference.py` (numpy, f64) on the `gcl-step` rows and
/// noise, with cs-ce's weights n_min/n_c.
#[test]
fn gcl_with_class_weights_matches_gclloss() {
    let (fx, counts) = (fx(), counts());
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gcl-weighted-reference.json");
    let r: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let method = zoo_row("gcl", |s| {
        s.reweight = Reweight::Power {
            gamma: 1.0,
            from: 0.0,
        }
    });
    let (Head::Cosine { scale }, Loss::Gcl { noise_mul, .. }) = (method.head, method.loss) else {
        panic!("gcl: a cosine head and the gcl loss");
    };
    let w = weights::power_weights(&counts, 1.0);
    close64(&w, &floats(&r["weights"]), CONST_REL, "cs-ce weights");
    let b = 16;
    let (l, buf) = gcl_step(&method, scale, noise_mul, &fx.head_init(method.head));
    close64(
        &[l],
        &[r["loss"].as_f64().unwrap()],
        LOSS_REL,
        "weighted gcl loss",
    );
    close(
        &buf.g[..b * K],
        &floats(&r["grad_logits"]),
        PARAM_REL,
        "weighted gcl ∂loss/∂z",
    );
}

/// The per-class constants, engine (f64) against PyTorch (f64).
#[test]
fn zoo_constants_match_pytorch() {
    let (fx, n) = (fx(), counts());
    let las = |shape| weights::las_smoothing(&n, 0.4, 0.1, shape, 3.0);
    let tau_log_pi = |t: f64| log_priors(&n).iter().map(|v| t * v).collect::<Vec<_>>();
    let probs = |kind| class_probabilities(kind, &n, 0, 1);
    // the zoo rows' constants, as retrain runs them
    let Loss::Vs {
        gamma: vs_gamma,
        tau: vs_tau,
    } = zoo_row("vs", |_| {}).loss
    else {
        panic!("vs loss");
    };
    let Reweight::Prior { rho, .. } = zoo_row("disalign", |_| {}).reweight else {
        panic!("disalign re-weighting");
    };
    // the engine multiplies the training logits by 1/a_c
    let a: Vec<f64> = weights::cdt_scales(&n, 0.2)
        .iter()
        .map(|s| 1.0 / s)
        .collect();
    // JSON pointer under `methods`, engine value
    let cases = [
        ("/las/eps/concave", las(LasShape::Concave)),
        ("/las/eps/linear", las(LasShape::Linear)),
        ("/las/eps/convex", las(LasShape::Convex)),
        ("/las/eps/exp", las(LasShape::Exp)),
        ("/mislas/eps", las(LasShape::Concave)),
        ("/cdt/a", a),
        ("/vs/delta", weights::vs_scales(&n, dec(vs_gamma))),
        ("/vs/iota", tau_log_pi(dec(vs_tau))),
        ("/la-loss/adjust", tau_log_pi(1.0)),
        ("/la-loss-tau0.5/adjust", tau_log_pi(0.5)),
        ("/bal-bce/adjust", weights::bal_bce_offsets(&n)),
        ("/cs-ce/w", weights::power_weights(&n, 1.0)),
        ("/drw/w", weights::class_balanced_weights(&n, 0.9999)),
        ("/disalign/w", weights::prior_weights(&n, dec(rho))),
        ("/gcl/sigma", weights::gcl_sigma(&n)),
        ("/sqrt-sampling/class_probs", probs(Sampler::SquareRoot)),
        (
            "/effective-number/class_probs",
            probs(Sampler::EffectiveNumber),
        ),
    ];
    for (at, got) in cases {
        let want = fx.json["methods"]
            .pointer(at)
            .unwrap_or_else(|| panic!("{at}"));
        close64(&got, &floats(want), CONST_REL, at);
    }
    let prog = fx.row("progressive");
    let epochs = prog["epochs"].as_u64().unwrap() as usize;
    let per_epoch = prog["class_probs"].as_array().unwrap();
    assert_eq!(per_epoch.len(), epochs);
    for (e, want) in per_epoch.iter().enumerate() {
        let got = class_probabilities(Sampler::Progressive, &n, e, epochs);
        close64(&got, &floats(want), CONST_REL, &format!("progressive e{e}"));
    }
}

/// `scripts/prior_correct_reference.py`'s output: LADE's test-time prior rule
/// (`run_networks.py:594-599`) applied to the fixtures' test logits of every row.
fn prior_reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/prior-correct-reference.json");
        serde_json::from_slice(&std::fs::read(p).expect("prior-correct-reference.json")).unwrap()
    })
}

/// The test priors of the reference, parsed.
fn reference_priors() -> Vec<(String, TestPrior, Vec<f64>)> {
    let r = prior_reference();
    r["priors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, q)| (name.clone(), name.parse().unwrap(), floats(q)))
        .collect()
}

/// Argmax per test row, counted per class where it is the label.
fn correct_per_class(z: &[f64], labels: &[u32]) -> Vec<f64> {
    let mut correct = vec![0.0; K];
    for (r, &y) in z.chunks_exact(K).zip(labels) {
        let top = (0..K).fold(0, |m, c| if r[c] > r[m] { c } else { m });
        if top == y as usize {
            correct[y as usize] += 1.0;
        }
    }
    correct
}

/// Every row's declared `logit_prior` is the branch LADE's rule puts it on (decided in the
/// reference from what the row trains with, not from the TOML), and `--prior-correct`'s shift
/// (log q − log p̂, [`prior_shift`]) on the fixtures' test logits of each row gives LADE's
/// predictions at five test priors: the shift equals the reference's up to a constant per
/// prior (LADE adds log q alone on its balanced branch), the per-class counts exactly.
#[test]
fn prior_corrections_follow_lades_rule_on_every_row() {
    let (r, n) = (prior_reference(), counts());
    let table = MethodTable::embedded();
    let lp = log_priors(&n);
    let rows = r["rows"].as_object().unwrap();
    assert_eq!(
        rows.len(),
        table.methods.len(),
        "a row of the tables is missing"
    );
    let test = fx().split("test");
    let mut with_logits = 0;
    for spec in &table.methods {
        let want = &rows
            .get(&spec.name)
            .unwrap_or_else(|| panic!("{} not in the reference", spec.name));
        let declared = spec.logit_prior.expect("declared").name();
        assert_eq!(
            declared, want["logit_prior"],
            "{}: declared {declared}, LADE's rule says {} (trains with {})",
            spec.name, want["logit_prior"], want["trains_with"]
        );
        if want.get("shift").is_none() {
            continue;
        }
        with_logits += 1;
        let z = match fx().zoo(&format!("{}.test_logits", spec.name)) {
            Some(z) => z,
            None => match f64s(&fx().bank, &format!("{}.test_logits", spec.name)) {
                Some(z) => z,
                None => reference_logits(&spec.name),
            },
        };
        let prior = spec.logit_prior.unwrap();
        for (name, p, q) in reference_priors() {
            let mine = p.weights(&n);
            close64(&mine, &q, CONST_REL, &format!("{name} q"));
            let log_q: Vec<f64> = mine.iter().map(|v| v.ln()).collect();
            let shift = prior_shift(prior, &lp, &log_q);
            let ref_shift = floats(&want["shift"][name.as_str()]);
            let offset = shift[0] as f64 - ref_shift[0];
            for c in 0..K {
                assert!(
                    (shift[c] as f64 - ref_shift[c] - offset).abs() < 1e-6,
                    "{} at {name}: shift {shift:?}, LADE's {ref_shift:?}",
                    spec.name
                );
            }
            let corrected: Vec<f64> = z
                .chunks_exact(K)
                .flat_map(|row| row.iter().zip(&shift).map(|(a, s)| a + *s as f64))
                .collect();
            assert_eq!(
                correct_per_class(&corrected, &test.labels),
                floats(&want["correct"][name.as_str()]),
                "{} at {name}: correct per class",
                spec.name
            );
        }
    }
    assert_eq!(with_logits, 22);
}

/// The three rows whose test logits the reference computes from the stage-1 head itself.
fn reference_logits(name: &str) -> Vec<f64> {
    let head = fx().head_init(Head::Linear);
    let table = MethodTable::embedded();
    let row = table.methods.iter().find(|m| m.name == name).unwrap();
    test_logits(&head.eval_head(row.posthoc, &log_priors(&counts())))
}

/// The test split's logits of an inference head, in f64.
fn test_logits(eval: &retrain::engine::head::EvalHead) -> Vec<f64> {
    let test = fx().split("test");
    let mut z = vec![0.0f32; test.rows * K];
    eval.logits(
        test.features(),
        test.rows,
        &mut z,
        &mut Vec::new(),
        Parallelism::None,
    );
    z.iter().map(|&v| v as f64).collect()
}

/// The engine's corrected heads keep each row's method (τ-norm's normalisation, logit
/// adjustment, PC-softmax, DisAlign's gate) and add the shift after it: their predictions at
/// every reference prior are LADE's, and at a uniform prior a balanced row's are its own.
#[test]
fn corrected_heads_keep_each_rows_method() {
    let (r, n) = (prior_reference(), counts());
    let lp = log_priors(&n);
    let table = MethodTable::embedded();
    let row = |name: &str| table.methods.iter().find(|m| m.name == name).unwrap();
    let test = fx().split("test");
    let stage1 = fx().head_init(Head::Linear);
    let disalign = disalign_trained();
    let cases = [
        ("stage1", &stage1),
        ("tau-norm", &stage1),
        ("logit-adjust", &stage1),
        ("prior-correct", &stage1),
        ("disalign", &disalign),
    ];
    for (name, head) in cases {
        let m = row(name);
        for (pname, p, _) in reference_priors() {
            let log_q: Vec<f64> = p.weights(&n).iter().map(|v| v.ln()).collect();
            let eval = corrected_eval_head(head, m.posthoc, m.logit_prior.unwrap(), &lp, &log_q);
            let z = test_logits(&eval);
            let want = &r["rows"][name];
            assert_eq!(
                correct_per_class(&z, &test.labels),
                floats(&want["correct"][pname.as_str()]),
                "{name} at {pname}"
            );
            if pname == "uniform" && want["logit_prior"] == "balanced" {
                assert_eq!(
                    floats(&want["correct"]["uniform"]),
                    floats(&want["correct_uncorrected"]),
                    "{name}: a balanced row moved at a uniform prior"
                );
            }
        }
    }
}
