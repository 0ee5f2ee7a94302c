//! Model-based test of the reader and rotation state machine: random sequences of write /
//! rotate / gzip / truncate / delete / read / restart run against the real tailer (each read is
//! a fresh `Ingest` resuming from the index) and a simple model of which lines must be in the
//! index; the two must agree exactly (no loss, no duplicate, file order).

use flate2::write::GzEncoder;
use proptest::prelude::*;
use runnel_agent::tail::Ingest;
use runnel_index::{Limits, Store};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Write(u8),
    Rotate,
    Gzip,
    Truncate,
    Delete,
    Read,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..12).prop_map(Op::Write),
        2 => Just(Op::Rotate),
        1 => Just(Op::Gzip),
        1 => Just(Op::Truncate),
        1 => Just(Op::Delete),
        3 => Just(Op::Read),
        1 => Just(Op::Restart),
    ]
}

/// A file of the model: the line numbers it holds and how many were read.
#[derive(Debug, Default, Clone)]
struct MFile {
    lines: Vec<u64>,
    read: usize,
}

struct World {
    dir: tempfile::TempDir,
    store: Option<Arc<Store>>,
    live: PathBuf,
    next: u64,
    m_live: Option<MFile>,
    m_rotated: Vec<MFile>,
    expected: Vec<u64>,
}

fn line(i: u64) -> String {
    // Some lines are split into CRI partial fragments.
    let t = format!("2024-05-01T12:00:{:02}.{:09}Z", i % 60, i + 1);
    if i % 5 == 3 {
        format!("{t} stdout P line-{i}-\n{t} stdout F tail\n")
    } else {
        format!("{t} stdout F line-{i}\n")
    }
}

fn message(i: u64) -> String {
    if i % 5 == 3 {
        format!("line-{i}-tail")
    } else {
        format!("line-{i}")
    }
}

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("runnel-model-")
            .tempdir()
            .unwrap();
        let cdir = dir.path().join("pods/ns_pod_uid/app");
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
        World {
            live: cdir.join("0.log"),
            dir,
            store: Some(store),
            next: 0,
            m_live: None,
            m_rotated: Vec::new(),
            expected: Vec::new(),
        }
    }
    fn rotated(&self, n: usize) -> (PathBuf, PathBuf) {
        let p = PathBuf::from(format!("{}.{n}", self.live.display()));
        let gz = PathBuf::from(format!("{}.{n}.gz", self.live.display()));
        (p, gz)
    }
    fn config(&self) -> runnel_config::Config {
        let mut cfg = runnel_config::Config::default();
        let i = &mut cfg.inputs;
        i.docker.enabled = false;
        i.docker.root = self.dir.path().join("docker");
        i.cri.enabled = true;
        i.cri.root = self.dir.path().join("pods");
        i.max_line_bytes = 1 << 20;
        i.read_buffer_bytes = 64 << 10;
        i.rescan_interval = Duration::from_secs(10);
        i.max_open_rotated_per_source = 2;
        i.queue_max_bytes = 1 << 20;
        i.fingerprint_bytes = 64;
        cfg
    }
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Write(k) => {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.live)
                    .unwrap();
                let m = self.m_live.get_or_insert_with(MFile::default);
                for _ in 0..*k {
                    f.write_all(line(self.next).as_bytes()).unwrap();
                    m.lines.push(self.next);
                    self.next += 1;
                }
            }
            Op::Rotate => {
                let Some(m) = self.m_live.take() else { return };
                for n in (1..=self.m_rotated.len()).rev() {
                    let (p, gz) = self.rotated(n);
                    let (p2, gz2) = self.rotated(n + 1);
                    if p.exists() {
                        std::fs::rename(&p, &p2).unwrap();
                    }
                    if gz.exists() {
                        std::fs::rename(&gz, &gz2).unwrap();
                    }
                }
                std::fs::rename(&self.live, self.rotated(1).0).unwrap();
                self.m_rotated.insert(0, m);
            }
            Op::Gzip => {
                // Compress the oldest rotated file that is still plain.
                for n in (1..=self.m_rotated.len()).rev() {
                    let (p, gz) = self.rotated(n);
                    if p.exists() {
                        let data = std::fs::read(&p).unwrap();
                        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        e.write_all(&data).unwrap();
                        std::fs::write(&gz, e.finish().unwrap()).unwrap();
                        std::fs::remove_file(&p).unwrap();
                        return;
                    }
                }
            }
            Op::Truncate => {
                if let Some(m) = self.m_live.as_mut() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&self.live)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                    m.lines.clear();
                    m.read = 0;
                }
            }
            Op::Delete => {
                let n = self.m_rotated.len();
                if n > 0 {
                    let (p, gz) = self.rotated(n);
                    let _ = std::fs::remove_file(p);
                    let _ = std::fs::remove_file(gz);
                    self.m_rotated.pop();
                }
            }
            Op::Restart => {
                self.store = None;
                self.store = Some(Arc::new(
                    Store::open(&self.dir.path().join("index"), Limits::default()).unwrap(),
                ));
                self.read();
            }
            Op::Read => self.read(),
        }
    }
    fn read(&mut self) {
        let store = self.store.clone().unwrap();
        Ingest::start(&self.config(), store)
            .unwrap()
            .run_until_eof()
            .unwrap();
        for m in self
            .m_rotated
            .iter_mut()
            .rev()
            .chain(self.m_live.iter_mut())
        {
            self.expected.extend_from_slice(&m.lines[m.read..]);
            m.read = m.lines.len();
        }
    }
    fn actual(&self) -> Vec<String> {
        let store = self.store.as_ref().unwrap();
        let key = "cri:ns_pod_uid/app/0";
        if !store.sources().iter().any(|s| s.key == key) {
            return Vec::new();
        }
        store
            .read_from(key, 0, usize::MAX, usize::MAX)
            .unwrap()
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.message).into_owned())
            .collect()
    }
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = World::new();
    for op in ops {
        w.apply(op);
    }
    w.apply(&Op::Read);
    let want: Vec<String> = w.expected.iter().map(|&i| message(i)).collect();
    prop_assert_eq!(w.actual(), want, "ops: {:?}", ops);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn tailer_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..25)) {
        check(&ops)?;
    }
}

#[test]
fn model_world_helpers_agree_on_a_fixed_sequence() {
    use Op::*;
    check(&[
        Write(1),
        Rotate,
        Write(1),
        Rotate,
        Write(1),
        Read,
        Truncate,
        Rotate,
        Gzip,
        Write(1),
        Gzip,
    ])
    .unwrap();
    check(&[
        Write(3),
        Read,
        Write(2),
        Rotate,
        Gzip,
        Write(4),
        Restart,
        Truncate,
        Write(1),
        Rotate,
        Write(2),
        Delete,
    ])
    .unwrap();
}
