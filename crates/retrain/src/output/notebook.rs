//! The results folder as a lab notebook: every experiment folder gets a `README.md` (the exact
//! command, date, code identity, bank fingerprints, and its files with one line each), and
//! `<results>/index.md` lists the experiments, newest first, with their headline numbers and
//! figures. The index is kept as `index.json` (one entry per experiment folder, replaced when
//! the experiment reruns) and both files are rewritten atomically.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// How a results folder was made, as the face that made it says it (the face passes it in:
/// nothing below the faces reads the process's arguments). Written into `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "face", rename_all = "lowercase")]
pub enum Provenance {
    /// The `retrain` command line, as typed (shell-quoted).
    Cli { command: String },
    /// A Python call (`ltbench.run(...)` with its keywords) and the equivalent `retrain`
    /// command line: there is one when every row is built-in and every bank a folder, else
    /// `no_command` says why not.
    Python {
        call: String,
        command: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no_command: Option<String>,
    },
}

impl Default for Provenance {
    fn default() -> Self {
        Provenance::Cli {
            command: "retrain".into(),
        }
    }
}

impl Provenance {
    /// What was run: the command line or the Python call (the index's `command` column).
    pub fn made_by(&self) -> &str {
        match self {
            Provenance::Cli { command } => command,
            Provenance::Python { call, .. } => call,
        }
    }

    /// For a Python call: the equivalent `retrain` command, or why there is none.
    pub fn equivalent(&self) -> Option<String> {
        match self {
            Provenance::Cli { .. } => None,
            Provenance::Python {
                command: Some(c), ..
            } => Some(c.clone()),
            Provenance::Python { no_command, .. } => Some(format!(
                "none: {}",
                no_command
                    .as_deref()
                    .unwrap_or("not made from built-in rows")
            )),
        }
    }
}

/// One experiment, as the index lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The experiment folder, relative to the results root (`fmnist-lt-ir100/table1`).
    pub folder: String,
    pub banks: Vec<String>,
    /// What made it: the `retrain` command line, or the Python call ([`Provenance::made_by`]).
    pub command: String,
    /// For a run from Python: the equivalent `retrain` command line, or `none: <why>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalent: Option<String>,
    /// UTC, RFC 3339 with milliseconds (sorts as text).
    pub date: String,
    pub code: String,
    pub git: String,
    /// Bank name → fingerprint.
    pub fingerprints: Vec<(String, String)>,
    /// Bank name → the train views its heads trained on, in words (empty in an index
    /// written before views were recorded).
    #[serde(default)]
    pub views: Vec<(String, String)>,
    /// One line of the best numbers.
    pub headline: String,
    /// PNG files in the folder.
    pub figures: Vec<String>,
}

/// What a file of an experiment folder holds, by name.
pub fn describe(file: &str) -> &'static str {
    match file {
        "table1.csv" => {
            "one row per method (and swept parameter): accuracy All/Many/Medium/Few (mean, std over seeds), ECE, NLL, LoMa cv, settings"
        }
        "runs.csv" => "long format: one row per method × parameters × seed × split × group",
        "per-class.csv" => {
            "per method × seed × class: train count, shot group, accuracy, LoMa, RSD"
        }
        "loma.csv" => "per method × seed × class: LoMa, normalised LoMa, RSD",
        "loma-segments.csv" => "LoMa, RSD and accuracy per class segment (Fig. 3), mean over seeds",
        "config.json" => {
            "the banks (fingerprints, train views used, shot thresholds), resolved methods, seeds, switches, code identity"
        }
        "tune.csv" => {
            "every cell of the --tune grid with its val and test scores; the chosen one marked"
        }
        "README.md" => "this file",
        f if f.ends_with("-delta-sweep.csv") => "accuracy against the label-smoothing δ (Fig. 4)",
        f if f.ends_with("-tau-sweep.csv") => "accuracy against the post-hoc τ",
        f if f.ends_with("-grid.csv") => {
            "accuracy over the learning rate × weight decay grid (Fig. 5)"
        }
        f if f.starts_with("loma-") && f.ends_with(".png") => {
            "figure: normalised LoMa per class segment (also .svg)"
        }
        f if f.starts_with("rsd-") && f.ends_with(".png") => {
            "figure: RSD per class segment (also .svg)"
        }
        f if f.starts_with("per-class-accuracy-") && f.ends_with(".png") => {
            "figure: accuracy per class segment (also .svg)"
        }
        f if f.ends_with("-delta-sweep.png") => "figure: accuracy against δ (also .svg)",
        f if f.contains("-grid-") && f.ends_with(".png") => "figure: lr × wd heat map (also .svg)",
        f if f.starts_with("records") && f.ends_with(".jsonl") => {
            "the run records (resume, shards)"
        }
        _ => "",
    }
}

