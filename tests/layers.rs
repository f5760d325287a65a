//! The structure `src/lib.rs` documents holds. The dependency direction: every
//! `crate::` path in the library code of `src/` names a module on a lower
//! layer than its own (so no two modules import each other, directly or
//! through others), and every module declared in `lib.rs` is on a layer.
//! And every tokio task of the library is spawned through the supervisor
//! (`src/supervise.rs`), so that its panic is seen when it happens.
//!
//! The layers are read from `lib.rs`'s own documentation, so the list and
//! this check cannot drift apart. Test modules inside `src/` (a
//! `#[cfg(test)] mod …` block, or a file declared by one) are left out: a
//! test may reach up, as a detector test that saves through the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Layer of each module, 0 at the bottom, from the `text` block after
/// "Dependencies point one way" in `lib.rs`'s docs (top line first).
fn documented_layers(lib: &str) -> BTreeMap<String, usize> {
    let docs: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let from = docs
        .iter()
        .position(|l| l.starts_with("Dependencies point one way"))
        .expect("lib.rs documents the dependency direction");
    let open = from
        + docs[from..]
            .iter()
            .position(|l| *l == "```text")
            .expect("a ```text block of layers");
    let lines: Vec<&str> = docs[open + 1..]
        .iter()
        .take_while(|l| **l != "```")
        .copied()
        .collect();
    let mut layers = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        for module in line.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let previous = layers.insert(module.to_owned(), lines.len() - 1 - i);
            assert!(previous.is_none(), "{module} is on two layers");
        }
    }
    layers
}

/// Modules declared in `lib.rs` (`pub mod x;` or `mod x;`).
fn declared_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// `source` with comments, string and character literals blanked out
/// (newlines kept), so braces and paths are only the code's.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let start = i;
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) =
            raw_string_end(&chars, i).filter(|_| i == 0 || !ident(chars[i - 1]))
        {
            i = end;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
            continue;
        }
        let end = i.min(chars.len());
        out.extend(chars[start..end].iter().filter(|c| **c == '\n'));
        out.push(' ');
    }
    out
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i` ends.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take(hashes).all(|c| *c == '#') {
            let end = j + 1 + hashes;
            if end <= chars.len() {
                return Some(end);
            }
        }
        j += 1;
    }
    Some(chars.len())
}

/// `code` without its `#[cfg(test)]` module blocks; also the names of the
/// test modules it declares as files (`#[cfg(test)] mod tests;`).
fn without_test_modules(code: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut test_files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = skip_attributes(after);
        let item = match item.strip_prefix("pub") {
            Some(public) if public.starts_with('(') => {
                public.split_once(')').map_or(public, |(_, rest)| rest)
            }
            Some(public) => public,
            None => item,
        };
        let Some(module) = item.trim_start().strip_prefix("mod ") else {
            // A test-only function or field: its body is library-shaped
            // code and is checked.
            rest = after;
            continue;
        };
        let name: String = module
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let body = &module[name.len()..];
        if body.trim_start().starts_with(';') {
            test_files.push(name);
            rest = after;
            continue;
        }
        let open = after.find('{').expect("a test module block");
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    kept.push_str(rest);
    (kept, test_files)
}

/// `code` past the attributes that start it (`#[path = …]` between a
/// `#[cfg(test)]` and its `mod`).
fn skip_attributes(code: &str) -> &str {
    let mut item = code.trim_start();
    while let Some(attribute) = item.strip_prefix("#[") {
        item = attribute
            .split_once(']')
            .map_or("", |(_, rest)| rest)
            .trim_start();
    }
    item
}

/// The files named by `#[path = "…"]` on test modules (`#[cfg(test)]`
/// first), read from the source itself: `code_only` drops strings.
fn test_module_path_attributes(source: &str) -> Vec<String> {
    source
        .split("#[cfg(test)]")
        .skip(1)
        .filter_map(|after| {
            let path = after.trim_start().strip_prefix("#[path")?;
            let (_, quoted) = path.trim_start().strip_prefix('=')?.split_once('"')?;
            Some(quoted.split_once('"')?.0.to_owned())
        })
        .collect()
}

