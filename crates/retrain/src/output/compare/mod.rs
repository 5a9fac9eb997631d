//! Our `table1.csv` next to the published one (`baselines/paper/table1.csv`), as one text
//! table followed by the protocol differences that make the two not directly comparable.
//!
//! Columns: method, ours All ± std (over seeds), paper All, Δ = ours − paper (accuracy
//! points), ours Many / Medium / Few, paper Many / Medium / Few, and, when our file has it,
//! the oracle All at the best test epoch (the paper's selection rule). A method in only one
//! table is shown with blanks on the other side. A method that appears in several of our
//! rows (a δ sweep, say) is shown once per row, labelled by the parameters that differ.
//!
//! Both files are read by a small RFC 4180 reader (quoted fields, `""` escapes, CRLF);
//! empty cells are missing values.

mod csv;
pub mod folders;
mod notes;
#[cfg(test)]
mod tests;

use csv::{Csv, OursCols, PaperCols};
use notes::{paper_notes, protocol_notes};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Parameter columns of our table1.csv that tell apart rows of the same method.
const PARAM_COLUMNS: [&str; 8] = [
    "delta",
    "tau",
    "lr",
    "wd",
    "epochs",
    "batch_size",
    "init",
    "selection",
];

/// Our results/table1.csv next to the published table: one text table (method, ours all±std,
/// paper all, Δ, ours many/medium/few, paper many/medium/few), followed by the protocol
/// differences (cached features vs on-the-fly augmentation, final epoch vs best test epoch,
/// mean of seeds vs best of five, backbone/bank differences).
pub fn compare_tables(ours_csv: &Path, paper_csv: &Path) -> anyhow::Result<String> {
    let ours = Csv::read(ours_csv)?;
    let paper = Csv::read(paper_csv)?;
    let o = OursCols::find(&ours)?;
    let p = PaperCols::find(&paper)?;
    let mut lines = vec![header(&o)];
    let mut shown = Vec::new();
    lines.extend(our_lines(&ours, &o, &paper, &p, &mut shown)?);
    lines.extend(paper_only_lines(&paper, &p, &o, &shown)?);
    let mut out = String::new();
    writeln!(
        out,
        "Top-1 accuracy (%), ours ({}) vs published ({}); Δ = ours − paper:",
        ours_csv.display(),
        paper_csv.display()
    )?;
    writeln!(out)?;
    out.push_str(&render(&lines));
    writeln!(out)?;
    out.push_str(&protocol_notes(
        &ours,
        &o,
        ours_csv,
        paper_notes(&paper, &p)?,
    ));
    Ok(out)
}

fn header(o: &OursCols) -> Vec<String> {
    let mut header = vec![
        "method",
        "ours all ± std",
        "paper all",
        "Δ all",
        "ours many",
        "ours medium",
        "ours few",
        "paper many",
        "paper medium",
        "paper few",
    ];
    if o.oracle.is_some() {
        header.push("ours oracle all");
    }
    header.iter().map(|s| s.to_string()).collect()
}

/// One line per row of our table, with the paper's cells of the same method; the methods
/// shown are pushed to `shown`.
fn our_lines<'a>(
    ours: &'a Csv,
    o: &OursCols,
    paper: &Csv,
    p: &PaperCols,
    shown: &mut Vec<&'a str>,
) -> anyhow::Result<Vec<Vec<String>>> {
    let paper_rows: HashMap<&str, usize> = (0..paper.rows.len())
        .map(|r| (paper.rows[r][p.method].as_str(), r))
        .collect();
    let mut per_method: HashMap<&str, Vec<usize>> = HashMap::new();
    for r in 0..ours.rows.len() {
        per_method
            .entry(ours.rows[r][o.method].as_str())
            .or_default()
            .push(r);
    }
    let mut lines = Vec::new();
    for r in 0..ours.rows.len() {
        let row = &ours.rows[r];
        let method = row[o.method].as_str();
        let label = label_for(ours, &per_method[method], r, method);
        let all = ours.num(r, o.all)?;
        let std = o.all_std.map(|c| ours.num(r, c)).transpose()?.flatten();
        let pr = paper_rows.get(method).copied();
        let paper_num = |c: usize| -> anyhow::Result<Option<f64>> {
            match pr {
                Some(pr) => paper.num(pr, c),
                None => Ok(None),
            }
        };
        let p_all = paper_num(p.all)?;
        let mut line = vec![
            label,
            match (all, std) {
                (Some(a), Some(s)) => format!("{a:.2} ± {s:.2}"),
                (Some(a), None) => format!("{a:.2}"),
                _ => String::new(),
            },
            fmt(p_all),
            match (all, p_all) {
                (Some(a), Some(b)) => format!("{:+.2}", a - b),
                _ => String::new(),
            },
            fmt(ours.num(r, o.many)?),
            fmt(ours.num(r, o.medium)?),
            fmt(ours.num(r, o.few)?),
        ];
        if pr.is_some() {
            for c in [p.many, p.medium, p.few] {
                line.push(fmt(paper_num(c)?));
            }
        } else {
            line.extend(std::iter::repeat_n(String::new(), 3));
        }
        if let Some(c) = o.oracle {
            line.push(fmt(ours.num(r, c)?));
        }
        shown.push(method);
        lines.push(line);
    }
    Ok(lines)
}

/// The paper's methods that our table lacks, with blanks on our side.
fn paper_only_lines(
    paper: &Csv,
    p: &PaperCols,
    o: &OursCols,
    shown: &[&str],
) -> anyhow::Result<Vec<Vec<String>>> {
    let mut lines = Vec::new();
    for (pr, row) in paper.rows.iter().enumerate() {
        let method = row[p.method].as_str();
        if shown.contains(&method) {
            continue;
        }
        let mut line = vec![
            method.to_string(),
            String::new(),
            fmt(paper.num(pr, p.all)?),
        ];
        line.extend(std::iter::repeat_n(String::new(), 4));
        for c in [p.many, p.medium, p.few] {
            line.push(fmt(paper.num(pr, c)?));
        }
        if o.oracle.is_some() {
            line.push(String::new());
        }
        lines.push(line);
    }
    Ok(lines)
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_default()
}

/// `method`, or `method (delta=0.9, lr=0.01)` when several of our rows share the method.
fn label_for(csv: &Csv, same: &[usize], r: usize, method: &str) -> String {
    if same.len() < 2 {
        return method.to_string();
    }
    let mut parts = Vec::new();
    for name in PARAM_COLUMNS {
        let Some(c) = csv.col(name) else { continue };
        let varies = same.iter().any(|&o| csv.rows[o][c] != csv.rows[r][c]);
        if varies {
            parts.push(format!("{name}={}", csv.rows[r][c]));
        }
    }
    if parts.is_empty() {
        format!("{method} (row {})", r + 1)
    } else {
        format!("{method} ({})", parts.join(", "))
    }
}

/// Left-aligned first column, right-aligned numbers, two spaces between columns.
fn render(lines: &[Vec<String>]) -> String {
    let ncol = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let width: Vec<usize> = (0..ncol)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let mut s = String::new();
        for (c, cell) in l.iter().enumerate() {
            let pad = width[c] - cell.chars().count();
            if c == 0 {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.push_str("  ");
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = width.iter().sum::<usize>() + 2 * ncol.saturating_sub(1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}
