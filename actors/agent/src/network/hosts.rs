//! A pod's `/etc/hosts`, as the kubelet writes it for a pod on the pod network: its
//! header, the IPv4 and IPv6 localhost lines, the pod's own address with its hostname
//! (or, with `hostname` and `subdomain` set, its FQDN
//! `<hostname>.<subdomain>.<namespace>.svc.<cluster domain>` first), then the pod's
//! `hostAliases`, one line per address. Pure.

use serde_json::Value;

/// The cluster's DNS domain, as the kubelet's default.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// One `spec.hostAliases` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// What a pod's hosts file is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsSpec {
    /// The pod's hostname: `spec.hostname`, or its name.
    pub hostname: String,
    /// `spec.subdomain`, empty for none.
    pub subdomain: String,
    pub namespace: String,
    pub aliases: Vec<HostAlias>,
}

impl HostsSpec {
    /// The hosts file's parts from a pod object.
    pub fn from_pod(pod: &Value) -> HostsSpec {
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let spec = &pod["spec"];
        let hostname = match spec["hostname"].as_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => text(&pod["metadata"]["name"]),
        };
        let aliases = spec["hostAliases"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|a| HostAlias {
                        ip: text(&a["ip"]),
                        hostnames: a["hostnames"]
                            .as_array()
                            .map(|h| h.iter().map(text).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        HostsSpec {
            hostname,
            subdomain: text(&spec["subdomain"]),
            namespace: text(&pod["metadata"]["namespace"]),
            aliases,
        }
    }
}

/// The hosts file of a pod with addresses `pod_ips` (its IPv4 first) in a cluster whose
/// DNS domain is `cluster_domain`.
pub fn hosts_file(pod_ips: &[String], spec: &HostsSpec, cluster_domain: &str) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        if spec.subdomain.is_empty() {
            out.push_str(&format!("{ip}\t{}\n", spec.hostname));
        } else {
            out.push_str(&format!(
                "{ip}\t{host}.{sub}.{ns}.svc.{cluster_domain}\t{host}\n",
                host = spec.hostname,
                sub = spec.subdomain,
                ns = spec.namespace,
            ));
        }
    }
    if !spec.aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in &spec.aliases {
            out.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.join("\t")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEADER: &str = "# Kubernetes-managed hosts file.\n\
        127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\n\
        fe00::0\tip6-localnet\n\
        fe00::0\tip6-mcastprefix\n\
        fe00::1\tip6-allnodes\n\
        fe00::2\tip6-allrouters\n";

    #[test]
    fn a_plain_pod_gets_the_header_and_its_name() {
        let pod = json!({ "metadata": { "name": "nginx", "namespace": "default" }, "spec": {} });
        let file = hosts_file(
            &["10.42.3.4".into()],
            &HostsSpec::from_pod(&pod),
            CLUSTER_DOMAIN,
        );
        assert_eq!(file, format!("{HEADER}10.42.3.4\tnginx\n"));
    }

    #[test]
    fn hostname_and_subdomain_give_the_fqdn_first() {
        let pod = json!({
            "metadata": { "name": "web-0-abcde", "namespace": "shop" },
            "spec": { "hostname": "web-0", "subdomain": "nginx" }
        });
        let file = hosts_file(
            &["10.42.3.9".into()],
            &HostsSpec::from_pod(&pod),
            "cluster.local",
        );
        assert_eq!(
            file,
            format!("{HEADER}10.42.3.9\tweb-0.nginx.shop.svc.cluster.local\tweb-0\n")
        );
    }

    #[test]
    fn host_aliases_are_appended_one_line_per_address() {
        let pod = json!({
            "metadata": { "name": "p", "namespace": "default" },
            "spec": { "hostAliases": [
                { "ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"] },
                { "ip": "10.1.2.3", "hostnames": ["foo.remote"] }
            ]}
        });
        let file = hosts_file(
            &["10.42.3.5".into()],
            &HostsSpec::from_pod(&pod),
            CLUSTER_DOMAIN,
        );
        assert_eq!(
            file,
            format!(
                "{HEADER}10.42.3.5\tp\n\n# Entries added by HostAliases.\n\
                 127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
            )
        );
    }
}
