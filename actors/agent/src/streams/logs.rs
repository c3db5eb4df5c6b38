//! Reading a container's CRI-format log for `pods/log`, as kubelet does: the prefixes
//! (`<RFC 3339 nanos> <stream> <F|P> `) stripped and `P` partials joined into their line,
//! the record's time in front of each line for `timestamps`, `tailLines`, `sinceSeconds` /
//! `sinceTime` and `limitBytes`, and `follow` across rotations (runtime's [`Follower`]) until
//! the container ends.
//!
//! A read starts with the rotated files (`<path>.N` … `<path>.1`, oldest first) and the
//! current one; a follow then goes on from where the current file was read. The rotated
//! files are read before the current one is opened, so a rotation in between shows one
//! file twice or skips one (kubelet has the same window).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use navarch_runtime::logs::{parse, rotated, Follower};
use navarch_runtime::time::rfc3339_nanos;

/// How often a follower looks for new bytes.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// The most rotated files a read looks for.
const MAX_ROTATED: u32 = 64;

/// What to read of a log: `pods/log`'s options, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    /// Only the last this many lines (of those newer than `since`).
    pub tail_lines: Option<usize>,
    /// Only lines recorded at or after this time.
    pub since: Option<SystemTime>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
}

/// Turns CRI records into output lines: joins partials, filters by time, adds timestamps,
/// counts bytes against the limit. Pure: bytes in, bytes out.
#[derive(Debug)]
pub struct LineFormatter {
    timestamps: bool,
    /// `since` as the log's own timestamp text (fixed width, UTC: ordered as strings).
    since: Option<String>,
    remaining: Option<u64>,
    /// Bytes of an incomplete line (a read ended inside it).
    pending: Vec<u8>,
    /// A line of `P` records so far: its first record's time and its content.
    partial: Option<(String, Vec<u8>)>,
}

impl LineFormatter {
    pub fn new(opts: &LogOptions) -> Self {
        LineFormatter {
            timestamps: opts.timestamps,
            since: opts.since.map(rfc3339_nanos),
            remaining: opts.limit_bytes,
            pending: Vec::new(),
            partial: None,
        }
    }

    /// Whether `limitBytes` has been reached: nothing more will be output.
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The complete logical lines in `bytes` (after what earlier calls left incomplete), as
    /// `(timestamp, content)`, filtered by `since`; not yet formatted or limited.
    pub fn lines(&mut self, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + i];
            start += i + 1;
            let Some(rec) = parse(line) else {
                tracing::debug!(len = line.len(), "skipping a malformed log record");
                continue;
            };
            let (ts, mut content) = match self.partial.take() {
                Some((ts, mut c)) => {
                    c.extend_from_slice(rec.content);
                    (ts, c)
                }
                None => (rec.timestamp.to_string(), rec.content.to_vec()),
            };
            if rec.partial {
                self.partial = Some((ts, content));
                continue;
            }
            if self
                .since
                .as_ref()
                .is_some_and(|s| ts.as_str() < s.as_str())
            {
                continue;
            }
            content.push(b'\n');
            out.push((ts, content));
        }
        self.pending.drain(..start);
        out
    }

    /// Lines formatted for output (timestamps), cut at `limitBytes`.
    pub fn format(&mut self, lines: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (ts, content) in lines {
            if self.timestamps {
                out.extend_from_slice(ts.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(content);
        }
        if let Some(rem) = &mut self.remaining {
            if out.len() as u64 > *rem {
                out.truncate(*rem as usize);
            }
            *rem -= out.len() as u64;
        }
        out
    }

    /// `lines` then `format`: the output for these bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let lines = self.lines(bytes);
        self.format(&lines)
    }
}

/// The rotated files of `path` that exist, oldest first, then `path` itself is not included.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=MAX_ROTATED)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files
}

/// Reads a log as asked: [`LogReader::start`] gives everything there is now (tail and since
/// applied), [`LogReader::poll`] what was written since, for a follow.
#[derive(Debug)]
pub struct LogReader {
    fmt: LineFormatter,
    follower: Option<Follower>,
}

