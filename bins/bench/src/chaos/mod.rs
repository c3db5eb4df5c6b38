//! `navctl chaos run`: starts three masters and two node agents on loopback, drives a
//! workload (registers read and written by several clients, appends, Deployments scaled,
//! rolled out and rolled back, watchers), injects the faults of a schedule drawn from one
//! seed (actor kills, SIGKILL and SIGSTOP of processes, partitions and delays of QUIC links),
//! then heals, waits for the cluster to converge and checks the invariants (see `check`).
//! Prints a report (a table, or JSON with `--json`) and fails on any violation, naming the
//! seed that replays the schedule. `navctl chaos sim` explores `navarch-sim`'s schedules.

mod check;
mod faults;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use self::check::{RunningContainer, Violation};
pub use self::faults::FaultKind;
use self::faults::{Fault, Plan, Planned, Target};
use self::workload::{Api, Outcome, APPS_NS, DATA_NS, INITIAL};
use crate::failover::Cluster as _;
use crate::navarch::NavarchCluster;
use crate::procs::{self, wait_for};

/// `navctl chaos ...`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ChaosCommand {
    /// Start 3 masters and 2 nodes on loopback, drive a workload, inject faults from a seeded
    /// schedule, heal, and check that nothing acknowledged was lost and the cluster converged.
    Run(ChaosRunArgs),
    /// Explore schedules of the deterministic simulation of the controllers' and the
    /// scheduler's pure cores (a simulated API, caches, clock, kubelets and faults from one
    /// seed); prints the seed of every failing schedule (non-zero exit).
    Sim(ChaosSimArgs),
}

/// Flags of `navctl chaos sim`.
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosSimArgs {
    /// The seed of the first schedule (schedule i's seed derives from it; a failing
    /// schedule's printed seed replays it alone with --schedules 1). Default: random.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How many schedules to run.
    #[arg(long, default_value_t = 1000)]
    pub schedules: u64,
    /// Steps of each schedule with faults and the workload on.
    #[arg(long)]
    pub steps: Option<u32>,
    /// Let the workload create Recreate Deployments too (off by default, as the
    /// simulation's own default).
    #[arg(long)]
    pub recreate: bool,
    /// Print each failing schedule's trace tail too.
    #[arg(long)]
    pub verbose: bool,
}

/// Flags of `navctl chaos run`.
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosRunArgs {
    /// How long faults are injected: `90s`, `2m`, `30m`, `1h`.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub duration: Duration,
    /// The seed of the fault schedule and the workload's choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The fault families to draw from.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "actors,kill,pause,partition,delay"
    )]
    pub faults: Vec<FaultKind>,
    /// Mean quiet time between one fault's heal and the next fault.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub gap: Duration,
    /// How long the cluster may take to converge once faults stop.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub converge_timeout: Duration,
    /// Print the report as JSON (one document on stdout).
    #[arg(long)]
    pub json: bool,
    /// Only print the fault schedule the seed draws, and exit.
    #[arg(long)]
    pub plan: bool,
    /// The masters' --cluster-cidr (pod ranges stay on this machine).
    #[arg(long, default_value = "10.42.240.0/20")]
    pub cluster_cidr: String,
    /// The masters' and nodes' --service-cluster-ip-range.
    #[arg(long, default_value = "10.43.240.0/24")]
    pub service_cluster_ip_range: String,
    /// The nodes' names are this and n1, n2 (names are machine-wide: their pod bridges and
    /// containers are named after them, so concurrent runs need different prefixes).
    #[arg(long, default_value = "chaos-")]
    pub node_prefix: String,
    /// Where the data dirs and logs go (a fresh temporary dir in it).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data dirs and logs afterwards.
    #[arg(long)]
    pub keep: bool,
}

const MASTERS: usize = 3;
const NODES: usize = 2;
const REGISTERS: usize = 3;
const REGISTER_CLIENTS: usize = 3;
const APPENDERS: usize = 2;
const DEPLOYMENTS: usize = 3;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Bounds on the flags, so a typo cannot start a runaway run.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 2m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Runs a chaos command; exits non-zero (an error) on any violation.
pub async fn run(cmd: &ChaosCommand) -> Result<()> {
    match cmd {
        ChaosCommand::Sim(args) => sim(args),
        ChaosCommand::Run(args) => {
            validate(args)?;
            let seed = args.seed.unwrap_or_else(rand::random);
            let plan = Plan {
                seed,
                duration: args.duration,
                kinds: args.faults.clone(),
                gap: args.gap,
                masters: MASTERS,
                nodes: NODES,
            };
            let schedule = faults::schedule(&plan);
            if args.plan {
                for p in &schedule {
                    println!("{:>9.3}s  {}", p.at.as_secs_f64(), p.fault);
                }
                return Ok(());
            }
            crate::in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                let report = run_chaos(args, seed, schedule, &root).await?;
                report.print(args.json)?;
                if !report.violations.is_empty() {
                    bail!(
                        "chaos run found {} violations; replay the fault schedule with --seed {seed}",
                        report.violations.len()
                    );
                }
                Ok(())
            })
            .await
        }
    }
}

