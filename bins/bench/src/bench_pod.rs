//! The proxy bench's endpoint: a pod's network as a node makes it (a network namespace of
//! its own on the node's CNI bridge, through the same bridge and host-local plugins), with
//! the bench's servers bound inside it. Its range, [`POD_CIDR`], is one of the cluster
//! range's last /24s, on a bridge of its own: traffic to it stays on this machine. The
//! namespace and the bridge are removed on drop.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_agent::ipam::Cidr;
use navarch_agent::network::host;
use navarch_agent::network::netns::{run_in, NetnsDir};
use navarch_agent::network::{Cni, NodeNetwork};

/// The bench pod's range (inside k3s's 10.42.0.0/16, where a cluster's 255th node would
/// be: do not run the bench on a node of a cluster that large).
pub const POD_CIDR: &str = "10.42.254.0/24";
const CLUSTER_CIDR: &str = "10.42.0.0/16";
const BRIDGE: &str = "nvbenchbr0";
const NETNS: &str = "nvbench-pod";

/// The bench's pod: its namespace, its address, and the CNI state kept for it.
pub struct BenchPod {
    netns: NetnsDir,
    path: PathBuf,
    pub ip: Ipv4Addr,
    _state: tempfile::TempDir,
}

impl BenchPod {
    /// Puts a new namespace on the bench's bridge through the CNI plugins in `plugins`.
    pub async fn new(plugins: &[PathBuf]) -> Result<BenchPod> {
        let netns = NetnsDir::default();
        // A namespace left by a bench that was killed goes first.
        let _ = netns.delete(NETNS);
        let _ = host::remove_bridge(BRIDGE);
        let path = netns
            .create(NETNS)
            .context("the bench pod's network namespace")?;
        let state = tempfile::tempdir()?;
        let network = NodeNetwork::new(
            "bench",
            POD_CIDR.parse::<Cidr>()?,
            CLUSTER_CIDR.parse::<Cidr>()?,
        )?
        .with_bridge(BRIDGE)?;
        let cni = Cni::new(plugins.to_vec(), state.path().to_path_buf(), network)
            .with_timeout(Duration::from_secs(20));
        let mut pod = BenchPod {
            netns,
            path,
            ip: Ipv4Addr::UNSPECIFIED,
            _state: state,
        };
        pod.ip = cni
            .add("bench-pod", &pod.path)
            .await
            .context("CNI ADD of the bench pod (the plugins: scripts/install-deps.sh)")?
            .ip;
        Ok(pod)
    }

    /// A TCP listener inside the pod, on any port of its address.
    pub fn tcp_listener(&self) -> Result<tokio::net::TcpListener> {
        let ip = self.ip;
        let l = run_in(&self.path, move || std::net::TcpListener::bind((ip, 0)))??;
        l.set_nonblocking(true)?;
        Ok(tokio::net::TcpListener::from_std(l)?)
    }

    /// A UDP socket inside the pod, on any port of its address.
    pub fn udp_socket(&self) -> Result<tokio::net::UdpSocket> {
        let ip = self.ip;
        let s = run_in(&self.path, move || std::net::UdpSocket::bind((ip, 0)))??;
        s.set_nonblocking(true)?;
        Ok(tokio::net::UdpSocket::from_std(s)?)
    }
}

/// The address a socket is bound to, which must be IPv4.
pub fn v4(addr: std::net::SocketAddr) -> Result<SocketAddrV4> {
    match addr {
        std::net::SocketAddr::V4(a) => Ok(a),
        other => anyhow::bail!("not IPv4: {other}"),
    }
}

impl Drop for BenchPod {
    fn drop(&mut self) {
        if let Err(e) = self.netns.delete(NETNS) {
            tracing::warn!(error = %e, "the bench pod's namespace not removed");
        }
        if let Err(e) = host::remove_bridge(BRIDGE) {
            tracing::warn!(error = %e, bridge = BRIDGE, "the bench bridge not removed");
        }
    }
}
