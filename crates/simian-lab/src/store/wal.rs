//! The store's write-ahead file, and the record framing that replication reuses on the wire.
//!
//! A file `<state_dir>/lab/store-<region>.wal` is a sequence of frames, one per applied
//! write (local or replicated), in the order the store applied them:
//!
//! ```text
//! {"seq":7,"key":"user-42","origin":"us-east","origin_seq":7,"ts_ms":1763783831000,"len":5}\n
//! <len raw value bytes>\n
//! ```
//!
//! A JSON header line, the value's bytes as they are (any bytes, no escaping), and a newline
//! that closes the frame. A store killed halfway through a frame leaves a torn tail: reload
//! keeps every complete frame before it and truncates the rest. Frames are written with one
//! `write` call before the write is acknowledged, and not fsynced: they survive a killed
//! process (the page cache keeps them), not a power cut.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Record;

/// Largest value a frame may carry (the API's limit, with room).
const MAX_FRAME_VALUE: usize = 4 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    seq: u64,
    key: String,
    origin: String,
    origin_seq: u64,
    ts_ms: u64,
    len: usize,
}

/// `record` as one frame.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let header = Header {
        seq: record.seq,
        key: record.key.clone(),
        origin: record.origin.clone(),
        origin_seq: record.origin_seq,
        ts_ms: record.ts_ms,
        len: record.value.len(),
    };
    serde_json::to_writer(&mut *out, &header).expect("headers serialize");
    out.push(b'\n');
    out.extend_from_slice(&record.value);
    out.push(b'\n');
}

/// Parses a frame's header line (without its newline) into a record waiting for its value,
/// and the value's length.
pub fn decode_header(line: &[u8]) -> Option<(Record, usize)> {
    let h: Header = serde_json::from_slice(line).ok()?;
    if h.len > MAX_FRAME_VALUE {
        return None;
    }
    let record = Record {
        seq: h.seq,
        key: h.key,
        value: Bytes::new(),
        origin: h.origin,
        origin_seq: h.origin_seq,
        ts_ms: h.ts_ms,
    };
    Some((record, h.len))
}

/// Reads one frame from `r`: `Ok(None)` at a clean end, `Err` on a torn or corrupt frame.
fn read_frame(r: &mut impl BufRead) -> std::io::Result<Option<(Record, usize)>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(bad("torn header"));
    }
    let (mut record, len) = decode_header(&line).ok_or_else(|| bad("bad header"))?;
    let mut value = vec![0; len + 1];
    r.read_exact(&mut value)?;
    if value.pop() != Some(b'\n') {
        return Err(bad("frame not closed"));
    }
    record.value = Bytes::from(value);
    Ok(Some((record, n + len + 1)))
}

/// An open write-ahead file, appended to by one store.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
}

impl Wal {
    /// Opens (creating) the file at `path` and returns it with every complete record in it,
    /// in order. A torn tail is cut off.
    pub fn open(path: &Path) -> std::io::Result<(Wal, Vec<Record>)> {
        let mut file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut records = Vec::new();
        let mut good = 0u64;
        {
            let mut r = BufReader::new(&mut file);
            loop {
                match read_frame(&mut r) {
                    Ok(Some((record, n))) => {
                        good += n as u64;
                        records.push(record);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!(
                            "wal {}: dropping a torn tail after {good} bytes ({e})",
                            path.display()
                        );
                        break;
                    }
                }
            }
        }
        if file.metadata()?.len() != good {
            file.set_len(good)?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((
            Wal {
                path: path.to_path_buf(),
                file,
            },
            records,
        ))
    }

    /// Appends `record` with one write.
    pub fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(96 + record.key.len() + record.value.len());
        encode(record, &mut buf);
        self.file.write_all(&buf)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, key: &str, value: &[u8]) -> Record {
        Record {
            seq,
            key: key.into(),
            value: Bytes::copy_from_slice(value),
            origin: "us-east".into(),
            origin_seq: seq,
            ts_ms: 1000 + seq,
        }
    }

    #[test]
    fn appended_records_reload_in_order_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store-us-east.wal");
        let written = vec![
            rec(1, "a", b"1"),
            rec(2, "b", b"bytes\nwith newline \xff"),
            rec(3, "a", b""),
        ];
        {
            let (mut wal, old) = Wal::open(&path).unwrap();
            assert!(old.is_empty());
            for r in &written {
                wal.append(r).unwrap();
            }
        }
        let (_, reloaded) = Wal::open(&path).unwrap();
        assert_eq!(reloaded, written);

        // A process killed halfway through a frame.
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = File::options().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":4,"key":"c","origin":"us-east","origin_seq":4,"ts_ms":9,"len":10}"#)
            .unwrap();
        f.write_all(b"\nabc").unwrap();
        drop(f);
        let (mut wal, reloaded) = Wal::open(&path).unwrap();
        assert_eq!(reloaded, written);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "tail cut");
        wal.append(&rec(4, "c", b"after")).unwrap();
        let (_, reloaded) = Wal::open(&path).unwrap();
        assert_eq!(reloaded.len(), 4);
        assert_eq!(reloaded[3].value, Bytes::from_static(b"after"));
    }
}
