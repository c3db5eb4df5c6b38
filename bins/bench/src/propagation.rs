//! The last part of `navctl bench proxy`: how soon an endpoint change that reached the
//! node's watch caches shows in the proxy's data path. The node agent's own Proxy (its
//! ServicePort actors and data plane) is fed by watch caches over an in-memory API; each
//! round marks a second endpoint ready, times the connections through the cluster IP until
//! one reaches it, then marks it not ready and times them until none does. What the issue
//! bounds at one second.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use navarch_actors::{ActorPath, Root};
use navarch_agent::proxy::{CopyMode, DataplaneConfig, Proxy};
use navarch_client::testing::FakeClient;
use navarch_client::{Client, Scope, SharedCaches};
use navarch_model::options::WriteOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 255, 253);
const IFACE: &str = "nvbench1";
const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 78);
const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 79);
/// Connections in a row that must all reach the first endpoint for the second to count as
/// gone (round-robin over both would reach it every other one).
const CLEAR_RUN: usize = 8;
/// How long one change may take before the bench gives up on it.
const GIVE_UP: Duration = Duration::from_secs(10);

/// The times of every round, in milliseconds.
#[derive(Debug, Default)]
pub(crate) struct Propagation {
    pub ready_ms: Vec<f64>,
    pub unready_ms: Vec<f64>,
}

/// Runs `rounds` rounds on an actor system of its own (the proxy's actors need one).
pub(crate) fn run(rounds: usize) -> Result<Propagation> {
    std::thread::spawn(move || actix_rt::System::new().block_on(measure(rounds)))
        .join()
        .map_err(|_| anyhow::anyhow!("the propagation bench's thread panicked"))?
}

/// A server on `ip:port` (port 0: any) that writes `name` to each client and closes.
async fn named_server(ip: Ipv4Addr, port: u16, name: u8) -> Result<u16> {
    let l = TcpListener::bind((ip, port)).await?;
    let port = l.local_addr()?.port();
    actix_rt::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            actix_rt::spawn(async move {
                let _ = s.write_all(&[name]).await;
            });
        }
    });
    Ok(port)
}

/// The byte the endpoint a new connection through the cluster IP reaches answers with.
async fn which(port: u16) -> Option<u8> {
    let mut s = TcpStream::connect(SocketAddrV4::new(CLUSTER_IP, port))
        .await
        .ok()?;
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
        Ok(Ok(1)) => Some(b[0]),
        _ => None,
    }
}

fn slice(port: u16, second_ready: bool) -> Value {
    let ep = |ip: Ipv4Addr, ready: bool| {
        json!({"addresses": [ip.to_string()], "nodeName": "bench",
               "conditions": {"ready": ready, "serving": ready, "terminating": false}})
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "prop", "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": "prop"}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": port, "protocol": "TCP"}],
        "endpoints": [ep(FIRST, true), ep(SECOND, second_ready)],
    })
}

async fn measure(rounds: usize) -> Result<Propagation> {
    let port = named_server(FIRST, 0, b'a').await?;
    named_server(SECOND, port, b'b')
        .await
        .with_context(|| format!("bind {SECOND}:{port} for the second endpoint"))?;
    let fake = Arc::new(FakeClient::new());
    let client: Arc<dyn Client> = fake.clone();
    let caches = SharedCaches::new(client);
    let root = Root::new(ActorPath::parse("/node/bench")?, Default::default());
    let kind = |g: &str, p: &str| navarch_client::kind(g, "v1", p);
    let (services, slices) = (
        kind("", "services"),
        kind("discovery.k8s.io", "endpointslices"),
    );
    let proxy = Proxy::start(
        &root,
        DataplaneConfig {
            node: "bench".into(),
            node_port_addresses: Vec::new(),
            service_iface: Some(IFACE.into()),
            copy: CopyMode::Splice,
        },
        caches.scoped(Scope::kind(services)),
        caches.scoped(Scope::kind(slices)),
    )
    .await
    .context("start the proxy")?;
    let w = WriteOptions::default();
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "prop", "namespace": "bench"},
        "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_IP.to_string(),
                 "clusterIPs": [CLUSTER_IP.to_string()],
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": port}]}});
    fake.create(services, Some("bench"), svc, &w).await?;
    fake.create(slices, Some("bench"), slice(port, false), &w)
        .await?;
    let started = Instant::now();
    while which(80).await != Some(b'a') {
        if started.elapsed() > GIVE_UP {
            bail!("the proxy never served the bench's service");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let set = |second_ready: bool| {
        let fake = fake.clone();
        async move {
            let mut s = fake
                .get(slices, Some("bench"), "prop", &Default::default())
                .await?;
            s["endpoints"] = slice(port, second_ready)["endpoints"].clone();
            fake.update(
                slices,
                Some("bench"),
                "prop",
                None,
                s,
                &WriteOptions::default(),
            )
            .await?;
            anyhow::Ok(Instant::now())
        }
    };
    let mut out = Propagation::default();
    for _ in 0..rounds {
        let changed = set(true).await?;
        loop {
            if which(80).await == Some(b'b') {
                break;
            }
            if changed.elapsed() > GIVE_UP {
                bail!("a ready endpoint got no connection within {GIVE_UP:?}");
            }
        }
        out.ready_ms.push(changed.elapsed().as_secs_f64() * 1000.0);
        let changed = set(false).await?;
        // From the opening of the first connection of the final run that never reached
        // the endpoint: new connections stopped going there by then.
        let mut clean_since = None;
        let mut run = 0;
        while run < CLEAR_RUN {
            let opened = Instant::now();
            match which(80).await {
                Some(b'b') => {
                    clean_since = None;
                    run = 0;
                }
                Some(_) => {
                    clean_since.get_or_insert(opened);
                    run += 1;
                }
                None => bail!("a connection through the proxy failed"),
            }
            if changed.elapsed() > GIVE_UP {
                bail!("an endpoint not ready kept getting connections for {GIVE_UP:?}");
            }
        }
        let gone = clean_since
            .map(|t| t.duration_since(changed))
            .unwrap_or_default();
        out.unready_ms.push(gone.as_secs_f64() * 1000.0);
    }
    proxy.dataplane().shutdown();
    let _ = navarch_agent::network::host::remove_bridge(IFACE);
    Ok(out)
}

/// The median and the largest of `v`.
pub(crate) fn p50_max(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let p50 = s.get(s.len() / 2).copied().unwrap_or(0.0);
    (p50, s.last().copied().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_max() {
        assert_eq!(p50_max(&[3.0, 1.0, 2.0]), (2.0, 3.0));
        assert_eq!(p50_max(&[]), (0.0, 0.0));
    }
}
