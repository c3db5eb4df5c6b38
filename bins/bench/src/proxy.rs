//! `navctl bench proxy`: the node proxy's data path against connecting to the endpoint
//! directly, in one run on this machine. The proxy is the node agent's own data plane
//! ([`navarch_agent::proxy::Dataplane`], the code every node runs), serving one Service
//! port on a cluster IP of a bench-only range on a service interface of its own; the
//! endpoint is a pod, networked as a node networks its pods ([`crate::bench_pod`]), so the
//! direct and the proxied path differ only by the proxy. Measured for the direct path, the
//! proxy with `splice(2)` and the proxy with a userspace copy:
//! - TCP throughput of one stream (the server writes, the client reads);
//! - new TCP connections per second (connect, read one byte, close; a few clients at once);
//! - UDP round trips per second of one flow with a few datagrams in flight (the copy mode
//!   does not apply to UDP: it is measured direct and through the proxy);
//! - how soon endpoint changes that reached the node's caches show in the data path
//!   (`propagation`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use navarch_agent::proxy::table::{Endpoint, Protocol, ServicePort};
use navarch_agent::proxy::{CopyMode, Dataplane, DataplaneConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::bench_pod::{v4, BenchPod};

/// Flags of `navctl bench proxy`.
#[derive(Clone, Debug, clap::Args)]
pub struct ProxyBenchArgs {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent clients of the connection-rate measurement.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// UDP datagrams in flight.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Rounds of the endpoint-change measurement (ready, then not ready).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Where the CNI plugins that make the bench's pod are.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/usr/lib/cni,/opt/cni/bin"
    )]
    pub cni_bin_dir: Vec<std::path::PathBuf>,
}

pub(crate) fn validate(a: &ProxyBenchArgs) -> Result<()> {
    if a.seconds == 0 || a.seconds > 600 {
        bail!("--seconds must be between 1 and 600");
    }
    if a.clients == 0 || a.clients > 64 {
        bail!("--clients must be between 1 and 64");
    }
    if a.in_flight == 0 || a.in_flight > 256 {
        bail!("--in-flight must be between 1 and 256");
    }
    if a.rounds == 0 || a.rounds > 1000 {
        bail!("--rounds must be between 1 and 1000");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("navctl bench proxy puts a cluster IP on an interface of its own: run it as root");
    }
    Ok(())
}

/// The bench's cluster IP (a /32 of 10.43.255.0/24, local to this machine on the bench's
/// own interface).
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 255, 254);
const IFACE: &str = "nvbench0";
const CHUNK: usize = 256 * 1024;

/// One path's figures.
#[derive(Clone, Debug, Default)]
struct Figures {
    mib_per_s: f64,
    /// CPU seconds (user and system, of this whole process: the server, the client and
    /// the proxy) per GiB streamed.
    cpu_s_per_gib: f64,
    conns_per_s: f64,
    udp_per_s: Option<f64>,
}

pub(crate) async fn run(args: &ProxyBenchArgs) -> Result<()> {
    let secs = Duration::from_secs(args.seconds);
    let pod = BenchPod::new(&args.cni_bin_dir).await?;
    let tcp = tcp_servers(&pod).await?;
    let udp = udp_echo(&pod).await?;
    let direct = (tcp.0, tcp.1, udp);
    println!(
        "navctl bench proxy: {}s per measurement, {} connecting clients, {} udp datagrams in flight",
        args.seconds, args.clients, args.in_flight
    );
    let mut rows: Vec<(&str, Figures)> = Vec::new();
    rows.push((
        "direct to the pod",
        measure(direct, args, secs, true).await?,
    ));
    for (label, mode) in [
        ("proxy, splice", CopyMode::Splice),
        ("proxy, userspace copy", CopyMode::Userspace),
    ] {
        let plane = Dataplane::new(DataplaneConfig {
            node: "bench".into(),
            node_port_addresses: Vec::new(),
            service_iface: Some(IFACE.into()),
            copy: mode,
        })
        .context("the bench's data plane")?;
        let ports = [(80, tcp.0), (81, tcp.1)];
        for (port, backend) in ports {
            plane.apply(
                &format!("bench/stream-{port}"),
                Arc::new(service_port(port, Protocol::Tcp, backend)),
            )?;
        }
        plane.apply("bench/udp", Arc::new(service_port(53, Protocol::Udp, udp)))?;
        let via = (
            SocketAddrV4::new(CLUSTER_IP, 80),
            SocketAddrV4::new(CLUSTER_IP, 81),
            SocketAddrV4::new(CLUSTER_IP, 53),
        );
        let figures = measure(via, args, secs, mode == CopyMode::Splice).await;
        plane.shutdown();
        rows.push((label, figures?));
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "dev", IFACE])
        .status();
    let base = rows[0].1.clone();
    println!();
    println!(
        "{:<24} {:>12} {:>8} {:>10} {:>12} {:>8} {:>12} {:>8}",
        "path", "TCP MiB/s", "ratio", "CPU s/GiB", "conns/s", "ratio", "UDP rt/s", "ratio"
    );
    for (label, f) in &rows {
        let udp = f
            .udp_per_s
            .map(|u| {
                format!(
                    "{u:>12.0} {:>8.2}",
                    u / base.udp_per_s.unwrap_or(1.0).max(1.0)
                )
            })
            .unwrap_or_else(|| format!("{:>12} {:>8}", "-", "-"));
        println!(
            "{label:<24} {:>12.1} {:>8.2} {:>10.3} {:>12.0} {:>8.2} {udp}",
            f.mib_per_s,
            f.mib_per_s / base.mib_per_s.max(f64::MIN_POSITIVE),
            f.cpu_s_per_gib,
            f.conns_per_s,
            f.conns_per_s / base.conns_per_s.max(f64::MIN_POSITIVE),
        );
    }
    let changes = crate::propagation::run(args.rounds)?;
    let (ready_p50, ready_max) = crate::propagation::p50_max(&changes.ready_ms);
    let (gone_p50, gone_max) = crate::propagation::p50_max(&changes.unready_ms);
    println!();
    println!(
        "endpoint changes through the node's caches ({} rounds): ready -> first connection p50 {ready_p50:.2} ms, max {ready_max:.2} ms; not ready -> no new connection from p50 {gone_p50:.2} ms, max {gone_max:.2} ms",
        args.rounds
    );
    println!(
        "summary proxy splice_throughput_ratio={:.3} userspace_throughput_ratio={:.3} splice_conns_ratio={:.3} udp_ratio={:.3} ready_max_ms={ready_max:.2} unready_max_ms={gone_max:.2}",
        rows[1].1.mib_per_s / base.mib_per_s,
        rows[2].1.mib_per_s / base.mib_per_s,
        rows[1].1.conns_per_s / base.conns_per_s,
        rows[1].1.udp_per_s.unwrap_or(0.0) / base.udp_per_s.unwrap_or(1.0),
    );
    Ok(())
}

