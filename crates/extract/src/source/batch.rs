//! Network inputs from labelled images, below both consumers (`stage1` trains on them, `run`
//! extracts features from them): the rows of a batch normalised, as the test view or as a
//! seeded random training view; image files are decoded in parallel.
//!
//! May import: [`crate::source::datasets`], [`crate::source::transform`], [`crate::error`].

use crate::error::Result;
use crate::source::datasets::{Images, Labeled, Normalize};
use crate::source::transform;
use rand::SeedableRng;
use rayon::prelude::*;

/// Batch input for rows `rows` of `data` (view `None`: test view; `Some(v)`: random view `v`),
/// and the rows that made it (others were skipped with a message).
pub fn batch_input(
    data: &Labeled,
    rows: &[usize],
    norm: &Normalize,
    pad: usize,
    view: Option<(usize, u64)>,
) -> Vec<(usize, Result<Vec<f32>>)> {
    let rng = |i: usize| {
        let (v, seed) = view.unwrap();
        rand::rngs::StdRng::seed_from_u64(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((v as u64) << 40) ^ i as u64,
        )
    };
    match &data.images {
        Images::Raw(r) => {
            let shown = |px: &[u8]| {
                let mut out = Vec::with_capacity(r.image_len());
                match r.present {
                    None => transform::normalize_chw(px, r.channels, norm, &mut out),
                    Some(p) => {
                        let shape = (r.channels, r.height, r.width);
                        transform::present_chw(px, shape, p, norm, &mut out)
                    }
                }
                out
            };
            let one = |&i: &usize| {
                let out = match view {
                    None => shown(r.image(i)),
                    Some(_) => shown(&transform::random_crop_flip(r, i, pad, &mut rng(i))),
                };
                (i, Ok(out))
            };
            // resizing to an ImageNet network's side is worth the cores; the plain
            // normalisation is not
            match r.present {
                Some(_) => rows.par_iter().map(one).collect(),
                None => rows.iter().map(one).collect(),
            }
        }
        Images::Files(f) => rows
            .par_iter()
            .map(|&i| {
                let res = transform::decode(f, i).map(|img| {
                    let img = match view {
                        None => transform::test_view(&img),
                        Some(_) => transform::random_resized_crop_flip(&img, &mut rng(i)),
                    };
                    let mut out = Vec::with_capacity(3 * 224 * 224);
                    transform::rgb_to_chw(&img, norm, &mut out);
                    out
                });
                (i, res)
            })
            .collect(),
    }
}

/// The (channels, height, width) of one input of `data`.
pub fn input_shape(data: &Labeled) -> (usize, usize, usize) {
    match &data.images {
        Images::Raw(r) => match r.present {
            Some(p) => (p.channels, p.side, p.side),
            None => (r.channels, r.height, r.width),
        },
        Images::Files(_) => (3, transform::CROP as usize, transform::CROP as usize),
    }
}
