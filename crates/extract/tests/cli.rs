//! End-to-end runs of the real `extract` binary on fixtures generated in a temp dir; the banks
//! it writes are opened with `bank::Bank::open`, as `retrain` does.

use extract::source::datasets::{cifar, fmnist};
use std::path::{Path, PathBuf};
use std::process::Command;

fn extract(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_extract"))
        .args(args)
        .arg("--quiet")
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones");
    assert!(
        dir.is_dir(),
        "backbone fixtures not found at {}",
        dir.display()
    );
    dir
}

fn meta(bank: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(bank.join("meta.json")).unwrap()).unwrap()
}

#[test]
fn cifar100_lt_pickle_with_ldam_checkpoint_makes_a_valid_bank() {
    let d = tempfile::tempdir().unwrap();
    // Two images per class, shuffled class order: the LT rule keeps the first n_c in file order.
    let train: Vec<i64> = (0..200).map(|i| (i * 37) % 100).collect();
    cifar::fixture::write_python(d.path(), &train, &[0, 1, 2, 99]).unwrap();
    let ckpt = fixtures().join("resnet32_ldam.ckpt.pth.tar");
    let (code, err) = extract(
        &[
            "--dataset",
            "cifar100-lt",
            "--root",
            ".",
            "--arch",
            "resnet32",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--ir",
            "2",
            "--img-max",
            "2",
            "--batch-size",
            "16",
            "--views",
            "1",
        ],
        d.path(),
    );
    assert_eq!(code, 0, "{err}");
    // not the dataset's default backbone (resnet34-cifar): the bank is named after both
    let dir = d.path().join("features/cifar100-lt-ir2-resnet32");
    let b = bank::Bank::open(&dir).unwrap();
    // int(2 * 0.5^(c/99)): 2 for class 0, 1 for the others.
    assert_eq!(b.train.rows, 101);
    assert_eq!((b.dim, b.num_classes, b.test.rows), (64, 100, 4));
    assert!(b.test.features_flip.is_some() && b.train.features_flip.is_none());
    assert_eq!(b.head.as_ref().unwrap().num_classes, 100);
    let m = meta(&dir);
    assert_eq!(m["long_tail"]["rows"], 101);
    assert_eq!(m["class_names"][7], "class7");
    assert_eq!(m["backbone"]["arch"], "resnet32");
    assert_eq!(m["dataset"], "cifar100-lt-ir2-resnet32");
    assert!(dir.join("train_views.safetensors").is_file());
    assert!(
        !d.path()
            .join("features/cifar100-lt-ir2-resnet32.partial")
            .exists()
    );
}

#[test]
fn fashion_mnist_idx_makes_a_bank_with_its_shot_thresholds() {
    let d = tempfile::tempdir().unwrap();
    let n = 40;
    let imgs: Vec<u8> = (0..n * 784).map(|i| (i * 31 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for p in ["train", "t10k"] {
        fmnist::write_idx(
            &d.path().join(format!("{p}-images-idx3-ubyte.gz")),
            &[n, 28, 28],
            &imgs,
        )
        .unwrap();
        fmnist::write_idx(
            &d.path().join(format!("{p}-labels-idx1-ubyte.gz")),
            &[n],
            &labels,
        )
        .unwrap();
    }
    let (code, err) = extract(
        &[
            "--dataset",
            "fmnist-lt",
            "--root",
            ".",
            "--img-max",
            "4",
            "--ir",
            "4",
            "--out",
            "bank",
            "--dtype",
            "f16",
        ],
        d.path(),
    );
    assert_eq!(code, 0, "{err}");
    let b = bank::Bank::open(&d.path().join("bank")).unwrap();
    assert_eq!(
        b.train_counts,
        bank::profile::exponential_counts(4.0, 10, 4.0)
    );
    assert_eq!((b.dim, b.test.rows), (128, 40));
    assert_eq!((b.shots.many_above, b.shots.few_below), (1200, 240));
    // The command as typed (not the build folder's path to the binary), pasteable.
    let command = meta(&d.path().join("bank"))["provenance"]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(command.starts_with("extract --dataset"), "{command}");
    assert_eq!(
        command,
        "extract --dataset fmnist-lt --root . --img-max 4 --ir 4 --out bank --dtype f16 --quiet"
    );
}

fn write_list_dataset(root: &Path) {
    std::fs::create_dir_all(root.join("img")).unwrap();
    for (i, (w, h)) in [(40u32, 30u32), (300, 260), (64, 64), (33, 50)]
        .into_iter()
        .enumerate()
    {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, (i * 60) as u8])
        });
        let ext = if i % 2 == 0 { "png" } else { "jpg" };
        img.save(root.join(format!("img/{i}.{ext}"))).unwrap();
    }
    std::fs::write(
        root.join("img/corrupt.jpg"),
        b"\xff\xd8\xff\xe0 this is not a jpeg",
    )
    .unwrap();
    std::fs::write(
        root.join("train.txt"),
        "img/0.png 0\nimg/1.jpg 1\nimg/corrupt.jpg 1\nimg/2.png\nimg/3.jpg 0\n",
    )
    .unwrap();
    std::fs::write(root.join("test.txt"), "img/2.png 1\nimg/3.jpg 0\n").unwrap();
}

