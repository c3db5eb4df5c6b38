//! The chaos run's fault schedule: drawn from one seed before the run starts (so a seed
//! replays it exactly), one fault at a time, each healed before the next, and the QUIC fault
//! rules that cut or slow the link between two named processes.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

/// A family of faults, as `--faults` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Kill a random actor under a controller's path (the kill switch); its supervisor
    /// restarts it.
    Actors,
    /// SIGKILL a master or node process, and start it again after a while.
    Kill,
    /// SIGSTOP a master or node process, and SIGCONT it after a while.
    Pause,
    /// Cut the QUIC link between two processes, both ways or one way.
    Partition,
    /// Delay every message on the QUIC link between two processes.
    Delay,
}

/// A process of the chaos cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "role", content = "index")]
pub(crate) enum Target {
    Master(usize),
    Node(usize),
}

impl Target {
    /// The process name (`m1`, `n2`): the masters' member names and the nodes' names.
    pub(crate) fn name(self) -> String {
        match self {
            Target::Master(i) => format!("m{}", i + 1),
            Target::Node(i) => format!("n{}", i + 1),
        }
    }

    /// The name the other side's fault layer knows this process by: a master's member name
    /// (its certificate CN and its peer name), a node's certificate CN (its node name is
    /// `node_prefix` and its process name).
    pub(crate) fn peer_name(self, node_prefix: &str) -> String {
        match self {
            Target::Master(_) => self.name(),
            Target::Node(_) => format!("system:node:{node_prefix}{}", self.name()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One fault of the schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub(crate) enum Fault {
    /// On a master (whichever's control plane is active; `Target::Master(0)` stands for it):
    /// kill a random running actor under `/master/<it>/controllers/<under>`, or that
    /// controller itself when it has no actors under it. On a node: a random actor under
    /// `/node/<name>/<under>` (its pods' actors, its proxy's), through a master.
    KillActor { on: Target, under: String },
    /// SIGKILL the process; start it again after `down`.
    KillProcess {
        target: Target,
        #[serde(with = "millis")]
        down: Duration,
    },
    /// SIGSTOP the process; SIGCONT it after `paused`.
    Pause {
        target: Target,
        #[serde(with = "millis")]
        paused: Duration,
    },
    /// Cut the link between `a` (always a master) and `b`: both ways, or only `a`'s
    /// messages to `b` with `one_way`.
    Partition {
        a: Target,
        b: Target,
        one_way: bool,
        #[serde(with = "millis")]
        lasting: Duration,
    },
    /// Delay every message between master `a` and `b` by `delay`.
    Delay {
        a: Target,
        b: Target,
        #[serde(with = "millis")]
        delay: Duration,
        #[serde(with = "millis")]
        lasting: Duration,
    },
}

mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl Fault {
    pub(crate) fn kind(&self) -> FaultKind {
        match self {
            Fault::KillActor { .. } => FaultKind::Actors,
            Fault::KillProcess { .. } => FaultKind::Kill,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Delay { .. } => FaultKind::Delay,
        }
    }

    /// How long the fault holds before it is healed (zero: an actor kill heals itself).
    pub(crate) fn holds(&self) -> Duration {
        match self {
            Fault::KillActor { .. } => Duration::ZERO,
            Fault::KillProcess { down, .. } => *down,
            Fault::Pause { paused, .. } => *paused,
            Fault::Partition { lasting, .. } | Fault::Delay { lasting, .. } => *lasting,
        }
    }

    /// The fault rules to install, as (master index, rule) pairs for `/debug/faults`, for a
    /// partition or a delay.
    pub(crate) fn rules(&self, node_prefix: &str) -> Vec<(usize, Value)> {
        let rule = |peer: Target, direction: &str, fault: Value| json!({"peer": peer.peer_name(node_prefix), "direction": direction, "fault": fault});
        let on = |t: Target| match t {
            Target::Master(i) => Some(i),
            Target::Node(_) => None,
        };
        let mut out = Vec::new();
        match self {
            Fault::Partition { a, b, one_way, .. } => {
                let cut = json!({"kind": "cut"});
                let (first, second) = if *one_way {
                    ("outbound", "inbound")
                } else {
                    ("both", "both")
                };
                if let Some(i) = on(*a) {
                    // A node's link is the node's own connection: the master swallows what
                    // the node sends (one way) or everything (both ways).
                    let dir = if matches!(b, Target::Node(_)) && *one_way {
                        "inbound"
                    } else {
                        first
                    };
                    out.push((i, rule(*b, dir, cut.clone())));
                }
                if let Some(j) = on(*b) {
                    out.push((j, rule(*a, second, cut)));
                }
            }
            Fault::Delay { a, b, delay, .. } => {
                let d = json!({"kind": "delay", "millis": delay.as_millis() as u64});
                if let Some(i) = on(*a) {
                    out.push((i, rule(*b, "both", d.clone())));
                }
                if let Some(j) = on(*b) {
                    out.push((j, rule(*a, "both", d)));
                }
            }
            _ => {}
        }
        out
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillActor {
                on: Target::Master(_),
                under,
            } => write!(
                f,
                "kill an actor under the active master's controllers/{under}"
            ),
            Fault::KillActor { on, under } => write!(f, "kill an actor under {on}'s {under}"),
            Fault::KillProcess { target, down } => write!(f, "SIGKILL {target}, down {down:?}"),
            Fault::Pause { target, paused } => write!(f, "SIGSTOP {target} for {paused:?}"),
            Fault::Partition {
                a,
                b,
                one_way,
                lasting,
            } => {
                let how = if *one_way { "->" } else { "<->" };
                write!(f, "partition {a} {how} {b} for {lasting:?}")
            }
            Fault::Delay {
                a,
                b,
                delay,
                lasting,
            } => write!(f, "delay {a} <-> {b} by {delay:?} for {lasting:?}"),
        }
    }
}

/// A fault and when it starts, from the start of the fault phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Planned {
    #[serde(with = "millis")]
    pub at: Duration,
    #[serde(flatten)]
    pub fault: Fault,
}

/// What a schedule is drawn for.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    pub kinds: Vec<FaultKind>,
    /// The mean quiet time between one fault's heal and the next fault.
    pub gap: Duration,
    pub masters: usize,
    pub nodes: usize,
}

/// The controllers' paths an actor kill picks from (the per-object actors live under them).
const ACTOR_TARGETS: &[&str] = &[
    "deployment",
    "replicaset",
    "scheduler",
    "garbage-collector",
    "node",
    "endpoints",
    "pod-garbage-collector",
    "namespace",
    "node-ipam-controller",
];

/// A node agent's paths an actor kill picks from.
const NODE_ACTOR_TARGETS: &[&str] = &["kubelet/pod", "proxy/serviceport"];

/// Draws the schedule: faults one after the other, each healed before the next, none
/// starting after `duration` (a fault that starts near the end still holds its full time).
pub(crate) fn schedule(plan: &Plan) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut out = Vec::new();
    if plan.kinds.is_empty() || plan.masters == 0 {
        return out;
    }
    let ms = |lo: u64, hi: u64, rng: &mut StdRng| Duration::from_millis(rng.gen_range(lo..=hi));
    let gap_ms = plan.gap.as_millis().max(1) as u64;
    let mut at = ms(gap_ms / 2, gap_ms * 3 / 2, &mut rng);
    while at < plan.duration {
        let kind = plan.kinds[rng.gen_range(0..plan.kinds.len())];
        let process = |rng: &mut StdRng| {
            let i = rng.gen_range(0..plan.masters + plan.nodes);
            if i < plan.masters {
                Target::Master(i)
            } else {
                Target::Node(i - plan.masters)
            }
        };
        // A link: a master and another master or a node.
        let link = |rng: &mut StdRng| {
            let a = rng.gen_range(0..plan.masters);
            let mut b = process(rng);
            while b == Target::Master(a) {
                b = process(rng);
            }
            (Target::Master(a), b)
        };
        let fault = match kind {
            FaultKind::Actors if plan.nodes > 0 && rng.gen_bool(1.0 / 3.0) => Fault::KillActor {
                on: Target::Node(rng.gen_range(0..plan.nodes)),
                under: NODE_ACTOR_TARGETS[rng.gen_range(0..NODE_ACTOR_TARGETS.len())].to_string(),
            },
            FaultKind::Actors => Fault::KillActor {
                on: Target::Master(0),
                under: ACTOR_TARGETS[rng.gen_range(0..ACTOR_TARGETS.len())].to_string(),
            },
            FaultKind::Kill => Fault::KillProcess {
                target: process(&mut rng),
                down: ms(500, 4000, &mut rng),
            },
            FaultKind::Pause => Fault::Pause {
                target: process(&mut rng),
                paused: ms(500, 4000, &mut rng),
            },
            FaultKind::Partition => {
                let (a, b) = link(&mut rng);
                Fault::Partition {
                    a,
                    b,
                    one_way: rng.gen_bool(0.5),
                    lasting: ms(1000, 6000, &mut rng),
                }
            }
            FaultKind::Delay => {
                let (a, b) = link(&mut rng);
                Fault::Delay {
                    a,
                    b,
                    delay: ms(20, 400, &mut rng),
                    lasting: ms(1000, 6000, &mut rng),
                }
            }
        };
        let next = at + fault.holds() + ms(gap_ms / 2, gap_ms * 3 / 2, &mut rng);
        out.push(Planned { at, fault });
        at = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan {
            seed,
            duration: Duration::from_secs(600),
            kinds: vec![
                FaultKind::Actors,
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::Partition,
                FaultKind::Delay,
            ],
            gap: Duration::from_secs(3),
            masters: 3,
            nodes: 2,
        }
    }

