//! OpenAPI v3 documents generated from our own types: the `/openapi/v3` index and one
//! document per group version, with the schemas of the kinds we serve.
//!
//! Paths come from [`crate::kinds::KINDS`]; schemas come from the `k8s-openapi` types through
//! schemars (OpenAPI 3.0 settings), so every `$ref` is `#/components/schemas/<name>` with the
//! names Kubernetes uses (`io.k8s.api.apps.v1.Deployment`, ...). List schemas
//! (`...DeploymentList`) are built here, since `k8s_openapi::List` has no schema of its own.
//!
//! Every PATCH operation carries `x-kubernetes-group-version-kind` and a `fieldValidation`
//! query parameter: that is what makes kubectl trust the server's validation instead of its
//! own. PATCH bodies list JSON patch, merge patch and apply patch but not strategic merge
//! patch, because these schemas lack the patch-strategy extensions kubectl would need for it.
//!
//! Documents are built once, on first use, and kept with the hash the index advertises.

use std::sync::OnceLock;

use k8s_openapi::api::{apps::v1 as apps, autoscaling::v1 as autoscaling};
use k8s_openapi::api::{authentication::v1 as authentication, authorization::v1 as authorization};
use k8s_openapi::api::{coordination::v1 as coordination, core::v1 as core, rbac::v1 as rbac};
use k8s_openapi::api::{discovery::v1 as discovery_v1, node::v1 as node, policy::v1 as policy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::Resource;
use serde_json::{json, Map, Value};

use crate::discovery::{self, Subresource};
use crate::kinds::{self, Kind, KINDS};

/// Where schemas live in a document; every `$ref` starts with this.
pub const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

/// The `info.version` of every document.
pub const API_VERSION: &str = "v1.37.0";

struct Doc {
    /// `api/v1`, `apis/apps/v1`.
    path: String,
    hash: String,
    value: Value,
}

fn docs() -> &'static [Doc] {
    static DOCS: OnceLock<Vec<Doc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        kinds::group_versions()
            .into_iter()
            .map(|(group, version)| {
                let value = build(group, version);
                let hash = format!("{:016X}", fnv1a(value.to_string().as_bytes()));
                Doc {
                    path: doc_path(group, version),
                    hash,
                    value,
                }
            })
            .collect()
    })
}

