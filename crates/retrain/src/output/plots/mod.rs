//! Figures for the report, drawn with `plotters`: every function writes `<stem>.png` and
//! `<stem>.svg`, each atomically (a temporary file in the same folder, then a rename).
//!
//! - [`line_plot`]: lines with markers, e.g. accuracy (All / Many / Medium / Few) against the
//!   smooth factor δ (the paper's Fig. 4).
//! - [`heatmap`]: a grid with the value printed in every cell, e.g. accuracy over
//!   learning rate × weight decay (Fig. 5); missing cells are grey and read "n/a".
//! - [`grouped_bars`]: one group per x label (class segment or class), one bar per series
//!   (method), e.g. LoMa per class group per method (Fig. 3).
//!
//! Text in the PNG is rasterised with `ab_glyph` from DejaVu Sans embedded in the binary
//! (`assets/DejaVuSans.ttf`, Bitstream Vera licence in `assets/DejaVuSans-LICENSE.txt`), so
//! nothing depends on the fonts installed where it runs. The SVG names the family
//! `sans-serif` and leaves the glyphs to the viewer. The PNG is encoded with the `png` crate
//! from plotters' RGB buffer (plotters' own encoder would pull in `image` 0.24).
//!
//! Bad input (no series, mismatched lengths, non-finite values) is an error, never a panic.

mod bars;
mod heatmap;
mod line;
mod style;
#[cfg(test)]
mod tests;

pub use bars::grouped_bars;
pub use heatmap::heatmap;
pub use line::line_plot;
pub use style::{DISTINCT_SERIES, Series};
