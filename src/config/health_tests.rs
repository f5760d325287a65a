//! A source's own health rule (`[sources.health]`): what loads, how it
//! falls back to `[health]` and then to its kind's defaults, that its bad
//! values are refused as `[health]`'s are, and what `config check` prints.

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
        quiet.health_rule(&config.health),
        HealthRule {
            silence_secs: 600,
            lag_secs: 120,
            grace_secs: 0,
            calm_secs: Some(30),
        }
    );
    // The entry with no table of its own is judged by `[health]`, over
    // its kind's defaults.
    let bluesky = &config.sources[1];
    assert!(bluesky.health.is_empty());
    assert_eq!(
        bluesky.health_rule(&config.health),
        HealthRule {
            silence_secs: 45,
            calm_secs: Some(30),
            ..HealthRule::firehose()
        }
    );
    assert_eq!(bluesky.health_rule(&config.health), config.global_health());
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

/// Which value each key takes: the source's own `[sources.health]`, else
/// `[health]`, else its kind's default (a firehose's 60 s of silence, a
/// quiet stream's 600 s).
#[test]
fn each_health_key_comes_from_the_source_then_health_then_the_kind() {
    let rule = |silence_secs, lag_secs, grace_secs, calm_secs| HealthRule {
        silence_secs,
        lag_secs,
        grace_secs,
        calm_secs,
    };
    // (kind, [health], [sources.health], the rule)
    let cases = [
        ("jetstream", "", "", rule(60, 120, 60, None)),
        ("mastodon", "", "", rule(600, 120, 60, None)),
        ("nostr", "", "", rule(600, 120, 60, None)),
        ("nostr", "silence_secs = 90", "", rule(90, 120, 60, None)),
        (
            "nostr",
            "silence_secs = 90",
            "silence_secs = 300",
            rule(300, 120, 60, None),
        ),
        ("mastodon", "lag_secs = 300", "", rule(600, 300, 60, None)),
        (
            "mastodon",
            "",
            "silence_secs = 120",
            rule(120, 120, 60, None),
        ),
        (
            "jetstream",
            "silence_secs = 45\ncalm_secs = 30",
            "",
            rule(45, 120, 60, Some(30)),
        ),
        (
            "nostr",
            "grace_secs = 10\ncalm_secs = 30",
            "calm_secs = 0",
            rule(600, 120, 10, Some(0)),
        ),
        (
            "jetstream",
            "",
            "silence_secs = 5\nlag_secs = 6\ngrace_secs = 7\ncalm_secs = 8",
            rule(5, 6, 7, Some(8)),
        ),
    ];
    for (kind, global, own, want) in cases {
        let text = format!(
            "[health]\n{global}\n\n[[sources]]\nkind = \"{kind}\"\nname = \"s\"\nurls = [\"wss://h/subscribe\"]\n[sources.health]\n{own}\n"
        );
        let config = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            config.sources[0].health_rule(&config.health),
            want,
            "{kind}, [health] {global:?}, [sources.health] {own:?}"
        );
    }
}

/// `config check` prints `[health]` as written (only the keys it sets) and
/// every source's `[sources.health]` as the whole rule it is judged by:
/// with kind defaults, `[health]`'s keys alone no longer say it.
#[test]
fn config_check_prints_each_source_s_whole_rule() {
    let text = format!(
        "[health]\nlag_secs = 300\n\n{QUIET}\n[[sources]]\nkind = \"jetstream\"\nname = \"bluesky\"\nurls = [\"wss://j/subscribe\"]\n[sources.health]\ngrace_secs = 5\n"
    );
    let config = parse(&text).expect("valid");
    let shown = toml::to_string_pretty(&config.clone().with_health_resolved()).expect("toml");
    let read_back: toml::Value = toml::from_str(&shown).expect("TOML");
    assert_eq!(
        read_back["health"],
        toml::from_str::<toml::Value>("lag_secs = 300").expect("TOML"),
        "{shown}"
    );
    let rule = |i: usize| read_back["sources"][i]["health"].clone();
    let want = |text: &str| toml::from_str::<toml::Value>(text).expect("TOML");
    assert_eq!(
        rule(0),
        want("silence_secs = 600\nlag_secs = 300\ngrace_secs = 60"),
        "{shown}"
    );
    assert_eq!(
        rule(1),
        want("silence_secs = 60\nlag_secs = 300\ngrace_secs = 5"),
        "{shown}"
    );
    // What it prints is a configuration that judges every source alike.
    let again = parse(&shown).expect("what config check prints loads");
    for (printed, source) in again.sources.iter().zip(&config.sources) {
        assert_eq!(
            printed.health_rule(&again.health),
            source.health_rule(&config.health)
        );
    }
    // Nothing set anywhere: no `[health]` table at all.
    let bare =
        toml::to_string_pretty(&parse(QUIET).expect("valid").with_health_resolved()).expect("toml");
    assert!(!bare.contains("\n[health]"), "{bare}");
    assert!(
        bare.contains("[sources.health]\nsilence_secs = 600\n"),
        "{bare}"
    );
}
