//! A deterministic simulation of the control plane's pure cores: the ReplicaSet and
//! Deployment controllers' and the scheduler's decisions (`navarch-logic`), driven the way
//! their shells in `navarch-controllers` drive them, against a simulated API, lagging
//! watch caches, a clock, kubelets, and failures, all drawn from one seed. Single-threaded
//! and without I/O: a schedule is a sequence of steps, each picking one enabled thing to
//! happen (a watch event delivered to one controller's cache, one request sent, one
//! reconcile, a kubelet starting or ending a pod, time passing), with faults and a
//! workload mixed in; then faults stop and the system must settle.
//!
//! Where to start reading: [`explore`] runs schedules one after the other, schedule `i`
//! from [`schedule_seed`]`(seed, i)`, and reports each [`Failure`] with the seed that
//! replays it alone ([`replay`]). `world.rs` is one schedule's loop; `api.rs` the simulated
//! API; `informer.rs` a watch cache; `replicaset.rs`, `deployment.rs`, `scheduler.rs` the
//! shells; `kubelet.rs` the nodes; `workload.rs` the user; `invariants.rs` what must hold;
//! [`Cores`] the decisions, which a test may replace with broken ones.
//!
//! Simplified on purpose: one namespace, pods without resource requests (a node takes
//! [`kubelet::PODS_PER_NODE`] pods), no node deletion or evictions (a failed node is
//! NotReady, then recovers), the API deletes dependents inside the delete request (as
//! navarch's does) and a garbage collector the rest, a controller's in-flight requests die with it.

use std::fmt;

mod api;
mod cores;
mod deployment;
mod env;
mod error;
mod gc;
mod informer;
pub mod invariants;
pub mod kubelet;
mod replicaset;
mod scheduler;
mod trace;
mod workload;
mod world;

pub use cores::{
    Cores, DeploymentCore, RealDeployment, RealReplicaSet, ReplicaSetCore, ScheduleFn,
};
pub use error::ApiError;
pub use trace::TAIL;

/// How often faults happen while a schedule runs (probabilities per request or per step).
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// A controller's request fails before it is applied.
    pub request_failure: f64,
    /// A controller's request is applied but its answer is lost (a timeout).
    pub lost_answer: f64,
    /// A controller restarts (loses its memory, lists again) at a step.
    pub restart: f64,
    /// A watch is compacted and its cache lists again, at a step.
    pub relist: f64,
    /// A node fails for a while, at a step.
    pub node_failure: f64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            request_failure: 0.05,
            lost_answer: 0.03,
            restart: 0.01,
            relist: 0.01,
            node_failure: 0.004,
        }
    }
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Faults {
        Faults {
            request_failure: 0.0,
            lost_answer: 0.0,
            restart: 0.0,
            relist: 0.0,
            node_failure: 0.0,
        }
    }
}

/// What to explore.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Schedule `i` runs from [`schedule_seed`]`(seed, i)`; schedule 0 from `seed` itself.
    pub seed: u64,
    /// How many schedules to run.
    pub schedules: u64,
    /// Steps of each schedule with the workload and faults on.
    pub steps: u32,
    /// Steps a schedule has, once faults stopped, to settle.
    pub settle_steps: u32,
    /// Nodes of the simulated cluster.
    pub nodes: usize,
    /// The chance of a user action at a step.
    pub workload: f64,
    /// Whether the workload makes Recreate Deployments too (off by default, so that the
    /// default schedules stay those the tests pin; the stall of a Recreate Deployment with
    /// two active ReplicaSets on a scaling event that it found is fixed).
    pub recreate: bool,
    pub faults: Faults,
    /// Stop exploring at the first failure.
    pub stop_at_first_failure: bool,
    /// Liveness bugs of the shells before their fixes, turned back on.
    pub quirks: ShellQuirks,
}

/// Behaviours of `navarch-controllers`' shells that the simulation found to break
/// liveness, as the shells had them before they were fixed, reproducible on demand. Off
/// (the default), the simulated shells do what the real shells now do;
/// [`ShellQuirks::as_today`] turns every bug back on, to show the simulation catches them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShellQuirks {
    /// Before the fix: a Deployment found held back by a ReplicaSet write (of any
    /// Deployment of the namespace) not yet in the cache was not looked at again until
    /// something else poked it: only the writer's Deployment was poked when the write
    /// showed. Now it is looked at again once the caches caught up, or once the pending
    /// write is too old to wait for.
    pub deployment_drops_held_pokes: bool,
    /// Before the fix: a binding that failed because the pod was gone put the pod back
    /// among the unschedulable even when its deletion was seen already, and the scheduler
    /// tried to bind it every second for ever. Now a pod that is gone (the binding answered
    /// NotFound, or the cache saw it deleted) is dropped.
    pub scheduler_retries_gone_pods: bool,
    /// Before the fix: a ReplicaSet whose write failed (a create, a delete, its status,
    /// for any reason but a conflict that brings a newer ReplicaSet) was not looked at
    /// again until something else poked it: it could stay short of pods, or report a
    /// stale status, for ever. Now a step with a failed write is followed by another look
    /// after a backoff: 1 s, doubled for each such step in a row, up to 1000 s.
    pub replicaset_forgets_failed_writes: bool,
}

