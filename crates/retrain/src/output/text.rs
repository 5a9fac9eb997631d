//! The table as text for stdout: one line per row, the mean over seeds ± the half-width of
//! its 95 % bootstrap interval, the mark against the baseline, and a label line opening each
//! group of rows (Table 1, the zoo) when the table holds more than one.

use crate::output::tables::{Row, STALE};

fn cell(m: Option<f64>, s: Option<f64>) -> String {
    match (m, s) {
        (Some(m), Some(s)) => format!("{m:6.2} ± {s:4.2}"),
        (Some(m), None) => format!("{m:6.2}       "),
        _ => format!("{:>13}", "—"),
    }
}

/// A stdout cell: the mean over seeds ± the half-width of its 95 % bootstrap interval (± the
/// std over seeds when there are no predictions to resample).
fn ci_cell(r: &Row, g: usize) -> String {
    match r.evidence.ci[g] {
        Some((lo, hi)) => cell(r.acc[g].0, Some((hi - lo) / 2.0)),
        None => cell(r.acc[g].0, r.acc[g].1),
    }
}

/// The table as text for stdout; `group(method)` names each row's group, and a label line
/// opens each group when the table holds more than one.
pub fn render(rows: &[Row], swept: &[String], group: &dyn Fn(&str) -> Option<String>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let extra: String = swept.iter().map(|p| format!(" {p:>6}")).collect();
    let groups: Vec<Option<String>> = rows.iter().map(|r| group(&r.method)).collect();
    let grouped = groups.iter().any(|g| g.is_some() && *g != groups[0]);
    let mut last: Option<&Option<String>> = None;
    let _ = writeln!(
        s,
        "{:<18}{extra} {:>3}  {:>13} {:>2}  {:>13}  {:>13}  {:>13}  {:>6}  {:>7}",
        "method", "n", "All", "vs", "Many", "Medium", "Few", "ECE", "LoMa cv"
    );
    for (r, g) in rows.iter().zip(&groups) {
        if grouped && last != Some(g) {
            let _ = writeln!(s, "── {} ──", g.as_deref().unwrap_or("other rows"));
        }
        last = Some(g);
        let mut e = String::new();
        for p in swept {
            let v = r.param(p);
            let _ = write!(
                e,
                " {:>6}",
                v.map(|v| format!("{v}")).unwrap_or_else(|| "—".into())
            );
        }
        let _ = writeln!(
            s,
            "{:<18}{e} {:>3}  {} {:>2}  {}  {}  {}  {:>6}  {:>7}",
            if r.stale_runs > 0 {
                format!("{} {STALE}", r.method)
            } else {
                r.method.clone()
            },
            r.n_seeds,
            ci_cell(r, 0),
            r.evidence.mark(),
            ci_cell(r, 1),
            ci_cell(r, 2),
            ci_cell(r, 3),
            r.ece.0.map(|x| format!("{x:.3}")).unwrap_or_default(),
            r.loma_cv.map(|x| format!("{x:.3}")).unwrap_or_default()
        );
    }
    s
}
