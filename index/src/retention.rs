//! Retention: a node-wide disk budget and a maximum age.
//!
//! Policy: candidates are all sealed segments of all sources, ordered by their max record time
//! (globally oldest data first, so no source is favoured: a chatty source loses its old segments
//! before a quiet source loses its newer ones). First every segment whose max time is older than
//! `max_age` goes (reason `age`); then, while the total bytes on disk (sealed + active) exceed
//! `max_disk_bytes`, the oldest remaining one goes (reason `disk`). If the budget is still
//! exceeded when no sealed segment is left, the largest active segment is sealed so that the next
//! pass can delete it. Every deletion is counted in `StoreStats::retention` as
//! `(reason, segments, records, bytes)`; readers whose cursor pointed into a deleted segment get
//! an explicit `ReadBatch::gap`.

use crate::store::lock;
use crate::{Error, Store};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn count(store: &Store, reason: &str, records: u64, bytes: u64) {
    let mut c = lock(&store.counters);
    let r = &mut c.stats.retention;
    match r.iter_mut().find(|e| e.0 == reason) {
        Some(e) => {
            e.1 += 1;
            e.2 += records;
            e.3 += bytes;
        }
        None => r.push((reason.to_string(), 1, records, bytes)),
    }
}

/// Apply the disk budget and max age (see the module doc for the policy).
pub fn enforce(store: &Store) -> Result<(), Error> {
    if store.is_read_only() {
        return Err(Error::ReadOnly);
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let cutoff =
        now_ns.saturating_sub(store.limits.max_age.as_nanos().min(i64::MAX as u128) as i64);
    for pass in 0..2 {
        let all: Vec<_> = store
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut total = 0u64;
        let mut cands = Vec::new();
        for s in &all {
            let src = lock(s);
            total += src.disk_bytes();
            for seg in &src.sealed {
                cands.push((seg.max_time, seg.first_seq, s.clone(), seg.clone()));
            }
        }
        cands.sort_by_key(|c| (c.0, c.1));
        for (max_time, _, s, seg) in cands {
            let reason = if max_time < cutoff {
                "age"
            } else if total > store.limits.max_disk_bytes {
                "disk"
            } else {
                break;
            };
            let mut src = lock(&s);
            let before = src.sealed.len();
            src.sealed.retain(|x| !Arc::ptr_eq(x, &seg));
            if src.sealed.len() == before {
                continue;
            }
            // Forget positions only the deleted segment knew, as a reopen would.
            src.rebuild_positions();
            drop(src);
            crate::source::remove_segment(&seg.path)?;
            total = total.saturating_sub(seg.file_len());
            count(store, reason, seg.records(), seg.file_len());
        }
        if total <= store.limits.max_disk_bytes || pass == 1 {
            break;
        }
        // Over budget with no sealed segment left to delete: seal the largest active segment.
        let biggest = all
            .iter()
            .filter_map(|s| {
                let src = lock(s);
                let a = src.active.as_ref()?;
                (a.records() > 0).then(|| (a.len(), src.key.clone()))
            })
            .max();
        match biggest {
            Some((_, key)) => store.seal(&key)?,
            None => break,
        }
    }
    Ok(())
}
