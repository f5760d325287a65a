//! The end of a replay: the sinks given up to `--drain-timeout` to deliver
//! what is left, each sink's account on stderr, and the exit status that
//! sums it up (1 for a file not read, 3 for alerts left undelivered).

use std::process::ExitCode;
use std::time::Duration;

use super::replay::ReplayArgs;
use crate::alert::deliver::Delivery;
use crate::config::LINES_SINK;

/// How the sinks ended.
pub(super) struct Drained {
    /// Something was left undelivered or dead.
    pub(super) undelivered: bool,
    /// A sink could not write to standard output (why): the drain did not
    /// wait for it.
    pub(super) stdout_failure: Option<String>,
}

/// Lets the sinks deliver what is left (up to `--drain-timeout`, unless
/// standard output failed), reports each.
pub(super) fn drain(
    runtime: &tokio::runtime::Runtime,
    delivery: Delivery,
    args: &ReplayArgs,
) -> anyhow::Result<Drained> {
    let (drained, reports, stdout_failure) = runtime.block_on(async {
        let drained = delivery
            .drain(Duration::from_secs(args.drain_timeout))
            .await;
        let stdout_failure = delivery.stdout_failure().map(str::to_owned);
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        (drained, reports, stdout_failure)
    });
    let state_place = match &args.state_dir {
        Some(dir) => format!("the outbox in {}", dir.display()),
        None => {
            "a temporary state directory, removed at exit: pass --state-dir to keep them".to_owned()
        }
    };
    let mut undelivered = false;
    for report in reports
        .iter()
        .filter(|r| r.name != LINES_SINK || r.pending > 0)
    {
        eprintln!(
            "sink {}: {} delivered, {} retries, {} dead letters{}",
            report.name,
            report.delivered,
            report.retries,
            report.dead,
            if report.pending > 0 {
                format!(", {} undelivered, kept in {state_place}", report.pending)
            } else {
                String::new()
            }
        );
        undelivered |= report.pending > 0 || report.dead > 0;
    }
    if !drained && stdout_failure.is_none() {
        eprintln!(
            "drain timeout ({} s) reached before every alert was delivered",
            args.drain_timeout
        );
    }
    Ok(Drained {
        undelivered,
        stdout_failure,
    })
}

/// 1 when a file could not be read (each named), 3 when alerts were left
/// undelivered, else 0.
pub(super) fn exit_code(read_errors: &[String], undelivered: bool) -> ExitCode {
    if !read_errors.is_empty() {
        for error in read_errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "the replay is incomplete: {} read error(s); the alerts above cover what was read",
            read_errors.len()
        );
        return ExitCode::FAILURE;
    }
    if undelivered {
        return ExitCode::from(super::INCOMPLETE_STATUS);
    }
    ExitCode::SUCCESS
}