#[test]
fn list_files_bad_line_is_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    let (code, err) = extract(
        &[
            "--dataset",
            "list",
            "--root",
            ".",
            "--train-list",
            "train.txt",
            "--test-list",
            "test.txt",
            "--arch",
            "resnet32",
        ],
        d.path(),
    );
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("extract: ") && err.contains("train.txt:4: missing label"),
        "{err}"
    );
}

#[test]
fn list_files_corrupt_image_is_named_and_leaves_no_bank() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    std::fs::write(
        d.path().join("train.txt"),
        "img/0.png 0\nimg/1.jpg 1\nimg/corrupt.jpg 1\n",
    )
    .unwrap();
    let (code, err) = extract(
        &[
            "--dataset",
            "list",
            "--root",
            ".",
            "--train-list",
            "train.txt",
            "--test-list",
            "test.txt",
            "--arch",
            "resnet32",
        ],
        d.path(),
    );
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("corrupt.jpg") && err.contains("train.txt:3"),
        "{err}"
    );
    assert!(
        !d.path().join("features/train").exists(),
        "a failed run must not leave a bank"
    );
}

/// A JPEG whose file was cut short (here after two thirds of its bytes) decodes without an
/// error in the `image` crate (grey where data is missing); PIL stops with "image file is
/// truncated", and so does extract: one line naming the file and its list line, exit 2, no
/// bank and no partial folder; with `--skip-bad` it is skipped and counted.
#[test]
fn list_files_truncated_jpeg_is_named_or_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    let whole = std::fs::read(d.path().join("img/1.jpg")).unwrap();
    std::fs::write(d.path().join("img/cut.jpg"), &whole[..whole.len() * 2 / 3]).unwrap();
    std::fs::write(
        d.path().join("train.txt"),
        "img/0.png 0\nimg/cut.jpg 1\nimg/1.jpg 1\n",
    )
    .unwrap();
    let list = [
        "--dataset",
        "list",
        "--root",
        ".",
        "--train-list",
        "train.txt",
        "--test-list",
        "test.txt",
        "--arch",
        "resnet32",
        "--out",
        "b",
    ];
    let (code, err) = extract(&list, d.path());
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("extract: ")
            && err.contains("img/cut.jpg")
            && err.contains("image file is truncated")
            && err.contains("train.txt:2"),
        "{err}"
    );
    assert!(!d.path().join("b").exists() && !d.path().join("b.partial").exists());
    let (code, err) = extract(&[&list[..], &["--skip-bad"]].concat(), d.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 skipped"), "{err}");
    let b = bank::Bank::open(&d.path().join("b")).unwrap();
    assert_eq!((b.train.rows, b.train.labels.clone()), (2, vec![0, 1]));
    let m = meta(&d.path().join("b"));
    assert_eq!(m["provenance"]["skipped"], 1);
}

