//! HTTPS for the API server: a serving certificate from the cluster CA, the rustls
//! configuration (client certificates optional, verified against the CA), and the admin
//! kubeconfig written into the data dir.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use navarch_net::pki::{ClusterCa, Identity, PkiError};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The API server's certificate: serves only (no client authentication), valid for 127.0.0.1,
/// the address it serves, `extra_ips` (the `kubernetes` Service's cluster IP, the advertised
/// address) and the Service's in-cluster names.
pub fn serving_identity(
    ca: &ClusterCa,
    name: &str,
    listen: SocketAddr,
    extra_ips: &[IpAddr],
) -> Result<Identity, PkiError> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if !listen.ip().is_unspecified() {
        ips.push(listen.ip());
    }
    // In-cluster clients dial the `kubernetes` Service's cluster IP or its names (and the
    // proxy forwards to the advertised address).
    ips.extend(
        extra_ips
            .iter()
            .filter(|ip| !ips.contains(ip))
            .copied()
            .collect::<Vec<_>>(),
    );
    ca.issue_serving_names(&format!("{name}-apiserver"), &ips, IN_CLUSTER_NAMES, YEAR)
}

/// The names in-cluster clients know the API by (kube-apiserver's serving certificate
/// carries the same).
pub const IN_CLUSTER_NAMES: &[&str] = &[
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The rustls server configuration: TLS 1.3, HTTP/2 and HTTP/1.1, client certificates
/// optional but verified against the cluster CA when presented.
pub fn server_config(
    identity: &Identity,
    name: &str,
) -> Result<rustls::ServerConfig, navarch_net::NetError> {
    navarch_net::rustls_server_config(identity, name, vec![b"h2".to_vec(), b"http/1.1".to_vec()])
}

/// The URL clients reach an API server listening on `listen` at.
pub fn server_url(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        listen.ip()
    };
    format!("https://{}", SocketAddr::new(ip, listen.port()))
}

/// A kubeconfig for `identity` (client certificate) against `server`.
pub fn kubeconfig(server: &str, identity: &Identity, user: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: navarch\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {user}@navarch\n  context:\n    cluster: navarch\n    user: {user}\n    namespace: default\ncurrent-context: {user}@navarch\npreferences: {{}}\n",
        ca = b64(&identity.ca_pem),
        cert = b64(&identity.cert_pem),
        key = b64(&identity.key_pem),
    )
}

/// Writes `admin.kubeconfig` (mode 0600) into `data_dir`.
pub fn write_admin_kubeconfig(
    data_dir: &Path,
    server: &str,
    admin: &Identity,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("admin.kubeconfig");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(kubeconfig(server, admin, "admin").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_use_loopback_for_unspecified_addresses() {
        assert_eq!(
            server_url("0.0.0.0:6443".parse().unwrap()),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            server_url("127.0.0.2:7443".parse().unwrap()),
            "https://127.0.0.2:7443"
        );
    }
}