/// `README.md` of the experiment folder `dir`.
pub fn write_readme(dir: &Path, e: &Entry) -> anyhow::Result<()> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|f| f.ok()?.file_name().into_string().ok())
        .filter(|f| !f.ends_with(".svg") && !f.starts_with('.') && !f.ends_with(".tmp"))
        .chain(std::iter::once("README.md".to_string()))
        .collect();
    files.sort();
    files.dedup();
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", e.folder);
    match &e.equivalent {
        None => {
            let _ = writeln!(s, "```sh\n{}\n```\n", e.command);
        }
        Some(eq) => {
            let _ = writeln!(s, "Made from Python:\n\n```python\n{}\n```\n", e.command);
            match eq.strip_prefix("none: ") {
                Some(why) => {
                    let _ = writeln!(s, "No equivalent `retrain` command: {why}.\n");
                }
                None => {
                    let _ = writeln!(s, "The equivalent command:\n\n```sh\n{eq}\n```\n");
                }
            }
        }
    }
    let _ = writeln!(s, "- date: {}", e.date);
    let _ = writeln!(s, "- code identity: {} (git {})", e.code, e.git);
    for (b, f) in &e.fingerprints {
        let _ = writeln!(s, "- bank {b}: fingerprint {f}");
    }
    for (b, v) in &e.views {
        let _ = writeln!(s, "- bank {b}: {v}");
    }
    let _ = writeln!(s, "- {}\n", e.headline);
    let _ = writeln!(s, "| file | what it holds |\n|---|---|");
    for f in &files {
        let _ = writeln!(s, "| [{f}]({f}) | {} |", describe(f));
    }
    for f in &e.figures {
        let _ = writeln!(s, "\n![{f}]({f})");
    }
    bank::write::write_atomic(&dir.join("README.md"), |tmp| std::fs::write(tmp, &s))?;
    Ok(())
}

/// Put `e` into `<root>/index.json` (replacing the entry of the same folder) and rewrite
/// `<root>/index.md` from it, newest first.
pub fn update_index(root: &Path, e: &Entry) -> anyhow::Result<()> {
    // experiments finishing at the same time take turns (read, merge, write)
    let lock = std::fs::File::create(root.join(".index.lock"))
        .and_then(|f| f.lock().map(|_| f))
        .with_context(|| format!("{}: cannot lock the index", root.display()))?;
    let json = root.join("index.json");
    let mut entries = read_index(root)?;
    entries.retain(|x| x.folder != e.folder);
    // newest first; a stable sort keeps the entry just written first among equal dates
    entries.insert(0, e.clone());
    entries.sort_by(|a, b| b.date.cmp(&a.date));
    bank::write::write_atomic(&json, |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&entries)?)
    })?;
    let md = index_markdown(&entries);
    bank::write::write_atomic(&root.join("index.md"), |tmp| std::fs::write(tmp, &md))?;
    drop(lock);
    Ok(())
}

/// The entries of `<root>/index.json` (none when there is no index yet); an unreadable one
/// is an error naming the file (checked before a run starts, so that it writes nothing).
pub fn read_index(root: &Path) -> anyhow::Result<Vec<Entry>> {
    let json = root.join("index.json");
    match std::fs::read_to_string(&json) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not an ltbench index (delete it to start a new one)",
                json.display()
            )
        }),
        Err(_) => Ok(Vec::new()),
    }
}

