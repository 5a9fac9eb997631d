//! What the bootstrap says of one row of a table ([`RowEvidence`]): a field of
//! [`crate::output::tables::Row`], filled in by [`super::table::annotate`]. Apart from both so
//! that the table and its evidence do not import each other.

/// What the bootstrap says of one row.
#[derive(Debug, Clone, Default)]
pub struct RowEvidence {
    /// 95 % interval (percent) of All, Many, Medium, Few.
    pub ci: [Option<(f64, f64)>; 4],
    /// Against the baseline row: Δ All (points), its 95 % interval, the p-value.
    pub vs_baseline: Option<(f64, (f64, f64), f64)>,
}

impl RowEvidence {
    /// ▲ (better than the baseline), ▼ (worse) or = (no difference at α = 0.05); blank for the
    /// baseline itself and without a baseline.
    pub fn mark(&self) -> &'static str {
        match self.vs_baseline {
            Some((_, (lo, _), _)) if lo > 0.0 => "▲",
            Some((_, (_, hi), _)) if hi < 0.0 => "▼",
            Some(_) => "=",
            None => "",
        }
    }
}
