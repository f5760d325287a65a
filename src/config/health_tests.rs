//! A source's own health rule (`[sources.health]`): what loads, how it
//! falls back to `[health]`, and that its bad values are refused as
//! `[health]`'s are.

use super::*;
use crate::source::health::HealthOverride;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("ow.toml"), text)
}

const QUIET: &str = "[[sources]]\nkind = \"nostr\"\nname = \"quiet\"\nurls = [\"wss://r\"]\n";

#[test]
fn a_source_s_health_table_sets_its_keys_and_leaves_the_rest_to_health() {
    let text = format!(
        "[health]\nsilence_secs = 45\ncalm_secs = 30\n\n{QUIET}[sources.health]\nsilence_secs = 600\ngrace_secs = 0\n\n\
         [[sources]]\nkind = \"jetstream\"\nname = \"bluesky\"\nurls = [\"wss://j/subscribe\"]\n"
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let quiet = &config.sources[0];
    assert_eq!(
        quiet.health,
        HealthOverride {
            silence_secs: Some(600),
            grace_secs: Some(0),
            ..HealthOverride::default()
        }
    );
    assert_eq!(
        quiet.health.over(&config.health),
        HealthRule {
            silence_secs: 600,
            lag_secs: 120,
            grace_secs: 0,
            calm_secs: Some(30),
        }
    );
    // The entry with no table of its own is judged by `[health]`.
    let bluesky = &config.sources[1];
    assert!(bluesky.health.is_empty());
    assert_eq!(bluesky.health.over(&config.health), config.health);
}

/// Every key, out of its bounds, in `[sources.health]` and in `[health]`:
/// the same bounds and the same message, naming the key where it is.
#[test]
fn a_source_s_bad_health_value_is_refused_as_health_refuses_it() {
    let cases = [
        ("silence_secs = 0", "must be from 1 to 86400, got 0"),
        ("silence_secs = 86401", "must be from 1 to 86400, got 86401"),
        ("lag_secs = 0", "must be from 1 to 315360000, got 0"),
        ("grace_secs = -1", "must be from 0 to 86400, got -1"),
        ("calm_secs = 86401", "must be from 0 to 86400, got 86401"),
        (
            "silence_secs = 1.5",
            "invalid type: floating point `1.5`, expected i64",
        ),
    ];
    for (line, message) in cases {
        let key = line.split(' ').next().unwrap_or_default();
        let column = line.find('=').unwrap_or_default() + 3;
        let global = parse(&format!("[health]\n{line}")).expect_err(line);
        assert_eq!(
            global.to_string(),
            format!("ow.toml:2:{column}: `health.{key}`: {message}"),
            "{line}"
        );
        let own = parse(&format!("{QUIET}[sources.health]\n{line}")).expect_err(line);
        assert_eq!(
            own.to_string(),
            format!("ow.toml:6:{column}: `sources.health.{key}`: {message}"),
            "{line}"
        );
    }
    let unknown = parse(&format!("{QUIET}[sources.health]\nsilence = 600"))
        .expect_err("unknown key")
        .to_string();
    assert!(
        unknown.starts_with("ow.toml:6:1: unknown field `silence`"),
        "{unknown}"
    );
}

/// `config check` prints the table as written, and an entry without one
/// prints none.
#[test]
fn a_source_s_health_table_is_printed_only_when_set() {
    let config = parse(&format!("{QUIET}[sources.health]\nlag_secs = 900\n")).expect("valid");
    let shown = toml::to_string_pretty(&config).expect("toml");
    assert!(
        shown.contains("[sources.health]\nlag_secs = 900\n"),
        "{shown}"
    );
    let shown = toml::to_string_pretty(&parse(QUIET).expect("valid")).expect("toml");
    assert!(!shown.contains("[sources.health]"), "{shown}");
}
