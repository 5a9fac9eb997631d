//! Every figure kind written, read back and checked; bad input rejected.

use super::style::*;
use super::*;
use std::path::Path;

const PNG_MAGIC: &[u8] = &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

fn check_pair(stem: &Path, title: &str) {
    let png = std::fs::read(with_ext(stem, "png")).unwrap();
    assert!(png.len() > 1000, "png is {} bytes", png.len());
    assert_eq!(&png[..8], PNG_MAGIC);
    let svg = std::fs::read_to_string(with_ext(stem, "svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
    assert!(svg.contains(title), "title missing from the svg");
    // Nothing left behind by the atomic writes.
    let dir = stem.parent().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".tmp"), "leftover temp file {name}");
    }
}

fn delta_series() -> Vec<Series> {
    let deltas = [0.0, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99];
    ["All", "Many", "Medium", "Few"]
        .iter()
        .enumerate()
        .map(|(k, name)| Series {
            label: (*name).into(),
            points: deltas
                .iter()
                .map(|d| (*d, 40.0 + 10.0 * k as f64 * (1.0 - d) + 12.0 * d))
                .collect(),
        })
        .collect()
}

#[test]
fn line_plot_writes_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("delta");
    line_plot(
        &stem,
        "Accuracy vs smooth factor",
        "smooth factor δ",
        "accuracy (%)",
        &delta_series(),
    )
    .unwrap();
    check_pair(&stem, "Accuracy vs smooth factor");
}

#[test]
fn line_plot_rejects_empty_and_non_finite_input() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("bad");
    assert!(line_plot(&stem, "t", "x", "y", &[]).is_err());
    let empty = Series {
        label: "s".into(),
        points: vec![],
    };
    let err = line_plot(&stem, "t", "x", "y", &[empty]).unwrap_err();
    assert!(
        err.to_string().contains("series 's' has no points"),
        "{err}"
    );
    let nan = Series {
        label: "s".into(),
        points: vec![(0.0, f64::NAN)],
    };
    assert!(line_plot(&stem, "t", "x", "y", &[nan]).is_err());
    assert!(!with_ext(&stem, "png").exists());
}

#[test]
fn line_plot_accepts_a_single_point() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("one");
    let s = Series {
        label: "only".into(),
        points: vec![(0.98, 54.9)],
    };
    line_plot(&stem, "One point", "x", "y", &[s]).unwrap();
    check_pair(&stem, "One point");
}

fn grid() -> (Vec<String>, Vec<String>, Vec<Vec<Option<f64>>>) {
    let lrs = ["0.001", "0.003", "0.01", "0.03", "0.1"];
    let wds = ["0", "1e-4", "5e-4", "1e-3"];
    let values = (0..wds.len())
        .map(|j| {
            (0..lrs.len())
                .map(|i| {
                    if i == 4 && j == 3 {
                        None
                    } else {
                        Some(50.0 + i as f64 * 1.1 - j as f64 * 0.7)
                    }
                })
                .collect()
        })
        .collect();
    (
        lrs.iter().map(|s| s.to_string()).collect(),
        wds.iter().map(|s| s.to_string()).collect(),
        values,
    )
}

#[test]
fn heatmap_writes_png_and_svg_with_missing_cells() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("grid");
    let (xt, yt, v) = grid();
    heatmap(
        &stem,
        "LOS accuracy over lr and wd",
        "learning rate",
        "weight decay",
        &xt,
        &yt,
        &v,
    )
    .unwrap();
    check_pair(&stem, "LOS accuracy over lr and wd");
    let svg = std::fs::read_to_string(with_ext(&stem, "svg")).unwrap();
    assert!(svg.contains("n/a"));
}

#[test]
fn heatmap_rejects_ragged_values() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("bad");
    let (xt, yt, mut v) = grid();
    v[2].pop();
    let err = heatmap(&stem, "t", "x", "y", &xt, &yt, &v).unwrap_err();
    assert!(
        err.to_string().contains("row 2 has 4 values for 5 x ticks"),
        "{err}"
    );
    let err = heatmap(&stem, "t", "x", "y", &xt, &yt[..2], &v).unwrap_err();
    assert!(
        err.to_string().contains("4 rows of values for 2 y ticks"),
        "{err}"
    );
    assert!(heatmap(&stem, "t", "x", "y", &[], &[], &[]).is_err());
}

#[test]
fn heatmap_of_all_missing_cells_still_draws() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("none");
    let t = vec!["a".to_string()];
    heatmap(&stem, "Nothing ran", "x", "y", &t, &t, &[vec![None]]).unwrap();
    check_pair(&stem, "Nothing ran");
}

type BarSeries = Vec<(String, Vec<Option<f64>>)>;

