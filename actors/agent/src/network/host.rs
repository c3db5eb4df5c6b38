//! What the pod network changes on the host, and nothing more: IPv4 forwarding on (so a
//! pod reaches pods behind another node's bridge on the same machine), and an
//! `unreachable` route for each range the pods are routed to (the cluster CIDR, the service
//! range), so that a pod's packet to an address of those ranges that no local bridge holds
//! is dropped on this machine, its sender told at once (ICMP host unreachable from its
//! gateway), instead of following the host's default route out.
//!
//! The routes are the least specific of their ranges: a node's bridge route (its `/24`,
//! which the kernel adds with the bridge's address) wins over them for its own pods.
//! Routes are changed with iproute2's `ip`.

use std::process::Command;

use serde_json::Value;

use crate::ipam::Cidr;

/// Why the host could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    /// The range already has a route that is not a drop: refusing to shadow or replace it.
    #[error("{cidr} already has a route that is not a drop ({route}); not touching it")]
    RouteTaken { cidr: Cidr, route: String },
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// What [`prepare`] changed, so that a test (or a node's cleanup) can undo just that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostChanges {
    /// Forwarding was off and was turned on.
    pub forwarding_enabled: bool,
    /// The unreachable routes added (the ranges that had none).
    pub routes_added: Vec<Cidr>,
}

/// Turns IPv4 forwarding on if it is off and puts an unreachable route on each of
/// `ranges` that has none. Idempotent; refuses a range with another route on it.
pub fn prepare(ranges: &[Cidr]) -> Result<HostChanges, HostError> {
    let mut changes = HostChanges {
        forwarding_enabled: enable_forwarding()?,
        ..HostChanges::default()
    };
    for cidr in ranges {
        if add_unreachable_route(*cidr)? {
            changes.routes_added.push(*cidr);
        }
    }
    tracing::info!(?changes, "host prepared for the pod network");
    Ok(changes)
}

/// Undoes `changes`.
pub fn undo(changes: &HostChanges) -> Result<(), HostError> {
    for cidr in &changes.routes_added {
        remove_unreachable_route(*cidr)?;
    }
    if changes.forwarding_enabled {
        write_forwarding(false)?;
    }
    Ok(())
}

/// Turns IPv4 forwarding on; whether it was off.
pub fn enable_forwarding() -> Result<bool, HostError> {
    let now = std::fs::read_to_string(IP_FORWARD).map_err(|source| HostError::Io {
        what: format!("read {IP_FORWARD}"),
        source,
    })?;
    if now.trim() == "1" {
        return Ok(false);
    }
    write_forwarding(true)?;
    Ok(true)
}

fn write_forwarding(on: bool) -> Result<(), HostError> {
    std::fs::write(IP_FORWARD, if on { "1\n" } else { "0\n" }).map_err(|source| HostError::Io {
        what: format!("write {IP_FORWARD}"),
        source,
    })
}

fn ip(args: &[&str]) -> Result<String, HostError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| HostError::Io {
            what: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What route the main table has for exactly `cidr`, from `ip -j route show exact`.
pub fn route_kind(show_json: &str) -> RouteKind {
    let routes: Vec<Value> = serde_json::from_str(show_json.trim()).unwrap_or_default();
    match routes.first() {
        None => RouteKind::None,
        Some(r) => match r["type"].as_str() {
            Some("unreachable" | "blackhole" | "prohibit") => RouteKind::Drop,
            _ => RouteKind::Other(r.to_string()),
        },
    }
}

/// A range's route, as far as the pod network cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteKind {
    None,
    /// Unreachable, blackhole or prohibit: packets stay here.
    Drop,
    Other(String),
}

