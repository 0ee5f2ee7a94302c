//! Per-source state: one directory per source (container instance) holding `source.json` (key and
//! identity), its sealed segments and at most one active segment. The segment list is the
//! manifest: it is rebuilt at open from the file names (sequence ranges) and the footers (time
//! ranges), so there is no second copy that could disagree with the data.

use crate::active::{sync_dir, ActiveSegment, ACTIVE_MAGIC};
use crate::maps::MapCache;
use crate::sealed::{self, PendingSegment, SealedSegment};
use crate::{Error, FileId, Position, SourceIdentity};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes before the first frame of an active segment.
const ACTIVE_HEADER: u64 = ACTIVE_MAGIC.len() as u64;

/// `source.json`, tagged by version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum SourceFile {
    /// Version 1.
    #[serde(rename = "1")]
    V1 {
        /// Source key.
        key: String,
        /// Identity.
        identity: SourceIdentity,
    },
}

/// One source's in-memory state.
pub struct Source {
    /// Stable key.
    pub key: String,
    /// Identity.
    pub identity: SourceIdentity,
    /// Directory.
    pub dir: PathBuf,
    /// Sealed segments by sequence; the first may be a position stub (no records).
    pub sealed: Vec<Arc<SealedSegment>>,
    /// The active segment.
    pub active: Option<ActiveSegment>,
    /// Sequence the next append gets.
    pub next_seq: u64,
    /// Every sequence below this is durable.
    pub durable_next: u64,
    /// Listeners were told about sequences below this.
    pub notified_next: u64,
    /// Store generation of the last sync that made records of this source durable.
    pub changed_gen: u64,
    /// Positions appended but not yet durable.
    pub pending_positions: HashMap<FileId, u64>,
    /// Durable positions of records in the active segment.
    pub active_positions: HashMap<FileId, u64>,
    /// Last durable position per file identity over everything stored (sealed tables in
    /// sequence order, then the active segment); rebuilt when retention deletes a segment, so
    /// it always agrees with what a reopen would recover from the data.
    pub positions: HashMap<FileId, u64>,
    /// Problems found at load (corrupt sealed segments).
    pub problems: Vec<Error>,
    /// The segment files seen at load, so a read-only follower can tell whether only the
    /// active segment grew.
    pub listing: Listing,
    /// The source carries the retirement mark (see the `retire` module).
    pub retired: bool,
    /// The source was removed: its directory is gone and the store no longer lists it; whoever
    /// still holds it treats it as unknown.
    pub removed: bool,
    /// Where the sealed segments' blocks are mapped from (the store's cache).
    pub maps: Arc<MapCache>,
}

/// Names and sizes of a source's sealed segments and the first sequence of its active segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    sealed: Vec<(String, u64)>,
    active: Option<u64>,
    retired: bool,
}

impl Listing {
    /// Read the listing of a source directory.
    pub fn read(dir: &Path) -> Result<Listing, Error> {
        let mut l = Listing::default();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if sealed::parse_name(&name).is_some() {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                l.sealed.push((name, len));
            } else if let Some(a) = active_seq(&name) {
                l.active = l.active.max(Some(a));
            } else if name == crate::retire::MARK {
                l.retired = true;
            }
        }
        l.sealed.sort();
        Ok(l)
    }
}

fn active_seq(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".active")?
        .parse::<u64>()
        .ok()
}

/// When an age-due seal rewrites the previous sealed segment together with the active records,
/// so that a quiet source sealed every `segment_max_age` does not pile up thousands of tiny
/// segments (each one a file and a memory map) over `max_age`: the previous segment must hold
/// less than `max_prev_raw` raw bytes (which bounds the rewrite cost), the result at most
/// `max_raw`, and its records span at most `max_span_ns` (which bounds how long retention by age
/// keeps data past `max_age`).
#[derive(Debug, Clone, Copy)]
pub struct Merge {
    /// Largest raw size of the previous segment that is still rewritten.
    pub max_prev_raw: u64,
    /// Largest raw size of the merged segment.
    pub max_raw: u64,
    /// Largest time span (max - min record time) of the merged segment.
    pub max_span_ns: i64,
}

