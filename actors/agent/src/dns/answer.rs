//! What the cluster DNS answers (pure), from the Services and EndpointSlices the node sees,
//! after Kubernetes' DNS specification:
//! - `<svc>.<ns>.svc.<domain>`: A, the cluster IP; for a headless Service, the addresses of
//!   its ready endpoints; each of those also as `<a-b-c-d>.<svc>.<ns>.svc.<domain>` (or the
//!   endpoint's `hostname`);
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for each named port (the Service's
//!   name and port; for a headless Service, one per ready endpoint, with its port);
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A, that address.
//!
//! A name under the domain that names nothing is NXDOMAIN; a name that exists asked for
//! another type is an empty answer. Names outside the domain are not ours.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::Value;

use crate::proxy::table::LABEL_SERVICE_NAME;

/// The record types the cluster answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qtype {
    A,
    Srv,
    /// Any type with no cluster records (AAAA, TXT, ...).
    Other,
}

/// One record of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rec {
    A {
        name: String,
        ip: Ipv4Addr,
    },
    Srv {
        name: String,
        port: u16,
        target: String,
    },
}

/// The answer to one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name exists: these records (none when it has none of the type asked).
    Records(Vec<Rec>),
    /// Under the cluster domain, and nothing by that name.
    NxDomain,
    /// Outside the cluster domain: the node's resolvers answer.
    NotOurs,
}

/// What the answers are read from.
pub trait Objects {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>>;
    /// The EndpointSlices of namespace `namespace`.
    fn slices(&self, namespace: &str) -> Vec<Arc<Value>>;
}

/// Answers `qname` (any case, with or without the final dot) for `qtype` under `domain`.
pub fn answer(objects: &dyn Objects, domain: &str, qname: &str, qtype: Qtype) -> Answer {
    let name = qname.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let Some(rest) = name.strip_suffix(&domain).and_then(|r| {
        if r.is_empty() {
            Some("")
        } else {
            r.strip_suffix('.')
        }
    }) else {
        return Answer::NotOurs;
    };
    let labels: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('.').collect()
    };
    let fqdn = |parts: &[&str]| format!("{}.{domain}", parts.join("."));
    match labels.as_slice() {
        // The domain itself, `svc.<domain>`, `<ns>.svc.<domain>` and `pod.<domain>` exist
        // (with no records).
        [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Answer::Records(Vec::new()),
        [dashed, ns, "pod"] => match dashed_ip(dashed) {
            Some(ip) if qtype == Qtype::A => Answer::Records(vec![Rec::A {
                name: fqdn(&[dashed, ns, "pod"]),
                ip,
            }]),
            Some(_) => Answer::Records(Vec::new()),
            None => Answer::NxDomain,
        },
        [svc, ns, "svc"] => {
            let Some(service) = objects.service(ns, svc) else {
                return Answer::NxDomain;
            };
            if qtype != Qtype::A {
                return Answer::Records(Vec::new());
            }
            let name = fqdn(&[svc, ns, "svc"]);
            let ips = match cluster_ip(&service) {
                Some(ip) => vec![ip],
                None => ready_endpoints(objects, ns, svc)
                    .into_iter()
                    .map(|e| e.ip)
                    .collect(),
            };
            Answer::Records(
                ips.into_iter()
                    .map(|ip| Rec::A {
                        name: name.clone(),
                        ip,
                    })
                    .collect(),
            )
        }
        [host, svc, ns, "svc"] if !host.starts_with('_') => {
            let found = objects
                .service(ns, svc)
                .filter(|s| cluster_ip(s).is_none())
                .and_then(|_| {
                    ready_endpoints(objects, ns, svc)
                        .into_iter()
                        .find(|e| e.host == *host)
                });
            match found {
                Some(e) if qtype == Qtype::A => Answer::Records(vec![Rec::A {
                    name: fqdn(&[host, svc, ns, "svc"]),
                    ip: e.ip,
                }]),
                Some(_) => Answer::Records(Vec::new()),
                None => Answer::NxDomain,
            }
        }
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            let (port_name, proto) = (&port[1..], proto[1..].to_ascii_uppercase());
            let Some(service) = objects.service(ns, svc) else {
                return Answer::NxDomain;
            };
            let Some(spec_port) = service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| {
                    p["name"].as_str() == Some(port_name)
                        && p["protocol"].as_str().unwrap_or("TCP") == proto
                })
            else {
                return Answer::NxDomain;
            };
            if qtype != Qtype::Srv {
                return Answer::Records(Vec::new());
            }
            let name = fqdn(&[
                port,
                &format!("_{}", proto.to_ascii_lowercase()),
                svc,
                ns,
                "svc",
            ]);
            if cluster_ip(&service).is_some() {
                let port = spec_port["port"].as_u64().unwrap_or(0) as u16;
                return Answer::Records(vec![Rec::Srv {
                    name,
                    port,
                    target: fqdn(&[svc, ns, "svc"]),
                }]);
            }
            Answer::Records(
                ready_endpoints(objects, ns, svc)
                    .into_iter()
                    .filter_map(|e| {
                        let port = *e.ports.get(&(port_name.to_string(), proto.clone()))?;
                        Some(Rec::Srv {
                            name: name.clone(),
                            port,
                            target: fqdn(&[&e.host, svc, ns, "svc"]),
                        })
                    })
                    .collect(),
            )
        }
        _ => Answer::NxDomain,
    }
}

