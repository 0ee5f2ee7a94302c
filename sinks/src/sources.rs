//! The sink's per-source state: where shipping stands in each stored stream (its [`Cursor`]),
//! kept in a slab so a batch can name a source by slot while the table changes around it.
//!
//! A source the index has forgotten (a removed container, deleted by retention) is dropped as
//! soon as none of its documents is in a batch or in flight — not only when the whole sink is
//! idle, which a busy node never is — and its slot is reused. So the table holds the sources
//! the index holds, plus at most those whose documents are still in flight.

use crate::encode::SourceFragment;
use crate::metrics::SourceLag;
use runnel_index::{SourceIdentity, SourceInfo};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Shipping state of one stored stream.
#[derive(Debug)]
pub struct Cursor {
    /// The index's source key.
    pub key: String,
    /// Document fields shared by every record of the source.
    pub frag: Arc<SourceFragment>,
    /// Who produced the records (index names use it).
    pub identity: SourceIdentity,
    /// Next sequence the index will assign.
    pub next_seq: u64,
    /// Newest stored record time.
    pub max_time_ns: Option<i64>,
    /// Next sequence to read.
    pub read_pos: u64,
    /// Sequences read and not yet done, with their record times.
    pub pending: Pending,
    /// Oldest record still stored: (first_seq, min_time_ns).
    pub first: (u64, Option<i64>),
    /// Newest acknowledged record time.
    pub acked_time_ns: Option<i64>,
    /// The index no longer has this source.
    pub gone: bool,
    /// The `{"create":{"_index":"…"` prefix of the action line for one time bucket (the hour
    /// of the record, or all time when the index name has no time in it): rendered once per
    /// bucket, not per document.
    pub action_prefix: Option<(i64, Vec<u8>)>,
}

impl Cursor {
    /// The first sequence not yet done: what the durable cursor file records.
    pub fn cursor(&self) -> u64 {
        self.pending.first().map_or(self.read_pos, |(seq, _)| seq)
    }
}

/// Sequences read and not yet done, in sequence order, with their record times. Records are
/// read in order, so an insert is an append (a re-read after a panicked batch inserts in
/// place); a done sequence is marked and leaves once everything before it is done — no tree
/// node per document.
#[derive(Debug, Default)]
pub struct Pending {
    /// (seq, time_ns, still pending); the front entry is always still pending.
    q: VecDeque<(u64, i64, bool)>,
    live: usize,
    /// Where the entry after the last one removed is: a batch's documents of one source are
    /// consecutive, and batches finish out of order, so most removes hit it, not the front.
    next_hint: usize,
}

impl Pending {
    /// Add (or make pending again) `seq`.
    pub fn insert(&mut self, seq: u64, time_ns: i64) {
        if self.q.back().is_none_or(|&(last, _, _)| seq > last) {
            self.q.push_back((seq, time_ns, true));
            self.live += 1;
            return;
        }
        match self.q.binary_search_by_key(&seq, |e| e.0) {
            Ok(i) => {
                if !self.q[i].2 {
                    self.live += 1;
                }
                self.q[i] = (seq, time_ns, true);
            }
            Err(i) => {
                self.q.insert(i, (seq, time_ns, true));
                self.live += 1;
            }
        }
    }

    /// `seq` is done (no effect when it is not pending).
    pub fn remove(&mut self, seq: u64) {
        let hit = |i: usize| self.q.get(i).is_some_and(|e| e.0 == seq);
        let at = if hit(0) {
            Some(0)
        } else if hit(self.next_hint) {
            Some(self.next_hint)
        } else {
            self.q.binary_search_by_key(&seq, |e| e.0).ok()
        };
        let Some(i) = at else {
            return;
        };
        self.next_hint = i + 1;
        if self.q[i].2 {
            self.q[i].2 = false;
            self.live -= 1;
        }
        while self.q.front().is_some_and(|e| !e.2) {
            self.q.pop_front();
            self.next_hint = self.next_hint.saturating_sub(1);
        }
    }

