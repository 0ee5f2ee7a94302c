//! The config watcher against the kubelet's AtomicWriter steps, reproduced exactly: a new
//! `..<timestamp>` directory, a `..data_tmp` symlink renamed over `..data`, the old directory
//! removed, and `runnel.yaml -> ..data/runnel.yaml` never touched.

use crossbeam_channel::{bounded, Receiver, Sender};
use runnel_config::{Candidate, ConfigWatcher, Snapshot};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A ConfigMap volume as the kubelet lays it out.
struct Volume {
    dir: tempfile::TempDir,
    current: Option<PathBuf>,
    n: u32,
}

impl Volume {
    fn new(text: &str) -> Volume {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut v = Volume {
            dir,
            current: None,
            n: 0,
        };
        v.update(text);
        symlink("..data/runnel.yaml", v.file()).expect("file symlink");
        v
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("runnel.yaml")
    }

    /// One AtomicWriter update (kubernetes pkg/volume/util/atomic_writer.go, Write).
    fn update(&mut self, text: &str) {
        self.n += 1;
        let root = self.dir.path();
        let ts = format!("..2026_12_01_22_00_{:02}.{}", self.n, 100 + self.n);
        std::fs::create_dir(root.join(&ts)).expect("timestamp dir");
        std::fs::write(root.join(&ts).join("runnel.yaml"), text).expect("payload");
        symlink(&ts, root.join("..data_tmp")).expect("..data_tmp");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("rename");
        if let Some(old) = self.current.replace(root.join(&ts)) {
            std::fs::remove_dir_all(old).expect("remove old dir");
        }
    }
}

fn sha(path: &Path) -> String {
    Snapshot::read(path).expect("read").sha256
}

/// Run the watcher on a thread; candidates come back on a channel.
fn spawn(mut w: ConfigWatcher) -> (Sender<()>, Receiver<Candidate>) {
    let (wake_tx, wake_rx) = bounded::<()>(1);
    let (tx, rx) = bounded(8);
    std::thread::spawn(move || {
        while let Some(c) = w.next(&wake_rx) {
            if tx.send(c).is_err() {
                return;
            }
        }
    });
    (wake_tx, rx)
}

fn next(rx: &Receiver<Candidate>, within: Duration) -> Candidate {
    rx.recv_timeout(within)
        .expect("the watcher reported nothing in time")
}

#[test]
fn atomic_writer_update_is_seen_through_the_symlinks() {
    let mut vol = Volume::new("log: { level: info }\n");
    let w = ConfigWatcher::new(&vol.file(), &sha(&vol.file()), Duration::from_secs(3600))
        .expect("watch");
    let (_wake, rx) = spawn(w);
    vol.update("log: { level: debug }\n");
    let c = next(&rx, Duration::from_secs(10));
    let cfg = c.config.expect("valid config");
    assert_eq!(cfg.log.level, "debug");
    assert_eq!(c.sha256.as_deref(), Some(sha(&vol.file()).as_str()));
    assert!(!c.unchanged);
    // The intermediate steps (new dir, ..data_tmp) did not produce a candidate of their own:
    // nothing else is pending once the update settled.
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());

    // A second update replaces the first: the old timestamp dir is removed.
    vol.update("log: { level: warn }\n");
    let c = next(&rx, Duration::from_secs(10));
    assert_eq!(c.config.expect("valid").log.level, "warn");
    let entries: Vec<String> = std::fs::read_dir(vol.dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries.iter().filter(|e| e.starts_with("..2026")).count(),
        1
    );
}

#[test]
fn invalid_update_names_file_line_and_key() {
    let mut vol = Volume::new("log: { level: info }\n");
    let w = ConfigWatcher::new(&vol.file(), &sha(&vol.file()), Duration::from_secs(3600))
        .expect("watch");
    let (_wake, rx) = spawn(w);
    vol.update("log:\n  level: info\nindex:\n  max_disk_byte: 1GiB\n");
    let c = next(&rx, Duration::from_secs(10));
    let e = c.config.expect_err("an unknown key is an error").one_line();
    let file = vol.file().display().to_string();
    assert!(e.starts_with(&format!("{file}:4:")), "{e}");
    assert!(e.contains("max_disk_byte"), "{e}");
}

#[test]
fn backstop_finds_a_change_without_events_and_sighup_forces_a_read() {
    let vol = Volume::new("log: { level: info }\n");
    let running = sha(&vol.file());
    let mut w =
        ConfigWatcher::new(&vol.file(), &running, Duration::from_millis(200)).expect("watch");
    // Nothing changed: a direct check reports nothing, a forced one reports "unchanged".
    assert!(w.check(false).is_none());
    let forced = w.check(true).expect("forced read");
    assert!(forced.unchanged);
    let (wake, rx) = spawn(w);
    wake.send(()).expect("wake");
    let c = next(&rx, Duration::from_secs(5));
    assert!(
        c.unchanged,
        "SIGHUP with nothing new is reported as unchanged"
    );
    // Write the payload in place behind ..data (no directory event in the watched dir): only
    // the periodic re-read can see it.
    let target = std::fs::canonicalize(vol.file()).expect("resolve");
    let t0 = Instant::now();
    std::fs::write(&target, "log: { level: error }\n").expect("write");
    let c = next(&rx, Duration::from_secs(5));
    assert_eq!(c.config.expect("valid").log.level, "error");
    assert!(t0.elapsed() < Duration::from_secs(5));
}
