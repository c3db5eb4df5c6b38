//! Container logs: the CRI log format, one line per record
//! (`<RFC 3339 nanos> <stdout|stderr> <F|P> <bytes>`, `P` for a partial line cut at
//! [`MAX_LINE`]), written by the shim with size-based rotation.
//!
//! Rotation renames `<path>` to `<path>.1` (shifting `.1` to `.2` and so on, dropping what
//! falls past `max_files`) and opens a new `<path>`; a rotation never copies or truncates,
//! so the newest bytes are always in `<path>` and a reader's open file keeps its bytes.
//!
//! How a follower (`logs -f`) keeps following across a rotation: keep the file open; at
//! end of file, `stat` the path. If its inode differs from the open file's, a rotation
//! happened: read the open (now `<path>.1`) file to its end, then open `<path>` and read
//! it from its start. If the path's inode is the same and its size is below the offset
//! read, the file was truncated (`max_files` 1): start again from offset 0.
//! [`Follower`] does exactly that. A follower that looks less often than the file rotates
//! misses the files rotated in between (it goes from its file to the newest); kubelet's
//! follower has the same bound, and a 10 MiB file between looks makes it theoretical.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::time::rfc3339_nanos;

/// The longest line written as one record; longer ones are split into `P` records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The path of the `n`th rotated file (`0` is the current one).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        let mut s = path.as_os_str().to_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }
}

/// Writes CRI-format records to a file, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: File,
    size: u64,
}

impl LogWriter {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            max_size: max_size.max(1),
            max_files: max_files.max(1),
            file,
            size,
        })
    }

    /// Writes one record (`line` without its newline).
    pub fn record(
        &mut self,
        stream: Stream,
        partial: bool,
        line: &[u8],
        at: SystemTime,
    ) -> io::Result<()> {
        let mut rec = Vec::with_capacity(line.len() + 48);
        rec.extend_from_slice(rfc3339_nanos(at).as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_str().as_bytes());
        rec.extend_from_slice(if partial { b" P " } else { b" F " });
        rec.extend_from_slice(line);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files == 1 {
            self.file.set_len(0)?;
        } else {
            let _ = fs::remove_file(rotated(&self.path, self.max_files - 1));
            for n in (1..self.max_files - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Splits a stream's bytes into records: whole lines, and `P` records of [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(partial, line)` for every record they complete.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(bool, &[u8])) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            emit(false, &self.buf[start..start + i]);
            start += i + 1;
        }
        while self.buf.len() - start >= MAX_LINE {
            emit(true, &self.buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.buf.drain(..start);
    }

    /// The rest, at end of stream, as a whole line.
    pub fn finish(&mut self, mut emit: impl FnMut(bool, &[u8])) {
        if !self.buf.is_empty() {
            emit(false, &self.buf);
            self.buf.clear();
        }
    }
}

/// One parsed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: &'a str,
    pub stream: Stream,
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one line of a CRI log file (without its newline).
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        timestamp,
        stream,
        partial,
        content: parts.next().unwrap_or(b""),
    })
}

/// Follows a log file across rotations (see the module's note): [`Follower::read_available`]
/// returns every byte written since the last call, from the old file first.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: File,
    inode: u64,
    offset: u64,
}

impl Follower {
    /// Starts at the beginning of the current file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Follower {
            path: path.to_path_buf(),
            file,
            inode,
            offset: 0,
        })
    }

    /// Reads what is there now; never blocks waiting for more.
    pub fn read_available(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.offset += self.file.read_to_end(&mut out)? as u64;
        match fs::metadata(&self.path) {
            Ok(meta) if meta.ino() != self.inode => {
                // Rotated: nothing writes the open file any more; read what reached it
                // before the rename, then move to the new file.
                self.file.read_to_end(&mut out)?;
                self.file = File::open(&self.path)?;
                self.inode = self.file.metadata()?.ino();
                self.offset = 0;
                out.extend(self.read_available()?);
            }
            Ok(meta) if meta.len() < self.offset => {
                // Truncated in place: start over.
                self.file = File::open(&self.path)?;
                self.offset = 0;
                out.extend(self.read_available()?);
            }
            _ => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(path: &Path, files: u32) -> Vec<String> {
        (0..files)
            .rev()
            .filter_map(|n| fs::read(rotated(path, n)).ok())
            .flat_map(|b| {
                String::from_utf8(b)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .map(|l| String::from_utf8(parse(l.as_bytes()).unwrap().content.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn rotation_keeps_the_newest_lines_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, 1000, 3).unwrap();
        for i in 0..1000 {
            w.record(
                Stream::Stdout,
                false,
                format!("line {i}").as_bytes(),
                SystemTime::now(),
            )
            .unwrap();
        }
        let lines = contents(&p, 3);
        assert_eq!(lines.last().unwrap(), "line 999");
        assert!(!p.with_extension("log.3").exists());
        let total: u64 = (0..3)
            .map(|n| fs::metadata(rotated(&p, n)).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(total <= 3000, "{total}");
        // Contiguous: no line lost between files.
        let first: usize = lines[0].trim_start_matches("line ").parse().unwrap();
        let want: Vec<String> = (first..1000).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn a_follower_reads_every_byte_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = LogWriter::open(&p, 200, 5).unwrap();
        let mut f = Follower::open(&p).unwrap();
        let mut got = Vec::new();
        for i in 0..100 {
            w.record(
                Stream::Stderr,
                false,
                format!("n{i}").as_bytes(),
                SystemTime::now(),
            )
            .unwrap();
            if i % 3 == 0 {
                got.extend(f.read_available().unwrap());
            }
        }
        got.extend(f.read_available().unwrap());
        let lines: Vec<String> = String::from_utf8(got)
            .unwrap()
            .lines()
            .map(|l| String::from_utf8(parse(l.as_bytes()).unwrap().content.to_vec()).unwrap())
            .collect();
        assert_eq!(lines, (0..100).map(|i| format!("n{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn long_lines_split_into_partial_records() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        let long = vec![b'a'; MAX_LINE + 5];
        s.feed(b"one\ntw", |p, l| out.push((p, l.len())));
        s.feed(b"o\n", |p, l| out.push((p, l.len())));
        s.feed(&long, |p, l| out.push((p, l.len())));
        s.finish(|p, l| out.push((p, l.len())));
        assert_eq!(
            out,
            vec![(false, 3), (false, 3), (true, MAX_LINE), (false, 5)]
        );
        let r = parse(b"2026-01-01T00:00:00.000000000Z stdout F hi there").unwrap();
        assert_eq!(
            (r.stream, r.partial, r.content),
            (Stream::Stdout, false, &b"hi there"[..])
        );
    }
}