/// Longest key whose directory is the plain hex of its bytes (file names stop at 255 bytes;
/// stores written before long keys were possible keep their names).
const HEX_KEY_MAX: usize = 127;

/// Directory name for a key: hex of its bytes (any key is a safe file name). A longer key (a
/// long pod name) would pass the 255-byte file name limit, so its directory is `h-`, the hex
/// of its first bytes and a 128-bit hash of the whole key; `source.json` holds the key.
pub fn dir_name(key: &str) -> String {
    let hex = |b: &[u8]| {
        let mut s = String::with_capacity(b.len() * 2);
        for x in b {
            s.push_str(&format!("{x:02x}"));
        }
        s
    };
    if key.len() <= HEX_KEY_MAX {
        return hex(key.as_bytes());
    }
    let h = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    format!("h-{}-{h:032x}", hex(&key.as_bytes()[..48]))
}

/// The key and identity in a source directory's `source.json`, without loading anything else.
pub fn read_source_file(dir: &Path) -> Option<(String, SourceIdentity)> {
    let bytes = std::fs::read(dir.join("source.json")).ok()?;
    match serde_json::from_slice::<SourceFile>(&bytes).ok()? {
        SourceFile::V1 { key, identity } => Some((key, identity)),
    }
}

/// The key a source directory holds: from its name (the hex of the key), or from its
/// `source.json` for a long key's hashed name.
pub fn key_of_dir(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    key_from_dir(name).or_else(|| read_source_file(dir).map(|(k, _)| k))
}

fn key_from_dir(name: &str) -> Option<String> {
    // A read-only open decodes every directory name of the store: no allocation per digit.
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let hex = name.as_bytes();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        bytes.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    String::from_utf8(bytes).ok()
}

/// Whether `e` says a file or directory does not exist.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `source.json` atomically.
pub fn write_source_file(dir: &Path, key: &str, identity: &SourceIdentity) -> Result<(), Error> {
    let path = dir.join("source.json");
    let tmp = dir.join("source.json.tmp");
    let body = SourceFile::V1 {
        key: key.to_string(),
        identity: identity.clone(),
    };
    let text = serde_json::to_vec_pretty(&body).map_err(|e| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        what: e.to_string(),
    })?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

impl Source {
    /// A new, empty source (directory created by the caller).
    pub fn empty(key: &str, identity: SourceIdentity, dir: PathBuf) -> Source {
        Source {
            key: key.to_string(),
            identity,
            dir,
            sealed: Vec::new(),
            active: None,
            next_seq: 0,
            durable_next: 0,
            notified_next: 0,
            changed_gen: 0,
            pending_positions: HashMap::new(),
            active_positions: HashMap::new(),
            positions: HashMap::new(),
            problems: Vec::new(),
            listing: Listing::default(),
            retired: false,
            removed: false,
            maps: MapCache::new(1),
        }
    }

    /// The same source reading its sealed segments through the store's map cache.
    pub fn in_maps(mut self, maps: &Arc<MapCache>) -> Source {
        self.maps = maps.clone();
        self
    }

    /// Drop everything held (maps, descriptors, positions) once the source is removed.
    pub fn forget(&mut self) {
        self.sealed.clear();
        self.active = None;
        self.pending_positions.clear();
        self.active_positions.clear();
        self.positions.clear();
        self.problems.clear();
    }

    /// Load a source directory. Writable loads remove temp files, drop active segments that a
    /// finished seal left behind, and cut torn active tails. The durable positions are rebuilt
    /// from the sealed position tables and the active frames. Returns the source and the bytes
    /// cut from torn tails, or `None` when the directory is not a source or vanished while it
    /// was read (a writer beside a read-only store removed it).
    /// A read-only load takes the active segment's chunks from its index file (see
    /// `active_index`) and scans only the frames after them.
    pub fn load(
        dir: &Path,
        writable: bool,
        chunk_target: u64,
        maps: &Arc<MapCache>,
    ) -> Result<Option<(Source, u64)>, Error> {
        match Source::load_dir(dir, writable, chunk_target, maps) {
            Err(e) if is_not_found(&e) && !dir.is_dir() => Ok(None),
            other => other,
        }
    }

