//! One schedule: the cluster, its controllers and the loop that, step by step, picks one
//! enabled thing to happen with the seeded random source, mixes in the workload and the
//! faults, checks the safety invariants after every write, then stops the faults and lets
//! the system settle before checking where it ended.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::api::{Api, Kind};
use crate::cores::Cores;
use crate::deployment::Deployments;
use crate::env::{Env, Violation};
use crate::gc::Collector;
use crate::invariants::{self, Safety};
use crate::kubelet::{self, Kubelets};
use crate::replicaset::ReplicaSets;
use crate::scheduler::Scheduler;
use crate::trace::Trace;
use crate::workload::Workload;
use crate::{Failure, ScheduleRun, SimConfig, Stats};

/// The simulated clock's start (Unix milliseconds).
pub(crate) const EPOCH_MS: i64 = 1_700_000_000_000;

/// Something that can happen at a step.
#[derive(Clone, Copy, Debug)]
enum Move {
    /// Deliver one event of watch `.1` of controller `.0` (0 ReplicaSets, 1 Deployments,
    /// 2 scheduler).
    Deliver(usize, usize),
    /// Controller `.0` sends a request or reconciles.
    Work(usize),
    Kubelet,
    Gc,
    Tick,
}

struct World<'a> {
    config: &'a SimConfig,
    rng: StdRng,
    api: Api,
    now_ms: i64,
    step: u32,
    cores: Cores,
    rs: ReplicaSets,
    dc: Deployments,
    sched: Scheduler,
    kubelets: Kubelets,
    gc: Collector,
    workload: Workload,
    safety: Safety,
    trace: Trace,
    stats: Stats,
}

/// The environment of one step, borrowing the world's fields apart from its components.
macro_rules! env {
    ($w:ident, $chaos:expr) => {
        Env {
            api: &mut $w.api,
            rng: &mut $w.rng,
            now_ms: $w.now_ms,
            step: $w.step,
            faults: if $chaos {
                Some(&$w.config.faults)
            } else {
                None
            },
            trace: &mut $w.trace,
            stats: &mut $w.stats,
        }
    };
}

/// Runs the schedule of `seed`.
pub fn run(seed: u64, config: &SimConfig, cores: Cores, keep_trace: bool) -> ScheduleRun {
    let mut api = Api::default();
    for i in 1..=config.nodes.max(1) {
        let _ = api.create(
            Kind::Node,
            kubelet::node(&format!("n{i}")),
            EPOCH_MS / 1000,
            [0; 5],
        );
    }
    let rs = ReplicaSets::start(&api, config.quirks.replicaset_forgets_failed_writes);
    let dc = Deployments::start(&api, config.quirks.deployment_drops_held_pokes);
    let sched = Scheduler::start(
        &api,
        cores.schedule,
        config.quirks.scheduler_retries_gone_pods,
    );
    let mut w = World {
        config,
        rng: StdRng::seed_from_u64(seed),
        api,
        now_ms: EPOCH_MS,
        step: 0,
        cores,
        rs,
        dc,
        sched,
        kubelets: Kubelets::default(),
        gc: Collector::default(),
        workload: Workload::new(config.recreate),
        safety: Safety::default(),
        trace: Trace::new(keep_trace),
        stats: Stats::default(),
    };
    let result = w.run();
    let failure = result.err().map(|v| Failure {
        seed,
        step: w.step,
        invariant: v.invariant,
        detail: v.detail,
        trace_tail: w.trace.tail(),
    });
    w.stats.steps = u64::from(w.step);
    ScheduleRun {
        seed,
        steps: w.step,
        failure,
        digest: w.trace.digest(),
        trace: w.trace.take_all(),
        stats: w.stats,
    }
}

