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

use anyhow::{Context, bail};
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

    let mut lines: Vec<Vec<String>> = Vec::new();
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
    lines.push(header.iter().map(|s| s.to_string()).collect());

    let mut shown = Vec::new();
    for r in 0..ours.rows.len() {
        let row = &ours.rows[r];
        let method = row[o.method].as_str();
        let label = label_for(&ours, &per_method[method], r, method);
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

/// Why the two columns differ, with what our files say about our side.
fn protocol_notes(ours: &Csv, o: &OursCols, ours_csv: &Path, paper_notes: Vec<String>) -> String {
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
fn paper_notes(paper: &Csv, p: &PaperCols) -> anyhow::Result<Vec<String>> {
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

/// Column indices in our table1.csv.
struct OursCols {
    method: usize,
    all: usize,
    all_std: Option<usize>,
    many: usize,
    medium: usize,
    few: usize,
    oracle: Option<usize>,
}

impl OursCols {
    fn find(csv: &Csv) -> anyhow::Result<OursCols> {
        Ok(OursCols {
            method: csv.need("method")?,
            all: csv.need("all")?,
            all_std: csv.col("all_std"),
            many: csv.need("many")?,
            medium: csv.need("medium")?,
            few: csv.need("few")?,
            oracle: csv.col("oracle_all_best_test_epoch"),
        })
    }
}

/// Column indices in the published table.
struct PaperCols {
    method: usize,
    all: usize,
    many: usize,
    medium: usize,
    few: usize,
}

impl PaperCols {
    fn find(csv: &Csv) -> anyhow::Result<PaperCols> {
        Ok(PaperCols {
            method: csv.need("method")?,
            all: csv.need("all")?,
            many: csv.need("many")?,
            medium: csv.need("medium")?,
            few: csv.need("few")?,
        })
    }
}

/// A CSV file: header and rows of strings, every row as long as the header.
struct Csv {
    path: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> anyhow::Result<Csv> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.display().to_string();
        let mut records = parse_csv(&text).with_context(|| format!("parsing {name}"))?;
        if records.is_empty() {
            bail!("{name}: empty file (no header row)");
        }
        let header: Vec<String> = records
            .remove(0)
            .into_iter()
            .map(|h| h.trim().into())
            .collect();
        for (i, r) in records.iter().enumerate() {
            if r.len() != header.len() {
                bail!(
                    "{name}: line {} has {} fields, the header has {}",
                    i + 2,
                    r.len(),
                    header.len()
                );
            }
        }
        Ok(Csv {
            path: name,
            header,
            rows: records,
        })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    fn need(&self, name: &str) -> anyhow::Result<usize> {
        match self.col(name) {
            Some(c) => Ok(c),
            None => bail!(
                "{}: no column '{name}' (columns: {})",
                self.path,
                self.header.join(", ")
            ),
        }
    }

    /// The number in row `r` (0-based, after the header), column `c`; `None` when empty.
    fn num(&self, r: usize, c: usize) -> anyhow::Result<Option<f64>> {
        let cell = self.rows[r][c].trim();
        if cell.is_empty() || cell.eq_ignore_ascii_case("null") || cell.eq_ignore_ascii_case("nan")
        {
            return Ok(None);
        }
        match cell.parse::<f64>() {
            Ok(v) => Ok(Some(v)),
            Err(_) => bail!(
                "{}: line {}, column '{}': '{cell}' is not a number",
                self.path,
                r + 2,
                self.header[c]
            ),
        }
    }
}

/// RFC 4180 records: fields split on commas, double quotes around fields that hold commas,
/// quotes or newlines, `""` for a quote inside them; LF or CRLF line ends; blank lines skipped.
fn parse_csv(text: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(ch) = chars.next() {
        if in_quotes {
            match ch {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(ch);
                }
                _ => field.push(ch),
            }
            continue;
        }
        match ch {
            '"' if field.is_empty() => in_quotes = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push(std::mem::take(&mut record));
                }
                record.clear();
            }
            _ => field.push(ch),
        }
    }
    if in_quotes {
        bail!("unterminated quoted field at line {line}");
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: &str = "method,all,many,medium,few,source\n\
        vanilla-fc,48.44,78.74,47.37,14.33,\"LOS ICLR 2025 Table 1, row 'Vanilla FC'\"\n\
        ldam,52.94,72.37,54.31,28.67,\"LOS ICLR 2025 Table 1, row 'LDAM Loss'\"\n\
        los,54.9,,,,\"LOS ICLR 2025 Table 2, row 'LOS (ours)'\"\n";

    const OURS: &str = "method,n_seeds,all,all_std,many,medium,few,delta,lr,selection\n\
        vanilla-fc,3,47.31,0.0,75.781,48.2857,12.9556,0.0,0.0005,final\n\
        los,3,55.5,0.12,70.0,56.0,38.0,0.9,0.0005,final\n\
        los,3,56.25,0.05,69.0,57.0,40.0,0.98,0.0005,final\n\
        stage1-only,1,40.0,,70.0,35.0,5.0,,0.0005,final\n";

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn line<'a>(out: &'a str, start: &str) -> &'a str {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting with {start:?} in\n{out}"))
    }

    #[test]
    fn matched_methods_show_ours_paper_and_delta() {
        let dir = tempfile::tempdir().unwrap();
        let ours = write(dir.path(), "table1.csv", OURS);
        let paper = write(dir.path(), "paper.csv", PAPER);
        let out = compare_tables(&ours, &paper).unwrap();
        let l = line(&out, "vanilla-fc");
        assert!(l.contains("47.31 ± 0.00"), "{l}");
        assert!(l.contains("48.44") && l.contains("-1.13"), "{l}");
        assert!(
            l.contains("75.78") && l.contains("78.74") && l.contains("14.33"),
            "{l}"
        );
        assert!(out.contains("Protocol differences"));
        assert!(out.contains("best of five"));
        assert!(out.contains("best test epoch"));
        assert!(out.contains("augment"));
        assert!(out.contains("'los' is not in the paper's Table 1"));
        assert!(
            out.lines()
                .skip_while(|l| !l.starts_with("Protocol"))
                .all(|l| l.chars().count() <= 100)
        );
    }

    #[test]
    fn repeated_methods_are_labelled_by_the_parameter_that_differs() {
        let dir = tempfile::tempdir().unwrap();
        let ours = write(dir.path(), "table1.csv", OURS);
        let paper = write(dir.path(), "paper.csv", PAPER);
        let out = compare_tables(&ours, &paper).unwrap();
        let l = line(&out, "los (delta=0.98)");
        assert!(
            l.contains("56.25 ± 0.05") && l.contains("54.90") && l.contains("+1.35"),
            "{l}"
        );
        assert!(out.contains("los (delta=0.9)"));
        assert!(
            !out.contains("lr="),
            "lr does not vary between the los rows"
        );
    }

    #[test]
    fn methods_in_one_table_only_get_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let ours = write(dir.path(), "table1.csv", OURS);
        let paper = write(dir.path(), "paper.csv", PAPER);
        let out = compare_tables(&ours, &paper).unwrap();
        // Ours only: no paper numbers, no Δ.
        let l = line(&out, "stage1-only");
        assert_eq!(
            l.split_whitespace().collect::<Vec<_>>(),
            ["stage1-only", "40.00", "70.00", "35.00", "5.00"]
        );
        // Paper only: ldam, with no numbers of ours.
        let l = line(&out, "ldam");
        assert_eq!(
            l.split_whitespace().collect::<Vec<_>>(),
            ["ldam", "52.94", "72.37", "54.31", "28.67"]
        );
    }

    #[test]
    fn missing_column_error_names_the_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let ours = write(
            dir.path(),
            "table1.csv",
            "method,all,many,medium\nx,1,2,3\n",
        );
        let paper = write(dir.path(), "paper.csv", PAPER);
        let err = compare_tables(&ours, &paper).unwrap_err().to_string();
        assert!(
            err.contains("table1.csv") && err.contains("no column 'few'"),
            "{err}"
        );
        let bad_paper = write(
            dir.path(),
            "p2.csv",
            "name,all,many,medium,few\nx,1,2,3,4\n",
        );
        let ours = write(dir.path(), "t2.csv", OURS);
        let err = compare_tables(&ours, &bad_paper).unwrap_err().to_string();
        assert!(
            err.contains("p2.csv") && err.contains("no column 'method'"),
            "{err}"
        );
    }

    #[test]
    fn bad_files_are_errors_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let paper = write(dir.path(), "paper.csv", PAPER);
        let missing = dir.path().join("nope.csv");
        let err = format!("{:#}", compare_tables(&missing, &paper).unwrap_err());
        assert!(err.contains("nope.csv"), "{err}");
        let ragged = write(
            dir.path(),
            "ragged.csv",
            "method,all,many,medium,few\nx,1,2\n",
        );
        let err = compare_tables(&ragged, &paper).unwrap_err().to_string();
        assert!(err.contains("ragged.csv: line 2 has 3 fields"), "{err}");
        let text = write(
            dir.path(),
            "text.csv",
            "method,all,many,medium,few\nx,high,2,3,4\n",
        );
        let err = compare_tables(&text, &paper).unwrap_err().to_string();
        assert!(
            err.contains("column 'all': 'high' is not a number"),
            "{err}"
        );
        let empty = write(dir.path(), "empty.csv", "");
        assert!(compare_tables(&empty, &paper).is_err());
    }

    #[test]
    fn oracle_column_is_shown_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let ours = write(
            dir.path(),
            "table1.csv",
            "method,all,many,medium,few,oracle_all_best_test_epoch\nvanilla-fc,47.3,75.0,48.0,13.0,47.9\n",
        );
        let paper = write(dir.path(), "paper.csv", PAPER);
        let out = compare_tables(&ours, &paper).unwrap();
        assert!(out.contains("ours oracle all"));
        assert!(line(&out, "vanilla-fc").trim_end().ends_with("47.90"));
    }

    #[test]
    fn csv_reader_handles_quotes_and_crlf() {
        let r = parse_csv("a,b\r\n\"x, \"\"y\"\"\",2\r\n\r\n\"multi\nline\",3").unwrap();
        assert_eq!(
            r,
            vec![
                vec!["a".to_string(), "b".into()],
                vec!["x, \"y\"".into(), "2".into()],
                vec!["multi\nline".into(), "3".into()],
            ]
        );
        assert!(parse_csv("a\n\"open").is_err());
    }

    #[test]
    fn committed_paper_table_compares_with_committed_results() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let paper = root.join("baselines/paper/table1.csv");
        let dir = tempfile::tempdir().unwrap();
        let ours = write(dir.path(), "table1.csv", OURS);
        let out = compare_tables(&ours, &paper).unwrap();
        // Every published method appears, with its numbers.
        for m in [
            "vanilla-cosine",
            "lws",
            "balanced-softmax",
            "re-sampling",
            "focal",
            "class-balanced",
            "maxnorm",
            "tau-norm",
            "logit-adjust",
        ] {
            line(&out, m);
        }
        assert!(line(&out, "class-balanced").contains("53.31"));
        assert!(out.contains("Re-Sampling row is identical to Vanilla FC"));
    }
}