#[test]
fn list_files_skip_bad_counts_and_decodes_png_and_jpeg() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    std::fs::write(
        d.path().join("train.txt"),
        "img/0.png 0\nimg/1.jpg 1\nimg/corrupt.jpg 1\nimg/2.png\nimg/3.jpg 0\nimg/missing.png 1\n",
    )
    .unwrap();
    let (code, err) = extract(
        &[
            "--dataset",
            "list",
            "--root",
            ".",
            "--train-list",
            "train.txt",
            "--test-list",
            "test.txt",
            "--arch",
            "resnet32",
            "--skip-bad",
            "--out",
            "b",
        ],
        d.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 skipped"), "{err}");
    let b = bank::Bank::open(&d.path().join("b")).unwrap();
    assert_eq!((b.train.rows, b.test.rows, b.num_classes), (3, 2, 2));
    assert_eq!(b.train.labels, vec![0, 1, 0]);
    let m = meta(&d.path().join("b"));
    assert_eq!(m["provenance"]["skipped"], 3);
    assert_eq!(
        m["provenance"]["transform"]["test"],
        "Resize(256) + CenterCrop(224) + Normalize"
    );
}

#[test]
fn cuda_without_a_gpu_says_so_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    let (code, err) = extract(
        &[
            "--dataset",
            "list",
            "--root",
            ".",
            "--train-list",
            "test.txt",
            "--test-list",
            "test.txt",
            "--device",
            "cuda",
        ],
        d.path(),
    );
    if code == 0 {
        return; // a CUDA build on a GPU machine
    }
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CUDA"), "{err}");
}

/// The list dataset of [`write_list_dataset`] through ResNet-32 into `b/`.
const LIST_TO_B: [&str; 12] = [
    "--dataset",
    "list",
    "--root",
    ".",
    "--train-list",
    "test.txt",
    "--test-list",
    "test.txt",
    "--arch",
    "resnet32",
    "--out",
    "b",
];

#[test]
fn an_existing_bank_is_not_replaced_without_overwrite() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    std::fs::create_dir_all(d.path().join("b")).unwrap();
    let (code, err) = extract(&LIST_TO_B, d.path());
    assert_eq!(code, 2);
    assert!(err.contains("--overwrite"), "{err}");
}

#[test]
fn a_second_extract_on_the_same_out_is_refused_with_the_holder_pid() {
    let d = tempfile::tempdir().unwrap();
    write_list_dataset(d.path());
    // this test process holds the bank's lock, as a running extract would
    let lock_path = d.path().join(".b.lock");
    std::fs::write(&lock_path, "4242").unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.try_lock().unwrap();
    let (code, err) = extract(&LIST_TO_B, d.path());
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--out b: in use by another process (pid 4242)"),
        "{err}"
    );
    assert!(!d.path().join("b").exists() && !d.path().join("b.partial").exists());
    drop(lock);
}

