//! [`Fleet`]: the hollow nodes of one process (`navarch-node --hollow --count N`), each with
//! its own name (`<name>-0` ... `<name>-(N-1)`), certificate and pod range, all sharing one
//! UDP socket (sibling endpoints of one QUIC endpoint) and the process's runtime.
//!
//! Starting a fleet loads each node's stored credentials or joins for it (through one
//! [`JoinGate`], so a thousand joins wait out the masters' rate limits instead of hammering
//! them), and starts each node as soon as it has its certificate, nodes that start together
//! spreading their registrations over a few seconds.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use navarch_client::LinkClient;
use navarch_net::{Endpoint, Identity, NetConfig};
use rand::Rng;
use tokio::sync::{mpsc, OnceCell};
use tokio::task::JoinSet;

use crate::config::{Resources, Timing};
use crate::credentials::{load_or_join, node_dir, JoinGate, JoinParams};
use crate::hollow::HollowNode;
use crate::ipam::Cidr;
use crate::node::NodeDescription;
use crate::AgentError;

/// What a fleet is made of.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The node's name, or with `count` the stem of the nodes' names.
    pub name: String,
    /// `None`: one node called `name`; `Some(n)`: `name-0` ... `name-(n-1)`.
    pub count: Option<usize>,
    pub join: JoinParams,
    /// Where credentials are kept (a directory per node when there are several).
    pub data_dir: PathBuf,
    pub capacity: Resources,
    pub labels: BTreeMap<String, String>,
    /// The range node `k`'s pod range is the `k`-th `/node_cidr_mask` subnet of.
    pub pod_cidr: Cidr,
    pub node_cidr_mask: u8,
    pub timing: Timing,
    /// Joins at once (each waits out the masters' rate limits).
    pub join_parallelism: usize,
    /// What the nodes' requests say they are (the masters' audit logs record it).
    pub user_agent: String,
}

impl FleetConfig {
    /// The nodes' names, in index order.
    pub fn node_names(&self) -> Vec<String> {
        match self.count {
            None => vec![self.name.clone()],
            Some(n) => (0..n).map(|k| format!("{}-{k}", self.name)).collect(),
        }
    }
}

/// How a fleet got its certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    pub nodes: usize,
    /// Nodes that joined now (the others reused stored credentials).
    pub joined: usize,
    /// From the start until every node had its certificate.
    pub elapsed: Duration,
}

/// The running nodes of a process.
pub struct Fleet {
    tasks: JoinSet<()>,
    endpoint: Arc<OnceCell<Endpoint>>,
    started: Started,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// Over how long `n` nodes starting at once spread their registrations: 10 ms a node, at
/// most 20 s (a thousand nodes registering at once time out against one busy master).
fn start_spread(n: usize) -> Duration {
    (Duration::from_millis(10) * u32::try_from(n).unwrap_or(u32::MAX)).min(Duration::from_secs(20))
}

/// A random id, for `nodeInfo.bootID`.
pub fn boot_id() -> String {
    let b: [u8; 16] = rand::thread_rng().gen();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Fleet {
    /// Gets every node its certificate (stored, or by joining) and starts it; returns once
    /// all have one. The first final failure (a refused token, a CA other than the pinned
    /// one, a data dir that cannot be written) stops the fleet and is returned.
    pub async fn start(cfg: FleetConfig) -> Result<Fleet, AgentError> {
        let began = Instant::now();
        let names = cfg.node_names();
        let several = cfg.count.is_some();
        // Every node's pod range, before anything is joined: a range too small is a
        // configuration error.
        let ranges = (0..names.len())
            .map(|k| cfg.pod_cidr.subnet(k, cfg.node_cidr_mask))
            .collect::<Result<Vec<_>, _>>()?;
        let gate = Arc::new(JoinGate::new(cfg.join_parallelism));
        let endpoint: Arc<OnceCell<Endpoint>> = Arc::new(OnceCell::new());
        let (ready_tx, mut ready_rx) = mpsc::channel::<Result<bool, AgentError>>(64);
        let mut tasks = JoinSet::new();
        let spread = start_spread(names.len());
        for (name, range) in names.iter().cloned().zip(ranges) {
            let dir = node_dir(&cfg.data_dir, &name, several);
            let (gate, endpoint, ready) = (gate.clone(), endpoint.clone(), ready_tx.clone());
            let cfg = cfg.clone();
            tasks.spawn(async move {
                let node = match prepare(&cfg, &name, &dir, range, &gate, &endpoint).await {
                    Ok((node, joined)) => {
                        let _ = ready.send(Ok(joined)).await;
                        node
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e)).await;
                        return;
                    }
                };
                drop(ready);
                // Nodes that start together (a restart with stored credentials) register over
                // a spread, not in one burst.
                let delay = spread.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
                tokio::time::sleep(delay).await;
                node.run().await;
            });
        }
        drop(ready_tx);
        let mut joined = 0;
        for _ in 0..names.len() {
            match ready_rx.recv().await {
                Some(Ok(j)) => joined += usize::from(j),
                Some(Err(e)) => {
                    tasks.abort_all();
                    return Err(e);
                }
                None => return Err(AgentError::Stopped),
            }
        }
        let started = Started {
            nodes: names.len(),
            joined,
            elapsed: began.elapsed(),
        };
        tracing::info!(
            nodes = started.nodes,
            joined = started.joined,
            elapsed_ms = started.elapsed.as_millis() as u64,
            "every hollow node has its certificate"
        );
        Ok(Fleet {
            tasks,
            endpoint,
            started,
        })
    }

