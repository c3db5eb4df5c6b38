//! Defaults and validation of `discovery.k8s.io/v1` EndpointSlices, as Kubernetes'
//! `pkg/apis/discovery/validation` words them: the address type, every endpoint's addresses
//! (of that type), node name, hostname and hints, and the ports.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::{
    array_at, check_one_of, dns1123_label, dns1123_subdomain, duplicate, invalid, label_value,
    push_invalid, qualified_name, str_at, unsupported, validate_labels,
};
use crate::status::Cause;

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;
const MAX_TOPOLOGY_LABELS: usize = 16;
const MAX_ZONE_HINTS: usize = 8;
const MAX_NODE_HINTS: usize = 8;

/// Kubernetes' defaults: every port gets `name: ""` and `protocol: TCP`.
pub(super) fn default_slice(obj: &mut Map<String, Value>) {
    if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            super::set_if_absent(p, "name", json!(""));
            super::set_if_absent(p, "protocol", json!("TCP"));
        }
    }
}

fn too_many(path: impl Into<String>, n: usize, max: usize) -> Cause {
    Cause::new(
        "FieldValueTooMany",
        path,
        format!("Too many: {n}: must have at most {max} items"),
    )
}

/// The `endpointslice.kubernetes.io/managed-by` value of the slices the masters write for
/// the `kubernetes` Service. Only `system:masters` may write such a slice (the server's
/// admission checks), and only such a slice may hold loopback addresses: masters of a
/// single machine serve the API on loopback, and the node proxy that forwards to them runs
/// on the same machine.
pub const API_SERVER_SLICE_MANAGER: &str = "apiserver.navarch.io";

/// Validates an EndpointSlice (its metadata is checked by the caller).
pub(super) fn validate_slice(slice: &Value, out: &mut Vec<Cause>) {
    let address_type = str_at(slice, "addressType").unwrap_or("");
    if address_type.is_empty() {
        out.push(Cause::required("addressType"));
    } else {
        check_one_of(out, "addressType", slice.get("addressType"), ADDRESS_TYPES);
    }
    let loopback_ok = slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
        == API_SERVER_SLICE_MANAGER;
    validate_endpoints(slice, address_type, loopback_ok, out);
    validate_ports(array_at(slice, "ports"), out);
}

/// The immutable address type, on top of [`validate_slice`].
pub(super) fn validate_slice_update(old: &Value, new: &Value, out: &mut Vec<Cause>) {
    let o = str_at(old, "addressType").unwrap_or("");
    let n = str_at(new, "addressType").unwrap_or("");
    if o != n {
        out.push(invalid("addressType", &json!(n), "field is immutable"));
    }
}

fn validate_endpoints(slice: &Value, address_type: &str, loopback_ok: bool, out: &mut Vec<Cause>) {
    let endpoints = array_at(slice, "endpoints");
    if endpoints.len() > MAX_ENDPOINTS {
        out.push(too_many("endpoints", endpoints.len(), MAX_ENDPOINTS));
        return;
    }
    for (i, e) in endpoints.iter().enumerate() {
        let ep = format!("endpoints[{i}]");
        let addresses = array_at(e, "addresses");
        if addresses.is_empty() {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("{ep}.addresses"),
                "Required value: must contain at least 1 address",
            ));
        } else if addresses.len() > MAX_ADDRESSES {
            out.push(too_many(
                format!("{ep}.addresses"),
                addresses.len(),
                MAX_ADDRESSES,
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            let path = format!("{ep}.addresses[{j}]");
            let address = a.as_str().unwrap_or("");
            // Unknown address types are refused above; their addresses are not checked.
            match address_type {
                "IPv4" => match address.parse::<IpAddr>() {
                    Ok(ip @ IpAddr::V4(_)) => endpoint_ip(ip, address, &path, loopback_ok, out),
                    _ => out.push(invalid(&path, a, "must be a valid IPv4 address")),
                },
                "IPv6" => match address.parse::<IpAddr>() {
                    Ok(ip @ IpAddr::V6(_)) => endpoint_ip(ip, address, &path, loopback_ok, out),
                    _ => out.push(invalid(&path, a, "must be a valid IPv6 address")),
                },
                "FQDN" => fqdn(address, &path, out),
                _ => {}
            }
        }
        if let Some(node) = str_at(e, "nodeName") {
            push_invalid(
                out,
                &format!("{ep}.nodeName"),
                &json!(node),
                dns1123_subdomain(node),
            );
        }
        if let Some(topology) = e.get("deprecatedTopology").and_then(Value::as_object) {
            let path = format!("{ep}.deprecatedTopology");
            if topology.len() > MAX_TOPOLOGY_LABELS {
                out.push(too_many(&path, topology.len(), MAX_TOPOLOGY_LABELS));
            }
            validate_labels(e.get("deprecatedTopology"), &path, out);
            if topology.contains_key("topology.kubernetes.io/zone") {
                out.push(Cause::new(
                    "InternalError",
                    format!("{path}[topology.kubernetes.io/zone]"),
                    "Internal error: reserved key was not removed in conversion",
                ));
            }
        }
        if let Some(hostname) = str_at(e, "hostname") {
            push_invalid(
                out,
                &format!("{ep}.hostname"),
                &json!(hostname),
                dns1123_label(hostname),
            );
        }
        if let Some(hints) = e.get("hints").filter(|h| h.is_object()) {
            validate_hints(hints, &format!("{ep}.hints"), out);
        }
    }
}

