//! What a schedule did, line by line: the tail kept for a failure's report, everything
//! when asked (replays), and a digest of every line so two runs compare cheaply.

use std::collections::VecDeque;

/// Lines kept for a failure's report.
pub const TAIL: usize = 40;

#[derive(Debug, Default)]
pub struct Trace {
    tail: VecDeque<String>,
    all: Option<Vec<String>>,
    digest: u64,
    lines: u64,
}

impl Trace {
    pub fn new(keep_all: bool) -> Trace {
        Trace {
            tail: VecDeque::with_capacity(TAIL),
            all: keep_all.then(Vec::new),
            digest: 0xcbf2_9ce4_8422_2325,
            lines: 0,
        }
    }

    pub fn line(&mut self, step: u32, now_ms: i64, what: String) {
        let since = (now_ms - crate::world::EPOCH_MS) as f64 / 1000.0;
        let line = format!("{step:>5} {since:>8.3}s {what}");
        for b in line.bytes().chain([b'\n']) {
            self.digest ^= u64::from(b);
            self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
        }
        self.lines += 1;
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        if let Some(all) = &mut self.all {
            all.push(line.clone());
        }
        self.tail.push_back(line);
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    pub fn take_all(&mut self) -> Vec<String> {
        self.all.take().unwrap_or_default()
    }

    /// FNV-1a over every line, in order.
    pub fn digest(&self) -> u64 {
        self.digest
    }
}