/// Fashion-MNIST through an ImageNet backbone: `--arch efficientnet-lite0` resizes each grey
/// 28×28 image to 224², replicates it to 3 channels and normalises it with ImageNet's
/// statistics (recorded in meta.json); a test row of the bank is the candle model's features
/// of that input, and the flip row those of its mirror image.
#[test]
fn fashion_mnist_through_efficientnet_lite0_is_resized_to_224() {
    use candle_core::{Device, Tensor};
    use extract::source::datasets::{Normalize, Present};
    let d = tempfile::tempdir().unwrap();
    let n = 20;
    let imgs: Vec<u8> = (0..n * 784).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for p in ["train", "t10k"] {
        let images = d.path().join(format!("{p}-images-idx3-ubyte.gz"));
        fmnist::write_idx(&images, &[n, 28, 28], &imgs).unwrap();
        let lab = d.path().join(format!("{p}-labels-idx1-ubyte.gz"));
        fmnist::write_idx(&lab, &[n], &labels).unwrap();
    }
    let args = [
        "--dataset",
        "fmnist-lt",
        "--root",
        ".",
        "--arch",
        "efficientnet-lite0",
        "--img-max",
        "2",
        "--ir",
        "1",
        "--out",
        "bank",
    ];
    let (code, err) = extract(&args, d.path());
    assert_eq!(code, 0, "{err}");
    let b = bank::Bank::open(&d.path().join("bank")).unwrap();
    assert_eq!((b.dim, b.test.rows), (1280, 20));
    assert_eq!(b.name(), "fmnist-lt-ir1-efficientnet-lite0");
    let t = &meta(&d.path().join("bank"))["provenance"]["transform"];
    assert!(
        t["test"]
            .as_str()
            .unwrap()
            .contains("interpolate(224x224, bilinear"),
        "{t}"
    );
    assert_eq!(t["mean"][2].as_f64().unwrap() as f32, 0.406);
    let (model, _, _) = extract::model::checkpoint::load_backbone(
        extract::Arch::EfficientnetLite0,
        None,
        0,
        &Device::Cpu,
    )
    .unwrap();
    let mut x = Vec::new();
    let present = Present {
        side: 224,
        channels: 3,
    };
    extract::source::transform::present_chw(
        &imgs[784..2 * 784],
        (1, 28, 28),
        present,
        &Normalize::imagenet(),
        &mut x,
    );
    let x = Tensor::from_vec(x, (1, 3, 224, 224), &Device::Cpu).unwrap();
    let xf = extract::model::backbones::flip_lr(&x).unwrap();
    let flip = &b.test.features_flip.as_ref().unwrap().as_slice()[1280..2 * 1280];
    for (input, got) in [(&x, b.test.row(1)), (&xf, flip)] {
        let want: Vec<f32> = model
            .features(input)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = want
            .iter()
            .zip(got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-5 * scale, "row 1: {err} of {scale}");
    }
}

