//! The one ingest writer with a real index: a record the index refuses for good (a message
//! too large to frame) is counted and skipped, and the records after it are stored — one bad
//! record does not wedge every input.

use runnel_agent::ingest::{Batch, Msg, QueuedRecord, Writer, WriterSettings};
use runnel_index::{Limits, Position, Query, RecordFlags, Store, Stream, TimeStyle};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn record(key: &str) -> QueuedRecord {
    QueuedRecord {
        key: key.into(),
        time_ns: 1,
        style: TimeStyle::default(),
        stream: Stream::Stdout,
        flags: RecordFlags::default(),
        start: 0,
        len: 0,
        position: Position::None,
    }
}

#[test]
fn records_the_index_refuses_for_good_are_counted_and_skipped_not_retried_forever() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Limits::default()).unwrap());
    let writer = Writer::start(
        store.clone(),
        WriterSettings::from_config(&runnel_config::Config::default()),
    )
    .unwrap();
    let h = writer.handle();
    h.tx.send(Msg::Source("good".into(), Box::default()))
        .unwrap();
    let mut b = Batch::with_budget(1 << 20);
    b.push(record("good"), b"before");
    let huge = vec![b'x'; runnel_index::MAX_MESSAGE + 1];
    b.push(record("good"), &huge);
    b.push(record("good"), b"after");
    h.tx.send(Msg::Records(b)).unwrap();
    writer.flush();
    let got: Vec<Vec<u8>> = store
        .query("good", &Query::default())
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.message)
        .collect();
    assert_eq!(got, [b"before".to_vec(), b"after".to_vec()]);
    assert_eq!(writer.stats().refused_records.load(Ordering::Relaxed), 1);
    let mut text = String::new();
    writer.stats().render(&mut text);
    assert!(
        text.contains("runnel_ingest_refused_records_total 1"),
        "{text}"
    );
    writer.shutdown();
}
