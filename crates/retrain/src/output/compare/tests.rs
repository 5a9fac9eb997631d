use super::csv::parse_csv;
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
