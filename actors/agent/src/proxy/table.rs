//! What the proxy serves, from a Service and its EndpointSlices (pure): one [`ServicePort`]
//! per port of a Service that has a cluster IP, with its addresses (cluster IPs, node port),
//! its session affinity and traffic policies, and its endpoints resolved to the slices'
//! port numbers (a named target port resolves per pod, so endpoints of one Service port may
//! listen on different numbers). Which endpoints take new connections is [`ServicePort::targets`].

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use serde_json::Value;

/// Kubernetes' label that ties an EndpointSlice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The transport of a Service port (SCTP is refused by the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One endpoint of a Service port, as its slice says.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: SocketAddrV4,
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// Where a connection came in: a cluster IP (internalTrafficPolicy applies) or a node port
/// (externalTrafficPolicy applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ingress {
    ClusterIp,
    NodePort,
}

/// One port of a Service, as the proxy serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The port's name (empty for a Service's single unnamed port).
    pub name: String,
    pub protocol: Protocol,
    pub cluster_ips: Vec<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`: how long a client sticks to its endpoint.
    pub affinity: Option<Duration>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// Sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// The actor key's name: `<service>:<port>:<protocol>`.
    pub fn key_name(&self) -> String {
        format!("{}:{}:{}", self.service, self.port, self.protocol.as_str())
    }

    /// The endpoints that take new connections coming in through `ingress` on node
    /// `node`: the ready ones (only those on `node` under a Local policy); when none is
    /// ready, the serving ones that are terminating (as kube-proxy falls back to them).
    pub fn targets(&self, ingress: Ingress, node: &str) -> Vec<SocketAddrV4> {
        let local = match ingress {
            Ingress::ClusterIp => self.internal_local,
            Ingress::NodePort => self.external_local,
        };
        let eligible: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| !local || e.node.as_deref() == Some(node))
            .collect();
        let ready: Vec<SocketAddrV4> = eligible
            .iter()
            .filter(|e| e.ready)
            .map(|e| e.addr)
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        eligible
            .iter()
            .filter(|e| e.serving && e.terminating)
            .map(|e| e.addr)
            .collect()
    }

    /// Every endpoint address (ready or not): a connection to one not in it is cut.
    pub fn addresses(&self) -> BTreeSet<SocketAddrV4> {
        self.endpoints.iter().map(|e| e.addr).collect()
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ready = self.endpoints.iter().filter(|e| e.ready).count();
        let ips: Vec<String> = self.cluster_ips.iter().map(|i| i.to_string()).collect();
        write!(
            f,
            "{}:{}/{}",
            ips.join(","),
            self.port,
            self.protocol.as_str()
        )?;
        if let Some(np) = self.node_port {
            write!(f, " nodePort {np}")?;
        }
        write!(f, ", {ready}/{} ready", self.endpoints.len())
    }
}

/// Kubernetes' default ClientIP affinity timeout (3 hours).
const DEFAULT_AFFINITY: Duration = Duration::from_secs(10800);

/// The ports `svc` serves, with the endpoints of `slices` (those of any Service: only the
/// ones labelled with `svc`'s name in its namespace count). A headless Service (or one of
/// another type than ClusterIP and NodePort) serves none.
pub fn service_ports<'a>(
    svc: &Value,
    slices: impl IntoIterator<Item = &'a Value>,
) -> Vec<ServicePort> {
    let meta = &svc["metadata"];
    let (Some(namespace), Some(service)) = (meta["namespace"].as_str(), meta["name"].as_str())
    else {
        return Vec::new();
    };
    let spec = &svc["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(ty, "ClusterIP" | "NodePort") {
        return Vec::new();
    }
    let mut cluster_ips: Vec<Ipv4Addr> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if cluster_ips.is_empty() {
        cluster_ips.extend(
            spec["clusterIP"]
                .as_str()
                .and_then(|s| s.parse::<Ipv4Addr>().ok()),
        );
    }
    if cluster_ips.is_empty() {
        return Vec::new();
    }
    let affinity = (spec["sessionAffinity"] == "ClientIP").then(|| {
        spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
            .as_u64()
            .filter(|t| *t > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_AFFINITY)
    });
    let slices: Vec<&Value> = slices
        .into_iter()
        .filter(|s| {
            s["metadata"]["namespace"].as_str() == Some(namespace)
                && s["metadata"]["labels"][LABEL_SERVICE_NAME].as_str() == Some(service)
                && s["addressType"].as_str().unwrap_or("IPv4") == "IPv4"
        })
        .collect();
    let mut out = Vec::new();
    for p in spec["ports"].as_array().into_iter().flatten() {
        let Some(protocol) = Protocol::parse(p["protocol"].as_str().unwrap_or("TCP")) else {
            continue;
        };
        let Some(port) = p["port"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
            continue;
        };
        let name = p["name"].as_str().unwrap_or("").to_string();
        let node_port = (ty == "NodePort")
            .then(|| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
            .flatten()
            .filter(|n| *n != 0);
        let mut endpoints = BTreeSet::new();
        for slice in &slices {
            endpoints.extend(slice_endpoints(slice, &name, protocol));
        }
        out.push(ServicePort {
            namespace: namespace.to_string(),
            service: service.to_string(),
            name,
            protocol,
            cluster_ips: cluster_ips.clone(),
            port,
            node_port,
            affinity,
            internal_local: spec["internalTrafficPolicy"] == "Local",
            external_local: node_port.is_some() && spec["externalTrafficPolicy"] == "Local",
            endpoints: endpoints.into_iter().collect(),
        });
    }
    out
}

/// The endpoints a slice gives the Service port `name`/`protocol`: its port of that name
/// (the slice controller names slice ports after the Service's), for each of its endpoints'
/// addresses. A condition left out counts as Kubernetes says: `ready` and `serving` as
/// true, `terminating` as false.
fn slice_endpoints(slice: &Value, name: &str, protocol: Protocol) -> Vec<Endpoint> {
    let port = slice["ports"].as_array().into_iter().flatten().find(|p| {
        p["name"].as_str().unwrap_or("") == name
            && Protocol::parse(p["protocol"].as_str().unwrap_or("TCP")) == Some(protocol)
    });
    let Some(number) = port
        .and_then(|p| p["port"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in slice["endpoints"].as_array().into_iter().flatten() {
        let c = &e["conditions"];
        let ready = c["ready"].as_bool().unwrap_or(true);
        let serving = c["serving"].as_bool().unwrap_or(ready);
        let terminating = c["terminating"].as_bool().unwrap_or(false);
        let node = e["nodeName"].as_str().map(str::to_string);
        for a in e["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
                out.push(Endpoint {
                    addr: SocketAddrV4::new(ip, number),
                    node: node.clone(),
                    ready,
                    serving,
                    terminating,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"namespace": "shop", "name": "web"}, "spec": spec})
    }

    fn slice(name: &str, ports: Value, endpoints: Value) -> Value {
        json!({
            "metadata": {"namespace": "shop", "name": name,
                         "labels": {LABEL_SERVICE_NAME: "web"}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
        })
    }

    fn ep(ip: &str, node: &str, ready: bool, terminating: bool) -> Value {
        json!({"addresses": [ip], "nodeName": node,
               "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating}})
    }

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn ports_resolve_through_the_slices_port_names() {
        let s = svc(json!({
            "type": "NodePort", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            ],
        }));
        // A named target port: pods of one slice listen on 8080, of another on 9090.
        let a = slice(
            "web-a",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
            json!([ep("10.42.0.5", "n1", true, false)]),
        );
        let b = slice(
            "web-b",
            json!([{"name": "http", "port": 9090, "protocol": "TCP"}]),
            json!([ep("10.42.1.7", "n2", true, false)]),
        );
        let mut other = slice(
            "db",
            json!([{"name": "http", "port": 1, "protocol": "TCP"}]),
            json!([ep("10.42.9.9", "n1", true, false)]),
        );
        other["metadata"]["labels"][LABEL_SERVICE_NAME] = json!("db");
        let ports = service_ports(&s, [&a, &b, &other]);
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.key_name(), "web:80:tcp");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.cluster_ips, vec![Ipv4Addr::new(10, 43, 0, 10)]);
        assert_eq!(
            http.targets(Ingress::ClusterIp, "n1"),
            vec![addr("10.42.0.5:8080"), addr("10.42.1.7:9090")]
        );
        let dns = &ports[1];
        assert_eq!(dns.protocol, Protocol::Udp);
        assert_eq!(
            dns.targets(Ingress::NodePort, "n1"),
            vec![addr("10.42.0.5:5353")]
        );
        assert_eq!(
            http.to_string(),
            "10.43.0.10:80/tcp nodePort 30080, 2/2 ready"
        );
    }

    #[test]
    fn not_ready_endpoints_take_nothing_until_only_terminating_ones_serve() {
        let s = svc(json!({"clusterIP": "10.43.0.10", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let sl = slice(
            "web-a",
            json!([{"name": "", "port": 80, "protocol": "TCP"}]),
            json!([
                ep("10.42.0.5", "n1", true, false),
                ep("10.42.0.6", "n1", false, false),
                ep("10.42.0.7", "n1", false, true)
            ]),
        );
        let p = &service_ports(&s, [&sl])[0];
        assert_eq!(
            p.targets(Ingress::ClusterIp, "n1"),
            vec![addr("10.42.0.5:80")]
        );
        assert_eq!(p.addresses().len(), 3);
        // The ready one gone: the terminating one that still serves takes connections.
        let sl = slice(
            "web-a",
            json!([{"port": 80, "protocol": "TCP"}]),
            json!([
                ep("10.42.0.6", "n1", false, false),
                ep("10.42.0.7", "n1", false, true)
            ]),
        );
        let p = &service_ports(&s, [&sl])[0];
        assert_eq!(
            p.targets(Ingress::ClusterIp, "n1"),
            vec![addr("10.42.0.7:80")]
        );
        // Conditions left out mean ready.
        let sl = slice(
            "web-a",
            json!([{"port": 80}]),
            json!([{"addresses": ["10.42.0.8"]}]),
        );
        let p = &service_ports(&s, [&sl])[0];
        assert_eq!(
            p.targets(Ingress::ClusterIp, "n1"),
            vec![addr("10.42.0.8:80")]
        );
    }

    #[test]
    fn local_policies_keep_to_the_nodes_own_endpoints() {
        let s = svc(json!({
            "type": "NodePort", "clusterIP": "10.43.0.10", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
        }));
        let sl = slice(
            "web-a",
            json!([{"port": 80, "protocol": "TCP"}]),
            json!([
                ep("10.42.0.5", "n1", true, false),
                ep("10.42.1.5", "n2", true, false)
            ]),
        );
        let p = &service_ports(&s, [&sl])[0];
        assert_eq!(
            p.targets(Ingress::NodePort, "n1"),
            vec![addr("10.42.0.5:80")]
        );
        assert_eq!(p.targets(Ingress::NodePort, "n3"), vec![]);
        assert_eq!(p.targets(Ingress::ClusterIp, "n3").len(), 2);
        let mut internal = s.clone();
        internal["spec"]["internalTrafficPolicy"] = json!("Local");
        let p = &service_ports(&internal, [&sl])[0];
        assert_eq!(
            p.targets(Ingress::ClusterIp, "n2"),
            vec![addr("10.42.1.5:80")]
        );
    }

    #[test]
    fn headless_and_affinity() {
        let headless = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(service_ports(&headless, []).is_empty());
        let sticky = svc(
            json!({"clusterIP": "10.43.0.3", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}, "ports": [{"port": 80}]}),
        );
        assert_eq!(
            service_ports(&sticky, [])[0].affinity,
            Some(Duration::from_secs(30))
        );
        let plain = svc(json!({"clusterIP": "10.43.0.3", "ports": [{"port": 80}]}));
        assert_eq!(service_ports(&plain, [])[0].affinity, None);
        assert!(service_ports(&plain, [])[0].endpoints.is_empty());
    }
}
