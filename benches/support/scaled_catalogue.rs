//! A catalogue N times the size of `patterns/`, for measuring how the
//! matcher scales as services are added (issue 15: start-up, memory and
//! per-post time at 1×, 10×, 100× services).
//!
//! Copy k (1 ≤ k < N) of every service gets a suffix made of syllables
//! (`twitter` → `twitterlo`, `twitterka.com`), so every alias looks like a
//! brand name rather than noise: the automaton grows the way a real
//! catalogue would. A name that would collide with one already taken
//! (`sky` with `pe` is `skype`) gets an `x` until it is unique. Context
//! words are kept (they are shared vocabulary); service-specific error
//! strings are dropped, since copies cannot share them. The language files
//! are copied unchanged.
//!
//! Shared by `benches/realistic.rs` and `examples/make_catalogue.rs` via
//! `#[path]`, so the benchmark and `scripts/bench-replay.sh` measure the same
//! catalogue.

use std::collections::HashSet;
use std::path::Path;

const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su"];

/// The suffix of copy `k`: its decimal digits spelled as syllables.
fn suffix(k: usize) -> String {
    k.to_string()
        .bytes()
        .map(|d| SYLLABLES[usize::from(d - b'0')])
        .collect()
}

/// `services.toml` text with every service repeated `factor` times.
pub fn scale_services(original: &str, factor: usize) -> Result<String, String> {
    let mut doc: toml::Table = toml::from_str(original).map_err(|e| e.to_string())?;
    let services = doc
        .get("service")
        .and_then(toml::Value::as_array)
        .cloned()
        .ok_or("services.toml has no [[service]] array")?;
    const NAMED: [&str; 5] = ["aliases", "ambiguous", "hashtags", "handles", "domains"];
    // Every id, and every name, the catalogue holds (lower-cased), so no
    // copy takes one. Ids and names are apart: a service's id is usually
    // also one of its aliases.
    let mut ids: HashSet<String> = HashSet::new();
    let mut taken: HashSet<String> = HashSet::new();
    for service in services.iter().filter_map(toml::Value::as_table) {
        if let Some(id) = service.get("id").and_then(toml::Value::as_str) {
            ids.insert(id.to_lowercase());
        }
        for field in NAMED {
            let names = service.get(field).and_then(toml::Value::as_array);
            for name in names.into_iter().flatten().filter_map(toml::Value::as_str) {
                taken.insert(name.to_lowercase());
            }
        }
    }
    let mut all = services.clone();
    for k in 1..factor {
        let s = suffix(k);
        for service in &services {
            let mut copy = service
                .as_table()
                .cloned()
                .ok_or("a service is not a table")?;
            let id = copy
                .get("id")
                .and_then(toml::Value::as_str)
                .ok_or("a service has no id")?
                .to_owned();
            let new_id = fresh(&mut ids, &format!("{id}{s}"), "");
            copy.insert("id".into(), new_id.clone().into());
            let name = copy
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or(&id)
                .to_owned();
            copy.insert("name".into(), format!("{name} {s}").into());
            for field in ["aliases", "ambiguous", "hashtags", "handles"] {
                map_strings(&mut copy, field, |text| {
                    fresh(&mut taken, &format!("{text}{s}"), "")
                });
            }
            map_strings(&mut copy, "domains", |text| match text.split_once('.') {
                Some((head, tail)) => fresh(&mut taken, &format!("{head}{s}"), &format!(".{tail}")),
                None => fresh(&mut taken, &format!("{text}{s}"), ""),
            });
            copy.remove("errors");
            all.push(toml::Value::Table(copy));
        }
    }
    doc.insert("service".into(), toml::Value::Array(all));
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// `stem` + `tail`, with an `x` added to `stem` until no one has the name.
fn fresh(taken: &mut HashSet<String>, stem: &str, tail: &str) -> String {
    let mut stem = stem.to_owned();
    while taken.contains(&format!("{stem}{tail}").to_lowercase()) {
        stem.push('x');
    }
    let name = format!("{stem}{tail}");
    taken.insert(name.to_lowercase());
    name
}

fn map_strings(table: &mut toml::Table, field: &str, mut f: impl FnMut(&str) -> String) {
    if let Some(toml::Value::Array(items)) = table.get_mut(field) {
        for item in items.iter_mut() {
            if let Some(text) = item.as_str() {
                *item = f(text).into();
            }
        }
    }
}

/// Writes a patterns folder at `dst`: `services.toml` scaled by `factor`
/// and the language files of `src` unchanged.
pub fn write_scaled_patterns(src: &Path, dst: &Path, factor: usize) -> Result<(), String> {
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    let services_path = src.join("services.toml");
    let original = std::fs::read_to_string(&services_path).map_err(|e| io(&services_path, e))?;
    let lang_dst = dst.join("lang");
    std::fs::create_dir_all(&lang_dst).map_err(|e| io(&lang_dst, e))?;
    let scaled = scale_services(&original, factor)?;
    let out = dst.join("services.toml");
    std::fs::write(&out, scaled).map_err(|e| io(&out, e))?;
    let lang_src = src.join("lang");
    for entry in std::fs::read_dir(&lang_src).map_err(|e| io(&lang_src, e))? {
        let path = entry.map_err(|e| io(&lang_src, e))?.path();
        if path.extension().is_some_and(|e| e == "toml")
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, lang_dst.join(name)).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}
