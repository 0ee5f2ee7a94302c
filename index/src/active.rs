//! The active segment: the file a source's new records are appended to, as frames after an
//! 8-byte header. Appends go to an in-memory buffer that is written out when it grows past
//! [`FLUSH_BYTES`] or at sync; readers see the file and the buffer as one byte stream, so a record
//! is readable as soon as it is appended. Recovery scans the file, keeps the longest prefix of
//! good frames with contiguous sequence numbers, and cuts the rest.

use crate::active_index::{self, IndexWriter};
use crate::frame::{self, FrameView};
use crate::Error;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Magic and version at the start of every active segment file.
pub const ACTIVE_MAGIC: &[u8; 8] = b"RNLACT01";
/// Buffered append bytes written to the file before a sync asks for it.
pub const FLUSH_BYTES: usize = 64 << 10;

/// A run of frames in the active segment, indexed like a sealed block so queries can skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Logical byte offset of the first frame (from the file start, header included).
    pub offset: u64,
    /// Bytes of frames.
    pub len: u64,
    /// Sequence of the first frame.
    pub first_seq: u64,
    /// Frames in the chunk.
    pub count: u64,
    /// Smallest record time.
    pub min_time: i64,
    /// Largest record time.
    pub max_time: i64,
}

/// An open active segment.
pub struct ActiveSegment {
    /// The file.
    pub path: PathBuf,
    file: File,
    flushed: u64,
    pending: Vec<u8>,
    /// Chunk index over the frames.
    pub chunks: Vec<Chunk>,
    /// First sequence the segment holds (from its file name).
    pub first_seq: u64,
    /// Sequence the next append gets.
    pub next_seq: u64,
    /// When the first record was appended, or the segment recovered (for the age limit).
    pub opened: Instant,
    chunk_target: u64,
    dirty: bool,
    /// The sparse index beside the segment (writers only; see `active_index`).
    index: Option<IndexWriter>,
    /// Frames before this offset were taken from the index at open, not scanned: their file
    /// positions were not seen (see [`ActiveSegment::scan_positions`]). 0 when every frame was.
    pub unscanned_end: u64,
    /// Set by a failed fsync: the segment takes no more writes (see [`Error::SyncFailed`]).
    sync_failed: Option<String>,
    /// Test hook: the next fsync fails as a failing disk would make it.
    #[cfg(test)]
    fail_next_sync: bool,
}

/// File name of the active segment whose first sequence is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.active")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sequence of the frame at `offset` when a whole, valid frame of at most `max` bytes
/// starts there.
fn first_frame_seq(file: &File, offset: u64, max: u64) -> Option<u64> {
    let mut head = [0u8; frame::FRAME_HEADER];
    file.read_exact_at(&mut head, offset).ok()?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as u64;
    let total = len.checked_add(frame::FRAME_HEADER as u64)?;
    if total > max {
        return None;
    }
    let mut buf = vec![0u8; total as usize];
    file.read_exact_at(&mut buf, offset).ok()?;
    frame::decode(&buf).ok().map(|(f, _)| f.seq)
}

