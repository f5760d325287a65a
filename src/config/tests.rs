//! The configuration's table tests: what loads, and errors that name the key.

use super::text::expand;
use super::*;
use crate::alert::format::Format;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("ow.toml"), text)
}

#[test]
fn empty_file_means_the_defaults() {
    let config = parse("").expect("empty config");
    assert_eq!(config, Config::default());
    assert_eq!(config.sources[0].urls.len(), 4);
}

#[test]
fn the_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("outagewatch.example.toml");
    let text = std::fs::read_to_string(&path).expect("example exists");
    let mut config: Config = toml::from_str(&text).expect("example parses");
    config
        .expand_env(&path, &|name| {
            Some(match name.ends_with("_URL") {
                true => "https://hooks.example.com/x".into(),
                false => "secret".into(),
            })
        })
        .expect("expands");
    config.check(&path, false).expect("checks");
    assert!(config.sources.len() >= 3, "shows every kind of source");
    assert!(config.sinks.len() >= 2, "shows sinks");
    for format in [
        Format::Json,
        Format::Slack,
        Format::Pagerduty,
        Format::Opsgenie,
        Format::Alertmanager,
    ] {
        assert!(
            config.sinks.iter().any(|s| s.format == format),
            "shows {format:?}"
        );
    }
}

#[test]
fn sink_keys_are_checked_without_showing_secrets() {
    let cases = [
        (
            "[[sinks]]\nname = \"pd\"\nformat = \"pagerduty\"",
            "`sinks[0].routing_key`: format pagerduty needs it",
        ),
        (
            "[[sinks]]\nname = \"og\"\nformat = \"opsgenie\"",
            "`sinks[0].api_key`: format opsgenie needs it",
        ),
        (
            "[[sinks]]\nname = \"h\"\nurl = \"ftp://u:hunter2@x/?t=s3cr3t\"",
            "`sinks[0].url`: the URL's scheme is not http:// or https:// (host \"x\")",
        ),
        (
            "[[sinks]]\nname = \"h\"\nurl = \"https://x/\"\nheaders = { \"Bad Name\" = \"hunter2\" }",
            "`sinks[0].headers.Bad Name`: is not a valid header name and value",
        ),
        // `[alerts] webhooks` become sinks after the `[[sinks]]`; their
        // errors name the webhook the file holds.
        (
            "[alerts]\nwebhooks = [\"https://ok/\", \"ftp://u:hunter2@x/\"]\n[[sinks]]\nname = \"a\"\nurl = \"https://x/\"",
            "`alerts.webhooks[1]`: the URL's scheme is not http:// or https:// (host \"x\")",
        ),
        (
            "[alerts]\nwebhooks = [\"https://ok/\"]\n[[sinks]]\nname = \"webhook-0ee22d5f\"\nurl = \"https://x/\"",
            "`alerts.webhooks[0]`: its sink is named \"webhook-0ee22d5f\", which a [[sinks]] entry also uses",
        ),
        (
            "[alerts]\nwebhooks = [\"https://ok/\", \"https://b/\", \"https://ok/\"]",
            "`alerts.webhooks[2]`: is listed twice",
        ),
    ];
    for (text, want) in cases {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("s3cr3t"), "{err}");
    }
    let ok = parse("[[sinks]]\nname = \"pd\"\nformat = \"pagerduty\"\nrouting_key = \"k\"")
        .expect("pagerduty sink");
    assert_eq!(ok.sinks[0].url, "https://events.pagerduty.com/v2/enqueue");
    let spec = ok.sinks[0].spec();
    assert!(!format!("{spec:?}").contains("\"k\""), "{spec:?}");
}