fn sim(args: &ChaosSimArgs) -> Result<()> {
    if args.schedules == 0 || args.schedules > 10_000_000 {
        bail!("--schedules must be between 1 and 10000000");
    }
    if args.steps.is_some_and(|s| s == 0 || s > 1_000_000) {
        bail!("--steps must be between 1 and 1000000");
    }
    let mut config = navarch_sim::SimConfig {
        seed: args.seed.unwrap_or_else(rand::random),
        schedules: args.schedules,
        recreate: args.recreate,
        ..navarch_sim::SimConfig::default()
    };
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    let t = Instant::now();
    let exploration = navarch_sim::explore(&config);
    let secs = t.elapsed().as_secs_f64();
    if args.verbose {
        for f in &exploration.failures {
            println!("--- schedule {} (last steps) ---", f.seed);
            for line in &f.trace_tail {
                println!("  {line}");
            }
        }
    }
    println!("{exploration}");
    println!(
        "{:.1} s, {:.0} schedules per second",
        secs,
        args.schedules as f64 / secs.max(1e-9)
    );
    if !exploration.passed() {
        bail!(
            "{} of {} schedules broke an invariant (seeds above)",
            exploration.failures.len(),
            args.schedules
        );
    }
    Ok(())
}

fn validate(args: &ChaosRunArgs) -> Result<()> {
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        bail!("--duration must be between 1s and 24h");
    }
    if args.gap.is_zero() || args.gap > Duration::from_secs(3600) {
        bail!("--gap must be between 1s and 1h");
    }
    if args.node_prefix.len() > 20
        || !args
            .node_prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || args.node_prefix.starts_with('-')
    {
        bail!(
            "--node-prefix {:?} must be at most 20 lowercase letters, digits and '-', not starting with '-'",
            args.node_prefix
        );
    }
    if args.converge_timeout.is_zero() || args.converge_timeout > Duration::from_secs(3600) {
        bail!("--converge-timeout must be between 1s and 1h");
    }
    Ok(())
}

/// The run's figures and findings.
#[derive(Debug, Default, Serialize)]
struct Report {
    seed: u64,
    duration_seconds: u64,
    faults: BTreeMap<String, usize>,
    /// Faults that found nothing to act on (e.g. an actor kill on a master with no active
    /// control plane at that instant).
    faults_without_target: usize,
    process_restarts: usize,
    /// Per fault kind: how long the victim took to be back (killed actors running again,
    /// restarted or resumed processes serving).
    recoveries: BTreeMap<String, Recovery>,
    actor_restarts: u64,
    leader_changes: usize,
    register_operations: usize,
    register_writes_acknowledged: usize,
    register_writes_unknown: usize,
    appends_acknowledged: usize,
    appends_unknown: usize,
    requests_failed: usize,
    deployments_scaled: usize,
    deployments_rolled_out: usize,
    deployments_rolled_back: usize,
    watch_events: usize,
    watch_reconnects: usize,
    watch_relists: usize,
    converge_seconds: Option<f64>,
    violations: Vec<Violation>,
}

/// Recovery times of one fault kind.
#[derive(Debug, Default, Serialize)]
struct Recovery {
    recovered: usize,
    not_recovered: usize,
    mean_ms: f64,
    max_ms: f64,
}

impl Recovery {
    fn add(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        self.mean_ms = (self.mean_ms * self.recovered as f64 + ms) / (self.recovered + 1) as f64;
        self.recovered += 1;
        self.max_ms = self.max_ms.max(ms);
    }
}

impl Report {
    fn print(&self, json: bool) -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        println!(
            "navctl chaos run: 3 masters and 2 nodes on loopback, {} s of faults, seed {}",
            self.duration_seconds, self.seed
        );
        println!("  faults injected:");
        for (k, n) in &self.faults {
            println!("    {k:<10} {n:>6}");
        }
        if !self.recoveries.is_empty() {
            println!("  recoveries (victim back after the fault):");
            for (k, r) in &self.recoveries {
                println!(
                    "    {k:<10} {:>6} recovered, mean {:.0} ms, max {:.0} ms, {} not within {RECOVERY_BOUND:?}",
                    r.recovered, r.mean_ms, r.max_ms, r.not_recovered
                );
            }
        }
        let rows: Vec<(&str, String)> = vec![
            (
                "faults without a target",
                self.faults_without_target.to_string(),
            ),
            ("process restarts", self.process_restarts.to_string()),
            (
                "actor restarts at the end (all processes)",
                self.actor_restarts.to_string(),
            ),
            ("leader changes seen", self.leader_changes.to_string()),
            (
                "register operations checked",
                self.register_operations.to_string(),
            ),
            (
                "register writes acknowledged / unknown",
                format!(
                    "{} / {}",
                    self.register_writes_acknowledged, self.register_writes_unknown
                ),
            ),
            (
                "appends acknowledged / unknown",
                format!("{} / {}", self.appends_acknowledged, self.appends_unknown),
            ),
            (
                "requests failed (refused, timed out)",
                self.requests_failed.to_string(),
            ),
            (
                "deployments scaled / rolled out / back",
                format!(
                    "{} / {} / {}",
                    self.deployments_scaled,
                    self.deployments_rolled_out,
                    self.deployments_rolled_back
                ),
            ),
            (
                "watch events / reconnects / relists",
                format!(
                    "{} / {} / {}",
                    self.watch_events, self.watch_reconnects, self.watch_relists
                ),
            ),
            (
                "time to converge after faults",
                self.converge_seconds
                    .map(|s| format!("{s:.1} s"))
                    .unwrap_or_else(|| "did not converge".into()),
            ),
            ("violations", self.violations.len().to_string()),
        ];
        for (k, v) in rows {
            println!("  {k:<42} {v}");
        }
        for v in &self.violations {
            println!("  VIOLATION {v}");
        }
        Ok(())
    }
}