/// `n` Fashion-MNIST-like images per split (labels i % 10) in `dir`.
fn fmnist_fixture(dir: &Path, n: usize) {
    let imgs: Vec<u8> = (0..n * 784).map(|i| (i * 31 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for p in ["train", "t10k"] {
        let images = dir.join(format!("{p}-images-idx3-ubyte.gz"));
        fmnist::write_idx(&images, &[n, 28, 28], &imgs).unwrap();
        let lab = dir.join(format!("{p}-labels-idx1-ubyte.gz"));
        fmnist::write_idx(&lab, &[n], &labels).unwrap();
    }
}

/// `extract --views 2` of the fixture with `ck.safetensors` into `out` (plus `extra`): the
/// train views' transform in meta.json and the bytes of train_views.safetensors.
fn views_of(d: &Path, out: &str, extra: &[&str]) -> (serde_json::Value, Vec<u8>) {
    let mut args = vec![
        "--dataset",
        "fmnist-lt",
        "--root",
        ".",
        "--img-max",
        "4",
        "--ir",
        "2",
        "--checkpoint",
        "ck.safetensors",
        "--views",
        "2",
        "--out",
        out,
    ];
    args.extend(extra);
    let (code, err) = extract(&args, d);
    assert_eq!(code, 0, "{err}");
    let bank = d.join(out);
    let t = meta(&bank)["provenance"]["transform"]["train_views"].clone();
    (
        t,
        std::fs::read(bank.join("train_views.safetensors")).unwrap(),
    )
}

/// A checkpoint trained by stage 1 with `--crop-padding 2` records it (`.stage1.json`), and
/// `--views` with that checkpoint augments with padding 2, not the dataset's 4: the same views
/// as `--crop-padding 2` gives, other than 4's. meta.json says which padding and whence; an
/// explicit `--crop-padding` wins; the resume state is read when the record is gone, and with
/// neither the dataset's default is used and said to be.
#[test]
fn train_views_pad_as_the_checkpoint_s_stage1_did() {
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), 40);
    let stage1 = [
        "--dataset",
        "fmnist-lt",
        "--root",
        ".",
        "--img-max",
        "4",
        "--ir",
        "2",
        "--stage1",
        "--stage1-only",
        "--epochs",
        "1",
        "--train-batch-size",
        "4",
        "--crop-padding",
        "2",
        "--checkpoint",
        "ck.safetensors",
    ];
    let (code, err) = extract(&stage1, d.path());
    assert_eq!(code, 0, "{err}");
    let record = d.path().join("ck.safetensors.stage1.json");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(
        (r["arch"].as_str(), r["recipe"]["crop_padding"].as_u64()),
        (Some("small-cnn"), Some(2))
    );

    let (t, recorded) = views_of(d.path(), "recorded", &[]);
    assert_eq!(t["crop_padding"], 2, "{t}");
    assert_eq!(t["flip"], true, "{t}");
    assert_eq!(t["count"], 2, "{t}");
    let from = t["crop_padding_from"].as_str().unwrap();
    assert!(
        from.starts_with("the checkpoint's stage-1 record ")
            && from.ends_with("ck.safetensors.stage1.json"),
        "{t}"
    );
    assert!(
        t["transform"]
            .as_str()
            .unwrap()
            .starts_with("RandomCrop(28x28, padding=2, zero fill) + RandomHorizontalFlip(p=0.5)"),
        "{t}"
    );

    let (t2, two) = views_of(d.path(), "two", &["--crop-padding", "2"]);
    assert_eq!(
        (&t2["crop_padding"], &t2["crop_padding_from"]),
        (&2.into(), &"--crop-padding".into())
    );
    assert_eq!(
        recorded, two,
        "the recorded padding gives the views --crop-padding 2 gives"
    );
    let (t4, four) = views_of(d.path(), "four", &["--crop-padding", "4"]);
    assert_eq!(
        (&t4["crop_padding"], &t4["crop_padding_from"]),
        (&4.into(), &"--crop-padding".into())
    );
    assert_ne!(recorded, four, "padding 4 draws other views");

    std::fs::remove_file(&record).unwrap();
    let (t, _) = views_of(d.path(), "resume", &[]);
    assert_eq!(t["crop_padding"], 2, "{t}");
    assert!(
        t["crop_padding_from"]
            .as_str()
            .unwrap()
            .ends_with("ck.safetensors.resume.json"),
        "{t}"
    );

    std::fs::remove_file(d.path().join("ck.safetensors.resume.json")).unwrap();
    let (t, unrecorded) = views_of(d.path(), "default", &[]);
    assert_eq!(t["crop_padding"], 4, "{t}");
    let from = t["crop_padding_from"].as_str().unwrap();
    assert!(
        from.starts_with("the dataset's default: ")
            && from.contains("records no stage-1 transform"),
        "{t}"
    );
    assert_eq!(unrecorded, four);
}

/// A checkpoint given with the wrong `--arch`: the one line starts with the `--arch` it fits,
/// before the key report that runs to hundreds of characters.
#[test]
fn a_wrong_arch_names_the_right_one_first() {
    let d = tempfile::tempdir().unwrap();
    let train: Vec<i64> = (0..200).map(|i| (i * 37) % 100).collect();
    cifar::fixture::write_python(d.path(), &train, &[0, 1, 2, 99]).unwrap();
    let ckpt = fixtures().join("resnet32_ldam.ckpt.pth.tar");
    let args = [
        "--dataset",
        "cifar100-lt",
        "--root",
        ".",
        "--arch",
        "resnet34-cifar",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--ir",
        "2",
        "--img-max",
        "2",
    ];
    let (code, err) = extract(&args, d.path());
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let at = err.find("--arch resnet32").expect(&err);
    assert!(at < 120, "the suggestion is at character {at}: {err}");
    assert!(err.starts_with("extract: pass --arch resnet32: "), "{err}");
    let keys = err.find("missing keys").expect(&err);
    assert!(keys > at && err.len() > 400, "{err}");
    let bank = d.path().join("features/cifar100-lt-ir2");
    assert!(!bank.exists() && !d.path().join("features/cifar100-lt-ir2.partial").exists());
}
