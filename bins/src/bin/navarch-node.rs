//! `navarch-node`: joins a node to the cluster. Today it runs the join handshake — a
//! bootstrap token and the pinned CA hash buy a node certificate over QUIC — and stores the
//! certificate; the agent that runs pods comes with the node issue.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(name = "navarch-node", about = "Join a node to a navarch cluster")]
struct Cli {
    /// The node's name (its certificate becomes CN=system:node:<name>).
    #[arg(long)]
    name: String,
    /// A master's QUIC address.
    #[arg(long)]
    master: SocketAddr,
    /// A bootstrap token, <id>.<secret> (a master writes one to DATA_DIR/join-token).
    #[arg(long, env = "NAVARCH_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// The cluster CA's public key pin, sha256:<hex> (DATA_DIR/ca-hash on a master).
    #[arg(long)]
    ca_hash: String,
    /// Where the node keeps its credentials.
    #[arg(long, default_value = "navarch-node-data")]
    data_dir: PathBuf,
}

fn main() -> Result<()> {
    // Before anything is created: the node's key is for this user only.
    navarch_bins::private::restrict_umask();
    navarch_bins::init_logging();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let identity =
            navarch_net::join(cli.master, &cli.token, &cli.ca_hash, &cli.name, Duration::from_secs(365 * 24 * 3600))
                .await
                .context("join")?;
        navarch_bins::private::private_dir(&cli.data_dir)?;
        identity.save(&cli.data_dir, "node")?;
        tracing::info!(node = %cli.name, dir = %cli.data_dir.display(), "joined: node certificate stored");
        println!("joined as system:node:{}; credentials in {}", cli.name, cli.data_dir.display());
        Ok(())
    })
}