/// Resets the nodes' machines state (containers, pod networks) when the run ends however it
/// ends; declared before the cluster so that it runs after the processes are killed.
struct NodeReset {
    bin: PathBuf,
    nodes: Vec<(String, PathBuf)>,
}

impl Drop for NodeReset {
    fn drop(&mut self) {
        for (name, dir) in &self.nodes {
            if !dir.exists() {
                continue;
            }
            let out = Command::new(&self.bin)
                .args(["reset", "--name", name, "--data-dir"])
                .arg(dir)
                .env("RUST_LOG", "warn")
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "navarch-node reset of {name} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("navarch-node reset of {name} did not run: {e}"),
            }
        }
    }
}

async fn run_chaos(
    args: &ChaosRunArgs,
    seed: u64,
    schedule: Vec<Planned>,
    root: &Path,
) -> Result<Report> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let node_bin = procs::sibling_binary("navarch-node")?;
    let node_names: Vec<String> = (0..NODES)
        .map(|i| format!("{}{}", args.node_prefix, Target::Node(i).name()))
        .collect();
    let _reset = NodeReset {
        bin: node_bin.clone(),
        nodes: node_names
            .iter()
            .map(|n| (n.clone(), root.join(n)))
            .collect(),
    };
    let extra = [
        "--cluster-cidr",
        args.cluster_cidr.as_str(),
        "--service-cluster-ip-range",
        args.service_cluster_ip_range.as_str(),
    ];
    let mut cluster = NavarchCluster::start_with(&master_bin, root, "warn", &extra)?;
    cluster.connect_ready(STARTUP_TIMEOUT).await?;
    let http = crate::https_client(cluster.admin(), Duration::from_secs(3))?;
    let watch_http = crate::https_client(cluster.admin(), Duration::from_secs(3600))?;
    let apis = cluster.api_addrs();
    let api = Api {
        http: http.clone(),
        masters: apis.clone(),
    };
    let (token, ca_hash, masters) = cluster.node_join()?;
    for (i, name) in node_names.iter().enumerate() {
        let mut cmd = Command::new(&node_bin);
        cmd.args(["--name", name, "--master", &masters, "--token", &token])
            .args(["--ca-hash", &ca_hash, "--kubelet-port", "0"])
            .args(["--node-cluster-cidr", &args.cluster_cidr])
            .args(["--service-cluster-ip-range", &args.service_cluster_ip_range])
            // Faults, not this machine's disk, are what the run is about.
            .args(["--disk-pressure-percent", "0"])
            .args(["--node-lease-renew-seconds", "2"])
            .arg("--data-dir")
            .arg(root.join(name))
            .env("RUST_LOG", "warn");
        let process = Target::Node(i).name();
        cluster.spawn_extra(&process, cmd, &root.join(format!("{process}.log")))?;
    }
    wait_for(STARTUP_TIMEOUT, "both nodes Ready", || {
        let http = &http;
        let api0 = apis[0];
        async move {
            Ok(crate::scheduler::ready_nodes(http, api0)
                .await
                .ok()
                .filter(|n| *n >= NODES)
                .map(|_| ()))
        }
    })
    .await?;
    setup(&api, apis[0]).await?;
    let keys: Vec<String> = (0..REGISTERS).map(|i| format!("reg-{i}")).collect();
    let names = workload::deployment_names(DEPLOYMENTS);
    wait_for(STARTUP_TIMEOUT, "the first Deployments available", || {
        let api = &api;
        let names = &names;
        async move { Ok(converged(api, names).await.is_ok().then_some(())) }
    })
    .await?;
    tracing::info!(
        seed,
        faults = schedule.len(),
        "cluster ready; starting the workload"
    );

    let t0 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (data_until, data_until_rx) = watch::channel(None::<u64>);
    let (pods_until, pods_until_rx) = watch::channel(None::<u64>);
    let mut registers = Vec::new();
    for c in 0..REGISTER_CLIENTS {
        registers.push(tokio::spawn(workload::register_client(
            c,
            api.clone(),
            keys.clone(),
            seed.wrapping_add(100 + c as u64),
            t0,
            stop_rx.clone(),
        )));
    }
    let mut appenders = Vec::new();
    for c in 0..APPENDERS {
        appenders.push(tokio::spawn(workload::append_client(
            c,
            api.clone(),
            seed.wrapping_add(200 + c as u64),
            stop_rx.clone(),
        )));
    }
    let driver = tokio::spawn(workload::deployment_driver(
        api.clone(),
        names.clone(),
        seed.wrapping_add(300),
        stop_rx.clone(),
    ));
    let data_watch = tokio::spawn(workload::watcher(
        api.clone(),
        watch_http.clone(),
        format!("/api/v1/namespaces/{DATA_NS}/configmaps"),
        data_until_rx,
    ));
    let pod_watch = tokio::spawn(workload::watcher(
        api.clone(),
        watch_http.clone(),
        format!("/api/v1/namespaces/{APPS_NS}/pods"),
        pods_until_rx,
    ));
    let leaders = tokio::spawn(leader_changes(api.clone(), stop_rx.clone()));

    let mut report = Report {
        seed,
        duration_seconds: args.duration.as_secs(),
        ..Report::default()
    };
    for kind in &args.faults {
        report.faults.insert(kind_name(*kind), 0);
    }
    let start = tokio::time::Instant::now();
    for planned in &schedule {
        tokio::time::sleep_until(start + planned.at).await;
        tracing::info!(at = ?planned.at, fault = %planned.fault, "fault");
        match inject(&mut cluster, &api, &planned.fault, &args.node_prefix).await {
            Ok(Injected::Applied(recovery)) => {
                let kind = kind_name(planned.fault.kind());
                *report.faults.entry(kind.clone()).or_default() += 1;
                if matches!(
                    planned.fault,
                    Fault::KillActor { .. } | Fault::KillProcess { .. } | Fault::Pause { .. }
                ) {
                    let r = report.recoveries.entry(kind).or_default();
                    match recovery {
                        Some(d) => r.add(d),
                        None => r.not_recovered += 1,
                    }
                }
            }
            Ok(Injected::NoTarget) => report.faults_without_target += 1,
            Err(e) => {
                heal_all(&mut cluster, &api).await;
                return Err(e.context(format!("inject {}", planned.fault)));
            }
        }
        if matches!(planned.fault, Fault::KillProcess { .. }) {
            report.process_restarts += 1;
        }
    }
    tokio::time::sleep_until(start + args.duration).await;
    heal_all(&mut cluster, &api).await;
    stop_tx.send_replace(true);
    let mut history = Vec::new();
    let mut acknowledged = Vec::new();
    for r in registers {
        let rec = r.await.context("a register client")?;
        report.requests_failed += rec.failed;
        history.extend(rec.history);
        acknowledged.extend(rec.acknowledged);
    }
    let mut appended = workload::AppendRecord::default();
    for a in appenders {
        let rec = a.await.context("an appender")?;
        report.requests_failed += rec.failed;
        appended.acknowledged.extend(rec.acknowledged);
        appended.maybe.extend(rec.maybe);
        appended.revisions.extend(rec.revisions);
    }
    let drove = driver.await.context("the deployment driver")?;
    report.requests_failed += drove.failed;
    report.deployments_scaled = drove.scaled;
    report.deployments_rolled_out = drove.rolled_out;
    report.deployments_rolled_back = drove.rolled_back;

    // Converge: every Deployment at its spec, every process and actor up.
    let healed = tokio::time::Instant::now();
    let convergence = wait_for(args.converge_timeout, "the Deployments to converge", || {
        let api = &api;
        let names = &names;
        async move { Ok(converged(api, names).await.is_ok().then_some(())) }
    })
    .await;
    match convergence {
        Ok(()) => report.converge_seconds = Some(healed.elapsed().as_secs_f64()),
        Err(_) => {
            let why = converged(&api, &names)
                .await
                .err()
                .unwrap_or_else(|| "converged just after the deadline".into());
            report.violations.push(Violation {
                invariant: "deployments-converged",
                detail: format!(
                    "not within {:?} of the last fault: {why}",
                    args.converge_timeout
                ),
            });
        }
    }

    // A last read of every register, now that nothing is faulty.
    for key in &keys {
        let call = t0.elapsed().as_micros() as u64;
        if let Some(v) = api.get_any(0, &workload::register_path(key)).await {
            history.push(check::Operation {
                client: REGISTER_CLIENTS,
                key: key.clone(),
                op: check::RegisterOp::Read(v["data"]["v"].as_str().map(str::to_string)),
                call,
                ret: t0.elapsed().as_micros() as u64,
            });
        }
    }
    report.register_operations = history.len();
    report.register_writes_acknowledged = history
        .iter()
        .filter(|o| matches!(o.op, check::RegisterOp::Write(_)) && o.ret != check::UNKNOWN)
        .count();
    report.register_writes_unknown = history.iter().filter(|o| o.ret == check::UNKNOWN).count();
    let initial: BTreeMap<String, Option<String>> = keys
        .iter()
        .map(|k| (k.clone(), Some(INITIAL.to_string())))
        .collect();
    report
        .violations
        .extend(check::linearizable(&history, &initial));

    let listed = list_names(&api, "chaos=append").await?;
    report.appends_acknowledged = appended.acknowledged.len();
    report.appends_unknown = appended.maybe.len();
    report.violations.extend(check::appends_present(
        &appended.acknowledged,
        &appended.maybe,
        &listed,
    ));

    // The watchers must deliver a last write (a fence after every client stopped) and the
    // last change of any pod, then their streams are checked.
    let fence = workload::register_object("fence", "fence");
    let fence_rv = match api
        .call(
            0,
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{DATA_NS}/configmaps"),
            Some(&fence),
        )
        .await
    {
        Outcome::Answer(201, v) => v["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .context("the fence's resourceVersion")?,
        _ => bail!("could not write the fence ConfigMap after healing"),
    };
    let pods_rv = api
        .get_any(0, &format!("/api/v1/namespaces/{APPS_NS}/pods"))
        .await
        .context("list the pods after healing")?["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p["metadata"]["resourceVersion"]
                .as_str()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    data_until.send_replace(Some(fence_rv));
    pods_until.send_replace(Some(pods_rv));
    let watched = tokio::time::timeout(Duration::from_secs(60), async {
        let data = data_watch.await;
        let pods = pod_watch.await;
        (data, pods)
    })
    .await;
    match watched {
        Ok((Ok(data), Ok(pods))) => {
            let mut acked = acknowledged.clone();
            acked.extend(appended.revisions.iter().cloned());
            let (v, s) = check::watch_complete("configmaps", &data.segments, &acked);
            report.violations.extend(v);
            let (v, p) = check::watch_complete("pods", &pods.segments, &[]);
            report.violations.extend(v);
            report.watch_events = s.events + p.events;
            report.watch_reconnects = s.segments + p.segments;
            report.watch_relists = data.relists + pods.relists;
            report.violations.extend(check::bound_once(&pods.bindings));
        }
        _ => report.violations.push(Violation {
            invariant: "watch-caught-up",
            detail: format!(
                "a watcher did not deliver revision {fence_rv} (configmaps) or {pods_rv} (pods) within 60 s"
            ),
        }),
    }
    stop_tx.send_replace(true);
    report.leader_changes = leaders.await.unwrap_or(0);

    // Containers: none orphaned, none doubled, each on its pod's node (the nodes clean up
    // after deleted pods on their own: give them the convergence bound).
    let containers = wait_for(
        args.converge_timeout,
        "the nodes' containers to match the pods",
        || {
            let api = &api;
            let nodes = &node_names;
            async move {
                let Some(pods) = pod_records(api).await else {
                    return Ok(None);
                };
                let running = running_containers(root, nodes);
                let v = check::containers_match(&running, &pods);
                Ok(v.is_empty().then_some(()))
            }
        },
    )
    .await;
    if containers.is_err() {
        let pods = pod_records(&api).await.unwrap_or_default();
        report.violations.extend(check::containers_match(
            &running_containers(root, &node_names),
            &pods,
        ));
    }
    // Actors: none failed or left restarting.
    let dead = wait_for(Duration::from_secs(60), "every actor running", || {
        let api = &api;
        let nodes = &node_names;
        async move { Ok(dead_actors(api, nodes).await.filter(|d| d.is_empty())) }
    })
    .await;
    if dead.is_err() {
        for d in dead_actors(&api, &node_names).await.unwrap_or_default() {
            report.violations.push(Violation {
                invariant: "no-dead-actors",
                detail: d,
            });
        }
    }
    report.actor_restarts = actor_restarts(&api, &node_names).await;
    cluster.check_running()?;
    cluster.stop();
    Ok(report)
}

fn kind_name(k: FaultKind) -> String {
    match k {
        FaultKind::Actors => "actors",
        FaultKind::Kill => "kill",
        FaultKind::Pause => "pause",
        FaultKind::Partition => "partition",
        FaultKind::Delay => "delay",
    }
    .to_string()
}

/// The namespaces, the registers at their initial value and the Deployments.
async fn setup(api: &Api, api0: SocketAddr) -> Result<()> {
    for ns in [DATA_NS, APPS_NS] {
        crate::scheduler::ensure_namespace(&api.http, api0, ns).await?;
    }
    for i in 0..REGISTERS {
        let key = format!("reg-{i}");
        let path = format!("/api/v1/namespaces/{DATA_NS}/configmaps");
        must(
            api,
            reqwest::Method::POST,
            &path,
            &workload::register_object(&key, INITIAL),
        )
        .await?;
    }
    for name in workload::deployment_names(DEPLOYMENTS) {
        let path = format!("/apis/apps/v1/namespaces/{APPS_NS}/deployments");
        must(
            api,
            reqwest::Method::POST,
            &path,
            &workload::deployment(&name, 2, 1),
        )
        .await?;
    }
    Ok(())
}

async fn must(api: &Api, method: reqwest::Method, path: &str, body: &Value) -> Result<()> {
    match api.call(0, method, path, Some(body)).await {
        Outcome::Answer(code, _) if (200..300).contains(&code) => Ok(()),
        Outcome::Answer(code, v) => bail!("{path}: {code} {}", v["message"]),
        _ => bail!("{path}: no answer"),
    }
}

/// Ok when every Deployment has converged to its spec: the status observed the current
/// generation, exactly `replicas` pods exist, all updated to the current template and ready.
async fn converged(api: &Api, names: &[String]) -> Result<(), String> {
    let pods = api
        .get_any(0, &format!("/api/v1/namespaces/{APPS_NS}/pods"))
        .await
        .ok_or("no master lists the pods")?;
    let pods = pods["items"].as_array().cloned().unwrap_or_default();
    for name in names {
        let d = api
            .get_any(
                0,
                &format!("/apis/apps/v1/namespaces/{APPS_NS}/deployments/{name}"),
            )
            .await
            .ok_or_else(|| format!("no master answers for deployment {name}"))?;
        let want = d["spec"]["replicas"].as_u64().unwrap_or(1);
        let s = &d["status"];
        let generation = d["metadata"]["generation"].as_u64().unwrap_or(0);
        if s["observedGeneration"].as_u64() < Some(generation) {
            return Err(format!(
                "deployment {name}: generation {generation} not observed"
            ));
        }
        for field in [
            "replicas",
            "updatedReplicas",
            "availableReplicas",
            "readyReplicas",
        ] {
            if s[field].as_u64().unwrap_or(0) != want {
                return Err(format!("deployment {name}: {field} {} of {want}", s[field]));
            }
        }
        let template_env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        let mine: Vec<&Value> = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == name.as_str())
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        if mine.len() as u64 != want {
            return Err(format!("deployment {name}: {} pods of {want}", mine.len()));
        }
        for p in mine {
            if &p["spec"]["containers"][0]["env"] != template_env {
                return Err(format!(
                    "deployment {name}: pod {} runs an old template",
                    p["metadata"]["name"]
                ));
            }
            let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            if !ready {
                return Err(format!(
                    "deployment {name}: pod {} not ready",
                    p["metadata"]["name"]
                ));
            }
        }
    }
    Ok(())
}