/// A file, and what its error says: the file, line and column, and the
/// key, for every kind of fault.
const KEY_ERRORS: &[(&str, &str)] = &[
    ("sorces = []", "ow.toml:1:1: unknown field `sorces`"),
    (
        "sources = []",
        "`sources`: needs at least one source (leave the key out for",
    ),
    (
        "[detector]\nmin_author = 3",
        "ow.toml:2:1: unknown field `min_author`",
    ),
    ("[detector]\nmin_authors = \"five\"", "ow.toml:2:15"),
    (
        "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"http://x\"]",
        "`sources[0].urls[0]`: \"http://x\" is not a ws:// or wss:// URL",
    ),
    (
        "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"wss://m/api/v1/streaming\"]\ntoken = \"${OW_TEST_UNSET_VAR}\"",
        "`sources[0].token`: environment variable OW_TEST_UNSET_VAR is not set",
    ),
    (
        "[[sources]]\nkind = \"irc\"\nname = \"a\"\nurls = []",
        "unknown variant `irc`",
    ),
    (
        "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://h\"]\nprotocol = \"v3\"",
        "unknown variant `v3`, expected `v1` or `v2`",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r/a\", \"wss://r/b\", \"wss://r/a/\"]",
        "`sources[0].urls[2]`: \"wss://r/a/\" is listed twice",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\", \"wss://R:443\"]",
        "`sources[0].urls[1]`: \"wss://R:443\" is listed twice",
    ),
    (
        "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"https://m\", \"https://m\"]",
        "`sources[0].urls[1]`: \"https://m\" is listed twice",
    ),
    // A token in a URL's query is not shown.
    (
        "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"https://m?access_token=s3cret\", \"https://m?access_token=s3cret\"]",
        "`sources[0].urls[1]`: https://m/?access_token=*** is listed twice",
    ),
    (
        "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"http://x?access_token=s3cret\"]",
        "`sources[0].urls[0]`: http://x/?access_token=*** is not a ws:// or wss:// URL",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\ncompress = true",
        "`sources[0].compress`: only Jetstream sources take it",
    ),
    (
        "[window]\nbucket_secs = 7",
        "ow.toml:2:15: `window.bucket_secs`: must divide or be divided by 60, got 7",
    ),
    // -5 divides 60: the sign is what is wrong, and the message says so.
    (
        "[window]\nbucket_secs = -5",
        "ow.toml:2:15: `window.bucket_secs`: must be a positive number of seconds, got -5",
    ),
    (
        "[window]\nbucket_secs = 61",
        "ow.toml:2:15: `window.bucket_secs`: must divide or be divided by 60, got 61",
    ),
    // An explicit `[detector] bucket_secs` must agree, at its own line.
    (
        "[window]\nbucket_secs = 120\n[detector]\nbucket_secs = 60",
        "ow.toml:4:15: `detector.bucket_secs`: 60 differs from window.bucket_secs (120)",
    ),
    (
        "[detector]\nbucket_secs = 60",
        "ow.toml:2:15: `detector.bucket_secs`: 60 differs from window.bucket_secs (10)",
    ),
    // Numbers out of their bounds: clean errors with file, line
    // and key, never a panic.
    (
        "[daemon]\nstatus_secs = inf",
        "ow.toml:2:15: `daemon.status_secs`: must be a finite number, got inf",
    ),
    (
        "[daemon]\nstatus_secs = 0",
        "ow.toml:2:15: `daemon.status_secs`: must be from 0.1 to 86400, got 0",
    ),
    (
        "[daemon]\nshutdown_grace_secs = 1e300",
        "`daemon.shutdown_grace_secs`: must be from 0 to 3600",
    ),
    (
        "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://x\"]\n[sources.connection]\nwatchdog_secs = nan",
        "ow.toml:6:17: `sources.connection.watchdog_secs`: must be a finite number",
    ),
    (
        "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://x\"]\n[sources.connection]\nbackoff_min_ms = 0",
        "`sources.connection.backoff_min_ms`: must be from 50 to 600000, got 0",
    ),
    (
        "[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"\ntimeout_secs = -inf",
        "ow.toml:4:16: `sinks.timeout_secs`: must be a finite number",
    ),
    (
        "[detector]\nfire_ratio = inf",
        "ow.toml:2:14: `detector.fire_ratio`: must be a finite number, got inf",
    ),
    (
        "[detector]\nwindow_secs = 0",
        "ow.toml:2:15: `detector.window_secs`: must be from 10 to 86400",
    ),
    // A window is whole buckets (65 s of 10 s buckets was read as 60 s).
    (
        "[detector]\nwindow_secs = 65",
        "ow.toml:2:15: `detector.window_secs`: 65 is not a whole number of buckets of window.bucket_secs (10 s): a window holds whole buckets (try 60)",
    ),
    // The detector's counts: each bounded, at its line.
    (
        "[detector]\nmin_authors = 0",
        "ow.toml:2:15: `detector.min_authors`: must be from 1 to 10000, got 0",
    ),
    (
        "[detector]\nmin_authors = 1000000",
        "ow.toml:2:15: `detector.min_authors`: must be from 1 to 10000, got 1000000",
    ),
    (
        "[detector]\nmax_authors_per_text = 0",
        "ow.toml:2:24: `detector.max_authors_per_text`: must be from 1 to 10000, got 0",
    ),
    (
        "[detector]\nmax_authors_per_server = 0",
        "ow.toml:2:26: `detector.max_authors_per_server`: must be from 1 to 10000, got 0",
    ),
    (
        "[detector]\nsamples = 1000",
        "ow.toml:2:11: `detector.samples`: must be from 0 to 20, got 1000",
    ),
    (
        "[detector]\nwarmup_factor = 0",
        "ow.toml:2:17: `detector.warmup_factor`: must be from 1 to 100, got 0",
    ),
    (
        "[detector]\nwarmup_factor = 100000",
        "ow.toml:2:17: `detector.warmup_factor`: must be from 1 to 100, got 100000",
    ),
    (
        "[detector]\nlevel_min_minutes = 61",
        "ow.toml:2:21: `detector.level_min_minutes`: must be from 1 to 60, got 61",
    ),
    (
        "[detector]\nseasonal_min_days = 8",
        "ow.toml:2:21: `detector.seasonal_min_days`: must be from 1 to 7, got 8",
    ),
    (
        "[detector]\nweekly_min_weeks = 0",
        "ow.toml:2:20: `detector.weekly_min_weeks`: must be from 1 to 4, got 0",
    ),
    (
        "[detector]\nlearn_during_incident_after_secs = 86401",
        "ow.toml:2:36: `detector.learn_during_incident_after_secs`: must be from 0 to 86400, got 86401",
    ),
    (
        "state_dir = \"\"",
        "ow.toml:1:13: `state_dir`: is empty (leave the key out for the platform's state directory)",
    ),
    (
        "[alerts]\nfile = \"\"",
        "ow.toml:2:8: `alerts.file`: is empty (leave the key out to write no alert file)",
    ),
    (
        "[window]\nwatermark_quorum = 33",
        "ow.toml:2:20: `window.watermark_quorum`: must be from 1 to 32, got 33",
    ),
    (
        "[window]\nmax_future_secs = -5",
        "ow.toml:2:19: `window.max_future_secs`: must be from 0 to 31622400, got -5",
    ),
    (
        "[window]\nmax_discovered = 100000000",
        "ow.toml:2:18: `window.max_discovered`: must be from 0 to 100000",
    ),
    // The largest count TOML's reader takes is shown as written (cast to
    // `i64`, it was -1).
    (
        "[window]\nsamples_per_bucket = 18446744073709551615",
        "ow.toml:2:22: `window.samples_per_bucket`: must be from 0 to 100, got 18446744073709551615",
    ),
    ("[health]\nsilence_secs = 1e300", "ow.toml:2:16"),
    // `[sources.connection]` and `[health]` are read straight into the
    // source's settings and the health rule: same bounds, same messages.
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\n[sources.connection]\nconnect_timeout_secs = 0.5",
        "ow.toml:6:24: `sources.connection.connect_timeout_secs`: must be from 1 to 300, got 0.5",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\n[sources.connection]\nwatchdog = 30",
        "ow.toml:6:1: unknown field `watchdog`",
    ),
    // A backoff's cap below its first wait, for sources and sinks.
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\n[sources.connection]\nbackoff_min_ms = 1000\nbackoff_max_ms = 500",
        "ow.toml:7:18: `sources[0].connection.backoff_max_ms`: 500 is below backoff_min_ms (1000)",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\n[[sources]]\nkind = \"nostr\"\nname = \"m\"\nurls = [\"wss://r\"]\n[sources.connection]\nbackoff_max_ms = 999",
        "ow.toml:10:18: `sources[1].connection.backoff_max_ms`: 999 is below backoff_min_ms (1000)",
    ),
    (
        "[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"\nbackoff_min_ms = 1000\nbackoff_max_ms = 500",
        "ow.toml:5:18: `sinks[0].backoff_max_ms`: 500 is below backoff_min_ms (1000)",
    ),
    (
        "[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"\nbackoff_min_ms = 400000",
        "ow.toml: `sinks[0].backoff_max_ms`: 300000 is below backoff_min_ms (400000)",
    ),
    (
        "[health]\nlag_secs = 0",
        "ow.toml:2:12: `health.lag_secs`: must be from 1 to 315360000, got 0",
    ),
    // A sub-table of a list's entry, with no entry: the header's table is
    // the key (no `key = value` line holds the error), and what to write.
    (
        "[sources.connection]\nwatchdog_secs = 30\n",
        "ow.toml:1:2: `sources`: invalid type: map, expected a sequence (`sources` is a list of \
         `[[sources]]` entries: a `[sources.…]` table belongs under the `[[sources]]` entry above it",
    ),
    (
        "[window]\nbucket_secs = 10\n[sinks.headers]\nx = \"y\"\n",
        "ow.toml:3:2: `sinks`: invalid type: map, expected a sequence",
    ),
];

