//! Operator commands: `config check` (the example without its secrets, the
//! search path), `replay --config` and `--report`, `check`'s exit status,
//! completions and the man page.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn outagewatch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outagewatch"));
    command.args(args).env("RUST_LOG", "warn");
    for var in [
        "OUTAGEWATCH_CONFIG",
        "OUTAGEWATCH_HTTP_TOKEN",
        "MASTODON_TOKEN",
        "ONCALL_WEBHOOK_URL",
        "ONCALL_WEBHOOK_SECRET",
        "SLACK_WEBHOOK_URL",
        "STATUS_HOOK_TOKEN",
        "PAGERDUTY_ROUTING_KEY",
        "OPSGENIE_API_KEY",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_check_accepts_the_example_without_its_secrets_and_names_them() {
    let example = root().join("outagewatch.example.toml");
    let out = outagewatch(
        &[
            "config",
            "check",
            "--config",
            example.to_str().expect("utf8"),
        ],
        &[],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is valid"), "{stderr}");
    for var in [
        "MASTODON_TOKEN",
        "ONCALL_WEBHOOK_URL",
        "ONCALL_WEBHOOK_SECRET",
        "SLACK_WEBHOOK_URL",
        "STATUS_HOOK_TOKEN",
        "PAGERDUTY_ROUTING_KEY",
        "OPSGENIE_API_KEY",
    ] {
        assert!(stderr.contains(var), "{var} reported missing: {stderr}");
    }
    // The effective configuration, defaults filled in, as TOML.
    let effective: toml::Value = toml::from_str(&stdout).expect("prints TOML");
    assert!(
        effective["detector"]["min_authors"].is_integer(),
        "{stdout}"
    );
    assert_eq!(effective["http"]["listen"].as_str(), Some("127.0.0.1:9464"));

    // With the secrets set, they are masked, and nothing is missing.
    let out = outagewatch(
        &["config", "check"],
        &[
            ("OUTAGEWATCH_CONFIG", example.to_str().expect("utf8")),
            ("MASTODON_TOKEN", "mastodon-secret-value"),
            (
                "ONCALL_WEBHOOK_URL",
                "https://oncall.example.com/hooks/secret-path?key=k",
            ),
            ("ONCALL_WEBHOOK_SECRET", "hmac-secret-value"),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/slack-secret",
            ),
            ("STATUS_HOOK_TOKEN", "Bearer header-secret-value"),
            ("PAGERDUTY_ROUTING_KEY", "pagerduty-secret-value"),
            ("OPSGENIE_API_KEY", "opsgenie-secret-value"),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("found by OUTAGEWATCH_CONFIG"), "{stderr}");
    assert!(!stderr.contains("not set"), "{stderr}");
    for secret in [
        "mastodon-secret-value",
        "secret-path",
        "hmac-secret-value",
        "slack-secret",
    ] {
        assert!(!stdout.contains(secret), "{secret} shown: {stdout}");
    }
    assert!(stdout.contains("oncall.example.com"), "{stdout}");

    // A broken file is an error naming the key.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[http]\nlisten = \"everywhere\"\n").expect("write");
    let out = outagewatch(
        &["config", "check", "--config", bad.to_str().expect("utf8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`http.listen`"),
        "{}",
        text(&out.stderr)
    );
    // What `run` would refuse is not "valid" either: a public status
    // server without a token, a pattern folder that does not load.
    let empty_patterns = dir.path().join("no-patterns");
    std::fs::create_dir(&empty_patterns).expect("mkdir");
    for (name, body, want) in [
        (
            "public.toml",
            "[http]\nlisten = \"0.0.0.0:9464\"\n".to_owned(),
            "without a token",
        ),
        (
            "patterns.toml",
            format!("patterns = {:?}\n", empty_patterns.to_string_lossy()),
            "cannot load patterns",
        ),
        (
            "self.toml",
            format!(
                "[alerts]\nfile = {:?}\n",
                dir.path().join("self.toml").to_string_lossy()
            ),
            "is the configuration file",
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, body).expect("write");
        let out = outagewatch(
            &["config", "check", "--config", file.to_str().expect("utf8")],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(want),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

fn demo() -> String {
    root()
        .join("data/demo.jsonl.gz")
        .to_string_lossy()
        .into_owned()
}

fn firing(stdout: &[u8]) -> usize {
    text(stdout)
        .lines()
        .filter(|l| l.contains("\"state\":\"firing\""))
        .count()
}

#[test]
fn replay_takes_the_detector_settings_of_a_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "[detector]\nmin_authors = 500\n").expect("write");
    let plain = outagewatch(&["replay", &demo()], &[]);
    assert_eq!(firing(&plain.stdout), 1, "{}", text(&plain.stderr));
    let out = outagewatch(
        &[
            "replay",
            &demo(),
            "--config",
            strict.to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        firing(&out.stdout),
        0,
        "500 authors are never reached in the demo"
    );
}

#[test]
fn replay_writes_a_self_contained_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("r.html");
    let out = outagewatch(
        &[
            "replay",
            &demo(),
            "--report",
            report.to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(firing(&out.stdout), 1, "alerts still go to stdout");
    let page = std::fs::read_to_string(&report).expect("report written");
    assert!(
        !page.contains("src=\"/assets") && !page.contains("href=\"/assets"),
        "no outside files"
    );
    assert!(
        !page.contains("<script src") && !page.contains("<link"),
        "nothing loaded from elsewhere"
    );
    let start = page.find("id=\"snapshot\">").expect("inline data") + "id=\"snapshot\">".len();
    let end = start + page[start..].find("</script>").expect("data ends");
    let snapshot: serde_json::Value = serde_json::from_str(&page[start..end]).expect("JSON");
    assert_eq!(snapshot["report"], true);
    let incidents = snapshot["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["service"], "discord");
    assert_eq!(incidents[0]["alerts"].as_array().map(Vec::len), Some(3));
    let chart = incidents[0]["series"].as_array().expect("chart");
    // From the start of the recording (14:00) to ten minutes after the end.
    assert!(chart.len() >= 20, "{}", chart.len());
    assert!(
        snapshot["closest"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(
        snapshot["closest"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["service"] != "discord"),
        "services that fired are not 'closest to firing'"
    );
}

#[test]
fn check_exits_1_when_no_text_is_a_report() {
    let yes = outagewatch(&["check", "is twitter down?"], &[]);
    assert_eq!(yes.status.code(), Some(0));
    let no = outagewatch(&["check", "the Dow is down", "lovely weather"], &[]);
    assert_eq!(no.status.code(), Some(1));
    assert_eq!(
        text(&no.stdout).lines().count(),
        2,
        "still one answer per text"
    );
    let mixed = outagewatch(&["check", "the Dow is down", "instagram not loading"], &[]);
    assert_eq!(mixed.status.code(), Some(0));
}

/// An error is 2, never 1: a script that reads 1 as "not a report" must
/// not take patterns that do not load (or a usage error) for an answer.
#[test]
fn check_exits_2_on_an_error() {
    let missing = root().join("no-such-patterns");
    let broken = outagewatch(
        &[
            "check",
            "--patterns",
            missing.to_str().expect("utf8"),
            "is discord down",
        ],
        &[],
    );
    assert_eq!(broken.status.code(), Some(2), "{}", text(&broken.stderr));
    assert!(text(&broken.stderr).contains("cannot load patterns"));
    assert!(broken.stdout.is_empty(), "no answer");
    let usage = outagewatch(&["check", "--max-line-bytes", "0"], &[]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = outagewatch(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("outagewatch") && script.contains("replay"),
            "{shell}"
        );
        assert!(script.contains("serve-after"), "{shell}: every flag");
    }
    let man = outagewatch(&["man"], &[]);
    assert!(man.status.success());
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH"),
        "roff: {}",
        &page[..page.len().min(200)]
    );
    assert!(page.contains("outagewatch"));
}

/// README's `config check` example is what a user sees: its stderr lines,
/// as printed (the audit found it naming four unset variables of seven).
#[test]
fn the_readme_config_check_example_is_what_it_prints() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let command = "$ outagewatch config check --config outagewatch.example.toml > effective.toml";
    let shown: Vec<&str> = readme
        .lines()
        .skip_while(|line| *line != command)
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .collect();
    assert!(!shown.is_empty(), "README lost the example `{command}`");
    let out = outagewatch(
        &["config", "check", "--config", "outagewatch.example.toml"],
        &[],
    );
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    let printed: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        printed, shown,
        "README's example against the program's stderr"
    );
}
