//! The files a replay writes, kept apart from what it reads.
//!
//! `replay --report same.jsonl same.jsonl` emptied the recording before
//! reading it (`replayed 0 events`, exit 0, the recording replaced by
//! HTML), and `replay --alerts X X` appended alerts to the recording being
//! read, which then read them back as malformed lines; `--report c.toml
//! --config c.toml` replaced the configuration with HTML, and an output in
//! the patterns folder put a file among the patterns. Every output is
//! checked against every input (the recordings, the configuration file,
//! the patterns folder and each of its files) here, once, before anything
//! is opened, by device and inode ([`crate::file_identity`]): `./a.jsonl`,
//! its absolute path and a link to it are one file. And the report is
//! written to a temporary file beside it and renamed at the end
//! ([`ReportFile`]), so an existing report is replaced whole or not at
//! all.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::UsageError;
use super::replay::ReplayArgs;
use crate::config::Config;
use crate::file_identity::{same_file, within};

/// A file the replay writes, and the flag (or configuration key) that
/// named it, for the message.
pub struct Output<'a> {
    pub named_by: String,
    pub path: &'a Path,
}

/// What a replay (or the daemon) reads, besides standard input: an
/// output that is one of these would destroy it.
pub struct Inputs<'a> {
    /// What reads them, for the message: `replay`, `run`.
    pub reader: &'static str,
    /// The recordings as typed (`-` is standard input).
    pub recordings: &'a [String],
    /// `--config FILE`.
    pub config: Option<&'a Path>,
    /// The patterns folder (`--patterns`, or the configuration's
    /// `patterns`), and what named it.
    pub patterns: Option<(&'a Path, String)>,
}

/// Files of a patterns folder compared by identity: the folder and each
/// of its sub-folders (its layout is `services.toml`, `lang/*.toml`) hold
/// far fewer; this bounds a folder named by mistake (`--patterns /`).
const PATTERN_FILES_COMPARED: usize = 4096;

/// Refuses an output that is one of the `inputs` (a recording, the
/// configuration, inside the patterns folder or one of its files under
/// another name), or another output: either would destroy what the other
/// holds. A usage error naming both.
pub fn refuse_overlaps(inputs: &Inputs<'_>, outputs: &[Output<'_>]) -> Result<(), UsageError> {
    let pattern_files = inputs
        .patterns
        .as_ref()
        .map(|(dir, _)| files_of(dir))
        .unwrap_or_default();
    for (i, output) in outputs.iter().enumerate() {
        let destroys = |what: String| {
            UsageError(format!(
                "{} {} is {what}, which this {} reads: writing it would destroy it; name \
                 another file",
                output.named_by,
                output.path.display(),
                inputs.reader,
            ))
        };
        for input in inputs.recordings {
            let (path, input) = match input.as_str() {
                // What the shell connected to stdin: `replay - --alerts x < x`.
                "-" => (Path::new("/dev/stdin"), "on standard input (-)"),
                file => (Path::new(file), file),
            };
            if same_file(output.path, path) {
                return Err(destroys(format!("the recording {input}")));
            }
        }
        if let Some(config) = inputs.config
            && same_file(output.path, config)
        {
            return Err(destroys(format!(
                "the configuration file {} (--config)",
                config.display()
            )));
        }
        if let Some((dir, named_by)) = &inputs.patterns {
            let is_file = pattern_files.iter().find(|f| same_file(output.path, f));
            if let Some(file) = is_file {
                return Err(destroys(format!(
                    "the patterns file {} (of {named_by} {})",
                    file.display(),
                    dir.display()
                )));
            }
            if within(output.path, dir) {
                return Err(destroys(format!(
                    "inside the patterns folder {} ({named_by})",
                    dir.display()
                )));
            }
        }
        for other in &outputs[..i] {
            if same_file(output.path, other.path) {
                return Err(UsageError(format!(
                    "{} {} and {} {} are one file: each would overwrite the other; name two files",
                    other.named_by,
                    other.path.display(),
                    output.named_by,
                    output.path.display(),
                )));
            }
        }
    }
    Ok(())
}

/// The files in `dir` and in its sub-folders, one level down (the
/// layout of a patterns folder), at most [`PATTERN_FILES_COMPARED`].
fn files_of(dir: &Path) -> Vec<PathBuf> {
    let entries = |dir: &Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect::<Vec<_>>()
    };
    let mut files = Vec::new();
    for path in entries(dir) {
        if path.is_dir() {
            files.extend(entries(&path).into_iter().filter(|p| p.is_file()));
        } else if path.is_file() {
            files.push(path);
        }
        if files.len() >= PATTERN_FILES_COMPARED {
            files.truncate(PATTERN_FILES_COMPARED);
            break;
        }
    }
    files
}