/// fsync a directory so a created, renamed or removed entry is durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl ActiveSegment {
    /// Create a new, empty active segment (header written and fsynced, directory fsynced).
    pub fn create(dir: &Path, first_seq: u64, chunk_target: u64) -> Result<Self, Error> {
        let path = dir.join(file_name(first_seq));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(ACTIVE_MAGIC).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        // An index left by an earlier segment of the same name describes other frames.
        let index = IndexWriter::new(dir, first_seq);
        let _ = std::fs::remove_file(index.path());
        sync_dir(dir)?;
        Ok(ActiveSegment {
            path,
            file,
            flushed: ACTIVE_MAGIC.len() as u64,
            pending: Vec::new(),
            chunks: Vec::new(),
            first_seq,
            next_seq: first_seq,
            opened: Instant::now(),
            chunk_target: chunk_target.max(1),
            dirty: false,
            index: Some(index),
            unscanned_end: 0,
            sync_failed: None,
            #[cfg(test)]
            fail_next_sync: false,
        })
    }

    /// Open an existing active segment and scan it. `on_frame` sees every good frame. When
    /// `writable`, a torn or corrupt tail is cut off the file (and a missing header rewritten);
    /// read-only opens leave the file untouched and just ignore the tail. Returns the segment and
    /// the number of bytes that were not valid frames.
    pub fn recover(
        path: &Path,
        first_seq: u64,
        writable: bool,
        chunk_target: u64,
        mut on_frame: impl FnMut(&FrameView<'_>),
    ) -> Result<(Self, u64), Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(io(path))?;
        // Read what is there; the size comes from the file itself, so memory is bounded by it.
        let mut data = Vec::new();
        {
            use std::io::Read;
            (&file).read_to_end(&mut data).map_err(io(path))?;
        }
        let mut seg = ActiveSegment {
            path: path.to_path_buf(),
            file,
            flushed: ACTIVE_MAGIC.len() as u64,
            pending: Vec::new(),
            chunks: Vec::new(),
            first_seq,
            next_seq: first_seq,
            opened: Instant::now(),
            chunk_target: chunk_target.max(1),
            dirty: false,
            index: None,
            unscanned_end: 0,
            sync_failed: None,
            #[cfg(test)]
            fail_next_sync: false,
        };
        let header_ok = data.len() >= ACTIVE_MAGIC.len() && &data[..8] == ACTIVE_MAGIC;
        let mut good_end = ACTIVE_MAGIC.len();
        if header_ok {
            while good_end < data.len() {
                let Ok((f, n)) = frame::decode(&data[good_end..]) else {
                    break;
                };
                if f.seq != seg.next_seq || f.seq == u64::MAX {
                    break;
                }
                on_frame(&f);
                seg.note_frame(good_end as u64, n as u64, f.seq, f.time_ns);
                good_end += n;
                seg.next_seq += 1;
            }
        }
        seg.flushed = good_end as u64;
        let lost = if header_ok {
            (data.len() - good_end) as u64
        } else {
            data.len() as u64
        };
        if writable && !header_ok {
            seg.file.set_len(0).map_err(io(path))?;
            seg.file.write_all_at(ACTIVE_MAGIC, 0).map_err(io(path))?;
            seg.file.sync_all().map_err(io(path))?;
        } else if writable && good_end < data.len() {
            seg.file.set_len(good_end as u64).map_err(io(path))?;
            seg.file.sync_all().map_err(io(path))?;
        }
        if writable {
            seg.adopt_index();
        }
        Ok((seg, lost))
    }

    /// A writer's open: keep the entries of the index file that agree with the scan, cut the
    /// rest, and index the finished chunks now (a store written without index files gets them).
    fn adopt_index(&mut self) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let mut ix = IndexWriter::new(dir, self.first_seq);
        let on_disk = active_index::read(
            ix.path(),
            self.first_seq,
            ACTIVE_MAGIC.len() as u64,
            self.flushed,
        );
        let finished = self.chunks.len().saturating_sub(1);
        let good = on_disk
            .iter()
            .zip(&self.chunks[..finished])
            .take_while(|(a, b)| a == b)
            .count();
        let exact = good == on_disk.len()
            && std::fs::metadata(ix.path()).is_ok_and(|m| {
                m.len() == (active_index::HEADER_LEN + good * active_index::ENTRY_LEN) as u64
            });
        if !exact {
            // Stale, torn or from other frames: rewritten from what the scan found.
            let _ = std::fs::remove_file(ix.path());
            ix.adopt(0);
        } else {
            ix.adopt(good);
        }
        ix.write(&self.chunks, finished);
        self.index = Some(ix);
    }

    /// A reader's open: take the chunks the index file vouches for (checked against the file,
    /// see `active_index`) and scan only the frames after them; without a usable index, scan
    /// everything as [`ActiveSegment::recover`] does. `on_frame` sees the scanned frames only:
    /// [`ActiveSegment::unscanned_end`] says where the unseen ones end.
    pub fn open_indexed(
        path: &Path,
        first_seq: u64,
        chunk_target: u64,
        mut on_frame: impl FnMut(&FrameView<'_>),
    ) -> Result<Self, Error> {
        let file = File::open(path).map_err(io(path))?;
        let len = file.metadata().map_err(io(path))?.len();
        let start = ACTIVE_MAGIC.len() as u64;
        let dir = path.parent().unwrap_or(Path::new("."));
        let chunks = active_index::read(
            &dir.join(active_index::file_name(first_seq)),
            first_seq,
            start,
            len,
        );
        let vouched = chunks.last().is_some_and(|last| {
            let mut magic = [0u8; 8];
            file.read_exact_at(&mut magic, 0).is_ok()
                && &magic == ACTIVE_MAGIC
                && first_frame_seq(&file, last.offset, last.len) == Some(last.first_seq)
        });
        if !vouched {
            return ActiveSegment::recover(path, first_seq, false, chunk_target, on_frame)
                .map(|(seg, _)| seg);
        }
        let end = chunks.last().map_or(start, |c| c.offset + c.len);
        let next = chunks.last().map_or(first_seq, |c| c.first_seq + c.count);
        let mut seg = ActiveSegment {
            path: path.to_path_buf(),
            file,
            flushed: end,
            pending: Vec::new(),
            chunks,
            first_seq,
            next_seq: next,
            opened: Instant::now(),
            chunk_target: chunk_target.max(1),
            dirty: false,
            index: None,
            unscanned_end: end,
            sync_failed: None,
            #[cfg(test)]
            fail_next_sync: false,
        };
        seg.catch_up(&mut on_frame)?;
        Ok(seg)
    }

    /// Feed `on_frame` the frames an indexed open did not scan (up to
    /// [`ActiveSegment::unscanned_end`]), so their file positions can be known; afterwards
    /// every frame has been seen.
    pub fn scan_positions(
        &mut self,
        mut on_frame: impl FnMut(&FrameView<'_>),
    ) -> Result<(), Error> {
        let start = ACTIVE_MAGIC.len() as u64;
        if self.unscanned_end <= start {
            self.unscanned_end = 0;
            return Ok(());
        }
        let data = self.read(start, self.unscanned_end - start)?;
        let mut at = 0;
        while at < data.len() {
            let Ok((f, n)) = frame::decode(&data[at..]) else {
                return Err(Error::Corrupt {
                    path: self.path.clone(),
                    offset: start + at as u64,
                    what: "bad frame inside an indexed chunk".into(),
                });
            };
            on_frame(&f);
            at += n;
        }
        self.unscanned_end = 0;
        Ok(())
    }

    /// For a read-only store following a writer: scan the frames the writer appended to the file
    /// since the last scan (only the new bytes are read). A torn or partly written tail is left
    /// for the next call. Returns how many frames were added.
    pub fn catch_up(&mut self, mut on_frame: impl FnMut(&FrameView<'_>)) -> Result<u64, Error> {
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if len <= self.flushed || !self.pending.is_empty() {
            return Ok(0);
        }
        let mut data = vec![0u8; (len - self.flushed) as usize];
        self.file
            .read_exact_at(&mut data, self.flushed)
            .map_err(io(&self.path))?;
        let (base, mut at, mut added) = (self.flushed, 0usize, 0u64);
        while at < data.len() {
            let Ok((f, n)) = frame::decode(&data[at..]) else {
                break;
            };
            if f.seq != self.next_seq || f.seq == u64::MAX {
                break;
            }
            on_frame(&f);
            self.note_frame(base + at as u64, n as u64, f.seq, f.time_ns);
            self.next_seq += 1;
            at += n;
            added += 1;
        }
        self.flushed += at as u64;
        Ok(added)
    }

    fn note_frame(&mut self, offset: u64, len: u64, seq: u64, time: i64) {
        match self.chunks.last_mut() {
            Some(c) if c.len < self.chunk_target => {
                c.len += len;
                c.count += 1;
                c.min_time = c.min_time.min(time);
                c.max_time = c.max_time.max(time);
            }
            _ => self.chunks.push(Chunk {
                offset,
                len,
                first_seq: seq,
                count: 1,
                min_time: time,
                max_time: time,
            }),
        }
    }

    /// Logical length: file bytes plus buffered bytes.
    pub fn len(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    /// Records held.
    pub fn records(&self) -> u64 {
        self.next_seq - self.first_seq
    }

    /// Append one record with the next sequence; returns the sequence. An error means the record
    /// was not appended: the size is checked and a full buffer written out before the frame is
    /// encoded, so a caller that retries never stores the record twice, and the buffer never
    /// holds more than [`FLUSH_BYTES`] plus one frame.
    pub fn append(&mut self, rec: &crate::NewRecord<'_>) -> Result<u64, Error> {
        self.check_sync_failed()?;
        if rec.message.len() > frame::MAX_MESSAGE {
            return Err(Error::TooLarge {
                len: rec.message.len(),
                max: frame::MAX_MESSAGE,
            });
        }
        if self.pending.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        let seq = self.next_seq;
        if seq == self.first_seq {
            // The age limit counts from the first record, not from the (empty) file's creation.
            self.opened = Instant::now();
        }
        let at = self.len();
        let n = frame::encode(&mut self.pending, seq, rec) as u64;
        self.note_frame(at, n, seq, rec.time_ns);
        self.next_seq += 1;
        self.dirty = true;
        Ok(seq)
    }

    /// Write buffered bytes to the file (no fsync).
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.pending, self.flushed)
            .map_err(io(&self.path))?;
        self.flushed += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Flush and fdatasync if anything was appended since the last sync.
    ///
    /// A failed fdatasync is final for this segment: the kernel may already have dropped the
    /// dirty pages it could not write and reports the error once, so a retry could "succeed"
    /// over lost records. Every later append, sync and seal returns [`Error::SyncFailed`]; the
    /// records synced before stay durable, and reopening the store recovers from the file.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.check_sync_failed()?;
        self.flush()?;
        if self.dirty {
            if let Err(e) = self.sync_data() {
                self.sync_failed = Some(e.to_string());
                return self.check_sync_failed();
            }
            self.dirty = false;
        }
        // Every frame is durable now: the finished chunks may be indexed (the last one grows).
        if let Some(ix) = self.index.as_mut() {
            ix.write(&self.chunks, self.chunks.len().saturating_sub(1));
        }
        Ok(())
    }

    /// The path of the segment's index file (see `active_index`).
    pub fn index_path(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(active_index::file_name(self.first_seq))
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_sync) {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        self.file.sync_data()
    }

    fn check_sync_failed(&self) -> Result<(), Error> {
        match &self.sync_failed {
            None => Ok(()),
            Some(what) => Err(Error::SyncFailed {
                path: self.path.clone(),
                what: what.clone(),
            }),
        }
    }

    /// Read `len` logical bytes at `offset` (from the file and the buffer).
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.read_into(offset, len, &mut out)?;
        Ok(out)
    }

    /// [`read`](Self::read) into `out` (replacing its content), reusing its allocation.
    pub fn read_into(&self, offset: u64, len: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        let end = offset.saturating_add(len).min(self.len());
        let offset = offset.min(end);
        out.clear();
        out.resize((end - offset) as usize, 0);
        let file_part = end.min(self.flushed).saturating_sub(offset) as usize;
        if file_part > 0 {
            self.file
                .read_exact_at(&mut out[..file_part], offset)
                .map_err(io(&self.path))?;
        }
        if end > self.flushed {
            let from = offset.max(self.flushed) - self.flushed;
            let to = end - self.flushed;
            out[file_part..].copy_from_slice(&self.pending[from as usize..to as usize]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewRecord, Position, RecordFlags, Stream, TimeStyle};

    fn rec(message: &[u8]) -> NewRecord<'_> {
        NewRecord {
            time_ns: 1,
            time_style: TimeStyle::default(),
            stream: Stream::Stdout,
            flags: RecordFlags::default(),
            message,
            position: Position::None,
        }
    }

    #[test]
    fn a_failed_fsync_is_final_and_the_synced_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = ActiveSegment::create(dir.path(), 0, 1 << 20).unwrap();
        seg.append(&rec(b"durable")).unwrap();
        seg.sync().unwrap();
        seg.append(&rec(b"maybe lost")).unwrap();
        seg.fail_next_sync = true;
        let err = seg.sync().unwrap_err();
        assert!(err.is_fatal(), "{err}");
        assert!(err.to_string().contains("fsync failed"), "{err}");
        // The kernel reports a writeback error once; a second fsync would pass. It must not.
        assert!(seg.sync().unwrap_err().is_fatal());
        assert!(seg.append(&rec(b"later")).unwrap_err().is_fatal());
        assert_eq!(seg.records(), 2, "nothing appended after the failure");
        // Reopening recovers from the file: the synced record is there.
        let path = seg.path.clone();
        drop(seg);
        let mut messages = Vec::new();
        let (seg, _) = ActiveSegment::recover(&path, 0, true, 1 << 20, |f| {
            messages.push(f.message.to_vec())
        })
        .unwrap();
        assert_eq!(messages[0], b"durable");
        assert_eq!(seg.records(), messages.len() as u64);
    }
}
