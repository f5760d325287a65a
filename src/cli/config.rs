//! Where the configuration comes from, and `outagewatch config check`.
//!
//! Search path (the first that applies wins): `--config FILE`, then
//! `$OUTAGEWATCH_CONFIG`, then `$XDG_CONFIG_HOME/outagewatch/config.toml`
//! (`~/.config/…` when unset), then `/etc/outagewatch/config.toml`; with
//! none, the built-in defaults. A file named by the flag or the variable
//! must exist; the others are used when they do.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration and print it as it takes effect (defaults
    /// filled in, secrets masked); unset `${VAR}`s are listed, not fatal.
    Check {
        /// The file (default: the search path).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// The file the search path picks, if any, and how it was found.
pub fn find(flag: Option<&Path>) -> anyhow::Result<Option<(PathBuf, &'static str)>> {
    if let Some(path) = flag {
        return Ok(Some((path.to_path_buf(), "--config")));
    }
    if let Some(path) = std::env::var_os("OUTAGEWATCH_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(Some((PathBuf::from(path), "OUTAGEWATCH_CONFIG")));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(path) = xdg.map(|d| d.join("outagewatch/config.toml"))
        && present(&path)
    {
        return Ok(Some((path, "XDG_CONFIG_HOME")));
    }
    let etc = PathBuf::from("/etc/outagewatch/config.toml");
    if present(&etc) {
        return Ok(Some((etc, "/etc")));
    }
    Ok(None)
}

/// Whether the search path stops at `path`: anything there at all, even a
/// link to nothing or a folder, which loading then refuses with its name.
/// Passed over, a dangling link to the real configuration meant the
/// defaults, the public hosts and alerts on stdout, in silence.
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The configuration by the search path, or the defaults.
pub fn load(flag: Option<&Path>) -> anyhow::Result<Config> {
    load_with(flag, Config::load)
}

/// [`load`] for a command that reads no value a `${VAR}` reaches
/// ([`Config::load_lenient`]).
pub fn load_lenient(flag: Option<&Path>) -> anyhow::Result<Config> {
    load_with(flag, Config::load_lenient)
}

fn load_with(
    flag: Option<&Path>,
    read: fn(&Path) -> Result<Config, crate::config::ConfigError>,
) -> anyhow::Result<Config> {
    match find(flag)? {
        Some((path, how)) => {
            tracing::info!(config = %path.display(), found_by = how, "configuration");
            Ok(read(&path)?)
        }
        None => Ok(Config::default()),
    }
}

/// What [`Config::uncatalogued_sink_services`] finds with `matcher`'s
/// catalogue; said at every start (a warning, not a refusal: a
/// discovered service may be filtered on by its name).
pub fn uncatalogued_sink_services(
    config: &Config,
    matcher: &crate::matcher::Matcher,
) -> Vec<String> {
    let ids: Vec<&str> = matcher.services().map(|(id, _, _)| id).collect();
    config.uncatalogued_sink_services(&ids)
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check { config } = args.command;
    let Some((path, how)) = find(config.as_deref())? else {
        eprintln!("no configuration file found (see the search path in the README); the defaults:");
        super::outln!(
            "{}",
            toml::to_string_pretty(&masked(Config::default().with_health_resolved()))?.trim_end()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let text = Config::read_text(&path)?;
    let missing = RefCell::new(BTreeSet::new());
    let lookup = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            missing.borrow_mut().insert(name.to_owned());
            Some(format!("${{{name}}}"))
        })
    };
    let parsed = Config::parse_with(&path, &text, &lookup, true)?;
    // What `run` refuses beyond the file's own rules: it said "valid" to
    // a status server on a public address without a token, a pattern
    // folder that does not load, and an `[alerts] file` that is the
    // configuration file itself.
    if parsed.http.enabled {
        let token = crate::http::pick_token(
            std::env::var("OUTAGEWATCH_HTTP_TOKEN").ok(),
            parsed.http.token.clone(),
        );
        crate::http::HttpSettings::new(&parsed.http.listen, token)
            .with_context(|| format!("{}: [http]", path.display()))?;
    }
    // Where no `--state-dir` is given, as `run` would find it (none
    // when there is no home directory: `run` would need the flag).
    let state_dir = super::run::resolve_state_dir(None, &parsed).ok();
    super::run::refuse_daemon_overlaps(&parsed, Some(&path), None, state_dir.as_deref(), false)
        .map_err(|refused| anyhow::anyhow!("{refused}"))?;
    let matcher = super::load_matcher(parsed.patterns.as_deref())
        .with_context(|| format!("{}: `patterns`", path.display()))?;
    eprintln!("{} (found by {how}) is valid", path.display());
    for warning in uncatalogued_sink_services(&parsed, &matcher) {
        eprintln!("warning: {warning}");
    }
    let effective = parsed.with_health_resolved();
    super::outln!("{}", toml::to_string_pretty(&masked(effective))?.trim_end());
    let missing = missing.into_inner();
    if !missing.is_empty() {
        eprintln!(
            "environment variables not set (they must be when the daemon starts): {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

const MASK: &str = "********";

/// The configuration with secrets hidden: tokens, sink secrets, header
/// values, routing and API keys, and the
/// path and query of webhook URLs (Slack and Discord put their secret there).
fn masked(mut config: Config) -> Config {
    let hide = |value: &mut Option<String>| {
        if value
            .as_deref()
            .is_some_and(|v| !v.is_empty() && !unset_placeholders(v))
        {
            *value = Some(MASK.to_owned());
        }
    };
    for source in &mut config.sources {
        hide(&mut source.token);
    }
    for sink in &mut config.sinks {
        hide(&mut sink.secret);
        hide(&mut sink.routing_key);
        hide(&mut sink.api_key);
        for value in sink.headers.values_mut() {
            if !unset_placeholders(value) {
                *value = MASK.to_owned();
            }
        }
        if let Ok(mut url) = reqwest::Url::parse(&sink.url) {
            if url.path() != "/" || url.query().is_some() {
                url.set_path(MASK);
                url.set_query(None);
            }
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.set_fragment(None);
            sink.url = url.to_string();
        }
    }
    // A token may ride in a source URL's query or user name.
    for source in &mut config.sources {
        for url in &mut source.urls {
            if !unset_placeholders(url) {
                *url = crate::alert::url::redact(url);
            }
        }
    }
    hide(&mut config.http.token);
    config
}

/// Whether `value` is nothing but `${NAME}` placeholders, left as they
/// are because their variables are unset: shown, so the user sees which.
/// Anything else is masked: a value that merely began with one
/// (`${UNSET}${SET}`) showed the set variable's secret.
fn unset_placeholders(value: &str) -> bool {
    let mut rest = value;
    while !rest.is_empty() {
        let Some(name_end) = rest.strip_prefix("${").and_then(|r| r.find('}')) else {
            return false;
        };
        let name = &rest[2..2 + name_end];
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return false;
        }
        rest = &rest[2 + name_end + 1..];
    }
    !value.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unset_placeholders_are_shown() {
        for (value, shown) in [
            ("${TOKEN}", true),
            ("${A}${B_2}", true),
            ("${A_UNSET}tokensecret123", false),
            ("Bearer ${T}", false),
            ("${}", false),
            ("${1A}", false),
            ("${A", false),
            ("", false),
            ("secret", false),
        ] {
            assert_eq!(unset_placeholders(value), shown, "{value:?}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let text = "[[sources]]\nname = \"m\"\nkind = \"mastodon\"\nurls = [\"wss://tokenuser@m.example/api/v1/streaming?access_token=sourcesecret\"]\n\n[[sinks]]\nname = \"slack\"\nurl = \"https://hookuser@hooks.slack.com/services/T0/B0/xyz#frag\"\nformat = \"slack\"\nsecret = \"s\"\n\n[http]\ntoken = \"t\"\n";
        let config = Config::parse(Path::new("x.toml"), text).expect("valid");
        let shown = toml::to_string_pretty(&masked(config)).expect("toml");
        for secret in [
            "xyz",
            "\"s\"",
            "\"t\"",
            "hookuser",
            "frag",
            "sourcesecret",
            "tokenuser",
        ] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        assert!(shown.contains("hooks.slack.com"), "{shown}");
        assert!(
            shown.contains("wss://***@m.example/api/v1/streaming?access_token=***"),
            "{shown}"
        );
    }
}
