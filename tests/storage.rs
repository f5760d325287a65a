//! Storage faults against the real binary: a flipped byte anywhere in the
//! state, a rolled-back log, a record failing its checksum, a full disk.
//! Each must stop with a clear error naming the recovery, never open an
//! older state in silence; `state verify|repair|reset` must work.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use outagewatch::state::{SEAL_FILE, SledStore, Store};

const NO_ALERTS: &[outagewatch::alert::Alert] = &[];
use support::{JetstreamServer, Plan, demo_frames, jetstream_config};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outagewatch"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

fn replay_into(state: &Path) -> Output {
    bin()
        .arg("replay")
        .arg(demo())
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("replay runs")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn flip(file: &Path, offset: u64) {
    let mut bytes = std::fs::read(file).expect("read");
    let at = usize::try_from(offset).expect("offset") % bytes.len();
    bytes[at] ^= 0xff;
    std::fs::write(file, bytes).expect("write");
}

/// `outagewatch state ACTION --state-dir DIR`.
fn state_cmd(action: &str, dir: &Path) -> Output {
    bin()
        .args(["state", action, "--state-dir"])
        .arg(dir)
        .output()
        .expect("state command runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_flipped_byte_anywhere_is_reported_with_the_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = dir.path().join("clean");
    let first = replay_into(&clean);
    assert!(first.status.success(), "{}", stderr(&first));
    let db_len = std::fs::metadata(clean.join("db")).expect("db").len();
    let mut targets: Vec<(&str, u64)> = [
        0,
        1,
        37,
        4096,
        db_len / 5,
        db_len / 3,
        db_len / 2,
        db_len * 3 / 4,
        db_len - 1,
    ]
    .into_iter()
    .map(|at| ("db", at))
    .collect();
    targets.push(("conf", 3));
    for (n, (file, offset)) in targets.into_iter().enumerate() {
        let state = dir.path().join(format!("flip{n}"));
        copy_dir(&clean, &state);
        flip(&state.join(file), offset);
        let out = replay_into(&state);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{file}@{offset}: {err}");
        assert!(err.contains("is damaged"), "{file}@{offset}: {err}");
        assert!(
            err.contains("outagewatch state repair"),
            "names the recovery: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{file}@{offset}: no alert from damaged state"
        );
        let verify = state_cmd("verify", &state);
        assert_eq!(
            verify.status.code(),
            Some(1),
            "{file}@{offset}: {}",
            stderr(&verify)
        );
        assert!(stderr(&verify).contains("DAMAGED"), "{}", stderr(&verify));
    }
}

#[test]
fn repair_and_reset_recover_and_keep_the_old_state_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    assert!(replay_into(&state).status.success());
    let verify = state_cmd("verify", &state);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let ok = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(ok.contains("OK, generation"), "{ok}");
    // A byte flipped in a part of the file sled does not use: the records
    // are all readable, so repair keeps every one of them.
    flip(
        &state.join("db"),
        std::fs::metadata(state.join("db")).expect("db").len() - 1,
    );
    let repair = state_cmd("repair", &state);
    let said = String::from_utf8_lossy(&repair.stdout).into_owned();
    assert!(repair.status.success(), "{}", stderr(&repair));
    assert!(said.contains("dropped 0 damaged"), "{said}");
    let verify = state_cmd("verify", &state);
    let after = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{}", stderr(&verify));
    let buckets = |s: &str| {
        s.split(" buckets")
            .next()
            .and_then(|p| p.split_whitespace().last())
            .map(str::to_owned)
    };
    assert_eq!(buckets(&ok), buckets(&after), "{ok} / {after}");
    let aside = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.damaged-")
        })
        .count();
    assert_eq!(aside, 1, "the damaged state is kept aside");
    // Reset: a fresh, empty state; the old one aside too.
    let reset = state_cmd("reset", &state);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert_eq!(std::fs::read_dir(&state).expect("empty").count(), 0);
    assert!(replay_into(&state).status.success());
}

/// `state verify`'s count of buckets.
fn verified_buckets(state: &Path) -> String {
    let verify = state_cmd("verify", state);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let said = String::from_utf8_lossy(&verify.stdout).into_owned();
    said.split(" buckets")
        .next()
        .and_then(|p| p.split_whitespace().last())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no bucket count in {said}"))
}

