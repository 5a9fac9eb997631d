//! The protocol differences printed under the comparison: what makes our numbers and the
//! published ones not directly comparable, and the paper table's own notes.

use super::csv::{Csv, OursCols, PaperCols};
use std::fmt::Write as _;
use std::path::Path;

/// Why the two columns differ, with what our files say about our side.
pub(super) fn protocol_notes(
    ours: &Csv,
    o: &OursCols,
    ours_csv: &Path,
    paper_notes: Vec<String>,
) -> String {
    let distinct = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = match ours.col(name) {
            Some(c) => ours.rows.iter().map(|r| r[c].clone()).collect(),
            None => Vec::new(),
        };
        v.sort();
        v.dedup();
        v.retain(|s| !s.is_empty());
        v
    };
    let seeds = distinct("n_seeds");
    let selection = distinct("selection");
    let epochs = distinct("epochs");
    let config = ours_csv.with_file_name("config.json");
    let bank = std::fs::read_to_string(&config)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("bank").and_then(|b| b.as_str()).map(str::to_string));

    let mut s = String::new();
    s.push_str("Protocol differences (the two columns are not measured the same way):\n");
    s.push_str(
        "- Features: ours are cached once from the frozen backbone (no per-batch \
         augmentation, BatchNorm statistics fixed); the paper recomputes them every batch from \
         augmented images (random crop + flip) with the backbone's BatchNorm in train mode, \
         and tests with flip averaging.\n",
    );
    let _ = writeln!(
        s,
        "- Epoch: ours is the {} epoch{}; the paper reports the best test epoch (model \
         selected on the test set){}.",
        if selection.is_empty() {
            "final".to_string()
        } else {
            format!("'{}'", selection.join("', '"))
        },
        if epochs.is_empty() {
            String::new()
        } else {
            format!(" of {} epochs", epochs.join("/"))
        },
        if o.oracle.is_some() {
            "; 'ours oracle all' applies the paper's rule to our runs"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "- Seeds: ours is the mean ± sample std over {} seed(s); the paper reports the best of \
         five trials (for normal noise the expected best of five is the mean + 1.16 std).",
        if seeds.is_empty() {
            "?".to_string()
        } else {
            seeds.join("/")
        }
    );
    let _ = writeln!(
        s,
        "- Backbone and bank: the paper's stage 1 is a ResNet34 trained 200 epochs on \
         CIFAR100-LT (IR 100) with CE and LTWB's weight decay; ours is the bank {}, whose \
         backbone, training and split may differ, so absolute levels can differ even where \
         the ranking of methods agrees.",
        bank.map(|b| format!("'{b}'"))
            .unwrap_or_else(|| "named in config.json beside our table".to_string())
    );
    for note in paper_notes {
        let _ = writeln!(s, "- Paper rows: {note}");
    }
    wrap(&s, 100)
}

/// Word-wrap each line of `text` at `width` characters, continuing bullets indented by two.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut cur = String::new();
        for word in line.split(' ') {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
                out.push_str(&cur);
                out.push('\n');
                cur = "  ".to_string();
            } else if !cur.is_empty() && cur != "  " {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push_str(&cur);
        out.push('\n');
    }
    out
}

/// Remarks on the published rows that matter when reading the comparison.
pub(super) fn paper_notes(paper: &Csv, p: &PaperCols) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    let find = |m: &str| paper.rows.iter().position(|r| r[p.method] == m);
    if let (Some(src), Some(r)) = (paper.col("source"), find("los"))
        && paper.rows[r][src].contains("Table 2")
    {
        notes.push(
            "'los' is not in the paper's Table 1; its number is Table 2's CIFAR100-LT \
             IR=100 result (All only, one decimal)."
                .to_string(),
        );
    }
    if let (Some(a), Some(b)) = (find("re-sampling"), find("vanilla-fc")) {
        let same = [p.all, p.many, p.medium, p.few]
            .iter()
            .map(|&c| Ok(paper.num(a, c)? == paper.num(b, c)?))
            .collect::<anyhow::Result<Vec<bool>>>()?;
        if same.iter().all(|s| *s) {
            notes.push(
                "the published Re-Sampling row is identical to Vanilla FC (as printed)."
                    .to_string(),
            );
        }
    }
    Ok(notes)
}