    pub fn started(&self) -> Started {
        self.started
    }

    /// Stops every node and closes the shared endpoint (its connections' close frames get
    /// a moment to go out, so masters drop them at once).
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some(ep) = self.endpoint.get() {
            ep.close();
            let _ = tokio::time::timeout(Duration::from_millis(500), ep.wait_idle()).await;
        }
    }
}

/// The masters in the order node `name` tries them: rotated by a stable hash of the name,
/// so that the nodes of a cluster spread their links (their watches, status reports and
/// Lease renewals) over the masters instead of all loading the first one, as kubelets behind
/// a load balancer do; each node still fails over to the next master in the ring.
pub fn spread(name: &str, masters: &[SocketAddr]) -> Vec<SocketAddr> {
    if masters.is_empty() {
        return Vec::new();
    }
    // FNV-1a: the same start for the same name in every process and version.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut ordered = masters.to_vec();
    ordered.rotate_left((hash % masters.len() as u64) as usize);
    ordered
}

/// A node's certificate (stored or joined), its endpoint and link, ready to run.
async fn prepare(
    cfg: &FleetConfig,
    name: &str,
    dir: &std::path::Path,
    range: Cidr,
    gate: &JoinGate,
    endpoint: &OnceCell<Endpoint>,
) -> Result<(HollowNode, bool), AgentError> {
    let (identity, joined) = load_or_join(dir, name, &cfg.join, gate).await?;
    let root = endpoint
        .get_or_try_init(|| async {
            // The shared socket; each node dials through a sibling with its own certificate.
            Endpoint::client(NetConfig::new(
                format!("{}-hollow", cfg.name),
                Identity::anonymous(identity.ca_pem.clone()),
            ))
        })
        .await?;
    let ep = root.sibling(NetConfig::new(name, identity))?;
    let masters = spread(name, &cfg.join.masters);
    let link = LinkClient::new(&ep, &masters, cfg.user_agent.clone())?;
    let desc = NodeDescription {
        name: name.to_string(),
        capacity: cfg.capacity.clone(),
        labels: cfg.labels.clone(),
        pod_cidr: range,
        address: Ipv4Addr::LOCALHOST,
        boot_id: boot_id(),
        flavor: crate::node::Flavor::Hollow,
        // Hollow nodes run nothing: no kubelet endpoint, no logs, no exec.
        kubelet_port: 0,
    };
    Ok((HollowNode::new(Arc::new(link), desc, cfg.timing), joined))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_spread_over_the_masters_and_keep_their_order() {
        let masters: Vec<SocketAddr> = (1..=3)
            .map(|i| format!("127.0.0.{i}:6443").parse().unwrap())
            .collect();
        let mut first = [0usize; 3];
        for i in 0..300 {
            let name = format!("node-{i}");
            let order = spread(&name, &masters);
            assert_eq!(order, spread(&name, &masters), "stable for one name");
            let start = masters.iter().position(|m| *m == order[0]).unwrap();
            // A rotation: every master once, in ring order from the start.
            let ring: Vec<SocketAddr> = (0..3).map(|k| masters[(start + k) % 3]).collect();
            assert_eq!(order, ring);
            first[start] += 1;
        }
        assert!(
            first.iter().all(|&n| n > 60),
            "each master starts about a third: {first:?}"
        );
        assert!(spread("n", &[]).is_empty());
    }

    #[test]
    fn names_are_the_name_or_numbered_from_it() {
        let mut cfg = FleetConfig {
            name: "hollow".into(),
            count: None,
            join: JoinParams {
                masters: vec![],
                token: String::new(),
                ca_hash: String::new(),
            },
            data_dir: PathBuf::from("/nonexistent"),
            capacity: Resources::new(),
            labels: BTreeMap::new(),
            pod_cidr: "10.244.0.0/14".parse().unwrap(),
            node_cidr_mask: 24,
            timing: Timing::default(),
            join_parallelism: 1,
            user_agent: String::new(),
        };
        assert_eq!(cfg.node_names(), ["hollow"]);
        cfg.count = Some(3);
        assert_eq!(cfg.node_names(), ["hollow-0", "hollow-1", "hollow-2"]);
        assert_eq!(start_spread(3), Duration::from_millis(30));
        assert_eq!(start_spread(1000), Duration::from_secs(10));
        assert_eq!(start_spread(1_000_000), Duration::from_secs(20));
    }
}