#[test]
fn a_compacted_state_holds_the_same_and_a_replay_goes_on_from_it_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    let compacted = dir.path().join("compacted");
    // The demo's first half into the state; the second half, which holds
    // its alert, is replayed onto the state and onto its compacted copy.
    let frames = demo_frames();
    let (head, tail) = frames.split_at(frames.len() / 2);
    let files = [dir.path().join("head.jsonl"), dir.path().join("tail.jsonl")];
    for (file, lines) in files.iter().zip([head, tail]) {
        std::fs::write(file, lines.join("\n") + "\n").expect("write");
    }
    let replay = |file: &Path, state: &Path| {
        let out = bin()
            .arg("replay")
            .arg(file)
            .arg("--state-dir")
            .arg(state)
            .output()
            .expect("replay runs");
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    replay(&files[0], &plain);
    copy_dir(&plain, &compacted);
    let compact = state_cmd("compact", &compacted);
    let said = String::from_utf8_lossy(&compact.stdout).into_owned();
    assert!(compact.status.success(), "{}", stderr(&compact));
    assert!(said.contains("compacted:"), "{said}");
    assert_eq!(verified_buckets(&plain), verified_buckets(&compacted));
    let verify = state_cmd("verify", &compacted);
    let said = String::from_utf8_lossy(&verify.stdout).into_owned();
    let on_disk: u64 = said
        .lines()
        .nth(1)
        .and_then(|line| line.split(": ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes on disk in {said}"));
    assert!(on_disk > 0, "{said}");
    let alerts = replay(&files[1], &plain);
    assert!(
        !alerts.is_empty(),
        "the second half raises the demo's alert"
    );
    assert_eq!(alerts, replay(&files[1], &compacted));
    assert_eq!(verified_buckets(&plain), verified_buckets(&compacted));
    // Not a state directory: a clear error, nothing created.
    let missing = dir.path().join("missing");
    let out = state_cmd("compact", &missing);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a state directory"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());
}

#[test]
fn a_rolled_back_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let old = dir.path().join("old");
    // An older copy of the store, as sled opens after dropping a torn tail.
    {
        let mut store = SledStore::open(&state).expect("open");
        let cp = outagewatch::state::Checkpoint::default();
        store
            .save(&[], &cp.as_ref(), None, NO_ALERTS, &[])
            .expect("save");
        store.flush().expect("flush");
    }
    copy_dir(&state, &old);
    {
        let mut store = SledStore::open(&state).expect("reopen");
        let cp = outagewatch::state::Checkpoint::default();
        for _ in 0..3 {
            store
                .save(&[], &cp.as_ref(), None, NO_ALERTS, &[])
                .expect("save");
        }
        store.flush().expect("flush");
    }
    // Old sled files, current seal (no file sums: as after a crash).
    let seal = std::fs::read(state.join(SEAL_FILE)).expect("seal");
    std::fs::remove_dir_all(&state).expect("rm");
    copy_dir(&old, &state);
    std::fs::write(state.join(SEAL_FILE), seal).expect("seal");
    let err = SledStore::open(&state)
        .err()
        .expect("must be refused")
        .to_string();
    assert!(
        err.contains("rolled back: generation 4 was made durable, the store holds 1"),
        "{err}"
    );
    assert!(err.contains("state repair"), "{err}");
}

/// Files that live beside sled's own come and go on their own: the
/// status server's `http.addr` is removed when it stops, after the store
/// was sealed. The seal summed it, so every start after a
/// `replay --http --state-dir` refused the store as damaged ("file
/// http.addr is missing") until `state repair`.
#[test]
fn a_replay_with_the_status_server_leaves_a_store_that_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let out = bin()
        .arg("replay")
        .arg(demo())
        .arg("--state-dir")
        .arg(&state)
        .args(["--http", "127.0.0.1:0"])
        .output()
        .expect("replay runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !state.join("http.addr").exists(),
        "the server removed its address"
    );
    let verify = state_cmd("verify", &state);
    assert!(verify.status.success(), "{}", stderr(&verify));
    // A file left beside the store (an editor's, an older address) is
    // not the store's either.
    std::fs::write(state.join("notes.txt"), "mine").expect("write");
    let again = replay_into(&state);
    assert!(again.status.success(), "{}", stderr(&again));
    std::fs::remove_file(state.join("notes.txt")).expect("rm");
    let verify = state_cmd("verify", &state);
    assert!(verify.status.success(), "{}", stderr(&verify));
    // sled's own files are still summed: a changed byte is found.
    flip(&state.join("conf"), 3);
    let verify = state_cmd("verify", &state);
    assert!(!verify.status.success(), "a changed conf went unseen");
}

