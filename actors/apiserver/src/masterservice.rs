//! The `kubernetes` Service in `default`, which in-cluster clients reach the API through:
//! every master keeps a Lease in `kube-system` naming its API address, and reconciles the
//! Service (the service range's first address, port 443 to the named port `https`) and its
//! EndpointSlices (one per distinct API port, the addresses of the masters whose leases are
//! live), as kube-apiserver's lease endpoint reconciler does. A master that stops renewing
//! drops out of the slices within a lease duration.
//!
//! [`plan`] is the pure part (leases and slices in, writes out); [`reconcile`] reads and
//! writes through the pipeline as the API server's own identity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use navarch_client::{Client, ClientError};
use navarch_model::ApiError;
use serde_json::{json, Value};

use crate::ApiServer;

/// Where masters' leases live.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The label on masters' API leases.
pub const LEASE_LABEL: &str = "navarch.io/apiserver";
/// The annotation of a master's lease with its API address (`ip:port`).
pub const ADDRESS_ANNOTATION: &str = "navarch.io/api-address";
/// How long a master's lease lasts without renewal.
pub const LEASE_SECONDS: i64 = 30;
/// The `endpointslice.kubernetes.io/managed-by` value of the slices masters write: only
/// `system:masters` may write slices with it, and only they may hold loopback addresses.
pub use navarch_model::validate::API_SERVER_SLICE_MANAGER as SLICE_MANAGER;
const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The Service's and its slices' name.
pub const SERVICE: &str = "kubernetes";
/// The Service's port, and its port name.
pub const SERVICE_PORT: i64 = 443;
pub const PORT_NAME: &str = "https";

/// One write the plan asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Create(Value),
    Update(Value),
    Delete(String),
}

/// The name of the lease of master `member`.
pub fn lease_name(member: &str) -> String {
    format!("apiserver-{member}")
}

/// The lease of master `member`, serving at `address`, renewed `now` (`existing`: the
/// stored one, whose `resourceVersion` the update carries).
pub fn lease(
    member: &str,
    address: SocketAddr,
    now: SystemTime,
    existing: Option<&Value>,
) -> Value {
    let mut l = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {
            "name": lease_name(member), "namespace": LEASE_NAMESPACE,
            "labels": {LEASE_LABEL: "true"},
            "annotations": {ADDRESS_ANNOTATION: address.to_string()},
        },
        "spec": {
            "holderIdentity": member,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": navarch_model::time::format_rfc3339_micros(now),
        },
    });
    if let Some(rv) = existing.and_then(|e| e["metadata"]["resourceVersion"].as_str()) {
        l["metadata"]["resourceVersion"] = json!(rv);
    }
    l
}

/// The API addresses of the masters whose leases among `leases` are live at `now` (Unix
/// seconds), sorted.
pub fn live_addresses(leases: &[Value], now: i64) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = leases
        .iter()
        .filter(|l| l["metadata"]["labels"][LEASE_LABEL] == "true")
        .filter(|l| {
            let renewed = l["spec"]["renewTime"]
                .as_str()
                .and_then(navarch_model::time::parse_rfc3339);
            let lasts = l["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0);
            renewed.is_some_and(|r| r + lasts > now)
        })
        .filter_map(|l| l["metadata"]["annotations"][ADDRESS_ANNOTATION].as_str())
        .filter_map(|a| a.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The Service as masters keep it, on cluster IP `cluster_ip`.
pub fn service(cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "sessionAffinity": "None",
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP", "targetPort": PORT_NAME}],
        },
    })
}

/// The slice name for API port `port`: `kubernetes` for the lowest port, `kubernetes-<port>`
/// for any other (masters of one cluster normally share one port).
fn slice_name(port: u16, lowest: u16) -> String {
    if port == lowest {
        SERVICE.to_string()
    } else {
        format!("{SERVICE}-{port}")
    }
}

fn slice(name: &str, port: u16, ips: &[String], existing: Option<&Value>) -> Value {
    let mut s = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {LABEL_SERVICE_NAME: SERVICE, LABEL_MANAGED_BY: SLICE_MANAGER}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
    });
    if let Some(rv) = existing.and_then(|e| e["metadata"]["resourceVersion"].as_str()) {
        s["metadata"]["resourceVersion"] = json!(rv);
    }
    s
}

