//! A pod's `/etc/resolv.conf` (pure), as the kubelet writes it from the pod's `dnsPolicy`
//! and `dnsConfig`:
//! - `ClusterFirst` (the default): the cluster DNS, the search path
//!   `<ns>.svc.<domain> svc.<domain> <domain>` then the node's, `ndots:5`; a pod on the
//!   host's network gets the node's resolv.conf instead, unless `ClusterFirstWithHostNet`;
//!   without a cluster DNS it falls back to `Default`, as the kubelet does;
//! - `Default`: the node's resolv.conf;
//! - `None`: only `dnsConfig`.
//!
//! `dnsConfig` is merged in: its nameservers and searches appended (duplicates dropped; at
//! most 3 nameservers and 32 searches, Kubernetes' limits), its options override by name.

use std::net::Ipv4Addr;

use serde_json::Value;

/// What a resolv.conf says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<(String, Option<String>)>,
}

/// Reads the nameservers, search list and options of a resolv.conf.
pub fn parse(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                r.searches = words.map(str::to_string).collect();
            }
            Some("options") => {
                for o in words {
                    set_option(&mut r.options, o);
                }
            }
            _ => {}
        }
    }
    r
}

fn set_option(options: &mut Vec<(String, Option<String>)>, o: &str) {
    let (name, value) = match o.split_once(':') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (o.to_string(), None),
    };
    options.retain(|(n, _)| *n != name);
    options.push((name, value));
}

/// The resolv.conf of `pod` (in namespace `ns`), given the node's cluster DNS addresses,
/// its domain and the node's own resolv.conf.
pub fn for_pod(pod: &Value, cluster_dns: &[Ipv4Addr], domain: &str, node: &str) -> String {
    let spec = &pod["spec"];
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let host_network = spec["hostNetwork"].as_bool().unwrap_or(false);
    let policy = spec["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
    let node = parse(node);
    let cluster_first = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut r = if policy == "None" {
        Resolv::default()
    } else if cluster_first && !cluster_dns.is_empty() {
        let mut searches = vec![
            format!("{ns}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_string(),
        ];
        searches.extend(node.searches.iter().cloned());
        Resolv {
            nameservers: cluster_dns.iter().map(|ip| ip.to_string()).collect(),
            searches,
            options: vec![("ndots".into(), Some("5".into()))],
        }
    } else {
        node
    };
    let cfg = &spec["dnsConfig"];
    for n in cfg["nameservers"].as_array().into_iter().flatten() {
        if let Some(n) = n.as_str() {
            r.nameservers.push(n.to_string());
        }
    }
    for s in cfg["searches"].as_array().into_iter().flatten() {
        if let Some(s) = s.as_str() {
            r.searches.push(s.to_string());
        }
    }
    for o in cfg["options"].as_array().into_iter().flatten() {
        if let Some(name) = o["name"].as_str() {
            let text = match o["value"].as_str() {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            set_option(&mut r.options, &text);
        }
    }
    dedup(&mut r.nameservers);
    dedup(&mut r.searches);
    r.nameservers.truncate(3);
    r.searches.truncate(32);
    render(&r)
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

fn render(r: &Resolv) -> String {
    let mut out = String::new();
    for n in &r.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    if !r.options.is_empty() {
        let opts: Vec<String> = r
            .options
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => n.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NODE: &str = "# generated\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"namespace": "shop"}, "spec": spec})
    }

    fn dns() -> Vec<Ipv4Addr> {
        vec![Ipv4Addr::new(10, 43, 0, 10)]
    }

    #[test]
    fn cluster_first_points_at_the_cluster_dns_with_the_search_path() {
        let r = for_pod(&pod(json!({})), &dns(), "cluster.local", NODE);
        assert_eq!(
            r,
            "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"
        );
        // On the host's network: the node's, unless ClusterFirstWithHostNet.
        let host = for_pod(
            &pod(json!({"hostNetwork": true})),
            &dns(),
            "cluster.local",
            NODE,
        );
        assert_eq!(
            host,
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
        );
        let with = for_pod(
            &pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
            &dns(),
            "cluster.local",
            NODE,
        );
        assert!(with.starts_with("nameserver 10.43.0.10\n"), "{with}");
        // No cluster DNS: Default.
        assert_eq!(
            for_pod(&pod(json!({})), &[], "cluster.local", NODE),
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
        );
    }

    #[test]
    fn default_none_and_dns_config() {
        let d = for_pod(
            &pod(json!({"dnsPolicy": "Default"})),
            &dns(),
            "cluster.local",
            NODE,
        );
        assert_eq!(
            d,
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
        );
        let none = for_pod(
            &pod(json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["192.0.2.1", "192.0.2.1"], "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})),
            &dns(),
            "cluster.local",
            NODE,
        );
        assert_eq!(
            none,
            "nameserver 192.0.2.1\nsearch a.example\noptions ndots:2 edns0\n"
        );
        let merged = for_pod(
            &pod(
                json!({"dnsConfig": {"searches": ["extra.example"], "options": [{"name": "ndots", "value": "1"}]}}),
            ),
            &dns(),
            "cluster.local",
            NODE,
        );
        assert_eq!(
            merged,
            "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\noptions ndots:1\n"
        );
    }
}