/// Kubernetes' `ValidateEndpointIP`: no unspecified, loopback (but in the masters' own
/// slices) or link-local addresses.
fn endpoint_ip(ip: IpAddr, shown: &str, path: &str, loopback_ok: bool, out: &mut Vec<Cause>) {
    let v = json!(shown);
    if ip.is_unspecified() {
        out.push(invalid(
            path,
            &v,
            &format!("may not be unspecified ({shown})"),
        ));
    }
    if ip.is_loopback() && !loopback_ok {
        out.push(invalid(
            path,
            &v,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let (link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (v4.is_link_local(), o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0 == 0xfe80, s[0] & 0xff0f == 0xff02)
        }
    };
    if link_local {
        out.push(invalid(
            path,
            &v,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        out.push(invalid(
            path,
            &v,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// Kubernetes' `IsFullyQualifiedDomainName`: a subdomain of at least two labels (a trailing
/// dot allowed).
fn fqdn(name: &str, path: &str, out: &mut Vec<Cause>) {
    if name.is_empty() {
        out.push(Cause::required(path));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = dns1123_subdomain(name);
    if !errs.is_empty() {
        out.push(invalid(path, &json!(name), &errs.join(",")));
        return;
    }
    if name.split('.').count() < 2 {
        out.push(invalid(
            path,
            &json!(name),
            "should be a domain with at least two segments separated by dots",
        ));
        return;
    }
    for label in name.split('.') {
        let errs = dns1123_label(label);
        if !errs.is_empty() {
            out.push(invalid(path, &json!(label), &errs.join(",")));
            return;
        }
    }
}

fn validate_hints(hints: &Value, path: &str, out: &mut Vec<Cause>) {
    for (key, max, check) in [
        (
            "forZones",
            MAX_ZONE_HINTS,
            label_value as fn(&str) -> Vec<String>,
        ),
        ("forNodes", MAX_NODE_HINTS, dns1123_subdomain),
    ] {
        let list = array_at(hints, key);
        let lp = format!("{path}.{key}");
        if list.len() > max {
            out.push(too_many(&lp, list.len(), max));
            continue;
        }
        let mut seen = BTreeSet::new();
        for (i, h) in list.iter().enumerate() {
            let np = format!("{lp}[{i}].name");
            let name = str_at(h, "name").unwrap_or("");
            if !seen.insert(name.to_string()) {
                out.push(duplicate(&np, &json!(name)));
            }
            push_invalid(out, &np, &json!(name), check(name));
        }
    }
}

fn validate_ports(ports: &[Value], out: &mut Vec<Cause>) {
    if ports.len() > MAX_PORTS {
        out.push(too_many("ports", ports.len(), MAX_PORTS));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("ports[{i}]");
        let name = str_at(p, "name").unwrap_or("");
        if !name.is_empty() {
            push_invalid(
                out,
                &format!("{pp}.name"),
                &json!(name),
                dns1123_label(name),
            );
        }
        if !names.insert(name.to_string()) {
            out.push(duplicate(format!("{pp}.name"), &json!(name)));
        }
        match p.get("protocol").filter(|v| !v.is_null()) {
            None => out.push(Cause::required(format!("{pp}.protocol"))),
            Some(v) if !v.as_str().is_some_and(|s| PROTOCOLS.contains(&s)) => {
                out.push(unsupported(format!("{pp}.protocol"), v, PROTOCOLS))
            }
            Some(_) => {}
        }
        if let Some(ap) = str_at(p, "appProtocol") {
            push_invalid(
                out,
                &format!("{pp}.appProtocol"),
                &json!(ap),
                qualified_name(ap),
            );
        }
    }
}