/// The index as a markdown table (entries already in order).
pub fn index_markdown(entries: &[Entry]) -> String {
    let mut s = String::from(
        "# Results\n\nOne line per experiment, newest first; each folder's README.md has the exact command and its files.\n\n| date (UTC) | bank | experiment | command | headline | figures |\n|---|---|---|---|---|---|\n",
    );
    for e in entries {
        let figs: Vec<String> = e
            .figures
            .iter()
            .map(|f| format!("[{}]({}/{f})", f.trim_end_matches(".png"), e.folder))
            .collect();
        let exp = e.folder.rsplit('/').next().unwrap_or(&e.folder);
        let _ = writeln!(
            s,
            "| {} | {} | [{exp}]({}/README.md) | `{}`{} | {} | {} |",
            e.date,
            e.banks.join(", "),
            e.folder,
            e.command.replace('|', "\\|"),
            match &e.equivalent {
                Some(eq) if !eq.starts_with("none: ") => format!(" (`{}`)", eq.replace('|', "\\|")),
                _ => String::new(),
            },
            e.headline.replace('|', "\\|"),
            figs.join(" ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(folder: &str, date: &str) -> Entry {
        Entry {
            folder: folder.into(),
            banks: vec!["b".into()],
            command: "retrain --method los".into(),
            equivalent: None,
            date: date.into(),
            code: "src-0".into(),
            git: "abc".into(),
            fingerprints: vec![("b".into(), "f".into())],
            views: vec![("b".into(), "no views".into())],
            headline: "best All: los 70.00".into(),
            figures: vec!["loma-b.png".into()],
        }
    }

    #[test]
    fn the_index_keeps_one_entry_per_folder_newest_first() {
        let d = tempfile::tempdir().unwrap();
        update_index(d.path(), &entry("b/table1", "2026-01-01T00:00:00Z")).unwrap();
        update_index(
            d.path(),
            &entry("b/los-delta-sweep", "2026-01-02T00:00:00Z"),
        )
        .unwrap();
        update_index(d.path(), &entry("b/table1", "2026-01-03T00:00:00Z")).unwrap();
        let md = std::fs::read_to_string(d.path().join("index.md")).unwrap();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 2026")).collect();
        assert_eq!(rows.len(), 2, "{md}");
        assert!(rows[0].contains("[table1](b/table1/README.md)"), "{md}");
        assert!(rows[1].contains("los-delta-sweep"));
        assert!(rows[0].contains("[loma-b](b/table1/loma-b.png)"));
    }

    #[test]
    fn a_broken_index_is_one_clear_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("index.json"), "{").unwrap();
        let e = update_index(d.path(), &entry("b/t", "x")).unwrap_err();
        assert!(format!("{e:#}").contains("index.json: not an ltbench index"));
    }

    #[test]
    fn a_python_run_names_its_call_and_its_command() {
        let p = Provenance::Python {
            call: "ltbench.run('b', methods=['los'], seeds=1)".into(),
            command: Some("retrain --bank b --method los --seeds 1".into()),
            no_command: None,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"face":"python","call":"ltbench.run('b', methods=['los'], seeds=1)","command":"retrain --bank b --method los --seeds 1"}"#
        );
        assert_eq!(serde_json::from_str::<Provenance>(&json).unwrap(), p);
        let d = tempfile::tempdir().unwrap();
        let mut e = entry("b/los", "2026-01-01T00:00:00Z");
        e.command = p.made_by().into();
        e.equivalent = p.equivalent();
        write_readme(d.path(), &e).unwrap();
        let readme = std::fs::read_to_string(d.path().join("README.md")).unwrap();
        assert!(readme.contains(
            "```python\nltbench.run('b', methods=['los'], seeds=1)\n```\n\nThe equivalent command:\n\n```sh\nretrain --bank b --method los --seeds 1\n```"
        ), "{readme}");
        // a CLI entry's index.json has no `equivalent` (its bytes as before)
        let cli = serde_json::to_string(&entry("b/t", "x")).unwrap();
        assert!(!cli.contains("equivalent"));
        let none = Provenance::Python {
            call: "ltbench.run(...)".into(),
            command: None,
            no_command: Some("rows that are not built-in (`mine`, loss key 7)".into()),
        };
        e.equivalent = none.equivalent();
        write_readme(d.path(), &e).unwrap();
        let readme = std::fs::read_to_string(d.path().join("README.md")).unwrap();
        assert!(
            readme.contains(
                "No equivalent `retrain` command: rows that are not built-in (`mine`, loss key 7)."
            ),
            "{readme}"
        );
    }
}