/// What the replay reads: its recordings, `--config`, and the patterns
/// folder its matcher was loaded from ([`patterns_read`]).
pub fn inputs<'a>(
    args: &'a ReplayArgs,
    config: &'a Config,
    patterns_flag: Option<&'a Path>,
) -> Inputs<'a> {
    Inputs {
        reader: "replay",
        recordings: &args.files,
        config: args.watch.config.as_deref(),
        patterns: patterns_read(patterns_flag, config, args.watch.config.as_deref()),
    }
}

/// The patterns folder a matcher is loaded from, and what named it:
/// `patterns_flag` (`--patterns`), else the configuration's `patterns`
/// (of `config_file`, when one was named).
pub fn patterns_read<'a>(
    patterns_flag: Option<&'a Path>,
    config: &'a Config,
    config_file: Option<&Path>,
) -> Option<(&'a Path, String)> {
    match (patterns_flag, &config.patterns, config_file) {
        (Some(dir), _, _) => Some((dir, "--patterns".to_owned())),
        (None, Some(dir), Some(file)) => Some((
            dir.as_path(),
            format!("the `patterns` of {}", file.display()),
        )),
        (None, Some(dir), None) => Some((dir.as_path(), "`patterns`".to_owned())),
        (None, None, _) => None,
    }
}

/// Every file the replay writes, with what named it: `--report`, the
/// alerts file ([`alerts_written`]), `--record`, and the `--state-dir`
/// folder (sled writes its files there).
pub fn outputs<'a>(args: &'a ReplayArgs, config: &'a Config) -> Vec<Output<'a>> {
    let mut outputs = Vec::new();
    if let Some(dir) = &args.state_dir {
        outputs.push(Output {
            named_by: "--state-dir".into(),
            path: dir,
        });
    }
    if let Some(report) = &args.watch.report {
        outputs.push(Output {
            named_by: "--report".into(),
            path: report,
        });
    }
    outputs.extend(alerts_written(
        config,
        args.sinks.alerts.is_some(),
        args.watch.config.as_deref(),
    ));
    if let Some(record) = &args.record {
        outputs.push(Output {
            named_by: "--record".into(),
            path: record,
        });
    }
    outputs
}

/// The alerts file (`--alerts` when `flag` named it, else the
/// configuration's `[alerts] file` of `config_file`), unless it is `-`,
/// standard output.
pub fn alerts_written<'a>(
    config: &'a Config,
    flag: bool,
    config_file: Option<&Path>,
) -> Option<Output<'a>> {
    let path = config
        .alerts
        .file
        .as_deref()
        .filter(|f| *f != Path::new("-"))?;
    let named_by = match (flag, config_file) {
        (false, Some(file)) => format!("{}'s `[alerts] file`", file.display()),
        _ => "--alerts".into(),
    };
    Some(Output { named_by, path })
}

/// `--report FILE`, written whole at the end: a temporary file beside it,
/// made at the start (so a report that cannot be written is said before a
/// replay of hours, as the empty file made at the start did) and renamed
/// over FILE once the page is in it.
pub struct ReportFile {
    /// As the user typed it, for messages.
    named: PathBuf,
    /// Where it goes: FILE, or the file a link at FILE points to (the link
    /// stays a link).
    dest: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl ReportFile {
    pub fn create(path: &Path) -> anyhow::Result<ReportFile> {
        let failed = || format!("cannot write the report to {}", path.display());
        let dest = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if dest.is_dir() {
            anyhow::bail!("{}: it is a folder", failed());
        }
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // As `File::create` makes a file: 0666 less the umask (the
        // temporary file's default, 0600, would hide the report from a
        // web server reading it).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(dir).with_context(failed)?;
        Ok(ReportFile {
            named: path.to_path_buf(),
            dest,
            temp,
        })
    }

    /// The report as given on the command line.
    pub fn path(&self) -> &Path {
        &self.named
    }

    /// Writes `page` and puts it in place; the temporary file is removed
    /// if that fails.
    pub fn finish(mut self, page: &str) -> anyhow::Result<()> {
        let failed = || format!("cannot write the report to {}", self.named.display());
        self.temp
            .write_all(page.as_bytes())
            .and_then(|()| self.temp.flush())
            .with_context(failed)?;
        let named = self.named.clone();
        self.temp
            .persist(&self.dest)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write the report to {}", named.display()))?;
        Ok(())
    }
}