impl ShellQuirks {
    /// The shells as they were before these fixes (every quirk on; the name is from when
    /// they were the shells of the day).
    pub fn as_today() -> ShellQuirks {
        ShellQuirks {
            deployment_drops_held_pokes: true,
            scheduler_retries_gone_pods: true,
            replicaset_forgets_failed_writes: true,
        }
    }
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 1,
            schedules: 100,
            steps: 200,
            settle_steps: 4000,
            nodes: 3,
            workload: 0.06,
            recreate: false,
            faults: Faults::default(),
            stop_at_first_failure: true,
            quirks: ShellQuirks::default(),
        }
    }
}

/// Counts over the schedules run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub lost_answers: u64,
    pub restarts: u64,
    pub relists: u64,
    pub node_failures: u64,
    pub user_actions: u64,
    /// Steps the schedules took to settle once faults stopped, summed.
    pub settle_steps: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.requests += o.requests;
        self.failed_requests += o.failed_requests;
        self.lost_answers += o.lost_answers;
        self.restarts += o.restarts;
        self.relists += o.relists;
        self.node_failures += o.node_failures;
        self.user_actions += o.user_actions;
        self.settle_steps += o.settle_steps;
    }
}

/// A schedule that broke an invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The schedule's own seed: `replay(seed, ..)` (or `navctl chaos sim --seed <seed>
    /// --schedules 1`) runs it again, alone, exactly.
    pub seed: u64,
    /// The step at which the invariant was found broken.
    pub step: u32,
    /// The invariant's name (see [`invariants::name`]).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// The last lines of the schedule's trace.
    pub trace_tail: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant {} broken at step {} of the schedule with seed {}: {}",
            self.invariant, self.step, self.seed, self.detail
        )?;
        writeln!(f, "last steps:")?;
        for line in &self.trace_tail {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "replay: navctl chaos sim --seed {} --schedules 1",
            self.seed
        )
    }
}

/// One schedule's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRun {
    pub seed: u64,
    pub steps: u32,
    pub failure: Option<Failure>,
    /// Every line of the trace (only from [`replay`]; empty in an exploration).
    pub trace: Vec<String>,
    /// A digest of every trace line: equal runs have equal digests.
    pub digest: u64,
    pub stats: Stats,
}

/// What an exploration found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exploration {
    pub seed: u64,
    pub schedules: u64,
    pub failures: Vec<Failure>,
    pub stats: Stats,
}

impl Exploration {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Exploration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "{} schedules from seed {}: {} steps, {} requests ({} failed, {} answers lost), {} restarts, {} relists, {} node failures, {} user actions",
            self.schedules,
            self.seed,
            s.steps,
            s.requests,
            s.failed_requests,
            s.lost_answers,
            s.restarts,
            s.relists,
            s.node_failures,
            s.user_actions
        )?;
        if self.failures.is_empty() {
            write!(f, "no invariant broken")
        } else {
            for failure in &self.failures {
                writeln!(f, "{failure}")?;
            }
            write!(f, "{} schedules failed", self.failures.len())
        }
    }
}

/// The seed of schedule `i` of an exploration from `seed`: `seed` itself for the first,
/// so a failing schedule's seed, explored alone, replays it.
pub fn schedule_seed(seed: u64, i: u64) -> u64 {
    if i == 0 {
        return seed;
    }
    // SplitMix64 of (seed, i).
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Explores `config.schedules` schedules with the real cores.
pub fn explore(config: &SimConfig) -> Exploration {
    explore_with(config, &Cores::real)
}

/// Explores with the cores `cores` makes (fresh for each schedule).
pub fn explore_with(config: &SimConfig, cores: &dyn Fn() -> Cores) -> Exploration {
    let mut out = Exploration {
        seed: config.seed,
        ..Exploration::default()
    };
    for i in 0..config.schedules {
        let run = world::run(schedule_seed(config.seed, i), config, cores(), false);
        out.schedules += 1;
        out.stats.add(&run.stats);
        if let Some(f) = run.failure {
            out.failures.push(f);
            if config.stop_at_first_failure {
                break;
            }
        }
    }
    out
}

/// Runs the one schedule of `seed` with the real cores, keeping its whole trace.
pub fn replay(seed: u64, config: &SimConfig) -> ScheduleRun {
    replay_with(seed, config, Cores::real())
}

/// Runs the one schedule of `seed` with `cores`, keeping its whole trace.
pub fn replay_with(seed: u64, config: &SimConfig, cores: Cores) -> ScheduleRun {
    world::run(seed, config, cores, true)
}