/// A value out of its bounds, one key of each table: every error points
/// at the value's column. `[window]` and `[detector]` (checked after
/// parsing) pointed at the key's, the tables whose bounds the parser
/// checks at the value's. Indented keys and spaces around `=` included.
const VALUE_COLUMNS: &[(&str, &str)] = &[
    ("state_dir = \"\"", "ow.toml:1:13: `state_dir`"),
    (
        "[window]\n  max_future_secs   =   -5",
        "ow.toml:2:25: `window.max_future_secs`: must be from 0 to",
    ),
    (
        "[window]\nbucket_secs=7",
        "ow.toml:2:13: `window.bucket_secs`: must divide or be divided by 60",
    ),
    (
        "[detector]\n\tmin_authors = 0",
        "ow.toml:2:16: `detector.min_authors`: must be from 1 to 10000",
    ),
    (
        "[detector]\nfire_ratio = 0.5 # too low",
        "ow.toml:2:14: `detector.fire_ratio`: must be from 1 to 1000",
    ),
    (
        "[daemon]\n  status_secs = 0",
        "ow.toml:2:17: `daemon.status_secs`: must be from 0.1 to 86400",
    ),
    (
        "[health]\nlag_secs   = 0",
        "ow.toml:2:14: `health.lag_secs`: must be from 1 to 315360000",
    ),
    (
        "[http]\nlisten = \"nowhere\"",
        "ow.toml:2:10: `http.listen`: \"nowhere\" is not an address",
    ),
    (
        "[alerts]\ndead_letter_days = 3651",
        "ow.toml:2:20: `alerts.dead_letter_days`: must be from 0 to 3650",
    ),
    (
        "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"http://x\"]",
        "ow.toml:4:8: `sources[0].urls[0]`: \"http://x\" is not a ws:// or wss:// URL",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\n[sources.connection]\nwatchdog_secs = 0",
        "ow.toml:6:17: `sources.connection.watchdog_secs`: must be from",
    ),
    (
        "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\n[sources.health]\nsilence_secs = 0",
        "ow.toml:6:16: `sources.health.silence_secs`: must be from 1 to 86400",
    ),
    (
        "[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"\ntimeout_secs = 0",
        "ow.toml:4:16: `sinks.timeout_secs`: must be from 0.1 to 300",
    ),
];