/// What to write so that the masters' slices among `slices` (the Service's, any manager)
/// hold exactly `live` (IPv4 addresses only; the Service is IPv4). Slices of other managers
/// are left alone.
pub fn plan(live: &[SocketAddr], slices: &[Value]) -> Vec<Write> {
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for a in live.iter().filter(|a| a.is_ipv4()) {
        by_port
            .entry(a.port())
            .or_default()
            .push(a.ip().to_string());
    }
    let ours: Vec<&Value> = slices
        .iter()
        .filter(|s| s["metadata"]["labels"][LABEL_MANAGED_BY] == SLICE_MANAGER)
        .collect();
    let find = |name: &str| ours.iter().find(|s| s["metadata"]["name"] == name).copied();
    let mut out = Vec::new();
    let lowest = by_port.keys().next().copied().unwrap_or(0);
    let mut wanted = Vec::new();
    for (port, ips) in &by_port {
        let name = slice_name(*port, lowest);
        let existing = find(&name);
        let want = slice(&name, *port, ips, existing);
        match existing {
            None => out.push(Write::Create(want)),
            Some(e) if e["endpoints"] != want["endpoints"] || e["ports"] != want["ports"] => {
                out.push(Write::Update(want))
            }
            Some(_) => {}
        }
        wanted.push(name);
    }
    for s in ours {
        let name = s["metadata"]["name"].as_str().unwrap_or("");
        if !wanted.iter().any(|w| w == name) {
            out.push(Write::Delete(name.to_string()));
        }
    }
    out
}

fn api_err(e: ClientError) -> ApiError {
    match e {
        ClientError::Api(e) => e,
        other => ApiError::internal(other.to_string()),
    }
}

/// Creates the `kubernetes` Service if it is missing (one that exists is left as it is).
pub async fn ensure_service(api: &ApiServer) -> Result<(), ApiError> {
    let client = api.client(ApiServer::own_identity());
    let services = navarch_client::kind("", "v1", "services");
    let cluster_ip = api.storage().service_range().first().to_string();
    match client
        .create(
            services,
            Some("default"),
            service(&cluster_ip),
            &Default::default(),
        )
        .await
    {
        Ok(_) => tracing::info!(cluster_ip = %cluster_ip, "created the kubernetes service"),
        Err(e) if e.is_conflict() => {}
        Err(e) => return Err(api_err(e)),
    }
    Ok(())
}

/// One round: renews this master's lease, makes sure the Service exists, and brings the
/// slices to the live leases. Run every few seconds by each master.
pub async fn reconcile(api: &ApiServer, member: &str, address: SocketAddr) -> Result<(), ApiError> {
    let client = api.client(ApiServer::own_identity());
    let w = Default::default();
    let leases = navarch_client::kind("coordination.k8s.io", "v1", "leases");
    let name = lease_name(member);
    let existing = match client
        .get(leases, Some(LEASE_NAMESPACE), &name, &Default::default())
        .await
    {
        Ok(l) => Some(l),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(api_err(e)),
    };
    let mine = lease(member, address, SystemTime::now(), existing.as_ref());
    match &existing {
        None => client
            .create(leases, Some(LEASE_NAMESPACE), mine, &w)
            .await
            .map(|_| ()),
        Some(_) => client
            .update(leases, Some(LEASE_NAMESPACE), &name, None, mine, &w)
            .await
            .map(|_| ()),
    }
    .or_else(|e| if e.is_conflict() { Ok(()) } else { Err(e) })
    .map_err(api_err)?;

    ensure_service(api).await?;

    let all = client
        .list(leases, Some(LEASE_NAMESPACE), &Default::default())
        .await
        .map_err(api_err)?
        .items;
    let live = live_addresses(&all, crate::time::unix_now());
    let slices_kind = navarch_client::kind("discovery.k8s.io", "v1", "endpointslices");
    let opts = navarch_model::options::ListOptions {
        label_selector: navarch_model::selector::LabelSelector::parse(&format!(
            "{LABEL_SERVICE_NAME}={SERVICE}"
        ))
        .map_err(|e| ApiError::internal(e.to_string()))?,
        ..Default::default()
    };
    let slices = client
        .list(slices_kind, Some("default"), &opts)
        .await
        .map_err(api_err)?
        .items;
    for write in plan(&live, &slices) {
        let r = match &write {
            Write::Create(s) => client
                .create(slices_kind, Some("default"), s.clone(), &w)
                .await
                .map(|_| ()),
            Write::Update(s) => {
                let n = s["metadata"]["name"].as_str().unwrap_or("");
                client
                    .update(slices_kind, Some("default"), n, None, s.clone(), &w)
                    .await
                    .map(|_| ())
            }
            Write::Delete(n) => client
                .delete(slices_kind, Some("default"), n, &Default::default())
                .await
                .map(|_| ()),
        };
        match r {
            Ok(()) => {
                tracing::info!(write = ?write_name(&write), masters = ?live, "kubernetes service endpoints written")
            }
            // Another master wrote meanwhile: the next round sees it.
            Err(e) if e.is_conflict() || e.is_not_found() => {}
            Err(e) => return Err(api_err(e)),
        }
    }
    Ok(())
}

