//! `navctl`: the operator's CLI — `get`, `apply`, `delete` and `describe` over the Kubernetes
//! API with a kubeconfig (`navarch_bins::navctl`), and store status, raw objects
//! (`navctl store ...`), watches, backups and cluster membership (`navctl member ...`) over
//! QUIC with the admin certificate, the PKI bootstrap, and benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use navarch_bins::{credentials, navctl};
use navarch_net::pki::ClusterCa;
use navarch_net::{Endpoint, ExpectedPeer, NetConfig};
use navarch_store::{
    KeyRange, ObjectKey, Op, ReadConsistency, Revision, StoreClient, Txn, TxnOutcome,
};

#[derive(Parser)]
#[command(name = "navctl", about = "Operate a navarch cluster")]
struct Cli {
    /// A master's QUIC address.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:7001",
        env = "NAVARCH_SERVER"
    )]
    server: SocketAddr,
    /// Directory holding admin.crt, admin.key and ca.crt (a master's data dir has them).
    #[arg(
        long,
        global = true,
        default_value = "navarch-data",
        env = "NAVARCH_CREDENTIALS"
    )]
    credentials: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the store member's status (role, term, leader, applied, revision).
    Status,
    /// Write a consistent backup of the running cluster to a file.
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Describe a backup file.
    BackupInfo { file: PathBuf },
    /// Show objects: `navctl get deploy`, `get pods -A -o wide`, `get svc/web -o yaml`.
    Get(navctl::GetArgs),
    /// Create or update objects from manifests (merge patch; does not prune, see --help).
    #[command(long_about = navctl::APPLY_HELP)]
    Apply(navctl::ApplyArgs),
    /// Delete objects by type and name or from manifests.
    Delete(navctl::DeleteArgs),
    /// Show objects in detail, with their events.
    Describe(navctl::DescribeArgs),
    /// Where a Deployment's pods would go and what would change, without doing it.
    Plan(navctl::plan::PlanArgs),
    /// Whether each master's control plane (controllers and scheduler) is active.
    Controlplane(navctl::ControlPlaneArgs),
    /// The actor message inspector: actors, messages and traces across the masters.
    Inspect {
        #[command(subcommand)]
        command: navctl::inspect::InspectCommand,
    },
    /// The store's raw keys and values over QUIC: get, list, put, delete, watch.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The masters of the cluster, like `etcdctl member`: list, add, promote, remove.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Create the cluster CA in a directory to share between masters (--ca-dir).
    PkiInit {
        #[arg(long)]
        ca_dir: PathBuf,
    },
    /// Run a command in a pod's container: `navctl exec web -- cat /etc/hostname` (exits
    /// with the command's code).
    Exec(navctl::exec::ExecArgs),
    /// A node's local image store (no registry): `navctl image import NAME DIR|TARBALL`.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Benchmarks: `navctl bench store [--vs-etcd]` starts its own clusters on loopback.
    Bench {
        #[command(subcommand)]
        what: navarch_bench::BenchCommand,
    },
    /// The chaos suite: `navctl chaos run --duration 2m --seed 7` starts its own cluster on
    /// loopback, injects faults, heals and checks invariants (non-zero exit on a violation).
    Chaos {
        #[command(subcommand)]
        what: navarch_bench::chaos::ChaosCommand,
    },
}

/// The images a node's runtimes take containers from. Run it on the node, on its data dir
/// (a single-server master's embedded node: DATA_DIR/node).
#[derive(Subcommand)]
enum ImageCommand {
    /// Import an image from a directory or a tarball (gzip, xz or plain tar): a root
    /// filesystem, or an image layout with `rootfs/` and `config.json`.
    Import {
        /// The image's name, as pods give it (`myapp`, `myapp:1.2`).
        name: String,
        source: PathBuf,
        /// The node's data dir.
        #[arg(long, default_value = "navarch-data/node")]
        node_data_dir: PathBuf,
    },
}

