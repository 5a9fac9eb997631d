//! Labelled image sets, as the LT repositories read them.
//!
//! - [`fmnist`]: Fashion-MNIST gzipped IDX files.
//! - [`cifar`]: CIFAR-100, the python-pickle (`cifar-100-python/`) or binary
//!   (`cifar-100-binary/`) layout, fine labels.
//! - [`listfile`]: ImageNet-LT / iNaturalist 2018 / Places-LT list files
//!   (`<relative path> <label>` per line) against an image root.
//! - [`long_tail`]: the exponential long-tail subset (first n_c images of each class).

pub mod cifar;
pub mod fmnist;
pub mod listfile;
pub mod long_tail;
/// The pickle reader (public for the fuzz targets of `fuzz/`).
pub mod pickle;

use std::path::PathBuf;

/// Decoded 8-bit images of one size, channel-major (C×H×W per image), in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImages {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// N × C × H × W bytes.
    pub data: Vec<u8>,
    /// How the network sees them, when not as they are (Fashion-MNIST through an ImageNet
    /// network).
    pub present: Option<Present>,
}

/// Small images shown to a network trained at another size: each plane resized to
/// `side`×`side` by bilinear interpolation with PyTorch's `F.interpolate(mode="bilinear",
/// align_corners=False)` semantics, a single grey plane replicated to `channels`, then the
/// normalisation of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Present {
    pub side: usize,
    pub channels: usize,
}

impl RawImages {
    pub fn len(&self) -> usize {
        self.data.len() / self.image_len().max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.data[i * n..(i + 1) * n]
    }
}

/// Image files named by a list file, decoded on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct FileImages {
    /// The list file the paths came from (for messages).
    pub list: PathBuf,
    /// Full paths (root joined).
    pub paths: Vec<PathBuf>,
    /// 1-based line number of each path in `list`.
    pub lines: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Images {
    Raw(RawImages),
    Files(FileImages),
}

/// Images with their class labels (0..K).
#[derive(Debug, Clone, PartialEq)]
pub struct Labeled {
    pub images: Images,
    pub labels: Vec<u32>,
}

impl Labeled {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Labeled {
        let labels = idx.iter().map(|&i| self.labels[i]).collect();
        let images = match &self.images {
            Images::Raw(r) => {
                let mut data = Vec::with_capacity(idx.len() * r.image_len());
                for &i in idx {
                    data.extend_from_slice(r.image(i));
                }
                Images::Raw(RawImages { data, ..*r })
            }
            Images::Files(f) => Images::Files(FileImages {
                list: f.list.clone(),
                paths: idx.iter().map(|&i| f.paths[i].clone()).collect(),
                lines: idx.iter().map(|&i| f.lines[i]).collect(),
            }),
        };
        Labeled { images, labels }
    }

    /// The first `n` rows (all when fewer).
    pub fn truncate(&self, n: usize) -> Labeled {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }
}

/// Per-channel normalisation `(x / 255 - mean) / std` (torchvision ToTensor + Normalize).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// ImageNet (also ImageNet-LT and Places-LT in classifier-balancing).
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }
    /// iNaturalist 2018 (classifier-balancing `data/dataloader.py`).
    pub fn inat() -> Self {
        Normalize {
            mean: vec![0.466, 0.471, 0.380],
            std: vec![0.195, 0.194, 0.192],
        }
    }
    /// CIFAR (LOS = LTWB = LDAM).
    pub fn cifar() -> Self {
        Normalize {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2023, 0.1994, 0.2010],
        }
    }
    /// Fashion-MNIST training-set statistics.
    pub fn fmnist() -> Self {
        Normalize {
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }
}
