//! The classifier on posts real people wrote, labelled by hand
//! (`../shared/real/README.md` has the rules):
//!
//! - `../shared/real/dev.tsv`: the shared development set (not in the
//!   repository). Skipped with a message when the folder cannot be found;
//!   a failure when `CI=true`.
//! - `tests/real/tune.tsv` and `tests/real/held.tsv`: our own collection
//!   (`tests/real/README.md` says where from and how labelled). `held.tsv`
//!   was set aside before any tuning and is only ever measured.
//!
//! Precision and recall judge report-or-not; service accuracy judges the
//! service of the found reports whose label names one (`unknown` labels are
//! not judged). A service counts as right when the predicted id and the
//! label are the same name (letters and digits) or the label is one of the
//! predicted service's names or handles in the catalogue, or the predicted
//! service is a discovered name that begins with the label ("Hoyts
//! Distribution NZ" names hoyts).

use std::path::{Path, PathBuf};

use outagewatch::matcher::Matcher;
use outagewatch::normalize::normalize;
use outagewatch::source::RawPost;

struct Case {
    id: String,
    report: bool,
    service: Option<String>,
    text: String,
}

#[derive(Default, Debug)]
struct Score {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
    service_judged: u32,
    service_right: u32,
}

impl Score {
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fp).max(1))
    }
    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from((self.tp + self.fn_).max(1))
    }
    fn service_accuracy(&self) -> f64 {
        f64::from(self.service_right) / f64::from(self.service_judged.max(1))
    }
}

/// The shared folder: `$OUTAGEWATCH_SHARED`, `<manifest>/../shared`, then
/// `/work/shared`.
fn shared_dir() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("OUTAGEWATCH_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([manifest.join("../shared"), PathBuf::from("/work/shared")])
        .find(|dir| dir.join("real").is_dir())
}

fn load(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.splitn(4, '\t').collect();
        let [id, label, service, text] = cols[..] else {
            panic!("{}:{}: want 4 tab-separated columns", path.display(), n + 1);
        };
        let report = match label {
            "pos" => true,
            "neg" => false,
            other => panic!("{}:{}: label {other:?}", path.display(), n + 1),
        };
        let service =
            (report && service != "unknown" && service != "-").then(|| service.to_owned());
        cases.push(Case {
            id: id.to_owned(),
            report,
            service,
            text: text.to_owned(),
        });
    }
    cases
}

fn evaluate(name: &str, cases: &[Case]) -> Score {
    evaluate_declared(name, cases, None)
}

/// As [`evaluate`], every post declaring `lang` (or none).
fn evaluate_declared(name: &str, cases: &[Case], lang: Option<&str>) -> Score {
    let matcher = Matcher::embedded().expect("embedded patterns");
    let mut score = Score::default();
    let mut wrong = Vec::new();
    for case in cases {
        let post = normalize(RawPost {
            time_us: 0,
            author: "real".into(),
            uri: String::new(),
            key: None,
            text: case.text.clone(),
            langs: lang.map(str::to_owned).into_iter().collect(),
            tags: Vec::new(),
        });
        let verdict = matcher.classify(&post);
        let got = verdict.is_report();
        let predicted = verdict.service.as_deref().unwrap_or("-");
        match (got, case.report) {
            (true, true) => score.tp += 1,
            (true, false) => score.fp += 1,
            (false, true) => score.fn_ += 1,
            (false, false) => score.tn += 1,
        }
        let mut service_wrong = false;
        if let (true, Some(label)) = (got && case.report, &case.service) {
            score.service_judged += 1;
            // A discovered name that starts with the label names it too
            // ("Hoyts Distribution NZ" for hoyts).
            let longer_name = verdict.discovered
                && label.len() >= 4
                && predicted.starts_with(label.to_lowercase().as_str());
            if matcher.is_name_of(predicted, label) || longer_name {
                score.service_right += 1;
            } else {
                service_wrong = true;
            }
        }
        if got != case.report || service_wrong {
            let kind = match (got, case.report) {
                (true, false) => "FALSE",
                (false, true) => "MISS ",
                _ => "SERV ",
            };
            wrong.push(format!(
                "  {kind} {:<22} want {:<16} got {:<16} {:?}",
                case.id,
                case.service.as_deref().unwrap_or("-"),
                if got { predicted } else { "-" },
                case.text
            ));
        }
    }
    println!(
        "\n{name}: {} posts, {} reports | TP {} FP {} FN {} TN {} | precision {:.3} recall {:.3} service accuracy {:.3} ({}/{})",
        cases.len(),
        cases.iter().filter(|c| c.report).count(),
        score.tp,
        score.fp,
        score.fn_,
        score.tn,
        score.precision(),
        score.recall(),
        score.service_accuracy(),
        score.service_right,
        score.service_judged,
    );
    if std::env::var_os("REAL_SHOW_WRONG").is_some() {
        for line in &wrong {
            println!("{line}");
        }
    } else {
        println!("  ({} wrong; REAL_SHOW_WRONG=1 lists them)", wrong.len());
    }
    score
}