/// Membership changes go through Raft on the leader; one that would lose quorum is refused.
#[derive(Subcommand)]
enum MemberCommand {
    /// Every master: id, name, peer address, voter or learner, leader, caught up.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pre-register a master as a learner; it takes the id when started with --join.
    Add {
        name: String,
        #[arg(long)]
        peer_addr: SocketAddr,
    },
    /// Make a caught-up learner a voter.
    Promote { name: String },
    /// Remove a master; refused if the remaining reachable voters would not be a majority.
    Remove { name: String },
}

/// Raw store access (keys are KIND NAMESPACE NAME, values opaque bytes).
#[derive(Subcommand)]
enum StoreCommand {
    /// Read one object: KIND NAMESPACE NAME (use "" for cluster-scoped objects).
    Get {
        kind: String,
        namespace: String,
        name: String,
    },
    /// List objects of a kind, optionally in one namespace.
    List {
        kind: String,
        namespace: Option<String>,
    },
    /// Create or replace an object's value.
    Put {
        kind: String,
        namespace: String,
        name: String,
        value: String,
    },
    /// Delete an object.
    Delete {
        kind: String,
        namespace: String,
        name: String,
    },
    /// Follow changes of a kind after a revision.
    Watch {
        kind: String,
        #[arg(long)]
        after: Option<u64>,
    },
}

fn main() -> Result<()> {
    // Before anything is created: backups and CA keys are for this user only.
    navarch_bins::private::restrict_umask();
    navarch_bins::init_logging();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("{}", navctl::report(&e));
        std::process::exit(1);
    }
    Ok(())
}

fn client(cli: &Cli) -> Result<StoreClient> {
    let identity = credentials::admin(&cli.credentials)?;
    let endpoint = Endpoint::client(NetConfig::new("navctl", identity))?;
    Ok(StoreClient::new(endpoint.peer(
        "master",
        cli.server,
        ExpectedPeer::Master,
    )))
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Get(a) => navctl::get(a).await?,
        Command::Exec(a) => {
            let code = navctl::exec::exec(a).await?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        Command::Apply(a) => navctl::apply(a).await?,
        Command::Delete(a) => navctl::delete(a).await?,
        Command::Describe(a) => navctl::describe(a).await?,
        Command::Plan(a) => navctl::plan::plan(a).await?,
        Command::Controlplane(a) => navctl::control_plane(a).await?,
        Command::Inspect { command } => navctl::inspect::run(command).await?,
        Command::Store { command } => store(&cli, command).await?,
        Command::Member { command } => member(&cli, command).await?,
        Command::Bench { what } => navarch_bench::run(what).await?,
        Command::Chaos { what } => navarch_bench::chaos::run(what).await?,
        Command::Image {
            command:
                ImageCommand::Import {
                    name,
                    source,
                    node_data_dir,
                },
        } => {
            let store = navarch_runtime::ImageStore::new(node_data_dir.join("images"))
                .with_context(|| format!("open the image store of {}", node_data_dir.display()))?;
            let (name, source) = (name.clone(), source.clone());
            let image = tokio::task::spawn_blocking(move || store.import(&name, &source))
                .await?
                .context("import the image")?;
            println!(
                "image {} imported{}",
                image.name,
                if image.rootfs.is_some() {
                    ""
                } else {
                    " (no root filesystem)"
                }
            );
        }
        Command::PkiInit { ca_dir } => {
            let (ca, created) = ClusterCa::load_or_create(ca_dir)?;
            println!(
                "{} cluster CA in {}",
                if created { "created" } else { "found" },
                ca_dir.display()
            );
            println!("ca-hash: {}", ca.spki_sha256());
        }
        Command::BackupInfo { file } => {
            let data = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
            let s = navarch_store::backup::summarize(&data)?;
            println!("revision: {}\nobjects: {}", s.revision, s.objects);
        }
        Command::Status => {
            let status = client(&cli)?.status().await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        Command::Backup { out } => {
            let data = client(&cli)?.backup().await?;
            let s = navarch_store::backup::summarize(&data)?;
            let tmp = out.with_extension("partial");
            navarch_bins::private::write_private(&tmp, &data)?;
            std::fs::rename(&tmp, out)?;
            println!(
                "backup of {} objects at revision {} written to {}",
                s.objects,
                s.revision,
                out.display()
            );
        }
    }
    Ok(())
}

async fn store(cli: &Cli, command: &StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Get {
            kind,
            namespace,
            name,
        } => {
            let key = ObjectKey::new(kind, namespace, name);
            match client(cli)?
                .get(&key, ReadConsistency::Linearizable)
                .await?
            {
                Some(o) => println!(
                    "{}\t{}\t{}",
                    o.key,
                    o.mod_revision,
                    String::from_utf8_lossy(&o.value)
                ),
                None => bail!("{key} not found"),
            }
        }
        StoreCommand::List { kind, namespace } => {
            let range = KeyRange {
                kind: kind.clone(),
                namespace: namespace.clone(),
            };
            let list = client(cli)?
                .list(&range, ReadConsistency::Linearizable)
                .await?;
            for o in &list.objects {
                println!(
                    "{}\t{}\t{}",
                    o.key,
                    o.mod_revision,
                    String::from_utf8_lossy(&o.value)
                );
            }
            println!(
                "# {} objects at revision {}",
                list.objects.len(),
                list.revision
            );
        }
        StoreCommand::Put {
            kind,
            namespace,
            name,
            value,
        } => {
            let key = ObjectKey::new(kind, namespace, name);
            let txn = Txn::new(vec![Op::Put {
                key: key.clone(),
                value: value.as_bytes().to_vec(),
            }]);
            print_outcome(client(cli)?.txn(&txn).await?)?;
        }
        StoreCommand::Delete {
            kind,
            namespace,
            name,
        } => {
            let key = ObjectKey::new(kind, namespace, name);
            let txn = Txn::new(vec![Op::Delete {
                key,
                expected: None,
            }]);
            print_outcome(client(cli)?.txn(&txn).await?)?;
        }
        StoreCommand::Watch { kind, after } => {
            let mut s = client(cli)?
                .watch(&KeyRange::kind(kind), after.map(Revision))
                .await?;
            while let Some(batch) =
                tokio::time::timeout(Duration::from_secs(3600), s.next()).await?
            {
                for ev in batch?.events {
                    println!(
                        "{}\t{:?}\t{}\t{}",
                        ev.revision,
                        ev.kind,
                        ev.key,
                        String::from_utf8_lossy(&ev.value)
                    );
                }
            }
        }
    }
    Ok(())
}