/// 64-bit FNV-1a: stable across runs and builds, enough to tell document versions apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The index path of a group version: `api/v1` or `apis/apps/v1`.
pub fn doc_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn find(path: &str) -> Option<&'static Doc> {
    let path = path.strip_prefix('/').unwrap_or(path);
    docs().iter().find(|d| d.path == path)
}

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}, …}}`.
pub fn index() -> Value {
    let paths: Map<String, Value> = docs()
        .iter()
        .map(|d| {
            let url = format!("/openapi/v3/{}?hash={}", d.path, d.hash);
            (d.path.clone(), json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// `GET /openapi/v3/<path>` for `path` like `api/v1` or `apis/apps/v1`; `None` if unknown.
pub fn document(path: &str) -> Option<Value> {
    document_ref(path).cloned()
}

/// Like [`document`], without copying the (large) document.
pub fn document_ref(path: &str) -> Option<&'static Value> {
    find(path).map(|d| &d.value)
}

/// The hash the index advertises for `path` (as in `?hash=`); `None` if unknown.
pub fn document_hash(path: &str) -> Option<&'static str> {
    find(path).map(|d| d.hash.as_str())
}

// ---------------------------------------------------------------------------------------------
// Schemas

/// Registers `T` in the generator and returns its component name.
fn register<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Registers a served kind, checking the type against the table.
fn register_kind<T: JsonSchema + Resource>(gen: &mut SchemaGenerator, kind: &Kind) -> String {
    assert_eq!(
        (T::GROUP, T::VERSION, T::KIND),
        (kind.group, kind.version, kind.kind),
        "the type registered for {} does not match the kinds table",
        kind.kind
    );
    register::<T>(gen)
}

/// The component name of a served kind's schema, registering it (and what it references).
fn kind_schema(gen: &mut SchemaGenerator, kind: &Kind) -> String {
    match (kind.group, kind.kind) {
        ("", "Namespace") => register_kind::<core::Namespace>(gen, kind),
        ("", "Node") => register_kind::<core::Node>(gen, kind),
        ("", "Pod") => register_kind::<core::Pod>(gen, kind),
        ("", "Service") => register_kind::<core::Service>(gen, kind),
        ("", "ConfigMap") => register_kind::<core::ConfigMap>(gen, kind),
        ("", "Secret") => register_kind::<core::Secret>(gen, kind),
        ("", "ServiceAccount") => register_kind::<core::ServiceAccount>(gen, kind),
        ("", "Endpoints") => register_kind::<core::Endpoints>(gen, kind),
        ("", "Event") => register_kind::<core::Event>(gen, kind),
        ("apps", "Deployment") => register_kind::<apps::Deployment>(gen, kind),
        ("apps", "ReplicaSet") => register_kind::<apps::ReplicaSet>(gen, kind),
        ("coordination.k8s.io", "Lease") => register_kind::<coordination::Lease>(gen, kind),
        ("discovery.k8s.io", "EndpointSlice") => {
            register_kind::<discovery_v1::EndpointSlice>(gen, kind)
        }
        ("policy", "PodDisruptionBudget") => {
            register_kind::<policy::PodDisruptionBudget>(gen, kind)
        }
        ("node.k8s.io", "RuntimeClass") => register_kind::<node::RuntimeClass>(gen, kind),
        ("authentication.k8s.io", "TokenReview") => {
            register_kind::<authentication::TokenReview>(gen, kind)
        }
        ("authentication.k8s.io", "SelfSubjectReview") => {
            register_kind::<authentication::SelfSubjectReview>(gen, kind)
        }
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            register_kind::<authorization::SelfSubjectAccessReview>(gen, kind)
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => {
            register_kind::<authorization::SelfSubjectRulesReview>(gen, kind)
        }
        ("authorization.k8s.io", "SubjectAccessReview") => {
            register_kind::<authorization::SubjectAccessReview>(gen, kind)
        }
        ("rbac.authorization.k8s.io", "Role") => register_kind::<rbac::Role>(gen, kind),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            register_kind::<rbac::RoleBinding>(gen, kind)
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            register_kind::<rbac::ClusterRole>(gen, kind)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            register_kind::<rbac::ClusterRoleBinding>(gen, kind)
        }
        (group, name) => panic!("no schema for served kind {group}/{name}"),
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMA_REF_PREFIX}{name}") })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

/// The schema of `<Kind>List`, shaped like Kubernetes' own.
fn list_schema(kind: &Kind, item: &str, list_meta: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", kind.kind, kind.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "items": {
                "description": format!("List of {}.", kind.plural),
                "type": "array",
                "items": reference(item),
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": {
                "description": "Standard list metadata.",
                "allOf": [reference(list_meta)],
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(kind.group, kind.version, &format!("{}List", kind.kind))],
    })
}

/// Marks a top-level schema with the kinds it is served as. For kinds, also drops the
/// `metadata`/`spec`/`status` requirements the typed structs imply: Kubernetes requires none
/// of them, and clients (`kubectl explain`, validators) would otherwise insist on them.
fn tag_gvk(schemas: &mut Map<String, Value>, name: &str, gvks: Value) {
    if let Some(Value::Object(s)) = schemas.get_mut(name) {
        s.insert("x-kubernetes-group-version-kind".into(), gvks);
        if let Some(Value::Array(required)) = s.get_mut("required") {
            required.retain(|f| !matches!(f.as_str(), Some("metadata" | "spec" | "status")));
            if required.is_empty() {
                s.remove("required");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and operations

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": ty },
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": { "type": "string" },
    })
}

fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

/// The parameters of every write (create, update, patch): what kubectl looks for.
fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid value: All.",
        ),
        query(
            "fieldManager",
            "string",
            "A name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "How the server handles unknown or duplicate fields in the request: Ignore, Warn or Strict.",
        ),
    ]
}

fn patch_params() -> Vec<Value> {
    let mut p = write_params();
    p.push(query(
        "force",
        "boolean",
        "Force apply requests to take ownership of conflicting fields.",
    ));
    p
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "Request watch events with type BOOKMARK.",
        ),
        query(
            "continue",
            "string",
            "The continue token of a previous paged list.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector restricting the returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector restricting the returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "The maximum number of objects to return in one page.",
        ),
        query(
            "resourceVersion",
            "string",
            "The resource version the list or watch starts from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to a list: Exact or NotOlderThan.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "Begin a watch with synthetic ADDED events for the current objects.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "How long a list or watch call may last.",
        ),
        query(
            "watch",
            "boolean",
            "Watch for changes instead of listing; return a stream of events.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid value: All.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: use propagationPolicy.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection is performed: Orphan, Background or Foreground.",
        ),
    ]
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn response(description: &str, content: Value) -> Value {
    json!({ "description": description, "content": content })
}

/// Responses of a read or write answering with `schema`: 200, plus `created` codes.
fn responses(schema: &str, created: &[&str]) -> Value {
    let mut r = Map::new();
    r.insert(
        "200".into(),
        response("OK", json_content(reference(schema))),
    );
    for code in created {
        let description = if *code == "201" {
            "Created"
        } else {
            "Accepted"
        };
        r.insert(
            (*code).into(),
            response(description, json_content(reference(schema))),
        );
    }
    r.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(r)
}

/// Names and references shared by the operations of one document.
struct Names {
    status: String,
    delete_options: String,
    patch: String,
    watch_event: String,
    scale: Option<String>,
    binding: Option<String>,
    eviction: Option<String>,
}

/// One operation, in Kubernetes' shape.
struct Op<'a> {
    id: String,
    action: &'a str,
    gvk: Value,
    tag: &'a str,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op<'_> {
    fn into_value(self) -> Value {
        let mut o = Map::new();
        o.insert("tags".into(), json!([self.tag]));
        o.insert("operationId".into(), self.id.into());
        if !self.params.is_empty() {
            o.insert("parameters".into(), Value::Array(self.params));
        }
        if let Some(body) = self.body {
            o.insert("requestBody".into(), body);
        }
        o.insert("responses".into(), self.responses);
        o.insert("x-kubernetes-action".into(), self.action.into());
        o.insert("x-kubernetes-group-version-kind".into(), self.gvk);
        Value::Object(o)
    }
}

fn body(schema: Value, required: bool) -> Value {
    json!({ "content": json_content(schema), "required": required })
}

fn patch_body(patch: &str) -> Value {
    let content: Map<String, Value> = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ]
    .into_iter()
    .map(|t| (t.to_string(), json!({ "schema": reference(patch) })))
    .collect();
    json!({ "content": content, "required": true })
}

/// The group as Kubernetes' operation ids and tags spell it: `core`, `apps`, `coordination`,
/// `rbacAuthorization` (the `.k8s.io` suffix dropped, the other parts camel-cased).
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "core".into();
    }
    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut parts = group.split('.');
    let mut out = parts.next().unwrap_or("").to_string();
    for p in parts {
        out.push_str(&upper_first(p));
    }
    out
}

/// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`: the group version as operation ids spell it.
fn gv_camel(group: &str, version: &str) -> String {
    format!(
        "{}{}",
        upper_first(&group_camel(group)),
        upper_first(version)
    )
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`: the tag of a group version's operations.
fn gv_tag(group: &str, version: &str) -> String {
    format!("{}_{version}", group_camel(group))
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn path_item(params: Vec<Value>, ops: Vec<(&str, Op<'_>)>) -> Value {
    let mut item = Map::new();
    for (method, op) in ops {
        item.insert(method.into(), op.into_value());
    }
    item.insert("parameters".into(), Value::Array(params));
    Value::Object(item)
}

/// Adds the paths of `kind` (collection, object, all namespaces, subresources) to `paths`.
fn kind_paths(paths: &mut Map<String, Value>, kind: &Kind, schema: &str, names: &Names) {
    let gv = gv_camel(kind.group, kind.version);
    let tag = gv_tag(kind.group, kind.version);
    let tag = tag.as_str();
    let ns = if kind.namespaced { "Namespaced" } else { "" };
    let k = kind.kind;
    let list = format!("{schema}List");
    let this = gvk(kind.group, kind.version, kind.kind);
    let base = kind.gv_path();
    let collection = if kind.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", kind.plural)
    } else {
        format!("{base}/{}", kind.plural)
    };
    let object = format!("{collection}/{{name}}");
    let namespace = || {
        path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        )
    };
    let name = || path_param("name", &format!("name of the {k}"));
    let mut collection_params = vec![pretty()];
    let mut object_params = vec![name(), pretty()];
    if kind.namespaced {
        collection_params.insert(0, namespace());
        object_params.insert(1, namespace());
    }
    let op = |id: String, action, gvk: &Value, params, body, responses| Op {
        id,
        action,
        gvk: gvk.clone(),
        tag,
        params,
        body,
        responses,
    };
    let list_responses = {
        let mut content = json_content(reference(&list));
        content.as_object_mut().unwrap().insert(
            "application/json;stream=watch".into(),
            json!({ "schema": reference(&names.watch_event) }),
        );
        json!({
            "200": response("OK", content),
            "401": { "description": "Unauthorized" },
        })
    };
    if !kind.stored {
        // A review kind: created (and answered) only, like Kubernetes' `create` operations.
        paths.insert(
            collection,
            path_item(
                collection_params,
                vec![(
                    "post",
                    op(
                        format!("create{gv}{ns}{k}"),
                        "post",
                        &this,
                        write_params(),
                        Some(body(reference(schema), true)),
                        responses(schema, &["201", "202"]),
                    ),
                )],
            ),
        );
        return;
    }
    let mut deletecollection_params = delete_params();
    deletecollection_params.extend(list_params());

    paths.insert(
        collection.clone(),
        path_item(
            collection_params,
            vec![
                (
                    "get",
                    op(
                        format!("list{gv}{ns}{k}"),
                        "list",
                        &this,
                        list_params(),
                        None,
                        list_responses.clone(),
                    ),
                ),
                (
                    "post",
                    op(
                        format!("create{gv}{ns}{k}"),
                        "post",
                        &this,
                        write_params(),
                        Some(body(reference(schema), true)),
                        responses(schema, &["201", "202"]),
                    ),
                ),
                (
                    "delete",
                    op(
                        format!("delete{gv}Collection{ns}{k}"),
                        "deletecollection",
                        &this,
                        deletecollection_params,
                        Some(body(reference(&names.delete_options), false)),
                        responses(&names.status, &[]),
                    ),
                ),
            ],
        ),
    );
    paths.insert(
        object.clone(),
        path_item(
            object_params.clone(),
            vec![
                (
                    "get",
                    op(
                        format!("read{gv}{ns}{k}"),
                        "get",
                        &this,
                        vec![],
                        None,
                        responses(schema, &[]),
                    ),
                ),
                (
                    "put",
                    op(
                        format!("replace{gv}{ns}{k}"),
                        "put",
                        &this,
                        write_params(),
                        Some(body(reference(schema), true)),
                        responses(schema, &["201"]),
                    ),
                ),
                (
                    "patch",
                    op(
                        format!("patch{gv}{ns}{k}"),
                        "patch",
                        &this,
                        patch_params(),
                        Some(patch_body(&names.patch)),
                        responses(schema, &["201"]),
                    ),
                ),
                (
                    "delete",
                    op(
                        format!("delete{gv}{ns}{k}"),
                        "delete",
                        &this,
                        delete_params(),
                        Some(body(reference(&names.delete_options), false)),
                        responses(&names.status, &["202"]),
                    ),
                ),
            ],
        ),
    );
    if kind.namespaced {
        paths.insert(
            format!("{base}/{}", kind.plural),
            path_item(
                vec![pretty()],
                vec![(
                    "get",
                    op(
                        format!("list{gv}{k}ForAllNamespaces"),
                        "list",
                        &this,
                        list_params(),
                        None,
                        list_responses,
                    ),
                )],
            ),
        );
    }

    for sub in discovery::subresources(kind) {
        let Subresource { name: sub_name, .. } = sub;
        let sub_gvk = gvk(sub.group, sub.version, sub.kind);
        let s = upper_first(sub_name);
        let path = format!("{object}/{sub_name}");
        let read_update = |schema: &str| {
            vec![
                (
                    "get",
                    op(
                        format!("read{gv}{ns}{k}{s}"),
                        "get",
                        &sub_gvk,
                        vec![],
                        None,
                        responses(schema, &[]),
                    ),
                ),
                (
                    "put",
                    op(
                        format!("replace{gv}{ns}{k}{s}"),
                        "put",
                        &sub_gvk,
                        write_params(),
                        Some(body(reference(schema), true)),
                        responses(schema, &["201"]),
                    ),
                ),
                (
                    "patch",
                    op(
                        format!("patch{gv}{ns}{k}{s}"),
                        "patch",
                        &sub_gvk,
                        patch_params(),
                        Some(patch_body(&names.patch)),
                        responses(schema, &["201"]),
                    ),
                ),
            ]
        };
        let ops = match sub_name {
            "status" => read_update(schema),
            // Kubernetes serves PUT only on a Namespace's finalize.
            "finalize" => vec![(
                "put",
                op(
                    format!("replace{gv}{ns}{k}{s}"),
                    "put",
                    &sub_gvk,
                    write_params(),
                    Some(body(reference(schema), true)),
                    responses(schema, &["201"]),
                ),
            )],
            "scale" => read_update(names.scale.as_deref().expect("Scale registered")),
            "binding" => {
                let binding = names.binding.as_deref().expect("Binding registered");
                vec![(
                    "post",
                    op(
                        format!("create{gv}{ns}{k}{s}"),
                        "post",
                        &sub_gvk,
                        write_params(),
                        Some(body(reference(binding), true)),
                        responses(binding, &["201", "202"]),
                    ),
                )]
            }
            "eviction" => {
                let eviction = names.eviction.as_deref().expect("Eviction registered");
                vec![(
                    "post",
                    op(
                        format!("create{gv}{ns}{k}{s}"),
                        "post",
                        &sub_gvk,
                        write_params(),
                        Some(body(reference(eviction), true)),
                        responses(eviction, &["201", "202"]),
                    ),
                )]
            }
            "log" => vec![(
                "get",
                op(
                    format!("read{gv}{ns}{k}{s}"),
                    "get",
                    &sub_gvk,
                    log_params(),
                    None,
                    json!({
                        "200": response("OK", json!({ "text/plain": { "schema": { "type": "string" } } })),
                        "401": { "description": "Unauthorized" },
                    }),
                ),
            )],
            "exec" => ["get", "post"]
                .into_iter()
                .map(|method| {
                    (
                        method,
                        op(
                            format!("connect{}{gv}{ns}{k}{s}", upper_first(method)),
                            "connect",
                            &sub_gvk,
                            exec_params(),
                            None,
                            json!({
                                "200": response("OK", json!({ "*/*": { "schema": { "type": "string" } } })),
                                "401": { "description": "Unauthorized" },
                            }),
                        ),
                    )
                })
                .collect(),
            _ => continue,
        };
        // Subresources other than status and scale take no `pretty`; keep the path params.
        let params = if matches!(sub_name, "status" | "scale" | "finalize") {
            object_params.clone()
        } else {
            object_params[..object_params.len() - 1].to_vec()
        };
        paths.insert(path, path_item(params, ops));
    }
}

fn log_params() -> Vec<Value> {
    vec![
        query(
            "container",
            "string",
            "The container for which to stream logs.",
        ),
        query("follow", "boolean", "Follow the log stream of the pod."),
        query(
            "insecureSkipTLSVerifyBackend",
            "boolean",
            "Do not verify the serving certificate of the backend.",
        ),
        query(
            "limitBytes",
            "integer",
            "The number of bytes to read before terminating the log output.",
        ),
        query(
            "previous",
            "boolean",
            "Return the logs of the previous terminated container.",
        ),
        query(
            "sinceSeconds",
            "integer",
            "A relative time in seconds before now from which to show logs.",
        ),
        query(
            "tailLines",
            "integer",
            "The number of lines from the end of the logs to show.",
        ),
        query(
            "timestamps",
            "boolean",
            "Add an RFC3339 timestamp at the beginning of every line.",
        ),
    ]
}

fn exec_params() -> Vec<Value> {
    vec![
        query("command", "string", "The command to execute (repeated)."),
        query(
            "container",
            "string",
            "The container in which to execute the command.",
        ),
        query(
            "stderr",
            "boolean",
            "Redirect the standard error stream of the command.",
        ),
        query(
            "stdin",
            "boolean",
            "Redirect the standard input stream of the command.",
        ),
        query(
            "stdout",
            "boolean",
            "Redirect the standard output stream of the command.",
        ),
        query("tty", "boolean", "Allocate a terminal for the command."),
    ]
}

/// The OpenAPI 3.0 document of one group version.
fn build(group: &str, version: &str) -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let served: Vec<&Kind> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    let has = |sub: &str| served.iter().any(|k| k.has_subresource(sub));
    let names = Names {
        status: register::<meta::Status>(&mut gen),
        delete_options: register::<meta::DeleteOptions>(&mut gen),
        patch: register::<meta::Patch>(&mut gen),
        watch_event: register::<meta::WatchEvent<meta::Status>>(&mut gen),
        scale: has("scale").then(|| register::<autoscaling::Scale>(&mut gen)),
        binding: has("binding").then(|| register::<core::Binding>(&mut gen)),
        eviction: has("eviction").then(|| register::<policy::Eviction>(&mut gen)),
    };
    let list_meta = register::<meta::ListMeta>(&mut gen);
    let kind_names: Vec<String> = served.iter().map(|k| kind_schema(&mut gen, k)).collect();

    let mut schemas = gen.take_definitions(true);
    let mut paths = Map::new();
    for (kind, name) in served.iter().zip(&kind_names) {
        tag_gvk(
            &mut schemas,
            name,
            json!([gvk(kind.group, kind.version, kind.kind)]),
        );
        if kind.stored {
            schemas.insert(format!("{name}List"), list_schema(kind, name, &list_meta));
        }
        kind_paths(&mut paths, kind, name, &names);
    }
    tag_gvk(
        &mut schemas,
        &names.status,
        json!([gvk("", "v1", "Status")]),
    );
    tag_gvk(
        &mut schemas,
        &names.delete_options,
        json!([gvk(group, version, "DeleteOptions")]),
    );
    tag_gvk(
        &mut schemas,
        &names.watch_event,
        json!([gvk(group, version, "WatchEvent")]),
    );
    if let Some(scale) = &names.scale {
        tag_gvk(
            &mut schemas,
            scale,
            json!([gvk("autoscaling", "v1", "Scale")]),
        );
    }
    if let Some(binding) = &names.binding {
        tag_gvk(&mut schemas, binding, json!([gvk("", "v1", "Binding")]));
    }
    if let Some(eviction) = &names.eviction {
        tag_gvk(
            &mut schemas,
            eviction,
            json!([gvk("policy", "v1", "Eviction")]),
        );
    }

    json!({
        "openapi": "3.0.0",
        "info": { "title": "navarch", "version": API_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATHS: [&str; 9] = [
        "api/v1",
        "apis/apps/v1",
        "apis/coordination.k8s.io/v1",
        "apis/discovery.k8s.io/v1",
        "apis/policy/v1",
        "apis/node.k8s.io/v1",
        "apis/authentication.k8s.io/v1",
        "apis/authorization.k8s.io/v1",
        "apis/rbac.authorization.k8s.io/v1",
    ];

    #[test]
    fn index_lists_every_group_version() {
        let index = index();
        let paths = index["paths"].as_object().unwrap();
        assert_eq!(paths.len(), PATHS.len());
        for p in PATHS {
            let url = paths[p]["serverRelativeURL"].as_str().unwrap();
            let hash = document_hash(p).unwrap();
            assert_eq!(url, format!("/openapi/v3/{p}?hash={hash}"));
            assert_eq!(hash.len(), 16);
        }
        // Stable: the hash is that of the document as served.
        let doc = document("api/v1").unwrap();
        assert_eq!(
            format!("{:016X}", fnv1a(doc.to_string().as_bytes())),
            document_hash("api/v1").unwrap()
        );
    }

    #[test]
    fn documents_by_path() {
        for p in PATHS {
            let doc = document(p).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
            assert_eq!(doc["info"]["title"], "navarch");
            assert_eq!(Some(&doc), document(&format!("/{p}")).as_ref());
        }
        assert!(document("apis/batch/v1").is_none());
        assert!(document("apis/apps").is_none());
        assert!(document("").is_none());
    }

    /// kubectl trusts server-side validation only if a PATCH operation of the kind carries the
    /// kind's GVK and a `fieldValidation` query parameter.
    #[test]
    fn every_kind_has_a_patch_kubectl_recognises() {
        for kind in KINDS.iter().filter(|k| k.serves("patch")) {
            let doc = document_ref(&doc_path(kind.group, kind.version)).unwrap();
            let want = gvk(kind.group, kind.version, kind.kind);
            let found = doc["paths"].as_object().unwrap().values().any(|item| {
                let Some(patch) = item.get("patch") else {
                    return false;
                };
                patch["x-kubernetes-group-version-kind"] == want
                    && patch["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
                    && !patch["requestBody"]["content"]
                        .as_object()
                        .unwrap()
                        .contains_key("application/strategic-merge-patch+json")
            });
            assert!(found, "no usable patch operation for {}", kind.kind);
        }
    }

    #[test]
    fn operations_are_complete() {
        let mut ids = std::collections::HashSet::new();
        for p in PATHS {
            let doc = document_ref(p).unwrap();
            for (path, item) in doc["paths"].as_object().unwrap() {
                for (method, op) in item.as_object().unwrap() {
                    if method == "parameters" {
                        continue;
                    }
                    let id = op["operationId"].as_str().unwrap();
                    assert!(ids.insert(id.to_string()), "duplicate {id}");
                    assert!(op["x-kubernetes-action"].is_string(), "{path} {method}");
                    assert!(op["x-kubernetes-group-version-kind"]["kind"].is_string());
                    assert!(op["responses"]["200"]["content"].is_object(), "{id}");
                    if matches!(method.as_str(), "put" | "post" | "patch")
                        && !id.starts_with("connect")
                    {
                        let params = op["parameters"].as_array().unwrap();
                        for want in ["fieldValidation", "fieldManager", "dryRun"] {
                            assert!(
                                params
                                    .iter()
                                    .any(|p| p["name"] == want && p["in"] == "query"),
                                "{id} lacks {want}"
                            );
                        }
                    }
                }
            }
        }
        assert!(ids.contains("patchAppsV1NamespacedDeployment"));
        assert!(ids.contains("listCoreV1PodForAllNamespaces"));
        assert!(ids.contains("listCoreV1Node"));
        assert!(ids.contains("readAppsV1NamespacedReplicaSetScale"));
        assert!(ids.contains("createCoreV1NamespacedPodBinding"));
        assert!(ids.contains("createCoreV1NamespacedPodEviction"));
        assert!(ids.contains("patchPolicyV1NamespacedPodDisruptionBudgetStatus"));
        assert!(ids.contains("listDiscoveryV1EndpointSliceForAllNamespaces"));
    }

    #[test]
    fn paths_follow_the_kinds_table() {
        let core = document_ref("api/v1").unwrap();
        let paths = core["paths"].as_object().unwrap();
        for p in [
            "/api/v1/namespaces/{namespace}/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            "/api/v1/pods",
            "/api/v1/nodes",
            "/api/v1/nodes/{name}",
            "/api/v1/nodes/{name}/status",
            "/api/v1/namespaces",
            "/api/v1/namespaces/{name}",
        ] {
            assert!(paths.contains_key(p), "{p}");
        }
        assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/nodes"));
        let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
        assert_eq!(
            eviction["x-kubernetes-group-version-kind"],
            gvk("policy", "v1", "Eviction")
        );
        assert_eq!(
            eviction["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.policy.v1.Eviction"
        );
        let list = &paths["/api/v1/namespaces/{namespace}/pods"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for want in [
            "watch",
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        assert_eq!(list["x-kubernetes-action"], "list");

        let apps = document_ref("apis/apps/v1").unwrap();
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"],
            gvk("autoscaling", "v1", "Scale")
        );
        assert_eq!(
            scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
        );
    }

    #[test]
    fn kind_schemas_are_named_as_kubernetes_names_them() {
        let apps = document_ref("apis/apps/v1").unwrap();
        let schemas = apps["components"]["schemas"].as_object().unwrap();
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.apps.v1.DeploymentList",
            "io.k8s.api.apps.v1.ReplicaSetList",
            "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "io.k8s.api.core.v1.PodTemplateSpec",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        assert_eq!(
            schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([gvk("apps", "v1", "Deployment")])
        );
        assert!(schemas["io.k8s.api.apps.v1.Deployment"]
            .get("required")
            .is_none());
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"],
            json!([gvk("apps", "v1", "DeploymentList")])
        );
        let core = document_ref("api/v1").unwrap();
        let schemas = core["components"]["schemas"].as_object().unwrap();
        for kind in KINDS.iter().filter(|k| k.group.is_empty()) {
            let name = format!("io.k8s.api.core.v1.{}", kind.kind);
            assert_eq!(
                schemas[&name]["x-kubernetes-group-version-kind"],
                json!([gvk("", "v1", kind.kind)]),
                "{name}"
            );
            assert!(schemas.contains_key(&format!("{name}List")));
        }
        assert!(schemas.contains_key("io.k8s.api.core.v1.Binding"));
    }

    /// The review kinds have one operation, a create; the RBAC kinds have Kubernetes' full set,
    /// with Kubernetes' operation ids.
    #[test]
    fn review_kinds_are_create_only_and_rbac_kinds_complete() {
        let authz = document_ref("apis/authorization.k8s.io/v1").unwrap();
        let paths = authz["paths"].as_object().unwrap();
        let ssar = &paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"];
        let methods: Vec<&String> = ssar
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .collect();
        assert_eq!(methods, ["post"]);
        assert_eq!(
            ssar["post"]["operationId"],
            "createAuthorizationV1SelfSubjectAccessReview"
        );
        assert_eq!(ssar["post"]["tags"], json!(["authorization_v1"]));
        assert_eq!(
            ssar["post"]["x-kubernetes-group-version-kind"],
            gvk("authorization.k8s.io", "v1", "SelfSubjectAccessReview")
        );
        assert!(
            !paths.contains_key("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}")
        );
        let schemas = authz["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.authorization.v1.SelfSubjectRulesReview"));
        assert!(!schemas.contains_key("io.k8s.api.authorization.v1.SelfSubjectAccessReviewList"));
        let authn = document_ref("apis/authentication.k8s.io/v1").unwrap();
        assert!(authn["paths"]
            .as_object()
            .unwrap()
            .contains_key("/apis/authentication.k8s.io/v1/selfsubjectreviews"));

        let rbac = document_ref("apis/rbac.authorization.k8s.io/v1").unwrap();
        let paths = rbac["paths"].as_object().unwrap();
        let role = &paths["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}"];
        assert_eq!(
            role["patch"]["operationId"],
            "patchRbacAuthorizationV1NamespacedRole"
        );
        assert_eq!(role["patch"]["tags"], json!(["rbacAuthorization_v1"]));
        assert!(paths.contains_key("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"));
        assert!(paths.contains_key("/apis/rbac.authorization.k8s.io/v1/rolebindings"));
        let schemas = rbac["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.rbac.v1.ClusterRoleList"));
        assert!(schemas.contains_key("io.k8s.api.rbac.v1.PolicyRule"));
    }

    /// Walks `v`, checking every `$ref` resolves within `schemas` and that nothing outside
    /// OpenAPI 3.0 (JSON Schema `$defs`, type arrays, `const`) is left.
    fn check(v: &Value, schemas: &Map<String, Value>, at: &str, refs: &mut usize) {
        match v {
            Value::Object(m) => {
                assert!(!m.contains_key("$defs"), "$defs at {at}");
                assert!(!m.contains_key("$schema"), "$schema at {at}");
                if let Some(r) = m.get("$ref") {
                    let r = r.as_str().unwrap();
                    let name = r
                        .strip_prefix(SCHEMA_REF_PREFIX)
                        .unwrap_or_else(|| panic!("foreign $ref {r} at {at}"));
                    assert!(schemas.contains_key(name), "dangling $ref {r} at {at}");
                    assert_eq!(m.len(), 1, "$ref with siblings at {at}");
                    *refs += 1;
                }
                if let Some(t) = m.get("type") {
                    // `type` may also be a property name inside `properties`.
                    assert!(t.is_string() || t.is_object(), "type {t} at {at}");
                }
                for (k, child) in m {
                    check(child, schemas, &format!("{at}/{k}"), refs);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    check(child, schemas, &format!("{at}/{i}"), refs);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves() {
        for p in PATHS {
            let doc = document_ref(p).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            assert!(!schemas.is_empty());
            let mut refs = 0;
            check(doc, schemas, p, &mut refs);
            assert!(refs > 10, "{p}: only {refs} refs");
            for (name, schema) in schemas {
                assert!(schema.is_object(), "{name} is not a schema object");
            }
        }
    }
}
