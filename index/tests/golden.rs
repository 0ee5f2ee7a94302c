//! Golden tests pinning the on-disk format (frames, active segment header, sealed blocks, block
//! index, position table, footer and its version, position stub, `source.json`, the retirement
//! mark `retired.json`): a tiny store written from fixed inputs must match
//! `tests/golden/store_v2.txt` byte for byte (sealed-segment format 2: columnar blocks), and the
//! same store as format 1 wrote it, `tests/golden/store_v1.txt`, must still read back the same
//! records, verify clean, and take new records and seals.
//!
//! A change here means old stores may no longer read: bump the format version (magic/footer
//! version), keep a reader for the old one and its golden file. When the change is intended,
//! regenerate with `RUNNEL_UPDATE_GOLDEN=1 cargo test -p runnel-index --test golden` and commit
//! the new file (only the current version's file is rewritten).

use runnel_index::{
    FileId, Limits, NewRecord, Position, RecordFlags, SourceIdentity, Store, StoredRecord, Stream,
    TimeStyle,
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

/// Write the files a dump lists under `root` (the inverse of [`dump`]).
fn undump(text: &str, root: &Path) {
    let mut file: Option<(std::path::PathBuf, usize, Vec<u8>)> = None;
    let flush = |f: Option<(std::path::PathBuf, usize, Vec<u8>)>| {
        if let Some((path, len, bytes)) = f {
            assert_eq!(bytes.len(), len, "{}", path.display());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    };
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("== ") {
            let (rel, len) = head.rsplit_once(" (").unwrap();
            let len = len.strip_suffix(" bytes)").unwrap().parse().unwrap();
            flush(file.replace((root.join(rel), len, Vec::new())));
        } else {
            let (_, _, bytes) = file.as_mut().unwrap();
            for i in (0..line.len()).step_by(2) {
                bytes.push(u8::from_str_radix(&line[i..i + 2], 16).unwrap());
            }
        }
    }
    flush(file);
}

const KEY: &str = "cri:ns_pod_uid/app/0";

fn limits() -> Limits {
    Limits {
        block_raw_bytes: 200,
        zstd_level: 1,
        // Keeps the 2023 records; the 19th-century ones of "old:gone" are deleted by age.
        max_age: std::time::Duration::from_secs(100 * 365 * 24 * 3600),
        ..Limits::default()
    }
}

fn golden_path(version: u32) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/store_v{version}.txt"))
}

/// What the pinned store holds, read back: every record of `KEY`, and its checks.
fn read_back(dir: &Path) -> Vec<StoredRecord> {
    let s = Store::open_read_only(dir).unwrap();
    let b = s.read_from(KEY, 0, 100, 1 << 20).unwrap();
    assert_eq!(b.records.len(), 7);
    assert_eq!(b.gap, 0);
    let gone = FileId {
        dev: 0x801,
        ino: 99,
        fingerprint: 0x00ff_00ff_00ff_00ff,
    };
    assert_eq!(s.durable_position(&gone), Some(24));
    let retired: Vec<_> = s.sources().into_iter().filter(|i| i.retired).collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(
        (retired[0].key.as_str(), retired[0].records),
        ("cron:job-1", 1)
    );
    let v = s.verify();
    assert!(v.is_ok(), "{:?}", v.problems);
    b.records
}

#[test]
fn format_1_store_of_the_golden_file_still_reads_and_takes_new_records() {
    let v1 = tempfile::tempdir().unwrap();
    undump(&std::fs::read_to_string(golden_path(1)).unwrap(), v1.path());
    let v2 = tempfile::tempdir().unwrap();
    write_store(v2.path());
    let old = read_back(v1.path());
    assert_eq!(
        old,
        read_back(v2.path()),
        "format 1 and 2 hold the same records"
    );
    // A window query and a tail out of the format 1 sealed segment.
    let age_due_at_once = Limits {
        segment_max_age: std::time::Duration::ZERO,
        ..limits()
    };
    let s = Store::open(v1.path(), age_due_at_once).unwrap();
    let q = runnel_index::Query {
        since_ns: Some(old[1].time_ns),
        until_ns: Some(old[4].time_ns),
        ..Default::default()
    };
    let got = s.query(KEY, &q).unwrap().records;
    let want: Vec<_> = old
        .iter()
        .filter(|r| r.time_ns >= old[1].time_ns && r.time_ns < old[4].time_ns)
        .cloned()
        .collect();
    assert_eq!(got, want);
    // New records and an age-due seal, which rewrites the small format 1 segment together with
    // the active records: everything still reads, and the one segment left is format 2.
    let more = rec_at(1_700_000_001_000_000_000, b"after the upgrade", style());
    s.append(KEY, &more).unwrap();
    s.sync().unwrap();
    s.seal_due().unwrap();
    let b = s.read_from(KEY, 0, 100, 1 << 20).unwrap();
    assert_eq!(b.records.len(), 8);
    assert_eq!(&b.records[..7], &old[..]);
    assert_eq!(b.records[7].message, b"after the upgrade");
    let v = s.verify();
    assert!(v.is_ok(), "{:?}", v.problems);
    let dir = v1
        .path()
        .join("sources/6372693a6e735f706f645f7569642f6170702f30");
    let magics: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sealed"))
        .map(|p| std::fs::read(p).unwrap()[..8].to_vec())
        .collect();
    assert_eq!(magics, [b"RNLSEG02".to_vec()]);
}

fn style() -> TimeStyle {
    TimeStyle {
        offset_secs: 7200,
        frac_digits: 9,
        zulu: false,
    }
}

#[test]
fn on_disk_format_matches_the_golden_file() {
    let d = tempfile::tempdir().unwrap();
    write_store(d.path());
    let mut got = String::new();
    dump(d.path(), d.path(), &mut got);
    let golden = golden_path(2);
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
    read_back(d.path());
    let s = Store::open_read_only(d.path()).unwrap();
    let fwd = s.read_from("forward:tag", 0, 100, 1 << 20).unwrap().records;
    let got: Vec<_> = fwd
        .iter()
        .map(|r| (r.position, r.stream, r.time_style))
        .collect();
    let stream = |stream_id, seq| Position::Stream { stream_id, seq };
    assert_eq!(
        got,
        [
            (stream(5, 40), Stream::Stdout, style()),
            (stream(5, 41), Stream::Stderr, style()),
            (stream(6, 42), Stream::Stdout, TimeStyle::default()),
            (Position::None, Stream::Stdout, style()),
        ]
    );
}

/// The pinned store, written from fixed inputs.
fn write_store(dir: &Path) {
    let s = Store::open(dir, limits()).unwrap();
    let key = KEY;
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
    let style = style();
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
    // A forwarded stream, sealed: stream positions, records without one, a changing time style
    // and stream (format 2 pins their columns; absent from the format 1 file).
    for i in 0..4u64 {
        let mut rec = rec_at(
            1_700_000_000_500_000_000 + i as i64 * 1_000,
            b"forwarded",
            if i == 2 { TimeStyle::default() } else { style },
        );
        rec.stream = if i == 1 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        if i != 3 {
            rec.position = Position::Stream {
                stream_id: 5 + i / 2,
                seq: 40 + i,
            };
        }
        s.append("forward:tag", &rec).unwrap();
    }
    s.seal("forward:tag").unwrap();
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