impl World<'_> {
    fn run(&mut self) -> Result<(), Violation> {
        for _ in 0..self.config.steps {
            self.step(true)?;
        }
        self.kubelets.recover(&mut env!(self, false), true);
        let settle_from = self.step;
        let mut quiet = false;
        for _ in 0..self.config.settle_steps {
            if !self.step(false)? {
                quiet = true;
                break;
            }
        }
        self.stats.settle_steps = u64::from(self.step - settle_from);
        let line = format!("settled: quiet {quiet}");
        self.trace.line(self.step, self.now_ms, line);
        invariants::settled(&self.api)?;
        if !quiet {
            return Err(Violation::new(
                invariants::name::QUIESCES,
                format!(
                    "still busy {} steps after faults stopped",
                    self.config.settle_steps
                ),
            ));
        }
        Ok(())
    }

    /// One step; `false` when nothing is left to happen (settling only).
    fn step(&mut self, chaos: bool) -> Result<bool, Violation> {
        self.step += 1;
        let now = self.now_ms;
        self.rs.fire_timers(now);
        self.dc.fire_timers(now);
        self.sched.fire_timers(now);
        if chaos {
            self.kubelets.recover(&mut env!(self, false), false);
            self.faults()?;
            if self.rng.gen_bool(self.config.workload) {
                self.stats.user_actions += 1;
                self.workload.act(&mut env!(self, false));
            }
        }
        self.kubelets.observe(&self.api, &mut self.rng, self.now_ms);
        self.gc.observe(&self.api);
        let moves = self.moves();
        if moves.is_empty() {
            if chaos {
                self.tick();
            } else {
                let next = [
                    self.rs.next_timer(),
                    self.dc.next_timer(),
                    self.sched.next_timer(),
                    self.kubelets.next_due(),
                ]
                .into_iter()
                .flatten()
                .min();
                match next {
                    Some(t) => self.now_ms = t.max(self.now_ms + 1),
                    None => return Ok(false),
                }
            }
        } else {
            let total: u32 = moves.iter().map(|(_, w)| w).sum();
            let mut pick = self.rng.gen_range(0..total);
            let mut chosen = moves[0].0;
            for (m, w) in &moves {
                if pick < *w {
                    chosen = *m;
                    break;
                }
                pick -= w;
            }
            self.perform(chosen, chaos)?;
        }
        self.safety.check(&self.api)?;
        Ok(true)
    }

    fn moves(&self) -> Vec<(Move, u32)> {
        let mut out = Vec::new();
        let pending: [&[usize]; 3] = [
            &self.rs.pending(&self.api),
            &self.dc.pending(&self.api),
            &self.sched.pending(&self.api),
        ];
        for (c, watches) in pending.iter().enumerate() {
            for (i, n) in watches.iter().enumerate() {
                if *n > 0 {
                    out.push((Move::Deliver(c, i), 3));
                }
            }
        }
        if self.rs.has_work() {
            out.push((Move::Work(0), 4));
        }
        if self.dc.has_work() {
            out.push((Move::Work(1), 2));
        }
        if self.sched.has_work() {
            out.push((Move::Work(2), 4));
        }
        if self.kubelets.has_work(self.now_ms) {
            out.push((Move::Kubelet, 3));
        }
        if self.gc.has_work() {
            out.push((Move::Gc, 2));
        }
        if !out.is_empty() {
            out.push((Move::Tick, 2));
        }
        out
    }

    fn tick(&mut self) {
        self.now_ms += self.rng.gen_range(10..400);
    }

    fn perform(&mut self, m: Move, chaos: bool) -> Result<(), Violation> {
        match m {
            Move::Deliver(0, i) => self.rs.deliver(i, &self.api),
            Move::Deliver(1, i) => self.dc.deliver(i, &self.api),
            Move::Deliver(_, i) => self.sched.deliver(i, &self.api),
            Move::Work(0) => self
                .rs
                .work(&mut env!(self, chaos), self.cores.replica_set.as_mut())?,
            Move::Work(1) => self
                .dc
                .work(&mut env!(self, chaos), self.cores.deployment.as_mut()),
            Move::Work(_) => self.sched.work(&mut env!(self, chaos)),
            Move::Kubelet => self.kubelets.work(&mut env!(self, false)),
            Move::Gc => self.gc.work(&mut env!(self, chaos)),
            Move::Tick => self.tick(),
        }
        Ok(())
    }

    /// The faults of one step: restarts, relists, node failures.
    fn faults(&mut self) -> Result<(), Violation> {
        let f = &self.config.faults;
        let (restart, relist, node_failure) = (f.restart, f.relist, f.node_failure);
        if restart > 0.0 && self.rng.gen_bool(restart) {
            self.stats.restarts += 1;
            let which = self.rng.gen_range(0..3);
            let what = match which {
                0 => {
                    self.rs = ReplicaSets::start(
                        &self.api,
                        self.config.quirks.replicaset_forgets_failed_writes,
                    );
                    self.cores.replica_set.restarted();
                    "replicaset controller"
                }
                1 => {
                    self.dc = Deployments::start(
                        &self.api,
                        self.config.quirks.deployment_drops_held_pokes,
                    );
                    self.cores.deployment.restarted();
                    "deployment controller"
                }
                _ => {
                    self.sched = Scheduler::start(
                        &self.api,
                        self.cores.schedule,
                        self.config.quirks.scheduler_retries_gone_pods,
                    );
                    "scheduler"
                }
            };
            let line = format!("fault: {what} restarts");
            self.trace.line(self.step, self.now_ms, line);
        }
        if relist > 0.0 && self.rng.gen_bool(relist) {
            self.stats.relists += 1;
            let (c, watches) = match self.rng.gen_range(0..3) {
                0 => (0, 2),
                1 => (1, 3),
                _ => (2, 2),
            };
            let i = self.rng.gen_range(0..watches);
            match c {
                0 => self.rs.relist(i, &self.api),
                1 => self.dc.relist(i, &self.api),
                _ => self.sched.relist(i, &self.api),
            }
            let line = format!("fault: watch {i} of controller {c} relists");
            self.trace.line(self.step, self.now_ms, line);
        }
        if node_failure > 0.0 && self.rng.gen_bool(node_failure) {
            let up: Vec<String> = self
                .api
                .list(Kind::Node)
                .map(|n| navarch_logic::meta::name(n).to_string())
                .filter(|n| !self.kubelets.down.contains_key(n))
                .collect();
            // One node stays up.
            if up.len() > 1 {
                self.stats.node_failures += 1;
                let name = up[self.rng.gen_range(0..up.len())].clone();
                let until = self.now_ms + self.rng.gen_range(2_000..20_000);
                self.kubelets.fail(&mut env!(self, false), &name, until);
            }
        }
        Ok(())
    }
}
