//! The one layout checker of the workspace: every crate's layout test (`tests/layout.rs`,
//! `tests/suite/layout.rs`) lists its sources and checks its house rules with these functions,
//! on the source text (no parser, std only).
//!
//! - [`sources`]: the `.rs` files under a folder, with their code (comments and the insides of
//!   string and char literals blanked, line numbers kept: [`code`]);
//! - [`rooms_named`] and [`back_arrows`]: a room names only itself and the rooms below it;
//! - [`words_used`] and [`face_rules`]: what only a face (the binary's `main.rs` and `command/`)
//!   may do — print, read the process's arguments, exit the process, install a signal handler,
//!   name the clap structs ([`clap_types`]);
//! - [`long_files`]: no file over a limit;
//! - [`against_allow_list`]: today's violations of a rule that does not hold yet, listed by
//!   hand, so that the list can only shrink.

use std::path::{Path, PathBuf};

/// One source file.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file on disk.
    pub path: PathBuf,
    /// Its path below the folder it was listed from, `/`-separated (`command/run.rs`).
    pub rel: String,
    /// Its text as written.
    pub text: String,
    /// Its code: [`code`] of the text.
    pub code: String,
}

impl Source {
    /// The code before the first `#[cfg(test)]` (unit tests may report what they measured).
    pub fn code_before_tests(&self) -> &str {
        self.code.split("#[cfg(test)]").next().unwrap_or("")
    }
}

/// Every `.rs` file below `dir`, sorted by path.
pub fn sources(dir: &Path) -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            Source {
                code: code(&text),
                path,
                rel,
                text,
            }
        })
        .collect()
}

/// `text` with its comments (`//`, nested `/* */`) and the insides of its string, raw string
/// and char literals blanked to spaces; the quotes and every newline stay, so lines keep their
/// numbers. Rough but enough for source text: `'a` (a lifetime) is left as it is.
pub fn code(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (at(i + 1) == '"' || at(i + 1) == '#')
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
            && {
                let mut k = i + 1;
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            }
        {
            // a raw string: r"…", r#"…"#, br"…"
            let mut hashes = 0;
            out.push('r');
            i += 1;
            while c[i] == '#' {
                hashes += 1;
                out.push('#');
                i += 1;
            }
            out.push('"');
            i += 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                    out.push('"');
                    out.extend(std::iter::repeat_n('#', hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() {
                if c[i] == '\\' {
                    out.push(' ');
                    out.push(blank(at(i + 1)));
                    i += 2;
                } else if c[i] == '"' {
                    out.push('"');
                    i += 1;
                    break;
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == '\'' && at(i + 1) == '\\' {
            // an escaped char literal: '\n', '\'', '\u{7f}'
            out.push('\'');
            i += 1;
            while i < c.len() && !(c[i] == '\'' && c[i - 1] != '\\' || c[i] == '\n') {
                out.push(' ');
                i += 1;
            }
            if at(i) == '\'' {
                out.push('\'');
                i += 1;
            }
        } else if c[i] == '\'' && at(i + 2) == '\'' && at(i + 1) != '\n' {
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Whether `code[at..]` starts a word: not preceded by a letter, digit or `_`.
fn starts_word(code: &str, at: usize) -> bool {
    !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
}

/// Every word of `words` that `code` uses, each once, in the order of `words`. A word is found
/// where no letter, digit or `_` comes before it (`my_print!` is not `print!`), and, when it
/// ends in a letter, digit or `_`, where none comes after it (`RunArgsX` is not `RunArgs`).
pub fn words_used<'w>(code: &str, words: &[&'w str]) -> Vec<&'w str> {
    words
        .iter()
        .copied()
        .filter(|w| {
            let open_end = w.ends_with(|c: char| c.is_alphanumeric() || c == '_');
            code.match_indices(*w).any(|(at, _)| {
                starts_word(code, at)
                    && !(open_end
                        && code[at + w.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_'))
            })
        })
        .collect()
}

/// Every name of `names` (types: `RunArgs`) that `code` uses as a word, each once, where it is
/// not an enum variant of the same name: neither on a path after a type (`Provenance::Cli`) nor
/// declared at the start of its line (`    Cli { command: String },`).
pub fn names_used<'n>(code: &str, names: &[&'n str]) -> Vec<&'n str> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    names
        .iter()
        .copied()
        .filter(|n| {
            code.match_indices(*n).any(|(at, _)| {
                let after = &code[at + n.len()..];
                if !starts_word(code, at) || after.starts_with(ident) {
                    return false;
                }
                let before = &code[..at];
                if let Some(path) = before.strip_suffix("::") {
                    let seg: String = path.chars().rev().take_while(|c| ident(*c)).collect();
                    if seg.chars().last().is_some_and(|c| c.is_uppercase()) {
                        return false; // `Type::Variant`
                    }
                }
                let line_start = before.rsplit('\n').next().unwrap_or("");
                let declared = line_start.trim().is_empty()
                    && ["{", "(", ",", "="]
                        .iter()
                        .any(|p| after.trim_start().starts_with(p));
                !declared
            })
        })
        .collect()
}

/// Every `crate::<room>` that `code` names (one entry per mention), of the rooms in `rooms`.
pub fn rooms_named<'r>(code: &str, rooms: &[&'r str]) -> Vec<&'r str> {
    let mut named = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(r) = rooms.iter().find(|r| {
            rest.starts_with(**r)
                && !rest[r.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        }) {
            named.push(*r);
        }
    }
    named
}