/// Adds the unreachable route for `cidr`; whether it was added (false: one was there).
pub fn add_unreachable_route(cidr: Cidr) -> Result<bool, HostError> {
    let dst = cidr.to_string();
    match route_kind(&ip(&["-j", "route", "show", "exact", &dst])?) {
        RouteKind::Drop => Ok(false),
        RouteKind::Other(route) => Err(HostError::RouteTaken { cidr, route }),
        RouteKind::None => match ip(&["route", "add", "unreachable", &dst]) {
            Ok(_) => {
                tracing::info!(%cidr, "unreachable route added");
                Ok(true)
            }
            // Another agent on this machine added it meanwhile: fine if it is the same.
            Err(HostError::Command { stderr, .. }) if stderr.contains("File exists") => {
                match route_kind(&ip(&["-j", "route", "show", "exact", &dst])?) {
                    RouteKind::Drop => Ok(false),
                    RouteKind::Other(route) => Err(HostError::RouteTaken { cidr, route }),
                    RouteKind::None => Err(HostError::RouteTaken {
                        cidr,
                        route: "a route that came and went while adding".into(),
                    }),
                }
            }
            Err(e) => Err(e),
        },
    }
}

/// Removes the unreachable route for `cidr`, if there is one.
pub fn remove_unreachable_route(cidr: Cidr) -> Result<(), HostError> {
    let dst = cidr.to_string();
    if route_kind(&ip(&["-j", "route", "show", "exact", &dst])?) == RouteKind::Drop {
        ip(&["route", "del", "unreachable", &dst])?;
    }
    Ok(())
}

/// Makes the node's service interface `name` (a bridge with no ports, up): the cluster
/// IPs the node's proxy serves are its addresses, so that they are local to the host (its
/// own connections and pods' through their gateway reach the proxy's sockets). A bridge,
/// not a `dummy` (kube-proxy's IPVS mode uses a dummy): not every kernel has the dummy
/// driver, every one that runs pods has the bridge.
pub fn ensure_service_iface(name: &str) -> Result<(), HostError> {
    match ip(&["link", "add", name, "type", "bridge"]) {
        Ok(_) => tracing::info!(iface = name, "service interface made"),
        Err(HostError::Command { stderr, .. }) if stderr.contains("File exists") => {}
        Err(e) => return Err(e),
    }
    ip(&["link", "set", "dev", name, "up"]).map(drop)
}

/// Puts `addr` (a /32) on interface `name`; already there is fine.
pub fn add_address(name: &str, addr: std::net::Ipv4Addr) -> Result<(), HostError> {
    match ip(&["addr", "add", &format!("{addr}/32"), "dev", name]) {
        Ok(_) => Ok(()),
        Err(HostError::Command { stderr, .. }) if stderr.contains("File exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes `addr` off interface `name`; not there is fine.
pub fn remove_address(name: &str, addr: std::net::Ipv4Addr) -> Result<(), HostError> {
    match ip(&["addr", "del", &format!("{addr}/32"), "dev", name]) {
        Ok(_) => Ok(()),
        Err(HostError::Command { stderr, .. })
            if stderr.contains("Cannot assign")
                || stderr.contains("Cannot find device")
                || stderr.contains("not found") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The IPv4 addresses on interface `name` (none when it does not exist).
pub fn addresses(name: &str) -> Vec<std::net::Ipv4Addr> {
    let Ok(out) = ip(&["-j", "addr", "show", "dev", name]) else {
        return Vec::new();
    };
    let links: Vec<Value> = serde_json::from_str(out.trim()).unwrap_or_default();
    links
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == "inet")
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .collect()
}

/// Removes a node's bridge (the bridge plugin makes it and never removes it); no such
/// bridge is not an error.
pub fn remove_bridge(name: &str) -> Result<(), HostError> {
    match ip(&["link", "del", "dev", name]) {
        Ok(_) => Ok(()),
        Err(HostError::Command { stderr, .. })
            if stderr.contains("Cannot find device") || stderr.contains("does not exist") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_told_apart() {
        assert_eq!(route_kind("[]\n"), RouteKind::None);
        assert_eq!(route_kind(""), RouteKind::None);
        assert_eq!(
            route_kind(r#"[{"type":"unreachable","dst":"10.42.0.0/16","flags":[]}]"#),
            RouteKind::Drop
        );
        assert_eq!(
            route_kind(r#"[{"type":"blackhole","dst":"10.42.0.0/16","flags":[]}]"#),
            RouteKind::Drop
        );
        assert!(matches!(
            route_kind(r#"[{"dst":"10.42.0.0/16","gateway":"192.0.2.1","dev":"eth0"}]"#),
            RouteKind::Other(_)
        ));
    }
}
