//! `outagewatch check`: the matcher on texts, for people editing patterns.
//! Exits 0 when at least one text was a report, 1 when none was (so it
//! works in `if outagewatch check "$text"; then …`), 2 on any error
//! ([`ERROR_STATUS`]).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::matcher::{Matcher, Reason};
use crate::normalize::normalize;
use crate::source::RawPost;
use crate::source::recording::{Line, LineReader};

/// The exit status of every error of `check` (a usage error, patterns
/// that do not load, a stdin line too long, output that cannot be
/// written): as a usage error's, and not 1, which says "no text was a
/// report": a script could not tell a broken setup from an answer.
pub const ERROR_STATUS: u8 = super::USAGE_STATUS;

/// Longest stdin line `check` accepts by default, in bytes: far above any
/// post (Bluesky's limit is 3000 bytes), far below what could hurt memory.
pub const DEFAULT_MAX_CHECK_LINE: usize = 64 * 1024;

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
    /// Longest stdin line accepted, in bytes (1..=16 MiB). A longer line is
    /// an error: it is not read on, and `check` exits 2.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_CHECK_LINE as u64,
          value_parser = clap::value_parser!(u64).range(1..=16 << 20))]
    max_line_bytes: u64,
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
        reports += u64::from(check_one(&mut out, matcher, &args, text)?);
        Ok(())
    };
    if args.texts.is_empty() {
        if let Some(failed) = check_stdin(&args, &mut one)? {
            return Ok(failed);
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

/// Checks one text and prints the verdict (JSON, or explained for
/// humans); returns whether it was a report.
fn check_one(
    out: &mut impl Write,
    matcher: &Matcher,
    args: &CheckArgs,
    text: &str,
) -> anyhow::Result<bool> {
    let post = normalize(RawPost::typed(text.to_owned(), args.lang.clone()));
    let verdict = matcher.explain(&post);
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
        serde_json::to_writer(&mut *out, &output)?;
        writeln!(out)?;
    }
    Ok(verdict.is_report())
}

/// Checks each stdin line. Bounded lines: memory stays flat whatever
/// arrives on stdin, even a stream that never ends a line; a line over the
/// limit stops the run (`Some` of [`ERROR_STATUS`]).
fn check_stdin(
    args: &CheckArgs,
    one: &mut impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<Option<ExitCode>> {
    let limit = usize::try_from(args.max_line_bytes).unwrap_or(DEFAULT_MAX_CHECK_LINE);
    let mut lines = LineReader::new(std::io::stdin().lock(), limit).stop_at_limit();
    while let Some((number, line)) = lines.next_line().context("cannot read stdin")? {
        let bytes = match line {
            Line::Frame(bytes) => bytes,
            Line::Oversized(_) => {
                eprintln!(
                    "error: stdin line {number} is longer than {limit} bytes \
                     (--max-line-bytes); stopped reading"
                );
                return Ok(Some(ExitCode::from(ERROR_STATUS)));
            }
        };
        // A line that is not UTF-8 is checked as far as it can be read,
        // and said so, rather than ending the run.
        let text = String::from_utf8_lossy(bytes);
        if let std::borrow::Cow::Owned(_) = text {
            eprintln!("stdin line {number}: invalid UTF-8, replaced with U+FFFD");
        }
        one(&text)?;
    }
    Ok(None)
}