    /// The first pending sequence and its time.
    pub fn first(&self) -> Option<(u64, i64)> {
        self.q.front().map(|&(seq, t, _)| (seq, t))
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.q.clear();
        self.live = 0;
        self.next_hint = 0;
    }
}

/// The slab of cursors, by slot and by key.
#[derive(Debug, Default)]
pub struct SourceTable {
    slots: Vec<Option<Cursor>>,
    free: Vec<usize>,
    by_key: HashMap<String, usize>,
}

impl SourceTable {
    /// Number of slots (some may be empty): iterate `0..slots()` with [`SourceTable::get`].
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Sources held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no source is held.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The cursor in slot `i`, if the slot is used.
    pub fn get(&self, i: usize) -> Option<&Cursor> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    /// The cursor in slot `i`, mutably.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Cursor> {
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    /// Every used slot with its cursor.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Cursor)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|c| (i, c)))
    }

    /// Bring the table up to date with the index's list: new sources start at their saved
    /// cursor (or the oldest stored record), known ones learn their new end, and sources
    /// missing from the list are marked gone.
    pub fn refresh(&mut self, infos: Vec<SourceInfo>, node: &str, saved: &BTreeMap<String, u64>) {
        let present: HashSet<String> = infos.iter().map(|i| i.key.clone()).collect();
        for info in infos {
            self.upsert(info, node, saved);
        }
        for c in self.slots.iter_mut().flatten() {
            c.gone = !present.contains(&c.key);
        }
    }

    fn upsert(&mut self, info: SourceInfo, node: &str, saved: &BTreeMap<String, u64>) {
        if let Some(s) = self
            .by_key
            .get(&info.key)
            .and_then(|&i| self.slots[i].as_mut())
        {
            if info.next_seq < s.read_pos {
                // Removed and created again under the same key: a new sequence from 0.
                tracing::info!(source = %info.key, "source was recreated; shipping it from its start");
                s.read_pos = info.first_seq;
                s.acked_time_ns = None;
            }
            if s.identity != info.identity {
                s.frag = Arc::new(SourceFragment::new(node, &info.key, &info.identity));
                s.identity = info.identity;
                s.action_prefix = None;
            }
            s.next_seq = info.next_seq;
            s.max_time_ns = info.max_time_ns;
            s.first = (info.first_seq, info.min_time_ns);
            return;
        }
        // A source the sink has never seen starts at the oldest record still stored.
        let start = saved.get(&info.key).copied().unwrap_or(info.first_seq);
        let cursor = Cursor {
            frag: Arc::new(SourceFragment::new(node, &info.key, &info.identity)),
            key: info.key,
            identity: info.identity,
            next_seq: info.next_seq,
            max_time_ns: info.max_time_ns,
            read_pos: start,
            pending: Pending::default(),
            first: (info.first_seq, info.min_time_ns),
            acked_time_ns: None,
            gone: false,
            action_prefix: None,
        };
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.by_key.insert(cursor.key.clone(), slot);
        self.slots[slot] = Some(cursor);
    }

    /// Drop gone sources none of whose documents is pending (in the batch being built or in
    /// flight); returns the slots freed, so drains stop waiting on them. Their cursors leave
    /// the cursor file at the next save.
    pub fn compact(&mut self) -> Vec<usize> {
        let mut freed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot
                .as_ref()
                .is_some_and(|c| c.gone && c.pending.is_empty())
            {
                if let Some(c) = slot.take() {
                    self.by_key.remove(&c.key);
                }
                self.free.push(i);
                freed.push(i);
            }
        }
        freed
    }

    /// Source key → cursor, for the cursor file.
    pub fn cursor_map(&self) -> BTreeMap<String, u64> {
        self.iter()
            .map(|(_, c)| (c.key.clone(), c.cursor()))
            .collect()
    }

    /// Lag per source: records not yet acknowledged, and in seconds the newest stored
    /// record's time minus the time of the oldest record not yet acknowledged (the first
    /// one in flight, else the oldest stored one when the cursor is at it, else — records
    /// not read yet — the newest acknowledged one).
    pub fn lag(&self) -> BTreeMap<String, SourceLag> {
        let mut out = BTreeMap::new();
        for (_, s) in self.iter() {
            let cursor = s.cursor();
            let records = s.next_seq.saturating_sub(cursor);
            let oldest = s
                .pending
                .first()
                .map(|(_, t)| t)
                .or(if cursor <= s.first.0 { s.first.1 } else { None })
                .or(s.acked_time_ns);
            let seconds = match (records, s.max_time_ns, oldest) {
                (1.., Some(max), Some(t)) => (max.saturating_sub(t)).max(0) as f64 / 1e9,
                _ => 0.0,
            };
            out.insert(s.key.clone(), SourceLag { records, seconds });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: &str, next: u64) -> SourceInfo {
        SourceInfo {
            key: key.into(),
            identity: SourceIdentity::default(),
            min_time_ns: Some(0),
            max_time_ns: Some(1),
            first_seq: 0,
            next_seq: next,
            records: next,
            disk_bytes: 0,
            segments: 1,
            retired: false,
        }
    }

    /// The pending set against a `BTreeMap` model: random inserts (mostly in order, some
    /// re-reads) and removes in any order.
    #[test]
    fn pending_behaves_like_an_ordered_map() {
        let mut model = BTreeMap::new();
        let mut p = Pending::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = 0u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 10 {
                0..=4 => {
                    model.insert(next, next as i64 * 3);
                    p.insert(next, next as i64 * 3);
                    next += 1;
                }
                5 => {
                    let seq = next.saturating_sub(1 + x / 10 % 50);
                    model.insert(seq, 7);
                    p.insert(seq, 7);
                }
                6 => {
                    // A batch's run of one source finishing: consecutive sequences.
                    let from = next.saturating_sub(x / 10 % 60);
                    for seq in from..(from + x / 1000 % 12).min(next) {
                        model.remove(&seq);
                        p.remove(seq);
                    }
                }
                _ => {
                    let seq = next.saturating_sub(x / 10 % 60);
                    model.remove(&seq);
                    p.remove(seq);
                }
            }
            assert_eq!(p.first(), model.first_key_value().map(|(&k, &v)| (k, v)));
            assert_eq!(p.is_empty(), model.is_empty());
        }
    }

    #[test]
    fn a_forgotten_source_is_dropped_while_others_are_busy_and_its_slot_reused() {
        let mut t = SourceTable::default();
        let saved = BTreeMap::new();
        t.refresh(vec![info("a", 10), info("b", 10)], "n", &saved);
        // "a" has documents in flight, "b" is gone with none.
        t.get_mut(0).unwrap().pending.insert(3, 0);
        t.refresh(vec![info("a", 10)], "n", &saved);
        assert_eq!(t.compact(), vec![1], "b dropped although a is busy");
        assert_eq!(t.len(), 1);
        t.refresh(vec![info("a", 10), info("c", 5)], "n", &saved);
        assert_eq!(t.get(1).map(|c| c.key.as_str()), Some("c"), "slot reused");
        // A gone source with documents in flight waits for them.
        t.refresh(vec![info("c", 5)], "n", &saved);
        assert!(t.compact().is_empty());
        t.get_mut(0).unwrap().pending.clear();
        assert_eq!(t.compact(), vec![0]);
        // Many containers come and go on a busy node: the table stays at what is stored.
        for round in 0..1000 {
            t.get_mut(1).unwrap().pending.insert(round, 0);
            t.refresh(
                vec![info("c", 5), info(&format!("x{round}"), 1)],
                "n",
                &saved,
            );
            t.compact();
        }
        assert!(t.slots() <= 3, "{} slots", t.slots());
        assert_eq!(t.cursor_map().len(), 2);
    }
}
