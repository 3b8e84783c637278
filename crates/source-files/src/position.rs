//! File identity and positions: what a cursor of this crate holds.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use healthanalyzer_source::{Cursor, Error, Result};

/// How many leading bytes identify a file (a file that grows at its end keeps its identity).
const IDENTITY_BYTES: usize = 64 * 1024;

/// FNV-1a, 64 bits: stable across platforms and versions, and enough to tell files apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A hash of the file's first `n` bytes (at most 64 KiB of them): the part a cursor has read
/// must be unchanged for the cursor to apply.
pub(crate) fn prefix_hash(path: &Path, n: u64) -> Result<u64> {
    let n = n.min(IDENTITY_BYTES as u64);
    let mut head = Vec::with_capacity(n as usize);
    open(path)?
        .take(n)
        .read_to_end(&mut head)
        .map_err(|e| io(path, e))?;
    if (head.len() as u64) < n {
        return Err(Error::BadCursor {
            reason: "the file is shorter than when the cursor was written; reset the checkpoint to import it from the start".into(),
        });
    }
    Ok(fnv1a(&head))
}

/// The file's length.
pub(crate) fn len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| io(path, e))
}

pub(crate) fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| io(path, e))
}

pub(crate) fn io(path: &Path, e: std::io::Error) -> Error {
    let retryable = matches!(
        e.kind(),
        std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
    );
    Error::Other {
        reason: format!("{}: {e}", path.display()),
        retryable,
        cause: Some(Box::new(e)),
    }
}

/// Where in a file: a byte offset (streamed formats) or an item index (whole-file formats),
/// the line number there (for reports), and how many items of the record there were already
/// delivered (a record can give more measurements than a batch has room for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Position {
    pub(crate) offset: u64,
    pub(crate) line: u64,
    pub(crate) part: usize,
}

/// The cursor text: `<hash of the first n bytes>-<n>:<offset>:<line>:<part>`.
pub(crate) fn cursor(hash: u64, n: u64, at: Position) -> Cursor {
    Cursor::new(format!(
        "{hash:016x}-{n}:{}:{}:{}",
        at.offset, at.line, at.part
    ))
}

/// What a cursor holds: the hash and length of the prefix it was written against, and the
/// position; `None` for the start.
pub(crate) fn parse(cursor: &Cursor) -> Result<Option<(u64, u64, Position)>> {
    if cursor.is_start() {
        return Ok(None);
    }
    let bad = |reason: &str| Error::BadCursor {
        reason: reason.to_string(),
    };
    let mut parts = cursor.as_str().split(':');
    let (Some(stamp), Some(offset), Some(line), Some(part), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad("expected <file stamp>:<offset>:<line>:<part>"));
    };
    let (hash, n) = stamp
        .split_once('-')
        .ok_or_else(|| bad("expected <hash>-<length> as the file stamp"))?;
    let hash =
        u64::from_str_radix(hash, 16).map_err(|_| bad("the file hash is not hexadecimal"))?;
    let n = n
        .parse()
        .map_err(|_| bad("the stamp length is not a number"))?;
    let offset = offset
        .parse()
        .map_err(|_| bad("the offset is not a number"))?;
    let line = line.parse().map_err(|_| bad("the line is not a number"))?;
    let part = part.parse().map_err(|_| bad("the part is not a number"))?;
    Ok(Some((hash, n, Position { offset, line, part })))
}

/// The error for a cursor written against other content.
pub(crate) fn other_file() -> Error {
    Error::BadCursor {
        reason: "the cursor belongs to another file (what it read differs from this file's beginning); reset the checkpoint to import this one from the start".into(),
    }
}

/// A whole file as text, refusing one larger than `max` bytes with an error that says so
/// (rather than reading a truncated prefix).
pub(crate) fn read_whole(path: &Path, max: u64, advice: &str) -> Result<String> {
    let mut text = String::new();
    open(path)?
        .take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| io(path, e))?;
    if text.len() as u64 > max {
        return Err(Error::BadData {
            location: path.display().to_string(),
            reason: format!("larger than {max} bytes, the limit of a file read whole; {advice}"),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_not_truncated() {
        let dir = std::env::temp_dir().join(format!("ha-read-whole-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f.json");
        std::fs::write(&path, "[1, 2, 3]").expect("write");
        assert_eq!(read_whole(&path, 9, "split it").expect("fits"), "[1, 2, 3]");
        let e = read_whole(&path, 8, "split it").expect_err("too large");
        assert!(e.to_string().contains("larger than 8 bytes"), "{e}");
        assert!(!e.is_retryable());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
