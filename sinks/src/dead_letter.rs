//! The dead-letter file: documents the server rejected for good (mapping errors and other
//! non-retryable 4xx), one NDJSON line each with the reason, so nothing is dropped silently.
//! The file is capped at `max_bytes`; when a line would pass the cap the file is renamed to
//! `<name>.1` (replacing the previous one) and a new file starts, so disk use stays under
//! twice the cap.

use crate::SinkError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends rejected documents to a size-capped, rotated NDJSON file.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    max_bytes: u64,
    file: Option<std::fs::File>,
    size: u64,
    /// The last append failed half-way and could not be taken back.
    torn: bool,
}

impl DeadLetter {
    /// A writer for `path` (created on first write).
    pub fn new(path: PathBuf, max_bytes: u64) -> DeadLetter {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        DeadLetter {
            path,
            max_bytes: max_bytes.max(1024),
            file: None,
            size,
            torn: false,
        }
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the lines appended so far durable (one fsync for a whole response's rejects).
    pub fn sync(&mut self) -> Result<(), SinkError> {
        if let Some(f) = self.file.as_mut() {
            f.sync_data().map_err(|source| SinkError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Append one rejected document, without syncing:
    /// `{"time":…,"index":…,"id":…,"status":…,"reason":…,"document":…}`. `reason_json` and
    /// `document` must be JSON text. A document too big for the cap is replaced by its size
    /// (`"document_bytes"`).
    pub fn append(
        &mut self,
        index: &str,
        id: Option<&str>,
        status: u16,
        reason_json: &str,
        document: &[u8],
    ) -> Result<(), SinkError> {
        let mut line = Vec::with_capacity(document.len() + reason_json.len() + 128);
        line.extend_from_slice(b"{\"time\":\"");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        crate::encode::push_rfc3339_nanos(&mut line, now);
        line.extend_from_slice(b"\",\"index\":");
        crate::encode::push_json_str(&mut line, index);
        if let Some(id) = id {
            line.extend_from_slice(b",\"id\":");
            crate::encode::push_json_str(&mut line, id);
        }
        line.extend_from_slice(format!(",\"status\":{status},\"reason\":").as_bytes());
        line.extend_from_slice(reason_json.as_bytes());
        if (line.len() + document.len() + 16) as u64 <= self.max_bytes {
            line.extend_from_slice(b",\"document\":");
            line.extend_from_slice(document);
        } else {
            line.extend_from_slice(format!(",\"document_bytes\":{}", document.len()).as_bytes());
        }
        line.extend_from_slice(b"}\n");
        if self.torn {
            line.insert(0, b'\n');
        }
        let io = |source| SinkError::Io {
            path: self.path.clone(),
            source,
        };
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            if let Some(f) = self.file.take() {
                f.sync_data().map_err(io)?;
            }
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(&self.path, &rotated).map_err(io)?;
            self.size = 0;
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io)?;
            self.size = f.metadata().map(|m| m.len()).unwrap_or(self.size);
            if self.size == 0 && self.torn {
                // Nothing to glue onto: no separating newline needed.
                line.remove(0);
                self.torn = false;
            }
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(&line) {
                // Cut short (a full disk): take the half line back, so the next document does
                // not glue onto it and become unreadable too. If even that fails, the next
                // line starts on a line of its own.
                if f.set_len(self.size).is_err() {
                    self.torn = true;
                }
                // The next attempt opens the path again: an operator may have freed or
                // replaced it meanwhile.
                self.file = None;
                return Err(io(e));
            }
            self.torn = false;
        }
        self.size += line.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_document_and_reason_and_the_file_rotates_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dl.ndjson");
        let mut dl = DeadLetter::new(p.clone(), 2048);
        for i in 0..40 {
            dl.append(
                "idx",
                Some(&format!("id{i}")),
                400,
                r#"{"type":"mapper_parsing_exception"}"#,
                br#"{"message":"x"}"#,
            )
            .unwrap();
        }
        dl.sync().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["reason"]["type"], "mapper_parsing_exception");
        assert_eq!(first["document"]["message"], "x");
        assert!(std::fs::metadata(&p).unwrap().len() <= 2048);
        let rotated = dir.path().join("dl.ndjson.1");
        assert!(std::fs::metadata(&rotated).unwrap().len() <= 2048);
        let total =
            text.lines().count() + std::fs::read_to_string(&rotated).unwrap().lines().count();
        assert!(total < 40, "older lines were rotated away");
    }
}
