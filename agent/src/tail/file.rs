//! One open log file: its identity (device, inode, fingerprint), its read offset and its line
//! state. Plain files are read with positioned reads; gzipped rotations are decompressed as a
//! stream whose offsets count decompressed bytes.

use super::lines::{Event, LineAssembler};
use super::parse::FormatRule;
use flate2::read::MultiGzDecoder;
use runnel_index::FileId;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// True when the path names a gzipped rotation.
pub fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// A fingerprint of a file's content (its format is not read from it: see
/// [`super::parse::FormatRule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Print {
    /// xxh3 of the first line (capped at `fingerprint_bytes`).
    pub hash: u64,
}

/// Fingerprint of content starting with `head`: xxh3 of its first line including the `\n`, or
/// of the first `n` bytes when the first line is longer. None while neither is present yet. A
/// file's first line never changes once written, so the fingerprint is stable from the moment
/// the first record can be read, however short the file is.
pub fn fingerprint(head: &[u8], n: usize) -> Option<Print> {
    let n = n.max(1);
    let window = &head[..head.len().min(n)];
    let len = match memchr::memchr(b'\n', window) {
        Some(i) => i + 1,
        None if window.len() >= n => n,
        None => return None,
    };
    Some(Print {
        hash: xxhash_rust::xxh3::xxh3_64(&head[..len]),
    })
}

fn read_head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n.min(64 * 1024));
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A file opened to be looked at: its handle, metadata and fingerprint all belong to the same
/// file, whatever renames happen at its path meanwhile (no check-then-open race).
pub struct Looked {
    /// The open handle (positioned at the start).
    pub file: File,
    /// Its metadata (device, inode, size, links).
    pub meta: std::fs::Metadata,
    /// Its fingerprint (of the decompressed content for gzip).
    pub print: Print,
}

/// Open `path` for reading if it is a regular file. Opened non-blocking: a FIFO under that
/// name would otherwise block the open (and the tailer thread, every log of the node) until
/// some writer came; a FIFO, device or directory is refused with an error, which the callers
/// count. The flag changes nothing for reads of a regular file.
pub fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory under a log's name)",
        ));
    }
    Ok((file, meta))
}

/// Open `path` and fingerprint what was opened. `Ok(None)` = not enough content yet.
pub fn look(path: &Path, n: usize) -> io::Result<Option<Looked>> {
    let (file, meta) = open_regular(path)?;
    let head = if is_gz(path) {
        let head = read_head(&mut MultiGzDecoder::new(&file), n)?;
        (&file).seek(SeekFrom::Start(0))?;
        head
    } else {
        let mut head = vec![0u8; n.max(1)];
        let mut got = 0;
        while got < head.len() {
            let k = file.read_at(&mut head[got..], got as u64)?;
            if k == 0 {
                break;
            }
            got += k;
        }
        head.truncate(got);
        head
    };
    Ok(fingerprint(&head, n).map(|print| Looked { file, meta, print }))
}

enum Handle {
    Plain(File),
    Gz(Box<MultiGzDecoder<File>>),
}

/// Outcome of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Read this many bytes.
    Data(usize),
    /// At the end of what is there now.
    Eof,
    /// The file no longer begins with the line it was identified by: it was truncated in place
    /// (copytruncate) and written again since it was last checked, so what this read returned
    /// may be the new content at the old offset. Nothing was fed or consumed; the caller starts
    /// the file over (its old content is in the copy, which resumes at this offset).
    Replaced,
}

/// An open file being tailed.
pub struct TailFile {
    /// The path it was opened under (renames are not followed; the handle is).
    pub path: PathBuf,
    /// Identity recorded in each record's position.
    pub id: FileId,
    /// Next byte to read (decompressed offset for gzip).
    pub offset: u64,
    /// Line state.
    pub lines: LineAssembler,
    /// Whether the content is gzipped.
    pub gz: bool,
    /// Last rate-limited warning.
    pub last_warn: Option<Instant>,
    /// Bad lines not yet reported in a warning.
    pub unreported_bad: u64,
    /// Device and inode of the open handle (may differ from `id` when a copy or gzip of an
    /// already-read file continues that file's identity).
    pub dev_ino: (u64, u64),
    handle: Handle,
    gz_eof: bool,
    /// `inputs.fingerprint_bytes`: how much of the head identifies the file.
    print_bytes: usize,
    /// The head as last re-read by [`TailFile::current_print`].
    head: Vec<u8>,
}