fn service_port(port: u16, protocol: Protocol, backend: SocketAddrV4) -> ServicePort {
    ServicePort {
        namespace: "bench".into(),
        service: "bench".into(),
        name: String::new(),
        protocol,
        cluster_ips: vec![CLUSTER_IP],
        port,
        node_port: None,
        affinity: None,
        internal_local: false,
        external_local: false,
        endpoints: vec![Endpoint {
            addr: backend,
            node: Some("bench".into()),
            ready: true,
            serving: true,
            terminating: false,
        }],
    }
}

/// The endpoint's two TCP servers: one that streams to every client until it closes, one
/// that writes a byte and closes.
async fn tcp_servers(pod: &BenchPod) -> Result<(SocketAddrV4, SocketAddrV4)> {
    let stream = pod.tcp_listener()?;
    let once = pod.tcp_listener()?;
    let addrs = (v4(stream.local_addr()?)?, v4(once.local_addr()?)?);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = stream.accept().await {
            tokio::spawn(async move {
                let buf = vec![7u8; CHUNK];
                while s.write_all(&buf).await.is_ok() {}
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = once.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"x").await;
            });
        }
    });
    Ok(addrs)
}

async fn udp_echo(pod: &BenchPod) -> Result<SocketAddrV4> {
    let s = pod.udp_socket()?;
    let addr = v4(s.local_addr()?)?;
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    Ok(addr)
}

async fn measure(
    (stream, once, udp): (SocketAddrV4, SocketAddrV4, SocketAddrV4),
    args: &ProxyBenchArgs,
    secs: Duration,
    with_udp: bool,
) -> Result<Figures> {
    let (mib_per_s, cpu_s_per_gib) = throughput(stream, secs).await?;
    let conns_per_s = connections(once, args.clients, secs).await?;
    let udp_per_s = if with_udp {
        Some(udp_round_trips(udp, args.in_flight, secs).await?)
    } else {
        None
    };
    Ok(Figures {
        mib_per_s,
        cpu_s_per_gib,
        conns_per_s,
        udp_per_s,
    })
}

/// CPU time this process used so far (user and system, all threads).
fn cpu_used() -> Result<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF)?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    Ok(d(u.user_time()) + d(u.system_time()))
}

/// One stream's MiB per second, and the CPU seconds the process spent per GiB of it.
async fn throughput(addr: SocketAddrV4, secs: Duration) -> Result<(f64, f64)> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let mut buf = vec![0u8; CHUNK];
    // A moment to open the window, then the measured stretch.
    let warm = Instant::now() + Duration::from_millis(200);
    while Instant::now() < warm {
        if s.read(&mut buf).await? == 0 {
            bail!("the stream from {addr} ended");
        }
    }
    let start = Instant::now();
    let cpu_start = cpu_used()?;
    let mut total = 0u64;
    while start.elapsed() < secs {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("the stream from {addr} ended");
        }
        total += n as u64;
    }
    let cpu = (cpu_used()? - cpu_start).as_secs_f64();
    let elapsed = start.elapsed().as_secs_f64();
    let gib = total as f64 / (1024.0 * 1024.0 * 1024.0);
    Ok((gib * 1024.0 / elapsed, cpu / gib.max(f64::MIN_POSITIVE)))
}

async fn connections(addr: SocketAddrV4, clients: usize, secs: Duration) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                while !stop.load(Ordering::Relaxed) {
                    let ok = match TcpStream::connect(addr).await {
                        Ok(mut s) => matches!(s.read(&mut b).await, Ok(1)),
                        Err(_) => false,
                    };
                    if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} connections to {addr} failed");
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

async fn udp_round_trips(addr: SocketAddrV4, in_flight: usize, secs: Duration) -> Result<f64> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    s.connect(addr).await?;
    let payload = [1u8; 64];
    for _ in 0..in_flight {
        s.send(&payload).await?;
    }
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut rounds = 0u64;
    let mut lost = 0u64;
    while start.elapsed() < secs {
        match tokio::time::timeout(Duration::from_millis(200), s.recv(&mut buf)).await {
            Ok(Ok(_)) => rounds += 1,
            Ok(Err(e)) => return Err(e).context("udp receive"),
            // A datagram dropped (a full socket buffer): put another in flight.
            Err(_) => lost += 1,
        }
        s.send(&payload).await?;
    }
    if rounds == 0 {
        bail!("no udp answer from {addr} ({lost} timeouts)");
    }
    Ok(rounds as f64 / start.elapsed().as_secs_f64())
}
