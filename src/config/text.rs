//! The configuration's text: where a key is (line and column, for
//! errors that name it) and `${VAR}` expansion.

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    (
        before.matches('\n').count() + 1,
        before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
    )
}

/// The dotted key (`daemon.status_secs`) whose `key = value` line holds
/// `offset`, from the nearest table header above it.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if !is_key(key) {
        return None;
    }
    let table = before[..start]
        .lines()
        .rev()
        .find_map(|l| header_name(l).map(|(name, _)| name));
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

/// Whether `text` is a TOML key: bare (`[A-Za-z0-9_-]+`) or quoted parts,
/// joined by dots. What stands before the first `=` of a line is not
/// always one: on a line of a multi-line array it is part of a value
/// (`"https://discord.com/api/webhooks/1/T0KEN?wait`), and named as the
/// key of an error it printed a webhook's secret.
fn is_key(text: &str) -> bool {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut rest = text.trim();
    loop {
        let after = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.split_once('"').map(|(_, after)| after)
        } else if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.split_once('\'').map(|(_, after)| after)
        } else {
            let end = rest.find(|c| !bare(c)).unwrap_or(rest.len());
            (end > 0).then(|| &rest[end..])
        };
        let Some(after) = after.map(str::trim_start) else {
            return false;
        };
        if after.is_empty() {
            return true;
        }
        let Some(next) = after.strip_prefix('.') else {
            return false;
        };
        rest = next.trim_start();
    }
}

/// The table a header line names, its parts trimmed (`[ a . b ]` →
/// `a.b`), and whether it is an array's (`[[sources]]`); `None` for a
/// line that is not a header. Read to its closing bracket: with the rest
/// of the line, a comment after the header (`[detector]  # see …`, as
/// the shipped example writes them) was read as part of the table's name,
/// and the errors in that table lost their line or named a wrong one.
fn header_name(line: &str) -> Option<(String, bool)> {
    let line = line.trim_start();
    let (inner, array) = match line.strip_prefix("[[") {
        Some(rest) => (rest.split_once("]]")?.0, true),
        None => (line.strip_prefix('[')?.split_once(']')?.0, false),
    };
    let name: Vec<&str> = inner.split('.').map(str::trim).collect();
    Some((name.join("."), array))
}

/// The table a header names, as far as the part that holds `offset`
/// (`sources` for an offset in `sources` of `[sources.connection]`), and
/// whether the header is an array's (`[[...]]`). A parse error there (a
/// `[sources.connection]` with no `[[sources]]` entry above it: "invalid
/// type: map, expected a sequence") named no key, as [`key_at`] reads
/// only `key = value` lines.
pub(super) fn header_at(text: &str, offset: usize) -> Option<(String, bool)> {
    let offset = offset.min(text.len());
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let array = line.trim_start().starts_with("[[");
    let open = line.find('[')? + if array { 2 } else { 1 };
    let close = open + line.get(open..)?.find(']')?;
    let at = offset - start;
    if at < open || at > close {
        return None;
    }
    let mut end = close;
    if let Some(dot) = line[at..close].find('.') {
        end = at + dot;
    }
    let name: String = line[open..end]
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    (!name.is_empty()).then_some((name, array))
}

/// Byte offset of the value on the `key = value` line of a dotted key
/// (`detector.fire_p`, `sources[1].urls`: indexes pick the n-th
/// `[[sources]]`). The value, as the TOML parser's errors point at it: the
/// checks after parsing (every bound of `[window]` and `[detector]`)
/// pointed at the key's column, `[daemon]`'s and `[health]`'s at the
/// value's.
pub(super) fn locate(text: &str, dotted: &str) -> Option<usize> {
    let (table, field) = match dotted.rsplit_once('.') {
        Some((table, field)) => (table, field),
        None => ("", dotted),
    };
    let field = field.split('[').next()?;
    // `sources[1].connection` → header `sources.connection`, 2nd occurrence
    // of `[[sources]]` before it.
    let header: String = table
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .collect::<Vec<_>>()
        .join(".");
    let index: usize = table
        .split_once('[')
        .and_then(|(_, rest)| rest.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let array_root = table.split_once('[').map(|(root, _)| root);
    let mut current = String::new();
    let mut seen_root = 0usize;
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        if let Some((name, array)) = header_name(line) {
            current = name;
            if Some(current.as_str()) == array_root && array {
                seen_root += 1;
            }
        } else if current == header
            && (array_root.is_none() || seen_root == index + 1)
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == field
        {
            let value_at = line.len() - value.len();
            return Some(offset + value_at + (value.len() - value.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

/// Expands `${NAME}` references; `$$` is a literal `$`.
pub(super) fn expand(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            // Where, never the value: it is often a secret (a token, a
            // webhook's URL), and the error is logged.
            let end = body.find('}').ok_or_else(|| {
                let column = value[..value.len() - rest.len() + at].chars().count() + 1;
                format!(
                    "has an unclosed `${{` at character {column} (write `$$` for a literal `$`)"
                )
            })?;
            let name = &body[..end];
            let resolved =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&resolved);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand`] for a secret, token or header value: one that `${VAR}`s
/// made empty is refused, naming them. Filtered away as "no secret", an
/// empty `secret` sent unsigned requests without a word.
pub(super) fn expand_secret(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let expanded = expand(value, lookup)?;
    if expanded.trim().is_empty() && value.contains("${") {
        let names: Vec<&str> = value
            .split("${")
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        return Err(format!(
            "is empty: environment variable {} is set but empty",
            names.join(", ")
        ));
    }
    Ok(expanded)
}