/// `10-42-0-5` → 10.42.0.5.
fn dashed_ip(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

fn cluster_ip(svc: &Value) -> Option<Ipv4Addr> {
    svc["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| *ip != "None")
        .and_then(|ip| ip.parse().ok())
}

/// A ready endpoint of a headless Service, with its DNS label and named ports.
struct ReadyEndpoint {
    ip: Ipv4Addr,
    host: String,
    ports: std::collections::BTreeMap<(String, String), u16>,
}

fn ready_endpoints(objects: &dyn Objects, ns: &str, svc: &str) -> Vec<ReadyEndpoint> {
    let mut out: Vec<ReadyEndpoint> = Vec::new();
    for slice in objects.slices(ns) {
        if slice["metadata"]["labels"][LABEL_SERVICE_NAME].as_str() != Some(svc)
            || slice["addressType"].as_str().unwrap_or("IPv4") != "IPv4"
        {
            continue;
        }
        let ports: std::collections::BTreeMap<(String, String), u16> = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    (
                        p["name"].as_str().unwrap_or("").to_string(),
                        p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    ),
                    u16::try_from(p["port"].as_u64()?).ok()?,
                ))
            })
            .collect();
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            if !e["conditions"]["ready"].as_bool().unwrap_or(true) {
                continue;
            }
            for a in e["addresses"].as_array().into_iter().flatten() {
                let Some(ip) = a.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
                    continue;
                };
                if out.iter().any(|o| o.ip == ip) {
                    continue;
                }
                let host = e["hostname"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| ip.to_string().replace('.', "-"));
                out.push(ReadyEndpoint {
                    ip,
                    host,
                    ports: ports.clone(),
                });
            }
        }
    }
    out.sort_by_key(|e| e.ip);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Fake {
        services: BTreeMap<(String, String), Arc<Value>>,
        slices: Vec<Arc<Value>>,
    }

    impl Objects for Fake {
        fn service(&self, ns: &str, name: &str) -> Option<Arc<Value>> {
            self.services.get(&(ns.into(), name.into())).cloned()
        }
        fn slices(&self, ns: &str) -> Vec<Arc<Value>> {
            self.slices
                .iter()
                .filter(|s| s["metadata"]["namespace"] == ns)
                .cloned()
                .collect()
        }
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.services.insert(
            ("shop".into(), "web".into()),
            Arc::new(json!({"spec": {"clusterIP": "10.43.0.7",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})),
        );
        f.services.insert(
            ("shop".into(), "db".into()),
            Arc::new(json!({"spec": {"clusterIP": "None",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}})),
        );
        f.slices.push(Arc::new(json!({
            "metadata": {"namespace": "shop", "labels": {LABEL_SERVICE_NAME: "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.9"], "conditions": {"ready": true}},
                {"addresses": ["10.42.0.8"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.7"], "conditions": {"ready": false}},
            ],
        })));
        f
    }

    fn a(name: &str, ip: &str) -> Rec {
        Rec::A {
            name: name.into(),
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn services_and_pods_by_name() {
        let f = fake();
        let d = "cluster.local";
        assert_eq!(
            answer(&f, d, "WEB.shop.svc.cluster.local.", Qtype::A),
            Answer::Records(vec![a("web.shop.svc.cluster.local", "10.43.0.7")])
        );
        assert_eq!(
            answer(&f, d, "web.shop.svc.cluster.local", Qtype::Other),
            Answer::Records(vec![])
        );
        assert_eq!(
            answer(&f, d, "nope.shop.svc.cluster.local", Qtype::A),
            Answer::NxDomain
        );
        assert_eq!(
            answer(&f, d, "10-42-0-5.shop.pod.cluster.local", Qtype::A),
            Answer::Records(vec![a("10-42-0-5.shop.pod.cluster.local", "10.42.0.5")])
        );
        assert_eq!(
            answer(&f, d, "x-y.shop.pod.cluster.local", Qtype::A),
            Answer::NxDomain
        );
        assert_eq!(answer(&f, d, "example.com", Qtype::A), Answer::NotOurs);
        assert_eq!(answer(&f, d, "notcluster.local", Qtype::A), Answer::NotOurs);
        assert_eq!(
            answer(&f, d, "shop.svc.cluster.local", Qtype::A),
            Answer::Records(vec![])
        );
    }

    #[test]
    fn headless_services_answer_with_their_ready_endpoints() {
        let f = fake();
        let d = "cluster.local";
        assert_eq!(
            answer(&f, d, "db.shop.svc.cluster.local", Qtype::A),
            Answer::Records(vec![
                a("db.shop.svc.cluster.local", "10.42.0.8"),
                a("db.shop.svc.cluster.local", "10.42.0.9"),
            ])
        );
        assert_eq!(
            answer(&f, d, "db-0.db.shop.svc.cluster.local", Qtype::A),
            Answer::Records(vec![a("db-0.db.shop.svc.cluster.local", "10.42.0.8")])
        );
        assert_eq!(
            answer(&f, d, "10-42-0-9.db.shop.svc.cluster.local", Qtype::A),
            Answer::Records(vec![a("10-42-0-9.db.shop.svc.cluster.local", "10.42.0.9")])
        );
        // Not ready: not there.
        assert_eq!(
            answer(&f, d, "10-42-0-7.db.shop.svc.cluster.local", Qtype::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn srv_records_for_named_ports() {
        let f = fake();
        let d = "cluster.local";
        assert_eq!(
            answer(&f, d, "_http._tcp.web.shop.svc.cluster.local", Qtype::Srv),
            Answer::Records(vec![Rec::Srv {
                name: "_http._tcp.web.shop.svc.cluster.local".into(),
                port: 80,
                target: "web.shop.svc.cluster.local".into(),
            }])
        );
        assert_eq!(
            answer(&f, d, "_pg._tcp.db.shop.svc.cluster.local", Qtype::Srv),
            Answer::Records(vec![
                Rec::Srv {
                    name: "_pg._tcp.db.shop.svc.cluster.local".into(),
                    port: 5433,
                    target: "db-0.db.shop.svc.cluster.local".into(),
                },
                Rec::Srv {
                    name: "_pg._tcp.db.shop.svc.cluster.local".into(),
                    port: 5433,
                    target: "10-42-0-9.db.shop.svc.cluster.local".into(),
                },
            ])
        );
        assert_eq!(
            answer(&f, d, "_http._udp.web.shop.svc.cluster.local", Qtype::Srv),
            Answer::NxDomain
        );
    }
}
