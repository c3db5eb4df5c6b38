//! Discovery documents: `/api`, `/apis`, per group-version resource lists, and the
//! aggregated (apidiscovery.k8s.io/v2) form.
//!
//! Everything is derived from [`crate::kinds::KINDS`]: a kind added there is discovered
//! without further changes here. Subresources are described by [`subresource`].

use serde_json::{json, Map, Value};

use crate::kinds::{self, Kind, KINDS};

/// What a subresource answers with and which verbs it takes, as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subresource {
    /// `status`, `scale`, ...
    pub name: &'static str,
    /// The group of the kind it returns (empty for core).
    pub group: &'static str,
    pub version: &'static str,
    /// The kind it returns, e.g. `Scale`.
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

/// The description of `kind`'s subresource `name`, or `None` if navarch does not know it.
pub fn subresource(kind: &Kind, name: &str) -> Option<Subresource> {
    let (name, group, version, returned, verbs): (_, _, _, _, &'static [&'static str]) = match name
    {
        "status" => (
            "status",
            kind.group,
            kind.version,
            kind.kind,
            GET_PATCH_UPDATE,
        ),
        "scale" => ("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
        // A Namespace's `spec.finalizers`, the namespace controller's to clear.
        "finalize" => ("finalize", kind.group, kind.version, kind.kind, &["update"]),
        "binding" => ("binding", "", "v1", "Binding", &["create"]),
        // Kubernetes lists the group version of Eviction here: `kubectl drain` evicts only
        // when discovery names policy/v1 (it deletes pods otherwise).
        "eviction" => ("eviction", "policy", "v1", "Eviction", &["create"]),
        "log" => ("log", "", "v1", "Pod", &["get"]),
        "exec" => ("exec", "", "v1", "PodExecOptions", &["create", "get"]),
        // A ServiceAccount's TokenRequest (`kubectl create token`).
        "token" => (
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        ),
        _ => return None,
    };
    Some(Subresource {
        name,
        group,
        version,
        kind: returned,
        verbs,
    })
}

/// The subresources `kind` serves, described.
pub fn subresources(kind: &Kind) -> impl Iterator<Item = Subresource> + '_ {
    kind.subresources
        .iter()
        .filter_map(|s| subresource(kind, s))
}

/// The served kinds of one group version, in table order.
fn kinds_of<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Kind> + 'a {
    KINDS
        .iter()
        .filter(move |k| k.group == group && k.version == version)
}

/// The versions served for `group`, in table order (the first is preferred).
fn versions_of(group: &str) -> Vec<&'static str> {
    kinds::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

/// The non-core groups, in table order.
fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (g, _) in kinds::group_versions() {
        if !g.is_empty() && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn gv_for_discovery(group: &str, version: &str) -> Value {
    json!({ "groupVersion": format!("{group}/{version}"), "version": version })
}

fn strs(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String((*s).into())).collect())
}

/// `GET /api`: `APIVersions`. `server_address` is `host:port` as clients reach it.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": versions_of(""),
        "serverAddressByClientCIDRs": [
            { "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }
        ],
    })
}

fn group_body(group: &str) -> Option<Map<String, Value>> {
    let versions = versions_of(group);
    let preferred = *versions.first()?;
    let mut m = Map::new();
    m.insert("name".into(), group.into());
    m.insert(
        "versions".into(),
        versions
            .iter()
            .map(|v| gv_for_discovery(group, v))
            .collect(),
    );
    m.insert(
        "preferredVersion".into(),
        gv_for_discovery(group, preferred),
    );
    Some(m)
}

