//! Which data to extract: a dataset kind plus paths, resolved into train / val / test image
//! sets with their normalisation, class names, shot thresholds and long-tail record.

use crate::error::{ExtractError, Result};
use crate::source::datasets::{
    Images, Labeled, Normalize, Present, cifar, fmnist, listfile, long_tail,
};
use bank::ShotThresholds;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetKind {
    #[value(name = "fmnist-lt")]
    FmnistLt,
    #[value(name = "cifar100-lt")]
    Cifar100Lt,
    #[value(name = "imagenet-lt")]
    ImagenetLt,
    #[value(name = "inat2018")]
    Inat2018,
    #[value(name = "places-lt")]
    PlacesLt,
    /// Any list files (`--train-list`, `--test-list`, optional `--val-list`).
    #[value(name = "list")]
    List,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FmnistLt => "fmnist-lt",
            DatasetKind::Cifar100Lt => "cifar100-lt",
            DatasetKind::ImagenetLt => "imagenet-lt",
            DatasetKind::Inat2018 => "inat2018",
            DatasetKind::PlacesLt => "places-lt",
            DatasetKind::List => "list",
        }
    }

    /// Default list file names (classifier-balancing `data/`), relative to `--lists`.
    fn default_lists(self) -> Option<[&'static str; 3]> {
        match self {
            DatasetKind::ImagenetLt => Some([
                "ImageNet_LT_train.txt",
                "ImageNet_LT_val.txt",
                "ImageNet_LT_test.txt",
            ]),
            // The iNat val list doubles as the test set.
            DatasetKind::Inat2018 => Some(["iNaturalist18_train.txt", "", "iNaturalist18_val.txt"]),
            DatasetKind::PlacesLt => Some([
                "Places_LT_train.txt",
                "Places_LT_val.txt",
                "Places_LT_test.txt",
            ]),
            _ => None,
        }
    }

    fn known_classes(self) -> Option<usize> {
        match self {
            DatasetKind::FmnistLt => Some(fmnist::NUM_CLASSES),
            DatasetKind::Cifar100Lt => Some(cifar::NUM_CLASSES),
            DatasetKind::ImagenetLt => Some(1000),
            DatasetKind::Inat2018 => Some(8142),
            DatasetKind::PlacesLt => Some(365),
            DatasetKind::List => None,
        }
    }
}

/// The user's choice of data, as plain values.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub kind: DatasetKind,
    /// Data root (IDX folder, CIFAR folder, image root).
    pub root: PathBuf,
    /// Folder of the list files (defaults to `root`).
    pub lists: Option<PathBuf>,
    pub train_list: Option<PathBuf>,
    pub val_list: Option<PathBuf>,
    pub test_list: Option<PathBuf>,
    /// Imbalance ratio of the long-tailed subset (fmnist-lt, cifar100-lt).
    pub imb_ratio: f64,
    /// Head-class count of the profile (default 6000 for Fashion-MNIST, 500 for CIFAR-100).
    pub img_max: Option<f64>,
    pub skip_bad: bool,
}

/// Resolved data, ready for the backbone.
#[derive(Debug, Clone)]
pub struct Source {
    /// Bank name, e.g. `fmnist-lt-ir100`.
    pub name: String,
    pub num_classes: usize,
    pub class_names: Option<Vec<String>>,
    pub train: Labeled,
    pub val: Option<Labeled>,
    pub test: Labeled,
    pub normalize: Normalize,
    /// Zero padding of the random-crop train view (small images).
    pub crop_padding: usize,
    pub shots: Option<ShotThresholds>,
    /// Long-tail construction record for meta.json.
    pub long_tail: Option<serde_json::Value>,
    /// Skipped list lines (`--skip-bad`), as messages.
    pub skipped: Vec<String>,
}

impl Source {
    /// Show the raw images as a network trained at `present.side`² sees them
    /// ([`crate::source::datasets::Present`]: Fashion-MNIST through an ImageNet backbone),
    /// normalised with `normalize`.
    pub fn present_at(&mut self, present: Present, normalize: Normalize) {
        let splits = [&mut self.train, &mut self.test]
            .into_iter()
            .chain(self.val.as_mut());
        for split in splits {
            if let Images::Raw(r) = &mut split.images {
                r.present = Some(present);
            }
        }
        self.normalize = normalize;
    }
}