/// The names of the data namespace's ConfigMaps with `selector`.
async fn list_names(api: &Api, selector: &str) -> Result<Vec<String>> {
    let path = format!("/api/v1/namespaces/{DATA_NS}/configmaps?labelSelector={selector}");
    let v = api
        .get_any(0, &path)
        .await
        .context("list the appends through any master")?;
    Ok(v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

/// Every pod of the cluster as (uid, namespace/name, node).
async fn pod_records(api: &Api) -> Option<Vec<check::PodRecord>> {
    let v = api.get_any(0, "/api/v1/pods").await?;
    Some(
        v["items"]
            .as_array()?
            .iter()
            .map(|p| {
                let m = &p["metadata"];
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (
                    s(&m["uid"]),
                    format!("{}/{}", s(&m["namespace"]), s(&m["name"])),
                    s(&p["spec"]["nodeName"]),
                )
            })
            .collect(),
    )
}

/// The containers running on the nodes, from the process runtime's state on disk: a
/// container dir with a start record and no exit record whose process is still the one
/// started (pid and start time).
fn running_containers(root: &Path, nodes: &[String]) -> Vec<RunningContainer> {
    let mut out = Vec::new();
    for node in nodes {
        let dir = root.join(node).join("runtime/process/containers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let d = e.path();
            let read = |f: &str| -> Option<Value> {
                serde_json::from_slice(&std::fs::read(d.join(f)).ok()?).ok()
            };
            if d.join("exit.json").exists() {
                continue;
            }
            let (Some(spec), Some(started)) = (read("spec.json"), read("started.json")) else {
                continue;
            };
            let (Some(pid), Some(ticks)) =
                (started["pid"].as_i64(), started["pid_start_ticks"].as_u64())
            else {
                continue;
            };
            if start_ticks(pid) != Some(ticks) {
                continue;
            }
            let l = &spec["labels"];
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            out.push(RunningContainer {
                node: node.clone(),
                namespace: s("io.kubernetes.pod.namespace"),
                pod: s("io.kubernetes.pod.name"),
                uid: s("io.kubernetes.pod.uid"),
                container: s("io.kubernetes.container.name"),
                id: e.file_name().to_string_lossy().into_owned(),
            });
        }
    }
    out
}

/// A process's start time in clock ticks (`/proc/<pid>/stat` field 22).
fn start_ticks(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The actors of every master and node (through the first master that answers).
async fn all_actors(api: &Api, nodes: &[String]) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    for m in 0..api.masters.len() {
        let mut answer = None;
        for _ in 0..3 {
            if let Outcome::Answer(200, v) = api
                .call(m, reqwest::Method::GET, "/debug/actors", None)
                .await
            {
                answer = Some(v);
                break;
            }
        }
        out.extend(answer?.as_array()?.iter().cloned());
    }
    for n in nodes {
        let v = api.get_any(0, &format!("/debug/nodes/{n}/actors")).await?;
        out.extend(v.as_array()?.iter().cloned());
    }
    Some(out)
}

/// Actors that failed or are still waiting to restart.
async fn dead_actors(api: &Api, nodes: &[String]) -> Option<Vec<String>> {
    let actors = all_actors(api, nodes).await?;
    Some(
        actors
            .iter()
            .filter(|a| matches!(a["status"].as_str(), Some("failed" | "restarting")))
            .map(|a| {
                format!(
                    "{} is {} (last error: {})",
                    a["path"].as_str().unwrap_or("?"),
                    a["status"].as_str().unwrap_or("?"),
                    a["last_error"]
                )
            })
            .collect(),
    )
}

async fn actor_restarts(api: &Api, nodes: &[String]) -> u64 {
    all_actors(api, nodes)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["restarts"].as_u64())
        .sum()
}

/// Counts the changes of the leader the masters name, polled until `stop`.
async fn leader_changes(api: Api, mut stop: watch::Receiver<bool>) -> usize {
    let mut last: Option<String> = None;
    let mut changes = 0;
    while !*stop.borrow() {
        for m in 0..api.masters.len() {
            if let Outcome::Answer(200, v) = api
                .call(m, reqwest::Method::GET, "/debug/store", None)
                .await
            {
                if let Some(l) = v["leader"].as_str() {
                    if last.as_deref().is_some_and(|x| x != l) {
                        changes += 1;
                    }
                    last = Some(l.to_string());
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
    }
    changes
}

/// The master whose control plane is active, if one says so.
async fn active_master(api: &Api) -> Option<usize> {
    for m in 0..api.masters.len() {
        if let Outcome::Answer(200, v) = api
            .call(m, reqwest::Method::GET, "/debug/controlplane", None)
            .await
        {
            if v["active"] == true {
                return Some(m);
            }
        }
    }
    None
}

/// How a fault went: not applied (nothing to act on), or applied, with the time from its
/// heal (or, for an actor, its kill) until the victim was back, if it came back within
/// [`RECOVERY_BOUND`].
enum Injected {
    NoTarget,
    Applied(Option<Duration>),
}

/// How long a killed actor or restarted process may take to be back before the run counts
/// it as not recovered (convergence is checked after the run anyway).
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// Injects one fault and heals it after its time.
async fn inject(
    cluster: &mut NavarchCluster,
    api: &Api,
    fault: &Fault,
    node_prefix: &str,
) -> Result<Injected> {
    match fault {
        Fault::KillActor {
            on: Target::Master(_),
            under,
        } => {
            let Some(m) = active_master(api).await else {
                return Ok(Injected::NoTarget);
            };
            // A random actor under the controller (its per-object actors), or the controller
            // itself when it has none (the scheduler, the garbage collectors).
            let at = format!("/master/m{}/controllers/{under}", m + 1);
            let mut answer = None;
            for query in ["prefix", "path"] {
                let path = format!("/debug/kill?{query}={at}");
                if let Outcome::Answer(200, v) =
                    api.call(m, reqwest::Method::POST, &path, None).await
                {
                    answer = Some(v);
                    break;
                }
            }
            let Some(v) = answer else {
                return Ok(Injected::NoTarget);
            };
            let killed = v["killed"].as_str().unwrap_or_default().to_string();
            tracing::info!(%killed, "actor killed");
            let t = Instant::now();
            let back = wait_for(RECOVERY_BOUND, "the killed actor running again", || {
                let path = format!("/debug/actors?path={killed}");
                async move {
                    Ok(match api.call(m, reqwest::Method::GET, &path, None).await {
                        Outcome::Answer(200, a) => restarted(&a),
                        // Gone: its parent dropped it (the object it served was deleted).
                        Outcome::Answer(404, _) => Some(()),
                        _ => None,
                    })
                }
            })
            .await;
            Ok(Injected::Applied(back.ok().map(|_| t.elapsed())))
        }
        Fault::KillActor { on, under } => {
            let node = format!("{node_prefix}{on}");
            let path = format!("/debug/nodes/{node}/kill?prefix=/node/{node}/{under}");
            let mut answer = None;
            for m in 0..api.masters.len() {
                match api.call(m, reqwest::Method::POST, &path, None).await {
                    Outcome::Answer(200, v) => {
                        answer = Some((m, v));
                        break;
                    }
                    // Nothing to kill there now (no pod, no Service port).
                    Outcome::Answer(404, _) => return Ok(Injected::NoTarget),
                    _ => {}
                }
            }
            let Some((m, v)) = answer else {
                return Ok(Injected::NoTarget);
            };
            let killed = v["killed"].as_str().unwrap_or_default().to_string();
            tracing::info!(%killed, "node actor killed");
            let t = Instant::now();
            let back = wait_for(
                RECOVERY_BOUND,
                "the killed node actor running again",
                || {
                    let path = format!("/debug/nodes/{node}/actors?prefix={killed}");
                    let killed = &killed;
                    async move {
                        Ok(match api.call(m, reqwest::Method::GET, &path, None).await {
                            Outcome::Answer(200, list) => {
                                let mine = list.as_array().and_then(|l| {
                                    l.iter()
                                        .find(|a| a["path"].as_str() == Some(killed.as_str()))
                                });
                                match mine {
                                    Some(a) => restarted(a),
                                    None => Some(()),
                                }
                            }
                            _ => None,
                        })
                    }
                },
            )
            .await;
            Ok(Injected::Applied(back.ok().map(|_| t.elapsed())))
        }
        Fault::KillProcess { target, down } => {
            let name = target.name();
            cluster.procs().stop_one(&name, Signal::SIGKILL)?;
            tokio::time::sleep(*down).await;
            cluster.procs().restart(&name)?;
            Ok(Injected::Applied(
                process_back(api, *target, node_prefix).await,
            ))
        }
        Fault::Pause { target, paused } => {
            let name = target.name();
            cluster.procs().signal(&name, Signal::SIGSTOP)?;
            tokio::time::sleep(*paused).await;
            cluster.procs().signal(&name, Signal::SIGCONT)?;
            Ok(Injected::Applied(
                process_back(api, *target, node_prefix).await,
            ))
        }
        Fault::Partition { lasting, .. } | Fault::Delay { lasting, .. } => {
            let rules = fault.rules(node_prefix);
            let mut installed = BTreeSet::new();
            for (m, rule) in &rules {
                if let Outcome::Answer(200, _) = api
                    .call(*m, reqwest::Method::POST, "/debug/faults", Some(rule))
                    .await
                {
                    installed.insert(*m);
                }
            }
            tokio::time::sleep(*lasting).await;
            for (m, _) in &rules {
                clear_faults(api, *m).await;
            }
            Ok(if installed.is_empty() {
                Injected::NoTarget
            } else {
                Injected::Applied(None)
            })
        }
    }
}

/// `Some` when an actor's registry entry shows it running again after a restart.
fn restarted(a: &Value) -> Option<()> {
    (a["status"] == "running" && a["restarts"].as_u64() > Some(0)).then_some(())
}

/// The time until a restarted or resumed process serves again: a master answers its store
/// status with a leader, a node renews its Lease.
async fn process_back(api: &Api, target: Target, node_prefix: &str) -> Option<Duration> {
    let t = Instant::now();
    let lease = format!(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node_prefix}{target}"
    );
    let renewed_before = match target {
        Target::Node(_) => api
            .get_any(0, &lease)
            .await
            .map(|l| l["spec"]["renewTime"].clone()),
        Target::Master(_) => None,
    };
    wait_for(RECOVERY_BOUND, "the process back", || {
        let lease = &lease;
        let renewed_before = &renewed_before;
        async move {
            Ok(match target {
                Target::Master(m) => {
                    match api
                        .call(m, reqwest::Method::GET, "/debug/store", None)
                        .await
                    {
                        Outcome::Answer(200, v) => v["leader"].is_string().then_some(()),
                        _ => None,
                    }
                }
                Target::Node(_) => api
                    .get_any(0, lease)
                    .await
                    .filter(|l| Some(&l["spec"]["renewTime"]) != renewed_before.as_ref())
                    .map(|_| ()),
            })
        }
    })
    .await
    .ok()
    .map(|_| t.elapsed())
}

async fn clear_faults(api: &Api, m: usize) {
    for _ in 0..20 {
        if let Outcome::Answer(200, _) = api
            .call(m, reqwest::Method::DELETE, "/debug/faults", None)
            .await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tracing::warn!(master = m, "could not clear the fault rules");
}

/// After the last fault (or on an error): every process running, no fault rule left.
async fn heal_all(cluster: &mut NavarchCluster, api: &Api) {
    for i in 0..MASTERS + NODES {
        let t = if i < MASTERS {
            Target::Master(i)
        } else {
            Target::Node(i - MASTERS)
        };
        let _ = cluster.procs().signal(&t.name(), Signal::SIGCONT);
    }
    for m in 0..MASTERS {
        clear_faults(api, m).await;
    }
}