fn bars() -> (Vec<String>, BarSeries) {
    let groups: Vec<String> = (0..10)
        .map(|g| format!("{}-{}", g * 10, g * 10 + 9))
        .collect();
    let series = ["vanilla-fc", "balanced-softmax", "los"]
        .iter()
        .enumerate()
        .map(|(s, m)| {
            let vals = (0..10)
                .map(|g| Some(8.0 - g as f64 * (0.6 - 0.2 * s as f64)))
                .collect();
            (m.to_string(), vals)
        })
        .collect();
    (groups, series)
}

#[test]
fn grouped_bars_write_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("loma");
    let (g, s) = bars();
    grouped_bars(
        &stem,
        "LoMa per class group",
        "classes (by training count)",
        "LoMa",
        &g,
        &s,
    )
    .unwrap();
    check_pair(&stem, "LoMa per class group");
}

#[test]
fn grouped_bars_reject_mismatched_series() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("bad");
    let (g, mut s) = bars();
    s[1].1.push(Some(1.0));
    let err = grouped_bars(&stem, "t", "x", "y", &g, &s).unwrap_err();
    assert!(
        err.to_string()
            .contains("series 'balanced-softmax' has 11 values for 10 groups"),
        "{err}"
    );
    assert!(grouped_bars(&stem, "t", "x", "y", &[], &[]).is_err());
    assert!(grouped_bars(&stem, "t", "x", "y", &g, &[]).is_err());
    s[1].1.pop();
    s[0].1[0] = Some(f64::INFINITY);
    assert!(grouped_bars(&stem, "t", "x", "y", &g, &s).is_err());
}

#[test]
fn grouped_bars_with_many_groups_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("per-class");
    let groups: Vec<String> = (0..100).map(|c| format!("class_{c}")).collect();
    let vals: Vec<Option<f64>> = (0..100)
        .map(|c| (c % 7 != 3).then_some(90.0 - c as f64 * 0.8))
        .collect();
    grouped_bars(
        &stem,
        "Per-class accuracy",
        "class",
        "accuracy (%)",
        &groups,
        &[("los".into(), vals)],
    )
    .unwrap();
    check_pair(&stem, "Per-class accuracy");
}

#[test]
fn tick_and_cell_formats_are_short() {
    assert_eq!(fmt_tick(0.5), "0.5");
    assert_eq!(fmt_tick(50.0), "50");
    assert_eq!(fmt_tick(-0.0), "0");
    assert_eq!(fmt_tick(1e-4), "1.0e-4");
    // one format per map, from its largest value
    let d = cell_decimals(96.2);
    let cells: Vec<String> = [0.0, 9.3, 96.234].iter().map(|&v| fmt_cell(v, d)).collect();
    assert_eq!(cells, ["0.0", "9.3", "96.2"]);
    let d = cell_decimals(0.4567);
    assert_eq!(
        (fmt_cell(0.4567, d), fmt_cell(0.0, d)),
        ("0.457".into(), "0.000".into())
    );
    assert_eq!(fmt_cell(12345.0, cell_decimals(12345.0)), "1.23e4");
}

/// Writes one example of each figure to /tmp/plots-check for a look by eye.
#[test]
#[ignore]
fn write_examples_for_inspection() {
    let dir = Path::new("/tmp/plots-check");
    std::fs::create_dir_all(dir).unwrap();
    line_plot(
        &dir.join("line"),
        "CIFAR100-LT IR=100: LOS test accuracy vs smooth factor δ",
        "smooth factor δ",
        "top-1 accuracy (%)",
        &delta_series(),
    )
    .unwrap();
    let (xt, yt, v) = grid();
    heatmap(
        &dir.join("heatmap"),
        "LOS test accuracy (%) over learning rate × weight decay",
        "learning rate",
        "weight decay",
        &xt,
        &yt,
        &v,
    )
    .unwrap();
    let (g, s) = bars();
    grouped_bars(
        &dir.join("bars"),
        "Mean LoMa per class segment (classes sorted by training count)",
        "class segment",
        "LoMa",
        &g,
        &s,
    )
    .unwrap();
    let groups: Vec<String> = (0..100).map(|c| format!("class_{c}")).collect();
    let vals: Vec<Option<f64>> = (0..100)
        .map(|c| (c % 7 != 3).then_some(90.0 - c as f64 * 0.8))
        .collect();
    let vals2: Vec<Option<f64>> = (0..100).map(|c| Some(60.0 - c as f64 * 0.3)).collect();
    grouped_bars(
        &dir.join("per-class"),
        "Per-class test accuracy",
        "class",
        "accuracy (%)",
        &groups,
        &[("vanilla-fc".into(), vals), ("los".into(), vals2)],
    )
    .unwrap();
}