/// The room (first folder) of a source below `src`, if it is one of `rooms`.
pub fn room_of<'r>(s: &Source, rooms: &[&'r str]) -> Option<&'r str> {
    let first = s.rel.split('/').next()?;
    rooms
        .iter()
        .copied()
        .find(|r| *r == first && s.rel.contains('/'))
}

/// The back-arrows of `src`: a file of a room (the `rooms` listed bottom to top) naming a room
/// above its own; and, where `beside_names_none`, a file at the top of `src` (not `lib.rs` or
/// `main.rs`) naming any room. Panics on a room with no file.
pub fn back_arrows(src: &Path, rooms: &[&str], beside_names_none: bool) -> Vec<String> {
    let all = sources(src);
    let mut bad = Vec::new();
    for room in rooms {
        assert!(
            all.iter().any(|s| room_of(s, rooms) == Some(room)),
            "room {room} is empty"
        );
    }
    for s in &all {
        match room_of(s, rooms) {
            Some(room) => {
                let level = rooms.iter().position(|r| *r == room).unwrap();
                for r in rooms_named(&s.code, rooms) {
                    if rooms.iter().position(|x| *x == r).unwrap() > level {
                        bad.push(format!(
                            "{} names crate::{r} (a room above {room})",
                            s.path.display()
                        ));
                    }
                }
            }
            None if beside_names_none
                && !s.rel.contains('/')
                && s.rel != "lib.rs"
                && s.rel != "main.rs" =>
            {
                for r in rooms_named(&s.code, rooms) {
                    bad.push(format!(
                        "{} (beside the rooms) names crate::{r}",
                        s.path.display()
                    ));
                }
            }
            None => {}
        }
    }
    bad
}

/// The files below `dir` over `max` lines.
pub fn long_files(dir: &Path, max: usize) -> Vec<String> {
    sources(dir)
        .iter()
        .filter_map(|s| {
            let n = s.text.lines().count();
            (n > max).then(|| format!("{}: {n} lines", s.path.display()))
        })
        .collect()
}

/// The public types that derive clap's `Parser`, `Args` or `Subcommand` in `sources`: the clap
/// structs (and enums) of a face.
pub fn clap_types(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in sources {
        let mut pending = false;
        for line in s.code.lines() {
            let t = line.trim();
            if t.starts_with("#[derive(") {
                pending = words_used(t, &["Parser", "Args", "Subcommand"]).len()
                    + words_used(t, &["clap::Parser", "clap::Args", "clap::Subcommand"]).len()
                    > 0;
            } else if pending
                && ["struct ", "enum ", "pub "]
                    .iter()
                    .any(|k| t.starts_with(k))
            {
                // the item the derive belongs to (past its other attributes, however long)
                for kw in ["pub struct ", "pub enum "] {
                    if let Some(rest) = t.strip_prefix(kw) {
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !found.contains(&name) {
                            found.push(name);
                        }
                    }
                }
                pending = false;
            }
        }
    }
    found
}

/// Words that print (to stdout or stderr).
pub const PRINTS: [&str; 7] = [
    "print!",
    "println!",
    "eprint!",
    "eprintln!",
    "stdout()",
    "stderr()",
    "dbg!",
];
/// Words that read the process's arguments.
pub const ARGS: [&str; 2] = ["env::args", "env::args_os"];
/// Words that exit the process.
pub const EXITS: [&str; 2] = ["process::exit", "process::abort"];
/// Words that install a signal handler.
pub const SIGNALS: [&str; 4] = ["signal_hook", "ctrlc", "libc::signal", "sigaction"];

