//! The real binary running as a daemon (`Daemon`), the configs that
//! point it at stand-in servers, and readers of its logs and alerts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `outagewatch run` with `config`, its state in `state`, alerts to
/// `alerts` (if given), and `env` set.
pub fn run_daemon(
    config: &Path,
    state: &Path,
    alerts: Option<&Path>,
    env: &[(&str, &str)],
) -> Daemon {
    let utf8 = |p: &Path| p.to_str().expect("utf8").to_owned();
    let mut args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        utf8(config),
        "--state-dir".to_owned(),
        utf8(state),
    ];
    if let Some(alerts) = alerts {
        args.extend(["--alerts".to_owned(), utf8(alerts)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start_with_env(&args, env)
}

/// The first line of the alerts file at `path` containing `needle`, as JSON.
pub fn first_alert(path: &Path, needle: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("alerts");
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no alert with {needle:?} in:\n{text}"));
    serde_json::from_str(line).expect("JSON")
}

/// The lines of a daemon's text log at level WARN or ERROR (the level is
/// the second field, after the timestamp).
pub fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| matches!(line.split_whitespace().nth(1), Some("WARN" | "ERROR")))
        .collect()
}

/// `outagewatch run` with this config, state directory and alerts file.
pub fn start_daemon(config: &Path, state: &Path, alerts: &Path) -> Daemon {
    run_daemon(config, state, Some(alerts), &[])
}

/// The real binary running as a daemon, its stderr collected line by line.
pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The thread reading stderr into `log`; joined once the child exits.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        // Daemons in tests run side by side: the status server takes any
        // free loopback port unless a test says otherwise.
        let mut args: Vec<&str> = args.to_vec();
        if args.first() == Some(&"run")
            && !args
                .iter()
                .any(|a| a.starts_with("--http") || *a == "--no-http")
        {
            args.extend(["--http", "127.0.0.1:0"]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
            .args(&args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lock").push(line);
            }
        });
        Daemon {
            child,
            log,
            reader: Some(reader),
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    /// The whole log of a daemon that has exited: its stderr has ended,
    /// so the reader has every line once it returns (a fixed pause lost
    /// the last lines on a busy machine).
    pub fn log_after_exit(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader ends");
        }
        self.log_text()
    }

    /// Waits (up to `limit`) for a status line saying the daemon has
    /// processed up to `newest` (an event time, as [`at`] prints it).
    pub fn wait_for_newest(&self, newest: i64, limit: Duration) {
        self.wait_for(&format!("newest={}", at(newest)), limit);
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self
                .log
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no log line with {needle:?} within {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    /// Waits until the whole log satisfies `done`.
    pub fn wait_until(&self, done: impl Fn(&str) -> bool, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(&self.log_text()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "condition not met within {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    pub fn terminate(self, limit: Duration) -> (std::process::ExitStatus, Duration, String) {
        self.stop_with("TERM", limit)
    }

    /// Sends `signal` and waits for the exit, at most `limit`.
    pub fn stop_with(
        mut self,
        signal: &str,
        limit: Duration,
    ) -> (std::process::ExitStatus, Duration, String) {
        let start = Instant::now();
        self.signal(signal);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let took = start.elapsed();
                return (status, took, self.log_after_exit());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "did not exit within {limit:?} of SIG{signal}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// An event time as the status lines print it (RFC 3339 to the µs).
pub fn at(time_us: i64) -> String {
    outagewatch::wall::rfc3339_micros(time_us)
}

/// The last `processed=` cursor a status line logged.
pub fn processed(log: &str) -> Option<i64> {
    log.rmatch_indices("processed=").find_map(|(at, key)| {
        let stamp: String = log[at + key.len()..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        chrono::DateTime::parse_from_rfc3339(&stamp)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

/// A config file for a daemon reading `urls` as Jetstream (the default
/// wire: v2, compressed), with quick reconnects and health alerts
/// effectively off (they run on wall time).
pub fn jetstream_config(dir: &Path, urls: &[String], watchdog_secs: f64) -> PathBuf {
    jetstream_config_wire(dir, urls, watchdog_secs, Wire::V2_ZSTD)
}

/// A Jetstream wire, as a test names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub protocol: &'static str,
    pub compress: bool,
}

impl Wire {
    pub const V1_PLAIN: Wire = Wire {
        protocol: "v1",
        compress: false,
    };
    pub const V1_ZSTD: Wire = Wire {
        protocol: "v1",
        compress: true,
    };
    pub const V2_PLAIN: Wire = Wire {
        protocol: "v2",
        compress: false,
    };
    pub const V2_ZSTD: Wire = Wire {
        protocol: "v2",
        compress: true,
    };
}

/// [`jetstream_config`] on a given wire.
pub fn jetstream_config_wire(
    dir: &Path,
    urls: &[String],
    watchdog_secs: f64,
    wire: Wire,
) -> PathBuf {
    let path = dir.join("outagewatch.toml");
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let text = format!(
        "[[sources]]\nkind = \"jetstream\"\nname = \"bluesky\"\nurls = [{}]\nprotocol = \"{}\"\ncompress = {}\n\n[sources.connection]\nwatchdog_secs = {watchdog_secs}\nbackoff_min_ms = 50\nbackoff_max_ms = 400\nping_secs = 1\n\n[health]\nsilence_secs = 3600\nlag_secs = 100000000\n\n[daemon]\nstatus_secs = 0.2\nshutdown_grace_secs = 2\n",
        urls.join(", "),
        wire.protocol,
        wire.compress
    );
    std::fs::write(&path, text).expect("write config");
    path
}
