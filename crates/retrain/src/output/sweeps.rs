//! The tables of sweeps and tuning: `<method>-delta-sweep.csv`, `<method>-tau-sweep.csv`,
//! `<method>-grid.csv` (with the note naming the best cell), `tune.csv`.

use crate::output::tables::Row;
use polars::prelude::{Column, DataFrame, PolarsResult};

/// One cell of the `--tune` grid: its row, whether it was chosen, and the selection split.
pub type TuneRow = (Row, bool, String);

/// `tune.csv`: every cell of the `--tune` grid with its val and test scores.
pub fn tune_frame(rows: &[TuneRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "bank".into(),
                rows.iter().map(|r| r.0.bank.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "method".into(),
                rows.iter().map(|r| r.0.method.clone()).collect::<Vec<_>>(),
            ),
            Column::new("lr".into(), rows.iter().map(|r| r.0.lr).collect::<Vec<_>>()),
            Column::new("wd".into(), rows.iter().map(|r| r.0.wd).collect::<Vec<_>>()),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.0.n_seeds as u32).collect::<Vec<_>>(),
            ),
            Column::new(
                "selection_split".into(),
                rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "val_all".into(),
                rows.iter().map(|r| r.0.val_all.map(r4)).collect::<Vec<_>>(),
            ),
            Column::new(
                "val_balanced".into(),
                rows.iter()
                    .map(|r| r.0.val_balanced.map(r4))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "test_all".into(),
                rows.iter()
                    .map(|r| r.0.acc[0].0.map(r4))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "chosen".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Which grid cell to pick: on val when the bank has one, else the best test cell, labelled
/// as an oracle.
pub fn best_cell_note(method: &str, bank: &str, cells: &[Row]) -> String {
    let by = |f: &dyn Fn(&Row) -> Option<f64>| {
        cells
            .iter()
            .filter_map(|r| Some((f(r)?, r)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    if let Some((v, r)) = by(&|r: &Row| r.val_balanced) {
        format!(
            "{method} on {bank}: best cell on val (mean per-class accuracy): lr={} wd={} (val {v:.2}, test {:.2})",
            r.lr,
            r.wd,
            r.acc[0].0.unwrap_or(f64::NAN)
        )
    } else if let Some((v, r)) = by(&|r: &Row| r.acc[0].0) {
        format!(
            "{method} on {bank}: no val split; best test cell lr={} wd={} ({v:.2}) is an ORACLE (selected on test)",
            r.lr, r.wd
        )
    } else {
        format!("{method} on {bank}: no cell")
    }
}

/// `<method>-grid.csv`: one row per lr × wd cell.
pub fn grid_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let f = |g: usize, std: bool| {
        rows.iter()
            .map(|r| if std { r.acc[g].1 } else { r.acc[g].0 }.map(r4))
            .collect::<Vec<_>>()
    };
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "bank".into(),
                rows.iter().map(|r| r.bank.clone()).collect::<Vec<_>>(),
            ),
            Column::new("lr".into(), rows.iter().map(|r| r.lr).collect::<Vec<_>>()),
            Column::new("wd".into(), rows.iter().map(|r| r.wd).collect::<Vec<_>>()),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.n_seeds as u32).collect::<Vec<_>>(),
            ),
            Column::new("all".into(), f(0, false)),
            Column::new("all_std".into(), f(0, true)),
            Column::new("many".into(), f(1, false)),
            Column::new("medium".into(), f(2, false)),
            Column::new("few".into(), f(3, false)),
            Column::new(
                "val_all".into(),
                rows.iter().map(|r| r.val_all.map(r4)).collect::<Vec<_>>(),
            ),
            Column::new(
                "val_balanced".into(),
                rows.iter()
                    .map(|r| r.val_balanced.map(r4))
                    .collect::<Vec<_>>(),
            ),
        ],
    )
}

fn r4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// `<method>-delta-sweep.csv` / `<method>-tau-sweep.csv` / `<method>-<param>-sweep.csv`:
/// one row per value of `param`.
pub fn sweep_frame(rows: &[Row], param: &str) -> PolarsResult<DataFrame> {
    let f = |g: usize, std: bool| {
        rows.iter()
            .map(|r| if std { r.acc[g].1 } else { r.acc[g].0 }.map(|x| (x * 1e4).round() / 1e4))
            .collect::<Vec<_>>()
    };
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "bank".into(),
                rows.iter().map(|r| r.bank.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                param.into(),
                rows.iter().map(|r| r.param(param)).collect::<Vec<_>>(),
            ),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.n_seeds as u32).collect::<Vec<_>>(),
            ),
            Column::new("all".into(), f(0, false)),
            Column::new("all_std".into(), f(0, true)),
            Column::new("many".into(), f(1, false)),
            Column::new("medium".into(), f(2, false)),
            Column::new("few".into(), f(3, false)),
        ],
    )
}
