//! Property tests of the list-file parser (`extract::source::datasets::listfile::load`), bounded (256
//! cases per property by default):
//!
//! - arbitrary text → `Ok` or `Err`, never a panic, with and without `skip_bad`; the result
//!   agrees with the format rule (`<path> <u32 label>` per line, blank lines and `#` comments
//!   ignored): `Err` names the first bad line, `skip_bad` counts every bad line;
//! - well-formed lists (any spacing, comments and blank lines in between) round-trip: the
//!   parsed paths are `root.join(path)`, labels and 1-based line numbers as written.
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test -p extract --test fuzz_listfile`.

use extract::source::datasets::Images;
use extract::source::datasets::listfile::load;
use proptest::prelude::*;
use std::path::Path;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The format rule, written from the module docs: `Some((path, label))` for an image line,
/// `None` for a blank or comment line, `Err` for a bad line.
fn rule(raw: &str) -> Result<Option<(&str, u32)>, ()> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        [p, l] => l.parse::<u32>().map(|l| Some((p, l))).map_err(|_| ()),
        _ => Err(()),
    }
}

/// Lines likely to hit the parser's edges: labels at and past u32, signs, extra fields,
/// unicode whitespace, comments, CR line ends.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z/._-]{1,12} [0-9]{1,3}",
        1 => "[a-z/._-]{1,12}[ \t]+(4294967295|4294967296|-1|\\+7|07|1e3|0x1|99999999999999999999)",
        1 => "[a-z/._-]{1,12}( [a-z0-9]{1,3}){0,3}",
        1 => "[ \t]*#.*",
        1 => "[ \t\u{a0}\u{3000}\r]*",
        1 => "\\PC{0,24}",
        1 => any::<String>(),
    ]
}

fn check_text(text: &str) -> Result<(), TestCaseError> {
    let d = tempfile::tempdir().unwrap();
    let list = d.path().join("list.txt");
    std::fs::write(&list, text).unwrap();
    let root = Path::new("/root/of/images");
    let lines: Vec<&str> = text.lines().collect();
    let parsed: Vec<_> = lines.iter().map(|l| rule(l)).collect();
    let good: Vec<(usize, &str, u32)> = parsed
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.ok().flatten().map(|(p, l)| (i + 1, p, l)))
        .collect();
    let first_bad = parsed.iter().position(|r| r.is_err()).map(|i| i + 1);
    let n_bad = parsed.iter().filter(|r| r.is_err()).count();

    for skip_bad in [false, true] {
        let got = load(&list, root, skip_bad);
        let want_ok = !good.is_empty() && (skip_bad || first_bad.is_none());
        match got {
            Ok(s) => {
                prop_assert!(
                    want_ok,
                    "accepted, but the rule rejects it (skip_bad {skip_bad})"
                );
                let Images::Files(f) = &s.data.images else {
                    return Err(TestCaseError::fail("list images are not files"));
                };
                prop_assert_eq!(f.paths.len(), good.len());
                prop_assert_eq!(s.data.labels.len(), good.len());
                for (k, (line, p, l)) in good.iter().enumerate() {
                    prop_assert_eq!(&f.paths[k], &root.join(p));
                    prop_assert_eq!(s.data.labels[k], *l);
                    prop_assert_eq!(f.lines[k], *line);
                }
                prop_assert_eq!(s.skipped.len(), if skip_bad { n_bad } else { 0 });
            }
            Err(e) => {
                prop_assert!(!want_ok, "rejected a valid list (skip_bad {skip_bad}): {e}");
                let msg = e.to_string();
                prop_assert!(msg.contains("list.txt"), "error names no file: {msg}");
                match first_bad {
                    Some(n) if !skip_bad => prop_assert!(
                        msg.contains(&format!("list.txt:{n}:")),
                        "error does not name line {n}: {msg}"
                    ),
                    _ => prop_assert!(msg.contains("no image lines"), "{msg}"),
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary text (including invalid UTF-8 written as bytes below) never panics and
    /// follows the rule.
    #[test]
    fn arbitrary_lines_follow_the_rule(
        lines in proptest::collection::vec(line(), 0..12),
        crlf in any::<bool>(),
        trailing in any::<bool>(),
    ) {
        let sep = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(sep);
        if trailing {
            text.push_str(sep);
        }
        check_text(&text)?;
    }

    /// Arbitrary bytes (often not UTF-8): `Ok` or `Err`, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("list.txt");
        std::fs::write(&list, &bytes).unwrap();
        for skip_bad in [false, true] {
            if let Err(e) = load(&list, d.path(), skip_bad) {
                let msg = e.to_string();
                prop_assert!(msg.contains("list.txt") && !msg.contains('\n'), "{msg}");
            }
        }
    }

    /// Well-formed lists round-trip (path, label), whatever the spacing, comments and blank
    /// lines between them.
    #[test]
    fn well_formed_lines_round_trip(
        entries in proptest::collection::vec(
            ("[A-Za-z0-9_./-]{0,6}[A-Za-z0-9_.-]{1,8}\\.(jpg|png|JPEG)", any::<u32>(), "[ \t]{0,2}", "[ \t]{1,3}", "[ \t]{0,2}", 0usize..3),
            1..20,
        ),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        let mut n = 0;
        for (path, label, lead, mid, tail, filler) in &entries {
            for j in 0..*filler {
                n += 1;
                text.push_str(if j % 2 == 0 { "# a comment 1 2 3\n" } else { "   \n" });
            }
            n += 1;
            text.push_str(&format!("{lead}{path}{mid}{label}{tail}\n"));
            want.push((n, path.clone(), *label));
        }
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("list.txt");
        std::fs::write(&list, &text).unwrap();
        let root = Path::new("/data/imagenet");
        let s = load(&list, root, false).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Images::Files(f) = &s.data.images else {
            return Err(TestCaseError::fail("list images are not files"));
        };
        prop_assert!(s.skipped.is_empty());
        prop_assert_eq!(f.paths.len(), want.len());
        for (k, (line, path, label)) in want.iter().enumerate() {
            prop_assert_eq!(&f.paths[k], &root.join(path));
            prop_assert_eq!(s.data.labels[k], *label);
            prop_assert_eq!(f.lines[k], *line);
        }
    }
}