#[test]
fn a_bad_value_is_pointed_at_in_every_table() {
    let mut wrong = Vec::new();
    for (text, want) in VALUE_COLUMNS {
        let err = parse(text).expect_err(text).to_string();
        if !err.contains(want) {
            wrong.push(format!("{text:?}: got {err:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn errors_name_the_key() {
    for (text, want) in KEY_ERRORS {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
    }
}

/// The detector counts in the window's buckets: setting `[window]
/// bucket_secs` alone sets both (it was refused for want of an
/// undocumented `[detector] bucket_secs` of the same value).
#[test]
fn the_detector_follows_the_windows_bucket() {
    for (text, want) in [
        ("", 10),
        ("[window]\nbucket_secs = 120", 120),
        ("[window]\nbucket_secs = 5", 5),
        (
            "[detector]\nmin_authors = 5\n[window]\nbucket_secs = 60",
            60,
        ),
        (
            "[window]\nbucket_secs = 30\n[detector]\nbucket_secs = 30",
            30,
        ),
    ] {
        let config = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(config.window.bucket_secs, want, "{text:?}");
        assert_eq!(config.detector.bucket_secs, want, "{text:?}");
    }
}

#[test]
fn env_expansion() {
    let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
    assert_eq!(
        expand("Bearer ${TOKEN}", &lookup),
        Ok("Bearer s3cret".into())
    );
    assert_eq!(
        expand("cost $$5 and $x", &lookup),
        Ok("cost $5 and $x".into())
    );
    assert!(expand("${MISSING}", &lookup).is_err());
    assert!(expand("${TOKEN", &lookup).is_err());
    // An unclosed `${` says where, not what: the value is a secret.
    let err = expand("s3cr3t-$${TOKEN}-hunter2${x", &lookup).expect_err("unclosed");
    assert!(err.contains("at character 25"), "{err}");
    assert!(!err.contains("s3cr3t") && !err.contains("hunter2"), "{err}");
    let err = parse("[http]\ntoken = \"hunter2${OOPS\"")
        .expect_err("unclosed")
        .to_string();
    assert!(
        err.contains("http.token") && !err.contains("hunter2"),
        "{err}"
    );
}

/// A sink's defaults are delivery's own, kept in one place: a sink that
/// sets nothing gets `RetryPolicy::default()` and `Webhook`'s timeouts.
#[test]
fn sink_defaults_are_deliverys() {
    use crate::alert::deliver::{RetryPolicy, Target, Webhook};
    let config = parse("[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"").expect("sink");
    let spec = config.sinks[0].spec();
    assert_eq!(spec.retry, RetryPolicy::default());
    let Target::Webhook(hook) = spec.target else {
        panic!("a webhook sink")
    };
    assert_eq!(hook.timeout, Webhook::TIMEOUT);
    assert_eq!(hook.connect_timeout, Webhook::CONNECT_TIMEOUT);
    assert_eq!(hook.repeat, Webhook::REPEAT);
    assert_eq!(config.sinks[0], SinkConfig::json("s", "https://h/x", None));
}

/// A webhook given only by its URL keeps its name (and with it its
/// cursor, retries and dead letters) when the list is reordered, a sink
/// is added before it, or a secret in its URL changes; named by position,
/// one took over another's place.
#[test]
fn a_webhook_is_named_by_its_url_as_written() {
    let names = |text: &str, lookup: &dyn Fn(&str) -> Option<String>| -> Vec<(String, String)> {
        Config::parse_with(Path::new("t.toml"), text, lookup, false)
            .expect("parses")
            .sinks
            .iter()
            .map(|s| (s.name.clone(), s.url.clone()))
            .collect()
    };
    let none = |_: &str| None;
    let one = names(
        "[alerts]\nwebhooks = [\"https://a/\", \"https://b/\"]",
        &none,
    );
    let other = names(
        "[alerts]\nwebhooks = [\"https://b/\", \"https://a/\"]\n[[sinks]]\nname = \"s\"\nurl = \"https://s/\"",
        &none,
    );
    let a = one.iter().find(|(_, u)| u == "https://a/").expect("a");
    let b = one.iter().find(|(_, u)| u == "https://b/").expect("b");
    assert_ne!(a.0, b.0);
    assert!(other.contains(a) && other.contains(b), "{one:?} {other:?}");
    assert_eq!(a.0, webhook_name("https://a/"));
    assert!(
        a.0.starts_with("webhook-") && a.0.len() == "webhook-".len() + 8,
        "{a:?}"
    );
    // A secret filled in from the environment: the name is the template's.
    let text = "[alerts]\nwebhooks = [\"https://hooks/${HOOK_PATH}\"]";
    let before = names(text, &|_| Some("old-secret".into()));
    let after = names(text, &|_| Some("new-secret".into()));
    assert_eq!(before[0].0, after[0].0);
    assert_eq!(after[0].1, "https://hooks/new-secret");
    assert_eq!(before[0].0, webhook_name("https://hooks/${HOOK_PATH}"));
    // A state from when they were named by position carries over.
    let config = parse("[alerts]\nwebhooks = [\"https://a/\", \"https://b/\"]").expect("parses");
    let formerly: Vec<Option<&str>> = config.sinks.iter().map(|s| s.formerly.as_deref()).collect();
    assert_eq!(formerly, [Some("webhook-1"), Some("webhook-2")]);
}

/// A secret, header or token that `${VAR}` made empty is refused naming
/// the variable (an empty secret sent unsigned requests); so is a
/// literally empty secret.
#[test]
fn a_secret_from_an_empty_variable_is_refused_naming_it() {
    let lookup = |name: &str| (name != "UNSET").then(String::new);
    let cases = [
        (
            "secret = \"${SIGNING}\"",
            "sinks[0].secret",
            "SIGNING is set but empty",
        ),
        (
            "headers = { Authorization = \"${AUTH}\" }",
            "sinks[0].headers.Authorization",
            "AUTH is set but empty",
        ),
        ("secret = \"\"", "sinks[0].secret", "leave the key out"),
    ];
    for (line, key, says) in cases {
        let text = format!("[[sinks]]\nname = \"a\"\nurl = \"https://example.com/\"\n{line}\n");
        let error = Config::parse_with(Path::new("ow.toml"), &text, &lookup, false)
            .expect_err(line)
            .to_string();
        assert!(
            error.contains(key) && error.contains(says),
            "{line}: {error}"
        );
    }
    let text = "[http]\ntoken = \"${TOKEN}\"\n";
    let error = Config::parse_with(Path::new("ow.toml"), text, &lookup, false)
        .expect_err("empty token")
        .to_string();
    assert!(error.contains("TOKEN is set but empty"), "{error}");
}

/// A path holding `${VAR}` is refused: it was taken literally.
#[test]
fn a_path_with_a_variable_is_refused() {
    for (text, key) in [
        ("state_dir = \"${HOME}/x\"\n", "state_dir"),
        ("patterns = \"${P}\"\n", "patterns"),
        ("[alerts]\nfile = \"${LOGS}/a.jsonl\"\n", "alerts.file"),
    ] {
        let error = parse(text).expect_err(text).to_string();
        assert!(
            error.contains(key) && error.contains("expanded only in URLs"),
            "{text}: {error}"
        );
    }
    parse("state_dir = \"/var/lib/$x\"\n").expect("a lone $ is a path's own");
}

/// A file saved in another encoding is named at its first bad byte, as a
/// TOML error is, not with std's placeless "did not contain valid UTF-8".
#[test]
fn a_file_that_is_not_utf8_is_named_at_its_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ow.toml");
    std::fs::write(&path, b"[detector]\nmin_authors = 5\n# caf\xe9 notes\n").expect("write");
    let err = Config::load(&path).expect_err("Latin-1 byte").to_string();
    assert!(
        err.starts_with(&format!("{}:3:6: not UTF-8 text", path.display())),
        "{err}"
    );
}

/// `dead_letter_days`: 30 when left out, 0 for ever, bounded, and named
/// when out of bounds.
#[test]
fn dead_letter_days_defaults_to_a_month_and_zero_keeps_for_ever() {
    let month = 30 * 86_400 * crate::MICROS_PER_SEC;
    let absent = parse("[alerts]\n").expect("no key");
    assert_eq!(absent.alerts.dead_letter_retention_us(), Some(month));
    assert_eq!(
        Config::default().alerts.dead_letter_retention_us(),
        Some(month)
    );
    let week = parse("[alerts]\ndead_letter_days = 7\n").expect("7");
    assert_eq!(
        week.alerts.dead_letter_retention_us(),
        Some(7 * 86_400 * crate::MICROS_PER_SEC)
    );
    let never = parse("[alerts]\ndead_letter_days = 0\n").expect("0");
    assert_eq!(never.alerts.dead_letter_retention_us(), None);
    for bad in ["-1", "4000", "\"30\""] {
        let text = format!("[alerts]\ndead_letter_days = {bad}\n");
        let error = parse(&text).expect_err(&text).to_string();
        assert!(error.contains("dead_letter_days"), "{text}: {error}");
    }
}

/// What may be a secret never reaches an error: a webhook URL written
/// where a list goes (serde quoted the string), a header map written as a
/// string, a source URL that does not parse with a token in its query or
/// a user before its host. Found by review: each was printed whole, and
/// `run` writes the error to the journal.
#[test]
fn errors_show_no_secrets() {
    for (text, want) in [
        (
            "[alerts]\nwebhooks = \"https://hooks.slack.com/services/T0/B0/SECRETxyz\"",
            "`alerts.webhooks`: invalid type: a string, expected a sequence",
        ),
        (
            "[[sinks]]\nname = \"s\"\nurl = \"https://h.example/\"\nheaders = \"Authorization: Bearer SECRETxyz\"",
            "invalid type: a string, expected a map",
        ),
        (
            "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"wss//m.example/s?access_token=SECRETxyz\"]",
            "`sources[0].urls[0]`: \"wss//m.example/s\" is not a ws:// or wss:// URL",
        ),
        (
            "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"http://u:SECRETxyz@m.example:abc/\"]",
            "\"***@m.example:abc/\" is not",
        ),
        // A line of a multi-line array is not a `key = value` line, though
        // a URL's query puts a `=` in it: what stood before it was named
        // as the key.
        (
            "[alerts]\nwebhooks = [\n  \"https://ops.example/hook\"\n  \"https://discord.com/api/webhooks/1/SECRETxyz?wait=true\",\n]\n",
            "ow.toml:4:3: missing comma between array elements",
        ),
        (
            "[alerts]\nwebhooks = [\n  \"https://hooks.slack.com/services/T0/B0/SECRETxyz?token=abc\", 42,\n]\n",
            "ow.toml:3:",
        ),
    ] {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        assert!(!err.contains("SECRETxyz"), "{err}");
    }
}

/// A comment after a table header (`[detector]  # see …`, as the shipped
/// example writes two of them) is not part of the table's name: errors in
/// that table lost their line, named `detector]  # …` as the table, or
/// pointed at a later `[[sources]]` entry's line.
#[test]
fn a_comment_after_a_header_leaves_errors_their_key_and_line() {
    for (text, want) in [
        (
            "[detector]   # c\nwindow_secs = 65\n",
            "ow.toml:2:15: `detector.window_secs`:",
        ),
        (
            "[detector] # c\nwindow_secs = \"60\"\n",
            "ow.toml:2:15: `detector.window_secs`: invalid type",
        ),
        (
            "[[sources]]   # main\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://a.example/\"]\n\
             [[sources]]\nkind = \"jetstream\"\nname = \"b\"\nurls = [\"wss://b.example/\", \"wss://b.example/\"]\n\
             [[sources]]\nkind = \"jetstream\"\nname = \"c\"\nurls = [\"wss://c.example/\"]\n",
            "ow.toml:8:",
        ),
    ] {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        assert!(!err.contains("# "), "{err}");
    }
}