#[test]
fn a_record_failing_its_checksum_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    assert!(replay_into(&state).status.success());
    // Change one byte inside a bucket's JSON, through sled itself (sled's
    // own CRCs then hold: only our checksum can tell).
    {
        let db = sled::open(&state).expect("raw open");
        let (key, value) = db
            .scan_prefix(b"b")
            .next()
            .expect("a bucket")
            .expect("read");
        let mut value = value.to_vec();
        let at = value.len() / 2;
        value[at] = if value[at] == b'1' { b'2' } else { b'1' };
        db.insert(key, value).expect("insert");
        db.flush().expect("flush");
    }
    std::fs::remove_file(state.join(SEAL_FILE)).expect("no seal: only the records speak");
    let out = replay_into(&state);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("fails its checksum"), "{err}");
}

/// A record without a checksum of the wrong layout: a bucket width of 3
/// bytes passed `state verify`, `repair` kept it ("dropped 0"), and every
/// replay after refused the store, until `reset` threw all of it away.
/// Now `verify` names it, `repair` rebuilds it from the buckets (10 s, the
/// default width) and says
/// so, and the replay goes on from the state.
#[test]
fn a_bucket_width_of_the_wrong_length_is_named_and_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    assert!(replay_into(&state).status.success());
    {
        let db = sled::open(&state).expect("raw open");
        db.insert(b"mbucket_secs", &[0u8, 0, 60][..])
            .expect("insert");
        db.flush().expect("flush");
    }
    std::fs::remove_file(state.join(SEAL_FILE)).expect("no seal: only the records speak");
    let verify = state_cmd("verify", &state);
    let err = stderr(&verify);
    assert_eq!(verify.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mbucket_secs") && err.contains("bucket width has 3 bytes, not 8"),
        "{err}"
    );
    let repair = state_cmd("repair", &state);
    let said = String::from_utf8_lossy(&repair.stdout).into_owned();
    // A record dropped (if rebuilt), and no count of what the store held
    // (the seal is gone): not known to be lossless, so 3, not 0.
    assert_eq!(repair.status.code(), Some(3), "{}", stderr(&repair));
    assert!(
        said.contains("dropped mbucket_secs") && said.contains("rebuilt as 10 s"),
        "{said}"
    );
    let verify = state_cmd("verify", &state);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let again = replay_into(&state);
    assert!(again.status.success(), "{}", stderr(&again));
}

/// A 2 MiB tmpfs, unmounted on drop; `None` where mounting is not allowed.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_daemon_with_exit_1_within_30_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk")) else {
        // Not a failure under CI, unlike the other skips: mounting needs
        // a privilege (CAP_SYS_ADMIN) that even root lacks in many
        // containers, and nothing the project installs can grant it.
        eprintln!(
            "SKIPPED: cannot mount a small tmpfs here (needs root); the full-disk case is untested"
        );
        return;
    };
    // 1 MiB of the 2 taken: the demo's state (about 2 MiB) runs out of room.
    std::fs::write(disk.0.join("fill"), vec![0u8; 1 << 20]).expect("fill");
    let frames = demo_frames();
    let server = JetstreamServer::start(frames, Plan::default());
    let config = jetstream_config(dir.path(), &[server.url()], 5.0);
    let state = disk.0.join("state");
    let alerts = dir.path().join("alerts.jsonl");
    let started = Instant::now();
    let mut daemon = support::run_daemon(&config, &state, Some(&alerts), &[]);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            panic!(
                "still running after 30 s on a full disk; log:\n{}",
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = daemon.log_after_exit();
    eprintln!("exit {status} after {:?}; last lines:", started.elapsed());
    for line in log.lines().rev().take(4) {
        eprintln!("  {line}");
    }
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("No space left on device") || log.contains("space"),
        "the cause is named: {log}"
    );
}

/// The commands that open, move or rewrite a state refuse a folder that
/// holds none (a typo, `$HOME`), and leave it as it was: they created a
/// store there and called it "OK", or moved it aside as "damaged".
#[test]
fn state_commands_refuse_a_folder_that_holds_no_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("notstate");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("file.txt"), "mine").expect("write");
    let mut outputs: Vec<(String, Output)> = ["verify", "repair", "reset", "compact"]
        .into_iter()
        .map(|action| (format!("state {action}"), state_cmd(action, &folder)))
        .collect();
    let dead = bin()
        .args(["alerts", "dead", "--state-dir"])
        .arg(&folder)
        .output()
        .expect("runs");
    outputs.push(("alerts dead".into(), dead));
    for (command, output) in outputs {
        assert!(!output.status.success(), "{command} must refuse");
        assert!(
            stderr(&output).contains("is not a state directory"),
            "{command}: {}",
            stderr(&output)
        );
    }
    let left: Vec<String> = std::fs::read_dir(&folder)
        .expect("still there")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["file.txt"], "untouched");
}
