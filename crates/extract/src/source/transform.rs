//! Image → normalised tensor data (C×H×W f32), as the reference loaders do it.
//!
//! - Small images (CIFAR, Fashion-MNIST), test: `ToTensor` + `Normalize`.
//!   Train view: `RandomCrop(size, padding=4)` (zero pad) + `RandomHorizontalFlip`.
//! - Files (ImageNet-LT, iNat, Places), test: `Resize(256)` (shorter side, bilinear with
//!   antialiasing) + `CenterCrop(224)` + `Normalize`. Train view: `RandomResizedCrop(224)`
//!   (scale 0.08–1, ratio 3/4–4/3) + `RandomHorizontalFlip`.
//!
//! The flipped test view is computed on the batch tensor (`backbones::flip_lr`).

use crate::error::{ExtractError, Result};
use crate::source::datasets::{FileImages, Normalize, Present, RawImages};
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use rand::Rng;

pub const RESIZE: u32 = 256;
pub const CROP: u32 = 224;

/// `(x / 255 - mean) / std`, channel-major input.
pub fn normalize_chw(px: &[u8], channels: usize, norm: &Normalize, out: &mut Vec<f32>) {
    let plane = px.len() / channels.max(1);
    for c in 0..channels {
        let (m, s) = (norm.mean[c], norm.std[c]);
        out.extend(
            px[c * plane..(c + 1) * plane]
                .iter()
                .map(|&v| (v as f32 / 255.0 - m) / s),
        );
    }
}

