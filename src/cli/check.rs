//! `outagewatch check`: the matcher on texts, for people editing patterns.
//! Exits 0 when at least one text was a report, 1 when none was (so it
//! works in `if outagewatch check "$text"; then …`), 2 on usage errors.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::matcher::{Matcher, Reason};
use crate::normalize::normalize;
use crate::source::RawPost;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Texts to check; with none, one post per line is read from stdin.
    texts: Vec<String>,
    /// Explain each decision for humans instead of printing JSON.
    #[arg(long)]
    explain: bool,
    /// Declared language(s) of the texts, as a post's `langs`.
    #[arg(long, value_name = "CODE")]
    lang: Vec<String>,
}

#[derive(Serialize)]
struct Output<'a> {
    text: &'a str,
    report: bool,
    service: Option<&'a str>,
    score: f32,
    class: crate::matcher::Class,
    discovered: bool,
    reasons: &'a [Reason],
}

pub fn run(args: CheckArgs, matcher: &Matcher) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut reports = 0u64;
    let mut one = |text: &str| -> anyhow::Result<()> {
        let post = normalize(RawPost {
            time_us: 0,
            author: "check".into(),
            uri: String::new(),
            key: 0,
            text: text.to_owned(),
            langs: args.lang.clone(),
            tags: Vec::new(),
        });
        let verdict = matcher.explain(&post);
        reports += u64::from(verdict.is_report());
        if args.explain {
            writeln!(out, "{text:?}")?;
            writeln!(out, "  normalized: {:?}", post.text)?;
            // Every rule that fired, with its span in characters of the
            // normalized text ("at 6..13"), so a person can count it.
            for reason in &verdict.reasons {
                writeln!(out, "  {reason}")?;
            }
            writeln!(out)?;
        } else {
            let output = Output {
                text,
                report: verdict.is_report(),
                service: verdict.service.as_deref(),
                score: (verdict.score * 100.0).round() / 100.0,
                class: verdict.class,
                discovered: verdict.discovered,
                reasons: &verdict.reasons,
            };
            serde_json::to_writer(&mut out, &output)?;
            writeln!(out)?;
        }
        Ok(())
    };
    if args.texts.is_empty() {
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            if stdin
                .read_until(b'\n', &mut line)
                .context("cannot read stdin")?
                == 0
            {
                break;
            }
            number += 1;
            let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            // A line that is not UTF-8 is checked as far as it can be read,
            // and said so, rather than ending the run.
            let text = String::from_utf8_lossy(bytes);
            if let std::borrow::Cow::Owned(_) = text {
                eprintln!("stdin line {number}: invalid UTF-8, replaced with U+FFFD");
            }
            one(&text)?;
        }
    } else {
        for text in &args.texts {
            one(text)?;
        }
    }
    out.flush()?;
    Ok(if reports > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