impl SourceSpec {
    pub fn resolve(&self) -> Result<Source> {
        match self.kind {
            DatasetKind::FmnistLt => {
                let train = fmnist::load(&self.root, "train")?;
                let test = fmnist::load(&self.root, "t10k")?;
                let names = fmnist::CLASS_NAMES.iter().map(|s| s.to_string()).collect();
                self.long_tailed(
                    train,
                    test,
                    6000.0,
                    fmnist::NUM_CLASSES,
                    Some(names),
                    Normalize::fmnist(),
                    Some(ShotThresholds {
                        many_above: 1200,
                        few_below: 240,
                    }),
                )
            }
            DatasetKind::Cifar100Lt => {
                let c = cifar::load(&self.root)?;
                self.long_tailed(
                    c.train,
                    c.test,
                    500.0,
                    cifar::NUM_CLASSES,
                    c.class_names,
                    Normalize::cifar(),
                    None,
                )
            }
            _ => self.lists(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn long_tailed(
        &self,
        train: Labeled,
        test: Labeled,
        img_max: f64,
        k: usize,
        class_names: Option<Vec<String>>,
        normalize: Normalize,
        shots: Option<ShotThresholds>,
    ) -> Result<Source> {
        if self.imb_ratio.is_nan() || self.imb_ratio < 1.0 {
            return Err(ExtractError::Usage(format!(
                "--ir must be >= 1, got {}",
                self.imb_ratio
            )));
        }
        let img_max = self.img_max.unwrap_or(img_max);
        if img_max.is_nan() || img_max < 1.0 {
            return Err(ExtractError::Usage(format!(
                "--img-max must be >= 1, got {img_max}"
            )));
        }
        let counts = bank::profile::exponential_counts(img_max, k, self.imb_ratio);
        if let Some(c) = counts.iter().position(|&n| n == 0) {
            return Err(ExtractError::Usage(format!(
                "--ir {} with --img-max {img_max} leaves class {c} with 0 training images (int({img_max} · (1/{})^({c}/{})) = 0): lower --ir or raise --img-max",
                self.imb_ratio,
                self.imb_ratio,
                k - 1
            )));
        }
        let idx =
            long_tail::first_n_per_class(&train.labels, &counts).map_err(|(c, have, want)| {
                ExtractError::format(
                    &self.root,
                    format!(
                        "class {c} has {have} training images, the IR={} profile needs {want}",
                        self.imb_ratio
                    ),
                )
            })?;
        let record = json!({
            "profile": "exponential",
            "rule": "first n_c images of each class in file order (LOS/LTWB), class-major",
            "img_max": img_max,
            "imb_ratio": self.imb_ratio,
            "counts": counts,
            "rows": idx.len(),
            "index_checksum_fnv1a64": long_tail::index_checksum(&idx),
        });
        Ok(Source {
            name: format!("{}-ir{}", self.kind.name(), self.imb_ratio),
            num_classes: k,
            class_names,
            train: train.select(&idx),
            val: None,
            test,
            normalize,
            crop_padding: 4,
            shots,
            long_tail: Some(record),
            skipped: Vec::new(),
        })
    }

    fn lists(&self) -> Result<Source> {
        let dir = self.lists.clone().unwrap_or_else(|| self.root.clone());
        let defaults = self.kind.default_lists();
        let pick = |given: &Option<PathBuf>, i: usize, flag: &str| -> Result<Option<PathBuf>> {
            if let Some(p) = given {
                return Ok(Some(p.clone()));
            }
            match defaults.map(|d| d[i]) {
                Some("") => Ok(None),
                Some(name) => Ok(Some(dir.join(name))),
                None if i == 1 => Ok(None),
                None => Err(ExtractError::Usage(format!("--dataset list needs {flag}"))),
            }
        };
        let train_p = pick(&self.train_list, 0, "--train-list")?.expect("train list resolved");
        let test_p = pick(&self.test_list, 2, "--test-list")?.expect("test list resolved");
        let val_p = match pick(&self.val_list, 1, "--val-list")? {
            // A default val list that is not there is simply absent.
            Some(p) if self.val_list.is_none() && !p.is_file() => None,
            v => v,
        };
        let mut skipped = Vec::new();
        let mut load = |p: &Path| -> Result<Labeled> {
            let s = listfile::load(p, &self.root, self.skip_bad)?;
            skipped.extend(s.skipped);
            Ok(s.data)
        };
        let train = load(&train_p)?;
        let test = load(&test_p)?;
        let val = val_p.as_deref().map(&mut load).transpose()?;
        let max_label = std::iter::once(&train)
            .chain(Some(&test))
            .chain(val.as_ref())
            .flat_map(|s| s.labels.iter())
            .max()
            .copied()
            .unwrap_or(0) as usize;
        let num_classes = match self.kind.known_classes() {
            Some(k) if max_label >= k => {
                return Err(ExtractError::format(
                    &train_p,
                    format!(
                        "label {max_label} is out of range for {} ({k} classes)",
                        self.kind.name()
                    ),
                ));
            }
            Some(k) => k,
            None => max_label + 1,
        };
        let normalize = if self.kind == DatasetKind::Inat2018 {
            Normalize::inat()
        } else {
            Normalize::imagenet()
        };
        let name = match self.kind {
            DatasetKind::List => train_p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "list".into()),
            k => k.name().to_owned(),
        };
        Ok(Source {
            name,
            num_classes,
            class_names: None,
            train,
            val,
            test,
            normalize,
            crop_padding: 0,
            shots: None,
            long_tail: None,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: DatasetKind, root: &Path) -> SourceSpec {
        SourceSpec {
            kind,
            root: root.into(),
            lists: None,
            train_list: None,
            val_list: None,
            test_list: None,
            imb_ratio: 100.0,
            img_max: None,
            skip_bad: false,
        }
    }

    #[test]
    fn imagenet_lt_finds_the_classifier_balancing_lists_and_optional_val() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("ImageNet_LT_train.txt"),
            "train/n01440764/a.JPEG 0\ntrain/n01443537/b.JPEG 1\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("ImageNet_LT_test.txt"),
            "val/n01440764/c.JPEG 0\n",
        )
        .unwrap();
        let s = spec(DatasetKind::ImagenetLt, d.path()).resolve().unwrap();
        assert_eq!(
            (s.name.as_str(), s.num_classes, s.train.len(), s.test.len()),
            ("imagenet-lt", 1000, 2, 1)
        );
        assert!(s.val.is_none());
        assert_eq!(s.normalize, Normalize::imagenet());
        std::fs::write(
            d.path().join("ImageNet_LT_val.txt"),
            "train/n01440764/d.JPEG 0\n",
        )
        .unwrap();
        assert_eq!(
            spec(DatasetKind::ImagenetLt, d.path())
                .resolve()
                .unwrap()
                .val
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn inat_uses_its_own_normalisation_and_val_as_test() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("iNaturalist18_train.txt"),
            "train_val2018/Plantae/7291/x.jpg 7291\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("iNaturalist18_val.txt"),
            "train_val2018/Plantae/7291/y.jpg 7291\n",
        )
        .unwrap();
        let s = spec(DatasetKind::Inat2018, d.path()).resolve().unwrap();
        assert_eq!((s.num_classes, s.test.labels[0]), (8142, 7291));
        assert_eq!(s.normalize, Normalize::inat());
    }

    #[test]
    fn a_label_beyond_the_known_class_count_names_the_list() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Places_LT_train.txt"), "train/a/1.jpg 365\n").unwrap();
        std::fs::write(d.path().join("Places_LT_test.txt"), "val/a/1.jpg 0\n").unwrap();
        let e = spec(DatasetKind::PlacesLt, d.path())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Places_LT_train.txt") && e.contains("label 365"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_default_list_is_named() {
        let d = tempfile::tempdir().unwrap();
        let e = spec(DatasetKind::ImagenetLt, d.path())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("ImageNet_LT_train.txt"), "{e}");
    }
}
