//! Keeps two documents honest against the tree they describe:
//!
//! - `docs/safety.md`, section 3: the table of every file under `crates/*/src` (and the
//!   facade's `src/`) that holds `unsafe` code, with its counts of `unsafe` blocks,
//!   `unsafe fn`, `unsafe impl` and `unsafe trait`, must match the code;
//! - `docs/architecture.md`: every `.rs` file under `crates/shm-channel/src` must be named in
//!   its file table, and the table must name no file that is gone.
//!
//! Both tables sit between `<!-- ...:begin -->` and `<!-- ...:end -->` markers. The scan
//! reads the sources as text (std only, no parser): comments, string and character literals
//! are skipped, then each `unsafe` keyword is classified by the token after it.
//!
//! To update the docs after a change, run this test: a failure names each stale row, with
//! the counts the code has now.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository root (this crate is `crates/shm-channel`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, as paths relative to `base` with `/` separators, sorted.
fn rust_files(base: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(base).unwrap();
                let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    out
}

/// How many of each kind of `unsafe` a file holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    blocks: usize,
    fns: usize,
    impls: usize,
    traits: usize,
}

impl Counts {
    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// The count cells of a table row.
    fn cells(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.blocks, self.fns, self.impls, self.traits
        )
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blocks, {} fn, {} impl, {} trait",
            self.blocks, self.fns, self.impls, self.traits
        )
    }
}

/// The source with comments, string literals and character literals blanked out (each
/// replaced by a space), so that only code is left to scan.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || (c == 'b' && at(i + 1) == 'r')) && !ident(at(i.wrapping_sub(1))) && {
            let start = if c == 'b' { i + 2 } else { i + 1 };
            let mut j = start;
            while at(j) == '#' {
                j += 1;
            }
            at(j) == '"'
        } {
            // A raw string: r"...", r#"..."#, br"...".
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push(' ');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}', '"'), or a lifetime ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push(' ');
            } else if at(i + 2) == '\'' {
                i += 3;
                out.push(' ');
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The `unsafe` in `source`, by kind; an `Err` names a use of the keyword the inventory has
/// no column for.
fn count_unsafe(source: &str) -> Result<Counts, String> {
    let code = code_only(source);
    let mut counts = Counts::default();
    let mut tokens = tokens(&code).into_iter().peekable();
    while let Some(token) = tokens.next() {
        if token != "unsafe" {
            continue;
        }
        match tokens.peek().map(String::as_str) {
            Some("{") => counts.blocks += 1,
            Some("fn") => counts.fns += 1,
            Some("impl") => counts.impls += 1,
            Some("trait") => counts.traits += 1,
            other => return Err(format!("`unsafe` followed by {other:?}")),
        }
    }
    Ok(counts)
}

/// Identifiers and single punctuation characters, in order.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in code.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The lines of `doc` between `<!-- {name}:begin -->` and `<!-- {name}:end -->`.
fn section<'a>(doc: &'a str, file: &str, name: &str) -> Vec<&'a str> {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("{file} has no `{begin}` marker"));
    let stop = doc[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("{file} has no `{end}` marker after `{begin}`"));
    doc[start + begin.len()..start + stop].lines().collect()
}