/// `GET /apis`: `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter_map(group_body)
        .map(Value::Object)
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/<group>` (`APIGroup`); `None` if the group is not served.
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let mut m = Map::new();
    m.insert("kind".into(), "APIGroup".into());
    m.insert("apiVersion".into(), "v1".into());
    m.extend(group_body(group)?);
    Some(Value::Object(m))
}

fn legacy_resource(kind: &Kind) -> Value {
    let mut r = Map::new();
    r.insert("name".into(), kind.plural.into());
    r.insert("singularName".into(), kind.singular.into());
    r.insert("namespaced".into(), kind.namespaced.into());
    r.insert("kind".into(), kind.kind.into());
    r.insert("verbs".into(), strs(kind.verbs));
    if !kind.short_names.is_empty() {
        r.insert("shortNames".into(), strs(kind.short_names));
    }
    if !kind.categories.is_empty() {
        r.insert("categories".into(), strs(kind.categories));
    }
    Value::Object(r)
}

fn legacy_subresource(kind: &Kind, sub: &Subresource) -> Value {
    let mut r = Map::new();
    r.insert(
        "name".into(),
        format!("{}/{}", kind.plural, sub.name).into(),
    );
    r.insert("singularName".into(), "".into());
    r.insert("namespaced".into(), kind.namespaced.into());
    // `group` and `version` are given only where they differ from the list's group version.
    if (sub.group, sub.version) != (kind.group, kind.version) {
        r.insert("group".into(), sub.group.into());
        r.insert("version".into(), sub.version.into());
    }
    r.insert("kind".into(), sub.kind.into());
    r.insert("verbs".into(), strs(sub.verbs));
    Value::Object(r)
}

/// `GET /api/v1` or `/apis/<group>/<version>`: `APIResourceList`; `None` if not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for kind in kinds_of(group, version) {
        resources.push(legacy_resource(kind));
        for sub in subresources(kind) {
            resources.push(legacy_subresource(kind, &sub));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

fn aggregated_resource(kind: &Kind) -> Value {
    let mut r = Map::new();
    r.insert("resource".into(), kind.plural.into());
    r.insert(
        "responseKind".into(),
        response_kind(kind.group, kind.version, kind.kind),
    );
    r.insert(
        "scope".into(),
        if kind.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }
        .into(),
    );
    r.insert("singularResource".into(), kind.singular.into());
    r.insert("verbs".into(), strs(kind.verbs));
    if !kind.short_names.is_empty() {
        r.insert("shortNames".into(), strs(kind.short_names));
    }
    if !kind.categories.is_empty() {
        r.insert("categories".into(), strs(kind.categories));
    }
    let subs: Vec<Value> = subresources(kind)
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": response_kind(s.group, s.version, s.kind),
                "verbs": strs(s.verbs),
            })
        })
        .collect();
    if !subs.is_empty() {
        r.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(r)
}

fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = versions_of(group)
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> = kinds_of(group, v).map(aggregated_resource).collect();
            json!({ "version": v, "freshness": "Current", "resources": resources })
        })
        .collect();
    json!({ "metadata": { "name": group }, "versions": versions })
}

/// The aggregated `APIGroupDiscoveryList` for `/api` (`core = true`) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        groups().into_iter().map(aggregated_group).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::VERBS;

    const GROUPS: [&str; 8] = [
        "apps",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "policy",
        "node.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "rbac.authorization.k8s.io",
    ];

    fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn legacy_documents() {
        let v = api_versions("127.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "127.0.0.1:6443"
        );

        let groups = api_group_list();
        assert_eq!(groups["kind"], "APIGroupList");
        let names: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, GROUPS);
        assert_eq!(
            groups["groups"][0]["preferredVersion"],
            json!({"groupVersion": "apps/v1", "version": "v1"})
        );

        let apps = api_group("apps").unwrap();
        assert_eq!(apps["kind"], "APIGroup");
        assert_eq!(apps["name"], "apps");
        assert_eq!(apps["versions"][0]["groupVersion"], "apps/v1");
        assert!(api_group("batch").is_none());
        assert!(api_group("").is_none());
    }

    #[test]
    fn resource_lists() {
        let apps = resource_list("apps", "v1").unwrap();
        assert_eq!(apps["groupVersion"], "apps/v1");
        let d = find(&apps, "deployments");
        assert_eq!(d["kind"], "Deployment");
        assert_eq!(d["singularName"], "deployment");
        assert_eq!(d["namespaced"], true);
        assert_eq!(d["shortNames"], json!(["deploy"]));
        assert_eq!(d["categories"], json!(["all"]));
        assert_eq!(d["verbs"], strs(VERBS));
        let scale = find(&apps, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        let status = find(&apps, "deployments/status");
        assert_eq!(status["kind"], "Deployment");
        assert!(status.get("group").is_none());
        assert!(find(&apps, "replicasets/scale").is_object());

        let core = resource_list("", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        assert_eq!(find(&core, "nodes")["namespaced"], false);
        assert_eq!(find(&core, "namespaces")["namespaced"], false);
        let finalize = find(&core, "namespaces/finalize");
        assert_eq!(finalize["kind"], "Namespace");
        assert_eq!(finalize["verbs"], json!(["update"]));
        assert_eq!(find(&core, "namespaces/status")["kind"], "Namespace");
        assert_eq!(find(&core, "pods")["namespaced"], true);
        assert_eq!(find(&core, "pods")["shortNames"], json!(["po"]));
        assert_eq!(find(&core, "pods/binding")["kind"], "Binding");
        assert_eq!(find(&core, "pods/binding")["verbs"], json!(["create"]));
        assert_eq!(find(&core, "pods/log")["kind"], "Pod");
        assert_eq!(find(&core, "pods/exec")["kind"], "PodExecOptions");
        assert!(find(&core, "endpoints").get("categories").is_none());

        // `kubectl drain` evicts only when pods/eviction names policy/v1 Eviction.
        let eviction = find(&core, "pods/eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        assert_eq!(eviction["verbs"], json!(["create"]));

        let slices = resource_list("discovery.k8s.io", "v1").unwrap();
        let s = find(&slices, "endpointslices");
        assert_eq!(s["kind"], "EndpointSlice");
        assert_eq!(s["namespaced"], true);
        assert!(s.get("shortNames").is_none());
        let policy = resource_list("policy", "v1").unwrap();
        let pdb = find(&policy, "poddisruptionbudgets");
        assert_eq!(pdb["kind"], "PodDisruptionBudget");
        assert_eq!(pdb["shortNames"], json!(["pdb"]));
        assert_eq!(
            find(&policy, "poddisruptionbudgets/status")["kind"],
            "PodDisruptionBudget"
        );

        let lease = resource_list("coordination.k8s.io", "v1").unwrap();
        assert_eq!(find(&lease, "leases")["kind"], "Lease");
        assert!(resource_list("apps", "v2").is_none());
        assert!(resource_list("batch", "v1").is_none());
    }

    fn every_resource(list: &Value) -> Vec<&Value> {
        let mut out = Vec::new();
        for item in list["items"].as_array().unwrap() {
            for v in item["versions"].as_array().unwrap() {
                out.extend(v["resources"].as_array().unwrap());
            }
        }
        out
    }

    #[test]
    fn aggregated_forms() {
        let core = aggregated(true);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        assert_eq!(items[0]["versions"][0]["version"], "v1");
        assert_eq!(items[0]["versions"][0]["freshness"], "Current");

        let apis = aggregated(false);
        let names: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, GROUPS);

        let mut count = 0;
        for list in [&core, &apis] {
            for r in every_resource(list) {
                count += 1;
                let kind = kinds::by_kind(r["responseKind"]["kind"].as_str().unwrap()).unwrap();
                assert_eq!(r["resource"], kind.plural);
                assert_eq!(r["responseKind"]["group"], kind.group);
                assert_eq!(r["responseKind"]["version"], kind.version);
                let scope = if kind.namespaced {
                    "Namespaced"
                } else {
                    "Cluster"
                };
                assert_eq!(r["scope"], scope);
                for s in r["subresources"].as_array().into_iter().flatten() {
                    assert!(s["responseKind"]["kind"].is_string(), "{s}");
                    assert!(s["responseKind"]["group"].is_string(), "{s}");
                    assert!(s["responseKind"]["version"].is_string(), "{s}");
                    assert!(!s["verbs"].as_array().unwrap().is_empty());
                }
            }
        }
        assert_eq!(count, KINDS.len());

        let deploy = every_resource(&apis)
            .into_iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        let scale = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        let nodes = every_resource(&core)
            .into_iter()
            .find(|r| r["resource"] == "nodes")
            .unwrap();
        assert_eq!(nodes["scope"], "Cluster");
    }

    /// The review kinds are create-only, cluster-scoped and have no subresources; the RBAC kinds
    /// serve every verb, with Role and RoleBinding namespaced.
    #[test]
    fn rbac_and_review_kinds() {
        let authz = resource_list("authorization.k8s.io", "v1").unwrap();
        for name in [
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
            "subjectaccessreviews",
        ] {
            let r = find(&authz, name);
            assert_eq!(r["verbs"], json!(["create"]), "{name}");
            assert_eq!(r["namespaced"], false, "{name}");
        }
        let authn = resource_list("authentication.k8s.io", "v1").unwrap();
        assert_eq!(
            find(&authn, "selfsubjectreviews")["verbs"],
            json!(["create"])
        );
        assert_eq!(
            find(&authn, "selfsubjectreviews")["kind"],
            "SelfSubjectReview"
        );
        let rbac = resource_list("rbac.authorization.k8s.io", "v1").unwrap();
        for (name, namespaced) in [
            ("roles", true),
            ("rolebindings", true),
            ("clusterroles", false),
            ("clusterrolebindings", false),
        ] {
            let r = find(&rbac, name);
            assert_eq!(r["verbs"], strs(VERBS), "{name}");
            assert_eq!(r["namespaced"], namespaced, "{name}");
        }
        let apis = aggregated(false);
        let ssar = every_resource(&apis)
            .into_iter()
            .find(|r| r["resource"] == "selfsubjectaccessreviews")
            .unwrap();
        assert_eq!(ssar["verbs"], json!(["create"]));
        assert_eq!(ssar["scope"], "Cluster");
        assert!(ssar.get("subresources").is_none());
    }

    #[test]
    fn every_listed_subresource_is_known() {
        for k in KINDS {
            for s in k.subresources {
                assert!(subresource(k, s).is_some(), "{}/{s}", k.plural);
            }
        }
    }
}