async fn member(cli: &Cli, command: &MemberCommand) -> Result<()> {
    let c = client(cli)?;
    let list = match command {
        MemberCommand::List { json: true } => {
            println!("{}", serde_json::to_string_pretty(&c.member_list().await?)?);
            return Ok(());
        }
        MemberCommand::List { json: false } => c.member_list().await?,
        MemberCommand::Add { name, peer_addr } => {
            let m = c.member_add(name, &peer_addr.to_string()).await?;
            let role = if m.voter { "a voter" } else { "a learner" };
            println!("member {} is {role} with id {}", m.name, m.id);
            return Ok(());
        }
        MemberCommand::Promote { name } => {
            let list = c.member_promote(name).await?;
            println!("member {name} is a voter");
            list
        }
        MemberCommand::Remove { name } => {
            let list = c.member_remove(name).await?;
            println!("member {name} removed");
            list
        }
    };
    println!(
        "{:<4} {:<16} {:<24} {:<8} {:<7} CAUGHT UP",
        "ID", "NAME", "PEER ADDRESS", "ROLE", "LEADER"
    );
    for m in &list.members {
        println!(
            "{:<4} {:<16} {:<24} {:<8} {:<7} {}",
            m.id,
            m.name,
            m.peer_addr,
            if m.voter { "voter" } else { "learner" },
            if m.leader { "yes" } else { "" },
            if m.caught_up { "yes" } else { "no" },
        );
    }
    if list.joint {
        println!("# a membership change is under way (joint consensus)");
    }
    Ok(())
}

fn print_outcome(outcome: TxnOutcome) -> Result<()> {
    match outcome {
        TxnOutcome::Committed { revision, .. } => {
            println!("committed at revision {revision}");
            Ok(())
        }
        TxnOutcome::Refused { failure, .. } => bail!("refused: {failure}"),
    }
}