/// The cells of a markdown table row, trimmed (`None` for a line that is not a row).
fn cells(line: &str) -> Option<Vec<&str>> {
    let line = line.trim();
    let inner = line.strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

/// A cell holding one path in backticks, ending in `.rs`.
fn path_cell(cell: &str) -> Option<&str> {
    let path = cell.strip_prefix('`')?.strip_suffix('`')?;
    path.ends_with(".rs").then_some(path)
}

/// Every file under `crates/*/src` and `src/` with its `unsafe` counts (files with none left
/// out).
fn unsafe_in_the_code() -> BTreeMap<String, Counts> {
    let root = root();
    let mut dirs = vec![root.join("src")];
    let mut crates: Vec<_> = fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    crates.sort();
    dirs.extend(crates);
    let mut found = BTreeMap::new();
    let mut unknown = Vec::new();
    for dir in dirs {
        for file in rust_files(&root, &dir) {
            let source = fs::read_to_string(root.join(&file)).unwrap();
            match count_unsafe(&source) {
                Ok(counts) if counts.is_zero() => {}
                Ok(counts) => {
                    found.insert(file, counts);
                }
                Err(what) => unknown.push(format!("{file}: {what}")),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "kinds of `unsafe` the inventory of docs/safety.md has no column for (add one, here \
         and there):\n  {}",
        unknown.join("\n  ")
    );
    found
}

#[test]
fn the_unsafe_inventory_of_safety_md_matches_the_code() {
    let doc_path = "docs/safety.md";
    let doc = fs::read_to_string(root().join(doc_path)).unwrap();
    let mut table: BTreeMap<String, Counts> = BTreeMap::new();
    let mut malformed = Vec::new();
    for line in section(&doc, doc_path, "unsafe-inventory") {
        let Some(cells) = cells(line) else { continue };
        let Some(path) = cells.first().and_then(|cell| path_cell(cell)) else {
            continue; // a header or separator row
        };
        let number = |i: usize| cells.get(i).and_then(|cell| cell.parse::<usize>().ok());
        match (number(1), number(2), number(3), number(4)) {
            (Some(blocks), Some(fns), Some(impls), Some(traits)) => {
                let counts = Counts {
                    blocks,
                    fns,
                    impls,
                    traits,
                };
                if table.insert(path.to_string(), counts).is_some() {
                    malformed.push(format!("`{path}` has two rows"));
                }
            }
            _ => malformed.push(format!(
                "`{path}`: expected `| file | blocks | fn | impl | trait | what for |`, got `{}`",
                line.trim()
            )),
        }
    }
    let code = unsafe_in_the_code();
    let mut stale = malformed;
    for (file, counts) in &code {
        match table.get(file) {
            None => stale.push(format!(
                "`{file}` holds unsafe code ({counts}) but has no row; add: | `{file}` {} \
                 what for |",
                counts.cells()
            )),
            Some(listed) if listed != counts => stale.push(format!(
                "`{file}`: the table says {listed}, the code has {counts}"
            )),
            Some(_) => {}
        }
    }
    for file in table.keys() {
        if !code.contains_key(file) {
            let why = match root().join(file).exists() {
                true => "holds no unsafe code any more",
                false => "does not exist",
            };
            stale.push(format!("`{file}` has a row but {why}: remove it"));
        }
    }
    assert!(
        stale.is_empty(),
        "the unsafe inventory of {doc_path} (section 3) is stale:\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn architecture_md_names_every_file_of_shm_channel() {
    let doc_path = "docs/architecture.md";
    let doc = fs::read_to_string(root().join(doc_path)).unwrap();
    let named: Vec<&str> = section(&doc, doc_path, "shm-channel-files")
        .into_iter()
        .filter_map(cells)
        .filter_map(|cells| cells.first().and_then(|cell| path_cell(cell)))
        .collect();
    let crate_dir = root().join("crates/shm-channel");
    let files = rust_files(&crate_dir.join("src"), &crate_dir.join("src"));
    let missing: Vec<_> = files
        .iter()
        .filter(|file| !named.contains(&file.as_str()))
        .map(|file| format!("`{file}` is not named: add a row saying what it is for"))
        .collect();
    let gone: Vec<_> = named
        .iter()
        .filter(|name| !files.iter().any(|file| file == *name))
        .map(|name| format!("`{name}` is named but does not exist: remove its row"))
        .collect();
    let problems: Vec<_> = missing.into_iter().chain(gone).collect();
    assert!(
        problems.is_empty(),
        "the file table of {doc_path} (crates/shm-channel/src, paths relative to it) is \
         stale:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_scan_counts_code_and_skips_comments_strings_and_characters() {
    let source = r##"
        // unsafe { in a comment }
        /* unsafe fn in a /* nested */ block comment */
        /// unsafe impl in a doc comment
        const S: &str = "unsafe { in a string \" still }";
        const R: &str = r#"unsafe trait in a raw "string""#;
        const C: char = '"';
        fn lifetime<'a>(x: &'a u8) -> &'a u8 { x }
        unsafe fn f() {}
        pub(crate) unsafe fn g() { unsafe { f() } }
        unsafe impl Send for X {}
        unsafe trait T {}
        let v = unsafe { *p };
    "##;
    let counts = count_unsafe(source).unwrap();
    assert_eq!(
        counts,
        Counts {
            blocks: 2,
            fns: 2,
            impls: 1,
            traits: 1
        }
    );
    assert!(count_unsafe("unsafe extern \"C\" {}").is_err());
}