/// The shared development set, or `None` (with a message, or a failure
/// when `CI=true`) when the shared folder or the file is missing.
fn shared_dev_set(test: &str) -> Option<Vec<Case>> {
    let Some(dir) = shared_dir() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the shared folder with real/dev.tsv was not found \
             (set OUTAGEWATCH_SHARED)"
        );
        eprintln!(
            "SKIPPED {test}: no shared folder with real/dev.tsv \
             ($OUTAGEWATCH_SHARED, ../shared, /work/shared)"
        );
        return None;
    };
    let path = dir.join("real/dev.tsv");
    if !path.is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} is missing",
            path.display()
        );
        eprintln!("SKIPPED {test}: {} is missing", path.display());
        return None;
    }
    let cases = load(&path);
    assert!(cases.len() >= 300, "dev.tsv holds {} posts", cases.len());
    Some(cases)
}

#[test]
fn shared_real_dev_set() {
    let Some(cases) = shared_dev_set("shared_real_dev_set") else {
        return;
    };
    let score = evaluate("shared real/dev.tsv", &cases);
    // The bar issue 9 sets for this set.
    assert!(
        score.precision() >= 0.92 && score.recall() >= 0.88 && score.service_accuracy() >= 0.90,
        "dev.tsv: precision {:.3} (min 0.92), recall {:.3} (min 0.88), service accuracy {:.3} (min 0.90)",
        score.precision(),
        score.recall(),
        score.service_accuracy()
    );
}

/// Precision, recall and service accuracy may move this much, at most,
/// when every post declares one language: about one post of the set's 74
/// reports.
const DECLARED_MARGIN: f64 = 0.015;

/// A post's declared language is often its author's device language, and
/// people mix languages: declaring one must not turn the classifier into
/// another. Every post of the shared development set declared as each of
/// en, pt, ja, es and de scores within a small margin of the same posts
/// declaring none (scoping context lists to the declared language gave
/// 0.767/0.757 for `pt` against 0.957/0.892).
#[test]
fn shared_real_dev_set_whatever_the_declared_language() {
    let Some(cases) = shared_dev_set("shared_real_dev_set_whatever_the_declared_language") else {
        return;
    };
    let none = evaluate("shared real/dev.tsv, no language declared", &cases);
    let mut failures = Vec::new();
    for lang in ["en", "pt", "ja", "es", "de"] {
        let name = format!("shared real/dev.tsv, every post declared {lang}");
        let declared = evaluate_declared(&name, &cases, Some(lang));
        for (what, got, want) in [
            ("precision", declared.precision(), none.precision()),
            ("recall", declared.recall(), none.recall()),
            (
                "service accuracy",
                declared.service_accuracy(),
                none.service_accuracy(),
            ),
        ] {
            if (got - want).abs() > DECLARED_MARGIN {
                failures.push(format!("{lang}: {what} {got:.3}, undeclared {want:.3}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn own(name: &str) -> Vec<Case> {
    load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/real")
            .join(name),
    )
}

/// Our own collection, the part used while tuning.
#[test]
fn own_real_tuning_set() {
    let cases = own("tune.tsv");
    assert!(cases.len() >= 100, "tune.tsv holds {} posts", cases.len());
    let score = evaluate("own tests/real/tune.tsv", &cases);
    assert!(
        score.precision() >= 0.90 && score.recall() >= 0.85,
        "tune.tsv: precision {:.3} (min 0.90), recall {:.3} (min 0.85)",
        score.precision(),
        score.recall()
    );
}

/// Our own collection, the third set aside before tuning and never tuned
/// on: the honest figure for text nobody fitted the rules to.
#[test]
fn own_real_held_set() {
    let cases = own("held.tsv");
    assert!(cases.len() >= 50, "held.tsv holds {} posts", cases.len());
    let score = evaluate("own tests/real/held.tsv (held aside)", &cases);
    assert!(
        score.recall() >= 0.80,
        "held.tsv: recall {:.3} (min 0.80), precision {:.3}",
        score.recall(),
        score.precision()
    );
}