    #[test]
    fn one_seed_is_one_schedule() {
        assert_eq!(schedule(&plan(7)), schedule(&plan(7)));
        assert_ne!(schedule(&plan(7)), schedule(&plan(8)));
    }

    #[test]
    fn faults_follow_one_another_within_the_duration_and_cover_every_kind() {
        let s = schedule(&plan(42));
        assert!(s.len() > 50, "{} faults in ten minutes", s.len());
        for pair in s.windows(2) {
            assert!(pair[0].at + pair[0].fault.holds() < pair[1].at, "{pair:?}");
        }
        assert!(s.iter().all(|p| p.at < Duration::from_secs(600)));
        for kind in plan(42).kinds {
            assert!(
                s.iter().any(|p| p.fault.kind() == kind),
                "{kind:?} never drawn"
            );
        }
        // Links always start at a master and never loop back to it.
        for p in &s {
            if let Fault::Partition { a, b, .. } | Fault::Delay { a, b, .. } = &p.fault {
                assert!(matches!(a, Target::Master(_)));
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn only_the_asked_kinds_are_drawn() {
        let mut p = plan(1);
        p.kinds = vec![FaultKind::Pause];
        assert!(schedule(&p)
            .iter()
            .all(|f| f.fault.kind() == FaultKind::Pause));
        p.kinds.clear();
        assert!(schedule(&p).is_empty());
    }

    #[test]
    fn partitions_become_rules_on_the_masters_of_the_link() {
        let both = Fault::Partition {
            a: Target::Master(0),
            b: Target::Master(2),
            one_way: false,
            lasting: Duration::from_secs(1),
        };
        assert_eq!(
            both.rules(""),
            vec![
                (
                    0,
                    json!({"peer": "m3", "direction": "both", "fault": {"kind": "cut"}})
                ),
                (
                    2,
                    json!({"peer": "m1", "direction": "both", "fault": {"kind": "cut"}})
                ),
            ]
        );
        let one_way = Fault::Partition {
            a: Target::Master(1),
            b: Target::Master(0),
            one_way: true,
            lasting: Duration::from_secs(1),
        };
        assert_eq!(
            one_way.rules(""),
            vec![
                (
                    1,
                    json!({"peer": "m1", "direction": "outbound", "fault": {"kind": "cut"}})
                ),
                (
                    0,
                    json!({"peer": "m2", "direction": "inbound", "fault": {"kind": "cut"}})
                ),
            ]
        );
        let node = Fault::Delay {
            a: Target::Master(0),
            b: Target::Node(1),
            delay: Duration::from_millis(50),
            lasting: Duration::from_secs(1),
        };
        assert_eq!(
            node.rules("x-"),
            vec![(
                0,
                json!({"peer": "system:node:x-n2", "direction": "both", "fault": {"kind": "delay", "millis": 50}})
            )]
        );
    }
}
