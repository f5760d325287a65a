//! `outagewatch man`: the manual pages, from the same definitions as
//! `--help`. The top page's SUBCOMMANDS section refers to
//! `outagewatch-replay(1)` and the like, so every command gets its page:
//! printed one after another, or written one file each (`--dir`), as
//! packages install them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_mangen::Man;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into this directory (`outagewatch.1`,
    /// `outagewatch-replay.1`, `outagewatch-state-verify.1`, …) instead of
    /// printing every page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> anyhow::Result<ExitCode> {
    let pages = pages(super::Cli::command());
    match &args.dir {
        Some(dir) => write_pages(&pages, dir)?,
        None => {
            let mut out = std::io::stdout().lock();
            for page in &pages {
                page.render(&mut out)
                    .context("cannot write the manual pages")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The page of `command`, then of each subcommand, depth first (clap
/// names them `outagewatch-alerts-dead` once built).
fn pages(command: clap::Command) -> Vec<Man> {
    fn collect(command: &clap::Command, pages: &mut Vec<Man>) {
        pages.push(Man::new(command.clone()));
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            collect(sub, pages);
        }
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect(&command, &mut pages);
    pages
}

fn write_pages(pages: &[Man], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for page in pages {
        let path = dir.join(page.get_filename());
        page.generate_to(dir)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page a page refers to (`outagewatch-replay(1)`) is written,
    /// with its command's options.
    #[test]
    fn every_command_has_its_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_pages(&pages(super::super::Cli::command()), dir.path()).expect("written");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        for want in [
            "outagewatch.1",
            "outagewatch-replay.1",
            "outagewatch-series.1",
            "outagewatch-state-verify.1",
            "outagewatch-alerts-dead.1",
            "outagewatch-config-check.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let reference = regex::Regex::new(r"(outagewatch(?:\\-[a-z]+)+)\(1\)").expect("regex");
        let mut referred = 0;
        for name in &names {
            let page = std::fs::read_to_string(dir.path().join(name)).expect("page");
            for found in reference.captures_iter(&page) {
                let file = format!("{}.1", found[1].replace("\\-", "-"));
                assert!(names.contains(&file), "{name} refers to {file}: {names:?}");
                referred += 1;
            }
        }
        assert!(referred >= 10, "the pages refer to each other: {referred}");
        let replay =
            std::fs::read_to_string(dir.path().join("outagewatch-replay.1")).expect("replay");
        assert!(replay.contains("speed"), "{replay}");
    }
}
