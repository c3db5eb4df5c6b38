//! What a simulated component acts through in one step: the API behind the seeded network
//! (a request may fail before it is applied, or be applied and lose its answer), the
//! clock, the random source and the trace.

use rand::rngs::StdRng;
use rand::Rng;

use crate::api::Api;
use crate::error::ApiError;
use crate::trace::Trace;
use crate::{Faults, Stats};

/// A broken invariant: its name and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

pub struct Env<'a> {
    pub api: &'a mut Api,
    pub rng: &'a mut StdRng,
    pub now_ms: i64,
    pub step: u32,
    /// `None` once faults stopped (the schedule settles).
    pub faults: Option<&'a Faults>,
    pub trace: &'a mut Trace,
    pub stats: &'a mut Stats,
}

impl Env<'_> {
    /// The clock in Unix seconds, as the cores take it.
    pub fn now(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }

    pub fn log(&mut self, what: String) {
        self.trace.line(self.step, self.now_ms, what);
    }

    /// One request of a controller through the seeded network.
    pub fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Api, i64) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (before, after) = self
            .faults
            .map_or((0.0, 0.0), |f| (f.request_failure, f.lost_answer));
        self.stats.requests += 1;
        if before > 0.0 && self.rng.gen_bool(before) {
            self.stats.failed_requests += 1;
            return Err(ApiError::Unavailable);
        }
        let now = self.now();
        let result = f(self.api, now);
        if result.is_ok() && after > 0.0 && self.rng.gen_bool(after) {
            self.stats.lost_answers += 1;
            return Err(ApiError::Timeout);
        }
        result
    }

    /// Random bytes for a generated name.
    pub fn suffix(&mut self) -> [u8; 5] {
        self.rng.gen()
    }
}