/// The face rules: what only a face may do. For every source that `is_face` does not accept,
/// one `"<prefix><rel>: <what> (<word>)"` per word it uses of [`PRINTS`], [`ARGS`], [`EXITS`],
/// [`SIGNALS`] and `clap_structs`. `tests_may_print`: a file's unit tests (after `#[cfg(test)]`)
/// may print.
pub fn face_rules(
    prefix: &str,
    sources: &[Source],
    is_face: &dyn Fn(&str) -> bool,
    clap_structs: &[String],
    tests_may_print: bool,
) -> Vec<String> {
    let clap: Vec<&str> = clap_structs.iter().map(String::as_str).collect();
    let mut bad = Vec::new();
    for s in sources.iter().filter(|s| !is_face(&s.rel)) {
        let prints_in = if tests_may_print {
            s.code_before_tests()
        } else {
            &s.code
        };
        let rules: [(&str, &str, &[&str]); 4] = [
            ("prints", prints_in, &PRINTS),
            ("reads the arguments", &s.code, &ARGS),
            ("exits the process", &s.code, &EXITS),
            ("installs a signal handler", &s.code, &SIGNALS),
        ];
        for (what, code, words) in rules {
            for w in words_used(code, words) {
                bad.push(format!("{prefix}{}: {what} ({w})", s.rel));
            }
        }
        for n in names_used(&s.code, &clap) {
            bad.push(format!("{prefix}{}: names the clap struct ({n})", s.rel));
        }
    }
    bad
}

/// `found` checked against `allowed` (today's violations, listed by hand): `Err` names every
/// violation not on the list (new) and every entry no longer found (stale: take it off).
pub fn against_allow_list(found: &[String], allowed: &[&str]) -> Result<(), String> {
    let new: Vec<&String> = found
        .iter()
        .filter(|f| !allowed.contains(&f.as_str()))
        .collect();
    let stale: Vec<&&str> = allowed
        .iter()
        .filter(|a| !found.iter().any(|f| f == *a))
        .collect();
    let mut msg = String::new();
    if !new.is_empty() {
        msg += "new violations:\n";
        for n in new {
            msg += &format!("  {n}\n");
        }
    }
    if !stale.is_empty() {
        msg += "stale allow-list entries (fixed: take them off the list):\n";
        for s in stale {
            msg += &format!("  {s}\n");
        }
    }
    if msg.is_empty() { Ok(()) } else { Err(msg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_blanks_comments_and_strings_and_keeps_lines() {
        let t = "let s = \"println!(\\\"x\\\")\"; // eprintln!\n/* a /* nested */ print! */ x\nlet r = r#\"dbg!(\"a\")\"#; let c = '\"'; fn f<'a>(x: &'a str) {}\n";
        let c = code(t);
        assert_eq!(c.lines().count(), t.lines().count());
        assert!(words_used(&c, &PRINTS).is_empty(), "{c}");
        assert!(c.contains("fn f<'a>(x: &'a str)"), "{c}");
        assert!(c.contains(" x\n"));
    }

    #[test]
    fn words_need_a_boundary() {
        let c = code("my_print!(a); eprintln!(\"e\"); let o = std::io::stdout();");
        assert_eq!(words_used(&c, &PRINTS), vec!["eprintln!", "stdout()"]);
        assert!(words_used("RunArgsX", &["RunArgs"]).is_empty());
        assert_eq!(names_used("&RunArgs)", &["RunArgs"]), vec!["RunArgs"]);
        assert!(names_used("RunArgsX", &["RunArgs"]).is_empty());
        let variants = "enum P {\n    Cli { c: String },\n}\nP::Cli { c } => c,";
        assert!(names_used(variants, &["Cli"]).is_empty());
        assert_eq!(
            names_used(
                "use retrain::command::cli::{Cli, Command};",
                &["Cli", "Command"]
            ),
            vec!["Cli", "Command"]
        );
        assert_eq!(
            words_used("std::env::args().collect()", &ARGS),
            vec!["env::args"]
        );
    }

    #[test]
    fn rooms_and_clap_types_are_found() {
        let rooms = ["run", "output"];
        assert_eq!(
            rooms_named(&code("use crate::output::X; // crate::run"), &rooms),
            vec!["output"]
        );
        assert!(rooms_named("use crate::runner::Job;", &rooms).is_empty());
        let s = Source {
            path: "a.rs".into(),
            rel: "a.rs".into(),
            text: String::new(),
            code: code(
                "#[derive(Debug, clap::Args)]\n/// doc\n#[command(\n    name = \"x\",\n)]\npub struct RunArgs {}\n#[derive(Parser)]\nstruct W;\n#[derive(Debug, Subcommand)]\npub enum Command {}\n#[derive(Debug)]\npub struct Plain;\n",
            ),
        };
        assert_eq!(clap_types(&[s]), vec!["RunArgs", "Command"]);
    }

    #[test]
    fn the_allow_list_only_shrinks() {
        let found = vec!["a.rs: prints (print!)".to_string()];
        assert!(against_allow_list(&found, &["a.rs: prints (print!)"]).is_ok());
        assert!(against_allow_list(&found, &[]).unwrap_err().contains("new"));
        let e = against_allow_list(&[], &["a.rs: prints (print!)"]).unwrap_err();
        assert!(e.contains("stale"));
    }
}
