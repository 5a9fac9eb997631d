//! A small RFC 4180 reader (quoted fields, `""` escapes, CRLF; empty cells are missing
//! values) and the columns the comparison needs from each table.

use anyhow::{Context, bail};
use std::path::Path;

/// Column indices in our table1.csv.
pub(super) struct OursCols {
    pub(super) method: usize,
    pub(super) all: usize,
    pub(super) all_std: Option<usize>,
    pub(super) many: usize,
    pub(super) medium: usize,
    pub(super) few: usize,
    pub(super) oracle: Option<usize>,
}

impl OursCols {
    pub(super) fn find(csv: &Csv) -> anyhow::Result<OursCols> {
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
pub(super) struct PaperCols {
    pub(super) method: usize,
    pub(super) all: usize,
    pub(super) many: usize,
    pub(super) medium: usize,
    pub(super) few: usize,
}

impl PaperCols {
    pub(super) fn find(csv: &Csv) -> anyhow::Result<PaperCols> {
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
pub(super) struct Csv {
    pub(super) path: String,
    pub(super) header: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
}

impl Csv {
    pub(super) fn read(path: &Path) -> anyhow::Result<Csv> {
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

    pub(super) fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub(super) fn need(&self, name: &str) -> anyhow::Result<usize> {
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
    pub(super) fn num(&self, r: usize, c: usize) -> anyhow::Result<Option<f64>> {
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
pub(super) fn parse_csv(text: &str) -> anyhow::Result<Vec<Vec<String>>> {
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