    fn load_dir(
        dir: &Path,
        writable: bool,
        chunk_target: u64,
        maps: &Arc<MapCache>,
    ) -> Result<Option<(Source, u64)>, Error> {
        let dname = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let json_path = dir.join("source.json");
        let (key, identity) = match std::fs::read(&json_path) {
            Ok(bytes) => match serde_json::from_slice::<SourceFile>(&bytes) {
                Ok(SourceFile::V1 { key, identity }) => (key, identity),
                Err(_) => match key_from_dir(dname) {
                    Some(k) => (k, SourceIdentity::default()),
                    None => return Ok(None),
                },
            },
            Err(_) => match key_from_dir(dname) {
                Some(k) => (k, SourceIdentity::default()),
                None => return Ok(None),
            },
        };
        let mut src = Source::empty(&key, identity, dir.to_path_buf()).in_maps(maps);
        src.retired = crate::retire::is_marked(dir)?;
        let mut sealed_names = Vec::new();
        let mut actives = Vec::new();
        let mut indexes = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(io(dir))?;
        for e in entries {
            let e = e.map_err(io(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                if writable {
                    let _ = std::fs::remove_file(e.path());
                }
            } else if let Some((a, b)) = sealed::parse_name(&name) {
                sealed_names.push((a, b, e.path()));
            } else if let Some(a) = active_seq(&name) {
                actives.push((a, e.path()));
            } else if let Some(a) = crate::active_index::parse_name(&name) {
                indexes.push((a, e.path()));
            }
        }
        if !writable {
            src.listing = Listing::read(dir)?;
        }
        sealed_names.sort();
        actives.sort();
        let mut end = 0u64;
        for (a, b, path) in sealed_names {
            end = end.max(b);
            let opened = if writable {
                SealedSegment::open_in(&path, maps)
            } else {
                SealedSegment::open_lazily_in(&path, maps)
            };
            match opened {
                Ok(seg) if seg.first_seq == a && seg.end_seq == b => {
                    src.sealed.push(Arc::new(seg));
                }
                Ok(_) => src.problems.push(Error::Corrupt {
                    path,
                    offset: 0,
                    what: "footer sequence range disagrees with the file name".into(),
                }),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => src.problems.push(e),
            }
        }
        // A seal that merged a small segment into a larger one writes the larger one before it
        // removes the smaller: after a crash in between, the segment inside another goes.
        let mut order: Vec<usize> = (0..src.sealed.len())
            .filter(|&i| !src.sealed[i].is_stub())
            .collect();
        order.sort_by_key(|&i| {
            (
                src.sealed[i].first_seq,
                std::cmp::Reverse(src.sealed[i].end_seq),
            )
        });
        let mut inside = vec![false; src.sealed.len()];
        let mut max_end = None;
        for i in order {
            let end = src.sealed[i].end_seq;
            if max_end.is_some_and(|m| end <= m) {
                inside[i] = true;
            } else {
                max_end = Some(end);
            }
        }
        let mut i = 0;
        src.sealed.retain(|s| {
            let keep = !inside[i];
            if !keep && writable {
                let _ = std::fs::remove_file(&s.path);
            }
            i += 1;
            keep
        });
        // Retention replaces a source's position stub by a newer one before it deletes the old
        // one: after a crash in between, the newest stub holds everything the older ones did.
        if let Some(newest_stub) = src.sealed.iter().rposition(|s| s.is_stub()) {
            let mut i = 0;
            src.sealed.retain(|s| {
                let keep = !s.is_stub() || i == newest_stub;
                if !keep && writable {
                    let _ = std::fs::remove_file(&s.path);
                }
                i += 1;
                keep
            });
        }
        let mut cut = 0;
        let newest = actives.last().map(|(a, _)| *a);
        for (a, path) in actives {
            let superseded =
                src.sealed.iter().any(|s| s.first_seq == a && !s.is_stub()) || Some(a) != newest;
            if superseded || a < end {
                if writable {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let mut found = HashMap::new();
            let see = |f: &crate::frame::FrameView<'_>| {
                if let Position::File { file, offset } = f.position {
                    found.insert(file, offset);
                }
            };
            let res = if writable {
                ActiveSegment::recover(&path, a, true, chunk_target, see)
            } else {
                ActiveSegment::open_indexed(&path, a, chunk_target, see).map(|s| (s, 0))
            };
            src.active_positions = found;
            match res {
                Ok((seg, lost)) => {
                    cut += lost;
                    // An empty active segment stays on disk (its name carries the next
                    // sequence) but holds no descriptor until the next append.
                    src.next_seq = src.next_seq.max(seg.next_seq);
                    src.active = (seg.records() > 0).then_some(seg);
                }
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if writable {
            // An index whose active segment is gone (sealed, superseded) describes nothing.
            let live = src.active.as_ref().map(|a| a.first_seq);
            for (a, path) in indexes {
                if Some(a) != live {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        src.next_seq = src.next_seq.max(end);
        src.durable_next = src.next_seq;
        src.notified_next = src.next_seq;
        if writable {
            src.rebuild_positions()?;
        } else {
            // The sealed tables are read when a query needs them; `complete_positions` reads
            // them all for the rare read-only caller that asks for file positions.
            src.positions = src.active_positions.clone();
        }
        Ok(Some((src, cut)))
    }

    /// Read-only follower: when only the active segment changed since the load, read the frames
    /// appended to it and return true; false means the source must be loaded again.
    pub fn catch_up(&mut self) -> Result<bool, Error> {
        match Listing::read(&self.dir) {
            Ok(l) if l == self.listing => {}
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        let Some(act) = self.active.as_mut() else {
            // Empty at load: cheap to load again once it has records.
            let grew = self.listing.active.is_some_and(|a| {
                std::fs::metadata(self.dir.join(crate::active::file_name(a)))
                    .is_ok_and(|m| m.len() > crate::active::ACTIVE_MAGIC.len() as u64)
            });
            return Ok(!grew);
        };
        let mut found = Vec::new();
        act.catch_up(|f| {
            if let Position::File { file, offset } = f.position {
                found.push((file, offset));
            }
        })?;
        self.next_seq = act.next_seq;
        self.durable_next = self.next_seq;
        for (file, offset) in found {
            self.active_positions.insert(file, offset);
            self.positions.insert(file, offset);
        }
        Ok(true)
    }

    /// Read what a read-only load left unread (the active frames before its index's last
    /// checkpoint, the sealed position tables), so `positions` holds every file position as a
    /// writer's load finds them.
    pub fn complete_positions(&mut self) -> Result<(), Error> {
        if let Some(act) = self.active.as_mut().filter(|a| a.unscanned_end > 0) {
            let mut early = HashMap::new();
            act.scan_positions(|f| {
                if let Position::File { file, offset } = f.position {
                    early.insert(file, offset);
                }
            })?;
            // Frames scanned at load are newer: they win.
            early.extend(self.active_positions.drain());
            self.active_positions = early;
        }
        self.rebuild_positions()
    }

    /// Recompute `positions` from the sealed tables (in order) and the active segment.
    pub fn rebuild_positions(&mut self) -> Result<(), Error> {
        let mut m = HashMap::new();
        for seg in &self.sealed {
            m.extend(seg.positions()?.iter().copied());
        }
        m.extend(self.active_positions.iter().map(|(k, v)| (*k, *v)));
        self.positions = m;
        Ok(())
    }

    /// Mark everything appended so far durable (after an fsync or a seal).
    pub fn mark_durable(&mut self) {
        self.durable_next = self.next_seq;
        for (k, v) in self.pending_positions.drain() {
            self.active_positions.insert(k, v);
            self.positions.insert(k, v);
        }
    }

    /// First sequence still stored (= next_seq when nothing is).
    pub fn first_seq(&self) -> u64 {
        if let Some(s) = self.sealed.iter().find(|s| !s.is_stub()) {
            return s.first_seq;
        }
        match &self.active {
            Some(a) if a.records() > 0 => a.first_seq,
            _ => self.next_seq,
        }
    }

    /// Make sure there is an active segment to append to (creating `seg-<next_seq>.active`, or
    /// re-creating it when a seal left it empty on disk).
    pub fn ensure_active(&mut self, chunk_target: u64) -> Result<&mut ActiveSegment, Error> {
        if self.active.is_none() {
            // A seal leaves the next segment's (empty, durable) file in place: reopen it rather
            // than writing and fsyncing it again.
            let path = self.dir.join(crate::active::file_name(self.next_seq));
            let reopened = path
                .exists()
                .then(|| ActiveSegment::recover(&path, self.next_seq, true, chunk_target, |_| {}))
                .and_then(Result::ok)
                .filter(|(a, cut)| a.records() == 0 && *cut == 0)
                .map(|(a, _)| a);
            self.active = Some(match reopened {
                Some(a) => a,
                None => ActiveSegment::create(&self.dir, self.next_seq, chunk_target)?,
            });
        }
        match self.active.as_mut() {
            Some(a) => Ok(a),
            None => Err(Error::ReadOnly),
        }
    }

    /// Seal the active segment (if it holds records) and start a new empty one, so the
    /// next sequence number survives a restart even if retention later deletes every sealed
    /// segment. With `merge`, a small previous sealed segment is rewritten together with the
    /// active records into one segment (see [`Merge`]).
    pub fn seal(
        &mut self,
        block_target: usize,
        level: i32,
        chunk_target: u64,
        merge: Option<Merge>,
    ) -> Result<(), Error> {
        let Some(act) = self.active.as_mut() else {
            return Ok(());
        };
        if act.records() == 0 {
            return Ok(());
        }
        act.sync()?;
        let raw = act.len() - ACTIVE_HEADER;
        let (first, end) = (act.first_seq, act.next_seq);
        let span = act.chunks.iter().fold((i64::MAX, i64::MIN), |(lo, hi), c| {
            (lo.min(c.min_time), hi.max(c.max_time))
        });
        // Written block by block: memory stays at about one block, whatever the segment size.
        let prev = merge.and_then(|m| self.merge_with(m, raw, first, span));
        let written = match &prev {
            Some(p) => match self.write_sealed(Some(p), block_target, level) {
                // A damaged block of the previous segment stays where it is (reported by
                // reads): never rewrite around it; seal the active records alone instead.
                Err(Error::Corrupt { .. }) => None,
                other => Some(other),
            },
            None => None,
        };
        let (path, prev) = match written {
            Some(r) => (r?, prev),
            None => (self.write_sealed(None, block_target, level)?, None),
        };
        // If anything fails before the new active segment exists, remove the sealed copy again
        // so the old active segment (which keeps receiving appends) stays the only copy.
        // The new active segment is created now, so its name carries the next sequence even if
        // retention later deletes every sealed segment, but it is not kept open: a source that
        // stays quiet holds no descriptor.
        let next = SealedSegment::open_in(&path, &self.maps)
            .and_then(|seg| Ok((seg, ActiveSegment::create(&self.dir, end, chunk_target)?)));
        let (seg, _new_active) = match next {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let old = self.active.as_ref().map(|a| a.path.clone());
        let old_index = self.active.as_ref().map(|a| a.index_path());
        if let Some(p) = &prev {
            self.sealed.retain(|s| !Arc::ptr_eq(s, p));
        }
        self.sealed.push(Arc::new(seg));
        self.active = None;
        self.mark_durable();
        self.active_positions.clear();
        // A crash before these removals leaves copies that the next open discards: an active
        // segment whose records a sealed segment holds, a sealed segment inside a larger one.
        if let Some(old) = old {
            std::fs::remove_file(&old).map_err(io(&old))?;
        }
        if let Some(ix) = old_index {
            // A leftover index (a crash here) is removed by the next open.
            let _ = std::fs::remove_file(&ix);
        }
        if let Some(p) = prev {
            std::fs::remove_file(&p.path).map_err(io(&p.path))?;
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// The previous sealed segment, when `merge` allows rewriting it together with `raw` bytes
    /// of active frames (sequences from `first`, times within `span`).
    fn merge_with(
        &self,
        m: Merge,
        raw: u64,
        first: u64,
        span: (i64, i64),
    ) -> Option<Arc<SealedSegment>> {
        let prev = self.sealed.last().filter(|p| !p.is_stub())?;
        let prev_raw = prev.frame_bytes_bound().ok()?;
        let lo = span.0.min(prev.min_time);
        let hi = span.1.max(prev.max_time);
        let fits = prev.end_seq == first
            && prev_raw < m.max_prev_raw
            && prev_raw + raw <= m.max_raw
            && (hi as i128 - lo as i128) <= m.max_span_ns as i128;
        fits.then(|| prev.clone())
    }

    /// Write the active segment's frames (after `prev`'s records, when merging) as a sealed
    /// segment; returns its path. A corrupt block of `prev` is an `Error::Corrupt` and nothing
    /// is left behind.
    fn write_sealed(
        &self,
        prev: Option<&Arc<SealedSegment>>,
        block_target: usize,
        level: i32,
    ) -> Result<PathBuf, Error> {
        let Some(act) = self.active.as_ref() else {
            return Err(Error::UnknownSource(self.key.clone()));
        };
        let first = prev.map_or(act.first_seq, |p| p.first_seq);
        let mut out = PendingSegment::create(&self.dir, first, act.next_seq, block_target, level)?;
        if let Some(p) = prev {
            for (i, m) in p.blocks()?.iter().enumerate() {
                out.push_block(&p.block(i)?, m.first_seq)?;
            }
        }
        let mut at = ACTIVE_HEADER;
        let mut buf = Vec::new();
        for c in &act.chunks {
            if c.offset != at {
                return Err(Error::Corrupt {
                    path: act.path.clone(),
                    offset: at,
                    what: format!("chunk index jumps to offset {}", c.offset),
                });
            }
            act.read_into(c.offset, c.len, &mut buf)?;
            out.push_frames(&buf)?;
            at += c.len;
        }
        if at != act.len() {
            return Err(Error::Corrupt {
                path: act.path.clone(),
                offset: at,
                what: format!("chunk index ends before the segment ({} bytes)", act.len()),
            });
        }
        out.commit()
    }

    /// Sealed segments that hold records (position stubs not counted).
    pub fn data_segments(&self) -> u64 {
        self.sealed.iter().filter(|s| !s.is_stub()).count() as u64
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.file_len()).sum::<u64>()
            + self.active.as_ref().map(|a| a.len()).unwrap_or(0)
    }

    /// Records stored now.
    pub fn records(&self) -> u64 {
        self.sealed.iter().map(|s| s.records()).sum::<u64>()
            + self.active.as_ref().map(|a| a.records()).unwrap_or(0)
    }

    /// Min and max record time over all segments.
    pub fn time_range(&self) -> (Option<i64>, Option<i64>) {
        let mut lo: Option<i64> = None;
        let mut hi: Option<i64> = None;
        let mut see = |a: i64, b: i64| {
            lo = Some(lo.map_or(a, |v| v.min(a)));
            hi = Some(hi.map_or(b, |v| v.max(b)));
        };
        for s in &self.sealed {
            if s.records() > 0 {
                see(s.min_time, s.max_time);
            }
        }
        if let Some(a) = &self.active {
            for c in &a.chunks {
                see(c.min_time, c.max_time);
            }
        }
        (lo, hi)
    }
}

/// Directory holding all source directories.
pub fn sources_dir(root: &Path) -> PathBuf {
    root.join("sources")
}

/// Remove `path` (a whole segment) and fsync its directory.
pub fn remove_segment(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    }
    if let Some(d) = path.parent() {
        sync_dir(d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A short key's directory name is its hex, and decoding it gives the key back.
        #[test]
        fn a_short_keys_directory_name_decodes_to_the_key(key in "\\PC{0,24}") {
            prop_assume!(key.len() <= HEX_KEY_MAX);
            let name = dir_name(&key);
            prop_assert_eq!(key_from_dir(&name), Some(key));
        }
    }

    #[test]
    fn names_that_are_not_a_keys_hex_are_not_decoded() {
        assert_eq!(key_from_dir("637269"), Some("cri".to_string()));
        assert_eq!(key_from_dir("6372696"), None, "odd length");
        assert_eq!(key_from_dir("+f72"), None, "a sign is not a digit");
        assert_eq!(key_from_dir("zz"), None);
        assert_eq!(key_from_dir("ff"), None, "not UTF-8");
        assert_eq!(
            key_from_dir("h-6372-00"),
            None,
            "a hashed name reads source.json"
        );
    }
}