impl LogReader {
    /// Reads the rotated files and the current one; returns the reader (to follow on) and
    /// the output so far. A missing current file is an empty log.
    pub fn start(path: &Path, opts: &LogOptions) -> io::Result<(LogReader, Vec<u8>)> {
        let mut fmt = LineFormatter::new(opts);
        let mut lines = Vec::new();
        for f in rotated_files(path) {
            match fs::read(&f) {
                Ok(b) => lines.extend(fmt.lines(&b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut follower = match Follower::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(f) = &mut follower {
            lines.extend(fmt.lines(&f.read_available()?));
        }
        if let Some(n) = opts.tail_lines {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        let out = fmt.format(&lines);
        Ok((LogReader { fmt, follower }, out))
    }

    /// What was written since the last read (empty when nothing was, or once `limitBytes`
    /// is reached). A current file that appears later is picked up.
    pub fn poll(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        if self.fmt.exhausted() {
            return Ok(Vec::new());
        }
        if self.follower.is_none() {
            match Follower::open(path) {
                Ok(f) => self.follower = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let bytes = match &mut self.follower {
            Some(f) => f.read_available()?,
            None => Vec::new(),
        };
        Ok(self.fmt.feed(&bytes))
    }

    /// Whether `limitBytes` has been reached.
    pub fn exhausted(&self) -> bool {
        self.fmt.exhausted()
    }
}

/// Reads `path` as asked and sends the output, chunk by chunk, to `send` (which returns
/// false once nobody listens). Blocking: run it on a blocking thread. A follow polls the file
/// every [`FOLLOW_POLL`] while `running` says the container runs, then reads what its last
/// moments wrote and ends; it also ends as soon as `wanted` says nobody listens any more
/// (a client gone while the container writes nothing).
pub fn read_log(
    path: &Path,
    opts: &LogOptions,
    running: &Arc<dyn Fn() -> bool + Send + Sync>,
    max_chunk: usize,
    wanted: impl Fn() -> bool,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    let mut emit = |bytes: Vec<u8>| -> bool {
        bytes
            .chunks(max_chunk.max(1))
            .all(|c| c.is_empty() || send(c.to_vec()))
    };
    let (mut reader, first) = LogReader::start(path, opts)?;
    if !emit(first) || !opts.follow {
        return Ok(());
    }
    loop {
        if reader.exhausted() || !wanted() {
            return Ok(());
        }
        // Whether it runs is asked before the read: bytes written before it ended are in
        // the read that follows.
        let alive = running();
        let bytes = reader.poll(path)?;
        if !emit(bytes) {
            return Ok(());
        }
        if !alive {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_runtime::logs::{LogWriter, Stream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn write(w: &mut LogWriter, secs: u64, line: &str) {
        w.record(Stream::Stdout, false, line.as_bytes(), at(secs))
            .unwrap();
    }

    fn read(path: &Path, opts: &LogOptions) -> String {
        let (_, out) = LogReader::start(path, opts).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strips_prefixes_joins_partials_and_keeps_both_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 1 << 20, 3).unwrap();
        write(&mut w, 1, "one");
        w.record(Stream::Stderr, true, b"long ", at(2)).unwrap();
        w.record(Stream::Stderr, true, b"line ", at(3)).unwrap();
        w.record(Stream::Stderr, false, b"ends", at(4)).unwrap();
        write(&mut w, 5, "");
        assert_eq!(
            read(&path, &LogOptions::default()),
            "one\nlong line ends\n\n"
        );
        // A joined line carries its first record's time.
        let ts = read(
            &path,
            &LogOptions {
                timestamps: true,
                ..Default::default()
            },
        );
        let lines: Vec<&str> = ts.lines().collect();
        assert_eq!(lines[0], format!("{} one", rfc3339_nanos(at(1))));
        assert_eq!(lines[1], format!("{} long line ends", rfc3339_nanos(at(2))));
    }

    #[test]
    fn tail_since_and_limit_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 1 << 20, 3).unwrap();
        for i in 0..10 {
            write(&mut w, i, &format!("line {i}"));
        }
        let tail = |n| {
            read(
                &path,
                &LogOptions {
                    tail_lines: Some(n),
                    ..Default::default()
                },
            )
        };
        assert_eq!(tail(2), "line 8\nline 9\n");
        assert_eq!(tail(0), "");
        assert_eq!(tail(100).lines().count(), 10);
        let since = read(
            &path,
            &LogOptions {
                since: Some(at(7)),
                ..Default::default()
            },
        );
        assert_eq!(since, "line 7\nline 8\nline 9\n");
        let both = read(
            &path,
            &LogOptions {
                since: Some(at(8)),
                tail_lines: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(both, "line 8\nline 9\n");
        let limited = read(
            &path,
            &LogOptions {
                limit_bytes: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(limited, "line 0\nlin");
    }

    #[test]
    fn reads_rotated_files_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // Each record is about 45 bytes: a few per file, several files.
        let mut w = LogWriter::open(&path, 100, 5).unwrap();
        for i in 0..8 {
            write(&mut w, i, &format!("line {i}"));
        }
        assert!(rotated(&path, 2).exists(), "the writer rotated");
        let all = read(&path, &LogOptions::default());
        let want: String = (0..8).map(|i| format!("line {i}\n")).collect();
        assert_eq!(all, want);
        let tail = read(
            &path,
            &LogOptions {
                tail_lines: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(tail, "line 5\nline 6\nline 7\n");
    }

    #[test]
    fn an_incomplete_record_waits_for_its_newline() {
        let mut f = LineFormatter::new(&LogOptions::default());
        let rec = format!("{} stdout F hello\n", rfc3339_nanos(at(1)));
        let (a, b) = rec.as_bytes().split_at(20);
        assert!(f.feed(a).is_empty());
        assert_eq!(f.feed(b), b"hello\n");
    }

    #[test]
    fn a_follow_ends_when_nobody_listens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 1 << 20, 2).unwrap();
        write(&mut w, 0, "only line");
        let forever: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(|| true);
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut got = Vec::new();
        // The container runs on and writes nothing more; the listener has gone.
        read_log(
            &path,
            &opts,
            &forever,
            1024,
            || false,
            |c| {
                got.extend(c);
                true
            },
        )
        .unwrap();
        assert_eq!(got, b"only line\n");
    }

    #[test]
    fn follow_crosses_a_rotation_and_ends_when_the_container_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 100, 3).unwrap();
        write(&mut w, 0, "before");
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let is_running: Arc<dyn Fn() -> bool + Send + Sync> =
            Arc::new(move || flag.load(Ordering::SeqCst));
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let p = path.clone();
        let reader = std::thread::spawn(move || {
            let opts = LogOptions {
                follow: true,
                ..Default::default()
            };
            read_log(
                &p,
                &opts,
                &is_running,
                1024,
                || true,
                |c| tx.send(c).is_ok(),
            )
            .unwrap();
        });
        let mut got = String::new();
        let recv_until = |want: &str, got: &mut String| {
            while !got.contains(want) {
                let chunk = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                got.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        recv_until("before\n", &mut got);
        // Each pair of lines rotates the file (100 bytes) once while the reader follows;
        // the reader sees each rotation before the next (it follows at most one).
        write(&mut w, 1, "after 0");
        write(&mut w, 2, "after 1");
        assert!(rotated(&path, 1).exists(), "the writer rotated");
        recv_until("after 1\n", &mut got);
        write(&mut w, 3, "after 2");
        write(&mut w, 4, "after 3");
        assert!(rotated(&path, 2).exists(), "the writer rotated again");
        recv_until("after 3\n", &mut got);
        write(&mut w, 9, "last words");
        running.store(false, Ordering::SeqCst);
        reader.join().unwrap();
        while let Ok(chunk) = rx.try_recv() {
            got.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert_eq!(
            got,
            "before\nafter 0\nafter 1\nafter 2\nafter 3\nlast words\n"
        );
    }
}