fn write_name(w: &Write) -> String {
    match w {
        Write::Create(s) => format!("create {}", s["metadata"]["name"].as_str().unwrap_or("")),
        Write::Update(s) => format!("update {}", s["metadata"]["name"].as_str().unwrap_or("")),
        Write::Delete(n) => format!("delete {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn live_leases_give_the_addresses() {
        let a: SocketAddr = "127.0.0.2:6443".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:6443".parse().unwrap();
        let leases = vec![
            lease("m1", a, at(1_000), None),
            lease("m2", b, at(900), None),
            json!({"metadata": {"name": "other"}, "spec": {"renewTime": "1970-01-01T00:16:40Z", "leaseDurationSeconds": 30}}),
        ];
        assert_eq!(live_addresses(&leases, 1_010), vec![a]);
        assert_eq!(live_addresses(&leases, 920), vec![a, b]);
        assert!(live_addresses(&leases, 1_031).is_empty());
        let renewed = lease(
            "m1",
            a,
            at(1_000),
            Some(&json!({"metadata": {"resourceVersion": "9"}})),
        );
        assert_eq!(renewed["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn slices_follow_the_live_masters() {
        let m = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let live = [
            m("127.0.0.2:6443"),
            m("127.0.0.3:6443"),
            m("127.0.0.4:7443"),
        ];
        let writes = plan(&live, &[]);
        assert_eq!(writes.len(), 2);
        let Write::Create(first) = &writes[0] else {
            panic!("{writes:?}")
        };
        assert_eq!(first["metadata"]["name"], "kubernetes");
        assert_eq!(
            first["ports"],
            json!([{"name": "https", "port": 6443, "protocol": "TCP"}])
        );
        assert_eq!(first["endpoints"][1]["addresses"], json!(["127.0.0.3"]));
        let Write::Create(second) = &writes[1] else {
            panic!("{writes:?}")
        };
        assert_eq!(second["metadata"]["name"], "kubernetes-7443");

        // Up to date: nothing. One master gone: an update and a delete.
        let mut stored: Vec<Value> = writes
            .into_iter()
            .map(|w| match w {
                Write::Create(mut s) => {
                    s["metadata"]["resourceVersion"] = json!("5");
                    s
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let foreign =
            json!({"metadata": {"name": "by-hand", "labels": {LABEL_SERVICE_NAME: "kubernetes"}}});
        stored.push(foreign);
        assert!(plan(&live, &stored).is_empty());
        let writes = plan(&live[..1], &stored);
        assert_eq!(writes.len(), 2, "{writes:?}");
        let Write::Update(u) = &writes[0] else {
            panic!("{writes:?}")
        };
        assert_eq!(u["metadata"]["resourceVersion"], "5");
        assert_eq!(u["endpoints"].as_array().unwrap().len(), 1);
        assert_eq!(writes[1], Write::Delete("kubernetes-7443".into()));
        // No master live: the masters' slices go, the hand-made one stays.
        assert_eq!(
            plan(&[], &stored),
            vec![
                Write::Delete("kubernetes".into()),
                Write::Delete("kubernetes-7443".into())
            ]
        );
        let svc = service("10.43.0.1");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "https");
    }
}