impl TailFile {
    /// Start reading a file that was [`look`]ed at (under `path`) in the format `rule` gives;
    /// records carry `id`; reading starts at `offset` (for gzip the first `offset` decompressed
    /// bytes are skipped).
    pub fn open(
        path: &Path,
        looked: Looked,
        id: FileId,
        offset: u64,
        rule: FormatRule,
        max_line: usize,
        print_bytes: usize,
    ) -> io::Result<TailFile> {
        let Looked {
            file: f, meta: m, ..
        } = looked;
        let dev_ino = (m.dev(), m.ino());
        let gz = is_gz(path);
        let mut lines = LineAssembler::new(rule, max_line);
        let handle = if gz {
            let mut d = MultiGzDecoder::new(f);
            let skipped = io::copy(&mut (&mut d).take(offset), &mut io::sink())?;
            if skipped < offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("gzip content is {skipped} bytes, resume offset {offset}"),
                ));
            }
            Handle::Gz(Box::new(d))
        } else {
            // Resuming inside a line (one emitted truncated before it ended): skip its rest.
            let mut before = [0u8; 1];
            if offset > 0 && f.read_at(&mut before, offset - 1)? == 1 && before[0] != b'\n' {
                lines.start_mid_line();
            }
            Handle::Plain(f)
        };
        Ok(TailFile {
            path: path.to_path_buf(),
            id,
            offset,
            lines,
            gz,
            last_warn: None,
            unreported_bad: 0,
            dev_ino,
            handle,
            gz_eof: false,
            print_bytes,
            head: Vec::new(),
        })
    }

    /// (dev, ino, size, nlink) of the open handle.
    pub fn stat(&self) -> io::Result<(u64, u64, u64, u64)> {
        let m = match &self.handle {
            Handle::Plain(f) => f.metadata()?,
            Handle::Gz(d) => d.get_ref().metadata()?,
        };
        Ok((m.dev(), m.ino(), m.len(), m.nlink()))
    }

    /// Re-read the first bytes of a plain file (up to `inputs.fingerprint_bytes`) and
    /// fingerprint them. Called at every poll of the live file and after every block read, so
    /// the bytes go into a buffer the file keeps.
    pub fn current_print(&mut self) -> io::Result<Option<Print>> {
        let Handle::Plain(f) = &self.handle else {
            return Ok(None);
        };
        let n = self.print_bytes.max(1);
        self.head.resize(n, 0);
        let mut got = 0;
        while got < n {
            let k = f.read_at(&mut self.head[got..], got as u64)?;
            if k == 0 {
                break;
            }
            got += k;
        }
        Ok(fingerprint(&self.head[..got], n))
    }

    /// Whether the file still begins with the line it was identified by.
    fn head_unchanged(&mut self) -> io::Result<bool> {
        let now = self.current_print()?;
        Ok(now.map(|p| p.hash) == Some(self.id.fingerprint))
    }

    /// Read one block into `buf` and feed it to the line assembler.
    pub fn read_block(
        &mut self,
        buf: &mut [u8],
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(Event<'_>),
    ) -> io::Result<ReadOutcome> {
        let n = match &mut self.handle {
            Handle::Plain(f) => {
                let n = f.read_at(buf, self.offset)?;
                // Checked after the read: a truncation before it shows in the head now, and
                // one after it left the bytes read intact.
                if n > 0 && !self.head_unchanged()? {
                    return Ok(ReadOutcome::Replaced);
                }
                n
            }
            Handle::Gz(d) => {
                if self.gz_eof {
                    0
                } else {
                    let n = d.read(buf)?;
                    self.gz_eof = n == 0;
                    n
                }
            }
        };
        if n == 0 {
            return Ok(ReadOutcome::Eof);
        }
        let base = self.offset;
        self.offset += n as u64;
        self.lines.feed(&buf[..n], base, scratch, out);
        Ok(ReadOutcome::Data(n))
    }

    /// Give up on a gzip stream that cannot be decompressed further.
    pub fn mark_gz_done(&mut self) {
        self.gz_eof = true;
    }

    /// A gzip stream is complete once read to its end.
    pub fn gz_done(&self) -> bool {
        self.gz && self.gz_eof
    }
}
