//! Discovery documents: `/api`, `/apis`, per group-version resource lists, and the
//! aggregated (apidiscovery.k8s.io/v2) form.

use serde_json::Value;

/// `GET /api`: `APIVersions`. `server_address` is `host:port` as clients reach it.
pub fn api_versions(server_address: &str) -> Value {
    let _ = server_address;
    unimplemented!("helper: discovery")
}

/// `GET /apis`: `APIGroupList`.
pub fn api_group_list() -> Value {
    unimplemented!("helper: discovery")
}

/// `GET /apis/<group>` (`APIGroup`); `None` if the group is not served.
pub fn api_group(group: &str) -> Option<Value> {
    let _ = group;
    unimplemented!("helper: discovery")
}

/// `GET /api/v1` or `/apis/<group>/<version>`: `APIResourceList`; `None` if not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let _ = (group, version);
    unimplemented!("helper: discovery")
}

/// The aggregated `APIGroupDiscoveryList` for `/api` (`core = true`) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let _ = core;
    unimplemented!("helper: discovery")
}
