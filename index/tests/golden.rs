//! Golden test pinning the on-disk format (frames, active segment header, sealed blocks, block
//! index, position table, footer and its version, position stub, `source.json`, the retirement
//! mark `retired.json`): a tiny store
//! written from fixed inputs must match `tests/golden/store_v1.txt` byte for byte.
//!
//! A change here means old stores may no longer read: bump the format version (magic/footer
//! version) and keep a reader for the old one. When the change is intended, regenerate with
//! `RUNNEL_UPDATE_GOLDEN=1 cargo test -p runnel-index --test golden` and commit the new file.

use runnel_index::{
    FileId, Limits, NewRecord, Position, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use std::fmt::Write as _;
use std::path::Path;

fn dump(root: &Path, dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if rel == "LOCK" {
            continue;
        }
        if p.is_dir() {
            dump(root, &p, out);
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        writeln!(out, "== {rel} ({} bytes)", bytes.len()).unwrap();
        for chunk in bytes.chunks(32) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "{hex}").unwrap();
        }
    }
}

#[test]
fn on_disk_format_matches_the_golden_file() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        block_raw_bytes: 200,
        zstd_level: 1,
        // Keeps the 2023 records; the 19th-century ones of "old:gone" are deleted by age.
        max_age: std::time::Duration::from_secs(100 * 365 * 24 * 3600),
        ..Limits::default()
    };
    let s = Store::open(d.path(), limits).unwrap();
    let key = "cri:ns_pod_uid/app/0";
    let identity = SourceIdentity {
        namespace: Some("ns".into()),
        pod: Some("pod".into()),
        pod_uid: Some("uid".into()),
        container: Some("app".into()),
        restart: Some(0),
        log_path: Some("/var/log/pods/ns_pod_uid/app/0.log".into()),
        ..Default::default()
    };
    s.upsert_source(key, &identity).unwrap();
    let file = FileId {
        dev: 0x801,
        ino: 1234,
        fingerprint: 0x0123_4567_89ab_cdef,
    };
    let style = TimeStyle {
        offset_secs: 7200,
        frac_digits: 9,
        zulu: false,
    };
    let mut offset = 0;
    for i in 0..7u64 {
        let msg = format!("golden line {i} with some text");
        offset += msg.len() as u64 + 50;
        let rec = NewRecord {
            time_ns: 1_700_000_000_000_000_000 + (i as i64) * 1_000_000
                - if i == 3 { 5 } else { 0 },
            time_style: style,
            stream: if i % 3 == 2 {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            flags: RecordFlags(if i == 4 {
                RecordFlags::PARTIAL_MERGED
            } else {
                0
            }),
            message: msg.as_bytes(),
            position: if i == 6 {
                Position::Stream {
                    stream_id: 9,
                    seq: 77,
                }
            } else {
                Position::File { file, offset }
            },
        };
        s.append(key, &rec).unwrap();
        if i == 4 {
            s.seal(key).unwrap();
        }
    }
    // A second source whose records retention deletes: its position stub is pinned too.
    let gone = FileId {
        dev: 0x801,
        ino: 99,
        fingerprint: 0x00ff_00ff_00ff_00ff,
    };
    for i in 0..3u64 {
        let rec = NewRecord {
            time_ns: -3_000_000_000_000_000_000 + i as i64,
            time_style: style,
            stream: Stream::Stdout,
            flags: RecordFlags(0),
            message: b"ancient",
            position: Position::File {
                file: gone,
                offset: 8 * (i + 1),
            },
        };
        s.append("old:gone", &rec).unwrap();
    }
    s.seal("old:gone").unwrap();
    // A retired source that still holds a record keeps its directory, with the mark pinned
    // here; an empty one leaves nothing behind.
    let mut job = rec_at(1_700_000_000_000_000_000, b"cron job done", style);
    job.position = Position::None;
    s.append("cron:job-1", &job).unwrap();
    s.retire_source("cron:job-1").unwrap();
    s.upsert_source("cron:job-0", &SourceIdentity::default())
        .unwrap();
    s.retire_source("cron:job-0").unwrap();
    s.sync().unwrap();
    s.enforce_retention().unwrap();
    assert_eq!(s.durable_position(&gone), Some(24));
    drop(s);
    let mut got = String::new();
    dump(d.path(), d.path(), &mut got);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/store_v1.txt");
    if std::env::var_os("RUNNEL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with RUNNEL_UPDATE_GOLDEN=1 cargo test -p runnel-index --test golden",
            golden.display()
        )
    });
    assert!(
        got == want,
        "on-disk format changed (see this file's doc for what to do).\n--- got ---\n{got}"
    );
    // And the pinned store still reads back.
    let s = Store::open_read_only(d.path()).unwrap();
    let b = s.read_from(key, 0, 100, 1 << 20).unwrap();
    assert_eq!(b.records.len(), 7);
    assert_eq!(s.durable_position(&gone), Some(24));
    let retired: Vec<_> = s.sources().into_iter().filter(|i| i.retired).collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(
        (retired[0].key.as_str(), retired[0].records),
        ("cron:job-1", 1)
    );
    assert!(s.verify().is_ok());
}

fn rec_at(time_ns: i64, message: &[u8], time_style: TimeStyle) -> NewRecord<'_> {
    NewRecord {
        time_ns,
        time_style,
        stream: Stream::Stdout,
        flags: RecordFlags(0),
        message,
        position: Position::None,
    }
}