/// The crate modules a piece of code names: `crate::x…` and every first
/// segment of `crate::{x…, y…}`.
fn named_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let segment = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start => {
                        names.push(segment(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(segment(after));
        }
    }
    names
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The test-module files under `src/`: for each file declaring
/// `#[cfg(test)] mod name;`, its `name.rs` (beside a `mod.rs`, else in the
/// folder named after the file).
fn test_module_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut tests = Vec::new();
    for file in files {
        let source = read(file);
        let dir = file.parent().expect("a folder");
        // `#[path]` is relative to the declaring file's folder.
        for path in test_module_path_attributes(&source) {
            tests.push(dir.join(path));
        }
        let (_, names) = without_test_modules(&code_only(&source));
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dir = if matches!(stem, "mod" | "lib" | "main") {
            dir.to_path_buf()
        } else {
            dir.join(stem)
        };
        for name in names {
            tests.push(dir.join(format!("{name}.rs")));
            tests.push(dir.join(&name).join("mod.rs"));
        }
    }
    tests
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// `(file, from, to)` for every library import from `from` to a module
/// `to` that is not on a lower layer than `from`.
fn violations(src: &Path, layers: &BTreeMap<String, usize>) -> Vec<(PathBuf, String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tests = test_module_files(&files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !tests.contains(f)) {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let (code, _) = without_test_modules(&code_only(&read(file)));
        for to in named_modules(&code) {
            let (Some(&a), Some(&b)) = (layers.get(&from), layers.get(&to)) else {
                continue;
            };
            if to != from && b >= a {
                found.push((file.clone(), from.clone(), to));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_module_is_on_a_documented_layer() {
    let lib = read(&src().join("lib.rs"));
    let layers = documented_layers(&lib);
    let declared = declared_modules(&lib);
    assert!(
        declared.len() > 10,
        "lib.rs declares its modules: {declared:?}"
    );
    let missing: Vec<&String> = declared
        .iter()
        .filter(|m| !layers.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "modules on no layer in lib.rs's docs: {missing:?}"
    );
    let unknown: Vec<&String> = layers.keys().filter(|m| !declared.contains(m)).collect();
    assert!(
        unknown.is_empty(),
        "layers name modules lib.rs does not declare: {unknown:?}"
    );
}

#[test]
fn library_imports_only_point_down_the_layers() {
    let src = src();
    let layers = documented_layers(&read(&src.join("lib.rs")));
    let found = violations(&src, &layers);
    let list: Vec<String> = found
        .iter()
        .map(|(file, from, to)| format!("{}: {from} uses {to}", file.display()))
        .collect();
    assert!(
        list.is_empty(),
        "imports against the layers documented in src/lib.rs (move the shared type down, or the module up):\n{}",
        list.join("\n")
    );
}

/// The checks themselves see what they must: paths in groups and alone,
/// not those in comments, strings or test modules.
#[test]
fn the_scanner_finds_paths_in_code_only() {
    let code = code_only(
        "use crate::{Micros, alert::Alert, window::{Bucket, Windows}};\n\
         // crate::daemon in a comment\n\
         let s = \"crate::cli\"; let r = r#\"crate::http\"#; let c = '{';\n\
         fn f() -> crate::detect::Detector { todo!() }\n\
         #[cfg(test)]\nmod tests { use crate::state::Store; fn g() { if x { } } }\n\
         #[cfg(test)]\nmod more;\n\
         #[cfg(test)]\n#[path = \"elsewhere_tests.rs\"]\nmod elsewhere;\n\
         #[cfg(test)]\npub(crate) mod helpers { use crate::cli::X; }\n\
         fn h() { crate::pipeline::prepare(); }\n",
    );
    let (code, test_files) = without_test_modules(&code);
    assert_eq!(test_files, ["more", "elsewhere"]);
    assert_eq!(
        test_module_path_attributes(
            "#[cfg(test)]\n#[path = \"elsewhere_tests.rs\"]\nmod tests;\n#[cfg(test)]\nmod more;"
        ),
        ["elsewhere_tests.rs"]
    );
    assert_eq!(
        named_modules(&code),
        ["Micros", "alert", "window", "detect", "pipeline"]
    );
}

/// Library files that may spawn a tokio task other than through
/// `crate::supervise::Supervisor`, each with why.
const UNSUPERVISED_SPAWNS: &[(&str, &str)] = &[
    ("supervise.rs", "the supervisor itself"),
    (
        "cli/run.rs",
        "the second signal's handler, which only exits the process",
    ),
];

/// `(file, line of code)` of every `tokio::spawn(`, `tokio::task::spawn(`
/// or `runtime.spawn(` in the
/// library code of `src/`, outside test modules and the allowed files.
fn unsupervised_spawns(src: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tests = test_module_files(&files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !tests.contains(f)) {
        let relative = file.strip_prefix(src).expect("under src");
        if UNSUPERVISED_SPAWNS
            .iter()
            .any(|(allowed, _)| relative == Path::new(allowed))
        {
            continue;
        }
        found.extend(
            spawn_lines(&read(file))
                .into_iter()
                .map(|n| (file.clone(), n)),
        );
    }
    found
}

/// The lines of `source` (trimmed, strings blanked) that spawn a tokio
/// task, outside comments, strings and test modules.
fn spawn_lines(source: &str) -> Vec<String> {
    let (code, _) = without_test_modules(&code_only(source));
    code.lines()
        .filter(|line| {
            ["tokio::spawn(", "tokio::task::spawn(", "runtime.spawn("]
                .iter()
                .any(|spawn| line.contains(spawn))
        })
        .map(|line| line.trim().to_owned())
        .collect()
}

/// A task spawned any other way keeps its panic in its handle until
/// someone awaits it: the daemon would run on without it, reporting
/// healthy (see `src/supervise.rs`).
#[test]
fn long_running_tasks_are_spawned_through_the_supervisor() {
    let src = src();
    // The scan sees what it must: code, not comments, strings or tests.
    assert_eq!(
        spawn_lines(
            "// tokio::spawn(a)\nlet s = \"runtime.spawn(\";\n\
             let t = tokio::spawn(work());\n\
             #[cfg(test)]\nmod tests { fn f() { tokio::spawn(x()); } }\n\
             let u = runtime.spawn(more());\n\
             let v = tokio::task::spawn(x());\n"
        ),
        [
            "let t = tokio::spawn(work());",
            "let u = runtime.spawn(more());",
            "let v = tokio::task::spawn(x());"
        ]
    );
    let found: Vec<String> = unsupervised_spawns(&src)
        .iter()
        .map(|(file, line)| format!("{}: {line}", file.display()))
        .collect();
    assert!(
        found.is_empty(),
        "tasks spawned outside crate::supervise::Supervisor (spawn them through it, or add the file to UNSUPERVISED_SPAWNS with why):\n{}",
        found.join("\n")
    );
}

/// The stages that think, as `src/lib.rs` names them: no I/O, no clock.
const PURE_STAGES: [&str; 3] = ["normalize", "matcher", "detect"];

/// What a pure stage may not name: the file system, the environment, the
/// network, a clock, the async runtime, the log (what a decision did is
/// said by its caller, which knows when it happened).
const IMPURE: [&str; 10] = [
    "std::fs",
    "std::env",
    "std::net",
    "std::io::stdin",
    "Instant::now",
    "SystemTime",
    "Utc::now",
    "Local::now",
    "tokio::",
    "tracing::",
];

/// `(file, what)` for every impure name in the library code of a pure
/// stage (test modules left out: a test may read a fixture).
fn impurities(src: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tests = test_module_files(&files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !tests.contains(f)) {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        if !PURE_STAGES.contains(&module.as_str()) {
            continue;
        }
        let (code, _) = without_test_modules(&code_only(&read(file)));
        for name in IMPURE {
            if code.contains(name) {
                found.push((file.clone(), name));
            }
        }
    }
    found
}

#[test]
fn the_stages_that_think_do_no_io_and_read_no_clock() {
    let src = src();
    let lib = read(&src.join("lib.rs"));
    let layers = documented_layers(&lib);
    for stage in PURE_STAGES {
        assert!(layers.contains_key(stage), "{stage} is a module of lib.rs");
    }
    let found: Vec<String> = impurities(&src)
        .iter()
        .map(|(file, name)| format!("{}: {name}", file.display()))
        .collect();
    assert!(
        found.is_empty(),
        "I/O or a clock in a pure stage (move it to an edge: a source, the store, a sink, config, cli):\n{}",
        found.join("\n")
    );
}

/// The purity scan sees a clock read in code, not in a comment, a string
/// or a test module.
#[test]
fn the_purity_scan_reads_code_only() {
    let code = code_only(
        "fn f() { let t = std::time::Instant::now(); }\n\
         // std::fs::read in a comment\n\
         const S: &str = \"tokio::spawn\";\n\
         #[cfg(test)]\nmod tests { fn g() { std::fs::read(\"x\"); } }\n",
    );
    let (code, _) = without_test_modules(&code);
    let seen: Vec<&str> = IMPURE.into_iter().filter(|n| code.contains(n)).collect();
    assert_eq!(seen, ["Instant::now"]);
}