/// One axis of a bilinear resize `n` → `m`: per output index the two source indices and
/// their weights, as PyTorch's CPU kernel computes them (`UpSampleKernel.cpp`,
/// `compute_indices_weights_linear`; `UpSample.h`, `area_pixel_compute_scale` and
/// `area_pixel_compute_source_index` with `align_corners=False`): scale `n / m` in f32,
/// source `scale · (d + ½) − ½` clamped at 0, the second index one further unless at the end.
fn bilinear_axis(n: usize, m: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = n as f32 / m as f32;
    (0..m)
        .map(|d| {
            let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(n - 1);
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < n - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Bilinear resize of a plane `h`×`w` to `oh`×`ow` appended to `out`: PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False)`, rows weighted after the width
/// (`(x00·a0 + x01·a1)·b0 + (x10·a0 + x11·a1)·b1`, the order of its `Interpolate` recursion).
pub fn resize_bilinear(
    src: &[f32],
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    out: &mut Vec<f32>,
) {
    let (ys, xs) = (bilinear_axis(h, oh), bilinear_axis(w, ow));
    for &(y0, y1, b0, b1) in &ys {
        let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
        out.extend(xs.iter().map(|&(x0, x1, a0, a1)| {
            let t0 = r0[x0] * a0 + r0[x1] * a1;
            let t1 = r1[x0] * a0 + r1[x1] * a1;
            t0 * b0 + t1 * b1
        }));
    }
}

/// A small C×H×W image as a network trained at another size sees it ([`Present`]): `x / 255`
/// (`ToTensor`), each plane resized to `side`², a grey plane replicated to `present.channels`,
/// then `Normalize` per output channel.
pub fn present_chw(
    px: &[u8],
    (c, h, w): (usize, usize, usize),
    present: Present,
    norm: &Normalize,
    out: &mut Vec<f32>,
) {
    let side = present.side;
    let mut planes = Vec::with_capacity(c * side * side);
    let mut plane = Vec::with_capacity(h * w);
    for ch in 0..c {
        plane.clear();
        plane.extend(
            px[ch * h * w..(ch + 1) * h * w]
                .iter()
                .map(|&v| v as f32 / 255.0),
        );
        resize_bilinear(&plane, (h, w), (side, side), &mut planes);
    }
    for oc in 0..present.channels {
        let from = if c == 1 { 0 } else { oc };
        let (m, s) = (norm.mean[oc], norm.std[oc]);
        out.extend(
            planes[from * side * side..(from + 1) * side * side]
                .iter()
                .map(|&v| (v - m) / s),
        );
    }
}

/// Random crop with zero padding and a random horizontal flip of a C×H×W image.
pub fn random_crop_flip(r: &RawImages, i: usize, pad: usize, rng: &mut impl Rng) -> Vec<u8> {
    let (c, h, w) = (r.channels, r.height, r.width);
    let src = r.image(i);
    let dy = rng.random_range(0..=2 * pad) as isize - pad as isize;
    let dx = rng.random_range(0..=2 * pad) as isize - pad as isize;
    let flip = rng.random_bool(0.5);
    let mut out = vec![0u8; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            let sy = y as isize + dy;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            for x in 0..w {
                let xx = if flip { w - 1 - x } else { x };
                let sx = xx as isize + dx;
                if sx >= 0 && sx < w as isize {
                    out[(ch * h + y) * w + x] = src[(ch * h + sy as usize) * w + sx as usize];
                }
            }
        }
    }
    out
}

/// Decode file `i` of `f` as RGB (a missing file or an undecodable image names the file and its
/// list line).
pub fn decode(f: &FileImages, i: usize) -> Result<RgbImage> {
    let path = &f.paths[i];
    let bytes = std::fs::read(path).map_err(|e| ExtractError::Image {
        path: path.clone(),
        msg: format!("{e} (listed at {}:{})", f.list.display(), f.lines[i]),
    })?;
    if cut_short_jpeg(&bytes) {
        return Err(ExtractError::Image {
            path: path.clone(),
            msg: format!(
                "image file is truncated (the JPEG data ends before its end-of-image marker) (listed at {}:{})",
                f.list.display(),
                f.lines[i]
            ),
        });
    }
    let img = image::load_from_memory(&bytes).map_err(|e| ExtractError::Image {
        path: path.clone(),
        msg: format!(
            "{} (listed at {}:{})",
            one_line(&e.to_string()),
            f.list.display(),
            f.lines[i]
        ),
    })?;
    Ok(img.to_rgb8())
}

/// Whether `b` is a JPEG whose file ends before its end-of-image marker (EOI, `FF D9`): cut
/// short by a failed copy or download. The `image` crate decodes such a file without an error
/// (its JPEG decoder, zune-jpeg, runs in non-strict mode and fills the missing blocks with
/// grey), where PIL stops with "image file is truncated"; zune-jpeg's strict mode would also
/// refuse files PIL reads (stray bytes between segments, unknown markers), so the check is
/// ours. It walks the segments from the start-of-image marker: a marker, its length, the
/// segment; after a start-of-scan, the entropy-coded data up to the next marker (inside it an
/// `FF` byte is followed only by a stuffed `00` or a restart marker `D0`–`D7`, so a marker
/// there cannot be mistaken) — progressive files have several scans. Reaching the end of the
/// file before EOI is "cut short"; a file malformed otherwise is left to the decoder, and
/// bytes after EOI are ignored.
fn cut_short_jpeg(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return false;
    }
    let mut i = 2;
    loop {
        // a marker: FF, optional fill bytes FF, the code
        if b.get(i) != Some(&0xFF) {
            return i >= b.len();
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&code) = b.get(i) else {
            return true;
        };
        i += 1;
        match code {
            0xD9 => return false,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = b.get(i..i + 2) else {
            return true;
        };
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        if len < 2 {
            return false;
        }
        i += len;
        if i > b.len() {
            return true;
        }
        if code == 0xDA {
            // the scan's entropy-coded data, up to the next marker
            loop {
                let Some(p) = b[i..].iter().position(|&x| x == 0xFF) else {
                    return true;
                };
                i += p;
                match b.get(i + 1) {
                    None => return true,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Collapse a multi-line library message into one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// torchvision `Resize(256)`: the shorter side becomes 256, the longer `int(256 * long / short)`.
pub fn resize_shorter(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (size, ((size as u64 * h as u64) / w.max(1) as u64) as u32)
    } else {
        (((size as u64 * w as u64) / h.max(1) as u64) as u32, size)
    };
    if (nw, nh) == (w, h) {
        return img.clone();
    }
    image::imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// torchvision `CenterCrop(size)` offsets: `int(round((dim - size) / 2))`; an image smaller than
/// the crop is zero-padded (as torchvision does).
pub fn center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w < size || h < size {
        let mut out = RgbImage::new(size.max(w), size.max(h));
        image::imageops::replace(
            &mut out,
            img,
            ((size.max(w) - w) / 2) as i64,
            ((size.max(h) - h) / 2) as i64,
        );
        return center_crop(&out, size);
    }
    let left = ((w - size) as f64 / 2.0).round() as u32;
    let top = ((h - size) as f64 / 2.0).round() as u32;
    image::imageops::crop_imm(img, left, top, size, size).to_image()
}

/// HWC RGB image → normalised C×H×W floats appended to `out`.
pub fn rgb_to_chw(img: &RgbImage, norm: &Normalize, out: &mut Vec<f32>) {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let raw = img.as_raw();
    for c in 0..3 {
        let (m, s) = (norm.mean[c], norm.std[c]);
        out.extend((0..n).map(|p| (raw[p * 3 + c] as f32 / 255.0 - m) / s));
    }
}

/// The test view: Resize(256) + CenterCrop(224).
pub fn test_view(img: &RgbImage) -> RgbImage {
    center_crop(&resize_shorter(img, RESIZE), CROP)
}

/// `RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3))` + `RandomHorizontalFlip`.
pub fn random_resized_crop_flip(img: &RgbImage, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = img.dimensions();
    let area = (w * h) as f64;
    let mut crop = None;
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..=1.0);
        let log_r = rng.random_range((3f64 / 4.0).ln()..=(4f64 / 3.0).ln());
        let ratio = log_r.exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            crop = Some((
                rng.random_range(0..=w - cw),
                rng.random_range(0..=h - ch),
                cw,
                ch,
            ));
            break;
        }
    }
    // Fallback as torchvision: central crop of the whole image clamped to the ratio range.
    let (x, y, cw, ch) = crop.unwrap_or_else(|| {
        let r = w as f64 / h as f64;
        let (cw, ch) = if r < 0.75 {
            (w, (w as f64 / 0.75).round() as u32)
        } else if r > 4.0 / 3.0 {
            ((h as f64 * 4.0 / 3.0).round() as u32, h)
        } else {
            (w, h)
        };
        let (cw, ch) = (cw.min(w), ch.min(h));
        ((w - cw) / 2, (h - ch) / 2, cw, ch)
    });
    let patch = image::imageops::crop_imm(img, x, y, cw, ch).to_image();
    let mut out = image::imageops::resize(&patch, CROP, CROP, FilterType::Triangle);
    if rng.random_bool(0.5) {
        out = image::imageops::flip_horizontal(&out);
    }
    out
}

/// Convert a decoded image to RGB (for callers holding a `DynamicImage`).
pub fn to_rgb(img: DynamicImage) -> RgbImage {
    img.to_rgb8()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_aspect_with_truncation_like_torchvision() {
        let img = RgbImage::new(500, 375);
        let r = resize_shorter(&img, 256);
        assert_eq!(r.dimensions(), (341, 256)); // int(256 * 500 / 375) = 341
        assert_eq!(test_view(&img).dimensions(), (224, 224));
    }

    #[test]
    fn center_crop_offsets_round_like_torchvision() {
        let mut img = RgbImage::new(7, 5);
        img.put_pixel(2, 1, image::Rgb([9, 9, 9]));
        // left = round((7-3)/2) = 2, top = round((5-3)/2) = 1
        assert_eq!(center_crop(&img, 3).get_pixel(0, 0).0, [9, 9, 9]);
    }

    #[test]
    fn normalisation_is_per_channel() {
        let mut out = Vec::new();
        normalize_chw(
            &[0, 255, 255, 0],
            2,
            &Normalize {
                mean: vec![0.0, 0.5],
                std: vec![1.0, 0.5],
            },
            &mut out,
        );
        assert_eq!(out, vec![0.0, 1.0, 1.0, -1.0]);
    }

    /// A 64×64 grey baseline JPEG, built by hand (one-code Huffman tables: 64 blocks of DC
    /// difference 0 and end-of-block, 16 bytes of scan data), with its first `scan` bytes of
    /// scan data, and its end-of-image marker when `eoi`.
    fn grey_jpeg(scan: usize, eoi: bool) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0];
        j.extend([1u8; 64]);
        j.extend([0xFF, 0xC0, 0, 11, 8, 0, 64, 0, 64, 1, 1, 0x11, 0]);
        for class in [0x00, 0x10] {
            j.extend([0xFF, 0xC4, 0, 20, class, 1]);
            j.extend([0u8; 16]);
        }
        j.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
        j.extend(vec![0u8; scan]);
        if eoi {
            j.extend([0xFF, 0xD9]);
        }
        j
    }

    /// Every prefix of a JPEG is cut short, the whole file is not (nor with bytes after its
    /// end), and the `image` crate decodes a cut file without an error: the reason for the
    /// check.
    #[test]
    fn a_jpeg_cut_anywhere_is_found_and_a_whole_one_is_not() {
        let img = RgbImage::from_fn(67, 45, |x, y| {
            image::Rgb([(x * 3 + y) as u8, (y * 5) as u8, (x ^ y) as u8])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        let hand = grey_jpeg(16, true);
        assert_eq!(
            image::load_from_memory(&hand)
                .unwrap()
                .to_luma8()
                .get_pixel(9, 9)
                .0,
            [128]
        );
        for whole in [&jpeg, &hand] {
            assert!(!cut_short_jpeg(whole));
            let mut trailing = whole.to_vec();
            trailing.extend(b"\0\0trailing bytes \xff\xda");
            assert!(!cut_short_jpeg(&trailing));
            for n in 3..whole.len() {
                assert!(cut_short_jpeg(&whole[..n]), "{n} of {} bytes", whole.len());
            }
        }
        assert!(cut_short_jpeg(&grey_jpeg(8, false)));
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        assert!(
            image::load_from_memory(cut).is_ok(),
            "the decoder now refuses cut files"
        );
        // not JPEG: not ours to judge
        assert!(!cut_short_jpeg(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn random_crop_with_zero_shift_and_no_flip_is_identity_in_distribution() {
        use rand::SeedableRng;
        let r = RawImages {
            channels: 1,
            height: 4,
            width: 4,
            data: (0..16).collect(),
            present: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let v = random_crop_flip(&r, 0, 0, &mut rng);
        assert!(v == r.data || v == [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12]);
        let rr = random_resized_crop_flip(&RgbImage::new(300, 200), &mut rng);
        assert_eq!(rr.dimensions(), (224, 224));
    }
}
